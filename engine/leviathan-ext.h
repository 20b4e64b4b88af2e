/* leviathan-ext.h: the engine's extension API for the converter and the tools (not for applications): the file
 * format (lev_format.h, its hyperparameter block lev_hparams.h) and its facts (lev_schema.h), KV cache types, byte
 * counts and the calibration hook. */
#pragma once

#include "leviathan.h"
#include "lev_format.h"
#include "lev_schema.h"

G_BEGIN_DECLS

/* As lev_context_new, with the KV cache stored as kv_type. */
LevContext *lev_context_new_kv (const LevModel *model, const LevContextParams *params, LevKvType kv_type,
                                GError **error);
/* As lev_engine_context_new, with the KV cache stored as kv_type. */
LevContext *lev_engine_context_new_kv (LevEngine *engine, const LevContextParams *params, LevKvType kv_type,
                                       GError **error);
/* Returns the bytes the KV cache holds per token of context. */
uint64_t lev_context_kv_bytes_per_token (const LevContext *ctx);

/* Returns the model's hyperparameters (the file's hyperparameter block, lev_hparams.h), for the tools that need the
 * model's shape; applications use the accessors of leviathan.h (lev_model_vocab_size, ...). */
const LevHParams *lev_model_hparams (const LevModel *model);
/* Returns the number of bytes one decoded token reads from weights (body, head, one embedding row). */
uint64_t lev_model_bytes_per_token (const LevModel *model);
/* Called with the float input of the linear layers of `layer` (which: a LevLinearInput, lev_schema.h): n rows of
 * cols values, ldx floats apart. */
typedef void (*LevLinearObserver) (void *user, uint32_t layer, uint32_t which, const float *x, size_t ldx, uint32_t n,
                                   uint32_t cols);
/* Installs (or, with fn NULL, removes) an observer of every linear input: the converter's calibration. */
void lev_context_set_linear_observer (LevContext *ctx, LevLinearObserver fn, void *user);
/* Returns the largest low-rank adapter rank of the model's matrices (0 without adapters). */
uint32_t lev_model_max_lora_rank (const LevModel *model);

G_END_DECLS
