/* lev_qkernels_i8mm.c: AArch64 int8 matrix multiply (ARMv8.6 i8mm) token tiles: two rows by two tokens per smmla;
 * one token (and an odd last row) through sdot as in lev_qkernels_neondot.c. Built with its own -march; chosen at
 * run time from AT_HWCAP2. */
#include "lev_kernels.h"

#if defined(LEV_HAVE_I8MM)
#include <arm_neon.h>
#if defined(__linux__)
#include <sys/auxv.h>
#endif

#define LEV_NEON_DOT vdotq_s32
#include "lev_qkernels_neon_gemm.h"

/* The first (lo) or second eight bytes of a and of b in one vector: a 2x8 matrix for smmla. */
AI int8x16_t
pair_lo (int8x16_t a, int8x16_t b)
{
  return vreinterpretq_s8_s64 (vzip1q_s64 (vreinterpretq_s64_s8 (a), vreinterpretq_s64_s8 (b)));
}

AI int8x16_t
pair_hi (int8x16_t a, int8x16_t b)
{
  return vreinterpretq_s8_s64 (vzip2q_s64 (vreinterpretq_s64_s8 (a), vreinterpretq_s64_s8 (b)));
}

/* acc (lanes: row 0 x token 0, row 0 x token 1, row 1 x token 0, row 1 x token 1) plus the products of sixteen
 * weights of two rows (w0, w1) and sixteen activations of two tokens (x0, x1). */
AI int32x4_t
mm_step (int32x4_t acc, int8x16_t wl, int8x16_t wh, const int8_t *x0, const int8_t *x1)
{
  int8x16_t a = vld1q_s8 (x0), b = vld1q_s8 (x1);
  return vmmlaq_s32 (vmmlaq_s32 (acc, wl, pair_lo (a, b)), wh, pair_hi (a, b));
}

/* Rows [r0, r1) times tokens [t0, t0 + TT): for an even TT, two rows and two tokens at a time through smmla (every
 * integer sum exact; per-group scales applied as the scalar reference does, unfused, groups in order); one token
 * and an odd last row through gemm_tiles. */
