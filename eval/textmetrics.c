/* textmetrics.c — scores of a generated text against its reference: SQuAD's exact match and token F1,
 * and for JSON objects (extraction) validity and per-field matches; see textmetrics.h. */
#include "textmetrics.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* 1 when the word w [n] is an English article the SQuAD normalisation removes. */
static int tm_article(const char *w, size_t n) {
    return (n == 1 && w[0] == 'a') || (n == 2 && !memcmp(w, "an", 2)) || (n == 3 && !memcmp(w, "the", 3));
}

char *tm_normalize(const char *s) {
    size_t n = strlen(s);
    char *t = slim_malloc(n + 1), *out = slim_malloc(n + 2);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) { /* lower case (ASCII), ASCII punctuation removed */
        unsigned char c = (unsigned char)s[i];
        if (c < 128 && ispunct(c)) continue;
        t[m++] = (char)(c < 128 ? tolower(c) : c);
    }
    t[m] = 0;
    size_t o = 0;
    for (size_t i = 0; i < m;) { /* words split on whitespace; articles dropped; joined by one space */
        while (i < m && isspace((unsigned char)t[i])) i++;
        size_t j = i;
        while (j < m && !isspace((unsigned char)t[j])) j++;
        if (j > i && !tm_article(t + i, j - i)) {
            if (o) out[o++] = ' ';
            memcpy(out + o, t + i, j - i);
            o += j - i;
        }
        i = j;
    }
    out[o] = 0;
    free(t);
    return out;
}

/* The words of a normalised string (split on single spaces, pointers into a copy) into *words; returns
 * their count. */
static int tm_words(const char *norm, char **copy, char ***words) {
    *copy = slim_strdup(norm);
    int n = 0, cap = 16;
    *words = slim_malloc((size_t)cap * sizeof(char *));
    for (char *p = strtok(*copy, " "); p; p = strtok(NULL, " ")) {
        if (n == cap) *words = slim_realloc(*words, (size_t)(cap *= 2) * sizeof(char *));
        (*words)[n++] = p;
    }
    return n;
}

static int tm_cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void tm_score_text(const char *pred, const char *ref, double *exact, double *f1) {
    char *np = tm_normalize(pred), *nr = tm_normalize(ref), *cp, *cr, **wp, **wr;
    *exact = strcmp(np, nr) == 0;
    int a = tm_words(np, &cp, &wp), b = tm_words(nr, &cr, &wr);
    if (a == 0 || b == 0) {
        *f1 = a == b; /* both empty: 1, one empty: 0 (SQuAD 2.0) */
    } else { /* the multiset intersection of the two word lists, by merging them sorted */
        qsort(wp, (size_t)a, sizeof(char *), tm_cmp_str);
        qsort(wr, (size_t)b, sizeof(char *), tm_cmp_str);
        int same = 0;
        for (int i = 0, j = 0; i < a && j < b;) {
            int c = strcmp(wp[i], wr[j]);
            if (c == 0) { same++; i++; j++; }
            else if (c < 0) i++;
            else j++;
        }
        double p = (double)same / a, r = (double)same / b;
        *f1 = same ? 2 * p * r / (p + r) : 0.0;
    }
    free(np); free(nr); free(cp); free(cr); free(wp); free(wr);
}

/* 1 when two JSON values match: strings equal after normalisation, anything else equal as printed. */
static int tm_value_equal(const cJSON *a, const cJSON *b) {
    if (cJSON_IsString(a) && cJSON_IsString(b)) {
        char *x = tm_normalize(a->valuestring), *y = tm_normalize(b->valuestring);
        int eq = strcmp(x, y) == 0;
        free(x); free(y);
        return eq;
    }
    return cJSON_Compare(a, b, 1);
}

/* The field named key in f (added when new). */
static tm_field *tm_field_get(tm_fields *f, const char *key) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->f[i].name, key)) return &f->f[i];
    if (f->n == f->cap) f->f = slim_realloc(f->f, (size_t)(f->cap = f->cap ? 2 * f->cap : 8) * sizeof(tm_field));
    tm_field *n = &f->f[f->n++];
    memset(n, 0, sizeof *n);
    snprintf(n->name, sizeof n->name, "%s", key);
    return n;
}

/* s parsed as JSON, nothing but whitespace after the value (cJSON_Parse alone accepts trailing text). */
static cJSON *tm_parse(const char *s) { return cJSON_ParseWithOpts(s, NULL, 1); }

int tm_is_json_object(const char *s) {
    cJSON *j = tm_parse(s);
    int ok = cJSON_IsObject(j);
    cJSON_Delete(j);
    return ok;
}

int tm_score_json(const char *pred, const char *ref, tm_fields *f) {
    cJSON *p = tm_parse(pred), *r = tm_parse(ref);
    int valid = cJSON_IsObject(p);
    const cJSON *x;
    cJSON_ArrayForEach(x, r) { /* each reference field: right, or missed (and a wrong value predicted) */
        tm_field *t = tm_field_get(f, x->string);
        t->support++;
        const cJSON *y = valid ? cJSON_GetObjectItemCaseSensitive(p, x->string) : NULL;
        if (y && tm_value_equal(x, y)) t->tp++;
        else t->fn++;
        if (y && !tm_value_equal(x, y)) t->fp++;
    }
    if (valid)
        cJSON_ArrayForEach(x, p) /* predicted fields the reference lacks */
            if (!cJSON_GetObjectItemCaseSensitive(r, x->string)) tm_field_get(f, x->string)->fp++;
    cJSON_Delete(p);
    cJSON_Delete(r);
    return valid;
}

void tm_fields_free(tm_fields *f) {
    free(f->f);
    memset(f, 0, sizeof *f);
}
