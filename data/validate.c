/* validate.c — `slimtune data validate`. See validate.h for the checks and gates.
 *
 * Pipeline: read both splits (reader.h); per good row, in parallel: the normalized input key
 * (reader_example_key), its 64-bit hash, the rendered token length (prepare.h); then, in file order,
 * exact duplicates through an open-addressing table keyed by the normalized input (hash first, bytes
 * compared on a hash match, so the result is exact); then, for the first row of every group of
 * identical inputs: the sorted set of 64-bit shingle hashes and its MinHash signature (value k =
 * min over shingles of the high 32 bits of a_k * s + b_k mod 2^64, a_k odd, from a fixed seed);
 * LSH: every (band, row) pair is keyed by a hash of the band's values, sorted, and rows sharing a key
 * are candidates; a candidate pair counts only when the exact Jaccard of the two shingle sets is at or
 * above the threshold. A row is a near duplicate when some EARLIER row of its split is (the first row of
 * a cluster is not counted), so appending rows never changes the status of the rows before them. */
#define _GNU_SOURCE
#include "validate.h"

#include <cJSON.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "config.h"
#include "format/gguf.h"
#include "format/model_file.h"
#include "cli.h"
#include "prepare.h"
#include "reader.h"
#include "split.h"
#include "tokenizer/tokenizer.h"

enum val_check_id { VC_PARSE, VC_UTF8, VC_EMPTY, VC_UNKNOWN_LABEL, VC_CHAT, VC_TOO_LONG, VC_REPLACED, VC_TRUNCATED,
                    VC_CHUNKED, VC_DUP, VC_CONFLICT, VC_NEAR, VC_N };
static const char *val_check_key[VC_N] = {"parse_errors",      "invalid_utf8",     "empty_fields",
                                          "unknown_labels",    "chat_structure",   "completion_too_long",
                                          "utf8_replaced",     "truncated_prompts", "split_into_chunks",
                                          "exact_duplicates",  "conflicting_labels", "near_duplicates"};
static const char *val_check_title[VC_N] = {"parse errors",     "invalid UTF-8",       "empty fields",
                                            "unknown labels",   "chat structure",      "completion cannot fit",
                                            "UTF-8 replaced",   "truncated prompts",   "texts split in chunks",
                                            "exact duplicates", "conflicting labels",  "near duplicates"};

/* The check a bad-row reason counts under. */
static int val_reason_check(int reason) {
    switch (reason) {
    case READ_BAD_UTF8: return VC_UTF8;
    case READ_EMPTY_TEXT:
    case READ_EMPTY_LABEL: return VC_EMPTY;
    case READ_UNKNOWN_LABEL: return VC_UNKNOWN_LABEL;
    case READ_BAD_ROLE:
    case READ_NO_ASSISTANT:
    case READ_EMPTY_TURN: return VC_CHAT;
    case READ_TOO_LONG: return VC_TOO_LONG;
    default: return VC_PARSE;
    }
}

/* One offending row: its line, and for pairs the other row's file and line. */
typedef struct val_hit {
    int64_t line;
    int64_t other_line;        /* -1 when none */
    const char *other_file;
    double jaccard;            /* < 0 when none */
    char message[200];
} val_hit;

typedef struct val_check {
    int64_t count;
    val_hit *hits;             /* the first `keep` offending rows, in file order */
    int n_hits;
} val_check;

typedef struct val_split {
    const char *name;          /* "train" / "eval" */
    data_reader *rd;
    const int8_t *assign;      /* NULL, or the split assignment of rd's rows */
    int8_t want;
    int64_t n;                 /* rows of this split */
    int64_t *idx;              /* [n] indices into rd->rows, file order */
    int64_t n_good, n_bad;
    int64_t by_reason[READ_N_REASONS];
    val_check chk[VC_N];
    int *reason;               /* [n] reader reason, or READ_TOO_LONG from rendering */
    char **key;                /* [n] normalized input (good rows) */
    size_t *key_len;
    uint64_t *key_hash;
    char **target;             /* [n] the row's target (conflict check) */
    int64_t *first;            /* [n] k of the first row with the same input (k itself for a first), -1 bad */
    uint64_t **sh;             /* [n] sorted unique shingle hashes (first rows only) */
    int *n_sh;
    uint32_t *sig;             /* [n * K] MinHash signatures (first rows only) */
    int64_t *near_of;          /* [n] earlier similar row (k), or -1 */
    float *near_j;
    int *len;                  /* [n] full token length of good rows (-1 when not rendered) */
    int *truncated, *chunked;  /* [n] */
    int64_t *leak_of;          /* eval only: [n] train row k it leaked from, -1 */
    float *leak_j;             /* eval only: Jaccard (1 for exact) */
    int64_t n_leak_exact, n_leak_near;
    int64_t *label_count;      /* [n_names] */
    int64_t n_len;
    int p50, p90, p99, pmax;
    double mean_len;
} val_split;

typedef struct val_ctx {
    const slim_config *cfg;
    gguf_file g;               /* the model (have_gguf) */
    int have_gguf;
    tokenizer tok_store;       /* its tokenizer, when tok points here */
    const tokenizer *tok;      /* NULL: no model, the token checks are skipped */
    data_reader rds[2];        /* train file, eval file */
    int opened[2];
    int8_t *assign;            /* data.split: the split of rds[0]'s rows */
    val_check leak;            /* eval rows leaked from train */
    prep_renderer rr;
    int have_rr;
    char no_tokens[300];       /* why the token checks were skipped */
    int shape;
    char **names;
    int n_names;
    int labels_from_train;     /* text_label without data.labels: the label set is the train file's */
    const char *model_config;  /* --model-config FILE, or NULL */
    int K, bands, rows_per_band;
    int word_shingles, shingle_size;
    double threshold;
    int keep;                  /* hits kept per check */
    uint64_t *mh_a, *mh_b;     /* [K] */
    val_split sp[2];
    int n_splits;
    double imbalance;
    int n_fail;
    char fail[16][300];
} val_ctx;

/* ---- small helpers ---- */

static void val_hit_add(val_ctx *c, val_check *ch, int64_t line, const char *other_file, int64_t other_line,
                        double jaccard, const char *msg) {
    ch->count++;
    if (ch->n_hits >= c->keep) return;
    ch->hits = slim_realloc(ch->hits, (size_t)(ch->n_hits + 1) * sizeof(val_hit));
    val_hit *h = &ch->hits[ch->n_hits++];
    h->line = line;
    h->other_file = other_file;
    h->other_line = other_line;
    h->jaccard = jaccard;
    snprintf(h->message, sizeof h->message, "%s", msg ? msg : "");
}

static int val_cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int val_cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return x < y ? -1 : x > y;
}

static int val_cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static const data_example *val_row(const val_split *s, int64_t k) { return &s->rd->rows[s->idx[k]]; }

/* ---- shingles, MinHash, Jaccard ---- */

