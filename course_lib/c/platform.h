/* What the test program needs from the machine it runs on: files to read images from and write
 * codes to, a line of text, an instruction counter, and an exit status. platform_host.c gives
 * them with the C library; platform_semihost.c on a Cortex-M through Arm semihosting (the
 * debugger, here QEMU, does the I/O for the program). */
#ifndef PLATFORM_H
#define PLATFORM_H

#include <stdint.h>

typedef struct platform_file platform_file;

platform_file *platform_open(const char *path, int write);   /* NULL if it cannot be opened */
int32_t platform_read(platform_file *f, uint8_t *buffer, int32_t bytes);    /* bytes read */
int32_t platform_write(platform_file *f, const uint8_t *buffer, int32_t bytes);
void platform_close(platform_file *f);
void platform_print(const char *text);
void platform_counter_start(void);       /* start counting (no-op on the host) */
uint32_t platform_counter_read(void);    /* a count that grows with time; 0 on the host */
uint32_t platform_stack_used(void);      /* bytes of stack ever written; 0 on the host */
void platform_exit(int status);

#endif /* PLATFORM_H */
