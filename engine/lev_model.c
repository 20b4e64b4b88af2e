/* lev_model.c: maps a .leviathan file, checks every field, offset and shape, and binds tensors to layers. */
#include "lev_model.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

G_DEFINE_QUARK (lev-error-quark, lev_error)

#define FAIL(...) G_STMT_START { g_set_error (error, LEV_ERROR, LEV_ERROR_FORMAT, __VA_ARGS__); return FALSE; } G_STMT_END

const char *
lev_arch_name (uint32_t arch)
{
  switch (arch) {
    case LEV_ARCH_LLAMA: return "llama";
    case LEV_ARCH_QWEN2: return "qwen2";
    case LEV_ARCH_BITNET: return "bitnet";
    case LEV_ARCH_BITLLAMA2C: return "bitllama2c";
    default: return "unknown";
  }
}

/* Returns whether [off, off + size) lies inside a region of region_size bytes, without overflow. */
static gboolean
range_ok (uint64_t off, uint64_t size, uint64_t region_size)
{
  return off <= region_size && size <= region_size - off;
}

static gboolean
check_header (const LevFileHeader *h, uint64_t file_size, GError **error)
{
  if (memcmp (h->magic, LEV_MAGIC, 8) != 0)
    FAIL ("not a .leviathan file (bad magic)");
  if (h->version != LEV_VERSION)
    FAIL ("unsupported format version %u (this build reads version %u)", h->version, LEV_VERSION);
  if (h->header_size != sizeof (LevFileHeader))
    FAIL ("header: header_size is %u, expected %zu", h->header_size, sizeof (LevFileHeader));
  if (h->file_size != file_size)
    FAIL ("file is %" G_GUINT64_FORMAT " bytes but its header says %" G_GUINT64_FORMAT
          " (truncated or padded file)", file_size, h->file_size);
  if (h->hparams_size != sizeof (LevHParams) || h->hparams_offset % 8 != 0
      || !range_ok (h->hparams_offset, h->hparams_size, file_size) || h->hparams_offset < sizeof (LevFileHeader))
    FAIL ("header: hyperparameter section (offset %" G_GUINT64_FORMAT ", size %" G_GUINT64_FORMAT
          ") is out of place", h->hparams_offset, h->hparams_size);
  if (!range_ok (h->strings_offset, h->strings_size, file_size) || h->strings_offset < sizeof (LevFileHeader))
    FAIL ("header: string section (offset %" G_GUINT64_FORMAT ", size %" G_GUINT64_FORMAT ") is out of place",
          h->strings_offset, h->strings_size);
  if (h->tokenizer_size != 0
      && (h->tokenizer_offset % 8 != 0 || h->tokenizer_size < sizeof (LevTokenizerHeader)
          || !range_ok (h->tokenizer_offset, h->tokenizer_size, file_size)
          || h->tokenizer_offset < sizeof (LevFileHeader)))
    FAIL ("header: tokenizer section (offset %" G_GUINT64_FORMAT ", size %" G_GUINT64_FORMAT ") is out of place",
          h->tokenizer_offset, h->tokenizer_size);
  if (h->n_tensors > (1u << 20) || h->tensors_offset % 8 != 0 || h->tensors_offset < sizeof (LevFileHeader)
      || !range_ok (h->tensors_offset, h->n_tensors * sizeof (LevTensorEntry), file_size))
    FAIL ("header: tensor directory (offset %" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT " entries) is out of place",
          h->tensors_offset, h->n_tensors);
  if (h->data_offset % LEV_ALIGN != 0 || !range_ok (h->data_offset, h->data_size, file_size)
      || h->data_offset < sizeof (LevFileHeader))
    FAIL ("header: data section (offset %" G_GUINT64_FORMAT ", size %" G_GUINT64_FORMAT ") is out of place",
          h->data_offset, h->data_size);
  /* sections follow each other in this order, separated only by alignment padding */
  uint64_t expect = sizeof (LevFileHeader);
#define NEXT(field, off, size, align, what) G_STMT_START { \
    expect = (expect + (align) - 1) / (align) * (align); \
    if ((off) != expect) \
      FAIL ("header: %s starts at %" G_GUINT64_FORMAT ", expected %" G_GUINT64_FORMAT, what, (uint64_t) (off), expect); \
    expect += (size); } G_STMT_END
  NEXT (hparams, h->hparams_offset, h->hparams_size, 8, "the hyperparameter section");
  if (h->strings_size % 8 != 0 || h->tokenizer_size % 8 != 0)
    FAIL ("header: section sizes must be multiples of 8 (strings %" G_GUINT64_FORMAT ", tokenizer %"
          G_GUINT64_FORMAT ")", h->strings_size, h->tokenizer_size);
  NEXT (strings, h->strings_offset, h->strings_size, 8, "the string section");
  NEXT (tokenizer, h->tokenizer_offset, h->tokenizer_size, 8, "the tokenizer section");
  NEXT (tensors, h->tensors_offset, h->n_tensors * sizeof (LevTensorEntry), 8, "the tensor directory");
  NEXT (data, h->data_offset, h->data_size, LEV_ALIGN, "the data section");
#undef NEXT
  if (expect != file_size)
    FAIL ("header: the data section ends at %" G_GUINT64_FORMAT " but the file is %" G_GUINT64_FORMAT " bytes",
          expect, file_size);
  return TRUE;
}

