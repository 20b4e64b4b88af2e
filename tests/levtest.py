"""levtest.py: what the Python tests share: fixtures from $LEV_FIXTURES (skipped on a user's machine, a failure
under CI=true), counted checks, subprocess runs."""
import os
import subprocess
import sys

FIX = os.environ.get("LEV_FIXTURES", os.path.join(os.path.dirname(os.path.abspath(__file__)), "data"))
failures = []
passed = 0


def fixture(rel):
    """The path of a fixture file; exits 77 (skip) when it is missing, or 1 under CI=true."""
    path = os.path.join(FIX, rel)
    if not os.path.exists(path):
        if os.environ.get("CI", "").lower() == "true":
            print(f"FAIL: fixture {path} missing and CI=true")
            sys.exit(1)
        print(f"SKIP: fixture {path} not found")
        sys.exit(77)
    return path


def check(cond, what):
    """Counts a passed check, or records and prints a failed one."""
    global passed
    if cond:
        passed += 1
    else:
        failures.append(what)
        print("FAILED:", what)


def run(args, timeout=600, **kw):
    """Runs a command and captures its output."""
    return subprocess.run(args, capture_output=True, timeout=timeout, **kw)


def finish():
    """Prints the tally and exits 1 when a check failed."""
    print(f"{passed} checks passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)
