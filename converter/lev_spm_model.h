/* lev_spm_model.h: reader of SentencePiece tokenizer.model files (protobuf); lev_import_spm_model reads a file. */
#pragma once

#include "lev_convmodel.h"

G_BEGIN_DECLS

/* Parses the bytes of a tokenizer.model (path names it in messages) into a vocabulary; NULL with error set. */
LevConvVocab *lev_spm_parse (const guint8 *data, gsize len, const gchar *path, GError **error);

G_END_DECLS
