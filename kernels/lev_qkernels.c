/* lev_qkernels.c: packed weight layouts (pack/unpack), the scalar reference kernels and run-time dispatch. */
#include "lev_qkernels.h"
#include "lev_kernels.h"

#include <stdlib.h>
#include <string.h>

int
lev_qenc_is_packed (uint32_t enc)
{
  return enc >= LEV_QENC_T2 && enc <= LEV_QENC_Q4;
}

uint32_t
lev_qenc_block_weights (uint32_t enc)
{
  switch (enc) {
    case LEV_QENC_T2: return 128;
    case LEV_QENC_T1: return 160;
    case LEV_QENC_B1: return 128;
    case LEV_QENC_Q4: return 64;
    default: return 0;
  }
}

uint32_t
lev_qenc_block_bytes (uint32_t enc)
{
  switch (enc) {
    case LEV_QENC_T2:
    case LEV_QENC_T1:
    case LEV_QENC_Q4: return 32;
    case LEV_QENC_B1: return 16;
    default: return 0;
  }
}

size_t
lev_qenc_cols_padded (uint32_t enc, size_t cols)
{
  size_t b = lev_qenc_block_weights (enc);
  return b ? (cols + b - 1) / b * b : cols;
}

size_t
lev_qenc_row_bytes (uint32_t enc, size_t cols)
{
  size_t b = lev_qenc_block_weights (enc);
  return b ? (cols + b - 1) / b * lev_qenc_block_bytes (enc) : 0;
}

size_t
lev_qenc_groups_per_row (uint32_t enc, size_t cols, size_t group_weights)
{
  if (enc != LEV_QENC_T2 && enc != LEV_QENC_T1 && enc != LEV_QENC_B1)
    return 0;
  size_t bw = lev_qenc_block_weights (enc), blocks = (cols + bw - 1) / bw;
  if (group_weights == bw)
    return blocks;
  return enc != LEV_QENC_T1 && 2 * group_weights == bw ? 2 * blocks : 0;
}

const char *
lev_qenc_name (uint32_t enc)
{
  switch (enc) {
    case LEV_QENC_T2: return "t2";
    case LEV_QENC_T1: return "t1";
    case LEV_QENC_B1: return "b1";
    case LEV_QENC_Q4: return "q4";
    default: return NULL;
  }
}

/* ---------------------------------------------------------------- t1 trit bytes */

/* Encodes 5 codes (0..2, first most significant) into one t1 byte. */
static uint8_t
t1_encode (const uint8_t c[5])
{
  unsigned v = 0;
  for (int i = 0; i < 5; i++)
    v = v * 3 + c[i];
  unsigned q = (v * 256 + 242) / 243;          /* ceil(v * 256 / 243) <= 255 */
  return (uint8_t) (q ^ 0x80u);
}

/* Returns code i (0..2) of a t1 byte: the top trit of (q * 3^i) mod 256, read as (t * 3) >> 8. */
static inline unsigned
t1_code (uint8_t stored, unsigned i)
{
  unsigned t = (uint8_t) (stored ^ 0x80u);
  while (i--)
    t = (t * 3) & 0xffu;
  return (t * 3) >> 8;
}

/* ---------------------------------------------------------------- pack / unpack */

void
lev_qpack_row (uint32_t enc, const int8_t *vals, size_t cols, uint8_t *out)
{
  size_t bw = lev_qenc_block_weights (enc), bb = lev_qenc_block_bytes (enc);
  size_t nb = (cols + bw - 1) / bw;
  memset (out, 0, nb * bb);
  for (size_t b = 0; b < nb; b++) {
    const int8_t *v = vals + b * bw;
    uint8_t *o = out + b * bb;
    size_t n = cols - b * bw < bw ? cols - b * bw : bw;   /* real weights in this block */
#define VAL(i) ((size_t) (i) < n ? (int) v[i] : 0)
    switch (enc) {
      case LEV_QENC_T2:
        for (int j = 0; j < 32; j++)
          for (int k = 0; k < 4; k++)
            o[j] |= (uint8_t) ((VAL (j + 32 * k) + 1) << (2 * k));
        break;
      case LEV_QENC_T1:
        for (int j = 0; j < 32; j++) {
          uint8_t c[5];
          for (int i = 0; i < 5; i++)
            c[i] = (uint8_t) (VAL (j + 32 * i) + 1);
          o[j] = t1_encode (c);
        }
        break;
      case LEV_QENC_B1:
        for (size_t i = 0; i < n; i++)
          if (v[i] > 0)
            o[i / 8] |= (uint8_t) (1u << (i % 8));
        break;
      case LEV_QENC_Q4:
        for (int j = 0; j < 32; j++)
          o[j] = (uint8_t) ((VAL (j) + 8) | ((VAL (j + 32) + 8) << 4));
        break;
      default: break;
    }
#undef VAL
  }
}

