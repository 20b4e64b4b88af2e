/* fuzz_vocab.c: libFuzzer target: tokenizer files (tokenizer.json, tokenizer.model, tokenizer.bin) through
 * lev_import_vocab; what imports is flattened, turned into a tokenizer and used both ways. */
#include "fuzz_common.h"
#include "lev_convert.h"
#include "leviathan.h"

/* Nothing to prepare. */
int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  return 0;
}

/* Encodes and decodes a few strings with a tokenizer the importer accepted. */
static void
exercise (const LevTokenizer *tok)
{
  static const char *const texts[] = { "Hello world", " leading and  double spaces\n\ttabs", "",
                                       "\xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x91\x8b 1234567 <s></s><|endoftext|>" };
  uint32_t n = lev_tokenizer_n_tokens (tok);
  for (gsize t = 0; t < G_N_ELEMENTS (texts); t++) {
    for (int special = 0; special < 2; special++) {
      size_t n_ids = 0;
      GError *error = NULL;
      int32_t *ids = special ? lev_tokenizer_encode_special (tok, texts[t], -1, TRUE, &n_ids, &error)
                             : lev_tokenizer_encode (tok, texts[t], -1, TRUE, &n_ids, &error);
      if (ids == NULL) {
        FUZZ_CHECK (error != NULL, "encode failed without an error");
        g_error_free (error);
        continue;
      }
      for (size_t i = 0; i < n_ids; i++)
        FUZZ_CHECK (ids[i] >= 0 && (uint32_t) ids[i] < n, "id %d out of range (%u tokens)", ids[i], n);
      g_free (lev_tokenizer_decode (tok, ids, n_ids));
      g_free (ids);
    }
  }
  for (int32_t id = -1; id <= (int32_t) n && id < 300; id++) {
    GString *s = g_string_new (NULL);
    lev_tokenizer_decode_token (tok, id - 1, id, s);
    g_string_free (s, TRUE);
  }
}

/* Writes the input to a file, imports it by content and uses what imports. */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  gchar *path = fuzz_write ("tokenizer", data, size);
  GError *error = NULL;
  LevConvVocab *v = lev_import_vocab (path, &error);
  if (v == NULL) {
    FUZZ_CHECK (error != NULL && error->message[0] != '\0', "refused without a message");
    g_error_free (error);
  } else {
    LevConvVocabFlat *flat = lev_conv_vocab_flatten (v);
    LevTokenizer *tok = lev_tokenizer_new (&flat->view, &error);
    if (tok != NULL) {
      exercise (tok);
      lev_tokenizer_free (tok);
    } else {
      g_clear_error (&error);
    }
    lev_conv_vocab_flat_free (flat);
    lev_conv_vocab_free (v);
  }
  g_unlink (path);
  g_free (path);
  return 0;
}
