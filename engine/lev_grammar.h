/* lev_grammar.h: structured output: a GBNF-style grammar (or a JSON Schema compiled into one) parsed into rules,
 * a byte-level parser state over it, and the token mask that keeps sampling inside the grammar. */
#pragma once

#include <glib.h>
#include <stdint.h>
#include "lev_tokenizer.h"

G_BEGIN_DECLS

/* A compiled grammar: immutable, shareable between threads. */
typedef struct LevGrammar LevGrammar;
/* A grammar applied to one tokenizer's vocabulary: parser state, token trie and a cache of masks. One thread. */
typedef struct LevGrammarMatcher LevGrammarMatcher;

/* How the first bytes of a token are read when the mask is computed (as the session writes them out). */
typedef enum {
  LEV_GRAMMAR_BYTES_MID = 0,     /* the token's bytes as decoded inside a text */
  LEV_GRAMMAR_BYTES_START = 1,   /* at the start of a text (after BOS: the dummy-prefix space dropped) */
  LEV_GRAMMAR_BYTES_LEAD = 2,    /* leading spaces and newlines dropped (a chat answer's turn formatting); a token
                                  * of nothing else is refused */
} LevGrammarBytes;

/* Compiles a grammar given as a JSON Schema (text starting with '{') or in the GBNF notation (docs/element.md,
 * "Structured output"); NULL with error set (LEV_ERROR_ARGUMENT, message naming the problem and where). */
LevGrammar *lev_grammar_compile (const char *text, GError **error);
/* Compiles a grammar in the GBNF notation (start rule "root"); NULL with error set. */
LevGrammar *lev_grammar_new_gbnf (const char *gbnf, GError **error);
/* Translates a JSON Schema (the subset in docs/element.md) into GBNF text (newly allocated); NULL with error set. */
char *lev_json_schema_to_gbnf (const char *schema, GError **error);
/* Frees a grammar. */
void lev_grammar_free (LevGrammar *grammar);

/* Makes a matcher of grammar (which must outlive it) for tok's vocabulary of n_vocab logits, at the grammar's start. */
LevGrammarMatcher *lev_grammar_matcher_new (const LevGrammar *grammar, const LevTokenizer *tok, uint32_t n_vocab);
/* Frees a matcher. */
void lev_grammar_matcher_free (LevGrammarMatcher *matcher);
/* Returns to the grammar's start (the mask cache is kept). */
void lev_grammar_matcher_reset (LevGrammarMatcher *matcher);
/* Returns n_vocab flags, 1 where the token's bytes (read as mode says) keep the text inside the grammar; tokens
 * that decode to no bytes (control tokens) are 0. Owned by the matcher, valid until its next call. */
const uint8_t *lev_grammar_matcher_mask (LevGrammarMatcher *matcher, LevGrammarBytes mode);
/* Advances the parser over n bytes of output; FALSE (state unchanged) when they leave the grammar. */
gboolean lev_grammar_matcher_accept (LevGrammarMatcher *matcher, const char *bytes, size_t n);
/* Returns whether the text so far is a complete sentence of the grammar. */
gboolean lev_grammar_matcher_is_complete (const LevGrammarMatcher *matcher);
/* Returns whether the text is complete and nothing may follow it (the response must end here). */
gboolean lev_grammar_matcher_is_finished (const LevGrammarMatcher *matcher);

G_END_DECLS
