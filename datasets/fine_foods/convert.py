#!/usr/bin/python3
"""convert.py — the dump of modeldata's small_fine_foods (written by dump.R) -> train.csv / test.csv /
stats.json.

Run with Debian's /usr/bin/python3; standard library only.

    convert.py --dump FILE --out-dir DIR [--expect-train N --expect-test N | --no-expect]
               [--source TEXT]

The dump (see dump.R) has one line per review: split (train/test), row, product, score, R's
Encoding() mark and the hex of the review's bytes. Each review becomes one row (text, label) of the
split the package puts it in, in the package's row order:
  - text  = the review exactly as the package stores it (the package has no summary/title column).
    Bytes that are not valid UTF-8 are decoded with U+FFFD replacements (counted: invalid_utf8);
    CRLF / CR become LF (crlf) and C0 control characters other than \\n and \\t, DEL and C1 controls
    U+0080..U+009F are removed (control_chars). The modeldata 1.1.0 data need none of these.
    HTML left in the reviews by Amazon/SNAP (<br />, <a href>, &quot;) is kept as is and counted.
  - label = the package's score factor: "great" (5 stars) or "other" (1-4 stars).
Rows whose review is NA or empty after the above, or whose score is neither great nor other, are
dropped and listed in stats.json (none in modeldata 1.1.0). Duplicate texts are kept (the package's
split is kept as is) and reported: duplicates within a split, texts that occur with both labels,
and test rows whose text also occurs in train (leakage).

Exit status: 0 success; 1 the numbers of train / test rows in the dump differ from the expected
ones (no output is written); 2 bad usage or unreadable input.
"""

import argparse
import collections
import csv
import io
import json
import os
import re
import statistics
import sys
import tempfile
import time

EXPECT_TRAIN = 4000
EXPECT_TEST = 1000
LABELS = ("great", "other")
SPLITS = ("train", "test")
UMASK = os.umask(0)
os.umask(UMASK)
ENTITY_RE = re.compile(r"&(#[0-9]+|#x[0-9a-fA-F]+|[A-Za-z]+);")
TAG_RE = re.compile(r"</?[a-z][^<>]*>")
HEADER = ["split", "row", "product", "score", "mark", "review_hex"]


class InputError(Exception):
    """Bad input: reported on stderr with the file and line, exit status 2."""


def read_dump(path):
    """Returns (source_tag, rows) of a dump.R file; rows are dicts with split, row, product, score,
    mark and review (bytes, or None for NA). Raises InputError naming the file and line."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise InputError("%s: cannot read: %s" % (path, e.strerror))
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if len(lines) < 2 or not lines[0].startswith(b"#modeldata\t"):
        raise InputError("%s:1: not a dump.R file (no '#modeldata<TAB>' line)" % path)
    tag = lines[0][len(b"#modeldata\t"):].decode("utf-8", "replace")
    if lines[1].decode("ascii", "replace").split("\t") != HEADER:
        raise InputError("%s:2: header is not %s" % (path, "\\t".join(HEADER)))
    rows = []
    for n, line in enumerate(lines[2:], start=3):
        try:
            f = line.decode("ascii").split("\t")
        except UnicodeDecodeError:
            raise InputError("%s:%d: non-ASCII byte in a dump line" % (path, n))
        if len(f) != len(HEADER):
            raise InputError("%s:%d: %d fields, expected %d" % (path, n, len(f), len(HEADER)))
        split, row, product, score, mark, hexs = f
        if split not in SPLITS:
            raise InputError("%s:%d: field 'split' is '%s', expected train or test" % (path, n, split))
        if not row.isdigit():
            raise InputError("%s:%d: field 'row' is '%s', expected a number" % (path, n, row))
        if hexs == "NA":
            review = None
        else:
            try:
                review = bytes.fromhex(hexs)
            except ValueError:
                raise InputError("%s:%d: field 'review_hex' is not hexadecimal" % (path, n))
        rows.append({"split": split, "row": int(row), "product": product,
                     "score": None if score == "NA" else score, "mark": mark, "review": review})
    return tag, rows


def clean_text(raw, rep):
    """Decodes review bytes to text and normalises line ends and control characters; adds the
    repairs made to the set rep."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "replace")
        rep.add("invalid_utf8")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        rep.add("crlf")
    kept = "".join(c for c in text
                   if not ((ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F))
    if kept != text:
        rep.add("control_chars")
    return kept


def csv_bytes(rows):
    """Returns the CSV (header text,label; QUOTE_MINIMAL, LF line ends) of (text, label) rows."""
    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    w.writerow(["text", "label"])
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")


def write_temp(out_dir, name, data):
    """Writes bytes to out_dir/.name.XXXX.tmp and returns that path (renamed into place later)."""
    fd, tmp = tempfile.mkstemp(prefix="." + name + ".", suffix=".tmp", dir=out_dir)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o666 & ~UMASK)
    return tmp


