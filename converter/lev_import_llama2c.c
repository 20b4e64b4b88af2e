/* lev_import_llama2c.c: importers for llama2.c checkpoints (legacy and version-1 float) and bitllama2.c "ak42" files. */
#include "lev_import.h"

#include <string.h>

#define AK42_MAGIC 0x616b3432u
#define AK42_HEADER_SIZE 256u
#define LEGACY_HEADER_SIZE 28u

/* Which layout a .bin file has. */
typedef enum {
  BIN_NONE = 0,
  BIN_LEGACY = 1,      /* llama2.c legacy: 7 int32 header, float32 weights */
  BIN_V1_FLOAT = 2,    /* llama2.c export version 1: "ak42" 256-byte header, float32 weights */
  BIN_BITLLAMA2C = 3,  /* bitllama2.c: "ak42" 256-byte header, version 1, 2-bit ternary matrices */
} BinKind;

/* The header fields common to all three layouts. */
typedef struct {
  BinKind kind;
  guint64 dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len;
  gboolean shared;     /* classifier tied to the token embedding */
  guint64 head_size, kv_dim;
} BinHeader;

static guint32
rd_u32 (const guint8 *p)
{
  guint32 v;
  memcpy (&v, p, 4);
  return GUINT32_FROM_LE (v);
}

static gint32
rd_i32 (const guint8 *p)
{
  return (gint32) rd_u32 (p);
}

/* Checks the 7 header numbers (vocab already made positive) for sanity; why is set when they are not. */
static gboolean
bin_header_sane (BinHeader *h, gint64 dim, gint64 hidden, gint64 layers, gint64 heads, gint64 kv, gint64 vocab,
                 gint64 seq, const gchar **why)
{
  if (dim < 1 || dim > (1 << 20))
    *why = "dim out of range";
  else if (hidden < 1 || hidden > (1 << 22))
    *why = "hidden_dim out of range";
  else if (layers < 1 || layers > (gint64) LEV_MAX_LAYERS)
    *why = "n_layers out of range";
  else if (heads < 1 || heads > dim || dim % heads != 0)
    *why = "n_heads does not divide dim";
  else if ((dim / heads) % 2 != 0)
    *why = "head size is odd";
  else if (kv < 1 || kv > heads || heads % kv != 0)
    *why = "n_kv_heads does not divide n_heads";
  else if (vocab < 1 || vocab > (1 << 24))
    *why = "vocab_size out of range";
  else if (seq < 1 || seq > (1 << 24))
    *why = "seq_len out of range";
  else {
    h->dim = dim;
    h->hidden = hidden;
    h->n_layers = layers;
    h->n_heads = heads;
    h->n_kv_heads = kv;
    h->vocab = vocab;
    h->seq_len = seq;
    h->head_size = dim / heads;
    h->kv_dim = h->head_size * kv;
    return TRUE;
  }
  return FALSE;
}

/* Number of float32 values in one layer's seven matrices (wq, wk, wv, wo, w1, w2, w3). */
static guint64
layer_matrix_floats (const BinHeader *h)
{
  return 2 * h->dim * h->dim + 2 * h->kv_dim * h->dim + 3 * h->hidden * h->dim;
}

static guint64
legacy_size (const BinHeader *h)
{
  guint64 n = h->vocab * h->dim                      /* token embedding */
              + h->n_layers * (2 * h->dim + layer_matrix_floats (h)) /* rms_att, rms_ffn, matrices */
              + h->dim                               /* rms_final */
              + 2 * h->seq_len * (h->head_size / 2)  /* freq_cis_real, freq_cis_imag */
              + (h->shared ? 0 : h->vocab * h->dim); /* wcls */
  return LEGACY_HEADER_SIZE + 4 * n;
}

static guint64
v1_float_size (const BinHeader *h)
{
  guint64 n = h->n_layers * (2 * h->dim + layer_matrix_floats (h)) + h->dim + h->vocab * h->dim +
              (h->shared ? 0 : h->vocab * h->dim);
  return AK42_HEADER_SIZE + 4 * n;
}

