/* lev_hf_hub.c: Hugging Face hub downloads over HTTPS with libsoup 3 into the hub's own cache layout, as
 * huggingface_hub's hf_hub_download fills it: a HEAD on {endpoint}/{repo}/resolve/{revision}/{file} gives the commit
 * (X-Repo-Commit), the blob's id (X-Linked-Etag for LFS files: their sha256; else ETag: the git blob sha1) and size
 * (X-Linked-Size or Content-Length) and, for LFS files, a redirect to the CDN that is fetched without the token; the
 * bytes go to blobs/{etag}.incomplete (resumed with a Range request), are checked against the etag and size, and
 * become blobs/{etag}, with snapshots/{commit}/{file} a relative symlink to it and refs/{revision} the commit. */
#include "lev_hf_hub.h"

#ifdef LEV_HAVE_SOUP
#include <libsoup/soup.h>
#endif
#include <json-glib/json-glib.h>
#include <glib/gstdio.h>
#include <gmodule.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define HF_DEFAULT_ENDPOINT "https://huggingface.co"
#define HF_MAX_RELATIVE_REDIRECTS 5
#define HF_CHUNK (1u << 20)

#ifdef LEV_HAVE_SOUP
/* One download session: the repository's cache folder, the endpoint, the token, the pinned commit. */
typedef struct HfFetch {
  const LevHfRef *ref;
  const LevSourceOptions *opt;
  gchar *spec;        /* "hf:ORG/NAME" for messages */
  gchar *repo_dir;    /* <cache>/models--ORG--NAME */
  gchar *locks_dir;   /* <cache>/.locks/models--ORG--NAME */
  gchar *endpoint;
  gchar *token;       /* NULL: anonymous */
  gboolean offline;
  gchar *commit;      /* the revision's commit, once known */
  SoupSession *session;
} HfFetch;

/* What a HEAD on a resolve URL said about one file. */
typedef struct HfMeta {
  gchar *commit;
  gchar *etag;        /* normalized: no W/ and no quotes */
  gint64 size;        /* -1 when not announced */
  gchar *location;    /* where to GET the bytes */
  gboolean cross_host;/* location is on another host (the CDN): no Authorization there */
} HfMeta;

static void
hf_meta_clear (HfMeta *m)
{
  g_free (m->commit);
  g_free (m->etag);
  g_free (m->location);
  memset (m, 0, sizeof *m);
}

/* libsoup 3, opened when a download is first needed rather than linked: libsoup 3 aborts a process that also holds
 * libsoup 2, and the tools, Lev-1.0 and the GStreamer plugin (whose hosts may use libsoup 2, e.g. through
 * souphttpsrc or WebKit) must not bring it in merely by being loaded. GStreamer's soup plugin does the same. */
#define SOUP3_SONAME "libsoup-3.0.so.0"
static struct {
  SoupSession *(*session_new_with_options) (const char *first_property_name, ...);
  void (*session_remove_feature_by_type) (SoupSession *session, GType feature_type);
  GType (*content_decoder_get_type) (void);
  SoupMessage *(*message_new) (const char *method, const char *uri_string);
  SoupMessageHeaders *(*message_get_request_headers) (SoupMessage *msg);
  SoupMessageHeaders *(*message_get_response_headers) (SoupMessage *msg);
  void (*message_headers_replace) (SoupMessageHeaders *hdrs, const char *name, const char *value);
  const char *(*message_headers_get_one) (SoupMessageHeaders *hdrs, const char *name);
  void (*message_add_flags) (SoupMessage *msg, SoupMessageFlags flags);
  GBytes *(*session_send_and_read) (SoupSession *session, SoupMessage *msg, GCancellable *cancellable,
                                    GError **error);
  GInputStream *(*session_send) (SoupSession *session, SoupMessage *msg, GCancellable *cancellable,
                                 GError **error);
  guint (*message_get_status) (SoupMessage *msg);
  GUri *(*message_get_uri) (SoupMessage *msg);
  const char *(*message_get_reason_phrase) (SoupMessage *msg);
} soup;

/* Opens libsoup 3 and fills the table (once, through g_once); returns why it cannot (kept for later calls), else
 * NULL. */
