/* fuzz_replay.c: main() for the fuzz targets without libFuzzer: feeds every file of the given files and
 * directories (seed corpora, regression inputs) to LLVMFuzzerTestOneInput, for the normal test suite. */
#include "fuzz_common.h"

/* Feeds one file to the target; returns FALSE if it cannot be read. */
static gboolean
replay_file (const gchar *path)
{
  gchar *data = NULL;
  gsize len = 0;
  GError *error = NULL;
  if (!g_file_get_contents (path, &data, &len, &error)) {
    fprintf (stderr, "cannot read %s: %s\n", path, error->message);
    g_error_free (error);
    return FALSE;
  }
  /* a copy of exactly len bytes, so that ASan sees a read past the input (never NULL, as with libFuzzer) */
  guint8 *copy = g_malloc (len ? len : 1);
  if (len)
    memcpy (copy, data, len);
  LLVMFuzzerTestOneInput (copy, len);
  g_free (copy);
  g_free (data);
  return TRUE;
}

/* Compares two file names for a stable replay order. */
static gint
cmp_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const gchar *const *) a, *(const gchar *const *) b);
}

/* Replays each argument (a file, or every file in a directory except dot files and README*). A missing argument
 * is a failure (a moved or misspelt corpus folder must not pass as an empty one). Exits 0 when every argument was
 * there and every file was fed. */
int
main (int argc, char **argv)
{
  LLVMFuzzerInitialize (&argc, &argv);
  guint n = 0, bad = 0;
  for (int a = 1; a < argc; a++) {
    if (g_file_test (argv[a], G_FILE_TEST_IS_REGULAR)) {
      bad += !replay_file (argv[a]);
      n++;
      continue;
    }
    GDir *d = g_dir_open (argv[a], 0, NULL);
    if (d == NULL) {
      fprintf (stderr, "%s: no such file or directory\n", argv[a]);
      bad++;
      continue;
    }
    GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
    const gchar *name;
    while ((name = g_dir_read_name (d)) != NULL)
      if (name[0] != '.' && !g_str_has_prefix (name, "README"))
        g_ptr_array_add (names, g_strdup (name));
    g_dir_close (d);
    g_ptr_array_sort (names, cmp_names);
    for (guint i = 0; i < names->len; i++) {
      gchar *path = g_build_filename (argv[a], g_ptr_array_index (names, i), NULL);
      if (g_file_test (path, G_FILE_TEST_IS_REGULAR)) {
        fprintf (stderr, "replay %s\n", path);
        bad += !replay_file (path);
        n++;
      }
      g_free (path);
    }
    g_ptr_array_unref (names);
  }
  printf ("%u inputs replayed, %u missing or unreadable\n", n, bad);
  return bad ? 1 : 0;
}
