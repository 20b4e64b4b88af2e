/* lev_import_gguf.c: importer for GGUF files (llama.cpp's format, v2 and v3): metadata, tensors, tokenizer. */
#include "lev_import_gguf.h"
#include "lev_kernels.h"
#include "lev_qkernels.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

/* The format, as llama.cpp's docs/gguf.md and gguf-py describe it: "GGUF", u32 version, u64 tensor count, u64
 * metadata count, the metadata (key string, u32 value type, value), the tensor infos (name string, u32 n_dims,
 * u64 ne[n_dims] with ne[0] the fastest-varying, u32 ggml type, u64 offset), padding to general.alignment (32 by
 * default), then the tensor data; each offset is relative to the start of the data and a multiple of the alignment.
 * A string is a u64 byte count and the bytes (no NUL). Everything is little-endian. */

#define GGUF_MAGIC "GGUF"
#define GGUF_MAX_DIMS 4u
#define GGUF_MAX_NAME 256u             /* ggml allows 64; anything longer is corrupt */
#define GGUF_MAX_ARRAY_DEPTH 4u
#define GGUF_MAX_ALIGNMENT (1u << 20)
#define GGUF_MAX_TOKENS (1u << 24)

/* Metadata value types. */
enum {
  GV_U8 = 0, GV_I8 = 1, GV_U16 = 2, GV_I16 = 3, GV_U32 = 4, GV_I32 = 5, GV_F32 = 6, GV_BOOL = 7, GV_STRING = 8,
  GV_ARRAY = 9, GV_U64 = 10, GV_I64 = 11, GV_F64 = 12,
};

/* The ggml tensor types this importer reads (numbers from ggml's enum ggml_type). */
enum {
  GT_F32 = 0, GT_F16 = 1, GT_Q4_0 = 2, GT_Q8_0 = 8, GT_BF16 = 30, GT_TQ1_0 = 34, GT_TQ2_0 = 35,
  GT_I2_S = 36,   /* bitnet.cpp's type (its llama.cpp fork's ggml), not in ggml-org's enum */
};

/* bitnet.cpp's I2_S (read from its src/ggml-bitnet-mad.cpp quantize_i2_s and its fork's ggml_nbytes): the whole
 * tensor, rows of ne[0] one after the other, in blocks of 128 weights of 32 bytes each; weight 32 g + m of a block
 * is bits 6 - 2 g .. 7 - 2 g of byte m (the first 32 weights in the top bits); code 0 is -1, 1 is 0, 2 is +1. After
 * the numel / 4 code bytes comes one float32, the tensor's scale (the largest |w| of the source), then 28 bytes of
 * padding: numel / 4 + 32 bytes in all. This is what bitnet.cpp writes on x86 (and on every platform before late
 * 2025), the layout of the 2B4T release file. Its later ARM build (64-weight blocks) and an x86 build without
 * ACT_PARALLEL (4 rows interleaved) write other layouts under the same type number, which no field tells apart. */
#define I2S_BLOCK 128u
#define I2S_TAIL 32u

/* Block size (weights) and bytes per block of each readable type. */
static gboolean
gguf_type_layout (guint32 type, guint32 *block, guint32 *bytes)
{
  switch (type) {
    case GT_F32: *block = 1; *bytes = 4; return TRUE;
    case GT_F16: *block = 1; *bytes = 2; return TRUE;
    case GT_BF16: *block = 1; *bytes = 2; return TRUE;
    case GT_Q8_0: *block = 32; *bytes = 2 + 32; return TRUE;
    case GT_Q4_0: *block = 32; *bytes = 2 + 16; return TRUE;
    case GT_TQ1_0: *block = 256; *bytes = 48 + 4 + 2; return TRUE;
    case GT_TQ2_0: *block = 256; *bytes = 64 + 2; return TRUE;
    case GT_I2_S: *block = I2S_BLOCK; *bytes = I2S_BLOCK / 4; return TRUE;   /* plus I2S_TAIL once per tensor */
    default: return FALSE;
  }
}