/* Sorted unique shingle hashes of a normalized string (words separated by single spaces). */
static int val_shingles(const char *s, size_t n, int words, int size, uint64_t **out) {
    *out = NULL;
    if (n == 0) return 0;
    /* unit starts and ends: words, or UTF-8 characters */
    size_t cap = n + 1, nu = 0;
    size_t *st = slim_malloc(cap * sizeof(size_t)), *en = slim_malloc(cap * sizeof(size_t));
    if (words) {
        for (size_t i = 0; i < n;) {
            while (i < n && s[i] == ' ') i++;
            if (i >= n) break;
            st[nu] = i;
            while (i < n && s[i] != ' ') i++;
            en[nu++] = i;
        }
    } else {
        for (size_t i = 0; i < n; i++)
            if (((unsigned char)s[i] & 0xC0) != 0x80) {
                if (nu) en[nu - 1] = i;
                st[nu++] = i;
            }
        if (nu) en[nu - 1] = n;
    }
    size_t m = nu < (size_t)size ? (nu ? 1 : 0) : nu - (size_t)size + 1;
    uint64_t *h = slim_malloc((m ? m : 1) * sizeof(uint64_t));
    for (size_t i = 0; i < m; i++) {
        size_t last = nu < (size_t)size ? nu - 1 : i + (size_t)size - 1;
        h[i] = slim_mix64(slim_fnv1a(SLIM_FNV_INIT, s + st[i], en[last] - st[i]));
    }
    free(st);
    free(en);
    qsort(h, m, sizeof(uint64_t), val_cmp_u64);
    size_t u = 0;
    for (size_t i = 0; i < m; i++)
        if (u == 0 || h[u - 1] != h[i]) h[u++] = h[i];
    *out = h;
    return (int)u;
}

static double val_jaccard(const uint64_t *a, int na, const uint64_t *b, int nb) {
    if (na == 0 || nb == 0) return 0.0;
    int i = 0, j = 0, inter = 0;
    while (i < na && j < nb) {
        if (a[i] == b[j]) { inter++; i++; j++; }
        else if (a[i] < b[j]) i++;
        else j++;
    }
    return (double)inter / (double)(na + nb - inter);
}

/* ---- per-split analysis ---- */

/* Collects the split's rows, computes keys, targets and rendered lengths (parallel). */
static int val_scan_split(val_ctx *c, val_split *s) {
    data_reader *rd = s->rd;
    s->idx = slim_malloc((size_t)(rd->n_rows ? rd->n_rows : 1) * sizeof(int64_t));
    for (int64_t i = 0; i < rd->n_rows; i++) {
        if (s->assign && !(s->assign[i] == s->want || (s->assign[i] < 0 && s->want == 0))) continue;
        s->idx[s->n++] = i;
    }
    int64_t n = s->n;
    size_t nn = (size_t)(n ? n : 1);
    s->reason = slim_malloc(nn * sizeof(int));
    s->key = slim_calloc(nn, sizeof(char *));
    s->key_len = slim_calloc(nn, sizeof(size_t));
    s->key_hash = slim_calloc(nn, sizeof(uint64_t));
    s->target = slim_calloc(nn, sizeof(char *));
    s->first = slim_malloc(nn * sizeof(int64_t));
    s->sh = slim_calloc(nn, sizeof(uint64_t *));
    s->n_sh = slim_calloc(nn, sizeof(int));
    s->sig = slim_calloc(nn * (size_t)c->K, sizeof(uint32_t));
    s->near_of = slim_malloc(nn * sizeof(int64_t));
    s->near_j = slim_calloc(nn, sizeof(float));
    s->len = slim_malloc(nn * sizeof(int));
    s->truncated = slim_calloc(nn, sizeof(int));
    s->chunked = slim_calloc(nn, sizeof(int));
    s->leak_of = slim_malloc(nn * sizeof(int64_t));
    s->leak_j = slim_calloc(nn, sizeof(float));
    s->label_count = slim_calloc((size_t)(c->n_names ? c->n_names : 1), sizeof(int64_t));
    char **msg = slim_calloc(nn, sizeof(char *));
    int fatal = 0;
    char fatal_msg[300] = "";
#pragma omp parallel
    {
        prep_rendered w;
        memset(&w, 0, sizeof w);
#pragma omp for schedule(dynamic, 16)
        for (int64_t k = 0; k < n; k++) {
            const data_example *e = val_row(s, k);
            s->reason[k] = e->reason;
            s->len[k] = -1;
            s->near_of[k] = -1;
            s->leak_of[k] = -1;
            if (e->reason != READ_OK) continue;
            s->key[k] = reader_example_key(e, c->shape, &s->key_len[k]);
            s->key_hash[k] = slim_mix64(slim_fnv1a(SLIM_FNV_INIT, s->key[k], s->key_len[k]));
            s->target[k] = reader_example_target(e, c->shape);
            if (!c->have_rr) continue;
            if (prep_render(&c->rr, e, 1, &w)) {
#pragma omp critical
                if (!fatal) { fatal = 1; snprintf(fatal_msg, sizeof fatal_msg, "%s", slim_last_error()); }
                continue;
            }
            s->len[k] = w.full_len;
            if (w.bad) {
                s->reason[k] = w.bad;
                msg[k] = slim_strdup(w.message);
                continue;
            }
            s->truncated[k] = w.truncated;
            s->chunked[k] = c->shape == SHAPE_TEXT && w.full_len > c->cfg->max_seq_len;
        }
        prep_rendered_free(&w);
    }
    if (fatal) {
        for (int64_t k = 0; k < n; k++) free(msg[k]);
        free(msg);
        return slim_set_error("%s: tokenizer failed: %s", rd->path, fatal_msg);
    }
    /* counts and the first offending rows, in file order */
    for (int64_t k = 0; k < n; k++) {
        const data_example *e = val_row(s, k);
        int r = s->reason[k];
        if (r != READ_OK) {
            s->n_bad++;
            s->by_reason[r]++;
            if (r == READ_UNKNOWN_LABEL && c->labels_from_train && !msg[k]) {
                /* the set is the train file's labels: the row's label is unseen in train */
                size_t ml = strlen(e->message) + 40;
                msg[k] = slim_malloc(ml);
                snprintf(msg[k], ml, "%s of the train file", e->message);
            }
            val_hit_add(c, &s->chk[val_reason_check(r)], e->line, NULL, -1, -1, msg[k] ? msg[k] : e->message);
            continue;
        }
        s->n_good++;
        if (e->utf8_replaced) val_hit_add(c, &s->chk[VC_REPLACED], e->line, NULL, -1, -1, e->message);
        if (s->truncated[k]) val_hit_add(c, &s->chk[VC_TRUNCATED], e->line, NULL, -1, -1, "the prompt is truncated");
        if (s->chunked[k]) {
            char m[120];
            snprintf(m, sizeof m, "%d tokens: %lld chunks", s->len[k],
                     (long long)prep_text_chunks(s->len[k], c->cfg->max_seq_len, c->rr.add_bos));
            val_hit_add(c, &s->chk[VC_CHUNKED], e->line, NULL, -1, -1, m);
        }
        if (c->shape == SHAPE_TEXT_LABEL && e->label) {
            char *lab = e->label;
            char **f = bsearch(&lab, c->names, (size_t)c->n_names, sizeof(char *), val_cmp_str);
            if (f) s->label_count[f - c->names]++;
        }
    }
    for (int64_t k = 0; k < n; k++) free(msg[k]);
    free(msg);
    /* token length distribution (nearest rank) */
    if (c->have_rr) {
        int *l = slim_malloc(nn * sizeof(int));
        double sum = 0;
        for (int64_t k = 0; k < n; k++)
            if (s->len[k] >= 0) { l[s->n_len++] = s->len[k]; sum += s->len[k]; }
        if (s->n_len) {
            qsort(l, (size_t)s->n_len, sizeof(int), val_cmp_int);
            int64_t m = s->n_len;
            s->p50 = l[(int64_t)ceil(0.50 * (double)m) - 1];
            s->p90 = l[(int64_t)ceil(0.90 * (double)m) - 1];
            s->p99 = l[(int64_t)ceil(0.99 * (double)m) - 1];
            s->pmax = l[m - 1];
            s->mean_len = sum / (double)m;
        }
        free(l);
    }
    return 0;
}

