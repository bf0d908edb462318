/* test_pack.c — best-fit-decreasing packing: a hand-worked plan, and on random lengths every example
 * placed exactly once, no row over its length, determinism, and a bound on the rows used. */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "pack.h"
#include "testutil.h"

static void test_hand_worked(void) {
    /* row length 8, lengths 5 4 3 3 2 1 (already decreasing): 5 -> row 0 (3 free); 4 -> row 1 (4 free);
     * 3 -> row 0, the tightest fit (0 free); 3 -> row 1 (1 free); 2 -> no row has 2 free: row 2 (6 free);
     * 1 -> row 1, tighter than row 2 (0 free). Rows: {0, 2}, {1, 3, 5}, {4}. */
    int64_t len[6] = {5, 4, 3, 3, 2, 1};
    pack_plan p;
    CHECK(pack_plan_build(&p, len, 6, 8) == 0, "build: %s", slim_last_error());
    int64_t want_start[4] = {0, 2, 5, 6}, want_items[6] = {0, 2, 1, 3, 5, 4};
    CHECK(p.n_rows == 3, "rows %lld, expected 3", (long long)p.n_rows);
    CHECK(p.n_rows == 3 && memcmp(p.row_start, want_start, sizeof want_start) == 0, "row starts differ");
    CHECK(memcmp(p.items, want_items, sizeof want_items) == 0, "items differ: %lld %lld %lld %lld %lld %lld",
          (long long)p.items[0], (long long)p.items[1], (long long)p.items[2], (long long)p.items[3],
          (long long)p.items[4], (long long)p.items[5]);
    CHECK(p.n_tokens == 18, "tokens %lld", (long long)p.n_tokens);
    double eff = pack_plan_efficiency(&p);
    CHECK(eff > 0.7499 && eff < 0.7501, "efficiency %g, expected 18/24", eff);
    pack_plan_free(&p);
    int64_t bad[2] = {3, 9};
    CHECK(pack_plan_build(&p, bad, 2, 8) == -1 && strstr(slim_last_error(), "example 1"),
          "an example longer than the row must be refused naming it: %s", slim_last_error());
}

static void test_random(void) {
    const int64_t n = 5000;
    const int row = 128;
    int64_t *len = slim_malloc(sizeof(int64_t) * n), sum = 0;
    slim_rng rng;
    slim_rng_seed(&rng, 11);
    for (int64_t i = 0; i < n; i++) {
        len[i] = 1 + slim_rng_u32(&rng) % (i % 3 ? 40 : row); /* mostly short, some long */
        sum += len[i];
    }
    pack_plan p, q;
    CHECK(pack_plan_build(&p, len, n, row) == 0, "build");
    CHECK(pack_plan_build(&q, len, n, row) == 0, "build again");
    CHECK(p.n_rows == q.n_rows && memcmp(p.items, q.items, sizeof(int64_t) * n) == 0, "plans differ between runs");
    char *seen = slim_calloc(n, 1);
    int once = 1, fits = 1;
    for (int64_t r = 0; r < p.n_rows; r++) {
        int64_t used = 0;
        for (int64_t k = p.row_start[r]; k < p.row_start[r + 1]; k++) {
            if (seen[p.items[k]]++) once = 0;
            used += len[p.items[k]];
        }
        if (used > row) fits = 0;
    }
    for (int64_t i = 0; i < n; i++) once &= seen[i] == 1;
    CHECK(once, "every example must be placed exactly once");
    CHECK(fits, "a row holds more than %d tokens", row);
    CHECK(p.n_tokens == sum, "tokens %lld != %lld", (long long)p.n_tokens, (long long)sum);
    /* best-fit decreasing uses at most 11/9 OPT + 1 rows (Johnson 1973), and OPT >= ceil(sum / row) */
    int64_t lower = (sum + row - 1) / row;
    printf("pack: %lld examples, %lld tokens -> %lld rows of %d (lower bound %lld), efficiency %.3f\n", (long long)n,
           (long long)sum, (long long)p.n_rows, row, (long long)lower, pack_plan_efficiency(&p));
    CHECK(p.n_rows >= lower && p.n_rows <= lower * 11 / 9 + 1, "rows %lld outside [%lld, 11/9 * %lld + 1]",
          (long long)p.n_rows, (long long)lower, (long long)lower);
    free(seen);
    free(len);
    pack_plan_free(&p);
    pack_plan_free(&q);
}

int main(void) {
    test_hand_worked();
    test_random();
    return tu_finish("test_pack");
}