static gboolean
check_hparams (const LevHParams *hp, gboolean has_weights, GError **error)
{
  if (!has_weights)
    return TRUE;
  if (hp->arch < LEV_ARCH_LLAMA || hp->arch > LEV_ARCH_BITLLAMA2C)
    FAIL ("hyperparameters: unknown architecture %u", hp->arch);
  if (hp->dim == 0 || hp->dim > (1u << 16))
    FAIL ("hyperparameters: dim %u is out of range (1..65536)", hp->dim);
  if (hp->n_layers == 0 || hp->n_layers > LEV_MAX_LAYERS)
    FAIL ("hyperparameters: n_layers %u is out of range (1..%u)", hp->n_layers, LEV_MAX_LAYERS);
  if (hp->n_heads == 0 || hp->n_heads > 1024 || hp->n_kv_heads == 0 || hp->n_kv_heads > hp->n_heads
      || hp->n_heads % hp->n_kv_heads != 0)
    FAIL ("hyperparameters: n_heads %u / n_kv_heads %u are inconsistent", hp->n_heads, hp->n_kv_heads);
  if (hp->head_dim == 0 || hp->head_dim % 2 != 0 || hp->head_dim > 1024)
    FAIL ("hyperparameters: head_dim %u must be even and at most 1024", hp->head_dim);
  if (hp->ffn_dim == 0 || hp->ffn_dim > (1u << 20))
    FAIL ("hyperparameters: ffn_dim %u is out of range", hp->ffn_dim);
  if (hp->vocab_size == 0 || hp->vocab_size > LEV_MAX_TOKENS)
    FAIL ("hyperparameters: vocab_size %u is out of range", hp->vocab_size);
  if (hp->max_ctx == 0 || hp->max_ctx > (1u << 24))
    FAIL ("hyperparameters: max_ctx %u is out of range", hp->max_ctx);
  if (!(hp->norm_eps >= 0.0f && hp->norm_eps < 1.0f))
    FAIL ("hyperparameters: norm_eps %g is out of range", hp->norm_eps);
  if (!(hp->rope_theta > 1.0f && hp->rope_theta < 1e12f))
    FAIL ("hyperparameters: rope_theta %g is out of range", hp->rope_theta);
  if (hp->rope_style > LEV_ROPE_HALF)
    FAIL ("hyperparameters: unknown rope style %u", hp->rope_style);
  if (hp->rope_scaling > LEV_ROPE_SCALING_LLAMA3)
    FAIL ("hyperparameters: unknown rope scaling %u", hp->rope_scaling);
  if (hp->rope_scaling != LEV_ROPE_SCALING_NONE && !(hp->rope_factor >= 1.0f && hp->rope_factor < 1e6f))
    FAIL ("hyperparameters: rope factor %g is out of range", hp->rope_factor);
  if (hp->rope_scaling == LEV_ROPE_SCALING_LLAMA3
      && !(hp->rope_low_freq_factor > 0.0f && hp->rope_high_freq_factor > hp->rope_low_freq_factor
           && hp->rope_orig_ctx > 0))
    FAIL ("hyperparameters: llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor and an original "
          "context");
  if (hp->activation > LEV_ACT_GELU)
    FAIL ("hyperparameters: unknown activation %u", hp->activation);
  if (hp->flags >= (LEV_HP_ROTATED << 1))
    FAIL ("hyperparameters: unknown flags 0x%x", hp->flags);
  if ((hp->flags & LEV_HP_ROTATED) ? hp->rotated_inputs == 0 || hp->rotated_inputs >= (1u << LEV_N_LINEAR_INPUTS)
                                   : hp->rotated_inputs != 0 || hp->rotation_seed != 0)
    FAIL ("hyperparameters: rotated inputs 0x%x (seed %u) do not match the rotation flag", hp->rotated_inputs,
          hp->rotation_seed);
  if (hp->bos_id >= (int32_t) hp->vocab_size || hp->eos_id >= (int32_t) hp->vocab_size || hp->bos_id < -1
      || hp->eos_id < -1)
    FAIL ("hyperparameters: bos %d / eos %d outside the vocabulary", hp->bos_id, hp->eos_id);
  return TRUE;
}

/* Returns a NUL-terminated copy of a string in the string blob, or NULL (and sets error) if out of range. */
static gboolean
copy_string (const uint8_t *blob, uint64_t blob_size, uint32_t off, uint32_t len, char **out, const char *what,
             GError **error)
{
  *out = NULL;
  if (len == 0)
    return TRUE;
  if (!range_ok (off, len, blob_size))
    FAIL ("hyperparameters: %s (offset %u, length %u) lies outside the string section", what, off, len);
  *out = g_strndup ((const char *) blob + off, len);
  return TRUE;
}

static gboolean
load_tokenizer (LevModel *m, const uint8_t *sec, uint64_t size, GError **error)
{
  LevTokenizerHeader th;
  memcpy (&th, sec, sizeof th);
  if (th.kind != LEV_TOK_SPM_BPE && th.kind != LEV_TOK_BYTE_BPE)
    FAIL ("tokenizer: unknown kind %u", th.kind);
  if (th.n_tokens == 0 || th.n_tokens > LEV_MAX_TOKENS)
    FAIL ("tokenizer: n_tokens %u is out of range", th.n_tokens);
  if (th.n_merges > (1u << 24))
    FAIL ("tokenizer: n_merges %u is out of range", th.n_merges);
  uint64_t n = th.n_tokens;
  struct { uint64_t off, size, align; const char *what; } arrays[] = {
    { th.piece_offsets_offset, (n + 1) * 4, 4, "piece offsets" },
    { th.piece_bytes_offset, th.piece_bytes_size, 1, "piece bytes" },
    { th.scores_offset, n * 4, 4, "scores" },
    { th.types_offset, n, 1, "token types" },
    { th.merges_offset, (uint64_t) th.n_merges * 8, 4, "merges" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (arrays); i++)
    if (arrays[i].off % arrays[i].align != 0 || arrays[i].off < sizeof th
        || !range_ok (arrays[i].off, arrays[i].size, size))
      FAIL ("tokenizer: %s (offset %" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT " bytes) lie outside the "
            "tokenizer section of %" G_GUINT64_FORMAT " bytes", arrays[i].what, arrays[i].off, arrays[i].size, size);
  LevVocabView *v = &m->vocab;
  v->kind = th.kind;
  v->flags = th.flags;
  v->n_tokens = th.n_tokens;
  v->piece_offsets = (const uint32_t *) (sec + th.piece_offsets_offset);
  v->piece_bytes = (const char *) (sec + th.piece_bytes_offset);
  v->scores = (const float *) (sec + th.scores_offset);
  v->types = sec + th.types_offset;
  v->n_merges = th.n_merges;
  v->merges = (const uint32_t *) (sec + th.merges_offset);
  v->pretokenizer = th.pretokenizer;
  v->bos_id = th.bos_id;
  v->eos_id = th.eos_id;
  v->unk_id = th.unk_id;
  v->pad_id = th.pad_id;
  if (v->piece_offsets[0] != 0 || v->piece_offsets[n] != th.piece_bytes_size)
    FAIL ("tokenizer: piece offsets do not span the piece bytes");
  GError *tok_error = NULL;
  m->tok = lev_tokenizer_new (v, &tok_error);
  if (!m->tok) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_FORMAT, "tokenizer: %s", tok_error->message);
    g_error_free (tok_error);
    return FALSE;
  }
  return TRUE;
}

