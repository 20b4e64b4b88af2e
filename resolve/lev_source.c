/* lev_source.c: a model source (.leviathan, GGUF, Hugging Face directory, hf:ORG/NAME) to the path of a .leviathan
 * file: anything but a .leviathan is converted once into $XDG_CACHE_HOME/leviathan/models/<key>.leviathan, the key a
 * sha256 of the source's content, the conversion options and the converter's revision. The conversion runs under an
 * flock on <key>.lock, so that two processes asking for the same model at once convert it once (the second waits
 * and maps the first one's file); the writer writes a temporary file and renames it when complete, and a temporary
 * file left by a process that died is removed by the next one that takes the lock. */
#include "lev_source.h"
#include "lev_hf_hub.h"
#include "lev_convert.h"

#include <glib/gstdio.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bump when a conversion of the same source with the same options would write a different file: every cached
 * model is then converted again. */
#define LEV_SOURCE_CONVERTER_REVISION 1
#define HASH_CHUNK (1u << 20)

G_DEFINE_QUARK (lev-source-error-quark, lev_source_error)

/* TRUE when path is a directory holding config.json (a Hugging Face checkpoint). */
static gboolean
is_hf_dir (const char *path)
{
  if (!g_file_test (path, G_FILE_TEST_IS_DIR))
    return FALSE;
  gchar *cfg = g_build_filename (path, "config.json", NULL);
  gboolean yes = g_file_test (cfg, G_FILE_TEST_IS_REGULAR);
  g_free (cfg);
  return yes;
}

/* Returns what kind of source spec names (never opens anything but a regular file's first bytes). */
LevSourceKind
lev_source_kind (const char *spec)
{
  if (!spec)
    return LEV_SOURCE_FILE;
  if (g_str_has_prefix (spec, "hf:"))
    return LEV_SOURCE_HF_HUB;
  GStatBuf st;
  if (g_stat (spec, &st) != 0)
    return LEV_SOURCE_FILE;
  if (S_ISDIR (st.st_mode))
    return is_hf_dir (spec) ? LEV_SOURCE_HF_DIR : LEV_SOURCE_FILE;
  if (!S_ISREG (st.st_mode))
    return LEV_SOURCE_FILE;      /* a FIFO or device: the engine refuses it without blocking */
  char magic[4] = { 0 };
  int fd = open (spec, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  gboolean gguf = fd >= 0 && read (fd, magic, 4) == 4 && memcmp (magic, "GGUF", 4) == 0;
  if (fd >= 0)
    close (fd);
  return gguf ? LEV_SOURCE_GGUF : LEV_SOURCE_FILE;
}

/* Returns the directory of converted models ($XDG_CACHE_HOME/leviathan/models, else ~/.cache/leviathan/models). */
gchar *
lev_source_cache_dir (void)
{
  const char *xdg = g_getenv ("XDG_CACHE_HOME");
  if (xdg && g_path_is_absolute (xdg))
    return g_build_filename (xdg, "leviathan", "models", NULL);
  return g_build_filename (g_get_home_dir (), ".cache", "leviathan", "models", NULL);
}

/* The files of a source whose bytes make its content: the file itself, or a checkpoint directory's files the
 * converter reads (*.json, *.safetensors, *.model), sorted by name. */
static GPtrArray *
source_files (const char *path, LevSourceKind kind, GError **error)
{
  GPtrArray *files = g_ptr_array_new_with_free_func (g_free);
  if (kind != LEV_SOURCE_HF_DIR) {
    g_ptr_array_add (files, g_strdup (path));
    return files;
  }
  GError *e = NULL;
  GDir *dir = g_dir_open (path, 0, &e);
  if (!dir) {
    g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_IO, "%s", e->message);
    g_error_free (e);
    g_ptr_array_unref (files);
    return NULL;
  }
  for (const char *name; (name = g_dir_read_name (dir)) != NULL;) {
    if (!g_str_has_suffix (name, ".json") && !g_str_has_suffix (name, ".safetensors")
        && !g_str_has_suffix (name, ".model"))
      continue;
    gchar *p = g_build_filename (path, name, NULL);
    if (g_file_test (p, G_FILE_TEST_IS_REGULAR))
      g_ptr_array_add (files, p);
    else
      g_free (p);
  }
  g_dir_close (dir);
  g_ptr_array_sort (files, (GCompareFunc) g_strcmp0);
  return files;
}

