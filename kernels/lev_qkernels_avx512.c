/* lev_qkernels_avx512.c: AVX-512 (F, BW, VL, VNNI) packed kernels: two rows per zmm, vpdpbusd on unpacked codes. */
#include "lev_qkernels_simd.h"
#include "lev_kernels.h"

#if defined(LEV_HAVE_AVX512)
#include <immintrin.h>
#include <string.h>

#define AI static inline __attribute__ ((always_inline))
#define RB 64                  /* rows per block: their weights stay in L2 while token tiles pass over them */

/* Code fields per 32-byte chunk and the code offset (code = value + offset) of t2, t1, q4. */
AI int
n_fields (uint32_t enc)
{
  return enc == LEV_QENC_T2 ? 4 : enc == LEV_QENC_T1 ? 5 : 2;
}

AI int
code_offset (uint32_t enc)
{
  return enc == LEV_QENC_Q4 ? 8 : 1;
}

/* Splits 64 packed bytes (two rows' 32-byte chunks) into unsigned codes, one vector per field. */
AI void
decode (uint32_t enc, __m512i c, __m512i *f)
{
  if (enc == LEV_QENC_T2) {
    const __m512i m3 = _mm512_set1_epi8 (3);
    f[0] = _mm512_and_si512 (c, m3);
    f[1] = _mm512_and_si512 (_mm512_srli_epi16 (c, 2), m3);
    f[2] = _mm512_and_si512 (_mm512_srli_epi16 (c, 4), m3);
    f[3] = _mm512_and_si512 (_mm512_srli_epi16 (c, 6), m3);
  } else if (enc == LEV_QENC_T1) {
    /* stored bytes are t XOR 0x80, read as signed u = t - 128; the top trit of t is [t >= 86] + [t >= 171],
     * i.e. [u > -43] + [u > 42]; multiplying t by 3 mod 256 is multiplying u by 3 mod 256 */
    const __m512i one = _mm512_set1_epi8 (1), lo = _mm512_set1_epi8 (-43), hi = _mm512_set1_epi8 (42);
    __m512i u = c;
#pragma GCC unroll 8
    for (int i = 0; i < 5; i++) {
      __mmask64 m1 = _mm512_cmpgt_epi8_mask (u, lo), m2 = _mm512_cmpgt_epi8_mask (u, hi);
      __m512i d = _mm512_maskz_mov_epi8 (m1, one);
      f[i] = _mm512_mask_add_epi8 (d, m2, d, one);
      u = _mm512_add_epi8 (_mm512_add_epi8 (u, u), u);
    }
  } else {
    const __m512i m15 = _mm512_set1_epi8 (15);
    f[0] = _mm512_and_si512 (c, m15);
    f[1] = _mm512_and_si512 (_mm512_srli_epi16 (c, 4), m15);
  }
}

/* Adds to st0[t] / st1[t] the dot products of chunks [c0, c1) of rows p0 / p1 with TT tokens (q2 layout). With
 * per-group scales (grouped: 1 for one per chunk = block, 2 for one per half block, whose first half is the first
 * half of the fields; s0 / s1 the rows' scales) each group's exact integer sums are converted and scaled in the
 * vector instead, and the float sums go to sf0[t] / sf1[t]. */
