/* lev_import_vocab.c: vocabulary container, flattening, and the SentencePiece .model / llama2.c tokenizer.bin importers. */
#include "lev_convert.h"

#include <math.h>
#include <string.h>

#define MAX_TOKENS (1u << 24)   /* the loader's limit on n_tokens */
#define SPACE_SYMBOL "\xe2\x96\x81"

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

/* ---------------------------------------------------------------- helpers */

static gboolean
read_file (const gchar *path, gchar **data, gsize *len, GError **error)
{
  GError *e = NULL;
  if (!g_file_get_contents (path, data, len, &e)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO, "cannot read %s: %s", path, e->message);
    g_error_free (e);
    return FALSE;
  }
  return TRUE;
}

/* Returns the byte value of a "<0xXX>" piece (two uppercase or lowercase hex digits), or -1. */
static int
byte_piece_value (const gchar *p, gsize len)
{
  if (len != 6 || memcmp (p, "<0x", 3) != 0 || p[5] != '>')
    return -1;
  int hi = g_ascii_xdigit_value (p[3]), lo = g_ascii_xdigit_value (p[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/* ---------------------------------------------------------------- protobuf reader */

/* Wire types of the protobuf encoding. */
enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_SGROUP = 3, WT_EGROUP = 4, WT_I32 = 5 };

typedef struct {
  const guint8 *base;   /* start of the whole file, for error offsets */
  const guint8 *p, *end;
  const gchar *path;
} PbReader;

#define PB_FAIL(r, ...) pb_fail ((r), error, __VA_ARGS__)

static gboolean G_GNUC_PRINTF (3, 4)
pb_fail (const PbReader *r, GError **error, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  gchar *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
               "%s: not a valid SentencePiece model (truncated or corrupt at byte %" G_GSIZE_FORMAT "): %s",
               r->path, (gsize) (r->p - r->base), msg);
  g_free (msg);
  return FALSE;
}

static gboolean
pb_varint (PbReader *r, guint64 *out, GError **error)
{
  guint64 v = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    if (r->p >= r->end)
      return PB_FAIL (r, "varint runs past the end of its message");
    guint8 b = *r->p++;
    if (shift == 63 && b > 1)
      return PB_FAIL (r, "varint is longer than 64 bits");
    v |= (guint64) (b & 0x7F) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return TRUE;
    }
  }
  return PB_FAIL (r, "varint is longer than 10 bytes");
}

/* Reads a field key; FALSE at the end of the message (error unset) or on a malformed key (error set). */
static gboolean
pb_key (PbReader *r, guint32 *field, guint *wt, GError **error)
{
  if (r->p >= r->end)
    return FALSE;
  guint64 k;
  if (!pb_varint (r, &k, error))
    return FALSE;
  *field = (guint32) (k >> 3);
  *wt = (guint) (k & 7);
  if (k >> 3 == 0 || k >> 3 > 0x1FFFFFFF)
    return PB_FAIL (r, "field number %" G_GUINT64_FORMAT " is invalid", k >> 3);
  return TRUE;
}

/* Reads a length-delimited payload into a sub-reader. */
static gboolean
pb_len (PbReader *r, PbReader *sub, GError **error)
{
  guint64 len;
  if (!pb_varint (r, &len, error))
    return FALSE;
  if (len > (guint64) (r->end - r->p))
    return PB_FAIL (r, "a field of %" G_GUINT64_FORMAT " bytes runs past the end (%" G_GSIZE_FORMAT " left)", len,
                    (gsize) (r->end - r->p));
  *sub = *r;
  sub->end = r->p + len;
  r->p += len;
  return TRUE;
}

static gboolean
pb_fixed32 (PbReader *r, guint32 *out, GError **error)
{
  if (r->end - r->p < 4)
    return PB_FAIL (r, "a 32-bit field runs past the end");
  *out = (guint32) r->p[0] | (guint32) r->p[1] << 8 | (guint32) r->p[2] << 16 | (guint32) r->p[3] << 24;
  r->p += 4;
  return TRUE;
}

