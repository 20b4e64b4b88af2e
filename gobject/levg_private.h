/* levg_private.h: what the GObject layer's files share and GObject Introspection does not see. */
#pragma once

#include "levg_model.h"
#include "leviathan.h"

/* Returns the engine model inside a Lev.Model (owned by it). */
const LevModel *lev_g_model_peek (LevGModel *self);
/* Returns the engine shared by the model's generators with these settings (made on first use); a new reference, or
 * NULL with error set. */
LevEngine *lev_g_model_get_engine (LevGModel *self, guint n_threads, guint act_quant, GError **error);
