#!/usr/bin/python3
"""quality-tables.py: turns the JSON lines of scripts/quality.sh into the Markdown tables of docs/quality.md.
Usage: scripts/quality-tables.py quality.jsonl"""
import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]


def table(select, title):
    print(f"\n{title}\n")
    print("| model, format, compensation | bits/weight | ppl | float ppl | ppl ratio | KL | top-1 | convert s |"
          " decode t/s (1 thread) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if not select(r):
            continue
        p = r["levppl"]
        base = p.get("base_ppl")
        ratio = f"{p['ppl'] / base:.2f}×" if base else "–"
        kld = f"{p['kld']:.3f}" if "kld" in p else "–"
        top1 = f"{100 * p['top1']:.1f} %" if "top1" in p else "–"
        tps = f"{r['decode_tps_1t']:.0f}" if r.get("decode_tps_1t") else "–"
        print(f"| {r['label']} | {p['bits_per_weight']:.2f} | {p['ppl']:.2f} | "
              f"{base:.2f} | {ratio} | {kld} | {top1} | {r['convert_s']:.2f} | {tps} |" if base else
              f"| {r['label']} | {p['bits_per_weight']:.2f} | {p['ppl']:.2f} | – | – | {kld} | {top1} | "
              f"{r['convert_s']:.2f} | {tps} |")


# rows of the passes and fixtures sections (issue 17) go into their own tables at the end
def issue17(r):
    return "--compensate" in r["label"] or "ef-passes=" in r["label"] or r["label"].startswith("bitnet-tiny")


table(lambda r: r["label"].startswith("stories260K") and r["text"] == "tinystories-sampled" and not issue17(r),
      "stories260K, in-domain text (stories sampled from the float model, 10,391 tokens):")
table(lambda r: r["label"].startswith("stories260K") and r["text"] == "kjv",
      "stories260K, KJV Genesis–Exodus (out of domain, first 20,000 tokens):")
table(lambda r: r["label"].startswith("bitllama2c"), "Natively ternary TinyStories models (no float twin):")
table(lambda r: ((r["label"].startswith("twin") and r["label"].count(" ") == 2) or r["label"].startswith("default"))
      and not issue17(r),
      "Float twin of the default model, held-out KJV Genesis–Exodus with --lines (first 20,000 tokens):")
table(lambda r: r["label"].startswith("twin") and r["label"].count(" ") > 2 and "--scale group" not in r["label"]
      and "=" not in r["label"] and not issue17(r),
      "Float twin, quality against bits per weight (first 10,000 tokens):")
table(lambda r: r["label"].startswith("twin") and "--scale group" in r["label"] and "=" not in r["label"],
      "Float twin, per-group scales, held-out KJV Genesis–Exodus with --lines (first 20,000 tokens):")

table(lambda r: "calib=" in r["label"] and "rotate=" not in r["label"],
      "Float twin, calibration: in-domain (Matthew) and data-free (sampled by the float model), built-in text "
      "when run; "
      "held-out KJV Genesis–Exodus with --lines (first 10,000 tokens):")
# rotation: each step without and with it (the unrotated ef and ef+outliers+lowrank rows are the calib=indomain ones)
steps = ["none", "ef", "ef+outliers", "ef+outliers+lowrank"]


def rot_key(r):
    words = r["label"].split()
    step = words[2]
    return (words[1], steps.index(step) if step in steps else 9, "--scale" in r["label"], "datafree" in r["label"],
            "hadamard" in r["label"])


picked = sorted((r for r in rows if ("rotate=" in r["label"] and not issue17(r)) or r["label"].endswith((
                 "ef calib=indomain", "ef+outliers+lowrank calib=indomain"))), key=rot_key)
rows_all, rows = rows, picked
table(lambda r: True, "Float twin, randomized Hadamard rotation (--rotate hadamard), calibrated on Matthew unless "
      "marked datafree; held-out KJV Genesis–Exodus with --lines (first 10,000 tokens):")
rows = rows_all

table(lambda r: r["label"].startswith("twin") and "--compensate" in r["label"],
      "Float twin, --ef-passes and the settings of issue 17's targets, in-domain calibration (Matthew) unless marked; "
      "held-out KJV Genesis–Exodus with --lines (first 10,000 tokens):")
table(lambda r: "ef-passes=" in r["label"] or r["label"].startswith("bitnet-tiny"),
      "stories260K and bitnet-tiny, sampled stories (10,391 tokens):")
