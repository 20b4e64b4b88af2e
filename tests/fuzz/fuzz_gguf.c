/* fuzz_gguf.c: libFuzzer target: a GGUF file through lev_import_gguf_data; what imports is validated, written with
 * the converter's writer and must load again; its tokenizer is built and used. */
#include "fuzz_common.h"
#include "lev_convert.h"
#include "lev_import_gguf.h"
#include "leviathan.h"

/* Nothing to prepare. */
int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  return 0;
}

/* Builds the tokenizer of an imported vocabulary (it may refuse) and encodes and decodes a string with it. */
static void
exercise_vocab (const LevConvVocab *v)
{
  LevConvVocabFlat *flat = lev_conv_vocab_flatten (v);
  GError *error = NULL;
  LevTokenizer *tok = lev_tokenizer_new (&flat->view, &error);
  if (tok != NULL) {
    size_t n_ids = 0;
    int32_t *ids = lev_tokenizer_encode (tok, "Hello world, \xe4\xbd\xa0\xe5\xa5\xbd 123", -1, TRUE, &n_ids, &error);
    if (ids != NULL) {
      for (size_t i = 0; i < n_ids; i++)
        FUZZ_CHECK (ids[i] >= 0 && (uint32_t) ids[i] < lev_tokenizer_n_tokens (tok), "id %d out of range", ids[i]);
      g_free (lev_tokenizer_decode (tok, ids, n_ids));
      g_free (ids);
    }
    g_clear_error (&error);
    lev_tokenizer_free (tok);
  } else {
    g_clear_error (&error);
  }
  lev_conv_vocab_flat_free (flat);
}

/* The input is one GGUF file (read from memory, as lev_import_gguf reads its mapping). */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  GError *error = NULL;
  LevConvModel *m = lev_import_gguf_data (data, size, "fuzz.gguf", &error);
  if (m == NULL) {
    FUZZ_CHECK (error != NULL && error->message[0] != '\0', "refused without a message");
    g_error_free (error);
    return 0;
  }
  if (m->vocab != NULL)
    exercise_vocab (m->vocab);
  if (lev_conv_model_validate (m, &error) && (m->vocab == NULL || m->vocab->pieces->len <= m->hp.vocab_size)) {
    gchar *out = g_build_filename (fuzz_dir (), "out.leviathan", NULL);
    if (lev_write_model (m, out, LEV_OUT_AUTO, FALSE, &error)) {
      LevModel *lm = lev_model_load (out, &error);
      FUZZ_CHECK (lm != NULL, "the writer's file does not load: %s", error->message);
      lev_model_free (lm);
    } else {
      g_clear_error (&error);
    }
    g_free (out);
    fuzz_clear_dir (fuzz_dir ());
  } else {
    g_clear_error (&error);
  }
  lev_conv_model_free (m);
  return 0;
}
