/* test_sampler.c: the sampler follows the definitions of greedy, top-k, top-p, min-p, temperature and penalty. */
#include "leviathan.h"
#include "lev_test_common.h"

enum { N = 8 };
static const float logits[N] = { 1.0f, 3.0f, 2.5f, -1.0f, 3.0f, 0.0f, 2.9f, -4.0f };

static LevSampler *
make (float temp, int k, float p, float min_p, float penalty, uint64_t seed)
{
  LevSamplerParams sp = lev_sampler_default_params ();
  sp.temperature = temp;
  sp.top_k = k;
  sp.top_p = p;
  sp.min_p = min_p;
  sp.repeat_penalty = penalty;
  sp.seed = seed;
  return lev_sampler_new (&sp, N);
}

/* Draws n samples and counts each id. */
static void
histogram (LevSampler *s, int n, int *counts)
{
  memset (counts, 0, N * sizeof (int));
  for (int i = 0; i < n; i++)
    counts[lev_sampler_sample (s, logits)]++;
}

static void
test_greedy (void)
{
  LevSampler *s = make (0.0f, 40, 0.95f, 0.05f, 1.0f, 1);
  g_assert_cmpint (lev_sampler_sample (s, logits), ==, 1);   /* first of the two maxima */
  lev_sampler_free (s);
}

static void
test_top_k_one_is_greedy (void)
{
  LevSampler *s = make (1.5f, 1, 1.0f, 0.0f, 1.0f, 9);
  for (int i = 0; i < 100; i++)
    g_assert_cmpint (lev_sampler_sample (s, logits), ==, 1);
  lev_sampler_free (s);
}

static void
test_top_k_restricts (void)
{
  int c[N];
  LevSampler *s = make (1.0f, 3, 1.0f, 0.0f, 1.0f, 3);
  histogram (s, 3000, c);
  /* the three largest logits are ids 1, 4 (3.0) and 6 (2.9) */
  g_assert_cmpint (c[1] + c[4] + c[6], ==, 3000);
  g_assert_cmpint (c[1], >, 700);
  g_assert_cmpint (c[4], >, 700);
  g_assert_cmpint (c[6], >, 700);
  lev_sampler_free (s);
}

static void
test_distribution_matches_softmax (void)
{
  int c[N];
  const int n = 40000;
  const float t = 0.7f;
  LevSampler *s = make (t, 0, 1.0f, 0.0f, 1.0f, 12345);
  histogram (s, n, c);
  double z = 0, p[N];
  for (int i = 0; i < N; i++)
    z += exp (logits[i] / t);
  for (int i = 0; i < N; i++) {
    p[i] = exp (logits[i] / t) / z;
    double sd = sqrt (n * p[i] * (1 - p[i]));
    g_assert_cmpfloat (fabs (c[i] - n * p[i]), <=, 5 * sd + 2);
  }
  lev_sampler_free (s);
}

static void
test_top_p (void)
{
  /* at temperature 1: p(1) = p(4) ~ 0.27, p(6) ~ 0.25, p(2) ~ 0.16: top-p 0.5 keeps ids 1 and 4 only */
  int c[N];
  LevSampler *s = make (1.0f, 0, 0.5f, 0.0f, 1.0f, 5);
  histogram (s, 2000, c);
  g_assert_cmpint (c[1] + c[4], ==, 2000);
  lev_sampler_free (s);
}

static void
test_min_p (void)
{
  /* min-p 0.5 drops ids below half of the best probability: exp(2.5-3) = 0.61 stays, exp(1-3) = 0.14 goes */
  int c[N];
  LevSampler *s = make (1.0f, 0, 1.0f, 0.5f, 1.0f, 6);
  histogram (s, 3000, c);
  g_assert_cmpint (c[1] + c[4] + c[6] + c[2], ==, 3000);
  g_assert_cmpint (c[2], >, 0);
  lev_sampler_free (s);
}

static void
test_repeat_penalty (void)
{
  /* with a strong penalty on ids 1 and 4, greedy picks id 6 */
  LevSampler *s = make (0.0f, 0, 1.0f, 0.0f, 2.0f, 1);
  lev_sampler_accept (s, 1);
  lev_sampler_accept (s, 4);
  lev_sampler_accept (s, 4);
  g_assert_cmpint (lev_sampler_sample (s, logits), ==, 6);
  lev_sampler_reset (s);
  g_assert_cmpint (lev_sampler_sample (s, logits), ==, 1);
  lev_sampler_free (s);
}

