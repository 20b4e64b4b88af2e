/* lev_gen_props.h: the one table of generation properties (name, type, range, default, blurb, mutability) from
 * which Lev.Generator and the levtextgen element install theirs, and the settings those properties fill. */
#pragma once

#include <glib-object.h>
#include "lev_session.h"
#include "levg_enums.h"

G_BEGIN_DECLS

/* The generation properties, in the order of the table (a front end's property id is its first id + this). */
typedef enum {
  LEV_GEN_PROP_MAX_TOKENS,
  LEV_GEN_PROP_N_THREADS,
  LEV_GEN_PROP_CONTEXT_LENGTH,
  LEV_GEN_PROP_TEMPERATURE,
  LEV_GEN_PROP_TOP_K,
  LEV_GEN_PROP_TOP_P,
  LEV_GEN_PROP_MIN_P,
  LEV_GEN_PROP_REPEAT_PENALTY,
  LEV_GEN_PROP_SEED,
  LEV_GEN_PROP_KEEP_HISTORY,
  LEV_GEN_PROP_IGNORE_EOS,
  LEV_GEN_PROP_SYSTEM_PROMPT,
  LEV_GEN_PROP_CHAT_TEMPLATE,
  LEV_GEN_PROP_STOP_STRINGS,
  LEV_GEN_PROP_OUTPUT_MODE,
  LEV_GEN_PROP_GRAMMAR,
  LEV_GEN_PROP_MAX_PROMPT_BYTES,
  LEV_GEN_PROP_PARSE_SPECIAL,
  LEV_GEN_PROP_KV_TYPE,
  LEV_GEN_PROP_MEMORY_LIMIT,
  LEV_GEN_N_PROPS
} LevGenProp;

/* When a property may change. */
typedef enum {
  LEV_GEN_MUTABLE_ALWAYS,        /* applies to the next prompt */
  LEV_GEN_MUTABLE_BEFORE_START,  /* taken when the context is made (the element: only in NULL or READY) */
} LevGenMutability;

/* The settings the properties fill: the session's parameters with owned copies of their strings (a front end
 * that hands them to another thread copies system_prompt, stop_strings and grammar). */
typedef struct LevGenSettings {
  LevSessionParams p;            /* p.system_prompt and p.stop_strings point into the fields below */
  gchar *system_prompt;
  gchar **stop_strings;
  gchar *grammar;                /* p.grammar points here */
} LevGenSettings;

/* Makes the stop-strings spec where a front end wants another type than G_TYPE_STRV (the element: GstValueArray). */
typedef GParamSpec *(*LevGenStrvSpecFunc) (const char *name, const char *nick, const char *blurb, GParamFlags flags);

/* Installs the generation properties on klass with ids first_id + LevGenProp; flags are added to the
 * read-write flags by mutability (live for LEV_GEN_MUTABLE_ALWAYS, start for the others); strv_spec may be NULL. */
void lev_gen_props_install (GObjectClass *klass, guint first_id, GParamFlags live, GParamFlags start,
                            LevGenStrvSpecFunc strv_spec);
/* Returns when property prop may change. */
LevGenMutability lev_gen_prop_mutability (LevGenProp prop);
/* Fills settings with the defaults (lev_session_default_params). */
void lev_gen_settings_init (LevGenSettings *settings);
/* Frees what settings own. */
void lev_gen_settings_clear (LevGenSettings *settings);
/* Sets property prop from value (of the installed type; stop strings as G_TYPE_STRV). */
void lev_gen_settings_set (LevGenSettings *settings, LevGenProp prop, const GValue *value);
/* Reads property prop into value (initialized to the installed type; stop strings as G_TYPE_STRV). */
void lev_gen_settings_get (const LevGenSettings *settings, LevGenProp prop, GValue *value);
/* Replaces the stop strings (NULL-terminated, may be NULL). */
void lev_gen_settings_set_stop_strings (LevGenSettings *settings, const char *const *strings);

G_END_DECLS
