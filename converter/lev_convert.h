/* lev_convert.h: the converter's in-memory model (what every importer fills and the writer serializes). */
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

/* ---- Importers (one per source format). Each fills a LevConvModel or fails with a clear GError. ---- */

/* Reads a SentencePiece tokenizer.model (protobuf) into a vocabulary. */
LevConvVocab *lev_import_spm_model (const gchar *path, GError **error);
/* Reads a llama2.c tokenizer.bin into a vocabulary (SentencePiece-BPE semantics, Llama 2 defaults). */
LevConvVocab *lev_import_llama2c_tokenizer (const gchar *path, GError **error);
/* Reads a Hugging Face tokenizer.json (BPE: byte-level, or SentencePiece-style) into a vocabulary; config_path
 * (may be NULL or missing) is its tokenizer_config.json, for BOS/EOS and add_bos_token. */
LevConvVocab *lev_import_hf_tokenizer_json (const gchar *path, const gchar *config_path, GError **error);
/* Reads a tokenizer file of any kind (tokenizer.model, tokenizer.json, tokenizer.bin), chosen by its contents; a
 * directory is searched for one (see lev_import_vocab.c for the order). */
LevConvVocab *lev_import_vocab (const gchar *path, GError **error);

/* Reads a Hugging Face checkpoint directory (config.json + safetensors + tokenizer files). */
LevConvModel *lev_import_hf_dir (const gchar *dir, GError **error);
/* Reads a llama2.c checkpoint (.bin, legacy or version-1 float format). */
LevConvModel *lev_import_llama2c (const gchar *path, GError **error);
/* Reads a bitllama2.c ternary checkpoint ("ak42" magic). */
LevConvModel *lev_import_ak42 (const gchar *path, GError **error);
/* Detects the source kind of path and calls the matching importer. */
LevConvModel *lev_import_any (const gchar *path, GError **error);

/* ---- Writer ---- */

/* Output encodings for float matrices. */
typedef enum {
  LEV_OUT_AUTO,   /* keep each float tensor's source precision (f32, f16 or bf16) */
  LEV_OUT_F32,
  LEV_OUT_F16,
  LEV_OUT_BF16,
  LEV_OUT_Q8,     /* int8 with one scale per row (absmax) */
  LEV_OUT_T2,     /* packed ternary, 2 bits: block matrices; float weights absmean-quantized per row */
  LEV_OUT_T1,     /* packed ternary, 1.6 bits (5 trits per byte), as t2 otherwise */
  LEV_OUT_B1,     /* packed binary sign, 1 bit, scale mean |w| per row */
  LEV_OUT_Q4,     /* 4-bit per row (absmax / 7); mainly for token_embd and output */
} LevOutFormat;

/* Writes model (or only its vocabulary when vocab_only) to path through a temporary file renamed at the end.
 * 1-D tensors are always f32; ternary tensors are always q8 (lossless); format applies to float matrices. */
gboolean lev_write_model (const LevConvModel *model, const gchar *path, LevOutFormat format, gboolean vocab_only,
                          GError **error);
/* As lev_write_model; t2/t1/b1 apply to the blocks' matrices (ternary ones convert losslessly to t2/t1 with one
 * scale per tensor) and embd_format (LEV_OUT_AUTO: the source's precision) to token_embd and output. */
gboolean lev_write_model_full (const LevConvModel *model, const gchar *path, LevOutFormat format,
                               LevOutFormat embd_format, gboolean vocab_only, GError **error);

/* ---- Quantization with error compensation (lev_quantize.c) ---- */

typedef enum {
  LEV_COMP_NONE,                /* round each weight on its own */
  LEV_COMP_EF,                  /* error feedback: GPTQ/OBQ column sweep with the inverse Hessian of the inputs */
  LEV_COMP_EF_OUTLIERS,         /* and a share of weights kept in f16 as sparse outliers */
  LEV_COMP_EF_OUTLIERS_LOWRANK, /* and an int8 low-rank adapter of the remaining residual */
} LevCompensate;

typedef enum {
  LEV_SCALE_ROW,                /* one scale per output row */
  LEV_SCALE_TENSOR,             /* one scale per matrix */
  LEV_SCALE_GROUP,              /* one scale per block of each row: 128 weights (t2, b1), 160 (t1) */
  LEV_SCALE_GROUP64,            /* one scale per 64 weights of each row (half a block; t2, b1) */
} LevScaleMode;

typedef enum {
  LEV_FIT_ABSMEAN,              /* mean |w| (BitNet b1.58) */
  LEV_FIT_LSQ,                  /* least squares: the scale and codes that minimize |w - s q|^2 */
} LevScaleFit;

typedef struct LevQuantOptions {
  LevOutFormat format;          /* LEV_OUT_T2, LEV_OUT_T1 or LEV_OUT_B1 */
  LevCompensate compensate;
  LevScaleMode scale_mode;
  LevScaleFit fit;
  double outlier_share;         /* share of each matrix's weights kept as outliers (0.005 = 0.5%) */
  guint rank;                   /* rank of the low-rank adapters */
  const gchar *calib_path;      /* calibration text; NULL = the built-in text */
  guint calib_tokens;           /* calibration tokens at most */
  guint calib_ctx;              /* tokens per calibration window (BOS included) */
  gboolean calib_lines;         /* each line of the calibration text is a text of its own, ended by EOS */
  guint n_threads;              /* threads of the calibration run (0 = all CPUs) */
  gboolean quiet;               /* no progress on stderr */
} LevQuantOptions;

/* Returns the default options for format: no compensation, row scales by absmean, 0.5% outliers, rank 4. */
LevQuantOptions lev_quant_default_options (LevOutFormat format);
/* Returns the built-in calibration text (a few paragraphs of plain English). */
const gchar *lev_quant_builtin_calibration (void);
/* Quantizes the float matrices of the model's blocks in place (they become LEV_SRC_ENCODED packed tensors, with
 * "M.outliers" and "M.lora_a" / "M.lora_b" tensors added as the options ask); natively ternary matrices are left for
 * the writer's lossless path. Calibration runs the float model (written to a temporary file) over the text. */
gboolean lev_quantize_model (LevConvModel *model, const LevQuantOptions *opts, GError **error);
/* Moves the low-rank adapter tensors of model into a new adapter model (same hyperparameters, no tokenizer); returns
 * NULL when the model has none. */
LevConvModel *lev_split_adapters (LevConvModel *model);

G_END_DECLS