AI void
mm_tiles (uint32_t enc, int grouped, int TT, const LevQMatrix *w, const LevQAct *act, size_t t0, float *y,
          size_t ys, size_t r0, size_t r1)
{
  if (TT % 2) {
    gemm_tiles (enc, grouped, TT, w, act, t0, y, ys, r0, r1);
    return;
  }
  const int nf = n_fields (enc), NP = TT / 2;
  size_t n_chunks = enc == LEV_QENC_B1 ? w->cols_pad / 16 : w->row_bytes / 32;
  size_t per_group = enc == LEV_QENC_B1 && grouped ? 8 / (size_t) grouped : 1;
  size_t ng = !grouped ? 1 : enc == LEV_QENC_B1 ? n_chunks / per_group : n_chunks * (size_t) grouped;
  const int8_t *xs[4];
#pragma GCC unroll 8
  for (int t = 0; t < TT; t++)
    xs[t] = act->q + (t0 + t) * act->stride;
  size_t r = r0;
  for (; r + 2 <= r1; r += 2) {
    const uint8_t *p0 = w->codes + r * w->row_bytes, *p1 = p0 + w->row_bytes;
    const float *sc0 = grouped ? w->scales + r * ng : NULL, *sc1 = grouped ? sc0 + ng : NULL;
    int32x4_t acc[2][2];
    float32x4_t facc[2];
#pragma GCC unroll 4
    for (int q = 0; q < NP; q++) {
      acc[q][0] = acc[q][1] = vdupq_n_s32 (0);
      facc[q] = vdupq_n_f32 (0.0f);
    }
    for (size_t c = 0; c < n_chunks; c++) {
      if (enc == LEV_QENC_B1) {
        int8x16_t w0 = b1_weights (p0 + 2 * c), w1 = b1_weights (p1 + 2 * c);
        int8x16_t wl = pair_lo (w0, w1), wh = pair_hi (w0, w1);
#pragma GCC unroll 4
        for (int q = 0; q < NP; q++)
          acc[q][0] = mm_step (acc[q][0], wl, wh, xs[2 * q] + 16 * c, xs[2 * q + 1] + 16 * c);
      } else {
#pragma GCC unroll 8
        for (int h = 0; h < 2; h++) {
          int8x16_t f0[5], f1[5];
          decode (enc, vld1q_u8 (p0 + 32 * c + 16 * h), f0);
          decode (enc, vld1q_u8 (p1 + 32 * c + 16 * h), f1);
#pragma GCC unroll 8
          for (int k = 0; k < nf; k++) {
            const int a = grouped == 2 && 2 * k >= nf;
            int8x16_t wl = pair_lo (f0[k], f1[k]), wh = pair_hi (f0[k], f1[k]);
            size_t off = 32 * (nf * c + (size_t) k) + 16 * (size_t) h;
#pragma GCC unroll 4
            for (int q = 0; q < NP; q++)
              acc[q][a] = mm_step (acc[q][a], wl, wh, xs[2 * q] + off, xs[2 * q + 1] + off);
          }
        }
      }
      if (grouped && c % per_group == per_group - 1) {
        size_t g0 = enc == LEV_QENC_B1 ? c / per_group : c * (size_t) grouped;
        int n_here = enc == LEV_QENC_B1 ? 1 : grouped;
#pragma GCC unroll 2
        for (int a = 0; a < n_here; a++) {
          float32x2_t s0 = vdup_n_f32 (sc0[g0 + (size_t) a]), s1 = vdup_n_f32 (sc1[g0 + (size_t) a]);
          float32x4_t scv = vcombine_f32 (s0, s1);
#pragma GCC unroll 4
          for (int q = 0; q < NP; q++) {
            facc[q] = vaddq_f32 (facc[q], vmulq_f32 (vcvtq_f32_s32 (acc[q][a]), scv));
            acc[q][a] = vdupq_n_s32 (0);
          }
        }
      }
    }
#pragma GCC unroll 4
    for (int q = 0; q < NP; q++) {
      size_t ta = t0 + 2 * (size_t) q, tb = ta + 1;
      if (grouped) {
        y[ta * ys + r] = vgetq_lane_f32 (facc[q], 0) * act->scale[ta];
        y[tb * ys + r] = vgetq_lane_f32 (facc[q], 1) * act->scale[tb];
        y[ta * ys + r + 1] = vgetq_lane_f32 (facc[q], 2) * act->scale[ta];
        y[tb * ys + r + 1] = vgetq_lane_f32 (facc[q], 3) * act->scale[tb];
      } else {
        y[ta * ys + r] = (float) vgetq_lane_s32 (acc[q][0], 0) * (lev_qmatrix_scale (w, r) * act->scale[ta]);
        y[tb * ys + r] = (float) vgetq_lane_s32 (acc[q][0], 1) * (lev_qmatrix_scale (w, r) * act->scale[tb]);
        y[ta * ys + r + 1] = (float) vgetq_lane_s32 (acc[q][0], 2) * (lev_qmatrix_scale (w, r + 1) * act->scale[ta]);
        y[tb * ys + r + 1] = (float) vgetq_lane_s32 (acc[q][0], 3) * (lev_qmatrix_scale (w, r + 1) * act->scale[tb]);
      }
    }
  }
  if (r < r1)
    gemm_tiles (enc, grouped, TT, w, act, t0, y, ys, r, r1);
}

LEV_QDEFINE_GEMM (gemm_t2, mm_tiles, LEV_QENC_T2, 4)
LEV_QDEFINE_GEMM (gemm_t1, mm_tiles, LEV_QENC_T1, 4)
LEV_QDEFINE_GEMM (gemm_b1, mm_tiles, LEV_QENC_B1, 4)
LEV_QDEFINE_GEMM (gemm_q4, mm_tiles, LEV_QENC_Q4, 4)

static const LevQKernels i8mm_kernels = { "i8mm", 0, { gemm_t2, gemm_t1, gemm_b1, gemm_q4 },
                                          { gemm_t2, gemm_t1, gemm_b1, gemm_q4 },
                                          lev_neon_dot_f32, lev_neon_axpy_f32, lev_dot_f16, lev_axpy_f16,
                                          lev_dot_i8, lev_axpy_i8, lev_sparse_row_dot, lev_neon_dot_heads,
                                          lev_neon_axpy_heads, lev_neon_attend_values, lev_neon_softmax,
                                          lev_neon_silu_mul, lev_neon_quantize_absmax,
                                             lev_neon_hadamard };

const LevQKernels *
lev_qkernels_i8mm (void)
{
#if defined(__linux__)
#if !defined(HWCAP_ASIMDDP)
#define HWCAP_ASIMDDP (1ul << 20)
#endif
#if !defined(HWCAP2_I8MM)
#define HWCAP2_I8MM (1ul << 13)
#endif
  if (!(getauxval (AT_HWCAP) & HWCAP_ASIMDDP) || !(getauxval (AT_HWCAP2) & HWCAP2_I8MM))
    return NULL;
#endif
  return &i8mm_kernels;
}
#endif
