/* lev_tokenizer.c: SentencePiece-BPE encoder and decoder over a read-only LevVocabView. */
#include "lev_tokenizer.h"

#include <math.h>
#include <string.h>

/* Semantics (what SentencePiece's BPE model with an "identity" normalizer does, see the report in the tests):
 *  1. The text must be valid UTF-8 (NUL bytes allowed when a length is given).
 *  2. LEV_TOKF_NFC: NFC-normalize (GLib).
 *  3. Whitespace, only the ASCII space ' ': LEV_TOKF_REMOVE_EXTRA_WS drops leading spaces (an all-space text
 *     becomes empty), collapses runs of spaces into one and drops trailing space symbols; LEV_TOKF_ADD_DUMMY_PREFIX
 *     prepends one space when the text is not empty (after the stripping); LEV_TOKF_ESCAPE_WS writes every space,
 *     the dummy one included, as "▁" (U+2581).
 *  4. The normalized text is cut into symbols: a USER_DEFINED piece that starts at the current position (longest
 *     match) is one frozen symbol that never merges; otherwise one UTF-8 character.
 *  5. BPE: repeatedly merge the adjacent pair whose concatenation is a NORMAL, USER_DEFINED or UNUSED piece with the
 *     highest score; ties go to the leftmost pair. A priority queue over a linked list of symbols: O(n log n).
 *     When no mergeable piece holds a space symbol right after another character (true of SentencePiece vocabularies
 *     trained with split_by_whitespace, Llama 2 and tok512 included; checked per vocabulary), no merge can cross the
 *     start of a run of spaces, so the sequence is cut there and each part merged on its own: same ids, small queues.
 *  6. Output: each final symbol's id. A symbol that is an UNUSED piece is split back into the two symbols it was
 *     merged from (recursively), so UNUSED ids are never produced. (SentencePiece remembers one split per piece
 *     string, taken when the pair was queued; this encoder remembers the split of each merge it actually made. They
 *     differ only if one UNUSED piece could be formed from two different pairs in one text.) A symbol that is not a piece (or is the UNKNOWN
 *     piece) becomes one <0xXX> byte token per byte with LEV_TOKF_BYTE_FALLBACK (a missing byte piece gives unk),
 *     else unk_id, where a run of adjacent unknown symbols gives a single unk_id, as in SentencePiece.
 * Control pieces (<s>, </s>) written in the text are not recognized: they are plain characters, as in the
 * SentencePiece library (Hugging Face's LlamaTokenizer would map "<s>" in the text to BOS). */

#define SPACE_SYMBOL "\xe2\x96\x81"     /* U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's escaped space */
#define SPACE_SYMBOL_LEN 3
#define UNK_SURFACE " \xe2\x81\x87 "     /* what SentencePiece prints for <unk> (U+2047, spaced) */
#define MAX_TEXT_BYTES (G_MAXINT32 / 4) /* symbol offsets are 32-bit and escaping may triple the length */

struct LevTokenizer {
  LevVocabView v;          /* a copy of the caller's view; the arrays it points at stay read-only */
  uint32_t *table;         /* open addressing over piece bytes: slot holds id + 1, 0 = empty */
  uint32_t table_mask;
  uint32_t max_merge_len;  /* longest NORMAL / USER_DEFINED / UNUSED piece, in bytes */
  int32_t unk_id;          /* -1 when the vocabulary has none */
  int32_t byte_ids[256];   /* id of "<0xXX>" or -1 */
  gboolean has_user_defined;
  gboolean has_unused;
  gboolean split_at_space; /* no mergeable piece holds a space symbol right after another character */
  uint8_t ud_first[256];   /* bytes a USER_DEFINED piece can start with */
  uint32_t *ud_lens;       /* distinct USER_DEFINED lengths, longest first */
  uint32_t n_ud_lens;
};

/* ---------------------------------------------------------------- vocabulary lookup */

static inline const char *
piece_ptr (const LevTokenizer *tok, uint32_t id, uint32_t *len)
{
  uint32_t a = tok->v.piece_offsets[id];
  *len = tok->v.piece_offsets[id + 1] - a;
  return tok->v.piece_bytes + a;
}

