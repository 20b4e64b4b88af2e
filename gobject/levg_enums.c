/* levg_enums.c: the GEnum types of Lev-1.0 (the element shares the chat template and output mode ones) and the
 * error domain. */
#include "levg_enums.h"

/* Registers an enum type once per process: the plugin and liblev-1.0 each hold a copy of this code, so a process
 * that loads both registers the type once and the second copy finds it by name. */
static GType
register_enum (const char *name, const GEnumValue *values)
{
  static GMutex lock;
  g_mutex_lock (&lock);
  GType t = g_type_from_name (name);
  if (!t)
    t = g_enum_register_static (name, values);
  g_mutex_unlock (&lock);
  return t;
}

/* Returns the GQuark of the error domain. */
GQuark
lev_g_error_quark (void)
{
  return g_quark_from_static_string ("lev-error-quark");
}

/* Returns the GType of LevGError. */
GType
lev_g_error_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { LEV_G_ERROR_IO, "The file could not be opened, read or mapped", "io" },
    { LEV_G_ERROR_FORMAT, "The file is not a valid .leviathan file", "format" },
    { LEV_G_ERROR_NO_WEIGHTS, "A tokenizer-only file was used where weights are needed", "no-weights" },
    { LEV_G_ERROR_ARGUMENT, "An invalid parameter", "argument" },
    { LEV_G_ERROR_NUMERIC, "The model produced a logit that is NaN or infinite", "numeric" },
    { 0, NULL, NULL },
  };
  if (g_once_init_enter (&type))
    g_once_init_leave (&type, register_enum ("LevGError", values));
  return type;
}

/* Returns the GType of LevGOutputMode. */
GType
lev_g_output_mode_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { LEV_G_OUTPUT_MODE_TOKEN, "One unit per token", "token" },
    { LEV_G_OUTPUT_MODE_WORD, "One unit per word (with the whitespace before it)", "word" },
    { LEV_G_OUTPUT_MODE_SENTENCE, "One unit per sentence (. ! ? then whitespace, or a newline)", "sentence" },
    { LEV_G_OUTPUT_MODE_RESPONSE, "One unit per response", "response" },
    { 0, NULL, NULL },
  };
  if (g_once_init_enter (&type))
    g_once_init_leave (&type, register_enum ("LevGOutputMode", values));
  return type;
}

/* Returns the GType of LevGKvType. */
GType
lev_g_kv_type_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { LEV_G_KV_TYPE_F32, "32-bit floats (exact)", "f32" },
    { LEV_G_KV_TYPE_F16, "IEEE half floats: half the memory", "f16" },
    { LEV_G_KV_TYPE_Q8, "int8 with one scale per token and head: a quarter of the memory", "q8" },
    { 0, NULL, NULL },
  };
  if (g_once_init_enter (&type))
    g_once_init_leave (&type, register_enum ("LevGKvType", values));
  return type;
}

/* Returns the GType of LevGStopReason. */
GType
lev_g_stop_reason_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { LEV_G_STOP_REASON_EOS, "The model produced an end-of-text or end-of-turn token", "eos" },
    { LEV_G_STOP_REASON_MAX_TOKENS, "max-tokens tokens were generated", "max-tokens" },
    { LEV_G_STOP_REASON_STOP_STRING, "A stop string was generated", "stop-string" },
    { LEV_G_STOP_REASON_CANCELLED, "The generation was cancelled", "cancelled" },
    { LEV_G_STOP_REASON_STOPPED, "The receiver of the units asked to stop", "stopped" },
    { LEV_G_STOP_REASON_GRAMMAR, "The grammar is complete and allows nothing more", "grammar" },
    { 0, NULL, NULL },
  };
  if (g_once_init_enter (&type))
    g_once_init_leave (&type, register_enum ("LevGStopReason", values));
  return type;
}

/* Returns the GType of LevGChatTemplate. */
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
  if (g_once_init_enter (&type))
    g_once_init_leave (&type, register_enum ("LevGChatTemplate", values));
  return type;
}
