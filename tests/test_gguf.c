/* test_gguf.c: GGUF import checked against llama.cpp (its GGUFs, its logits and greedy ids, gguf-py's dequantization,
 * its tokenizer vectors) and against corrupt files. */
#include "lev_convert.h"
#include "lev_import_gguf.h"
#include "leviathan.h"
#include "lev_model.h"
#include "lev_kernels.h"
#include "lev_test_logits.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

static gchar *tmp_dir;

/* Sequence B of the hf fixtures (tests/data/hf/README.md): the ids fed teacher-forced for logits_tf64.f32. */
static const gint32 seq_b[64] = {
  1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410,
  408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385, 328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388,
  426, 338, 391, 266, 267, 337, 335, 312, 432, 398, 312, 286, 267, 414, 270, 333, 415, 426, 13, 438
};

static LevConvModel *
import_fixture (const char *rel)
{
  gchar *path = lev_test_fixture (rel);
  GError *error = NULL;
  LevConvModel *m = lev_import_gguf (path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (m);
  g_free (path);
  return m;
}

/* Imports a GGUF fixture, writes it with format and loads the result. */
static LevModel *
convert_and_load (const char *rel, LevOutFormat format)
{
  LevConvModel *cm = import_fixture (rel);
  GError *error = NULL;
  g_assert_true (lev_conv_model_validate (cm, &error));
  g_assert_no_error (error);
  gchar *base = g_path_get_basename (rel);
  gchar *out = g_strdup_printf ("%s/%s-%d.leviathan", tmp_dir, base, (int) format);
  g_assert_true (lev_write_model (cm, out, format, FALSE, &error));
  g_assert_no_error (error);
  lev_conv_model_free (cm);
  LevModel *m = lev_model_load (out, &error);
  g_assert_no_error (error);
  g_unlink (out);
  g_free (out);
  g_free (base);
  return m;
}

static LevContext *
new_context (LevModel *m)
{
  LevContextParams p = lev_context_default_params ();
  p.n_threads = 2;
  p.act_quant = LEV_ACT_QUANT_OFF;   /* llama.cpp computes these architectures with float activations */
  GError *error = NULL;
  LevContext *c = lev_context_new (m, &p, &error);
  g_assert_no_error (error);
  return c;
}

/* Feeds sequence B teacher-forced and compares every row of logits with llama.cpp's (64 × vocab floats). */
static void
check_logits (LevModel *m, const char *ref_rel, double tol)
{
  LevContext *c = new_context (m);
  double worst = lev_test_logits_vs_reference (c, lev_model_hparams (m)->vocab_size, seq_b, 64, ref_rel);
  g_test_message ("%s: max |logit - llama.cpp| = %.3g over 64 positions (tolerance %g)", ref_rel, worst, tol);
  g_assert_cmpfloat (worst, <=, tol);
  lev_context_free (c);
}

static int32_t
argmax (const float *v, uint32_t n)
{
  uint32_t b = 0;
  for (uint32_t i = 1; i < n; i++)
    if (v[i] > v[b])
      b = i;
  return (int32_t) b;
}

/* Runs the prompts of a greedy_n64.json with its rules (64 positions, prompt included; first maximal index; stop when
 * the next token is BOS) and asserts every token sequence equals llama.cpp's. */
static void
check_greedy (LevModel *m, const char *ref_rel)
{
  gchar *path = lev_test_fixture (ref_rel);
  JsonParser *parser = json_parser_new ();
  GError *error = NULL;
  g_assert_true (json_parser_load_from_file (parser, path, &error));
  JsonArray *cases = json_node_get_array (json_parser_get_root (parser));
  uint32_t vocab = lev_model_hparams (m)->vocab_size;
  LevContext *c = new_context (m);
  guint n_ok = 0, n = json_array_get_length (cases);
  for (guint i = 0; i < n; i++) {
    JsonObject *o = json_array_get_object_element (cases, i);
    JsonArray *pa = json_object_get_array_member (o, "prompt_tokens"), *ta = json_object_get_array_member (o, "tokens");
    GArray *seq = g_array_new (FALSE, FALSE, sizeof (gint32));
    for (guint k = 0; k < json_array_get_length (pa); k++) {
      gint32 v = (gint32) json_array_get_int_element (pa, k);
      g_array_append_val (seq, v);
    }
    guint n_prompt = seq->len;
    lev_context_reset (c);
    for (guint pos = 0; pos < 64; pos++) {
      const float *logits = lev_context_eval (c, g_array_index (seq, gint32, pos), NULL);
      if (pos + 1 < n_prompt)
        continue;
      gint32 next = argmax (logits, vocab);
      g_array_append_val (seq, next);
      if (next == 1)
        break;
    }
    gboolean same = seq->len == json_array_get_length (ta);
    for (guint k = 0; same && k < seq->len; k++)
      same = g_array_index (seq, gint32, k) == (gint32) json_array_get_int_element (ta, k);
    if (!same)
      g_test_message ("%s: prompt %u differs", ref_rel, i);
    n_ok += same;
    g_array_free (seq, TRUE);
  }
  g_test_message ("%s: %u/%u greedy runs identical", ref_rel, n_ok, n);
  g_assert_cmpuint (n_ok, ==, n);
  lev_context_free (c);
  g_object_unref (parser);
  g_free (path);
}

/* ---------------------------------------------------------------- values against gguf-py */

/* The canonical name of a GGUF tensor name (the table of docs/models.md). */
static gchar *
lev_name_of (const gchar *g)
{
  gchar *s = g_strdup (g);
  if (g_str_has_suffix (s, ".weight"))
    s[strlen (s) - 7] = '\0';
  else if (g_str_has_suffix (s, ".bias"))
    strcpy (s + strlen (s) - 5, "_bias");
  gchar *o = strstr (s, "attn_output");
  if (o != NULL)
    memmove (o + 6, o + 11, strlen (o + 11) + 1);
  return s;
}

/* sha256 of a tensor's values as little-endian float32, in ggml's order (rows of ne[0] values). */
static gchar *
values_sha256 (const LevConvTensor *t)
{
  guint64 n = 1;
  for (guint32 d = 0; d < t->n_dims; d++)
    n *= t->shape[d];
  GChecksum *cs = g_checksum_new (G_CHECKSUM_SHA256);
  for (guint64 i = 0; i < n; i++) {
    float v;
    switch (t->type) {
      case LEV_SRC_F32: v = ((const float *) t->data)[i]; break;
      case LEV_SRC_F16: v = lev_f16_to_f32 (((const guint16 *) t->data)[i]); break;
      case LEV_SRC_BF16: {
        guint32 bits = (guint32) ((const guint16 *) t->data)[i] << 16;
        memcpy (&v, &bits, 4);
        break;
      }
      case LEV_SRC_TERNARY: v = (float) ((const gint8 *) t->data)[i] * t->scale; break;
      case LEV_SRC_ENCODED: {
        /* t2 with one scale per 128-weight group, rows a whole number of blocks (docs/format.md) */
        g_assert_cmpuint (t->encoding, ==, LEV_ENC_T2);
        guint64 cols = t->shape[1], r = i / cols, c = i % cols, groups = cols / 128;
        const guint8 *block = (const guint8 *) t->data + (r * groups + c / 128) * 32;
        guint w = (guint) (c % 128), code = (block[w % 32] >> (2 * (w / 32))) & 3u;
        const float *scales = (const float *) ((const guint8 *) t->data + t->shape[0] * groups * 32);
        v = (float) ((gint) code - 1) * scales[r * groups + c / 128];
        break;
      }
      default: g_assert_not_reached ();
    }
    g_checksum_update (cs, (const guchar *) &v, 4);
  }
  gchar *hex = g_strdup (g_checksum_get_string (cs));
  g_checksum_free (cs);
  return hex;
}

/* Every tensor of every GGUF fixture holds exactly the values gguf-py's dequantize gives (dequantized.sha256); the
 * linear weights of the TQ1_0 / TQ2_0 files are kept as ternary codes with one scale (lossless repacking). */
static void
test_values_equal_gguf_py (void)
{
  gsize len;
  gchar *sums = lev_test_read_fixture ("gguf/dequantized.sha256", &len);
  gchar **lines = g_strsplit (sums, "\n", -1);
  gchar *current = NULL;
  LevConvModel *m = NULL;
  guint n_checked = 0, n_ternary = 0;
  for (gchar **l = lines; *l; l++) {
    if (**l == '\0')
      continue;
    gchar **f = g_strsplit (*l, " ", -1);
    g_assert_cmpuint (g_strv_length (f), ==, 4);
    if (current == NULL || strcmp (current, f[0]) != 0) {
      lev_conv_model_free (m);
      g_free (current);
      current = g_strdup (f[0]);
      gchar *rel = g_strdup_printf ("gguf/%s", f[0]);
      m = import_fixture (rel);
      g_free (rel);
    }
    gchar *name = lev_name_of (f[1]);
    LevConvTensor *t = lev_conv_model_find (m, name);
    g_assert_nonnull (t);
    gchar *hex = values_sha256 (t);
    if (strcmp (hex, f[3]) != 0)
      g_error ("%s %s (%s): values differ from gguf-py's dequantize", f[0], f[1], f[2]);
    gboolean tq = strcmp (f[2], "TQ1_0") == 0 || strcmp (f[2], "TQ2_0") == 0;
    if (tq && strncmp (f[0], "ternary", 7) == 0)
      g_assert_cmpint (t->type, ==, LEV_SRC_TERNARY);
    n_ternary += tq && t->type != LEV_SRC_F32;
    n_checked++;
    g_free (hex);
    g_free (name);
    g_strfreev (f);
  }
  g_test_message ("%u tensors equal gguf-py's values, %u of them ternary", n_checked, n_ternary);
  g_assert_cmpuint (n_ternary, ==, 35);
  lev_conv_model_free (m);
  g_free (current);
  g_strfreev (lines);
  g_free (sums);
}

/* ---------------------------------------------------------------- logits and greedy ids against llama.cpp */

/* F16 Llama GGUF (q/k permuted by llama.cpp's converter layout): the reference is llama.cpp on the same f16 weights
 * widened to f32 (tests/data/hf/stories260K-llama-f16), since llama.cpp's own F16 path rounds activations to f16. */
static void
test_llama_f16 (void)
{
  LevModel *m = convert_and_load ("gguf/stories260K-f16.gguf", LEV_OUT_AUTO);
  g_assert_cmpstr (lev_model_encoding_name (m), ==, "f16");   /* the file's matrices are F16, kept */
  g_assert_cmpuint (lev_model_hparams (m)->rope_style, ==, LEV_ROPE_INTERLEAVED);
  check_logits (m, "hf/stories260K-llama-f16/expected/logits_tf64.f32", 1e-4);
  check_greedy (m, "hf/stories260K-llama-f16/expected/greedy_n64.json");
  lev_model_free (m);
}

/* BF16 (llama-quantize of an F32 GGUF; norms stay F32): the reference is llama.cpp on llama-quantize's F32 widening
 * of the same file, since llama.cpp's own BF16 path rounds activations to bf16. */
static void
test_llama_bf16 (void)
{
  LevModel *m = convert_and_load ("gguf/stories260K-bf16.gguf", LEV_OUT_AUTO);
  g_assert_cmpstr (lev_model_encoding_name (m), ==, "bf16");  /* the file's matrices are BF16, kept */
  check_logits (m, "gguf/stories260K-bf16.dequantized.logits_tf64.f32", 1e-4);
  check_greedy (m, "gguf/stories260K-bf16.dequantized.greedy_n64.json");
  lev_model_free (m);
}

static void
test_qwen2_f32 (void)
{
  LevModel *m = convert_and_load ("gguf/stories260K-qwen2-f32.gguf", LEV_OUT_AUTO);
  g_assert_cmpuint (lev_model_hparams (m)->arch, ==, LEV_ARCH_QWEN2);
  g_assert_cmpuint (lev_model_hparams (m)->rope_style, ==, LEV_ROPE_HALF);
  check_logits (m, "hf/stories260K-qwen2/expected/logits_tf64.f32", 1e-4);
  check_greedy (m, "hf/stories260K-qwen2/expected/greedy_n64.json");
  lev_model_free (m);
}

/* llama.cpp's bitnet architecture (1bitLLM BitNet b1.58 layout, ternary-valued float weights, sub-norms): the
 * reference is llama.cpp on this GGUF, which computes without activation quantization. */
static void
test_bitnet (void)
{
  LevModel *m = convert_and_load ("gguf/bitnet-tiny-f32.gguf", LEV_OUT_AUTO);
  g_assert_cmpuint (lev_model_hparams (m)->arch, ==, LEV_ARCH_BITNET);
  g_assert_cmpuint (lev_model_hparams (m)->rope_style, ==, LEV_ROPE_HALF);
  check_logits (m, "gguf/bitnet-tiny-f32.logits_tf64.f32", 1e-4);
  check_greedy (m, "gguf/bitnet-tiny-f32.greedy_n64.json");
  lev_model_free (m);
}

/* Q8_0 / Q4_0: the values are kept exactly (as float32); the reference is llama.cpp on llama-quantize's own float32
 * dequantization of the same file (llama.cpp's Q8_0 / Q4_0 kernels quantize the activations to 8 bits). */
static void
test_q8_q4 (void)
{
  static const char *names[] = { "float128-q8_0", "float128-q4_0" };
  for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
    gchar *rel = g_strdup_printf ("gguf/%s.gguf", names[i]);
    gchar *logits = g_strdup_printf ("gguf/%s.dequantized.logits_tf64.f32", names[i]);
    gchar *greedy = g_strdup_printf ("gguf/%s.dequantized.greedy_n64.json", names[i]);
    LevModel *m = convert_and_load (rel, LEV_OUT_AUTO);
    g_assert_cmpstr (lev_model_encoding_name (m), ==, "f32");   /* Q8_0 / Q4_0 values kept as float32 */
    check_logits (m, logits, 1e-4);
    check_greedy (m, greedy);
    lev_model_free (m);
    g_free (rel);
    g_free (logits);
    g_free (greedy);
  }
}