static inline uint32_t
hash_bytes (const char *s, size_t len)
{
  /* FNV-1a, 32 bit, then a final avalanche so that the low bits used by the mask are well mixed. */
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < len; i++) {
    h ^= (uint8_t) s[i];
    h *= 16777619u;
  }
  h ^= h >> 16;
  h *= 0x7feb352du;
  h ^= h >> 15;
  return h;
}

/* Returns the id of the piece with exactly these bytes (the lowest id when a piece is listed twice) or -1. */
static int32_t
lookup (const LevTokenizer *tok, const char *s, size_t len)
{
  uint32_t i = hash_bytes (s, len) & tok->table_mask;
  for (;;) {
    uint32_t slot = tok->table[i];
    if (slot == 0)
      return -1;
    uint32_t plen;
    const char *p = piece_ptr (tok, slot - 1, &plen);
    if (plen == len && memcmp (p, s, len) == 0)
      return (int32_t) (slot - 1);
    i = (i + 1) & tok->table_mask;
  }
}

static inline gboolean
type_merges (uint8_t type)
{
  return type == LEV_TOKTYPE_NORMAL || type == LEV_TOKTYPE_USER_DEFINED || type == LEV_TOKTYPE_UNUSED;
}

/* Returns the byte a "<0xXX>" piece stands for, or -1 when the piece is not of that form. */
static int
parse_byte_piece (const char *p, uint32_t len)
{
  if (len != 6 || p[0] != '<' || p[1] != '0' || p[2] != 'x' || p[5] != '>')
    return -1;
  int hi = g_ascii_xdigit_value (p[3]), lo = g_ascii_xdigit_value (p[4]);
  if (hi < 0 || lo < 0)
    return -1;
  return hi * 16 + lo;
}

/* ---------------------------------------------------------------- construction */

static gboolean
check_special_id (int32_t id, uint32_t n, const char *what, GError **error)
{
  if (id < -1 || id >= (int64_t) n) {
    g_set_error (error, G_CONVERT_ERROR, G_CONVERT_ERROR_FAILED,
                 "vocabulary: %s id %d is outside 0..%u", what, id, n - 1);
    return FALSE;
  }
  return TRUE;
}

/* Checks that every array of the view is present and consistent; never reads outside what offsets[n] spans. */
static gboolean
validate_view (const LevVocabView *v, GError **error)
{
  if (v->n_tokens == 0 || v->n_tokens >= (uint32_t) G_MAXINT32) {
    g_set_error (error, G_CONVERT_ERROR, G_CONVERT_ERROR_FAILED, "vocabulary: %u tokens is out of range",
                 v->n_tokens);
    return FALSE;
  }
  if (v->piece_offsets == NULL || v->scores == NULL || v->types == NULL) {
    g_set_error_literal (error, G_CONVERT_ERROR, G_CONVERT_ERROR_FAILED,
                         "vocabulary: piece offsets, scores or types are missing");
    return FALSE;
  }
  if (v->piece_offsets[0] != 0) {
    g_set_error (error, G_CONVERT_ERROR, G_CONVERT_ERROR_FAILED,
                 "vocabulary: the first piece offset is %u, not 0", v->piece_offsets[0]);
    return FALSE;
  }
  for (uint32_t i = 0; i < v->n_tokens; i++) {
    if (v->piece_offsets[i + 1] < v->piece_offsets[i]) {
      g_set_error (error, G_CONVERT_ERROR, G_CONVERT_ERROR_FAILED,
                   "vocabulary: piece offsets decrease at token %u (%u then %u)", i, v->piece_offsets[i],
                   v->piece_offsets[i + 1]);
      return FALSE;
    }
    uint8_t t = v->types[i];
    if (t < LEV_TOKTYPE_NORMAL || t > LEV_TOKTYPE_BYTE) {
      g_set_error (error, G_CONVERT_ERROR, G_CONVERT_ERROR_FAILED, "vocabulary: token %u has unknown type %u", i,
                   t);
      return FALSE;
    }
    if (isnan (v->scores[i])) {
      g_set_error (error, G_CONVERT_ERROR, G_CONVERT_ERROR_FAILED, "vocabulary: token %u has a NaN score", i);
      return FALSE;
    }
  }
  if (v->piece_offsets[v->n_tokens] > 0 && v->piece_bytes == NULL) {
    g_set_error_literal (error, G_CONVERT_ERROR, G_CONVERT_ERROR_FAILED, "vocabulary: piece bytes are missing");
    return FALSE;
  }
  return check_special_id (v->bos_id, v->n_tokens, "BOS", error)
      && check_special_id (v->eos_id, v->n_tokens, "EOS", error)
      && check_special_id (v->unk_id, v->n_tokens, "UNK", error)
      && check_special_id (v->pad_id, v->n_tokens, "PAD", error);
}

