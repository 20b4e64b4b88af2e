/* lev_import_hf.c: importer for Hugging Face checkpoint directories (config.json, safetensors, tokenizer files). */
#include "lev_convert.h"
#include "lev_kernels.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define ST_MAX_HEADER (100u * 1024u * 1024u) /* refuse absurd safetensors header lengths */
#define ST_MAX_DIMS 8u

/* ---------------------------------------------------------------------------------------------------------------- */
/* JSON helpers                                                                                                      */
/* ---------------------------------------------------------------------------------------------------------------- */

/* Parses the JSON file at path (mapped, not copied); the returned parser owns the tree. */
static JsonParser *
load_json_file (const gchar *path, GError **error)
{
  GError *err = NULL;
  GMappedFile *mf = g_mapped_file_new (path, FALSE, &err);
  if (mf == NULL) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO, "cannot read %s: %s", path, err->message);
    g_error_free (err);
    return NULL;
  }
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
static JsonNode *
get_member (JsonObject *o, const gchar *key)
{
  JsonNode *n = json_object_get_member (o, key);
  return n == NULL || JSON_NODE_HOLDS_NULL (n) ? NULL : n;
}

/* Reads a JSON number that must be a non-negative integer; FALSE when it is something else. */
static gboolean
node_get_u64 (JsonNode *n, guint64 *out)
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

/* Reads a JSON number (integer or float) as double; FALSE when it is not a number. */
static gboolean
node_get_number (JsonNode *n, double *out)
{
  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n))
    return FALSE;
  GType t = json_node_get_value_type (n);
  if (t == G_TYPE_INT64)
    *out = (double) json_node_get_int (n);
  else if (t == G_TYPE_DOUBLE)
    *out = json_node_get_double (n);
  else
    return FALSE;
  return TRUE;
}

/* Config integer field: required ones fail when absent; all fail when not a positive integer below 2^32. */
static gboolean
cfg_uint (JsonObject *cfg, const gchar *key, gboolean required, guint32 def, guint32 *out, GError **error)
{
  JsonNode *n = get_member (cfg, key);
  guint64 v;
  if (n == NULL) {
    if (required) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "config.json has no \"%s\"", key);
      return FALSE;
    }
    *out = def;
    return TRUE;
  }
  if (!node_get_u64 (n, &v) || v == 0 || v > G_MAXUINT32) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                 "config.json: \"%s\" is not a positive integer below 2^32", key);
    return FALSE;
  }
  *out = (guint32) v;
  return TRUE;
}

/* Config float field with a default for absent or null. */
static gboolean
cfg_float (JsonObject *o, const gchar *key, double def, float *out, GError **error)
{
  JsonNode *n = get_member (o, key);
  double v = def;
  if (n != NULL && (!node_get_number (n, &v) || !isfinite (v))) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "config.json: \"%s\" is not a number", key);
    return FALSE;
  }
  *out = (float) v;
  return TRUE;
}

/* Config boolean field with a default for absent or null. */
static gboolean
cfg_bool (JsonObject *o, const gchar *key, gboolean def, gboolean *out, GError **error)
{
  JsonNode *n = get_member (o, key);
  if (n == NULL) {
    *out = def;
    return TRUE;
  }
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_BOOLEAN) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "\"%s\" is not a boolean", key);
    return FALSE;
  }
  *out = json_node_get_boolean (n);
  return TRUE;
}

/* A token id from config: an integer, or a list whose first element is used; -1 when absent. */
static gboolean
cfg_token_id (JsonObject *cfg, const gchar *key, gint32 *out, GError **error)
{
  JsonNode *n = get_member (cfg, key);
  guint64 v;
  *out = -1;
  if (n == NULL)
    return TRUE;
  if (JSON_NODE_HOLDS_ARRAY (n)) {
    JsonArray *a = json_node_get_array (n);
    if (json_array_get_length (a) == 0)
      return TRUE;
    n = json_array_get_element (a, 0);
  }
  if (!node_get_u64 (n, &v) || v > G_MAXINT32) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "config.json: \"%s\" is not a token id", key);
    return FALSE;
  }
  *out = (gint32) v;
  return TRUE;
}

/* Returns the string member key, or NULL when absent, null or not a string. */
static const gchar *
get_string (JsonObject *o, const gchar *key)
{
  JsonNode *n = get_member (o, key);
  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (n);
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* safetensors                                                                                                       */
/* ---------------------------------------------------------------------------------------------------------------- */

typedef enum {
  ST_F32,
  ST_F16,
  ST_BF16,
  ST_U8,
} StDtype;

/* One tensor of a safetensors file, pointing into the mapped file. */
typedef struct {
  gchar *name;          /* Hugging Face name */
  const gchar *file;    /* basename of the file it is in (owned by the StSet) */
  StDtype dtype;
  guint32 n_dims;
  guint64 shape[ST_MAX_DIMS];
  guint64 numel;
  const guint8 *data;
  guint64 nbytes;
} StTensor;

/* All tensors of one checkpoint (one file or all shards), by name. */
typedef struct {
  GHashTable *tensors;  /* name -> StTensor* */
  GPtrArray *maps;      /* GMappedFile* */
  GPtrArray *files;     /* gchar* basenames */
} StSet;

static void
st_tensor_free (gpointer p)
{
  StTensor *t = p;
  g_free (t->name);
  g_free (t);
}

static StSet *
st_set_new (void)
{
  StSet *s = g_new0 (StSet, 1);
  s->tensors = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, st_tensor_free);
  s->maps = g_ptr_array_new_with_free_func ((GDestroyNotify) g_mapped_file_unref);
  s->files = g_ptr_array_new_with_free_func (g_free);
  return s;
}

