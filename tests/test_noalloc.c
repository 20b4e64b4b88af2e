/* test_noalloc.c: steady-state decode (and prompt blocks) allocate nothing: heap entry points are wrapped at link
 * time (-Wl,--wrap=...), so every call to them from the engine, kernels and this test is counted. */
#include "lev_convert.h"
#include "leviathan.h"
#include "lev_model.h"
#include "lev_test_common.h"

#include <glib/gstdio.h>
#include <stdatomic.h>

static atomic_int counting;
static atomic_long n_allocs;

/* The wrapped allocators (see tests/meson.build for the list given to the linker). */
void *__real_malloc (size_t n);
void *__real_calloc (size_t n, size_t m);
void *__real_realloc (void *p, size_t n);
int __real_posix_memalign (void **p, size_t a, size_t n);
void *__real_aligned_alloc (size_t a, size_t n);
gpointer __real_g_malloc (gsize n);
gpointer __real_g_malloc0 (gsize n);
gpointer __real_g_realloc (gpointer p, gsize n);
gpointer __real_g_try_malloc (gsize n);
gpointer __real_g_try_malloc0 (gsize n);
gpointer __real_g_malloc_n (gsize n, gsize m);
gpointer __real_g_malloc0_n (gsize n, gsize m);
void *__wrap_malloc (size_t n);
void *__wrap_calloc (size_t n, size_t m);
void *__wrap_realloc (void *p, size_t n);
int __wrap_posix_memalign (void **p, size_t a, size_t n);
void *__wrap_aligned_alloc (size_t a, size_t n);
gpointer __wrap_g_malloc (gsize n);
gpointer __wrap_g_malloc0 (gsize n);
gpointer __wrap_g_realloc (gpointer p, gsize n);
gpointer __wrap_g_try_malloc (gsize n);
gpointer __wrap_g_try_malloc0 (gsize n);
gpointer __wrap_g_malloc_n (gsize n, gsize m);
gpointer __wrap_g_malloc0_n (gsize n, gsize m);

#define COUNT() G_STMT_START { if (atomic_load (&counting)) atomic_fetch_add (&n_allocs, 1); } G_STMT_END
void *__wrap_malloc (size_t n) { COUNT (); return __real_malloc (n); }
void *__wrap_calloc (size_t n, size_t m) { COUNT (); return __real_calloc (n, m); }
void *__wrap_realloc (void *p, size_t n) { COUNT (); return __real_realloc (p, n); }
int __wrap_posix_memalign (void **p, size_t a, size_t n) { COUNT (); return __real_posix_memalign (p, a, n); }
void *__wrap_aligned_alloc (size_t a, size_t n) { COUNT (); return __real_aligned_alloc (a, n); }
gpointer __wrap_g_malloc (gsize n) { COUNT (); return __real_g_malloc (n); }
gpointer __wrap_g_malloc0 (gsize n) { COUNT (); return __real_g_malloc0 (n); }
gpointer __wrap_g_realloc (gpointer p, gsize n) { COUNT (); return __real_g_realloc (p, n); }
gpointer __wrap_g_try_malloc (gsize n) { COUNT (); return __real_g_try_malloc (n); }
gpointer __wrap_g_try_malloc0 (gsize n) { COUNT (); return __real_g_try_malloc0 (n); }
gpointer __wrap_g_malloc_n (gsize n, gsize m) { COUNT (); return __real_g_malloc_n (n, m); }
gpointer __wrap_g_malloc0_n (gsize n, gsize m) { COUNT (); return __real_g_malloc0_n (n, m); }

static void
test_hook_counts (void)
{
  /* the hook itself works: calls made while counting are seen */
  atomic_store (&n_allocs, 0);
  atomic_store (&counting, 1);
  void *volatile p = malloc (16);
  gpointer volatile q = g_malloc (16);
  atomic_store (&counting, 0);
  free (p);
  g_free (q);
  g_assert_cmpint (atomic_load (&n_allocs), ==, 2);
}

/* Converts a fixture to a temporary file in format and checks that decoding allocates nothing after warm-up, with a
 * context of its own threads and with one on an engine (whose steps the scheduler runs). */
