#!/usr/bin/python3
"""levtrain.py: offline trainer for Leviathan's default model: a small BitNet b1.58 (2B4T architecture) decoder.

Never needed at inference time. Uses Debian's python3-torch, python3-numpy, python3-sentencepiece, sentencepiece
(spm_train), bible-kjv (`bible`) and python3-matplotlib.

    levtrain.py prepare WORK                        text (KJV Leviticus..Revelation) + tokenizer + token ids
    levtrain.py train WORK --run NAME [--float] [--teacher HF_DIR] [--minutes M] [--steps N]
    levtrain.py export WORK --run NAME -o HF_DIR    Hugging Face layout (BitNetForCausalLM, packed uint8 + weight_scale)
    levtrain.py eval HF_DIR --text FILE             perplexity over a text file, each line a text ending with EOS
                                                    (same as levppl --lines --stride CTX-1)
    levtrain.py reference HF_DIR -o FILE.json       greedy ids + logits of the exported checkpoint (PyTorch forward)
    levtrain.py plot WORK --runs A,B -o loss.png    loss curves

Training is resumable: `train` continues from WORK/NAME/checkpoint.pt, and --minutes bounds one stage, so a run
never depends on one long uninterrupted process. Genesis and Exodus are held out of training entirely (they are
the text of tests/data/text/kjv_genesis_exodus.txt, used for held-out perplexity).
"""
import argparse
import json
import math
import os
import re
import struct
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------------- model

DEFAULT_CONFIG = dict(vocab_size=2048, hidden_size=192, intermediate_size=512, num_hidden_layers=6,
                      num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=256,
                      rms_norm_eps=1e-5, rope_theta=10000.0, hidden_act="relu2", bos_token_id=1, eos_token_id=2)


def act_quant(x):
    """Per-token absmax int8 fake quantization (BitNet b1.58): round(x * 127 / max|x|) / (127 / max|x|)."""
    s = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
    return (x * s).round().clamp(-128, 127) / s


def weight_quant(w):
    """Absmean ternary fake quantization: round(w / mean|w|) clamped to [-1, 1], times mean|w|."""
    scale = w.abs().mean().clamp(min=1e-5)
    return (w / scale).round().clamp(-1, 1) * scale


class BitLinear(torch.nn.Linear):
    """A linear layer trained ternary (weights) and int8 (activations) with straight-through gradients.
    quant: "qat" (training: latent weights made ternary on the fly), "exported" (weights already ternary × scale, as
    loaded from a packed checkpoint: only activations are quantized), or None (float)."""

    def __init__(self, n_in, n_out, quant):
        super().__init__(n_in, n_out, bias=False)
        self.quant = quant

    def forward(self, x):
        if self.quant is None:
            return F.linear(x, self.weight)
        xq = x + (act_quant(x) - x).detach()
        if self.quant == "exported":
            return F.linear(xq, self.weight)
        wq = self.weight + (weight_quant(self.weight) - self.weight).detach()
        return F.linear(xq, wq)


