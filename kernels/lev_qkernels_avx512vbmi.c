/* lev_qkernels_avx512vbmi.c: one-token kernels with AVX-512 VBMI and GFNI: t1 with each trit field looked up from
 * the stored byte in a 256-entry table (two vpermi2b and a blend) instead of decoded by compares; b1 with each sign
 * bit spread to a byte by one Galois-field affine instruction instead of through a mask register. */
#include "lev_qkernels_simd.h"

#if defined(LEV_HAVE_AVX512VBMI)
#include <immintrin.h>
#include <string.h>

#define AI static inline __attribute__ ((always_inline))

/* Code (0..2) of trit i of a stored t1 byte s: the top trit of (t * 3^i) mod 256, t = s XOR 0x80 (lev_qkernels.c). */
#define T1_POW(i) ((i) == 0 ? 1 : (i) == 1 ? 3 : (i) == 2 ? 9 : (i) == 3 ? 27 : 81)
#define T1_CODE(i, s) ((((((unsigned) (s) ^ 0x80u) * T1_POW (i)) & 0xffu) * 3u) >> 8)
#define T1_R1(i, s) T1_CODE (i, s)
#define T1_R4(i, s) T1_R1 (i, s), T1_R1 (i, (s) + 1), T1_R1 (i, (s) + 2), T1_R1 (i, (s) + 3)
#define T1_R16(i, s) T1_R4 (i, s), T1_R4 (i, (s) + 4), T1_R4 (i, (s) + 8), T1_R4 (i, (s) + 12)
#define T1_R64(i, s) T1_R16 (i, s), T1_R16 (i, (s) + 16), T1_R16 (i, (s) + 32), T1_R16 (i, (s) + 48)
#define T1_R256(i) T1_R64 (i, 0), T1_R64 (i, 64), T1_R64 (i, 128), T1_R64 (i, 192)

/* t1_table[i][s]: the code of trit i of stored byte s. */
static const uint8_t t1_table[5][256] __attribute__ ((aligned (64))) = {
  { T1_R256 (0) }, { T1_R256 (1) }, { T1_R256 (2) }, { T1_R256 (3) }, { T1_R256 (4) },
};

/* Rows r and r + 1 (or r twice when r + 1 is past the range: the upper half is dropped) times token t (q2 layout),
 * as the AVX-512 decode_rows does it for one pair; gs holds the token's group sums when grouped (one scale per
 * 160-weight block). */
