#!/usr/bin/env python3
"""make_seeds.py: writes the fuzz targets' seed corpora from tests/data (tiny shrunk copies).
Usage: make_seeds.py FIXTURES OUTDIR [LEVCONVERT]   (OUTDIR/<target>/...; LEVCONVERT makes the loader's seeds)."""
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile

FIX, OUT = sys.argv[1], sys.argv[2]
LEVCONVERT = sys.argv[3] if len(sys.argv) > 3 else None
SEP = b"\n--lev-fuzz-file--\n"
rng = random.Random(8)


def out(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def fix(rel):
    return os.path.join(FIX, rel)


# ---------------------------------------------------------------- hf: shrunk checkpoints (config + safetensors)
DTYPE_SIZE = {"F32": 4, "F16": 2, "BF16": 2, "U8": 1, "I8": 1}


def shrink_hf(src):
    """Returns (config, safetensors bytes) of a one-layer copy of the checkpoint in src with tiny widths."""
    cfg = json.load(open(os.path.join(src, "config.json")))
    blob = open(os.path.join(src, "model.safetensors"), "rb").read()
    hlen = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + hlen])
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim", cfg["hidden_size"] // heads)
    new_heads, new_kv, new_hd = 2, 1, 4
    # the vocabulary keeps its size (the loader's seeds embed the fixture's 512-piece tokenizer)
    dims = {cfg["hidden_size"]: new_heads * new_hd, cfg["intermediate_size"]: 12,
            heads * hd: new_heads * new_hd, kv * hd: new_kv * new_hd}
    cfg.update(hidden_size=new_heads * new_hd, intermediate_size=12, num_hidden_layers=1,
               num_attention_heads=new_heads, num_key_value_heads=new_kv, max_position_embeddings=64,
               bos_token_id=1, eos_token_id=2)
    if "head_dim" in cfg:
        cfg["head_dim"] = new_hd
    tensors, data = {}, b""
    for name, t in header.items():
        if name == "__metadata__":
            tensors[name] = t
            continue
        if ".layers." in name and ".layers.0." not in name:
            continue
        shape = [dims.get(s, s) for s in t["shape"]]
        n = 1
        for s in shape:
            n *= s
        size = DTYPE_SIZE[t["dtype"]] * n
        if t["dtype"] == "F32":
            raw = struct.pack(f"<{n}f", *[rng.uniform(-0.5, 0.5) for _ in range(n)])
        elif t["dtype"] == "F16":
            raw = struct.pack(f"<{n}e", *[rng.uniform(-0.5, 0.5) for _ in range(n)])
        elif t["dtype"] == "BF16":
            raw = b"".join(struct.pack("<f", rng.uniform(-0.5, 0.5))[2:] for _ in range(n))
        else:
            raw = bytes(rng.randrange(256) for _ in range(size))
        tensors[name] = {"dtype": t["dtype"], "shape": shape, "data_offsets": [len(data), len(data) + size]}
        data += raw
    h = json.dumps(tensors, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return cfg, struct.pack("<Q", len(h)) + h + data


hf_dirs = []
for name in sorted(os.listdir(fix("hf"))):
    src = fix(os.path.join("hf", name))
    if not os.path.exists(os.path.join(src, "config.json")):
        continue
    cfg, st = shrink_hf(src)
    cj = json.dumps(cfg, indent=1).encode()
    tc = open(os.path.join(src, "tokenizer_config.json"), "rb").read()
    out("hf", name, cj + SEP + st + SEP + tc)
    index = json.dumps({"metadata": {}, "weight_map": {k: "model-00001-of-00001.safetensors"
                                                      for k in json.loads(st[8:8 + struct.unpack("<Q", st[:8])[0]])
                                                      if k != "__metadata__"}}).encode()
    out("hf", name + "-sharded", cj + SEP + st + SEP + SEP + index)
    hf_dirs.append((name, cj, st))

# ---------------------------------------------------------------- loader: tiny converted models
if LEVCONVERT:
    tmp = tempfile.mkdtemp(prefix="lev-seeds-")
    try:
        jobs = []
        for name, cj, st in hf_dirs:
            d = os.path.join(tmp, name)
            os.makedirs(d)
            open(os.path.join(d, "config.json"), "wb").write(cj)
            open(os.path.join(d, "model.safetensors"), "wb").write(st)
            shutil.copy(os.path.join(FIX, "hf", name, "tokenizer.model"), d)
            variants = [(f, ["-f", f]) for f in ["auto", "q8", "t2", "q4"]]
            if name == "stories260K-llama":      # outliers and adapters
                variants.append(("t2-compensated", ["-f", "t2", "--compensate", "ef+outliers+lowrank", "--rank", "1",
                                                     "--calib-tokens", "64", "--calib-ctx", "32"]))
            jobs.append((name, [d], variants))
        # per-group scales need rows wider than one block: stories260K itself (ffn_down rows are 172 wide)
        jobs.append(("stories260K", [fix("stories260K/stories260K.bin"), "-t", fix("stories260K/tok512.bin")],
                     [("b1-group", ["-f", "b1", "--scale", "group", "--embd-format", "q4"]),
                      ("t2-group64", ["-f", "t2", "--scale", "group64", "--embd-format", "q4"])]))
        for name, src, variants in jobs:
            for label, args in variants:
                o = os.path.join(tmp, f"{name}-{label}.leviathan")
                r = subprocess.run([LEVCONVERT, *src, "-q", *args, "-o", o], capture_output=True)
                if r.returncode == 0:
                    out("loader", f"{name}-{label}", open(o, "rb").read())
        o = os.path.join(tmp, "tok512.leviathan")
        r = subprocess.run([LEVCONVERT, fix("stories260K/tok512.model"), "--vocab-only", "-q", "-o", o],
                           capture_output=True)
        if r.returncode == 0:
            out("loader", "tok512-vocab-only", open(o, "rb").read())
    finally:
        shutil.rmtree(tmp)

# ---------------------------------------------------------------- vocab: tokenizer files
out("vocab", "tok512.model", open(fix("stories260K/tok512.model"), "rb").read())
out("vocab", "tok512.bin", open(fix("stories260K/tok512.bin"), "rb").read())


def shrink_tokenizer_json(rel, keep):
    """A tokenizer.json with the first `keep` pieces, the merges among them and the added tokens renumbered."""
    tj = json.load(open(fix(rel), encoding="utf-8"))
    vocab = {p: i for p, i in tj["model"]["vocab"].items() if i < keep}
    merges = []
    for m in tj["model"]["merges"]:
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(m)
    tj["model"]["vocab"] = vocab
    tj["model"]["merges"] = merges
    added = []
    for i, t in enumerate(tj.get("added_tokens", [])[:6]):
        t = dict(t)
        if t["id"] >= keep:
            t["id"] = keep + i
            vocab.setdefault(t["content"], t["id"])
        added.append(t)
    tj["added_tokens"] = added
    if isinstance(tj.get("post_processor"), dict):
        tj["post_processor"] = None
    return json.dumps(tj, ensure_ascii=False, separators=(",", ":")).encode()


out("vocab", "llama3-small.json", shrink_tokenizer_json("tokenizers/llama3/tokenizer.json", 600))
out("vocab", "qwen3-small.json", shrink_tokenizer_json("tokenizers/qwen3/tokenizer.json", 600))
out("vocab", "mistral-small.json", shrink_tokenizer_json("tokenizers/mistral-like-spm32k/tokenizer.json", 600))

# ---------------------------------------------------------------- tokenize: mode byte + text or ids
texts = []
for f in sorted(os.listdir(fix("tokenizers/vectors-extra"))):
    cases = json.load(open(fix(os.path.join("tokenizers/vectors-extra", f)), encoding="utf-8"))
    for c in cases.get("cases", []) if isinstance(cases, dict) else cases:
        if isinstance(c, dict) and isinstance(c.get("text"), str):
            texts.append(c["text"])
texts = sorted(set(texts))
for i, t in enumerate(texts[:24]):
    out("tokenize", f"text-{i:02d}", bytes([i % 8]) + t.encode())
out("tokenize", "invalid-utf8", bytes([0]) + b"Hello \xff\xfe w\xc3orld \xed\xa0\x80")
out("tokenize", "special", bytes([5]) + "<s>[INST] hi [/INST]</s><|begin_of_text|><|eot_id|>".encode())
out("tokenize", "ids-llama2", bytes([8]) + struct.pack("<8i", 1, 15043, 3186, 29871, 13, 2, -5, 32000))
out("tokenize", "ids-llama3", bytes([9]) + struct.pack("<6i", 128000, 9906, 1917, 128009, 300000, 256))

# ---------------------------------------------------------------- chat: template \0 role \0 content ...
def chat(name, template, *msgs):
    out("chat", name, "\0".join([template, *msgs]).encode())


for rel in ("tokenizers/llama3/tokenizer_config.json", "tokenizers/qwen3/tokenizer_config.json"):
    ct = json.load(open(fix(rel), encoding="utf-8")).get("chat_template")
    if isinstance(ct, str):
        chat(rel.split("/")[1], ct, "system", "Be brief.", "user", "Hi!", "assistant", "Hello.", "user", "Bye")
chat("llama2", "\x08[INST] <<SYS>> [/INST]", "system", "S", "user", "U\u00e9", "assistant", "A")
chat("zephyr", "\x0c<|user|> <|assistant|>", "user", "Tell me a story", "assistant", "")
chat("bitnet", "\x15<|eot_id|> Assistant: User: ", "user", "2+2?")
chat("names", "chatml", "tool", "x", "user", "\U0001f600")
chat("empty", "")

# ---------------------------------------------------------------- gguf: llama.cpp's GGUF fixtures, whole
gguf_dir = fix("gguf")
if os.path.isdir(gguf_dir):
    for name in sorted(os.listdir(gguf_dir)):
        if name.endswith(".gguf"):
            out("gguf", name, open(os.path.join(gguf_dir, name), "rb").read())