static gpointer
soup_load_once (gpointer unused)
{
  GModule *self = g_module_open (NULL, G_MODULE_BIND_LAZY);
  gpointer sym = NULL;
  gboolean soup2 = self && g_module_symbol (self, "soup_uri_new", &sym);   /* a libsoup 2 function */
  if (self)
    g_module_close (self);
  if (soup2)
    return g_strdup ("this process holds libsoup 2, and libsoup 3 (for hf: downloads) cannot share a process with "
                     "it; download the model with levrun -m hf:... first (the cache is then used)");
  GModule *m = g_module_open (SOUP3_SONAME, G_MODULE_BIND_LAZY | G_MODULE_BIND_LOCAL);
  if (!m)
    return g_strdup_printf ("hf: downloads need libsoup 3 (%s): %s", SOUP3_SONAME, g_module_error ());
  static const struct { const char *name; gsize offset; } syms[] = {
#define SOUP_SYM(field) { "soup_" #field, G_STRUCT_OFFSET (__typeof__ (soup), field) }
    SOUP_SYM (session_new_with_options), SOUP_SYM (session_remove_feature_by_type),
    SOUP_SYM (content_decoder_get_type), SOUP_SYM (message_new), SOUP_SYM (message_get_request_headers),
    SOUP_SYM (message_get_response_headers), SOUP_SYM (message_headers_replace),
    SOUP_SYM (message_headers_get_one), SOUP_SYM (message_add_flags), SOUP_SYM (session_send_and_read),
    SOUP_SYM (session_send), SOUP_SYM (message_get_status), SOUP_SYM (message_get_uri),
    SOUP_SYM (message_get_reason_phrase),
#undef SOUP_SYM
  };
  for (guint i = 0; i < G_N_ELEMENTS (syms); i++) {
    gpointer p = NULL;
    if (!g_module_symbol (m, syms[i].name, &p) || !p) {
      g_module_close (m);
      return g_strdup_printf ("%s lacks %s", SOUP3_SONAME, syms[i].name);
    }
    memcpy ((char *) &soup + syms[i].offset, &p, sizeof p);
  }
  g_module_make_resident (m);
  return NULL;
}

/* Makes the libsoup 3 table usable; FALSE with error set when it cannot be. */
static gboolean
soup_load (const char *spec, GError **error)
{
  static GOnce once = G_ONCE_INIT;
  const gchar *why = g_once (&once, soup_load_once, NULL);
  if (why)
    g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_NETWORK, "%s: %s", spec, why);
  return why == NULL;
}

/* TRUE for the value of an environment variable that huggingface_hub reads as true. */
static gboolean
env_true (const char *name)
{
  const char *v = g_getenv (name);
  return v && (g_ascii_strcasecmp (v, "1") == 0 || g_ascii_strcasecmp (v, "on") == 0
               || g_ascii_strcasecmp (v, "yes") == 0 || g_ascii_strcasecmp (v, "true") == 0);
}

/* TRUE when s is n lower-case hexadecimal digits. */
static gboolean
is_hex (const char *s, gsize n)
{
  if (!s || strlen (s) != n)
    return FALSE;
  for (gsize i = 0; i < n; i++)
    if (!g_ascii_isxdigit (s[i]) || g_ascii_isupper (s[i]))
      return FALSE;
  return TRUE;
}
#endif

/* TRUE for a repository name part: letters, digits, '-', '_', '.', not starting with '.' or '-'. */
static gboolean
valid_name_part (const char *s, gsize n)
{
  if (n == 0 || n > 96 || s[0] == '.' || s[0] == '-')
    return FALSE;
  for (gsize i = 0; i < n; i++)
    if (!g_ascii_isalnum (s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
      return FALSE;
  for (gsize i = 0; i + 1 < n; i++)
    if (s[i] == '.' && s[i + 1] == '.')
      return FALSE;
  return TRUE;
}

/* TRUE for a file name inside a repository: relative, no "..", "." or empty components, no backslash. */
static gboolean
valid_repo_path (const char *p)
{
  if (!p || !p[0] || p[0] == '/' || strchr (p, '\\'))
    return FALSE;
  gchar **parts = g_strsplit (p, "/", -1);
  gboolean ok = TRUE;
  for (guint i = 0; parts[i]; i++)
    if (!parts[i][0] || strcmp (parts[i], ".") == 0 || strcmp (parts[i], "..") == 0)
      ok = FALSE;
  g_strfreev (parts);
  return ok;
}

/* Parses spec (with its "hf:" prefix) into ref; FALSE with error set naming what is malformed. */
gboolean
lev_hf_ref_parse (const char *spec, LevHfRef *ref, GError **error)
{
  memset (ref, 0, sizeof *ref);
  const char *s = g_str_has_prefix (spec, "hf:") ? spec + 3 : spec;
  gsize n = strcspn (s, "@:");
  const char *slash = memchr (s, '/', n);
  gboolean ok = slash ? valid_name_part (s, (gsize) (slash - s)) && valid_name_part (slash + 1, n - (slash - s) - 1)
                      : valid_name_part (s, n);
  const char *rest = s + n;
  gchar *revision = NULL, *file = NULL;
  if (ok && *rest == '@') {
    gsize m = strcspn (rest + 1, ":");
    revision = g_strndup (rest + 1, m);
    rest += 1 + m;
    ok = m > 0 && valid_repo_path (revision);
  }
  if (ok && *rest == ':') {
    file = g_strdup (rest + 1);
    ok = valid_repo_path (file);
  } else if (ok && *rest) {
    ok = FALSE;
  }
  if (!ok) {
    g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_ARGUMENT,
                 "%s: not a Hugging Face model name (expected hf:ORG/NAME, hf:ORG/NAME@REVISION or "
                 "hf:ORG/NAME[@REVISION]:FILE)", spec);
    g_free (revision);
    g_free (file);
    return FALSE;
  }
  ref->repo = g_strndup (s, n);
  ref->revision = revision ? revision : g_strdup ("main");
  ref->file = file;
  return TRUE;
}

/* Frees what ref holds (not ref itself). */
void
lev_hf_ref_clear (LevHfRef *ref)
{
  g_free (ref->repo);
  g_free (ref->revision);
  g_free (ref->file);
  memset (ref, 0, sizeof *ref);
}

/* Returns $HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface. */
static gchar *
hf_home (void)
{
  const char *home = g_getenv ("HF_HOME");
  if (home && home[0])
    return g_strdup (home);
  return g_build_filename (g_get_user_cache_dir (), "huggingface", NULL);
}

/* Returns the hub cache directory ($HF_HUB_CACHE, $HF_HOME/hub, $XDG_CACHE_HOME/huggingface/hub or
 * ~/.cache/huggingface/hub). */
gchar *
lev_hf_cache_dir (void)
{
  const char *c = g_getenv ("HF_HUB_CACHE");
  if (c && c[0])
    return g_strdup (c);
  gchar *home = hf_home (), *dir = g_build_filename (home, "hub", NULL);
  g_free (home);
  return dir;
}

#ifdef LEV_HAVE_SOUP
/* Returns the token to send: $HF_TOKEN, else the file $HF_TOKEN_PATH or $HF_HOME/token; NULL for none. */
static gchar *
hf_token (void)
{
  const char *t = g_getenv ("HF_TOKEN");
  if (t && t[0])
    return g_strstrip (g_strdup (t));
  const char *tp = g_getenv ("HF_TOKEN_PATH");
  gchar *home = hf_home ();
  gchar *path = tp && tp[0] ? g_strdup (tp) : g_build_filename (home, "token", NULL), *contents = NULL;
  g_free (home);
  if (g_file_get_contents (path, &contents, NULL, NULL)) {
    g_strstrip (contents);
    if (!contents[0])
      g_clear_pointer (&contents, g_free);
  }
  g_free (path);
  return contents;
}

/* Takes an exclusive flock on path (created); returns the descriptor (close it to release) or -1 with error set. */
static int
lock_file (const char *path, HfFetch *f, const char *what, GError **error)
{
  gchar *dir = g_path_get_dirname (path);
  g_mkdir_with_parents (dir, 0755);
  g_free (dir);
  int fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    int e = errno;
    g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_IO, "cannot create the lock file %s: %s", path,
                 g_strerror (e));
    return -1;
  }
  if (flock (fd, LOCK_EX | LOCK_NB) != 0) {
    if (f->opt && f->opt->progress)
      f->opt->progress ("wait", what, 0, 0, f->opt->progress_data);
    while (flock (fd, LOCK_EX) != 0 && errno == EINTR)
      ;
  }
  return fd;
}

