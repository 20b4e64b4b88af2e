/* gstlevengine.h: levtextgen's shared engines: the GstContext type "leviathan.engine" and the registry of loaded
 * models and their engines by group, model and adapter. */
#pragma once

#include <gst/gst.h>
#include "leviathan.h"

G_BEGIN_DECLS

/* The GstContext type through which levtextgen elements find the group whose engines they share. */
#define GST_LEV_ENGINE_CONTEXT_TYPE "leviathan.engine"
/* The group of the context levtextgen makes when no application gives one (shared by the whole process). */
#define GST_LEV_ENGINE_DEFAULT_GROUP "default"

/* One loaded model with its engine, shared by the elements of a group that name the same model and settings. */
typedef struct GstLevSharedEngine GstLevSharedEngine;

/* Returns the group a "leviathan.engine" context names: its "group" string field, else the context itself (two
 * contexts without a group are two groups); newly allocated. */
gchar *gst_lev_engine_context_group (GstContext *context);
/* Returns a new persistent "leviathan.engine" context naming group. */
GstContext *gst_lev_engine_context_new (const char *group);
/* Returns the shared engine of group for the model at path (identified by device and inode, size and modification
 * time, so that two names of one file share), adapter (or NULL), load_flags (LevModelParams flags:
 * LEV_MODEL_NO_MMAP), n_threads and act_quant, loading the model when the group has none yet; release it with
 * gst_lev_shared_engine_release. NULL with error set. */
GstLevSharedEngine *gst_lev_shared_engine_acquire (const char *group, const char *path, const char *adapter,
                                                   guint load_flags, guint n_threads, guint act_quant,
                                                   GError **error);
/* Gives back a shared engine; the last user frees the engine and the model. */
void gst_lev_shared_engine_release (GstLevSharedEngine *shared);
/* Returns the shared engine's engine. */
LevEngine *gst_lev_shared_engine_engine (const GstLevSharedEngine *shared);
/* Returns the shared engine's model. */
const LevModel *gst_lev_shared_engine_model (const GstLevSharedEngine *shared);
/* Returns the shared engine's number, unique in the process (1, 2, ...). */
guint gst_lev_shared_engine_id (const GstLevSharedEngine *shared);

G_END_DECLS
