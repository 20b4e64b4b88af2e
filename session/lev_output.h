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
  LEV_UNIT_RESPONSE = 3, /* the whole response (a longer one than LEV_OUTPUT_MAX_RESPONSE_BYTES in several) */
} LevUnitMode;

typedef struct LevOutput LevOutput;

/* A word or sentence unit holds at most this many bytes: text with no boundary for that long (CJK text without
 * spaces, code, a loop) goes out as it is, cut at a character boundary (bounded memory, linear time). */
#define LEV_OUTPUT_MAX_UNIT_BYTES 65536
/* A response unit holds at most this many bytes; a longer response comes out in several units. */
#define LEV_OUTPUT_MAX_RESPONSE_BYTES (1u << 20)

/* Returns the most bytes one unit of mode holds before pending text is released as it is (token units: one token). */
gsize lev_output_max_unit_bytes (LevUnitMode mode);

/* Creates a splitter; stop_strings (NULL-terminated, may be NULL) end the response where they first occur (empty
 * ones and ones that are not valid UTF-8 are ignored: they never occur in the valid text). */
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
/* Returns the text of the response so far that was already released as units or is ready to be; the text of units
 * already released is dropped once it is 4 KiB or as long as the rest (bounded memory for endless responses), so
 * this is then the text from a later unit boundary on. */
const char *lev_output_text (const LevOutput *out, gsize *len);

G_END_DECLS
