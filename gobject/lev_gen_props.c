/* lev_gen_props.c: the generation property table shared by Lev.Generator and levtextgen. */
#include "lev_gen_props.h"

#include <stddef.h>
#include "lev_chat.h"

/* the chat-template enum is the session's choice plus one: auto, then the engine's families in their order */
G_STATIC_ASSERT (LEV_G_CHAT_TEMPLATE_AUTO == LEV_SESSION_TEMPLATE_AUTO + 1);
G_STATIC_ASSERT (LEV_G_CHAT_TEMPLATE_NONE == LEV_CHAT_NONE + 1);
G_STATIC_ASSERT (LEV_G_CHAT_TEMPLATE_BITNET == LEV_CHAT_BITNET + 1);
/* the output modes are the session's units */
G_STATIC_ASSERT (LEV_G_OUTPUT_MODE_TOKEN == (int) LEV_UNIT_TOKEN && LEV_G_OUTPUT_MODE_WORD == (int) LEV_UNIT_WORD);
G_STATIC_ASSERT (LEV_G_OUTPUT_MODE_SENTENCE == (int) LEV_UNIT_SENTENCE);
G_STATIC_ASSERT (LEV_G_OUTPUT_MODE_RESPONSE == (int) LEV_UNIT_RESPONSE);
/* the KV cache types are the engine's */
G_STATIC_ASSERT (LEV_G_KV_TYPE_F32 == (int) LEV_KV_F32 && LEV_G_KV_TYPE_F16 == (int) LEV_KV_F16);
G_STATIC_ASSERT (LEV_G_KV_TYPE_Q8 == (int) LEV_KV_Q8);

typedef enum {
  KIND_UINT, KIND_INT, KIND_INT64, KIND_DOUBLE, KIND_BOOL, KIND_STRING, KIND_TEMPLATE, KIND_STRV, KIND_OUTPUT_MODE,
  KIND_GRAMMAR, KIND_KV_TYPE,
  KIND_MIB,                      /* a uint64 of bytes as a property in MiB */
} Kind;

typedef struct {
  const char *name, *nick, *blurb;
  Kind kind;
  double min, max;               /* numeric kinds */
  size_t offset;                 /* of the value in LevSessionParams (numeric and boolean kinds) */
  LevGenMutability mutability;
} PropInfo;

#define AT(field) offsetof (LevSessionParams, field)

/* Defaults are not here: they are lev_session_default_params's, read at the offsets; the sampler's ranges are the
 * engine's (LEV_SAMPLER_*, the ones lev_session_params_check applies to every front end). */
