#!/usr/bin/env python3
"""test_models.py: models used without a conversion step (issue 14 items 3, 4): levrun/levppl/levbench -m with a GGUF
file, a Hugging Face directory and hf:ORG/NAME against a stand-in hub on 127.0.0.1 (hf_hub_server.py): a download
into the Hugging Face cache layout, reuse of a cache huggingface_hub filled, offline mode, an interrupted download
resumed, a corrupted one refused, 401 and 404 with clear messages; the conversion cache (one conversion for two
processes at once, nothing partial left behind, bad input named); levtextgen's progress messages and Lev.Model.new
when python3-gi is there. References: llama.cpp's greedy ids on stories260K (tests/data/hf/stories260K-llama/
expected) and the fixtures' sha256 in tests/data/SHA256SUMS.
Usage: test_models.py LEVRUN LEVPPL LEVBENCH"""
import fcntl
import hashlib
import json
import os
import pty
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from levtest import check, finish, fixture, run  # noqa: E402
import hf_hub_server  # noqa: E402

LEVRUN, LEVPPL, LEVBENCH = sys.argv[1:4]
COMMIT = "5d2f0e3c2ab1b5c0f8a6a1b4c9e7d3f2a1b0c9d8"
GATED_COMMIT = "0f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6"


def sha256_sums():
    """The fixtures' sha256 from tests/data/SHA256SUMS (path relative to tests/data -> hex)."""
    sums = {}
    for line in open(fixture("SHA256SUMS")):
        h, p = line.split()
        sums[p[2:] if p.startswith("./") else p] = h
    return sums


def file_sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def cache_files(cache):
    """The files of the model cache's models folder (none when it does not exist)."""
    d = os.path.join(cache, "leviathan", "models")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def models_in(cache):
    return [n for n in cache_files(cache) if n.endswith(".leviathan")]


def partial_in(cache):
    """Anything in the model cache that is neither a finished model nor a lock file."""
    return [n for n in cache_files(cache) if not n.endswith(".leviathan") and not n.endswith(".lock")]


