#!/usr/bin/env python3
"""test_kernel_cache.py: the kernel choice (kernels/lev_qtune.c) is measured once per CPU model and kept in
$XDG_CACHE_HOME/leviathan; later processes read it back; a damaged, truncated or foreign file is measured over;
LEV_KERNELS=measure measures again. Usage: test_kernel_cache.py LEVBENCH"""
import os
import subprocess
import sys
import tempfile

levbench = sys.argv[1]
failures = 0


def check(ok, what):
    global failures
    print(("ok: " if ok else "FAIL: ") + what)
    failures += 0 if ok else 1


def choice(cache, extra_env=None):
    env = dict(os.environ, XDG_CACHE_HOME=cache)
    env.pop("LEV_KERNELS", None)
    env.update(extra_env or {})
    r = subprocess.run([levbench, "--kernel-choice"], env=env, capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, f"levbench --kernel-choice exits 0 ({r.stderr.strip()})")
    return r.stdout.strip()


with tempfile.TemporaryDirectory() as tmp:
    cache = os.path.join(tmp, "nested", "cache")
    first = choice(cache)
    folder = os.path.join(cache, "leviathan")
    files = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    check(len(files) == 1 and files[0].startswith("kernels-"), f"one cache file made: {files}")
    check(not first.endswith("(cached)") and first.startswith("t2 "), f"first process measures: {first!r}")
    path = os.path.join(folder, files[0]) if files else os.path.join(folder, "missing")
    lines = open(path).read().split("\n") if files else []
    check(len(lines) == 3 and lines[0].startswith("leviathan kernels ") and lines[1] == first and lines[2] == "",
          f"the file holds the key and the choice: {lines}")
    second = choice(cache)
    check(second == first + " (cached)", f"second process reads it: {second!r}")
    # damaged files: measured over and rewritten, never used
    key = lines[0] if lines else ""
    for name, content in [("garbage", "\x00\xff nothing\n"), ("truncated", key + "\nt2 avx"),
                          ("unknown implementation", key + "\nt2 nosuch/nosuch, t1 a/b, b1 a/b, q4 a/b\n"),
                          ("another CPU's key", "leviathan kernels 0: other cpu: avx2\n" + first + "\n"),
                          ("empty", "")]:
        with open(path, "w") as f:
            f.write(content)
        got = choice(cache)
        check(not got.endswith("(cached)") and got.startswith("t2 "), f"{name} cache file measured over: {got!r}")
        check(open(path).read() == key + "\n" + got + "\n", f"{name} cache file rewritten")
    forced = choice(cache, {"LEV_KERNELS": "measure"})
    check(not forced.endswith("(cached)"), f"LEV_KERNELS=measure measures again: {forced!r}")
    check(not [f for f in os.listdir(folder) if f.endswith(".tmp")], "no temporary file left")
    # an unwritable cache directory: the choice is still made, nothing fails
    blocked = os.path.join(tmp, "file-not-dir")
    open(blocked, "w").close()
    got = choice(blocked)
    check(got.startswith("t2 ") and not got.endswith("(cached)"), f"cache directory unusable: {got!r}")

print(f"{failures} failed")
sys.exit(1 if failures else 0)
