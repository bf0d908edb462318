/* test_validate.c — `data validate` on the real SpamAssassin corpus seeded with known faults, on a corpus
 * of bad inputs (shared with `data prepare`), on the other shapes, and at 100,000 rows.
 *
 * 1. SpamAssassin (work/datasets/spam_assassin, made by datasets/spam_assassin/fetch, which this test
 *    runs when the files are missing): a baseline run on copies of train.csv / test.csv, then the copies
 *    are seeded with 2 exact duplicates and 2 near duplicates of train rows, 2 test rows leaked into
 *    train, a row with invalid UTF-8, a row with an empty text and a row with an unknown label — each
 *    taken from rows that the baseline report shows uninvolved in any duplicate, near duplicate or
 *    leak — and the seeded run must count each exactly (baseline + seeded), name the seeded rows'
 *    lines, and exit 1 with gates set just above the baseline (which must pass them).
 * 1b. Small generated train/eval CSVs with every count known: exact duplicates (one with another label),
 *    near duplicates, leaked rows (exact, near), invalid UTF-8, empty fields and foreign labels, per split;
 *    validated with a config that declares the labels, and as `make validate DATA= EVAL=` runs it without
 *    CONFIG (the command taken from make -n): labels from the train file, eval labels unseen in train reported.
 * 2. Bad inputs (truncated JSONL line, unbalanced CSV quote, NUL bytes, a 1 MB field, wrong JSON types,
 *    missing keys, garbage bytes, empty files, missing columns): both commands give a clear message
 *    naming file:line or the file, and neither crashes.
 * 3. Chat structure, alpaca/prompt_completion/text lengths, --show output, the JSON report, usage errors.
 * 4. 100,000 generated rows validated (counted right; the time is printed, `make bench` measures it).
 * Run from the repository root. */
#define _GNU_SOURCE
#include <cJSON.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../data/prepare.h"
#include "../../data/reader.h"
#include "../../data/validate.h"
#include "cli.h"
#include "common.h"
#include "format/gguf.h"
#include "testdata.h"
#include "testutil.h"
#include "tokenizer/tokenizer.h"

#define SPAM_DIR "work/datasets/spam_assassin"


/* A config file with the given data and validate object bodies (may be ""). */
static const char *write_config(const char *name, const char *data_json, const char *validate_json) {
    size_t cap = strlen(data_json) + strlen(validate_json) + 2048;
    char *text = slim_malloc(cap);
    snprintf(text, cap, "{\"model\": \"%s\", \"out_dir\": \"%s/out-%s\", \"data\": {%s}, \"validate\": {%s}}\n",
             model_path, tmpdir, name, data_json, validate_json);
    const char *p = tmp_path(name);
    write_bytes(p, text, strlen(text));
    free(text);
    return p;
}

/* data prepare as the dispatcher runs it: the exit status, the error printed once (lib/cli.h). */
static int prepare_cli(int argc, char **argv) { return slim_exit_status("data prepare", data_prepare_main(argc, argv)); }

/* data validate as the dispatcher runs it: the exit status, the error printed once (lib/cli.h). */
static int validate_cli(int argc, char **argv) { return slim_exit_status("data validate", data_validate_main(argc, argv)); }

static int run_validate(char **out, ...) {
    char *args[20];
    int n = 0;
    va_list ap;
    va_start(ap, out);
    for (char *a; n < 19 && (a = va_arg(ap, char *));) args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    return run_capture(validate_cli, "validate", "capture.txt", out, args);
}

static int run_prepare(char **out, ...) {
    char *args[20];
    int n = 0;
    va_list ap;
    va_start(ap, out);
    for (char *a; n < 19 && (a = va_arg(ap, char *));) args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    return run_capture(prepare_cli, "prepare", "capture.txt", out, args);
}

static cJSON *load_json(const char *path) {
    char *s;
    size_t n;
    if (slim_read_file(path, &s, &n)) return NULL;
    cJSON *v = cJSON_Parse(s);
    free(s);
    return v;
}

/* report.splits.<split>.checks.<check>, or NULL. */
static const cJSON *check_of(const cJSON *rep, const char *split, const char *check) {
    const cJSON *s = cJSON_GetObjectItem(cJSON_GetObjectItem(rep, "splits"), split);
    return cJSON_GetObjectItem(cJSON_GetObjectItem(s, "checks"), check);
}

static long long count_of(const cJSON *rep, const char *split, const char *check) {
    const cJSON *c = check_of(rep, split, check);
    const cJSON *n = cJSON_GetObjectItem(c, "count");
    return cJSON_IsNumber(n) ? (long long)n->valuedouble : -1;
}

static long long num_at(const cJSON *o, const char *a, const char *b) {
    const cJSON *v = cJSON_GetObjectItem(o, a);
    if (b) v = cJSON_GetObjectItem(v, b);
    return cJSON_IsNumber(v) ? (long long)v->valuedouble : -1;
}

/* Whether a check's row list (complete: report_rows is large) holds the line (as line or other_line). */
static int listed(const cJSON *chk, long long line, int other_too) {
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(chk, "rows")) {
        if ((long long)cJSON_GetObjectItem(r, "line")->valuedouble == line) return 1;
        const cJSON *o = cJSON_GetObjectItem(r, "other_line");
        if (other_too && o && (long long)o->valuedouble == line) return 1;
    }
    return 0;
}

/* The hit of a check at a line (NULL when none). */
static const cJSON *hit_at(const cJSON *chk, long long line) {
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(chk, "rows"))
        if ((long long)cJSON_GetObjectItem(r, "line")->valuedouble == line) return r;
    return NULL;
}

/* Appends s to a growing buffer. */
typedef struct buf { char *s; size_t n, cap; } buf;
static void buf_add(buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) { b->cap = 2 * (b->n + n + 1); b->s = slim_realloc(b->s, b->cap); }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}
static void buf_str(buf *b, const char *s) { buf_add(b, s, strlen(s)); }

/* Appends one CSV record "text",label and returns its 1-based start line (lines counted in b). */
static long long csv_append(buf *b, const char *text, const char *label) {
    long long line = 1;
    for (size_t i = 0; i < b->n; i++) line += b->s[i] == '\n';
    buf_str(b, "\"");
    for (const char *p = text; *p; p++) {
        if (*p == '"') buf_str(b, "\"\"");
        else buf_add(b, p, 1);
    }
    buf_str(b, "\",");
    buf_str(b, label);
    buf_str(b, "\n");
    return line;
}

static int count_words(const char *s) {
    int n = 0, in = 0;
    for (; *s; s++) {
        int sp = *s == ' ' || *s == '\n' || *s == '\t' || *s == '\r';
        if (!sp && !in) n++;
        in = !sp;
    }
    return n;
}

/* ---- 1. SpamAssassin seeded ---- */

