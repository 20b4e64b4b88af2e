#!/usr/bin/env bash
# scripts/demo.sh: the main job: installs dependencies, builds, and continues a prompt with a gst-launch-1.0
# pipeline (fdsrc ! levtextgen ! fdsink) on the bundled default model.
# Usage: scripts/demo.sh ["prompt"]
set -euo pipefail
cd "$(dirname "$0")/.."
prompt="${1:-And the LORD said unto Moses,}"
scripts/deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null
model=models/default.leviathan
if [ ! -f "$model" ]; then
  fixtures=tests/data
  if [ ! -f "$fixtures/stories260K/stories260K.bin" ]; then
    echo "demo: models/default.leviathan is missing, and so is tests/data: nothing to run." >&2
    echo "demo: convert a checkpoint yourself: build/converter/levconvert SRC -o model.leviathan" >&2
    exit 1
  fi
  echo "demo: models/default.leviathan is missing; using the stories260K fixture (llama2.c, 260K parameters)." >&2
  model=build/stories260K.leviathan
  build/converter/levconvert -q "$fixtures/stories260K/stories260K.bin" \
    --tokenizer "$fixtures/stories260K/tok512.bin" -o "$model"
fi
echo "demo: gst-launch-1.0 fdsrc fd=0 ! levtextgen model=$model ... ! fdsink fd=1   (prompt: \"$prompt\")" >&2
printf '%s' "$prompt"
# (through cat: fdsink writes from offset 0 when stdout is a regular file, over the prompt printed above)
printf '%s\n' "$prompt" | LEV_MODEL="$model" pipelines/stdin-to-stdout.sh max-tokens=200 temperature=0.8 seed=42 | cat
echo
