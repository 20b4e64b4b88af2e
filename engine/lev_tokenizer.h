/* lev_tokenizer.h: text <-> token ids for the tokenizers embedded in .leviathan files. */
#pragma once

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

/* ---- The tokenizer's enums and flags, as stored in the tokenizer section of a .leviathan file (lev_format.h). ---- */

typedef enum {
  LEV_TOK_NONE = 0,
  LEV_TOK_SPM_BPE = 1,         /* SentencePiece BPE: merge the adjacent pair with the highest score */
  LEV_TOK_BYTE_BPE = 2,        /* byte-level BPE with a ranked merge list (GPT-2 / Llama 3 / Qwen2) */
} LevTokenizerKind;

/* Tokenizer flags (LevTokenizerHeader.flags). */
enum {
  LEV_TOKF_ADD_DUMMY_PREFIX = 1u << 0,   /* prepend one "▁" (SentencePiece add_dummy_prefix) */
  LEV_TOKF_REMOVE_EXTRA_WS = 1u << 1,    /* strip and collapse runs of spaces before encoding */
  LEV_TOKF_BYTE_FALLBACK = 1u << 2,      /* unknown characters become <0xXX> byte tokens */
  LEV_TOKF_ESCAPE_WS = 1u << 3,          /* spaces are written as "▁" (U+2581) */
  LEV_TOKF_ADD_BOS = 1u << 4,            /* a prompt starts with bos_id by default */
  LEV_TOKF_ADD_EOS = 1u << 5,
  LEV_TOKF_NFC = 1u << 6,                /* NFC-normalize input text */
  LEV_TOKF_SPLIT_ADDED = 1u << 7,        /* Hugging Face: control, user-defined and unknown pieces written in the
                                          * text are matched (longest first) before normalization and splitting */
  LEV_TOKF_IGNORE_MERGES = 1u << 8,      /* byte-level BPE: a pre-token that is a whole piece skips the merges */
};

/* Pre-tokenizer split rules of byte-level BPE (LevTokenizerHeader.pretokenizer). */
typedef enum {
  LEV_PRETOK_NONE = 0,         /* the whole text (between added tokens) is one pre-token */
  LEV_PRETOK_GPT2 = 1,         /* GPT-2's pattern: 's|'t|..| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
  LEV_PRETOK_LLAMA3 = 2,       /* Llama 3 (tiktoken cl100k): case-insensitive contractions, \p{N}{1,3}, ... */
  LEV_PRETOK_QWEN2 = 3,        /* Qwen2: the Llama 3 pattern with single digits (\p{N}) */
} LevPretokenizer;

/* SentencePiece piece types (same numbers as sentencepiece_model.proto). */
typedef enum {
  LEV_TOKTYPE_NORMAL = 1,
  LEV_TOKTYPE_UNKNOWN = 2,
  LEV_TOKTYPE_CONTROL = 3,
  LEV_TOKTYPE_USER_DEFINED = 4,
  LEV_TOKTYPE_UNUSED = 5,
  LEV_TOKTYPE_BYTE = 6,
} LevTokenType;


/* A read-only view of a vocabulary: arrays that live in the mapped model file or in the converter's memory. */
typedef struct LevVocabView {
  uint32_t kind;                 /* LevTokenizerKind */
  uint32_t flags;                /* LEV_TOKF_* */
  uint32_t n_tokens;
  const uint32_t *piece_offsets; /* n_tokens + 1 */
  const char *piece_bytes;
  const float *scores;           /* n_tokens */
  const uint8_t *types;          /* n_tokens, LevTokenType */
  uint32_t n_merges;
  const uint32_t *merges;        /* n_merges pairs */
  uint32_t pretokenizer;
  int32_t bos_id, eos_id, unk_id, pad_id;
} LevVocabView;

typedef struct LevTokenizer LevTokenizer;

/* Builds a tokenizer over view (which must outlive it); NULL with error set if the vocabulary is unusable. */
LevTokenizer *lev_tokenizer_new (const LevVocabView *view, GError **error);
/* Frees a tokenizer. */
void lev_tokenizer_free (LevTokenizer *tok);

