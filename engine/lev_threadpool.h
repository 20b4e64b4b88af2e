/* lev_threadpool.h: a persistent pool of worker threads that run one parallel job at a time. */
#pragma once

#include <stdint.h>

typedef struct LevThreadPool LevThreadPool;

/* A job body: called once on every thread with its index ith in [0, nth). */
typedef void (*LevPoolFn) (void *arg, uint32_t ith, uint32_t nth);

/* Starts n_threads - 1 workers (the caller is thread 0); NULL if threads cannot be created. */
LevThreadPool *lev_threadpool_new (uint32_t n_threads);
/* Stops and joins the workers. */
void lev_threadpool_free (LevThreadPool *pool);
/* Returns the number of threads including the caller. */
uint32_t lev_threadpool_size (const LevThreadPool *pool);
/* Runs fn on every thread and returns when all have finished. Allocates nothing. */
void lev_threadpool_run (LevThreadPool *pool, LevPoolFn fn, void *arg);
