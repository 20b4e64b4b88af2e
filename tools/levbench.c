/* levbench.c: throughput benchmark: prompt (pp) and decode (tg) tokens/s, peak RSS, bytes per token, bandwidth share. */
#include "leviathan.h"
#include "lev_model.h"
#include "lev_qkernels.h"
#include "lev_threadpool.h"
#include "lev_source.h"
#include "lev_version.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static gchar *opt_model = NULL;
static gchar *opt_synthetic = NULL;
static gchar *opt_format = NULL;
static gchar *opt_convert_format = NULL;
static gchar *opt_embd_format = NULL;
static gchar *opt_tests = NULL;
static gchar *opt_kv = NULL;
static gint opt_threads = 0;
static gint opt_ctx = 2048;
static gint opt_reps = 3;
static gboolean opt_json = FALSE;
static gboolean opt_no_bandwidth = FALSE;
static gboolean opt_rotate = FALSE;
static gchar *opt_adapter = NULL;
static gdouble opt_outliers = 0.0;
static gint opt_rank = 0;
static gint opt_group_scales = 0;
static gboolean opt_kernel_rate = FALSE;
static gint opt_kernel_kib = 256;
static gboolean opt_fork_join = FALSE;
static gboolean opt_kernel_choice = FALSE;
static gboolean opt_no_mmap = FALSE;
static gboolean opt_check_tensors = FALSE;
static gchar *opt_streams = NULL;
static gint opt_stream_prompt = 64;
static gint opt_stream_tokens = 64;

/* Prints the program's name and version (--version) and exits. */
static gboolean
print_version (const gchar *name, const gchar *value, gpointer data, GError **error)
{
  printf ("levbench (Leviathan) %s\n", LEV_PROJECT_VERSION);
  exit (0);
}

static GOptionEntry entries[] = {
  { "version", 0, G_OPTION_FLAG_NO_ARG, G_OPTION_ARG_CALLBACK, (gpointer) print_version, "Print the version and exit",
    NULL },
  { "model", 'm', 0, G_OPTION_ARG_FILENAME, &opt_model,
    "Model to benchmark: a .leviathan file, a GGUF file, a Hugging Face checkpoint directory or "
    "hf:ORG/NAME[@REVISION][:FILE] (converted once into $XDG_CACHE_HOME/leviathan/models)", "MODEL" },
  { "convert-format", 0, 0, G_OPTION_ARG_STRING, &opt_convert_format,
    "Conversion format of a model that is not a .leviathan file: auto (default, or $LEV_CONVERT_FORMAT: ternary "
    "matrices packed to t2 without loss, the others kept), or levconvert's f32, f16, bf16, q8, q4, t2, t1, b1", "FMT" },
  { "synthetic", 0, 0, G_OPTION_ARG_STRING, &opt_synthetic,
    "Random weights with the shapes of tinyllama-1.1b, qwen2.5-0.5b or bitnet-2b4t (made in a temporary file)",
    "SHAPE" },
  { "format", 'f', 0, G_OPTION_ARG_STRING, &opt_format, "Synthetic: encoding of the blocks' matrices: t2, t1, b1, "
    "q4 or q8 (default t2)", "FMT" },
  { "embd-format", 0, 0, G_OPTION_ARG_STRING, &opt_embd_format, "Synthetic: encoding of token_embd and output: q4, "
    "q8 or f16 (default q4)", "FMT" },
  { "tests", 'p', 0, G_OPTION_ARG_STRING, &opt_tests, "Comma-separated tests: ppN (a prompt of N tokens), tgN (N "
    "decoded tokens), fill (decode until the context is full, for peak RSS) (default pp128,pp512,tg128)", "LIST" },
  { "threads", 't', 0, G_OPTION_ARG_INT, &opt_threads, "Threads (default: all CPUs)", "N" },
  { "ctx", 'c', 0, G_OPTION_ARG_INT, &opt_ctx, "Context (KV cache) size (default 2048)", "N" },
  { "kv", 0, 0, G_OPTION_ARG_STRING, &opt_kv, "KV cache type: f32 (default), f16 or q8", "TYPE" },
  { "reps", 'r', 0, G_OPTION_ARG_INT, &opt_reps, "Repetitions of each test (default 3)", "N" },
  { "json", 0, 0, G_OPTION_ARG_NONE, &opt_json, "One JSON object per line instead of a table", NULL },
  { "kernel-choice", 0, 0, G_OPTION_ARG_NONE, &opt_kernel_choice, "Instead of a model: print which kernel "
    "implementation serves each encoding here (one token/tiles; measured, or \"(cached)\" from "
    "$XDG_CACHE_HOME/leviathan) and exit", NULL },
  { "adapter", 0, 0, G_OPTION_ARG_FILENAME, &opt_adapter, "Adapter file mounted over the model (-m)", "FILE" },
  { "no-mmap", 0, 0, G_OPTION_ARG_NONE, &opt_no_mmap, "Read the model into memory instead of mapping it (a mapped "
    "file truncated by another process kills levbench with SIGBUS)", NULL },
  { "check-tensors", 0, 0, G_OPTION_ARG_NONE, &opt_check_tensors, "Scan every weight at load and refuse a model "
    "holding NaN or infinity", NULL },
  { "outliers", 0, 0, G_OPTION_ARG_DOUBLE, &opt_outliers, "Synthetic: sparse f16 outliers per matrix, in percent of "
    "its weights (levconvert's default is 0.5; default 0 = none)", "PCT" },
  { "rank", 0, 0, G_OPTION_ARG_INT, &opt_rank, "Synthetic: int8 low-rank adapter of this rank on every matrix "
    "(levconvert's default is 4; default 0 = none)", "R" },
  { "group-scales", 0, 0, G_OPTION_ARG_INT, &opt_group_scales, "Synthetic: one scale per G weights of each row of "
    "the t2 / t1 / b1 matrices instead of one per row: 128 = one per block (levconvert --scale group; t1: 160) or "
    "64 (--scale group64; t2, b1) (default 0 = per row)", "G" },
  { "streams", 0, 0, G_OPTION_ARG_STRING, &opt_streams, "Instead of the tests: concurrent streams on one engine, for "
    "each comma-separated count N (say 1,2,4,8): N threads each evaluating a prompt (--stream-prompt) and decoding "
    "--stream-tokens tokens, the last one joining once the others decode; aggregate and per-stream tokens/s, time "
    "to first token, tokens per batched step, and one stream on a context of its own threads (today's path)",
    "LIST" },
  { "stream-prompt", 0, 0, G_OPTION_ARG_INT, &opt_stream_prompt, "--streams: prompt tokens of each stream (default "
    "64)", "N" },
  { "stream-tokens", 0, 0, G_OPTION_ARG_INT, &opt_stream_tokens, "--streams: decoded tokens of each stream (default "
    "64)", "N" },
  { "no-bandwidth", 0, 0, G_OPTION_ARG_NONE, &opt_no_bandwidth, "Skip the memory bandwidth measurement", NULL },
  { "rotate", 0, 0, G_OPTION_ARG_NONE, &opt_rotate, "Synthetic: every linear input rotated online (levconvert "
    "--rotate hadamard: one randomized Hadamard transform per input and token)", NULL },
  { "kernel-rate", 0, 0, G_OPTION_ARG_NONE, &opt_kernel_rate, "Instead of a model: the code rate of every kernel "
    "implementation and encoding on a cache-resident matrix, one thread, one token and a 32-token tile (GB/s of "
    "packed weights), and which one the runtime chose", NULL },
  { "fork-join", 0, 0, G_OPTION_ARG_NONE, &opt_fork_join, "Instead of a model: what one parallel job of the "
    "engine's thread pool costs (start, claim of chunks that do nothing, join) at -t threads, in microseconds", NULL },
  { "kernel-kib", 0, 0, G_OPTION_ARG_INT, &opt_kernel_kib, "--kernel-rate: size of the matrix in KiB (default 256: "
    "resident in L2; a size far past the last-level cache measures the kernels reading memory, the scalar reference "
    "left out past 1 MiB)", "KIB" },
  { NULL }
};

