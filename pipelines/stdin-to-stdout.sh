#!/bin/sh
# stdin-to-stdout.sh: every line on stdin is a prompt; the answer streams to stdout one token at a time.
# Usage: [LEV_MODEL=file.leviathan] pipelines/stdin-to-stdout.sh [levtextgen property=value ...]
#   echo "Once upon a time" | LEV_MODEL=stories.leviathan pipelines/stdin-to-stdout.sh temperature=0
set -eu
. "$(dirname "$0")/env.sh"
# shellcheck disable=SC2086
exec $GST_LAUNCH fdsrc fd=0 ! levtextgen $lev_model_prop prompt-mode=line "$@" ! fdsink fd=1 sync=false
