/* lev_session.c: prompt → response with the engine: chat template, truncation, sampling, stop rules, units,
 * statistics (the one generation loop of every front end; its rules are in docs/architecture.md, "Session"). */
#include "lev_session.h"

#include <dlfcn.h>
#include <math.h>
#include <string.h>
#include "lev_chat.h"
#include "lev_grammar.h"
#include "leviathan-ext.h"

struct LevSession {
  const LevModel *model;
  uint32_t vocab_size;           /* the model's, cached */
  int32_t bos_id, eos_id;        /* the model's, cached (-1: none) */
  const LevTokenizer *tok;
  LevContext *ctx;
  LevSampler *sampler;
  gboolean sampler_dirty;        /* parameters changed: make a new sampler before the next prompt */
  LevSessionParams p;            /* strings below are owned copies */
  gchar *system_prompt;
  gchar *default_system;         /* the template's own system message when none is given (Qwen), or NULL */
  gchar **stops;
  LevChatTemplate tmpl;          /* resolved template */
  LevOutput *out;
  int32_t pending;               /* last sampled token, not evaluated yet (-1: none) */
  int32_t prev;                  /* last token of the sequence (-1: none) */
  gboolean history;              /* the context holds a conversation */
  gchar *bos_text;               /* the BOS piece, looked up once (NULL: not yet, or none) */
  /* structured output (lev_grammar.h): compiled when the grammar text changes */
  gchar *grammar_text;
  LevGrammar *grammar;
  LevGrammarMatcher *matcher;
  float *masked;                 /* the logits with the tokens the grammar refuses at -infinity */
  GArray *stop_ids;              /* the stop tokens (allowed when the grammar is complete) */
  /* token log-probabilities: records of tokens pushed to the output, not yet in a unit (from lp_head on) */
  GArray *lp_fifo;               /* LevTokenLogprob, top_* pointers unset: see lp_top */
  GArray *lp_top_ids, *lp_top_lps; /* n_top_logprobs per record of lp_fifo */
  guint lp_head;
  GArray *unit_lp;               /* the records of the unit being handed to the callback */
  gsize max_piece;               /* the longest piece of the vocabulary in bytes: no token covers more text */
};

/* Returns the context length used when none is given: the model's max_ctx, at most LEV_DEFAULT_CONTEXT_CAP. */
uint32_t
lev_session_default_n_ctx (const LevModel *model)
{
  uint32_t max_ctx = lev_model_max_ctx (model);
  return max_ctx ? MIN (max_ctx, LEV_DEFAULT_CONTEXT_CAP) : LEV_DEFAULT_CONTEXT_CAP;
}

/* Returns the bundled model's file. */
gchar *
lev_session_find_default_model (const char *installed, const char *uninstalled, gconstpointer anchor)
{
  if (!installed || !*installed || g_file_test (installed, G_FILE_TEST_EXISTS) || !uninstalled || !*uninstalled)
    return g_strdup (installed ? installed : "");
  gchar *binary = NULL;
  Dl_info info;
  if (anchor && dladdr (anchor, &info) && info.dli_fname && g_path_is_absolute (info.dli_fname))
    binary = g_strdup (info.dli_fname);
  else
    binary = g_file_read_link ("/proc/self/exe", NULL);
  gchar *found = NULL;
  if (binary) {
    gchar *dir = g_path_get_dirname (binary);
    gchar *path = g_build_filename (dir, uninstalled, NULL);
    if (g_file_test (path, G_FILE_TEST_IS_REGULAR))
      found = g_canonicalize_filename (path, NULL);
    g_free (path);
    g_free (dir);
    g_free (binary);
  }
  return found ? found : g_strdup (installed);
}

/* Returns default parameters. */
LevSessionParams
lev_session_default_params (void)
{
  LevSamplerParams sp = lev_sampler_default_params ();
  LevContextParams cp = lev_context_default_params ();
  LevSessionParams p = {
    .n_threads = cp.n_threads, .n_ctx = 0, .n_sink = cp.n_sink, .act_quant = cp.act_quant, .max_tokens = 256,
    .temperature = sp.temperature, .top_p = sp.top_p, .min_p = sp.min_p, .repeat_penalty = sp.repeat_penalty,
    .top_k = sp.top_k, .repeat_last_n = sp.repeat_last_n, .seed = -1, .keep_history = FALSE, .ignore_eos = FALSE,
    .chat_template = LEV_SESSION_TEMPLATE_AUTO, .system_prompt = NULL, .stop_strings = NULL,
    .unit_mode = LEV_UNIT_TOKEN, .grammar = NULL, .token_logprobs = FALSE, .n_top_logprobs = 0,
    .max_prompt_bytes = LEV_SESSION_DEFAULT_MAX_PROMPT_BYTES, .parse_special = FALSE,
    .kv_type = LEV_KV_F32, .memory_limit = 0,
  };
  return p;
}

/* Parses a template choice: "auto" or a family name. */
gboolean
lev_session_template_from_name (const char *name, int *out)
{
  if (!name || g_ascii_strcasecmp (name, "auto") == 0) {
    *out = LEV_SESSION_TEMPLATE_AUTO;
    return TRUE;
  }
  LevChatTemplate t;          /* the family names are the engine's (lev_chat.c) */
  if (!lev_chat_template_from_name (name, &t))
    return FALSE;
  *out = (int) t;
  return TRUE;
}

