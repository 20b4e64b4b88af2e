#!/usr/bin/env python3
"""test_cli.py: levconvert and levrun as a user runs them: outputs against fixture references, exit codes, no
half-written files. Usage: test_cli.py LEVCONVERT LEVRUN (fixtures from $LEV_FIXTURES)."""
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

from levtest import check, finish, fixture

LEVCONVERT, LEVRUN = sys.argv[1], sys.argv[2]
LEVPPL = sys.argv[3] if len(sys.argv) > 3 else None


# a cross build's tests run the programs through qemu-user (tests/meson.build sets it from the cross file)
EXE_WRAPPER = os.environ.get("LEV_TEST_EXE_WRAPPER", "").split()


def run(args, **kw):
    return subprocess.run(EXE_WRAPPER + list(args), capture_output=True, timeout=300 * (4 if EXE_WRAPPER else 1),
                          **kw)


tmp = tempfile.mkdtemp(prefix="lev-cli-")
try:
    # --- conversions used below
    stories = os.path.join(tmp, "stories.leviathan")
    r = run([LEVCONVERT, fixture("stories260K/stories260K.bin"), "--tokenizer",
             fixture("stories260K/tok512.bin"), "-o", stories])
    check(r.returncode == 0 and os.path.exists(stories), f"convert llama2.c: {r.stderr.decode()}")
    hf = os.path.join(tmp, "hf.leviathan")
    r = run([LEVCONVERT, fixture("hf/stories260K-llama"), "-o", hf])
    check(r.returncode == 0, f"convert hf: {r.stderr.decode()}")

    # --- teacher-forced logits through --ids / --logits-out against llama.cpp's
    seq_b = "1 403 407 261 378 432 383 286 261 376 298 315 421 395 317 426 338 401 396 267 337 410 408 419 292 " \
            "411 322 265 282 295 433 426 385 328 432 358 394 261 370 432 352 266 268 388 426 338 391 266 267 " \
            "337 335 312 432 398 312 286 267 414 270 333 415 426 13 438"
    out = os.path.join(tmp, "logits.f32")
    r = run([LEVRUN, "-m", hf, "--ids", seq_b, "--logits-out", out, "-t", "2"])
    check(r.returncode == 0, f"levrun --logits-out: {r.stderr.decode()}")
    got = open(out, "rb").read() if os.path.exists(out) else b""
    ref = open(fixture("hf/stories260K-llama/expected/logits_tf64.f32"), "rb").read()
    check(len(got) == len(ref) == 64 * 512 * 4, "logits file size")
    if len(got) == len(ref):
        n = len(ref) // 4
        diff = max(abs(a - b) for a, b in zip(struct.unpack(f"<{n}f", got), struct.unpack(f"<{n}f", ref)))
        print(f"levrun --logits-out vs llama.cpp: max |diff| = {diff:.3g}")
        check(diff <= 1e-4, f"logits differ by {diff}")

    # --- an untied output head (lm_head.weight, tie_word_embeddings false) holding the embedding's values must give
    #     the tied model's reference logits
    untied = os.path.join(tmp, "untied")
    shutil.copytree(fixture("hf/stories260K-llama"), untied)
    cfg = json.load(open(os.path.join(untied, "config.json")))
    cfg["tie_word_embeddings"] = False
    json.dump(cfg, open(os.path.join(untied, "config.json"), "w"))
    st = open(os.path.join(untied, "model.safetensors"), "rb").read()
    hlen = struct.unpack("<Q", st[:8])[0]
    header = json.loads(st[8:8 + hlen])
    data = st[8 + hlen:]
    b, e = header["model.embed_tokens.weight"]["data_offsets"]
    header["lm_head.weight"] = dict(header["model.embed_tokens.weight"], data_offsets=[len(data), len(data) + e - b])
    hb = json.dumps(header).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(os.path.join(untied, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + data + data[b:e])
    untied_model = os.path.join(tmp, "untied.leviathan")
    r = run([LEVCONVERT, untied, "-o", untied_model])
    check(r.returncode == 0, f"convert untied: {r.stderr.decode()}")
    r = run([LEVRUN, "-m", untied_model, "--ids", seq_b, "--logits-out", out, "-t", "1"])
    got = open(out, "rb").read() if r.returncode == 0 else b""
    if len(got) == len(ref):
        n = len(ref) // 4
        diff = max(abs(a - b) for a, b in zip(struct.unpack(f"<{n}f", got), struct.unpack(f"<{n}f", ref)))
        print(f"untied output head vs llama.cpp's tied logits: max |diff| = {diff:.3g}")
        check(diff <= 1e-4, f"untied logits differ by {diff}")
    else:
        check(False, f"untied model: {r.stderr.decode()}")

    # --- greedy ids through --print-ids against run.c (prompt encoded by our tokenizer)
    cases = json.load(open(fixture("stories260K/expected/greedy_n64.json")))
    for case in cases:
        if not case["prompt"]:
            continue
        n_gen = case["steps"] - len(case["prompt_tokens"]) + 1
        r = run([LEVRUN, "-m", stories, "-p", case["prompt"], "-n", str(n_gen), "--temp", "0", "--print-ids",
                 "-q"])
        ids = [int(t) for t in r.stdout.split()]
        check(r.returncode == 0 and ids == case["tokens"], f"greedy ids for {case['prompt']!r}: {ids[:12]}...")

    # --- text output echoes the prompt and matches run.c's text
    case = [c for c in cases if c["prompt"] == "Lily"][0]
    r = run([LEVRUN, "-m", stories, "-p", "Lily", "-n", "30", "--temp", "0", "-q"])
    text = r.stdout.decode().rstrip("\n")
    check(r.returncode == 0 and len(text) > 40 and case["stdout_text"].startswith(text),
          f"text output {text[:80]!r} vs run.c {case['stdout_text'][:80]!r}")

    # --- sampling: same seed, same text; another seed, other text
    def sample(seed):
        return run([LEVRUN, "-m", stories, "-p", "Once upon a time", "-n", "60", "--temp", "1.0",
                    "--seed", str(seed), "-q", "--print-ids"]).stdout
    check(sample(7) == sample(7), "same seed gives the same ids")
    check(sample(7) != sample(8), "different seeds give different ids")

    # --- tokenizer-only file and --tokenize against SentencePiece's ids
    vocab = os.path.join(tmp, "llama2-vocab.leviathan")
    r = run([LEVCONVERT, "--vocab-only", fixture("tokenizers/llama2/tokenizer.model"), "-o", vocab])
    check(r.returncode == 0, f"--vocab-only: {r.stderr.decode()}")
    extra = json.load(open(fixture("tokenizers/vectors-extra/llama2-spm.json")))
    n_ok = n_cases = 0
    for c in extra["cases"]:
        if "\0" in c["text"]:
            continue  # a NUL cannot be passed in argv
        n_cases += 1
        r = run([LEVRUN, "-m", vocab, "-p", c["text"], "--tokenize"])
        ids = [int(t) for t in r.stdout.split()]
        if r.returncode == 0 and ids == c["ids"]:
            n_ok += 1
        else:
            print(f"--tokenize {c['text']!r}: {ids} != {c['ids']}")
    print(f"--tokenize on a tokenizer-only file: {n_ok}/{n_cases} SentencePiece cases")
    check(n_ok == n_cases and n_cases > 20, "--tokenize cases")
    r = run([LEVRUN, "-m", vocab, "-p", "Hello", "--tokenize", "--bos"])
    check(r.stdout.split()[:1] == [b"1"], "--bos prepends BOS")
    r = run([LEVRUN, "-m", vocab, "-p", "Hello"])
    check(r.returncode == 1 and b"tokenizer" in r.stderr, "generation on a tokenizer-only file is refused")

    # --- generation past the context: 2,000 tokens with --ctx 128, flat memory. The peak RSS is levrun's own,
    #     VmHWM of /proc/PID/status sampled while it runs: rusage's ru_maxrss is no use here, as RUSAGE_CHILDREN gives
    #     the largest of every child so far (levconvert's above) and even one child's (wait4) starts from this
    #     Python's RSS, which Linux carries through fork and exec; both hid any growth of levrun
    def own_peak_rss(args, wrapper=()):
        """Runs args (through wrapper); returns its exit code, stdout, stderr and its own peak RSS in KiB (the last
        VmHWM read)."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            p = subprocess.Popen(list(wrapper) + list(args), stdout=out, stderr=err)
            hwm = 0
            while p.poll() is None:
                try:
                    with open(f"/proc/{p.pid}/status") as f:
                        for line in f:
                            if line.startswith("VmHWM:"):
                                hwm = max(hwm, int(line.split()[1]))
                except OSError:
                    pass
                time.sleep(0.002)
            out.seek(0)
            err.seek(0)
            return p.returncode, out.read(), err.read(), hwm

    def peak_rss(n):
        rc, out, err, rss = own_peak_rss([LEVRUN, "-m", stories, "-n", str(n), "--ctx", "128", "--ignore-eos",
                                          "--temp", "0.9", "--seed", "3", "-q", "-t", "1", "--print-ids"], EXE_WRAPPER)
        check(rc == 0 and rss > 0, f"generate {n} tokens: {err.decode()}")
        return rss, out
    rss_short, _ = peak_rss(200)
    rss_long, text = peak_rss(2000)
    print(f"levrun's own peak RSS: after 200 tokens {rss_short} KiB, after 2000 tokens {rss_long} KiB")
    # the measurement sees 13 MB of growth in a child after a bigger one ran (RUSAGE_CHILDREN saw none)
    touch = "import time; b = bytearray(%d << 20); b[::4096] = b'x' * len(b[::4096]); time.sleep(0.3)"
    big, base, grown = (own_peak_rss([sys.executable, "-c", touch % mb])[3] for mb in (64, 0, 13))
    check(grown - base >= 12 * 1024 and big > grown, f"per-child peak RSS: {base} / {grown} KiB after {big} KiB")
    # (under qemu-user the RSS is the emulator's, its translated code included: the flat-memory check is native only)
    check(EXE_WRAPPER or rss_long - rss_short < 1024, "memory grows with generation length")
    check(len(text.split()) == 2001, "2,000 tokens generated after BOS")
    check(len(set(text.split()[-500:])) > 50, "the text after the window slid is not stuck on a few tokens")

    # --- --chat: one user turn per stdin line, rendered with the template and answered; earlier turns stay in the
    #     context (greedy, so deterministic): a conversation's first answer is the answer to that line alone, its
    #     second answer differs from the answer to the second line alone
    def chat(lines, *extra):
        return run([LEVRUN, "-m", stories, "--chat", "--chat-template", "zephyr", "--temp", "0", "-n", "16", "-t", "2",
                    *extra], input="".join(line + "\n" for line in lines).encode())
    both, first, second = chat(["Once upon a time", "The cat sat"]), chat(["Once upon a time"]), chat(["The cat sat"])
    check(both.returncode == first.returncode == second.returncode == 0, f"--chat: {both.stderr.decode()!r}")
    err = both.stderr.decode()
    check("chat template zephyr" in err and "2 turns" in err, f"--chat stderr: {err!r}")
    check(first.stdout and both.stdout.startswith(first.stdout.rstrip(b"\n")),
          f"--chat first answer {first.stdout!r} not the start of {both.stdout!r}")
    rest = both.stdout[len(first.stdout.rstrip(b"\n")):].strip()
    check(rest and rest != second.stdout.strip(), f"--chat second answer {rest!r} ignores the first turn")
    for args, want in [(["--chat", "-p", "x"], "--chat reads the conversation from stdin"),
                       (["--system", "x"], "--system and --chat-template need --chat")]:
        r = run([LEVRUN, "-m", stories, *args], input=b"")
        check(r.returncode == 2 and want in r.stderr.decode(), f"levrun {args}: rc {r.returncode} {r.stderr.decode()!r}")

    # --- levppl: its perplexity equals the one computed here from levrun's teacher-forced logits
    if LEVPPL:
        text = "Once upon a time, there was a little girl named Lily. She liked to play in the park."
        tf = os.path.join(tmp, "text.txt")
        with open(tf, "w") as f:
            f.write(text)
        ids = run([LEVRUN, "-m", stories, "-p", text, "--tokenize"]).stdout.split()
        run([LEVRUN, "-m", stories, "--ids", "1 " + " ".join(x.decode() for x in ids), "--logits-out", out, "-q"])
        raw = open(out, "rb").read()
        rows = [struct.unpack_from("<512f", raw, 4 * 512 * p) for p in range(len(ids))]
        nll = 0.0
        for p, t in enumerate(ids):
            row = rows[p]
            m = max(row)
            nll -= row[int(t)] - m - math.log(sum(math.exp(v - m) for v in row))
        want = math.exp(nll / len(ids))
        r = run([LEVPPL, "-m", stories, "-f", tf, "--json", "-t", "1"])
        got = json.loads(r.stdout)["ppl"] if r.returncode == 0 else -1
        print(f"levppl {got:.5f} vs perplexity from levrun's logits {want:.5f} over {len(ids)} tokens")
        check(abs(got - want) <= 1e-4 * want, "levppl perplexity")
        r = run([LEVPPL, "-m", stories])
        check(r.returncode == 2, "levppl without -f exits 2")

    # --- small-memory devices (docs/embedded.md): --memory's KV cache bytes are those of the shape in llama2.c's
    #     checkpoint header (7 int32: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len) for each
    #     --kv type, the model file is its size on disk, and --memory-limit refuses a run that needs more
    with open(fixture("stories260K/stories260K.bin"), "rb") as f:
        dim, _, n_layers, n_heads, n_kv_heads, _, _ = struct.unpack("<7i", f.read(28))
    kv_dim = n_kv_heads * (dim // n_heads)
    for kv, per_value, scales in (("f32", 4, 0), ("f16", 2, 0), ("q8", 1, 2 * n_layers * 100 * n_kv_heads * 4)):
        r = run([LEVRUN, "-m", stories, "--memory", "--kv", kv, "--ctx", "100"])
        total, weights, kv_bytes, scratch = (int(x) for x in r.stdout.split())
        check(r.returncode == 0 and kv_bytes == 2 * n_layers * 100 * kv_dim * per_value + scales,
              f"--memory --kv {kv}: KV cache {kv_bytes} bytes")
        check(weights == os.path.getsize(stories) and total == weights + kv_bytes + scratch and 0 < scratch < 1 << 20,
              f"--memory --kv {kv}: {r.stdout.decode()}")
    r = run([LEVRUN, "-m", stories, "--memory-limit", str(total - 1), "--kv", "q8", "--ctx", "100", "-p", "Lily"])
    check(r.returncode == 1 and b"more than the memory limit" in r.stderr, "--memory-limit below the estimate refuses")
    r = run([LEVRUN, "-m", stories, "--memory-limit", str(total), "--kv", "q8", "--ctx", "100", "-p", "Lily",
             "-n", "8", "--temp", "0"])
    check(r.returncode == 0 and r.stdout.startswith(b"Lily"), f"--memory-limit at the estimate runs: {r.stderr}")
    for bad in ("--memory-limit=12Q", "--memory-limit=0", "--kv=q4"):
        r = run([LEVRUN, "-m", stories, bad, "-p", "Lily"])
        check(r.returncode == 2, f"{bad} is a usage error")

    # --- bad arguments: a one-line usage error pointing at --help and exit code 2
    for args in (["-m"], ["-m", stories, "--top-p", "2"], ["-m", stories, "-n", "-5"],
                 ["-m", stories, "--bogus"], ["-m", stories, "--ids", "1 x 3"], ["-m", stories, "--logits-out", "f"]):
        r = run([LEVRUN] + args)
        check(r.returncode == 2 and b"see levrun --help" in r.stderr and r.stderr.count(b"\n") == 1,
              f"levrun {args} exits 2 with a usage error ({r.returncode}, {r.stderr[:200]!r})")
    for args in ([], ["x"], [fixture("hf/stories260K-llama")],
                 [fixture("hf/stories260K-llama"), "-o", "y", "--format", "q3"]):
        r = run([LEVCONVERT] + args)
        check(r.returncode == 2, f"levconvert {args} exits 2 ({r.returncode})")

    # --- bad model files and input: message and exit code 1
    junk = os.path.join(tmp, "junk.leviathan")
    with open(junk, "wb") as f:
        f.write(os.urandom(4096))
    data = open(hf, "rb").read()
    trunc = os.path.join(tmp, "trunc.leviathan")
    with open(trunc, "wb") as f:
        f.write(data[: len(data) // 2])
    for path in (junk, trunc, os.path.join(tmp, "missing.leviathan")):
        r = run([LEVRUN, "-m", path, "-p", "hi"])
        check(r.returncode == 1 and len(r.stderr) > 20 and b"Usage" not in r.stderr,
              f"bad model {os.path.basename(path)}: exit {r.returncode}, {r.stderr[:100]!r}")
    r = run([LEVRUN, "-m", stories, "-p", b"caf\xe9 ok"])
    check(r.returncode == 1 and b"UTF-8" in r.stderr.upper(), f"invalid UTF-8 prompt refused: {r.stderr[:120]!r}")

    # --- bad checkpoints: message, exit code 1, and no output file left behind
    def bad_checkpoint(name, mutate):
        d = os.path.join(tmp, name)
        shutil.copytree(fixture("hf/stories260K-llama"), d)
        mutate(d)
        out = os.path.join(tmp, name + ".leviathan")
        r = run([LEVCONVERT, d, "-o", out])
        leftovers = [f for f in os.listdir(tmp) if f.startswith(name + ".leviathan")]
        check(r.returncode == 1 and r.stderr and not leftovers,
              f"{name}: exit {r.returncode}, leftovers {leftovers}, {r.stderr[:120]!r}")
        print(f"{name}: {r.stderr.decode().strip()}")

    def edit_config(key, value):
        def f(d):
            p = os.path.join(d, "config.json")
            cfg = json.load(open(p))
            cfg[key] = value
            json.dump(cfg, open(p, "w"))
        return f

    bad_checkpoint("no-config", lambda d: os.remove(os.path.join(d, "config.json")))
    bad_checkpoint("unknown-arch", edit_config("architectures", ["MambaForCausalLM"]))
    bad_checkpoint("shape-mismatch", edit_config("intermediate_size", 180))
    bad_checkpoint("truncated-weights", lambda d: os.truncate(os.path.join(d, "model.safetensors"), 100000))
    out = os.path.join(tmp, "notok.leviathan")
    r = run([LEVCONVERT, fixture("stories260K/stories260K.bin"), "-o", out])
    check(r.returncode == 1 and not os.path.exists(out), "llama2.c checkpoint without a tokenizer is refused")
finally:
    shutil.rmtree(tmp)

finish()
