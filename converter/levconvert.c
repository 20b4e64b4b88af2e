/* levconvert.c: command-line converter from Hugging Face / llama2.c / bitllama2.c checkpoints to .leviathan. */
#include "lev_convert.h"
#include "lev_import_gguf.h"
#include "lev_version.h"

#include <glib/gstdio.h>

#include <fcntl.h>
#include <limits.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static gchar *opt_output = NULL;
static gchar *opt_format = NULL;
static gchar *opt_embd_format = NULL;
static gchar *opt_tokenizer = NULL;
static gchar *opt_name = NULL;
static gboolean opt_vocab_only = FALSE;
static gboolean opt_quiet = FALSE;
static gchar *opt_compensate = NULL;
static gchar *opt_calib = NULL;
static gint opt_calib_tokens = 4096;
static gint opt_calib_ctx = 256;
static gboolean opt_calib_lines = FALSE;
static gboolean opt_calib_builtin = FALSE;
static gint64 opt_calib_seed = 1;
static gchar *opt_outliers = NULL;
static gint opt_rank = 4;
static gchar *opt_scale = NULL;
static gchar *opt_scale_fit = NULL;
static gint opt_ef_passes = 1;
static gchar *opt_adapter_out = NULL;
static gint opt_threads = 0;
static gchar *opt_rotate = NULL;
static gint64 opt_rotate_seed = 1;

/* Prints the program's name and version (--version) and exits. */
static gboolean
print_version (const gchar *name, const gchar *value, gpointer data, GError **error)
{
  printf ("levconvert (Leviathan) %s\n", LEV_PROJECT_VERSION);
  exit (0);
}

static GOptionEntry entries[] = {
  { "output", 'o', 0, G_OPTION_ARG_FILENAME, &opt_output, "Write the model to FILE (required)", "FILE" },
  { "format", 'f', 0, G_OPTION_ARG_STRING, &opt_format,
    "Encoding of matrices: auto (keep the source's f32/f16/bf16), f32, f16, bf16, q8 (int8 per row), q4 (4-bit "
    "per row), or packed t2 (ternary 2 bits), t1 (ternary 1.6 bits), b1 (binary 1 bit) for the blocks' matrices: "
    "float weights are quantized per row (see --scale-fit and --compensate), ternary weights convert losslessly to "
    "t2/t1", "FMT" },
  { "embd-format", 0, 0, G_OPTION_ARG_STRING, &opt_embd_format,
    "Encoding of token_embd and output: auto (default: the source's precision with t2/t1/b1, else as --format), "
    "f32, f16, bf16, q8, q4", "FMT" },
  { "tokenizer", 't', 0, G_OPTION_ARG_FILENAME, &opt_tokenizer,
    "Tokenizer to embed: tokenizer.model (SentencePiece), tokenizer.json (Hugging Face) or llama2.c tokenizer.bin; "
    "overrides the checkpoint's",
    "FILE" },
  { "vocab-only", 0, 0, G_OPTION_ARG_NONE, &opt_vocab_only,
    "Write a tokenizer-only file; SRC is a tokenizer file or a directory holding one", NULL },
  { "name", 0, 0, G_OPTION_ARG_STRING, &opt_name, "Model name stored in the file (default: SRC's basename)",
    "NAME" },
  { "quiet", 'q', 0, G_OPTION_ARG_NONE, &opt_quiet, "Print nothing but errors", NULL },
  { "version", 0, G_OPTION_FLAG_NO_ARG, G_OPTION_ARG_CALLBACK, (gpointer) print_version, "Print the version and exit",
    NULL },
  { NULL }
};

