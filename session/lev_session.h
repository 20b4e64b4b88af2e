/* lev_session.h: the session layer: one conversation with a model (context, sampler, chat template and history,
 * stop rules, output units, statistics), the one generation loop of levrun, Lev.Generator and levtextgen.
 * Not thread-safe: one thread at a time. */
#pragma once

#include <glib.h>
#include "leviathan.h"
#include "lev_output.h"
#include "lev_chat.h"

G_BEGIN_DECLS

/* Chat template choice: LEV_SESSION_TEMPLATE_AUTO (from the model file) or a LevChatTemplate value. */
#define LEV_SESSION_TEMPLATE_AUTO (-1)

/* Every generation setting with its default in one place (lev_session_default_params: the sampling defaults are the
 * engine's lev_sampler_default_params, the context ones lev_context_default_params). */
typedef struct LevSessionParams {
  uint32_t n_threads;            /* 0 = all CPUs; fixed at creation */
  uint32_t n_ctx;                /* context (KV cache) length, 0 = lev_session_default_n_ctx; fixed at creation */
  uint32_t n_sink;               /* attention-sink tokens kept when the context slides; fixed at creation */
  uint32_t act_quant;            /* LevActQuantMode; fixed at creation */
  uint32_t max_tokens;           /* most tokens generated per prompt */
  float temperature, top_p, min_p, repeat_penalty;
  int32_t top_k;
  uint32_t repeat_last_n;        /* tokens the repetition penalty looks back */
  int64_t seed;                  /* -1 = a new random seed for every prompt */
  gboolean keep_history;         /* keep the conversation in the context across prompts */
  gboolean ignore_eos;           /* do not stop at end-of-text or end-of-turn (control) tokens */
  int chat_template;             /* LEV_SESSION_TEMPLATE_AUTO or a LevChatTemplate */
  const char *system_prompt;     /* NULL: the template's own default (Qwen's ChatML writes one); "": none */
  const char *const *stop_strings; /* NULL-terminated, may be NULL */
  LevUnitMode unit_mode;
  const char *grammar;           /* structured output: a JSON Schema or GBNF text (lev_grammar.h), NULL/"": none */
  gboolean token_logprobs;       /* keep each output token's log-probability (lev_session_unit_logprobs) */
  uint32_t n_top_logprobs;       /* and this many most likely alternatives of each (at most LEV_MAX_TOP_LOGPROBS) */
  uint32_t max_prompt_bytes;     /* a text prompt's last this many bytes are used (LEV_SESSION_DEFAULT_MAX_PROMPT_BYTES) */
  gboolean parse_special;        /* with a template, control-token text in the prompt becomes control tokens */
  uint32_t kv_type;              /* LevKvType of the KV cache (f32, f16, q8); fixed at creation */
  uint64_t memory_limit;         /* bytes the model and its context may take (0 = no limit): lev_session_new refuses
                                  * a session whose lev_session_memory_estimate is more; fixed at creation */
} LevSessionParams;

/* The default of max_prompt_bytes: 1 MiB (some 250,000 tokens, more than any context it is used with by default). */
#define LEV_SESSION_DEFAULT_MAX_PROMPT_BYTES (1u << 20)

/* Alternatives per token that lev_session_unit_logprobs reports at most. */
#define LEV_MAX_TOP_LOGPROBS 32u

/* The log-probability of one output token: log-softmax of the model's logits at its position (before
 * temperature, repetition penalty, top-k/p, min-p and grammar mask), and the most likely alternatives there. */
typedef struct LevTokenLogprob {
  int32_t id;
  float logprob;
  uint32_t n_top;                /* the session's n_top_logprobs */
  const int32_t *top_ids;        /* most likely first (ties: lower id first) */
  const float *top_logprobs;
} LevTokenLogprob;

/* Why a response ended. */
typedef enum {
  LEV_STOP_EOS,                  /* the model produced an end-of-text, BOS or other control (end-of-turn) token */
  LEV_STOP_MAX_TOKENS,
  LEV_STOP_STRING,               /* a stop string was generated */
  LEV_STOP_CANCELLED,            /* *cancel was set */
  LEV_STOP_CALLBACK,             /* the unit callback returned FALSE */
  LEV_STOP_GRAMMAR,              /* the grammar is complete and allows nothing more (or no token can continue it) */
} LevStopReason;

typedef struct LevSessionStats {
  guint prompt_tokens;           /* tokens evaluated for the prompt (after truncation, template included) */
  guint truncated_tokens;        /* tokens dropped from the start of a prompt longer than the context allows */
  guint64 truncated_bytes;       /* bytes dropped from the start of a text prompt before it was tokenized (longer
                                  * than max_prompt_bytes, or than the tail that can fit the context) */
  guint generated_tokens;
  gint64 prefill_us;             /* time to evaluate the prompt */
  gint64 ttft_us;                /* from the call to the first generated token */
  gint64 decode_us;              /* from the end of the prompt to the end (levrun's "generated ... t/s") */
  LevStopReason reason;
  int32_t stop_token;            /* with LEV_STOP_EOS: the token that ended the response; else -1 */
} LevSessionStats;