static gboolean
pb_skip (PbReader *r, guint wt, GError **error)
{
  guint64 v;
  PbReader sub;
  switch (wt) {
  case WT_VARINT:
    return pb_varint (r, &v, error);
  case WT_I64:
    if (r->end - r->p < 8)
      return PB_FAIL (r, "a 64-bit field runs past the end");
    r->p += 8;
    return TRUE;
  case WT_LEN:
    return pb_len (r, &sub, error);
  case WT_I32:
    if (r->end - r->p < 4)
      return PB_FAIL (r, "a 32-bit field runs past the end");
    r->p += 4;
    return TRUE;
  default:
    return PB_FAIL (r, "wire type %u is not supported", wt);
  }
}

static gboolean
pb_expect (PbReader *r, guint32 field, guint wt, guint want, GError **error)
{
  if (wt != want)
    return PB_FAIL (r, "field %u has wire type %u, expected %u", field, wt, want);
  return TRUE;
}

/* Reads a varint field (after its key) as a proto int32 / enum / bool value. */
static gboolean
pb_int32_field (PbReader *r, guint32 field, guint wt, gint32 *out, GError **error)
{
  guint64 v;
  if (!pb_expect (r, field, wt, WT_VARINT, error) || !pb_varint (r, &v, error))
    return FALSE;
  *out = (gint32) (guint32) v;   /* negative int32 values are sign-extended to 64 bits on the wire */
  return TRUE;
}

/* ---------------------------------------------------------------- SentencePiece ModelProto */

typedef struct {
  gint32 model_type;        /* TrainerSpec.model_type: 1 UNIGRAM (default), 2 BPE, 3 WORD, 4 CHAR */
  gint32 byte_fallback;
  gint32 treat_ws_as_suffix;
  gint32 unk_id, bos_id, eos_id, pad_id;
  gint32 add_dummy_prefix, remove_extra_ws, escape_ws;
  gchar *normalizer_name;
  gsize charsmap_len;
} SpmSpec;

static gboolean
parse_piece (PbReader *r, LevConvVocab *v, GError **error)
{
  const guint8 *piece = NULL;
  gsize piece_len = 0;
  gboolean have_piece = FALSE;
  float score = 0.0f;
  gint32 type = LEV_TOKTYPE_NORMAL;
  guint32 field;
  guint wt;
  guint32 id = v->pieces->len;
  while (pb_key (r, &field, &wt, error)) {
    if (field == 1) {
      PbReader s;
      if (!pb_expect (r, field, wt, WT_LEN, error) || !pb_len (r, &s, error))
        return FALSE;
      piece = s.p;
      piece_len = (gsize) (s.end - s.p);
      have_piece = TRUE;
    } else if (field == 2) {
      guint32 bits = 0;
      if (!pb_expect (r, field, wt, WT_I32, error) || !pb_fixed32 (r, &bits, error))
        return FALSE;
      memcpy (&score, &bits, sizeof score);
    } else if (field == 3) {
      if (!pb_int32_field (r, field, wt, &type, error))
        return FALSE;
    } else if (!pb_skip (r, wt, error)) {
      return FALSE;
    }
  }
  if (error && *error)
    return FALSE;
  if (!have_piece || piece_len == 0)
    return PB_FAIL (r, "piece %u is empty", id);
  if (type < LEV_TOKTYPE_NORMAL || type > LEV_TOKTYPE_BYTE)
    return PB_FAIL (r, "piece %u has unknown type %d", id, type);
  if (isnan (score))
    return PB_FAIL (r, "piece %u has a NaN score", id);
  if (id >= MAX_TOKENS)
    return PB_FAIL (r, "more than %u pieces", MAX_TOKENS);
  lev_conv_vocab_add (v, (const gchar *) piece, piece_len, score, (guint8) type);
  return TRUE;
}

static gboolean
parse_trainer_spec (PbReader *r, SpmSpec *s, GError **error)
{
  guint32 field;
  guint wt;
  while (pb_key (r, &field, &wt, error)) {
    gint32 *dst = NULL;
    switch (field) {
    case 3: dst = &s->model_type; break;
    case 24: dst = &s->treat_ws_as_suffix; break;
    case 35: dst = &s->byte_fallback; break;
    case 40: dst = &s->unk_id; break;
    case 41: dst = &s->bos_id; break;
    case 42: dst = &s->eos_id; break;
    case 43: dst = &s->pad_id; break;
    default: break;
    }
    if (dst ? !pb_int32_field (r, field, wt, dst, error) : !pb_skip (r, wt, error))
      return FALSE;
  }
  return !(error && *error);
}

