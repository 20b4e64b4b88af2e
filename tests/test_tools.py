#!/usr/bin/env python3
"""test_tools.py: the command-line tools as a user meets them (issue 19 items 6, 7, 11, 12, 13, 16 and issue 20 item
6): a one-line usage error pointing at --help, --version with meson's project version, levconvert's progress bar on a
terminal only, levrun --chat explaining an empty answer, one range check of the sampler parameters (NaN refused),
NUL bytes in prompts and texts, --chat lines and invalid UTF-8, --repeat-last-n bounded, --logits-out written whole
or not at all. Models: llama.cpp's stories260K (tests/data/hf) and the bundled default model.
Usage: test_tools.py LEVCONVERT LEVRUN LEVPPL LEVBENCH PROJECT_VERSION"""
import json
import os
import pty
import shutil
import subprocess
import sys
import tempfile

from levtest import check, finish, fixture, run

LEVCONVERT, LEVRUN, LEVPPL, LEVBENCH, VERSION = sys.argv[1:6]
HF = fixture("hf/stories260K-llama")
DEFAULT = os.path.join(os.environ.get("LEV_MODELS_DIR", os.path.join(os.path.dirname(__file__), "..", "models")),
                       "default.leviathan")

tmp = tempfile.mkdtemp(prefix="lev-tools-")


