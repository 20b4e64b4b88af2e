/* test_qkernels.c: packed layouts round-trip; scalar, AVX2, AVX-512, NEON, NEON dotprod and i8mm kernels give
 * identical integer results. Plain C and libc only, so that CI can run it under qemu-aarch64 / qemu-arm for each
 * emulated CPU (LEV_TEST_EXPECT_KERNELS names the sets that CPU must have; LEV_TEST_EMULATED skips the timing). */
#define _POSIX_C_SOURCE 200809L   /* setenv under -std=c17 */
#include "lev_qkernels.h"
#include "lev_kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond, ...) do { if (!(cond)) { failures++; fprintf (stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf (stderr, __VA_ARGS__); fputc ('\n', stderr); if (failures > 20) exit (1); } } while (0)

static uint32_t rng = 0x12345678u;

/* xorshift32 */
static uint32_t
rnd (void)
{
  rng ^= rng << 13;
  rng ^= rng >> 17;
  rng ^= rng << 5;
  return rng;
}

static const uint32_t encs[] = { LEV_QENC_T2, LEV_QENC_T1, LEV_QENC_B1, LEV_QENC_Q4 };
/* Token counts of the kernel tests: every tile size of every implementation, and their remainders. */
static const size_t ntoks[] = { 1, 2, 3, 5, 8, 9, 13, 17 };

/* A random weight value allowed by enc. */
static int8_t
rnd_value (uint32_t enc)
{
  switch (enc) {
    case LEV_QENC_B1: return rnd () & 1 ? 1 : -1;
    case LEV_QENC_Q4: return (int8_t) ((int) (rnd () % 16) - 8);
    default: return (int8_t) ((int) (rnd () % 3) - 1);
  }
}

static void
test_roundtrip (void)
{
  static const size_t widths[] = { 1, 5, 31, 32, 63, 64, 65, 127, 128, 129, 160, 172, 255, 256, 320, 896, 1000 };
  for (size_t e = 0; e < sizeof encs / sizeof encs[0]; e++)
    for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++) {
      size_t cols = widths[i], rb = lev_qenc_row_bytes (encs[e], cols);
      int8_t *v = malloc (cols), *u = malloc (cols);
      uint8_t *p = malloc (rb);
      for (size_t c = 0; c < cols; c++)
        v[c] = rnd_value (encs[e]);
      lev_qpack_row (encs[e], v, cols, p);
      lev_qunpack_row (encs[e], p, cols, u);
      CHECK (memcmp (u, v, cols) == 0, "%s round trip of %zu weights", lev_qenc_name (encs[e]), cols);
      CHECK (rb * 8 <= (cols + lev_qenc_block_weights (encs[e])) * (encs[e] == LEV_QENC_Q4 ? 4 : 2),
             "%s row bytes %zu for %zu", lev_qenc_name (encs[e]), rb, cols);
      free (v);
      free (u);
      free (p);
    }
  /* every one of the 243 trit patterns survives t1 */
  for (int v = 0; v < 243; v++) {
    int8_t vals[160] = { 0 }, out[160];
    uint8_t p[32];
    for (int i = 0, x = v; i < 5; i++, x /= 3)
      vals[32 * (4 - i)] = (int8_t) (x % 3 - 1);
    lev_qpack_row (LEV_QENC_T1, vals, 160, p);
    lev_qunpack_row (LEV_QENC_T1, p, 160, out);
    CHECK (memcmp (vals, out, 160) == 0, "t1 trit pattern %d", v);
  }
}

typedef struct {
  size_t n, stride;
  int8_t *q, *q2;
  int32_t *sum, *csum;
  float *scale;
  LevQAct act;
} Acts;

static Acts
make_acts (size_t n, size_t cols)
{
  Acts a;
  a.n = n;
  a.stride = (cols + LEV_QPAD - 1) / LEV_QPAD * LEV_QPAD;
  a.q = calloc (n * a.stride, 1);
  a.q2 = calloc (2 * n * a.stride, 1);
  a.sum = calloc (n, sizeof (int32_t));
  a.csum = calloc (n * a.stride / 32, sizeof (int32_t));
  a.scale = calloc (n, sizeof (float));
  for (size_t t = 0; t < n; t++) {
    for (size_t c = 0; c < cols; c++)
      a.q[t * a.stride + c] = (int8_t) (rnd () & 0xff);
    lev_qact_finish_row (a.q + t * a.stride, a.stride, a.q2 + 2 * t * a.stride, &a.sum[t], a.csum + t * a.stride / 32);
    a.scale[t] = t % 3 == 0 ? 1.0f : (float) (rnd () % 1000 + 1) / 4096.0f;
  }
  a.act = (LevQAct) { (uint32_t) n, a.stride, a.q, a.q2, a.sum, a.scale, a.csum };
  return a;
}

static void
free_acts (Acts *a)
{
  free (a->q);
  free (a->q2);
  free (a->sum);
  free (a->csum);
  free (a->scale);
}

