/* lev_writer.c: serializes a LevConvModel into a .leviathan file (temporary file, renamed when complete). */
#include "lev_writer.h"
#include "lev_progress.h"
#include "lev_kernels.h"
#include "lev_qkernels.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t
align_up (uint64_t v, uint64_t a)
{
  return (v + a - 1) / a * a;
}

static uint64_t
n_elements (const LevConvTensor *t)
{
  uint64_t n = 1;
  for (guint32 k = 0; k < t->n_dims; k++)
    n *= t->shape[k];
  return n;
}

static gboolean
is_embedding (const LevConvTensor *t)
{
  return strcmp (t->name, "token_embd") == 0 || strcmp (t->name, "output") == 0;
}

/* Chooses the stored encoding of a tensor for the requested output formats. */
static uint32_t
choose_encoding (const LevConvTensor *t, LevOutFormat format, LevOutFormat embd_format)
{
  if (t->type == LEV_SRC_ENCODED)
    return t->encoding;
  if (t->n_dims == 1)
    return LEV_ENC_F32;
  gboolean packed_body = format == LEV_OUT_T2 || format == LEV_OUT_T1 || format == LEV_OUT_B1;
  if (is_embedding (t))
    format = embd_format != LEV_OUT_AUTO ? embd_format : packed_body ? LEV_OUT_AUTO : format;
  if (t->type == LEV_SRC_TERNARY && format != LEV_OUT_T2 && format != LEV_OUT_T1 && format != LEV_OUT_B1)
    return LEV_ENC_Q8;          /* lossless: codes -1/0/+1 with the tensor scale on every row */
  switch (format) {
    case LEV_OUT_F32: return LEV_ENC_F32;
    case LEV_OUT_F16: return LEV_ENC_F16;
    case LEV_OUT_BF16: return LEV_ENC_BF16;
    case LEV_OUT_Q8: return LEV_ENC_Q8;
    case LEV_OUT_T2: return LEV_ENC_T2;
    case LEV_OUT_T1: return LEV_ENC_T1;
    case LEV_OUT_B1: return LEV_ENC_B1;
    case LEV_OUT_Q4: return LEV_ENC_Q4;
    case LEV_OUT_AUTO:
    default:
      return t->type == LEV_SRC_F16 ? LEV_ENC_F16 : t->type == LEV_SRC_BF16 ? LEV_ENC_BF16 : LEV_ENC_F32;
  }
}

/* Packed encodings: one scale per tensor for ternary sources stored as ternary (lossless), else one per row. */
static uint64_t
packed_n_scales (uint32_t enc, const LevConvTensor *t)
{
  return t->type == LEV_SRC_TERNARY && (enc == LEV_ENC_T2 || enc == LEV_ENC_T1) ? 1 : t->shape[0];
}

static uint64_t
encoded_size (uint32_t enc, const LevConvTensor *t)
{
  uint64_t n = n_elements (t);
  if (t->type == LEV_SRC_ENCODED)
    return t->encoded_size;
  return lev_encoding_size (enc, t->shape[0], n / t->shape[0], packed_n_scales (enc, t));
}

/* Returns element i of a source tensor as float. */
static inline float
source_value (const LevConvTensor *t, uint64_t i)
{
  switch (t->type) {
    case LEV_SRC_F32: { float f; memcpy (&f, (const uint8_t *) t->data + i * 4, 4); return f; }
    case LEV_SRC_F16: { uint16_t h; memcpy (&h, (const uint8_t *) t->data + i * 2, 2); return lev_f16_to_f32 (h); }
    case LEV_SRC_BF16: { uint16_t h; memcpy (&h, (const uint8_t *) t->data + i * 2, 2); return lev_bf16_to_f32 (h); }
    case LEV_SRC_TERNARY: return (float) ((const int8_t *) t->data)[i] * t->scale;
    default: return 0.0f;
  }
}

/* Encodes a matrix in a packed encoding: per row, ternary absmean (t2/t1), sign with mean |w| (b1) or absmax / 7
 * (q4); ternary sources keep their codes and tensor scale in t2/t1. */
