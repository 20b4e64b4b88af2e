/* fuzz_hf.c: libFuzzer target: a Hugging Face directory (config.json, safetensors, ...) built from the input. */
#include "fuzz_common.h"
#include "lev_convert.h"
#include "leviathan.h"

/* Nothing to prepare. */
int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  return 0;
}

/* The input is up to four files separated by FUZZ_FILE_SEP: config.json, the safetensors file,
 * tokenizer_config.json, model.safetensors.index.json. With an index the safetensors file is written as the shard
 * model-00001-of-00001.safetensors, else as model.safetensors. What imports is written with the converter's writer
 * and must load again. */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  const uint8_t *part[4];
  size_t len[4];
  size_t n = fuzz_split (data, size, part, len, 4);
  static const char *const names[4] = { "config.json", "model.safetensors", "tokenizer_config.json",
                                        "model.safetensors.index.json" };
  for (size_t i = 0; i < n; i++) {
    const char *name = names[i];
    if (i == 1 && n == 4)
      name = "model-00001-of-00001.safetensors";
    if (i >= 2 && len[i] == 0)
      continue;
    g_free (fuzz_write (name, part[i], len[i]));
  }
  GError *error = NULL;
  LevConvModel *m = lev_import_hf_dir (fuzz_dir (), &error);
  if (m == NULL) {
    FUZZ_CHECK (error != NULL && error->message[0] != '\0', "refused without a message");
    g_error_free (error);
  } else {
    FUZZ_CHECK (lev_conv_model_validate (m, &error), "imported but invalid: %s", error->message);
    gchar *out = g_build_filename (fuzz_dir (), "out.leviathan", NULL);
    gboolean ok = lev_write_model (m, out, LEV_OUT_AUTO, FALSE, &error);
    if (ok) {
      LevModel *lm = lev_model_load (out, &error);
      FUZZ_CHECK (lm != NULL, "the writer's file does not load: %s", error->message);
      lev_model_free (lm);
    } else {
      g_clear_error (&error);
    }
    g_free (out);
    lev_conv_model_free (m);
  }
  fuzz_clear_dir (fuzz_dir ());
  return 0;
}
