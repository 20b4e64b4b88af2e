/* test_element_stress.c: levtextgen under stress with gst_harness: NULL→PLAYING→NULL cycles (idle, answering, and
 * stopped in the middle of generation), flushes in the middle of generation, every numeric property at the ends of
 * its range; no leak (ASan/LSan builds), no deadlock (every wait is bounded), no file descriptor or mapping left.
 * Counts: $LEV_STRESS_CYCLES (default 1000) and $LEV_STRESS_FLUSHES (default 200); $LEV_STRESS_EXTREME_SKIP: properties
 * (comma-separated) not set to their maximum. */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <glib/gstdio.h>
#include <string.h>

#include "lev_test_element.h"
#include "lev_output.h"

/* Reads a positive count from the environment, or def. */
static guint
env_count (const gchar *name, guint def)
{
  const gchar *v = g_getenv (name);
  guint64 n = v ? g_ascii_strtoull (v, NULL, 10) : 0;
  return n > 0 && n < 1000000 ? (guint) n : def;
}

/* Returns the number of open file descriptors of this process. */
static guint
count_fds (void)
{
  GDir *d = g_dir_open ("/proc/self/fd", 0, NULL);
  guint n = 0;
  if (d == NULL)
    return 0;
  while (g_dir_read_name (d))
    n++;
  g_dir_close (d);
  return n;
}

/* Returns how many mappings of the model file this process holds. */
static guint
count_model_maps (void)
{
  gchar *maps = NULL;
  guint n = 0;
  if (!g_file_get_contents ("/proc/self/maps", &maps, NULL, NULL))
    return 0;
  for (const gchar *p = maps; (p = strstr (p, model_path)) != NULL; p++)
    n++;
  g_free (maps);
  return n;
}

/* Waits at most `ms` milliseconds for a buffer; NULL when none came. */
static GstBuffer *
pull_within (GstHarness *h, guint ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) ms * 1000;
  do {
    GstBuffer *b = gst_harness_try_pull (h);
    if (b)
      return b;
    g_usleep (200);
  } while (g_get_monotonic_time () < end);
  return NULL;
}

/* Waits at most `ms` milliseconds for the end-of-response event; FALSE when it did not come. */
static gboolean
end_of_response_within (GstHarness *h, guint ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) ms * 1000;
  do {
    GstEvent *ev;
    while ((ev = gst_harness_try_pull_event (h))) {
      gboolean eor = lev_test_is_end_of_response (ev);
      gst_event_unref (ev);
      if (eor)
        return TRUE;
    }
    g_usleep (200);
  } while (g_get_monotonic_time () < end);
  return FALSE;
}

/* Drops every buffer and event the harness has received. */
static void
drain (GstHarness *h)
{
  GstBuffer *b;
  GstEvent *ev;
  while ((b = gst_harness_try_pull (h)))
    gst_buffer_unref (b);
  while ((ev = gst_harness_try_pull_event (h)))
    gst_event_unref (ev);
}

/* Sets a state and checks that the change completes (the element changes state synchronously). */
static void
set_state_ok (GstElement *e, GstState st)
{
  fail_unless (gst_element_set_state (e, st) != GST_STATE_CHANGE_FAILURE, "cannot go to %s",
               gst_element_state_get_name (st));
  GstState cur;
  fail_unless_equals_int (gst_element_get_state (e, &cur, NULL, 10 * GST_SECOND), GST_STATE_CHANGE_SUCCESS);
  fail_unless_equals_int (cur, st);
}