static void
test_kernels (void)
{
  const LevQKernels *impls[LEV_QMAX_SIMD_SETS] = { NULL };
  lev_qkernels_simd_sets (impls);
  const LevQKernels *scalar = lev_qkernels_scalar ();
  static const size_t shapes[][2] = { { 1, 1 }, { 3, 64 }, { 2, 65 }, { 7, 128 }, { 5, 172 }, { 17, 256 },
                                      { 9, 320 }, { 33, 896 }, { 4, 1000 }, { 64, 64 }, { 65, 2048 },
                                      { 130, 160 }, { 3, 5632 } };
  size_t checked = 0;
  for (size_t e = 0; e < sizeof encs / sizeof encs[0]; e++)
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
      uint32_t enc = encs[e];
      size_t rows = shapes[s][0], cols = shapes[s][1], rb = lev_qenc_row_bytes (enc, cols);
      int8_t *vals = malloc (rows * cols);
      uint8_t *codes = malloc (rows * rb);
      float *scales = malloc (rows * sizeof (float));
      for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < cols; c++)
          vals[r * cols + c] = rnd_value (enc);
        lev_qpack_row (enc, vals + r * cols, cols, codes + r * rb);
        scales[r] = (float) (rnd () % 1000 + 1) / 512.0f;
      }
      LevQMatrix w = { enc, (uint32_t) rows, (uint32_t) cols, (uint32_t) lev_qenc_cols_padded (enc, cols), rb, codes,
                       scales, s % 2 ? 1u : (uint32_t) rows };
      /* one token (the decode kernels), then two token counts of the prefill tiles */
      size_t n0 = ntoks[s % (sizeof ntoks / sizeof ntoks[0])];
      for (int pass = 0; pass < 3; pass++) {
        size_t n = pass == 0 ? 1 : pass == 1 ? n0 : n0 * 3 + 1;
        Acts a = make_acts (n, cols);
        float *ref = malloc (n * rows * sizeof (float)), *y = malloc (n * rows * sizeof (float));
        for (size_t t = 0; t < n; t++)
          for (size_t r = 0; r < rows; r++) {
            int32_t dot = 0;
            for (size_t c = 0; c < cols; c++)
              dot += vals[r * cols + c] * a.q[t * a.stride + c];
            ref[t * rows + r] = (float) dot * (lev_qmatrix_scale (&w, r) * a.scale[t]);
          }
        lev_qgemm (scalar, &w, &a.act, y, rows, 0, rows);
        CHECK (memcmp (y, ref, n * rows * sizeof (float)) == 0, "scalar %s %zux%zu, %zu tokens", lev_qenc_name (enc),
               rows, cols, n);
        for (size_t k = 0; k < sizeof impls / sizeof impls[0]; k++) {
          if (!impls[k])
            continue;
          /* all rows at once, then in three uneven ranges (how threads split them) */
          memset (y, 0xff, n * rows * sizeof (float));
          lev_qgemm (impls[k], &w, &a.act, y, rows, 0, rows);
          CHECK (memcmp (y, ref, n * rows * sizeof (float)) == 0, "%s %s %zux%zu, %zu tokens", impls[k]->name,
                 lev_qenc_name (enc), rows, cols, n);
          memset (y, 0xff, n * rows * sizeof (float));
          size_t a1 = rows / 3, a2 = rows - rows / 4;
          lev_qgemm (impls[k], &w, &a.act, y, rows, 0, a1);
          lev_qgemm (impls[k], &w, &a.act, y, rows, a1, a2);
          lev_qgemm (impls[k], &w, &a.act, y, rows, a2, rows);
          CHECK (memcmp (y, ref, n * rows * sizeof (float)) == 0, "%s %s %zux%zu split, %zu tokens", impls[k]->name,
                 lev_qenc_name (enc), rows, cols, n);
          checked++;
        }
        /* the float-activation reference path: within float rounding of the exact sum */
        float *xf = malloc (cols * sizeof (float));
        for (size_t c = 0; c < cols; c++)
          xf[c] = (float) a.q[c] / 64.0f;
        for (size_t r = 0; r < rows; r++) {
          double exact = 0;
          for (size_t c = 0; c < cols; c++)
            exact += (double) vals[r * cols + c] * xf[c];
          exact *= lev_qmatrix_scale (&w, r);
          double got = lev_qdot_f32 (&w, r, xf);
          CHECK (fabs (got - exact) <= 1e-5 * cols * fabs (lev_qmatrix_scale (&w, r)) * 16 + 1e-6,
                 "qdot_f32 %s row %zu: %g vs %g", lev_qenc_name (enc), r, got, exact);
        }
        free (xf);
        free (ref);
        free (y);
        free_acts (&a);
      }
      free (vals);
      free (codes);
      free (scales);
    }
  printf ("kernels: %zu SIMD comparisons (", checked);
  for (size_t k = 0; k < sizeof impls / sizeof impls[0]; k++)
    if (impls[k])
      printf (" %s", impls[k]->name);
  printf (" ), chosen: %s\n", lev_qkernels_choice ());
}

/* Per-group scales (one per block or half block of each row): every implementation, the scalar reference
 * included, within float rounding of a double-precision sum of the exact per-group integer dot products times their
 * scales. The bound is 1e-5 of the sum of |scale| times three times the group's sum of |x| (what the codes' offset
 * can cancel), per token, far below what one misplaced scale costs. */
