/* levrun.c: command-line text generation (through the session layer), tokenization and logit dumps. */
#include "leviathan.h"
#include "lev_chat.h"
#include "lev_session.h"
#include "lev_source.h"
#include "lev_version.h"
#include "lev_tool_text.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The largest prompt file levrun reads: more than any context holds (the session keeps the prompt's end). */
#define LEVRUN_MAX_PROMPT_BYTES (256u * 1024u * 1024u)

static gchar *opt_model = NULL;
static gchar *opt_convert_format = NULL;
static gchar *opt_adapter = NULL;
static gboolean opt_no_mmap = FALSE;
static gchar *opt_prompt = NULL;
static gchar *opt_prompt_file = NULL;
static gint opt_n_predict = -1;
static gdouble opt_temp;
static gint opt_top_k;
static gdouble opt_top_p;
static gdouble opt_min_p;
static gdouble opt_repeat_penalty;
static gint opt_repeat_last_n;
static gint64 opt_seed = -1;
static gint opt_threads = 0;
static gint opt_ctx = 0;
static gint opt_sink;
static gboolean opt_tokenize = FALSE;
static gboolean opt_bos = FALSE;
static gboolean opt_no_bos = FALSE;
static gboolean opt_print_ids = FALSE;
static gchar *opt_ids = NULL;
static gchar *opt_logits_out = NULL;
static gboolean opt_ignore_eos = FALSE;
static gboolean opt_no_act_quant = FALSE;
static gboolean opt_quiet = FALSE;
static gboolean opt_chat = FALSE;
static gchar *opt_system = NULL;
static gchar *opt_chat_template = NULL;
/* small-memory devices (docs/embedded.md): the KV cache type and a limit on the memory the run may take */
static gchar *opt_kv = NULL;
static gchar *opt_memory_limit = NULL;
static gboolean opt_memory = FALSE;
static LevKvType kv_type = LEV_KV_F32;
static guint64 memory_limit = 0;

/* Prints the program's name and version (--version) and exits. */
static gboolean
print_version (const gchar *name, const gchar *value, gpointer data, GError **error)
{
  printf ("levrun (Leviathan) %s\n", LEV_PROJECT_VERSION);
  exit (0);
}