AI void
t1_pair (int grouped, const LevQMatrix *w, const LevQAct *act, size_t t, const float *gs, float *y, size_t ys,
         size_t r, int two)
{
  const size_t rbytes = w->row_bytes, n_chunks = rbytes / 32, ng = lev_qmatrix_groups (w);
  const int8_t *x = act->q2 + t * 2 * act->stride;
  const uint8_t *p0 = w->codes + r * rbytes, *p1 = two ? p0 + rbytes : p0;
  const int prefetch = r + 6 <= w->rows;       /* the pair two pairs ahead exists */
  const uint8_t *pf = prefetch ? p0 + 4 * rbytes : p0;
  __m512i acc[5];
  __m512 facc = _mm512_setzero_ps ();
#pragma GCC unroll 5
  for (int k = 0; k < 5; k++)
    acc[k] = _mm512_setzero_si512 ();
  for (size_t c = 0; c < n_chunks; c++) {
    if (prefetch)                             /* the pair two pairs ahead: one line a chunk */
      _mm_prefetch ((const char *) pf + 64 * c, _MM_HINT_T0);
    __m512i s = _mm512_inserti64x4 (_mm512_castsi256_si512 (_mm256_loadu_si256 ((const __m256i *) (p0 + 32 * c))),
                                    _mm256_loadu_si256 ((const __m256i *) (p1 + 32 * c)), 1);
    __mmask64 hi = _mm512_movepi8_mask (s);   /* stored bytes 128..255: the upper half of each table */
#pragma GCC unroll 5
    for (int k = 0; k < 5; k++) {
      const uint8_t *tb = t1_table[k];
      __m512i lo = _mm512_permutex2var_epi8 (_mm512_load_si512 (tb), s, _mm512_load_si512 (tb + 64));
      __m512i up = _mm512_permutex2var_epi8 (_mm512_load_si512 (tb + 128), s, _mm512_load_si512 (tb + 192));
      __m512i f = _mm512_mask_blend_epi8 (hi, lo, up);
      acc[k] = _mm512_dpbusd_epi32 (acc[k], f, _mm512_loadu_si512 (x + 64 * (5 * c + (size_t) k)));
    }
    if (grouped) {
      __m512 sv = _mm512_castpd_ps (_mm512_insertf64x4 (
          _mm512_castps_pd (_mm512_set1_ps (w->scales[r * ng + c])),
          _mm256_castps_pd (_mm256_set1_ps (w->scales[(two ? r + 1 : r) * ng + c])), 1));
      __m512i sum = _mm512_add_epi32 (_mm512_add_epi32 (acc[0], acc[1]),
                                      _mm512_add_epi32 (_mm512_add_epi32 (acc[2], acc[3]), acc[4]));
      facc = _mm512_fmadd_ps (_mm512_cvtepi32_ps (sum), sv, facc);
#pragma GCC unroll 5
      for (int k = 0; k < 5; k++)
        acc[k] = _mm512_setzero_si512 ();
    }
  }
  __m512i sum = _mm512_add_epi32 (_mm512_add_epi32 (acc[0], acc[1]),
                                  _mm512_add_epi32 (_mm512_add_epi32 (acc[2], acc[3]), acc[4]));
  for (int h = 0; h < 1 + two; h++) {
    size_t row = r + (size_t) h;
    __mmask16 half = h ? (__mmask16) 0xff00 : (__mmask16) 0x00ff;
    if (grouped) {
      float corr = lev_qdot16 (w->scales + row * ng, gs, ng);
      y[t * ys + row] = (_mm512_mask_reduce_add_ps (half, facc) - corr) * act->scale[t];
    } else {
      int32_t dot = _mm512_mask_reduce_add_epi32 (half, sum) - act->sum[t];
      y[t * ys + row] = (float) dot * (lev_qmatrix_scale (w, row) * act->scale[t]);
    }
  }
}

/* All rows of [r0, r1) for one token, in pairs. */
AI void
t1_rows (int grouped, const LevQMatrix *w, const LevQAct *act, size_t t, float *y, size_t ys, size_t r0, size_t r1)
{
  float gs[LEV_QMAX_GROUPS];
  if (grouped)
    lev_qact_group_sums (act, t, 1, lev_qmatrix_group_weights (w), lev_qmatrix_groups (w), gs);
  for (size_t r = r0; r < r1; r += 2)
    t1_pair (grouped, w, act, t, gs, y, ys, r, r + 1 < r1);
}

void
lev_avx512vbmi_gemv_t1 (const LevQMatrix *w, const LevQAct *act, float *y, size_t ys, size_t r0, size_t r1)
{
  for (size_t t = 0; t < act->n; t++) {
    if (lev_qmatrix_grouped (w))
      t1_rows (1, w, act, t, y, ys, r0, r1);
    else
      t1_rows (0, w, act, t, y, ys, r0, r1);
  }
}
/* b1: vgf2p8affineqb with qword j of this matrix makes byte i of that qword bit j of byte i of the source (its
 * row byte 7 picks the output's bit 0). */
#define B1_BIT(j) ((long long) ((1ull << (j)) << 56))

/* b1, one token, rows r .. r + 7 (rows past `nrows` repeat row r: computed, not stored). Each row's 64 sign bits of
 * a unit, broadcast to the eight qwords, become 64 bytes of 0/1 by one affine instruction, in transposed order
 * (byte 8j + i = weight 8i + j); the unit's activations are put in that order once for the eight rows (vpermb),
 * and vpdpbusd sums the selected ones. Per-group scales as the AVX-512 b1 kernel applies them. */
