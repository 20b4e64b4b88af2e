/* leviathan.h: the public C API of the Leviathan engine: load a model, run it, sample from it. */
#pragma once

#include <glib.h>
#include <stdint.h>
#include "lev_tokenizer.h"

G_BEGIN_DECLS

#define LEV_ERROR (lev_error_quark ())
typedef enum {
  LEV_ERROR_IO,        /* the file could not be opened or mapped */
  LEV_ERROR_FORMAT,    /* the file is not a valid .leviathan file (the message says what is wrong) */
  LEV_ERROR_NO_WEIGHTS,/* a tokenizer-only file was used where weights are needed */
  LEV_ERROR_ARGUMENT,  /* an invalid parameter (context size, token id, ...) */
  LEV_ERROR_NUMERIC,   /* the model produced a logit that is NaN or infinite (bad weights or overflow) */
} LevError;

/* Returns the GQuark of LEV_ERROR. */
GQuark lev_error_quark (void);

/* Prompt tokens the engine evaluates together in one pass over the weights: front ends that feed a prompt to
 * lev_context_eval_batch in pieces use blocks of this many tokens. */
#define LEV_PREFILL_BLOCK 32u
/* Context slots a front end allocates when the user gives no context length: the model's max_ctx, at most this. */
#define LEV_DEFAULT_CONTEXT_CAP 4096u

/* A loaded model: the mapped file plus views into it. Immutable and shareable between contexts. */
typedef struct LevModel LevModel;
/* Per-sequence state: KV cache, scratch buffers, worker threads. One thread at a time. */
typedef struct LevContext LevContext;

/* Maps and validates a .leviathan file; NULL with error set (one message naming the problem) if it is bad. */
LevModel *lev_model_load (const char *path, GError **error);
/* As lev_model_load, then mounts an adapter file (outliers and low-rank adapters made by levconvert --adapter-out)
 * over the model's matrices; adapter_path NULL loads the model alone. The adapter must match the model's shapes. */
LevModel *lev_model_load_with_adapter (const char *path, const char *adapter_path, GError **error);
/* Worker threads a context runs at most (front ends refuse more than this in their --threads). */
#define LEV_MAX_THREADS 64u

/* Flags of LevModelParams. */
typedef enum {
  /* read the file into memory instead of mapping it: a mapped file truncated or rewritten by another process kills
   * this one with SIGBUS (docs/robustness.md); read, it costs the file's size in memory and a read at load */
  LEV_MODEL_NO_MMAP = 1u << 0,
  /* scan every weight at load and refuse a model holding NaN or infinity (a full pass over the file) */
  LEV_MODEL_CHECK_TENSORS = 1u << 1,
} LevModelFlags;

/* How lev_model_load_full opens a model; all zero is lev_model_load's behaviour. */
typedef struct {
  uint32_t flags;              /* LevModelFlags */
  const char *adapter_path;    /* an adapter file to mount (lev_model_load_with_adapter), or NULL */
} LevModelParams;

/* Loads a model as params say (mapped or read, weights scanned, adapter mounted); NULL with error set. In every mode
 * the file must be a regular file and keep its identity (device, inode, size, mtime) between open and map/read. */
LevModel *lev_model_load_full (const char *path, const LevModelParams *params, GError **error);
/* Unmaps the model. Contexts made from it must be freed first. */
void lev_model_free (LevModel *model);
/* Returns the model's architecture (a LevArch value; lev_arch_name names it). */
uint32_t lev_model_arch (const LevModel *model);
/* Returns the number of token ids the model scores (the length of a logits vector). */
uint32_t lev_model_vocab_size (const LevModel *model);
/* Returns the context length the model was trained with. */
uint32_t lev_model_max_ctx (const LevModel *model);
/* Returns the model's beginning-of-sequence token id, or -1 when it has none. */
int32_t lev_model_bos_id (const LevModel *model);
/* Returns the model's end-of-sequence token id, or -1 when it has none. */
int32_t lev_model_eos_id (const LevModel *model);
/* Returns the model's tokenizer, or NULL when the file has none. Owned by the model. */
const LevTokenizer *lev_model_tokenizer (const LevModel *model);
/* Returns whether the file holds weights (FALSE for a tokenizer-only file). */
gboolean lev_model_has_weights (const LevModel *model);
/* Returns the chat template stored in the file (NUL-terminated copy owned by the model) or NULL. */
const char *lev_model_chat_template (const LevModel *model);
/* Returns the model's name, or "" when it has none. */
const char *lev_model_name (const LevModel *model);
/* Returns the name of the encoding of the blocks' weight matrices ("t2", "t1", "b1", "q4", "q8", "f16", "bf16",
 * "f32"; the one holding most of their weights when they differ), or NULL for a file without weights. */