def main():
    tmp = tempfile.mkdtemp(prefix="lev-models-")
    sums = sha256_sums()
    stories_dir = fixture("hf/stories260K-llama")
    gguf = fixture("gguf/stories260K-f16.gguf")
    cases = json.load(open(fixture("hf/stories260K-llama/expected/greedy_n64.json")))
    case = [c for c in cases if c["prompt"] == "Once upon a time"][0]
    n_gen = 16
    want_ids = case["tokens"][:len(case["prompt_tokens"]) + n_gen]

    hub = hf_hub_server.Hub()
    ckpt_files = hf_hub_server.read_dir(stories_dir)
    hub.add_repo("test/stories260K", ckpt_files, COMMIT)
    hub.add_repo("test/gguf", {"stories260K-f16.gguf": open(gguf, "rb").read(), "README.md": b"# gguf\n"}, COMMIT)
    hub.add_repo("test/gated", ckpt_files, GATED_COMMIT, token="hf_secret_token")
    endpoint = hub.start()
    model_sha = sums["hf/stories260K-llama/model.safetensors"]

    def env(name, **extra):
        """An environment with its own Hugging Face cache and model cache under tmp/name."""
        e = dict(os.environ)
        for k in ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_CACHE", "HF_TOKEN_PATH"):
            e.pop(k, None)
        e.update(HF_ENDPOINT=endpoint, HF_HOME=os.path.join(tmp, name, "hf"),
                 XDG_CACHE_HOME=os.path.join(tmp, name, "cache"))
        e.update(extra)
        return e

    def levrun(model, e, n=n_gen):
        r = run([LEVRUN, "-m", model, "-p", "Once upon a time", "-n", str(n), "--temp", "0", "--print-ids", "-q"],
                env=e, timeout=120)
        try:
            ids = [int(t) for t in r.stdout.split()]
        except ValueError:
            ids = None
        return r, ids

    def repo_dir(e, repo="test/stories260K"):
        return os.path.join(e["HF_HOME"], "hub", "models--" + repo.replace("/", "--"))

    try:
        # --- a local Hugging Face directory and a local GGUF: converted once, then mapped from the cache
        e = env("local")
        r, ids = levrun(stories_dir, e)
        check(r.returncode == 0 and ids == want_ids, f"HF directory: greedy ids {ids} vs llama.cpp's {want_ids} "
              f"({r.stderr.decode()[-300:]})")
        check(len(models_in(e["XDG_CACHE_HOME"])) == 1 and not partial_in(e["XDG_CACHE_HOME"]),
              f"one converted model in the cache: {cache_files(e['XDG_CACHE_HOME'])}")
        first = models_in(e["XDG_CACHE_HOME"])
        r, ids = levrun(stories_dir, e)
        check(r.returncode == 0 and ids == want_ids and models_in(e["XDG_CACHE_HOME"]) == first,
              "the second run maps the cached file")
        r, ids_gguf = levrun(gguf, e)
        check(r.returncode == 0 and ids_gguf and ids_gguf[:len(case["prompt_tokens"])] == case["prompt_tokens"]
              and len(models_in(e["XDG_CACHE_HOME"])) == 2, f"GGUF file: {r.stderr.decode()[-300:]}")
        # a copy of the same bytes elsewhere is the same content: no new conversion
        copy = os.path.join(tmp, "copy.gguf")
        shutil.copy(gguf, copy)
        r, ids_copy = levrun(copy, e)
        check(r.returncode == 0 and ids_copy == ids_gguf and len(models_in(e["XDG_CACHE_HOME"])) == 2,
              "a copy of the GGUF is found in the cache by its content")
        # another conversion format is another cached file; a bad one is a usage error
        r = run([LEVRUN, "-m", gguf, "--convert-format", "Q8", "-p", "Once upon a time", "-n", "4", "--temp", "0",
                 "-q"], env=e, timeout=120)
        check(r.returncode == 0 and len(models_in(e["XDG_CACHE_HOME"])) == 3, f"--convert-format q8: "
              f"{r.stderr.decode()[-300:]}")
        r = run([LEVRUN, "-m", gguf, "--convert-format", "q9", "-p", "x"], env=e, timeout=120)
        check(r.returncode == 2 and b"--convert-format" in r.stderr, f"--convert-format q9: {r.stderr!r}")
        r = run([LEVRUN, "-m", gguf, "-p", "x"], env=dict(e, LEV_CONVERT_FORMAT="q9"), timeout=120)
        check(r.returncode == 1 and b"LEV_CONVERT_FORMAT" in r.stderr, f"LEV_CONVERT_FORMAT=q9: {r.stderr!r}")
        # levppl and levbench take the same sources
        text = os.path.join(tmp, "text.txt")
        with open(text, "w") as f:
            f.write("Once upon a time, there was a little girl named Lily. She loved to play outside.\n")
        r = run([LEVPPL, "-m", gguf, "-f", text, "-c", "16"], env=e, timeout=120)
        check(r.returncode == 0 and b"perplexity" in (r.stdout + r.stderr).lower(),
              f"levppl -m GGUF: {r.returncode} {r.stderr.decode()[-300:]}")
        r = run([LEVBENCH, "-m", stories_dir, "-p", "tg2", "-r", "1", "-t", "1"], env=e, timeout=120)
        check(r.returncode == 0, f"levbench -m HF directory: {r.returncode} {r.stderr.decode()[-300:]}")

        # --- bad input: the file is named, nothing is left in the cache
        e = env("bad")
        trunc = os.path.join(tmp, "truncated.gguf")
        with open(trunc, "wb") as f:
            f.write(open(gguf, "rb").read()[:100000])
        r, _ = levrun(trunc, e)
        err = r.stderr.decode()
        check(r.returncode != 0 and "truncated.gguf" in err and "truncated" in err.replace("truncated.gguf", ""),
              f"truncated GGUF: {err!r}")
        baddir = os.path.join(tmp, "baddir")
        os.mkdir(baddir)
        with open(os.path.join(baddir, "config.json"), "w") as f:
            f.write("{ not json")
        r, _ = levrun(baddir, e)
        check(r.returncode != 0 and "config.json" in r.stderr.decode(), f"bad config.json: {r.stderr.decode()!r}")
        check(not models_in(e["XDG_CACHE_HOME"]) and not partial_in(e["XDG_CACHE_HOME"]),
              f"nothing in the cache after bad input: {cache_files(e['XDG_CACHE_HOME'])}")
        # a directory without config.json and a missing file are the engine's to refuse, as before
        r, _ = levrun(os.path.join(tmp, "missing.leviathan"), e)
        check(r.returncode != 0 and "missing.leviathan" in r.stderr.decode(), "a missing file is named")

        # --- two processes converting the same model at once: one conversion, both runs fine. The lock is held
        # here first, so that both must wait on it.
        name = first[0]
        e = env("concurrent")
        models = os.path.join(e["XDG_CACHE_HOME"], "leviathan", "models")
        os.makedirs(models)
        stale = os.path.join(models, name + ".Ab3dEf")   # a temporary file left by a process that died
        open(stale, "wb").write(b"partial")
        lock = open(os.path.join(models, name[:-len(".leviathan")] + ".lock"), "w")
        fcntl.flock(lock, fcntl.LOCK_EX)
        args = ["-p", "Once upon a time", "-n", str(n_gen), "--temp", "0", "--print-ids", "-q"]
        procs = [subprocess.Popen([LEVRUN, "-m", stories_dir] + args, env=e, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE) for _ in range(2)]
        time.sleep(1.0)
        check(all(p.poll() is None for p in procs) and not models_in(e["XDG_CACHE_HOME"]),
              "both processes wait for the lock")
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
        outs = [p.communicate(timeout=120) for p in procs]
        got = [[int(t) for t in o[0].split()] for o in outs]
        check(all(p.returncode == 0 for p in procs) and got == [want_ids, want_ids],
              f"both runs give llama.cpp's ids: {[o[1].decode()[-200:] for o in outs]}")
        check(models_in(e["XDG_CACHE_HOME"]) == [name] and not partial_in(e["XDG_CACHE_HOME"]),
              f"one conversion, the stale temporary removed: {cache_files(e['XDG_CACHE_HOME'])}")
        # and without a lock held by anyone: four at once
        e = env("concurrent2")
        procs = [subprocess.Popen([LEVRUN, "-m", gguf] + args, env=e, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE) for _ in range(4)]
        outs = [p.communicate(timeout=120) for p in procs]
        check(all(p.returncode == 0 for p in procs) and len({o[0] for o in outs}) == 1
              and len(models_in(e["XDG_CACHE_HOME"])) == 1 and not partial_in(e["XDG_CACHE_HOME"]),
              f"four processes at once: {[p.returncode for p in procs]} {cache_files(e['XDG_CACHE_HOME'])}")

        # --- progress on a terminal only
        e = env("tty")
        master, slave = pty.openpty()
        loud = args[:-1]                                 # without -q
        p = subprocess.Popen([LEVRUN, "-m", gguf] + loud, env=e, stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        p.communicate(timeout=120)
        tty_out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            tty_out += chunk
        os.close(master)
        check(b"converting" in tty_out, f"progress on a terminal: {tty_out!r}")
        e = env("notty")
        r = run([LEVRUN, "-m", gguf] + loud, env=e, timeout=120)
        check(r.returncode == 0 and b"converting" not in r.stderr,
              f"no progress when stderr is not a terminal: {r.stderr!r}")

        # --- hf:ORG/NAME: a download into the Hugging Face cache layout
        e = env("hub")
        hub.requests()
        r, ids = levrun("hf:test/stories260K", e)
        check(r.returncode == 0 and ids == want_ids, f"hf: download: ids {ids} ({r.stderr.decode()[-400:]})")
        rd = repo_dir(e)
        blob = os.path.join(rd, "blobs", model_sha)
        check(os.path.isfile(blob) and file_sha256(blob) == model_sha, "model.safetensors stored as blobs/<sha256>")
        snap = os.path.join(rd, "snapshots", COMMIT)
        link = os.path.join(snap, "model.safetensors")
        check(os.path.islink(link) and os.readlink(link) == "../../blobs/" + model_sha,
              f"snapshots/<commit>/model.safetensors -> ../../blobs/<sha256>: {os.path.islink(link)}")
        for fn in ("config.json", "tokenizer.model", "tokenizer_config.json"):
            p_ = os.path.join(snap, fn)
            check(os.path.islink(p_) and file_sha256(p_) == sums["hf/stories260K-llama/" + fn],
                  f"{fn} in the snapshot with the fixture's sha256")
        check(open(os.path.join(rd, "refs", "main")).read().strip() == COMMIT, "refs/main holds the commit")
        check(os.path.isfile(os.path.join(rd, ".no_exist", COMMIT, "tokenizer.json")),
              ".no_exist records the files the repository does not have")
        check(not [f for f in os.listdir(os.path.join(rd, "blobs")) if f.endswith(".incomplete")],
              "no .incomplete left")
        log = hub.requests()
        cdn = [x for x in log if x[1].startswith("/cdn/")]
        check(cdn and not any(x[3] for x in cdn), "the CDN is asked without Authorization")
        # again: HEADs only, no bytes fetched again
        r, ids = levrun("hf:test/stories260K", e)
        log = hub.requests()
        check(r.returncode == 0 and ids == want_ids and not [x for x in log if x[0] == "GET"],
              f"a second run fetches nothing: {[x[:2] for x in log if x[0] == 'GET']}")
        # pinned to the commit: no request at all
        r, ids = levrun(f"hf:test/stories260K@{COMMIT}", e)
        check(r.returncode == 0 and ids == want_ids and not hub.requests(), "hf:...@COMMIT in the cache: no request")

        # --- offline: the cache alone (the model cache emptied, so the snapshot is converted again)
        shutil.rmtree(os.path.join(e["XDG_CACHE_HOME"], "leviathan", "models"))
        r, ids = levrun("hf:test/stories260K", dict(e, HF_HUB_OFFLINE="1"))
        check(r.returncode == 0 and ids == want_ids and not hub.requests(), f"HF_HUB_OFFLINE=1 from the cache "
              f"({r.stderr.decode()[-300:]})")
        r, _ = levrun("hf:test/gguf:stories260K-f16.gguf", dict(e, HF_HUB_OFFLINE="1"))
        err = r.stderr.decode()
        check(r.returncode != 0 and "HF_HUB_OFFLINE" in err and "not in the Hugging Face cache" in err
              and not hub.requests(), f"offline, not cached: {err!r}")

        # --- a cache as huggingface_hub leaves it (written here by its documented layout): nothing downloaded
        e = env("prefilled")
        rd = repo_dir(e)
        os.makedirs(os.path.join(rd, "blobs"))
        os.makedirs(os.path.join(rd, "snapshots", COMMIT))
        os.makedirs(os.path.join(rd, "refs"))
        open(os.path.join(rd, "refs", "main"), "w").write(COMMIT)
        for fn, data in ckpt_files.items():
            etag = (hashlib.sha256(data).hexdigest() if fn.endswith(".safetensors")
                    else hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest())
            open(os.path.join(rd, "blobs", etag), "wb").write(data)
            os.symlink("../../blobs/" + etag, os.path.join(rd, "snapshots", COMMIT, fn))
        r, ids = levrun("hf:test/stories260K", e)
        log = hub.requests()
        check(r.returncode == 0 and ids == want_ids and not [x for x in log if x[0] == "GET"],
              f"huggingface_hub's cache reused: {[x[:2] for x in log if x[0] == 'GET']}")

        # --- a download cut off half way keeps its .incomplete file; the next run resumes it with a Range request
        e = env("resume")
        hub.interrupt.add(model_sha)
        r, _ = levrun("hf:test/stories260K", e)
        err = r.stderr.decode()
        inc = os.path.join(repo_dir(e), "blobs", model_sha + ".incomplete")
        size_inc = os.path.getsize(inc) if os.path.exists(inc) else 0
        full = len(ckpt_files["model.safetensors"])
        check(r.returncode != 0 and "model.safetensors" in err and "resume" in err and 0 < size_inc < full,
              f"interrupted download: rc {r.returncode}, {err!r}, .incomplete {size_inc} of {full}")
        check(not models_in(e["XDG_CACHE_HOME"]) and not partial_in(e["XDG_CACHE_HOME"]),
              "nothing converted after the interrupted download")
        hub.requests()
        r, ids = levrun("hf:test/stories260K", e)
        log = hub.requests()
        ranges = [x[2] for x in log if x[0] == "GET" and x[1].startswith("/cdn/" + model_sha)]
        check(r.returncode == 0 and ids == want_ids and ranges == [f"bytes={size_inc}-"],
              f"resumed with Range bytes={size_inc}-: {ranges} ({r.stderr.decode()[-300:]})")
        blob = os.path.join(repo_dir(e), "blobs", model_sha)
        check(os.path.isfile(blob) and file_sha256(blob) == model_sha and not os.path.exists(inc),
              "the resumed file has the fixture's sha256")

        # --- a corrupted transfer is refused and removed
        e = env("corrupt")
        hub.corrupt.add(model_sha)
        r, _ = levrun("hf:test/stories260K", e)
        hub.corrupt.discard(model_sha)
        err = r.stderr.decode()
        blobs = os.path.join(repo_dir(e), "blobs")
        check(r.returncode != 0 and "model.safetensors" in err and "corrupt" in err and model_sha in err,
              f"wrong checksum refused: {err!r}")
        check(not [f for f in os.listdir(blobs) if f.startswith(model_sha)] and not models_in(e["XDG_CACHE_HOME"])
              and not partial_in(e["XDG_CACHE_HOME"]), "nothing of the corrupt download kept")

        # --- 404: a file, a revision; a repository without config.json
        e = env("errors")
        r, _ = levrun("hf:test/gguf:missing.gguf", e)
        err = r.stderr.decode()
        check(r.returncode != 0 and "missing.gguf not found" in err and "404" in err, f"404 file: {err!r}")
        r, _ = levrun("hf:test/stories260K@nosuch", e)
        err = r.stderr.decode()
        check(r.returncode != 0 and "revision nosuch not found" in err, f"404 revision: {err!r}")
        r, _ = levrun("hf:test/gguf", e)
        err = r.stderr.decode()
        check(r.returncode != 0 and "config.json" in err and "hf:test/gguf:FILE" in err,
              f"a GGUF repository without :FILE: {err!r}")
        r, _ = levrun("hf:bad name", e)
        check(r.returncode != 0 and "not a Hugging Face model name" in r.stderr.decode(), "malformed hf: name")

        # --- 401: gated without a token, then with HF_TOKEN
        r, _ = levrun("hf:test/gated", e)
        err = r.stderr.decode()
        check(r.returncode != 0 and "401" in err and "HF_TOKEN" in err and "refused access" in err
              and "restricted" in err, f"401: {err!r}")
        r, _ = levrun("hf:test/gated", dict(e, HF_TOKEN="wrong"))
        check(r.returncode != 0 and "401" in r.stderr.decode() and "token in HF_TOKEN" in r.stderr.decode(),
              f"401 with a wrong token: {r.stderr.decode()!r}")
        hub.requests()
        r, ids = levrun("hf:test/gated", dict(e, HF_TOKEN="hf_secret_token"))
        log = hub.requests()
        check(r.returncode == 0 and ids == want_ids, f"HF_TOKEN: {r.stderr.decode()[-300:]}")
        check(all(x[3] for x in log if not x[1].startswith("/cdn/"))
              and not any(x[3] for x in log if x[1].startswith("/cdn/")),
              "the token goes to the hub, not to the CDN")

        # --- a renamed repository: the hub's relative redirect is followed; a redirect loop ends with a message
        hub.renamed["test/old-name"] = "test/stories260K"
        hub.renamed["test/loop"] = "test/loop"
        r, ids = levrun("hf:test/old-name", e)
        check(r.returncode == 0 and ids == want_ids, f"renamed repository: {r.stderr.decode()[-300:]}")
        r, _ = levrun("hf:test/loop", e)
        check(r.returncode != 0 and "redirects" in r.stderr.decode(), f"redirect loop: {r.stderr!r}")

        # --- one file of a repository: hf:ORG/NAME:FILE.gguf
        r, ids = levrun("hf:test/gguf:stories260K-f16.gguf", e)
        g = os.path.join(repo_dir(e, "test/gguf"), "snapshots", COMMIT, "stories260K-f16.gguf")
        check(r.returncode == 0 and ids == ids_gguf and file_sha256(g) == sums["gguf/stories260K-f16.gguf"],
              f"hf:...:FILE.gguf: {r.stderr.decode()[-300:]}")

        # --- no server at all: a clear message (and the cache when it has the revision)
        r, _ = levrun("hf:test/other", dict(e, HF_ENDPOINT="http://127.0.0.1:9"))
        check(r.returncode != 0 and "cannot reach" in r.stderr.decode(), f"unreachable hub: {r.stderr!r}")
        r, ids = levrun("hf:test/stories260K", dict(env("hub"), HF_ENDPOINT="http://127.0.0.1:9"))
        check(r.returncode == 0 and ids == want_ids, "unreachable hub: the cached revision is used")

        gst_checks(tmp, gguf, env)
    finally:
        hub.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    finish()


def gst_checks(tmp, gguf, env):
    """levtextgen with model=GGUF posts progress messages while converting; Lev.Model.new takes a GGUF."""
    try:
        import gi
        gi.require_version("Gst", "1.0")
        from gi.repository import Gst
    except (ImportError, ValueError):
        print("SKIP: python3-gi with Gst 1.0 not available: levtextgen checks skipped")
        return
    e = env("gst")
    os.environ["XDG_CACHE_HOME"] = e["XDG_CACHE_HOME"]
    Gst.init(None)
    if Gst.ElementFactory.find("levtextgen") is None:
        print("SKIP: levtextgen not found (GST_PLUGIN_PATH_1_0): levtextgen checks skipped")
        return
    pipe = Gst.parse_launch(f'appsrc name=src caps=text/x-raw,format=utf8 ! levtextgen name=gen model="{gguf}" '
                            'max-tokens=4 ! fakesink')
    bus = pipe.get_bus()
    pipe.set_state(Gst.State.READY)
    texts = []
    while True:
        msg = bus.pop_filtered(Gst.MessageType.PROGRESS | Gst.MessageType.ERROR)
        if msg is None:
            break
        if msg.type == Gst.MessageType.PROGRESS:
            texts.append(msg.parse_progress()[2])
        else:
            texts.append("ERROR " + msg.parse_error()[0].message)
    pipe.set_state(Gst.State.NULL)
    check(any(t.startswith("Converting stories260K-f16.gguf") for t in texts)
          and any(t.startswith("Converted") for t in texts) and texts[-1] == "Model loaded",
          f"levtextgen's progress messages: {texts}")
    check(len(models_in(e["XDG_CACHE_HOME"])) == 1, "levtextgen converted into the cache")
    try:
        gi.require_version("Lev", "1.0")
        from gi.repository import Lev
    except (ImportError, ValueError):
        print("SKIP: Lev-1.0 typelib not found: Lev.Model check skipped")
        return
    model = Lev.Model.new(gguf)
    check(model.get_vocab_size() == 512 and model.get_architecture() == "llama", "Lev.Model.new on a GGUF")
    try:
        Lev.Model.new(os.path.join(tmp, "truncated.gguf"))
        check(False, "Lev.Model.new on a truncated GGUF fails")
    except Exception as ex:  # GLib.Error
        check("truncated.gguf" in str(ex), f"Lev.Model.new names the bad file: {ex}")
    # libsoup 3 is opened only for a download: a process that holds libsoup 2 loads Lev-1.0 and levtextgen without
    # aborting, and an hf: download there fails with a message instead
    import ctypes
    try:
        ctypes.CDLL("libsoup-2.4.so.1", mode=ctypes.RTLD_GLOBAL)
    except OSError:
        print("SKIP: libsoup 2 not installed: the libsoup 2 check skipped")
        return
    os.environ.update(env("soup2"))
    try:
        Lev.Model.new("hf:test/stories260K")
        check(False, "an hf: download in a process holding libsoup 2 fails")
    except Exception as ex:  # GLib.Error
        check("libsoup 2" in str(ex), f"hf: download with libsoup 2 in the process: {ex}")


if __name__ == "__main__":
    main()
