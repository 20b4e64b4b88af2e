/* fuzz_chat_encode.c: libFuzzer target: chat templates as the session uses them, rendered and encoded with
 * special-token matching by the Llama 3 tokenizer of tests/data (loaded once). */
#include "fuzz_tokenizer.h"
#include "lev_chat.h"
#include "lev_convert.h"
#include "leviathan.h"

static LevTokenizer *tok;
static int32_t start_header, eot;

/* Loads the Llama 3 tokenizer and finds its header and end-of-turn tokens. */
int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  tok = fuzz_tokenizer_load ("tokenizers/llama3/tokenizer.json");
  start_header = lev_tokenizer_find_piece (tok, "<|start_header_id|>", -1);
  eot = lev_tokenizer_find_piece (tok, "<|eot_id|>", -1);
  FUZZ_CHECK (start_header >= 0 && eot >= 0, "the Llama 3 tokenizer lacks its chat tokens");
  return 0;
}

/* Counts id in ids. */
static size_t
count (const int32_t *ids, size_t n, int32_t id)
{
  size_t c = 0;
  for (size_t i = 0; i < n; i++)
    c += ids[i] == id;
  return c;
}

/* The input is NUL-separated strings, role/content pairs; the first byte picks the template (bit 0: llama3 or
 * bitnet, both written with Llama 3's tokens), the generation prompt (bit 1) and a continuation rendering (bit 2).
 * Checks: the rendering encodes with special-token matching to ids in range, with at least one end-of-turn token per
 * message (and one header per message for llama3), whatever the contents (text that writes control tokens adds
 * turns, it never removes the template's: issue 19 item 15 is about the former). */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size == 0)
    return 0;
  if (tok == NULL)
    LLVMFuzzerInitialize (NULL, NULL);
  const uint8_t ctl = data[0];
  gchar *copy = g_malloc (size);
  memcpy (copy, data + 1, size - 1);
  copy[size - 1] = '\0';
  GPtrArray *parts = g_ptr_array_new ();
  for (size_t i = 0, start = 0; i <= size - 1; i++)
    if (copy[i] == '\0') {
      g_ptr_array_add (parts, copy + start);
      start = i + 1;
    }
  /* the session renders valid UTF-8 only (levrun and the element make it so): every string is checked, not only the
   * first (a run found this target's own check reading up to the first NUL only) */
  for (guint i = 0; i < parts->len; i++)
    if (!g_utf8_validate (g_ptr_array_index (parts, i), -1, NULL)) {
      g_ptr_array_unref (parts);
      g_free (copy);
      return 0;
    }
  gsize n_msg = MIN (parts->len / 2, 16u);
  LevChatMessage *msgs = g_new0 (LevChatMessage, n_msg + 1);
  const char *const roles[] = { "system", "user", "assistant" };
  for (gsize i = 0; i < n_msg; i++) {
    const char *role = g_ptr_array_index (parts, 2 * i);
    msgs[i].role = role[0] ? roles[(guchar) role[0] % 3] : "user";
    msgs[i].content = g_ptr_array_index (parts, 2 * i + 1);
  }
  const LevChatTemplate tmpl = (ctl & 1) ? LEV_CHAT_BITNET : LEV_CHAT_LLAMA3;
  const gboolean gen = (ctl & 2) != 0;
  char *r = (ctl & 4) ? lev_chat_render_continuation (tmpl, msgs, n_msg, gen, "<|begin_of_text|>")
                      : lev_chat_render (tmpl, msgs, n_msg, gen, "<|begin_of_text|>");
  FUZZ_CHECK (r != NULL && g_utf8_validate (r, -1, NULL), "rendering missing or not UTF-8");
  size_t n_ids = 0;
  GError *error = NULL;
  int32_t *ids = lev_tokenizer_encode_special (tok, r, -1, FALSE, &n_ids, &error);
  FUZZ_CHECK (ids != NULL, "a valid rendering refused: %s", error ? error->message : "?");
  const uint32_t n_vocab = lev_tokenizer_n_tokens (tok);
  for (size_t i = 0; i < n_ids; i++)
    FUZZ_CHECK (ids[i] >= 0 && (uint32_t) ids[i] < n_vocab, "id %d out of range", ids[i]);
  FUZZ_CHECK (count (ids, n_ids, eot) >= n_msg, "%zu messages, %zu end-of-turn tokens", n_msg,
              count (ids, n_ids, eot));
  if (tmpl == LEV_CHAT_LLAMA3)
    FUZZ_CHECK (count (ids, n_ids, start_header) >= n_msg, "%zu messages, %zu headers", n_msg,
                count (ids, n_ids, start_header));
  g_free (ids);
  g_free (r);
  g_free (msgs);
  g_ptr_array_unref (parts);
  g_free (copy);
  return 0;
}
