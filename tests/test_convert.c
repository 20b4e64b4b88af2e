/* test_convert.c: tests of the checkpoint importers (llama2.c, bitllama2.c, Hugging Face) against the fixtures. */
#include "lev_test_common.h"
#include "lev_convert.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

/* ---------------------------------------------------------------------------------------------------------------- */
/* helpers                                                                                                           */
/* ---------------------------------------------------------------------------------------------------------------- */

/* Imports a fixture with fn and fails the test on error. */
static LevConvModel *
must_import (LevConvModel *(*fn) (const gchar *, GError **), const gchar *relpath)
{
  g_autofree gchar *path = lev_test_fixture (relpath);
  GError *error = NULL;
  LevConvModel *m = fn (path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (m);
  return m;
}

/* Asserts that an import failed cleanly with a message; frees everything. */
static void
expect_failure (LevConvModel *m, GError *error, const gchar *what, const gchar *must_mention)
{
  g_assert_null (m);
  g_assert_nonnull (error);
  g_assert_true (error->domain == LEV_CONVERT_ERROR);
  g_assert_true (error->message != NULL && error->message[0] != '\0');
  g_test_message ("%s -> %s", what, error->message);
  if (must_mention != NULL && strstr (error->message, must_mention) == NULL)
    g_error ("%s: message \"%s\" does not mention \"%s\"", what, error->message, must_mention);
  g_error_free (error);
}

static LevConvTensor *
must_find (LevConvModel *m, const gchar *name)
{
  LevConvTensor *t = lev_conv_model_find (m, name);
  if (t == NULL)
    g_error ("tensor %s is missing", name);
  return t;
}

static guint64
tensor_numel (const LevConvTensor *t)
{
  guint64 n = 1;
  for (guint32 i = 0; i < t->n_dims; i++)
    n *= t->shape[i];
  return n;
}

static void
assert_shape (LevConvModel *m, const gchar *name, guint64 d0, guint64 d1)
{
  LevConvTensor *t = must_find (m, name);
  g_assert_cmpuint (t->n_dims, ==, d1 ? 2 : 1);
  g_assert_cmpuint (t->shape[0], ==, d0);
  g_assert_cmpuint (t->shape[1], ==, d1 ? d1 : 1);
}

/* IEEE half -> float, written independently of the importer. */
static float
test_f16_to_f32 (guint16 h)
{
  int e = (h >> 10) & 31, m = h & 1023;
  float v = e == 0 ? ldexpf ((float) m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexpf ((float) (m | 1024), e - 25);
  return (h & 0x8000) ? -v : v;
}

/* float -> IEEE half, round to nearest even. */
static guint16
test_f32_to_f16 (float f)
{
  guint32 x;
  memcpy (&x, &f, 4);
  guint16 sign = (x >> 16) & 0x8000;
  guint32 a = x & 0x7fffffffu;
  if (a > 0x7f800000u)
    return sign | 0x7e00;
  if (a >= 0x477ff000u) /* >= 65520 rounds to infinity */
    return sign | 0x7c00;
  if (a < 0x38800000u) { /* below 2^-14: half subnormal, in units of 2^-24 */
    float v;
    memcpy (&v, &a, 4);
    return sign | (guint16) nearbyintf (v * 16777216.0f);
  }
  guint32 h = ((((a >> 23) - 127 + 15) << 10) | ((a & 0x7fffffu) >> 13));
  guint32 rem = a & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1)))
    h++;
  return sign | (guint16) h;
}

