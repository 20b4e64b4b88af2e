/* lev_format.h: on-disk layout of the .leviathan model file (version 1): file header, tokenizer section header,
 * tensor directory and encodings; see docs/format.md. Internal to the engine, the converter and the tools (through
 * lev_schema.h); the hyperparameter block is in lev_hparams.h, the tokenizer's enums in lev_tokenizer.h. */
#pragma once

#include <stdint.h>
#include "lev_hparams.h"
#include "lev_tokenizer.h"

/* All integers and floats are little-endian. Every section offset is absolute (from the start of the
 * file) and a multiple of 8; tensor data is a multiple of LEV_ALIGN. */

#define LEV_MAGIC "LEVIATHN"     /* 8 bytes, no NUL */
#define LEV_VERSION 1u
#define LEV_ALIGN 64u            /* alignment of the data section and of every tensor in it */
#define LEV_MAX_LAYERS 1024u
#define LEV_TENSOR_NAME_MAX 64u  /* including the terminating NUL */
#define LEV_MAX_DIMS 4u
#define LEV_MAX_TOKENS (1u << 24) /* the most tokens a vocabulary (and vocab_size) may have */

/* ---- File header: 128 bytes at offset 0. ---- */
typedef struct LevFileHeader {
  char magic[8];               /* LEV_MAGIC */
  uint32_t version;            /* LEV_VERSION */
  uint32_t header_size;        /* sizeof (LevFileHeader) == 128 */
  uint64_t file_size;          /* total size of the file in bytes */
  uint64_t hparams_offset;     /* LevHParams */
  uint64_t hparams_size;       /* sizeof (LevHParams) */
  uint64_t strings_offset;     /* string blob (chat template, model name) */
  uint64_t strings_size;
  uint64_t tokenizer_offset;   /* tokenizer section, see LevTokenizerHeader */
  uint64_t tokenizer_size;
  uint64_t tensors_offset;     /* tensor directory: n_tensors × LevTensorEntry */
  uint64_t n_tensors;
  uint64_t data_offset;        /* data section, LEV_ALIGN-aligned */
  uint64_t data_size;
  uint8_t reserved[24];        /* zero */
} LevFileHeader;

/* ---- Tokenizer section: header, then arrays at the offsets it gives (relative to the section). ---- */
typedef struct LevTokenizerHeader {
  uint32_t kind;               /* LevTokenizerKind */
  uint32_t flags;              /* LEV_TOKF_* */
  uint32_t n_tokens;
  uint32_t n_merges;           /* LEV_TOK_BYTE_BPE only */
  int32_t bos_id, eos_id, unk_id, pad_id; /* -1 when none */
  uint32_t pretokenizer;       /* LEV_TOK_BYTE_BPE: split rule; 0 = none */
  uint32_t reserved0;
  /* offsets relative to the start of the tokenizer section, each a multiple of 4 */
  uint64_t piece_offsets_offset; /* uint32[n_tokens + 1]: piece i is bytes [off[i], off[i+1]) */
  uint64_t piece_bytes_offset;   /* raw UTF-8 bytes of all pieces */
  uint64_t piece_bytes_size;
  uint64_t scores_offset;        /* float[n_tokens] */
  uint64_t types_offset;         /* uint8[n_tokens], LevTokenType */
  uint64_t merges_offset;        /* uint32[n_merges][2]: token ids of left and right, by rank */
  uint8_t reserved[40];        /* zero */
} LevTokenizerHeader;

/* ---- Tensor directory entry: 128 bytes. ---- */
typedef enum {
  LEV_ENC_F32 = 0,
  LEV_ENC_F16 = 1,
  LEV_ENC_BF16 = 2,
  LEV_ENC_Q8 = 3,              /* int8 with one float scale per row: float scales[rows], then int8 [rows][cols] */
  /* Packed encodings (kernels/lev_qkernels.h, docs/format.md): codes[rows][row_bytes], rows padded to whole blocks
   * with zero weights, then float scales[n_scales] with n_scales = 1 (per tensor), rows (per row) or, for t2 / t1 /
   * b1, rows * groups per row (per group: scales[r][g]; a group is a block, or for t2 / b1 half a block of 64
   * weights; at most LEV_QMAX_GROUPS groups per row). */
  LEV_ENC_T2 = 4,              /* ternary, 128 weights in 32 bytes (2 bits each, code w + 1) */
  LEV_ENC_T1 = 5,              /* ternary, 160 weights in 32 bytes (5 trits per byte, 1.6 bits per weight) */
  LEV_ENC_B1 = 6,              /* binary sign bits, 128 weights in 16 bytes */
  LEV_ENC_Q4 = 7,              /* 4-bit, 64 weights in 32 bytes (code q + 8); for output heads and embeddings */
  /* Sparse outliers of the matrix [rows][cols] with the same base name (blk.N.attn_q.outliers corrects blk.N.attn_q):
   * uint32 row_ptr[rows + 1] (row r holds entries row_ptr[r] .. row_ptr[r + 1] - 1), then uint32 entries[nnz],
   * each (f16 value << 16) | column, columns strictly ascending within a row; cols <= 65536. The product with the
   * matrix adds sum value * x[column] to each row. size = 4 * (rows + 1 + nnz). */
  LEV_ENC_SPARSE = 8,
} LevEncoding;

/* Error-compensation tensors beside a body matrix M (docs/format.md, "Outliers and adapters"): "M.outliers"
 * (LEV_ENC_SPARSE), and a low-rank adapter "M.lora_a" [rows][rank] and "M.lora_b" [rank][cols], both LEV_ENC_Q8;
 * the product becomes y = M x + outliers x + lora_a (lora_b x). They may live in the model file or in a separate
 * adapter file (same format, same hyperparameters, only such tensors) mounted when the model is loaded. */
#define LEV_OUTLIERS_SUFFIX ".outliers"
#define LEV_LORA_A_SUFFIX ".lora_a"
#define LEV_LORA_B_SUFFIX ".lora_b"
#define LEV_MAX_LORA_RANK 256u

typedef struct LevTensorEntry {
  char name[LEV_TENSOR_NAME_MAX]; /* NUL-terminated, NUL-padded */
  uint32_t encoding;           /* LevEncoding */
  uint32_t n_dims;             /* 1..LEV_MAX_DIMS */
  uint64_t shape[LEV_MAX_DIMS];/* row-major, outermost first: a matrix is [rows = out][cols = in]; unused = 1 */
  uint64_t offset;             /* from the start of the data section, multiple of LEV_ALIGN */
  uint64_t size;               /* bytes, exactly what the encoding and shape give */
  uint64_t reserved;           /* zero */
} LevTensorEntry;

_Static_assert (sizeof (LevFileHeader) == 128, "LevFileHeader is 128 bytes");
_Static_assert (sizeof (LevTokenizerHeader) == 128, "LevTokenizerHeader is 128 bytes");
_Static_assert (sizeof (LevTensorEntry) == 128, "LevTensorEntry is 128 bytes");
