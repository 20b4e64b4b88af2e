/* levg_private.h: what the GObject layer's files share and GObject Introspection does not see. */
#pragma once

#include "levg_model.h"
#include "leviathan.h"

/* Returns the engine model inside a Lev.Model (owned by it). */
const LevModel *lev_g_model_peek (LevGModel *self);
