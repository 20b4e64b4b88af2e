/* lev_qkernels.h: packed ternary/binary/4-bit weight layouts, int8 activations and their GEMV/GEMM kernels. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Packed encodings (the numbers are the file's LevEncoding values; see docs/format.md, "Packed encodings").
 * Every row is padded with zero weights to a whole number of blocks; every block is a fixed number of bytes.
 *   t2: 128 weights in 32 bytes; byte j holds weight j + 32k in bits 2k..2k+1 as code w + 1 (0, 1, 2).
 *   t1: 160 weights in 32 bytes; byte j holds weights j + 32i (i = 0..4) as the base-3 number
 *       v = sum_i (w_i + 1) 3^(4-i), stored as (ceil(v * 256 / 243) XOR 0x80).
 *   b1: 128 weights in 16 bytes; bit b of byte j is weight 8j + b: 1 = +1, 0 = -1.
 *   q4: 64 weights in 32 bytes; byte j holds weight j in its low nibble and weight j + 32 in its high nibble,
 *       as code q + 8 with q in -8..7.
 * A packed tensor is codes[rows][row_bytes] followed by float scales[n_scales], n_scales = 1 (one per tensor),
 * rows (one per row), or rows * groups per row ("per-group": scales[r][g] for the weights g * G .. g * G + G - 1
 * of row r), a group G being one block (t2, t1, b1) or half a block (64 weights: t2, b1); weight = value * scale. */
enum {
  LEV_QENC_T2 = 4,
  LEV_QENC_T1 = 5,
  LEV_QENC_B1 = 6,
  LEV_QENC_Q4 = 7,
};

/* The widest block of any packed encoding divides this: activation buffers are padded (with zeros) to it. */
#define LEV_QPAD 640u
/* The most scale groups per row of a matrix with per-group scales (the kernels keep per-group sums on the
 * stack). */
#define LEV_QMAX_GROUPS 1024u

/* Returns whether enc is one of the packed encodings above. */
int lev_qenc_is_packed (uint32_t enc);
/* Returns the weights per block of a packed encoding (0 for others). */
uint32_t lev_qenc_block_weights (uint32_t enc);
/* Returns the bytes per block of a packed encoding (0 for others). */
uint32_t lev_qenc_block_bytes (uint32_t enc);
/* Returns cols rounded up to whole blocks of enc. */
size_t lev_qenc_cols_padded (uint32_t enc, size_t cols);
/* Returns the bytes of one packed row of cols weights. */
size_t lev_qenc_row_bytes (uint32_t enc, size_t cols);
/* Returns the scale groups per row of a matrix of cols weights a row in enc with groups of group_weights: the
 * block (t2, t1, b1) or 64 (t2, b1: half a block); 0 when enc takes no groups of that width. */
size_t lev_qenc_groups_per_row (uint32_t enc, size_t cols, size_t group_weights);
/* Returns a short name ("t2", "t1", "b1", "q4") or NULL. */
const char *lev_qenc_name (uint32_t enc);

/* Packs one row of small integer values (t2/t1: -1..1; b1: sign, value > 0 is +1; q4: -8..7) into row_bytes
 * bytes; weights past cols are zero (b1: -1, harmless against zero activations). */
void lev_qpack_row (uint32_t enc, const int8_t *vals, size_t cols, uint8_t *out);
/* Unpacks one packed row into cols integer values (b1 gives -1/+1). */
void lev_qunpack_row (uint32_t enc, const uint8_t *row, size_t cols, int8_t *vals);

/* Element types of a compact vector (a row of the KV cache); the numbers are the engine's LevKvType values. */
enum {
  LEV_QVEC_F32 = 0,
  LEV_QVEC_F16 = 1,           /* IEEE half */
  LEV_QVEC_I8 = 2,            /* int8 (its scale is applied by the caller) */
};

/* A packed matrix as the kernels see it. */
typedef struct LevQMatrix {
  uint32_t enc;
  uint32_t rows, cols;
  uint32_t cols_pad;          /* cols rounded up to whole blocks */
  size_t row_bytes;
  const uint8_t *codes;       /* [rows][row_bytes] */
  const float *scales;        /* [n_scales] */
  uint32_t n_scales;          /* 1, rows, or rows * groups per row (per-group) */
} LevQMatrix;