static GOptionEntry entries[] = {
  { "model", 'm', 0, G_OPTION_ARG_FILENAME, &opt_model,
    "Model: a .leviathan file, a GGUF file, a Hugging Face checkpoint directory or hf:ORG/NAME[@REVISION][:FILE] "
    "(converted once into $XDG_CACHE_HOME/leviathan/models); default: $LEV_MODEL, else the bundled default model",
    "MODEL" },
  { "convert-format", 0, 0, G_OPTION_ARG_STRING, &opt_convert_format,
    "Conversion format of a model that is not a .leviathan file: auto (default, or $LEV_CONVERT_FORMAT: ternary "
    "matrices packed to t2 without loss, the others kept), or levconvert's f32, f16, bf16, q8, q4, t2, t1, b1", "FMT" },
  /* raw bytes (FILENAME type), so that invalid UTF-8 reaches the tokenizer and gets its message */
  { "no-mmap", 0, 0, G_OPTION_ARG_NONE, &opt_no_mmap, "Read the model into memory instead of mapping it (a mapped "
    "file truncated by another process kills levrun with SIGBUS)", NULL },
  { "adapter", 0, 0, G_OPTION_ARG_FILENAME, &opt_adapter,
    "Adapter file (low-rank adapters from levconvert --adapter-out) mounted over the model", "FILE" },
  { "prompt", 'p', 0, G_OPTION_ARG_FILENAME, &opt_prompt, "Prompt text (UTF-8)", "TEXT" },
  { "file", 'f', 0, G_OPTION_ARG_FILENAME, &opt_prompt_file, "Read the prompt from FILE", "FILE" },
  { "n-predict", 'n', 0, G_OPTION_ARG_INT, &opt_n_predict,
    "Tokens to generate (default 64; 0 with --logits-out)", "N" },
  { "temp", 0, 0, G_OPTION_ARG_DOUBLE, &opt_temp, NULL, "T" },
  { "top-k", 0, 0, G_OPTION_ARG_INT, &opt_top_k, NULL, "K" },
  { "top-p", 0, 0, G_OPTION_ARG_DOUBLE, &opt_top_p, NULL, "P" },
  { "min-p", 0, 0, G_OPTION_ARG_DOUBLE, &opt_min_p, NULL,
    "P" },
  { "repeat-penalty", 0, 0, G_OPTION_ARG_DOUBLE, &opt_repeat_penalty, NULL,
    "R" },
  { "repeat-last-n", 0, 0, G_OPTION_ARG_INT, &opt_repeat_last_n, NULL,
    "N" },
  { "seed", 's', 0, G_OPTION_ARG_INT64, &opt_seed, "Random seed (default: from the clock)", "SEED" },
  { "threads", 't', 0, G_OPTION_ARG_INT, &opt_threads, "Threads (default: all CPUs)", "N" },
  { "ctx", 'c', 0, G_OPTION_ARG_INT, &opt_ctx, NULL, "N" },
  { "sinks", 0, 0, G_OPTION_ARG_INT, &opt_sink, NULL,
    "N" },
  { "tokenize", 0, 0, G_OPTION_ARG_NONE, &opt_tokenize, "Print the prompt's token ids and exit", NULL },
  { "bos", 0, 0, G_OPTION_ARG_NONE, &opt_bos, "With --tokenize: prepend BOS", NULL },
  { "no-bos", 0, 0, G_OPTION_ARG_NONE, &opt_no_bos, "Do not prepend BOS to the prompt", NULL },
  { "print-ids", 0, 0, G_OPTION_ARG_NONE, &opt_print_ids, "Print prompt and generated ids instead of text", NULL },
  { "ids", 0, 0, G_OPTION_ARG_STRING, &opt_ids, "Prompt as token ids, e.g. \"1 403 407\"", "IDS" },
  { "logits-out", 0, 0, G_OPTION_ARG_FILENAME, &opt_logits_out,
    "Write the prompt's teacher-forced logits to FILE (float32 [tokens][vocab])", "FILE" },
  { "ignore-eos", 0, 0, G_OPTION_ARG_NONE, &opt_ignore_eos, "Do not stop at end-of-text tokens", NULL },
  { "no-act-quant", 0, 0, G_OPTION_ARG_NONE, &opt_no_act_quant,
    "Keep activations in float even where the model quantizes them to int8", NULL },
  { "quiet", 'q', 0, G_OPTION_ARG_NONE, &opt_quiet, "No statistics on stderr", NULL },
  { "kv", 0, 0, G_OPTION_ARG_STRING, &opt_kv, "KV cache type: f32 (default), f16 (half the memory) or q8 (a quarter)",
    "TYPE" },
  { "memory-limit", 0, 0, G_OPTION_ARG_STRING, &opt_memory_limit, "Refuse to run when the model file, KV cache and "
    "scratch would take more than SIZE (bytes, or with a K, M or G suffix); the estimate is printed", "SIZE" },
  { "memory", 0, 0, G_OPTION_ARG_NONE, &opt_memory, "Print the memory the run would take (on stderr; on stdout its "
    "bytes: total, model file, KV cache, scratch) and exit", NULL },
  { "chat", 0, 0, G_OPTION_ARG_NONE, &opt_chat,
    "Conversation: each line of stdin is a user turn, answered in the same context (answers up to -n tokens, "
    "default 512)", NULL },
  { "system", 0, 0, G_OPTION_ARG_STRING, &opt_system, "With --chat: the system message", "TEXT" },
  { "chat-template", 0, 0, G_OPTION_ARG_STRING, &opt_chat_template,
    "With --chat: none, llama2, llama3, chatml, zephyr or bitnet (default: recognised from the model file)",
    "NAME" },
  { "version", 0, G_OPTION_FLAG_NO_ARG, G_OPTION_ARG_CALLBACK, (gpointer) print_version, "Print the version and exit",
    NULL },
  { NULL }
};

static GOptionContext *octx;

/* Sets an option's help text (defaults come from the session's parameters, stated there once). */
static void
set_help (const char *long_name, gchar *text)
{
  for (GOptionEntry *e = entries; e->long_name; e++)
    if (strcmp (e->long_name, long_name) == 0)
      e->description = text;      /* kept until exit */
}

