/* levg_model.c: Lev.Model, a GInitable GObject that owns a loaded engine model. */
#include "levg_private.h"
#include "lev_session.h"
#include "lev_source.h"
#include "levg_enums.h"

#ifndef LEV_DEFAULT_MODEL
#define LEV_DEFAULT_MODEL ""
#endif
#ifndef LEV_UNINSTALLED_MODEL
#define LEV_UNINSTALLED_MODEL ""
#endif

/* Lev.Error is the engine's error domain and codes */
G_STATIC_ASSERT (LEV_G_ERROR_IO == (int) LEV_ERROR_IO && LEV_G_ERROR_FORMAT == (int) LEV_ERROR_FORMAT);
G_STATIC_ASSERT (LEV_G_ERROR_NO_WEIGHTS == (int) LEV_ERROR_NO_WEIGHTS);
G_STATIC_ASSERT (LEV_G_ERROR_ARGUMENT == (int) LEV_ERROR_ARGUMENT && LEV_G_ERROR_NUMERIC == (int) LEV_ERROR_NUMERIC);

struct _LevGModel {
  GObject parent;
  gchar *path;
  gchar *adapter;
  gboolean use_mmap;
  LevModel *model;
  GMutex engines_lock;
  GHashTable *engines;          /* (n_threads << 8 | act_quant) → LevEngine: shared by the generators */
};

enum { PROP_0, PROP_PATH, PROP_ADAPTER, PROP_USE_MMAP, PROP_NAME, PROP_ARCHITECTURE, PROP_ENCODING, PROP_VOCAB_SIZE,
       PROP_CONTEXT_LENGTH, N_PROPS };
static GParamSpec *props[N_PROPS];

static void lev_g_model_initable_init (GInitableIface *iface);

G_DEFINE_TYPE_WITH_CODE (LevGModel, lev_g_model, G_TYPE_OBJECT,
                         G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE, lev_g_model_initable_init))

static gboolean
lev_g_model_initable_init_impl (GInitable *initable, GCancellable *cancellable, GError **error)
{
  LevGModel *self = LEV_G_MODEL (initable);
  if (self->model)
    return TRUE;
  if (!self->path) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_IO, "no model path given");
    return FALSE;
  }
  LevSourceOptions so = { 0 };
  so.cancellable = cancellable;
  gchar *path = lev_source_resolve (self->path, &so, error);
  LevModelParams mp = { self->use_mmap ? 0 : LEV_MODEL_NO_MMAP, self->adapter };
  self->model = path ? lev_model_load_full (path, &mp, error) : NULL;
  g_free (path);
  if (self->model && !lev_model_has_weights (self->model)) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_NO_WEIGHTS, "%s holds a tokenizer but no weights", self->path);
    g_clear_pointer (&self->model, lev_model_free);
  }
  return self->model != NULL;
}

static void
lev_g_model_initable_init (GInitableIface *iface)
{
  iface->init = lev_g_model_initable_init_impl;
}

static void
lev_g_model_set_property (GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  LevGModel *self = LEV_G_MODEL (object);
  if (prop_id == PROP_PATH) {
    g_free (self->path);
    self->path = g_value_dup_string (value);
  } else if (prop_id == PROP_ADAPTER) {
    g_free (self->adapter);
    self->adapter = g_value_dup_string (value);
  } else if (prop_id == PROP_USE_MMAP) {
    self->use_mmap = g_value_get_boolean (value);
  } else {
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
  }
}

static void
lev_g_model_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  LevGModel *self = LEV_G_MODEL (object);
  switch (prop_id) {
  case PROP_PATH: g_value_set_string (value, self->path); break;
  case PROP_ADAPTER: g_value_set_string (value, self->adapter); break;
  case PROP_USE_MMAP: g_value_set_boolean (value, self->use_mmap); break;
  case PROP_NAME: g_value_set_string (value, self->model ? lev_g_model_get_name (self) : NULL); break;
  case PROP_ARCHITECTURE:
    g_value_set_string (value, self->model ? lev_g_model_get_architecture (self) : NULL);
    break;
  case PROP_ENCODING: g_value_set_string (value, self->model ? lev_g_model_get_encoding (self) : NULL); break;
  case PROP_VOCAB_SIZE: g_value_set_uint (value, self->model ? lev_g_model_get_vocab_size (self) : 0); break;
  case PROP_CONTEXT_LENGTH:
    g_value_set_uint (value, self->model ? lev_g_model_get_context_length (self) : 0);
    break;
  default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec); break;
  }
}

static void
lev_g_model_finalize (GObject *object)
{
  LevGModel *self = LEV_G_MODEL (object);
  /* the generators hold a reference to the model: their sessions (and contexts) are gone */
  g_clear_pointer (&self->engines, g_hash_table_unref);
  g_mutex_clear (&self->engines_lock);
  g_clear_pointer (&self->model, lev_model_free);
  g_free (self->path);
  g_free (self->adapter);
  G_OBJECT_CLASS (lev_g_model_parent_class)->finalize (object);
}