static void test_spam_assassin(void) {
    char *train_s, *test_s;
    size_t train_n, test_n;
    if (access(SPAM_DIR "/train.csv", F_OK) != 0 || access(SPAM_DIR "/test.csv", F_OK) != 0) {
        fprintf(stderr, "test_validate: %s missing: running datasets/spam_assassin/fetch\n", SPAM_DIR);
        int rc = system("datasets/spam_assassin/fetch >&2");
        CHECK(rc == 0, "datasets/spam_assassin/fetch failed (rc %d): the SpamAssassin CSVs are required", rc);
    }
    int rc = slim_read_file(SPAM_DIR "/train.csv", &train_s, &train_n);
    CHECK(rc == 0, "the real SpamAssassin train.csv is required: %s", slim_last_error());
    if (rc) return;
    rc = slim_read_file(SPAM_DIR "/test.csv", &test_s, &test_n);
    CHECK(rc == 0, "the real SpamAssassin test.csv is required: %s", slim_last_error());
    if (rc) { free(train_s); return; }
    CHECK(train_n > 1000000 && test_n > 100000, "real-sized CSVs (%zu, %zu bytes)", train_n, test_n);
    const char *tr = tmp_path("spam_train.csv"), *te = tmp_path("spam_test.csv");
    char trp[600], tep[600];
    snprintf(trp, sizeof trp, "%s", tr);
    snprintf(tep, sizeof tep, "%s", te);
    write_bytes(trp, train_s, train_n);
    write_bytes(tep, test_s, test_n);

    /* baseline, every gate open; complete row lists */
    char data[2048];
    snprintf(data, sizeof data, "\"train\": \"%s\", \"test\": \"%s\", \"labels\": [\"ham\", \"spam\"], \"max_seq_len\": 128",
             trp, tep);
    const char *open_gates = "\"max_invalid_rows\": 1, \"max_duplicate_rate\": 1, \"max_near_duplicate_rate\": 1, "
                             "\"max_leakage\": 1, \"max_imbalance\": 0, \"report_rows\": 1000000, \"show_rows\": 3";
    const char *cfg = write_config("spam_base.json", data, open_gates);
    char rep0[600], rep1[600];
    snprintf(rep0, sizeof rep0, "%s", tmp_path("spam_base_report.json"));
    snprintf(rep1, sizeof rep1, "%s", tmp_path("spam_seeded_report.json"));
    char *out;
    rc = run_validate(&out, "--config", cfg, "--report", rep0, NULL);
    CHECK(rc == 0, "baseline validate with open gates exits 0, got %d: %.2000s", rc, out);
    free(out);
    cJSON *base = load_json(rep0);
    CHECK(base != NULL, "baseline report %s is JSON", rep0);
    if (!base) { free(train_s); free(test_s); return; }
    const cJSON *b_dup = check_of(base, "train", "exact_duplicates"), *b_near = check_of(base, "train", "near_duplicates");
    const cJSON *e_dup = check_of(base, "eval", "exact_duplicates"), *e_near = check_of(base, "eval", "near_duplicates");
    const cJSON *b_leak = cJSON_GetObjectItem(base, "leakage");
    CHECK(b_dup && b_near && e_dup && e_near && b_leak, "baseline report has the checks and leakage");
    if (!(b_dup && b_near && e_dup && e_near && b_leak)) { cJSON_Delete(base); free(train_s); free(test_s); return; }
    long long good0 = num_at(cJSON_GetObjectItem(cJSON_GetObjectItem(base, "splits"), "train"), "good", NULL);
    long long egood0 = num_at(cJSON_GetObjectItem(cJSON_GetObjectItem(base, "splits"), "eval"), "good", NULL);
    long long rows0 = num_at(cJSON_GetObjectItem(cJSON_GetObjectItem(base, "splits"), "train"), "rows", NULL);
    long long c0[6] = {count_of(base, "train", "exact_duplicates"), count_of(base, "train", "near_duplicates"),
                       count_of(base, "train", "invalid_utf8"),     count_of(base, "train", "empty_fields"),
                       count_of(base, "train", "unknown_labels"),   num_at(b_leak, "exact", NULL)};
    long long leak_near0 = num_at(b_leak, "near", NULL), bad0 = num_at(cJSON_GetObjectItem(cJSON_GetObjectItem(base, "splits"), "train"), "bad", NULL);
    CHECK(good0 > 4000 && egood0 > 1000 && c0[0] >= 0 && leak_near0 >= 0, "baseline counts (%lld good)", good0);

    /* pick uninvolved rows: train rows for duplicates / near duplicates, eval rows to leak */
    data_reader rt, re;
    const char *labels[2] = {"ham", "spam"};
    rc = reader_open(&rt, trp, "csv", "text", "label", labels, 2);
    CHECK(rc == 0, "read %s: %s", trp, slim_last_error());
    int rc2 = reader_open(&re, tep, "csv", "text", "label", labels, 2);
    CHECK(rc2 == 0, "read %s: %s", tep, slim_last_error());
    if (rc || rc2) { cJSON_Delete(base); free(train_s); free(test_s); return; }
    int64_t pick_t[4] = {-1, -1, -1, -1}, pick_e[2] = {-1, -1};
    int nt = 0, ne = 0;
    for (int64_t i = 0; i < rt.n_rows && nt < 4; i++) {
        const reader_row *r = &rt.rows[i];
        if (r->reason != READ_OK || r->text_len > 4000 || count_words(r->text) < 150) continue;
        long long L = r->line;
        if (listed(b_dup, L, 1) || listed(b_near, L, 1) || listed(b_leak, L, 0)) continue;
        /* also not the train side of any leak */
        int in_leak = 0;
        const cJSON *h;
        cJSON_ArrayForEach(h, cJSON_GetObjectItem(b_leak, "rows"))
            in_leak |= (long long)cJSON_GetObjectItem(h, "other_line")->valuedouble == L;
        if (in_leak) continue;
        pick_t[nt++] = i;
    }
    for (int64_t i = 0; i < re.n_rows && ne < 2; i++) {
        const reader_row *r = &re.rows[i];
        if (r->reason != READ_OK || count_words(r->text) < 20) continue;
        long long L = r->line;
        if (listed(e_dup, L, 1) || listed(e_near, L, 1) || listed(b_leak, L, 0)) continue;
        pick_e[ne++] = i;
    }
    CHECK(nt == 4 && ne == 2, "found uninvolved rows to seed with (%d train, %d eval)", nt, ne);
    if (nt < 4 || ne < 2) { reader_free(&rt); reader_free(&re); cJSON_Delete(base); free(train_s); free(test_s); return; }

    /* seed the train copy */
    buf b = {0};
    buf_add(&b, train_s, train_n);
    long long dup_line[2], dup_of[2], near_line[2], near_of[2], leak_line[2], leak_eval_line[2];
    for (int k = 0; k < 2; k++) {
        const reader_row *r = &rt.rows[pick_t[k]];
        dup_of[k] = r->line;
        dup_line[k] = csv_append(&b, r->text, r->label);
    }
    for (int k = 0; k < 2; k++) {
        const reader_row *r = &rt.rows[pick_t[2 + k]];
        /* one word in the middle replaced: the 3-word shingle sets stay ~95% alike */
        char *t = slim_strdup(r->text);
        size_t mid = strlen(t) / 2;
        while (t[mid] && t[mid] != ' ') mid++;
        while (t[mid] == ' ') mid++;
        size_t end = mid;
        while (t[end] && t[end] != ' ' && t[end] != '\n') end++;
        buf nb = {0};
        buf_add(&nb, t, mid);
        buf_str(&nb, "zqxjkv");
        buf_str(&nb, t + end);
        near_of[k] = r->line;
        near_line[k] = csv_append(&b, nb.s, r->label);
        free(nb.s);
        free(t);
    }
    for (int k = 0; k < 2; k++) {
        const reader_row *r = &re.rows[pick_e[k]];
        leak_eval_line[k] = r->line;
        leak_line[k] = csv_append(&b, r->text, r->label);
    }
    long long utf_line = csv_append(&b, "Subject: cheap \xff\xfe offer inside", "spam");
    long long empty_line = csv_append(&b, "  ", "ham");
    long long unk_line = csv_append(&b, "Subject: meeting moved to thursday afternoon", "eggs");
    write_bytes(trp, b.s, b.n);
    free(b.s);

    /* gates just above the baseline: the baseline passes them, the seeded copy must not */
    char gates[1024];
    snprintf(gates, sizeof gates,
             "\"max_invalid_rows\": %.10f, \"max_duplicate_rate\": %.10f, \"max_near_duplicate_rate\": %.10f, "
             "\"max_leakage\": %.10f, \"max_imbalance\": 0, \"report_rows\": 1000000, \"show_rows\": 50",
             ((double)bad0 + 0.5) / (double)(rows0 + 9), ((double)c0[0] + 0.5) / (double)good0,
             ((double)c0[1] + 0.5) / (double)good0, ((double)(c0[5] + leak_near0) + 0.5) / (double)egood0);
    const char *cfg1 = write_config("spam_seeded.json", data, gates);
    rc = run_validate(&out, "--config", cfg1, "--report", rep1, NULL);
    CHECK(rc == 1, "seeded validate exits 1, got %d", rc);
    CHECK(strstr(out, "exact duplicates") && strstr(out, "validate.max_duplicate_rate") &&
              strstr(out, "validate.max_near_duplicate_rate") && strstr(out, "validate.max_leakage") &&
              strstr(out, "validate.max_invalid_rows"),
          "every crossed gate is named: %.3000s", out);
    char want[1400];
    snprintf(want, sizeof want, "%s:%lld: duplicate of %s:%lld", trp, dup_line[0], trp, dup_of[0]);
    CHECK(strstr(out, want) != NULL, "stdout names the first seeded duplicate: %s", want);
    snprintf(want, sizeof want, "%s:%lld: invalid UTF-8 in the text at byte 15 (0xff)", trp, utf_line);
    CHECK(strstr(out, want) != NULL, "stdout names the bad bytes with their offset: %s", want);
    free(out);
    cJSON *seed = load_json(rep1);
    CHECK(seed != NULL, "seeded report is JSON");
    if (seed) {
        long long c1[6] = {count_of(seed, "train", "exact_duplicates"), count_of(seed, "train", "near_duplicates"),
                           count_of(seed, "train", "invalid_utf8"),     count_of(seed, "train", "empty_fields"),
                           count_of(seed, "train", "unknown_labels"),
                           num_at(cJSON_GetObjectItem(seed, "leakage"), "exact", NULL)};
        const char *what[6] = {"exact duplicates", "near duplicates", "invalid UTF-8", "empty fields", "unknown labels",
                               "exact leakage"};
        long long add[6] = {2, 2, 1, 1, 1, 2};
        for (int i = 0; i < 6; i++)
            CHECK(c1[i] == c0[i] + add[i], "%s: %lld, expected baseline %lld + %lld", what[i], c1[i], c0[i], add[i]);
        CHECK(num_at(cJSON_GetObjectItem(seed, "leakage"), "near", NULL) == leak_near0, "near leakage unchanged (%lld)",
              leak_near0);
        CHECK(count_of(seed, "eval", "exact_duplicates") == count_of(base, "eval", "exact_duplicates") &&
                  count_of(seed, "eval", "near_duplicates") == count_of(base, "eval", "near_duplicates"),
              "eval counts unchanged");
        const cJSON *d1 = check_of(seed, "train", "exact_duplicates"), *n1 = check_of(seed, "train", "near_duplicates");
        for (int k = 0; k < 2; k++) {
            const cJSON *h = hit_at(d1, dup_line[k]);
            CHECK(h && (long long)cJSON_GetObjectItem(h, "other_line")->valuedouble == dup_of[k],
                  "duplicate at line %lld points at line %lld", dup_line[k], dup_of[k]);
            h = hit_at(n1, near_line[k]);
            const cJSON *j = h ? cJSON_GetObjectItem(h, "jaccard") : NULL;
            CHECK(h && (long long)cJSON_GetObjectItem(h, "other_line")->valuedouble == near_of[k] && j &&
                      j->valuedouble >= 0.8 && j->valuedouble < 1.0,
                  "near duplicate at line %lld points at line %lld with 0.8 <= Jaccard < 1", near_line[k], near_of[k]);
            /* the leaked rows: their eval rows are reported as exact leaks of the appended train rows */
            h = hit_at(cJSON_GetObjectItem(seed, "leakage"), leak_eval_line[k]);
            CHECK(h && (long long)cJSON_GetObjectItem(h, "other_line")->valuedouble == leak_line[k],
                  "eval line %lld leaked from train line %lld", leak_eval_line[k], leak_line[k]);
        }
        CHECK(hit_at(check_of(seed, "train", "empty_fields"), empty_line) != NULL, "empty text at line %lld", empty_line);
        CHECK(hit_at(check_of(seed, "train", "unknown_labels"), unk_line) != NULL, "unknown label at line %lld", unk_line);
        CHECK(hit_at(check_of(seed, "train", "invalid_utf8"), utf_line) != NULL, "invalid UTF-8 at line %lld", utf_line);
        const cJSON *st = cJSON_GetObjectItem(seed, "status");
        CHECK(cJSON_IsString(st) && strcmp(st->valuestring, "fail") == 0, "report status fail");
        cJSON_Delete(seed);
    }
    /* the gates just above the baseline pass the baseline itself */
    write_bytes(trp, train_s, train_n);
    rc = run_validate(&out, "--config", cfg1, "--report", rep1, NULL);
    CHECK(rc == 0, "the unseeded copy passes the same gates, got %d: %.1500s", rc, out);
    free(out);
    reader_free(&rt);
    reader_free(&re);
    cJSON_Delete(base);
    free(train_s);
    free(test_s);
}

