/* test_threads.c: the engine's worker threads (lev_threadpool) and a model shared by concurrent contexts give the
 * same logits as one thread; small enough to run under ThreadSanitizer (scripts/test.sh --tsan). */
#include "lev_convert.h"
#include "leviathan.h"
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

static void
test_float_model (void)
{
  gchar *path = convert ("stories260K/stories260K.bin", LEV_OUT_F32, "f32.leviathan");
  check_model (path);
  g_unlink (path);
  g_free (path);
}

static void
test_ternary_model (void)
{
  /* BitNet b1.58 (int8 activations) with packed t2 matrices: the GEMV kernels split over the workers */
  gchar *path = convert ("bitnet-tinystories/bit_model_1M.bin", LEV_OUT_T2, "t2.leviathan");
  check_model (path);
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