static void
st_set_free (StSet *s)
{
  if (s == NULL)
    return;
  g_hash_table_unref (s->tensors);
  g_ptr_array_unref (s->maps);
  g_ptr_array_unref (s->files);
  g_free (s);
}

static gboolean
st_dtype_parse (const gchar *s, StDtype *dt, guint *esize)
{
  static const struct { const char *name; StDtype dt; guint size; } tab[] = {
    { "F32", ST_F32, 4 }, { "F16", ST_F16, 2 }, { "BF16", ST_BF16, 2 }, { "U8", ST_U8, 1 },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (tab); i++)
    if (strcmp (s, tab[i].name) == 0) {
      *dt = tab[i].dt;
      *esize = tab[i].size;
      return TRUE;
    }
  return FALSE;
}

typedef struct {
  guint64 begin, end;
  const gchar *name;
} StRange;

static gint
range_cmp (gconstpointer a, gconstpointer b)
{
  const StRange *x = a, *y = b;
  if (x->begin != y->begin)
    return x->begin < y->begin ? -1 : 1;
  return x->end < y->end ? -1 : x->end > y->end;
}

/* Parses one tensor entry of a safetensors header into t; path is for messages. */
static gboolean
st_parse_entry (const gchar *path, const gchar *name, JsonNode *node, const guint8 *data, guint64 data_size,
                StTensor *t, GError **error)
{
#define ST_FAIL(...) \
  do { \
    g_autofree gchar *msg_ = g_strdup_printf (__VA_ARGS__); \
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s: tensor %s: %s", path, name, msg_); \
    return FALSE; \
  } while (0)
  if (!JSON_NODE_HOLDS_OBJECT (node))
    ST_FAIL ("entry is not an object");
  JsonObject *o = json_node_get_object (node);
  const gchar *dts = get_string (o, "dtype");
  if (dts == NULL)
    ST_FAIL ("no \"dtype\" string");
  guint esize;
  if (!st_dtype_parse (dts, &t->dtype, &esize)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED,
                 "%s: tensor %s has dtype %s, which is not supported (F32, F16, BF16 and U8 are)", path, name, dts);
    return FALSE;
  }
  JsonNode *sn = get_member (o, "shape");
  if (sn == NULL || !JSON_NODE_HOLDS_ARRAY (sn))
    ST_FAIL ("no \"shape\" array");
  JsonArray *sa = json_node_get_array (sn);
  guint nd = json_array_get_length (sa);
  if (nd > ST_MAX_DIMS)
    ST_FAIL ("%u dimensions", nd);
  t->n_dims = nd;
  guint64 numel = 1;
  for (guint i = 0; i < nd; i++) {
    guint64 d;
    if (!node_get_u64 (json_array_get_element (sa, i), &d))
      ST_FAIL ("shape element %u is not a non-negative integer", i);
    t->shape[i] = d;
    if (d != 0 && numel > G_MAXUINT64 / d)
      ST_FAIL ("shape overflows");
    numel *= d;
  }
  t->numel = numel;
  if (numel > G_MAXUINT64 / esize)
    ST_FAIL ("shape overflows");
  guint64 nbytes = numel * esize;
  JsonNode *on = get_member (o, "data_offsets");
  if (on == NULL || !JSON_NODE_HOLDS_ARRAY (on) || json_array_get_length (json_node_get_array (on)) != 2)
    ST_FAIL ("no \"data_offsets\" [begin, end]");
  JsonArray *oa = json_node_get_array (on);
  guint64 begin, end;
  if (!node_get_u64 (json_array_get_element (oa, 0), &begin) || !node_get_u64 (json_array_get_element (oa, 1), &end))
    ST_FAIL ("data_offsets are not non-negative integers");
  if (begin > end || end > data_size)
    ST_FAIL ("data_offsets [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT "] lie outside the %" G_GUINT64_FORMAT
             " data bytes of the file (truncated?)", begin, end, data_size);
  if (end - begin != nbytes)
    ST_FAIL ("data_offsets give %" G_GUINT64_FORMAT " bytes, but %s of %" G_GUINT64_FORMAT " elements needs %"
             G_GUINT64_FORMAT, end - begin, dts, numel, nbytes);
  t->data = data + begin;
  t->nbytes = nbytes;
  return TRUE;
#undef ST_FAIL
}

