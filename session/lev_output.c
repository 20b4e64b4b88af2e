/* lev_output.c: groups generated token text into valid UTF-8 units and cuts the response at stop strings. */
#include "lev_output.h"

#include <string.h>

#define PENDING_END G_MAXSIZE

typedef struct {
  int32_t id;
  gsize end;             /* offset in clean just after this token's text; PENDING_END while bytes are held */
} IdEnd;

typedef struct {
  GString *text;
  GArray *ids;
} Unit;

struct LevOutput {
  LevUnitMode mode;
  gchar **stops;         /* non-empty stop strings */
  GString *raw;          /* bytes of an incomplete UTF-8 character */
  GString *clean;        /* the response's valid text so far */
  GArray *ids;           /* IdEnd, ids not yet given to a unit */
  gsize committed;       /* text before this offset can no longer be the start of a stop string */
  gsize emitted;         /* text before this offset is in units already */
  gboolean stopped;
  GQueue units;          /* Unit* */
};

static void
unit_free (gpointer p)
{
  Unit *u = p;
  g_string_free (u->text, TRUE);
  g_array_free (u->ids, TRUE);
  g_free (u);
}

/* Creates a splitter for mode with the given stop strings. */
LevOutput *
lev_output_new (LevUnitMode mode, const char *const *stop_strings)
{
  LevOutput *o = g_new0 (LevOutput, 1);
  o->mode = mode;
  GPtrArray *s = g_ptr_array_new ();
  for (guint i = 0; stop_strings && stop_strings[i]; i++)
    if (stop_strings[i][0])
      g_ptr_array_add (s, g_strdup (stop_strings[i]));
  g_ptr_array_add (s, NULL);
  o->stops = (gchar **) g_ptr_array_free (s, FALSE);
  o->raw = g_string_new (NULL);
  o->clean = g_string_new (NULL);
  o->ids = g_array_new (FALSE, FALSE, sizeof (IdEnd));
  g_queue_init (&o->units);
  return o;
}

/* Frees a splitter. */
void
lev_output_free (LevOutput *o)
{
  if (!o)
    return;
  lev_output_reset (o);
  g_strfreev (o->stops);
  g_string_free (o->raw, TRUE);
  g_string_free (o->clean, TRUE);
  g_array_free (o->ids, TRUE);
  g_free (o);
}

/* Forgets the current response. */
void
lev_output_reset (LevOutput *o)
{
  g_string_truncate (o->raw, 0);
  g_string_truncate (o->clean, 0);
  g_array_set_size (o->ids, 0);
  o->committed = o->emitted = 0;
  o->stopped = FALSE;
  g_queue_clear_full (&o->units, unit_free);
}

/* Moves complete characters from raw to clean; invalid bytes become U+FFFD. With final, an incomplete character
 * at the end is replaced too. */
static void
sanitize (LevOutput *o, gboolean final)
{
  while (o->raw->len > 0) {
    const gchar *end;
    g_utf8_validate (o->raw->str, (gssize) o->raw->len, &end);
    gsize good = (gsize) (end - o->raw->str);
    g_string_append_len (o->clean, o->raw->str, (gssize) good);
    g_string_erase (o->raw, 0, (gssize) good);
    if (o->raw->len == 0)
      break;
    gunichar c = g_utf8_get_char_validated (o->raw->str, (gssize) o->raw->len);
    if (c == (gunichar) -2 && !final && o->raw->str[0] != '\0')
      break;              /* may be completed by the next token */
    g_string_append (o->clean, "\xef\xbf\xbd");
    /* an incomplete character at the end is one replacement; an invalid byte is one */
    g_string_erase (o->raw, 0, c == (gunichar) -2 && o->raw->str[0] != '\0' ? (gssize) o->raw->len : 1);
  }
  if (o->raw->len == 0)
    for (guint i = 0; i < o->ids->len; i++)
      if (g_array_index (o->ids, IdEnd, i).end == PENDING_END)
        g_array_index (o->ids, IdEnd, i).end = o->clean->len;
}