AI void
pair_tile (uint32_t enc, int grouped, int TT, const uint8_t *p0, const uint8_t *p1, const float *s0,
           const float *s1, const int8_t *const *xs, size_t c0, size_t c1, int32_t *st0, int32_t *st1, float *sf0,
           float *sf1, const uint8_t *pf)
{
  const int nf = n_fields (enc);
  /* with few tokens, one accumulator per field: independent vpdpbusd chains instead of one long chain; half-block
   * groups need at least one per half */
  const int na = TT <= 2 ? nf : grouped == 2 ? 2 : 1;
  __m512i acc[8][5];
  __m512 facc[8];
#pragma GCC unroll 8
  for (int t = 0; t < TT; t++) {
    facc[t] = _mm512_setzero_ps ();
#pragma GCC unroll 8
    for (int k = 0; k < na; k++)
      acc[t][k] = _mm512_setzero_si512 ();
  }
  for (size_t c = c0; c < c1; c++) {
    if (pf)                               /* one line a chunk: the 64 * (c1 - c0) bytes of a later pair */
      _mm_prefetch ((const char *) pf + 64 * (c - c0), _MM_HINT_T0);
    __m512i codes = _mm512_inserti64x4 (_mm512_castsi256_si512 (_mm256_loadu_si256 ((const __m256i *) (p0 + 32 * c))),
                                        _mm256_loadu_si256 ((const __m256i *) (p1 + 32 * c)), 1);
    __m512i f[5];
    decode (enc, codes, f);
#pragma GCC unroll 8
    for (int k = 0; k < nf; k++) {
      const int a = na == 2 && grouped == 2 ? (2 * k >= nf) : k % na;
#pragma GCC unroll 8
      for (int t = 0; t < TT; t++)
        acc[t][a] = _mm512_dpbusd_epi32 (acc[t][a], f[k], _mm512_loadu_si512 (xs[t] + 64 * (nf * c + k)));
    }
    if (grouped) {
#pragma GCC unroll 2
      for (int g = 0; g < grouped; g++) {     /* the chunk's groups: its fields in one or two halves */
        size_t si = (size_t) grouped * c + (size_t) g;
        __m512 sv = _mm512_castpd_ps (_mm512_insertf64x4 (_mm512_castps_pd (_mm512_set1_ps (s0[si])),
                                                          _mm256_castps_pd (_mm256_set1_ps (s1[si])), 1));
        /* the accumulators of group g: all of them, or its half (one accumulator, or nf / 2 of the fields') */
        int k0 = grouped == 1 ? 0 : na == 2 ? g : g * nf / 2;
        int k1 = grouped == 1 ? na : na == 2 ? g + 1 : (g + 1) * nf / 2;
#pragma GCC unroll 8
        for (int t = 0; t < TT; t++) {
          __m512i sum = acc[t][k0];
#pragma GCC unroll 8
          for (int k = k0 + 1; k < k1; k++)
            sum = _mm512_add_epi32 (sum, acc[t][k]);
          facc[t] = _mm512_fmadd_ps (_mm512_cvtepi32_ps (sum), sv, facc[t]);
        }
      }
#pragma GCC unroll 8
      for (int t = 0; t < TT; t++)
#pragma GCC unroll 8
        for (int k = 0; k < na; k++)
          acc[t][k] = _mm512_setzero_si512 ();
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < TT; t++) {
    if (grouped) {
      sf0[t] += _mm512_mask_reduce_add_ps (0x00ff, facc[t]);
      sf1[t] += _mm512_mask_reduce_add_ps (0xff00, facc[t]);
      continue;
    }
#pragma GCC unroll 8
    for (int k = 1; k < na; k++)
      acc[t][0] = _mm512_add_epi32 (acc[t][0], acc[t][k]);
    st0[t] += _mm512_mask_reduce_add_epi32 (0x00ff, acc[t][0]);
    st1[t] += _mm512_mask_reduce_add_epi32 (0xff00, acc[t][0]);
  }
}

/* Rows [r0, r1) times tokens [t0, t0 + TT): row blocks, then column blocks that keep the tokens' activations in
 * L1, then row pairs. With per-group scales y = act scale * (sum over groups of scale * codes . x - code offset *
 * sum over groups of scale * group sum of x), the group sums from act->csum. */
AI void
gemm_tiles (uint32_t enc, int grouped, int TT, const LevQMatrix *w, const LevQAct *act, size_t t0, float *y,
            size_t ys, size_t r0, size_t r1)
{
  const int nf = n_fields (enc), off = code_offset (enc);
  size_t n_chunks = w->row_bytes / 32;
  size_t kc = 32768 / ((size_t) TT * 64 * nf);
  const int8_t *xs[8];
#pragma GCC unroll 8
  for (int t = 0; t < TT; t++)
    xs[t] = act->q2 + (t0 + t) * 2 * act->stride;
  size_t ng = grouped ? n_chunks * (size_t) grouped : 1;   /* scale groups per row */
  float gs[8 * LEV_QMAX_GROUPS];
  if (grouped)
    lev_qact_group_sums (act, t0, (size_t) TT, lev_qmatrix_group_weights (w), ng, gs);
  int32_t st[RB][8], spare[8];
  float sf[RB][8], fspare[8];
  for (size_t rb = r0; rb < r1; rb += RB) {
    size_t re = rb + RB < r1 ? rb + RB : r1;
    if (grouped)
      memset (sf, 0, sizeof sf);
    else
      memset (st, 0, sizeof st);
    for (size_t c0 = 0; c0 < n_chunks; c0 += kc) {
      size_t c1 = c0 + kc < n_chunks ? c0 + kc : n_chunks;
      for (size_t r = rb; r < re; r += 2) {
        /* an odd last row runs in both halves; the upper half's sums go to a spare slot */
        const uint8_t *p0 = w->codes + r * w->row_bytes;
        const uint8_t *p1 = r + 1 < re ? p0 + w->row_bytes : p0;
        const float *s0 = grouped ? w->scales + r * ng : NULL, *s1 = grouped && r + 1 < re ? s0 + ng : s0;
        /* whole rows a pass (few tokens): the pair two pairs ahead is prefetched, as the one-token kernel does,
         * since short tiles do too little work a line for the hardware prefetcher to keep up */
        const uint8_t *pf = c0 == 0 && c1 == n_chunks && r + 6 <= w->rows ? p0 + 4 * w->row_bytes : NULL;
        pair_tile (enc, grouped, TT, p0, p1, s0, s1, xs, c0, c1, st[r - rb], r + 1 < re ? st[r + 1 - rb] : spare,
                   sf[r - rb], r + 1 < re ? sf[r + 1 - rb] : fspare, pf);
      }
    }
    for (size_t r = rb; r < re; r++) {
#pragma GCC unroll 8
      for (int t = 0; t < TT; t++) {
        if (grouped) {
          float corr = lev_qdot16 (w->scales + r * ng, gs + (size_t) t * ng, ng);
          y[(t0 + t) * ys + r] = (sf[r - rb][t] - (float) off * corr) * act->scale[t0 + t];
        } else {
          int32_t dot = st[r - rb][t] - off * act->sum[t0 + t];
          y[(t0 + t) * ys + r] = (float) dot * (lev_qmatrix_scale (w, r) * act->scale[t0 + t]);
        }
      }
    }
  }
}

/* ---------------------------------------------------------------- one token: many rows a pass */

/* Row pairs per pass of the one-token kernel: their accumulators (pairs times fields) stay in registers. */
AI int
decode_pairs (uint32_t enc)
{
  return enc == LEV_QENC_T1 ? 2 : 4;
}

/* The left shift of field k's code in a t2 or q4 byte masked in place (0 for t1, whose fields are decoded). */
AI int
field_shift (uint32_t enc, int k)
{
  return enc == LEV_QENC_T2 ? 2 * k : enc == LEV_QENC_Q4 ? 4 * k : 0;
}

/* Splits 64 packed bytes into one vector per field, t2 and q4 fields left in place (code << field_shift: one AND
 * a field, no shift); vpdpbusd's sums of such products are exact multiples of 1 << field_shift. */
AI void
decode_in_place (uint32_t enc, __m512i c, __m512i *f)
{
  if (enc == LEV_QENC_T1) {
    decode (enc, c, f);
    return;
  }
  const int nf = n_fields (enc), bits = enc == LEV_QENC_T2 ? 2 : 4;
#pragma GCC unroll 4
  for (int k = 0; k < nf; k++)
    f[k] = _mm512_and_si512 (c, _mm512_set1_epi8 ((char) (((1 << bits) - 1) << (bits * k))));
}

/* Sum of the field accumulators [k0, k1), each shifted back to code units (exact). */
AI __m512i
fields_sum (uint32_t enc, const __m512i *acc, int k0, int k1)
{
  __m512i s = _mm512_srai_epi32 (acc[k0], field_shift (enc, k0));
#pragma GCC unroll 4
  for (int k = k0 + 1; k < k1; k++)
    s = _mm512_add_epi32 (s, _mm512_srai_epi32 (acc[k], field_shift (enc, k)));
  return s;
}

/* Rows [r, r + 2 * decode_pairs) times token t (q2 layout): the row pairs advance together, each activation vector
 * is loaded once for all of them, and every pair and field has its own accumulator (independent vpdpbusd chains).
 * With per-group scales each chunk's group sums are converted and scaled in the vector, as in pair_tile; gs holds
 * the token's activation sum of every group. */
AI void
decode_rows (uint32_t enc, int grouped, const LevQMatrix *w, const LevQAct *act, size_t t, const float *gs,
             float *y, size_t ys, size_t r)
{
  enum { PMAX = 4 };
  const int nf = n_fields (enc), np = decode_pairs (enc), off = code_offset (enc);
  const size_t rbytes = w->row_bytes, n_chunks = rbytes / 32;
  const size_t ng = lev_qmatrix_groups (w);
  const int8_t *x = act->q2 + t * 2 * act->stride;
  const uint8_t *base = w->codes + r * rbytes;
  __m512i acc[PMAX][5];
  __m512 facc[PMAX];
#pragma GCC unroll 4
  for (int p = 0; p < np; p++) {
    facc[p] = _mm512_setzero_ps ();
#pragma GCC unroll 5
    for (int k = 0; k < nf; k++)
      acc[p][k] = _mm512_setzero_si512 ();
  }
  /* the run of rows two runs ahead (contiguous) is prefetched over this pass: at every chunk as many lines as one
   * chunk of every row of a run; the rows streamed in 32-byte steps defeat the hardware's stream detection */
  const size_t run_bytes = 2 * (size_t) np * rbytes;
  const int prefetch = r + 3 * 2 * (size_t) np <= w->rows;   /* the rows two runs ahead exist */
  const uint8_t *pf = prefetch ? base + 2 * run_bytes : base;
  for (size_t c = 0; c < n_chunks; c++) {
    __m512i a[5];
    if (prefetch)
#pragma GCC unroll 4
      for (int l = 0; l < np; l++)
        _mm_prefetch ((const char *) pf + (size_t) np * 64 * c + 64 * (size_t) l, _MM_HINT_T0);
#pragma GCC unroll 5
    for (int k = 0; k < nf; k++)
      a[k] = _mm512_loadu_si512 (x + 64 * (nf * c + k));
#pragma GCC unroll 4
    for (int p = 0; p < np; p++) {
      const uint8_t *p0 = base + 2 * (size_t) p * rbytes + 32 * c;
      __m512i codes = _mm512_inserti64x4 (_mm512_castsi256_si512 (_mm256_loadu_si256 ((const __m256i *) p0)),
                                          _mm256_loadu_si256 ((const __m256i *) (p0 + rbytes)), 1);
      __m512i f[5];
      decode_in_place (enc, codes, f);
#pragma GCC unroll 5
      for (int k = 0; k < nf; k++)
        acc[p][k] = _mm512_dpbusd_epi32 (acc[p][k], f[k], a[k]);
    }
    if (grouped) {
#pragma GCC unroll 4
      for (int p = 0; p < np; p++) {
        const float *s0 = w->scales + (r + 2 * (size_t) p) * ng;
#pragma GCC unroll 2
        for (int g = 0; g < grouped; g++) {   /* the chunk's groups: all its fields, or each half of them */
          size_t si = (size_t) grouped * c + (size_t) g;
          __m512 sv = _mm512_castpd_ps (_mm512_insertf64x4 (_mm512_castps_pd (_mm512_set1_ps (s0[si])),
                                                            _mm256_castps_pd (_mm256_set1_ps (s0[ng + si])), 1));
          int k0 = grouped == 1 ? 0 : g * nf / 2, k1 = grouped == 1 ? nf : (g + 1) * nf / 2;
          facc[p] = _mm512_fmadd_ps (_mm512_cvtepi32_ps (fields_sum (enc, acc[p], k0, k1)), sv, facc[p]);
        }
#pragma GCC unroll 5
        for (int k = 0; k < nf; k++)
          acc[p][k] = _mm512_setzero_si512 ();
      }
    }
  }
#pragma GCC unroll 4
  for (int p = 0; p < np; p++) {
    __m512i sum = grouped ? _mm512_setzero_si512 () : fields_sum (enc, acc[p], 0, nf);
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
      size_t row = r + 2 * (size_t) p + (size_t) h;
      __mmask16 half = h ? (__mmask16) 0xff00 : (__mmask16) 0x00ff;
      if (grouped) {
        float corr = lev_qdot16 (w->scales + row * ng, gs, ng);
        y[t * ys + row] = (_mm512_mask_reduce_add_ps (half, facc[p]) - (float) off * corr) * act->scale[t];
      } else {
        int32_t dot = _mm512_mask_reduce_add_epi32 (half, sum) - off * act->sum[t];
        y[t * ys + row] = (float) dot * (lev_qmatrix_scale (w, row) * act->scale[t]);
      }
    }
  }
}

