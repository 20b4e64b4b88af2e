/* lev_hf_hub.h: downloads from the Hugging Face hub (libsoup 3) into the standard Hugging Face cache
 * ($HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub: models--ORG--NAME/{blobs,snapshots,refs}). */
#pragma once

#include "lev_source.h"

G_BEGIN_DECLS

/* A parsed hf:ORG/NAME[@REVISION][:FILE]. */
typedef struct LevHfRef {
  gchar *repo;       /* ORG/NAME (or NAME) */
  gchar *revision;   /* "main" when not given */
  gchar *file;       /* NULL: the files of a Transformers checkpoint */
} LevHfRef;

/* Parses spec (with its "hf:" prefix) into ref; FALSE with error set naming what is malformed. */
gboolean lev_hf_ref_parse (const char *spec, LevHfRef *ref, GError **error);
/* Frees what ref holds (not ref itself). */
void lev_hf_ref_clear (LevHfRef *ref);
/* Returns the hub cache directory ($HF_HUB_CACHE, $HF_HOME/hub, $XDG_CACHE_HOME/huggingface/hub or
 * ~/.cache/huggingface/hub). */
gchar *lev_hf_cache_dir (void);
/* Fetches what ref names into the hub cache (reusing what is there; HF_HUB_OFFLINE=1: the cache only) and returns
 * the local path: the snapshot directory (config.json, weights, tokenizer files) or, with a file, that file. */
gchar *lev_hf_fetch (const LevHfRef *ref, const LevSourceOptions *options, GError **error);

G_END_DECLS
