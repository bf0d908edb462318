/* split.c — seeded, stratified, order-independent hash split. See split.h. */
#define _GNU_SOURCE
#include "split.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "reader.h"

uint64_t split_row_hash(const data_example *row, int shape, uint64_t seed) {
    size_t n;
    char *key = reader_example_key(row, shape, &n);
    uint64_t h = slim_fnv1a(SLIM_FNV_INIT, &seed, sizeof seed);
    h = slim_fnv1a(h, key, n);
    free(key);
    return slim_mix64(h);
}

typedef struct split_item {
    uint64_t stratum; /* hash of the label (0 when unstratified) */
    uint64_t h;
    int64_t row;
} split_item;

static int split_cmp(const void *a, const void *b) {
    const split_item *x = a, *y = b;
    if (x->stratum != y->stratum) return x->stratum < y->stratum ? -1 : 1;
    if (x->h != y->h) return x->h < y->h ? -1 : 1;
    return 0; /* equal keys: assigned together, so their order does not matter */
}

int64_t split_assign(const data_example *rows, int64_t n, int shape, double test_fraction, uint64_t seed,
                     int8_t *out) {
    return split_assign3(rows, n, shape, test_fraction, 0.0, seed, out, NULL);
}

/* Within the stratum it[a..b) (ordered by hash), gives whole groups of equal hash the value v, from
 * it[*g] on, until round(fraction * (b - a)) rows have it; *g is left after the last group taken.
 * Returns the rows given. */
static int64_t split_take(const split_item *it, int64_t a, int64_t b, int64_t *g, double fraction, int8_t v,
                          int8_t *out) {
    int64_t target = (int64_t)floor(fraction * (double)(b - a) + 0.5), taken = 0;
    while (*g < b && taken < target) {
        int64_t e = *g;
        while (e < b && it[e].h == it[*g].h) e++;
        for (int64_t k = *g; k < e; k++) out[it[k].row] = v;
        taken += e - *g;
        *g = e;
    }
    return taken;
}

int64_t split_assign3(const data_example *rows, int64_t n, int shape, double test_fraction, double val_fraction,
                      uint64_t seed, int8_t *out, int64_t *n_val) {
    split_item *it = slim_malloc((size_t)(n ? n : 1) * sizeof(split_item));
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) out[i] = -1;
#pragma omp parallel for schedule(dynamic, 64)
    for (int64_t i = 0; i < n; i++) {
        if (rows[i].reason != READ_OK) continue;
        out[i] = 0;
    }
    for (int64_t i = 0; i < n; i++)
        if (out[i] == 0) it[m++].row = i;
#pragma omp parallel for schedule(dynamic, 64)
    for (int64_t k = 0; k < m; k++) {
        const data_example *r = &rows[it[k].row];
        it[k].h = split_row_hash(r, shape, seed);
        it[k].stratum = shape == SHAPE_TEXT_LABEL && r->label ? slim_mix64(slim_fnv1a(SLIM_FNV_INIT, r->label, r->label_len)) : 0;
    }
    qsort(it, (size_t)m, sizeof(split_item), split_cmp);
    int64_t n_test = 0, nv = 0;
    for (int64_t a = 0; a < m;) {
        int64_t b = a, g = a;
        while (b < m && it[b].stratum == it[a].stratum) b++;
        n_test += split_take(it, a, b, &g, test_fraction, 1, out);
        nv += split_take(it, a, b, &g, val_fraction, 2, out); /* the next groups: val */
        a = b;
    }
    free(it);
    if (n_val) *n_val = nv;
    return n_test;
}
