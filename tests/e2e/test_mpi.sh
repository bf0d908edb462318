#!/usr/bin/env bash
# Data-parallel training on MPI (lib/dist.h, train/train.c) on loopback, the real stories260K, 1 thread a
# rank: `mpirun -np 2` with train.grad_accum G gives the adapter of one process with grad_accum 2G (same
# global batch, same example order) within 1e-6 relative L2 (tests/train/adapter_diff.py), with the same
# validation figures; rank 0 alone logs. A run checkpointed at 2 ranks resumes at 2 ranks to the
# uninterrupted run's bytes; at 1 rank it is refused naming the rank count. A rank killed with SIGKILL
# ends the job non-zero within 30 s and leaves complete checkpoints, which resume. SIGTERM to mpirun
# stops every rank after the same step with a checkpoint.
set -uo pipefail
. "$(dirname "$0")/../testlib.sh" test_mpi

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
command -v mpirun >/dev/null
check "mpirun is installed (openmpi-bin: make deps)" $? || finish
ldd "$bin" | grep -q libmpi
check "$bin is built with MPI (mpicc found at build time)" $? || finish
# CI runs as root in a container: Open MPI refuses root unless told, and has 2 cores for 2 ranks
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpi() { timeout 300 mpirun --oversubscribe -np "$@"; }
# pids_of PREFIX: the processes whose command line starts with PREFIX (from /proc: no procps on a fresh machine)
pids_of() {
    local p c
    for p in /proc/[0-9]*; do
        c=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
        [[ $c == "$1"* ]] && echo "${p#/proc/}"
    done
}
# make test SANITIZE=1: the leaks Open MPI leaves are suppressed by its libraries and calls
# (tests/sanitize/lsan.supp), which the fast unwinder cannot reach through its unloaded plugins
[ "${SANITIZE:-0}" = 1 ] && export LSAN_OPTIONS="$LSAN_OPTIONS:fast_unwind_on_malloc=0"

/usr/bin/python3 - "$tmp" <<'PY'
import csv, random, sys
rng = random.Random(7)
vocab = {"ham": "meeting tomorrow project report please review notes thanks team lunch".split(),
         "spam": "win free money now click here offer cash prize cheap deal act fast".split()}
for name, n in (("train", 96), ("val", 24)):
    labels = ["spam" if i % 3 == 0 else "ham" for i in range(n)]
    body = [" ".join(rng.choice(vocab[l]) for _ in range(rng.randint(8, 30))) for l in labels]
    with open(f"{sys.argv[1]}/{name}.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows([["text", "label"]] + [["Subject: " + b, l] for b, l in zip(body, labels)])
PY
check "rows generated" $?

# config NAME ACCUM [EPOCHS]: validation every 4 steps, a checkpoint every 4 steps
config() {
    jq -n --arg model "$SHARED/models/stories260K.gguf" --arg out "$tmp/$1" --arg dir "$tmp" --argjson acc "$2" \
        --argjson ep "${3:-2}" \
        '{model: $model, out_dir: $out, data: {train: ($dir + "/train.csv"), val: ($dir + "/val.csv"),
          labels: ["ham", "spam"], max_seq_len: 48}, lora: {r: 4, alpha: 8},
          train: {epochs: $ep, batch_size: 4, grad_accum: $acc, lr: 0.003, warmup_steps: 2, log_every: 1,
          save_every: 4, eval_every: 4, keep_checkpoints: 3, seed: 1}}' >"$tmp/$1.json"
    mkdir -p "$tmp/$1" && { [ ! -d "$tmp/prep/data" ] || cp -r "$tmp/prep/data" "$tmp/$1/"; }
}
config prep 1
"$bin" data prepare --config "$tmp/prep.json" 2>"$tmp/prep.log"
check "data prepare" $? "$(tail -3 "$tmp/prep.log")"

# equal: 2 ranks x accum G against 1 process x accum 2G
for g in 1 2; do
    config one$g $((2 * g)); config two$g $g
    "$bin" train --config "$tmp/one$g.json" --threads 1 2>"$tmp/one$g.log"
    check "1 process, grad_accum $((2 * g))" $? "$(tail -3 "$tmp/one$g.log")"
    mpi 2 "$bin" train --config "$tmp/two$g.json" --threads 1 >"$tmp/two$g.log" 2>&1
    check "mpirun -np 2, grad_accum $g" $? "$(tail -5 "$tmp/two$g.log")"
    diff=$(/usr/bin/python3 tests/train/adapter_diff.py "$tmp/two$g/train/adapter.gguf" "$tmp/one$g/train/adapter.gguf" 1e-6)
    check "2 ranks x accum $g = 1 process x accum $((2 * g)) within 1e-6: $diff" $?
    echo "accum $g: $diff"
    fields='[.step, .val_accuracy, .tokens, .target_tokens]'
    diff <(jq -c "$fields" "$tmp/one$g/train/metrics.jsonl") <(jq -c "$fields" "$tmp/two$g/train/metrics.jsonl") >/dev/null
    check "accum $g: the same metrics lines, counts and validation accuracy" $?
    paste <(jq -r '.val_loss // .loss' "$tmp/one$g/train/metrics.jsonl") <(jq -r '.val_loss // .loss' "$tmp/two$g/train/metrics.jsonl") |
        awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 1e-5 * $1) bad++ } END { exit bad > 0 }'
    check "accum $g: training and validation losses within 1e-5" $?
