/* prepare.c — `slimtune data prepare`: reads the raw rows of each split, renders the prompt and
 * completion templates, tokenizes with the base model's own tokenizer, and writes the HDF5 datasets
 * described in dataset.h. See prepare.h.
 *
 * Truncation: the prompt budget is data.max_seq_len minus the LONGEST completion + EOS over the whole
 * label set (declared data.labels, else the labels collected from the train file), never the row's
 * own completion: labels tokenize to different lengths (" ham" 2 tokens, " spam" 3), and a budget
 * that followed the row's label would give the same text a label-dependent prompt, from whose length
 * the model could learn the label. When the prompt exceeds the budget, only the {text} substitution
 * is shortened (at a UTF-8 character boundary): a binary search finds the longest prefix of the text
 * whose re-tokenized prompt still fits, so the template's suffix (e.g. "\nLabel:") and the whole
 * completion are always kept. If even the prompt without text plus the longest completion cannot
 * fit, prepare fails before tokenizing any row (every row would be too long). Rows are tokenized in
 * parallel (OpenMP); output order is source order. Either every requested split is written or none is. */
#define _GNU_SOURCE
#include "prepare.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "config.h"
#include "dataset.h"
#include "gguf.h"
#include "reader.h"
#include "tokenizer.h"

#define PREP_SHOW_LINES 3 /* file:line examples shown per bad-row reason */

/* Everything a worker thread needs to tokenize one row, shared read-only. */
typedef struct prep_ctx {
    const tokenizer *tok;
    const char *pre, *post;    /* prompt template around {text} */
    size_t pre_len, post_len;
    int n_labels;
    int32_t **comp_ids;        /* [n_labels] completion ids + EOS */
    int *comp_len;             /* [n_labels] */
    int max_comp_len;          /* max of comp_len: the completion space reserved in every row */
    int max_comp_label;        /* index of a label with that length */
    const char *max_comp_name; /* its name */
    int base_len;              /* tokens of pre + post with BOS (the prompt with an empty text) */
    int prompt_budget;         /* max_seq_len - max_comp_len: the most prompt tokens any row gets */
    int max_seq_len;
    size_t max_text_bytes;     /* a text longer than this can never fit */
} prep_ctx;

/* One tokenized row (or why it failed). */
typedef struct prep_example {
    int32_t *tokens;
    int n_tokens, prompt_len, label, truncated;
    int bad;                   /* READ_TOO_LONG when the completion cannot fit */
    int fatal;                 /* tokenizer error */
    char message[200];
} prep_example;

/* Per-split state and statistics. */
typedef struct prep_split {
    const char *name;          /* "train" / "test" */
    const char *source;        /* data file */
    data_reader rd;
    int opened;
    int64_t n_read, n_bad, n_truncated;
    int64_t bad_by_reason[READ_N_REASONS];
    int64_t shown_line[READ_N_REASONS][PREP_SHOW_LINES];
    char shown_msg[READ_N_REASONS][PREP_SHOW_LINES][200];
    slim_dataset ds;
    int max_len;
} prep_split;

static void prep_usage(FILE *f) {
    fprintf(f,
            "usage: slimtune data prepare --config FILE [--split train|test|all] [--out DIR]\n"
            "\n"
            "Tokenizes the config's data.train / data.test files (CSV or JSONL) with the base model's\n"
            "tokenizer and writes <out>/data/train.h5 and <out>/data/test.h5.\n"
            "  --config FILE   run configuration (JSON), required\n"
            "  --split S       train, test or all (default all: every split the config names)\n"
            "  --out DIR       output directory (default: the config's out_dir)\n"
            "  --help          this text\n");
}

/* Encodes text into *buf (capacity *cap, grown as needed). Returns the token count or -1. */
static int prep_encode(const tokenizer *t, const char *s, size_t n, int add_bos, int space_prefix, int32_t **buf,
                       int *cap) {
    int got = tokenizer_encode(t, s, n, add_bos, space_prefix, *buf, *cap);
    if (got > *cap) {
        *cap = got + 64;
        *buf = slim_realloc(*buf, (size_t)*cap * sizeof(int32_t));
        got = tokenizer_encode(t, s, n, add_bos, space_prefix, *buf, *cap);
    }
    return got;
}

