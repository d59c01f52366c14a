/* Start-up for a Cortex-M4 with no operating system. At reset the core reads the initial stack
 * pointer and the reset handler's address from the vector table at address 0 (without one, QEMU
 * stops at once with a "Lockup"); the handler copies initialised data from flash to RAM, zeroes
 * the rest, paints the stack (so platform_stack_used can see how deep it went), and calls main. */
#include <stdint.h>
#include "platform.h"

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_bottom, __stack_top;
int main(void);

void reset_handler(void)
{
    const uint32_t *from = &__data_load;
    for (uint32_t *to = &__data_start; to < &__data_end;) *to++ = *from++;
    for (uint32_t *to = &__bss_start; to < &__bss_end;) *to++ = 0;
    uint32_t *here;
    __asm__ volatile("mov %0, sp" : "=r"(here));
    for (uint32_t *p = &__stack_bottom; p < here - 16; ++p) *p = 0xC0DEC0DEu;   /* below this frame */
    platform_exit(main());
}

static void fault_handler(void)
{
    platform_print("fault: the program stopped on a hard fault\n");
    platform_exit(3);
}

__attribute__((section(".vectors"), used))
static void (*const vectors[16])(void) = {
    (void (*)(void))&__stack_top, reset_handler,
    fault_handler, fault_handler, fault_handler, fault_handler, fault_handler,   /* NMI, hard, memory, bus, usage */
};