/* int8 activations of a block of n tokens (per-token absmax quantized), ready for the kernels. */
typedef struct LevQAct {
  uint32_t n;                 /* tokens */
  size_t stride;              /* values per token row in q; a multiple of LEV_QPAD, zero past the width */
  const int8_t *q;            /* [n][stride] */
  const int8_t *q2;           /* [n][2 * stride]: every 32-value chunk twice (the AVX-512 kernels' layout) */
  const int32_t *sum;         /* [n] sum of q over the row */
  const float *scale;         /* [n] value = q * scale */
  const int32_t *csum;        /* [n][stride / 32] sum of each 32-value chunk of q (for per-group scales) */
} LevQAct;

/* Fills q2, sum and csum (q2 and csum may be NULL) of one token row from its q (stride values, zero past the
 * width). */
void lev_qact_finish_row (const int8_t *q, size_t stride, int8_t *q2, int32_t *sum, int32_t *csum);
/* Fills gs[t * n_groups + g] with the activation sum over group g (group_weights wide, a multiple of 32) of token
 * t0 + t, t < nt, from act->csum: what the per-group kernels subtract for their unsigned codes. */
void lev_qact_group_sums (const LevQAct *act, size_t t0, size_t nt, size_t group_weights, size_t n_groups,
                          float *gs);

/* y[t * y_stride + r] = scale(r) * act->scale[t] * sum_c w[r][c] * q[t][c] for rows [r0, r1), all tokens.
 * The integer sums are exact in every implementation; the float product is the same expression everywhere.
 * With per-group scales, y = act->scale[t] * sum_g scale(r, g) * (exact integer sum over group g): the float
 * sum over groups is in an order of each implementation's own (results within float rounding of each other). */
typedef void (*LevQGemmFn) (const LevQMatrix *w, const LevQAct *act, float *y, size_t y_stride, size_t r0,
                            size_t r1);

/* One implementation of the packed kernels. */
typedef struct LevQKernels {
  const char *name;           /* "scalar", "avx2", "avx512", "avx512vbmi", "neon", "neondot", "i8mm" */
  int needs_q2;               /* reads LevQAct.q2 (else only q) */
  LevQGemmFn gemm[4];         /* indexed by enc - LEV_QENC_T2 */
  LevQGemmFn gemv[4];         /* the same for one token (act->n == 1): the measured choice may differ */
  /* attention helpers, bit-identical to lev_dot_f32 / lev_axpy_f32 (same lanes, same order, no fused ops) */
  float (*dot_f32) (const float *a, const float *b, size_t n);
  void (*axpy_f32) (float a, const float *x, float *y, size_t n);
  /* the same over a compact KV cache: IEEE half or int8 values (the int8 scale is applied by the caller) */
  float (*dot_f16) (const float *a, const uint16_t *b, size_t n);
  void (*axpy_f16) (float a, const uint16_t *x, float *y, size_t n);
  float (*dot_i8) (const float *a, const int8_t *b, size_t n);
  void (*axpy_i8) (float a, const int8_t *x, float *y, size_t n);
  /* sparse outliers: sum value * x[column] over (f16 value << 16 | column) entries (lev_sparse_row_dot); the
   * SIMD versions sum in another order (float results within rounding of the scalar one) */
  float (*sparse_dot) (const uint32_t *entries, uint32_t n, const float *x);
  /* attention for the nq query heads that share one key / value row of element type `type` (LEV_QVEC_*):
   * out[g] = dot of query row g (q + g * q_stride) with the row k, and y[g * y_stride + i] += a[g] * x[i]; the row
   * is read (and converted) once for all the heads, and each head's result is bit-identical to dot_f32 / dot_f16 /
   * dot_i8 and axpy_f32 / axpy_f16 / axpy_i8 of that head alone */
  void (*dot_heads) (uint32_t type, const float *q, size_t q_stride, uint32_t nq, const void *k, size_t n,
                     float *out);
  void (*axpy_heads) (uint32_t type, const float *a, uint32_t nq, const void *x, float *y, size_t y_stride,
                      size_t n);
  /* axpy_heads over n_rows value rows v + s * v_stride bytes (s = 0 .. n_rows - 1), in that order: for each row,
   * w[g] = a[g * a_stride + s] * vscale[s * vscale_stride] (times nothing when vscale is NULL) and
   * y[g * y_stride + i] += w[g] * row[i]; bit-identical to calling axpy_heads row by row with those w */
  void (*attend_values) (uint32_t type, const float *a, size_t a_stride, uint32_t nq, const void *v, size_t v_stride,
                         const float *vscale, size_t vscale_stride, uint32_t n_rows, float *y, size_t y_stride,
                         size_t n);
  /* attention's softmax of a row of scores divided by div; bit-identical to lev_softmax */
  void (*softmax) (float *x, size_t n, float div);
  /* SwiGLU: g = silu(g) * up; bit-identical to lev_silu_mul */
  void (*silu_mul) (float *g, const float *up, size_t n);
  /* a token's int8 activations: bit-identical to lev_quantize_absmax */
  float (*quantize_absmax) (const float *x, size_t n, int8_t *q, int away);
  /* the randomized Hadamard transform of a rotated linear input: bit-identical to lev_hadamard */
  void (*hadamard) (float *x, size_t n, const float *signs);
} LevQKernels;