static gboolean
is_space (char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

#define NO_BOUNDARY G_MAXSIZE

/* Returns the end of the next unit starting at o->emitted and ending at or before limit, or NO_BOUNDARY. */
static gsize
next_boundary (LevOutput *o, gsize limit)
{
  const char *t = o->clean->str;
  switch (o->mode) {
  case LEV_UNIT_TOKEN:
    if (o->ids->len > 0) {
      gsize e = g_array_index (o->ids, IdEnd, 0).end;
      if (e != PENDING_END && e <= limit)
        return e;
    }
    return NO_BOUNDARY;
  case LEV_UNIT_WORD: {
    gboolean seen_word = FALSE;
    for (gsize i = o->emitted; i < limit; i++) {
      if (!is_space (t[i]))
        seen_word = TRUE;
      else if (seen_word)
        return i;
    }
    return NO_BOUNDARY;
  }
  case LEV_UNIT_SENTENCE:
    for (gsize i = o->emitted; i < limit; i++) {
      if (t[i] == '\n')
        return i + 1;
      if ((t[i] == '.' || t[i] == '!' || t[i] == '?') && i + 1 < limit && is_space (t[i + 1]) && t[i + 1] != '\n')
        return i + 1;
    }
    return NO_BOUNDARY;
  case LEV_UNIT_RESPONSE:
  default:
    return NO_BOUNDARY;
  }
}

/* Queues the unit [emitted, end) with the ids whose text ends in it (and, with all_ids, every remaining id). */
static void
make_unit (LevOutput *o, gsize end, gboolean all_ids)
{
  Unit *u = g_new0 (Unit, 1);
  u->text = g_string_new_len (o->clean->str + o->emitted, (gssize) (end - o->emitted));
  u->ids = g_array_new (FALSE, FALSE, sizeof (gint32));
  guint n = 0;
  while (n < o->ids->len) {
    IdEnd *ie = &g_array_index (o->ids, IdEnd, n);
    if (!all_ids && (ie->end == PENDING_END || ie->end > end))
      break;
    /* one token per unit, except tokens whose bytes completed one character together */
    if (o->mode == LEV_UNIT_TOKEN && !all_ids && n > 0 && ie->end != g_array_index (o->ids, IdEnd, 0).end)
      break;
    g_array_append_val (u->ids, ie->id);
    n++;
  }
  g_array_remove_range (o->ids, 0, n);
  o->emitted = end;
  g_queue_push_tail (&o->units, u);
}

static void
emit_units (LevOutput *o, gboolean final)
{
  for (;;) {
    gsize b = next_boundary (o, o->committed);
    if (b == NO_BOUNDARY || (b <= o->emitted && o->mode != LEV_UNIT_TOKEN))
      break;
    make_unit (o, b, FALSE);
  }
  if (final && (o->emitted < o->clean->len || o->ids->len > 0))
    make_unit (o, o->clean->len, TRUE);
}

/* Returns the length of the longest suffix of clean (starting at or after from) that is a proper prefix of a
 * stop string. */
static gsize
held_suffix (LevOutput *o, gsize from)
{
  gsize best = 0;
  const char *t = o->clean->str;
  gsize len = o->clean->len;
  for (guint s = 0; o->stops[s]; s++) {
    gsize sl = strlen (o->stops[s]);
    for (gsize k = MIN (sl - 1, len - from); k > best; k--)
      if (memcmp (t + len - k, o->stops[s], k) == 0) {
        best = k;
        break;
      }
  }
  return best;
}

#define COMPACT_BYTES 4096

/* Drops the text already handed out in units (once there are COMPACT_BYTES of it) and rebases the offsets, so that
 * an endless response in token, word or sentence units keeps bounded memory; response units need the whole text. */
static void
compact (LevOutput *o)
{
  if (o->mode == LEV_UNIT_RESPONSE || o->emitted < COMPACT_BYTES)
    return;
  const gsize cut = o->emitted;
  g_string_erase (o->clean, 0, (gssize) cut);
  o->emitted = 0;
  o->committed -= cut;
  for (guint i = 0; i < o->ids->len; i++) {
    IdEnd *ie = &g_array_index (o->ids, IdEnd, i);
    if (ie->end != PENDING_END)
      ie->end = ie->end > cut ? ie->end - cut : 0;
  }
}

/* Adds a token's bytes; TRUE when a stop string completed. */
gboolean
lev_output_push (LevOutput *o, int32_t id, const char *bytes, gsize len)
{
  if (o->stopped)
    return TRUE;
  g_string_append_len (o->raw, bytes, (gssize) len);
  IdEnd ie = { id, PENDING_END };
  g_array_append_val (o->ids, ie);
  sanitize (o, FALSE);

  /* the earliest stop string that starts at or after committed */
  gsize stop_at = G_MAXSIZE;
  for (guint s = 0; o->stops[s]; s++) {
    const char *hit = g_strstr_len (o->clean->str + o->committed, (gssize) (o->clean->len - o->committed),
                                    o->stops[s]);
    if (hit && (gsize) (hit - o->clean->str) < stop_at)
      stop_at = (gsize) (hit - o->clean->str);
  }
  if (stop_at != G_MAXSIZE) {
    g_string_truncate (o->clean, stop_at);
    g_string_truncate (o->raw, 0);
    guint keep = 0;
    while (keep < o->ids->len && g_array_index (o->ids, IdEnd, keep).end <= stop_at)
      keep++;
    g_array_set_size (o->ids, keep);
    o->committed = stop_at;
    o->stopped = TRUE;
    emit_units (o, TRUE);
    return TRUE;
  }
  o->committed = o->clean->len - held_suffix (o, o->committed);
  emit_units (o, FALSE);
  compact (o);
  return FALSE;
}

/* Releases everything held back at the end of a response. */
void
lev_output_finish (LevOutput *o)
{
  if (o->stopped)
    return;
  sanitize (o, TRUE);
  o->committed = o->clean->len;
  o->stopped = TRUE;
  emit_units (o, TRUE);
}

/* Takes the next unit. */
gboolean
lev_output_pop (LevOutput *o, GString *text, GArray *ids)
{
  Unit *u = g_queue_pop_head (&o->units);
  if (!u)
    return FALSE;
  g_string_assign (text, u->text->str);
  if (ids)
    g_array_append_vals (ids, u->ids->data, u->ids->len);
  unit_free (u);
  return TRUE;
}

/* Returns the response text kept so far (in token, word and sentence modes the text of units already taken is
 * dropped once it exceeds 4 KiB). */
const char *
lev_output_text (const LevOutput *o, gsize *len)
{
  if (len)
    *len = o->committed;
  return o->clean->str;
}
