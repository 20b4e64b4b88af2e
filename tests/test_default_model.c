/* test_default_model.c: the bundled default model, run by the C engine, reproduces the token ids and logits that
 * the training tool's own PyTorch forward of the exported checkpoint produced (models/default-reference.json).
 * Without activation quantization the two float32 passes agree to ~1e-5 and must agree to 1e-3 everywhere. With it
 * (the model as trained), a value within float rounding of a .5 boundary of the int8 grid may round the other way
 * in one implementation; from there on that sequence's logits move by up to ~0.06 (measured: 13 of 89 rows, all
 * after one such flip). So there the greedy ids must be identical, at least 75% of the rows within 1e-3 and every
 * row within 0.1. */
#include "leviathan-ext.h"
#include "lev_test_logits.h"

#include <json-glib/json-glib.h>

static gchar *
models_path (const char *name)
{
  const char *dir = g_getenv ("LEV_MODELS_DIR");
  return g_build_filename (dir ? dir : "models", name, NULL);
}

static void
check_against_pytorch (uint32_t act_quant, const char *logits_name, double tol, double min_share_1e3)
{
  gchar *model_path = models_path ("default.leviathan");
  gchar *ref_path = models_path ("default-reference.json");
  gchar *logits_path = models_path (logits_name);
  GError *error = NULL;
  LevModel *m = lev_model_load (model_path, &error);
  g_assert_no_error (error);
  const LevHParams *hp = lev_model_hparams (m);
  g_assert_cmpuint (hp->arch, ==, LEV_ARCH_BITNET);
  g_assert_true (hp->flags & LEV_HP_ACT_QUANT);
  const LevTokenizer *tok = lev_model_tokenizer (m);
  g_assert_nonnull (tok);

  JsonParser *parser = json_parser_new ();
  g_assert_true (json_parser_load_from_file (parser, ref_path, &error));
  JsonArray *cases = json_object_get_array_member (json_node_get_object (json_parser_get_root (parser)), "cases");
  gchar *ref = NULL;
  gsize ref_len = 0;
  g_assert_true (g_file_get_contents (logits_path, &ref, &ref_len, &error));
  const float *ref_rows = (const float *) ref;
  gsize row = 0, n_rows = ref_len / (sizeof (float) * hp->vocab_size);

  LevContextParams cp = lev_context_default_params ();
  cp.n_threads = 2;
  cp.act_quant = act_quant;
  LevContext *ctx = lev_context_new (m, &cp, &error);
  g_assert_no_error (error);
  double worst = 0.0;
  guint close_rows = 0;
  for (guint c = 0; c < json_array_get_length (cases); c++) {
    JsonObject *o = json_array_get_object_element (cases, c);
    const char *prompt = json_object_get_string_member (o, "prompt");
    GArray *prompt_ids = lev_test_json_id_array (json_object_get_array_member (o, "prompt_tokens"));
    GArray *tokens = lev_test_json_id_array (json_object_get_array_member (o, "tokens"));
    /* our tokenizer against SentencePiece's (the training tool encoded with the sentencepiece library) */
    size_t n = 0;
    gint32 *enc = lev_tokenizer_encode (tok, prompt, -1, TRUE, &n, &error);
    g_assert_no_error (error);
    g_assert_cmpmem (enc, n * sizeof (gint32), prompt_ids->data, prompt_ids->len * sizeof (gint32));
    g_free (enc);
    /* teacher-forced logits and greedy continuation */
    lev_context_reset (ctx);
    guint agree = 0;
    for (guint p = 0; p < tokens->len; p++) {
      const float *logits = lev_context_eval (ctx, g_array_index (tokens, gint32, p), &error);
      g_assert_no_error (error);
      g_assert_cmpuint (row, <, n_rows);
      double d = lev_test_max_abs_diff (logits, ref_rows + row * hp->vocab_size, hp->vocab_size);
      worst = MAX (worst, d);
      close_rows += d <= 1e-3;
      row++;
      if (p + 1 >= prompt_ids->len && p + 1 < tokens->len) {
        agree += lev_test_argmax (logits, hp->vocab_size) == g_array_index (tokens, gint32, p + 1);
      }
    }
    guint n_gen = tokens->len - prompt_ids->len;
    g_test_message ("\"%s\": %u/%u greedy tokens as PyTorch's", prompt, agree, n_gen);
    if (act_quant != LEV_ACT_QUANT_OFF)
      g_assert_cmpuint (agree, ==, n_gen);
    g_array_free (prompt_ids, TRUE);
    g_array_free (tokens, TRUE);
  }
  g_test_message ("%s: max |logit - PyTorch| = %.3g over %zu positions (tolerance %g), %u rows within 1e-3",
                  logits_name, worst, row, tol, close_rows);
  g_assert_cmpuint (row, ==, n_rows);
  g_assert_cmpfloat (worst, <=, tol);
  g_assert_cmpfloat ((double) close_rows, >=, min_share_1e3 * (double) n_rows);
  lev_context_free (ctx);
  g_free (ref);
  g_object_unref (parser);
  lev_model_free (m);
  g_free (model_path);
  g_free (ref_path);
  g_free (logits_path);
}

static void
test_float_activations (void)
{
  check_against_pytorch (LEV_ACT_QUANT_OFF, "default-reference.json.noact.f32", 1e-3, 1.0);
}

static void
test_int8_activations (void)
{
  check_against_pytorch (LEV_ACT_QUANT_AUTO, "default-reference.json.f32", 0.1, 0.75);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/default-model/float-activations", test_float_activations);
  g_test_add_func ("/default-model/int8-activations", test_int8_activations);
  return g_test_run ();
}
