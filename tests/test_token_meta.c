/* test_token_meta.c: the Lev.TokenMeta of levtextgen's buffers against the engine's own logits computed here
 * independently: the same prompt and the buffers' ids evaluated with lev_context_eval, log-softmax and top-N taken
 * here in double precision; the ids spell the buffers' text; a sampled run (temperature 1) and a grammar run;
 * token-meta=false leaves the meta off and the tokens as they were. */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <math.h>

#include "leviathan.h"
#include "levg_token_meta.h"
#include "lev_test_common.h"

#define TOP 4
static const char prompt[] = "And God said";

static gchar *
default_model (void)
{
  const char *dir = g_getenv ("LEV_MODELS_DIR");
  return g_build_filename (dir ? dir : "models", "default.leviathan", NULL);
}

/* Runs levtextgen (props after the model) on the prompt; returns its buffers (text, one token per unit). */
static GPtrArray *
run_element (const char *props)
{
  gchar *path = default_model ();
  gchar *desc = g_strdup_printf ("levtextgen model=%s n-threads=1 output-mode=token logprobs=%d %s", path, TOP, props);
  GstHarness *h = gst_harness_new_parse (desc);
  g_free (desc);
  g_free (path);
  gst_harness_set_src_caps_str (h, "text/x-raw, format=utf8");
  gst_harness_play (h);
  fail_unless_equals_int (gst_harness_push (h, gst_buffer_new_memdup (prompt, strlen (prompt))), GST_FLOW_OK);
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  for (;;) {
    GstEvent *ev = gst_harness_pull_event (h);
    fail_unless (ev != NULL);
    gboolean eos = GST_EVENT_TYPE (ev) == GST_EVENT_EOS;
    gst_event_unref (ev);
    if (eos)
      break;
  }
  GPtrArray *bufs = g_ptr_array_new_with_free_func ((GDestroyNotify) gst_buffer_unref);
  GstBuffer *b;
  while ((b = gst_harness_try_pull (h)))
    g_ptr_array_add (bufs, b);
  gst_harness_teardown (h);
  return bufs;
}

/* Checks every buffer's meta against the model evaluated here on the prompt and the metas' ids. */
static void
check_against_engine (GPtrArray *bufs)
{
  gchar *path = default_model ();
  LevModel *model = lev_model_load (path, NULL);
  fail_unless (model != NULL);
  const LevTokenizer *tok = lev_model_tokenizer (model);
  uint32_t nv = lev_model_vocab_size (model);
  LevContextParams cp = lev_context_default_params ();
  cp.n_threads = 1;
  cp.n_ctx = 512;
  LevContext *ctx = lev_context_new (model, &cp, NULL);
  size_t n_prompt = 0;
  int32_t *ids = lev_tokenizer_encode (tok, prompt, -1, lev_tokenizer_adds_bos (tok), &n_prompt, NULL);
  const float *logits = NULL;
  for (size_t i = 0; i < n_prompt; i += LEV_PREFILL_BLOCK)
    logits = lev_context_eval_batch (ctx, ids + i, (uint32_t) MIN (n_prompt - i, LEV_PREFILL_BLOCK), NULL);
  fail_unless (logits != NULL);
  int32_t prev = ids[n_prompt - 1];
  GString *text = g_string_new (NULL), *spelled = g_string_new (NULL);
  guint n_tokens = 0;
  for (guint b = 0; b < bufs->len; b++) {
    GstBuffer *buf = bufs->pdata[b];
    LevGTokenMeta *m = lev_g_buffer_get_token_meta (buf);
    fail_unless (m != NULL, "buffer %u has no Lev.TokenMeta", b);
    GstMapInfo map;
    fail_unless (gst_buffer_map (buf, &map, GST_MAP_READ));
    g_string_append_len (text, (const gchar *) map.data, (gssize) map.size);
    gst_buffer_unmap (buf, &map);
    guint n;
    const gint32 *mids = lev_g_token_meta_get_ids (m, &n);
    const gfloat *mlps = lev_g_token_meta_get_logprobs (m, &n);
    fail_unless (n >= 1);
    for (guint t = 0; t < n; t++, n_tokens++) {
      /* log-softmax of the engine's logits at this position, in double */
      double maxv = logits[0], sum = 0.0;
      for (uint32_t i = 1; i < nv; i++)
        maxv = MAX (maxv, logits[i]);
      for (uint32_t i = 0; i < nv; i++)
        sum += exp (logits[i] - maxv);
      double lse = maxv + log (sum);
      fail_unless (fabs (mlps[t] - (logits[mids[t]] - lse)) < 1e-4, "token %u: logprob %f, engine %f", n_tokens,
                   mlps[t], logits[mids[t]] - lse);
      /* the top-N: the N largest logits, largest first, lower id first on ties */
      guint nt;
      const gint32 *tids = lev_g_token_meta_get_top_ids (m, t, &nt);
      const gfloat *tlps = lev_g_token_meta_get_top_logprobs (m, t, &nt);
      fail_unless_equals_int (nt, TOP);
      double mass = 0.0;
      for (guint k = 0; k < TOP; k++) {
        guint greater = 0;
        for (uint32_t i = 0; i < nv; i++)
          greater += logits[i] > logits[tids[k]] || (logits[i] == logits[tids[k]] && (int32_t) i < tids[k]);
        fail_unless_equals_int (greater, k);          /* exactly k ids rank above the k-th alternative */
        fail_unless (fabs (tlps[k] - (logits[tids[k]] - lse)) < 1e-4);
        mass += exp (tlps[k]);
      }
      fail_unless (mass <= 1.0 + 1e-5);
      fail_unless (mlps[t] <= tlps[0] + 1e-6);      /* no token is likelier than the first alternative */
      lev_tokenizer_decode_token (tok, prev, mids[t], spelled);
      prev = mids[t];
      logits = lev_context_eval (ctx, mids[t], NULL);
      fail_unless (logits != NULL);
    }
  }
  fail_unless (n_tokens >= 5, "only %u tokens", n_tokens);
  fail_unless_equals_string (spelled->str, text->str);  /* the ids are the buffers' text, as the tokenizer spells */
  g_string_free (text, TRUE);
  g_string_free (spelled, TRUE);
  g_free (ids);
  lev_context_free (ctx);
  lev_model_free (model);
  g_free (path);
}

