/* lev_convmodel.c: the converter's in-memory model: tensors, vocabulary (and its flattening into the file's arrays),
 * validation against the architecture's tensor list (lev_schema.h). */
#include "lev_convmodel.h"

#include <string.h>

G_DEFINE_QUARK (lev-convert-error-quark, lev_convert_error)


static void
conv_tensor_free (gpointer p)
{
  LevConvTensor *t = p;
  if (t == NULL)
    return;
  g_free (t->name);
  g_free (t->owned);
  g_free (t);
}

/* Returns a new empty model (no tensors, no vocabulary). */
LevConvModel *
lev_conv_model_new (void)
{
  LevConvModel *model = g_new0 (LevConvModel, 1);
  model->hp.bos_id = -1;
  model->hp.eos_id = -1;
  model->tensors = g_ptr_array_new_with_free_func (conv_tensor_free);
  /* keep holds GMappedFile* only (anything else must be owned by a tensor). */
  model->keep = g_ptr_array_new_with_free_func ((GDestroyNotify) g_mapped_file_unref);
  return model;
}

/* Frees a model, its tensors, its vocabulary and what it keeps alive. */
void
lev_conv_model_free (LevConvModel *model)
{
  if (model == NULL)
    return;
  g_ptr_array_unref (model->tensors);
  if (model->vocab != NULL)
    lev_conv_vocab_free (model->vocab);
  g_ptr_array_unref (model->keep);
  g_free (model->name);
  g_free (model->chat_template);
  g_free (model);
}

/* Adds a tensor that points at data (kept alive elsewhere, or `owned`); returns it. */
LevConvTensor *
lev_conv_model_add_tensor (LevConvModel *model, const gchar *name, LevSrcType type, guint32 n_dims,
                           const guint64 *shape, const void *data, gpointer owned)
{
  g_return_val_if_fail (model != NULL && name != NULL && shape != NULL, NULL);
  g_return_val_if_fail (n_dims >= 1 && n_dims <= LEV_MAX_DIMS, NULL);
  LevConvTensor *t = g_new0 (LevConvTensor, 1);
  t->name = g_strdup (name);
  t->n_dims = n_dims;
  for (guint32 i = 0; i < LEV_MAX_DIMS; i++)
    t->shape[i] = i < n_dims ? shape[i] : 1;
  t->type = type;
  t->data = data;
  t->owned = owned;
  t->scale = 1.0f;
  g_ptr_array_add (model->tensors, t);
  return t;
}

/* Returns the tensor called name, or NULL. */
LevConvTensor *
lev_conv_model_find (LevConvModel *model, const gchar *name)
{
  g_return_val_if_fail (model != NULL && name != NULL, NULL);
  for (guint i = 0; i < model->tensors->len; i++) {
    LevConvTensor *t = g_ptr_array_index (model->tensors, i);
    if (strcmp (t->name, name) == 0)
      return t;
  }
  return NULL;
}

/* ---- validation ---- */

/* What a tensor must hold. */
typedef enum {
  KIND_FLOAT,   /* F32, F16 or BF16 */
  KIND_TERNARY, /* LEV_SRC_TERNARY */
  KIND_LINEAR,  /* float, ternary or already encoded (a GGUF in TQ1_0 / TQ2_0 of a float architecture) */
} ExpectKind;

typedef struct {
  gchar *name;
  guint32 n_dims;
  guint64 shape[2];
  ExpectKind kind;
} Expect;

static void
expect_add (GArray *exp, ExpectKind kind, guint64 d0, guint64 d1, const gchar *fmt, ...) G_GNUC_PRINTF (5, 6);

static void
expect_add (GArray *exp, ExpectKind kind, guint64 d0, guint64 d1, const gchar *fmt, ...)
{
  va_list ap;
  Expect e = { 0 };
  va_start (ap, fmt);
  e.name = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  e.n_dims = d1 == 0 ? 1 : 2;
  e.shape[0] = d0;
  e.shape[1] = d1;
  e.kind = kind;
  g_array_append_val (exp, e);
}

static void
expect_clear (gpointer p)
{
  Expect *e = p;
  g_free (e->name);
}