/* Open-addressing table of first rows keyed by normalized input. */
typedef struct val_table {
    const val_split *s;
    int64_t *slot;
    size_t mask;
} val_table;

static void val_table_init(val_table *t, const val_split *s) {
    size_t cap = 16;
    while (cap < 2 * (size_t)s->n + 2) cap *= 2;
    t->s = s;
    t->slot = slim_malloc(cap * sizeof(int64_t));
    for (size_t i = 0; i < cap; i++) t->slot[i] = -1;
    t->mask = cap - 1;
}

/* The table's row with this key, or -1; insert_k >= 0 inserts it when absent. */
static int64_t val_table_find(val_table *t, const char *key, size_t len, uint64_t h, int64_t insert_k) {
    const val_split *s = t->s;
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
        int64_t k = t->slot[i];
        if (k < 0) {
            if (insert_k >= 0) t->slot[i] = insert_k;
            return -1;
        }
        if (s->key_hash[k] == h && s->key_len[k] == len && memcmp(s->key[k], key, len) == 0) return k;
    }
}

static void val_exact_dups(val_ctx *c, val_split *s) {
    val_table t;
    val_table_init(&t, s);
    const char *file = s->rd->path;
    for (int64_t k = 0; k < s->n; k++) {
        s->first[k] = -1;
        if (s->reason[k] != READ_OK) continue;
        int64_t f = val_table_find(&t, s->key[k], s->key_len[k], s->key_hash[k], k);
        s->first[k] = f < 0 ? k : f;
        if (f < 0) continue;
        int64_t line = val_row(s, k)->line, fline = val_row(s, f)->line;
        char m[200];
        snprintf(m, sizeof m, "duplicate of %s:%lld", file, (long long)fline);
        val_hit_add(c, &s->chk[VC_DUP], line, file, fline, 1.0, m);
        if (strcmp(s->target[k], s->target[f]) != 0) {
            snprintf(m, sizeof m, "same input as %s:%lld, different %s", file, (long long)fline,
                     c->shape == SHAPE_TEXT_LABEL ? "label" : "target");
            val_hit_add(c, &s->chk[VC_CONFLICT], line, file, fline, 1.0, m);
        }
    }
    free(t.slot);
}

/* Shingles and MinHash signatures of the first rows (parallel). */
static void val_signatures(val_ctx *c, val_split *s) {
    int K = c->K;
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t k = 0; k < s->n; k++) {
        if (s->reason[k] != READ_OK || s->first[k] != k) continue;
        s->n_sh[k] = val_shingles(s->key[k], s->key_len[k], c->word_shingles, c->shingle_size, &s->sh[k]);
        uint32_t *sig = s->sig + (size_t)k * (size_t)K;
        for (int j = 0; j < K; j++) sig[j] = UINT32_MAX;
        const uint64_t *sh = s->sh[k];
        for (int i = 0; i < s->n_sh[k]; i++) {
            uint64_t x = sh[i];
            for (int j = 0; j < K; j++) {
                uint32_t v = (uint32_t)((c->mh_a[j] * x + c->mh_b[j]) >> 32);
                if (v < sig[j]) sig[j] = v;
            }
        }
    }
}

typedef struct val_entry { uint64_t key; int64_t gid; } val_entry;

static int val_cmp_entry(const void *a, const void *b) {
    const val_entry *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->gid < y->gid ? -1 : x->gid > y->gid;
}

/* Near duplicates within each split and near leakage eval -> train, through LSH buckets. */
static void val_near(val_ctx *c) {
    int64_t base[2] = {0, c->sp[0].n};
    int64_t n_ent = 0;
    for (int s = 0; s < c->n_splits; s++)
        for (int64_t k = 0; k < c->sp[s].n; k++) n_ent += c->sp[s].n_sh[k] > 0;
    n_ent *= c->bands;
    val_entry *e = slim_malloc((size_t)(n_ent ? n_ent : 1) * sizeof(val_entry));
    int64_t m = 0;
    for (int s = 0; s < c->n_splits; s++) {
        val_split *sp = &c->sp[s];
        for (int64_t k = 0; k < sp->n; k++) {
            if (sp->n_sh[k] == 0) continue;
            const uint32_t *sig = sp->sig + (size_t)k * (size_t)c->K;
            for (int b = 0; b < c->bands; b++) {
                uint64_t h = slim_fnv1a(SLIM_FNV_INIT, &b, sizeof b);
                h = slim_fnv1a(h, sig + b * c->rows_per_band, (size_t)c->rows_per_band * sizeof(uint32_t));
                e[m].key = slim_mix64(h);
                e[m].gid = base[s] + k;
                m++;
            }
        }
    }
    qsort(e, (size_t)m, sizeof(val_entry), val_cmp_entry);
    double t = c->threshold;
    for (int64_t a = 0; a < m;) {
        int64_t b = a + 1;
        while (b < m && e[b].key == e[a].key) b++;
        for (int64_t j = a + 1; j < b; j++) {
            int sj = e[j].gid >= base[1] && c->n_splits > 1;
            val_split *S = &c->sp[sj];
            int64_t kj = e[j].gid - base[sj];
            /* within the split: an earlier row of the same split */
            if (S->near_of[kj] < 0) {
                for (int64_t i = a; i < j; i++) {
                    int si = e[i].gid >= base[1] && c->n_splits > 1;
                    if (si != sj) continue;
                    int64_t ki = e[i].gid - base[si];
                    double jac = val_jaccard(S->sh[ki], S->n_sh[ki], S->sh[kj], S->n_sh[kj]);
                    if (jac >= t) { S->near_of[kj] = ki; S->near_j[kj] = (float)jac; break; }
                }
            }
            /* leakage: an eval row similar to any train row */
            if (sj == 1 && S->leak_of[kj] < 0) {
                val_split *T = &c->sp[0];
                for (int64_t i = a; i < b && e[i].gid < base[1]; i++) {
                    int64_t ki = e[i].gid;
                    double jac = val_jaccard(T->sh[ki], T->n_sh[ki], S->sh[kj], S->n_sh[kj]);
                    if (jac >= t) { S->leak_of[kj] = ki; S->leak_j[kj] = (float)jac; break; }
                }
            }
        }
        a = b;
    }
    free(e);
    /* hits in file order */
    for (int s = 0; s < c->n_splits; s++) {
        val_split *sp = &c->sp[s];
        const char *file = sp->rd->path;
        for (int64_t k = 0; k < sp->n; k++) {
            if (sp->near_of[k] < 0) continue;
            int64_t ol = val_row(sp, sp->near_of[k])->line;
            char msg[200];
            snprintf(msg, sizeof msg, "similar to %s:%lld (Jaccard %.3f)", file, (long long)ol, sp->near_j[k]);
            val_hit_add(c, &sp->chk[VC_NEAR], val_row(sp, k)->line, file, ol, sp->near_j[k], msg);
        }
    }
}

