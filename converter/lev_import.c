/* lev_import.c: picks the importer for a source path (the importer table) and runs it. */
#include "lev_import.h"
#include "lev_import_gguf.h"

#include <string.h>

/* Claims a directory (a Hugging Face checkpoint); refuses, with a hint, a single file out of one. */
static gboolean
probe_hf (const gchar *path, GError **error)
{
  if (g_file_test (path, G_FILE_TEST_IS_DIR))
    return TRUE;
  g_autofree gchar *base = g_path_get_basename (path);
  if (g_str_has_suffix (base, ".safetensors") || g_str_has_suffix (base, ".safetensors.index.json") ||
      strcmp (base, "config.json") == 0)
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED,
                 "%s is part of a Hugging Face checkpoint: pass its directory instead", path);
  return FALSE;
}

/* Claims a GGUF file: by its magic, or by its name (a .gguf without the magic then gets the GGUF reader's error). */
static gboolean
probe_gguf (const gchar *path, GError **error)
{
  g_autofree gchar *base = g_path_get_basename (path);
  return lev_gguf_probe (path) || g_str_has_suffix (base, ".gguf");
}

/* Claims a llama2.c float checkpoint (legacy or version 1). lev_llama2c_probe reads the header and checks the exact
 * file size of every .bin layout it knows, and says what is wrong with a file that fits none of them. */
static gboolean
probe_llama2c (const gchar *path, GError **error)
{
  int kind = lev_llama2c_probe (path, error);
  return kind == 1 || kind == 2;
}

/* Claims a bitllama2.c ternary checkpoint ("ak42"). */
static gboolean
probe_ak42 (const gchar *path, GError **error)
{
  return lev_llama2c_probe (path, error) == 3;
}

/* Tried in this order; the first whose probe claims the path imports it. The llama2.c probes come last: they
 * accept only files of the exact sizes they know and explain why any other file is not a checkpoint, which ends the
 * search. An importer of a format with a magic number goes before them. */
static const LevImporter importers[] = {
  { "hf", probe_hf, lev_import_hf_dir },
  { "gguf", probe_gguf, lev_import_gguf },
  { "llama2c", probe_llama2c, lev_import_llama2c },
  { "ak42", probe_ak42, lev_import_ak42 },
};

/* Returns the importer table. */
const LevImporter *
lev_importers (guint *n)
{
  *n = G_N_ELEMENTS (importers);
  return importers;
}

/* Detects the source kind of path and calls the matching importer. */
LevConvModel *
lev_import_any (const gchar *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  if (!g_file_test (path, G_FILE_TEST_EXISTS)) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_IO, "%s: no such file or directory", path);
    return NULL;
  }
  for (guint i = 0; i < G_N_ELEMENTS (importers); i++) {
    GError *local = NULL;
    if (importers[i].probe (path, &local))
      return importers[i].import (path, error);
    if (local) {
      g_propagate_error (error, local);
      return NULL;
    }
  }
  g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_UNSUPPORTED, "%s: not a checkpoint levconvert reads", path);
  return NULL;
}
