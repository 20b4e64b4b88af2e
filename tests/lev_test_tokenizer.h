/* lev_test_tokenizer.h: a fixture vocabulary with its flattened arrays and a tokenizer over them, and encoding that
 * fails the test on error, shared by the tokenizer tests (test_tokenizer, test_bpe). */
#pragma once

#include <glib.h>

#include "lev_convert.h"
#include "lev_tokenizer.h"
#include "lev_test_common.h"

/* A vocabulary with its flattened arrays and a tokenizer over them; import_s and build_s: how long the import and
 * the tokenizer's tables took, where a test timed them (0 otherwise). */
typedef struct {
  LevConvVocab *vocab;
  LevConvVocabFlat *flat;
  LevTokenizer *tok;
  double import_s, build_s;
} LevTestTok;

/* Frees the tokenizer, the flattened arrays and the vocabulary (t may be NULL). */
static inline void
lev_test_tok_free (LevTestTok *t)
{
  if (t == NULL)
    return;
  lev_tokenizer_free (t->tok);
  lev_conv_vocab_flat_free (t->flat);
  lev_conv_vocab_free (t->vocab);
  g_free (t);
}

/* Takes vocab, flattens it and builds a tokenizer over it; fails the test when it cannot. */
static inline LevTestTok *
lev_test_tok_from_vocab (LevConvVocab *vocab)
{
  LevTestTok *t = g_new0 (LevTestTok, 1);
  GError *error = NULL;
  t->vocab = vocab;
  t->flat = lev_conv_vocab_flatten (vocab);
  g_assert_nonnull (t->flat);
  t->tok = lev_tokenizer_new (&t->flat->view, &error);
  g_assert_no_error (error);
  g_assert_nonnull (t->tok);
  return t;
}

/* Imports the vocabulary of a fixture tokenizer file (tokenizer.json, .model or .bin, detected by content); fails
 * the test when it cannot (skips it when the fixture is missing, as lev_test_fixture). */
static inline LevConvVocab *
lev_test_import_vocab (const char *relpath)
{
  gchar *path = lev_test_fixture (relpath);
  GError *error = NULL;
  LevConvVocab *v = lev_import_vocab (path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (v);
  g_free (path);
  return v;
}

/* Encodes text (n bytes, -1: up to its NUL) and fails the test on error; g_free the ids. */
static inline int32_t *
lev_test_encode (const LevTokenizer *tok, const char *text, gssize n, gboolean bos, size_t *n_ids)
{
  GError *error = NULL;
  int32_t *ids = lev_tokenizer_encode (tok, text, n, bos, n_ids, &error);
  g_assert_no_error (error);
  g_assert_nonnull (ids);
  return ids;
}
