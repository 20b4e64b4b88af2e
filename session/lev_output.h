/* lev_output.h: turns generated tokens into valid UTF-8 units (token, word, sentence, response) and stop strings. */
#pragma once

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

/* How generated text is grouped into output units. */
typedef enum {
  LEV_UNIT_TOKEN = 0,    /* one unit per token (bytes of an incomplete UTF-8 character wait for the next token) */
  LEV_UNIT_WORD = 1,     /* a word with the whitespace before it */
  LEV_UNIT_SENTENCE = 2, /* up to and including . ! ? followed by whitespace, or a newline */
  LEV_UNIT_RESPONSE = 3, /* the whole response */
} LevUnitMode;

typedef struct LevOutput LevOutput;

/* Creates a splitter; stop_strings (NULL-terminated, may be NULL) end the response where they first occur. */
LevOutput *lev_output_new (LevUnitMode mode, const char *const *stop_strings);
/* Frees a splitter. */
void lev_output_free (LevOutput *out);
/* Starts a new response: forgets text, ids and units of the previous one. */
void lev_output_reset (LevOutput *out);
/* Adds the decoded bytes of token id; returns TRUE when a stop string is now complete (the text from its start
 * on is dropped and the response is finished: push nothing more until the next reset). */
gboolean lev_output_push (LevOutput *out, int32_t id, const char *bytes, gsize len);
/* Ends the response: releases what was held back (an incomplete UTF-8 character becomes U+FFFD). */
void lev_output_finish (LevOutput *out);
/* Takes the next complete unit: its text (valid UTF-8, replacing text's contents) and its token ids (appended
 * to ids, gint32, may be NULL). Returns FALSE when no unit is ready. */
gboolean lev_output_pop (LevOutput *out, GString *text, GArray *ids);
/* Returns the text of the response so far that was already released as units or is ready to be; in token, word
 * and sentence modes the text of units already released is dropped once it exceeds 4 KiB (bounded memory for
 * endless responses), so this is then the text from a later unit boundary on. */
const char *lev_output_text (const LevOutput *out, gsize *len);

G_END_DECLS