/* Finds a tensor by name in the directory (NULL when absent). */
static const LevTensorEntry *
find_tensor (const LevTensorEntry *dir, uint64_t n, const char *name)
{
  for (uint64_t i = 0; i < n; i++)
    if (strncmp (dir[i].name, name, LEV_TENSOR_NAME_MAX) == 0)
      return &dir[i];
  return NULL;
}

typedef struct {
  const LevTensorEntry *dir;
  uint64_t n;
  const uint8_t *data;
} Directory;

/* Binds a 1-D float32 tensor of length len; optional tensors may be absent (then *out = NULL). */
static gboolean
bind_vector (const Directory *d, const char *name, uint32_t len, gboolean required, const float **out,
             GError **error)
{
  const LevTensorEntry *e = find_tensor (d->dir, d->n, name);
  *out = NULL;
  if (!e) {
    if (required)
      FAIL ("tensor %s is missing", name);
    return TRUE;
  }
  if (e->n_dims != 1 || e->shape[0] != len)
    FAIL ("tensor %s has shape [%" G_GUINT64_FORMAT "%s], expected [%u]", name, e->shape[0],
          e->n_dims != 1 ? ", ..." : "", len);
  if (e->encoding != LEV_ENC_F32)
    FAIL ("tensor %s: vectors must be stored as f32 (encoding %u)", name, e->encoding);
  *out = (const float *) (d->data + e->offset);
  return TRUE;
}

/* Binds a [rows][cols] matrix in any supported encoding. */
static gboolean
bind_matrix (const Directory *d, const char *name, uint32_t rows, uint32_t cols, LevMatrix *out, GError **error)
{
  const LevTensorEntry *e = find_tensor (d->dir, d->n, name);
  if (!e)
    FAIL ("tensor %s is missing", name);
  if (e->n_dims != 2 || e->shape[0] != rows || e->shape[1] != cols)
    FAIL ("tensor %s has shape [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT "]%s, expected [%u, %u]", name,
          e->shape[0], e->n_dims >= 2 ? e->shape[1] : 1, e->n_dims != 2 ? " (wrong rank)" : "", rows, cols);
  out->encoding = e->encoding;
  out->rows = rows;
  out->cols = cols;
  const uint8_t *p = d->data + e->offset;
  memset (&out->q, 0, sizeof out->q);
  if (e->encoding == LEV_ENC_Q8) {
    out->scales = (const float *) p;
    out->data = p + (size_t) rows * 4;
  } else if (lev_qenc_is_packed (e->encoding)) {
    size_t rb = lev_qenc_row_bytes (e->encoding, cols), codes = (size_t) rows * rb;
    LevQMatrix q = { e->encoding, rows, cols, (uint32_t) lev_qenc_cols_padded (e->encoding, cols), rb, p,
                     (const float *) (p + codes), (uint32_t) ((e->size - codes) / 4) };
    out->data = p;
    out->scales = q.scales;
    out->q = q;
    for (uint32_t i = 0; i < q.n_scales; i++)
      if (!isfinite (q.scales[i]))
        FAIL ("tensor %s: scale %u is not finite", name, i);
  } else {
    out->scales = NULL;
    out->data = p;
  }
  return TRUE;
}

/* Binds the error-compensation tensors of matrix `name` (outliers, low-rank adapter) found in directory d; counts
 * them in *n_bound. A matrix may get each kind from one file only. */