/* Exact leakage (every good eval row) and the near leakage of first rows passed on to their duplicates. */
static void val_leakage(val_ctx *c, val_check *leak) {
    if (c->n_splits < 2) return;
    val_split *T = &c->sp[0], *E = &c->sp[1];
    val_table t;
    val_table_init(&t, T);
    for (int64_t k = 0; k < T->n; k++)
        if (T->reason[k] == READ_OK && T->first[k] == k) val_table_find(&t, T->key[k], T->key_len[k], T->key_hash[k], k);
    /* exact first (takes precedence over a near match found through LSH) */
    int64_t *exact = slim_malloc((size_t)(E->n ? E->n : 1) * sizeof(int64_t));
    for (int64_t k = 0; k < E->n; k++) {
        exact[k] = -1;
        if (E->reason[k] == READ_OK) exact[k] = val_table_find(&t, E->key[k], E->key_len[k], E->key_hash[k], -1);
    }
    free(t.slot);
    for (int64_t k = 0; k < E->n; k++) {
        if (E->reason[k] != READ_OK) continue;
        const data_example *row = val_row(E, k);
        char msg[200];
        if (exact[k] >= 0) {
            int64_t tl = val_row(T, exact[k])->line;
            E->n_leak_exact++;
            snprintf(msg, sizeof msg, "exact: the same input as %s:%lld", T->rd->path, (long long)tl);
            val_hit_add(c, leak, row->line, T->rd->path, tl, 1.0, msg);
            continue;
        }
        int64_t f = E->first[k];
        if (f >= 0 && exact[f] < 0 && E->leak_of[f] >= 0) {
            int64_t tl = val_row(T, E->leak_of[f])->line;
            E->n_leak_near++;
            snprintf(msg, sizeof msg, "near: similar to %s:%lld (Jaccard %.3f)", T->rd->path, (long long)tl,
                     E->leak_j[f]);
            val_hit_add(c, leak, row->line, T->rd->path, tl, E->leak_j[f], msg);
        }
    }
    free(exact);
}

static void val_split_free(val_ctx *c, val_split *s) {
    for (int64_t k = 0; k < s->n; k++) {
        if (s->key) free(s->key[k]);
        if (s->target) free(s->target[k]);
        if (s->sh) free(s->sh[k]);
    }
    for (int i = 0; i < VC_N; i++) free(s->chk[i].hits);
    (void)c;
    free(s->idx); free(s->reason); free(s->key); free(s->key_len); free(s->key_hash); free(s->target);
    free(s->first); free(s->sh); free(s->n_sh); free(s->sig); free(s->near_of); free(s->near_j); free(s->len);
    free(s->truncated); free(s->chunked); free(s->leak_of); free(s->leak_j); free(s->label_count);
}

/* ---- gates, output ---- */

static double val_rate(int64_t a, int64_t b) { return b > 0 ? (double)a / (double)b : 0.0; }

static void val_fail(val_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void val_fail(val_ctx *c, const char *fmt, ...) {
    if (c->n_fail >= 16) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->fail[c->n_fail++], sizeof c->fail[0], fmt, ap);
    va_end(ap);
}

static void val_gates(val_ctx *c, const val_check *leak) {
    const slim_config *g = c->cfg;
    for (int s = 0; s < c->n_splits; s++) {
        const val_split *sp = &c->sp[s];
        int64_t rows = sp->n;
        if (rows == 0) { val_fail(c, "%s: no data rows", sp->name); continue; }
        if (sp->n_good == 0) val_fail(c, "%s: no usable rows", sp->name);
        double r = val_rate(sp->n_bad, rows);
        if (r > g->val_max_invalid_rows)
            val_fail(c, "%s: %lld of %lld rows are bad (%.2f%%) > validate.max_invalid_rows %.2f%%", sp->name,
                     (long long)sp->n_bad, (long long)rows, 100 * r, 100 * g->val_max_invalid_rows);
        r = val_rate(sp->chk[VC_DUP].count, sp->n_good);
        if (r > g->val_max_duplicate_rate)
            val_fail(c, "%s: exact duplicates %.2f%% > validate.max_duplicate_rate %.2f%%", sp->name, 100 * r,
                     100 * g->val_max_duplicate_rate);
        r = val_rate(sp->chk[VC_NEAR].count, sp->n_good);
        if (r > g->val_max_near_duplicate_rate)
            val_fail(c, "%s: near duplicates %.2f%% > validate.max_near_duplicate_rate %.2f%%", sp->name, 100 * r,
                     100 * g->val_max_near_duplicate_rate);
        if (sp->chk[VC_TOO_LONG].count > 0)
            val_fail(c, "%s: %lld completions cannot fit data.max_seq_len = %d", sp->name,
                     (long long)sp->chk[VC_TOO_LONG].count, g->max_seq_len);
    }
    if (c->n_splits > 1) {
        double r = val_rate(leak->count, c->sp[1].n_good);
        if (r > g->val_max_leakage)
            val_fail(c, "eval: %lld rows (%.2f%%) also in train (%lld exact, %lld near) > validate.max_leakage %.2f%%",
                     (long long)leak->count, 100 * r, (long long)c->sp[1].n_leak_exact, (long long)c->sp[1].n_leak_near,
                     100 * g->val_max_leakage);
    }
    if (c->shape == SHAPE_TEXT_LABEL && g->val_max_imbalance > 0 && c->imbalance > g->val_max_imbalance)
        val_fail(c, "train: label imbalance %.2f > validate.max_imbalance %.2f", c->imbalance, g->val_max_imbalance);
}

/* A check's title in the output: labels outside a set collected from the train file are unseen in train. */
static const char *val_title(const val_ctx *c, int check) {
    if (check == VC_UNKNOWN_LABEL && c->labels_from_train) return "labels unseen in train";
    return val_check_title[check];
}

static void val_print_row(const char *name, int64_t a, int64_t a_of, int64_t b, int64_t b_of, int two,
                          const char *gate) {
    char x[40], y[40] = "";
    if (a_of > 0) snprintf(x, sizeof x, "%lld (%.2f%%)", (long long)a, 100.0 * (double)a / (double)a_of);
    else snprintf(x, sizeof x, "%lld", (long long)a);
    if (two) {
        if (b_of > 0) snprintf(y, sizeof y, "%lld (%.2f%%)", (long long)b, 100.0 * (double)b / (double)b_of);
        else snprintf(y, sizeof y, "%lld", (long long)b);
    }
    printf("  %-26s %18s %18s  %s\n", name, x, y, gate ? gate : "");
}

