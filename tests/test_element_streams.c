/* test_element_streams.c: levtextgen elements sharing one engine (the "leviathan.engine" context) and generating
 * at the same time (batched steps): sharing and separation by context, each stream's text equal to the same stream
 * alone, one stream's flush, state change, EOS and error leaving the others undisturbed. Runs under TSan too. */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <glib/gstdio.h>
#include <string.h>

#include "lev_test_element.h"

#define N_STREAMS 3

static const gchar *prompts[N_STREAMS] = { "Once upon a time", "The little dog", "Lily and Ben went to the park" };

/* A levtextgen with the fixture model, greedy, 24 tokens, plus extra properties ("name", value, ..., NULL). */
#define make_element(...) lev_test_element_new ("max-tokens", 24, __VA_ARGS__)

static guint
engine_id (GstElement *e)
{
  guint id = 0;
  g_object_get (e, "engine-id", &id, NULL);
  return id;
}

/* A harness around e with text input, playing. */
static GstHarness *
make_harness (GstElement *e)
{
  return lev_test_harness_new (e, "text/x-raw, format=utf8");
}

/* Waits for the end of the current response and returns the text of the buffers before it. */
static gchar *
take_response (GstHarness *h)
{
  return g_string_free (lev_test_take_response (h, FALSE, NULL), FALSE);
}

static void
push_text (GstHarness *h, const gchar *text)
{
  fail_unless_equals_int (lev_test_push_text (h, text), GST_FLOW_OK);
}

/* Each prompt's greedy answer from an element of a group of its own (nothing else on its engine). */
static void
answers_alone (gchar **out)
{
  for (guint i = 0; i < N_STREAMS; i++) {
    GstElement *e = make_element (NULL);
    GstContext *ctx = gst_context_new ("leviathan.engine", TRUE);   /* no group: a group of its own */
    gst_element_set_context (e, ctx);
    gst_context_unref (ctx);
    GstHarness *h = make_harness (e);
    push_text (h, prompts[i]);
    out[i] = take_response (h);
    fail_unless (strlen (out[i]) > 0);
    gst_harness_teardown (h);
  }
}

GST_START_TEST (test_one_engine_per_model)
{
  /* two elements of one pipeline, no context from the application: the default group, one engine */
  GstElement *pipe = gst_pipeline_new (NULL);
  GstElement *a = make_element (NULL), *b = make_element (NULL);
  gst_bin_add_many (GST_BIN (pipe), a, b, NULL);
  fail_unless_equals_int (engine_id (a), 0);
  fail_unless (gst_element_set_state (pipe, GST_STATE_READY) == GST_STATE_CHANGE_SUCCESS);
  fail_unless (engine_id (a) != 0);
  fail_unless_equals_int (engine_id (a), engine_id (b));
  /* the context the first element made was posted and kept by the pipeline */
  GstContext *kept = gst_element_get_context (pipe, "leviathan.engine");
  fail_unless (kept != NULL);
  fail_unless_equals_string (gst_structure_get_string (gst_context_get_structure (kept), "group"), "default");
  gst_context_unref (kept);
  /* another pipeline without a context: the process's default group too */
  GstElement *c = make_element (NULL);
  fail_unless (gst_element_set_state (c, GST_STATE_READY) == GST_STATE_CHANGE_SUCCESS);
  fail_unless_equals_int (engine_id (c), engine_id (a));
  /* other settings of the threads: another engine */
  GstElement *d = make_element ("n-threads", 1, NULL);
  fail_unless (gst_element_set_state (d, GST_STATE_READY) == GST_STATE_CHANGE_SUCCESS);
  fail_unless (engine_id (d) != engine_id (a) && engine_id (d) != 0);
  guint first_id = engine_id (a);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_element_set_state (c, GST_STATE_NULL);
  gst_element_set_state (d, GST_STATE_NULL);
  fail_unless_equals_int (engine_id (a), 0);
  /* all given back: the next load is a new engine */
  fail_unless (gst_element_set_state (c, GST_STATE_READY) == GST_STATE_CHANGE_SUCCESS);
  fail_unless (engine_id (c) != first_id);
  gst_element_set_state (c, GST_STATE_NULL);
  gst_object_unref (c);
  gst_object_unref (d);
  gst_object_unref (pipe);
}
GST_END_TEST;

