/* test_chat.c: chat templates (detection and rendering) against the strings the families' published templates give. */
#include <json-glib/json-glib.h>
#include <string.h>

#include <glib/gstdio.h>

#include "lev_chat.h"
#include "lev_convert.h"
#include "leviathan.h"
#include "lev_test_vectors.h"

/* ---------------------------------------------------------------- the published templates
 * The chat_template strings of the families' tokenizer_config.json files, as published (used here for detection
 * and to document where the expected strings below come from):
 *  - TPL_LLAMA2: huggingface.co/meta-llama/Llama-2-7b-chat-hf, tokenizer_config.json "chat_template" (the same
 *    text is quoted, with that address, in public projects' template tables).
 *  - TPL_LLAMA3: huggingface.co/meta-llama/Meta-Llama-3-8B-Instruct, tokenizer_config.json "chat_template". (The
 *    fixture tokenizers/llama3/tokenizer_config.json carries an older variant that always opens the assistant
 *    turn; both are detected.)
 *  - TPL_QWEN25: huggingface.co/Qwen/Qwen2.5-0.5B-Instruct, tokenizer_config.json "chat_template" (default system
 *    message "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."). Qwen3's template is the
 *    fixture tokenizers/qwen3/tokenizer_config.json, read at run time.
 *  - TPL_TINYLLAMA: huggingface.co/TinyLlama/TinyLlama-1.1B-Chat-v1.0, tokenizer_config.json "chat_template" (the
 *    Zephyr template of HuggingFaceH4/zephyr-7b-beta).
 *  - TPL_BITNET: huggingface.co/microsoft/bitnet-b1.58-2B-4T, tokenizer_config.json "chat_template" (the Llama 3
 *    template with "Role: " instead of header tokens; its rendering "<|begin_of_text|>User: ...<|eot_id|>Assistant: "
 *    is also what the BitNet ports of llama.cpp write for this model).
 * The expected strings in `cases` are what these templates render, with Hugging Face's settings (Jinja2 sandbox,
 * trim_blocks and lstrip_blocks), bos_token / eos_token of each model ("<s>" / "</s>" for Llama 2 and TinyLlama,
 * "<|begin_of_text|>" for Llama 3 and BitNet), for the conversations below, with and without
 * add_generation_prompt. They were rendered once with Debian's python3-jinja2 3.1 from the template texts above
 * (and the Qwen3 fixture) and pasted here. */
static const char TPL_LLAMA2[] =
  "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_mess"
  "age = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message"
  " = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (lo"
  "op.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/"
  "assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content"
  " = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set c"
  "ontent = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST"
  "] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content."
  "strip() + ' ' + eos_token }}{% endif %}{% endfor %}";
static const char TPL_LLAMA3[] =
  "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_he"
  "ader_id|>' + message['role'] + '<|end_header_id|>\n"
  "\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_to"
  "ken + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_he"
  "ader_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";
static const char TPL_QWEN25[] =
  "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n"
  "    {%- if messages[0]['role'] == 'system' %}\n"
  "        {{- messages[0]['content'] }}\n    {%- else %}\n"
  "        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n"
  "    {%- endif %}\n    {{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with"
  " the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:"
  "\\n<tools>\" }}\n    {%- for tool in tools %}\n"
  "        {{- \"\\n\" }}\n        {{- tool | tojson }}\n"
  "    {%- endfor %}\n    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with "
  "function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\"
  "\": <function-name>, \\\"arguments\\\": <args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n"
  "{%- else %}\n    {%- if messages[0]['role'] == 'system' %}\n"
  "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
  "    {%- else %}\n        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You a"
  "re a helpful assistant.<|im_end|>\\n' }}\n"
  "    {%- endif %}\n{%- endif %}\n{%- for message in messages %}\n"
  "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or (mes"
  "sage.role == \"assistant\" and not message.tool_calls) %}\n"
  "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
  "    {%- elif message.role == \"assistant\" %}\n"
  "        {{- '<|im_start|>' + message.role }}\n"
  "        {%- if message.content %}\n            {{- '\\n' + message.content }}\n"
  "        {%- endif %}\n        {%- for tool_call in message.tool_calls %}\n"
  "            {%- if tool_call.function is defined %}\n"
  "                {%- set tool_call = tool_call.function %}\n"
  "            {%- endif %}\n            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n"
  "            {{- tool_call.name }}\n            {{- '\", \"arguments\": ' }}\n"
  "            {{- tool_call.arguments | tojson }}\n"
  "            {{- '}\\n</tool_call>' }}\n        {%- endfor %}\n"
  "        {{- '<|im_end|>\\n' }}\n    {%- elif message.role == \"tool\" %}\n"
  "        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}\n"
  "            {{- '<|im_start|>user' }}\n        {%- endif %}\n"
  "        {{- '\\n<tool_response>\\n' }}\n        {{- message.content }}\n"
  "        {{- '\\n</tool_response>' }}\n        {%- if loop.last or (messages[loop.index0 + 1].rol"
  "e != \"tool\") %}\n            {{- '<|im_end|>\\n' }}\n"
  "        {%- endif %}\n    {%- endif %}\n{%- endfor %}\n"
  "{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n"
  "{%- endif %}\n";
