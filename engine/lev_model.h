/* lev_model.h: the engine's internal view of a loaded model (tensors bound to layers) and of a context. */
#pragma once

#include "leviathan.h"
#include "lev_kernels.h"

/* A weight matrix [rows][cols] read in place from the mapped file. */
typedef struct LevMatrix {
  uint32_t encoding;     /* LevEncoding */
  uint32_t rows, cols;
  const void *data;      /* f32/f16/bf16 values, or int8 codes for Q8 */
  const float *scales;   /* Q8: one per row */
} LevMatrix;

/* The tensors of one transformer block; absent optional tensors are NULL. */
typedef struct LevLayer {
  const float *attn_norm, *ffn_norm;           /* NULL for bitllama2.c */
  const float *attn_sub_norm, *ffn_sub_norm;   /* BitNet */
  const float *bq, *bk, *bv;                   /* Qwen2 */
  LevMatrix wq, wk, wv, wo, w_gate, w_up, w_down;
} LevLayer;

struct LevModel {
  GMappedFile *map;
  const uint8_t *base;
  uint64_t size;
  LevHParams hp;
  gboolean has_weights;
  LevLayer *layers;
  LevMatrix tok_embd, output;                  /* output aliases tok_embd when tied */
  const float *output_norm;
  LevVocabView vocab;
  LevTokenizer *tok;
  char *chat_template;
  char *name;
};

/* Copies row `row` of m into out as floats (m->cols values). */
void lev_matrix_get_row (const LevMatrix *m, uint32_t row, float *out);
