#!/usr/bin/env bash
# test_fine_foods.sh — runs datasets/fine_foods/fetch on the installed R package modeldata
# (r-cran-modeldata) and checks the exact counts, labels, rows and a byte-exact round trip through R;
# then runs dump.R + convert.py on a crafted .rda (invalid UTF-8, latin1, NA, empty text, bad score,
# CRLF, control characters, duplicates, leakage) and checks every repair, drop and report, the count
# mismatch exit (1, nothing written) and bad-input errors (2).
# Prints "test_fine_foods: N passed, N failed"; exits non-zero on any failure.
set -u

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dir="$root/datasets/fine_foods"
PY=/usr/bin/python3
pass=0 fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { local what="$1"; shift; if "$@"; then ok; else bad "$what"; fi; }
finish() { echo "test_fine_foods: $pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit $?; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# A missing tool or package is a loud failure, never a skip.
[ -x "$PY" ] || { bad "$PY not found"; finish; }
command -v Rscript >/dev/null || { bad "Rscript not found (make deps: r-base-core r-cran-modeldata)"; finish; }
for f in fetch dump.R convert.py; do [ -f "$dir/$f" ] || { bad "$dir/$f not found"; finish; }; done
Rscript -e 'quit(status = !requireNamespace("modeldata", quietly = TRUE))' 2>/dev/null ||
    { bad "R package modeldata not installed (make deps: r-cran-modeldata)"; finish; }

# Flattens stats.json to key=value lines (integers only).
flat() {
    "$PY" - "$1" <<'EOF'
import json, sys
def flat(prefix, v):
    if isinstance(v, dict):
        for k, x in v.items():
            flat(prefix + "." + k if prefix else k, x)
    elif isinstance(v, bool):
        pass
    elif isinstance(v, int):
        print("%s=%d" % (prefix, v))
flat("", json.load(open(sys.argv[1], encoding="utf-8")))
EOF
}
# Dumps a CSV as one line per row: JSON string of the text, TAB, label.
dump() {
    "$PY" - "$1" <<'EOF'
import csv, json, sys
with open(sys.argv[1], newline="", encoding="utf-8") as f:
    rows = list(csv.reader(f))
assert rows[0] == ["text", "label"], rows[0]
for r in rows[1:]:
    assert len(r) == 2, r
    print(json.dumps(r[0], ensure_ascii=False) + "\t" + r[1])
EOF
}
T=$'\t'

# ---- 1. The real package ----------------------------------------------------------------------
out="$tmp/real"
"$dir/fetch" "$out" 2>"$tmp/fetch.log"
rc=$?
check "fetch exits 0 (rc=$rc; log: $(tail -1 "$tmp/fetch.log"))" [ "$rc" -eq 0 ]
for f in train.csv test.csv stats.json; do check "$f written" [ -s "$out/$f" ]; done
check "no temporary files or folders left" [ -z "$(find "$out" -name '.*')" ]
check "train.csv header" [ "$(head -1 "$out/train.csv")" = "text,label" ]
check "test.csv header" [ "$(head -1 "$out/test.csv")" = "text,label" ]
check "fetch: no version warning" bash -c "! grep -q warning '$tmp/fetch.log'"
check "fetch: dump matches the pinned sha256" grep -q "matches the pin" "$tmp/fetch.log"

flat "$out/stats.json" >"$tmp/real.stats"
for kv in read.train=4000 read.test=1000 expected.train=4000 expected.test=1000 dropped=0 \
          written.train=4000 written.test=1000 \
          final.train.great=2600 final.train.other=1400 final.test.great=658 final.test.other=342 \
          repaired_by_reason.invalid_utf8.train=0 repaired_by_reason.invalid_utf8.test=0 \
          kept_as_is.replacement_char_in_source.train=11 kept_as_is.replacement_char_in_source.test=1 \
          duplicates.train.duplicate_groups=18 duplicates.train.extra_copies=20 \
          duplicates.train.conflicting_label_groups=0 duplicates.test.extra_copies=0 \
          duplicates.train_test_leakage.test_rows=7 duplicates.train_test_leakage.label_disagreements=0 \
          duplicates.products.in_both=0 text_chars.min=50 text_chars.max=8055 text_chars.total=1995718; do
    check "stats.json $kv (got: $(grep "^${kv%%=*}=" "$tmp/real.stats"))" grep -qx -- "$kv" "$tmp/real.stats"
done

dump "$out/train.csv" >"$tmp/train.rows" || bad "train.csv does not parse as CSV"
dump "$out/test.csv" >"$tmp/test.rows" || bad "test.csv does not parse as CSV"
check "4000 train rows" [ "$(wc -l <"$tmp/train.rows")" -eq 4000 ]
check "1000 test rows" [ "$(wc -l <"$tmp/test.rows")" -eq 1000 ]
check "train labels 2600 great" [ "$(grep -c "${T}great\$" "$tmp/train.rows")" -eq 2600 ]
check "train labels 1400 other" [ "$(grep -c "${T}other\$" "$tmp/train.rows")" -eq 1400 ]
check "test labels 658 great" [ "$(grep -c "${T}great\$" "$tmp/test.rows")" -eq 658 ]
check "test labels 342 other" [ "$(grep -c "${T}other\$" "$tmp/test.rows")" -eq 342 ]
# exact rows, at their place in the package's order
row_is() { check "$1 row $2" [ "$(sed -n "$2p" "$tmp/$1.rows")" = "$3" ]; }
row_is train 1 "\"this stuff is  not stuffing  its  not good at all  save your money\"${T}other"
row_is train 2209 "\"just what I ordered and in the usual prompt manner\"${T}other"
row_is test 1 "\"These are the best tasting gummy fruits I have ever eaten. Can't stop eating them and the flavors are great.\"${T}great"
row_is test 3 "\"This tastes so bad, I'm considering throwing it away.  But I'll probably punish myself for buying 3 boxes of 18 pods by watering down by mixing each with one medium roast Senseo pod for my second cup of coffee each day until they're gone. Don't punish yourself. Just don't buy it.\"${T}other"
row_is test 598 "\"I liked it a lot, it is a unique jam I have never seen before.\"${T}great"
# raw CSV lines: unquoted when plain, quoted when the text has a comma
check "train.csv line 2 raw" [ "$(sed -n 2p "$out/train.csv")" = "this stuff is  not stuffing  its  not good at all  save your money,other" ]
check "test.csv line 599 raw" [ "$(sed -n 599p "$out/test.csv")" = "\"I liked it a lot, it is a unique jam I have never seen before.\",great" ]
# U+FFFD shipped by the package is kept (test row 22: "Côtes-du-Rhône" lost its accents upstream)
check "U+FFFD kept as in the package" grep -q $'C\xef\xbf\xbdtes-du-Rh\xef\xbf\xbdne region' "$tmp/test.rows"
check "no CR in output" bash -c "! grep -q $'\r' '$out/train.csv' '$out/test.csv'"

# byte-exact round trip: R reads the CSVs back and compares them with the package's data frames
Rscript - "$out" >"$tmp/rt.txt" 2>&1 <<'EOF'
out <- commandArgs(trailingOnly = TRUE)[1]
data(small_fine_foods, package = "modeldata")
cmp <- function(name, df) {
    x <- read.csv(file.path(out, paste0(name, ".csv")), encoding = "UTF-8", stringsAsFactors = FALSE)
    same_text <- nrow(x) == nrow(df) &&
        all(mapply(function(a, b) identical(charToRaw(a), charToRaw(b)), x$text, df$review))
    cat(name, "_text=", as.integer(same_text), "\n", sep = "")
    cat(name, "_label=", as.integer(identical(x$label, as.character(df$score))), "\n", sep = "")
}
cmp("train", training_data)
cmp("test", testing_data)
EOF
for k in train_text train_label test_text test_label; do
    check "R round trip: $k identical to the package ($(tr '\n' ' ' <"$tmp/rt.txt"))" grep -qx "$k=1" "$tmp/rt.txt"
done

# deterministic: a second run gives the same bytes
"$dir/fetch" "$tmp/real2" 2>/dev/null
check "second fetch: same train.csv" cmp -s "$out/train.csv" "$tmp/real2/train.csv"
check "second fetch: same test.csv" cmp -s "$out/test.csv" "$tmp/real2/test.csv"

# ---- 2. Crafted data through dump.R and convert.py --------------------------------------------
Rscript - "$tmp/crafted.rda" <<'EOF' 2>"$tmp/craft.log"
path <- commandArgs(trailingOnly = TRUE)[1]
bad_utf8 <- rawToChar(as.raw(c(0x47, 0x6f, 0x6f, 0x64, 0x20, 0xff, 0x20, 0x74, 0x65, 0x61)))  # "Good \xff tea"
lat <- rawToChar(as.raw(c(0x43, 0x61, 0x66, 0xe9, 0x20, 0x6e, 0x6f, 0x69, 0x72)))            # "Caf\xe9 noir"
Encoding(lat) <- "latin1"
lv <- c("great", "other", "meh")
training_data <- data.frame(
    product = paste0("P", 1:9),
    review = c("Tasty, and \"cheap\".", bad_utf8, lat, NA, "", "Line one\r\nline two\001!",
               "Same text", "Same text", "Leaked review"),
    score = factor(c("great", "other", "great", "great", "other", "other", "great", "other", "great"),
                   levels = lv),
    stringsAsFactors = FALSE)
testing_data <- data.frame(
    product = c("Q1", "Q2", "Q3"),
    review = c("Leaked review", "Fine<br />food &amp; more", "So-so"),
    score = factor(c("other", "great", "meh"), levels = lv),
    stringsAsFactors = FALSE)
save(training_data, testing_data, file = path)
EOF
check "crafted .rda written ($(tail -1 "$tmp/craft.log"))" [ -s "$tmp/crafted.rda" ]
Rscript "$dir/dump.R" --rda "$tmp/crafted.rda" "$tmp/crafted.tsv" 2>"$tmp/dump.log"
check "dump.R --rda exits 0 ($(tail -1 "$tmp/dump.log"))" [ $? -eq 0 ]
check "dump.R leaves no temporary file" [ -z "$(find "$tmp" -maxdepth 1 -name 'crafted.tsv.tmp*')" ]
"$PY" "$dir/convert.py" --dump "$tmp/crafted.tsv" --out-dir "$tmp/c" --expect-train 9 --expect-test 3 \
    2>"$tmp/c.log"
check "crafted convert exits 0 ($(tail -1 "$tmp/c.log"))" [ $? -eq 0 ]
flat "$tmp/c/stats.json" >"$tmp/c.stats"
for kv in read.train=9 read.test=3 dropped=3 dropped_by_reason.missing_text.train=1 \
          dropped_by_reason.empty_text.train=1 dropped_by_reason.bad_score.test=1 \
          repaired_by_reason.invalid_utf8.train=1 repaired_by_reason.latin1_reencoded.train=1 \
          repaired_by_reason.crlf.train=1 repaired_by_reason.control_chars.train=1 \
          kept_as_is.html_br.test=1 kept_as_is.html_entities.test=1 \
          written.train=7 written.test=2 final.train.great=4 final.train.other=3 \
          final.test.great=1 final.test.other=1 \
          duplicates.train.duplicate_groups=1 duplicates.train.extra_copies=1 \
          duplicates.train.conflicting_label_groups=1 duplicates.train_test_leakage.test_rows=1 \
          duplicates.train_test_leakage.label_disagreements=1; do
    check "crafted stats.json $kv (got: $(grep "^${kv%%=*}=" "$tmp/c.stats"))" grep -qx -- "$kv" "$tmp/c.stats"
done
dump "$tmp/c/train.csv" >"$tmp/c.train" || bad "crafted train.csv does not parse"
dump "$tmp/c/test.csv" >"$tmp/c.test" || bad "crafted test.csv does not parse"
expect_rows() {
    check "crafted $1 rows exact" [ "$(cat "$tmp/c.$1")" = "$2" ]
}
expect_rows train "\"Tasty, and \\\"cheap\\\".\"${T}great
\"Good "$'\xef\xbf\xbd'" tea\"${T}other
\"Café noir\"${T}great
\"Line one\\nline two!\"${T}other
\"Same text\"${T}great
\"Same text\"${T}other
\"Leaked review\"${T}great"
expect_rows test "\"Leaked review\"${T}other
\"Fine<br />food &amp; more\"${T}great"
check "crafted: quotes doubled in the CSV" grep -qx '"Tasty, and ""cheap"".",great' "$tmp/c/train.csv"
check "crafted: drops named on stderr" grep -q "dropped train:4:P4 (missing_text)" "$tmp/c.log"
check "crafted: leakage on stderr" grep -q "train/test leakage: 1 test rows" "$tmp/c.log"
check "crafted: stats lists the bad-score row" grep -q '"test:3:Q3:meh"' "$tmp/c/stats.json"

# count mismatch: exit 1, nothing written, old outputs untouched
"$PY" "$dir/convert.py" --dump "$tmp/crafted.tsv" --out-dir "$tmp/c3" 2>"$tmp/c3.log"   # default 4000/1000
check "count mismatch exits 1" [ $? -eq 1 ]
check "count mismatch says so" grep -q "expected 4000 / 1000" "$tmp/c3.log"
check "count mismatch writes nothing" [ ! -e "$tmp/c3" ]
cp "$tmp/c/train.csv" "$tmp/c.keep"
"$PY" "$dir/convert.py" --dump "$tmp/crafted.tsv" --out-dir "$tmp/c" --expect-train 8 --expect-test 3 2>/dev/null
check "count mismatch leaves old outputs" cmp -s "$tmp/c/train.csv" "$tmp/c.keep"

# bad input: a clear error and exit 2, never a traceback
"$PY" "$dir/convert.py" --dump "$tmp/nope.tsv" --out-dir "$tmp/c4" --no-expect 2>"$tmp/c4.log"
check "missing dump exits 2" [ $? -eq 2 ]
check "missing dump named" grep -q "$tmp/nope.tsv" "$tmp/c4.log"
sed '3s/\t[0-9a-f]*$/\tzz/' "$tmp/crafted.tsv" >"$tmp/badhex.tsv"
"$PY" "$dir/convert.py" --dump "$tmp/badhex.tsv" --out-dir "$tmp/c5" --no-expect 2>"$tmp/c5.log"
check "bad hex exits 2" [ $? -eq 2 ]
check "bad hex names line 3" grep -q "badhex.tsv:3: field 'review_hex'" "$tmp/c5.log"
check "no traceback on bad input" bash -c "! grep -q Traceback '$tmp/c4.log' '$tmp/c5.log'"
Rscript "$dir/dump.R" --rda "$tmp/nope.rda" "$tmp/x.tsv" 2>"$tmp/d2.log"
check "dump.R: missing .rda exits 2" [ $? -eq 2 ]
check "dump.R: missing .rda named" grep -q "nope.rda: no such file" "$tmp/d2.log"
"$dir/fetch" --bogus 2>"$tmp/f2.log"
check "fetch: unknown option exits 1" [ $? -eq 1 ]

finish