static int
cmp_u32_desc (const void *a, const void *b)
{
  uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
  return x < y ? 1 : x > y ? -1 : 0;
}

/* Builds a tokenizer over view (which must outlive it); NULL with error set if the vocabulary is unusable. */
LevTokenizer *
lev_tokenizer_new (const LevVocabView *view, GError **error)
{
  g_return_val_if_fail (view != NULL, NULL);
  if (view->kind == LEV_TOK_BYTE_BPE) {
    g_set_error_literal (error, G_CONVERT_ERROR, G_CONVERT_ERROR_NO_CONVERSION,
                         "byte-level BPE tokenizers (GPT-2 / Llama 3 / Qwen2 style) are not supported yet");
    return NULL;
  }
  if (view->kind != LEV_TOK_SPM_BPE) {
    g_set_error (error, G_CONVERT_ERROR, G_CONVERT_ERROR_NO_CONVERSION, "unknown tokenizer kind %u", view->kind);
    return NULL;
  }
  if (!validate_view (view, error))
    return NULL;

  LevTokenizer *tok = g_new0 (LevTokenizer, 1);
  tok->v = *view;
  uint32_t n = view->n_tokens;
  uint32_t size = 16;
  while (size < 2 * (uint64_t) n)
    size <<= 1;
  tok->table = g_new0 (uint32_t, size);
  tok->table_mask = size - 1;
  for (int b = 0; b < 256; b++)
    tok->byte_ids[b] = -1;

  GArray *ud_lens = g_array_new (FALSE, FALSE, sizeof (uint32_t));
  for (uint32_t id = 0; id < n; id++) {
    uint32_t len;
    const char *p = piece_ptr (tok, id, &len);
    uint8_t type = view->types[id];
    if (len == 0)
      continue;   /* an empty piece can never be looked up */
    uint32_t i = hash_bytes (p, len) & tok->table_mask;
    gboolean dup = FALSE;
    while (tok->table[i] != 0) {
      uint32_t olen;
      const char *o = piece_ptr (tok, tok->table[i] - 1, &olen);
      if (olen == len && memcmp (o, p, len) == 0) {
        dup = TRUE;
        break;
      }
      i = (i + 1) & tok->table_mask;
    }
    if (dup)
      continue;   /* the first (lowest) id of a repeated piece wins */
    tok->table[i] = id + 1;
    if (type_merges (type) && len > tok->max_merge_len)
      tok->max_merge_len = len;
    if (type == LEV_TOKTYPE_UNUSED)
      tok->has_unused = TRUE;
    if (type == LEV_TOKTYPE_USER_DEFINED) {
      tok->has_user_defined = TRUE;
      tok->ud_first[(uint8_t) p[0]] = 1;
      gboolean seen = FALSE;
      for (guint k = 0; k < ud_lens->len && !seen; k++)
        seen = g_array_index (ud_lens, uint32_t, k) == len;
      if (!seen)
        g_array_append_val (ud_lens, len);
    }
  }
  if (ud_lens->len > 1)
    qsort (ud_lens->data, ud_lens->len, sizeof (uint32_t), cmp_u32_desc);
  tok->n_ud_lens = ud_lens->len;

  /* When no mergeable piece has a space symbol right after a character that is not one, no merge can cross the
   * start of a run of spaces: the symbol sequence can then be cut there and each part merged alone (same result,
   * much smaller queues). True for Llama 2 and tok512, checked here for every vocabulary. */
  const char *sp = (view->flags & LEV_TOKF_ESCAPE_WS) ? SPACE_SYMBOL : " ";
  const uint32_t spl = (view->flags & LEV_TOKF_ESCAPE_WS) ? SPACE_SYMBOL_LEN : 1;
  tok->split_at_space = TRUE;
  for (uint32_t id = 0; id < n && tok->split_at_space; id++) {
    if (!type_merges (view->types[id]))
      continue;
    uint32_t len;
    const char *p = piece_ptr (tok, id, &len);
    for (uint32_t k = 1; k + spl <= len; k++)
      if (memcmp (p + k, sp, spl) == 0 && (k < spl || memcmp (p + k - spl, sp, spl) != 0)) {
        tok->split_at_space = FALSE;
        break;
      }
  }
  tok->ud_lens = (uint32_t *) g_array_free (ud_lens, FALSE);

  for (int b = 0; b < 256; b++) {
    char name[7];
    g_snprintf (name, sizeof name, "<0x%02X>", (unsigned) b);
    tok->byte_ids[b] = lookup (tok, name, 6);
  }
  tok->unk_id = view->unk_id;
  if (tok->unk_id < 0)
    for (uint32_t id = 0; id < n && tok->unk_id < 0; id++)
      if (view->types[id] == LEV_TOKTYPE_UNKNOWN)
        tok->unk_id = (int32_t) id;
  return tok;
}

