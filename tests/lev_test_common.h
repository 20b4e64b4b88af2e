/* lev_test_common.h: helpers shared by the C tests (fixture lookup with skip-or-fail, float comparison, id counts,
 * the process's memory from /proc). */
#pragma once

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <setjmp.h>

/* Where a GTest case registered through g_test_add_func (redefined below) returns to when a fixture it needs is
 * missing: that case is skipped, the binary's other cases still run. */
static jmp_buf lev_test_case_jump;
static gboolean lev_test_in_case;

/* Runs one test case (data: its function) with lev_test_case_jump set. */
static inline void
lev_test_run_case (gconstpointer data)
{
  void (*func) (void) = (void (*) (void)) data;
  if (setjmp (lev_test_case_jump) == 0) {
    lev_test_in_case = TRUE;
    func ();
  }
  lev_test_in_case = FALSE;
}

/* Registers a test case so that a missing fixture skips it alone (g_test_add_func's replacement). */
static inline void
lev_test_add_func (const char *path, void (*func) (void))
{
  g_test_add_data_func (path, (gconstpointer) func, lev_test_run_case);
}
#define g_test_add_func(path, func) lev_test_add_func ((path), (func))

/* Returns the path of a fixture under $LEV_FIXTURES, else tests/data (g_free it). When the fixture is missing on a
 * user's machine the test case that asked for it is skipped (the binary exits 77, meson's skip code, only when it
 * was asked outside a case or every case skipped); under CI (CI=true) it fails. */
static inline gchar *
lev_test_fixture (const gchar *relpath)
{
  const gchar *dir = g_getenv ("LEV_FIXTURES");
  gchar *path = g_build_filename (dir ? dir : "tests/data", relpath, NULL);
  if (!g_file_test (path, G_FILE_TEST_EXISTS)) {
    const gchar *ci = g_getenv ("CI");
    if (ci && g_ascii_strcasecmp (ci, "true") == 0) {
      fprintf (stderr, "FAIL: fixture %s is missing and CI=true\n", path);
      exit (1);
    }
    if (lev_test_in_case) {
      gchar *msg = g_strdup_printf ("fixture %s not found (tests/data incomplete?)", path);
      g_test_skip (msg);
      g_free (msg);
      g_free (path);
      longjmp (lev_test_case_jump, 1);
    }
    fprintf (stderr, "SKIP: fixture %s not found (tests/data incomplete?)\n", path);
    exit (77);
  }
  return path;
}

/* Reads a whole fixture file (g_free the result); aborts the test when it cannot. */
static inline gchar *
lev_test_read_fixture (const gchar *relpath, gsize *len)
{
  gchar *path = lev_test_fixture (relpath);
  gchar *data = NULL;
  GError *error = NULL;
  if (!g_file_get_contents (path, &data, len, &error))
    g_error ("cannot read %s: %s", path, error->message);
  g_free (path);
  return data;
}

/* Returns the largest absolute difference between two float arrays. */
static inline double
lev_test_max_abs_diff (const float *a, const float *b, size_t n)
{
  double m = 0.0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs ((double) a[i] - (double) b[i]);
    if (d > m || isnan (d))
      m = isnan (d) ? INFINITY : d;
  }
  return m;
}

/* Counts id in ids. */
static inline guint
lev_test_count_id (const int32_t *ids, size_t n, int32_t id)
{
  guint k = 0;
  for (size_t i = 0; i < n; i++)
    k += ids[i] == id;
  return k;
}

/* A memory figure of this process from /proc/self/status in KiB (field with its colon: "VmRSS:" resident now,
 * "VmHWM:" the peak so far); 0 when unavailable. */
static inline guint64
lev_test_proc_status_kib (const char *field)
{
  gchar *status = NULL;
  guint64 kib = 0;
  if (g_file_get_contents ("/proc/self/status", &status, NULL, NULL)) {
    const gchar *l = strstr (status, field);
    if (l)
      kib = g_ascii_strtoull (l + strlen (field), NULL, 10);
  }
  g_free (status);
  return kib;
}
