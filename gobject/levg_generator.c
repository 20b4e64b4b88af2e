/* levg_generator.c: Lev.Generator: a conversation with a Lev.Model; sync and GTask-based async generation. */
#include "levg_generator.h"
#include "levg_private.h"
#include "lev_gen_props.h"

#include <string.h>

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
  PROP_DECODE_TOKENS_PER_SECOND, PROP_STOP_REASON, PROP_GEN, PROP_GEN_END = PROP_GEN + LEV_GEN_N_PROPS
};

enum { SIGNAL_TOKEN, N_SIGNALS };
static guint signals[N_SIGNALS];

G_DEFINE_TYPE (LevGGenerator, lev_g_generator, G_TYPE_OBJECT)

G_STATIC_ASSERT (LEV_G_STOP_REASON_EOS == (int) LEV_STOP_EOS && LEV_G_STOP_REASON_MAX_TOKENS == (int) LEV_STOP_MAX_TOKENS);
G_STATIC_ASSERT (LEV_G_STOP_REASON_STOP_STRING == (int) LEV_STOP_STRING);
G_STATIC_ASSERT (LEV_G_STOP_REASON_CANCELLED == (int) LEV_STOP_CANCELLED);
G_STATIC_ASSERT (LEV_G_STOP_REASON_STOPPED == (int) LEV_STOP_CALLBACK);
G_STATIC_ASSERT (LEV_G_STOP_REASON_GRAMMAR == (int) LEV_STOP_GRAMMAR);

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
  case PROP_STOP_REASON: g_value_set_enum (value, (gint) self->last.reason); break;
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
  g_object_class_install_property (oc, PROP_STOP_REASON, g_param_spec_enum ("stop-reason", "Stop reason",
      "Why the last response ended", LEV_G_TYPE_STOP_REASON, LEV_G_STOP_REASON_EOS, ro));

  /**
   * LevGGenerator::token:
   * @self: the generator
   * @text: the unit's text (valid UTF-8; bytes of a character split over tokens come with its last token)
   * @id: the id of the unit's last token
   *
   * Emitted for every output unit, in order: every token with output-mode "token" (the default), else every
   * word, sentence or the whole response.
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
  gchar *prompt;                /* a text prompt, or NULL */
  GArray *in_ids;               /* else token ids taken as they are (gint32), or NULL */
  LevChatMessage *messages;     /* else a whole conversation (roles and contents owned by the caller) */
  gsize n_messages;
  GMainContext *context;        /* NULL: emit in the generating thread */
  gint cancel;
  GString *text;
  GArray *ids;                  /* the generated ids (gint32) */
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
  if (job->in_ids)
    g_array_free (job->in_ids, TRUE);
  g_array_free (job->ids, TRUE);
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
  g_array_append_vals (job->ids, ids, n_ids);
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
  if (job->prompt && !g_utf8_validate (job->prompt, -1, NULL)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "the prompt is not valid UTF-8");
    return NULL;
  }
  g_mutex_lock (&self->lock);
  gboolean ok = prepare_session_locked (self, error);
  g_mutex_unlock (&self->lock);
  if (!ok)
    return NULL;
  const int32_t *in_ids = job->in_ids ? (const int32_t *) job->in_ids->data : NULL;
  gsize n_in = job->in_ids ? job->in_ids->len : 0;
  int32_t *chat_ids = NULL;
  if (job->messages) {
    /* a conversation is given whole: it replaces what the context held */
    lev_session_reset (self->session);
    size_t n = 0;
    if (!(chat_ids = lev_session_encode_chat (self->session, job->messages, job->n_messages, &n, error)))
      return NULL;
    in_ids = chat_ids;
    n_in = n;
  }
  gulong handler = cancellable ? g_cancellable_connect (cancellable, G_CALLBACK (on_cancelled), job, NULL) : 0;
  LevSessionStats st = { 0 };
  ok = lev_session_generate (self->session, in_ids ? NULL : job->prompt, -1, in_ids, n_in, &job->cancel, on_unit,
                             job, &st, error);
  g_free (chat_ids);
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
  job->ids = g_array_new (FALSE, FALSE, sizeof (gint32));
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

/* Generates from token ids in the calling thread; returns the generated ids. */
gint32 *
lev_g_generator_generate_ids (LevGGenerator *self, const gint32 *ids, gsize n_ids, GCancellable *cancellable,
                              gsize *n_generated, GError **error)
{
  g_return_val_if_fail (LEV_G_IS_GENERATOR (self) && (ids || n_ids == 0) && n_generated, NULL);
  *n_generated = 0;
  if (!claim (self, error))
    return NULL;
  Job *job = job_new (self, NULL, NULL);
  job->in_ids = g_array_sized_new (FALSE, FALSE, sizeof (gint32), (guint) n_ids);
  g_array_append_vals (job->in_ids, ids, (guint) n_ids);
  char *text = run_job (job, cancellable, error);
  gint32 *out = NULL;
  if (text) {
    *n_generated = job->ids->len;
    out = g_new (gint32, MAX (job->ids->len, 1));
    memcpy (out, job->ids->data, job->ids->len * sizeof (gint32));
    g_free (text);
  }
  job_free (job);
  g_atomic_int_set (&self->busy, 0);
  return out;
}

/* Answers a conversation in the calling thread. */
char *
lev_g_generator_chat (LevGGenerator *self, const char *const *roles, const char *const *contents,
                      GCancellable *cancellable, GError **error)
{
  g_return_val_if_fail (LEV_G_IS_GENERATOR (self) && roles && contents, NULL);
  guint n = g_strv_length ((gchar **) roles);
  if (n != g_strv_length ((gchar **) contents)) {
    g_set_error (error, LEV_G_ERROR, LEV_G_ERROR_ARGUMENT, "%u roles but %u contents", n,
                 g_strv_length ((gchar **) contents));
    return NULL;
  }
  if (!claim (self, error))
    return NULL;
  Job *job = job_new (self, NULL, NULL);
  job->messages = g_new0 (LevChatMessage, MAX (n, 1));
  job->n_messages = n;
  for (guint i = 0; i < n; i++)
    job->messages[i] = (LevChatMessage) { roles[i], contents[i] };
  char *res = run_job (job, cancellable, error);
  g_free (job->messages);
  job_free (job);
  g_atomic_int_set (&self->busy, 0);
  return res;
}
