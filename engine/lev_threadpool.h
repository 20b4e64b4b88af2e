/* lev_threadpool.h: a persistent pool of worker threads that run one parallel job at a time, in chunks. */
#pragma once

#include <stdint.h>

typedef struct LevThreadPool LevThreadPool;

/* A chunked job body: processes chunk `chunk` of the job; `slot` is unique among the chunks running at the same
 * moment and below the pool's size (for per-thread scratch). */
typedef void (*LevPoolChunkFn) (void *arg, uint32_t chunk, uint32_t slot);
/* A job body: called once for every ith in [0, nth) (not necessarily on thread ith). */
typedef void (*LevPoolFn) (void *arg, uint32_t ith, uint32_t nth);

/* Starts n_threads - 1 workers (the caller is thread 0); NULL if threads cannot be created. */
LevThreadPool *lev_threadpool_new (uint32_t n_threads);
/* Stops and joins the workers. */
void lev_threadpool_free (LevThreadPool *pool);
/* Returns the number of threads including the caller. */
uint32_t lev_threadpool_size (const LevThreadPool *pool);
/* Runs fn on chunks 0 .. n_chunks - 1, each exactly once, on whichever threads are running (the caller takes
 * chunks too, so a descheduled worker delays nothing it has not started), and returns when all are done.
 * Allocates nothing. */
void lev_threadpool_run_chunks (LevThreadPool *pool, LevPoolChunkFn fn, void *arg, uint32_t n_chunks);
/* Runs fn for every ith in [0, nth) with nth the pool's size and returns when all have finished. Allocates
 * nothing. */
void lev_threadpool_run (LevThreadPool *pool, LevPoolFn fn, void *arg);
