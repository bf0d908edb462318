#!/usr/bin/env bash
# Validation during training and early stopping (train/train.c, config train.eval_every and
# train.early_stopping) on the real stories260K, 2 threads: validating on data.val every 3 steps writes
# val_loss / val_accuracy lines to metrics.jsonl and leaves the adapter byte-identical to a run without
# validation (its rows are longer than the training rows, so the activations grow for it); early
# stopping ends a run before its last step once the validation loss stops improving, train/adapter.gguf is the best step's adapter (the checkpoint of that step holds the same bytes) and
# adapter-last.gguf the last; a run resumed from a checkpoint before the stop ends the same; a config
# asking for early stopping without a validation set is refused by name.
set -uo pipefail
. "$(dirname "$0")/../testlib.sh" test_early_stop

tmp=$(mktemp -d); trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT; [ -n "${KEEP:-}" ] && echo "$tmp"
# reviews N SEED FILE LO HI: N product reviews of LO..HI words, a third "bad", the rest "good"
reviews() {
    /usr/bin/python3 -c '
import csv, random, sys
n, rng, out, lo, hi = int(sys.argv[1]), random.Random(int(sys.argv[2])), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
words = {"good": "tasty fresh great lovely recommend delicious perfect favorite".split(),
         "bad": "stale broken awful bland refund soggy expired disappointing".split()}
with open(out, "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["text", "label"])
    for i in range(n):
        label = "bad" if i % 3 == 0 else "good"
        w.writerow(["Review: " + " ".join(rng.choice(words[label]) for _ in range(rng.randint(lo, hi))), label])
' "$@"
}
reviews 96 7 "$tmp/train.csv" 3 8 && reviews 48 9 "$tmp/val.csv" 10 40 # val rows longer than any train row
check "rows generated" $?

# config NAME TRAIN_JSON: 3 epochs of 24 steps of 4 examples, data.val, a checkpoint every 3 steps (all kept)
config() {
    jq -n --arg model "$SHARED/models/stories260K.gguf" --arg out "$tmp/$1" --arg csv "$tmp/train.csv" \
        --arg val "$tmp/val.csv" --argjson train "$2" \
        '{model: $model, out_dir: $out, data: {train: $csv, val: $val, labels: ["bad", "good"], max_seq_len: 96},
          lora: {r: 4, alpha: 8}, train: ({epochs: 3, batch_size: 4, lr: 0.003, warmup_steps: 2, log_every: 3,
          save_every: 3, keep_checkpoints: 0} + $train)}' >"$tmp/$1.json"
}
config prep '{}'
"$bin" data prepare --config "$tmp/prep.json" 2>"$tmp/prepare.log"
check "data prepare writes val.h5" $? "$(cat "$tmp/prepare.log")"
[ -f "$tmp/prep/data/val.h5" ]
check "val.h5 exists" $?
config ref '{"eval_every": 0}'
config val '{"eval_every": 3}'
config es '{"eval_every": 3, "lr": 0.03, "early_stopping": {"metric": "val_loss", "patience": 2, "min_delta": 0.002}}'
for n in ref val es; do mkdir -p "$tmp/$n" && cp -r "$tmp/prep/data" "$tmp/$n/"; done

"$bin" train --config "$tmp/ref.json" --threads 2 2>"$tmp/ref.log"
check "run without validation" $? "$(tail -3 "$tmp/ref.log")"
"$bin" train --config "$tmp/val.json" --threads 2 2>"$tmp/val.log"
check "run with validation" $? "$(tail -3 "$tmp/val.log")"
cmp -s "$tmp/ref/train/adapter.gguf" "$tmp/val/train/adapter.gguf"
check "validation leaves the adapter byte-identical" $?
n_val=$(jq -s '[.[] | select(has("val_loss"))] | length' "$tmp/val/train/metrics.jsonl")
[ "$n_val" -eq 24 ]
check "a val_loss line every 3 of 72 steps" $? "($n_val)"
jq -e -s '[.[] | select(has("val_loss"))] | all(.val_loss > 0 and .val_accuracy >= 0 and .val_accuracy <= 1
          and .val_examples == 48)' "$tmp/val/train/metrics.jsonl" >/dev/null
check "val_loss and val_accuracy in metrics.jsonl" $?
grep -Eq "^val +3/72 \\| val loss [0-9.]+ \\| val accuracy" "$tmp/val.log"
check "validation in the progress lines" $? "$(grep -m1 '^val' "$tmp/val.log")"
[ ! -e "$tmp/val/train/adapter-last.gguf" ]
check "no adapter-last.gguf without early stopping" $?

"$bin" train --config "$tmp/es.json" --threads 2 2>"$tmp/es.log"
check "run with early stopping" $? "$(tail -3 "$tmp/es.log")"
last=$(jq -s '[.[] | select(has("val_loss"))] | last | .step' "$tmp/es/train/metrics.jsonl")
best=$(jq -s '[.[] | select(has("val_loss"))] | last | .best_step' "$tmp/es/train/metrics.jsonl")
[ "$last" -lt 72 ] && grep -q "early stopping after step $last" "$tmp/es.log"
check "early stopping ends the run before its last step" $? "(last validation at step $last; $(grep -m1 early "$tmp/es.log"))"
min=$(jq -s '[.[] | select(has("val_loss"))] | min_by(.val_loss) | .step' "$tmp/es/train/metrics.jsonl")
[ "$best" = "$min" ] && [ "$best" -lt "$last" ]
check "the best step is the lowest val_loss" $? "(best $best, lowest at $min, last $last)"
cmp -s "$tmp/es/train/adapter.gguf" "$(printf '%s/es/train/checkpoints/step-%06d/adapter.gguf' "$tmp" "$best")"
check "train/adapter.gguf is the best step's adapter" $?
cmp -s "$tmp/es/train/adapter-last.gguf" "$(printf '%s/es/train/checkpoints/step-%06d/adapter.gguf' "$tmp" "$last")"
check "train/adapter-last.gguf is the last step's adapter" $?
cp "$tmp/es/train/adapter.gguf" "$tmp/es-best.gguf" && cp "$tmp/es/train/adapter-last.gguf" "$tmp/es-last.gguf"
"$bin" train --config "$tmp/es.json" --threads 2 --resume "$(printf '%s/es/train/checkpoints/step-%06d' "$tmp" 6)" \
    2>"$tmp/es-resume.log"
check "resume the early-stopping run from step 6" $? "$(tail -3 "$tmp/es-resume.log")"
cmp -s "$tmp/es/train/adapter.gguf" "$tmp/es-best.gguf" && cmp -s "$tmp/es/train/adapter-last.gguf" "$tmp/es-last.gguf"
check "the resumed run keeps the same best and last adapters" $?

jq '.data.val = null' "$tmp/es.json" >"$tmp/noval.json"
out=$("$bin" train --config "$tmp/noval.json" 2>&1); rc=$?
[ "$rc" -eq 2 ] && grep -q "train.eval_every" <<<"$out"
check "validation without a validation set is refused" $? "(rc $rc: $out)"
finish
