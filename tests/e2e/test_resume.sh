#!/usr/bin/env bash
# Checkpoints and exact resume (lib/checkpoint.h, train/train.c) on the real stories260K, 2 threads:
# a run killed with SIGKILL at a random step and resumed with --resume ends with an adapter
# byte-identical to an uninterrupted run's, and the same metrics; SIGTERM stops the run with exit 143
# after saving a checkpoint, and a safe key (train.log_every) may change on resume; resuming is refused
# after the data changed (naming train.h5), after a result-affecting key changed (naming train.lr), with
# another thread count (naming train.threads), and from a truncated state.h5 (naming it).
set -uo pipefail
. "$(dirname "$0")/../testlib.sh" test_resume

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# rows N SEED FILE: N SpamAssassin-like rows
rows() {
    /usr/bin/python3 - "$@" <<'PY'
import csv, random, sys
n, seed, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = random.Random(seed)
vocab = {"ham": "meeting tomorrow project report please review notes thanks team lunch".split(),
         "spam": "win free money now click here offer cash prize cheap deal act fast".split()}
labels = ["spam" if i % 3 == 0 else "ham" for i in range(n)]
body = [" ".join(rng.choice(vocab[l]) for _ in range(rng.randint(8, 30))) for l in labels]
with open(out, "w", newline="", encoding="utf-8") as f:
    csv.writer(f, lineterminator="\n").writerows([["text", "label"]] + [["Subject: " + b, l] for b, l in zip(body, labels)])
PY
}
rows 96 7 "$tmp/train.csv" && rows 96 8 "$tmp/other.csv"
check "rows generated" $?

# config NAME [LR [LOG_EVERY [CSV]]]: 3 epochs of 24 steps, a checkpoint every 3 steps
config() {
    jq -n --arg model "$SHARED/models/stories260K.gguf" --arg out "$tmp/$1" --arg csv "${4:-$tmp/train.csv}" \
        --argjson lr "${2:-0.003}" --argjson log "${3:-1}" \
        '{model: $model, out_dir: $out, data: {train: $csv, labels: ["ham", "spam"], max_seq_len: 48},
          lora: {r: 4, alpha: 8}, train: {epochs: 3, batch_size: 4, lr: $lr, warmup_steps: 2, log_every: $log,
          save_every: 3, keep_checkpoints: 2}}' >"$tmp/$1.json"
}
config prep
"$bin" data prepare --config "$tmp/prep.json" 2>"$tmp/prepare.log"
check "data prepare" $? "$(cat "$tmp/prepare.log")"
for n in ref kill term; do config $n; mkdir -p "$tmp/$n" && cp -r "$tmp/prep/data" "$tmp/$n/"; done

"$bin" train --config "$tmp/ref.json" --threads 2 2>"$tmp/ref.log"
check "uninterrupted run" $? "$(tail -3 "$tmp/ref.log")"
n_ckpt=$(ls "$tmp/ref/train/checkpoints" | grep -c '^step-')
[ "$n_ckpt" -eq 2 ] && [ -f "$tmp/ref/train/checkpoints/step-000072/state.h5" ]
check "the last 2 checkpoints kept, the final one among them" $? "($(ls "$tmp/ref/train/checkpoints"))"
jq -e 'has("real_tokens_per_s") and has("target_tokens_per_s") and .real_tokens <= .tokens and .target_tokens < .real_tokens' \
    "$tmp/ref/train/metrics.jsonl" >/dev/null
check "metrics count real and target tokens apart from padded ones" $?

