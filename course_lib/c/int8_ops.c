/* Integer-only operators: see int8_ops.h for the arithmetic. Each loop mirrors one function of
 * course_lib/deploy.py: conv2d_accumulate, linear_accumulate, requantize_fixed_point and
 * max_pool2d_codes. Plain loops, no intrinsics: read them like the NumPy forward. */
#include "int8_ops.h"

/* The rounded high half of 2 * a * b (gemmlowp's SaturatingRoundingDoublingHighMul): a * b in 64
 * bits, a nudge of a half toward the product's sign, divided by 2^31 truncating toward zero. The
 * one overflowing case, a = b = INT32_MIN, cannot occur (M0 > 0). */
static int32_t rounding_doubling_high_mul(int32_t a, int32_t b)
{
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* x / 2^exponent rounded to nearest, ties away from zero (gemmlowp's RoundingDivideByPOT). */
static int32_t rounding_divide_by_pot(int32_t x, int32_t exponent)
{
    int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

int32_t requantize_q31(int32_t acc, int32_t multiplier_q31, int32_t shift)
{
    int32_t left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
    int64_t shifted = (int64_t)acc * ((int64_t)1 << left);          /* saturated to int32, as in NumPy */
    if (shifted > INT32_MAX) shifted = INT32_MAX;
    if (shifted < INT32_MIN) shifted = INT32_MIN;
    return rounding_divide_by_pot(rounding_doubling_high_mul((int32_t)shifted, multiplier_q31), right);
}

uint8_t requantize_to_code(int32_t acc, int32_t multiplier_q31, int32_t shift, const quant_params *q)
{
    int32_t v = requantize_q31(acc, multiplier_q31, shift) + q->output_zero_point;
    int32_t low = q->relu ? q->output_zero_point : 0;
    return (uint8_t)(v < low ? low : (v > 255 ? 255 : v));
}

/* The taps k in [*first, *last) of a kernel of `kernel` taps, `dilation` apart, starting at
 * `start`, that land inside [0, size): the others read padding, which holds x_zero and adds nothing. */
static void taps_inside(int32_t start, int32_t kernel, int32_t dilation, int32_t size, int32_t *first, int32_t *last)
{
    *first = 0;
    *last = kernel;
    while (*first < *last && start + *first * dilation < 0) ++*first;
    while (*last > *first && start + (*last - 1) * dilation >= size) --*last;
}

void conv2d_u8(const uint8_t *input, const conv_shape *s, const quant_params *q, uint8_t *output)
{
    const int32_t group_in = s->in_channels / s->groups, group_out = s->out_channels / s->groups;
    const int32_t kernel_size = group_in * s->kernel_h * s->kernel_w;
    for (int32_t oc = 0; oc < s->out_channels; ++oc) {
        const int32_t first_in = (oc / group_out) * group_in;       /* this output's group of inputs */
        const int8_t *w = q->weight + oc * kernel_size;
        for (int32_t oy = 0; oy < s->out_h; ++oy) {
            const int32_t y0 = oy * s->stride_h - s->pad_top;
            int32_t ky_first, ky_last;
            taps_inside(y0, s->kernel_h, s->dilation_h, s->in_h, &ky_first, &ky_last);
            for (int32_t ox = 0; ox < s->out_w; ++ox) {
                const int32_t x0 = ox * s->stride_w - s->pad_left;
                int32_t kx_first, kx_last;
                taps_inside(x0, s->kernel_w, s->dilation_w, s->in_w, &kx_first, &kx_last);
                int32_t acc = q->bias[oc];
                for (int32_t ic = 0; ic < group_in; ++ic) {
                    const uint8_t *plane = input + (first_in + ic) * s->in_h * s->in_w;
                    for (int32_t ky = ky_first; ky < ky_last; ++ky) {
                        const uint8_t *row = plane + (y0 + ky * s->dilation_h) * s->in_w + x0;
                        const int8_t *w_row = w + (ic * s->kernel_h + ky) * s->kernel_w;
                        for (int32_t kx = kx_first; kx < kx_last; ++kx)
                            acc += ((int32_t)row[kx * s->dilation_w] - q->input_zero_point)
                                   * ((int32_t)w_row[kx] - q->weight_zero_point);
                    }
                }
                output[(oc * s->out_h + oy) * s->out_w + ox] =
                    requantize_to_code(acc, q->multiplier_q31[oc], q->shift[oc], q);
            }
        }
    }
}

void fully_connected_u8(const uint8_t *input, int32_t in_features, int32_t out_features,
                        const quant_params *q, uint8_t *output)
{
    for (int32_t n = 0; n < out_features; ++n) {
        const int8_t *w = q->weight + n * in_features;
        int32_t acc = q->bias[n];
        for (int32_t k = 0; k < in_features; ++k)
            acc += ((int32_t)input[k] - q->input_zero_point) * ((int32_t)w[k] - q->weight_zero_point);
        output[n] = requantize_to_code(acc, q->multiplier_q31[n], q->shift[n], q);
    }
}

void max_pool2d_u8(const uint8_t *input, const pool_shape *s, uint8_t *output)
{
    for (int32_t c = 0; c < s->channels; ++c) {
        const uint8_t *plane = input + c * s->in_h * s->in_w;
        for (int32_t oy = 0; oy < s->out_h; ++oy) {
            for (int32_t ox = 0; ox < s->out_w; ++ox) {
                uint8_t best = 0;                                   /* padding holds code 0, which never wins */
                for (int32_t ky = 0; ky < s->kernel_h; ++ky) {
                    int32_t iy = oy * s->stride_h - s->pad_top + ky;
                    if (iy < 0 || iy >= s->in_h) continue;
                    for (int32_t kx = 0; kx < s->kernel_w; ++kx) {
                        int32_t ix = ox * s->stride_w - s->pad_left + kx;
                        if (ix < 0 || ix >= s->in_w) continue;
                        uint8_t v = plane[iy * s->in_w + ix];
                        if (v > best) best = v;
                    }
                }
                output[(c * s->out_h + oy) * s->out_w + ox] = best;
            }
        }
    }
}
