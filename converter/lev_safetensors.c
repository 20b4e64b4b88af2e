/* lev_safetensors.c: reader of Hugging Face safetensors checkpoints: header, dtypes, shapes, data ranges, shards. */
#include "lev_safetensors.h"
#include "lev_convmodel.h"
#include "lev_json.h"

#include <json-glib/json-glib.h>
#include <string.h>

#define ST_MAX_HEADER (100u * 1024u * 1024u) /* refuse absurd safetensors header lengths */

static void
st_tensor_free (gpointer p)
{
  LevStTensor *t = p;
  g_free (t->name);
  g_free (t);
}

static LevStSet *
st_set_new (void)
{
  LevStSet *s = g_new0 (LevStSet, 1);
  s->tensors = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, st_tensor_free);
  s->maps = g_ptr_array_new_with_free_func ((GDestroyNotify) g_mapped_file_unref);
  s->files = g_ptr_array_new_with_free_func (g_free);
  return s;
}

/* Frees a set of safetensors files. */
void
lev_st_set_free (LevStSet *s)
{
  if (s == NULL)
    return;
  g_hash_table_unref (s->tensors);
  g_ptr_array_unref (s->maps);
  g_ptr_array_unref (s->files);
  g_free (s);
}

static gboolean
st_dtype_parse (const gchar *s, LevStDtype *dt, guint *esize)
{
  static const struct { const char *name; LevStDtype dt; guint size; } tab[] = {
    { "F32", LEV_ST_F32, 4 }, { "F16", LEV_ST_F16, 2 }, { "BF16", LEV_ST_BF16, 2 }, { "U8", LEV_ST_U8, 1 },
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
                LevStTensor *t, GError **error)
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
  const gchar *dts = lev_json_string (o, "dtype");
  if (dts == NULL)
    ST_FAIL ("no \"dtype\" string");
  guint esize;
  if (!st_dtype_parse (dts, &t->dtype, &esize)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED,
                 "%s: tensor %s has dtype %s, which is not supported (F32, F16, BF16 and U8 are)", path, name, dts);
    return FALSE;
  }
  JsonNode *sn = lev_json_member (o, "shape");
  if (sn == NULL || !JSON_NODE_HOLDS_ARRAY (sn))
    ST_FAIL ("no \"shape\" array");
  JsonArray *sa = json_node_get_array (sn);
  guint nd = json_array_get_length (sa);
  if (nd > LEV_ST_MAX_DIMS)
    ST_FAIL ("%u dimensions", nd);
  t->n_dims = nd;
  guint64 numel = 1;
  for (guint i = 0; i < nd; i++) {
    guint64 d;
    if (!lev_json_u64 (json_array_get_element (sa, i), &d))
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
  JsonNode *on = lev_json_member (o, "data_offsets");
  if (on == NULL || !JSON_NODE_HOLDS_ARRAY (on) || json_array_get_length (json_node_get_array (on)) != 2)
    ST_FAIL ("no \"data_offsets\" [begin, end]");
  JsonArray *oa = json_node_get_array (on);
  guint64 begin, end;
  if (!lev_json_u64 (json_array_get_element (oa, 0), &begin) || !lev_json_u64 (json_array_get_element (oa, 1), &end))
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
st_load_file (LevStSet *set, const gchar *path, GError **error)
{
  GMappedFile *mf = lev_conv_map_file (path, error);
  if (mf == NULL)
    return FALSE;
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
  GError *err = NULL;
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
      LevStTensor *prev = g_hash_table_lookup (set->tensors, name);
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "tensor %s appears both in %s and in %s", name,
                   prev->file, fname);
      ok = FALSE;
      break;
    }
    LevStTensor *t = g_new0 (LevStTensor, 1);
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
LevStSet *
lev_st_load_dir (const gchar *dir, GError **error)
{
  LevStSet *set = st_set_new ();
  g_autofree gchar *single = g_build_filename (dir, "model.safetensors", NULL);
  g_autofree gchar *index = g_build_filename (dir, "model.safetensors.index.json", NULL);
  if (g_file_test (single, G_FILE_TEST_EXISTS)) {
    if (!st_load_file (set, single, error)) {
      lev_st_set_free (set);
      return NULL;
    }
    return set;
  }
  if (!g_file_test (index, G_FILE_TEST_EXISTS)) {
    g_autofree gchar *pt = g_build_filename (dir, "pytorch_model.bin", NULL);
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO,
                 "%s has neither model.safetensors nor model.safetensors.index.json%s", dir,
                 g_file_test (pt, G_FILE_TEST_EXISTS) ? " (PyTorch .bin checkpoints are not supported)" : "");
    lev_st_set_free (set);
    return NULL;
  }
  JsonParser *parser = lev_json_load_file (index, error);
  if (parser == NULL) {
    lev_st_set_free (set);
    return NULL;
  }
  JsonObject *root = json_node_get_object (json_parser_get_root (parser));
  JsonNode *wm = lev_json_member (root, "weight_map");
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
    LevStTensor *t = g_hash_table_lookup (set->tensors, name);
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
    lev_st_set_free (set);
    return NULL;
  }
  return set;
}