/* Frees a tokenizer. */
void
lev_tokenizer_free (LevTokenizer *tok)
{
  if (tok == NULL)
    return;
  g_free (tok->table);
  g_free (tok->ud_lens);
  g_free (tok);
}

/* ---------------------------------------------------------------- encoding */

/* Returns the length of the valid UTF-8 character at s (at most n bytes), or 0 when it is malformed
 * (overlong forms, surrogates and code points over U+10FFFF included). NUL is a valid character. */
static inline size_t
utf8_char_len (const uint8_t *s, size_t n)
{
  uint8_t c = s[0];
  if (c < 0x80)
    return 1;
  size_t len;
  uint32_t cp;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (n < len)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
    return 0;
  return len;
}

/* Length of the UTF-8 character whose lead byte is c, in text already validated. */
static inline uint32_t
utf8_lead_len (uint8_t c)
{
  return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

/* Applies the whitespace rules to text; returns the number of bytes written to out (room for 3 * len + 3). */
static size_t
normalize (const LevTokenizer *tok, const char *text, size_t len, char *out)
{
  const uint32_t f = tok->v.flags;
  const gboolean remove_ws = (f & LEV_TOKF_REMOVE_EXTRA_WS) != 0;
  const gboolean escape = (f & LEV_TOKF_ESCAPE_WS) != 0;
  size_t i = 0, o = 0;
  if (remove_ws)
    while (i < len && text[i] == ' ')
      i++;
  if (i == len)
    return 0;
  if (f & LEV_TOKF_ADD_DUMMY_PREFIX) {
    if (escape) {
      memcpy (out, SPACE_SYMBOL, SPACE_SYMBOL_LEN);
      o = SPACE_SYMBOL_LEN;
    } else {
      out[o++] = ' ';
    }
  }
  gboolean prev_space = remove_ws;
  for (; i < len; i++) {
    char c = text[i];
    if (c == ' ') {
      if (prev_space)
        continue;
      if (escape) {
        memcpy (out + o, SPACE_SYMBOL, SPACE_SYMBOL_LEN);
        o += SPACE_SYMBOL_LEN;
      } else {
        out[o++] = ' ';
      }
      prev_space = remove_ws;
    } else {
      out[o++] = c;
      prev_space = FALSE;
    }
  }
  /* SentencePiece strips trailing space symbols from the normalized text, so a "▁" written in the text itself
   * at the end goes too. */
  if (remove_ws) {
    if (escape)
      while (o >= SPACE_SYMBOL_LEN && memcmp (out + o - SPACE_SYMBOL_LEN, SPACE_SYMBOL, SPACE_SYMBOL_LEN) == 0)
        o -= SPACE_SYMBOL_LEN;
    else
      while (o > 0 && out[o - 1] == ' ')
        o--;
  }
  return o;
}

typedef struct {
  uint32_t start, len;     /* bytes of the normalized text; len 0 once merged into its left neighbour */
  int32_t prev, next;      /* linked list of live symbols, -1 at the ends */
  uint32_t frozen;         /* a USER_DEFINED match: never merged */
} Symbol;

/* A possible merge of symbol `left` with its current right neighbour. It is stale when `left` is empty or when
 * left and its right neighbour no longer add up to `size` bytes: lengths only grow, so the sum stays `size`
 * exactly when neither side has changed. */
typedef struct {
  float score;
  int32_t left;
  uint32_t size;
} Candidate;

typedef struct {
  const LevTokenizer *tok;
  const char *norm;
  Symbol *sym;
  Candidate *heap;
  size_t n_heap, cap_heap;
  GHashTable *unused_splits; /* (start << 32 | len) -> left length, for merges that made an UNUSED piece */
  int32_t *out;
  size_t n_out;
  gboolean prev_unk;
} Encoder;

/* TRUE when a goes before b: higher score first, then the leftmost pair. */
static inline gboolean
cand_before (const Candidate *a, const Candidate *b)
{
  return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void
heap_push (Encoder *e, const Candidate *c)
{
  if (e->n_heap == e->cap_heap) {
    e->cap_heap = e->cap_heap ? 2 * e->cap_heap : 64;
    e->heap = g_renew (Candidate, e->heap, e->cap_heap);
  }
  size_t i = e->n_heap++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!cand_before (c, &e->heap[parent]))
      break;
    e->heap[i] = e->heap[parent];
    i = parent;
  }
  e->heap[i] = *c;
}

