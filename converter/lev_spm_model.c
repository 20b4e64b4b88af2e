/* lev_spm_model.c: reader of SentencePiece tokenizer.model files (the protobuf ModelProto: pieces, trainer and
 * normalizer specs), without a protobuf library. */
#include "lev_spm_model.h"
#include "lev_import.h"

#include <math.h>
#include <string.h>

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
  if (id >= LEV_MAX_TOKENS)
    return PB_FAIL (r, "more than %u pieces", LEV_MAX_TOKENS);
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
LevConvVocab *
lev_spm_parse (const guint8 *data, gsize len, const gchar *path, GError **error)
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
  if (!lev_conv_read_file (path, &data, &len, error))
    return NULL;
  LevConvVocab *v = lev_spm_parse ((const guint8 *) data, len, path, error);
  g_free (data);
  return v;
}

/* ---------------------------------------------------------------- llama2.c tokenizer.bin */