static gchar *
shape_str (guint32 n_dims, const guint64 *shape)
{
  GString *s = g_string_new ("[");
  for (guint32 i = 0; i < n_dims; i++)
    g_string_append_printf (s, "%s%" G_GUINT64_FORMAT, i ? ", " : "", shape[i]);
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

static const gchar *
src_type_name (LevSrcType type)
{
  switch (type) {
  case LEV_SRC_F32: return "F32";
  case LEV_SRC_F16: return "F16";
  case LEV_SRC_BF16: return "BF16";
  case LEV_SRC_TERNARY: return "ternary";
  default: return "unknown";
  }
}

static gboolean
check_hparams (const LevHParams *hp, GError **error)
{
  const gchar *why = NULL;
  if (hp->arch < LEV_ARCH_LLAMA || hp->arch > LEV_ARCH_BITLLAMA2C)
    why = "unknown architecture";
  else if (hp->dim == 0 || hp->n_layers == 0 || hp->n_heads == 0 || hp->n_kv_heads == 0 || hp->head_dim == 0 ||
           hp->ffn_dim == 0 || hp->vocab_size == 0 || hp->max_ctx == 0)
    why = "a size is zero";
  else if (hp->n_layers > LEV_MAX_LAYERS)
    why = "too many layers";
  else if (hp->n_heads % hp->n_kv_heads != 0)
    why = "n_heads is not a multiple of n_kv_heads";
  else if (hp->head_dim % 2 != 0)
    why = "head_dim is odd";
  else if (hp->rope_style > LEV_ROPE_HALF)
    why = "unknown rope_style";
  else if (hp->rope_scaling > LEV_ROPE_SCALING_LLAMA3)
    why = "unknown rope_scaling";
  else if (hp->activation > LEV_ACT_GELU)
    why = "unknown activation";
  else if (!(hp->norm_eps >= 0.0f) || !(hp->rope_theta > 0.0f))
    why = "norm_eps or rope_theta out of range";
  else if (hp->arch == LEV_ARCH_QWEN2 && !(hp->flags & LEV_HP_QKV_BIAS))
    why = "qwen2 without LEV_HP_QKV_BIAS";
  else if (hp->arch == LEV_ARCH_BITNET && !(hp->flags & LEV_HP_SUB_NORMS))
    why = "bitnet without LEV_HP_SUB_NORMS";
  else if (hp->arch == LEV_ARCH_BITLLAMA2C && !(hp->flags & LEV_HP_BITLINEAR_NORM))
    why = "bitllama2c without LEV_HP_BITLINEAR_NORM";
  else if ((guint64) hp->n_heads * hp->head_dim > G_MAXUINT32)
    why = "n_heads * head_dim overflows";
  for (gsize i = 0; why == NULL && i < sizeof hp->reserved; i++)
    if (hp->reserved[i] != 0)
      why = "reserved bytes are not zero";
  if (why != NULL) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "invalid hyperparameters: %s", why);
    return FALSE;
  }
  return TRUE;
}

