/* fuzz_tokenizer.h: one tokenizer of tests/data loaded for a fuzz target's whole run and freed at exit. */
#pragma once

#include "fuzz_common.h"
#include "lev_convert.h"
#include "leviathan.h"

static LevConvVocab *fuzz_vocab;
static LevConvVocabFlat *fuzz_flat;
static LevTokenizer *fuzz_tok;

/* Frees the tokenizer at exit (so that LeakSanitizer sees a clean process). */
static void
fuzz_tokenizer_unload (void)
{
  lev_tokenizer_free (fuzz_tok);
  lev_conv_vocab_flat_free (fuzz_flat);
  lev_conv_vocab_free (fuzz_vocab);
}

/* Loads the tokenizer file relpath of the fixtures (the process exits when it cannot) and returns it. */
static LevTokenizer *
fuzz_tokenizer_load (const char *relpath)
{
  gchar *path = fuzz_fixture (relpath);
  GError *error = NULL;
  fuzz_vocab = lev_import_vocab (path, &error);
  FUZZ_CHECK (fuzz_vocab != NULL, "%s: %s", path, error->message);
  fuzz_flat = lev_conv_vocab_flatten (fuzz_vocab);
  fuzz_tok = lev_tokenizer_new (&fuzz_flat->view, &error);
  FUZZ_CHECK (fuzz_tok != NULL, "%s: %s", path, error->message);
  g_free (path);
  atexit (fuzz_tokenizer_unload);
  return fuzz_tok;
}