static gboolean
bind_extras (const Directory *d, const char *name, LevMatrix *m, uint32_t *n_bound, GError **error)
{
  char n[LEV_TENSOR_NAME_MAX + 16];
  g_snprintf (n, sizeof n, "%s" LEV_OUTLIERS_SUFFIX, name);
  const LevTensorEntry *e = find_tensor (d->dir, d->n, n);
  if (e) {
    if (e->encoding != LEV_ENC_SPARSE || e->shape[0] != m->rows || e->shape[1] != m->cols)
      FAIL ("tensor %s must be sparse outliers of shape [%u, %u]", n, m->rows, m->cols);
    if (m->sp_rowptr)
      FAIL ("matrix %s has outliers in both the model and the adapter", name);
    const uint32_t *rp = (const uint32_t *) (d->data + e->offset), *ent = rp + m->rows + 1;
    uint64_t nnz = (e->size - 4ull * (m->rows + 1)) / 4;
    if (rp[0] != 0 || rp[m->rows] != nnz)
      FAIL ("tensor %s: row pointers do not span its %" G_GUINT64_FORMAT " entries", n, nnz);
    for (uint32_t r = 0; r < m->rows; r++) {
      if (rp[r + 1] < rp[r])
        FAIL ("tensor %s: row pointers decrease at row %u", n, r);
      for (uint32_t k = rp[r]; k < rp[r + 1]; k++) {
        uint32_t col = ent[k] & 0xffffu;
        if (col >= m->cols || (k > rp[r] && col <= (ent[k - 1] & 0xffffu)))
          FAIL ("tensor %s: row %u: columns must be ascending and below %u", n, r, m->cols);
        if (!isfinite (lev_f16_to_f32 ((uint16_t) (ent[k] >> 16))))
          FAIL ("tensor %s: row %u holds a non-finite value", n, r);
      }
    }
    m->sp_rowptr = rp;
    m->sp_entries = ent;
    m->sp_nnz = (uint32_t) nnz;
    (*n_bound)++;
  }
  char nb[LEV_TENSOR_NAME_MAX + 16];
  g_snprintf (n, sizeof n, "%s" LEV_LORA_A_SUFFIX, name);
  g_snprintf (nb, sizeof nb, "%s" LEV_LORA_B_SUFFIX, name);
  const LevTensorEntry *ea = find_tensor (d->dir, d->n, n), *eb = find_tensor (d->dir, d->n, nb);
  if (!ea && !eb)
    return TRUE;
  if (!ea || !eb)
    FAIL ("matrix %s has only one half of its low-rank adapter (%s)", name, ea ? nb : n);
  uint64_t rank = ea->shape[1];
  if (ea->encoding != LEV_ENC_Q8 || eb->encoding != LEV_ENC_Q8 || ea->shape[0] != m->rows || eb->shape[0] != rank
      || eb->shape[1] != m->cols || rank == 0 || rank > LEV_MAX_LORA_RANK)
    FAIL ("the low-rank adapter of %s must be q8 matrices [%u, r] and [r, %u] with 1 <= r <= %u", name, m->rows,
          m->cols, LEV_MAX_LORA_RANK);
  if (m->lora_rank)
    FAIL ("matrix %s has a low-rank adapter in both the model and the adapter file", name);
  m->lora_rank = (uint32_t) rank;
  m->lora_a_scales = (const float *) (d->data + ea->offset);
  m->lora_a = (const int8_t *) (d->data + ea->offset + 4 * m->rows);
  m->lora_b_scales = (const float *) (d->data + eb->offset);
  m->lora_b = (const int8_t *) (d->data + eb->offset + 4 * rank);
  for (uint64_t i = 0; i < m->rows; i++)
    if (!isfinite (m->lora_a_scales[i]))
      FAIL ("tensor %s: scale %" G_GUINT64_FORMAT " is not finite", n, i);
  for (uint64_t i = 0; i < rank; i++)
    if (!isfinite (m->lora_b_scales[i]))
      FAIL ("tensor %s: scale %" G_GUINT64_FORMAT " is not finite", nb, i);
  *n_bound += 2;
  return TRUE;
}

/* Returns the matrix of linear layer `which` of a block. */
static LevMatrix *
layer_linear (LevLayer *L, LevLinear which)
{
  LevMatrix *ms[LEV_N_LINEAR] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down };
  return ms[which];
}

/* Binds the outliers and adapters in directory d to every body matrix; returns how many tensors it bound. */
static gboolean
bind_all_extras (LevModel *m, const Directory *d, uint32_t *n_bound, GError **error)
{
  for (uint32_t l = 0; l < m->hp.n_layers; l++) {
    for (guint i = 0; i < LEV_N_LINEAR; i++) {
      char n[LEV_TENSOR_NAME_MAX];
      g_snprintf (n, sizeof n, "blk.%u.%s", l, lev_linear_name ((LevLinear) i));
      if (!bind_extras (d, n, layer_linear (&m->layers[l], (LevLinear) i), n_bound, error))
        return FALSE;
    }
  }
  return TRUE;
}

static gboolean
check_directory (const Directory *d, uint64_t data_size, GError **error)
{
  for (uint64_t i = 0; i < d->n; i++) {
    const LevTensorEntry *e = &d->dir[i];
    if (memchr (e->name, 0, LEV_TENSOR_NAME_MAX) == NULL || e->name[0] == 0)
      FAIL ("tensor directory entry %" G_GUINT64_FORMAT ": name is empty or not NUL-terminated", i);
    if (e->n_dims == 0 || e->n_dims > LEV_MAX_DIMS)
      FAIL ("tensor %s: n_dims %u is out of range", e->name, e->n_dims);
    uint64_t n = 1;
    for (uint32_t k = 0; k < LEV_MAX_DIMS; k++) {
      uint64_t s = e->shape[k];
      if (k >= e->n_dims && s != 1)
        FAIL ("tensor %s: unused dimension %u is %" G_GUINT64_FORMAT ", expected 1", e->name, k, s);
      if (s == 0 || s > (1ull << 32) || n > UINT64_MAX / s)
        FAIL ("tensor %s: dimension %u (%" G_GUINT64_FORMAT ") is out of range", e->name, k, s);
      n *= s;
    }
    if (e->encoding > LEV_ENC_SPARSE)
      FAIL ("tensor %s: unknown encoding %u", e->name, e->encoding);
    if (e->encoding == LEV_ENC_SPARSE) {
      uint64_t head = 4 * (e->shape[0] + 1);
      if (e->n_dims != 2 || e->shape[1] > 65536)
        FAIL ("tensor %s: sparse outliers need a matrix of at most 65536 columns", e->name);
      if (e->size < head || e->size % 4 != 0 || (e->size - head) / 4 > e->shape[0] * e->shape[1])
        FAIL ("tensor %s: size %" G_GUINT64_FORMAT " does not fit %" G_GUINT64_FORMAT " row pointers and whole "
              "entries", e->name, e->size, e->shape[0] + 1);
    }
    if ((e->encoding == LEV_ENC_Q8 || lev_qenc_is_packed (e->encoding)) && e->n_dims != 2)
      FAIL ("tensor %s: %s needs a matrix", e->name, lev_encoding_name (e->encoding));
    uint64_t expect = e->encoding == LEV_ENC_SPARSE ? e->size : lev_encoding_size (e->encoding, e->shape[0],
                                                                                   n / e->shape[0], 0);
    if (lev_qenc_is_packed (e->encoding)) {
      /* codes, then one scale per tensor, one per row, or one per group of each row (lev_encoding_scale_counts);
       * a size that fits none is reported against the per-tensor size */
      uint64_t counts[4];
      guint n_counts = lev_encoding_scale_counts (e->encoding, e->shape[0], e->shape[1], counts);
      expect = lev_encoding_size (e->encoding, e->shape[0], e->shape[1], 1);
      for (guint k = 0; expect != 0 && k < n_counts; k++)
        if (e->size == lev_encoding_size (e->encoding, e->shape[0], e->shape[1], counts[k]))
          expect = e->size;
    }
    if (expect == 0 || e->size != expect)
      FAIL ("tensor %s: size %" G_GUINT64_FORMAT " does not match its shape and encoding (%" G_GUINT64_FORMAT ")",
            e->name, e->size, expect);
    if (e->offset % LEV_ALIGN != 0 || !range_ok (e->offset, e->size, data_size))
      FAIL ("tensor %s: data (offset %" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT " bytes) lies outside the data "
            "section of %" G_GUINT64_FORMAT " bytes", e->name, e->offset, e->size, data_size);
    for (uint64_t j = 0; j < i; j++)
      if (strncmp (d->dir[j].name, e->name, LEV_TENSOR_NAME_MAX) == 0)
        FAIL ("tensor %s appears twice", e->name);
  }
  return TRUE;
}

