#!/usr/bin/env bash
# test_spam_assassin.sh — runs datasets/spam_assassin/convert.py on the crafted raw messages in
# tests/data/fixtures/spam_assassin/ and checks counts, exact output texts, near-duplicate clusters
# kept in one split, the split rule (recomputed here by brute force), order independence, atomic
# no-output on a count mismatch, and bad-input errors.
# Prints "test_spam_assassin: N passed, N failed"; exits non-zero on any failure.
set -u

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
conv="$root/datasets/spam_assassin/convert.py"
fix="$root/tests/data/fixtures/spam_assassin"
PY=/usr/bin/python3
pass=0 fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { local what="$1"; shift; if "$@"; then ok; else bad "$what"; fi; }
finish() { echo "test_spam_assassin: $pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit $?; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# A missing fixture or tool is a loud failure, never a skip.
[ -x "$PY" ] || { bad "$PY not found"; finish; }
[ -f "$conv" ] || { bad "$conv not found"; finish; }
n_fix=$(find "$fix" -name '*.txt' 2>/dev/null | wc -l)
[ "$n_fix" -eq 14 ] || { bad "expected 14 fixture messages in $fix, found $n_fix"; finish; }

# 1. The conversion itself.
"$PY" "$conv" --raw-dir "$fix" --out-dir "$tmp/out" --expect-ham 7 --expect-spam 7 2>"$tmp/log"
rc=$?
check "convert exits 0 (rc=$rc; log: $(tail -1 "$tmp/log"))" [ "$rc" -eq 0 ]
for f in train.csv test.csv stats.json; do check "$f written" [ -s "$tmp/out/$f" ]; done
check "no temporary files left" [ -z "$(find "$tmp/out" -name '.*' -type f)" ]
check "train.csv header" [ "$(head -1 "$tmp/out/train.csv")" = "text,label" ]
check "test.csv header" [ "$(head -1 "$tmp/out/test.csv")" = "text,label" ]

# 2. Every count in stats.json (flattened to key=value lines).
"$PY" - "$tmp/out/stats.json" >"$tmp/stats.txt" <<'EOF'
import json, sys
def flat(prefix, v):
    if isinstance(v, dict):
        for k, x in v.items():
            flat(prefix + "." + k if prefix else k, x)
    elif isinstance(v, int):
        print("%s=%d" % (prefix, v))
flat("", json.load(open(sys.argv[1], encoding="utf-8")))
EOF
for kv in read_per_label.ham=7 read_per_label.spam=7 read_per_group.easy-ham-1=7 \
          read_per_group.spam-1=7 converted=12 body_from_html=1 repaired=3 \
          repaired_by_reason.invalid_utf8_raw=2 repaired_by_reason.undeclared_8bit=1 \
          repaired_by_reason.bad_charset=1 repaired_by_reason.undecodable_bytes=1 \
          repaired_by_reason.header_8bit=1 repaired_by_reason.control_chars=1 \
          repaired_by_reason.broken_multipart=0 bad_charset_labels.x-bogus-8859=1 \
          dropped=2 dropped_by_reason.empty_body=1 dropped_by_reason.no_text_part=1 \
          duplicates_removed=1 duplicates_removed_per_label.ham=1 \
          duplicates_removed_per_label.spam=0 conflicting_texts=1 conflicting_messages=2 \
          near_duplicate_clusters=1 near_duplicate_rows=3 near_duplicate_largest=3 \
          near_duplicate_mixed_label=1 near_duplicate_pairs=3 \
          final.train.ham=3 final.train.spam=4 final.test.ham=1 final.test.spam=1; do
    check "stats.json $kv (got: $(grep "^${kv%%=*}=" "$tmp/stats.txt"))" grep -qx -- "$kv" "$tmp/stats.txt"
done

# 3. Exact texts. Rows are dumped as JSON string + TAB + label, one per line, per split.
dump() {
    "$PY" - "$1" <<'EOF'
import csv, json, sys
with open(sys.argv[1], newline="", encoding="utf-8") as f:
    rows = list(csv.reader(f))
assert rows[0] == ["text", "label"], rows[0]
for text, label in rows[1:]:
    print(json.dumps(text, ensure_ascii=False) + "\t" + label)
EOF
}
dump "$tmp/out/train.csv" >"$tmp/train.rows" || bad "train.csv does not parse as CSV"
dump "$tmp/out/test.csv" >"$tmp/test.rows" || bad "test.csv does not parse as CSV"
cat "$tmp/train.rows" "$tmp/test.rows" >"$tmp/all.rows"
check "9 rows in all" [ "$(wc -l <"$tmp/all.rows")" -eq 9 ]
T=$'\t'
expect_row() { check "row present: $1" grep -Fxq -- "$1" "$tmp/all.rows"; }
# multipart/mixed, base64 UTF-8 text/plain, RFC 2047 subject, attachment skipped, CRLF + trailing
# spaces + trailing blank lines normalised (its quoted-printable twin 00002 is the duplicate)
expect_row "\"Subject: Réunion lundi\\n\\nHello café\\nsecond line\"${T}ham"
# quoted-printable HTML only, iso-8859-1 (read as windows-1252): style/title/script dropped,
# entities decoded, soft line break joined, blocks -> lines, cells -> spaces, &nbsp; collapsed
expect_row "\"Subject: Free offer\\n\\nCafé & crème\\n\\nA B\\n\\nLine\\nnext one\"${T}spam"
# invalid UTF-8, bogus charset label -> windows-1252 (0x93/0x94 quotes); 8-bit raw Subject
expect_row "\"Subject: Offre spéciale\\n\\nPrix spécial “maintenant” !\"${T}spam"
# declared UTF-8 with an invalid byte (U+FFFD), NUL removed, CRLF, 5 blank lines -> 2
expect_row "\"Subject: Bytes\\n\\nLine one\\nLine"$'\xef\xbf\xbd'"two\\n\\n\\nLine three\"${T}ham"
# us-ascii declared but UTF-8 bytes; "-- " signature line loses its trailing space
expect_row "\"Subject: Cheap meds\\n\\nA naïve offer.\"${T}spam"
expect_row "\"Subject: Build fixed\\n\\nThe nightly build is green again.\\n\\n--\\nfrank\"${T}ham"
check "conflicting text dropped" bash -c "! grep -q 'Meeting at noon' '$tmp/all.rows'"
check "empty message dropped" bash -c "! grep -q 'Nothing to say' '$tmp/all.rows'"
check "image-only message dropped" bash -c "! grep -q 'Look at this' '$tmp/all.rows'"
check "U+FFFD written as UTF-8 bytes" grep -q $'Line\xef\xbf\xbdtwo' "$tmp/out/train.csv" "$tmp/out/test.csv"
check "no CR in output" bash -c "! grep -q $'\r' '$tmp/out/train.csv' '$tmp/out/test.csv'"

# 4. Near duplicates and the split rule, recomputed by brute force (every pair, exact Jaccard of
#    word 3-gram string sets of the NFC + case-folded + space-collapsed text; no MinHash): clusters
#    (transitive) are whole in one split; a cluster's stratum is its majority label (tie: label of
#    its smallest sha256), its key its smallest sha256; per stratum, in key order, a cluster goes to
#    train while 2*rows_before + rows <= 2*round(0.8 * rows of the stratum); each file ordered by
#    sha256. The three "loan" fixtures (two spam, one ham forward; case and spacing differ) must
#    form one mixed-label cluster.
"$PY" - "$tmp/out/train.csv" "$tmp/out/test.csv" <<'EOF' >"$tmp/split.txt"
import collections, csv, hashlib, re, sys, unicodedata
def load(p, name):
    with open(p, newline="", encoding="utf-8") as f:
        return [(hashlib.sha256(t.encode()).hexdigest(), t, l, name) for t, l in list(csv.reader(f))[1:]]
tr, te = load(sys.argv[1], "train"), load(sys.argv[2], "test")
print("train_sorted=%d" % ([r[0] for r in tr] == sorted(r[0] for r in tr)))
print("test_sorted=%d" % ([r[0] for r in te] == sorted(r[0] for r in te)))
rows = tr + te
ws = "[\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+"
def grams(t):
    w = [x for x in re.split(ws, unicodedata.normalize("NFC", t.casefold())) if x]
    return {tuple(w[i:i + 3]) for i in range(max(1, len(w) - 2))} if w else set()
g = [grams(r[1]) for r in rows]
comp = list(range(len(rows)))
def find(i):
    while comp[i] != i:
        i = comp[i]
    return i
pairs = 0
for i in range(len(rows)):
    for j in range(i + 1, len(rows)):
        if g[i] and g[j] and len(g[i] & g[j]) / len(g[i] | g[j]) >= 0.8:
            pairs += 1
            if find(i) != find(j):
                comp[find(i)] = find(j)
cl = collections.defaultdict(list)
for i, r in enumerate(rows):
    cl[find(i)].append(r)
print("pairs=%d" % pairs)
print("clusters_whole=%d" % all(len({r[3] for r in m}) == 1 for m in cl.values()))
loan = [i for i, r in enumerate(rows) if "loan is approved" in r[1].lower()]
print("loan_rows=%d" % len(loan))
print("loan_one_cluster=%d" % (len({find(i) for i in loan}) == 1))
print("loan_same_split=%d" % (len({rows[i][3] for i in loan}) == 1))
print("loan_labels=%s" % ",".join(sorted(rows[i][2] for i in loan)))
strata = {"ham": [], "spam": []}
for m in cl.values():
    m.sort()
    c = collections.Counter(r[2] for r in m)
    top = max(c.values())
    strata[next(r[2] for r in m if c[r[2]] == top)].append(m)
ok = 1
for lab, cls in strata.items():
    cls.sort(key=lambda m: m[0][0])
    n_train = int(sum(map(len, cls)) * 0.8 + 0.5)
    before = 0
    for m in cls:
        want = "train" if 2 * before + len(m) <= 2 * n_train else "test"
        before += len(m)
        ok &= all(r[3] == want for r in m)
print("split_rule_ok=%d" % ok)
EOF
for k in train_sorted=1 test_sorted=1 pairs=3 clusters_whole=1 loan_rows=3 loan_one_cluster=1 \
         loan_same_split=1 loan_labels=ham,spam,spam split_rule_ok=1; do
    check "split: $k (got: $(grep "^${k%%=*}=" "$tmp/split.txt"))" grep -qx "$k" "$tmp/split.txt"
done

# 5. Independent of input order and file names: same messages under other names -> same CSVs.
mkdir -p "$tmp/raw2/hard-ham-9" "$tmp/raw2/spam-7"
i=99
for f in "$fix"/easy-ham-1/*.txt; do cp "$f" "$tmp/raw2/hard-ham-9/$i.txt"; i=$((i - 1)); done
for f in "$fix"/spam-1/*.txt; do cp "$f" "$tmp/raw2/spam-7/$i.txt"; i=$((i - 1)); done
"$PY" "$conv" --raw-dir "$tmp/raw2" --out-dir "$tmp/out2" --expect-ham 7 --expect-spam 7 2>/dev/null
check "renamed input: exit 0" [ $? -eq 0 ]
check "renamed input: same train.csv" cmp -s "$tmp/out/train.csv" "$tmp/out2/train.csv"
check "renamed input: same test.csv" cmp -s "$tmp/out/test.csv" "$tmp/out2/test.csv"

# 6. Raw counts differing from the expected ones: exit 1, a clear message, nothing written;
#    existing outputs are left untouched.
"$PY" "$conv" --raw-dir "$fix" --out-dir "$tmp/out3" --expect-ham 8 --expect-spam 7 2>"$tmp/log3"
check "count mismatch exits 1" [ $? -eq 1 ]
check "count mismatch says so" grep -q "expected 8 / 7" "$tmp/log3"
check "count mismatch writes nothing" [ ! -e "$tmp/out3" ]
cp "$tmp/out/train.csv" "$tmp/train.keep"
"$PY" "$conv" --raw-dir "$fix" --out-dir "$tmp/out" 2>/dev/null   # default 4150 / 1896
check "default expectation (4150/1896) fails on fixtures" [ $? -eq 1 ]
check "old outputs untouched" cmp -s "$tmp/out/train.csv" "$tmp/train.keep"

# 7. Bad input: a clear error and exit 2, never a traceback.
"$PY" "$conv" --raw-dir "$tmp/nope" --out-dir "$tmp/out4" --no-expect 2>"$tmp/log4"
check "missing raw dir exits 2" [ $? -eq 2 ]
check "missing raw dir named" grep -q "$tmp/nope" "$tmp/log4"
mkdir -p "$tmp/raw5/other"; cp "$fix/spam-1/00001.txt" "$tmp/raw5/other/1.txt"
"$PY" "$conv" --raw-dir "$tmp/raw5" --out-dir "$tmp/out5" --no-expect 2>"$tmp/log5"
check "unlabelled group exits 2" [ $? -eq 2 ]
check "no traceback on bad input" bash -c "! grep -q Traceback '$tmp/log4' '$tmp/log5'"

# 8. The stderr table reports the counts.
check "table: conflicting" grep -Eq '^conflicting texts.* 1$' "$tmp/log"
check "table: duplicates" grep -Eq '^duplicates removed.* 1$' "$tmp/log"
check "table: final ham" grep -Eq '^  ham +3 +1 +4$' "$tmp/log"
check "table: final spam" grep -Eq '^  spam +4 +1 +5$' "$tmp/log"
check "table: near-duplicate clusters" grep -Eq '^near-duplicate clusters.* 1$' "$tmp/log"
check "table: rows in clusters" grep -Eq '^  rows in them +3$' "$tmp/log"
check "table: mixed-label clusters" grep -Eq '^  clusters with both labels +1$' "$tmp/log"

finish
