/* lev_engine_private.h: what the engine's scheduler (lev_engine.c) and the forward pass (lev_forward.c) share. */
#pragma once

#include "leviathan-ext.h"

G_BEGIN_DECLS

/* Creates a context whose evaluations engine runs (its threads and scratch; the context holds a reference). */
LevContext *lev_context_new_on_engine (const LevModel *model, const LevContextParams *params, LevKvType kv_type,
                                       LevEngine *engine, GError **error);
/* Sizes lead's scratch for batched steps over contexts of up to n_ctx slots (attention weights, logits rows). */
void lev_context_reserve_batch (LevContext *lead, uint32_t n_ctx);
/* Runs one batched step with lead's threads and scratch: row i is tokens[i] of ctxs[i] at that context's next
 * position (a context's rows consecutive; n at most LEV_PREFILL_BLOCK); each context's position advances by its rows
 * and its logits are those of its last row. */
void lev_forward_rows (LevContext *lead, LevContext *const *ctxs, const int32_t *tokens, uint32_t n);
/* Returns how many of n tokens c takes in one block from its position (a block must not wrap the ring buffer). */
uint32_t lev_context_block_tokens (const LevContext *c, uint32_t n);
/* Checks c's logits for NaN and infinity; FALSE with LEV_ERROR_NUMERIC set (naming a bad weight) when one is. */
gboolean lev_context_check_logits (const LevContext *c, GError **error);
/* Evaluates n tokens (checked against the vocabulary) of c, a context of engine, in the engine's shared steps;
 * c's logits are those of the last token; FALSE with error set. */
gboolean lev_engine_eval (LevEngine *engine, LevContext *c, const int32_t *tokens, uint32_t n, GError **error);

/* Returns the number of threads of c's pool, the caller's included. */
uint32_t lev_context_n_threads (const LevContext *c);
/* Forgets a context of the engine being freed (lev_context_free). */
void lev_engine_forget_context (LevEngine *engine, const LevContext *c);

/* The parts of a step that the step profile (environment LEV_PROFILE_STEPS=1) times, by the step's rows. */
typedef enum {
  LEV_PROF_EMBED,             /* embeddings and RoPE tables */
  LEV_PROF_NORM,              /* norms, rotations, residual adds (single-threaded) */
  LEV_PROF_QUANT,             /* activation quantization (linear_input) */
  LEV_PROF_QKV,
  LEV_PROF_ROPE,              /* biases, RoPE of q and k, the store into the caches */
  LEV_PROF_ATTN,
  LEV_PROF_WO,
  LEV_PROF_GATE_UP,
  LEV_PROF_ACT,               /* act(gate) * up */
  LEV_PROF_DOWN,
  LEV_PROF_LOGITS,
  LEV_PROF_GAP,               /* engine: from the end of a step to the start of the next (scheduling, wake-ups) */
  LEV_PROF_WAIT,              /* engine: of the gap, the wait for the contexts of the last step to come back */
  LEV_PROF_AFTER,             /* engine: the logits check and bookkeeping after the forward pass */
  LEV_PROF_PARTS
} LevProfPart;

/* Returns whether the step profile is on (LEV_PROFILE_STEPS set); it prints its table to stderr at exit. */
gboolean lev_prof_enabled (void);
/* Adds the time since *t (nanoseconds, CLOCK_MONOTONIC) to part of steps of n rows and sets *t to now. */
void lev_prof_add (uint32_t n, LevProfPart part, int64_t *t);
/* Counts one step of n rows in the profile. */
void lev_prof_step (uint32_t n);
/* Returns the monotonic time in nanoseconds. */
int64_t lev_prof_now (void);

G_END_DECLS
