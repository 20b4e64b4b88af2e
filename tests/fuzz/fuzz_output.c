/* fuzz_output.c: libFuzzer target: the output splitter (session/lev_output.c) on arbitrary token bytes, modes and
 * stop strings. */
#include "fuzz_common.h"
#include "lev_output.h"

/* Nothing to prepare. */
int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  return 0;
}

/* The input: byte 0 picks the mode (bits 0-1) and the number of stop strings (bits 2-3); those stop strings come
 * first, each ended by 0x00; the rest is token pieces separated by 0xFE (any other byte, NUL and invalid UTF-8
 * included, is token text). Checks: every unit is valid UTF-8 and at most the mode's bound plus one piece; the ids
 * come out once each, in order (all of them, or a prefix when a stop string ended the response); the text kept is
 * bounded; without stop strings and with valid, NUL-free input the output is the input. */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size == 0)
    return 0;
  const LevUnitMode mode = (LevUnitMode) (data[0] & 3);
  guint n_stops = (data[0] >> 2) & 3;
  size_t p = 1;
  GPtrArray *stops = g_ptr_array_new_with_free_func (g_free);
  while (stops->len < n_stops && p < size) {
    const uint8_t *z = memchr (data + p, 0, size - p);
    size_t l = z ? (size_t) (z - (data + p)) : size - p;
    g_ptr_array_add (stops, g_strndup ((const gchar *) data + p, l));
    p += l + (z ? 1 : 0);
  }
  g_ptr_array_add (stops, NULL);
  gboolean any_stop = FALSE;
  gsize longest_stop = 0;
  for (guint i = 0; i + 1 < stops->len; i++) {
    any_stop |= ((gchar *) g_ptr_array_index (stops, i))[0] != '\0';
    longest_stop = MAX (longest_stop, strlen (g_ptr_array_index (stops, i)));
  }

  LevOutput *o = lev_output_new (mode, (const char *const *) stops->pdata);
  GString *in = g_string_new (NULL), *out = g_string_new (NULL), *t = g_string_new (NULL);
  GArray *ids = g_array_new (FALSE, FALSE, sizeof (gint32));
  const gsize bound = lev_output_max_unit_bytes (mode);
  gsize longest_piece = 0;
  gint32 n_pushed = 0;
  gboolean stopped = FALSE;
  while (p <= size && !stopped) {
    const uint8_t *sep = p < size ? memchr (data + p, 0xfe, size - p) : NULL;
    size_t l = sep ? (size_t) (sep - (data + p)) : size - p;
    g_string_append_len (in, (const gchar *) data + p, (gssize) l);
    longest_piece = MAX (longest_piece, l);
    stopped = lev_output_push (o, n_pushed++, (const char *) data + p, l);
    p += l + 1;
    while (lev_output_pop (o, t, ids)) {
      FUZZ_CHECK (g_utf8_validate (t->str, (gssize) t->len, NULL), "a unit is not valid UTF-8");
      /* a piece's bytes may grow threefold (each invalid byte becomes U+FFFD) */
      FUZZ_CHECK (t->len <= bound + 3 * longest_piece + 3 + longest_stop, "a unit of %zu bytes (bound %zu)", t->len,
                  bound);
      g_string_append_len (out, t->str, (gssize) t->len);
    }
    gsize kept = 0;
    lev_output_text (o, &kept);
    FUZZ_CHECK (kept <= 2 * (bound + 3 * longest_piece + 3 + longest_stop) + 4096, "%zu bytes kept", kept);
  }
  lev_output_finish (o);
  while (lev_output_pop (o, t, ids)) {
    FUZZ_CHECK (g_utf8_validate (t->str, (gssize) t->len, NULL), "a unit is not valid UTF-8");
    g_string_append_len (out, t->str, (gssize) t->len);
  }
  FUZZ_CHECK (stopped || ids->len == (guint) n_pushed, "%u ids out of %d", ids->len, n_pushed);
  FUZZ_CHECK (ids->len <= (guint) n_pushed, "more ids out than in");
  for (guint i = 0; i < ids->len; i++)
    FUZZ_CHECK (g_array_index (ids, gint32, i) == (gint32) i, "id %u out of order", i);
  if (!any_stop && g_utf8_validate (in->str, (gssize) in->len, NULL) && memchr (in->str, 0, in->len) == NULL)
    FUZZ_CHECK (g_string_equal (in, out), "the output differs from valid input");
  g_array_free (ids, TRUE);
  g_string_free (t, TRUE);
  g_string_free (out, TRUE);
  g_string_free (in, TRUE);
  lev_output_free (o);
  g_ptr_array_free (stops, TRUE);
  return 0;
}