GST_START_TEST (test_state_cycles_stress)
{
  const guint cycles = env_count ("LEV_STRESS_CYCLES", 1000);
  GstElement *e = lev_test_element_new ("n-threads", 1, "ignore-eos", TRUE, "max-tokens", 3, "context-length", 64,
                                       NULL);
  GstHarness *h = gst_harness_new_with_element (e, "sink", "src");
  gst_object_unref (e);
  gst_harness_set_src_caps_str (h, "text/x-raw, format=utf8");
  set_state_ok (h->element, GST_STATE_NULL);
  const guint fds = count_fds ();
  gint64 t0 = g_get_monotonic_time ();
  guint answered = 0, interrupted = 0;
  for (guint i = 0; i < cycles; i++) {
    /* NULL -> PLAYING: model loaded, context made, task started */
    gst_harness_play (h);
    gst_harness_set_src_caps_str (h, "text/x-raw, format=utf8");
    switch (i % 3) {
    case 0:   /* idle */
      break;
    case 1:   /* a whole response */
      g_object_set (h->element, "max-tokens", 3, NULL);
      fail_unless_equals_int (lev_test_push_text (h, "Once upon a time"), GST_FLOW_OK);
      fail_unless (end_of_response_within (h, 10000), "cycle %u: no end of response", i);
      answered++;
      break;
    default:  /* stopped while generating */
      g_object_set (h->element, "max-tokens", 1 << 20, NULL);
      fail_unless_equals_int (lev_test_push_text (h, "The little dog"), GST_FLOW_OK);
      GstBuffer *b = pull_within (h, 10000);
      fail_unless (b != NULL, "cycle %u: generation did not start", i);
      gst_buffer_unref (b);
      interrupted++;
      break;
    }
    /* PLAYING -> NULL: task stopped within the wait of set_state_ok, model unmapped */
    gint64 s0 = g_get_monotonic_time ();
    set_state_ok (h->element, GST_STATE_NULL);
    fail_unless (g_get_monotonic_time () - s0 < 2 * G_USEC_PER_SEC, "cycle %u: stopping took too long", i);
    drain (h);
  }
  gint64 took = g_get_monotonic_time () - t0;
  fail_unless_equals_int (count_model_maps (), 0);
  fail_unless_equals_int (count_fds (), fds);
  g_print ("%u NULL->PLAYING->NULL cycles (%u answered, %u stopped mid-generation) in %.2f s\n", cycles, answered,
           interrupted, took / 1e6);
  gst_harness_teardown (h);
}
GST_END_TEST;

typedef struct {
  GstHarness *h;
  GstFlowReturn ret;
  gint done;
} Blocked;

static gint sink_buffers;   /* buffers that reached the element's sink pad (counted by a probe) */

/* Counts the buffers that enter the element's chain function (the probe runs in the pushing thread, with the
 * pad's stream lock held, just before the chain function). */
static GstPadProbeReturn
count_sink_buffer (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  g_atomic_int_inc (&sink_buffers);
  return GST_PAD_PROBE_OK;
}

/* Pushes one prompt from another thread (it blocks while the element's queue is full). */
static gpointer
push_blocked (gpointer data)
{
  Blocked *b = data;
  b->ret = lev_test_push_text (b->h, "Lily wanted");
  g_atomic_int_set (&b->done, 1);
  return NULL;
}

/* Sends FLUSH_START and FLUSH_STOP and a new segment; fails when the flush takes more than half a second. */
static void
flush (GstHarness *h, guint i)
{
  gint64 t0 = g_get_monotonic_time ();
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_start ()));
  gint64 took = g_get_monotonic_time () - t0;
  fail_unless (took < G_USEC_PER_SEC / 2, "flush %u: FLUSH_START took %" G_GINT64_FORMAT " us", i, took);
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_stop (TRUE)));
  GstSegment seg;
  gst_segment_init (&seg, GST_FORMAT_TIME);
  fail_unless (gst_harness_push_event (h, gst_event_new_segment (&seg)));
}