def ref(r):
    """Names one row for reports: split:row:product."""
    return "%s:%d:%s" % (r["split"], r["row"], r["product"])


def duplicate_stats(rows):
    """Counts exact duplicate texts within each split, label conflicts and train/test leakage."""
    st = {}
    by_split = {s: collections.defaultdict(list) for s in SPLITS}
    for r in rows:
        by_split[r["split"]][r["text"]].append(r)
    for s in SPLITS:
        groups = [g for g in by_split[s].values() if len(g) > 1]
        st[s] = {
            "duplicate_groups": len(groups),
            "duplicate_rows": sum(len(g) for g in groups),
            "extra_copies": sum(len(g) - 1 for g in groups),
            "conflicting_label_groups": sum(1 for g in groups if len({r["label"] for r in g}) > 1),
            "groups": [[ref(r) + ":" + r["label"] for r in g] for g in groups],
        }
    leak = [r for r in rows if r["split"] == "test" and r["text"] in by_split["train"]]
    leak_texts = {r["text"] for r in leak}
    st["train_test_leakage"] = {
        "test_rows": len(leak),
        "distinct_texts": len(leak_texts),
        "train_rows": sum(len(by_split["train"][t]) for t in leak_texts),
        "label_disagreements": sum(1 for r in leak
                                   if any(x["label"] != r["label"] for x in by_split["train"][r["text"]])),
        "test_rows_list": [ref(r) + ":" + r["label"] for r in leak],
    }
    prod = {s: {r["product"] for r in rows if r["split"] == s} for s in SPLITS}
    st["products"] = {"train_distinct": len(prod["train"]), "test_distinct": len(prod["test"]),
                      "in_both": len(prod["train"] & prod["test"])}
    return st


def print_table(st, out):
    """Writes the table of counts to out."""
    def line(name, a, b):
        out.write("%-48s %7s %7s\n" % (name, a, b))
    line("", "train", "test")
    line("rows in the package", st["read"]["train"], st["read"]["test"])
    for reason, n in st["dropped_by_reason"].items():
        line("dropped, " + reason, n["train"], n["test"])
    for lab in LABELS:
        line("written, label " + lab, st["final"]["train"][lab], st["final"]["test"][lab])
    line("written", st["written"]["train"], st["written"]["test"])
    for reason, n in st["repaired_by_reason"].items():
        line("repaired, " + reason, n["train"], n["test"])
    for k in ("replacement_char_in_source", "html_br", "html_other_tags", "html_entities"):
        line("reviews with " + k + " (kept)", st["kept_as_is"][k]["train"], st["kept_as_is"][k]["test"])
    d = st["duplicates"]
    for s in SPLITS:
        out.write("duplicates in %-5s: %d texts occur %d times (%d extra copies, %d with both labels)\n"
                  % (s, d[s]["duplicate_groups"], d[s]["duplicate_rows"], d[s]["extra_copies"],
                     d[s]["conflicting_label_groups"]))
    lk = d["train_test_leakage"]
    out.write("train/test leakage: %d test rows (%d texts, %d train rows), %d with another label\n"
              % (lk["test_rows"], lk["distinct_texts"], lk["train_rows"], lk["label_disagreements"]))
    out.write("products: %d train, %d test, %d in both\n"
              % (d["products"]["train_distinct"], d["products"]["test_distinct"], d["products"]["in_both"]))