/* Maps one safetensors file and adds its tensors to set (names must be new). */
static gboolean
st_load_file (StSet *set, const gchar *path, GError **error)
{
  GError *err = NULL;
  GMappedFile *mf = g_mapped_file_new (path, FALSE, &err);
  if (mf == NULL) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO, "cannot read %s: %s", path, err->message);
    g_error_free (err);
    return FALSE;
  }
  g_ptr_array_add (set->maps, mf);
  gchar *fname = g_path_get_basename (path);
  g_ptr_array_add (set->files, fname);

  const guint8 *base = (const guint8 *) g_mapped_file_get_contents (mf);
  guint64 size = g_mapped_file_get_length (mf);
  if (size < 8) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                 "%s: %" G_GUINT64_FORMAT " bytes is too small for a safetensors file", path, size);
    return FALSE;
  }
  guint64 hlen;
  memcpy (&hlen, base, 8);
  hlen = GUINT64_FROM_LE (hlen);
  if (hlen > size - 8) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                 "%s: safetensors header length %" G_GUINT64_FORMAT " is larger than the %" G_GUINT64_FORMAT
                 " bytes after it (truncated or not a safetensors file)", path, hlen, size - 8);
    return FALSE;
  }
  if (hlen < 2 || hlen > ST_MAX_HEADER) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                 "%s: safetensors header length %" G_GUINT64_FORMAT " is out of range", path, hlen);
    return FALSE;
  }
  const guint8 *data = base + 8 + hlen;
  guint64 data_size = size - 8 - hlen;

  g_autoptr (JsonParser) parser = json_parser_new ();
  if (!json_parser_load_from_data (parser, (const gchar *) base + 8, (gssize) hlen, &err)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s: safetensors header is not valid JSON: %s",
                 path, err->message);
    g_error_free (err);
    return FALSE;
  }
  JsonNode *root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                 "%s: safetensors header is not a JSON object", path);
    return FALSE;
  }

  gboolean ok = TRUE;
  GArray *ranges = g_array_new (FALSE, FALSE, sizeof (StRange));
  JsonObjectIter it;
  const gchar *name;
  JsonNode *node;
  json_object_iter_init (&it, json_node_get_object (root));
  while (ok && json_object_iter_next (&it, &name, &node)) {
    if (strcmp (name, "__metadata__") == 0) {
      if (!JSON_NODE_HOLDS_OBJECT (node)) {
        g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                     "%s: safetensors __metadata__ is not an object", path);
        ok = FALSE;
      }
      continue;
    }
    if (g_hash_table_contains (set->tensors, name)) {
      StTensor *prev = g_hash_table_lookup (set->tensors, name);
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "tensor %s appears both in %s and in %s", name,
                   prev->file, fname);
      ok = FALSE;
      break;
    }
    StTensor *t = g_new0 (StTensor, 1);
    if (!st_parse_entry (path, name, node, data, data_size, t, error)) {
      g_free (t);
      ok = FALSE;
      break;
    }
    t->name = g_strdup (name);
    t->file = fname;
    g_hash_table_insert (set->tensors, t->name, t);
    StRange r = { (guint64) (t->data - data), (guint64) (t->data - data) + t->nbytes, t->name };
    g_array_append_val (ranges, r);
  }
  if (ok) {
    g_array_sort (ranges, range_cmp);
    for (guint i = 1; ok && i < ranges->len; i++) {
      StRange *a = &g_array_index (ranges, StRange, i - 1), *b = &g_array_index (ranges, StRange, i);
      if (b->begin < a->end && b->end > b->begin && a->end > a->begin) {
        g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                     "%s: the data of tensors %s and %s overlap", path, a->name, b->name);
        ok = FALSE;
      }
    }
  }
  g_array_unref (ranges);
  return ok;
}

/* A shard name from an index must be a plain file name inside the checkpoint directory. */
static gboolean
shard_name_ok (const gchar *s)
{
  return s[0] != '\0' && strchr (s, '/') == NULL && strchr (s, '\\') == NULL && strcmp (s, ".") != 0 &&
         strcmp (s, "..") != 0;
}

/* Loads model.safetensors, or the shards that model.safetensors.index.json names. */
static StSet *
st_load_dir (const gchar *dir, GError **error)
{
  StSet *set = st_set_new ();
  g_autofree gchar *single = g_build_filename (dir, "model.safetensors", NULL);
  g_autofree gchar *index = g_build_filename (dir, "model.safetensors.index.json", NULL);
  if (g_file_test (single, G_FILE_TEST_EXISTS)) {
    if (!st_load_file (set, single, error)) {
      st_set_free (set);
      return NULL;
    }
    return set;
  }
  if (!g_file_test (index, G_FILE_TEST_EXISTS)) {
    g_autofree gchar *pt = g_build_filename (dir, "pytorch_model.bin", NULL);
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO,
                 "%s has neither model.safetensors nor model.safetensors.index.json%s", dir,
                 g_file_test (pt, G_FILE_TEST_EXISTS) ? " (PyTorch .bin checkpoints are not supported)" : "");
    st_set_free (set);
    return NULL;
  }
  JsonParser *parser = load_json_file (index, error);
  if (parser == NULL) {
    st_set_free (set);
    return NULL;
  }
  JsonObject *root = json_node_get_object (json_parser_get_root (parser));
  JsonNode *wm = get_member (root, "weight_map");
  gboolean ok = TRUE;
  if (wm == NULL || !JSON_NODE_HOLDS_OBJECT (wm)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s has no \"weight_map\" object", index);
    ok = FALSE;
  }
  /* load each distinct shard once, in order of first mention */
  GHashTable *loaded = g_hash_table_new (g_str_hash, g_str_equal);
  JsonObjectIter it;
  const gchar *name;
  JsonNode *node;
  if (ok)
    json_object_iter_init (&it, json_node_get_object (wm));
  while (ok && json_object_iter_next (&it, &name, &node)) {
    const gchar *shard = JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING
                         ? json_node_get_string (node) : NULL;
    if (shard == NULL || !shard_name_ok (shard)) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s: tensor %s maps to an invalid shard name",
                   index, name);
      ok = FALSE;
      break;
    }
    if (g_hash_table_contains (loaded, shard))
      continue;
    g_hash_table_add (loaded, (gpointer) shard);
    g_autofree gchar *path = g_build_filename (dir, shard, NULL);
    if (!g_file_test (path, G_FILE_TEST_IS_REGULAR)) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO,
                   "shard %s named by %s (for tensor %s) is missing", shard, index, name);
      ok = FALSE;
      break;
    }
    ok = st_load_file (set, path, error);
  }
  /* every tensor of the weight map must be in the shard the map names */
  if (ok)
    json_object_iter_init (&it, json_node_get_object (wm));
  while (ok && json_object_iter_next (&it, &name, &node)) {
    StTensor *t = g_hash_table_lookup (set->tensors, name);
    const gchar *shard = json_node_get_string (node);
    if (t == NULL || strcmp (t->file, shard) != 0) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                   "%s says tensor %s is in %s, but it is %s%s", index, name, shard, t ? "in " : "in no shard",
                   t ? t->file : "");
      ok = FALSE;
    }
  }
  g_hash_table_unref (loaded);
  g_object_unref (parser);
  if (!ok) {
    st_set_free (set);
    return NULL;
  }
  return set;
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* config.json                                                                                                       */
/* ---------------------------------------------------------------------------------------------------------------- */

