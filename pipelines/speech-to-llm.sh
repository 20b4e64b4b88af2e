#!/bin/sh
# speech-to-llm.sh: speech → text → LLM: espeak-ng speaks a sentence into a wav file, pocketsphinx recognizes it,
# levtextgen answers the recognized text on stdout.
# Needs: gstreamer1.0-pocketsphinx pocketsphinx-en-us espeak-ng gstreamer1.0-plugins-good (wavparse).
# Usage: [LEV_MODEL=file.leviathan] pipelines/speech-to-llm.sh ["text to speak"] [levtextgen property=value ...]
#   ESPEAK overrides the synthesizer command (default espeak-ng).
set -eu
. "$(dirname "$0")/env.sh"
text=${1:-"Once upon a time there was a little girl"}
[ $# -gt 0 ] && shift
wav=$(mktemp --suffix=.wav)
trap 'rm -f "$wav"' EXIT
# shellcheck disable=SC2086
${ESPEAK:-espeak-ng} -s 140 -w "$wav" "$text"
# pocketsphinx pushes one text/plain buffer per utterance: each one is a prompt
# shellcheck disable=SC2086
$GST_LAUNCH filesrc location="$wav" ! wavparse ! audioconvert ! audioresample ! pocketsphinx \
  ! levtextgen $lev_model_prop "$@" ! fdsink fd=1 sync=false
