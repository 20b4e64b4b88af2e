/* gstlevengine.c: the process-wide registry of levtextgen's shared engines, and the "leviathan.engine" context. */
#include "gstlevengine.h"

#include <glib/gstdio.h>

struct GstLevSharedEngine {
  gchar *key;                  /* group, file identities and settings */
  LevModel *model;
  LevEngine *engine;
  guint id;
  guint users;
};

static GMutex registry_lock;
static GHashTable *registry;   /* key → GstLevSharedEngine (while it has users) */
static guint last_id;

gchar *
gst_lev_engine_context_group (GstContext *context)
{
  const GstStructure *s = gst_context_get_structure (context);
  const gchar *group = gst_structure_get_string (s, "group");
  return group ? g_strdup_printf ("group:%s", group) : g_strdup_printf ("context:%p", (void *) context);
}

GstContext *
gst_lev_engine_context_new (const char *group)
{
  GstContext *context = gst_context_new (GST_LEV_ENGINE_CONTEXT_TYPE, TRUE);
  gst_structure_set (gst_context_writable_structure (context), "group", G_TYPE_STRING, group, NULL);
  return context;
}

/* Appends the identity of the file at path (device, inode, size, time of last change), or its name when it cannot
 * be read (loading it fails then). */
static void
append_identity (GString *key, const char *path)
{
  GStatBuf st;
  if (path && g_stat (path, &st) == 0)
    g_string_append_printf (key, "|%ju:%ju:%jd:%jd", (uintmax_t) st.st_dev, (uintmax_t) st.st_ino,
                            (intmax_t) st.st_size, (intmax_t) st.st_mtime);
  else
    g_string_append_printf (key, "|name:%s", path ? path : "");
}

GstLevSharedEngine *
gst_lev_shared_engine_acquire (const char *group, const char *path, const char *adapter, guint load_flags,
                               guint n_threads, guint act_quant, GError **error)
{
  GString *key = g_string_new (group);
  append_identity (key, path);
  if (adapter)
    append_identity (key, adapter);
  g_string_append_printf (key, "|flags:%u|threads:%u|act:%u", load_flags, n_threads, act_quant);
  g_mutex_lock (&registry_lock);
  if (!registry)
    registry = g_hash_table_new (g_str_hash, g_str_equal);
  GstLevSharedEngine *shared = g_hash_table_lookup (registry, key->str);
  if (shared) {
    shared->users++;
    g_mutex_unlock (&registry_lock);
    g_string_free (key, TRUE);
    return shared;
  }
  /* loaded under the lock: a second element of the group naming the model waits for this load */
  LevModelParams mp = { load_flags, adapter };
  LevModel *model = lev_model_load_full (path, &mp, error);
  if (model && !lev_model_has_weights (model)) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_NO_WEIGHTS, "%s holds a tokenizer but no weights", path);
    g_clear_pointer (&model, lev_model_free);
  }
  LevEngine *engine = model ? lev_engine_new (model, n_threads, act_quant, error) : NULL;
  if (!engine) {
    g_mutex_unlock (&registry_lock);
    if (model)
      lev_model_free (model);
    g_string_free (key, TRUE);
    return NULL;
  }
  shared = g_new0 (GstLevSharedEngine, 1);
  shared->key = g_string_free (key, FALSE);
  shared->model = model;
  shared->engine = engine;
  shared->id = ++last_id;
  shared->users = 1;
  g_hash_table_insert (registry, shared->key, shared);
  g_mutex_unlock (&registry_lock);
  return shared;
}

void
gst_lev_shared_engine_release (GstLevSharedEngine *shared)
{
  if (!shared)
    return;
  g_mutex_lock (&registry_lock);
  gboolean last = --shared->users == 0;
  if (last)
    g_hash_table_remove (registry, shared->key);
  g_mutex_unlock (&registry_lock);
  if (!last)
    return;
  lev_engine_unref (shared->engine);   /* the sessions made on it are freed: this is the last reference */
  lev_model_free (shared->model);
  g_free (shared->key);
  g_free (shared);
}

LevEngine *
gst_lev_shared_engine_engine (const GstLevSharedEngine *shared)
{
  return shared->engine;
}

const LevModel *
gst_lev_shared_engine_model (const GstLevSharedEngine *shared)
{
  return shared->model;
}

guint
gst_lev_shared_engine_id (const GstLevSharedEngine *shared)
{
  return shared->id;
}