/* TQ1_0 / TQ2_0: written as lossless q8 (auto) and as packed t2 and t1 with the same trits and scale; the reference
 * is llama.cpp on the float32 model these files quantize without loss (gguf-py: identical values). */
static void
test_ternary (void)
{
  static const char *files[] = { "gguf/ternary256-tq1_0.gguf", "gguf/ternary256-tq2_0.gguf" };
  static const LevOutFormat formats[] = { LEV_OUT_AUTO, LEV_OUT_T2, LEV_OUT_T1 };
  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    for (guint k = 0; k < G_N_ELEMENTS (formats); k++) {
      LevModel *m = convert_and_load (files[i], formats[k]);
      static const char *const encodings[] = { "q8", "t2", "t1" };   /* lossless q8 (auto), packed t2, t1 */
      g_assert_cmpstr (lev_model_encoding_name (m), ==, encodings[k]);
      check_logits (m, "gguf/ternary256.logits_tf64.f32", 2e-4);
      check_greedy (m, "gguf/ternary256.greedy_n64.json");
      lev_model_free (m);
    }
}

/* TQ1_0 of a float model (every block its own scale): packed t2 with one scale per 128 weights, the same codes and
 * scales; the reference is llama.cpp on llama-quantize's F32 dequantization of the file. */
