#!/usr/bin/python3
"""check_peft.py — reads a PEFT adapter directory written by `slimtune export` (export.formats "peft") with
nothing but json, struct and numpy, and checks it against the llama.cpp LoRA GGUF of the same adapter
(read with scripts/ggufpy.py, the project's own independent GGUF reader):

  - adapter_config.json: peft_type LORA, task_type CAUSAL_LM, r and lora_alpha as the GGUF's
    (adapter.lora.alpha), target_modules the *_proj names of the adapted projections, use_rslora false;
  - adapter_model.safetensors: an 8-byte little-endian header length, a JSON header padded to 8 bytes,
    every tensor F32, data packed without gaps or overlaps, exactly the names
    base_model.model.model.layers.N.{self_attn,mlp}.<module>.lora_{A,B}.weight for every layer and module;
  - values: lora_A [r, in] equal to the GGUF's .lora_a, lora_B [out, r] equal to .lora_b with llama's q/k rows
    un-permuted (GGUF rows of each head are the Hugging Face rows [2, hd/2] transposed), bit for bit.

usage: check_peft.py BASE.gguf ADAPTER-LORA.gguf PEFT_DIR      prints "check_peft: N passed, M failed"
"""
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import ggufpy as gg  # noqa: E402

MODULES = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
           "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
           "ffn_down": "mlp.down_proj"}
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what, file=sys.stderr)


def hf_rows(b_gguf, n_head):
    """Hugging Face row order of a GGUF q/k matrix [out, ...] (llama.cpp's permute undone)."""
    hd = b_gguf.shape[0] // n_head
    return b_gguf.reshape(n_head, hd // 2, 2, *b_gguf.shape[1:]).swapaxes(1, 2).reshape(b_gguf.shape)


def read_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack_from("<Q", buf, 0)
    check(n % 8 == 0 and 8 + n <= len(buf), "%s: header length %d" % (path, n))
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    spans, out = [], {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        check(info["dtype"] == "F32", "%s: %s has dtype %s" % (path, name, info["dtype"]))
        s, e = info["data_offsets"]
        spans.append((s, e))
        count = int(np.prod(info["shape"]))
        check(e - s == 4 * count, "%s: %s spans %d bytes for %d values" % (path, name, e - s, count))
        out[name] = np.frombuffer(buf, dtype="<f4", count=count, offset=8 + n + s).reshape(info["shape"])
    spans.sort()
    check(spans[0][0] == 0 and all(a[1] == b[0] for a, b in zip(spans, spans[1:])) and 8 + n + spans[-1][1] == len(buf),
          "%s: data not packed end to end" % path)
    return out


def main(base_path, lora_path, peft_dir):
    base, lora = gg.Reader(base_path), gg.Reader(lora_path)
    arch = base.kv["general.architecture"].value
    n_head = base.kv[arch + ".attention.head_count"].value
    n_kv = base.kv[arch + ".attention.head_count_kv"].value if arch + ".attention.head_count_kv" in base.kv else n_head
    permuted = arch == "llama"
    with open(os.path.join(peft_dir, "adapter_config.json")) as f:
        cfg = json.load(f)
    tensors = read_safetensors(os.path.join(peft_dir, "adapter_model.safetensors"))
    want = {}
    for name, t in lora.tensors.items():
        parts = name.split(".")  # blk.N.<gguf>.weight.lora_a
        layer, gname, ab = int(parts[1]), parts[2], parts[4]
        w = t.numpy()  # lora_a: (r, in); lora_b: (out, r)
        if ab == "lora_b" and permuted and gname in ("attn_q", "attn_k"):
            w = hf_rows(w, n_head if gname == "attn_q" else n_kv)
        want["base_model.model.model.layers.%d.%s.lora_%s.weight" % (layer, MODULES[gname], ab[-1].upper())] = w
    r = next(iter(lora.tensors.values())).ne[1]
    check(cfg.get("peft_type") == "LORA" and cfg.get("task_type") == "CAUSAL_LM", "peft_type / task_type")
    check(cfg.get("r") == r, "r %s, GGUF rank %d" % (cfg.get("r"), r))
    check(abs(cfg.get("lora_alpha", -1) - lora.kv["adapter.lora.alpha"].value) < 1e-6, "lora_alpha")
    mods = sorted({MODULES[n.split(".")[2]].split(".")[1] for n in lora.tensors})
    check(sorted(cfg.get("target_modules", [])) == mods, "target_modules %s, want %s" % (cfg.get("target_modules"), mods))
    check(cfg.get("use_rslora") is False and cfg.get("bias") == "none", "use_rslora / bias")
    check(sorted(tensors) == sorted(want), "tensor names differ: %s" % sorted(set(tensors) ^ set(want))[:4])
    for name in sorted(set(tensors) & set(want)):
        check(tensors[name].shape == want[name].shape and np.array_equal(tensors[name], want[name]),
              "%s: shape %s vs %s or values differ" % (name, tensors[name].shape, want[name].shape))
    print("check_peft: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        sys.exit(2)
    sys.exit(main(*sys.argv[1:]))
