/* lev_output.c: groups generated token text into valid UTF-8 units and cuts the response at stop strings. */
#include "lev_output.h"

#include <string.h>

/* Every step below costs time proportional to the bytes and ids it adds, never to what is pending, so an endless
 * response without a boundary (CJK text, code, a loop) costs the same per token as one with boundaries:
 * - an incomplete UTF-8 character is all raw ever holds; only the ids of this token wait for their end (the ids
 *   with a known end are counted, never walked again);
 * - the boundary scan resumes where the last one stopped (its state is kept: scan, seen_word);
 * - offsets are absolute in the response (clean->str holds the text from base on), so dropping text moves only
 *   what is kept, never the ids; it runs once the dropped part is 4 KiB or as large as what is kept;
 * - a unit never grows past lev_output_max_unit_bytes: pending text beyond it goes out as it is (cut at a
 *   character boundary), which bounds the memory of every mode. */

#define PENDING_END G_MAXSIZE
#define NO_BOUNDARY G_MAXSIZE
#define COMPACT_BYTES 4096

typedef struct {
  int32_t id;
  gsize end;             /* absolute offset just after this token's text; PENDING_END while bytes are held */
} IdEnd;

typedef struct {
  GString *text;
  GArray *ids;
} Unit;

struct LevOutput {
  LevUnitMode mode;
  gchar **stops;         /* non-empty stop strings */
  GString *raw;          /* bytes of an incomplete UTF-8 character */
  GString *clean;        /* the response's valid text from offset base on */
  gsize base;            /* absolute offset of clean->str[0]: the text before it was handed out and dropped */
  GArray *ids;           /* IdEnd; ids[head..] are not yet in a unit */
  guint head;            /* first id not yet given to a unit */
  guint n_known;         /* ids before this index have a known end */
  gsize committed;       /* text before this offset can no longer be the start of a stop string */
  gsize emitted;         /* text before this offset is in units already */
  gsize scan;            /* the boundary scan looked at the text before this offset and found none */
  gboolean seen_word;    /* word units: the scanned text after emitted holds a non-space byte */
  gboolean stopped;
  GQueue units;          /* Unit* */
};

/* the text at absolute offset pos */
#define TEXT_AT(o, pos) ((o)->clean->str + ((pos) - (o)->base))
/* absolute offset of the end of the text */
#define TEXT_END(o) ((o)->base + (o)->clean->len)

static void
unit_free (gpointer p)
{
  Unit *u = p;
  g_string_free (u->text, TRUE);
  g_array_free (u->ids, TRUE);
  g_free (u);
}

/* Returns the most bytes one unit of mode holds before its pending text is released as it is. */
gsize
lev_output_max_unit_bytes (LevUnitMode mode)
{
  return mode == LEV_UNIT_RESPONSE ? LEV_OUTPUT_MAX_RESPONSE_BYTES : LEV_OUTPUT_MAX_UNIT_BYTES;
}

/* Creates a splitter for mode with the given stop strings. */
LevOutput *
lev_output_new (LevUnitMode mode, const char *const *stop_strings)
{
  LevOutput *o = g_new0 (LevOutput, 1);
  o->mode = mode;
  GPtrArray *s = g_ptr_array_new ();
  /* the text is valid UTF-8, so a valid stop string can only match at a character boundary; an invalid one could
   * match inside a character (its last bytes) and cut it: it can never be in the text, and is dropped */
  for (guint i = 0; stop_strings && stop_strings[i]; i++)
    if (stop_strings[i][0] && g_utf8_validate (stop_strings[i], -1, NULL))
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
  o->base = o->committed = o->emitted = o->scan = 0;
  o->head = o->n_known = 0;
  o->seen_word = FALSE;
  o->stopped = FALSE;
  g_queue_clear_full (&o->units, unit_free);
}

/* Moves complete characters from raw to clean; invalid bytes (and NUL) become U+FFFD. With final, an incomplete
 * character at the end is replaced too. Linear in raw's length. */
static void
sanitize (LevOutput *o, gboolean final)
{
  const gchar *r = o->raw->str;
  gsize n = o->raw->len, p = 0;
  while (p < n) {
    const gchar *end;
    g_utf8_validate (r + p, (gssize) (n - p), &end);
    gsize good = (gsize) (end - (r + p));
    g_string_append_len (o->clean, r + p, (gssize) good);
    p += good;
    if (p == n)
      break;
    gunichar c = g_utf8_get_char_validated (r + p, (gssize) (n - p));
    gboolean incomplete = c == (gunichar) -2 && r[p] != '\0';
    if (incomplete && !final)
      break;              /* may be completed by the next token */
    g_string_append (o->clean, "\xef\xbf\xbd");
    /* an incomplete character at the end is one replacement; an invalid byte is one */
    p += incomplete ? n - p : 1;
  }
  g_string_erase (o->raw, 0, (gssize) p);
  if (o->raw->len == 0) {
    for (guint i = o->n_known; i < o->ids->len; i++)
      g_array_index (o->ids, IdEnd, i).end = TEXT_END (o);
    o->n_known = o->ids->len;
  }
}