/* sha256 of a file's bytes in hex (reporting progress for large files); NULL with error set. */
static gchar *
hash_file (const char *path, const LevSourceOptions *opt, GError **error)
{
  FILE *in = fopen (path, "rb");
  if (!in) {
    g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_IO, "cannot read %s: %s", path, g_strerror (errno));
    return NULL;
  }
  GStatBuf st;
  guint64 total = g_stat (path, &st) == 0 ? (guint64) st.st_size : 0, done = 0;
  GChecksum *ck = g_checksum_new (G_CHECKSUM_SHA256);
  guchar *buf = g_malloc (HASH_CHUNK);
  size_t n;
  while ((n = fread (buf, 1, HASH_CHUNK, in)) > 0) {
    g_checksum_update (ck, buf, (gssize) n);
    done += n;
    /* large files only, every 32 MiB and at the end: a message per megabyte would flood a bus */
    if (opt->progress && total > (64u << 20) && (done % (32u << 20) < n || done == total))
      opt->progress ("hash", path, done, total, opt->progress_data);
  }
  gchar *hex = ferror (in) ? NULL : g_strdup (g_checksum_get_string (ck));
  if (!hex)
    g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_IO, "cannot read %s", path);
  fclose (in);
  g_free (buf);
  g_checksum_free (ck);
  return hex;
}

/* The sha256 of a source's content (each file's name and sha256). A file's identity (device, inode, size, times) is
 * remembered in $XDG_CACHE_HOME/leviathan/sources/<identity> with its content hash, so a source is read in full
 * once. */
static gchar *
content_hash (const char *path, LevSourceKind kind, const LevSourceOptions *opt, GError **error)
{
  GPtrArray *files = source_files (path, kind, error);
  if (!files)
    return NULL;
  if (files->len == 0) {
    g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_IO, "%s holds no model files", path);
    g_ptr_array_unref (files);
    return NULL;
  }
  GChecksum *id = g_checksum_new (G_CHECKSUM_SHA256);
  for (guint i = 0; i < files->len; i++) {
    const char *p = g_ptr_array_index (files, i);
    GStatBuf st;
    if (g_stat (p, &st) != 0) {
      g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_IO, "cannot read %s: %s", p, g_strerror (errno));
      g_checksum_free (id);
      g_ptr_array_unref (files);
      return NULL;
    }
    gchar *line = g_strdup_printf ("%s\n%ju %ju %jd %jd.%09ld %jd.%09ld\n", p, (uintmax_t) st.st_dev,
                                   (uintmax_t) st.st_ino, (intmax_t) st.st_size, (intmax_t) st.st_mtim.tv_sec,
                                   st.st_mtim.tv_nsec, (intmax_t) st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
    g_checksum_update (id, (const guchar *) line, -1);
    g_free (line);
  }
  gchar *cache = lev_source_cache_dir (), *top = g_path_get_dirname (cache);
  gchar *index = g_build_filename (top, "sources", g_checksum_get_string (id), NULL);
  g_checksum_free (id);
  g_free (top);
  g_free (cache);
  gchar *hash = NULL;
  if (g_file_get_contents (index, &hash, NULL, NULL)) {
    g_strstrip (hash);
    if (strlen (hash) != 64)
      g_clear_pointer (&hash, g_free);
  }
  if (!hash) {
    GChecksum *all = g_checksum_new (G_CHECKSUM_SHA256);
    for (guint i = 0; i < files->len; i++) {
      const char *p = g_ptr_array_index (files, i);
      gchar *h = hash_file (p, opt, error);
      if (!h) {
        g_checksum_free (all);
        g_ptr_array_unref (files);
        g_free (index);
        return NULL;
      }
      gchar *base = kind == LEV_SOURCE_HF_DIR ? g_path_get_basename (p) : g_strdup ("");
      gchar *line = g_strdup_printf ("%s %s\n", h, base);
      g_checksum_update (all, (const guchar *) line, -1);
      g_free (line);
      g_free (base);
      g_free (h);
    }
    hash = g_strdup (g_checksum_get_string (all));
    g_checksum_free (all);
    gchar *dir = g_path_get_dirname (index);
    if (g_mkdir_with_parents (dir, 0755) == 0)
      g_file_set_contents (index, hash, -1, NULL);   /* only a shortcut: a failure costs a re-read next time */
    g_free (dir);
  }
  g_free (index);
  g_ptr_array_unref (files);
  return hash;
}

/* Parses a --format name; "auto" (or NULL) gives LEV_OUT_AUTO with *is_auto set. */
static gboolean
parse_format (const char *s, LevOutFormat *out, gboolean *is_auto)
{
  static const struct { const char *name; LevOutFormat f; } fmts[] = {
    { "auto", LEV_OUT_AUTO }, { "f32", LEV_OUT_F32 }, { "f16", LEV_OUT_F16 }, { "bf16", LEV_OUT_BF16 },
    { "q8", LEV_OUT_Q8 }, { "t2", LEV_OUT_T2 }, { "t1", LEV_OUT_T1 }, { "b1", LEV_OUT_B1 }, { "q4", LEV_OUT_Q4 },
  };
  *is_auto = !s || g_ascii_strcasecmp (s, "auto") == 0;
  for (guint i = 0; i < G_N_ELEMENTS (fmts); i++)
    if (!s || g_ascii_strcasecmp (s, fmts[i].name) == 0) {
      *out = fmts[i].f;
      return TRUE;
    }
  return FALSE;
}