/* Name of a ggml type for messages (also the ones not read). */
static const gchar *
gguf_type_name (guint32 type)
{
  static const char *const names[] = {
    "F32", "F16", "Q4_0", "Q4_1", "type 4", "type 5", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K",
    "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8",
    "I16", "I32", "I64", "F64", "IQ1_M", "BF16", "Q4_0_4_4", "Q4_0_4_8", "Q4_0_8_8", "TQ1_0", "TQ2_0",
  };
  if (type < G_N_ELEMENTS (names))
    return names[type];
  if (type == 36)
    return "I2_S (bitnet.cpp)";
  return "unknown";
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* Bounds-checked reading                                                                                            */
/* ---------------------------------------------------------------------------------------------------------------- */

typedef struct {
  const guint8 *base;
  guint64 size;
  guint64 pos;
  const gchar *name;    /* file name for messages */
  GError **error;
} Rd;

static gboolean G_GNUC_PRINTF (3, 4)
rd_fail (Rd *r, gint code, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree gchar *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  if (r->error != NULL && *r->error == NULL)
    g_set_error (r->error, LEV_CONVERT_ERROR, code, "%s: %s", r->name, msg);
  return FALSE;
}

/* Takes n bytes at the read position; fails naming what when the file ends first. */
static gboolean
rd_take (Rd *r, guint64 n, const guint8 **out, const char *what)
{
  if (n > r->size - r->pos)
    return rd_fail (r, LEV_CONVERT_ERROR_FORMAT,
                    "truncated: %s needs %" G_GUINT64_FORMAT " bytes at offset %" G_GUINT64_FORMAT ", but the file "
                    "has %" G_GUINT64_FORMAT, what, n, r->pos, r->size);
  *out = r->base + r->pos;
  r->pos += n;
  return TRUE;
}

/* Reads an n-byte (n <= 8) little-endian unsigned integer at the read position. */
static gboolean
rd_le (Rd *r, guint n, guint64 *v, const char *what)
{
  const guint8 *p = NULL;
  if (!rd_take (r, n, &p, what))
    return FALSE;
  *v = 0;
  for (guint i = 0; i < n; i++)
    *v |= (guint64) p[i] << (8 * i);
  return TRUE;
}

/* Reads a little-endian u32. */
static gboolean
rd_u32 (Rd *r, guint32 *v, const char *what)
{
  guint64 x = 0;
  gboolean ok = rd_le (r, 4, &x, what);
  *v = (guint32) x;
  return ok;
}

/* Reads a little-endian u64. */
static gboolean
rd_u64 (Rd *r, guint64 *v, const char *what)
{
  return rd_le (r, 8, v, what);
}

/* Reads a GGUF string (u64 length, bytes): *s points into the file. */
static gboolean
rd_str (Rd *r, const guint8 **s, guint64 *len, const char *what)
{
  return rd_u64 (r, len, what) && rd_take (r, *len, s, what);
}

/* Bytes of one value of a fixed-size metadata type, 0 for strings and arrays, -1 for unknown types. */
static gint
gv_size (guint32 type)
{
  switch (type) {
    case GV_U8: case GV_I8: case GV_BOOL: return 1;
    case GV_U16: case GV_I16: return 2;
    case GV_U32: case GV_I32: case GV_F32: return 4;
    case GV_U64: case GV_I64: case GV_F64: return 8;
    case GV_STRING: case GV_ARRAY: return 0;
    default: return -1;
  }
}

/* Skips one metadata value of type (arrays recursively, at most GGUF_MAX_ARRAY_DEPTH deep). */
static gboolean
rd_skip_value (Rd *r, guint32 type, guint depth, const char *key)
{
  gint sz = gv_size (type);
  const guint8 *p = NULL;
  if (sz < 0)
    return rd_fail (r, LEV_CONVERT_ERROR_FORMAT, "metadata %s has the unknown value type %u", key, type);
  if (sz > 0)
    return rd_take (r, (guint64) sz, &p, key);
  guint64 len;
  if (type == GV_STRING)
    return rd_str (r, &p, &len, key);
  guint32 et;
  guint64 n;
  if (depth >= GGUF_MAX_ARRAY_DEPTH)
    return rd_fail (r, LEV_CONVERT_ERROR_FORMAT, "metadata %s nests arrays too deeply", key);
  if (!rd_u32 (r, &et, key) || !rd_u64 (r, &n, key))
    return FALSE;
  gint esz = gv_size (et);
  if (esz < 0)
    return rd_fail (r, LEV_CONVERT_ERROR_FORMAT, "metadata %s is an array of the unknown value type %u", key, et);
  /* every element takes at least one byte (8 for strings, 12 for arrays): bounds the count before any loop */
  guint64 min = esz > 0 ? (guint64) esz : et == GV_STRING ? 8 : 12;
  if (n > (r->size - r->pos) / min)
    return rd_fail (r, LEV_CONVERT_ERROR_FORMAT,
                    "truncated: metadata %s claims %" G_GUINT64_FORMAT " array elements, more than the file holds", key,
                    n);
  if (esz > 0)
    return rd_take (r, n * (guint64) esz, &p, key);
  for (guint64 i = 0; i < n; i++)
    if (!rd_skip_value (r, et, depth + 1, key))
      return FALSE;
  return TRUE;
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* Parsed file                                                                                                       */
/* ---------------------------------------------------------------------------------------------------------------- */

/* One metadata entry: its value type and where its value starts in the file. */
typedef struct {
  guint32 type;
  const guint8 *val;    /* the value (for arrays: the element type, the count, then the elements) */
} GgufKv;

typedef struct {
  gchar *name;
  guint32 n_dims;
  guint64 ne[GGUF_MAX_DIMS];
  guint32 type;
  guint64 offset;
  guint64 numel;
  guint64 nbytes;
  const guint8 *data;
} GgufTensor;

typedef struct {
  Rd rd;
  guint32 version;
  GHashTable *kv;       /* key (owned) -> GgufKv* (owned) */
  GPtrArray *tensors;   /* GgufTensor* (owned), in file order */
  GHashTable *by_name;  /* name -> GgufTensor* */
} GgufFile;

static void
gguf_tensor_free (gpointer p)
{
  GgufTensor *t = p;
  g_free (t->name);
  g_free (t);
}

static void
gguf_file_free (GgufFile *f)
{
  if (f == NULL)
    return;
  g_hash_table_unref (f->kv);
  g_hash_table_unref (f->by_name);
  g_ptr_array_unref (f->tensors);
  g_free (f);
}

/* A reader positioned at a metadata value. */
static Rd
kv_reader (const GgufFile *f, const GgufKv *kv)
{
  Rd r = f->rd;
  r.pos = (guint64) (kv->val - f->rd.base);
  return r;
}

/* Reads an integer metadata value of any integer type; FALSE (no error) when the key is absent. */
static gboolean
kv_uint (GgufFile *f, const gchar *key, guint64 *out, gboolean *bad)
{
  GgufKv *kv = g_hash_table_lookup (f->kv, key);
  *bad = FALSE;
  if (kv == NULL)
    return FALSE;
  gint sz = gv_size (kv->type);
  if (sz <= 0 || kv->type == GV_F32 || kv->type == GV_F64 || kv->type == GV_BOOL) {
    *bad = TRUE;
    return rd_fail (&f->rd, LEV_CONVERT_ERROR_FORMAT, "metadata %s is not an integer (value type %u)", key, kv->type);
  }
  guint64 u = 0;
  memcpy (&u, kv->val, (gsize) sz);
  u = GUINT64_FROM_LE (u);
  gboolean is_signed = kv->type == GV_I8 || kv->type == GV_I16 || kv->type == GV_I32 || kv->type == GV_I64;
  if (is_signed && (u >> (8 * sz - 1)) & 1) {
    *bad = TRUE;
    return rd_fail (&f->rd, LEV_CONVERT_ERROR_FORMAT, "metadata %s is negative", key);
  }
  *out = u;
  return TRUE;
}

/* Reads a float metadata value (f32, f64 or an integer); FALSE (no error) when absent. */
static gboolean
kv_float (GgufFile *f, const gchar *key, double *out, gboolean *bad)
{
  GgufKv *kv = g_hash_table_lookup (f->kv, key);
  *bad = FALSE;
  if (kv == NULL)
    return FALSE;
  if (kv->type == GV_F32) {
    float v;
    guint32 u;
    memcpy (&u, kv->val, 4);
    u = GUINT32_FROM_LE (u);
    memcpy (&v, &u, 4);
    *out = v;
  } else if (kv->type == GV_F64) {
    double v;
    guint64 u;
    memcpy (&u, kv->val, 8);
    u = GUINT64_FROM_LE (u);
    memcpy (&v, &u, 8);
    *out = v;
  } else {
    guint64 u;
    if (!kv_uint (f, key, &u, bad))
      return FALSE;
    *out = (double) u;
  }
  if (!isfinite (*out)) {
    *bad = TRUE;
    return rd_fail (&f->rd, LEV_CONVERT_ERROR_FORMAT, "metadata %s is not a finite number", key);
  }
  return TRUE;
}

/* Reads a bool metadata value; def when absent. */
static gboolean
kv_bool (GgufFile *f, const gchar *key, gboolean def, gboolean *out)
{
  GgufKv *kv = g_hash_table_lookup (f->kv, key);
  *out = def;
  if (kv == NULL)
    return TRUE;
  if (kv->type != GV_BOOL)
    return rd_fail (&f->rd, LEV_CONVERT_ERROR_FORMAT, "metadata %s is not a bool", key);
  *out = kv->val[0] != 0;
  return TRUE;
}

/* Returns a string metadata value (g_free it), or NULL when absent or not a string (*bad set for the latter). */
static gchar *
kv_string (GgufFile *f, const gchar *key, gboolean *bad)
{
  GgufKv *kv = g_hash_table_lookup (f->kv, key);
  *bad = FALSE;
  if (kv == NULL)
    return NULL;
  if (kv->type != GV_STRING) {
    *bad = TRUE;
    rd_fail (&f->rd, LEV_CONVERT_ERROR_FORMAT, "metadata %s is not a string", key);
    return NULL;
  }
  Rd r = kv_reader (f, kv);
  const guint8 *s = NULL;
  guint64 len = 0;
  if (!rd_str (&r, &s, &len, key)) {
    *bad = TRUE;
    return NULL;
  }
  return g_strndup ((const gchar *) s, (gsize) len);
}

/* Positions r at the first element of the array key of element type want; *n receives its length. Returns FALSE
 * (no error) when absent, FALSE with an error when it is not such an array. */
static gboolean
kv_array (GgufFile *f, const gchar *key, guint32 want, Rd *r, guint64 *n, gboolean *bad)
{
  GgufKv *kv = g_hash_table_lookup (f->kv, key);
  *bad = FALSE;
  if (kv == NULL)
    return FALSE;
  *r = kv_reader (f, kv);
  guint32 et;
  *bad = TRUE;
  if (kv->type != GV_ARRAY)
    return rd_fail (&f->rd, LEV_CONVERT_ERROR_FORMAT, "metadata %s is not an array", key);
  if (!rd_u32 (r, &et, key) || !rd_u64 (r, n, key))
    return FALSE;
  if (et != want)
    return rd_fail (&f->rd, LEV_CONVERT_ERROR_FORMAT, "metadata %s is an array of value type %u, expected %u", key,
                    et, want);
  *bad = FALSE;
  return TRUE;
}

/* Parses the header, metadata and tensor infos, and checks every tensor's data against the file size. */
static GgufFile *
gguf_parse (const guint8 *data, gsize size, const gchar *name, GError **error)
{
  GgufFile *f = g_new0 (GgufFile, 1);
  f->rd = (Rd) { data, size, 0, name, error };
  f->kv = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  f->tensors = g_ptr_array_new_with_free_func (gguf_tensor_free);
  f->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  Rd *r = &f->rd;
  const guint8 *magic;
  guint64 n_tensors, n_kv;
  if (size < 4 || memcmp (data, GGUF_MAGIC, 4) != 0) {
    rd_fail (r, LEV_CONVERT_ERROR_FORMAT, "not a GGUF file (no \"GGUF\" magic)");
    goto fail;
  }
  if (!rd_take (r, 4, &magic, "the magic") || !rd_u32 (r, &f->version, "the version"))
    goto fail;
  if (f->version == 0x03000000u || f->version == 0x02000000u) {
    rd_fail (r, LEV_CONVERT_ERROR_UNSUPPORTED, "big-endian GGUF files are not supported");
    goto fail;
  }
  if (f->version != 2 && f->version != 3) {
    rd_fail (r, LEV_CONVERT_ERROR_UNSUPPORTED, "GGUF version %u is not supported (2 and 3 are)", f->version);
    goto fail;
  }
  if (!rd_u64 (r, &n_tensors, "the tensor count") || !rd_u64 (r, &n_kv, "the metadata count"))
    goto fail;
  /* a metadata entry takes at least 13 bytes, a tensor info at least 24 */
  if (n_kv > (size - r->pos) / 13 || n_tensors > (size - r->pos) / 24) {
    rd_fail (r, LEV_CONVERT_ERROR_FORMAT, "%" G_GUINT64_FORMAT " tensors and %" G_GUINT64_FORMAT " metadata entries "
             "cannot fit in %" G_GSIZE_FORMAT " bytes (truncated or corrupt)", n_tensors, n_kv, size);
    goto fail;
  }
  for (guint64 i = 0; i < n_kv; i++) {
    const guint8 *k;
    guint64 klen;
    guint32 type;
    if (!rd_str (r, &k, &klen, "a metadata key"))
      goto fail;
    if (klen == 0 || klen > GGUF_MAX_NAME || memchr (k, 0, (gsize) klen) != NULL) {
      rd_fail (r, LEV_CONVERT_ERROR_FORMAT, "metadata key %" G_GUINT64_FORMAT " is empty, too long or holds a NUL",
               i);
      goto fail;
    }
    gchar *key = g_strndup ((const gchar *) k, (gsize) klen);
    if (g_hash_table_contains (f->kv, key)) {
      rd_fail (r, LEV_CONVERT_ERROR_FORMAT, "metadata key %s appears twice", key);
      g_free (key);
      goto fail;
    }
    GgufKv *kv = g_new0 (GgufKv, 1);
    g_hash_table_insert (f->kv, key, kv);
    if (!rd_u32 (r, &type, key))
      goto fail;
    kv->type = type;
    kv->val = data + r->pos;
    if (!rd_skip_value (r, type, 0, key))
      goto fail;
  }

  guint64 alignment = 32;
  gboolean bad;
  if (kv_uint (f, "general.alignment", &alignment, &bad) &&
      (alignment == 0 || alignment > GGUF_MAX_ALIGNMENT || (alignment & (alignment - 1)) != 0)) {
    rd_fail (r, LEV_CONVERT_ERROR_FORMAT, "general.alignment %" G_GUINT64_FORMAT " is not a power of two up to %u",
             alignment, GGUF_MAX_ALIGNMENT);
    goto fail;
  }
  if (bad)
    goto fail;

  for (guint64 i = 0; i < n_tensors; i++) {
    const guint8 *s;
    guint64 len;
    if (!rd_str (r, &s, &len, "a tensor name"))
      goto fail;
    if (len == 0 || len > GGUF_MAX_NAME || memchr (s, 0, (gsize) len) != NULL) {
      rd_fail (r, LEV_CONVERT_ERROR_FORMAT, "tensor %" G_GUINT64_FORMAT "'s name is empty, too long or holds a NUL",
               i);
      goto fail;
    }
    GgufTensor *t = g_new0 (GgufTensor, 1);
    t->name = g_strndup ((const gchar *) s, (gsize) len);
    g_ptr_array_add (f->tensors, t);
    if (g_hash_table_contains (f->by_name, t->name)) {
      rd_fail (r, LEV_CONVERT_ERROR_FORMAT, "tensor %s appears twice", t->name);
      goto fail;
    }
    g_hash_table_insert (f->by_name, t->name, t);
    if (!rd_u32 (r, &t->n_dims, t->name))
      goto fail;
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS) {
      rd_fail (r, LEV_CONVERT_ERROR_FORMAT, "tensor %s has %u dimensions (1 to 4 are allowed)", t->name, t->n_dims);
      goto fail;
    }
    t->numel = 1;
    for (guint32 d = 0; d < GGUF_MAX_DIMS; d++) {
      t->ne[d] = 1;
      if (d < t->n_dims && !rd_u64 (r, &t->ne[d], t->name))
        goto fail;
      if (t->ne[d] == 0 || t->ne[d] > (G_GUINT64_CONSTANT (1) << 62) / t->numel) {
        rd_fail (r, LEV_CONVERT_ERROR_FORMAT, "tensor %s has an absurd size (dimension %u is %" G_GUINT64_FORMAT ")",
                 t->name, d, t->ne[d]);
        goto fail;
      }
      t->numel *= t->ne[d];
    }
    if (!rd_u32 (r, &t->type, t->name) || !rd_u64 (r, &t->offset, t->name))
      goto fail;
  }
  guint64 data_start = (r->pos + alignment - 1) / alignment * alignment;
  if (data_start > size && n_tensors > 0) {
    rd_fail (r, LEV_CONVERT_ERROR_FORMAT, "truncated: the file ends before its tensor data");
    goto fail;
  }
  for (guint i = 0; i < f->tensors->len; i++) {
    GgufTensor *t = g_ptr_array_index (f->tensors, i);
    guint32 block, bytes;
    if (!gguf_type_layout (t->type, &block, &bytes)) {
      rd_fail (r, LEV_CONVERT_ERROR_UNSUPPORTED, "tensor %s has type %s (%u), which is not supported (F32, F16, BF16, "
               "Q8_0, Q4_0, TQ1_0, TQ2_0 and I2_S are)", t->name, gguf_type_name (t->type), t->type);
      goto fail;
    }
    if (t->ne[0] % block != 0) {
      rd_fail (r, LEV_CONVERT_ERROR_FORMAT, "tensor %s: its row length %" G_GUINT64_FORMAT " is not a multiple of "
               "the %s block size %u", t->name, t->ne[0], gguf_type_name (t->type), block);
      goto fail;
    }
    t->nbytes = t->numel / block * bytes + (t->type == GT_I2_S ? I2S_TAIL : 0);
    if (t->offset % alignment != 0) {
      rd_fail (r, LEV_CONVERT_ERROR_FORMAT, "tensor %s: data offset %" G_GUINT64_FORMAT " is not a multiple of the "
               "alignment %" G_GUINT64_FORMAT, t->name, t->offset, alignment);
      goto fail;
    }
    if (t->offset > size - data_start || t->nbytes > size - data_start - t->offset) {
      rd_fail (r, LEV_CONVERT_ERROR_FORMAT, "truncated: tensor %s (%s, %" G_GUINT64_FORMAT " bytes at data offset %"
               G_GUINT64_FORMAT ") ends past the end of the file (%" G_GSIZE_FORMAT " bytes)", t->name,
               gguf_type_name (t->type), t->nbytes, t->offset, size);
      goto fail;
    }
    t->data = data + data_start + t->offset;
  }
  return f;

fail:
  gguf_file_free (f);
  return NULL;
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* Tensor values                                                                                                     */
/* ---------------------------------------------------------------------------------------------------------------- */

static float
f16_at (const guint8 *p)
{
  return lev_f16_to_f32 ((guint16) (p[0] | (p[1] << 8)));
}

/* Decodes one TQ1_0 block (48 bytes of 5 trits, 4 bytes of 4 trits, f16 scale) into codes 0..2 (value code - 1), in
 * the order of gguf-py's dequantize: the first 32 bytes give trit n of byte m at 32 n + m, the next 16 bytes at
 * 160 + 16 n + m, the 4 high bytes at 240 + 4 n + m. Trit n of a byte q is ((q * 3^n mod 256) * 3) >> 8. */
static void
tq1_block (const guint8 *b, guint8 *code)
{
  static const guint8 pow3[5] = { 1, 3, 9, 27, 81 };
  for (guint n = 0; n < 5; n++)
    for (guint m = 0; m < 32; m++)
      code[32 * n + m] = (guint8) (((guint) (guint8) (b[m] * pow3[n]) * 3) >> 8);
  for (guint n = 0; n < 5; n++)
    for (guint m = 0; m < 16; m++)
      code[160 + 16 * n + m] = (guint8) (((guint) (guint8) (b[32 + m] * pow3[n]) * 3) >> 8);
  for (guint n = 0; n < 4; n++)
    for (guint m = 0; m < 4; m++)
      code[240 + 4 * n + m] = (guint8) (((guint) (guint8) (b[48 + m] * pow3[n]) * 3) >> 8);
}

/* Decodes one TQ2_0 block (64 bytes of four 2-bit codes, f16 scale): code l of byte 32 g + m is weight
 * 128 g + 32 l + m; the value is code - 1 (code 3 would be +2, which no ternary writer produces). */
static void
tq2_block (const guint8 *b, guint8 *code)
{
  for (guint g = 0; g < 2; g++)
    for (guint l = 0; l < 4; l++)
      for (guint m = 0; m < 32; m++)
        code[128 * g + 32 * l + m] = (b[32 * g + m] >> (2 * l)) & 3u;
}

/* Dequantizes a Q8_0 or Q4_0 tensor to float32: value = d * q, exact in float32 (an f16 times a small integer). */
static float *
dequant_q (const GgufTensor *t)
{
  float *out = g_new (float, t->numel);
  guint64 n_blocks = t->numel / 32;
  for (guint64 i = 0; i < n_blocks; i++) {
    float *y = out + 32 * i;
    if (t->type == GT_Q8_0) {
      const guint8 *b = t->data + 34 * i;
      float d = f16_at (b);
      for (guint j = 0; j < 32; j++)
        y[j] = d * (float) (gint8) b[2 + j];
    } else {
      const guint8 *b = t->data + 18 * i;
      float d = f16_at (b);
      for (guint j = 0; j < 16; j++) {
        y[j] = d * (float) ((gint) (b[2 + j] & 15u) - 8);
        y[j + 16] = d * (float) ((gint) (b[2 + j] >> 4) - 8);
      }
    }
  }
  return out;
}

/* Adds a TQ1_0 / TQ2_0 matrix whose blocks have different scales as a packed t2 matrix with one scale per
 * 128-weight group (docs/format.md): the same codes and the same scales, so the values are unchanged. FALSE (nothing
 * added) when a code is 3 (a weight of +2), a scale is not finite, or a row has more groups than t2 allows. */
static gboolean
add_t2_groups (LevConvModel *model, const gchar *name, const GgufTensor *t, const guint64 *shape)
{
  guint64 rows = shape[0], cols = shape[1], groups = cols / 128, blocks_per_row = cols / 256;
  guint32 bsize = t->type == GT_TQ1_0 ? 54 : 66;
  if (groups == 0 || groups > LEV_QMAX_GROUPS)
    return FALSE;
  guint64 code_bytes = rows * groups * 32, n_scales = rows * groups;
  guint8 *buf = g_malloc (code_bytes + 4 * n_scales);
  float *scales = (float *) (buf + code_bytes);
  guint8 code[256];
  for (guint64 r = 0; r < rows; r++)
    for (guint64 b = 0; b < blocks_per_row; b++) {
      const guint8 *blk = t->data + (r * blocks_per_row + b) * bsize;
      float d = f16_at (blk + bsize - 2);
      if (t->type == GT_TQ1_0)
        tq1_block (blk, code);
      else
        tq2_block (blk, code);
      for (guint g = 0; g < 2; g++) {
        guint8 *out = buf + (r * groups + 2 * b + g) * 32;
        for (guint j = 0; j < 32; j++) {
          guint8 byte = 0;
          for (guint k = 0; k < 4; k++) {
            guint8 c = code[128 * g + j + 32 * k];
            if (c > 2 || !isfinite (d)) {
              g_free (buf);
              return FALSE;
            }
            byte |= (guint8) (c << (2 * k));   /* t2: weight j + 32k of the block in bits 2k..2k+1, code w + 1 */
          }
          out[j] = byte;
        }
        scales[r * groups + 2 * b + g] = d;
      }
    }
  LevConvTensor *ct = lev_conv_model_add_tensor (model, name, LEV_SRC_ENCODED, 2, shape, buf, buf);
  ct->encoding = LEV_ENC_T2;
  ct->encoded_size = code_bytes + 4 * n_scales;
  return TRUE;
}

/* Adds a TQ1_0 / TQ2_0 tensor: as ternary (codes and one scale, lossless) when every block that holds a non-zero
 * weight has the same scale, which is what a ternary model quantized to TQ gives; else a matrix as packed t2 with
 * the blocks' scales (lossless), and anything else (embeddings, codes of +2) as exact float32 values. */
static void
add_ternary (LevConvModel *model, const gchar *name, const GgufTensor *t, guint32 n_dims, const guint64 *shape,
             gboolean allow_ternary)
{
  guint64 n_blocks = t->numel / 256;
  guint32 bsize = t->type == GT_TQ1_0 ? 54 : 66;
  gint8 *trit = g_malloc (t->numel);
  guint16 common = 0;
  gboolean have_common = FALSE, uniform = allow_ternary;
  guint8 code[256];
  for (guint64 i = 0; i < n_blocks; i++) {
    const guint8 *b = t->data + bsize * i;
    if (t->type == GT_TQ1_0)
      tq1_block (b, code);
    else
      tq2_block (b, code);
    guint16 dbits = (guint16) (b[bsize - 2] | (b[bsize - 1] << 8));
    gboolean nonzero = FALSE;
    for (guint j = 0; j < 256; j++) {
      if (code[j] > 2)
        uniform = FALSE;
      trit[256 * i + j] = (gint8) ((gint) code[j] - 1);
      nonzero |= code[j] != 1;
    }
    if (nonzero && !have_common) {
      common = dbits;
      have_common = TRUE;
    } else if (nonzero && dbits != common) {
      uniform = FALSE;
    }
  }
  float scale = have_common ? lev_f16_to_f32 (common) : 0.0f;
  if (uniform && have_common && scale > 0.0f && isfinite (scale)) {
    LevConvTensor *ct = lev_conv_model_add_tensor (model, name, LEV_SRC_TERNARY, n_dims, shape, trit, trit);
    ct->scale = scale;
    return;
  }
  g_free (trit);
  if (allow_ternary && add_t2_groups (model, name, t, shape))
    return;
  /* float32 values exactly as gguf-py's dequantize gives them (d * (code - 1)) */
  float *f = g_new (float, t->numel);
  for (guint64 i = 0; i < n_blocks; i++) {
    const guint8 *b = t->data + bsize * i;
    float d = f16_at (b + bsize - 2);
    if (t->type == GT_TQ1_0)
      tq1_block (b, code);
    else
      tq2_block (b, code);
    for (guint j = 0; j < 256; j++)
      f[256 * i + j] = d * (float) ((gint) code[j] - 1);
  }
  lev_conv_model_add_tensor (model, name, LEV_SRC_F32, n_dims, shape, f, f);
}

/* Adds an I2_S tensor (layout above): a matrix as ternary codes with the file's one scale, which is lossless; any
 * other tensor (an embedding, a norm) as the exact float32 values code * scale. Refuses, naming the tensor, a scale
 * that is negative or not finite and a code of 3, which bitnet.cpp's quantizer never writes. */
static gboolean
add_i2s (LevConvModel *model, const gchar *name, const GgufTensor *t, guint32 n_dims, const guint64 *shape,
         gboolean as_ternary, const gchar *fname, GError **error)
{
  float scale;
  memcpy (&scale, t->data + t->numel / 4, 4);
  if (!isfinite (scale) || scale < 0.0f) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s: tensor %s (I2_S) has the scale %g, which "
                 "is not a finite non-negative number (corrupt)", fname, t->name, (double) scale);
    return FALSE;
  }
  gint8 *trit = g_malloc (t->numel);
  for (guint64 b = 0; b < t->numel / I2S_BLOCK; b++) {
    const guint8 *bytes = t->data + b * (I2S_BLOCK / 4);
    gint8 *out = trit + b * I2S_BLOCK;
    for (guint g = 0; g < 4; g++)
      for (guint m = 0; m < 32; m++) {
        guint code = (bytes[m] >> (6 - 2 * g)) & 3u;
        if (code == 3) {
          g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s: tensor %s (I2_S) holds the code 3 at "
                       "weight %" G_GUINT64_FORMAT ", which is not a trit (corrupt)", fname, t->name,
                       b * I2S_BLOCK + 32 * g + m);
          g_free (trit);
          return FALSE;
        }
        out[32 * g + m] = (gint8) ((gint) code - 1);
      }
  }
  if (as_ternary && scale > 0.0f) {
    LevConvTensor *ct = lev_conv_model_add_tensor (model, name, LEV_SRC_TERNARY, n_dims, shape, trit, trit);
    ct->scale = scale;
    return TRUE;
  }
  float *f = g_new (float, t->numel);
  for (guint64 i = 0; i < t->numel; i++)
    f[i] = (float) trit[i] * scale;
  g_free (trit);
  lev_conv_model_add_tensor (model, name, LEV_SRC_F32, n_dims, shape, f, f);
  return TRUE;
}

