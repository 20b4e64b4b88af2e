/* gstlevtextgen.c: levtextgen, a GstElement that queues prompts from its sink pad and generates the responses
 * with the Leviathan engine, through the session layer (session/), in a GstTask on its src pad (docs/element.md). */

/**
 * SECTION:element-levtextgen
 * @title: levtextgen
 * @short_description: generates text with a 1-bit/ternary language model
 *
 * levtextgen takes prompts on its sink pad (UTF-8 text, one per buffer or per line with prompt-mode=line, or
 * token ids as application/x-leviathan-tokens) and pushes the generated response on its src pad: one buffer per
 * token, word, sentence or response (output-mode), as valid UTF-8 text or as token ids. Each response ends with
 * a custom downstream event "leviathan/end-of-response" and a "leviathan/stats" element message on the bus.
 * Generation runs in a task of its own and fills an output queue that the src pad's task pushes, so a syncing
 * sink never slows decoding (property latency, max-observed-delay); a flush cancels it within one token, the
 * action signal "cancel" ends only the current response, "clear-history" forgets the conversation. With
 * prompt-mode=utterance, text (a word per buffer from a transcriber) is collected until an
 * rstranscribe/final-transcript event; one follows each response. The model file is loaded
 * on NULL→READY; the generation properties (temperature, top-k, top-p, min-p, seed, chat-template, ...) may
 * change while playing and apply to the next prompt. levrun and Lev.Generator give the same text for the same
 * model, prompt, seed and settings.
 *
 * ## Example launch lines
 * |[
 * echo "Once upon a time" | gst-launch-1.0 -q fdsrc fd=0 ! levtextgen model=stories.leviathan \
 *     prompt-mode=line temperature=0 ! fdsink fd=1
 * ]| Continues each line of stdin, greedily, and writes the text as it is generated.
 * |[
 * gst-launch-1.0 -q filesrc location=prompt.txt ! levtextgen chat-template=auto system-prompt="Be brief." \
 *     output-mode=response max-tokens=200 seed=42 ! filesink location=answer.txt
 * ]| Answers the prompt in the file as a chat message with the model's template, the whole answer in one buffer.
 * |[
 * gst-launch-1.0 -m fdsrc fd=0 ! levtextgen prompt-mode=line output-mode=sentence ! fakesink
 * ]| Posts the statistics of every response (leviathan/stats) on the bus.
 * |[
 * gst-launch-1.0 fdsrc ! levtextgen prompt-mode=line 'stop-strings=<"\\n\\n","User:">' ! fdsink
 * ]| Stops each answer at a blank line or at "User:" (two backslashes: GStreamer's parser takes one).
 */
#include "gstlevtextgen.h"
#include "lev_source.h"
#include "levg_token_meta.h"
#include "gstlevengine.h"

#include <math.h>
#include <string.h>

GST_DEBUG_CATEGORY_STATIC (gst_lev_text_gen_debug);
#define GST_CAT_DEFAULT gst_lev_text_gen_debug

#ifndef LEV_DEFAULT_MODEL
#define LEV_DEFAULT_MODEL "/usr/local/share/leviathan/models/default.leviathan"
#endif

#define DEFAULT_MAX_QUEUED 8
#define DEFAULT_LATENCY 0

enum {
  PROP_0,
  PROP_MODEL,
  PROP_ADAPTER,
  PROP_PROMPT_MODE,
  PROP_MAX_QUEUED,
  PROP_LATENCY,
  PROP_MAX_OBSERVED_DELAY,
  PROP_RESPONSE_SEPARATOR,
  PROP_LOGPROBS,
  PROP_TOKEN_META,
  PROP_USE_MMAP,
  /* the generation properties: PROP_GEN + LevGenProp, installed from gobject/lev_gen_props.c's table */
  PROP_GEN,
  PROP_GEN_END = PROP_GEN + LEV_GEN_N_PROPS,
  PROP_ENGINE_ID,               /* read-only: which shared engine the element runs on (gstlevengine.c) */
};

enum {
  SIGNAL_CANCEL,
  SIGNAL_CLEAR_HISTORY,
  N_SIGNALS
};

static guint signals[N_SIGNALS];
static GParamSpec *properties[PROP_USE_MMAP + 1];

/* A queued prompt: text (valid UTF-8) or token ids, with the timing of the buffer it came from. */
typedef struct {
  gchar *text;
  GArray *ids;                  /* gint32, when the input is token ids */
  GstClockTime pts, duration;   /* valid only when the input segment is in TIME */
} GstLevTextGenPrompt;

/* An entry of the queue between the streaming thread and the generation task: a prompt or a serialized event. */
typedef struct {
  GstLevTextGenPrompt *prompt;
  GstEvent *event;
} GstLevTextGenItem;

/* An entry of the output queue between the generation task and the src pad's task: one output unit (text and
 * ids: the src pad's task makes the buffer in the negotiated format), a serialized event, or the end of a
 * response (stats). */
typedef struct {
  GstEvent *event;
  GstStructure *stats;          /* end of response: posted as leviathan/stats, pushed as end-of-response */
  gchar *text;
  gsize len;
  gint32 *ids;
  guint n_ids;
  GstClockTime pts, duration;
  guint64 offset;
  gboolean discont;
  gboolean separator;           /* the response separator: text output only */
  gfloat *logprobs;             /* n_ids, for the buffer's Lev.TokenMeta */
  gint32 *top_ids;              /* n_top per id */
  gfloat *top_logprobs;
  guint n_top;
} GstLevTextGenOut;

struct _GstLevTextGen {
  GstElement parent;
  GstPad *sinkpad, *srcpad;

  /* properties (object lock) */
  gchar *model_path;
  gchar *adapter_path;        /* adapter file mounted over the model, or NULL */
  gboolean use_mmap;            /* map the model file (else read it into memory) */
  guint max_queued;
  GstClockTime latency;         /* added to the latency query; a unit later than this gives a warning */
  GstClockTime max_observed_delay;
  gchar *response_separator;    /* NULL: "\n" in prompt-mode=line, none otherwise */
  guint logprobs;               /* alternatives per token in the buffers' Lev.TokenMeta */
  gboolean token_meta;          /* attach a Lev.TokenMeta to every buffer (else no per-token log-softmax) */
  LevGenSettings settings;      /* the generation properties */
  GstLevTextGenPromptMode prompt_mode;
  gboolean params_changed;      /* the task applies the properties before the next prompt */

  /* model: loaded NULL→READY, session made READY→PAUSED (state-change thread; the task only reads); the model and
   * its engine are shared with the other elements of the engine context's group that name the same model */
  GstContext *engine_context;   /* "leviathan.engine" (object lock), from the application, the bin or made here */
  GstLevSharedEngine *shared;
  const LevModel *model;
  gchar *vocab_id;
  LevSession *session;

  /* queue (lock) */
  GMutex lock;
  GCond item_add, item_del;
  GQueue queue;                 /* GstLevTextGenItem* */
  GQueue outq;                  /* GstLevTextGenOut*: generated, not yet pushed */
  GCond out_add;
  guint n_prompts;
  gboolean flushing;
  gboolean reset_session;       /* forget the conversation before the next prompt (after a flush) */
  GstFlowReturn srcresult;
  gint cancel;                  /* atomic: set by FLUSH_START, seen by the engine loop within one token */
  gboolean generating;          /* the task is in a response (the "cancel" action applies) */
  gboolean cancel_response;     /* the "cancel" action stopped the current response (not a flush) */

  /* streaming thread */
  gboolean in_tokens;           /* sink caps are token ids */
  gboolean in_time;             /* the input segment is in TIME */
  GString *line;                /* the unfinished line (prompt-mode=line) or utterance (prompt-mode=utterance) */
  guint64 line_dropped;         /* bytes dropped from its start (max-prompt-bytes) */
  GstClockTime utt_pts, utt_end; /* the timing of the utterance collected so far */

  /* generation task (gen_task): takes the queue, runs the engine, fills outq; never waits for downstream */
  GstTask *gen_task;
  GRecMutex gen_task_lock;
  GstSegment gen_segment;       /* the output segment as the generator will have sent it (for timestamps) */
  gboolean discont;
  GstClockTime last_end;
  guint64 n_responses;
  gboolean warned_late;         /* this response already warned that generation falls behind */

  /* src pad task: pushes outq downstream (and waits for a syncing sink) */
  GstSegment out_segment;
  gboolean sent_stream_start, sent_segment, out_tokens, sent_tags;
};

G_DEFINE_TYPE (GstLevTextGen, gst_lev_text_gen, GST_TYPE_ELEMENT)
GST_ELEMENT_REGISTER_DEFINE (levtextgen, "levtextgen", GST_RANK_NONE, GST_TYPE_LEV_TEXT_GEN);

#define SINK_CAPS "text/x-raw, format = (string) utf8; text/plain; " LEV_TOKENS_MEDIA_TYPE
#define SRC_CAPS "text/x-raw, format = (string) utf8; " LEV_TOKENS_MEDIA_TYPE

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK, GST_PAD_ALWAYS,
                                                                     GST_STATIC_CAPS (SINK_CAPS));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC, GST_PAD_ALWAYS,
                                                                    GST_STATIC_CAPS (SRC_CAPS));

/* ---- enums ---- */

static GType
gst_lev_text_gen_prompt_mode_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { GST_LEV_TEXT_GEN_PROMPT_BUFFER, "Each buffer is one prompt", "buffer" },
    { GST_LEV_TEXT_GEN_PROMPT_LINE, "Each line is one prompt (lines may span buffers)", "line" },
    { GST_LEV_TEXT_GEN_PROMPT_UTTERANCE, "Text (one word per buffer, say) is collected until an end-of-utterance "
      "event (rstranscribe/final-transcript, leviathan/end-of-utterance or leviathan/end-of-response)",
      "utterance" },
    { 0, NULL, NULL },
  };
  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GstLevTextGenPromptMode", values));
  return type;
}

/* ---- queue items ---- */

static void
prompt_free (GstLevTextGenPrompt *p)
{
  if (!p)
    return;
  g_free (p->text);
  if (p->ids)
    g_array_free (p->ids, TRUE);
  g_free (p);
}

static void
item_free (gpointer data)
{
  GstLevTextGenItem *it = data;
  prompt_free (it->prompt);
  if (it->event)
    gst_event_unref (it->event);
  g_free (it);
}

static void
out_free (gpointer data)
{
  GstLevTextGenOut *o = data;
  if (o->event)
    gst_event_unref (o->event);
  if (o->stats)
    gst_structure_free (o->stats);
  g_free (o->text);
  g_free (o->ids);
  g_free (o->logprobs);
  g_free (o->top_ids);
  g_free (o->top_logprobs);
  g_free (o);
}

/* Empties both queues; called with the lock held. */
static void
clear_queue (GstLevTextGen *self)
{
  g_queue_clear_full (&self->queue, item_free);
  g_queue_clear_full (&self->outq, out_free);
  self->n_prompts = 0;
  g_cond_broadcast (&self->item_del);
}

/* Appends o to the output queue for the src pad's task; FALSE (o freed) while flushing or after a downstream
 * error, which ends the response being generated. */
