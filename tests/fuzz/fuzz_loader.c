/* fuzz_loader.c: libFuzzer target: lev_model_load on arbitrary bytes; what loads is used (tokenizer, a few tokens). */
#include "fuzz_common.h"
#include "leviathan-ext.h"

/* Nothing to prepare. */
int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  return 0;
}

/* Uses a model that loaded: every accessor, the tokenizer both ways and, when small, two evaluated tokens. */
static void
exercise (LevModel *m)
{
  const LevHParams *hp = lev_model_hparams (m);
  FUZZ_CHECK (hp != NULL, "no hparams");
  (void) lev_arch_name (hp->arch);
  FUZZ_CHECK (lev_model_name (m) != NULL, "no name");
  const char *tmpl = lev_model_chat_template (m);
  if (tmpl != NULL)
    (void) strlen (tmpl);
  const LevTokenizer *tok = lev_model_tokenizer (m);
  if (tok != NULL) {
    uint32_t n = lev_tokenizer_n_tokens (tok);
    size_t n_ids = 0;
    GError *error = NULL;
    int32_t *ids = lev_tokenizer_encode (tok, "Once upon a time, \xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80 42", -1, TRUE,
                                         &n_ids, &error);
    if (ids != NULL) {
      for (size_t i = 0; i < n_ids; i++)
        FUZZ_CHECK (ids[i] >= 0 && (uint32_t) ids[i] < n, "id %d out of range (%u tokens)", ids[i], n);
      g_free (lev_tokenizer_decode (tok, ids, n_ids));
      g_free (ids);
    } else {
      g_clear_error (&error);
    }
    for (uint32_t i = 0; i < n && i < 64; i++) {
      size_t len = 0;
      FUZZ_CHECK (lev_tokenizer_piece (tok, (int32_t) i, &len) != NULL, "piece %u missing", i);
    }
  }
  if (!lev_model_has_weights (m))
    return;
  /* a forward pass on what the loader accepted, bounded in size so that an input stays fast */
  if ((uint64_t) hp->dim * hp->n_layers * (hp->ffn_dim + hp->dim) > (1u << 22) || hp->vocab_size > (1u << 16))
    return;
  LevContextParams cp = lev_context_default_params ();
  cp.n_ctx = 4;
  cp.n_sink = 1;
  cp.n_threads = 1;
  GError *error = NULL;
  LevContext *ctx = lev_context_new (m, &cp, &error);
  if (ctx == NULL) {
    g_clear_error (&error);
    return;
  }
  for (int32_t t = 0; t < 2; t++) {
    const float *logits = lev_context_eval (ctx, t % (int32_t) hp->vocab_size, &error);
    if (logits == NULL && g_error_matches (error, LEV_ERROR, LEV_ERROR_NUMERIC)) {
      /* weights that are not finite numbers: the loader does not scan them unless asked (LEV_MODEL_CHECK_TENSORS);
       * the evaluation refuses the logits they give, with a message, and the context is reset before reuse */
      FUZZ_CHECK (error->message[0] != '\0', "a numeric refusal without a message");
      g_clear_error (&error);
      lev_context_reset (ctx);
      break;
    }
    FUZZ_CHECK (logits != NULL, "eval refused a valid token: %s", error ? error->message : "?");
  }
  FUZZ_CHECK (lev_context_eval (ctx, (int32_t) hp->vocab_size, &error) == NULL, "out-of-range token accepted");
  g_clear_error (&error);
  lev_context_free (ctx);
}

/* Writes the input to a file and loads it; a refusal must come with a message. */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  gchar *path = fuzz_write ("model.leviathan", data, size);
  GError *error = NULL;
  LevModel *m = lev_model_load (path, &error);
  if (m == NULL) {
    FUZZ_CHECK (error != NULL && error->message[0] != '\0', "refused without a message");
    g_error_free (error);
  } else {
    FUZZ_CHECK (error == NULL, "loaded with an error set");
    exercise (m);
    lev_model_free (m);
  }
  g_unlink (path);
  g_free (path);
  return 0;
}