/* Writes contents to path atomically, creating its folder. */
static gboolean
write_small_file (const char *path, const char *contents, GError **error)
{
  gchar *dir = g_path_get_dirname (path);
  g_mkdir_with_parents (dir, 0755);
  g_free (dir);
  GError *e = NULL;
  if (!g_file_set_contents (path, contents, -1, &e)) {
    g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_IO, "%s", e->message);
    g_error_free (e);
    return FALSE;
  }
  return TRUE;
}

/* The resolve URL of file at revision (revision and file percent-encoded, '/' kept in the file). */
static gchar *
resolve_url (HfFetch *f, const char *revision, const char *file)
{
  gchar *rev = g_uri_escape_string (revision, NULL, FALSE);
  gchar *fn = g_uri_escape_string (file, "/", FALSE);
  gchar *url = g_strdup_printf ("%s/%s/resolve/%s/%s", f->endpoint, f->ref->repo, rev, fn);
  g_free (rev);
  g_free (fn);
  return url;
}

/* Sets error from an HTTP status of the hub for file, with the hub's X-Error-Code / X-Error-Message. */
static void
http_error (HfFetch *f, SoupMessage *msg, const char *file, const char *revision, GError **error)
{
  guint status = soup.message_get_status (msg);
  SoupMessageHeaders *h = soup.message_get_response_headers (msg);
  const char *code = soup.message_headers_get_one (h, "X-Error-Code");
  const char *hub_msg = soup.message_headers_get_one (h, "X-Error-Message");
  gchar *said = hub_msg ? g_strdup_printf (" (the hub says: %s)", hub_msg) : g_strdup ("");
  if (status == 401 || status == 403) {
    g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_AUTH,
                 "%s: the hub refused access to %s (HTTP %u%s%s)%s: %s", f->spec, file, status,
                 code ? ", " : "", code ? code : "", said,
                 f->token ? "the token in HF_TOKEN may not read this repository (for a gated model, accept its "
                            "conditions on its page with the account of the token), or the repository does not exist"
                          : "the repository is private or gated, or does not exist; set HF_TOKEN to an access token "
                            "of an account that may read it");
  } else if (status == 404) {
    if (code && strcmp (code, "RepoNotFound") == 0)
      g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_NOT_FOUND,
                   "%s: repository %s not found on %s (HTTP 404)%s", f->spec, f->ref->repo, f->endpoint, said);
    else if (code && strcmp (code, "RevisionNotFound") == 0)
      g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_NOT_FOUND,
                   "%s: revision %s not found in %s (HTTP 404)%s", f->spec, revision, f->ref->repo, said);
    else
      g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_NOT_FOUND,
                   "%s: %s not found in %s at revision %s (HTTP 404)%s", f->spec, file, f->ref->repo, revision,
                   said);
  } else {
    g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_HTTP, "%s: the hub answered HTTP %u %s for %s%s",
                 f->spec, status, soup.message_get_reason_phrase (msg) ? soup.message_get_reason_phrase (msg) : "",
                 file, said);
  }
  g_free (said);
}

