#!/usr/bin/python3
"""test_structured.py: structured output and token metadata from Python (Debian's python3-gi, the Lev-1.0
typelib): levtextgen's grammar property (responses that Python's json module parses and that validate; a grammar
that cannot be compiled is an error on the bus), Lev.Generator:grammar (GError), Lev.TokenMeta read from an
appsink (ids that Lev.Model.detokenize turns back into the buffer's text, log-probabilities, alternatives),
the stats message's kernels and batch-size, and pipelines/voice-commands.py as written.
Usage: test_structured.py SOURCE_ROOT (GI_TYPELIB_PATH, LD_LIBRARY_PATH and GST_* from meson)."""
import json
import math
import os
import subprocess
import sys

import gi

gi.require_version("Lev", "1.0")
gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst, Lev  # noqa: E402

from levtest import check, finish  # noqa: E402

ROOT = sys.argv[1]
MODEL = os.path.join(ROOT, "models", "default.leviathan")
SCHEMA = {"type": "object",
          "properties": {"action": {"enum": ["lights_on", "lights_off", "volume"]},
                         "room": {"type": "string", "maxLength": 16},
                         "level": {"type": "integer"}},
          "required": ["action", "room"]}


def valid(v):
    """Validates v against SCHEMA (written out for its keywords)."""
    return (isinstance(v, dict) and set(v) <= {"action", "room", "level"} and {"action", "room"} <= set(v)
            and v["action"] in ("lights_on", "lights_off", "volume") and isinstance(v["room"], str)
            and len(v["room"]) <= 16 and (isinstance(v.get("level", 0), int) and not isinstance(v.get("level"), bool)))


def run_pipeline(props, prompts, grammar=None):
    """appsrc ! levtextgen PROPS ! appsink: returns (buffers as (text, meta), stats structures, error or None)."""
    pipe = Gst.parse_launch("appsrc name=src caps=text/x-raw,format=utf8 ! levtextgen name=lev model=" + MODEL
                            + " n-threads=1 " + props + " ! appsink name=sink sync=false emit-signals=true")
    if grammar is not None:
        pipe.get_by_name("lev").set_property("grammar", grammar)
    bufs = []

    def new_sample(sink):
        buf = sink.emit("pull-sample").get_buffer()
        meta = Lev.buffer_get_token_meta(buf)
        info = None
        if meta:
            info = (list(meta.get_ids()), list(meta.get_logprobs()),
                    [(list(meta.get_top_ids(i)), list(meta.get_top_logprobs(i))) for i in range(meta.n_tokens)])
        bufs.append((buf.extract_dup(0, buf.get_size()).decode(), info))
        return Gst.FlowReturn.OK

    pipe.get_by_name("sink").connect("new-sample", new_sample)
    pipe.set_state(Gst.State.PLAYING)
    src = pipe.get_by_name("src")
    for p in prompts:
        src.emit("push-buffer", Gst.Buffer.new_wrapped(p.encode()))
    src.emit("end-of-stream")
    stats, error = [], None
    bus = pipe.get_bus()
    while True:
        msg = bus.timed_pop_filtered(120 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR
                                     | Gst.MessageType.ELEMENT)
        if msg is None or msg.type == Gst.MessageType.EOS:
            break
        if msg.type == Gst.MessageType.ERROR:
            error = msg.parse_error()[0]
            break
        if msg.get_structure().get_name() == "leviathan/stats":
            stats.append(msg.get_structure().copy())
    pipe.set_state(Gst.State.NULL)
    return bufs, stats, error


Gst.init(None)
model = Lev.Model.new(MODEL)


def spelled(prompt, ids):
    """The text ids add after prompt (Lev.Model's tokenizer: detokenized after the prompt's ids)."""
    head = list(model.tokenize(prompt, True))
    return model.detokenize(head + list(ids))[len(model.detokenize(head)):]


# --- the element under a JSON Schema: whole responses parse and validate; the meta covers every token
prompts = [f"Command {i}: turn the lights on" for i in range(40)]
bufs, stats, error = run_pipeline("output-mode=response temperature=1 top-k=0 top-p=1 min-p=0 seed=7 max-tokens=200",
                                  prompts, json.dumps(SCHEMA))
check(error is None, f"no error: {error and error.message}")
check(len(bufs) == len(prompts) and len(stats) == len(prompts), f"{len(bufs)} responses, {len(stats)} stats")
for text, info in bufs:
    try:
        ok = valid(json.loads(text))
    except ValueError:
        ok = False
    check(ok, f"response parses and validates: {text!r}")
    check(info is not None and spelled(prompts[0], info[0]) == text, f"meta ids detokenize to the response {text!r}")
