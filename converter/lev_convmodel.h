/* lev_convmodel.h: the converter's in-memory model (what every importer fills, the quantizer changes and the writer
 * serializes): tensors, vocabulary, validation against the architecture (lev_schema.h). */
#pragma once

#include <glib.h>
#include "leviathan-ext.h"

G_BEGIN_DECLS

#define LEV_CONVERT_ERROR (lev_convert_error_quark ())
typedef enum {
  LEV_CONVERT_ERROR_IO,          /* a file could not be read or written */
  LEV_CONVERT_ERROR_FORMAT,      /* a file is malformed (bad header, bad JSON, truncated) */
  LEV_CONVERT_ERROR_UNSUPPORTED, /* a valid input we do not handle (architecture, dtype) */
  LEV_CONVERT_ERROR_SHAPE,       /* a tensor is missing or has the wrong shape */
} LevConvertError;

/* Returns the GQuark of LEV_CONVERT_ERROR. */
GQuark lev_convert_error_quark (void);

/* How the values of a source tensor are stored in memory. */
typedef enum {
  LEV_SRC_F32,      /* float32 */
  LEV_SRC_F16,      /* IEEE half */
  LEV_SRC_BF16,     /* bfloat16 */
  LEV_SRC_TERNARY,  /* int8 values in {-1, 0, +1}, one per weight; value = t * scale (LevConvTensor.scale) */
  LEV_SRC_ENCODED,  /* already in the file's encoding (LevConvTensor.encoding), encoded_size bytes: written as is */
} LevSrcType;

/* One tensor as an importer found it, under its canonical leviathan name. */
typedef struct LevConvTensor {
  gchar *name;          /* canonical name, e.g. "blk.0.attn_q" (see docs/format.md) */
  guint32 n_dims;       /* 1 or 2 */
  guint64 shape[LEV_MAX_DIMS]; /* [rows = out][cols = in] for matrices, [n] for vectors; unused = 1 */
  LevSrcType type;
  const void *data;     /* n_elements values of `type`, little-endian */
  gpointer owned;       /* g_free()d with the tensor when not NULL (data may point into it) */
  float scale;          /* LEV_SRC_TERNARY only: per-tensor scale */
  guint32 encoding;     /* LEV_SRC_ENCODED only: the LevEncoding of data */
  guint64 encoded_size; /* LEV_SRC_ENCODED only: bytes of data */
} LevConvTensor;

/* A tokenizer as an importer found it. Pieces are raw bytes, NUL-terminated for convenience. */
typedef struct LevConvVocab {
  guint32 kind;         /* LevTokenizerKind */
  guint32 flags;        /* LEV_TOKF_* */
  GPtrArray *pieces;    /* gchar* (owned), one per token id */
  GArray *piece_lens;   /* guint32 length of each piece (pieces may in principle hold NUL bytes) */
  GArray *scores;       /* float, one per token */
  GByteArray *types;    /* LevTokenType, one per token */
  GArray *merges;       /* guint32 pairs (left id, right id), by rank; LEV_TOK_BYTE_BPE only */
  guint32 pretokenizer; /* LEV_TOK_BYTE_BPE split rule */
  gint32 bos_id, eos_id, unk_id, pad_id; /* -1 when none */
} LevConvVocab;

/* The whole model as imported. */
typedef struct LevConvModel {
  LevHParams hp;        /* chat_template_* and name_* are filled by the writer from the strings below */
  gchar *name;          /* model name (e.g. the source's basename), may be NULL */
  gchar *chat_template; /* may be NULL */
  LevConvVocab *vocab;  /* may be NULL (a model without tokenizer) */
  GPtrArray *tensors;   /* LevConvTensor* (owned) */
  GPtrArray *keep;      /* GMappedFile* or other objects kept alive while tensors point into them */
} LevConvModel;

/* Returns a new empty vocabulary of the given kind (bos/eos/unk/pad = -1). */
LevConvVocab *lev_conv_vocab_new (guint32 kind);
/* Appends a piece (copied) with its score and type; returns its id. */
guint32 lev_conv_vocab_add (LevConvVocab *vocab, const gchar *piece, gsize len, float score, guint8 type);
/* Frees a vocabulary. */
void lev_conv_vocab_free (LevConvVocab *vocab);

/* A vocabulary flattened into the contiguous arrays of the file format, with a view over them. */
typedef struct LevConvVocabFlat {
  LevVocabView view;    /* points into the arrays below and into vocab's scores, types and merges */
  GByteArray *bytes;    /* all pieces, concatenated */
  GArray *offsets;      /* guint32[n_tokens + 1] */
} LevConvVocabFlat;

/* Flattens vocab (which must outlive the result) into file-format arrays. */
LevConvVocabFlat *lev_conv_vocab_flatten (const LevConvVocab *vocab);
/* Frees a flattened vocabulary. */
void lev_conv_vocab_flat_free (LevConvVocabFlat *flat);

/* Returns a new empty model (no tensors, no vocabulary). */
LevConvModel *lev_conv_model_new (void);
/* Frees a model, its tensors, its vocabulary and what it keeps alive. */
void lev_conv_model_free (LevConvModel *model);
/* Adds a tensor that points at data (kept alive elsewhere, or `owned`); returns it. */
LevConvTensor *lev_conv_model_add_tensor (LevConvModel *model, const gchar *name, LevSrcType type,
                                          guint32 n_dims, const guint64 *shape, const void *data, gpointer owned);
/* Returns the tensor called name, or NULL. */
LevConvTensor *lev_conv_model_find (LevConvModel *model, const gchar *name);
/* Checks that every tensor the architecture in model->hp needs is present with the right shape. */
gboolean lev_conv_model_validate (LevConvModel *model, GError **error);

/* Reads a whole file into *data (g_free it) and *len; FALSE with a LEV_CONVERT_ERROR_IO set. */
gboolean lev_conv_read_file (const gchar *path, gchar **data, gsize *len, GError **error);
/* Maps a file read-only; NULL with a LEV_CONVERT_ERROR_IO error when it cannot be read. */
GMappedFile *lev_conv_map_file (const gchar *path, GError **error);

G_END_DECLS