/* Returns whether name is a conversion format lev_source_resolve takes (auto, f32, f16, bf16, q8, q4, t2, t1, b1). */
gboolean
lev_source_format_valid (const char *name)
{
  LevOutFormat f;
  gboolean is_auto;
  return name && parse_format (name, &f, &is_auto);
}

/* Imports src, checks it and writes it to out as levconvert would (--format as given; "auto": t2 when the blocks'
 * matrices are ternary, which packs them without loss, else each tensor's own precision). */
static gboolean
convert_source (const char *src, LevSourceKind kind, const char *name, const char *format_name, const char *out,
                GError **error)
{
  LevConvModel *model = kind == LEV_SOURCE_HF_DIR ? lev_import_hf_dir (src, error) : lev_import_any (src, error);
  if (!model)
    return FALSE;
  gboolean ok = FALSE;
  if (!model->vocab) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_FORMAT, "%s has no tokenizer: convert it with "
                 "levconvert --tokenizer FILE and run the .leviathan file", src);
    goto out;
  }
  if (model->vocab->pieces->len > model->hp.vocab_size) {
    g_set_error (error, LEV_CONVERT_ERROR, LEV_CONVERT_ERROR_SHAPE,
                 "%s: the tokenizer has %u tokens but the model's vocabulary is %u", src, model->vocab->pieces->len,
                 model->hp.vocab_size);
    goto out;
  }
  if (!lev_conv_model_validate (model, error)) {
    g_prefix_error (error, "%s: ", src);
    goto out;
  }
  if (!model->name)
    model->name = g_strdup (name);
  LevOutFormat format = LEV_OUT_AUTO;
  gboolean is_auto = TRUE;
  parse_format (format_name, &format, &is_auto);
  if (is_auto)
    for (guint i = 0; i < model->tensors->len; i++)
      if (((LevConvTensor *) g_ptr_array_index (model->tensors, i))->type == LEV_SRC_TERNARY)
        format = LEV_OUT_T2;
  if (format == LEV_OUT_T2 || format == LEV_OUT_T1 || format == LEV_OUT_B1) {
    LevQuantOptions qopt = lev_quant_default_options (format);
    qopt.fit = LEV_FIT_LSQ;     /* levconvert's default */
    qopt.quiet = TRUE;
    if (!lev_quantize_model (model, &qopt, error))
      goto out;
  }
  ok = lev_write_model_full (model, out, format, LEV_OUT_AUTO, FALSE, error);
out:
  lev_conv_model_free (model);
  return ok;
}

/* Removes the writer's temporary files of out (out.XXXXXX) that a process which died while converting left. */
static void
remove_stale_temporaries (const char *out)
{
  gchar *dir = g_path_get_dirname (out), *base = g_path_get_basename (out);
  gchar *prefix = g_strconcat (base, ".", NULL);
  GDir *d = g_dir_open (dir, 0, NULL);
  for (const char *name; d && (name = g_dir_read_name (d)) != NULL;)
    if (g_str_has_prefix (name, prefix) && strlen (name) == strlen (prefix) + 6) {
      gchar *p = g_build_filename (dir, name, NULL);
      g_unlink (p);
      g_free (p);
    }
  if (d)
    g_dir_close (d);
  g_free (prefix);
  g_free (base);
  g_free (dir);
}

