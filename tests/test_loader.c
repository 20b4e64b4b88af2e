/* test_loader.c: a .leviathan file truncated in every section or with corrupted fields is refused with a message; a
 * FIFO or directory as the model too; a model read into memory (LEV_MODEL_NO_MMAP) is the mapped one. */
#include "lev_convert.h"
#include "leviathan.h"
#include "lev_test_common.h"

#include <stddef.h>
#include <glib/gstdio.h>
#include <sys/stat.h>

static gchar *tmp_dir, *good_path, *bad_path;
static guint8 *good;
static gsize good_len;

/* Writes bytes to bad_path and asserts the loader refuses them with a non-empty message. */
static void
expect_refused (const guint8 *bytes, gsize len, const char *what)
{
  GError *error = NULL;
  g_assert_true (g_file_set_contents (bad_path, (const gchar *) bytes, (gssize) len, NULL));
  LevModel *m = lev_model_load (bad_path, &error);
  if (m) {
    g_test_message ("NOT refused: %s", what);
    lev_model_free (m);
  }
  g_assert_null (m);
  g_assert_nonnull (error);
  g_assert_cmpuint (strlen (error->message), >, strlen (bad_path) + 4);
  g_test_message ("%s -> %s", what, error->message);
  g_error_free (error);
}

/* Copies the good file, overwrites `size` bytes at `off` with value, and expects refusal. */
static void
corrupt (gsize off, guint64 value, gsize size, const char *what)
{
  guint8 *b = g_memdup2 (good, good_len);
  memcpy (b + off, &value, size);
  expect_refused (b, good_len, what);
  g_free (b);
}

/* Makes the good file (llama.cpp's stories260K converted, a chat template added) on first use; a missing fixture
 * skips the calling case alone (lev_test_fixture), so the fixture-free cases still run. */
static void
require_good (void)
{
  if (good)
    return;
  gchar *src = lev_test_fixture ("hf/stories260K-llama");
  GError *error = NULL;
  LevConvModel *m = lev_import_any (src, &error);
  g_assert_no_error (error);
  m->chat_template = g_strdup ("{{ messages }}");
  g_assert_true (lev_write_model (m, good_path, LEV_OUT_AUTO, FALSE, &error));
  lev_conv_model_free (m);
  g_assert_true (g_file_get_contents (good_path, (gchar **) &good, &good_len, NULL));
  g_free (src);
}

static void
test_good_file_loads (void)
{
  require_good ();
  GError *error = NULL;
  LevModel *m = lev_model_load (good_path, &error);
  g_assert_no_error (error);
  g_assert_true (lev_model_has_weights (m));
  g_assert_cmpuint (lev_model_hparams (m)->n_layers, ==, 5);
  lev_model_free (m);
}

static void
test_truncated (void)
{
  require_good ();
  LevFileHeader h;
  memcpy (&h, good, sizeof h);
  struct { guint64 cut; const char *what; } cuts[] = {
    { 0, "empty file" },
    { 7, "inside the magic" },
    { 64, "inside the file header" },
    { h.hparams_offset + 100, "inside the hyperparameters" },
    { h.strings_offset + h.strings_size / 2, "inside the strings" },
    { h.tokenizer_offset + 64, "inside the tokenizer header" },
    { h.tokenizer_offset + h.tokenizer_size / 2, "inside the tokenizer arrays" },
    { h.tensors_offset + 200, "inside the tensor directory" },
    { h.data_offset, "at the start of the data" },
    { h.data_offset + h.data_size / 2, "inside the data" },
    { good_len - 1, "one byte short" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cuts); i++) {
    g_assert_cmpuint (cuts[i].cut, <, good_len);
    expect_refused (good, cuts[i].cut, cuts[i].what);
  }
  /* a file with one byte too many is refused too */
  guint8 *b = g_malloc0 (good_len + 1);
  memcpy (b, good, good_len);
  expect_refused (b, good_len + 1, "one byte too long");
  g_free (b);
}

static void
test_header_fields (void)
{
  require_good ();
  static const struct { gsize off, size; const char *name; } fields[] = {
#define F(f) { offsetof (LevFileHeader, f), sizeof (((LevFileHeader *) 0)->f), #f }
    F (version), F (header_size), F (file_size), F (hparams_offset), F (hparams_size), F (strings_offset),
    F (strings_size), F (tokenizer_offset), F (tokenizer_size), F (tensors_offset), F (n_tensors), F (data_offset),
    F (data_size),
#undef F
  };
  corrupt (0, 0x4c4c4c4c, 4, "magic");
  for (guint i = 0; i < G_N_ELEMENTS (fields); i++) {
    guint64 v = 0;
    memcpy (&v, good + fields[i].off, fields[i].size);
    guint64 bad[] = { v + 1, v ? v - 1 : 7, v + 4096, fields[i].size == 8 ? G_MAXUINT64 : G_MAXUINT32,
                      fields[i].size == 8 ? G_MAXUINT64 - 63 : 0x80000000u };
    for (guint k = 0; k < G_N_ELEMENTS (bad); k++) {
      gchar *what = g_strdup_printf ("header %s = %" G_GUINT64_FORMAT, fields[i].name, bad[k]);
      corrupt (fields[i].off, bad[k], fields[i].size, what);
      g_free (what);
    }
  }
}