/* Token tiles of t2, t1, q4: one token through decode_rows (the rows past the last whole run as pairs), more
 * through gemm_tiles. */
AI void
qtiles (uint32_t enc, int grouped, int TT, const LevQMatrix *w, const LevQAct *act, size_t t0, float *y,
        size_t ys, size_t r0, size_t r1)
{
  if (TT > 1)
    gemm_tiles (enc, grouped, TT, w, act, t0, y, ys, r0, r1);
  else
    LEV_QDECODE_RUNS (decode_rows, 2 * (size_t) decode_pairs (enc), gemm_tiles, enc, grouped);
}

LEV_QDEFINE_GEMM (gemm_t2, qtiles, LEV_QENC_T2, 8)
LEV_QDEFINE_GEMM (gemm_t1, qtiles, LEV_QENC_T1, 8)
LEV_QDEFINE_GEMM (gemm_q4, qtiles, LEV_QENC_Q4, 8)

/* b1, one row: each 64-bit mask selects activations with a zero-masked load; their sum (vpdpbusd with ones)
 * is the dot product with the +1 weights: dot = 2 * selected - sum. With per-group scales each group's (128 or
 * 64 weights) selected sums are converted and scaled in the vector: y = act scale * (2 * sum of scaled selected
 * sums - sum of scale * group sum of x). */