/* ---- 1b. exact seeded counts per split: declared labels, and labels from the data (`make validate`) ---- */

/* n random words of 3 syllables (4096 possible words): two such texts share no word 3-gram in practice. */
static void seed_text(slim_rng *r, int n, buf *b) {
    static const char *syl[] = {"ka", "lo", "mi", "ne", "ru", "ta", "vo", "si",
                                "de", "pa", "go", "fu", "bi", "ze", "ho", "ly"};
    for (int i = 0; i < n; i++) {
        if (i) buf_str(b, " ");
        for (int k = 0; k < 3; k++) buf_str(b, syl[slim_rng_u32(r) % 16]);
    }
}

/* A copy of t with word `at` replaced: with 60 words, 3 of 58 word 3-grams change, Jaccard 55/61 = 0.90. */
static char *seed_near(const char *t, int at) {
    buf b = {0};
    int w = 0;
    for (const char *p = t; *p;) {
        const char *e = strchr(p, ' ');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (w) buf_str(&b, " ");
        if (w == at) buf_str(&b, "zqxjkv");
        else buf_add(&b, p, n);
        w++;
        p += n;
        if (*p) p++;
    }
    return b.s;
}

/* t upper-cased with every space doubled: the same normalized input (case folded, spaces collapsed). */
static char *seed_variant(const char *t) {
    buf b = {0};
    for (const char *p = t; *p; p++) {
        char ch = *p >= 'a' && *p <= 'z' ? (char)(*p - 32) : *p;
        buf_add(&b, &ch, 1);
        if (ch == ' ') buf_str(&b, " ");
    }
    return b.s;
}