static gboolean
encode_packed (const LevConvTensor *t, uint32_t enc, uint8_t *buf, GError **error)
{
  uint64_t rows = t->shape[0], cols = t->shape[1];
  size_t rb = lev_qenc_row_bytes (enc, cols);
  float *scales = (float *) (buf + rows * rb);   /* 4-aligned: row_bytes is a multiple of 16 */
  int8_t *v = g_new (int8_t, cols);
  float *row = g_new (float, cols);
  gboolean ok = TRUE;
  for (uint64_t r = 0; ok && r < rows; r++) {
    if (t->type == LEV_SRC_TERNARY && packed_n_scales (enc, t) == 1) {
      memcpy (v, (const int8_t *) t->data + r * cols, cols);
      scales[0] = t->scale;
    } else {
      double asum = 0.0;
      float amax = 0.0f;
      for (uint64_t c = 0; c < cols; c++) {
        row[c] = source_value (t, r * cols + c);
        if (!isfinite (row[c])) {
          g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "tensor %s holds a non-finite value at "
                       "element %" G_GUINT64_FORMAT, t->name, r * cols + c);
          ok = FALSE;
          break;
        }
        asum += fabsf (row[c]);
        amax = fmaxf (amax, fabsf (row[c]));
      }
      float mean = (float) (asum / (double) cols);
      float scale = enc == LEV_ENC_Q4 ? amax / 7.0f : mean;
      float inv = scale > 0.0f ? 1.0f / scale : 0.0f;
      for (uint64_t c = 0; c < cols; c++) {
        if (enc == LEV_ENC_B1)
          v[c] = row[c] >= 0.0f ? 1 : -1;
        else if (enc == LEV_ENC_Q4)
          v[c] = (int8_t) fminf (fmaxf (rintf (row[c] * inv), -8.0f), 7.0f);
        else
          v[c] = (int8_t) fminf (fmaxf (rintf (row[c] * inv), -1.0f), 1.0f);
      }
      scales[r] = scale;
    }
    lev_qpack_row (enc, v, cols, buf + r * rb);
  }
  g_free (v);
  g_free (row);
  return ok;
}

/* Encodes a tensor into buf (encoded_size bytes). Returns FALSE on a non-finite value. */
static gboolean
encode_tensor (const LevConvTensor *t, uint32_t enc, uint8_t *buf, GError **error)
{
  uint64_t n = n_elements (t);
  if (t->type == LEV_SRC_ENCODED) {
    memcpy (buf, t->data, t->encoded_size);
    return TRUE;
  }
  if (lev_qenc_is_packed (enc))
    return encode_packed (t, enc, buf, error);
  if (enc == LEV_ENC_Q8) {
    uint64_t rows = t->shape[0], cols = n / rows;
    float *scales = (float *) buf;
    int8_t *q = (int8_t *) (buf + rows * 4);
    for (uint64_t r = 0; r < rows; r++) {
      if (t->type == LEV_SRC_TERNARY) {
        scales[r] = t->scale;
        memcpy (q + r * cols, (const int8_t *) t->data + r * cols, cols);
        continue;
      }
      float amax = 0.0f;
      for (uint64_t c = 0; c < cols; c++)
        amax = fmaxf (amax, fabsf (source_value (t, r * cols + c)));
      float scale = amax / 127.0f;
      scales[r] = scale;
      float inv = scale > 0.0f ? 1.0f / scale : 0.0f;
      for (uint64_t c = 0; c < cols; c++)
        q[r * cols + c] = (int8_t) lrintf (source_value (t, r * cols + c) * inv);
    }
    return TRUE;
  }
  for (uint64_t i = 0; i < n; i++) {
    float v = source_value (t, i);
    if (!isfinite (v)) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "tensor %s holds a non-finite value at "
                   "element %" G_GUINT64_FORMAT, t->name, i);
      return FALSE;
    }
    if (enc == LEV_ENC_F32) {
      memcpy (buf + i * 4, &v, 4);
    } else {
      uint16_t h = enc == LEV_ENC_F16 ? lev_f32_to_f16 (v) : lev_f32_to_bf16 (v);
      memcpy (buf + i * 2, &h, 2);
    }
  }
  return TRUE;
}

typedef struct {
  FILE *f;
  const gchar *path;
  GError **error;
} Out;

static gboolean
put (Out *o, const void *p, size_t n)
{
  if (n && fwrite (p, 1, n, o->f) != n) {
    g_set_error (o->error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO, "cannot write %s: %s", o->path,
                 g_strerror (errno));
    return FALSE;
  }
  return TRUE;
}