# start NAME: trains NAME in the background once its first checkpoint exists (pid in $pid)
start() {
    "$bin" train --config "$tmp/$1.json" --threads 2 2>"$tmp/$1.log" & pid=$!
    for _ in $(seq 400); do
        ls "$tmp/$1/train/checkpoints" 2>/dev/null | grep -q '^step-' && break
        sleep 0.02
    done
}
start kill
sleep "0.$((RANDOM % 40))"
kill -9 $pid; wait $pid; rc=$?
[ $rc -eq 137 ] && [ ! -f "$tmp/kill/train/adapter.gguf" ]
check "SIGKILL stopped the run before its end" $? "(exit $rc)"
"$bin" train --config "$tmp/kill.json" --threads 2 --resume 2>"$tmp/kill2.log"
check "--resume after SIGKILL" $? "$(tail -3 "$tmp/kill2.log")"
grep -o 'resuming from .*' "$tmp/kill2.log"
grep -qE 'resuming from .*/step-0000[0-9][0-9] at step ([1-9]|[1-6][0-9]) of 72' "$tmp/kill2.log"
check "it resumed mid-run from the newest checkpoint" $? "$(head -1 "$tmp/kill2.log")"
cmp "$tmp/ref/train/adapter.gguf" "$tmp/kill/train/adapter.gguf"
check "the resumed adapter is byte-identical to the uninterrupted one" $?
fields='[.step, .total_steps, .loss, .lr, .grad_norm, .tokens, .real_tokens, .target_tokens]'
diff <(jq -c "$fields" "$tmp/ref/train/metrics.jsonl") <(jq -c "$fields" "$tmp/kill/train/metrics.jsonl") >/dev/null
check "metrics.jsonl continues: the same lines as the uninterrupted run's" $?

start term
kill -TERM $pid; wait $pid; rc=$?
[ $rc -eq 143 ]; check "SIGTERM: exit 143" $? "(exit $rc) $(tail -2 "$tmp/term.log")"
saved=$(grep -o 'saved [^;]*' "$tmp/term.log" | cut -d' ' -f2)
[ -n "$saved" ] && [ -f "$saved/state.h5" ] && [ -f "$saved/adapter.gguf" ] && [ ! -f "$tmp/term/train/adapter.gguf" ]
check "SIGTERM: the step was finished and saved, no final adapter" $? "($saved)"

config term 0.001
"$bin" train --config "$tmp/term.json" --threads 2 --resume 2>"$tmp/lr.log"; rc=$?
[ $rc -eq 2 ] && grep -q "train.lr: " "$tmp/lr.log"
check "a changed train.lr is refused, naming the key" $? "(exit $rc) $(cat "$tmp/lr.log")"
config term 0.003 5
"$bin" train --config "$tmp/term.json" --threads 1 --resume 2>"$tmp/threads.log"; rc=$?
[ $rc -eq 2 ] && grep -q "train.threads: " "$tmp/threads.log"
check "another thread count is refused, naming train.threads" $? "(exit $rc) $(cat "$tmp/threads.log")"
cp -r "$tmp/term" "$tmp/data2" && config data2 0.003 5 "$tmp/other.csv"
"$bin" data prepare --config "$tmp/data2.json" 2>/dev/null && config data2 0.003 5
"$bin" train --config "$tmp/data2.json" --threads 2 --resume 2>"$tmp/data2.log"; rc=$?
[ $rc -eq 2 ] && grep -q "data2/data/train.h5: " "$tmp/data2.log"
check "changed data is refused, naming the file" $? "(exit $rc) $(cat "$tmp/data2.log")"
cp -r "$saved" "$tmp/bad" && truncate -s 2000 "$tmp/bad/state.h5"
"$bin" train --config "$tmp/term.json" --threads 2 --resume "$tmp/bad" 2>"$tmp/bad.log"; rc=$?
[ $rc -eq 2 ] && grep -q "bad/state.h5: " "$tmp/bad.log"
check "a truncated checkpoint is refused, naming state.h5" $? "(exit $rc) $(cat "$tmp/bad.log")"
"$bin" train --config "$tmp/term.json" --threads 2 --resume 2>"$tmp/term2.log"
check "--resume after SIGTERM with another train.log_every" $? "$(tail -3 "$tmp/term2.log")"
cmp "$tmp/ref/train/adapter.gguf" "$tmp/term/train/adapter.gguf"
check "... gives the uninterrupted run's adapter" $?
finish