/* Writes tmpdir/<prefix>_train.csv and <prefix>_eval.csv (paths into tr, te) with labels lab[0..2]:
 *   train: 60 unique 60-word rows, labels round-robin; 3 exact duplicates (row 0 upper-cased with doubled
 *          spaces, row 1 as is, row 2 with the next label: 1 conflicting); 2 near duplicates (rows 10 and 11,
 *          one word replaced); 1 invalid UTF-8 text; 2 empty fields (a blank text, an empty label); and,
 *          when extra_train, 1 row labeled extra_train. Good rows per label: lab[0] 22, lab[1] 22, lab[2] 21.
 *   eval:  20 unique rows; 2 exact leaks (train rows 20 and 21, the second upper-cased); 1 near leak (train
 *          row 30, one word replaced); 1 exact duplicate (eval row 0); 1 near duplicate (eval row 1);
 *          1 invalid UTF-8 text; 1 empty text; and, when extra_eval, 2 rows labeled extra_eval. */
static void seed_files(const char *prefix, const char *const lab[3], const char *extra_train, const char *extra_eval,
                       char tr[600], char te[600]) {
    char name[128];
    snprintf(name, sizeof name, "%s_train.csv", prefix);
    snprintf(tr, 600, "%s", tmp_path(name));
    snprintf(name, sizeof name, "%s_eval.csv", prefix);
    snprintf(te, 600, "%s", tmp_path(name));
    slim_rng rng;
    slim_rng_seed(&rng, 77);
    char *t[60], *e[20];
    buf b = {0}, x = {0};
    buf_str(&b, "text,label\n");
    for (int i = 0; i < 60; i++) {
        buf one = {0};
        seed_text(&rng, 60, &one);
        t[i] = one.s;
        csv_append(&b, t[i], lab[i % 3]);
    }
    char *v = seed_variant(t[0]);
    csv_append(&b, v, lab[0]);
    free(v);
    csv_append(&b, t[1], lab[1]);
    csv_append(&b, t[2], lab[0]); /* row 2 is lab[2]: a conflicting duplicate */
    for (int i = 10; i <= 11; i++) {
        char *n = seed_near(t[i], 30);
        csv_append(&b, n, lab[i % 3]);
        free(n);
    }
    csv_append(&b, "caf\xe9 au lait on the terrace", lab[0]);
    csv_append(&b, "   ", lab[1]);
    csv_append(&b, "a row whose label field is empty", "");
    if (extra_train) csv_append(&b, "a row with a label of its own", extra_train);
    write_bytes(tr, b.s, b.n);

    buf_str(&x, "text,label\n");
    for (int i = 0; i < 20; i++) {
        buf one = {0};
        seed_text(&rng, 60, &one);
        e[i] = one.s;
        csv_append(&x, e[i], lab[i % 3]);
    }
    csv_append(&x, t[20], lab[20 % 3]);
    v = seed_variant(t[21]);
    csv_append(&x, v, lab[21 % 3]);
    free(v);
    char *n = seed_near(t[30], 20);
    csv_append(&x, n, lab[30 % 3]);
    free(n);
    csv_append(&x, e[0], lab[0]);
    n = seed_near(e[1], 40);
    csv_append(&x, n, lab[1]);
    free(n);
    csv_append(&x, "na\xefve \xc3 bytes", lab[2]);
    csv_append(&x, "", lab[0]);
    if (extra_eval) {
        csv_append(&x, "the first row with a label that train lacks", extra_eval);
        csv_append(&x, "the second row with a label that train lacks", extra_eval);
    }
    write_bytes(te, x.s, x.n);
    for (int i = 0; i < 60; i++) free(t[i]);
    for (int i = 0; i < 20; i++) free(e[i]);
    free(b.s);
    free(x.s);
}

/* The counts a split of seed_files must have. */
typedef struct seeded_want {
    long long rows, bad, dup, conflict, near, utf8, empty, unknown;
} seeded_want;

static void check_seeded(const cJSON *rep, const char *split, const seeded_want *w, const char *what) {
    const cJSON *sp = cJSON_GetObjectItem(cJSON_GetObjectItem(rep, "splits"), split);
    long long got[8] = {num_at(sp, "rows", NULL),
                        num_at(sp, "bad", NULL),
                        count_of(rep, split, "exact_duplicates"),
                        count_of(rep, split, "conflicting_labels"),
                        count_of(rep, split, "near_duplicates"),
                        count_of(rep, split, "invalid_utf8"),
                        count_of(rep, split, "empty_fields"),
                        count_of(rep, split, "unknown_labels")};
    long long want[8] = {w->rows, w->bad, w->dup, w->conflict, w->near, w->utf8, w->empty, w->unknown};
    static const char *name[8] = {"rows", "bad rows", "exact duplicates", "conflicting labels", "near duplicates",
                                  "invalid UTF-8", "empty fields", "unknown labels"};
    for (int i = 0; i < 8; i++)
        CHECK(got[i] == want[i], "%s: %s %s: %lld, seeded %lld", what, split, name[i], got[i], want[i]);
}

