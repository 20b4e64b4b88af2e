#!/usr/bin/python3
"""test_frontends.py: the three front ends of the session layer give byte-identical text for the same model, prompt,
seed and settings: levrun, gst-launch-1.0 with levtextgen (output-mode=response, the whole text) and Lev.Generator
through GObject Introspection, for a plain prompt and a chat prompt, sampled and greedy. The model is llama2.c's
stories260K (tests/data/stories260K). Usage: test_frontends.py BUILD_DIR (GI_TYPELIB_PATH, LD_LIBRARY_PATH and
GST_* from meson)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import gi

gi.require_version("Lev", "1.0")
from gi.repository import Lev  # noqa: E402

from levtest import check, finish, fixture  # noqa: E402

BUILD = os.path.abspath(sys.argv[1])
LEVCONVERT = os.path.join(BUILD, "converter", "levconvert")
LEVRUN = os.path.join(BUILD, "tools", "levrun")
env = dict(os.environ)
if env.get("LD_PRELOAD"):          # sanitizer runtime for programs that are not sanitized themselves
    env["ASAN_OPTIONS"] = "detect_leaks=0"


def run(args, stdin=b""):
    return subprocess.run(args, input=stdin, capture_output=True, timeout=120, env=env)


def with_levrun(model, prompt, chat, temp, seed, n):
    args = [LEVRUN, "-m", model, "-n", str(n), "--temp", str(temp), "--seed", str(seed), "-t", "2", "-q"]
    if chat:
        r = run(args + ["--chat", "--chat-template", "zephyr"], stdin=prompt.encode() + b"\n")
        out = r.stdout
    else:
        r = run(args + ["-p", prompt])
        # levrun echoes the prompt before the response
        check(r.stdout.startswith(prompt.encode()), f"levrun echoes the prompt: {r.stdout[:40]!r}")
        out = r.stdout[len(prompt.encode()):]
    check(r.returncode == 0 and out.endswith(b"\n"), f"levrun: {r.returncode} {r.stderr.decode()!r}")
    return out[:-1]


def with_element(model, prompt, chat, temp, seed, n, tmp):
    out = os.path.join(tmp, "element.txt")
    r = run(["gst-launch-1.0", "-q", "fdsrc", "fd=0", "!", "levtextgen", f"model={model}", "prompt-mode=line",
             "output-mode=response", f"temperature={temp}", f"seed={seed}", f"max-tokens={n}", "n-threads=2",
             f"chat-template={'zephyr' if chat else 'none'}", "!", "filesink", f"location={out}"],
            stdin=prompt.encode() + b"\n")
    check(r.returncode == 0, f"gst-launch: {r.returncode} {r.stderr.decode()!r}")
    data = open(out, "rb").read() if os.path.exists(out) else None
    # prompt-mode=line ends each response with the response separator, a newline (as levrun ends its output)
    check(data is not None and data.endswith(b"\n"), f"gst-launch: no response separator after {data!r}")
    return data[:-1] if data else data


def with_generator(model, prompt, chat, temp, seed, n):
    gen = Lev.Generator.new(Lev.Model.new(model))
    gen.props.temperature = temp
    gen.props.seed = seed
    gen.props.max_tokens = n
    gen.props.n_threads = 2
    # chat-template is the LevGChatTemplate GEnum shared with the element (Lev.ChatTemplate in Python)
    gen.props.chat_template = Lev.ChatTemplate.ZEPHYR if chat else Lev.ChatTemplate.NONE
    return gen.generate(prompt, None).encode()


tmp = tempfile.mkdtemp(prefix="lev-frontends-")
try:
    model = os.path.join(tmp, "stories.leviathan")
    r = run([LEVCONVERT, fixture("stories260K/stories260K.bin"), "--tokenizer", fixture("stories260K/tok512.bin"),
             "-o", model])
    check(r.returncode == 0, f"levconvert: {r.stderr.decode()}")
    cases = json.load(open(fixture("stories260K/expected/greedy_n64.json")))
    for chat, prompt in ((False, "Once upon a time"), (True, "Tell me a story about a cat")):
        for temp, seed in ((0.8, 42), (1.0, 7), (0.0, 1)):
            what = f"{'chat' if chat else 'plain'} prompt {prompt!r}, temperature {temp}, seed {seed}"
            texts = [with_levrun(model, prompt, chat, temp, seed, 60),
                     with_element(model, prompt, chat, temp, seed, 60, tmp),
                     with_generator(model, prompt, chat, temp, seed, 60)]
            print(f"{what}: {texts[0]!r}")
            check(len(texts[0]) > 20, f"{what}: levrun gave {texts[0]!r}")
            check(texts[1] == texts[0], f"{what}: levtextgen {texts[1]!r} != levrun {texts[0]!r}")
            check(texts[2] == texts[0], f"{what}: Lev.Generator {texts[2]!r} != levrun {texts[0]!r}")
            if not chat and temp == 0.0:
                # greedy text continues the prompt as llama2.c's run.c does (its output for the same prompt)
                ref = [c for c in cases if c["prompt"] == prompt][0]["stdout_text"]
                check(ref.startswith(prompt + texts[0].decode()), f"{what}: run.c wrote {ref!r}")
finally:
    shutil.rmtree(tmp)

finish()