/* Maps a GGUF tensor name to its canonical name (g_free it), or NULL for names this importer does not know. */
static gchar *
canonical_name (const gchar *g, guint32 n_layers, gboolean *linear)
{
  static const struct { const char *gguf; const char *lev; gboolean linear; } layer_map[] = {
    { "attn_norm.weight", "attn_norm", FALSE }, { "ffn_norm.weight", "ffn_norm", FALSE },
    { "attn_q.weight", "attn_q", TRUE }, { "attn_k.weight", "attn_k", TRUE }, { "attn_v.weight", "attn_v", TRUE },
    { "attn_output.weight", "attn_o", TRUE }, { "attn_q.bias", "attn_q_bias", FALSE },
    { "attn_k.bias", "attn_k_bias", FALSE }, { "attn_v.bias", "attn_v_bias", FALSE },
    { "ffn_gate.weight", "ffn_gate", TRUE }, { "ffn_up.weight", "ffn_up", TRUE },
    { "ffn_down.weight", "ffn_down", TRUE }, { "attn_sub_norm.weight", "attn_sub_norm", FALSE },
    { "ffn_sub_norm.weight", "ffn_sub_norm", FALSE },
  };
  *linear = FALSE;
  if (strcmp (g, "token_embd.weight") == 0)
    return g_strdup ("token_embd");
  if (strcmp (g, "output_norm.weight") == 0)
    return g_strdup ("output_norm");
  if (strcmp (g, "output.weight") == 0)
    return g_strdup ("output");
  if (!g_str_has_prefix (g, "blk."))
    return NULL;
  const gchar *p = g + 4;
  gchar *end = NULL;
  guint64 layer = g_ascii_strtoull (p, &end, 10);
  if (end == p || *end != '.' || !g_ascii_isdigit (*p) || (layer > 0 && *p == '0') || layer >= n_layers)
    return NULL;
  for (gsize i = 0; i < G_N_ELEMENTS (layer_map); i++)
    if (strcmp (end + 1, layer_map[i].gguf) == 0) {
      *linear = layer_map[i].linear;
      return g_strdup_printf ("blk.%" G_GUINT64_FORMAT ".%s", layer, layer_map[i].lev);
    }
  return NULL;
}