GST_START_TEST (test_flush_stress)
{
  const guint flushes = env_count ("LEV_STRESS_FLUSHES", 200);
  GstElement *e = lev_test_element_new ("n-threads", 1, "ignore-eos", TRUE, "max-tokens", 1 << 24, "max-queued", 1,
                                       "context-length", 64, NULL);
  GstHarness *h = gst_harness_new_with_element (e, "sink", "src");
  gst_object_unref (e);
  gst_harness_set_src_caps_str (h, "text/x-raw, format=utf8");
  GstPad *sinkpad = gst_element_get_static_pad (h->element, "sink");
  gst_pad_add_probe (sinkpad, GST_PAD_PROBE_TYPE_BUFFER, count_sink_buffer, NULL, NULL);
  gst_object_unref (sinkpad);
  gst_harness_play (h);
  gint64 t0 = g_get_monotonic_time ();
  guint with_blocked = 0;
  for (guint i = 0; i < flushes; i++) {
    fail_unless_equals_int (lev_test_push_text (h, "Once upon a time"), GST_FLOW_OK);
    GstBuffer *b = pull_within (h, 10000);
    fail_unless (b != NULL, "flush %u: generation did not start", i);
    gst_buffer_unref (b);
    Blocked blk = { h, GST_FLOW_OK, 0 };
    GThread *t = NULL;
    if (i % 4 == 3) {
      /* a second prompt fills the queue (max-queued 1), a third blocks its upstream thread until the flush */
      fail_unless_equals_int (lev_test_push_text (h, "The cat"), GST_FLOW_OK);
      gint before = g_atomic_int_get (&sink_buffers);
      t = g_thread_new ("pusher", push_blocked, &blk);
      /* wait until its buffer is in the chain function (which holds the stream lock: FLUSH_STOP waits for it) */
      gint64 until = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
      while (g_atomic_int_get (&sink_buffers) == before && g_get_monotonic_time () < until)
        g_usleep (100);
      fail_unless (g_atomic_int_get (&sink_buffers) != before, "flush %u: the third push never arrived", i);
      g_usleep (1000);
      with_blocked++;
    }
    flush (h, i);
    if (t) {
      g_thread_join (t);
      /* it was blocked by the full queue, or refused on entry: either way the flush unblocks it with FLUSHING */
      fail_unless (blk.ret == GST_FLOW_FLUSHING, "flush %u: the blocked push gave %s", i,
                   gst_flow_get_name (blk.ret));
    }
    drain (h);
    if (i % 50 == 49) {
      /* the element still answers normally */
      g_object_set (h->element, "max-tokens", 4, NULL);
      fail_unless_equals_int (lev_test_push_text (h, "Once upon a time"), GST_FLOW_OK);
      fail_unless (end_of_response_within (h, 10000), "flush %u: no answer after the flushes", i);
      g_object_set (h->element, "max-tokens", 1 << 24, NULL);
      drain (h);
    }
  }
  gint64 took = g_get_monotonic_time () - t0;
  g_print ("%u flushes in the middle of generation (%u with a blocked upstream push) in %.2f s\n", flushes,
           with_blocked, took / 1e6);
  gst_harness_teardown (h);
}
GST_END_TEST;

/* Sets property pspec of e to its minimum (at_max FALSE) or maximum; returns a printable description. */
static gchar *
set_extreme (GstElement *e, GParamSpec *ps, gboolean at_max)
{
  GValue v = G_VALUE_INIT;
  g_value_init (&v, ps->value_type);
  if (G_IS_PARAM_SPEC_UINT (ps))
    g_value_set_uint (&v, at_max ? G_PARAM_SPEC_UINT (ps)->maximum : G_PARAM_SPEC_UINT (ps)->minimum);
  else if (G_IS_PARAM_SPEC_INT (ps))
    g_value_set_int (&v, at_max ? G_PARAM_SPEC_INT (ps)->maximum : G_PARAM_SPEC_INT (ps)->minimum);
  else if (G_IS_PARAM_SPEC_INT64 (ps))
    g_value_set_int64 (&v, at_max ? G_PARAM_SPEC_INT64 (ps)->maximum : G_PARAM_SPEC_INT64 (ps)->minimum);
  else if (G_IS_PARAM_SPEC_FLOAT (ps))
    g_value_set_float (&v, at_max ? G_PARAM_SPEC_FLOAT (ps)->maximum : G_PARAM_SPEC_FLOAT (ps)->minimum);
  else if (G_IS_PARAM_SPEC_DOUBLE (ps))
    g_value_set_double (&v, at_max ? G_PARAM_SPEC_DOUBLE (ps)->maximum : G_PARAM_SPEC_DOUBLE (ps)->minimum);
  g_object_set_property (G_OBJECT (e), ps->name, &v);
  gchar *val = g_strdup_value_contents (&v);
  gchar *what = g_strdup_printf ("%s=%s", ps->name, val);
  g_free (val);
  g_value_unset (&v);
  return what;
}

