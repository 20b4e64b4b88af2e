/* levppl.c: perplexity of a model over a text file (sliding windows), and its KL divergence and top-1 agreement
 * against a base (float) model over the same tokens. */
#include "lev_model.h"
#include "lev_source.h"
#include "lev_version.h"
#include "lev_tool_text.h"

#include <errno.h>
#include <fcntl.h>
#include <json-glib/json-glib.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The largest text levppl scores: what it reads is bounded (a device such as /dev/zero is refused anyway). */
#define LEVPPL_MAX_TEXT_BYTES (1024u * 1024u * 1024u)

static gchar *opt_model = NULL;
static gchar *opt_convert_format = NULL;
static gchar *opt_base = NULL;
static gchar *opt_adapter = NULL;
static gchar *opt_file = NULL;
static gint opt_ctx = 256;
static gint opt_stride = 0;
static gint opt_threads = 0;
static gint opt_max_tokens = 0;
static gboolean opt_json = FALSE;
static gboolean opt_lines = FALSE;
static gboolean opt_no_act_quant = FALSE;
static gboolean opt_no_mmap = FALSE;
static gboolean opt_check_tensors = FALSE;

/* Prints the program's name and version (--version) and exits. */
static gboolean
print_version (const gchar *name, const gchar *value, gpointer data, GError **error)
{
  printf ("levppl (Leviathan) %s\n", LEV_PROJECT_VERSION);
  exit (0);
}

static GOptionEntry entries[] = {
  { "model", 'm', 0, G_OPTION_ARG_FILENAME, &opt_model,
    "Model to evaluate: a .leviathan file, a GGUF file, a Hugging Face checkpoint directory or "
    "hf:ORG/NAME[@REVISION][:FILE] (converted once into $XDG_CACHE_HOME/leviathan/models)", "MODEL" },
  { "convert-format", 0, 0, G_OPTION_ARG_STRING, &opt_convert_format,
    "Conversion format of a model that is not a .leviathan file: auto (default, or $LEV_CONVERT_FORMAT: ternary "
    "matrices packed to t2 without loss, the others kept), or levconvert's f32, f16, bf16, q8, q4, t2, t1, b1", "FMT" },
  { "adapter", 0, 0, G_OPTION_ARG_FILENAME, &opt_adapter, "Adapter file mounted over the model", "FILE" },
  { "file", 'f', 0, G_OPTION_ARG_FILENAME, &opt_file, "UTF-8 text to score", "FILE" },
  { "base", 'b', 0, G_OPTION_ARG_FILENAME, &opt_base,
    "Reference model (e.g. the float model, run as its file says) for KL divergence and top-1 agreement; same "
    "tokenizer", "FILE" },
  { "ctx", 'c', 0, G_OPTION_ARG_INT, &opt_ctx, "Window length in tokens, BOS included (default 256)", "N" },
  { "stride", 0, 0, G_OPTION_ARG_INT, &opt_stride, "Tokens a window advances; each token is scored once, with at "
    "least ctx - stride tokens of history after the first window (default ctx / 2)", "N" },
  { "max-tokens", 0, 0, G_OPTION_ARG_INT, &opt_max_tokens, "Score at most N tokens of the text (0 = all)", "N" },
  { "threads", 't', 0, G_OPTION_ARG_INT, &opt_threads, "Threads (default: all CPUs)", "N" },
  { "no-act-quant", 0, 0, G_OPTION_ARG_NONE, &opt_no_act_quant, "Float activations in the evaluated model", NULL },
  { "lines", 0, 0, G_OPTION_ARG_NONE, &opt_lines,
    "Each non-empty line is a text that ends with EOS (as the default model was trained) instead of raw text", NULL },
  { "json", 0, 0, G_OPTION_ARG_NONE, &opt_json, "Print one JSON object", NULL },
  { "no-mmap", 0, 0, G_OPTION_ARG_NONE, &opt_no_mmap, "Read the models into memory instead of mapping them (a "
    "mapped file truncated by another process kills levppl with SIGBUS)", NULL },
  { "check-tensors", 0, 0, G_OPTION_ARG_NONE, &opt_check_tensors, "Scan every weight at load and refuse a model "
    "holding NaN or infinity", NULL },
  { "version", 0, G_OPTION_FLAG_NO_ARG, G_OPTION_ARG_CALLBACK, (gpointer) print_version, "Print the version and exit",
    NULL },
  { NULL }
};

