/* lev_model.h: the engine's internal view of a loaded model (tensors bound to layers); not for use outside engine/
 * (the converter and the tools use leviathan-ext.h). */
#pragma once

#include "leviathan-ext.h"
#include "lev_kernels.h"
#include "lev_qkernels.h"

/* A weight matrix [rows][cols] read in place from the mapped file. */
typedef struct LevMatrix {
  uint32_t encoding;     /* LevEncoding */
  uint32_t rows, cols;
  const void *data;      /* f32/f16/bf16 values, int8 codes for Q8, packed codes for T2/T1/B1/Q4 */
  const float *scales;   /* Q8: one per row; packed: 1 or one per row */
  LevQMatrix q;          /* the packed encodings' view for the kernels */
  /* error compensation (LEV_ENC_SPARSE outliers and an int8 low-rank adapter); NULL / 0 when absent */
  const uint32_t *sp_rowptr;   /* [rows + 1] */
  const uint32_t *sp_entries;  /* [nnz]: column in the low 16 bits, f16 value in the high 16 */
  uint32_t sp_nnz;
  uint32_t lora_rank;
  const int8_t *lora_a, *lora_b;            /* A [rows][rank], B [rank][cols] */
  const float *lora_a_scales, *lora_b_scales; /* one per row of A and of B */
} LevMatrix;

/* The tensors of one transformer block; absent optional tensors are NULL. */
typedef struct LevLayer {
  const float *attn_norm, *ffn_norm;           /* NULL for bitllama2.c */
  const float *attn_sub_norm, *ffn_sub_norm;   /* BitNet */
  const float *bq, *bk, *bv;                   /* Qwen2 */
  LevMatrix wq, wk, wv, wo, w_gate, w_up, w_down;
} LevLayer;

struct LevModel {
  GMappedFile *map;                            /* the mapped file, or NULL when read into owned */
  uint8_t *owned;                              /* LEV_MODEL_NO_MMAP: the file read into memory (page-aligned) */
  int file_fd;                                 /* the model file, open for the model's life */
  GMappedFile *adapter_map;                    /* the mounted adapter file, or NULL */
  const uint8_t *base;
  uint64_t size;
  LevHParams hp;
  gboolean has_weights;
  LevLayer *layers;
  float *rot_signs[LEV_N_LINEAR_INPUTS];       /* LEV_HP_ROTATED: [n_layers][cols] signs of each rotated input */
  LevMatrix tok_embd, output;                  /* output aliases tok_embd when tied */
  int embd_fd;                                 /* untied: the file again, for pread of embedding rows; else -1 */
  uint64_t embd_offset;                        /* file offset of token_embd's first row */
  size_t embd_row_bytes;                       /* bytes of one row (codes or values, without scales) */
  const float *output_norm;
  LevVocabView vocab;
  LevTokenizer *tok;
  char *chat_template;
  char *name;
};

/* Copies row `row` of m into out as floats (m->cols values). */
void lev_matrix_get_row (const LevMatrix *m, uint32_t row, float *out);
/* Names the first weight (vectors and matrices in layer order) holding NaN or infinity ("tensor blk.3.attn_norm holds
 * ..."), newly allocated, or NULL when all are finite: a full pass over the weights, for the error path once a forward
 * pass produced non-finite logits. */
gchar *lev_model_find_nonfinite_weight (const LevModel *model);
/* Copies the embedding of token into out (dim floats); scratch holds at least 4 * dim + 64 bytes. Untied tables
 * are read with pread, so that looking rows up does not keep the table resident. */
void lev_model_embedding (const LevModel *model, uint32_t token, float *out, uint8_t *scratch);
/* Returns the number of bytes of m that a product with it reads (codes, scales, outliers and adapter). */
uint64_t lev_matrix_bytes (const LevMatrix *m);