GST_START_TEST (test_extreme_properties)
{
  /* every numeric property at the ends of its range: the element starts and answers */
  GString *prompt = g_string_new (NULL);
  for (guint i = 0; i < 3; i++)
    g_string_append (prompt, "Once upon a time there was a little dog. ");
  GstElement *probe = gst_element_factory_make ("levtextgen", NULL);
  guint n_props = 0, answered = 0, tried = 0;
  gchar **skip = g_strsplit (g_getenv ("LEV_STRESS_EXTREME_SKIP") ? g_getenv ("LEV_STRESS_EXTREME_SKIP") : "", ",", -1);
  GParamSpec **props = g_object_class_list_properties (G_OBJECT_GET_CLASS (probe), &n_props);
  for (guint i = 0; i < n_props; i++) {
    GParamSpec *ps = props[i];
    if (!(G_IS_PARAM_SPEC_UINT (ps) || G_IS_PARAM_SPEC_INT (ps) || G_IS_PARAM_SPEC_INT64 (ps)
          || G_IS_PARAM_SPEC_FLOAT (ps) || G_IS_PARAM_SPEC_DOUBLE (ps)) || !(ps->flags & G_PARAM_WRITABLE))
      continue;
    for (int at_max = 0; at_max < 2; at_max++) {
      if (at_max && strcmp (ps->name, "max-tokens") == 0)
        continue;   /* 2^24 tokens: the flush test stops such a generation */
      /* $LEV_STRESS_EXTREME_SKIP: properties left out (scripts/test.sh --tsan: 64 spinning workers on 2 cores
       * under ThreadSanitizer take minutes) */
      if (at_max && skip && g_strv_contains ((const gchar *const *) skip, ps->name))
        continue;
      GstElement *e = gst_element_factory_make ("levtextgen", NULL);
      g_object_set (e, "model", model_path, "n-threads", 1, "max-tokens", 4, "ignore-eos", TRUE, NULL);
      gchar *what = set_extreme (e, ps, at_max);
      GstBus *bus = gst_bus_new ();
      gst_element_set_bus (e, bus);
      GstHarness *h = gst_harness_new_with_element (e, "sink", "src");
      gst_harness_set_src_caps_str (h, "text/x-raw, format=utf8");
      /* a value in the advertised range must work: a refused state change is a failure (it used to count as a
       * pass, which hid context lengths 1-4 advertised but failing) */
      tried++;
      if (gst_element_set_state (e, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
        GstMessage *m = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
        GError *err = NULL;
        if (m)
          gst_message_parse_error (m, &err, NULL);
        fail ("%s: the state change was refused: %s", what, err ? err->message : "(no error message)");
      }
      gst_harness_set_src_caps_str (h, "text/x-raw, format=utf8");
      fail_unless_equals_int (lev_test_push_text (h, prompt->str), GST_FLOW_OK);
      fail_unless (end_of_response_within (h, 60000), "%s: no answer", what);
      answered++;
      gst_element_set_bus (e, NULL);
      gst_object_unref (bus);
      gst_object_unref (e);
      gst_harness_teardown (h);
      g_free (what);
    }
  }
  g_print ("extreme property values: %u of %u answered\n", answered, tried);
  fail_unless_equals_int (answered, tried);
  fail_unless (tried > 10);
  g_free (props);
  g_strfreev (skip);
  gst_object_unref (probe);
  g_string_free (prompt, TRUE);
}
GST_END_TEST;

/* Counts the warnings on a bus (and drops every message). */
static guint
count_warnings (GstBus *bus)
{
  guint n = 0;
  GstMessage *m;
  while ((m = gst_bus_pop (bus))) {
    n += GST_MESSAGE_TYPE (m) == GST_MESSAGE_WARNING;
    gst_message_unref (m);
  }
  return n;
}

GST_START_TEST (test_bad_token_input)
{
  /* token ids in: out-of-range ids, a length that is not a multiple of 4 and empty buffers give warnings (or
   * nothing), never a crash; the element answers a good prompt afterwards */
  GstElement *e = gst_element_factory_make ("levtextgen", NULL);
  g_object_set (e, "model", model_path, "n-threads", 1, "max-tokens", 3, "ignore-eos", TRUE, NULL);
  GstBus *bus = gst_bus_new ();
  gst_element_set_bus (e, bus);
  GstHarness *h = gst_harness_new_with_element (e, "sink", "src");
  gst_harness_set_sink_caps_str (h, "text/x-raw, format=utf8");
  gst_harness_play (h);
  /* token caps with the model's vocabulary id, as the sink pad advertises it */
  GstPad *sink = gst_element_get_static_pad (e, "sink");
  GstCaps *caps = gst_pad_query_caps (sink, NULL);
  GstCaps *tokens = NULL;
  for (guint i = 0; i < gst_caps_get_size (caps) && tokens == NULL; i++)
    if (gst_structure_has_name (gst_caps_get_structure (caps, i), "application/x-leviathan-tokens"))
      tokens = gst_caps_copy_nth (caps, i);
  fail_unless (tokens != NULL);
  gst_caps_unref (caps);
  gst_object_unref (sink);
  gst_harness_set_src_caps (h, tokens);
  const gint32 bad[][3] = { { 1, -1, 403 }, { 1, 512, 403 }, { G_MAXINT32, G_MININT32, 0 } };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    gint32 le[3];
    for (guint k = 0; k < 3; k++)
      le[k] = GINT32_TO_LE (bad[i][k]);
    fail_unless_equals_int (gst_harness_push (h, gst_buffer_new_memdup (le, sizeof le)), GST_FLOW_OK);
  }
  const guint8 odd[5] = { 1, 0, 0, 0, 7 };   /* one id and a stray byte */
  fail_unless_equals_int (gst_harness_push (h, gst_buffer_new_memdup (odd, sizeof odd)), GST_FLOW_OK);
  fail_unless (end_of_response_within (h, 10000), "no answer to the id 1 of the 5-byte buffer");
  fail_unless_equals_int (gst_harness_push (h, gst_buffer_new ()), GST_FLOW_OK);
  const gint32 good[3] = { GINT32_TO_LE (1), GINT32_TO_LE (403), GINT32_TO_LE (407) };
  fail_unless_equals_int (gst_harness_push (h, gst_buffer_new_memdup (good, sizeof good)), GST_FLOW_OK);
  fail_unless (end_of_response_within (h, 10000), "no answer after the bad prompts");
  /* three skipped prompts and the stray byte */
  fail_unless_equals_int (count_warnings (bus), 4);
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
}
GST_END_TEST;

