/* test_grammar.c: structured output: grammars that cannot be compiled give a clear error; with the default model,
 * 1000 seeds at temperature 1 under a JSON Schema all give responses that json-glib parses and that validate
 * against the schema; GBNF grammars constrain the same way; the mask's cost per token is reported. */
#include "leviathan.h"
#include "lev_grammar.h"
#include "lev_session.h"
#include "lev_test_common.h"

#include <json-glib/json-glib.h>

static const char command_schema[] =
  "{\"type\": \"object\", \"properties\": {"
  "  \"action\": {\"enum\": [\"lights_on\", \"lights_off\", \"volume\"]},"
  "  \"room\": {\"type\": \"string\", \"maxLength\": 12},"
  "  \"level\": {\"type\": \"integer\"},"
  "  \"tags\": {\"type\": \"array\", \"items\": {\"type\": \"boolean\"}, \"maxItems\": 3},"
  "  \"ratio\": {\"type\": \"number\"}},"
  " \"required\": [\"action\", \"room\"]}";

static gchar *
model_path (void)
{
  const char *dir = g_getenv ("LEV_MODELS_DIR");
  return g_build_filename (dir ? dir : "models", "default.leviathan", NULL);
}

/* Compiling text fails with LEV_ERROR_ARGUMENT and a message holding expect. */
static void
check_refused (const char *text, const char *expect)
{
  GError *err = NULL;
  LevGrammar *g = lev_grammar_compile (text, &err);
  if (g || !err || !strstr (err->message, expect))
    g_error ("grammar %s: expected an error with \"%s\", got %s", text, expect, err ? err->message : "none");
  g_assert_error (err, LEV_ERROR, LEV_ERROR_ARGUMENT);
  g_error_free (err);
}

static void
test_refused (void)
{
  check_refused ("root ::= item", "rule 'item' is used but not defined");
  check_refused ("root ::= root \"a\" | \"b\"", "rule 'root' is left-recursive");
  check_refused ("root ::= x\nx ::= \"\"? root \"a\" | \"b\"", "left-recursive");
  check_refused ("root ::= \"abc", "line 1, column 10: unterminated string literal");
  check_refused ("root ::= [z-a]", "runs backwards");
  check_refused ("root ::= \"a\"{3,1}", "n below m");
  check_refused ("item ::= \"a\"", "no rule 'root'");
  check_refused ("root ::= \"a\" root", "matches no finite text");
  check_refused ("root ::= \"a\"\nroot ::= \"b\"", "defined twice");
  check_refused ("root ::= \"\\q\"", "unknown escape");
  check_refused ("", "empty");
  check_refused ("{\"type\": \"object\",", "not valid JSON");
  check_refused ("{\"type\": \"date\"}", "unsupported type \"date\"");
  check_refused ("{\"properties\": {\"a\": {\"type\": \"string\"}}, \"required\": [\"b\"]}",
                 "required property \"b\" is not in \"properties\"");
  check_refused ("{\"$ref\": \"#/x\"}", "\"$ref\" is not supported");
  check_refused ("{\"type\": \"string\", \"maxLength\": -1}", "maxLength");
}

/* Feeds text byte by byte; returns whether it is a complete sentence (FALSE also when a byte is refused). */
static gboolean
matches (LevGrammarMatcher *m, const char *text)
{
  lev_grammar_matcher_reset (m);
  for (const char *p = text; *p; p++)
    if (!lev_grammar_matcher_accept (m, p, 1))
      return FALSE;
  return lev_grammar_matcher_is_complete (m);
}

