/* test_threads.c: the engine's worker threads (lev_threadpool) and a model shared by concurrent contexts give the
 * same logits as one thread, and so do an engine's batched steps over several contexts (lev_engine); small enough
 * to run under ThreadSanitizer (scripts/test.sh --tsan). */
#include "lev_convert.h"
#include "leviathan-ext.h"
#include "lev_test_common.h"

#include <glib/gstdio.h>

#define N_EVAL 80   /* past the 48-slot context below: the ring buffer wraps */

static gchar *tmp_dir;

/* Converts a fixture checkpoint (llama2.c or ak42, chosen by the importer) to a temporary .leviathan file. */
static gchar *
convert (const char *rel, LevOutFormat fmt, const char *name)
{
  gchar *src = lev_test_fixture (rel);
  GError *error = NULL;
  LevConvModel *cm = lev_import_any (src, &error);
  g_assert_no_error (error);
  if (cm->vocab == NULL) {
    gchar *tok = lev_test_fixture ("stories260K/tok512.bin");
    cm->vocab = lev_import_vocab (tok, &error);
    g_assert_no_error (error);
    g_free (tok);
  }
  gchar *out = g_build_filename (tmp_dir, name, NULL);
  g_assert_true (lev_write_model_full (cm, out, fmt, LEV_OUT_AUTO, FALSE, &error));
  g_assert_no_error (error);
  lev_conv_model_free (cm);
  g_free (src);
  return out;
}

/* Token i of the fixed pseudo-random sequence of stream `seed` (vocabulary vocab). */
static int32_t
seq_token (guint32 seed, guint i, uint32_t vocab)
{
  guint32 x = 12345u + seed * 7919u;
  for (guint k = 0; k <= i; k++)
    x = x * 1103515245u + 12345u;
  return (int32_t) ((x >> 8) % vocab);
}

/* Evaluates N_EVAL tokens of stream seed's sequence alone, one at a time, with one thread and a KV cache of type kv;
 * returns all logits. */
static float *
run_stream (const LevModel *m, guint32 seed, LevKvType kv)
{
  LevContextParams p = lev_context_default_params ();
  p.n_ctx = 48;
  p.n_sink = 4;
  p.n_threads = 1;
  GError *error = NULL;
  LevContext *c = lev_context_new_kv (m, &p, kv, &error);
  g_assert_no_error (error);
  const uint32_t vocab = lev_model_hparams (m)->vocab_size;
  float *all = g_new (float, (gsize) N_EVAL * vocab);
  for (guint i = 0; i < N_EVAL; i++) {
    const float *l = lev_context_eval (c, seq_token (seed, i, vocab), &error);
    g_assert_no_error (error);
    memcpy (all + (gsize) i * vocab, l, vocab * sizeof (float));
  }
  lev_context_free (c);
  return all;
}

/* Evaluates N_EVAL tokens (a fixed pseudo-random sequence) with n_threads workers; returns all logits. */
static float *
run (const LevModel *m, uint32_t n_threads)
{
  LevContextParams p = lev_context_default_params ();
  p.n_ctx = 48;
  p.n_sink = 4;
  p.n_threads = n_threads;
  GError *error = NULL;
  LevContext *c = lev_context_new (m, &p, &error);
  g_assert_no_error (error);
  const uint32_t vocab = lev_model_hparams (m)->vocab_size;
  float *all = g_new (float, (gsize) N_EVAL * vocab);
  guint32 x = 12345;
  for (guint i = 0; i < N_EVAL; i++) {
    x = x * 1103515245u + 12345u;
    const float *l = lev_context_eval (c, (int32_t) ((x >> 8) % vocab), &error);
    g_assert_no_error (error);
    memcpy (all + (gsize) i * vocab, l, vocab * sizeof (float));
  }
  lev_context_free (c);
  return all;
}

typedef struct {
  const LevModel *model;
  uint32_t n_threads;
  float *logits;
} Job;

static gpointer
run_job (gpointer data)
{
  Job *j = data;
  j->logits = run (j->model, j->n_threads);
  return NULL;
}

/* One model: 1 thread as the reference; 2 and 3 threads alone; then two 2-thread contexts at the same time. */
static void
check_model (const char *path)
{
  GError *error = NULL;
  LevModel *m = lev_model_load (path, &error);
  g_assert_no_error (error);
  const gsize n = (gsize) N_EVAL * lev_model_hparams (m)->vocab_size;
  float *ref = run (m, 1);
  for (uint32_t t = 2; t <= 3; t++) {
    float *got = run (m, t);
    double d = lev_test_max_abs_diff (ref, got, n);
    g_test_message ("%s: %u threads: max |diff| %g", path, t, d);
    /* exact: the threads split output rows and heads, each computed by one thread with the same operations in the
     * same order as with one thread, so no sum is regrouped (measured 0; the tolerance was 1e-5) */
    g_assert_cmpfloat (d, ==, 0.0);
    g_free (got);
  }
  Job jobs[2] = { { m, 2, NULL }, { m, 2, NULL } };
  GThread *th[2];
  for (guint i = 0; i < 2; i++)
    th[i] = g_thread_new ("ctx", run_job, &jobs[i]);
  for (guint i = 0; i < 2; i++) {
    g_thread_join (th[i]);
    g_assert_cmpfloat (lev_test_max_abs_diff (ref, jobs[i].logits, n), ==, 0.0);
    g_free (jobs[i].logits);
  }
  g_free (ref);
  lev_model_free (m);
}