/* Decodes block b of a packed row into bw values (b1 padding gives -1). */
static void
unpack_block (uint32_t enc, const uint8_t *o, int8_t *v)
{
  switch (enc) {
    case LEV_QENC_T2:
      for (int j = 0; j < 32; j++)
        for (int k = 0; k < 4; k++)
          v[j + 32 * k] = (int8_t) (((o[j] >> (2 * k)) & 3) - 1);
      break;
    case LEV_QENC_T1:
      for (int j = 0; j < 32; j++)
        for (int i = 0; i < 5; i++)
          v[j + 32 * i] = (int8_t) ((int) t1_code (o[j], (unsigned) i) - 1);
      break;
    case LEV_QENC_B1:
      for (int i = 0; i < 128; i++)
        v[i] = (o[i / 8] >> (i % 8)) & 1 ? 1 : -1;
      break;
    case LEV_QENC_Q4:
      for (int j = 0; j < 32; j++) {
        v[j] = (int8_t) ((o[j] & 15) - 8);
        v[j + 32] = (int8_t) ((o[j] >> 4) - 8);
      }
      break;
    default: break;
  }
}

void
lev_qunpack_row (uint32_t enc, const uint8_t *row, size_t cols, int8_t *vals)
{
  size_t bw = lev_qenc_block_weights (enc), bb = lev_qenc_block_bytes (enc);
  int8_t tmp[160];
  for (size_t b = 0; b * bw < cols; b++) {
    unpack_block (enc, row + b * bb, tmp);
    size_t n = cols - b * bw < bw ? cols - b * bw : bw;
    memcpy (vals + b * bw, tmp, n);
  }
}

void
lev_qact_finish_row (const int8_t *q, size_t stride, int8_t *q2, int32_t *sum, int32_t *csum)
{
  int32_t s = 0;
  for (size_t c = 0; c < stride; c += 32) {
    int32_t cs = 0;
    for (size_t i = 0; i < 32; i++)
      cs += q[c + i];
    if (csum)
      csum[c / 32] = cs;
    s += cs;
  }
  *sum = s;
  if (q2)
    for (size_t c = 0; c < stride; c += 32) {
      memcpy (q2 + 2 * c, q + c, 32);
      memcpy (q2 + 2 * c + 32, q + c, 32);
    }
}

void
lev_qact_group_sums (const LevQAct *act, size_t t0, size_t nt, size_t group_weights, size_t n_groups, float *gs)
{
  size_t per = group_weights / 32;
  for (size_t t = 0; t < nt; t++) {
    const int32_t *cs = act->csum + (t0 + t) * (act->stride / 32);
    for (size_t g = 0; g < n_groups; g++) {
      int32_t s = 0;
      for (size_t k = 0; k < per; k++)
        s += cs[g * per + k];
      gs[t * n_groups + g] = (float) s;
    }
  }
}

float
lev_qdot_f32 (const LevQMatrix *w, size_t r, const float *x)
{
  size_t bw = lev_qenc_block_weights (w->enc), bb = lev_qenc_block_bytes (w->enc);
  size_t gw = lev_qmatrix_grouped (w) ? lev_qmatrix_group_weights (w) : bw;   /* a block or half of it */
  const uint8_t *row = w->codes + r * w->row_bytes;
  int8_t v[160];
  float s = 0.0f;
  for (size_t b = 0; b * bw < w->cols; b++) {
    unpack_block (w->enc, row + b * bb, v);
    for (size_t g0 = 0; g0 < bw && b * bw + g0 < w->cols; g0 += gw) {
      size_t n = w->cols - b * bw - g0 < gw ? w->cols - b * bw - g0 : gw;
      float sg = 0.0f;
      for (size_t i = 0; i < n; i++)
        sg += (float) v[g0 + i] * x[b * bw + g0 + i];
      s += lev_qmatrix_grouped (w) ? sg * lev_qmatrix_col_scale (w, r, b * bw + g0) : sg;
    }
  }
  return lev_qmatrix_grouped (w) ? s : s * lev_qmatrix_scale (w, r);
}

/* ---------------------------------------------------------------- KV helpers */

#define DOT8(conv) \
  float acc[8] = { 0 }; \
  size_t i = 0; \
  for (; i + 8 <= n; i += 8) \
    for (int k = 0; k < 8; k++) \
      acc[k] += a[i + k] * conv (b[i + k]); \
  float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])); \
  for (; i < n; i++) \
    s += a[i] * conv (b[i]); \
  return s;

#define I8F(v) ((float) (v))

float
lev_dot_f16 (const float *a, const uint16_t *b, size_t n)
{
  DOT8 (lev_f16_to_f32)
}