/* Fills model->hp from config.json; *tied receives tie_word_embeddings. */
/* How the checkpoint stores its linear weights (from config.json). */
typedef struct {
  gboolean tied;            /* tie_word_embeddings */
  gboolean ternarize;       /* latent float weights made ternary at import (1bitLLM, 2B4T "online") */
  gboolean packed;          /* uint8, 4 ternary codes per byte along output rows, plus weight_scale (2B4T "offline") */
  gboolean scale_divides;   /* weight_scale divides (transformers' BitLinear) instead of multiplying (AutoBitLinear) */
} HfLayout;

/* Reads 2B4T's quantization_config: quant_method bitnet, linear_class, quantization_mode. */
static gboolean
parse_bitnet_quantization (JsonNode *qn, const gchar *path, HfLayout *layout, GError **error)
{
  if (!JSON_NODE_HOLDS_OBJECT (qn)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s: quantization_config is not an object", path);
    return FALSE;
  }
  JsonObject *q = json_node_get_object (qn);
  const gchar *method = get_string (q, "quant_method");
  const gchar *cls = get_member (q, "linear_class") ? get_string (q, "linear_class") : "bitlinear";
  const gchar *mode = get_member (q, "quantization_mode") ? get_string (q, "quantization_mode") : "offline";
  if (method == NULL || strcmp (method, "bitnet") != 0) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED,
                 "%s: quantization method %s is not supported (bitnet is)", path, method ? method : "(missing)");
    return FALSE;
  }
  if (cls == NULL || (strcmp (cls, "autobitlinear") != 0 && strcmp (cls, "bitlinear") != 0)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED,
                 "%s: BitNet linear_class %s is not supported (autobitlinear and bitlinear are)", path,
                 cls ? cls : "(not a string)");
    return FALSE;
  }
  if (mode == NULL || (strcmp (mode, "offline") != 0 && strcmp (mode, "online") != 0)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED,
                 "%s: BitNet quantization_mode %s is not supported (offline and online are)", path,
                 mode ? mode : "(not a string)");
    return FALSE;
  }
  /* AutoBitLinear: y = linear(x, W_ternary) * weight_scale; BitLinear: y = linear(x, W_ternary) / weight_scale */
  layout->scale_divides = strcmp (cls, "bitlinear") == 0;
  layout->packed = strcmp (mode, "offline") == 0;
  layout->ternarize = !layout->packed;
  return TRUE;
}

