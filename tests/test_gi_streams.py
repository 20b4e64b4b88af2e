#!/usr/bin/python3
"""test_gi_streams.py: Lev.Generators on one Lev.Model share its engine: three generators answering at the same time
(generate_async in one main loop, their tokens batched) give each the text it gives alone, and so do levtextgen
elements of one pipeline with an application-given "leviathan.engine" context. Usage: test_gi_streams.py LEVCONVERT
(GI_TYPELIB_PATH, LD_LIBRARY_PATH and GST_* from meson)."""
import os
import shutil
import subprocess
import sys
import tempfile

import gi

gi.require_version("Lev", "1.0")
gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst, Lev  # noqa: E402

from levtest import check, finish, fixture  # noqa: E402

LEVCONVERT = sys.argv[1]
PROMPTS = ["Once upon a time", "The little dog", "Lily and Ben went to the park"]


def generator(model):
    gen = Lev.Generator.new(model)
    gen.props.temperature = 0.0
    gen.props.max_tokens = 32
    return gen


tmp = tempfile.mkdtemp(prefix="lev-gi-streams-")
try:
    path = os.path.join(tmp, "stories.leviathan")
    r = subprocess.run([LEVCONVERT, fixture("stories260K/stories260K.bin"), "--tokenizer",
                        fixture("stories260K/tok512.bin"), "-o", path], capture_output=True, timeout=120)
    check(r.returncode == 0, f"levconvert: {r.stderr.decode()}")

    # each prompt alone, on a model of its own
    alone = [generator(Lev.Model.new(path)).generate(p, None) for p in PROMPTS]
    check(all(len(a) > 0 for a in alone), f"answers alone: {alone}")

    # three generators of one model at the same time
    model = Lev.Model.new(path)
    gens = [generator(model) for _ in PROMPTS]
    loop = GLib.MainLoop()
    got = {}

    def done(g, res, i):
        got[i] = g.generate_finish(res)
        if len(got) == len(PROMPTS):
            loop.quit()

    for i, (g, p) in enumerate(zip(gens, PROMPTS)):
        g.generate_async(p, None, done, i)
    GLib.timeout_add_seconds(120, loop.quit)
    loop.run()
    check([got.get(i) for i in range(len(PROMPTS))] == alone, f"concurrent generators: {got} vs {alone}")

    # levtextgen from Python: the context type, a group set by the application, the engine shared
    Gst.init(None)
    pipe = Gst.parse_launch(" ".join(
        f"appsrc name=src{i} format=time caps=text/x-raw,format=utf8 ! levtextgen name=gen{i} model={path} "
        f"temperature=0 max-tokens=32 output-mode=response ! appsink name=sink{i} sync=false" for i in range(2)))
    ctx = Gst.Context.new("leviathan.engine", True)
    ctx.writable_structure().set_value("group", "python")
    for i in range(2):
        pipe.get_by_name(f"gen{i}").set_context(ctx)
    pipe.set_state(Gst.State.PLAYING)
    ids = [pipe.get_by_name(f"gen{i}").props.engine_id for i in range(2)]
    check(ids[0] != 0 and ids[0] == ids[1], f"engine ids {ids}")
    for i in range(2):
        pipe.get_by_name(f"src{i}").emit("push-buffer", Gst.Buffer.new_wrapped(PROMPTS[i].encode()))
    for i in range(2):
        sample = pipe.get_by_name(f"sink{i}").emit("try-pull-sample", 60 * Gst.SECOND)
        check(sample is not None, f"element {i}: no response")
        if sample:
            buf = sample.get_buffer()
            text = buf.extract_dup(0, buf.get_size()).decode()
            check(text == alone[i], f"element {i}: {text!r} vs {alone[i]!r}")
    pipe.set_state(Gst.State.NULL)
finally:
    shutil.rmtree(tmp, ignore_errors=True)
finish()