static Candidate
heap_pop (Encoder *e)
{
  Candidate top = e->heap[0];
  Candidate last = e->heap[--e->n_heap];
  size_t n = e->n_heap, i = 0;
  for (;;) {
    size_t l = 2 * i + 1;
    if (l >= n)
      break;
    size_t best = l;
    if (l + 1 < n && cand_before (&e->heap[l + 1], &e->heap[l]))
      best = l + 1;
    if (!cand_before (&e->heap[best], &last))
      break;
    e->heap[i] = e->heap[best];
    i = best;
  }
  if (n > 0)
    e->heap[i] = last;
  return top;
}

/* Queues the pair (left, right) when both symbols exist, neither is frozen and their concatenation is a piece. */
static void
maybe_add_pair (Encoder *e, int32_t left, int32_t right)
{
  if (left < 0 || right < 0)
    return;
  const Symbol *a = &e->sym[left], *b = &e->sym[right];
  if (a->frozen || b->frozen)
    return;
  uint32_t size = a->len + b->len;
  if (size > e->tok->max_merge_len)
    return;
  int32_t id = lookup (e->tok, e->norm + a->start, size);
  if (id < 0 || !type_merges (e->tok->v.types[id]))
    return;
  Candidate c = { e->tok->v.scores[id], left, size };
  heap_push (e, &c);
}

static inline guint64
split_key (uint32_t start, uint32_t len)
{
  return ((guint64) start << 32) | len;
}

/* Appends the ids of the piece at [start, start + len) of the normalized text. */
static void
emit_piece (Encoder *e, uint32_t start, uint32_t len)
{
  const LevTokenizer *tok = e->tok;
  int32_t id = lookup (tok, e->norm + start, len);
  if (id >= 0 && tok->v.types[id] == LEV_TOKTYPE_UNUSED && e->unused_splits != NULL) {
    guint64 key = split_key (start, len);
    gpointer left_len;
    if (g_hash_table_lookup_extended (e->unused_splits, &key, NULL, &left_len)) {
      uint32_t a = GPOINTER_TO_UINT (left_len);
      emit_piece (e, start, a);
      emit_piece (e, start + a, len - a);
      return;
    }
  }
  gboolean is_unk = id < 0 || tok->v.types[id] == LEV_TOKTYPE_UNKNOWN;
  if (!is_unk) {
    e->out[e->n_out++] = id;
  } else if (tok->v.flags & LEV_TOKF_BYTE_FALLBACK) {
    for (uint32_t i = 0; i < len; i++) {
      int32_t b = tok->byte_ids[(uint8_t) e->norm[start + i]];
      e->out[e->n_out++] = b >= 0 ? b : tok->unk_id;
    }
  } else if (!e->prev_unk) {
    e->out[e->n_out++] = tok->unk_id;  /* a run of unknown symbols is one unk, as in SentencePiece */
  }
  e->prev_unk = is_unk;
}

