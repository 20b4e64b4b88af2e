/* lev_engine.c: an engine shares one model and one thread pool between contexts and batches their evaluations. */
#include "lev_engine_private.h"

#include "lev_model.h"

#include <pthread.h>
#include <time.h>

/* The scheduler: every thread that evaluates a context of the engine queues a request and waits; while no step is
 * running, one waiting thread runs the next step for all queued requests (decode tokens first, then prompt blocks
 * filling the step up to LEV_PREFILL_BLOCK rows, each prompt at most one block a step), then wakes the others. A
 * stream starting a prompt so delays the running streams by at most one block, and streams decoding at the same
 * time share every pass over the weights. The contexts served by a step come back with their next token after
 * sampling it: the next step waits for them, at most half a step's time (LEV_ENGINE_MAX_WAIT_US at most), so that
 * the decoding streams stay in one batch instead of splitting into groups that alternate; one that does not come
 * back in that time is not waited for again until it does. */

#define LEV_ENGINE_MAX_WAIT_US 5000

/* One context's queued evaluation; lives on its caller's stack. */
typedef struct {
  GList link;                  /* in the engine's queue (no allocation per request) */
  LevContext *ctx;
  const int32_t *tokens;
  uint32_t n, done;            /* tokens asked for, tokens evaluated */
  gboolean finished;           /* done == n or failed (set under the lock) */
  GError *error;
} EvalRequest;

struct LevEngine {
  gint refcount;
  const LevModel *model;
  uint32_t act_quant;
  LevContext *lead;            /* threads and scratch of the steps (a 2-slot context of its own) */
  /* POSIX, as the thread pool's: ThreadSanitizer sees them without help (GLib's futex locks it does not) */
  pthread_mutex_t lock;
  pthread_cond_t changed;      /* a step ended or a request was queued (waits use CLOCK_MONOTONIC) */
  GQueue queue;                /* EvalRequest, in arrival order (a partly evaluated prompt moves to the end) */
  gboolean running;            /* a thread is running a step (it alone touches lead and the queued contexts) */
  uint32_t max_n_ctx;          /* the largest context made on the engine: the attention scratch is sized for it */
  const LevContext *returning[LEV_PREFILL_BLOCK];   /* served by the last step, expected back */
  uint32_t n_returning;
  gint64 last_step_us;         /* how long the last step took */
  gint64 wait_until;           /* the end of the current wait for returning contexts (0: none) */
  int64_t prof_step_end;       /* step profile: when the last step ended (ns), prof_wait: waited since */
  int64_t prof_wait;
  LevEngineStats stats;
};

LevEngine *
lev_engine_new (const LevModel *model, uint32_t n_threads, uint32_t act_quant, GError **error)
{
  g_return_val_if_fail (model != NULL, NULL);
  LevContextParams p = lev_context_default_params ();
  p.n_ctx = 2;
  p.n_sink = 1;
  p.n_threads = n_threads;
  p.act_quant = act_quant;
  LevContext *lead = lev_context_new (model, &p, error);
  if (!lead)
    return NULL;
  LevEngine *e = g_new0 (LevEngine, 1);
  e->refcount = 1;
  e->model = model;
  e->act_quant = act_quant;
  e->lead = lead;
  e->max_n_ctx = 2;
  pthread_mutex_init (&e->lock, NULL);
  pthread_condattr_t attr;
  pthread_condattr_init (&attr);
  pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);   /* the clock of g_get_monotonic_time */
  pthread_cond_init (&e->changed, &attr);
  pthread_condattr_destroy (&attr);
  g_queue_init (&e->queue);
  return e;
}

LevEngine *
lev_engine_ref (LevEngine *e)
{
  g_atomic_int_inc (&e->refcount);
  return e;
}

void
lev_engine_unref (LevEngine *e)
{
  if (!e || !g_atomic_int_dec_and_test (&e->refcount))
    return;
  lev_context_free (e->lead);
  pthread_mutex_destroy (&e->lock);
  pthread_cond_destroy (&e->changed);
  g_free (e);
}

const LevModel *
lev_engine_model (const LevEngine *e)
{
  return e->model;
}

uint32_t
lev_engine_n_threads (const LevEngine *e)
{
  return lev_context_n_threads (e->lead);
}

void
lev_engine_get_stats (LevEngine *e, LevEngineStats *stats)
{
  pthread_mutex_lock (&e->lock);
  *stats = e->stats;
  pthread_mutex_unlock (&e->lock);
}

LevContext *
lev_engine_context_new (LevEngine *e, const LevContextParams *params, GError **error)
{
  return lev_engine_context_new_kv (e, params, LEV_KV_F32, error);
}