/* A new message for url with the hub's headers (token unless no_auth, identity encoding). */
static SoupMessage *
new_message (HfFetch *f, const char *method, const char *url, gboolean no_auth, GError **error)
{
  SoupMessage *msg = soup.message_new (method, url);
  if (!msg) {
    g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_ARGUMENT, "%s: %s is not a valid URL (HF_ENDPOINT?)",
                 f->spec, url);
    return NULL;
  }
  SoupMessageHeaders *h = soup.message_get_request_headers (msg);
  soup.message_headers_replace (h, "Accept-Encoding", "identity");
  if (f->token && !no_auth) {
    gchar *bearer = g_strdup_printf ("Bearer %s", f->token);
    soup.message_headers_replace (h, "Authorization", bearer);
    g_free (bearer);
  }
  return msg;
}

/* HEADs file at revision, following redirects on the same host (a renamed repository) but not to the CDN.
 * Returns 1 with meta filled, 0 when the file does not exist (EntryNotFound, only when optional), -1 with error
 * set; *transport is set TRUE when the hub could not be reached at all. */
static int
head_file (HfFetch *f, const char *revision, const char *file, gboolean optional, HfMeta *meta, gboolean *transport,
           GError **error)
{
  gchar *url = resolve_url (f, revision, file);
  *transport = FALSE;
  for (int hop = 0; hop <= HF_MAX_RELATIVE_REDIRECTS; hop++) {
    SoupMessage *msg = new_message (f, "HEAD", url, FALSE, error);
    if (!msg)
      break;
    soup.message_add_flags (msg, SOUP_MESSAGE_NO_REDIRECT);
    GError *e = NULL;
    GBytes *body = soup.session_send_and_read (f->session, msg, f->opt ? f->opt->cancellable : NULL, &e);
    if (body)
      g_bytes_unref (body);
    if (e) {
      *transport = !g_error_matches (e, G_IO_ERROR, G_IO_ERROR_CANCELLED);
      g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_NETWORK, "%s: cannot reach %s: %s", f->spec,
                   f->endpoint, e->message);
      g_error_free (e);
      g_object_unref (msg);
      break;
    }
    guint status = soup.message_get_status (msg);
    SoupMessageHeaders *h = soup.message_get_response_headers (msg);
    const char *loc = soup.message_headers_get_one (h, "Location");
    GUri *base = soup.message_get_uri (msg);
    if (status >= 300 && status <= 399 && loc) {
      GUri *target = g_uri_parse_relative (base, loc, G_URI_FLAGS_NONE, NULL);
      gboolean relative = g_uri_peek_scheme (loc) == NULL && !g_str_has_prefix (loc, "//");
      if (target && relative && !soup.message_headers_get_one (h, "X-Linked-Etag")) {
        /* a relative redirect (a renamed repository): HEAD there, with the token */
        g_free (url);
        url = g_uri_to_string (target);
        g_uri_unref (target);
        g_object_unref (msg);
        continue;
      }
      if (!target) {
        g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_HTTP, "%s: the hub redirected %s to a malformed "
                     "URL", f->spec, file);
        g_object_unref (msg);
        break;
      }
      meta->location = g_uri_to_string (target);
      meta->cross_host = g_strcmp0 (g_uri_get_host (target), g_uri_get_host (base)) != 0
                         || g_uri_get_port (target) != g_uri_get_port (base);
      g_uri_unref (target);
    } else if (status >= 200 && status <= 299) {
      meta->location = g_strdup (url);
    } else {
      const char *code = soup.message_headers_get_one (h, "X-Error-Code");
      if (status == 404 && optional && (!code || strcmp (code, "EntryNotFound") == 0)) {
        g_object_unref (msg);
        g_free (url);
        return 0;
      }
      http_error (f, msg, file, revision, error);
      g_object_unref (msg);
      break;
    }
    const char *commit = soup.message_headers_get_one (h, "X-Repo-Commit");
    const char *etag = soup.message_headers_get_one (h, "X-Linked-Etag");
    if (!etag)
      etag = soup.message_headers_get_one (h, "ETag");
    const char *size = soup.message_headers_get_one (h, "X-Linked-Size");
    if (!size)
      size = soup.message_headers_get_one (h, "Content-Length");
    if (etag && g_str_has_prefix (etag, "W/"))
      etag += 2;
    gchar *et = etag ? g_strdup (etag) : NULL;
    if (et) {
      gsize l = strlen (et);
      if (l >= 2 && et[0] == '"' && et[l - 1] == '"') {
        memmove (et, et + 1, l - 2);
        et[l - 2] = '\0';
      }
    }
    if (!commit || !is_hex (commit, 40) || !et || !et[0] || strchr (et, '/') || strstr (et, "..")) {
      g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_HTTP, "%s: the answer for %s has no %s: %s does not "
                   "answer like the Hugging Face hub", f->spec, file,
                   !commit || !is_hex (commit, 40) ? "commit (X-Repo-Commit)" : "valid ETag", f->endpoint);
      g_free (et);
      g_object_unref (msg);
      break;
    }
    meta->commit = g_strdup (commit);
    meta->etag = et;
    meta->size = -1;
    if (size) {
      gchar *end = NULL;
      guint64 v = g_ascii_strtoull (size, &end, 10);
      if (end != size && *end == '\0' && v < G_MAXINT64)
        meta->size = (gint64) v;
    }
    g_object_unref (msg);
    g_free (url);
    return 1;
  }
  if (error && !*error)
    g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_HTTP, "%s: more than %d redirects for %s", f->spec,
                 HF_MAX_RELATIVE_REDIRECTS, file);
  g_free (url);
  hf_meta_clear (meta);
  return -1;
}

