/* levrun.c: command-line text generation, tokenization and logit dumps with the Leviathan engine. */
#include "leviathan.h"
#include "lev_chat.h"

#include <errno.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static gchar *opt_model = NULL;
static gchar *opt_adapter = NULL;
static gchar *opt_prompt = NULL;
static gchar *opt_prompt_file = NULL;
static gint opt_n_predict = -1;
static gdouble opt_temp = 0.8;
static gint opt_top_k = 40;
static gdouble opt_top_p = 0.95;
static gdouble opt_min_p = 0.05;
static gdouble opt_repeat_penalty = 1.0;
static gint opt_repeat_last_n = 64;
static gint64 opt_seed = -1;
static gint opt_threads = 0;
static gint opt_ctx = 0;
static gint opt_sink = 4;
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

static GOptionEntry entries[] = {
  { "model", 'm', 0, G_OPTION_ARG_FILENAME, &opt_model,
    "Model file (.leviathan); default: $LEV_MODEL, else the bundled default model", "FILE" },
  /* raw bytes (FILENAME type), so that invalid UTF-8 reaches the tokenizer and gets its message */
  { "adapter", 0, 0, G_OPTION_ARG_FILENAME, &opt_adapter,
    "Adapter file (low-rank adapters from levconvert --adapter-out) mounted over the model", "FILE" },
  { "prompt", 'p', 0, G_OPTION_ARG_FILENAME, &opt_prompt, "Prompt text (UTF-8)", "TEXT" },
  { "file", 'f', 0, G_OPTION_ARG_FILENAME, &opt_prompt_file, "Read the prompt from FILE", "FILE" },
  { "n-predict", 'n', 0, G_OPTION_ARG_INT, &opt_n_predict,
    "Tokens to generate (default 64; 0 with --logits-out)", "N" },
  { "temp", 0, 0, G_OPTION_ARG_DOUBLE, &opt_temp, "Temperature, 0 = greedy (default 0.8)", "T" },
  { "top-k", 0, 0, G_OPTION_ARG_INT, &opt_top_k, "Keep the K most likely tokens, 0 = all (default 40)", "K" },
  { "top-p", 0, 0, G_OPTION_ARG_DOUBLE, &opt_top_p, "Nucleus sampling mass, 1 = off (default 0.95)", "P" },
  { "min-p", 0, 0, G_OPTION_ARG_DOUBLE, &opt_min_p, "Drop tokens below P times the best, 0 = off (default 0.05)",
    "P" },
  { "repeat-penalty", 0, 0, G_OPTION_ARG_DOUBLE, &opt_repeat_penalty, "Repetition penalty, 1 = off (default 1)",
    "R" },
  { "repeat-last-n", 0, 0, G_OPTION_ARG_INT, &opt_repeat_last_n, "Tokens the penalty looks back (default 64)",
    "N" },
  { "seed", 's', 0, G_OPTION_ARG_INT64, &opt_seed, "Random seed (default: from the clock)", "SEED" },
  { "threads", 't', 0, G_OPTION_ARG_INT, &opt_threads, "Threads (default: all CPUs)", "N" },
  { "ctx", 'c', 0, G_OPTION_ARG_INT, &opt_ctx, "Context (KV cache) size; generation goes on past it (default: "
    "the model's)", "N" },
  { "sinks", 0, 0, G_OPTION_ARG_INT, &opt_sink, "Attention-sink tokens kept when the context slides (default 4)",
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
  { "chat", 0, 0, G_OPTION_ARG_NONE, &opt_chat,
    "Conversation: each line of stdin is a user turn, answered in the same context (answers up to -n tokens, "
    "default 512)", NULL },
  { "system", 0, 0, G_OPTION_ARG_STRING, &opt_system, "With --chat: the system message", "TEXT" },
  { "chat-template", 0, 0, G_OPTION_ARG_STRING, &opt_chat_template,
    "With --chat: none, llama2, llama3, chatml, zephyr or bitnet (default: recognised from the model file)",
    "NAME" },
  { NULL }
};

static GOptionContext *octx;

#ifndef LEV_DEFAULT_MODEL
#define LEV_DEFAULT_MODEL ""
#endif
#ifndef LEV_SOURCE_MODEL
#define LEV_SOURCE_MODEL ""
#endif

/* Returns the model used without -m: $LEV_MODEL, else the installed default model, else the source tree's. */
static gchar *
default_model_path (void)
{
  const char *env = g_getenv ("LEV_MODEL");
  if (env && *env)
    return g_strdup (env);
  if (*LEV_DEFAULT_MODEL && g_file_test (LEV_DEFAULT_MODEL, G_FILE_TEST_EXISTS))
    return g_strdup (LEV_DEFAULT_MODEL);
  if (*LEV_SOURCE_MODEL && g_file_test (LEV_SOURCE_MODEL, G_FILE_TEST_EXISTS))
    return g_strdup (LEV_SOURCE_MODEL);
  return NULL;
}

static int
usage_error (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  gchar *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  gchar *help = g_option_context_get_help (octx, TRUE, NULL);
  g_printerr ("levrun: %s\n\n%s", msg, help);
  g_free (help);
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

/* Streams decoded bytes to stdout, holding back an incomplete UTF-8 sequence until it is complete. */
typedef struct {
  GString *pending;
} TextOut;

static void
text_out_push (TextOut *t, const char *bytes, gsize len, gboolean final)
{
  g_string_append_len (t->pending, bytes, (gssize) len);
  const gchar *end;
  while (t->pending->len > 0) {
    g_utf8_validate (t->pending->str, (gssize) t->pending->len, &end);
    gsize good = (gsize) (end - t->pending->str);
    fwrite (t->pending->str, 1, good, stdout);
    g_string_erase (t->pending, 0, (gssize) good);
    if (t->pending->len == 0)
      break;
    /* an incomplete sequence at the end may still be completed by the next token */
    gunichar c = g_utf8_get_char_validated (t->pending->str, (gssize) t->pending->len);
    if (c == (gunichar) -2 && !final)
      break;
    fputs ("\xef\xbf\xbd", stdout);   /* U+FFFD for an invalid byte */
    g_string_erase (t->pending, 0, 1);
  }
  fflush (stdout);
}

/* Evaluates ids in ctx (the sampler sees them); the logits after the last one, or NULL with error set. */
static const float *
feed (LevContext *ctx, LevSampler *sampler, const int32_t *ids, size_t n, GError **error)
{
  const float *logits = NULL;
  for (size_t i = 0; i < n; i++) {
    if (!(logits = lev_context_eval (ctx, ids[i], error)))
      return NULL;
    lev_sampler_accept (sampler, ids[i]);
  }
  return logits;
}

/* One conversation on stdin (--chat): each non-empty line is a user turn, rendered with the chat template (the
 * first with the system message, the later ones as continuations of the conversation, whose earlier turns stay in
 * the context) and answered; an answer ends at a control token (end of turn, EOS) or after n_predict tokens.
 * Returns the exit status. */
static int
chat_main (LevModel *model, const LevTokenizer *tok, LevChatTemplate tmpl, int n_predict)
{
  if (!tok) {
    g_printerr ("levrun: %s has no tokenizer, which --chat needs\n", opt_model);
    return 1;
  }
  GError *error = NULL;
  LevContextParams cp = lev_context_default_params ();
  cp.n_ctx = (uint32_t) opt_ctx;
  cp.n_sink = (uint32_t) opt_sink;
  cp.n_threads = (uint32_t) opt_threads;
  cp.act_quant = opt_no_act_quant ? LEV_ACT_QUANT_OFF : LEV_ACT_QUANT_AUTO;
  LevContext *ctx = lev_context_new (model, &cp, &error);
  if (!ctx) {
    g_printerr ("levrun: %s\n", error->message);
    g_clear_error (&error);
    return 1;
  }
  const LevHParams *hp = lev_model_hparams (model);
  LevSamplerParams sp = lev_sampler_default_params ();
  sp.temperature = (float) opt_temp;
  sp.top_k = opt_top_k;
  sp.top_p = (float) opt_top_p;
  sp.min_p = (float) opt_min_p;
  sp.repeat_penalty = (float) opt_repeat_penalty;
  sp.repeat_last_n = (uint32_t) opt_repeat_last_n;
  sp.seed = opt_seed >= 0 ? (uint64_t) opt_seed : (uint64_t) g_get_real_time ();
  LevSampler *sampler = lev_sampler_new (&sp, hp->vocab_size);

  const char *model_tmpl = lev_model_chat_template (model);
  gchar *system = opt_system ? g_strdup (opt_system) : NULL;
  if (system == NULL && tmpl == LEV_CHAT_CHATML)
    system = lev_chat_template_default_system (model_tmpl);   /* Qwen2 / Qwen2.5 write one when there is none */
  int32_t bos = lev_tokenizer_bos (tok);
  size_t bos_len = 0;
  const char *bos_piece = bos >= 0 ? lev_tokenizer_piece (tok, bos, &bos_len) : NULL;
  gchar *bos_text = bos_piece && lev_tokenizer_is_control (tok, bos) ? g_strndup (bos_piece, bos_len) : NULL;
  if (!opt_quiet)
    g_printerr ("levrun: chat template %s; one user turn per line, end with EOF\n", lev_chat_template_name (tmpl));

  gboolean interactive = isatty (STDIN_FILENO) && isatty (STDERR_FILENO);
  GIOChannel *in = g_io_channel_unix_new (STDIN_FILENO);
  g_io_channel_set_encoding (in, NULL, NULL);
  GString *line = g_string_new (NULL), *piece = g_string_new (NULL);
  TextOut text = { g_string_new (NULL) };
  int rc = 0, turn = 0, n_prompt = 0, n_gen = 0;
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

    /* the turn's text: the conversation before it is already in the context */
    LevChatMessage msgs[2];
    gsize n = 0;
    if (turn == 0 && system && system[0])
      msgs[n++] = (LevChatMessage) { "system", system };
    msgs[n++] = (LevChatMessage) { "user", line->str };
    gchar *rendered = turn == 0 ? lev_chat_render (tmpl, msgs, n, TRUE, bos_text)
                                : lev_chat_render_continuation (tmpl, msgs, n, TRUE, bos_text);
    /* BOS where the tokenizer adds one and the template did not write it (Zephyr on TinyLlama, for instance) */
    gboolean add_bos = turn == 0 && !opt_no_bos && lev_tokenizer_adds_bos (tok)
                    && !(bos_text && g_str_has_prefix (rendered, bos_text));
    size_t n_ids = 0;
    int32_t *ids = lev_tokenizer_encode_special (tok, rendered, -1, add_bos, &n_ids, &error);
    g_free (rendered);
    if (!ids) {
      g_printerr ("levrun: cannot encode the turn: %s\n", error->message);
      g_clear_error (&error);
      rc = 1;
      break;
    }
    const float *logits = n_ids ? feed (ctx, sampler, ids, n_ids, &error) : NULL;
    n_prompt += (int) n_ids;
    g_free (ids);
    turn++;
    if (n_ids && !logits) {
      g_printerr ("levrun: %s\n", error->message);
      g_clear_error (&error);
      rc = 1;
      break;
    }
    if (!logits)
      continue;

    /* the answer; its leading white space is not shown */
    int32_t prev = -1;
    gboolean lead = TRUE;
    for (int k = 0; k < n_predict; k++) {
      int32_t next = lev_sampler_sample (sampler, logits);
      if (!opt_ignore_eos && (next == hp->eos_id || next == hp->bos_id || lev_tokenizer_is_control (tok, next)))
        break;
      n_gen++;
      g_string_truncate (piece, 0);
      lev_tokenizer_decode_token (tok, prev, next, piece);
      const char *p = piece->str;
      if (lead) {
        while (*p == ' ' || *p == '\n')
          p++;
        lead = *p == '\0';
      }
      text_out_push (&text, p, strlen (p), FALSE);
      prev = next;
      if (!(logits = feed (ctx, sampler, &next, 1, &error))) {
        g_printerr ("levrun: %s\n", error->message);
        g_clear_error (&error);
        rc = 1;
        break;
      }
    }
    text_out_push (&text, "", 0, TRUE);
    printf ("\n");
    fflush (stdout);
    if (rc)
      break;
  }
  if (!opt_quiet)
    g_printerr ("levrun: %d turns, %d prompt tokens, %d generated tokens in %.3f s\n", turn, n_prompt, n_gen,
                (g_get_monotonic_time () - t_start) / 1e6);
  g_string_free (text.pending, TRUE);
  g_string_free (piece, TRUE);
  g_string_free (line, TRUE);
  g_io_channel_unref (in);
  g_free (bos_text);
  g_free (system);
  lev_sampler_free (sampler);
  lev_context_free (ctx);
  return rc;
}

int
main (int argc, char **argv)
{
  setlocale (LC_ALL, "");
  octx = g_option_context_new ("- run a .leviathan model");
  g_option_context_add_main_entries (octx, entries, NULL);
  GError *error = NULL;
  if (!g_option_context_parse (octx, &argc, &argv, &error)) {
    int rc = usage_error ("%s", error->message);
    g_error_free (error);
    return rc;
  }
  if (argc > 1)
    return usage_error ("unexpected argument '%s'", argv[1]);
  if (!opt_model && !(opt_model = default_model_path ()))
    return usage_error ("no -m MODEL given and no default model found (set LEV_MODEL or install one)");
  if ((opt_prompt != NULL) + (opt_prompt_file != NULL) + (opt_ids != NULL) > 1)
    return usage_error ("give only one of -p, -f and --ids");
  LevChatTemplate chat_tmpl = LEV_CHAT_NONE;
  if (opt_chat && (opt_prompt || opt_prompt_file || opt_ids || opt_tokenize || opt_logits_out || opt_print_ids))
    return usage_error ("--chat reads the conversation from stdin: it takes no -p, -f, --ids, --tokenize, "
                        "--logits-out or --print-ids");
  if (!opt_chat && (opt_system || opt_chat_template))
    return usage_error ("--system and --chat-template need --chat");
  if (opt_chat_template && !lev_chat_template_from_name (opt_chat_template, &chat_tmpl))
    return usage_error ("unknown chat template '%s' (none, llama2, llama3, chatml, zephyr, bitnet)",
                        opt_chat_template);
  if (opt_tokenize && opt_ids)
    return usage_error ("--tokenize needs a text prompt, not --ids");
  if (opt_logits_out && !opt_ids)
    return usage_error ("--logits-out needs --ids");
  if (opt_temp < 0 || opt_top_p <= 0 || opt_top_p > 1 || opt_min_p < 0 || opt_min_p > 1 || opt_top_k < 0
      || opt_repeat_penalty <= 0 || opt_repeat_last_n < 0 || opt_threads < 0 || opt_threads > 64 || opt_ctx < 0
      || opt_sink < 0 || opt_n_predict < -1)
    return usage_error ("a sampling, thread or context value is out of range");
  int n_predict = opt_n_predict >= 0 ? opt_n_predict : (opt_logits_out ? 0 : 64);

  LevModel *model = lev_model_load_with_adapter (opt_model, opt_adapter, &error);
  if (!model) {
    g_printerr ("levrun: %s\n", error->message);
    g_error_free (error);
    return 1;
  }
  const LevTokenizer *tok = lev_model_tokenizer (model);
  int rc = 0;
  GArray *ids = g_array_new (FALSE, FALSE, sizeof (gint32));
  gchar *prompt = NULL;
  if (opt_chat) {
    if (!opt_chat_template)
      chat_tmpl = lev_chat_template_detect (lev_model_chat_template (model));
    rc = chat_main (model, tok, chat_tmpl, opt_n_predict >= 0 ? opt_n_predict : 512);
    goto out;
  }
  if (opt_prompt_file) {
    if (!g_file_get_contents (opt_prompt_file, &prompt, NULL, &error)) {
      g_printerr ("levrun: %s\n", error->message);
      g_clear_error (&error);
      rc = 1;
      goto out;
    }
  } else {
    prompt = g_strdup (opt_prompt ? opt_prompt : "");
  }

  if (opt_ids) {
    if (!parse_ids (opt_ids, ids)) {
      rc = usage_error ("--ids must be a list of non-negative integers");
      goto out;
    }
  } else {
    if (!tok) {
      g_printerr ("levrun: %s has no tokenizer; use --ids\n", opt_model);
      rc = 1;
      goto out;
    }
    gboolean add_bos = opt_tokenize ? opt_bos : (lev_tokenizer_adds_bos (tok) && !opt_no_bos) || opt_bos;
    size_t n = 0;
    gint32 *enc = lev_tokenizer_encode (tok, prompt, -1, add_bos, &n, &error);
    if (!enc) {
      g_printerr ("levrun: cannot encode the prompt: %s\n", error->message);
      g_clear_error (&error);
      rc = 1;
      goto out;
    }
    g_array_append_vals (ids, enc, (guint) n);
    g_free (enc);
  }
  if (opt_tokenize) {
    for (guint i = 0; i < ids->len; i++)
      printf ("%s%d", i ? " " : "", g_array_index (ids, gint32, i));
    printf ("\n");
    goto out;
  }
  if (ids->len == 0) {
    /* an empty prompt without BOS: start from BOS when there is one */
    gint32 bos = lev_model_hparams (model)->bos_id;
    if (bos < 0) {
      g_printerr ("levrun: the prompt is empty and the model has no BOS token to start from\n");
      rc = 1;
      goto out;
    }
    g_array_append_val (ids, bos);
  }

  LevContextParams cp = lev_context_default_params ();
  cp.n_ctx = (uint32_t) opt_ctx;
  cp.n_sink = (uint32_t) opt_sink;
  cp.n_threads = (uint32_t) opt_threads;
  cp.act_quant = opt_no_act_quant ? LEV_ACT_QUANT_OFF : LEV_ACT_QUANT_AUTO;
  LevContext *ctx = lev_context_new (model, &cp, &error);
  if (!ctx) {
    g_printerr ("levrun: %s\n", error->message);
    g_clear_error (&error);
    rc = 1;
    goto out;
  }
  const LevHParams *hp = lev_model_hparams (model);
  LevSamplerParams sp = lev_sampler_default_params ();
  sp.temperature = (float) opt_temp;
  sp.top_k = opt_top_k;
  sp.top_p = (float) opt_top_p;
  sp.min_p = (float) opt_min_p;
  sp.repeat_penalty = (float) opt_repeat_penalty;
  sp.repeat_last_n = (uint32_t) opt_repeat_last_n;
  sp.seed = opt_seed >= 0 ? (uint64_t) opt_seed : (uint64_t) g_get_real_time ();
  LevSampler *sampler = lev_sampler_new (&sp, hp->vocab_size);

  FILE *logits_file = NULL;
  if (opt_logits_out && !(logits_file = fopen (opt_logits_out, "wb"))) {
    g_printerr ("levrun: cannot write %s: %s\n", opt_logits_out, g_strerror (errno));
    rc = 1;
    goto done;
  }

  /* prompt */
  gint64 t0 = g_get_monotonic_time ();
  const float *logits = NULL;
  for (guint i = 0; i < ids->len; i++) {
    gint32 id = g_array_index (ids, gint32, i);
    logits = lev_context_eval (ctx, id, &error);
    if (!logits) {
      g_printerr ("levrun: %s\n", error->message);
      g_clear_error (&error);
      rc = 1;
      goto done;
    }
    lev_sampler_accept (sampler, id);
    if (logits_file && fwrite (logits, sizeof (float), hp->vocab_size, logits_file) != hp->vocab_size) {
      g_printerr ("levrun: cannot write %s: %s\n", opt_logits_out, g_strerror (errno));
      rc = 1;
      goto done;
    }
  }
  gint64 t1 = g_get_monotonic_time ();

  /* generation */
  TextOut text = { g_string_new (NULL) };
  GString *piece = g_string_new (NULL);
  if (opt_print_ids) {
    for (guint i = 0; i < ids->len; i++)
      printf ("%s%d", i ? " " : "", g_array_index (ids, gint32, i));
    fflush (stdout);
  } else if (tok && !opt_ids) {
    text_out_push (&text, prompt, strlen (prompt), FALSE);
  }
  gint32 prev = g_array_index (ids, gint32, ids->len - 1);
  int n_gen = 0;
  for (; n_gen < n_predict; n_gen++) {
    gint32 next = lev_sampler_sample (sampler, logits);
    if (opt_print_ids) {
      printf (" %d", next);
      fflush (stdout);
    }
    if (!opt_ignore_eos && (next == hp->eos_id || next == hp->bos_id)) {
      n_gen++;
      break;
    }
    if (!opt_print_ids && tok) {
      g_string_truncate (piece, 0);
      lev_tokenizer_decode_token (tok, prev, next, piece);
      text_out_push (&text, piece->str, piece->len, FALSE);
    }
    lev_sampler_accept (sampler, next);
    prev = next;
    if (n_gen + 1 < n_predict && !(logits = lev_context_eval (ctx, next, &error))) {
      g_printerr ("levrun: %s\n", error->message);
      g_clear_error (&error);
      rc = 1;
      break;
    }
  }
  text_out_push (&text, "", 0, TRUE);
  printf ("\n");
  gint64 t2 = g_get_monotonic_time ();
  if (!opt_quiet)
    g_printerr ("levrun: prompt %u tokens in %.3f s (%.1f t/s), generated %d tokens in %.3f s (%.1f t/s)\n",
                ids->len, (t1 - t0) / 1e6, ids->len / MAX ((t1 - t0) / 1e6, 1e-9), n_gen, (t2 - t1) / 1e6,
                n_gen / MAX ((t2 - t1) / 1e6, 1e-9));
  g_string_free (piece, TRUE);
  g_string_free (text.pending, TRUE);

done:
  if (logits_file && fclose (logits_file) != 0 && rc == 0) {
    g_printerr ("levrun: cannot write %s\n", opt_logits_out);
    rc = 1;
  }
  lev_sampler_free (sampler);
  lev_context_free (ctx);
out:
  g_free (prompt);
  g_array_free (ids, TRUE);
  lev_model_free (model);
  g_option_context_free (octx);
  return rc;
}
