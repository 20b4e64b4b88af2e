/* test_tokenizer.c: SentencePiece-BPE tokenizer and vocabulary importers against reference ids and corrupt inputs. */
#include <json-glib/json-glib.h>
#include <glib/gstdio.h>

#include "lev_convert.h"
#include "lev_tokenizer.h"
#include "lev_test_vectors.h"
#include "lev_test_tokenizer.h"

/* ---------------------------------------------------------------- helpers */

/* Imports a fixture tokenizer (.model or .bin, detected by content) and builds a tokenizer over it. */
static LevTestTok *
tok_load (const char *relpath)
{
  return lev_test_tok_from_vocab (lev_test_import_vocab (relpath));
}

/* Writes a scratch file without the fsync of g_file_set_contents: the truncation tests write thousands. */
static gboolean
write_quick (const char *path, const void *data, gsize len)
{
  return g_file_set_contents_full (path, (const gchar *) data, (gssize) len, G_FILE_SET_CONTENTS_NONE, 0644, NULL);
}

/* ---------------------------------------------------------------- llama.cpp vectors */

/* llama.cpp's llama-spm vectors (HF LlamaTokenizer, legacy, add_special_tokens=False, Llama 2's tokenizer.model).
 * For these 46 texts the HF tokenizer and the SentencePiece library give the same ids (checked by hand with
 * python3-sentencepiece 0.1.97): the HF "legacy" behaviour differs from SentencePiece only for special tokens
 * written in the text, which none of these texts contain. So plain SentencePiece semantics reproduce them. */
static void
test_llamacpp_spm (void)
{
  LevTestTok *t = tok_load ("tokenizers/llama2/tokenizer.model");
  gchar *inp = lev_test_read_fixture ("tokenizers/vectors-llamacpp/ggml-vocab-llama-spm.gguf.inp", NULL);
  gchar *out = lev_test_read_fixture ("tokenizers/vectors-llamacpp/ggml-vocab-llama-spm.gguf.out", NULL);
  gchar **texts = g_strsplit (inp, "\n__ggml_vocab_test__\n", -1);
  gchar **lines = g_strsplit (out, "\n", -1);
  guint n_texts = g_strv_length (texts);
  g_assert_cmpuint (n_texts, ==, 47);     /* 46 texts, each followed by the separator */
  g_assert_cmpstr (texts[46], ==, "");
  g_assert_cmpuint (g_strv_length (lines), >=, 46);
  guint pass = 0;
  for (guint i = 0; i < 46; i++) {
    gchar **nums = g_strsplit_set (lines[i], " ", -1);
    GArray *want = g_array_new (FALSE, FALSE, sizeof (int32_t));
    for (gchar **p = nums; *p; p++)
      if (**p) {
        int32_t v = (int32_t) g_ascii_strtoll (*p, NULL, 10);
        g_array_append_val (want, v);
      }
    size_t n;
    int32_t *ids = lev_test_encode (t->tok, texts[i], -1, FALSE, &n);
    if (ids_equal ((int32_t *) want->data, want->len, ids, n))
      pass++;
    else
      report_mismatch ("llama-spm", texts[i], (int32_t *) want->data, want->len, ids, n);
    /* Llama 2 has byte fallback and keeps every space: decoding gives the text back exactly. */
    gchar *dec = lev_tokenizer_decode (t->tok, ids, n);
    g_assert_cmpstr (dec, ==, texts[i]);
    g_free (dec);
    g_free (ids);
    g_array_unref (want);
    g_strfreev (nums);
  }
  g_test_message ("llama-spm vectors: %u/46 exact", pass);
  fprintf (stderr, "llama-spm vectors: %u/46 exact\n", pass);
  g_assert_cmpuint (pass, ==, 46);
  g_strfreev (texts);
  g_strfreev (lines);
  g_free (inp);
  g_free (out);
  lev_test_tok_free (t);
}

/* ---------------------------------------------------------------- vectors-extra */

/* vectors-extra/<name>.json: made with the SentencePiece library (sp.encode(text), no BOS/EOS). Checks ids, pieces
 * and the reference decoding. decode(encode(text)) == text holds wherever the tokenizer keeps every space (Llama 2);
 * tok512's normalizer strips and collapses spaces, so there it must give the normalized text, which is the
 * reference "decoded" field (for example "   leading and trailing   " -> "leading and trailing"). */
static void
check_vectors_extra (const char *relpath)
{
  JsonNode *root = parse_json_fixture (relpath);
  JsonObject *o = json_node_get_object (root);
  const char *produced = json_object_get_string_member (o, "produced_with");
  const char *call = json_object_get_string_member (o, "call");
  const char *file = json_object_get_string_member (o, "tokenizer_file");
  g_assert_nonnull (strstr (produced, "SentencePiece"));
  g_assert_nonnull (strstr (call, "no BOS/EOS"));   /* so encode without BOS */
  g_assert_true (g_str_has_prefix (file, "shared/fixtures/"));
  LevTestTok *t = tok_load (file + strlen ("shared/fixtures/"));
  gboolean lossless = (t->vocab->flags & LEV_TOKF_REMOVE_EXTRA_WS) == 0;

  JsonArray *cases = json_object_get_array_member (o, "cases");
  guint n_cases = json_array_get_length (cases), pass = 0, roundtrip_text = 0;
  g_assert_cmpuint (n_cases, >, 0);
  for (guint i = 0; i < n_cases; i++) {
    JsonObject *c = json_array_get_object_element (cases, i);
    const char *text = json_object_get_string_member (c, "text");
    const char *decoded_ref = json_object_get_string_member (c, "decoded");
    size_t nw, n;
    int32_t *want = json_ids (json_object_get_array_member (c, "ids"), &nw);
    int32_t *ids = lev_test_encode (t->tok, text, -1, FALSE, &n);
    if (ids_equal (want, nw, ids, n))
      pass++;
    else
      report_mismatch (relpath, text, want, nw, ids, n);
    JsonArray *pieces = json_object_get_array_member (c, "pieces");
    g_assert_cmpuint (json_array_get_length (pieces), ==, nw);
    for (size_t k = 0; k < nw; k++) {
      size_t plen;
      const char *p = lev_tokenizer_piece (t->tok, want[k], &plen);
      const char *ref = json_array_get_string_element (pieces, (guint) k);
      /* The reference prints byte pieces that are not UTF-8 as U+FFFD; compare the others. */
      if (strstr (ref, "\xef\xbf\xbd") == NULL) {
        gchar *mine = g_strndup (p, plen);
        g_assert_cmpstr (mine, ==, ref);
        g_free (mine);
      }
    }
    gchar *dec = lev_tokenizer_decode (t->tok, ids, n);
    g_assert_cmpstr (dec, ==, decoded_ref);
    if (lossless)
      g_assert_cmpstr (dec, ==, text);
    if (strcmp (dec, text) == 0)
      roundtrip_text++;
    g_free (dec);
    g_free (ids);
    g_free (want);
  }
  fprintf (stderr, "%s: %u/%u ids exact, decode(encode(text)) == text for %u\n", relpath, pass, n_cases,
           roundtrip_text);
  g_assert_cmpuint (pass, ==, n_cases);
  lev_test_tok_free (t);
  json_node_unref (root);
}

