#!/usr/bin/env bash
# test_stories260k.sh — checks the llama.cpp oracle (tests/llamacpp/logits.mjs) against the reference figures
# for stories260K.gguf in shared/README.md ("Once upon a time" -> next-token distribution, measured with
# llama.cpp's defaults on the CPU, F32 weights).
#
# Installs nothing: run `npm ci --ignore-scripts --prefix tests/llamacpp` first.
# Model: ${SLIM_SHARED:-../shared}/models/stories260K.gguf (relative paths are taken from the repository root).
# Prints one line per check, then "N passed, N failed"; exits 1 if any check failed or the oracle cannot run.
set -u

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
shared="${SLIM_SHARED:-../shared}"
case "$shared" in /*) ;; *) shared="$root/$shared" ;; esac
model="$shared/models/stories260K.gguf"

passed=0
failed=0
check() { # check NAME CONDITION-EXIT-STATUS DETAIL
    if [ "$2" -eq 0 ]; then
        passed=$((passed + 1)); echo "ok   $1"
    else
        failed=$((failed + 1)); echo "FAIL $1: $3"
    fi
}
finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit $?
}

if [ ! -f "$model" ]; then
    check "fixture $model exists" 1 "missing (set SLIM_SHARED to the shared fixtures directory)"
    finish
fi
if [ ! -d "$here/node_modules/node-llama-cpp" ] || [ ! -d "$here/node_modules/@node-llama-cpp/linux-x64" ]; then
    check "node-llama-cpp installed" 1 "run: npm ci --ignore-scripts --prefix tests/llamacpp"
    finish
fi
command -v jq >/dev/null || { check "jq available" 1 "jq not found"; finish; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

run_oracle() { # run_oracle OUT ARGS... ; returns logits.mjs's exit status
    local out="$1"; shift
    node "$here/logits.mjs" --model "$model" "$@" >"$out" 2>"$out.err"
}

# 1. tokenized by llama.cpp itself, BOS added as the model says.
run_oracle "$tmp/text.json" --text "Once upon a time"
rc=$?
check "logits.mjs --text runs" $rc "exit $rc: $(head -c 400 "$tmp/text.json.err")"
if [ $rc -ne 0 ]; then finish; fi

# jq program reading one oracle output: softmax and argmax over the full row.
stats='.logits as $l | ($l | max) as $m | ($l | map(. - $m | exp) | add) as $z
       | {tokens, n_vocab, n: ($l | length), argmax: ($l | index($m)), l432: $l[432], l383: $l[383],
          p432: (($l[432] - $m | exp) / $z), p383: (($l[383] - $m | exp) / $z)}'
jq -c "$stats" "$tmp/text.json" >"$tmp/s.json" || { check "oracle output is JSON" 1 "jq failed"; finish; }
get() { jq -r "$1" "$tmp/s.json"; }
# near VALUE REF TOL -> exit 0 if |VALUE - REF| <= TOL
near() { awk -v v="$1" -v r="$2" -v t="$3" 'BEGIN { d = v - r; if (d < 0) d = -d; exit !(v != "" && d <= t) }'; }

tokens="$(get '.tokens | map(tostring) | join(",")')"
[ "$tokens" = "1,403,407,261,378" ]; check "tokens of 'Once upon a time' == [1,403,407,261,378]" $? "got [$tokens]"
[ "$(get .n_vocab)" = 512 ] && [ "$(get .n)" = 512 ]
check "n_vocab == 512 and a full row of logits" $? "n_vocab $(get .n_vocab), $(get .n) logits"
[ "$(get .argmax)" = 432 ]; check "top logit is id 432 (',')" $? "argmax is $(get .argmax)"
near "$(get .l432)" 17.7979 1e-3; check "logit[432] == 17.7979 +- 1e-3" $? "got $(get .l432)"
near "$(get .l383)" 14.2824 1e-3; check "logit[383] == 14.2824 +- 1e-3" $? "got $(get .l383)"
near "$(get .p432)" 0.968719 1e-5; check "softmax p(432) == 0.968719 +- 1e-5" $? "got $(get .p432)"
near "$(get .p383)" 0.028802 1e-5; check "softmax p(383) == 0.028802 +- 1e-5" $? "got $(get .p383)"

# 2. the same ids given directly (no BOS added, no tokenization) must give the same logits.
run_oracle "$tmp/ids.json" --tokens 1,403,407,261,378
rc=$?
check "logits.mjs --tokens runs" $rc "exit $rc: $(head -c 400 "$tmp/ids.json.err")"
if [ $rc -eq 0 ]; then
    d="$(jq -s '[.[0].logits, .[1].logits] | transpose | map(.[0] - .[1] | fabs) | max' "$tmp/text.json" "$tmp/ids.json")"
    [ "$(jq -c .tokens "$tmp/ids.json")" = "[1,403,407,261,378]" ] && near "$d" 0 0
    check "--tokens 1,403,407,261,378 gives the --text logits exactly" $? "max |diff| $d, tokens $(jq -c .tokens "$tmp/ids.json")"
fi

# 3. --all: one row per position; the last row is the last-position distribution.
run_oracle "$tmp/all.json" --tokens 1,403,407,261,378 --all
rc=$?
check "logits.mjs --all runs" $rc "exit $rc: $(head -c 400 "$tmp/all.json.err")"
if [ $rc -eq 0 ]; then
    shape="$(jq -c '.logits | map(length)' "$tmp/all.json")"
    d="$(jq -s '[.[0].logits[-1], .[1].logits] | transpose | map(.[0] - .[1] | fabs) | max' "$tmp/all.json" "$tmp/text.json")"
    [ "$shape" = "[512,512,512,512,512]" ] && near "$d" 0 1e-4
    check "--all gives 5 rows of 512, last row == last-position logits (1e-4)" $? "shape $shape, max |diff| $d"
fi

finish