/* Returns where the vector of a schema tensor goes in the model. */
static const float **
vector_slot (LevModel *m, const LevSchemaTensor *t)
{
  LevLayer *L = t->layer >= 0 ? &m->layers[t->layer] : NULL;
  switch (t->role) {
    case LEV_TENSOR_OUTPUT_NORM: return &m->output_norm;
    case LEV_TENSOR_ATTN_NORM: return &L->attn_norm;
    case LEV_TENSOR_FFN_NORM: return &L->ffn_norm;
    case LEV_TENSOR_ATTN_Q_BIAS: return &L->bq;
    case LEV_TENSOR_ATTN_K_BIAS: return &L->bk;
    case LEV_TENSOR_ATTN_V_BIAS: return &L->bv;
    case LEV_TENSOR_ATTN_SUB_NORM: return &L->attn_sub_norm;
    case LEV_TENSOR_FFN_SUB_NORM: return &L->ffn_sub_norm;
    default: return NULL;
  }
}

/* Binds every tensor of the architecture (lev_schema_tensors) to the model's fields. */
static gboolean
bind_tensors (LevModel *m, const Directory *d, GError **error)
{
  const LevHParams *hp = &m->hp;
  size_t n;
  LevSchemaTensor *ts = lev_schema_tensors (hp, &n);
  gboolean ok = TRUE;
  m->layers = g_new0 (LevLayer, hp->n_layers);
  for (size_t i = 0; ok && i < n; i++) {
    const LevSchemaTensor *t = &ts[i];
    if (t->n_dims == 1)
      ok = bind_vector (d, t->name, (uint32_t) t->shape[0], t->required, vector_slot (m, t), error);
    else
      ok = bind_matrix (d, t->name, (uint32_t) t->shape[0], (uint32_t) t->shape[1],
                        t->role == LEV_TENSOR_TOKEN_EMBD ? &m->tok_embd : t->role == LEV_TENSOR_OUTPUT ? &m->output
                        : layer_linear (&m->layers[t->layer], t->linear), error);
  }
  g_free (ts);
  if (ok && (hp->flags & LEV_HP_TIED_EMBEDDINGS))
    m->output = m->tok_embd;
  return ok;
}

static LevModel *load_model (const char *path, uint32_t flags, GError **error);

/* The name of a file type that is not a regular file, for messages. */
static const char *
file_type_name (mode_t mode)
{
  return S_ISDIR (mode) ? "a directory" : S_ISFIFO (mode) ? "a FIFO" : S_ISCHR (mode) || S_ISBLK (mode) ? "a device"
         : S_ISSOCK (mode) ? "a socket" : "not a regular file";
}

/* TRUE when two fstat results describe the same, unchanged file: device, inode, size and modification time. */
static gboolean
same_identity (const struct stat *a, const struct stat *b)
{
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size
         && a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Opens path (a regular file only: a FIFO would block and a device never end), then maps it or, with
 * LEV_MODEL_NO_MMAP, reads it into memory; the file's identity taken at open must still hold afterwards. */
static gboolean
open_model_file (LevModel *m, const char *path, uint32_t flags, GError **error)
{
  /* O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer; regular files ignore it */
  int fd = open (path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  struct stat st, after;
  if (fd < 0) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_IO, "cannot open model %s: %s", path, g_strerror (errno));
    return FALSE;
  }
  gboolean stat_ok = fstat (fd, &st) == 0;
  if (!stat_ok || !S_ISREG (st.st_mode)) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_IO, "cannot open model %s: %s", path,
                 stat_ok ? file_type_name (st.st_mode) : g_strerror (errno));
    close (fd);
    return FALSE;
  }
  gboolean ok = TRUE;
  if (flags & LEV_MODEL_NO_MMAP) {
    size_t n = (size_t) st.st_size;
    m->owned = g_aligned_alloc (MAX (n, 1), 1, 4096);   /* page-aligned like a mapping: tensors keep their alignment */
    size_t done = 0;
    while (ok && done < n) {
      ssize_t r = pread (fd, m->owned + done, n - done, (off_t) done);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0) {
        g_set_error (error, LEV_ERROR, LEV_ERROR_IO, "cannot read model %s: %s", path,
                     r < 0 ? g_strerror (errno) : "the file became shorter while it was read");
        ok = FALSE;
      }
      done += r > 0 ? (size_t) r : 0;
    }
    m->base = m->owned;
    m->size = n;
  } else {
    GError *local = NULL;
    m->map = g_mapped_file_new_from_fd (fd, FALSE, &local);
    if (!m->map) {
      g_set_error (error, LEV_ERROR, LEV_ERROR_IO, "cannot map model %s: %s", path, local->message);
      g_error_free (local);
      ok = FALSE;
    } else {
      m->base = (const uint8_t *) g_mapped_file_get_contents (m->map);
      m->size = g_mapped_file_get_length (m->map);
    }
  }
  if (ok && (fstat (fd, &after) != 0 || !same_identity (&st, &after) || m->size != (uint64_t) st.st_size)) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_IO, "model %s changed while it was opened (written or replaced at the "
                 "same time?)", path);
    ok = FALSE;
  }
  m->file_fd = fd;
  return ok;
}

/* Scans the model's weights (the vectors, and with matrices TRUE the matrices too, dequantized a row at a time) for
 * NaN and infinities; FALSE with error naming the first tensor that holds one. */
