#!/usr/bin/python3
"""test_gi.py: the Lev-1.0 typelib from Debian's python3-gi: Lev.Model, Lev.Generator (token signal, sync and
async generate, cancellation, errors, keep-history), and levtextgen driven from Python through Gst (appsrc !
levtextgen ! appsink). Usage: test_gi.py LEVCONVERT (GI_TYPELIB_PATH, LD_LIBRARY_PATH and GST_* from meson)."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

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