static void val_print(val_ctx *c, const val_check *leak) {
    const slim_config *g = c->cfg;
    int two = c->n_splits > 1;
    val_split *T = &c->sp[0], *E = two ? &c->sp[1] : &c->sp[0];
    for (int s = 0; s < c->n_splits; s++)
        printf("data validate: %s: %s (%s, %s, %lld bytes, sha256 %.16s...)\n", c->sp[s].name, c->sp[s].rd->path,
               c->sp[s].rd->format == FORMAT_JSONL ? "jsonl" : c->sp[s].rd->format == FORMAT_TSV ? "tsv" : "csv",
               example_shape_name(c->shape), (long long)c->sp[s].rd->size, c->sp[s].rd->sha256);
    char gate[80];
    printf("  %-26s %18s %18s  %s\n", "check", "train", two ? "eval" : "", "gate");
    val_print_row("rows", T->n, 0, E->n, 0, two, NULL);
    snprintf(gate, sizeof gate, "max_invalid_rows %.2f%%", 100 * g->val_max_invalid_rows);
    val_print_row("bad rows", T->n_bad, T->n, E->n_bad, E->n, two, gate);
    for (int i = VC_PARSE; i <= VC_CHAT; i++) {
        char name[64];
        snprintf(name, sizeof name, "  %s", val_title(c, i));
        val_print_row(name, T->chk[i].count, 0, E->chk[i].count, 0, two, NULL);
    }
    val_print_row("  completion cannot fit", T->chk[VC_TOO_LONG].count, 0, E->chk[VC_TOO_LONG].count, 0, two,
                  "error");
    val_print_row(val_check_title[VC_REPLACED], T->chk[VC_REPLACED].count, 0, E->chk[VC_REPLACED].count, 0, two,
                  NULL);
    snprintf(gate, sizeof gate, "max_duplicate_rate %.2f%%", 100 * g->val_max_duplicate_rate);
    val_print_row("exact duplicates", T->chk[VC_DUP].count, T->n_good, E->chk[VC_DUP].count, E->n_good, two, gate);
    val_print_row("  conflicting labels", T->chk[VC_CONFLICT].count, 0, E->chk[VC_CONFLICT].count, 0, two, NULL);
    char name[64];
    snprintf(name, sizeof name, "near duplicates (J>=%.2f)", c->threshold);
    snprintf(gate, sizeof gate, "max_near_duplicate_rate %.2f%%", 100 * g->val_max_near_duplicate_rate);
    val_print_row(name, T->chk[VC_NEAR].count, T->n_good, E->chk[VC_NEAR].count, E->n_good, two, gate);
    if (two) {
        snprintf(gate, sizeof gate, "max_leakage %.2f%%", 100 * g->val_max_leakage);
        val_print_row("eval rows found in train", 0, 0, leak->count, E->n_good, 1, gate);
        val_print_row("  exact", 0, 0, E->n_leak_exact, 0, 1, NULL);
        val_print_row("  near", 0, 0, E->n_leak_near, 0, 1, NULL);
    }
    if (c->have_rr) {
        val_print_row(val_check_title[VC_TRUNCATED], T->chk[VC_TRUNCATED].count, T->n_good,
                      E->chk[VC_TRUNCATED].count, E->n_good, two, NULL);
        if (c->shape == SHAPE_TEXT)
            val_print_row(val_check_title[VC_CHUNKED], T->chk[VC_CHUNKED].count, T->n_good, E->chk[VC_CHUNKED].count,
                          E->n_good, two, NULL);
        for (int s = 0; s < c->n_splits; s++) {
            const val_split *sp = &c->sp[s];
            printf("  tokens (%s): p50 %d, p90 %d, p99 %d, max %d, mean %.1f (data.max_seq_len %d)\n", sp->name,
                   sp->p50, sp->p90, sp->p99, sp->pmax, sp->mean_len, g->max_seq_len);
        }
    } else {
        printf("  tokens: skipped (%s)\n", c->no_tokens);
    }
    if (c->shape == SHAPE_TEXT_LABEL) {
        for (int s = 0; s < c->n_splits; s++) {
            const val_split *sp = &c->sp[s];
            printf("  labels (%s):", sp->name);
            for (int i = 0; i < c->n_names; i++)
                printf(" %s %lld (%.1f%%)%s", c->names[i], (long long)sp->label_count[i],
                       100.0 * val_rate(sp->label_count[i], sp->n_good),
                       sp->label_count[i] < g->val_min_label_count ? " RARE" : "");
            printf("\n");
        }
        printf("  imbalance (train): %.2f (largest / smallest label count; gate max_imbalance %s)\n", c->imbalance,
               g->val_max_imbalance > 0 ? "on" : "off");
    }
    /* first offending rows */
    for (int s = 0; s < c->n_splits; s++) {
        const val_split *sp = &c->sp[s];
        for (int i = 0; i < VC_N; i++) {
            const val_check *ch = &sp->chk[i];
            if (!ch->count || g->val_show_rows == 0) continue;
            printf("%s: %s: %lld\n", sp->name, val_title(c, i), (long long)ch->count);
            for (int k = 0; k < ch->n_hits && k < g->val_show_rows; k++)
                printf("  %s:%lld: %s\n", sp->rd->path, (long long)ch->hits[k].line, ch->hits[k].message);
            if (ch->count > g->val_show_rows && ch->count > ch->n_hits && g->val_show_rows >= ch->n_hits)
                printf("  ... and %lld more\n", (long long)(ch->count - ch->n_hits));
            else if (ch->count > g->val_show_rows)
                printf("  ... and %lld more\n", (long long)(ch->count - g->val_show_rows));
        }
    }
    if (two && leak->count && g->val_show_rows > 0) {
        printf("eval rows found in train: %lld\n", (long long)leak->count);
        for (int k = 0; k < leak->n_hits && k < g->val_show_rows; k++)
            printf("  %s:%lld: %s\n", E->rd->path, (long long)leak->hits[k].line, leak->hits[k].message);
        if (leak->count > g->val_show_rows) printf("  ... and %lld more\n", (long long)(leak->count - g->val_show_rows));
    }
}

static cJSON *val_json_check(const val_check *ch, int64_t of) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "count", (double)ch->count);
    if (of >= 0) cJSON_AddNumberToObject(o, "rate", val_rate(ch->count, of));
    cJSON *rows = cJSON_AddArrayToObject(o, "rows");
    for (int k = 0; k < ch->n_hits; k++) {
        const val_hit *h = &ch->hits[k];
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "line", (double)h->line);
        if (h->other_line >= 0) {
            cJSON_AddStringToObject(r, "other_file", h->other_file ? h->other_file : "");
            cJSON_AddNumberToObject(r, "other_line", (double)h->other_line);
        }
        if (h->jaccard >= 0) cJSON_AddNumberToObject(r, "jaccard", h->jaccard);
        cJSON_AddStringToObject(r, "message", h->message);
        cJSON_AddItemToArray(rows, r);
    }
    return o;
}

/* Adds the numbers v[0..n) to o under keys[0..n), in order. */
static void val_json_numbers(cJSON *o, const char *const *keys, const double *v, int n) {
    for (int i = 0; i < n; i++) cJSON_AddNumberToObject(o, keys[i], v[i]);
}