static gboolean
enqueue_out (GstLevTextGen *self, GstLevTextGenOut *o)
{
  g_mutex_lock (&self->lock);
  if (self->flushing || self->srcresult != GST_FLOW_OK) {
    g_mutex_unlock (&self->lock);
    out_free (o);
    return FALSE;
  }
  g_queue_push_tail (&self->outq, o);
  g_cond_signal (&self->out_add);
  g_mutex_unlock (&self->lock);
  return TRUE;
}

/* ---- caps ---- */

static guint
effective_n_ctx (GstLevTextGen *self)
{
  if (self->session)
    return lev_session_n_ctx (self->session);
  GST_OBJECT_LOCK (self);
  guint n = self->settings.p.n_ctx;
  GST_OBJECT_UNLOCK (self);
  if (n == 0 && self->model)
    n = lev_session_default_n_ctx (self->model);
  return n;
}

/* The token-id caps structure of this model's vocabulary. */
static GstStructure *
tokens_structure (GstLevTextGen *self)
{
  GstStructure *s = gst_structure_new_empty (LEV_TOKENS_MEDIA_TYPE);
  if (self->vocab_id)
    gst_structure_set (s, "vocab", G_TYPE_STRING, self->vocab_id, NULL);
  return s;
}

/* The name the caps and tags give the loaded model: the one its file stores, else the basename of the model
 * property's path (g_free it). */
static gchar *
model_display_name (GstLevTextGen *self)
{
  const char *name = lev_model_name (self->model);
  if (name && name[0])
    return g_strdup (name);
  GST_OBJECT_LOCK (self);
  gchar *base = g_path_get_basename (self->model_path ? self->model_path : "model");
  GST_OBJECT_UNLOCK (self);
  return base;
}

/* Caps the src pad can produce: text with the model's facts, or token ids. */
static GstCaps *
src_caps (GstLevTextGen *self)
{
  if (!self->model)
    return gst_static_pad_template_get_caps (&src_template);
  gchar *name = model_display_name (self);
  GstCaps *caps = gst_caps_new_simple ("text/x-raw", "format", G_TYPE_STRING, "utf8",
                                       "architecture", G_TYPE_STRING, lev_arch_name (lev_model_arch (self->model)),
                                       "context-length", G_TYPE_INT, (gint) effective_n_ctx (self),
                                       "vocab-size", G_TYPE_INT, (gint) lev_model_vocab_size (self->model),
                                       "model", G_TYPE_STRING, name, NULL);
  g_free (name);
  gst_caps_append_structure (caps, tokens_structure (self));
  return caps;
}

/* Caps the sink pad accepts: text, or token ids of this model's vocabulary. */
static GstCaps *
sink_caps (GstLevTextGen *self)
{
  if (!self->model)
    return gst_static_pad_template_get_caps (&sink_template);
  GstCaps *caps = gst_caps_from_string ("text/x-raw, format = (string) utf8; text/plain");
  gst_caps_append_structure (caps, tokens_structure (self));
  return caps;
}

static gboolean
answer_caps_query (GstQuery *query, GstCaps *caps)
{
  GstCaps *filter = NULL;
  gst_query_parse_caps (query, &filter);
  if (filter) {
    GstCaps *res = gst_caps_intersect_full (filter, caps, GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref (caps);
    caps = res;
  }
  gst_query_set_caps_result (query, caps);
  gst_caps_unref (caps);
  return TRUE;
}

/* Chooses src caps with downstream (text first) and sets them; called from the task. */
static gboolean
negotiate (GstLevTextGen *self)
{
  GstCaps *ours = src_caps (self);
  GstCaps *peer = gst_pad_peer_query_caps (self->srcpad, ours);
  gst_caps_unref (ours);
  if (gst_caps_is_empty (peer)) {
    gst_caps_unref (peer);
    GST_WARNING_OBJECT (self, "downstream accepts neither text nor token ids of this vocabulary");
    return FALSE;
  }
  peer = gst_caps_fixate (gst_caps_truncate (peer));
  GST_DEBUG_OBJECT (self, "output caps %" GST_PTR_FORMAT, peer);
  self->out_tokens = gst_structure_has_name (gst_caps_get_structure (peer, 0), LEV_TOKENS_MEDIA_TYPE);
  gboolean ok = gst_pad_set_caps (self->srcpad, peer);
  gst_caps_unref (peer);
  return ok;
}

/* The element's own stream tags: what made the text (encoder, model name, architecture, weight encoding). */
static GstTagList *
own_tags (GstLevTextGen *self)
{
  GstTagList *tags = gst_tag_list_new (GST_TAG_ENCODER, "levtextgen", NULL);
  if (self->model) {
    gchar *name = model_display_name (self);
    gst_tag_list_add (tags, GST_TAG_MERGE_REPLACE, LEV_TAG_MODEL, name,
                      LEV_TAG_ARCHITECTURE, lev_arch_name (lev_model_arch (self->model)), NULL);
    const char *encoding = lev_model_encoding_name (self->model);
    if (encoding)
      gst_tag_list_add (tags, GST_TAG_MERGE_REPLACE, LEV_TAG_ENCODING, encoding, NULL);
    g_free (name);
  }
  gst_tag_list_set_scope (tags, GST_TAG_SCOPE_STREAM);
  return tags;
}

/* An upstream tag event as it may go downstream: stream tags (codec, bitrate, language of the audio) describe
 * upstream's stream, not the text, and are dropped (NULL); global tags (title, artist) are kept without the
 * technical ones. Takes event. */
static GstEvent *
filter_upstream_tags (GstEvent *event)
{
  GstTagList *in;
  gst_event_parse_tag (event, &in);
  if (gst_tag_list_get_scope (in) != GST_TAG_SCOPE_GLOBAL) {
    gst_event_unref (event);
    return NULL;
  }
  static const char *const technical[] = {
    GST_TAG_CODEC, GST_TAG_AUDIO_CODEC, GST_TAG_VIDEO_CODEC, GST_TAG_SUBTITLE_CODEC, GST_TAG_CONTAINER_FORMAT,
    GST_TAG_BITRATE, GST_TAG_NOMINAL_BITRATE, GST_TAG_MINIMUM_BITRATE, GST_TAG_MAXIMUM_BITRATE,
    GST_TAG_ENCODER, GST_TAG_ENCODER_VERSION, GST_TAG_LANGUAGE_CODE, GST_TAG_LANGUAGE_NAME,
  };
  GstTagList *out = gst_tag_list_copy (in);
  gst_event_unref (event);
  for (guint i = 0; i < G_N_ELEMENTS (technical); i++)
    gst_tag_list_remove_tag (out, technical[i]);
  if (gst_tag_list_is_empty (out)) {
    gst_tag_list_unref (out);
    return NULL;
  }
  return gst_event_new_tag (out);
}

/* Pushes what must precede data (stream-start, caps, segment, our tags); called from the src pad's task. */
static GstFlowReturn
ensure_output_ready (GstLevTextGen *self, gboolean need_segment)
{
  if (!self->sent_stream_start) {
    gchar *id = gst_pad_create_stream_id (self->srcpad, GST_ELEMENT (self), NULL);
    gst_pad_push_event (self->srcpad, gst_event_new_stream_start (id));
    g_free (id);
    self->sent_stream_start = TRUE;
  }
  gboolean reconfigure = gst_pad_check_reconfigure (self->srcpad);
  if ((reconfigure || !gst_pad_has_current_caps (self->srcpad)) && !negotiate (self)) {
    gst_pad_mark_reconfigure (self->srcpad);
    return gst_pad_is_linked (self->srcpad) ? GST_FLOW_NOT_NEGOTIATED : GST_FLOW_NOT_LINKED;
  }
  if (need_segment && !self->sent_segment) {
    gst_pad_push_event (self->srcpad, gst_event_new_segment (&self->out_segment));
    self->sent_segment = TRUE;
  }
  if (need_segment && !self->sent_tags) {
    gst_pad_push_event (self->srcpad, gst_event_new_tag (own_tags (self)));
    self->sent_tags = TRUE;
  }
  return GST_FLOW_OK;
}

/* ---- properties ---- */

static gboolean
mutable_now (GstLevTextGen *self, GParamSpec *pspec, GstState max_state)
{
  GstState state = GST_STATE (self);
  if (state <= max_state)
    return TRUE;
  GST_WARNING_OBJECT (self, "property '%s' can only be changed in the %s state; ignored", pspec->name,
                      max_state == GST_STATE_NULL ? "NULL" : "NULL or READY");
  return FALSE;
}

static void
gst_lev_text_gen_set_property (GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  GstLevTextGen *self = GST_LEV_TEXT_GEN (object);
  GST_OBJECT_LOCK (self);
  switch (prop_id) {
  case PROP_MODEL:
    if (mutable_now (self, pspec, GST_STATE_NULL)) {
      g_free (self->model_path);
      self->model_path = g_value_dup_string (value);
    }
    break;
  case PROP_ADAPTER:
    if (mutable_now (self, pspec, GST_STATE_NULL)) {
      g_free (self->adapter_path);
      self->adapter_path = g_value_dup_string (value);
      if (self->adapter_path && !self->adapter_path[0])
        g_clear_pointer (&self->adapter_path, g_free);
    }
    break;
  case PROP_USE_MMAP:
    if (mutable_now (self, pspec, GST_STATE_NULL))
      self->use_mmap = g_value_get_boolean (value);
    break;
  case PROP_PROMPT_MODE: self->prompt_mode = g_value_get_enum (value); break;
  case PROP_MAX_QUEUED: self->max_queued = g_value_get_uint (value); break;
  case PROP_LATENCY: self->latency = g_value_get_uint64 (value); break;
  case PROP_LOGPROBS: self->logprobs = g_value_get_uint (value); break;
  case PROP_TOKEN_META: self->token_meta = g_value_get_boolean (value); break;
  case PROP_RESPONSE_SEPARATOR:
    g_free (self->response_separator);
    self->response_separator = g_strcompress (g_value_get_string (value) ? g_value_get_string (value) : "");
    if (!g_value_get_string (value))
      g_clear_pointer (&self->response_separator, g_free);
    break;
  case PROP_GEN + LEV_GEN_PROP_STOP_STRINGS: {
    guint n = gst_value_array_get_size (value);
    gchar **v = g_new0 (gchar *, n + 1);
    /* C escapes (backslash-n, backslash-t, octal, double backslash) are interpreted: a gst-launch line cannot
     * carry a newline otherwise (docs/element.md, "Stop strings on a gst-launch line") */
    for (guint i = 0, k = 0; i < n; i++) {
      const gchar *str = g_value_get_string (gst_value_array_get_value (value, i));
      if (str)
        v[k++] = g_strcompress (str);
    }
    lev_gen_settings_set_stop_strings (&self->settings, (const char *const *) v);
    g_strfreev ((gchar **) v);
    break;
  }
  default:
    if (prop_id < PROP_GEN || prop_id >= PROP_GEN_END)
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    else if (lev_gen_prop_mutability ((LevGenProp) (prop_id - PROP_GEN)) == LEV_GEN_MUTABLE_ALWAYS
             || mutable_now (self, pspec, GST_STATE_READY))
      lev_gen_settings_set (&self->settings, (LevGenProp) (prop_id - PROP_GEN), value);
    break;
  }
  self->params_changed = TRUE;
  GST_OBJECT_UNLOCK (self);
  if (prop_id == PROP_LATENCY)
    gst_element_post_message (GST_ELEMENT (self), gst_message_new_latency (GST_OBJECT (self)));
  if (prop_id == PROP_MAX_QUEUED) {
    g_mutex_lock (&self->lock);
    g_cond_broadcast (&self->item_del);
    g_mutex_unlock (&self->lock);
  }
}

static void
gst_lev_text_gen_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  GstLevTextGen *self = GST_LEV_TEXT_GEN (object);
  GST_OBJECT_LOCK (self);
  switch (prop_id) {
  case PROP_MODEL: g_value_set_string (value, self->model_path); break;
  case PROP_ADAPTER: g_value_set_string (value, self->adapter_path); break;
  case PROP_USE_MMAP: g_value_set_boolean (value, self->use_mmap); break;
  case PROP_GEN + LEV_GEN_PROP_STOP_STRINGS:
    for (guint i = 0; self->settings.stop_strings && self->settings.stop_strings[i]; i++) {
      GValue s = G_VALUE_INIT;
      g_value_init (&s, G_TYPE_STRING);
      g_value_set_string (&s, self->settings.stop_strings[i]);
      gst_value_array_append_and_take_value (value, &s);
    }
    break;
  case PROP_PROMPT_MODE: g_value_set_enum (value, self->prompt_mode); break;
  case PROP_MAX_QUEUED: g_value_set_uint (value, self->max_queued); break;
  case PROP_LATENCY: g_value_set_uint64 (value, self->latency); break;
  case PROP_RESPONSE_SEPARATOR: g_value_set_string (value, self->response_separator); break;
  case PROP_LOGPROBS: g_value_set_uint (value, self->logprobs); break;
  case PROP_TOKEN_META: g_value_set_boolean (value, self->token_meta); break;
  case PROP_MAX_OBSERVED_DELAY: g_value_set_uint64 (value, self->max_observed_delay); break;
  case PROP_ENGINE_ID: g_value_set_uint (value, self->shared ? gst_lev_shared_engine_id (self->shared) : 0); break;
  default:
    if (prop_id >= PROP_GEN && prop_id < PROP_GEN_END)
      lev_gen_settings_get (&self->settings, (LevGenProp) (prop_id - PROP_GEN), value);
    else
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    break;
  }
  GST_OBJECT_UNLOCK (self);
}

