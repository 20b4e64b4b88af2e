/* fuzz_tokenize.c: libFuzzer target: encode and decode arbitrary bytes with the Llama 2 (SentencePiece) and
 * Llama 3 (byte-level BPE) tokenizers of tests/data, loaded once. */
#include "fuzz_common.h"
#include "lev_convert.h"
#include "leviathan.h"

typedef struct {
  LevConvVocab *vocab;
  LevConvVocabFlat *flat;
  LevTokenizer *tok;
} FuzzTok;

static FuzzTok toks[2];   /* 0: Llama 2 tokenizer.model, 1: Llama 3 tokenizer.json */

/* Imports a fixture tokenizer and builds a tokenizer over it; aborts if it cannot. */
static void
load (FuzzTok *t, const char *rel)
{
  gchar *path = fuzz_fixture (rel);
  GError *error = NULL;
  t->vocab = lev_import_vocab (path, &error);
  FUZZ_CHECK (t->vocab != NULL, "%s: %s", path, error->message);
  t->flat = lev_conv_vocab_flatten (t->vocab);
  t->tok = lev_tokenizer_new (&t->flat->view, &error);
  FUZZ_CHECK (t->tok != NULL, "%s: %s", path, error->message);
  g_free (path);
}

/* Frees the tokenizers at exit (so that LeakSanitizer sees a clean process). */
static void
unload (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (toks); i++) {
    lev_tokenizer_free (toks[i].tok);
    lev_conv_vocab_flat_free (toks[i].flat);
    lev_conv_vocab_free (toks[i].vocab);
  }
}

/* Loads both tokenizers once. */
int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  load (&toks[0], "tokenizers/llama2/tokenizer.model");
  load (&toks[1], "tokenizers/llama3/tokenizer.json");
  atexit (unload);
  return 0;
}

/* The first byte picks the tokenizer (bit 0), BOS (bit 1), plain or special-token encoding (bit 2) and whether the
 * rest is text to encode or little-endian int32 ids to decode (bit 3). Encoded ids must be in range; with the
 * byte-level tokenizer valid UTF-8 must decode back to itself; decoding never reads outside the vocabulary. */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size == 0)
    return 0;
  if (toks[0].tok == NULL)
    LLVMFuzzerInitialize (NULL, NULL);
  const uint8_t mode = data[0];
  const LevTokenizer *tok = toks[mode & 1].tok;
  const gboolean bos = (mode & 2) != 0, special = (mode & 4) != 0;
  const char *text = (const char *) data + 1;
  const gssize len = (gssize) size - 1;
  const uint32_t n = lev_tokenizer_n_tokens (tok);
  if (mode & 8) {
    size_t n_ids = (size_t) len / 4;
    int32_t *ids = g_new (int32_t, n_ids + 1);
    memcpy (ids, text, n_ids * 4);
    g_free (lev_tokenizer_decode (tok, ids, n_ids));
    GString *s = g_string_new (NULL);
    for (size_t i = 0; i < n_ids; i++)
      lev_tokenizer_decode_token (tok, i ? ids[i - 1] : -1, ids[i], s);
    g_string_free (s, TRUE);
    g_free (ids);
    return 0;
  }
  size_t n_ids = 0;
  GError *error = NULL;
  int32_t *ids = special ? lev_tokenizer_encode_special (tok, text, len, bos, &n_ids, &error)
                         : lev_tokenizer_encode (tok, text, len, bos, &n_ids, &error);
  const gboolean valid = g_utf8_validate_len (text, (gsize) len, NULL);
  if (ids == NULL) {
    FUZZ_CHECK (error != NULL, "encode failed without an error");
    FUZZ_CHECK (!valid, "valid UTF-8 refused: %s", error->message);
    g_error_free (error);
    return 0;
  }
  for (size_t i = 0; i < n_ids; i++)
    FUZZ_CHECK (ids[i] >= 0 && (uint32_t) ids[i] < n, "id %d out of range", ids[i]);
  char *back = lev_tokenizer_decode (tok, ids, n_ids);
  if ((mode & 1) && !bos && valid && memchr (text, '\0', (size_t) len) == NULL) {
    FUZZ_CHECK (strlen (back) == (size_t) len && memcmp (back, text, (size_t) len) == 0,
                "byte-level round trip differs: %zu bytes in, %zu out", (size_t) len, strlen (back));
  }
  g_free (back);
  g_free (ids);
  return 0;
}