/* Builds pre + text[0..k) + post into *scratch and returns its prompt token count (with BOS). */
static int prep_prompt_tokens(const prep_ctx *c, const char *text, size_t k, char **scratch, size_t *scap,
                              int32_t **ids, int *icap) {
    size_t n = c->pre_len + k + c->post_len;
    if (n + 1 > *scap) { *scap = n + 1; *scratch = slim_realloc(*scratch, *scap); }
    memcpy(*scratch, c->pre, c->pre_len);
    memcpy(*scratch + c->pre_len, text, k);
    memcpy(*scratch + c->pre_len + k, c->post, c->post_len);
    (*scratch)[n] = 0;
    return prep_encode(c->tok, *scratch, n, 1, 1, ids, icap);
}

/* Start of the UTF-8 character holding byte k (k itself when it is a boundary). */
static size_t prep_char_start(const char *s, size_t k) {
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
    return k;
}

/* Tokenizes one good row into e. The prompt is cut to c->prompt_budget tokens whatever the row's
 * label, so two rows with the same text get the same prompt tokens. */
static void prep_tokenize_row(const prep_ctx *c, const reader_row *row, int label, prep_example *e, char **scratch,
                              size_t *scap, int32_t **ids, int *icap) {
    e->label = label;
    int nc = c->comp_len[label];
    int budget = c->prompt_budget;
    if (c->base_len > budget) { /* prep_init_ctx refuses this; kept so a row can never overflow */
        e->bad = READ_TOO_LONG;
        snprintf(e->message, sizeof e->message,
                 "the longest completion (label \"%.40s\") needs %d tokens and the prompt without text %d: more "
                 "than data.max_seq_len = %d",
                 c->max_comp_name, c->max_comp_len, c->base_len, c->max_seq_len);
        return;
    }
    size_t k = row->text_len;
    if (k > c->max_text_bytes) { k = prep_char_start(row->text, c->max_text_bytes); e->truncated = 1; }
    int np = prep_prompt_tokens(c, row->text, k, scratch, scap, ids, icap);
    if (np < 0) goto fatal;
    if (np > budget) {
        /* longest prefix [0, lo) that fits: lo always fits, hi never does */
        size_t lo = 0, hi = k;
        e->truncated = 1;
        for (;;) {
            size_t next = lo + 1;
            while (next < hi && ((unsigned char)row->text[next] & 0xC0) == 0x80) next++;
            if (next >= hi) break;
            size_t mid = prep_char_start(row->text, lo + (hi - lo) / 2);
            if (mid <= lo) mid = next;
            int m = prep_prompt_tokens(c, row->text, mid, scratch, scap, ids, icap);
            if (m < 0) goto fatal;
            if (m <= budget) lo = mid;
            else hi = mid;
        }
        k = lo;
        np = prep_prompt_tokens(c, row->text, k, scratch, scap, ids, icap);
        if (np < 0) goto fatal;
        if (np > budget) { /* cannot happen: k = 0 gives base_len <= budget */
            e->bad = READ_TOO_LONG;
            snprintf(e->message, sizeof e->message, "cannot truncate the text to fit data.max_seq_len = %d",
                     c->max_seq_len);
            return;
        }
    }
    e->n_tokens = np + nc;
    e->prompt_len = np;
    e->tokens = slim_malloc((size_t)e->n_tokens * sizeof(int32_t));
    memcpy(e->tokens, *ids, (size_t)np * sizeof(int32_t));
    memcpy(e->tokens + np, c->comp_ids[label], (size_t)nc * sizeof(int32_t));
    return;
fatal:
    e->fatal = 1;
    snprintf(e->message, sizeof e->message, "%s", slim_last_error());
}

static void prep_note_bad(prep_split *s, int reason, int64_t line, const char *msg) {
    int64_t k = s->bad_by_reason[reason]++;
    s->n_bad++;
    if (k < PREP_SHOW_LINES) {
        s->shown_line[reason][k] = line;
        snprintf(s->shown_msg[reason][k], sizeof s->shown_msg[reason][k], "%s", msg);
    }
}

