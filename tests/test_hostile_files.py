#!/usr/bin/env python3
"""test_hostile_files.py: the tools against files a hostile or careless user gives them (issue 19): levconvert's
output that is a device, FIFO, directory, symlink or one of its inputs; the output's permissions under the umask;
FIFOs and devices as inputs. Usage: test_hostile_files.py LEVCONVERT"""
import os
import shutil
import stat
import subprocess
import sys
import tempfile

from levtest import check, finish, fixture, run

LEVCONVERT = sys.argv[1]
SRC = fixture("stories260K/stories260K.bin")
TOK = fixture("stories260K/tok512.bin")
HF = fixture("hf/stories260K-llama")

tmp = tempfile.mkdtemp(prefix="lev-hostile-")


def convert(out, *extra, src=SRC, umask=None, timeout=120):
    args = [LEVCONVERT, src, "--tokenizer", TOK, "-o", out, "-q"] + list(extra)
    if src == HF:
        args = [LEVCONVERT, src, "-o", out, "-q"] + list(extra)
    pre = (lambda: os.umask(umask)) if umask is not None else None
    return run(args, timeout=timeout, preexec_fn=pre)


try:
    # --- item 2: an output that exists and is not a regular file is refused, untouched, nothing written
    fifo = os.path.join(tmp, "fifo")
    os.mkfifo(fifo)
    d = os.path.join(tmp, "dir.leviathan")
    os.mkdir(d)
    link_dev = os.path.join(tmp, "null.leviathan")
    os.symlink("/dev/null", link_dev)
    # never /dev/null itself: a converter with this defect, run as root, would replace the system's device node
    cases = [(fifo, "FIFO"), (d, "directory"), (link_dev, "symlink to a device")]
    dev = os.path.join(tmp, "dev")
    try:
        os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))   # a private null device (root only)
        cases.append((dev, "device"))
    except OSError:
        print("not root: no device node of our own to write to (the symlink to /dev/null stands for it)")
    for out, what in cases:
        r = convert(out, timeout=30)
        err = r.stderr.decode()
        check(r.returncode == 1 and "not a regular file" in err, f"-o {what}: exit {r.returncode}, {err!r}")
    check(stat.S_ISFIFO(os.stat(fifo).st_mode) and os.path.isdir(d) and os.path.islink(link_dev)
          and (not os.path.lexists(dev) or stat.S_ISCHR(os.lstat(dev).st_mode)),
          "the FIFO, directory, symlink and device are untouched")
    check(sorted(n for n in os.listdir(tmp) if n != "dev") == ["dir.leviathan", "fifo", "null.leviathan"],
          f"nothing written next to refused outputs: {os.listdir(tmp)}")

    # --- item 2: an output that is one of the inputs (same device and inode, by any name) is refused
    src_copy = os.path.join(tmp, "copy.bin")
    tok_copy = os.path.join(tmp, "copy.tok")
    shutil.copy(SRC, src_copy)
    shutil.copy(TOK, tok_copy)
    hard = os.path.join(tmp, "hard.leviathan")
    os.link(src_copy, hard)
    before = (open(src_copy, "rb").read(), open(tok_copy, "rb").read())
    for out, argv in ((src_copy, [LEVCONVERT, src_copy, "--tokenizer", tok_copy, "-o", src_copy]),
                      (hard, [LEVCONVERT, src_copy, "--tokenizer", tok_copy, "-o", hard]),
                      (tok_copy, [LEVCONVERT, src_copy, "--tokenizer", tok_copy, "-o", tok_copy])):
        r = run(argv, timeout=60)
        err = r.stderr.decode()
        check(r.returncode == 1 and "input" in err, f"-o {os.path.basename(out)} (an input): {r.returncode} {err!r}")
    check((open(src_copy, "rb").read(), open(tok_copy, "rb").read()) == before, "the inputs are intact")
    hf_copy = os.path.join(tmp, "hfdir")
    shutil.copytree(HF, hf_copy)
    st_path = os.path.join(hf_copy, "model.safetensors")
    st_before = open(st_path, "rb").read()
    r = run([LEVCONVERT, hf_copy, "-o", st_path], timeout=60)
    check(r.returncode == 1 and b"input" in r.stderr and open(st_path, "rb").read() == st_before,
          f"-o a file inside the SRC directory: {r.returncode} {r.stderr!r}")

    # --- item 2: a symlink to a regular file is written through (the link stays, its target is the model)
    target = os.path.join(tmp, "target.leviathan")
    with open(target, "wb") as f:
        f.write(b"old")
    link = os.path.join(tmp, "link.leviathan")
    os.symlink(target, link)
    r = convert(link)
    check(r.returncode == 0 and os.path.islink(link) and os.path.getsize(target) > 1000,
          f"-o a symlink to a regular file writes its target: {r.returncode} {r.stderr!r}")

    # --- item 9: a new output is 0666 less the umask; a replaced one keeps its mode
    for umask, mode in ((0o077, 0o600), (0o002, 0o664), (0o022, 0o644)):
        out = os.path.join(tmp, f"umask{umask:03o}.leviathan")
        r = convert(out, umask=umask)
        got = stat.S_IMODE(os.stat(out).st_mode) if r.returncode == 0 else None
        check(got == mode, f"umask {umask:03o}: mode {got and oct(got)}, expected {oct(mode)}")
    out = os.path.join(tmp, "private.leviathan")
    with open(out, "wb") as f:
        f.write(b"old")
    os.chmod(out, 0o600)
    r = convert(out, umask=0o022)
    got = stat.S_IMODE(os.stat(out).st_mode)
    check(r.returncode == 0 and got == 0o600 and os.path.getsize(out) > 1000,
          f"a replaced 0600 file stays 0600: {oct(got)}")

    # --- item 14: a FIFO or a device as an input is refused at once (no open() that blocks for ever)
    fifo = os.path.join(tmp, "fifo-in")
    os.mkfifo(fifo)
    for argv, what in (([LEVCONVERT, fifo, "-o", os.path.join(tmp, "f.leviathan")], "SRC FIFO"),
                       ([LEVCONVERT, SRC, "--tokenizer", fifo, "-o", os.path.join(tmp, "f.leviathan")],
                        "--tokenizer FIFO"),
                       ([LEVCONVERT, "/dev/zero", "--tokenizer", TOK, "-o", os.path.join(tmp, "f.leviathan")],
                        "SRC /dev/zero")):
        try:
            r = run(argv, timeout=20)
            check(r.returncode == 1 and b"not a regular file" in r.stderr, f"{what}: {r.returncode} {r.stderr!r}")
        except subprocess.TimeoutExpired:
            check(False, f"{what}: levconvert blocked")
    check(not os.path.exists(os.path.join(tmp, "f.leviathan")), "nothing written after a refused input")
finally:
    shutil.rmtree(tmp)

finish()
