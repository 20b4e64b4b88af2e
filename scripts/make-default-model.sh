#!/usr/bin/env bash
# scripts/make-default-model.sh: rebuilds models/ from scratch: data, tokenizer, ternary and float training,
# Hugging Face exports, conversion, PyTorch reference outputs, held-out perplexity and the loss plot.
# Offline tool (Python + torch); resumable: run it again after an interruption and training continues.
# Usage: scripts/make-default-model.sh [WORK_DIR]   (default /var/tmp/leviathan-train)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/var/tmp/leviathan-train}
steps=${STEPS:-800}
sudo_=""
[ "$(id -u)" -eq 0 ] || sudo_="sudo"
need=(python3-torch python3-numpy python3-sentencepiece sentencepiece bible-kjv python3-matplotlib
      libopenblas0-pthread)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
scripts/deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build converter/levconvert tools/levppl >/dev/null
train() { OMP_NUM_THREADS=1 /usr/bin/python3 converter/levtrain.py "$@"; }
[ -f "$work/train.u16" ] || train prepare "$work"
# one thread per run, both runs at once: on 2 cores this beats two threads per run one after the other
train train "$work" --run ternary --steps "$steps" --batch 8 --seq 256 --threads 1 &
train train "$work" --run float --float --steps "$steps" --batch 8 --seq 256 --threads 1 &
wait
mkdir -p models
train export "$work" --run ternary -o models/default-hf
train export "$work" --run float -o models/float-twin
build/converter/levconvert models/default-hf -o models/default.leviathan --name leviathan-default
train reference models/default-hf -o models/default-reference.json
train plot "$work" --runs ternary,float -o docs/default-model-loss.png
heldout=tests/data/text/kjv_genesis_exodus.txt
for m in default-hf float-twin; do
  train eval "models/$m" --text "$heldout" --threads 2
done
