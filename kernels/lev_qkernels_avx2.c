/* lev_qkernels_avx2.c: AVX2 packed kernels: one row per ymm, unpacked codes times int8 activations (vpmaddubsw). */
#include "lev_qkernels_simd.h"
#include "lev_kernels.h"

#if defined(LEV_HAVE_AVX2)
#include <immintrin.h>
#include <math.h>
#include <string.h>

#define AI static inline __attribute__ ((always_inline))

AI int
n_fields (uint32_t enc)
{
  return enc == LEV_QENC_T2 ? 4 : enc == LEV_QENC_T1 ? 5 : enc == LEV_QENC_Q4 ? 2 : 1;
}

/* Splits one 32-byte chunk into unsigned codes, one vector per field (as in the AVX-512 file). */
AI void
decode (uint32_t enc, __m256i c, __m256i *f)
{
  if (enc == LEV_QENC_T2) {
    const __m256i m3 = _mm256_set1_epi8 (3);
    f[0] = _mm256_and_si256 (c, m3);
    f[1] = _mm256_and_si256 (_mm256_srli_epi16 (c, 2), m3);
    f[2] = _mm256_and_si256 (_mm256_srli_epi16 (c, 4), m3);
    f[3] = _mm256_and_si256 (_mm256_srli_epi16 (c, 6), m3);
  } else if (enc == LEV_QENC_T1) {
    const __m256i lo = _mm256_set1_epi8 (-43), hi = _mm256_set1_epi8 (42), zero = _mm256_setzero_si256 ();
    __m256i u = c;
#pragma GCC unroll 8
    for (int i = 0; i < 5; i++) {
      __m256i s = _mm256_add_epi8 (_mm256_cmpgt_epi8 (u, lo), _mm256_cmpgt_epi8 (u, hi)); /* 0, -1, -2 */
      f[i] = _mm256_sub_epi8 (zero, s);
      u = _mm256_add_epi8 (_mm256_add_epi8 (u, u), u);
    }
  } else {
    const __m256i m15 = _mm256_set1_epi8 (15);
    f[0] = _mm256_and_si256 (c, m15);
    f[1] = _mm256_and_si256 (_mm256_srli_epi16 (c, 4), m15);
  }
}

