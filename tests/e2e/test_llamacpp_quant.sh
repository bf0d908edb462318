#!/usr/bin/env bash
# test_llamacpp_quant.sh — files written by `slimtune quantize` load in real llama.cpp, and llama.cpp
# decodes their blocks exactly as we do (lib/model/quant.c), for every type llama.cpp and slimtune share:
# f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_k q5_k q6_k.
#
#   BUILD=build tests/e2e/test_llamacpp_quant.sh      (needs $BUILD/slimtune and $BUILD/tests/lib/model/test_quant)
#
# Models: stories260K (dim 64, ffn 172: every K type falls back to Q5_0 / Q5_1 / Q8_0 and ffn_down to
# F16) and a random llama with dim 256 / ffn 512 written by test_quant (SLIM_QUANT_SYNTH), where the
# K types really are stored as Q4_K / Q5_K / Q6_K blocks.
# 1. `slimtune quantize MODEL X.gguf --type T` for every model and type;
# 2. test_quant with SLIM_QUANT_LOGITS_DIR writes beside each X.gguf
#      X.f32.gguf   every tensor dequantized by quant_dequantize_row, stored as F32,
#      X.embd.gguf  the same but token_embd.weight kept in X's type;
# 3. node tests/llamacpp/logits.mjs --flash-attn off --kv-type f32 on all three:
#    a. X.embd vs X.f32, 32 tokens: llama.cpp looks token embeddings up with ggml's own dequantize_row_* (get_rows),
#       everything else is the same F32 computation, so the logits must be IDENTICAL (tolerance 0): this
#       checks our decoding bit for bit against ggml's, for every type.
#    b. X vs X.f32, tokens 1,403,407,261,378: the whole quantized file. llama.cpp's CPU matrix products do not multiply our F32
#       values: the activations are first rounded to the weight's vec_dot type (Q8_0 / Q8_1 blocks for
#       q4_0..q8_0, Q8_K for the K types, F16 for f16, BF16 for bf16), so logits differ by that
#       rounding, which is what the per-type tolerances below allow (measured maxima, this machine,
#       node-llama-cpp 3.22.1 prebuilt CPU, in the comment; the bound is about 2x the measurement).
#       The bound cannot be 1e-3 for any type: even f16 weights give 4.8e-3 from F16 activations.
# Prints "llamacpp_quant: N passed, N failed"; exits non-zero on any failure. A missing prerequisite is a
# failure, never a skip.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
BUILD=${BUILD:-build}
SHARED=${SLIM_SHARED:-../shared}
MODEL="$SHARED/models/stories260K.gguf"
TOKENS=1,403,407,261,378
# the token_embd check looks up more rows (32 tokens spread over the vocabulary)
TOKENS_LONG=$TOKENS,3,17,40,64,99,128,170,200,231,255,258,290,300,333,350,383,400,432,450,470,480,499,505,509,510,511,2
TYPES="f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_k q5_k q6_k"
passed=0
failed=0

# tolerance on max |logit difference| of the whole quantized file against our F32 decoding, per model and
# type; measured: stories f16 4.8e-3, bf16 4.3e-2, q8_0 0.149, q4_0 0.201, q4_1 0.141, q5_0 0.117,
# q5_1 0.166, q4_k (= q5_0 here) 0.117, q5_k (= q5_1) 0.166, q6_k (= q8_0) 0.149; synthetic f16 2.3e-3,
# bf16 1.8e-2, q8_0 6.8e-2, q4_0 6.3e-2, q4_1 6.6e-2, q5_0 7.5e-2, q5_1 5.9e-2, q4_k 0.111, q5_k 7.0e-2,
# q6_k 7.3e-2.
tol() {
    case "$1:$2" in
        *:f16) echo 1e-2 ;;
        *:bf16) echo 0.1 ;;
        stories:*) echo 0.4 ;;
        synth:*) echo 0.25 ;;
    esac
}

die() {
    echo "FAIL: $*" >&2
    failed=$((failed + 1))
    echo "llamacpp_quant: $passed passed, $failed failed"
    exit 1
}

[ -x "$BUILD/slimtune" ] || die "$BUILD/slimtune is missing: run 'make BUILD=$BUILD' first"
[ -x "$BUILD/tests/lib/model/test_quant" ] || die "$BUILD/tests/lib/model/test_quant is missing: run 'make BUILD=$BUILD test'"
[ -f "$MODEL" ] || die "fixture $MODEL is missing (set SLIM_SHARED to the shared/ directory)"
command -v node >/dev/null || die "node is not installed: run 'make deps'"
[ -d tests/llamacpp/node_modules/node-llama-cpp ] ||
    die "tests/llamacpp/node_modules is missing (node-llama-cpp not installed): run 'make deps'"

TMP=$(mktemp -d /tmp/slim-e2e-quant-XXXXXX) || die "mktemp failed"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/q"

# the dim-256 model
SLIM_QUANT_SYNTH="$TMP/synth.gguf" "$BUILD/tests/lib/model/test_quant" >"$TMP/synth.log" 2>&1 ||
    { cat "$TMP/synth.log" >&2; die "test_quant could not write the synthetic model"; }

