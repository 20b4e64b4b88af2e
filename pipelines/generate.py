#!/usr/bin/python3
"""generate.py: PyGObject example: Lev.Model and Lev.Generator from the Lev-1.0 typelib, tokens printed as they
come (the "token" signal), asynchronous generation in a GLib main loop, Ctrl-C cancels (GCancellable).

Usage: pipelines/generate.py MODEL [PROMPT ...]   (no PROMPT: one prompt per line from stdin)
Needs python3-gi; uninstalled, set GI_TYPELIB_PATH and LD_LIBRARY_PATH to build/gobject (pipelines/env.sh does).
"""
import signal
import sys

import gi

gi.require_version("Lev", "1.0")
from gi.repository import Gio, GLib, Lev  # noqa: E402


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        model = Lev.Model.new(sys.argv[1])
    except GLib.Error as e:
        print(f"generate.py: {e.message}", file=sys.stderr)
        return 1
    print(f"# {model.props.name or 'model'}: {model.props.architecture}, vocabulary {model.props.vocab_size}",
          file=sys.stderr)
    gen = Lev.Generator.new(model)
    gen.props.temperature = 0.0
    gen.props.max_tokens = 128
    gen.props.keep_history = True
    gen.connect("token", lambda _gen, text, _id: print(text, end="", flush=True))

    prompts = sys.argv[2:] or (line.strip() for line in sys.stdin if line.strip())
    loop = GLib.MainLoop()
    cancellable = Gio.Cancellable()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, lambda: cancellable.cancel() or True)
    status = 0

    def ask(prompt):
        gen.generate_async(prompt, cancellable, done)

    def done(gen_, result):
        nonlocal status
        try:
            gen_.generate_finish(result)
            print(f"\n# {gen_.props.generated_tokens} tokens, first after "
                  f"{gen_.props.time_to_first_token * 1000:.1f} ms, "
                  f"{gen_.props.decode_tokens_per_second:.0f} tokens/s", file=sys.stderr)
        except GLib.Error as e:
            print(f"\n# {e.message}", file=sys.stderr)
            status = 1
            loop.quit()
            return
        nxt = next(it, None)
        if nxt is None:
            loop.quit()
        else:
            ask(nxt)

    it = iter(prompts)
    first = next(it, None)
    if first is None:
        return 0
    ask(first)
    loop.run()
    return status


if __name__ == "__main__":
    sys.exit(main())