/* Session parameters from the properties (strings owned by the element); call with the object lock held. */
static LevSessionParams
session_params_locked (GstLevTextGen *self)
{
  LevSessionParams p = self->settings.p;
  /* every buffer's Lev.TokenMeta; without it the session skips the log-softmax over the vocabulary per token */
  p.token_logprobs = self->token_meta;
  p.n_top_logprobs = self->logprobs;
  return p;
}

/* Session parameters from the properties with copies of their strings, which the streaming and generation threads
 * keep while the properties change; takes the object lock, clears params_changed and says in *changed (when not NULL)
 * whether it was set. Free the copies with session_params_copy_free. */
static LevSessionParams
session_params_copy (GstLevTextGen *self, gboolean *changed)
{
  GST_OBJECT_LOCK (self);
  if (changed)
    *changed = self->params_changed;
  self->params_changed = FALSE;
  LevSessionParams p = session_params_locked (self);
  p.system_prompt = g_strdup (p.system_prompt);
  p.stop_strings = (const char *const *) g_strdupv ((gchar **) p.stop_strings);
  p.grammar = g_strdup (p.grammar);
  GST_OBJECT_UNLOCK (self);
  return p;
}

/* Frees the strings of a session_params_copy. */
static void
session_params_copy_free (LevSessionParams *p)
{
  g_free ((gchar *) p->grammar);
  g_free ((gchar *) p->system_prompt);
  g_strfreev ((gchar **) p->stop_strings);
}

static gboolean start_tasks (GstLevTextGen *self);
static void pause_gen_task (GstLevTextGen *self);

/* ---- the streaming thread: prompts in ---- */

/* The max-prompt-bytes property. */
static gsize
max_prompt_bytes (GstLevTextGen *self)
{
  GST_OBJECT_LOCK (self);
  gsize max = self->settings.p.max_prompt_bytes;
  GST_OBJECT_UNLOCK (self);
  return max ? max : G_MAXSIZE;
}

/* Returns the offset in data (len bytes) from which its last max bytes start, moved to a character boundary. */
static gsize
tail_start (const gchar *data, gsize len, gsize max)
{
  if (len <= max)
    return 0;
  gsize cut = len - max;
  while (cut < len && ((guchar) data[cut] & 0xc0) == 0x80)
    cut++;
  return cut;
}

/* Warns that a prompt lost its first dropped bytes to max-prompt-bytes. */
static void
warn_prompt_cut (GstLevTextGen *self, guint64 dropped)
{
  GST_ELEMENT_WARNING (self, STREAM, FAILED, ("A prompt longer than max-prompt-bytes lost its first %" G_GUINT64_FORMAT
                                              " bytes.", dropped), (NULL));
}

/* Makes a text prompt from len bytes: only the last max-prompt-bytes kept (with a warning), whitespace trimmed,
 * invalid UTF-8 replaced by U+FFFD with a warning. dropped: bytes already dropped from its start. Returns NULL for
 * an empty prompt. */
static GstLevTextGenPrompt *
text_prompt (GstLevTextGen *self, const gchar *data, gsize len, guint64 dropped, GstClockTime pts,
             GstClockTime duration)
{
  gsize cut = tail_start (data, len, max_prompt_bytes (self));
  data += cut;
  len -= cut;
  if (dropped + cut > 0)
    warn_prompt_cut (self, dropped + cut);
  gchar *text;
  if (!g_utf8_validate_len (data, len, NULL)) {
    text = g_utf8_make_valid (data, (gssize) len);
    GST_ELEMENT_WARNING (self, STREAM, DECODE, ("The prompt is not valid UTF-8; invalid bytes were replaced "
                                                "by U+FFFD."), ("prompt of %" G_GSIZE_FORMAT " bytes", len));
  } else {
    text = g_strndup (data, len);
  }
  g_strstrip (text);
  if (!text[0]) {
    g_free (text);
    return NULL;
  }
  GstLevTextGenPrompt *p = g_new0 (GstLevTextGenPrompt, 1);
  p->text = text;
  p->pts = pts;
  p->duration = duration;
  return p;
}

/* Appends len bytes to the unfinished line or utterance, keeping at most twice max-prompt-bytes of it (the start
 * of a longer one is dropped and counted in line_dropped; trimming at twice the bound moves each byte at most
 * once on average). */
static void
append_line (GstLevTextGen *self, const gchar *data, gsize len)
{
  gsize max = max_prompt_bytes (self);
  if (len > max) {
    gsize cut = tail_start (data, len, max);     /* at a character boundary */
    self->line_dropped += self->line->len + cut;
    g_string_truncate (self->line, 0);
    data += cut;
    len -= cut;
  }
  g_string_append_len (self->line, data, (gssize) len);
  if (self->line->len > max && self->line->len - max > max) {
    gsize cut = tail_start (self->line->str, self->line->len, max);
    g_string_erase (self->line, 0, (gssize) cut);
    self->line_dropped += cut;
  }
}

/* Appends a piece of an utterance (a word, say) to self->line: a space is put between two pieces unless one
 * of them has white space there or the new one starts with punctuation. */
static void
append_utterance (GstLevTextGen *self, const gchar *data, gsize len, GstClockTime pts, GstClockTime duration)
{
  if (len == 0)
    return;
  GString *u = self->line;
  gboolean tail_space = u->len == 0 || g_ascii_isspace (u->str[u->len - 1]);
  gboolean head_space = g_ascii_isspace (data[0]) || strchr (".,!?;:)'\"", data[0]) != NULL;
  if (!tail_space && !head_space)
    append_line (self, " ", 1);
  append_line (self, data, len);
  if (GST_CLOCK_TIME_IS_VALID (pts)) {
    if (!GST_CLOCK_TIME_IS_VALID (self->utt_pts))
      self->utt_pts = pts;
    self->utt_end = pts + (GST_CLOCK_TIME_IS_VALID (duration) ? duration : 0);
  }
}

/* Takes the utterance collected so far as a prompt (NULL when blank). */
static GstLevTextGenPrompt *
take_utterance (GstLevTextGen *self)
{
  GstClockTime pts = self->utt_pts, end = self->utt_end;
  GstLevTextGenPrompt *p = text_prompt (self, self->line->str, self->line->len, self->line_dropped, pts,
                                        GST_CLOCK_TIME_IS_VALID (pts) && end >= pts ? end - pts
                                                                                    : GST_CLOCK_TIME_NONE);
  g_string_truncate (self->line, 0);
  self->line_dropped = 0;
  self->utt_pts = self->utt_end = GST_CLOCK_TIME_NONE;
  return p;
}

/* TRUE for a custom event that ends an utterance (or a response upstream). */
static gboolean
is_end_of_utterance (GstEvent *event)
{
  const GstStructure *s = gst_event_get_structure (event);
  return s && (GST_EVENT_TYPE (event) == GST_EVENT_CUSTOM_DOWNSTREAM
               || GST_EVENT_TYPE (event) == GST_EVENT_CUSTOM_DOWNSTREAM_OOB
               || GST_EVENT_TYPE (event) == GST_EVENT_CUSTOM_BOTH)
      && (gst_structure_has_name (s, LEV_FINAL_TRANSCRIPT) || gst_structure_has_name (s, LEV_END_OF_UTTERANCE)
          || gst_structure_has_name (s, LEV_END_OF_RESPONSE));
}

/* Appends the prompts found in one buffer to out. */
static void
buffer_prompts (GstLevTextGen *self, GstBuffer *buf, GPtrArray *out)
{
  GstMapInfo map;
  if (!gst_buffer_map (buf, &map, GST_MAP_READ)) {
    GST_ELEMENT_WARNING (self, STREAM, FAILED, ("Could not read an input buffer."), (NULL));
    return;
  }
  GstClockTime pts = self->in_time ? GST_BUFFER_PTS (buf) : GST_CLOCK_TIME_NONE;
  GstClockTime dur = self->in_time ? GST_BUFFER_DURATION (buf) : GST_CLOCK_TIME_NONE;
  if (self->in_tokens) {
    if (map.size % 4)
      GST_ELEMENT_WARNING (self, STREAM, FORMAT, ("A token buffer of %" G_GSIZE_FORMAT " bytes is not a whole "
                                                  "number of int32 ids; the rest was ignored.", map.size), (NULL));
    if (map.size >= 4) {
      GstLevTextGenPrompt *p = g_new0 (GstLevTextGenPrompt, 1);
      p->ids = g_array_sized_new (FALSE, FALSE, sizeof (gint32), (guint) (map.size / 4));
      for (gsize i = 0; i + 4 <= map.size; i += 4) {
        gint32 v;
        memcpy (&v, map.data + i, 4);
        v = GINT32_FROM_LE (v);
        g_array_append_val (p->ids, v);
      }
      p->pts = pts;
      p->duration = dur;
      g_ptr_array_add (out, p);
    }
  } else {
    GST_OBJECT_LOCK (self);
    GstLevTextGenPromptMode mode = self->prompt_mode;
    GST_OBJECT_UNLOCK (self);
    if (mode == GST_LEV_TEXT_GEN_PROMPT_BUFFER) {
      GstLevTextGenPrompt *p = text_prompt (self, (const gchar *) map.data, map.size, 0, pts, dur);
      if (p)
        g_ptr_array_add (out, p);
    } else if (mode == GST_LEV_TEXT_GEN_PROMPT_UTTERANCE) {
      append_utterance (self, (const gchar *) map.data, map.size, pts, dur);
    } else {
      /* each complete line straight from the buffer (a line begun in an earlier buffer from self->line); the
       * unfinished end kept in self->line, bounded by max-prompt-bytes */
      const gchar *d = (const gchar *) map.data, *nl;
      gsize rest = map.size;
      while ((nl = memchr (d, '\n', rest))) {
        gsize n = (gsize) (nl - d);
        GstLevTextGenPrompt *p;
        if (self->line->len == 0 && self->line_dropped == 0) {
          p = text_prompt (self, d, n, 0, pts, dur);
        } else {
          append_line (self, d, n);
          p = text_prompt (self, self->line->str, self->line->len, self->line_dropped, pts, dur);
          g_string_truncate (self->line, 0);
          self->line_dropped = 0;
        }
        if (p)
          g_ptr_array_add (out, p);
        d += n + 1;
        rest -= n + 1;
      }
      append_line (self, d, rest);
    }
  }
  gst_buffer_unmap (buf, &map);
}

