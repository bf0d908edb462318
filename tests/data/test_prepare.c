/* test_prepare.c — `data prepare` end to end with the real stories260K tokenizer (../shared):
 * exact tokens / masks / source lines for CSV (BOM, CRLF, multi-line quoted field) and JSONL fixtures,
 * truncation that keeps the template suffix and the whole completion, bad rows reported with their
 * lines and counted, max_bad_rows failing with nothing written, and a corpus of bad inputs (NUL bytes,
 * invalid UTF-8, 1 MB fields, truncated JSON, unbalanced quotes, wrong types, missing keys/columns)
 * that must each give a clear message and no crash. Also: truncation never depends on the row's label
 * (same text -> same prompt whatever the label), CSV quoting errors never turn the inside of a broken
 * quoted field into rows, bare-CR line endings are numbered, and JSON \u0000 escapes are bad rows.
 * Run from the repository root. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../data/prepare.h"
#include "../../data/reader.h"
#include "cli.h"
#include "common.h"
#include "dataset.h"
#include "format/gguf.h"
#include "testdata.h"
#include "testutil.h"
#include "tokenizer/tokenizer.h"

#define FIX "tests/data/fixtures/prepare"

static tokenizer g_tok;

/* ---- helpers ---- */

/* Runs data_prepare_main with the given arguments (NULL-terminated), capturing stdout and stderr into *err. */
/* data prepare as the dispatcher runs it: the exit status, the error printed once (lib/cli.h). */
static int prepare_cli(int argc, char **argv) { return slim_exit_status("data prepare", data_prepare_main(argc, argv)); }

