/* lev_threadpool.c: persistent worker threads; spin briefly for the next job, then sleep on a condition. */
#include "lev_threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#define LEV_SPIN_ROUNDS 20000

struct LevThreadPool {
  uint32_t n_threads;
  pthread_t *threads;
  pthread_mutex_t mutex;
  pthread_cond_t cond;
  atomic_uint generation;   /* bumped for every job */
  atomic_uint pending;      /* workers still running the current job */
  atomic_bool quit;
  LevPoolFn fn;
  void *arg;
};

typedef struct {
  LevThreadPool *pool;
  uint32_t index;
} WorkerArg;

static inline void
cpu_relax (void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause ();
#elif defined(__aarch64__)
  __asm__ __volatile__ ("yield");
#endif
}

static void *
worker_main (void *p)
{
  WorkerArg *wa = p;
  LevThreadPool *pool = wa->pool;
  uint32_t index = wa->index;
  free (wa);
  unsigned seen = 0;
  for (;;) {
    unsigned gen;
    int spins = 0;
    while ((gen = atomic_load_explicit (&pool->generation, memory_order_acquire)) == seen
           && !atomic_load (&pool->quit) && spins < LEV_SPIN_ROUNDS) {
      cpu_relax ();
      spins++;
    }
    if (gen == seen && !atomic_load (&pool->quit)) {
      pthread_mutex_lock (&pool->mutex);
      while ((gen = atomic_load (&pool->generation)) == seen && !atomic_load (&pool->quit))
        pthread_cond_wait (&pool->cond, &pool->mutex);
      pthread_mutex_unlock (&pool->mutex);
    }
    if (atomic_load (&pool->quit))
      return NULL;
    seen = gen;
    pool->fn (pool->arg, index, pool->n_threads);
    atomic_fetch_sub_explicit (&pool->pending, 1, memory_order_release);
  }
}

LevThreadPool *
lev_threadpool_new (uint32_t n_threads)
{
  if (n_threads == 0)
    n_threads = 1;
  LevThreadPool *pool = calloc (1, sizeof *pool);
  if (!pool)
    return NULL;
  pool->n_threads = n_threads;
  pthread_mutex_init (&pool->mutex, NULL);
  pthread_cond_init (&pool->cond, NULL);
  atomic_init (&pool->generation, 0);
  atomic_init (&pool->pending, 0);
  atomic_init (&pool->quit, false);
  pool->threads = calloc (n_threads, sizeof (pthread_t));
  if (!pool->threads) {
    free (pool);
    return NULL;
  }
  for (uint32_t i = 1; i < n_threads; i++) {
    WorkerArg *wa = malloc (sizeof *wa);
    if (wa) {
      wa->pool = pool;
      wa->index = i;
    }
    if (!wa || pthread_create (&pool->threads[i], NULL, worker_main, wa) != 0) {
      free (wa);
      pool->n_threads = i;      /* join the ones that did start */
      lev_threadpool_free (pool);
      return NULL;
    }
  }
  return pool;
}

void
lev_threadpool_free (LevThreadPool *pool)
{
  if (!pool)
    return;
  pthread_mutex_lock (&pool->mutex);
  atomic_store (&pool->quit, true);
  pthread_cond_broadcast (&pool->cond);
  pthread_mutex_unlock (&pool->mutex);
  for (uint32_t i = 1; i < pool->n_threads; i++)
    pthread_join (pool->threads[i], NULL);
  pthread_mutex_destroy (&pool->mutex);
  pthread_cond_destroy (&pool->cond);
  free (pool->threads);
  free (pool);
}

uint32_t
lev_threadpool_size (const LevThreadPool *pool)
{
  return pool->n_threads;
}

void
lev_threadpool_run (LevThreadPool *pool, LevPoolFn fn, void *arg)
{
  if (pool->n_threads == 1) {
    fn (arg, 0, 1);
    return;
  }
  pool->fn = fn;
  pool->arg = arg;
  atomic_store_explicit (&pool->pending, pool->n_threads - 1, memory_order_relaxed);
  pthread_mutex_lock (&pool->mutex);
  atomic_fetch_add_explicit (&pool->generation, 1, memory_order_release);
  pthread_cond_broadcast (&pool->cond);
  pthread_mutex_unlock (&pool->mutex);
  fn (arg, 0, pool->n_threads);
  int spins = 0;
  while (atomic_load_explicit (&pool->pending, memory_order_acquire) != 0) {
    if (++spins < LEV_SPIN_ROUNDS)
      cpu_relax ();
    else
      sched_yield ();
  }
}
