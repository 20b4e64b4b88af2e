/* lev_qkernels_neon.c: AArch64 NEON (dotprod) packed kernels: codes unpacked to signed weights, vdotq_s32. */
#include "lev_qkernels_simd.h"
#include "lev_kernels.h"

#if defined(LEV_HAVE_NEON)
#include <arm_neon.h>
#include <string.h>
#if defined(__linux__)
#include <sys/auxv.h>
#endif

#define AI static inline __attribute__ ((always_inline))

AI int
n_fields (uint32_t enc)
{
  return enc == LEV_QENC_T2 ? 4 : enc == LEV_QENC_T1 ? 5 : enc == LEV_QENC_Q4 ? 2 : 1;
}

/* Decodes a 16-byte half chunk into signed weights, one vector per field. */
AI void
decode (uint32_t enc, uint8x16_t c, int8x16_t *f)
{
  if (enc == LEV_QENC_T2) {
    const uint8x16_t m3 = vdupq_n_u8 (3);
    const int8x16_t one = vdupq_n_s8 (1);
    f[0] = vsubq_s8 (vreinterpretq_s8_u8 (vandq_u8 (c, m3)), one);
    f[1] = vsubq_s8 (vreinterpretq_s8_u8 (vandq_u8 (vshrq_n_u8 (c, 2), m3)), one);
    f[2] = vsubq_s8 (vreinterpretq_s8_u8 (vandq_u8 (vshrq_n_u8 (c, 4), m3)), one);
    f[3] = vsubq_s8 (vreinterpretq_s8_u8 (vshrq_n_u8 (c, 6)), one);
  } else if (enc == LEV_QENC_T1) {
    /* u = t - 128 (signed); the top trit is [u > -43] + [u > 42]; weight = trit - 1 = ~(m1 + m2) */
    const int8x16_t lo = vdupq_n_s8 (-43), hi = vdupq_n_s8 (42), three = vdupq_n_s8 (3);
    int8x16_t u = vreinterpretq_s8_u8 (c);
#pragma GCC unroll 8
    for (int i = 0; i < 5; i++) {
      int8x16_t s = vaddq_s8 (vreinterpretq_s8_u8 (vcgtq_s8 (u, lo)), vreinterpretq_s8_u8 (vcgtq_s8 (u, hi)));
      f[i] = vmvnq_s8 (s);
      u = vmulq_s8 (u, three);
    }
  } else {
    const int8x16_t eight = vdupq_n_s8 (8);
    f[0] = vsubq_s8 (vreinterpretq_s8_u8 (vandq_u8 (c, vdupq_n_u8 (15))), eight);
    f[1] = vsubq_s8 (vreinterpretq_s8_u8 (vshrq_n_u8 (c, 4)), eight);
  }
}

/* Expands 16 sign bits (two bytes) into weights +1 (bit set) / -1. */
AI int8x16_t
b1_weights (const uint8_t *p)
{
  static const uint8_t bitsel[16] = { 1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128 };
  uint8x16_t v = vcombine_u8 (vdup_n_u8 (p[0]), vdup_n_u8 (p[1]));
  uint8x16_t m = vtstq_u8 (v, vld1q_u8 (bitsel));
  return vsubq_s8 (vreinterpretq_s8_u8 (vandq_u8 (m, vdupq_n_u8 (2))), vdupq_n_s8 (1));
}

/* Rows [r0, r1) times tokens [t0, t0 + TT), one row at a time. The weights are signed, so with per-group scales
 * (grouped) each block's exact integer sums only need converting and scaling (vfmaq) into a float accumulator. */
AI void
gemm_tiles (uint32_t enc, int grouped, int TT, const LevQMatrix *w, const LevQAct *act, size_t t0, float *y,
            size_t ys, size_t r0, size_t r1)
{
  const int nf = n_fields (enc);
  size_t n_chunks = enc == LEV_QENC_B1 ? w->cols_pad / 16 : w->row_bytes / 32;
  /* b1: 16-weight chunks, eight a block, a group every 8 / grouped of them; the others: a chunk is a block, whose
   * fields split into halves for half-block groups */
  size_t per_group = enc == LEV_QENC_B1 && grouped ? 8 / (size_t) grouped : 1;
  size_t ng = !grouped ? 1 : enc == LEV_QENC_B1 ? n_chunks / per_group : n_chunks * (size_t) grouped;
  const int8_t *xs[4];
#pragma GCC unroll 8
  for (int t = 0; t < TT; t++)
    xs[t] = act->q + (t0 + t) * act->stride;
  for (size_t r = r0; r < r1; r++) {
    const uint8_t *p = w->codes + r * w->row_bytes;
    const float *sc = grouped ? w->scales + r * ng : NULL;
    int32x4_t acc[4][2];
    float32x4_t facc[4];
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++) {
      acc[t][0] = acc[t][1] = vdupq_n_s32 (0);
      facc[t] = vdupq_n_f32 (0.0f);
    }
    for (size_t c = 0; c < n_chunks; c++) {
      if (enc == LEV_QENC_B1) {
        int8x16_t wv = b1_weights (p + 2 * c);
#pragma GCC unroll 8
        for (int t = 0; t < TT; t++)
          acc[t][0] = vdotq_s32 (acc[t][0], wv, vld1q_s8 (xs[t] + 16 * c));
      } else {
        /* byte j of the 32-byte chunk holds weights j + 32k: the two 16-byte halves cover x[32k + 0..15] and
         * x[32k + 16..31] */
#pragma GCC unroll 8
        for (int h = 0; h < 2; h++) {
          int8x16_t f[5];
          decode (enc, vld1q_u8 (p + 32 * c + 16 * h), f);
#pragma GCC unroll 8
          for (int k = 0; k < nf; k++) {
            const int a = grouped == 2 && 2 * k >= nf;     /* the half of the fields */
#pragma GCC unroll 8
            for (int t = 0; t < TT; t++)
              acc[t][a] = vdotq_s32 (acc[t][a], f[k], vld1q_s8 (xs[t] + 32 * (nf * c + k) + 16 * h));
          }
        }
      }
      if (grouped && c % per_group == per_group - 1) {
        /* b1: the group just completed; the others: the block's one or two groups */
        size_t g0 = enc == LEV_QENC_B1 ? c / per_group : c * (size_t) grouped;
        int n_here = enc == LEV_QENC_B1 ? 1 : grouped;
#pragma GCC unroll 2
        for (int a = 0; a < n_here; a++)
#pragma GCC unroll 8
          for (int t = 0; t < TT; t++) {
            facc[t] = vfmaq_n_f32 (facc[t], vcvtq_f32_s32 (acc[t][a]), sc[g0 + (size_t) a]);
            acc[t][a] = vdupq_n_s32 (0);
          }
      }
    }
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++)
      y[(t0 + t) * ys + r] = grouped ? vaddvq_f32 (facc[t]) * act->scale[t0 + t]
                                     : (float) vaddvq_s32 (acc[t][0]) * (lev_qmatrix_scale (w, r) * act->scale[t0 + t]);
  }
}

