/* Integer-only inference for int8 networks, one function per operator.
 *
 * The C twin of course_lib.deploy's NumPy forward with requantization="fixed_point"
 * (Jacob et al. 2018, "Quantization and Training of Neural Networks for Efficient
 * Integer-Arithmetic-Only Inference", eqs. 2-7), with the arithmetic of CMSIS-NN and
 * TensorFlow Lite Micro's reference kernels:
 *
 *   acc  = bias[c] + sum_k (x[k] - x_zero) * (w[c, k] - w_zero)        int32 accumulator
 *   y[c] = clamp(y_zero + requantize(acc, multiplier_q31[c], shift[c]),
 *                relu ? y_zero : 0, 255)                               uint8 code
 *
 * where requantize(acc, m0, n) ~ acc * m0 * 2^(n - 31), computed with one 64-bit product and
 * rounding shifts (no floating point). Tensors are uint8 codes in PyTorch's (C, H, W) order,
 * one image at a time; weights are int8 in PyTorch's layout (O, C / groups, kh, kw) or (N, K).
 * No function allocates memory: the caller passes every buffer.
 */
#ifndef INT8_OPS_H
#define INT8_OPS_H

#include <stdint.h>

/* One convolution or fully connected layer's constants (course_lib.deploy.export_c_header's arrays). */
typedef struct {
    const int8_t *weight;            /* (out, in / groups, kernel_h, kernel_w) or (out, in) */
    const int32_t *bias;             /* (out,) int32 codes of scale s_x * s_w[c] */
    const int32_t *multiplier_q31;   /* (out,) M0 in [2^30, 2^31) */
    const int8_t *shift;             /* (out,) n: M ~ M0 * 2^(n - 31) */
    int32_t input_zero_point;        /* x_zero, uint8 */
    int32_t weight_zero_point;       /* w_zero (0: symmetric weights) */
    int32_t output_zero_point;       /* y_zero, uint8 */
    int32_t relu;                    /* 1: clamp at y_zero (a fused ReLU) */
} quant_params;

typedef struct {
    int32_t in_channels, in_h, in_w;
    int32_t out_channels, out_h, out_w;
    int32_t kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w;
    int32_t pad_top, pad_left;       /* bottom and right padding follow from out_h and out_w */
    int32_t groups;                  /* 1: dense; in_channels == out_channels == groups: depthwise */
} conv_shape;

typedef struct {
    int32_t channels, in_h, in_w, out_h, out_w;
    int32_t kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left;
} pool_shape;

/* acc * M0 * 2^(shift - 31), rounded as TensorFlow Lite's MultiplyByQuantizedMultiplier. */
int32_t requantize_q31(int32_t acc, int32_t multiplier_q31, int32_t shift);

/* acc -> uint8 code: y_zero added, clamped to [relu ? y_zero : 0, 255]. */
uint8_t requantize_to_code(int32_t acc, int32_t multiplier_q31, int32_t shift, const quant_params *q);

void conv2d_u8(const uint8_t *input, const conv_shape *s, const quant_params *q, uint8_t *output);
void fully_connected_u8(const uint8_t *input, int32_t in_features, int32_t out_features,
                        const quant_params *q, uint8_t *output);
void max_pool2d_u8(const uint8_t *input, const pool_shape *s, uint8_t *output);

#endif /* INT8_OPS_H */
