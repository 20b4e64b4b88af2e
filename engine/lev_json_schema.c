/* lev_json_schema.c: a JSON Schema (object, properties, required, string, enum, const, number, integer, boolean,
 * null, array, anyOf/oneOf) translated into GBNF rules that lev_grammar.c compiles. */
#include "lev_grammar.h"
#include "leviathan.h"

#include <json-glib/json-glib.h>
#include <string.h>

/* The rules every translation starts with: JSON's primitives, with bounded white space and number lengths (a
 * response must be able to end). */
static const char json_base_rules[] =
  "ws ::= \" \"?\n"
  "json-char ::= [^\"\\\\\\x00-\\x1f] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4})\n"
  "json-string ::= \"\\\"\" json-char* \"\\\"\"\n"
  "json-integer ::= \"-\"? (\"0\" | [1-9] [0-9]{0,15})\n"
  "json-number ::= json-integer (\".\" [0-9]{1,15})? ([eE] [-+]? [0-9]{1,3})?\n"
  "json-boolean ::= \"true\" | \"false\"\n"
  "json-null ::= \"null\"\n"
  "json-value ::= json-object | json-array | json-string | json-number | json-boolean | json-null\n"
  "json-object ::= \"{\" ws (json-string ws \":\" ws json-value (ws \",\" ws json-string ws \":\" ws json-value)*)? "
  "ws \"}\"\n"
  "json-array ::= \"[\" ws (json-value (ws \",\" ws json-value)*)? ws \"]\"\n";

typedef struct {
  GString *rules;
  uint32_t n;
  GError *error;
} Translator;

/* Appends text as a GBNF "literal". */
static void
append_literal (GString *out, const char *text)
{
  g_string_append_c (out, '"');
  for (const unsigned char *p = (const unsigned char *) text; *p; p++) {
    if (*p == '"' || *p == '\\')
      g_string_append_printf (out, "\\%c", *p);
    else if (*p < 0x20)
      g_string_append_printf (out, "\\x%02x", *p);
    else
      g_string_append_c (out, (char) *p);
  }
  g_string_append_c (out, '"');
}

/* Appends a JSON value (as JSON text) as a GBNF literal. */
static void
append_json_literal (GString *out, JsonNode *value)
{
  JsonGenerator *gen = json_generator_new ();
  json_generator_set_root (gen, value);
  gchar *text = json_generator_to_data (gen, NULL);
  append_literal (out, text);
  g_free (text);
  g_object_unref (gen);
}

static gchar *translate (Translator *t, JsonNode *schema, const char *where);

/* Reads a non-negative integer keyword (-1 when absent). */
static gint64
count_keyword (Translator *t, JsonObject *o, const char *key, const char *where)
{
  if (!json_object_has_member (o, key))
    return -1;
  JsonNode *n = json_object_get_member (o, key);
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_INT64 || json_node_get_int (n) < 0
      || json_node_get_int (n) > 4096) {
    if (!t->error)
      g_set_error (&t->error, LEV_ERROR, LEV_ERROR_ARGUMENT, "JSON Schema: %s: \"%s\" must be an integer from 0 to "
                   "4096", where, key);
    return -1;
  }
  return json_node_get_int (n);
}

/* Appends "{m,n}" / "*" for a repetition of min..max (max -1: unbounded). */
static void
append_repeat (GString *out, gint64 min, gint64 max)
{
  if (min <= 0 && max < 0)
    g_string_append_c (out, '*');
  else if (max < 0)
    g_string_append_printf (out, "{%" G_GINT64_FORMAT ",}", min);
  else
    g_string_append_printf (out, "{%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT "}", MAX (min, 0), max);
}

/* Defines a new rule with body and returns its name. */
static gchar *
define (Translator *t, const char *body)
{
  gchar *name = g_strdup_printf ("s%u", t->n++);
  g_string_append_printf (t->rules, "%s ::= %s\n", name, body);
  return name;
}

/* The rule of an object with properties: in their order, required ones always, optional ones maybe, commas
 * between the ones present. */