static void
lev_g_model_class_init (LevGModelClass *klass)
{
  GObjectClass *oc = G_OBJECT_CLASS (klass);
  oc->set_property = lev_g_model_set_property;
  oc->get_property = lev_g_model_get_property;
  oc->finalize = lev_g_model_finalize;
  const GParamFlags ro = G_PARAM_READABLE | G_PARAM_STATIC_STRINGS;
  props[PROP_PATH] = g_param_spec_string ("path", "Path", "The model: a .leviathan file, a GGUF file, a "
                                          "Hugging Face checkpoint directory or hf:ORG/NAME[@REVISION][:FILE] "
                                          "(converted once into $XDG_CACHE_HOME/leviathan/models)", NULL,
                                          G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  props[PROP_ADAPTER] = g_param_spec_string ("adapter", "Adapter", "An adapter file (levconvert --adapter-out) "
                                             "mounted over the model, or NULL", NULL,
                                             G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  props[PROP_USE_MMAP] = g_param_spec_boolean ("use-mmap", "Use mmap", "Map the model file (shared, no load "
                                               "time); false reads it into memory, so that another process "
                                               "truncating or rewriting the file cannot kill this one with SIGBUS",
                                               TRUE, G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY
                                               | G_PARAM_STATIC_STRINGS);
  props[PROP_NAME] = g_param_spec_string ("name", "Name", "The model's name", NULL, ro);
  props[PROP_ARCHITECTURE] = g_param_spec_string ("architecture", "Architecture", "Architecture", NULL, ro);
  props[PROP_ENCODING] = g_param_spec_string ("encoding", "Encoding", "Encoding of the weight matrices (t2, t1, "
                                            "b1, q4, q8, f16, bf16, f32)", NULL, ro);
  props[PROP_VOCAB_SIZE] = g_param_spec_uint ("vocab-size", "Vocabulary size", "Tokens in the vocabulary", 0,
                                              G_MAXUINT, 0, ro);
  props[PROP_CONTEXT_LENGTH] = g_param_spec_uint ("context-length", "Context length", "Trained context length", 0,
                                                  G_MAXUINT, 0, ro);
  g_object_class_install_properties (oc, N_PROPS, props);
}

static void
lev_g_model_init (LevGModel *self)
{
  g_mutex_init (&self->engines_lock);
  self->engines = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) lev_engine_unref);
}

/* Loads a model from a .leviathan file, a GGUF file, a Hugging Face directory or hf:ORG/NAME (converted once). */
LevGModel *
lev_g_model_new (const char *path, GError **error)
{
  return g_initable_new (LEV_G_TYPE_MODEL, NULL, error, "path", path, NULL);
}

/* Returns the default model file. */
char *
lev_g_model_default_path (void)
{
  const char *env = g_getenv ("LEV_MODEL");
  if (env && *env)
    return g_strdup (env);
  return lev_session_find_default_model (LEV_DEFAULT_MODEL, LEV_UNINSTALLED_MODEL,
                                         (gconstpointer) lev_g_model_default_path);
}

/* Returns the engine model. */
const LevModel *
lev_g_model_peek (LevGModel *self)
{
  return self->model;
}

/* Returns the engine of the model for n_threads and act_quant (one for all the generators that ask for them), made
 * on first use; a new reference, or NULL with error set. */
LevEngine *
lev_g_model_get_engine (LevGModel *self, guint n_threads, guint act_quant, GError **error)
{
  gpointer key = GUINT_TO_POINTER ((n_threads << 8) | (act_quant & 0xff));
  g_mutex_lock (&self->engines_lock);
  LevEngine *e = g_hash_table_lookup (self->engines, key);
  if (!e) {
    e = lev_engine_new (self->model, n_threads, act_quant, error);
    if (e)
      g_hash_table_insert (self->engines, key, e);
  }
  if (e)
    lev_engine_ref (e);
  g_mutex_unlock (&self->engines_lock);
  return e;
}

/* Returns the model's name. */
const char *
lev_g_model_get_name (LevGModel *self)
{
  g_return_val_if_fail (LEV_G_IS_MODEL (self) && self->model, NULL);
  return lev_model_name (self->model);
}

/* Returns the architecture's name. */
const char *
lev_g_model_get_architecture (LevGModel *self)
{
  g_return_val_if_fail (LEV_G_IS_MODEL (self) && self->model, NULL);
  return lev_arch_name (lev_model_arch (self->model));
}

/* Returns the weight encoding. */
const char *
lev_g_model_get_encoding (LevGModel *self)
{
  g_return_val_if_fail (LEV_G_IS_MODEL (self) && self->model, NULL);
  const char *encoding = lev_model_encoding_name (self->model);
  return encoding ? encoding : "";
}

/* Returns the vocabulary size. */
guint
lev_g_model_get_vocab_size (LevGModel *self)
{
  g_return_val_if_fail (LEV_G_IS_MODEL (self) && self->model, 0);
  return lev_model_vocab_size (self->model);
}

/* Returns the trained context length. */
guint
lev_g_model_get_context_length (LevGModel *self)
{
  g_return_val_if_fail (LEV_G_IS_MODEL (self) && self->model, 0);
  return lev_model_max_ctx (self->model);
}

/* Encodes text. */
gint32 *
lev_g_model_tokenize (LevGModel *self, const char *text, gboolean add_bos, gsize *n_ids, GError **error)
{
  g_return_val_if_fail (LEV_G_IS_MODEL (self) && self->model && text && n_ids, NULL);
  const LevTokenizer *tok = lev_model_tokenizer (self->model);
  *n_ids = 0;
  if (!tok) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "the model has no tokenizer");
    return NULL;
  }
  size_t n = 0;
  gint32 *ids = lev_tokenizer_encode (tok, text, -1, add_bos, &n, error);
  if (ids)
    *n_ids = n;
  return ids;
}

/* Decodes ids. */
char *
lev_g_model_detokenize (LevGModel *self, const gint32 *ids, gsize n_ids)
{
  g_return_val_if_fail (LEV_G_IS_MODEL (self) && self->model, NULL);
  const LevTokenizer *tok = lev_model_tokenizer (self->model);
  if (!tok || n_ids == 0)
    return g_strdup ("");
  char *raw = lev_tokenizer_decode (tok, ids, n_ids);
  char *text = g_utf8_make_valid (raw, -1);
  g_free (raw);
  return text;
}