#define N_PUSHED 50004   /* whole rounds of the pieces below, about 200 KB of text: some 50 compactions a mode */

GST_START_TEST (test_output_memory_bounded)
{
  /* regression (soak): the unit splitter kept a whole endless response's text, ~4 bytes a token; units other than
   * whole responses now drop the text already handed out. Every id and every byte still comes out once, in order. */
  const LevUnitMode modes[] = { LEV_UNIT_TOKEN, LEV_UNIT_WORD, LEV_UNIT_SENTENCE };
  const char *const stops[] = { "The end", NULL };
  /* " The en" is held back as a possible stop string; "\xe2\x96" + "\x81" is one character over two tokens */
  static const char *const pieces[] = { " The", " dog", " ran", ".", " \xe2\x96", "\x81", " The", " en", "emy\n" };
  for (guint m = 0; m < G_N_ELEMENTS (modes); m++) {
    LevOutput *o = lev_output_new (modes[m], stops);
    GString *text = g_string_new (NULL);
    GArray *ids = g_array_new (FALSE, FALSE, sizeof (gint32));
    gsize kept_max = 0, pushed = 0, out = 0;
    for (guint i = 0; i < N_PUSHED; i++) {
      const char *p = pieces[i % G_N_ELEMENTS (pieces)];
      fail_if (lev_output_push (o, (gint32) i, p, strlen (p)), "a stop string was seen where there is none");
      pushed += strlen (p);
      while (lev_output_pop (o, text, ids))
        out += text->len;
      gsize len = 0;
      lev_output_text (o, &len);
      kept_max = MAX (kept_max, len);
    }
    lev_output_finish (o);
    while (lev_output_pop (o, text, ids))
      out += text->len;
    fail_unless (kept_max < 3 * 4096, "mode %u: %" G_GSIZE_FORMAT " bytes kept", modes[m], kept_max);
    fail_unless_equals_uint64 (out, pushed);
    fail_unless_equals_int (ids->len, N_PUSHED);
    for (guint i = 0; i < ids->len; i++)
      fail_unless_equals_int (g_array_index (ids, gint32, i), (gint32) i);
    g_array_free (ids, TRUE);
    g_string_free (text, TRUE);
    lev_output_free (o);
  }
}
GST_END_TEST;

static Suite *
stress_suite (void)
{
  Suite *s = suite_create ("levtextgen-stress");
  TCase *tc = tcase_create ("stress");
  /* the deadlock guard: a test that hangs is killed and fails */
  tcase_set_timeout (tc, env_count ("LEV_STRESS_TIMEOUT", 240));
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_state_cycles_stress);
  tcase_add_test (tc, test_flush_stress);
  tcase_add_test (tc, test_extreme_properties);
  tcase_add_test (tc, test_bad_token_input);
  tcase_add_test (tc, test_output_memory_bounded);
  return s;
}

int
main (int argc, char **argv)
{
  return lev_test_run_element_suite (&argc, &argv, stress_suite (), "levtextgen-stress", __FILE__);
}