static gboolean
resolve_template (const LevModel *model, int choice, LevChatTemplate *out, GError **error)
{
  if (choice == LEV_SESSION_TEMPLATE_AUTO) {
    *out = lev_chat_template_detect (lev_model_chat_template (model));
    return TRUE;
  }
  if (choice < LEV_CHAT_NONE || choice > LEV_CHAT_BITNET) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "unknown chat template %d", choice);
    return FALSE;
  }
  *out = (LevChatTemplate) choice;
  return TRUE;
}

/* The context parameters of a session with params over model. */
static LevContextParams
context_params (const LevModel *model, const LevSessionParams *params)
{
  LevContextParams cp = lev_context_default_params ();
  cp.n_threads = params->n_threads;
  cp.n_sink = params->n_sink;
  cp.act_quant = params->act_quant;
  cp.n_ctx = params->n_ctx ? params->n_ctx : lev_session_default_n_ctx (model);
  /* the default attention sinks shrink to fit a tiny context (2..4 slots); a count given on purpose must fit */
  if (cp.n_sink == lev_context_default_params ().n_sink && cp.n_sink >= cp.n_ctx)
    cp.n_sink = cp.n_ctx / 2;
  return cp;
}

/* Fills *est with the memory of model and a session over it. */
void
lev_session_memory_estimate (const LevModel *model, const LevSessionParams *params, LevMemoryEstimate *est)
{
  LevContextParams cp = context_params (model, params);
  lev_context_memory_estimate (model, &cp, (LevKvType) params->kv_type, est);
}

/* Creates a session with a context of its own threads, or on engine when it is not NULL. */
static LevSession *
session_new (const LevModel *model, LevEngine *engine, const LevSessionParams *params, GError **error)
{
  if (!lev_model_has_weights (model)) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_NO_WEIGHTS, "the model file holds no weights (tokenizer only)");
    return NULL;
  }
  LevContextParams cp = context_params (model, params);
  if (params->memory_limit) {
    LevMemoryEstimate est;
    lev_session_memory_estimate (model, params, &est);
    if (est.total > params->memory_limit) {
      gchar *sz[5] = { g_format_size_full (est.total, G_FORMAT_SIZE_IEC_UNITS),
                       g_format_size_full (est.weights, G_FORMAT_SIZE_IEC_UNITS),
                       g_format_size_full (est.kv_cache, G_FORMAT_SIZE_IEC_UNITS),
                       g_format_size_full (est.scratch, G_FORMAT_SIZE_IEC_UNITS),
                       g_format_size_full (params->memory_limit, G_FORMAT_SIZE_IEC_UNITS) };
      g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "the model needs %s (model file %s, KV cache %s for %u tokens "
                   "as %s, scratch %s), more than the memory limit of %s: a shorter context, the q8 KV cache or a "
                   "smaller model takes less", sz[0], sz[1], sz[2], cp.n_ctx,
                   lev_kv_type_name (params->kv_type) ? lev_kv_type_name (params->kv_type) : "?", sz[3], sz[4]);
      for (int i = 0; i < 5; i++)
        g_free (sz[i]);
      return NULL;
    }
  }
  LevContext *ctx = engine ? lev_engine_context_new_kv (engine, &cp, (LevKvType) params->kv_type, error)
                           : lev_context_new_kv (model, &cp, (LevKvType) params->kv_type, error);
  if (!ctx)
    return NULL;
  LevSession *s = g_new0 (LevSession, 1);
  s->model = model;
  s->vocab_size = lev_model_vocab_size (model);
  s->bos_id = lev_model_bos_id (model);
  s->eos_id = lev_model_eos_id (model);
  s->tok = lev_model_tokenizer (model);
  s->max_piece = 1;
  for (uint32_t i = 0; s->tok && i < lev_tokenizer_n_tokens (s->tok); i++) {
    size_t len = 0;
    if (lev_tokenizer_piece (s->tok, (int32_t) i, &len))
      s->max_piece = MAX (s->max_piece, len);
  }
  s->ctx = ctx;
  s->pending = s->prev = -1;
  s->sampler_dirty = TRUE;
  if (!lev_session_set_params (s, params, error)) {
    lev_session_free (s);
    return NULL;
  }
  return s;
}

/* Creates a session. */
LevSession *
lev_session_new (const LevModel *model, const LevSessionParams *params, GError **error)
{
  return session_new (model, NULL, params, error);
}

/* Creates a session whose context runs on engine (n_threads and act_quant are the engine's). */
LevSession *
lev_session_new_on_engine (LevEngine *engine, const LevSessionParams *params, GError **error)
{
  return session_new (lev_engine_model (engine), engine, params, error);
}

