/* lev_import_vocab.c: the tokenizer importers: tokenizer.bin (llama2.c), tokenizer.json (Hugging Face), and the
 * dispatch by contents (tokenizer.model is read by lev_spm_model.c). */
#include "lev_import.h"
#include "lev_spm_model.h"

#include <json-glib/json-glib.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#define SPACE_SYMBOL "\xe2\x96\x81"

/* ---------------------------------------------------------------- helpers */

/* Returns the byte value of a "<0xXX>" piece (two uppercase or lowercase hex digits), or -1. */
static int
byte_piece_value (const gchar *p, gsize len)
{
  if (len != 6 || memcmp (p, "<0x", 3) != 0 || p[5] != '>')
    return -1;
  int hi = g_ascii_xdigit_value (p[3]), lo = g_ascii_xdigit_value (p[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

static gint32
read_i32 (const guint8 *p)
{
  guint32 u = (guint32) p[0] | (guint32) p[1] << 8 | (guint32) p[2] << 16 | (guint32) p[3] << 24;
  return (gint32) u;
}

/* Parses a llama2.c tokenizer.bin: int32 max_token_length, then (float score, int32 len, len bytes) until EOF. */
static LevConvVocab *
parse_llama2c_tokenizer (const guint8 *data, gsize len, const gchar *path, GError **error)
{
  if (len < 4) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                 "%s: too short for a llama2.c tokenizer (%" G_GSIZE_FORMAT " bytes)", path, len);
    return NULL;
  }
  gint32 max_len = read_i32 (data);
  if (max_len <= 0 || max_len > (1 << 20)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                 "%s: max_token_length %d is out of range", path, max_len);
    return NULL;
  }
  LevConvVocab *v = lev_conv_vocab_new (LEV_TOK_SPM_BPE);
  GString *piece = g_string_new (NULL);
  gsize off = 4;
  while (off < len) {
    guint32 id = v->pieces->len;
    if (len - off < 8) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                   "%s: truncated in the header of token %u (byte %" G_GSIZE_FORMAT ")", path, id, off);
      goto fail;
    }
    float score;
    memcpy (&score, data + off, 4);   /* little-endian hosts only, like the rest of the format */
    gint32 plen = read_i32 (data + off + 4);
    off += 8;
    if (plen < 0 || plen > max_len) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                   "%s: token %u has length %d, outside 0..max_token_length %d", path, id, plen, max_len);
      goto fail;
    }
    if ((gsize) plen > len - off) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                   "%s: truncated in token %u (%d bytes announced, %" G_GSIZE_FORMAT " left)", path, id, plen,
                   len - off);
      goto fail;
    }
    if (isnan (score)) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s: token %u has a NaN score", path, id);
      goto fail;
    }
    if (id >= LEV_MAX_TOKENS) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s: more than %u tokens", path,
                   LEV_MAX_TOKENS);
      goto fail;
    }
    const gchar *p = (const gchar *) data + off;
    off += (gsize) plen;

    /* llama2.c's export wrote BOS and EOS as "\n<s>\n" and "\n</s>\n" and every "▁" as a space: undo both so the
     * pieces equal those of the tokenizer.model it came from. */
    g_string_truncate (piece, 0);
    guint8 type = LEV_TOKTYPE_NORMAL;
    if ((plen == 5 && memcmp (p, "\n<s>\n", 5) == 0) || (plen == 3 && memcmp (p, "<s>", 3) == 0)) {
      g_string_append (piece, "<s>");
      type = LEV_TOKTYPE_CONTROL;
    } else if ((plen == 6 && memcmp (p, "\n</s>\n", 6) == 0) || (plen == 4 && memcmp (p, "</s>", 4) == 0)) {
      g_string_append (piece, "</s>");
      type = LEV_TOKTYPE_CONTROL;
    } else {
      for (gint32 i = 0; i < plen; i++) {
        if (p[i] == ' ')
          g_string_append (piece, SPACE_SYMBOL);
        else
          g_string_append_c (piece, p[i]);
      }
      if (plen == 5 && memcmp (p, "<unk>", 5) == 0)
        type = LEV_TOKTYPE_UNKNOWN;
      else if (byte_piece_value (p, (gsize) plen) >= 0)
        type = LEV_TOKTYPE_BYTE;
    }
    lev_conv_vocab_add (v, piece->str, piece->len, score, type);
  }
  if (v->pieces->len == 0) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s: the tokenizer has no tokens", path);
    goto fail;
  }
  g_string_free (piece, TRUE);
  /* run.c's conventions: BOS 1, EOS 2, <unk> 0, no pad; a dummy-prefix space, byte fallback, no whitespace
   * collapsing, BOS in front of every prompt. */
  guint32 n = v->pieces->len;
  v->unk_id = n > 0 ? 0 : -1;
  v->bos_id = n > 1 ? 1 : -1;
  v->eos_id = n > 2 ? 2 : -1;
  v->pad_id = -1;
  v->flags = LEV_TOKF_ADD_DUMMY_PREFIX | LEV_TOKF_ESCAPE_WS | LEV_TOKF_BYTE_FALLBACK | LEV_TOKF_ADD_BOS;
  return v;

