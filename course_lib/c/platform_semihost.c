/* The platform on a Cortex-M4 without an operating system: Arm semihosting for files and text
 * ("Semihosting for AArch32 and AArch64", Arm, 2022: the program stops at `bkpt 0xAB` with an
 * operation in r0 and its parameters in r1, and the debugger or emulator carries it out), and the
 * core's SysTick timer as a counter (QEMU run with -icount shift=0 advances its clock by 1 ns per
 * instruction, so the timer counts instructions, one tick per 40 at the board's 25 MHz). */
#include "platform.h"

enum { SYS_OPEN = 0x01, SYS_CLOSE = 0x02, SYS_WRITE0 = 0x04, SYS_WRITE = 0x05, SYS_READ = 0x06,
       SYS_EXIT_EXTENDED = 0x20, ADP_STOPPED_APPLICATION_EXIT = 0x20026 };

static int32_t semihost(int32_t operation, void *parameters)
{
    register int32_t r0 __asm__("r0") = operation;
    register void *r1 __asm__("r1") = parameters;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static int32_t length(const char *s) { int32_t n = 0; while (s[n]) ++n; return n; }

platform_file *platform_open(const char *path, int write)
{
    uint32_t block[3] = {(uint32_t)path, write ? 5u : 1u, (uint32_t)length(path)};   /* modes "wb", "rb" */
    int32_t handle = semihost(SYS_OPEN, block);
    return handle < 0 ? 0 : (platform_file *)(handle + 1);   /* handles start at 0; NULL means failure */
}

int32_t platform_read(platform_file *f, uint8_t *buffer, int32_t bytes)
{
    uint32_t block[3] = {(uint32_t)f - 1, (uint32_t)buffer, (uint32_t)bytes};
    return bytes - semihost(SYS_READ, block);          /* SYS_READ answers the bytes NOT read */
}

int32_t platform_write(platform_file *f, const uint8_t *buffer, int32_t bytes)
{
    uint32_t block[3] = {(uint32_t)f - 1, (uint32_t)buffer, (uint32_t)bytes};
    return bytes - semihost(SYS_WRITE, block);
}

void platform_close(platform_file *f) { uint32_t block[1] = {(uint32_t)f - 1}; semihost(SYS_CLOSE, block); }
void platform_print(const char *text) { semihost(SYS_WRITE0, (void *)text); }

#define SYST_CSR (*(volatile uint32_t *)0xE000E010)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018)

void platform_counter_start(void)
{
    SYST_RVR = 0x00FFFFFF;          /* the largest reload: 2^24 ticks before it wraps */
    SYST_CVR = 0;
    SYST_CSR = 0x5;                 /* enable, processor clock, no interrupt */
}

uint32_t platform_counter_read(void) { return (0x00FFFFFFu - SYST_CVR) & 0x00FFFFFFu; }   /* counts down */

extern uint32_t __stack_bottom, __stack_top;
#define STACK_PAINT 0xC0DEC0DEu

uint32_t platform_stack_used(void)
{
    const uint32_t *p = &__stack_bottom;            /* the stack grows down from __stack_top */
    while (p < &__stack_top && *p == STACK_PAINT) ++p;
    return (uint32_t)((const uint8_t *)&__stack_top - (const uint8_t *)p);
}

void platform_exit(int status)
{
    uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)status};   /* the extended exit carries a status */
    for (;;) semihost(SYS_EXIT_EXTENDED, block);
}
