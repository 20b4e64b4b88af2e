/* fuzz_grammar.c: libFuzzer target: grammars (GBNF or JSON Schema) compiled from arbitrary text, text fed to their
 * parser, and the token mask of the Llama 2 tokenizer of tests/data checked against the parser token by token. */
#include "fuzz_tokenizer.h"
#include "lev_convert.h"
#include "lev_grammar.h"
#include "leviathan.h"

static LevTokenizer *tok;

/* Loads the tokenizer once. */
int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  tok = fuzz_tokenizer_load ("tokenizers/llama2/tokenizer.model");
  return 0;
}

/* The input is the grammar, a NUL, then text. What compiles: the text is fed byte by byte (a finished text is
 * complete; the parser refuses nothing it said it would take), and the mask after the longest accepted prefix
 * agrees with the parser on the first allowed and refused tokens. */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (tok == NULL)
    LLVMFuzzerInitialize (NULL, NULL);
  gchar *copy = g_malloc (size + 1);
  if (size)
    memcpy (copy, data, size);
  copy[size] = '\0';
  size_t glen = strlen (copy);
  const char *text = glen < size ? copy + glen + 1 : "";
  size_t tlen = glen < size ? size - glen - 1 : 0;
  GError *error = NULL;
  LevGrammar *g = lev_grammar_compile (copy, &error);
  FUZZ_CHECK ((g == NULL) == (error != NULL), "a result and an error");
  if (!g) {
    FUZZ_CHECK (g_error_matches (error, LEV_ERROR, LEV_ERROR_ARGUMENT) && error->message[0], "error %s",
                error->message);
    g_error_free (error);
    g_free (copy);
    return 0;
  }
  uint32_t nv = lev_tokenizer_n_tokens (tok);
  LevGrammarMatcher *m = lev_grammar_matcher_new (g, tok, nv), *check = lev_grammar_matcher_new (g, tok, nv);
  size_t fed = 0;
  while (fed < tlen && lev_grammar_matcher_accept (m, text + fed, 1))
    fed++;
  FUZZ_CHECK (!lev_grammar_matcher_is_finished (m) || lev_grammar_matcher_is_complete (m), "finished, not complete");
  const uint8_t *mask = lev_grammar_matcher_mask (m, LEV_GRAMMAR_BYTES_MID);
  int32_t prev = lev_tokenizer_find_piece (tok, "a", 1);
  GString *piece = g_string_new (NULL);
  guint n_allowed = 0, n_refused = 0;
  for (uint32_t id = 0; id < nv && (n_allowed < 16 || n_refused < 16); id++) {
    g_string_truncate (piece, 0);
    lev_tokenizer_decode_token (tok, prev, (int32_t) id, piece);
    if (piece->len == 0) {
      FUZZ_CHECK (!mask[id], "token %u of no bytes allowed", id);
      continue;
    }
    if ((mask[id] && n_allowed >= 16) || (!mask[id] && n_refused >= 16))
      continue;
    n_allowed += mask[id];
    n_refused += !mask[id];
    lev_grammar_matcher_reset (check);
    FUZZ_CHECK (lev_grammar_matcher_accept (check, text, fed), "the prefix no longer accepted");
    gboolean ok = lev_grammar_matcher_accept (check, piece->str, piece->len);
    FUZZ_CHECK (ok == (mask[id] != 0), "token %u: mask %d, parser %d", id, mask[id], ok);
  }
  g_string_free (piece, TRUE);
  lev_grammar_matcher_free (check);
  lev_grammar_matcher_free (m);
  lev_grammar_free (g);
  g_free (copy);
  return 0;
}
