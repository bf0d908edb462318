#!/usr/bin/env bash
# slimtune data drift (data/drift.c) on the real stories260K: rows drawn like the training rows pass every
# gate (exit 0); rows with another label mix, longer texts and new words cross drift.max_token_js and
# max_length_ks (exit 1, the figures named DRIFT, report.json says which); with --adapter
# the model's mean confidence and predicted labels are compared too; the token and label figures equal
# Python's Jensen-Shannon divergence of the same counts; missing options exit 2.
set -uo pipefail
. "$(dirname "$0")/../testlib.sh" test_drift

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 - "$tmp" <<'PY'
import csv, random, sys
d = sys.argv[1]
rng = random.Random(3)
vocab = {"ham": "meeting tomorrow project report please review notes thanks team lunch".split(),
         "spam": "win free money now click here offer cash prize cheap deal act fast".split()}
def write(name, n, spam_every, lo, hi, extra=()):
    labels = ["spam" if i % spam_every == 0 else "ham" for i in range(n)]
    body = [" ".join(rng.choice(vocab[l] + list(extra)) for _ in range(rng.randint(lo, hi))) for l in labels]
    with open(f"{d}/{name}.csv", "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([["text", "label"]] + [["Subject: " + b, l] for b, l in zip(body, labels)])
write("train", 150, 3, 8, 30)
write("same", 150, 3, 8, 30)
write("shifted", 150, 2, 20, 60, "crypto wallet bitcoin invest urgent".split())
PY
jq -n --arg model "$SHARED/models/stories260K.gguf" --arg d "$tmp" \
    '{model: $model, out_dir: ($d + "/run"), data: {train: ($d + "/train.csv"), labels: ["ham", "spam"], max_seq_len: 48},
      lora: {r: 4, alpha: 8}, train: {epochs: 1, batch_size: 8, lr: 0.003, warmup_steps: 2}}' >"$tmp/config.json"
"$bin" data prepare --config "$tmp/config.json" 2>/dev/null && "$bin" train --config "$tmp/config.json" 2>"$tmp/train.log"
check "prepare and train" $? "$(tail -n 2 "$tmp/train.log")"
drift() { "$bin" data drift --config "$tmp/config.json" --reference "$tmp/train.csv" "$@"; }
drift --current "$tmp/same.csv" >"$tmp/same.out" 2>"$tmp/same.log"
rc=$?; cat "$tmp/same.out"
[ $rc -eq 0 ] && ! grep -q DRIFT "$tmp/same.out" && jq -e '.passed and (.figures | length == 3)' "$tmp/run/drift/report.json" >/dev/null
check "rows like the training rows: no drift (exit $rc)" $? "$(tail -2 "$tmp/same.log")"
drift --current "$tmp/shifted.csv" --adapter "$tmp/run/train/adapter.gguf" >"$tmp/shift.out" 2>"$tmp/shift.log"
rc=$?; cat "$tmp/shift.out"
[ $rc -eq 1 ] && grep -q '^| token_js .*DRIFT' "$tmp/shift.out" && grep -q '^| length_ks .*DRIFT' "$tmp/shift.out"
check "shifted rows: exit 1, token and length figures DRIFT (exit $rc)" $? "$(tail -2 "$tmp/shift.log")"
jq -e '(.passed | not) and .figures.token_js.passed == false and .figures.length_ks.p_value < 1e-6 and
       (.figures | has("confidence_drop") and has("predicted_js")) and .current.mean_confidence > 0 and
       .current.mean_input_tokens > .reference.mean_input_tokens' "$tmp/run/drift/report.json" >/dev/null
check "report.json: the crossed gates, the KS p-value, the model's confidence, longer inputs" $?
/usr/bin/python3 - "$tmp/run/drift/report.json" <<'PY'
import json, math, sys
r = json.load(open(sys.argv[1]))
def js(a, b):
    sa, sb = sum(a), sum(b)
    out = 0.0
    for x, y in zip(a, b):
        p, q = x / sa, y / sb
        m = (p + q) / 2
        out += (0.5 * p * math.log2(p / m) if p else 0) + (0.5 * q * math.log2(q / m) if q else 0)
    return out
ref = [r["reference"]["labels"][k] for k in ("ham", "spam")] + [r["reference"]["labels_outside_the_set"]]
cur = [r["current"]["labels"][k] for k in ("ham", "spam")] + [r["current"]["labels_outside_the_set"]]
want, got = js(ref, cur), r["figures"]["label_js"]["value"]
print(f"label JS: report {got}, Python {want}")
sys.exit(0 if abs(want - got) < 1e-12 else 1)
PY
check "the label figure equals Python's Jensen-Shannon divergence of the reported counts" $?
"$bin" data drift --config "$tmp/config.json" --reference "$tmp/train.csv" >/dev/null 2>"$tmp/usage.log"
rc=$?; [ $rc -eq 2 ] && grep -q 'current are required' "$tmp/usage.log"
check "--current missing: exit 2 naming it (exit $rc)" $?
finish
