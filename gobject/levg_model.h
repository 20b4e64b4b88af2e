/* levg_model.h: Lev.Model, a GObject wrapper of a loaded .leviathan model (GObject Introspection API). */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define LEV_G_TYPE_MODEL (lev_g_model_get_type ())
G_DECLARE_FINAL_TYPE (LevGModel, lev_g_model, LEV_G, MODEL, GObject)

/**
 * lev_g_model_new:
 * @path: (type filename): a .leviathan model file, a GGUF file, a Hugging Face checkpoint directory or
 *   hf:ORG/NAME[@REVISION][:FILE]
 * @error: return location for an error
 *
 * Loads and validates a model. Anything but a .leviathan file is converted once into
 * $XDG_CACHE_HOME/leviathan/models (hf: names downloaded into the Hugging Face cache first) and mapped from there.
 *
 * Returns: (transfer full): the model, or %NULL with @error set (the loader's message)
 */
LevGModel *lev_g_model_new (const char *path, GError **error);

/**
 * lev_g_model_default_path:
 *
 * Returns the model file levrun and levtextgen use when none is given: $LEV_MODEL when set, else the bundled
 * model installed under the prefix (or, for a library run from its build tree, the source tree's models/
 * default.leviathan when the installed one does not exist). The file may not exist.
 *
 * Returns: (type filename) (transfer full): the path
 */
char *lev_g_model_default_path (void);

/**
 * lev_g_model_get_name:
 * @self: a model
 *
 * Returns the model's name ("" when the file names none).
 *
 * Returns: (transfer none): the name
 */
const char *lev_g_model_get_name (LevGModel *self);

/**
 * lev_g_model_get_architecture:
 * @self: a model
 *
 * Returns the architecture's short name ("llama", "qwen2", "bitnet", "bitllama2c").
 *
 * Returns: (transfer none): the architecture
 */
const char *lev_g_model_get_architecture (LevGModel *self);

/**
 * lev_g_model_get_encoding:
 * @self: a model
 *
 * Returns the encoding of the model's weight matrices ("t2", "t1", "b1", "q4", "q8", "f16", "bf16", "f32"; the
 * one holding most of their weights when they differ).
 *
 * Returns: (transfer none): the encoding
 */
const char *lev_g_model_get_encoding (LevGModel *self);

/**
 * lev_g_model_get_vocab_size:
 * @self: a model
 *
 * Returns the number of tokens in the vocabulary.
 *
 * Returns: the vocabulary size
 */
guint lev_g_model_get_vocab_size (LevGModel *self);

/**
 * lev_g_model_get_context_length:
 * @self: a model
 *
 * Returns the context length the model was trained with.
 *
 * Returns: the trained context length
 */
guint lev_g_model_get_context_length (LevGModel *self);

/**
 * lev_g_model_tokenize:
 * @self: a model
 * @text: UTF-8 text
 * @add_bos: whether to put the beginning-of-text token first
 * @n_ids: (out): number of ids returned
 * @error: return location for an error
 *
 * Encodes text into token ids.
 *
 * Returns: (array length=n_ids) (transfer full): the ids, or %NULL with @error set
 */
gint32 *lev_g_model_tokenize (LevGModel *self, const char *text, gboolean add_bos, gsize *n_ids, GError **error);

/**
 * lev_g_model_detokenize:
 * @self: a model
 * @ids: (array length=n_ids): token ids
 * @n_ids: number of ids
 *
 * Decodes token ids into text (invalid UTF-8 replaced by U+FFFD).
 *
 * Returns: (transfer full): the text
 */
char *lev_g_model_detokenize (LevGModel *self, const gint32 *ids, gsize n_ids);

G_END_DECLS