/* Adds every tensor of the file under its canonical name. */
static gboolean
map_tensors (LevConvModel *model, GgufFile *f, GError **error)
{
  const gchar *fname = f->rd.name;
  for (guint i = 0; i < f->tensors->len; i++) {
    GgufTensor *t = g_ptr_array_index (f->tensors, i);
    gboolean linear;
    if (strcmp (t->name, "rope_freqs.weight") == 0) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED,
                   "%s: tensor rope_freqs.weight (Llama 3.1 RoPE frequency factors) is not supported", fname);
      return FALSE;
    }
    g_autofree gchar *name = canonical_name (t->name, model->hp.n_layers, &linear);
    if (name == NULL) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED,
                   "%s: tensor %s is not part of the %s layout this converter knows", fname, t->name,
                   model->hp.arch == LEV_ARCH_QWEN2 ? "qwen2" : model->hp.arch == LEV_ARCH_BITNET ? "bitnet" : "llama");
      return FALSE;
    }
    /* drop trailing dimensions of 1; ggml's ne[0] is the row length, so the shape reverses */
    guint32 nd = t->n_dims;
    while (nd > 1 && t->ne[nd - 1] == 1)
      nd--;
    if (nd > 2) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_SHAPE, "%s: tensor %s has %u dimensions", fname,
                   t->name, nd);
      return FALSE;
    }
    guint64 shape[2] = { nd == 2 ? t->ne[1] : t->ne[0], t->ne[0] };
    if (t->type == GT_F32 || t->type == GT_F16 || t->type == GT_BF16) {
      LevSrcType type = t->type == GT_F32 ? LEV_SRC_F32 : t->type == GT_F16 ? LEV_SRC_F16 : LEV_SRC_BF16;
      guint esize = t->type == GT_F32 ? 4 : 2;
      const void *data = t->data;
      gpointer owned = NULL;
      if ((uintptr_t) data % esize != 0) {
        owned = g_memdup2 (data, t->nbytes);
        data = owned;
      }
      lev_conv_model_add_tensor (model, name, type, nd, shape, data, owned);
    } else if (t->type == GT_Q8_0 || t->type == GT_Q4_0) {
      float *v = dequant_q (t);
      lev_conv_model_add_tensor (model, name, LEV_SRC_F32, nd, shape, v, v);
    } else if (t->type == GT_I2_S) {
      if (!add_i2s (model, name, t, nd, shape, linear && nd == 2, fname, error))
        return FALSE;
    } else {
      add_ternary (model, name, t, nd, shape, linear && nd == 2);
    }
  }
  return TRUE;
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* Hyperparameters                                                                                                   */
/* ---------------------------------------------------------------------------------------------------------------- */