static void check_seeded_leakage(const cJSON *rep, long long exact, long long near, const char *what) {
    const cJSON *lk = cJSON_GetObjectItem(rep, "leakage");
    long long e = num_at(lk, "exact", NULL), n = num_at(lk, "near", NULL), all = num_at(lk, "count", NULL);
    CHECK(e == exact && n == near && all == exact + near, "%s: leaked eval rows %lld (%lld exact, %lld near), seeded %lld "
          "(%lld exact, %lld near)", what, all, e, n, exact + near, exact, near);
}

static void check_seeded_labels(const cJSON *rep, const char *const lab[3], const char *from, const char *what) {
    const cJSON *cnt = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(rep, "splits"), "train"), "labels"), "counts");
    long long want[3] = {22, 22, 21};
    for (int i = 0; i < 3; i++)
        CHECK(num_at(cnt, lab[i], NULL) == want[i], "%s: train label %s: %lld rows, seeded %lld", what, lab[i],
              num_at(cnt, lab[i], NULL), want[i]);
    CHECK(cJSON_GetArraySize(cnt) == 3, "%s: 3 labels counted, got %d", what, cJSON_GetArraySize(cnt));
    const cJSON *f = cJSON_GetObjectItem(rep, "labels_from");
    CHECK(cJSON_IsString(f) && strcmp(f->valuestring, from) == 0, "%s: labels_from \"%s\"", what, from);
}

/* The arguments `make validate <vars>` gives `slimtune data validate` (make -n from the repository root, the
 * caller's BUILD, no CONFIG or MAKEFLAGS inherited), into argv (NULL-terminated, pointing into line). */
static int make_validate_args(const char *vars, char *line, size_t cap, char **argv, int max) {
    char cmd[2048];
    const char *build = getenv("BUILD");
    snprintf(cmd, sizeof cmd,
             "env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u CONFIG make -n --no-print-directory validate BUILD='%s' %s 2>&1",
             build && *build ? build : "build", vars);
    FILE *f = popen(cmd, "r");
    CHECK(f != NULL, "popen %s", cmd);
    if (!f) return 0;
    int n = 0;
    while (fgets(line, (int)cap, f)) {
        char *p = strstr(line, "slimtune data validate ");
        if (!p) continue;
        p += strlen("slimtune data validate ");
        for (char *w = strtok(p, " \t\n"); w && n < max - 1; w = strtok(NULL, " \t\n")) argv[n++] = w;
        break;
    }
    while (n == 0 && fgets(cmd, sizeof cmd, f)) {}
    int st = pclose(f);
    CHECK(n > 0 && st == 0, "`make -n validate %s` prints the data validate command (status %d)", vars, st);
    argv[n] = NULL;
    return n;
}