/* The parser on texts whose membership Python's json module and the JSON grammar of RFC 8259 decide. */
static void
test_parser (void)
{
  GError *err = NULL;
  LevGrammar *g = lev_grammar_compile (command_schema, &err);
  g_assert_no_error (err);
  LevGrammarMatcher *m = lev_grammar_matcher_new (g, NULL, 0);
  g_assert_true (matches (m, "{\"action\": \"volume\", \"room\": \"hall\"}"));
  g_assert_true (matches (m, "{\"action\":\"lights_on\",\"room\":\"\\u00e9\\n\",\"level\":-12,\"ratio\":1.5e3}"));
  g_assert_true (matches (m, "{\"action\": \"volume\", \"room\": \"h\u00e9\", \"tags\": [true, false]}"));
  g_assert_false (matches (m, "{\"room\": \"hall\", \"action\": \"volume\"}"));      /* order of properties */
  g_assert_false (matches (m, "{\"action\": \"dim\", \"room\": \"hall\"}"));
  g_assert_false (matches (m, "{\"action\": \"volume\"}"));
  g_assert_false (matches (m, "{\"action\": \"volume\", \"room\": \"hall\", \"level\": 01}"));
  g_assert_false (matches (m, "{\"action\": \"volume\", \"room\": \"a\nb\"}"));
  g_assert_false (matches (m, "{\"action\": \"volume\", \"room\": \"0123456789abc\"}"));   /* maxLength 12 */
  g_assert_false (matches (m, "{\"action\": \"volume\", \"room\": \"x\", \"tags\": [true, true, true, true]}"));
  lev_grammar_matcher_free (m);
  lev_grammar_free (g);

  g = lev_grammar_compile ("# yes or no, then digits\nroot ::= (\"yes\" | \"no\") \" \" num\n"
                           "num ::= [1-9] [0-9]{0,2} | \"0\"", &err);
  g_assert_no_error (err);
  m = lev_grammar_matcher_new (g, NULL, 0);
  g_assert_true (matches (m, "yes 120"));
  g_assert_true (matches (m, "no 0"));
  g_assert_false (matches (m, "no 1200"));
  g_assert_false (matches (m, "maybe 1"));
  g_assert_true (matches (m, "yes 999") && lev_grammar_matcher_is_finished (m));
  g_assert_true (matches (m, "yes 99") && !lev_grammar_matcher_is_finished (m));
  lev_grammar_matcher_free (m);
  lev_grammar_free (g);
}

/* A small JSON Schema validator for command_schema's keywords: type, enum, properties, required, maxLength,
 * items, maxItems. */
static gboolean
validate (JsonNode *v, JsonObject *schema)
{
  if (json_object_has_member (schema, "enum")) {
    JsonArray *e = json_object_get_array_member (schema, "enum");
    for (guint i = 0; i < json_array_get_length (e); i++)
      if (json_node_equal (v, json_array_get_element (e, i)))
        return TRUE;
    return FALSE;
  }
  const char *type = json_object_get_string_member (schema, "type");
  if (g_str_equal (type, "object")) {
    if (!JSON_NODE_HOLDS_OBJECT (v))
      return FALSE;
    JsonObject *o = json_node_get_object (v), *props = json_object_get_object_member (schema, "properties");
    JsonArray *req = json_object_get_array_member (schema, "required");
    for (guint i = 0; i < json_array_get_length (req); i++)
      if (!json_object_has_member (o, json_array_get_string_element (req, i)))
        return FALSE;
    GList *members = json_object_get_members (o);
    gboolean ok = TRUE;
    for (GList *l = members; l && ok; l = l->next)
      ok = json_object_has_member (props, l->data)
           && validate (json_object_get_member (o, l->data), json_object_get_object_member (props, l->data));
    g_list_free (members);
    return ok;
  }
  if (g_str_equal (type, "array")) {
    if (!JSON_NODE_HOLDS_ARRAY (v))
      return FALSE;
    JsonArray *a = json_node_get_array (v);
    if (json_array_get_length (a) > (guint) json_object_get_int_member (schema, "maxItems"))
      return FALSE;
    for (guint i = 0; i < json_array_get_length (a); i++)
      if (!validate (json_array_get_element (a, i), json_object_get_object_member (schema, "items")))
        return FALSE;
    return TRUE;
  }
  if (!JSON_NODE_HOLDS_VALUE (v))
    return FALSE;
  GType t = json_node_get_value_type (v);
  if (g_str_equal (type, "string"))
    return t == G_TYPE_STRING && g_utf8_strlen (json_node_get_string (v), -1)
                                 <= json_object_get_int_member (schema, "maxLength");
  if (g_str_equal (type, "integer"))
    return t == G_TYPE_INT64;
  if (g_str_equal (type, "number"))
    return t == G_TYPE_INT64 || t == G_TYPE_DOUBLE;
  if (g_str_equal (type, "boolean"))
    return t == G_TYPE_BOOLEAN;
  return FALSE;
}