static gchar *
translate_object (Translator *t, JsonObject *o, const char *where)
{
  JsonObject *props = json_object_get_object_member (o, "properties");
  GHashTable *required = g_hash_table_new (g_str_hash, g_str_equal);
  if (json_object_has_member (o, "required")) {
    JsonNode *rn = json_object_get_member (o, "required");
    if (!JSON_NODE_HOLDS_ARRAY (rn)) {
      g_set_error (&t->error, LEV_ERROR, LEV_ERROR_ARGUMENT, "JSON Schema: %s: \"required\" must be an array", where);
      g_hash_table_destroy (required);
      return NULL;
    }
    JsonArray *ra = json_node_get_array (rn);
    for (guint i = 0; i < json_array_get_length (ra); i++) {
      const char *name = json_array_get_string_element (ra, i);
      if (!name || !json_object_has_member (props, name)) {
        g_set_error (&t->error, LEV_ERROR, LEV_ERROR_ARGUMENT, "JSON Schema: %s: required property %s%s%s is not "
                     "in \"properties\"", where, name ? "\"" : "", name ? name : "(not a string)", name ? "\"" : "");
        g_hash_table_destroy (required);
        return NULL;
      }
      g_hash_table_add (required, (gpointer) name);
    }
  }
  GList *names = json_object_get_members (props);
  guint n = g_list_length (names);
  gchar **kv = g_new0 (gchar *, n + 1);
  gboolean *req = g_new0 (gboolean, n + 1);
  guint i = 0;
  for (GList *l = names; l && !t->error; l = l->next, i++) {
    gchar *sub_where = g_strdup_printf ("%s.%s", where, (const char *) l->data);
    gchar *value = translate (t, json_object_get_member (props, l->data), sub_where);
    g_free (sub_where);
    if (!value)
      break;
    JsonNode *key = json_node_new (JSON_NODE_VALUE);
    json_node_set_string (key, l->data);
    GString *body = g_string_new (NULL);
    append_json_literal (body, key);
    g_string_append_printf (body, " ws \":\" ws %s", value);
    json_node_unref (key);
    g_free (value);
    kv[i] = define (t, body->str);
    g_string_free (body, TRUE);
    req[i] = g_hash_table_contains (required, l->data);
  }
  g_list_free (names);
  gchar *result = NULL;
  if (!t->error) {
    /* after[k]: properties k.. once one was written; first[k]: the same when none was yet */
    gchar **after = g_new0 (gchar *, n + 2), **first = g_new0 (gchar *, n + 2);   /* NULL-terminated */
    after[n] = g_strdup ("");
    first[n] = g_strdup ("");
    for (guint k = n; k-- > 0;) {
      gchar *body = req[k] ? g_strdup_printf ("ws \",\" ws %s %s", kv[k], after[k + 1])
                           : g_strdup_printf ("(ws \",\" ws %s)? %s", kv[k], after[k + 1]);
      after[k] = define (t, body);
      g_free (body);
      body = req[k] ? g_strdup_printf ("%s %s", kv[k], after[k + 1])
                    : g_strdup_printf ("%s %s | %s", kv[k], after[k + 1], first[k + 1]);
      first[k] = define (t, body);
      g_free (body);
    }
    gchar *body = g_strdup_printf ("\"{\" ws %s ws \"}\"", first[0]);
    result = define (t, body);
    g_free (body);
    g_strfreev (after);
    g_strfreev (first);
  }
  g_strfreev (kv);
  g_free (req);
  g_hash_table_destroy (required);
  return result;
}

