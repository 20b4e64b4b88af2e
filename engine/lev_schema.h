/* lev_schema.h: the one owner of the file format's facts: each architecture's tensors and their shapes, and the
 * encodings' names and sizes. The loader, the converter, levbench's synthetic models and the quantizer use it. */
#pragma once

#include <glib.h>
#include <stdint.h>
#include "lev_format.h"

G_BEGIN_DECLS

/* ---- Encodings (LevEncoding) ---- */

/* Weights of one scale group of the half-block layout (t2, b1: "group64"); the other group is one whole block. */
#define LEV_HALF_BLOCK_GROUP_WEIGHTS 64u

/* Returns the short name of an encoding ("f32", "f16", "bf16", "q8", "t2", "t1", "b1", "q4", "sparse") or NULL. */
const char *lev_encoding_name (uint32_t enc);
/* Finds the encoding called name (as lev_encoding_name gives it); FALSE when there is none. */
gboolean lev_encoding_from_name (const char *name, uint32_t *enc);
/* Returns the bytes of a tensor of encoding enc with `rows` rows (the outermost dimension) of `cols` values each
 * (cols = the product of the other dimensions; 1 for a vector). `extra` is the packed encodings' scale count
 * (1, rows or rows * groups) and the sparse encoding's entry count; other encodings ignore it. 0 on overflow or an
 * unknown encoding. */
uint64_t lev_encoding_size (uint32_t enc, uint64_t rows, uint64_t cols, uint64_t extra);
/* Fills counts with the scale counts a packed [rows][cols] matrix of enc may have (one per tensor, one per row, one
 * per block of each row, one per half block of each row) and returns how many apply (0 for unpacked encodings). */
guint lev_encoding_scale_counts (uint32_t enc, uint64_t rows, uint64_t cols, uint64_t counts[4]);

/* ---- Tensors of each architecture ---- */

/* The seven linear layers of a block, in the order the forward pass runs them. */
typedef enum {
  LEV_LINEAR_ATTN_Q = 0,
  LEV_LINEAR_ATTN_K,
  LEV_LINEAR_ATTN_V,
  LEV_LINEAR_ATTN_O,
  LEV_LINEAR_FFN_GATE,
  LEV_LINEAR_FFN_UP,
  LEV_LINEAR_FFN_DOWN,
  LEV_N_LINEAR,
} LevLinear;

/* The four inputs of a block's linear layers, the `which` of LevLinearObserver (leviathan-ext.h). */
typedef enum {
  LEV_LINEAR_INPUT_QKV = 0,      /* the normed residual, read by attn_q, attn_k, attn_v */
  LEV_LINEAR_INPUT_ATTN_OUT = 1, /* the attention output, read by attn_o */
  LEV_LINEAR_INPUT_GATE_UP = 2,  /* the normed residual, read by ffn_gate, ffn_up */
  LEV_LINEAR_INPUT_DOWN = 3,     /* act(gate) * up, read by ffn_down */
  LEV_N_LINEAR_INPUTS = 4,
} LevLinearInput;

/* Returns the tensor name of a block's linear layer without the "blk.N." prefix ("attn_q", ..., "ffn_down"). */
const char *lev_linear_name (LevLinear which);
/* Returns the input a linear layer reads. */
LevLinearInput lev_linear_input (LevLinear which);

/* What a tensor is for (which field of the model it fills). */
typedef enum {
  LEV_TENSOR_TOKEN_EMBD,
  LEV_TENSOR_OUTPUT_NORM,
  LEV_TENSOR_OUTPUT,
  LEV_TENSOR_ATTN_NORM,
  LEV_TENSOR_FFN_NORM,
  LEV_TENSOR_LINEAR,           /* one of the seven LevLinear matrices (LevSchemaTensor.linear) */
  LEV_TENSOR_ATTN_Q_BIAS,
  LEV_TENSOR_ATTN_K_BIAS,
  LEV_TENSOR_ATTN_V_BIAS,
  LEV_TENSOR_ATTN_SUB_NORM,
  LEV_TENSOR_FFN_SUB_NORM,
} LevTensorRole;

/* One tensor of a model: name, shape (from the hyperparameters) and whether the model must have it. */
typedef struct LevSchemaTensor {
  char name[LEV_TENSOR_NAME_MAX];
  LevTensorRole role;
  LevLinear linear;            /* LEV_TENSOR_LINEAR only */
  int32_t layer;               /* the block, or -1 for token_embd, output_norm and output */
  uint32_t n_dims;             /* 1: a vector (always f32), 2: a matrix [rows = out][cols = in] */
  uint64_t shape[2];           /* unused = 1 */
  gboolean required;           /* TRUE: the architecture and flags need it (and a writer writes exactly these);
                                * FALSE: a reader tolerates and uses it when present, a writer never writes it */
} LevSchemaTensor;

/* Returns the tensors a model of hyperparameters hp holds, in the canonical file order (token_embd, output_norm,
 * output, then each block: attn_norm, ffn_norm, the seven matrices, the q/k/v biases, the sub-norms), required ones
 * and tolerated optional ones; *n is their number. Free with g_free. hp's sizes must be checked first. */
LevSchemaTensor *lev_schema_tensors (const LevHParams *hp, size_t *n);
/* Returns whether the block matrices of a model of hp are natively ternary in its checkpoint (bitllama2.c, and
 * BitNet with activation quantization; a BitNet float twin has float ones). */
gboolean lev_schema_ternary_linears (const LevHParams *hp);

G_END_DECLS
