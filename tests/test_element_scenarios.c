/* test_element_scenarios.c: gst-validate-style scenarios for levtextgen in real pipelines: seeks (flushing) at
 * random points, caps renegotiation on both pads, a model change through NULL while the rest of the pipeline runs.
 * Run under the leaks tracer too (meson test element_leaks). */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <glib/gstdio.h>
#include <string.h>

#include "lev_test_element.h"

/* Waits up to ms for an error or EOS on the bus of pipeline; returns the message type seen (0 when none). */
static GstMessageType
wait_bus (GstElement *pipeline, guint ms, gchar **error_text)
{
  GstBus *bus = gst_element_get_bus (pipeline);
  GstMessage *m = gst_bus_timed_pop_filtered (bus, ms * GST_MSECOND, GST_MESSAGE_ERROR | GST_MESSAGE_EOS);
  gst_object_unref (bus);
  if (!m)
    return 0;
  GstMessageType t = GST_MESSAGE_TYPE (m);
  if (t == GST_MESSAGE_ERROR && error_text) {
    GError *err = NULL;
    gst_message_parse_error (m, &err, NULL);
    *error_text = g_strdup (err->message);
    g_error_free (err);
  }
  gst_message_unref (m);
  return t;
}

/* Counts end-of-response events passing a pad. */
static GstPadProbeReturn
count_responses (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  if (lev_test_is_end_of_response (GST_PAD_PROBE_INFO_EVENT (info)))
    g_atomic_int_inc ((gint *) user_data);
  return GST_PAD_PROBE_OK;
}

