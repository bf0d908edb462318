#!/usr/bin/env bash
# Gradient checkpointing and the memory plan, end to end on the real stories260K, 2 threads: a run with
# train.checkpointing "layers" (packed rows, validation, grad_accum 2) writes an adapter byte-identical to
# "none"; train prints its memory plan; "auto" picks "layers" when train.memory_limit_mib admits only that
# plan, and the adapter is again the same; a limit nothing fits is refused before the base is loaded
# (exit 2, one error line naming the figures and the settings that would fit, no adapter written);
# `slimtune info MODEL --config C` prints the plan and whether it fits; resuming with checkpointing
# changed is allowed (it does not change the result).
set -uo pipefail
. "$(dirname "$0")/../testlib.sh" test_memory_plan

tmp=$(mktemp -d); trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT; [ -n "${KEEP:-}" ] && echo "$tmp"
/usr/bin/python3 -c '
import csv, random, sys
rng = random.Random(5)
words = {"good": "tasty fresh great lovely recommend".split(), "bad": "stale broken awful bland refund".split()}
for name, n in (("train", 64), ("val", 16)):
    with open(sys.argv[1] + "/" + name + ".csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["text", "label"])
        for i in range(n):
            label = "bad" if i % 3 == 0 else "good"
            w.writerow(["Review: " + " ".join(rng.choice(words[label]) for _ in range(rng.randint(3, 30))), label])
' "$tmp"
check "rows generated" $?

# config NAME TRAIN_JSON: 2 epochs of 8 steps (batch 4, grad_accum 2, packed rows), data.val every 4 steps
config() {
    jq -n --arg model "$SHARED/models/stories260K.gguf" --arg out "$tmp/$1" --arg csv "$tmp/train.csv" \
        --arg val "$tmp/val.csv" --argjson train "$2" \
        '{model: $model, out_dir: $out, data: {train: $csv, val: $val, labels: ["bad", "good"], max_seq_len: 64},
          lora: {r: 4, alpha: 8}, train: ({epochs: 2, batch_size: 4, grad_accum: 2, packing: true, lr: 0.003,
          warmup_steps: 2, eval_every: 4, save_every: 4} + $train)}' >"$tmp/$1.json"
}
config prep '{}'
"$bin" data prepare --config "$tmp/prep.json" 2>"$tmp/prepare.log"
check "data prepare" $? "$(cat "$tmp/prepare.log")"
# train NAME TRAIN_JSON [ARGS]: a run of its own on the prepared data; exit status in $rc
train() {
    config "$1" "$2"
    mkdir -p "$tmp/$1" && cp -r "$tmp/prep/data" "$tmp/$1/"
    "$bin" train --config "$tmp/$1.json" --threads 2 "${@:3}" 2>"$tmp/$1.log"
    rc=$?
}

train none '{"checkpointing": "none"}'
check "checkpointing none" $rc "$(tail -3 "$tmp/none.log")"
train layers '{"checkpointing": "layers"}'
check "checkpointing layers" $rc "$(tail -3 "$tmp/layers.log")"
cmp -s "$tmp/none/train/adapter.gguf" "$tmp/layers/train/adapter.gguf"
check "checkpointing layers: adapter byte-identical to none" $?
cmp -s <(jq -c 'del(.tokens_per_s, .elapsed_s, .real_tokens_per_s, .target_tokens_per_s, .eta_s)' "$tmp/none/train/metrics.jsonl") \
       <(jq -c 'del(.tokens_per_s, .elapsed_s, .real_tokens_per_s, .target_tokens_per_s, .eta_s)' "$tmp/layers/train/metrics.jsonl")
check "checkpointing layers: the same losses and validation figures" $?
grep -q 'memory plan for 4 x 64 tokens a micro-batch, base.quant f32, checkpointing layers' "$tmp/layers.log" &&
    grep -q 'peak, layers .* MiB   <- this run' "$tmp/layers.log"
check "train prints its memory plan" $? "$(grep -A9 'memory plan' "$tmp/layers.log")"

