/* lev_import_gguf.h: importer for GGUF files (llama.cpp's model format, versions 2 and 3, little-endian). */
#pragma once

#include "lev_convert.h"

G_BEGIN_DECLS

/* Returns TRUE when the file at path starts with the GGUF magic. */
gboolean lev_gguf_probe (const gchar *path);
/* Reads a GGUF model (architectures llama, qwen2, bitnet, bitnet-b1.58, bitnet-25; tensor types F32, F16, BF16, Q8_0,
 * Q4_0, TQ1_0, TQ2_0, I2_S). */
LevConvModel *lev_import_gguf (const gchar *path, GError **error);
/* Reads a GGUF model from memory; name is for messages; the tensors may point into data, which must outlive the
 * model. */
LevConvModel *lev_import_gguf_data (const guint8 *data, gsize size, const gchar *name, GError **error);
/* Reads only the tokenizer of a GGUF file (a vocab-only GGUF or a whole model). */
LevConvVocab *lev_import_gguf_vocab (const gchar *path, GError **error);

G_END_DECLS