static gboolean
parse_normalizer_spec (PbReader *r, SpmSpec *s, GError **error)
{
  guint32 field;
  guint wt;
  while (pb_key (r, &field, &wt, error)) {
    PbReader sub;
    gint32 *dst = NULL;
    switch (field) {
    case 1:
    case 2:
      if (!pb_expect (r, field, wt, WT_LEN, error) || !pb_len (r, &sub, error))
        return FALSE;
      if (field == 1) {
        g_free (s->normalizer_name);
        s->normalizer_name = g_strndup ((const gchar *) sub.p, (gsize) (sub.end - sub.p));
      } else {
        s->charsmap_len = (gsize) (sub.end - sub.p);
      }
      continue;
    case 3: dst = &s->add_dummy_prefix; break;
    case 4: dst = &s->remove_extra_ws; break;
    case 5: dst = &s->escape_ws; break;
    default: break;
    }
    if (dst ? !pb_int32_field (r, field, wt, dst, error) : !pb_skip (r, wt, error))
      return FALSE;
  }
  return !(error && *error);
}

static gboolean
check_id (const gchar *path, const char *what, gint32 id, guint32 n, GError **error)
{
  if (id < -1 || id >= (gint64) n) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s: %s id %d is outside the %u pieces",
                 path, what, id, n);
    return FALSE;
  }
  return TRUE;
}