static GOptionEntry quant_entries[] = {
  { "compensate", 0, 0, G_OPTION_ARG_STRING, &opt_compensate,
    "Error compensation when quantizing float matrices to t2/t1/b1: none (default), ef (error feedback with the "
    "inverse Hessian of the inputs, GPTQ), ef+outliers (and sparse f16 outliers), ef+outliers+lowrank (and int8 "
    "low-rank adapters of the residual)", "MODE" },
  { "calib", 0, 0, G_OPTION_ARG_FILENAME, &opt_calib,
    "UTF-8 calibration text run through the float model (default: --calib-tokens tokens sampled from the float "
    "model itself, from BOS with temperature 1)", "FILE" },
  { "calib-builtin", 0, 0, G_OPTION_ARG_NONE, &opt_calib_builtin, "Without --calib, calibrate on the built-in text of "
    "about 330 English words instead of sampled text (the default before data-free calibration)", NULL },
  { "calib-seed", 0, 0, G_OPTION_ARG_INT64, &opt_calib_seed, "Seed of the sampled calibration text (default 1)",
    "N" },
  { "calib-tokens", 0, 0, G_OPTION_ARG_INT, &opt_calib_tokens, "Calibration tokens at most (default 4096)", "N" },
  { "calib-ctx", 0, 0, G_OPTION_ARG_INT, &opt_calib_ctx, "Tokens per calibration window (default 256)", "N" },
  { "calib-lines", 0, 0, G_OPTION_ARG_NONE, &opt_calib_lines, "Each line of the calibration text is a text of its "
    "own followed by EOS (for models trained that way, as levppl --lines scores them)", NULL },
  { "outliers", 0, 0, G_OPTION_ARG_STRING, &opt_outliers,
    "Share of each matrix's weights kept in f16 as outliers, picked by rounding error times input energy "
    "(default 0.5%)", "P%" },
  { "ef-passes", 0, 0, G_OPTION_ARG_INT, &opt_ef_passes,
    "Error-feedback sweeps, each starting from the scales the one before refitted to its codes; the sweep with the "
    "lowest calibration loss is kept (default 1, 1..16)", "N" },
  { "rank", 0, 0, G_OPTION_ARG_INT, &opt_rank, "Rank of the low-rank adapters (default 4, 1..256)", "R" },
  { "scale", 0, 0, G_OPTION_ARG_STRING, &opt_scale, "Scale granularity of float matrices: row (default), tensor, "
    "group (one per block of a row: 128 weights for t2 and b1, 160 for t1) or group64 (one per 64 weights; t2, b1)",
    "GRAN" },
  { "scale-fit", 0, 0, G_OPTION_ARG_STRING, &opt_scale_fit,
    "How scales of float matrices are chosen: lsq (least squares, default) or absmean (mean |w|, BitNet b1.58's "
    "rule); the same for b1", "FIT" },
  { "adapter-out", 0, 0, G_OPTION_ARG_FILENAME, &opt_adapter_out,
    "Write the low-rank adapters to this adapter file instead of the model (mount with levrun --adapter)", "FILE" },
  { "threads", 0, 0, G_OPTION_ARG_INT, &opt_threads, "Threads of the calibration run (default: all CPUs)", "N" },
  { "rotate", 0, 0, G_OPTION_ARG_STRING, &opt_rotate, "Incoherence processing of float matrices: none (default) or "
    "hadamard (each linear input multiplied by a randomized Hadamard transform, the weights by its transpose, before "
    "quantization and calibration; the engine applies it to the activations; any format)", "KIND" },
  { "rotate-seed", 0, 0, G_OPTION_ARG_INT64, &opt_rotate_seed, "Seed of the rotation's random signs (default 1)",
    "N" },
  { NULL }
};

/* Reads a tokenizer file: a GGUF's tokenizer.ggml.* metadata, else what lev_import_vocab reads. */
static LevConvVocab *
import_vocab_file (const gchar *path, GError **error)
{
  return lev_gguf_probe (path) ? lev_import_gguf_vocab (path, error) : lev_import_vocab (path, error);
}

/* Returns the index of s (case-insensitive) among n names, or -1; the names are listed in enum order. */
static gint
parse_choice (const char *s, const char *const *names, guint n)
{
  for (guint i = 0; i < n; i++)
    if (g_ascii_strcasecmp (s, names[i]) == 0)
      return (gint) i;
  return -1;
}

/* Parses "0.5%" (a percentage) or "0.005" (a fraction) into a fraction in [0, 0.5]; FALSE when malformed. */
static gboolean
parse_share (const char *s, double *out)
{
  char *end = NULL;
  double v = g_ascii_strtod (s, &end);
  if (end == s)
    return FALSE;
  if (*end == '%') {
    v /= 100.0;
    end++;
  }
  if (*end != '\0' || !(v >= 0.0 && v <= 0.5))
    return FALSE;
  *out = v;
  return TRUE;
}

/* Draws the converter's progress as a bar on stderr, which levconvert installs only when stderr is a terminal and
 * not -q; user_data non-NULL leaves out the quantizing step (the compensated quantizer prints its own lines). */