static void
test_ternary_block_scales (void)
{
  LevConvModel *cm = import_fixture ("gguf/float256-tq1_0.gguf");
  LevConvTensor *q = lev_conv_model_find (cm, "blk.0.attn_q");
  g_assert_nonnull (q);
  g_assert_cmpint (q->type, ==, LEV_SRC_ENCODED);
  g_assert_cmpuint (q->encoding, ==, LEV_ENC_T2);
  lev_conv_model_free (cm);
  static const LevOutFormat formats[] = { LEV_OUT_AUTO, LEV_OUT_T2 };
  for (guint k = 0; k < G_N_ELEMENTS (formats); k++) {
    LevModel *m = convert_and_load ("gguf/float256-tq1_0.gguf", formats[k]);
    check_logits (m, "gguf/float256-tq1_0.dequantized.logits_tf64.f32", 2e-4);
    check_greedy (m, "gguf/float256-tq1_0.dequantized.greedy_n64.json");
    lev_model_free (m);
  }
}

/* bitnet.cpp's I2_S (bitnet128-i2_s.gguf, made by bitnet.cpp's own llama-quantize from bitnet128-f32.gguf): every
 * matrix is kept as ternary codes with the file's one scale, and every tensor holds exactly the values of the F32
 * file that was quantized (bitnet128-i2_s.values.sha256, written by gguf-py from that F32 file): the same trits and
 * the same scale, no loss. */
