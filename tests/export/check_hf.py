#!/usr/bin/python3
"""check_hf.py — reads a merged Hugging Face directory written by `slimtune export` (export.formats "hf") with
json, struct and numpy only, and checks it against the merged bf16 GGUF of the same export (read with
scripts/ggufpy.py):

  - config.json: model_type, sizes and tie_word_embeddings as the GGUF's hyper-parameters, torch_dtype bfloat16;
  - the shards: every tensor in model.safetensors.index.json's weight_map lives in the file it names, total_size
    is the sum of the data, and the names are transformers' (model.embed_tokens.weight, model.layers.N.self_attn.
    q_proj.weight, ..., model.norm.weight, lm_head.weight only when untied);
  - values: every matrix equals the GGUF's BF16 tensor bit for bit, with llama's q/k rows un-permuted (GGUF rows of
    each head are the Hugging Face rows [2, hd/2] transposed); norms equal in F32.

usage: check_hf.py MERGED-BF16.gguf HF_DIR        prints "check_hf: N passed, M failed"
"""
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import ggufpy as gg  # noqa: E402

LAYER = {"attn_norm.weight": "input_layernorm.weight", "ffn_norm.weight": "post_attention_layernorm.weight",
         "attn_q.weight": "self_attn.q_proj.weight", "attn_k.weight": "self_attn.k_proj.weight",
         "attn_v.weight": "self_attn.v_proj.weight", "attn_output.weight": "self_attn.o_proj.weight",
         "ffn_gate.weight": "mlp.gate_proj.weight", "ffn_up.weight": "mlp.up_proj.weight",
         "ffn_down.weight": "mlp.down_proj.weight", "attn_q.bias": "self_attn.q_proj.bias",
         "attn_k.bias": "self_attn.k_proj.bias", "attn_v.bias": "self_attn.v_proj.bias"}
TOP = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
       "output.weight": "lm_head.weight"}
passed = failed = 0


def check(ok, what):
    global passed, failed
    passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)
    if not ok:
        print("FAIL:", what, file=sys.stderr)


def read_shard(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack_from("<Q", buf, 0)
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        s, e = info["data_offsets"]
        raw = np.frombuffer(buf, dtype="<u2" if info["dtype"] == "BF16" else "<f4", count=(e - s) // (2 if info["dtype"] == "BF16" else 4), offset=8 + n + s)
        vals = (raw.astype(np.uint32) << 16).view(np.float32) if info["dtype"] == "BF16" else raw
        out[name] = (info["dtype"], vals.reshape(info["shape"]))
    return out


def main(gguf_path, hf_dir):
    g = gg.Reader(gguf_path)
    arch = g.kv["general.architecture"].value
    n_head = g.kv[arch + ".attention.head_count"].value
    n_kv = g.kv[arch + ".attention.head_count_kv"].value
    with open(os.path.join(hf_dir, "config.json")) as f:
        cfg = json.load(f)
    check(cfg["model_type"] == arch and cfg["torch_dtype"] == "bfloat16", "model_type / torch_dtype")
    check(cfg["hidden_size"] == g.kv[arch + ".embedding_length"].value and cfg["num_hidden_layers"] ==
          g.kv[arch + ".block_count"].value and cfg["num_attention_heads"] == n_head and
          cfg["num_key_value_heads"] == n_kv and cfg["intermediate_size"] == g.kv[arch + ".feed_forward_length"].value,
          "sizes in config.json")
    check(cfg["tie_word_embeddings"] == ("output.weight" not in g.tensors), "tie_word_embeddings")
    index_path = os.path.join(hf_dir, "model.safetensors.index.json")
    if os.path.exists(index_path):
        with open(index_path) as f:
            index = json.load(f)
        files = sorted(set(index["weight_map"].values()))
    else:
        index, files = None, ["model.safetensors"]
    tensors, where = {}, {}
    for fn in files:
        for name, v in read_shard(os.path.join(hf_dir, fn)).items():
            tensors[name], where[name] = v, fn
    if index:
        check(index["weight_map"] == where, "weight_map names the shard of every tensor")
        total = sum(v.size * (2 if dt == "BF16" else 4) for dt, v in tensors.values())
        check(index["metadata"]["total_size"] == total, "total_size %s, data %d" % (index["metadata"]["total_size"], total))
    want = {}
    for name, t in g.tensors.items():
        if name.startswith("blk."):
            layer, rest = name.split(".", 2)[1:]
            hf = "model.layers.%s.%s" % (layer, LAYER[rest])
        elif name in TOP:
            hf = TOP[name]
        else:
            continue  # rope_freqs: config.json's rope_scaling carries it
        w = t.numpy()
        if arch == "llama" and name.endswith(("attn_q.weight", "attn_k.weight", "attn_q.bias", "attn_k.bias")):
            nh = n_head if "attn_q" in name else n_kv
            w = w.reshape(nh, w.shape[0] // nh // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
        want[hf] = w
    check(sorted(tensors) == sorted(want), "transformers names: %s" % sorted(set(tensors) ^ set(want))[:4])
    for name in sorted(set(tensors) & set(want)):
        dt, v = tensors[name]
        check(dt == ("BF16" if v.ndim == 2 else "F32") and v.shape == want[name].shape and
              np.array_equal(v, want[name].astype(np.float32)), "%s: %s %s differs" % (name, dt, v.shape))
    print("check_hf: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        sys.exit(2)
    sys.exit(main(*sys.argv[1:]))