/* Runs BPE on the symbols first..end-1, a list of its own (prev of first and next of end-1 are -1). */
static void
merge_segment (Encoder *e, int32_t first, int32_t end)
{
  const LevTokenizer *tok = e->tok;
  e->n_heap = 0;
  for (int32_t i = first + 1; i < end; i++)
    maybe_add_pair (e, i - 1, i);
  while (e->n_heap > 0) {
    Candidate c = heap_pop (e);
    Symbol *a = &e->sym[c.left];
    if (a->len == 0 || a->next < 0)
      continue;
    int32_t right = a->next;
    Symbol *b = &e->sym[right];
    if (a->len + b->len != c.size)
      continue;   /* stale: one side has been merged since */
    if (tok->has_unused) {
      int32_t id = lookup (tok, e->norm + a->start, c.size);
      if (tok->v.types[id] == LEV_TOKTYPE_UNUSED) {
        if (e->unused_splits == NULL)
          e->unused_splits = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
        guint64 *key = g_new (guint64, 1);
        *key = split_key (a->start, c.size);
        g_hash_table_insert (e->unused_splits, key, GUINT_TO_POINTER (a->len));
      }
    }
    a->len = c.size;
    a->next = b->next;
    if (b->next >= 0)
      e->sym[b->next].prev = c.left;
    b->len = 0;
    maybe_add_pair (e, a->prev, c.left);
    maybe_add_pair (e, c.left, a->next);
  }
}

/* Checks the UTF-8 of text; on failure sets error with the byte offset of the first bad sequence. */
static gboolean
check_utf8 (const char *text, size_t len, GError **error)
{
  const uint8_t *s = (const uint8_t *) text;
  size_t i = 0;
  while (i < len) {
    if (s[i] < 0x80) {
      i++;
      continue;
    }
    size_t l = utf8_char_len (s + i, len - i);
    if (l == 0) {
      g_set_error (error, G_CONVERT_ERROR, G_CONVERT_ERROR_ILLEGAL_SEQUENCE,
                   "invalid UTF-8 in the text at byte %" G_GSIZE_FORMAT, i);
      return FALSE;
    }
    i += l;
  }
  return TRUE;
}

/* Encodes len bytes of UTF-8 text (len -1: NUL-terminated); prepends BOS when add_bos. Returns a g_malloc'd
 * array of *n_ids ids, or NULL with error set (for example on invalid UTF-8). */
