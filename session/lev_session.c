/* lev_session.c: prompt → response with the engine: chat template, truncation, sampling, stop rules, units,
 * statistics (the one generation loop of every front end; its rules are in docs/architecture.md, "Session"). */
#include "lev_session.h"

#include <string.h>
#include "lev_chat.h"

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
};

/* Returns the context length used when none is given: the model's max_ctx, at most LEV_DEFAULT_CONTEXT_CAP. */
uint32_t
lev_session_default_n_ctx (const LevModel *model)
{
  uint32_t max_ctx = lev_model_max_ctx (model);
  return max_ctx ? MIN (max_ctx, LEV_DEFAULT_CONTEXT_CAP) : LEV_DEFAULT_CONTEXT_CAP;
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
    .unit_mode = LEV_UNIT_TOKEN,
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

/* Creates a session with a context of its own threads, or on engine when it is not NULL. */
static LevSession *
session_new (const LevModel *model, LevEngine *engine, const LevSessionParams *params, GError **error)
{
  if (!lev_model_has_weights (model)) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_NO_WEIGHTS, "the model file holds no weights (tokenizer only)");
    return NULL;
  }
  LevContextParams cp = lev_context_default_params ();
  cp.n_threads = params->n_threads;
  cp.n_sink = params->n_sink;
  cp.act_quant = params->act_quant;
  cp.n_ctx = params->n_ctx ? params->n_ctx : lev_session_default_n_ctx (model);
  LevContext *ctx = engine ? lev_engine_context_new (engine, &cp, error) : lev_context_new (model, &cp, error);
  if (!ctx)
    return NULL;
  LevSession *s = g_new0 (LevSession, 1);
  s->model = model;
  s->vocab_size = lev_model_vocab_size (model);
  s->bos_id = lev_model_bos_id (model);
  s->eos_id = lev_model_eos_id (model);
  s->tok = lev_model_tokenizer (model);
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
  g_free (s);
}

/* Replaces the generation parameters. */
gboolean
lev_session_set_params (LevSession *s, const LevSessionParams *params, GError **error)
{
  LevChatTemplate tmpl;
  if (!resolve_template (s->model, params->chat_template, &tmpl, error))
    return FALSE;
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

static void
new_sampler (LevSession *s)
{
  LevSamplerParams sp = lev_sampler_default_params ();
  sp.temperature = s->p.temperature;
  sp.top_k = s->p.top_k;
  sp.top_p = s->p.top_p;
  sp.min_p = s->p.min_p;
  sp.repeat_penalty = s->p.repeat_penalty;
  sp.repeat_last_n = s->p.repeat_last_n;
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

/* Builds the text to encode for a prompt at the start of a conversation (first) or later in it. */
static gchar *
render_prompt (LevSession *s, const char *text, gssize len, gboolean first)
{
  gchar *user = len < 0 ? g_strdup (text) : g_strndup (text, (gsize) len);
  /* no system prompt given: the template's own default, as its Jinja source writes one (Qwen2's ChatML) */
  const char *sys = s->system_prompt ? s->system_prompt : s->default_system;
  if (sys && !sys[0])
    sys = NULL;
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

/* Encodes a text prompt: template, then BOS where the tokenizer adds one unless the template already wrote it;
 * control tokens a template wrote (</s>, <|im_end|>) become their ids. */
static int32_t *
encode_prompt (LevSession *s, const char *text, gssize len, gboolean first, size_t *n, GError **error)
{
  if (!s->tok) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "the model has no tokenizer: give token ids");
    return NULL;
  }
  gchar *r = render_prompt (s, text, len, first);
  const char *bos_piece = bos_text (s);
  gboolean add_bos = first && lev_tokenizer_adds_bos (s->tok) && !(bos_piece && g_str_has_prefix (r, bos_piece));
  int32_t *ids = s->tmpl != LEV_CHAT_NONE ? lev_tokenizer_encode_special (s->tok, r, -1, add_bos, n, error)
                                          : lev_tokenizer_encode (s->tok, r, -1, add_bos, n, error);
  g_free (r);
  return ids;
}

/* Returns the ids of a first-turn prompt. */
int32_t *
lev_session_encode_prompt (LevSession *s, const char *text, gssize len, size_t *n_ids, GError **error)
{
  return encode_prompt (s, text, len, TRUE, n_ids, error);
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

/* Hands every ready unit to func; FALSE when func asked to stop. */
static gboolean
drain_units (LevSession *s, LevSessionUnitFunc func, gpointer user_data, GString *text, GArray *ids)
{
  g_array_set_size (ids, 0);
  while (lev_output_pop (s->out, text, ids)) {
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

/* Cuts a prompt longer than the context allows (room kept for max_tokens, up to half the context) to its end, a
 * first prompt's leading BOS kept; returns the number of tokens dropped. */
static guint
truncate_prompt (const LevSession *s, int32_t *ids, size_t *n, gboolean first, int32_t bos)
{
  uint32_t n_ctx = lev_context_n_ctx (s->ctx);
  size_t limit = n_ctx - MIN (s->p.max_tokens, n_ctx / 2);
  if (limit < 1)
    limit = 1;
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
    int32_t next = lev_sampler_sample (s->sampler, logits);
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