/* Bytes of one packed ternary matrix (scale + 2-bit codes); 0 when out*in is not a multiple of 4. */
static guint64
ternary_bytes (guint64 out, guint64 in)
{
  return (out * in) % 4 == 0 ? 4 + out * in / 4 : 0;
}

static guint64
bitllama_size (const BinHeader *h)
{
  guint64 m[7] = {
    ternary_bytes (h->dim, h->dim), ternary_bytes (h->kv_dim, h->dim), ternary_bytes (h->kv_dim, h->dim),
    ternary_bytes (h->dim, h->dim), ternary_bytes (h->hidden, h->dim), ternary_bytes (h->dim, h->hidden),
    ternary_bytes (h->hidden, h->dim),
  };
  guint64 per_layer = 0;
  for (int i = 0; i < 7; i++) {
    if (m[i] == 0)
      return 0;
    per_layer += m[i];
  }
  return AK42_HEADER_SIZE + 4 * h->dim + 4 * h->vocab * h->dim + h->n_layers * per_layer;
}

/* Reads the header of a mapped .bin and decides its layout from the magic, version and exact file size. */
static gboolean
bin_probe (const guint8 *data, gsize size, const gchar *path, BinHeader *h, GError **error)
{
  const gchar *why = NULL;
  memset (h, 0, sizeof *h);
  if (size < LEGACY_HEADER_SIZE) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                 "%s: %" G_GSIZE_FORMAT " bytes is too small to be a model file", path, size);
    return FALSE;
  }
  guint32 magic = rd_u32 (data);
  if (memcmp (data, "GGUF", 4) == 0) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED, "%s: GGUF files are not supported", path);
    return FALSE;
  }
  if (memcmp (data, LEV_MAGIC, 8) == 0) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED, "%s is already a .leviathan file", path);
    return FALSE;
  }

  if (magic == AK42_MAGIC) {
    if (size < AK42_HEADER_SIZE) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                   "%s: \"ak42\" file truncated inside its 256-byte header", path);
      return FALSE;
    }
    gint32 version = rd_i32 (data + 4);
    if (version != 1) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED,
                   "%s: \"ak42\" file version %d is not supported (only version 1: llama2.c float32 or bitllama2.c "
                   "ternary; llama2.c version 2 is int8 Q8_0)", path, version);
      return FALSE;
    }
    guint8 shared = data[36];
    if (shared > 1)
      why = "shared_classifier flag is neither 0 nor 1";
    else if (bin_header_sane (h, rd_i32 (data + 8), rd_i32 (data + 12), rd_i32 (data + 16), rd_i32 (data + 20),
                              rd_i32 (data + 24), rd_i32 (data + 28), rd_i32 (data + 32), &why))
      h->shared = shared;
    if (why != NULL) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s: bad \"ak42\" header: %s", path, why);
      return FALSE;
    }
    guint64 want_bit = h->shared ? bitllama_size (h) : 0;
    guint64 want_v1 = v1_float_size (h);
    if (want_bit != 0 && size == want_bit && size == want_v1) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                   "%s: \"ak42\" file whose size fits both bitllama2.c and llama2.c float layouts", path);
      return FALSE;
    }
    if (want_bit != 0 && size == want_bit) {
      h->kind = BIN_BITLLAMA2C;
      return TRUE;
    }
    if (size == want_v1) {
      h->kind = BIN_V1_FLOAT;
      return TRUE;
    }
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                 "%s: \"ak42\" version 1 file is %" G_GSIZE_FORMAT " bytes, but its header (dim %" G_GUINT64_FORMAT
                 ", hidden %" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT " layers, vocab %" G_GUINT64_FORMAT
                 ") needs %" G_GUINT64_FORMAT " bytes as a bitllama2.c ternary file or %" G_GUINT64_FORMAT
                 " bytes as a llama2.c float32 file: truncated or corrupt",
                 path, size, h->dim, h->hidden, h->n_layers, h->vocab, want_bit, want_v1);
    return FALSE;
  }

  /* llama2.c legacy: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (< 0: unshared), seq_len */
  gint64 vocab = rd_i32 (data + 20);
  gboolean shared = vocab > 0;
  if (!bin_header_sane (h, rd_i32 (data), rd_i32 (data + 4), rd_i32 (data + 8), rd_i32 (data + 12),
                        rd_i32 (data + 16), vocab < 0 ? -vocab : vocab, rd_i32 (data + 24), &why)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                 "%s: not a recognized model file (no \"ak42\" magic, and not a llama2.c legacy header: %s)", path,
                 why);
    return FALSE;
  }
  h->shared = shared;
  guint64 want = legacy_size (h);
  if (size != want) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                 "%s: not a valid llama2.c legacy checkpoint: its header (dim %" G_GUINT64_FORMAT
                 ", hidden %" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT " layers, %" G_GUINT64_FORMAT " heads, %"
                 G_GUINT64_FORMAT " kv heads, vocab %" G_GUINT64_FORMAT ", seq_len %" G_GUINT64_FORMAT
                 ") needs exactly %" G_GUINT64_FORMAT " bytes, the file has %" G_GSIZE_FORMAT,
                 path, h->dim, h->hidden, h->n_layers, h->n_heads, h->n_kv_heads, h->vocab, h->seq_len, want, size);
    return FALSE;
  }
  h->kind = BIN_LEGACY;
  return TRUE;
}

