/* lev_test_vectors.h: helpers for the tokenizer and chat tests: id lists (format, compare, report) and JSON fixtures. */
#pragma once

#include <json-glib/json-glib.h>
#include "lev_test_common.h"

/* Formats ids as "[1 2 3]" (g_free it). */
static inline gchar *
ids_str (const int32_t *ids, size_t n)
{
  GString *s = g_string_new ("[");
  for (size_t i = 0; i < n; i++)
    g_string_append_printf (s, "%s%d", i ? " " : "", ids[i]);
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

/* Returns whether two id lists are equal. */
static inline gboolean
ids_equal (const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
  return na == nb && (na == 0 || memcmp (a, b, na * sizeof *a) == 0);
}

/* Reports a mismatch with both id lists on stderr. */
static inline void
report_mismatch (const char *what, const char *text, const int32_t *want, size_t nw, const int32_t *got, size_t ng)
{
  gchar *esc = g_strescape (text, NULL);
  gchar *w = ids_str (want, nw), *g = ids_str (got, ng);
  fprintf (stderr, "MISMATCH %s \"%s\"\n  expected %s\n  got      %s\n", what, esc, w, g);
  g_free (esc);
  g_free (w);
  g_free (g);
}

/* Parses a JSON fixture and returns a copy of its root (json_node_unref it). */
static inline JsonNode *
parse_json_fixture (const char *relpath)
{
  gsize len;
  gchar *data = lev_test_read_fixture (relpath, &len);
  JsonParser *p = json_parser_new ();
  GError *error = NULL;
  json_parser_load_from_data (p, data, (gssize) len, &error);
  g_assert_no_error (error);
  JsonNode *root = json_node_copy (json_parser_get_root (p));
  g_object_unref (p);
  g_free (data);
  return root;
}

/* Returns the integers of a JSON array as ids (g_free them), their count in *n. */
static inline int32_t *
json_ids (JsonArray *a, size_t *n)
{
  *n = json_array_get_length (a);
  int32_t *ids = g_new (int32_t, *n + 1);
  for (size_t i = 0; i < *n; i++)
    ids[i] = (int32_t) json_array_get_int_element (a, (guint) i);
  return ids;
}
