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

typedef struct Ranked Ranked;

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
  Ranked *rk;              /* merge-rank tables (byte-level BPE, or merges from tokenizer.json); NULL otherwise */
  uint32_t *ctrl_ids;      /* non-empty CONTROL pieces, longest first (lev_tokenizer_encode_special) */
  uint32_t n_ctrl;
};

static gboolean ranked_build (LevTokenizer *tok, GError **error);
static void ranked_free (Ranked *rk);

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

/* Orders control-piece ids by piece length, longest first (then by id). */
static gint
cmp_ctrl_len (gconstpointer a, gconstpointer b, gpointer user_data)
{
  const LevTokenizer *tok = user_data;
  uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
  uint32_t lx = tok->v.piece_offsets[x + 1] - tok->v.piece_offsets[x];
  uint32_t ly = tok->v.piece_offsets[y + 1] - tok->v.piece_offsets[y];
  if (lx != ly)
    return lx > ly ? -1 : 1;
  return x < y ? -1 : x > y;
}

/* Builds a tokenizer over view (which must outlive it); NULL with error set if the vocabulary is unusable. */
LevTokenizer *
lev_tokenizer_new (const LevVocabView *view, GError **error)
{
  g_return_val_if_fail (view != NULL, NULL);
  if (view->kind != LEV_TOK_SPM_BPE && view->kind != LEV_TOK_BYTE_BPE) {
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

  GArray *ctrl = g_array_new (FALSE, FALSE, sizeof (uint32_t));
  for (uint32_t id = 0; id < n; id++)
    if (view->types[id] == LEV_TOKTYPE_CONTROL && view->piece_offsets[id + 1] > view->piece_offsets[id])
      g_array_append_val (ctrl, id);
  tok->n_ctrl = ctrl->len;
  tok->ctrl_ids = (uint32_t *) g_array_free (ctrl, FALSE);
  g_qsort_with_data (tok->ctrl_ids, (gint) tok->n_ctrl, sizeof (uint32_t), cmp_ctrl_len, tok);

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
  if ((view->kind == LEV_TOK_BYTE_BPE || view->n_merges > 0) && !ranked_build (tok, error)) {
    lev_tokenizer_free (tok);
    return NULL;
  }
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
  g_free (tok->ctrl_ids);
  ranked_free (tok->rk);
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

/* A possible merge of symbol `left` with its current right neighbour, for both BPE flavours. `prio` orders the
 * queue (higher first, then the leftmost pair): the piece's score for SentencePiece, minus the merge rank for
 * byte-level BPE (ranks stay below 2^24, exact in a float). SentencePiece's entry is stale when `left` is empty
 * or when left and its right neighbour no longer add up to `size` bytes (lengths only grow, so the sum stays
 * `size` exactly when neither side has changed); byte-level BPE's when the pair's ids are no longer (a, b). */
typedef struct {
  float prio;
  int32_t left;
  uint32_t size;           /* SentencePiece */
  int32_t a, b;            /* byte-level BPE */
} MergeCand;

/* A binary heap of merge candidates, the best on top. */
typedef struct {
  MergeCand *v;
  size_t n, cap;
} MergeHeap;

/* TRUE when x goes before y: higher priority first, then the leftmost pair. */
static inline gboolean
cand_before (const MergeCand *x, const MergeCand *y)
{
  return x->prio > y->prio || (x->prio == y->prio && x->left < y->left);
}

/* Adds a candidate to the heap. */
static void
merge_heap_push (MergeHeap *h, const MergeCand *c)
{
  if (h->n == h->cap) {
    h->cap = h->cap ? 2 * h->cap : 64;
    h->v = g_renew (MergeCand, h->v, h->cap);
  }
  size_t i = h->n++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!cand_before (c, &h->v[parent]))
      break;
    h->v[i] = h->v[parent];
    i = parent;
  }
  h->v[i] = *c;
}

/* Removes and returns the best candidate (the heap must not be empty). */
static MergeCand
merge_heap_pop (MergeHeap *h)
{
  MergeCand top = h->v[0];
  MergeCand last = h->v[--h->n];
  size_t n = h->n, i = 0;
  for (;;) {
    size_t l = 2 * i + 1;
    if (l >= n)
      break;
    size_t best = l;
    if (l + 1 < n && cand_before (&h->v[l + 1], &h->v[l]))
      best = l + 1;
    if (!cand_before (&h->v[best], &last))
      break;
    h->v[i] = h->v[best];
    i = best;
  }
  if (n > 0)
    h->v[i] = last;
  return top;
}

