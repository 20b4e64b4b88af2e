/* lev_chat.c: chat templates of the supported model families (Llama 2, Llama 3, ChatML, Zephyr, BitNet), in C. */
#include "lev_chat.h"

#include <string.h>

/* What each family's published Jinja template (tokenizer_config.json "chat_template") produces; rendered here
 * without a Jinja interpreter. The sources and the strings they render are in tests/test_chat.c.
 *  - Llama 2 (meta-llama/Llama-2-7b-chat-hf): a first system message is folded into the first user turn as
 *    "<<SYS>>\n" + system + "\n<</SYS>>\n\n"; user turns are bos + "[INST] " + strip(content) + " [/INST]",
 *    assistant turns " " + strip(content) + " </s>". The template has no generation prompt: the assistant's reply
 *    follows "[/INST]" directly. Other roles are skipped.
 *  - Llama 3 (meta-llama/Meta-Llama-3-8B-Instruct): "<|start_header_id|>" + role + "<|end_header_id|>\n\n" +
 *    trim(content) + "<|eot_id|>", bos before the first message; generation prompt
 *    "<|start_header_id|>assistant<|end_header_id|>\n\n".
 *  - ChatML (Qwen2.5, Qwen3 for conversations without tools or <think> blocks): "<|im_start|>" + role + "\n" +
 *    content + "<|im_end|>\n"; generation prompt "<|im_start|>assistant\n". Qwen2 and Qwen2.5 add a default system
 *    message when the conversation has none: lev_chat_template_default_system() finds it in the Jinja text.
 *  - Zephyr (TinyLlama/TinyLlama-1.1B-Chat-v1.0): "<|" + role + "|>\n" + content + "</s>\n" for system, user and
 *    assistant; generation prompt "<|assistant|>\n" (only after at least one message, as the template's loop
 *    writes it).
 *  - BitNet b1.58 2B4T (microsoft/bitnet-b1.58-2B-4T): capitalize(role) + ": " + trim(content) + "<|eot_id|>", bos
 *    before the first message; generation prompt "Assistant: ".
 *  - None: the contents joined by "\n".
 * strip / trim is Python's str.strip(): leading and trailing Unicode whitespace. */

#define LLAMA2_EOS "</s>"
#define ZEPHYR_EOS "</s>"

static const char *const template_names[] = { "none", "llama2", "llama3", "chatml", "zephyr", "bitnet" };

/* Recognises a family from a Jinja chat template (tokenizer_config.json's); LEV_CHAT_NONE if unknown or NULL. */
LevChatTemplate
lev_chat_template_detect (const char *jinja)
{
  if (jinja == NULL)
    return LEV_CHAT_NONE;
#define HAS(s) (strstr (jinja, (s)) != NULL)
  if (HAS ("<|start_header_id|>") && HAS ("<|end_header_id|>"))
    return LEV_CHAT_LLAMA3;
  if (HAS ("<|im_start|>") && HAS ("<|im_end|>"))
    return LEV_CHAT_CHATML;
  /* BitNet b1.58 2B4T: "Role: content<|eot_id|>" (role capitalized, or the roles written out) */
  if (HAS ("<|eot_id|>") && HAS ("Assistant: ") && (HAS ("capitalize") || HAS ("User: ")))
    return LEV_CHAT_BITNET;
  /* Zephyr / TinyLlama-Chat; Phi-3 uses the same role tags with <|end|> and is not this family */
  if (HAS ("<|user|>") && HAS ("<|assistant|>") && !HAS ("<|end|>"))
    return LEV_CHAT_ZEPHYR;
  if (HAS ("[INST]") && HAS ("[/INST]") && HAS ("<<SYS>>"))
    return LEV_CHAT_LLAMA2;
#undef HAS
  return LEV_CHAT_NONE;
}

/* Parses a template name ("none", "llama2", "llama3", "chatml", "zephyr", "bitnet"); FALSE if unknown. */
gboolean
lev_chat_template_from_name (const char *name, LevChatTemplate *out)
{
  if (name == NULL)
    return FALSE;
  for (guint i = 0; i < G_N_ELEMENTS (template_names); i++)
    if (g_ascii_strcasecmp (name, template_names[i]) == 0) {
      if (out)
        *out = (LevChatTemplate) i;
      return TRUE;
    }
  return FALSE;
}

/* Returns the name of a template. */
const char *
lev_chat_template_name (LevChatTemplate tmpl)
{
  if ((guint) tmpl < G_N_ELEMENTS (template_names))
    return template_names[tmpl];
  return "unknown";
}