static void
draw_progress (const char *stage, guint64 done, guint64 total, gpointer user_data)
{
  static gchar *last_stage;
  static int last_pct = -1;
  if (user_data && strcmp (stage, "quantizing") == 0)
    return;
  int pct = total ? (int) MIN (done * 100 / total, 100u) : 100;
  gboolean same_stage = last_stage && strcmp (stage, last_stage) == 0;
  if (same_stage && pct == last_pct)
    return;
  if (!same_stage) {
    if (last_stage && last_pct < 100)
      g_printerr ("\n");
    g_free (last_stage);
    last_stage = g_strdup (stage);
  }
  last_pct = pct;
  char bar[41];
  int fill = pct * 40 / 100;
  memset (bar, '#', (size_t) fill);
  memset (bar + fill, '.', (size_t) (40 - fill));
  bar[40] = '\0';
  g_printerr ("\rlevconvert: %-10s [%s] %3d%%%s", stage, bar, pct, pct == 100 ? "\n" : "");
}

/* Prints msg on one line, pointing at --help, frees the option context and returns the exit code for bad arguments
 * (2). */
static int
usage_error (GOptionContext *octx, const char *msg)
{
  g_printerr ("levconvert: %s (see levconvert --help)\n", msg);
  g_option_context_free (octx);
  return 2;
}

static gboolean
parse_format (const char *s, LevOutFormat *out)
{
  static const struct { const char *name; LevOutFormat f; } fmts[] = {
    { "auto", LEV_OUT_AUTO }, { "f32", LEV_OUT_F32 }, { "f16", LEV_OUT_F16 }, { "bf16", LEV_OUT_BF16 },
    { "q8", LEV_OUT_Q8 }, { "t2", LEV_OUT_T2 }, { "t1", LEV_OUT_T1 }, { "b1", LEV_OUT_B1 }, { "q4", LEV_OUT_Q4 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (fmts); i++)
    if (g_ascii_strcasecmp (s, fmts[i].name) == 0) {
      *out = fmts[i].f;
      return TRUE;
    }
  return FALSE;
}

/* The writer's temporary file is OUT.XXXXXX (lev_write_model); on SIGINT, SIGTERM or SIGHUP during the write the
 * handler removes the one this process holds open, found through /proc/self/fd with async-signal-safe calls only,
 * then dies of the signal as it would have. */
static char tmp_prefix[PATH_MAX];   /* the output's canonical path followed by "." */
static size_t tmp_prefix_len;
/* the signals whose default action ends the process without a core dump or with one (SIGQUIT); SIGPIPE and SIGXFSZ
 * are ignored instead, so that a write to a closed pipe or past `ulimit -f` fails with EPIPE/EFBIG and the writer
 * removes its temporary file on the error path */
static const int cleanup_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM,
                                       SIGPROF, SIGXCPU };
static const int ignored_signals[] = { SIGPIPE, SIGXFSZ };

/* Removes this process's open OUT.XXXXXX file, then re-raises the signal with its default action. */
static void
remove_tmp_and_die (int sig)
{
  int dfd = open ("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0 && tmp_prefix_len > 0) {
    char buf[4096];
    long n;
    while ((n = syscall (SYS_getdents64, dfd, buf, sizeof buf)) > 0) {
      for (long off = 0; off < n;) {
        struct { unsigned long long ino; long long off; unsigned short reclen; unsigned char type; char name[]; } *e =
          (void *) (buf + off);
        char target[PATH_MAX];
        ssize_t l = readlinkat (dfd, e->name, target, sizeof target - 1);
        if (l == (ssize_t) tmp_prefix_len + 6 && memcmp (target, tmp_prefix, tmp_prefix_len) == 0) {
          target[l] = '\0';
          unlink (target);
        }
        off += e->reclen;
      }
    }
  }
  if (dfd >= 0)
    close (dfd);
  signal (sig, SIG_DFL);
  raise (sig);
}