/* Checks path against the etag: sha256 of the bytes for a 64-digit one (LFS), git's blob sha1 for a 40-digit one;
 * another etag is not a content hash and only the size is checked. */
static gboolean
verify_blob (HfFetch *f, const char *path, const char *file, const char *etag, gint64 size, GError **error)
{
  GChecksumType type = is_hex (etag, 64) ? G_CHECKSUM_SHA256 : is_hex (etag, 40) ? G_CHECKSUM_SHA1 : (GChecksumType) -1;
  GStatBuf st;
  if (g_stat (path, &st) != 0 || (size >= 0 && st.st_size != size)) {
    g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_CHECKSUM,
                 "%s: %s has %" G_GINT64_FORMAT " bytes but the hub announced %" G_GINT64_FORMAT "; the download "
                 "was removed", f->spec, file, (gint64) st.st_size, size);
    return FALSE;
  }
  if (type == (GChecksumType) -1)
    return TRUE;
  FILE *in = fopen (path, "rb");
  if (!in) {
    g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_IO, "cannot read %s: %s", path, g_strerror (errno));
    return FALSE;
  }
  GChecksum *ck = g_checksum_new (type);
  if (type == G_CHECKSUM_SHA1) {
    gchar *hdr = g_strdup_printf ("blob %" G_GINT64_FORMAT, (gint64) st.st_size);
    g_checksum_update (ck, (const guchar *) hdr, (gssize) strlen (hdr) + 1);   /* with its NUL */
    g_free (hdr);
  }
  guchar *buf = g_malloc (HF_CHUNK);
  size_t n;
  guint64 done = 0;
  while ((n = fread (buf, 1, HF_CHUNK, in)) > 0) {
    g_checksum_update (ck, buf, (gssize) n);
    done += n;
    if (f->opt && f->opt->progress && st.st_size > (64 << 20)
        && (done % (32u << 20) < n || done == (guint64) st.st_size))
      f->opt->progress ("verify", file, done, (guint64) st.st_size, f->opt->progress_data);
  }
  gboolean read_ok = !ferror (in);
  fclose (in);
  g_free (buf);
  gboolean ok = read_ok && strcmp (g_checksum_get_string (ck), etag) == 0;
  if (!read_ok)
    g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_IO, "%s: cannot read %s back from %s", f->spec, file,
                 path);
  else if (!ok)
    g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_CHECKSUM,
                 "%s: %s is corrupt: its %s is %s but the hub announced %s; the download was removed", f->spec, file,
                 type == G_CHECKSUM_SHA256 ? "sha256" : "git blob sha1", g_checksum_get_string (ck), etag);
  g_checksum_free (ck);
  return ok;
}

/* GETs meta->location into blobs/<etag>.incomplete, resuming what is there, then checks it and renames it to
 * blobs/<etag>. The .incomplete file stays after a broken transfer (the next run resumes it) and goes after a
 * checksum mismatch. */
