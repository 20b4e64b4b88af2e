/* lev_kernels.h: numeric kernels (matrix-vector products, conversions, norms); plain C, libc and libm only. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Converts an IEEE half to float. */
float lev_f16_to_f32 (uint16_t h);
/* Converts a float to IEEE half, rounding to nearest even (overflow gives infinity, NaN stays NaN). */
uint16_t lev_f32_to_f16 (float f);
/* Converts a bfloat16 to float. */
float lev_bf16_to_f32 (uint16_t b);
/* Converts a float to bfloat16, rounding to nearest even. */
uint16_t lev_f32_to_bf16 (float f);

/* The kernels below compute rows [row_begin, row_end) of y = W x for a row-major W with `cols` columns. */

/* y = W x with float32 weights. */
void lev_matvec_f32 (const float *w, const float *x, float *y, size_t cols, size_t row_begin, size_t row_end);
/* y = W x with IEEE half weights. */
void lev_matvec_f16 (const uint16_t *w, const float *x, float *y, size_t cols, size_t row_begin, size_t row_end);
/* y = W x with bfloat16 weights. */
void lev_matvec_bf16 (const uint16_t *w, const float *x, float *y, size_t cols, size_t row_begin, size_t row_end);
/* y = diag(scales) Q x with int8 weights Q and float activations. */
void lev_matvec_q8_f32 (const int8_t *q, const float *scales, const float *x, float *y, size_t cols,
                        size_t row_begin, size_t row_end);
/* y = Q xq * (scales * x_scale) with int8 weights and int8 activations (exact int32 dot products). */
void lev_matvec_q8_i8 (const int8_t *q, const float *scales, const int8_t *xq, float x_scale, float *y,
                       size_t cols, size_t row_begin, size_t row_end);

/* Returns sum value * x[column] over n sparse entries, each (f16 value << 16) | column, with finite values. */
float lev_sparse_row_dot (const uint32_t *entries, uint32_t n, const float *x);

/* Returns the dot product of two float vectors. */
float lev_dot_f32 (const float *a, const float *b, size_t n);
/* y += a * x over n floats. */
void lev_axpy_f32 (float a, const float *x, float *y, size_t n);

/* Quantizes x (n values) to int8 codes q with absmax, as BitNet b1.58 does per token: s = 127 / max(|x|, 1e-5),
 * q = clamp(round(x * s), -128, 127), halves to even (away != 0: away from zero; NaN codes as -128); returns 1 / s. */
float lev_quantize_absmax (const float *x, size_t n, int8_t *q, int away);

/* Constants of lev_exp_sum's exponential, evaluated in double: t = k ln 2 + r with |r| <= ln 2 / 2, e^r by its
 * Taylor series to r^11 / 11! (truncation below 1e-13), 2^k from the exponent bits. */
#define LEV_EXP_LOG2E 1.4426950408889634
#define LEV_EXP_LN2 0.6931471805599453
#define LEV_EXP_MAGIC 6755399441055744.0        /* 1.5 * 2^52: adding and removing it rounds to an integer */
#define LEV_EXP_MIN (-104.0)                    /* e^-104 rounds to float 0: lower inputs are taken as -104 */
#define LEV_EXP_MAX 89.0                        /* e^89 rounds to float infinity: higher inputs are taken as 89 */
/* Softmax's exponentials: x[i] = exp(x[i] - shift) for x[i] <= shift, computed in double and rounded once to float
 * (the correctly rounded expf but for results within about 1e-5 ulp of a rounding boundary: the C library's expf
 * gives the same floats, which the int8-activation models' reference logits need; NaN stays NaN); the SIMD
 * versions repeat the operations lane by lane; returns their sum in eight lanes, as lev_dot_f32 sums. */
float lev_exp_sum (float *x, size_t n, float shift);
/* Attention's softmax over one row of scores: x[i] = x[i] / div, then exp(x[i] - max) / their sum, the max skipping
 * NaN scores and the exponentials and sum those of lev_exp_sum. */
void lev_softmax (float *x, size_t n, float div);
/* SwiGLU's product: g[i] = g[i] / (1 + exp(-g[i])) * up[i], the exponential as lev_exp_sum's (so expf's floats). */
void lev_silu_mul (float *g, const float *up, size_t n);

/* Randomized Hadamard transform (docs/quality.md, "Rotation"): x = B (signs ⊙ x) over n values, B block-diagonal
 * with one Walsh–Hadamard block per set bit of n, largest first (192 = 128 + 64, 5632 = 4096 + 1024 + 512), each
 * block scaled by 1 / sqrt(its size) so that B is orthogonal. Float operations in a fixed order: the signs
 * multiplied in, then per block the butterfly stages h = 1, 2, 4, ... (x[i] + x[i + h], x[i] - x[i + h]), then the
 * scale; the SIMD versions (LevQKernels.hadamard) give the same floats. */
void lev_hadamard (float *x, size_t n, const float *signs);
/* The unscaled Walsh–Hadamard butterflies of lev_hadamard over one block of b values (b a power of two). */
void lev_wht_block (float *x, size_t b);
/* A block's unscaled butterflies: lev_wht_block, or a SIMD one giving the same floats (LevQKernels.hadamard). */
typedef void (*LevWhtBlockFn) (float *x, size_t b);
/* lev_hadamard with each block's butterflies done by wht_block: the one driver (signs, blocks of n's set bits largest
 * first, scale (float) (1 / sqrt(b)) after each block) of the scalar and the SIMD versions. */
void lev_hadamard_by_blocks (float *x, size_t n, const float *signs, LevWhtBlockFn wht_block);
/* Fills signs[0..n) with the +1/-1 signs of one rotated input: splitmix64 from state seed * 2^32 + stream, sign i
 * = -1 when bit i % 64 of the (i / 64 + 1)th output is set (stream = layer * 4 + input in the engine). */
void lev_hadamard_signs (uint32_t seed, uint32_t stream, float *signs, size_t n);

#ifdef __cplusplus
}
#endif