/* Reads "<arch>.<key>" as a positive integer below 2^32; def when absent and not required. */
static gboolean
hp_uint (GgufFile *f, const gchar *arch, const gchar *key, gboolean required, guint32 def, guint32 *out)
{
  g_autofree gchar *full = g_strdup_printf ("%s.%s", arch, key);
  guint64 v = 0;
  gboolean bad;
  if (!kv_uint (f, full, &v, &bad)) {
    if (bad)
      return FALSE;
    if (required)
      return rd_fail (&f->rd, LEV_CONVERT_ERROR_FORMAT, "metadata %s is missing", full);
    *out = def;
    return TRUE;
  }
  if (v == 0 || v > G_MAXUINT32)
    return rd_fail (&f->rd, LEV_CONVERT_ERROR_FORMAT, "metadata %s = %" G_GUINT64_FORMAT " is out of range", full, v);
  *out = (guint32) v;
  return TRUE;
}

/* Reads "<arch>.<key>" as a float; def when absent. */
static gboolean
hp_float (GgufFile *f, const gchar *arch, const gchar *key, double def, float *out)
{
  g_autofree gchar *full = g_strdup_printf ("%s.%s", arch, key);
  double v = def;
  gboolean bad;
  if (!kv_float (f, full, &v, &bad) && bad)
    return FALSE;
  *out = (float) v;
  return TRUE;
}