GST_START_TEST (test_seek_at_random_points)
{
  /* filesrc (lines) ! levtextgen ! fakesink sync=false: flushing byte seeks from the sink at random moments, some
   * in the middle of a generation; the pipeline must keep answering, raise no error and end with EOS */
  lev_test_load_system_plugin ("libgstcoreelements.so");
  gchar *text_path = g_build_filename (tmp_dir, "lines.txt", NULL);
  GString *lines = g_string_new (NULL);
  for (guint i = 0; i < 20; i++)
    g_string_append_printf (lines, "Once upon a time there was a dog number %u.\n", i);
  fail_unless (g_file_set_contents (text_path, lines->str, (gssize) lines->len, NULL));
  gchar *desc = g_strdup_printf ("filesrc location=\"%s\" blocksize=64 ! levtextgen name=gen model=\"%s\" n-threads=1 "
                                 "temperature=0 max-tokens=6 ignore-eos=true prompt-mode=line ! fakesink "
                                 "name=sink sync=false", text_path, model_path);
  GError *err = NULL;
  GstElement *pipeline = gst_parse_launch (desc, &err);
  fail_unless (pipeline != NULL, "%s", err ? err->message : "");
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  GstPad *sinkpad = gst_element_get_static_pad (sink, "sink");
  gint responses = 0;
  gst_pad_add_probe (sinkpad, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, count_responses, &responses, NULL);
  fail_unless (gst_element_set_state (pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  fail_unless (gst_element_get_state (pipeline, NULL, NULL, 30 * GST_SECOND) == GST_STATE_CHANGE_SUCCESS);
  GRand *rand = g_rand_new_with_seed (19);
  for (guint i = 0; i < 12; i++) {
    g_usleep ((gulong) g_rand_int_range (rand, 0, 20000));
    gint64 pos = g_rand_int_range (rand, 0, (gint32) lines->len);
    fail_unless (gst_element_seek_simple (pipeline, GST_FORMAT_BYTES, GST_SEEK_FLAG_FLUSH, pos),
                 "seek %u to byte %" G_GINT64_FORMAT " refused", i, pos);
    gchar *text = NULL;
    fail_if (wait_bus (pipeline, 1, &text) == GST_MESSAGE_ERROR, "error after seek %u: %s", i, text);
  }
  /* after the last seek the rest of the file is answered to the end */
  gchar *text = NULL;
  GstMessageType t = wait_bus (pipeline, 120000, &text);
  fail_unless (t == GST_MESSAGE_EOS, "no EOS after the seeks (%s)", text ? text : "timeout");
  fail_unless (g_atomic_int_get (&responses) > 0);
  fail_unless_equals_int (gst_element_set_state (pipeline, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  g_rand_free (rand);
  gst_object_unref (sinkpad);
  gst_object_unref (sink);
  gst_object_unref (pipeline);
  g_unlink (text_path);
  g_free (text_path);
  g_free (desc);
  g_string_free (lines, TRUE);
}
GST_END_TEST;

GST_START_TEST (test_caps_renegotiation)
{
  /* downstream switches from text to token ids and back between responses (a RECONFIGURE event), upstream from
   * text/x-raw to text/plain: each response comes out in the caps negotiated last, the same greedy answer */
  GstElement *e = lev_test_element_new ("n-threads", 1, "max-tokens", 8, "ignore-eos", TRUE, NULL);
  GstHarness *h = gst_harness_new_with_element (e, "sink", "src");
  gst_object_unref (e);
  gst_harness_set_src_caps_str (h, "text/x-raw, format=utf8");
  gst_harness_set_sink_caps_str (h, "text/x-raw, format=utf8");
  gst_harness_play (h);
  const gchar *q = "Once upon a time";
  guint n = 0;
  fail_unless_equals_int (lev_test_push_text (h, q), GST_FLOW_OK);
  GString *text1 = lev_test_take_response (h, FALSE, &n);
  fail_unless (n > 0 && text1->len > 0);
  for (guint round = 0; round < 3; round++) {
    /* token ids */
    gst_harness_set_sink_caps_str (h, "application/x-leviathan-tokens");
    gst_harness_push_upstream_event (h, gst_event_new_reconfigure ());
    fail_unless_equals_int (lev_test_push_text (h, q), GST_FLOW_OK);
    GString *ids = lev_test_take_response (h, FALSE, &n);
    fail_unless_equals_int (ids->len, 8 * 4);          /* max-tokens ids, 4 bytes each */
    GstCaps *caps = gst_pad_get_current_caps (h->sinkpad);
    fail_unless (gst_structure_has_name (gst_caps_get_structure (caps, 0), "application/x-leviathan-tokens"));
    gst_caps_unref (caps);
    g_string_free (ids, TRUE);
    /* text again, upstream now text/plain */
    gst_harness_set_sink_caps_str (h, "text/x-raw, format=utf8");
    gst_harness_push_upstream_event (h, gst_event_new_reconfigure ());
    gst_harness_set_src_caps_str (h, round % 2 ? "text/x-raw, format=utf8" : "text/plain");
    fail_unless_equals_int (lev_test_push_text (h, q), GST_FLOW_OK);
    GString *text2 = lev_test_take_response (h, FALSE, &n);
    fail_unless (text2->len == text1->len && memcmp (text2->str, text1->str, text1->len) == 0,
                 "round %u: another answer after renegotiation", round);
    g_string_free (text2, TRUE);
  }
  g_string_free (text1, TRUE);
  gst_harness_teardown (h);
}
GST_END_TEST;

/* Counts buffers reaching a fakesink. */
static void
count_handoff (GstElement *sink, GstBuffer *buf, GstPad *pad, gpointer user_data)
{
  g_atomic_int_inc ((gint *) user_data);
}

/* TRUE when this process maps path. */
static gboolean
maps_file (const gchar *path)
{
  gchar *maps = NULL;
  fail_unless (g_file_get_contents ("/proc/self/maps", &maps, NULL, NULL));
  gboolean found = strstr (maps, path) != NULL;
  g_free (maps);
  return found;
}

GST_START_TEST (test_model_change_through_null)
{
  /* a pipeline with a levtextgen branch (appsrc ! levtextgen ! appsink) and an independent branch that keeps
   * running (audiotestsrc ! fakesink sync=true): levtextgen alone goes to NULL (its state locked), gets another
   * model file, and comes back; the other branch never stops, the old file is no longer mapped, the new one
   * answers */
  lev_test_load_system_plugin ("libgstcoreelements.so");
  lev_test_load_system_plugin ("libgstapp.so");
  lev_test_load_system_plugin ("libgstaudiotestsrc.so");
  gchar *model_b = g_build_filename (tmp_dir, "model-b.leviathan", NULL);
  gchar *data;
  gsize len;
  fail_unless (g_file_get_contents (model_path, &data, &len, NULL));
  fail_unless (g_file_set_contents (model_b, data, (gssize) len, NULL));
  g_free (data);
  gchar *desc = g_strdup_printf ("appsrc name=src format=time caps=\"text/x-raw,format=utf8\" ! levtextgen name=gen "
                                 "model=\"%s\" n-threads=1 temperature=0 max-tokens=8 ignore-eos=true ! "
                                 "appsink name=out sync=false "
                                 "audiotestsrc is-live=true samplesperbuffer=441 ! fakesink name=other sync=true "
                                 "signal-handoffs=true",
                                 model_path);
  GError *err = NULL;
  GstElement *pipeline = gst_parse_launch (desc, &err);
  fail_unless (pipeline != NULL, "%s", err ? err->message : "");
  GstElement *src = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  GstElement *gen = gst_bin_get_by_name (GST_BIN (pipeline), "gen");
  GstElement *out = gst_bin_get_by_name (GST_BIN (pipeline), "out");
  GstElement *other = gst_bin_get_by_name (GST_BIN (pipeline), "other");
  gint other_buffers = 0;
  g_signal_connect (other, "handoff", G_CALLBACK (count_handoff), &other_buffers);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  fail_unless (gst_element_get_state (pipeline, NULL, NULL, 30 * GST_SECOND) != GST_STATE_CHANGE_FAILURE);
  const gchar *q = "Once upon a time";
  GString *answers[2] = { g_string_new (NULL), g_string_new (NULL) };
  for (guint k = 0; k < 2; k++) {
    if (k == 1) {
      /* the swap: only levtextgen goes through NULL */
      gint before = g_atomic_int_get (&other_buffers);
      gst_element_set_locked_state (gen, TRUE);
      fail_unless_equals_int (gst_element_set_state (gen, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
      fail_if (maps_file (model_path), "the old model is still mapped after NULL");
      g_object_set (gen, "model", model_b, NULL);
      g_usleep (100000);
      fail_unless (g_atomic_int_get (&other_buffers) > before, "the other branch stopped during the swap");
      gst_element_set_locked_state (gen, FALSE);
      fail_unless (gst_element_sync_state_with_parent (gen));
      fail_unless (gst_element_get_state (gen, NULL, NULL, 30 * GST_SECOND) != GST_STATE_CHANGE_FAILURE);
      fail_unless (maps_file (model_b), "the new model is not mapped");
      GstState st;
      gst_element_get_state (other, &st, NULL, 0);
      fail_unless_equals_int (st, GST_STATE_PLAYING);
    }
    GstBuffer *b = gst_buffer_new_memdup (q, strlen (q));
    GstFlowReturn ret = GST_FLOW_ERROR;
    g_signal_emit_by_name (src, "push-buffer", b, &ret);
    gst_buffer_unref (b);
    fail_unless_equals_int (ret, GST_FLOW_OK);
    for (guint got = 0; got < 8;) {
      GstSample *sample = NULL;
      g_signal_emit_by_name (out, "try-pull-sample", (GstClockTime) (60 * GST_SECOND), &sample);
      fail_unless (sample != NULL, "answer %u: no output", k);
      GstBuffer *ob = gst_sample_get_buffer (sample);
      GstMapInfo map;
      fail_unless (gst_buffer_map (ob, &map, GST_MAP_READ));
      g_string_append_len (answers[k], (const gchar *) map.data, (gssize) map.size);
      gst_buffer_unmap (ob, &map);
      got += (guint) (GST_BUFFER_OFFSET_END (ob) - GST_BUFFER_OFFSET (ob));
      gst_sample_unref (sample);
    }
  }
  /* the same weights in another file: the same greedy answer */
  fail_unless_equals_string (answers[0]->str, answers[1]->str);
  gchar *text = NULL;
  fail_if (wait_bus (pipeline, 1, &text) == GST_MESSAGE_ERROR, "error: %s", text);
  fail_unless_equals_int (gst_element_set_state (pipeline, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
  g_string_free (answers[0], TRUE);
  g_string_free (answers[1], TRUE);
  gst_object_unref (src);
  gst_object_unref (gen);
  gst_object_unref (out);
  gst_object_unref (other);
  gst_object_unref (pipeline);
  g_unlink (model_b);
  g_free (model_b);
  g_free (desc);
}
GST_END_TEST;

static Suite *
scenario_suite (void)
{
  Suite *s = suite_create ("levtextgen-scenarios");
  TCase *tc = tcase_create ("scenarios");
  tcase_set_timeout (tc, 240);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_seek_at_random_points);
  tcase_add_test (tc, test_caps_renegotiation);
  tcase_add_test (tc, test_model_change_through_null);
  return s;
}

int
main (int argc, char **argv)
{
  return lev_test_run_element_suite (&argc, &argv, scenario_suite (), "levtextgen-scenarios", __FILE__);
}