/* Returns log-softmax of logits at id, and fills probs (when not NULL) with the softmax. */
static double
log_prob (const float *logits, uint32_t n, int32_t id, double *probs)
{
  float maxv = logits[0];
  for (uint32_t i = 1; i < n; i++)
    maxv = fmaxf (maxv, logits[i]);
  double z = 0.0;
  for (uint32_t i = 0; i < n; i++) {
    double e = exp ((double) logits[i] - maxv);
    if (probs)
      probs[i] = e;
    z += e;
  }
  if (probs)
    for (uint32_t i = 0; i < n; i++)
      probs[i] /= z;
  return (double) logits[id] - maxv - log (z);
}

static uint32_t
argmax (const float *v, uint32_t n)
{
  uint32_t b = 0;
  for (uint32_t i = 1; i < n; i++)
    if (v[i] > v[b])
      b = i;
  return b;
}

/* Bits per weight of the block matrices (attention and feed-forward; not the embedding or head): every byte their
 * products read (codes and scales), times 8, per weight. */
static double
bits_per_weight (const LevModel *m)
{
  uint64_t bytes = 0, weights = 0;
  for (uint32_t l = 0; l < m->hp.n_layers; l++) {
    const LevLayer *L = &m->layers[l];
    const LevMatrix *ms[] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down };
    for (guint i = 0; i < G_N_ELEMENTS (ms); i++) {
      bytes += lev_matrix_bytes (ms[i]);
      weights += (uint64_t) ms[i]->rows * ms[i]->cols;
    }
  }
  return weights ? 8.0 * (double) bytes / (double) weights : 0.0;
}

/* Checks the numeric options and the required ones; NULL when they are fine, else a message saying which is not. */
static const char *
check_options (int argc)
{
  if (!opt_model)
    return "missing -m MODEL";
  if (opt_convert_format && !lev_source_format_valid (opt_convert_format))
    return "unknown --convert-format (auto, f32, f16, bf16, q8, q4, t2, t1, b1)";
  if (!opt_file)
    return "missing -f TEXT";
  if (argc > 1)
    return "unexpected arguments (levppl takes no positional arguments)";
  if (opt_ctx < 2)
    return "--ctx must be at least 2";
  if (opt_stride < 0 || opt_stride >= opt_ctx)
    return "--stride must be between 0 (ctx / 2) and ctx - 1";
  static char threads_msg[64];
  g_snprintf (threads_msg, sizeof threads_msg, "--threads must be between 0 (all CPUs) and %u", LEV_MAX_THREADS);
  if (opt_threads < 0 || opt_threads > (gint) LEV_MAX_THREADS)
    return threads_msg;
  if (opt_max_tokens < 0)
    return "--max-tokens must be 0 (all) or positive";
  return NULL;
}

/* Prints the result as one JSON object (json-glib's generator: strings escaped); the figures are finite. */
static void
print_json (guint64 scored, int stride, double ppl, double bpw, gboolean with_base, double base_ppl, double kld,
            double top1, double secs)
{
  JsonBuilder *b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "model");
  json_builder_add_string_value (b, opt_model);
  json_builder_set_member_name (b, "file");
  json_builder_add_string_value (b, opt_file);
  json_builder_set_member_name (b, "lines");
  json_builder_add_boolean_value (b, opt_lines);
  json_builder_set_member_name (b, "tokens");
  json_builder_add_int_value (b, (gint64) scored);
  json_builder_set_member_name (b, "ctx");
  json_builder_add_int_value (b, opt_ctx);
  json_builder_set_member_name (b, "stride");
  json_builder_add_int_value (b, stride);
  json_builder_set_member_name (b, "ppl");
  json_builder_add_double_value (b, ppl);
  json_builder_set_member_name (b, "bits_per_weight");
  json_builder_add_double_value (b, bpw);
  if (with_base) {
    json_builder_set_member_name (b, "base");
    json_builder_add_string_value (b, opt_base);
    json_builder_set_member_name (b, "base_ppl");
    json_builder_add_double_value (b, base_ppl);
    json_builder_set_member_name (b, "kld");
    json_builder_add_double_value (b, kld);
    json_builder_set_member_name (b, "top1");
    json_builder_add_double_value (b, top1);
  }
  json_builder_set_member_name (b, "seconds");
  json_builder_add_double_value (b, secs);
  json_builder_end_object (b);
  JsonNode *root = json_builder_get_root (b);
  gchar *s = json_to_string (root, FALSE);
  printf ("%s\n", s);
  g_free (s);
  json_node_unref (root);
  g_object_unref (b);
}

/* Token ids of the text (len bytes, NUL bytes included): the whole text, or with --lines each non-empty line followed
 * by EOS (when the model has
 * one); NULL with error set when the tokenizer refuses it. */