static gboolean
download_blob (HfFetch *f, const char *file, const HfMeta *meta, const char *blob, GError **error)
{
  gchar *part = g_strconcat (blob, ".incomplete", NULL);
  gboolean ok = FALSE;
  GInputStream *in = NULL;
  SoupMessage *msg = NULL;
  guchar *buf = NULL;
  int fd = open (part, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_IO, "cannot write %s: %s", part, g_strerror (errno));
    goto out;
  }
  struct stat st;
  gint64 have = fstat (fd, &st) == 0 ? (gint64) st.st_size : 0;
  if (meta->size >= 0 && have > meta->size)
    have = 0;
  for (int attempt = 0; attempt < 2; attempt++) {
    if (have == 0 && ftruncate (fd, 0) != 0)
      goto io_error;
    if (meta->size >= 0 && have == meta->size)
      break;                                     /* complete from an earlier run: only the check is left */
    msg = new_message (f, "GET", meta->location, meta->cross_host, error);
    if (!msg)
      goto out;
    if (have > 0) {
      gchar *range = g_strdup_printf ("bytes=%" G_GINT64_FORMAT "-", have);
      soup.message_headers_replace (soup.message_get_request_headers (msg), "Range", range);
      g_free (range);
    }
    GError *e = NULL;
    in = soup.session_send (f->session, msg, f->opt ? f->opt->cancellable : NULL, &e);
    if (!in) {
      g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_NETWORK, "%s: cannot download %s: %s", f->spec, file,
                   e->message);
      g_error_free (e);
      goto out;
    }
    guint status = soup.message_get_status (msg);
    if (status == 416 && have > 0) {             /* the range is past the end: start again */
      have = 0;
      g_clear_object (&in);
      g_clear_object (&msg);
      continue;
    }
    if (status == 200) {
      have = 0;
      if (ftruncate (fd, 0) != 0)
        goto io_error;
    } else if (status != 206 || have == 0) {
      http_error (f, msg, file, f->commit ? f->commit : f->ref->revision, error);
      goto out;
    }
    break;
  }
  if (lseek (fd, have, SEEK_SET) < 0)
    goto io_error;
  buf = g_malloc (HF_CHUNK);
  guint64 total = meta->size >= 0 ? (guint64) meta->size : 0, done = (guint64) have;
  gint64 last = 0;
  while (in) {
    GError *e = NULL;
    gssize n = g_input_stream_read (in, buf, HF_CHUNK, f->opt ? f->opt->cancellable : NULL, &e);
    if (n < 0) {
      g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_NETWORK,
                   "%s: the download of %s broke off after %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " bytes "
                   "(%s); run again to resume it", f->spec, file, done, total, e->message);
      g_error_free (e);
      goto out;
    }
    if (n == 0)
      break;
    for (gssize off = 0; off < n;) {
      ssize_t w = write (fd, buf + off, (size_t) (n - off));
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0)
        goto io_error;
      off += w;
    }
    done += (guint64) n;
    gint64 now = g_get_monotonic_time ();
    if (f->opt && f->opt->progress && now - last > 200000) {
      f->opt->progress ("download", file, done, total, f->opt->progress_data);
      last = now;
    }
  }
  if (total > 0 && done < total) {
    g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_NETWORK,
                 "%s: the download of %s broke off after %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " bytes; run "
                 "again to resume it", f->spec, file, done, total);
    goto out;
  }
  if (f->opt && f->opt->progress)
    f->opt->progress ("download", file, done, done, f->opt->progress_data);
  if (fsync (fd) != 0 || close (fd) != 0) {
    fd = -1;
    goto io_error;
  }
  fd = -1;
  if (!verify_blob (f, part, file, meta->etag, meta->size, error)) {
    g_unlink (part);
    goto out;
  }
  if (g_rename (part, blob) != 0)
    goto io_error;
  ok = TRUE;
  goto out;
io_error:
  g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_IO, "cannot write %s: %s", part, g_strerror (errno));
out:
  if (fd >= 0)
    close (fd);
  if (in)
    g_object_unref (in);
  if (msg)
    g_object_unref (msg);
  g_free (buf);
  g_free (part);
  return ok;
}

/* Makes snapshots/<commit>/<file> a relative symlink to blobs/<etag>. */
static gboolean
link_snapshot (HfFetch *f, const char *commit, const char *file, const char *etag, GError **error)
{
  gchar *link = g_build_filename (f->repo_dir, "snapshots", commit, file, NULL);
  gchar *dir = g_path_get_dirname (link);
  g_mkdir_with_parents (dir, 0755);
  GString *target = g_string_new ("../../");
  for (const char *p = file; (p = strchr (p, '/')) != NULL; p++)
    g_string_append (target, "../");
  g_string_append_printf (target, "blobs/%s", etag);
  g_unlink (link);
  gboolean ok = symlink (target->str, link) == 0;
  if (!ok)
    g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_IO, "cannot create the link %s: %s", link,
                 g_strerror (errno));
  g_string_free (target, TRUE);
  g_free (dir);
  g_free (link);
  return ok;
}

/* The commit the cache knows for revision: revision itself when it is a commit hash, else refs/<revision>. */
static gchar *
cached_commit (HfFetch *f, const char *revision)
{
  if (is_hex (revision, 40))
    return g_strdup (revision);
  gchar *ref = g_build_filename (f->repo_dir, "refs", revision, NULL), *commit = NULL;
  if (g_file_get_contents (ref, &commit, NULL, NULL)) {
    g_strstrip (commit);
    if (!is_hex (commit, 40))
      g_clear_pointer (&commit, g_free);
  }
  g_free (ref);
  return commit;
}

/* Fetches one file of the repository into the cache. Returns 1 (present in snapshots/<commit>/), 0 (optional and
 * absent) or -1 with error set. Sets f->commit from the first answer; later files are asked for at that commit. */
