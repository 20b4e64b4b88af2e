#!/usr/bin/python3
"""words-to-llm.py: a word-per-buffer source, as speech transcribers (whisper, AWS, Speechmatics, Deepgram in
gst-plugins-rs) push text, feeding levtextgen prompt-mode=utterance: each line of stdin is pushed one word per
buffer from an appsrc, followed by the "rstranscribe/final-transcript" event that ends an utterance; levtextgen
answers each utterance as one prompt and writes the answers to stdout, each followed by a newline
(response-separator). The final-transcript events levtextgen sends downstream are reported on stderr.

  appsrc (one word per buffer) ! levtextgen prompt-mode=utterance response-separator="\\n" ! fdsink fd=1

Usage: pipelines/words-to-llm.py [levtextgen property=value ...] < lines
LEV_MODEL picks the model (default: the element's default); uninstalled, the plugin in build/ (or
$LEV_BUILD_DIR) is used. Needs python3-gi and gir1.2-gstreamer-1.0.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("LEV_BUILD_DIR", os.path.join(ROOT, "build"))
if os.path.exists(os.path.join(BUILD, "gst-plugin", "libgstleviathan.so")):
    os.environ["GST_PLUGIN_PATH"] = os.pathsep.join(
        p for p in (os.path.join(BUILD, "gst-plugin"), os.environ.get("GST_PLUGIN_PATH")) if p)

import gi  # noqa: E402

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402


def main():
    Gst.init(None)
    pipe = Gst.parse_launch("appsrc name=src format=time caps=text/x-raw,format=utf8 ! "
                            "levtextgen name=gen prompt-mode=utterance ! fdsink fd=1 sync=false")
    src, gen = pipe.get_by_name("src"), pipe.get_by_name("gen")
    Gst.util_set_object_arg(gen, "response-separator", "\\n")
    if os.environ.get("LEV_MODEL"):
        gen.set_property("model", os.environ["LEV_MODEL"])
    for arg in sys.argv[1:]:
        name, _, value = arg.partition("=")
        Gst.util_set_object_arg(gen, name, value)

    def on_event(pad, info):
        s = info.get_event().get_structure()
        if s is not None and s.get_name() == "rstranscribe/final-transcript":
            print("final-transcript", file=sys.stderr, flush=True)
        return Gst.PadProbeReturn.OK

    gen.get_static_pad("src").add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, on_event)
    if pipe.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        print("words-to-llm.py: the pipeline did not start (is the model there? LEV_MODEL)", file=sys.stderr)
        return 1
    t = 0
    for line in sys.stdin:
        for word in line.split():
            buf = Gst.Buffer.new_wrapped(word.encode())
            buf.pts, buf.duration = t, 300 * Gst.MSECOND      # a word every 0.3 s, as a transcriber times them
            t += buf.duration
            src.emit("push-buffer", buf)
        src.send_event(Gst.Event.new_custom(Gst.EventType.CUSTOM_DOWNSTREAM,
                                            Gst.Structure.new_empty("rstranscribe/final-transcript")))
    src.emit("end-of-stream")
    msg = pipe.get_bus().timed_pop_filtered(Gst.CLOCK_TIME_NONE, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    rc = 0
    if msg.type == Gst.MessageType.ERROR:
        err, _ = msg.parse_error()
        print(f"words-to-llm.py: {err.message}", file=sys.stderr)
        rc = 1
    pipe.set_state(Gst.State.NULL)
    return rc


if __name__ == "__main__":
    sys.exit(main())