static int val_write_json(val_ctx *c, const val_check *leak, const char *path, int status) {
    const slim_config *g = c->cfg;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "status", status == 0 ? "pass" : "fail");
    cJSON_AddNumberToObject(root, "exit_code", status);
    cJSON *fails = cJSON_AddArrayToObject(root, "failures");
    for (int i = 0; i < c->n_fail; i++) cJSON_AddItemToArray(fails, cJSON_CreateString(c->fail[i]));
    if (g->path) cJSON_AddStringToObject(root, "config", g->path);
    if (g->model) cJSON_AddStringToObject(root, "model", g->model);
    if (c->tok) {
        char fp[32];
        snprintf(fp, sizeof fp, "%016llx", (unsigned long long)c->tok->fingerprint);
        cJSON_AddStringToObject(root, "tokenizer_fingerprint", fp);
    }
    if (c->model_config) cJSON_AddStringToObject(root, "model_config", c->model_config);
    cJSON_AddStringToObject(root, "shape", example_shape_name(c->shape));
    if (c->shape == SHAPE_TEXT_LABEL)
        cJSON_AddStringToObject(root, "labels_from", c->labels_from_train ? "train file" : "data.labels");
    if (!c->have_rr) cJSON_AddStringToObject(root, "tokens_skipped", c->no_tokens);
    cJSON *th = cJSON_AddObjectToObject(root, "thresholds");
    static const char *const gate_keys[] = {"max_invalid_rows", "max_duplicate_rate", "max_near_duplicate_rate",
                                            "max_leakage", "max_imbalance", "near_duplicate_threshold"};
    const double gates[] = {g->val_max_invalid_rows, g->val_max_duplicate_rate, g->val_max_near_duplicate_rate,
                            g->val_max_leakage, g->val_max_imbalance, c->threshold};
    val_json_numbers(th, gate_keys, gates, 6);
    cJSON_AddStringToObject(th, "shingle", c->word_shingles ? "word" : "char");
    static const char *const shingle_keys[] = {"shingle_size", "minhash_bands", "minhash_rows"};
    const double shingles[] = {c->shingle_size, c->bands, c->rows_per_band};
    val_json_numbers(th, shingle_keys, shingles, 3);
    cJSON *splits = cJSON_AddObjectToObject(root, "splits");
    for (int s = 0; s < c->n_splits; s++) {
        const val_split *sp = &c->sp[s];
        cJSON *o = cJSON_AddObjectToObject(splits, sp->name);
        cJSON_AddStringToObject(o, "file", sp->rd->path);
        cJSON_AddStringToObject(o, "sha256", sp->rd->sha256);
        cJSON_AddNumberToObject(o, "bytes", (double)sp->rd->size);
        cJSON_AddStringToObject(o, "format",
                                sp->rd->format == FORMAT_JSONL ? "jsonl" : sp->rd->format == FORMAT_TSV ? "tsv" : "csv");
        if (sp->assign) cJSON_AddStringToObject(o, "split", sp->want ? "test part of data.split" : "train part of data.split");
        cJSON_AddNumberToObject(o, "rows", (double)sp->n);
        cJSON_AddNumberToObject(o, "good", (double)sp->n_good);
        cJSON_AddNumberToObject(o, "bad", (double)sp->n_bad);
        cJSON_AddNumberToObject(o, "bad_rate", val_rate(sp->n_bad, sp->n));
        cJSON *br = cJSON_AddObjectToObject(o, "bad_by_reason");
        for (int r = 1; r < READ_N_REASONS; r++)
            if (sp->by_reason[r]) cJSON_AddNumberToObject(br, reader_reason_name(r), (double)sp->by_reason[r]);
        cJSON *checks = cJSON_AddObjectToObject(o, "checks");
        for (int i = 0; i < VC_N; i++)
            cJSON_AddItemToObject(checks, val_check_key[i],
                                  val_json_check(&sp->chk[i], i == VC_DUP || i == VC_NEAR ? sp->n_good : -1));
        if (c->shape == SHAPE_TEXT_LABEL) {
            cJSON *lab = cJSON_AddObjectToObject(o, "labels");
            cJSON *cnt = cJSON_AddObjectToObject(lab, "counts");
            cJSON *rare = cJSON_AddArrayToObject(lab, "rare");
            for (int i = 0; i < c->n_names; i++) {
                cJSON_AddNumberToObject(cnt, c->names[i], (double)sp->label_count[i]);
                if (sp->label_count[i] < g->val_min_label_count) cJSON_AddItemToArray(rare, cJSON_CreateString(c->names[i]));
            }
            if (s == 0) {
                if (isfinite(c->imbalance)) cJSON_AddNumberToObject(lab, "imbalance", c->imbalance);
                else cJSON_AddStringToObject(lab, "imbalance", "infinite");
            }
        }
        if (c->have_rr) {
            static const char *const len_keys[] = {"p50", "p90", "p99", "max", "mean", "max_seq_len"};
            const double lens[] = {sp->p50, sp->p90, sp->p99, sp->pmax, sp->mean_len, g->max_seq_len};
            val_json_numbers(cJSON_AddObjectToObject(o, "tokens"), len_keys, lens, 6);
        }
    }
    if (c->n_splits > 1) {
        cJSON *lk = val_json_check(leak, c->sp[1].n_good);
        cJSON_AddNumberToObject(lk, "exact", (double)c->sp[1].n_leak_exact);
        cJSON_AddNumberToObject(lk, "near", (double)c->sp[1].n_leak_near);
        cJSON_AddItemToObject(root, "leakage", lk);
    }
    char *json = cJSON_Print(root);
    cJSON_Delete(root);
    if (!json) return slim_set_error("%s: cannot format the report", path);
    char dir[4096];
    if (slim_format_path(dir, sizeof dir, "%s", path)) { cJSON_free(json); return -1; }
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) { *slash = 0; if (slim_mkdir_p(dir)) { cJSON_free(json); return -1; } }
    int rc = slim_write_text_line(path, json);
    cJSON_free(json);
    return rc;
}

/* Prints a piece with control bytes and quotes escaped. */
static void val_put_escaped(const char *s, size_t n) {
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\n') fputs("\\n", stdout);
        else if (ch == '\t') fputs("\\t", stdout);
        else if (ch == '\r') fputs("\\r", stdout);
        else if (ch == '"' || ch == '\\') { putchar('\\'); putchar(ch); }
        else if (ch < 0x20 || ch == 0x7f) printf("\\x%02x", ch);
        else putchar(ch);
    }
    putchar('"');
}

static void val_show(val_ctx *c, int n_show) {
    if (n_show <= 0) return;
    if (!c->have_rr) {
        printf("--show: nothing to render (%s)\n", c->no_tokens);
        return;
    }
    const val_split *s = &c->sp[0];
    prep_rendered w;
    memset(&w, 0, sizeof w);
    int shown = 0;
    for (int64_t k = 0; k < s->n && shown < n_show; k++) {
        if (s->reason[k] != READ_OK) continue;
        const data_example *e = val_row(s, k);
        if (prep_render(&c->rr, e, 0, &w) || w.bad) continue;
        int n = w.n_tokens, loss = 0;
        if (c->shape == SHAPE_TEXT && n > c->cfg->max_seq_len) n = c->cfg->max_seq_len; /* the first chunk */
        for (int i = 0; i < n; i++) loss += w.mask[i];
        shown++;
        printf("example %d: %s:%lld: %d tokens, %d with loss%s%s\n", shown, s->rd->path, (long long)e->line, n, loss,
               w.truncated ? ", prompt truncated" : "", n < w.n_tokens ? ", first chunk" : "");
        char *text = slim_malloc(16);
        size_t tn = 0, tc = 16;
        for (int i = 0; i < n; i++) {
            char buf[256];
            buf[0] = 0;
            int got = tokenizer_decode_token(c->tok, w.tokens[i], buf, sizeof buf);
            size_t bl = got > 0 ? strlen(buf) : 0;
            if (tn + bl + 1 > tc) { tc = 2 * (tn + bl + 1); text = slim_realloc(text, tc); }
            memcpy(text + tn, buf, bl);
            tn += bl;
        }
        printf("  text: ");
        val_put_escaped(text, tn);
        printf("\n  %5s %7s %4s  %s\n", "pos", "id", "loss", "piece");
        free(text);
        for (int i = 0; i < n; i++) {
            int id = w.tokens[i];
            printf("  %5d %7d %4s  ", i, id, w.mask[i] ? "*" : "");
            if (id >= 0 && id < c->tok->n_vocab) val_put_escaped(c->tok->pieces[id], (size_t)c->tok->piece_lens[id]);
            printf("\n");
        }
    }
    if (!shown) printf("--show: no good train row to render\n");
    prep_rendered_free(&w);
}