static const PropInfo props[LEV_GEN_N_PROPS] = {
  [LEV_GEN_PROP_MAX_TOKENS] = { "max-tokens", "Maximum tokens", "Most tokens generated per prompt",
                                KIND_UINT, 1, 1u << 24, AT (max_tokens), LEV_GEN_MUTABLE_ALWAYS },
  [LEV_GEN_PROP_N_THREADS] = { "n-threads", "Threads", "Worker threads of the engine (0 = one per CPU); taken when "
                               "the context is made", KIND_UINT, 0, 64, AT (n_threads), LEV_GEN_MUTABLE_BEFORE_START },
  [LEV_GEN_PROP_CONTEXT_LENGTH] = { "context-length", "Context length", NULL /* made from LEV_DEFAULT_CONTEXT_CAP */,
                                    KIND_UINT, 0, 1u << 20, AT (n_ctx), LEV_GEN_MUTABLE_BEFORE_START },
  [LEV_GEN_PROP_TEMPERATURE] = { "temperature", "Temperature", "Sampling temperature (0 = greedy)", KIND_DOUBLE,
                                 0, LEV_SAMPLER_TEMPERATURE_MAX, AT (temperature), LEV_GEN_MUTABLE_ALWAYS },
  [LEV_GEN_PROP_TOP_K] = { "top-k", "Top-k", "Sample from the K most likely tokens (0 = all)", KIND_INT, 0,
                           G_MAXINT, AT (top_k), LEV_GEN_MUTABLE_ALWAYS },
  [LEV_GEN_PROP_TOP_P] = { "top-p", "Top-p", "Nucleus sampling: the smallest set of tokens with this probability "
                           "mass (1 = off)", KIND_DOUBLE, LEV_SAMPLER_TOP_P_MIN, 1, AT (top_p), LEV_GEN_MUTABLE_ALWAYS },
  [LEV_GEN_PROP_MIN_P] = { "min-p", "Min-p", "Drop tokens less likely than this fraction of the best (0 = off)",
                           KIND_DOUBLE, 0, 1, AT (min_p), LEV_GEN_MUTABLE_ALWAYS },
  [LEV_GEN_PROP_REPEAT_PENALTY] = { "repeat-penalty", "Repetition penalty", "Penalty for recently seen tokens "
                                    "(1 = off)", KIND_DOUBLE, LEV_SAMPLER_REPEAT_PENALTY_MIN,
                                    LEV_SAMPLER_REPEAT_PENALTY_MAX, AT (repeat_penalty),
                                    LEV_GEN_MUTABLE_ALWAYS },
  [LEV_GEN_PROP_SEED] = { "seed", "Seed", "Random seed; the same seed and prompt give the same text (-1 = a new "
                          "random seed for every prompt)", KIND_INT64, -1, (double) G_MAXINT64, AT (seed),
                          LEV_GEN_MUTABLE_ALWAYS },
  [LEV_GEN_PROP_KEEP_HISTORY] = { "keep-history", "Keep history", "Keep the conversation in the context across "
                                  "prompts (the context is a ring buffer); otherwise every prompt starts afresh",
                                  KIND_BOOL, 0, 0, AT (keep_history), LEV_GEN_MUTABLE_ALWAYS },
  [LEV_GEN_PROP_IGNORE_EOS] = { "ignore-eos", "Ignore end of text", "Do not stop at the model's end-of-text or "
                                "end-of-turn tokens (generate max-tokens tokens)", KIND_BOOL, 0, 0,
                                AT (ignore_eos), LEV_GEN_MUTABLE_ALWAYS },
  [LEV_GEN_PROP_SYSTEM_PROMPT] = { "system-prompt", "System prompt", "Instructions placed before the first prompt "
                                   "of a conversation (a system message with a chat template; unset: the "
                                   "template's own default, \"\": none)", KIND_STRING, 0, 0, 0,
                                   LEV_GEN_MUTABLE_ALWAYS },
  [LEV_GEN_PROP_CHAT_TEMPLATE] = { "chat-template", "Chat template", "How prompts are wrapped as chat messages",
                                   KIND_TEMPLATE, 0, 0, 0, LEV_GEN_MUTABLE_ALWAYS },
  [LEV_GEN_PROP_STOP_STRINGS] = { "stop-strings", "Stop strings", "A response ends where one of these strings "
                                  "appears (the string itself is not output)",
                                  KIND_STRV, 0, 0, 0, LEV_GEN_MUTABLE_ALWAYS },
  [LEV_GEN_PROP_OUTPUT_MODE] = { "output-mode", "Output mode", "How generated text is split into units (the "
                                 "element's buffers, Lev.Generator's token signals)", KIND_OUTPUT_MODE, 0, 0,
                                 AT (unit_mode), LEV_GEN_MUTABLE_ALWAYS },
  [LEV_GEN_PROP_GRAMMAR] = { "grammar", "Grammar", "Structured output: every response is valid in this JSON Schema "
                             "(text starting with '{') or GBNF grammar (start rule root) and ends where it is "
                             "complete; compiled when set, an error when it cannot be (docs/element.md, \"Structured "
                             "output\"); unset or \"\": free text", KIND_GRAMMAR, 0, 0, 0, LEV_GEN_MUTABLE_ALWAYS },
  [LEV_GEN_PROP_MAX_PROMPT_BYTES] = { "max-prompt-bytes", "Maximum prompt bytes", "Only the last this many bytes "
                                      "of a text prompt are used (the start of a longer one is dropped, at a "
                                      "character boundary, before it is tokenized; the element never holds more of "
                                      "an unfinished line or utterance); a prompt is also cut to the tail that can "
                                      "fit the context before it is tokenized", KIND_UINT, 16, G_MAXUINT32,
                                      AT (max_prompt_bytes), LEV_GEN_MUTABLE_ALWAYS },
  [LEV_GEN_PROP_PARSE_SPECIAL] = { "parse-special", "Parse special tokens", "With a chat template, let control "
                                   "tokens written in the prompt text (<|im_end|>, </s>, ...) become control tokens; "
                                   "off: the user's text is encoded as plain text and only the template writes "
                                   "control tokens (no injected role turns)", KIND_BOOL, 0, 0, AT (parse_special),
                                   LEV_GEN_MUTABLE_ALWAYS },
  [LEV_GEN_PROP_KV_TYPE] = { "kv-type", "KV cache type", "How the context's keys and values are stored (f32, f16: "
                            "half the memory, q8: a quarter); taken when the context is made", KIND_KV_TYPE, 0, 0,
                            AT (kv_type), LEV_GEN_MUTABLE_BEFORE_START },
  [LEV_GEN_PROP_MEMORY_LIMIT] = { "memory-limit", "Memory limit", "MiB the model file, KV cache and scratch may take "
                                  "(0 = no limit): a context that would take more is refused with an error naming "
                                  "what each part needs; taken when the context is made", KIND_MIB, 0,
                                  (double) (G_MAXUINT64 >> 20), AT (memory_limit), LEV_GEN_MUTABLE_BEFORE_START },
};

