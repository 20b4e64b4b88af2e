/* lev_qkernels_neon_gemm.h: the NEON packed gemm shared by the NEON kernel files, its 16-lane dot step a macro. */
#pragma once
/* The including file defines LEV_NEON_DOT (acc, w, x): acc (int32x4_t) plus the sixteen products of w and x
 * (int8x16_t), each lane holding an exact partial sum: sdot (lev_qkernels_neondot.c, _i8mm.c) or widening
 * multiplies and pairwise adds (lev_qkernels_neon.c: ARMv8.0 and ARMv7 NEON). */

#include "lev_qkernels_simd.h"

#include <arm_neon.h>

#define AI static inline __attribute__ ((always_inline))

/* The sum of the four lanes. */
AI int32_t
lev_neon_hsum_s32 (int32x4_t v)
{
#if defined(__aarch64__)
  return vaddvq_s32 (v);
#else
  int32x2_t p = vadd_s32 (vget_low_s32 (v), vget_high_s32 (v));
  return vget_lane_s32 (vpadd_s32 (p, p), 0);
#endif
}

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
 * (grouped) each block's exact integer sums only need converting and scaling into a float accumulator (AArch64:
 * vector lanes, vfmaq; ARMv7, whose NEON flushes subnormals: the scalar reference's own float steps). */
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
#if defined(__aarch64__)
    float32x4_t facc[4];
#else
    float facc[4];
#endif
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++) {
      acc[t][0] = acc[t][1] = vdupq_n_s32 (0);
#if defined(__aarch64__)
      facc[t] = vdupq_n_f32 (0.0f);
#else
      facc[t] = 0.0f;
#endif
    }
    for (size_t c = 0; c < n_chunks; c++) {
      if (enc == LEV_QENC_B1) {
        int8x16_t wv = b1_weights (p + 2 * c);
#pragma GCC unroll 8
        for (int t = 0; t < TT; t++)
          acc[t][0] = LEV_NEON_DOT (acc[t][0], wv, vld1q_s8 (xs[t] + 16 * c));
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
              acc[t][a] = LEV_NEON_DOT (acc[t][a], f[k], vld1q_s8 (xs[t] + 32 * (nf * c + k) + 16 * h));
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
#if defined(__aarch64__)
            facc[t] = vfmaq_n_f32 (facc[t], vcvtq_f32_s32 (acc[t][a]), sc[g0 + (size_t) a]);
#else
            facc[t] += (float) lev_neon_hsum_s32 (acc[t][a]) * sc[g0 + (size_t) a];
#endif
            acc[t][a] = vdupq_n_s32 (0);
          }
      }
    }
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++) {
#if defined(__aarch64__)
      float fsum = vaddvq_f32 (facc[t]);
#else
      float fsum = facc[t];
#endif
      y[(t0 + t) * ys + r] = grouped ? fsum * act->scale[t0 + t]
                                     : (float) lev_neon_hsum_s32 (acc[t][0])
                                         * (lev_qmatrix_scale (w, r) * act->scale[t0 + t]);
    }
  }
}
