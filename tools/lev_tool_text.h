/* lev_tool_text.h: reading a whole text file for the command-line tools (levrun -f, levppl -f). */
#pragma once

#include "leviathan.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* Reads a text file whole, NUL bytes included (its length in *len): a regular file only (a FIFO or device is refused
 * instead of blocking or reading for ever) of at most max_bytes; a larger one is refused with "PATH is larger than N
 * MiB" followed by too_large (e.g. ": score a part of it"). */
static inline gboolean
lev_tool_read_text_file (const char *path, guint32 max_bytes, const char *too_large, gchar **text, gsize *len,
                         GError **error)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  struct stat st;
  if (fd < 0) {
    g_set_error (error, LEV_ERROR, LEV_ERROR_IO, "cannot open %s: %s", path, g_strerror (errno));
    return FALSE;
  }
  gboolean ok = FALSE;
  if (fstat (fd, &st) != 0)
    g_set_error (error, LEV_ERROR, LEV_ERROR_IO, "cannot read %s: %s", path, g_strerror (errno));
  else if (!S_ISREG (st.st_mode))
    g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "%s is not a regular file (%s): give -f a text file", path,
                 S_ISDIR (st.st_mode) ? "a directory" : S_ISFIFO (st.st_mode) ? "a FIFO" : "a device or socket");
  else if ((guint64) st.st_size > max_bytes)
    g_set_error (error, LEV_ERROR, LEV_ERROR_ARGUMENT, "%s is larger than %u MiB%s", path, max_bytes >> 20, too_large);
  else {
    gsize n = (gsize) st.st_size, done = 0;
    *text = g_malloc (n + 1);
    ssize_t r = 1;
    while (done < n && (r = read (fd, *text + done, n - done)) != 0)
      if (r > 0)
        done += (gsize) r;
      else if (errno != EINTR)
        break;
    (*text)[done] = '\0';
    *len = done;
    ok = r >= 0;
    if (!ok) {
      g_set_error (error, LEV_ERROR, LEV_ERROR_IO, "cannot read %s: %s", path, g_strerror (errno));
      g_clear_pointer (text, g_free);
    }
  }
  close (fd);
  return ok;
}