/* Frees a session. */
void
lev_session_free (LevSession *s)
{
  if (!s)
    return;
  lev_sampler_free (s->sampler);
  lev_context_free (s->ctx);
  lev_output_free (s->out);
  g_free (s->system_prompt);
  g_free (s->default_system);
  g_free (s->bos_text);
  g_strfreev (s->stops);
  g_free (s->grammar_text);
  lev_grammar_matcher_free (s->matcher);
  lev_grammar_free (s->grammar);
  g_free (s->masked);
  if (s->stop_ids)
    g_array_free (s->stop_ids, TRUE);
  if (s->lp_fifo) {
    g_array_free (s->lp_fifo, TRUE);
    g_array_free (s->lp_top_ids, TRUE);
    g_array_free (s->lp_top_lps, TRUE);
    g_array_free (s->unit_lp, TRUE);
  }
  g_free (s);
}

static gboolean is_stop_token (const LevSession *s, int32_t id);

/* Compiles the grammar when its text changed (the compiled one and its mask cache are kept otherwise); FALSE with
 * error set when it cannot be compiled (the previous one is kept then). */
static gboolean
set_grammar (LevSession *s, const char *text, GError **error)
{
  if (text && !text[0])
    text = NULL;
  if (g_strcmp0 (text, s->grammar_text) == 0)
    return TRUE;
  LevGrammar *g = NULL;
  if (text && !(g = lev_grammar_compile (text, error)))
    return FALSE;
  if (g && !s->tok) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "a grammar needs the model's tokenizer");
    lev_grammar_free (g);
    return FALSE;
  }
  g_clear_pointer (&s->matcher, lev_grammar_matcher_free);
  g_clear_pointer (&s->grammar, lev_grammar_free);
  g_free (s->grammar_text);
  s->grammar_text = g_strdup (text);
  s->grammar = g;
  if (g) {
    s->matcher = lev_grammar_matcher_new (g, s->tok, s->vocab_size);
    if (!s->masked)
      s->masked = g_new (float, s->vocab_size);
    if (!s->stop_ids) {
      s->stop_ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
      for (uint32_t i = 0; i < s->vocab_size; i++)
        if ((int32_t) i != s->bos_id && is_stop_token (s, (int32_t) i))
          g_array_append_val (s->stop_ids, i);
    }
  }
  return TRUE;
}

/* Replaces the generation parameters. */
gboolean
lev_session_set_params (LevSession *s, const LevSessionParams *params, GError **error)
{
  LevChatTemplate tmpl;
  if (!lev_session_params_check (params, error) || !resolve_template (s->model, params->chat_template, &tmpl, error)
      || !set_grammar (s, params->grammar, error))
    return FALSE;
  if (params->token_logprobs && !s->lp_fifo) {
    s->lp_fifo = g_array_new (FALSE, FALSE, sizeof (LevTokenLogprob));
    s->lp_top_ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
    s->lp_top_lps = g_array_new (FALSE, FALSE, sizeof (float));
    s->unit_lp = g_array_new (FALSE, FALSE, sizeof (LevTokenLogprob));
  }
  s->tmpl = tmpl;
  s->p = *params;
  g_free (s->system_prompt);
  s->system_prompt = g_strdup (params->system_prompt);
  s->p.system_prompt = s->system_prompt;
  g_free (s->default_system);
  s->default_system = tmpl == LEV_CHAT_CHATML ? lev_chat_template_default_system (lev_model_chat_template (s->model))
                                              : NULL;
  g_strfreev (s->stops);
  s->stops = g_strdupv ((gchar **) params->stop_strings);
  s->p.stop_strings = (const char *const *) s->stops;
  s->p.grammar = s->grammar_text;
  s->p.n_top_logprobs = MIN (s->p.n_top_logprobs, LEV_MAX_TOP_LOGPROBS);
  lev_output_free (s->out);
  s->out = lev_output_new (params->unit_mode, s->p.stop_strings);
  s->sampler_dirty = TRUE;
  return TRUE;
}

/* Forgets the conversation. */
void
lev_session_reset (LevSession *s)
{
  lev_context_reset (s->ctx);
  s->pending = s->prev = -1;
  s->history = FALSE;
  s->sampler_dirty = TRUE;
}

/* Returns the chat template in use. */
int
lev_session_template (const LevSession *s)
{
  return (int) s->tmpl;
}

/* Returns the context length. */
uint32_t
lev_session_n_ctx (const LevSession *s)
{
  return lev_context_n_ctx (s->ctx);
}

/* The sampler's share of the session parameters (seed left at the default). */
static LevSamplerParams
sampler_params (const LevSessionParams *p)
{
  LevSamplerParams sp = lev_sampler_default_params ();
  sp.temperature = p->temperature;
  sp.top_k = p->top_k;
  sp.top_p = p->top_p;
  sp.min_p = p->min_p;
  sp.repeat_penalty = p->repeat_penalty;
  sp.repeat_last_n = p->repeat_last_n;
  return sp;
}

/* Checks the sampling parameters against the engine's one set of ranges (lev_sampler_params_check). */
gboolean
lev_session_params_check (const LevSessionParams *params, GError **error)
{
  LevSamplerParams sp = sampler_params (params);
  return lev_sampler_params_check (&sp, error);
}

static void
new_sampler (LevSession *s)
{
  LevSamplerParams sp = sampler_params (&s->p);
  sp.seed = s->p.seed >= 0 ? (uint64_t) s->p.seed : ((uint64_t) g_random_int () << 32 | g_random_int ());
  lev_sampler_free (s->sampler);
  s->sampler = lev_sampler_new (&sp, s->vocab_size);
  s->sampler_dirty = FALSE;
}