/* ---------------------------------------------------------------- synthetic models */

typedef struct {
  const char *name;
  LevHParams hp;
} Shape;

/* Fills the hyperparameters of a named model shape; FALSE when unknown. */
static gboolean
shape_by_name (const char *name, LevHParams *hp)
{
  memset (hp, 0, sizeof *hp);
  hp->norm_eps = 1e-5f;
  hp->bos_id = 1;
  hp->eos_id = 2;
  hp->rope_style = LEV_ROPE_HALF;
  if (strcmp (name, "tinyllama-1.1b") == 0) {
    hp->arch = LEV_ARCH_LLAMA;
    hp->dim = 2048, hp->n_layers = 22, hp->n_heads = 32, hp->n_kv_heads = 4, hp->head_dim = 64;
    hp->ffn_dim = 5632, hp->vocab_size = 32000, hp->max_ctx = 2048, hp->rope_theta = 10000.0f;
  } else if (strcmp (name, "qwen2.5-0.5b") == 0) {
    hp->arch = LEV_ARCH_QWEN2;
    hp->flags = LEV_HP_QKV_BIAS | LEV_HP_TIED_EMBEDDINGS;
    hp->dim = 896, hp->n_layers = 24, hp->n_heads = 14, hp->n_kv_heads = 2, hp->head_dim = 64;
    hp->ffn_dim = 4864, hp->vocab_size = 151936, hp->max_ctx = 32768, hp->rope_theta = 1e6f;
    hp->norm_eps = 1e-6f;
  } else if (strcmp (name, "bitnet-2b4t") == 0) {
    hp->arch = LEV_ARCH_BITNET;
    hp->flags = LEV_HP_SUB_NORMS | LEV_HP_TIED_EMBEDDINGS | LEV_HP_ACT_QUANT;
    hp->dim = 2560, hp->n_layers = 30, hp->n_heads = 20, hp->n_kv_heads = 5, hp->head_dim = 128;
    hp->ffn_dim = 6912, hp->vocab_size = 128256, hp->max_ctx = 4096, hp->rope_theta = 500000.0f;
    hp->activation = LEV_ACT_RELU2;
  } else {
    return FALSE;
  }
  return TRUE;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* xorshift64* */
static inline uint64_t
rnd64 (void)
{
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dull;
}

typedef struct {
  char name[LEV_TENSOR_NAME_MAX];
  uint32_t enc, n_dims;
  uint64_t rows, cols;
  uint64_t per_row;           /* LEV_ENC_SPARSE: entries per row */
} SynTensor;

/* Returns the scales per row of a synthetic packed matrix: one, or one per group with --group-scales. */
static uint64_t
syn_scales_per_row (const SynTensor *t)
{
  size_t g = opt_group_scales == LEV_HALF_BLOCK_GROUP_WEIGHTS ? LEV_HALF_BLOCK_GROUP_WEIGHTS
             : lev_qenc_block_weights (t->enc);
  size_t n = opt_group_scales ? lev_qenc_groups_per_row (t->enc, t->cols, g) : 0;
  return n ? n : 1;
}

static uint64_t
syn_size (const SynTensor *t)
{
  if (t->n_dims == 1)
    return lev_encoding_size (LEV_ENC_F32, t->rows, 1, 0);
  uint64_t extra = t->enc == LEV_ENC_SPARSE ? t->rows * t->per_row : t->rows * syn_scales_per_row (t);
  return lev_encoding_size (t->enc, t->rows, t->cols, extra);
}

/* Writes the data of one tensor: valid random codes, scales 1/sqrt(cols), norm weights 1. */
static gboolean
syn_write (FILE *f, const SynTensor *t, uint8_t *buf, size_t buf_size)
{
  if (t->n_dims == 1) {
    for (uint64_t i = 0; i < t->rows; i++) {
      float one = 1.0f;
      if (fwrite (&one, 4, 1, f) != 1)
        return FALSE;
    }
    return TRUE;
  }
  float scale = 1.0f / sqrtf ((float) t->cols);
  if (t->enc == LEV_ENC_SPARSE) {   /* per_row entries per row, spread over the columns, small f16 values */
    for (uint64_t r = 0; r <= t->rows; r++)
      if (fwrite (&(uint32_t) { (uint32_t) (r * t->per_row) }, 4, 1, f) != 1)
        return FALSE;
    uint64_t span = t->cols / MAX (t->per_row, 1u);
    for (uint64_t r = 0; r < t->rows; r++)
      for (uint64_t k = 0; k < t->per_row; k++) {
        uint64_t rv = rnd64 ();
        uint32_t e = (uint32_t) (k * span + rv % span) | (uint32_t) (0x2000u | ((rv >> 32) & 0x83ffu)) << 16;
        if (fwrite (&e, 4, 1, f) != 1)
          return FALSE;
      }
    return TRUE;
  }
  uint64_t codes = syn_size (t) - t->rows * 4 * syn_scales_per_row (t);
  if (t->enc == LEV_ENC_Q8) {
    for (uint64_t r = 0; r < t->rows; r++)
      if (fwrite (&(float) { scale / 64.0f }, 4, 1, f) != 1)
        return FALSE;
    codes = t->rows * t->cols;
  }
  /* valid bytes per encoding: t2 fields 0..2, t1 values below 243 (stored form), f16 small values */
  uint8_t t2_bytes[81], t1_bytes[243];
  for (int v = 0; v < 81; v++)
    t2_bytes[v] = (uint8_t) ((v % 3) | (v / 3 % 3) << 2 | (v / 9 % 3) << 4 | (v / 27 % 3) << 6);
  for (int v = 0; v < 243; v++) {
    int8_t vals[160] = { 0 };
    uint8_t p[32];
    for (int i = 0, x = v; i < 5; i++, x /= 3)
      vals[32 * i] = (int8_t) (x % 3 - 1);
    lev_qpack_row (LEV_ENC_T1, vals, 160, p);
    t1_bytes[v] = p[0];
  }
  while (codes > 0) {
    size_t n = MIN ((uint64_t) buf_size, codes);
    for (size_t i = 0; i < n; i += 8) {
      uint64_t r = rnd64 ();
      for (size_t k = 0; k < 8 && i + k < n; k++, r >>= 8) {
        uint8_t b = (uint8_t) r;
        switch (t->enc) {
          case LEV_ENC_T2: b = t2_bytes[b % 81]; break;
          case LEV_ENC_T1: b = t1_bytes[b % 243]; break;
          case LEV_ENC_F16: b = (i + k) % 2 ? (uint8_t) (0x20 | (b & 0x87)) : b; break;  /* |x| < 2^-7 */
          default: break;
        }
        buf[i + k] = b;
      }
    }
    if (fwrite (buf, 1, n, f) != n)
      return FALSE;
    codes -= n;
  }
  if (t->enc != LEV_ENC_F16 && t->enc != LEV_ENC_Q8)
    for (uint64_t r = 0; r < t->rows * syn_scales_per_row (t); r++)
      if (fwrite (&scale, 4, 1, f) != 1)
        return FALSE;
  return TRUE;
}

/* Writes a model of random weights with the given shape to path. */
static gboolean
write_synthetic (const char *path, const LevHParams *hp, uint32_t enc, uint32_t embd_enc, GError **error)
{
  GArray *ts = g_array_new (FALSE, TRUE, sizeof (SynTensor));
  size_t n_schema;
  LevSchemaTensor *schema = lev_schema_tensors (hp, &n_schema);
  GArray *extras = g_array_new (FALSE, TRUE, sizeof (SynTensor));
  for (size_t i = 0; i < n_schema; i++) {
    const LevSchemaTensor *st = &schema[i];
    if (!st->required)
      continue;
    gboolean embd = st->role == LEV_TENSOR_TOKEN_EMBD || st->role == LEV_TENSOR_OUTPUT;
    SynTensor t = { { 0 }, st->n_dims == 1 ? LEV_ENC_F32 : embd ? embd_enc : enc, st->n_dims, st->shape[0],
                    st->shape[1], 0 };
    g_strlcpy (t.name, st->name, sizeof t.name);
    g_array_append_val (ts, t);
    if (st->role != LEV_TENSOR_LINEAR)
      continue;
    /* the error compensation of the block's matrices, after the last of them */
    uint64_t r = st->shape[0], c = st->shape[1];
    if (opt_outliers > 0.0) {
      SynTensor o = { { 0 }, LEV_ENC_SPARSE, 2, r, c, (uint64_t) MAX (1.0, llround (opt_outliers / 100.0 * c)) };
      g_snprintf (o.name, sizeof o.name, "%s" LEV_OUTLIERS_SUFFIX, st->name);
      g_array_append_val (extras, o);
    }
    if (opt_rank > 0) {
      SynTensor a = { { 0 }, LEV_ENC_Q8, 2, r, (uint64_t) opt_rank, 0 }, b = { { 0 }, LEV_ENC_Q8, 2,
                                                                               (uint64_t) opt_rank, c, 0 };
      g_snprintf (a.name, sizeof a.name, "%s" LEV_LORA_A_SUFFIX, st->name);
      g_snprintf (b.name, sizeof b.name, "%s" LEV_LORA_B_SUFFIX, st->name);
      g_array_append_val (extras, a);
      g_array_append_val (extras, b);
    }
    if (st->linear == LEV_N_LINEAR - 1) {
      g_array_append_vals (ts, extras->data, extras->len);
      g_array_set_size (extras, 0);
    }
  }
  g_array_unref (extras);
  g_free (schema);
  LevFileHeader h;
  memset (&h, 0, sizeof h);
  memcpy (h.magic, LEV_MAGIC, 8);
  h.version = LEV_VERSION;
  h.header_size = sizeof h;
  h.hparams_offset = sizeof h;
  h.hparams_size = sizeof (LevHParams);
  h.strings_offset = h.tokenizer_offset = h.tensors_offset = h.hparams_offset + h.hparams_size;
  h.n_tensors = ts->len;
  h.data_offset = (h.tensors_offset + ts->len * sizeof (LevTensorEntry) + LEV_ALIGN - 1) / LEV_ALIGN * LEV_ALIGN;
  LevTensorEntry *dir = g_new0 (LevTensorEntry, ts->len);
  uint64_t off = 0;
  for (guint i = 0; i < ts->len; i++) {
    SynTensor *t = &g_array_index (ts, SynTensor, i);
    memcpy (dir[i].name, t->name, sizeof dir[i].name);
    dir[i].encoding = t->n_dims == 1 ? LEV_ENC_F32 : t->enc;
    dir[i].n_dims = t->n_dims;
    dir[i].shape[0] = t->rows;
    dir[i].shape[1] = t->n_dims == 2 ? t->cols : 1;
    dir[i].shape[2] = dir[i].shape[3] = 1;
    dir[i].offset = off;
    dir[i].size = syn_size (t);
    off = (off + dir[i].size + LEV_ALIGN - 1) / LEV_ALIGN * LEV_ALIGN;
  }
  h.data_size = off;
  h.file_size = h.data_offset + off;
  FILE *f = fopen (path, "wb");
  gboolean ok = f != NULL;
  size_t buf_size = 1 << 20;
  uint8_t *buf = g_malloc (buf_size);
  static const uint8_t zeros[64];
  ok = ok && fwrite (&h, sizeof h, 1, f) == 1 && fwrite (hp, sizeof *hp, 1, f) == 1
       && fwrite (dir, sizeof (LevTensorEntry), ts->len, f) == ts->len;
  for (guint i = 0; ok && i < ts->len; i++) {
    long cur = ftell (f);
    uint64_t want = h.data_offset + dir[i].offset;
    ok = cur >= 0 && (uint64_t) cur <= want && fwrite (zeros, 1, want - (uint64_t) cur, f) == want - (uint64_t) cur
         && syn_write (f, &g_array_index (ts, SynTensor, i), buf, buf_size);
  }
  if (ok) {
    long cur = ftell (f);
    ok = cur >= 0 && fwrite (zeros, 1, h.file_size - (uint64_t) cur, f) == h.file_size - (uint64_t) cur;
  }
  if (f && fclose (f) != 0)
    ok = FALSE;
  if (!ok)
    g_set_error (error, LEV_ERROR, LEV_ERROR_IO, "cannot write %s: %s", path, g_strerror (errno));
  g_free (buf);
  g_free (dir);
  g_array_unref (ts);
  return ok;
}

/* ---------------------------------------------------------------- measurements */

/* Returns a field of /proc/self/status in bytes (VmHWM: peak RSS), 0 when unavailable. */
static uint64_t
status_bytes (const char *field)
{
  gchar *s = NULL;
  uint64_t v = 0;
  if (g_file_get_contents ("/proc/self/status", &s, NULL, NULL)) {
    const char *p = strstr (s, field);
    if (p)
      v = g_ascii_strtoull (p + strlen (field) + 1, NULL, 10) * 1024;
  }
  g_free (s);
  return v;
}

typedef struct {
  const uint64_t *p;
  size_t n;
  uint64_t sum;
} ReadJob;

/* Two 64-bit words as one vector (GCC vector extensions: SSE2 on any x86-64, NEON on AArch64). */
typedef uint64_t ReadVec __attribute__ ((vector_size (16)));

/* Sums the job's words with four vector accumulators a cache line: a read loop that the core's load units, not
 * its arithmetic, limit, so that it measures what memory delivers. */
static void *
read_worker (void *arg)
{
  ReadJob *j = arg;
  ReadVec a[4] = { { 0, 0 }, { 0, 0 }, { 0, 0 }, { 0, 0 } };
  for (size_t i = 0; i + 8 <= j->n; i += 8) {
    __builtin_prefetch (j->p + i + 512);      /* 4 KiB ahead, as the kernels prefetch */
    for (int k = 0; k < 4; k++) {
      ReadVec v;
      memcpy (&v, j->p + i + 2 * k, sizeof v);
      a[k] += v;
    }
  }
  ReadVec s = a[0] + a[1] + a[2] + a[3];
  j->sum = s[0] + s[1];
  return NULL;
}

/* Measures the memory read bandwidth (bytes/s, best of 5) with n_threads threads streaming 512 MiB. Runs in a
 * child process so that its buffer does not count in this process's peak RSS. */
static double
measure_bandwidth (uint32_t n_threads)
{
  int fds[2];
  if (pipe (fds) != 0)
    return 0;
  pid_t pid = fork ();
  if (pid == 0) {
    close (fds[0]);
    size_t bytes = (size_t) 512 << 20, words = bytes / 8;
    uint64_t *buf = mmap (NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    double best = 0;
    if (buf != MAP_FAILED) {
      for (size_t i = 0; i < words; i++)
        buf[i] = i;
      for (int rep = 0; rep < 5; rep++) {
        pthread_t th[64];
        ReadJob jobs[64];
        gint64 t0 = g_get_monotonic_time ();
        for (uint32_t t = 0; t < n_threads; t++) {
          jobs[t] = (ReadJob) { buf + words * t / n_threads, words / n_threads, 0 };
          pthread_create (&th[t], NULL, read_worker, &jobs[t]);
        }
        uint64_t sink = 0;
        for (uint32_t t = 0; t < n_threads; t++) {
          pthread_join (th[t], NULL);
          sink += jobs[t].sum;
        }
        double s = (g_get_monotonic_time () - t0) / 1e6;
        if (sink != 1)     /* keeps the sums alive */
          best = MAX (best, bytes / s);
      }
    }
    if (write (fds[1], &best, sizeof best) != sizeof best)
      _exit (1);
    _exit (0);
  }
  close (fds[1]);
  double bw = 0;
  if (pid < 0 || read (fds[0], &bw, sizeof bw) != sizeof bw)
    bw = 0;
  close (fds[0]);
  if (pid > 0)
    waitpid (pid, NULL, 0);
  return bw;
}

/* ---------------------------------------------------------------- main */

static gboolean
parse_enc (const char *s, uint32_t *enc)
{
  static const struct { const char *n; uint32_t e; } encs[] = {
    { "t2", LEV_ENC_T2 }, { "t1", LEV_ENC_T1 }, { "b1", LEV_ENC_B1 }, { "q4", LEV_ENC_Q4 }, { "q8", LEV_ENC_Q8 },
    { "f16", LEV_ENC_F16 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (encs); i++)
    if (strcmp (s, encs[i].n) == 0) {
      *enc = encs[i].e;
      return TRUE;
    }
  return FALSE;
}

static const char *
enc_name (uint32_t enc)
{
  const char *name = lev_encoding_name (enc);
  return name ? name : "?";
}


/* ---------------------------------------------------------------- kernel code rates */

/* Returns s as the characters of a JSON string (without the quotes): quote, backslash and control characters
 * escaped, UTF-8 kept; free with g_free. */
static gchar *
json_escape (const char *s)
{
  GString *out = g_string_new (NULL);
  for (const unsigned char *c = (const unsigned char *) s; *c; c++) {
    if (*c == '"' || *c == '\\')
      g_string_append_printf (out, "\\%c", *c);
    else if (*c < 0x20)
      g_string_append_printf (out, "\\u%04x", *c);
    else
      g_string_append_c (out, (gchar) *c);
  }
  return g_string_free (out, FALSE);
}

/* Returns the CPU's model name from /proc/cpuinfo (or "unknown CPU"); free with g_free. */
static gchar *
cpu_model_name (void)
{
  gchar *text = NULL;
  gchar *name = NULL;
  if (g_file_get_contents ("/proc/cpuinfo", &text, NULL, NULL)) {
    gchar **lines = g_strsplit (text, "\n", -1);
    for (guint i = 0; lines[i] && !name; i++)
      if (g_str_has_prefix (lines[i], "model name") || g_str_has_prefix (lines[i], "Model\t")) {
        const char *colon = strchr (lines[i], ':');
        if (colon)
          name = g_strstrip (g_strdup (colon + 1));
      }
    g_strfreev (lines);
    g_free (text);
  }
  return name ? name : g_strdup ("unknown CPU");
}

/* q8 rows (the generic C kernel of lev_kernels.c): GB/s over `bytes` of a 2048-wide matrix, one token. */
static double
q8_rate (size_t bytes)
{
  size_t cols = 2048, rows = MAX (bytes / cols, 16);
  int8_t *w = g_malloc (rows * cols), *x = g_malloc (cols);
  float *scales = g_new (float, rows), *y = g_new (float, rows);
  for (size_t i = 0; i < rows * cols; i++)
    w[i] = (int8_t) rnd64 ();
  for (size_t i = 0; i < cols; i++)
    x[i] = (int8_t) rnd64 ();
  for (size_t r = 0; r < rows; r++)
    scales[r] = 1.0f;
  double best = 0;
  for (int trial = 0; trial < 5; trial++) {
    int calls = 0;
    gint64 t0 = g_get_monotonic_time (), t1;
    do {
      lev_matvec_q8_i8 (w, scales, x, 1.0f, y, cols, 0, rows);
      calls++;
      t1 = g_get_monotonic_time ();
    } while (t1 - t0 < 20000);
    double rate = (double) rows * cols * calls / ((t1 - t0) / 1e6) / 1e9;
    best = MAX (best, rate);
  }
  g_free (w);
  g_free (x);
  g_free (scales);
  g_free (y);
  return best;
}

/* --kernel-rate: every implementation, encoding and scale layout on one cache-resident matrix, one thread. */
static int
kernel_rate (void)
{
  const LevQKernels *impls[1 + LEV_QMAX_SIMD_SETS] = { lev_qkernels_scalar () };
  lev_qkernels_simd_sets (impls + 1);
  static const struct { uint32_t enc, group; const char *scales; } cases[] = {
    { LEV_QENC_T2, 0, "row" }, { LEV_QENC_T2, 128, "group 128" }, { LEV_QENC_T2, 64, "group 64" },
    { LEV_QENC_T1, 0, "row" }, { LEV_QENC_T1, 160, "group 160" },
    { LEV_QENC_B1, 0, "row" }, { LEV_QENC_B1, 128, "group 128" }, { LEV_QENC_B1, 64, "group 64" },
    { LEV_QENC_Q4, 0, "row" },
  };
  size_t bytes = (size_t) MAX (opt_kernel_kib, 1) * 1024;
  gchar *cpu = cpu_model_name ();
  const char *choice = lev_qkernels_choice ();
  if (opt_json) {
    gchar *cpu_json = json_escape (cpu);
    g_print ("{\"cpu\": \"%s\", \"matrix_bytes\": %zu, \"chosen\": \"%s\"}\n", cpu_json, bytes, choice);
    g_free (cpu_json);
  } else {
    g_print ("levbench --kernel-rate: %s, one thread, a 2048-wide matrix of %zu KiB; GB/s of packed weights (a "
             "32-token tile counts its weights 32 times)\nchosen (one token/tiles): %s\n\n", cpu, bytes / 1024, choice);
    g_print ("| encoding | scales | implementation | 1 token GB/s | G weights/s | 32-token tile GB/s |\n"
             "|---|---|---|---|---|---|\n");
  }
  for (size_t c = 0; c < G_N_ELEMENTS (cases); c++)
    for (size_t i = 0; i < G_N_ELEMENTS (impls); i++) {
      if (!impls[i] || (i == 0 && bytes > (1u << 20)))   /* the scalar reference on a large matrix: minutes */
        continue;
      uint32_t enc = cases[c].enc;
      double r1 = lev_qkernel_rate (impls[i], enc, cases[c].group, 1, 2048, bytes, 0.02, 5);
      double r32 = lev_qkernel_rate (impls[i], enc, cases[c].group, 32, 2048, bytes, 0.02, 3);
      double wps = r1 * 8.0 * lev_qenc_block_weights (enc) / (8.0 * lev_qenc_block_bytes (enc));
      if (opt_json)
        g_print ("{\"encoding\": \"%s\", \"scales\": \"%s\", \"kernels\": \"%s\", \"decode_gb_per_s\": %.2f, "
                 "\"decode_gweights_per_s\": %.1f, \"tile32_gb_per_s\": %.2f}\n", lev_qenc_name (enc),
                 cases[c].scales, impls[i]->name, r1, wps, r32);
      else
        g_print ("| %s | %s | %s | %.1f | %.0f | %.1f |\n", lev_qenc_name (enc), cases[c].scales, impls[i]->name, r1,
                 wps, r32);
    }
  double q8 = q8_rate (bytes);
  if (opt_json)
    g_print ("{\"encoding\": \"q8\", \"scales\": \"row\", \"kernels\": \"generic C\", \"decode_gb_per_s\": %.2f, "
             "\"decode_gweights_per_s\": %.1f}\n", q8, q8);
  else
    g_print ("| q8 | row | generic C | %.1f | %.0f | - |\n", q8, q8);
  g_free (cpu);
  return 0;
}

/* --fork-join: the engine's thread pool running jobs whose chunks each do a fixed amount of arithmetic (about
 * 2 µs): the time a job takes beyond chunks * work / threads is what starting, claiming and joining cost. */
static void
busy_chunk (void *arg, uint32_t chunk, uint32_t slot)
{
  (void) chunk;
  (void) slot;
  volatile uint64_t x = 0;
  for (uint64_t i = 0, n = *(const uint64_t *) arg; i < n; i++)
    x = x + i;
}

static int
fork_join (uint32_t threads)
{
  LevThreadPool *pool = lev_threadpool_new (threads), *one = lev_threadpool_new (1);
  if (!pool || !one) {
    g_printerr ("levbench: cannot start %u threads\n", threads);
    return 1;
  }
  /* iterations for about 2 µs on this core */
  uint64_t iters = 1000;
  for (;;) {
    gint64 t0 = g_get_monotonic_time ();
    for (int k = 0; k < 1000; k++)
      busy_chunk (&iters, 0, 0);
    double us = (g_get_monotonic_time () - t0) / 1000.0;
    if (us > 1.5 || iters > (1u << 30))
      break;
    iters *= 2;
  }
  gchar *cpu = cpu_model_name ();
  static const uint32_t chunk_counts[] = { 2, 4, 8, 16, 32, 88 };
  if (!opt_json)
    g_print ("levbench --fork-join: %s, %u threads; one job of N chunks of about 2 µs of work each; overhead = job "
             "time - (one thread's time for the chunks) / threads (best of 5 runs of 5,000 jobs)\n\n"
             "| chunks | job µs, 1 thread | job µs, %u threads | overhead µs a job |\n|---|---|---|---|\n", cpu,
             threads, threads);
  for (size_t i = 0; i < G_N_ELEMENTS (chunk_counts); i++) {
    double best[2] = { 0, 0 };
    for (int rep = 0; rep < 5; rep++)
      for (int p = 0; p < 2; p++) {
        gint64 t0 = g_get_monotonic_time ();
        for (int k = 0; k < 5000; k++)
          lev_threadpool_run_chunks (p ? pool : one, busy_chunk, &iters, chunk_counts[i]);
        double us = (g_get_monotonic_time () - t0) / 5000.0;
        best[p] = rep == 0 ? us : MIN (best[p], us);
      }
    double overhead = best[1] - best[0] / threads;
    if (opt_json) {
      gchar *cpu_json = json_escape (cpu);
      g_print ("{\"cpu\": \"%s\", \"threads\": %u, \"chunks\": %u, \"us_one_thread\": %.3f, \"us\": %.3f, "
               "\"overhead_us\": %.3f}\n", cpu_json, threads, chunk_counts[i], best[0], best[1], overhead);
      g_free (cpu_json);
    } else
      g_print ("| %u | %.2f | %.2f | %.2f |\n", chunk_counts[i], best[0], best[1], overhead);
  }
  g_free (cpu);
  lev_threadpool_free (pool);
  lev_threadpool_free (one);
  return 0;
}

/* Prints a usage error on one line, pointing at --help, and returns the exit status for bad arguments (2). */
static int G_GNUC_PRINTF (1, 2)
usage_error (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  gchar *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_printerr ("levbench: %s (see levbench --help)\n", msg);
  g_free (msg);
  return 2;
}

/* One stream of --streams: its context, tokens and timings (monotonic microseconds). */
typedef struct {
  LevContext *ctx;
  const int32_t *toks;
  uint32_t prompt, decode;
  gboolean joins;             /* starts once stream 0 has decoded a quarter of its tokens */
  gint *progress;             /* stream 0's decoded tokens (atomic) */
  gint *go;                   /* the start signal (atomic) */
  gint64 t_start, t_first, t_end;
} BenchStream;

static gpointer
bench_stream (gpointer data)
{
  BenchStream *b = data;
  while (!g_atomic_int_get (b->go))
    g_usleep (100);
  if (b->joins)
    while (g_atomic_int_get (b->progress) < (gint) b->decode / 4)
      g_usleep (200);
  b->t_start = g_get_monotonic_time ();
  lev_context_eval_batch (b->ctx, b->toks, b->prompt, NULL);
  b->t_first = g_get_monotonic_time ();      /* the prompt's logits: the first token can be sampled */
  for (uint32_t i = 0; i < b->decode; i++) {
    lev_context_eval (b->ctx, b->toks[b->prompt + i], NULL);
    if (!b->joins)
      g_atomic_int_inc (b->progress);
  }
  b->t_end = g_get_monotonic_time ();
  lev_engine_context_idle (lev_context_engine (b->ctx), b->ctx);    /* as a finished generation says it */
  return NULL;
}

/* What one --streams measurement of N streams gave. */
typedef struct {
  double aggregate, min_rate, mean_rate, ttft_ms, join_ttft_ms, per_step;
} StreamsResult;

/* Runs n streams on the engine at the same time (the last one joining once the others decode); FALSE with an error
 * printed. */
static gboolean
measure_streams (LevEngine *engine, uint32_t n, const int32_t *toks, uint32_t prompt, uint32_t decode,
                 StreamsResult *res)
{
  GError *error = NULL;
  BenchStream *bs = g_new0 (BenchStream, n);
  GThread **th = g_new (GThread *, n);
  gint go = 0, progress = 0;
  LevContextParams cp = lev_context_default_params ();
  cp.n_ctx = (uint32_t) opt_ctx;
  for (uint32_t i = 0; i < n; i++) {
    bs[i] = (BenchStream) { lev_engine_context_new (engine, &cp, &error), toks, prompt, decode,
                            n > 1 && i == n - 1, &progress, &go, 0, 0, 0 };
    if (!bs[i].ctx) {
      g_printerr ("levbench: %s\n", error->message);
      g_error_free (error);
      for (uint32_t k = 0; k < i; k++)
        lev_context_free (bs[k].ctx);
      g_free (bs);
      g_free (th);
      return FALSE;
    }
  }
  LevEngineStats s0, s1;
  lev_engine_get_stats (engine, &s0);
  for (uint32_t i = 0; i < n; i++)
    th[i] = g_thread_new ("stream", bench_stream, &bs[i]);
  g_atomic_int_set (&go, 1);
  for (uint32_t i = 0; i < n; i++)
    g_thread_join (th[i]);
  lev_engine_get_stats (engine, &s1);
  gint64 first = G_MAXINT64, last = 0;
  double sum_rate = 0, ttft = 0;
  res->min_rate = G_MAXDOUBLE;
  for (uint32_t i = 0; i < n; i++) {
    double rate = decode / ((bs[i].t_end - bs[i].t_first) / 1e6);
    res->min_rate = MIN (res->min_rate, rate);
    sum_rate += rate;
    first = MIN (first, bs[i].t_first);
    last = MAX (last, bs[i].t_end);
    if (!bs[i].joins)
      ttft += (bs[i].t_first - bs[i].t_start) / 1e3;
    lev_context_free (bs[i].ctx);
  }
  res->aggregate = (double) n * decode / ((last - first) / 1e6);
  res->mean_rate = sum_rate / n;
  res->ttft_ms = ttft / (n > 1 ? n - 1 : 1);
  res->join_ttft_ms = n > 1 ? (bs[n - 1].t_first - bs[n - 1].t_start) / 1e3 : 0;
  res->per_step = (double) (s1.rows - s0.rows) / (double) MAX (s1.steps - s0.steps, 1u);
  g_free (bs);
  g_free (th);
  return TRUE;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

/* Returns the median of n values (sorted in place). */
static double
median (double *v, int n)
{
  qsort (v, (size_t) n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Returns the median over reps rounds (rows stride apart from row) of the double at offset; v holds reps values. */
static double
field_median (const StreamsResult *row, int reps, guint stride, size_t offset, double *v)
{
  for (int r = 0; r < reps; r++)
    v[r] = *(const double *) (const void *) ((const char *) &row[(size_t) r * stride] + offset);
  return median (v, reps);
}

/* --streams: --reps rounds of: one stream on a context of its own threads (the path of every front end before
 * engines were shared), then for each count that many streams on one engine at the same time; the medians over the
 * rounds, ratios taken within each round (a loaded machine slows whole rounds). */
static int
run_streams (LevModel *model, LevContext *own_ctx, uint32_t threads, const int32_t *toks, const char *model_name)
{
  uint32_t prompt = (uint32_t) opt_stream_prompt, decode = (uint32_t) opt_stream_tokens;
  if (opt_stream_prompt < 1 || opt_stream_tokens < 4 || prompt + decode > (uint32_t) opt_ctx) {
    g_printerr ("levbench: --stream-prompt (>= 1) plus --stream-tokens (>= 4) must fit --ctx\n");
    return 2;
  }
  gchar **counts = g_strsplit (opt_streams, ",", -1);
  guint n_counts = g_strv_length (counts);
  uint32_t *ns = g_new0 (uint32_t, n_counts + 1);
  for (guint k = 0; k < n_counts; k++) {
    guint64 n64 = g_ascii_strtoull (counts[k], NULL, 10);
    if (n64 < 1 || n64 > LEV_PREFILL_BLOCK) {
      g_printerr ("levbench: bad stream count %s (1..%u)\n", counts[k], LEV_PREFILL_BLOCK);
      g_strfreev (counts);
      g_free (ns);
      return 2;
    }
    ns[k] = (uint32_t) n64;
  }
  g_strfreev (counts);
  GError *error = NULL;
  LevEngine *engine = lev_engine_new (model, threads, LEV_ACT_QUANT_AUTO, &error);
  if (!engine) {
    g_printerr ("levbench: %s\n", error->message);
    g_error_free (error);
    g_free (ns);
    return 1;
  }
  int reps = MAX (opt_reps, 1);
  /* per round: own rate, and per count the figures and the ratios to the round's first count */
  double *own = g_new0 (double, reps);
  StreamsResult *res = g_new0 (StreamsResult, (size_t) reps * n_counts);
  int rc = 0;
  for (int r = 0; r < reps && rc == 0; r++) {
    lev_context_reset (own_ctx);
    lev_context_eval_batch (own_ctx, toks, prompt, NULL);
    gint64 t0 = g_get_monotonic_time ();
    for (uint32_t i = 0; i < decode; i++)
      lev_context_eval (own_ctx, toks[prompt + i], NULL);
    own[r] = decode / ((g_get_monotonic_time () - t0) / 1e6);
    for (guint k = 0; k < n_counts && rc == 0; k++)
      if (!measure_streams (engine, ns[k], toks, prompt, decode, &res[(size_t) r * n_counts + k]))
        rc = 1;
  }
  if (rc == 0) {
    double *v = g_new (double, reps), *w = g_new (double, reps);
    for (int r = 0; r < reps; r++)
      v[r] = res[(size_t) r * n_counts].aggregate / own[r];
    double first_vs_own = median (v, reps), own_med = median (own, reps);
    if (!opt_json) {
      g_print ("levbench --streams: %s, %u threads, prompt %u + %u decoded tokens per stream, medians of %d "
               "rounds; one stream on a context of its own threads: %.1f tokens/s, %u stream%s on the engine: "
               "%.1f%% of that\n", model_name, threads, prompt, decode, reps, own_med, ns[0], ns[0] > 1 ? "s" : "",
               100.0 * first_vs_own);
      g_print ("| streams | aggregate tokens/s | x first row | per-stream tokens/s min / mean | per-stream mean vs "
               "first row | TTFT ms, starting together | TTFT ms, joining under load | tokens per step |\n"
               "|---|---|---|---|---|---|---|---|\n");
    }
    for (guint k = 0; k < n_counts; k++) {
      StreamsResult m;
      /* the medians of each figure, and of the ratios to the first count within each round */
      const StreamsResult *row = res + k;
      m.aggregate = field_median (row, reps, n_counts, offsetof (StreamsResult, aggregate), v);
      m.min_rate = field_median (row, reps, n_counts, offsetof (StreamsResult, min_rate), v);
      m.mean_rate = field_median (row, reps, n_counts, offsetof (StreamsResult, mean_rate), v);
      m.ttft_ms = field_median (row, reps, n_counts, offsetof (StreamsResult, ttft_ms), v);
      m.join_ttft_ms = field_median (row, reps, n_counts, offsetof (StreamsResult, join_ttft_ms), v);
      m.per_step = field_median (row, reps, n_counts, offsetof (StreamsResult, per_step), v);
      for (int r = 0; r < reps; r++) {
        v[r] = res[(size_t) r * n_counts + k].aggregate / res[(size_t) r * n_counts].aggregate;
        w[r] = res[(size_t) r * n_counts + k].mean_rate / res[(size_t) r * n_counts].aggregate;
      }
      double x_agg = median (v, reps), x_each = median (w, reps);
      if (opt_json) {
        gchar *name = json_escape (model_name);
        g_print ("{\"model\": \"%s\", \"test\": \"streams\", \"streams\": %u, \"threads\": %u, \"prompt\": %u, "
                 "\"decode\": %u, \"rounds\": %d, \"own_context_tokens_per_s\": %.2f, \"aggregate_tokens_per_s\": "
                 "%.2f, \"aggregate_vs_first\": %.3f, \"per_stream_min\": %.2f, \"per_stream_mean\": %.2f, "
                 "\"per_stream_vs_first\": %.3f, \"ttft_ms\": %.2f, \"ttft_join_ms\": %.2f, \"tokens_per_step\": "
                 "%.2f}\n", name, ns[k], threads, prompt, decode, reps, own_med, m.aggregate, x_agg, m.min_rate,
                 m.mean_rate, x_each, m.ttft_ms, m.join_ttft_ms, m.per_step);
        g_free (name);
      } else {
        gchar *join = ns[k] > 1 ? g_strdup_printf ("%.1f", m.join_ttft_ms) : g_strdup ("-");
        g_print ("| %u | %.1f | %.2f | %.1f / %.1f | %.0f%% | %.1f | %s | %.2f |\n", ns[k], m.aggregate, x_agg,
                 m.min_rate, m.mean_rate, 100.0 * x_each, m.ttft_ms, join, m.per_step);
        g_free (join);
      }
    }
    g_free (v);
    g_free (w);
  }
  g_free (own);
  g_free (res);
  g_free (ns);
  lev_engine_unref (engine);
  return rc;
}

int
main (int argc, char **argv)
{
  setlocale (LC_ALL, "");
  GOptionContext *octx = g_option_context_new ("- measure prompt and decode throughput");
  g_option_context_add_main_entries (octx, entries, NULL);
  GError *error = NULL;
  if (!g_option_context_parse (octx, &argc, &argv, &error)) {
    g_option_context_free (octx);
    int rc = usage_error ("%s", error->message);
    g_error_free (error);
    return rc;
  }
  g_option_context_free (octx);
  if (opt_threads < 0 || opt_threads > (gint) LEV_MAX_THREADS)
    return usage_error ("--threads must be between 0 (all CPUs) and %u", LEV_MAX_THREADS);
  if (opt_kernel_choice) {
    g_print ("%s\n", lev_qkernels_choice ());
    return 0;
  }
  if (opt_kernel_rate)
    return kernel_rate ();
  if (opt_fork_join)
    return fork_join (opt_threads > 0 ? (uint32_t) opt_threads : (uint32_t) MAX (g_get_num_processors (), 1));
  if (!opt_model == !opt_synthetic)
    return usage_error ("give either -m MODEL or --synthetic SHAPE");
  if (opt_convert_format && !lev_source_format_valid (opt_convert_format))
    return usage_error ("unknown --convert-format %s (auto, f32, f16, bf16, q8, q4, t2, t1, b1)", opt_convert_format);
  uint32_t enc = LEV_ENC_T2, embd_enc = LEV_ENC_Q4;
  if ((opt_format && !parse_enc (opt_format, &enc)) || (opt_embd_format && !parse_enc (opt_embd_format, &embd_enc)))
    return usage_error ("unknown --format or --embd-format");
  if ((opt_group_scales != 0 && opt_group_scales != 64 && opt_group_scales != 128)
      || (opt_group_scales == 64 && !lev_qenc_groups_per_row (enc, 1, 64)))
    return usage_error ("--group-scales takes 128, or 64 with --format t2 or b1");
  LevHParams shape;
  gchar *path = NULL;
  const char *model_name;
  if (opt_synthetic) {
    if (!shape_by_name (opt_synthetic, &shape))
      return usage_error ("unknown shape %s (tinyllama-1.1b, qwen2.5-0.5b, bitnet-2b4t)", opt_synthetic);
    if (opt_rotate) {
      shape.flags |= LEV_HP_ROTATED;
      shape.rotated_inputs = (1u << LEV_N_LINEAR_INPUTS) - 1;
      shape.rotation_seed = 1;
    }
    int fd = g_file_open_tmp ("levbench-XXXXXX.leviathan", &path, &error);
    if (fd < 0 || (close (fd), !write_synthetic (path, &shape, enc, embd_enc, &error))) {
      g_printerr ("levbench: %s\n", error->message);
      return 1;
    }
    model_name = opt_synthetic;
  } else {
    LevSourceOptions so = { 0 };
    so.progress = lev_source_terminal_progress;
    so.progress_data = (gpointer) "levbench";
    so.format = opt_convert_format;
    if (!(path = lev_source_resolve (opt_model, &so, &error))) {
      g_printerr ("levbench: %s\n", error->message);
      g_error_free (error);
      return 1;
    }
    model_name = opt_model;
  }
  LevModelParams mp = { 0 };
  mp.flags = (opt_no_mmap ? LEV_MODEL_NO_MMAP : 0u) | (opt_check_tensors ? LEV_MODEL_CHECK_TENSORS : 0u);
  mp.adapter_path = opt_adapter;
  LevModel *model = lev_model_load_full (path, &mp, &error);
  if (opt_synthetic)
    g_unlink (path);           /* the mapping keeps it alive */
  if (!model) {
    g_printerr ("levbench: %s\n", error->message);
    g_error_free (error);
    g_free (path);
    return 1;
  }
  const char *format = enc_name (model->layers[0].w_up.encoding);
  const char *embd_format = enc_name (model->output.encoding);
  LevContextParams cp = lev_context_default_params ();
  cp.n_ctx = (uint32_t) opt_ctx;
  cp.n_threads = (uint32_t) opt_threads;
  LevKvType kv = LEV_KV_F32;
  if (opt_kv && strcmp (opt_kv, "f16") == 0)
    kv = LEV_KV_F16;
  else if (opt_kv && strcmp (opt_kv, "q8") == 0)
    kv = LEV_KV_Q8;
  else if (opt_kv && strcmp (opt_kv, "f32") != 0)
    return usage_error ("unknown --kv %s (f32, f16, q8)", opt_kv);
  const char *kv_name = kv == LEV_KV_F16 ? "f16" : kv == LEV_KV_Q8 ? "q8" : "f32";
  LevContext *ctx = lev_context_new_kv (model, &cp, kv, &error);
  if (!ctx) {
    g_printerr ("levbench: %s\n", error->message);
    return 1;
  }
  LevMemoryEstimate est;                  /* what levrun --memory and the element's memory-limit compare */
  lev_context_memory_estimate (model, &cp, kv, &est);
  uint32_t threads = opt_threads > 0 ? (uint32_t) opt_threads : g_get_num_processors ();
  double bw = opt_no_bandwidth || opt_streams ? 0 : measure_bandwidth (threads);
  uint64_t weight_bytes = lev_model_bytes_per_token (model);
  gchar **tests = g_strsplit (opt_tests ? opt_tests : "pp128,pp512,tg128", ",", -1);
  int32_t *toks = g_new (int32_t, MAX ((uint32_t) opt_ctx, 512u) + 1);
  for (int i = 0; i <= MAX (opt_ctx, 512); i++)
    toks[i] = (int32_t) (rnd64 () % lev_model_vocab_size (model));
  if (opt_streams) {
    lev_context_eval_batch (ctx, toks, 8, NULL);   /* warm-up: fault the weights in */
    int src = run_streams (model, ctx, threads, toks, model_name);
    g_strfreev (tests);
    g_free (toks);
    lev_context_free (ctx);
    lev_model_free (model);
    g_free (path);
    return src;
  }
  if (!opt_json) {
    g_print ("levbench: %s, body %s, head %s, KV %s, kernels (one token/tiles) %s, %u threads, ctx %d; memory read "
             "bandwidth %.1f GB/s; memory estimate %.1f MiB\n", model_name, format, embd_format, kv_name, lev_kernels_name (),
             threads, opt_ctx, bw / 1e9, est.total / 1048576.0);
    g_print ("| test | tokens/s | ± | bytes/token | share of bandwidth | peak RSS MiB |\n|---|---|---|---|---|---|\n");
  }
  /* warm-up: fault the weights in */
  lev_context_eval_batch (ctx, toks, 8, NULL);
  int rc = 0;
  for (guint k = 0; tests[k]; k++) {
    const char *t = tests[k];
    gboolean pp = g_str_has_prefix (t, "pp"), fill = strcmp (t, "fill") == 0;
    uint32_t n = fill ? (uint32_t) opt_ctx : (uint32_t) g_ascii_strtoull (t + 2, NULL, 10);
    if ((!pp && !fill && !g_str_has_prefix (t, "tg")) || n == 0 || n > (uint32_t) opt_ctx) {
      g_printerr ("levbench: bad test %s (ppN or tgN with N <= ctx, or fill)\n", t);
      rc = 2;
      break;
    }
    int reps = fill ? 1 : MAX (opt_reps, 1);
    double sum = 0, sum2 = 0;
    for (int r = 0; r < reps; r++) {
      lev_context_reset (ctx);
      gint64 t0 = g_get_monotonic_time ();
      if (pp) {
        lev_context_eval_batch (ctx, toks, n, NULL);
      } else {
        for (uint32_t i = 0; i < n; i++)
          lev_context_eval (ctx, toks[i], NULL);
      }
      double tps = n / ((g_get_monotonic_time () - t0) / 1e6);
      sum += tps;
      sum2 += tps * tps;
    }
    double mean = sum / reps, sd = reps > 1 ? sqrt (MAX (0.0, (sum2 - sum * sum / reps) / (reps - 1))) : 0;
    /* decode reads the weights once per token plus the cache at its average length */
    uint64_t bpt = pp ? weight_bytes
                      : weight_bytes + (uint64_t) (lev_context_kv_bytes_per_token (ctx) * ((n - 1) / 2.0));
    double share = bw > 0 && !pp ? mean * bpt / bw : 0;
    uint64_t rss = status_bytes ("VmHWM:");
    if (opt_json) {
      gchar *name = json_escape (model_name);
      g_print ("{\"model\": \"%s\", \"format\": \"%s\", \"embd_format\": \"%s\", \"group_scales\": %d, "
               "\"test\": \"%s\", \"threads\": %u, \"ctx\": %d, \"kv\": \"%s\", \"kernels\": \"%s\", \"tokens_per_s\": %.2f, \"stddev\": %.2f, \"peak_rss_bytes\": %"
               G_GUINT64_FORMAT ", \"bytes_per_token\": %" G_GUINT64_FORMAT ", \"bandwidth_bytes_per_s\": %.0f, "
               "\"bandwidth_share\": %.3f, \"memory_estimate_bytes\": %" G_GUINT64_FORMAT "}\n", name, format,
               embd_format, opt_synthetic ? opt_group_scales : 0, t, threads, opt_ctx, kv_name,
               lev_kernels_name (), mean, sd, rss, bpt, bw, share, est.total);
      g_free (name);
    } else if (pp) {          /* prefill is compute-bound: no bandwidth share */
      g_print ("| %s | %.1f | %.1f | %.1f MB | - | %.1f |\n", t, mean, sd, bpt / 1e6, rss / 1048576.0);
    } else {
      g_print ("| %s | %.1f | %.1f | %.1f MB | %.0f%% | %.1f |\n", t, mean, sd, bpt / 1e6, share * 100,
               rss / 1048576.0);
    }
  }
  g_strfreev (tests);
  g_free (toks);
  lev_context_free (ctx);
  lev_model_free (model);
  g_free (path);
  g_free (opt_kv);
  return rc;
}