static void
check_i2s_values (const char *rel)
{
  gsize len;
  gchar *sums = lev_test_read_fixture ("gguf/bitnet128-i2_s.values.sha256", &len);
  gchar **lines = g_strsplit (sums, "\n", -1);
  LevConvModel *m = import_fixture (rel);
  guint n_checked = 0, n_ternary = 0;
  for (gchar **l = lines; *l; l++) {
    if (**l == '\0')
      continue;
    gchar **f = g_strsplit (*l, " ", -1);
    g_assert_cmpuint (g_strv_length (f), ==, 3);
    gchar *name = lev_name_of (f[0]);
    LevConvTensor *t = lev_conv_model_find (m, name);
    g_assert_nonnull (t);
    gchar *hex = values_sha256 (t);
    if (strcmp (hex, f[2]) != 0)
      g_error ("%s %s (%s): values differ from the F32 model bitnet.cpp quantized", rel, f[0], f[1]);
    if (strcmp (f[1], "I2_S") == 0) {
      g_assert_cmpint (t->type, ==, LEV_SRC_TERNARY);
      g_assert_cmpfloat (t->scale, >, 0.0f);
      n_ternary++;
    }
    n_checked++;
    g_free (hex);
    g_free (name);
    g_strfreev (f);
  }
  g_test_message ("%s: %u tensors equal the F32 source's values, %u of them I2_S kept ternary", rel, n_checked,
                  n_ternary);
  g_assert_cmpuint (n_checked, ==, 24);
  g_assert_cmpuint (n_ternary, ==, 14);
  lev_conv_model_free (m);
  g_strfreev (lines);
  g_free (sums);
}

static void
test_i2s_values (void)
{
  check_i2s_values ("gguf/bitnet128-i2_s.gguf");
}