/* Returns the text of the BOS token (owned by the session), or NULL when the tokenizer has none. */
static const char *
bos_text (LevSession *s)
{
  if (!s->bos_text && s->tok && lev_tokenizer_bos (s->tok) >= 0) {
    size_t n = 0;
    const char *p = lev_tokenizer_piece (s->tok, lev_tokenizer_bos (s->tok), &n);
    if (p)
      s->bos_text = g_strndup (p, n);
  }
  return s->bos_text;
}

/* The system message in use: the one given, else the template's own default, as its Jinja source writes one
 * (Qwen2's ChatML); NULL for none. */
static const char *
system_text (const LevSession *s)
{
  const char *sys = s->system_prompt ? s->system_prompt : s->default_system;
  return sys && sys[0] ? sys : NULL;
}

/* Builds the text to encode for a prompt at the start of a conversation (first) or later in it. */
static gchar *
render_prompt (LevSession *s, const char *text, gssize len, gboolean first)
{
  gchar *user = len < 0 ? g_strdup (text) : g_strndup (text, (gsize) len);
  const char *sys = system_text (s);
  if (s->tmpl != LEV_CHAT_NONE) {
    LevChatMessage msgs[2];
    gsize n = 0;
    if (first && sys)
      msgs[n++] = (LevChatMessage) { "system", sys };
    msgs[n++] = (LevChatMessage) { "user", user };
    /* a continuing conversation closes the previous answer's turn and opens the next one */
    const char *bos = bos_text (s);
    gchar *r = first ? lev_chat_render (s->tmpl, msgs, n, TRUE, bos)
                     : lev_chat_render_continuation (s->tmpl, msgs, n, TRUE, bos);
    g_free (user);
    return r;
  }
  if (first && sys) {
    gchar *r = g_strconcat (sys, "\n", user, NULL);
    g_free (user);
    return r;
  }
  return user;
}

/* Finds the user's text in a rendered prompt r: the template rendered around a marker byte that valid UTF-8 never
 * holds (0xFF) gives what comes before and after it; r must start and end with those (the template only strips
 * the content's white space). [*start, *end) is then the content; both stay 0 when the content was white space only
 * (nothing there can spell a control token). */
static void
user_range (LevSession *s, const char *r, gboolean first, gsize *start, gsize *end)
{
  gchar *m = render_prompt (s, "\xff", 1, first);
  const char *at = strrchr (m, '\xff');
  gsize rlen = strlen (r);
  if (at) {
    gsize before = (gsize) (at - m), after = strlen (at + 1);
    if (before + after <= rlen && strncmp (r, m, before) == 0 && strcmp (r + rlen - after, at + 1) == 0) {
      *start = before;
      *end = rlen - after;
    }
  }
  g_free (m);
}

/* Encodes a text prompt: template, then BOS where the tokenizer adds one unless the template already wrote it;
 * control tokens a template wrote (</s>, <|im_end|>) become their ids; in the user's text they stay text unless
 * parse_special (no injected turns from untrusted text). */
static int32_t *
encode_prompt (LevSession *s, const char *text, gssize len, gboolean first, size_t *n, GError **error)
{
  if (!s->tok) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "the model has no tokenizer: give token ids");
    return NULL;
  }
  /* a NUL byte in the text: encoded as a character where the text is the whole prompt; a template or system message
   * (C strings) cannot carry it, so there it is refused rather than cutting the text short */
  gsize n_text = len < 0 ? strlen (text) : (gsize) len;
  const char *nul = memchr (text, '\0', n_text);
  if (nul && (s->tmpl != LEV_CHAT_NONE || (first && system_text (s)))) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "the prompt holds a NUL byte (at byte %" G_GSIZE_FORMAT "), "
                 "which a chat template or system message cannot carry", (gsize) (nul - text));
    return NULL;
  }
  if (nul)
    return lev_tokenizer_encode (s->tok, text, (gssize) n_text, first && lev_tokenizer_adds_bos (s->tok), n, error);
  gchar *r = render_prompt (s, text, len, first);
  const char *bos_piece = bos_text (s);
  gboolean add_bos = first && lev_tokenizer_adds_bos (s->tok) && !(bos_piece && g_str_has_prefix (r, bos_piece));
  int32_t *ids;
  if (s->tmpl != LEV_CHAT_NONE) {
    gsize plain_start = 0, plain_end = 0;
    if (!s->p.parse_special)
      user_range (s, r, first, &plain_start, &plain_end);
    ids = lev_tokenizer_encode_special_except (s->tok, r, -1, add_bos, plain_start, plain_end, n, error);
  } else {
    ids = lev_tokenizer_encode (s->tok, r, -1, add_bos, n, error);
  }
  g_free (r);
  return ids;
}

/* Returns the ids of a first-turn prompt. */
int32_t *
lev_session_encode_prompt (LevSession *s, const char *text, gssize len, size_t *n_ids, GError **error)
{
  return encode_prompt (s, text, len, TRUE, n_ids, error);
}