/* Takes the sampling and context defaults from lev_session_default_params and writes them into the help. */
static void
init_defaults (void)
{
  LevSessionParams d = lev_session_default_params ();
  opt_temp = d.temperature;
  opt_top_k = d.top_k;
  opt_top_p = d.top_p;
  opt_min_p = d.min_p;
  opt_repeat_penalty = d.repeat_penalty;
  opt_repeat_last_n = (gint) d.repeat_last_n;
  opt_sink = (gint) d.n_sink;
  set_help ("ctx", g_strdup_printf ("Context (KV cache) size; generation goes on past it (default: the model's, "
                                     "at most %u)", LEV_DEFAULT_CONTEXT_CAP));
  set_help ("temp", g_strdup_printf ("Temperature, 0 = greedy, at most %g (default %g)", LEV_SAMPLER_TEMPERATURE_MAX,
                                     opt_temp));
  set_help ("top-k", g_strdup_printf ("Keep the K most likely tokens, 0 = all (default %d)", opt_top_k));
  set_help ("top-p", g_strdup_printf ("Nucleus sampling mass, %g to 1 = off (default %g)", LEV_SAMPLER_TOP_P_MIN,
                                      opt_top_p));
  set_help ("min-p", g_strdup_printf ("Drop tokens below P times the best, 0 = off (default %g)", opt_min_p));
  set_help ("repeat-penalty", g_strdup_printf ("Repetition penalty, %g to %g, 1 = off (default %g)",
                                               LEV_SAMPLER_REPEAT_PENALTY_MIN, LEV_SAMPLER_REPEAT_PENALTY_MAX,
                                               opt_repeat_penalty));
  set_help ("repeat-last-n", g_strdup_printf ("Tokens the penalty looks back, at most %u (default %d)",
                                              LEV_SAMPLER_MAX_REPEAT_LAST_N, opt_repeat_last_n));
  set_help ("sinks", g_strdup_printf ("Attention-sink tokens kept when the context slides (default %d)", opt_sink));
}

#ifndef LEV_DEFAULT_MODEL
#define LEV_DEFAULT_MODEL ""
#endif
#ifndef LEV_UNINSTALLED_MODEL
#define LEV_UNINSTALLED_MODEL ""
#endif

/* Returns the model used without -m: $LEV_MODEL, else the installed default model, else the source tree's (run from
 * the build tree); NULL when none exists. */
static gchar *
default_model_path (void)
{
  const char *env = g_getenv ("LEV_MODEL");
  if (env && *env)
    return g_strdup (env);
  gchar *path = lev_session_find_default_model (LEV_DEFAULT_MODEL, LEV_UNINSTALLED_MODEL, NULL);
  if (*path && g_file_test (path, G_FILE_TEST_EXISTS))
    return path;
  g_free (path);
  return NULL;
}

/* Prints a usage error on one line, pointing at --help, and returns the exit status for bad arguments (2). */
static int
usage_error (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  gchar *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_printerr ("levrun: %s (see levrun --help)\n", msg);
  g_free (msg);
  return 2;
}

/* Parses "1 403 407" (spaces or commas) into ids; FALSE on anything else. */
static gboolean
parse_ids (const char *s, GArray *out)
{
  const char *p = s;
  while (*p) {
    while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n')
      p++;
    if (!*p)
      break;
    char *end;
    errno = 0;
    long v = strtol (p, &end, 10);
    if (end == p || errno || v < 0 || v > G_MAXINT32)
      return FALSE;
    gint32 id = (gint32) v;
    g_array_append_val (out, id);
    p = end;
  }
  return out->len > 0;
}

/* Builds the session parameters from the options. */
static LevSessionParams
session_params (int n_predict)
{
  LevSessionParams p = lev_session_default_params ();
  p.n_threads = (uint32_t) opt_threads;
  p.n_ctx = (uint32_t) opt_ctx;
  p.n_sink = (uint32_t) opt_sink;
  p.act_quant = opt_no_act_quant ? LEV_ACT_QUANT_OFF : LEV_ACT_QUANT_AUTO;
  p.max_tokens = (uint32_t) n_predict;
  p.temperature = (float) opt_temp;
  p.top_k = opt_top_k;
  p.top_p = (float) opt_top_p;
  p.min_p = (float) opt_min_p;
  p.repeat_penalty = (float) opt_repeat_penalty;
  p.repeat_last_n = (uint32_t) opt_repeat_last_n;
  p.seed = opt_seed;
  p.ignore_eos = opt_ignore_eos;
  p.kv_type = kv_type;
  p.memory_limit = memory_limit;
  return p;
}

/* Prints one output unit of the session (valid UTF-8 text, or its ids with --print-ids); counts the bytes printed in
 * *user_data (a gsize) when given. */
