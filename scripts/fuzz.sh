#!/usr/bin/env bash
# scripts/fuzz.sh: builds the libFuzzer targets (tests/fuzz) with clang, ASan and UBSan and runs each for a while.
# Usage: scripts/fuzz.sh [--merge] [SECONDS] [TARGET...]   (default: 60 s each; targets: loader hf vocab tokenize
#        chat gguf sampler chat_encode grammar output element)
# Each target starts from its committed corpus (tests/fuzz/corpus/TARGET, what earlier runs learned, minimized), its
# seeds and regression inputs, with its dictionary (tests/fuzz/TARGET.dict) when there is one; what it finds new goes
# to build-fuzz/fuzz-corpus/TARGET. --merge then minimizes the committed corpus with those finds (libFuzzer -merge=1:
# the fewest inputs that keep the coverage), to be committed.
# A crash, leak, UBSan report or timeout fails the run; its input is left in build-fuzz/crashes/TARGET/ (copy it to
# tests/fuzz/regressions/TARGET/ with the fix, where `meson test` replays it). Set FUZZ_BUILD to use another folder.
set -euo pipefail
cd "$(dirname "$0")/.."
merge=0
if [ "${1:-}" = "--merge" ]; then
  merge=1
  shift
fi
secs="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(loader hf vocab tokenize chat gguf sampler chat_encode grammar output element)
dir="${FUZZ_BUILD:-build-fuzz}"
fixtures="$(pwd)/tests/data"
command -v clang >/dev/null || { echo "fuzz: clang is missing (scripts/deps.sh --sanitizers)" >&2; exit 1; }
opts=(-Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized)
if [ -d "$dir" ]; then
  CC=clang meson setup --reconfigure "$dir" "${opts[@]}" >/dev/null
else
  CC=clang meson setup "$dir" "${opts[@]}" >/dev/null
fi
ninja -C "$dir" converter/levconvert gst-plugin/libgstleviathan.so $(printf 'tests/fuzz/fuzz_%s ' "${targets[@]}")

# seed corpora: the committed ones plus fuller ones made from the test data (tests/data) now
gen="$dir/fuzz-seeds"
rm -rf "$gen"
if [ -d "$fixtures" ]; then
  ASAN_OPTIONS=detect_leaks=0 python3 tests/fuzz/make_seeds.py "$fixtures" "$gen" "$dir/converter/levconvert"
elif [ "${CI:-}" = "true" ]; then
  echo "fuzz: $fixtures is missing and CI=true" >&2
  exit 1
fi

export LEV_FIXTURES="$fixtures" G_DEBUG=fatal-criticals
# the element target: the fuzz build's plugin only, loaded in this process (the plugin scanner is not built with
# ASan and cannot load it), levconvert to make its model
export GST_PLUGIN_PATH_1_0="$(pwd)/$dir/gst-plugin" GST_PLUGIN_SYSTEM_PATH_1_0="" \
  GST_REGISTRY_1_0="$(pwd)/$dir/fuzz-registry.bin" LEV_LEVCONVERT="$(pwd)/$dir/converter/levconvert" \
  LSAN_OPTIONS="suppressions=$(pwd)/tests/lsan.supp" GST_REGISTRY_FORK=no
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:halt_on_error=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:abort_on_error=1"
failed=()

# Rebuilds tests/fuzz/corpus/$1 (see --merge above).
merge_corpus() {
  local t="$1" new="$dir/corpus-merge/$1" mdict=()
  [ -f "tests/fuzz/$t.dict" ] && mdict=(-dict="tests/fuzz/$t.dict")
  rm -rf "$new"
  mkdir -p "$new"
  cp "tests/fuzz/seeds/$t"/* "$new/"
  "$dir/tests/fuzz/fuzz_$t" -merge=1 -max_len=16384 "${mdict[@]}" "$new" "tests/fuzz/corpus/$t" "$dir/fuzz-corpus/$t" \
    2>"$dir/fuzz-$t-merge.log" || { tail -20 "$dir/fuzz-$t-merge.log"; return 1; }
  for f in "tests/fuzz/seeds/$t"/*; do rm -f "$new/$(basename "$f")"; done
  find "tests/fuzz/corpus/$t" -type f ! -name 'README*' -delete
  cp "$new"/* "tests/fuzz/corpus/$t/" 2>/dev/null || true
}

for t in "${targets[@]}"; do
  corpus="$dir/fuzz-corpus/$t"     # what the fuzzer adds; kept between runs
  crashes="$dir/crashes/$t"
  mkdir -p "$corpus" "$crashes" "tests/fuzz/corpus/$t"
  dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
  echo "=== fuzz $t: ${secs} s ==="
  set +e
  # a fixed seed (FUZZ_SEED, default 1) makes a run, and any failure it finds, reproducible
  "$dir/tests/fuzz/fuzz_$t" -seed="${FUZZ_SEED:-1}" -max_total_time="$secs" -timeout=30 -rss_limit_mb=2560 \
    -print_final_stats=1 "${dict[@]}" \
    -artifact_prefix="$crashes/" "$corpus" "tests/fuzz/corpus/$t" "tests/fuzz/seeds/$t" \
    $( [ -d "$gen/$t" ] && echo "$gen/$t" ) \
    $( [ -d "tests/fuzz/regressions/$t" ] && echo "tests/fuzz/regressions/$t" ) 2>"$dir/fuzz-$t.log"
  rc=$?
  set -e
  grep -E '^#[0-9]+[[:space:]]+(DONE|INITED)|^stat::number_of_executed_units|^stat::peak_rss_mb|^Done ' "$dir/fuzz-$t.log" || true
  if [ $rc -ne 0 ]; then
    tail -60 "$dir/fuzz-$t.log"
    echo "fuzz $t: FAILED (exit $rc); inputs in $crashes/" >&2
    failed+=("$t")
  else
    echo "fuzz $t: ok"
    if [ $merge = 1 ]; then
      # the committed corpus rebuilt from itself and this run's finds: the fewest inputs that add coverage to the
      # seeds (which go in first and are left out again), none over 16 KiB, so that the corpus stays small
      merge_corpus "$t" || { failed+=("$t-merge"); continue; }
      echo "fuzz $t: corpus $(find "tests/fuzz/corpus/$t" -type f ! -name 'README*' | wc -l) inputs," \
        "$(du -sk "tests/fuzz/corpus/$t" | cut -f1) KiB"
    fi
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failed targets: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${secs} s without a finding"
