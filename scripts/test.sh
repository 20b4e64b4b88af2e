#!/usr/bin/env bash
# scripts/test.sh: installs dependencies, builds with warnings as errors and runs the test suite.
# Usage: scripts/test.sh [--sanitize|--tsan]   (--sanitize: AddressSanitizer + UndefinedBehaviorSanitizer build;
#   --tsan: ThreadSanitizer build in build-tsan running the threaded tests: engine workers and levtextgen's queue)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build
opts=(-Dwerror=true)
tests=()
if [ "${1:-}" = "--tsan" ]; then
  dir=build-tsan
  opts+=(-Db_sanitize=thread -Db_lundef=false -Dbuildtype=debugoptimized)
  tests=(threads element element_stress element_streams)
  # uninstrumented GLib/GStreamer: their own accesses are not checked, GSlice's recycling becomes malloc/free
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:history_size=4:ignore_noninstrumented_modules=1"
  export TSAN_OPTIONS="$TSAN_OPTIONS:suppressions=$(pwd)/tests/tsan/tsan.supp" G_SLICE=always-malloc
  export LEV_STRESS_CYCLES="${LEV_STRESS_CYCLES:-200}" LEV_STRESS_FLUSHES="${LEV_STRESS_FLUSHES:-100}"
  export LEV_STRESS_EXTREME_SKIP=n-threads
elif [ "${1:-}" = "--sanitize" ]; then
  dir=build-asan
  opts+=(-Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug)
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
scripts/deps.sh
if [ -d "$dir" ]; then
  meson setup --reconfigure "$dir" "${opts[@]}" >/dev/null
else
  meson setup "$dir" "${opts[@]}" >/dev/null
fi
ninja -C "$dir"
set +e
meson test -C "$dir" --print-errorlogs --num-processes 2 "${tests[@]}"
rc=$?
set -e
# one closing line in the plain form: "N passed, N failed, N skipped"
python3 - "$dir/meson-logs/testlog.json" <<'PY'
import json, sys
counts = {"passed": 0, "failed": 0, "skipped": 0}
for line in open(sys.argv[1]):
    r = json.loads(line).get("result")
    key = {"OK": "passed", "EXPECTEDFAIL": "passed", "SKIP": "skipped"}.get(r, "failed")
    counts[key] += 1
print(f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
PY
exit $rc