static gboolean
print_unit (const char *text, gsize len, const int32_t *ids, guint n_ids, gpointer user_data)
{
  if (user_data)
    *(gsize *) user_data += opt_print_ids ? n_ids : len;
  if (opt_print_ids) {
    for (guint i = 0; i < n_ids; i++)
      printf (" %d", ids[i]);
  } else {
    fwrite (text, 1, len, stdout);
  }
  fflush (stdout);
  return TRUE;
}

/* Opens where the logits go: a temporary file next to path (its name in *tmp) that write_logits renames over
 * *final (path, or the file a symlink at path names) once complete, or, when path exists and is not a regular file
 * (/dev/stdout, a FIFO), path itself (*tmp and *final NULL). NULL with a message printed. */
static FILE *
open_logits_out (const char *path, gchar **tmp, gchar **final)
{
  struct stat st;
  *tmp = *final = NULL;
  if (stat (path, &st) == 0 && !S_ISREG (st.st_mode)) {
    FILE *f = fopen (path, "wb");
    if (!f)
      g_printerr ("levrun: cannot write %s: %s\n", path, g_strerror (errno));
    return f;
  }
  /* a symlink to a regular file is written through: its target is replaced, the link stays */
  char *real = realpath (path, NULL);
  *final = g_strdup (real ? real : path);
  free (real);
  *tmp = g_strdup_printf ("%s.tmp-XXXXXX", *final);
  int fd = g_mkstemp_full (*tmp, O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) {
    g_printerr ("levrun: cannot write %s: %s\n", path, g_strerror (errno));
    g_clear_pointer (tmp, g_free);
    g_clear_pointer (final, g_free);
    return NULL;
  }
  mode_t mask = umask (0);      /* the permissions a plain creation would give (mkstemp makes 0600) */
  umask (mask);
  if (fchmod (fd, 0666 & ~mask) != 0)
    g_printerr ("levrun: %s stays readable by its owner only: %s\n", path, g_strerror (errno));
  return fdopen (fd, "wb");
}

/* Writes the teacher-forced logits of ids (one row per position) to path, whole or not at all (a temporary file
 * renamed over path at the end); FALSE with a message printed. */
static gboolean
write_logits (LevModel *model, const GArray *ids, const char *path)
{
  GError *error = NULL;
  LevContextParams cp = lev_context_default_params ();
  cp.n_ctx = (uint32_t) opt_ctx;
  cp.n_sink = (uint32_t) opt_sink;
  cp.n_threads = (uint32_t) opt_threads;
  cp.act_quant = opt_no_act_quant ? LEV_ACT_QUANT_OFF : LEV_ACT_QUANT_AUTO;
  LevContext *ctx = lev_context_new (model, &cp, &error);
  gchar *tmp = NULL, *final = NULL;
  FILE *f = ctx ? open_logits_out (path, &tmp, &final) : NULL;
  gboolean ok = f != NULL;
  if (!ctx)
    g_printerr ("levrun: %s\n", error->message);
  uint32_t n_vocab = lev_model_vocab_size (model);
  for (guint i = 0; ok && i < ids->len; i++) {
    const float *logits = lev_context_eval (ctx, g_array_index (ids, gint32, i), &error);
    if (!logits) {
      g_printerr ("levrun: %s\n", error->message);
      ok = FALSE;
    } else if (fwrite (logits, sizeof (float), n_vocab, f) != n_vocab) {
      g_printerr ("levrun: cannot write %s: %s\n", path, g_strerror (errno));
      ok = FALSE;
    }
  }
  if (f && fclose (f) != 0 && ok) {
    g_printerr ("levrun: cannot write %s: %s\n", path, g_strerror (errno));
    ok = FALSE;
  }
  if (tmp && ok && rename (tmp, final) != 0) {
    g_printerr ("levrun: cannot write %s: %s\n", path, g_strerror (errno));
    ok = FALSE;
  }
  if (tmp && !ok)
    unlink (tmp);
  g_free (tmp);
  g_free (final);
  g_clear_error (&error);
  lev_context_free (ctx);
  return ok;
}

