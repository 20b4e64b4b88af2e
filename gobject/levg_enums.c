/* levg_enums.c: the GEnum types shared by Lev.Generator and the levtextgen element. */
#include "levg_enums.h"

/* Returns the GType of LevGChatTemplate; the plugin and liblev-1.0 each hold a copy of this code, so a process
 * that loads both registers the type once and the second copy finds it by name. */
GType
lev_g_chat_template_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { LEV_G_CHAT_TEMPLATE_AUTO, "The template the model file names (none when it names none)", "auto" },
    { LEV_G_CHAT_TEMPLATE_NONE, "No template: the prompt text is used as it is", "none" },
    { LEV_G_CHAT_TEMPLATE_LLAMA2, "Llama 2 chat ([INST] ... [/INST])", "llama2" },
    { LEV_G_CHAT_TEMPLATE_LLAMA3, "Llama 3 (<|start_header_id|> ... <|eot_id|>)", "llama3" },
    { LEV_G_CHAT_TEMPLATE_CHATML, "ChatML (<|im_start|> ... <|im_end|>, Qwen)", "chatml" },
    { LEV_G_CHAT_TEMPLATE_ZEPHYR, "Zephyr (<|user|> ... </s>, TinyLlama-Chat)", "zephyr" },
    { LEV_G_CHAT_TEMPLATE_BITNET, "BitNet b1.58 2B4T (Role: content<|eot_id|>)", "bitnet" },
    { 0, NULL, NULL },
  };
  if (g_once_init_enter (&type)) {
    static GMutex lock;
    g_mutex_lock (&lock);
    GType t = g_type_from_name ("LevGChatTemplate");
    if (!t)
      t = g_enum_register_static ("LevGChatTemplate", values);
    g_mutex_unlock (&lock);
    g_once_init_leave (&type, t);
  }
  return type;
}
