/* test_bitnet_layout.c: a BitNet b1.58 2B4T-layout checkpoint (packed uint8 + weight_scale) built here from known
 * ternary weights converts back to exactly those weights, with the scale convention of its linear_class. */
#include "lev_convert.h"
#include "lev_kernels.h"
#include "lev_test_common.h"

#include <glib/gstdio.h>

enum { DIM = 64, HEADS = 4, KV = 2, HD = 16, FFN = 128, VOCAB = 32, LAYERS = 2 };

typedef struct {
  gchar *name;
  const char *dtype;
  guint64 shape[2];
  guint n_dims;
  GBytes *data;
} StEntry;

static guint32 rng = 2024;

static guint32
next_rand (void)
{
  rng = rng * 1103515245u + 12345u;
  return rng >> 8;
}

/* Known ternary weights for matrix m of layer l: a deterministic pattern with all three values. */
static gint8
known_trit (guint l, guint m, guint64 r, guint64 c)
{
  return (gint8) ((int) ((r * 7 + c * 3 + l * 5 + m * 11 + (r * c) % 5) % 3) - 1);
}

/* The scale of matrix m of layer l, exactly representable in bf16. */
static float
known_scale (guint l, guint m)
{
  return 0.015625f * (float) (1 + l * 7 + m);
}

static void
add_entry (GPtrArray *entries, const gchar *name, const char *dtype, guint n_dims, guint64 d0, guint64 d1,
           gpointer data, gsize size)
{
  StEntry *e = g_new0 (StEntry, 1);
  e->name = g_strdup (name);
  e->dtype = dtype;
  e->n_dims = n_dims;
  e->shape[0] = d0;
  e->shape[1] = d1;
  e->data = g_bytes_new_take (data, size);
  g_ptr_array_add (entries, e);
}