static int32_t *
tokenize_text (const LevTokenizer *tok, const gchar *text, gsize len, int32_t eos_id, size_t *n_ids, GError **error)
{
  if (!opt_lines)
    return lev_tokenizer_encode (tok, text, (gssize) len, FALSE, n_ids, error);
  GArray *all = g_array_new (FALSE, FALSE, sizeof (int32_t));
  /* lines end at '\n' only; a NUL byte is a character of its line, not its end */
  for (const gchar *l = text, *end = text + len; l < end;) {
    const gchar *nl = memchr (l, '\n', (size_t) (end - l));
    gsize n_bytes = (gsize) ((nl ? nl : end) - l);
    if (n_bytes > 0) {
      size_t n = 0;
      int32_t *li = lev_tokenizer_encode (tok, l, (gssize) n_bytes, FALSE, &n, error);
      if (!li) {
        g_array_free (all, TRUE);
        return NULL;
      }
      g_array_append_vals (all, li, (guint) n);
      g_free (li);
      if (eos_id >= 0)
        g_array_append_val (all, eos_id);
    }
    l += n_bytes + 1;
  }
  *n_ids = all->len;
  return (int32_t *) g_array_free (all, FALSE);
}

/* Sums over the scored tokens: negative log-likelihoods of the model and the base, KL(base || model), top-1
 * agreements. */
typedef struct {
  double nll, base_nll, kld;
  uint64_t scored, top1;
} Scores;

/* Scores every token of ids once, in windows of --ctx tokens after a BOS that advance by stride (the base context,
 * when given, alongside); p and q are vocab-sized scratch. FALSE with error set when an evaluation fails. */
static gboolean
score_windows (LevContext *ctx, LevContext *bctx, const int32_t *ids, size_t n_ids, int32_t bos, uint32_t vocab,
               int stride, double *p, double *q, Scores *sc, GError **error)
{
  /* window w covers text tokens [start, start + ctx - 1) after a BOS; it scores those not scored before */
  size_t next_unscored = 0;
  for (size_t start = 0; next_unscored < n_ids; start += (size_t) stride) {
    size_t end = MIN (start + (size_t) opt_ctx - 1, n_ids);
    lev_context_reset (ctx);
    if (bctx)
      lev_context_reset (bctx);
    const float *lg = lev_context_eval (ctx, bos, error), *blg = bctx ? lev_context_eval (bctx, bos, error) : NULL;
    if (!lg || (bctx && !blg))
      return FALSE;
    for (size_t i = start; i < end; i++) {
      if (i >= next_unscored) {
        sc->nll -= log_prob (lg, vocab, ids[i], bctx ? p : NULL);
        if (bctx) {
          sc->base_nll -= log_prob (blg, vocab, ids[i], q);
          double k = 0.0;
          for (uint32_t v = 0; v < vocab; v++)
            if (q[v] > 0.0)
              k += q[v] * (log (q[v]) - log (MAX (p[v], 1e-300)));
          sc->kld += k;
          sc->top1 += argmax (lg, vocab) == argmax (blg, vocab);
        }
        sc->scored++;
        next_unscored = i + 1;
      }
      if (i + 1 < end) {
        if (!(lg = lev_context_eval (ctx, ids[i], error)) || (bctx && !(blg = lev_context_eval (bctx, ids[i], error))))
          return FALSE;
      }
    }
    if (!opt_json && isatty (2))
      g_printerr ("\rlevppl: %" G_GUINT64_FORMAT " / %zu tokens, ppl %.4f", sc->scored, n_ids,
                  exp (sc->nll / sc->scored));
    if (end == n_ids)
      break;
  }
  return TRUE;
}

static LevContext *
open_context (LevModel *m, gboolean act_quant_off, GError **error)
{
  LevContextParams p = lev_context_default_params ();
  p.n_ctx = (uint32_t) opt_ctx;
  p.n_threads = (uint32_t) opt_threads;
  p.act_quant = act_quant_off ? LEV_ACT_QUANT_OFF : LEV_ACT_QUANT_AUTO;
  return lev_context_new (m, &p, error);
}

