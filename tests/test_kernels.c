/* test_kernels.c: half/bfloat16 conversions against IEEE 754 bit patterns; matvec kernels against double sums. */
#include "lev_kernels.h"
#include "lev_test_common.h"

static void
test_f16_known_values (void)
{
  /* bit patterns from the IEEE 754 binary16 definition */
  static const struct { float f; uint16_t h; } cases[] = {
    { 0.0f, 0x0000 }, { -0.0f, 0x8000 }, { 1.0f, 0x3c00 }, { -2.0f, 0xc000 }, { 0.5f, 0x3800 },
    { 65504.0f, 0x7bff },                     /* largest finite */
    { 6.103515625e-05f, 0x0400 },             /* smallest normal 2^-14 */
    { 5.9604644775390625e-08f, 0x0001 },      /* smallest subnormal 2^-24 */
    { 0.333251953125f, 0x3555 },              /* nearest half to 1/3 */
    { INFINITY, 0x7c00 }, { -INFINITY, 0xfc00 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_assert_cmphex (lev_f32_to_f16 (cases[i].f), ==, cases[i].h);
    g_assert_cmpfloat (lev_f16_to_f32 (cases[i].h), ==, cases[i].f);
  }
  /* rounding: ties to even, overflow to infinity, underflow to zero */
  g_assert_cmphex (lev_f32_to_f16 (1.0f + 1.0f / 2048), ==, 0x3c00);          /* tie, even stays */
  g_assert_cmphex (lev_f32_to_f16 (1.0f + 3.0f / 2048), ==, 0x3c02);          /* tie, rounds up to even */
  g_assert_cmphex (lev_f32_to_f16 (65520.0f), ==, 0x7c00);
  g_assert_cmphex (lev_f32_to_f16 (65519.0f), ==, 0x7bff);
  g_assert_cmphex (lev_f32_to_f16 (2.9802322387695312e-08f), ==, 0x0000);     /* 2^-25: tie to even zero */
  g_assert_cmphex (lev_f32_to_f16 (4.4703483581542969e-08f), ==, 0x0001);     /* 1.5 * 2^-25 */
  g_assert_true (isnan (lev_f16_to_f32 (lev_f32_to_f16 (NAN))));
  /* every finite half survives a round trip */
  for (uint32_t h = 0; h < 0x10000; h++) {
    if ((h & 0x7c00) == 0x7c00)
      continue;
    g_assert_cmphex (lev_f32_to_f16 (lev_f16_to_f32 ((uint16_t) h)), ==, h);
  }
}

static void
test_bf16_known_values (void)
{
  g_assert_cmphex (lev_f32_to_bf16 (1.0f), ==, 0x3f80);
  g_assert_cmphex (lev_f32_to_bf16 (-2.0f), ==, 0xc000);
  g_assert_cmphex (lev_f32_to_bf16 (3.140625f), ==, 0x4049);
  g_assert_cmphex (lev_f32_to_bf16 (1.0f + 1.0f / 256), ==, 0x3f80);          /* tie, even stays */
  g_assert_cmphex (lev_f32_to_bf16 (1.0f + 3.0f / 256), ==, 0x3f82);          /* tie, rounds up to even */
  g_assert_cmpfloat (lev_bf16_to_f32 (0x4049), ==, 3.140625f);
  g_assert_true (isnan (lev_bf16_to_f32 (lev_f32_to_bf16 (NAN))));
}

static double
frand (guint32 *s)
{
  *s = *s * 1664525u + 1013904223u;
  return ((*s >> 8) / 16777216.0) * 2.0 - 1.0;
}

static void
test_matvec_against_double (void)
{
  guint32 seed = 12345;
  const size_t shapes[][2] = { { 1, 1 }, { 3, 7 }, { 17, 64 }, { 64, 65 }, { 33, 255 }, { 5, 1024 } };
  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++) {
    size_t rows = shapes[s][0], cols = shapes[s][1];
    float *w = g_new (float, rows * cols), *x = g_new (float, cols), *y = g_new (float, rows);
    uint16_t *wh = g_new (uint16_t, rows * cols), *wb = g_new (uint16_t, rows * cols);
    int8_t *q = g_new (int8_t, rows * cols), *xq = g_new (int8_t, cols);
    float *scales = g_new (float, rows);
    for (size_t i = 0; i < rows * cols; i++) {
      w[i] = (float) frand (&seed);
      wh[i] = lev_f32_to_f16 (w[i]);
      wb[i] = lev_f32_to_bf16 (w[i]);
      q[i] = (int8_t) (frand (&seed) * 127.0);
    }
    for (size_t i = 0; i < cols; i++) {
      x[i] = (float) frand (&seed);
      xq[i] = (int8_t) (frand (&seed) * 127.0);
    }
    for (size_t r = 0; r < rows; r++)
      scales[r] = (float) (0.01 + 0.001 * r);
    double tol = 1e-5 * cols;
    lev_matvec_f32 (w, x, y, cols, 0, rows);
    for (size_t r = 0; r < rows; r++) {
      double ref = 0;
      for (size_t c = 0; c < cols; c++)
        ref += (double) w[r * cols + c] * x[c];
      g_assert_cmpfloat_with_epsilon (y[r], ref, tol);
    }
    lev_matvec_f16 (wh, x, y, cols, 0, rows);
    for (size_t r = 0; r < rows; r++) {
      double ref = 0;
      for (size_t c = 0; c < cols; c++)
        ref += (double) lev_f16_to_f32 (wh[r * cols + c]) * x[c];
      g_assert_cmpfloat_with_epsilon (y[r], ref, tol);
    }
    lev_matvec_bf16 (wb, x, y, cols, 0, rows);
    for (size_t r = 0; r < rows; r++) {
      double ref = 0;
      for (size_t c = 0; c < cols; c++)
        ref += (double) lev_bf16_to_f32 (wb[r * cols + c]) * x[c];
      g_assert_cmpfloat_with_epsilon (y[r], ref, tol);
    }
    lev_matvec_q8_f32 (q, scales, x, y, cols, 0, rows);
    for (size_t r = 0; r < rows; r++) {
      double ref = 0;
      for (size_t c = 0; c < cols; c++)
        ref += (double) q[r * cols + c] * x[c];
      g_assert_cmpfloat_with_epsilon (y[r], ref * scales[r], tol * 127 * scales[r] + 1e-6);
    }
    lev_matvec_q8_i8 (q, scales, xq, 0.5f, y, cols, 0, rows);
    for (size_t r = 0; r < rows; r++) {
      int64_t acc = 0;
      for (size_t c = 0; c < cols; c++)
        acc += (int64_t) q[r * cols + c] * xq[c];
      g_assert_cmpfloat_with_epsilon (y[r], (double) acc * scales[r] * 0.5, fabs ((double) acc) * 1e-6 + 1e-6);
    }
    g_free (w); g_free (x); g_free (y); g_free (wh); g_free (wb); g_free (q); g_free (xq); g_free (scales);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/kernels/f16", test_f16_known_values);
  g_test_add_func ("/kernels/bf16", test_bf16_known_values);
  g_test_add_func ("/kernels/matvec", test_matvec_against_double);
  return g_test_run ();
}