static gboolean
check_tensor_values (const LevModel *m, gboolean matrices, GError **error)
{
  size_t n;
  LevSchemaTensor *ts = lev_schema_tensors (&m->hp, &n);
  gboolean ok = TRUE;
  float *row = NULL;
  for (size_t i = 0; ok && i < n; i++) {
    const LevSchemaTensor *t = &ts[i];
    if (t->n_dims == 1) {
      const float *v = *vector_slot ((LevModel *) m, t);
      uint64_t k = 0;
      while (v && k < t->shape[0] && isfinite (v[k]))
        k++;
      ok = !v || k == t->shape[0];
      if (!ok)
        g_set_error (error, LEV_ERROR, LEV_ERROR_FORMAT, "tensor %s holds a value that is not finite (element %"
                     G_GUINT64_FORMAT ")", t->name, (guint64) k);
      continue;
    }
    const LevMatrix *mat = t->role == LEV_TENSOR_TOKEN_EMBD ? &m->tok_embd : t->role == LEV_TENSOR_OUTPUT
                           ? &m->output : layer_linear (&m->layers[t->layer], t->linear);
    if (!matrices || !mat->data)
      continue;
    row = g_renew (float, row, mat->cols);
    for (uint32_t r = 0; ok && r < mat->rows; r++) {
      lev_matrix_get_row (mat, r, row);
      for (uint32_t k = 0; ok && k < mat->cols; k++)
        ok = isfinite (row[k]);
      if (!ok)
        g_set_error (error, LEV_ERROR, LEV_ERROR_FORMAT, "tensor %s holds a value that is not finite (row %u)",
                     t->name, r);
    }
  }
  g_free (row);
  g_free (ts);
  return ok;
}

gchar *
lev_model_find_nonfinite_weight (const LevModel *model)
{
  GError *e = NULL;
  if (check_tensor_values (model, TRUE, &e))
    return NULL;
  gchar *what = g_strdup (e->message);
  g_error_free (e);
  return what;
}

LevModel *
lev_model_load (const char *path, GError **error)
{
  return load_model (path, 0, error);
}

/* Opens, validates and binds a model file (lev_model_load_full without the adapter). */
static LevModel *
load_model (const char *path, uint32_t flags, GError **error)
{
  GError *local = NULL;
  LevModel *m = g_new0 (LevModel, 1);
  m->embd_fd = -1;
  m->file_fd = -1;
  if (!open_model_file (m, path, flags, error)) {
    lev_model_free (m);
    return NULL;
  }
  LevFileHeader h;
  if (m->size < sizeof h) {
    g_set_error (&local, LEV_ERROR, LEV_ERROR_FORMAT, "file is %" G_GUINT64_FORMAT " bytes, too short for a "
                 ".leviathan header", m->size);
    goto fail;
  }
  memcpy (&h, m->base, sizeof h);
  if (!check_header (&h, m->size, &local))
    goto fail;
  memcpy (&m->hp, m->base + h.hparams_offset, sizeof m->hp);
  m->has_weights = h.n_tensors > 0;
  if (!check_hparams (&m->hp, m->has_weights, &local))
    goto fail;
  const uint8_t *strings = m->base + h.strings_offset;
  if (!copy_string (strings, h.strings_size, m->hp.chat_template_offset, m->hp.chat_template_len,
                    &m->chat_template, "chat template", &local)
      || !copy_string (strings, h.strings_size, m->hp.name_offset, m->hp.name_len, &m->name, "name", &local))
    goto fail;
  if (h.tokenizer_size > 0 && !load_tokenizer (m, m->base + h.tokenizer_offset, h.tokenizer_size, &local))
    goto fail;
  if (!m->has_weights && !m->tok) {
    g_set_error (&local, LEV_ERROR, LEV_ERROR_FORMAT, "file holds neither weights nor a tokenizer");
    goto fail;
  }
  if (m->tok && m->has_weights && lev_tokenizer_n_tokens (m->tok) > m->hp.vocab_size) {
    g_set_error (&local, LEV_ERROR, LEV_ERROR_FORMAT, "tokenizer has %u tokens but the model only %u",
                 lev_tokenizer_n_tokens (m->tok), m->hp.vocab_size);
    goto fail;
  }
  if (m->has_weights) {
    Directory d = { (const LevTensorEntry *) (m->base + h.tensors_offset), h.n_tensors, m->base + h.data_offset };
    uint32_t n_extras = 0;
    if (!check_directory (&d, h.data_size, &local) || !bind_tensors (m, &d, &local)
        || !bind_all_extras (m, &d, &n_extras, &local))
      goto fail;
    /* an untied embedding table is read a row at a time with pread: touching the mapping would fault in (and keep
     * resident) the pages around every looked-up row */
    if (!(m->hp.flags & LEV_HP_TIED_EMBEDDINGS)) {
      m->embd_fd = fcntl (m->file_fd, F_DUPFD_CLOEXEC, 0);   /* the file opened above, not the path again */
      m->embd_offset = (uint64_t) ((const uint8_t *) m->tok_embd.data - m->base);
      m->embd_row_bytes = (size_t) (lev_matrix_bytes (&m->tok_embd) - 4ull * (m->tok_embd.encoding == LEV_ENC_Q8
                                    ? m->tok_embd.rows : m->tok_embd.q.n_scales)) / m->tok_embd.rows;
      if (m->tok_embd.encoding == LEV_ENC_F32 || m->tok_embd.encoding == LEV_ENC_F16
          || m->tok_embd.encoding == LEV_ENC_BF16)
        m->embd_row_bytes = (size_t) (lev_matrix_bytes (&m->tok_embd) / m->tok_embd.rows);
    }
  }
  if (m->has_weights && (flags & LEV_MODEL_CHECK_TENSORS) && !check_tensor_values (m, TRUE, &local))
    goto fail;
  if (m->has_weights && (m->hp.flags & LEV_HP_ROTATED)) {   /* the online transforms' signs */
    uint32_t q_dim = m->hp.n_heads * m->hp.head_dim;
    uint32_t cols[LEV_N_LINEAR_INPUTS] = { m->hp.dim, q_dim, m->hp.dim, m->hp.ffn_dim };
    for (uint32_t w = 0; w < LEV_N_LINEAR_INPUTS; w++) {
      if (!(m->hp.rotated_inputs & (1u << w)))
        continue;
      m->rot_signs[w] = g_new (float, (size_t) m->hp.n_layers * cols[w]);
      for (uint32_t l = 0; l < m->hp.n_layers; l++)
        lev_hadamard_signs (m->hp.rotation_seed, l * LEV_N_LINEAR_INPUTS + w, m->rot_signs[w] + (size_t) l * cols[w],
                            cols[w]);
    }
  }
  return m;

fail:
  g_set_error (error, LEV_ERROR, local->code, "%s: %s", path, local->message);
  g_error_free (local);
  lev_model_free (m);
  return NULL;
}