/* Queues prompts, waiting while the queue is full (backpressure); takes ownership of prompts. */
static GstFlowReturn
enqueue_prompts (GstLevTextGen *self, GPtrArray *prompts)
{
  GstFlowReturn ret = GST_FLOW_OK;
  g_mutex_lock (&self->lock);
  for (guint i = 0; i < prompts->len; i++) {
    GstLevTextGenPrompt *p = g_ptr_array_index (prompts, i);
    for (;;) {
      if (self->flushing || self->srcresult != GST_FLOW_OK)
        break;
      GST_OBJECT_LOCK (self);
      guint max = self->max_queued;
      GST_OBJECT_UNLOCK (self);
      if (self->n_prompts < max)
        break;
      GST_LOG_OBJECT (self, "queue full (%u prompts), waiting", self->n_prompts);
      g_cond_wait (&self->item_del, &self->lock);
    }
    if (self->flushing || self->srcresult != GST_FLOW_OK) {
      ret = self->flushing ? GST_FLOW_FLUSHING : self->srcresult;
      prompt_free (p);
      continue;
    }
    GstLevTextGenItem *it = g_new0 (GstLevTextGenItem, 1);
    it->prompt = p;
    g_queue_push_tail (&self->queue, it);
    self->n_prompts++;
    g_cond_signal (&self->item_add);
  }
  g_mutex_unlock (&self->lock);
  g_ptr_array_free (prompts, TRUE);
  return ret;
}

static GstFlowReturn
gst_lev_text_gen_chain (GstPad *pad, GstObject *parent, GstBuffer *buf)
{
  GstLevTextGen *self = GST_LEV_TEXT_GEN (parent);
  GPtrArray *prompts = g_ptr_array_new ();
  if (gst_buffer_get_size (buf) > 0)
    buffer_prompts (self, buf, prompts);
  gst_buffer_unref (buf);
  if (prompts->len == 0) {
    g_ptr_array_free (prompts, TRUE);
    g_mutex_lock (&self->lock);
    GstFlowReturn ret = self->flushing ? GST_FLOW_FLUSHING : self->srcresult;
    g_mutex_unlock (&self->lock);
    return ret;
  }
  return enqueue_prompts (self, prompts);
}

/* Queues a serialized event for the task; FALSE (event dropped) while flushing. */
static gboolean
enqueue_event (GstLevTextGen *self, GstEvent *event)
{
  g_mutex_lock (&self->lock);
  if (self->flushing) {
    g_mutex_unlock (&self->lock);
    gst_event_unref (event);
    return FALSE;
  }
  if (self->srcresult != GST_FLOW_OK && GST_EVENT_TYPE (event) == GST_EVENT_EOS) {
    /* the task is stopped (not-linked, error): pass EOS on directly */
    g_mutex_unlock (&self->lock);
    return gst_pad_push_event (self->srcpad, event);
  }
  GstLevTextGenItem *it = g_new0 (GstLevTextGenItem, 1);
  it->event = event;
  g_queue_push_tail (&self->queue, it);
  g_cond_signal (&self->item_add);
  g_mutex_unlock (&self->lock);
  return TRUE;
}

static gboolean
set_sink_caps (GstLevTextGen *self, GstCaps *caps)
{
  GstStructure *s = gst_caps_get_structure (caps, 0);
  if (gst_structure_has_name (s, LEV_TOKENS_MEDIA_TYPE)) {
    const gchar *vocab = gst_structure_get_string (s, "vocab");
    if (self->vocab_id && g_strcmp0 (vocab, self->vocab_id) != 0) {
      GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, ("Token ids of another vocabulary (%s) cannot be used with this "
                                                   "model (vocabulary %s).", vocab ? vocab : "unnamed",
                                                   self->vocab_id), (NULL));
      return FALSE;
    }
    self->in_tokens = TRUE;
  } else {
    self->in_tokens = FALSE;
  }
  return TRUE;
}

/* Starts a flush or a deactivation: the queues refuse items, the generation is cancelled within one token step,
 * and every thread waiting on a queue (chain function, generation task, src pad's task) wakes up to see it. */
static void
begin_flushing (GstLevTextGen *self)
{
  g_mutex_lock (&self->lock);
  self->flushing = TRUE;
  self->srcresult = GST_FLOW_FLUSHING;
  g_atomic_int_set (&self->cancel, 1);
  g_cond_broadcast (&self->item_add);
  g_cond_broadcast (&self->item_del);
  g_cond_broadcast (&self->out_add);
  g_mutex_unlock (&self->lock);
}

static gboolean
gst_lev_text_gen_sink_event (GstPad *pad, GstObject *parent, GstEvent *event)
{
  GstLevTextGen *self = GST_LEV_TEXT_GEN (parent);
  GST_LOG_OBJECT (self, "sink event %" GST_PTR_FORMAT, event);
  switch (GST_EVENT_TYPE (event)) {
  case GST_EVENT_FLUSH_START: {
    gboolean res = gst_pad_push_event (self->srcpad, event);
    begin_flushing (self);
    /* waits for both tasks' current iterations; generation ends within one token step */
    gst_pad_pause_task (self->srcpad);
    pause_gen_task (self);
    return res;
  }
  case GST_EVENT_FLUSH_STOP: {
    g_mutex_lock (&self->lock);
    clear_queue (self);
    self->flushing = FALSE;
    self->srcresult = GST_FLOW_OK;
    self->reset_session = TRUE;
    g_atomic_int_set (&self->cancel, 0);
    g_string_truncate (self->line, 0);
    self->line_dropped = 0;
    self->utt_pts = self->utt_end = GST_CLOCK_TIME_NONE;
    g_mutex_unlock (&self->lock);
    self->discont = TRUE;
    self->last_end = GST_CLOCK_TIME_NONE;
    /* FLUSH_STOP removes the segment downstream: the next data must be preceded by one again, whatever format
     * upstream's segment has (a BYTES segment is replaced by our TIME one, which is kept) */
    self->sent_segment = FALSE;
    gboolean reset_time = FALSE;
    gst_event_parse_flush_stop (event, &reset_time);
    if (reset_time)
      self->out_segment.base = self->gen_segment.base = 0;
    gboolean res = gst_pad_push_event (self->srcpad, event);
    if (GST_PAD_MODE (self->srcpad) == GST_PAD_MODE_PUSH)
      start_tasks (self);
    return res;
  }
  case GST_EVENT_CAPS: {
    GstCaps *caps;
    gst_event_parse_caps (event, &caps);
    gboolean res = set_sink_caps (self, caps);
    gst_event_unref (event);
    return res;
  }
  case GST_EVENT_SEGMENT: {
    const GstSegment *seg;
    gst_event_parse_segment (event, &seg);
    self->in_time = seg->format == GST_FORMAT_TIME;
    return enqueue_event (self, event);
  }
  case GST_EVENT_EOS:
    if (!self->in_tokens && self->line->len > 0) {
      GPtrArray *prompts = g_ptr_array_new ();
      GstLevTextGenPrompt *p = take_utterance (self);
      if (p)
        g_ptr_array_add (prompts, p);
      enqueue_prompts (self, prompts);
    }
    return enqueue_event (self, event);
  default:
    if (is_end_of_utterance (event)) {
      /* ends the utterance collected so far (prompt-mode=utterance); not forwarded in any mode: it marks
       * upstream's text, and the element sends its own after each response */
      GST_OBJECT_LOCK (self);
      gboolean utterance = self->prompt_mode == GST_LEV_TEXT_GEN_PROMPT_UTTERANCE;
      GST_OBJECT_UNLOCK (self);
      gst_event_unref (event);
      if (!utterance || self->in_tokens || self->line->len == 0)
        return TRUE;
      GPtrArray *prompts = g_ptr_array_new ();
      GstLevTextGenPrompt *p = take_utterance (self);
      if (p)
        g_ptr_array_add (prompts, p);
      return enqueue_prompts (self, prompts) == GST_FLOW_OK;
    }
    if (GST_EVENT_IS_SERIALIZED (event))
      return enqueue_event (self, event);
    return gst_pad_event_default (pad, parent, event);
  }
}

static gboolean
gst_lev_text_gen_sink_query (GstPad *pad, GstObject *parent, GstQuery *query)
{
  GstLevTextGen *self = GST_LEV_TEXT_GEN (parent);
  switch (GST_QUERY_TYPE (query)) {
  case GST_QUERY_CAPS:
    return answer_caps_query (query, sink_caps (self));
  default:
    return gst_pad_query_default (pad, parent, query);
  }
}

/* ---- the generation task: responses into the output queue ---- */

typedef struct {
  GstLevTextGen *self;
  GstClockTime base;            /* PTS of the response's start */
  gint64 t_start, t_prev;       /* monotonic µs: start of the response, end of the previous unit */
  guint64 n_ids;                /* tokens output so far in this response */
  GstClockTime latency;         /* the latency property when the response started */
  gboolean ok;                  /* FALSE once the output queue refused a unit (flush, downstream error) */
} LevGenState;

/* The running time of the pipeline clock now, or GST_CLOCK_TIME_NONE outside PLAYING or without a clock. */
static GstClockTime
running_time_now (GstLevTextGen *self)
{
  GST_OBJECT_LOCK (self);
  gboolean playing = GST_STATE (self) == GST_STATE_PLAYING;
  GST_OBJECT_UNLOCK (self);
  if (!playing)
    return GST_CLOCK_TIME_NONE;
  GstClock *clock = gst_element_get_clock (GST_ELEMENT (self));
  if (!clock)
    return GST_CLOCK_TIME_NONE;
  GstClockTime now = gst_clock_get_time (clock);
  GstClockTime bt = gst_element_get_base_time (GST_ELEMENT (self));
  gst_object_unref (clock);
  return now >= bt ? now - bt : GST_CLOCK_TIME_NONE;
}

