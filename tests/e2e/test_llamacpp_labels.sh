#!/usr/bin/env bash
# What ships predicts what slimtune measured: on real SpamAssassin rows (800 train, 400 test, 64-token
# examples, stories260K + LoRA), the exported q8_0 and q4_k_m files are run by real llama.cpp the way a
# deployment asks them (greedy next tokens after each prompt, tests/llamacpp/greedy_labels.mjs, fed the very
# prompt ids `slimtune predict --prompt-tokens` used) and their labels agree with `slimtune predict` on the
# same files on at least 99% of the test rows. Prints each file's size, slimtune's and llama.cpp's accuracy
# and the agreement, beside the f32 merge's.
set -uo pipefail
. "$(dirname "$0")/../testlib.sh" test_llamacpp_labels

tmp=$(mktemp -d); trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT; [ -n "${KEEP:-}" ] && echo "$tmp"
[ -d tests/llamacpp/node_modules/node-llama-cpp ] || { check "node-llama-cpp installed (make deps)" 1; finish; }
spam_subset "$tmp"
jq -n --arg model "$SHARED/models/stories260K.gguf" --arg out "$tmp/run" --arg tr "$tmp/train.csv" --arg te "$tmp/test.csv" \
    '{model: $model, out_dir: $out, data: {train: $tr, test: $te, labels: ["ham", "spam"], max_seq_len: 64},
      lora: {r: 8, alpha: 16}, train: {epochs: 3, batch_size: 16, lr: 0.003, warmup_steps: 10, threads: 2},
      export: {formats: ["f32", "q8_0", "q4_k_m"]}}' >"$tmp/config.json"
"$bin" data prepare --config "$tmp/config.json" 2>"$tmp/log" && "$bin" train --config "$tmp/config.json" 2>>"$tmp/log" &&
    "$bin" export --config "$tmp/config.json" >>"$tmp/log" 2>&1
check "prepare, train, export f32 q8_0 q4_k_m" $? "$(tail -3 "$tmp/log")"

printf '%-8s %9s %18s %18s %10s\n' format MB "slimtune accuracy" "llama.cpp accuracy" agreement
for f in f32 q8_0 q4_k_m; do
    m="$tmp/run/export/merged-$f.gguf"
    "$bin" predict --config "$tmp/config.json" --input "$tmp/test.csv" --model "$m" --prompt-tokens \
        --out "$tmp/ours-$f.jsonl" 2>"$tmp/p-$f.log"
    check "$f: slimtune predict" $? "$(tail -2 "$tmp/p-$f.log")"
    node tests/llamacpp/greedy_labels.mjs --model "$m" --rows "$tmp/ours-$f.jsonl" --labels ham,spam --max-new 3 \
        >"$tmp/ll-$f.jsonl" 2>"$tmp/ll-$f.log"
    check "$f: llama.cpp greedy labels" $? "$(tail -2 "$tmp/ll-$f.log")"
    read -r ours theirs agree < <(jq -r -n --slurpfile a "$tmp/ours-$f.jsonl" --slurpfile b "$tmp/ll-$f.jsonl" '
        ($a | map(select(has("label")))) as $a | [range(0; $a | length)] as $idx |
        [($idx | map(select($a[.].label == $a[.].gold)) | length) / ($a | length),
         ($idx | map(select($b[.].label == $a[.].gold)) | length) / ($a | length),
         ($idx | map(select($b[.].label == $a[.].label and $b[.].line == $a[.].line)) | length) / ($a | length)] |
        map(. * 10000 | round / 10000) | join(" ")')
    printf '%-8s %9.2f %18s %18s %10s\n' "$f" "$(stat -c %s "$m" | awk '{ print $1 / 1e6 }')" "$ours" "$theirs" "$agree"
    if [ "$f" != f32 ]; then
        awk -v a="$agree" 'BEGIN { exit !(a >= 0.99) }'
        check "$f: llama.cpp's labels agree with slimtune predict on >= 99% of the rows" $? "($agree)"
    fi
done
finish