/* Expands 32 sign bits into bytes 0xff (bit set) or 0. */
AI __m256i
expand_bits (const uint8_t *p)
{
  uint32_t bits;
  memcpy (&bits, p, 4);
  const __m256i shuf = _mm256_setr_epi8 (0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                         2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i sel = _mm256_set1_epi64x ((long long) 0x8040201008040201ull);
  __m256i v = _mm256_shuffle_epi8 (_mm256_set1_epi32 ((int) bits), shuf);
  return _mm256_cmpeq_epi8 (_mm256_and_si256 (v, sel), sel);
}

AI int32_t
hsum (__m256i v)
{
  __m128i s = _mm_add_epi32 (_mm256_castsi256_si128 (v), _mm256_extracti128_si256 (v, 1));
  s = _mm_add_epi32 (s, _mm_shuffle_epi32 (s, 0x4e));
  s = _mm_add_epi32 (s, _mm_shuffle_epi32 (s, 0xb1));
  return _mm_cvtsi128_si32 (s);
}

/* Sum of eight float lanes. */
AI float
hsum_ps (__m256 v)
{
  __m128 s = _mm_add_ps (_mm256_castps256_ps128 (v), _mm256_extractf128_ps (v, 1));
  s = _mm_add_ps (s, _mm_movehl_ps (s, s));
  s = _mm_add_ss (s, _mm_movehdup_ps (s));
  return _mm_cvtss_f32 (s);
}

/* Dot product of n floats (the per-group offset correction: scales times block sums). */
AI float
dot8 (const float *a, const float *b, size_t n)
{
  __m256 acc = _mm256_setzero_ps ();
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    acc = _mm256_fmadd_ps (_mm256_loadu_ps (a + i), _mm256_loadu_ps (b + i), acc);
  float s = hsum_ps (acc);
  for (; i < n; i++)
    s += a[i] * b[i];
  return s;
}

/* Rows [r0, r1) times tokens [t0, t0 + TT), one row at a time, every chunk decoded once for the TT tokens. With
 * per-group scales (grouped) each block's exact integer sums are converted and scaled in the vector, and the
 * codes' offset comes off at the end as the scales times the activations' block sums (act->csum). */
AI void
gemm_tiles (uint32_t enc, int grouped, int TT, const LevQMatrix *w, const LevQAct *act, size_t t0, float *y,
            size_t ys, size_t r0, size_t r1)
{
  const int nf = n_fields (enc);
  const int off = enc == LEV_QENC_Q4 ? 8 : enc == LEV_QENC_B1 ? 0 : 1;
  const __m256i ones16 = _mm256_set1_epi16 (1), ones8 = _mm256_set1_epi8 (1);
  size_t n_chunks = enc == LEV_QENC_B1 ? w->cols_pad / 32 : w->row_bytes / 32;
  /* b1: 32-weight chunks, four a block, a group every 4 / grouped of them; the others: a chunk is a block, whose
   * fields split into halves for half-block groups */
  size_t per_group = enc == LEV_QENC_B1 && grouped ? 4 / (size_t) grouped : 1;
  size_t ng = !grouped ? 1 : enc == LEV_QENC_B1 ? n_chunks / per_group : n_chunks * (size_t) grouped;
  const int8_t *xs[4];
#pragma GCC unroll 8
  for (int t = 0; t < TT; t++)
    xs[t] = act->q + (t0 + t) * act->stride;
  float gs[4 * LEV_QMAX_GROUPS];
  if (grouped)
    lev_qact_group_sums (act, t0, (size_t) TT, lev_qmatrix_group_weights (w), ng, gs);
  for (size_t r = r0; r < r1; r++) {
    const uint8_t *p = w->codes + r * w->row_bytes;
    const float *sc = grouped ? w->scales + r * ng : NULL;
    __m256i acc[4][2];
    __m256 facc[4];
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++) {
      acc[t][0] = acc[t][1] = _mm256_setzero_si256 ();
      facc[t] = _mm256_setzero_ps ();
    }
    for (size_t c = 0; c < n_chunks; c++) {
      if (enc == LEV_QENC_B1) {
        __m256i m = expand_bits (p + 4 * c);
#pragma GCC unroll 8
        for (int t = 0; t < TT; t++) {
          __m256i sel = _mm256_and_si256 (m, _mm256_loadu_si256 ((const __m256i *) (xs[t] + 32 * c)));
          acc[t][0] = _mm256_add_epi32 (acc[t][0], _mm256_madd_epi16 (_mm256_maddubs_epi16 (ones8, sel), ones16));
        }
      } else {
        __m256i f[5];
        decode (enc, _mm256_loadu_si256 ((const __m256i *) (p + 32 * c)), f);
#pragma GCC unroll 8
        for (int t = 0; t < TT; t++) {
          const int8_t *x = xs[t] + 32 * nf * c;
          __m256i s[2] = { _mm256_setzero_si256 (), _mm256_setzero_si256 () };   /* the halves of the fields */
#pragma GCC unroll 8
          for (int k = 0; k < nf; k++) {
            const int h = grouped == 2 && 2 * k >= nf;
            __m256i xk = _mm256_loadu_si256 ((const __m256i *) (x + 32 * k));
            s[h] = _mm256_add_epi16 (s[h], _mm256_maddubs_epi16 (f[k], xk));
          }
          acc[t][0] = _mm256_add_epi32 (acc[t][0], _mm256_madd_epi16 (s[0], ones16));
          if (grouped == 2)
            acc[t][1] = _mm256_add_epi32 (acc[t][1], _mm256_madd_epi16 (s[1], ones16));
        }
      }
      if (grouped && c % per_group == per_group - 1) {
        /* b1: the group just completed; the others: the block's one or two groups */
        size_t g0 = enc == LEV_QENC_B1 ? c / per_group : c * (size_t) grouped;
        int n_here = enc == LEV_QENC_B1 ? 1 : grouped;
#pragma GCC unroll 2
        for (int h = 0; h < n_here; h++) {
          __m256 sv = _mm256_set1_ps (sc[g0 + (size_t) h]);
#pragma GCC unroll 8
          for (int t = 0; t < TT; t++) {
            facc[t] = _mm256_fmadd_ps (_mm256_cvtepi32_ps (acc[t][h]), sv, facc[t]);
            acc[t][h] = _mm256_setzero_si256 ();
          }
        }
      }
    }
#pragma GCC unroll 8
    for (int t = 0; t < TT; t++) {
      if (grouped) {
        float corr = dot8 (sc, gs + (size_t) t * ng, ng);
        float gain = enc == LEV_QENC_B1 ? 2.0f : 1.0f, coff = enc == LEV_QENC_Q4 ? 8.0f : 1.0f;
        y[(t0 + t) * ys + r] = (gain * hsum_ps (facc[t]) - coff * corr) * act->scale[t0 + t];
      } else {
        int32_t dot = enc == LEV_QENC_B1 ? 2 * hsum (acc[t][0]) - act->sum[t0 + t]
                                         : hsum (acc[t][0]) - off * act->sum[t0 + t];
        y[(t0 + t) * ys + r] = (float) dot * (lev_qmatrix_scale (w, r) * act->scale[t0 + t]);
      }
    }
  }
}