fail:
  g_string_free (piece, TRUE);
  lev_conv_vocab_free (v);
  return NULL;
}

/* Reads a llama2.c tokenizer.bin into a vocabulary (SentencePiece-BPE semantics, Llama 2 defaults). */
LevConvVocab *
lev_import_llama2c_tokenizer (const gchar *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  gchar *data;
  gsize len;
  if (!lev_conv_read_file (path, &data, &len, error))
    return NULL;
  LevConvVocab *v = parse_llama2c_tokenizer ((const guint8 *) data, len, path, error);
  g_free (data);
  return v;
}

/* ---------------------------------------------------------------- Hugging Face tokenizer.json */

/* What is read (everything else in the file is refused with a message naming it, or ignored where it does not
 * change ids, such as truncation, padding and trim_offsets):
 *  - model: type "BPE" with vocab (piece -> id), merges ("a b" strings or [a, b] pairs, by rank), unk_token,
 *    byte_fallback, ignore_merges; fuse_unk is what the encoder does anyway for SentencePiece-style vocabularies.
 *  - Byte-level BPE (a ByteLevel pre-tokenizer or decoder): pieces are stored as the raw bytes their GPT-2 alphabet
 *    spells. The pre-tokenizer must be ByteLevel with use_regex (GPT-2's split) or a Sequence of one Split (a known
 *    pattern, behavior Isolated, not inverted) and ByteLevel without use_regex; the patterns recognised are GPT-2's,
 *    Llama 3's and Qwen2's, compared as exact strings. The normalizer may be absent or NFC.
 *  - SentencePiece-style BPE: normalizer Sequence [Prepend("▁"), Replace(" " -> "▁")] (or just the Replace), or a
 *    Metaspace pre-tokenizer ("▁", prepend_scheme "always", no split); no other pre-tokenizer. Pieces are the UTF-8
 *    of the vocabulary keys ("▁" kept); "<0xXX>" pieces are BYTE pieces when byte_fallback is on.
 *  - added_tokens: special ones become CONTROL pieces, the others USER_DEFINED (the unk token UNKNOWN); all are
 *    matched in the text (LEV_TOKF_SPLIT_ADDED). Their lstrip / rstrip / single_word / normalized options are not
 *    kept (see lev_tokenizer.c).
 *  - post_processor TemplateProcessing starting with a special token: that token is BOS and is added by default,
 *    unless tokenizer_config.json says otherwise.
 *  - tokenizer_config.json (optional): bos_token, eos_token, unk_token, pad_token (strings or {"content": ...}),
 *    add_bos_token, add_eos_token. Without it, EOS is the first of "</s>", "<|endoftext|>", "<|end_of_text|>" that
 *    is an added token. */

#define PATTERN_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define PATTERN_LLAMA3 "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define PATTERN_QWEN2 "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

typedef struct {
  const gchar *path;
  LevConvVocab *v;
  GHashTable *names;        /* vocabulary key as written in the file -> id + 1 (borrowed from the parser) */
  GHashTable *added;        /* added token content -> id + 1 */
  gboolean byte_level;
} HfJson;

static gboolean G_GNUC_PRINTF (4, 5)
hf_fail (const HfJson *h, GError **error, gint code, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  gchar *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, LEV_CONVERT_ERROR, code, "%s: %s", h->path, msg);
  g_free (msg);
  return FALSE;
}

/* Returns member key of o (NULL when o is NULL, the member is absent, or it is JSON null). */
static JsonNode *
jmember (JsonObject *o, const char *key)
{
  if (o == NULL)
    return NULL;
  JsonNode *n = json_object_get_member (o, key);
  return n == NULL || JSON_NODE_HOLDS_NULL (n) ? NULL : n;
}

static JsonObject *
jobject (JsonObject *o, const char *key)
{
  JsonNode *n = jmember (o, key);
  return n != NULL && JSON_NODE_HOLDS_OBJECT (n) ? json_node_get_object (n) : NULL;
}

static const gchar *
jstring (JsonObject *o, const char *key)
{
  JsonNode *n = jmember (o, key);
  return n != NULL && JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_STRING
       ? json_node_get_string (n) : NULL;
}

/* A boolean member; def when absent. */
static gboolean
jbool (JsonObject *o, const char *key, gboolean def)
{
  JsonNode *n = jmember (o, key);
  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n))
    return def;
  return json_node_get_value_type (n) == G_TYPE_BOOLEAN ? json_node_get_boolean (n) : def;
}

/* A token given as a string or as {"content": string} (tokenizer_config.json's AddedToken form). */
static const gchar *
jtoken (JsonObject *o, const char *key)
{
  JsonNode *n = jmember (o, key);
  if (n == NULL)
    return NULL;
  if (JSON_NODE_HOLDS_OBJECT (n))
    return jstring (json_node_get_object (n), "content");
  return jstring (o, key);
}

static gboolean
type_is (JsonObject *o, const char *type)
{
  const gchar *t = jstring (o, "type");
  return t != NULL && strcmp (t, type) == 0;
}

