/* levg.h: the GObject Introspection API of Leviathan (namespace Lev: Lev.Model, Lev.Generator). */
#pragma once

#include "levg_enums.h"
#include "levg_model.h"
#include "levg_generator.h"