static gboolean
pad_to (Out *o, uint64_t target)
{
  static const uint8_t zeros[64];
  long cur = ftell (o->f);
  if (cur < 0 || (uint64_t) cur > target) {
    g_set_error (o->error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO, "internal layout error writing %s", o->path);
    return FALSE;
  }
  while ((uint64_t) cur < target) {
    size_t k = MIN ((uint64_t) sizeof zeros, target - (uint64_t) cur);
    if (!put (o, zeros, k))
      return FALSE;
    cur += (long) k;
  }
  return TRUE;
}

/* Builds the tokenizer section in memory. */
static GByteArray *
build_tokenizer (const LevConvVocab *vocab)
{
  LevConvVocabFlat *flat = lev_conv_vocab_flatten (vocab);
  const LevVocabView *v = &flat->view;
  LevTokenizerHeader th;
  memset (&th, 0, sizeof th);
  th.kind = v->kind;
  th.flags = v->flags;
  th.n_tokens = v->n_tokens;
  th.n_merges = v->n_merges;
  th.bos_id = v->bos_id;
  th.eos_id = v->eos_id;
  th.unk_id = v->unk_id;
  th.pad_id = v->pad_id;
  th.pretokenizer = v->pretokenizer;
  uint64_t n = v->n_tokens, off = sizeof th;
  th.piece_offsets_offset = off;
  off += (n + 1) * 4;
  th.piece_bytes_offset = off;
  th.piece_bytes_size = v->piece_offsets[n];
  off = align_up (off + th.piece_bytes_size, 4);
  th.scores_offset = off;
  off += n * 4;
  th.types_offset = off;
  off = align_up (off + n, 4);
  th.merges_offset = off;
  off = align_up (off + (uint64_t) v->n_merges * 8, 8);
  GByteArray *sec = g_byte_array_sized_new ((guint) off);
  g_byte_array_set_size (sec, (guint) off);
  memset (sec->data, 0, off);
  memcpy (sec->data, &th, sizeof th);
  memcpy (sec->data + th.piece_offsets_offset, v->piece_offsets, (n + 1) * 4);
  memcpy (sec->data + th.piece_bytes_offset, v->piece_bytes, th.piece_bytes_size);
  memcpy (sec->data + th.scores_offset, v->scores, n * 4);
  memcpy (sec->data + th.types_offset, v->types, n);
  if (v->n_merges)
    memcpy (sec->data + th.merges_offset, v->merges, (size_t) v->n_merges * 8);
  lev_conv_vocab_flat_free (flat);
  return sec;
}