GST_START_TEST (test_sampled)
{
  GPtrArray *bufs = run_element ("temperature=1 top-k=0 top-p=1 min-p=0 seed=11 max-tokens=24 ignore-eos=true");
  check_against_engine (bufs);
  g_ptr_array_unref (bufs);
}
GST_END_TEST;

GST_START_TEST (test_under_grammar)
{
  /* the logprobs are the model's, not the masked distribution's */
  GPtrArray *bufs = run_element ("temperature=1 seed=2 max-tokens=40 "
                                 "grammar=\"root ::= [a-z ]{10,30} \\\".\\\"\"");
  check_against_engine (bufs);
  g_ptr_array_unref (bufs);
}
GST_END_TEST;

GST_START_TEST (test_meta_off)
{
  /* token-meta=false: no buffer carries a meta, and the generation is the one whose metas check out against the
   * engine (the same ids in the same buffers: skipping the log-softmax leaves the sampler alone) */
  const char *gen = "temperature=1 top-k=0 top-p=1 min-p=0 seed=11 max-tokens=24 ignore-eos=true";
  GPtrArray *with = run_element (gen);
  check_against_engine (with);
  gchar *props = g_strdup_printf ("%s token-meta=false", gen);
  GPtrArray *without = run_element (props);
  g_free (props);
  fail_unless_equals_int (without->len, with->len);
  for (guint b = 0; b < without->len; b++) {
    fail_unless (lev_g_buffer_get_token_meta (without->pdata[b]) == NULL, "buffer %u has a Lev.TokenMeta", b);
    GstMapInfo map;
    fail_unless (gst_buffer_map (with->pdata[b], &map, GST_MAP_READ));
    fail_unless (gst_buffer_get_size (without->pdata[b]) == map.size
                 && gst_buffer_memcmp (without->pdata[b], 0, map.data, map.size) == 0, "buffer %u differs", b);
    gst_buffer_unmap (with->pdata[b], &map);
  }
  g_ptr_array_unref (without);
  g_ptr_array_unref (with);
}
GST_END_TEST;

GST_START_TEST (test_copy_keeps_meta)
{
  gint32 ids[2] = { 5, 7 };
  gfloat lps[2] = { -1.0f, -2.0f }, tl[4] = { -0.5f, -1.0f, -0.25f, -2.0f };
  gint32 ti[4] = { 4, 5, 6, 7 };
  GstBuffer *b = gst_buffer_new_allocate (NULL, 4, NULL);
  lev_g_token_meta_add (b, ids, lps, 2, ti, tl, 2);
  GstBuffer *c = gst_buffer_copy (b);
  LevGTokenMeta *m = lev_g_buffer_get_token_meta (c);
  fail_unless (m != NULL && m->n_tokens == 2 && m->ids[1] == 7 && m->logprobs[1] == -2.0f);
  guint n;
  fail_unless_equals_int (lev_g_token_meta_get_top_ids (m, 1, &n)[1], 7);
  fail_unless (lev_g_token_meta_get_top_ids (m, 2, &n) == NULL && n == 0);
  gst_buffer_unref (c);
  gst_buffer_unref (b);
}
GST_END_TEST;

static Suite *
token_meta_suite (void)
{
  Suite *s = suite_create ("token_meta");
  TCase *tc = tcase_create ("meta");
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_copy_keeps_meta);
  tcase_add_test (tc, test_sampled);
  tcase_add_test (tc, test_under_grammar);
  tcase_add_test (tc, test_meta_off);
  suite_add_tcase (s, tc);
  return s;
}

GST_CHECK_MAIN (token_meta);