static void
check_decode (const char *src_rel, const char *tok_rel, LevOutFormat format, LevOutFormat embd)
{
  for (int on_engine = 0; on_engine < 2; on_engine++) {
    gchar *src = lev_test_fixture (src_rel), *tok = tok_rel ? lev_test_fixture (tok_rel) : NULL;
    GError *error = NULL;
    LevConvModel *cm = lev_import_any (src, &error);
    g_assert_no_error (error);
    if (tok) {
      if (cm->vocab)
        lev_conv_vocab_free (cm->vocab);
      cm->vocab = lev_import_vocab (tok, &error);
      g_assert_no_error (error);
    }
    gchar *dir = g_dir_make_tmp ("lev-noalloc-XXXXXX", NULL);
    gchar *path = g_build_filename (dir, "m.leviathan", NULL);
    g_assert_true (lev_write_model_full (cm, path, format, embd, FALSE, &error));
    lev_conv_model_free (cm);
    LevModel *m = lev_model_load (path, &error);
    g_assert_no_error (error);
    LevContextParams p = lev_context_default_params ();
    p.n_ctx = 64;
    p.n_threads = 2;
    LevEngine *engine = on_engine ? lev_engine_new (m, 2, LEV_ACT_QUANT_AUTO, &error) : NULL;
    g_assert_no_error (error);
    atomic_store (&n_allocs, 0);
    atomic_store (&counting, 1);
    LevContext *c = engine ? lev_engine_context_new (engine, &p, &error) : lev_context_new (m, &p, &error);
    atomic_store (&counting, 0);
    g_assert_no_error (error);
    /* the engine's own allocations are seen by the hook (a context on an engine has no scratch of its own; the two
     * KV caches are mappings of their own, not heap) */
    g_assert_cmpint (atomic_load (&n_allocs), >, engine ? 2 : 8);
    uint32_t vocab = lev_model_hparams (m)->vocab_size;
    int32_t toks[16];
    for (int i = 0; i < 16; i++)
      toks[i] = (int32_t) ((i * 37 + 5) % vocab);
    lev_context_eval_batch (c, toks, 16, NULL);       /* warm-up: prompt block, then decode */
    for (int i = 0; i < 8; i++)
      lev_context_eval (c, toks[i], NULL);
    atomic_store (&n_allocs, 0);
    atomic_store (&counting, 1);
    for (int i = 0; i < 100; i++) {                   /* runs past the 64-slot cache: the ring buffer wraps */
      const float *logits = lev_context_eval (c, toks[i % 16], NULL);
      g_assert_nonnull (logits);
    }
    lev_context_reset (c);
    lev_context_eval_batch (c, toks, 16, NULL);
    atomic_store (&counting, 0);
    g_test_message ("%s (format %d%s): %ld heap allocations in 100 decoded tokens and a 16-token prompt", src_rel,
                    (int) format, engine ? ", on an engine" : "", atomic_load (&n_allocs));
    g_assert_cmpint (atomic_load (&n_allocs), ==, 0);
    lev_context_free (c);
    if (engine)
      lev_engine_unref (engine);
    lev_model_free (m);
    g_unlink (path);
    g_rmdir (dir);
    g_free (path);
    g_free (dir);
    g_free (src);
    g_free (tok);
  }
}

static void
test_decode_packed (void)
{
  check_decode ("bitnet-tinystories/bit_model_1M.bin", "stories260K/tok512.bin", LEV_OUT_T2, LEV_OUT_AUTO);
  check_decode ("hf/stories260K-qwen2", NULL, LEV_OUT_T1, LEV_OUT_Q4);
  check_decode ("stories260K/stories260K.bin", "stories260K/tok512.bin", LEV_OUT_B1, LEV_OUT_Q8);
}

static void
test_decode_float (void)
{
  check_decode ("stories260K/stories260K.bin", "stories260K/tok512.bin", LEV_OUT_AUTO, LEV_OUT_AUTO);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/noalloc/hook", test_hook_counts);
  g_test_add_func ("/noalloc/decode-packed", test_decode_packed);
  g_test_add_func ("/noalloc/decode-float", test_decode_float);
  return g_test_run ();
}