/* float -> bfloat16, round to nearest even. */
static guint16
test_f32_to_bf16 (float f)
{
  guint32 x;
  memcpy (&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u)
    return (guint16) ((x >> 16) | 0x40);
  return (guint16) ((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

/* Returns the values of a float tensor as g_malloc'd floats. */
static float *
tensor_floats (const LevConvTensor *t)
{
  guint64 n = tensor_numel (t);
  float *out = g_new (float, n);
  for (guint64 i = 0; i < n; i++) {
    guint16 h;
    guint32 b;
    switch (t->type) {
    case LEV_SRC_F32:
      memcpy (&out[i], (const guint8 *) t->data + 4 * i, 4);
      break;
    case LEV_SRC_F16:
      memcpy (&h, (const guint8 *) t->data + 2 * i, 2);
      out[i] = test_f16_to_f32 (h);
      break;
    case LEV_SRC_BF16:
      memcpy (&h, (const guint8 *) t->data + 2 * i, 2);
      b = (guint32) h << 16;
      memcpy (&out[i], &b, 4);
      break;
    default:
      out[i] = (float) ((const gint8 *) t->data)[i] * t->scale;
    }
  }
  return out;
}

/* Applies HF's q/k permutation w.view(n, rows/n/2, 2, cols).transpose(1,2).reshape(rows, cols). */
static float *
hf_permute (const float *w, guint64 rows, guint64 cols, guint64 n)
{
  float *out = g_new (float, rows * cols);
  guint64 hs = rows / n;
  for (guint64 h = 0; h < n; h++)
    for (guint64 i = 0; i < hs / 2; i++)
      for (guint64 j = 0; j < 2; j++)
        memcpy (out + (h * hs + j * (hs / 2) + i) * cols, w + (h * hs + 2 * i + j) * cols, cols * sizeof (float));
  return out;
}

/* Makes a temporary directory (remove it with rm_tree). */
static gchar *
make_tmp_dir (void)
{
  GError *error = NULL;
  gchar *dir = g_dir_make_tmp ("levconv-XXXXXX", &error);
  g_assert_no_error (error);
  return dir;
}

/* Removes a flat temporary directory and its files. */
static void
rm_tree (gchar *dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  if (d != NULL) {
    const gchar *name;
    while ((name = g_dir_read_name (d)) != NULL) {
      g_autofree gchar *p = g_build_filename (dir, name, NULL);
      g_assert_cmpint (g_remove (p), ==, 0);
    }
    g_dir_close (d);
  }
  g_assert_cmpint (g_rmdir (dir), ==, 0);
  g_free (dir);
}

/* Writes len bytes to path, failing the test on error. */
static void
write_file (const gchar *path, const void *data, gsize len)
{
  GError *error = NULL;
  g_file_set_contents (path, data, (gssize) len, &error);
  g_assert_no_error (error);
}

/* Copies the named files of a fixture directory into dir. */
static void
copy_fixture_files (const gchar *fixture_dir, const gchar *dir, const gchar *const *names)
{
  for (gsize i = 0; names[i] != NULL; i++) {
    g_autofree gchar *rel = g_build_filename (fixture_dir, names[i], NULL);
    gsize len;
    g_autofree gchar *data = lev_test_read_fixture (rel, &len);
    g_autofree gchar *dst = g_build_filename (dir, names[i], NULL);
    write_file (dst, data, len);
  }
}

/* A safetensors file read by the test's own code: header tree and data bytes. */
typedef struct {
  JsonNode *header;
  guint8 *data;
  gsize data_len;
} TestSt;

static TestSt
test_st_read (const gchar *relpath)
{
  gsize len;
  g_autofree gchar *raw = lev_test_read_fixture (relpath, &len);
  guint64 hlen;
  g_assert_cmpuint (len, >=, 8);
  memcpy (&hlen, raw, 8);
  hlen = GUINT64_FROM_LE (hlen);
  g_assert_cmpuint (hlen, <=, len - 8);
  g_autoptr (JsonParser) parser = json_parser_new ();
  GError *error = NULL;
  json_parser_load_from_data (parser, raw + 8, (gssize) hlen, &error);
  g_assert_no_error (error);
  TestSt st = { json_node_copy (json_parser_get_root (parser)), NULL, len - 8 - hlen };
  st.data = g_memdup2 (raw + 8 + hlen, st.data_len ? st.data_len : 1);
  return st;
}

static void
test_st_clear (TestSt *st)
{
  json_node_unref (st->header);
  g_free (st->data);
}

/* Writes a safetensors file: header (padded with spaces to a multiple of 8), then data. */
static void
test_st_write (const gchar *path, JsonNode *header, const guint8 *data, gsize data_len)
{
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  json_generator_set_root (gen, header);
  gsize hlen;
  g_autofree gchar *json = json_generator_to_data (gen, &hlen);
  GString *h = g_string_new (json);
  while (h->len % 8 != 0)
    g_string_append_c (h, ' ');
  guint64 le = GUINT64_TO_LE ((guint64) h->len);
  GByteArray *out = g_byte_array_new ();
  g_byte_array_append (out, (const guint8 *) &le, 8);
  g_byte_array_append (out, (const guint8 *) h->str, h->len);
  g_byte_array_append (out, data, data_len);
  write_file (path, out->data, out->len);
  g_byte_array_unref (out);
  g_string_free (h, TRUE);
}

/* Returns the header entry of one tensor. */
static JsonObject *
st_entry (TestSt *st, const gchar *name)
{
  JsonObject *o = json_object_get_object_member (json_node_get_object (st->header), name);
  g_assert_nonnull (o);
  return o;
}

/* Sets a JSON array member to the given integers. */
static void
set_int_array (JsonObject *o, const gchar *member, gint64 a, gint64 b)
{
  JsonArray *arr = json_array_new ();
  json_array_add_int_element (arr, a);
  json_array_add_int_element (arr, b);
  json_object_set_array_member (o, member, arr);
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* llama2.c legacy                                                                                                   */
/* ---------------------------------------------------------------------------------------------------------------- */

static void
check_stories260k_hparams (const LevHParams *hp)
{
  g_assert_cmpuint (hp->arch, ==, LEV_ARCH_LLAMA);
  g_assert_cmpuint (hp->dim, ==, 64);
  g_assert_cmpuint (hp->ffn_dim, ==, 172);
  g_assert_cmpuint (hp->n_layers, ==, 5);
  g_assert_cmpuint (hp->n_heads, ==, 8);
  g_assert_cmpuint (hp->n_kv_heads, ==, 4);
  g_assert_cmpuint (hp->head_dim, ==, 8);
  g_assert_cmpuint (hp->vocab_size, ==, 512);
  g_assert_cmpuint (hp->max_ctx, ==, 512);
  g_assert_cmpfloat (hp->norm_eps, ==, 1e-5f);
  g_assert_cmpfloat (hp->rope_theta, ==, 10000.0f);
  g_assert_cmpuint (hp->rope_scaling, ==, LEV_ROPE_SCALING_NONE);
  g_assert_cmpuint (hp->activation, ==, LEV_ACT_SILU);
  g_assert_cmpuint (hp->flags, ==, LEV_HP_TIED_EMBEDDINGS);
  g_assert_cmpint (hp->bos_id, ==, 1);
  g_assert_cmpint (hp->eos_id, ==, 2);
  for (gsize i = 0; i < sizeof hp->reserved; i++)
    g_assert_cmpuint (hp->reserved[i], ==, 0);
}

static void
test_llama2c (void)
{
  LevConvModel *m = must_import (lev_import_llama2c, "stories260K/stories260K.bin");
  check_stories260k_hparams (&m->hp);
  g_assert_cmpuint (m->hp.rope_style, ==, LEV_ROPE_INTERLEAVED);
  g_assert_cmpstr (m->name, ==, "stories260K");
  g_assert_null (m->vocab);
  g_assert_cmpuint (m->tensors->len, ==, 2 + 5 * 9);
  g_assert_null (lev_conv_model_find (m, "output"));
  assert_shape (m, "token_embd", 512, 64);
  assert_shape (m, "output_norm", 64, 0);
  for (int l = 0; l < 5; l++) {
    g_autofree gchar *q = g_strdup_printf ("blk.%d.attn_q", l), *k = g_strdup_printf ("blk.%d.attn_k", l);
    g_autofree gchar *d = g_strdup_printf ("blk.%d.ffn_down", l), *n = g_strdup_printf ("blk.%d.ffn_norm", l);
    assert_shape (m, q, 64, 64);
    assert_shape (m, k, 32, 64);
    assert_shape (m, d, 64, 172);
    assert_shape (m, n, 64, 0);
  }
  /* independent check of the layout: read the file ourselves at offsets computed here */
  gsize len;
  g_autofree gchar *raw = lev_test_read_fixture ("stories260K/stories260K.bin", &len);
  g_assert_cmpuint (len, ==, 1056540);
  gint32 hdr[7];
  memcpy (hdr, raw, sizeof hdr);
  g_assert_cmpint (hdr[0], ==, 64);
  g_assert_cmpint (hdr[5], ==, 512);
  const float *fl = (const float *) (raw + 28);
  gsize off_wk = 512 * 64 + 5 * 64 + 5 * 64 * 64;        /* floats before wk */
  gsize off_rms_ffn = off_wk + 2 * 5 * 32 * 64 + 5 * 64 * 64;
  gsize off_w3 = off_rms_ffn + 5 * 64 + 2 * 5 * 172 * 64;
  gsize off_final = off_w3 + 5 * 172 * 64;
  g_assert_cmpmem (must_find (m, "token_embd")->data, 512 * 64 * 4, fl, 512 * 64 * 4);
  g_assert_cmpmem (must_find (m, "blk.1.attn_k")->data, 32 * 64 * 4, fl + off_wk + 32 * 64, 32 * 64 * 4);
  g_assert_cmpmem (must_find (m, "blk.2.ffn_norm")->data, 64 * 4, fl + off_rms_ffn + 2 * 64, 64 * 4);
  g_assert_cmpmem (must_find (m, "blk.4.ffn_up")->data, 172 * 64 * 4, fl + off_w3 + 4 * 172 * 64, 172 * 64 * 4);
  g_assert_cmpmem (must_find (m, "output_norm")->data, 64 * 4, fl + off_final, 64 * 4);
  for (guint i = 0; i < m->tensors->len; i++)
    g_assert_cmpuint (((LevConvTensor *) g_ptr_array_index (m->tensors, i))->type, ==, LEV_SRC_F32);
  g_assert_true (lev_conv_model_validate (m, NULL));
  lev_conv_model_free (m);

  m = must_import (lev_import_any, "stories260K/stories260K.bin");
  g_assert_cmpuint (m->hp.arch, ==, LEV_ARCH_LLAMA);
  lev_conv_model_free (m);
}

/* The validator catches duplicates and wrong shapes in a model built by hand. */
static void
test_validate (void)
{
  LevConvModel *m = must_import (lev_import_llama2c, "stories260K/stories260K.bin");
  LevConvTensor *k = must_find (m, "blk.3.attn_k");
  GError *error = NULL;
  k->shape[0] = 64;
  k->shape[1] = 32;
  g_assert_false (lev_conv_model_validate (m, &error));
  g_assert_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_SHAPE);
  g_test_message ("transposed blk.3.attn_k -> %s", error->message);
  g_assert_nonnull (strstr (error->message, "blk.3.attn_k"));
  g_assert_nonnull (strstr (error->message, "[64, 32]"));
  g_assert_nonnull (strstr (error->message, "[32, 64]"));
  g_clear_error (&error);
  k->shape[0] = 32;
  k->shape[1] = 64;
  guint64 shape[1] = { 64 };
  lev_conv_model_add_tensor (m, "blk.0.attn_norm", LEV_SRC_F32, 1, shape, k->data, NULL);
  g_assert_false (lev_conv_model_validate (m, &error));
  g_test_message ("duplicate -> %s", error->message);
  g_assert_nonnull (strstr (error->message, "blk.0.attn_norm"));
  g_clear_error (&error);
  g_ptr_array_remove_index (m->tensors, m->tensors->len - 1);
  m->hp.flags &= ~LEV_HP_TIED_EMBEDDINGS;
  g_assert_false (lev_conv_model_validate (m, &error));
  g_test_message ("untied without output -> %s", error->message);
  g_assert_nonnull (strstr (error->message, "output"));
  g_clear_error (&error);
  m->hp.flags |= LEV_HP_TIED_EMBEDDINGS;
  g_assert_true (lev_conv_model_validate (m, NULL));
  lev_conv_model_free (m);
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* Hugging Face                                                                                                      */
/* ---------------------------------------------------------------------------------------------------------------- */

/* Compares every tensor of the llama2.c import with the HF one (q/k permuted), through a rounding function. */
static void
compare_with_llama2c (LevConvModel *ref, LevConvModel *hf, LevSrcType type)
{
  g_assert_cmpuint (ref->tensors->len, ==, hf->tensors->len);
  for (guint i = 0; i < ref->tensors->len; i++) {
    LevConvTensor *a = g_ptr_array_index (ref->tensors, i);
    LevConvTensor *b = must_find (hf, a->name);
    g_assert_cmpuint (a->n_dims, ==, b->n_dims);
    g_assert_cmpmem (a->shape, sizeof a->shape, b->shape, sizeof b->shape);
    g_assert_cmpuint (b->type, ==, type);
    guint64 n = tensor_numel (a);
    g_autofree float *w = tensor_floats (a);
    g_autofree float *want = NULL;
    if (g_str_has_suffix (a->name, ".attn_q"))
      want = hf_permute (w, a->shape[0], a->shape[1], ref->hp.n_heads);
    else if (g_str_has_suffix (a->name, ".attn_k"))
      want = hf_permute (w, a->shape[0], a->shape[1], ref->hp.n_kv_heads);
    else
      want = g_memdup2 (w, n * sizeof (float));
    if (type == LEV_SRC_F32) {
      if (memcmp (want, b->data, n * 4) != 0)
        g_error ("tensor %s differs", a->name);
    } else {
      const guint16 *h = b->data;
      for (guint64 j = 0; j < n; j++) {
        guint16 r = type == LEV_SRC_F16 ? test_f32_to_f16 (want[j]) : test_f32_to_bf16 (want[j]);
        if (r != h[j])
          g_error ("tensor %s element %" G_GUINT64_FORMAT ": %04x, expected %04x from %.9g", a->name, j, h[j], r,
                   (double) want[j]);
      }
    }
  }
}

static void
test_hf_llama (void)
{
  LevConvModel *ref = must_import (lev_import_llama2c, "stories260K/stories260K.bin");
  static const struct { const char *dir; LevSrcType type; } cases[] = {
    { "hf/stories260K-llama", LEV_SRC_F32 },
    { "hf/stories260K-llama-f16", LEV_SRC_F16 },
    { "hf/stories260K-llama-bf16", LEV_SRC_BF16 },
  };
  for (gsize c = 0; c < G_N_ELEMENTS (cases); c++) {
    LevConvModel *m = must_import (lev_import_hf_dir, cases[c].dir);
    check_stories260k_hparams (&m->hp);
    g_assert_cmpuint (m->hp.rope_style, ==, LEV_ROPE_HALF);
    g_autofree gchar *base = g_path_get_basename (cases[c].dir);
    g_assert_cmpstr (m->name, ==, base);
    g_assert_null (m->chat_template);
    compare_with_llama2c (ref, m, cases[c].type);
    lev_conv_model_free (m);
  }
  /* lev_import_any on a directory, with a trailing slash */
  g_autofree gchar *dir = lev_test_fixture ("hf/stories260K-llama");
  g_autofree gchar *slash = g_strconcat (dir, "/", NULL);
  GError *error = NULL;
  LevConvModel *m = lev_import_any (slash, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (m->name, ==, "stories260K-llama");
  lev_conv_model_free (m);
  lev_conv_model_free (ref);
}

static void
test_hf_qwen2 (void)
{
  LevConvModel *m = must_import (lev_import_hf_dir, "hf/stories260K-qwen2");
  LevConvModel *llama = must_import (lev_import_hf_dir, "hf/stories260K-llama");
  const LevHParams *hp = &m->hp;
  g_assert_cmpuint (hp->arch, ==, LEV_ARCH_QWEN2);
  g_assert_cmpuint (hp->flags, ==, LEV_HP_QKV_BIAS | LEV_HP_TIED_EMBEDDINGS);
  g_assert_cmpfloat (hp->rope_theta, ==, 1e6f);
  g_assert_cmpfloat (hp->norm_eps, ==, 1e-6f);
  g_assert_cmpuint (hp->rope_style, ==, LEV_ROPE_HALF);
  g_assert_cmpuint (hp->head_dim, ==, 8);
  g_assert_cmpuint (m->tensors->len, ==, 2 + 5 * 12);
  for (int l = 0; l < 5; l++) {
    g_autofree gchar *q = g_strdup_printf ("blk.%d.attn_q_bias", l), *k = g_strdup_printf ("blk.%d.attn_k_bias", l);
    g_autofree gchar *v = g_strdup_printf ("blk.%d.attn_v_bias", l);
    assert_shape (m, q, 64, 0);
    assert_shape (m, k, 32, 0);
    assert_shape (m, v, 32, 0);
    /* seeded randn * 0.02: nonzero and small */
    g_autofree float *b = tensor_floats (must_find (m, q));
    double s = 0;
    for (int i = 0; i < 64; i++)
      s += fabs (b[i]);
    g_assert_cmpfloat (s / 64, >, 0.001);
    g_assert_cmpfloat (s / 64, <, 0.1);
  }
  /* the weights are the llama ones */
  for (guint i = 0; i < llama->tensors->len; i++) {
    LevConvTensor *a = g_ptr_array_index (llama->tensors, i), *b = must_find (m, a->name);
    g_assert_cmpmem (a->data, tensor_numel (a) * 4, b->data, tensor_numel (b) * 4);
  }
  lev_conv_model_free (llama);
  lev_conv_model_free (m);
}

static const gchar *
bitnet_canonical (const gchar *hf, int *layer)
{
  static const char *const map[][2] = {
    { "self_attn.q_proj.weight", "attn_q" }, { "self_attn.k_proj.weight", "attn_k" },
    { "self_attn.v_proj.weight", "attn_v" }, { "self_attn.o_proj.weight", "attn_o" },
    { "mlp.gate_proj.weight", "ffn_gate" },  { "mlp.up_proj.weight", "ffn_up" },
    { "mlp.down_proj.weight", "ffn_down" },
  };
  g_assert_true (sscanf (hf, "model.layers.%d.", layer) == 1);
  const gchar *suffix = strchr (hf + strlen ("model.layers."), '.') + 1;
  for (gsize i = 0; i < G_N_ELEMENTS (map); i++)
    if (strcmp (suffix, map[i][0]) == 0)
      return map[i][1];
  g_error ("unexpected name %s in ternary_stats.json", hf);
  return NULL;
}

static void
test_hf_bitnet (void)
{
  LevConvModel *m = must_import (lev_import_hf_dir, "hf/bitnet-tiny");
  const LevHParams *hp = &m->hp;
  g_assert_cmpuint (hp->arch, ==, LEV_ARCH_BITNET);
  g_assert_cmpuint (hp->flags, ==, LEV_HP_SUB_NORMS | LEV_HP_ACT_QUANT | LEV_HP_TIED_EMBEDDINGS);
  g_assert_cmpuint (hp->dim, ==, 64);
  g_assert_cmpuint (hp->ffn_dim, ==, 160);
  g_assert_cmpuint (hp->n_layers, ==, 3);
  g_assert_cmpuint (hp->n_heads, ==, 4);
  g_assert_cmpuint (hp->n_kv_heads, ==, 2);
  g_assert_cmpuint (hp->head_dim, ==, 16);
  g_assert_cmpuint (hp->rope_style, ==, LEV_ROPE_HALF);
  g_assert_cmpuint (hp->activation, ==, LEV_ACT_SILU);
  g_assert_cmpuint (m->tensors->len, ==, 2 + 3 * 11);
  for (int l = 0; l < 3; l++) {
    g_autofree gchar *a = g_strdup_printf ("blk.%d.attn_sub_norm", l), *f = g_strdup_printf ("blk.%d.ffn_sub_norm", l);
    assert_shape (m, a, 64, 0);
    assert_shape (m, f, 160, 0);
    g_assert_cmpuint (must_find (m, a)->type, ==, LEV_SRC_F32);
  }

  gsize len;
  g_autofree gchar *json = lev_test_read_fixture ("hf/bitnet-tiny/expected/ternary_stats.json", &len);
  g_autoptr (JsonParser) parser = json_parser_new ();
  GError *error = NULL;
  json_parser_load_from_data (parser, json, (gssize) len, &error);
  g_assert_no_error (error);
  JsonObject *tensors = json_object_get_object_member (json_node_get_object (json_parser_get_root (parser)), "tensors");
  g_assert_nonnull (tensors);
  JsonObjectIter it;
  const gchar *hfname;
  JsonNode *node;
  guint n_checked = 0;
  json_object_iter_init (&it, tensors);
  while (json_object_iter_next (&it, &hfname, &node)) {
    JsonObject *o = json_node_get_object (node);
    int layer;
    const gchar *kind = bitnet_canonical (hfname, &layer);
    g_autofree gchar *name = g_strdup_printf ("blk.%d.%s", layer, kind);
    LevConvTensor *t = must_find (m, name);
    JsonArray *shape = json_object_get_array_member (o, "shape");
    g_assert_cmpuint (t->type, ==, LEV_SRC_TERNARY);
    g_assert_cmpuint (t->n_dims, ==, json_array_get_length (shape));
    g_assert_cmpuint (t->shape[0], ==, json_array_get_int_element (shape, 0));
    g_assert_cmpuint (t->shape[1], ==, json_array_get_int_element (shape, 1));
    double want = json_object_get_double_member (o, "absmean_scale");
    g_assert_cmpfloat_with_epsilon (t->scale, want, want * 2e-6);
    gint64 cnt[3] = { 0, 0, 0 };
    const gint8 *v = t->data;
    for (guint64 i = 0; i < tensor_numel (t); i++) {
      g_assert_true (v[i] >= -1 && v[i] <= 1);
      cnt[v[i] + 1]++;
    }
    g_assert_cmpint (cnt[0], ==, json_object_get_int_member (o, "count_minus1"));
    g_assert_cmpint (cnt[1], ==, json_object_get_int_member (o, "count_0"));
    g_assert_cmpint (cnt[2], ==, json_object_get_int_member (o, "count_plus1"));
    n_checked++;
  }
  g_assert_cmpuint (n_checked, ==, 21);
  lev_conv_model_free (m);
}

/* Splits stories260K-llama into two shards with an index; the import must equal the single-file one. */
static void
test_hf_sharded (void)
{
  gchar *dir = make_tmp_dir ();
  static const gchar *const files[] = { "config.json", NULL };
  copy_fixture_files ("hf/stories260K-llama", dir, files);
  TestSt st = test_st_read ("hf/stories260K-llama/model.safetensors");
  JsonObject *root = json_node_get_object (st.header);
  JsonObject *hdr[2] = { json_object_new (), json_object_new () };
  GByteArray *data[2] = { g_byte_array_new (), g_byte_array_new () };
  JsonObject *wm = json_object_new ();
  g_autoptr (GList) members = json_object_get_members (root);
  int k = 0;
  for (GList *l = members; l != NULL; l = l->next) {
    const gchar *name = l->data;
    if (strcmp (name, "__metadata__") == 0)
      continue;
    int s = k++ % 2;
    JsonObject *e = json_object_get_object_member (root, name);
    JsonArray *offs = json_object_get_array_member (e, "data_offsets");
    gint64 b = json_array_get_int_element (offs, 0), end = json_array_get_int_element (offs, 1);
    JsonObject *ne = json_object_new ();
    json_object_set_string_member (ne, "dtype", json_object_get_string_member (e, "dtype"));
    json_object_set_array_member (ne, "shape", json_array_ref (json_object_get_array_member (e, "shape")));
    set_int_array (ne, "data_offsets", data[s]->len, data[s]->len + (end - b));
    g_byte_array_append (data[s], st.data + b, (guint) (end - b));
    json_object_set_object_member (hdr[s], name, ne);
    json_object_set_string_member (wm, name, s ? "model-00002-of-00002.safetensors"
                                                : "model-00001-of-00002.safetensors");
  }
  for (int s = 0; s < 2; s++) {
    g_autofree gchar *p = g_strdup_printf ("%s/model-0000%d-of-00002.safetensors", dir, s + 1);
    JsonNode *n = json_node_init_object (json_node_alloc (), hdr[s]);
    test_st_write (p, n, data[s]->data, data[s]->len);
    json_node_unref (n);
    json_object_unref (hdr[s]);
    g_byte_array_unref (data[s]);
  }
  JsonObject *index = json_object_new ();
  JsonObject *meta = json_object_new ();
  json_object_set_int_member (meta, "total_size", (gint64) st.data_len);
  json_object_set_object_member (index, "metadata", meta);
  json_object_set_object_member (index, "weight_map", wm);
  JsonNode *in = json_node_init_object (json_node_alloc (), index);
  g_autofree gchar *index_json = json_to_string (in, TRUE);
  g_autofree gchar *index_path = g_build_filename (dir, "model.safetensors.index.json", NULL);
  write_file (index_path, index_json, strlen (index_json));
  json_node_unref (in);
  json_object_unref (index);

  LevConvModel *ref = must_import (lev_import_hf_dir, "hf/stories260K-llama");
  GError *error = NULL;
  LevConvModel *m = lev_import_hf_dir (dir, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (m->keep->len, ==, 2);
  g_assert_cmpuint (m->tensors->len, ==, ref->tensors->len);
  for (guint i = 0; i < ref->tensors->len; i++) {
    LevConvTensor *a = g_ptr_array_index (ref->tensors, i), *b = must_find (m, a->name);
    g_assert_cmpmem (a->shape, sizeof a->shape, b->shape, sizeof b->shape);
    g_assert_cmpmem (a->data, tensor_numel (a) * 4, b->data, tensor_numel (b) * 4);
  }
  lev_conv_model_free (m);
  lev_conv_model_free (ref);

  /* the second shard goes missing */
  g_autofree gchar *shard2 = g_build_filename (dir, "model-00002-of-00002.safetensors", NULL);
  g_assert_cmpint (g_remove (shard2), ==, 0);
  m = lev_import_hf_dir (dir, &error);
  expect_failure (m, error, "index naming a missing shard", "model-00002-of-00002.safetensors");
  test_st_clear (&st);
  rm_tree (dir);
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* bitllama2.c                                                                                                       */
/* ---------------------------------------------------------------------------------------------------------------- */

static void
check_ak42 (const gchar *rel, guint32 dim, guint32 hidden, gsize file_size)
{
  LevConvModel *m = must_import (lev_import_ak42, rel);
  const LevHParams *hp = &m->hp;
  g_assert_cmpuint (hp->arch, ==, LEV_ARCH_BITLLAMA2C);
  g_assert_cmpuint (hp->flags, ==,
                    LEV_HP_BITLINEAR_NORM | LEV_HP_ACT_QUANT | LEV_HP_ACT_ROUND_AWAY | LEV_HP_TIED_EMBEDDINGS);
  g_assert_cmpuint (hp->dim, ==, dim);
  g_assert_cmpuint (hp->ffn_dim, ==, hidden);
  g_assert_cmpuint (hp->n_layers, ==, 8);
  g_assert_cmpuint (hp->n_heads, ==, 8);
  g_assert_cmpuint (hp->n_kv_heads, ==, 4);
  g_assert_cmpuint (hp->head_dim, ==, dim / 8);
  g_assert_cmpuint (hp->vocab_size, ==, 512);
  g_assert_cmpuint (hp->max_ctx, ==, 512);
  g_assert_cmpuint (hp->rope_style, ==, LEV_ROPE_INTERLEAVED);
  g_assert_cmpfloat (hp->rope_theta, ==, 10000.0f);
  g_assert_cmpfloat (hp->norm_eps, ==, 1e-5f);
  g_assert_cmpint (hp->bos_id, ==, 1);
  g_assert_cmpint (hp->eos_id, ==, 2);
  g_assert_cmpuint (m->tensors->len, ==, 2 + 8 * 7);
  g_assert_null (lev_conv_model_find (m, "blk.0.attn_norm"));
  assert_shape (m, "token_embd", 512, dim);
  assert_shape (m, "output_norm", dim, 0);
  guint64 kv = dim / 2;
  gint64 cnt[3] = { 0, 0, 0 };
  for (int l = 0; l < 8; l++) {
    static const char *const kinds[7] = { "attn_q", "attn_k", "attn_v", "attn_o", "ffn_gate", "ffn_up", "ffn_down" };
    const guint64 rows[7] = { dim, kv, kv, dim, hidden, hidden, dim }, cols[7] = { dim, dim, dim, dim, dim, dim, hidden };
    for (int k = 0; k < 7; k++) {
      g_autofree gchar *name = g_strdup_printf ("blk.%d.%s", l, kinds[k]);
      assert_shape (m, name, rows[k], cols[k]);
      LevConvTensor *t = must_find (m, name);
      g_assert_cmpuint (t->type, ==, LEV_SRC_TERNARY);
      g_assert_cmpfloat (t->scale, >, 0.0f);
      const gint8 *v = t->data;
      for (guint64 i = 0; i < rows[k] * cols[k]; i++) {
        g_assert_true (v[i] >= -1 && v[i] <= 1);
        cnt[v[i] + 1]++;
      }
    }
  }
  gint64 total = cnt[0] + cnt[1] + cnt[2];
  g_test_message ("%s: -1 %.3f, 0 %.3f, +1 %.3f", rel, (double) cnt[0] / total, (double) cnt[1] / total,
                  (double) cnt[2] / total);
  for (int i = 0; i < 3; i++) {
    g_assert_cmpfloat ((double) cnt[i] / total, >, 0.25);
    g_assert_cmpfloat ((double) cnt[i] / total, <, 0.42);
  }
  /* independent decode of the first bytes of blk.0.attn_q (MSB-first 2-bit codes after a float scale) */
  gsize len;
  g_autofree gchar *raw = lev_test_read_fixture (rel, &len);
  g_assert_cmpuint (len, ==, file_size);
  gsize off = 256 + 4 * (gsize) dim + 4 * 512 * (gsize) dim;
  float scale;
  memcpy (&scale, raw + off, 4);
  LevConvTensor *q = must_find (m, "blk.0.attn_q");
  g_assert_cmpfloat (q->scale, ==, scale);
  const gint8 *qv = q->data;
  for (int i = 0; i < 64; i++) {
    guint8 code = ((guint8) raw[off + 4 + i / 4] >> (6 - 2 * (i % 4))) & 3;
    g_assert_cmpint (qv[i], ==, code == 0 ? 0 : code == 1 ? 1 : -1);
  }
  /* the embedding points at the float32 block after the final norm */
  g_assert_cmpmem (must_find (m, "token_embd")->data, 512 * dim * 4, raw + 256 + 4 * dim, 512 * dim * 4);
  lev_conv_model_free (m);

  m = must_import (lev_import_any, rel);
  g_assert_cmpuint (m->hp.arch, ==, LEV_ARCH_BITLLAMA2C);
  lev_conv_model_free (m);
}

static void
test_ak42 (void)
{
  check_ak42 ("bitnet-tinystories/bit_model_1M.bin", 128, 256, 558048);
  check_ak42 ("bitnet-tinystories/bit_model_3M.bin", 256, 256, 1312224);

  /* each importer refuses the other's format */
  g_autofree gchar *bit = lev_test_fixture ("bitnet-tinystories/bit_model_1M.bin");
  g_autofree gchar *leg = lev_test_fixture ("stories260K/stories260K.bin");
  GError *error = NULL;
  LevConvModel *m = lev_import_llama2c (bit, &error);
  expect_failure (m, error, "llama2.c importer on a bitllama2.c file", "bitllama2.c");
  error = NULL;
  m = lev_import_ak42 (leg, &error);
  expect_failure (m, error, "ak42 importer on a llama2.c legacy file", NULL);
}

/* Writes a llama2.c version-1 float file built from stories260K.bin; both importers must agree. */
static void
test_llama2c_v1 (void)
{
  LevConvModel *ref = must_import (lev_import_llama2c, "stories260K/stories260K.bin");
  gchar *dir = make_tmp_dir ();
  g_autofree gchar *path = g_build_filename (dir, "v1.bin", NULL);
  GByteArray *out = g_byte_array_new ();
  guint8 header[256] = { 0 };
  guint32 magic = 0x616b3432;
  gint32 fields[8] = { 1, 64, 172, 5, 8, 4, 512, 512 };
  memcpy (header, &magic, 4);
  memcpy (header + 4, fields, sizeof fields);
  header[36] = 1;
  g_byte_array_append (out, header, sizeof header);
  static const char *const per_layer_norms[] = { "attn_norm", "ffn_norm" };
  static const char *const kinds[] = { "attn_q", "attn_k", "attn_v", "attn_o", "ffn_gate", "ffn_down", "ffn_up" };
#define APPEND(name) \
  do { \
    LevConvTensor *t_ = must_find (ref, name); \
    g_byte_array_append (out, t_->data, (guint) tensor_numel (t_) * 4); \
  } while (0)
  for (gsize k = 0; k < 2; k++)
    for (int l = 0; l < 5; l++) {
      g_autofree gchar *n = g_strdup_printf ("blk.%d.%s", l, per_layer_norms[k]);
      APPEND (n);
    }
  APPEND ("output_norm");
  APPEND ("token_embd");
  for (gsize k = 0; k < G_N_ELEMENTS (kinds); k++)
    for (int l = 0; l < 5; l++) {
      g_autofree gchar *n = g_strdup_printf ("blk.%d.%s", l, kinds[k]);
      APPEND (n);
    }
#undef APPEND
  write_file (path, out->data, out->len);
  g_byte_array_unref (out);

  GError *error = NULL;
  LevConvModel *m = lev_import_any (path, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (&m->hp, sizeof m->hp, &ref->hp, sizeof ref->hp);
  g_assert_cmpuint (m->tensors->len, ==, ref->tensors->len);
  for (guint i = 0; i < ref->tensors->len; i++) {
    LevConvTensor *a = g_ptr_array_index (ref->tensors, i), *b = must_find (m, a->name);
    g_assert_cmpmem (a->shape, sizeof a->shape, b->shape, sizeof b->shape);
    g_assert_cmpmem (a->data, tensor_numel (a) * 4, b->data, tensor_numel (b) * 4);
  }
  lev_conv_model_free (m);
  m = lev_import_ak42 (path, &error);
  expect_failure (m, error, "ak42 importer on a llama2.c version-1 float file", "llama2.c");
  lev_conv_model_free (ref);
  g_assert_cmpint (g_remove (path), ==, 0);
  rm_tree (dir);
}

/* A legacy file with a negative vocab_size carries its own classifier after the freq_cis tables. */
static void
test_llama2c_unshared (void)
{
  gsize len;
  g_autofree gchar *raw = lev_test_read_fixture ("stories260K/stories260K.bin", &len);
  GByteArray *out = g_byte_array_new ();
  g_byte_array_append (out, (const guint8 *) raw, len);
  gint32 neg = -512;
  memcpy (out->data + 20, &neg, 4);
  /* classifier: the embedding with every value negated, so that it differs from token_embd */
  for (gsize i = 0; i < 512 * 64; i++) {
    float f;
    memcpy (&f, raw + 28 + 4 * i, 4);
    f = -f;
    g_byte_array_append (out, (const guint8 *) &f, 4);
  }
  gchar *dir = make_tmp_dir ();
  g_autofree gchar *path = g_build_filename (dir, "unshared.bin", NULL);
  write_file (path, out->data, out->len);
  GError *error = NULL;
  LevConvModel *m = lev_import_any (path, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (m->hp.flags, ==, 0);
  g_assert_cmpuint (m->hp.vocab_size, ==, 512);
  assert_shape (m, "output", 512, 64);
  g_assert_cmpmem (must_find (m, "output")->data, 512 * 64 * 4, out->data + len, 512 * 64 * 4);
  lev_conv_model_free (m);
  /* the same bytes without the classifier are one classifier short */
  write_file (path, out->data, len);
  m = lev_import_llama2c (path, &error);
  expect_failure (m, error, "unshared legacy file without its classifier", "needs exactly");
  g_byte_array_unref (out);
  g_assert_cmpint (g_remove (path), ==, 0);
  rm_tree (dir);
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* bad input                                                                                                         */
/* ---------------------------------------------------------------------------------------------------------------- */

/* Copies a fixture file into dir under name, keeping only its first len bytes (all when len < 0). */
static gchar *
copy_truncated (const gchar *rel, const gchar *dir, const gchar *name, gssize cut)
{
  gsize len;
  g_autofree gchar *data = lev_test_read_fixture (rel, &len);
  gchar *path = g_build_filename (dir, name, NULL);
  write_file (path, data, cut < 0 ? len : len - (gsize) cut);
  return path;
}

/* Writes a fresh HF dir: the llama fixture's config (with an edit) and a safetensors file (with an edit). */
typedef void (*EditSt) (TestSt *st);
typedef void (*EditCfg) (JsonObject *cfg);

static gchar *
make_hf_dir (EditCfg edit_cfg, EditSt edit_st)
{
  gchar *dir = make_tmp_dir ();
  gsize len;
  g_autofree gchar *cfg = lev_test_read_fixture ("hf/stories260K-llama/config.json", &len);
  g_autoptr (JsonParser) parser = json_parser_new ();
  GError *error = NULL;
  json_parser_load_from_data (parser, cfg, (gssize) len, &error);
  g_assert_no_error (error);
  JsonNode *root = json_parser_get_root (parser);
  if (edit_cfg)
    edit_cfg (json_node_get_object (root));
  g_autofree gchar *text = json_to_string (root, TRUE);
  g_autofree gchar *cfg_path = g_build_filename (dir, "config.json", NULL);
  write_file (cfg_path, text, strlen (text));

  TestSt st = test_st_read ("hf/stories260K-llama/model.safetensors");
  if (edit_st)
    edit_st (&st);
  g_autofree gchar *st_path = g_build_filename (dir, "model.safetensors", NULL);
  test_st_write (st_path, st.header, st.data, st.data_len);
  test_st_clear (&st);
  return dir;
}

static void
cfg_unknown_arch (JsonObject *cfg)
{
  JsonArray *a = json_array_new ();
  json_array_add_string_element (a, "MistralForCausalLM");
  json_object_set_array_member (cfg, "architectures", a);
}

static void
cfg_untied (JsonObject *cfg)
{
  json_object_set_boolean_member (cfg, "tie_word_embeddings", FALSE);
}

static void
cfg_bad_rope_scaling (JsonObject *cfg)
{
  JsonObject *rs = json_object_new ();
  json_object_set_string_member (rs, "rope_type", "yarn");
  json_object_set_double_member (rs, "factor", 4.0);
  json_object_set_object_member (cfg, "rope_scaling", rs);
}

static void
cfg_bad_act (JsonObject *cfg)
{
  json_object_set_string_member (cfg, "hidden_act", "swish_cubed");
}

static void
cfg_llama3_rope (JsonObject *cfg)
{
  JsonObject *rs = json_object_new ();
  json_object_set_string_member (rs, "rope_type", "llama3");
  json_object_set_double_member (rs, "factor", 8.0);
  json_object_set_double_member (rs, "low_freq_factor", 1.0);
  json_object_set_double_member (rs, "high_freq_factor", 4.0);
  json_object_set_int_member (rs, "original_max_position_embeddings", 8192);
  json_object_set_object_member (cfg, "rope_scaling", rs);
  JsonArray *eos = json_array_new ();
  json_array_add_int_element (eos, 7);
  json_array_add_int_element (eos, 9);
  json_object_set_array_member (cfg, "eos_token_id", eos);
  json_object_remove_member (cfg, "bos_token_id");
}

static void
st_transpose_k (TestSt *st)
{
  set_int_array (st_entry (st, "model.layers.0.self_attn.k_proj.weight"), "shape", 64, 32);
}

static void
st_bad_numel (TestSt *st)
{
  set_int_array (st_entry (st, "model.layers.0.self_attn.k_proj.weight"), "shape", 32, 65);
}

static void
st_unknown_dtype (TestSt *st)
{
  json_object_set_string_member (st_entry (st, "model.norm.weight"), "dtype", "F12");
}

static void
st_u8 (TestSt *st)
{
  JsonObject *e = st_entry (st, "model.embed_tokens.weight");
  json_object_set_string_member (e, "dtype", "U8");
  set_int_array (e, "shape", 512, 256);
}

static void
st_overlap (TestSt *st)
{
  /* two [64] tensors share their bytes */
  JsonObject *a = st_entry (st, "model.layers.0.input_layernorm.weight");
  JsonArray *offs = json_object_get_array_member (a, "data_offsets");
  gint64 b = json_array_get_int_element (offs, 0), e = json_array_get_int_element (offs, 1);
  set_int_array (st_entry (st, "model.layers.1.input_layernorm.weight"), "data_offsets", b, e);
}

static void
st_out_of_range (TestSt *st)
{
  set_int_array (st_entry (st, "model.norm.weight"), "data_offsets", (gint64) st->data_len - 128,
                 (gint64) st->data_len + 128);
}

static void
st_no_lm_head (TestSt *st)
{
  (void) st;
}

static void
st_extra_tensor (TestSt *st)
{
  JsonObject *o = json_object_new ();
  json_object_set_string_member (o, "dtype", "F32");
  set_int_array (o, "shape", 0, 4);
  set_int_array (o, "data_offsets", 0, 0);
  json_object_set_object_member (json_node_get_object (st->header), "model.layers.0.self_attn.o_proj.bias", o);
}

static void
test_bad_hf (void)
{
  GError *error = NULL;
  LevConvModel *m;

  /* a directory without config.json */
  gchar *dir = make_tmp_dir ();
  m = lev_import_hf_dir (dir, &error);
  expect_failure (m, error, "no config.json", "config.json");
  error = NULL;
  m = lev_import_any (dir, &error);
  expect_failure (m, error, "no config.json (any)", "config.json");
  error = NULL;
  /* config.json but no weights */
  static const gchar *const cfg_only[] = { "config.json", NULL };
  copy_fixture_files ("hf/stories260K-llama", dir, cfg_only);
  m = lev_import_hf_dir (dir, &error);
  expect_failure (m, error, "no safetensors", "model.safetensors");
  error = NULL;
  /* config.json that is not JSON */
  g_autofree gchar *cfg = g_build_filename (dir, "config.json", NULL);
  write_file (cfg, "{ \"architectures\": [", 20);
  m = lev_import_hf_dir (dir, &error);
  expect_failure (m, error, "broken config.json", "JSON");
  error = NULL;
  rm_tree (dir);

  static const struct {
    const char *what;
    EditCfg cfg;
    EditSt st;
    const char *mention;
    gint code;
  } cases[] = {
    { "unknown architecture", cfg_unknown_arch, NULL, "MistralForCausalLM", LEV_CONVERT_ERROR_UNSUPPORTED },
    { "wrong shape", NULL, st_transpose_k, "blk.0.attn_k", LEV_CONVERT_ERROR_SHAPE },
    { "shape not matching the byte size", NULL, st_bad_numel, "k_proj", LEV_CONVERT_ERROR_FORMAT },
    { "unknown dtype", NULL, st_unknown_dtype, "F12", LEV_CONVERT_ERROR_UNSUPPORTED },
    { "U8 tensor", NULL, st_u8, "U8", LEV_CONVERT_ERROR_UNSUPPORTED },
    { "overlapping tensors", NULL, st_overlap, "overlap", LEV_CONVERT_ERROR_FORMAT },
    { "offsets past the end", NULL, st_out_of_range, "model.norm.weight", LEV_CONVERT_ERROR_FORMAT },
    { "untied without lm_head", cfg_untied, st_no_lm_head, "lm_head", LEV_CONVERT_ERROR_SHAPE },
    { "unknown tensor", NULL, st_extra_tensor, "o_proj.bias", LEV_CONVERT_ERROR_UNSUPPORTED },
    { "unsupported rope_scaling", cfg_bad_rope_scaling, NULL, "yarn", LEV_CONVERT_ERROR_UNSUPPORTED },
    { "unsupported hidden_act", cfg_bad_act, NULL, "swish_cubed", LEV_CONVERT_ERROR_UNSUPPORTED },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    dir = make_hf_dir (cases[i].cfg, cases[i].st);
    m = lev_import_hf_dir (dir, &error);
    g_assert_nonnull (error);
    g_assert_cmpint (error->code, ==, cases[i].code);
    expect_failure (m, error, cases[i].what, cases[i].mention);
    error = NULL;
    rm_tree (dir);
  }

  /* an edited but valid config: llama3 rope scaling, eos list, no bos */
  dir = make_hf_dir (cfg_llama3_rope, NULL);
  m = lev_import_hf_dir (dir, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (m->hp.rope_scaling, ==, LEV_ROPE_SCALING_LLAMA3);
  g_assert_cmpfloat (m->hp.rope_factor, ==, 8.0f);
  g_assert_cmpfloat (m->hp.rope_low_freq_factor, ==, 1.0f);
  g_assert_cmpfloat (m->hp.rope_high_freq_factor, ==, 4.0f);
  g_assert_cmpuint (m->hp.rope_orig_ctx, ==, 8192);
  g_assert_cmpint (m->hp.eos_id, ==, 7);
  g_assert_cmpint (m->hp.bos_id, ==, -1);
  g_assert_null (m->vocab);
  lev_conv_model_free (m);
  rm_tree (dir);

  /* truncated safetensors, and a header length larger than the file */
  dir = make_hf_dir (NULL, NULL);
  g_autofree gchar *stp = copy_truncated ("hf/stories260K-llama/model.safetensors", dir, "model.safetensors", 1000);
  m = lev_import_hf_dir (dir, &error);
  expect_failure (m, error, "truncated safetensors", "model.safetensors");
  error = NULL;
  gsize len;
  gchar *raw;
  g_file_get_contents (stp, &raw, &len, NULL);
  guint64 big = GUINT64_TO_LE ((guint64) len);
  memcpy (raw, &big, 8);
  write_file (stp, raw, len);
  g_free (raw);
  m = lev_import_hf_dir (dir, &error);
  expect_failure (m, error, "header length larger than the file", "header length");
  error = NULL;
  write_file (stp, "\x04\0\0\0\0\0\0\0{}", 10);
  m = lev_import_hf_dir (dir, &error);
  expect_failure (m, error, "header length past a tiny file", "header length");
  error = NULL;
  write_file (stp, "\x02\0\0\0\0\0\0\0[]", 10);
  m = lev_import_hf_dir (dir, &error);
  expect_failure (m, error, "header that is not an object", "object");
  error = NULL;
  rm_tree (dir);
}

static void
test_bad_bin (void)
{
  GError *error = NULL;
  LevConvModel *m;
  gchar *dir = make_tmp_dir ();

  g_autofree gchar *p1 = copy_truncated ("stories260K/stories260K.bin", dir, "short.bin", 1);
  m = lev_import_llama2c (p1, &error);
  expect_failure (m, error, "llama2.c truncated by 1 byte", "1056539");
  error = NULL;
  m = lev_import_any (p1, &error);
  expect_failure (m, error, "llama2.c truncated by 1 byte (any)", NULL);
  error = NULL;

  g_autofree gchar *p2 = copy_truncated ("bitnet-tinystories/bit_model_1M.bin", dir, "short_bit.bin", 3);
  m = lev_import_ak42 (p2, &error);
  expect_failure (m, error, "ak42 truncated", "truncated");
  error = NULL;
  m = lev_import_any (p2, &error);
  expect_failure (m, error, "ak42 truncated (any)", NULL);
  error = NULL;

  /* random bytes, with and without the ak42 magic */
  GRand *rand = g_rand_new_with_seed (1234);
  gsize n = 300000;
  guint32 *buf = g_new (guint32, n / 4);
  for (gsize i = 0; i < n / 4; i++)
    buf[i] = g_rand_int (rand);
  g_rand_free (rand);
  g_autofree gchar *p3 = g_build_filename (dir, "random.bin", NULL);
  write_file (p3, buf, n);
  m = lev_import_any (p3, &error);
  expect_failure (m, error, "random file", NULL);
  error = NULL;
  m = lev_import_llama2c (p3, &error);
  expect_failure (m, error, "random file (llama2c)", NULL);
  error = NULL;
  buf[0] = 0x616b3432;
  buf[1] = 1;
  write_file (p3, buf, n);
  m = lev_import_any (p3, &error);
  expect_failure (m, error, "random file with the ak42 magic", NULL);
  error = NULL;
  /* a plausible legacy header with the wrong size */
  gint32 hdr[7] = { 64, 172, 5, 8, 4, 512, 512 };
  memcpy (buf, hdr, sizeof hdr);
  write_file (p3, buf, n);
  m = lev_import_any (p3, &error);
  expect_failure (m, error, "legacy header, wrong size", "needs exactly");
  error = NULL;
  g_free (buf);

  g_autofree gchar *p4 = g_build_filename (dir, "tiny.bin", NULL);
  write_file (p4, "abc", 3);
  m = lev_import_any (p4, &error);
  expect_failure (m, error, "3-byte file", NULL);
  error = NULL;
  write_file (p4, "", 0);
  m = lev_import_any (p4, &error);
  expect_failure (m, error, "empty file", NULL);
  error = NULL;

  g_autofree gchar *p5 = g_build_filename (dir, "does-not-exist.bin", NULL);
  m = lev_import_any (p5, &error);
  expect_failure (m, error, "missing file", NULL);
  error = NULL;
  m = lev_import_llama2c (p5, &error);
  expect_failure (m, error, "missing file (llama2c)", NULL);
  error = NULL;
  rm_tree (dir);
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* tokenizer (needs lev_import_spm_model from lev_import_vocab.c)                                                     */
/* ---------------------------------------------------------------------------------------------------------------- */

static void
test_hf_tokenizer (void)
{
  LevConvModel *m = must_import (lev_import_hf_dir, "hf/stories260K-llama");
  g_assert_nonnull (m->vocab);
  g_assert_cmpuint (m->vocab->pieces->len, ==, 512);
  g_assert_true (m->vocab->flags & LEV_TOKF_ADD_BOS);
  g_assert_false (m->vocab->flags & LEV_TOKF_ADD_EOS);
  g_assert_null (m->chat_template);
  lev_conv_model_free (m);

  /* tokenizer_config.json overrides the flags and brings a chat template */
  gchar *dir = make_hf_dir (NULL, NULL);
  static const gchar *const tok[] = { "tokenizer.model", NULL };
  copy_fixture_files ("hf/stories260K-llama", dir, tok);
  const gchar *tc = "{\"add_bos_token\": false, \"add_eos_token\": true, \"chat_template\": \"{{ messages }}\"}";
  g_autofree gchar *tcp = g_build_filename (dir, "tokenizer_config.json", NULL);
  write_file (tcp, tc, strlen (tc));
  GError *error = NULL;
  m = lev_import_hf_dir (dir, &error);
  g_assert_no_error (error);
  g_assert_nonnull (m->vocab);
  g_assert_false (m->vocab->flags & LEV_TOKF_ADD_BOS);
  g_assert_true (m->vocab->flags & LEV_TOKF_ADD_EOS);
  g_assert_cmpstr (m->chat_template, ==, "{{ messages }}");
  lev_conv_model_free (m);
  rm_tree (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/convert/llama2c", test_llama2c);
  g_test_add_func ("/convert/validate", test_validate);
  g_test_add_func ("/convert/llama2c-v1", test_llama2c_v1);
  g_test_add_func ("/convert/llama2c-unshared", test_llama2c_unshared);
  g_test_add_func ("/convert/hf-llama", test_hf_llama);
  g_test_add_func ("/convert/hf-qwen2", test_hf_qwen2);
  g_test_add_func ("/convert/hf-bitnet", test_hf_bitnet);
  g_test_add_func ("/convert/hf-sharded", test_hf_sharded);
  g_test_add_func ("/convert/ak42", test_ak42);
  g_test_add_func ("/convert/bad-hf", test_bad_hf);
  g_test_add_func ("/convert/bad-bin", test_bad_bin);
  g_test_add_func ("/convert/hf-tokenizer", test_hf_tokenizer);
  return g_test_run ();
}
