/* lev_kernels.c: scalar reference kernels: float/half/bf16/int8 matrix-vector products and conversions. */
#include "lev_kernels.h"

#include <math.h>
#include <string.h>

float
lev_f16_to_f32 (uint16_t h)
{
  uint32_t sign = (uint32_t) (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {                    /* subnormal: normalise */
      int e = -1;
      do {
        e++;
        man <<= 1;
      } while ((man & 0x400u) == 0);
      bits = sign | ((uint32_t) (127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  memcpy (&f, &bits, 4);
  return f;
}

uint16_t
lev_f32_to_f16 (float f)
{
  uint32_t x;
  memcpy (&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t absx = x & 0x7fffffffu;
  if (absx > 0x7f800000u)       /* NaN: keep it quiet */
    return (uint16_t) (sign | 0x7e00u | ((absx >> 13) & 0x3ffu));
  if (absx >= 0x477ff000u)      /* rounds to >= 65520: infinity */
    return (uint16_t) (sign | 0x7c00u);
  if (absx < 0x38800000u) {     /* below the smallest normal half: subnormal or zero */
    if (absx < 0x33000000u)     /* < 2^-25: rounds to zero */
      return (uint16_t) sign;
    uint32_t e = absx >> 23;
    uint32_t man = (absx & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e;   /* 14 + (113 - e) */
    uint32_t half = man >> shift;
    uint32_t rem = man & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1u)))
      half++;
    return (uint16_t) (sign | half);
  }
  uint32_t r = absx + 0xfffu + ((absx >> 13) & 1u);   /* round to nearest even on the 13 dropped bits */
  return (uint16_t) (sign | ((r - 0x38000000u) >> 13));
}

float
lev_bf16_to_f32 (uint16_t b)
{
  uint32_t bits = (uint32_t) b << 16;
  float f;
  memcpy (&f, &bits, 4);
  return f;
}

uint16_t
lev_f32_to_bf16 (float f)
{
  uint32_t x;
  memcpy (&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u)
    return (uint16_t) ((x >> 16) | 0x40u);
  x += 0x7fffu + ((x >> 16) & 1u);
  return (uint16_t) (x >> 16);
}

float
lev_dot_f32 (const float *a, const float *b, size_t n)
{
  float acc[8] = { 0 };
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++)
      acc[k] += a[i + k] * b[i + k];
  float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < n; i++)
    s += a[i] * b[i];
  return s;
}

void
lev_axpy_f32 (float a, const float *x, float *y, size_t n)
{
  for (size_t i = 0; i < n; i++)
    y[i] += a * x[i];
}

float
lev_quantize_absmax (const float *x, size_t n, int8_t *q, int away)
{
  float amax = 0.0f;
  for (size_t i = 0; i < n; i++) {
    float a = fabsf (x[i]);
    amax = a > amax ? a : amax;                        /* a NaN is skipped */
  }
  float s = 127.0f / (amax > 1e-5f ? amax : 1e-5f);
  for (size_t i = 0; i < n; i++) {
    float v = x[i] * s, r;
    if (away)
      r = roundf (v);
    else                      /* |v| <= 127: adding and removing 1.5 * 2^23 rounds to nearest, halves to even */
      r = (v + 12582912.0f) - 12582912.0f;
    q[i] = (int8_t) (r >= -128.0f ? (r <= 127.0f ? r : 127.0f) : -128.0f);   /* NaN gives -128 */
  }
  return 1.0f / s;
}

/* exp(t) as lev_exp_sum and lev_silu_mul compute it (k from the rounded double's bits: no conversion of a NaN to an
 * integer). */
static float
exp_clamped (float tf)
{
  double t = tf < LEV_EXP_MIN ? LEV_EXP_MIN : tf > LEV_EXP_MAX ? LEV_EXP_MAX : (double) tf;   /* NaN goes on */
  double kd = t * LEV_EXP_LOG2E + LEV_EXP_MAGIC, magic = LEV_EXP_MAGIC;
  uint64_t kbits, mbits;
  memcpy (&kbits, &kd, 8);
  memcpy (&mbits, &magic, 8);
  double k = kd - LEV_EXP_MAGIC;
  double r = t - k * LEV_EXP_LN2;
  double p = 1.0 / 39916800.0;                               /* Horner from 1/11! down to 1 */
  static const double inv_fact[] = { 1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0,
                                     1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0 };
  for (int i = 0; i < 11; i++)
    p = p * r + inv_fact[i];
  uint64_t sbits = (kbits - mbits + 1023u) << 52;
  double scale;
  memcpy (&scale, &sbits, 8);
  return (float) (p * scale);
}

float
lev_exp_sum (float *x, size_t n, float shift)
{
  float acc[8] = { 0 };
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++) {
      x[i + k] = exp_clamped (x[i + k] - shift);
      acc[k] += x[i + k];
    }
  float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < n; i++) {
    x[i] = exp_clamped (x[i] - shift);
    s += x[i];
  }
  return s;
}

