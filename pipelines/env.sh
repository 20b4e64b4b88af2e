# env.sh: sourced by the pipeline scripts: finds the uninstalled plugin and typelib in the build tree, if any.
# LEV_BUILD_DIR (default: <repository>/build) is used when it holds the plugin; an installed plugin works as well.
lev_root=$(cd "$(dirname "$0")/.." && pwd)
lev_build=${LEV_BUILD_DIR:-$lev_root/build}
if [ -f "$lev_build/gst-plugin/libgstleviathan.so" ]; then
  export GST_PLUGIN_PATH="$lev_build/gst-plugin${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
fi
if [ -f "$lev_build/gobject/Lev-1.0.typelib" ]; then
  export GI_TYPELIB_PATH="$lev_build/gobject${GI_TYPELIB_PATH:+:$GI_TYPELIB_PATH}"
  export LD_LIBRARY_PATH="$lev_build/gobject${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
# LEV_MODEL picks the model; without it levtextgen uses its default (the installed default model)
lev_model_prop=${LEV_MODEL:+model=$LEV_MODEL}
GST_LAUNCH=${GST_LAUNCH:-gst-launch-1.0 -q}