AI void
b1_tiles (uint32_t enc, int grouped, int TT, const LevQMatrix *w, const LevQAct *act, size_t t0, float *y,
          size_t ys, size_t r0, size_t r1)
{
  (void) enc;
  const __m512i ones = _mm512_set1_epi8 (1);
  size_t units = w->cols_pad / 64, ng = grouped == 2 ? units : units / 2;   /* 64-weight units, scale groups */
  const int8_t *xs[8];
#pragma GCC unroll 8
  for (int t = 0; t < TT; t++)
    xs[t] = act->q + (t0 + t) * act->stride;
  float gs[8 * LEV_QMAX_GROUPS];
  if (grouped)
    lev_qact_group_sums (act, t0, (size_t) TT, lev_qmatrix_group_weights (w), ng, gs);
  for (size_t r = r0; r < r1; r++) {
    const uint8_t *p = w->codes + r * w->row_bytes;
    /* the row four ahead is prefetched over this one (a line every eight units), as in gemm_tiles */
    const uint8_t *pf = r + 5 <= w->rows ? p + 4 * w->row_bytes : NULL;
    const float *sc = grouped ? w->scales + r * ng : NULL;
    /* units come in pairs (rows are whole 128-weight blocks); with few tokens, one accumulator per unit of the
     * pair */
    const int na = TT <= 2 ? 2 : 1;
    __m512i acc[8][2];
    __m512 facc[8];
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++) {
      acc[t][0] = acc[t][1] = _mm512_setzero_si512 ();
      facc[t] = _mm512_setzero_ps ();
    }
    for (size_t u = 0; u < units; u += 2) {
      if (pf && (u & 7) == 0)
        _mm_prefetch ((const char *) pf + 8 * u, _MM_HINT_T0);
#pragma GCC unroll 2
      for (int h = 0; h < 2; h++) {
        uint64_t bits;
        memcpy (&bits, p + 8 * (u + h), 8);
        __mmask64 k = _cvtu64_mask64 (bits);
#pragma GCC unroll 8
        for (int t = 0; t < TT; t++)
          acc[t][h % na] = _mm512_dpbusd_epi32 (acc[t][h % na], ones, _mm512_maskz_loadu_epi8 (k, xs[t] + 64 * (u + h)));
        if (grouped == 2) {                   /* a scale per 64-weight unit */
          __m512 sv = _mm512_set1_ps (sc[u + h]);
#pragma GCC unroll 8
          for (int t = 0; t < TT; t++) {
            facc[t] = _mm512_fmadd_ps (_mm512_cvtepi32_ps (acc[t][h % na]), sv, facc[t]);
            acc[t][h % na] = _mm512_setzero_si512 ();
          }
        }
      }
      if (grouped == 1) {
        __m512 sv = _mm512_set1_ps (sc[u / 2]);
#pragma GCC unroll 8
        for (int t = 0; t < TT; t++) {
          facc[t] = _mm512_fmadd_ps (_mm512_cvtepi32_ps (_mm512_add_epi32 (acc[t][0], acc[t][1])), sv, facc[t]);
          acc[t][0] = acc[t][1] = _mm512_setzero_si512 ();
        }
      }
    }
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++) {
      if (grouped) {
        float corr = lev_qdot16 (sc, gs + (size_t) t * ng, ng);
        y[(t0 + t) * ys + r] = (2.0f * _mm512_reduce_add_ps (facc[t]) - corr) * act->scale[t0 + t];
      } else {
        int32_t dot = 2 * _mm512_reduce_add_epi32 (_mm512_add_epi32 (acc[t][0], acc[t][1])) - act->sum[t0 + t];
        y[(t0 + t) * ys + r] = (float) dot * (lev_qmatrix_scale (w, r) * act->scale[t0 + t]);
      }
    }
  }
}