/* b1, one token, rows [r, r + 4): each 32-value activation vector is loaded once for the four rows; a row's 32
 * sign bits become bytes 0 / 1 (broadcast, vpshufb, AND with the bit, unsigned min with 1), whose vpmaddubsw with
 * the activations sums the selected pairs; the 16-bit sums (each at most 2 * 128 a chunk) go on for up to 64
 * chunks, or to a group's end, before they are widened. The four rows two runs ahead are prefetched. */
AI void
b1_decode_rows (uint32_t enc, int grouped, const LevQMatrix *w, const LevQAct *act, size_t t, const float *gs,
                float *y, size_t ys, size_t r)
{
  enum { R = 4 };
  (void) enc;
  const __m256i shuf = _mm256_setr_epi8 (0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                         2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i sel = _mm256_set1_epi64x ((long long) 0x8040201008040201ull);
  const __m256i one8 = _mm256_set1_epi8 (1), ones16 = _mm256_set1_epi16 (1);
  const size_t rbytes = w->row_bytes, n_chunks = w->cols_pad / 32;
  /* chunks between widenings: a group (4 or 2 chunks) with per-group scales, else 64 */
  const size_t span = !grouped ? 64 : grouped == 1 ? 4 : 2, ng = lev_qmatrix_groups (w);
  const int8_t *x = act->q + t * act->stride;
  const uint8_t *base = w->codes + r * rbytes;
  const int prefetch = r + 3 * R <= w->rows;   /* the rows two runs ahead exist */
  const uint8_t *pf = prefetch ? base + 2 * R * rbytes : base;
  __m256i acc[R], acc16[R];
  __m256 facc[R];
#pragma GCC unroll 4
  for (int i = 0; i < R; i++) {
    acc[i] = acc16[i] = _mm256_setzero_si256 ();
    facc[i] = _mm256_setzero_ps ();
  }
  for (size_t c0 = 0; c0 < n_chunks; c0 += span) {
    size_t c1 = c0 + span < n_chunks ? c0 + span : n_chunks;
    for (size_t c = c0; c < c1; c++) {
      if (prefetch && c % 16 == 0)            /* 64 bytes of each row every 16 chunks */
#pragma GCC unroll 4
        for (int i = 0; i < R; i++)
          _mm_prefetch ((const char *) pf + (size_t) i * rbytes + 4 * c, _MM_HINT_T0);
      __m256i xv = _mm256_loadu_si256 ((const __m256i *) (x + 32 * c));
#pragma GCC unroll 4
      for (int i = 0; i < R; i++) {
        int32_t bits;
        memcpy (&bits, base + (size_t) i * rbytes + 4 * c, 4);
        __m256i b = _mm256_and_si256 (_mm256_shuffle_epi8 (_mm256_set1_epi32 (bits), shuf), sel);
        acc16[i] = _mm256_add_epi16 (acc16[i], _mm256_maddubs_epi16 (_mm256_min_epu8 (b, one8), xv));
      }
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) {
      __m256i wide = _mm256_madd_epi16 (acc16[i], ones16);
      acc16[i] = _mm256_setzero_si256 ();
      if (grouped)
        facc[i] = _mm256_fmadd_ps (_mm256_cvtepi32_ps (wide),
                                   _mm256_set1_ps (w->scales[(r + (size_t) i) * ng + c0 / span]), facc[i]);
      else
        acc[i] = _mm256_add_epi32 (acc[i], wide);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < R; i++) {
    size_t row = r + (size_t) i;
    if (grouped) {
      float corr = dot8 (w->scales + row * ng, gs, ng);
      y[t * ys + row] = (2.0f * hsum_ps (facc[i]) - corr) * act->scale[t];
    } else {
      int32_t dot = 2 * hsum (acc[i]) - act->sum[t];
      y[t * ys + row] = (float) dot * (lev_qmatrix_scale (w, row) * act->scale[t]);
    }
  }
}

/* Token tiles: b1 one token through b1_decode_rows (the last rows through gemm_tiles), the rest through
 * gemm_tiles. */
AI void
qtiles (uint32_t enc, int grouped, int TT, const LevQMatrix *w, const LevQAct *act, size_t t0, float *y,
        size_t ys, size_t r0, size_t r1)
{
  if (TT > 1 || enc != LEV_QENC_B1)
    gemm_tiles (enc, grouped, TT, w, act, t0, y, ys, r0, r1);
  else
    LEV_QDECODE_RUNS (b1_decode_rows, 4, gemm_tiles, enc, grouped);
}

LEV_QDEFINE_GEMM (gemm_t2, gemm_tiles, LEV_QENC_T2, 4)
LEV_QDEFINE_GEMM (gemm_t1, gemm_tiles, LEV_QENC_T1, 4)
LEV_QDEFINE_GEMM (gemm_b1, qtiles, LEV_QENC_B1, 4)
LEV_QDEFINE_GEMM (gemm_q4, gemm_tiles, LEV_QENC_Q4, 4)

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
  __m256 va = _mm256_set1_ps (a);
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps (y + i, _mm256_add_ps (_mm256_loadu_ps (y + i), _mm256_mul_ps (va, _mm256_loadu_ps (x + i))));
  for (; i < n; i++)
    y[i] += a * x[i];
}

/* The KV helpers: halves through F16C, int8 through sign extension; lanes and order as the scalar ones. The
 * AVX-512 kernels use them too. */
float
lev_avx2_dot_f16 (const float *a, const uint16_t *b, size_t n)
{
  __m256 acc = _mm256_setzero_ps ();
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    acc = _mm256_add_ps (acc, _mm256_mul_ps (_mm256_loadu_ps (a + i),
                                             _mm256_cvtph_ps (_mm_loadu_si128 ((const __m128i *) (b + i)))));
  float l[8];
  _mm256_storeu_ps (l, acc);
  float s = ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]));
  for (; i < n; i++)
    s += a[i] * _cvtsh_ss (b[i]);
  return s;
}