/* Maps an adapter file (a regular file only, as the model) and binds its tensors over m's matrices; every tensor in
 * it must find its matrix. */
static gboolean
mount_adapter (LevModel *m, const char *path, GError **error)
{
  GError *local = NULL;
  int fd = open (path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  struct stat st;
  gboolean stat_ok = fd >= 0 && fstat (fd, &st) == 0;
  if (!stat_ok || !S_ISREG (st.st_mode)) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_IO, "cannot open adapter %s: %s", path,
                 stat_ok ? file_type_name (st.st_mode) : g_strerror (errno));
    if (fd >= 0)
      close (fd);
    return FALSE;
  }
  m->adapter_map = g_mapped_file_new_from_fd (fd, FALSE, &local);
  close (fd);
  if (!m->adapter_map) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_IO, "cannot map adapter %s: %s", path, local->message);
    g_error_free (local);
    return FALSE;
  }
  const uint8_t *base = (const uint8_t *) g_mapped_file_get_contents (m->adapter_map);
  uint64_t size = g_mapped_file_get_length (m->adapter_map);
  LevFileHeader h;
  LevHParams hp;
  gboolean ok = FALSE;
  if (size < sizeof h) {
    g_set_error (&local, LEV_ERROR, LEV_ERROR_FORMAT, "file is %" G_GUINT64_FORMAT " bytes, too short for a "
                 ".leviathan header", size);
    goto out;
  }
  memcpy (&h, base, sizeof h);
  if (!check_header (&h, size, &local))
    goto out;
  memcpy (&hp, base + h.hparams_offset, sizeof hp);
  if (hp.arch != m->hp.arch || hp.dim != m->hp.dim || hp.n_layers != m->hp.n_layers || hp.n_heads != m->hp.n_heads
      || hp.n_kv_heads != m->hp.n_kv_heads || hp.head_dim != m->hp.head_dim || hp.ffn_dim != m->hp.ffn_dim
      || hp.vocab_size != m->hp.vocab_size) {
    g_set_error (&local, LEV_ERROR, LEV_ERROR_FORMAT, "the adapter was made for a model of another shape");
    goto out;
  }
  if (h.n_tensors == 0) {
    g_set_error (&local, LEV_ERROR, LEV_ERROR_FORMAT, "the adapter holds no tensors");
    goto out;
  }
  Directory d = { (const LevTensorEntry *) (base + h.tensors_offset), h.n_tensors, base + h.data_offset };
  uint32_t bound = 0;
  if (!check_directory (&d, h.data_size, &local) || !bind_all_extras (m, &d, &bound, &local))
    goto out;
  if (bound != h.n_tensors) {
    g_set_error (&local, LEV_ERROR, LEV_ERROR_FORMAT, "%" G_GUINT64_FORMAT " of its tensors are not outliers or "
                 "adapters of this model's matrices", h.n_tensors - bound);
    goto out;
  }
  ok = TRUE;
out:
  if (!ok) {
    g_set_error (error, LEV_ERROR, local->code, "adapter %s: %s", path, local->message);
    g_error_free (local);
  }
  return ok;
}

LevModel *
lev_model_load_with_adapter (const char *path, const char *adapter_path, GError **error)
{
  LevModelParams params = { 0 };
  params.adapter_path = adapter_path;
  return lev_model_load_full (path, &params, error);
}

LevModel *
lev_model_load_full (const char *path, const LevModelParams *params, GError **error)
{
  const char *adapter_path = params->adapter_path;
  LevModel *m = load_model (path, params->flags, error);
  if (!m || !adapter_path)
    return m;
  if (!m->has_weights) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_NO_WEIGHTS, "%s holds only a tokenizer: no matrices for an adapter",
                 path);
  } else if (mount_adapter (m, adapter_path, error)) {
    return m;
  }
  lev_model_free (m);
  return NULL;
}

uint32_t
lev_model_max_lora_rank (const LevModel *model)
{
  uint32_t r = 0;
  for (uint32_t l = 0; model->has_weights && l < model->hp.n_layers; l++) {
    const LevLayer *L = &model->layers[l];
    const LevMatrix *ms[] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down };
    for (guint i = 0; i < G_N_ELEMENTS (ms); i++)
      r = MAX (r, ms[i]->lora_rank);
  }
  return r;
}

void
lev_model_free (LevModel *model)
{
  if (!model)
    return;
  if (model->adapter_map)
    g_mapped_file_unref (model->adapter_map);
  if (model->tok)
    lev_tokenizer_free (model->tok);
  if (model->embd_fd >= 0)
    close (model->embd_fd);
  g_free (model->layers);
  for (uint32_t w = 0; w < LEV_N_LINEAR_INPUTS; w++)
    g_free (model->rot_signs[w]);
  g_free (model->chat_template);
  g_free (model->name);
  if (model->map)
    g_mapped_file_unref (model->map);
  g_aligned_free (model->owned);
  if (model->file_fd >= 0)
    close (model->file_fd);
  g_free (model);
}

const LevHParams *
lev_model_hparams (const LevModel *model)
{
  return &model->hp;
}

uint32_t
lev_model_arch (const LevModel *model)
{
  return model->hp.arch;
}