static int prep_find_label(char **names, int n, const char *label) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, cmp = strcmp(names[mid], label);
        if (cmp == 0) return mid;
        if (cmp < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

static int prep_cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Tokenizes the rows of an opened split and fills s->ds (label_names are copied from names). */
static int prep_build_split(prep_split *s, const prep_ctx *c, const slim_config *cfg, char **names, int n_names,
                            int n_threads) {
    data_reader *rd = &s->rd;
    int64_t n = rd->n_rows;
    prep_example *ex = slim_calloc((size_t)(n ? n : 1), sizeof(prep_example));
    int fatal = 0;
#pragma omp parallel num_threads(n_threads)
    {
        char *scratch = NULL;
        size_t scap = 0;
        int32_t *ids = NULL;
        int icap = 0;
#pragma omp for schedule(dynamic, 8)
        for (int64_t i = 0; i < n; i++) {
            const reader_row *row = &rd->rows[i];
            if (row->reason != READ_OK) continue;
            int label = prep_find_label(names, n_names, row->label);
            if (label < 0) { /* cannot happen: the reader checked the label set */
                ex[i].bad = READ_UNKNOWN_LABEL;
                snprintf(ex[i].message, sizeof ex[i].message, "label \"%.60s\" is not in the label set", row->label);
                continue;
            }
            prep_tokenize_row(c, row, label, &ex[i], &scratch, &scap, &ids, &icap);
        }
        free(scratch);
        free(ids);
    }

    int64_t n_good = 0, n_tok = 0;
    s->n_read = n;
    for (int64_t i = 0; i < n; i++) {
        const reader_row *row = &rd->rows[i];
        if (ex[i].fatal && !fatal) {
            fatal = slim_set_error("%s:%lld: tokenizer failed: %s", s->source, (long long)row->line, ex[i].message);
        } else if (row->reason != READ_OK) {
            prep_note_bad(s, row->reason, row->line, row->message);
        } else if (ex[i].bad) {
            prep_note_bad(s, ex[i].bad, row->line, ex[i].message);
        } else {
            n_good++;
            n_tok += ex[i].n_tokens;
            s->n_truncated += ex[i].truncated;
        }
    }
    if (!fatal) {
        slim_dataset *d = &s->ds;
        d->n_examples = n_good;
        d->n_tokens = n_tok;
        d->tokens = slim_malloc((size_t)(n_tok ? n_tok : 1) * sizeof(int32_t));
        d->loss_mask = slim_malloc((size_t)(n_tok ? n_tok : 1));
        d->offsets = slim_malloc((size_t)(n_good + 1) * sizeof(int64_t));
        d->prompt_len = slim_malloc((size_t)(n_good ? n_good : 1) * sizeof(int32_t));
        d->labels = slim_malloc((size_t)(n_good ? n_good : 1) * sizeof(int32_t));
        d->source_line = slim_malloc((size_t)(n_good ? n_good : 1) * sizeof(int64_t));
        int64_t e = 0, at = 0;
        d->offsets[0] = 0;
        for (int64_t i = 0; i < n; i++) {
            if (rd->rows[i].reason != READ_OK || ex[i].bad) continue;
            memcpy(d->tokens + at, ex[i].tokens, (size_t)ex[i].n_tokens * sizeof(int32_t));
            memset(d->loss_mask + at, 0, (size_t)ex[i].prompt_len);
            memset(d->loss_mask + at + ex[i].prompt_len, 1, (size_t)(ex[i].n_tokens - ex[i].prompt_len));
            at += ex[i].n_tokens;
            d->offsets[e + 1] = at;
            d->prompt_len[e] = ex[i].prompt_len;
            d->labels[e] = ex[i].label;
            d->source_line[e] = rd->rows[i].line;
            if (ex[i].n_tokens > s->max_len) s->max_len = ex[i].n_tokens;
            e++;
        }
        d->n_labels = n_names;
        d->label_names = slim_malloc((size_t)(n_names ? n_names : 1) * sizeof(char *));
        for (int i = 0; i < n_names; i++) d->label_names[i] = slim_strdup(names[i]);
        d->tokenizer_fingerprint = c->tok->fingerprint;
        d->model = slim_strdup(cfg->model);
        d->prompt_template = slim_strdup(cfg->prompt_template);
        d->completion_template = slim_strdup(cfg->completion_template);
        d->source_file = slim_strdup(s->source);
        d->max_seq_len = cfg->max_seq_len;
        d->n_truncated = s->n_truncated;
        d->n_bad_rows = s->n_bad;
    }
    for (int64_t i = 0; i < n; i++) free(ex[i].tokens);
    free(ex);
    return fatal;
}

/* Prints the split's summary on stderr. */
static void prep_print_summary(const prep_split *s) {
    const slim_dataset *d = &s->ds;
    double mean = d->n_examples ? (double)d->n_tokens / (double)d->n_examples : 0.0;
    fprintf(stderr,
            "data prepare: %s: %s: %lld rows read, %lld bad, %lld examples, %lld truncated, %lld tokens, "
            "length mean %.1f max %d\n",
            s->name, s->source, (long long)s->n_read, (long long)s->n_bad, (long long)d->n_examples,
            (long long)s->n_truncated, (long long)d->n_tokens, mean, s->max_len);
    for (int r = 1; r < READ_N_REASONS; r++) {
        if (!s->bad_by_reason[r]) continue;
        fprintf(stderr, "  %lld bad rows: %s\n", (long long)s->bad_by_reason[r], reader_reason_name(r));
        for (int k = 0; k < PREP_SHOW_LINES && k < s->bad_by_reason[r]; k++)
            fprintf(stderr, "    %s:%lld: %s\n", s->source, (long long)s->shown_line[r][k], s->shown_msg[r][k]);
        if (s->bad_by_reason[r] > PREP_SHOW_LINES)
            fprintf(stderr, "    ... and %lld more\n", (long long)(s->bad_by_reason[r] - PREP_SHOW_LINES));
    }
}

/* Checks the split against data.max_bad_rows and requires at least one example. */
static int prep_check_split(const prep_split *s, const slim_config *cfg) {
    if (s->n_read == 0) return slim_set_error("%s: %s split: no data rows", s->source, s->name);
    double frac = (double)s->n_bad / (double)s->n_read;
    if (frac > cfg->max_bad_rows)
        return slim_set_error("%s: %s split: %lld of %lld rows are bad (%.2f%%), more than data.max_bad_rows = "
                              "%.2f%%; nothing written",
                              s->source, s->name, (long long)s->n_bad, (long long)s->n_read, 100.0 * frac,
                              100.0 * cfg->max_bad_rows);
    if (s->ds.n_examples == 0) return slim_set_error("%s: %s split: no usable rows", s->source, s->name);
    return 0;
}

/* Parses the command line. Returns 0, 1 for --help, -1 on bad usage. */
static int prep_parse_args(int argc, char **argv, const char **config, const char **split, const char **out) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        const char *names[] = {"--config", "--split", "--out"};
        const char **dst[] = {config, split, out};
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return 1;
        int matched = 0;
        for (int k = 0; k < 3 && !matched; k++) {
            size_t n = strlen(names[k]);
            if (strcmp(a, names[k]) == 0) {
                if (i + 1 >= argc) return slim_set_error("%s needs a value", names[k]);
                v = argv[++i];
            } else if (strncmp(a, names[k], n) == 0 && a[n] == '=') {
                v = a + n + 1;
            } else {
                continue;
            }
            *dst[k] = v;
            matched = 1;
        }
        if (!matched) return slim_set_error("unknown argument \"%s\"", a);
    }
    if (!*config) return slim_set_error("--config FILE is required");
    if (strcmp(*split, "train") && strcmp(*split, "test") && strcmp(*split, "all"))
        return slim_set_error("--split must be train, test or all, not \"%s\"", *split);
    return 0;
}

