/* levg_generator.c: Lev.Generator: a conversation with a Lev.Model; sync and GTask-based async generation. */
#include "levg_generator.h"
#include "levg_private.h"
#include "lev_gen_props.h"

struct _LevGGenerator {
  GObject parent;
  LevGModel *model;
  GMutex lock;                  /* properties and the session */
  LevGenSettings settings;       /* the generation properties (lev_gen_props.c's table) */
  LevSession *session;
  gint busy;                    /* atomic: a generation is running */
  LevSessionStats last;
};

/* the generation properties are PROP_GEN + LevGenProp, installed from lev_gen_props.c's table */
enum {
  PROP_0, PROP_MODEL, PROP_PROMPT_TOKENS, PROP_GENERATED_TOKENS, PROP_TIME_TO_FIRST_TOKEN,
  PROP_DECODE_TOKENS_PER_SECOND, PROP_GEN, PROP_GEN_END = PROP_GEN + LEV_GEN_N_PROPS
};

enum { SIGNAL_TOKEN, N_SIGNALS };
static guint signals[N_SIGNALS];

G_DEFINE_TYPE (LevGGenerator, lev_g_generator, G_TYPE_OBJECT)

static void
lev_g_generator_set_property (GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  LevGGenerator *self = LEV_G_GENERATOR (object);
  g_mutex_lock (&self->lock);
  switch (prop_id) {
  case PROP_MODEL: self->model = g_value_dup_object (value); break;
  default:
    if (prop_id >= PROP_GEN && prop_id < PROP_GEN_END)
      lev_gen_settings_set (&self->settings, (LevGenProp) (prop_id - PROP_GEN), value);
    else
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    break;
  }
  g_mutex_unlock (&self->lock);
}

static void
lev_g_generator_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  LevGGenerator *self = LEV_G_GENERATOR (object);
  g_mutex_lock (&self->lock);
  switch (prop_id) {
  case PROP_MODEL: g_value_set_object (value, self->model); break;
  case PROP_PROMPT_TOKENS: g_value_set_uint (value, self->last.prompt_tokens); break;
  case PROP_GENERATED_TOKENS: g_value_set_uint (value, self->last.generated_tokens); break;
  case PROP_TIME_TO_FIRST_TOKEN: g_value_set_double (value, self->last.ttft_us / 1e6); break;
  case PROP_DECODE_TOKENS_PER_SECOND:
    g_value_set_double (value, self->last.decode_us > 0 ? self->last.generated_tokens / (self->last.decode_us / 1e6)
                                                        : 0.0);
    break;
  default:
    if (prop_id >= PROP_GEN && prop_id < PROP_GEN_END)
      lev_gen_settings_get (&self->settings, (LevGenProp) (prop_id - PROP_GEN), value);
    else
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    break;
  }
  g_mutex_unlock (&self->lock);
}

static void
lev_g_generator_finalize (GObject *object)
{
  LevGGenerator *self = LEV_G_GENERATOR (object);
  lev_session_free (self->session);
  g_clear_object (&self->model);
  lev_gen_settings_clear (&self->settings);
  g_mutex_clear (&self->lock);
  G_OBJECT_CLASS (lev_g_generator_parent_class)->finalize (object);
}