AI void
b1_rows8 (int grouped, const LevQMatrix *w, const LevQAct *act, size_t t, const float *gs, float *y, size_t ys,
          size_t r, size_t nrows)
{
  enum { R = 8 };
  const __m512i bits = _mm512_set_epi64 (B1_BIT (7), B1_BIT (6), B1_BIT (5), B1_BIT (4), B1_BIT (3), B1_BIT (2),
                                         B1_BIT (1), B1_BIT (0));
  uint8_t tr[64];
  for (int p = 0; p < 64; p++)
    tr[p] = (uint8_t) (8 * (p % 8) + p / 8);
  const __m512i transpose = _mm512_loadu_si512 (tr);
  const size_t rbytes = w->row_bytes, units = w->cols_pad / 64, ng = lev_qmatrix_groups (w);
  const int8_t *x = act->q + t * act->stride;
  const uint8_t *row[R];
  for (size_t i = 0; i < R; i++)
    row[i] = w->codes + (r + (i < nrows ? i : 0)) * rbytes;
  const int prefetch = r + 3 * R <= w->rows;   /* the rows two runs ahead exist */
  const uint8_t *pf = prefetch ? row[0] + 2 * R * rbytes : row[0];
  __m512i acc[R][2];
  __m512 facc[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; i++) {
    acc[i][0] = acc[i][1] = _mm512_setzero_si512 ();
    facc[i] = _mm512_setzero_ps ();
  }
  for (size_t u = 0; u < units; u += 2) {
    if (prefetch)                             /* 16 bytes of each of 8 rows: two lines a pair of units */
#pragma GCC unroll 2
      for (int l = 0; l < 2; l++)
        _mm_prefetch ((const char *) pf + 64 * u + 64 * (size_t) l, _MM_HINT_T0);
    __m512i x0 = _mm512_permutexvar_epi8 (transpose, _mm512_loadu_si512 (x + 64 * u));
    __m512i x1 = _mm512_permutexvar_epi8 (transpose, _mm512_loadu_si512 (x + 64 * u + 64));
#pragma GCC unroll 8
    for (int i = 0; i < R; i++) {
      uint64_t b[2];
      memcpy (b, row[i] + 8 * u, 16);
      __m512i s0 = _mm512_gf2p8affine_epi64_epi8 (_mm512_set1_epi64 ((long long) b[0]), bits, 0);
      __m512i s1 = _mm512_gf2p8affine_epi64_epi8 (_mm512_set1_epi64 ((long long) b[1]), bits, 0);
      acc[i][0] = _mm512_dpbusd_epi32 (acc[i][0], s0, x0);
      acc[i][1] = _mm512_dpbusd_epi32 (acc[i][1], s1, x1);
    }
    if (grouped)
      lev_b1_fold_scales8 (grouped, w, ng, r, nrows, u, acc, facc);
  }
  lev_b1_store_rows8 (grouped, w, act, t, gs, ng, acc, facc, y, ys, r, nrows);
}

/* All rows of [r0, r1) for one token, eight at a time. */
AI void
b1_rows (int grouped, const LevQMatrix *w, const LevQAct *act, size_t t, float *y, size_t ys, size_t r0, size_t r1)
{
  float gs[LEV_QMAX_GROUPS];
  if (grouped)
    lev_qact_group_sums (act, t, 1, lev_qmatrix_group_weights (w), lev_qmatrix_groups (w), gs);
  for (size_t r = r0; r < r1; r += 8)
    b1_rows8 (grouped, w, act, t, gs, y, ys, r, r1 - r < 8 ? r1 - r : 8);
}

void
lev_avx512vbmi_gemv_b1 (const LevQMatrix *w, const LevQAct *act, float *y, size_t ys, size_t r0, size_t r1)
{
  for (size_t t = 0; t < act->n; t++) {
    if (!lev_qmatrix_grouped (w))
      b1_rows (0, w, act, t, y, ys, r0, r1);
    else if (2 * lev_qmatrix_group_weights (w) == lev_qenc_block_weights (LEV_QENC_B1))
      b1_rows (2, w, act, t, y, ys, r0, r1);
    else
      b1_rows (1, w, act, t, y, ys, r0, r1);
  }
}
#endif