/* Returns the ids of a whole conversation. */
int32_t *
lev_session_encode_chat (LevSession *s, const LevChatMessage *messages, gsize n_messages, size_t *n_ids,
                         GError **error)
{
  *n_ids = 0;
  if (!s->tok) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "the model has no tokenizer");
    return NULL;
  }
  if (s->tmpl == LEV_CHAT_NONE) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "no chat template: the model file names none (set "
                 "chat-template to the model's family)");
    return NULL;
  }
  if (n_messages == 0) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "the conversation has no message");
    return NULL;
  }
  for (gsize i = 0; i < n_messages; i++) {
    const char *role = messages[i].role, *content = messages[i].content;
    if (!role || (strcmp (role, "system") != 0 && strcmp (role, "user") != 0 && strcmp (role, "assistant") != 0)) {
      g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "message %" G_GSIZE_FORMAT ": the role is \"%s\", not "
                   "system, user or assistant", i + 1, role ? role : "(null)");
      return NULL;
    }
    if (!content || !g_utf8_validate (content, -1, NULL)) {
      g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "message %" G_GSIZE_FORMAT ": the content is %s", i + 1,
                   content ? "not valid UTF-8" : "missing");
      return NULL;
    }
  }
  const char *bos_piece = bos_text (s);
  gchar *r = lev_chat_render (s->tmpl, messages, n_messages, TRUE, bos_piece);
  gboolean add_bos = lev_tokenizer_adds_bos (s->tok) && !(bos_piece && g_str_has_prefix (r, bos_piece));
  int32_t *ids = lev_tokenizer_encode_special (s->tok, r, -1, add_bos, n_ids, error);
  g_free (r);
  return ids;
}

/* The stop rule: end-of-text, BOS and every other control token (end-of-turn markers such as <|im_end|>,
 * <|eot_id|>) end a response; they are never text. */
static gboolean
is_stop_token (const LevSession *s, int32_t id)
{
  if (id == s->eos_id || id == s->bos_id)
    return TRUE;
  return s->tok && (id == lev_tokenizer_eos (s->tok) || lev_tokenizer_is_control (s->tok, id));
}

static gboolean
is_cancelled (const gint *cancel)
{
  return cancel && g_atomic_int_get (cancel);
}

static gboolean
eval (LevSession *s, int32_t id, const float **logits, GError **error)
{
  *logits = lev_context_eval (s->ctx, id, error);
  s->prev = id;
  return *logits != NULL;
}

/* Records the log-probability of token next (and the n_top_logprobs most likely ids) from the model's logits. */
static void
record_logprob (LevSession *s, const float *logits, int32_t next)
{
  uint32_t n = s->vocab_size, k = s->p.n_top_logprobs;
  float maxv = logits[0];
  for (uint32_t i = 1; i < n; i++)
    maxv = MAX (maxv, logits[i]);
  double sum = 0.0;
  for (uint32_t i = 0; i < n; i++)
    sum += expf (logits[i] - maxv);      /* float exponentials, summed in double */
  double lse = maxv + log (sum);
  LevTokenLogprob r = { next, (float) (logits[next] - lse), k, NULL, NULL };
  g_array_append_val (s->lp_fifo, r);
  if (k == 0)
    return;                              /* no top list: the arrays stay empty (their data may be NULL) */
  /* the k largest by insertion into a sorted list (k is small) */
  guint base = s->lp_top_ids->len;
  g_array_set_size (s->lp_top_ids, base + k);
  g_array_set_size (s->lp_top_lps, base + k);
  int32_t *ti = &g_array_index (s->lp_top_ids, int32_t, base);
  float *tl = &g_array_index (s->lp_top_lps, float, base);
  uint32_t have = 0;
  for (uint32_t i = 0; i < n && k > 0; i++) {
    if (have == k && logits[i] <= logits[ti[k - 1]])
      continue;
    uint32_t j = have < k ? have++ : k - 1;
    while (j > 0 && logits[ti[j - 1]] < logits[i]) {
      ti[j] = ti[j - 1];
      j--;
    }
    ti[j] = (int32_t) i;
  }
  for (uint32_t j = 0; j < k; j++)
    tl[j] = j < have ? (float) (logits[ti[j]] - lse) : -INFINITY;
}

/* Fills unit_lp with the records of a unit's ids (records of ids a stop string dropped are skipped) and drops
 * them from the queue. */
static void
take_unit_logprobs (LevSession *s, const int32_t *ids, guint n_ids)
{
  g_array_set_size (s->unit_lp, 0);
  guint k = s->p.n_top_logprobs;
  for (guint i = 0; i < n_ids; i++) {
    while (s->lp_head < s->lp_fifo->len && g_array_index (s->lp_fifo, LevTokenLogprob, s->lp_head).id != ids[i])
      s->lp_head++;
    LevTokenLogprob r = { ids[i], 0.0f, 0, NULL, NULL };
    if (s->lp_head < s->lp_fifo->len) {
      r = g_array_index (s->lp_fifo, LevTokenLogprob, s->lp_head);
      r.top_ids = k ? &g_array_index (s->lp_top_ids, int32_t, s->lp_head * k) : NULL;
      r.top_logprobs = k ? &g_array_index (s->lp_top_lps, float, s->lp_head * k) : NULL;
      s->lp_head++;
    }
    g_array_append_val (s->unit_lp, r);
  }
}

