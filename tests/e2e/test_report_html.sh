#!/usr/bin/env bash
# eval/report.html (eval/html.c) on the real stories260K and generated rows with a validation split: the
# page is self-contained (no script, nothing fetched), holds every section (systems, confusion heatmap,
# per-class bars, reliability, coverage, loss curves, errors with their text), and headless Chromium
# (Debian chromium, make deps) renders it to a 1200 x 2400 screenshot that is not blank, logging no console
# message; the same check catches a page that logs an error.
set -uo pipefail
. "$(dirname "$0")/../testlib.sh" test_report_html

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
command -v chromium >/dev/null
check "chromium is installed (make deps)" $? || finish
/usr/bin/python3 - "$tmp" <<'PY'
import csv, random, sys
rng = random.Random(6)
vocab = {"ham": "meeting tomorrow project report please review notes thanks <team> lunch".split(),
         "spam": "win free money now click here offer cash prize cheap & deal".split()}
for name, n in (("train", 120), ("val", 60), ("test", 120)):
    labels = ["spam" if i % 3 == 0 else "ham" for i in range(n)]
    body = [" ".join(rng.choice(vocab[l] if rng.random() < 0.8 else vocab["ham" if l == "spam" else "spam"])
                     for _ in range(rng.randint(4, 14))) for l in labels]
    with open(f"{sys.argv[1]}/{name}.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows([["text", "label"]] + [["Subject: " + b, l] for b, l in zip(body, labels)])
PY
jq -n --arg model "$SHARED/models/stories260K.gguf" --arg d "$tmp" \
    '{model: $model, out_dir: ($d + "/run"), data: {train: ($d + "/train.csv"), val: ($d + "/val.csv"),
      test: ($d + "/test.csv"), labels: ["ham", "spam"], max_seq_len: 48}, lora: {r: 4, alpha: 8},
      train: {epochs: 2, batch_size: 8, lr: 0.003, warmup_steps: 2, eval_every: 5, log_every: 2}}' >"$tmp/config.json"
"$bin" data prepare --config "$tmp/config.json" 2>"$tmp/prep.log" && "$bin" train --config "$tmp/config.json" 2>"$tmp/train.log" &&
    "$bin" eval --config "$tmp/config.json" >"$tmp/eval.out" 2>"$tmp/eval.log"
check "prepare, train, eval" $? "$(tail -n 3 "$tmp/prep.log" "$tmp/train.log" "$tmp/eval.log")"
html="$tmp/run/eval/report.html"
[ -s "$html" ] && grep -q "report.html" "$tmp/eval.log"
check "eval writes report.html and says so" $?
n_svg=$(grep -o '<svg' "$html" | wc -l)
! grep -qiE '<script|(src|href)="(https?:)?//' "$html" && [ "$n_svg" -eq 5 ]
check "self-contained: no script, nothing fetched; 5 inline SVG figures ($n_svg)" $?
for s in 'Systems' 'Confusion matrix' 'Per class' 'Reliability' 'Accuracy of the answered' 'Loss per target token' \
         'Most confident errors' 'Router: answer when' '&lt;team&gt;'; do
    grep -q -- "$s" "$html"; check "report.html has: $s" $?
done
polyline=$(grep -o '<polyline[^>]*#c44e52[^>]*points="[^"]*"' "$html" | head -1 | grep -o '[0-9.]*,[0-9.]*' | wc -l)
[ "$polyline" -ge 2 ]; check "the validation loss curve has its points ($polyline)" $?

# shot PAGE PNG LOG: renders PAGE headless; the console messages it logged go to LOG
shot() {
    timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1200,2400 \
        --screenshot="$2" --enable-logging=stderr --v=0 "file://$1" 2>&1 | grep -E 'CONSOLE' >"$3"
    [ -s "$2" ]
}
# png_ok PNG: 1200 x 2400, and not one colour (at least 50 distinct byte values in its rows)
png_ok() {
    /usr/bin/python3 - "$1" <<'PY'
import struct, sys, zlib
b = open(sys.argv[1], "rb").read()
assert b[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
w, h = struct.unpack(">II", b[16:24])
pos, idat = 8, b""
while pos < len(b):
    n, kind = struct.unpack(">I4s", b[pos:pos + 8])
    if kind == b"IDAT":
        idat += b[pos + 8:pos + 8 + n]
    pos += 12 + n
raw = zlib.decompress(idat)
distinct = len(set(raw))
print(f"{w} x {h}, {len(raw)} bytes, {distinct} distinct byte values")
sys.exit(0 if (w, h) == (1200, 2400) and distinct >= 50 else 1)
PY
}
shot "$html" "$tmp/report.png" "$tmp/console.log"
check "chromium renders report.html" $?
png_ok "$tmp/report.png"; check "the screenshot is 1200 x 2400 and not blank" $?
[ ! -s "$tmp/console.log" ]; check "the page logged no console message" $? "$(cat "$tmp/console.log")"
printf '<html><body>x<script>console.error("broken")</script></body></html>' >"$tmp/bad.html"
shot "$tmp/bad.html" "$tmp/bad.png" "$tmp/bad.log"
grep -q broken "$tmp/bad.log"; check "the console check catches a page that logs an error" $?
finish