def main(argv):
    ap = argparse.ArgumentParser(description="modeldata small_fine_foods dump -> train/test CSV")
    ap.add_argument("--dump", required=True, help="file written by dump.R")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--expect-train", type=int, default=EXPECT_TRAIN)
    ap.add_argument("--expect-test", type=int, default=EXPECT_TEST)
    ap.add_argument("--no-expect", action="store_true", help="do not check the row counts")
    ap.add_argument("--source", default="", help="free text recorded in stats.json")
    args = ap.parse_args(argv)
    t0 = time.time()
    try:
        tag, rows = read_dump(args.dump)
    except InputError as e:
        sys.stderr.write("convert.py: %s\n" % e)
        return 2

    zero = lambda: {s: 0 for s in SPLITS}
    read = zero()
    for r in rows:
        read[r["split"]] += 1
    if not args.no_expect and (read["train"], read["test"]) != (args.expect_train, args.expect_test):
        sys.stderr.write("convert.py: %s has %d train / %d test rows, expected %d / %d "
                         "(another modeldata version?); nothing written\n"
                         % (args.dump, read["train"], read["test"], args.expect_train, args.expect_test))
        return 1

    dropped = collections.OrderedDict((k, zero()) for k in ("missing_text", "empty_text", "bad_score"))
    dropped_rows = {k: [] for k in dropped}
    repaired = collections.OrderedDict((k, zero()) for k in
                                       ("latin1_reencoded", "invalid_utf8", "crlf", "control_chars"))
    repaired_rows = {k: [] for k in repaired}
    kept = collections.OrderedDict((k, zero()) for k in
                                   ("replacement_char_in_source", "html_br", "html_other_tags",
                                    "html_entities"))
    out_rows = []
    for r in rows:
        s = r["split"]
        reason = None
        if r["review"] is None:
            reason = "missing_text"
        elif r["score"] not in LABELS:
            reason = "bad_score"
        else:
            rep = set()
            if r["mark"] == "latin1":
                rep.add("latin1_reencoded")
            had_fffd = b"\xef\xbf\xbd" in r["review"]
            text = clean_text(r["review"], rep)
            if text.strip() == "":
                reason = "empty_text"
        if reason:
            dropped[reason][s] += 1
            dropped_rows[reason].append(ref(r) + ":" + str(r["score"]))
            sys.stderr.write("convert.py: dropped %s (%s)\n" % (ref(r), reason))
            continue
        for k in rep:
            repaired[k][s] += 1
            repaired_rows[k].append(ref(r))
        low = text.lower()
        kept["replacement_char_in_source"][s] += had_fffd
        kept["html_br"][s] += "<br" in low
        kept["html_other_tags"][s] += any(not t.startswith("<br") for t in TAG_RE.findall(low))
        kept["html_entities"][s] += ENTITY_RE.search(text) is not None
        r["text"], r["label"] = text, r["score"]
        out_rows.append(r)

    st = collections.OrderedDict()
    st["source"] = {"dump": tag, "object": "modeldata::small_fine_foods (training_data, testing_data)",
                    "note": args.source}
    st["read"] = read
    st["expected"] = None if args.no_expect else {"train": args.expect_train, "test": args.expect_test}
    st["dropped"] = sum(sum(v.values()) for v in dropped.values())
    st["dropped_by_reason"] = dropped
    st["dropped_rows"] = dropped_rows
    st["repaired_by_reason"] = repaired
    st["repaired_rows"] = repaired_rows
    st["kept_as_is"] = kept
    st["final"] = {s: {lab: sum(1 for r in out_rows if r["split"] == s and r["label"] == lab)
                       for lab in LABELS} for s in SPLITS}
    st["written"] = {s: sum(st["final"][s].values()) for s in SPLITS}
    st["duplicates"] = duplicate_stats(out_rows)
    lens = [len(r["text"]) for r in out_rows]
    st["text_chars"] = ({"min": min(lens), "median": statistics.median(lens), "max": max(lens),
                         "total": sum(lens)} if lens else None)
    st["rules"] = {"text": "review as stored by the package (no summary/title column exists)",
                   "label": "score factor: great = 5 stars, other = 1-4 stars",
                   "split": "the package's own training_data / testing_data, package row order",
                   "duplicates": "kept; reported here"}

    print_table(st, sys.stderr)
    try:
        os.makedirs(args.out_dir, exist_ok=True)
    except OSError as e:
        sys.stderr.write("convert.py: %s: cannot create: %s\n" % (args.out_dir, e.strerror))
        return 2
    files = {}
    try:
        for s in SPLITS:
            data = csv_bytes([(r["text"], r["label"]) for r in out_rows if r["split"] == s])
            files[s + ".csv"] = write_temp(args.out_dir, s + ".csv", data)
        files["stats.json"] = write_temp(
            args.out_dir, "stats.json",
            (json.dumps(st, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
        for name, tmp in files.items():
            os.replace(tmp, os.path.join(args.out_dir, name))
    except OSError as e:
        for tmp in files.values():
            if os.path.exists(tmp):
                os.unlink(tmp)
        sys.stderr.write("convert.py: %s: cannot write: %s\n" % (args.out_dir, e.strerror))
        return 2
    sys.stderr.write("convert.py: wrote %s/{train,test}.csv (%d / %d rows), stats.json in %.1f s\n"
                     % (args.out_dir, st["written"]["train"], st["written"]["test"], time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
