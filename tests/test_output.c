/* test_output.c: unit tests of the output splitter (lev_output.c): UTF-8 completion, units, stop strings. */
#include <glib.h>
#include <string.h>
#include <time.h>

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

/* Boundary-free pieces: no white space, no newline, "." never followed by a space, CJK text whose "。" is not a
 * sentence end here; one character ("\xe2\x96\x81") split over two tokens (10,000 and 100,000 tokens end after a
 * whole character). */
static const char *const plain_pieces[] = { "\xe2\x96", "\x81", "\xe6\x97\xa5\xe6\x9c\xac", "\xe8\xaa\x9e",
                                            "\xe3\x80\x82", "x.y", "ab" };

/* Pushes n boundary-free tokens in mode, checks that every byte and id comes out once, in order, in units of at
 * most the mode's bound, and that the text kept stays bounded; returns the process CPU seconds spent. */
static double
push_plain (LevUnitMode mode, guint n)
{
  LevOutput *o = lev_output_new (mode, NULL);
  GString *in = g_string_new (NULL), *out = g_string_new (NULL), *t = g_string_new (NULL);
  GArray *ids = g_array_new (FALSE, FALSE, sizeof (gint32));
  gsize kept_max = 0, unit_max = 0, bound = lev_output_max_unit_bytes (mode);
  struct timespec a, b;
  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &a);
  for (guint i = 0; i <= n; i++) {
    if (i == n)
      lev_output_finish (o);
    else {
      const char *p = plain_pieces[i % G_N_ELEMENTS (plain_pieces)];
      g_string_append (in, p);
      g_assert_false (lev_output_push (o, (gint32) i, p, strlen (p)));
    }
    while (lev_output_pop (o, t, ids)) {
      g_string_append_len (out, t->str, (gssize) t->len);
      unit_max = MAX (unit_max, t->len);
    }
    gsize len = 0;
    lev_output_text (o, &len);
    kept_max = MAX (kept_max, len);
  }
  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &b);
  g_assert_true (g_string_equal (in, out));
  g_assert_cmpuint (ids->len, ==, n);
  for (guint i = 0; i < n; i++)
    g_assert_cmpint (g_array_index (ids, gint32, i), ==, (gint32) i);
  /* a unit is cut once it reaches the bound: at most one piece (6 bytes) more */
  g_assert_cmpuint (unit_max, <=, bound + 6);
  g_assert_cmpuint (kept_max, <=, 2 * bound + 4096 + 6);
  g_array_free (ids, TRUE);
  g_string_free (t, TRUE);
  g_string_free (out, TRUE);
  g_string_free (in, TRUE);
  lev_output_free (o);
  return (double) (b.tv_sec - a.tv_sec) + (double) (b.tv_nsec - a.tv_nsec) * 1e-9;
}

static void
test_linear (void)
{
  /* regression (issue 19 item 1): without a boundary, the splitter walked every pending id, rescanned the pending
   * text and kept all of it after each token: 100,000 tokens took 13.9 s in word mode (100 times 10,000 tokens'
   * time) and the text grew without bound. Linear work means ten times the tokens cost about ten times the CPU
   * time; the best of two runs of each size, and 20 ms of slack for timer resolution. */
  const LevUnitMode modes[] = { LEV_UNIT_TOKEN, LEV_UNIT_WORD, LEV_UNIT_SENTENCE, LEV_UNIT_RESPONSE };
  for (guint m = 0; m < G_N_ELEMENTS (modes); m++) {
    double small = G_MAXDOUBLE, large = G_MAXDOUBLE;
    for (int r = 0; r < 2; r++) {
      small = MIN (small, push_plain (modes[m], 10000));
      large = MIN (large, push_plain (modes[m], 100000));
    }
    g_test_message ("mode %u: 10,000 tokens %.4f s, 100,000 tokens %.4f s", modes[m], small, large);
    g_assert_cmpfloat (large, <, 20 * small + 0.02);
  }
}

static void
test_unit_bound (void)
{
  /* a word of 200 KiB comes out in pieces of the bound, cut at character boundaries (3-byte characters) */
  LevOutput *o = lev_output_new (LEV_UNIT_WORD, NULL);
  GString *t = g_string_new (NULL);
  gsize total = 0;
  guint units = 0;
  for (guint i = 0; i < 200 * 1024 / 3; i++)
    lev_output_push (o, (gint32) i, "\xe4\xb8\xad", 3);
  lev_output_push (o, 0, " end", 4);
  lev_output_finish (o);
  while (lev_output_pop (o, t, NULL)) {
    g_assert_true (g_utf8_validate (t->str, (gssize) t->len, NULL));
    g_assert_cmpuint (t->len, <=, LEV_OUTPUT_MAX_UNIT_BYTES + 3);
    total += t->len;
    units++;
  }
  g_assert_cmpuint (total, ==, 200 * 1024 / 3 * 3 + 4);
  g_assert_cmpuint (units, ==, 4 + 1);    /* three full units, the rest of the word, " end" */
  lev_output_free (o);
  /* a response longer than its bound comes out in several units */
  o = lev_output_new (LEV_UNIT_RESPONSE, NULL);
  gchar *k = g_strnfill (1024, 'a');
  for (guint i = 0; i < 1536; i++)
    lev_output_push (o, (gint32) i, k, 1024);
  lev_output_finish (o);
  units = 0;
  total = 0;
  while (lev_output_pop (o, t, NULL)) {
    g_assert_cmpuint (t->len, <=, LEV_OUTPUT_MAX_RESPONSE_BYTES);
    total += t->len;
    units++;
  }
  g_assert_cmpuint (units, ==, 2);
  g_assert_cmpuint (total, ==, 1536 * 1024);
  g_free (k);
  g_string_free (t, TRUE);
  lev_output_free (o);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/output/units", test_units);
  g_test_add_func ("/output/utf8", test_utf8);
  g_test_add_func ("/output/stop-strings", test_stop_strings);
  g_test_add_func ("/output/linear", test_linear);
  g_test_add_func ("/output/unit-bound", test_unit_bound);
  return g_test_run ();
}