/* Records how late a unit with this PTS is when it is produced (the running time now minus the running time
 * of its PTS): notifies max-observed-delay when it grows and warns once per response when it exceeds a
 * nonzero latency property (a syncing sink then gets the unit late). */
static void
observe_delay (GstLevTextGen *self, LevGenState *g, GstClockTime pts)
{
  GstClockTime now = running_time_now (self);
  GstClockTime rt = gst_segment_to_running_time (&self->gen_segment, GST_FORMAT_TIME, pts);
  if (!GST_CLOCK_TIME_IS_VALID (now) || !GST_CLOCK_TIME_IS_VALID (rt) || now <= rt)
    return;
  GstClockTime delay = now - rt;
  GST_OBJECT_LOCK (self);
  gboolean grew = delay > self->max_observed_delay;
  if (grew)
    self->max_observed_delay = delay;
  GST_OBJECT_UNLOCK (self);
  if (grew)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_MAX_OBSERVED_DELAY]);
  if (g->latency > 0 && delay > g->latency && !self->warned_late) {
    self->warned_late = TRUE;
    GST_ELEMENT_WARNING (self, CORE, CLOCK, ("Generation falls behind: output is %" G_GUINT64_FORMAT " ms late, "
                                             "more than the latency of %" G_GUINT64_FORMAT " ms.",
                                             delay / GST_MSECOND, g->latency / GST_MSECOND),
                         ("delay %" GST_TIME_FORMAT ", latency %" GST_TIME_FORMAT, GST_TIME_ARGS (delay),
                          GST_TIME_ARGS (g->latency)));
  }
}

/* Queues one output unit (from lev_session_generate) for the src pad's task. */
static gboolean
queue_unit (const char *text, gsize len, const int32_t *ids, guint n_ids, gpointer user_data)
{
  LevGenState *g = user_data;
  GstLevTextGen *self = g->self;
  if (len == 0 && n_ids == 0)
    return TRUE;
  gint64 now = g_get_monotonic_time ();
  GstLevTextGenOut *o = g_new0 (GstLevTextGenOut, 1);
  o->text = g_strndup (text, len);
  o->len = len;
  o->ids = g_new (gint32, MAX (n_ids, 1));
  for (guint i = 0; i < n_ids; i++)
    o->ids[i] = ids[i];
  o->n_ids = n_ids;
  const LevTokenLogprob *lp = lev_session_unit_logprobs (self->session);
  if (lp && n_ids > 0) {        /* for the buffer's Lev.TokenMeta */
    o->n_top = lp[0].n_top;
    o->logprobs = g_new (gfloat, n_ids);
    o->top_ids = g_new (gint32, (gsize) n_ids * o->n_top + 1);
    o->top_logprobs = g_new (gfloat, (gsize) n_ids * o->n_top + 1);
    for (guint i = 0; i < n_ids; i++) {
      o->logprobs[i] = lp[i].logprob;
      for (guint k = 0; k < o->n_top; k++) {
        o->top_ids[(gsize) i * o->n_top + k] = k < lp[i].n_top ? lp[i].top_ids[k] : -1;
        o->top_logprobs[(gsize) i * o->n_top + k] = k < lp[i].n_top ? lp[i].top_logprobs[k] : -INFINITY;
      }
    }
  }
  o->pts = g->base + (GstClockTime) (g->t_prev - g->t_start) * GST_USECOND;
  o->duration = (GstClockTime) (now - g->t_prev) * GST_USECOND;
  o->offset = g->n_ids;
  o->discont = self->discont;
  self->discont = FALSE;
  g->n_ids += n_ids;
  g->t_prev = now;
  self->last_end = o->pts + o->duration;
  observe_delay (self, g, o->pts);
  g->ok = enqueue_out (self, o);
  return g->ok;
}

/* The output time at which a response to p starts (see docs/element.md, "Timestamps"). */
static GstClockTime
response_base (GstLevTextGen *self, const GstLevTextGenPrompt *p)
{
  GstClockTime base = GST_CLOCK_TIME_NONE;
  if (GST_CLOCK_TIME_IS_VALID (p->pts) && self->gen_segment.format == GST_FORMAT_TIME)
    base = p->pts + (GST_CLOCK_TIME_IS_VALID (p->duration) ? p->duration : 0);
  if (!GST_CLOCK_TIME_IS_VALID (base)) {
    GstClockTime now = running_time_now (self);
    if (GST_CLOCK_TIME_IS_VALID (now))
      base = gst_segment_position_from_running_time (&self->gen_segment, GST_FORMAT_TIME, now);
  }
  if (!GST_CLOCK_TIME_IS_VALID (base))
    base = GST_CLOCK_TIME_IS_VALID (self->last_end) ? self->last_end : self->gen_segment.start;
  if (GST_CLOCK_TIME_IS_VALID (self->last_end) && base < self->last_end)
    base = self->last_end;
  return base;
}

static GstStructure *
stats_structure (const char *name, guint64 index, const LevSessionStats *st, guint batch)
{
  double prefill_s = st->prefill_us / 1e6, decode_s = st->decode_us / 1e6;
  return gst_structure_new (name,
                            "response", G_TYPE_UINT64, index,
                            "prompt-tokens", G_TYPE_UINT, st->prompt_tokens,
                            "truncated-tokens", G_TYPE_UINT, st->truncated_tokens,
                            "truncated-bytes", G_TYPE_UINT64, st->truncated_bytes,
                            "generated-tokens", G_TYPE_UINT, st->generated_tokens,
                            "time-to-first-token", G_TYPE_UINT64, (guint64) st->ttft_us * GST_USECOND,
                            "prefill-time", G_TYPE_UINT64, (guint64) st->prefill_us * GST_USECOND,
                            "decode-time", G_TYPE_UINT64, (guint64) st->decode_us * GST_USECOND,
                            "prefill-tokens-per-second", G_TYPE_DOUBLE,
                            prefill_s > 0 ? st->prompt_tokens / prefill_s : 0.0,
                            "decode-tokens-per-second", G_TYPE_DOUBLE,
                            decode_s > 0 ? st->generated_tokens / decode_s : 0.0,
                            "stop-reason", G_TYPE_STRING, lev_stop_reason_name (st->reason),
                            "kernels", G_TYPE_STRING, lev_kernels_name (),
                            /* the most streams one step of the shared engine has decoded together */
                            "batch-size", G_TYPE_UINT, batch, NULL);
}

/* Applies changed properties to the session; FALSE (error posted) when they cannot be used. */
static gboolean
apply_params (GstLevTextGen *self)
{
  gboolean changed;
  LevSessionParams p = session_params_copy (self, &changed);
  GError *err = NULL;
  gboolean ok = !changed || lev_session_set_params (self->session, &p, &err);
  if (!ok) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("%s", err->message), (NULL));
    g_error_free (err);
  }
  session_params_copy_free (&p);
  return ok;
}

/* Generates the response to one prompt into the output queue; returns FLUSHING when a flush or a downstream
 * error stopped it, ERROR when the properties cannot be used. */
static GstFlowReturn
generate (GstLevTextGen *self, GstLevTextGenPrompt *p)
{
  if (!apply_params (self))
    return GST_FLOW_ERROR;
  g_mutex_lock (&self->lock);
  gboolean reset = self->reset_session;
  self->reset_session = FALSE;
  g_mutex_unlock (&self->lock);
  if (reset)
    lev_session_reset (self->session);

  GST_OBJECT_LOCK (self);
  GstClockTime latency = self->latency;
  GST_OBJECT_UNLOCK (self);
  LevGenState g = { self, response_base (self, p), 0, 0, 0, latency, TRUE };
  g.t_start = g.t_prev = g_get_monotonic_time ();
  self->warned_late = FALSE;
  LevSessionStats st = { 0 };
  GError *err = NULL;
  GST_DEBUG_OBJECT (self, "prompt %s", p->text ? p->text : "(token ids)");
  g_mutex_lock (&self->lock);
  self->generating = TRUE;
  g_mutex_unlock (&self->lock);
  gboolean ok = lev_session_generate (self->session, p->text, -1, p->ids ? (const int32_t *) p->ids->data : NULL,
                                      p->ids ? p->ids->len : 0, &self->cancel, queue_unit, &g, &st, &err);
  g_mutex_lock (&self->lock);
  self->generating = FALSE;
  gboolean cancelled_by_action = self->cancel_response && !self->flushing;
  if (cancelled_by_action)
    g_atomic_int_set (&self->cancel, 0);
  self->cancel_response = FALSE;
  g_mutex_unlock (&self->lock);
  if (ok && st.reason == LEV_STOP_CANCELLED && cancelled_by_action) {
    /* the "cancel" action: this response ends here, the queue goes on; a half-evaluated turn is not kept */
    lev_session_reset (self->session);
  }
  if (!ok) {
    GST_ELEMENT_WARNING (self, STREAM, FAILED, ("A prompt was skipped: %s", err->message), (NULL));
    g_error_free (err);
    return GST_FLOW_OK;
  }
  if (st.truncated_tokens || st.truncated_bytes)
    GST_ELEMENT_WARNING (self, STREAM, FAILED, ("A prompt longer than the context allows lost its first %u "
                                                "tokens (and %" G_GUINT64_FORMAT " bytes before tokenizing).",
                                                st.truncated_tokens, st.truncated_bytes), (NULL));
  if (!g.ok || (st.reason == LEV_STOP_CANCELLED && !cancelled_by_action))
    return GST_FLOW_FLUSHING;
  /* the separator (text output only), then the end of the response: the src pad's task posts the statistics and
   * pushes end-of-response and final-transcript after its last unit */
  GST_OBJECT_LOCK (self);
  gchar *sep = g_strdup (self->response_separator ? self->response_separator
                         : self->prompt_mode == GST_LEV_TEXT_GEN_PROMPT_LINE ? "\n" : "");
  GST_OBJECT_UNLOCK (self);
  if (sep[0]) {
    GstLevTextGenOut *so = g_new0 (GstLevTextGenOut, 1);
    so->len = strlen (sep);
    so->text = sep;
    so->ids = g_new0 (gint32, 1);
    so->pts = GST_CLOCK_TIME_IS_VALID (self->last_end) ? self->last_end : g.base;
    so->duration = 0;
    so->offset = g.n_ids;
    so->separator = TRUE;
    if (!enqueue_out (self, so))
      return GST_FLOW_FLUSHING;
  } else {
    g_free (sep);
  }
  GstLevTextGenOut *o = g_new0 (GstLevTextGenOut, 1);
  LevEngineStats es;
  lev_engine_get_stats (gst_lev_shared_engine_engine (self->shared), &es);
  o->stats = stats_structure (LEV_END_OF_RESPONSE, self->n_responses++, &st, MAX (es.max_contexts, 1u));
  GST_DEBUG_OBJECT (self, "response %" G_GUINT64_FORMAT ": %u prompt tokens, %u generated, %s",
                    self->n_responses - 1, st.prompt_tokens, st.generated_tokens, lev_stop_reason_name (st.reason));
  return enqueue_out (self, o) ? GST_FLOW_OK : GST_FLOW_FLUSHING;
}

/* Queues a serialized event taken from the input queue after the output before it; keeps the generator's copy
 * of the output segment (a TIME segment as it is, any other replaced by a TIME segment from 0). */