/* Returns the id of a token written as text (an added token first, then a vocabulary key), or -1. */
static gint32
hf_token_id (const HfJson *h, const gchar *content)
{
  if (content == NULL)
    return -1;
  gpointer p = g_hash_table_lookup (h->added, content);
  if (p == NULL && !h->byte_level)
    p = g_hash_table_lookup (h->names, content);
  if (p == NULL && h->byte_level) {
    /* a byte-level vocabulary key spells bytes: look the content up in that spelling */
    GString *s = g_string_new (NULL);
    for (const gchar *c = content; *c; c++)
      g_string_append_unichar (s, lev_byte_level_char ((guint8) *c));
    p = g_hash_table_lookup (h->names, s->str);
    g_string_free (s, TRUE);
  }
  return p ? (gint32) GPOINTER_TO_UINT (p) - 1 : -1;
}

/* Recognises the byte-level pre-tokenizer; sets v->pretokenizer and the prefix-space flag. */
static gboolean
hf_byte_level_pretok (HfJson *h, JsonObject *pt, GError **error)
{
  if (pt == NULL)
    return hf_fail (h, error, LEV_CONVERT_ERROR_UNSUPPORTED,
                    "a byte-level BPE tokenizer without a pre-tokenizer is not supported");
  JsonObject *split = NULL, *bl = NULL;
  if (type_is (pt, "ByteLevel")) {
    bl = pt;
  } else if (type_is (pt, "Sequence")) {
    JsonNode *seq = jmember (pt, "pretokenizers");
    JsonArray *a = seq && JSON_NODE_HOLDS_ARRAY (seq) ? json_node_get_array (seq) : NULL;
    guint n = a ? json_array_get_length (a) : 0;
    for (guint i = 0; i < n; i++) {
      JsonNode *e = json_array_get_element (a, i);
      JsonObject *o = JSON_NODE_HOLDS_OBJECT (e) ? json_node_get_object (e) : NULL;
      const gchar *t = o ? jstring (o, "type") : NULL;
      if (t && strcmp (t, "Split") == 0 && split == NULL && bl == NULL)
        split = o;
      else if (t && strcmp (t, "ByteLevel") == 0 && bl == NULL)
        bl = o;
      else
        return hf_fail (h, error, LEV_CONVERT_ERROR_UNSUPPORTED,
                        "pre-tokenizer step %u (%s) is not supported: only Split (a known pattern) then ByteLevel",
                        i, t ? t : "?");
    }
  }
  if (bl == NULL)
    return hf_fail (h, error, LEV_CONVERT_ERROR_UNSUPPORTED,
                    "pre-tokenizer \"%s\" is not supported for byte-level BPE", jstring (pt, "type") ?: "?");
  gboolean use_regex = jbool (bl, "use_regex", TRUE);
  if (jbool (bl, "add_prefix_space", FALSE))
    h->v->flags |= LEV_TOKF_ADD_DUMMY_PREFIX;
  if (split == NULL) {
    if (!use_regex)
      return hf_fail (h, error, LEV_CONVERT_ERROR_UNSUPPORTED,
                      "a ByteLevel pre-tokenizer without use_regex and without a Split is not supported");
    h->v->pretokenizer = LEV_PRETOK_GPT2;
    return TRUE;
  }
  if (use_regex)
    return hf_fail (h, error, LEV_CONVERT_ERROR_UNSUPPORTED,
                    "a Split followed by a ByteLevel pre-tokenizer that splits again (use_regex) is not supported");
  const gchar *behavior = jstring (split, "behavior");
  JsonObject *pat = jobject (split, "pattern");
  const gchar *re = jstring (pat, "Regex");
  if (re == NULL || behavior == NULL || strcmp (behavior, "Isolated") != 0 || jbool (split, "invert", FALSE))
    return hf_fail (h, error, LEV_CONVERT_ERROR_UNSUPPORTED,
                    "only a Split pre-tokenizer with a Regex pattern, behavior Isolated and no invert is supported");
  if (strcmp (re, PATTERN_LLAMA3) == 0)
    h->v->pretokenizer = LEV_PRETOK_LLAMA3;
  else if (strcmp (re, PATTERN_QWEN2) == 0)
    h->v->pretokenizer = LEV_PRETOK_QWEN2;
  else if (strcmp (re, PATTERN_GPT2) == 0)
    h->v->pretokenizer = LEV_PRETOK_GPT2;
  else
    return hf_fail (h, error, LEV_CONVERT_ERROR_UNSUPPORTED,
                    "the pre-tokenizer's split pattern is not one of the known ones (GPT-2, Llama 3, Qwen2): %s", re);
  return TRUE;
}

/* Checks the normalizer of a byte-level tokenizer: none or NFC (alone or in a Sequence). */
static gboolean
hf_byte_level_normalizer (HfJson *h, JsonObject *norm, GError **error)
{
  if (norm == NULL)
    return TRUE;
  if (type_is (norm, "NFC")) {
    h->v->flags |= LEV_TOKF_NFC;
    return TRUE;
  }
  if (type_is (norm, "Sequence")) {
    JsonNode *seq = jmember (norm, "normalizers");
    JsonArray *a = seq && JSON_NODE_HOLDS_ARRAY (seq) ? json_node_get_array (seq) : NULL;
    guint n = a ? json_array_get_length (a) : 0;
    for (guint i = 0; i < n; i++) {
      JsonNode *e = json_array_get_element (a, i);
      if (!JSON_NODE_HOLDS_OBJECT (e) || !hf_byte_level_normalizer (h, json_node_get_object (e), error))
        return FALSE;
    }
    return TRUE;
  }
  return hf_fail (h, error, LEV_CONVERT_ERROR_UNSUPPORTED, "normalizer \"%s\" is not supported (only NFC)",
                  jstring (norm, "type") ?: "?");
}

