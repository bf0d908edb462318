#!/usr/bin/env bash
# test_hf_model.sh — `data prepare` and `data validate` take a Hugging Face directory as the model: the
# tiny qwen2 model of scripts/make-tiny-model, written both as GGUF (tokenizer.ggml.*) and as a
# Hugging Face directory (config.json, model.safetensors, tokenizer.json), must give the same tokens,
# loss masks, offsets, prompt lengths and labels, the same validate summary and --show rendering, and
# the directory's tokens must be those of its tokenizer.json (slimtune tokenize on the directory).
set -uo pipefail
. "$(dirname "$0")/../testlib.sh" test_hf_model

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
scripts/make-tiny-model "$tmp" --arch qwen2 >"$tmp/make.log" 2>&1
check "make-tiny-model qwen2" $? "$(tail -3 "$tmp/make.log")"
gguf="$tmp/tiny-qwen2.gguf" hf="$tmp/tiny-qwen2-hf"
[ -f "$hf/tokenizer.json" ] && [ -f "$gguf" ]; check "GGUF and Hugging Face directory written" $?

cat >"$tmp/train.csv" <<'CSV'
text,label
"Lily saw a big red ball in the park.",ham
"Win a free prize now, click here!!!",spam
"The cat sat on the mat and purred.",ham
"Cheap meds online, limited offer",spam
"Tom and Sue went to the store to buy milk.",ham
"You have won $1000000 — reply now",spam
CSV
cat >"$tmp/test.csv" <<'CSV'
text,label
"Café au lait with a naïve résumé",ham
"URGENT!!! Claim your reward today",spam
CSV

# one config per model form; everything else equal
for m in gguf hf; do
    model=$gguf; [ $m = hf ] && model=$hf
    cat >"$tmp/$m.json" <<JSON
{"model": "$model", "out_dir": "$tmp/out-$m",
 "data": {"train": "$tmp/train.csv", "test": "$tmp/test.csv", "labels": ["ham", "spam"], "max_seq_len": 64}}
JSON
    "$bin" data prepare --config "$tmp/$m.json" 2>"$tmp/prepare-$m.log"
    check "data prepare with the $m model" $? "$(cat "$tmp/prepare-$m.log")"
    "$bin" data validate --config "$tmp/$m.json" --show 2 --report "$tmp/report-$m.json" >"$tmp/validate-$m.out" 2>&1
    check "data validate with the $m model" $? "$(tail -5 "$tmp/validate-$m.out")"
done

# the prepared datasets hold the same tokens
h5data() { h5dump -d "/$2" "$1" 2>/dev/null | sed -n '/DATA {/,/^   }/p'; }
for s in train test; do
    for d in tokens loss_mask offsets prompt_len labels; do
        a=$(h5data "$tmp/out-gguf/data/$s.h5" $d); b=$(h5data "$tmp/out-hf/data/$s.h5" $d)
        [ -n "$a" ] && [ "$a" = "$b" ]; check "$s.h5 /$d: Hugging Face directory = GGUF" $?
    done
done
# validate: same summary and --show token listing (but for the report path)
diff <(sed 's/report-gguf/report-X/' "$tmp/validate-gguf.out") <(sed 's/report-hf/report-X/' "$tmp/validate-hf.out") >"$tmp/validate.diff"
check "data validate prints the same with either model" $? "$(head -20 "$tmp/validate.diff")"
grep -q "^example 2: " "$tmp/validate-hf.out"; check "--show rendered the examples with the directory's tokenizer" $?
jq -e '.status == "pass" and (.tokenizer_fingerprint | length) == 16 and (.tokens_skipped == null)' "$tmp/report-hf.json" >/dev/null
check "report.json: token checks ran with the directory's tokenizer" $?

# the directory's tokens are those of its tokenizer.json: the first test row's prompt, tokenized alone
ids=$("$bin" tokenize "$hf/tokenizer.json" --ids-only --text $'Text: Café au lait with a naïve résumé\nLabel:' 2>"$tmp/tok.err")
check "slimtune tokenize tokenizer.json" $? "$(cat "$tmp/tok.err")"
first=$(h5data "$tmp/out-hf/data/test.h5" tokens | tr -d '\n' | sed -E 's/.*DATA \{ *//; s/\(([0-9]+)\): //g; s/ *}.*//; s/ +/ /g')
plen=$(h5data "$tmp/out-hf/data/test.h5" prompt_len | tr -d '\n' | sed -E 's/.*\(0\): ([0-9]+).*/\1/')
want=$(echo "$ids" | tr -d '[] ' | tr ',' ' ')
got=$(echo "$first" | tr ',' ' ' | tr -s ' ' | cut -d' ' -f1-"$plen" | sed 's/^ //')
[ -n "$want" ] && [ "$got" = "$want" ]; check "test row 1's prompt tokens are tokenizer.json's" $? "(got '$got', want '$want', prompt_len $plen)"

# --model overrides the config's model with a directory as well
"$bin" data validate --config "$tmp/gguf.json" --model "$hf" --report "$tmp/report-override.json" >"$tmp/override.out" 2>&1
check "data validate --model DIR" $? "$(tail -3 "$tmp/override.out")"
finish
