/* glib_tsan_shim.c: LD_PRELOAD library for ThreadSanitizer runs: tells TSan about GLib's futex-based GMutex, GRecMutex
 * and GCond and about GAsyncQueue hand-offs (GstHarness), which it cannot see, by wrapping the exported calls with
 * __tsan_acquire/__tsan_release. */
#include <dlfcn.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>

void __tsan_acquire (void *addr);
void __tsan_release (void *addr);

/* Returns the next definition of a GLib symbol (the real one); aborts when it is missing. */
static void *
real (const char *name)
{
  void *f = dlsym (RTLD_NEXT, name);
  if (f == NULL) {
    fprintf (stderr, "glib_tsan_shim: %s not found\n", name);
    abort ();
  }
  return f;
}

#define REAL(ret, name, ...)                                                                                           \
  static ret (*real_fn) (__VA_ARGS__);                                                                                 \
  if (real_fn == NULL)                                                                                                 \
    real_fn = (ret (*) (__VA_ARGS__)) real (name)

/* Locks a GMutex, then records the acquisition. */
void
g_mutex_lock (GMutex *mutex)
{
  REAL (void, "g_mutex_lock", GMutex *);
  real_fn (mutex);
  __tsan_acquire (mutex);
}

/* Records the release, then unlocks a GMutex. */
void
g_mutex_unlock (GMutex *mutex)
{
  REAL (void, "g_mutex_unlock", GMutex *);
  __tsan_release (mutex);
  real_fn (mutex);
}

/* Tries to lock a GMutex; records the acquisition when it succeeds. */
gboolean
g_mutex_trylock (GMutex *mutex)
{
  REAL (gboolean, "g_mutex_trylock", GMutex *);
  gboolean ok = real_fn (mutex);
  if (ok)
    __tsan_acquire (mutex);
  return ok;
}

/* Locks a GRecMutex, then records the acquisition. */
void
g_rec_mutex_lock (GRecMutex *mutex)
{
  REAL (void, "g_rec_mutex_lock", GRecMutex *);
  real_fn (mutex);
  __tsan_acquire (mutex);
}

/* Records the release, then unlocks a GRecMutex. */
void
g_rec_mutex_unlock (GRecMutex *mutex)
{
  REAL (void, "g_rec_mutex_unlock", GRecMutex *);
  __tsan_release (mutex);
  real_fn (mutex);
}

/* Tries to lock a GRecMutex; records the acquisition when it succeeds. */
gboolean
g_rec_mutex_trylock (GRecMutex *mutex)
{
  REAL (gboolean, "g_rec_mutex_trylock", GRecMutex *);
  gboolean ok = real_fn (mutex);
  if (ok)
    __tsan_acquire (mutex);
  return ok;
}

/* Waits on a GCond: the mutex is released during the wait and acquired again after it. */
void
g_cond_wait (GCond *cond, GMutex *mutex)
{
  REAL (void, "g_cond_wait", GCond *, GMutex *);
  __tsan_release (mutex);
  real_fn (cond, mutex);
  __tsan_acquire (mutex);
}

/* As g_cond_wait, with a deadline. */
gboolean
g_cond_wait_until (GCond *cond, GMutex *mutex, gint64 end_time)
{
  REAL (gboolean, "g_cond_wait_until", GCond *, GMutex *, gint64);
  __tsan_release (mutex);
  gboolean ok = real_fn (cond, mutex, end_time);
  __tsan_acquire (mutex);
  return ok;
}

/* Records a release on the queue (what the pushing thread wrote happens before the pop), then pushes. */
void
g_async_queue_push (GAsyncQueue *queue, gpointer data)
{
  REAL (void, "g_async_queue_push", GAsyncQueue *, gpointer);
  __tsan_release (queue);
  real_fn (queue, data);
}

/* Pops, then records an acquisition on the queue. */
gpointer
g_async_queue_pop (GAsyncQueue *queue)
{
  REAL (gpointer, "g_async_queue_pop", GAsyncQueue *);
  gpointer data = real_fn (queue);
  __tsan_acquire (queue);
  return data;
}

/* Tries to pop; records an acquisition on the queue when an item came. */
gpointer
g_async_queue_try_pop (GAsyncQueue *queue)
{
  REAL (gpointer, "g_async_queue_try_pop", GAsyncQueue *);
  gpointer data = real_fn (queue);
  if (data != NULL)
    __tsan_acquire (queue);
  return data;
}

/* Pops with a timeout; records an acquisition on the queue when an item came. */
gpointer
g_async_queue_timeout_pop (GAsyncQueue *queue, guint64 timeout)
{
  REAL (gpointer, "g_async_queue_timeout_pop", GAsyncQueue *, guint64);
  gpointer data = real_fn (queue, timeout);
  if (data != NULL)
    __tsan_acquire (queue);
  return data;
}