const char *lev_model_encoding_name (const LevModel *model);
/* Returns a short name of the architecture ("llama", "qwen2", "bitnet", "bitllama2c"). */
const char *lev_arch_name (uint32_t arch);
/* Returns which packed kernels this process uses: the implementation measured fastest for each encoding, one token
 * and token tiles ("t2 avx2/avx512, t1 ..."), or the set forced by LEV_KERNELS. */
const char *lev_kernels_name (void);

typedef enum {
  LEV_ACT_QUANT_AUTO = 0, /* as the model's flags say */
  LEV_ACT_QUANT_OFF = 1,  /* float activations even where the model was trained with int8 ones */
  LEV_ACT_QUANT_ON = 2,
} LevActQuantMode;

typedef struct LevContextParams {
  uint32_t n_ctx;        /* KV cache slots; 0 = the model's max_ctx */
  uint32_t n_sink;       /* attention-sink positions kept when the window slides (default 4) */
  uint32_t n_threads;    /* worker threads, 0 = number of CPUs; more than LEV_MAX_THREADS run as LEV_MAX_THREADS */
  uint32_t act_quant;    /* LevActQuantMode */
} LevContextParams;

/* Element types of the KV cache. */
typedef enum {
  LEV_KV_F32 = 0,        /* exact (the default) */
  LEV_KV_F16 = 1,        /* IEEE half: half the memory and bytes read */
  LEV_KV_Q8 = 2,         /* int8 with one float scale per token and kv head (absmax): a quarter */
} LevKvType;

/* Returns the name of a KV cache type ("f32", "f16", "q8"), or NULL. */
const char *lev_kv_type_name (uint32_t kv_type);
/* Parses a KV cache type name ("f32", "f16", "q8") into *out; FALSE for any other. */
gboolean lev_kv_type_from_name (const char *name, LevKvType *out);

/* The memory a model and one context of it take, in bytes. */
typedef struct {
  uint64_t weights;      /* the model file: mapped (each token reads all of it, so it becomes resident) or read */
  uint64_t kv_cache;     /* keys and values of every layer for n_ctx tokens (q8: and their scales) */
  uint64_t scratch;      /* activations of a prompt block, attention rows per thread, logits, tables */
  uint64_t total;        /* the sum */
} LevMemoryEstimate;

/* Fills *est with what lev_context_new_kv (model, params, kv_type) would allocate plus the model file, without
 * allocating anything: what a device needs free before the context is made. */
void lev_context_memory_estimate (const LevModel *model, const LevContextParams *params, LevKvType kv_type,
                                  LevMemoryEstimate *est);

/* Returns the default context parameters. */
LevContextParams lev_context_default_params (void);
/* Creates a context (allocates the whole KV cache once); NULL with error set on bad parameters. */
LevContext *lev_context_new (const LevModel *model, const LevContextParams *params, GError **error);
/* Frees a context and stops its worker threads. */
void lev_context_free (LevContext *ctx);
/* Forgets the sequence: the next token is evaluated at position 0. */
void lev_context_reset (LevContext *ctx);
/* Returns the number of tokens evaluated since the last reset (can exceed n_ctx). */
uint64_t lev_context_pos (const LevContext *ctx);
/* Returns the number of KV cache slots. */
uint32_t lev_context_n_ctx (const LevContext *ctx);
/* Evaluates token at the next position and returns the logits (vocab_size floats, owned by ctx, valid until the
 * next call); NULL with error set if token is out of range. */
const float *lev_context_eval (LevContext *ctx, int32_t token, GError **error);
/* Evaluates n tokens at the next positions (a prompt block: every weight tile is unpacked once for all of them)
 * and returns the logits of the last one (as lev_context_eval does for a single token); NULL with error set if a
 * token is out of range. */
const float *lev_context_eval_batch (LevContext *ctx, const int32_t *tokens, uint32_t n, GError **error);

/* ---- Engines: one model and one pool of threads shared by many contexts, their evaluations batched ---- */

/* A model with one pool of worker threads that evaluates the contexts made on it (lev_engine_context_new): the
 * evaluations that their threads ask for at the same time run as one batched step, one pass over the weights for
 * all their tokens (decode tokens first, prompt blocks filling the rest of the step). Refcounted, thread-safe. */
typedef struct LevEngine LevEngine;

/* Counters of an engine's batched steps. */
typedef struct LevEngineStats {
  uint64_t steps;              /* passes over the weights */
  uint64_t rows;               /* tokens evaluated in them */
  uint32_t max_rows;           /* the most tokens one step evaluated */
  uint32_t max_contexts;       /* the most contexts one step served */
  uint32_t contexts;           /* contexts alive on the engine now */
  uint64_t waits;              /* steps that waited for contexts of the step before to come back */
} LevEngineStats;

