/* fuzz_chat.c: libFuzzer target: chat-template detection and rendering on arbitrary strings. */
#include "fuzz_common.h"
#include "lev_chat.h"

/* Nothing to prepare. */
int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  return 0;
}

/* Checks a rendering: present, and valid UTF-8 when every input string was. */
static void
check_rendered (char *s, gboolean inputs_valid)
{
  FUZZ_CHECK (s != NULL, "render returned NULL");
  if (inputs_valid)
    FUZZ_CHECK (g_utf8_validate (s, -1, NULL), "valid inputs rendered to invalid UTF-8");
  g_free (s);
}

/* The input is NUL-separated strings: a Jinja template (detected; also taken as a template name), then pairs of
 * role and content. The first byte of the template also picks the family rendered (byte % 6) and, in its bits
 * 3-4, the generation prompt and a BOS text. */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  gchar *copy = g_malloc (size + 1);
  if (size)
    memcpy (copy, data, size);
  copy[size] = '\0';
  GPtrArray *parts = g_ptr_array_new ();
  for (size_t i = 0, start = 0; i <= size; i++) {
    if (copy[i] == '\0') {
      g_ptr_array_add (parts, copy + start);
      start = i + 1;
    }
  }
  const char *jinja = g_ptr_array_index (parts, 0);
  gboolean valid = g_utf8_validate (copy, (gssize) size, NULL);
  LevChatTemplate detected = lev_chat_template_detect (jinja);
  FUZZ_CHECK (detected >= LEV_CHAT_NONE && detected <= LEV_CHAT_BITNET, "detected %d", detected);
  (void) lev_chat_template_name (detected);
  LevChatTemplate named;
  if (lev_chat_template_from_name (jinja, &named))
    FUZZ_CHECK (g_ascii_strcasecmp (lev_chat_template_name (named), jinja) == 0, "name %s does not round-trip", jinja);
  char *sys = lev_chat_template_default_system (jinja);
  if (sys != NULL) {
    FUZZ_CHECK (strlen (sys) <= strlen (jinja), "default system message longer than the template");
    g_free (sys);
  }
  const uint8_t ctl = size > 0 ? data[0] : 0;
  const LevChatTemplate tmpl = (LevChatTemplate) (ctl % 6);
  const gboolean gen = (ctl & 8) != 0;
  const char *bos = (ctl & 16) ? "<s>" : NULL;
  gsize n_msg = (parts->len - 1) / 2;
  LevChatMessage *msgs = g_new0 (LevChatMessage, n_msg + 1);
  for (gsize i = 0; i < n_msg; i++) {
    msgs[i].role = g_ptr_array_index (parts, 1 + 2 * i);
    msgs[i].content = g_ptr_array_index (parts, 2 + 2 * i);
  }
  const LevChatTemplate use[2] = { tmpl, detected };
  for (guint i = 0; i < (detected != tmpl ? 2u : 1u); i++) {
    check_rendered (lev_chat_render (use[i], msgs, n_msg, gen, bos), valid);
    check_rendered (lev_chat_render_continuation (use[i], msgs, n_msg, gen, bos), valid);
  }
  check_rendered (lev_chat_render (tmpl, NULL, 0, gen, bos), TRUE);
  g_free (msgs);
  g_ptr_array_unref (parts);
  g_free (copy);
  return 0;
}
