/* lev_chat.h: chat templates of the supported model families, rendered in C (no Jinja interpreter). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
  LEV_CHAT_NONE = 0,    /* no template: the prompt is used as it is */
  LEV_CHAT_LLAMA2,      /* [INST] <<SYS>> ... [/INST] */
  LEV_CHAT_LLAMA3,      /* <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
  LEV_CHAT_CHATML,      /* <|im_start|>role\n...<|im_end|>\n (Qwen) */
  LEV_CHAT_ZEPHYR,      /* <|user|>\n...</s>\n<|assistant|>\n (TinyLlama-Chat) */
  LEV_CHAT_BITNET,      /* BitNet b1.58 2B4T: "Role: content<|eot_id|>" */
} LevChatTemplate;

/* One message of a conversation. */
typedef struct LevChatMessage {
  const char *role;     /* "system", "user" or "assistant" */
  const char *content;
} LevChatMessage;

/* Recognises a family from a Jinja chat template (tokenizer_config.json's); LEV_CHAT_NONE if unknown or NULL. */
LevChatTemplate lev_chat_template_detect (const char *jinja);
/* Parses a template name ("none", "llama2", "llama3", "chatml", "zephyr", "bitnet"); FALSE if unknown. */
gboolean lev_chat_template_from_name (const char *name, LevChatTemplate *out);
/* Returns the name of a template. */
const char *lev_chat_template_name (LevChatTemplate tmpl);
/* Renders messages as the family's template does; with add_generation_prompt the assistant's turn is opened.
 * bos is the text of the BOS token where the template writes it (may be NULL). Returns a newly allocated string. */
char *lev_chat_render (LevChatTemplate tmpl, const LevChatMessage *messages, gsize n_messages,
                       gboolean add_generation_prompt, const char *bos);
/* Renders what follows an assistant reply written after a rendering with the generation prompt: the end of the
 * assistant's turn, then messages and, with add_generation_prompt, the next assistant opening, so that
 * render(history + [reply] + messages) == render(history, TRUE) + reply as written by the template + this.
 * Returns a newly allocated string. */
char *lev_chat_render_continuation (LevChatTemplate tmpl, const LevChatMessage *messages, gsize n_messages,
                                    gboolean add_generation_prompt, const char *bos);
/* Returns the fixed system message a ChatML template (Qwen2, Qwen2.5) writes when a conversation has none, newly
 * allocated; NULL when it has none. */
char *lev_chat_template_default_system (const char *jinja);

G_END_DECLS
