#!/usr/bin/env bash
# The merged Hugging Face directory (export.formats "hf", export/hf_export.h) of a GQA llama (tiny256: 4 heads,
# 2 KV heads, tied embeddings) with an adapter on all seven projections, sharded (export.hf_shard_mb 2): an
# independent reader (tests/export/check_hf.py: json + struct + numpy against the merged bf16 GGUF read with
# scripts/ggufpy.py) finds transformers' names, the index, config.json and every value; loaded back into
# slimtune (a Hugging Face directory as the model) its logits equal the merged bf16 GGUF's bit for bit; one
# shard when the limit allows; written through a temporary directory.
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
finish