static const char TPL_TINYLLAMA[] =
  "{% for message in messages %}\n{% if message['role'] == 'user' %}\n"
  "{{ '<|user|>\n' + message['content'] + eos_token }}\n"
  "{% elif message['role'] == 'system' %}\n{{ '<|system|>\n"
  "' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n"
  "{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
  "{% endif %}\n{% if loop.last and add_generation_prompt %}\n"
  "{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";
static const char TPL_BITNET[] =
  "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = message['ro"
  "le'] | capitalize + ': '+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{%"
  " set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_pr"
  "ompt %}{{ 'Assistant: ' }}{% endif %}";

/* ---------------------------------------------------------------- conversations */

#define SYS "You are a friendly chatbot who always responds in the style of a pirate"
#define U1 "Hello, how are you?"
#define A1 "I'm doing great. How can I help you today?"
#define U2 "I'd like to show off how chat templating works!"

enum { CONV_SYS_USER, CONV_USER, CONV_MULTI, CONV_NOSYS_MULTI, CONV_WS, N_CONV };

static const LevChatMessage conv_sys_user[] = { { "system", SYS }, { "user", U1 } };
static const LevChatMessage conv_user[] = { { "user", U1 } };
static const LevChatMessage conv_multi[] = { { "system", SYS }, { "user", U1 }, { "assistant", A1 }, { "user", U2 } };
static const LevChatMessage conv_nosys_multi[] = { { "user", U1 }, { "assistant", A1 }, { "user", U2 } };
/* whitespace around the contents: Llama 2 strips the (folded) user content, Llama 3 and BitNet trim every content
 * (U+3000 IDEOGRAPHIC SPACE included), ChatML and Zephyr keep it */
static const LevChatMessage conv_ws[] = {
  { "system", " \tBe brief. \n" }, { "user", "\n  What is 2+2?  \n" }, { "assistant", " Four. " },
  { "user", "Thanks!\xe3\x80\x80" },
};

static const struct {
  const LevChatMessage *m;
  gsize n;
} convs[N_CONV] = {
  { conv_sys_user, G_N_ELEMENTS (conv_sys_user) }, { conv_user, G_N_ELEMENTS (conv_user) },
  { conv_multi, G_N_ELEMENTS (conv_multi) }, { conv_nosys_multi, G_N_ELEMENTS (conv_nosys_multi) },
  { conv_ws, G_N_ELEMENTS (conv_ws) },
};

/* family (qwen25: ChatML with Qwen2.5's default system message), template, conversation, add_generation_prompt,
 * what the published template renders */