static void
test_extra_llama2 (void)
{
  check_vectors_extra ("tokenizers/vectors-extra/llama2-spm.json");
}

static void
test_extra_tok512 (void)
{
  check_vectors_extra ("tokenizers/vectors-extra/tok512-spm.json");
}

/* ---------------------------------------------------------------- tokenizer.bin vs tokenizer.model */

static void
check_bin_matches_model (const char *bin, const char *model)
{
  LevTestTok *b = tok_load (bin), *m = tok_load (model);
  g_assert_cmpuint (b->vocab->pieces->len, ==, m->vocab->pieces->len);
  for (guint i = 0; i < b->vocab->pieces->len; i++) {
    guint32 lb = g_array_index (b->vocab->piece_lens, guint32, i);
    guint32 lm = g_array_index (m->vocab->piece_lens, guint32, i);
    g_assert_cmpuint (lb, ==, lm);
    g_assert_cmpmem (g_ptr_array_index (b->vocab->pieces, i), lb, g_ptr_array_index (m->vocab->pieces, i), lm);
    float sb = g_array_index (b->vocab->scores, float, i), sm = g_array_index (m->vocab->scores, float, i);
    g_assert_cmpmem (&sb, sizeof sb, &sm, sizeof sm);
    g_assert_cmpuint (b->vocab->types->data[i], ==, m->vocab->types->data[i]);
  }
  g_assert_cmpint (b->vocab->bos_id, ==, m->vocab->bos_id);
  g_assert_cmpint (b->vocab->eos_id, ==, m->vocab->eos_id);
  g_assert_cmpint (b->vocab->unk_id, ==, m->vocab->unk_id);
  /* run.c semantics: dummy prefix, escaped spaces, byte fallback, BOS; no whitespace collapsing. */
  g_assert_cmphex (b->vocab->flags, ==,
                   LEV_TOKF_ADD_DUMMY_PREFIX | LEV_TOKF_ESCAPE_WS | LEV_TOKF_BYTE_FALLBACK | LEV_TOKF_ADD_BOS);
  lev_test_tok_free (b);
  lev_test_tok_free (m);
}

static void
test_bin_llama2 (void)
{
  check_bin_matches_model ("tokenizers/llama2/tokenizer.bin", "tokenizers/llama2/tokenizer.model");
  /* Llama 2's normalizer keeps spaces, so its .model has the same flags as the .bin. */
  LevTestTok *m = tok_load ("tokenizers/llama2/tokenizer.model");
  g_assert_cmphex (m->vocab->flags, ==,
                   LEV_TOKF_ADD_DUMMY_PREFIX | LEV_TOKF_ESCAPE_WS | LEV_TOKF_BYTE_FALLBACK | LEV_TOKF_ADD_BOS);
  lev_test_tok_free (m);
}

static void
test_bin_tok512 (void)
{
  check_bin_matches_model ("stories260K/tok512.bin", "stories260K/tok512.model");
  LevTestTok *m = tok_load ("stories260K/tok512.model");
  g_assert_cmphex (m->vocab->flags, ==,
                   LEV_TOKF_ADD_DUMMY_PREFIX | LEV_TOKF_REMOVE_EXTRA_WS | LEV_TOKF_ESCAPE_WS | LEV_TOKF_BYTE_FALLBACK
                   | LEV_TOKF_ADD_BOS);
  lev_test_tok_free (m);
}

/* run.c with tok512.bin: the 6 prompts encode to prompt_tokens (BOS included), and decoding the generated stream
 * token by token (prev = previous token) gives run.c's stdout, which echoes the prompt and drops the space after
 * BOS. The streams hold no unprintable bytes, which run.c would skip. */
static void
check_runc_greedy (const char *relpath)
{
  LevTestTok *t = tok_load ("stories260K/tok512.bin");
  g_assert_true (lev_tokenizer_adds_bos (t->tok));
  g_assert_cmpint (lev_tokenizer_bos (t->tok), ==, 1);
  g_assert_cmpint (lev_tokenizer_eos (t->tok), ==, 2);
  JsonNode *root = parse_json_fixture (relpath);
  JsonArray *runs = json_node_get_array (root);
  guint n_runs = json_array_get_length (runs), pass = 0;
  for (guint i = 0; i < n_runs; i++) {
    JsonObject *r = json_array_get_object_element (runs, i);
    const char *prompt = json_object_get_string_member (r, "prompt");
    size_t nw, n, nt;
    int32_t *want = json_ids (json_object_get_array_member (r, "prompt_tokens"), &nw);
    int32_t *ids = lev_test_encode (t->tok, prompt, -1, lev_tokenizer_adds_bos (t->tok), &n);
    if (ids_equal (want, nw, ids, n))
      pass++;
    else
      report_mismatch ("run.c prompt", prompt, want, nw, ids, n);
    int32_t *toks = json_ids (json_object_get_array_member (r, "tokens"), &nt);
    GString *s = g_string_new (NULL);
    for (size_t k = 1; k < nt; k++)
      lev_tokenizer_decode_token (t->tok, toks[k - 1], toks[k], s);
    g_assert_cmpstr (s->str, ==, json_object_get_string_member (r, "stdout_text"));
    g_string_free (s, TRUE);
    g_free (toks);
    g_free (ids);
    g_free (want);
  }
  fprintf (stderr, "%s: %u/%u prompts exact\n", relpath, pass, n_runs);
  g_assert_cmpuint (pass, ==, n_runs);
  json_node_unref (root);
  lev_test_tok_free (t);
}

static void
test_runc_prompts (void)
{
  check_runc_greedy ("stories260K/expected/greedy_n64.json");
  check_runc_greedy ("stories260K/expected/greedy_n256.json");
}

/* ---------------------------------------------------------------- long text */

static guint64
fnv_ids (const int32_t *ids, size_t n)
{
  guint64 h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) {
    guint32 u = (guint32) ids[i];
    for (int b = 0; b < 4; b++) {
      h ^= (u >> (8 * b)) & 0xFF;
      h *= 0x100000001b3ull;
    }
  }
  return h;
}

