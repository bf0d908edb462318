#!/usr/bin/python3
"""reference.py — golden losses, logits and LoRA gradients from an independent PyTorch model.

usage: tests/golden/reference.py [--models DIR] [--slimtune PATH] [--out DIR] [--types t,t,...]
                                 [--archs a,a] [--dtype float64|float32] [--no-make]

Steps:
 1. scripts/make-tiny-model DIR (default $BUILD/golden/models, BUILD defaulting to build) writes tiny-llama / tiny-qwen2 as GGUF (F32)
    and as Hugging Face directories; --no-make reuses what is there.
 2. For q4_0 and q4_k, `SLIMTUNE quantize DIR/tiny-<arch>.gguf DIR/tiny-<arch>-<type>.gguf --type <type>`
    (ggml's reference quantizers; deterministic). Its output is read back and dequantized by this
    project's own numpy dequantizers (scripts/ggufpy.py). If SLIMTUNE is missing those cases are left
    out (and the C test reports them missing).
 3. Per (arch, storage type) it builds the exact effective weights the C model uses, in HF order:
      f32         the HF safetensors
      f16 / bf16  every matrix (token_embd / lm_head included) rounded to IEEE half / bfloat16 (nearest
                  even); norms and biases F32
      q8_0        ggml's Q8_0 reference quantizer (numpy, ggufpy.quantize_q8_0) then dequantized
      q4_0, q4_k  the GGUF written by `slimtune quantize`, dequantized, q/k rows un-permuted (llama)
      nf4         bitsandbytes NF4 (blocks of 64 of the flattened GGUF-order tensor) with double
                  quantization (blocks of 256 absmax values, signed 8-bit dynamic map), dequantized
    and runs an independent forward/backward (HF conventions: RMSNorm, rotate_half RoPE on HF rows,
    llama3 frequency scaling, causal GQA attention, SwiGLU, q/k/v biases and tied embeddings for
    qwen2) with LoRA r=4, alpha=8 on all seven projections (A, B ~ N(0, 0.05), seeded).
 4. Writes OUT (default tests/golden/fixtures): adapter-<arch>.gguf (llama.cpp LoRA GGUF; for llama
    the q/k lora_b rows in the GGUF's permuted order), <arch>-<type>.bin (little-endian float32) and
    index.json (what each .bin holds, the batch, the vocabulary subset, the sha256 of every model file
    the fixtures were made from). Cases already in index.json that were not recomputed are kept when
    the model checksums still match.

The computation runs in float64 by default (weights are the float32 values above, widened), so the
fixtures carry no rounding noise of their own; --dtype float32 runs it in float32 instead (used to
measure the float32 noise floor).
"""
import hashlib
import json
import math
import os
import subprocess
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import ggufpy as gg  # noqa: E402

ARCHS = ("llama", "qwen2")
TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "nf4")
FILE_TYPES = ("q4_0", "q4_k")  # storage types that come from `slimtune quantize`
B, T = 2, 12
ROW_LEN = (12, 8)  # real tokens per row; row 1 is right-padded
LORA_R, LORA_ALPHA, LORA_STD = 4, 8.0, 0.05
N_SUBSET = 256
SEED = 20250101
TOLERANCE = 1e-4
TARGETS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
PROJ_HF = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
           "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
           "ffn_down": "mlp.down_proj"}

# bitsandbytes' NF4 code values (quantiles of N(0, 1) normalised to [-1, 1]), ascending
NF4_CODE = np.array([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
    0.7229568362236023, 1.0], dtype=np.float32)


def die(msg):
    sys.stderr.write("reference.py: %s\n" % msg)
    sys.exit(1)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


# ---- weights -----------------------------------------------------------------------------------