/* ---- command line ---- */

static void val_usage(FILE *f) {
    fprintf(f,
            "usage: slimtune data validate [--config FILE | --model-config FILE] [--train FILE] [--eval FILE]\n"
            "                              [--model MODEL] [--format F] [--shape S] [--report PATH] [--show N]\n"
            "\n"
            "Checks a dataset before training: parse errors, invalid UTF-8, empty fields, unknown and rare\n"
            "labels, class imbalance, exact and near duplicates (MinHash + LSH, exact Jaccard), train/eval\n"
            "leakage, token lengths and truncation under the model's tokenizer, chat structure.\n"
            "  --config FILE  run configuration (data.*, validate.* gates, model); optional. Its data.labels,\n"
            "                 when declared, is the label set; without it the labels are the train file's\n"
            "  --model-config FILE\n"
            "                 take only the model, data.max_seq_len and the validate.* gates from FILE; every\n"
            "                 other data.* setting keeps its default, so the labels are the train file's (eval\n"
            "                 labels unseen in train are reported) and a missing model skips the token checks.\n"
            "                 `make validate DATA=...` without CONFIG runs this with the demo config\n"
            "  --train FILE   the training file (default data.train)\n"
            "  --eval FILE    the eval/test file (default data.test when --train is not given)\n"
            "  --model MODEL  tokenizer for the token checks: a GGUF file or a Hugging Face directory (default\n"
            "                 the config's model)\n"
            "  --format F     csv, tsv, jsonl or auto (default data.format)\n"
            "  --shape S      auto, text_label, prompt_completion, alpaca, chat, text (default data.shape)\n"
            "  --report PATH  JSON report (default <out_dir>/validate/report.json)\n"
            "  --show N       print the first N train examples as rendered, token by token\n"
            "Exit status: 0 pass, 1 a validate.* gate failed, 2 error.\n");
}

int data_validate_parse_args(data_validate_opts *o, int argc, char **argv) {
    static const char *const names[] = {"--config", "--train", "--eval", "--model", "--format", "--shape",
                                        "--report", "--show",  "--data", "--test",  "--model-config"};
    memset(o, 0, sizeof *o);
    const char **dst[] = {&o->config, &o->train, &o->eval, &o->model, &o->format, &o->shape,
                          &o->report, NULL,      &o->train, &o->eval, &o->model_config};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) { val_usage(stdout); return SLIM_HELP; }
        const char *v;
        int k = prep_option("data validate", argc, argv, &i, names, (int)(sizeof names / sizeof names[0]), &v);
        if (k < 0) return -1;
        if (v[0] == 0) return slim_set_error("%s: empty value", names[k]);
        if (dst[k]) *dst[k] = v;
        else if (slim_parse_long("--show", v, 0, 1000000, &o->show)) return -1;
    }
    if (o->config && o->model_config)
        return slim_set_error("--config and --model-config exclude each other (--model-config takes only the model "
                              "and the validate.* gates of a config)");
    if (o->shape && example_shape_parse(o->shape) < 0)
        return slim_set_error("--shape: \"%s\" is not one of auto, text_label, prompt_completion, alpaca, chat, text",
                              o->shape);
    if (o->format && strcmp(o->format, "auto") && strcmp(o->format, "csv") && strcmp(o->format, "tsv") &&
        strcmp(o->format, "jsonl"))
        return slim_set_error("--format: \"%s\" is not one of auto, csv, tsv, jsonl", o->format);
    return SLIM_OK;
}

/* Replaces the config string *dst with a copy of v (NULL: none). */
static void val_set(char **dst, const char *v) {
    free(*dst);
    *dst = v ? slim_strdup(v) : NULL;
}

int data_validate_config(slim_config *cfg, const data_validate_opts *o) {
    if (o->config) {
        if (config_load(cfg, o->config)) return -1;
    } else if (o->model_config) {
        /* the defaults, then the model, data.max_seq_len and validate.* settings of the file */
        slim_config b;
        if (config_load(&b, o->model_config)) return -1;
        config_defaults(cfg);
        config_copy(cfg, &b, "model");
        config_copy(cfg, &b, "data.max_seq_len");
        config_copy(cfg, &b, "validate");
        config_free(&b);
    } else {
        config_defaults(cfg);
    }
    if (o->train) { val_set(&cfg->train_file, o->train); val_set(&cfg->test_file, o->eval); }
    else if (o->eval) val_set(&cfg->test_file, o->eval);
    if (o->model) val_set(&cfg->model, o->model);
    if (o->format) val_set(&cfg->format, o->format);
    if (o->shape) val_set(&cfg->shape, o->shape);
    return 0;
}

/* The tokenizer of the config's model, or the reason the token checks are skipped. Returns 0 or -1. */
static int val_open_model(val_ctx *c, const data_validate_opts *o) {
    const slim_config *cfg = c->cfg;
    if (cfg->model && !o->model && c->model_config && access(cfg->model, F_OK) != 0) {
        /* the model comes with a default config, not the curator's choice: its absence skips the tokens */
        snprintf(c->no_tokens, sizeof c->no_tokens, "the model %s of --model-config %s is missing: scripts/get-model "
                 "fetches it, or give --model", cfg->model, c->model_config);
    } else if (cfg->model) {
        if (slim_model_open(&c->g, cfg->model)) return -1;
        c->have_gguf = 1;
        if (tokenizer_init_model(&c->tok_store, &c->g, cfg->model)) return -1;
        c->tok = &c->tok_store;
    }
    return 0;
}

/* Opens the train file (and the eval file), settles the shape and the label set: data.labels when
 * declared, else the train file's. Returns 0 or -1. */
static int val_open_data(val_ctx *c) {
    const slim_config *cfg = c->cfg;
    reader_opts ro;
    c->names = prep_declared_labels(cfg, &c->n_names);
    prep_reader_opts(&ro, cfg, example_shape_parse(cfg->shape), c->names, c->n_names);
    if (reader_open_ex(&c->rds[0], cfg->train_file, &ro)) return -1;
    c->opened[0] = 1;
    c->shape = c->rds[0].shape;
    if (c->shape != SHAPE_TEXT_LABEL) {
        c->n_names = 0;
    } else if (c->n_names == 0) {
        c->labels_from_train = 1;
        free(c->names);
        c->names = prep_train_labels(&c->rds[0], &c->n_names);
    }
    if (cfg->test_file) {
        /* the eval file has the train file's shape; its labels must be in the (declared or collected) set */
        int tl = c->shape == SHAPE_TEXT_LABEL;
        prep_reader_opts(&ro, cfg, c->shape, tl ? c->names : NULL, tl ? c->n_names : 0);
        if (reader_open_ex(&c->rds[1], cfg->test_file, &ro)) return -1;
        c->opened[1] = 1;
    }
    return 0;
}