static const struct {
  const char *family;
  LevChatTemplate tmpl;
  int conv;
  gboolean gen;
  const char *expected;
} cases[] = {
  { "llama2", LEV_CHAT_LLAMA2, CONV_SYS_USER, 0,
    "<s>[INST] <<SYS>>\nYou are a friendly chatbot who always responds in the style of a pirate\n"
    "<</SYS>>\n\nHello, how are you? [/INST]" },
  { "llama2", LEV_CHAT_LLAMA2, CONV_SYS_USER, 1,
    "<s>[INST] <<SYS>>\nYou are a friendly chatbot who always responds in the style of a pirate\n"
    "<</SYS>>\n\nHello, how are you? [/INST]" },
  { "llama2", LEV_CHAT_LLAMA2, CONV_USER, 0,
    "<s>[INST] Hello, how are you? [/INST]" },
  { "llama2", LEV_CHAT_LLAMA2, CONV_USER, 1,
    "<s>[INST] Hello, how are you? [/INST]" },
  { "llama2", LEV_CHAT_LLAMA2, CONV_MULTI, 0,
    "<s>[INST] <<SYS>>\nYou are a friendly chatbot who always responds in the style of a pirate\n"
    "<</SYS>>\n\nHello, how are you? [/INST] I'm doing great. How can I help you today? </s><s>[INST]"
    " I'd like to show off how chat templating works! [/INST]" },
  { "llama2", LEV_CHAT_LLAMA2, CONV_MULTI, 1,
    "<s>[INST] <<SYS>>\nYou are a friendly chatbot who always responds in the style of a pirate\n"
    "<</SYS>>\n\nHello, how are you? [/INST] I'm doing great. How can I help you today? </s><s>[INST]"
    " I'd like to show off how chat templating works! [/INST]" },
  { "llama2", LEV_CHAT_LLAMA2, CONV_NOSYS_MULTI, 0,
    "<s>[INST] Hello, how are you? [/INST] I'm doing great. How can I help you today? </s><s>[INST] I"
    "'d like to show off how chat templating works! [/INST]" },
  { "llama2", LEV_CHAT_LLAMA2, CONV_NOSYS_MULTI, 1,
    "<s>[INST] Hello, how are you? [/INST] I'm doing great. How can I help you today? </s><s>[INST] I"
    "'d like to show off how chat templating works! [/INST]" },
  { "llama2", LEV_CHAT_LLAMA2, CONV_WS, 0,
    "<s>[INST] <<SYS>>\n \tBe brief. \n\n<</SYS>>\n"
    "\n\n  What is 2+2? [/INST] Four. </s><s>[INST] Thanks! [/INST]" },
  { "llama2", LEV_CHAT_LLAMA2, CONV_WS, 1,
    "<s>[INST] <<SYS>>\n \tBe brief. \n\n<</SYS>>\n"
    "\n\n  What is 2+2? [/INST] Four. </s><s>[INST] Thanks! [/INST]" },
  { "llama3", LEV_CHAT_LLAMA3, CONV_SYS_USER, 0,
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n"
    "\nYou are a friendly chatbot who always responds in the style of a pirate<|eot_id|><|start_heade"
    "r_id|>user<|end_header_id|>\n\nHello, how are you?<|eot_id|>" },
  { "llama3", LEV_CHAT_LLAMA3, CONV_SYS_USER, 1,
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n"
    "\nYou are a friendly chatbot who always responds in the style of a pirate<|eot_id|><|start_heade"
    "r_id|>user<|end_header_id|>\n\nHello, how are you?<|eot_id|><|start_header_id|>assistant<|end_he"
    "ader_id|>\n\n" },
  { "llama3", LEV_CHAT_LLAMA3, CONV_USER, 0,
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n"
    "\nHello, how are you?<|eot_id|>" },
  { "llama3", LEV_CHAT_LLAMA3, CONV_USER, 1,
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n"
    "\nHello, how are you?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
    "\n" },
  { "llama3", LEV_CHAT_LLAMA3, CONV_MULTI, 0,
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n"
    "\nYou are a friendly chatbot who always responds in the style of a pirate<|eot_id|><|start_heade"
    "r_id|>user<|end_header_id|>\n\nHello, how are you?<|eot_id|><|start_header_id|>assistant<|end_he"
    "ader_id|>\n\nI'm doing great. How can I help you today?<|eot_id|><|start_header_id|>user<|end_he"
    "ader_id|>\n\nI'd like to show off how chat templating works!<|eot_id|>" },
  { "llama3", LEV_CHAT_LLAMA3, CONV_MULTI, 1,
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n"
    "\nYou are a friendly chatbot who always responds in the style of a pirate<|eot_id|><|start_heade"
    "r_id|>user<|end_header_id|>\n\nHello, how are you?<|eot_id|><|start_header_id|>assistant<|end_he"
    "ader_id|>\n\nI'm doing great. How can I help you today?<|eot_id|><|start_header_id|>user<|end_he"
    "ader_id|>\n\nI'd like to show off how chat templating works!<|eot_id|><|start_header_id|>assista"
    "nt<|end_header_id|>\n\n" },
  { "llama3", LEV_CHAT_LLAMA3, CONV_NOSYS_MULTI, 0,
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n"
    "\nHello, how are you?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
    "\nI'm doing great. How can I help you today?<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
    "\nI'd like to show off how chat templating works!<|eot_id|>" },
  { "llama3", LEV_CHAT_LLAMA3, CONV_NOSYS_MULTI, 1,
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n"
    "\nHello, how are you?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
    "\nI'm doing great. How can I help you today?<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
    "\nI'd like to show off how chat templating works!<|eot_id|><|start_header_id|>assistant<|end_hea"
    "der_id|>\n\n" },
  { "llama3", LEV_CHAT_LLAMA3, CONV_WS, 0,
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n"
    "\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
    "\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
    "\nFour.<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
    "\nThanks!<|eot_id|>" },
  { "llama3", LEV_CHAT_LLAMA3, CONV_WS, 1,
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n"
    "\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
    "\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
    "\nFour.<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
    "\nThanks!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
    "\n" },
  { "qwen25", LEV_CHAT_CHATML, CONV_SYS_USER, 0,
    "<|im_start|>system\nYou are a friendly chatbot who always responds in the style of a pirate<|im_"
    "end|>\n<|im_start|>user\nHello, how are you?<|im_end|>\n" },
  { "qwen25", LEV_CHAT_CHATML, CONV_SYS_USER, 1,
    "<|im_start|>system\nYou are a friendly chatbot who always responds in the style of a pirate<|im_"
    "end|>\n<|im_start|>user\nHello, how are you?<|im_end|>\n"
    "<|im_start|>assistant\n" },
  { "qwen25", LEV_CHAT_CHATML, CONV_USER, 0,
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end"
    "|>\n<|im_start|>user\nHello, how are you?<|im_end|>\n" },
  { "qwen25", LEV_CHAT_CHATML, CONV_USER, 1,
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end"
    "|>\n<|im_start|>user\nHello, how are you?<|im_end|>\n"
    "<|im_start|>assistant\n" },
  { "qwen25", LEV_CHAT_CHATML, CONV_MULTI, 0,
    "<|im_start|>system\nYou are a friendly chatbot who always responds in the style of a pirate<|im_"
    "end|>\n<|im_start|>user\nHello, how are you?<|im_end|>\n"
    "<|im_start|>assistant\nI'm doing great. How can I help you today?<|im_end|>\n"
    "<|im_start|>user\nI'd like to show off how chat templating works!<|im_end|>\n" },
  { "qwen25", LEV_CHAT_CHATML, CONV_MULTI, 1,
    "<|im_start|>system\nYou are a friendly chatbot who always responds in the style of a pirate<|im_"
    "end|>\n<|im_start|>user\nHello, how are you?<|im_end|>\n"
    "<|im_start|>assistant\nI'm doing great. How can I help you today?<|im_end|>\n"
    "<|im_start|>user\nI'd like to show off how chat templating works!<|im_end|>\n"
    "<|im_start|>assistant\n" },
  { "qwen25", LEV_CHAT_CHATML, CONV_NOSYS_MULTI, 0,
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end"
    "|>\n<|im_start|>user\nHello, how are you?<|im_end|>\n"
    "<|im_start|>assistant\nI'm doing great. How can I help you today?<|im_end|>\n"
    "<|im_start|>user\nI'd like to show off how chat templating works!<|im_end|>\n" },
  { "qwen25", LEV_CHAT_CHATML, CONV_NOSYS_MULTI, 1,
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end"
    "|>\n<|im_start|>user\nHello, how are you?<|im_end|>\n"
    "<|im_start|>assistant\nI'm doing great. How can I help you today?<|im_end|>\n"
    "<|im_start|>user\nI'd like to show off how chat templating works!<|im_end|>\n"
    "<|im_start|>assistant\n" },
  { "qwen25", LEV_CHAT_CHATML, CONV_WS, 0,
    "<|im_start|>system\n \tBe brief. \n<|im_end|>\n"
    "<|im_start|>user\n\n  What is 2+2?  \n<|im_end|>\n"
    "<|im_start|>assistant\n Four. <|im_end|>\n"
    "<|im_start|>user\nThanks!\xe3\x80\x80""<|im_end|>\n" },
  { "qwen25", LEV_CHAT_CHATML, CONV_WS, 1,
    "<|im_start|>system\n \tBe brief. \n<|im_end|>\n"
    "<|im_start|>user\n\n  What is 2+2?  \n<|im_end|>\n"
    "<|im_start|>assistant\n Four. <|im_end|>\n"
    "<|im_start|>user\nThanks!\xe3\x80\x80""<|im_end|>\n"
    "<|im_start|>assistant\n" },
  { "qwen3", LEV_CHAT_CHATML, CONV_SYS_USER, 0,
    "<|im_start|>system\nYou are a friendly chatbot who always responds in the style of a pirate<|im_"
    "end|>\n<|im_start|>user\nHello, how are you?<|im_end|>\n" },
  { "qwen3", LEV_CHAT_CHATML, CONV_SYS_USER, 1,
    "<|im_start|>system\nYou are a friendly chatbot who always responds in the style of a pirate<|im_"
    "end|>\n<|im_start|>user\nHello, how are you?<|im_end|>\n"
    "<|im_start|>assistant\n" },
  { "qwen3", LEV_CHAT_CHATML, CONV_USER, 0,
    "<|im_start|>user\nHello, how are you?<|im_end|>\n" },
  { "qwen3", LEV_CHAT_CHATML, CONV_USER, 1,
    "<|im_start|>user\nHello, how are you?<|im_end|>\n"
    "<|im_start|>assistant\n" },
  { "qwen3", LEV_CHAT_CHATML, CONV_MULTI, 0,
    "<|im_start|>system\nYou are a friendly chatbot who always responds in the style of a pirate<|im_"
    "end|>\n<|im_start|>user\nHello, how are you?<|im_end|>\n"
    "<|im_start|>assistant\nI'm doing great. How can I help you today?<|im_end|>\n"
    "<|im_start|>user\nI'd like to show off how chat templating works!<|im_end|>\n" },
  { "qwen3", LEV_CHAT_CHATML, CONV_MULTI, 1,
    "<|im_start|>system\nYou are a friendly chatbot who always responds in the style of a pirate<|im_"
    "end|>\n<|im_start|>user\nHello, how are you?<|im_end|>\n"
    "<|im_start|>assistant\nI'm doing great. How can I help you today?<|im_end|>\n"
    "<|im_start|>user\nI'd like to show off how chat templating works!<|im_end|>\n"
    "<|im_start|>assistant\n" },
  { "qwen3", LEV_CHAT_CHATML, CONV_NOSYS_MULTI, 0,
    "<|im_start|>user\nHello, how are you?<|im_end|>\n"
    "<|im_start|>assistant\nI'm doing great. How can I help you today?<|im_end|>\n"
    "<|im_start|>user\nI'd like to show off how chat templating works!<|im_end|>\n" },
  { "qwen3", LEV_CHAT_CHATML, CONV_NOSYS_MULTI, 1,
    "<|im_start|>user\nHello, how are you?<|im_end|>\n"
    "<|im_start|>assistant\nI'm doing great. How can I help you today?<|im_end|>\n"
    "<|im_start|>user\nI'd like to show off how chat templating works!<|im_end|>\n"
    "<|im_start|>assistant\n" },
  { "qwen3", LEV_CHAT_CHATML, CONV_WS, 0,
    "<|im_start|>system\n \tBe brief. \n<|im_end|>\n"
    "<|im_start|>user\n\n  What is 2+2?  \n<|im_end|>\n"
    "<|im_start|>assistant\n Four. <|im_end|>\n"
    "<|im_start|>user\nThanks!\xe3\x80\x80""<|im_end|>\n" },
  { "qwen3", LEV_CHAT_CHATML, CONV_WS, 1,
    "<|im_start|>system\n \tBe brief. \n<|im_end|>\n"
    "<|im_start|>user\n\n  What is 2+2?  \n<|im_end|>\n"
    "<|im_start|>assistant\n Four. <|im_end|>\n"
    "<|im_start|>user\nThanks!\xe3\x80\x80""<|im_end|>\n"
    "<|im_start|>assistant\n" },
  { "zephyr", LEV_CHAT_ZEPHYR, CONV_SYS_USER, 0,
    "<|system|>\nYou are a friendly chatbot who always responds in the style of a pirate</s>\n"
    "<|user|>\nHello, how are you?</s>\n" },
  { "zephyr", LEV_CHAT_ZEPHYR, CONV_SYS_USER, 1,
    "<|system|>\nYou are a friendly chatbot who always responds in the style of a pirate</s>\n"
    "<|user|>\nHello, how are you?</s>\n<|assistant|>\n" },
  { "zephyr", LEV_CHAT_ZEPHYR, CONV_USER, 0,
    "<|user|>\nHello, how are you?</s>\n" },
  { "zephyr", LEV_CHAT_ZEPHYR, CONV_USER, 1,
    "<|user|>\nHello, how are you?</s>\n<|assistant|>\n" },
  { "zephyr", LEV_CHAT_ZEPHYR, CONV_MULTI, 0,
    "<|system|>\nYou are a friendly chatbot who always responds in the style of a pirate</s>\n"
    "<|user|>\nHello, how are you?</s>\n<|assistant|>\n"
    "I'm doing great. How can I help you today?</s>\n"
    "<|user|>\nI'd like to show off how chat templating works!</s>\n" },
  { "zephyr", LEV_CHAT_ZEPHYR, CONV_MULTI, 1,
    "<|system|>\nYou are a friendly chatbot who always responds in the style of a pirate</s>\n"
    "<|user|>\nHello, how are you?</s>\n<|assistant|>\n"
    "I'm doing great. How can I help you today?</s>\n"
    "<|user|>\nI'd like to show off how chat templating works!</s>\n"
    "<|assistant|>\n" },
  { "zephyr", LEV_CHAT_ZEPHYR, CONV_NOSYS_MULTI, 0,
    "<|user|>\nHello, how are you?</s>\n<|assistant|>\n"
    "I'm doing great. How can I help you today?</s>\n"
    "<|user|>\nI'd like to show off how chat templating works!</s>\n" },
  { "zephyr", LEV_CHAT_ZEPHYR, CONV_NOSYS_MULTI, 1,
    "<|user|>\nHello, how are you?</s>\n<|assistant|>\n"
    "I'm doing great. How can I help you today?</s>\n"
    "<|user|>\nI'd like to show off how chat templating works!</s>\n"
    "<|assistant|>\n" },
  { "zephyr", LEV_CHAT_ZEPHYR, CONV_WS, 0,
    "<|system|>\n \tBe brief. \n</s>\n<|user|>\n"
    "\n  What is 2+2?  \n</s>\n<|assistant|>\n"
    " Four. </s>\n<|user|>\nThanks!\xe3\x80\x80""</s>\n" },
  { "zephyr", LEV_CHAT_ZEPHYR, CONV_WS, 1,
    "<|system|>\n \tBe brief. \n</s>\n<|user|>\n"
    "\n  What is 2+2?  \n</s>\n<|assistant|>\n"
    " Four. </s>\n<|user|>\nThanks!\xe3\x80\x80""</s>\n"
    "<|assistant|>\n" },
  { "bitnet", LEV_CHAT_BITNET, CONV_SYS_USER, 0,
    "<|begin_of_text|>System: You are a friendly chatbot who always responds in the style of a pirate"
    "<|eot_id|>User: Hello, how are you?<|eot_id|>" },
  { "bitnet", LEV_CHAT_BITNET, CONV_SYS_USER, 1,
    "<|begin_of_text|>System: You are a friendly chatbot who always responds in the style of a pirate"
    "<|eot_id|>User: Hello, how are you?<|eot_id|>Assistant: " },
  { "bitnet", LEV_CHAT_BITNET, CONV_USER, 0,
    "<|begin_of_text|>User: Hello, how are you?<|eot_id|>" },
  { "bitnet", LEV_CHAT_BITNET, CONV_USER, 1,
    "<|begin_of_text|>User: Hello, how are you?<|eot_id|>Assistant: " },
  { "bitnet", LEV_CHAT_BITNET, CONV_MULTI, 0,
    "<|begin_of_text|>System: You are a friendly chatbot who always responds in the style of a pirate"
    "<|eot_id|>User: Hello, how are you?<|eot_id|>Assistant: I'm doing great. How can I help you toda"
    "y?<|eot_id|>User: I'd like to show off how chat templating works!<|eot_id|>" },
  { "bitnet", LEV_CHAT_BITNET, CONV_MULTI, 1,
    "<|begin_of_text|>System: You are a friendly chatbot who always responds in the style of a pirate"
    "<|eot_id|>User: Hello, how are you?<|eot_id|>Assistant: I'm doing great. How can I help you toda"
    "y?<|eot_id|>User: I'd like to show off how chat templating works!<|eot_id|>Assistant: " },
  { "bitnet", LEV_CHAT_BITNET, CONV_NOSYS_MULTI, 0,
    "<|begin_of_text|>User: Hello, how are you?<|eot_id|>Assistant: I'm doing great. How can I help y"
    "ou today?<|eot_id|>User: I'd like to show off how chat templating works!<|eot_id|>" },
  { "bitnet", LEV_CHAT_BITNET, CONV_NOSYS_MULTI, 1,
    "<|begin_of_text|>User: Hello, how are you?<|eot_id|>Assistant: I'm doing great. How can I help y"
    "ou today?<|eot_id|>User: I'd like to show off how chat templating works!<|eot_id|>Assistant: " },
  { "bitnet", LEV_CHAT_BITNET, CONV_WS, 0,
    "<|begin_of_text|>System: Be brief.<|eot_id|>User: What is 2+2?<|eot_id|>Assistant: Four.<|eot_id"
    "|>User: Thanks!<|eot_id|>" },
  { "bitnet", LEV_CHAT_BITNET, CONV_WS, 1,
    "<|begin_of_text|>System: Be brief.<|eot_id|>User: What is 2+2?<|eot_id|>Assistant: Four.<|eot_id"
    "|>User: Thanks!<|eot_id|>Assistant: " },
};