/* Python's str.isspace() for one character (White_Space, plus the ASCII separators U+001C..U+001F). */
static gboolean
py_isspace (gunichar c)
{
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || g_unichar_isspace (c)
      || g_unichar_type (c) == G_UNICODE_SPACE_SEPARATOR;
}

/* Appends s with leading and trailing whitespace removed (Python's str.strip(), Jinja's trim). */
static void
append_stripped (GString *out, const char *s)
{
  const char *end = s + strlen (s);
  while (*s) {
    gunichar c = g_utf8_get_char_validated (s, end - s);
    if (c == (gunichar) -1 || c == (gunichar) -2 || !py_isspace (c))
      break;
    s = g_utf8_next_char (s);
  }
  while (end > s) {
    const char *p = g_utf8_find_prev_char (s, end);
    if (p == NULL)
      break;
    gunichar c = g_utf8_get_char_validated (p, end - p);
    if (c == (gunichar) -1 || c == (gunichar) -2 || !py_isspace (c))
      break;
    end = p;
  }
  g_string_append_len (out, s, end - s);
}

/* Appends role with its first character upper-cased and the rest lower-cased (Python's str.capitalize()). */
static void
append_capitalized (GString *out, const char *role)
{
  if (*role == '\0')
    return;
  if (!g_utf8_validate (role, -1, NULL)) {
    g_string_append (out, role);
    return;
  }
  g_string_append_unichar (out, g_unichar_totitle (g_utf8_get_char (role)));
  gchar *rest = g_utf8_strdown (g_utf8_next_char (role), -1);
  g_string_append (out, rest);
  g_free (rest);
}

/* The text that closes an assistant turn after its content. */
static const char *
assistant_end (LevChatTemplate tmpl)
{
  switch (tmpl) {
  case LEV_CHAT_LLAMA2: return " " LLAMA2_EOS;
  case LEV_CHAT_LLAMA3: return "<|eot_id|>";
  case LEV_CHAT_CHATML: return "<|im_end|>\n";
  case LEV_CHAT_ZEPHYR: return ZEPHYR_EOS "\n";
  case LEV_CHAT_BITNET: return "<|eot_id|>";
  default: return "";
  }
}

static inline const char *
str0 (const char *s)
{
  return s ? s : "";
}

/* Renders messages; continuing: they follow earlier messages (no BOS or system folding at the first of them). */
static void
render_messages (GString *out, LevChatTemplate tmpl, const LevChatMessage *messages, gsize n,
                 gboolean add_generation_prompt, const char *bos, gboolean continuing)
{
  bos = str0 (bos);
  switch (tmpl) {
  case LEV_CHAT_LLAMA2: {
    gsize first = 0;
    const char *system = NULL;
    if (!continuing && n > 0 && g_strcmp0 (messages[0].role, "system") == 0) {
      system = str0 (messages[0].content);
      first = 1;
    }
    for (gsize i = first; i < n; i++) {
      const char *role = str0 (messages[i].role), *content = str0 (messages[i].content);
      gchar *folded = NULL;
      if (i == first && system != NULL)
        content = folded = g_strconcat ("<<SYS>>\n", system, "\n<</SYS>>\n\n", content, NULL);
      if (strcmp (role, "user") == 0) {
        g_string_append (out, bos);
        g_string_append (out, "[INST] ");
        append_stripped (out, content);
        g_string_append (out, " [/INST]");
      } else if (strcmp (role, "assistant") == 0) {
        g_string_append_c (out, ' ');
        append_stripped (out, content);
        g_string_append (out, " " LLAMA2_EOS);
      }
      g_free (folded);
    }
    break;
  }
  case LEV_CHAT_LLAMA3:
  case LEV_CHAT_BITNET:
    for (gsize i = 0; i < n; i++) {
      if (i == 0 && !continuing)
        g_string_append (out, bos);
      if (tmpl == LEV_CHAT_LLAMA3) {
        g_string_append (out, "<|start_header_id|>");
        g_string_append (out, str0 (messages[i].role));
        g_string_append (out, "<|end_header_id|>\n\n");
      } else {
        append_capitalized (out, str0 (messages[i].role));
        g_string_append (out, ": ");
      }
      append_stripped (out, str0 (messages[i].content));
      g_string_append (out, "<|eot_id|>");
    }
    if (add_generation_prompt)
      g_string_append (out, tmpl == LEV_CHAT_LLAMA3 ? "<|start_header_id|>assistant<|end_header_id|>\n\n"
                                                    : "Assistant: ");
    break;
  case LEV_CHAT_CHATML:
    for (gsize i = 0; i < n; i++) {
      g_string_append (out, "<|im_start|>");
      g_string_append (out, str0 (messages[i].role));
      g_string_append_c (out, '\n');
      g_string_append (out, str0 (messages[i].content));
      g_string_append (out, "<|im_end|>\n");
    }
    if (add_generation_prompt)
      g_string_append (out, "<|im_start|>assistant\n");
    break;
  case LEV_CHAT_ZEPHYR:
    for (gsize i = 0; i < n; i++) {
      const char *role = str0 (messages[i].role);
      if (strcmp (role, "user") == 0 || strcmp (role, "system") == 0 || strcmp (role, "assistant") == 0) {
        g_string_append (out, "<|");
        g_string_append (out, role);
        g_string_append (out, "|>\n");
        g_string_append (out, str0 (messages[i].content));
        g_string_append (out, ZEPHYR_EOS "\n");
      }
      if (i + 1 == n && add_generation_prompt)
        g_string_append (out, "<|assistant|>\n");
    }
    break;
  default:
    for (gsize i = 0; i < n; i++) {
      if (i > 0 || continuing)
        g_string_append_c (out, '\n');
      g_string_append (out, str0 (messages[i].content));
    }
    break;
  }
}