static void
test_grouped_kernels (void)
{
  const LevQKernels *impls[1 + LEV_QMAX_SIMD_SETS] = { lev_qkernels_scalar () };
  lev_qkernels_simd_sets (impls + 1);
  /* every encoding with groups of one block, t2 and b1 also with half blocks */
  static const uint32_t genc[][2] = { { LEV_QENC_T2, 128 }, { LEV_QENC_T2, 64 }, { LEV_QENC_T1, 160 },
                                      { LEV_QENC_B1, 128 }, { LEV_QENC_B1, 64 } };
  static const size_t shapes[][2] = { { 1, 200 }, { 3, 256 }, { 2, 321 }, { 7, 896 }, { 5, 172 }, { 17, 2048 },
                                      { 65, 640 }, { 3, 5632 } };
  size_t checked = 0;
  for (size_t e = 0; e < sizeof genc / sizeof genc[0]; e++)
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
      uint32_t enc = genc[e][0];
      size_t rows = shapes[s][0], cols = shapes[s][1], rb = lev_qenc_row_bytes (enc, cols);
      size_t bw = genc[e][1], nb = lev_qenc_cols_padded (enc, cols) / bw;   /* group weights, groups per row */
      int8_t *vals = malloc (rows * cols);
      uint8_t *codes = malloc (rows * rb);
      float *scales = malloc (rows * nb * sizeof (float));
      for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < cols; c++)
          vals[r * cols + c] = rnd_value (enc);
        lev_qpack_row (enc, vals + r * cols, cols, codes + r * rb);
        for (size_t b = 0; b < nb; b++)
          scales[r * nb + b] = (float) (rnd () % 1000 + 1) / 512.0f * (b % 5 == 3 ? -1.0f : 1.0f);
      }
      LevQMatrix w = { enc, (uint32_t) rows, (uint32_t) cols, (uint32_t) (nb * bw), rb, codes, scales,
                       (uint32_t) (rows * nb) };
      CHECK (lev_qmatrix_grouped (&w) && lev_qmatrix_group_weights (&w) == bw, "%zux%zu %s is grouped by %zu", rows,
             cols, lev_qenc_name (enc), bw);
      for (int pass = 0; pass < 2; pass++) {   /* one token (the decode kernels), then a prefill tile count */
        size_t n = pass == 0 ? 1 : ntoks[s % (sizeof ntoks / sizeof ntoks[0])];
        Acts a = make_acts (n, cols);
        double *ref = malloc (n * rows * sizeof (double)), *tol = malloc (n * rows * sizeof (double));
        for (size_t t = 0; t < n; t++)
          for (size_t r = 0; r < rows; r++) {
            double acc = 0.0, mag = 0.0;
            for (size_t b = 0; b < nb; b++) {
              int32_t dot = 0, xabs = 0;
              for (size_t c = b * bw; c < cols && c < (b + 1) * bw; c++) {
                dot += vals[r * cols + c] * a.q[t * a.stride + c];
                xabs += abs (a.q[t * a.stride + c]);
              }
              acc += (double) scales[r * nb + b] * dot;
              mag += fabs (scales[r * nb + b]) * 3.0 * xabs;
            }
            ref[t * rows + r] = acc * a.scale[t];
            tol[t * rows + r] = 1e-5 * mag * a.scale[t] + 1e-30;
          }
        float *y = malloc (n * rows * sizeof (float));
        for (size_t k = 0; k < sizeof impls / sizeof impls[0]; k++) {
          if (!impls[k])
            continue;
          for (int split = 0; split < 2; split++) {
            memset (y, 0xff, n * rows * sizeof (float));
            if (split) {
              size_t a1 = rows / 3, a2 = rows - rows / 4;
              lev_qgemm (impls[k], &w, &a.act, y, rows, 0, a1);
              lev_qgemm (impls[k], &w, &a.act, y, rows, a1, a2);
              lev_qgemm (impls[k], &w, &a.act, y, rows, a2, rows);
            } else {
              lev_qgemm (impls[k], &w, &a.act, y, rows, 0, rows);
            }
            for (size_t i = 0; i < n * rows; i++)
              CHECK (fabs (y[i] - ref[i]) <= tol[i], "%s grouped %s/%zu %zux%zu%s, %zu tokens, output %zu: %.9g vs %.9g",
                     impls[k]->name, lev_qenc_name (enc), bw, rows, cols, split ? " split" : "", n, i, y[i], ref[i]);
          }
          checked++;
        }
        /* the float-activation path uses the group scales too */
        float *xf = malloc (cols * sizeof (float));
        for (size_t c = 0; c < cols; c++)
          xf[c] = (float) a.q[c] / 64.0f;
        for (size_t r = 0; r < rows; r++) {
          double exact = 0.0, mag = 0.0;
          for (size_t c = 0; c < cols; c++) {
            double sc = scales[r * nb + c / bw];
            exact += sc * vals[r * cols + c] * xf[c];
            mag += fabs (sc * xf[c]);
            CHECK (lev_qmatrix_col_scale (&w, r, c) == (float) sc, "column scale %zu/%zu", r, c);
          }
          double got = lev_qdot_f32 (&w, r, xf);
          CHECK (fabs (got - exact) <= 1e-5 * mag + 1e-6, "grouped qdot_f32 %s row %zu: %g vs %g", lev_qenc_name (enc),
                 r, got, exact);
        }
        free (xf);
        free (y);
        free (ref);
        free (tol);
        free_acts (&a);
      }
      free (vals);
      free (codes);
      free (scales);
    }
  printf ("grouped kernels: %zu comparisons with a double-precision reference\n", checked);
}