static void
test_hparams_fields (void)
{
  require_good ();
  LevFileHeader h;
  memcpy (&h, good, sizeof h);
  gsize base = h.hparams_offset;
  float nan_f = NAN;
  guint32 nan_bits;
  memcpy (&nan_bits, &nan_f, 4);
  static const struct { gsize off; const char *name; } fields[] = {
#define F(f) { offsetof (LevHParams, f), #f }
    F (arch), F (flags), F (dim), F (n_layers), F (n_heads), F (n_kv_heads), F (head_dim), F (ffn_dim),
    F (vocab_size), F (rope_style), F (rope_scaling), F (activation), F (bos_id), F (eos_id),
    F (chat_template_offset), F (name_offset), F (name_len),
#undef F
  };
  for (guint i = 0; i < G_N_ELEMENTS (fields); i++) {
    guint32 bad[] = { 0x7fffffffu, 0xfffffff0u };
    for (guint k = 0; k < G_N_ELEMENTS (bad); k++) {
      gchar *what = g_strdup_printf ("hparams %s = 0x%x", fields[i].name, bad[k]);
      corrupt (base + fields[i].off, bad[k], 4, what);
      g_free (what);
    }
  }
  corrupt (base + offsetof (LevHParams, norm_eps), nan_bits, 4, "hparams norm_eps = NaN");
  corrupt (base + offsetof (LevHParams, rope_theta), 0, 4, "hparams rope_theta = 0");
  corrupt (base + offsetof (LevHParams, dim), 32, 4, "hparams dim = 32 (tensors no longer match)");
  corrupt (base + offsetof (LevHParams, n_kv_heads), 3, 4, "hparams n_kv_heads = 3 (does not divide n_heads)");
  corrupt (base + offsetof (LevHParams, ffn_dim), 171, 4, "hparams ffn_dim = 171");
  corrupt (base + offsetof (LevHParams, n_layers), 6, 4, "hparams n_layers = 6 (a layer is missing)");
}

static void
test_tokenizer_fields (void)
{
  require_good ();
  LevFileHeader h;
  memcpy (&h, good, sizeof h);
  gsize base = h.tokenizer_offset;
  static const struct { gsize off, size; const char *name; } fields[] = {
#define F(f) { offsetof (LevTokenizerHeader, f), sizeof (((LevTokenizerHeader *) 0)->f), #f }
    F (kind), F (n_tokens), F (n_merges), F (piece_offsets_offset), F (piece_bytes_offset), F (piece_bytes_size),
    F (scores_offset), F (types_offset), F (merges_offset),
#undef F
  };
  for (guint i = 0; i < G_N_ELEMENTS (fields); i++) {
    guint64 bad = fields[i].size == 8 ? G_MAXUINT64 - 3 : 0x7ffffff0u;
    gchar *what = g_strdup_printf ("tokenizer %s", fields[i].name);
    corrupt (base + fields[i].off, bad, fields[i].size, what);
    g_free (what);
  }
  /* a piece offset that runs backwards */
  LevTokenizerHeader th;
  memcpy (&th, good + base, sizeof th);
  corrupt (base + th.piece_offsets_offset + 4 * 100, 0xffffff, 4, "tokenizer piece offset out of order");
}

static void
test_tensor_fields (void)
{
  require_good ();
  LevFileHeader h;
  memcpy (&h, good, sizeof h);
  for (guint64 t = 0; t < MIN (h.n_tensors, 3u); t++) {
    gsize base = h.tensors_offset + t * sizeof (LevTensorEntry);
    corrupt (base + offsetof (LevTensorEntry, encoding), 99, 4, "tensor encoding 99");
    corrupt (base + offsetof (LevTensorEntry, n_dims), 0, 4, "tensor n_dims 0");
    corrupt (base + offsetof (LevTensorEntry, n_dims), 5, 4, "tensor n_dims 5");
    corrupt (base + offsetof (LevTensorEntry, shape), 1u << 30, 8, "tensor shape[0] huge");
    corrupt (base + offsetof (LevTensorEntry, shape) + 8, 0, 8, "tensor shape[1] 0");
    corrupt (base + offsetof (LevTensorEntry, offset), h.data_size, 8, "tensor offset past the data");
    corrupt (base + offsetof (LevTensorEntry, offset), 3, 8, "tensor offset misaligned");
    corrupt (base + offsetof (LevTensorEntry, size), 12, 8, "tensor size wrong");
    corrupt (base + offsetof (LevTensorEntry, name), 0, 1, "tensor name empty");
    guint8 *b = g_memdup2 (good, good_len);
    memset (b + base, 'x', LEV_TENSOR_NAME_MAX);
    expect_refused (b, good_len, "tensor name not terminated");
    g_free (b);
  }
  /* renaming a required tensor makes it missing */
  gsize base = h.tensors_offset;
  guint8 *b = g_memdup2 (good, good_len);
  memcpy (b + base, "nonsense", 9);
  expect_refused (b, good_len, "a required tensor renamed");
  g_free (b);
}

