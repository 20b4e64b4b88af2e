#!/usr/bin/env python3
"""test_convert_signals.py: levconvert interrupted by SIGINT, SIGTERM or SIGHUP while it writes leaves no temporary
file, and the output is either untouched (the previous file) or complete. Usage: test_convert_signals.py LEVCONVERT"""
import os
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
    for i in range(30):
        sig = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)[i % 3]
        with open(out, "wb") as f:     # a previous output that an interrupted run must leave alone
            f.write(old)
        p = subprocess.Popen(argv)
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
        if rc not in (0, -sig):
            failures.append(f"run {i} ({sig.name}): exit status {rc}")
        for n in left:
            os.unlink(os.path.join(tmp, n))
    print(f"{mid_write} of 30 runs interrupted while the temporary file existed")
    if mid_write < 10:
        failures.append(f"only {mid_write} runs were interrupted mid-write: the test did not test much")
finally:
    shutil.rmtree(tmp)
for f in failures:
    print("FAILED:", f)
sys.exit(1 if failures else 0)
