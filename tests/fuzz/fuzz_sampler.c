/* fuzz_sampler.c: libFuzzer target: the sampler's parameters (any bit pattern, NaN and infinity included) through
 * the one range check every front end applies, and sampling with the parameters it accepts. */
#include "fuzz_common.h"
#include "leviathan.h"

#include <math.h>

/* Nothing to prepare. */
int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  return 0;
}

/* Takes n bytes from *data (zeros past the end). */
static void
take (const uint8_t **data, size_t *size, void *out, size_t n)
{
  size_t k = MIN (n, *size);
  memset (out, 0, n);
  memcpy (out, *data, k);
  *data += k;
  *size -= k;
}

/* The input: temperature, top-p, min-p, repeat penalty (float32 each, raw bits), top-k (int32), repeat-last-n
 * (uint32), seed (uint64), a vocabulary size byte (1..256), then the logits (float32; non-finite ones become 0, as
 * the engine never hands those to the sampler) and the tokens accepted into the history (one byte each). Checks:
 * the range check refuses every non-finite value and every value outside the LEV_SAMPLER_* ranges, accepts the
 * others, and a sampler made from accepted parameters returns an id inside the vocabulary, the same for the same
 * seed and history. */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  LevSamplerParams p = lev_sampler_default_params ();
  take (&data, &size, &p.temperature, 4);
  take (&data, &size, &p.top_p, 4);
  take (&data, &size, &p.min_p, 4);
  take (&data, &size, &p.repeat_penalty, 4);
  take (&data, &size, &p.top_k, 4);
  take (&data, &size, &p.repeat_last_n, 4);
  take (&data, &size, &p.seed, 8);
  uint8_t v = 0;
  take (&data, &size, &v, 1);
  uint32_t n_vocab = (uint32_t) v + 1;

  gboolean finite = isfinite (p.temperature) && isfinite (p.top_p) && isfinite (p.min_p) && isfinite (p.repeat_penalty);
  gboolean in_range = finite && p.temperature >= 0.0f && p.temperature <= LEV_SAMPLER_TEMPERATURE_MAX
                      && p.top_p >= (float) LEV_SAMPLER_TOP_P_MIN && p.top_p <= 1.0f && p.min_p >= 0.0f
                      && p.min_p <= 1.0f && p.repeat_penalty >= (float) LEV_SAMPLER_REPEAT_PENALTY_MIN
                      && p.repeat_penalty <= (float) LEV_SAMPLER_REPEAT_PENALTY_MAX && p.top_k >= 0
                      && p.repeat_last_n <= LEV_SAMPLER_MAX_REPEAT_LAST_N;
  GError *error = NULL;
  gboolean ok = lev_sampler_params_check (&p, &error);
  FUZZ_CHECK (ok == in_range, "the check says %d for parameters that are %s", ok, in_range ? "in range" : "not");
  FUZZ_CHECK (ok == (error == NULL), "an error exactly when refused");
  g_clear_error (&error);
  if (!ok)
    return 0;

  float *logits = g_new (float, n_vocab);
  for (uint32_t i = 0; i < n_vocab; i++) {
    take (&data, &size, &logits[i], 4);
    if (!isfinite (logits[i]))
      logits[i] = 0.0f;
  }
  LevSampler *a = lev_sampler_new (&p, n_vocab), *b = lev_sampler_new (&p, n_vocab);
  for (int round = 0; round < 4; round++) {
    int32_t ta = lev_sampler_sample (a, logits), tb = lev_sampler_sample (b, logits);
    FUZZ_CHECK (ta >= 0 && (uint32_t) ta < n_vocab, "sampled id %d outside a vocabulary of %u", ta, n_vocab);
    FUZZ_CHECK (ta == tb, "same seed and history, different ids %d and %d", ta, tb);
    uint8_t h = 0;
    take (&data, &size, &h, 1);
    lev_sampler_accept (a, h % n_vocab);
    lev_sampler_accept (b, h % n_vocab);
    lev_sampler_accept (a, ta);
    lev_sampler_accept (b, tb);
  }
  lev_sampler_free (a);
  lev_sampler_free (b);
  g_free (logits);
  return 0;
}
