/* The platform on a desktop computer: the C library's files. */
#include <stdio.h>
#include <stdlib.h>
#include "platform.h"

platform_file *platform_open(const char *path, int write) { return (platform_file *)fopen(path, write ? "wb" : "rb"); }
int32_t platform_read(platform_file *f, uint8_t *buffer, int32_t bytes) { return (int32_t)fread(buffer, 1, (size_t)bytes, (FILE *)f); }
int32_t platform_write(platform_file *f, const uint8_t *buffer, int32_t bytes) { return (int32_t)fwrite(buffer, 1, (size_t)bytes, (FILE *)f); }
void platform_close(platform_file *f) { fclose((FILE *)f); }
void platform_print(const char *text) { fputs(text, stdout); }
void platform_counter_start(void) {}
uint32_t platform_counter_read(void) { return 0; }
uint32_t platform_stack_used(void) { return 0; }
void platform_exit(int status) { exit(status); }
