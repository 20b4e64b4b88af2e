#!/usr/bin/env python3
"""test_fixture_skip.py: a C test binary whose fixtures are missing skips only the cases that need them; its
fixture-free cases still run and pass (issue 19: a binary used to exit 77 at its first missing fixture). Runs the
binaries with LEV_FIXTURES pointing nowhere and CI unset. Usage: test_fixture_skip.py TEST_NOALLOC TEST_LOADER
TEST_THREADS"""
import os
import subprocess
import sys

from levtest import check, finish

NOALLOC, LOADER, THREADS = sys.argv[1:4]
env = {k: v for k, v in os.environ.items() if k != "CI"}
env["LEV_FIXTURES"] = "/nonexistent/lev-fixtures"


def tap(binary):
    r = subprocess.run([binary, "--tap"], capture_output=True, timeout=100, env=env)
    lines = r.stdout.decode().splitlines()
    ran = {l.split()[2] for l in lines if l.startswith("ok ") and "# SKIP" not in l}
    skipped = {l.split()[2] for l in lines if l.startswith("ok ") and "# SKIP" in l}
    failed = [l for l in lines if l.startswith("not ok")]
    return r.returncode, ran, skipped, failed


rc, ran, skipped, failed = tap(NOALLOC)
check(rc == 0 and ran == {"/noalloc/hook"} and len(skipped) == 2 and not failed,
      f"test_noalloc without fixtures: rc {rc}, ran {ran}, skipped {skipped}, failed {failed}")
rc, ran, skipped, failed = tap(LOADER)
check(rc == 0 and ran == {"/loader/missing-file", "/loader/not-regular"} and len(skipped) == 7 and not failed,
      f"test_loader without fixtures: rc {rc}, ran {ran}, skipped {skipped}, failed {failed}")
rc, ran, skipped, failed = tap(THREADS)
check(not ran and len(skipped) == 2 and not failed, f"test_threads without fixtures: {rc} {ran} {skipped}")
r = subprocess.run([NOALLOC], capture_output=True, timeout=100, env=dict(env, CI="true"))
check(r.returncode != 0 and b"missing and CI=true" in r.stderr, f"under CI a missing fixture fails: {r.returncode}")
finish()