/* Parses a serialized ModelProto. */
static LevConvVocab *
parse_spm (const guint8 *data, gsize len, const gchar *path, GError **error)
{
  SpmSpec s = {
    .model_type = 1, .byte_fallback = 0, .treat_ws_as_suffix = 0,
    .unk_id = 0, .bos_id = 1, .eos_id = 2, .pad_id = -1,
    .add_dummy_prefix = 1, .remove_extra_ws = 1, .escape_ws = 1,
  };
  GError *e = NULL;
  LevConvVocab *v = lev_conv_vocab_new (LEV_TOK_SPM_BPE);
  PbReader r = { data, data, data + len, path };
  guint32 field;
  guint wt;
  while (pb_key (&r, &field, &wt, &e)) {
    PbReader sub;
    gboolean ok;
    if (field >= 1 && field <= 3) {
      ok = pb_expect (&r, field, wt, WT_LEN, &e) && pb_len (&r, &sub, &e);
      if (ok && field == 1)
        ok = parse_piece (&sub, v, &e);
      else if (ok && field == 2)
        ok = parse_trainer_spec (&sub, &s, &e);
      else if (ok && field == 3)
        ok = parse_normalizer_spec (&sub, &s, &e);
    } else {
      ok = pb_skip (&r, wt, &e);
    }
    if (!ok)
      break;
  }
  if (e != NULL)
    goto fail;

  guint32 n = v->pieces->len;
  if (n == 0) {
    g_set_error (&e, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s: the SentencePiece model has no pieces", path);
    goto fail;
  }
  if (s.model_type != 2) {
    static const char *const names[] = { "?", "UNIGRAM", "BPE", "WORD", "CHAR" };
    g_set_error (&e, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED,
                 "%s: SentencePiece model type %s (%d) is not supported; only BPE models are", path,
                 s.model_type >= 1 && s.model_type <= 4 ? names[s.model_type] : "unknown", s.model_type);
    goto fail;
  }
  if (s.charsmap_len > 0) {
    g_set_error (&e, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED,
                 "%s: the normalizer \"%s\" rewrites text with a precompiled character map (Unicode "
                 "normalization), which is not supported; only \"identity\" normalizers are", path,
                 s.normalizer_name ? s.normalizer_name : "");
    goto fail;
  }
  if (s.treat_ws_as_suffix) {
    g_set_error (&e, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED,
                 "%s: treat_whitespace_as_suffix models are not supported", path);
    goto fail;
  }
  if (!check_id (path, "unk", s.unk_id, n, &e) || !check_id (path, "bos", s.bos_id, n, &e)
      || !check_id (path, "eos", s.eos_id, n, &e) || !check_id (path, "pad", s.pad_id, n, &e))
    goto fail;

  v->unk_id = s.unk_id;
  v->bos_id = s.bos_id;
  v->eos_id = s.eos_id;
  v->pad_id = s.pad_id;
  v->flags = (s.add_dummy_prefix ? LEV_TOKF_ADD_DUMMY_PREFIX : 0) | (s.remove_extra_ws ? LEV_TOKF_REMOVE_EXTRA_WS : 0)
           | (s.escape_ws ? LEV_TOKF_ESCAPE_WS : 0) | (s.byte_fallback ? LEV_TOKF_BYTE_FALLBACK : 0)
           | (s.bos_id >= 0 ? LEV_TOKF_ADD_BOS : 0);
  g_free (s.normalizer_name);
  return v;

fail:
  g_propagate_error (error, e);
  g_free (s.normalizer_name);
  lev_conv_vocab_free (v);
  return NULL;
}

/* Reads a SentencePiece tokenizer.model (protobuf) into a vocabulary. */
LevConvVocab *
lev_import_spm_model (const gchar *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  gchar *data;
  gsize len;
  if (!read_file (path, &data, &len, error))
    return NULL;
  LevConvVocab *v = parse_spm ((const guint8 *) data, len, path, error);
  g_free (data);
  return v;
}

/* ---------------------------------------------------------------- llama2.c tokenizer.bin */

static gint32
read_i32 (const guint8 *p)
{
  guint32 u = (guint32) p[0] | (guint32) p[1] << 8 | (guint32) p[2] << 16 | (guint32) p[3] << 24;
  return (gint32) u;
}

/* Parses a llama2.c tokenizer.bin: int32 max_token_length, then (float score, int32 len, len bytes) until EOF. */
static LevConvVocab *
parse_llama2c_tokenizer (const guint8 *data, gsize len, const gchar *path, GError **error)
{
  if (len < 4) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                 "%s: too short for a llama2.c tokenizer (%" G_GSIZE_FORMAT " bytes)", path, len);
    return NULL;
  }
  gint32 max_len = read_i32 (data);
  if (max_len <= 0 || max_len > (1 << 20)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                 "%s: max_token_length %d is out of range", path, max_len);
    return NULL;
  }
  LevConvVocab *v = lev_conv_vocab_new (LEV_TOK_SPM_BPE);
  GString *piece = g_string_new (NULL);
  gsize off = 4;
  while (off < len) {
    guint32 id = v->pieces->len;
    if (len - off < 8) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                   "%s: truncated in the header of token %u (byte %" G_GSIZE_FORMAT ")", path, id, off);
      goto fail;
    }
    float score;
    memcpy (&score, data + off, 4);   /* little-endian hosts only, like the rest of the format */
    gint32 plen = read_i32 (data + off + 4);
    off += 8;
    if (plen < 0 || plen > max_len) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                   "%s: token %u has length %d, outside 0..max_token_length %d", path, id, plen, max_len);
      goto fail;
    }
    if ((gsize) plen > len - off) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                   "%s: truncated in token %u (%d bytes announced, %" G_GSIZE_FORMAT " left)", path, id, plen,
                   len - off);
      goto fail;
    }
    if (isnan (score)) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s: token %u has a NaN score", path, id);
      goto fail;
    }
    if (id >= MAX_TOKENS) {
      g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s: more than %u tokens", path,
                   MAX_TOKENS);
      goto fail;
    }
    const gchar *p = (const gchar *) data + off;
    off += (gsize) plen;

    /* llama2.c's export wrote BOS and EOS as "\n<s>\n" and "\n</s>\n" and every "▁" as a space: undo both so the
     * pieces equal those of the tokenizer.model it came from. */
    g_string_truncate (piece, 0);
    guint8 type = LEV_TOKTYPE_NORMAL;
    if ((plen == 5 && memcmp (p, "\n<s>\n", 5) == 0) || (plen == 3 && memcmp (p, "<s>", 3) == 0)) {
      g_string_append (piece, "<s>");
      type = LEV_TOKTYPE_CONTROL;
    } else if ((plen == 6 && memcmp (p, "\n</s>\n", 6) == 0) || (plen == 4 && memcmp (p, "</s>", 4) == 0)) {
      g_string_append (piece, "</s>");
      type = LEV_TOKTYPE_CONTROL;
    } else {
      for (gint32 i = 0; i < plen; i++) {
        if (p[i] == ' ')
          g_string_append (piece, SPACE_SYMBOL);
        else
          g_string_append_c (piece, p[i]);
      }
      if (plen == 5 && memcmp (p, "<unk>", 5) == 0)
        type = LEV_TOKTYPE_UNKNOWN;
      else if (byte_piece_value (p, (gsize) plen) >= 0)
        type = LEV_TOKTYPE_BYTE;
    }
    lev_conv_vocab_add (v, piece->str, piece->len, score, type);
  }
  if (v->pieces->len == 0) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s: the tokenizer has no tokens", path);
    goto fail;
  }
  g_string_free (piece, TRUE);
  /* run.c's conventions: BOS 1, EOS 2, <unk> 0, no pad; a dummy-prefix space, byte fallback, no whitespace
   * collapsing, BOS in front of every prompt. */
  guint32 n = v->pieces->len;
  v->unk_id = n > 0 ? 0 : -1;
  v->bos_id = n > 1 ? 1 : -1;
  v->eos_id = n > 2 ? 2 : -1;
  v->pad_id = -1;
  v->flags = LEV_TOKF_ADD_DUMMY_PREFIX | LEV_TOKF_ESCAPE_WS | LEV_TOKF_BYTE_FALLBACK | LEV_TOKF_ADD_BOS;
  return v;