int32_t *
lev_tokenizer_encode (const LevTokenizer *tok, const char *text, gssize len, gboolean add_bos, size_t *n_ids,
                      GError **error)
{
  g_return_val_if_fail (tok != NULL && n_ids != NULL, NULL);
  g_return_val_if_fail (text != NULL || len == 0, NULL);
  *n_ids = 0;
  size_t n = len < 0 ? strlen (text) : (size_t) len;
  if (n > MAX_TEXT_BYTES) {
    g_set_error (error, G_CONVERT_ERROR, G_CONVERT_ERROR_FAILED,
                 "the text is too long to encode at once (%" G_GSIZE_FORMAT " bytes)", n);
    return NULL;
  }
  if (!check_utf8 (text, n, error))
    return NULL;

  gchar *nfc = NULL;
  if ((tok->v.flags & LEV_TOKF_NFC) && n > 0) {
    /* GLib's normalizer stops at NUL: normalize the parts between NUL bytes and keep the NULs. */
    GString *s = g_string_sized_new (n + 16);
    for (size_t a = 0; a <= n;) {
      const char *z = memchr (text + a, '\0', n - a);
      size_t b = z ? (size_t) (z - text) : n;
      if (b > a) {
        gchar *part = g_utf8_normalize (text + a, (gssize) (b - a), G_NORMALIZE_DEFAULT_COMPOSE);
        if (part == NULL) {
          g_string_free (s, TRUE);
          g_set_error_literal (error, G_CONVERT_ERROR, G_CONVERT_ERROR_ILLEGAL_SEQUENCE,
                               "the text could not be NFC-normalized");
          return NULL;
        }
        g_string_append (s, part);
        g_free (part);
      }
      if (b < n)
        g_string_append_c (s, '\0');
      a = b + 1;
    }
    n = s->len;
    nfc = g_string_free (s, FALSE);
    text = nfc;
    if (n > MAX_TEXT_BYTES) {
      g_free (nfc);
      g_set_error (error, G_CONVERT_ERROR, G_CONVERT_ERROR_FAILED,
                   "the text is too long to encode at once (%" G_GSIZE_FORMAT " bytes)", n);
      return NULL;
    }
  }

  char *norm = g_malloc (3 * n + SPACE_SYMBOL_LEN + 1);
  size_t nn = normalize (tok, text, n, norm);
  g_free (nfc);

  Encoder e = { .tok = tok, .norm = norm };
  /* Every output id covers at least one byte of the normalized text (byte fallback: exactly one). */
  e.out = g_new (int32_t, nn + 1);
  if (add_bos && tok->v.bos_id >= 0)
    e.out[e.n_out++] = tok->v.bos_id;

  if (nn > 0) {
    /* Cut into symbols: USER_DEFINED pieces (longest match, frozen), otherwise single characters. */
    e.sym = g_new (Symbol, nn);
    int32_t n_sym = 0;
    for (uint32_t pos = 0; pos < nn;) {
      uint32_t l = 0, frozen = 0;
      if (tok->has_user_defined && tok->ud_first[(uint8_t) norm[pos]]) {
        for (uint32_t k = 0; k < tok->n_ud_lens; k++) {
          uint32_t ul = tok->ud_lens[k];
          if (ul > nn - pos)
            continue;
          int32_t id = lookup (tok, norm + pos, ul);
          if (id >= 0 && tok->v.types[id] == LEV_TOKTYPE_USER_DEFINED) {
            l = ul;
            frozen = 1;
            break;
          }
        }
      }
      if (l == 0) {
        l = utf8_lead_len ((uint8_t) norm[pos]);
        if (l > nn - pos)
          l = (uint32_t) (nn - pos);
      }
      e.sym[n_sym] = (Symbol) { pos, l, n_sym - 1, n_sym + 1, frozen };
      n_sym++;
      pos += l;
    }
    e.sym[n_sym - 1].next = -1;

    e.cap_heap = 64;
    e.heap = g_new (Candidate, e.cap_heap);
    const char *sp = (tok->v.flags & LEV_TOKF_ESCAPE_WS) ? SPACE_SYMBOL : " ";
    const uint32_t spl = (tok->v.flags & LEV_TOKF_ESCAPE_WS) ? SPACE_SYMBOL_LEN : 1;
    int32_t first = 0;
    for (int32_t i = 1; i <= n_sym; i++) {
      if (i < n_sym) {
        /* Cut before symbol i when it starts a run of spaces (see split_at_space). */
        const Symbol *cur = &e.sym[i], *prv = &e.sym[i - 1];
        if (!tok->split_at_space || cur->len < spl || memcmp (norm + cur->start, sp, spl) != 0
            || (prv->len >= spl && memcmp (norm + prv->start + prv->len - spl, sp, spl) == 0))
          continue;
        e.sym[i - 1].next = -1;
        e.sym[i].prev = -1;
      }
      merge_segment (&e, first, i);
      for (int32_t k = first; k >= 0; k = e.sym[k].next)
        emit_piece (&e, e.sym[k].start, e.sym[k].len);
      first = i;
    }
    g_free (e.sym);
    g_free (e.heap);
    if (e.unused_splits)
      g_hash_table_destroy (e.unused_splits);
  }
  g_free (norm);

  for (size_t i = 0; i < e.n_out; i++) {
    if (e.out[i] < 0) {
      g_set_error_literal (error, G_CONVERT_ERROR, G_CONVERT_ERROR_ILLEGAL_SEQUENCE,
                           "the text holds characters the vocabulary cannot represent and it has no unknown token");
      g_free (e.out);
      return NULL;
    }
  }
  *n_ids = e.n_out;
  return e.out;
}

/* ---------------------------------------------------------------- decoding */

/* Appends the bytes of token id to out as decoded text: "▁" becomes " ", byte tokens their byte, control tokens
 * nothing; the dummy-prefix space is dropped when prev_id is BOS (or -1, start of text). */