LevContext *
lev_engine_context_new_kv (LevEngine *e, const LevContextParams *params, LevKvType kv_type, GError **error)
{
  LevContextParams p = params ? *params : lev_context_default_params ();
  p.act_quant = e->act_quant;
  p.n_threads = 1;
  LevContext *c = lev_context_new_on_engine (e->model, &p, kv_type, e, error);
  if (c) {
    pthread_mutex_lock (&e->lock);
    e->max_n_ctx = MAX (e->max_n_ctx, lev_context_n_ctx (c));
    e->stats.contexts++;
    pthread_mutex_unlock (&e->lock);
  }
  return c;
}

void
lev_engine_forget_context (LevEngine *e, const LevContext *c)
{
  pthread_mutex_lock (&e->lock);
  e->stats.contexts--;
  pthread_mutex_unlock (&e->lock);
  lev_engine_context_idle (e, c);
}

void
lev_engine_context_idle (LevEngine *e, const LevContext *c)
{
  pthread_mutex_lock (&e->lock);
  for (uint32_t i = 0; i < e->n_returning; i++)
    if (e->returning[i] == c)
      e->returning[i--] = e->returning[--e->n_returning];
  pthread_mutex_unlock (&e->lock);
}

/* Returns whether a request of c is queued. */
static gboolean
is_queued (const LevEngine *e, const LevContext *c)
{
  for (GList *l = e->queue.head; l; l = l->next)
    if (((EvalRequest *) l->data)->ctx == c)
      return TRUE;
  return FALSE;
}

/* Returns whether the next step should wait for contexts of the last one that have not come back yet; forgets them
 * once the wait is over. Called with the lock held. */
static gboolean
await_returning (LevEngine *e)
{
  uint32_t missing = 0;
  for (uint32_t i = 0; i < e->n_returning; i++)
    missing += !is_queued (e, e->returning[i]);
  if (missing == 0) {
    e->wait_until = 0;
    return FALSE;
  }
  gint64 now = g_get_monotonic_time ();
  if (e->wait_until == 0) {
    e->wait_until = now + MIN (e->last_step_us / 2, LEV_ENGINE_MAX_WAIT_US);
    e->stats.waits++;
  }
  if (now < e->wait_until)
    return TRUE;
  for (uint32_t i = 0; i < e->n_returning; i++)   /* not back in time: idle, not waited for again */
    if (!is_queued (e, e->returning[i]))
      e->returning[i--] = e->returning[--e->n_returning];
  e->wait_until = 0;
  return FALSE;
}

/* Runs one step for the queued requests; called with the lock held and no step running, returns with it held. */
static void
run_step (LevEngine *e)
{
  LevContext *row_ctx[LEV_PREFILL_BLOCK];
  int32_t row_tok[LEV_PREFILL_BLOCK];
  EvalRequest *reqs[LEV_PREFILL_BLOCK];
  uint32_t take[LEV_PREFILL_BLOCK], n_reqs = 0, used = 0;
  /* the decode tokens (one token left) first, then prompt blocks in queue order while rows are left */
  for (int pass = 0; pass < 2; pass++)
    for (GList *l = e->queue.head; l && used < LEV_PREFILL_BLOCK; l = l->next) {
      EvalRequest *r = l->data;
      uint32_t left = r->n - r->done;
      if ((pass == 0) != (left == 1))
        continue;
      uint32_t k = MIN (lev_context_block_tokens (r->ctx, left), LEV_PREFILL_BLOCK - used);
      for (uint32_t i = 0; i < k; i++) {
        row_ctx[used + i] = r->ctx;
        row_tok[used + i] = r->tokens[r->done + i];
      }
      reqs[n_reqs] = r;
      take[n_reqs++] = k;
      used += k;
    }
  if (used == 0)
    return;
  e->running = TRUE;
  lev_context_reserve_batch (e->lead, e->max_n_ctx);
  gboolean prof = lev_prof_enabled ();
  int64_t tp = 0;
  if (prof) {
    tp = lev_prof_now ();
    if (e->prof_step_end) {
      lev_prof_add (used, LEV_PROF_GAP, &e->prof_step_end);
      if (e->prof_wait)
        lev_prof_add (used, LEV_PROF_WAIT, &e->prof_wait);
      e->prof_wait = 0;
    }
  }
  pthread_mutex_unlock (&e->lock);
  gint64 t0 = g_get_monotonic_time ();

  /* the queued contexts' threads wait for them: only this thread touches them and the lead until the lock again */
  lev_forward_rows (e->lead, row_ctx, row_tok, used);
  if (prof)
    tp = lev_prof_now ();
  for (uint32_t k = 0; k < n_reqs; k++) {
    EvalRequest *r = reqs[k];
    r->done += take[k];
    if (r->done == r->n)
      lev_context_check_logits (r->ctx, &r->error);
  }

  gint64 took = g_get_monotonic_time () - t0;
  pthread_mutex_lock (&e->lock);
  e->last_step_us = took;
  e->n_returning = 0;
  for (uint32_t k = 0; k < n_reqs; k++) {
    EvalRequest *r = reqs[k];
    g_queue_unlink (&e->queue, &r->link);
    if (r->done == r->n) {
      r->finished = TRUE;
      e->returning[e->n_returning++] = r->ctx;
    } else {
      g_queue_push_tail_link (&e->queue, &r->link);   /* the rest of a prompt: behind the others */
    }
  }
  e->stats.steps++;
  e->stats.rows += used;
  e->stats.max_rows = MAX (e->stats.max_rows, used);
  e->stats.max_contexts = MAX (e->stats.max_contexts, n_reqs);
  e->running = FALSE;
  if (prof) {
    lev_prof_add (used, LEV_PROF_AFTER, &tp);
    e->prof_step_end = tp;
  }
  pthread_cond_broadcast (&e->changed);
}