/* Recognises the SentencePiece-style normalization (Prepend/Replace normalizer or Metaspace pre-tokenizer). */
static gboolean
hf_spm_style (HfJson *h, JsonObject *norm, JsonObject *pt, GError **error)
{
  gboolean prepend = FALSE, replace = FALSE;
  if (norm != NULL) {
    JsonArray *a = NULL;
    if (type_is (norm, "Sequence")) {
      JsonNode *seq = jmember (norm, "normalizers");
      a = seq && JSON_NODE_HOLDS_ARRAY (seq) ? json_node_get_array (seq) : NULL;
    }
    guint n = a ? json_array_get_length (a) : 1;
    for (guint i = 0; i < n; i++) {
      JsonObject *o = norm;
      if (a) {
        JsonNode *e = json_array_get_element (a, i);
        o = JSON_NODE_HOLDS_OBJECT (e) ? json_node_get_object (e) : NULL;
      }
      const gchar *t = o ? jstring (o, "type") : NULL;
      if (t && strcmp (t, "Prepend") == 0 && g_strcmp0 (jstring (o, "prepend"), SPACE_SYMBOL) == 0 && !replace)
        prepend = TRUE;
      else if (t && strcmp (t, "Replace") == 0 && g_strcmp0 (jstring (jobject (o, "pattern"), "String"), " ") == 0
               && g_strcmp0 (jstring (o, "content"), SPACE_SYMBOL) == 0)
        replace = TRUE;
      else
        return hf_fail (h, error, LEV_CONVERT_ERROR_UNSUPPORTED,
                        "normalizer \"%s\" is not supported (only Prepend(\"\u2581\") then Replace(\" \", \"\u2581\"))",
                        t ? t : "?");
    }
  }
  if (pt != NULL) {
    const gchar *scheme = jstring (pt, "prepend_scheme");
    if (!type_is (pt, "Metaspace") || norm != NULL)
      return hf_fail (h, error, LEV_CONVERT_ERROR_UNSUPPORTED,
                      "pre-tokenizer \"%s\" is not supported for a SentencePiece-style BPE vocabulary",
                      jstring (pt, "type") ?: "?");
    if (g_strcmp0 (jstring (pt, "replacement"), SPACE_SYMBOL) != 0 || jbool (pt, "split", TRUE)
        || (scheme != NULL && strcmp (scheme, "always") != 0) || (scheme == NULL && !jbool (pt, "add_prefix_space", TRUE)))
      return hf_fail (h, error, LEV_CONVERT_ERROR_UNSUPPORTED,
                      "only a Metaspace pre-tokenizer with replacement \"\u2581\", prepend_scheme \"always\" and "
                      "split false is supported");
    prepend = replace = TRUE;
  }
  if (!replace)
    return hf_fail (h, error, LEV_CONVERT_ERROR_UNSUPPORTED,
                    "a BPE vocabulary that is neither byte-level nor SentencePiece-style (spaces written as "
                    "\"\u2581\") is not supported");
  h->v->flags |= LEV_TOKF_ESCAPE_WS | (prepend ? LEV_TOKF_ADD_DUMMY_PREFIX : 0);
  return TRUE;
}

/* Sets piece id of the vocabulary under construction (the arrays grow as needed; new types are 0 = unset). */
static void
set_piece (GPtrArray *pieces, GArray *lens, GArray *types, guint32 id, const gchar *bytes, gsize len, guint8 type)
{
  if (id >= pieces->len) {
    g_ptr_array_set_size (pieces, id + 1);
    g_array_set_size (lens, id + 1);
    g_array_set_size (types, id + 1);
  }
  gchar *copy = g_malloc (len + 1);
  memcpy (copy, bytes, len);
  copy[len] = '\0';
  g_free (g_ptr_array_index (pieces, id));
  pieces->pdata[id] = copy;
  g_array_index (lens, guint32, id) = (guint32) len;
  g_array_index (types, guint8, id) = type;
}

/* TRUE when the pre-tokenizer is ByteLevel or a Sequence holding one. */
static gboolean
has_byte_level_step (JsonObject *pt)
{
  if (pt == NULL)
    return FALSE;
  if (type_is (pt, "ByteLevel"))
    return TRUE;
  JsonNode *seq = jmember (pt, "pretokenizers");
  JsonArray *a = seq && JSON_NODE_HOLDS_ARRAY (seq) ? json_node_get_array (seq) : NULL;
  for (guint i = 0; a && i < json_array_get_length (a); i++) {
    JsonNode *e = json_array_get_element (a, i);
    if (JSON_NODE_HOLDS_OBJECT (e) && type_is (json_node_get_object (e), "ByteLevel"))
      return TRUE;
  }
  return FALSE;
}