/* Renders messages as the family's template does; with add_generation_prompt the assistant's turn is opened.
 * bos is the text of the BOS token where the template writes it (may be NULL). Returns a newly allocated string. */
char *
lev_chat_render (LevChatTemplate tmpl, const LevChatMessage *messages, gsize n_messages,
                 gboolean add_generation_prompt, const char *bos)
{
  g_return_val_if_fail (messages != NULL || n_messages == 0, NULL);
  GString *out = g_string_new (NULL);
  render_messages (out, tmpl, messages, n_messages, add_generation_prompt, bos, FALSE);
  return g_string_free (out, FALSE);
}

/* Renders what follows an assistant reply whose text was written after an earlier rendering with the generation
 * prompt: the end of the assistant's turn, then messages (usually one user turn) and, with add_generation_prompt,
 * the opening of the next assistant turn. render(history + [assistant: reply] + messages) equals
 * render(history, with the prompt) + reply as the template writes it + this. Returns a newly allocated string. */
char *
lev_chat_render_continuation (LevChatTemplate tmpl, const LevChatMessage *messages, gsize n_messages,
                              gboolean add_generation_prompt, const char *bos)
{
  g_return_val_if_fail (messages != NULL || n_messages == 0, NULL);
  GString *out = g_string_new (assistant_end (tmpl));
  render_messages (out, tmpl, messages, n_messages, add_generation_prompt, bos, TRUE);
  return g_string_free (out, FALSE);
}

/* Returns the default system message a ChatML template writes when the conversation has none (Qwen2 / Qwen2.5:
 * a string literal '<|im_start|>system\n...<|im_end|>' with fixed text), newly allocated; NULL when there is none. */
char *
lev_chat_template_default_system (const char *jinja)
{
  if (jinja == NULL || lev_chat_template_detect (jinja) != LEV_CHAT_CHATML)
    return NULL;
  static const char marker[] = "<|im_start|>system\\n";
  for (const char *p = strstr (jinja, marker); p != NULL; p = strstr (p + 1, marker)) {
    /* the marker must be inside a string literal: find its quote character before it on the same literal */
    const char *q = p;
    while (q > jinja && q[-1] != '\'' && q[-1] != '"' && q[-1] != '\n')
      q--;
    if (q == jinja || (q[-1] != '\'' && q[-1] != '"'))
      continue;
    char quote = q[-1];
    const char *s = p + strlen (marker);
    const char *e = strstr (s, "<|im_end|>");
    if (e == NULL)
      continue;
    GString *text = g_string_new (NULL);
    gboolean ok = TRUE;
    for (const char *c = s; c < e && ok; c++) {
      if (*c == quote) {
        ok = FALSE;   /* the literal ends before <|im_end|>: the system text is not fixed */
      } else if (*c == '\\' && c + 1 < e) {
        c++;
        switch (*c) {
        case 'n': g_string_append_c (text, '\n'); break;
        case 't': g_string_append_c (text, '\t'); break;
        default: g_string_append_c (text, *c); break;
        }
      } else {
        g_string_append_c (text, *c);
      }
    }
    if (ok && text->len > 0)
      return g_string_free (text, FALSE);
    g_string_free (text, TRUE);
  }
  return NULL;
}