/* Answers need-context for "leviathan.engine" with the group named in the element's "group-name" data. */
static GstBusSyncReply
answer_need_context (GstBus *bus, GstMessage *msg, gpointer user_data)
{
  const gchar *type;
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_NEED_CONTEXT && gst_message_parse_context_type (msg, &type)
      && strcmp (type, "leviathan.engine") == 0) {
    GstElement *src = GST_ELEMENT (GST_MESSAGE_SRC (msg));
    const gchar *group = g_object_get_data (G_OBJECT (src), "group-name");
    if (group) {
      GstContext *ctx = gst_context_new ("leviathan.engine", TRUE);
      gst_structure_set (gst_context_writable_structure (ctx), "group", G_TYPE_STRING, group, NULL);
      gst_element_set_context (src, ctx);
      gst_context_unref (ctx);
    }
  }
  return GST_BUS_PASS;
}

GST_START_TEST (test_application_contexts)
{
  /* contexts set by the application: two without a group are two engines, even in one pipeline (set after the
   * elements were added: a bin gives a context that a new child brings to all its children) */
  GstElement *pipe = gst_pipeline_new (NULL);
  GstElement *a = make_element (NULL), *b = make_element (NULL);
  GstContext *ca = gst_context_new ("leviathan.engine", TRUE), *cb = gst_context_new ("leviathan.engine", TRUE);
  gst_bin_add_many (GST_BIN (pipe), a, b, NULL);
  gst_element_set_context (a, ca);
  gst_element_set_context (b, cb);
  fail_unless (gst_element_set_state (pipe, GST_STATE_READY) == GST_STATE_CHANGE_SUCCESS);
  fail_unless (engine_id (a) != 0 && engine_id (b) != 0);
  fail_unless (engine_id (a) != engine_id (b));
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (pipe);
  gst_context_unref (ca);
  gst_context_unref (cb);

  /* need-context answered by the application's sync handler: groups by name, across pipelines */
  GstElement *x1 = make_element (NULL), *x2 = make_element (NULL), *y = make_element (NULL);
  g_object_set_data (G_OBJECT (x1), "group-name", (gpointer) "room-a");
  g_object_set_data (G_OBJECT (x2), "group-name", (gpointer) "room-a");
  g_object_set_data (G_OBJECT (y), "group-name", (gpointer) "room-b");
  GstElement *p1 = gst_pipeline_new (NULL), *p2 = gst_pipeline_new (NULL);
  gst_bin_add_many (GST_BIN (p1), x1, y, NULL);
  gst_bin_add (GST_BIN (p2), x2);
  GstBus *bus1 = gst_element_get_bus (p1), *bus2 = gst_element_get_bus (p2);
  gst_bus_set_sync_handler (bus1, answer_need_context, NULL, NULL);
  gst_bus_set_sync_handler (bus2, answer_need_context, NULL, NULL);
  fail_unless (gst_element_set_state (p1, GST_STATE_READY) == GST_STATE_CHANGE_SUCCESS);
  fail_unless (gst_element_set_state (p2, GST_STATE_READY) == GST_STATE_CHANGE_SUCCESS);
  fail_unless (engine_id (x1) != 0 && engine_id (y) != 0);
  fail_unless_equals_int (engine_id (x1), engine_id (x2));
  fail_unless (engine_id (x1) != engine_id (y));
  gst_element_set_state (p1, GST_STATE_NULL);
  gst_element_set_state (p2, GST_STATE_NULL);
  gst_object_unref (bus1);
  gst_object_unref (bus2);
  gst_object_unref (p1);
  gst_object_unref (p2);
}
GST_END_TEST;