/* Receives one output unit: valid UTF-8 text and the ids it came from. Return FALSE to stop generating. */
typedef gboolean (*LevSessionUnitFunc) (const char *text, gsize len, const int32_t *ids, guint n_ids,
                                        gpointer user_data);

typedef struct LevSession LevSession;

/* Returns parameters with the engine's sampling defaults (max_tokens 256, template auto, token units). */
LevSessionParams lev_session_default_params (void);
/* Returns the context length a session uses when none is given: the model's max_ctx, at most
 * LEV_DEFAULT_CONTEXT_CAP. */
uint32_t lev_session_default_n_ctx (const LevModel *model);
/* Fills *est with the memory model and a session over it with params need (model file, KV cache, scratch). */
void lev_session_memory_estimate (const LevModel *model, const LevSessionParams *params, LevMemoryEstimate *est);
/* Creates a session (context and sampler) over model, which must outlive it; NULL with error set (also when the
 * estimate exceeds params->memory_limit, before anything is allocated). */
LevSession *lev_session_new (const LevModel *model, const LevSessionParams *params, GError **error);
/* Creates a session whose context runs on engine, which it keeps (its model, threads and activation mode: params'
 * n_threads and act_quant are not used): its evaluations share the engine's batched steps with the other sessions
 * on it, each with its own sampler, settings and stop rules; NULL with error set. */
LevSession *lev_session_new_on_engine (LevEngine *engine, const LevSessionParams *params, GError **error);
/* Frees a session. */
void lev_session_free (LevSession *session);
/* Replaces the parameters used by the next prompts (n_threads and n_ctx are ignored); FALSE with error set when
 * they cannot be used (for example an unknown chat template). */
gboolean lev_session_set_params (LevSession *session, const LevSessionParams *params, GError **error);
/* Checks the sampling parameters (NaN, infinity and values out of the engine's LEV_SAMPLER_* ranges refused); FALSE
 * with error naming the first bad one. lev_session_new and lev_session_set_params apply it; front ends call it to
 * refuse an option early. */
gboolean lev_session_params_check (const LevSessionParams *params, GError **error);
/* Forgets the conversation. */
void lev_session_reset (LevSession *session);
/* Returns the chat template in use (LEV_CHAT_NONE: the prompt is used as it is). */
int lev_session_template (const LevSession *session);
/* Returns the ids a text prompt becomes at the start of a conversation (template, system message, BOS), as
 * lev_session_generate evaluates them, newly allocated with their number in *n_ids; NULL with error set. */
int32_t *lev_session_encode_prompt (LevSession *session, const char *text, gssize len, size_t *n_ids,
                                    GError **error);
/* Returns the ids of a whole conversation (messages with role "system", "user" or "assistant", rendered with the
 * session's chat template and its assistant turn opened; BOS as for a text prompt), newly allocated with their
 * number in *n_ids; NULL with error set (no template in use, an unknown role, no tokenizer). */
int32_t *lev_session_encode_chat (LevSession *session, const LevChatMessage *messages, gsize n_messages,
                                  size_t *n_ids, GError **error);
/* Returns the context length in use. */
uint32_t lev_session_n_ctx (const LevSession *session);
/* Parses a template choice: "auto", "none" or a family name ("llama2", "llama3", "chatml", "zephyr", "bitnet");
 * FALSE if unknown. */
gboolean lev_session_template_from_name (const char *name, int *out);
/* Generates a response to a text prompt (text, len -1: NUL-terminated; must be valid UTF-8) or, when text is
 * NULL, to n_ids token ids taken as they are. Calls func for each output unit; checks *cancel (may be NULL)
 * before every token evaluation. Fills stats. FALSE with error set on engine errors. */
gboolean lev_session_generate (LevSession *session, const char *text, gssize len, const int32_t *ids, gsize n_ids,
                               const gint *cancel, LevSessionUnitFunc func, gpointer user_data,
                               LevSessionStats *stats, GError **error);
/* Called from a unit callback: the log-probabilities of the unit's ids (one record each, in order; valid during
 * the callback), or NULL when the parameters' token_logprobs is off. */
const LevTokenLogprob *lev_session_unit_logprobs (const LevSession *session);
/* Returns a short name for a stop reason ("eos", "max-tokens", "stop-string", "cancelled", "stopped",
 * "grammar"). */
const char *lev_stop_reason_name (LevStopReason reason);
/* Returns the bundled model's file (newly allocated): installed when that file exists, else the build tree's view of
 * it when that exists: uninstalled is a path relative to the directory of the binary that holds anchor (NULL: the
 * executable), so that no build-tree path is compiled into an installed binary; else installed. */
gchar *lev_session_find_default_model (const char *installed, const char *uninstalled, gconstpointer anchor);
/* Returns a hex digest identifying the model's vocabulary (pieces and special ids), or NULL without one. */
char *lev_session_vocab_id (const LevModel *model);

G_END_DECLS