static gboolean
write_all (const LevConvModel *model, Out *o, LevOutFormat format, LevOutFormat embd_format, gboolean vocab_only)
{
  GPtrArray *tensors = vocab_only ? g_ptr_array_new () : model->tensors;
  guint nt = tensors->len;
  LevHParams hp = model->hp;
  GString *strings = g_string_new (NULL);
  hp.chat_template_offset = hp.chat_template_len = hp.name_offset = hp.name_len = 0;
  if (model->chat_template) {
    hp.chat_template_offset = (uint32_t) strings->len;
    hp.chat_template_len = (uint32_t) strlen (model->chat_template);
    g_string_append (strings, model->chat_template);
  }
  if (model->name) {
    hp.name_offset = (uint32_t) strings->len;
    hp.name_len = (uint32_t) strlen (model->name);
    g_string_append (strings, model->name);
  }
  if (vocab_only && model->vocab) {
    hp.bos_id = model->vocab->bos_id;
    hp.eos_id = model->vocab->eos_id;
  }
  while (strings->len % 8 != 0)
    g_string_append_c (strings, '\0');
  GByteArray *tok = model->vocab ? build_tokenizer (model->vocab) : NULL;

  LevFileHeader h;
  memset (&h, 0, sizeof h);
  memcpy (h.magic, LEV_MAGIC, 8);
  h.version = LEV_VERSION;
  h.header_size = sizeof h;
  h.hparams_offset = sizeof h;
  h.hparams_size = sizeof hp;
  h.strings_offset = h.hparams_offset + h.hparams_size;
  h.strings_size = strings->len;
  h.tokenizer_offset = align_up (h.strings_offset + h.strings_size, 8);
  h.tokenizer_size = tok ? tok->len : 0;
  h.tensors_offset = align_up (h.tokenizer_offset + h.tokenizer_size, 8);
  h.n_tensors = nt;
  h.data_offset = align_up (h.tensors_offset + (uint64_t) nt * sizeof (LevTensorEntry), LEV_ALIGN);
  LevTensorEntry *dir = g_new0 (LevTensorEntry, MAX (nt, 1u));
  uint64_t data = 0, biggest = 0;
  for (guint i = 0; i < nt; i++) {
    const LevConvTensor *t = g_ptr_array_index (tensors, i);
    LevTensorEntry *e = &dir[i];
    g_strlcpy (e->name, t->name, sizeof e->name);
    e->encoding = choose_encoding (t, format, embd_format);
    e->n_dims = t->n_dims;
    for (guint k = 0; k < LEV_MAX_DIMS; k++)
      e->shape[k] = k < t->n_dims ? t->shape[k] : 1;
    e->offset = data;
    e->size = encoded_size (e->encoding, t);
    data = align_up (data + e->size, LEV_ALIGN);
    biggest = MAX (biggest, e->size);
  }
  h.data_size = data;
  h.file_size = h.data_offset + data;

  gboolean ok = put (o, &h, sizeof h) && put (o, &hp, sizeof hp) && put (o, strings->str, strings->len)
                && pad_to (o, h.tokenizer_offset) && (!tok || put (o, tok->data, tok->len))
                && pad_to (o, h.tensors_offset) && put (o, dir, (size_t) nt * sizeof (LevTensorEntry))
                && pad_to (o, h.data_offset);
  uint8_t *buf = ok && nt ? g_try_malloc (biggest) : NULL;
  if (ok && nt && !buf) {
    g_set_error (o->error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO, "out of memory (%" G_GUINT64_FORMAT " bytes)",
                 biggest);
    ok = FALSE;
  }
  for (guint i = 0; ok && i < nt; i++) {
    const LevConvTensor *t = g_ptr_array_index (tensors, i);
    ok = encode_tensor (t, dir[i].encoding, buf, o->error) && pad_to (o, h.data_offset + dir[i].offset)
         && put (o, buf, dir[i].size);
    if (ok)
      lev_conv_progress ("writing", dir[i].offset + dir[i].size, data);
  }
  ok = ok && pad_to (o, h.file_size);
  g_free (buf);
  g_free (dir);
  if (tok)
    g_byte_array_unref (tok);
  g_string_free (strings, TRUE);
  if (vocab_only)
    g_ptr_array_unref (tensors);
  return ok;
}

gboolean
lev_write_model (const LevConvModel *model, const gchar *path, LevOutFormat format, gboolean vocab_only,
                 GError **error)
{
  return lev_write_model_full (model, path, format, LEV_OUT_AUTO, vocab_only, error);
}

gboolean
lev_write_model_full (const LevConvModel *model, const gchar *path, LevOutFormat format, LevOutFormat embd_format,
                      gboolean vocab_only, GError **error)
{
  if (vocab_only && !model->vocab) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "no tokenizer to write");
    return FALSE;
  }
  struct stat old;
  gboolean replacing = g_stat (path, &old) == 0;
  if (replacing && !S_ISREG (old.st_mode)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO, "will not write %s: it exists and is not a regular "
                 "file", path);
    return FALSE;
  }
  /* created 0666 less the umask like any tool's output (mkstemp's 0600 would hide it from the group) */
  gchar *tmp = g_strdup_printf ("%s.XXXXXX", path);
  int fd = g_mkstemp_full (tmp, O_RDWR | O_CLOEXEC, 0666);
  if (fd < 0) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO, "cannot create %s: %s", tmp, g_strerror (errno));
    g_free (tmp);
    return FALSE;
  }
  Out o = { fdopen (fd, "wb"), path, error };
  gboolean ok = o.f != NULL;
  if (!ok) {
    close (fd);
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO, "cannot open %s: %s", tmp, g_strerror (errno));
  }
  ok = ok && write_all (model, &o, format, embd_format, vocab_only);
  if (o.f) {
    if (fflush (o.f) != 0 || fsync (fileno (o.f)) != 0) {
      if (ok)
        g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO, "cannot write %s: %s", path,
                     g_strerror (errno));
      ok = FALSE;
    }
    fclose (o.f);
  }
  /* a file replaced keeps its permissions (a 0600 model stays private); then the result is put in place */
  if (ok && ((replacing && g_chmod (tmp, old.st_mode & 07777) != 0) || g_rename (tmp, path) != 0)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO, "cannot move %s to %s: %s", tmp, path,
                 g_strerror (errno));
    ok = FALSE;
  }
  if (!ok)
    g_unlink (tmp);
  g_free (tmp);
  return ok;
}