void
lev_avx2_axpy_f16 (float a, const uint16_t *x, float *y, size_t n)
{
  __m256 va = _mm256_set1_ps (a);
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps (y + i, _mm256_add_ps (_mm256_loadu_ps (y + i),
                                            _mm256_mul_ps (va, _mm256_cvtph_ps (_mm_loadu_si128 ((const __m128i *) (x + i))))));
  for (; i < n; i++)
    y[i] += a * _cvtsh_ss (x[i]);
}

AI __m256
load_i8 (const int8_t *p)
{
  return _mm256_cvtepi32_ps (_mm256_cvtepi8_epi32 (_mm_loadl_epi64 ((const __m128i *) p)));
}

float
lev_avx2_dot_i8 (const float *a, const int8_t *b, size_t n)
{
  __m256 acc = _mm256_setzero_ps ();
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    acc = _mm256_add_ps (acc, _mm256_mul_ps (_mm256_loadu_ps (a + i), load_i8 (b + i)));
  float l[8];
  _mm256_storeu_ps (l, acc);
  float s = ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]));
  for (; i < n; i++)
    s += a[i] * (float) b[i];
  return s;
}

void
lev_avx2_axpy_i8 (float a, const int8_t *x, float *y, size_t n)
{
  __m256 va = _mm256_set1_ps (a);
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps (y + i, _mm256_add_ps (_mm256_loadu_ps (y + i), _mm256_mul_ps (va, load_i8 (x + i))));
  for (; i < n; i++)
    y[i] += a * (float) x[i];
}

/* Eight values of a compact row from index i, as floats (exact conversions). */
AI __m256
load8 (uint32_t type, const void *p, size_t i)
{
  if (type == LEV_QVEC_F16)
    return _mm256_cvtph_ps (_mm_loadu_si128 ((const __m128i *) ((const uint16_t *) p + i)));
  if (type == LEV_QVEC_I8)
    return load_i8 ((const int8_t *) p + i);
  return _mm256_loadu_ps ((const float *) p + i);
}

/* Value i of a compact row as a float. */
AI float
load1 (uint32_t type, const void *p, size_t i)
{
  if (type == LEV_QVEC_F16)
    return _cvtsh_ss (((const uint16_t *) p)[i]);
  if (type == LEV_QVEC_I8)
    return (float) ((const int8_t *) p)[i];
  return ((const float *) p)[i];
}

/* dot_heads for one row type: four heads at a time share each converted chunk of the row; each head keeps the
 * eight lanes and the final sums of dot_f32, the last two levels of them done for four heads at once with two
 * horizontal adds ((m0 + m1) + (m2 + m3) of m = low half + high half). */