/* Says on stderr why a chat turn printed nothing (the stop reason in st, the template in use tmpl) and what to do. */
static void
explain_empty_answer (const LevSessionStats *st, LevChatTemplate tmpl)
{
  const char *why = st->reason == LEV_STOP_EOS && st->generated_tokens == 0
                      ? "the model's first token was end-of-text"
                    : st->reason == LEV_STOP_EOS ? "the model ended the answer before any text"
                    : st->reason == LEV_STOP_STRING ? "a stop string came before any text"
                    : "generation stopped";
  if (st->reason == LEV_STOP_MAX_TOKENS && st->generated_tokens == 0)
    g_printerr ("levrun: empty answer: -n 0 allows no tokens; give -n N\n");
  else if (tmpl == LEV_CHAT_NONE)
    g_printerr ("levrun: empty answer: %s. The model file names no chat template, so the line went in as plain "
                "text: if it is a chat model give --chat-template NAME; if it is a plain text model, continue a "
                "text with -p TEXT instead of --chat (or add --ignore-eos)\n", why);
  else
    g_printerr ("levrun: empty answer: %s with the %s template: check that it is the model's template "
                "(--chat-template), or add --ignore-eos\n", why, lev_chat_template_name (tmpl));
}

/* One conversation on stdin (--chat) through the session: each non-empty line is a user turn, rendered with the
 * chat template (the first with the system message, the later ones as continuations of the conversation, whose
 * earlier turns stay in the context) and answered under the session's stop rules. Returns the exit status. */
static int
chat_main (LevModel *model, int n_predict)
{
  if (!lev_model_tokenizer (model)) {
    g_printerr ("levrun: %s has no tokenizer, which --chat needs\n", opt_model);
    return 1;
  }
  GError *error = NULL;
  LevSessionParams p = session_params (n_predict);
  p.keep_history = TRUE;
  p.system_prompt = opt_system;
  if (opt_chat_template && !lev_session_template_from_name (opt_chat_template, &p.chat_template))
    return usage_error ("unknown chat template '%s' (auto, none, llama2, llama3, chatml, zephyr, bitnet)",
                        opt_chat_template);
  LevSession *session = lev_session_new (model, &p, &error);
  if (!session) {
    g_printerr ("levrun: %s\n", error->message);
    g_clear_error (&error);
    return 1;
  }
  if (!opt_quiet)
    g_printerr ("levrun: chat template %s; one user turn per line, end with EOF\n",
                lev_chat_template_name ((LevChatTemplate) lev_session_template (session)));

  gboolean interactive = isatty (STDIN_FILENO) && isatty (STDERR_FILENO);
  GIOChannel *in = g_io_channel_unix_new (STDIN_FILENO);
  g_io_channel_set_encoding (in, NULL, NULL);
  g_io_channel_set_line_term (in, "\n", 1);   /* not GLib's guess, which also ends lines at NUL, CR and U+2029 */
  GString *line = g_string_new (NULL);
  int rc = 0, turn = 0;
  guint n_prompt = 0, n_gen = 0;
  gint64 t_start = g_get_monotonic_time ();
  for (;;) {
    if (interactive)
      g_printerr ("> ");
    gsize term = 0;
    GIOStatus st = g_io_channel_read_line_string (in, line, &term, &error);
    if (st == G_IO_STATUS_EOF)
      break;
    if (st != G_IO_STATUS_NORMAL) {
      g_printerr ("levrun: cannot read stdin: %s\n", error ? error->message : "read error");
      g_clear_error (&error);
      rc = 1;
      break;
    }
    g_string_truncate (line, term);
    if (line->len > 0 && line->str[line->len - 1] == '\r')
      g_string_truncate (line, line->len - 1);
    if (line->len == 0)
      continue;
    /* as the element does: invalid UTF-8 becomes U+FFFD instead of ending the conversation, and so does a NUL
     * byte (a chat template takes text without one) */
    gchar *text = g_utf8_make_valid (line->str, (gssize) line->len);   /* a NUL is invalid here: U+FFFD */
    LevSessionStats stats;
    gsize printed = 0;
    gboolean ok = lev_session_generate (session, text, -1, NULL, 0, NULL, print_unit, &printed, &stats, &error);
    g_free (text);
    turn++;
    printf ("\n");
    fflush (stdout);
    if (ok && printed == 0)
      explain_empty_answer (&stats, (LevChatTemplate) lev_session_template (session));
    if (!ok) {
      g_printerr ("levrun: %s\n", error->message);
      g_clear_error (&error);
      rc = 1;
      break;
    }
    n_prompt += stats.prompt_tokens;
    n_gen += stats.generated_tokens;
  }
  if (!opt_quiet)
    g_printerr ("levrun: %d turns, %u prompt tokens, %u generated tokens in %.3f s\n", turn, n_prompt, n_gen,
                (g_get_monotonic_time () - t_start) / 1e6);
  g_string_free (line, TRUE);
  g_io_channel_unref (in);
  lev_session_free (session);
  return rc;
}

