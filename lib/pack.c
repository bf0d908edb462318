/* pack.c — best-fit-decreasing packing; see pack.h. */
#include "pack.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"

static const int64_t *pack_sort_lengths; /* qsort context */

/* Longest first; equal lengths by index, so the plan does not depend on qsort's stability. */
static int pack_cmp(const void *a, const void *b) {
    int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    int64_t li = pack_sort_lengths[i], lj = pack_sort_lengths[j];
    if (li != lj) return li > lj ? -1 : 1;
    return i < j ? -1 : i > j;
}

int pack_plan_build(pack_plan *p, const int64_t *lengths, int64_t n, int row_len) {
    memset(p, 0, sizeof *p);
    p->row_len = row_len;
    for (int64_t i = 0; i < n; i++)
        if (lengths[i] < 1 || lengths[i] > row_len)
            return slim_set_error("pack: example %lld has %lld tokens; rows hold 1..%d", (long long)i,
                                  (long long)lengths[i], row_len);
    int64_t *order = slim_malloc(sizeof(int64_t) * (n ? n : 1));
    for (int64_t i = 0; i < n; i++) order[i] = i;
    pack_sort_lengths = lengths;
    qsort(order, (size_t)n, sizeof(int64_t), pack_cmp);

    /* rows by free space: bucket[c] is a stack of rows with exactly c tokens free, so the best fit
     * for an example of length L is the first non-empty bucket at c >= L */
    int64_t *row_of = slim_malloc(sizeof(int64_t) * (n ? n : 1));  /* example -> row */
    int64_t *row_free = slim_malloc(sizeof(int64_t) * (n ? n : 1)); /* row -> free tokens */
    int64_t *bucket_head = slim_malloc(sizeof(int64_t) * (row_len + 1));
    int64_t *next_in_bucket = slim_malloc(sizeof(int64_t) * (n ? n : 1));
    for (int c = 0; c <= row_len; c++) bucket_head[c] = -1;
    int64_t n_rows = 0;
    for (int64_t k = 0; k < n; k++) {
        int64_t e = order[k], len = lengths[e], r = -1;
        for (int64_t c = len; c <= row_len && r < 0; c++)
            if (bucket_head[c] >= 0) {
                r = bucket_head[c];
                bucket_head[c] = next_in_bucket[r];
            }
        if (r < 0) {
            r = n_rows++;
            row_free[r] = row_len;
        }
        row_free[r] -= len;
        row_of[e] = r;
        next_in_bucket[r] = bucket_head[row_free[r]];
        bucket_head[row_free[r]] = r;
        p->n_tokens += len;
    }
    /* lay the rows out: counting sort of the examples by row, in placement order */
    p->n_rows = n_rows;
    p->row_start = slim_calloc((size_t)n_rows + 1, sizeof(int64_t));
    p->items = slim_malloc(sizeof(int64_t) * (n ? n : 1));
    for (int64_t e = 0; e < n; e++) p->row_start[row_of[e] + 1]++;
    for (int64_t r = 0; r < n_rows; r++) p->row_start[r + 1] += p->row_start[r];
    int64_t *fill = slim_malloc(sizeof(int64_t) * (n_rows ? n_rows : 1));
    for (int64_t r = 0; r < n_rows; r++) fill[r] = p->row_start[r];
    for (int64_t k = 0; k < n; k++) {
        int64_t e = order[k];
        p->items[fill[row_of[e]]++] = e;
    }
    free(fill);
    free(order);
    free(row_of);
    free(row_free);
    free(bucket_head);
    free(next_in_bucket);
    return 0;
}

void pack_plan_free(pack_plan *p) {
    free(p->row_start);
    free(p->items);
    memset(p, 0, sizeof *p);
}

double pack_plan_efficiency(const pack_plan *p) {
    return p->n_rows ? (double)p->n_tokens / ((double)p->n_rows * p->row_len) : 0.0;
}