fail:
  g_string_free (piece, TRUE);
  lev_conv_vocab_free (v);
  return NULL;
}

/* Reads a llama2.c tokenizer.bin into a vocabulary (SentencePiece-BPE semantics, Llama 2 defaults). */
LevConvVocab *
lev_import_llama2c_tokenizer (const gchar *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  gchar *data;
  gsize len;
  if (!read_file (path, &data, &len, error))
    return NULL;
  LevConvVocab *v = parse_llama2c_tokenizer ((const guint8 *) data, len, path, error);
  g_free (data);
  return v;
}

/* ---------------------------------------------------------------- detection */

/* TRUE when data starts like a ModelProto: field 1 (a SentencePiece message) whose own first field is 1 (piece). */
static gboolean
looks_like_spm (const guint8 *data, gsize len)
{
  if (len < 4 || data[0] != 0x0A)
    return FALSE;
  gsize i = 1;
  guint64 l = 0;
  for (int shift = 0; i < len && shift < 35; shift += 7) {
    guint8 b = data[i++];
    l |= (guint64) (b & 0x7F) << shift;
    if (!(b & 0x80))
      return l > 0 && i < len && data[i] == 0x0A;
  }
  return FALSE;
}

/* Reads a tokenizer file of either kind, chosen by its contents; a directory is searched for one. */
LevConvVocab *
lev_import_vocab (const gchar *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  if (g_file_test (path, G_FILE_TEST_IS_DIR)) {
    static const char *const names[] = { "tokenizer.model", "tokenizer.bin" };
    for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
      gchar *p = g_build_filename (path, names[i], NULL);
      if (g_file_test (p, G_FILE_TEST_IS_REGULAR)) {
        LevConvVocab *v = lev_import_vocab (p, error);
        g_free (p);
        return v;
      }
      g_free (p);
    }
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO, "%s: no tokenizer.model or tokenizer.bin in it",
                 path);
    return NULL;
  }
  gchar *data;
  gsize len;
  if (!read_file (path, &data, &len, error))
    return NULL;
  const guint8 *d = (const guint8 *) data;
  LevConvVocab *v = NULL;
  gsize skip = 0;
  while (skip < len && g_ascii_isspace (data[skip]))
    skip++;
  if (looks_like_spm (d, len))
    v = parse_spm (d, len, path, error);
  else if (skip < len && data[skip] == '{')
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED,
                 "%s: a JSON tokenizer (tokenizer.json) is read with its Hugging Face model directory, not here", path);
  else if (len >= 4 && read_i32 (d) > 0 && read_i32 (d) <= (1 << 20))
    v = parse_llama2c_tokenizer (d, len, path, error);
  else
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                 "%s: neither a SentencePiece tokenizer.model nor a llama2.c tokenizer.bin", path);
  g_free (data);
  return v;
}