static gboolean
parse_config (LevConvModel *model, const gchar *dir, HfLayout *layout, GError **error)
{
  gboolean *tied = &layout->tied;
  g_autofree gchar *path = g_build_filename (dir, "config.json", NULL);
  if (!g_file_test (path, G_FILE_TEST_IS_REGULAR)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO,
                 "%s has no config.json (not a Hugging Face checkpoint directory)", dir);
    return FALSE;
  }
  g_autoptr (JsonParser) parser = load_json_file (path, error);
  if (parser == NULL)
    return FALSE;
  JsonObject *cfg = json_node_get_object (json_parser_get_root (parser));
  LevHParams *hp = &model->hp;

  JsonNode *an = get_member (cfg, "architectures");
  const gchar *arch = NULL;
  if (an != NULL && JSON_NODE_HOLDS_ARRAY (an) && json_array_get_length (json_node_get_array (an)) > 0) {
    JsonNode *a0 = json_array_get_element (json_node_get_array (an), 0);
    if (JSON_NODE_HOLDS_VALUE (a0) && json_node_get_value_type (a0) == G_TYPE_STRING)
      arch = json_node_get_string (a0);
  }
  if (arch == NULL) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s has no \"architectures\" list", path);
    return FALSE;
  }
  guint32 default_ctx;
  if (strcmp (arch, "LlamaForCausalLM") == 0) {
    hp->arch = LEV_ARCH_LLAMA;
    default_ctx = 2048;
  } else if (strcmp (arch, "Qwen2ForCausalLM") == 0) {
    hp->arch = LEV_ARCH_QWEN2;
    hp->flags |= LEV_HP_QKV_BIAS;
    default_ctx = 32768;
  } else if (strcmp (arch, "BitnetForCausalLM") == 0) {
    /* 1bitLLM: latent float weights, ternarized here */
    hp->arch = LEV_ARCH_BITNET;
    hp->flags |= LEV_HP_SUB_NORMS | LEV_HP_ACT_QUANT;
    layout->ternarize = TRUE;
    default_ctx = 2048;
  } else if (strcmp (arch, "BitNetForCausalLM") == 0) {
    /* Microsoft BitNet b1.58 2B4T layout: packed (quantization_config) or, without one, a float model */
    hp->arch = LEV_ARCH_BITNET;
    hp->flags |= LEV_HP_SUB_NORMS;
    default_ctx = 4096;
  } else {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED,
                 "%s: architecture %s is not supported (LlamaForCausalLM, Qwen2ForCausalLM, BitnetForCausalLM and "
                 "BitNetForCausalLM are)", path, arch);
    return FALSE;
  }
  JsonNode *qn = get_member (cfg, "quantization_config");
  if (qn != NULL && strcmp (arch, "BitNetForCausalLM") == 0) {
    if (!parse_bitnet_quantization (qn, path, layout, error))
      return FALSE;
    hp->flags |= LEV_HP_ACT_QUANT;
  } else if (qn != NULL) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED,
                 "%s: quantized checkpoints (quantization_config) are not supported for %s", path, arch);
    return FALSE;
  }

  if (!cfg_uint (cfg, "hidden_size", TRUE, 0, &hp->dim, error) ||
      !cfg_uint (cfg, "num_hidden_layers", TRUE, 0, &hp->n_layers, error) ||
      !cfg_uint (cfg, "num_attention_heads", TRUE, 0, &hp->n_heads, error) ||
      !cfg_uint (cfg, "num_key_value_heads", FALSE, hp->n_heads, &hp->n_kv_heads, error) ||
      !cfg_uint (cfg, "intermediate_size", TRUE, 0, &hp->ffn_dim, error) ||
      !cfg_uint (cfg, "vocab_size", TRUE, 0, &hp->vocab_size, error) ||
      !cfg_uint (cfg, "max_position_embeddings", FALSE, default_ctx, &hp->max_ctx, error))
    return FALSE;
  if (get_member (cfg, "head_dim") != NULL) {
    if (!cfg_uint (cfg, "head_dim", TRUE, 0, &hp->head_dim, error))
      return FALSE;
  } else if (hp->dim % hp->n_heads != 0) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                 "%s: hidden_size %u is not a multiple of num_attention_heads %u", path, hp->dim, hp->n_heads);
    return FALSE;
  } else {
    hp->head_dim = hp->dim / hp->n_heads;
  }
  if (hp->n_layers > LEV_MAX_LAYERS || hp->n_heads % hp->n_kv_heads != 0 || hp->head_dim % 2 != 0) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                 "%s: inconsistent sizes (%u layers, %u heads, %u kv heads, head_dim %u)", path, hp->n_layers,
                 hp->n_heads, hp->n_kv_heads, hp->head_dim);
    return FALSE;
  }
  if (!cfg_float (cfg, "rms_norm_eps", 1e-6, &hp->norm_eps, error) ||
      !cfg_float (cfg, "rope_theta", 10000.0, &hp->rope_theta, error) ||
      !cfg_bool (cfg, "tie_word_embeddings", FALSE, tied, error) ||
      !cfg_token_id (cfg, "bos_token_id", &hp->bos_id, error) ||
      !cfg_token_id (cfg, "eos_token_id", &hp->eos_id, error))
    return FALSE;
  if (!(hp->rope_theta > 0.0f) || !(hp->norm_eps >= 0.0f)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s: rope_theta or rms_norm_eps out of range",
                 path);
    return FALSE;
  }
  hp->rope_style = LEV_ROPE_HALF;
  if (*tied)
    hp->flags |= LEV_HP_TIED_EMBEDDINGS;

  /* features this engine does not implement */
  gboolean flag;
  static const char *const refused_bools[] = { "attention_bias", "mlp_bias", "use_sliding_window" };
  for (gsize i = 0; i < G_N_ELEMENTS (refused_bools); i++) {
    if (!cfg_bool (cfg, refused_bools[i], FALSE, &flag, error))
      return FALSE;
    if (flag) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED, "%s: %s = true is not supported", path,
                   refused_bools[i]);
      return FALSE;
    }
  }
  if (hp->arch == LEV_ARCH_BITNET) {
    guint32 wbits, ibits;
    if (!cfg_uint (cfg, "weight_bits", FALSE, 1, &wbits, error) ||
        !cfg_uint (cfg, "input_bits", FALSE, 8, &ibits, error))
      return FALSE;
    if (wbits != 1 || ibits != 8) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED,
                   "%s: BitNet with weight_bits %u and input_bits %u is not supported (1 and 8 are)", path, wbits,
                   ibits);
      return FALSE;
    }
  }

  const gchar *act = get_member (cfg, "hidden_act") ? get_string (cfg, "hidden_act") : "silu";
  if (act != NULL && strcmp (act, "silu") == 0)
    hp->activation = LEV_ACT_SILU;
  else if (act != NULL && strcmp (act, "relu2") == 0)
    hp->activation = LEV_ACT_RELU2;
  else if (act != NULL && (strcmp (act, "gelu_pytorch_tanh") == 0 || strcmp (act, "gelu") == 0))
    hp->activation = LEV_ACT_GELU;
  else {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED, "%s: hidden_act %s is not supported", path,
                 act ? act : "(not a string)");
    return FALSE;
  }

  JsonNode *rs = get_member (cfg, "rope_scaling");
  hp->rope_scaling = LEV_ROPE_SCALING_NONE;
  if (rs != NULL) {
    if (!JSON_NODE_HOLDS_OBJECT (rs)) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s: rope_scaling is not an object", path);
      return FALSE;
    }
    JsonObject *ro = json_node_get_object (rs);
    const gchar *type = get_string (ro, "rope_type");
    if (type == NULL)
      type = get_string (ro, "type");
    if (type != NULL && strcmp (type, "default") == 0) {
      /* no scaling */
    } else if (type != NULL && (strcmp (type, "llama3") == 0 || strcmp (type, "linear") == 0)) {
      gboolean llama3 = strcmp (type, "llama3") == 0;
      JsonNode *fn = get_member (ro, "factor");
      double factor;
      if (fn == NULL || !node_get_number (fn, &factor) || !(factor > 0.0) || !isfinite (factor)) {
        g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s: rope_scaling %s needs a positive factor",
                     path, type);
        return FALSE;
      }
      hp->rope_factor = (float) factor;
      hp->rope_scaling = llama3 ? LEV_ROPE_SCALING_LLAMA3 : LEV_ROPE_SCALING_LINEAR;
      if (llama3) {
        double lo, hi;
        guint64 orig;
        if (!node_get_number (get_member (ro, "low_freq_factor"), &lo) ||
            !node_get_number (get_member (ro, "high_freq_factor"), &hi) ||
            !node_get_u64 (get_member (ro, "original_max_position_embeddings"), &orig) || orig == 0 ||
            orig > G_MAXUINT32 || !(hi > lo) || !(lo > 0.0)) {
          g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                       "%s: rope_scaling llama3 needs low_freq_factor < high_freq_factor and "
                       "original_max_position_embeddings", path);
          return FALSE;
        }
        hp->rope_low_freq_factor = (float) lo;
        hp->rope_high_freq_factor = (float) hi;
        hp->rope_orig_ctx = (guint32) orig;
      }
    } else {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED,
                   "%s: rope_scaling type %s is not supported (llama3 and linear are)", path,
                   type ? type : "(missing)");
      return FALSE;
    }
  }
  return TRUE;
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* tensors                                                                                                           */
/* ---------------------------------------------------------------------------------------------------------------- */

