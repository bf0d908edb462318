/* pack.h — packing examples into fixed-length rows for training (best-fit decreasing; used by loader.h).
 *
 * Short examples waste most of a padded batch. Packing places several examples back to back in one
 * row of row_len tokens: examples are taken longest first and each goes into the open row whose
 * free space fits it most tightly (best-fit decreasing, Johnson 1973), or into a new row. Inside a
 * row, positions restart at every example and attention never crosses examples
 * (model_forward_packed); the loss stays the mean over target tokens. */
#ifndef SLIM_PACK_H
#define SLIM_PACK_H

#include <stdint.h>

typedef struct pack_plan {
    int row_len;        /* tokens per row */
    int64_t n_rows;
    int64_t *row_start; /* [n_rows + 1] row r holds examples items[row_start[r] .. row_start[r+1]) */
    int64_t *items;     /* [n_examples] example indices, in their order inside the rows */
    int64_t n_tokens;   /* real tokens packed */
} pack_plan;

/* Plans rows of row_len tokens for n examples of the given lengths (each 1..row_len). Deterministic:
 * ties are broken by example index. Returns 0, or -1 when an example is longer than row_len. */
int pack_plan_build(pack_plan *p, const int64_t *lengths, int64_t n, int row_len);
/* Frees the plan's arrays and zeroes it (safe on a zeroed plan). */
void pack_plan_free(pack_plan *p);
/* Fraction of the rows' tokens that are real (not padding): n_tokens / (n_rows * row_len). */
double pack_plan_efficiency(const pack_plan *p);

#endif