/* Generates from a prompt (text, or ids with --ids/--bos/--no-bos) through the session and prints the prompt and
 * the response (or their ids). Returns the exit status. */
static int
generate_main (LevModel *model, const char *prompt, gsize prompt_len, GArray *ids, int n_predict)
{
  GError *error = NULL;
  LevSessionParams p = session_params (n_predict);
  p.chat_template = LEV_CHAT_NONE;
  LevSession *session = lev_session_new (model, &p, &error);
  if (!session) {
    g_printerr ("levrun: %s\n", error->message);
    g_clear_error (&error);
    return 1;
  }
  const LevTokenizer *tok = lev_model_tokenizer (model);
  if (!opt_ids && !opt_bos && !opt_no_bos) {
    /* the session's own prompt rule (BOS where the tokenizer adds one) */
    size_t n = 0;
    int32_t *enc = lev_session_encode_prompt (session, prompt, (gssize) prompt_len, &n, &error);
    if (!enc) {
      g_printerr ("levrun: cannot encode the prompt: %s\n", error->message);
      g_clear_error (&error);
      lev_session_free (session);
      return 1;
    }
    g_array_append_vals (ids, enc, (guint) n);
    g_free (enc);
  }
  if (ids->len == 0) {
    /* an empty prompt without BOS: start from BOS when there is one */
    gint32 bos = lev_model_bos_id (model);
    if (bos < 0) {
      g_printerr ("levrun: the prompt is empty and the model has no BOS token to start from\n");
      lev_session_free (session);
      return 1;
    }
    g_array_append_val (ids, bos);
  }
  if (opt_print_ids) {
    for (guint i = 0; i < ids->len; i++)
      printf ("%s%d", i ? " " : "", g_array_index (ids, gint32, i));
  } else if (tok && !opt_ids) {
    fwrite (prompt, 1, prompt_len, stdout);
  }
  fflush (stdout);
  LevSessionStats st;
  gboolean ok = lev_session_generate (session, NULL, 0, (const int32_t *) ids->data, ids->len, NULL, print_unit,
                                      NULL, &st, &error);
  if (ok && opt_print_ids && st.reason == LEV_STOP_EOS)
    printf (" %d", st.stop_token);
  printf ("\n");
  fflush (stdout);
  int rc = 0;
  if (!ok) {
    g_printerr ("levrun: %s\n", error->message);
    g_clear_error (&error);
    rc = 1;
  } else if (!opt_quiet) {
    double pre = st.prefill_us / 1e6, dec = st.decode_us / 1e6;
    g_printerr ("levrun: prompt %u tokens in %.3f s (%.1f t/s), generated %u tokens in %.3f s (%.1f t/s)\n",
                st.prompt_tokens, pre, st.prompt_tokens / MAX (pre, 1e-9), st.generated_tokens, dec,
                st.generated_tokens / MAX (dec, 1e-9));
  }
  lev_session_free (session);
  return rc;
}

/* Parses the command line and checks the options against each other; returns -1 when they are fine, else the exit
 * status (a usage error printed). */