static gboolean
collect (const char *text, gsize len, const int32_t *ids, guint n_ids, gpointer user_data)
{
  g_string_append_len (user_data, text, (gssize) len);
  return TRUE;
}

/* 1000 seeds at temperature 1 (no top-k/p, min-p): every response parses and validates. */
static void
test_default_model_schema (void)
{
  gchar *path = model_path ();
  GError *err = NULL;
  LevModel *model = lev_model_load (path, &err);
  g_assert_no_error (err);
  LevSessionParams p = lev_session_default_params ();
  p.n_threads = 1;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.max_tokens = 400;
  p.grammar = command_schema;
  LevSession *s = lev_session_new (model, &p, &err);
  g_assert_no_error (err);
  JsonParser *sp = json_parser_new ();
  g_assert_true (json_parser_load_from_data (sp, command_schema, -1, NULL));
  JsonObject *schema = json_node_get_object (json_parser_get_root (sp));
  GString *out = g_string_new (NULL);
  JsonParser *parser = json_parser_new ();
  guint n_tokens = 0, n_with_optional = 0;
  gint64 t0 = g_get_monotonic_time ();
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  /* sanitizers make sampling some ten times slower: 100 seeds there; the release build (CI runs both) all 1000 */
  const int default_seeds = 100;
#else
  const int default_seeds = 1000;
#endif
  int n_seeds = g_getenv ("LEV_GRAMMAR_SEEDS") ? atoi (g_getenv ("LEV_GRAMMAR_SEEDS")) : default_seeds;
  for (int seed = 0; seed < n_seeds; seed++) {
    p.seed = seed;
    g_assert_true (lev_session_set_params (s, &p, &err));
    g_string_truncate (out, 0);
    LevSessionStats st;
    g_assert_true (lev_session_generate (s, seed % 2 ? "Turn on the lights in the kitchen" : "", -1, NULL, 0, NULL,
                                         collect, out, &st, &err));
    g_assert_no_error (err);
    n_tokens += st.generated_tokens;
    if (!json_parser_load_from_data (parser, out->str, (gssize) out->len, &err))
      g_error ("seed %d: the response does not parse (%s): %s", seed, err->message, out->str);
    if (!validate (json_parser_get_root (parser), schema))
      g_error ("seed %d: the response does not validate: %s", seed, out->str);
    g_assert_cmpint (st.reason, ==, LEV_STOP_GRAMMAR);   /* the closing brace ends it: nothing may follow */
    n_with_optional += strstr (out->str, "\"level\"") || strstr (out->str, "\"tags\"") || strstr (out->str, "\"ratio\"");
    if (seed < 3)
      g_test_message ("seed %d: %s", seed, out->str);
  }
  g_test_message ("%d responses, %u tokens, %u with optional properties, %.1f ms per token (model and mask)",
                  n_seeds, n_tokens, n_with_optional, (g_get_monotonic_time () - t0) / 1e3 / MAX (n_tokens, 1));
  g_assert_cmpuint (n_with_optional, >, 0);
  g_object_unref (parser);
  g_object_unref (sp);
  g_string_free (out, TRUE);
  lev_session_free (s);
  lev_model_free (model);
  g_free (path);
}

