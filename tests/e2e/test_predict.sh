#!/usr/bin/env bash
# `slimtune predict` on the real stories260K, 2 threads: over the test split it reproduces eval's accuracy
# (the same label scoring); every input row gets one line, in input order, bad rows an error line; rows
# without a label column are predicted too; the probabilities of a row sum to 1; a merged F32 file
# (--model, no adapter) predicts what base + adapter predicts; --out is written whole or not at all.
# Rows of a prompt/completion config (completion column absent or empty) get greedy generations, the same
# text real llama.cpp generates greedily from the same prompt ids (tests/llamacpp/greedy_labels.mjs).
# Chat rows (make-tiny-model's qwen2, template qwen2.5): the prompt ends with the template's generation
# prompt "<|im_start|>assistant\n", a final assistant turn is replaced, and llama.cpp continues the same way.
set -uo pipefail
. "$(dirname "$0")/../testlib.sh" test_predict

tmp=$(mktemp -d); trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT; [ -n "${KEEP:-}" ] && echo "$tmp"
/usr/bin/python3 -c '
import csv, random, sys
rng = random.Random(3)
words = {"good": "tasty fresh great lovely recommend".split(), "bad": "stale broken awful bland refund".split()}
def rows(n):
    for i in range(n):
        label = "bad" if i % 3 == 0 else "good"
        yield "Review: " + " ".join(rng.choice(words[label]) for _ in range(rng.randint(3, 12))), label
for name, n in (("train", 96), ("test", 40)):
    with open(sys.argv[1] + "/" + name + ".csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["text", "label"])
        w.writerows(rows(n))
import json
with open(sys.argv[1] + "/new.jsonl", "w") as f:                 # JSONL, no label; line 3 has a blank text
    for t in ("Review: tasty fresh", "Review: awful refund", " ", "Review: lovely"):
        f.write(json.dumps({"text": t}) + "\n")
with open(sys.argv[1] + "/mixed.csv", "w", newline="") as f:     # a label outside the set, an empty text
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["text", "label"])
    w.writerows([["Review: stale", "bad"], ["Review: great", "neutral"], ["", "good"], ["Review: fresh", "good"]])
' "$tmp"
check "rows generated" $?
jq -n --arg model "$SHARED/models/stories260K.gguf" --arg out "$tmp/run" --arg tr "$tmp/train.csv" --arg te "$tmp/test.csv" \
    '{model: $model, out_dir: $out, data: {train: $tr, test: $te, labels: ["bad", "good"], max_seq_len: 64},
      lora: {r: 4, alpha: 8}, train: {epochs: 2, batch_size: 8, lr: 0.01, warmup_steps: 2, threads: 2},
      export: {formats: ["f32"]}}' >"$tmp/config.json"
"$bin" data prepare --config "$tmp/config.json" 2>"$tmp/log" && "$bin" train --config "$tmp/config.json" 2>>"$tmp/log" &&
    "$bin" eval --config "$tmp/config.json" >>"$tmp/log" 2>&1 && "$bin" export --config "$tmp/config.json" >>"$tmp/log" 2>&1
check "prepare, train, eval, export" $? "$(tail -3 "$tmp/log")"

"$bin" predict --config "$tmp/config.json" --input "$tmp/test.csv" --out "$tmp/test.jsonl" 2>"$tmp/p.log"
check "predict the test split" $? "$(tail -3 "$tmp/p.log")"
want=$(jq '.systems["fine-tuned"].accuracy' "$tmp/run/eval/report.json")
got=$(jq -s '[.[] | select(.label == .gold)] | length / 40' "$tmp/test.jsonl")
printed=$(sed -n 's/^predict: accuracy \([0-9.]*\) on 40 rows.*/\1/p' "$tmp/p.log")
/usr/bin/python3 -c "import sys; a, b, c = map(float, sys.argv[1:]); sys.exit(abs(a - b) > 1e-12 or abs(a - c) > 1e-4)" "$want" "$got" "$printed"
check "predict's accuracy is eval's" $? "(eval $want, predictions $got, printed $printed)"
jq -e -s 'length == 40 and ([.[].line] == ([.[].line] | sort)) and
          all(.[]; (.probs | [.[]] | add) > 0.999999 and (.probs | [.[]] | add) < 1.000001)' "$tmp/test.jsonl" >/dev/null
