/* lev_progress.h: progress of the converter's long steps (quantizing, writing), reported to one hook a program sets. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Receives the progress of a step: done of total units (bytes or matrices) of the step named stage. */
typedef void (*LevConvProgressFunc) (const char *stage, guint64 done, guint64 total, gpointer user_data);

/* Sets the hook that receives the converter's progress (NULL: none, the default); not thread-safe. */
void lev_conv_set_progress (LevConvProgressFunc func, gpointer user_data);
/* Reports progress to the hook, if one is set. */
void lev_conv_progress (const char *stage, guint64 done, guint64 total);

G_END_DECLS
