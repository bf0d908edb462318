#!/usr/bin/env bash
# End to end on a subset of the real data: SpamAssassin (npm) -> data prepare -> train -> eval
# (gated) -> export -> the merged model loads in slimtune and in llama.cpp.
# Uses 800 training and 400 test rows and 64-token examples so that it runs in about a minute.
set -uo pipefail
. "$(dirname "$0")/../testlib.sh" test_pipeline

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
spam_subset "$tmp"
cat >"$tmp/config.json" <<JSON
{
  "model": "$SHARED/models/stories260K.gguf",
  "out_dir": "$tmp/run",
  "data": { "train": "$tmp/train.csv", "test": "$tmp/test.csv", "labels": ["ham", "spam"], "max_seq_len": 64 },
  "lora": { "r": 8, "alpha": 16 },
  "train": { "epochs": 3, "batch_size": 16, "lr": 0.003, "warmup_steps": 10, "log_every": 20 },
  "eval": { "min_accuracy": 0.80, "min_gain": 0.10 }
}
JSON

"$bin" data prepare --config "$tmp/config.json" 2>"$tmp/prepare.log"
check "data prepare" $? "$(cat "$tmp/prepare.log")"
grep -q "800 rows read, 0 bad, 800 examples" "$tmp/prepare.log"; check "prepare counted 800 train rows" $?
grep -q "400 rows read, 0 bad, 400 examples" "$tmp/prepare.log"; check "prepare counted 400 test rows" $?

"$bin" train --config "$tmp/config.json" 2>"$tmp/train.log"
check "train" $? "$(tail -5 "$tmp/train.log")"
[ -f "$tmp/run/train/adapter.gguf" ]; check "adapter written" $?
[ -f "$tmp/run/train/config.json" ]; check "config saved beside the adapter" $?
n=$(wc -l <"$tmp/run/train/metrics.jsonl"); [ "$n" -ge 5 ]; check "metrics.jsonl has a line per logged step" $? "($n lines)"
first=$(head -n 1 "$tmp/run/train/metrics.jsonl" | jq .loss); last=$(tail -n 1 "$tmp/run/train/metrics.jsonl" | jq .loss)
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a) }'; check "training loss fell" $? "($first -> $last)"
grep -q "tok/s" "$tmp/train.log" && grep -q "ETA" "$tmp/train.log"; check "progress line shows tok/s and ETA" $?

"$bin" eval --config "$tmp/config.json" >"$tmp/eval.out" 2>"$tmp/eval.log"
rc=$?; check "eval passes its gates (accuracy >= 0.80, gain >= 0.10)" $rc "$(cat "$tmp/eval.out") $(tail -3 "$tmp/eval.log")"
cat "$tmp/eval.out"
acc=$(jq '.systems["fine-tuned"].accuracy' "$tmp/run/eval/report.json" 2>/dev/null)
awk -v a="$acc" 'BEGIN { exit !(a >= 0.80 && a <= 1) }'; check "report.json holds the fine-tuned accuracy" $? "($acc)"
jq -e '.passed == true and .gates.min_accuracy.passed and .gates.min_gain.passed' "$tmp/run/eval/report.json" >/dev/null
check "report.json records the gates as passed" $?
[ -s "$tmp/run/eval/report.md" ]; check "report.md written" $?
"$bin" eval --config "$tmp/config.json" --min-gain 0.99 >/dev/null 2>&1
[ $? -eq 1 ]; check "eval exits 1 when a gate fails" $?

"$bin" export --config "$tmp/config.json" 2>"$tmp/export.log"
check "export" $? "$(cat "$tmp/export.log")"
for f in merged-f16.gguf merged-q8_0.gguf merged-q4_k_m.gguf adapter-lora.gguf; do
    [ -s "$tmp/run/export/$f" ]; check "export writes $f (the default export.formats)" $?
done
merged="$tmp/run/export/merged-q4_k_m.gguf"
"$bin" info "$merged" >"$tmp/info.out" 2>&1; check "slimtune loads the merged model" $? "$(cat "$tmp/info.out")"
if [ -d tests/llamacpp/node_modules/node-llama-cpp ]; then
    node tests/llamacpp/logits.mjs --model "$merged" --text "Text: win money now\nLabel:" --flash-attn off --kv-type f32 >"$tmp/ll.json" 2>"$tmp/ll.err"
    check "llama.cpp loads and runs the merged model" $? "$(tail -3 "$tmp/ll.err")"
else
    check "llama.cpp oracle installed (run make deps)" 1
fi
finish
