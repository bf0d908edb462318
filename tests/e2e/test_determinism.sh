#!/usr/bin/env bash
# Determinism: the same config, seed and thread count give a bit-identical adapter (and metrics
# losses) on one machine. 48 SpamAssassin-like rows generated here -> data prepare -> train twice
# with 1 thread and twice with 2 threads (cmp of the adapter bytes) on the real stories260K; a
# different seed must give a different adapter (so the comparison is not vacuous). Whether 1 and 2
# threads agree is printed, not required (see README "Determinism").
set -uo pipefail
. "$(dirname "$0")/../testlib.sh" test_determinism

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 - "$tmp/train.csv" <<'PY'
import csv, random, sys
rng = random.Random(7)
ham = "meeting tomorrow about the project report please review attached notes thanks team lunch schedule".split()
spam = "win free money now click here limited offer cash prize viagra cheap deal act fast winner".split()
with open(sys.argv[1], "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["text", "label"])
    for i in range(48):
        label = "spam" if i % 3 == 0 else "ham"
        words = spam if label == "spam" else ham
        w.writerow(["Subject: " + " ".join(rng.choice(words) for _ in range(rng.randint(8, 30))), label])
PY
check "rows generated" $?

# config NAME SEED: a config whose out_dir shares the prepared data
config() {
    cat >"$tmp/$1.json" <<JSON
{
  "model": "$SHARED/models/stories260K.gguf",
  "out_dir": "$tmp/$1",
  "data": { "train": "$tmp/train.csv", "labels": ["ham", "spam"], "max_seq_len": 48 },
  "lora": { "r": 4, "alpha": 8 },
  "train": { "epochs": 2, "batch_size": 4, "grad_accum": 2, "lr": 0.003, "warmup_steps": 2, "log_every": 1, "seed": $2 }
}
JSON
}
config prep 1
"$bin" data prepare --config "$tmp/prep.json" 2>"$tmp/prepare.log"
check "data prepare" $? "$(cat "$tmp/prepare.log")"

# run NAME SEED THREADS: trains into $tmp/NAME/train
run() {
    config "$1" "$2"
    mkdir -p "$tmp/$1" && cp -r "$tmp/prep/data" "$tmp/$1/"
    "$bin" train --config "$tmp/$1.json" --threads "$3" 2>"$tmp/$1.log"
    check "train $1" $? "$(tail -3 "$tmp/$1.log")"
}
run a1 1 1; run b1 1 1; run a2 1 2; run b2 1 2; run seed2 2 2
for t in 1 2; do
    cmp -s "$tmp/a$t/train/adapter.gguf" "$tmp/b$t/train/adapter.gguf"
    check "$t thread(s): two runs give bit-identical adapters" $? "($(cmp "$tmp/a$t/train/adapter.gguf" "$tmp/b$t/train/adapter.gguf" 2>&1))"
    diff <(jq -c '[.step, .loss, .grad_norm]' "$tmp/a$t/train/metrics.jsonl") \
         <(jq -c '[.step, .loss, .grad_norm]' "$tmp/b$t/train/metrics.jsonl") >/dev/null
    check "$t thread(s): identical losses and gradient norms at every step" $?
done
n=$(wc -l <"$tmp/a2/train/metrics.jsonl"); [ "$n" -ge 4 ]; check "several optimizer steps ran" $? "($n)"
! cmp -s "$tmp/a2/train/adapter.gguf" "$tmp/seed2/train/adapter.gguf"
check "another seed gives another adapter (the comparison is not vacuous)" $?
if cmp -s "$tmp/a1/train/adapter.gguf" "$tmp/a2/train/adapter.gguf"; then
    echo "test_determinism: 1 and 2 threads give bit-identical adapters on this machine"
else
    echo "test_determinism: 1 and 2 threads give different adapter bytes on this machine (allowed: reduction order)"
fi
finish