/* Reads a vocabulary id: a non-negative integer below LEV_MAX_TOKENS. */
static gboolean
hf_id (const HfJson *h, JsonNode *n, const char *what, guint32 *out, GError **error)
{
  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_INT64)
    return hf_fail (h, error, LEV_CONVERT_ERROR_FORMAT, "%s has no integer id", what);
  gint64 id = json_node_get_int (n);
  if (id < 0 || id >= LEV_MAX_TOKENS)
    return hf_fail (h, error, LEV_CONVERT_ERROR_FORMAT, "%s has id %" G_GINT64_FORMAT ", outside 0..%u", what, id,
                    LEV_MAX_TOKENS - 1);
  *out = (guint32) id;
  return TRUE;
}

/* Parses a merge ("a b" or [a, b]) into the ids of its two pieces. */
static gboolean
hf_merge (const HfJson *h, JsonNode *e, guint r, guint32 pair[2], GError **error)
{
  const gchar *a = NULL, *b = NULL;
  gchar *tmp = NULL;
  if (JSON_NODE_HOLDS_VALUE (e) && json_node_get_value_type (e) == G_TYPE_STRING) {
    const gchar *s = json_node_get_string (e);
    const gchar *sp = strchr (s, ' ');
    if (sp == NULL || strchr (sp + 1, ' ') != NULL || sp == s || sp[1] == '\0')
      return hf_fail (h, error, LEV_CONVERT_ERROR_FORMAT, "merge %u (\"%s\") is not two pieces separated by one space",
                      r, s);
    tmp = g_strndup (s, (gsize) (sp - s));
    a = tmp;
    b = sp + 1;
  } else if (JSON_NODE_HOLDS_ARRAY (e) && json_array_get_length (json_node_get_array (e)) == 2) {
    JsonArray *arr = json_node_get_array (e);
    JsonNode *x = json_array_get_element (arr, 0), *y = json_array_get_element (arr, 1);
    if (JSON_NODE_HOLDS_VALUE (x) && json_node_get_value_type (x) == G_TYPE_STRING && JSON_NODE_HOLDS_VALUE (y)
        && json_node_get_value_type (y) == G_TYPE_STRING) {
      a = json_node_get_string (x);
      b = json_node_get_string (y);
    }
  }
  if (a == NULL || b == NULL)
    return hf_fail (h, error, LEV_CONVERT_ERROR_FORMAT, "merge %u is neither \"a b\" nor [\"a\", \"b\"]", r);
  gpointer ia = g_hash_table_lookup (h->names, a), ib = g_hash_table_lookup (h->names, b);
  gchar *ab = g_strconcat (a, b, NULL);
  gboolean made = g_hash_table_lookup (h->names, ab) != NULL;
  gboolean ok = ia && ib && made;
  if (!ok)
    hf_fail (h, error, LEV_CONVERT_ERROR_FORMAT, "merge %u (\"%s\" + \"%s\"): %s is not in the vocabulary", r, a, b,
             !ia ? "the left piece" : !ib ? "the right piece" : "the merged piece");
  g_free (ab);
  g_free (tmp);
  pair[0] = GPOINTER_TO_UINT (ia) - 1;
  pair[1] = GPOINTER_TO_UINT (ib) - 1;
  return ok;
}