_Static_assert (BIN_LEGACY == 1 && BIN_V1_FLOAT == 2 && BIN_BITLLAMA2C == 3, "the kinds lev_import.h documents");

/* Maps path and returns its kind (1 legacy, 2 llama2.c version-1 float, 3 bitllama2.c), or 0 with error set. */
int
lev_llama2c_probe (const gchar *path, GError **error)
{
  GMappedFile *mf = lev_conv_map_file (path, error);
  if (mf == NULL)
    return BIN_NONE;
  BinHeader h;
  gboolean ok = bin_probe ((const guint8 *) g_mapped_file_get_contents (mf), g_mapped_file_get_length (mf), path, &h,
                           error);
  g_mapped_file_unref (mf);
  return ok ? (int) h.kind : BIN_NONE;
}

static void
fill_hparams (LevConvModel *model, const BinHeader *h, const gchar *path)
{
  LevHParams *hp = &model->hp;
  hp->arch = LEV_ARCH_LLAMA;
  hp->flags = h->shared ? LEV_HP_TIED_EMBEDDINGS : 0;
  hp->dim = h->dim;
  hp->n_layers = h->n_layers;
  hp->n_heads = h->n_heads;
  hp->n_kv_heads = h->n_kv_heads;
  hp->head_dim = h->head_size;
  hp->ffn_dim = h->hidden;
  hp->vocab_size = h->vocab;
  hp->max_ctx = h->seq_len;
  hp->norm_eps = 1e-5f;
  hp->rope_theta = 10000.0f;
  hp->rope_style = LEV_ROPE_INTERLEAVED;
  hp->rope_scaling = LEV_ROPE_SCALING_NONE;
  hp->activation = LEV_ACT_SILU;
  hp->bos_id = 1;
  hp->eos_id = 2;
  g_autofree gchar *base = g_path_get_basename (path);
  if (g_str_has_suffix (base, ".bin"))
    base[strlen (base) - 4] = '\0';
  model->name = g_strdup (base);
}

/* Adds a float32 vector (cols == 0) or matrix pointing into the mapped file. */
static void
add_f32 (LevConvModel *model, const gchar *name, guint64 rows, guint64 cols, const float *data)
{
  guint64 shape[2] = { rows, cols };
  lev_conv_model_add_tensor (model, name, LEV_SRC_F32, cols ? 2 : 1, shape, data, NULL);
}