class RMSNorm(torch.nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rope(x, cos, sin):
    """Rotate-half RoPE (Hugging Face layout) on [batch, heads, seq, head_dim]."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Block(torch.nn.Module):
    def __init__(self, c, quant):
        super().__init__()
        d, hd = c["hidden_size"], c["hidden_size"] // c["num_attention_heads"]
        self.nh, self.nkv, self.hd = c["num_attention_heads"], c["num_key_value_heads"], hd
        self.input_layernorm = RMSNorm(d, c["rms_norm_eps"])
        self.q_proj = BitLinear(d, self.nh * hd, quant)
        self.k_proj = BitLinear(d, self.nkv * hd, quant)
        self.v_proj = BitLinear(d, self.nkv * hd, quant)
        self.attn_sub_norm = RMSNorm(self.nh * hd, c["rms_norm_eps"])
        self.o_proj = BitLinear(self.nh * hd, d, quant)
        self.post_attention_layernorm = RMSNorm(d, c["rms_norm_eps"])
        self.gate_proj = BitLinear(d, c["intermediate_size"], quant)
        self.up_proj = BitLinear(d, c["intermediate_size"], quant)
        self.ffn_sub_norm = RMSNorm(c["intermediate_size"], c["rms_norm_eps"])
        self.down_proj = BitLinear(c["intermediate_size"], d, quant)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(b, t, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(h).view(b, t, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(h).view(b, t, self.nkv, self.hd).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        rep = self.nh // self.nkv
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd) + mask
        a = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, t, self.nh * self.hd)
        x = x + self.o_proj(self.attn_sub_norm(a))
        h = self.post_attention_layernorm(x)
        g = F.relu(self.gate_proj(h)).square() * self.up_proj(h)
        return x + self.down_proj(self.ffn_sub_norm(g))


class BitNetLM(torch.nn.Module):
    """BitNet b1.58 2B4T architecture: GQA + RoPE attention, ReLU² FFN, attn/ffn sub-norms, tied embeddings."""

    def __init__(self, c, quant="qat"):
        super().__init__()
        self.c = c
        self.embed_tokens = torch.nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = torch.nn.ModuleList([Block(c, quant) for _ in range(c["num_hidden_layers"])])
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        hd = c["hidden_size"] // c["num_attention_heads"]
        inv = 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        self.register_buffer("inv_freq", inv, persistent=False)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                torch.nn.init.normal_(p, std=0.02)

    def forward(self, ids):
        t = ids.shape[1]
        ang = torch.arange(t, dtype=torch.float32)[:, None] * self.inv_freq[None, :]
        cos, sin = ang.cos(), ang.sin()
        mask = torch.full((t, t), float("-inf")).triu(1)
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return F.linear(self.norm(x), self.embed_tokens.weight)


# ---------------------------------------------------------------------------------------------------- data

def cmd_prepare(a):
    os.makedirs(a.work, exist_ok=True)
    text_path = os.path.join(a.work, "train.txt")
    raw = subprocess.run(["bible", "-f", "Lev1:1-Rev22:21"], capture_output=True, check=True).stdout.decode()
    verses = [re.sub(r"^\S+?\d+:\d+ ", "", line).strip() for line in raw.splitlines() if line.strip()]
    with open(text_path, "w") as f:
        f.write("\n".join(verses) + "\n")
    print(f"prepare: {len(verses)} verses, {os.path.getsize(text_path)} bytes of training text (Leviticus..Revelation)")
    prefix = os.path.join(a.work, "tokenizer")
    subprocess.run(["spm_train", f"--input={text_path}", f"--model_prefix={prefix}", "--model_type=bpe",
                    f"--vocab_size={a.vocab}", "--character_coverage=1.0", "--byte_fallback=true",
                    "--split_digits=true", "--remove_extra_whitespaces=false", "--bos_id=1", "--eos_id=2",
                    "--unk_id=0", "--pad_id=-1", "--num_threads=2", "--minloglevel=1",
                    "--normalization_rule_name=identity"], check=True)
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    ids = []
    for v in verses:
        ids.extend(sp.encode(v))
        ids.append(2)  # EOS between verses: the model learns where a verse ends
    arr = np.array(ids, dtype=np.uint16)
    arr.tofile(os.path.join(a.work, "train.u16"))
    print(f"prepare: tokenizer {prefix}.model ({a.vocab} pieces), {len(arr)} training tokens")


# ---------------------------------------------------------------------------------------------------- training

def batches(data, batch, seq, gen):
    while True:
        starts = torch.randint(0, len(data) - seq - 1, (batch,), generator=gen)
        x = torch.stack([torch.from_numpy(data[s:s + seq].astype(np.int64)) for s in starts.tolist()])
        y = torch.stack([torch.from_numpy(data[s + 1:s + seq + 1].astype(np.int64)) for s in starts.tolist()])
        yield x, y


def lr_at(step, total, peak, warmup):
    if step < warmup:
        return peak * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def cmd_train(a):
    torch.set_num_threads(a.threads)
    run_dir = os.path.join(a.work, a.run)
    os.makedirs(run_dir, exist_ok=True)
    ckpt_path = os.path.join(run_dir, "checkpoint.pt")
    data = np.fromfile(os.path.join(a.work, "train.u16"), dtype=np.uint16)
    cfg = dict(DEFAULT_CONFIG)
    model = BitNetLM(cfg, quant=None if a.float else "qat")
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.05)
    step, gen = 0, torch.Generator().manual_seed(a.seed)
    torch.manual_seed(a.seed)
    if os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step = ck["step"]
        gen.set_state(ck["gen"])
        print(f"train: resumed {a.run} at step {step}")
    teacher = None
    if a.teacher:
        teacher = load_hf(a.teacher)
        teacher.eval()
        print(f"train: distilling from {a.teacher} (KL to its next-token distribution, T={a.kd_temp})")
    n_params = sum(p.numel() for p in model.parameters())
    print(f"train: {a.run}: {'float' if a.float else 'ternary (BitNet b1.58 QAT)'}, {n_params / 1e6:.2f}M parameters, "
          f"{len(data)} tokens, batch {a.batch}x{a.seq}, {a.steps} steps")
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump({"config": cfg, "float": a.float, "teacher": a.teacher, "steps": a.steps, "batch": a.batch,
                   "seq": a.seq, "lr": a.lr, "seed": a.seed}, f, indent=1)
    log = open(os.path.join(run_dir, "loss.jsonl"), "a")
    it = batches(data, a.batch, a.seq, gen)
    t_start, tokens_done = time.time(), 0
    model.train()
    while step < a.steps:
        if a.minutes and time.time() - t_start > a.minutes * 60:
            print(f"train: stage time limit reached at step {step}; run again to continue")
            break
        x, y = next(it)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, a.steps, a.lr, a.warmup)
        logits = model(x)
        ce = F.cross_entropy(logits.view(-1, logits.shape[-1]), y.view(-1))
        loss = ce
        if teacher is not None:
            with torch.no_grad():
                tl = teacher(x)
            kd = F.kl_div(F.log_softmax(logits / a.kd_temp, -1), F.log_softmax(tl / a.kd_temp, -1),
                          log_target=True, reduction="batchmean") * a.kd_temp ** 2 / a.seq
            loss = a.kd_weight * kd + (1 - a.kd_weight) * ce
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        tokens_done += x.numel()
        log.write(json.dumps({"step": step, "loss": ce.item(), "tokens": step * x.numel(),
                              "time": time.time()}) + "\n")
        if step % 10 == 0 or step == a.steps:
            el = time.time() - t_start
            tps = tokens_done / el
            eta = (a.steps - step) * x.numel() / tps
            print(f"train: step {step}/{a.steps} loss {ce.item():.3f} {tps:.0f} tok/s elapsed {el / 60:.1f} min "
                  f"left {eta / 60:.1f} min", flush=True)
        if step % 50 == 0 or step == a.steps:
            save_checkpoint(ckpt_path, model, opt, step, gen)
            log.flush()
    save_checkpoint(ckpt_path, model, opt, step, gen)
    log.close()


def save_checkpoint(path, model, opt, step, gen):
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "gen": gen.get_state()}, tmp)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------------- safetensors

DTYPES = {"F32": (np.float32, 4), "U8": (np.uint8, 1), "BF16": (np.uint16, 2), "F16": (np.float16, 2)}


def write_safetensors(path, tensors):
    """tensors: name -> (dtype string, numpy array). Writes a safetensors file (sorted keys, 8-byte padded header)."""
    header, off, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for name in sorted(tensors):
        dt, arr = tensors[name]
        b = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        arr = np.frombuffer(data[b:end], dtype=DTYPES[e["dtype"]][0]).reshape(e["shape"])
        if e["dtype"] == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = (e["dtype"], arr)
    return out


def to_bf16(x):
    """Rounds float32 to bfloat16 (nearest even), returned as uint16 bit patterns."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


# ---------------------------------------------------------------------------------------------------- export

LINEARS = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
           "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}
NORMS = {"input_layernorm": "", "post_attention_layernorm": "", "attn_sub_norm": "self_attn.",
         "ffn_sub_norm": "mlp."}


def pack_ternary(t):
    """[out, in] int values in {-1,0,1} -> uint8 [out/4, in]: row i*(out/4)+j in bits 2i..2i+1 of row j, code t+1."""
    out = t.shape[0]
    assert out % 4 == 0, "output rows must be a multiple of 4"
    codes = (t + 1).astype(np.uint8).reshape(4, out // 4, -1)
    return codes[0] | (codes[1] << 2) | (codes[2] << 4) | (codes[3] << 6)


def cmd_export(a):
    run_dir = os.path.join(a.work, a.run)
    meta = json.load(open(os.path.join(run_dir, "config.json")))
    cfg, is_float = meta["config"], meta["float"]
    ck = torch.load(os.path.join(run_dir, "checkpoint.pt"))
    sd = {k: v.float().numpy() for k, v in ck["model"].items()}
    os.makedirs(a.output, exist_ok=True)
    tensors = {"model.embed_tokens.weight": ("BF16", to_bf16(sd["embed_tokens.weight"])),
               "model.norm.weight": ("BF16", to_bf16(sd["norm.weight"]))}
    for i in range(cfg["num_hidden_layers"]):
        for lin, grp in LINEARS.items():
            w = sd[f"layers.{i}.{lin}.weight"]
            name = f"model.layers.{i}.{grp}.{lin}.weight"
            if is_float:
                tensors[name] = ("BF16", to_bf16(w))
            else:
                scale = np.float32(max(np.abs(w).astype(np.float64).mean(), 1e-5))
                t = np.clip(np.round(w / scale), -1, 1).astype(np.int8)
                tensors[name] = ("U8", pack_ternary(t))
                tensors[name + "_scale"] = ("BF16", to_bf16(np.array([scale], dtype=np.float32)))
        for norm, prefix in NORMS.items():
            tensors[f"model.layers.{i}.{prefix}{norm}.weight"] = ("BF16", to_bf16(sd[f"layers.{i}.{norm}.weight"]))
    write_safetensors(os.path.join(a.output, "model.safetensors"), tensors)
    hd = cfg["hidden_size"] // cfg["num_attention_heads"]
    config = {"architectures": ["BitNetForCausalLM"], "model_type": "bitnet", **cfg, "head_dim": hd,
              "tie_word_embeddings": True, "torch_dtype": "bfloat16", "attention_bias": False,
              "initializer_range": 0.02}
    if not is_float:
        config["quantization_config"] = {"quant_method": "bitnet", "linear_class": "autobitlinear",
                                         "quantization_mode": "offline"}
    json.dump(config, open(os.path.join(a.output, "config.json"), "w"), indent=2)
    import shutil
    shutil.copy(os.path.join(a.work, "tokenizer.model"), os.path.join(a.output, "tokenizer.model"))
    json.dump({"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False,
               "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "legacy": True},
              open(os.path.join(a.output, "tokenizer_config.json"), "w"), indent=2)
    json.dump({"bos_token_id": 1, "eos_token_id": 2}, open(os.path.join(a.output, "generation_config.json"), "w"))
    print(f"export: {a.output} ({'float twin' if is_float else 'ternary, packed uint8 + weight_scale'})")


def load_hf(d, act_quant=True):
    """Loads an exported checkpoint (BitNetForCausalLM, packed or float) into a BitNetLM for inference."""
    cfg = json.load(open(os.path.join(d, "config.json")))
    quant = "exported" if "quantization_config" in cfg and act_quant else None
    c = {k: cfg[k] for k in DEFAULT_CONFIG}
    model = BitNetLM(c, quant=quant)
    t = read_safetensors(os.path.join(d, "model.safetensors"))
    sd = {"embed_tokens.weight": t["model.embed_tokens.weight"][1], "norm.weight": t["model.norm.weight"][1]}
    for i in range(c["num_hidden_layers"]):
        for lin, grp in LINEARS.items():
            name = f"model.layers.{i}.{grp}.{lin}.weight"
            dt, w = t[name]
            if dt == "U8":
                rows = np.concatenate([((w >> (2 * k)) & 3).astype(np.int8) - 1 for k in range(4)], axis=0)
                w = rows.astype(np.float32) * t[name + "_scale"][1].astype(np.float32)[0]
            sd[f"layers.{i}.{lin}.weight"] = w
        for norm, prefix in NORMS.items():
            sd[f"layers.{i}.{norm}.weight"] = t[f"model.layers.{i}.{prefix}{norm}.weight"][1]
    model.load_state_dict({k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in sd.items()})
    return model


# ---------------------------------------------------------------------------------------------------- evaluation

def cmd_eval(a):
    import sentencepiece as spm
    torch.set_num_threads(a.threads)
    model = load_hf(a.model)
    model.eval()
    sp = spm.SentencePieceProcessor(model_file=os.path.join(a.model, "tokenizer.model"))
    ids = []
    for line in open(a.text):
        if line.strip():
            ids.extend(sp.encode(line.strip()))
            ids.append(2)
    if a.max_tokens:
        ids = ids[:a.max_tokens]
    ctx = a.ctx
    nll, n = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(ids), ctx - 1):
            chunk = torch.tensor([[1] + ids[s:s + ctx - 1]])
            logits = model(chunk)[0, :-1]
            target = chunk[0, 1:]
            nll += F.cross_entropy(logits, target, reduction="sum").item()
            n += target.numel()
    ppl = math.exp(nll / n)
    print(json.dumps({"model": a.model, "text": a.text, "tokens": n, "ppl": ppl}))


def cmd_reference(a):
    """Greedy ids and logits of the exported checkpoint for a few prompts: the C engine must reproduce them.
    Logits are written twice: with activation quantization (the model as trained) and without it. Without it the
    computation is a plain float32 pass whose result two implementations reproduce to ~1e-5; with it, a value that
    lands within float rounding of a .5 boundary of the int8 grid can round the other way in the other
    implementation, which moves later logits by up to ~1e-2 while the greedy ids stay the same."""
    import sentencepiece as spm
    model = load_hf(a.model)
    model.eval()
    plain = load_hf(a.model, act_quant=False)
    plain.eval()
    sp = spm.SentencePieceProcessor(model_file=os.path.join(a.model, "tokenizer.model"))
    out = {"produced_with": "converter/levtrain.py reference (PyTorch float32 forward of the exported checkpoint)",
           "model": os.path.basename(a.model.rstrip("/")), "cases": []}
    logits_q, logits_f = [], []
    with torch.no_grad():
        for prompt in a.prompts:
            ids = [1] + sp.encode(prompt)
            n_prompt = len(ids)
            while len(ids) < n_prompt + a.n:
                logits = model(torch.tensor([ids]))[0]
                ids.append(int(logits[-1].argmax()))
            logits_q.append(model(torch.tensor([ids]))[0].numpy().astype(np.float32))
            logits_f.append(plain(torch.tensor([ids]))[0].numpy().astype(np.float32))
            out["cases"].append({"prompt": prompt, "prompt_tokens": ids[:n_prompt], "tokens": ids,
                                 "text": sp.decode(ids[1:])})
    np.concatenate(logits_q).astype("<f4").tofile(a.output + ".f32")
    np.concatenate(logits_f).astype("<f4").tofile(a.output + ".noact.f32")
    out["logits_file"] = os.path.basename(a.output) + ".f32"
    out["logits_file_no_act_quant"] = os.path.basename(a.output) + ".noact.f32"
    out["logits_layout"] = "float32 [sum over cases of len(tokens)][vocab]: row p of a case = logits after tokens[0..p]"
    json.dump(out, open(a.output, "w"), indent=1)
    for c in out["cases"]:
        print(repr(c["text"]))


def cmd_plot(a):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for run in a.runs.split(","):
        rows = [json.loads(l) for l in open(os.path.join(a.work, run, "loss.jsonl"))]
        steps = np.array([r["step"] for r in rows])
        loss = np.array([r["loss"] for r in rows])
        k = 25
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1:], smooth, label=run)
    ax.set_xlabel("step")
    ax.set_ylabel("training cross-entropy (nats/token, 25-step mean)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(a.output, dpi=110)
    print(f"plot: {a.output}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("prepare")
    s.add_argument("work")
    s.add_argument("--vocab", type=int, default=2048)
    s = sub.add_parser("train")
    s.add_argument("work")
    s.add_argument("--run", required=True)
    s.add_argument("--float", action="store_true", help="train the float twin (no quantization-aware training)")
    s.add_argument("--teacher", help="distil from this exported checkpoint")
    s.add_argument("--kd-temp", type=float, default=1.0)
    s.add_argument("--kd-weight", type=float, default=0.9)
    s.add_argument("--steps", type=int, default=1500)
    s.add_argument("--batch", type=int, default=16)
    s.add_argument("--seq", type=int, default=256)
    s.add_argument("--lr", type=float, default=3e-3)
    s.add_argument("--warmup", type=int, default=100)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--minutes", type=float, default=0, help="stop this stage after M minutes (resumable)")
    s.add_argument("--threads", type=int, default=2)
    s = sub.add_parser("export")
    s.add_argument("work")
    s.add_argument("--run", required=True)
    s.add_argument("-o", "--output", required=True)
    s = sub.add_parser("eval")
    s.add_argument("model")
    s.add_argument("--text", required=True)
    s.add_argument("--ctx", type=int, default=256, help="window (BOS + ctx-1 tokens), windows do not overlap")
    s.add_argument("--max-tokens", type=int, default=0)
    s.add_argument("--threads", type=int, default=2)
    s = sub.add_parser("reference")
    s.add_argument("model")
    s.add_argument("-o", "--output", required=True)
    s.add_argument("-n", type=int, default=24)
    s.add_argument("--prompts", nargs="+", default=["In the beginning", "And the LORD said unto Moses,",
                                                    "Blessed are the"])
    s = sub.add_parser("plot")
    s.add_argument("work")
    s.add_argument("--runs", required=True)
    s.add_argument("-o", "--output", required=True)
    a = p.parse_args()
    {"prepare": cmd_prepare, "train": cmd_train, "export": cmd_export, "eval": cmd_eval,
     "reference": cmd_reference, "plot": cmd_plot}[a.cmd](a)


if __name__ == "__main__":
    main()
