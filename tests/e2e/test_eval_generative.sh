#!/usr/bin/env bash
# eval on data without labels (eval/generative.c) on the real stories260K: an extraction dataset built here
# (prompt/completion, each completion a JSON object of three fields) is answered by greedy generation with
# the fine-tuned and the base model; exact match, token F1, the valid-JSON rate and per-field precision,
# recall and F1 in report.json equal what Python computes (the SQuAD script's normalisation, json.loads)
# from the report's outputs and the references of the test CSV, and the references equal the CSV's; the
# gate eval.min_accuracy applies to exact match. Plain-text data gets perplexity over every target token.
set -uo pipefail
. "$(dirname "$0")/../testlib.sh" test_eval_generative

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 - "$tmp" <<'PY'
import csv, json, random, sys
d = sys.argv[1]
rng = random.Random(4)
names, pets, colors = ["Lily", "Tom", "Sam", "Anna", "Ben", "Mia"], ["dog", "cat", "bird", "fish"], ["red", "blue", "green"]
def row():
    n, p, c = rng.choice(names), rng.choice(pets), rng.choice(colors)
    return [f"Story: {n} had a {c} {p}.\nJSON:", " " + json.dumps({"name": n, "pet": p, "color": c})]
for name, k in (("train", 240), ("test", 40)):
    with open(f"{d}/{name}.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows([["prompt", "completion"]] + [row() for _ in range(k)])
with open(f"{d}/text.csv", "w", newline="", encoding="utf-8") as f:
    csv.writer(f, lineterminator="\n").writerows([["text"]] + [[f"Once upon a time {rng.choice(names)} had a {rng.choice(pets)}."] for _ in range(30)])
PY
check "datasets generated" $?
jq -n --arg model "$SHARED/models/stories260K.gguf" --arg d "$tmp" \
    '{model: $model, out_dir: ($d + "/run"), data: {train: ($d + "/train.csv"), test: ($d + "/test.csv"), max_seq_len: 64},
      lora: {r: 8, alpha: 16}, train: {epochs: 6, batch_size: 8, lr: 0.005, warmup_steps: 5},
      eval: {max_new_tokens: 40, min_accuracy: 0}}' >"$tmp/config.json"
"$bin" data prepare --config "$tmp/config.json" 2>"$tmp/prep.log" && "$bin" train --config "$tmp/config.json" 2>"$tmp/train.log"
check "prepare and train (prompt/completion)" $? "$(tail -n 3 "$tmp/prep.log" "$tmp/train.log")"
"$bin" eval --config "$tmp/config.json" >"$tmp/eval.out" 2>"$tmp/eval.log"
check "eval generates and scores (exit 0)" $? "$(tail -n 3 "$tmp/eval.log")"
cat "$tmp/eval.out"
/usr/bin/python3 - "$tmp/run/eval/report.json" "$tmp/test.csv" <<'PY'
import collections, csv, json, re, string, sys
r = json.load(open(sys.argv[1], encoding="utf-8"))
refs = [row[1] for row in list(csv.reader(open(sys.argv[2], encoding="utf-8")))[1:]]
def norm(s):  # the SQuAD v1.1 evaluation script's normalize_answer
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())
def f1(p, g):
    p, g = norm(p).split(), norm(g).split()
    if not p or not g:
        return float(p == g)
    same = sum((collections.Counter(p) & collections.Counter(g)).values())
    if same == 0:
        return 0.0
    pr, rc = same / len(p), same / len(g)
    return 2 * pr * rc / (pr + rc)
def obj(s):
    try:
        v = json.loads(s)
    except ValueError:
        return None
    return v if isinstance(v, dict) else None
def same(a, b):
    return norm(a) == norm(b) if isinstance(a, str) and isinstance(b, str) else a == b
bad = []
assert r["task"] == "extraction", r["task"]
ex = r["examples"]
if [e["reference"] for e in ex] != [refs[e["index"]] for e in ex]:
    bad.append("references differ from the CSV's completions")
