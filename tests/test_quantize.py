#!/usr/bin/env python3
"""test_quantize.py: levconvert's error compensation on real weights: each step lowers the KL divergence against the
float model (stories260K), finer scale groups fit the float weights at least as well as coarser ones, the written
outliers and adapters have the documented layout (read here with an independent parser), adapter files mount and
refuse the wrong model, natively ternary models are unchanged; calibration without --calib (text sampled from the
float model) beats the old built-in text; --rotate hadamard keeps the float model's function (llama2.c's logits) and
lowers the KL divergence; --ef-passes (error feedback alternated with the scales' refit) lowers it too.
Usage: test_quantize.py LEVCONVERT LEVRUN LEVPPL (fixtures from $LEV_FIXTURES)."""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

from levtest import check, finish, fixture, run

LEVCONVERT, LEVRUN, LEVPPL = sys.argv[1:4]
# under the sanitizers (LEV_TEST_LIGHT, set by meson) the same paths run on fewer tokens: a token costs 100-200x more
LIGHT = os.environ.get("LEV_TEST_LIGHT") == "1"
SCORE = ["--max-tokens", "400", "--ctx", "128", "--stride", "127"] if LIGHT else ["--max-tokens", "3000"]
SCORE_SHORT = ["--max-tokens", "200", "--ctx", "128", "--stride", "127"] if LIGHT else ["--max-tokens", "1000"]


def read_tensors(path):
    """The tensor directory of a .leviathan file (docs/format.md), as {name: (encoding, shape, bytes)}."""
    data = open(path, "rb").read()
    (magic, version, header_size, file_size, _ho, _hs, _so, _ss, _to, _ts, tensors_offset, n_tensors, data_offset,
     _data_size) = struct.unpack_from("<8sIIQQQQQQQQQQQ", data, 0)
    assert magic == b"LEVIATHN" and file_size == len(data)
    out = {}
    for i in range(n_tensors):
        e = tensors_offset + 128 * i
        name = data[e:e + 64].split(b"\0")[0].decode()
        enc, n_dims = struct.unpack_from("<II", data, e + 64)
        shape = struct.unpack_from("<4Q", data, e + 72)[:n_dims]
        off, size = struct.unpack_from("<QQ", data, e + 104)
        out[name] = (enc, shape, data[data_offset + off:data_offset + off + size])
    return out