static int
fetch_file (HfFetch *f, const char *file, gboolean optional, GError **error)
{
  const char *revision = f->commit ? f->commit : f->ref->revision;
  if (!f->commit && !f->offline)
    f->commit = is_hex (revision, 40) ? g_strdup (revision) : NULL;
  /* a commit hash and a file already in its snapshot: nothing to ask */
  gchar *known = f->commit ? g_strdup (f->commit) : (f->offline ? cached_commit (f, revision) : NULL);
  if (known) {
    gchar *snap = g_build_filename (f->repo_dir, "snapshots", known, file, NULL);
    gchar *no = g_build_filename (f->repo_dir, ".no_exist", known, file, NULL);
    int r = g_file_test (snap, G_FILE_TEST_EXISTS) ? 1 : g_file_test (no, G_FILE_TEST_EXISTS) && optional ? 0 : -1;
    g_free (snap);
    g_free (no);
    if (r >= 0 || f->offline) {
      if (!f->commit)
        f->commit = g_strdup (known);
      g_free (known);
      if (r < 0 && optional)
        return 0;
      if (r < 0)
        g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_OFFLINE,
                     "%s: %s is not in the Hugging Face cache (%s) and HF_HUB_OFFLINE is set", f->spec, file,
                     f->repo_dir);
      return r;
    }
    g_free (known);
  } else if (f->offline) {
    g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_OFFLINE,
                 "%s: revision %s is not in the Hugging Face cache (%s) and HF_HUB_OFFLINE is set", f->spec,
                 revision, f->repo_dir);
    return -1;
  }
  HfMeta meta = { 0 };
  gboolean transport = FALSE;
  int r = head_file (f, revision, file, optional, &meta, &transport, error);
  if (r < 0 && transport) {
    /* the hub cannot be reached: what the cache holds for this revision will do, as huggingface_hub does */
    gchar *commit = f->commit ? g_strdup (f->commit) : cached_commit (f, revision);
    gchar *snap = commit ? g_build_filename (f->repo_dir, "snapshots", commit, file, NULL) : NULL;
    if (snap && g_file_test (snap, G_FILE_TEST_EXISTS)) {
      g_clear_error (error);
      if (!f->commit)
        f->commit = g_strdup (commit);
      r = 1;
    } else if (commit && optional) {
      g_clear_error (error);
      if (!f->commit)
        f->commit = g_strdup (commit);
      r = 0;
    }
    g_free (snap);
    g_free (commit);
    return r;
  }
  if (r == 0) {
    if (f->commit) {
      gchar *no = g_build_filename (f->repo_dir, ".no_exist", f->commit, file, NULL);
      write_small_file (no, "", NULL);
      g_free (no);
    }
    return 0;
  }
  if (r < 0)
    return -1;
  if (!f->commit)
    f->commit = g_strdup (meta.commit);
  if (strcmp (f->ref->revision, meta.commit) != 0 && strcmp (revision, f->ref->revision) == 0) {
    gchar *ref = g_build_filename (f->repo_dir, "refs", f->ref->revision, NULL);
    gboolean ok = write_small_file (ref, meta.commit, error);
    g_free (ref);
    if (!ok) {
      hf_meta_clear (&meta);
      return -1;
    }
  }
  gchar *blob = g_build_filename (f->repo_dir, "blobs", meta.etag, NULL);
  gchar *lock_path = g_strdup_printf ("%s/%s.lock", f->locks_dir, meta.etag);
  gchar *blobs_dir = g_path_get_dirname (blob);
  g_mkdir_with_parents (blobs_dir, 0755);
  g_free (blobs_dir);
  int lock = lock_file (lock_path, f, file, error);
  gboolean ok = lock >= 0
                && (g_file_test (blob, G_FILE_TEST_IS_REGULAR) || download_blob (f, file, &meta, blob, error));
  if (lock >= 0)
    close (lock);
  ok = ok && link_snapshot (f, f->commit, file, meta.etag, error);
  g_free (lock_path);
  g_free (blob);
  hf_meta_clear (&meta);
  return ok ? 1 : -1;
}

/* Reads the shard names of a model.safetensors.index.json (its weight_map's values, each once). */
static GPtrArray *
index_shards (HfFetch *f, const char *path, GError **error)
{
  JsonParser *parser = json_parser_new ();
  GPtrArray *shards = NULL;
  GError *e = NULL;
  if (!json_parser_load_from_file (parser, path, &e)) {
    g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_ARGUMENT, "%s: %s is not valid JSON: %s", f->spec,
                 "model.safetensors.index.json", e->message);
    g_error_free (e);
    g_object_unref (parser);
    return NULL;
  }
  JsonNode *root = json_parser_get_root (parser);
  JsonObject *o = root && JSON_NODE_HOLDS_OBJECT (root) ? json_node_get_object (root) : NULL;
  JsonNode *wm = o ? json_object_get_member (o, "weight_map") : NULL;
  if (wm && JSON_NODE_HOLDS_OBJECT (wm)) {
    shards = g_ptr_array_new_with_free_func (g_free);
    GHashTable *seen = g_hash_table_new (g_str_hash, g_str_equal);
    GList *members = json_object_get_members (json_node_get_object (wm));
    for (GList *l = members; l; l = l->next) {
      JsonNode *v = json_object_get_member (json_node_get_object (wm), l->data);
      const char *s = v && JSON_NODE_HOLDS_VALUE (v) ? json_node_get_string (v) : NULL;
      if (!s || !valid_repo_path (s)) {
        g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_ARGUMENT, "%s: model.safetensors.index.json maps "
                     "%s to an invalid file name", f->spec, (const char *) l->data);
        g_clear_pointer (&shards, g_ptr_array_unref);
        break;
      }
      if (!g_hash_table_contains (seen, s)) {
        g_hash_table_add (seen, (gpointer) s);
        g_ptr_array_add (shards, g_strdup (s));
      }
    }
    g_list_free (members);
    g_hash_table_unref (seen);
  } else {
    g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_ARGUMENT, "%s: model.safetensors.index.json has no "
                 "weight_map", f->spec);
  }
  if (shards)
    g_ptr_array_sort (shards, (GCompareFunc) g_strcmp0);
  g_object_unref (parser);
  return shards;
}

