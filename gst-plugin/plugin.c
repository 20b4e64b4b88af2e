/* plugin.c: the "leviathan" GStreamer plugin (registers the levtextgen element). */
#include <gst/gst.h>
#include "gstlevtextgen.h"

#ifndef PACKAGE
#define PACKAGE "leviathan"
#endif

static gboolean
plugin_init (GstPlugin *plugin)
{
  return GST_ELEMENT_REGISTER (levtextgen, plugin);
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, leviathan,
                   "Text generation with 1-bit/ternary language models (Leviathan engine)",
                   plugin_init, LEV_PLUGIN_VERSION, "MIT", "Leviathan", "https://github.com/leviathan-llm/leviathan")