static void
test_attention_helpers (void)
{
  /* dot and axpy of every implementation equal the scalar ones bit for bit */
  const LevQKernels *impls[LEV_QMAX_SIMD_SETS] = { NULL };
  lev_qkernels_simd_sets (impls);
  const LevQKernels *scalar = lev_qkernels_scalar ();
  static const size_t lens[] = { 1, 7, 8, 15, 16, 17, 64, 100, 128, 255 };
  float a[256], b[256], y0[256], y1[256];
  for (size_t i = 0; i < 256; i++) {
    a[i] = (float) ((int) (rnd () % 2001) - 1000) / 317.0f;
    b[i] = (float) ((int) (rnd () % 2001) - 1000) / 113.0f;
  }
  for (size_t k = 0; k < sizeof impls / sizeof impls[0]; k++) {
    if (!impls[k])
      continue;
    for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
      size_t n = lens[l];
      float d0 = scalar->dot_f32 (a, b, n), d1 = impls[k]->dot_f32 (a, b, n);
      CHECK (memcmp (&d0, &d1, sizeof d0) == 0, "%s dot of %zu: %.9g vs %.9g", impls[k]->name, n, d1, d0);
      memcpy (y0, b, sizeof y0);
      memcpy (y1, b, sizeof y1);
      scalar->axpy_f32 (0.37f, a, y0, n);
      impls[k]->axpy_f32 (0.37f, a, y1, n);
      CHECK (memcmp (y0, y1, sizeof y0) == 0, "%s axpy of %zu", impls[k]->name, n);
      uint16_t h[256];
      int8_t q[256];
      for (size_t i = 0; i < n; i++) {
        h[i] = lev_f32_to_f16 (b[i]);
        q[i] = (int8_t) (rnd () & 0xff);
      }
      d0 = scalar->dot_f16 (a, h, n), d1 = impls[k]->dot_f16 (a, h, n);
      CHECK (memcmp (&d0, &d1, sizeof d0) == 0, "%s dot_f16 of %zu", impls[k]->name, n);
      d0 = scalar->dot_i8 (a, q, n), d1 = impls[k]->dot_i8 (a, q, n);
      CHECK (memcmp (&d0, &d1, sizeof d0) == 0, "%s dot_i8 of %zu", impls[k]->name, n);
      memcpy (y0, b, sizeof y0);
      memcpy (y1, b, sizeof y1);
      scalar->axpy_f16 (0.37f, h, y0, n);
      impls[k]->axpy_f16 (0.37f, h, y1, n);
      scalar->axpy_i8 (-0.11f, q, y0, n);
      impls[k]->axpy_i8 (-0.11f, q, y1, n);
      CHECK (memcmp (y0, y1, sizeof y0) == 0, "%s axpy_f16/axpy_i8 of %zu", impls[k]->name, n);
    }
  }
}

/* quantize_absmax of every implementation equals the scalar lev_quantize_absmax (codes and scale, both roundings):
 * exact halves, values past the clamp's ends by rounding, NaN and infinity, all zeros, lengths with tails. */
static void
test_quantize_absmax (void)
{
  const LevQKernels *impls[1 + LEV_QMAX_SIMD_SETS] = { lev_qkernels_scalar () };
  lev_qkernels_simd_sets (impls + 1);
  enum { N = 300 };
  static const size_t lens[] = { 1, 7, 8, 31, 32, 33, 64, 100, N };
  static float x[N];
  int8_t q0[N], q1[N];
  size_t checked = 0;
  for (int kind = 0; kind < 5; kind++) {
    for (size_t i = 0; i < N; i++) {
      switch (kind) {
      case 0: x[i] = (float) ((int) (rnd () % 255) - 127) + 0.5f * (float) (rnd () % 2); break;   /* halves */
      case 1: x[i] = (float) ((int) (rnd () % 20001) - 10000) / 77.0f; break;
      case 2: x[i] = 0.0f; break;
      case 3: x[i] = i % 37 == 5 ? NAN : (float) ((int) (rnd () % 2001) - 1000) / 7.0f; break;
      default: x[i] = i % 41 == 3 ? -INFINITY : (float) ((int) (rnd () % 2001) - 1000) * 1e-9f; break;
      }
    }
    if (kind == 0)
      x[0] = 127.0f;          /* scale 1: the halves stay halves */
    for (size_t k = 0; k < sizeof impls / sizeof impls[0]; k++) {
      if (!impls[k])
        continue;
      for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++)
        for (int away = 0; away < 2; away++) {
          float s0 = lev_quantize_absmax (x, lens[l], q0, away);
          float s1 = impls[k]->quantize_absmax (x, lens[l], q1, away);
          CHECK (memcmp (&s0, &s1, 4) == 0 && memcmp (q0, q1, lens[l]) == 0, "%s quantize_absmax kind %d of %zu%s",
                 impls[k]->name, kind, lens[l], away ? " (away)" : "");
          checked++;
        }
    }
  }
  /* the two roundings differ exactly on the even halves: 2.5 -> 2 and 3 */
  float h[] = { 127.0f, 2.5f, -2.5f, 3.5f };
  lev_quantize_absmax (h, 4, q0, 0);
  lev_quantize_absmax (h, 4, q1, 1);
  CHECK (q0[1] == 2 && q0[2] == -2 && q0[3] == 4 && q1[1] == 3 && q1[2] == -3 && q1[3] == 4,
         "quantize_absmax halves: %d %d %d / %d %d %d", q0[1], q0[2], q0[3], q1[1], q1[2], q1[3]);
  printf ("quantize_absmax: %zu comparisons\n", checked);
}

/* lev_hadamard against its definition (Sylvester's Hadamard matrix, H[i][j] = (-1)^popcount(i & j) / sqrt(b), on
 * the blocks of n's set bits, largest first, after the signs), computed here in double for every width up to 72 and
 * the model widths 172, 192, 512, 2048, 5632; the norm kept (orthogonal); every implementation bit-identical to the
 * scalar one; and the signs' splitmix64 stream against its published first output (seed 0 state 0: 0xE220A8397B1DCDAF,
 * bits 0..3 = 1, 1, 1, 1 -> signs -1). */
