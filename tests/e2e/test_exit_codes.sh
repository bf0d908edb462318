#!/usr/bin/env bash
# test_exit_codes.sh — the one exit-code table of every subcommand (lib/cli.h): 0 ok, 1 a gate failed
# (data validate, eval), 2 an error (bad usage, bad config, bad input, failed write), with the error
# printed exactly once as "slimtune <command>: <message>" (the only output lines starting "slimtune ").
# Per subcommand: a bad config (or, for those without one, a bad model path or argument) and an unknown
# option; then a data validate gate failure (exit 1, no error line) and --help (exit 0).
set -uo pipefail
. "$(dirname "$0")/../testlib.sh" test_exit_codes

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
model="$SHARED/models/stories260K.gguf"
# a config that parses as JSON but holds a bad value: every stage that loads it must refuse it
printf '{"model": "%s", "out_dir": "%s/out", "train": {"lr": "fast"}}\n' "$model" "$tmp" >"$tmp/bad.json"

# expect WANT_RC WANT_MESSAGE_PREFIX WHAT -- ARGS...: runs slimtune ARGS, checks the exit status and that
# exactly one line starts with "slimtune ", and that it starts with WANT_MESSAGE_PREFIX.
expect() {
    local want=$1 prefix=$2 what=$3; shift 4
    "$bin" "$@" >"$tmp/out" 2>&1
    local rc=$?
    [ "$rc" -eq "$want" ]; check "$what: exit $want" $? "(exit $rc: $(tail -3 "$tmp/out"))"
    local n; n=$(grep -c '^slimtune ' "$tmp/out")
    [ "$n" -eq 1 ]; check "$what: the error printed once" $? "($n lines: $(grep '^slimtune ' "$tmp/out" | head -3))"
    grep '^slimtune ' "$tmp/out" | grep -qF -- "$prefix"; check "$what: message '$prefix...'" $? "($(grep '^slimtune ' "$tmp/out"))"
}

# a bad config: exit 2 naming the file and the key
for cmd in "data prepare" "data validate" train eval export; do
    # shellcheck disable=SC2086
    expect 2 "slimtune $cmd: $tmp/bad.json: train.lr" "$cmd with a bad config" -- $cmd --config "$tmp/bad.json"
done
# no config: a bad model path or argument
expect 2 "slimtune quantize: $tmp/none.gguf" "quantize of a missing model" -- quantize "$tmp/none.gguf" "$tmp/q.gguf" --type q8_0
expect 2 "slimtune quantize: unknown --type" "quantize --type bogus" -- quantize "$model" "$tmp/q.gguf" --type bogus
expect 2 "slimtune info: $tmp/none.gguf" "info of a missing model" -- info "$tmp/none.gguf"
expect 2 "slimtune info: --batch" "info --batch 0" -- info "$model" --batch 0
expect 2 "slimtune tokenize: $tmp/none.gguf" "tokenize with a missing model" -- tokenize "$tmp/none.gguf" --text hi
expect 2 "slimtune tokenize: give MODEL" "tokenize without a text" -- tokenize "$model"
[ ! -e "$tmp/q.gguf" ]; check "a failed quantize writes nothing" $?

# an unknown option: exit 2
for cmd in "data prepare" "data validate" train eval export quantize info tokenize; do
    # shellcheck disable=SC2086
    expect 2 "slimtune $cmd: unknown option or missing value: '--bogus'" "$cmd --bogus" -- $cmd --bogus
done
expect 2 "slimtune data: " "data without prepare or validate" -- data
expect 2 "slimtune bogus: unknown command" "an unknown command" -- bogus

# a gate failure: exit 1, the report written, no error line
{ echo "text,label"; for i in 1 2 3 4 5 6; do echo "the same text again,ham"; echo "another one $i,spam"; done; } >"$tmp/dups.csv"
"$bin" data validate --train "$tmp/dups.csv" --report "$tmp/report.json" >"$tmp/out" 2>&1
rc=$?
[ "$rc" -eq 1 ]; check "data validate: a failed gate exits 1" $? "(exit $rc: $(tail -3 "$tmp/out"))"
jq -e '.status == "fail" and .exit_code == 1' "$tmp/report.json" >/dev/null; check "data validate: the report says fail, exit_code 1" $?
n=$(grep -c '^slimtune ' "$tmp/out"); [ "$n" -eq 0 ]; check "data validate: a failed gate is no error" $? "($n lines)"

# --help: exit 0, usage on stdout
for cmd in "data prepare" "data validate" train eval export quantize info tokenize; do
    # shellcheck disable=SC2086
    "$bin" $cmd --help >"$tmp/out" 2>"$tmp/err"
    rc=$?
    [ "$rc" -eq 0 ] && grep -q "usage: slimtune $cmd" "$tmp/out" && [ ! -s "$tmp/err" ]
    check "$cmd --help: exit 0, usage on stdout" $? "(exit $rc: $(head -2 "$tmp/out") $(head -2 "$tmp/err"))"
done
finish