# 1. quantize
for t in $TYPES; do
    for m in stories synth; do
        src=$MODEL
        [ "$m" = synth ] && src="$TMP/synth.gguf"
        if "$BUILD/slimtune" quantize "$src" "$TMP/q/$m-$t.gguf" --type "$t" >"$TMP/quantize-$m-$t.log" 2>&1; then
            passed=$((passed + 1))
        else
            cat "$TMP/quantize-$m-$t.log" >&2
            echo "FAIL: slimtune quantize $m --type $t" >&2
            failed=$((failed + 1))
        fi
    done
done
# the K types are real K blocks on the synthetic model, and fall back on stories260K
for t in q4_k q5_k q6_k; do
    if grep -q "do not fit" "$TMP/quantize-synth-$t.log"; then
        echo "FAIL: the synthetic model fell back for $t" >&2; failed=$((failed + 1))
    else passed=$((passed + 1)); fi
done
if grep -q "ffn_down.weight: rows of 172 do not fit Q4_K blocks, stored as F16" "$TMP/quantize-stories-q4_k.log"; then
    passed=$((passed + 1))
else echo "FAIL: stories260K q4_k did not report the ffn_down fallback" >&2; failed=$((failed + 1)); fi

# 2. our decoding, as F32 files
SLIM_QUANT_LOGITS_DIR="$TMP/q" "$BUILD/tests/lib/model/test_quant" >"$TMP/f32.log" 2>&1 ||
    { cat "$TMP/f32.log" >&2; die "test_quant could not write the dequantized copies"; }

# 3. llama.cpp on all of them
compare() { # compare LABEL A_JSON B_JSON TOLERANCE -> prints "passed failed"
    node - "$2" "$3" "$4" "$1" <<'EOF'
const fs = require("fs");
const [fa, fb, tolArg, label] = process.argv.slice(2);
const a = JSON.parse(fs.readFileSync(fa, "utf8")), b = JSON.parse(fs.readFileSync(fb, "utf8"));
const tol = Number(tolArg);
let passed = 0, failed = 0, worst = 0, worstId = -1;
const fail = (msg) => { failed++; if (failed <= 5) process.stderr.write(`FAIL [${label}]: ${msg}\n`); };
if (a.logits.length === b.logits.length && a.logits.length === a.n_vocab) passed++;
else fail(`logit counts differ: ${a.logits.length} vs ${b.logits.length}`);
const n = Math.min(a.logits.length, b.logits.length);
for (let i = 0; i < n; i++) {
    const d = Math.abs(a.logits[i] - b.logits[i]);
    if (!(d <= tol)) fail(`logit ${i}: ${a.logits[i]} vs our F32 decoding ${b.logits[i]} (|diff| ${d} > ${tol})`);
    else passed++;
    if (!(d <= worst) || worstId < 0) { worst = d; worstId = i; }
}
const argmax = (v) => v.reduce((best, x, i) => (x > v[best] ? i : best), 0);
process.stderr.write(`${label.padEnd(19)} max |llama.cpp - llama.cpp on our F32 decoding| = ${worst.toExponential(3)} ` +
    `(token ${worstId}), tolerance ${tol}, argmax ${argmax(a.logits)} / ${argmax(b.logits)}\n`);
console.log(`${passed} ${failed}`);
EOF
}

llama() { # llama FILE TOKENS OUT.json
    node tests/llamacpp/logits.mjs --model "$1" --tokens "$2" --flash-attn off --kv-type f32 >"$3" 2>"$3.err" ||
        { cat "$3.err" >&2; echo "FAIL: llama.cpp could not evaluate $1" >&2; return 1; }
}

check() { # check LABEL A_JSON B_JSON TOLERANCE
    local res
    res=$(compare "$1" "$2" "$3" "$4") || { echo "FAIL [$1]: comparison script failed" >&2; failed=$((failed + 1)); return; }
    passed=$((passed + ${res% *}))
    failed=$((failed + ${res#* }))
}

for m in stories synth; do
    for t in $TYPES; do
        q="$TMP/q/$m-$t.gguf" f="$TMP/q/$m-$t.f32.gguf" e="$TMP/q/$m-$t.embd.gguf"
        if ! [ -f "$q" ] || ! [ -f "$f" ] || ! [ -f "$e" ]; then
            echo "FAIL [$m-$t]: missing $q, $f or $e" >&2; failed=$((failed + 1)); continue
        fi
        if ! llama "$q" "$TOKENS" "$q.json" || ! llama "$f" "$TOKENS" "$f.json" ||
            ! llama "$f" "$TOKENS_LONG" "$f.long.json" || ! llama "$e" "$TOKENS_LONG" "$e.long.json"; then
            failed=$((failed + 1)); continue
        fi
        check "$m-$t token_embd" "$e.long.json" "$f.long.json" 0
        check "$m-$t" "$q.json" "$f.json" "$(tol "$m" "$t")"
    done
done

echo "llamacpp_quant: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
