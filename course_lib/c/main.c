/* The test program: runs the model on every image of images.bin (MODEL_INPUT_BYTES uint8 codes
 * each, quantized as the model's QuantizeLinear does) and writes the output codes to codes.bin
 * (MODEL_OUTPUT_BYTES each) and, per image, the counter's ticks for one inference to ticks.bin
 * (uint32, little-endian). It prints how many images ran and how much stack they used. */
#include "platform.h"
#include "model.h"

static uint8_t image[MODEL_INPUT_BYTES];
static uint8_t codes[MODEL_OUTPUT_BYTES];

static void print_number(const char *label, uint32_t value)
{
    char text[48];
    int32_t n = 0, digits = 0;
    char reversed[12];
    while (label[n] && n < 32) { text[n] = label[n]; ++n; }
    do { reversed[digits++] = (char)('0' + value % 10); value /= 10; } while (value);
    while (digits) text[n++] = reversed[--digits];
    text[n++] = '\n';
    text[n] = 0;
    platform_print(text);
}

int main(void)
{
    platform_file *in = platform_open("images.bin", 0);
    platform_file *out = platform_open("codes.bin", 1);
    platform_file *ticks = platform_open("ticks.bin", 1);
    if (!in || !out || !ticks) {
        platform_print("error: cannot open images.bin, codes.bin or ticks.bin in the working folder\n");
        return 2;
    }
    uint32_t images = 0;
    platform_counter_start();
    while (platform_read(in, image, MODEL_INPUT_BYTES) == MODEL_INPUT_BYTES) {
        uint32_t start = platform_counter_read();
        model_forward(image, codes);
        uint32_t spent = (platform_counter_read() - start) & 0x00FFFFFFu;
        uint8_t bytes[4] = {(uint8_t)spent, (uint8_t)(spent >> 8), (uint8_t)(spent >> 16), (uint8_t)(spent >> 24)};
        platform_write(out, codes, MODEL_OUTPUT_BYTES);
        platform_write(ticks, bytes, 4);
        ++images;
    }
    platform_close(in);
    platform_close(out);
    platform_close(ticks);
    print_number("images ", images);
    print_number("stack bytes ", platform_stack_used());
    return 0;
}