done
steps=$(jq -s 'map(select(has("loss"))) | length' "$tmp/two1/train/metrics.jsonl")
[ "$(grep -c '^step ' "$tmp/two1.log")" -eq "$steps" ] && [ "$(grep -c 'wrote .*adapter.gguf' "$tmp/two1.log")" -eq 1 ]
check "rank 0 alone prints progress and writes ($steps steps)" $? "$(grep -c '^step ' "$tmp/two1.log") lines"
grep -q 'batch 4 x accum 1 x 2 ranks' "$tmp/two1.log" && grep -qE '2 ranks: rank 0 spent [0-9.]+ ms a step' "$tmp/two1.log"
check "the banner gives the global batch, the summary the time in the sums" $?

# resume: 2 ranks, killed (SIGKILL to rank 1) once a checkpoint exists, resumed at 2 ranks
config ref 1 6; config kill 1 6
mpi 2 "$bin" train --config "$tmp/ref.json" --threads 1 >"$tmp/ref.log" 2>&1
check "uninterrupted 2-rank run" $? "$(tail -5 "$tmp/ref.log")"
mpi 2 "$bin" train --config "$tmp/kill.json" --threads 1 >"$tmp/kill.log" 2>&1 & mpid=$!
for _ in $(seq 500); do ls "$tmp/kill/train/checkpoints" 2>/dev/null | grep -q '^step-0000[1-9]' && break; sleep 0.02; done
ranks=($(pids_of "$bin train --config $tmp/kill.json")) # the ranks (timeout's and mpirun's command lines start otherwise)
[ ${#ranks[@]} -eq 2 ]
check "2 ranks running (pids ${ranks[*]:-none})" $?
t0=$SECONDS
kill -9 "${ranks[-1]:-0}"; wait $mpid; rc=$?
[ $rc -ne 0 ] && [ $((SECONDS - t0)) -le 30 ] && [ ! -f "$tmp/kill/train/adapter.gguf" ]
check "a killed rank ends the job non-zero within 30 s (exit $rc, $((SECONDS - t0)) s)" $? "$(tail -5 "$tmp/kill.log")"
ok=0
for d in "$tmp"/kill/train/checkpoints/step-*; do
    for f in state.h5 config.json metrics.jsonl adapter.gguf; do [ -s "$d/$f" ] || ok=1; done
done
check "every checkpoint left is complete ($(ls "$tmp/kill/train/checkpoints" | tr '\n' ' '))" $ok
"$bin" train --config "$tmp/kill.json" --threads 1 --resume 2>"$tmp/one-rank.log"
rc=$?
[ $rc -eq 2 ] && grep -q 'ran as 2 ranks, this run has 1' "$tmp/one-rank.log"
check "resuming a 2-rank checkpoint in 1 process is refused naming the rank count (exit $rc)" $? "$(tail -2 "$tmp/one-rank.log")"
mpi 2 "$bin" train --config "$tmp/kill.json" --threads 1 --resume >"$tmp/kill2.log" 2>&1
check "--resume at 2 ranks" $? "$(tail -5 "$tmp/kill2.log")"
grep -qE 'resuming from .*/step-0000[0-9]+ at step [1-9][0-9]* of' "$tmp/kill2.log"
check "it resumed mid-run" $? "$(grep resuming "$tmp/kill2.log")"
cmp "$tmp/ref/train/adapter.gguf" "$tmp/kill/train/adapter.gguf"
check "the resumed adapter is byte-identical to the uninterrupted 2-rank run's" $?

# SIGTERM to mpirun: forwarded to the ranks, which stop after the same step with a checkpoint
config term 1 40
mpi 2 "$bin" train --config "$tmp/term.json" --threads 1 >"$tmp/term.log" 2>&1 & mpid=$!
for _ in $(seq 500); do ls "$tmp/term/train/checkpoints" 2>/dev/null | grep -q '^step-' && break; sleep 0.02; done
kill -TERM "$(pids_of "mpirun --oversubscribe -np 2 $bin train --config $tmp/term.json")"; wait $mpid
saved=$(grep -o 'saved [^;]*' "$tmp/term.log" | cut -d' ' -f2)
[ -n "$saved" ] && [ -f "$saved/state.h5" ] && [ "$(grep -c 'stopped by SIGTERM' "$tmp/term.log")" -eq 1 ]
check "SIGTERM: every rank stopped after the same step, rank 0 saved it" $? "$(tail -3 "$tmp/term.log")"
finish