/* Waits for a change until the monotonic time `until` (microseconds, g_get_monotonic_time's clock). */
static void
wait_until (LevEngine *e, gint64 until)
{
  struct timespec ts = { (time_t) (until / G_USEC_PER_SEC), (long) (until % G_USEC_PER_SEC) * 1000 };
  pthread_cond_timedwait (&e->changed, &e->lock, &ts);
}

/* Queues the requests and runs or waits for steps until all of them are finished. */
static void
eval_requests (LevEngine *e, EvalRequest *reqs, uint32_t n)
{
  pthread_mutex_lock (&e->lock);
  for (uint32_t i = 0; i < n; i++) {
    reqs[i].link.data = &reqs[i];
    g_queue_push_tail_link (&e->queue, &reqs[i].link);
  }
  pthread_cond_broadcast (&e->changed);
  for (uint32_t i = 0; i < n; i++)
    while (!reqs[i].finished) {
      if (e->running)
        pthread_cond_wait (&e->changed, &e->lock);
      else if (await_returning (e)) {
        if (e->prof_step_end && !e->prof_wait)
          e->prof_wait = lev_prof_now ();    /* the profile's wait: from the first waiter on */
        wait_until (e, e->wait_until);
      }
      else
        run_step (e);
    }
  pthread_mutex_unlock (&e->lock);
}

gboolean
lev_engine_eval (LevEngine *e, LevContext *c, const int32_t *tokens, uint32_t n, GError **error)
{
  EvalRequest r = { { NULL, NULL, NULL }, c, tokens, n, 0, FALSE, NULL };
  eval_requests (e, &r, 1);
  if (r.error) {
    g_propagate_error (error, r.error);
    return FALSE;
  }
  return TRUE;
}

gboolean
lev_context_eval_multi (LevContext *const *ctxs, const int32_t *tokens, uint32_t n, GError **error)
{
  if (n == 0)
    return TRUE;
  LevEngine *e = lev_context_engine (ctxs[0]);
  uint32_t vocab = e ? lev_model_vocab_size (e->model) : 0;
  for (uint32_t i = 0; i < n; i++) {
    if (!e || lev_context_engine (ctxs[i]) != e) {
      g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "the contexts of a batched evaluation must be made on one "
                   "engine (lev_engine_context_new)");
      return FALSE;
    }
    if (tokens[i] < 0 || (uint32_t) tokens[i] >= vocab) {
      g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "token id %d is outside the vocabulary (0..%u)", tokens[i],
                   vocab - 1);
      return FALSE;
    }
    for (uint32_t k = 0; k < i; k++)
      if (ctxs[k] == ctxs[i]) {
        g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "context %u appears twice in a batched evaluation", i);
        return FALSE;
      }
  }
  EvalRequest *reqs = g_new0 (EvalRequest, n);
  for (uint32_t i = 0; i < n; i++) {
    reqs[i].ctx = ctxs[i];
    reqs[i].tokens = &tokens[i];
    reqs[i].n = 1;
  }
  eval_requests (e, reqs, n);
  gboolean ok = TRUE;
  for (uint32_t i = 0; i < n; i++)
    if (reqs[i].error) {
      if (ok)
        g_propagate_error (error, reqs[i].error);
      else
        g_error_free (reqs[i].error);
      ok = FALSE;
    }
  g_free (reqs);
  return ok;
}
