/* lev_format.h: on-disk layout of the .leviathan model file (version 1); see docs/format.md. */
#pragma once

#include <stdint.h>

/* All integers and floats are little-endian. Every section offset is absolute (from the start of the
 * file) and a multiple of 8; tensor data is a multiple of LEV_ALIGN. */

#define LEV_MAGIC "LEVIATHN"     /* 8 bytes, no NUL */
#define LEV_VERSION 1u
#define LEV_ALIGN 64u            /* alignment of the data section and of every tensor in it */
#define LEV_MAX_LAYERS 1024u
#define LEV_TENSOR_NAME_MAX 64u  /* including the terminating NUL */
#define LEV_MAX_DIMS 4u

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

/* Architectures (what the forward pass does between the shapes). */
typedef enum {
  LEV_ARCH_LLAMA = 1,          /* LLaMA / TinyLlama / Llama 2 / Llama 3, llama2.c checkpoints */
  LEV_ARCH_QWEN2 = 2,          /* Qwen2 / Qwen2.5: LLaMA with q/k/v biases */
  LEV_ARCH_BITNET = 3,         /* BitNet b1.58 with sub-norms (1bitLLM and 2B4T layouts) */
  LEV_ARCH_BITLLAMA2C = 4,     /* bitllama2.c: BitLinear with its parameter-free norm, no layer norms */
} LevArch;

typedef enum {
  LEV_ROPE_INTERLEAVED = 0,    /* pairs (2i, 2i+1) rotate together: llama2.c, Meta's original layout */
  LEV_ROPE_HALF = 1,           /* pairs (i, i + head_dim/2): Hugging Face rotate_half, NEOX */
} LevRopeStyle;

typedef enum {
  LEV_ROPE_SCALING_NONE = 0,
  LEV_ROPE_SCALING_LINEAR = 1, /* positions divided by factor */
  LEV_ROPE_SCALING_LLAMA3 = 2, /* Llama 3.1 frequency-dependent scaling */
} LevRopeScaling;

typedef enum {
  LEV_ACT_SILU = 0,            /* silu(gate) * up */
  LEV_ACT_RELU2 = 1,           /* relu(gate)^2 * up */
  LEV_ACT_GELU = 2,            /* gelu(gate) * up (tanh approximation) */
} LevActivation;

/* Model flags (LevHParams.flags). */
enum {
  LEV_HP_QKV_BIAS = 1u << 0,        /* blk.N.attn_{q,k,v}_bias present */
  LEV_HP_SUB_NORMS = 1u << 1,       /* blk.N.attn_sub_norm before attn_o, blk.N.ffn_sub_norm before ffn_down */
  LEV_HP_TIED_EMBEDDINGS = 1u << 2, /* no "output" tensor: logits use token_embd */
  LEV_HP_ACT_QUANT = 1u << 3,       /* per-token absmax int8 quantization of every linear input in the blocks */
  LEV_HP_BITLINEAR_NORM = 1u << 4,  /* bitllama2.c: x / (rms(x) * n) without eps before each linear */
  LEV_HP_ACT_ROUND_AWAY = 1u << 5,  /* activation quantization rounds halves away from zero (C round) not to even */
};