check "one line a row, in input order, probabilities summing to 1" $?

"$bin" predict --config "$tmp/config.json" --input "$tmp/new.jsonl" >"$tmp/new.out" 2>"$tmp/n.log"
check "JSONL rows without a label, to stdout" $? "$(tail -2 "$tmp/n.log")"
jq -e -s 'length == 4 and (.[2] | has("error") and .line == 3) and ([.[0,1,3] | has("label") and (has("gold") | not)] | all)' \
    "$tmp/new.out" >/dev/null
check "a bad row gets an error line, the others a label and no gold" $? "$(cat "$tmp/new.out")"
"$bin" predict --config "$tmp/config.json" --input "$tmp/mixed.csv" --out "$tmp/mixed.jsonl" 2>"$tmp/m.log"
jq -e -s 'length == 4 and .[1].gold == "neutral" and (.[1] | has("label")) and (.[2] | has("error"))' "$tmp/mixed.jsonl" >/dev/null &&
    grep -q 'accuracy [0-9.]* on 2 rows with a label of the set' "$tmp/m.log"
check "a label outside the set is kept as gold and left out of the accuracy" $? "$(cat "$tmp/mixed.jsonl"; tail -2 "$tmp/m.log")"

"$bin" predict --config "$tmp/config.json" --input "$tmp/test.csv" --model "$tmp/run/export/merged-f32.gguf" \
    --out "$tmp/merged.jsonl" 2>"$tmp/mm.log"
check "predict with the merged f32 file" $? "$(tail -2 "$tmp/mm.log")"
jq -e -n --slurpfile a "$tmp/test.jsonl" --slurpfile b "$tmp/merged.jsonl" \
    '[range(0; 40) as $i | ($a[$i].label == $b[$i].label) and
      ([$a[$i].probs[]] | add) as $x | (($a[$i].probs.good - $b[$i].probs.good) | fabs) < 1e-4] | all' >/dev/null
check "the merged file predicts what base + adapter does" $?

"$bin" predict --config "$tmp/config.json" --input "$tmp/test.csv" --model "$tmp/nonexistent.gguf" --out "$tmp/x.jsonl" 2>"$tmp/x.log"
[ $? -eq 2 ] && [ ! -e "$tmp/x.jsonl" ] && [ -z "$(ls "$tmp" | grep 'x.jsonl.tmp')" ]
check "a failed predict exits 2 and writes nothing" $? "$(cat "$tmp/x.log")"

# generation: prompt/completion rows, base model, 16 new tokens, against llama.cpp
printf 'prompt,completion\nOnce upon a time,\nThe little dog,\nShe was very,\n' >"$tmp/gen.csv"
printf '{"prompt": "Lily wanted to"}\n{"prompt": "Tom and Sue went to the"}\n{"prompt": "  "}\n' >"$tmp/gen.jsonl"
jq -n --arg m "$SHARED/models/stories260K.gguf" --arg o "$tmp/gen" --arg d "$tmp/gen.csv" \
    '{model: $m, out_dir: $o, data: {train: $d, max_seq_len: 64}, predict: {max_new_tokens: 16}}' >"$tmp/gen.json"
for f in gen.csv gen.jsonl; do
    "$bin" predict --config "$tmp/gen.json" --input "$tmp/$f" --model "$SHARED/models/stories260K.gguf" --prompt-tokens \
        --out "$tmp/$f.out" 2>"$tmp/$f.log"
    check "generate for $f" $? "$(tail -2 "$tmp/$f.log")"
done
jq -e -s 'length == 3 and all(.[]; (.completion | length) > 0 and .stop == "max_new_tokens" and .n_tokens == 16)' \
    "$tmp/gen.csv.out" >/dev/null && jq -e -s 'length == 3 and (.[2] | has("error"))' "$tmp/gen.jsonl.out" >/dev/null