/* Scalar references of the KV helpers: eight lanes like lev_dot_f32, no fused multiply-add. */
float lev_dot_f16 (const float *a, const uint16_t *b, size_t n);
/* y += a * x over n halves. */
void lev_axpy_f16 (float a, const uint16_t *x, float *y, size_t n);
/* Returns the dot product of floats and int8 values. */
float lev_dot_i8 (const float *a, const int8_t *b, size_t n);
/* y += a * x over n int8 values. */
void lev_axpy_i8 (float a, const int8_t *x, float *y, size_t n);
/* dot_heads of kernel set k, one head at a time through its dot_f32 / dot_f16 / dot_i8. */
void lev_qdot_heads_each (const LevQKernels *k, uint32_t type, const float *q, size_t q_stride, uint32_t nq,
                          const void *row, size_t n, float *out);
/* axpy_heads of kernel set k, one head at a time through its axpy_f32 / axpy_f16 / axpy_i8. */
void lev_qaxpy_heads_each (const LevQKernels *k, uint32_t type, const float *a, uint32_t nq, const void *x, float *y,
                           size_t y_stride, size_t n);

/* attend_values of kernel set k, one row at a time through its axpy_heads. */
void lev_qattend_values_each (const LevQKernels *k, uint32_t type, const float *a, size_t a_stride, uint32_t nq,
                              const void *v, size_t v_stride, const float *vscale, size_t vscale_stride,
                              uint32_t n_rows, float *y, size_t y_stride, size_t n);

/* Returns the scalar reference kernels. */
const LevQKernels *lev_qkernels_scalar (void);
/* Returns the AVX2 kernels, or NULL when not built for or not supported by this CPU. */
const LevQKernels *lev_qkernels_avx2 (void);
/* The AVX2 KV-cache helpers (lev_qkernels_avx2.c, x86-64 builds only), shared by the AVX-512 kernels. */
float lev_avx2_dot_f16 (const float *a, const uint16_t *b, size_t n);
/* y += a * x over n halves, with AVX2 and F16C. */
void lev_avx2_axpy_f16 (float a, const uint16_t *x, float *y, size_t n);
/* Dot product of floats and int8 values with AVX2. */
float lev_avx2_dot_i8 (const float *a, const int8_t *b, size_t n);
/* y += a * x over n int8 values with AVX2. */
void lev_avx2_axpy_i8 (float a, const int8_t *x, float *y, size_t n);
/* dot_heads with AVX2 (the row converted once per eight values for all heads). */
void lev_avx2_dot_heads (uint32_t type, const float *q, size_t q_stride, uint32_t nq, const void *k, size_t n,
                         float *out);
/* axpy_heads with AVX2. */
void lev_avx2_axpy_heads (uint32_t type, const float *a, uint32_t nq, const void *x, float *y, size_t y_stride,
                          size_t n);
/* attend_values with AVX2 (four heads by sixteen columns in registers over all the rows). */
void lev_avx2_attend_values (uint32_t type, const float *a, size_t a_stride, uint32_t nq, const void *v,
                             size_t v_stride, const float *vscale, size_t vscale_stride, uint32_t n_rows, float *y,
                             size_t y_stride, size_t n);