# planned peaks of the two modes (MiB), from the plan train printed
none_mib=$(sed -n 's/^  peak, none *\([0-9.]*\) MiB.*/\1/p' "$tmp/none.log")
layers_mib=$(sed -n 's/^  peak, layers *\([0-9.]*\) MiB.*/\1/p' "$tmp/none.log")
between=$(/usr/bin/python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print(int((a + b) / 2 + 0.5)) if b < a - 1 else sys.exit(1)" "$none_mib" "$layers_mib")
check "the plan with layers is smaller than with none" $? "(none $none_mib MiB, layers $layers_mib MiB)"
train auto "{\"memory_limit_mib\": $between}"
check "auto under a limit between the two plans" $rc "$(tail -3 "$tmp/auto.log")"
grep -q 'checkpointing layers (auto)' "$tmp/auto.log"
check "auto picks layers when none does not fit" $? "$(grep 'memory plan' "$tmp/auto.log")"
cmp -s "$tmp/none/train/adapter.gguf" "$tmp/auto/train/adapter.gguf"
check "auto: adapter byte-identical" $?
train roomy '{"checkpointing": "auto"}'
grep -q 'checkpointing none (auto)' "$tmp/roomy.log"
check "auto picks none when it fits" $? "$(grep 'memory plan' "$tmp/roomy.log")"

train tight '{"memory_limit_mib": 8}'
[ "$rc" -eq 2 ]
check "a run that fits nowhere exits 2" $? "(exit $rc)"
err=$(grep '^slimtune train:.*the run needs .* MiB (the plan above) but 8 MiB is available (train.memory_limit_mib); settings that fit' "$tmp/tight.log")
check "the refusal names the figures and the settings" $? "$(tail -2 "$tmp/tight.log")"
! grep -q 'base .*parameters stored' "$tmp/tight.log" && [ ! -e "$tmp/tight/train/adapter.gguf" ]
check "refused before the base is loaded, nothing written" $?
limit=$(/usr/bin/python3 -c "print(int(float('$layers_mib') * 0.98))")
train batch "{\"memory_limit_mib\": $limit, \"batch_size\": 16, \"grad_accum\": 1}"
grep -q 'settings that fit: .*train.batch_size [0-9]* with train.grad_accum [0-9]* and checkpointing layers' "$tmp/batch.log"
check "the refusal proposes a smaller batch with more accumulation" $? "$(tail -1 "$tmp/batch.log")"

"$bin" info "$SHARED/models/stories260K.gguf" --config "$tmp/layers.json" >"$tmp/info.txt" 2>&1
check "info --config" $? "$(tail -3 "$tmp/info.txt")"
grep -q '^memory plan .*micro-batch 4 x 64 tokens, base.quant f32' "$tmp/info.txt" &&
    grep -q 'peak, layers .*<- this run' "$tmp/info.txt" && grep -q '^  available .*: fits' "$tmp/info.txt"
check "info --config prints the plan and that it fits" $? "$(cat "$tmp/info.txt" | tail -12)"
"$bin" info "$SHARED/models/stories260K.gguf" --config "$tmp/tight.json" | grep -q 'does not fit: train would refuse it'
check "info --config says when a run would be refused" $?

# resume a checkpointing-none run's checkpoint with layers: allowed, same adapter
cp -r "$tmp/none" "$tmp/res" && rm -rf "$tmp/res/train/checkpoints/step-000016" "$tmp/res/train/checkpoints/step-000012" \
    "$tmp/res/train/adapter.gguf"
jq --arg out "$tmp/res" '.train.checkpointing = "layers" | .out_dir = $out' "$tmp/none.json" >"$tmp/res.json"
"$bin" train --config "$tmp/res.json" --threads 2 --resume 2>"$tmp/res.log"
check "resume with checkpointing changed" $? "$(tail -3 "$tmp/res.log")"
grep -q 'checkpointing layers' "$tmp/res.log" && cmp -s "$tmp/none/train/adapter.gguf" "$tmp/res/train/adapter.gguf"
check "resumed from step 8 with layers: adapter byte-identical to none's" $?
finish
