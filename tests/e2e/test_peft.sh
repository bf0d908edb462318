#!/usr/bin/env bash
# The PEFT adapter directory (export.formats "peft", lib/model/peft.h): written for a llama model with GQA
# (tiny256: 4 heads, 2 KV heads, so q and k rows are permuted differently) and an adapter on all seven
# projections, it is read back by an independent reader (tests/export/check_peft.py: json + struct +
# numpy against the llama.cpp LoRA GGUF read with scripts/ggufpy.py); every --adapter takes the
# directory: exporting from it gives a llama.cpp LoRA GGUF byte-identical to the original (the round
# trip GGUF -> PEFT -> GGUF) and the same merged model; adapters slimtune cannot represent are refused
# by name.
set -uo pipefail
. "$(dirname "$0")/../testlib.sh" test_peft

tmp=$(mktemp -d); trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT; [ -n "${KEEP:-}" ] && echo "$tmp"
tool="$BUILD/tests/export/test_export"
[ -x "$tool" ] || { check "$tool built" 1; finish; }
scripts/make-bench-model "$tmp/tiny.gguf" --shape tiny256 >/dev/null && "$tool" adapter "$tmp/tiny.gguf" "$tmp/adapter.gguf" all
check "tiny256 model and an adapter on all seven projections" $?
# config NAME FORMATS: exports of the tiny model into $tmp/NAME
config() {
    jq -n --arg m "$tmp/tiny.gguf" --arg o "$tmp/$1" --argjson f "$2" '{model: $m, out_dir: $o, export: {formats: $f}}' \
        >"$tmp/$1.json"
}
config a '["lora", "peft", "f32"]'
"$bin" export --config "$tmp/a.json" --adapter "$tmp/adapter.gguf" >"$tmp/a.log" 2>&1
check "export lora, peft and f32" $? "$(tail -3 "$tmp/a.log")"
peft="$tmp/a/export/adapter-peft"
[ -f "$peft/adapter_config.json" ] && [ -f "$peft/adapter_model.safetensors" ] && [ -z "$(ls -a "$tmp/a/export" | grep tmp)" ]
check "adapter-peft/ holds adapter_config.json and adapter_model.safetensors, no temporary left" $?
/usr/bin/python3 tests/export/check_peft.py "$tmp/tiny.gguf" "$tmp/a/export/adapter-lora.gguf" "$peft" >"$tmp/check.log" 2>&1
check "an independent reader finds the PEFT names, shapes, F32 values and config" $? "$(tail -5 "$tmp/check.log")"

config b '["lora", "f32"]'
"$bin" export --config "$tmp/b.json" --adapter "$peft" >"$tmp/b.log" 2>&1
check "export with --adapter a PEFT directory" $? "$(tail -3 "$tmp/b.log")"
cmp -s "$tmp/a/export/adapter-lora.gguf" "$tmp/b/export/adapter-lora.gguf"
check "GGUF -> PEFT -> GGUF: the adapter file is byte-identical" $?
cmp -s "$tmp/a/export/merged-f32.gguf" "$tmp/b/export/merged-f32.gguf"
check "the merged model from the PEFT directory is byte-identical" $?

# refusals: edit the config of a copy
refuse() { # refuse NAME JQ_EDIT EXPECTED_TEXT
    rm -rf "$tmp/$1" && cp -r "$peft" "$tmp/$1" && jq "$2" "$peft/adapter_config.json" >"$tmp/$1/adapter_config.json"
    "$bin" export --config "$tmp/b.json" --adapter "$tmp/$1" >"$tmp/$1.log" 2>&1
    rc=$?
    [ $rc -eq 2 ] && grep -q "$3" "$tmp/$1.log"
    check "refused: $1" $? "(exit $rc: $(tail -1 "$tmp/$1.log"))"
}
refuse dora '.use_dora = true' 'use_dora is set'
refuse allLinear '.target_modules = "all-linear"' 'target_modules must be a list'
refuse unknown '.target_modules += ["lm_head"]' 'unknown module lm_head'
refuse rank '.r = 8' 'expected \[8, 256\]'
rm -rf "$tmp/extra" && cp -r "$peft" "$tmp/extra" &&
    jq '.target_modules -= ["k_proj"]' "$peft/adapter_config.json" >"$tmp/extra/adapter_config.json"
"$bin" export --config "$tmp/b.json" --adapter "$tmp/extra" >"$tmp/extra.log" 2>&1
[ $? -eq 2 ] && grep -q 'k_proj.lora_A.weight is not a LoRA A/B of the listed target_modules' "$tmp/extra.log"
check "refused: a tensor of a module not listed" $? "$(tail -1 "$tmp/extra.log")"
finish