static void test_seeded_counts(void) {
    static const char *const lab[3] = {"positive", "negative", "neutral"};
    char tr[600], te[600], rp[600], data[2048];
    char *out;

    /* 1. a config that declares the labels: "eggs" (train) and "mixed" (eval) are outside the set */
    seed_files("decl", lab, "eggs", "mixed", tr, te);
    snprintf(rp, sizeof rp, "%s", tmp_path("decl_report.json"));
    snprintf(data, sizeof data,
             "\"train\": \"%s\", \"test\": \"%s\", \"labels\": [\"positive\", \"negative\", \"neutral\"], "
             "\"max_seq_len\": 128", tr, te);
    int rc = run_validate(&out, "--config", write_config("decl.json", data, "\"report_rows\": 1000"), "--report", rp, NULL);
    CHECK(rc == 1, "declared labels: seeded faults fail the gates, exit %d: %.2000s", rc, out);
    CHECK(strstr(out, "label \"eggs\" is not in the label set\n") != NULL, "declared: eggs named as unknown: %.2000s", out);
    free(out);
    cJSON *rep = load_json(rp);
    CHECK(rep != NULL, "declared: report %s", rp);
    if (rep) {
        seeded_want wt = {.rows = 69, .bad = 4, .dup = 3, .conflict = 1, .near = 2, .utf8 = 1, .empty = 2, .unknown = 1};
        seeded_want we = {.rows = 29, .bad = 4, .dup = 1, .conflict = 0, .near = 1, .utf8 = 1, .empty = 1, .unknown = 2};
        check_seeded(rep, "train", &wt, "declared");
        check_seeded(rep, "eval", &we, "declared");
        check_seeded_leakage(rep, 2, 1, "declared");
        check_seeded_labels(rep, lab, "data.labels", "declared");
        cJSON_Delete(rep);
    }

    /* 2. the same kind of data (no foreign labels) validated as `make validate DATA= EVAL=` runs it without
     * CONFIG: the labels are the train file's, nothing is an unknown label, every check runs */
    seed_files("noconf", lab, NULL, NULL, tr, te);
    char vars[1400], line[4096], *args[24];
    snprintf(vars, sizeof vars, "DATA='%s' EVAL='%s'", tr, te);
    int na = make_validate_args(vars, line, sizeof line, args, 20);
    snprintf(rp, sizeof rp, "%s", tmp_path("noconf_report.json"));
    if (na > 0) {
        args[na] = "--report";
        args[na + 1] = rp;
        args[na + 2] = NULL;
        rc = run_capture(validate_cli, "validate", "capture.txt", &out, args);
        CHECK(rc == 1, "make validate without CONFIG: the seeded faults fail the gates, exit %d: %.2000s", rc, out);
        CHECK(strstr(out, "unknown label") == NULL && strstr(out, "is not in the label set") == NULL,
              "make validate without CONFIG: no row is an unknown label: %.2000s", out);
        free(out);
        rep = load_json(rp);
        CHECK(rep != NULL, "make validate without CONFIG: report %s", rp);
        if (rep) {
            seeded_want wt = {.rows = 68, .bad = 3, .dup = 3, .conflict = 1, .near = 2, .utf8 = 1, .empty = 2, .unknown = 0};
            seeded_want we = {.rows = 27, .bad = 2, .dup = 1, .conflict = 0, .near = 1, .utf8 = 1, .empty = 1, .unknown = 0};
            check_seeded(rep, "train", &wt, "no CONFIG");
            check_seeded(rep, "eval", &we, "no CONFIG");
            check_seeded_leakage(rep, 2, 1, "no CONFIG");
            check_seeded_labels(rep, lab, "train file", "no CONFIG");
            cJSON_Delete(rep);
        }
    }
    /* ... while the same files under a config declaring ham/spam are all unknown labels (declared labels apply
     * when a config declares them) */
    snprintf(rp, sizeof rp, "%s", tmp_path("hamspam_report.json"));
    snprintf(data, sizeof data, "\"train\": \"%s\", \"test\": \"%s\", \"labels\": [\"ham\", \"spam\"]", tr, te);
    rc = run_validate(&out, "--config", write_config("hamspam.json", data, ""), "--report", rp, NULL);
    free(out);
    rep = load_json(rp);
    CHECK(rc == 1 && rep && count_of(rep, "train", "unknown_labels") == 65 && count_of(rep, "eval", "unknown_labels") == 25 &&
              count_of(rep, "train", "exact_duplicates") == 0,
          "a config declaring ham/spam: every good row an unknown label (train %lld of 65, eval %lld of 25), exit %d",
          rep ? count_of(rep, "train", "unknown_labels") : -1, rep ? count_of(rep, "eval", "unknown_labels") : -1, rc);
    cJSON_Delete(rep);
    /* --model-config takes the model and the validate.* gates only: here open gates (exit 0), while its
     * data.labels and data.format are ignored; a missing model skips the token checks with the reason */
    char mc[600];
    snprintf(mc, sizeof mc, "%s", tmp_path("modelcfg.json"));
    const char *mct = "{\"model\": \"/nonexistent/model.gguf\", \"data\": {\"labels\": [\"ham\", \"spam\"], "
                      "\"format\": \"jsonl\"}, \"validate\": {\"max_invalid_rows\": 1, \"max_duplicate_rate\": 1, "
                      "\"max_near_duplicate_rate\": 1, \"max_leakage\": 1}}\n";
    write_bytes(mc, mct, strlen(mct));
    snprintf(rp, sizeof rp, "%s", tmp_path("modelcfg_report.json"));
    rc = run_validate(&out, "--model-config", mc, "--train", tr, "--eval", te, "--report", rp, NULL);
    CHECK(rc == 0 && strstr(out, "tokens: skipped (the model /nonexistent/model.gguf of --model-config") &&
              strstr(out, "labels unseen in train                    0                  0"),
          "--model-config: its gates, not its labels or format; tokens skipped: rc %d: %.2500s", rc, out);
    free(out);
    rep = load_json(rp);
    CHECK(rep && count_of(rep, "train", "exact_duplicates") == 3 && count_of(rep, "eval", "unknown_labels") == 0,
          "--model-config report: 3 train duplicates, no unknown label");
    cJSON_Delete(rep);
    CHECK(run_validate(&out, "--config", mc, "--model-config", mc, "--train", tr, NULL) == 2 &&
              strstr(out, "--config and --model-config exclude each other"),
          "--config with --model-config: %.500s", out);
    free(out);
    /* with CONFIG given, make validate applies that config whole */
    snprintf(vars, sizeof vars, "DATA='%s' CONFIG=configs/spam-stories260k.json", tr);
    na = make_validate_args(vars, line, sizeof line, args, 20);
    CHECK(na >= 2 && strcmp(args[0], "--config") == 0 && strcmp(args[1], "configs/spam-stories260k.json") == 0,
          "make validate CONFIG=...: --config configs/spam-stories260k.json (got %s %s)", na > 0 ? args[0] : "",
          na > 1 ? args[1] : "");

    /* 3. eval labels unseen in train are reported as such (bad rows of eval), not dropped */
    seed_files("unseen", lab, NULL, "mixed", tr, te);
    snprintf(vars, sizeof vars, "DATA='%s' EVAL='%s'", tr, te);
    na = make_validate_args(vars, line, sizeof line, args, 20);
    snprintf(rp, sizeof rp, "%s", tmp_path("unseen_report.json"));
    if (na > 0) {
        args[na] = "--report";
        args[na + 1] = rp;
        args[na + 2] = NULL;
        rc = run_capture(validate_cli, "validate", "capture.txt", &out, args);
        CHECK(rc == 1, "unseen eval labels: exit %d", rc);
        char want[800];
        snprintf(want, sizeof want, "%s:30: label \"mixed\" is not in the label set of the train file", te);
        CHECK(strstr(out, want) && strstr(out, "eval: labels unseen in train: 2"),
              "unseen eval labels named with file:line ('%s'): %.3000s", want, out);
        free(out);
        rep = load_json(rp);
        if (rep) {
            seeded_want wt = {.rows = 68, .bad = 3, .dup = 3, .conflict = 1, .near = 2, .utf8 = 1, .empty = 2, .unknown = 0};
            seeded_want we = {.rows = 29, .bad = 4, .dup = 1, .conflict = 0, .near = 1, .utf8 = 1, .empty = 1, .unknown = 2};
            check_seeded(rep, "train", &wt, "unseen");
            check_seeded(rep, "eval", &we, "unseen");
            check_seeded_leakage(rep, 2, 1, "unseen");
            cJSON_Delete(rep);
        } else {
            CHECK(0, "unseen: report %s", rp);
        }
    }
}

/* ---- 2. bad inputs, both commands ---- */

typedef struct bad_case {
    const char *name;
    const char *content;
    size_t n;           /* 0: strlen */
    const char *want;   /* in both outputs (after the tmpdir path) */
    const char *prep_want; /* prepare's message when it differs (NULL: want) */
} bad_case;

