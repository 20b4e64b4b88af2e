/* lev_qkernels_neon.c: AArch64 NEON (dotprod) packed kernels: codes unpacked to signed weights, vdotq_s32. */
#include "lev_qkernels_simd.h"
#include "lev_kernels.h"

#if defined(LEV_HAVE_NEON)
#include <arm_neon.h>
#include <math.h>
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
static void softmax (float *x, size_t n, float div);
static void silu_mul (float *g, const float *up, size_t n);
static float quantize_absmax (const float *x, size_t n, int8_t *q, int away);
static void hadamard (float *x, size_t n, const float *signs);

static const LevQKernels neon_kernels = { "neon", 0, { gemm_t2, gemm_t1, gemm_b1, gemm_q4 },
                                         { gemm_t2, gemm_t1, gemm_b1, gemm_q4 },
                                       dot_f32, axpy_f32, lev_dot_f16, lev_axpy_f16, lev_dot_i8, lev_axpy_i8,
                                       lev_sparse_row_dot, dot_heads, axpy_heads, attend_values, softmax,
                                       silu_mul, quantize_absmax, hadamard };

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

/* Four values of a compact row from index i, as floats (exact conversions). */
AI float32x4_t
load4 (uint32_t type, const void *p, size_t i)
{
  if (type == LEV_QVEC_F16)
    return vcvt_f32_f16 (vreinterpret_f16_u16 (vld1_u16 ((const uint16_t *) p + i)));
  if (type == LEV_QVEC_I8) {
    int8_t b[8] = { 0 };
    memcpy (b, (const int8_t *) p + i, 4);
    return vcvtq_f32_s32 (vmovl_s16 (vget_low_s16 (vmovl_s8 (vld1_s8 (b)))));
  }
  return vld1q_f32 ((const float *) p + i);
}

/* Value i of a compact row as a float. */
AI float
load1 (uint32_t type, const void *p, size_t i)
{
  if (type == LEV_QVEC_F16)
    return lev_f16_to_f32 (((const uint16_t *) p)[i]);
  if (type == LEV_QVEC_I8)
    return (float) ((const int8_t *) p)[i];
  return ((const float *) p)[i];
}

/* attend_values for one row type: four heads by eight columns stay in registers while every row passes; each
 * y element takes its rows' terms in row order, each the product of the weight and the value, added unfused. */
AI void
attend_values_type (uint32_t type, const float *a, size_t as, uint32_t nq, const uint8_t *v, size_t vs,
                    const float *vsc, size_t vscs, uint32_t rows, float *y, size_t ys, size_t n)
{
  for (uint32_t g0 = 0; g0 < nq; g0 += 4) {
    uint32_t m = nq - g0 < 4 ? nq - g0 : 4;
    const float *ag[4];
    for (uint32_t g = 0; g < 4; g++)
      ag[g] = a + (g0 + (g < m ? g : 0)) * as;          /* missing heads repeat head 0: computed, not stored */
    float *yg = y + g0 * ys;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      float32x4_t lo[4], hi[4];
#pragma GCC unroll 4
      for (int g = 0; g < 4; g++) {
        lo[g] = vld1q_f32 (yg + (g < (int) m ? g : 0) * ys + i);
        hi[g] = vld1q_f32 (yg + (g < (int) m ? g : 0) * ys + i + 4);
      }
      for (uint32_t s = 0; s < rows; s++) {
        const void *row = v + (size_t) s * vs;
        float32x4_t x0 = load4 (type, row, i), x1 = load4 (type, row, i + 4);
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) {
          float32x4_t w = vdupq_n_f32 (vsc ? ag[g][s] * vsc[(size_t) s * vscs] : ag[g][s]);
          lo[g] = vaddq_f32 (lo[g], vmulq_f32 (w, x0));
          hi[g] = vaddq_f32 (hi[g], vmulq_f32 (w, x1));
        }
      }
      for (uint32_t g = 0; g < m; g++) {
        vst1q_f32 (yg + g * ys + i, lo[g]);
        vst1q_f32 (yg + g * ys + i + 4, hi[g]);
      }
    }
    for (; i < n; i++)
      for (uint32_t g = 0; g < m; g++) {
        float acc = yg[g * ys + i];
        for (uint32_t s = 0; s < rows; s++)
          acc += (vsc ? ag[g][s] * vsc[(size_t) s * vscs] : ag[g][s]) * load1 (type, v + (size_t) s * vs, i);
        yg[g * ys + i] = acc;
      }
  }
}

static void
attend_values (uint32_t type, const float *a, size_t a_stride, uint32_t nq, const void *v, size_t v_stride,
               const float *vscale, size_t vscale_stride, uint32_t n_rows, float *y, size_t y_stride, size_t n)
{
  if (type == LEV_QVEC_F16)
    attend_values_type (LEV_QVEC_F16, a, a_stride, nq, v, v_stride, vscale, vscale_stride, n_rows, y, y_stride, n);
  else if (type == LEV_QVEC_I8)
    attend_values_type (LEV_QVEC_I8, a, a_stride, nq, v, v_stride, vscale, vscale_stride, n_rows, y, y_stride, n);
  else
    attend_values_type (LEV_QVEC_F32, a, a_stride, nq, v, v_stride, vscale, vscale_stride, n_rows, y, y_stride, n);
}