def run_on_tty(args):
    """Runs args with stderr on a pseudo-terminal (stdout captured apart); returns (rc, stdout, what the terminal
    showed)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    out = p.stdout.read()
    p.wait(timeout=300)
    os.close(master)
    return p.returncode, out, shown


try:
    model = os.path.join(tmp, "m.leviathan")
    r = run([LEVCONVERT, HF, "-o", model, "-q"])
    check(r.returncode == 0, f"convert: {r.stderr!r}")

    # --- issue 20 item 6: a usage error is one line that points at --help, not the whole help
    for tool, args in ((LEVRUN, ["-m", model, "--bogus"]), (LEVRUN, ["-m", model, "--top-p", "2"]),
                       (LEVRUN, ["-m", model, "--ids", "1 x"]), (LEVCONVERT, []), (LEVCONVERT, [HF]),
                       (LEVCONVERT, [HF, "-o", "y", "--format", "q3"]), (LEVPPL, ["-m", model]),
                       (LEVPPL, ["-m", model, "-f", model, "--ctx", "1"]), (LEVBENCH, ["-p", "tg1"]),
                       (LEVBENCH, ["--bogus"]), (LEVBENCH, ["--synthetic", "nope"])):
        r = run([tool] + args)
        lines = r.stderr.decode().splitlines()
        name = os.path.basename(tool)
        check(r.returncode == 2 and len(lines) == 1 and f"see {name} --help" in lines[0]
              and lines[0].startswith(name + ": "), f"{name} {args}: rc {r.returncode}, {r.stderr[:300]!r}")

    # --- --version in every tool: the project's version from meson.build
    for tool in (LEVRUN, LEVCONVERT, LEVPPL, LEVBENCH):
        r = run([tool, "--version"])
        name = os.path.basename(tool)
        check(r.returncode == 0 and r.stdout.decode() == f"{name} (Leviathan) {VERSION}\n",
              f"{name} --version: {r.returncode} {r.stdout!r} {r.stderr[:200]!r}")

    # --- levconvert: a progress bar on a terminal, nothing but the outcome otherwise, nothing with -q
    out = os.path.join(tmp, "t2.leviathan")
    rc, _, shown = run_on_tty([LEVCONVERT, HF, "-o", out, "--format", "t2"])
    check(rc == 0 and b"\rlevconvert: quantizing [" in shown and b"\rlevconvert: writing    [" in shown
          and b"] 100%" in shown, f"levconvert on a terminal shows a bar: {rc} {shown[-400:]!r}")
    r = run([LEVCONVERT, HF, "-o", out, "--format", "t2"])
    err = r.stderr.decode()
    check(r.returncode == 0 and "%" not in err and "[" not in err and len(err.splitlines()) == 1,
          f"levconvert to a pipe: one line ({err!r})")
    rc, _, shown = run_on_tty([LEVCONVERT, HF, "-o", out, "--format", "t2", "-q"])
    check(rc == 0 and shown == b"", f"levconvert -q on a terminal: {shown[:200]!r}")

    # --- levrun --chat says why an answer is empty: the bundled model (no chat template) ends "Amen." at once
    if os.path.exists(DEFAULT):
        r = run([LEVRUN, "-m", DEFAULT, "--chat", "--temp", "0", "-t", "1", "-n", "8"], input=b"Amen.\n")
        err = r.stderr.decode()
        check(r.returncode == 0 and "empty answer: the model's first token was end-of-text" in err
              and "no chat template" in err and "--chat-template" in err, f"--chat empty answer: {err!r}")
    r = run([LEVRUN, "-m", model, "--chat", "--chat-template", "zephyr", "-n", "0", "-t", "1"], input=b"Hello\n")
    check(r.returncode == 0 and "-n 0 allows no tokens" in r.stderr.decode(), f"--chat -n 0: {r.stderr!r}")

    # --- issue 19 item 6: one range check of the sampler parameters (the session's, which the element and
    #     Lev.Generator share): NaN and infinity refused with a message naming the parameter; item 12: repeat-last-n
    #     bounded instead of an 8 GiB history
    for opt, name in (("--temp", "temperature"), ("--top-p", "top-p"), ("--min-p", "min-p"),
                      ("--repeat-penalty", "repeat-penalty")):
        for value in ("nan", "inf", "-inf"):
            r = run([LEVRUN, "-m", model, "-p", "Once", "-n", "4", opt, value])
            err = r.stderr.decode()
            check(r.returncode == 2 and f"{name} must be a number from" in err and not r.stdout,
                  f"levrun {opt} {value}: rc {r.returncode} {err[:200]!r}")
    r = run([LEVRUN, "-m", model, "-p", "Once", "-n", "4", "--repeat-last-n", "2147483647"])
    check(r.returncode == 2 and b"repeat-last-n must be a number from 0 to 65536" in r.stderr,
          f"--repeat-last-n 2147483647: {r.returncode} {r.stderr[:200]!r}")
    r = run([LEVRUN, "-m", model, "-p", "Once", "-n", "4", "--repeat-last-n", "65536", "--repeat-penalty", "1.3",
             "-q"])
    check(r.returncode == 0 and r.stdout.startswith(b"Once"), f"--repeat-last-n 65536: {r.stderr[:200]!r}")

    # --- item 16: contexts of 2 to 4 slots work (the default 4 attention sinks shrink to fit), 1 is a usage error;
    #     a directory as adapter gets a plain message
    for n_ctx in ("2", "3", "4"):
        r = run([LEVRUN, "-m", model, "-p", "Once", "-n", "6", "--ctx", n_ctx, "--temp", "0", "-q", "--print-ids"])
        check(r.returncode == 0 and len(r.stdout.split()) == 8, f"--ctx {n_ctx}: {r.returncode} {r.stderr[:200]!r}")
    r = run([LEVRUN, "-m", model, "-p", "Once", "--ctx", "1"])
    check(r.returncode == 2 and b"--ctx must be 0" in r.stderr, f"--ctx 1: {r.stderr[:200]!r}")
    r = run([LEVRUN, "-m", model, "-p", "Once", "--ctx", "3", "--sinks", "3"])
    check(r.returncode == 1 and b"3 attention sinks do not fit a context of 3" in r.stderr,
          f"--sinks 3 --ctx 3: {r.stderr[:200]!r}")
    r = run([LEVRUN, "-m", model, "-p", "Once", "--adapter", tmp])
    check(r.returncode == 1 and r.stderr.decode() == f"levrun: cannot open adapter {tmp}: a directory\n",
          f"a directory as adapter: {r.stderr[:200]!r}")

    # --- item 7: a NUL byte in a prompt or text file is a character, not the end of the text. SentencePiece's byte
    #     fallback (tok512 here) encodes it as the piece <0x00>, id 3 (pieces 3..258 are the bytes)
    nul_text = os.path.join(tmp, "nul.txt")
    with open(nul_text, "wb") as f:
        f.write(b"Once upon\0 a time there was a girl\nShe\0 liked the park\n")
    head = os.path.join(tmp, "head.txt")
    with open(head, "wb") as f:
        f.write(b"Once upon")
    full = run([LEVRUN, "-m", model, "-f", nul_text, "--tokenize"]).stdout.split()
    cut = run([LEVRUN, "-m", model, "-f", head, "--tokenize"]).stdout.split()
    check(len(full) > len(cut) + 8 and full[:len(cut)] == cut and full.count(b"3") == 2,
          f"levrun -f with NUL bytes: {full} vs {cut}")
    r = run([LEVRUN, "-m", model, "-f", nul_text, "-n", "2", "-q", "--temp", "0"])
    check(r.returncode == 0 and r.stdout.startswith(b"Once upon\0 a time there was a girl\nShe\0 liked"),
          f"levrun -f echoes the whole prompt: {r.stdout[:80]!r}")
    r = run([LEVRUN, "-m", model, "-f", nul_text, "-n", "2", "--chat-template", "zephyr"])
    check(r.returncode == 2, "--chat-template without --chat")
    lines_tokens = 0
    for i, line in enumerate((b"Once upon\0 a time there was a girl", b"She\0 liked the park")):
        part = os.path.join(tmp, f"line{i}.txt")
        with open(part, "wb") as f:
            f.write(line)
        lines_tokens += len(run([LEVRUN, "-m", model, "-f", part, "--tokenize"]).stdout.split()) + 1   # + EOS
    for extra, want in ((["--lines"], lines_tokens), ([], len(full))):
        r = run([LEVPPL, "-m", model, "-f", nul_text, "--json", "-t", "1"] + extra)
        got = json.loads(r.stdout)["tokens"] if r.returncode == 0 else -1
        check(got == want, f"levppl {extra} scores the text past its NUL bytes: {got} tokens, want {want}")
    r = run([LEVRUN, "-m", model, "-f", tmp])
    check(r.returncode == 1 and b"not a regular file (a directory)" in r.stderr, f"-f DIR: {r.stderr[:200]!r}")

    # --- item 11: --chat lines end at '\n' only (not at NUL, CR or U+2029); invalid UTF-8 and NUL become U+FFFD, as
    #     in the element, instead of ending the conversation
    def chat(data):
        return run([LEVRUN, "-m", model, "--chat", "--chat-template", "zephyr", "--temp", "0", "-n", "6", "-t", "1"],
                   input=data)
    fffd = "\ufffd".encode()
    odd = chat(b"Once upon\0a time\rthe cat\xe2\x80\xa9sat \xff here\r\nThe dog ran\n")
    same = chat(b"Once upon" + fffd + b"a time\rthe cat\xe2\x80\xa9sat " + fffd + b" here\nThe dog ran\n")
    err = odd.stderr.decode()
    check(odd.returncode == 0 and "2 turns" in err and odd.stdout == same.stdout and len(odd.stdout.split(b"\n")) == 3,
          f"--chat with NUL, CR, U+2029 and invalid UTF-8 in a line: {odd.returncode} {err!r} {odd.stdout!r} "
          f"{same.stdout!r}")

    # --- item 13: --logits-out is written whole or not at all: a bad id in the middle, or `ulimit -f` below the
    #     file's size, leave the previous file as it was and no temporary file
    logits = os.path.join(tmp, "logits.f32")
    with open(logits, "wb") as f:
        f.write(b"previous")
    ids = " ".join(["1"] + ["403"] * 63)
    r = run([LEVRUN, "-m", model, "--ids", ids + " 99999", "--logits-out", logits, "-t", "1"])
    check(r.returncode == 1 and open(logits, "rb").read() == b"previous",
          f"--logits-out after a bad id: {r.returncode} {os.path.getsize(logits)} bytes {r.stderr[:200]!r}")
    def fsize_limit():
        import resource
        resource.setrlimit(resource.RLIMIT_FSIZE, (100000, 100000))
    r = run([LEVRUN, "-m", model, "--ids", ids, "--logits-out", logits, "-t", "1"], preexec_fn=fsize_limit)
    check(r.returncode == 1 and open(logits, "rb").read() == b"previous" and b"too large" in r.stderr.lower(),
          f"--logits-out past ulimit -f: {r.returncode} {os.path.getsize(logits)} bytes {r.stderr[:200]!r}")
    r = run([LEVRUN, "-m", model, "--ids", ids, "--logits-out", logits, "-t", "1"])
    check(r.returncode == 0 and os.path.getsize(logits) == 64 * 512 * 4, f"--logits-out: {r.stderr[:200]!r}")
    leftovers = [f for f in os.listdir(tmp) if ".tmp-" in f]
    check(not leftovers, f"no temporary logits files left: {leftovers}")
    link = os.path.join(tmp, "logits-link")
    os.symlink(logits, link)
    r = run([LEVRUN, "-m", model, "--ids", "1 403", "--logits-out", link, "-t", "1"])
    check(r.returncode == 0 and os.path.islink(link) and os.path.getsize(logits) == 2 * 512 * 4,
          f"--logits-out through a symlink writes its target, the link stays: {r.stderr[:200]!r}")
    r = run([LEVRUN, "-m", model, "--ids", "1 403", "--logits-out", "/dev/stdout", "-t", "1"])
    check(r.returncode == 0 and len(r.stdout) == 2 * 512 * 4, f"--logits-out /dev/stdout: {len(r.stdout)} bytes")
finally:
    shutil.rmtree(tmp)

finish()
