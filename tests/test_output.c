/* test_output.c: unit tests of the output splitter (lev_output.c): UTF-8 completion, units, stop strings. */
#include <glib.h>
#include <string.h>

#include "lev_output.h"

/* Pushes pieces (NULL-terminated) as tokens 0, 1, ... and returns the units joined with '|'. */
static gchar *
run (LevUnitMode mode, const char *const *stops, const char *const *pieces, gboolean *stopped, GArray *ids_out)
{
  LevOutput *o = lev_output_new (mode, stops);
  GString *all = g_string_new (NULL), *t = g_string_new (NULL);
  GArray *ids = g_array_new (FALSE, FALSE, sizeof (gint32));
  gboolean stop = FALSE;
  for (gint32 i = 0; pieces[i] && !stop; i++)
    stop = lev_output_push (o, i, pieces[i], strlen (pieces[i]));
  lev_output_finish (o);
  while (lev_output_pop (o, t, ids)) {
    g_assert_true (g_utf8_validate (t->str, (gssize) t->len, NULL));
    if (all->len)
      g_string_append_c (all, '|');
    g_string_append (all, t->str);
  }
  if (stopped)
    *stopped = stop;
  if (ids_out)
    g_array_append_vals (ids_out, ids->data, ids->len);
  g_array_free (ids, TRUE);
  g_string_free (t, TRUE);
  lev_output_free (o);
  return g_string_free (all, FALSE);
}

static void
test_units (void)
{
  const char *pieces[] = { "Once", " upon", " a", " time.", " The", " end", "!\n", "Bye", NULL };
  gchar *s = run (LEV_UNIT_TOKEN, NULL, pieces, NULL, NULL);
  g_assert_cmpstr (s, ==, "Once| upon| a| time.| The| end|!\n|Bye");
  g_free (s);
  s = run (LEV_UNIT_WORD, NULL, pieces, NULL, NULL);
  g_assert_cmpstr (s, ==, "Once| upon| a| time.| The| end!|\nBye");
  g_free (s);
  s = run (LEV_UNIT_SENTENCE, NULL, pieces, NULL, NULL);
  g_assert_cmpstr (s, ==, "Once upon a time.| The end!\n|Bye");
  g_free (s);
  s = run (LEV_UNIT_RESPONSE, NULL, pieces, NULL, NULL);
  g_assert_cmpstr (s, ==, "Once upon a time. The end!\nBye");
  g_free (s);
}

static void
test_utf8 (void)
{
  /* "é" split over two byte tokens, then an invalid byte, then a character cut by the end of the response */
  const char *pieces[] = { "caf", "\xc3", "\xa9", "!", "\xff", "x", "\xe2\x82", NULL };
  GArray *ids = g_array_new (FALSE, FALSE, sizeof (gint32));
  gchar *s = run (LEV_UNIT_TOKEN, NULL, pieces, NULL, ids);
  g_assert_cmpstr (s, ==, "caf|\xc3\xa9|!|\xef\xbf\xbd|x|\xef\xbf\xbd");
  g_assert_cmpuint (ids->len, ==, 7);       /* every id comes out once */
  g_free (s);
  g_array_free (ids, TRUE);
}

static void
test_stop_strings (void)
{
  const char *stops[] = { "The end", "\n\n", NULL };
  const char *pieces[] = { "Once", " upon", " a", " The", " dog", ". The", " end", " more", NULL };
  gboolean stopped = FALSE;
  gchar *s = run (LEV_UNIT_TOKEN, stops, pieces, &stopped, NULL);
  g_assert_true (stopped);
  /* " The" is held back while it may start "The end", then released when " dog" shows it does not */
  g_assert_cmpstr (s, ==, "Once| upon| a| The| dog|. ");
  g_free (s);
  const char *pieces2[] = { "Hi", "\n", "\n", "x", NULL };
  s = run (LEV_UNIT_RESPONSE, stops, pieces2, &stopped, NULL);
  g_assert_true (stopped);
  g_assert_cmpstr (s, ==, "Hi");
  g_free (s);
  /* a held prefix that never completes is released at the end */
  const char *pieces3[] = { "so", " The", NULL };
  s = run (LEV_UNIT_TOKEN, stops, pieces3, &stopped, NULL);
  g_assert_false (stopped);
  g_assert_cmpstr (s, ==, "so| The");
  g_free (s);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/output/units", test_units);
  g_test_add_func ("/output/utf8", test_utf8);
  g_test_add_func ("/output/stop-strings", test_stop_strings);
  return g_test_run ();
}