/* Forgets the records of the previous response. */
static void
reset_logprobs (LevSession *s)
{
  if (!s->lp_fifo)
    return;
  g_array_set_size (s->lp_fifo, 0);
  g_array_set_size (s->lp_top_ids, 0);
  g_array_set_size (s->lp_top_lps, 0);
  g_array_set_size (s->unit_lp, 0);
  s->lp_head = 0;
}

/* The unit's records, during a unit callback. */
const LevTokenLogprob *
lev_session_unit_logprobs (const LevSession *s)
{
  return s->p.token_logprobs && s->unit_lp ? (const LevTokenLogprob *) s->unit_lp->data : NULL;
}

/* The logits with what the grammar refuses at -infinity: tokens whose bytes (read as the output will write them:
 * lead, at the start of a text or inside one) leave it, and the stop tokens until it is complete; NULL when no
 * token is allowed. */
static const float *
grammar_logits (LevSession *s, const float *logits, gboolean lead)
{
  LevGrammarBytes mode = lead ? LEV_GRAMMAR_BYTES_LEAD
                       : (s->prev < 0 || s->prev == s->bos_id) ? LEV_GRAMMAR_BYTES_START : LEV_GRAMMAR_BYTES_MID;
  const uint8_t *mask = lev_grammar_matcher_mask (s->matcher, mode);
  gboolean any = FALSE;
  for (uint32_t i = 0; i < s->vocab_size; i++) {
    s->masked[i] = mask[i] ? logits[i] : -INFINITY;
    any |= mask[i];
  }
  gboolean end_ok = lev_grammar_matcher_is_complete (s->matcher) && !s->p.ignore_eos;
  for (guint i = 0; i < s->stop_ids->len; i++) {
    int32_t id = g_array_index (s->stop_ids, int32_t, i);
    s->masked[id] = end_ok ? logits[id] : -INFINITY;
  }
  return any || end_ok ? s->masked : NULL;
}

/* Hands every ready unit to func; FALSE when func asked to stop. */
static gboolean
drain_units (LevSession *s, LevSessionUnitFunc func, gpointer user_data, GString *text, GArray *ids)
{
  g_array_set_size (ids, 0);
  while (lev_output_pop (s->out, text, ids)) {
    if (s->p.token_logprobs)
      take_unit_logprobs (s, (const int32_t *) ids->data, ids->len);
    gboolean go = func ? func (text->str, text->len, (const int32_t *) ids->data, ids->len, user_data) : TRUE;
    g_array_set_size (ids, 0);
    if (!go)
      return FALSE;
  }
  return TRUE;
}

/* The prompt's ids: the text encoded (template, BOS) or the given ids copied, each checked against the vocabulary;
 * an empty prompt with nothing pending becomes BOS. Newly allocated in *out (NULL when empty), their number in *n;
 * FALSE with error set. */
static gboolean
prompt_ids (LevSession *s, const char *text, gssize len, const int32_t *in_ids, gsize n_in, gboolean first,
            int32_t bos, int32_t **out, size_t *n, GError **error)
{
  int32_t *ids = NULL;
  *out = NULL;
  *n = 0;
  if (text) {
    if (!(ids = encode_prompt (s, text, len, first, n, error)))
      return FALSE;
  } else {
    ids = g_memdup2 (in_ids, n_in * sizeof (int32_t));
    *n = n_in;
  }
  for (size_t i = 0; i < *n; i++)
    if (ids[i] < 0 || (uint32_t) ids[i] >= s->vocab_size) {
      g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "token id %d is out of range (vocabulary of %u)", ids[i],
                   s->vocab_size);
      g_free (ids);
      return FALSE;
    }
  if (*n == 0 && s->pending < 0) {
    if (bos < 0) {
      g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "the prompt is empty and the model has no BOS token");
      g_free (ids);
      return FALSE;
    }
    ids = g_renew (int32_t, ids, 1);
    ids[0] = bos;
    *n = 1;
  }
  *out = ids;
  return TRUE;
}

/* Returns the most prompt tokens the context takes: room is kept for max_tokens, up to half the context. */
static size_t
prompt_token_limit (const LevSession *s)
{
  uint32_t n_ctx = lev_context_n_ctx (s->ctx);
  size_t limit = n_ctx - MIN (s->p.max_tokens, n_ctx / 2);
  return limit < 1 ? 1 : limit;
}

/* Extra tokens tokenized before the tail that can survive: the first tokens of a cut text may differ from those of
 * the whole text; these are dropped with the rest. */
#define PROMPT_TAIL_MARGIN 64

/* The part of a text prompt that is tokenized: its last max_prompt_bytes bytes, and no more than the tail that can
 * give the tokens the context keeps (every token covers at most max_piece bytes, so (limit + margin) * max_piece
 * bytes give at least limit + margin tokens; the text before them would be dropped by truncate_prompt anyway). The
 * cut is at a character boundary, moved to the next white space when one is near (a natural word start).
 * Returns the start of the tail in text; *len becomes the tail's length, *dropped the bytes before it. */