static void
test_hadamard (void)
{
  const LevQKernels *impls[] = { lev_qkernels_scalar (), lev_qkernels_avx2 (), lev_qkernels_avx512 (),
                                 lev_qkernels_avx512vbmi (), lev_qkernels_neon () };
  enum { N = 5632 };
  static float x[N], y0[N], y1[N], sg[N];
  static double ref[N];
  static size_t lens[80];
  size_t nl = 0, checked = 0;
  for (size_t n = 1; n <= 72; n++)
    lens[nl++] = n;
  lens[nl++] = 172;
  lens[nl++] = 192;
  lens[nl++] = 512;
  lens[nl++] = 2048;
  lens[nl++] = N;
  for (size_t l = 0; l < nl; l++) {
    size_t n = lens[l];
    lev_hadamard_signs (7, (uint32_t) l, sg, n);
    double nx = 0.0, ny = 0.0, err = 0.0;
    for (size_t i = 0; i < n; i++) {
      x[i] = (float) ((int) (rnd () % 20001) - 10000) / 997.0f;
      nx += (double) x[i] * x[i];
      CHECK (sg[i] == 1.0f || sg[i] == -1.0f, "sign %zu of %zu is %g", i, n, sg[i]);
    }
    memcpy (y0, x, n * sizeof (float));
    lev_hadamard (y0, n, sg);
    if (n <= 72 || n == 172 || n == 192 || n == 512) {   /* the definition, O(n^2) */
      size_t off = 0;
      for (int bit = 30; bit >= 0; bit--) {
        size_t b = (size_t) 1 << bit;
        if (!(n & b))
          continue;
        for (size_t i = 0; i < b; i++) {
          double acc = 0.0;
          for (size_t j = 0; j < b; j++)
            acc += (__builtin_popcountll (i & j) & 1 ? -1.0 : 1.0) * sg[off + j] * x[off + j];
          ref[off + i] = acc / sqrt ((double) b);
        }
        off += b;
      }
      for (size_t i = 0; i < n; i++)
        err = fmax (err, fabs (ref[i] - y0[i]));
      CHECK (err < 1e-4, "lev_hadamard of %zu: %g from the definition", n, err);
    }
    for (size_t i = 0; i < n; i++)
      ny += (double) y0[i] * y0[i];
    CHECK (fabs (ny - nx) <= 1e-5 * nx, "lev_hadamard of %zu: norm %g -> %g", n, nx, ny);
    for (size_t k = 0; k < sizeof impls / sizeof impls[0]; k++) {
      if (!impls[k])
        continue;
      memcpy (y1, x, n * sizeof (float));
      impls[k]->hadamard (y1, n, sg);
      CHECK (memcmp (y0, y1, n * sizeof (float)) == 0, "%s hadamard of %zu differs from the scalar one",
             impls[k]->name, n);
      checked++;
    }
  }
  lev_hadamard_signs (0, 0, sg, 4);
  CHECK (sg[0] == -1.0f && sg[1] == -1.0f && sg[2] == -1.0f && sg[3] == -1.0f, "splitmix64's first output: signs "
         "%g %g %g %g", sg[0], sg[1], sg[2], sg[3]);
  printf ("hadamard: %zu comparisons\n", checked);
}

/* lev_exp_sum: the C library's expf (a reference we did not write) to the last bit but for rare rounding boundaries
 * over softmax's range (at most one in a thousand results one ulp apart), NaN kept; softmax: a distribution (sum 1
 * within rounding, the maximum's weight the largest) and every implementation bit-identical to the scalar one for
 * lengths with tails, with a NaN score and without; silu_mul likewise, and against expf. */
