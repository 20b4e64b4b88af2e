/* lev_source.h: model sources for the tools, Lev.Model and levtextgen: a .leviathan file, a GGUF file, a Hugging Face
 * checkpoint directory or hf:ORG/NAME[@REVISION][:FILE], turned into the path of a .leviathan file (converted once into
 * $XDG_CACHE_HOME/leviathan/models, downloads in the Hugging Face cache: lev_hf_hub.h). */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define LEV_SOURCE_ERROR (lev_source_error_quark ())
typedef enum {
  LEV_SOURCE_ERROR_ARGUMENT,   /* a malformed source name or option */
  LEV_SOURCE_ERROR_IO,         /* a file of the cache could not be read or written */
  LEV_SOURCE_ERROR_NETWORK,    /* the hub could not be reached, or the transfer broke off */
  LEV_SOURCE_ERROR_NOT_FOUND,  /* the hub has no such repository, revision or file (HTTP 404) */
  LEV_SOURCE_ERROR_AUTH,       /* the hub refused access (HTTP 401 / 403): gated or private */
  LEV_SOURCE_ERROR_CHECKSUM,   /* a downloaded file's size or hash is not the one the hub announced */
  LEV_SOURCE_ERROR_OFFLINE,    /* HF_HUB_OFFLINE is set and the cache does not hold what is needed */
  LEV_SOURCE_ERROR_HTTP,       /* another HTTP status from the hub */
} LevSourceError;

/* Returns the GQuark of LEV_SOURCE_ERROR. */
GQuark lev_source_error_quark (void);

/* What a source name is. */
typedef enum {
  LEV_SOURCE_FILE,       /* anything else (a .leviathan file, a missing path, a FIFO...): handed to the engine as is */
  LEV_SOURCE_GGUF,       /* a regular file starting with "GGUF" */
  LEV_SOURCE_HF_DIR,     /* a directory holding config.json */
  LEV_SOURCE_HF_HUB,     /* hf:ORG/NAME[@REVISION][:FILE] */
} LevSourceKind;

/* Progress of a long step: stage is "download", "verify", "hash", "convert" or "wait"; item names what (a file);
 * total is 0 when unknown. done == total (and total > 0) marks the end of the step. */
typedef void (*LevSourceProgressFunc) (const char *stage, const char *item, guint64 done, guint64 total,
                                       gpointer user_data);

/* How lev_source_resolve converts and reports. */
typedef struct LevSourceOptions {
  const char *format;              /* "auto" (ternary matrices to t2, the others kept as they are), else
                                    * levconvert's --format names: f32, f16, bf16, q8, q4, t2, t1, b1; NULL:
                                    * $LEV_CONVERT_FORMAT, else auto */
  LevSourceProgressFunc progress;  /* NULL: silent */
  gpointer progress_data;
  GCancellable *cancellable;       /* may be NULL */
} LevSourceOptions;

/* Returns whether name is a conversion format lev_source_resolve takes (auto, f32, f16, bf16, q8, q4, t2, t1, b1). */
gboolean lev_source_format_valid (const char *name);
/* Returns what kind of source spec names (never opens anything but a regular file's first bytes). */
LevSourceKind lev_source_kind (const char *spec);
/* Returns the path of a .leviathan file for spec: spec itself for LEV_SOURCE_FILE, else the cached conversion
 * (downloading hf: sources and converting once); NULL with error set naming the source and what is wrong. */
gchar *lev_source_resolve (const char *spec, const LevSourceOptions *options, GError **error);
/* Returns the directory of converted models ($XDG_CACHE_HOME/leviathan/models, else ~/.cache/leviathan/models). */
gchar *lev_source_cache_dir (void);
/* A LevSourceProgressFunc that prints to stderr when it is a terminal (user_data: the program's name, a string). */
void lev_source_terminal_progress (const char *stage, const char *item, guint64 done, guint64 total,
                                   gpointer user_data);

G_END_DECLS
