/* lev_quantize.h: quantization of float matrices to t2/t1/b1 with error compensation (lev_quantize.c). */
#pragma once

#include "lev_writer.h"

G_BEGIN_DECLS

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
  guint ef_passes;              /* error-feedback sweeps alternated with the scales' refit (1 = one sweep) */
  guint rank;                   /* rank of the low-rank adapters */
  const gchar *calib_path;      /* calibration text; NULL = text sampled from the float model (or the built-in
                                 * text with calib_builtin) */
  gboolean calib_builtin;       /* without calib_path: the built-in text instead of sampled text */
  guint64 calib_seed;           /* seed of the sampled calibration text */
  guint calib_tokens;           /* calibration tokens at most */
  guint calib_ctx;              /* tokens per calibration window (BOS included) */
  gboolean calib_lines;         /* each line of the calibration text is a text of its own, ended by EOS */
  guint n_threads;              /* threads of the calibration run (0 = all CPUs) */
  gboolean quiet;               /* no progress on stderr */
} LevQuantOptions;

/* Returns the default options for format: no compensation, row scales by absmean, 0.5% outliers, rank 4,
 * calibration on 4096 tokens sampled from the float model with seed 1. */
LevQuantOptions lev_quant_default_options (LevOutFormat format);
/* Returns the built-in calibration text (a few paragraphs of plain English; --calib-builtin). */
const gchar *lev_quant_builtin_calibration (void);
/* Quantizes the float matrices of the model's blocks in place (they become LEV_SRC_ENCODED packed tensors, with
 * "M.outliers" and "M.lora_a" / "M.lora_b" tensors added as the options ask); natively ternary matrices are left for
 * the writer's lossless path. Calibration runs the float model (written to a temporary file) over the text, or
 * without one over text it samples itself (data-free calibration, LLM-QAT's way). */
gboolean lev_quantize_model (LevConvModel *model, const LevQuantOptions *opts, GError **error);
/* Rotates the inputs of every block's linear layers: each matrix W becomes W R^T with R the randomized Hadamard
 * transform of its input (lev_hadamard, signs from seed), the model's hyperparameters record it and the engine
 * multiplies the inputs by R online, so the float model computes the same function. Natively ternary or already
 * quantized matrices are left alone with a message (they stay lossless). Run before lev_quantize_model. */
gboolean lev_rotate_model (LevConvModel *model, guint32 seed, gboolean quiet, GError **error);
/* Moves the low-rank adapter tensors of model into a new adapter model (same hyperparameters, no tokenizer); returns
 * NULL when the model has none. */
LevConvModel *lev_split_adapters (LevConvModel *model);

G_END_DECLS