static gboolean
is_space (char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Returns the end of the next unit starting at o->emitted and ending at or before limit, or NO_BOUNDARY; the scan
 * starts where the previous one stopped. */
static gsize
next_boundary (LevOutput *o, gsize limit)
{
  gsize i = MAX (o->scan, o->emitted);
  switch (o->mode) {
  case LEV_UNIT_TOKEN:
    if (o->head < o->n_known) {
      gsize e = g_array_index (o->ids, IdEnd, o->head).end;
      if (e <= limit)
        return e;
    }
    return NO_BOUNDARY;
  case LEV_UNIT_WORD:
    for (; i < limit; i++) {
      if (!is_space (*TEXT_AT (o, i))) {
        o->seen_word = TRUE;
      } else if (o->seen_word) {
        o->scan = i;
        return i;
      }
    }
    o->scan = i;
    return NO_BOUNDARY;
  case LEV_UNIT_SENTENCE:
    for (; i < limit; i++) {
      char c = *TEXT_AT (o, i);
      if (c == '\n')
        return i + 1;
      if (c == '.' || c == '!' || c == '?') {
        if (i + 1 >= limit)
          break;          /* the next byte decides: look at this one again */
        char d = *TEXT_AT (o, i + 1);
        if (is_space (d) && d != '\n')
          return i + 1;
      }
    }
    o->scan = i;
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
  u->text = g_string_new_len (TEXT_AT (o, o->emitted), (gssize) (end - o->emitted));
  u->ids = g_array_new (FALSE, FALSE, sizeof (gint32));
  guint n = o->head;
  while (n < o->ids->len) {
    IdEnd *ie = &g_array_index (o->ids, IdEnd, n);
    if (!all_ids && (n >= o->n_known || ie->end > end))
      break;
    /* one token per unit, except tokens whose bytes completed one character together */
    if (o->mode == LEV_UNIT_TOKEN && !all_ids && n > o->head && ie->end != g_array_index (o->ids, IdEnd, o->head).end)
      break;
    g_array_append_val (u->ids, ie->id);
    n++;
  }
  o->head = n;
  o->emitted = o->scan = end;
  o->seen_word = FALSE;
  g_queue_push_tail (&o->units, u);
}

/* Returns the largest character boundary in (emitted, limit], or emitted when there is none. */
static gsize
char_boundary_before (LevOutput *o, gsize limit)
{
  gsize cut = limit;
  while (cut > o->emitted && cut < TEXT_END (o) && (*TEXT_AT (o, cut) & 0xc0) == 0x80)
    cut--;
  return cut;
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
  /* no boundary in too long a text: it goes out as it is */
  if (!final && o->committed - o->emitted >= lev_output_max_unit_bytes (o->mode)) {
    gsize cut = char_boundary_before (o, o->committed);
    if (cut > o->emitted)
      make_unit (o, cut, FALSE);
  }
  if (final && (o->emitted < TEXT_END (o) || o->head < o->ids->len))
    make_unit (o, TEXT_END (o), TRUE);
}

/* Returns the length of the longest suffix of the text (starting at or after from) that is a proper prefix of a
 * stop string. */
static gsize
held_suffix (LevOutput *o, gsize from)
{
  gsize best = 0;
  gsize end = TEXT_END (o);
  for (guint s = 0; o->stops[s]; s++) {
    gsize sl = strlen (o->stops[s]);
    for (gsize k = MIN (sl - 1, end - from); k > best; k--)
      if (memcmp (TEXT_AT (o, end - k), o->stops[s], k) == 0) {
        best = k;
        break;
      }
  }
  return best;
}

/* Drops the text and ids already handed out in units, once the dropped part is COMPACT_BYTES or at least as large as
 * what is kept (so the bytes moved are paid for by the bytes dropped). */
static void
compact (LevOutput *o)
{
  const gsize drop = o->emitted - o->base;
  if (drop > 0 && (drop >= COMPACT_BYTES || drop >= o->clean->len - drop)) {
    g_string_erase (o->clean, 0, (gssize) drop);
    o->base = o->emitted;
  }
  if (o->head > 0 && (o->head >= 1024 || o->head >= o->ids->len - o->head)) {
    g_array_remove_range (o->ids, 0, o->head);
    o->n_known -= o->head;
    o->head = 0;
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

  /* the earliest stop string that starts at or after committed (only the held suffix and this token's text) */
  gsize stop_at = G_MAXSIZE;
  for (guint s = 0; o->stops[s]; s++) {
    const char *from = TEXT_AT (o, o->committed);
    const char *hit = g_strstr_len (from, (gssize) (TEXT_END (o) - o->committed), o->stops[s]);
    if (hit && o->committed + (gsize) (hit - from) < stop_at)
      stop_at = o->committed + (gsize) (hit - from);
  }
  if (stop_at != G_MAXSIZE) {
    g_string_truncate (o->clean, stop_at - o->base);
    g_string_truncate (o->raw, 0);
    guint keep = o->head;
    while (keep < o->n_known && g_array_index (o->ids, IdEnd, keep).end <= stop_at)
      keep++;
    g_array_set_size (o->ids, keep);
    o->n_known = keep;
    o->committed = stop_at;
    o->stopped = TRUE;
    emit_units (o, TRUE);
    return TRUE;
  }
  o->committed = TEXT_END (o) - held_suffix (o, o->committed);
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
  o->committed = TEXT_END (o);
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

/* Returns the response text kept so far (the text of units already taken is dropped, see lev_output.h). */
const char *
lev_output_text (const LevOutput *o, gsize *len)
{
  if (len)
    *len = o->committed - o->base;
  return o->clean->str;
}
