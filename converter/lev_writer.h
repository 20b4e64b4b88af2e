/* lev_writer.h: serializes a LevConvModel into a .leviathan file, with the output encoding chosen per tensor. */
#pragma once

#include "lev_convmodel.h"

G_BEGIN_DECLS

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

G_END_DECLS