static const char *
bos_of (LevChatTemplate tmpl)
{
  switch (tmpl) {
  case LEV_CHAT_LLAMA2: return "<s>";
  case LEV_CHAT_LLAMA3:
  case LEV_CHAT_BITNET: return "<|begin_of_text|>";
  default: return NULL;   /* ChatML and Zephyr templates do not write BOS */
  }
}

/* Renders every case and compares it with the published template's output. */
static void
test_render (void)
{
  gchar *qwen25_default = lev_chat_template_default_system (TPL_QWEN25);
  g_assert_cmpstr (qwen25_default, ==, "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
  guint pass = 0;
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    const LevChatMessage *m = convs[cases[i].conv].m;
    gsize n = convs[cases[i].conv].n;
    LevChatMessage with_default[8];
    if (strcmp (cases[i].family, "qwen25") == 0 && strcmp (m[0].role, "system") != 0) {
      /* what a caller does with lev_chat_template_default_system() for a conversation without a system message */
      with_default[0] = (LevChatMessage) { "system", qwen25_default };
      memcpy (with_default + 1, m, n * sizeof *m);
      m = with_default;
      n++;
    }
    gchar *got = lev_chat_render (cases[i].tmpl, m, n, cases[i].gen, bos_of (cases[i].tmpl));
    if (strcmp (got, cases[i].expected) == 0) {
      pass++;
    } else {
      gchar *e = g_strescape (cases[i].expected, NULL), *g = g_strescape (got, NULL);
      g_printerr ("MISMATCH %s conversation %d gen %d\n  expected \"%s\"\n  got      \"%s\"\n", cases[i].family,
                  cases[i].conv, cases[i].gen, e, g);
      g_free (e);
      g_free (g);
    }
    g_free (got);
  }
  g_printerr ("chat templates: %u/%u rendered prompts equal the published templates' output\n", pass,
              (guint) G_N_ELEMENTS (cases));
  g_assert_cmpuint (pass, ==, G_N_ELEMENTS (cases));
  g_free (qwen25_default);
}

