/* levg_token_meta.h: Lev.TokenMeta, the GstMeta on each levtextgen output buffer: the token ids it holds, their
 * log-probabilities and the most likely alternatives (GObject Introspection API). */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

/**
 * LevGTokenMeta:
 * @meta: the parent #GstMeta
 * @n_tokens: how many tokens the buffer holds
 * @ids: (array length=n_tokens): their ids
 * @logprobs: (array length=n_tokens): the log-probability of each (log-softmax of the model's logits at its
 *   position, before temperature, repetition penalty, truncation and grammar)
 * @n_top: alternatives per token (the element's logprobs property; 0: none)
 * @top_ids: (array length=n_top): the most likely ids at each position, @n_top per token, most likely first
 * @top_logprobs: (array length=n_top): their log-probabilities
 *
 * The tokens of one output buffer of levtextgen; read it with lev_g_buffer_get_token_meta() and the accessors.
 */
typedef struct {
  GstMeta meta;
  guint n_tokens;
  gint32 *ids;
  gfloat *logprobs;
  guint n_top;
  gint32 *top_ids;
  gfloat *top_logprobs;
} LevGTokenMeta;

/**
 * lev_g_token_meta_api_type:
 *
 * Returns the API type of #LevGTokenMeta (for gst_buffer_get_meta()); registered on the first call, after
 * gst_init(). (Not named *_get_type: g-ir-scanner calls those before GStreamer is initialized.)
 *
 * Returns: the #GType
 */
GType lev_g_token_meta_api_type (void);
#define LEV_G_TOKEN_META_API_TYPE (lev_g_token_meta_api_type ())

/**
 * lev_g_token_meta_get_info: (skip)
 *
 * Returns the registered implementation of #LevGTokenMeta.
 *
 * Returns: the #GstMetaInfo
 */
const GstMetaInfo *lev_g_token_meta_get_info (void);

/**
 * lev_g_token_meta_add: (skip)
 * @buffer: a writable buffer
 * @ids: (array length=n_tokens): the token ids
 * @logprobs: (array length=n_tokens): their log-probabilities
 * @n_tokens: how many
 * @top_ids: (nullable): @n_top alternatives per token
 * @top_logprobs: (nullable): their log-probabilities
 * @n_top: alternatives per token
 *
 * Attaches a copy of the arrays to @buffer as a #LevGTokenMeta.
 *
 * Returns: (transfer none): the meta
 */
LevGTokenMeta *lev_g_token_meta_add (GstBuffer *buffer, const gint32 *ids, const gfloat *logprobs, guint n_tokens,
                                     const gint32 *top_ids, const gfloat *top_logprobs, guint n_top);

/**
 * lev_g_buffer_get_token_meta:
 * @buffer: a buffer from levtextgen
 *
 * Returns the token metadata of @buffer.
 *
 * Returns: (transfer none) (nullable): the meta, or %NULL when the buffer has none
 */
LevGTokenMeta *lev_g_buffer_get_token_meta (GstBuffer *buffer);

/**
 * lev_g_token_meta_get_ids:
 * @meta: a token meta
 * @n: (out): how many
 *
 * Returns the token ids of the buffer.
 *
 * Returns: (array length=n) (transfer none): the ids
 */
const gint32 *lev_g_token_meta_get_ids (LevGTokenMeta *meta, guint *n);

/**
 * lev_g_token_meta_get_logprobs:
 * @meta: a token meta
 * @n: (out): how many
 *
 * Returns the log-probability of each token of the buffer.
 *
 * Returns: (array length=n) (transfer none): the log-probabilities
 */
const gfloat *lev_g_token_meta_get_logprobs (LevGTokenMeta *meta, guint *n);

/**
 * lev_g_token_meta_get_top_ids:
 * @meta: a token meta
 * @index: a token of the buffer (0 to n_tokens - 1)
 * @n: (out): how many (the element's logprobs property; 0 when out of range)
 *
 * Returns the most likely ids at the position of token @index, most likely first.
 *
 * Returns: (array length=n) (transfer none): the alternatives
 */
const gint32 *lev_g_token_meta_get_top_ids (LevGTokenMeta *meta, guint index, guint *n);

/**
 * lev_g_token_meta_get_top_logprobs:
 * @meta: a token meta
 * @index: a token of the buffer (0 to n_tokens - 1)
 * @n: (out): how many
 *
 * Returns the log-probabilities of lev_g_token_meta_get_top_ids()'s alternatives.
 *
 * Returns: (array length=n) (transfer none): the log-probabilities
 */
const gfloat *lev_g_token_meta_get_top_logprobs (LevGTokenMeta *meta, guint index, guint *n);

G_END_DECLS