GST_START_TEST (test_concurrent_equals_alone)
{
  gchar *alone[N_STREAMS];
  answers_alone (alone);
  /* the same prompts on three elements of one engine at the same time, twice (the second time the streams are at
   * different points: the first answers differ in length) */
  GstHarness *h[N_STREAMS];
  for (guint i = 0; i < N_STREAMS; i++)
    h[i] = make_harness (make_element (NULL));
  for (guint i = 1; i < N_STREAMS; i++)
    fail_unless_equals_int (engine_id (h[i]->element), engine_id (h[0]->element));
  for (guint round = 0; round < 2; round++) {
    for (guint i = 0; i < N_STREAMS; i++)
      push_text (h[i], prompts[i]);
    for (guint i = 0; i < N_STREAMS; i++) {
      gchar *got = take_response (h[i]);
      fail_unless_equals_string (got, alone[i]);
      g_free (got);
    }
  }
  for (guint i = 0; i < N_STREAMS; i++) {
    gst_harness_teardown (h[i]);
    g_free (alone[i]);
  }
}
GST_END_TEST;

GST_START_TEST (test_one_stream_disturbs_none)
{
  gchar *alone[N_STREAMS];
  answers_alone (alone);
  GstHarness *h[N_STREAMS];
  for (guint i = 0; i < N_STREAMS; i++)
    h[i] = make_harness (make_element (NULL));
  /* stream 0 generates endlessly; streams 1 and 2 answer while stream 0 is flushed, answers again, is stopped
   * (PLAYING → NULL) in the middle of a response, and its replacement errors out (token ids out of range) */
  g_object_set (h[0]->element, "max-tokens", 1 << 24, "ignore-eos", TRUE, NULL);
  push_text (h[0], prompts[0]);
  gst_buffer_unref (gst_harness_pull (h[0]));     /* generating */
  for (guint round = 0; round < 3; round++) {
    for (guint i = 1; i < N_STREAMS; i++)
      push_text (h[i], prompts[i]);
    if (round == 0) {
      fail_unless (gst_harness_push_event (h[0], gst_event_new_flush_start ()));
      fail_unless (gst_harness_push_event (h[0], gst_event_new_flush_stop (TRUE)));
      gst_harness_push_event (h[0], gst_event_new_segment (&(GstSegment) { .format = GST_FORMAT_TIME, .rate = 1.0,
                                                                          .applied_rate = 1.0, .stop = -1,
                                                                          .duration = -1 }));
      push_text (h[0], prompts[0]);
    } else if (round == 1) {
      fail_unless (gst_element_set_state (h[0]->element, GST_STATE_NULL) == GST_STATE_CHANGE_SUCCESS);
    } else {
      gst_harness_teardown (h[0]);
      h[0] = make_harness (make_element (NULL));
      gst_harness_set_src_caps_str (h[0], "application/x-leviathan-tokens");
      gint32 bad = 1 << 30;
      gst_harness_push (h[0], gst_buffer_new_memdup (&bad, sizeof bad));
    }
    for (guint i = 1; i < N_STREAMS; i++) {
      gchar *got = take_response (h[i]);
      fail_unless_equals_string (got, alone[i]);
      g_free (got);
    }
  }
  /* EOS on one stream: the others answer on */
  gst_harness_push_event (h[1], gst_event_new_eos ());
  push_text (h[2], prompts[2]);
  gchar *got = take_response (h[2]);
  fail_unless_equals_string (got, alone[2]);
  g_free (got);
  for (guint i = 0; i < N_STREAMS; i++) {
    gst_harness_teardown (h[i]);
    g_free (alone[i]);
  }
}
GST_END_TEST;

static Suite *
streams_suite (void)
{
  Suite *s = suite_create ("levtextgen-streams");
  TCase *tc = tcase_create ("general");
  tcase_set_timeout (tc, 240);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_one_engine_per_model);
  tcase_add_test (tc, test_application_contexts);
  tcase_add_test (tc, test_concurrent_equals_alone);
  tcase_add_test (tc, test_one_stream_disturbs_none);
  return s;
}

int
main (int argc, char **argv)
{
  return lev_test_run_element_suite (&argc, &argv, streams_suite (), "levtextgen-streams", __FILE__);
}
