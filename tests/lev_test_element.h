/* lev_test_element.h: the fixture model, the suite runner and the harness helpers (element, prompts, responses,
 * system plugins) shared by the GstCheck tests of levtextgen. */
#pragma once

#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <glib/gstdio.h>
#include <string.h>

#include "lev_test_common.h"

static gchar *model_path;     /* stories260K converted once for the whole run */
static gchar *tmp_dir;

/* Converts the stories260K fixture with levconvert ($LEV_LEVCONVERT) into a temporary directory. */
static void
lev_test_convert_model (void)
{
  gchar *bin = lev_test_fixture ("stories260K/stories260K.bin");
  gchar *tok = lev_test_fixture ("stories260K/tok512.bin");
  const gchar *levconvert = g_getenv ("LEV_LEVCONVERT");
  g_assert_nonnull (levconvert);
  tmp_dir = g_dir_make_tmp ("lev-element-XXXXXX", NULL);
  model_path = g_build_filename (tmp_dir, "stories.leviathan", NULL);
  /* a cross build's levconvert runs under its qemu-user wrapper (tests/meson.build: LEV_TEST_EXE_WRAPPER) */
  gchar *cmd = g_strdup_printf ("%s %s", g_getenv ("LEV_TEST_EXE_WRAPPER") ? g_getenv ("LEV_TEST_EXE_WRAPPER") : "",
                                levconvert);
  gchar **wrapped = g_strsplit_set (g_strstrip (cmd), " ", -1);
  GPtrArray *args = g_ptr_array_new ();
  for (gchar **w = wrapped; *w; w++)
    if (**w)
      g_ptr_array_add (args, *w);
  const gchar *rest[] = { bin, "--tokenizer", tok, "-o", model_path, "-q", NULL };
  for (const gchar **r = rest; *r; r++)
    g_ptr_array_add (args, (gpointer) *r);
  g_ptr_array_add (args, NULL);
  gint status = 0;
  GError *err = NULL;
  if (!g_spawn_sync (NULL, (gchar **) args->pdata, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, &status, &err)
      || !g_spawn_check_wait_status (status, &err))
    g_error ("levconvert failed: %s", err->message);
  g_ptr_array_free (args, TRUE);
  g_strfreev (wrapped);
  g_free (cmd);
  g_free (bin);
  g_free (tok);
}

/* The main of a levtextgen test program: converts the model, runs the suite, removes the model; returns the
 * suite's exit status. */
static int
lev_test_run_element_suite (int *argc, char ***argv, Suite *suite, const char *name, const char *file)
{
  gst_check_init (argc, argv);
  lev_test_convert_model ();
  int rc = gst_check_run_suite (suite, name, file);
  g_unlink (model_path);
  g_rmdir (tmp_dir);
  g_free (model_path);
  g_free (tmp_dir);
  return rc;
}

/* A levtextgen with the fixture model, greedy, plus properties ("name", value, ..., NULL). */
static inline GstElement *
lev_test_element_new (const gchar *first_prop, ...)
{
  GstElement *e = gst_element_factory_make ("levtextgen", NULL);
  fail_unless (e != NULL, "levtextgen not found (GST_PLUGIN_PATH?)");
  g_object_set (e, "model", model_path, "temperature", 0.0f, NULL);
  if (first_prop) {
    va_list ap;
    va_start (ap, first_prop);
    g_object_set_valist (G_OBJECT (e), first_prop, ap);
    va_end (ap);
  }
  return e;
}

/* A harness around e (taking the caller's reference) with src_caps on its input, playing. */
static inline GstHarness *
lev_test_harness_new (GstElement *e, const gchar *src_caps)
{
  GstHarness *h = gst_harness_new_with_element (e, "sink", "src");
  gst_object_unref (e);
  gst_harness_set_src_caps_str (h, src_caps);
  gst_harness_play (h);
  return h;
}

/* Pushes text as one buffer; returns the flow return of the push. */
static inline GstFlowReturn
lev_test_push_text (GstHarness *h, const gchar *text)
{
  return gst_harness_push (h, gst_buffer_new_memdup (text, strlen (text)));
}

/* TRUE for levtextgen's end-of-response event. */
static inline gboolean
lev_test_is_end_of_response (GstEvent *ev)
{
  return GST_EVENT_TYPE (ev) == GST_EVENT_CUSTOM_DOWNSTREAM
      && gst_structure_has_name (gst_event_get_structure (ev), "leviathan/end-of-response");
}

/* Pulls events until the end of a response and returns it (unref it); fails on EOS first or when none comes. */
static inline GstEvent *
lev_test_pull_end_of_response (GstHarness *h)
{
  for (;;) {
    GstEvent *ev = gst_harness_pull_event (h);
    fail_unless (ev != NULL, "no end-of-response event");
    if (lev_test_is_end_of_response (ev))
      return ev;
    fail_if (GST_EVENT_TYPE (ev) == GST_EVENT_EOS, "EOS before the end of the response");
    gst_event_unref (ev);
  }
}

/* Takes every buffer in the harness's queue and returns their bytes concatenated (g_string_free it); with utf8 each
 * buffer must be valid UTF-8; *n_bufs (may be NULL) gets their number. */
static inline GString *
lev_test_take_buffers (GstHarness *h, gboolean utf8, guint *n_bufs)
{
  GString *s = g_string_new (NULL);
  guint n = 0;
  GstBuffer *b;
  while ((b = gst_harness_try_pull (h))) {
    GstMapInfo map;
    fail_unless (gst_buffer_map (b, &map, GST_MAP_READ));
    fail_unless (!utf8 || g_utf8_validate ((const gchar *) map.data, (gssize) map.size, NULL));
    g_string_append_len (s, (const gchar *) map.data, (gssize) map.size);
    gst_buffer_unmap (b, &map);
    gst_buffer_unref (b);
    n++;
  }
  if (n_bufs)
    *n_bufs = n;
  return s;
}

/* Waits for the end of the current response and returns the bytes of the buffers before it (g_string_free it);
 * utf8 and n_bufs as lev_test_take_buffers. */
static inline GString *
lev_test_take_response (GstHarness *h, gboolean utf8, guint *n_bufs)
{
  gst_event_unref (lev_test_pull_end_of_response (h));
  return lev_test_take_buffers (h, utf8, n_bufs);
}

/* Loads a plugin of the system's plugin directory (the tests run with GST_PLUGIN_SYSTEM_PATH empty: the harness
 * tests see only the build tree's plugin). */
static inline void
lev_test_load_system_plugin (const gchar *file)
{
  gchar *path = g_build_filename (LEV_GST_SYSTEM_PLUGINS, file, NULL);
  GError *err = NULL;
  GstPlugin *plugin = gst_plugin_load_file (path, &err);
  fail_unless (plugin != NULL, "%s: %s", path, err ? err->message : "?");
  gst_object_unref (plugin);
  g_free (path);
}
