/* lev_safetensors.h: reader of Hugging Face safetensors checkpoints (one file or the shards an index names). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define LEV_ST_MAX_DIMS 8u

/* The element types the importer reads (F32, F16, BF16; U8 for packed ternary codes). */
typedef enum {
  LEV_ST_F32,
  LEV_ST_F16,
  LEV_ST_BF16,
  LEV_ST_U8,
} LevStDtype;

/* One tensor of a safetensors file, pointing into the mapped file. */
typedef struct {
  gchar *name;          /* Hugging Face name */
  const gchar *file;    /* basename of the file it is in (owned by the LevStSet) */
  LevStDtype dtype;
  guint32 n_dims;
  guint64 shape[LEV_ST_MAX_DIMS];
  guint64 numel;
  const guint8 *data;
  guint64 nbytes;
} LevStTensor;

/* All tensors of one checkpoint (one file or all shards), by name. */
typedef struct {
  GHashTable *tensors;  /* name -> LevStTensor* */
  GPtrArray *maps;      /* GMappedFile* */
  GPtrArray *files;     /* gchar* basenames */
} LevStSet;

/* Loads model.safetensors in dir, or the shards that model.safetensors.index.json names; NULL with error set. */
LevStSet *lev_st_load_dir (const gchar *dir, GError **error);
/* Frees a set and unmaps its files. */
void lev_st_set_free (LevStSet *set);

G_END_DECLS