/* Installs (or, with install FALSE, removes) the handler that cleans up after a signal during the write. */
static void
cleanup_on_signals (const char *output, gboolean install)
{
  if (install) {
    gchar *dir = g_path_get_dirname (output), *base = g_path_get_basename (output);
    char real[PATH_MAX];
    if (realpath (dir, real) != NULL)
      tmp_prefix_len = (size_t) g_snprintf (tmp_prefix, sizeof tmp_prefix, "%s/%s.", strcmp (real, "/") ? real : "",
                                            base);
    if (tmp_prefix_len >= sizeof tmp_prefix)
      tmp_prefix_len = 0;
    g_free (dir);
    g_free (base);
  }
  struct sigaction sa = { 0 };
  sa.sa_handler = install ? remove_tmp_and_die : SIG_DFL;
  sigemptyset (&sa.sa_mask);
  for (guint i = 0; i < G_N_ELEMENTS (cleanup_signals); i++)
    sigaddset (&sa.sa_mask, cleanup_signals[i]);
  for (guint i = 0; i < G_N_ELEMENTS (cleanup_signals); i++)
    sigaction (cleanup_signals[i], &sa, NULL);
  sa.sa_handler = install ? SIG_IGN : SIG_DFL;
  for (guint i = 0; i < G_N_ELEMENTS (ignored_signals); i++)
    sigaction (ignored_signals[i], &sa, NULL);
}

/* TRUE when path names a file that is the same file (device and inode) as st. */
static gboolean
same_file (const char *path, const struct stat *st)
{
  struct stat in;
  return path && g_stat (path, &in) == 0 && in.st_dev == st->st_dev && in.st_ino == st->st_ino;
}

/* Refuses an input (SRC, --tokenizer, --calib) that exists but is neither a regular file nor a directory (SRC only):
 * a FIFO would block the reader forever, a device would be read without end. */
static gboolean
check_input (const char *path, const char *what, gboolean dir_ok, GError **error)
{
  struct stat st;
  if (!path || g_stat (path, &st) != 0)
    return TRUE;                /* a missing file gets the reader's own message */
  if (S_ISREG (st.st_mode) || (dir_ok && S_ISDIR (st.st_mode)))
    return TRUE;
  g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO, "%s %s is not a regular file%s", what, path,
               S_ISDIR (st.st_mode) ? " (a directory)" : S_ISFIFO (st.st_mode) ? " (a FIFO)" :
               S_ISCHR (st.st_mode) || S_ISBLK (st.st_mode) ? " (a device)" : "");
  return FALSE;
}

/* Refuses an output path (-o or --adapter-out) that exists and is not a regular file (a device node, FIFO, socket or
 * directory, or a symlink to one: the rename that puts the result in place would replace it), or that is one of the
 * inputs (SRC or a file directly inside the SRC directory, --tokenizer, --calib, the other output): the conversion
 * would destroy what it reads. */
static gboolean
check_output (const char *out, const char *src, const char *const *others, guint n_others, GError **error)
{
  struct stat st;
  if (g_stat (out, &st) != 0)
    return TRUE;                /* a new file (or a dangling symlink, which the rename replaces) */
  if (!S_ISREG (st.st_mode)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO,
                 "will not write %s: it exists and is not a regular file%s", out,
                 S_ISDIR (st.st_mode) ? " (a directory)" : S_ISFIFO (st.st_mode) ? " (a FIFO)" :
                 S_ISCHR (st.st_mode) || S_ISBLK (st.st_mode) ? " (a device)" : "");
    return FALSE;
  }
  gboolean clash = same_file (src, &st);
  for (guint i = 0; i < n_others && !clash; i++)
    clash = same_file (others[i], &st);
  GDir *dir = !clash && g_file_test (src, G_FILE_TEST_IS_DIR) ? g_dir_open (src, 0, NULL) : NULL;
  for (const gchar *name; dir && !clash && (name = g_dir_read_name (dir)) != NULL;) {
    gchar *p = g_build_filename (src, name, NULL);
    clash = same_file (p, &st);
    g_free (p);
  }
  if (dir)
    g_dir_close (dir);
  if (clash) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO,
                 "will not write %s: it is one of the input files (the conversion would destroy it)", out);
    return FALSE;
  }
  return TRUE;
}