/* Creates an engine over model (which must outlive it) with n_threads workers (0: one per CPU) and activation mode
 * act_quant (a LevActQuantMode) for all its contexts; NULL with error set. */
LevEngine *lev_engine_new (const LevModel *model, uint32_t n_threads, uint32_t act_quant, GError **error);
/* Adds a reference to the engine and returns it. */
LevEngine *lev_engine_ref (LevEngine *engine);
/* Drops a reference; the last one (contexts hold one each) stops the threads. */
void lev_engine_unref (LevEngine *engine);
/* Returns the engine's model. */
const LevModel *lev_engine_model (const LevEngine *engine);
/* Returns the number of threads of the engine's pool, the caller's included. */
uint32_t lev_engine_n_threads (const LevEngine *engine);
/* Fills stats with the engine's counters so far. */
void lev_engine_get_stats (LevEngine *engine, LevEngineStats *stats);
/* Creates a context on the engine (its own KV cache and position; the engine's threads, scratch and activation mode:
 * params' n_threads and act_quant are not used); lev_context_eval / _eval_batch on it may be called from any thread,
 * one at a time per context, and calls on different contexts share the engine's steps. NULL with error set. */
LevContext *lev_engine_context_new (LevEngine *engine, const LevContextParams *params, GError **error);
/* Says that the engine's context will not evaluate again soon (its generation ended): the engine's next step does
 * not wait for it to come back (a step otherwise waits up to half a step's time for the contexts of the last one).
 * Its next evaluation needs no other call. */
void lev_engine_context_idle (LevEngine *engine, const LevContext *ctx);
/* Returns the engine the context runs on, or NULL for a context with threads of its own. */
LevEngine *lev_context_engine (const LevContext *ctx);
/* Evaluates one token for each of n distinct contexts of one engine (tokens[i] at the next position of ctxs[i]) in
 * as few steps as the batch allows (one for n up to LEV_PREFILL_BLOCK); each context's logits are then
 * lev_context_logits. FALSE with error set (a token out of range: nothing evaluated). */
gboolean lev_context_eval_multi (LevContext *const *ctxs, const int32_t *tokens, uint32_t n, GError **error);
/* Returns the logits of the context's last evaluated token (vocab_size floats, owned by the context). */
const float *lev_context_logits (const LevContext *ctx);

/* ---- Sampling ---- */
typedef struct LevSamplerParams {
  float temperature;     /* 0 = greedy (argmax, first maximal index) */
  int32_t top_k;         /* 0 = off */
  float top_p;           /* 1 = off */
  float min_p;           /* 0 = off */
  float repeat_penalty;  /* 1 = off; divides positive logits and multiplies negative ones of recent tokens */
  uint32_t repeat_last_n;/* how many recent tokens the penalty looks at */
  uint64_t seed;         /* same seed, same text */
} LevSamplerParams;

/* The ranges of the sampler's parameters that every front end accepts (levrun's options, the element's and
 * Lev.Generator's properties, the session): checked by lev_sampler_params_check, NaN and infinity never pass. */
#define LEV_SAMPLER_TEMPERATURE_MAX 100.0      /* temperature in [0, 100] */
#define LEV_SAMPLER_TOP_P_MIN 0.01             /* top_p in [0.01, 1] */
#define LEV_SAMPLER_REPEAT_PENALTY_MIN 0.05    /* repeat_penalty in [0.05, 10]; min_p in [0, 1], top_k >= 0 */
#define LEV_SAMPLER_REPEAT_PENALTY_MAX 10.0
#define LEV_SAMPLER_MAX_REPEAT_LAST_N 65536u   /* repeat_last_n in [0, 65536]: the history ring is allocated whole */

typedef struct LevSampler LevSampler;

/* Checks sampler parameters against the LEV_SAMPLER_* ranges; FALSE with error naming the first one out of range. */
gboolean lev_sampler_params_check (const LevSamplerParams *params, GError **error);

/* Returns the default sampler parameters (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, no penalty). */
LevSamplerParams lev_sampler_default_params (void);
/* Creates a sampler for a vocabulary of n_vocab tokens. */
LevSampler *lev_sampler_new (const LevSamplerParams *params, uint32_t n_vocab);
/* Frees a sampler. */
void lev_sampler_free (LevSampler *sampler);
/* Records a token in the history that the repetition penalty looks at (prompt and generated tokens). */
void lev_sampler_accept (LevSampler *sampler, int32_t token);
/* Picks the next token from logits (not modified). */
int32_t lev_sampler_sample (LevSampler *sampler, const float *logits);
/* Clears the history and re-seeds the random generator. */
void lev_sampler_reset (LevSampler *sampler);

G_END_DECLS