/* The rule of an array: items (any JSON value without "items"), minItems..maxItems of them. */
static gchar *
translate_array (Translator *t, JsonObject *o, const char *where)
{
  gchar *sub_where = g_strdup_printf ("%s[]", where);
  gchar *item = json_object_has_member (o, "items") ? translate (t, json_object_get_member (o, "items"), sub_where)
                                                   : g_strdup ("json-value");
  g_free (sub_where);
  if (!item)
    return NULL;
  gint64 min = count_keyword (t, o, "minItems", where), max = count_keyword (t, o, "maxItems", where);
  gchar *result = NULL;
  if (!t->error && max >= 0 && min > max)
    g_set_error (&t->error, LEV_ERROR, LEV_ERROR_ARGUMENT, "JSON Schema: %s: minItems above maxItems", where);
  if (!t->error) {
    GString *body = g_string_new ("\"[\" ws ");
    if (max == 0) {
      g_string_append (body, "\"]\"");
    } else {
      g_string_append_printf (body, "%s%s (ws \",\" ws %s)", min <= 0 ? "(" : "", item, item);
      append_repeat (body, min > 0 ? min - 1 : 0, max > 0 ? max - 1 : -1);
      g_string_append_printf (body, "%s ws \"]\"", min <= 0 ? ")?" : "");
    }
    result = define (t, body->str);
    g_string_free (body, TRUE);
  }
  g_free (item);
  return result;
}

/* The rule of one "type" name. */
static gchar *
translate_type (Translator *t, const char *type, JsonObject *o, const char *where)
{
  if (g_str_equal (type, "string")) {
    gint64 min = count_keyword (t, o, "minLength", where), max = count_keyword (t, o, "maxLength", where);
    if (t->error)
      return NULL;
    if (max >= 0 && min > max) {
      g_set_error (&t->error, LEV_ERROR, LEV_ERROR_ARGUMENT, "JSON Schema: %s: minLength above maxLength", where);
      return NULL;
    }
    if (min < 0 && max < 0)
      return g_strdup ("json-string");
    GString *body = g_string_new ("\"\\\"\" json-char");
    append_repeat (body, min, max);
    g_string_append (body, " \"\\\"\"");
    gchar *r = define (t, body->str);
    g_string_free (body, TRUE);
    return r;
  }
  if (g_str_equal (type, "number"))
    return g_strdup ("json-number");
  if (g_str_equal (type, "integer"))
    return g_strdup ("json-integer");
  if (g_str_equal (type, "boolean"))
    return g_strdup ("json-boolean");
  if (g_str_equal (type, "null"))
    return g_strdup ("json-null");
  if (g_str_equal (type, "array"))
    return translate_array (t, o, where);
  if (g_str_equal (type, "object")) {
    if (!json_object_has_member (o, "properties"))
      return g_strdup ("json-object");
    if (!JSON_NODE_HOLDS_OBJECT (json_object_get_member (o, "properties"))) {
      g_set_error (&t->error, LEV_ERROR, LEV_ERROR_ARGUMENT, "JSON Schema: %s: \"properties\" must be an object",
                   where);
      return NULL;
    }
    return translate_object (t, o, where);
  }
  g_set_error (&t->error, LEV_ERROR, LEV_ERROR_ARGUMENT, "JSON Schema: %s: unsupported type \"%s\" (string, number, "
               "integer, boolean, null, array, object)", where, type);
  return NULL;
}