/* Writes a safetensors file: u64 header length, JSON header, data. */
static void
write_safetensors (const gchar *path, GPtrArray *entries)
{
  GString *h = g_string_new ("{");
  guint64 off = 0;
  for (guint i = 0; i < entries->len; i++) {
    StEntry *e = g_ptr_array_index (entries, i);
    gsize n = g_bytes_get_size (e->data);
    if (e->n_dims == 1)
      g_string_append_printf (h, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[%" G_GUINT64_FORMAT "],\"data_offsets\":[%"
                              G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT "]}", i ? "," : "", e->name, e->dtype,
                              e->shape[0], off, off + n);
    else
      g_string_append_printf (h, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[%" G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT
                              "],\"data_offsets\":[%" G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT "]}", i ? "," : "",
                              e->name, e->dtype, e->shape[0], e->shape[1], off, off + n);
    off += n;
  }
  g_string_append (h, "}");
  while (h->len % 8)
    g_string_append_c (h, ' ');
  FILE *f = fopen (path, "wb");
  g_assert_nonnull (f);
  guint64 hl = GUINT64_TO_LE (h->len);
  fwrite (&hl, 8, 1, f);
  fwrite (h->str, 1, h->len, f);
  for (guint i = 0; i < entries->len; i++) {
    StEntry *e = g_ptr_array_index (entries, i);
    fwrite (g_bytes_get_data (e->data, NULL), 1, g_bytes_get_size (e->data), f);
  }
  fclose (f);
  g_string_free (h, TRUE);
}

static void
entry_free (gpointer p)
{
  StEntry *e = p;
  g_free (e->name);
  g_bytes_unref (e->data);
  g_free (e);
}

static const struct { const char *hf; const char *lev; guint rows, cols; } linears[] = {
  { "self_attn.q_proj", "attn_q", HEADS * HD, DIM }, { "self_attn.k_proj", "attn_k", KV * HD, DIM },
  { "self_attn.v_proj", "attn_v", KV * HD, DIM }, { "self_attn.o_proj", "attn_o", DIM, HEADS * HD },
  { "mlp.gate_proj", "ffn_gate", FFN, DIM }, { "mlp.up_proj", "ffn_up", FFN, DIM },
  { "mlp.down_proj", "ffn_down", DIM, FFN },
};

/* Builds a 2B4T-layout checkpoint directory; corrupt = 1 writes an invalid code, 2 drops a weight_scale. */
static gchar *
build_checkpoint (const char *linear_class, int corrupt)
{
  gchar *dir = g_dir_make_tmp ("lev-2b4t-XXXXXX", NULL);
  gchar *cfg = g_strdup_printf (
    "{\"architectures\":[\"BitNetForCausalLM\"],\"model_type\":\"bitnet\",\"hidden_size\":%d,"
    "\"intermediate_size\":%d,\"num_hidden_layers\":%d,\"num_attention_heads\":%d,\"num_key_value_heads\":%d,"
    "\"vocab_size\":%d,\"max_position_embeddings\":128,\"rms_norm_eps\":1e-05,\"rope_theta\":500000.0,"
    "\"hidden_act\":\"relu2\",\"tie_word_embeddings\":true,\"bos_token_id\":1,\"eos_token_id\":2,"
    "\"quantization_config\":{\"quant_method\":\"bitnet\",\"linear_class\":\"%s\",\"quantization_mode\":\"offline\"}}",
    DIM, FFN, LAYERS, HEADS, KV, VOCAB, linear_class);
  gchar *p = g_build_filename (dir, "config.json", NULL);
  g_assert_true (g_file_set_contents (p, cfg, -1, NULL));
  g_free (p);
  g_free (cfg);

  GPtrArray *entries = g_ptr_array_new_with_free_func (entry_free);
  float *emb = g_new (float, VOCAB * DIM);
  for (guint i = 0; i < VOCAB * DIM; i++)
    emb[i] = (float) (next_rand () % 1000) / 1000.0f - 0.5f;
  add_entry (entries, "model.embed_tokens.weight", "F32", 2, VOCAB, DIM, emb, sizeof (float) * VOCAB * DIM);
  float *norm = g_new (float, DIM);
  for (guint i = 0; i < DIM; i++)
    norm[i] = 1.0f;
  add_entry (entries, "model.norm.weight", "F32", 1, DIM, 1, norm, sizeof (float) * DIM);
  for (guint l = 0; l < LAYERS; l++) {
    static const struct { const char *name; guint n; } norms[] = {
      { "input_layernorm", DIM }, { "post_attention_layernorm", DIM }, { "self_attn.attn_sub_norm", HEADS * HD },
      { "mlp.ffn_sub_norm", FFN },
    };
    for (guint k = 0; k < G_N_ELEMENTS (norms); k++) {
      float *w = g_new (float, norms[k].n);
      for (guint i = 0; i < norms[k].n; i++)
        w[i] = 1.0f + 0.01f * (float) i;
      gchar *name = g_strdup_printf ("model.layers.%u.%s.weight", l, norms[k].name);
      add_entry (entries, name, "F32", 1, norms[k].n, 1, w, sizeof (float) * norms[k].n);
      g_free (name);
    }
    for (guint m = 0; m < G_N_ELEMENTS (linears); m++) {
      guint rows = linears[m].rows, cols = linears[m].cols, quarter = rows / 4;
      /* transformers' packing: packed[j][c] holds row i*quarter+j in bits 2i..2i+1, code = value + 1 */
      guint8 *packed = g_new0 (guint8, quarter * cols);
      for (guint i = 0; i < 4; i++)
        for (guint j = 0; j < quarter; j++)
          for (guint c = 0; c < cols; c++)
            packed[j * cols + c] |= (guint8) ((known_trit (l, m, i * quarter + j, c) + 1) << (2 * i));
      if (corrupt == 1 && l == 1 && m == 3)
        packed[5] |= 3;         /* code 3 in the lowest two bits */
      gchar *name = g_strdup_printf ("model.layers.%u.%s.weight", l, linears[m].hf);
      add_entry (entries, name, "U8", 2, quarter, cols, packed, quarter * cols);
      if (!(corrupt == 2 && l == 0 && m == 5)) {
        guint16 *s = g_new (guint16, 1);
        s[0] = lev_f32_to_bf16 (known_scale (l, m));
        gchar *sname = g_strconcat (name, "_scale", NULL);
        add_entry (entries, sname, "BF16", 1, 1, 1, s, 2);
        g_free (sname);
      }
      g_free (name);
    }
  }
  p = g_build_filename (dir, "model.safetensors", NULL);
  write_safetensors (p, entries);
  g_free (p);
  g_ptr_array_unref (entries);
  return dir;
}

static void
remove_dir (gchar *dir)
{
  static const char *files[] = { "config.json", "model.safetensors" };
  for (guint i = 0; i < G_N_ELEMENTS (files); i++) {
    gchar *p = g_build_filename (dir, files[i], NULL);
    g_unlink (p);
    g_free (p);
  }
  g_rmdir (dir);
  g_free (dir);
}

static void
check_recovered (const char *linear_class, gboolean divides)
{
  gchar *dir = build_checkpoint (linear_class, 0);
  GError *error = NULL;
  LevConvModel *m = lev_import_hf_dir (dir, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (m->hp.arch, ==, LEV_ARCH_BITNET);
  g_assert_cmpuint (m->hp.activation, ==, LEV_ACT_RELU2);
  g_assert_true (m->hp.flags & LEV_HP_SUB_NORMS);
  g_assert_true (m->hp.flags & LEV_HP_ACT_QUANT);
  g_assert_true (m->hp.flags & LEV_HP_TIED_EMBEDDINGS);
  g_assert_cmpfloat (m->hp.rope_theta, ==, 500000.0f);
  guint64 mismatches = 0, n = 0;
  for (guint l = 0; l < LAYERS; l++)
    for (guint mi = 0; mi < G_N_ELEMENTS (linears); mi++) {
      gchar *name = g_strdup_printf ("blk.%u.%s", l, linears[mi].lev);
      LevConvTensor *t = lev_conv_model_find (m, name);
      g_assert_nonnull (t);
      g_assert_cmpuint (t->type, ==, LEV_SRC_TERNARY);
      g_assert_cmpuint (t->shape[0], ==, linears[mi].rows);
      g_assert_cmpuint (t->shape[1], ==, linears[mi].cols);
      const gint8 *v = t->data;
      for (guint64 r = 0; r < linears[mi].rows; r++)
        for (guint64 c = 0; c < linears[mi].cols; c++, n++)
          mismatches += v[r * linears[mi].cols + c] != known_trit (l, mi, r, c);
      float want = divides ? 1.0f / known_scale (l, mi) : known_scale (l, mi);
      g_assert_cmpfloat (t->scale, ==, want);
      g_free (name);
    }
  g_test_message ("%s: %" G_GUINT64_FORMAT " ternary weights, %" G_GUINT64_FORMAT " mismatches", linear_class, n,
                  mismatches);
  g_assert_cmpuint (mismatches, ==, 0);
  /* sub-norms of the 2B4T names are found */
  g_assert_nonnull (lev_conv_model_find (m, "blk.1.attn_sub_norm"));
  g_assert_nonnull (lev_conv_model_find (m, "blk.1.ffn_sub_norm"));
  lev_conv_model_free (m);
  remove_dir (dir);
}

static void
test_autobitlinear_multiplies (void)
{
  check_recovered ("autobitlinear", FALSE);
}

static void
test_bitlinear_divides (void)
{
  check_recovered ("bitlinear", TRUE);
}

static void
test_bad_packed (void)
{
  for (int corrupt = 1; corrupt <= 2; corrupt++) {
    gchar *dir = build_checkpoint ("autobitlinear", corrupt);
    GError *error = NULL;
    LevConvModel *m = lev_import_hf_dir (dir, &error);
    g_assert_null (m);
    g_assert_nonnull (error);
    g_test_message ("corruption %d: %s", corrupt, error->message);
    g_assert_nonnull (strstr (error->message, corrupt == 1 ? "invalid code 3" : "weight_scale"));
    g_error_free (error);
    remove_dir (dir);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/bitnet-2b4t/autobitlinear-multiplies", test_autobitlinear_multiplies);
  g_test_add_func ("/bitnet-2b4t/bitlinear-divides", test_bitlinear_divides);
  g_test_add_func ("/bitnet-2b4t/bad-packed", test_bad_packed);
  return g_test_run ();
}
