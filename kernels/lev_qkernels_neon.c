/* lev_qkernels_neon.c: NEON packed kernels for every ARM core with NEON (ARMv8.0 AArch64, ARMv7 + NEON): codes
 * unpacked to signed weights, widening multiplies (vmull_s8) and pairwise adds (vpadalq_s16) instead of sdot; on
 * AArch64 also the attention and activation helpers that the dotprod and i8mm sets share. */
#include "lev_kernels.h"

#if defined(LEV_HAVE_NEON)
#include <arm_neon.h>
#include <math.h>
#include <string.h>
#if defined(__linux__)
#include <sys/auxv.h>
#endif

/* acc plus the sixteen products of w and x: each product (at most 8 * 128 in magnitude) and each pair of them is
 * exact in 16 bits; the pairs are then added pairwise into the 32-bit lanes. */
static inline __attribute__ ((always_inline)) int32x4_t
dot_widening (int32x4_t acc, int8x16_t w, int8x16_t x)
{
#if defined(__aarch64__)
  int16x8_t p = vmlal_high_s8 (vmull_s8 (vget_low_s8 (w), vget_low_s8 (x)), w, x);
#else
  int16x8_t p = vmlal_s8 (vmull_s8 (vget_low_s8 (w), vget_low_s8 (x)), vget_high_s8 (w), vget_high_s8 (x));
#endif
  return vpadalq_s16 (acc, p);
}
#define LEV_NEON_DOT dot_widening
#include "lev_qkernels_neon_gemm.h"

LEV_QDEFINE_GEMM (gemm_t2, gemm_tiles, LEV_QENC_T2, 4)
LEV_QDEFINE_GEMM (gemm_t1, gemm_tiles, LEV_QENC_T1, 4)
LEV_QDEFINE_GEMM (gemm_b1, gemm_tiles, LEV_QENC_B1, 4)
LEV_QDEFINE_GEMM (gemm_q4, gemm_tiles, LEV_QENC_Q4, 4)

#if defined(__aarch64__)
static const LevQKernels neon_kernels = { "neon", 0, { gemm_t2, gemm_t1, gemm_b1, gemm_q4 },
                                          { gemm_t2, gemm_t1, gemm_b1, gemm_q4 },
                                          lev_neon_dot_f32, lev_neon_axpy_f32, lev_dot_f16, lev_axpy_f16, lev_dot_i8,
                                          lev_axpy_i8, lev_sparse_row_dot, lev_neon_dot_heads, lev_neon_axpy_heads,
                                          lev_neon_attend_values, lev_neon_softmax, lev_neon_silu_mul,
                                          lev_neon_quantize_absmax, lev_neon_hadamard };

float
lev_neon_dot_f32 (const float *a, const float *b, size_t n)
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

void
lev_neon_axpy_f32 (float a, const float *x, float *y, size_t n)
{
  float32x4_t va = vdupq_n_f32 (a);
  size_t i = 0;
  for (; i + 4 <= n; i += 4)
    vst1q_f32 (y + i, vaddq_f32 (vld1q_f32 (y + i), vmulq_f32 (va, vld1q_f32 (x + i))));
  for (; i < n; i++)
    y[i] += a * x[i];
}

/* dot_heads / axpy_heads: one head at a time through this set's own helpers. */
void
lev_neon_dot_heads (uint32_t type, const float *q, size_t q_stride, uint32_t nq, const void *k, size_t n, float *out)
{
  lev_qdot_heads_each (&neon_kernels, type, q, q_stride, nq, k, n, out);
}

void
lev_neon_axpy_heads (uint32_t type, const float *a, uint32_t nq, const void *x, float *y, size_t y_stride, size_t n)
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

void
lev_neon_attend_values (uint32_t type, const float *a, size_t a_stride, uint32_t nq, const void *v, size_t v_stride,
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
void
lev_neon_softmax (float *x, size_t n, float div)
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
void
lev_neon_silu_mul (float *g, const float *up, size_t n)
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
float
lev_neon_quantize_absmax (const float *x, size_t n, int8_t *q, int away)
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

#else
/* ARMv7: NEON for the integer gemm only; the float helpers are the scalar ones (ARMv7 NEON flushes subnormals to
 * zero, so its float lanes cannot match them to the bit). */
static void dot_heads (uint32_t type, const float *q, size_t q_stride, uint32_t nq, const void *k, size_t n,
                       float *out);
static void axpy_heads (uint32_t type, const float *a, uint32_t nq, const void *x, float *y, size_t y_stride,
                        size_t n);
static void attend_values (uint32_t type, const float *a, size_t a_stride, uint32_t nq, const void *v,
                           size_t v_stride, const float *vscale, size_t vscale_stride, uint32_t n_rows, float *y,
                           size_t y_stride, size_t n);

static const LevQKernels neon_kernels = { "neon", 0, { gemm_t2, gemm_t1, gemm_b1, gemm_q4 },
                                          { gemm_t2, gemm_t1, gemm_b1, gemm_q4 },
                                          lev_dot_f32, lev_axpy_f32, lev_dot_f16, lev_axpy_f16, lev_dot_i8,
                                          lev_axpy_i8, lev_sparse_row_dot, dot_heads, axpy_heads, attend_values,
                                          lev_softmax, lev_silu_mul, lev_quantize_absmax, lev_hadamard };

/* dot_heads / axpy_heads / attend_values: one head, one row at a time through the scalar helpers. */
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

static void
attend_values (uint32_t type, const float *a, size_t a_stride, uint32_t nq, const void *v, size_t v_stride,
               const float *vscale, size_t vscale_stride, uint32_t n_rows, float *y, size_t y_stride, size_t n)
{
  lev_qattend_values_each (&neon_kernels, type, a, a_stride, nq, v, v_stride, vscale, vscale_stride, n_rows, y,
                           y_stride, n);
}
#endif

const LevQKernels *
lev_qkernels_neon (void)
{
#if defined(__linux__) && defined(__aarch64__) && defined(HWCAP_ASIMD)
  if (!(getauxval (AT_HWCAP) & HWCAP_ASIMD))
    return NULL;
#elif defined(__linux__) && !defined(__aarch64__)
#if defined(HWCAP_ARM_NEON)
  if (!(getauxval (AT_HWCAP) & HWCAP_ARM_NEON))
#else
  if (!(getauxval (AT_HWCAP) & (1ul << 12)))                   /* the kernel's HWCAP_NEON */
#endif
    return NULL;
#endif
  return &neon_kernels;
}
#if defined(__aarch64__)
/* lev_wht_block with four lanes: stages 1 and 2 in registers (lanes with bit h clear a + t, the others t - a, t the
 * lane h away), the same operations on the same values as the scalar butterflies. */
static void
wht_block4 (float *v, size_t b)
{
  if (b < 4) {
    lev_wht_block (v, b);
    return;
  }
  static const uint32_t m1[4] = { 0, ~0u, 0, ~0u }, m2[4] = { 0, 0, ~0u, ~0u };
  uint32x4_t odd1 = vld1q_u32 (m1), odd2 = vld1q_u32 (m2);
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
}

void
lev_neon_hadamard (float *x, size_t n, const float *signs)
{
  lev_hadamard_by_blocks (x, n, signs, wht_block4);
}

#endif

#endif
