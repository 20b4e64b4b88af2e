#!/usr/bin/python3
"""voice-commands.py: speech (or typed text) → levtextgen held to a JSON Schema of home commands → this program,
which parses every response with json and acts on it (here: prints the command and how sure the model was, from
the responses' Lev.TokenMeta).

Usage: pipelines/voice-commands.py [--speech "sentence to speak"] [--seed N] [--temperature T] [command ...]
  Without --speech the commands are prompts (arguments, or lines of stdin); with it espeak-ng speaks the sentence
  and pocketsphinx recognizes it (gstreamer1.0-pocketsphinx, pocketsphinx-en-us, espeak-ng,
  gstreamer1.0-plugins-good). LEV_MODEL picks the model (default: levtextgen's).
Prints one line per response: ACTION ROOM (mean log-probability), then the JSON it parsed; exits 1 when a response
is not valid."""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import gi

gi.require_version("Gst", "1.0")
gi.require_version("Lev", "1.0")
from gi.repository import Gst, Lev  # noqa: E402

SCHEMA = {
    "type": "object",
    "properties": {
        "action": {"enum": ["lights_on", "lights_off", "volume"]},
        "room": {"type": "string", "maxLength": 24},
    },
    "required": ["action", "room"],
}


def valid(command):
    """Whether a parsed response is a command of SCHEMA."""
    return (isinstance(command, dict) and set(command) == {"action", "room"}
            and command["action"] in SCHEMA["properties"]["action"]["enum"]
            and isinstance(command["room"], str) and len(command["room"]) <= 24)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speech", help="a sentence that espeak-ng speaks and pocketsphinx recognizes")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("commands", nargs="*")
    args = ap.parse_args()
    Gst.init(None)
    model = os.environ.get("LEV_MODEL")
    lev = (f"levtextgen name=lev output-mode=response seed={args.seed} temperature={args.temperature} n-threads=1 "
           + (f"model={model} " if model else ""))
    wav = None
    if args.speech:
        wav = tempfile.NamedTemporaryFile(suffix=".wav", delete=False).name
        subprocess.run(os.environ.get("ESPEAK", "espeak-ng").split() + ["-s", "140", "-w", wav, args.speech],
                       check=True)
        source = (f"filesrc location={wav} ! wavparse ! audioconvert ! audioresample ! pocketsphinx "
                  "! text/plain ! ")
    else:
        source = "appsrc name=src caps=text/x-raw,format=utf8 ! "
    pipe = Gst.parse_launch(source + lev + " ! appsink name=sink sync=false emit-signals=true")
    # the schema as a property (set from the program: no quoting on a launch line)
    pipe.get_by_name("lev").set_property("grammar", json.dumps(SCHEMA))
    bad = []

    def new_sample(sink):
        buf = sink.emit("pull-sample").get_buffer()
        text = buf.extract_dup(0, buf.get_size()).decode()
        meta = Lev.buffer_get_token_meta(buf)
        logprobs = meta.get_logprobs() if meta else []
        try:
            command = json.loads(text)
        except ValueError:
            command = None
        if not valid(command):
            bad.append(text)
            print("INVALID:", text, flush=True)
        else:
            mean = sum(logprobs) / max(len(logprobs), 1)
            print(f"{command['action']} {command['room']!r} ({mean:.2f})\n  {text}", flush=True)
        return Gst.FlowReturn.OK

    pipe.get_by_name("sink").connect("new-sample", new_sample)
    pipe.set_state(Gst.State.PLAYING)
    if not args.speech:
        src = pipe.get_by_name("src")
        for line in args.commands or [ln.rstrip("\n") for ln in sys.stdin]:
            if line.strip():
                src.emit("push-buffer", Gst.Buffer.new_wrapped(line.encode()))
        src.emit("end-of-stream")
    msg = pipe.get_bus().timed_pop_filtered(Gst.CLOCK_TIME_NONE, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipe.set_state(Gst.State.NULL)
    if wav:
        os.unlink(wav)
    if msg.type == Gst.MessageType.ERROR:
        err, dbg = msg.parse_error()
        print(f"error: {err.message}", file=sys.stderr)
        return 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