static int run_prepare(char **err, ...) {
    char *args[15];
    int n = 0;
    va_list ap;
    va_start(ap, err);
    for (char *a; n < 14 && (a = va_arg(ap, char *));) args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    return run_capture(prepare_cli, "prepare", "stderr.txt", err, args);
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

/* Tokens of s with the real tokenizer. */
static int encode(const char *s, size_t n, int bos, int sp, int32_t *out, int cap) {
    int got = tokenizer_encode(&g_tok, s, n, bos, sp, out, cap);
    if (got > cap) { fprintf(stderr, "test buffer too small (%d)\n", got); exit(1); }
    return got;
}

/* Expected example for text/label with the default templates: fills ids, returns length, *plen. */
static int expected_example(const char *text, const char *label, int32_t *ids, int cap, int *plen) {
    size_t n = strlen(text) + 64;
    char *prompt = slim_malloc(n);
    snprintf(prompt, n, "Text: %s\nLabel:", text);
    int np = encode(prompt, strlen(prompt), 1, 1, ids, cap);
    free(prompt);
    char comp[256];
    snprintf(comp, sizeof comp, " %s", label);
    int nc = encode(comp, strlen(comp), 0, 0, ids + np, cap - np);
    ids[np + nc] = g_tok.eos_id;
    *plen = np;
    return np + nc + 1;
}

static void check_example(const slim_dataset *d, int64_t e, const char *text, const char *label, int label_idx,
                          int64_t line, const char *what) {
    int32_t ids[4096];
    int plen;
    int n = expected_example(text, label, ids, 4096, &plen);
    int64_t a = d->offsets[e], len = d->offsets[e + 1] - a;
    CHECK(len == n, "%s: example %lld length %lld, expected %d", what, (long long)e, (long long)len, n);
    CHECK(d->prompt_len[e] == plen, "%s: example %lld prompt_len %d, expected %d", what, (long long)e,
          d->prompt_len[e], plen);
    CHECK(d->labels[e] == label_idx, "%s: example %lld label %d, expected %d", what, (long long)e, d->labels[e],
          label_idx);
    CHECK(d->source_line[e] == line, "%s: example %lld line %lld, expected %lld", what, (long long)e,
          (long long)d->source_line[e], (long long)line);
    if (len != n) return;
    int same = 1, mask_ok = 1;
    for (int i = 0; i < n; i++) {
        same &= d->tokens[a + i] == ids[i];
        mask_ok &= d->loss_mask[a + i] == (i >= plen);
    }
    CHECK(same, "%s: example %lld tokens differ from encode()", what, (long long)e);
    CHECK(mask_ok, "%s: example %lld loss mask is not 0 on the prompt and 1 on completion+EOS", what, (long long)e);
    CHECK(d->tokens[a] == g_tok.bos_id && d->tokens[a + n - 1] == g_tok.eos_id, "%s: BOS first and EOS last", what);
}

/* The rows of a file as (line, reason) pairs, compared with the expected list. */
static void check_reader(const char *path, const char *const *labels, int n_labels, const int64_t *lines,
                         const int *reasons, int n) {
    data_reader r;
    int rc = reader_open(&r, path, "auto", "text", "label", labels, n_labels);
    CHECK(rc == 0, "reader_open %s: %s", path, slim_last_error());
    if (rc) return;
    CHECK(r.n_rows == n, "%s: %lld rows, expected %d", path, (long long)r.n_rows, n);
    const reader_row *row;
    int i = 0;
    while (reader_next(&r, &row) == 1 && i < n) {
        CHECK(row->line == lines[i] && row->reason == reasons[i],
              "%s: row %d: line %lld reason %s (%s); expected line %lld reason %s", path, i, (long long)row->line,
              reader_reason_name(row->reason), row->message, (long long)lines[i], reader_reason_name(reasons[i]));
        if (row->reason != READ_OK) CHECK(row->message[0] != 0, "%s:%lld: bad row has a message", path, (long long)row->line);
        i++;
    }
    reader_free(&r);
}

/* Tokens of the completion " <label>" + EOS. */
static int completion_len(const char *label) {
    char ctext[64];
    int32_t comp[64];
    snprintf(ctext, sizeof ctext, " %s", label);
    return encode(ctext, strlen(ctext), 0, 0, comp, 64) + 1;
}

/* The longest completion + EOS of {ham, spam}, computed with the tokenizer. */
static int max_completion_len(void) {
    int a = completion_len("ham"), b = completion_len("spam");
    return a > b ? a : b;
}

/* ---- tests ---- */

static void test_fixtures_intact(void) {
    char *s;
    size_t n;
    int rc = slim_read_file(FIX "/good.csv", &s, &n);
    CHECK(rc == 0, "fixture " FIX "/good.csv missing (run from the repo root): %s", slim_last_error());
    if (rc) exit(tu_finish("test_prepare"));
    CHECK(n > 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0, "good.csv starts with a UTF-8 BOM");
    CHECK(strstr(s, "3pm,ham\r\n") != NULL, "good.csv has a CRLF line");
    CHECK(strstr(s, "\"Hello Bob,\nsee you") != NULL, "good.csv has a multi-line quoted field");
    free(s);
}

static void test_good(void) {
    const char *cfg = write_data_config("good.json", "\"train\": \"" FIX "/good.csv\", \"test\": \"" FIX "/good.jsonl\", "
                                                "\"labels\": [\"spam\", \"ham\"], \"max_seq_len\": 256");
    char *err;
    int rc = run_prepare(&err, "--config", cfg, NULL);
    CHECK(rc == 0, "prepare good: rc %d: %s", rc, err);
    CHECK(strstr(err, "5 rows read, 0 bad, 5 examples, 0 truncated") != NULL, "train summary: %s", err);
    free(err);
    slim_dataset d;
    char path[700];
    snprintf(path, sizeof path, "%s/out-good.json/data/train.h5", tmpdir);
    rc = dataset_read(&d, path);
    CHECK(rc == 0, "read train.h5: %s", slim_last_error());
    if (rc == 0) {
        CHECK(d.n_examples == 5, "5 train examples, got %lld", (long long)d.n_examples);
        CHECK(d.n_labels == 2 && strcmp(d.label_names[0], "ham") == 0 && strcmp(d.label_names[1], "spam") == 0,
              "label_names sorted");
        if (d.n_examples == 5) {
            check_example(&d, 0, "Win a free prize now", "spam", 1, 2, "csv");
            check_example(&d, 1, "Hello Bob,\nsee you at lunch", "ham", 0, 3, "csv multi-line");
            check_example(&d, 2, "Meeting moved to 3pm", "ham", 0, 5, "csv CRLF");
            check_example(&d, 3, "He said \"hi\" to me", "ham", 0, 6, "csv escaped quotes");
            check_example(&d, 4, "Cheap pills online", "spam", 1, 7, "csv last");
            /* the completion of a spam example is exactly encode(" spam") + EOS */
            int32_t comp[16];
            int nc = encode(" spam", 5, 0, 0, comp, 16);
            comp[nc++] = g_tok.eos_id;
            int64_t end = d.offsets[1];
            int same = end - d.prompt_len[0] - d.offsets[0] == nc;
            for (int i = 0; same && i < nc; i++) same = d.tokens[end - nc + i] == comp[i];
            CHECK(same, "completion ids == encode(\" spam\", 0, 0) + EOS");
        }
        CHECK(d.tokenizer_fingerprint == g_tok.fingerprint, "tokenizer fingerprint");
        CHECK(strcmp(d.model, model_path) == 0, "model attribute %s", d.model);
        CHECK(strcmp(d.source_file, FIX "/good.csv") == 0, "source_file %s", d.source_file);
        CHECK(strcmp(d.prompt_template, "Text: {text}\nLabel:") == 0 && strcmp(d.completion_template, " {label}") == 0,
              "templates");
        CHECK(d.max_seq_len == 256 && d.n_truncated == 0 && d.n_bad_rows == 0, "attributes");
        dataset_free(&d);
    }
    snprintf(path, sizeof path, "%s/out-good.json/data/test.h5", tmpdir);
    rc = dataset_read(&d, path);
    CHECK(rc == 0, "read test.h5: %s", slim_last_error());
    if (rc == 0) {
        CHECK(d.n_examples == 3, "3 jsonl examples, got %lld", (long long)d.n_examples);
        if (d.n_examples == 3) {
            check_example(&d, 0, "Win a free prize now", "spam", 1, 1, "jsonl");
            check_example(&d, 1, "Hello Bob, see you", "ham", 0, 2, "jsonl");
            check_example(&d, 2, "Unicode caf\xc3\xa9 \xe2\x98\x95 ok", "ham", 0, 4, "jsonl after blank line");
        }
        dataset_free(&d);
    }
    /* --split train writes only train.h5; --out overrides out_dir */
    const char *out = tmp_path("out-split");
    rc = run_prepare(&err, "--config", cfg, "--split", "train", "--out", out, NULL);
    CHECK(rc == 0, "--split train: %s", err);
    free(err);
    snprintf(path, sizeof path, "%s/data/train.h5", out);
    CHECK(exists(path), "--out: %s written", path);
    snprintf(path, sizeof path, "%s/data/test.h5", out);
    CHECK(!exists(path), "--split train does not write test.h5");
}

static void test_truncation(void) {
    /* a long story (ASCII), a long text of multi-byte characters, a 1 MB field, and a short row */
    size_t big = 1 << 20;
    char *csv = slim_malloc(big + 8192);
    size_t n = 0;
    n += (size_t)sprintf(csv + n, "text,label\n\"");
    const char *story = "Once upon a time, there was a little girl named Lily. She loved to play outside. ";
    char longtext[2048] = "";
    for (int i = 0; i < 6; i++) strcat(longtext, story);
    n += (size_t)sprintf(csv + n, "%s\",spam\n", longtext);
    char utf[1024] = "";
    for (int i = 0; i < 60; i++) strcat(utf, i % 3 ? "\xc3\xa9t\xc3\xa9 " : "\xe2\x98\x95");
    n += (size_t)sprintf(csv + n, "%s,ham\n", utf);
    for (size_t i = 0; i < big; i++) csv[n++] = "abcdefgh ij"[i % 11];
    n += (size_t)sprintf(csv + n, ",spam\nshort,ham\n");
    const char *data = tmp_path("trunc.csv");
    write_bytes(data, csv, n);
    free(csv);

    char body[512];
    const int max_len = 40;
    snprintf(body, sizeof body, "\"train\": \"%s\", \"labels\": [\"ham\", \"spam\"], \"max_seq_len\": %d", data,
             max_len);
    const char *cfg = write_data_config("trunc.json", body);
    char *err;
    double t0 = slim_time_sec();
    int rc = run_prepare(&err, "--config", cfg, NULL);
    double dt = slim_time_sec() - t0;
    CHECK(rc == 0, "prepare trunc: %s", err);
    CHECK(dt < 30.0 * TU_TIME_SCALE, "a 1 MB field is cut before the search (took %.1f s)", dt);
    CHECK(strstr(err, "4 rows read, 0 bad, 4 examples, 3 truncated") != NULL, "summary: %s", err);
    free(err);
    slim_dataset d;
    char path[700];
    snprintf(path, sizeof path, "%s/out-trunc.json/data/train.h5", tmpdir);
    rc = dataset_read(&d, path);
    CHECK(rc == 0, "read: %s", slim_last_error());
    if (rc) return;
    CHECK(d.n_examples == 4 && d.n_truncated == 3, "4 examples, 3 truncated");
    /* every prompt gets the same budget: max_seq_len minus the longest completion + EOS of the set */
    int budget = max_len - max_completion_len();
    const char *texts[3] = {longtext, utf, NULL};
    const char *labels[3] = {"spam", "ham", "spam"};
    for (int64_t e = 0; e < 3 && e < d.n_examples; e++) {
        int64_t a = d.offsets[e], len = d.offsets[e + 1] - a;
        int plen = d.prompt_len[e];
        CHECK(len <= max_len, "example %lld: %lld tokens > max_seq_len %d", (long long)e, (long long)len, max_len);
        CHECK(plen <= budget, "example %lld: prompt %d tokens > budget %d", (long long)e, plen, budget);
        /* the whole completion is kept */
        int32_t comp[16];
        char ctext[16];
        snprintf(ctext, sizeof ctext, " %s", labels[e]);
        int nc = encode(ctext, strlen(ctext), 0, 0, comp, 16);
        comp[nc++] = g_tok.eos_id;
        int ok = len - plen == nc;
        for (int i = 0; ok && i < nc; i++) ok = d.tokens[a + plen + i] == comp[i] && d.loss_mask[a + plen + i] == 1;
        for (int i = 0; ok && i < plen; i++) ok = d.loss_mask[a + i] == 0;
        CHECK(ok, "example %lld: completion + EOS kept whole with mask 1, prompt mask 0", (long long)e);
        /* decode the prompt: " Text: " + a prefix of the text + "\nLabel:" */
        char dec[8192] = "";
        for (int i = 1; i < plen; i++) tokenizer_decode_token(&g_tok, d.tokens[a + i], dec, sizeof dec);
        size_t dl = strlen(dec);
        CHECK(dl >= 14 && strncmp(dec, " Text: ", 7) == 0, "example %lld: prompt starts with the template: %s",
              (long long)e, dec);
        CHECK(dl >= 14 && strcmp(dec + dl - 7, "\nLabel:") == 0, "example %lld: the suffix \\nLabel: is kept: %s",
              (long long)e, dec);
        if (dl < 14) continue;
        size_t k = dl - 14; /* bytes of text kept */
        char *src;
        if (texts[e]) {
            src = slim_strdup(texts[e]);
        } else {
            src = slim_malloc(big + 1);
            for (size_t i = 0; i < big; i++) src[i] = "abcdefgh ij"[i % 11];
            src[big] = 0;
        }
        size_t sl = strlen(src);
        CHECK(k > 0 && k < sl && memcmp(dec + 7, src, k) == 0, "example %lld: kept %zu bytes, a proper prefix",
              (long long)e, k);
        CHECK(reader_utf8_check(dec, dl) == -1, "example %lld: cut at a character boundary", (long long)e);
        /* the prompt tokens are exactly encode(rendered prompt), and one more character would not fit */
        if (k < sl) {
            char *p = slim_malloc(k + 64);
            int32_t ids[512];
            snprintf(p, k + 64, "Text: %.*s\nLabel:", (int)k, src);
            int np = encode(p, strlen(p), 1, 1, ids, 512);
            int same = np == plen;
            for (int i = 0; same && i < np; i++) same = ids[i] == d.tokens[a + i];
            CHECK(same, "example %lld: prompt tokens == encode(truncated prompt)", (long long)e);
            size_t k2 = k + 1;
            while (k2 < sl && ((unsigned char)src[k2] & 0xC0) == 0x80) k2++;
            p = slim_realloc(p, k2 + 64);
            snprintf(p, k2 + 64, "Text: %.*s\nLabel:", (int)k2, src);
            int np2 = encode(p, strlen(p), 1, 1, ids, 512);
            CHECK(np2 > budget, "example %lld: the longest prefix was kept (%d > budget %d with one more char)",
                  (long long)e, np2, budget);
            free(p);
        }
        free(src);
    }
    if (d.n_examples == 4) check_example(&d, 3, "short", "ham", 0, 5, "short row after the 1 MB field");
    dataset_free(&d);

    /* a completion that cannot fit at all: every row's prompt budget leaves room for the longest
     * completion of the label set, so no row can fit; prepare fails naming the label, nothing written */
    write_bytes(tmp_path("longlabel.csv"), "text,label\nhello,spam\nhello again,a very long label that cannot fit\n",
                strlen("text,label\nhello,spam\nhello again,a very long label that cannot fit\n"));
    snprintf(body, sizeof body,
             "\"train\": \"%s\", \"max_seq_len\": 24, \"max_bad_rows\": 0.5", tmp_path("longlabel.csv"));
    cfg = write_data_config("longlabel.json", body);
    rc = run_prepare(&err, "--config", cfg, NULL);
    CHECK(rc == 2, "long label run must fail, rc %d: %s", rc, err);
    CHECK(strstr(err, "longlabel.json") && strstr(err, "data.max_seq_len = 24") &&
              strstr(err, "\"a very long label that cannot fit\""),
          "too-long completion names the config, max_seq_len and the label: %s", err);
    free(err);
    snprintf(path, sizeof path, "%s/out-longlabel.json/data/train.h5", tmpdir);
    CHECK(!exists(path), "nothing written when no row can fit");
}

/* Example e's prompt tokens of d equal example f's of d2 (same prompt_len, same ids, same mask). */
static int same_prompt(const slim_dataset *d, int64_t e, const slim_dataset *d2, int64_t f) {
    if (d->prompt_len[e] != d2->prompt_len[f]) return 0;
    for (int i = 0; i < d->prompt_len[e]; i++)
        if (d->tokens[d->offsets[e] + i] != d2->tokens[d2->offsets[f] + i] ||
            d->loss_mask[d->offsets[e] + i] != d2->loss_mask[d2->offsets[f] + i])
            return 0;
    return 1;
}

/* A story of exactly n bytes (n < cap - 80) from a small set of sentences (no quotes or commas). */
static void long_text(char *buf, size_t cap, int seed, size_t n) {
    static const char *parts[] = {"Once upon a time there was a little girl named Lily ",
                                  "She loved to play outside in the park with her dog ",
                                  "One day she saw a big red ball near the tree ",
                                  "The sun was warm and the birds were singing ",
                                  "Tom wanted to share his toys with his friends "};
    size_t k = 0;
    buf[0] = 0;
    for (int i = seed; k < n && k + 80 < cap; i = (i * 7 + 3) % 5) k += (size_t)snprintf(buf + k, cap - k, "%s", parts[i]);
    if (k > n) buf[n] = 0;
}

/* Truncation must not leak the label: labels tokenize to different lengths (" ham" < " spam"), and the
 * prompt budget is the same for every row. (1) the same long text labelled ham and spam gives the same
 * prompt tokens and prompt_len; (2) over a whole file of long rows, preparing it with every label flipped
 * (and the label set collected from a JSONL file instead of declared for a CSV) gives the same prompts
 * row by row, so no prompt length can tell the label. */
static void test_label_independent_prompts(void) {
    int nc_ham = completion_len("ham"), nc_spam = completion_len("spam");
    CHECK(nc_ham != nc_spam, "the test needs labels of different completion lengths (%d, %d)", nc_ham, nc_spam);
    const int max_len = 40;
    int budget = max_len - max_completion_len();

    /* (1) one text, two labels */
    char text[2048];
    long_text(text, sizeof text, 0, 600);
    size_t cap = 4 * sizeof text + 256, n = 0;
    char *csv = slim_malloc(cap);
    n += (size_t)snprintf(csv + n, cap - n, "text,label\n%s,ham\n%s,spam\n%s,spam\n%s,ham\n", text, text, text, text);
    write_bytes(tmp_path("same.csv"), csv, n);
    char body[1024];
    snprintf(body, sizeof body, "\"train\": \"%s\", \"labels\": [\"ham\", \"spam\"], \"max_seq_len\": %d",
             tmp_path("same.csv"), max_len);
    char *err;
    int rc = run_prepare(&err, "--config", write_data_config("same.json", body), NULL);
    CHECK(rc == 0 && strstr(err, "4 rows read, 0 bad, 4 examples, 4 truncated"), "prepare same.csv: %s", err);
    free(err);
    slim_dataset d;
    char path[700];
    snprintf(path, sizeof path, "%s/out-same.json/data/train.h5", tmpdir);
    rc = dataset_read(&d, path);
    CHECK(rc == 0, "read %s: %s", path, slim_last_error());
    if (rc == 0) {
        CHECK(d.n_examples == 4, "4 examples, got %lld", (long long)d.n_examples);
        if (d.n_examples == 4) {
            for (int e = 1; e < 4; e++)
                CHECK(same_prompt(&d, 0, &d, e), "same text, label %s vs %s: prompt_len %d vs %d, tokens must match",
                      d.label_names[d.labels[0]], d.label_names[d.labels[e]], d.prompt_len[0], d.prompt_len[e]);
            CHECK(d.labels[0] != d.labels[1], "rows 1 and 2 have different labels");
            CHECK(d.prompt_len[0] <= budget, "prompt_len %d <= budget %d", d.prompt_len[0], budget);
            /* the completions differ and are whole: ham rows are shorter than max_seq_len by the difference */
            for (int e = 0; e < 4; e++) {
                int nc = d.labels[e] == 0 ? nc_ham : nc_spam;
                CHECK(d.offsets[e + 1] - d.offsets[e] == d.prompt_len[e] + nc, "example %d: prompt + completion", e);
            }
        }
        dataset_free(&d);
    }
    free(csv);

    /* (2) a whole file of long rows (some that fit only with the shorter completion), prepared twice:
     * CSV with the declared labels, and JSONL with every label flipped and the label set collected */
    const int n_rows = 24;
    cap = (size_t)n_rows * (sizeof text + 64) + 64;
    csv = slim_malloc(cap);
    char *jsl = slim_malloc(cap);
    size_t nj = 0;
    n = (size_t)snprintf(csv, cap, "text,label\n");
    int n_ham = 0;
    for (int i = 0; i < n_rows; i++) {
        /* lengths from 20 bytes (fits) to ~900 (always cut), so some rows sit at the budget's edge */
        long_text(text, sizeof text, i % 5, 20 + (size_t)(i * 37) % 900);
        size_t tl = strlen(text) - (size_t)(i % 9);
        while (tl > 0 && text[tl - 1] == ' ') tl--; /* libcsv trims an unquoted field's spaces, JSON does not */
        text[tl] = 0;
        int ham = (i * 5 + i / 3) % 2;
        n_ham += ham;
        n += (size_t)snprintf(csv + n, cap - n, "%s,%s\n", text, ham ? "ham" : "spam");
        nj += (size_t)snprintf(jsl + nj, cap - nj, "{\"text\": \"%s\", \"label\": \"%s\"}\n", text,
                               ham ? "spam" : "ham");
    }
    CHECK(n_ham > 0 && n_ham < n_rows, "both labels present (%d ham of %d)", n_ham, n_rows);
    write_bytes(tmp_path("long_a.csv"), csv, n);
    write_bytes(tmp_path("long_b.jsonl"), jsl, nj);
    free(csv);
    free(jsl);
    snprintf(body, sizeof body,
             "\"train\": \"%s\", \"test\": \"%s\", \"labels\": [\"spam\", \"ham\"], \"max_seq_len\": %d",
             tmp_path("long_a.csv"), tmp_path("long_a.csv"), max_len);
    rc = run_prepare(&err, "--config", write_data_config("long_a.json", body), "--split", "train", NULL);
    CHECK(rc == 0, "prepare long_a.csv: %s", err);
    free(err);
    snprintf(body, sizeof body, "\"train\": \"%s\", \"max_seq_len\": %d", tmp_path("long_b.jsonl"), max_len);
    rc = run_prepare(&err, "--config", write_data_config("long_b.json", body), NULL);
    CHECK(rc == 0, "prepare long_b.jsonl (collected labels): %s", err);
    free(err);
    slim_dataset a, b;
    snprintf(path, sizeof path, "%s/out-long_a.json/data/train.h5", tmpdir);
    int ra = dataset_read(&a, path);
    CHECK(ra == 0, "read %s: %s", path, slim_last_error());
    snprintf(path, sizeof path, "%s/out-long_b.json/data/train.h5", tmpdir);
    int rb = dataset_read(&b, path);
    CHECK(rb == 0, "read %s: %s", path, slim_last_error());
    if (ra == 0 && rb == 0) {
        CHECK(a.n_examples == n_rows && b.n_examples == n_rows, "%d examples each (%lld, %lld)", n_rows,
              (long long)a.n_examples, (long long)b.n_examples);
        CHECK(a.n_truncated > 0 && a.n_truncated < n_rows && a.n_truncated == b.n_truncated,
              "some rows truncated, the same in both (%lld, %lld)", (long long)a.n_truncated, (long long)b.n_truncated);
        int64_t same = 0, flipped = 0, over = 0, full = 0;
        for (int64_t e = 0; e < a.n_examples && e < b.n_examples; e++) {
            same += same_prompt(&a, e, &b, e);
            flipped += a.labels[e] != b.labels[e];
            over += a.prompt_len[e] > budget;
            full += a.prompt_len[e] == budget;
        }
        CHECK(same == n_rows, "flipping every label changed %lld of %d prompts", (long long)(n_rows - same), n_rows);
        CHECK(flipped == n_rows, "every label flipped (%lld)", (long long)flipped);
        CHECK(over == 0, "%lld prompts over the budget %d", (long long)over, budget);
        CHECK(full > 0, "some prompts use the whole budget");
    }
    if (ra == 0) dataset_free(&a);
    if (rb == 0) dataset_free(&b);
}

static void test_bad_rows(void) {
    /* reader level: every row with its line and reason */
    const char *labels[2] = {"ham", "spam"};
    int64_t csv_lines[] = {2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    int csv_reasons[] = {READ_OK,          READ_FIELD_COUNT,   READ_FIELD_COUNT, READ_EMPTY_TEXT,
                         READ_EMPTY_LABEL, READ_UNKNOWN_LABEL, READ_BAD_QUOTE,   READ_OK,
                         READ_BAD_QUOTE,   READ_OK,            READ_OK};
    check_reader(FIX "/bad.csv", labels, 2, csv_lines, csv_reasons, 11);
    int64_t js_lines[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    int js_reasons[] = {READ_OK,        READ_BAD_JSON,   READ_JSON_TYPE, READ_JSON_TYPE, READ_MISSING_KEY,
                        READ_JSON_TYPE, READ_BAD_JSON,   READ_EMPTY_TEXT, READ_OK,       READ_BAD_JSON};
    check_reader(FIX "/bad.jsonl", NULL, 0, js_lines, js_reasons, 10);

    /* prepare level: counted, reported with file:line, good rows kept with their lines */
    const char *cfg = write_data_config("bad.json", "\"train\": \"" FIX "/bad.csv\", \"test\": \"" FIX "/bad.jsonl\", "
                                               "\"labels\": [\"ham\", \"spam\"], \"max_bad_rows\": 1.0");
    char *err;
    int rc = run_prepare(&err, "--config", cfg, NULL);
    CHECK(rc == 0, "bad rows within max_bad_rows = 1: %s", err);
    CHECK(strstr(err, "11 rows read, 7 bad, 4 examples") != NULL, "csv summary: %s", err);
    CHECK(strstr(err, "10 rows read, 8 bad, 2 examples") != NULL, "jsonl summary: %s", err);
    CHECK(strstr(err, "2 bad rows: wrong field count") && strstr(err, "2 bad rows: bad quoting"), "counts by reason");
    const char *want[] = {"bad.csv:3:", "bad.csv:4:", "bad.csv:5:", "bad.csv:6:", "bad.csv:7:", "bad.csv:8:",
                          "bad.csv:10:", "bad.jsonl:2:", "bad.jsonl:10:", "bad.jsonl:5: no key \"text\""};
    for (int i = 0; i < 10; i++) CHECK(strstr(err, want[i]) != NULL, "summary names %s: %s", want[i], err);
    free(err);
    slim_dataset d;
    char path[700];
    snprintf(path, sizeof path, "%s/out-bad.json/data/train.h5", tmpdir);
    rc = dataset_read(&d, path);
    CHECK(rc == 0, "read: %s", slim_last_error());
    if (rc == 0) {
        int64_t lines[] = {2, 9, 11, 12};
        CHECK(d.n_examples == 4 && d.n_bad_rows == 7, "4 examples, 7 bad rows");
        for (int e = 0; e < 4 && e < d.n_examples; e++)
            CHECK(d.source_line[e] == lines[e], "example %d line %lld", e, (long long)d.source_line[e]);
        if (d.n_examples == 4) check_example(&d, 1, "Fine row", "spam", 1, 9, "after the stray quote");
        if (d.n_examples == 4) check_example(&d, 2, "Another fine row", "ham", 0, 11, "after the unbalanced quote");
        dataset_free(&d);
    }

    /* too many bad rows: exit 2, nothing written (neither split) */
    cfg = write_data_config("toomany.json", "\"train\": \"" FIX "/good.csv\", \"test\": \"" FIX "/bad.csv\", "
                                       "\"labels\": [\"ham\", \"spam\"], \"max_bad_rows\": 0.5");
    rc = run_prepare(&err, "--config", cfg, NULL);
    CHECK(rc == 2, "more bad rows than max_bad_rows fails, rc %d", rc);
    CHECK(strstr(err, "max_bad_rows") && strstr(err, "7 of 11 rows are bad"), "failure says why: %s", err);
    free(err);
    snprintf(path, sizeof path, "%s/out-toomany.json/data/train.h5", tmpdir);
    CHECK(!exists(path), "train.h5 not written when the test split fails");
    snprintf(path, sizeof path, "%s/out-toomany.json/data/test.h5", tmpdir);
    CHECK(!exists(path), "test.h5 not written");
}

/* Runs prepare on one generated train file that must fail or produce bad rows; checks the message. */
static void expect_result(const char *name, const char *content, size_t n, int want_rc, const char *want1,
                          const char *want2) {
    char file[64], cfgname[64], body[1024];
    snprintf(file, sizeof file, "%s", name);
    write_bytes(tmp_path(file), content, n);
    snprintf(cfgname, sizeof cfgname, "%s.json", name);
    snprintf(body, sizeof body, "\"train\": \"%s\", \"labels\": [\"ham\", \"spam\"], \"max_bad_rows\": 0.5",
             tmp_path(file));
    const char *cfg = write_data_config(cfgname, body);
    char *err;
    int rc = run_prepare(&err, "--config", cfg, NULL);
    CHECK(rc == want_rc, "%s: rc %d, expected %d: %s", name, rc, want_rc, err);
    if (want1) CHECK(strstr(err, want1) != NULL, "%s: message should contain '%s': %s", name, want1, err);
    if (want2) CHECK(strstr(err, want2) != NULL, "%s: message should contain '%s': %s", name, want2, err);
    free(err);
}

static void test_bad_corpus(void) {
    /* NUL bytes */
    static const char nul_csv[] = "text,label\nok,ham\nbad\0text,spam\nok too,spam\n";
    expect_result("nul.csv", nul_csv, sizeof nul_csv - 1, 0, "nul.csv:3: NUL byte in the text", "1 bad rows: NUL byte");
    static const char nul_jsonl[] = "{\"text\": \"a\", \"label\": \"ham\"}\n{\"text\": \"b\0\", \"label\": \"ham\"}\n"
                                    "{\"text\": \"c\", \"label\": \"spam\"}\n";
    expect_result("nul.jsonl", nul_jsonl, sizeof nul_jsonl - 1, 0, "nul.jsonl:2: NUL byte", NULL);
    /* invalid UTF-8: a lone continuation byte, an overlong encoding, a truncated sequence */
    static const char utf_csv[] = "text,label\nok,ham\nbad \xff byte,spam\novl \xc0\xaf,ham\ncut \xe2\x98,ham\n"
                                  "fine,spam\nfine again,ham\nand more,ham\n";
    expect_result("utf.csv", utf_csv, sizeof utf_csv - 1, 0, "utf.csv:3: invalid UTF-8", "3 bad rows: invalid UTF-8");
    static const char utf_jsonl[] = "{\"text\": \"x\xfe\", \"label\": \"ham\"}\n{\"text\": \"y\", \"label\": \"ham\"}\n"
                                    "{\"text\": \"z\", \"label\": \"ham\"}\n";
    expect_result("utf.jsonl", utf_jsonl, sizeof utf_jsonl - 1, 0, "utf.jsonl:1: invalid UTF-8", NULL);
    /* wrong JSON types and missing keys */
    static const char types[] = "{\"text\": true, \"label\": \"ham\"}\n{\"text\": \"t\", \"label\": null}\n"
                                "{\"text\": \"t\", \"label\": \"ham\"}\n{\"text\": \"u\", \"label\": \"ham\"}\n"
                                "{\"text\": \"v\", \"label\": \"spam\"}\n";
    expect_result("types.jsonl", types, sizeof types - 1, 0, "types.jsonl:1: \"text\" is a boolean",
                  "types.jsonl:2: \"label\" is null");
    static const char keys[] = "{\"txt\": \"a\", \"label\": \"ham\"}\n{\"text\": \"a\"}\n";
    expect_result("keys.jsonl", keys, sizeof keys - 1, 2, "keys.jsonl:2: no key \"label\"", "max_bad_rows");
    /* a truncated JSONL file and unbalanced quotes everywhere: too many bad rows */
    static const char trunc[] = "{\"text\": \"a\", \"label\": \"ham\"}\n{\"text\": \"b\", \"la";
    expect_result("trunc.jsonl", trunc, sizeof trunc - 1, 0, "trunc.jsonl:2: invalid JSON", NULL);
    static const char quotes[] = "text,label\n\"a,ham\n\"b,ham\n\"c,spam\nd,ham\n";
    expect_result("quotes.csv", quotes, sizeof quotes - 1, 2, "quotes.csv:2: bad quoting", "max_bad_rows");
    /* a 1 MB label is just an unknown label; a 1 MB JSONL text is truncated */
    size_t big = 1 << 20;
    char *buf = slim_malloc(big + 256);
    size_t n = (size_t)sprintf(buf, "text,label\nhi,ham\nthere,");
    memset(buf + n, 'x', big);
    n += big;
    n += (size_t)sprintf(buf + n, "\nagain,spam\n");
    expect_result("biglabel.csv", buf, n, 0, "biglabel.csv:3: label \"xxxx", "1 bad rows: unknown label");
    n = (size_t)sprintf(buf, "{\"label\": \"spam\", \"text\": \"");
    for (size_t i = 0; i < big; i++) buf[n++] = "lorem ipsum "[i % 12];
    n += (size_t)sprintf(buf + n, "\"}\n");
    expect_result("bigtext.jsonl", buf, n, 0, "1 examples, 1 truncated", NULL);
    free(buf);
    /* random binary garbage: no crash, a clear failure */
    buf = slim_malloc(65536);
    slim_rng rng;
    slim_rng_seed(&rng, 7);
    for (int i = 0; i < 65536; i++) buf[i] = (char)(slim_rng_u32(&rng) & 0xff);
    expect_result("garbage.csv", buf, 65536, 2, "garbage.csv", NULL);
    expect_result("garbage.jsonl", buf, 65536, 2, "garbage.jsonl", NULL);
    free(buf);
    /* whole-file problems */
    expect_result("empty.csv", "", 0, 2, "empty.csv: empty file", NULL);
    expect_result("header_only.csv", "text,label\n", 11, 2, "no data rows", NULL);
    expect_result("nocol.csv", "body,label\nhi,ham\n", 18, 2, "nocol.csv:1: the header has no column \"text\"",
                  "\"body\"");
    expect_result("badheader.csv", "te\"xt,label\nhi,ham\n", 19, 2, "badheader.csv:1: bad quoting in the header",
                  NULL);
    /* an unknown extension: the content decides (a comma header is CSV); content that tells nothing fails */
    expect_result("data.txt", "text,label\nhi,ham\n", 18, 0, "1 rows read, 0 bad, 1 examples", NULL);
    expect_result("notes.txt", "just some words\nand more\n", 25, 2, "notes.txt: cannot tell the format", NULL);

    char *err;
    char body[512];
    snprintf(body, sizeof body, "\"train\": \"%s/does-not-exist.csv\"", tmpdir);
    int rc = run_prepare(&err, "--config", write_data_config("nofile.json", body), NULL);
    CHECK(rc == 2 && strstr(err, "does-not-exist.csv: cannot open"), "missing data file: %s", err);
    free(err);
    const char *cfg = tmp_path("nomodel.json");
    snprintf(body, sizeof body, "{\"model\": \"%s/none.gguf\", \"data\": {\"train\": \"" FIX "/good.csv\"}}", tmpdir);
    write_bytes(cfg, body, strlen(body));
    rc = run_prepare(&err, "--config", cfg, NULL);
    CHECK(rc == 2 && strstr(err, "none.gguf"), "missing model: %s", err);
    free(err);
    rc = run_prepare(&err, "--config", tmp_path("no-config.json"), NULL);
    CHECK(rc == 2 && strstr(err, "no-config.json"), "missing config: %s", err);
    free(err);
    rc = run_prepare(&err, "--config", write_data_config("notrain.json", "\"max_seq_len\": 64"), NULL);
    CHECK(rc == 2 && strstr(err, "data.train"), "no data.train: %s", err);
    free(err);
    rc = run_prepare(&err, "--config", write_data_config("notest.json", "\"train\": \"" FIX "/good.csv\""), "--split",
                     "test", NULL);
    CHECK(rc == 2 && strstr(err, "data.test"), "--split test without data.test: %s", err);
    free(err);
}

/* Returns the reader's row at source line `line` (NULL when none); r must be open. */
static const reader_row *row_at(const data_reader *r, int64_t line) {
    for (int64_t i = 0; i < r->n_rows; i++)
        if (r->rows[i].line == line) return &r->rows[i];
    return NULL;
}

/* CSV quoting-error recovery never makes rows out of the inside of a broken quoted field: a quoted
 * field opened on line 2 and broken on line 4 is one bad row (2), parsing resumes on line 5; a quote
 * never closed (line 10) costs one row and parsing restarts on the next line. */
static void test_quote_recovery(void) {
    int64_t lines[] = {2, 5, 6, 7, 9, 10, 11};
    int reasons[] = {READ_BAD_QUOTE, READ_OK, READ_BAD_QUOTE, READ_OK, READ_OK, READ_BAD_QUOTE, READ_OK};
    check_reader(FIX "/quotes.csv", NULL, 0, lines, reasons, 7);
    data_reader r;
    int rc = reader_open(&r, FIX "/quotes.csv", "auto", "text", "label", NULL, 0);
    CHECK(rc == 0, "fixture " FIX "/quotes.csv: %s", slim_last_error());
    if (rc) return;
    CHECK(r.n_rows == 7 && r.n_bad == 3, "quotes.csv: 7 rows, 3 bad (got %lld, %lld)", (long long)r.n_rows,
          (long long)r.n_bad);
    const reader_row *a = row_at(&r, 2), *b = row_at(&r, 7);
    CHECK(a && strstr(a->message, "lines 2-4"), "quotes.csv:2: message names the span: %s", a ? a->message : "none");
    CHECK(!row_at(&r, 3) && !row_at(&r, 4), "no row made from lines 3-4 (inside the broken quoted field)");
    CHECK(b && b->text && strcmp(b->text, "a field that\nspans lines") == 0, "multi-line field after the errors");
    reader_free(&r);
    /* prepare level: the summary counts them and names the lines */
    char body[512], *err;
    snprintf(body, sizeof body, "\"train\": \"" FIX "/quotes.csv\", \"max_bad_rows\": 0.5");
    rc = run_prepare(&err, "--config", write_data_config("quotes_fix.json", body), NULL);
    CHECK(rc == 0 && strstr(err, "7 rows read, 3 bad, 4 examples") && strstr(err, "3 bad rows: bad quoting") &&
              strstr(err, "quotes.csv:2:") && strstr(err, "quotes.csv:6:") && strstr(err, "quotes.csv:10:"),
          "quotes.csv summary: %s", err);
    free(err);
}

/* A CSV with bare-CR line endings is numbered line by line (a multi-line quoted field included). */
static void test_bare_cr(void) {
    static const char cr[] = "text,label\rhello,ham\rbye,spam\r\"two\rlines\",ham\rtoo,many,fields\r"
                             "last,spam";
    write_bytes(tmp_path("cr.csv"), cr, sizeof cr - 1);
    int64_t lines[] = {2, 3, 4, 6, 7};
    int reasons[] = {READ_OK, READ_OK, READ_OK, READ_FIELD_COUNT, READ_OK};
    check_reader(tmp_path("cr.csv"), NULL, 0, lines, reasons, 5);
    data_reader r;
    if (reader_open(&r, tmp_path("cr.csv"), "auto", "text", "label", NULL, 0) == 0) {
        const reader_row *row = row_at(&r, 4);
        CHECK(row && row->text && strcmp(row->text, "two\rlines") == 0, "cr.csv:4: the quoted CR is kept");
        reader_free(&r);
    }
    /* mixed endings: LF, CRLF and bare CR each end one line */
    static const char mixed[] = "text,label\r\na,ham\nb,spam\rc,eggs,x\r\nd,ham\n";
    write_bytes(tmp_path("mixed.csv"), mixed, sizeof mixed - 1);
    int64_t ml[] = {2, 3, 4, 5};
    int mr[] = {READ_OK, READ_OK, READ_FIELD_COUNT, READ_OK};
    check_reader(tmp_path("mixed.csv"), NULL, 0, ml, mr, 4);
    /* a line of only blanks is skipped (libcsv makes no record of it): the next record keeps its own line */
    static const char blanks[] = "text,label\na,ham\n \t \nb,spam\n\n  \nc,ham\n";
    write_bytes(tmp_path("blanks.csv"), blanks, sizeof blanks - 1);
    int64_t bl[] = {2, 4, 7};
    int br[] = {READ_OK, READ_OK, READ_OK};
    check_reader(tmp_path("blanks.csv"), NULL, 0, bl, br, 3);
    static const char cr2[] = "text,label\rok,ham\rbad,eggs\rfine,spam\r";
    expect_result("cr2.csv", cr2, sizeof cr2 - 1, 0, "cr2.csv:3: label \"eggs\"", NULL);
}

/* JSONL: a \u0000 escape would be decoded by cJSON into a NUL that cuts the string; the row is bad
 * (NUL byte) with its line, and an escaped backslash before "u0000" is ordinary text. */
static void test_json_nul_escape(void) {
    static const char js[] = "{\"text\":\"abc\\u0000secret tail\",\"label\":\"ham\"}\n"
                             "{\"text\":\"a \\\\u0000 literal\",\"label\":\"spam\"}\n"
                             "{\"text\":\"fine\",\"label\":\"spam\\u0000x\"}\n"
                             "{\"te\\u0000xt\":\"key\",\"text\":\"t\",\"label\":\"ham\"}\n"
                             "{\"text\":\"ok\",\"label\":\"ham\"}\n";
    write_bytes(tmp_path("nulesc.jsonl"), js, sizeof js - 1);
    int64_t lines[] = {1, 2, 3, 4, 5};
    int reasons[] = {READ_NUL_BYTE, READ_OK, READ_NUL_BYTE, READ_NUL_BYTE, READ_OK};
    check_reader(tmp_path("nulesc.jsonl"), NULL, 0, lines, reasons, 5);
    data_reader r;
    if (reader_open(&r, tmp_path("nulesc.jsonl"), "auto", "text", "label", NULL, 0) == 0) {
        const reader_row *row = row_at(&r, 2);
        CHECK(row && row->text && strcmp(row->text, "a \\u0000 literal") == 0, "escaped backslash: text \"%s\"",
              row && row->text ? row->text : "(none)");
        row = row_at(&r, 1);
        CHECK(row && strstr(row->message, "NUL") && strstr(row->message, "column 13"), "nulesc.jsonl:1: %s",
              row ? row->message : "(none)");
        reader_free(&r);
    }
    /* prepare level (two more good rows keep the bad fraction under max_bad_rows = 0.5) */
    char more[sizeof js + 128];
    int n = snprintf(more, sizeof more, "%s{\"text\":\"x\",\"label\":\"spam\"}\n{\"text\":\"y\",\"label\":\"ham\"}\n", js);
    expect_result("nulesc2.jsonl", more, (size_t)n, 0, "nulesc2.jsonl:1: NUL byte", "3 bad rows: NUL byte");
}

static void test_cli_and_labels(void) {
    char *err;
    CHECK(run_prepare(&err, "--help", NULL) == 0 && strstr(err, "usage: slimtune data prepare"), "--help: %s", err);
    free(err);
    int rc = run_prepare(&err, NULL);
    CHECK(rc == 2 && strstr(err, "--config") && strstr(err, "usage"), "no arguments: usage, rc %d: %s", rc, err);
    free(err);
    rc = run_prepare(&err, "--config", "x.json", "--split", "dev", NULL);
    CHECK(rc == 2 && strstr(err, "--split"), "bad --split: %s", err);
    free(err);
    rc = run_prepare(&err, "--bogus", NULL);
    CHECK(rc == 2 && strstr(err, "--bogus"), "unknown argument: %s", err);
    free(err);

    /* labels collected from train (sorted); test rows with other labels are bad rows */
    write_bytes(tmp_path("l_train.jsonl"),
                "{\"text\": \"a\", \"label\": \"zeta\"}\n{\"text\": \"b\", \"label\": \"alpha\"}\n"
                "{\"text\": \"c\", \"label\": \"zeta\"}\n",
                strlen("{\"text\": \"a\", \"label\": \"zeta\"}\n{\"text\": \"b\", \"label\": \"alpha\"}\n"
                       "{\"text\": \"c\", \"label\": \"zeta\"}\n"));
    write_bytes(tmp_path("l_test.jsonl"),
                "{\"text\": \"d\", \"label\": \"alpha\"}\n{\"text\": \"e\", \"label\": \"beta\"}\n",
                strlen("{\"text\": \"d\", \"label\": \"alpha\"}\n{\"text\": \"e\", \"label\": \"beta\"}\n"));
    char body[1024];
    snprintf(body, sizeof body, "\"train\": \"%s\", \"test\": \"%s\", \"max_bad_rows\": 0.5",
             tmp_path("l_train.jsonl"), tmp_path("l_test.jsonl"));
    const char *cfg = write_data_config("labels.json", body);
    rc = run_prepare(&err, "--config", cfg, "--split", "test", NULL);
    CHECK(rc == 0, "--split test with collected labels: %s", err);
    CHECK(strstr(err, "l_test.jsonl:2: label \"beta\" is not in the label set") != NULL, "beta reported: %s", err);
    free(err);
    slim_dataset d;
    char path[700];
    snprintf(path, sizeof path, "%s/out-labels.json/data/test.h5", tmpdir);
    rc = dataset_read(&d, path);
    CHECK(rc == 0, "read: %s", slim_last_error());
    if (rc == 0) {
        CHECK(d.n_labels == 2 && strcmp(d.label_names[0], "alpha") == 0 && strcmp(d.label_names[1], "zeta") == 0,
              "label set from train, sorted");
        CHECK(d.n_examples == 1 && d.labels[0] == 0 && d.n_bad_rows == 1, "one test example labelled alpha");
        dataset_free(&d);
    }
    snprintf(path, sizeof path, "%s/out-labels.json/data/train.h5", tmpdir);
    CHECK(!exists(path), "--split test writes no train.h5");
}

/* Reads tmpdir/out-<cfg>/data/<split>.h5 into *d. Returns 0 or -1 (a failed check). */
static int read_split(const char *cfg, const char *split, slim_dataset *d) {
    char path[700];
    snprintf(path, sizeof path, "%s/out-%s/data/%s.h5", tmpdir, cfg, split);
    int rc = dataset_read(d, path);
    CHECK(rc == 0, "read %s: %s", path, slim_last_error());
    return rc;
}

/* Examples of d with label index k. */
static int64_t count_label(const slim_dataset *d, int k) {
    int64_t n = 0;
    for (int64_t e = 0; e < d->n_examples; e++) n += d->labels[e] == k;
    return n;
}

/* data.split.val_fraction: val.h5 carved out of data.train, stratified (round(f * n) per label), no
 * source line in two splits, the test split the same as without val; data.val as a file; the rules. */
static void test_val_split(void) {
    const int n = 120; /* 80 ham, 40 spam, every text distinct */
    size_t cap = (size_t)n * 80 + 32, len = (size_t)snprintf(NULL, 0, "text,label\n");
    char *csv = slim_malloc(cap);
    snprintf(csv, cap, "text,label\n");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(csv + len, cap - len, "message number %d here,%s\n", i, i % 3 == 0 ? "spam" : "ham");
    write_bytes(tmp_path("val_rows.csv"), csv, len);
    free(csv);
    char body[1200], *err;
    snprintf(body, sizeof body, "\"train\": \"%s\", \"labels\": [\"ham\", \"spam\"], \"split\": {\"test_fraction\": "
             "0.1, \"val_fraction\": 0.25, \"seed\": 3}", tmp_path("val_rows.csv"));
    int rc = run_prepare(&err, "--config", write_data_config("val3.json", body), NULL);
    CHECK(rc == 0 && strstr(err, "val.h5"), "prepare with val_fraction writes val.h5: %s", err);
    free(err);
    snprintf(body, sizeof body, "\"train\": \"%s\", \"labels\": [\"ham\", \"spam\"], \"split\": {\"test_fraction\": "
             "0.1, \"seed\": 3}", tmp_path("val_rows.csv"));
    rc = run_prepare(&err, "--config", write_data_config("val2.json", body), NULL);
    CHECK(rc == 0, "prepare without val_fraction: %s", err);
    free(err);
    slim_dataset d[3], t2;
    const char *names[3] = {"train", "test", "val"};
    int ok = 1;
    for (int s = 0; s < 3; s++) ok &= read_split("val3.json", names[s], &d[s]) == 0;
    ok &= read_split("val2.json", "test", &t2) == 0;
    if (!ok) return;
    /* ham 80, spam 40: test round(8) + round(4), val round(20) + round(10) */
    CHECK(count_label(&d[1], 0) == 8 && count_label(&d[1], 1) == 4, "test: 8 ham, 4 spam (%lld, %lld)",
          (long long)count_label(&d[1], 0), (long long)count_label(&d[1], 1));
    CHECK(count_label(&d[2], 0) == 20 && count_label(&d[2], 1) == 10, "val: 20 ham, 10 spam (%lld, %lld)",
          (long long)count_label(&d[2], 0), (long long)count_label(&d[2], 1));
    CHECK(d[0].n_examples == 78, "train keeps the other 78 rows (%lld)", (long long)d[0].n_examples);
    char *side = slim_calloc((size_t)n + 2, 1);
    int overlap = 0;
    for (int s = 0; s < 3; s++)
        for (int64_t e = 0; e < d[s].n_examples; e++) overlap += side[d[s].source_line[e]]++ != 0;
    CHECK(overlap == 0, "no row in two splits (%d)", overlap);
    free(side);
    int same_test = t2.n_examples == d[1].n_examples &&
                    !memcmp(t2.source_line, d[1].source_line, (size_t)t2.n_examples * sizeof(int64_t));
    CHECK(same_test, "the test split is the same with and without val_fraction");
    CHECK(strcmp(d[2].split, "val") == 0 && strstr(d[2].split_rule, "val_fraction=0.25"), "val attributes: %s %s",
          d[2].split, d[2].split_rule);
    for (int s = 0; s < 3; s++) dataset_free(&d[s]);
    dataset_free(&t2);
    /* data.val as a file, and with data.test: data.split may carve out val only */
    snprintf(body, sizeof body, "\"train\": \"%s\", \"test\": \"%s\", \"val\": \"%s\", \"labels\": [\"ham\", \"spam\"]",
             FIX "/good.csv", FIX "/good.jsonl", FIX "/good.jsonl");
    rc = run_prepare(&err, "--config", write_data_config("valfile.json", body), "--split", "val", NULL);
    CHECK(rc == 0 && strstr(err, "val.h5") && !strstr(err, "train.h5"), "--split val with data.val: %s", err);
    free(err);
    snprintf(body, sizeof body, "\"train\": \"%s\", \"test\": \"%s\", \"labels\": [\"ham\", \"spam\"], \"split\": "
             "{\"val_fraction\": 0.3}", tmp_path("val_rows.csv"), FIX "/good.jsonl");
    rc = run_prepare(&err, "--config", write_data_config("valtest.json", body), NULL);
    CHECK(rc == 0 && strstr(err, "val: ") && strstr(err, "36 examples"), "val_fraction with data.test: %s", err);
    free(err);
    rc = run_prepare(&err, "--config", write_data_config("noval.json", "\"train\": \"" FIX "/good.csv\""), "--split",
                     "val", NULL);
    CHECK(rc == 2 && strstr(err, "data.val"), "--split val without a val set: %s", err);
    free(err);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/slimtune-test-prepare-XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    snprintf(model_path, sizeof model_path, "%s/models/stories260K.gguf", slim_shared_dir());
    int rc = tokenizer_init_path(&g_tok, model_path);
    CHECK(rc == 0, "the shared model %s is required (set SLIM_SHARED): %s", model_path, slim_last_error());
    if (rc) return tu_finish("test_prepare");
    int32_t ids[8];
    int n = encode("Once upon a time", 16, 1, 1, ids, 8);
    CHECK(n == 5 && ids[0] == 1 && ids[1] == 403 && ids[4] == 378, "the real stories260K tokenizer is in use");

    test_fixtures_intact();
    test_good();
    test_truncation();
    test_label_independent_prompts();
    test_bad_rows();
    test_bad_corpus();
    test_quote_recovery();
    test_bare_cr();
    test_json_nul_escape();
    test_cli_and_labels();
    test_val_split();

    tokenizer_free(&g_tok);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmpdir);
    return tu_finish("test_prepare");
}