void
lev_axpy_f16 (float a, const uint16_t *x, float *y, size_t n)
{
  for (size_t i = 0; i < n; i++)
    y[i] += a * lev_f16_to_f32 (x[i]);
}

float
lev_dot_i8 (const float *a, const int8_t *b, size_t n)
{
  DOT8 (I8F)
}

void
lev_axpy_i8 (float a, const int8_t *x, float *y, size_t n)
{
  for (size_t i = 0; i < n; i++)
    y[i] += a * (float) x[i];
}

void
lev_qdot_heads_each (const LevQKernels *k, uint32_t type, const float *q, size_t q_stride, uint32_t nq,
                     const void *row, size_t n, float *out)
{
  for (uint32_t g = 0; g < nq; g++) {
    const float *qg = q + g * q_stride;
    out[g] = type == LEV_QVEC_F16 ? k->dot_f16 (qg, row, n)
             : type == LEV_QVEC_I8 ? k->dot_i8 (qg, row, n) : k->dot_f32 (qg, row, n);
  }
}

void
lev_qaxpy_heads_each (const LevQKernels *k, uint32_t type, const float *a, uint32_t nq, const void *x, float *y,
                      size_t y_stride, size_t n)
{
  for (uint32_t g = 0; g < nq; g++) {
    float *yg = y + g * y_stride;
    if (type == LEV_QVEC_F16)
      k->axpy_f16 (a[g], x, yg, n);
    else if (type == LEV_QVEC_I8)
      k->axpy_i8 (a[g], x, yg, n);
    else
      k->axpy_f32 (a[g], x, yg, n);
  }
}

/* ---------------------------------------------------------------- scalar reference kernels */

/* Integer dot products of row r with every token, one block at a time (the block is decoded once for all
 * tokens), then the shared float epilogue; with per-group scales each group's exact sum is scaled and added in
 * float, groups in order. */
static void
gemm_scalar (const LevQMatrix *w, const LevQAct *act, float *y, size_t y_stride, size_t r0, size_t r1)
{
  size_t bw = lev_qenc_block_weights (w->enc), bb = lev_qenc_block_bytes (w->enc);
  size_t nb = w->cols_pad / bw;
  int grouped = lev_qmatrix_grouped (w);
  size_t gw = grouped ? lev_qmatrix_group_weights (w) : bw;   /* a block or half of it */
  int32_t acc[64];
  float facc[64];
  int8_t v[160];
  for (size_t r = r0; r < r1; r++) {
    const uint8_t *row = w->codes + r * w->row_bytes;
    for (size_t t0 = 0; t0 < act->n; t0 += 64) {
      size_t nt = act->n - t0 < 64 ? act->n - t0 : 64;
      memset (acc, 0, sizeof acc);
      memset (facc, 0, sizeof facc);
      for (size_t b = 0; b < nb; b++) {
        unpack_block (w->enc, row + b * bb, v);
        for (size_t g0 = 0; g0 < bw; g0 += gw) {
          float gsc = grouped ? lev_qmatrix_col_scale (w, r, b * bw + g0) : 0.0f;
          for (size_t t = 0; t < nt; t++) {
            const int8_t *x = act->q + (t0 + t) * act->stride + b * bw + g0;
            int32_t s = 0;
            for (size_t i = 0; i < gw; i++)
              s += (int32_t) v[g0 + i] * x[i];
            if (grouped)
              facc[t] += (float) s * gsc;
            else
              acc[t] += s;
          }
        }
      }
      for (size_t t = 0; t < nt; t++)
        y[(t0 + t) * y_stride + r] = grouped ? facc[t] * act->scale[t0 + t]
                                             : (float) acc[t] * (lev_qmatrix_scale (w, r) * act->scale[t0 + t]);
    }
  }
}

void
lev_qattend_values_each (const LevQKernels *k, uint32_t type, const float *a, size_t a_stride, uint32_t nq,
                         const void *v, size_t v_stride, const float *vscale, size_t vscale_stride, uint32_t n_rows,
                         float *y, size_t y_stride, size_t n)
{
  for (uint32_t s = 0; s < n_rows; s++) {
    const void *row = (const uint8_t *) v + (size_t) s * v_stride;
    for (uint32_t g0 = 0; g0 < nq; g0 += 8) {
      uint32_t m = nq - g0 < 8 ? nq - g0 : 8;
      float w[8];
      for (uint32_t g = 0; g < m; g++)
        w[g] = vscale ? a[(g0 + g) * a_stride + s] * vscale[(size_t) s * vscale_stride] : a[(g0 + g) * a_stride + s];
      k->axpy_heads (type, w, m, row, y + g0 * y_stride, y_stride, n);
    }
  }
}

