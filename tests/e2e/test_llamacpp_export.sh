#!/usr/bin/env bash
# test_llamacpp_export.sh — the merged GGUF written by `slimtune export` runs in real llama.cpp and gives
# the next-token logits of our own base + adapter forward pass.
#
#   BUILD=build tests/e2e/test_llamacpp_export.sh      (needs $BUILD/slimtune and $BUILD/tests/export/test_export)
#
# 1. $BUILD/tests/export/test_export with SLIM_EXPORT_CHECK_DIR set makes a stories260K adapter with random
#    nonzero B, and leaves adapter.gguf and ours.json (our base + adapter logits after "Once upon a time",
#    tokens 1,403,407,261,378) there.
# 2. `slimtune export --config ... --adapter adapter.gguf` (export.formats f32, lora) writes merged-f32.gguf and
#    adapter-lora.gguf.
# 3. node tests/llamacpp/logits.mjs (node-llama-cpp's prebuilt llama.cpp) evaluates the merged model:
#    - with --flash-attn off --kv-type f32 (llama.cpp's most float32-like path): every logit within 1e-3 of ours;
#    - with llama.cpp's defaults (flash attention, F16 KV cache, ~1e-3 rounding): every logit within 2e-2 and the
#      same argmax.
# Prints "llamacpp_export: N passed, N failed"; exits non-zero on any failure. A missing prerequisite
# (binaries, node, tests/llamacpp/node_modules, the shared model) is a failure, never a skip.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
BUILD=${BUILD:-build}
SHARED=${SLIM_SHARED:-../shared}
MODEL="$SHARED/models/stories260K.gguf"
TOKENS=1,403,407,261,378
passed=0
failed=0

die() {
    echo "FAIL: $*" >&2
    failed=$((failed + 1))
    echo "llamacpp_export: $passed passed, $failed failed"
    exit 1
}

[ -x "$BUILD/slimtune" ] || die "$BUILD/slimtune is missing: run 'make BUILD=$BUILD' first"
[ -x "$BUILD/tests/export/test_export" ] || die "$BUILD/tests/export/test_export is missing: run 'make BUILD=$BUILD test'"
[ -f "$MODEL" ] || die "fixture $MODEL is missing (set SLIM_SHARED to the shared/ directory)"
command -v node >/dev/null || die "node is not installed: run 'make deps'"
[ -d tests/llamacpp/node_modules/node-llama-cpp ] ||
    die "tests/llamacpp/node_modules is missing (node-llama-cpp not installed): run 'make deps'"

TMP=$(mktemp -d /tmp/slim-e2e-export-XXXXXX) || die "mktemp failed"
trap 'rm -rf "$TMP"' EXIT

# 1. adapter + our logits
SLIM_EXPORT_CHECK_DIR="$TMP/check" "$BUILD/tests/export/test_export" >"$TMP/test_export.log" 2>&1 ||
    { cat "$TMP/test_export.log" >&2; die "test_export failed"; }
for f in adapter.gguf ours.json; do
    [ -f "$TMP/check/$f" ] || die "test_export did not leave $TMP/check/$f"
done

# 2. the command
cat >"$TMP/config.json" <<EOF
{ "model": "$MODEL", "out_dir": "$TMP/run", "export": { "formats": ["f32", "lora"] } }
EOF
"$BUILD/slimtune" export --config "$TMP/config.json" --adapter "$TMP/check/adapter.gguf" >"$TMP/export.log" 2>&1 ||
    { cat "$TMP/export.log" >&2; die "slimtune export failed"; }
MERGED="$TMP/run/export/merged-f32.gguf"
for f in "$MERGED" "$TMP/run/export/adapter-lora.gguf"; do
    if [ -s "$f" ]; then passed=$((passed + 1)); else echo "FAIL: slimtune export did not write $f" >&2; failed=$((failed + 1)); fi
done
[ -s "$MERGED" ] || die "no merged model to check"

# 3. llama.cpp against ours
compare() { # compare LABEL LLAMA_JSON TOLERANCE CHECK_ARGMAX
    node - "$TMP/check/ours.json" "$2" "$3" "$4" "$1" <<'EOF'
const fs = require("fs");
const [ours, theirs, tolArg, argmaxArg, label] = process.argv.slice(2);
const a = JSON.parse(fs.readFileSync(ours, "utf8")), b = JSON.parse(fs.readFileSync(theirs, "utf8"));
const tol = Number(tolArg);
let passed = 0, failed = 0, worst = 0, worstId = -1;
const fail = (msg) => { failed++; if (failed <= 10) process.stderr.write(`FAIL [${label}]: ${msg}\n`); };
if (a.logits.length === b.n_vocab && b.logits.length === b.n_vocab) passed++;
else fail(`vocabulary sizes differ: ours ${a.logits.length}, llama.cpp n_vocab ${b.n_vocab} (${b.logits.length} logits)`);
const n = Math.min(a.logits.length, b.logits.length);
for (let i = 0; i < n; i++) {
    const d = Math.abs(a.logits[i] - b.logits[i]);
    if (!(d <= tol)) fail(`logit ${i}: ours ${a.logits[i]}, llama.cpp ${b.logits[i]} (|diff| ${d} > ${tol})`);
    else passed++;
    if (!(d <= worst)) { worst = d; worstId = i; }
}
if (argmaxArg === "1") {
    const argmax = (v) => v.reduce((best, x, i) => (x > v[best] ? i : best), 0);
    const ia = argmax(a.logits), ib = argmax(b.logits);
    if (ia === ib) passed++; else fail(`argmax differs: ours ${ia}, llama.cpp ${ib}`);
}
process.stderr.write(`${label}: ${n} logits, max |ours - llama.cpp| = ${worst.toExponential(3)} (token ${worstId}), ` +
    `tolerance ${tol}, flash_attn ${b.flash_attn}, kv ${b.kv_type}\n`);
console.log(`${passed} ${failed}`);
EOF
}

run_case() { # run_case LABEL TOLERANCE CHECK_ARGMAX [logits.mjs options...]
    local label=$1 tol=$2 am=$3
    shift 3
    local out="$TMP/llama-$label.json"
    if ! node tests/llamacpp/logits.mjs --model "$MERGED" --tokens "$TOKENS" "$@" >"$out" 2>"$TMP/llama-$label.err"; then
        cat "$TMP/llama-$label.err" >&2
        echo "FAIL [$label]: llama.cpp could not evaluate the merged model" >&2
        failed=$((failed + 1))
        return
    fi
    local res
    res=$(compare "$label" "$out" "$tol" "$am") || { echo "FAIL [$label]: comparison script failed" >&2; failed=$((failed + 1)); return; }
    passed=$((passed + ${res% *}))
    failed=$((failed + ${res#* }))
}

run_case f32 1e-3 1 --flash-attn off --kv-type f32
run_case default 2e-2 1

echo "llamacpp_export: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