/* The whole KJV Genesis+Exodus text (366 KB) as one sequence. The counts and FNV-1a hashes of the id lists were
 * computed with python3-sentencepiece 0.1.97 (sp.encode(text), no BOS) on the same tokenizer.model files. */
static void
test_long_text (void)
{
  static const struct { const char *model; size_t n; guint64 fnv; } refs[] = {
    { "tokenizers/llama2/tokenizer.model", 99197, 0x32a43a7d670b9e44ull },
    { "stories260K/tok512.model", 196859, 0x637fcf74366e0de0ull },
  };
  gsize len;
  gchar *text = lev_test_read_fixture ("text/kjv_genesis_exodus.txt", &len);
  for (guint i = 0; i < G_N_ELEMENTS (refs); i++) {
    LevTestTok *t = tok_load (refs[i].model);
    gint64 t0 = g_get_monotonic_time ();
    size_t n;
    int32_t *ids = lev_test_encode (t->tok, text, (gssize) len, FALSE, &n);
    gint64 t1 = g_get_monotonic_time ();
    fprintf (stderr, "%s: %zu bytes -> %zu ids in %.1f ms\n", refs[i].model, (size_t) len, n, (t1 - t0) / 1000.0);
    g_assert_cmpuint (n, ==, refs[i].n);
    g_assert_cmphex (fnv_ids (ids, n), ==, refs[i].fnv);
    gchar *dec = lev_tokenizer_decode (t->tok, ids, n);
    g_assert_true (strcmp (dec, text) == 0);   /* KJV has no runs of spaces: lossless for both */
    g_free (dec);
    g_free (ids);
    /* The same vocabulary plus one piece with a space inside ("\x7f▁\x7f", absent from the text) turns off the
     * encoder's cutting at spaces: the ids must not change. */
    LevConvVocab *v = t->vocab;
    t->vocab = NULL;
    lev_test_tok_free (t);
    lev_conv_vocab_add (v, "\x7f\xe2\x96\x81\x7f", 5, -1e9f, LEV_TOKTYPE_NORMAL);
    t = lev_test_tok_from_vocab (v);
    t0 = g_get_monotonic_time ();
    ids = lev_test_encode (t->tok, text, (gssize) len, FALSE, &n);
    t1 = g_get_monotonic_time ();
    fprintf (stderr, "  without cutting at spaces: %.1f ms\n", (t1 - t0) / 1000.0);
    g_assert_cmpuint (n, ==, refs[i].n);
    g_assert_cmphex (fnv_ids (ids, n), ==, refs[i].fnv);
    g_free (ids);
    lev_test_tok_free (t);
  }
  g_free (text);
}

/* ---------------------------------------------------------------- hand-made models */

/* A tiny protobuf writer for hand-made SentencePiece models. */
static void
pb_varint (GByteArray *b, guint64 v)
{
  do {
    guint8 c = (guint8) (v & 0x7F);
    v >>= 7;
    if (v)
      c |= 0x80;
    g_byte_array_append (b, &c, 1);
  } while (v);
}

static void
pb_int (GByteArray *b, guint field, gint64 v)
{
  pb_varint (b, (guint64) field << 3);
  pb_varint (b, (guint64) v);
}

static void
pb_bytes (GByteArray *b, guint field, const void *data, gsize len)
{
  pb_varint (b, (guint64) field << 3 | 2);
  pb_varint (b, len);
  g_byte_array_append (b, data, (guint) len);
}

static void
pb_msg (GByteArray *b, guint field, GByteArray *m)
{
  pb_bytes (b, field, m->data, m->len);
  g_byte_array_unref (m);
}

typedef struct { const char *piece; float score; int type; } Piece;

/* Pieces for the hand-made models: a USER_DEFINED "<|x|>" and "<|xy|>", an UNUSED "abc" with the best score (so
 * it merges, then is split back), no byte pieces, and "c▁a", a piece with a space inside, so that the encoder
 * cannot cut the text at spaces (the fixtures' vocabularies cover the cutting path). */
static const Piece crafted_pieces[] = {
  { "<unk>", 0, 2 }, { "<s>", 0, 3 }, { "</s>", 0, 3 }, { "<|x|>", 0, 4 }, { "\xe2\x96\x81", -1, 1 },
  { "a", -2, 1 }, { "b", -3, 1 }, { "c", -4, 1 }, { "\xe2\x96\x81" "a", -1.5f, 1 }, { "ab", -0.5f, 1 },
  { "abc", 0, 5 }, { "bc", -0.7f, 1 }, { "aa", -1, 1 }, { "\xe2\x96\x81" "b", -1, 1 }, { "<|xy|>", 0, 4 },
  { "\xe2\x96\x81\xe2\x96\x81", -0.2f, 1 }, { "c\xe2\x96\x81" "a", -0.1f, 1 },
};

/* Serializes a model: model_type (0 = leave out the trainer spec), normalizer fields (< 0 = leave out). */
static GByteArray *
crafted_model (int model_type, int byte_fallback, int dummy, int remove_ws, const char *charsmap)
{
  GByteArray *m = g_byte_array_new ();
  for (guint i = 0; i < G_N_ELEMENTS (crafted_pieces); i++) {
    GByteArray *p = g_byte_array_new ();
    pb_bytes (p, 1, crafted_pieces[i].piece, strlen (crafted_pieces[i].piece));
    guint8 key = 2 << 3 | 5;
    g_byte_array_append (p, &key, 1);
    g_byte_array_append (p, (const guint8 *) &crafted_pieces[i].score, 4);
    pb_int (p, 3, crafted_pieces[i].type);
    pb_msg (m, 1, p);
  }
  if (model_type) {
    GByteArray *ts = g_byte_array_new ();
    pb_bytes (ts, 2, "prefix", 6);      /* a string field the importer skips */
    pb_int (ts, 3, model_type);
    pb_int (ts, 35, byte_fallback);
    pb_int (ts, 43, -1);                /* negative int32: a 10-byte varint */
    pb_msg (m, 2, ts);
  }
  if (dummy >= 0) {
    GByteArray *ns = g_byte_array_new ();
    pb_bytes (ns, 1, "identity", 8);
    if (charsmap)
      pb_bytes (ns, 2, charsmap, strlen (charsmap));
    pb_int (ns, 3, dummy);
    pb_int (ns, 4, remove_ws);
    pb_msg (m, 3, ns);
  }
  return m;
}

static LevConvVocab *
import_bytes (const guint8 *data, gsize len, GError **error)
{
  gchar *dir = g_dir_make_tmp ("levtok-XXXXXX", NULL);
  g_assert_nonnull (dir);
  gchar *path = g_build_filename (dir, "tokenizer.model", NULL);
  g_assert_true (write_quick (path, data, len));
  LevConvVocab *v = lev_import_spm_model (path, error);
  g_unlink (path);
  g_rmdir (dir);
  g_free (path);
  g_free (dir);
  return v;
}