void
lev_softmax (float *x, size_t n, float div)
{
  float m = -INFINITY;
  for (size_t i = 0; i < n; i++) {
    x[i] = x[i] / div;
    m = x[i] > m ? x[i] : m;
  }
  float sum = lev_exp_sum (x, n, m);
  for (size_t i = 0; i < n; i++)
    x[i] /= sum;
}

void
lev_silu_mul (float *g, const float *up, size_t n)
{
  for (size_t i = 0; i < n; i++)
    g[i] = g[i] / (1.0f + exp_clamped (-g[i])) * up[i];
}

void
lev_matvec_f32 (const float *w, const float *x, float *y, size_t cols, size_t row_begin, size_t row_end)
{
  for (size_t r = row_begin; r < row_end; r++)
    y[r] = lev_dot_f32 (w + r * cols, x, cols);
}

/* Dot product of a row of 16-bit floats (converted by cvt) with x: eight lanes, as lev_dot_f32. */
static inline float
dot_16bit (const uint16_t *row, const float *x, size_t cols, float (*cvt) (uint16_t))
{
  float acc[8] = { 0 };
  size_t i = 0;
  for (; i + 8 <= cols; i += 8)
    for (int k = 0; k < 8; k++)
      acc[k] += cvt (row[i + k]) * x[i + k];
  float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < cols; i++)
    s += cvt (row[i]) * x[i];
  return s;
}

void
lev_matvec_f16 (const uint16_t *w, const float *x, float *y, size_t cols, size_t row_begin, size_t row_end)
{
  for (size_t r = row_begin; r < row_end; r++)
    y[r] = dot_16bit (w + r * cols, x, cols, lev_f16_to_f32);
}

void
lev_matvec_bf16 (const uint16_t *w, const float *x, float *y, size_t cols, size_t row_begin, size_t row_end)
{
  for (size_t r = row_begin; r < row_end; r++)
    y[r] = dot_16bit (w + r * cols, x, cols, lev_bf16_to_f32);
}

void
lev_matvec_q8_f32 (const int8_t *q, const float *scales, const float *x, float *y, size_t cols,
                   size_t row_begin, size_t row_end)
{
  for (size_t r = row_begin; r < row_end; r++) {
    const int8_t *row = q + r * cols;
    float acc[8] = { 0 };
    size_t i = 0;
    for (; i + 8 <= cols; i += 8)
      for (int k = 0; k < 8; k++)
        acc[k] += (float) row[i + k] * x[i + k];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < cols; i++)
      s += (float) row[i] * x[i];
    y[r] = s * scales[r];
  }
}

void
lev_matvec_q8_i8 (const int8_t *q, const float *scales, const int8_t *xq, float x_scale, float *y,
                  size_t cols, size_t row_begin, size_t row_end)
{
  for (size_t r = row_begin; r < row_end; r++) {
    const int8_t *row = q + r * cols;
    int32_t acc = 0;
    for (size_t i = 0; i < cols; i++)
      acc += (int32_t) row[i] * (int32_t) xq[i];
    y[r] = (float) acc * (scales[r] * x_scale);
  }
}

