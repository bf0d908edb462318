#!/usr/bin/env bash
# eval.baselines (eval/baselines.c): the current system's answers per test row, joined by key and scored
# beside the model. On the real stories260K and generated rows (texts with quotes, commas and line breaks;
# an id column): a JSONL file keyed by text and a CSV file keyed by id, each with rows missing, answers
# outside the label set and a repeated row; the accuracy, the missing and outside counts in report.json
# equal what Python computes from the same files (missing and outside count wrong); the system is in the
# table with its paired statistics; two rows of one key with different answers, an unknown key kind and a
# taken name are refused naming the file, line or entry.
set -uo pipefail
. "$(dirname "$0")/../testlib.sh" test_eval_baselines

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 - "$tmp" <<'PY'
import csv, json, random, sys
d = sys.argv[1]
rng = random.Random(8)
vocab = {"ham": "meeting tomorrow project report please review notes thanks team lunch".split(),
         "spam": "win free money now click here offer cash prize cheap deal act fast".split()}
def rows(n, start):
    out = []
    for i in range(n):
        l = "spam" if i % 3 == 0 else "ham"
        words = [rng.choice(vocab[l]) for _ in range(rng.randint(5, 15))]
        text = "Subject: " + " ".join(words[:3]) + ', "quoted", here\n' + " ".join(words[3:])
        out.append([f"r{start + i}", text, l])
    return out
for name, n, start in (("train", 120, 0), ("test", 150, 1000)):
    with open(f"{d}/{name}.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows([["id", "text", "label"]] + rows(n, start))
test = list(csv.reader(open(f"{d}/test.csv", encoding="utf-8")))[1:]
# text-keyed JSONL and id-keyed CSV: 80% right, some rows missing, some answers outside the labels, one repeat
for kind in ("text", "id"):
    ans, want = [], {"right": 0, "missing": 0, "outside": 0}
    for i, (rid, text, label) in enumerate(test):
        key = text if kind == "text" else rid
        if i % 17 == 5:
            want["missing"] += 1
            continue
        a = label if rng.random() < 0.8 else ("ham" if label == "spam" else "spam")
        if i % 23 == 7:
            a = "not sure"
        want["outside"] += a == "not sure"
        want["right"] += a == label
        ans.append((key, a))
    ans.append(ans[0])
    if kind == "text":
        with open(f"{d}/llm.jsonl", "w", encoding="utf-8") as f:
            for k, a in ans:
                f.write(json.dumps({"text": k, "answer": a}) + "\n")
    else:
        with open(f"{d}/rules.csv", "w", newline="", encoding="utf-8") as f:
            csv.writer(f, lineterminator="\n").writerows([["id", "prediction"]] + [list(x) for x in ans])
    want["accuracy"] = want["right"] / len(test)
    json.dump(want, open(f"{d}/want-{kind}.json", "w"))
PY
check "rows and answers generated" $?

jq -n --arg model "$SHARED/models/stories260K.gguf" --arg d "$tmp" \
    '{model: $model, out_dir: ($d + "/run"), data: {train: ($d + "/train.csv"), test: ($d + "/test.csv"),
      labels: ["ham", "spam"], max_seq_len: 64}, lora: {r: 4, alpha: 8},
      train: {epochs: 1, batch_size: 8, lr: 0.003, warmup_steps: 2},
      eval: {baselines: [{name: "frontier-llm", file: ($d + "/llm.jsonl"), column: "answer"},
                         {name: "rules", file: ($d + "/rules.csv"), key: "id"}]}}' >"$tmp/config.json"
"$bin" data prepare --config "$tmp/config.json" 2>"$tmp/prep.log" && "$bin" train --config "$tmp/config.json" 2>"$tmp/train.log"
check "prepare and train" $? "$(tail -n 3 "$tmp/prep.log" "$tmp/train.log")"
"$bin" eval --config "$tmp/config.json" >"$tmp/eval.out" 2>"$tmp/eval.log"
check "eval with two external baselines" $? "$(tail -n 3 "$tmp/eval.log")"
cat "$tmp/eval.out" | sed -n '/^| system/,/^gain/p'
grep 'eval: baseline' "$tmp/eval.log"
for pair in "frontier-llm text" "rules id"; do
    read -r name kind <<<"$pair"
    jq -e --arg n "$name" --slurpfile w "$tmp/want-$kind.json" '.systems[$n] as $s |
        ($s.accuracy - $w[0].accuracy | fabs) < 1e-12 and $s.missing == $w[0].missing and
        $s.outside_labels == $w[0].outside and ($s.fine_tuned_vs_this.mcnemar_p | type == "number")' \
        "$tmp/run/eval/report.json" >/dev/null
    check "$name (key $kind): accuracy, missing and outside counts equal Python's join ($(cat "$tmp/want-$kind.json"))" $? \
        "$(jq -c --arg n "$name" '.systems[$n] | {accuracy, missing, outside_labels}' "$tmp/run/eval/report.json")"
    grep -q "^| $name ([0-9]* missing, [0-9]* outside the labels: counted wrong) |" "$tmp/eval.out"
    check "$name is in the table with its missing rows said" $?
done
jq -e '[.examples[] | select(.predicted["frontier-llm"] == null)] | length > 0' "$tmp/run/eval/report.json" >/dev/null
check "report.json's examples carry null for unanswered rows" $?

# refusals
printf '{"text": "a", "answer": "ham"}\n{"text": "a", "answer": "spam"}\n' >"$tmp/conflict.jsonl"
jq --arg f "$tmp/conflict.jsonl" '.eval.baselines = [{name: "x", file: $f, column: "answer"}]' "$tmp/config.json" >"$tmp/c1.json"
"$bin" eval --config "$tmp/c1.json" >/dev/null 2>"$tmp/c1.log"
rc=$?; [ $rc -eq 2 ] && grep -q 'conflict.jsonl: lines 1 and 2 have the same key and different answers' "$tmp/c1.log"
check "one key with two answers is refused naming the lines (exit $rc)" $? "$(tail -1 "$tmp/c1.log")"
jq '.eval.baselines[0].key = "row"' "$tmp/config.json" >"$tmp/c2.json"
"$bin" eval --config "$tmp/c2.json" >/dev/null 2>"$tmp/c2.log"
rc=$?; [ $rc -eq 2 ] && grep -q 'eval.baselines\[0\].key: "row" is not text or id' "$tmp/c2.log"
check "an unknown key kind is refused naming the entry (exit $rc)" $? "$(tail -1 "$tmp/c2.log")"
jq '.eval.baselines[0].name = "base"' "$tmp/config.json" >"$tmp/c3.json"
"$bin" eval --config "$tmp/c3.json" >/dev/null 2>"$tmp/c3.log"
rc=$?; [ $rc -eq 2 ] && grep -q 'eval.baselines\[0\].name: "base" is taken' "$tmp/c3.log"
check "a taken name is refused (exit $rc)" $? "$(tail -1 "$tmp/c3.log")"
jq '.eval.baselines[0].colour = "red"' "$tmp/config.json" >"$tmp/c4.json"
"$bin" eval --config "$tmp/c4.json" >/dev/null 2>"$tmp/c4.log"
rc=$?; [ $rc -eq 2 ] && grep -q 'eval.baselines\[0\].colour: unknown key' "$tmp/c4.log"
check "an unknown member of an entry is refused by the config reader (exit $rc)" $? "$(tail -1 "$tmp/c4.log")"
finish
