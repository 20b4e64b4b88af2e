/* levg_enums.h: the enumerations Lev.Generator and the levtextgen element share (GObject Introspection API). */
#pragma once

#include <glib-object.h>

G_BEGIN_DECLS

/**
 * LevGChatTemplate:
 * @LEV_G_CHAT_TEMPLATE_AUTO: the template the model file names (none when it names none)
 * @LEV_G_CHAT_TEMPLATE_NONE: no template: the prompt text is used as it is
 * @LEV_G_CHAT_TEMPLATE_LLAMA2: Llama 2 chat ([INST] ... [/INST])
 * @LEV_G_CHAT_TEMPLATE_LLAMA3: Llama 3 (<|start_header_id|> ... <|eot_id|>)
 * @LEV_G_CHAT_TEMPLATE_CHATML: ChatML (<|im_start|> ... <|im_end|>, Qwen)
 * @LEV_G_CHAT_TEMPLATE_ZEPHYR: Zephyr (<|user|> ... </s>, TinyLlama-Chat)
 * @LEV_G_CHAT_TEMPLATE_BITNET: BitNet b1.58 2B4T (Role: content<|eot_id|>)
 *
 * How prompts are wrapped as chat messages (the chat-template property); the value is the engine's
 * LevChatTemplate plus one.
 */
typedef enum {
  LEV_G_CHAT_TEMPLATE_AUTO = 0,
  LEV_G_CHAT_TEMPLATE_NONE = 1,
  LEV_G_CHAT_TEMPLATE_LLAMA2 = 2,
  LEV_G_CHAT_TEMPLATE_LLAMA3 = 3,
  LEV_G_CHAT_TEMPLATE_CHATML = 4,
  LEV_G_CHAT_TEMPLATE_ZEPHYR = 5,
  LEV_G_CHAT_TEMPLATE_BITNET = 6,
} LevGChatTemplate;

#define LEV_G_TYPE_CHAT_TEMPLATE (lev_g_chat_template_get_type ())
/* Returns the GType of LevGChatTemplate (one type per process, however many copies of this code are loaded). */
GType lev_g_chat_template_get_type (void);

G_END_DECLS