static gboolean
queue_event (GstLevTextGen *self, GstEvent *event)
{
  if (GST_EVENT_TYPE (event) == GST_EVENT_SEGMENT) {
    const GstSegment *seg;
    gst_event_parse_segment (event, &seg);
    if (seg->format == GST_FORMAT_TIME)
      gst_segment_copy_into (seg, &self->gen_segment);
  }
  GstLevTextGenOut *o = g_new0 (GstLevTextGenOut, 1);
  o->event = event;
  return enqueue_out (self, o);
}

static void
gst_lev_text_gen_gen_loop (gpointer data)
{
  GstLevTextGen *self = data;
  g_mutex_lock (&self->lock);
  /* after a downstream error nothing is generated until a flush; the task never pauses itself (a pause could
   * undo a concurrent stop): whoever sets flushing pauses or stops it right after */
  while ((g_queue_is_empty (&self->queue) || self->srcresult != GST_FLOW_OK) && !self->flushing)
    g_cond_wait (&self->item_add, &self->lock);
  if (self->flushing) {
    g_mutex_unlock (&self->lock);
    return;
  }
  GstLevTextGenItem *it = g_queue_pop_head (&self->queue);
  if (it->prompt) {
    self->n_prompts--;
    g_cond_signal (&self->item_del);
  }
  g_mutex_unlock (&self->lock);

  GstFlowReturn ret = GST_FLOW_OK;
  if (it->event) {
    if (!queue_event (self, it->event))
      ret = GST_FLOW_FLUSHING;
    it->event = NULL;
  } else {
    ret = generate (self, it->prompt);
  }
  item_free (it);
  if (ret == GST_FLOW_OK)
    return;
  GST_DEBUG_OBJECT (self, "generation stopped: %s", gst_flow_get_name (ret));
  g_mutex_lock (&self->lock);
  if (!self->flushing && self->srcresult == GST_FLOW_OK)
    self->srcresult = ret;
  g_cond_broadcast (&self->item_del);
  g_cond_broadcast (&self->out_add);
  g_mutex_unlock (&self->lock);
}

/* ---- the src pad's task: the output queue downstream ---- */

/* Pushes one output unit as a buffer in the negotiated format. */
static GstFlowReturn
push_out_unit (GstLevTextGen *self, GstLevTextGenOut *o)
{
  GstFlowReturn ret = ensure_output_ready (self, TRUE);
  if (ret != GST_FLOW_OK)
    return ret;
  GstBuffer *buf;
  gint32 *meta_ids = o->logprobs ? g_memdup2 (o->ids, o->n_ids * sizeof (gint32)) : NULL;
  if (self->out_tokens) {
    if (o->n_ids == 0 || o->separator) {
      g_free (meta_ids);
      return GST_FLOW_OK;
    }
    for (guint i = 0; i < o->n_ids; i++)
      o->ids[i] = GINT32_TO_LE (o->ids[i]);
    buf = gst_buffer_new_wrapped (g_steal_pointer (&o->ids), o->n_ids * sizeof (gint32));
  } else {
    if (o->len == 0) {
      g_free (meta_ids);
      return GST_FLOW_OK;
    }
    buf = gst_buffer_new_wrapped (g_steal_pointer (&o->text), o->len);
  }
  if (meta_ids) {
    lev_g_token_meta_add (buf, meta_ids, o->logprobs, o->n_ids, o->top_ids, o->top_logprobs, o->n_top);
    g_free (meta_ids);
  }
  GST_BUFFER_PTS (buf) = o->pts;
  GST_BUFFER_DURATION (buf) = o->duration;
  GST_BUFFER_OFFSET (buf) = o->offset;
  GST_BUFFER_OFFSET_END (buf) = o->offset + o->n_ids;
  if (o->discont)
    GST_BUFFER_FLAG_SET (buf, GST_BUFFER_FLAG_DISCONT);
  return gst_pad_push (self->srcpad, buf);
}

/* Posts the statistics of a finished response, then pushes its end-of-response event. */
static GstFlowReturn
push_end_of_response (GstLevTextGen *self, GstLevTextGenOut *o)
{
  GstStructure *msg = gst_structure_copy (o->stats);
  gst_structure_set_name (msg, LEV_STATS_MESSAGE);
  /* the message first: whoever sees the event can find the statistics on the bus */
  gst_element_post_message (GST_ELEMENT (self), gst_message_new_element (GST_OBJECT (self), msg));
  GstFlowReturn ret = ensure_output_ready (self, TRUE);
  if (ret != GST_FLOW_OK)
    return ret;
  gst_pad_push_event (self->srcpad, gst_event_new_custom (GST_EVENT_CUSTOM_DOWNSTREAM, g_steal_pointer (&o->stats)));
  /* what gst-plugins-rs's transcribers send after a final result: textaccumulate and TTS drain on it */
  gst_pad_push_event (self->srcpad, gst_event_new_custom (GST_EVENT_CUSTOM_DOWNSTREAM,
                                                          gst_structure_new_empty (LEV_FINAL_TRANSCRIPT)));
  return GST_FLOW_OK;
}

/* Pushes a serialized event taken from the output queue. */
static GstFlowReturn
push_event (GstLevTextGen *self, GstEvent *event)
{
  switch (GST_EVENT_TYPE (event)) {
  case GST_EVENT_STREAM_START:
    /* a new stream downstream drops the sticky tags: ours go again before its data */
    self->sent_stream_start = TRUE;
    self->sent_tags = FALSE;
    gst_pad_push_event (self->srcpad, event);
    return GST_FLOW_OK;
  case GST_EVENT_TAG:
    event = filter_upstream_tags (event);
    if (event) {
      ensure_output_ready (self, TRUE);
      gst_pad_push_event (self->srcpad, event);
    }
    return GST_FLOW_OK;
  case GST_EVENT_SEGMENT: {
    GstFlowReturn ret = ensure_output_ready (self, FALSE);
    if (ret != GST_FLOW_OK) {
      gst_event_unref (event);
      return ret;
    }
    const GstSegment *seg;
    gst_event_parse_segment (event, &seg);
    if (seg->format == GST_FORMAT_TIME) {
      gst_segment_copy_into (seg, &self->out_segment);
    } else {
      /* byte or other segments (fdsrc): our output gets its own time line */
      gst_event_unref (event);
      if (self->sent_segment)
        return GST_FLOW_OK;
      event = gst_event_new_segment (&self->out_segment);
    }
    self->sent_segment = TRUE;
    gst_pad_push_event (self->srcpad, event);
    return GST_FLOW_OK;
  }
  case GST_EVENT_EOS:
    ensure_output_ready (self, TRUE);
    gst_pad_push_event (self->srcpad, event);
    return GST_FLOW_EOS;
  default:
    if (GST_EVENT_IS_STICKY (event) || GST_EVENT_TYPE (event) == GST_EVENT_GAP)
      ensure_output_ready (self, TRUE);
    gst_pad_push_event (self->srcpad, event);
    return GST_FLOW_OK;
  }
}

static void
gst_lev_text_gen_push_loop (GstPad *pad)
{
  GstLevTextGen *self = GST_LEV_TEXT_GEN (GST_PAD_PARENT (pad));
  g_mutex_lock (&self->lock);
  while (g_queue_is_empty (&self->outq) && !self->flushing)
    g_cond_wait (&self->out_add, &self->lock);
  if (self->flushing) {
    g_mutex_unlock (&self->lock);
    gst_pad_pause_task (pad);
    return;
  }
  GstLevTextGenOut *o = g_queue_pop_head (&self->outq);
  g_mutex_unlock (&self->lock);

  GstFlowReturn ret;
  if (o->event) {
    ret = push_event (self, g_steal_pointer (&o->event));
  } else if (o->stats) {
    ret = push_end_of_response (self, o);
  } else {
    ret = push_out_unit (self, o);
  }
  out_free (o);
  if (ret == GST_FLOW_OK)
    return;

  GST_DEBUG_OBJECT (self, "pausing task: %s", gst_flow_get_name (ret));
  g_mutex_lock (&self->lock);
  if (!self->flushing)
    self->srcresult = ret;
  /* wakes the generator (which stops) and a chain function waiting for room (which returns ret) */
  g_cond_broadcast (&self->item_add);
  g_cond_broadcast (&self->item_del);
  g_mutex_unlock (&self->lock);
  gst_pad_pause_task (pad);
  if (ret == GST_FLOW_NOT_LINKED || ret < GST_FLOW_EOS) {
    GST_ELEMENT_FLOW_ERROR (self, ret);
    gst_pad_push_event (self->srcpad, gst_event_new_eos ());
  }
}

/* Starts both tasks (pad activation, FLUSH_STOP). */
static gboolean
start_tasks (GstLevTextGen *self)
{
  if (!gst_task_start (self->gen_task))
    return FALSE;
  return gst_pad_start_task (self->srcpad, (GstTaskFunction) GST_DEBUG_FUNCPTR (gst_lev_text_gen_push_loop),
                             self->srcpad, NULL);
}

/* Pauses the generation task and waits for its current iteration (which ends within one token once flushing). */
static void
pause_gen_task (GstLevTextGen *self)
{
  gst_task_pause (self->gen_task);
  g_rec_mutex_lock (&self->gen_task_lock);
  g_rec_mutex_unlock (&self->gen_task_lock);
}

static gboolean
gst_lev_text_gen_src_activate_mode (GstPad *pad, GstObject *parent, GstPadMode mode, gboolean active)
{
  GstLevTextGen *self = GST_LEV_TEXT_GEN (parent);
  if (mode != GST_PAD_MODE_PUSH)
    return FALSE;
  if (active) {
    g_mutex_lock (&self->lock);
    self->flushing = FALSE;
    self->srcresult = GST_FLOW_OK;
    g_atomic_int_set (&self->cancel, 0);
    g_mutex_unlock (&self->lock);
    return start_tasks (self);
  }
  begin_flushing (self);
  gst_task_stop (self->gen_task);
  gboolean res = gst_pad_stop_task (pad);
  res = gst_task_join (self->gen_task) && res;
  g_mutex_lock (&self->lock);
  clear_queue (self);
  g_mutex_unlock (&self->lock);
  return res;
}

static gboolean
gst_lev_text_gen_src_query (GstPad *pad, GstObject *parent, GstQuery *query)
{
  GstLevTextGen *self = GST_LEV_TEXT_GEN (parent);
  switch (GST_QUERY_TYPE (query)) {
  case GST_QUERY_CAPS:
    return answer_caps_query (query, src_caps (self));
  case GST_QUERY_LATENCY: {
    if (!gst_pad_peer_query (self->sinkpad, query))
      return FALSE;
    gboolean live;
    GstClockTime min, max;
    gst_query_parse_latency (query, &live, &min, &max);
    GST_OBJECT_LOCK (self);
    GstClockTime ours = self->latency;
    GST_OBJECT_UNLOCK (self);
    /* the latency property is what we add; generation takes as long as it takes: no upper bound */
    gst_query_set_latency (query, live, min + ours, GST_CLOCK_TIME_NONE);
    return TRUE;
  }
  default:
    return gst_pad_query_default (pad, parent, query);
  }
}

/* ---- action signals ---- */