static void
test_exponentials (void)
{
  const LevQKernels *impls[1 + LEV_QMAX_SIMD_SETS] = { lev_qkernels_scalar () };
  lev_qkernels_simd_sets (impls + 1);
  enum { N = 4099 };
  static float x[N], x0[N], x1[N];
  size_t differ = 0, worst_ulp = 0;
  for (size_t i = 0; i < N; i++)
    x[i] = -(float) i * (110.0f / (N - 1));            /* 0 .. -110 evenly, denormal results and zeros too */
  memcpy (x0, x, sizeof x);
  lev_exp_sum (x0, N, 0.0f);
  for (size_t i = 0; i < N; i++) {
    float ref = expf (x[i]);
    int32_t a, b;
    memcpy (&a, &ref, 4);
    memcpy (&b, &x0[i], 4);
    size_t ulp = (size_t) (a > b ? a - b : b - a);
    differ += ulp != 0;
    worst_ulp = ulp > worst_ulp ? ulp : worst_ulp;
  }
  CHECK (worst_ulp <= 1 && differ * 1000 <= N, "exp_sum against expf: %zu of %d differ, by up to %zu ulp", differ, N,
         worst_ulp);
  float edge[] = { -104.5f, -INFINITY, NAN, 0.0f, -1e-30f };
  lev_exp_sum (edge, 5, 0.0f);
  CHECK (edge[0] == 0.0f && edge[1] == 0.0f && isnan (edge[2]) && edge[3] == 1.0f && edge[4] == 1.0f,
         "exp_sum edges: %g %g %g %g %g", edge[0], edge[1], edge[2], edge[3], edge[4]);
  static const size_t lens[] = { 1, 5, 8, 13, 64, 1000, N };
  size_t checked = 0;
  for (size_t k = 0; k < sizeof impls / sizeof impls[0]; k++) {
    if (!impls[k])
      continue;
    for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++)
      for (int with_nan = 0; with_nan < 2; with_nan++) {
        for (size_t i = 0; i < lens[l]; i++)
          x0[i] = x1[i] = (float) ((int) (rnd () % 20001) - 10000) / 97.0f;
        if (with_nan)
          x0[lens[l] / 2] = x1[lens[l] / 2] = NAN;
        lev_softmax (x0, lens[l], 8.0f);
        impls[k]->softmax (x1, lens[l], 8.0f);
        CHECK (memcmp (x0, x1, lens[l] * 4) == 0, "%s softmax of %zu%s", impls[k]->name, lens[l],
               with_nan ? " with a NaN" : "");
        if (k == 0 && !with_nan) {
          double total = 0.0;
          for (size_t i = 0; i < lens[l]; i++)
            total += x0[i];
          CHECK (fabs (total - 1.0) < 1e-5, "softmax of %zu sums to %.9g", lens[l], total);
        }
        checked++;
      }
  }
  /* silu_mul: the same exponential on both sides of zero, saturating to 0 and -0 far out */
  static float g0[N], g1[N], up[N];
  for (size_t i = 0; i < N; i++) {
    g0[i] = g1[i] = (float) ((int) (rnd () % 40001) - 20000) / 100.0f;
    up[i] = (float) ((int) (rnd () % 2001) - 1000) / 300.0f;
  }
  g0[7] = g1[7] = NAN;
  for (size_t k = 0; k < sizeof impls / sizeof impls[0]; k++) {
    if (!impls[k])
      continue;
    for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
      memcpy (g1, g0, sizeof g0);
      float ref[N];
      memcpy (ref, g0, sizeof g0);
      lev_silu_mul (ref, up, lens[l]);
      impls[k]->silu_mul (g1, up, lens[l]);
      CHECK (memcmp (ref, g1, lens[l] * 4) == 0, "%s silu_mul of %zu", impls[k]->name, lens[l]);
      checked++;
    }
  }
  size_t silu_differ = 0;
  memcpy (g1, g0, sizeof g0);
  lev_silu_mul (g1, up, N);
  for (size_t i = 0; i < N; i++) {
    if (i == 7) {
      CHECK (isnan (g1[i]), "silu_mul of NaN: %g", g1[i]);
      continue;
    }
    float want = g0[i] / (1.0f + expf (-g0[i])) * up[i];
    silu_differ += memcmp (&want, &g1[i], 4) != 0;
  }
  CHECK (silu_differ * 1000 <= N, "silu_mul against expf: %zu of %d differ", silu_differ, N);
  printf ("exp_sum: %zu of %d results differ from expf's (by up to %zu ulp); silu_mul: %zu of %d differ from "
          "expf's; softmax and silu_mul: %zu comparisons\n", differ, N, worst_ulp, silu_differ, N, checked);
}

/* attend_values of every implementation equals the scalar axpy of each head, row after row, bit for bit: every row
 * type, with and without int8 row scales, head counts with tails of four and eight, lengths with tails of eight
 * and sixteen, row counts from one. */
static void
test_attend_values (void)
{
  const LevQKernels *impls[1 + LEV_QMAX_SIMD_SETS] = { lev_qkernels_scalar () };
  lev_qkernels_simd_sets (impls + 1);
  const LevQKernels *scalar = lev_qkernels_scalar ();
  static const size_t lens[] = { 1, 8, 17, 24, 64, 100, 128 };
  static const uint32_t nqs[] = { 1, 3, 4, 7, 8, 9 };
  static const uint32_t nrows[] = { 1, 2, 13, 40 };
  enum { QS = 131, ROWS = 40, VS = 160, AS = 43 };   /* output, value row (elements) and weight strides */
  static float vf[ROWS * VS], y0[9 * QS], y1[9 * QS], a[9 * AS], vsc[ROWS * 3];
  static uint16_t vh[ROWS * VS];
  static int8_t v8[ROWS * VS];
  for (size_t i = 0; i < ROWS * VS; i++) {
    vf[i] = (float) ((int) (rnd () % 2001) - 1000) / 113.0f;
    vh[i] = lev_f32_to_f16 (vf[i]);
    v8[i] = (int8_t) (rnd () & 0xff);
  }
  for (size_t i = 0; i < 9 * AS; i++)
    a[i] = (float) (rnd () % 1000) / 997.0f;
  for (size_t i = 0; i < ROWS * 3; i++)
    vsc[i] = (float) (rnd () % 1000 + 1) / 12700.0f;
  const void *rows[] = { vf, vh, v8 };
  const size_t elem[] = { 4, 2, 1 };
  size_t checked = 0;
  for (size_t k = 0; k < sizeof impls / sizeof impls[0]; k++) {
    if (!impls[k])
      continue;
    for (uint32_t type = LEV_QVEC_F32; type <= LEV_QVEC_I8; type++)
      for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++)
        for (size_t m = 0; m < sizeof nqs / sizeof nqs[0]; m++)
          for (size_t r = 0; r < sizeof nrows / sizeof nrows[0]; r++)
            for (int scaled = 0; scaled < 2; scaled++) {
              size_t n = lens[l];
              uint32_t nq = nqs[m], nr = nrows[r];
              const float *sc = scaled ? vsc + 1 : NULL;       /* every third scale */
              for (size_t i = 0; i < 9 * QS; i++)
                y0[i] = y1[i] = (float) ((int) (i * 7 % 2001) - 1000) / 317.0f;
              for (uint32_t s = 0; s < nr; s++)
                for (uint32_t g = 0; g < nq; g++) {
                  float w = sc ? a[g * AS + s] * sc[s * 3] : a[g * AS + s];
                  if (type == LEV_QVEC_F16)
                    scalar->axpy_f16 (w, vh + s * VS, y0 + g * QS, n);
                  else if (type == LEV_QVEC_I8)
                    scalar->axpy_i8 (w, v8 + s * VS, y0 + g * QS, n);
                  else
                    scalar->axpy_f32 (w, vf + s * VS, y0 + g * QS, n);
                }
              impls[k]->attend_values (type, a, AS, nq, rows[type], VS * elem[type], sc, 3, nr, y1, QS, n);
              CHECK (memcmp (y0, y1, sizeof y0) == 0, "%s attend_values type %u, %u heads of %zu, %u rows%s",
                     impls[k]->name, type, nq, n, nr, scaled ? ", scaled" : "");
              checked++;
            }
  }
  printf ("attend_values: %zu comparisons\n", checked);
}