static int
parse_options (int *argc, char ***argv)
{
  octx = g_option_context_new ("- run a model (.leviathan, GGUF, Hugging Face directory or hf:ORG/NAME)");
  g_option_context_add_main_entries (octx, entries, NULL);
  GError *error = NULL;
  if (!g_option_context_parse (octx, argc, argv, &error)) {
    int rc = usage_error ("%s", error->message);
    g_error_free (error);
    return rc;
  }
  if (*argc > 1)
    return usage_error ("unexpected argument '%s'", (*argv)[1]);
  if (!opt_model && !(opt_model = default_model_path ()))
    return usage_error ("no -m MODEL given and no default model found (set LEV_MODEL or install one)");
  if (opt_convert_format && !lev_source_format_valid (opt_convert_format))
    return usage_error ("unknown --convert-format '%s' (auto, f32, f16, bf16, q8, q4, t2, t1, b1)",
                        opt_convert_format);
  if ((opt_prompt != NULL) + (opt_prompt_file != NULL) + (opt_ids != NULL) > 1)
    return usage_error ("give only one of -p, -f and --ids");
  if (opt_chat && (opt_prompt || opt_prompt_file || opt_ids || opt_tokenize || opt_logits_out || opt_print_ids))
    return usage_error ("--chat reads the conversation from stdin: it takes no -p, -f, --ids, --tokenize, "
                        "--logits-out or --print-ids");
  if (!opt_chat && (opt_system || opt_chat_template))
    return usage_error ("--system and --chat-template need --chat");
  int chat_tmpl;
  if (opt_chat_template && !lev_session_template_from_name (opt_chat_template, &chat_tmpl))
    return usage_error ("unknown chat template '%s' (auto, none, llama2, llama3, chatml, zephyr, bitnet)",
                        opt_chat_template);
  if (opt_tokenize && opt_ids)
    return usage_error ("--tokenize needs a text prompt, not --ids");
  if (opt_logits_out && !opt_ids)
    return usage_error ("--logits-out needs --ids");
  if (opt_kv && !lev_kv_type_from_name (opt_kv, &kv_type))
    return usage_error ("unknown --kv %s (f32, f16, q8)", opt_kv);
  if (opt_memory_limit) {
    char *end;
    errno = 0;
    guint64 v = g_ascii_strtoull (opt_memory_limit, &end, 10);
    int shift = *end == 'K' || *end == 'k' ? 10 : *end == 'M' || *end == 'm' ? 20
                : *end == 'G' || *end == 'g' ? 30 : 0;
    if (end == opt_memory_limit || errno || (shift && end[1]) || (!shift && *end) || v == 0
        || v > (G_MAXUINT64 >> 30))
      return usage_error ("--memory-limit must be a size such as 512M, 1G or 300000000");
    memory_limit = v << shift;
  }
  /* the sampling values: the session's one check (the element and Lev.Generator apply the same ranges) */
  if (opt_repeat_last_n < 0)
    return usage_error ("--repeat-last-n must be from 0 to %u", LEV_SAMPLER_MAX_REPEAT_LAST_N);
  LevSessionParams sp = session_params (0);
  if (!lev_session_params_check (&sp, &error)) {
    int rc = usage_error ("%s", error->message);
    g_error_free (error);
    return rc;
  }
  if (opt_threads < 0 || opt_threads > (gint) LEV_MAX_THREADS)
    return usage_error ("--threads must be from 0 (all CPUs) to %u", LEV_MAX_THREADS);
  if (opt_ctx < 0 || opt_ctx == 1)
    return usage_error ("--ctx must be 0 (the model's) or at least 2");
  if (opt_sink < 0)
    return usage_error ("--sinks must be 0 or more");
  if (opt_n_predict < -1)
    return usage_error ("-n must be 0 or more");
  return -1;
}

/* The prompt of -p or -f in *prompt (newly allocated, "" without one; its length in *prompt_len, NUL bytes of a file
 * included) and the ids the options give in ids: those of
 * --ids, or, with --tokenize, --bos or --no-bos, the tokenizer's encoding of the prompt (otherwise the session
 * encodes it later). Returns -1 when fine, else the exit status (a message printed). */
static int
read_prompt (const LevModel *model, gchar **prompt, gsize *prompt_len, GArray *ids)
{
  GError *error = NULL;
  const LevTokenizer *tok = lev_model_tokenizer (model);
  if (opt_prompt_file) {
    if (!lev_tool_read_text_file (opt_prompt_file, LEVRUN_MAX_PROMPT_BYTES, ", more than a prompt can be",
                                  prompt, prompt_len, &error)) {
      g_printerr ("levrun: %s\n", error->message);
      g_clear_error (&error);
      return 1;
    }
  } else {
    *prompt = g_strdup (opt_prompt ? opt_prompt : "");
    *prompt_len = strlen (*prompt);
  }

  if (opt_ids) {
    if (!parse_ids (opt_ids, ids))
      return usage_error ("--ids must be a list of non-negative integers");
  } else if (!tok) {
    g_printerr ("levrun: %s has no tokenizer; use --ids\n", opt_model);
    return 1;
  } else if (opt_tokenize || opt_bos || opt_no_bos) {
    /* the tokenizer alone: --tokenize prints what it makes of the text, --bos/--no-bos override the BOS rule */
    gboolean add_bos = opt_tokenize ? opt_bos : (lev_tokenizer_adds_bos (tok) && !opt_no_bos) || opt_bos;
    size_t n = 0;
    gint32 *enc = lev_tokenizer_encode (tok, *prompt, (gssize) *prompt_len, add_bos, &n, &error);
    if (!enc) {
      g_printerr ("levrun: cannot encode the prompt: %s\n", error->message);
      g_clear_error (&error);
      return 1;
    }
    g_array_append_vals (ids, enc, (guint) n);
    g_free (enc);
  }
  return -1;
}