uint32_t
lev_model_vocab_size (const LevModel *model)
{
  return model->hp.vocab_size;
}

uint32_t
lev_model_max_ctx (const LevModel *model)
{
  return model->hp.max_ctx;
}

int32_t
lev_model_bos_id (const LevModel *model)
{
  return model->hp.bos_id;
}

int32_t
lev_model_eos_id (const LevModel *model)
{
  return model->hp.eos_id;
}

const LevTokenizer *
lev_model_tokenizer (const LevModel *model)
{
  return model->tok;
}

gboolean
lev_model_has_weights (const LevModel *model)
{
  return model->has_weights;
}

const char *
lev_model_chat_template (const LevModel *model)
{
  return model->chat_template;
}

const char *
lev_model_name (const LevModel *model)
{
  return model->name ? model->name : "";
}

/* Returns the name of the blocks' weight encoding (the one holding most of their weights), NULL without weights. */
const char *
lev_model_encoding_name (const LevModel *model)
{
  if (!model->has_weights || !model->layers || model->hp.n_layers == 0)
    return NULL;
  uint64_t weights[LEV_ENC_SPARSE + 1] = { 0 };
  for (uint32_t l = 0; l < model->hp.n_layers; l++) {
    const LevLayer *ly = &model->layers[l];
    const LevMatrix *ms[] = { &ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->w_gate, &ly->w_up, &ly->w_down };
    for (size_t i = 0; i < G_N_ELEMENTS (ms); i++)
      if (ms[i]->data && ms[i]->encoding <= LEV_ENC_SPARSE)
        weights[ms[i]->encoding] += (uint64_t) ms[i]->rows * ms[i]->cols;
  }
  uint32_t best = 0;
  for (uint32_t e = 1; e <= LEV_ENC_SPARSE; e++)
    if (weights[e] > weights[best])
      best = e;
  return weights[best] ? lev_encoding_name (best) : NULL;
}

void
lev_matrix_get_row (const LevMatrix *m, uint32_t row, float *out)
{
  size_t cols = m->cols, base = (size_t) row * cols;
  switch (m->encoding) {
    case LEV_ENC_F32:
      memcpy (out, (const float *) m->data + base, cols * sizeof (float));
      break;
    case LEV_ENC_F16:
      for (size_t i = 0; i < cols; i++)
        out[i] = lev_f16_to_f32 (((const uint16_t *) m->data)[base + i]);
      break;
    case LEV_ENC_BF16:
      for (size_t i = 0; i < cols; i++)
        out[i] = lev_bf16_to_f32 (((const uint16_t *) m->data)[base + i]);
      break;
    case LEV_ENC_Q8:
      for (size_t i = 0; i < cols; i++)
        out[i] = (float) ((const int8_t *) m->data)[base + i] * m->scales[row];
      break;
    case LEV_ENC_T2:
    case LEV_ENC_T1:
    case LEV_ENC_B1:
    case LEV_ENC_Q4: {
      /* one block at a time through a small buffer */
      size_t bw = lev_qenc_block_weights (m->encoding), bb = lev_qenc_block_bytes (m->encoding);
      const uint8_t *codes = m->q.codes + (size_t) row * m->q.row_bytes;
      int8_t v[160];
      for (size_t b = 0; b * bw < cols; b++) {
        size_t n = MIN (bw, cols - b * bw);
        lev_qunpack_row (m->encoding, codes + b * bb, n, v);
        for (size_t i = 0; i < n; i++)
          out[b * bw + i] = (float) v[i] * lev_qmatrix_col_scale (&m->q, row, b * bw + i);
      }
      break;
    }
    default:
      memset (out, 0, cols * sizeof (float));
  }
}

uint64_t
lev_matrix_bytes (const LevMatrix *m)
{
  uint64_t extra = (m->sp_rowptr ? 4ull * (m->rows + 1 + m->sp_nnz) : 0)
                   + (m->lora_rank ? (uint64_t) m->lora_rank * (m->rows + m->cols) + 4ull * (m->rows + m->lora_rank) : 0);
  if (lev_qenc_is_packed (m->encoding))
    return (uint64_t) m->rows * m->q.row_bytes + 4ull * m->q.n_scales + extra;
  return lev_encoding_size (m->encoding, m->rows, m->cols, 0) + extra;
}

uint64_t
lev_model_bytes_per_token (const LevModel *model)
{
  const LevHParams *hp = &model->hp;
  uint64_t b = lev_matrix_bytes (&model->output) + lev_matrix_bytes (&model->tok_embd) / hp->vocab_size;
  for (uint32_t l = 0; l < hp->n_layers; l++) {
    const LevLayer *L = &model->layers[l];
    const LevMatrix *ms[] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down };
    for (guint i = 0; i < G_N_ELEMENTS (ms); i++)
      b += lev_matrix_bytes (ms[i]);
  }
  return b;
}

void
lev_model_embedding (const LevModel *model, uint32_t token, float *out, uint8_t *scratch)
{
  const LevMatrix *e = &model->tok_embd;
  size_t rb = model->embd_row_bytes;
  if (model->embd_fd < 0
      || pread (model->embd_fd, scratch, rb, (off_t) (model->embd_offset + (uint64_t) token * rb)) != (ssize_t) rb) {
    lev_matrix_get_row (e, token, out);
    return;
  }
  /* the row's codes came through scratch; scales are read in place (small) */
  LevMatrix row = *e;
  row.rows = 1;
  if (lev_qenc_is_packed (e->encoding)) {
    row.q.codes = scratch;
    uint32_t per_row = lev_qmatrix_grouped (&e->q) ? e->q.n_scales / e->q.rows : 1;
    row.q.scales = e->q.scales + (e->q.n_scales == 1 ? 0 : (size_t) token * per_row);
    row.q.n_scales = per_row;
    row.q.rows = 1;
  } else if (e->encoding == LEV_ENC_Q8) {
    row.data = scratch;
    row.scales = &e->scales[token];
  } else {
    row.data = scratch;
  }
  lev_matrix_get_row (&row, 0, out);
}