/* Checks that every tensor the architecture in model->hp needs is present with the right shape. */
gboolean
lev_conv_model_validate (LevConvModel *model, GError **error)
{
  g_return_val_if_fail (model != NULL, FALSE);
  const LevHParams *hp = &model->hp;
  if (!check_hparams (hp, error))
    return FALSE;

  /* the tensors the architecture needs (lev_schema.h); a writer writes no optional ones */
  ExpectKind lin = lev_schema_ternary_linears (hp) ? KIND_TERNARY : KIND_LINEAR;
  size_t n_schema;
  LevSchemaTensor *schema = lev_schema_tensors (hp, &n_schema);
  GArray *exp = g_array_new (FALSE, TRUE, sizeof (Expect));
  g_array_set_clear_func (exp, expect_clear);
  for (size_t i = 0; i < n_schema; i++)
    if (schema[i].required)
      expect_add (exp, schema[i].role == LEV_TENSOR_LINEAR ? lin : KIND_FLOAT, schema[i].shape[0],
                  schema[i].n_dims == 2 ? schema[i].shape[1] : 0, "%s", schema[i].name);
  g_free (schema);

  gboolean ok = TRUE;
  /* name -> tensor, refusing duplicates */
  GHashTable *byname = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; ok && i < model->tensors->len; i++) {
    LevConvTensor *t = g_ptr_array_index (model->tensors, i);
    if (g_hash_table_contains (byname, t->name)) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "tensor %s appears twice", t->name);
      ok = FALSE;
    } else if (strlen (t->name) >= LEV_TENSOR_NAME_MAX) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "tensor name %s is too long", t->name);
      ok = FALSE;
    } else if (t->data == NULL) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "tensor %s has no data", t->name);
      ok = FALSE;
    }
    g_hash_table_insert (byname, t->name, t);
  }

  for (guint i = 0; ok && i < exp->len; i++) {
    Expect *e = &g_array_index (exp, Expect, i);
    LevConvTensor *t = g_hash_table_lookup (byname, e->name);
    if (t == NULL) {
      g_autofree gchar *want = shape_str (e->n_dims, e->shape);
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_SHAPE, "tensor %s %s is missing", e->name, want);
      ok = FALSE;
      break;
    }
    g_hash_table_remove (byname, e->name);
    gboolean same = t->n_dims == e->n_dims;
    for (guint32 k = 0; same && k < e->n_dims; k++)
      same = t->shape[k] == e->shape[k];
    for (guint32 k = t->n_dims; same && k < LEV_MAX_DIMS; k++)
      same = t->shape[k] == 1;
    if (!same) {
      g_autofree gchar *want = shape_str (e->n_dims, e->shape);
      g_autofree gchar *have = shape_str (t->n_dims, t->shape);
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_SHAPE, "tensor %s has shape %s, expected %s", e->name,
                   have, want);
      ok = FALSE;
    } else if ((e->kind != KIND_LINEAR && (e->kind == KIND_TERNARY) != (t->type == LEV_SRC_TERNARY)) ||
               (t->type > LEV_SRC_TERNARY && !(e->kind == KIND_LINEAR && t->type == LEV_SRC_ENCODED))) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_SHAPE, "tensor %s is %s, expected %s", e->name,
                   src_type_name (t->type), e->kind == KIND_TERNARY ? "ternary" : "F32, F16 or BF16");
      ok = FALSE;
    } else if (t->type == LEV_SRC_TERNARY && !(t->scale > 0.0f && t->scale < G_MAXFLOAT)) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "ternary tensor %s has scale %g", e->name,
                   (double) t->scale);
      ok = FALSE;
    }
  }
  if (ok && g_hash_table_size (byname) > 0) {
    GHashTableIter it;
    gpointer key;
    g_hash_table_iter_init (&it, byname);
    g_hash_table_iter_next (&it, &key, NULL);
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_SHAPE,
                 "unexpected tensor %s for this architecture and flags (%u more)", (const gchar *) key,
                 g_hash_table_size (byname) - 1);
    ok = FALSE;
  }
  g_hash_table_unref (byname);
  g_array_unref (exp);
  return ok;
}

/* ---------------------------------------------------------------- LevConvVocab */

/* Returns a new empty vocabulary of the given kind (bos/eos/unk/pad = -1). */
LevConvVocab *
lev_conv_vocab_new (guint32 kind)
{
  LevConvVocab *v = g_new0 (LevConvVocab, 1);
  v->kind = kind;
  v->pieces = g_ptr_array_new_with_free_func (g_free);
  v->piece_lens = g_array_new (FALSE, FALSE, sizeof (guint32));
  v->scores = g_array_new (FALSE, FALSE, sizeof (float));
  v->types = g_byte_array_new ();
  /* Element = one guint32: merge r is elements 2r (left id) and 2r + 1 (right id); append both with
   * g_array_append_vals (v->merges, pair, 2). lev_conv_vocab_flatten also accepts 8-byte pair elements. */
  v->merges = g_array_new (FALSE, FALSE, sizeof (guint32));
  v->bos_id = v->eos_id = v->unk_id = v->pad_id = -1;
  return v;
}

/* Appends a piece (copied) with its score and type; returns its id. */
guint32
lev_conv_vocab_add (LevConvVocab *vocab, const gchar *piece, gsize len, float score, guint8 type)
{
  g_return_val_if_fail (vocab != NULL && (piece != NULL || len == 0), G_MAXUINT32);
  g_return_val_if_fail (len < G_MAXUINT32, G_MAXUINT32);
  gchar *copy = g_malloc (len + 1);
  if (len > 0)
    memcpy (copy, piece, len);
  copy[len] = '\0';
  guint32 id = vocab->pieces->len;
  guint32 l = (guint32) len;
  g_ptr_array_add (vocab->pieces, copy);
  g_array_append_val (vocab->piece_lens, l);
  g_array_append_val (vocab->scores, score);
  g_byte_array_append (vocab->types, &type, 1);
  return id;
}