int
main (int argc, char **argv)
{
  setlocale (LC_ALL, "");
  GOptionContext *octx = g_option_context_new ("SRC - convert a checkpoint to a .leviathan model");
  g_option_context_set_summary (octx,
    "SRC is a Hugging Face model directory (config.json + model.safetensors or shards, tokenizer.model or\n"
    "tokenizer.json),\n"
    "a llama2.c checkpoint (.bin; give --tokenizer), a bitllama2.c ternary checkpoint (\"ak42\"),\n"
    "or a GGUF file (llama / qwen2 / bitnet / bitnet-b1.58; F32, F16, BF16, Q8_0, Q4_0, TQ1_0, TQ2_0, I2_S;\n"
    "see docs/models.md).");
  g_option_context_add_main_entries (octx, entries, NULL);
  g_option_context_add_main_entries (octx, quant_entries, NULL);
  GError *error = NULL;
  if (!g_option_context_parse (octx, &argc, &argv, &error)) {
    int rc = usage_error (octx, error->message);
    g_error_free (error);
    return rc;
  }
  if (argc != 2)
    return usage_error (octx, argc < 2 ? "missing SRC" : "too many arguments");
  if (!opt_output)
    return usage_error (octx, "missing -o OUT.leviathan");
  LevOutFormat format = LEV_OUT_AUTO;
  if (opt_format && !parse_format (opt_format, &format))
    return usage_error (octx, "unknown --format (expected auto, f32, f16, bf16, q8, q4, t2, t1 or b1)");
  LevOutFormat embd_format = LEV_OUT_AUTO;
  if (opt_embd_format && (!parse_format (opt_embd_format, &embd_format) || embd_format == LEV_OUT_T2
                          || embd_format == LEV_OUT_T1 || embd_format == LEV_OUT_B1))
    return usage_error (octx, "unknown --embd-format (expected auto, f32, f16, bf16, q8 or q4)");
  LevQuantOptions qopt = lev_quant_default_options (format);
  qopt.fit = LEV_FIT_LSQ;      /* better than absmean on both float models measured (docs/quality.md) */
  /* in the order of LevCompensate, LevScaleMode and LevScaleFit */
  static const char *const comp_names[] = { "none", "ef", "ef+outliers", "ef+outliers+lowrank" };
  static const char *const scale_names[] = { "row", "tensor", "group", "group64" };
  static const char *const fit_names[] = { "absmean", "lsq" };
  gint choice;
  if (opt_compensate) {
    if ((choice = parse_choice (opt_compensate, comp_names, G_N_ELEMENTS (comp_names))) < 0)
      return usage_error (octx, "unknown --compensate (expected none, ef, ef+outliers or ef+outliers+lowrank)");
    qopt.compensate = (LevCompensate) choice;
  }
  if (opt_scale) {
    if ((choice = parse_choice (opt_scale, scale_names, G_N_ELEMENTS (scale_names))) < 0)
      return usage_error (octx, "unknown --scale (expected row, tensor, group or group64)");
    qopt.scale_mode = (LevScaleMode) choice;
  }
  if (opt_scale_fit) {
    if ((choice = parse_choice (opt_scale_fit, fit_names, G_N_ELEMENTS (fit_names))) < 0)
      return usage_error (octx, "unknown --scale-fit (expected absmean or lsq)");
    qopt.fit = (LevScaleFit) choice;
  }
  gboolean quant_options = opt_compensate || opt_scale || opt_scale_fit;   /* they need t2, t1 or b1 */
  if (opt_outliers && !parse_share (opt_outliers, &qopt.outlier_share))
    return usage_error (octx, "--outliers must be a share between 0 and 50%, such as 0.5% or 0.005");
  if (opt_rank < 1 || opt_rank > (gint) LEV_MAX_LORA_RANK)
    return usage_error (octx, "--rank must be between 1 and 256");
  if (opt_calib_tokens < 16 || opt_calib_ctx < 8 || opt_threads < 0)
    return usage_error (octx, "--calib-tokens must be at least 16, --calib-ctx at least 8, --threads positive");
  if (quant_options && format != LEV_OUT_T2 && format != LEV_OUT_T1 && format != LEV_OUT_B1)
    return usage_error (octx, "--compensate, --scale and --scale-fit need --format t2, t1 or b1");
  if (qopt.scale_mode == LEV_SCALE_GROUP64 && format == LEV_OUT_T1)
    return usage_error (octx, "--scale group64 needs --format t2 or b1 (t1's groups are its 160-weight blocks)");
  if ((opt_calib || opt_calib_lines || opt_calib_builtin || opt_outliers || opt_adapter_out)
      && qopt.compensate == LEV_COMP_NONE)
    return usage_error (octx, "--calib, --calib-lines, --calib-builtin, --outliers and --adapter-out need "
                        "--compensate");
  if (opt_ef_passes < 1 || opt_ef_passes > 16)
    return usage_error (octx, "--ef-passes must be between 1 and 16");
  if (opt_ef_passes > 1 && qopt.compensate == LEV_COMP_NONE)
    return usage_error (octx, "--ef-passes needs --compensate");
  qopt.ef_passes = (guint) opt_ef_passes;
  if (opt_calib && opt_calib_builtin)
    return usage_error (octx, "--calib and --calib-builtin exclude each other");
  if (opt_calib_lines && !opt_calib && !opt_calib_builtin)
    return usage_error (octx, "--calib-lines needs --calib FILE or --calib-builtin (sampled text ends its texts "
                        "with EOS already)");
  gboolean rotate = FALSE;
  if (opt_rotate && g_ascii_strcasecmp (opt_rotate, "hadamard") == 0)
    rotate = TRUE;
  else if (opt_rotate && g_ascii_strcasecmp (opt_rotate, "none") != 0)
    return usage_error (octx, "unknown --rotate (expected none or hadamard)");
  if (opt_rotate_seed < 0 || opt_rotate_seed > G_MAXUINT32)
    return usage_error (octx, "--rotate-seed must be between 0 and 4294967295");
  if (opt_vocab_only && rotate)
    return usage_error (octx, "--vocab-only writes no matrices to rotate");
  if (opt_calib_seed < 0)
    return usage_error (octx, "--calib-seed must not be negative");
  if (opt_adapter_out && qopt.compensate != LEV_COMP_EF_OUTLIERS_LOWRANK)
    return usage_error (octx, "--adapter-out needs --compensate ef+outliers+lowrank (the adapters it writes)");
  if (opt_vocab_only && quant_options)
    return usage_error (octx, "--vocab-only writes no matrices to quantize");
  /* float matrices to t2/t1/b1 always go through the quantizer (natively ternary ones stay lossless) */
  gboolean quantize = !opt_vocab_only && (format == LEV_OUT_T2 || format == LEV_OUT_T1 || format == LEV_OUT_B1);
  qopt.rank = (guint) opt_rank;
  qopt.calib_path = opt_calib;
  qopt.calib_tokens = (guint) opt_calib_tokens;
  qopt.calib_ctx = (guint) opt_calib_ctx;
  qopt.calib_lines = opt_calib_lines;
  qopt.calib_builtin = opt_calib_builtin;
  qopt.calib_seed = (guint64) opt_calib_seed;
  qopt.n_threads = (guint) opt_threads;
  qopt.quiet = opt_quiet;
  const char *src = argv[1];
  g_option_context_free (octx);
  /* progress: a bar on a terminal, nothing otherwise (a log gets the outcome only) */
  if (!opt_quiet && isatty (STDERR_FILENO))
    lev_conv_set_progress (draw_progress, qopt.compensate != LEV_COMP_NONE ? GINT_TO_POINTER (1) : NULL);
  /* an output that is a symlink to a regular file is written through: the file it points to is replaced (as a
   * shell's redirection would write it), not the link */
  if (g_file_test (opt_output, G_FILE_TEST_IS_SYMLINK) && g_file_test (opt_output, G_FILE_TEST_IS_REGULAR)) {
    char real[PATH_MAX];
    if (realpath (opt_output, real) != NULL) {
      g_free (opt_output);
      opt_output = g_strdup (real);
    }
  }
  /* before any work: nothing is read from a FIFO or device and nothing written over one, or over an input */
  const char *const out_others[] = { opt_tokenizer, opt_calib, opt_adapter_out };
  const char *const adapter_others[] = { opt_tokenizer, opt_calib, opt_output };
  if (!check_input (src, "SRC", TRUE, &error) || !check_input (opt_tokenizer, "--tokenizer", FALSE, &error)
      || !check_input (opt_calib, "--calib", FALSE, &error)
      || !check_output (opt_output, src, out_others, G_N_ELEMENTS (out_others), &error)
      || (opt_adapter_out && (!check_output (opt_adapter_out, src, adapter_others, G_N_ELEMENTS (adapter_others),
                                             &error) || strcmp (opt_adapter_out, opt_output) == 0))) {
    g_printerr ("levconvert: %s\n", error ? error->message : "--adapter-out and -o name the same file");
    g_clear_error (&error);
    return 1;
  }

  LevConvModel *model = NULL;
  if (opt_vocab_only) {
    LevConvVocab *vocab = import_vocab_file (opt_tokenizer ? opt_tokenizer : src, &error);
    if (vocab) {
      model = lev_conv_model_new ();
      model->vocab = vocab;
    }
  } else {
    model = lev_import_any (src, &error);
    if (model && opt_tokenizer) {
      LevConvVocab *vocab = import_vocab_file (opt_tokenizer, &error);
      if (vocab) {
        if (model->vocab)
          lev_conv_vocab_free (model->vocab);
        model->vocab = vocab;
      } else {
        lev_conv_model_free (model);
        model = NULL;
      }
    }
    if (model && !model->vocab) {
      g_set_error (&error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT,
                   "%s has no tokenizer: pass --tokenizer tokenizer.model or tokenizer.bin", src);
      lev_conv_model_free (model);
      model = NULL;
    }
    if (model && model->vocab->pieces->len > model->hp.vocab_size) {
      g_set_error (&error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_SHAPE,
                   "the tokenizer has %u tokens but the model's vocabulary is %u", model->vocab->pieces->len,
                   model->hp.vocab_size);
      lev_conv_model_free (model);
      model = NULL;
    }
    if (model && !lev_conv_model_validate (model, &error)) {
      lev_conv_model_free (model);
      model = NULL;
    }
  }
  if (model && (opt_name || !model->name)) {
    g_free (model->name);
    gchar *base = g_path_get_basename (src);
    model->name = g_strdup (opt_name ? opt_name : base);
    g_free (base);
  }
  gint64 t_quant = g_get_monotonic_time ();
  if (model && rotate && !lev_rotate_model (model, (guint32) opt_rotate_seed, opt_quiet, &error)) {
    lev_conv_model_free (model);
    model = NULL;
  }
  if (model && quantize && !lev_quantize_model (model, &qopt, &error)) {
    lev_conv_model_free (model);
    model = NULL;
  }
  if (model && quantize && !opt_quiet && qopt.compensate != LEV_COMP_NONE)
    g_printerr ("levconvert: quantization took %.1f s\n", (g_get_monotonic_time () - t_quant) / 1e6);
  LevConvModel *adapter = model && opt_adapter_out ? lev_split_adapters (model) : NULL;
  gboolean adapter_written = FALSE;
  if (model && opt_adapter_out) {
    if (!adapter)
      g_set_error (&error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED,
                   "the model has no float matrices, so there are no low-rank adapters to write");
    else
      adapter_written = lev_write_model_full (adapter, opt_adapter_out, LEV_OUT_AUTO, LEV_OUT_AUTO, FALSE, &error);
    if (!adapter_written) {
      lev_conv_model_free (model);
      model = NULL;
    }
  }
  if (model)
    cleanup_on_signals (opt_output, TRUE);
  gboolean written = model && lev_write_model_full (model, opt_output, format, embd_format, opt_vocab_only, &error);
  cleanup_on_signals (opt_output, FALSE);
  if (!written && adapter_written)
    g_unlink (opt_adapter_out);   /* nothing half-written: the adapter belongs to the model that failed */
  if (adapter)
    lev_conv_model_free (adapter);
  if (!written) {
    g_printerr ("levconvert: %s\n", error ? error->message : "conversion failed");
    g_clear_error (&error);
    lev_conv_model_free (model);
    return 1;
  }
  if (!opt_quiet) {
    if (opt_vocab_only)
      g_printerr ("levconvert: wrote %s (tokenizer only, %u tokens)\n", opt_output, model->vocab->pieces->len);
    else
      g_printerr ("levconvert: wrote %s (%u layers, dim %u, vocab %u, %u tensors)\n", opt_output,
                  model->hp.n_layers, model->hp.dim, model->hp.vocab_size, model->tensors->len);
  }
  lev_conv_model_free (model);
  g_free (opt_output);
  g_free (opt_format);
  g_free (opt_embd_format);
  g_free (opt_tokenizer);
  g_free (opt_name);
  g_free (opt_compensate);
  g_free (opt_calib);
  g_free (opt_outliers);
  g_free (opt_scale);
  g_free (opt_scale_fit);
  g_free (opt_adapter_out);
  g_free (opt_rotate);
  return 0;
}