static void
test_seed_reproducible (void)
{
  LevSampler *a = make (1.0f, 0, 1.0f, 0.0f, 1.0f, 77), *b = make (1.0f, 0, 1.0f, 0.0f, 1.0f, 77);
  LevSampler *c = make (1.0f, 0, 1.0f, 0.0f, 1.0f, 78);
  int same_ab = 0, same_ac = 0;
  for (int i = 0; i < 200; i++) {
    int x = lev_sampler_sample (a, logits), y = lev_sampler_sample (b, logits), z = lev_sampler_sample (c, logits);
    same_ab += x == y;
    same_ac += x == z;
  }
  g_assert_cmpint (same_ab, ==, 200);
  g_assert_cmpint (same_ac, <, 150);
  lev_sampler_free (a);
  lev_sampler_free (b);
  lev_sampler_free (c);
}

/* The one range check of every front end (issue 19 item 6): NaN and infinity fail for every float parameter, the
 * ends of each range pass, one step past them fails, repeat-last-n is bounded (item 12). */
static void
test_params_check (void)
{
  const float bad_floats[] = { NAN, INFINITY, -INFINITY };
  for (int field = 0; field < 4; field++) {
    for (guint i = 0; i < G_N_ELEMENTS (bad_floats); i++) {
      LevSamplerParams sp = lev_sampler_default_params ();
      float *f = field == 0 ? &sp.temperature : field == 1 ? &sp.top_p : field == 2 ? &sp.min_p : &sp.repeat_penalty;
      *f = bad_floats[i];
      GError *error = NULL;
      g_assert_false (lev_sampler_params_check (&sp, &error));
      g_assert_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT);
      g_clear_error (&error);
    }
  }
  LevSamplerParams sp = lev_sampler_default_params ();
  g_assert_true (lev_sampler_params_check (&sp, NULL));
  struct { float *at; float lo, hi; } ranges[] = {
    { &sp.temperature, 0.0f, (float) LEV_SAMPLER_TEMPERATURE_MAX },
    { &sp.top_p, (float) LEV_SAMPLER_TOP_P_MIN, 1.0f },
    { &sp.min_p, 0.0f, 1.0f },
    { &sp.repeat_penalty, (float) LEV_SAMPLER_REPEAT_PENALTY_MIN, (float) LEV_SAMPLER_REPEAT_PENALTY_MAX },
  };
  for (guint i = 0; i < G_N_ELEMENTS (ranges); i++) {
    float keep = *ranges[i].at;
    *ranges[i].at = ranges[i].lo;
    g_assert_true (lev_sampler_params_check (&sp, NULL));
    *ranges[i].at = ranges[i].hi;
    g_assert_true (lev_sampler_params_check (&sp, NULL));
    *ranges[i].at = nextafterf (ranges[i].lo, -INFINITY);
    g_assert_false (lev_sampler_params_check (&sp, NULL));
    *ranges[i].at = nextafterf (ranges[i].hi, INFINITY);
    g_assert_false (lev_sampler_params_check (&sp, NULL));
    *ranges[i].at = keep;
  }
  sp.top_k = -1;
  g_assert_false (lev_sampler_params_check (&sp, NULL));
  sp.top_k = 0;
  sp.repeat_last_n = LEV_SAMPLER_MAX_REPEAT_LAST_N;
  g_assert_true (lev_sampler_params_check (&sp, NULL));
  sp.repeat_last_n = G_MAXINT32;
  g_assert_false (lev_sampler_params_check (&sp, NULL));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/sampler/greedy", test_greedy);
  g_test_add_func ("/sampler/top-k-one", test_top_k_one_is_greedy);
  g_test_add_func ("/sampler/top-k", test_top_k_restricts);
  g_test_add_func ("/sampler/softmax", test_distribution_matches_softmax);
  g_test_add_func ("/sampler/top-p", test_top_p);
  g_test_add_func ("/sampler/min-p", test_min_p);
  g_test_add_func ("/sampler/repeat-penalty", test_repeat_penalty);
  g_test_add_func ("/sampler/params-check", test_params_check);
  g_test_add_func ("/sampler/seed", test_seed_reproducible);
  return g_test_run ();
}