/* Applies tokenizer_config.json (when config_path exists) and the post-processor to the special ids and flags. */
static gboolean
hf_specials (HfJson *h, JsonObject *root, const gchar *config_path, GError **error)
{
  LevConvVocab *v = h->v;
  /* post_processor: TemplateProcessing whose single sequence starts with a special token adds it (BOS) */
  JsonObject *pp = jobject (root, "post_processor");
  if (pp != NULL && type_is (pp, "TemplateProcessing")) {
    JsonNode *single = jmember (pp, "single");
    JsonArray *a = single && JSON_NODE_HOLDS_ARRAY (single) ? json_node_get_array (single) : NULL;
    if (a && json_array_get_length (a) > 0 && JSON_NODE_HOLDS_OBJECT (json_array_get_element (a, 0))) {
      JsonObject *first = jobject (json_node_get_object (json_array_get_element (a, 0)), "SpecialToken");
      gint32 id = hf_token_id (h, jstring (first, "id"));
      if (id >= 0) {
        v->bos_id = id;
        v->flags |= LEV_TOKF_ADD_BOS;
      }
    }
  }
  if (config_path == NULL || !g_file_test (config_path, G_FILE_TEST_IS_REGULAR)) {
    static const char *const eos_names[] = { "</s>", "<|endoftext|>", "<|end_of_text|>" };
    for (guint i = 0; i < G_N_ELEMENTS (eos_names) && v->eos_id < 0; i++) {
      gpointer p = g_hash_table_lookup (h->added, eos_names[i]);
      if (p)
        v->eos_id = (gint32) GPOINTER_TO_UINT (p) - 1;
    }
    return TRUE;
  }
  gchar *data;
  gsize len;
  if (!lev_conv_read_file (config_path, &data, &len, error))
    return FALSE;
  JsonParser *parser = json_parser_new ();
  GError *e = NULL;
  gboolean ok = json_parser_load_from_data (parser, data, (gssize) len, &e);
  g_free (data);
  JsonNode *top = ok ? json_parser_get_root (parser) : NULL;   /* NULL for a document of only whitespace */
  if (top == NULL || !JSON_NODE_HOLDS_OBJECT (top)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s: not a JSON object%s%s", config_path,
                 e ? ": " : "", e ? e->message : "");
    g_clear_error (&e);
    g_object_unref (parser);
    return FALSE;
  }
  JsonObject *o = json_node_get_object (top);
  static const struct { const char *key; gsize off; } ids[] = {
    { "bos_token", G_STRUCT_OFFSET (LevConvVocab, bos_id) }, { "eos_token", G_STRUCT_OFFSET (LevConvVocab, eos_id) },
    { "unk_token", G_STRUCT_OFFSET (LevConvVocab, unk_id) }, { "pad_token", G_STRUCT_OFFSET (LevConvVocab, pad_id) },
  };
  for (guint i = 0; i < G_N_ELEMENTS (ids) && ok; i++) {
    JsonNode *n = json_object_get_member (o, ids[i].key);
    if (n == NULL)
      continue;   /* absent: keep what tokenizer.json said */
    gint32 *dst = G_STRUCT_MEMBER_P (v, ids[i].off);
    const gchar *content = jtoken (o, ids[i].key);
    if (content == NULL) {
      *dst = -1;  /* null: there is none */
      if (ids[i].off == G_STRUCT_OFFSET (LevConvVocab, bos_id))
        v->flags &= ~LEV_TOKF_ADD_BOS;
      continue;
    }
    gint32 id = hf_token_id (h, content);
    if (id < 0) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s: %s \"%s\" is not a token of %s",
                   config_path, ids[i].key, content, h->path);
      ok = FALSE;
    }
    *dst = id;
  }
  static const struct { const char *key; guint32 flag; } flags[] = {
    { "add_bos_token", LEV_TOKF_ADD_BOS }, { "add_eos_token", LEV_TOKF_ADD_EOS },
  };
  for (guint i = 0; i < G_N_ELEMENTS (flags) && ok; i++) {
    JsonNode *n = jmember (o, flags[i].key);
    if (n == NULL)
      continue;
    if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_BOOLEAN) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s: %s is not true or false", config_path,
                   flags[i].key);
      ok = FALSE;
    } else if (json_node_get_boolean (n)) {
      v->flags |= flags[i].flag;
    } else {
      v->flags &= ~flags[i].flag;
    }
  }
  if (ok && v->bos_id < 0)
    v->flags &= ~LEV_TOKF_ADD_BOS;
  g_object_unref (parser);
  return ok;
}