/* dot_heads / axpy_heads of every implementation (scalar included) equal the scalar per-head dot / axpy bit for
 * bit, for every row type, head count (tails of four) and length (tails of eight). */
static void
test_attention_heads (void)
{
  const LevQKernels *impls[1 + LEV_QMAX_SIMD_SETS] = { lev_qkernels_scalar () };
  lev_qkernels_simd_sets (impls + 1);
  const LevQKernels *scalar = lev_qkernels_scalar ();
  static const size_t lens[] = { 1, 7, 8, 17, 64, 100, 128 };
  static const uint32_t nqs[] = { 1, 3, 4, 5, 8, 9 };
  enum { QS = 131 };          /* query and output row stride, longer than any length */
  float q[9 * QS], kf[128], y0[9 * QS], y1[9 * QS], a[9], d0[9], d1[9];
  uint16_t kh[128];
  int8_t k8[128];
  for (size_t i = 0; i < 9 * QS; i++)
    q[i] = (float) ((int) (rnd () % 2001) - 1000) / 317.0f;
  for (size_t i = 0; i < 128; i++) {
    kf[i] = (float) ((int) (rnd () % 2001) - 1000) / 113.0f;
    kh[i] = lev_f32_to_f16 (kf[i]);
    k8[i] = (int8_t) (rnd () & 0xff);
  }
  const void *rows[] = { kf, kh, k8 };
  size_t checked = 0;
  for (size_t k = 0; k < sizeof impls / sizeof impls[0]; k++) {
    if (!impls[k])
      continue;
    for (uint32_t type = LEV_QVEC_F32; type <= LEV_QVEC_I8; type++)
      for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++)
        for (size_t m = 0; m < sizeof nqs / sizeof nqs[0]; m++) {
          size_t n = lens[l];
          uint32_t nq = nqs[m];
          impls[k]->dot_heads (type, q, QS, nq, rows[type], n, d1);
          for (size_t i = 0; i < 9 * QS; i++)
            y0[i] = y1[i] = q[(i * 7) % (9 * QS)];
          for (uint32_t g = 0; g < nq; g++) {
            const float *qg = q + g * QS;
            a[g] = (float) ((int) (rnd () % 2001) - 1000) / 997.0f;
            d0[g] = type == LEV_QVEC_F16 ? scalar->dot_f16 (qg, kh, n)
                    : type == LEV_QVEC_I8 ? scalar->dot_i8 (qg, k8, n) : scalar->dot_f32 (qg, kf, n);
            if (type == LEV_QVEC_F16)
              scalar->axpy_f16 (a[g], kh, y0 + g * QS, n);
            else if (type == LEV_QVEC_I8)
              scalar->axpy_i8 (a[g], k8, y0 + g * QS, n);
            else
              scalar->axpy_f32 (a[g], kf, y0 + g * QS, n);
          }
          impls[k]->axpy_heads (type, a, nq, rows[type], y1, QS, n);
          CHECK (memcmp (d0, d1, nq * sizeof (float)) == 0, "%s dot_heads type %u, %u heads of %zu", impls[k]->name,
                 type, nq, n);
          CHECK (memcmp (y0, y1, sizeof y0) == 0, "%s axpy_heads type %u, %u heads of %zu", impls[k]->name, type, nq,
                 n);
          checked++;
        }
  }
  printf ("attention heads: %zu comparisons\n", checked);
}