/* b1, one token, rows [r, r + 8): each 64-weight activation vector is loaded once for the eight rows; a row's 64
 * sign bits (a mask register) pick ones for vpdpbusd (vmovdqu8 with zeroing), two accumulators a row. The next
 * eight rows two runs ahead are prefetched over the pass. Per-group scales as in b1_tiles; gs holds the token's
 * activation sum of every group. */
AI void
b1_decode_rows (uint32_t enc, int grouped, const LevQMatrix *w, const LevQAct *act, size_t t, const float *gs,
                float *y, size_t ys, size_t r)
{
  enum { R = 8 };
  (void) enc;
  const __m512i ones = _mm512_set1_epi8 (1);
  const size_t rbytes = w->row_bytes, units = w->cols_pad / 64, ng = lev_qmatrix_groups (w);
  const int8_t *x = act->q + t * act->stride;
  const uint8_t *base = w->codes + r * rbytes;
  const int prefetch = r + 3 * R <= w->rows;   /* the rows two runs ahead exist */
  const uint8_t *pf = prefetch ? base + 2 * R * rbytes : base;
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
    __m512i x0 = _mm512_loadu_si512 (x + 64 * u), x1 = _mm512_loadu_si512 (x + 64 * u + 64);
#pragma GCC unroll 8
    for (int i = 0; i < R; i++) {
      uint64_t b[2];
      memcpy (b, base + (size_t) i * rbytes + 8 * u, 16);
      acc[i][0] = _mm512_dpbusd_epi32 (acc[i][0], _mm512_maskz_mov_epi8 (_cvtu64_mask64 (b[0]), ones), x0);
      acc[i][1] = _mm512_dpbusd_epi32 (acc[i][1], _mm512_maskz_mov_epi8 (_cvtu64_mask64 (b[1]), ones), x1);
    }
    if (grouped)
      lev_b1_fold_scales8 (grouped, w, ng, r, R, u, acc, facc);
  }
  lev_b1_store_rows8 (grouped, w, act, t, gs, ng, acc, facc, y, ys, r, R);
}