typedef struct { const char *text; int32_t ids[8]; int n; const char *decoded; } Case;

/* Expected ids from python3-sentencepiece 0.1.97 loading the same serialized models (model_proto=...). They show:
 * USER_DEFINED pieces matched first and never merged, the UNUSED "abc" split back into "ab" "c", a run of unknown
 * characters giving one <unk> (no byte fallback), ties going to the leftmost pair ("aaa" -> "aa" "a"). */
static const Case crafted_a[] = {   /* add_dummy_prefix, spaces kept */
  { "ab c", { 4, 9, 4, 7 }, 4, "ab c" },
  { "abc", { 4, 9, 7 }, 3, "abc" },
  { "abcabc", { 4, 9, 7, 9, 7 }, 5, "abcabc" },
  { "x<|x|>yz a", { 4, 0, 3, 0, 8 }, 5, " \xe2\x81\x87 <|x|> \xe2\x81\x87  a" },
  { "aaa", { 4, 12, 5 }, 3, "aaa" },
  { "  a  b  ", { 15, 8, 15, 6, 15 }, 5, "  a  b  " },
  { "", { 0 }, 0, "" },
  { "xyz", { 4, 0 }, 2, " \xe2\x81\x87 " },
  { "ab<|x|>c", { 4, 9, 3, 7 }, 4, "ab<|x|>c" },
  { "<|xy|><|x|>y", { 4, 14, 3, 0 }, 4, "<|xy|><|x|> \xe2\x81\x87 " },
  { "a  bc   ab", { 8, 15, 11, 15, 4, 9 }, 6, "a  bc   ab" },
  { "qq rr a", { 4, 0, 4, 0, 8 }, 5, " \xe2\x81\x87   \xe2\x81\x87  a" },
  { "abc abc", { 4, 9, 7, 4, 9, 7 }, 6, "abc abc" },
  { "c a", { 4, 16 }, 2, "c a" },
  { "bc  a", { 4, 11, 15, 5 }, 4, "bc  a" },
};
static const Case crafted_b[] = {   /* no dummy prefix, extra spaces removed */
  { "ab c", { 9, 4, 7 }, 3, "ab c" },
  { "abc", { 9, 7 }, 2, "abc" },
  { "abcabc", { 9, 7, 9, 7 }, 4, "abcabc" },
  { "x<|x|>yz a", { 0, 3, 0, 8 }, 4, " \xe2\x81\x87 <|x|> \xe2\x81\x87  a" },
  { "aaa", { 12, 5 }, 2, "aaa" },
  { "  a  b  ", { 5, 13 }, 2, "a b" },
  { "", { 0 }, 0, "" },
  { "xyz", { 0 }, 1, " \xe2\x81\x87 " },
  { "ab<|x|>c", { 9, 3, 7 }, 3, "ab<|x|>c" },
  { "<|xy|><|x|>y", { 14, 3, 0 }, 3, "<|xy|><|x|> \xe2\x81\x87 " },
  { "a  bc   ab", { 5, 4, 11, 4, 9 }, 5, "a bc ab" },
  { "qq rr a", { 0, 4, 0, 8 }, 4, " \xe2\x81\x87   \xe2\x81\x87  a" },
  { "abc abc", { 9, 7, 4, 9, 7 }, 5, "abc abc" },
  { "c a", { 16 }, 1, "c a" },
  { "bc  a", { 11, 8 }, 2, "bc a" },
};

static void
check_cases (GByteArray *model, const Case *cases, guint n_cases, guint32 want_flags)
{
  GError *error = NULL;
  LevConvVocab *v = import_bytes (model->data, model->len, &error);
  g_assert_no_error (error);
  g_assert_cmphex (v->flags, ==, want_flags);
  g_assert_cmpint (v->pad_id, ==, -1);
  LevTestTok *t = lev_test_tok_from_vocab (v);
  for (guint i = 0; i < n_cases; i++) {
    size_t n;
    int32_t *ids = lev_test_encode (t->tok, cases[i].text, -1, FALSE, &n);
    if (!ids_equal (cases[i].ids, (size_t) cases[i].n, ids, n))
      report_mismatch ("crafted", cases[i].text, cases[i].ids, (size_t) cases[i].n, ids, n);
    g_assert_true (ids_equal (cases[i].ids, (size_t) cases[i].n, ids, n));
    gchar *dec = lev_tokenizer_decode (t->tok, ids, n);
    g_assert_cmpstr (dec, ==, cases[i].decoded);
    g_free (dec);
    g_free (ids);
  }
  /* add_bos puts BOS first and changes nothing else */
  size_t n;
  int32_t *ids = lev_test_encode (t->tok, "abc", -1, TRUE, &n);
  g_assert_cmpint (ids[0], ==, 1);
  g_free (ids);
  lev_test_tok_free (t);
}

static void
test_crafted_models (void)
{
  GByteArray *a = crafted_model (2, 0, 1, 0, NULL);
  check_cases (a, crafted_a, G_N_ELEMENTS (crafted_a),
               LEV_TOKF_ADD_DUMMY_PREFIX | LEV_TOKF_ESCAPE_WS | LEV_TOKF_ADD_BOS);
  g_byte_array_unref (a);
  GByteArray *b = crafted_model (2, 0, 0, 1, NULL);
  check_cases (b, crafted_b, G_N_ELEMENTS (crafted_b), LEV_TOKF_REMOVE_EXTRA_WS | LEV_TOKF_ESCAPE_WS | LEV_TOKF_ADD_BOS);
  g_byte_array_unref (b);

  /* No normalizer spec: the proto defaults (dummy prefix, remove extra spaces, escape). */
  GError *error = NULL;
  GByteArray *d = crafted_model (2, 1, -1, 0, NULL);
  LevConvVocab *v = import_bytes (d->data, d->len, &error);
  g_assert_no_error (error);
  g_assert_cmphex (v->flags, ==, LEV_TOKF_ADD_DUMMY_PREFIX | LEV_TOKF_REMOVE_EXTRA_WS | LEV_TOKF_ESCAPE_WS
                                 | LEV_TOKF_BYTE_FALLBACK | LEV_TOKF_ADD_BOS);
  g_assert_cmpint (v->unk_id, ==, 0);
  g_assert_cmpint (v->bos_id, ==, 1);
  g_assert_cmpint (v->eos_id, ==, 2);
  lev_conv_vocab_free (v);
  g_byte_array_unref (d);

  /* Refused: UNIGRAM (explicit, or by default when the trainer spec is absent), WORD, a precompiled charsmap. */
  const struct { int type; const char *charsmap; const char *word; } bad[] = {
    { 1, NULL, "UNIGRAM" }, { 0, NULL, "UNIGRAM" }, { 3, NULL, "WORD" }, { 2, "xxxx", "character map" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    GByteArray *m = crafted_model (bad[i].type, 0, 1, 0, bad[i].charsmap);
    v = import_bytes (m->data, m->len, &error);
    g_assert_null (v);
    g_assert_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED);
    g_assert_nonnull (strstr (error->message, bad[i].word));
    g_clear_error (&error);
    g_byte_array_unref (m);
  }
}