/* render(history, gen) + the reply as the template writes it + continuation(next turn) == render(everything): what
 * levrun --chat feeds turn after turn. */
static void
test_continuation (void)
{
  static const LevChatTemplate all[] = { LEV_CHAT_LLAMA2, LEV_CHAT_LLAMA3, LEV_CHAT_CHATML, LEV_CHAT_ZEPHYR,
                                         LEV_CHAT_BITNET };
  for (guint i = 0; i < G_N_ELEMENTS (all); i++) {
    const char *bos = bos_of (all[i]);
    gchar *head = lev_chat_render (all[i], conv_multi, 2, TRUE, bos);
    gchar *next = lev_chat_render_continuation (all[i], conv_multi + 3, 1, TRUE, bos);
    /* Llama 2 has no generation prompt: its assistant turn starts with the space the model writes itself */
    gchar *joined = g_strconcat (head, all[i] == LEV_CHAT_LLAMA2 ? " " : "", A1, next, NULL);
    gchar *whole = lev_chat_render (all[i], conv_multi, 4, TRUE, bos);
    g_assert_cmpstr (joined, ==, whole);
    g_free (head);
    g_free (next);
    g_free (joined);
    g_free (whole);
  }
}

/* Detection from the published templates, the fixtures' templates, and templates of other families. */
static void
test_detect (void)
{
  g_assert_cmpint (lev_chat_template_detect (TPL_LLAMA2), ==, LEV_CHAT_LLAMA2);
  g_assert_cmpint (lev_chat_template_detect (TPL_LLAMA3), ==, LEV_CHAT_LLAMA3);
  g_assert_cmpint (lev_chat_template_detect (TPL_QWEN25), ==, LEV_CHAT_CHATML);
  g_assert_cmpint (lev_chat_template_detect (TPL_TINYLLAMA), ==, LEV_CHAT_ZEPHYR);
  g_assert_cmpint (lev_chat_template_detect (TPL_BITNET), ==, LEV_CHAT_BITNET);
  g_assert_cmpint (lev_chat_template_detect (NULL), ==, LEV_CHAT_NONE);
  g_assert_cmpint (lev_chat_template_detect (""), ==, LEV_CHAT_NONE);
  /* Mistral-Instruct ([INST] without <<SYS>>), Phi-3 (<|user|> ... <|end|>), Gemma: not one of ours */
  g_assert_cmpint (lev_chat_template_detect ("{{ bos_token }}{% for message in messages %}{% if message['role'] == "
                                             "'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endif %}"
                                             "{% endfor %}"), ==, LEV_CHAT_NONE);
  g_assert_cmpint (lev_chat_template_detect ("{% for message in messages %}{{'<|user|>\\n' + message['content'] + "
                                             "'<|end|>\\n'}}{% endfor %}{{ '<|assistant|>\\n' }}"), ==,
                   LEV_CHAT_NONE);
  g_assert_cmpint (lev_chat_template_detect ("{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + "
                                             "'<end_of_turn>\\n' }}"), ==, LEV_CHAT_NONE);
  g_assert_null (lev_chat_template_default_system (TPL_LLAMA3));

}