/* Renders the completion for each label, tokenizes it (+ EOS), and measures the empty-text prompt. */
static int prep_init_ctx(prep_ctx *c, const tokenizer *t, const slim_config *cfg, char **names, int n_names) {
    memset(c, 0, sizeof *c);
    c->tok = t;
    c->max_seq_len = cfg->max_seq_len;
    c->n_labels = n_names;
    const char *p = strstr(cfg->prompt_template, "{text}");
    if (!p) return slim_set_error("%s: data.template.prompt: no {text}", cfg->path);
    c->pre = cfg->prompt_template;
    c->pre_len = (size_t)(p - cfg->prompt_template);
    c->post = p + 6;
    c->post_len = strlen(c->post);
    if (t->eos_id < 0) return slim_set_error("%s: the tokenizer has no EOS token", cfg->model);
    c->comp_ids = slim_calloc((size_t)n_names, sizeof(int32_t *));
    c->comp_len = slim_calloc((size_t)n_names, sizeof(int));
    const char *ct = cfg->completion_template, *lp = strstr(ct, "{label}");
    if (!lp) return slim_set_error("%s: data.template.completion: no {label}", cfg->path);
    for (int i = 0; i < n_names; i++) {
        size_t a = (size_t)(lp - ct), l = strlen(names[i]), b = strlen(lp + 7);
        char *s = slim_malloc(a + l + b + 1);
        memcpy(s, ct, a);
        memcpy(s + a, names[i], l);
        memcpy(s + a + l, lp + 7, b + 1);
        int32_t *ids = NULL;
        int cap = 0;
        int n = prep_encode(t, s, a + l + b, 0, 0, &ids, &cap);
        free(s);
        if (n < 0) { free(ids); return -1; }
        ids = slim_realloc(ids, (size_t)(n + 1) * sizeof(int32_t));
        ids[n] = t->eos_id;
        c->comp_ids[i] = ids;
        c->comp_len[i] = n + 1;
    }
    if (n_names < 1) return slim_set_error("%s: the label set is empty", cfg->path);
    c->max_comp_label = -1;
    for (int i = 0; i < n_names; i++)
        if (c->max_comp_label < 0 || c->comp_len[i] > c->max_comp_len) {
            c->max_comp_len = c->comp_len[i];
            c->max_comp_label = i;
        }
    char *scratch = NULL;
    size_t scap = 0;
    int32_t *ids = NULL;
    int icap = 0;
    c->base_len = prep_prompt_tokens(c, "", 0, &scratch, &scap, &ids, &icap);
    free(scratch);
    free(ids);
    if (c->base_len < 0) return -1;
    c->max_comp_name = names[c->max_comp_label];
    c->prompt_budget = c->max_seq_len - c->max_comp_len;
    if (c->base_len > c->prompt_budget)
        return slim_set_error("%s: data.max_seq_len = %d cannot hold the prompt without text (%d tokens) plus the "
                              "longest completion, for label \"%.60s\" (%d tokens with EOS): every row's prompt is cut "
                              "to leave room for the longest completion, so no row would fit; raise data.max_seq_len "
                              "or shorten the labels/templates",
                              cfg->path, c->max_seq_len, c->base_len, c->max_comp_name, c->max_comp_len);
    /* every token decodes to at most max_piece bytes, so a text of (max_seq_len + 1) * max_piece bytes
     * already needs more than max_seq_len tokens: longer texts are cut there before the search */
    size_t max_piece = 1;
    for (int i = 0; i < t->n_vocab; i++)
        if ((size_t)t->piece_lens[i] > max_piece) max_piece = (size_t)t->piece_lens[i];
    c->max_text_bytes = ((size_t)c->max_seq_len + 1) * max_piece;
    return 0;
}