static gboolean
parse_hparams (LevConvModel *model, GgufFile *f)
{
  LevHParams *hp = &model->hp;
  gboolean bad;
  g_autofree gchar *arch = kv_string (f, "general.architecture", &bad);
  gboolean relu2 = FALSE;
  if (arch == NULL)
    return bad ? FALSE : rd_fail (&f->rd, LEV_CONVERT_ERROR_FORMAT, "metadata general.architecture is missing");
  if (strcmp (arch, "llama") == 0) {
    /* convert_hf_to_gguf.py permutes q/k rows of Llama checkpoints for llama.cpp's RoPE, which rotates adjacent
     * pairs: the weights stay as they are and the rotation is the interleaved one */
    hp->arch = LEV_ARCH_LLAMA;
    hp->rope_style = LEV_ROPE_INTERLEAVED;
  } else if (strcmp (arch, "qwen2") == 0) {
    hp->arch = LEV_ARCH_QWEN2;
    hp->rope_style = LEV_ROPE_HALF;   /* llama.cpp's NEOX rotation, weights not permuted */
    hp->flags |= LEV_HP_QKV_BIAS;
  } else if (strcmp (arch, "bitnet") == 0) {
    /* llama.cpp's BitNet b1.58 (1bitLLM layout, convert_hf_to_gguf.py BitnetModel): weights already ternary-valued
     * floats, sub-norms before attn_output and ffn_down, NEOX rotation; llama.cpp does not quantize activations,
     * so neither does the imported model (no LEV_HP_ACT_QUANT) */
    hp->arch = LEV_ARCH_BITNET;
    hp->rope_style = LEV_ROPE_HALF;
    hp->flags |= LEV_HP_SUB_NORMS;
  } else if (strcmp (arch, "bitnet-b1.58") == 0 || strcmp (arch, "bitnet-25") == 0) {
    /* bitnet.cpp's BitNet b1.58 2B4T names (its convert-hf-to-gguf-bitnet.py writes bitnet-b1.58, the earlier
     * bitnet2b_2501 converter bitnet-25; one graph, build_bitnet_158): sub-norms as bitnet, NEOX rotation (q/k not
     * permuted), relu(gate)^2 * up, an output.weight or tied embeddings; no activation quantization, as above */
    hp->arch = LEV_ARCH_BITNET;
    hp->rope_style = LEV_ROPE_HALF;
    hp->flags |= LEV_HP_SUB_NORMS;
    relu2 = TRUE;
  } else {
    return rd_fail (&f->rd, LEV_CONVERT_ERROR_UNSUPPORTED,
                    "architecture %s is not supported (llama, qwen2, bitnet, bitnet-b1.58 and bitnet-25 are)", arch);
  }
  guint32 rope_dims = 0, head_dim_v = 0;
  if (!hp_uint (f, arch, "embedding_length", TRUE, 0, &hp->dim) ||
      !hp_uint (f, arch, "block_count", TRUE, 0, &hp->n_layers) ||
      !hp_uint (f, arch, "feed_forward_length", TRUE, 0, &hp->ffn_dim) ||
      !hp_uint (f, arch, "attention.head_count", TRUE, 0, &hp->n_heads) ||
      !hp_uint (f, arch, "attention.head_count_kv", FALSE, hp->n_heads, &hp->n_kv_heads) ||
      !hp_uint (f, arch, "context_length", FALSE, 2048, &hp->max_ctx) ||
      !hp_float (f, arch, "attention.layer_norm_rms_epsilon", 1e-5, &hp->norm_eps) ||
      !hp_float (f, arch, "rope.freq_base", 10000.0, &hp->rope_theta))
    return FALSE;
  if (hp->n_layers > LEV_MAX_LAYERS)
    return rd_fail (&f->rd, LEV_CONVERT_ERROR_FORMAT, "%u layers is too many", hp->n_layers);
  if (hp->dim % hp->n_heads != 0) {
    g_autofree gchar *kl = g_strdup_printf ("%s.attention.key_length", arch);
    if (!g_hash_table_contains (f->kv, kl))
      return rd_fail (&f->rd, LEV_CONVERT_ERROR_FORMAT, "embedding_length %u is not a multiple of head_count %u",
                      hp->dim, hp->n_heads);
  }
  if (!hp_uint (f, arch, "attention.key_length", FALSE, hp->dim / hp->n_heads ? hp->dim / hp->n_heads : 1,
                &hp->head_dim) ||
      !hp_uint (f, arch, "attention.value_length", FALSE, hp->head_dim, &head_dim_v) ||
      !hp_uint (f, arch, "rope.dimension_count", FALSE, hp->head_dim, &rope_dims))
    return FALSE;
  if (head_dim_v != hp->head_dim || rope_dims != hp->head_dim)
    return rd_fail (&f->rd, LEV_CONVERT_ERROR_UNSUPPORTED,
                    "head sizes (key %u, value %u, rotary %u) that differ are not supported", hp->head_dim,
                    head_dim_v, rope_dims);
  if (hp->n_heads % hp->n_kv_heads != 0 || hp->head_dim % 2 != 0)
    return rd_fail (&f->rd, LEV_CONVERT_ERROR_FORMAT, "inconsistent sizes (%u heads, %u kv heads, head size %u)",
                    hp->n_heads, hp->n_kv_heads, hp->head_dim);
  if (!(hp->norm_eps >= 0.0f) || !(hp->rope_theta > 0.0f))
    return rd_fail (&f->rd, LEV_CONVERT_ERROR_FORMAT, "rms epsilon or rope freq_base out of range");
  hp->activation = relu2 ? LEV_ACT_RELU2 : LEV_ACT_SILU;
  hp->rope_scaling = LEV_ROPE_SCALING_NONE;
  g_autofree gchar *st_key = g_strdup_printf ("%s.rope.scaling.type", arch);
  g_autofree gchar *scaling = kv_string (f, st_key, &bad);
  if (bad)
    return FALSE;
  if (scaling != NULL && strcmp (scaling, "linear") == 0) {
    float factor = 0.0f;
    if (!hp_float (f, arch, "rope.scaling.factor", 0.0, &factor))
      return FALSE;
    if (!(factor > 0.0f))
      return rd_fail (&f->rd, LEV_CONVERT_ERROR_FORMAT, "linear rope scaling needs a positive factor");
    if (factor != 1.0f) {
      hp->rope_scaling = LEV_ROPE_SCALING_LINEAR;
      hp->rope_factor = factor;
    }
  } else if (scaling != NULL && strcmp (scaling, "none") != 0) {
    return rd_fail (&f->rd, LEV_CONVERT_ERROR_UNSUPPORTED, "rope scaling %s is not supported (none and linear are)",
                    scaling);
  }
  return TRUE;
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* Tokenizer                                                                                                         */
/* ---------------------------------------------------------------------------------------------------------------- */

/* Reads an optional token id key into *id (-1 when absent); fails when it is not below n_tokens. */
static gboolean
token_id (GgufFile *f, const gchar *key, guint32 n_tokens, gint32 *id)
{
  guint64 v = 0;
  gboolean bad;
  *id = -1;
  if (!kv_uint (f, key, &v, &bad))
    return !bad;
  if (v >= n_tokens)
    return rd_fail (&f->rd, LEV_CONVERT_ERROR_FORMAT, "metadata %s = %" G_GUINT64_FORMAT " is not a token id (the "
                    "vocabulary has %u tokens)", key, v, n_tokens);
  *id = (gint32) v;
  return TRUE;
}

/* Builds the vocabulary from tokenizer.ggml.*; *vocab stays NULL when the file has no tokenizer. */
static gboolean
parse_tokenizer (GgufFile *f, LevConvVocab **vocab, gchar **chat_template)
{
  gboolean bad;
  *vocab = NULL;
  g_autofree gchar *tmodel = kv_string (f, "tokenizer.ggml.model", &bad);
  if (bad)
    return FALSE;
  if (tmodel == NULL || strcmp (tmodel, "none") == 0)
    return TRUE;
  gboolean spm = strcmp (tmodel, "llama") == 0, bpe = strcmp (tmodel, "gpt2") == 0;
  if (!spm && !bpe)
    return rd_fail (&f->rd, LEV_CONVERT_ERROR_UNSUPPORTED,
                    "tokenizer.ggml.model %s is not supported (llama and gpt2 are)", tmodel);
  Rd tr, sr, yr, mr;
  guint64 n, n_scores = 0, n_types = 0, n_merges = 0;
  if (!kv_array (f, "tokenizer.ggml.tokens", GV_STRING, &tr, &n, &bad))
    return bad ? FALSE : rd_fail (&f->rd, LEV_CONVERT_ERROR_FORMAT, "metadata tokenizer.ggml.tokens is missing");
  if (n == 0 || n > GGUF_MAX_TOKENS)
    return rd_fail (&f->rd, LEV_CONVERT_ERROR_FORMAT, "tokenizer.ggml.tokens has %" G_GUINT64_FORMAT " tokens", n);
  gboolean have_scores = kv_array (f, "tokenizer.ggml.scores", GV_F32, &sr, &n_scores, &bad);
  if (bad)
    return FALSE;
  gboolean have_types = kv_array (f, "tokenizer.ggml.token_type", GV_I32, &yr, &n_types, &bad);
  if (bad)
    return FALSE;
  gboolean have_merges = kv_array (f, "tokenizer.ggml.merges", GV_STRING, &mr, &n_merges, &bad);
  if (bad)
    return FALSE;
  if ((have_scores && n_scores != n) || (have_types && n_types != n))
    return rd_fail (&f->rd, LEV_CONVERT_ERROR_FORMAT, "tokenizer.ggml.scores or token_type has a length other than "
                    "the %" G_GUINT64_FORMAT " tokens", n);
  LevConvVocab *v = lev_conv_vocab_new (spm ? LEV_TOK_SPM_BPE : LEV_TOK_BYTE_BPE);
  GHashTable *ids = bpe ? g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL) : NULL;
  GString *bytes = g_string_new (NULL);
  gboolean ok = TRUE, any_byte = FALSE;
  for (guint64 i = 0; ok && i < n; i++) {
    const guint8 *s;
    guint64 len;
    float score = 0.0f;
    gint32 type = LEV_TOKTYPE_NORMAL;
    if (!rd_str (&tr, &s, &len, "tokenizer.ggml.tokens")) {
      ok = FALSE;
      break;
    }
    if (have_scores) {
      guint32 u;
      ok = rd_u32 (&sr, &u, "tokenizer.ggml.scores");
      memcpy (&score, &u, 4);
      if (ok && !isfinite (score)) {
        ok = rd_fail (&f->rd, LEV_CONVERT_ERROR_FORMAT, "token %" G_GUINT64_FORMAT " has a score that is not a finite "
                      "number", i);
        break;
      }
    }
    if (ok && have_types) {
      guint32 u;
      ok = rd_u32 (&yr, &u, "tokenizer.ggml.token_type");
      type = (gint32) u;
    }
    if (!ok)
      break;
    if (type == 0)
      type = LEV_TOKTYPE_NORMAL;   /* llama.cpp's "undefined" */
    if (type < LEV_TOKTYPE_NORMAL || type > LEV_TOKTYPE_BYTE) {
      ok = rd_fail (&f->rd, LEV_CONVERT_ERROR_FORMAT, "token %" G_GUINT64_FORMAT " has the unknown type %d", i, type);
      break;
    }
    any_byte |= type == LEV_TOKTYPE_BYTE;
    g_string_truncate (bytes, 0);
    if (bpe && type != LEV_TOKTYPE_CONTROL && type != LEV_TOKTYPE_USER_DEFINED) {
      /* byte-level pieces are stored in GPT-2's byte-to-character alphabet */
      g_hash_table_insert (ids, g_strndup ((const gchar *) s, (gsize) len), GUINT_TO_POINTER ((guint) i + 1));
      if (!lev_byte_level_to_bytes ((const gchar *) s, (gssize) len, bytes)) {
        g_string_truncate (bytes, 0);
        g_string_append_len (bytes, (const gchar *) s, (gssize) len);
        type = LEV_TOKTYPE_UNUSED;
      }
    } else {
      if (bpe)
        g_hash_table_insert (ids, g_strndup ((const gchar *) s, (gsize) len), GUINT_TO_POINTER ((guint) i + 1));
      g_string_append_len (bytes, (const gchar *) s, (gssize) len);
    }
    lev_conv_vocab_add (v, bytes->str, bytes->len, score, (guint8) type);
  }
  g_string_free (bytes, TRUE);
  if (ok && bpe) {
    if (!have_merges)
      ok = rd_fail (&f->rd, LEV_CONVERT_ERROR_FORMAT, "a gpt2 tokenizer needs tokenizer.ggml.merges");
    for (guint64 r = 0; ok && r < n_merges; r++) {
      const guint8 *s;
      guint64 len;
      if (!rd_str (&mr, &s, &len, "tokenizer.ggml.merges")) {
        ok = FALSE;
        break;
      }
      /* "left right": split at the first space after the first character, as llama.cpp does */
      const guint8 *sp = len > 1 ? memchr (s + 1, ' ', (gsize) len - 1) : NULL;
      gchar *a = sp ? g_strndup ((const gchar *) s, (gsize) (sp - s)) : NULL;
      gchar *b = sp ? g_strndup ((const gchar *) sp + 1, (gsize) (len - (guint64) (sp - s) - 1)) : NULL;
      gchar *ab = sp ? g_strconcat (a, b, NULL) : NULL;
      guint ia = a ? GPOINTER_TO_UINT (g_hash_table_lookup (ids, a)) : 0;
      guint ib = b ? GPOINTER_TO_UINT (g_hash_table_lookup (ids, b)) : 0;
      if (!sp || ia == 0 || ib == 0 || g_hash_table_lookup (ids, ab) == NULL)
        ok = rd_fail (&f->rd, LEV_CONVERT_ERROR_FORMAT, "merge %" G_GUINT64_FORMAT " is not two pieces of the "
                      "vocabulary whose concatenation is one", r);
      guint32 pair[2] = { ia - 1, ib - 1 };
      if (ok)
        g_array_append_vals (v->merges, pair, 2);
      g_free (a);
      g_free (b);
      g_free (ab);
    }
  }
  if (ids)
    g_hash_table_unref (ids);
  gint32 bos = -1, eos = -1, unk = -1, pad = -1;
  guint32 nt = (guint32) n;
  if (ok)
    ok = token_id (f, "tokenizer.ggml.bos_token_id", nt, &bos) && token_id (f, "tokenizer.ggml.eos_token_id", nt, &eos)
         && token_id (f, "tokenizer.ggml.unknown_token_id", nt, &unk)
         && token_id (f, "tokenizer.ggml.padding_token_id", nt, &pad);
  gboolean add_bos = spm, add_eos = FALSE, add_space = spm;
  if (ok)
    ok = kv_bool (f, "tokenizer.ggml.add_bos_token", add_bos, &add_bos) &&
         kv_bool (f, "tokenizer.ggml.add_eos_token", FALSE, &add_eos) &&
         kv_bool (f, "tokenizer.ggml.add_space_prefix", add_space, &add_space);
  gchar *pre = NULL;
  if (ok && bpe) {
    pre = kv_string (f, "tokenizer.ggml.pre", &bad);
    ok = !bad;
  }
  if (ok && bpe) {
    static const struct { const char *name; guint32 pretok; guint32 flags; } pres[] = {
      { "default", LEV_PRETOK_GPT2, 0 }, { "gpt-2", LEV_PRETOK_GPT2, 0 }, { "gpt2", LEV_PRETOK_GPT2, 0 },
      { "llama-bpe", LEV_PRETOK_LLAMA3, LEV_TOKF_IGNORE_MERGES }, { "llama3", LEV_PRETOK_LLAMA3, LEV_TOKF_IGNORE_MERGES },
      { "smaug-bpe", LEV_PRETOK_LLAMA3, 0 }, { "qwen2", LEV_PRETOK_QWEN2, LEV_TOKF_NFC },
      { "deepseek-r1-qwen", LEV_PRETOK_QWEN2, LEV_TOKF_NFC },
    };
    const gchar *p = pre ? pre : "default";
    gsize k;
    for (k = 0; k < G_N_ELEMENTS (pres) && strcmp (pres[k].name, p) != 0; k++)
      ;
    if (k == G_N_ELEMENTS (pres))
      ok = rd_fail (&f->rd, LEV_CONVERT_ERROR_UNSUPPORTED, "pre-tokenizer tokenizer.ggml.pre = %s is not supported "
                    "(default, gpt-2, llama-bpe, smaug-bpe, qwen2 and deepseek-r1-qwen are)", p);
    else {
      v->pretokenizer = pres[k].pretok;
      v->flags |= pres[k].flags | LEV_TOKF_SPLIT_ADDED;
    }
  }
  g_free (pre);
  if (!ok) {
    lev_conv_vocab_free (v);
    return FALSE;
  }
  if (spm)
    v->flags |= LEV_TOKF_ESCAPE_WS | (add_space ? LEV_TOKF_ADD_DUMMY_PREFIX : 0) |
                (any_byte ? LEV_TOKF_BYTE_FALLBACK : 0);
  v->flags |= (add_bos ? LEV_TOKF_ADD_BOS : 0) | (add_eos ? LEV_TOKF_ADD_EOS : 0);
  v->bos_id = bos;
  v->eos_id = eos;
  v->unk_id = unk;
  v->pad_id = pad;
  *vocab = v;
  *chat_template = kv_string (f, "tokenizer.chat_template", &bad);
  return !bad;
}

