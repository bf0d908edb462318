#!/usr/bin/env bash
# The PEFT adapter directory (export.formats "peft", lib/model/peft.h): written for a llama model with GQA
# (tiny256: 4 heads, 2 KV heads, so q and k rows are permuted differently) and an adapter on all seven
# projections, it is read back by an independent reader (tests/export/check_peft.py: json + struct +
# numpy against the llama.cpp LoRA GGUF read with scripts/ggufpy.py); every --adapter takes the
# directory: exporting from it gives a llama.cpp LoRA GGUF byte-identical to the original (the round
# trip GGUF -> PEFT -> GGUF) and the same merged model; adapters slimtune cannot represent are refused
# by name. train --init-adapter starts from a given adapter: from the GGUF or from its PEFT directory the
# run is byte-identical (and differs from a fresh start); an adapter of another rank is refused.
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

# train --init-adapter, on stories260K (r 4, alpha 8, all but k: the adapter test_export writes)
"$tool" adapter "$SHARED/models/stories260K.gguf" "$tmp/init.gguf" && "$bin" export --config <(jq -n \
    --arg m "$SHARED/models/stories260K.gguf" --arg o "$tmp/init" '{model: $m, out_dir: $o, export: {formats: ["peft"]}}') \
    --adapter "$tmp/init.gguf" >"$tmp/init.log" 2>&1
check "a stories260K adapter and its PEFT directory" $? "$(tail -2 "$tmp/init.log")"
/usr/bin/python3 -c '
import csv, random, sys
rng = random.Random(9)
with open(sys.argv[1], "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["text", "label"])
    for i in range(48):
        w.writerow(["Review: " + " ".join(rng.choice("good bad fine awful tasty".split()) for _ in range(6)), "ab"[i % 2]])
' "$tmp/rows.csv"
tconfig() { # tconfig NAME R
    jq -n --arg m "$SHARED/models/stories260K.gguf" --arg o "$tmp/$1" --arg d "$tmp/rows.csv" --argjson r "$2" \
        '{model: $m, out_dir: $o, data: {train: $d, labels: ["a", "b"], max_seq_len: 48},
          lora: {r: $r, alpha: 8, targets: ["q", "v", "o", "gate", "up", "down"]},
          train: {epochs: 1, batch_size: 8, lr: 0.01, threads: 2}}' >"$tmp/$1.json"
    "$bin" data prepare --config "$tmp/$1.json" 2>/dev/null
}
for n in fresh fromgguf frompeft; do tconfig "$n" 4; done
"$bin" train --config "$tmp/fresh.json" 2>"$tmp/fresh.log" &&
    "$bin" train --config "$tmp/fromgguf.json" --init-adapter "$tmp/init.gguf" 2>"$tmp/fromgguf.log" &&
    "$bin" train --config "$tmp/frompeft.json" --init-adapter "$tmp/init/export/adapter-peft" 2>"$tmp/frompeft.log"
check "train fresh, from the GGUF adapter, from its PEFT directory" $? "$(tail -2 "$tmp/frompeft.log")"
cmp -s "$tmp/fromgguf/train/adapter.gguf" "$tmp/frompeft/train/adapter.gguf" &&
    ! cmp -s "$tmp/fresh/train/adapter.gguf" "$tmp/fromgguf/train/adapter.gguf" &&
    grep -q 'starting from the adapter' "$tmp/frompeft.log"
check "--init-adapter: the same run from the GGUF or the PEFT directory, another than a fresh start" $?
tconfig rank8 8
"$bin" train --config "$tmp/rank8.json" --init-adapter "$tmp/init.gguf" 2>"$tmp/rank8.log"
[ $? -eq 2 ] && grep -q 'rank 4, alpha 8 or its targets differ' "$tmp/rank8.log"
check "--init-adapter of another rank is refused" $? "$(tail -1 "$tmp/rank8.log")"
finish