/* Parses a tokenizer.json held in data. */
static LevConvVocab *
parse_hf_tokenizer_json (const gchar *data, gsize len, const gchar *path, const gchar *config_path, GError **error)
{
  HfJson h = { .path = path };
  GError *e = NULL;
  JsonParser *parser = json_parser_new_immutable ();
  if (!json_parser_load_from_data (parser, data, (gssize) len, &e)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s: invalid JSON: %s", path, e->message);
    g_error_free (e);
    g_object_unref (parser);
    return NULL;
  }
  JsonNode *rootn = json_parser_get_root (parser);
  JsonObject *root = rootn && JSON_NODE_HOLDS_OBJECT (rootn) ? json_node_get_object (rootn) : NULL;
  JsonObject *model = jobject (root, "model");
  gboolean ok = FALSE;
  if (model == NULL) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED,
                 "%s: not a tokenizer.json (no \"model\" object); tokenizer_config.json and other JSON files only "
                 "add settings to a tokenizer.json", path);
    g_object_unref (parser);
    return NULL;
  }
  h.names = g_hash_table_new (g_str_hash, g_str_equal);
  h.added = g_hash_table_new (g_str_hash, g_str_equal);
  GPtrArray *pieces = g_ptr_array_new_with_free_func (g_free);
  GArray *lens = g_array_new (FALSE, TRUE, sizeof (guint32));
  GArray *types = g_array_new (FALSE, TRUE, sizeof (guint8));
  h.v = lev_conv_vocab_new (LEV_TOK_SPM_BPE);
  LevConvVocab *v = h.v;

  const gchar *mtype = jstring (model, "type");
  JsonObject *norm = jobject (root, "normalizer"), *pt = jobject (root, "pre_tokenizer"), *dec = jobject (root, "decoder");
  JsonObject *vocab = jobject (model, "vocab");
  JsonNode *merges_node = jmember (model, "merges");
  JsonArray *merges = merges_node && JSON_NODE_HOLDS_ARRAY (merges_node) ? json_node_get_array (merges_node) : NULL;
  if (mtype == NULL || strcmp (mtype, "BPE") != 0) {
    hf_fail (&h, error, LEV_CONVERT_ERROR_UNSUPPORTED, "tokenizer model \"%s\" is not supported; only BPE is",
             mtype ? mtype : "?");
    goto out;
  }
  if (vocab == NULL || merges == NULL) {
    hf_fail (&h, error, LEV_CONVERT_ERROR_FORMAT, "the BPE model has no vocab object or no merges array");
    goto out;
  }
  const gchar *cont = jstring (model, "continuing_subword_prefix"), *eow = jstring (model, "end_of_word_suffix");
  if ((cont && *cont) || (eow && *eow)) {
    hf_fail (&h, error, LEV_CONVERT_ERROR_UNSUPPORTED,
             "BPE with a continuing_subword_prefix or end_of_word_suffix is not supported");
    goto out;
  }
  h.byte_level = has_byte_level_step (pt) || (dec && type_is (dec, "ByteLevel"));
  if (h.byte_level) {
    v->kind = LEV_TOK_BYTE_BPE;
    if (!hf_byte_level_pretok (&h, pt, error) || !hf_byte_level_normalizer (&h, norm, error))
      goto out;
  } else if (!hf_spm_style (&h, norm, pt, error)) {
    goto out;
  }
  if (jbool (model, "byte_fallback", FALSE))
    v->flags |= LEV_TOKF_BYTE_FALLBACK;
  if (jbool (model, "ignore_merges", FALSE))
    v->flags |= LEV_TOKF_IGNORE_MERGES;
  v->flags |= LEV_TOKF_SPLIT_ADDED;

  /* vocabulary */
  guint n_unmappable = 0;
  GList *members = json_object_get_members (vocab);
  GString *bytes = g_string_new (NULL);
  for (GList *l = members; l; l = l->next) {
    const gchar *name = l->data;
    guint32 id;
    gchar *what = g_strdup_printf ("vocabulary entry \"%s\"", name);
    gboolean good = hf_id (&h, json_object_get_member (vocab, name), what, &id, error);
    g_free (what);
    if (!good) {
      g_list_free (members);
      g_string_free (bytes, TRUE);
      goto out;
    }
    g_hash_table_insert (h.names, (gpointer) name, GUINT_TO_POINTER (id + 1));
    g_string_truncate (bytes, 0);
    guint8 type = LEV_TOKTYPE_NORMAL;
    if (!h.byte_level) {
      g_string_append (bytes, name);
      if ((v->flags & LEV_TOKF_BYTE_FALLBACK) && byte_piece_value (bytes->str, bytes->len) >= 0)
        type = LEV_TOKTYPE_BYTE;
    } else if (!lev_byte_level_to_bytes (name, -1, bytes)) {
      g_string_truncate (bytes, 0);
      g_string_append (bytes, name);   /* outside the alphabet: kept as UTF-8, never produced */
      type = LEV_TOKTYPE_UNUSED;
      n_unmappable++;
    }
    set_piece (pieces, lens, types, id, bytes->str, bytes->len, type);
  }
  g_list_free (members);
  g_string_free (bytes, TRUE);
  const gchar *unk = jstring (model, "unk_token");

  /* added tokens */
  JsonNode *added_node = jmember (root, "added_tokens");
  JsonArray *added = added_node && JSON_NODE_HOLDS_ARRAY (added_node) ? json_node_get_array (added_node) : NULL;
  guint n_added = added ? json_array_get_length (added) : 0;
  for (guint i = 0; i < n_added; i++) {
    JsonNode *en = json_array_get_element (added, i);
    JsonObject *o = JSON_NODE_HOLDS_OBJECT (en) ? json_node_get_object (en) : NULL;
    const gchar *content = jstring (o, "content");
    guint32 id;
    if (content == NULL || *content == '\0') {
      hf_fail (&h, error, LEV_CONVERT_ERROR_FORMAT, "added token %u has no content", i);
      goto out;
    }
    if (!hf_id (&h, jmember (o, "id"), "an added token", &id, error))
      goto out;
    set_piece (pieces, lens, types, id, content, strlen (content),
               jbool (o, "special", FALSE) ? LEV_TOKTYPE_CONTROL : LEV_TOKTYPE_USER_DEFINED);
    g_hash_table_insert (h.added, (gpointer) content, GUINT_TO_POINTER (id + 1));
  }
  if (unk != NULL) {
    gint32 id = hf_token_id (&h, unk);
    if (id < 0) {
      hf_fail (&h, error, LEV_CONVERT_ERROR_FORMAT, "unk_token \"%s\" is not in the vocabulary", unk);
      goto out;
    }
    v->unk_id = id;
    g_array_index (types, guint8, id) = LEV_TOKTYPE_UNKNOWN;
  }
  if (pieces->len == 0) {
    hf_fail (&h, error, LEV_CONVERT_ERROR_FORMAT, "the vocabulary is empty");
    goto out;
  }
  /* ids nobody uses become empty UNUSED pieces */
  for (guint i = 0; i < pieces->len; i++) {
    gchar *p = g_ptr_array_index (pieces, i);
    lev_conv_vocab_add (v, p ? p : "", p ? g_array_index (lens, guint32, i) : 0, 0.0f,
                        p ? g_array_index (types, guint8, i) : LEV_TOKTYPE_UNUSED);
  }

  /* merges */
  guint n_merges = json_array_get_length (merges);
  if (n_merges == 0 && !h.byte_level) {
    hf_fail (&h, error, LEV_CONVERT_ERROR_UNSUPPORTED, "a SentencePiece-style BPE model without merges is not "
             "supported");
    goto out;
  }
  g_array_set_size (v->merges, 2 * n_merges);
  for (guint r = 0; r < n_merges; r++)
    if (!hf_merge (&h, json_array_get_element (merges, r), r, &g_array_index (v->merges, guint32, 2 * r), error))
      goto out;
  if (n_unmappable > 0)
    g_debug ("%s: %u vocabulary entries are outside the byte-level alphabet; kept as unused pieces", path,
             n_unmappable);
  ok = hf_specials (&h, root, config_path, error);

