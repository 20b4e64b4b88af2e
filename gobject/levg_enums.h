/* levg_enums.h: the enumerations of Lev-1.0 (errors, chat templates, output modes, stop reasons); the element shares
 * the chat template and output mode ones (GObject Introspection API). */
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

/**
 * LevGError:
 * @LEV_G_ERROR_IO: the file could not be opened, read or mapped
 * @LEV_G_ERROR_FORMAT: the file is not a valid .leviathan file (the message says what is wrong)
 * @LEV_G_ERROR_NO_WEIGHTS: a tokenizer-only file was used where weights are needed
 * @LEV_G_ERROR_ARGUMENT: an invalid parameter (context size, token id, chat message, ...)
 * @LEV_G_ERROR_NUMERIC: the model produced a logit that is NaN or infinite (bad weights or overflow)
 *
 * The error codes of the %LEV_G_ERROR domain: the engine's errors, as Lev.Model and Lev.Generator raise them.
 */
typedef enum {
  LEV_G_ERROR_IO = 0,
  LEV_G_ERROR_FORMAT = 1,
  LEV_G_ERROR_NO_WEIGHTS = 2,
  LEV_G_ERROR_ARGUMENT = 3,
  LEV_G_ERROR_NUMERIC = 4,
} LevGError;

/**
 * LEV_G_ERROR:
 *
 * The error domain of #LevGError (the engine's "lev-error-quark").
 */
#define LEV_G_ERROR (lev_g_error_quark ())
/* Returns the GQuark of the Lev error domain (the engine's, so its errors match Lev.Error). */
GQuark lev_g_error_quark (void);
#define LEV_G_TYPE_ERROR (lev_g_error_get_type ())
/* Returns the GType of LevGError. */
GType lev_g_error_get_type (void);

/**
 * LevGOutputMode:
 * @LEV_G_OUTPUT_MODE_TOKEN: one unit per token (the bytes of a character split over tokens wait for its last token)
 * @LEV_G_OUTPUT_MODE_WORD: one unit per word (with the whitespace before it)
 * @LEV_G_OUTPUT_MODE_SENTENCE: one unit per sentence (. ! ? then whitespace, or a newline)
 * @LEV_G_OUTPUT_MODE_RESPONSE: one unit per response
 *
 * How generated text is split into units (the output-mode property: the element's buffers, Lev.Generator's
 * #LevGGenerator::token signals).
 */
typedef enum {
  LEV_G_OUTPUT_MODE_TOKEN = 0,
  LEV_G_OUTPUT_MODE_WORD = 1,
  LEV_G_OUTPUT_MODE_SENTENCE = 2,
  LEV_G_OUTPUT_MODE_RESPONSE = 3,
} LevGOutputMode;

#define LEV_G_TYPE_OUTPUT_MODE (lev_g_output_mode_get_type ())
/* Returns the GType of LevGOutputMode. */
GType lev_g_output_mode_get_type (void);

/**
 * LevGKvType:
 * @LEV_G_KV_TYPE_F32: 32-bit floats (exact)
 * @LEV_G_KV_TYPE_F16: IEEE half floats: half the memory
 * @LEV_G_KV_TYPE_Q8: int8 with one scale per token and head: a quarter of the memory
 *
 * How the context's keys and values are stored (the kv-type property).
 */
typedef enum {
  LEV_G_KV_TYPE_F32 = 0,
  LEV_G_KV_TYPE_F16 = 1,
  LEV_G_KV_TYPE_Q8 = 2,
} LevGKvType;

#define LEV_G_TYPE_KV_TYPE (lev_g_kv_type_get_type ())
/* Returns the GType of LevGKvType. */
GType lev_g_kv_type_get_type (void);

/**
 * LevGStopReason:
 * @LEV_G_STOP_REASON_EOS: the model produced an end-of-text, BOS or other control (end-of-turn) token
 * @LEV_G_STOP_REASON_MAX_TOKENS: max-tokens tokens were generated
 * @LEV_G_STOP_REASON_STOP_STRING: one of the stop strings was generated
 * @LEV_G_STOP_REASON_CANCELLED: the generation was cancelled
 * @LEV_G_STOP_REASON_STOPPED: the receiver of the units asked to stop
 * @LEV_G_STOP_REASON_GRAMMAR: the grammar is complete and allows nothing more
 *
 * Why a response ended (Lev.Generator's stop-reason property).
 */
typedef enum {
  LEV_G_STOP_REASON_EOS = 0,
  LEV_G_STOP_REASON_MAX_TOKENS = 1,
  LEV_G_STOP_REASON_STOP_STRING = 2,
  LEV_G_STOP_REASON_CANCELLED = 3,
  LEV_G_STOP_REASON_STOPPED = 4,
  LEV_G_STOP_REASON_GRAMMAR = 5,
} LevGStopReason;

#define LEV_G_TYPE_STOP_REASON (lev_g_stop_reason_get_type ())
/* Returns the GType of LevGStopReason. */
GType lev_g_stop_reason_get_type (void);

G_END_DECLS