/* Per-layer Hugging Face suffixes and their canonical names; ternary marks the BitLinear weights of BitNet. */
static const struct {
  const char *hf;
  const char *lev;
  gboolean linear;
} layer_map[] = {
  { "input_layernorm.weight", "attn_norm", FALSE },
  { "post_attention_layernorm.weight", "ffn_norm", FALSE },
  { "self_attn.q_proj.weight", "attn_q", TRUE },
  { "self_attn.k_proj.weight", "attn_k", TRUE },
  { "self_attn.v_proj.weight", "attn_v", TRUE },
  { "self_attn.o_proj.weight", "attn_o", TRUE },
  { "self_attn.q_proj.bias", "attn_q_bias", FALSE },
  { "self_attn.k_proj.bias", "attn_k_bias", FALSE },
  { "self_attn.v_proj.bias", "attn_v_bias", FALSE },
  { "mlp.gate_proj.weight", "ffn_gate", TRUE },
  { "mlp.up_proj.weight", "ffn_up", TRUE },
  { "mlp.down_proj.weight", "ffn_down", TRUE },
  { "self_attn.inner_attn_ln.weight", "attn_sub_norm", FALSE },  /* 1bitLLM */
  { "mlp.ffn_layernorm.weight", "ffn_sub_norm", FALSE },
  { "self_attn.attn_sub_norm.weight", "attn_sub_norm", FALSE },  /* BitNet b1.58 2B4T */
  { "mlp.ffn_sub_norm.weight", "ffn_sub_norm", FALSE },
};

/* Maps a Hugging Face tensor name to its canonical name (g_free it); NULL with *skip for tensors to ignore,
 * NULL with error for unknown ones. */
static gchar *
canonical_name (const gchar *hf, const LevHParams *hp, gboolean tied, gboolean *linear, gboolean *skip,
                GError **error)
{
  *skip = FALSE;
  *linear = FALSE;
  if (strcmp (hf, "model.embed_tokens.weight") == 0)
    return g_strdup ("token_embd");
  if (strcmp (hf, "model.norm.weight") == 0)
    return g_strdup ("output_norm");
  if (strcmp (hf, "lm_head.weight") == 0) {
    if (tied) { /* transformers ties it to the embedding and ignores the stored copy */
      *skip = TRUE;
      return NULL;
    }
    return g_strdup ("output");
  }
  if (g_str_has_prefix (hf, "model.layers.")) {
    const gchar *p = hf + strlen ("model.layers.");
    gchar *end = NULL;
    guint64 layer = g_ascii_strtoull (p, &end, 10);
    if (end != p && *end == '.' && g_ascii_isdigit (*p) && (layer > 0 || end == p + 1)) {
      const gchar *suffix = end + 1;
      if (strcmp (suffix, "self_attn.rotary_emb.inv_freq") == 0) { /* recomputed by the engine */
        *skip = TRUE;
        return NULL;
      }
      for (gsize i = 0; i < G_N_ELEMENTS (layer_map); i++) {
        if (strcmp (suffix, layer_map[i].hf) == 0) {
          if (layer >= hp->n_layers) {
            g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_SHAPE,
                         "tensor %s belongs to layer %" G_GUINT64_FORMAT ", but the model has %u layers", hf, layer,
                         hp->n_layers);
            return NULL;
          }
          *linear = layer_map[i].linear;
          return g_strdup_printf ("blk.%" G_GUINT64_FORMAT ".%s", layer, layer_map[i].lev);
        }
      }
    }
  }
  g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED,
               "tensor %s is not part of any layout this converter knows", hf);
  return NULL;
}

/* Returns the tensor's values as g_malloc'd floats. */
static float *
st_to_f32 (const StTensor *t)
{
  float *out = g_new (float, t->numel);
  for (guint64 i = 0; i < t->numel; i++) {
    if (t->dtype == ST_F32) {
      memcpy (&out[i], t->data + 4 * i, 4);
    } else {
      guint16 v;
      memcpy (&v, t->data + 2 * i, 2);
      v = GUINT16_FROM_LE (v);
      if (t->dtype == ST_F16)
        out[i] = lev_f16_to_f32 (v);
      else {
        guint32 bits = (guint32) v << 16;
        memcpy (&out[i], &bits, 4);
      }
    }
  }
  return out;
}