ENC_Q8, ENC_T2, ENC_SPARSE = 3, 4, 8
tmp = tempfile.mkdtemp(prefix="lev-quant-")
try:
    src, tok = fixture("stories260K/stories260K.bin"), fixture("stories260K/tok512.bin")
    text = fixture("text/kjv_genesis_exodus.txt")
    f32 = os.path.join(tmp, "f32.leviathan")
    r = run([LEVCONVERT, src, "-t", tok, "-o", f32, "-q"])
    check(r.returncode == 0, f"float conversion: {r.stderr.decode()}")

    # --- each compensation step lowers the KL divergence against the float model (t2 and b1)
    steps = ["none", "ef", "ef+outliers", "ef+outliers+lowrank"]
    for fmt in ["t2", "b1"]:
        prev = None
        for step in steps:
            out = os.path.join(tmp, f"{fmt}-{step}.leviathan")
            r = run([LEVCONVERT, src, "-t", tok, "-f", fmt, "--compensate", step, "-o", out, "-q"])
            check(r.returncode == 0, f"convert {fmt} {step}: {r.stderr.decode()}")
            r = run([LEVPPL, "-m", out, "-b", f32, "-f", text, *SCORE, "--json", "-t", "2"])
            check(r.returncode == 0, f"levppl {fmt} {step}: {r.stderr.decode()}")
            res = json.loads(r.stdout) if r.returncode == 0 else {"kld": float("inf"), "bits_per_weight": 0}
            print(f"{fmt} {step:22s} kld {res['kld']:.4f} top1 {res.get('top1', 0):.3f} ppl {res.get('ppl', 0):.1f}"
                  f" bpw {res['bits_per_weight']:.3f}")
            if prev is not None:
                check(res["kld"] < prev["kld"], f"{fmt}: {step} does not lower the KL divergence "
                      f"({res['kld']:.4f} vs {prev['kld']:.4f})")
                check(res["bits_per_weight"] >= prev["bits_per_weight"], f"{fmt}: {step} bits per weight went down")
            prev = res

    # --- data-free calibration (the default without --calib: text sampled from the float model) against the old
    #     built-in English text, t2 and b1 with error feedback, on the default model's float twin (trained in float
    #     on KJV Leviticus-Revelation, docs/default-model.md), scored on the held-out Genesis-Exodus, which neither
    #     calibration saw, against the float twin itself
    twin = os.path.join(os.environ.get("LEV_MODELS_DIR", ""), "float-twin")
    if not os.path.exists(os.path.join(twin, "model.safetensors")):
        twin = fixture("float-twin-missing")      # skips (or fails under CI) with the path named
    twin_f32 = os.path.join(tmp, "twin-f32.leviathan")
    r = run([LEVCONVERT, twin, "-f", "f32", "-o", twin_f32, "-q"])
    check(r.returncode == 0, f"twin float conversion: {r.stderr.decode()}")
    twin_score = ["--lines", "--ctx", "256", "--stride", "255", "--max-tokens", "400" if LIGHT else "2000"]

    def kld(model, base=f32, text_path=text, score=SCORE):
        r = run([LEVPPL, "-m", model, "-b", base, "-f", text_path, *score, "--json", "-t", "2"])
        check(r.returncode == 0, f"levppl {model}: {r.stderr.decode()}")
        return json.loads(r.stdout)["kld"] if r.returncode == 0 else float("inf")

    twin_sampled = {}
    for fmt in ["t2", "b1"]:
        got = {}
        for cal, extra in [("sampled", ["--calib-tokens", "512" if LIGHT else "2048"]), ("builtin", ["--calib-builtin"])]:
            out = os.path.join(tmp, f"twin-{fmt}-ef-{cal}.leviathan")
            r = run([LEVCONVERT, twin, "-f", fmt, "--compensate", "ef", "-o", out, *extra])
            err = r.stderr.decode()
            check(r.returncode == 0, f"convert twin {fmt} ef {cal}: {err}")
            check(("sampled from the float model" if cal == "sampled" else "the built-in text") in err,
                  f"levconvert does not say which calibration it used: {err!r}")
            got[cal] = kld(out, twin_f32, text, twin_score)
        print(f"twin {fmt} ef: KL {got['sampled']:.4f} calibrated on sampled text, {got['builtin']:.4f} on the "
              "built-in text")
        check(got["sampled"] < got["builtin"], f"{fmt}: data-free calibration does not beat the built-in text")
        twin_sampled[fmt] = got["sampled"]
    # reproducible: the same seed gives the same file, another seed another one
    files = []
    for seed in ["1", "1", "2"]:
        out = os.path.join(tmp, f"seed-{len(files)}.leviathan")
        r = run([LEVCONVERT, src, "-t", tok, "-f", "t2", "--compensate", "ef", "--calib-tokens", "256",
                 "--calib-seed", seed, "-o", out, "-q"])
        check(r.returncode == 0, f"--calib-seed {seed}: {r.stderr.decode()}")
        files.append(open(out, "rb").read() if r.returncode == 0 else b"")
    check(files[0] == files[1] != files[2], "data-free calibration is not reproducible by its seed")

    # --- --rotate hadamard: the rotated float model computes the same function (llama2.c's logits within 1e-4: the
    #     rotation is orthogonal); its weights did change; rotation lowers the KL divergence of t2 and b1
    rot = os.path.join(tmp, "f32-rot.leviathan")
    r = run([LEVCONVERT, src, "-t", tok, "-f", "f32", "--rotate", "hadamard", "-o", rot, "-q"])
    check(r.returncode == 0, f"--rotate hadamard -f f32: {r.stderr.decode()}")
    ref260 = json.load(open(fixture("stories260K/expected/logits_once_upon_a_time_16x512.json")))
    ids = " ".join(map(str, ref260["input_token_at_position"]))
    for model in [f32, rot]:
        logits = os.path.join(tmp, "rot.f32")
        r = run([LEVRUN, "-m", model, "--ids", ids, "--logits-out", logits, "-t", "2"])
        check(r.returncode == 0, f"levrun {model}: {r.stderr.decode()}")
        got = open(logits, "rb").read() if os.path.exists(logits) else b""
        if len(got) == 16 * 512 * 4:
            vals = struct.unpack(f"<{16 * 512}f", got)
            diff = max(abs(vals[p * 512 + i] - ref260["logits"][p][i]) for p in range(16) for i in range(512))
            print(f"{os.path.basename(model)}: max |logit - llama2.c| = {diff:.3g}")
            check(diff <= 1e-4, f"{model}: logits differ from llama2.c's by {diff}")
        else:
            check(False, f"{model}: logits file size")
    tr, tf = read_tensors(rot), read_tensors(f32)
    check(all(tr[n][2] != tf[n][2] for n in tr if n.startswith("blk.") and n.split(".")[2] in
              ("attn_q", "attn_k", "attn_v", "attn_o", "ffn_gate", "ffn_up", "ffn_down")), "rotation left a matrix alone")
    hp_flags = struct.unpack_from("<I", open(rot, "rb").read(), 128 + 4)[0]
    check(hp_flags & (1 << 6), f"rotation flag not set: 0x{hp_flags:x}")
    # scored on stories sampled from the float model (its own distribution, no truncation) with other seeds than the
    # converter's calibration text
    stories = os.path.join(tmp, "stories.txt")
    with open(stories, "w") as f:
        for seed in range(1001, 1003 if LIGHT else 1009):
            r = run([LEVRUN, "-m", f32, "-p", "Once upon a time", "-n", "256", "--temp", "1", "--top-k", "0",
                     "--top-p", "1", "--min-p", "0", "--seed", str(seed), "-q", "-t", "1"])
            check(r.returncode == 0, f"levrun story {seed}: {r.stderr.decode()}")
            f.write(r.stdout.decode() + "\n")
    # (t2 and b1 without compensation are not among them: uncompensated, stories260K is all but destroyed, KL 4-6, near
    # a guess, and rotation moves that within the scoring's noise: t2 4.07 -> 4.26; b1 lower on 8 stories, 5.59 ->
    # 5.74 on the sanitizer run's 2; on the twin it lowers both, docs/quality.md)
    for fmt, step in [("t2", "ef"), ("b1", "ef")]:
        k = {}
        for r_ in ["none", "hadamard"]:
            out = os.path.join(tmp, f"{fmt}-{step}-rot-{r_}.leviathan")
            r = run([LEVCONVERT, src, "-t", tok, "-f", fmt, "--compensate", step, "--rotate", r_, "-o", out, "-q"])
            check(r.returncode == 0, f"convert {fmt} {step} --rotate {r_}: {r.stderr.decode()}")
            k[r_] = kld(out, f32, stories)
        print(f"{fmt} {step}: KL {k['none']:.4f} unrotated, {k['hadamard']:.4f} rotated")
        check(k["hadamard"] < k["none"], f"{fmt} {step}: rotation does not lower the KL divergence")

    # --- --ef-passes 4: the error-feedback sweep alternated with the scales' least-squares refit, keeping the sweep
    #     with the lowest calibration loss, lowers the KL divergence below one sweep's: stories260K t2 and b1 (on the
    #     sampled stories above) and the float twin t2 (on the held-out Genesis-Exodus, same calibration as the
    #     data-free check above; not under the sanitizers)
    for fmt in ["t2", "b1"]:
        k = {}
        for passes in ["1", "4"]:
            out = os.path.join(tmp, f"{fmt}-ef-passes{passes}.leviathan")
            r = run([LEVCONVERT, src, "-t", tok, "-f", fmt, "--compensate", "ef", "--ef-passes", passes,
                     *(["--calib-tokens", "512"] if LIGHT else []), "-o", out, "-q"])
            check(r.returncode == 0, f"convert {fmt} ef --ef-passes {passes}: {r.stderr.decode()}")
            k[passes] = kld(out, f32, stories)
        print(f"{fmt} ef: KL {k['1']:.4f} with one sweep, {k['4']:.4f} with --ef-passes 4")
        check(k["4"] < k["1"], f"{fmt} ef: --ef-passes 4 does not lower the KL divergence")
    if not LIGHT:      # (under the sanitizers the twin's conversion alone takes minutes; stories260K runs the path)
        out = os.path.join(tmp, "twin-t2-ef-passes4.leviathan")
        r = run([LEVCONVERT, twin, "-f", "t2", "--compensate", "ef", "--ef-passes", "4", "--calib-tokens", "2048",
                 "-o", out, "-q"])
        check(r.returncode == 0, f"convert twin t2 ef --ef-passes 4: {r.stderr.decode()}")
        k4 = kld(out, twin_f32, text, twin_score)
        print(f"twin t2 ef: KL {twin_sampled.get('t2', float('inf')):.4f} with one sweep, {k4:.4f} with --ef-passes 4")
        check(k4 < twin_sampled.get("t2", float("inf")), "twin t2 ef: --ef-passes 4 does not lower the KL divergence")
    # the option's bounds and its need of --compensate
    for extra, msg in [(["--compensate", "ef", "--ef-passes", "0"], "--ef-passes must be between 1 and 16"),
                       (["--compensate", "ef", "--ef-passes", "17"], "--ef-passes must be between 1 and 16"),
                       (["--ef-passes", "2"], "--ef-passes needs --compensate")]:
        r = run([LEVCONVERT, src, "-t", tok, "-f", "t2", *extra, "-o", os.path.join(tmp, "bad.leviathan")])
        check(r.returncode != 0 and msg in r.stderr.decode(), f"{extra}: {r.stderr.decode()!r}")

    # --- error feedback lowers the layer-wise proxy loss (w - wq)^T H (w - wq) well below round-to-nearest's, summed
    #     over the matrices (GPTQ's objective; LEV_QUANT_DEBUG prints both)
    env = dict(os.environ, LEV_QUANT_DEBUG="1")
    r = subprocess.run([LEVCONVERT, src, "-t", tok, "-f", "t2", "--compensate", "ef", "-o",
                        os.path.join(tmp, "dbg.leviathan")], capture_output=True, timeout=600, env=env)
    losses = [(float(a), float(b)) for a, b in
              re.findall(r"proxy loss ([-+.e0-9]+) \(round to nearest ([-+.e0-9]+)", r.stderr.decode())]
    ef_loss, rtn_loss = sum(a for a, _ in losses), sum(b for _, b in losses)
    print(f"proxy loss over {len(losses)} matrices: error feedback {ef_loss:.4g}, round to nearest {rtn_loss:.4g}")
    check(len(losses) == 35 and ef_loss < 0.7 * rtn_loss, "error feedback does not lower the proxy loss")

    # --- per-group scales (--scale group / group64): one f32 scale per 128-weight block (or 64 weights) of each row
    #     after the codes; each row's least-squares scales reconstruct the float weights at least as well as the
    #     coarser layout's (a coarser scale is a candidate for every finer group): 64 <= 128 <= row; the engine's
    #     SIMD and scalar kernels agree on them
    def decode_matrix(t, cols):
        """Dequantized rows of a t2 / b1 tensor and its scales per row, read with this script's own decoder."""
        enc, shape, data = t
        rows, blocks = shape[0], (cols + 127) // 128
        rb = blocks * (32 if enc == ENC_T2 else 16)
        n_scales = (len(data) - rows * rb) // 4
        scales = struct.unpack_from(f"<{n_scales}f", data, rows * rb)
        per_row = n_scales // rows
        width = blocks * 128 // per_row                   # weights per scale
        out = []
        for r in range(rows):
            row = data[r * rb:(r + 1) * rb]
            vals = []
            for b in range(blocks):
                if enc == ENC_T2:
                    blk = row[32 * b:32 * b + 32]
                    v = [((blk[j % 32] >> (2 * (j // 32))) & 3) - 1 for j in range(128)]
                else:
                    blk = row[16 * b:16 * b + 16]
                    v = [1 if (blk[j // 8] >> (j % 8)) & 1 else -1 for j in range(128)]
                vals += [scales[r * per_row + (128 * b + j) // width] * x for j, x in enumerate(v)]
            out.append(vals[:cols])
        return out, per_row

    floats = read_tensors(f32)
    for fmt, enc in [("t2", ENC_T2), ("b1", 6)]:
        files = {}
        for gran in ["row", "group", "group64"]:
            out = os.path.join(tmp, f"{fmt}-scale-{gran}.leviathan")
            r = run([LEVCONVERT, src, "-t", tok, "-f", fmt, "--scale", gran, "-o", out, "-q"])
            check(r.returncode == 0, f"convert {fmt} --scale {gran}: {r.stderr.decode()}")
            files[gran] = out
        ts = {gran: read_tensors(path) for gran, path in files.items()}
        worse = 0
        err = {"row": 0.0, "group": 0.0, "group64": 0.0}
        for layer in range(5):
            name = f"blk.{layer}.ffn_down"          # [64][172]: two blocks per row
            fenc, fshape, fdata = floats[name]
            rows, cols = fshape
            w = struct.unpack(f"<{rows * cols}f", fdata)
            dec = {gran: decode_matrix(t[name], cols) for gran, t in ts.items()}
            per = tuple(dec[g][1] for g in ["row", "group", "group64"])
            check(ts["group"][name][0] == enc and per == (1, 2, 4), f"{fmt} {name}: {per} scales per row")
            for r in range(rows):
                e = {g: sum((w[r * cols + c] - dec[g][0][r][c]) ** 2 for c in range(cols)) for g in dec}
                for g in e:
                    err[g] += e[g]
                worse += (e["group"] > e["row"] * (1 + 1e-6) + 1e-12) + (e["group64"] > e["group"] * (1 + 1e-6) + 1e-12)
        print(f"{fmt} ffn_down squared error: one scale per row {err['row']:.5g}, per 128 {err['group']:.5g}, "
              f"per 64 {err['group64']:.5g}")
        check(worse == 0 and err["group64"] < err["group"] < err["row"],
              f"{fmt}: finer scales fit {worse} rows worse than coarser ones")
        for gran in ["group", "group64"]:
            res = {}
            for kern in ["scalar", ""]:
                env = dict(os.environ, LEV_KERNELS=kern)
                r = subprocess.run([LEVPPL, "-m", files[gran], "-f", text, *SCORE_SHORT, "--json", "-t", "2"],
                                   capture_output=True, timeout=600, env=env)
                check(r.returncode == 0, f"levppl {fmt} {gran} ({kern or 'default'} kernels): {r.stderr.decode()}")
                res[kern] = json.loads(r.stdout) if r.returncode == 0 else {"ppl": 0.0, "bits_per_weight": 0.0}
            # not bit for bit: the kernels sum the scaled groups in different orders, and a last-bit difference can
            # flip the rounding of an int8 activation downstream (measured: 9e-4 here, 8e-5 on the default model's
            # twin); a misplaced scale moves the perplexity by far more
            check(abs(res["scalar"]["ppl"] - res[""]["ppl"]) <= 5e-3 * res[""]["ppl"],
                  f"{fmt} {gran}: scalar kernels ppl {res['scalar']['ppl']} vs {res['']['ppl']}")
            check(res[""]["ppl"] > 0, f"{fmt} {gran}: ppl")

    # --- the file layout of outliers and adapters, read with this script's own parser
    full = os.path.join(tmp, "t2-ef+outliers+lowrank.leviathan")
    ts = read_tensors(full)
    outl = {n: t for n, t in ts.items() if n.endswith(".outliers")}
    check(len(outl) == 5 * 7, f"{len(outl)} outlier tensors, expected one per matrix (35)")
    for name, (enc, shape, raw) in outl.items():
        rows, cols = shape
        check(enc == ENC_SPARSE and name[:-len(".outliers")] in ts, f"{name}: encoding {enc} or no base matrix")
        ptr = struct.unpack_from(f"<{rows + 1}I", raw, 0)
        nnz = (len(raw) - 4 * (rows + 1)) // 4
        ent = struct.unpack_from(f"<{nnz}I", raw, 4 * (rows + 1))
        check(ptr[0] == 0 and ptr[-1] == nnz and all(ptr[i] <= ptr[i + 1] for i in range(rows)),
              f"{name}: row pointers")
        asc = all(all((ent[k] & 0xffff) < (ent[k + 1] & 0xffff) for k in range(ptr[r], ptr[r + 1] - 1))
                  and all((ent[k] & 0xffff) < cols for k in range(ptr[r], ptr[r + 1])) for r in range(rows))
        check(asc, f"{name}: column indices not strictly ascending in every row")
        share = nnz / (rows * cols)
        check(0.004 <= share <= 0.006, f"{name}: {share:.4%} outliers, expected the default 0.5%")
    adapters = {n: t for n, t in ts.items() if n.endswith(".lora_a") or n.endswith(".lora_b")}
    check(len(adapters) == 2 * 5 * 7, f"{len(adapters)} adapter tensors, expected 70")
    for name, (enc, shape, raw) in adapters.items():
        rows, cols = shape
        check(enc == ENC_Q8 and len(raw) == rows * cols + 4 * rows, f"{name}: not int8 with one scale per row")
        base = ts[name[:-len(".lora_a")]]
        rank = cols if name.endswith(".lora_a") else rows
        check(rank == 4, f"{name}: rank {rank}, expected the default 4")
        check(base[0] == ENC_T2, f"{name}: the base matrix is not t2")

    # --- an adapter file: the base model without adapters plus the mounted adapter gives the combined model
    base = os.path.join(tmp, "base.leviathan")
    adapter = os.path.join(tmp, "adapter.leviathan")
    r = run([LEVCONVERT, src, "-t", tok, "-f", "t2", "--compensate", "ef+outliers+lowrank", "--adapter-out", adapter,
             "-o", base, "-q"])
    check(r.returncode == 0, f"--adapter-out: {r.stderr.decode()}")
    bt, at = read_tensors(base), read_tensors(adapter)
    check(not any(n.endswith((".lora_a", ".lora_b")) for n in bt), "the base model still holds adapters")
    check(len(at) == 70 and all(n.endswith((".lora_a", ".lora_b")) for n in at), "the adapter file's tensors")
    ppl = lambda *extra: run([LEVPPL, "-m", *extra, "-f", text, *SCORE_SHORT, "--json", "-t", "2"])
    r1, r2, r3 = ppl(full), ppl(base, "--adapter", adapter), ppl(base)
    if r1.returncode == r2.returncode == r3.returncode == 0:
        j1, j2, j3 = json.loads(r1.stdout), json.loads(r2.stdout), json.loads(r3.stdout)
        check(j1["ppl"] == j2["ppl"], f"model + adapter file ppl {j2['ppl']} != combined file {j1['ppl']}")
        check(j1["bits_per_weight"] == j2["bits_per_weight"], "bits per weight differ with the adapter file")
        check(j3["ppl"] != j1["ppl"] and j3["bits_per_weight"] < j1["bits_per_weight"], "the adapter changes nothing")
    else:
        check(False, f"levppl with adapters: {r1.stderr.decode()} {r2.stderr.decode()} {r3.stderr.decode()}")
    # the wrong model, a missing file, a model file given as adapter: refused with a message, exit 1
    other = os.path.join(tmp, "other.leviathan")
    r = run([LEVCONVERT, fixture("bitnet-tinystories/bit_model_1M.bin"), "-t", tok, "-o", other, "-q"])
    check(r.returncode == 0, "convert bit_model_1M")
    for model, ad, want in [(other, adapter, "another shape"), (base, os.path.join(tmp, "none"), "cannot open"),
                            (base, f32, "not outliers or adapters")]:
        r = run([LEVRUN, "-m", model, "--adapter", ad, "-p", "Once", "-n", "2"])
        check(r.returncode == 1 and want in r.stderr.decode(), f"adapter {ad} on {model}: rc {r.returncode} "
              f"{r.stderr.decode()!r}")
    # a mounted adapter on a model that has its own: refused
    r = run([LEVRUN, "-m", full, "--adapter", adapter, "-p", "Once", "-n", "2"])
    check(r.returncode == 1 and "both" in r.stderr.decode(), f"double adapter: {r.stderr.decode()!r}")

    # --- a corrupt outlier tensor (two columns swapped) is refused by the loader
    raw = bytearray(open(full, "rb").read())
    name, (enc, shape, data) = next((n, t) for n, t in outl.items() if len(t[2]) > 4 * (t[1][0] + 1) + 8
                                    and any(struct.unpack_from("<I", t[2], 4 * (r + 1))[0]
                                            - struct.unpack_from("<I", t[2], 4 * r)[0] >= 2
                                            for r in range(t[1][0])))
    rows = shape[0]
    ptr = struct.unpack_from(f"<{rows + 1}I", data, 0)
    row = next(r for r in range(rows) if ptr[r + 1] - ptr[r] >= 2)
    at_ = raw.find(data)
    e0 = at_ + 4 * (rows + 1) + 4 * ptr[row]
    a, b = raw[e0:e0 + 4], raw[e0 + 4:e0 + 8]
    raw[e0:e0 + 4], raw[e0 + 4:e0 + 8] = b, a
    bad = os.path.join(tmp, "bad.leviathan")
    open(bad, "wb").write(raw)
    r = run([LEVRUN, "-m", bad, "-p", "Once", "-n", "2"])
    check(r.returncode == 1 and "ascending" in r.stderr.decode(), f"swapped outlier columns: {r.stderr.decode()!r}")

    # --- bad options: exit 2 with a message, no output file
    for args, want in [(["-f", "q8", "--compensate", "ef"], "need --format t2"),
                       (["-f", "t2", "--compensate", "gptq"], "unknown --compensate"),
                       (["-f", "t2", "--compensate", "ef", "--outliers", "70%"], "--outliers"),
                       (["-f", "t2", "--compensate", "ef", "--adapter-out", adapter], "--adapter-out needs"),
                       (["-f", "t2", "--rank", "0"], "--rank"),
                       (["-f", "t1", "--scale", "group64"], "--scale group64 needs"),
                       (["-f", "t2", "--rotate", "givens"], "unknown --rotate"),
                       (["-f", "t2", "--compensate", "ef", "--calib-lines"], "--calib-lines needs"),
                       (["-f", "t2", "--calib-builtin"], "need --compensate")]:
        out = os.path.join(tmp, "bad-opt.leviathan")
        r = run([LEVCONVERT, src, "-t", tok, "-o", out, *args])
        check(r.returncode == 2 and want in r.stderr.decode() and not os.path.exists(out),
              f"levconvert {args}: rc {r.returncode} {r.stderr.decode()[:200]!r}")
    r = run([LEVCONVERT, src, "-t", tok, "-o", os.path.join(tmp, "x.leviathan"), "-f", "t2", "--compensate", "ef",
             "--calib", os.path.join(tmp, "missing.txt")])
    check(r.returncode == 1 and "calibration" in r.stderr.decode(), f"missing --calib: {r.stderr.decode()!r}")

    # --- natively ternary: --compensate changes nothing (same file as plain t2), logits still match the reference
    t3 = fixture("bitnet-tinystories/bit_model_3M.bin")
    files = []
    for extra in [[], ["--compensate", "none"], ["--compensate", "ef+outliers+lowrank"], ["--rotate", "hadamard"],
                  ["--rotate", "hadamard", "--compensate", "ef"]]:
        out = os.path.join(tmp, f"3M-{len(files)}.leviathan")
        r = run([LEVCONVERT, t3, "-t", tok, "-f", "t2", "-o", out, *extra])
        check(r.returncode == 0, f"convert 3M {extra}: {r.stderr.decode()}")
        check("--rotate" not in extra or "--rotate ignored" in r.stderr.decode(), f"3M {extra}: no message")
        files.append(open(out, "rb").read() if r.returncode == 0 else b"")
    check(len(set(files)) == 1 and files[0], "natively ternary model changed by --compensate or --rotate")
    ref = json.load(open(fixture("bitnet-tinystories/expected/logits_3M_once_upon_a_time_16x512.json")))
    logits = os.path.join(tmp, "3M.f32")
    ids = " ".join(map(str, ref["input_token_at_position"]))
    r = run([LEVRUN, "-m", os.path.join(tmp, "3M-1.leviathan"), "--ids", ids, "--logits-out", logits, "-t", "2"])
    check(r.returncode == 0, f"levrun 3M: {r.stderr.decode()}")
    got = open(logits, "rb").read() if os.path.exists(logits) else b""
    if len(got) == 16 * 512 * 4:
        vals = struct.unpack(f"<{16 * 512}f", got)
        diff = max(abs(vals[p * 512 + i] - ref["logits"][p][i]) for p in range(16) for i in range(512))
        print(f"bit_model_3M t2 --compensate none: max |logit - reference| = {diff:.3g}")
        check(diff <= 1e-4, f"3M logits differ from the reference by {diff}")
    else:
        check(False, "3M logits file size")
finally:
    shutil.rmtree(tmp, ignore_errors=True)

finish()