static void *
field (LevSessionParams *p, const PropInfo *info)
{
  return (char *) p + info->offset;
}

/* Installs the properties. */
void
lev_gen_props_install (GObjectClass *klass, guint first_id, GParamFlags live, GParamFlags start,
                       LevGenStrvSpecFunc strv_spec)
{
  LevSessionParams d = lev_session_default_params ();
  for (guint i = 0; i < LEV_GEN_N_PROPS; i++) {
    const PropInfo *x = &props[i];
    GParamFlags f = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
                    | (x->mutability == LEV_GEN_MUTABLE_ALWAYS ? live : start);
    void *def = field (&d, x);
    GParamSpec *ps = NULL;
    const char *blurb = x->blurb;
    if (i == LEV_GEN_PROP_CONTEXT_LENGTH) {   /* the cap stated from its constant; interned: kept for the process */
      gchar *text = g_strdup_printf ("KV cache slots (0 = the model's trained context, at most %u; else at least 2); "
                                     "generation goes on past it in a ring buffer; taken when the context is made",
                                     LEV_DEFAULT_CONTEXT_CAP);
      blurb = g_intern_string (text);
      g_free (text);
    }
    switch (x->kind) {
    case KIND_UINT:
      ps = g_param_spec_uint (x->name, x->nick, blurb, (guint) x->min, (guint) x->max, *(uint32_t *) def, f);
      break;
    case KIND_INT:
      ps = g_param_spec_int (x->name, x->nick, x->blurb, (gint) x->min, (gint) x->max, *(int32_t *) def, f);
      break;
    case KIND_INT64:
      ps = g_param_spec_int64 (x->name, x->nick, x->blurb, (gint64) x->min, G_MAXINT64, *(int64_t *) def, f);
      break;
    case KIND_DOUBLE:
      ps = g_param_spec_double (x->name, x->nick, x->blurb, x->min, x->max, *(float *) def, f);
      break;
    case KIND_BOOL:
      ps = g_param_spec_boolean (x->name, x->nick, x->blurb, *(gboolean *) def, f);
      break;
    case KIND_STRING:
      ps = g_param_spec_string (x->name, x->nick, x->blurb, d.system_prompt, f);
      break;
    case KIND_GRAMMAR:
      ps = g_param_spec_string (x->name, x->nick, x->blurb, NULL, f);
      break;
    case KIND_TEMPLATE:
      ps = g_param_spec_enum (x->name, x->nick, x->blurb, LEV_G_TYPE_CHAT_TEMPLATE, d.chat_template + 1, f);
      break;
    case KIND_OUTPUT_MODE:
      ps = g_param_spec_enum (x->name, x->nick, x->blurb, LEV_G_TYPE_OUTPUT_MODE, (gint) d.unit_mode, f);
      break;
    case KIND_KV_TYPE:
      ps = g_param_spec_enum (x->name, x->nick, x->blurb, LEV_G_TYPE_KV_TYPE, (gint) d.kv_type, f);
      break;
    case KIND_MIB:
      ps = g_param_spec_uint64 (x->name, x->nick, x->blurb, 0, G_MAXUINT64 >> 20, *(uint64_t *) def >> 20, f);
      break;
    case KIND_STRV:
      ps = strv_spec ? strv_spec (x->name, x->nick, x->blurb, f)
                     : g_param_spec_boxed (x->name, x->nick, x->blurb, G_TYPE_STRV, f);
      break;
    }
    g_object_class_install_property (klass, first_id + i, ps);
  }
}

/* Returns when a property may change. */
LevGenMutability
lev_gen_prop_mutability (LevGenProp prop)
{
  return props[prop].mutability;
}

