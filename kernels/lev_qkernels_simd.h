/* lev_qkernels_simd.h: pieces shared by the SIMD kernel files (lev_qkernels_avx2.c, _avx512.c, _neon.c). */
#pragma once

#include "lev_qkernels.h"

#if defined(__AVX512F__)
#include <immintrin.h>

/* Dot product of n floats, sixteen lanes, a masked tail (the per-group offset correction: scales times group sums of
 * the activations). */
static inline __attribute__ ((always_inline)) float
lev_qdot16 (const float *a, const float *b, size_t n)
{
  __m512 acc = _mm512_setzero_ps ();
  for (size_t i = 0; i < n; i += 16) {
    __mmask16 m = n - i >= 16 ? (__mmask16) 0xffff : (__mmask16) ((1u << (n - i)) - 1);
    acc = _mm512_fmadd_ps (_mm512_maskz_loadu_ps (m, a + i), _mm512_maskz_loadu_ps (m, b + i), acc);
  }
  return _mm512_reduce_add_ps (acc);
}
#endif

/* Runs TILES (enc, grouped, tt, w, act, t0, y, ys, r0, r1) over the act->n tokens in tiles of MAXT (8 or 4)
 * tokens, then one tile each of 4 (when MAXT is 8), 2 and 1 for the rest; grouped (0: one scale per row or tensor,
 * 1: one per block, 2: one per half block) is a constant, so each tile size and scale layout gets its own inlined
 * copy. */
#define LEV_QFOR_TOKEN_TILES(TILES, ENC, GROUPED, MAXT) \
  do { \
    size_t t0_ = 0, n_ = act->n; \
    for (; t0_ + (MAXT) <= n_; t0_ += (MAXT)) \
      TILES (ENC, GROUPED, MAXT, w, act, t0_, y, ys, r0, r1); \
    if ((MAXT) > 4 && n_ - t0_ >= 4) { \
      TILES (ENC, GROUPED, 4, w, act, t0_, y, ys, r0, r1); \
      t0_ += 4; \
    } \
    if (n_ - t0_ >= 2) { \
      TILES (ENC, GROUPED, 2, w, act, t0_, y, ys, r0, r1); \
      t0_ += 2; \
    } \
    if (n_ - t0_ >= 1) \
      TILES (ENC, GROUPED, 1, w, act, t0_, y, ys, r0, r1); \
  } while (0)

/* One token (t0) over rows [r0, r1): DECODE (ENC, GROUPED, w, act, t0, gs, y, ys, r) for every whole run of RUN rows
 * from r0, gs the token's activation sum of every scale group, then the rows past the last whole run through
 * TILES (ENC, GROUPED, 1, ...). */
#define LEV_QDECODE_RUNS(DECODE, RUN, TILES, ENC, GROUPED) \
  do { \
    float gs_[LEV_QMAX_GROUPS]; \
    if (GROUPED) \
      lev_qact_group_sums (act, t0, 1, lev_qmatrix_group_weights (w), lev_qmatrix_groups (w), gs_); \
    size_t r_ = r0; \
    for (; r_ + (RUN) <= r1; r_ += (RUN)) \
      DECODE (ENC, GROUPED, w, act, t0, gs_, y, ys, r_); \
    if (r_ < r1) \
      TILES (ENC, GROUPED, 1, w, act, t0, y, ys, r_, r1); \
  } while (0)

/* Defines the gemm entry of one encoding: TILES with one scale per row or tensor, or with per-group scales (half
 * blocks for t2 and b1 only). */
#define LEV_QDEFINE_GEMM(NAME, TILES, ENC, MAXT) \
  static void NAME (const LevQMatrix *w, const LevQAct *act, float *y, size_t ys, size_t r0, size_t r1) \
  { \
    if (!lev_qmatrix_grouped (w)) \
      LEV_QFOR_TOKEN_TILES (TILES, ENC, 0, MAXT); \
    else if (((ENC) == LEV_QENC_T2 || (ENC) == LEV_QENC_B1) \
             && 2 * lev_qmatrix_group_weights (w) == lev_qenc_block_weights (ENC)) \
      LEV_QFOR_TOKEN_TILES (TILES, ENC, 2, MAXT); \
    else \
      LEV_QFOR_TOKEN_TILES (TILES, ENC, 1, MAXT); \
  }