#define N_STREAMS 4

/* One stream of the concurrent engine check: its context, reference logits and the largest difference seen. */
typedef struct {
  LevEngine *engine;
  guint32 seed;
  guint prompt;              /* tokens given as one lev_context_eval_batch first (a prompt split into blocks) */
  const float *ref;
  double max_diff;
  guint checked;
} Stream;

static gpointer
run_engine_stream (gpointer data)
{
  Stream *s = data;
  const LevModel *m = lev_engine_model (s->engine);
  const uint32_t vocab = lev_model_hparams (m)->vocab_size;
  LevContextParams p = lev_context_default_params ();
  p.n_ctx = 48;
  p.n_sink = 4;
  GError *error = NULL;
  LevContext *c = lev_engine_context_new (s->engine, &p, &error);
  g_assert_no_error (error);
  int32_t toks[N_EVAL];
  for (guint i = 0; i < N_EVAL; i++)
    toks[i] = seq_token (s->seed, i, vocab);
  guint i = 0;
  if (s->prompt) {
    const float *l = lev_context_eval_batch (c, toks, s->prompt, &error);
    g_assert_no_error (error);
    s->max_diff = MAX (s->max_diff, lev_test_max_abs_diff (l, s->ref + (gsize) (s->prompt - 1) * vocab, vocab));
    s->checked++;
    i = s->prompt;
  }
  for (; i < N_EVAL; i++) {
    const float *l = lev_context_eval (c, toks[i], &error);
    g_assert_no_error (error);
    s->max_diff = MAX (s->max_diff, lev_test_max_abs_diff (l, s->ref + (gsize) i * vocab, vocab));
    s->checked++;
  }
  lev_context_free (c);
  return NULL;
}

/* The engine's batched steps over several contexts (each its own KV cache and position) against each stream alone:
 * the same integer sums and the same float expressions per row (activations are quantized per row, attention reads
 * only the row's own cache), so the logits must be equal to the bit, also after the 48-slot caches wrap. First in
 * lockstep with lev_context_eval_multi (streams starting at different steps: different positions in one step), then
 * from one thread per stream, where prompt blocks and decode tokens of different streams share steps. */