/* 1bitLLM weight_quant: scale = mean|W| (clamped >= 1e-5), t = clamp(round_half_even(W / scale), -1, 1). */
static void
add_ternarized (LevConvModel *model, const gchar *name, const StTensor *st)
{
  float *w = st_to_f32 (st);
  double sum = 0.0;
  for (guint64 i = 0; i < st->numel; i++)
    sum += fabs ((double) w[i]);
  float scale = st->numel ? (float) (sum / (double) st->numel) : 0.0f;
  if (!(scale >= 1e-5f))
    scale = 1e-5f;
  gint8 *t = g_malloc (st->numel ? st->numel : 1);
  for (guint64 i = 0; i < st->numel; i++) {
    float r = nearbyintf (w[i] / scale); /* default rounding mode: halves to even, as torch.round */
    t[i] = r > 0.0f ? 1 : r < 0.0f ? -1 : 0;
  }
  g_free (w);
  LevConvTensor *ct = lev_conv_model_add_tensor (model, name, LEV_SRC_TERNARY, st->n_dims, st->shape, t, t);
  ct->scale = scale;
}

/* Unpacks a 2B4T BitLinear weight: uint8 [out/4][in], output row i·(out/4)+j in bits 2i..2i+1 of packed row j,
 * value = code − 1; the scale comes from <name>_scale and multiplies (AutoBitLinear) or divides (BitLinear). */
static gboolean
add_packed (LevConvModel *model, const gchar *name, const StTensor *st, StSet *set, gboolean scale_divides,
            GError **error)
{
  g_autofree gchar *scale_name = g_strconcat (st->name, "_scale", NULL);
  const StTensor *sc = g_hash_table_lookup (set->tensors, scale_name);
  if (st->n_dims != 2) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_SHAPE, "packed tensor %s must be a matrix", st->name);
    return FALSE;
  }
  if (sc == NULL || sc->numel != 1 || sc->dtype == ST_U8) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_SHAPE,
                 "packed tensor %s needs a float %s with one element", st->name, scale_name);
    return FALSE;
  }
  float *sv = st_to_f32 (sc);
  float scale = scale_divides ? 1.0f / sv[0] : sv[0];
  g_free (sv);
  if (!(scale > 0.0f) || !isfinite (scale)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s is not a positive finite scale", scale_name);
    return FALSE;
  }
  guint64 quarter = st->shape[0], cols = st->shape[1], rows = quarter * 4;
  gint8 *t = g_malloc (rows * cols > 0 ? rows * cols : 1);
  for (guint64 j = 0; j < quarter; j++)
    for (guint64 c = 0; c < cols; c++) {
      guint8 byte = st->data[j * cols + c];
      for (guint i = 0; i < 4; i++) {
        guint code = (byte >> (2 * i)) & 3u;
        if (code == 3) {
          g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                       "packed tensor %s holds the invalid code 3 at row %" G_GUINT64_FORMAT ", column %"
                       G_GUINT64_FORMAT, st->name, j, c);
          g_free (t);
          return FALSE;
        }
        t[(i * quarter + j) * cols + c] = (gint8) ((gint) code - 1);
      }
    }
  guint64 shape[2] = { rows, cols };
  LevConvTensor *ct = lev_conv_model_add_tensor (model, name, LEV_SRC_TERNARY, 2, shape, t, t);
  ct->scale = scale;
  return TRUE;
}

/* Adds a float tensor pointing into the mapped file (copied when the file does not align it). */
static void
add_float (LevConvModel *model, const gchar *name, const StTensor *st)
{
  LevSrcType type = st->dtype == ST_F32 ? LEV_SRC_F32 : st->dtype == ST_F16 ? LEV_SRC_F16 : LEV_SRC_BF16;
  guint esize = st->dtype == ST_F32 ? 4 : 2;
  const void *data = st->data;
  gpointer owned = NULL;
  if ((uintptr_t) data % esize != 0) {
    owned = g_memdup2 (data, st->nbytes ? st->nbytes : 1);
    data = owned;
  }
  lev_conv_model_add_tensor (model, name, type, st->n_dims, st->shape, data, owned);
}

static gint
str_cmp (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const gchar *const *) a, *(const gchar *const *) b);
}

/* Adds every tensor of set to model under its canonical name. */
static gboolean
map_tensors (LevConvModel *model, StSet *set, const HfLayout *layout, GError **error)
{
  /* deterministic order: sorted by Hugging Face name */
  guint n = 0;
  gpointer *keys = g_hash_table_get_keys_as_array (set->tensors, &n);
  qsort (keys, n, sizeof (gpointer), str_cmp);
  gboolean ok = TRUE, have_lm_head = FALSE;
  for (guint i = 0; ok && i < n; i++) {
    const StTensor *st = g_hash_table_lookup (set->tensors, keys[i]);
    gboolean linear, skip;
    if (layout->packed && g_str_has_suffix (st->name, ".weight_scale"))
      continue;                 /* read with its packed weight */
    g_autofree gchar *name = canonical_name (st->name, &model->hp, layout->tied, &linear, &skip, error);
    if (strcmp (st->name, "lm_head.weight") == 0)
      have_lm_head = TRUE;
    if (name == NULL) {
      ok = skip;
      continue;
    }
    if (st->dtype == ST_U8 && linear && layout->packed) {
      ok = add_packed (model, name, st, set, layout->scale_divides, error);
    } else if (layout->packed && linear) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                   "tensor %s should be packed uint8 (quantization_mode offline) but is not", st->name);
      ok = FALSE;
    } else if (st->dtype == ST_U8) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED,
                   "tensor %s has dtype U8, which only packed BitNet linear weights may have", st->name);
      ok = FALSE;
    } else if (st->n_dims < 1 || st->n_dims > LEV_MAX_DIMS) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_SHAPE, "tensor %s has %u dimensions", st->name,
                   st->n_dims);
      ok = FALSE;
    } else if (linear && layout->ternarize) {
      add_ternarized (model, name, st);
    } else {
      add_float (model, name, st);
    }
  }
  g_free (keys);
  if (ok && !layout->tied && !have_lm_head) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_SHAPE,
                 "tie_word_embeddings is false, but there is no lm_head.weight tensor");
    ok = FALSE;
  }
  return ok;
}