AI void
dot_heads_type (uint32_t type, const float *q, size_t qs, uint32_t nq, const void *k, size_t n, float *out)
{
  size_t n8 = n / 8 * 8;
  for (uint32_t g0 = 0; g0 < nq; g0 += 4) {
    uint32_t m = nq - g0 < 4 ? nq - g0 : 4;
    const float *qg[4];
    for (uint32_t g = 0; g < 4; g++)
      qg[g] = q + (g0 + (g < m ? g : 0)) * qs;
    __m256 acc[4] = { _mm256_setzero_ps (), _mm256_setzero_ps (), _mm256_setzero_ps (), _mm256_setzero_ps () };
    for (size_t i = 0; i < n8; i += 8) {
      __m256 kv = load8 (type, k, i);
#pragma GCC unroll 4
      for (int g = 0; g < 4; g++)
        acc[g] = _mm256_add_ps (acc[g], _mm256_mul_ps (_mm256_loadu_ps (qg[g] + i), kv));
    }
    __m128 h[4];
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++)
      h[g] = _mm_add_ps (_mm256_castps256_ps128 (acc[g]), _mm256_extractf128_ps (acc[g], 1));
    float r[4];
    _mm_storeu_ps (r, _mm_hadd_ps (_mm_hadd_ps (h[0], h[1]), _mm_hadd_ps (h[2], h[3])));
    for (uint32_t g = 0; g < m; g++) {
      float s = r[g];
      for (size_t i = n8; i < n; i++)
        s += qg[g][i] * load1 (type, k, i);
      out[g0 + g] = s;
    }
  }
}

void
lev_avx2_dot_heads (uint32_t type, const float *q, size_t q_stride, uint32_t nq, const void *k, size_t n, float *out)
{
  if (type == LEV_QVEC_F16)
    dot_heads_type (LEV_QVEC_F16, q, q_stride, nq, k, n, out);
  else if (type == LEV_QVEC_I8)
    dot_heads_type (LEV_QVEC_I8, q, q_stride, nq, k, n, out);
  else
    dot_heads_type (LEV_QVEC_F32, q, q_stride, nq, k, n, out);
}

/* axpy_heads for one row type: each converted chunk of x is applied to every head's y. */
AI void
axpy_heads_type (uint32_t type, const float *a, uint32_t nq, const void *x, float *y, size_t ys, size_t n)
{
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 xv = load8 (type, x, i);
    for (uint32_t g = 0; g < nq; g++) {
      float *yg = y + g * ys + i;
      _mm256_storeu_ps (yg, _mm256_add_ps (_mm256_loadu_ps (yg), _mm256_mul_ps (_mm256_set1_ps (a[g]), xv)));
    }
  }
  for (; i < n; i++)
    for (uint32_t g = 0; g < nq; g++)
      y[g * ys + i] += a[g] * load1 (type, x, i);
}

void
lev_avx2_axpy_heads (uint32_t type, const float *a, uint32_t nq, const void *x, float *y, size_t y_stride, size_t n)
{
  if (type == LEV_QVEC_F16)
    axpy_heads_type (LEV_QVEC_F16, a, nq, x, y, y_stride, n);
  else if (type == LEV_QVEC_I8)
    axpy_heads_type (LEV_QVEC_I8, a, nq, x, y, y_stride, n);
  else
    axpy_heads_type (LEV_QVEC_F32, a, nq, x, y, y_stride, n);
}

/* attend_values for one row type: four heads by sixteen (or eight) columns stay in registers while every row passes,
 * so y is loaded and stored once; each y element still takes its rows' terms in row order, each term the product
 * of the broadcast weight and the converted value, added without fusing: the sums of axpy_heads row by row. */
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
    for (; i + 16 <= n; i += 16) {
      __m256 lo[4], hi[4];
#pragma GCC unroll 4
      for (int g = 0; g < 4; g++) {
        lo[g] = _mm256_loadu_ps (yg + (g < (int) m ? g : 0) * ys + i);
        hi[g] = _mm256_loadu_ps (yg + (g < (int) m ? g : 0) * ys + i + 8);
      }
      for (uint32_t s = 0; s < rows; s++) {
        const void *row = v + (size_t) s * vs;
        __m256 x0 = load8 (type, row, i), x1 = load8 (type, row, i + 8);
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) {
          __m256 w = _mm256_set1_ps (vsc ? ag[g][s] * vsc[(size_t) s * vscs] : ag[g][s]);
          lo[g] = _mm256_add_ps (lo[g], _mm256_mul_ps (w, x0));
          hi[g] = _mm256_add_ps (hi[g], _mm256_mul_ps (w, x1));
        }
      }
      for (uint32_t g = 0; g < m; g++) {
        _mm256_storeu_ps (yg + g * ys + i, lo[g]);
        _mm256_storeu_ps (yg + g * ys + i + 8, hi[g]);
      }
    }
    for (; i + 8 <= n; i += 8) {
      __m256 acc[4];
#pragma GCC unroll 4
      for (int g = 0; g < 4; g++)
        acc[g] = _mm256_loadu_ps (yg + (g < (int) m ? g : 0) * ys + i);
      for (uint32_t s = 0; s < rows; s++) {
        __m256 x0 = load8 (type, v + (size_t) s * vs, i);
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) {
          __m256 w = _mm256_set1_ps (vsc ? ag[g][s] * vsc[(size_t) s * vscs] : ag[g][s]);
          acc[g] = _mm256_add_ps (acc[g], _mm256_mul_ps (w, x0));
        }
      }
      for (uint32_t g = 0; g < m; g++)
        _mm256_storeu_ps (yg + g * ys + i, acc[g]);
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
lev_avx2_attend_values (uint32_t type, const float *a, size_t a_stride, uint32_t nq, const void *v, size_t v_stride,
                        const float *vscale, size_t vscale_stride, uint32_t n_rows, float *y, size_t y_stride,
                        size_t n)
{
  if (type == LEV_QVEC_F16)
    attend_values_type (LEV_QVEC_F16, a, a_stride, nq, v, v_stride, vscale, vscale_stride, n_rows, y, y_stride, n);
  else if (type == LEV_QVEC_I8)
    attend_values_type (LEV_QVEC_I8, a, a_stride, nq, v, v_stride, vscale, vscale_stride, n_rows, y, y_stride, n);
  else
    attend_values_type (LEV_QVEC_F32, a, a_stride, nq, v, v_stride, vscale, vscale_stride, n_rows, y, y_stride, n);
}

