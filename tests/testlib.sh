# testlib.sh — sourced by the end-to-end shell tests (tests/e2e/test_*.sh): the repository root as the
# working directory, $bin (the slimtune under test), $SHARED, and check/finish that count checks and end
# with the "<name>: N passed, N failed" line scripts/run-tests adds up. A missing binary or shared
# model is a failed check, never a skip. Usage: . "$(dirname "$0")/../testlib.sh" NAME
tl_name="$1"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD="${BUILD:-build}"; SHARED="${SLIM_SHARED:-../shared}"
bin="$BUILD/slimtune"
passed=0; failed=0
check() { # check NAME STATUS [DETAIL]
    if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $1 ${3:-}" >&2; fi
}
finish() { echo "$tl_name: $passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }
[ -x "$bin" ] || { check "slimtune built at $bin" 1; finish; }
[ -f "$SHARED/models/stories260K.gguf" ] || { check "shared model at $SHARED" 1 "(set SLIM_SHARED)"; finish; }

# spam_subset DIR: the real SpamAssassin data (datasets/spam_assassin/fetch) cut to its first 800 train and
# 400 test rows as DIR/train.csv and DIR/test.csv; two checks (fetched, written).
spam_subset() {
    datasets/spam_assassin/fetch "$1/spam" >"$1/fetch.log" 2>&1
    check "dataset fetched and converted" $? "$(tail -5 "$1/fetch.log")"
    /usr/bin/python3 - "$1/spam" "$1" <<'PY'
import csv, sys
csv.field_size_limit(1 << 30)
src, dst = sys.argv[1], sys.argv[2]
for split, n in (("train", 800), ("test", 400)):
    with open(f"{src}/{split}.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    with open(f"{dst}/{split}.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows(rows[: n + 1])
PY
    check "subset written" $?
}