static void prep_free_ctx(prep_ctx *c) {
    for (int i = 0; i < c->n_labels && c->comp_ids; i++) free(c->comp_ids[i]);
    free(c->comp_ids);
    free(c->comp_len);
}

int data_prepare_main(int argc, char **argv) {
    const char *config_path = NULL, *split = "all", *out_arg = NULL;
    int a = prep_parse_args(argc, argv, &config_path, &split, &out_arg);
    if (a == 1) { prep_usage(stdout); return 0; }
    if (a < 0) {
        fprintf(stderr, "slimtune data prepare: %s\n", slim_last_error());
        prep_usage(stderr);
        return 2;
    }

    slim_config cfg;
    gguf_file g;
    tokenizer tok;
    prep_ctx ctx;
    prep_split sp[2];
    int have_gguf = 0, have_tok = 0, have_ctx = 0, rc = -1;
    int n_names = 0;
    char **names = NULL;
    memset(&g, 0, sizeof g);
    memset(&tok, 0, sizeof tok);
    memset(&ctx, 0, sizeof ctx);
    memset(sp, 0, sizeof sp);
    sp[0].name = "train";
    sp[1].name = "test";
    char paths[2][4200] = {"", ""};
    int written[2] = {0, 0};

    if (config_load(&cfg, config_path)) { fprintf(stderr, "slimtune data prepare: %s\n", slim_last_error()); return 1; }
    int want[2] = {strcmp(split, "test") != 0, strcmp(split, "train") != 0};
    if (!cfg.train_file) { slim_set_error("%s: data.train: required by data prepare", config_path); goto done; }
    if (strcmp(split, "test") == 0 && !cfg.test_file) {
        slim_set_error("%s: data.test: --split test asks for it but the config names no test file", config_path);
        goto done;
    }
    if (!cfg.test_file) want[1] = 0;
    sp[0].source = cfg.train_file;
    sp[1].source = cfg.test_file;

    if (gguf_open(&g, cfg.model)) goto done;
    have_gguf = 1;
    if (tokenizer_init_gguf(&tok, &g)) goto done;
    have_tok = 1;

    /* the label set: declared (sorted), else the sorted labels of the train file's good rows */
    if (cfg.n_labels > 0) {
        n_names = cfg.n_labels;
        names = slim_malloc((size_t)n_names * sizeof(char *));
        for (int i = 0; i < n_names; i++) names[i] = cfg.labels[i];
        qsort(names, (size_t)n_names, sizeof(char *), prep_cmp_str);
    }
    if (want[0] || n_names == 0) {
        if (reader_open(&sp[0].rd, cfg.train_file, cfg.format, cfg.text_column, cfg.label_column,
                        (const char *const *)names, n_names))
            goto done;
        sp[0].opened = 1;
    }
    if (n_names == 0) {
        names = slim_malloc(sizeof(char *) * (size_t)(sp[0].rd.n_rows + 1));
        for (int64_t i = 0; i < sp[0].rd.n_rows; i++)
            if (sp[0].rd.rows[i].reason == READ_OK) names[n_names++] = sp[0].rd.rows[i].label;
        qsort(names, (size_t)n_names, sizeof(char *), prep_cmp_str);
        int u = 0;
        for (int i = 0; i < n_names; i++)
            if (u == 0 || strcmp(names[u - 1], names[i]) != 0) names[u++] = names[i];
        n_names = u;
        if (n_names == 0) { slim_set_error("%s: no labelled rows to take the label set from", cfg.train_file); goto done; }
        if (n_names > SLIM_MAX_LABELS) {
            slim_set_error("%s: %d distinct labels (more than %d): is data.columns.label right? Declare data.labels "
                           "to use a fixed set",
                           cfg.train_file, n_names, SLIM_MAX_LABELS);
            goto done;
        }
    }
    if (want[1]) {
        if (reader_open(&sp[1].rd, cfg.test_file, cfg.format, cfg.text_column, cfg.label_column,
                        (const char *const *)names, n_names))
            goto done;
        sp[1].opened = 1;
    }
    have_ctx = 1;
    if (prep_init_ctx(&ctx, &tok, &cfg, names, n_names)) goto done;

    int n_threads = cfg.threads > 0 ? cfg.threads : omp_get_max_threads();
    int failed = 0;
    for (int s = 0; s < 2; s++) {
        if (!want[s]) continue;
        if (prep_build_split(&sp[s], &ctx, &cfg, names, n_names, n_threads)) goto done;
        prep_print_summary(&sp[s]);
        if (!failed && prep_check_split(&sp[s], &cfg)) failed = 1;
    }
    if (failed) goto done;

    const char *out_dir = out_arg ? out_arg : cfg.out_dir;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/data", out_dir);
    if (slim_mkdir_p(dir)) goto done;
    for (int s = 0; s < 2; s++) {
        if (!want[s]) continue;
        snprintf(paths[s], sizeof paths[s], "%s/%s.h5", dir, sp[s].name);
        if (dataset_write(&sp[s].ds, paths[s])) goto done;
        written[s] = 1;
    }
    for (int s = 0; s < 2; s++)
        if (want[s]) fprintf(stderr, "data prepare: wrote %s\n", paths[s]);
    rc = 0;

done:
    if (rc) {
        /* all or nothing: remove a split already written in this run */
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", slim_last_error());
        for (int s = 0; s < 2; s++)
            if (written[s]) unlink(paths[s]);
        fprintf(stderr, "slimtune data prepare: %s\n", msg);
    }
    for (int s = 0; s < 2; s++) {
        if (sp[s].opened) reader_free(&sp[s].rd);
        dataset_free(&sp[s].ds);
    }
    if (have_ctx) prep_free_ctx(&ctx);
    free(names); /* the strings belong to cfg or to the train reader */
    if (have_tok) tokenizer_free(&tok);
    if (have_gguf) gguf_close(&g);
    config_free(&cfg);
    return rc ? 1 : 0;
}
