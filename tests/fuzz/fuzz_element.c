/* fuzz_element.c: libFuzzer target: the levtextgen element driven through GstHarness by random buffers, events,
 * caps and property changes (stories260K, converted once at start). */
#include <gst/check/gstharness.h>

#include "fuzz_common.h"

static gchar *model_file;
static gchar *token_caps;        /* application/x-leviathan-tokens with this model's vocab field */

/* Converts the stories260K fixture with levconvert ($LEV_LEVCONVERT) and initializes GStreamer (the plugin comes
 * from $GST_PLUGIN_PATH_1_0: meson test and scripts/fuzz.sh set it to the build's gst-plugin folder). */
int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  gst_init (NULL, NULL);
  const gchar *levconvert = g_getenv ("LEV_LEVCONVERT");
  if (!levconvert) {
    fprintf (stderr, "fuzz_element: LEV_LEVCONVERT is not set\n");
    abort ();
  }
  gchar *bin = fuzz_fixture ("stories260K/stories260K.bin"), *tok = fuzz_fixture ("stories260K/tok512.bin");
  model_file = g_build_filename (fuzz_dir (), "stories.leviathan", NULL);
  const gchar *cmd[] = { levconvert, bin, "--tokenizer", tok, "-o", model_file, "-q", NULL };
  gint status = 0;
  GError *err = NULL;
  if (!g_spawn_sync (NULL, (gchar **) cmd, NULL, G_SPAWN_DEFAULT, NULL, NULL, NULL, NULL, &status, &err)
      || !g_spawn_check_wait_status (status, &err)) {
    fprintf (stderr, "fuzz_element: levconvert failed: %s\n", err->message);
    abort ();
  }
  g_free (bin);
  g_free (tok);
  GstElement *probe = gst_element_factory_make ("levtextgen", NULL);
  if (!probe) {
    fprintf (stderr, "fuzz_element: levtextgen not found (GST_PLUGIN_PATH_1_0?)\n");
    abort ();
  }
  /* the token caps of this vocabulary, as the element advertises them once the model is loaded */
  g_object_set (probe, "model", model_file, NULL);
  if (gst_element_set_state (probe, GST_STATE_READY) != GST_STATE_CHANGE_SUCCESS)
    abort ();
  GstPad *sink = gst_element_get_static_pad (probe, "sink");
  GstCaps *caps = gst_pad_query_caps (sink, NULL);
  for (guint i = 0; i < gst_caps_get_size (caps); i++)
    if (gst_structure_has_name (gst_caps_get_structure (caps, i), "application/x-leviathan-tokens"))
      token_caps = gst_structure_to_string (gst_caps_get_structure (caps, i));
  gst_caps_unref (caps);
  gst_object_unref (sink);
  gst_element_set_state (probe, GST_STATE_NULL);
  gst_object_unref (probe);
  if (!token_caps)
    abort ();
  return 0;
}

/* Reads the next byte of the input (0 past its end). */
static guint8
next_byte (const uint8_t *data, size_t size, size_t *p)
{
  return *p < size ? data[(*p)++] : 0;
}

/* A buffer with a copy of n bytes (an empty buffer for none: gst_buffer_new_memdup refuses 0 bytes). */
static GstBuffer *
make_buffer (const uint8_t *bytes, size_t n)
{
  return n ? gst_buffer_new_memdup (bytes, n) : gst_buffer_new ();
}

/* Checks and drops what the harness received: text buffers valid UTF-8, token buffers whole int32 ids. */
static void
drain (GstHarness *h, gboolean *tokens)
{
  GstEvent *ev;
  while ((ev = gst_harness_try_pull_event (h))) {
    if (GST_EVENT_TYPE (ev) == GST_EVENT_CAPS) {
      GstCaps *caps;
      gst_event_parse_caps (ev, &caps);
      *tokens = gst_structure_has_name (gst_caps_get_structure (caps, 0), "application/x-leviathan-tokens");
    }
    gst_event_unref (ev);
  }
  GstBuffer *b;
  while ((b = gst_harness_try_pull (h))) {
    GstMapInfo map;
    FUZZ_CHECK (gst_buffer_map (b, &map, GST_MAP_READ), "cannot map an output buffer");
    if (*tokens)
      FUZZ_CHECK (map.size % 4 == 0, "a token buffer of %zu bytes", map.size);
    else
      FUZZ_CHECK (g_utf8_validate ((const gchar *) map.data, (gssize) map.size, NULL), "invalid UTF-8 output");
    gst_buffer_unmap (b, &map);
    gst_buffer_unref (b);
  }
  while ((ev = gst_harness_try_pull_upstream_event (h)))
    gst_event_unref (ev);
}

