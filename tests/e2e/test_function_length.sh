#!/usr/bin/env bash
# test_function_length.sh — the stages stay readable: no function in data/ train/ eval/ export/ or slimtune.c
# is longer than 120 lines (scripts/function-lengths), and the measure itself fails on a function that is.
set -uo pipefail
. "$(dirname "$0")/../testlib.sh" test_function_length

out=$(scripts/function-lengths --max 120 data train eval export slimtune.c)
check "no stage function over 120 lines" $? "($out)"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
{ echo 'static int big(int a, int b) {'; for i in $(seq 1 125); do echo '    a += b; /* { */'; done; echo '    return a;'; echo '}'; } >"$tmp/big.c"
scripts/function-lengths --max 120 "$tmp/big.c" >/dev/null
[ $? -eq 1 ]; check "a 128-line function is caught" $?
finish
