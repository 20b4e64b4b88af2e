/* lev_json.c: the JSON helpers the Hugging Face readers share (config.json, the safetensors index). */
#include "lev_json.h"
#include "lev_convmodel.h"

#include <math.h>

/* Parses the JSON file at path (mapped, not copied); the returned parser owns the tree. */
JsonParser *
lev_json_load_file (const gchar *path, GError **error)
{
  GMappedFile *mf = lev_conv_map_file (path, error);
  if (mf == NULL)
    return NULL;
  GError *err = NULL;
  gsize len = g_mapped_file_get_length (mf);
  JsonParser *parser = json_parser_new ();
  gboolean ok = len > 0 && json_parser_load_from_data (parser, g_mapped_file_get_contents (mf), len, &err);
  g_mapped_file_unref (mf);
  if (!ok) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s is not valid JSON: %s", path,
                 err ? err->message : "empty file");
    g_clear_error (&err);
    g_object_unref (parser);
    return NULL;
  }
  JsonNode *root = json_parser_get_root (parser);   /* NULL for a document of only whitespace */
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s: the top level is not a JSON object", path);
    g_object_unref (parser);
    return NULL;
  }
  return parser;
}

/* Returns member key of o, or NULL when absent or JSON null. */
JsonNode *
lev_json_member (JsonObject *o, const gchar *key)
{
  JsonNode *n = json_object_get_member (o, key);
  return n == NULL || JSON_NODE_HOLDS_NULL (n) ? NULL : n;
}

/* Reads a JSON number that must be a non-negative integer; FALSE when it is something else. */
gboolean
lev_json_u64 (JsonNode *n, guint64 *out)
{
  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n))
    return FALSE;
  GType t = json_node_get_value_type (n);
  if (t == G_TYPE_INT64) {
    gint64 v = json_node_get_int (n);
    if (v < 0)
      return FALSE;
    *out = (guint64) v;
    return TRUE;
  }
  if (t == G_TYPE_DOUBLE) {
    double v = json_node_get_double (n);
    if (!(v >= 0.0 && v <= 9007199254740992.0) || v != floor (v))
      return FALSE;
    *out = (guint64) v;
    return TRUE;
  }
  return FALSE;
}

/* Returns the string member key, or NULL when absent, null or not a string. */
const gchar *
lev_json_string (JsonObject *o, const gchar *key)
{
  JsonNode *n = lev_json_member (o, key);
  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (n);
}