/* ---------------------------------------------------------------------------------------------------------------- */

/* Returns TRUE when the file at path starts with the GGUF magic. */
gboolean
lev_gguf_probe (const gchar *path)
{
  FILE *fp = fopen (path, "rb");
  char magic[4];
  gboolean yes = fp != NULL && fread (magic, 1, 4, fp) == 4 && memcmp (magic, GGUF_MAGIC, 4) == 0;
  if (fp)
    fclose (fp);
  return yes;
}

/* Reads a GGUF model from memory; name is for messages; the tensors may point into data, which must outlive the
 * model. */
LevConvModel *
lev_import_gguf_data (const guint8 *data, gsize size, const gchar *name, GError **error)
{
  g_return_val_if_fail (data != NULL || size == 0, NULL);
  if (G_BYTE_ORDER != G_LITTLE_ENDIAN) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED, "big-endian hosts are not supported");
    return NULL;
  }
  GgufFile *f = gguf_parse (data, size, name, error);
  if (f == NULL)
    return NULL;
  LevConvModel *model = lev_conv_model_new ();
  gboolean ok = parse_hparams (model, f) && map_tensors (model, f, error);
  LevConvTensor *embd = ok ? lev_conv_model_find (model, "token_embd") : NULL;
  if (ok && (embd == NULL || embd->n_dims != 2)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_SHAPE, "%s: tensor token_embd.weight is missing or not "
                 "a matrix", name);
    ok = FALSE;
  }
  if (ok && embd->shape[0] > G_MAXUINT32) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_SHAPE, "%s: token_embd.weight has too many rows", name);
    ok = FALSE;
  }
  if (ok) {
    model->hp.vocab_size = (guint32) embd->shape[0];
    if (lev_conv_model_find (model, "output") == NULL)
      model->hp.flags |= LEV_HP_TIED_EMBEDDINGS;
    ok = parse_tokenizer (f, &model->vocab, &model->chat_template);
  }
  if (ok && model->vocab != NULL) {
    model->hp.bos_id = model->vocab->bos_id;
    model->hp.eos_id = model->vocab->eos_id;
  }
  if (ok) {
    gboolean bad;
    model->name = kv_string (f, "general.name", &bad);
    ok = !bad;
  }
  gguf_file_free (f);
  if (!ok) {
    lev_conv_model_free (model);
    return NULL;
  }
  return model;
}