/* Adds the per-layer slices of a [n_layers][rows][cols] float32 block; returns the pointer after it. */
static const float *
add_layers_f32 (LevConvModel *model, const BinHeader *h, const gchar *what, guint64 rows, guint64 cols,
                const float *p)
{
  guint64 n = rows * (cols ? cols : 1);
  for (guint64 l = 0; l < h->n_layers; l++) {
    g_autofree gchar *name = g_strdup_printf ("blk.%" G_GUINT64_FORMAT ".%s", l, what);
    add_f32 (model, name, rows, cols, p + l * n);
  }
  return p + h->n_layers * n;
}

static LevConvModel *
finish (LevConvModel *model, GError **error)
{
  if (!lev_conv_model_validate (model, error)) {
    lev_conv_model_free (model);
    return NULL;
  }
  return model;
}

static LevConvModel *
import_float (GMappedFile *mf, const BinHeader *h, const gchar *path, GError **error)
{
  const guint8 *base = (const guint8 *) g_mapped_file_get_contents (mf);
  LevConvModel *model = lev_conv_model_new ();
  g_ptr_array_add (model->keep, g_mapped_file_ref (mf));
  fill_hparams (model, h, path);
  guint64 d = h->dim, kv = h->kv_dim, f = h->hidden, v = h->vocab;

  if (h->kind == BIN_LEGACY) {
    const float *p = (const float *) (base + LEGACY_HEADER_SIZE);
    add_f32 (model, "token_embd", v, d, p);
    p += v * d;
    p = add_layers_f32 (model, h, "attn_norm", d, 0, p);
    p = add_layers_f32 (model, h, "attn_q", d, d, p);
    p = add_layers_f32 (model, h, "attn_k", kv, d, p);
    p = add_layers_f32 (model, h, "attn_v", kv, d, p);
    p = add_layers_f32 (model, h, "attn_o", d, d, p);
    p = add_layers_f32 (model, h, "ffn_norm", d, 0, p);
    p = add_layers_f32 (model, h, "ffn_gate", f, d, p);
    p = add_layers_f32 (model, h, "ffn_down", d, f, p);
    p = add_layers_f32 (model, h, "ffn_up", f, d, p);
    add_f32 (model, "output_norm", d, 0, p);
    p += d;
    p += 2 * h->seq_len * (h->head_size / 2); /* freq_cis_real and freq_cis_imag: recomputed by the engine */
    if (!h->shared)
      add_f32 (model, "output", v, d, p);
  } else {
    /* version 1: all attention norms, all ffn norms, final norm, embedding, then each matrix kind by layer */
    const float *p = (const float *) (base + AK42_HEADER_SIZE);
    p = add_layers_f32 (model, h, "attn_norm", d, 0, p);
    p = add_layers_f32 (model, h, "ffn_norm", d, 0, p);
    add_f32 (model, "output_norm", d, 0, p);
    p += d;
    add_f32 (model, "token_embd", v, d, p);
    p += v * d;
    p = add_layers_f32 (model, h, "attn_q", d, d, p);
    p = add_layers_f32 (model, h, "attn_k", kv, d, p);
    p = add_layers_f32 (model, h, "attn_v", kv, d, p);
    p = add_layers_f32 (model, h, "attn_o", d, d, p);
    p = add_layers_f32 (model, h, "ffn_gate", f, d, p);
    p = add_layers_f32 (model, h, "ffn_down", d, f, p);
    p = add_layers_f32 (model, h, "ffn_up", f, d, p);
    if (!h->shared)
      add_f32 (model, "output", v, d, p);
  }
  return finish (model, error);
}

/* code -> value for 2-bit codes; code 2 (binary 10) is invalid */
static const gint8 ternary_of_code[4] = { 0, 1, 0, -1 };