/* Returns the name of a rule for schema (a new one, or a base rule), NULL with t->error set. */
static gchar *
translate (Translator *t, JsonNode *schema, const char *where)
{
  if (t->error)
    return NULL;
  if (JSON_NODE_HOLDS_VALUE (schema) && json_node_get_value_type (schema) == G_TYPE_BOOLEAN
      && json_node_get_boolean (schema))
    return g_strdup ("json-value");    /* true: anything */
  if (!JSON_NODE_HOLDS_OBJECT (schema)) {
    g_set_error (&t->error, LEV_ERROR, LEV_ERROR_ARGUMENT, "JSON Schema: %s: a schema must be an object", where);
    return NULL;
  }
  JsonObject *o = json_node_get_object (schema);
  static const char *const unsupported[] = { "$ref", "allOf", "not", "pattern", "patternProperties", "if", NULL };
  for (guint i = 0; unsupported[i]; i++)
    if (json_object_has_member (o, unsupported[i])) {
      g_set_error (&t->error, LEV_ERROR, LEV_ERROR_ARGUMENT, "JSON Schema: %s: \"%s\" is not supported", where,
                   unsupported[i]);
      return NULL;
    }
  if (json_object_has_member (o, "const")) {
    GString *body = g_string_new (NULL);
    append_json_literal (body, json_object_get_member (o, "const"));
    gchar *r = define (t, body->str);
    g_string_free (body, TRUE);
    return r;
  }
  const char *alt_key = json_object_has_member (o, "enum") ? "enum" : json_object_has_member (o, "anyOf") ? "anyOf"
                        : json_object_has_member (o, "oneOf") ? "oneOf" : NULL;
  if (alt_key) {
    JsonNode *an = json_object_get_member (o, alt_key);
    if (!JSON_NODE_HOLDS_ARRAY (an) || json_array_get_length (json_node_get_array (an)) == 0) {
      g_set_error (&t->error, LEV_ERROR, LEV_ERROR_ARGUMENT, "JSON Schema: %s: \"%s\" must be a non-empty array",
                   where, alt_key);
      return NULL;
    }
    JsonArray *a = json_node_get_array (an);
    GString *body = g_string_new (NULL);
    for (guint i = 0; i < json_array_get_length (a) && !t->error; i++) {
      if (i)
        g_string_append (body, " | ");
      if (g_str_equal (alt_key, "enum")) {
        append_json_literal (body, json_array_get_element (a, i));
      } else {
        gchar *sub_where = g_strdup_printf ("%s.%s[%u]", where, alt_key, i);
        gchar *sub = translate (t, json_array_get_element (a, i), sub_where);
        g_free (sub_where);
        if (sub)
          g_string_append (body, sub);
        g_free (sub);
      }
    }
    gchar *r = t->error ? NULL : define (t, body->str);
    g_string_free (body, TRUE);
    return r;
  }
  if (!json_object_has_member (o, "type"))
    return json_object_has_member (o, "properties") ? translate_type (t, "object", o, where)
                                                    : g_strdup ("json-value");
  JsonNode *tn = json_object_get_member (o, "type");
  if (JSON_NODE_HOLDS_VALUE (tn) && json_node_get_value_type (tn) == G_TYPE_STRING)
    return translate_type (t, json_node_get_string (tn), o, where);
  if (!JSON_NODE_HOLDS_ARRAY (tn) || json_array_get_length (json_node_get_array (tn)) == 0) {
    g_set_error (&t->error, LEV_ERROR, LEV_ERROR_ARGUMENT, "JSON Schema: %s: \"type\" must be a string or an array "
                 "of strings", where);
    return NULL;
  }
  JsonArray *types = json_node_get_array (tn);
  GString *body = g_string_new (NULL);
  for (guint i = 0; i < json_array_get_length (types) && !t->error; i++) {
    const char *name = json_array_get_string_element (types, i);
    gchar *sub = name ? translate_type (t, name, o, where) : NULL;
    if (!name && !t->error)
      g_set_error (&t->error, LEV_ERROR, LEV_ERROR_ARGUMENT, "JSON Schema: %s: \"type\" must hold strings", where);
    if (sub)
      g_string_append_printf (body, "%s%s", i ? " | " : "", sub);
    g_free (sub);
  }
  gchar *r = t->error ? NULL : define (t, body->str);
  g_string_free (body, TRUE);
  return r;
}

/* Translates a JSON Schema into GBNF. */
char *
lev_json_schema_to_gbnf (const char *schema, GError **error)
{
  JsonParser *parser = json_parser_new ();
  GError *perr = NULL;
  if (!json_parser_load_from_data (parser, schema, -1, &perr)) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "JSON Schema: not valid JSON: %s", perr->message);
    g_error_free (perr);
    g_object_unref (parser);
    return NULL;
  }
  Translator t = { g_string_new (NULL), 0, NULL };
  gchar *top = translate (&t, json_parser_get_root (parser), "$");
  g_object_unref (parser);
  if (!top) {
    g_propagate_error (error, t.error);
    g_string_free (t.rules, TRUE);
    return NULL;
  }
  GString *out = g_string_new (NULL);
  g_string_append_printf (out, "root ::= %s\n", top);
  g_string_append (out, t.rules->str);
  g_string_append (out, json_base_rules);
  g_free (top);
  g_string_free (t.rules, TRUE);
  return g_string_free (out, FALSE);
}