/* Reads a GGUF model (architectures llama, qwen2, bitnet, bitnet-b1.58, bitnet-25; tensor types F32, F16, BF16, Q8_0,
 * Q4_0, TQ1_0, TQ2_0, I2_S). */
LevConvModel *
lev_import_gguf (const gchar *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  GMappedFile *mf = lev_conv_map_file (path, error);
  if (mf == NULL)
    return NULL;
  LevConvModel *model = lev_import_gguf_data ((const guint8 *) g_mapped_file_get_contents (mf),
                                              g_mapped_file_get_length (mf), path, error);
  if (model == NULL) {
    g_mapped_file_unref (mf);
    return NULL;
  }
  g_ptr_array_add (model->keep, mf);
  return model;
}

/* Reads only the tokenizer of a GGUF file (a vocab-only GGUF or a whole model). */
LevConvVocab *
lev_import_gguf_vocab (const gchar *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  GMappedFile *mf = lev_conv_map_file (path, error);
  if (mf == NULL)
    return NULL;
  LevConvVocab *vocab = NULL;
  gchar *tpl = NULL;
  GgufFile *f = gguf_parse ((const guint8 *) g_mapped_file_get_contents (mf), g_mapped_file_get_length (mf), path,
                            error);
  if (f != NULL && parse_tokenizer (f, &vocab, &tpl) && vocab == NULL)
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s has no tokenizer (tokenizer.ggml.model)",
                 path);
  g_free (tpl);
  gguf_file_free (f);
  g_mapped_file_unref (mf);
  return vocab;
}
