/* lev_sampler.c: next-token sampling: greedy, temperature, top-k, top-p, min-p, repetition penalty, seeded. */
#include "leviathan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct LevSampler {
  LevSamplerParams p;
  uint32_t n_vocab;
  uint64_t rng;
  int32_t *history;           /* ring of the last repeat_last_n tokens */
  uint32_t n_history, history_head;
  float *work;                /* logits after the penalty */
  uint32_t *order;            /* candidate ids */
  uint32_t *heap;             /* scratch for top-k selection */
};

LevSamplerParams
lev_sampler_default_params (void)
{
  LevSamplerParams p = { 0.8f, 40, 0.95f, 0.05f, 1.0f, 64, 0 };
  return p;
}

/* Checks sampler parameters against the LEV_SAMPLER_* ranges (written so that NaN fails every comparison). */
gboolean
lev_sampler_params_check (const LevSamplerParams *p, GError **error)
{
  const char *bad = NULL;
  double value = 0.0, lo = 0.0, hi = 0.0;
  if (!(p->temperature >= 0.0f && p->temperature <= LEV_SAMPLER_TEMPERATURE_MAX))
    bad = "temperature", value = p->temperature, hi = LEV_SAMPLER_TEMPERATURE_MAX;
  else if (!(p->top_p >= (float) LEV_SAMPLER_TOP_P_MIN && p->top_p <= 1.0f))
    bad = "top-p", value = p->top_p, lo = LEV_SAMPLER_TOP_P_MIN, hi = 1.0;
  else if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
    bad = "min-p", value = p->min_p, hi = 1.0;
  else if (!(p->repeat_penalty >= (float) LEV_SAMPLER_REPEAT_PENALTY_MIN
             && p->repeat_penalty <= (float) LEV_SAMPLER_REPEAT_PENALTY_MAX))
    bad = "repeat-penalty", value = p->repeat_penalty, lo = LEV_SAMPLER_REPEAT_PENALTY_MIN,
    hi = LEV_SAMPLER_REPEAT_PENALTY_MAX;
  else if (p->top_k < 0)
    bad = "top-k", value = p->top_k, hi = G_MAXINT32;
  else if (p->repeat_last_n > LEV_SAMPLER_MAX_REPEAT_LAST_N)
    bad = "repeat-last-n", value = p->repeat_last_n, hi = LEV_SAMPLER_MAX_REPEAT_LAST_N;
  if (!bad)
    return TRUE;
  g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "%s must be a number from %g to %g (not %.10g)", bad, lo,
               hi, value);
  return FALSE;
}