/* Encodes len bytes of UTF-8 text (len -1: NUL-terminated); prepends BOS when add_bos. Returns a g_malloc'd
 * array of *n_ids ids, or NULL with error set (for example on invalid UTF-8). */
int32_t *lev_tokenizer_encode (const LevTokenizer *tok, const char *text, gssize len, gboolean add_bos,
                               size_t *n_ids, GError **error);
/* Encodes text in which control tokens (BOS, EOS, chat-template markers) may be written, as in a rendered chat
 * prompt: each one becomes its id and the text between them is encoded as by lev_tokenizer_encode. Tokenizers from
 * tokenizer.json already match their added tokens in lev_tokenizer_encode; this makes SentencePiece ones do it too. */
int32_t *lev_tokenizer_encode_special (const LevTokenizer *tok, const char *text, gssize len, gboolean add_bos,
                                       size_t *n_ids, GError **error);
/* Encodes as lev_tokenizer_encode_special, except that no control (or unknown) token is matched where it would
 * overlap the bytes [plain_start, plain_end): a user's message inside a rendered chat prompt is encoded as text even
 * where it spells <|im_end|> or </s>, as Hugging Face's split_special_tokens=True does (user-defined added tokens are
 * still matched there). The whole text is still encoded as one string, so benign text gets the same ids. */
int32_t *lev_tokenizer_encode_special_except (const LevTokenizer *tok, const char *text, gssize len,
                                              gboolean add_bos, size_t plain_start, size_t plain_end, size_t *n_ids,
                                              GError **error);
/* Appends the bytes of token id to out as decoded text: "▁" becomes " ", byte tokens their byte, control tokens
 * nothing; the dummy-prefix space is dropped when prev_id is BOS (or -1, start of text). Byte-level pieces are
 * their raw bytes. With LEV_TOKF_SPLIT_ADDED (tokenizer.json) added tokens, control ones included, decode to their
 * text and the dummy prefix after one is dropped too, so that decoding inverts encoding. */
void lev_tokenizer_decode_token (const LevTokenizer *tok, int32_t prev_id, int32_t id, GString *out);
/* Decodes a whole id sequence into a newly allocated string (may hold invalid UTF-8 if the ids do). */
char *lev_tokenizer_decode (const LevTokenizer *tok, const int32_t *ids, size_t n_ids);
/* Returns the raw piece of token id (not NUL-terminated) and its length in *len; NULL when out of range. */
const char *lev_tokenizer_piece (const LevTokenizer *tok, int32_t id, size_t *len);
/* Returns the number of tokens in the vocabulary. */
uint32_t lev_tokenizer_n_tokens (const LevTokenizer *tok);
/* Returns the BOS id or -1. */
int32_t lev_tokenizer_bos (const LevTokenizer *tok);
/* Returns the EOS id or -1. */
int32_t lev_tokenizer_eos (const LevTokenizer *tok);
/* Returns whether prompts get BOS by default (LEV_TOKF_ADD_BOS). */
gboolean lev_tokenizer_adds_bos (const LevTokenizer *tok);
/* Returns the id of the piece with exactly these bytes (len -1: NUL-terminated; the lowest id if repeated), or -1. */
int32_t lev_tokenizer_find_piece (const LevTokenizer *tok, const char *piece, gssize len);
/* Returns whether id is a control (special) token such as BOS, EOS or a chat-template marker. */
gboolean lev_tokenizer_is_control (const LevTokenizer *tok, int32_t id);

/* Returns the end of the pre-token of a byte-level split rule (LevPretokenizer) that starts at pos < len in valid
 * UTF-8 text (what the rule's regular expression matches there); exposed for tests. */
gsize lev_pretokenize_next (guint32 rule, const char *text, gsize len, gsize pos);

/* Returns the character that stands for byte b in the GPT-2 byte-level alphabet used by tokenizer.json files. */
gunichar lev_byte_level_char (guint8 b);
/* Appends to out the bytes that a byte-level string (len -1: NUL-terminated) spells; FALSE when it holds a
 * character outside the alphabet (out then holds the bytes before it) or is not valid UTF-8. */
gboolean lev_byte_level_to_bytes (const char *s, gssize len, GString *out);

G_END_DECLS