static LevConvModel *
import_bitllama (GMappedFile *mf, const BinHeader *h, const gchar *path, GError **error)
{
  const guint8 *base = (const guint8 *) g_mapped_file_get_contents (mf);
  LevConvModel *model = lev_conv_model_new ();
  g_ptr_array_add (model->keep, g_mapped_file_ref (mf));
  fill_hparams (model, h, path);
  model->hp.arch = LEV_ARCH_BITLLAMA2C;
  model->hp.flags = LEV_HP_BITLINEAR_NORM | LEV_HP_ACT_QUANT | LEV_HP_ACT_ROUND_AWAY | LEV_HP_TIED_EMBEDDINGS;
  guint64 d = h->dim, kv = h->kv_dim, f = h->hidden, v = h->vocab;

  const guint8 *p = base + AK42_HEADER_SIZE;
  add_f32 (model, "output_norm", d, 0, (const float *) p);
  p += 4 * d;
  add_f32 (model, "token_embd", v, d, (const float *) p);
  p += 4 * v * d;

  static const char *const kinds[7] = { "attn_q", "attn_k", "attn_v", "attn_o", "ffn_gate", "ffn_down", "ffn_up" };
  const guint64 rows[7] = { d, kv, kv, d, f, d, f };
  const guint64 cols[7] = { d, d, d, d, d, f, d };
  for (int k = 0; k < 7; k++) {
    for (guint64 l = 0; l < h->n_layers; l++) {
      g_autofree gchar *name = g_strdup_printf ("blk.%" G_GUINT64_FORMAT ".%s", l, kinds[k]);
      guint64 n = rows[k] * cols[k];
      float scale;
      memcpy (&scale, p, 4);
      p += 4;
      gint8 *t = g_malloc (n);
      for (guint64 i = 0; i < n; i++) {
        /* MSB-first: element i sits in byte i/4, bits 7-2(i%4) .. 6-2(i%4) */
        guint code = (p[i / 4] >> (6 - 2 * (i % 4))) & 3u;
        if (code == 2) {
          g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                       "%s: tensor %s element %" G_GUINT64_FORMAT " has the invalid 2-bit code 10", path, name, i);
          g_free (t);
          lev_conv_model_free (model);
          return NULL;
        }
        t[i] = ternary_of_code[code];
      }
      p += n / 4;
      if (!(scale > 0.0f && scale < G_MAXFLOAT)) {
        g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s: tensor %s has the invalid scale %g",
                     path, name, (double) scale);
        g_free (t);
        lev_conv_model_free (model);
        return NULL;
      }
      guint64 shape[2] = { rows[k], cols[k] };
      LevConvTensor *ct = lev_conv_model_add_tensor (model, name, LEV_SRC_TERNARY, 2, shape, t, t);
      ct->scale = scale;
    }
  }
  g_assert ((gsize) (p - base) == g_mapped_file_get_length (mf));
  return finish (model, error);
}

static LevConvModel *
import_bin (const gchar *path, BinKind want, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  if (G_BYTE_ORDER != G_LITTLE_ENDIAN) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED, "big-endian hosts are not supported");
    return NULL;
  }
  GMappedFile *mf = lev_conv_map_file (path, error);
  if (mf == NULL)
    return NULL;
  BinHeader h;
  LevConvModel *model = NULL;
  if (bin_probe ((const guint8 *) g_mapped_file_get_contents (mf), g_mapped_file_get_length (mf), path, &h, error)) {
    if (h.kind == BIN_BITLLAMA2C && want == BIN_BITLLAMA2C)
      model = import_bitllama (mf, &h, path, error);
    else if (h.kind != BIN_BITLLAMA2C && want != BIN_BITLLAMA2C)
      model = import_float (mf, &h, path, error);
    else if (h.kind == BIN_BITLLAMA2C)
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                   "%s is a bitllama2.c ternary checkpoint, not a llama2.c float one", path);
    else
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                   "%s is a llama2.c float32 checkpoint, not a bitllama2.c ternary one", path);
  }
  g_mapped_file_unref (mf);
  return model;
}

/* Reads a llama2.c checkpoint (.bin, legacy or version-1 float format). */
LevConvModel *
lev_import_llama2c (const gchar *path, GError **error)
{
  return import_bin (path, BIN_LEGACY, error);
}

/* Reads a bitllama2.c ternary checkpoint ("ak42" magic). */
LevConvModel *
lev_import_ak42 (const gchar *path, GError **error)
{
  return import_bin (path, BIN_BITLLAMA2C, error);
}
