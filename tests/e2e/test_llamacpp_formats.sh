#!/usr/bin/env bash
# Every merged file type of `slimtune export` (export.formats f32 f16 bf16 q8_0 q4_0 q4_k_m q5_k_m q6_k)
# loads in real llama.cpp (node-llama-cpp, tests/llamacpp/logits.mjs) with the file type llama.cpp reports
# for it, holds the tensor types of llama-quantize's mix (export/mix.h), and gives the next-token logits of
# slimtune's own forward over the same file (tests/export/test_export logits) within a per-type tolerance.
#
# Model: scripts/make-bench-model --shape tiny256 (dim 256, 4 layers, tied embeddings, random F32 weights:
# every row fits the K-quant blocks), with a random adapter on q v o gate up down (test_export adapter).
# Tolerances, |llama.cpp - slimtune| over the 1024 logits after 5 tokens, measured here: f32 6e-7, f16 7e-7,
# bf16 4.1e-3, q8_0 1.2e-2, q4_0 1.2e-2, q4_k_m 1.8e-2, q5_k_m 1.6e-2, q6_k 1.5e-2 with max |logit| about
# 1.35. llama.cpp's CPU kernels round the activations too (to BF16 for BF16 weights, to Q8_0 / Q8_K blocks for
# quantized weights); the bounds are about three times the measured figures: 1e-4 for f32 and f16, 1.5e-2
# for bf16, 6e-2 for the quantized types; the argmax must agree everywhere.
set -uo pipefail
. "$(dirname "$0")/../testlib.sh" test_llamacpp_formats

tmp=$(mktemp -d); trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT; [ -n "${KEEP:-}" ] && echo "$tmp"
tool="$BUILD/tests/export/test_export"
[ -x "$tool" ] || { check "$tool built" 1; finish; }
[ -d tests/llamacpp/node_modules/node-llama-cpp ] || { check "node-llama-cpp installed (make deps)" 1; finish; }
scripts/make-bench-model "$tmp/tiny.gguf" --shape tiny256 >/dev/null && "$tool" adapter "$tmp/tiny.gguf" "$tmp/adapter.gguf"
check "tiny256 model and adapter" $?
formats="f32 f16 bf16 q8_0 q4_0 q4_k_m q5_k_m q6_k"
jq -n --arg m "$tmp/tiny.gguf" --arg o "$tmp/run" --arg f "$formats" \
    '{model: $m, out_dir: $o, export: {formats: ($f | split(" "))}}' >"$tmp/config.json"
"$bin" export --config "$tmp/config.json" --adapter "$tmp/adapter.gguf" >"$tmp/export.log" 2>&1
check "export of every format" $? "$(tail -3 "$tmp/export.log")"

# expected: llama.cpp's file type name, the tensor type counts (info lines) and the tolerance
declare -A ftname=([f32]="all F32" [f16]="MOSTLY_F16|F16" [bf16]="MOSTLY_BF16|BF16" [q8_0]="Q8_0" [q4_0]="Q4_0"
                   [q4_k_m]="Q4_K - Medium" [q5_k_m]="Q5_K - Medium" [q6_k]="Q6_K")
declare -A types=([f32]="F32:38" [f16]="F32:9 F16:29" [bf16]="F32:9 BF16:29" [q8_0]="F32:9 Q8_0:29"
                  [q4_0]="F32:9 Q4_0:28 Q6_K:1" [q4_k_m]="F32:9 Q4_K:24 Q6_K:5" [q5_k_m]="F32:9 Q5_K:24 Q6_K:5"
                  [q6_k]="F32:9 Q6_K:29")
declare -A tol=([f32]=1e-4 [f16]=1e-4 [bf16]=1.5e-2 [q8_0]=6e-2 [q4_0]=6e-2 [q4_k_m]=6e-2 [q5_k_m]=6e-2 [q6_k]=6e-2)
for f in $formats; do
    m="$tmp/run/export/merged-$f.gguf"
    got=$("$bin" info "$m" | sed -n 's/^  \([A-Z0-9_]*\) *\([0-9]*\) tensors.*/\1:\2/p' | sort | tr '\n' ' ')
    want=$(tr ' ' '\n' <<<"${types[$f]}" | sort | tr '\n' ' ')
    [ "$got" = "$want" ]
    check "$f: tensor types of llama-quantize's mix" $? "(got $got, want $want)"
    "$tool" logits "$m" "$tmp/ours-$f.json" 2>"$tmp/ours-$f.err"
    check "$f: slimtune's logits over the file" $? "$(cat "$tmp/ours-$f.err")"
    node tests/llamacpp/logits.mjs --model "$m" --tokens 1,403,407,261,378 --flash-attn off --kv-type f32 \
        --verbose >"$tmp/ll-$f.json" 2>"$tmp/ll-$f.err"
    check "$f: llama.cpp loads and runs it" $? "$(grep -i error "$tmp/ll-$f.err" | tail -3)"
    grep -Eq "file type += ($(sed 's/ /\\ /g' <<<"${ftname[$f]}"))" "$tmp/ll-$f.err"
    check "$f: llama.cpp reports the file type" $? "($(grep 'file type' "$tmp/ll-$f.err"))"
    node -e '
const fs = require("fs");
const a = JSON.parse(fs.readFileSync(process.argv[1])).logits, b = JSON.parse(fs.readFileSync(process.argv[2])).logits;
const tol = Number(process.argv[3]);
let worst = 0, am = 0, bm = 0;
for (let i = 0; i < a.length; i++) { worst = Math.max(worst, Math.abs(a[i] - b[i])); if (a[i] > a[am]) am = i; if (b[i] > b[bm]) bm = i; }
console.log(`${process.argv[4]}: max |llama.cpp - slimtune| ${worst.toExponential(2)} (bound ${tol}), argmax ${am} / ${bm}`);
process.exit(a.length === b.length && worst <= tol && am === bm ? 0 : 1);' "$tmp/ours-$f.json" "$tmp/ll-$f.json" "${tol[$f]}" "$f"
    check "$f: logits within ${tol[$f]} of slimtune's, same argmax" $?
done

# slimtune quantize --type q4_k_m applies the same mix to any GGUF (here the base itself)
"$bin" quantize "$tmp/tiny.gguf" "$tmp/quant-q4_k_m.gguf" --type q4_k_m >"$tmp/quant.log" 2>&1
check "quantize --type q4_k_m" $? "$(tail -2 "$tmp/quant.log")"
got=$("$bin" info "$tmp/quant-q4_k_m.gguf" | sed -n 's/^  \([A-Z0-9_]*\) *\([0-9]*\) tensors.*/\1:\2/p' | sort | tr '\n' ' ')
[ "$got" = "$(tr ' ' '\n' <<<"${types[q4_k_m]}" | sort | tr '\n' ' ')" ]
check "quantize q4_k_m: the mix's tensor types" $? "($got)"
node tests/llamacpp/logits.mjs --model "$tmp/quant-q4_k_m.gguf" --tokens 1,403 --verbose >/dev/null 2>"$tmp/ll-quant.err" &&
    grep -q 'file type *= Q4_K - Medium' "$tmp/ll-quant.err"
check "quantize q4_k_m: llama.cpp loads it as Q4_K - Medium" $? "$(grep -i 'file type\|error' "$tmp/ll-quant.err" | head -2)"
finish