/* The "cancel" action: ends the response being generated (within one token); queued prompts are kept. */
static void
gst_lev_text_gen_cancel (GstLevTextGen *self)
{
  g_mutex_lock (&self->lock);
  if (self->generating && !self->flushing) {
    GST_DEBUG_OBJECT (self, "cancelling the current response");
    self->cancel_response = TRUE;
    g_atomic_int_set (&self->cancel, 1);
  }
  g_mutex_unlock (&self->lock);
}

/* The "clear-history" action: the next prompt starts a new conversation (keep-history). */
static void
gst_lev_text_gen_clear_history (GstLevTextGen *self)
{
  g_mutex_lock (&self->lock);
  self->reset_session = TRUE;
  g_mutex_unlock (&self->lock);
}

/* ---- states ---- */

/* Posts the progress of a download or conversion of the model (lev_source_resolve) as a GST_PROGRESS_TYPE_CONTINUE
 * message of the "load-model" progress. */
static void
post_source_progress (const char *stage, const char *item, guint64 done, guint64 total, gpointer user_data)
{
  GstLevTextGen *self = user_data;
  gchar *base = g_path_get_basename (item), *text;
  if (strcmp (stage, "wait") == 0)
    text = g_strdup_printf ("Waiting for another process fetching or converting %s", base);
  else if (strcmp (stage, "convert") == 0)
    text = g_strdup_printf (done < total ? "Converting %s into the model cache" : "Converted %s", base);
  else if (total > 0)
    text = g_strdup_printf ("%s %s: %.0f%% (%.1f of %.1f MB)", strcmp (stage, "download") == 0 ? "Downloading"
                            : strcmp (stage, "verify") == 0 ? "Checking" : "Reading", base, 100.0 * done / total,
                            done / 1e6, total / 1e6);
  else
    text = g_strdup_printf ("Downloading %s: %.1f MB", base, done / 1e6);
  GST_INFO_OBJECT (self, "%s", text);
  gst_element_post_message (GST_ELEMENT (self), gst_message_new_progress (GST_OBJECT (self),
                            GST_PROGRESS_TYPE_CONTINUE, "load-model", text));
  g_free (text);
  g_free (base);
}

/* Keeps a "leviathan.engine" context given by the application or the bin (a later one applies at the next
 * NULL→READY). */
static void
gst_lev_text_gen_set_context (GstElement *element, GstContext *context)
{
  GstLevTextGen *self = GST_LEV_TEXT_GEN (element);
  if (gst_context_has_context_type (context, GST_LEV_ENGINE_CONTEXT_TYPE)) {
    GST_OBJECT_LOCK (self);
    gst_context_replace (&self->engine_context, context);
    GST_OBJECT_UNLOCK (self);
  }
  GST_ELEMENT_CLASS (gst_lev_text_gen_parent_class)->set_context (element, context);
}

/* Returns the engine group of this element: of the "leviathan.engine" context it was given, else asked for with a
 * need-context message (answered by the application or by a bin that has one), else the process-wide default group,
 * whose context it then posts in have-context so that the bins give it to their other elements. */
static gchar *
engine_group (GstLevTextGen *self)
{
  GST_OBJECT_LOCK (self);
  gboolean have = self->engine_context != NULL;
  GST_OBJECT_UNLOCK (self);
  if (!have)
    gst_element_post_message (GST_ELEMENT (self),
                              gst_message_new_need_context (GST_OBJECT (self), GST_LEV_ENGINE_CONTEXT_TYPE));
  GST_OBJECT_LOCK (self);
  GstContext *context = self->engine_context ? gst_context_ref (self->engine_context) : NULL;
  GST_OBJECT_UNLOCK (self);
  if (!context) {
    context = gst_lev_engine_context_new (GST_LEV_ENGINE_DEFAULT_GROUP);
    gst_element_set_context (GST_ELEMENT (self), context);
    gst_element_post_message (GST_ELEMENT (self),
                              gst_message_new_have_context (GST_OBJECT (self), gst_context_ref (context)));
  }
  gchar *group = gst_lev_engine_context_group (context);
  GST_DEBUG_OBJECT (self, "engine group %s", group);
  gst_context_unref (context);
  return group;
}

/* Gives the shared engine back (after the session made on it was freed). */
static void
release_engine (GstLevTextGen *self)
{
  g_clear_pointer (&self->shared, gst_lev_shared_engine_release);
  self->model = NULL;
}

static gboolean
load_model (GstLevTextGen *self)
{
  GST_OBJECT_LOCK (self);
  gchar *path = g_strdup (self->model_path), *adapter = g_strdup (self->adapter_path);
  LevModelParams mp = { self->use_mmap ? 0 : LEV_MODEL_NO_MMAP, NULL };
  GST_OBJECT_UNLOCK (self);
#ifdef LEV_UNINSTALLED_MODEL
  /* used from a build tree: the default model is in the source tree until it is installed */
  if (path && strcmp (path, LEV_DEFAULT_MODEL) == 0) {
    g_free (path);
    path = lev_session_find_default_model (LEV_DEFAULT_MODEL, LEV_UNINSTALLED_MODEL, (gconstpointer) load_model);
  }
#endif
  gst_element_post_message (GST_ELEMENT (self),
                            gst_message_new_progress (GST_OBJECT (self), GST_PROGRESS_TYPE_START, "load-model",
                                                      "Loading the model"));
  GError *err = NULL;
  if (!path || !path[0]) {
    g_set_error (&err, LEV_ERROR, LEV_ERROR_IO, "no model given (property 'model')");
  } else {
    /* a GGUF, a Hugging Face directory or hf:ORG/NAME: downloaded and converted once into the model cache */
    LevSourceOptions so = { 0 };
    so.progress = post_source_progress;
    so.progress_data = self;
    gchar *file = lev_source_resolve (path, &so, &err);
    if (file) {
      GST_OBJECT_LOCK (self);
      LevSessionParams p = session_params_locked (self);
      GST_OBJECT_UNLOCK (self);
      gchar *group = engine_group (self);
      self->shared = gst_lev_shared_engine_acquire (group, file, adapter && adapter[0] ? adapter : NULL, mp.flags,
                                                    p.n_threads, p.act_quant, &err);
      g_free (group);
      g_free (file);
    }
    self->model = self->shared ? gst_lev_shared_engine_model (self->shared) : NULL;
  }
  if (!self->model) {
    gst_element_post_message (GST_ELEMENT (self),
                              gst_message_new_progress (GST_OBJECT (self), GST_PROGRESS_TYPE_ERROR, "load-model",
                                                        err->message));
    if (g_error_matches (err, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_AUTH))
      GST_ELEMENT_ERROR (self, RESOURCE, NOT_AUTHORIZED, ("Could not load the model: %s", err->message),
                         ("model '%s'", path));
    else if (g_error_matches (err, LEV_ERROR, LEV_ERROR_IO) || err->domain == LEV_SOURCE_ERROR)
      GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ, ("Could not load the model: %s", err->message),
                         ("model '%s'", path ? path : ""));
    else
      GST_ELEMENT_ERROR (self, STREAM, WRONG_TYPE, ("Could not load the model: %s", err->message),
                         ("model '%s'", path));
    g_error_free (err);
    g_free (path);
    g_free (adapter);
    return FALSE;
  }
  g_free (adapter);
  self->vocab_id = lev_session_vocab_id (self->model);
  GST_INFO_OBJECT (self, "loaded %s (%s, vocabulary %s) on shared engine %u", path,
                   lev_arch_name (lev_model_arch (self->model)), self->vocab_id ? self->vocab_id : "none",
                   gst_lev_shared_engine_id (self->shared));
  g_object_notify (G_OBJECT (self), "engine-id");
  gst_element_post_message (GST_ELEMENT (self),
                            gst_message_new_progress (GST_OBJECT (self), GST_PROGRESS_TYPE_COMPLETE, "load-model",
                                                      "Model loaded"));
  g_free (path);
  return TRUE;
}

static gboolean
start_session (GstLevTextGen *self)
{
  LevSessionParams p = session_params_copy (self, NULL);
  GError *err = NULL;
  LevMemoryEstimate est;
  lev_session_memory_estimate (self->model, &p, &est);
  GST_INFO_OBJECT (self, "memory: %" G_GUINT64_FORMAT " MiB (model file %" G_GUINT64_FORMAT " MiB, KV cache %"
                   G_GUINT64_FORMAT " MiB, scratch %" G_GUINT64_FORMAT " MiB), limit %" G_GUINT64_FORMAT " MiB",
                   est.total >> 20, est.weights >> 20, est.kv_cache >> 20, est.scratch >> 20, p.memory_limit >> 20);
  self->session = lev_session_new_on_engine (gst_lev_shared_engine_engine (self->shared), &p, &err);
  session_params_copy_free (&p);
  if (!self->session) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Could not set up generation: %s", err->message), (NULL));
    g_error_free (err);
    return FALSE;
  }
  self->sent_stream_start = self->sent_segment = self->sent_tags = FALSE;
  self->in_tokens = FALSE;
  self->in_time = FALSE;
  self->discont = TRUE;
  self->reset_session = FALSE;
  self->last_end = GST_CLOCK_TIME_NONE;
  self->n_responses = 0;
  gst_segment_init (&self->out_segment, GST_FORMAT_TIME);
  gst_segment_init (&self->gen_segment, GST_FORMAT_TIME);
  GST_OBJECT_LOCK (self);
  self->max_observed_delay = 0;
  GST_OBJECT_UNLOCK (self);
  g_string_truncate (self->line, 0);
  self->line_dropped = 0;
  self->utt_pts = self->utt_end = GST_CLOCK_TIME_NONE;
  return TRUE;
}

static GstStateChangeReturn
gst_lev_text_gen_change_state (GstElement *element, GstStateChange transition)
{
  GstLevTextGen *self = GST_LEV_TEXT_GEN (element);
  switch (transition) {
  case GST_STATE_CHANGE_NULL_TO_READY:
    if (!load_model (self))
      return GST_STATE_CHANGE_FAILURE;
    break;
  case GST_STATE_CHANGE_READY_TO_PAUSED:
    if (!start_session (self))
      return GST_STATE_CHANGE_FAILURE;
    break;
  default:
    break;
  }
  GstStateChangeReturn ret = GST_ELEMENT_CLASS (gst_lev_text_gen_parent_class)->change_state (element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE)
    return ret;
  switch (transition) {
  case GST_STATE_CHANGE_PAUSED_TO_READY:
    /* the pads are deactivated and the task stopped: nothing uses the session now */
    g_clear_pointer (&self->session, lev_session_free);
    break;
  case GST_STATE_CHANGE_READY_TO_NULL:
    g_clear_pointer (&self->session, lev_session_free);
    release_engine (self);
    g_clear_pointer (&self->vocab_id, g_free);
    break;
  default:
    break;
  }
  return ret;
}

/* ---- object ---- */

static void
gst_lev_text_gen_finalize (GObject *object)
{
  GstLevTextGen *self = GST_LEV_TEXT_GEN (object);
  g_clear_pointer (&self->session, lev_session_free);
  release_engine (self);
  g_clear_pointer (&self->engine_context, gst_context_unref);
  g_free (self->vocab_id);
  g_free (self->model_path);
  g_free (self->adapter_path);
  g_free (self->response_separator);
  lev_gen_settings_clear (&self->settings);
  g_queue_clear_full (&self->queue, item_free);
  g_queue_clear_full (&self->outq, out_free);
  gst_object_unref (self->gen_task);
  g_rec_mutex_clear (&self->gen_task_lock);
  g_string_free (self->line, TRUE);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->item_add);
  g_cond_clear (&self->item_del);
  g_cond_clear (&self->out_add);
  G_OBJECT_CLASS (gst_lev_text_gen_parent_class)->finalize (object);
}

