/* fuzz_common.h: helpers shared by the libFuzzer targets (temporary files, fixture lookup, input splitting). */
#pragma once

#include <glib.h>
#include <glib/gstdio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The entry points every target defines (libFuzzer's, or tests/fuzz/fuzz_replay.c's main calls them). */
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
int LLVMFuzzerInitialize (int *argc, char ***argv);

/* Marker between the files packed into one input (fuzz_hf's config.json, model.safetensors, ...). */
#define FUZZ_FILE_SEP "\n--lev-fuzz-file--\n"

static gchar *fuzz_tmp_dir;

/* Prints GLib warnings and worse; criticals abort (SIGABRT), which libFuzzer catches and keeps the input for
 * (GLib's own fatal path raises SIGTRAP, which it does not). */
static void
fuzz_log_handler (const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data)
{
  if (level & (G_LOG_LEVEL_INFO | G_LOG_LEVEL_DEBUG))
    return;
  fprintf (stderr, "%s: %s\n", domain ? domain : "glib", message);
  if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
    abort ();
}

/* Installs fuzz_log_handler before any target code runs. */
__attribute__ ((constructor)) static void
fuzz_install_log_handler (void)
{
  g_log_set_default_handler (fuzz_log_handler, NULL);
}

/* Removes the files in the scratch directory (not recursive: the targets write plain files only). */
static inline void
fuzz_clear_dir (const gchar *dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  if (d == NULL)
    return;
  const gchar *name;
  while ((name = g_dir_read_name (d)) != NULL) {
    gchar *p = g_build_filename (dir, name, NULL);
    g_unlink (p);
    g_free (p);
  }
  g_dir_close (d);
}

/* Removes the scratch directory at exit. */
static inline void
fuzz_remove_tmp_dir (void)
{
  if (fuzz_tmp_dir == NULL)
    return;
  fuzz_clear_dir (fuzz_tmp_dir);
  g_rmdir (fuzz_tmp_dir);
  g_clear_pointer (&fuzz_tmp_dir, g_free);
}

/* Returns this process's scratch directory (made once, under $TMPDIR, removed at exit). */
static inline const gchar *
fuzz_dir (void)
{
  if (fuzz_tmp_dir == NULL) {
    fuzz_tmp_dir = g_dir_make_tmp ("lev-fuzz-XXXXXX", NULL);
    if (fuzz_tmp_dir == NULL) {
      fprintf (stderr, "fuzz: cannot make a temporary directory\n");
      abort ();
    }
    atexit (fuzz_remove_tmp_dir);
  }
  return fuzz_tmp_dir;
}

/* Writes len bytes to name in the scratch directory and returns its path (g_free it); aborts if it cannot. */
static inline gchar *
fuzz_write (const gchar *name, const void *data, size_t len)
{
  gchar *path = g_build_filename (fuzz_dir (), name, NULL);
  GError *error = NULL;
  if (!g_file_set_contents (path, len ? (const gchar *) data : "", (gssize) len, &error)) {
    fprintf (stderr, "fuzz: cannot write %s: %s\n", path, error->message);
    abort ();
  }
  return path;
}

/* Returns the path of a fixture under $LEV_FIXTURES (or LEV_FUZZ_FIXTURES, the source tree's tests/data);
 * when it is missing the program exits 77 (meson's skip), or 1 under CI=true. g_free the result. */
static inline gchar *
fuzz_fixture (const gchar *rel)
{
  const gchar *dir = g_getenv ("LEV_FIXTURES");
#ifdef LEV_FUZZ_FIXTURES
  if (dir == NULL)
    dir = LEV_FUZZ_FIXTURES;
#endif
  gchar *path = g_build_filename (dir ? dir : "tests/data", rel, NULL);
  if (!g_file_test (path, G_FILE_TEST_EXISTS)) {
    const gchar *ci = g_getenv ("CI");
    gboolean in_ci = ci && g_ascii_strcasecmp (ci, "true") == 0;
    fprintf (stderr, "%s: fixture %s is missing%s\n", in_ci ? "FAIL" : "SKIP", path, in_ci ? " and CI=true" : "");
    exit (in_ci ? 1 : 77);
  }
  return path;
}

/* Splits data at every FUZZ_FILE_SEP into at most max parts (the last takes the rest); returns the count. */
static inline size_t
fuzz_split (const uint8_t *data, size_t size, const uint8_t **parts, size_t *lens, size_t max)
{
  const size_t sl = strlen (FUZZ_FILE_SEP);
  size_t n = 0, start = 0;
  for (size_t i = 0; n + 1 < max && i + sl <= size; i++) {
    if (memcmp (data + i, FUZZ_FILE_SEP, sl) == 0) {
      parts[n] = data + start;
      lens[n++] = i - start;
      start = i + sl;
      i += sl - 1;
    }
  }
  parts[n] = data + start;
  lens[n++] = size - start;
  return n;
}

/* Aborts with a message: the targets' own checks (a crash for libFuzzer, a failure for the replay test). */
#define FUZZ_CHECK(cond, ...)                                                                                          \
  do {                                                                                                                 \
    if (!(cond)) {                                                                                                     \
      fprintf (stderr, "fuzz check failed at %s:%d: %s: ", __FILE__, __LINE__, #cond);                                 \
      fprintf (stderr, __VA_ARGS__);                                                                                   \
      fputc ('\n', stderr);                                                                                            \
      abort ();                                                                                                        \
    }                                                                                                                  \
  } while (0)