/* Four exponentials in double, the operations of lev_kernels.c's exp_clamped lane by lane. */
AI __m128
exp4_clamped (__m128 tf)
{
  const __m256d magic = _mm256_set1_pd (LEV_EXP_MAGIC);
  __m256d t = _mm256_max_pd (_mm256_set1_pd (LEV_EXP_MIN), _mm256_cvtps_pd (tf));   /* a NaN (second) stays */
  t = _mm256_min_pd (_mm256_set1_pd (LEV_EXP_MAX), t);
  __m256d kd = _mm256_add_pd (_mm256_mul_pd (t, _mm256_set1_pd (LEV_EXP_LOG2E)), magic);
  __m256d k = _mm256_sub_pd (kd, magic);
  __m256d r = _mm256_sub_pd (t, _mm256_mul_pd (k, _mm256_set1_pd (LEV_EXP_LN2)));
  static const double inv_fact[] = { 1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0,
                                     1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0 };
  __m256d p = _mm256_set1_pd (1.0 / 39916800.0);
#pragma GCC unroll 11
  for (int i = 0; i < 11; i++)
    p = _mm256_add_pd (_mm256_mul_pd (p, r), _mm256_set1_pd (inv_fact[i]));
  __m256i sbits = _mm256_slli_epi64 (_mm256_add_epi64 (_mm256_sub_epi64 (_mm256_castpd_si256 (kd),
                                                                         _mm256_castpd_si256 (magic)),
                                                        _mm256_set1_epi64x (1023)), 52);
  return _mm256_cvtpd_ps (_mm256_mul_pd (p, _mm256_castsi256_pd (sbits)));
}

/* lev_exp_sum: eight lanes, four exponentials at a time. */
static float
exp_sum (float *x, size_t n, float shift)
{
  __m256 sh = _mm256_set1_ps (shift), acc = _mm256_setzero_ps ();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 t = _mm256_sub_ps (_mm256_loadu_ps (x + i), sh);
    __m256 e = _mm256_set_m128 (exp4_clamped (_mm256_extractf128_ps (t, 1)),
                                exp4_clamped (_mm256_castps256_ps128 (t)));
    _mm256_storeu_ps (x + i, e);
    acc = _mm256_add_ps (acc, e);
  }
  float l[8];
  _mm256_storeu_ps (l, acc);
  float s = ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]));
  __m128 sh4 = _mm_set1_ps (shift);
  for (; i < n; i += 4) {      /* the tail, four lanes at a time through a buffer, summed in order */
    float buf[4] = { 0 };
    size_t m = n - i < 4 ? n - i : 4;
    for (size_t k = 0; k < m; k++)
      buf[k] = x[i + k];
    _mm_storeu_ps (buf, exp4_clamped (_mm_sub_ps (_mm_loadu_ps (buf), sh4)));
    for (size_t k = 0; k < m; k++) {
      x[i + k] = buf[k];
      s += buf[k];
    }
  }
  return s;
}

void
lev_avx2_softmax (float *x, size_t n, float div)
{
  __m256 dv = _mm256_set1_ps (div), m = _mm256_set1_ps (-INFINITY);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_div_ps (_mm256_loadu_ps (x + i), dv);
    _mm256_storeu_ps (x + i, v);
    m = _mm256_max_ps (v, m);  /* maxps gives its second operand when the first is NaN: a NaN is skipped */
  }
  float l[8], mx = -INFINITY;
  _mm256_storeu_ps (l, m);
  for (int k = 0; k < 8; k++)
    mx = l[k] > mx ? l[k] : mx;
  for (; i < n; i++) {
    x[i] = x[i] / div;
    mx = x[i] > mx ? x[i] : mx;
  }
  float sum = exp_sum (x, n, mx);
  __m256 sv = _mm256_set1_ps (sum);
  for (i = 0; i + 8 <= n; i += 8)
    _mm256_storeu_ps (x + i, _mm256_div_ps (_mm256_loadu_ps (x + i), sv));
  for (; i < n; i++)
    x[i] /= sum;
}