float
lev_sparse_row_dot (const uint32_t *entries, uint32_t n, const float *x)
{
  /* a finite half: sign kept, exponent and mantissa moved into a float's place, rescaled by 2^(127 - 15); exact,
   * also for subnormals; no branches, and two sums to shorten the dependency chain */
  float acc0 = 0.0f, acc1 = 0.0f;
  uint32_t k = 0;
  for (; k + 2 <= n; k += 2) {
    uint32_t e0 = entries[k], e1 = entries[k + 1];
    uint32_t b0 = (e0 & 0x80000000u) | ((e0 >> 3) & 0x0fffe000u), b1 = (e1 & 0x80000000u) | ((e1 >> 3) & 0x0fffe000u);
    float v0, v1;
    memcpy (&v0, &b0, 4);
    memcpy (&v1, &b1, 4);
    acc0 += v0 * 0x1p112f * x[e0 & 0xffffu];
    acc1 += v1 * 0x1p112f * x[e1 & 0xffffu];
  }
  if (k < n) {
    uint32_t e = entries[k], b = (e & 0x80000000u) | ((e >> 3) & 0x0fffe000u);
    float v;
    memcpy (&v, &b, 4);
    acc0 += v * 0x1p112f * x[e & 0xffffu];
  }
  return acc0 + acc1;
}

void
lev_wht_block (float *x, size_t b)
{
  for (size_t h = 1; h < b; h *= 2)
    for (size_t i = 0; i < b; i += 2 * h)
      for (size_t j = i; j < i + h; j++) {
        float a = x[j], c = x[j + h];
        x[j] = a + c;
        x[j + h] = a - c;
      }
}

/* x[i] *= m[i] for i < n; four products a step, loaded before they are stored, so that the compiler makes one vector
 * multiply of each four (the same products as one at a time). */
static void
mul_elems (float *x, const float *m, size_t n)
{
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    float a0 = x[i] * m[i], a1 = x[i + 1] * m[i + 1], a2 = x[i + 2] * m[i + 2], a3 = x[i + 3] * m[i + 3];
    x[i] = a0;
    x[i + 1] = a1;
    x[i + 2] = a2;
    x[i + 3] = a3;
  }
  for (; i < n; i++)
    x[i] *= m[i];
}

/* x[i] *= s for i < n, four a step as mul_elems. */
static void
scale_elems (float *x, float s, size_t n)
{
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    float a0 = x[i] * s, a1 = x[i + 1] * s, a2 = x[i + 2] * s, a3 = x[i + 3] * s;
    x[i] = a0;
    x[i + 1] = a1;
    x[i + 2] = a2;
    x[i + 3] = a3;
  }
  for (; i < n; i++)
    x[i] *= s;
}

void
lev_hadamard_by_blocks (float *x, size_t n, const float *signs, LevWhtBlockFn wht_block)
{
  mul_elems (x, signs, n);
  size_t off = 0;
  for (int bit = (int) (sizeof (size_t) * 8) - 1; bit >= 0; bit--) {
    size_t b = (size_t) 1 << bit;
    if (!(n & b))
      continue;
    wht_block (x + off, b);
    scale_elems (x + off, (float) (1.0 / sqrt ((double) b)), b);
    off += b;
  }
}

void
lev_hadamard (float *x, size_t n, const float *signs)
{
  lev_hadamard_by_blocks (x, n, signs, lev_wht_block);
}

void
lev_hadamard_signs (uint32_t seed, uint32_t stream, float *signs, size_t n)
{
  uint64_t state = ((uint64_t) seed << 32) | stream, z = 0;
  for (size_t i = 0; i < n; i++) {
    if (i % 64 == 0) {
      state += 0x9E3779B97F4A7C15ull;
      z = state;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      z ^= z >> 31;
    }
    signs[i] = (z >> (i % 64)) & 1 ? -1.0f : 1.0f;
  }
}