static void
test_sparse (void)
{
  /* the scalar outlier product converts every finite half exactly as lev_f16_to_f32 does */
  float one = 1.0f;
  for (uint32_t h = 0; h < 65536; h++) {
    float ref = lev_f16_to_f32 ((uint16_t) h);
    if (!isfinite (ref))
      continue;
    uint32_t e = h << 16;
    float got = lev_sparse_row_dot (&e, 1, &one);
    CHECK (memcmp (&got, &ref, sizeof got) == 0 || (got == 0.0f && ref == 0.0f), "half 0x%04x: %g vs %g", h, got,
           ref);
  }
  /* every implementation agrees with a double-precision sum within float rounding */
  const LevQKernels *impls[1 + LEV_QMAX_SIMD_SETS] = { lev_qkernels_scalar () };
  lev_qkernels_simd_sets (impls + 1);
  static const uint32_t lens[] = { 0, 1, 7, 8, 9, 15, 16, 17, 33, 100, 255 };
  float x[256];
  uint32_t ent[256];
  for (size_t i = 0; i < 256; i++)
    x[i] = (float) ((int) (rnd () % 2001) - 1000) / 97.0f;
  for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
    uint32_t n = lens[l], col = 0;
    double ref = 0.0, mag = 0.0;
    for (uint32_t k = 0; k < n; k++) {
      col += 1 + (n < 128 ? rnd () % 2 : 0);
      uint16_t h = (uint16_t) (rnd () & 0xffff);
      if (((h >> 10) & 0x1f) == 0x1f)
        h &= 0xbfff;            /* no infinities or NaNs: the format refuses them */
      ent[k] = (uint32_t) h << 16 | (col - 1);
      ref += (double) lev_f16_to_f32 (h) * x[col - 1];
      mag += fabs ((double) lev_f16_to_f32 (h) * x[col - 1]);
    }
    for (size_t k = 0; k < sizeof impls / sizeof impls[0]; k++) {
      if (!impls[k])
        continue;
      float got = impls[k]->sparse_dot (ent, n, x);
      CHECK (fabs (got - ref) <= 1e-6 * mag + 1e-30, "%s sparse_dot of %u: %.9g vs %.9g", impls[k]->name, n, got,
             ref);
    }
  }
}

/* The run-time choice (lev_qkernels_get, made by timing the implementations once): for every encoding, one token
 * and a 32-token tile, the chosen kernel is never more than 10 % slower than the fastest available implementation
 * on the same cache-resident matrix. Timings are noisy on a shared machine: each rate is the best of seven rounds
 * that time the chosen kernel and every implementation in turn, and a shortfall is measured again (up to three
 * times) before it counts. */
static void
test_choice (void)
{
  const char *forced = getenv ("LEV_KERNELS");
  if (forced && *forced && strcmp (forced, "measure") != 0) {
    printf ("choice: LEV_KERNELS=%s forces the kernels, not checked\n", forced);
    return;
  }
  if (getenv ("LEV_TEST_EMULATED")) {
    printf ("choice: %s (under emulation timings are not speeds: not checked)\n", lev_qkernels_choice ());
    return;
  }
  const LevQKernels *impls[1 + LEV_QMAX_SIMD_SETS] = { lev_qkernels_scalar () };
  lev_qkernels_simd_sets (impls + 1);
  enum { N_IMPLS = sizeof impls / sizeof impls[0] };
  const LevQKernels *chosen = lev_qkernels_get ();
  for (size_t e = 0; e < sizeof encs / sizeof encs[0]; e++)
    for (uint32_t n = 1; n <= 32; n += 31) {
      double got = 0.0, best = 0.0;
      const char *best_name = "";
      for (int attempt = 0; attempt < 3; attempt++) {
        double rate[N_IMPLS] = { 0 };
        got = 0.0;
        for (int round = 0; round < 7; round++) {
          double r = lev_qkernel_rate (chosen, encs[e], 0, n, 2048, 65536, 0.003, 1);
          got = r > got ? r : got;
          for (size_t k = 0; k < N_IMPLS; k++) {
            r = impls[k] ? lev_qkernel_rate (impls[k], encs[e], 0, n, 2048, 65536, 0.003, 1) : 0.0;
            rate[k] = r > rate[k] ? r : rate[k];
          }
        }
        best = 0.0;
        for (size_t k = 0; k < N_IMPLS; k++)
          if (rate[k] > best) {
            best = rate[k];
            best_name = impls[k]->name;
          }
        if (got >= 0.9 * best)
          break;
      }
      CHECK (got >= 0.9 * best, "chosen %s kernel for %u tokens: %.2f GB/s, %s gives %.2f", lev_qenc_name (encs[e]),
             n, got, best_name, best);
      printf ("choice %s, %2u tokens: %.1f GB/s, the fastest (%s) %.1f\n", lev_qenc_name (encs[e]), n, got, best_name,
              best);
    }
  printf ("choice: %s\n", lev_qkernels_choice ());
}

/* The SIMD sets this CPU has are exactly those LEV_TEST_EXPECT_KERNELS names (space-separated, "" for none), when
 * set: an emulated CPU without dotprod must get the ARMv8.0 set only, one with i8mm all three. */
static void
test_expected_sets (void)
{
  const LevQKernels *sets[LEV_QMAX_SIMD_SETS];
  size_t n = lev_qkernels_simd_sets (sets);
  char have[128] = "";
  for (size_t i = 0; i < n; i++) {
    if (i)
      strncat (have, " ", sizeof have - strlen (have) - 1);
    strncat (have, sets[i]->name, sizeof have - strlen (have) - 1);
  }
  const char *want = getenv ("LEV_TEST_EXPECT_KERNELS");
  printf ("SIMD kernel sets here: %s\n", n ? have : "(none)");
  if (want)
    CHECK (strcmp (want, have) == 0, "kernel sets \"%s\", expected \"%s\"", have, want);
}

int
main (void)
{
  /* the choice checked below must be this run's measurement, not one cached by an earlier process */
  if (!getenv ("LEV_KERNELS"))
    setenv ("LEV_KERNELS", "measure", 1);
  test_expected_sets ();
  test_roundtrip ();
  test_attention_helpers ();
  test_attention_heads ();
  test_attend_values ();
  test_exponentials ();
  test_quantize_absmax ();
  test_hadamard ();
  test_sparse ();
  test_kernels ();
  test_grouped_kernels ();
  test_choice ();
  if (failures) {
    fprintf (stderr, "%d failures\n", failures);
    return 1;
  }
  printf ("ok\n");
  return 0;
}