/* Fills settings with the defaults. */
void
lev_gen_settings_init (LevGenSettings *s)
{
  s->p = lev_session_default_params ();
  s->system_prompt = g_strdup (s->p.system_prompt);
  s->stop_strings = g_strdupv ((gchar **) s->p.stop_strings);
  s->p.system_prompt = s->system_prompt;
  s->p.stop_strings = (const char *const *) s->stop_strings;
  s->grammar = NULL;
  s->p.grammar = NULL;
}

/* Frees what settings own. */
void
lev_gen_settings_clear (LevGenSettings *s)
{
  g_clear_pointer (&s->system_prompt, g_free);
  g_clear_pointer (&s->stop_strings, g_strfreev);
  g_clear_pointer (&s->grammar, g_free);
  s->p.system_prompt = NULL;
  s->p.stop_strings = NULL;
  s->p.grammar = NULL;
}

/* Replaces the stop strings. */
void
lev_gen_settings_set_stop_strings (LevGenSettings *s, const char *const *strings)
{
  g_strfreev (s->stop_strings);
  s->stop_strings = g_strdupv ((gchar **) strings);
  s->p.stop_strings = (const char *const *) s->stop_strings;
}

/* Sets a property. */
void
lev_gen_settings_set (LevGenSettings *s, LevGenProp prop, const GValue *v)
{
  const PropInfo *x = &props[prop];
  void *at = field (&s->p, x);
  switch (x->kind) {
  case KIND_UINT:
    /* a context of one slot cannot be made (the range cannot leave out 1 beside 0): refused here as GObject refuses
     * a value out of range, the value unchanged, instead of failing when the context is made */
    if (prop == LEV_GEN_PROP_CONTEXT_LENGTH && g_value_get_uint (v) == 1) {
      g_warning ("context-length 1 is not supported: 0 (the model's, capped) or at least 2; the value stays %u",
                 s->p.n_ctx);
      break;
    }
    *(uint32_t *) at = g_value_get_uint (v);
    break;
  case KIND_INT: *(int32_t *) at = g_value_get_int (v); break;
  case KIND_INT64: *(int64_t *) at = g_value_get_int64 (v); break;
  case KIND_DOUBLE: *(float *) at = (float) g_value_get_double (v); break;
  case KIND_BOOL: *(gboolean *) at = g_value_get_boolean (v); break;
  case KIND_STRING:
    g_free (s->system_prompt);
    s->system_prompt = g_value_dup_string (v);
    s->p.system_prompt = s->system_prompt;
    break;
  case KIND_TEMPLATE: s->p.chat_template = g_value_get_enum (v) - 1; break;
  case KIND_STRV: lev_gen_settings_set_stop_strings (s, g_value_get_boxed (v)); break;
  case KIND_OUTPUT_MODE: s->p.unit_mode = (LevUnitMode) g_value_get_enum (v); break;
  case KIND_KV_TYPE: s->p.kv_type = (uint32_t) g_value_get_enum (v); break;
  case KIND_MIB: *(uint64_t *) at = g_value_get_uint64 (v) << 20; break;
  case KIND_GRAMMAR:
    g_free (s->grammar);
    s->grammar = g_value_dup_string (v);
    s->p.grammar = s->grammar;
    break;
  }
}

/* Reads a property. */
void
lev_gen_settings_get (const LevGenSettings *s, LevGenProp prop, GValue *v)
{
  const PropInfo *x = &props[prop];
  const void *at = (const char *) &s->p + x->offset;
  switch (x->kind) {
  case KIND_UINT: g_value_set_uint (v, *(const uint32_t *) at); break;
  case KIND_INT: g_value_set_int (v, *(const int32_t *) at); break;
  case KIND_INT64: g_value_set_int64 (v, *(const int64_t *) at); break;
  case KIND_DOUBLE: g_value_set_double (v, *(const float *) at); break;
  case KIND_BOOL: g_value_set_boolean (v, *(const gboolean *) at); break;
  case KIND_STRING: g_value_set_string (v, s->system_prompt); break;
  case KIND_TEMPLATE: g_value_set_enum (v, s->p.chat_template + 1); break;
  case KIND_STRV: g_value_set_boxed (v, s->stop_strings); break;
  case KIND_OUTPUT_MODE: g_value_set_enum (v, (gint) s->p.unit_mode); break;
  case KIND_GRAMMAR: g_value_set_string (v, s->grammar); break;
  case KIND_KV_TYPE: g_value_set_enum (v, (gint) s->p.kv_type); break;
  case KIND_MIB: g_value_set_uint64 (v, *(const uint64_t *) at >> 20); break;
  }
}