/* bitnet.cpp's BitNet b1.58 2B4T architecture names (bitnet-b1.58 from its convert-hf-to-gguf-bitnet.py, bitnet-25
 * from the earlier bitnet2b_2501 converter): the same I2_S bytes under those names (written with the fork's gguf-py)
 * read as our BitNet decoder with sub-norms, rotate-half RoPE, relu(gate)^2 * up and tied embeddings, the weights
 * unchanged. Logits and greedy ids, written as lossless q8 (auto) and as packed t2 and t1: the reference is
 * ik_llama.cpp's build_bitnet_158 graph on the F32 model both files hold without loss (its runs under either name
 * are byte-identical; tests/data/gguf/README.md, "ik_llama.cpp and the 2B4T graph"). */
static void
test_bitnet_b158_names (void)
{
  static const char *files[] = { "gguf/bitnet128-b158-i2_s.gguf", "gguf/bitnet128-b25-i2_s.gguf" };
  static const LevOutFormat formats[] = { LEV_OUT_AUTO, LEV_OUT_T2, LEV_OUT_T1 };
  static const char *const encodings[] = { "q8", "t2", "t1" };
  for (guint i = 0; i < G_N_ELEMENTS (files); i++) {
    check_i2s_values (files[i]);
    LevConvModel *cm = import_fixture (files[i]);
    g_assert_cmpuint (cm->hp.arch, ==, LEV_ARCH_BITNET);
    g_assert_cmpuint (cm->hp.activation, ==, LEV_ACT_RELU2);
    g_assert_cmpuint (cm->hp.rope_style, ==, LEV_ROPE_HALF);
    g_assert_true (cm->hp.flags & LEV_HP_SUB_NORMS);
    g_assert_false (cm->hp.flags & LEV_HP_ACT_QUANT);
    g_assert_null (lev_conv_model_find (cm, "output"));
    g_assert_true (cm->hp.flags & LEV_HP_TIED_EMBEDDINGS);
    g_assert_cmpuint (cm->hp.dim, ==, 128);
    g_assert_cmpuint (cm->hp.ffn_dim, ==, 256);
    g_assert_cmpuint (cm->hp.n_kv_heads, ==, 2);
    lev_conv_model_free (cm);
    for (guint k = 0; k < G_N_ELEMENTS (formats); k++) {
      LevModel *m = convert_and_load (files[i], formats[k]);
      g_assert_cmpstr (lev_model_encoding_name (m), ==, encodings[k]);
      g_assert_cmpuint (lev_model_hparams (m)->activation, ==, LEV_ACT_RELU2);
      check_logits (m, "gguf/bitnet128-2b4t.ikllama.logits_tf64.f32", 1e-3);
      check_greedy (m, "gguf/bitnet128-2b4t.ikllama.greedy_n64.json");
      lev_model_free (m);
    }
  }
  /* the bitnet arch of the same weights stays SiLU */
  LevConvModel *cm = import_fixture ("gguf/bitnet128-i2_s.gguf");
  g_assert_cmpuint (cm->hp.activation, ==, LEV_ACT_SILU);
  lev_conv_model_free (cm);
}

/* I2_S logits and greedy ids: written as lossless q8 (auto) and as packed t2 and t1 (the same trits and scale); the
 * reference is bitnet.cpp on the F32 model the I2_S file quantizes without loss (bitnet.cpp's I2_S kernels quantize
 * the activations to 8 bits, so its run on the I2_S file itself is not the reference; README). */
static void
test_i2s_logits (void)
{
  static const LevOutFormat formats[] = { LEV_OUT_AUTO, LEV_OUT_T2, LEV_OUT_T1 };
  static const char *const encodings[] = { "q8", "t2", "t1" };
  for (guint k = 0; k < G_N_ELEMENTS (formats); k++) {
    LevModel *m = convert_and_load ("gguf/bitnet128-i2_s.gguf", formats[k]);
    g_assert_cmpstr (lev_model_encoding_name (m), ==, encodings[k]);
    g_assert_cmpuint (lev_model_hparams (m)->arch, ==, LEV_ARCH_BITNET);
    g_assert_cmpuint (lev_model_hparams (m)->rope_style, ==, LEV_ROPE_HALF);
    check_logits (m, "gguf/bitnet128.bitnetcpp.logits_tf64.f32", 1e-3);
    check_greedy (m, "gguf/bitnet128.bitnetcpp.greedy_n64.json");
    lev_model_free (m);
  }
}

/* ---------------------------------------------------------------- tokenizer */

/* llama.cpp's tokenizer vectors (.inp texts, .out ids) on one of its vocab-only GGUFs (tokenizer from the GGUF
 * metadata alone); the ids were made with HF tokenizer.encode(text, add_special_tokens=False). */
