/* lev_test_element.h: the fixture model and the suite runner shared by the GstCheck tests of levtextgen. */
#pragma once

#include <gst/check/gstcheck.h>
#include <glib/gstdio.h>

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
