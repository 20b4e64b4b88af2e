/* lev_progress.c: the converter's progress hook (lev_progress.h). */
#include "lev_progress.h"

static LevConvProgressFunc progress_func;
static gpointer progress_data;

/* Sets the hook that receives the converter's progress. */
void
lev_conv_set_progress (LevConvProgressFunc func, gpointer user_data)
{
  progress_func = func;
  progress_data = user_data;
}

/* Reports progress to the hook, if one is set. */
void
lev_conv_progress (const char *stage, guint64 done, guint64 total)
{
  if (progress_func)
    progress_func (stage, done, total, progress_data);
}