/* Prepares rendering for the token checks, or records why they are skipped. Returns 0 or -1. */
static int val_init_renderer(val_ctx *c) {
    if (!c->tok) {
        if (!c->no_tokens[0]) /* else the reason is set already (a missing --model-config model) */
            snprintf(c->no_tokens, sizeof c->no_tokens, "no model: give --config with model, or --model");
    } else if (c->shape == SHAPE_TEXT_LABEL && c->n_names == 0) {
        snprintf(c->no_tokens, sizeof c->no_tokens, "no good row gives a label");
    } else if (prep_renderer_init(&c->rr, c->tok, c->cfg, c->shape, c->names, c->n_names,
                                  gguf_get_str(&c->g, "tokenizer.chat_template"))) {
        prep_renderer_free(&c->rr);
        if (c->shape != SHAPE_CHAT) return -1; /* e.g. no text_label row can fit: a config error */
        snprintf(c->no_tokens, sizeof c->no_tokens, "%s", slim_last_error());
    } else {
        c->have_rr = 1;
    }
    return 0;
}

/* The near-duplicate settings and the MinHash coefficients (from a fixed seed). */
static void val_init_minhash(val_ctx *c) {
    const slim_config *cfg = c->cfg;
    c->rows_per_band = cfg->val_minhash_rows;
    c->bands = cfg->val_minhash_bands;
    c->K = c->bands * c->rows_per_band;
    c->word_shingles = strcmp(cfg->val_shingle, "char") != 0;
    c->shingle_size = cfg->val_shingle_size > 0 ? cfg->val_shingle_size : c->word_shingles ? 3 : 5;
    c->threshold = cfg->val_near_threshold;
    c->keep = cfg->val_report_rows > cfg->val_show_rows ? cfg->val_report_rows : cfg->val_show_rows;
    c->mh_a = slim_malloc((size_t)c->K * sizeof(uint64_t));
    c->mh_b = slim_malloc((size_t)c->K * sizeof(uint64_t));
    slim_rng rng;
    slim_rng_seed(&rng, 0x5eedULL);
    for (int k = 0; k < c->K; k++) {
        c->mh_a[k] = (((uint64_t)slim_rng_u32(&rng) << 32) | slim_rng_u32(&rng)) | 1;
        c->mh_b[k] = ((uint64_t)slim_rng_u32(&rng) << 32) | slim_rng_u32(&rng);
    }
}

/* The splits: train, and eval from the eval file or from data.split's test part of the train file. */
static void val_set_splits(val_ctx *c) {
    const slim_config *cfg = c->cfg;
    c->sp[0].name = "train";
    c->sp[0].rd = &c->rds[0];
    c->n_splits = 1;
    if (c->opened[1]) {
        c->sp[1].name = "eval";
        c->sp[1].rd = &c->rds[1];
        c->n_splits = 2;
    } else if (cfg->has_split && !cfg->test_file) {
        data_reader *rd = &c->rds[0];
        c->assign = slim_malloc((size_t)(rd->n_rows ? rd->n_rows : 1));
        split_assign(rd->rows, rd->n_rows, c->shape, cfg->split_test_fraction, (uint64_t)cfg->split_seed, c->assign);
        c->sp[0].assign = c->assign;
        c->sp[0].want = 0;
        c->sp[1].name = "eval";
        c->sp[1].rd = rd;
        c->sp[1].assign = c->assign;
        c->sp[1].want = 1;
        c->n_splits = 2;
    }
}

/* Runs every check over the splits and records the failed gates. Returns 0 or -1. */
static int val_analyze(val_ctx *c) {
    for (int s = 0; s < c->n_splits; s++)
        if (val_scan_split(c, &c->sp[s])) return -1;
    for (int s = 0; s < c->n_splits; s++) {
        val_exact_dups(c, &c->sp[s]);
        val_signatures(c, &c->sp[s]);
    }
    val_near(c);
    val_leakage(c, &c->leak);
    c->imbalance = 0;
    if (c->shape == SHAPE_TEXT_LABEL && c->n_names > 0) {
        int64_t mx = 0, mn = -1;
        for (int i = 0; i < c->n_names; i++) {
            int64_t v = c->sp[0].label_count[i];
            if (v > mx) mx = v;
            if (mn < 0 || v < mn) mn = v;
        }
        c->imbalance = mn > 0 ? (double)mx / (double)mn : INFINITY;
    }
    val_gates(c, &c->leak);
    return 0;
}

/* Prints the summary, writes the JSON report (o->report, default <out_dir>/validate/report.json) and
 * the --show examples. Returns SLIM_OK, SLIM_GATE_FAILED or -1. */
static int val_report(val_ctx *c, const data_validate_opts *o, double t0) {
    int status = c->n_fail ? SLIM_GATE_FAILED : SLIM_OK;
    val_print(c, &c->leak);
    char report[4200];
    if (o->report ? slim_format_path(report, sizeof report, "%s", o->report)
                  : slim_format_path(report, sizeof report, "%s/validate/report.json", c->cfg->out_dir))
        return -1;
    if (val_write_json(c, &c->leak, report, status ? 1 : 0)) return -1;
    val_show(c, (int)o->show);
    printf("data validate: %s in %.2f s; report %s\n", status ? "FAIL" : "pass", slim_time_sec() - t0, report);
    for (int i = 0; i < c->n_fail; i++) printf("  FAIL: %s\n", c->fail[i]);
    fflush(stdout);
    return status;
}

/* Frees c and everything it holds (not the config). */
static void val_ctx_free(val_ctx *c) {
    for (int s = 0; s < c->n_splits; s++) val_split_free(c, &c->sp[s]);
    free(c->leak.hits);
    if (c->have_rr) prep_renderer_free(&c->rr);
    free(c->names);
    free(c->mh_a);
    free(c->mh_b);
    free(c->assign);
    for (int s = 0; s < 2; s++)
        if (c->opened[s]) reader_free(&c->rds[s]);
    if (c->tok) tokenizer_free(&c->tok_store);
    if (c->have_gguf) gguf_close(&c->g);
    free(c);
}

int data_validate_run(const slim_config *cfg, const data_validate_opts *o) {
    if (!cfg->train_file) return slim_set_error("no training file: give --train FILE or a --config with data.train");
    val_ctx *c = slim_calloc(1, sizeof(val_ctx));
    c->cfg = cfg;
    c->model_config = o->config ? NULL : o->model_config;
    int rc = -1;
    if (val_open_model(c, o) == 0 && val_open_data(c) == 0 && val_init_renderer(c) == 0) {
        val_init_minhash(c);
        if (cfg->threads > 0) omp_set_num_threads(cfg->threads);
        val_set_splits(c);
        double t0 = slim_time_sec();
        if (val_analyze(c) == 0) rc = val_report(c, o, t0);
    }
    val_ctx_free(c);
    return rc;
}

int data_validate_main(int argc, char **argv) {
    data_validate_opts o;
    slim_config cfg;
    int r = data_validate_parse_args(&o, argc, argv);
    if (r != SLIM_OK) return r == SLIM_HELP ? SLIM_OK : (val_usage(stderr), -1);
    if (data_validate_config(&cfg, &o)) return -1;
    r = data_validate_run(&cfg, &o);
    config_free(&cfg);
    return r;
}