static void test_bad_corpus(void) {
    size_t big = 1 << 20;
    char *bigfield = slim_malloc(big + 256);
    size_t bn = (size_t)sprintf(bigfield, "text,label\nhello there,ham\n\"");
    for (size_t i = 0; i < big; i++) bigfield[bn++] = "lorem ipsum "[i % 12];
    bn += (size_t)sprintf(bigfield + bn, "\",spam\nshort one,ham\n");
    char *garbage = slim_malloc(8192);
    slim_rng rng;
    slim_rng_seed(&rng, 11);
    for (int i = 0; i < 8192; i++) garbage[i] = (char)(slim_rng_u32(&rng) & 0xff);
    static const char nul_csv[] = "text,label\nok,ham\nbad\0text,spam\nfine,ham\n";
    bad_case cases[] = {
        {"trunc.jsonl", "{\"text\": \"a b c\", \"label\": \"ham\"}\n{\"text\": \"b\", \"la", 0, "trunc.jsonl:2: invalid JSON", NULL},
        {"quote.csv", "text,label\nfine,ham\n\"never closed,spam\nmore,ham\n", 0, "quote.csv:3: unbalanced quote", NULL},
        {"nul.csv", nul_csv, sizeof nul_csv - 1, "nul.csv:3: NUL byte in the text", NULL},
        {"types.jsonl", "{\"text\": 5, \"label\": \"ham\"}\n{\"text\": \"x\", \"label\": [1]}\n", 0,
         "types.jsonl:1: \"text\" is a number", NULL},
        {"keys.jsonl", "{\"text\": \"x\"}\n{\"label\": \"ham\", \"text\": \"y\"}\n", 0, "keys.jsonl:1: no key \"label\"", NULL},
        {"big.csv", bigfield, bn, "big.csv", NULL},
        {"garbage.csv", garbage, 8192, "garbage.csv", NULL},
        {"empty.csv", "", 0, "empty.csv: empty file", NULL},
        {"nocol.csv", "body,cls\nhi,ham\n", 0, "nocol.csv:1: the header has no column \"text\"", NULL},
        {"wrongshape.jsonl", "{\"messages\": \"hello\"}\n", 0, "wrongshape.jsonl:1: \"messages\" is a string",
         "chat format needs a chat template"},
    };
    int n_cases = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < n_cases; i++) {
        bad_case *bc = &cases[i];
        size_t n = bc->n ? bc->n : strlen(bc->content);
        write_bytes(tmp_path(bc->name), bc->content, n);
        char data[1024], cname[96];
        snprintf(data, sizeof data, "\"train\": \"%s\", \"max_bad_rows\": 0.5", tmp_path(bc->name));
        snprintf(cname, sizeof cname, "bad_%s.json", bc->name);
        const char *cfg = write_config(cname, data, "\"max_invalid_rows\": 0.1");
        char *out;
        int rc = run_validate(&out, "--config", cfg, "--report", tmp_path("bad_report.json"), NULL);
        CHECK(rc == 1 || rc == 2 || (rc == 0 && !strcmp(bc->name, "big.csv")), "validate %s: exit %d", bc->name, rc);
        CHECK(strstr(out, bc->want) != NULL, "validate %s names '%s': %.1500s", bc->name, bc->want, out);
        free(out);
        rc = run_prepare(&out, "--config", cfg, NULL);
        CHECK(rc == 0 || rc == 2, "prepare %s: exit %d", bc->name, rc);
        const char *pw = bc->prep_want ? bc->prep_want : bc->want;
        CHECK(strstr(out, pw) != NULL, "prepare %s names '%s': %.1500s", bc->name, pw, out);
        free(out);
    }
    /* a 1 MB field: validate sees its true length and that it would be truncated */
    char data[1024];
    snprintf(data, sizeof data, "\"train\": \"%s\", \"labels\": [\"ham\", \"spam\"], \"max_seq_len\": 64", tmp_path("big.csv"));
    char *out;
    int rc = run_validate(&out, "--config", write_config("big2.json", data, ""), "--report", tmp_path("big_report.json"), NULL);
    CHECK(rc == 0, "1 MB field: exit 0: %.1500s", out);
    free(out);
    cJSON *rep = load_json(tmp_path("big_report.json"));
    CHECK(rep && count_of(rep, "train", "truncated_prompts") == 1, "1 MB field: one truncated prompt");
    const cJSON *tk = rep ? cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(rep, "splits"), "train"), "tokens") : NULL;
    CHECK(tk && num_at(tk, "max", NULL) > 100000, "1 MB field: max length is the untruncated one (%lld)",
          tk ? num_at(tk, "max", NULL) : -1);
    cJSON_Delete(rep);
    free(bigfield);
    free(garbage);

    /* usage errors and unreadable inputs: exit 2 */
    CHECK(run_validate(&out, "--bogus", NULL) == 2 && strstr(out, "--bogus") && strstr(out, "usage"), "unknown flag: %s", out);
    free(out);
    CHECK(run_validate(&out, "--show", "x", "--train", "a.csv", NULL) == 2 && strstr(out, "--show"), "bad --show: %s", out);
    free(out);
    CHECK(run_validate(&out, "--train", tmp_path("missing.csv"), NULL) == 2 && strstr(out, "missing.csv: cannot open"),
          "missing file: %s", out);
    free(out);
    CHECK(run_validate(&out, "--config", tmp_path("nothere.json"), NULL) == 2 && strstr(out, "nothere.json"),
          "missing config: %s", out);
    free(out);
    CHECK(run_validate(&out, NULL) == 2 && strstr(out, "no training file"), "no train file: %s", out);
    free(out);
    CHECK(run_validate(&out, "--help", NULL) == 0 && strstr(out, "usage: slimtune data validate"), "--help");
    free(out);
}

/* ---- 3. shapes, chat structure, --show ---- */

