/* levg.h: the GObject Introspection API of Leviathan (namespace Lev: Lev.Model, Lev.Generator, Lev.TokenMeta). */
#pragma once

#include "levg_enums.h"
#include "levg_model.h"
#include "levg_generator.h"
#include "levg_token_meta.h"