static void
check_engine (const char *path)
{
  GError *error = NULL;
  LevModel *m = lev_model_load (path, &error);
  g_assert_no_error (error);
  const uint32_t vocab = lev_model_hparams (m)->vocab_size;
  float *ref[N_STREAMS];
  for (guint s = 0; s < N_STREAMS; s++)
    ref[s] = run_stream (m, s, LEV_KV_F32);
  LevEngine *e = lev_engine_new (m, 2, LEV_ACT_QUANT_AUTO, &error);
  g_assert_no_error (error);

  LevContextParams p = lev_context_default_params ();
  p.n_ctx = 48;
  p.n_sink = 4;
  /* f32 caches, then caches of different types in one step (each row stored and read in its own cache's type) */
  static const LevKvType kv_mixed[N_STREAMS] = { LEV_KV_F16, LEV_KV_Q8, LEV_KV_F32, LEV_KV_Q8 };
  for (int mixed = 0; mixed < 2; mixed++) {
    float *kref[N_STREAMS];
    LevContext *ctx[N_STREAMS];
    for (guint s = 0; s < N_STREAMS; s++) {
      kref[s] = mixed ? run_stream (m, s, kv_mixed[s]) : ref[s];
      ctx[s] = lev_engine_context_new_kv (e, &p, mixed ? kv_mixed[s] : LEV_KV_F32, &error);
      g_assert_no_error (error);
    }
    double max_diff = 0.0;
    for (guint step = 0; step < N_EVAL + 3 * N_STREAMS; step++) {
      LevContext *batch[N_STREAMS];
      int32_t toks[N_STREAMS];
      guint n = 0, idx[N_STREAMS];
      for (guint s = 0; s < N_STREAMS; s++) {
        guint i = step >= 3 * s ? step - 3 * s : G_MAXUINT;   /* stream s starts at step 3 s */
        if (i < N_EVAL) {
          batch[n] = ctx[s];
          toks[n] = seq_token (s, i, vocab);
          idx[n++] = s;
        }
      }
      g_assert_true (lev_context_eval_multi (batch, toks, n, &error));
      g_assert_no_error (error);
      for (guint k = 0; k < n; k++) {
        guint s = idx[k], i = (guint) lev_context_pos (ctx[s]) - 1;
        max_diff = MAX (max_diff, lev_test_max_abs_diff (lev_context_logits (ctx[s]), kref[s] + (gsize) i * vocab,
                                                         vocab));
      }
    }
    g_test_message ("%s: lockstep batches of up to %u contexts%s: max |diff| %g", path, N_STREAMS,
                    mixed ? " (f16, q8, f32, q8 caches)" : "", max_diff);
    g_assert_cmpfloat (max_diff, ==, 0.0);
    LevEngineStats st;
    lev_engine_get_stats (e, &st);
    g_assert_cmpuint (st.max_contexts, ==, N_STREAMS);
    g_assert_cmpuint (st.contexts, ==, N_STREAMS);
    for (guint s = 0; s < N_STREAMS; s++) {
      lev_context_free (ctx[s]);
      if (mixed)
        g_free (kref[s]);
    }
  }

  /* a context of another engine, a duplicate and a token out of range are refused */
  LevContext *lone = lev_context_new (lev_engine_model (e), &p, &error);
  LevContext *mixed[2] = { lone, lone };
  int32_t two[2] = { 1, 1 };
  g_assert_false (lev_context_eval_multi (mixed, two, 2, &error));
  g_assert_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT);
  g_clear_error (&error);
  lev_context_free (lone);

  /* a step waits for the contexts of the step before (they are sampling their next token), once, unless they said
   * they are idle (their generation ended) */
  for (int idle = 0; idle < 2; idle++) {
    LevContext *pair[2];
    for (int k = 0; k < 2; k++) {
      pair[k] = lev_engine_context_new (e, &p, &error);
      g_assert_no_error (error);
    }
    int32_t first[2] = { 1, 2 };
    g_assert_true (lev_context_eval_multi (pair, first, 2, &error));
    if (idle)
      lev_engine_context_idle (e, pair[0]);
    LevEngineStats before, after;
    lev_engine_get_stats (e, &before);
    for (int32_t t = 3; t < 6; t++)
      g_assert_nonnull (lev_context_eval (pair[1], t, &error));
    lev_engine_get_stats (e, &after);
    g_assert_cmpuint (after.steps - before.steps, ==, 3);
    g_assert_cmpuint (after.waits - before.waits, ==, idle ? 0 : 1);
    for (int k = 0; k < 2; k++)
      lev_context_free (pair[k]);
  }

  Stream st_arg[N_STREAMS];
  GThread *th[N_STREAMS];
  for (guint s = 0; s < N_STREAMS; s++) {
    st_arg[s] = (Stream) { e, s, s == 1 ? 40 : s == 2 ? 7 : 0, ref[s], 0.0, 0 };
    th[s] = g_thread_new ("stream", run_engine_stream, &st_arg[s]);
  }
  for (guint s = 0; s < N_STREAMS; s++) {
    g_thread_join (th[s]);
    g_test_message ("%s: stream %u from its own thread: %u logits checked, max |diff| %g", path, s,
                    st_arg[s].checked, st_arg[s].max_diff);
    g_assert_cmpfloat (st_arg[s].max_diff, ==, 0.0);
    g_assert_cmpuint (st_arg[s].checked, >, 0);
  }
  LevEngineStats st;
  lev_engine_get_stats (e, &st);
  g_test_message ("%s: %" G_GUINT64_FORMAT " steps, %" G_GUINT64_FORMAT " tokens, at most %u in one step", path,
                  st.steps, st.rows, st.max_rows);
  g_assert_cmpuint (st.contexts, ==, 0);
  lev_engine_unref (e);
  lev_model_free (m);
  for (guint s = 0; s < N_STREAMS; s++)
    g_free (ref[s]);
}

static void
test_float_model (void)
{
  gchar *path = convert ("stories260K/stories260K.bin", LEV_OUT_F32, "f32.leviathan");
  check_model (path);
  check_engine (path);
  g_unlink (path);
  g_free (path);
}

static void
test_ternary_model (void)
{
  /* BitNet b1.58 (int8 activations) with packed t2 matrices: the GEMV kernels split over the workers */
  gchar *path = convert ("bitnet-tinystories/bit_model_1M.bin", LEV_OUT_T2, "t2.leviathan");
  check_model (path);
  check_engine (path);
  g_unlink (path);
  g_free (path);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tmp_dir = g_dir_make_tmp ("lev-threads-XXXXXX", NULL);
  g_test_add_func ("/threads/float", test_float_model);
  g_test_add_func ("/threads/ternary", test_ternary_model);
  int rc = g_test_run ();
  g_rmdir (tmp_dir);
  g_free (tmp_dir);
  return rc;
}