/* Fetches the files of a Transformers checkpoint: config.json, the safetensors weights (one file or the index and
 * its shards) and the tokenizer files there are. */
static gboolean
fetch_checkpoint (HfFetch *f, GError **error)
{
  GError *e = NULL;
  int r = fetch_file (f, "config.json", TRUE, &e);
  if (r == 0 && !e)
    g_set_error (&e, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_NOT_FOUND,
                 "%s: the repository has no config.json, so it is not a Transformers checkpoint; to use a file of "
                 "it (a .gguf), name it: %s:FILE", f->spec, f->spec);
  if (r <= 0) {
    g_propagate_error (error, e);
    return FALSE;
  }
  r = fetch_file (f, "model.safetensors.index.json", TRUE, error);
  if (r < 0)
    return FALSE;
  if (r == 1) {
    gchar *idx = g_build_filename (f->repo_dir, "snapshots", f->commit, "model.safetensors.index.json", NULL);
    GPtrArray *shards = index_shards (f, idx, error);
    g_free (idx);
    if (!shards)
      return FALSE;
    for (guint i = 0; i < shards->len; i++)
      if (fetch_file (f, g_ptr_array_index (shards, i), FALSE, error) < 0) {
        g_ptr_array_unref (shards);
        return FALSE;
      }
    g_ptr_array_unref (shards);
  } else {
    r = fetch_file (f, "model.safetensors", TRUE, error);
    if (r < 0)
      return FALSE;
    if (r == 0) {
      g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_NOT_FOUND,
                   "%s: the repository has neither model.safetensors nor model.safetensors.index.json (PyTorch .bin "
                   "checkpoints are not read; for a GGUF name the file: %s:FILE)", f->spec, f->spec);
      return FALSE;
    }
  }
  static const char *const optional[] = { "tokenizer.json", "tokenizer_config.json", "tokenizer.model",
                                          "special_tokens_map.json", "generation_config.json" };
  for (guint i = 0; i < G_N_ELEMENTS (optional); i++)
    if (fetch_file (f, optional[i], TRUE, error) < 0)
      return FALSE;
  return TRUE;
}

/* Fetches what ref names into the hub cache (reusing what is there; HF_HUB_OFFLINE=1: the cache only) and returns
 * the local path: the snapshot directory (config.json, weights, tokenizer files) or, with a file, that file. */
gchar *
lev_hf_fetch (const LevHfRef *ref, const LevSourceOptions *options, GError **error)
{
  HfFetch f = { 0 };
  f.ref = ref;
  f.opt = options;
  f.spec = g_strdup_printf ("hf:%s", ref->repo);
  gchar *cache = lev_hf_cache_dir ();
  gchar **parts = g_strsplit (ref->repo, "/", -1);
  gchar *joined = g_strjoinv ("--", parts);
  g_strfreev (parts);
  gchar *folder = g_strdup_printf ("models--%s", joined);
  g_free (joined);
  f.repo_dir = g_build_filename (cache, folder, NULL);
  f.locks_dir = g_build_filename (cache, ".locks", folder, NULL);
  g_free (folder);
  g_free (cache);
  const char *ep = g_getenv ("HF_ENDPOINT");
  f.endpoint = g_strdup (ep && ep[0] ? ep : HF_DEFAULT_ENDPOINT);
  for (gsize l = strlen (f.endpoint); l > 0 && f.endpoint[l - 1] == '/'; l--)
    f.endpoint[l - 1] = '\0';
  f.offline = env_true ("HF_HUB_OFFLINE");
  f.token = hf_token ();
  gboolean usable = f.offline || soup_load (f.spec, error);
  if (!f.offline && usable) {
    f.session = soup.session_new_with_options ("user-agent", "leviathan/" LEV_VERSION_STRING "; libsoup/3",
                                               "timeout", 60, NULL);
    soup.session_remove_feature_by_type (f.session, soup.content_decoder_get_type ());
  }
  gchar *result = NULL;
  gboolean ok = usable && (ref->file ? fetch_file (&f, ref->file, FALSE, error) == 1 : fetch_checkpoint (&f, error));
  if (ok)
    result = ref->file ? g_build_filename (f.repo_dir, "snapshots", f.commit, ref->file, NULL)
                       : g_build_filename (f.repo_dir, "snapshots", f.commit, NULL);
  if (f.session)
    g_object_unref (f.session);
  g_free (f.spec);
  g_free (f.repo_dir);
  g_free (f.locks_dir);
  g_free (f.endpoint);
  g_free (f.token);
  g_free (f.commit);
  return result;
}

#else
/* Without libsoup 3 at build time (a cross build without its -dev package for the target): hf: names are refused. */
gchar *
lev_hf_fetch (const LevHfRef *ref, const LevSourceOptions *options, GError **error)
{
  (void) options;
  g_set_error (error, LEV_SOURCE_ERROR, LEV_SOURCE_ERROR_NETWORK, "hf:%s: this build of Leviathan has no libsoup 3 "
               "(it was built without libsoup-3.0-dev): hf: names cannot be fetched; download the files and give "
               "their directory or file instead", ref->repo);
  return NULL;
}
#endif