/* Two exponentials in double, the operations of lev_kernels.c's exp_clamped lane by lane. */
AI float64x2_t
exp2_clamped (float64x2_t t)
{
  const float64x2_t magic = vdupq_n_f64 (LEV_EXP_MAGIC);
  t = vbslq_f64 (vcltq_f64 (t, vdupq_n_f64 (LEV_EXP_MIN)), vdupq_n_f64 (LEV_EXP_MIN), t);   /* NaN stays */
  t = vbslq_f64 (vcgtq_f64 (t, vdupq_n_f64 (LEV_EXP_MAX)), vdupq_n_f64 (LEV_EXP_MAX), t);
  float64x2_t kd = vaddq_f64 (vmulq_f64 (t, vdupq_n_f64 (LEV_EXP_LOG2E)), magic);
  float64x2_t k = vsubq_f64 (kd, magic);
  float64x2_t r = vsubq_f64 (t, vmulq_f64 (k, vdupq_n_f64 (LEV_EXP_LN2)));
  static const double inv_fact[] = { 1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0,
                                     1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0 };
  float64x2_t p = vdupq_n_f64 (1.0 / 39916800.0);
#pragma GCC unroll 11
  for (int i = 0; i < 11; i++)
    p = vaddq_f64 (vmulq_f64 (p, r), vdupq_n_f64 (inv_fact[i]));
  uint64x2_t sbits = vshlq_n_u64 (vaddq_u64 (vsubq_u64 (vreinterpretq_u64_f64 (kd), vreinterpretq_u64_f64 (magic)),
                                             vdupq_n_u64 (1023)), 52);
  return vmulq_f64 (p, vreinterpretq_f64_u64 (sbits));
}

/* Four float exponentials through two pairs of doubles, each rounded once to float. */
AI float32x4_t
exp4_clamped (float32x4_t t)
{
  return vcombine_f32 (vcvt_f32_f64 (exp2_clamped (vcvt_f64_f32 (vget_low_f32 (t)))),
                       vcvt_f32_f64 (exp2_clamped (vcvt_high_f64_f32 (t))));
}

/* lev_exp_sum: lanes 0-3 and 4-7 of its eight in two vectors. */
static float
exp_sum (float *x, size_t n, float shift)
{
  float32x4_t sh = vdupq_n_f32 (shift), a0 = vdupq_n_f32 (0.0f), a1 = vdupq_n_f32 (0.0f);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    float32x4_t e0 = exp4_clamped (vsubq_f32 (vld1q_f32 (x + i), sh));
    float32x4_t e1 = exp4_clamped (vsubq_f32 (vld1q_f32 (x + i + 4), sh));
    vst1q_f32 (x + i, e0);
    vst1q_f32 (x + i + 4, e1);
    a0 = vaddq_f32 (a0, e0);
    a1 = vaddq_f32 (a1, e1);
  }
  float32x4_t pair = vaddq_f32 (a0, a1);                 /* lane k: acc[k] + acc[k + 4] */
  float s = (vgetq_lane_f32 (pair, 0) + vgetq_lane_f32 (pair, 1)) + (vgetq_lane_f32 (pair, 2) + vgetq_lane_f32 (pair, 3));
  for (; i < n; i += 4) {      /* the tail, four lanes at a time through a buffer, summed in order */
    float buf[4] = { 0 };
    size_t m = n - i < 4 ? n - i : 4;
    memcpy (buf, x + i, m * sizeof (float));
    vst1q_f32 (buf, exp4_clamped (vsubq_f32 (vld1q_f32 (buf), sh)));
    for (size_t k = 0; k < m; k++) {
      x[i + k] = buf[k];
      s += buf[k];
    }
  }
  return s;
}

/* lev_softmax: vmaxnm skips a NaN as the scalar comparison does. */
static void
softmax (float *x, size_t n, float div)
{
  float32x4_t dv = vdupq_n_f32 (div), m = vdupq_n_f32 (-INFINITY);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    float32x4_t v = vdivq_f32 (vld1q_f32 (x + i), dv);
    vst1q_f32 (x + i, v);
    m = vmaxnmq_f32 (m, v);
  }
  float mx = vmaxnmvq_f32 (m);
  for (; i < n; i++) {
    x[i] = x[i] / div;
    mx = x[i] > mx ? x[i] : mx;
  }
  float sum = exp_sum (x, n, mx);
  float32x4_t sv = vdupq_n_f32 (sum);
  for (i = 0; i + 4 <= n; i += 4)
    vst1q_f32 (x + i, vdivq_f32 (vld1q_f32 (x + i), sv));
  for (; i < n; i++)
    x[i] /= sum;
}