/* lev_softmax with AVX2. */
void lev_avx2_softmax (float *x, size_t n, float div);
/* lev_silu_mul with AVX2. */
void lev_avx2_silu_mul (float *g, const float *up, size_t n);
/* lev_quantize_absmax with AVX2. */
float lev_avx2_quantize_absmax (const float *x, size_t n, int8_t *q, int away);
/* lev_hadamard with AVX2 (eight lanes; the stages h < 8 by in-register permutes). */
void lev_avx2_hadamard (float *x, size_t n, const float *signs);
/* Returns the AVX-512 (F, BW, VL, VNNI) kernels, or NULL when not built for or not supported by this CPU. */
const LevQKernels *lev_qkernels_avx512 (void);
/* Returns the AVX-512 kernels with the one-token t1 kernel of AVX-512 VBMI (trits by table lookup), or NULL when not
 * built for or not supported by this CPU. */
const LevQKernels *lev_qkernels_avx512vbmi (void);
/* The AVX-512 VBMI one-token t1 kernel (lev_qkernels_avx512vbmi.c); any token count, one token at a time. */
void lev_avx512vbmi_gemv_t1 (const LevQMatrix *w, const LevQAct *act, float *y, size_t y_stride, size_t r0,
                             size_t r1);
/* The one-token b1 kernel of AVX-512 VBMI + GFNI (sign bits spread to bytes by vgf2p8affineqb). */
void lev_avx512vbmi_gemv_b1 (const LevQMatrix *w, const LevQAct *act, float *y, size_t y_stride, size_t r0,
                             size_t r1);
/* Returns the NEON kernels of every NEON core (ARMv8.0 AArch64; ARMv7 with NEON: its gemm only), or NULL when not
 * built for or not supported by this CPU. */
const LevQKernels *lev_qkernels_neon (void);
/* Returns the NEON dot-product (sdot, ARMv8.2 dotprod) kernels, or NULL when not built for or not supported by this
 * CPU (AT_HWCAP's ASIMDDP). */
const LevQKernels *lev_qkernels_neondot (void);
/* Returns the dotprod kernels with the token tiles through the int8 matrix multiply (smmla, ARMv8.6 i8mm), or NULL
 * when not built for or not supported by this CPU (AT_HWCAP2's I8MM and AT_HWCAP's ASIMDDP). */
const LevQKernels *lev_qkernels_i8mm (void);
/* The AArch64 NEON attention and activation helpers (lev_qkernels_neon.c), shared by the dotprod and i8mm sets:
 * lev_dot_f32 with NEON. */
float lev_neon_dot_f32 (const float *a, const float *b, size_t n);
/* lev_axpy_f32 with NEON. */
void lev_neon_axpy_f32 (float a, const float *x, float *y, size_t n);
/* dot_heads with NEON, one head at a time. */
void lev_neon_dot_heads (uint32_t type, const float *q, size_t q_stride, uint32_t nq, const void *k, size_t n,
                         float *out);
/* axpy_heads with NEON, one head at a time. */
void lev_neon_axpy_heads (uint32_t type, const float *a, uint32_t nq, const void *x, float *y, size_t y_stride,
                          size_t n);
/* attend_values with NEON (four heads by eight columns in registers over all the rows). */
void lev_neon_attend_values (uint32_t type, const float *a, size_t a_stride, uint32_t nq, const void *v,
                             size_t v_stride, const float *vscale, size_t vscale_stride, uint32_t n_rows, float *y,
                             size_t y_stride, size_t n);
/* lev_softmax with NEON. */
void lev_neon_softmax (float *x, size_t n, float div);
/* lev_silu_mul with NEON. */
void lev_neon_silu_mul (float *g, const float *up, size_t n);
/* lev_quantize_absmax with NEON. */
float lev_neon_quantize_absmax (const float *x, size_t n, int8_t *q, int away);
/* lev_hadamard with four lanes (AArch64). */
void lev_neon_hadamard (float *x, size_t n, const float *signs);
/* The most SIMD kernel sets one build can have (lev_qkernels_simd_sets). */
#define LEV_QMAX_SIMD_SETS 6
/* Fills sets with the SIMD kernel sets built in and supported by this CPU, the preferred (widest) first: avx512,
 * avx512vbmi, avx2, i8mm, neondot, neon; returns how many (at most LEV_QMAX_SIMD_SETS; 0: scalar only). */