/* Token tiles of b1: one token through b1_decode_rows (the last rows through b1_tiles), more through b1_tiles. */
AI void
b1_qtiles (uint32_t enc, int grouped, int TT, const LevQMatrix *w, const LevQAct *act, size_t t0, float *y,
           size_t ys, size_t r0, size_t r1)
{
  if (TT > 1)
    b1_tiles (enc, grouped, TT, w, act, t0, y, ys, r0, r1);
  else
    LEV_QDECODE_RUNS (b1_decode_rows, 8, b1_tiles, enc, grouped);
}

LEV_QDEFINE_GEMM (gemm_b1, b1_qtiles, LEV_QENC_B1, 8)

/* As lev_dot_f32: eight lanes, the same final sums, no fused multiply-add. */
static float
dot_f32 (const float *a, const float *b, size_t n)
{
  __m256 acc = _mm256_setzero_ps ();
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    acc = _mm256_add_ps (acc, _mm256_mul_ps (_mm256_loadu_ps (a + i), _mm256_loadu_ps (b + i)));
  float l[8];
  _mm256_storeu_ps (l, acc);
  float s = ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]));
  for (; i < n; i++)
    s += a[i] * b[i];
  return s;
}

/* y += a * x, as lev_axpy_f32. */
static void
axpy_f32 (float a, const float *x, float *y, size_t n)
{
  __m512 va16 = _mm512_set1_ps (a);
  __m256 va = _mm256_set1_ps (a);
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps (y + i, _mm512_add_ps (_mm512_loadu_ps (y + i), _mm512_mul_ps (va16, _mm512_loadu_ps (x + i))));
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps (y + i, _mm256_add_ps (_mm256_loadu_ps (y + i), _mm256_mul_ps (va, _mm256_loadu_ps (x + i))));
  for (; i < n; i++)
    y[i] += a * x[i];
}