/* lev_silu_mul, four values at a time. */
static void
silu_mul (float *g, const float *up, size_t n)
{
  const float32x4_t one = vdupq_n_f32 (1.0f);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    float32x4_t v = vld1q_f32 (g + i);
    vst1q_f32 (g + i, vmulq_f32 (vdivq_f32 (v, vaddq_f32 (one, exp4_clamped (vnegq_f32 (v)))), vld1q_f32 (up + i)));
  }
  if (i < n) {
    float buf[4] = { 0 };
    memcpy (buf, g + i, (n - i) * sizeof (float));
    vst1q_f32 (buf, exp4_clamped (vnegq_f32 (vld1q_f32 (buf))));
    for (size_t k = i; k < n; k++)
      g[k] = g[k] / (1.0f + buf[k - i]) * up[k];
  }
}

/* lev_quantize_absmax: vmaxnm skips a NaN as the scalar comparison does; vrndn / vrnda are its two roundings. */
static float
quantize_absmax (const float *x, size_t n, int8_t *q, int away)
{
  float32x4_t m = vdupq_n_f32 (0.0f);
  size_t i = 0;
  for (; i + 4 <= n; i += 4)
    m = vmaxnmq_f32 (m, vabsq_f32 (vld1q_f32 (x + i)));
  float amax = vmaxnmvq_f32 (m);
  for (; i < n; i++) {
    float a = x[i] < 0.0f ? -x[i] : x[i];
    amax = a > amax ? a : amax;
  }
  float s = 127.0f / (amax > 1e-5f ? amax : 1e-5f);
  const float32x4_t sv = vdupq_n_f32 (s), lo = vdupq_n_f32 (-128.0f), hi = vdupq_n_f32 (127.0f);
  i = 0;
  for (; i + 8 <= n; i += 8) {
    int32x4_t c[2];
    for (int h = 0; h < 2; h++) {
      float32x4_t v = vmulq_f32 (vld1q_f32 (x + i + 4 * h), sv);
      float32x4_t r = away ? vrndaq_f32 (v) : vrndnq_f32 (v);
      uint32x4_t ge = vcgeq_f32 (r, lo);                /* a NaN fails it: -128 */
      r = vbslq_f32 (ge, vbslq_f32 (vcleq_f32 (r, hi), r, hi), lo);
      c[h] = vcvtq_s32_f32 (r);
    }
    vst1_s8 (q + i, vqmovn_s16 (vcombine_s16 (vqmovn_s32 (c[0]), vqmovn_s32 (c[1]))));
  }
  for (; i < n; i++) {
    float v = x[i] * s, r = away ? roundf (v) : (v + 12582912.0f) - 12582912.0f;
    q[i] = (int8_t) (r >= -128.0f ? (r <= 127.0f ? r : 127.0f) : -128.0f);
  }
  return 1.0f / s;
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
/* lev_hadamard with four lanes: stages 1 and 2 in registers (lanes with bit h clear a + t, the others t - a, t the
 * lane h away), the same operations on the same values as the scalar butterflies. */
static void
hadamard (float *x, size_t n, const float *signs)
{
  size_t i = 0;
  for (; i + 4 <= n; i += 4)
    vst1q_f32 (x + i, vmulq_f32 (vld1q_f32 (x + i), vld1q_f32 (signs + i)));
  for (; i < n; i++)
    x[i] *= signs[i];
  static const uint32_t m1[4] = { 0, ~0u, 0, ~0u }, m2[4] = { 0, 0, ~0u, ~0u };
  uint32x4_t odd1 = vld1q_u32 (m1), odd2 = vld1q_u32 (m2);
  size_t off = 0;
  for (int bit = (int) (sizeof (size_t) * 8) - 1; bit >= 0; bit--) {
    size_t b = (size_t) 1 << bit;
    if (!(n & b))
      continue;
    float *v = x + off;
    float s = lev_hadamard_scale (b);
    off += b;
    if (b < 4) {
      lev_wht_block (v, b);
      for (size_t j = 0; j < b; j++)
        v[j] *= s;
      continue;
    }
    for (size_t j = 0; j < b; j += 4) {
      float32x4_t a = vld1q_f32 (v + j), t;
      t = vrev64q_f32 (a);
      a = vbslq_f32 (odd1, vsubq_f32 (t, a), vaddq_f32 (a, t));
      t = vextq_f32 (a, a, 2);
      a = vbslq_f32 (odd2, vsubq_f32 (t, a), vaddq_f32 (a, t));
      vst1q_f32 (v + j, a);
    }
    for (size_t h = 4; h < b; h *= 2)
      for (size_t i0 = 0; i0 < b; i0 += 2 * h)
        for (size_t j = i0; j < i0 + h; j += 4) {
          float32x4_t a = vld1q_f32 (v + j), c = vld1q_f32 (v + j + h);
          vst1q_f32 (v + j, vaddq_f32 (a, c));
          vst1q_f32 (v + j + h, vsubq_f32 (a, c));
        }
    float32x4_t sv = vdupq_n_f32 (s);
    for (size_t j = 0; j < b; j += 4)
      vst1q_f32 (v + j, vmulq_f32 (vld1q_f32 (v + j), sv));
  }
}

#endif