/* ---------------------------------------------------------------------------------------------------------------- */
/* tokenizer                                                                                                         */
/* ---------------------------------------------------------------------------------------------------------------- */

/* Reads tokenizer.model or tokenizer.json (if any) and tokenizer_config.json (if any). */
static gboolean
import_tokenizer (LevConvModel *model, const gchar *dir, GError **error)
{
  g_autofree gchar *spm = g_build_filename (dir, "tokenizer.model", NULL);
  g_autofree gchar *tj = g_build_filename (dir, "tokenizer.json", NULL);
  if (g_file_test (spm, G_FILE_TEST_IS_REGULAR) || g_file_test (tj, G_FILE_TEST_IS_REGULAR)) {
    /* a SentencePiece tokenizer.model first, else tokenizer.json with its tokenizer_config.json (lev_import_vocab) */
    model->vocab = lev_import_vocab (dir, error);
    if (model->vocab == NULL)
      return FALSE;
  }
  g_autofree gchar *tc = g_build_filename (dir, "tokenizer_config.json", NULL);
  if (g_file_test (tc, G_FILE_TEST_IS_REGULAR)) {
    g_autoptr (JsonParser) parser = load_json_file (tc, error);
    if (parser == NULL)
      return FALSE;
    JsonObject *o = json_node_get_object (json_parser_get_root (parser));
    static const struct { const char *key; guint32 flag; } flags[] = {
      { "add_bos_token", LEV_TOKF_ADD_BOS }, { "add_eos_token", LEV_TOKF_ADD_EOS },
    };
    for (gsize i = 0; i < G_N_ELEMENTS (flags); i++) {
      gboolean v;
      if (get_member (o, flags[i].key) == NULL)
        continue;
      if (!cfg_bool (o, flags[i].key, FALSE, &v, error)) {
        g_prefix_error (error, "%s: ", tc);
        return FALSE;
      }
      if (model->vocab != NULL) {
        if (v)
          model->vocab->flags |= flags[i].flag;
        else
          model->vocab->flags &= ~flags[i].flag;
      }
    }
    JsonNode *ct = get_member (o, "chat_template");
    if (ct != NULL && JSON_NODE_HOLDS_VALUE (ct) && json_node_get_value_type (ct) == G_TYPE_STRING) {
      model->chat_template = g_strdup (json_node_get_string (ct));
    } else if (ct != NULL && JSON_NODE_HOLDS_ARRAY (ct)) {
      /* a list of {name, template}: take the one named "default" */
      JsonArray *a = json_node_get_array (ct);
      for (guint i = 0; i < json_array_get_length (a); i++) {
        JsonNode *e = json_array_get_element (a, i);
        if (!JSON_NODE_HOLDS_OBJECT (e))
          continue;
        const gchar *nm = get_string (json_node_get_object (e), "name");
        const gchar *tpl = get_string (json_node_get_object (e), "template");
        if (nm != NULL && tpl != NULL && strcmp (nm, "default") == 0)
          model->chat_template = g_strdup (tpl);
      }
    }
  }
  if (model->chat_template == NULL) {
    g_autofree gchar *jinja = g_build_filename (dir, "chat_template.jinja", NULL);
    gchar *text = NULL;
    if (g_file_test (jinja, G_FILE_TEST_IS_REGULAR) && g_file_get_contents (jinja, &text, NULL, NULL))
      model->chat_template = text;
  }
  return TRUE;
}

/* ---------------------------------------------------------------------------------------------------------------- */

/* Reads a Hugging Face checkpoint directory (config.json + safetensors + tokenizer files). */
LevConvModel *
lev_import_hf_dir (const gchar *dir, GError **error)
{
  g_return_val_if_fail (dir != NULL, NULL);
  if (G_BYTE_ORDER != G_LITTLE_ENDIAN) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED, "big-endian hosts are not supported");
    return NULL;
  }
  if (!g_file_test (dir, G_FILE_TEST_IS_DIR)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO, "%s is not a directory", dir);
    return NULL;
  }
  LevConvModel *model = lev_conv_model_new ();
  HfLayout layout = { FALSE, FALSE, FALSE, FALSE };
  StSet *set = NULL;
  gboolean ok = parse_config (model, dir, &layout, error);
  if (ok)
    ok = (set = st_load_dir (dir, error)) != NULL;
  if (ok) {
    for (guint i = 0; i < set->maps->len; i++)
      g_ptr_array_add (model->keep, g_mapped_file_ref (g_ptr_array_index (set->maps, i)));
    ok = map_tensors (model, set, &layout, error) && lev_conv_model_validate (model, error);
    if (!ok)
      g_prefix_error (error, "%s: ", dir);
  }
  st_set_free (set);
  if (ok)
    ok = import_tokenizer (model, dir, error);
  if (!ok) {
    lev_conv_model_free (model);
    return NULL;
  }
  g_autofree gchar *canon = g_canonicalize_filename (dir, NULL);
  model->name = g_path_get_basename (canon);
  return model;
}