/* ---- Hyperparameters: 256 bytes. ---- */
typedef struct LevHParams {
  uint32_t arch;               /* LevArch */
  uint32_t flags;              /* LEV_HP_* */
  uint32_t dim;                /* model (residual) width */
  uint32_t n_layers;
  uint32_t n_heads;
  uint32_t n_kv_heads;         /* n_heads % n_kv_heads == 0 */
  uint32_t head_dim;           /* usually dim / n_heads; even */
  uint32_t ffn_dim;            /* hidden width of the feed-forward block */
  uint32_t vocab_size;         /* rows of token_embd and output */
  uint32_t max_ctx;            /* context length the model was trained with */
  float norm_eps;              /* RMSNorm epsilon */
  float rope_theta;            /* RoPE base */
  uint32_t rope_style;         /* LevRopeStyle */
  uint32_t rope_scaling;       /* LevRopeScaling */
  float rope_factor;           /* scaling factor (linear, llama3) */
  float rope_low_freq_factor;  /* llama3 */
  float rope_high_freq_factor; /* llama3 */
  uint32_t rope_orig_ctx;      /* llama3: original_max_position_embeddings */
  uint32_t activation;         /* LevActivation */
  int32_t bos_id;              /* -1 when none */
  int32_t eos_id;              /* -1 when none */
  uint32_t chat_template_offset; /* into the string blob; length 0 when none */
  uint32_t chat_template_len;
  uint32_t name_offset;        /* model name, into the string blob */
  uint32_t name_len;
  uint8_t reserved[156];       /* zero */
} LevHParams;

/* ---- Tokenizer section: header, then arrays at the offsets it gives (relative to the section). ---- */
typedef enum {
  LEV_TOK_NONE = 0,
  LEV_TOK_SPM_BPE = 1,         /* SentencePiece BPE: merge the adjacent pair with the highest score */
  LEV_TOK_BYTE_BPE = 2,        /* byte-level BPE with a ranked merge list (GPT-2 / Llama 3 / Qwen2) */
} LevTokenizerKind;

/* Tokenizer flags (LevTokenizerHeader.flags). */
enum {
  LEV_TOKF_ADD_DUMMY_PREFIX = 1u << 0,   /* prepend one "▁" (SentencePiece add_dummy_prefix) */
  LEV_TOKF_REMOVE_EXTRA_WS = 1u << 1,    /* strip and collapse runs of spaces before encoding */
  LEV_TOKF_BYTE_FALLBACK = 1u << 2,      /* unknown characters become <0xXX> byte tokens */
  LEV_TOKF_ESCAPE_WS = 1u << 3,          /* spaces are written as "▁" (U+2581) */
  LEV_TOKF_ADD_BOS = 1u << 4,            /* a prompt starts with bos_id by default */
  LEV_TOKF_ADD_EOS = 1u << 5,
  LEV_TOKF_NFC = 1u << 6,                /* NFC-normalize input text */
  LEV_TOKF_SPLIT_ADDED = 1u << 7,        /* Hugging Face: control, user-defined and unknown pieces written in the
                                          * text are matched (longest first) before normalization and splitting */
  LEV_TOKF_IGNORE_MERGES = 1u << 8,      /* byte-level BPE: a pre-token that is a whole piece skips the merges */
};

/* Pre-tokenizer split rules of byte-level BPE (LevTokenizerHeader.pretokenizer). */
typedef enum {
  LEV_PRETOK_NONE = 0,         /* the whole text (between added tokens) is one pre-token */
  LEV_PRETOK_GPT2 = 1,         /* GPT-2's pattern: 's|'t|..| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
  LEV_PRETOK_LLAMA3 = 2,       /* Llama 3 (tiktoken cl100k): case-insensitive contractions, \p{N}{1,3}, ... */
  LEV_PRETOK_QWEN2 = 3,        /* Qwen2: the Llama 3 pattern with single digits (\p{N}) */
} LevPretokenizer;

/* SentencePiece piece types (same numbers as sentencepiece_model.proto). */
typedef enum {
  LEV_TOKTYPE_NORMAL = 1,
  LEV_TOKTYPE_UNKNOWN = 2,
  LEV_TOKTYPE_CONTROL = 3,
  LEV_TOKTYPE_USER_DEFINED = 4,
  LEV_TOKTYPE_UNUSED = 5,
  LEV_TOKTYPE_BYTE = 6,
} LevTokenType;

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
_Static_assert (sizeof (LevHParams) == 256, "LevHParams is 256 bytes");
_Static_assert (sizeof (LevTokenizerHeader) == 128, "LevTokenizerHeader is 128 bytes");
_Static_assert (sizeof (LevTensorEntry) == 128, "LevTensorEntry is 128 bytes");