check(all(s.get_value("stop-reason") == "grammar" for s in stats), "responses end where the grammar is complete")
check(all(s.get_value("kernels") == stats[0].get_value("kernels") and s.get_value("kernels") for s in stats),
      f"stats name the kernels: {stats and stats[0].get_value('kernels')}")
check(all(s.get_value("batch-size") == 1 for s in stats), "stats give the batch size (1: one stream)")

# --- a grammar that cannot be compiled: an error on the bus naming the problem
bufs, stats, error = run_pipeline("", ["hello"], 'root ::= "a" | undefined-rule')
check(error is not None and "undefined-rule" in error.message and bufs == [],
      f"bad grammar: bus error {error and error.message}")
bufs, stats, error = run_pipeline("", ["hello"], '{"type": "object", "properties": {"a": {"type": "date"}}}')
check(error is not None and "unsupported type \"date\"" in error.message, f"bad schema: {error and error.message}")

# --- token metadata: one token per buffer, greedy: the chosen id is the most likely alternative
bufs, stats, error = run_pipeline("output-mode=token temperature=0 logprobs=5 max-tokens=30 ignore-eos=true",
                                  ["And God said"])
# (the element outputs 29 of max-tokens=30 here, with or without the meta: a matter of its output splitter)
check(error is None and sum(len(info[0]) for _, info in bufs if info) >= 29,
      f"the tokens in the metas of {len(bufs)} buffers ({error})")
all_ids = []
for text, info in bufs:
    if not info:
        check(False, "buffer without meta")
        continue
    ids, lps, tops = info
    all_ids += ids
    # one token per buffer, two where a character spans them (output-mode=token keeps UTF-8 whole)
    check(1 <= len(ids) <= 2 and len(lps) == len(ids) and len(tops) == len(ids), f"tokens of a buffer: {ids}")
    for tid, lp, (top_ids, top_lps) in zip(ids, lps, tops):
        check(len(top_ids) == 5 and top_ids[0] == tid and math.isclose(top_lps[0], lp, abs_tol=1e-6),
              f"greedy: the token is the first alternative ({tid}, {top_ids})")
        check(all(a >= b for a, b in zip(top_lps, top_lps[1:])) and all(x <= 0 for x in top_lps),
              f"alternatives most likely first, log-probabilities <= 0: {top_lps}")
        check(sum(math.exp(x) for x in top_lps) <= 1 + 1e-5, "the alternatives' probabilities sum to at most 1")
check(spelled("And God said", all_ids) == "".join(t for t, _ in bufs), "the metas' ids spell the output")
bufs, stats, error = run_pipeline("output-mode=word temperature=0 max-tokens=12 ignore-eos=true", ["And God said"])
check(all(info and len(info[2][0][0]) == 0 and len(info[0]) >= 1 for _, info in bufs),
      "logprobs=0: ids and log-probabilities, no alternatives")

# --- Lev.Generator:grammar
gen = Lev.Generator.new(model)
gen.props.n_threads = 1
gen.props.temperature = 1.0
gen.props.seed = 3
gen.props.grammar = 'root ::= ("yes" | "no") "."'
answer = gen.generate("Is it so?", None)
check(answer in ("yes.", "no."), f"Lev.Generator under a grammar: {answer!r}")
check(gen.props.grammar == 'root ::= ("yes" | "no") "."', "the grammar property reads back")
gen.props.grammar = 'root ::= ("yes" | "no"'
try:
    gen.generate("Is it so?", None)
    check(False, "a bad grammar must fail generate")
except GLib.Error as e:
    check("expected ')'" in e.message, f"GError from Lev.Generator: {e.message}")

# --- the example as written
env = dict(os.environ, LEV_MODEL=MODEL)
r = subprocess.run([sys.executable, os.path.join(ROOT, "pipelines", "voice-commands.py"), "turn on the kitchen light",
                    "volume up in the bedroom", "lights off in the hall"], capture_output=True, text=True, env=env,
                   timeout=300)
lines = [ln for ln in r.stdout.splitlines() if ln.startswith("  ")]


def command(v):
    """Validates v against the example's schema (action enum, room a string of at most 24 characters)."""
    return (isinstance(v, dict) and set(v) == {"action", "room"} and v["action"] in ("lights_on", "lights_off", "volume")
            and isinstance(v["room"], str) and len(v["room"]) <= 24)


check(r.returncode == 0 and len(lines) == 3 and all(command(json.loads(ln)) for ln in lines),
      f"voice-commands.py: rc {r.returncode}, {r.stdout!r} {r.stderr!r}")

finish()
