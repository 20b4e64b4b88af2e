#!/usr/bin/env python3
"""test_hostile_tools.py: levppl and levbench against hostile files and arguments (issue 19): FIFOs, devices and
directories as model or text, a weight that is NaN (a norm weight of llama.cpp's stories260K checkpoint set to NaN),
--no-mmap, --check-tensors, --json with a path that needs escaping, precise messages for bad numbers; and levbench's
output on a tiny model. Usage: test_hostile_tools.py LEVCONVERT LEVPPL LEVBENCH"""
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile

from levtest import check, finish, fixture, run

LEVCONVERT, LEVPPL, LEVBENCH = sys.argv[1], sys.argv[2], sys.argv[3]
HF = fixture("hf/stories260K-llama")
TEXT = fixture("text/kjv_genesis_exodus.txt")

tmp = tempfile.mkdtemp(prefix="lev-hostile-tools-")


def quick(args, timeout=60):
    """Runs a command that must end quickly; a timeout (a tool blocked on a FIFO or reading /dev/zero) is a result."""
    try:
        return run(args, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


try:
    model = os.path.join(tmp, "m.leviathan")
    r = run([LEVCONVERT, HF, "-o", model, "-q"])
    check(r.returncode == 0, f"convert: {r.stderr!r}")
    short = os.path.join(tmp, "short.txt")
    with open(short, "w") as f:
        f.write(open(TEXT).read()[:3000])

    # --- item 14: FIFO, device and directory as the text or the model: refused at once with a message
    fifo = os.path.join(tmp, "fifo")
    os.mkfifo(fifo)
    for args, what, words in (([LEVPPL, "-m", model, "-f", "/dev/zero"], "-f /dev/zero", b"not a regular file"),
                              ([LEVPPL, "-m", model, "-f", fifo], "-f FIFO", b"not a regular file"),
                              ([LEVPPL, "-m", fifo, "-f", short], "-m FIFO", b"a FIFO"),
                              ([LEVPPL, "-m", tmp, "-f", short], "-m directory", b"a directory"),
                              ([LEVBENCH, "-m", fifo, "-p", "tg1", "-r", "1"], "levbench -m FIFO", b"a FIFO")):
        r = quick(args, timeout=20)
        check(r is not None and r.returncode == 1 and words in r.stderr,
              f"{what}: {'blocked' if r is None else (r.returncode, r.stderr[:200])}")

    # --- item 16: each bad number gets its own message (not "need -m and -f")
    for extra, words in ((["--ctx", "1"], b"--ctx"), (["--stride", "-1"], b"--stride"),
                         (["--threads", "65"], b"--threads"), (["--max-tokens", "-3"], b"--max-tokens")):
        r = run([LEVPPL, "-m", model, "-f", short] + extra)
        first = r.stderr.split(b"\n")[0]
        check(r.returncode == 2 and words in first, f"levppl {extra}: {r.returncode} {first!r}")
    r = run([LEVPPL, "-m", model])
    check(r.returncode == 2 and b"missing -f" in r.stderr.split(b"\n")[0], f"levppl without -f: {r.stderr[:80]!r}")
    r = run([LEVBENCH, "-m", model, "-t", "65", "-p", "tg1"])
    check(r.returncode == 2 and b"--threads" in r.stderr, f"levbench -t 65: {r.returncode} {r.stderr[:200]!r}")

    # --- item 10: --json is valid JSON, paths escaped
    odd = os.path.join(tmp, 'a "quoted"\\ name.leviathan')
    shutil.copy(model, odd)
    r = run([LEVPPL, "-m", odd, "-b", model, "-f", short, "--json", "-t", "1", "--ctx", "64"])
    try:
        j = json.loads(r.stdout)
    except ValueError:
        j = None
    check(r.returncode == 0 and j is not None and j.get("model") == odd and j.get("base") == model
          and j.get("kld") == 0 and j.get("ppl", 0) > 1, f"levppl --json: {r.returncode} {r.stdout[:300]!r}")
    plain = j

    # --- item 3: --no-mmap reads the file instead of mapping it: the same figures
    r = run([LEVPPL, "-m", odd, "-b", model, "-f", short, "--json", "-t", "1", "--ctx", "64", "--no-mmap"])
    try:
        j = json.loads(r.stdout)
    except ValueError:
        j = None
    check(r.returncode == 0 and j and plain and j["ppl"] == plain["ppl"] and j["tokens"] == plain["tokens"],
          f"levppl --no-mmap: {r.returncode} {r.stdout[:200]!r} {r.stderr[:200]!r}")

    # --- item 5: a NaN in one norm weight: an error naming the tensor, not a number; --check-tensors at load; a NaN
    #     base model is refused (not KL 0)
    # (levconvert refuses such a checkpoint, so the NaN is put into the converted file: the norm's 64 floats, found by
    #  their bytes in llama.cpp's checkpoint)
    st = open(os.path.join(HF, "model.safetensors"), "rb").read()
    hlen = struct.unpack("<Q", st[:8])[0]
    b, e = json.loads(st[8:8 + hlen])["model.layers.2.input_layernorm.weight"]["data_offsets"]
    norm = st[8 + hlen + b:8 + hlen + e]
    data = bytearray(open(model, "rb").read())
    at = data.find(norm)
    check(at > 0 and data.find(norm, at + 1) < 0, "blk.2.attn_norm found once in the converted model")
    data[at + 12:at + 16] = struct.pack("<f", math.nan)
    nan_model = os.path.join(tmp, "nan.leviathan")
    open(nan_model, "wb").write(data)
    r = run([LEVPPL, "-m", nan_model, "-f", short, "-t", "1", "--ctx", "64"])
    err = r.stderr.decode()
    check(r.returncode == 1 and "not a finite number" in err and "blk.2" in err and not r.stdout,
          f"levppl on a NaN weight: {r.returncode} {r.stdout[:100]!r} {err[:300]!r}")
    print("NaN weight:", err.strip())
    # a NaN in a matrix (blk.1.ffn_down's first weight) is named too
    b, e = json.loads(st[8:8 + hlen])["model.layers.1.mlp.down_proj.weight"]["data_offsets"]
    down = st[8 + hlen + b:8 + hlen + b + 256]
    data = bytearray(open(model, "rb").read())
    at = data.find(down)
    check(at > 0 and data.find(down, at + 1) < 0, "blk.1.ffn_down found once in the converted model")
    data[at:at + 4] = struct.pack("<f", math.nan)
    nan_matrix = os.path.join(tmp, "nan-matrix.leviathan")
    open(nan_matrix, "wb").write(data)
    r = run([LEVPPL, "-m", nan_matrix, "-f", short, "-t", "1", "--ctx", "64"])
    err = r.stderr.decode()
    check(r.returncode == 1 and "not a finite number" in err and "blk.1.ffn_down" in err and not r.stdout,
          f"levppl on a NaN matrix weight: {r.returncode} {r.stdout[:100]!r} {err[:300]!r}")
    print("NaN matrix weight:", err.strip())
    r = run([LEVPPL, "-m", model, "-b", nan_model, "-f", short, "-t", "1", "--ctx", "64", "--json"])
    check(r.returncode == 1 and b"not a finite number" in r.stderr and not r.stdout,
          f"levppl against a NaN base: {r.returncode} {r.stdout[:100]!r}")
    for tool in ([LEVPPL, "-m", nan_model, "-f", short], [LEVBENCH, "-m", nan_model, "-p", "tg1", "-r", "1"]):
        r = run(tool + ["--check-tensors"])
        check(r.returncode == 1 and b"blk.2" in r.stderr and b"not finite" in r.stderr,
              f"{os.path.basename(tool[0])} --check-tensors: {r.returncode} {r.stderr[:200]!r}")
    r = run([LEVPPL, "-m", model, "-f", short, "--check-tensors", "-t", "1", "--ctx", "64", "--json"])
    check(r.returncode == 0, f"--check-tensors passes a sound model: {r.stderr[:200]!r}")

    # --- levbench on a tiny model: its table and JSON lines, exit codes, a missing model
    r = run([LEVBENCH, "-m", model, "-p", "pp8,tg8", "-r", "1", "-t", "1", "--no-bandwidth"])
    rows = [l for l in r.stdout.decode().splitlines() if l.startswith("| pp8 ") or l.startswith("| tg8 ")]
    ok = r.returncode == 0 and len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        ok = ok and len(cells) == 6 and float(cells[1]) > 0 and cells[3].endswith("MB") and float(cells[5]) > 0
        ok = ok and (cells[4] == "-" if cells[0] == "pp8" else cells[4].endswith("%"))   # no share for prefill
    check(ok, f"levbench table: {r.returncode} {r.stdout[:400]!r} {r.stderr[:200]!r}")
    r = run([LEVBENCH, "-m", model, "-p", "pp8,tg8", "-r", "1", "-t", "1", "--no-bandwidth", "--json", "--no-mmap"])
    try:
        lines = [json.loads(l) for l in r.stdout.decode().splitlines()]
    except ValueError:
        lines = []
    check(r.returncode == 0 and [l.get("test") for l in lines] == ["pp8", "tg8"]
          and all(l["tokens_per_s"] > 0 and l["model"] == model for l in lines), f"levbench --json: {r.stdout[:300]!r}")
    odd = os.path.join(tmp, 'we"ird\\name\tmodel.leviathan')   # a quote, a backslash and a tab in the path
    os.symlink(os.path.abspath(model), odd)
    r = run([LEVBENCH, "-m", odd, "-p", "tg2", "-r", "1", "-t", "1", "--no-bandwidth", "--json"])
    try:
        lines = [json.loads(l) for l in r.stdout.decode().splitlines()]
    except ValueError:
        lines = []
    check(r.returncode == 0 and len(lines) == 1 and lines[0].get("model") == odd,
          f"levbench --json escapes the model path: {r.stdout[:300]!r}")
    r = run([LEVBENCH, "-m", os.path.join(tmp, "missing.leviathan"), "-p", "tg1"])
    check(r.returncode == 1 and b"missing.leviathan" in r.stderr and b"No such file" in r.stderr,
          f"levbench on a missing model: {r.returncode} {r.stderr[:200]!r}")
    r = run([LEVBENCH, "-p", "tg1"])
    check(r.returncode == 2 and b"-m MODEL" in r.stderr, f"levbench without a model: {r.returncode}")
finally:
    shutil.rmtree(tmp)

finish()