static void
check_vocab_vectors (const char *gguf_rel, const char *inp_rel, const char *out_rel, guint n_tokens)
{
  gchar *path = lev_test_fixture (gguf_rel);
  GError *error = NULL;
  LevConvVocab *v = lev_import_gguf_vocab (path, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (v->pieces->len, ==, n_tokens);
  LevConvVocabFlat *flat = lev_conv_vocab_flatten (v);
  LevTokenizer *tok = lev_tokenizer_new (&flat->view, &error);
  g_assert_no_error (error);
  gchar *inp = lev_test_read_fixture (inp_rel, NULL);
  gchar *out = lev_test_read_fixture (out_rel, NULL);
  gchar **texts = g_strsplit (inp, "\n__ggml_vocab_test__\n", -1);
  gchar **lines = g_strsplit (out, "\n", -1);
  guint n_texts = g_strv_length (texts) - 1;   /* each text is followed by the separator */
  g_assert_cmpuint (g_strv_length (lines), >=, n_texts);
  guint pass = 0;
  for (guint i = 0; i < n_texts; i++) {
    gchar **nums = g_strsplit (lines[i], " ", -1);
    GArray *want = g_array_new (FALSE, FALSE, sizeof (int32_t));
    for (gchar **p = nums; *p; p++)
      if (**p) {
        int32_t x = (int32_t) g_ascii_strtoll (*p, NULL, 10);
        g_array_append_val (want, x);
      }
    size_t n;
    int32_t *ids = lev_tokenizer_encode (tok, texts[i], -1, FALSE, &n, &error);
    g_assert_no_error (error);
    gboolean same = n == want->len && (n == 0 || memcmp (ids, want->data, n * sizeof (int32_t)) == 0);
    if (!same)
      g_test_message ("%s: text %u differs", gguf_rel, i);
    pass += same;
    g_free (ids);
    g_array_unref (want);
    g_strfreev (nums);
  }
  g_test_message ("%s: %u/%u vectors exact", gguf_rel, pass, n_texts);
  g_assert_cmpuint (pass, ==, n_texts);
  g_strfreev (texts);
  g_strfreev (lines);
  g_free (inp);
  g_free (out);
  lev_tokenizer_free (tok);
  lev_conv_vocab_flat_free (flat);
  lev_conv_vocab_free (v);
  g_free (path);
}

/* SentencePiece (tokenizer.ggml.model llama): Llama 2's vocabulary. */
static void
test_vocab_llama_spm (void)
{
  check_vocab_vectors ("tokenizers/llama2/ggml-vocab-llama-spm.gguf",
                       "tokenizers/vectors-llamacpp/ggml-vocab-llama-spm.gguf.inp",
                       "tokenizers/vectors-llamacpp/ggml-vocab-llama-spm.gguf.out", 32000);
}

/* Byte-level BPE (tokenizer.ggml.model gpt2, pre gpt-2): GPT-2's vocabulary and merges. */
static void
test_vocab_gpt2 (void)
{
  check_vocab_vectors ("gguf/ggml-vocab-gpt-2.gguf", "gguf/ggml-vocab-gpt-2.gguf.inp", "gguf/ggml-vocab-gpt-2.gguf.out",
                       50257);
}

/* ---------------------------------------------------------------- corrupt files */

static void
expect_rejected (const guint8 *data, gsize size, const char *what, const char *must_mention)
{
  GError *error = NULL;
  LevConvModel *m = lev_import_gguf_data (data, size, "corrupt.gguf", &error);
  if (m != NULL)
    g_error ("%s: accepted", what);
  g_assert_nonnull (error);
  if (must_mention && strstr (error->message, must_mention) == NULL)
    g_error ("%s: the message \"%s\" does not mention \"%s\"", what, error->message, must_mention);
  g_test_message ("%s: %s", what, error->message);
  g_error_free (error);
}

/* Offset of the first tensor info (after the header and the metadata) of a GGUF, found by walking it here. */
static gsize
first_tensor_info (const guint8 *d, gsize size)
{
  guint64 n_kv;
  memcpy (&n_kv, d + 16, 8);
  gsize pos = 24;
  for (guint64 i = 0; i < n_kv; i++) {
    guint64 klen;
    memcpy (&klen, d + pos, 8);
    pos += 8 + klen;
    guint32 type;
    memcpy (&type, d + pos, 4);
    pos += 4;
    if (type == 8) {
      guint64 l;
      memcpy (&l, d + pos, 8);
      pos += 8 + l;
    } else if (type == 9) {
      guint32 et;
      guint64 n;
      memcpy (&et, d + pos, 4);
      memcpy (&n, d + pos + 4, 8);
      pos += 12;
      for (guint64 k = 0; k < n; k++) {
        if (et == 8) {
          guint64 l;
          memcpy (&l, d + pos, 8);
          pos += 8 + l;
        } else {
          pos += et == 6 || et == 4 || et == 5 ? 4 : et == 10 || et == 11 || et == 12 ? 8 : et <= 1 || et == 7 ? 1 : 2;
        }
      }
    } else {
      pos += type == 6 || type == 4 || type == 5 ? 4 : type == 10 || type == 11 || type == 12 ? 8 : type <= 1 ||
             type == 7 ? 1 : 2;
    }
    g_assert_cmpuint (pos, <, size);
  }
  return pos;
}

/* Truncations, absurd counts, unknown types, bad offsets and alignment: each refused with a message naming it. */
static void
test_corrupt (void)
{
  gsize size;
  guint8 *orig = (guint8 *) lev_test_read_fixture ("gguf/ternary256-tq2_0.gguf", &size);
  guint8 *d = g_memdup2 (orig, size);
  /* truncated anywhere: header, metadata, tensor infos, data */
  static const gsize cuts[] = { 0, 3, 10, 20, 30, 100, 1000, 5000, 20000, 100000 };
  for (guint i = 0; i < G_N_ELEMENTS (cuts); i++)
    expect_rejected (d, cuts[i], "truncated", cuts[i] < 4 ? "magic" : NULL);
  expect_rejected (d, size - 1, "one byte short", "truncated: tensor");
  /* every prefix of the first 4 KiB, without crashing */
  for (gsize n = 0; n < 4096; n += 7) {
    GError *error = NULL;
    LevConvModel *m = lev_import_gguf_data (d, n, "prefix", &error);
    g_assert_null (m);
    g_clear_error (&error);
  }
  memcpy (d, "GGUX", 4);
  expect_rejected (d, size, "bad magic", "magic");
  memcpy (d, orig, size);
  d[4] = 1;
  expect_rejected (d, size, "version 1", "version 1");
  memcpy (d, orig, size);
  d[15] = 0x10;   /* tensor count */
  expect_rejected (d, size, "absurd tensor count", "cannot fit");
  memcpy (d, orig, size);
  /* first tensor info: name, n_dims, ne[], type, offset */
  gsize ti = first_tensor_info (d, size);
  guint64 nlen;
  memcpy (&nlen, d + ti, 8);
  gchar *tname = g_strndup ((const gchar *) d + ti + 8, nlen);
  gsize nd_pos = ti + 8 + nlen;
  guint32 nd;
  memcpy (&nd, d + nd_pos, 4);
  gsize type_pos = nd_pos + 4 + 8 * nd, off_pos = type_pos + 4;
  guint32 bad_type = 12;   /* Q4_K */
  memcpy (d + type_pos, &bad_type, 4);
  expect_rejected (d, size, "unsupported type", tname);
  bad_type = 99;
  memcpy (d + type_pos, &bad_type, 4);
  expect_rejected (d, size, "unknown type", "unknown (99)");
  memcpy (d, orig, size);
  guint64 off;
  memcpy (&off, d + off_pos, 8);
  off += 4;
  memcpy (d + off_pos, &off, 8);
  expect_rejected (d, size, "misaligned offset", "not a multiple of the alignment");
  off = G_MAXUINT64 - 31;
  memcpy (d + off_pos, &off, 8);
  expect_rejected (d, size, "offset past the end", tname);
  memcpy (d, orig, size);
  guint64 huge = G_GUINT64_CONSTANT (1) << 40;
  memcpy (d + nd_pos + 4, &huge, 8);
  expect_rejected (d, size, "absurd dimension", tname);
  memcpy (d, orig, size);
  guint32 five = 5;
  memcpy (d + nd_pos, &five, 4);
  expect_rejected (d, size, "5 dimensions", "dimensions");
  memcpy (d, orig, size);
  huge = G_MAXUINT64;   /* the first metadata key's length */
  memcpy (d + 24, &huge, 8);
  expect_rejected (d, size, "absurd key length", "truncated");
  g_free (tname);
  /* a file named .gguf that is not one: the GGUF reader's message, not another importer's */
  gchar *fake = g_build_filename (tmp_dir, "fake.gguf", NULL);
  g_assert_true (g_file_set_contents (fake, "llama2.c? no", -1, NULL));
  GError *error = NULL;
  g_assert_null (lev_import_any (fake, &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "GGUF"));
  g_assert_nonnull (strstr (error->message, "fake.gguf"));
  g_clear_error (&error);
  g_unlink (fake);
  g_free (fake);
  g_free (d);
  g_free (orig);
}

/* Position of a named tensor's info in a GGUF: its ne[] (*ne_pos), type (*type_pos) and offset (*off_pos); returns the
 * start of the tensor data (alignment 32, the default, which bitnet128-i2_s.gguf uses). */
static gsize
find_tensor_info (const guint8 *d, gsize size, const char *name, gsize *ne_pos, gsize *type_pos, gsize *off_pos)
{
  guint64 n_tensors;
  memcpy (&n_tensors, d + 8, 8);
  gsize pos = first_tensor_info (d, size);
  gboolean found = FALSE;
  for (guint64 i = 0; i < n_tensors; i++) {
    guint64 nlen;
    memcpy (&nlen, d + pos, 8);
    gboolean this = nlen == strlen (name) && memcmp (d + pos + 8, name, nlen) == 0;
    pos += 8 + nlen;
    guint32 nd;
    memcpy (&nd, d + pos, 4);
    if (this) {
      *ne_pos = pos + 4;
      *type_pos = pos + 4 + 8 * nd;
      *off_pos = *type_pos + 4;
      found = TRUE;
    }
    pos += 4 + 8 * nd + 4 + 8;
  }
  g_assert_true (found);
  return (pos + 31) / 32 * 32;
}

/* A corrupt or truncated I2_S tensor is refused with a message naming it: the file cut inside its codes, a code of 3,
 * a scale that is NaN or negative, a row length that is not a whole number of 128-weight blocks. */
static void
test_i2s_corrupt (void)
{
  gsize size;
  guint8 *orig = (guint8 *) lev_test_read_fixture ("gguf/bitnet128-i2_s.gguf", &size);
  guint8 *d = g_memdup2 (orig, size);
  const char *name = "blk.1.ffn_down.weight";   /* I2_S, [256, 128] in ggml order */
  gsize ne_pos = 0, type_pos = 0, off_pos = 0;
  gsize data_start = find_tensor_info (d, size, name, &ne_pos, &type_pos, &off_pos);
  guint32 type;
  memcpy (&type, d + type_pos, 4);
  g_assert_cmpuint (type, ==, 36);
  guint64 off;
  memcpy (&off, d + off_pos, 8);
  const guint64 numel = 256 * 128;
  guint8 *codes = d + data_start + off;
  /* cut in the middle of its codes, and inside its scale */
  expect_rejected (d, data_start + off + numel / 8, "truncated I2_S codes", "truncated: tensor blk.1.ffn_down.weight "
                   "(I2_S (bitnet.cpp), 8224 bytes");
  expect_rejected (d, data_start + off + numel / 4 + 2, "truncated I2_S scale", "truncated: tensor "
                   "blk.1.ffn_down.weight");
  codes[100] |= 0xc0;   /* byte 4 of block 3, top bits: weight 3 * 128 + 4 */
  expect_rejected (d, size, "I2_S code 3", "tensor blk.1.ffn_down.weight (I2_S) holds the code 3 at weight 388");
  memcpy (d, orig, size);
  float bad = NAN;
  memcpy (codes + numel / 4, &bad, 4);
  expect_rejected (d, size, "I2_S scale NaN", "tensor blk.1.ffn_down.weight (I2_S) has the scale nan");
  bad = -0.5f;
  memcpy (codes + numel / 4, &bad, 4);
  expect_rejected (d, size, "I2_S scale negative", name);
  memcpy (d, orig, size);
  guint64 ne[2] = { 64, 512 };   /* the same number of weights in rows of 64 */
  memcpy (d + ne_pos, ne, 16);
  expect_rejected (d, size, "I2_S row of 64", "tensor blk.1.ffn_down.weight: its row length 64 is not a multiple of "
                   "the I2_S (bitnet.cpp) block size 128");
  g_free (d);
  g_free (orig);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tmp_dir = g_dir_make_tmp ("lev-gguf-XXXXXX", NULL);
  g_assert_nonnull (tmp_dir);
  g_test_add_func ("/gguf/values-equal-gguf-py", test_values_equal_gguf_py);
  g_test_add_func ("/gguf/llama-f16", test_llama_f16);
  g_test_add_func ("/gguf/llama-bf16", test_llama_bf16);
  g_test_add_func ("/gguf/qwen2-f32", test_qwen2_f32);
  g_test_add_func ("/gguf/bitnet", test_bitnet);
  g_test_add_func ("/gguf/q8_0-q4_0", test_q8_q4);
  g_test_add_func ("/gguf/tq1_0-tq2_0", test_ternary);
  g_test_add_func ("/gguf/tq1_0-block-scales", test_ternary_block_scales);
  g_test_add_func ("/gguf/i2_s-values", test_i2s_values);
  g_test_add_func ("/gguf/i2_s-logits", test_i2s_logits);
  g_test_add_func ("/gguf/i2_s-corrupt", test_i2s_corrupt);
  g_test_add_func ("/gguf/bitnet-b1.58-names", test_bitnet_b158_names);
  g_test_add_func ("/gguf/vocab-llama-spm", test_vocab_llama_spm);
  g_test_add_func ("/gguf/vocab-gpt2", test_vocab_gpt2);
  g_test_add_func ("/gguf/corrupt", test_corrupt);
  int rc = g_test_run ();
  g_rmdir (tmp_dir);
  g_free (tmp_dir);
  return rc;
}