/* Converts local (a GGUF or a checkpoint directory) into the cache unless it is there; returns the cached path. */
static gchar *
convert_cached (const char *local, LevSourceKind kind, const char *name, const LevSourceOptions *opt,
                GError **error)
{
  gchar *hash = content_hash (local, kind, opt, error);
  if (!hash)
    return NULL;
  gchar *format = g_ascii_strdown (opt->format, -1);
  gchar *keytext = g_strdup_printf ("leviathan model cache\nconverter revision %d\nfile format %u\nformat %s\n"
                                    "content %s\n", LEV_SOURCE_CONVERTER_REVISION, LEV_VERSION, format, hash);
  gchar *key = g_compute_checksum_for_string (G_CHECKSUM_SHA256, keytext, -1);
  g_free (keytext);
  g_free (hash);
  gchar *dir = lev_source_cache_dir ();
  gchar *file = g_strconcat (key, ".leviathan", NULL), *lockname = g_strconcat (key, ".lock", NULL);
  gchar *out = g_build_filename (dir, file, NULL), *lock_path = g_build_filename (dir, lockname, NULL);
  g_free (file);
  g_free (lockname);
  g_free (key);
  int fd = -1;
  if (g_file_test (out, G_FILE_TEST_IS_REGULAR))
    goto done;
  if (g_mkdir_with_parents (dir, 0755) != 0 || (fd = open (lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) {
    g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_IO, "cannot create the model cache %s: %s", dir,
                 g_strerror (errno));
    g_clear_pointer (&out, g_free);
    goto done;
  }
  if (flock (fd, LOCK_EX | LOCK_NB) != 0) {
    if (opt->progress)
      opt->progress ("wait", local, 0, 0, opt->progress_data);
    while (flock (fd, LOCK_EX) != 0 && errno == EINTR)
      ;
  }
  if (g_file_test (out, G_FILE_TEST_IS_REGULAR))   /* another process converted it while this one waited */
    goto done;
  remove_stale_temporaries (out);
  if (opt->progress)
    opt->progress ("convert", local, 0, 1, opt->progress_data);
  GError *e = NULL;
  if (!convert_source (local, kind, name, format, out, &e)) {
    g_propagate_error (error, e);
    g_clear_pointer (&out, g_free);
    goto done;
  }
  if (opt->progress)
    opt->progress ("convert", local, 1, 1, opt->progress_data);
done:
  if (fd >= 0)
    close (fd);                /* releases the lock */
  g_free (format);
  g_free (lock_path);
  g_free (dir);
  return out;
}

/* Returns the path of a .leviathan file for spec: spec itself for LEV_SOURCE_FILE, else the cached conversion
 * (downloading hf: sources and converting once); NULL with error set naming the source and what is wrong. */
gchar *
lev_source_resolve (const char *spec, const LevSourceOptions *options, GError **error)
{
  LevSourceOptions copy = { 0 };
  if (options)
    copy = *options;
  if (!copy.format) {
    const char *env = g_getenv ("LEV_CONVERT_FORMAT");
    copy.format = env && env[0] ? env : "auto";
  }
  const LevSourceOptions *opt = &copy;
  LevOutFormat f;
  gboolean is_auto;
  if (!parse_format (opt->format, &f, &is_auto)) {
    g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_ARGUMENT, "unknown conversion format %s%s (auto, f32, "
                 "f16, bf16, q8, q4, t2, t1 or b1)", opt->format,
                 options && options->format ? "" : " in LEV_CONVERT_FORMAT");
    return NULL;
  }
  LevSourceKind kind = lev_source_kind (spec);
  if (kind == LEV_SOURCE_FILE)
    return g_strdup (spec);
  gchar *local = NULL, *name = NULL;
  if (kind == LEV_SOURCE_HF_HUB) {
    LevHfRef ref;
    if (!lev_hf_ref_parse (spec, &ref, error))
      return NULL;
    local = lev_hf_fetch (&ref, opt, error);
    if (local) {
      const char *slash = strrchr (ref.repo, '/');
      name = ref.file ? g_path_get_basename (ref.file) : g_strdup (slash ? slash + 1 : ref.repo);
      kind = ref.file ? lev_source_kind (local) : LEV_SOURCE_HF_DIR;
    }
    lev_hf_ref_clear (&ref);
    if (!local)
      return NULL;
    if (kind == LEV_SOURCE_FILE) {   /* hf:ORG/NAME:model.leviathan: the engine reads it (or says what it is) */
      g_free (name);
      return local;
    }
  } else {
    local = g_strdup (spec);
    name = g_path_get_basename (spec);
  }
  gchar *out = convert_cached (local, kind, name, opt, error);
  g_free (local);
  g_free (name);
  return out;
}

/* A LevSourceProgressFunc that prints to stderr when it is a terminal (user_data: the program's name, a string). */
void
lev_source_terminal_progress (const char *stage, const char *item, guint64 done, guint64 total, gpointer user_data)
{
  if (!isatty (STDERR_FILENO))
    return;
  const char *prog = user_data ? user_data : "leviathan";
  gboolean end = total > 0 && done >= total;
  if (strcmp (stage, "wait") == 0) {
    fprintf (stderr, "%s: waiting for another process that is fetching or converting %s\n", prog, item);
  } else if (strcmp (stage, "convert") == 0) {
    if (!end)
      fprintf (stderr, "%s: converting %s into the model cache (once; later runs map the result)...\n", prog, item);
    else
      fprintf (stderr, "%s: converted %s\n", prog, item);
  } else {
    const char *verb = strcmp (stage, "download") == 0 ? "downloading" : strcmp (stage, "verify") == 0 ? "checking"
                                                                                                        : "reading";
    if (total > 0)
      fprintf (stderr, "\r%s: %s %s: %3.0f%% (%.1f of %.1f MB)%s", prog, verb, item, 100.0 * done / total,
               done / 1e6, total / 1e6, end ? "\n" : "");
    else
      fprintf (stderr, "\r%s: %s %s: %.1f MB", prog, verb, item, done / 1e6);
  }
  fflush (stderr);
}