size_t lev_qkernels_simd_sets (const LevQKernels **sets);
/* Returns the kernels of this process, chosen once: those named by LEV_KERNELS
 * (scalar|avx2|avx512|avx512vbmi|neon|neondot|i8mm)
 * when set and available, else for each encoding the implementation measured fastest on this CPU model
 * (lev_qkernels_measure), the choice kept in $XDG_CACHE_HOME/leviathan/kernels-* (else ~/.cache) and reused by later
 * processes on the same CPU model and kernels; LEV_KERNELS=measure measures again and rewrites it. */
const LevQKernels *lev_qkernels_get (void);
/* Returns a line naming the implementation lev_qkernels_get chose for each encoding, one token / token tiles, e.g.
 * "t2 avx2/avx512, t1 avx512/avx512, b1 avx512/avx512, q4 avx512/avx512" (" (cached)" after it when read from the
 * cache; the forced set's name and " (LEV_KERNELS)" when forced). */
const char *lev_qkernels_choice (void);
/* Times every available SIMD implementation (the scalar one where there is none) of every packed encoding on small
 * cache-resident matrices, for one token and for 32-token tiles, and fills *out with the fastest of each
 * (attention helpers from the widest set); writes the choice line to choice (size bytes). A few milliseconds. */
void lev_qkernels_measure (LevQKernels *out, char *choice, size_t size);
/* Code rate of k's kernel for enc: GB/s of packed weights on a random cols-wide matrix of about `bytes` bytes (a
 * pass for n_tokens tokens counts n_tokens times its bytes), scale groups of group_weights weights (0: one scale a
 * row), the best of `trials` timings of at least min_seconds each; a negative value when the combination is
 * invalid. */
double lev_qkernel_rate (const LevQKernels *k, uint32_t enc, uint32_t group_weights, uint32_t n_tokens, size_t cols,
                         size_t bytes, double min_seconds, int trials);
/* Returns the kernels called name when available here, else NULL. */
const LevQKernels *lev_qkernels_by_name (const char *name);

/* Runs the gemm of w's encoding from the given kernel set. */
static inline void
lev_qgemm (const LevQKernels *k, const LevQMatrix *w, const LevQAct *act, float *y, size_t y_stride, size_t r0,
           size_t r1)
{
  (act->n == 1 ? k->gemv : k->gemm)[w->enc - LEV_QENC_T2] (w, act, y, y_stride, r0, r1);
}

/* Returns whether w has per-group scales (more than one scale per row). */
static inline int
lev_qmatrix_grouped (const LevQMatrix *w)
{
  return w->n_scales > w->rows;
}

/* Returns the weights per scale group of a matrix with per-group scales (its block or half of it), else cols_pad. */
static inline uint32_t
lev_qmatrix_group_weights (const LevQMatrix *w)
{
  return lev_qmatrix_grouped (w) ? w->cols_pad / (w->n_scales / w->rows) : w->cols_pad;
}

/* Returns the scale groups per row of a matrix with per-group scales, else 1. */
static inline uint32_t
lev_qmatrix_groups (const LevQMatrix *w)
{
  return lev_qmatrix_grouped (w) ? w->n_scales / w->rows : 1;
}

/* Returns the scale of row r (matrices with one scale per tensor or per row). */
static inline float
lev_qmatrix_scale (const LevQMatrix *w, size_t r)
{
  return w->scales[w->n_scales == 1 ? 0 : r];
}

/* Returns the scale of column c of row r, whatever the scale layout. */
static inline float
lev_qmatrix_col_scale (const LevQMatrix *w, size_t r, size_t c)
{
  return lev_qmatrix_grouped (w) ? w->scales[r * (w->n_scales / w->rows) + c / lev_qmatrix_group_weights (w)]
                                 : lev_qmatrix_scale (w, r);
}

/* Returns sum_c w[r][c] * x[c] for float activations x (cols values), the reference path without act quant. */
float lev_qdot_f32 (const LevQMatrix *w, size_t r, const float *x);

#ifdef __cplusplus
}
#endif
