#!/usr/bin/python3
"""bench-element.py: levtextgen's decode speed and time to first token against levrun on the same model and
settings (greedy, same prompt, same token count, same threads). Prints the median of several interleaved runs.

Usage: pipelines/bench-element.py MODEL [TOKENS=256] [THREADS=1] [RUNS=7]
Uses build/ (or $LEV_BUILD_DIR) for levrun and the uninstalled plugin."""
import os
import re
import statistics
import subprocess
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
build = os.environ.get("LEV_BUILD_DIR", os.path.join(root, "build"))
model = sys.argv[1]
tokens, threads, runs = (int(a) for a in (sys.argv[2:] + ["256", "1", "7"][len(sys.argv) - 2:])[:3])
prompt = "Once upon a time"
env = dict(os.environ, GST_PLUGIN_PATH=os.path.join(build, "gst-plugin"))

levrun_tps, elem_tps, elem_ttft = [], [], []
for _ in range(runs):
    r = subprocess.run([os.path.join(build, "tools", "levrun"), "-m", model, "-p", prompt, "-n", str(tokens),
                        "--temp", "0", "-t", str(threads), "--ignore-eos"], capture_output=True, text=True,
                       check=True)
    levrun_tps.append(float(re.search(r"generated \d+ tokens in [\d.]+ s \(([\d.]+) t/s\)", r.stderr).group(1)))
    r = subprocess.run(["gst-launch-1.0", "-m", "fdsrc", "fd=0", "!", "levtextgen", f"model={model}",
                        "temperature=0", f"n-threads={threads}", f"max-tokens={tokens}", "ignore-eos=true", "!",
                        "fdsink", "fd=2", "sync=false"], input=prompt, capture_output=True, text=True, env=env,
                       check=True)
    elem_tps.append(float(re.search(r"decode-tokens-per-second=\(double\)([\d.e+]+)", r.stdout).group(1)))
    elem_ttft.append(int(re.search(r"time-to-first-token=\(guint64\)(\d+)", r.stdout).group(1)) / 1e6)

lr, el = statistics.median(levrun_tps), statistics.median(elem_tps)
print(f"model {os.path.basename(model)}, {tokens} tokens, {threads} thread(s), median of {runs} runs")
print(f"levrun      decode {lr:10.1f} tokens/s")
print(f"levtextgen  decode {el:10.1f} tokens/s  ({100 * (el - lr) / lr:+.1f}% vs levrun), "
      f"time to first token {statistics.median(elem_ttft):.2f} ms")