int
main (int argc, char **argv)
{
  setlocale (LC_ALL, "");
  GOptionContext *octx = g_option_context_new ("- perplexity, KL divergence and top-1 agreement over a text");
  g_option_context_add_main_entries (octx, entries, NULL);
  GError *error = NULL;
  const char *bad = NULL;
  if (!g_option_context_parse (octx, &argc, &argv, &error) || (bad = check_options (argc)) != NULL) {
    g_printerr ("levppl: %s (see levppl --help)\n", error ? error->message : bad);
    g_clear_error (&error);
    g_option_context_free (octx);
    return 2;
  }
  g_option_context_free (octx);
  int stride = opt_stride ? opt_stride : opt_ctx / 2;
  int rc = 1;
  LevModel *model = NULL, *base = NULL;
  LevContext *ctx = NULL, *bctx = NULL;
  gchar *text = NULL;
  int32_t *ids = NULL;
  double *p = NULL, *q = NULL;

  LevModelParams mp = { 0 }, bp = { 0 };
  mp.flags = bp.flags = (opt_no_mmap ? LEV_MODEL_NO_MMAP : 0u) | (opt_check_tensors ? LEV_MODEL_CHECK_TENSORS : 0u);
  mp.adapter_path = opt_adapter;
  LevSourceOptions so = { 0 };
  so.progress = lev_source_terminal_progress;
  so.progress_data = (gpointer) "levppl";
  so.format = opt_convert_format;
  gchar *model_path = lev_source_resolve (opt_model, &so, &error);
  gchar *base_path = model_path && opt_base ? lev_source_resolve (opt_base, &so, &error) : NULL;
  if (model_path && (!opt_base || base_path)) {
    model = lev_model_load_full (model_path, &mp, &error);
    if (model && opt_base)
      base = lev_model_load_full (base_path, &bp, &error);
  }
  g_free (model_path);
  g_free (base_path);
  if (!model || (opt_base && !base))
    goto out;
  const LevHParams *hp = lev_model_hparams (model);
  const LevTokenizer *tok = lev_model_tokenizer (model);
  if (!tok) {
    g_set_error (&error, LEV_ERROR, LEV_ERROR_FORMAT, "%s has no tokenizer", opt_model);
    goto out;
  }
  if (base && lev_model_vocab_size (base) != hp->vocab_size) {
    g_set_error (&error, LEV_ERROR, LEV_ERROR_ARGUMENT, "the base model's vocabulary (%u) differs from the model's "
                 "(%u)", lev_model_vocab_size (base), hp->vocab_size);
    goto out;
  }
  gsize len;
  if (!lev_tool_read_text_file (opt_file, LEVPPL_MAX_TEXT_BYTES, ": score a part of it", &text, &len, &error))
    goto out;
  size_t n_ids = 0;
  if (!(ids = tokenize_text (tok, text, len, hp->eos_id, &n_ids, &error)))
    goto out;
  if (opt_max_tokens && n_ids > (size_t) opt_max_tokens)
    n_ids = (size_t) opt_max_tokens;
  if (n_ids < 2) {
    g_set_error (&error, LEV_ERROR, LEV_ERROR_ARGUMENT, "%s holds fewer than 2 tokens", opt_file);
    goto out;
  }
  int32_t bos = hp->bos_id >= 0 ? hp->bos_id : ids[0];
  if (!(ctx = open_context (model, opt_no_act_quant, &error)) || (base && !(bctx = open_context (base, FALSE,
                                                                                                   &error))))
    goto out;
  p = g_new (double, hp->vocab_size);
  q = g_new (double, hp->vocab_size);

  Scores sc = { 0 };
  gint64 t0 = g_get_monotonic_time ();
  if (!score_windows (ctx, bctx, ids, n_ids, bos, hp->vocab_size, stride, p, q, &sc, &error))
    goto out;
  double secs = (g_get_monotonic_time () - t0) / 1e6;
  double ppl = exp (sc.nll / sc.scored);
  /* the engine refuses non-finite logits; a figure that still is not finite (an overflow in the sums) is an error,
   * not a "nan" in the report */
  if (!isfinite (ppl) || (base && (!isfinite (sc.base_nll) || !isfinite (sc.kld)))) {
    g_set_error (&error, LEV_ERROR, LEV_ERROR_NUMERIC, "the perplexity or KL divergence is not a finite number");
    goto out;
  }
  if (opt_json) {
    print_json (sc.scored, stride, ppl, bits_per_weight (model), base != NULL, exp (sc.base_nll / sc.scored),
                sc.kld / sc.scored, (double) sc.top1 / sc.scored, secs);
  } else {
    if (isatty (2))
      g_printerr ("\n");
    printf ("tokens scored     %" G_GUINT64_FORMAT " (window %d, stride %d)\n", sc.scored, opt_ctx, stride);
    printf ("perplexity        %.4f\n", ppl);
    printf ("bits per weight   %.3f\n", bits_per_weight (model));
    if (base) {
      printf ("base perplexity   %.4f\n", exp (sc.base_nll / sc.scored));
      printf ("mean KL(base||m)  %.6f nats\n", sc.kld / sc.scored);
      printf ("top-1 agreement   %.2f%%\n", 100.0 * sc.top1 / sc.scored);
    }
    printf ("time              %.1f s\n", secs);
  }
  rc = 0;

out:
  if (error)
    g_printerr ("levppl: %s\n", error->message);
  g_clear_error (&error);
  g_free (p);
  g_free (q);
  g_free (ids);
  g_free (text);
  lev_context_free (bctx);
  lev_context_free (ctx);
  lev_model_free (base);
  lev_model_free (model);
  return rc;
}
