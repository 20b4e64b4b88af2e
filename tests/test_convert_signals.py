#!/usr/bin/env python3
"""test_convert_signals.py: levconvert interrupted by SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGALRM or SIGPIPE
while it writes leaves no temporary file, and the output is either untouched (the previous file) or complete; a write
past `ulimit -f` (SIGXFSZ) fails with a message and leaves nothing. Usage: test_convert_signals.py LEVCONVERT"""
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile

from levtest import fixture

LEVCONVERT = sys.argv[1]
SRC = fixture("bitnet-tinystories/bit_model_3M.bin")
TOK = fixture("stories260K/tok512.bin")

tmp = tempfile.mkdtemp(prefix="lev-signals-")
failures = []
try:
    out = os.path.join(tmp, "m.leviathan")
    argv = [LEVCONVERT, SRC, "--tokenizer", TOK, "-o", out, "-q", "-f", "f32"]
    subprocess.run(argv, check=True)
    complete = open(out, "rb").read()
    old = b"the previous file"
    mid_write = 0
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGALRM,
            signal.SIGPIPE)
    no_core = lambda: resource.setrlimit(resource.RLIMIT_CORE, (0, 0))   # SIGQUIT dumps core by default
    runs = 5 * len(sigs)
    for i in range(runs):
        sig = sigs[i % len(sigs)]
        with open(out, "wb") as f:     # a previous output that an interrupted run must leave alone
            f.write(old)
        p = subprocess.Popen(argv, preexec_fn=no_core)
        # wait until the temporary file exists, then interrupt (some runs finish first: that is fine too)
        while p.poll() is None:
            if any(n.startswith("m.leviathan.") for n in os.listdir(tmp)):
                p.send_signal(sig)
                mid_write += 1
                break
        rc = p.wait()
        left = [n for n in os.listdir(tmp) if n.startswith("m.leviathan.")]
        data = open(out, "rb").read() if os.path.exists(out) else None
        if left:
            failures.append(f"run {i} ({sig.name}): temporary files left: {left}")
        if data not in (old, complete):
            failures.append(f"run {i} ({sig.name}): output is neither the previous file nor complete")
        # SIGPIPE is ignored (a write to a closed pipe fails instead): the run completes
        if rc not in ((0,) if sig == signal.SIGPIPE else (0, -sig)):
            failures.append(f"run {i} ({sig.name}): exit status {rc}")
        for n in left:
            os.unlink(os.path.join(tmp, n))
    print(f"{mid_write} of {runs} runs interrupted while the temporary file existed")
    if mid_write < runs // 3:
        failures.append(f"only {mid_write} runs were interrupted mid-write: the test did not test much")

    # past `ulimit -f` the write fails (SIGXFSZ ignored, EFBIG): exit 1 with a message, no temporary file, the
    # previous output untouched
    with open(out, "wb") as f:
        f.write(old)
    fsize = lambda: (no_core(), resource.setrlimit(resource.RLIMIT_FSIZE, (200 * 1024, 200 * 1024)))
    r = subprocess.run(argv, preexec_fn=fsize, capture_output=True)
    left = [n for n in os.listdir(tmp) if n.startswith("m.leviathan.")]
    if r.returncode != 1 or b"levconvert:" not in r.stderr:
        failures.append(f"ulimit -f: exit status {r.returncode}, {r.stderr[:200]!r}")
    if left:
        failures.append(f"ulimit -f: temporary files left: {left}")
    if open(out, "rb").read() != old:
        failures.append("ulimit -f: the previous output was changed")
finally:
    shutil.rmtree(tmp)
for f in failures:
    print("FAILED:", f)
sys.exit(1 if failures else 0)