/* ---------------------------------------------------------------- corrupt inputs */

static LevConvVocab *
import_file_bytes (const char *name, const guint8 *data, gsize len, GError **error)
{
  gchar *dir = g_dir_make_tmp ("levtok-XXXXXX", NULL);
  gchar *path = g_build_filename (dir, name, NULL);
  g_assert_true (write_quick (path, data, len));
  LevConvVocab *v = lev_import_vocab (path, error);
  g_unlink (path);
  g_rmdir (dir);
  g_free (path);
  g_free (dir);
  return v;
}

/* Every prefix of tok512.model and 40 of Llama 2's: a GError, never a crash. The one prefix that is a valid
 * model, the pieces and trainer spec without the normalizer spec, must be accepted with the default normalizer. */
static void
test_truncated_model (void)
{
  const char *models[] = { "stories260K/tok512.model", "tokenizers/llama2/tokenizer.model" };
  for (guint mi = 0; mi < G_N_ELEMENTS (models); mi++) {
    gsize len;
    guint8 *data = (guint8 *) lev_test_read_fixture (models[mi], &len);
    gsize step = mi == 0 ? 1 : len / 40;
    guint n_err = 0, n_ok = 0;
    GError *error = NULL;
    gchar *dir = g_dir_make_tmp ("levtok-XXXXXX", NULL);
    gchar *path = g_build_filename (dir, "tokenizer.model", NULL);
    for (gsize cut = 0; cut < len; cut += step) {
      g_assert_true (write_quick (path, data, cut));
      LevConvVocab *v = lev_import_spm_model (path, &error);
      if (v == NULL) {
        g_assert_nonnull (error);
        g_assert_true (error->domain == LEV_CONVERT_ERROR);
        g_clear_error (&error);
        n_err++;
      } else {
        g_assert_no_error (error);
        g_assert_cmpuint (data[cut], ==, 3 << 3 | 2);   /* cut right before the normalizer spec */
        g_assert_true (v->flags & LEV_TOKF_REMOVE_EXTRA_WS);
        lev_conv_vocab_free (v);
        n_ok++;
      }
    }
    fprintf (stderr, "%s: %u truncations rejected, %u valid prefixes\n", models[mi], n_err, n_ok);
    g_assert_cmpuint (n_ok, <=, 1);
    g_unlink (path);
    g_rmdir (dir);
    g_free (path);
    g_free (dir);
    g_free (data);
  }
}

/* Random byte corruption of tok512.model: whatever the importer accepts must give a working tokenizer. */
static void
test_corrupt_model (void)
{
  gsize len;
  guint8 *orig = (guint8 *) lev_test_read_fixture ("stories260K/tok512.model", &len);
  guint8 *data = g_malloc (len);
  GRand *rng = g_rand_new_with_seed (1234);
  guint accepted = 0;
  for (int iter = 0; iter < 400; iter++) {
    memcpy (data, orig, len);
    int n_flips = g_rand_int_range (rng, 1, 8);
    for (int k = 0; k < n_flips; k++)
      data[g_rand_int_range (rng, 0, (gint32) len)] = (guint8) g_rand_int_range (rng, 0, 256);
    GError *error = NULL;
    LevConvVocab *v = import_bytes (data, len, &error);
    if (v == NULL) {
      g_assert_true (error != NULL && error->domain == LEV_CONVERT_ERROR);
      g_clear_error (&error);
      continue;
    }
    accepted++;
    LevConvVocabFlat *flat = lev_conv_vocab_flatten (v);
    LevTokenizer *tok = lev_tokenizer_new (&flat->view, &error);
    if (tok) {
      size_t n;
      int32_t *ids = lev_tokenizer_encode (tok, "Once upon a time, \xe4\xb8\xad  x", -1, TRUE, &n, &error);
      if (ids) {
        g_free (lev_tokenizer_decode (tok, ids, n));
        g_free (ids);
      }
      g_clear_error (&error);
      lev_tokenizer_free (tok);
    }
    g_clear_error (&error);
    lev_conv_vocab_flat_free (flat);
    lev_conv_vocab_free (v);
  }
  fprintf (stderr, "corrupted tok512.model: %u/400 still parse\n", accepted);
  g_rand_free (rng);
  g_free (data);
  g_free (orig);
}

/* tokenizer.bin cut inside a record gives a GError; cut at a record boundary it is a smaller valid vocabulary. */
static void
test_truncated_bin (void)
{
  gsize len;
  guint8 *data = (guint8 *) lev_test_read_fixture ("stories260K/tok512.bin", &len);
  GHashTable *boundaries = g_hash_table_new (g_direct_hash, g_direct_equal);
  for (gsize off = 4; off < len;) {
    gint32 l;
    memcpy (&l, data + off + 4, 4);
    off += 8 + (gsize) l;
    g_hash_table_add (boundaries, GSIZE_TO_POINTER (off));
  }
  GError *error = NULL;
  gchar *dir = g_dir_make_tmp ("levtok-XXXXXX", NULL);
  gchar *path = g_build_filename (dir, "tokenizer.bin", NULL);
  guint n_err = 0;
  for (gsize cut = 0; cut < len; cut++) {
    g_assert_true (write_quick (path, data, cut));
    LevConvVocab *v = lev_import_llama2c_tokenizer (path, &error);
    gboolean boundary = g_hash_table_contains (boundaries, GSIZE_TO_POINTER (cut));
    if (boundary) {
      g_assert_no_error (error);
      g_assert_nonnull (v);
      lev_conv_vocab_free (v);
    } else {
      g_assert_null (v);
      g_assert_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT);
      g_clear_error (&error);
      n_err++;
    }
  }
  fprintf (stderr, "tok512.bin: %u truncations rejected\n", n_err);
  /* A record whose length exceeds max_token_length, and a negative length. */
  guint8 *bad = g_memdup2 (data, len);
  gint32 big = 100, neg = -5;
  memcpy (bad + 4 + 4, &big, 4);
  g_assert_true (write_quick (path, bad, len));
  g_assert_null (lev_import_llama2c_tokenizer (path, &error));
  g_assert_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT);
  g_clear_error (&error);
  memcpy (bad + 4 + 4, &neg, 4);
  g_assert_true (write_quick (path, bad, len));
  g_assert_null (lev_import_llama2c_tokenizer (path, &error));
  g_assert_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT);
  g_clear_error (&error);
  g_free (bad);
  g_unlink (path);
  g_rmdir (dir);
  g_free (path);
  g_free (dir);
  g_hash_table_unref (boundaries);
  g_free (data);
}