for sysname in ("fine-tuned", "base"):
    outs = [e["outputs"][sysname] for e in ex]
    gold = [refs[e["index"]] for e in ex]
    em = sum(norm(o) == norm(g) for o, g in zip(outs, gold)) / len(ex)
    tf = sum(f1(o, g) for o, g in zip(outs, gold)) / len(ex)
    valid = sum(obj(o) is not None for o in outs) / len(ex)
    cnt = collections.defaultdict(lambda: [0, 0, 0])  # tp fp fn
    for o, g in zip(outs, gold):
        p, q = obj(o), json.loads(g)
        for k, v in q.items():
            ok = p is not None and k in p and same(v, p[k])
            cnt[k][0 if ok else 2] += 1
            if p is not None and k in p and not ok:
                cnt[k][1] += 1
        for k in (p or {}):
            if k not in q:
                cnt[k][1] += 1
    s = r["systems"][sysname]
    for name, want, got in (("exact_match", em, s["exact_match"]), ("token_f1", tf, s["token_f1"]), ("valid_json", valid, s["valid_json"])):
        if abs(want - got) > 1e-12:
            bad.append(f"{sysname} {name}: report {got}, Python {want}")
    for k, (tp, fp, fn) in cnt.items():
        pr = tp / (tp + fp) if tp + fp else 0.0
        rc = tp / (tp + fn) if tp + fn else 0.0
        f = 2 * pr * rc / (pr + rc) if pr + rc else 0.0
        got = s["fields"].get(k, {})
        if abs(got.get("f1", -1) - f) > 1e-12 or abs(got.get("precision", -1) - pr) > 1e-12:
            bad.append(f"{sysname} field {k}: report {got}, Python P {pr} R {rc} F1 {f}")
    print(f"{sysname}: exact {em:.4f} token F1 {tf:.4f} valid JSON {valid:.4f} fields {dict(cnt)}")
print("\n".join(bad) or "all figures equal")
sys.exit(1 if bad else 0)
PY
check "exact match, token F1, valid JSON and field F1 equal Python's from the outputs and the CSV" $?
jq -e '.examples | length == 40' "$tmp/run/eval/report.json" >/dev/null && grep -q '^| fine-tuned |' "$tmp/eval.out"
check "report.json lists the 40 examples, the table is printed" $?
"$bin" eval --config "$tmp/config.json" --min-accuracy 1 >/dev/null 2>"$tmp/gate.log"
rc=$?; [ $rc -eq 1 ] && grep -q 'gate failed: fine-tuned exact match' "$tmp/gate.log"
check "min_accuracy gates exact match (exit $rc)" $? "$(tail -1 "$tmp/gate.log")"

# plain text: perplexity
jq --arg d "$tmp" '.out_dir = ($d + "/text") | .data.train = ($d + "/text.csv") | .data.test = ($d + "/text.csv")' \
    "$tmp/config.json" >"$tmp/text.json"
"$bin" data prepare --config "$tmp/text.json" 2>"$tmp/tprep.log" && "$bin" train --config "$tmp/text.json" 2>"$tmp/ttrain.log"
check "prepare and train (plain text)" $? "$(tail -n 3 "$tmp/tprep.log" "$tmp/ttrain.log")"
"$bin" eval --config "$tmp/text.json" >"$tmp/teval.out" 2>"$tmp/teval.log"
check "eval on plain text" $? "$(tail -n 3 "$tmp/teval.log")"
cat "$tmp/teval.out"
loss=$(h5dump -a n_loss_tokens "$tmp/text/data/test.h5" | sed -n 's/^ *(0): //p')
jq -e --argjson n "${loss:-0}" '.task == "perplexity" and ([.systems[] | .target_tokens == $n and
       ((.perplexity | log) - .nll | fabs) < 1e-9] | all) and
       .systems["fine-tuned"].perplexity < .systems.base.perplexity' "$tmp/text/eval/report.json" >/dev/null
check "perplexity = exp(NLL) over all $loss loss tokens; training on the text lowered it" $? \
    "$(jq -c '.systems' "$tmp/text/eval/report.json")"
finish