static void
gst_lev_text_gen_init (GstLevTextGen *self)
{
  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad, GST_DEBUG_FUNCPTR (gst_lev_text_gen_chain));
  gst_pad_set_event_function (self->sinkpad, GST_DEBUG_FUNCPTR (gst_lev_text_gen_sink_event));
  gst_pad_set_query_function (self->sinkpad, GST_DEBUG_FUNCPTR (gst_lev_text_gen_sink_query));
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_set_activatemode_function (self->srcpad, GST_DEBUG_FUNCPTR (gst_lev_text_gen_src_activate_mode));
  gst_pad_set_query_function (self->srcpad, GST_DEBUG_FUNCPTR (gst_lev_text_gen_src_query));
  gst_pad_use_fixed_caps (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);

  self->model_path = g_strdup (LEV_DEFAULT_MODEL);
  self->use_mmap = TRUE;
  self->token_meta = TRUE;
  lev_gen_settings_init (&self->settings);
  self->prompt_mode = GST_LEV_TEXT_GEN_PROMPT_BUFFER;
  self->max_queued = DEFAULT_MAX_QUEUED;
  self->params_changed = TRUE;
  g_mutex_init (&self->lock);
  g_cond_init (&self->item_add);
  g_cond_init (&self->item_del);
  g_cond_init (&self->out_add);
  g_queue_init (&self->queue);
  g_queue_init (&self->outq);
  self->latency = DEFAULT_LATENCY;
  self->gen_task = gst_task_new (gst_lev_text_gen_gen_loop, self, NULL);
  g_rec_mutex_init (&self->gen_task_lock);
  gst_task_set_lock (self->gen_task, &self->gen_task_lock);
  gst_segment_init (&self->gen_segment, GST_FORMAT_TIME);
  self->srcresult = GST_FLOW_FLUSHING;
  self->flushing = TRUE;
  self->line = g_string_new (NULL);
  self->utt_pts = self->utt_end = GST_CLOCK_TIME_NONE;
  self->last_end = GST_CLOCK_TIME_NONE;
  gst_segment_init (&self->out_segment, GST_FORMAT_TIME);
}

/* The stop-strings property as a GstValueArray of strings (gst-launch syntax <"a","b">), whose C escapes the
 * element interprets. */
static GParamSpec *
stop_strings_spec (const char *name, const char *nick, const char *blurb, GParamFlags flags)
{
  gchar *full = g_strconcat (blurb, ". C escapes in the strings are read (\\n newline, \\t tab, \\\\ backslash); "
                             "on a gst-launch line write them with two backslashes: "
                             "'stop-strings=<\"\\\\n\\\\n\",\"User:\">'", NULL);
  blurb = g_intern_string (full);
  g_free (full);
  return gst_param_spec_array (name, nick, blurb, g_param_spec_string ("stop-string", "Stop string",
                               "A stop string", NULL, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS), flags);
}

static void
gst_lev_text_gen_class_init (GstLevTextGenClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  gobject_class->set_property = gst_lev_text_gen_set_property;
  gobject_class->get_property = gst_lev_text_gen_get_property;
  gobject_class->finalize = gst_lev_text_gen_finalize;
  element_class->change_state = GST_DEBUG_FUNCPTR (gst_lev_text_gen_change_state);
  element_class->set_context = GST_DEBUG_FUNCPTR (gst_lev_text_gen_set_context);

  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;
  const GParamFlags live = rw | GST_PARAM_MUTABLE_PLAYING;
  g_object_class_install_property (gobject_class, PROP_MODEL,
    g_param_spec_string ("model", "Model", "The model, loaded on NULL→READY: a .leviathan file, a GGUF file, a "
                         "Hugging Face checkpoint directory or hf:ORG/NAME[@REVISION][:FILE] (downloaded and "
                         "converted once into $XDG_CACHE_HOME/leviathan/models; progress messages meanwhile) "
                         "(changeable only in the NULL state)", LEV_DEFAULT_MODEL, rw));
  g_object_class_install_property (gobject_class, PROP_ADAPTER,
    g_param_spec_string ("adapter", "Adapter", "Adapter file (low-rank adapters written by levconvert "
                         "--adapter-out) mounted over the model when it is loaded; empty or NULL = none "
                         "(changeable only in the NULL state)", NULL, rw));
  properties[PROP_USE_MMAP] = g_param_spec_boolean ("use-mmap", "Use mmap", "Map the model file (shared between "
                                                    "processes, no load time); false reads it into memory, so that "
                                                    "another process truncating or rewriting the file cannot kill "
                                                    "the application with SIGBUS (changeable only in the NULL "
                                                    "state)", TRUE, rw);
  g_object_class_install_property (gobject_class, PROP_USE_MMAP, properties[PROP_USE_MMAP]);
  lev_gen_props_install (gobject_class, PROP_GEN, GST_PARAM_MUTABLE_PLAYING, GST_PARAM_MUTABLE_READY,
                         stop_strings_spec);
  g_object_class_install_property (gobject_class, PROP_PROMPT_MODE,
    g_param_spec_enum ("prompt-mode", "Prompt mode", "What makes a text prompt",
                       gst_lev_text_gen_prompt_mode_get_type (), GST_LEV_TEXT_GEN_PROMPT_BUFFER, live));
  g_object_class_install_property (gobject_class, PROP_MAX_QUEUED,
    g_param_spec_uint ("max-queued", "Maximum queued prompts", "Prompts waiting for generation before the sink "
                       "pad blocks upstream", 1, 65536, DEFAULT_MAX_QUEUED, live));
  properties[PROP_LATENCY] =
    g_param_spec_uint64 ("latency", "Latency", "Latency in nanoseconds that the element adds to the pipeline's "
                         "latency (latency query) so that a syncing sink gets the generated text in time; a unit "
                         "generated later than this after its timestamp posts a warning (0: none added, no "
                         "warning)", 0, G_MAXUINT64 - 1, DEFAULT_LATENCY, live);
  properties[PROP_MAX_OBSERVED_DELAY] =
    g_param_spec_uint64 ("max-observed-delay", "Maximum observed delay", "The largest delay in nanoseconds seen "
                         "in PLAYING between an output unit's timestamp (running time) and the moment it was "
                         "generated, since the last READY→PAUSED (notified when it grows)", 0, G_MAXUINT64, 0,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_property (gobject_class, PROP_LATENCY, properties[PROP_LATENCY]);
  properties[PROP_RESPONSE_SEPARATOR] =
    g_param_spec_string ("response-separator", "Response separator", "Text output after each response, before "
                         "its end-of-response event (C escapes read: \\n, \\t, ...; not in token-id output); "
                         "unset (NULL): a newline with prompt-mode=line, nothing otherwise; \"\": nothing", NULL,
                         live);
  g_object_class_install_property (gobject_class, PROP_RESPONSE_SEPARATOR, properties[PROP_RESPONSE_SEPARATOR]);
  g_object_class_install_property (gobject_class, PROP_MAX_OBSERVED_DELAY, properties[PROP_MAX_OBSERVED_DELAY]);
  g_object_class_install_property (gobject_class, PROP_LOGPROBS,
    g_param_spec_uint ("logprobs", "Alternatives per token", "How many of the most likely tokens at each position "
                       "each output buffer's Lev.TokenMeta lists with their log-probabilities (0: none; the "
                       "meta always holds the buffer's token ids and their log-probabilities; none with "
                       "token-meta=false)", 0,
                       LEV_MAX_TOP_LOGPROBS, 0, live));
  g_object_class_install_property (gobject_class, PROP_TOKEN_META,
    g_param_spec_boolean ("token-meta", "Token metadata", "Attach a Lev.TokenMeta (the tokens' ids, their "
                          "log-probabilities and the logprobs property's alternatives) to every output buffer; "
                          "false: no meta, and no log-softmax over the vocabulary for each generated token "
                          "(from the next prompt)", TRUE, live));
  g_object_class_install_property (gobject_class, PROP_ENGINE_ID,
    g_param_spec_uint ("engine-id", "Engine", "The shared engine (model and threads) the element runs on from "
                       "NULL→READY to READY→NULL, a number unique in the process (0: none): elements of one "
                       "\"leviathan.engine\" context group that name the same model, adapter and n-threads "
                       "share one, and their streams are batched together", 0, G_MAXUINT, 0,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * GstLevTextGen::cancel:
   * @levtextgen: the element
   *
   * Ends the response being generated within one token, as if it had stopped there (its end-of-response event
   * says stop-reason "cancelled"); the prompts queued behind it are answered. Does nothing between responses.
   */
  signals[SIGNAL_CANCEL] = g_signal_new_class_handler ("cancel", G_TYPE_FROM_CLASS (klass),
                                                       G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION,
                                                       G_CALLBACK (gst_lev_text_gen_cancel), NULL, NULL, NULL,
                                                       G_TYPE_NONE, 0);
  /**
   * GstLevTextGen::clear-history:
   * @levtextgen: the element
   *
   * Forgets the conversation (keep-history): the next prompt starts from an empty context.
   */
  signals[SIGNAL_CLEAR_HISTORY] = g_signal_new_class_handler ("clear-history", G_TYPE_FROM_CLASS (klass),
                                                              G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION,
                                                              G_CALLBACK (gst_lev_text_gen_clear_history), NULL,
                                                              NULL, NULL, G_TYPE_NONE, 0);

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class, "Leviathan text generator", "Filter/Text",
                                         "Generates text with a 1-bit/ternary language model: prompts in, one "
                                         "buffer per token (or word, sentence, response) out",
                                         "Leviathan developers <https://github.com/leviathan-llm/leviathan/issues>");
  gst_type_mark_as_plugin_api (gst_lev_text_gen_prompt_mode_get_type (), 0);
  gst_type_mark_as_plugin_api (LEV_G_TYPE_OUTPUT_MODE, 0);
  gst_type_mark_as_plugin_api (LEV_G_TYPE_KV_TYPE, 0);
  gst_type_mark_as_plugin_api (LEV_G_TYPE_CHAT_TEMPLATE, 0);
  gst_tag_register_static (LEV_TAG_MODEL, GST_TAG_FLAG_META, G_TYPE_STRING, "Leviathan model",
                           "name of the language model that generated the text", gst_tag_merge_use_first);
  gst_tag_register_static (LEV_TAG_ARCHITECTURE, GST_TAG_FLAG_META, G_TYPE_STRING, "Leviathan architecture",
                           "architecture of the language model that generated the text", gst_tag_merge_use_first);
  gst_tag_register_static (LEV_TAG_ENCODING, GST_TAG_FLAG_META, G_TYPE_STRING, "Leviathan weight encoding",
                           "encoding of the language model's weight matrices (t2, t1, b1, q4, q8, f16, bf16, f32)",
                           gst_tag_merge_use_first);
  GST_DEBUG_CATEGORY_INIT (gst_lev_text_gen_debug, "levtextgen", 0, "Leviathan text generator");
}