/* Runs what the options ask for on a loaded model: a chat, the prompt's ids (--tokenize), its logits
 * (--logits-out) and/or a generation. Returns the exit status. */
static int
run_model (LevModel *model)
{
  /* what the run will take, before the context is allocated (the mapped weights are not read yet) */
  if (opt_memory || (opt_memory_limit && !opt_quiet && lev_model_has_weights (model))) {
    LevSessionParams p = session_params (0);
    LevMemoryEstimate est;
    lev_session_memory_estimate (model, &p, &est);
    gchar *total = g_format_size_full (est.total, G_FORMAT_SIZE_IEC_UNITS);
    gchar *weights = g_format_size_full (est.weights, G_FORMAT_SIZE_IEC_UNITS);
    gchar *kv = g_format_size_full (est.kv_cache, G_FORMAT_SIZE_IEC_UNITS);
    gchar *scratch = g_format_size_full (est.scratch, G_FORMAT_SIZE_IEC_UNITS);
    g_printerr ("levrun: memory: %s (model file %s, KV cache %s for %u tokens as %s, scratch %s)%s\n", total, weights,
                kv, opt_ctx ? (uint32_t) opt_ctx : lev_session_default_n_ctx (model), lev_kv_type_name (kv_type),
                scratch, memory_limit && est.total > memory_limit ? ": over --memory-limit" : "");
    if (opt_memory)
      g_print ("%" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT "\n", est.total,
               est.weights, est.kv_cache, est.scratch);
    g_free (total);
    g_free (weights);
    g_free (kv);
    g_free (scratch);
    if (opt_memory)
      return 0;
  }
  if (opt_chat)
    return chat_main (model, opt_n_predict >= 0 ? opt_n_predict : 512);
  int n_predict = opt_n_predict >= 0 ? opt_n_predict : (opt_logits_out ? 0 : 64);
  GArray *ids = g_array_new (FALSE, FALSE, sizeof (gint32));
  gchar *prompt = NULL;
  gsize prompt_len = 0;
  int rc = read_prompt (model, &prompt, &prompt_len, ids);
  if (rc < 0 && opt_tokenize) {
    for (guint i = 0; i < ids->len; i++)
      printf ("%s%d", i ? " " : "", g_array_index (ids, gint32, i));
    printf ("\n");
    rc = 0;
  }
  /* --logits-out: the teacher-forced logits of the given ids, straight from the engine */
  if (rc < 0 && opt_logits_out && !write_logits (model, ids, opt_logits_out))
    rc = 1;
  if (rc < 0)
    rc = !opt_logits_out || n_predict > 0 ? generate_main (model, prompt, prompt_len, ids, n_predict) : 0;
  g_free (prompt);
  g_array_free (ids, TRUE);
  return rc;
}

int
main (int argc, char **argv)
{
  setlocale (LC_ALL, "");
  /* a write past `ulimit -f` fails with EFBIG (and the logits file is not left half-written) instead of a kill */
  signal (SIGXFSZ, SIG_IGN);
  init_defaults ();
  int rc = parse_options (&argc, &argv);
  if (rc < 0) {
    GError *error = NULL;
    LevSourceOptions so = { 0 };
    so.progress = opt_quiet ? NULL : lev_source_terminal_progress;
    so.progress_data = (gpointer) "levrun";
    so.format = opt_convert_format;
    gchar *path = lev_source_resolve (opt_model, &so, &error);
    LevModelParams mp = { opt_no_mmap ? LEV_MODEL_NO_MMAP : 0, opt_adapter };
    LevModel *model = path ? lev_model_load_full (path, &mp, &error) : NULL;
    g_free (path);
    if (model) {
      rc = run_model (model);
      lev_model_free (model);
    } else {
      g_printerr ("levrun: %s\n", error->message);
      g_error_free (error);
      rc = 1;
    }
  }
  g_option_context_free (octx);
  return rc;
}
