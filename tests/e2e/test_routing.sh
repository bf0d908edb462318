#!/usr/bin/env bash
# Confidence and routing (eval/calibrate.c, eval/report.c, export/predict.c --routing) on the real
# stories260K and generated ham/spam rows with a validation split: eval fits a temperature on the
# validation split, reports ECE before and after, the coverage curve, and writes eval/routing.json with
# the threshold of eval.target_accuracy chosen on the validation split; `predict --routing` on the test
# rows routes exactly the share routing.json states, at the accuracy it states; without a validation
# split the temperature is 1 and the threshold is chosen on the test split; an unreachable target gives a
# null threshold that escalates every row; a routing file of other labels is refused naming the field.
set -uo pipefail
. "$(dirname "$0")/../testlib.sh" test_routing

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 - "$tmp" <<'PY'
import csv, random, sys
rng = random.Random(5)
vocab = {"ham": "meeting tomorrow project report please review notes thanks team lunch offer".split(),
         "spam": "win free money now click here offer cash prize cheap deal act fast meeting".split()}
for name, n in (("train", 160), ("val", 120), ("test", 240)):
    labels = ["spam" if i % 3 == 0 else "ham" for i in range(n)]
    body = [" ".join(rng.choice(vocab[l] if rng.random() < 0.8 else vocab["ham" if l == "spam" else "spam"])
                     for _ in range(rng.randint(4, 16))) for l in labels]
    with open(f"{sys.argv[1]}/{name}.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows([["text", "label"]] + [["Subject: " + b, l] for b, l in zip(body, labels)])
PY
check "rows generated" $?
# config NAME [VAL] [TARGET]
config() {
    jq -n --arg model "$SHARED/models/stories260K.gguf" --arg out "$tmp/$1" --arg dir "$tmp" --arg val "${2:-}" \
        --argjson target "${3:-0.95}" \
        '{model: $model, out_dir: $out, data: ({train: ($dir + "/train.csv"), test: ($dir + "/test.csv"),
          labels: ["ham", "spam"], max_seq_len: 48} + (if $val == "" then {} else {val: $val} end)),
          lora: {r: 4, alpha: 8}, train: {epochs: 2, batch_size: 8, lr: 0.003, warmup_steps: 2, eval_every: 0},
          eval: {target_accuracy: $target}}' >"$tmp/$1.json"
}
config val "$tmp/val.csv"
"$bin" data prepare --config "$tmp/val.json" 2>"$tmp/prep.log" && "$bin" train --config "$tmp/val.json" 2>"$tmp/train.log"
check "prepare and train" $? "$(tail -n 3 "$tmp/prep.log" "$tmp/train.log")"
"$bin" eval --config "$tmp/val.json" >"$tmp/eval.out" 2>"$tmp/eval.log"
check "eval" $? "$(tail -3 "$tmp/eval.log")"
grep -E '^(calibration|routing):' "$tmp/eval.out"
r="$tmp/val/eval/routing.json"
jq -e '(.threshold | type == "number") and .selected_on == "validation" and .temperature != 1 and .temperature > 0
       and .coverage > 0 and .coverage <= 1 and .accuracy >= 0 and .target_accuracy == 0.95' "$r" >/dev/null
check "routing.json: a threshold chosen on the validation split, a fitted temperature" $? "$(cat "$r" 2>/dev/null)"
jq -e '.calibration | .fitted_on_validation_examples == 120 and (.reliability | length == 15) and
       (.coverage_curve | length == 20) and .coverage_curve[19].coverage == 1 and .nll_scaled <= .nll + 1e-12' \
    "$tmp/val/eval/report.json" >/dev/null
check "report.json: calibration fitted on 120 examples, 15 bins, 20 curve points, NLL not worse on test" $?
grep -q '## Confidence and routing' "$tmp/val/eval/report.md"
check "report.md has the confidence and routing section" $?

"$bin" predict --config "$tmp/val.json" --input "$tmp/test.csv" --routing "$r" --out "$tmp/preds.jsonl" 2>"$tmp/predict.log"
check "predict --routing" $? "$(tail -3 "$tmp/predict.log")"
grep 'routing (' "$tmp/predict.log"
cov=$(jq -s 'map(select(.route == "model")) | length / 240' "$tmp/preds.jsonl")
acc=$(jq -s 'map(select(.route == "model")) | (map(select(.label == .gold)) | length) / length' "$tmp/preds.jsonl")
jq -e --argjson c "$cov" --argjson a "$acc" '(.coverage - $c | fabs) < 1e-12 and (.accuracy - $a | fabs) < 1e-12' "$r" >/dev/null
check "predict routes the share routing.json states (coverage $cov, accuracy $acc)" $? "($(jq -c '[.coverage, .accuracy]' "$r"))"
jq -e -s --slurpfile r "$r" 'all(.[]; (.confidence >= $r[0].threshold) == (.route == "model") and
       (.confidence - ([.probs[]] | max) | fabs) < 1e-12)' "$tmp/preds.jsonl" >/dev/null
check "each row: route model exactly when its confidence reaches the threshold" $?

config noval "" 0.999999
mkdir -p "$tmp/noval" && cp -r "$tmp/val/data" "$tmp/noval/" && rm "$tmp/noval/data/val.h5" && cp -r "$tmp/val/train" "$tmp/noval/"
"$bin" eval --config "$tmp/noval.json" >"$tmp/noval.out" 2>"$tmp/noval.log"
check "eval without a validation split" $? "$(tail -2 "$tmp/noval.log")"
jq -e '.temperature == 1 and .selected_on == "test"' "$tmp/noval/eval/routing.json" >/dev/null
check "without a validation split: temperature 1, threshold chosen on the test split" $?
if jq -e '.threshold == null' "$tmp/noval/eval/routing.json" >/dev/null; then
    grep -q 'escalate every request' "$tmp/noval.out"
    check "an unreachable target: threshold null, reported as escalating every request" $?
    "$bin" predict --config "$tmp/noval.json" --input "$tmp/test.csv" --routing "$tmp/noval/eval/routing.json" \
        --out "$tmp/p2.jsonl" 2>/dev/null
    [ "$(jq -s 'map(select(.route == "model")) | length' "$tmp/p2.jsonl")" -eq 0 ]
    check "a null threshold escalates every row" $?
else
    check "target 0.999999 reached on the test split: every kept row right" \
        "$(jq -e '.accuracy == 1' "$tmp/noval/eval/routing.json" >/dev/null; echo $?)"
fi
jq '.labels = ["ham", "eggs"]' "$r" >"$tmp/bad-routing.json"
"$bin" predict --config "$tmp/val.json" --input "$tmp/test.csv" --routing "$tmp/bad-routing.json" >/dev/null 2>"$tmp/bad.log"
rc=$?; [ $rc -eq 2 ] && grep -q 'bad-routing.json: labels\[1\]' "$tmp/bad.log"
check "a routing file of other labels is refused naming labels[1] (exit $rc)" $? "$(cat "$tmp/bad.log")"
finish