/* Returns the "chat_template" string of a fixture's tokenizer_config.json (g_free it). */
static gchar *
fixture_chat_template (const char *relpath)
{
  JsonNode *root = parse_json_fixture (relpath);
  gchar *jinja = g_strdup (json_object_get_string_member (json_node_get_object (root), "chat_template"));
  json_node_unref (root);
  return jinja;
}

/* The fixtures' tokenizer_config.json templates: Qwen3's (the real one) is ChatML without a default system message,
 * the Llama 3 one is Llama 3. */
static void
test_detect_fixtures (void)
{
  const gchar *dir = g_getenv ("LEV_FIXTURES");
  gchar *probe = g_build_filename (dir ? dir : "tests/data", "tokenizers", NULL);
  gboolean have = g_file_test (probe, G_FILE_TEST_IS_DIR);
  g_free (probe);
  if (!have && g_strcmp0 (g_getenv ("CI"), "true") != 0) {
    g_test_skip ("fixtures not found");
    return;
  }
  static const struct { const char *path; LevChatTemplate want; } fixtures[] = {
    { "tokenizers/qwen3/tokenizer_config.json", LEV_CHAT_CHATML },
    { "tokenizers/llama3/tokenizer_config.json", LEV_CHAT_LLAMA3 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (fixtures); i++) {
    gchar *jinja = fixture_chat_template (fixtures[i].path);
    g_assert_cmpint (lev_chat_template_detect (jinja), ==, fixtures[i].want);
    g_assert_null (lev_chat_template_default_system (jinja));
    g_free (jinja);
  }
}

/* Copies src to dst (whole file). */
static void
copy_file (const char *src, const char *dst)
{
  gchar *data;
  gsize len;
  GError *error = NULL;
  g_assert_true (g_file_get_contents (src, &data, &len, &error));
  g_assert_true (g_file_set_contents (dst, data, (gssize) len, &error));
  g_assert_no_error (error);
  g_free (data);
}

/* Through the model file, as levrun --chat uses it: a Hugging Face directory (stories260K-llama, a SentencePiece
 * tokenizer) whose tokenizer_config.json carries TinyLlama's template is converted; the loaded model's template is
 * recognised as Zephyr, and the rendered prompt encodes with BOS prepended (the tokenizer adds one, the template
 * does not write it) and "</s>" written in it as the EOS id. */
static void
test_model_file (void)
{
  gchar *src = lev_test_fixture ("hf/stories260K-llama");
  gchar *dir = g_dir_make_tmp ("levchat-XXXXXX", NULL);
  static const char *const files[] = { "config.json", "model.safetensors", "tokenizer.model",
                                       "generation_config.json", "special_tokens_map.json" };
  for (guint i = 0; i < G_N_ELEMENTS (files); i++) {
    gchar *a = g_build_filename (src, files[i], NULL), *b = g_build_filename (dir, files[i], NULL);
    if (g_file_test (a, G_FILE_TEST_EXISTS))
      copy_file (a, b);
    g_free (a);
    g_free (b);
  }
  /* tokenizer_config.json: the fixture's settings plus the chat template */
  JsonBuilder *jb = json_builder_new ();
  json_builder_begin_object (jb);
  json_builder_set_member_name (jb, "add_bos_token");
  json_builder_add_boolean_value (jb, TRUE);
  json_builder_set_member_name (jb, "bos_token");
  json_builder_add_string_value (jb, "<s>");
  json_builder_set_member_name (jb, "eos_token");
  json_builder_add_string_value (jb, "</s>");
  json_builder_set_member_name (jb, "chat_template");
  json_builder_add_string_value (jb, TPL_TINYLLAMA);
  json_builder_end_object (jb);
  JsonGenerator *gen = json_generator_new ();
  JsonNode *root = json_builder_get_root (jb);
  json_generator_set_root (gen, root);
  gchar *cfg = g_build_filename (dir, "tokenizer_config.json", NULL);
  GError *error = NULL;
  g_assert_true (json_generator_to_file (gen, cfg, &error));
  json_node_unref (root);
  g_object_unref (gen);
  g_object_unref (jb);

  LevConvModel *cm = lev_import_hf_dir (dir, &error);
  g_assert_no_error (error);
  gchar *path = g_build_filename (dir, "model.leviathan", NULL);
  g_assert_true (lev_write_model (cm, path, LEV_OUT_AUTO, FALSE, &error));
  g_assert_no_error (error);
  lev_conv_model_free (cm);
  LevModel *model = lev_model_load (path, &error);
  g_assert_no_error (error);
  const LevTokenizer *tok = lev_model_tokenizer (model);
  g_assert_cmpstr (lev_model_chat_template (model), ==, TPL_TINYLLAMA);
  LevChatTemplate t = lev_chat_template_detect (lev_model_chat_template (model));
  g_assert_cmpint (t, ==, LEV_CHAT_ZEPHYR);
  gchar *text = lev_chat_render (t, conv_sys_user, 2, TRUE, NULL);
  g_assert_true (lev_tokenizer_adds_bos (tok));
  size_t n = 0;
  int32_t *ids = lev_tokenizer_encode_special (tok, text, -1, TRUE, &n, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (n, >, 10);
  g_assert_cmpint (ids[0], ==, lev_tokenizer_bos (tok));
  guint n_eos = 0;
  for (size_t i = 0; i < n; i++)
    n_eos += ids[i] == lev_tokenizer_eos (tok);
  g_assert_cmpuint (n_eos, ==, 2);   /* after the system and the user message */
  g_free (ids);
  g_free (text);
  lev_model_free (model);
  for (guint i = 0; i < G_N_ELEMENTS (files); i++) {
    gchar *b = g_build_filename (dir, files[i], NULL);
    g_unlink (b);
    g_free (b);
  }
  g_unlink (cfg);
  g_unlink (path);
  g_rmdir (dir);
  g_free (cfg);
  g_free (path);
  g_free (dir);
  g_free (src);
}

/* Names. */
static void
test_names (void)
{
  for (int t = LEV_CHAT_NONE; t <= LEV_CHAT_BITNET; t++) {
    LevChatTemplate back = LEV_CHAT_NONE;
    g_assert_true (lev_chat_template_from_name (lev_chat_template_name ((LevChatTemplate) t), &back));
    g_assert_cmpint (back, ==, t);
  }
  LevChatTemplate x = LEV_CHAT_LLAMA3;
  g_assert_false (lev_chat_template_from_name ("jinja", &x));
  g_assert_false (lev_chat_template_from_name (NULL, &x));
  g_assert_cmpint (x, ==, LEV_CHAT_LLAMA3);
  g_assert_true (lev_chat_template_from_name ("ChatML", &x));
  g_assert_cmpint (x, ==, LEV_CHAT_CHATML);
  /* no template: the contents as they are */
  gchar *s = lev_chat_render (LEV_CHAT_NONE, conv_sys_user, 2, TRUE, "<s>");
  g_assert_cmpstr (s, ==, SYS "\n" U1);
  g_free (s);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/chat/render", test_render);
  g_test_add_func ("/chat/continuation", test_continuation);
  g_test_add_func ("/chat/detect", test_detect);
  g_test_add_func ("/chat/detect-fixtures", test_detect_fixtures);
  g_test_add_func ("/chat/names", test_names);
  g_test_add_func ("/chat/model-file", test_model_file);
  return g_test_run ();
}