out:
  g_hash_table_destroy (h.names);
  g_hash_table_destroy (h.added);
  g_ptr_array_unref (pieces);
  g_array_unref (lens);
  g_array_unref (types);
  g_object_unref (parser);
  if (!ok) {
    lev_conv_vocab_free (v);
    return NULL;
  }
  return v;
}

/* Reads a Hugging Face tokenizer.json (BPE: byte-level, or SentencePiece-style) into a vocabulary; config_path
 * (may be NULL or missing) is its tokenizer_config.json, for BOS/EOS and add_bos_token. */
LevConvVocab *
lev_import_hf_tokenizer_json (const gchar *path, const gchar *config_path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  gchar *data;
  gsize len;
  if (!lev_conv_read_file (path, &data, &len, error))
    return NULL;
  LevConvVocab *v = parse_hf_tokenizer_json (data, len, path, config_path, error);
  g_free (data);
  return v;
}

/* ---------------------------------------------------------------- detection */

/* TRUE when data starts like a ModelProto: field 1 (a SentencePiece message) whose own first field is 1 (piece). */
static gboolean
looks_like_spm (const guint8 *data, gsize len)
{
  if (len < 4 || data[0] != 0x0A)
    return FALSE;
  gsize i = 1;
  guint64 l = 0;
  for (int shift = 0; i < len && shift < 35; shift += 7) {
    guint8 b = data[i++];
    l |= (guint64) (b & 0x7F) << shift;
    if (!(b & 0x80))
      return l > 0 && i < len && data[i] == 0x0A;
  }
  return FALSE;
}

/* Reads a tokenizer file of any kind, chosen by its contents; a directory is searched for one. In a directory:
 * tokenizer.model when it is a SentencePiece model (its own semantics are the reference; a byte-level vocabulary never
 * comes as one), else tokenizer.json (Hugging Face, with tokenizer_config.json beside it), else tokenizer.bin
 * (llama2.c). A tokenizer.json read as a file also takes the tokenizer_config.json of its directory. */
LevConvVocab *
lev_import_vocab (const gchar *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  if (g_file_test (path, G_FILE_TEST_IS_DIR)) {
    gchar *model = g_build_filename (path, "tokenizer.model", NULL);
    gchar *json = g_build_filename (path, "tokenizer.json", NULL);
    gchar *bin = g_build_filename (path, "tokenizer.bin", NULL);
    const gchar *pick = NULL;
    gboolean have_json = g_file_test (json, G_FILE_TEST_IS_REGULAR);
    if (g_file_test (model, G_FILE_TEST_IS_REGULAR)) {
      /* a tokenizer.model that is not SentencePiece (tiktoken's, for instance) gives way to tokenizer.json */
      guint8 head[16];
      gsize got = 0;
      FILE *f = fopen (model, "rb");
      if (f) {
        got = fread (head, 1, sizeof head, f);
        fclose (f);
      }
      if (!have_json || looks_like_spm (head, got))
        pick = model;
    }
    if (pick == NULL && have_json)
      pick = json;
    if (pick == NULL && g_file_test (bin, G_FILE_TEST_IS_REGULAR))
      pick = bin;
    LevConvVocab *v = NULL;
    if (pick != NULL)
      v = lev_import_vocab (pick, error);
    else
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO,
                   "%s: no tokenizer.model, tokenizer.json or tokenizer.bin in it", path);
    g_free (model);
    g_free (json);
    g_free (bin);
    return v;
  }
  gchar *data;
  gsize len;
  if (!lev_conv_read_file (path, &data, &len, error))
    return NULL;
  const guint8 *d = (const guint8 *) data;
  LevConvVocab *v = NULL;
  gsize skip = 0;
  while (skip < len && g_ascii_isspace (data[skip]))
    skip++;
  if (looks_like_spm (d, len)) {
    v = lev_spm_parse (d, len, path, error);
  } else if (skip < len && data[skip] == '{') {
    gchar *dir = g_path_get_dirname (path);
    gchar *config = g_build_filename (dir, "tokenizer_config.json", NULL);
    v = parse_hf_tokenizer_json (data, len, path, config, error);
    g_free (config);
    g_free (dir);
  } else if (len >= 4 && read_i32 (d) > 0 && read_i32 (d) <= (1 << 20)) {
    v = parse_llama2c_tokenizer (d, len, path, error);
  } else {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                 "%s: neither a SentencePiece tokenizer.model, a Hugging Face tokenizer.json nor a llama2.c "
                 "tokenizer.bin", path);
  }
  g_free (data);
  return v;
}