/* Sparse outliers, sixteen entries at a time (a masked tail): gathered activations times converted halves. */
static float
sparse_dot (const uint32_t *entries, uint32_t n, const float *x)
{
  __m512 acc = _mm512_setzero_ps ();
  const __m512i lo16 = _mm512_set1_epi32 (0xffff);
  for (uint32_t k = 0; k < n; k += 16) {
    __mmask16 m = n - k >= 16 ? (__mmask16) 0xffff : (__mmask16) ((1u << (n - k)) - 1);
    __m512i e = _mm512_maskz_loadu_epi32 (m, entries + k);
    __m512 xv = _mm512_mask_i32gather_ps (_mm512_setzero_ps (), m, _mm512_and_si512 (e, lo16), x, 4);
    __m512 v = _mm512_cvtph_ps (_mm512_cvtepi32_epi16 (_mm512_srli_epi32 (e, 16)));
    acc = _mm512_fmadd_ps (v, xv, acc);
  }
  return _mm512_reduce_add_ps (acc);
}

/* lev_wht_block with sixteen lanes: stages 1, 2, 4, 8 in registers (lanes with bit h clear a + t, the others
 * t - a, t the lane h away), the same operations on the same values as the scalar butterflies. */
static void
wht_block16 (float *v, size_t b)
{
  if (b < 16) {
    lev_wht_block (v, b);
    return;
  }
  for (size_t j = 0; j < b; j += 16) {
    __m512 a = _mm512_loadu_ps (v + j), t;
    t = _mm512_permute_ps (a, 0xB1);
    a = _mm512_mask_blend_ps (0xAAAA, _mm512_add_ps (a, t), _mm512_sub_ps (t, a));
    t = _mm512_permute_ps (a, 0x4E);
    a = _mm512_mask_blend_ps (0xCCCC, _mm512_add_ps (a, t), _mm512_sub_ps (t, a));
    t = _mm512_shuffle_f32x4 (a, a, 0xB1);
    a = _mm512_mask_blend_ps (0xF0F0, _mm512_add_ps (a, t), _mm512_sub_ps (t, a));
    t = _mm512_shuffle_f32x4 (a, a, 0x4E);
    a = _mm512_mask_blend_ps (0xFF00, _mm512_add_ps (a, t), _mm512_sub_ps (t, a));
    _mm512_storeu_ps (v + j, a);
  }
  for (size_t h = 16; h < b; h *= 2)
    for (size_t i0 = 0; i0 < b; i0 += 2 * h)
      for (size_t j = i0; j < i0 + h; j += 16) {
        __m512 a = _mm512_loadu_ps (v + j), c = _mm512_loadu_ps (v + j + h);
        _mm512_storeu_ps (v + j, _mm512_add_ps (a, c));
        _mm512_storeu_ps (v + j + h, _mm512_sub_ps (a, c));
      }
}