static void
lev_g_generator_class_init (LevGGeneratorClass *klass)
{
  GObjectClass *oc = G_OBJECT_CLASS (klass);
  oc->set_property = lev_g_generator_set_property;
  oc->get_property = lev_g_generator_get_property;
  oc->finalize = lev_g_generator_finalize;
  const GParamFlags ro = G_PARAM_READABLE | G_PARAM_STATIC_STRINGS;
  g_object_class_install_property (oc, PROP_MODEL, g_param_spec_object ("model", "Model", "The model",
      LEV_G_TYPE_MODEL, G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS));
  lev_gen_props_install (oc, PROP_GEN, 0, 0, NULL);
  g_object_class_install_property (oc, PROP_PROMPT_TOKENS, g_param_spec_uint ("prompt-tokens", "Prompt tokens",
      "Of the last response", 0, G_MAXUINT, 0, ro));
  g_object_class_install_property (oc, PROP_GENERATED_TOKENS, g_param_spec_uint ("generated-tokens",
      "Generated tokens", "Of the last response", 0, G_MAXUINT, 0, ro));
  g_object_class_install_property (oc, PROP_TIME_TO_FIRST_TOKEN, g_param_spec_double ("time-to-first-token",
      "Time to first token", "Seconds, of the last response", 0, G_MAXDOUBLE, 0, ro));
  g_object_class_install_property (oc, PROP_DECODE_TOKENS_PER_SECOND, g_param_spec_double (
      "decode-tokens-per-second", "Decode speed", "Of the last response", 0, G_MAXDOUBLE, 0, ro));

  /**
   * LevGGenerator::token:
   * @self: the generator
   * @text: the token's text (valid UTF-8; bytes of a character split over tokens come with its last token)
   * @id: the token id
   *
   * Emitted for every generated token, in order.
   */
  signals[SIGNAL_TOKEN] = g_signal_new ("token", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                                        G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_INT);
}

static void
lev_g_generator_init (LevGGenerator *self)
{
  g_mutex_init (&self->lock);
  lev_gen_settings_init (&self->settings);
}

/* Creates a generator. */
LevGGenerator *
lev_g_generator_new (LevGModel *model)
{
  g_return_val_if_fail (LEV_G_IS_MODEL (model), NULL);
  return g_object_new (LEV_G_TYPE_GENERATOR, "model", model, NULL);
}

/* One generation: the prompt, where tokens are announced, the text so far. */
typedef struct {
  LevGGenerator *self;
  gchar *prompt;
  GMainContext *context;        /* NULL: emit in the generating thread */
  gint cancel;
  GString *text;
} Job;

typedef struct {
  LevGGenerator *self;
  gchar *text;
  gint id;
} TokenEmit;

static void
job_free (gpointer data)
{
  Job *job = data;
  g_free (job->prompt);
  if (job->context)
    g_main_context_unref (job->context);
  g_string_free (job->text, TRUE);
  g_free (job);
}

static void
token_emit_free (gpointer data)
{
  TokenEmit *t = data;
  g_object_unref (t->self);
  g_free (t->text);
  g_free (t);
}

static gboolean
token_emit_idle (gpointer data)
{
  TokenEmit *t = data;
  g_signal_emit (t->self, signals[SIGNAL_TOKEN], 0, t->text, t->id);
  return G_SOURCE_REMOVE;
}

static gboolean
on_unit (const char *text, gsize len, const int32_t *ids, guint n_ids, gpointer user_data)
{
  Job *job = user_data;
  g_string_append_len (job->text, text, (gssize) len);
  gint id = n_ids ? ids[n_ids - 1] : -1;
  if (!job->context) {
    g_signal_emit (job->self, signals[SIGNAL_TOKEN], 0, text, id);
    return TRUE;
  }
  TokenEmit *t = g_new0 (TokenEmit, 1);
  t->self = g_object_ref (job->self);
  t->text = g_strndup (text, len);
  t->id = id;
  g_main_context_invoke_full (job->context, G_PRIORITY_DEFAULT, token_emit_idle, t, token_emit_free);
  return TRUE;
}

static void
on_cancelled (GCancellable *cancellable, gpointer user_data)
{
  g_atomic_int_set (&((Job *) user_data)->cancel, 1);
}

/* Makes or updates the session from the properties; called with the lock held. */
static gboolean
prepare_session_locked (LevGGenerator *self, GError **error)
{
  LevSessionParams p = self->settings.p;
  p.unit_mode = LEV_UNIT_TOKEN;
  if (!self->session) {
    /* on the engine of the model that its other generators with the same n-threads (and activation mode) use: one
     * pool of threads, their concurrent generations batched */
    LevEngine *engine = lev_g_model_get_engine (self->model, p.n_threads, p.act_quant, error);
    if (!engine)
      return FALSE;
    self->session = lev_session_new_on_engine (engine, &p, error);
    lev_engine_unref (engine);
    return self->session != NULL;
  }
  return lev_session_set_params (self->session, &p, error);
}