static void
test_bad_utf8 (void)
{
  LevTestTok *t = tok_load ("tokenizers/llama2/tokenizer.model");
  static const char *const bad[] = {
    "\xff", "abc\xc3", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "ok \x80 no", "\xf8\x88\x80\x80\x80",
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    GError *error = NULL;
    size_t n = 99;
    int32_t *ids = lev_tokenizer_encode (t->tok, bad[i], -1, TRUE, &n, &error);
    g_assert_null (ids);
    g_assert_error (error, G_CONVERT_ERROR, G_CONVERT_ERROR_ILLEGAL_SEQUENCE);
    g_clear_error (&error);
  }
  /* A text with an explicit length may hold NUL bytes (valid UTF-8): byte fallback gives <0x00> = id 3. */
  size_t n;
  int32_t *ids = lev_test_encode (t->tok, "a\0b", 3, FALSE, &n);
  gboolean has_nul = FALSE;
  for (size_t i = 0; i < n; i++)
    has_nul |= ids[i] == 3;
  g_assert_true (has_nul);
  g_free (ids);
  /* The length is honoured: bytes after it are not read. */
  ids = lev_test_encode (t->tok, "Hello world", 5, FALSE, &n);
  g_assert_cmpuint (n, ==, 1);
  g_assert_cmpint (ids[0], ==, 15043);
  g_free (ids);
  lev_test_tok_free (t);
}

/* lev_tokenizer_new refuses inconsistent views instead of crashing later. */
static void
test_corrupt_view (void)
{
  LevTestTok *t = tok_load ("stories260K/tok512.model");
  const LevVocabView *good = &t->flat->view;
  guint32 n = good->n_tokens;
  uint32_t *offs = g_memdup2 (good->piece_offsets, (n + 1) * sizeof (uint32_t));
  uint8_t *types = g_memdup2 (good->types, n);
  float *scores = g_memdup2 (good->scores, n * sizeof (float));
  GError *error = NULL;

  for (int which = 0; which < 9; which++) {
    LevVocabView v = *good;
    v.piece_offsets = offs;
    v.types = types;
    v.scores = scores;
    memcpy (offs, good->piece_offsets, (n + 1) * sizeof (uint32_t));
    memcpy (types, good->types, n);
    memcpy (scores, good->scores, n * sizeof (float));
    switch (which) {
    case 0: offs[100] = offs[101] + 1; break;        /* offsets go backwards */
    case 1: offs[0] = 1; break;
    case 2: types[7] = 9; break;
    case 3: v.bos_id = (int32_t) n; break;
    case 4: v.unk_id = -7; break;
    case 5: scores[300] = NAN; break;
    case 6: v.n_tokens = 0; break;
    case 7: v.kind = LEV_TOK_BYTE_BPE; v.pretokenizer = 99; break;   /* byte-level with an unknown split rule */
    case 8: v.kind = 42; break;
    }
    LevTokenizer *tok = lev_tokenizer_new (&v, &error);
    g_assert_null (tok);
    g_assert_nonnull (error);
    if (which == 7)
      g_assert_nonnull (strstr (error->message, "unknown pre-tokenizer"));
    g_clear_error (&error);
  }
  g_free (offs);
  g_free (types);
  g_free (scores);
  lev_test_tok_free (t);
}

/* The view may point into a read-only mapping and its piece bytes need not be NUL-terminated. */
static void
test_readonly_view (void)
{
  LevTestTok *t = tok_load ("tokenizers/llama2/tokenizer.model");
  const LevVocabView *src = &t->flat->view;
  guint32 n = src->n_tokens;
  gsize nb = src->piece_offsets[n];
  gsize total = (n + 1) * 4 + n * 4 + n + nb;
  gsize page = 4096, size = (total + page - 1) / page * page;
  /* Put the piece bytes last, flush against the end of the mapping, so a read past them faults. */
  gchar *dir = g_dir_make_tmp ("levtok-XXXXXX", NULL);
  gchar *path = g_build_filename (dir, "view.bin", NULL);
  guint8 *buf = g_malloc0 (size);
  gsize o = size - nb;
  memcpy (buf + o, src->piece_bytes, nb);
  memcpy (buf, src->piece_offsets, (n + 1) * 4);
  memcpy (buf + (n + 1) * 4, src->scores, n * 4);
  memcpy (buf + (n + 1) * 4 + n * 4, src->types, n);
  g_assert_true (write_quick (path, buf, size));
  GMappedFile *mf = g_mapped_file_new (path, FALSE, NULL);
  g_assert_nonnull (mf);
  const guint8 *map = (const guint8 *) g_mapped_file_get_contents (mf);
  LevVocabView v = *src;
  v.piece_offsets = (const uint32_t *) map;
  v.scores = (const float *) (map + (n + 1) * 4);
  v.types = map + (n + 1) * 4 + n * 4;
  v.piece_bytes = (const char *) map + o;
  GError *error = NULL;
  LevTokenizer *tok = lev_tokenizer_new (&v, &error);
  g_assert_no_error (error);
  size_t nid;
  int32_t *ids = lev_tokenizer_encode (tok, " Hello world \xe4\xb8\xad", -1, TRUE, &nid, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ids[0], ==, 1);
  g_assert_cmpint (ids[1], ==, 29871);
  g_assert_cmpint (ids[2], ==, 15043);
  gchar *dec = lev_tokenizer_decode (tok, ids, nid);
  g_assert_cmpstr (dec, ==, " Hello world \xe4\xb8\xad");
  /* the last piece of the vocabulary ends exactly at the end of the mapping */
  size_t plen;
  const char *last = lev_tokenizer_piece (tok, (int32_t) n - 1, &plen);
  g_assert_true ((const guint8 *) last + plen == map + size);
  g_assert_null (lev_tokenizer_piece (tok, (int32_t) n, &plen));
  g_assert_null (lev_tokenizer_piece (tok, -1, &plen));
  g_assert_cmpuint (lev_tokenizer_n_tokens (tok), ==, n);
  g_free (dec);
  g_free (ids);
  lev_tokenizer_free (tok);
  g_mapped_file_unref (mf);
  g_unlink (path);
  g_rmdir (dir);
  g_free (path);
  g_free (dir);
  g_free (buf);
  lev_test_tok_free (t);
}