void
lev_tokenizer_decode_token (const LevTokenizer *tok, int32_t prev_id, int32_t id, GString *out)
{
  g_return_if_fail (tok != NULL && out != NULL);
  if (id < 0 || (uint32_t) id >= tok->v.n_tokens)
    return;
  uint8_t type = tok->v.types[id];
  uint32_t len;
  const char *p = piece_ptr (tok, (uint32_t) id, &len);
  if (type == LEV_TOKTYPE_CONTROL)
    return;
  if (type == LEV_TOKTYPE_UNKNOWN) {
    g_string_append (out, UNK_SURFACE);
    return;
  }
  if (type == LEV_TOKTYPE_BYTE) {
    int b = parse_byte_piece (p, len);
    if (b >= 0) {
      g_string_append_c (out, (char) b);
      return;
    }
  }
  const uint32_t f = tok->v.flags;
  if ((prev_id == -1 || (prev_id >= 0 && prev_id == tok->v.bos_id))
      && (f & (LEV_TOKF_ADD_DUMMY_PREFIX | LEV_TOKF_REMOVE_EXTRA_WS))) {
    if (f & LEV_TOKF_ESCAPE_WS) {
      if (len >= SPACE_SYMBOL_LEN && memcmp (p, SPACE_SYMBOL, SPACE_SYMBOL_LEN) == 0) {
        p += SPACE_SYMBOL_LEN;
        len -= SPACE_SYMBOL_LEN;
      }
    } else if (len > 0 && p[0] == ' ') {
      p++;
      len--;
    }
  }
  const char *end = p + len;
  while (p < end) {
    const char *s = p;
    while (p < end && !(end - p >= SPACE_SYMBOL_LEN && memcmp (p, SPACE_SYMBOL, SPACE_SYMBOL_LEN) == 0))
      p++;
    g_string_append_len (out, s, p - s);
    if (p < end) {
      g_string_append_c (out, ' ');
      p += SPACE_SYMBOL_LEN;
    }
  }
}

/* Decodes a whole id sequence into a newly allocated string (may hold invalid UTF-8 if the ids do). */
char *
lev_tokenizer_decode (const LevTokenizer *tok, const int32_t *ids, size_t n_ids)
{
  g_return_val_if_fail (tok != NULL && (ids != NULL || n_ids == 0), NULL);
  GString *s = g_string_sized_new (n_ids * 4 + 1);
  int32_t prev = -1;
  for (size_t i = 0; i < n_ids; i++) {
    lev_tokenizer_decode_token (tok, prev, ids[i], s);
    prev = ids[i];
  }
  return g_string_free (s, FALSE);
}

/* ---------------------------------------------------------------- accessors */

/* Returns the raw piece of token id (not NUL-terminated) and its length in *len; NULL when out of range. */
const char *
lev_tokenizer_piece (const LevTokenizer *tok, int32_t id, size_t *len)
{
  g_return_val_if_fail (tok != NULL, NULL);
  if (id < 0 || (uint32_t) id >= tok->v.n_tokens) {
    if (len)
      *len = 0;
    return NULL;
  }
  uint32_t l;
  const char *p = piece_ptr (tok, (uint32_t) id, &l);
  if (len)
    *len = l;
  return p;
}

/* Returns the number of tokens in the vocabulary. */
uint32_t
lev_tokenizer_n_tokens (const LevTokenizer *tok)
{
  g_return_val_if_fail (tok != NULL, 0);
  return tok->v.n_tokens;
}

/* Returns the BOS id or -1. */
int32_t
lev_tokenizer_bos (const LevTokenizer *tok)
{
  g_return_val_if_fail (tok != NULL, -1);
  return tok->v.bos_id;
}

/* Returns the EOS id or -1. */
int32_t
lev_tokenizer_eos (const LevTokenizer *tok)
{
  g_return_val_if_fail (tok != NULL, -1);
  return tok->v.eos_id;
}

/* Returns whether prompts get BOS by default (LEV_TOKF_ADD_BOS). */
gboolean
lev_tokenizer_adds_bos (const LevTokenizer *tok)
{
  g_return_val_if_fail (tok != NULL, FALSE);
  return (tok->v.flags & LEV_TOKF_ADD_BOS) != 0 && tok->v.bos_id >= 0;
}