static const char *
prompt_tail (const LevSession *s, const char *text, gsize *len, guint64 *dropped)
{
  gsize cap = s->p.max_prompt_bytes ? s->p.max_prompt_bytes : G_MAXSIZE;
  gsize survive = (prompt_token_limit (s) + PROMPT_TAIL_MARGIN) * s->max_piece;
  cap = MIN (cap, survive);
  *dropped = 0;
  if (*len <= cap)
    return text;
  gsize cut = *len - cap;
  while (cut < *len && ((guchar) text[cut] & 0xc0) == 0x80)
    cut++;
  if (cap == survive)
    for (gsize k = cut; k < *len && k < cut + 64; k++)
      if (text[k] == ' ' || text[k] == '\n') {
        cut = k;
        break;
      }
  *dropped = cut;
  *len -= cut;
  return text + cut;
}

/* Cuts a prompt longer than the context allows (room kept for max_tokens, up to half the context) to its end, a
 * first prompt's leading BOS kept; returns the number of tokens dropped. */
static guint
truncate_prompt (const LevSession *s, int32_t *ids, size_t *n, gboolean first, int32_t bos)
{
  size_t limit = prompt_token_limit (s);
  if (*n <= limit)
    return 0;
  size_t keep_first = (first && ids[0] == bos && limit > 1) ? 1 : 0;
  size_t drop = *n - limit;
  memmove (ids + keep_first, ids + keep_first + drop, (*n - keep_first - drop) * sizeof (int32_t));
  *n = limit;
  return (guint) drop;
}

/* Evaluates the token left pending by the last response, then the prompt in blocks of LEV_PREFILL_BLOCK (each
 * weight tile unpacked once per block), checking for cancellation between blocks; the last logits in *logits.
 * Counts prompt tokens in st and sets st->reason to LEV_STOP_CANCELLED when cancelled. FALSE with error set. */
static gboolean
prefill (LevSession *s, const int32_t *ids, size_t n, const gint *cancel, const float **logits, LevSessionStats *st,
         GError **error)
{
  gboolean ok = TRUE;
  if (s->pending >= 0) {
    ok = eval (s, s->pending, logits, error);
    s->pending = -1;
  }
  for (size_t i = 0; ok && i < n;) {
    if (is_cancelled (cancel)) {
      st->reason = LEV_STOP_CANCELLED;
      break;
    }
    size_t k = MIN (n - i, (size_t) LEV_PREFILL_BLOCK);
    *logits = lev_context_eval_batch (s->ctx, ids + i, (uint32_t) k, error);
    ok = *logits != NULL;
    s->prev = ids[i + k - 1];
    for (size_t j = 0; ok && j < k; j++)
      lev_sampler_accept (s->sampler, ids[i + j]);
    st->prompt_tokens += ok ? (guint) k : 0;
    i += k;
  }
  return ok;
}

/* Samples, checks the stop rules, splits the text into units for func and evaluates each new token, from the
 * prompt's logits until a stop rule, max_tokens, cancellation or func ends the response; fills st's reason, stop
 * token, generated tokens and ttft (from t0), *t_first when the first token was sampled. FALSE with error set when
 * the engine failed. */
static gboolean
decode (LevSession *s, const float *logits, const gint *cancel, LevSessionUnitFunc func, gpointer user_data,
        gint64 t0, gint64 *t_first, LevSessionStats *st, GError **error)
{
  gboolean ok = TRUE;
  lev_output_reset (s->out);
  reset_logprobs (s);
  if (s->matcher)
    lev_grammar_matcher_reset (s->matcher);
  GString *utext = g_string_new (NULL);
  GArray *uids = g_array_new (FALSE, FALSE, sizeof (int32_t));
  GString *piece = g_string_new (NULL);
  /* a chat answer's leading white space is turn formatting (the template's "Assistant: ", a newline), not text */
  gboolean lead = s->tmpl != LEV_CHAT_NONE;
  for (guint k = 0; st->reason != LEV_STOP_CANCELLED && k < s->p.max_tokens; k++) {
    if (is_cancelled (cancel)) {
      st->reason = LEV_STOP_CANCELLED;
      break;
    }
    const float *scores = s->matcher ? grammar_logits (s, logits, lead) : logits;
    if (!scores) {
      st->reason = LEV_STOP_GRAMMAR;
      break;
    }
    int32_t next = lev_sampler_sample (s->sampler, scores);
    if (k == 0) {
      *t_first = g_get_monotonic_time ();
      st->ttft_us = *t_first - t0;
    }
    if (!s->p.ignore_eos && is_stop_token (s, next)) {
      st->reason = LEV_STOP_EOS;
      st->stop_token = next;
      /* with a template the next turn's rendering closes this one (lev_chat_render_continuation), so the stop
       * token is not evaluated; without one it stays the last token of the sequence */
      s->pending = s->tmpl != LEV_CHAT_NONE ? -1 : next;
      break;
    }
    lev_sampler_accept (s->sampler, next);
    st->generated_tokens++;
    if (s->tok) {
      g_string_truncate (piece, 0);
      lev_tokenizer_decode_token (s->tok, s->prev, next, piece);
    }
    gsize skip = 0;
    if (lead) {
      while (skip < piece->len && (piece->str[skip] == ' ' || piece->str[skip] == '\n'))
        skip++;
      lead = skip == piece->len;
    }
    if (s->matcher && !lev_grammar_matcher_accept (s->matcher, piece->str + skip, piece->len - skip)) {
      st->reason = LEV_STOP_GRAMMAR;     /* not reached: the mask let only tokens through that the grammar takes */
      s->pending = next;
      break;
    }
    if (s->p.token_logprobs)
      record_logprob (s, logits, next);
    gboolean stop = lev_output_push (s->out, next, piece->str + skip, piece->len - skip);
    if (!drain_units (s, func, user_data, utext, uids)) {
      st->reason = LEV_STOP_CALLBACK;
      s->pending = next;
      break;
    }
    if (stop) {
      st->reason = LEV_STOP_STRING;
      s->pending = next;
      break;
    }
    if (s->matcher && lev_grammar_matcher_is_finished (s->matcher)) {
      st->reason = LEV_STOP_GRAMMAR;
      s->pending = next;
      break;
    }
    if (k + 1 < s->p.max_tokens) {
      if (!eval (s, next, &logits, error)) {
        ok = FALSE;
        break;
      }
    } else {
      s->pending = next;
    }
  }
  if (ok && st->reason != LEV_STOP_CANCELLED && st->reason != LEV_STOP_CALLBACK) {
    lev_output_finish (s->out);
    if (!drain_units (s, func, user_data, utext, uids))
      st->reason = LEV_STOP_CALLBACK;
  }
  g_string_free (utext, TRUE);
  g_string_free (piece, TRUE);
  g_array_free (uids, TRUE);
  return ok;
}