typedef struct {
  const LevTokenizer *tok;
  const char *norm;
  Symbol *sym;
  MergeHeap heap;
  GHashTable *unused_splits; /* (start << 32 | len) -> left length, for merges that made an UNUSED piece */
  int32_t *out;
  size_t n_out;
  gboolean prev_unk;
} Encoder;

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
  MergeCand c = { e->tok->v.scores[id], left, size, 0, 0 };
  merge_heap_push (&e->heap, &c);
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
  e->heap.n = 0;
  for (int32_t i = first + 1; i < end; i++)
    maybe_add_pair (e, i - 1, i);
  while (e->heap.n > 0) {
    MergeCand c = merge_heap_pop (&e->heap);
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

/* ---------------------------------------------------------------- ranked-merge BPE (tokenizer.json) */

/* Semantics of the ranked path (what Hugging Face's tokenizers library does with a tokenizer.json whose model is
 * BPE; used for LEV_TOK_BYTE_BPE, and for LEV_TOK_SPM_BPE when the view carries merges):
 *  1. The text must be valid UTF-8. BOS first when asked.
 *  2. LEV_TOKF_SPLIT_ADDED: the added tokens (CONTROL, USER_DEFINED and UNKNOWN pieces) are found in the raw text,
 *     leftmost first and the longest at a position (HF's leftmost-longest matcher); each one is its own id and the
 *     text between them is encoded segment by segment. HF's per-token lstrip / rstrip / single_word / normalized
 *     options are not represented: every added token behaves as with all four false (the defaults, and what the
 *     Llama 3, Qwen2/3 and Llama-2-style tokenizer.json files use).
 *  3. Each segment: LEV_TOKF_NFC normalizes it (GLib, NUL bytes kept).
 *     Byte-level: LEV_TOKF_ADD_DUMMY_PREFIX (ByteLevel add_prefix_space) prepends ' ' unless the segment starts with
 *     one; the pre-tokenizer rule cuts it into pre-tokens (hand-written scanners equivalent to the regular
 *     expressions, see pretok_next); each pre-token's bytes are its initial symbols (the single-byte pieces; the
 *     GPT-2 byte-to-unicode alphabet is only a spelling of the pieces in tokenizer.json: pieces are stored as raw
 *     bytes). LEV_TOKF_IGNORE_MERGES: a pre-token that is a whole piece is that piece.
 *     SentencePiece-style: the segment is normalized as in the score-based path (dummy "▁" for a non-empty segment,
 *     spaces escaped as "▁"), and the whole segment is one pre-token whose initial symbols are its characters; a
 *     character that is not a piece becomes its <0xXX> byte pieces (LEV_TOKF_BYTE_FALLBACK) or unk (adjacent unks
 *     fused into one).
 *  4. Merges: repeatedly merge the adjacent pair with the lowest rank in the merge list, leftmost first among equal
 *     ranks (priority queue over a linked list: O(n log n) per pre-token). */

/* Pre-token classes of characters. */
enum { CC_L = 1u, CC_N = 2u, CC_WS = 4u, CC_NL = 8u };   /* letter, number, White_Space, \r or \n */

struct Ranked {
  uint32_t *ntab, nmask;     /* pieces BPE can produce (not CONTROL / USER_DEFINED): id + 1, 0 = empty */
  uint32_t *mtab, mmask;     /* merges keyed by (left id, right id): rank + 1 */
  uint32_t *mres;            /* id made by the merge of each rank */
  uint32_t *atab, amask;     /* added tokens matched in the text: id + 1 */
  uint8_t afirst[256];       /* bytes an added token can start with */
  uint32_t *alens, n_alens;  /* distinct added-token lengths, longest first */
  uint32_t max_piece;        /* longest piece in ntab, bytes */
  int32_t byte_tok[256];     /* byte-level: the single-byte piece; SentencePiece-style: <0xXX>; -1 if none */
  int32_t unk_id;
  gboolean byte_level;
};

static uint32_t *
table_new (uint32_t n, uint32_t *mask)
{
  uint32_t size = 16;
  while (size < 2 * (uint64_t) n)
    size <<= 1;
  *mask = size - 1;
  return g_new0 (uint32_t, size);
}

static inline uint32_t
hash_pair (uint32_t a, uint32_t b)
{
  uint64_t h = ((uint64_t) a << 32 | b) * 0x9E3779B97F4A7C15ull;
  return (uint32_t) (h >> 32) ^ (uint32_t) h;
}

/* Looks bytes up in one of the piece tables (ntab or atab); -1 when absent. */
static int32_t
rk_lookup (const LevTokenizer *tok, const uint32_t *tab, uint32_t mask, const char *s, size_t len)
{
  uint32_t i = hash_bytes (s, len) & mask;
  for (;;) {
    uint32_t slot = tab[i];
    if (slot == 0)
      return -1;
    uint32_t plen;
    const char *p = piece_ptr (tok, slot - 1, &plen);
    if (plen == len && memcmp (p, s, len) == 0)
      return (int32_t) (slot - 1);
    i = (i + 1) & mask;
  }
}

/* Inserts id into a piece table unless a piece with the same bytes is there (the lowest id wins). */
static void
rk_insert (const LevTokenizer *tok, uint32_t *tab, uint32_t mask, uint32_t id)
{
  uint32_t len;
  const char *p = piece_ptr (tok, id, &len);
  uint32_t i = hash_bytes (p, len) & mask;
  while (tab[i] != 0) {
    uint32_t olen;
    const char *o = piece_ptr (tok, tab[i] - 1, &olen);
    if (olen == len && memcmp (o, p, len) == 0)
      return;
    i = (i + 1) & mask;
  }
  tab[i] = id + 1;
}

/* Returns the rank of the merge (a, b) and its result in *res, or -1. */
static inline int64_t
rk_merge (const LevTokenizer *tok, const Ranked *rk, uint32_t a, uint32_t b, int32_t *res)
{
  uint32_t i = hash_pair (a, b) & rk->mmask;
  for (;;) {
    uint32_t slot = rk->mtab[i];
    if (slot == 0)
      return -1;
    const uint32_t *m = tok->v.merges + 2 * (size_t) (slot - 1);
    if (m[0] == a && m[1] == b) {
      *res = (int32_t) rk->mres[slot - 1];
      return slot - 1;
    }
    i = (i + 1) & rk->mmask;
  }
}

static void
ranked_free (Ranked *rk)
{
  if (rk == NULL)
    return;
  g_free (rk->ntab);
  g_free (rk->mtab);
  g_free (rk->mres);
  g_free (rk->atab);
  g_free (rk->alens);
  g_free (rk);
}

static inline gboolean
is_added_type (uint8_t t)
{
  return t == LEV_TOKTYPE_CONTROL || t == LEV_TOKTYPE_USER_DEFINED || t == LEV_TOKTYPE_UNKNOWN;
}

/* Builds the tables of the ranked path; FALSE with error set when the merges do not fit the vocabulary. */
static gboolean
ranked_build (LevTokenizer *tok, GError **error)
{
  const LevVocabView *v = &tok->v;
  Ranked *rk = g_new0 (Ranked, 1);
  tok->rk = rk;
  rk->byte_level = v->kind == LEV_TOK_BYTE_BPE;
  if (rk->byte_level && v->pretokenizer > LEV_PRETOK_QWEN2) {
    g_set_error (error, G_CONVERT_ERROR, G_CONVERT_ERROR_FAILED, "vocabulary: unknown pre-tokenizer %u",
                 v->pretokenizer);
    return FALSE;
  }
  if (v->n_merges > 0 && v->merges == NULL) {
    g_set_error_literal (error, G_CONVERT_ERROR, G_CONVERT_ERROR_FAILED, "vocabulary: the merges are missing");
    return FALSE;
  }
  uint32_t n = v->n_tokens, n_added = 0;
  for (uint32_t id = 0; id < n; id++)
    n_added += is_added_type (v->types[id]);
  rk->ntab = table_new (n, &rk->nmask);
  rk->atab = table_new (n_added, &rk->amask);
  GArray *alens = g_array_new (FALSE, FALSE, sizeof (uint32_t));
  gboolean split_added = (v->flags & LEV_TOKF_SPLIT_ADDED) != 0;
  for (uint32_t id = 0; id < n; id++) {
    uint32_t len;
    const char *p = piece_ptr (tok, id, &len);
    uint8_t t = v->types[id];
    if (len == 0)
      continue;
    if (is_added_type (t) && split_added) {
      rk_insert (tok, rk->atab, rk->amask, id);
      rk->afirst[(uint8_t) p[0]] = 1;
      gboolean seen = FALSE;
      for (guint k = 0; k < alens->len && !seen; k++)
        seen = g_array_index (alens, uint32_t, k) == len;
      if (!seen)
        g_array_append_val (alens, len);
    }
    if (t != LEV_TOKTYPE_CONTROL && t != LEV_TOKTYPE_USER_DEFINED) {
      rk_insert (tok, rk->ntab, rk->nmask, id);
      if (len > rk->max_piece)
        rk->max_piece = len;
    }
  }
  if (alens->len > 1)
    qsort (alens->data, alens->len, sizeof (uint32_t), cmp_u32_desc);
  rk->n_alens = alens->len;
  rk->alens = (uint32_t *) g_array_free (alens, FALSE);

  for (int b = 0; b < 256; b++) {
    if (rk->byte_level) {
      char c = (char) b;
      rk->byte_tok[b] = rk_lookup (tok, rk->ntab, rk->nmask, &c, 1);
    } else {
      rk->byte_tok[b] = tok->byte_ids[b];
    }
  }
  rk->unk_id = v->unk_id;

  rk->mtab = table_new (v->n_merges, &rk->mmask);
  rk->mres = g_new (uint32_t, v->n_merges > 0 ? v->n_merges : 1);
  GString *cat = g_string_new (NULL);
  for (uint32_t r = 0; r < v->n_merges; r++) {
    uint32_t a = v->merges[2 * (size_t) r], b = v->merges[2 * (size_t) r + 1];
    if (a >= n || b >= n) {
      g_set_error (error, G_CONVERT_ERROR, G_CONVERT_ERROR_FAILED,
                   "vocabulary: merge %u joins ids %u and %u, outside the %u tokens", r, a, b, n);
      g_string_free (cat, TRUE);
      return FALSE;
    }
    uint32_t la, lb;
    const char *pa = piece_ptr (tok, a, &la), *pb = piece_ptr (tok, b, &lb);
    g_string_truncate (cat, 0);
    g_string_append_len (cat, pa, la);
    g_string_append_len (cat, pb, lb);
    int32_t res = rk_lookup (tok, rk->ntab, rk->nmask, cat->str, cat->len);
    if (res < 0 || la == 0 || lb == 0) {
      g_set_error (error, G_CONVERT_ERROR, G_CONVERT_ERROR_FAILED,
                   "vocabulary: merge %u (ids %u + %u) does not make a piece of the vocabulary", r, a, b);
      g_string_free (cat, TRUE);
      return FALSE;
    }
    rk->mres[r] = (uint32_t) res;
    uint32_t i = hash_pair (a, b) & rk->mmask;
    gboolean dup = FALSE;
    while (rk->mtab[i] != 0 && !dup) {
      const uint32_t *m = v->merges + 2 * (size_t) (rk->mtab[i] - 1);
      dup = m[0] == a && m[1] == b;
      i = (i + 1) & rk->mmask;
    }
    if (!dup)
      rk->mtab[i] = r + 1;   /* a repeated pair keeps its first (best) rank */
  }
  g_string_free (cat, TRUE);
  return TRUE;
}

/* ---- pre-tokenizers */

/* Decodes the character at s[i] (the text is valid UTF-8) and its length. */
static inline gunichar
u8_at (const uint8_t *s, size_t i, uint32_t *len)
{
  uint8_t c = s[i];
  if (c < 0x80) {
    *len = 1;
    return c;
  }
  if (c < 0xE0) {
    *len = 2;
    return (gunichar) (c & 0x1F) << 6 | (s[i + 1] & 0x3F);
  }
  if (c < 0xF0) {
    *len = 3;
    return (gunichar) (c & 0x0F) << 12 | (gunichar) (s[i + 1] & 0x3F) << 6 | (s[i + 2] & 0x3F);
  }
  *len = 4;
  return (gunichar) (c & 0x07) << 18 | (gunichar) (s[i + 1] & 0x3F) << 12 | (gunichar) (s[i + 2] & 0x3F) << 6
       | (s[i + 3] & 0x3F);
}

/* Class of a character: \p{L}, \p{N}, \s (Unicode White_Space: U+0009..U+000D, U+0085 and the Z categories) and
 * [\r\n]; 0 for everything else. */
static inline unsigned
char_class (gunichar c)
{
  if (c < 0x80) {
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
      return CC_L;
    if (c >= '0' && c <= '9')
      return CC_N;
    if (c == '\n' || c == '\r')
      return CC_WS | CC_NL;
    return (c == ' ' || (c >= 0x09 && c <= 0x0D)) ? CC_WS : 0;
  }
  switch (g_unichar_type (c)) {
  case G_UNICODE_LOWERCASE_LETTER:
  case G_UNICODE_MODIFIER_LETTER:
  case G_UNICODE_OTHER_LETTER:
  case G_UNICODE_TITLECASE_LETTER:
  case G_UNICODE_UPPERCASE_LETTER:
    return CC_L;
  case G_UNICODE_DECIMAL_NUMBER:
  case G_UNICODE_LETTER_NUMBER:
  case G_UNICODE_OTHER_NUMBER:
    return CC_N;
  case G_UNICODE_SPACE_SEPARATOR:
  case G_UNICODE_LINE_SEPARATOR:
  case G_UNICODE_PARAGRAPH_SEPARATOR:
    return CC_WS;
  default:
    return c == 0x85 ? CC_WS : 0;
  }
}

/* End of the run of characters from i whose class satisfies (class & any) != 0, or, with any == 0, whose class is
 * 0; at most max characters (0 = no limit). */
static size_t
run_end (const uint8_t *s, size_t n, size_t i, unsigned any, unsigned max)
{
  unsigned count = 0;
  while (i < n && (max == 0 || count < max)) {
    uint32_t l;
    unsigned k = char_class (u8_at (s, i, &l));
    if (any ? !(k & any) : k != 0)
      break;
    i += l;
    count++;
  }
  return i;
}

/* Matches a contraction ('s 't 're 've 'm 'll 'd) after the apostrophe, at i; returns its end or 0. Case-insensitive
 * matching also takes U+017F (long s), which folds to 's' in Unicode. */
static size_t
contraction (const uint8_t *s, size_t n, size_t i, gboolean icase)
{
  if (i >= n)
    return 0;
  uint32_t l;
  gunichar c = u8_at (s, i, &l);
  if (icase) {
    if (c == 0x17F)
      return i + l;
    if (c < 0x80)
      c = g_ascii_tolower ((gchar) c);
  }
  if (c == 's' || c == 't' || c == 'm' || c == 'd')
    return i + 1;
  gunichar c2 = i + 1 < n ? s[i + 1] : 0;
  if (icase && c2 < 0x80)
    c2 = g_ascii_tolower ((gchar) c2);
  if (((c == 'r' || c == 'v') && c2 == 'e') || (c == 'l' && c2 == 'l'))
    return i + 2;
  return 0;
}

/* Returns the end of the pre-token that starts at i (i < n), as the leftmost-first match of the rule's regular
 * expression would give it. The alternatives, tried in order at i:
 *   GPT-2:   's|'t|'re|'ve|'m|'ll|'d | ?\p{L}+ | ?\p{N}+ | ?[^\s\p{L}\p{N}]+ | \s+(?!\S) | \s+
 *   Llama 3: (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N}{1,3} | ?[^\s\p{L}\p{N}]+[\r\n]*
 *            | \s*[\r\n]+ | \s+(?!\S) | \s+
 *   Qwen2:   as Llama 3 with \p{N} for \p{N}{1,3}.
 * Every character starts some alternative, so the pre-tokens tile the text. */
static size_t
pretok_next (uint32_t rule, const uint8_t *s, size_t n, size_t i)
{
  if (rule == LEV_PRETOK_NONE)
    return n;
  uint32_t l0, l1 = 0;
  gunichar c0 = u8_at (s, i, &l0);
  unsigned k0 = char_class (c0), k1 = CC_WS;   /* past the end counts as whitespace for the tests below */
  size_t i1 = i + l0;
  gboolean has1 = i1 < n;
  if (has1)
    k1 = char_class (u8_at (s, i1, &l1));
  if (c0 == '\'') {
    size_t e = contraction (s, n, i1, rule != LEV_PRETOK_GPT2);
    if (e)
      return e;
  }
  if (rule == LEV_PRETOK_GPT2) {
    size_t start = i;
    unsigned k = k0;
    if (c0 == ' ' && has1 && !(k1 & CC_WS)) {   /* " ?" takes the space when a letter, number or other follows */
      start = i1;
      k = k1;
    }
    if (k & CC_L)
      return run_end (s, n, start, CC_L, 0);
    if (k & CC_N)
      return run_end (s, n, start, CC_N, 0);
    if (k == 0)
      return run_end (s, n, start, 0, 0);
  } else {
    if (k0 & CC_L)
      return run_end (s, n, i, CC_L, 0);
    if (!(k0 & (CC_NL | CC_L | CC_N)) && has1 && (k1 & CC_L))
      return run_end (s, n, i1, CC_L, 0);
    if (k0 & CC_N)
      return run_end (s, n, i, CC_N, rule == LEV_PRETOK_QWEN2 ? 1 : 3);
    if (k0 == 0)                                /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
      return run_end (s, n, run_end (s, n, i, 0, 0), CC_NL, 0);
    if (c0 == ' ' && has1 && k1 == 0)
      return run_end (s, n, run_end (s, n, i1, 0, 0), CC_NL, 0);
  }
  /* whitespace at i */
  size_t j = i, last_start = i, nl_end = 0;
  unsigned count = 0;
  while (j < n) {
    uint32_t l;
    unsigned k = char_class (u8_at (s, j, &l));
    if (!(k & CC_WS))
      break;
    last_start = j;
    j += l;
    count++;
    if (k & CC_NL)
      nl_end = j;
  }
  if (rule != LEV_PRETOK_GPT2 && nl_end)
    return nl_end;                       /* \s*[\r\n]+ : up to the last line break of the run */
  if (j == n || count < 2)
    return j;                            /* \s+(?!\S) at the end of the text, or \s+ */
  return last_start;                     /* \s+(?!\S): leave the last space for the next word */
}

/* ---- merging */

typedef struct {
  int32_t id;              /* -1 once merged into the left neighbour */
  int32_t prev, next;
} RSym;


typedef struct {
  const LevTokenizer *tok;
  const Ranked *rk;
  GArray *out;             /* int32_t */
  RSym *sym;
  size_t n_sym, cap_sym;
  MergeHeap heap;
  gboolean prev_unk;
} RWork;


static void
rsym_push (RWork *w, int32_t id)
{
  if (w->n_sym == w->cap_sym) {
    w->cap_sym = w->cap_sym ? 2 * w->cap_sym : 64;
    w->sym = g_renew (RSym, w->sym, w->cap_sym);
  }
  int32_t i = (int32_t) w->n_sym++;
  w->sym[i] = (RSym) { id, i - 1, -1 };
  if (i > 0)
    w->sym[i - 1].next = i;
}

/* Adds an unknown symbol; adjacent unknowns are fused into one (SentencePiece-style vocabularies only). */
static void
rsym_unk (RWork *w)
{
  if (w->rk->unk_id < 0)
    return;   /* nothing can stand for it: dropped, as Hugging Face does without an unk token */
  if (!w->rk->byte_level && w->n_sym > 0 && w->prev_unk)
    return;
  rsym_push (w, w->rk->unk_id);
  w->prev_unk = TRUE;
}

static void
maybe_queue (RWork *w, int32_t left)
{
  if (left < 0)
    return;
  int32_t right = w->sym[left].next;
  if (right < 0)
    return;
  int32_t a = w->sym[left].id, b = w->sym[right].id, res = -1;
  int64_t rank = rk_merge (w->tok, w->rk, (uint32_t) a, (uint32_t) b, &res);
  if (rank < 0)
    return;
  MergeCand c = { -(float) rank, left, 0, a, b };
  merge_heap_push (&w->heap, &c);
}

/* Merges the symbols queued in w and appends their ids to w->out. */
static void
merge_and_emit (RWork *w)
{
  if (w->n_sym == 0)
    return;
  w->heap.n = 0;
  for (int32_t i = 0; i + 1 < (int32_t) w->n_sym; i++)
    maybe_queue (w, i);
  while (w->heap.n > 0) {
    MergeCand c = merge_heap_pop (&w->heap);
    RSym *x = &w->sym[c.left];
    if (x->id != c.a || x->next < 0 || w->sym[x->next].id != c.b)
      continue;   /* stale: one side has changed since */
    int32_t res = -1;
    rk_merge (w->tok, w->rk, (uint32_t) c.a, (uint32_t) c.b, &res);
    RSym *y = &w->sym[x->next];
    x->id = res;
    x->next = y->next;
    if (y->next >= 0)
      w->sym[y->next].prev = c.left;
    y->id = -1;
    maybe_queue (w, x->prev);
    maybe_queue (w, c.left);
  }
  for (int32_t i = 0; i >= 0; i = w->sym[i].next)
    g_array_append_val (w->out, w->sym[i].id);
  w->n_sym = 0;
}

/* Encodes one byte-level pre-token. */
static void
encode_bytes_word (RWork *w, const uint8_t *s, size_t len)
{
  const LevTokenizer *tok = w->tok;
  const Ranked *rk = w->rk;
  if ((tok->v.flags & LEV_TOKF_IGNORE_MERGES) && len <= rk->max_piece) {
    int32_t id = rk_lookup (tok, rk->ntab, rk->nmask, (const char *) s, len);
    if (id >= 0) {
      g_array_append_val (w->out, id);
      return;
    }
  }
  w->n_sym = 0;
  w->prev_unk = FALSE;
  for (size_t i = 0; i < len; i++) {
    if (rk->byte_tok[s[i]] >= 0)
      rsym_push (w, rk->byte_tok[s[i]]);
    else
      rsym_unk (w);
  }
  merge_and_emit (w);
}

/* Encodes one SentencePiece-style pre-token (normalized text) from its characters. */
static void
encode_chars_word (RWork *w, const uint8_t *s, size_t len)
{
  const LevTokenizer *tok = w->tok;
  const Ranked *rk = w->rk;
  w->n_sym = 0;
  w->prev_unk = FALSE;
  for (size_t i = 0; i < len;) {
    uint32_t l = utf8_lead_len (s[i]);
    if (l > len - i)
      l = (uint32_t) (len - i);
    int32_t id = rk_lookup (tok, rk->ntab, rk->nmask, (const char *) s + i, l);
    gboolean bytes_ok = FALSE;
    if (id >= 0 && tok->v.types[id] != LEV_TOKTYPE_UNKNOWN) {
      rsym_push (w, id);
      w->prev_unk = FALSE;
    } else {
      if (tok->v.flags & LEV_TOKF_BYTE_FALLBACK) {
        bytes_ok = TRUE;
        for (uint32_t k = 0; k < l; k++)
          bytes_ok = bytes_ok && rk->byte_tok[s[i + k]] >= 0;
      }
      if (bytes_ok) {
        for (uint32_t k = 0; k < l; k++)
          rsym_push (w, rk->byte_tok[s[i + k]]);
        w->prev_unk = FALSE;
      } else {
        rsym_unk (w);
      }
    }
    i += l;
  }
  merge_and_emit (w);
}

/* NFC-normalizes len bytes of valid UTF-8, keeping NUL bytes (GLib's normalizer stops at them). */
static gchar *
nfc_with_nuls (const char *text, size_t n, size_t *out_len)
{
  GString *s = g_string_sized_new (n + 16);
  for (size_t a = 0; a <= n;) {
    const char *z = memchr (text + a, '\0', n - a);
    size_t b = z ? (size_t) (z - text) : n;
    if (b > a) {
      gchar *part = g_utf8_normalize (text + a, (gssize) (b - a), G_NORMALIZE_DEFAULT_COMPOSE);
      if (part == NULL) {
        g_string_free (s, TRUE);
        return NULL;
      }
      g_string_append (s, part);
      g_free (part);
    }
    if (b < n)
      g_string_append_c (s, '\0');
    a = b + 1;
  }
  *out_len = s->len;
  return g_string_free (s, FALSE);
}

/* Encodes one segment of text between added tokens. */
static gboolean
encode_segment (RWork *w, const char *text, size_t n, GError **error)
{
  const LevTokenizer *tok = w->tok;
  const uint32_t f = tok->v.flags;
  if (n == 0)
    return TRUE;
  gchar *nfc = NULL;
  if (f & LEV_TOKF_NFC) {
    nfc = nfc_with_nuls (text, n, &n);
    if (nfc == NULL) {
      g_set_error_literal (error, G_CONVERT_ERROR, G_CONVERT_ERROR_ILLEGAL_SEQUENCE,
                           "the text could not be NFC-normalized");
      return FALSE;
    }
    text = nfc;
  }
  if (w->rk->byte_level) {
    gchar *prefixed = NULL;
    if ((f & LEV_TOKF_ADD_DUMMY_PREFIX) && n > 0 && text[0] != ' ') {
      prefixed = g_malloc (n + 1);
      prefixed[0] = ' ';
      memcpy (prefixed + 1, text, n);
      text = prefixed;
      n++;
    }
    const uint8_t *s = (const uint8_t *) text;
    for (size_t i = 0; i < n;) {
      size_t j = pretok_next (tok->v.pretokenizer, s, n, i);
      encode_bytes_word (w, s + i, j - i);
      i = j;
    }
    g_free (prefixed);
  } else {
    char *norm = g_malloc (3 * n + SPACE_SYMBOL_LEN + 1);
    size_t nn = normalize (tok, text, n, norm);
    encode_chars_word (w, (const uint8_t *) norm, nn);
    g_free (norm);
  }
  g_free (nfc);
  return TRUE;
}

/* TRUE when [p, p + l) overlaps the plain range [plain_start, plain_end), where control tokens are not matched. */
static inline gboolean
in_plain (size_t p, size_t l, size_t plain_start, size_t plain_end)
{
  return p < plain_end && p + l > plain_start;
}

/* Returns the length of the added token that starts at text[p] (the longest one), 0 when none; its id in *id.
 * Control and unknown pieces overlapping [plain_start, plain_end) are not matched there (as Hugging Face's
 * split_special_tokens does for special tokens); user-defined ones are. */
static size_t
match_added (const LevTokenizer *tok, const char *text, size_t n, size_t p, size_t plain_start, size_t plain_end,
             int32_t *id)
{
  const Ranked *rk = tok->rk;
  if (!rk->afirst[(uint8_t) text[p]])
    return 0;
  for (uint32_t k = 0; k < rk->n_alens; k++) {
    uint32_t l = rk->alens[k];
    if (l > n - p)
      continue;
    int32_t found = rk_lookup (tok, rk->atab, rk->amask, text + p, l);
    if (found >= 0 && in_plain (p, l, plain_start, plain_end) && tok->v.types[found] != LEV_TOKTYPE_USER_DEFINED)
      continue;
    if (found >= 0) {
      *id = found;
      return l;
    }
  }
  return 0;
}

/* The ranked path of lev_tokenizer_encode (the text is already checked); no control token is matched in
 * [plain_start, plain_end). */
static int32_t *
encode_ranked (const LevTokenizer *tok, const char *text, size_t n, gboolean add_bos, size_t plain_start,
               size_t plain_end, size_t *n_ids, GError **error)
{
  RWork w = { .tok = tok, .rk = tok->rk };
  w.out = g_array_sized_new (FALSE, FALSE, sizeof (int32_t), (guint) MIN (n / 3 + 16, 1u << 20));
  if (add_bos && tok->v.bos_id >= 0)
    g_array_append_val (w.out, tok->v.bos_id);
  gboolean ok = TRUE;
  size_t seg = 0;
  if (tok->rk->n_alens > 0) {
    for (size_t p = 0; p < n && ok;) {
      int32_t id;
      size_t l = match_added (tok, text, n, p, plain_start, plain_end, &id);
      if (l == 0) {
        p++;
        continue;
      }
      ok = encode_segment (&w, text + seg, p - seg, error);
      g_array_append_val (w.out, id);
      p += l;
      seg = p;
    }
  }
  if (ok)
    ok = encode_segment (&w, text + seg, n - seg, error);
  g_free (w.sym);
  g_free (w.heap.v);
  if (!ok) {
    g_array_free (w.out, TRUE);
    return NULL;
  }
  *n_ids = w.out->len;
  return (int32_t *) g_array_free (w.out, FALSE);
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
  if (tok->rk != NULL)
    return encode_ranked (tok, text, n, add_bos, 0, 0, n_ids, error);

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
    g_free (e.heap.v);
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

/* Encodes text in which control tokens (BOS, EOS, chat-template markers) may be written, as a rendered chat
 * template is: each one found in the text (leftmost, the longest at a position) becomes its id, and the text
 * between them is encoded as lev_tokenizer_encode does, segment by segment. With LEV_TOKF_SPLIT_ADDED
 * (tokenizer.json) this is what lev_tokenizer_encode does already. */
int32_t *
lev_tokenizer_encode_special (const LevTokenizer *tok, const char *text, gssize len, gboolean add_bos,
                              size_t *n_ids, GError **error)
{
  return lev_tokenizer_encode_special_except (tok, text, len, add_bos, 0, 0, n_ids, error);
}

/* Encodes as lev_tokenizer_encode_special, except that no control token is matched in [plain_start, plain_end). */
int32_t *
lev_tokenizer_encode_special_except (const LevTokenizer *tok, const char *text, gssize len, gboolean add_bos,
                                     size_t plain_start, size_t plain_end, size_t *n_ids, GError **error)
{
  g_return_val_if_fail (tok != NULL && n_ids != NULL, NULL);
  g_return_val_if_fail (text != NULL || len == 0, NULL);
  if (tok->v.flags & LEV_TOKF_SPLIT_ADDED) {
    size_t n = len < 0 ? strlen (text) : (size_t) len;
    if (tok->rk == NULL || n > MAX_TEXT_BYTES || plain_end <= plain_start)
      return lev_tokenizer_encode (tok, text, len, add_bos, n_ids, error);
    *n_ids = 0;
    if (!check_utf8 (text, n, error))
      return NULL;
    return encode_ranked (tok, text, n, add_bos, plain_start, plain_end, n_ids, error);
  }
  if (tok->n_ctrl == 0)
    return lev_tokenizer_encode (tok, text, len, add_bos, n_ids, error);
  *n_ids = 0;
  size_t n = len < 0 ? strlen (text) : (size_t) len;
  if (!check_utf8 (text, n, error))
    return NULL;
  /* space reserved up front: an empty result is still an allocated array (NULL means an error) */
  GArray *out = g_array_sized_new (FALSE, FALSE, sizeof (int32_t), (guint) MIN (n + 2, 4096));
  if (add_bos && tok->v.bos_id >= 0)
    g_array_append_val (out, tok->v.bos_id);
  size_t seg = 0;
  for (size_t p = 0; p <= n; p++) {
    int32_t found = -1;
    uint32_t flen = 0;
    for (uint32_t k = 0; p < n && k < tok->n_ctrl && found < 0; k++) {
      uint32_t l;
      const char *c = piece_ptr (tok, tok->ctrl_ids[k], &l);
      if (l <= n - p && memcmp (text + p, c, l) == 0 && !in_plain (p, l, plain_start, plain_end)) {
        found = (int32_t) tok->ctrl_ids[k];
        flen = l;
      }
    }
    if (found < 0 && p < n)
      continue;
    if (p > seg) {
      size_t m = 0;
      int32_t *ids = lev_tokenizer_encode (tok, text + seg, (gssize) (p - seg), FALSE, &m, error);
      if (ids == NULL) {
        g_array_free (out, TRUE);
        return NULL;
      }
      g_array_append_vals (out, ids, (guint) m);
      g_free (ids);
    }
    if (found >= 0) {
      g_array_append_val (out, found);
      p += flen - 1;
      seg = p + 1;
    }
  }
  *n_ids = out->len;
  return (int32_t *) g_array_free (out, FALSE);
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
  const uint32_t f = tok->v.flags;
  /* Tokenizers from tokenizer.json (added tokens matched in the text): an added token decodes to its text, as
   * Hugging Face's decode (skip_special_tokens=False) does, and the text after one starts a new segment, whose
   * dummy prefix is dropped like the one at the start. */
  gboolean split_added = (f & LEV_TOKF_SPLIT_ADDED) != 0;
  gboolean at_start = prev_id == -1 || (prev_id >= 0 && prev_id == tok->v.bos_id)
                   || (split_added && prev_id >= 0 && (uint32_t) prev_id < tok->v.n_tokens
                       && is_added_type (tok->v.types[prev_id]));
  if (split_added && is_added_type (type)) {
    g_string_append_len (out, p, len);
    return;
  }
  if (tok->v.kind == LEV_TOK_BYTE_BPE) {
    /* pieces are raw bytes; ByteLevel add_prefix_space put one space in front of each segment */
    if (at_start && (f & LEV_TOKF_ADD_DUMMY_PREFIX) && len > 0 && p[0] == ' ') {
      p++;
      len--;
    }
    g_string_append_len (out, p, len);
    return;
  }
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
  if (at_start && (f & (LEV_TOKF_ADD_DUMMY_PREFIX | LEV_TOKF_REMOVE_EXTRA_WS))) {
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

/* Returns the id of the piece with exactly these bytes (len -1: NUL-terminated; the lowest id if repeated), or -1. */
int32_t
lev_tokenizer_find_piece (const LevTokenizer *tok, const char *piece, gssize len)
{
  g_return_val_if_fail (tok != NULL && piece != NULL, -1);
  size_t n = len < 0 ? strlen (piece) : (size_t) len;
  return n == 0 ? -1 : lookup (tok, piece, n);
}

/* Returns whether id is a control (special) token such as BOS, EOS or a chat-template marker. */
gboolean
lev_tokenizer_is_control (const LevTokenizer *tok, int32_t id)
{
  g_return_val_if_fail (tok != NULL, FALSE);
  return id >= 0 && (uint32_t) id < tok->v.n_tokens && tok->v.types[id] == LEV_TOKTYPE_CONTROL;
}

/* Returns the end of the pre-token of a byte-level split rule (LevPretokenizer) that starts at pos < len in valid
 * UTF-8 text (what the rule's regular expression matches there); exposed for tests. */
gsize
lev_pretokenize_next (guint32 rule, const char *text, gsize len, gsize pos)
{
  g_return_val_if_fail (text != NULL && pos < len && rule <= LEV_PRETOK_QWEN2, len);
  return pretok_next (rule, (const uint8_t *) text, len, pos);
}

/* ---------------------------------------------------------------- GPT-2 byte-level alphabet */

/* The printable bytes ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF) stand for themselves; the 68 others, in byte
 * order, for U+0100, U+0101, ... (the alphabet of GPT-2's byte-level BPE, used by every byte-level tokenizer.json). */
static inline gboolean
byte_is_printable (guint b)
{
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

/* Returns the character that stands for byte b in the GPT-2 byte-level alphabet used by tokenizer.json files. */
gunichar
lev_byte_level_char (guint8 b)
{
  if (byte_is_printable (b))
    return b;
  guint k = 0;
  for (guint x = 0; x < b; x++)
    k += !byte_is_printable (x);
  return 0x100 + k;
}

/* Appends to out the bytes that a byte-level string (len -1: NUL-terminated) spells; FALSE when it holds a
 * character outside the alphabet (out then holds the bytes before it) or is not valid UTF-8. */
gboolean
lev_byte_level_to_bytes (const char *s, gssize len, GString *out)
{
  g_return_val_if_fail (s != NULL && out != NULL, FALSE);
  static gsize init = 0;
  static guint8 high[68];   /* byte of U+0100 + k */
  if (g_once_init_enter (&init)) {
    guint k = 0;
    for (guint b = 0; b < 256; b++)
      if (!byte_is_printable (b))
        high[k++] = (guint8) b;
    g_once_init_leave (&init, 1);
  }
  const gchar *end = NULL;
  if (!g_utf8_validate (s, len, &end))
    return FALSE;
  for (const gchar *p = s; p < end; p = g_utf8_next_char (p)) {
    gunichar c = g_utf8_get_char (p);
    if (c < 0x100 && byte_is_printable (c))
      g_string_append_c (out, (gchar) c);
    else if (c >= 0x100 && c < 0x100 + G_N_ELEMENTS (high))
      g_string_append_c (out, (gchar) high[c - 0x100]);
    else
      return FALSE;
  }
  return TRUE;
}