static void attend_values_scalar (uint32_t type, const float *a, size_t a_stride, uint32_t nq, const void *v,
                                  size_t v_stride, const float *vscale, size_t vscale_stride, uint32_t n_rows,
                                  float *y, size_t y_stride, size_t n);
static void dot_heads_scalar (uint32_t type, const float *q, size_t q_stride, uint32_t nq, const void *k, size_t n,
                              float *out);
static void axpy_heads_scalar (uint32_t type, const float *a, uint32_t nq, const void *x, float *y, size_t y_stride,
                               size_t n);

static const LevQKernels scalar_kernels = { "scalar", 0, { gemm_scalar, gemm_scalar, gemm_scalar, gemm_scalar },
                                         { gemm_scalar, gemm_scalar, gemm_scalar, gemm_scalar },
                                         lev_dot_f32, lev_axpy_f32, lev_dot_f16, lev_axpy_f16, lev_dot_i8,
                                         lev_axpy_i8, lev_sparse_row_dot, dot_heads_scalar, axpy_heads_scalar,
                                         attend_values_scalar, lev_softmax, lev_silu_mul,
                                         lev_quantize_absmax, lev_hadamard };

/* The scalar attend_values: one row at a time. */
static void
attend_values_scalar (uint32_t type, const float *a, size_t a_stride, uint32_t nq, const void *v, size_t v_stride,
                      const float *vscale, size_t vscale_stride, uint32_t n_rows, float *y, size_t y_stride, size_t n)
{
  lev_qattend_values_each (&scalar_kernels, type, a, a_stride, nq, v, v_stride, vscale, vscale_stride, n_rows, y,
                           y_stride, n);
}

/* The scalar dot_heads / axpy_heads: one head at a time. */
static void
dot_heads_scalar (uint32_t type, const float *q, size_t q_stride, uint32_t nq, const void *k, size_t n, float *out)
{
  lev_qdot_heads_each (&scalar_kernels, type, q, q_stride, nq, k, n, out);
}

static void
axpy_heads_scalar (uint32_t type, const float *a, uint32_t nq, const void *x, float *y, size_t y_stride, size_t n)
{
  lev_qaxpy_heads_each (&scalar_kernels, type, a, nq, x, y, y_stride, n);
}

const LevQKernels *
lev_qkernels_scalar (void)
{
  return &scalar_kernels;
}

/* ---------------------------------------------------------------- dispatch */

#if !defined(LEV_HAVE_AVX2)
const LevQKernels *
lev_qkernels_avx2 (void)
{
  return NULL;
}
#endif
#if !defined(LEV_HAVE_AVX512)
const LevQKernels *
lev_qkernels_avx512 (void)
{
  return NULL;
}
#endif
#if !defined(LEV_HAVE_AVX512VBMI)
const LevQKernels *
lev_qkernels_avx512vbmi (void)
{
  return NULL;
}
#endif
#if !defined(LEV_HAVE_NEON)
const LevQKernels *
lev_qkernels_neon (void)
{
  return NULL;
}
#endif
#if !defined(LEV_HAVE_NEONDOT)
const LevQKernels *
lev_qkernels_neondot (void)
{
  return NULL;
}
#endif
#if !defined(LEV_HAVE_I8MM)
const LevQKernels *
lev_qkernels_i8mm (void)
{
  return NULL;
}
#endif

size_t
lev_qkernels_simd_sets (const LevQKernels **sets)
{
  const LevQKernels *all[LEV_QMAX_SIMD_SETS] = { lev_qkernels_avx512 (), lev_qkernels_avx512vbmi (),
                                                 lev_qkernels_avx2 (), lev_qkernels_i8mm (),
                                                 lev_qkernels_neondot (), lev_qkernels_neon () };
  size_t n = 0;
  for (size_t i = 0; i < LEV_QMAX_SIMD_SETS; i++)
    if (all[i])
      sets[n++] = all[i];
  return n;
}

const LevQKernels *
lev_qkernels_by_name (const char *name)
{
  if (!name)
    return NULL;
  if (strcmp (name, "scalar") == 0)
    return lev_qkernels_scalar ();
  if (strcmp (name, "avx2") == 0)
    return lev_qkernels_avx2 ();
  if (strcmp (name, "avx512") == 0)
    return lev_qkernels_avx512 ();
  if (strcmp (name, "avx512vbmi") == 0)
    return lev_qkernels_avx512vbmi ();
  if (strcmp (name, "neon") == 0)
    return lev_qkernels_neon ();
  if (strcmp (name, "neondot") == 0)
    return lev_qkernels_neondot ();
  if (strcmp (name, "i8mm") == 0)
    return lev_qkernels_i8mm ();
  return NULL;
}
