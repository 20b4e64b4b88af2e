/* lev_qkernels_simd.h: pieces shared by the SIMD kernel files (lev_qkernels_avx2.c, _avx512.c, _neon.c). */
#pragma once

#include "lev_qkernels.h"

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