def read_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    n = int.from_bytes(buf[:8], "little")
    header = json.loads(buf[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            die("%s: %s is %s, expected F32" % (path, name, info["dtype"]))
        s, e = info["data_offsets"]
        out[name] = np.frombuffer(buf, dtype="<f4", count=(e - s) // 4, offset=8 + n + s).reshape(info["shape"]).copy()
    return out


def permute_qk(w, n_head):
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute_qk(w, n_head):
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def dynamic_map_signed():
    """bitsandbytes create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8) as float32:
    for i = 0..6, fractions b = torch.linspace(0.1, 1, 2^i + 1) in float32 (torch computes element k
    as start + step*k below the middle and end - step*(steps-1-k) above it, with a fused multiply-add:
    emulated here exactly in float64, one rounding to float32), means (b[k] + b[k+1]) / 2, values
    +-(float32(10^(i-6)) * means); then 0 and 1; sorted. This reproduces the table bitsandbytes ships
    (e.g. map[1] = -0.9789062738418579)."""
    f32 = np.float32
    data = []
    for i in range(7):
        steps = 2 ** i + 1
        start, end = f32(0.1), f32(1.0)
        step = f32((end - start) / f32(steps - 1))
        b = np.array([f32(np.float64(step) * k + np.float64(start)) if k < steps // 2
                      else f32(np.float64(end) - np.float64(step) * (steps - 1 - k)) for k in range(steps)], dtype=f32)
        means = ((b[:-1] + b[1:]) / f32(2)).astype(f32)
        scale = f32(10.0 ** (i - 6))
        data += list((scale * means).astype(f32))
        data += list((-(scale * means)).astype(f32))
    data += [f32(0), f32(1)]
    assert len(data) == 256
    return np.sort(np.array(data, dtype=f32))


DYN_MAP = dynamic_map_signed()
NF4_MID = ((NF4_CODE[:-1] + NF4_CODE[1:]) * np.float32(0.5)).astype(np.float32)


def nf4_index(x):
    """NF4 index of normalised values x (float32): the number of float32 midpoints of adjacent code
    values that x exceeds (bitsandbytes' dQuantizeNF4 decision tree)."""
    return (x[..., None] > NF4_MID).sum(axis=-1)


def dyn_quantize(x):
    """bitsandbytes dQuantize<0> over DYN_MAP (vectorised): a 7-step binary search from pivot 127
    keeping the neighbours passed, then a float32 midpoint test against the upper or lower one."""
    code = DYN_MAP
    x = x.astype(np.float32)
    pivot = np.full(x.shape, 127, np.int64)
    up_p = np.full(x.shape, 255, np.int64)
    lo_p = np.zeros(x.shape, np.int64)
    lower = np.full(x.shape, -1.0, np.float32)
    upper = np.full(x.shape, 1.0, np.float32)
    val = code[pivot]
    i = 64
    while i > 0:
        gt = x > val
        lo_p = np.where(gt, pivot, lo_p)
        lower = np.where(gt, val, lower)
        up_p = np.where(gt, up_p, pivot)
        upper = np.where(gt, upper, val)
        pivot = np.where(gt, pivot + i, pivot - i)
        val = code[pivot]
        i //= 2
    upper = np.where(up_p == 255, code[255], upper)
    lower = np.where(lo_p == 0, code[0], lower)
    gt = x > val
    mid_up = ((upper + val) * np.float32(0.5)).astype(np.float32)
    mid_lo = ((lower + val) * np.float32(0.5)).astype(np.float32)
    return np.where(gt, np.where(x > mid_up, up_p, pivot), np.where(x < mid_lo, lo_p, pivot))


def nf4_roundtrip(x):
    """NF4 with double quantization (quant.h, bitsandbytes quantize_4bit(compress_statistics=True)
    then dequantize_4bit): returns dequant(quant(x)) of the flattened float32 tensor x, same shape.
    First level: blocks of 64, absmax, index of x * (1 / absmax). Second level: offset = mean of the
    absmax values (float64 sum), blocks of 256 of (absmax - offset) quantized with the dynamic map
    by value * (1 / absmax2). Dequantization: a = map[i] * absmax2 + offset, x = code[q] * a
    (float32, two roundings each)."""
    f32 = np.float32
    flat = np.ascontiguousarray(x, dtype=f32).reshape(-1)
    n = flat.size
    nb = (n + 63) // 64
    pad = np.zeros(nb * 64, f32)
    pad[:n] = flat
    blk = pad.reshape(nb, 64)
    absmax = np.max(np.abs(blk), axis=1).astype(f32)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = (f32(1) / absmax).astype(f32)
        q = nf4_index((blk * inv[:, None]).astype(f32))
    offset = f32(np.sum(absmax.astype(np.float64)) / nb)
    a = (absmax - offset).astype(f32)
    nb2 = (nb + 255) // 256
    a_pad = np.zeros(nb2 * 256, f32)
    a_pad[:nb] = a
    a2 = a_pad.reshape(nb2, 256)
    absmax2 = np.max(np.abs(a2), axis=1).astype(f32)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv2 = (f32(1) / absmax2).astype(f32)
        qi = dyn_quantize((a2 * inv2[:, None]).astype(f32))
    a_deq = ((DYN_MAP[qi] * absmax2[:, None]).astype(f32) + offset).astype(f32)
    a_deq = a_deq.reshape(-1)[:nb]
    y = (NF4_CODE[q] * a_deq[:, None]).astype(f32).reshape(-1)[:n]
    return y.reshape(x.shape)


def is_matrix(name):
    return name.endswith(".weight") and ("proj" in name or "embed_tokens" in name or "lm_head" in name)


def gguf_to_hf(arch, gname, n_layers):
    if gname == "token_embd.weight":
        return "model.embed_tokens.weight"
    if gname == "output.weight":
        return "lm_head.weight"
    if gname == "output_norm.weight":
        return "model.norm.weight"
    if gname == "rope_freqs.weight":
        return None
    parts = gname.split(".")
    l, t, kind = int(parts[1]), parts[2], parts[3]
    p = "model.layers.%d." % l
    if t == "attn_norm":
        return p + "input_layernorm.weight"
    if t == "ffn_norm":
        return p + "post_attention_layernorm.weight"
    return p + PROJ_HF[t] + "." + kind


def effective_weights(arch, typ, hf, cfg, qpath):
    """The weights (HF names, float32, HF row order) the C model computes with for storage type typ."""
    H, Hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]

    def to_gguf_order(name, w):
        if arch == "llama" and name.endswith("q_proj.weight"):
            return permute_qk(w, H), lambda y: unpermute_qk(y, H)
        if arch == "llama" and name.endswith("k_proj.weight"):
            return permute_qk(w, Hkv), lambda y: unpermute_qk(y, Hkv)
        return w, lambda y: y

    if typ in FILE_TYPES:
        r = gg.Reader(qpath)
        out = {}
        for gname, t in r.tensors.items():
            hname = gguf_to_hf(arch, gname, cfg["num_hidden_layers"])
            if hname is None:
                continue
            w = t.numpy()
            if hname not in hf or tuple(hf[hname].shape) != w.shape:
                die("%s: tensor %s (%s) does not match the HF model" % (qpath, gname, hname))
            _, back = to_gguf_order(hname, hf[hname])
            out[hname] = back(w)
        if set(out) != set(hf):
            die("%s: tensors differ from the HF model: %s" % (qpath, sorted(set(out) ^ set(hf))))
        return out
    out = {}
    for name, w in hf.items():
        if typ == "f32" or not is_matrix(name):
            out[name] = w
        elif typ == "f16":
            out[name] = gg.f16_round(w)
        elif typ == "bf16":
            out[name] = gg.bf16_round(w)
        elif typ == "q8_0":
            out[name] = gg.dequantize(gg.Q8_0, gg.quantize_q8_0(w), list(reversed(w.shape)))
        elif typ == "nf4":
            g, back = to_gguf_order(name, w)
            out[name] = back(nf4_roundtrip(g))
        else:
            die("unknown type %s" % typ)
    return out


# ---- the model ---------------------------------------------------------------------------------

def inv_freq(cfg, dt):
    """RoPE inverse frequencies, HF's default and llama3 rules, in float64."""
    hd = cfg["head_dim"]
    base = cfg["rope_theta"]
    f = 1.0 / (base ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    rs = cfg.get("rope_scaling")
    if rs and rs.get("rope_type") == "llama3":
        factor, lo, hi, old = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"], rs["original_max_position_embeddings"]
        lo_wl, hi_wl = old / lo, old / hi
        wl = 2 * math.pi / f
        scaled = torch.where(wl > lo_wl, f / factor, f)
        smooth = (old / wl - lo) / (hi - lo)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wl >= hi_wl) & (wl <= lo_wl)
        f = torch.where(medium, smoothed, scaled)
    return f.to(dt)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rmsnorm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def forward(W, cfg, lora, scale, tokens, targets, dt):
    """Returns (loss, logits of the target rows [n_sel, vocab]); lora: {(layer, gguf target): (A, B)}
    torch tensors in HF order."""
    Bn, Tn = tokens.shape
    H, Hkv, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    eps = cfg["rms_norm_eps"]
    w = lambda n: W[n]  # noqa: E731
    x = w("model.embed_tokens.weight")[tokens]
    pos = torch.arange(Tn, dtype=torch.float64)
    ang = torch.outer(pos, inv_freq(cfg, torch.float64))
    emb = torch.cat((ang, ang), dim=-1)
    cos, sin = emb.cos().to(dt), emb.sin().to(dt)
    causal = torch.ones(Tn, Tn, dtype=torch.bool).tril()

    def lin(h, l, t):
        name = "model.layers.%d.%s" % (l, PROJ_HF[t])
        y = h @ w(name + ".weight").T
        if name + ".bias" in W:
            y = y + W[name + ".bias"]
        A, Bm = lora[(l, t)]
        return y + scale * ((h @ A.T) @ Bm.T)

    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        h = rmsnorm(x, w(p + "input_layernorm.weight"), eps)
        q = lin(h, l, "attn_q").view(Bn, Tn, H, hd).transpose(1, 2)
        k = lin(h, l, "attn_k").view(Bn, Tn, Hkv, hd).transpose(1, 2)
        v = lin(h, l, "attn_v").view(Bn, Tn, Hkv, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // Hkv, dim=1)
        v = v.repeat_interleave(H // Hkv, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        s = s.masked_fill(~causal, float("-inf"))
        y = torch.softmax(s, dim=-1) @ v
        y = y.transpose(1, 2).reshape(Bn, Tn, H * hd)
        x = x + lin(y, l, "attn_output")
        h = rmsnorm(x, w(p + "post_attention_layernorm.weight"), eps)
        g = lin(h, l, "ffn_gate")
        u = lin(h, l, "ffn_up")
        x = x + lin(torch.nn.functional.silu(g) * u, l, "ffn_down")
    x = rmsnorm(x, w("model.norm.weight"), eps)
    head = W["lm_head.weight"] if "lm_head.weight" in W else W["model.embed_tokens.weight"]
    sel = targets.reshape(-1) >= 0
    xs = x.reshape(Bn * Tn, -1)[sel]
    logits = xs @ head.T
    tgt = targets.reshape(-1)[sel]
    lse = torch.logsumexp(logits, dim=-1)
    loss = (lse - logits.gather(1, tgt[:, None])[:, 0]).sum()
    return loss, logits, lse


# ---- fixture pieces ----------------------------------------------------------------------------

def make_batch(arch, n_tok, rng):
    """tokens [B,T] (ids < n_tok; row 1 right-padded with id 0), targets [B,T] (next token, -1 at
    prompt / masked / padded positions)."""
    tokens = rng.integers(3, n_tok, size=(B, T)).astype(np.int32)
    targets = np.full((B, T), -1, np.int32)
    for b in range(B):
        n = ROW_LEN[b]
        tokens[b, n:] = 0
        targets[b, :n - 1] = tokens[b, 1:n]
    targets[0, 0:3] = -1  # a prompt
    targets[0, 6] = -1    # a masked position in the middle
    targets[1, 0] = -1
    return tokens, targets


def make_subset(vocab, targets, rng):
    tg = sorted(set(int(t) for t in targets.reshape(-1) if t >= 0))
    rest = np.setdiff1d(np.arange(vocab), tg)
    extra = rng.choice(rest, size=N_SUBSET - len(tg), replace=False)
    return sorted(tg + [int(i) for i in extra])


def make_lora(cfg, rng):
    """{(layer, target): (A [r, in], B [out, r])} float32, HF row order."""
    D, F = cfg["hidden_size"], cfg["intermediate_size"]
    qo, kvo = cfg["num_attention_heads"] * cfg["head_dim"], cfg["num_key_value_heads"] * cfg["head_dim"]
    shapes = {"attn_q": (D, qo), "attn_k": (D, kvo), "attn_v": (D, kvo), "attn_output": (qo, D),
              "ffn_gate": (D, F), "ffn_up": (D, F), "ffn_down": (F, D)}
    out = {}
    for l in range(cfg["num_hidden_layers"]):
        for t in TARGETS:
            i, o = shapes[t]
            A = (LORA_STD * rng.standard_normal((LORA_R, i))).astype(np.float32)
            Bm = (LORA_STD * rng.standard_normal((o, LORA_R))).astype(np.float32)
            out[(l, t)] = (A, Bm)
    return out


def gguf_row_order(arch, cfg, t, Bm):
    """lora_b rows as the C model (GGUF order) holds them."""
    if arch == "llama" and t == "attn_q":
        return permute_qk(Bm, cfg["num_attention_heads"])
    if arch == "llama" and t == "attn_k":
        return permute_qk(Bm, cfg["num_key_value_heads"])
    return Bm


def write_adapter(path, arch, cfg, lora):
    w = gg.Writer()
    w.add_str("general.architecture", arch)
    w.add_str("general.type", "adapter")
    w.add_str("general.name", "golden LoRA adapter")
    w.add_str("adapter.type", "lora")
    w.add_f32("adapter.lora.alpha", LORA_ALPHA)
    for (l, t), (A, Bm) in lora.items():
        w.add_tensor("blk.%d.%s.weight.lora_a" % (l, t), A)
        w.add_tensor("blk.%d.%s.weight.lora_b" % (l, t), gguf_row_order(arch, cfg, t, Bm))
    w.write(path)


def run_case(arch, typ, hf, cfg, lora_np, tokens, targets, subset, qpath, dt):
    W = {k: torch.from_numpy(np.ascontiguousarray(v)).to(dt) for k, v in effective_weights(arch, typ, hf, cfg, qpath).items()}
    lora = {k: (torch.from_numpy(A).to(dt).requires_grad_(True), torch.from_numpy(Bm).to(dt).requires_grad_(True))
            for k, (A, Bm) in lora_np.items()}
    scale = LORA_ALPHA / LORA_R
    loss, logits, lse = forward(W, cfg, lora, scale, torch.from_numpy(tokens).long(),
                                torch.from_numpy(targets).long(), dt)
    loss.backward()
    arrays = [("logits_subset", logits.detach()[:, subset].double().numpy()),
              ("logsumexp", lse.detach().double().numpy())]
    for (l, t), (A, Bm) in lora.items():
        arrays.append(("blk.%d.%s.weight.lora_a" % (l, t), A.grad.double().numpy()))
        arrays.append(("blk.%d.%s.weight.lora_b" % (l, t), gguf_row_order(arch, cfg, t, Bm.grad.double().numpy())))
    return float(loss.item()), arrays


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="golden fixtures for slimtune (see the module docstring)")
    ap.add_argument("--models", default=os.path.join(ROOT, os.environ.get("BUILD", "build"), "golden", "models"))
    ap.add_argument("--slimtune", default=os.path.join(ROOT, os.environ.get("BUILD", "build"), "slimtune"))
    ap.add_argument("--out", default=os.path.join(HERE, "fixtures"))
    ap.add_argument("--types", default=",".join(TYPES))
    ap.add_argument("--archs", default=",".join(ARCHS))
    ap.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    ap.add_argument("--no-make", action="store_true")
    a = ap.parse_args(argv)
    types = [t for t in a.types.split(",") if t]
    archs = [x for x in a.archs.split(",") if x]
    for t in types:
        if t not in TYPES:
            die("--types: unknown type '%s' (%s)" % (t, ", ".join(TYPES)))
    for x in archs:
        if x not in ARCHS:
            die("--archs: unknown architecture '%s'" % x)
    dt = torch.float64 if a.dtype == "float64" else torch.float32
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    os.makedirs(a.models, exist_ok=True)
    os.makedirs(a.out, exist_ok=True)
    if not a.no_make:
        subprocess.run([os.path.join(ROOT, "scripts", "make-tiny-model"), a.models], check=True)

    index_path = os.path.join(a.out, "index.json")
    old = {}
    if os.path.isfile(index_path):
        with open(index_path) as f:
            old = json.load(f)
    index = {"version": 1, "generator": "tests/golden/reference.py", "dtype": a.dtype,
             "seed": SEED, "B": B, "T": T, "tolerance": TOLERANCE,
             "lora": {"r": LORA_R, "alpha": LORA_ALPHA, "std": LORA_STD, "targets": list(TARGETS)},
             "models": {}, "quantized": {}, "batch": {}, "cases": []}

    for arch in ARCHS:
        gpath = os.path.join(a.models, "tiny-%s.gguf" % arch)
        hdir = os.path.join(a.models, "tiny-%s-hf" % arch)
        with open(os.path.join(hdir, "config.json")) as f:
            cfg = json.load(f)
        info = {"gguf": os.path.basename(gpath), "gguf_sha256": sha256(gpath), "hf_dir": os.path.basename(hdir),
                "safetensors_sha256": sha256(os.path.join(hdir, "model.safetensors")), "vocab": cfg["vocab_size"]}
        index["models"][arch] = info
        same_models = old.get("models", {}).get(arch) == info
        keep = [c for c in old.get("cases", []) if c["arch"] == arch and same_models
                and (arch not in archs or c["type"] not in types)]
        for q, qi in old.get("quantized", {}).items():
            if same_models and q.startswith(arch + "-") and (arch not in archs or qi["type"] not in types):
                index["quantized"][q] = qi
        index["cases"] += keep
        if arch not in archs:
            if arch in old.get("batch", {}) and same_models:
                index["batch"][arch] = old["batch"][arch]
            continue

        rng = np.random.default_rng([SEED, ARCHS.index(arch)])
        tok_json = json.load(open(os.path.join(hdir, "tokenizer.json")))
        n_tok = max(max(tok_json["model"]["vocab"].values()),
                    max([t["id"] for t in tok_json.get("added_tokens", [])] or [0])) + 1
        tokens, targets = make_batch(arch, n_tok, rng)
        subset = make_subset(cfg["vocab_size"], targets, rng)
        lora = make_lora(cfg, rng)
        adapter = "adapter-%s.gguf" % arch
        write_adapter(os.path.join(a.out, adapter), arch, cfg, lora)
        index["batch"][arch] = {"tokens": tokens.reshape(-1).tolist(), "targets": targets.reshape(-1).tolist(),
                                "vocab_subset": subset, "adapter": adapter,
                                "adapter_sha256": sha256(os.path.join(a.out, adapter))}
        hf = read_safetensors(os.path.join(hdir, "model.safetensors"))
        for typ in types:
            qpath = None
            if typ in FILE_TYPES:
                qpath = os.path.join(a.models, "tiny-%s-%s.gguf" % (arch, typ))
                if not os.access(a.slimtune, os.X_OK):
                    sys.stderr.write("reference.py: %s not built: case %s/%s left out\n" % (a.slimtune, arch, typ))
                    continue
                rc = subprocess.run([a.slimtune, "quantize", gpath, qpath, "--type", typ]).returncode
                if rc != 0:
                    die("%s quantize %s --type %s failed" % (a.slimtune, gpath, typ))
                index["quantized"]["%s-%s" % (arch, typ)] = {"file": os.path.basename(qpath), "type": typ,
                                                             "sha256": sha256(qpath)}
            loss, arrays = run_case(arch, typ, hf, cfg, lora, tokens, targets, subset, qpath, dt)
            binname = "%s-%s.bin" % (arch, typ)
            tensors, off, blob = [], 0, []
            for name, arr in arrays:
                tensors.append({"name": name, "offset": off, "shape": list(arr.shape)})
                off += arr.size
                blob.append(arr.astype("<f4").reshape(-1))
            with open(os.path.join(a.out, binname + ".tmp"), "wb") as f:
                f.write(np.concatenate(blob).tobytes())
            os.replace(os.path.join(a.out, binname + ".tmp"), os.path.join(a.out, binname))
            if typ in FILE_TYPES:
                load = {"model": "tiny-%s-%s.gguf" % (arch, typ), "quant": "keep"}
            else:
                load = {"model": "tiny-%s.gguf" % arch, "quant": typ}
            index["cases"].append({"arch": arch, "type": typ, "load": load, "bin": binname, "loss": loss,
                                   "n_targets": int((targets >= 0).sum()), "n_floats": off, "tensors": tensors})
            print("%-6s %-5s loss %.9g  (%d targets, %d floats)" % (arch, typ, loss, (targets >= 0).sum(), off))
    index["cases"].sort(key=lambda c: (ARCHS.index(c["arch"]), TYPES.index(c["type"])))
    tmp = index_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")
    os.replace(tmp, index_path)
    missing = [(x, t) for x in ARCHS for t in TYPES if not any(c["arch"] == x and c["type"] == t for c in index["cases"])]
    if missing:
        sys.stderr.write("reference.py: cases still missing: %s\n" % ", ".join("%s/%s" % m for m in missing))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