void
lev_avx2_silu_mul (float *g, const float *up, size_t n)
{
  const __m256 one = _mm256_set1_ps (1.0f), neg = _mm256_set1_ps (-0.0f);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps (g + i), t = _mm256_xor_ps (v, neg);
    __m256 e = _mm256_set_m128 (exp4_clamped (_mm256_extractf128_ps (t, 1)), exp4_clamped (_mm256_castps256_ps128 (t)));
    _mm256_storeu_ps (g + i, _mm256_mul_ps (_mm256_div_ps (v, _mm256_add_ps (one, e)), _mm256_loadu_ps (up + i)));
  }
  for (; i < n; i += 4) {      /* the tail, four lanes at a time through a buffer */
    float buf[4] = { 0 };
    size_t m = n - i < 4 ? n - i : 4;
    for (size_t k = 0; k < m; k++)
      buf[k] = -g[i + k];
    _mm_storeu_ps (buf, exp4_clamped (_mm_loadu_ps (buf)));
    for (size_t k = 0; k < m; k++)
      g[i + k] = g[i + k] / (1.0f + buf[k]) * up[i + k];
  }
}

/* Eight int8 codes of x * s (lev_quantize_absmax's rounding and clamp) as int32 lanes. */
AI __m256i
absmax_codes8 (__m256 x, __m256 s, int away)
{
  __m256 v = _mm256_mul_ps (x, s), r;
  if (away) {                  /* roundf: the integer part, one more step away from zero from a half on */
    __m256 t = _mm256_round_ps (v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 frac = _mm256_andnot_ps (_mm256_set1_ps (-0.0f), _mm256_sub_ps (v, t));
    __m256 step = _mm256_or_ps (_mm256_and_ps (v, _mm256_set1_ps (-0.0f)), _mm256_set1_ps (1.0f));
    r = _mm256_add_ps (t, _mm256_and_ps (_mm256_cmp_ps (frac, _mm256_set1_ps (0.5f), _CMP_GE_OQ), step));
  } else {
    const __m256 magic = _mm256_set1_ps (12582912.0f);
    r = _mm256_sub_ps (_mm256_add_ps (v, magic), magic);
  }
  __m256 hi = _mm256_blendv_ps (_mm256_set1_ps (127.0f), r, _mm256_cmp_ps (r, _mm256_set1_ps (127.0f), _CMP_LE_OQ));
  __m256 c = _mm256_blendv_ps (_mm256_set1_ps (-128.0f), hi, _mm256_cmp_ps (r, _mm256_set1_ps (-128.0f), _CMP_GE_OQ));
  return _mm256_cvtps_epi32 (c);
}

float
lev_avx2_quantize_absmax (const float *x, size_t n, int8_t *q, int away)
{
  const __m256 abs_mask = _mm256_castsi256_ps (_mm256_set1_epi32 (0x7fffffff));
  __m256 m = _mm256_setzero_ps ();
  size_t i = 0;
  for (; i + 8 <= n; i += 8)   /* maxps gives its second operand when either is NaN: a NaN is skipped */
    m = _mm256_max_ps (_mm256_and_ps (_mm256_loadu_ps (x + i), abs_mask), m);
  float l[8], amax = 0.0f;
  _mm256_storeu_ps (l, m);
  for (int k = 0; k < 8; k++)
    amax = l[k] > amax ? l[k] : amax;
  for (size_t k = i; k < n; k++) {
    float a = fabsf (x[k]);
    amax = a > amax ? a : amax;
  }
  float s = 127.0f / (amax > 1e-5f ? amax : 1e-5f);
  __m256 sv = _mm256_set1_ps (s);
  i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256i a = absmax_codes8 (_mm256_loadu_ps (x + i), sv, away);
    __m256i b = absmax_codes8 (_mm256_loadu_ps (x + i + 8), sv, away);
    __m256i c = absmax_codes8 (_mm256_loadu_ps (x + i + 16), sv, away);
    __m256i d = absmax_codes8 (_mm256_loadu_ps (x + i + 24), sv, away);
    /* the packs work within 128-bit halves: put the four quarters back in order */
    __m256i p = _mm256_packs_epi16 (_mm256_packs_epi32 (a, b), _mm256_packs_epi32 (c, d));
    p = _mm256_permutevar8x32_epi32 (p, _mm256_setr_epi32 (0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256 ((__m256i *) (q + i), p);
  }
  if (i < n) {                 /* the tail through a buffer of 32 */
    float buf[32] = { 0 };
    int32_t codes[32];
    for (size_t k = i; k < n; k++)
      buf[k - i] = x[k];
    for (int k = 0; k < 32; k += 8)
      _mm256_storeu_si256 ((__m256i *) (codes + k), absmax_codes8 (_mm256_loadu_ps (buf + k), sv, away));
    for (size_t k = i; k < n; k++)
      q[k] = (int8_t) codes[k - i];
  }
  return 1.0f / s;
}

/* Sparse outliers, eight entries at a time: gathered activations times F16C-converted values. */
static float
sparse_dot (const uint32_t *entries, uint32_t n, const float *x)
{
  __m256 acc = _mm256_setzero_ps ();
  const __m256i lo16 = _mm256_set1_epi32 (0xffff);
  uint32_t k = 0;
  for (; k + 8 <= n; k += 8) {
    __m256i e = _mm256_loadu_si256 ((const __m256i *) (entries + k));
    __m256 xv = _mm256_i32gather_ps (x, _mm256_and_si256 (e, lo16), 4);
    __m256i h = _mm256_srli_epi32 (e, 16);
    __m128i h16 = _mm_packus_epi32 (_mm256_castsi256_si128 (h), _mm256_extracti128_si256 (h, 1));
    acc = _mm256_fmadd_ps (_mm256_cvtph_ps (h16), xv, acc);
  }
  __m128 s4 = _mm_add_ps (_mm256_castps256_ps128 (acc), _mm256_extractf128_ps (acc, 1));
  s4 = _mm_add_ps (s4, _mm_movehl_ps (s4, s4));
  s4 = _mm_add_ss (s4, _mm_movehdup_ps (s4));
  return _mm_cvtss_f32 (s4) + lev_sparse_row_dot (entries + k, n - k, x);
}

/* lev_wht_block with eight lanes: each in-register stage gives lanes with bit h clear a + t and the others t - a,
 * t being the lane h away; the same operations on the same values as the scalar butterflies. */
static void
wht_block8 (float *v, size_t b)
{
  if (b < 8) {
    lev_wht_block (v, b);
    return;
  }
  for (size_t j = 0; j < b; j += 8) {    /* stages 1, 2, 4 inside each eight values */
    __m256 a = _mm256_loadu_ps (v + j), t;
    t = _mm256_permute_ps (a, 0xB1);
    a = _mm256_blend_ps (_mm256_add_ps (a, t), _mm256_sub_ps (t, a), 0xAA);
    t = _mm256_permute_ps (a, 0x4E);
    a = _mm256_blend_ps (_mm256_add_ps (a, t), _mm256_sub_ps (t, a), 0xCC);
    t = _mm256_permute2f128_ps (a, a, 0x01);
    a = _mm256_blend_ps (_mm256_add_ps (a, t), _mm256_sub_ps (t, a), 0xF0);
    _mm256_storeu_ps (v + j, a);
  }
  for (size_t h = 8; h < b; h *= 2)
    for (size_t i0 = 0; i0 < b; i0 += 2 * h)
      for (size_t j = i0; j < i0 + h; j += 8) {
        __m256 a = _mm256_loadu_ps (v + j), c = _mm256_loadu_ps (v + j + h);
        _mm256_storeu_ps (v + j, _mm256_add_ps (a, c));
        _mm256_storeu_ps (v + j + h, _mm256_sub_ps (a, c));
      }
}

void
lev_avx2_hadamard (float *x, size_t n, const float *signs)
{
  lev_hadamard_by_blocks (x, n, signs, wht_block8);
}

static const LevQKernels avx2_kernels = { "avx2", 0, { gemm_t2, gemm_t1, gemm_b1, gemm_q4 },
                                         { gemm_t2, gemm_t1, gemm_b1, gemm_q4 },
                                         dot_f32, axpy_f32, lev_avx2_dot_f16, lev_avx2_axpy_f16, lev_avx2_dot_i8,
                                         lev_avx2_axpy_i8, sparse_dot, lev_avx2_dot_heads, lev_avx2_axpy_heads,
                                         lev_avx2_attend_values, lev_avx2_softmax, lev_avx2_silu_mul,
                                         lev_avx2_quantize_absmax, lev_avx2_hadamard };

const LevQKernels *
lev_qkernels_avx2 (void)
{
  __builtin_cpu_init ();
  if (__builtin_cpu_supports ("avx2") && __builtin_cpu_supports ("fma"))
    return &avx2_kernels;
  return NULL;
}
#endif
