/* levg_generator.h: Lev.Generator, text generation with a "token" signal and a cancellable async generate. */
#pragma once

#include <gio/gio.h>
#include "levg_model.h"

G_BEGIN_DECLS

#define LEV_G_TYPE_GENERATOR (lev_g_generator_get_type ())
G_DECLARE_FINAL_TYPE (LevGGenerator, lev_g_generator, LEV_G, GENERATOR, GObject)

/**
 * lev_g_generator_new:
 * @model: the model to generate with
 *
 * Creates a generator; its context is allocated on the first generation (with the n-threads and
 * context-length properties of that time).
 *
 * Returns: (transfer full): a new generator
 */
LevGGenerator *lev_g_generator_new (LevGModel *model);

/**
 * lev_g_generator_generate:
 * @self: a generator
 * @prompt: UTF-8 prompt
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Generates the response to @prompt in the calling thread, emitting #LevGGenerator::token for every token.
 *
 * Returns: (transfer full): the response, or %NULL with @error set (%G_IO_ERROR_CANCELLED when cancelled)
 */
char *lev_g_generator_generate (LevGGenerator *self, const char *prompt, GCancellable *cancellable,
                                GError **error);

/**
 * lev_g_generator_generate_async:
 * @self: a generator
 * @prompt: UTF-8 prompt
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called when the response is complete
 * @user_data: data for @callback
 *
 * Generates the response to @prompt in a worker thread. #LevGGenerator::token is emitted in the thread-default
 * main context of the caller, before @callback.
 */
void lev_g_generator_generate_async (LevGGenerator *self, const char *prompt, GCancellable *cancellable,
                                     GAsyncReadyCallback callback, gpointer user_data);

/**
 * lev_g_generator_generate_finish:
 * @self: a generator
 * @result: the #GAsyncResult given to the callback
 * @error: return location for an error
 *
 * Finishes lev_g_generator_generate_async().
 *
 * Returns: (transfer full): the response, or %NULL with @error set (%G_IO_ERROR_CANCELLED when cancelled)
 */
char *lev_g_generator_generate_finish (LevGGenerator *self, GAsyncResult *result, GError **error);

/**
 * lev_g_generator_generate_ids:
 * @self: a generator
 * @ids: (array length=n_ids): the prompt as token ids, taken as they are (no template, no BOS added)
 * @n_ids: number of ids
 * @cancellable: (nullable): a #GCancellable
 * @n_generated: (out): number of ids returned
 * @error: return location for an error
 *
 * Generates the response to a prompt of token ids in the calling thread, emitting #LevGGenerator::token for
 * every unit; an id outside the vocabulary is a %LEV_G_ERROR_ARGUMENT error.
 *
 * Returns: (array length=n_generated) (transfer full): the generated ids (the end-of-text token that ended the
 * response not included), or %NULL with @error set (%G_IO_ERROR_CANCELLED when cancelled)
 */
gint32 *lev_g_generator_generate_ids (LevGGenerator *self, const gint32 *ids, gsize n_ids,
                                      GCancellable *cancellable, gsize *n_generated, GError **error);

/**
 * lev_g_generator_chat:
 * @self: a generator
 * @roles: (array zero-terminated=1): the messages' roles in order: "system", "user" or "assistant"
 * @contents: (array zero-terminated=1): the messages' contents, as many as @roles
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for an error
 *
 * Answers a whole conversation (a list of role/content messages) in the calling thread: the messages are rendered
 * with the chat template (chat-template, or the one the model file names) with the assistant's turn opened, and
 * replace what the context held; #LevGGenerator::token is emitted for every unit. Without a template, an unknown
 * role or as many roles as contents, a %LEV_G_ERROR_ARGUMENT error.
 *
 * Returns: (transfer full): the assistant's answer, or %NULL with @error set (%G_IO_ERROR_CANCELLED when
 * cancelled)
 */
char *lev_g_generator_chat (LevGGenerator *self, const char *const *roles, const char *const *contents,
                            GCancellable *cancellable, GError **error);

/**
 * lev_g_generator_reset:
 * @self: a generator
 *
 * Forgets the conversation (with keep-history) so that the next prompt starts afresh.
 */
void lev_g_generator_reset (LevGGenerator *self);

G_END_DECLS