static void
test_missing_file (void)
{
  GError *error = NULL;
  gchar *p = g_build_filename (tmp_dir, "does-not-exist.leviathan", NULL);
  g_assert_null (lev_model_load (p, &error));
  g_assert_error (error, LEV_ERROR, LEV_ERROR_IO);
  g_clear_error (&error);
  g_free (p);
  /* a directory is not a model */
  g_assert_null (lev_model_load (tmp_dir, &error));
  g_assert_nonnull (error);
  g_error_free (error);
}

/* A FIFO or a directory as the model is refused at once with a message naming what it is (open() of a FIFO used to
 * block until a writer came; a directory gave GLib's "mmap() failed: No such device"). */
static void
test_not_regular (void)
{
  GError *error = NULL;
  gchar *fifo = g_build_filename (tmp_dir, "fifo.leviathan", NULL);
  g_assert_cmpint (mkfifo (fifo, 0600), ==, 0);
  for (guint flags = 0; flags <= LEV_MODEL_NO_MMAP; flags += LEV_MODEL_NO_MMAP) {
    LevModelParams params = { flags, NULL };
    g_assert_null (lev_model_load_full (fifo, &params, &error));
    g_assert_error (error, LEV_ERROR, LEV_ERROR_IO);
    g_assert_nonnull (strstr (error->message, "a FIFO"));
    g_clear_error (&error);
    g_assert_null (lev_model_load_full (tmp_dir, &params, &error));
    g_assert_error (error, LEV_ERROR, LEV_ERROR_IO);
    g_assert_nonnull (strstr (error->message, "a directory"));
    g_clear_error (&error);
  }
  g_unlink (fifo);
  g_free (fifo);
}

/* LEV_MODEL_NO_MMAP reads the file instead of mapping it: the same model (the same logits to the bit), the same
 * refusals of a damaged file; LEV_MODEL_CHECK_TENSORS passes a sound one. */
static void
test_no_mmap (void)
{
  require_good ();
  GError *error = NULL;
  LevModelParams mapped = { 0, NULL }, read = { LEV_MODEL_NO_MMAP | LEV_MODEL_CHECK_TENSORS, NULL };
  LevModel *a = lev_model_load_full (good_path, &mapped, &error);
  g_assert_no_error (error);
  LevModel *b = lev_model_load_full (good_path, &read, &error);
  g_assert_no_error (error);
  LevContextParams cp = lev_context_default_params ();
  cp.n_ctx = 16;
  cp.n_threads = 1;
  LevContext *ca = lev_context_new (a, &cp, &error), *cb = lev_context_new (b, &cp, &error);
  g_assert_no_error (error);
  const int32_t ids[] = { 1, 403, 407, 261 };
  const float *la = lev_context_eval_batch (ca, ids, 4, &error), *lb = lev_context_eval_batch (cb, ids, 4, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (la, 4 * lev_model_vocab_size (a), lb, 4 * lev_model_vocab_size (b));
  lev_context_free (ca);
  lev_context_free (cb);
  lev_model_free (a);
  lev_model_free (b);
  g_assert_true (g_file_set_contents (bad_path, (const gchar *) good, (gssize) (good_len - 1), NULL));
  g_assert_null (lev_model_load_full (bad_path, &read, &error));
  g_assert_error (error, LEV_ERROR, LEV_ERROR_FORMAT);
  g_clear_error (&error);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tmp_dir = g_dir_make_tmp ("lev-loader-XXXXXX", NULL);
  good_path = g_build_filename (tmp_dir, "good.leviathan", NULL);
  bad_path = g_build_filename (tmp_dir, "bad.leviathan", NULL);

  g_test_add_func ("/loader/good", test_good_file_loads);
  g_test_add_func ("/loader/truncated", test_truncated);
  g_test_add_func ("/loader/header-fields", test_header_fields);
  g_test_add_func ("/loader/hparams-fields", test_hparams_fields);
  g_test_add_func ("/loader/tokenizer-fields", test_tokenizer_fields);
  g_test_add_func ("/loader/tensor-fields", test_tensor_fields);
  g_test_add_func ("/loader/missing-file", test_missing_file);
  g_test_add_func ("/loader/not-regular", test_not_regular);
  g_test_add_func ("/loader/no-mmap", test_no_mmap);
  int rc = g_test_run ();
  g_unlink (good_path);
  g_unlink (bad_path);
  g_rmdir (tmp_dir);
  g_free (good);
  return rc;
}