/* Frees a vocabulary. */
void
lev_conv_vocab_free (LevConvVocab *vocab)
{
  if (vocab == NULL)
    return;
  g_ptr_array_unref (vocab->pieces);
  g_array_unref (vocab->piece_lens);
  g_array_unref (vocab->scores);
  g_byte_array_unref (vocab->types);
  g_array_unref (vocab->merges);
  g_free (vocab);
}

/* Flattens vocab (which must outlive the result) into file-format arrays. */
LevConvVocabFlat *
lev_conv_vocab_flatten (const LevConvVocab *vocab)
{
  g_return_val_if_fail (vocab != NULL, NULL);
  guint32 n = vocab->pieces->len;
  g_return_val_if_fail (vocab->piece_lens->len == n && vocab->scores->len == n && vocab->types->len == n, NULL);
  guint64 total = 0;
  for (guint32 i = 0; i < n; i++)
    total += g_array_index (vocab->piece_lens, guint32, i);
  if (total >= G_MAXUINT32) {
    g_critical ("vocabulary pieces take %" G_GUINT64_FORMAT " bytes, over the 4 GiB the format allows", total);
    return NULL;
  }
  LevConvVocabFlat *flat = g_new0 (LevConvVocabFlat, 1);
  flat->bytes = g_byte_array_sized_new ((guint) total + 1);
  flat->offsets = g_array_sized_new (FALSE, FALSE, sizeof (guint32), n + 1);
  guint32 off = 0;
  g_array_append_val (flat->offsets, off);
  for (guint32 i = 0; i < n; i++) {
    guint32 len = g_array_index (vocab->piece_lens, guint32, i);
    g_byte_array_append (flat->bytes, g_ptr_array_index (vocab->pieces, i), len);
    off += len;
    g_array_append_val (flat->offsets, off);
  }
  LevVocabView *v = &flat->view;
  v->kind = vocab->kind;
  v->flags = vocab->flags;
  v->n_tokens = n;
  v->piece_offsets = (const uint32_t *) flat->offsets->data;
  v->piece_bytes = (const char *) flat->bytes->data;
  v->scores = (const float *) vocab->scores->data;
  v->types = vocab->types->data;
  guint elt = g_array_get_element_size (vocab->merges);
  v->n_merges = (uint32_t) ((guint64) vocab->merges->len * elt / (2 * sizeof (guint32)));
  v->merges = v->n_merges > 0 ? (const uint32_t *) vocab->merges->data : NULL;
  v->pretokenizer = vocab->pretokenizer;
  v->bos_id = vocab->bos_id;
  v->eos_id = vocab->eos_id;
  v->unk_id = vocab->unk_id;
  v->pad_id = vocab->pad_id;
  return flat;
}

/* Frees a flattened vocabulary. */
void
lev_conv_vocab_flat_free (LevConvVocabFlat *flat)
{
  if (flat == NULL)
    return;
  g_byte_array_unref (flat->bytes);
  g_array_unref (flat->offsets);
  g_free (flat);
}

/* ---------------------------------------------------------------- files */

/* Reads a whole file. */
gboolean
lev_conv_read_file (const gchar *path, gchar **data, gsize *len, GError **error)
{
  GError *e = NULL;
  if (!g_file_get_contents (path, data, len, &e)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO, "cannot read %s: %s", path, e->message);
    g_error_free (e);
    return FALSE;
  }
  return TRUE;
}

/* Maps a file read-only; NULL with a LEV_CONVERT_ERROR_IO error when it cannot be read. */
GMappedFile *
lev_conv_map_file (const gchar *path, GError **error)
{
  GError *e = NULL;
  GMappedFile *mf = g_mapped_file_new (path, FALSE, &e);
  if (mf == NULL) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO, "cannot read %s: %s", path, e->message);
    g_error_free (e);
  }
  return mf;
}
