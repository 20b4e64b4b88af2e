/* lev_test_common.h: helpers shared by the C tests (fixture lookup with skip-or-fail, float comparison). */
#pragma once

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

/* Returns the path of a fixture under $LEV_FIXTURES, else tests/data (g_free it). When the fixture is missing the test is
 * skipped (exit 77, meson's skip code) on a user's machine and fails under CI (CI=true). */
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