/* Generates a response. */
gboolean
lev_session_generate (LevSession *s, const char *text, gssize len, const int32_t *in_ids, gsize n_in,
                      const gint *cancel, LevSessionUnitFunc func, gpointer user_data, LevSessionStats *stats,
                      GError **error)
{
  LevSessionStats st = { 0 };
  st.stop_token = -1;
  gint64 t0 = g_get_monotonic_time ();
  if (!s->p.keep_history)
    lev_session_reset (s);
  if (s->sampler_dirty || !s->p.keep_history)
    new_sampler (s);
  gboolean first = !s->history;
  int32_t bos = s->tok ? lev_tokenizer_bos (s->tok) : s->bos_id;

  int32_t *ids = NULL;
  size_t n = 0;
  if (text) {
    gsize tlen = len < 0 ? strlen (text) : (gsize) len;
    text = prompt_tail (s, text, &tlen, &st.truncated_bytes);
    len = (gssize) tlen;
  }
  if (!prompt_ids (s, text, len, in_ids, n_in, first, bos, &ids, &n, error))
    return FALSE;
  st.truncated_tokens = truncate_prompt (s, ids, &n, first, bos);

  const float *logits = NULL;
  st.reason = LEV_STOP_MAX_TOKENS;
  gboolean ok = prefill (s, ids, n, cancel, &logits, &st, error);
  g_free (ids);
  s->history = TRUE;
  gint64 t1 = g_get_monotonic_time ();
  st.prefill_us = t1 - t0;
  if (!ok) {
    lev_session_reset (s);
    return FALSE;
  }

  gint64 t_first = 0;
  ok = decode (s, logits, cancel, func, user_data, t0, &t_first, &st, error);
  if (lev_context_engine (s->ctx))
    lev_engine_context_idle (lev_context_engine (s->ctx), s->ctx);   /* the other streams' steps go on at once */
  if (t_first)
    st.decode_us = g_get_monotonic_time () - t1;     /* as levrun counts: from the end of the prompt to the last token */
  if (!ok)
    lev_session_reset (s);
  if (stats)
    *stats = st;
  return ok;
}

/* Returns a short name for a stop reason. */
const char *
lev_stop_reason_name (LevStopReason reason)
{
  switch (reason) {
  case LEV_STOP_EOS: return "eos";
  case LEV_STOP_MAX_TOKENS: return "max-tokens";
  case LEV_STOP_STRING: return "stop-string";
  case LEV_STOP_CANCELLED: return "cancelled";
  case LEV_STOP_CALLBACK: return "stopped";
  case LEV_STOP_GRAMMAR: return "grammar";
  }
  return "unknown";
}

/* Returns a digest of the vocabulary. */
char *
lev_session_vocab_id (const LevModel *model)
{
  const LevTokenizer *tok = lev_model_tokenizer (model);
  if (!tok)
    return NULL;
  GChecksum *cs = g_checksum_new (G_CHECKSUM_SHA256);
  uint32_t nt = lev_tokenizer_n_tokens (tok);
  int32_t head[3] = { (int32_t) nt, lev_tokenizer_bos (tok), lev_tokenizer_eos (tok) };
  g_checksum_update (cs, (const guchar *) head, sizeof head);
  for (uint32_t i = 0; i < nt; i++) {
    size_t plen = 0;
    const char *p = lev_tokenizer_piece (tok, (int32_t) i, &plen);
    uint32_t l32 = (uint32_t) plen;
    g_checksum_update (cs, (const guchar *) &l32, sizeof l32);
    if (p && plen)
      g_checksum_update (cs, (const guchar *) p, (gssize) plen);
  }
  char *hex = g_strndup (g_checksum_get_string (cs), 16);
  g_checksum_free (cs);
  return hex;
}
