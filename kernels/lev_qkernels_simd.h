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

/* b1 with per-group scales, after a pair of 64-weight units u, u + 1: each of eight rows' int32 sums times its scale
 * (grouped 2: one per unit; 1: one per pair) into its float accumulator, and the int32 sums restart (ng scale groups a row).
 * Rows at or past nrows use row r's scales (computed, not stored). */
static inline __attribute__ ((always_inline)) void
lev_b1_fold_scales8 (int grouped, const LevQMatrix *w, size_t ng, size_t r, size_t nrows, size_t u,
                     __m512i (*acc)[2], __m512 *facc)
{
#pragma GCC unroll 8
  for (int i = 0; i < 8; i++) {
    const float *sc = w->scales + (r + ((size_t) i < nrows ? (size_t) i : 0)) * ng;
    if (grouped == 2) {
      facc[i] = _mm512_fmadd_ps (_mm512_cvtepi32_ps (acc[i][0]), _mm512_set1_ps (sc[u]), facc[i]);
      facc[i] = _mm512_fmadd_ps (_mm512_cvtepi32_ps (acc[i][1]), _mm512_set1_ps (sc[u + 1]), facc[i]);
    } else {
      facc[i] = _mm512_fmadd_ps (_mm512_cvtepi32_ps (_mm512_add_epi32 (acc[i][0], acc[i][1])),
                                 _mm512_set1_ps (sc[u / 2]), facc[i]);
    }
    acc[i][0] = acc[i][1] = _mm512_setzero_si512 ();
  }
}

/* b1, one token t: the results of rows r .. r + nrows - 1 (nrows <= 8) from their accumulators (ng scale groups a row). Per-group scales:
 * the float sums doubled less the scales times the token's group sums gs (weights are 2b - 1); one scale per row:
 * the doubled int32 sum less the activation sum, times the row's scale. Both times the token's scale. */
static inline __attribute__ ((always_inline)) void
lev_b1_store_rows8 (int grouped, const LevQMatrix *w, const LevQAct *act, size_t t, const float *gs,
                    size_t ng, __m512i (*acc)[2], const __m512 *facc, float *y, size_t ys, size_t r, size_t nrows)
{
#pragma GCC unroll 8
  for (int i = 0; i < 8; i++) {
    if ((size_t) i >= nrows)
      break;
    size_t row = r + (size_t) i;
    if (grouped) {
      float corr = lev_qdot16 (w->scales + row * ng, gs, ng);
      y[t * ys + row] = (2.0f * _mm512_reduce_add_ps (facc[i]) - corr) * act->scale[t];
    } else {
      int32_t dot = 2 * _mm512_reduce_add_epi32 (_mm512_add_epi32 (acc[i][0], acc[i][1])) - act->sum[t];
      y[t * ys + row] = (float) dot * (lev_qmatrix_scale (w, row) * act->scale[t]);
    }
  }
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
