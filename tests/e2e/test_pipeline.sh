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

# the regression gate (eval --baseline-report / --baseline-adapter): a deliberately weaker adapter (10 steps)
# against this run's report fails with McNemar's p and the bootstrap interval printed; the adapter against
# its own report passes; a report of other examples is refused by its fingerprint
cp "$tmp/run/eval/report.json" "$tmp/good-report.json"
"$bin" eval --config "$tmp/config.json" --baseline-report "$tmp/good-report.json" >"$tmp/self.out" 2>"$tmp/self.log"
rc=$?; [ $rc -eq 0 ] && grep -q 'passed regression gate: .*: +0.0000, 95% bootstrap interval \[+0.0000, +0.0000\].*McNemar exact p = 1 ' "$tmp/self.log"
check "the same adapter against its own report passes the regression gate (exit $rc)" $? "$(tail -2 "$tmp/self.log")"
mkdir -p "$tmp/weak" && cp -r "$tmp/run/data" "$tmp/weak/"
"$bin" train --config "$tmp/config.json" --out-dir "$tmp/weak" --max-steps 10 2>"$tmp/weak.log"
check "train a weaker adapter (10 steps)" $? "$(tail -3 "$tmp/weak.log")"
"$bin" eval --config "$tmp/config.json" --adapter "$tmp/weak/train/adapter.gguf" --baseline-report "$tmp/good-report.json" \
    --min-gain -1 >"$tmp/weak.out" 2>"$tmp/weak-eval.log"
rc=$?; cat "$tmp/weak.out"; grep 'regression gate' "$tmp/weak-eval.log"
[ $rc -eq 1 ] && grep -qE 'FAILED: regression gate: .*: -0\.[0-9]+, 95% bootstrap interval \[-0\.[0-9]+, [-+]0\.[0-9]+\] \(10000 resamples\); McNemar exact p = [0-9.e-]+ ' "$tmp/weak-eval.log"
check "the weaker adapter fails the regression gate with exit 1, McNemar p and the interval printed (exit $rc)" $?
jq -e '.gates.max_regression.passed == false and .gates.max_regression.mcnemar_p < 0.05 and .passed == false and
       (.systems.previous.fine_tuned_vs_this.accuracy_diff_ci95 | length == 2)' "$tmp/run/eval/report.json" >/dev/null
check "report.json records the failed regression gate and the previous system's paired statistics" $?
"$bin" eval --config "$tmp/config.json" --adapter "$tmp/weak/train/adapter.gguf" --baseline-adapter "$tmp/run/train/adapter.gguf" \
    --min-gain -1 >/dev/null 2>"$tmp/weak-adapter.log"
rc=$?; a=$(grep -o 'regression gate: .*McNemar exact p = [0-9.e-]*' "$tmp/weak-eval.log"); b=$(grep -o 'regression gate: .*McNemar exact p = [0-9.e-]*' "$tmp/weak-adapter.log")
[ $rc -eq 1 ] && [ -n "$a" ] && [ "$a" = "$b" ]
check "--baseline-adapter scores the previous adapter here: the same comparison as its report" $? "($a / $b)"
"$bin" eval --config "$tmp/config.json" --max-examples 100 --baseline-report "$tmp/good-report.json" >/dev/null 2>"$tmp/fp.log"
rc=$?; [ $rc -eq 2 ] && grep -q 'fingerprint .* differs' "$tmp/fp.log"
check "a report of other examples is refused by its fingerprint (exit $rc)" $? "$(tail -1 "$tmp/fp.log")"

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
