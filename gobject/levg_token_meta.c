/* levg_token_meta.c: Lev.TokenMeta: registration, copies on buffer copies, and the accessors for bindings. */
#include "levg_token_meta.h"

#include <string.h>

/* Registers the API type (tags: none; the meta is about content, not memory or format). Not named *_get_type:
 * g-ir-scanner's dumper calls every such function, before gst_init. */
GType
lev_g_token_meta_api_type (void)
{
  static GType type;
  static const gchar *tags[] = { NULL };
  if (g_once_init_enter (&type)) {
    /* the plugin and liblev-1.0 each hold a copy of this file: whichever runs first registers */
    GType t = g_type_from_name ("LevGTokenMetaAPI");
    if (!t)
      t = gst_meta_api_type_register ("LevGTokenMetaAPI", tags);
    g_once_init_leave (&type, t);
  }
  return type;
}

static gboolean
token_meta_init (GstMeta *meta, gpointer params, GstBuffer *buffer)
{
  LevGTokenMeta *m = (LevGTokenMeta *) meta;
  m->n_tokens = m->n_top = 0;
  m->ids = m->top_ids = NULL;
  m->logprobs = m->top_logprobs = NULL;
  return TRUE;
}

static void
token_meta_free (GstMeta *meta, GstBuffer *buffer)
{
  LevGTokenMeta *m = (LevGTokenMeta *) meta;
  g_free (m->ids);
  g_free (m->logprobs);
  g_free (m->top_ids);
  g_free (m->top_logprobs);
}

/* Copies the meta to a copy of the whole buffer (a region of a buffer of tokens no longer says which it holds). */
static gboolean
token_meta_transform (GstBuffer *dest, GstMeta *meta, GstBuffer *buffer, GQuark type, gpointer data)
{
  LevGTokenMeta *m = (LevGTokenMeta *) meta;
  if (!GST_META_TRANSFORM_IS_COPY (type))
    return FALSE;
  GstMetaTransformCopy *copy = data;
  if (copy->region && (copy->offset != 0 || copy->size != gst_buffer_get_size (buffer)))
    return TRUE;
  lev_g_token_meta_add (dest, m->ids, m->logprobs, m->n_tokens, m->top_ids, m->top_logprobs, m->n_top);
  return TRUE;
}

/* Registers the implementation. */
const GstMetaInfo *
lev_g_token_meta_get_info (void)
{
  static const GstMetaInfo *info;
  if (g_once_init_enter ((GstMetaInfo **) &info)) {
    const GstMetaInfo *i = gst_meta_get_info ("LevGTokenMeta");
    if (!i)
      i = gst_meta_register (LEV_G_TOKEN_META_API_TYPE, "LevGTokenMeta", sizeof (LevGTokenMeta),
                                              token_meta_init, token_meta_free, token_meta_transform);
    g_once_init_leave ((GstMetaInfo **) &info, (GstMetaInfo *) i);
  }
  return info;
}

/* Attaches copies of the arrays to buffer. */
LevGTokenMeta *
lev_g_token_meta_add (GstBuffer *buffer, const gint32 *ids, const gfloat *logprobs, guint n_tokens,
                      const gint32 *top_ids, const gfloat *top_logprobs, guint n_top)
{
  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  LevGTokenMeta *m = (LevGTokenMeta *) gst_buffer_add_meta (buffer, lev_g_token_meta_get_info (), NULL);
  if (!m)
    return NULL;
  m->n_tokens = n_tokens;
  m->ids = g_memdup2 (ids, n_tokens * sizeof (gint32));
  m->logprobs = g_memdup2 (logprobs, n_tokens * sizeof (gfloat));
  if (top_ids && top_logprobs && n_top > 0) {
    m->n_top = n_top;
    m->top_ids = g_memdup2 (top_ids, (gsize) n_tokens * n_top * sizeof (gint32));
    m->top_logprobs = g_memdup2 (top_logprobs, (gsize) n_tokens * n_top * sizeof (gfloat));
  }
  return m;
}

/* Returns the buffer's token meta or NULL. */
LevGTokenMeta *
lev_g_buffer_get_token_meta (GstBuffer *buffer)
{
  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  return (LevGTokenMeta *) gst_buffer_get_meta (buffer, LEV_G_TOKEN_META_API_TYPE);
}

/* Returns the ids. */
const gint32 *
lev_g_token_meta_get_ids (LevGTokenMeta *meta, guint *n)
{
  *n = meta->n_tokens;
  return meta->ids;
}

/* Returns the log-probabilities. */
const gfloat *
lev_g_token_meta_get_logprobs (LevGTokenMeta *meta, guint *n)
{
  *n = meta->n_tokens;
  return meta->logprobs;
}

/* Returns the alternatives of one token. */
const gint32 *
lev_g_token_meta_get_top_ids (LevGTokenMeta *meta, guint index, guint *n)
{
  *n = index < meta->n_tokens && meta->top_ids ? meta->n_top : 0;
  return *n ? meta->top_ids + (gsize) index * meta->n_top : NULL;
}

/* Returns the log-probabilities of one token's alternatives. */
const gfloat *
lev_g_token_meta_get_top_logprobs (LevGTokenMeta *meta, guint index, guint *n)
{
  *n = index < meta->n_tokens && meta->top_logprobs ? meta->n_top : 0;
  return *n ? meta->top_logprobs + (gsize) index * meta->n_top : NULL;
}
