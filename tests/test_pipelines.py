#!/usr/bin/python3
"""test_pipelines.py: gst-launch-1.0 with levtextgen used uninstalled from the build tree (GST_PLUGIN_PATH) and
the pipelines/ scripts as written; "speech": espeak-ng → pocketsphinx → levtextgen, "tts": levtextgen → festival.
Usage: test_pipelines.py {launch|speech|tts} BUILD_DIR (fixtures from $LEV_FIXTURES)."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

MODE, BUILD = sys.argv[1], os.path.abspath(sys.argv[2])
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.environ.get("LEV_FIXTURES", os.path.join(os.path.dirname(os.path.abspath(__file__)), "data"))
CI = os.environ.get("CI", "").lower() == "true"
failures = []


def skip_or_fail(why):
    if CI:
        print(f"FAIL: {why} (CI=true: scripts/deps.sh installs it)")
        sys.exit(1)
    print(f"SKIP: {why}")
    sys.exit(77)


def fixture(rel):
    path = os.path.join(FIX, rel)
    if not os.path.exists(path):
        skip_or_fail(f"fixture {path} not found (tests/data incomplete?)")
    return path


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAILED:", what)


# a user's environment: the normal system plugin path plus the build tree's plugin, a registry of our own
env = {k: v for k, v in os.environ.items() if not k.startswith("GST_PLUGIN")}
env["GST_PLUGIN_PATH"] = os.path.join(BUILD, "gst-plugin")
env["GST_REGISTRY_1_0"] = os.path.join(BUILD, "tests", f"registry-pipelines-{MODE}.bin")
env["LEV_BUILD_DIR"] = BUILD
if env.get("LD_PRELOAD"):          # sanitizer runtime for programs that are not sanitized themselves
    env["ASAN_OPTIONS"] = "detect_leaks=0"


def run(args, **kw):
    return subprocess.run(args, capture_output=True, env=kw.pop("env", env), timeout=kw.pop("timeout", 120), **kw)


tmp = tempfile.mkdtemp(prefix="lev-pipelines-")
try:
    model = os.path.join(tmp, "stories.leviathan")
    r = run([os.path.join(BUILD, "converter", "levconvert"), fixture("stories260K/stories260K.bin"), "--tokenizer",
             fixture("stories260K/tok512.bin"), "-o", model])
    check(r.returncode == 0, f"levconvert: {r.stderr.decode()}")
    env["LEV_MODEL"] = model

    if MODE == "launch":
        # stdin → levtextgen → stdout, as pipelines/stdin-to-stdout.sh runs it: the same text as levrun
        prompt = "Once upon a time"
        r = run([os.path.join(ROOT, "pipelines", "stdin-to-stdout.sh"), "temperature=0", "n-threads=1",
                 "max-tokens=40", "ignore-eos=true"], input=(prompt + "\n").encode())
        got = r.stdout.decode()
        check(r.returncode == 0, f"stdin-to-stdout.sh: rc {r.returncode}: {r.stderr.decode()}")
        r = run([os.path.join(BUILD, "tools", "levrun"), "-m", model, "-p", prompt, "-n", "40", "--temp", "0",
                 "-t", "1", "-q", "--ignore-eos"])
        want = r.stdout.decode()[len(prompt):].rstrip("\n")
        # prompt-mode=line ends each response with the response separator, a newline
        check(got == want + "\n", f"element {got!r} != levrun {want!r} + newline")
        r = run([os.path.join(ROOT, "pipelines", "stdin-to-stdout.sh"), "temperature=0", "n-threads=1",
                 "max-tokens=40", "ignore-eos=true", 'response-separator="\\\\n--\\\\n"'],
                input=(prompt + "\n" + prompt + "\n").encode())
        check(r.stdout.decode() == (want + "\n--\n") * 2, f"response-separator: {r.stdout.decode()!r}")

        # a word-per-buffer source (as whisper or AWS transcribers push) with end-of-utterance events:
        # prompt-mode=utterance answers each utterance as a whole, as levrun answers the sentence
        r = run([os.path.join(ROOT, "pipelines", "words-to-llm.py"), "temperature=0", "n-threads=1", "max-tokens=40",
                 "ignore-eos=true"], input=(prompt + "\n" + prompt + "\n").encode())
        check(r.returncode == 0, f"words-to-llm.py: rc {r.returncode}: {r.stderr.decode()}")
        check(r.stdout.decode() == (want + "\n") * 2, f"words-to-llm.py {r.stdout.decode()!r} != {want!r} twice")
        check(r.stderr.decode().count("final-transcript") == 2, f"final-transcript events: {r.stderr.decode()!r}")

        # stop strings on a gst-launch line, as a shell user writes them: '<"\\n\\n","User:">'; GStreamer's parser
        # unquotes \\n to backslash-n, which the element reads as a newline (with a single backslash the parser
        # alone gives the stop string "nn", issue 20)
        r = run(["gst-launch-1.0", "-q", "fdsrc", "fd=0", "!", "levtextgen", f"model={model}", "temperature=0",
                 "n-threads=1", "max-tokens=40", "ignore-eos=true", 'stop-strings=<"\\\\n\\\\n","User:">', "!",
                 "fdsink", "fd=1"], input=(prompt + "\n").encode())
        cut = want.split("\n\n")[0].split("User:")[0]
        check(r.returncode == 0 and "n" in cut and r.stdout.decode() == cut,
              f"stop-strings with escapes: {r.stdout.decode()!r} != {cut!r} ({r.stderr.decode()})")

        # two lines, two answers; statistics and end-of-response on the bus/downstream (gst-launch -m, -v)
        r = run(["gst-launch-1.0", "-m", "fdsrc", "fd=0", "!", "levtextgen", f"model={model}", "prompt-mode=line",
                 "temperature=0", "n-threads=1", "max-tokens=16", "!", "fakesink", "silent=false", "-v"],
                input=b"Once upon a time\nThe dog\n")
        out = r.stdout.decode()
        check(r.returncode == 0, f"gst-launch -m: {r.stderr.decode()}")
        check(len(re.findall(r"leviathan/stats, response=\(guint64\)", out)) == 2, "two stats messages")
        check(out.count("leviathan/end-of-response") >= 2, "end-of-response events downstream")
        check("Progress: (load-model)" in out or "load-model" in out, "progress messages while loading")

        # token ids between two elements that share the vocabulary
        r = run(["gst-launch-1.0", "-q", "fdsrc", "fd=0", "!", "levtextgen", f"model={model}", "temperature=0",
                 "n-threads=1", "max-tokens=8", "ignore-eos=true", "output-mode=response", "!",
                 "application/x-leviathan-tokens", "!", "levtextgen", f"model={model}", "temperature=0",
                 "n-threads=1", "max-tokens=8", "ignore-eos=true", "!", "fdsink", "fd=1"], input=b"Once upon a time")
        check(r.returncode == 0 and len(r.stdout) > 0, f"token chain: rc {r.returncode} {r.stderr.decode()}")

        # a missing model: an error naming the problem, exit code 1
        r = run(["gst-launch-1.0", "fakesrc", "num-buffers=1", "!", "levtextgen",
                 f"model={tmp}/missing.leviathan", "!", "fakesink"])
        check(r.returncode != 0 and b"Could not load the model" in r.stdout + r.stderr, "missing model error")

    elif MODE == "speech":
        if shutil.which("espeak-ng") is None:
            skip_or_fail("espeak-ng is not installed")
        for element in ("pocketsphinx", "wavparse", "audioresample"):
            if run(["gst-inspect-1.0", element]).returncode != 0:
                skip_or_fail(f"GStreamer element {element} is missing (gstreamer1.0-pocketsphinx, "
                             "pocketsphinx-en-us, gstreamer1.0-plugins-good)")
        e = dict(env, GST_LAUNCH="gst-launch-1.0 -m")
        if env.get("LD_PRELOAD"):      # espeak-ng hangs with the sanitizer runtime preloaded
            e["ESPEAK"] = "env -u LD_PRELOAD espeak-ng"
        r = run([os.path.join(ROOT, "pipelines", "speech-to-llm.sh"), "Once upon a time there was a little girl",
                 "temperature=0", "n-threads=1", "max-tokens=16"], env=e, timeout=300)
        out = r.stdout.decode(errors="replace")
        check(r.returncode == 0, f"speech-to-llm.sh: rc {r.returncode}: {r.stderr.decode(errors='replace')[-2000:]}")
        finals = re.findall(r'pocketsphinx, .*final=\(boolean\)true.*hypothesis=\(string\)("?)(.*?)\1;', out)
        stats = re.findall(r"leviathan/stats, .*prompt-tokens=\(uint\)(\d+).*generated-tokens=\(uint\)(\d+)", out)
        print(f"pocketsphinx heard: {[h for _, h in finals]}; levtextgen: {stats}")
        check(len(finals) >= 1 and any(h.strip() for _, h in finals), "pocketsphinx recognized no text")
        check(len(stats) >= 1 and all(int(p) > 0 and int(g) > 0 for p, g in stats),
              "levtextgen did not answer what pocketsphinx heard")
    elif MODE == "tts":
        if shutil.which("festival") is None or run(["gst-inspect-1.0", "festival"]).returncode != 0:
            skip_or_fail("festival or its GStreamer element is missing (festival, festvox-kallpc16k, "
                         "gstreamer1.0-plugins-bad)")
        wav = os.path.join(tmp, "answer.wav")
        e = dict(env, OUT=wav)
        r = run([os.path.join(ROOT, "pipelines", "llm-to-speech.sh"), "Once upon a time", "temperature=0",
                 "n-threads=1", "max-tokens=12"], env=e, timeout=300)
        check(r.returncode == 0, f"llm-to-speech.sh: rc {r.returncode}: {r.stderr.decode(errors='replace')[-2000:]}")
        data = open(wav, "rb").read() if os.path.exists(wav) else b""
        check(data[:4] == b"RIFF" and data[8:12] == b"WAVE" and len(data) > 16000, f"wav of {len(data)} bytes")
finally:
    shutil.rmtree(tmp, ignore_errors=True)

if failures:
    print(f"{len(failures)} check(s) failed")
    sys.exit(1)
print(f"pipelines ({MODE}): all checks passed")
