/* gstlevtextgen.h: the levtextgen element: prompts in (text or token ids), generated text or token ids out. */
#pragma once

#include <gst/gst.h>
#include "leviathan.h"
#include "lev_session.h"
#include "lev_gen_props.h"

G_BEGIN_DECLS

#define GST_TYPE_LEV_TEXT_GEN (gst_lev_text_gen_get_type ())
G_DECLARE_FINAL_TYPE (GstLevTextGen, gst_lev_text_gen, GST, LEV_TEXT_GEN, GstElement)

/* What one input buffer of text becomes. */
typedef enum {
  GST_LEV_TEXT_GEN_PROMPT_BUFFER = 0,   /* each buffer is one prompt */
  GST_LEV_TEXT_GEN_PROMPT_LINE = 1,     /* each line is one prompt (lines may span buffers) */
  GST_LEV_TEXT_GEN_PROMPT_UTTERANCE = 2, /* text is collected until an end-of-utterance event */
} GstLevTextGenPromptMode;

/* Media type of token ids (int32, little-endian); field "vocab" identifies the vocabulary. */
#define LEV_TOKENS_MEDIA_TYPE "application/x-leviathan-tokens"
/* Name of the custom downstream event (and of the bus message "leviathan/stats") closing each response. */
#define LEV_END_OF_RESPONSE "leviathan/end-of-response"
#define LEV_STATS_MESSAGE "leviathan/stats"
/* Custom downstream events that end an utterance in prompt-mode=utterance: ours, and gst-plugins-rs's
 * transcribers' (also pushed by levtextgen after each response, for textaccumulate and TTS downstream). */
#define LEV_END_OF_UTTERANCE "leviathan/end-of-utterance"
#define LEV_FINAL_TRANSCRIPT "rstranscribe/final-transcript"
/* Tags levtextgen publishes on its output (strings): the model's name and architecture. */
#define LEV_TAG_MODEL "leviathan-model"
#define LEV_TAG_ARCHITECTURE "leviathan-architecture"
#define LEV_TAG_ENCODING "leviathan-encoding"

/* Declares the registration of levtextgen (GST_ELEMENT_REGISTER (levtextgen, plugin) in plugin_init). */
GST_ELEMENT_REGISTER_DECLARE (levtextgen);

G_END_DECLS