/* Sets one property from two input bytes (small values: generation stays short). */
static void
set_property (GstElement *e, guint8 which, guint8 v)
{
  static const char *const outputs[] = { "token", "word", "sentence", "response" };
  static const char *const prompts[] = { "buffer", "line", "utterance" };
  static const char *const templates[] = { "auto", "none", "llama2", "llama3", "chatml", "zephyr", "bitnet" };
  switch (which % 12) {
  case 0: gst_util_set_object_arg (G_OBJECT (e), "output-mode", outputs[v % 4]); break;
  case 1: gst_util_set_object_arg (G_OBJECT (e), "prompt-mode", prompts[v % 3]); break;
  case 2: g_object_set (e, "max-tokens", 1 + v % 8, NULL); break;
  case 3: g_object_set (e, "temperature", (gdouble) (v % 4) * 0.5, "seed", (gint64) v, NULL); break;
  case 4: gst_util_set_object_arg (G_OBJECT (e), "chat-template", templates[v % 7]); break;
  case 5: g_object_set (e, "keep-history", (gboolean) (v & 1), NULL); break;
  case 6: g_object_set (e, "max-prompt-bytes", 16 + v, NULL); break;
  case 7: g_object_set (e, "parse-special", (gboolean) (v & 1), "ignore-eos", (gboolean) ((v & 2) != 0), NULL); break;
  case 8: gst_util_set_object_arg (G_OBJECT (e), "stop-strings", v & 1 ? "<\"the\",\"\\\\n\">" : "<>"); break;
  case 9: g_object_set (e, "response-separator", v & 1 ? "--" : NULL, NULL); break;
  case 10: g_object_set (e, "system-prompt", v & 1 ? "Be brief." : NULL, NULL); break;
  default: g_object_set (e, "top-k", (gint) v, "top-p", 0.5 + (v % 50) / 100.0, NULL); break;
  }
}

/* The input is a program: each step's first byte picks an operation (push text of the next byte's length, push
 * token ids, flush, end of utterance, a caps change on either side, a property, the cancel or clear-history
 * action, a segment, EOS, drain), the following bytes are its operands. The element must never crash, raise a
 * critical or output invalid UTF-8 / partial ids; at the end it must go to NULL. */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  GstElement *e = gst_element_factory_make ("levtextgen", NULL);
  g_object_set (e, "model", model_file, "n-threads", 1, "context-length", 64, "max-tokens", 4, "temperature", 0.0,
                NULL);
  GstHarness *h = gst_harness_new_with_element (e, "sink", "src");
  gst_object_unref (e);
  gst_harness_set_src_caps_str (h, "text/x-raw, format=utf8");
  gst_harness_play (h);
  gboolean tokens = FALSE, in_tokens = FALSE, after_eos = FALSE;
  for (size_t p = 0; p < size;) {
    guint8 op = next_byte (data, size, &p);
    switch (op % 13) {
    case 0:
    case 1: {                          /* text */
      size_t want = next_byte (data, size, &p), n = MIN (want, size - p);
      if (!in_tokens)
        gst_harness_push (h, make_buffer (data + p, n));
      p += n;
      break;
    }
    case 2: {                          /* token ids (any bytes) */
      size_t want = next_byte (data, size, &p) % 64, n = MIN (want, size - p);
      if (in_tokens)
        gst_harness_push (h, make_buffer (data + p, n));
      p += n;
      break;
    }
    case 3:                            /* flush */
      gst_harness_push_event (h, gst_event_new_flush_start ());
      gst_harness_push_event (h, gst_event_new_flush_stop (next_byte (data, size, &p) & 1));
      after_eos = FALSE;               /* flush-stop clears the pad's EOS */
      break;
    case 4:                            /* end of utterance */
      gst_harness_push_event (h, gst_event_new_custom (GST_EVENT_CUSTOM_DOWNSTREAM,
                                                       gst_structure_new_empty ("rstranscribe/final-transcript")));
      break;
    case 5: {                          /* input caps */
      guint8 v = next_byte (data, size, &p) % 3;
      if (after_eos)                   /* a pad refuses caps after EOS; the harness asserts they were taken */
        break;
      in_tokens = v == 2;
      gst_harness_set_src_caps_str (h, v == 0 ? "text/x-raw, format=utf8" : v == 1 ? "text/plain" : token_caps);
      break;
    }
    case 6: {                          /* output caps */
      guint8 v = next_byte (data, size, &p) & 1;
      gst_harness_set_sink_caps_str (h, v ? "application/x-leviathan-tokens" : "text/x-raw, format=utf8");
      gst_harness_push_upstream_event (h, gst_event_new_reconfigure ());
      break;
    }
    case 7:
    case 8: {
      guint8 which = next_byte (data, size, &p);
      set_property (h->element, which, next_byte (data, size, &p));
      break;
    }
    case 9:
      g_signal_emit_by_name (h->element, next_byte (data, size, &p) & 1 ? "cancel" : "clear-history");
      break;
    case 10: {                         /* a segment */
      GstSegment seg;
      gst_segment_init (&seg, next_byte (data, size, &p) & 1 ? GST_FORMAT_TIME : GST_FORMAT_BYTES);
      gst_harness_push_event (h, gst_event_new_segment (&seg));
      break;
    }
    case 11:                           /* EOS (later pushes may be refused) */
      if (next_byte (data, size, &p) % 4 == 0) {
        gst_harness_push_event (h, gst_event_new_eos ());
        after_eos = TRUE;
      }
      break;
    default:
      g_usleep (1000);
      drain (h, &tokens);
      break;
    }
  }
  drain (h, &tokens);
  FUZZ_CHECK (gst_element_set_state (h->element, GST_STATE_NULL) == GST_STATE_CHANGE_SUCCESS, "NULL refused");
  drain (h, &tokens);
  gst_harness_teardown (h);
  return 0;
}