/* Streaming decode: the space after BOS (or at the start) is dropped, not elsewhere; control tokens are silent. */
static void
test_decode_stream (void)
{
  LevTestTok *t = tok_load ("tokenizers/llama2/tokenizer.model");
  GString *s = g_string_new (NULL);
  lev_tokenizer_decode_token (t->tok, -1, 1, s);          /* BOS */
  lev_tokenizer_decode_token (t->tok, 1, 15043, s);       /* "▁Hello" after BOS */
  lev_tokenizer_decode_token (t->tok, 15043, 3186, s);    /* "▁world" */
  lev_tokenizer_decode_token (t->tok, 3186, 13, s);       /* <0x0A> */
  lev_tokenizer_decode_token (t->tok, 13, 2, s);          /* EOS */
  lev_tokenizer_decode_token (t->tok, 2, 0, s);           /* <unk> */
  lev_tokenizer_decode_token (t->tok, 0, 99999, s);       /* out of range: nothing */
  g_assert_cmpstr (s->str, ==, "Hello world\n \xe2\x81\x87 ");
  g_string_free (s, TRUE);
  /* A character split into byte tokens decodes back to its bytes. */
  int32_t bytes[] = { 29871, 243, 162, 155, 131 };   /* "▁" <0xF0> <0x9F> <0x98> <0x80> */
  gchar *dec = lev_tokenizer_decode (t->tok, bytes, G_N_ELEMENTS (bytes));
  g_assert_cmpstr (dec, ==, "\xf0\x9f\x98\x80");
  g_free (dec);
  lev_test_tok_free (t);
}

/* lev_tokenizer_encode_special: control pieces written in the text (a rendered chat prompt) become their ids, the
 * text between them is encoded segment by segment (each with its dummy prefix, as Hugging Face's LlamaTokenizer
 * with legacy=True does: "<s>[INST] Hi [/INST]" is 1, "▁[" 518, "INST" 25580, "]" 29962, "▁Hi" 6324, ...). */
static void
test_encode_special (void)
{
  LevTestTok *t = tok_load ("tokenizers/llama2/tokenizer.model");
  GError *error = NULL;
  size_t n = 0;
  int32_t *ids = lev_tokenizer_encode_special (t->tok, "<s>[INST] Hi [/INST]", -1, FALSE, &n, &error);
  g_assert_no_error (error);
  static const int32_t want[] = { 1, 518, 25580, 29962, 6324, 518, 29914, 25580, 29962 };
  g_assert_cmpmem (ids, n * sizeof *ids, want, sizeof want);
  g_free (ids);

  /* the same as control ids plus lev_tokenizer_encode of the parts */
  const char *text = "<s>[INST] Hi [/INST] Hello </s><s>[INST] Bye [/INST]";
  ids = lev_tokenizer_encode_special (t->tok, text, -1, TRUE, &n, &error);
  g_assert_no_error (error);
  GArray *exp = g_array_new (FALSE, FALSE, sizeof (int32_t));
  static const char *const parts[] = { "", "[INST] Hi [/INST] Hello ", "", "[INST] Bye [/INST]" };
  static const int32_t ctrl[] = { 1, 1, 2, 1 };   /* BOS asked for, then <s>, </s>, <s> of the text */
  for (guint i = 0; i < G_N_ELEMENTS (parts); i++) {
    g_array_append_val (exp, ctrl[i]);
    size_t m;
    int32_t *p = lev_test_encode (t->tok, parts[i], -1, FALSE, &m);
    g_array_append_vals (exp, p, (guint) m);
    g_free (p);
  }
  g_assert_cmpmem (ids, n * sizeof *ids, exp->data, exp->len * sizeof (int32_t));
  g_array_unref (exp);
  g_free (ids);

  /* without control pieces in it, the text encodes as lev_tokenizer_encode does; plain encoding does not match
   * "<s>" written in the text (SentencePiece semantics) */
  size_t m;
  int32_t *a = lev_tokenizer_encode_special (t->tok, "Hello <s world", -1, TRUE, &n, &error);
  int32_t *b = lev_test_encode (t->tok, "Hello <s world", -1, TRUE, &m);
  g_assert_cmpmem (a, n * sizeof *a, b, m * sizeof *b);
  g_free (a);
  g_free (b);
  b = lev_test_encode (t->tok, "<s>", -1, FALSE, &m);
  g_assert_cmpuint (m, >, 1);
  g_free (b);
  /* invalid UTF-8 is refused */
  g_assert_null (lev_tokenizer_encode_special (t->tok, "<s>\xff", -1, FALSE, &n, &error));
  g_assert_error (error, G_CONVERT_ERROR, G_CONVERT_ERROR_ILLEGAL_SEQUENCE);
  g_clear_error (&error);
  lev_test_tok_free (t);
}

/* lev_import_vocab: a directory, a file of either kind, and files it must refuse. */
static void
test_import_vocab_detect (void)
{
  gchar *dir = lev_test_fixture ("hf/stories260K-llama");
  GError *error = NULL;
  LevConvVocab *v = lev_import_vocab (dir, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (v->pieces->len, ==, 512);
  g_assert_cmpuint (v->types->data[1], ==, LEV_TOKTYPE_CONTROL);
  lev_conv_vocab_free (v);
  g_free (dir);

  gchar *tmp = g_dir_make_tmp ("levtok-XXXXXX", NULL);
  v = lev_import_vocab (tmp, &error);
  g_assert_null (v);
  g_assert_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO);
  g_clear_error (&error);
  g_rmdir (tmp);
  g_free (tmp);

  gchar *json = lev_test_fixture ("tokenizers/qwen3/tokenizer_config.json");
  v = lev_import_vocab (json, &error);
  g_assert_null (v);
  g_assert_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED);
  g_clear_error (&error);
  g_free (json);

  const guint8 junk[] = { 0xff, 0xff, 0xff, 0xff, 1, 2, 3 };
  v = import_file_bytes ("junk", junk, sizeof junk, &error);
  g_assert_null (v);
  g_assert_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT);
  g_clear_error (&error);
  v = import_file_bytes ("empty", junk, 0, &error);
  g_assert_null (v);
  g_assert_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT);
  g_clear_error (&error);

  v = lev_import_vocab ("/nonexistent/tokenizer.model", &error);
  g_assert_null (v);
  g_assert_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO);
  g_clear_error (&error);
}

