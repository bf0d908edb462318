#!/usr/bin/env bash
# The merged Hugging Face directory (export.formats "hf", export/hf_export.h) of a GQA llama (tiny256: 4 heads,
# 2 KV heads, tied embeddings) with an adapter on all seven projections, sharded (export.hf_shard_mb 2): an
# independent reader (tests/export/check_hf.py: json + struct + numpy against the merged bf16 GGUF read with
# scripts/ggufpy.py) finds transformers' names, the index, config.json and every value; loaded back into
# slimtune (a Hugging Face directory as the model) its logits equal the merged bf16 GGUF's bit for bit; one
# shard when the limit allows; written through a temporary directory. From a Hugging Face base directory
# (scripts/make-tiny-model llama with Llama 3 rope scaling, and qwen2 with q/k/v biases): config.json and
# the tokenizer files are the base's, the merged bf16 GGUF is written too (the base's rope_freqs and
# permuted q/k live in memory released after the load) and both give the same logits.
set -uo pipefail
. "$(dirname "$0")/../testlib.sh" test_hf_export

tmp=$(mktemp -d); trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT; [ -n "${KEEP:-}" ] && echo "$tmp"
tool="$BUILD/tests/export/test_export"
[ -x "$tool" ] || { check "$tool built" 1; finish; }
scripts/make-bench-model "$tmp/tiny.gguf" --shape tiny256 >/dev/null && "$tool" adapter "$tmp/tiny.gguf" "$tmp/adapter.gguf" all
check "tiny256 model and an adapter on all seven projections" $?
for n in sharded whole; do
    jq -n --arg m "$tmp/tiny.gguf" --arg o "$tmp/$n" --argjson mb "$([ $n = sharded ] && echo 2 || echo 4000)" \
        '{model: $m, out_dir: $o, export: {formats: ["hf", "bf16"], hf_shard_mb: $mb}}' >"$tmp/$n.json"
    "$bin" export --config "$tmp/$n.json" --adapter "$tmp/adapter.gguf" >"$tmp/$n.log" 2>&1
    check "export hf and bf16 ($n)" $? "$(tail -3 "$tmp/$n.log")"
done
hf="$tmp/sharded/export/merged-hf"
ls "$hf"/model-0000?-of-0000?.safetensors >/dev/null 2>&1 && [ -f "$hf/model.safetensors.index.json" ] &&
    [ -f "$hf/config.json" ] && [ -f "$hf/generation_config.json" ] && [ -z "$(ls -a "$tmp/sharded/export" | grep tmp)" ]
check "sharded: model-0000k-of-0000N.safetensors, the index, config.json, generation_config.json, no temporary" $? \
    "$(ls "$hf")"
[ -f "$tmp/whole/export/merged-hf/model.safetensors" ] && [ ! -e "$tmp/whole/export/merged-hf/model.safetensors.index.json" ]
check "one model.safetensors under the shard limit" $?
for n in sharded whole; do
    /usr/bin/python3 tests/export/check_hf.py "$tmp/$n/export/merged-bf16.gguf" "$tmp/$n/export/merged-hf" >"$tmp/check-$n.log" 2>&1
    check "an independent reader checks names, shards, config and values ($n)" $? "$(tail -4 "$tmp/check-$n.log")"
done
"$tool" logits "$hf" "$tmp/hf.json" && "$tool" logits "$tmp/sharded/export/merged-bf16.gguf" "$tmp/gguf.json"
check "slimtune loads the directory back" $?
jq -e -n --slurpfile a "$tmp/hf.json" --slurpfile b "$tmp/gguf.json" '$a[0].logits == $b[0].logits' >/dev/null
check "its logits equal the merged bf16 GGUF's bit for bit" $?

scripts/make-tiny-model "$tmp/tiny" --arch all >"$tmp/tiny.log" 2>&1
check "make-tiny-model" $? "$(tail -3 "$tmp/tiny.log")"
for a in llama qwen2; do
    base="$tmp/tiny/tiny-$a-hf"
    "$tool" adapter "$base" "$tmp/ad-$a.gguf" all &&
        jq -n --arg m "$base" --arg o "$tmp/hfbase-$a" '{model: $m, out_dir: $o, export: {formats: ["hf", "bf16"]}}' \
            >"$tmp/hfbase-$a.json" &&
        "$bin" export --config "$tmp/hfbase-$a.json" --adapter "$tmp/ad-$a.gguf" >"$tmp/hfbase-$a.log" 2>&1
    check "$a: export hf and bf16 from a Hugging Face base" $? "$(tail -3 "$tmp/hfbase-$a.log")"
    out="$tmp/hfbase-$a/export"
    cmp -s "$base/tokenizer.json" "$out/merged-hf/tokenizer.json" &&
        cmp -s "$base/tokenizer_config.json" "$out/merged-hf/tokenizer_config.json" &&
        jq -e --slurpfile b "$base/config.json" '(del(.torch_dtype)) == ($b[0] | del(.torch_dtype)) and
            .torch_dtype == "bfloat16"' "$out/merged-hf/config.json" >/dev/null
    check "$a: the base's config.json (torch_dtype bfloat16) and tokenizer files" $?
    /usr/bin/python3 tests/export/check_hf.py "$out/merged-bf16.gguf" "$out/merged-hf" >"$tmp/check-$a.log" 2>&1
    check "$a: the independent reader" $? "$(tail -4 "$tmp/check-$a.log")"
    "$tool" logits "$out/merged-hf" "$tmp/$a-hf.json" && "$tool" logits "$out/merged-bf16.gguf" "$tmp/$a-gguf.json" &&
        jq -e -n --slurpfile x "$tmp/$a-hf.json" --slurpfile y "$tmp/$a-gguf.json" '$x[0].logits == $y[0].logits' >/dev/null
    check "$a: the directory and the bf16 GGUF give the same logits" $?
done
finish