LEV_QDEFINE_GEMM (gemm_t2, gemm_tiles, LEV_QENC_T2, 4)
LEV_QDEFINE_GEMM (gemm_t1, gemm_tiles, LEV_QENC_T1, 4)
LEV_QDEFINE_GEMM (gemm_b1, gemm_tiles, LEV_QENC_B1, 4)
LEV_QDEFINE_GEMM (gemm_q4, gemm_tiles, LEV_QENC_Q4, 4)

/* As lev_dot_f32: eight lanes (two vectors), the same final sums, no fused multiply-add. */
static float
dot_f32 (const float *a, const float *b, size_t n)
{
  float32x4_t lo = vdupq_n_f32 (0.0f), hi = vdupq_n_f32 (0.0f);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    lo = vaddq_f32 (lo, vmulq_f32 (vld1q_f32 (a + i), vld1q_f32 (b + i)));
    hi = vaddq_f32 (hi, vmulq_f32 (vld1q_f32 (a + i + 4), vld1q_f32 (b + i + 4)));
  }
  float l[8];
  vst1q_f32 (l, lo);
  vst1q_f32 (l + 4, hi);
  float s = ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]));
  for (; i < n; i++)
    s += a[i] * b[i];
  return s;
}

/* y += a * x, as lev_axpy_f32. */
static void
axpy_f32 (float a, const float *x, float *y, size_t n)
{
  float32x4_t va = vdupq_n_f32 (a);
  size_t i = 0;
  for (; i + 4 <= n; i += 4)
    vst1q_f32 (y + i, vaddq_f32 (vld1q_f32 (y + i), vmulq_f32 (va, vld1q_f32 (x + i))));
  for (; i < n; i++)
    y[i] += a * x[i];
}

static void dot_heads (uint32_t type, const float *q, size_t q_stride, uint32_t nq, const void *k, size_t n,
                       float *out);
static void axpy_heads (uint32_t type, const float *a, uint32_t nq, const void *x, float *y, size_t y_stride,
                        size_t n);

static void attend_values (uint32_t type, const float *a, size_t a_stride, uint32_t nq, const void *v,
                           size_t v_stride, const float *vscale, size_t vscale_stride, uint32_t n_rows, float *y,
                           size_t y_stride, size_t n);

static const LevQKernels neon_kernels = { "neon", 0, { gemm_t2, gemm_t1, gemm_b1, gemm_q4 },
                                         { gemm_t2, gemm_t1, gemm_b1, gemm_q4 },
                                       dot_f32, axpy_f32, lev_dot_f16, lev_axpy_f16, lev_dot_i8, lev_axpy_i8,
                                       lev_sparse_row_dot, dot_heads, axpy_heads, attend_values,
                                       lev_exp_sum, lev_silu_mul, lev_quantize_absmax };

/* dot_heads / axpy_heads: one head at a time through this set's own helpers. */
static void
dot_heads (uint32_t type, const float *q, size_t q_stride, uint32_t nq, const void *k, size_t n, float *out)
{
  lev_qdot_heads_each (&neon_kernels, type, q, q_stride, nq, k, n, out);
}

static void
axpy_heads (uint32_t type, const float *a, uint32_t nq, const void *x, float *y, size_t y_stride, size_t n)
{
  lev_qaxpy_heads_each (&neon_kernels, type, a, nq, x, y, y_stride, n);
}

/* attend_values: one row at a time through axpy_heads. */
static void
attend_values (uint32_t type, const float *a, size_t a_stride, uint32_t nq, const void *v, size_t v_stride,
               const float *vscale, size_t vscale_stride, uint32_t n_rows, float *y, size_t y_stride, size_t n)
{
  lev_qattend_values_each (&neon_kernels, type, a, a_stride, nq, v, v_stride, vscale, vscale_stride, n_rows, y,
                           y_stride, n);
}

const LevQKernels *
lev_qkernels_neon (void)
{
#if defined(__linux__) && defined(HWCAP_ASIMDDP)
  if (!(getauxval (AT_HWCAP) & HWCAP_ASIMDDP))
    return NULL;
#endif
  return &neon_kernels;
}
#endif
