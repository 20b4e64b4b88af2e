/* lev_import.h: the importers, one per source format, each filling a LevConvModel (or a vocabulary), and the
 * dispatch that picks one for a path (lev_import.c). */
#pragma once

#include "lev_convmodel.h"

G_BEGIN_DECLS

/* ---- Importers (one per source format). Each fills a LevConvModel or fails with a clear GError. ---- */

/* Reads a SentencePiece tokenizer.model (protobuf) into a vocabulary. */
LevConvVocab *lev_import_spm_model (const gchar *path, GError **error);
/* Reads a llama2.c tokenizer.bin into a vocabulary (SentencePiece-BPE semantics, Llama 2 defaults). */
LevConvVocab *lev_import_llama2c_tokenizer (const gchar *path, GError **error);
/* Reads a Hugging Face tokenizer.json (BPE: byte-level, or SentencePiece-style) into a vocabulary; config_path
 * (may be NULL or missing) is its tokenizer_config.json, for BOS/EOS and add_bos_token. */
LevConvVocab *lev_import_hf_tokenizer_json (const gchar *path, const gchar *config_path, GError **error);
/* Reads a tokenizer file of any kind (tokenizer.model, tokenizer.json, tokenizer.bin), chosen by its contents; a
 * directory is searched for one (see lev_import_vocab.c for the order). */
LevConvVocab *lev_import_vocab (const gchar *path, GError **error);

/* Reads a Hugging Face checkpoint directory (config.json + safetensors + tokenizer files). */
LevConvModel *lev_import_hf_dir (const gchar *dir, GError **error);
/* Reads a llama2.c checkpoint (.bin, legacy or version-1 float format). */
LevConvModel *lev_import_llama2c (const gchar *path, GError **error);
/* Reads a bitllama2.c ternary checkpoint ("ak42" magic). */
LevConvModel *lev_import_ak42 (const gchar *path, GError **error);
/* Returns which kind of llama2.c-style .bin path is, from its header and exact size: 1 llama2.c legacy, 2 llama2.c
 * version 1 (float32), 3 bitllama2.c ternary ("ak42"); 0 with error set when it is none of them. */
int lev_llama2c_probe (const gchar *path, GError **error);

/* One model importer of the dispatch (lev_import.c): adding a source format is adding an entry there. */
typedef struct LevImporter {
  const char *name;            /* short name of the source format, e.g. "hf", "llama2c" */
  /* Returns whether path is this importer's: TRUE when it is, FALSE when not; FALSE with error set when path is
   * this kind of file but broken, or when no later importer should be tried */
  gboolean (*probe) (const gchar *path, GError **error);
  LevConvModel *(*import) (const gchar *path, GError **error);
} LevImporter;

/* Returns the model importers in the order lev_import_any tries them; *n receives their number. */
const LevImporter *lev_importers (guint *n);
/* Detects the source kind of path and calls the matching importer. */
LevConvModel *lev_import_any (const gchar *path, GError **error);

G_END_DECLS