/* Runs a job in the current thread; returns the response or NULL with error set. */
static char *
run_job (Job *job, GCancellable *cancellable, GError **error)
{
  LevGGenerator *self = job->self;
  if (!g_utf8_validate (job->prompt, -1, NULL)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "the prompt is not valid UTF-8");
    return NULL;
  }
  g_mutex_lock (&self->lock);
  gboolean ok = prepare_session_locked (self, error);
  g_mutex_unlock (&self->lock);
  if (!ok)
    return NULL;
  gulong handler = cancellable ? g_cancellable_connect (cancellable, G_CALLBACK (on_cancelled), job, NULL) : 0;
  LevSessionStats st = { 0 };
  ok = lev_session_generate (self->session, job->prompt, -1, NULL, 0, &job->cancel, on_unit, job, &st, error);
  if (cancellable)
    g_cancellable_disconnect (cancellable, handler);
  if (!ok)
    return NULL;
  g_mutex_lock (&self->lock);
  self->last = st;
  g_mutex_unlock (&self->lock);
  if (st.reason == LEV_STOP_CANCELLED) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED, "the generation was cancelled");
    return NULL;
  }
  return g_strndup (job->text->str, job->text->len);
}

static gboolean
claim (LevGGenerator *self, GError **error)
{
  if (g_atomic_int_compare_and_exchange (&self->busy, 0, 1))
    return TRUE;
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY, "this generator is already generating");
  return FALSE;
}

static Job *
job_new (LevGGenerator *self, const char *prompt, GMainContext *context)
{
  Job *job = g_new0 (Job, 1);
  job->self = self;
  job->prompt = g_strdup (prompt);
  job->context = context;
  job->text = g_string_new (NULL);
  return job;
}

/* Generates in the calling thread. */
char *
lev_g_generator_generate (LevGGenerator *self, const char *prompt, GCancellable *cancellable, GError **error)
{
  g_return_val_if_fail (LEV_G_IS_GENERATOR (self) && prompt, NULL);
  if (!claim (self, error))
    return NULL;
  Job *job = job_new (self, prompt, NULL);
  char *res = run_job (job, cancellable, error);
  job_free (job);
  g_atomic_int_set (&self->busy, 0);
  return res;
}

static void
generate_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  Job *job = task_data;
  GError *error = NULL;
  char *res = run_job (job, cancellable, &error);
  g_atomic_int_set (&job->self->busy, 0);
  if (res)
    g_task_return_pointer (task, res, g_free);
  else
    g_task_return_error (task, error);
}

/* Generates in a worker thread. */
void
lev_g_generator_generate_async (LevGGenerator *self, const char *prompt, GCancellable *cancellable,
                                GAsyncReadyCallback callback, gpointer user_data)
{
  g_return_if_fail (LEV_G_IS_GENERATOR (self) && prompt);
  GTask *task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, lev_g_generator_generate_async);
  GError *error = NULL;
  if (!claim (self, &error)) {
    g_task_return_error (task, error);
    g_object_unref (task);
    return;
  }
  g_task_set_task_data (task, job_new (self, prompt, g_main_context_ref_thread_default ()), job_free);
  g_task_run_in_thread (task, generate_thread);
  g_object_unref (task);
}

/* Finishes an async generation. */
char *
lev_g_generator_generate_finish (LevGGenerator *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/* Forgets the conversation. */
void
lev_g_generator_reset (LevGGenerator *self)
{
  g_return_if_fail (LEV_G_IS_GENERATOR (self));
  g_mutex_lock (&self->lock);
  if (self->session && !g_atomic_int_get (&self->busy))
    lev_session_reset (self->session);
  g_mutex_unlock (&self->lock);
}