/* lev_hadamard with wht_block16's butterflies. */
static void
hadamard (float *x, size_t n, const float *signs)
{
  lev_hadamard_by_blocks (x, n, signs, wht_block16);
}

static const LevQKernels avx512_kernels = { "avx512", 1, { gemm_t2, gemm_t1, gemm_b1, gemm_q4 },
                                         { gemm_t2, gemm_t1, gemm_b1, gemm_q4 },
                                         dot_f32, axpy_f32, lev_avx2_dot_f16, lev_avx2_axpy_f16,
                                         lev_avx2_dot_i8, lev_avx2_axpy_i8, sparse_dot, lev_avx2_dot_heads,
                                         lev_avx2_axpy_heads, lev_avx2_attend_values, lev_avx2_softmax,
                                         lev_avx2_silu_mul, lev_avx2_quantize_absmax, hadamard };

#if defined(LEV_HAVE_AVX512VBMI)
/* The same with the one-token t1 kernel of VBMI and the b1 one of VBMI + GFNI. */
static const LevQKernels avx512vbmi_kernels = { "avx512vbmi", 1, { gemm_t2, gemm_t1, gemm_b1, gemm_q4 },
                                         { gemm_t2, lev_avx512vbmi_gemv_t1, lev_avx512vbmi_gemv_b1, gemm_q4 },
                                         dot_f32, axpy_f32, lev_avx2_dot_f16, lev_avx2_axpy_f16,
                                         lev_avx2_dot_i8, lev_avx2_axpy_i8, sparse_dot, lev_avx2_dot_heads,
                                         lev_avx2_axpy_heads, lev_avx2_attend_values, lev_avx2_softmax,
                                         lev_avx2_silu_mul, lev_avx2_quantize_absmax, hadamard };

const LevQKernels *
lev_qkernels_avx512vbmi (void)
{
  return lev_qkernels_avx512 () && __builtin_cpu_supports ("avx512vbmi") && __builtin_cpu_supports ("gfni")
         ? &avx512vbmi_kernels : NULL;
}
#endif

const LevQKernels *
lev_qkernels_avx512 (void)
{
  __builtin_cpu_init ();
  if (__builtin_cpu_supports ("avx512f") && __builtin_cpu_supports ("avx512bw")
      && __builtin_cpu_supports ("avx512vl") && __builtin_cpu_supports ("avx512vnni"))
    return &avx512_kernels;
  return NULL;
}
#endif