/* Flattening: offsets and bytes of the view match the pieces; merges accept both element layouts. */
static void
test_flatten (void)
{
  LevConvVocab *v = lev_conv_vocab_new (LEV_TOK_SPM_BPE);
  g_assert_cmpint (v->bos_id, ==, -1);
  g_assert_cmpuint (lev_conv_vocab_add (v, "<unk>", 5, 0, LEV_TOKTYPE_UNKNOWN), ==, 0);
  g_assert_cmpuint (lev_conv_vocab_add (v, "a\0b", 3, -1, LEV_TOKTYPE_NORMAL), ==, 1);
  g_assert_cmpuint (lev_conv_vocab_add (v, "", 0, -2, LEV_TOKTYPE_NORMAL), ==, 2);
  guint32 pair[2] = { 1, 2 };
  g_array_append_vals (v->merges, pair, 2);
  LevConvVocabFlat *f = lev_conv_vocab_flatten (v);
  g_assert_cmpuint (f->view.n_tokens, ==, 3);
  g_assert_cmpuint (f->view.piece_offsets[0], ==, 0);
  g_assert_cmpuint (f->view.piece_offsets[1], ==, 5);
  g_assert_cmpuint (f->view.piece_offsets[2], ==, 8);
  g_assert_cmpuint (f->view.piece_offsets[3], ==, 8);
  g_assert_cmpmem (f->view.piece_bytes + 5, 3, "a\0b", 3);
  g_assert_cmpuint (f->view.n_merges, ==, 1);
  g_assert_cmpuint (f->view.merges[1], ==, 2);
  g_assert_cmpfloat (f->view.scores[2], ==, -2.0f);
  lev_conv_vocab_flat_free (f);
  lev_conv_vocab_free (v);
}

/* Flags without LEV_TOKF_ESCAPE_WS (spaces stay ' ' in pieces) and with LEV_TOKF_NFC, on a vocabulary built by hand. */
static void
test_flag_combinations (void)
{
  LevConvVocab *v = lev_conv_vocab_new (LEV_TOK_SPM_BPE);
  lev_conv_vocab_add (v, "<unk>", 5, 0, LEV_TOKTYPE_UNKNOWN);
  lev_conv_vocab_add (v, "<s>", 3, 0, LEV_TOKTYPE_CONTROL);
  lev_conv_vocab_add (v, "</s>", 4, 0, LEV_TOKTYPE_CONTROL);
  lev_conv_vocab_add (v, " ", 1, -1, LEV_TOKTYPE_NORMAL);
  lev_conv_vocab_add (v, "a", 1, -2, LEV_TOKTYPE_NORMAL);
  lev_conv_vocab_add (v, " a", 2, -1, LEV_TOKTYPE_NORMAL);
  lev_conv_vocab_add (v, "\xc3\xa9", 2, -3, LEV_TOKTYPE_NORMAL);   /* é, precomposed */
  lev_conv_vocab_add (v, "b", 1, -2, LEV_TOKTYPE_NORMAL);
  v->unk_id = 0;
  v->bos_id = 1;
  v->eos_id = 2;
  v->flags = LEV_TOKF_ADD_DUMMY_PREFIX | LEV_TOKF_NFC;
  LevTestTok *t = lev_test_tok_from_vocab (v);
  size_t n;
  int32_t *ids = lev_test_encode (t->tok, "a  a", -1, FALSE, &n);   /* " a  a": ties go left, then the second " a" */
  int32_t want1[] = { 5, 3, 5 };
  g_assert_true (ids_equal (want1, 3, ids, n));
  gchar *dec = lev_tokenizer_decode (t->tok, ids, n);
  g_assert_cmpstr (dec, ==, "a  a");
  g_free (dec);
  g_free (ids);
  ids = lev_test_encode (t->tok, "e\xcc\x81", -1, FALSE, &n);      /* e + combining acute: NFC makes it é */
  int32_t want2[] = { 3, 6 };
  g_assert_true (ids_equal (want2, 2, ids, n));
  g_free (ids);
  ids = lev_test_encode (t->tok, "e\xcc\x81\0e\xcc\x81", 7, FALSE, &n);   /* NFC on both sides of a NUL, which stays */
  g_assert_cmpuint (n, ==, 4);
  g_assert_cmpint (ids[1], ==, 6);
  g_assert_cmpint (ids[2], ==, 0);                        /* NUL: no piece, no byte fallback -> unk */
  g_assert_cmpint (ids[3], ==, 6);
  g_free (ids);
  lev_tokenizer_free (t->tok);
  lev_conv_vocab_flat_free (t->flat);
  /* strip and collapse, no dummy prefix, no escaping */
  v->flags = LEV_TOKF_REMOVE_EXTRA_WS;
  t->flat = lev_conv_vocab_flatten (v);
  GError *error = NULL;
  t->tok = lev_tokenizer_new (&t->flat->view, &error);
  g_assert_no_error (error);
  ids = lev_test_encode (t->tok, "  b   a  ", -1, FALSE, &n);
  int32_t want3[] = { 7, 5 };
  g_assert_true (ids_equal (want3, 2, ids, n));
  dec = lev_tokenizer_decode (t->tok, ids, n);
  g_assert_cmpstr (dec, ==, "b a");
  g_free (dec);
  g_free (ids);
  ids = lev_test_encode (t->tok, "    ", -1, TRUE, &n);               /* only spaces: nothing but BOS */
  g_assert_cmpuint (n, ==, 1);
  g_assert_cmpint (ids[0], ==, 1);
  g_free (ids);
  g_assert_false (lev_tokenizer_adds_bos (t->tok));
  lev_test_tok_free (t);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/tokenizer/llamacpp-spm", test_llamacpp_spm);
  g_test_add_func ("/tokenizer/extra-llama2", test_extra_llama2);
  g_test_add_func ("/tokenizer/extra-tok512", test_extra_tok512);
  g_test_add_func ("/tokenizer/bin-llama2", test_bin_llama2);
  g_test_add_func ("/tokenizer/bin-tok512", test_bin_tok512);
  g_test_add_func ("/tokenizer/runc-prompts", test_runc_prompts);
  g_test_add_func ("/tokenizer/long-text", test_long_text);
  g_test_add_func ("/tokenizer/crafted-models", test_crafted_models);
  g_test_add_func ("/tokenizer/truncated-model", test_truncated_model);
  g_test_add_func ("/tokenizer/corrupt-model", test_corrupt_model);
  g_test_add_func ("/tokenizer/truncated-bin", test_truncated_bin);
  g_test_add_func ("/tokenizer/bad-utf8", test_bad_utf8);
  g_test_add_func ("/tokenizer/corrupt-view", test_corrupt_view);
  g_test_add_func ("/tokenizer/readonly-view", test_readonly_view);
  g_test_add_func ("/tokenizer/decode-stream", test_decode_stream);
  g_test_add_func ("/tokenizer/encode-special", test_encode_special);
  g_test_add_func ("/tokenizer/import-detect", test_import_vocab_detect);
  g_test_add_func ("/tokenizer/flatten", test_flatten);
  g_test_add_func ("/tokenizer/flag-combinations", test_flag_combinations);
  return g_test_run ();
}
