#!/usr/bin/python3
"""test_levbench_streams.py: levbench --streams on the stories260K fixture: one JSON line per stream count with
every stream's tokens decoded (aggregate, per-stream rates and times to first token present and positive), a
stream count outside 1..32 and a prompt that does not fit the context refused with exit status 2.
Usage: test_levbench_streams.py LEVCONVERT LEVBENCH."""
import json
import os
import shutil
import sys
import tempfile

from levtest import check, finish, fixture, run

LEVCONVERT, LEVBENCH = sys.argv[1], sys.argv[2]

tmp = tempfile.mkdtemp(prefix="lev-bench-streams-")
try:
    model = os.path.join(tmp, "stories.leviathan")
    r = run([LEVCONVERT, fixture("stories260K/stories260K.bin"), "--tokenizer", fixture("stories260K/tok512.bin"),
             "-o", model, "-q"], timeout=120)
    check(r.returncode == 0, f"levconvert: {r.stderr.decode()}")
    base = [LEVBENCH, "-m", model, "-t", "2", "--ctx", "64", "--stream-prompt", "8", "--stream-tokens", "16"]
    r = run(base + ["--streams", "1,3", "-r", "2", "--json"], timeout=300)
    check(r.returncode == 0, f"levbench --streams: {r.returncode} {r.stderr.decode()}")
    rows = [json.loads(line) for line in r.stdout.decode().splitlines() if line.strip()]
    check([row.get("streams") for row in rows] == [1, 3], f"one line per count: {rows}")
    for row in rows:
        for key in ("own_context_tokens_per_s", "aggregate_tokens_per_s", "per_stream_min", "per_stream_mean",
                    "ttft_ms", "tokens_per_step"):
            check(row.get(key, 0) > 0, f"{key} of {row.get('streams')} streams: {row.get(key)}")
        check(row.get("rounds") == 2 and row.get("decode") == 16 and row.get("prompt") == 8, f"settings: {row}")
    if len(rows) == 2:
        check(rows[1]["ttft_join_ms"] > 0, f"a stream joined under load: {rows[1]}")
        check(rows[0]["aggregate_vs_first"] == 1.0, f"the first row is the reference: {rows[0]}")
    r = run(base + ["--streams", "1,0"])
    check(r.returncode == 2 and b"bad stream count 0" in r.stderr, f"count 0: {r.returncode} {r.stderr!r}")
    r = run(base + ["--streams", "33"])
    check(r.returncode == 2 and b"bad stream count 33" in r.stderr, f"count 33: {r.returncode} {r.stderr!r}")
    r = run([LEVBENCH, "-m", model, "--ctx", "16", "--streams", "1", "--stream-prompt", "8", "--stream-tokens", "16"])
    check(r.returncode == 2 and b"must fit --ctx" in r.stderr, f"too long for the context: {r.stderr!r}")
finally:
    shutil.rmtree(tmp, ignore_errors=True)
finish()
