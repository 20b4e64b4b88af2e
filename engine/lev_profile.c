/* lev_profile.c: the step profile, a table of where the time of forward passes and engine steps goes (diagnostic). */
#include "lev_engine_private.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define LEV_PROF_ROWS (LEV_PREFILL_BLOCK + 1)

static atomic_int prof_state = -1;   /* -1: not yet read from the environment */
static _Atomic int64_t prof_ns[LEV_PROF_ROWS][LEV_PROF_PARTS];
static _Atomic int64_t prof_steps[LEV_PROF_ROWS];

static const char *const part_names[LEV_PROF_PARTS] = {
  "embed", "norm+res", "quant", "qkv", "rope+kv", "attn", "wo", "gate_up", "act", "down", "logits",
  "gap", "(wait)", "after"
};

/* Prints the mean microseconds per step of each part, for each row count seen. */
static void
prof_print (void)
{
  fprintf (stderr, "step profile (us per step): rows steps");
  for (int p = 0; p < LEV_PROF_PARTS; p++)
    fprintf (stderr, " %s", part_names[p]);
  fprintf (stderr, " | forward total\n");
  for (int n = 1; n < (int) LEV_PROF_ROWS; n++) {
    int64_t s = atomic_load (&prof_steps[n]);
    if (s == 0)
      continue;
    double total = 0;
    fprintf (stderr, "%2d %6lld", n, (long long) s);
    for (int p = 0; p < LEV_PROF_PARTS; p++) {
      double us = atomic_load (&prof_ns[n][p]) / 1e3 / (double) s;
      if (p <= LEV_PROF_LOGITS)
        total += us;
      fprintf (stderr, " %.0f", us);
    }
    fprintf (stderr, " | %.0f\n", total);
  }
}

gboolean
lev_prof_enabled (void)
{
  int state = atomic_load (&prof_state);
  if (state < 0) {
    int expected = -1;
    state = getenv ("LEV_PROFILE_STEPS") != NULL;
    if (atomic_compare_exchange_strong (&prof_state, &expected, state) && state)
      atexit (prof_print);   /* registered once, by the thread that read the environment first */
  }
  return state;
}

int64_t
lev_prof_now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void
lev_prof_add (uint32_t n, LevProfPart part, int64_t *t)
{
  int64_t now = lev_prof_now ();
  atomic_fetch_add (&prof_ns[MIN (n, LEV_PROF_ROWS - 1)][part], now - *t);
  *t = now;
}

void
lev_prof_step (uint32_t n)
{
  atomic_fetch_add (&prof_steps[MIN (n, LEV_PROF_ROWS - 1)], 1);
}
