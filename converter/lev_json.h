/* lev_json.h: the JSON helpers the Hugging Face readers share (config.json, the safetensors index). */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* Parses the JSON file at path (mapped, not copied) whose top level must be an object; the returned parser owns the
 * tree. NULL with a LEV_CONVERT_ERROR set when the file cannot be read or is not such JSON. */
JsonParser *lev_json_load_file (const gchar *path, GError **error);
/* Returns member key of o, or NULL when absent or JSON null. */
JsonNode *lev_json_member (JsonObject *o, const gchar *key);
/* Reads a JSON number that must be a non-negative integer into *out; FALSE when it is something else. */
gboolean lev_json_u64 (JsonNode *n, guint64 *out);
/* Returns the string member key of o, or NULL when it is absent, null or not a string. */
const gchar *lev_json_string (JsonObject *o, const gchar *key);

G_END_DECLS