static void test_shapes_and_show(void) {
    /* chat structure problems, each counted and named; tokens through the llama2 chat template (whose
     * <s> / </s> markers are stories260K's BOS / EOS) */
    const char *chat =
        "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"hello\"}]}\n"
        "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"bot\", \"content\": \"x\"}]}\n"
        "{\"messages\": [{\"role\": \"user\", \"content\": \"only a question\"}]}\n"
        "{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", \"content\": \"  \"}]}\n"
        "{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"system\", \"content\": \"late\"}, "
        "{\"role\": \"assistant\", \"content\": \"a\"}]}\n"
        "{\"messages\": []}\n"
        "{\"messages\": [{\"role\": \"system\", \"content\": \"be brief\"}, {\"role\": \"user\", \"content\": \"q2\"}, "
        "{\"role\": \"assistant\", \"content\": \"a2\"}]}\n";
    write_bytes(tmp_path("chat.jsonl"), chat, strlen(chat));
    char data[1024];
    snprintf(data, sizeof data, "\"train\": \"%s\", \"chat_template\": \"llama2\"", tmp_path("chat.jsonl"));
    char cfg[600], cfg_auto[600]; /* write_config's paths rotate through a few buffers: keep copies */
    snprintf(cfg, sizeof cfg, "%s", write_config("chat.json", data, "\"max_invalid_rows\": 1"));
    char *out;
    int rc = run_validate(&out, "--config", cfg, "--report", tmp_path("chat_report.json"), "--show", "1", NULL);
    CHECK(rc == 0, "chat validate with max_invalid_rows 1: exit %d: %s", rc, out);
    CHECK(strstr(out, "chat.jsonl:2: messages[1]: unknown role \"bot\"") && strstr(out, "chat.jsonl:3: no assistant turn") &&
              strstr(out, "chat.jsonl:4: messages[1] (assistant): the content is empty") &&
              strstr(out, "chat.jsonl:5: messages[1]: a system turn after the first turn") &&
              strstr(out, "chat.jsonl:6: \"messages\" is empty"),
          "chat problems named with lines: %s", out);
    CHECK(strstr(out, "tokens (train): p50"), "chat token lengths: %s", out);
    CHECK(strstr(out, "example 1: ") && strstr(out, "chat.jsonl:1: ") && strstr(out, "[INST]"),
          "--show renders the first conversation: %s", out);
    free(out);
    /* no chat template anywhere: the token checks are skipped with the reason, the rest still runs */
    snprintf(data, sizeof data, "\"train\": \"%s\"", tmp_path("chat.jsonl"));
    snprintf(cfg_auto, sizeof cfg_auto, "%s", write_config("chat_auto.json", data, "\"max_invalid_rows\": 1"));
    rc = run_validate(&out, "--config", cfg_auto, "--report", tmp_path("chat_auto_report.json"), NULL);
    CHECK(rc == 0 && strstr(out, "tokens: skipped (") && strstr(out, "no tokenizer.chat_template"),
          "auto template without one in the model: %s", out);
    free(out);
    cJSON *rep = load_json(tmp_path("chat_report.json"));
    CHECK(rep && count_of(rep, "train", "chat_structure") == 5, "5 chat structure problems (%lld)",
          rep ? count_of(rep, "train", "chat_structure") : -1);
    const cJSON *sh = rep ? cJSON_GetObjectItem(rep, "shape") : NULL;
    CHECK(sh && strcmp(sh->valuestring, "chat") == 0, "shape chat detected");
    cJSON_Delete(rep);
    rc = run_prepare(&out, "--config", cfg_auto, NULL);
    CHECK(rc == 2 && strstr(out, "chat format needs a chat template") && strstr(out, "data.chat_template"),
          "prepare without a chat template refuses clearly: %s", out);
    free(out);
    rc = run_prepare(&out, "--config", cfg, NULL);
    CHECK(rc == 2 && strstr(out, "7 rows read, 5 bad, 2 examples") && strstr(out, "max_bad_rows"),
          "prepare with the llama2 template: 2 good conversations, 5 bad rows over max_bad_rows: %s", out);
    free(out);

    /* --show on text_label: the rendered text and per-token lines with loss marks */
    const char *csv = "text,label\nWin a free prize now,spam\nHello Bob,ham\n";
    write_bytes(tmp_path("show.csv"), csv, strlen(csv));
    snprintf(data, sizeof data, "\"train\": \"%s\", \"labels\": [\"ham\", \"spam\"]", tmp_path("show.csv"));
    rc = run_validate(&out, "--config", write_config("show.json", data, ""), "--report", tmp_path("show_report.json"),
                      "--show", "2", NULL);
    CHECK(rc == 0, "show: exit %d: %s", rc, out);
    gguf_file g;
    tokenizer tok;
    if (gguf_open(&g, model_path) == 0 && tokenizer_init_gguf(&tok, &g) == 0) {
        int32_t ids[64], comp[16];
        const char *prompt = "Text: Win a free prize now\nLabel:";
        int np = tokenizer_encode(&tok, prompt, strlen(prompt), 1, 1, ids, 64);
        int nc = tokenizer_encode(&tok, " spam", 5, 0, 0, comp, 16);
        char want[128];
        snprintf(want, sizeof want, "example 1: %s:2: %d tokens, %d with loss", tmp_path("show.csv"), np + nc + 1, nc + 1);
        CHECK(strstr(out, want) != NULL, "show header '%s': %s", want, out);
        snprintf(want, sizeof want, "  %5d %7d %4s  \"%s\"", np, comp[0], "*", tok.pieces[comp[0]]);
        CHECK(strstr(out, want) != NULL, "the first completion token carries loss: '%s'", want);
        snprintf(want, sizeof want, "  %5d %7d %4s  \"%s\"", 0, ids[0], "", tok.pieces[ids[0]]);
        CHECK(strstr(out, want) != NULL, "BOS without loss: '%s'", want);
        CHECK(strstr(out, "example 2:") && strstr(out, "text: \" Text: Hello Bob\\nLabel: ham\""), "second example text: %s",
              out);
        tokenizer_free(&tok);
        gguf_close(&g);
    } else {
        CHECK(0, "model %s: %s", model_path, slim_last_error());
    }
    free(out);

    /* prompt_completion: a completion that cannot fit is an error (exit 1) and is named */
    const char *pc = "{\"prompt\": \"Q: 2+2?\", \"completion\": \" 4\"}\n"
                     "{\"prompt\": \"Q: say a lot\", \"completion\": \" the end of a very long answer that goes on and on and on\"}\n";
    write_bytes(tmp_path("pc.jsonl"), pc, strlen(pc));
    snprintf(data, sizeof data, "\"train\": \"%s\", \"max_seq_len\": 12", tmp_path("pc.jsonl"));
    rc = run_validate(&out, "--config", write_config("pc.json", data, "\"max_invalid_rows\": 1"), "--report",
                      tmp_path("pc_report.json"), NULL);
    CHECK(rc == 1 && strstr(out, "pc.jsonl:2: the completion needs") && strstr(out, "cannot fit data.max_seq_len = 12"),
          "too-long completion fails validation: rc %d: %s", rc, out);
    free(out);
}

/* ---- 4. 100,000 rows ---- */

static void test_speed(void) {
    static const char *words[] = {"the", "cat", "sat", "on", "a", "mat", "little", "girl", "named", "lily", "loved",
                                  "to", "play", "outside", "in", "park", "one", "day", "she", "saw", "big", "red",
                                  "ball", "near", "tree", "sun", "was", "warm", "birds", "singing", "tom", "wanted",
                                  "share", "his", "toys", "with", "friends", "happy", "home", "food"};
    const int n_words = (int)(sizeof words / sizeof words[0]);
    buf b = {0};
    buf_str(&b, "text,label\n");
    slim_rng rng;
    slim_rng_seed(&rng, 3);
    for (int i = 0; i < 100000; i++) {
        int n = 15 + (int)(slim_rng_u32(&rng) % 46);
        for (int k = 0; k < n; k++) {
            const char *w = words[slim_rng_u32(&rng) % (uint32_t)n_words];
            if (k) buf_str(&b, " ");
            buf_str(&b, w);
            if (slim_rng_u32(&rng) % 4 == 0) buf_str(&b, "s");
        }
        buf_str(&b, slim_rng_u32(&rng) % 3 ? ",ham\n" : ",spam\n");
    }
    write_bytes(tmp_path("speed.csv"), b.s, b.n);
    free(b.s);
    char data[1024];
    snprintf(data, sizeof data, "\"train\": \"%s\", \"labels\": [\"ham\", \"spam\"], \"max_seq_len\": 128",
             tmp_path("speed.csv"));
    char *out;
    double t0 = slim_time_sec();
    int rc = run_validate(&out, "--config", write_config("speed.json", data, "\"max_near_duplicate_rate\": 1"),
                          "--report", tmp_path("speed_report.json"), NULL);
    double dt = slim_time_sec() - t0;
    printf("test_validate: 100,000 rows validated in %.2f s\n", dt);
    CHECK(rc == 0 || rc == 1, "100k rows: exit %d", rc);
    CHECK(strstr(out, "rows                                   100000"), "100k rows counted: %.800s", out);
    /* the time is reported, not asserted: speed is measured by `make bench` (a timed unit test would
     * fail on a loaded machine for no fault of the code) */
    free(out);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/slimtune-test-validate-XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    snprintf(model_path, sizeof model_path, "%s/models/stories260K.gguf", slim_shared_dir());
    CHECK(access(model_path, R_OK) == 0, "the shared model %s is required (set SLIM_SHARED)", model_path);
    if (access(model_path, R_OK) != 0) return tu_finish("test_validate");

    test_bad_corpus();
    test_seeded_counts();
    test_shapes_and_show();
    test_spam_assassin();
    test_speed();

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmpdir);
    return tu_finish("test_validate");
}
