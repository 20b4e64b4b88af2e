#!/usr/bin/env bash
# llm-to-speech.sh: LLM → speech: the answer to a prompt is spoken by festival (gstreamer1.0-plugins-bad's
# festival element talks to a festival server on localhost:1314, started here when none runs).
# Usage: [LEV_MODEL=file.leviathan] [OUT=answer.wav] pipelines/llm-to-speech.sh ["prompt"] [property=value ...]
#   Without OUT the answer plays on the default audio device.
set -eu
. "$(dirname "$0")/env.sh"
prompt=${1:-"Once upon a time"}
[ $# -gt 0 ] && shift
if ! (exec 3<>/dev/tcp/127.0.0.1/1314) 2>/dev/null; then
  festival --server >/dev/null 2>&1 &
  festival_pid=$!
  trap 'kill $festival_pid 2>/dev/null || true' EXIT
  i=0
  while ! (exec 3<>/dev/tcp/127.0.0.1/1314) 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 50 ] && { echo "llm-to-speech: festival server did not start" >&2; exit 1; }
    sleep 0.1
  done
fi
# one buffer per response: festival makes one wav of it
if [ -n "${OUT:-}" ]; then
  sink="filesink location=$OUT"
else
  sink="wavparse ! audioconvert ! audioresample ! autoaudiosink"
fi
# shellcheck disable=SC2086
printf '%s\n' "$prompt" | $GST_LAUNCH fdsrc fd=0 ! levtextgen $lev_model_prop output-mode=response "$@" \
  ! festival ! $sink
