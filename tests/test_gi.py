#!/usr/bin/python3
"""test_gi.py: the Lev-1.0 typelib from Debian's python3-gi: Lev.Model, Lev.Generator (token signal, sync and
async generate, cancellation, errors, keep-history, Lev.Error, output modes, stop reasons, generation from token ids
against llama2.c run.c's greedy ids, the chat API against the published Llama 2 template's rendering,
Lev.Model.default_path()), and levtextgen driven from Python through Gst (appsrc ! levtextgen ! appsink). Usage: test_gi.py LEVCONVERT (GI_TYPELIB_PATH, LD_LIBRARY_PATH and GST_* from meson)."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

import json
import re

import gi

gi.require_version("Lev", "1.0")
gi.require_version("Gst", "1.0")
from gi.repository import Gio, GLib, Gst, Lev  # noqa: E402

from levtest import check, finish, fixture  # noqa: E402

LEVCONVERT = sys.argv[1]


def generator(model, **props):
    gen = Lev.Generator.new(model)
    gen.props.temperature = 0.0
    gen.props.n_threads = 1
    for k, v in props.items():
        gen.set_property(k.replace("_", "-"), v)
    return gen


def run_async(gen, prompt, cancellable=None, on_token=None):
    """Runs generate_async in a main loop; returns (result or GLib.Error, tokens seen before the callback)."""
    loop = GLib.MainLoop()
    tokens = []
    out = {}

    def token(_g, text, tid):
        tokens.append((text, tid))
        if on_token:
            on_token(len(tokens))

    hid = gen.connect("token", token)

    def done(g, res):
        try:
            out["r"] = g.generate_finish(res)
        except GLib.Error as e:
            out["r"] = e
        out["tokens_at_done"] = len(tokens)
        loop.quit()

    gen.generate_async(prompt, cancellable, done)
    GLib.timeout_add_seconds(60, loop.quit)
    loop.run()
    gen.disconnect(hid)
    return out.get("r"), tokens, out.get("tokens_at_done")


tmp = tempfile.mkdtemp(prefix="lev-gi-")
try:
    path = os.path.join(tmp, "stories.leviathan")
    r = subprocess.run([LEVCONVERT, fixture("stories260K/stories260K.bin"), "--tokenizer",
                        fixture("stories260K/tok512.bin"), "-o", path], capture_output=True, timeout=120)
    check(r.returncode == 0, f"levconvert: {r.stderr.decode()}")

    # --- Lev.Model
    model = Lev.Model.new(path)
    check(model.props.architecture == "llama" and model.get_vocab_size() == 512, "model facts")
    # stories260K's weights are fp32 (tests/data/README.md): kept by default, packed ternary with --format t2
    check(model.get_encoding() == "f32" and model.props.encoding == "f32", f"encoding {model.get_encoding()}")
    t2_path = os.path.join(tmp, "stories-t2.leviathan")
    r = subprocess.run([LEVCONVERT, fixture("stories260K/stories260K.bin"), "--tokenizer",
                        fixture("stories260K/tok512.bin"), "-o", t2_path, "--format", "t2", "-q"],
                       capture_output=True, timeout=120)
    check(r.returncode == 0 and Lev.Model.new(t2_path).get_encoding() == "t2", "encoding t2")
    ids = model.tokenize("Once upon a time", True)
    check(list(ids) == [1, 403, 407, 261, 378], f"tokenize: {ids}")
    check(model.detokenize(ids[1:]) == "Once upon a time", f"detokenize: {model.detokenize(ids[1:])!r}")
    try:
        Lev.Model.new(os.path.join(tmp, "missing.leviathan"))
        check(False, "a missing model raised nothing")
    except GLib.Error as e:
        check("missing.leviathan" in e.message, f"missing model message: {e.message}")
    # an adapter is mounted at construction (Gio.Initable): a missing one is an error naming it
    try:
        Lev.Model(path=path, adapter=os.path.join(tmp, "missing-adapter.leviathan")).init(None)
        check(False, "a missing adapter raised nothing")
    except GLib.Error as e:
        check("cannot open adapter" in e.message, f"missing adapter message: {e.message}")

    # --- sync generate: the token signal carries the text, in order
    gen = generator(model, max_tokens=24, ignore_eos=True)
    seen = []
    hid = gen.connect("token", lambda _g, text, tid: seen.append(text))
    text = gen.generate("Once upon a time", None)
    gen.disconnect(hid)
    check(text.startswith(", there was") and "".join(seen) == text, f"sync: {text!r} vs {''.join(seen)!r}")
    check(gen.props.generated_tokens == 24 and gen.props.prompt_tokens == 5, "stats properties")
    check(gen.props.decode_tokens_per_second > 0, "decode tokens/s")

    # --- use-mmap=false (issue 19 item 3): the file read into memory survives its truncation, the same text
    copy = os.path.join(tmp, "copy.leviathan")
    shutil.copyfile(path, copy)
    read_model = Lev.Model(path=copy, use_mmap=False)
    read_model.init(None)
    check(read_model.props.use_mmap is False and model.props.use_mmap is True, "use-mmap property")
    os.truncate(copy, 0)
    read_text = generator(read_model, max_tokens=24, ignore_eos=True).generate("Once upon a time", None)
    check(read_text == text, f"use-mmap=false after truncation: {read_text!r}")
    # max-prompt-bytes and parse-special are Lev.Generator properties too (the shared table)
    check(gen.props.max_prompt_bytes == 1 << 20 and gen.props.parse_special is False, "max-prompt-bytes, parse-special")

    # --- kv-type and memory-limit on Lev.Generator too (issue 15 item 4; one table with the element's): a 65,536-slot
    #     context of stories260K (5 layers, 4 KV heads of 8) needs 80 MiB of f32 keys and values, 30 MiB as q8 with
    #     its scales (tests/test_cli.py checks the estimate against the checkpoint's shape): a 50 MiB limit refuses
    #     the first and runs the second
    check(Lev.KvType.__gtype__.name == "LevGKvType", "Lev.KvType")
    for kv, runs in ((Lev.KvType.F32, False), (Lev.KvType.Q8, True)):
        mem_gen = generator(model, max_tokens=4)
        mem_gen.props.context_length = 65536
        mem_gen.props.kv_type = kv
        mem_gen.props.memory_limit = 50
        try:
            out = mem_gen.generate("Once upon a time", None)
            check(runs and mem_gen.props.generated_tokens == 4, f"kv-type {kv.value_nick} under 50 MiB: {out!r}")
        except GLib.Error as e:
            check(not runs and e.matches(Lev.error_quark(), Lev.Error.ARGUMENT)
                  and "more than the memory limit" in e.message, f"kv-type {kv.value_nick}: {e.message}")

    # --- context-length 1 (issue 19 item 16): refused when set, as an out-of-range value is, not when the context is
    #     made; 2 is the smallest context that works
    ctx_gen = generator(model, max_tokens=4)
    ctx_gen.props.context_length = 1
    check(ctx_gen.props.context_length == 0, f"context-length 1 kept: {ctx_gen.props.context_length}")
    ctx_gen.props.context_length = 2
    check(ctx_gen.props.context_length == 2 and len(ctx_gen.generate_ids([1, 403], None)) == 4, "context-length 2 runs")

    # --- async generate: every token signal before the callback, same greedy text
    res, tokens, at_done = run_async(gen, "Once upon a time")
    check(res == text, f"async result {res!r}")
    check(at_done == len(tokens) and "".join(t for t, _ in tokens) == text, "tokens before the callback")

    # --- cancellation from the token handler: G_IO_ERROR_CANCELLED, promptly
    long_gen = generator(model, max_tokens=1 << 24, ignore_eos=True)
    c = Gio.Cancellable()
    t0 = time.monotonic()
    res, tokens, _ = run_async(long_gen, "Once upon a time", c, lambda n: n == 3 and c.cancel())
    check(isinstance(res, GLib.Error) and res.matches(Gio.io_error_quark(), Gio.IOErrorEnum.CANCELLED),
          f"cancel result {res!r}")
    check(time.monotonic() - t0 < 10, "cancellation took too long")

    # --- a second generation while one runs: busy
    c = Gio.Cancellable()
    loop = GLib.MainLoop()
    results = []

    def collect(g, r):
        try:
            results.append(g.generate_finish(r))
        except GLib.Error as e:
            results.append(e)
        if len(results) == 2:
            loop.quit()

    long_gen.generate_async("Once", c, collect)
    long_gen.generate_async("Twice", None, collect)
    GLib.timeout_add(200, lambda: c.cancel() or False)
    GLib.timeout_add_seconds(60, loop.quit)
    loop.run()
    busy = [r for r in results if isinstance(r, GLib.Error) and r.matches(Gio.io_error_quark(), Gio.IOErrorEnum.BUSY)]
    check(len(busy) == 1, f"busy: {results}")

    # --- keep-history changes the second answer
    hist = generator(model, max_tokens=24, ignore_eos=True, keep_history=True)
    a1 = hist.generate("Once upon a time", None)
    a2 = hist.generate("Once upon a time", None)
    check(a1 == text and a2 != a1, f"keep-history: {a1!r} / {a2!r}")
    hist.reset()
    check(hist.generate("Once upon a time", None) == a1, "reset forgets the conversation")

    # --- Lev.Error: the engine's domain with named codes
    check(Lev.Error.__gtype__.name == "LevGError" and Lev.error_quark() == GLib.quark_from_string("lev-error-quark"),
          "Lev.Error is a registered GEnum with its error domain")
    try:
        Lev.Model.new(os.path.join(tmp, "missing.leviathan"))
    except GLib.Error as e:
        check(e.matches(Lev.error_quark(), Lev.Error.IO), f"missing file: {e.domain} {e.code}")
    bad = os.path.join(tmp, "bad.leviathan")
    with open(bad, "wb") as f:
        f.write(b"not a model at all" * 64)
    try:
        Lev.Model.new(bad)
        check(False, "a file that is no model loaded")
    except GLib.Error as e:
        check(e.matches(Lev.error_quark(), Lev.Error.FORMAT), f"bad file: {e.domain} {e.code} {e.message}")

    # --- generation from token ids: llama2.c run.c's greedy ids (tests/data/stories260K/expected)
    cases = json.load(open(fixture("stories260K/expected/greedy_n64.json")))
    ids_gen = generator(model)
    for case in cases:
        n_prompt = len(case["prompt_tokens"])
        ids_gen.props.max_tokens = case["steps"] - n_prompt + 1
        got = list(ids_gen.generate_ids(case["prompt_tokens"], None))
        check(got == case["tokens"][n_prompt:], f"generate_ids {case['prompt']!r}: {got[:12]}")
        check(ids_gen.props.stop_reason == Lev.StopReason.MAX_TOKENS, f"stop reason {ids_gen.props.stop_reason}")
    try:
        ids_gen.generate_ids([1, 512], None)
        check(False, "an id outside the vocabulary generated")
    except GLib.Error as e:
        check(e.matches(Lev.error_quark(), Lev.Error.ARGUMENT) and "512" in e.message, f"bad id: {e.message}")
    # run.c stopped on BOS (it ends a response): stop reason eos, the ids up to it
    for case in json.load(open(fixture("stories260K/expected/greedy_n256.json"))):
        if case["stopped_on_bos"]:
            n_prompt = len(case["prompt_tokens"])
            ids_gen.props.max_tokens = case["steps"]
            got = list(ids_gen.generate_ids(case["prompt_tokens"], None))
            want = [t for t in case["tokens"][n_prompt:] if t != 1]
            check(got == want and ids_gen.props.stop_reason == Lev.StopReason.EOS,
                  f"stopped on BOS {case['prompt']!r}: {len(got)} ids, {ids_gen.props.stop_reason}")
            break
    else:
        check(False, "no reference case stopped on BOS")
    # a stop string, and cancellation, are stop reasons too
    ids_gen.props.max_tokens = 64
    ids_gen.props.stop_strings = ["Lily"]
    out = ids_gen.generate("Once upon a time", None)
    check("Lily" not in out and ids_gen.props.stop_reason == Lev.StopReason.STOP_STRING, f"stop string: {out!r}")
    ids_gen.props.stop_strings = None
    c = Gio.Cancellable()
    hid = ids_gen.connect("token", lambda *_: c.cancel())
    try:
        ids_gen.generate("Once upon a time", c)
    except GLib.Error:
        pass
    ids_gen.disconnect(hid)
    check(ids_gen.props.stop_reason == Lev.StopReason.CANCELLED, f"cancelled: {ids_gen.props.stop_reason}")

    # --- output modes (the shared property table): words are the tokens' text regrouped at word starts
    ids_gen.props.max_tokens = 24
    ids_gen.props.ignore_eos = True
    units = {}
    for mode in (Lev.OutputMode.TOKEN, Lev.OutputMode.WORD, Lev.OutputMode.SENTENCE, Lev.OutputMode.RESPONSE):
        ids_gen.props.output_mode = mode
        seen = []
        hid = ids_gen.connect("token", lambda _g, t, _i: seen.append(t))
        check(ids_gen.generate("Once upon a time", None) == text, f"{mode}: same text")
        ids_gen.disconnect(hid)
        units[mode] = seen
        check("".join(seen) == text, f"{mode}: units joined are the text")
    check(len(units[Lev.OutputMode.TOKEN]) == 24 and len(units[Lev.OutputMode.RESPONSE]) == 1,
          "one unit per token / per response")
    words = units[Lev.OutputMode.WORD]
    check(all(re.fullmatch(r"\s*\S+", w) for w in words) and len(words) == len(re.findall(r"\s*\S+", text)),
          f"words: {words}")
    sentences = units[Lev.OutputMode.SENTENCE]
    check(len(sentences) > 1 and all(u.rstrip()[-1:] in ".!?" or "\n" in u for u in sentences[:-1]),
          f"sentences: {sentences}")
    ids_gen.props.output_mode = Lev.OutputMode.TOKEN
    ids_gen.props.ignore_eos = False

    # --- the chat API: the conversation rendered as Llama 2's published chat template renders it (Hugging Face
    # apply_chat_template; the string of tests/test_chat.c), then greedy generation from those ids
    chat_gen = generator(model, max_tokens=16, chat_template=Lev.ChatTemplate.LLAMA2)
    system = "You are a friendly chatbot who always responds in the style of a pirate"
    rendered = ("[INST] <<SYS>>\nYou are a friendly chatbot who always responds in the style of a pirate\n"
                "<</SYS>>\n\nHello, how are you? [/INST]")          # after the template's "<s>" (BOS)
    ref_ids = list(model.tokenize(rendered, True))
    ids_gen.props.max_tokens = 16
    want = ids_gen.generate_ids(ref_ids, None)
    seen = []
    hid = chat_gen.connect("token", lambda _g, _t, tid: seen.append(tid))
    answer = chat_gen.chat(["system", "user"], [system, "Hello, how are you?"], None)
    chat_gen.disconnect(hid)
    check(chat_gen.props.prompt_tokens == len(ref_ids), f"chat prompt: {chat_gen.props.prompt_tokens} tokens, "
          f"the reference rendering {len(ref_ids)}")
    check(seen == list(want) and answer == model.detokenize(want), f"chat answer {answer!r} vs {model.detokenize(want)!r}")
    for roles, contents, what in [(["user", "wizard"], ["a", "b"], "wizard"), (["user"], ["a", "b"], "contents")]:
        try:
            chat_gen.chat(roles, contents, None)
            check(False, f"chat with bad {what} answered")
        except GLib.Error as e:
            check(e.matches(Lev.error_quark(), Lev.Error.ARGUMENT), f"chat with bad {what}: {e.message}")
    try:
        generator(model).chat(["user"], ["Hello"], None)   # stories260K names no template
        check(False, "chat without a template answered")
    except GLib.Error as e:
        check(e.matches(Lev.error_quark(), Lev.Error.ARGUMENT) and "template" in e.message, f"no template: {e.message}")

    # --- Lev.Model.default_path(): $LEV_MODEL, else (this library is in the build tree, nothing installed under
    # the prefix) the source tree's bundled model
    saved = os.environ.pop("LEV_MODEL", None)
    bundled = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "default.leviathan")
    dp = Lev.Model.default_path()
    installed = not os.path.realpath(dp).startswith(os.path.realpath(os.path.dirname(bundled)))
    check(os.path.exists(dp) and (installed or os.path.samefile(dp, bundled)), f"default_path {dp}")
    os.environ["LEV_MODEL"] = os.path.join(tmp, "env.leviathan")
    check(Lev.Model.default_path() == os.path.join(tmp, "env.leviathan"), "default_path follows $LEV_MODEL")
    del os.environ["LEV_MODEL"]
    if saved is not None:
        os.environ["LEV_MODEL"] = saved

    # --- levtextgen from Python: appsrc ! levtextgen ! appsink, statistics on the bus
    Gst.init(None)
    pipe = Gst.parse_launch(f"appsrc name=src caps=text/x-raw,format=utf8 format=time ! levtextgen model={path} "
                            "temperature=0 n-threads=1 max-tokens=24 ignore-eos=true output-mode=word "
                            "! appsink name=sink sync=false")
    pieces = []
    pipe.get_by_name("sink").set_property("emit-signals", True)

    def new_sample(sink):
        buf = sink.emit("pull-sample").get_buffer()
        pieces.append(buf.extract_dup(0, buf.get_size()).decode())
        return Gst.FlowReturn.OK

    pipe.get_by_name("sink").connect("new-sample", new_sample)
    pipe.set_state(Gst.State.PLAYING)
    src = pipe.get_by_name("src")
    src.emit("push-buffer", Gst.Buffer.new_wrapped(b"Once upon a time"))
    src.emit("end-of-stream")
    stats = None
    bus = pipe.get_bus()
    while True:
        msg = bus.timed_pop_filtered(30 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR |
                                     Gst.MessageType.ELEMENT)
        if msg is None or msg.type != Gst.MessageType.ELEMENT:
            break
        if msg.get_structure().get_name() == "leviathan/stats":
            stats = msg.get_structure()
    check(msg is not None and msg.type == Gst.MessageType.EOS, f"pipeline ended with {msg and msg.type}")
    pipe.set_state(Gst.State.NULL)
    check("".join(pieces) == text and len(pieces) < 24, f"Gst words: {pieces}")
    check(stats is not None and stats.get_value("generated-tokens") == 24, "stats message from Python")
finally:
    shutil.rmtree(tmp, ignore_errors=True)

finish()
