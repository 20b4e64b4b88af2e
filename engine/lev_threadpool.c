/* lev_threadpool.c: persistent worker threads that claim chunks of the current job from a shared counter. */
#include "lev_threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define LEV_SPIN_ROUNDS 20000

/* The job counter packs the job's generation (high 32 bits) and the next unclaimed chunk (low 32 bits): a chunk
 * is claimed by a compare-and-swap that also checks the generation, so a worker that wakes late can never take a
 * chunk of a later job with the body of an earlier one. */
struct LevThreadPool {
  uint32_t n_threads;
  pthread_t *threads;
  pthread_mutex_t mutex;
  pthread_cond_t cond;
  /* each on a cache line of its own: the cores write them in turn, and a line shared with the job's fields would
   * travel between the cores once more for every claim and every finished chunk */
  _Alignas (64) _Atomic uint64_t counter;   /* generation << 32 | next chunk */
  _Alignas (64) atomic_uint done;           /* chunks finished in the current job */
  _Alignas (64) atomic_uint slots;          /* bit i set: slot i is in use */
  _Alignas (64) _Atomic (LevPoolChunkFn) fn;   /* the job's fields: a line of their own, read by every worker */
  _Atomic (void *) arg;
  atomic_uint n_chunks;
  atomic_bool quit;
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

/* Claims and runs chunks of job generation gen until none is left (or the job changed). */
static void
run_chunks (LevThreadPool *pool, uint32_t gen)
{
  /* sequentially consistent: if these loads see a later job's fields, the counter was closed before they were
   * written, so no claim below can succeed for generation gen */
  LevPoolChunkFn fn = atomic_load (&pool->fn);
  void *arg = atomic_load (&pool->arg);
  uint32_t n = atomic_load (&pool->n_chunks);
  uint32_t slot = 0;
  bool have_slot = false;
  uint64_t cur = atomic_load_explicit (&pool->counter, memory_order_acquire);
  for (;;) {
    if ((uint32_t) (cur >> 32) != gen || (uint32_t) cur >= n)
      break;
    if (!atomic_compare_exchange_weak (&pool->counter, &cur, cur + 1))
      continue;
    if (!have_slot) {
      /* the lowest free slot: at most n_threads chunks run at once, so one is always free */
      unsigned used = atomic_load (&pool->slots);
      for (;;) {
        slot = (uint32_t) __builtin_ctz (~used);
        if (atomic_compare_exchange_weak (&pool->slots, &used, used | (1u << slot)))
          break;
      }
      have_slot = true;
    }
    fn (arg, (uint32_t) cur, slot);
    atomic_fetch_add_explicit (&pool->done, 1, memory_order_release);
    cur = atomic_load_explicit (&pool->counter, memory_order_acquire);
  }
  if (have_slot)
    atomic_fetch_and (&pool->slots, ~(1u << slot));
}

static void *
worker_main (void *p)
{
  WorkerArg *wa = p;
  LevThreadPool *pool = wa->pool;
  free (wa);
  uint32_t seen = 0;
  for (;;) {
    uint32_t gen;
    int spins = 0;
    while ((gen = (uint32_t) (atomic_load_explicit (&pool->counter, memory_order_acquire) >> 32)) == seen
           && !atomic_load (&pool->quit) && spins < LEV_SPIN_ROUNDS) {
      cpu_relax ();
      spins++;
    }
    if (gen == seen && !atomic_load (&pool->quit)) {
      pthread_mutex_lock (&pool->mutex);
      while ((gen = (uint32_t) (atomic_load (&pool->counter) >> 32)) == seen && !atomic_load (&pool->quit))
        pthread_cond_wait (&pool->cond, &pool->mutex);
      pthread_mutex_unlock (&pool->mutex);
    }
    if (atomic_load (&pool->quit))
      return NULL;
    seen = gen;
    run_chunks (pool, gen);
  }
}

LevThreadPool *
lev_threadpool_new (uint32_t n_threads)
{
  if (n_threads == 0)
    n_threads = 1;
  if (n_threads > 32)
    n_threads = 32;
  LevThreadPool *pool = aligned_alloc (64, (sizeof *pool + 63) / 64 * 64);   /* the lines above are lines */
  if (!pool)
    return NULL;
  memset (pool, 0, sizeof *pool);
  pool->n_threads = n_threads;
  pthread_mutex_init (&pool->mutex, NULL);
  pthread_cond_init (&pool->cond, NULL);
  atomic_init (&pool->counter, 0);
  atomic_init (&pool->done, 0);
  atomic_init (&pool->slots, 0);
  atomic_init (&pool->fn, NULL);
  atomic_init (&pool->arg, NULL);
  atomic_init (&pool->n_chunks, 0);
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
lev_threadpool_run_chunks (LevThreadPool *pool, LevPoolChunkFn fn, void *arg, uint32_t n_chunks)
{
  if (n_chunks == 0)
    return;
  if (pool->n_threads == 1 || n_chunks == 1) {
    for (uint32_t i = 0; i < n_chunks; i++)
      fn (arg, i, 0);
    return;
  }
  /* close the previous job's counter (nothing left to claim) before its fields change */
  uint64_t cur = atomic_load (&pool->counter);
  uint32_t gen = (uint32_t) (cur >> 32) + 1;
  atomic_store (&pool->counter, (cur & ~(uint64_t) UINT32_MAX) | UINT32_MAX);
  atomic_store (&pool->fn, fn);
  atomic_store (&pool->arg, arg);
  atomic_store (&pool->n_chunks, n_chunks);
  atomic_store (&pool->done, 0);
  pthread_mutex_lock (&pool->mutex);
  atomic_store (&pool->counter, (uint64_t) gen << 32);
  pthread_cond_broadcast (&pool->cond);
  pthread_mutex_unlock (&pool->mutex);
  run_chunks (pool, gen);
  /* every chunk is claimed: wait for the ones still running elsewhere */
  int spins = 0;
  while (atomic_load_explicit (&pool->done, memory_order_acquire) != n_chunks) {
    if (++spins < LEV_SPIN_ROUNDS)
      cpu_relax ();
    else
      sched_yield ();
  }
}

typedef struct {
  LevPoolFn fn;
  void *arg;
  uint32_t nth;
} Trampoline;

static void
run_one (void *arg, uint32_t chunk, uint32_t slot)
{
  Trampoline *t = arg;
  (void) slot;
  t->fn (t->arg, chunk, t->nth);
}

void
lev_threadpool_run (LevThreadPool *pool, LevPoolFn fn, void *arg)
{
  Trampoline t = { fn, arg, pool->n_threads };
  lev_threadpool_run_chunks (pool, run_one, &t, pool->n_threads);
}