/* A GBNF grammar at temperature 1, and the grammar error from lev_session_set_params. */
static void
test_default_model_gbnf (void)
{
  gchar *path = model_path ();
  GError *err = NULL;
  LevModel *model = lev_model_load (path, &err);
  g_assert_no_error (err);
  LevSessionParams p = lev_session_default_params ();
  p.n_threads = 1;
  p.temperature = 1.0f;
  p.grammar = "root ::= (\"yes\" | \"no\") \", \" [a-z ]{1,20} \".\"";
  LevSession *s = lev_session_new (model, &p, &err);
  g_assert_no_error (err);
  GRegex *re = g_regex_new ("^(yes|no), [a-z ]{1,20}\\.$", 0, 0, NULL);
  GString *out = g_string_new (NULL);
  for (int seed = 0; seed < 50; seed++) {
    p.seed = seed;
    g_assert_true (lev_session_set_params (s, &p, &err));
    g_string_truncate (out, 0);
    g_assert_true (lev_session_generate (s, "And the LORD said", -1, NULL, 0, NULL, collect, out, NULL, &err));
    if (!g_regex_match (re, out->str, 0, NULL))
      g_error ("seed %d: \"%s\" is not in the grammar", seed, g_strescape (out->str, NULL));
  }
  p.grammar = "root ::= (\"a\"";
  g_assert_false (lev_session_set_params (s, &p, &err));
  g_assert_error (err, LEV_ERROR, LEV_ERROR_ARGUMENT);
  g_assert_nonnull (strstr (err->message, "expected ')'"));
  g_clear_error (&err);
  g_regex_unref (re);
  g_string_free (out, TRUE);
  lev_session_free (s);
  lev_model_free (model);
  g_free (path);
}

/* The mask's cost for the default model's vocabulary: computed afresh (cache emptied by a new matcher) and from
 * the cache; reported, not asserted (timings on a shared machine). */
static void
test_mask_cost (void)
{
  gchar *path = model_path ();
  LevModel *model = lev_model_load (path, NULL);
  g_assert_nonnull (model);
  LevGrammar *g = lev_grammar_compile (command_schema, NULL);
  const char *prefix = "{\"action\": \"volume\", \"room\": \"";
  int rounds = 50;
  gint64 fresh = 0, cached = 0;
  for (int r = 0; r < rounds; r++) {
    LevGrammarMatcher *m = lev_grammar_matcher_new (g, lev_model_tokenizer (model), lev_model_vocab_size (model));
    g_assert_true (lev_grammar_matcher_accept (m, prefix, strlen (prefix)));
    gint64 t0 = g_get_monotonic_time ();
    const uint8_t *mask = lev_grammar_matcher_mask (m, LEV_GRAMMAR_BYTES_MID);
    gint64 t1 = g_get_monotonic_time ();
    lev_grammar_matcher_mask (m, LEV_GRAMMAR_BYTES_MID);
    cached += g_get_monotonic_time () - t1;
    fresh += t1 - t0;
    /* inside a string: "hall" is allowed, a newline is not */
    g_assert_true (mask[lev_tokenizer_find_piece (lev_model_tokenizer (model), "a", 1)]);
    g_assert_false (mask[lev_tokenizer_find_piece (lev_model_tokenizer (model), "<0x0A>", -1)]);
    lev_grammar_matcher_free (m);
  }
  g_test_message ("mask over %u tokens inside a string: %.1f us computed, %.1f us from the cache",
                  lev_model_vocab_size (model), (double) fresh / rounds, (double) cached / rounds);
  lev_grammar_free (g);
  lev_model_free (model);
  g_free (path);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/grammar/refused", test_refused);
  g_test_add_func ("/grammar/parser", test_parser);
  g_test_add_func ("/grammar/mask-cost", test_mask_cost);
  g_test_add_func ("/grammar/default-model-gbnf", test_default_model_gbnf);
  g_test_add_func ("/grammar/default-model-schema", test_default_model_schema);
  return g_test_run ();
}