/* splitmix64 step: a small, well-distributed generator; same seed, same sequence on every platform. */
static uint64_t
next_u64 (uint64_t *s)
{
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Returns a uniform double in [0, 1). */
static double
next_unit (uint64_t *s)
{
  return (double) (next_u64 (s) >> 11) * (1.0 / 9007199254740992.0);
}

LevSampler *
lev_sampler_new (const LevSamplerParams *params, uint32_t n_vocab)
{
  LevSampler *s = g_new0 (LevSampler, 1);
  s->p = params ? *params : lev_sampler_default_params ();
  s->n_vocab = n_vocab;
  s->history = g_new0 (int32_t, MAX (s->p.repeat_last_n, 1u));
  s->work = g_new (float, n_vocab);
  s->order = g_new (uint32_t, n_vocab);
  s->heap = g_new (uint32_t, n_vocab);
  lev_sampler_reset (s);
  return s;
}

void
lev_sampler_free (LevSampler *s)
{
  if (!s)
    return;
  g_free (s->history);
  g_free (s->work);
  g_free (s->order);
  g_free (s->heap);
  g_free (s);
}

void
lev_sampler_reset (LevSampler *s)
{
  s->rng = s->p.seed;
  s->n_history = 0;
  s->history_head = 0;
}

void
lev_sampler_accept (LevSampler *s, int32_t token)
{
  if (s->p.repeat_last_n == 0)
    return;
  s->history[s->history_head] = token;
  s->history_head = (s->history_head + 1) % s->p.repeat_last_n;
  if (s->n_history < s->p.repeat_last_n)
    s->n_history++;
}

/* Returns the first index of the largest value. */
static int32_t
argmax (const float *v, uint32_t n)
{
  uint32_t best = 0;
  for (uint32_t i = 1; i < n; i++)
    if (v[i] > v[best])
      best = i;
  return (int32_t) best;
}

/* Orders ids by descending key, then ascending id (qsort_r comparator; keys passed as data). */
static int
cmp_desc (const void *a, const void *b, void *keys)
{
  const float *k = keys;
  float x = k[*(const uint32_t *) a], y = k[*(const uint32_t *) b];
  if (x != y)
    return x > y ? -1 : 1;
  return *(const uint32_t *) a < *(const uint32_t *) b ? -1 : 1;
}

/* Sift-down for a min-heap of ids keyed by v. */
static void
heap_down (uint32_t *h, uint32_t n, uint32_t i, const float *v)
{
  for (;;) {
    uint32_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && v[h[l]] < v[h[m]])
      m = l;
    if (r < n && v[h[r]] < v[h[m]])
      m = r;
    if (m == i)
      return;
    uint32_t t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
}

int32_t
lev_sampler_sample (LevSampler *s, const float *logits)
{
  uint32_t n = s->n_vocab;
  float *w = s->work;
  memcpy (w, logits, n * sizeof (float));
  if (s->p.repeat_penalty != 1.0f && s->p.repeat_penalty > 0.0f) {
    for (uint32_t i = 0; i < s->n_history; i++) {
      int32_t t = s->history[i];
      if (t < 0 || (uint32_t) t >= n || w[t] != logits[t])
        continue;             /* out of range, or already penalised (repeated in the history) */
      w[t] = w[t] > 0.0f ? w[t] / s->p.repeat_penalty : w[t] * s->p.repeat_penalty;
    }
  }
  if (s->p.temperature <= 0.0f)
    return argmax (w, n);

  /* candidates: the top k by logit (all when k is 0), sorted in descending order */
  uint32_t k = s->p.top_k > 0 && (uint32_t) s->p.top_k < n ? (uint32_t) s->p.top_k : n;
  uint32_t *cand = s->order;
  if (k < n) {
    uint32_t *h = s->heap;
    for (uint32_t i = 0; i < k; i++)
      h[i] = i;
    for (int64_t i = (int64_t) k / 2 - 1; i >= 0; i--)
      heap_down (h, k, (uint32_t) i, w);
    for (uint32_t i = k; i < n; i++)
      if (w[i] > w[h[0]]) {
        h[0] = i;
        heap_down (h, k, 0, w);
      }
    memcpy (cand, h, k * sizeof (uint32_t));
  } else {
    for (uint32_t i = 0; i < n; i++)
      cand[i] = i;
  }
  qsort_r (cand, k, sizeof (uint32_t), cmp_desc, w);

  /* softmax over the candidates at the temperature (reuse w for probabilities) */
  float maxv = w[cand[0]];
  for (uint32_t i = 0; i < k; i++)
    w[cand[i]] = expf ((w[cand[i]] - maxv) / s->p.temperature);
  /* min-p: drop candidates below min_p times the best probability */
  uint32_t keep = k;
  if (s->p.min_p > 0.0f) {
    float floor_p = s->p.min_p * w[cand[0]];
    for (uint32_t i = 1; i < keep; i++)
      if (w[cand[i]] < floor_p) {
        keep = i;
        break;
      }
  }
  /* top-p: the smallest prefix whose mass reaches top_p */
  double total = 0.0;
  for (uint32_t i = 0; i < keep; i++)
    total += w[cand[i]];
  if (s->p.top_p > 0.0f && s->p.top_p < 1.0f) {
    double acc = 0.0;
    for (uint32_t i = 0; i < keep; i++) {
      acc += w[cand[i]];
      if (acc >= s->p.top_p * total) {
        keep = i + 1;
        total = acc;
        break;
      }
    }
  }
  double r = next_unit (&s->rng) * total, acc = 0.0;
  for (uint32_t i = 0; i < keep; i++) {
    acc += w[cand[i]];
    if (r < acc)
      return (int32_t) cand[i];
  }
  return (int32_t) cand[keep - 1];
}