check "a completion a row (16 tokens), an error line for a blank prompt" $? "$(cat "$tmp/gen.csv.out" "$tmp/gen.jsonl.out")"
if [ -d tests/llamacpp/node_modules/node-llama-cpp ]; then
    cat "$tmp/gen.csv.out" "$tmp/gen.jsonl.out" >"$tmp/gen-all.jsonl"
    node tests/llamacpp/greedy_labels.mjs --model "$SHARED/models/stories260K.gguf" --rows "$tmp/gen-all.jsonl" --labels x \
        --max-new 16 >"$tmp/gen-ll.jsonl" 2>"$tmp/gen-ll.log"
    check "llama.cpp greedy generation" $? "$(tail -2 "$tmp/gen-ll.log")"
    jq -e -n --slurpfile a "$tmp/gen-all.jsonl" --slurpfile b "$tmp/gen-ll.jsonl" \
        '[$a[] | select(has("completion"))] as $a | ($a | length) == 5 and ($b | length) == 5 and
         ([range(0; 5) as $i | ($a[$i].completion | ltrimstr(" ")) == ($b[$i].text | ltrimstr(" "))] | all)' >/dev/null
    check "the completions are llama.cpp's greedy text" $? "$(paste -d'|' <(jq -r '.completion // empty' "$tmp/gen-all.jsonl") <(jq -r .text "$tmp/gen-ll.jsonl"))"
else
    check "llama.cpp oracle installed (run make deps)" 1
fi

# chat rows
scripts/make-tiny-model "$tmp/tm" --arch qwen2 >"$tmp/tm.log" 2>&1
check "make-tiny-model qwen2" $? "$(tail -2 "$tmp/tm.log")"
qwen="$tmp/tm/tiny-qwen2.gguf"
cat >"$tmp/chat.jsonl" <<'JSONL'
{"messages": [{"role": "user", "content": "Hello there"}]}
{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a color"}, {"role": "assistant", "content": "Blue"}]}
{"messages": []}
JSONL
jq -n --arg m "$qwen" --arg o "$tmp/chatrun" --arg d "$tmp/chat.jsonl" \
    '{model: $m, out_dir: $o, data: {train: $d, chat_template: "qwen2.5", max_seq_len: 128}, predict: {max_new_tokens: 8}}' \
    >"$tmp/chat.json"
"$bin" predict --config "$tmp/chat.json" --input "$tmp/chat.jsonl" --model "$qwen" --prompt-tokens --out "$tmp/chat.out" \
    2>"$tmp/chat.log"
check "predict chat rows" $? "$(tail -2 "$tmp/chat.log")"
gen=$("$bin" tokenize "$qwen" --text $'<|im_start|>assistant\n' --ids-only --parse-special --no-bos | jq -c .)
jq -e -s --argjson g "$gen" 'length == 3 and (.[2] | has("error")) and
    ([.[0, 1] | .prompt_tokens[-3:] == $g and (.completion | length) > 0] | all) and
    ($g[1] as $assistant | .[1].prompt_tokens | map(select(. == $assistant)) | length) == 1' "$tmp/chat.out" >/dev/null
check "chat prompts end with the generation prompt, the answer turn left out" $? "$(cut -c1-200 "$tmp/chat.out")"
if [ -d tests/llamacpp/node_modules/node-llama-cpp ]; then
    node tests/llamacpp/greedy_labels.mjs --model "$qwen" --rows "$tmp/chat.out" --labels x --max-new 8 >"$tmp/chat-ll.jsonl" \
        2>"$tmp/chat-ll.log" &&
        jq -e -n --slurpfile a "$tmp/chat.out" --slurpfile b "$tmp/chat-ll.jsonl" \
            '[range(0; 2) as $i | ($a[$i].completion | ltrimstr(" ")) == ($b[$i].text | ltrimstr(" "))] | all' >/dev/null
    check "chat completions are llama.cpp's greedy text" $? "$(tail -2 "$tmp/chat-ll.log"; cat "$tmp/chat-ll.jsonl")"
fi
finish
