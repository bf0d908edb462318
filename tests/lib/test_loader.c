/* test_loader.c — lib/loader.h on a hand-built five-example dataset: training micro-batches (targets are
 * the next token where loss_mask is set, right padding, epoch boundaries), packed rows (positions and
 * segment starts restart per example), saving and restoring the loader state (the same micro-batches
 * again), and scoring rows (prompt + completion without its last token, targets the completion ids). */
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "dataset.h"
#include "loader.h"
#include "testutil.h"

#define PAD 99
#define N_EX 5

/* The examples, their loss masks, and by hand the targets each must get: tokens[i + 1] where
 * mask[i + 1], else -1. Example 3 has a target in the middle only (as a chat's assistant turn). */
static const int32_t ex_tokens[N_EX][5] = {{1, 10, 11, 12}, {1, 20, 21}, {1, 30}, {1, 40, 41, 42, 43}, {1, 50, 51}};
static const uint8_t ex_mask[N_EX][5] = {{0, 0, 1, 1}, {0, 1, 1}, {0, 1}, {0, 0, 0, 1, 0}, {0, 1, 1}};
static const int32_t ex_targets[N_EX][5] = {{-1, 11, 12, -1}, {20, 21, -1}, {30, -1}, {-1, -1, 42, -1, -1},
                                            {50, 51, -1}};
static const int ex_len[N_EX] = {4, 3, 2, 5, 3};
static const int32_t ex_prompt_len[N_EX] = {2, 1, 1, 3, 1};

static slim_dataset g_d;

static void build_dataset(void) {
    static int32_t tokens[32], prompt_len[N_EX], labels[N_EX];
    static uint8_t mask[32];
    static int64_t offsets[N_EX + 1], source_line[N_EX];
    int64_t k = 0;
    for (int e = 0; e < N_EX; e++) {
        for (int i = 0; i < ex_len[e]; i++, k++) {
            tokens[k] = ex_tokens[e][i];
            mask[k] = ex_mask[e][i];
        }
        offsets[e + 1] = k;
        prompt_len[e] = ex_prompt_len[e];
        labels[e] = e % 2;
        source_line[e] = e + 2;
    }
    g_d = (slim_dataset){.n_examples = N_EX, .n_tokens = k, .tokens = tokens, .loss_mask = mask, .offsets = offsets,
                         .prompt_len = prompt_len, .labels = labels, .source_line = source_line, .max_seq_len = 8};
}

/* Checks row b of L's current batch: the examples ex[0..n) back to back with the hand-written targets,
 * positions from 0 and segment starts at each example's first column, then padding. */
static void check_row(const loader *L, int b, const int64_t *ex, int64_t n, const char *what) {
    const size_t at = (size_t)b * L->T;
    int t = 0, ok = 1;
    for (int64_t k = 0; k < n; k++) {
        int e = (int)ex[k], start = t;
        for (int i = 0; i < ex_len[e]; i++, t++)
            ok &= L->tokens[at + t] == ex_tokens[e][i] && L->targets[at + t] == ex_targets[e][i] &&
                  L->pos[at + t] == i && L->seg_start[at + t] == start;
    }
    for (; t < L->T; t++)
        ok &= L->tokens[at + t] == PAD && L->targets[at + t] == -1 && L->pos[at + t] == 0 && L->seg_start[at + t] == t;
    CHECK(ok, "%s: row %d (unit %lld) is not its examples' tokens, next-token targets and padding", what, b,
          (long long)L->units[b]);
}

/* Hand-counted targets of example e. */
static long ex_n_targets(int e) {
    long n = 0;
    for (int i = 0; i < ex_len[e]; i++) n += ex_targets[e][i] >= 0;
    return n;
}

/* Examples of unit u of L (packed: its plan row). */
static int64_t unit_examples(const loader *L, int64_t u, const int64_t **ex, int64_t *single) {
    if (!L->packed) {
        *single = u;
        *ex = single;
        return 1;
    }
    *ex = L->plan.items + L->plan.row_start[u];
    return L->plan.row_start[u + 1] - L->plan.row_start[u];
}

/* Draws two epochs from L and checks every micro-batch: each row, T (the longest unit), the target
 * count, the sizes (B, the epoch's last shorter), epoch_end, every unit once per epoch. */
static void check_epochs(loader *L, const char *what) {
    const int per_epoch = (int)loader_batches_per_epoch(L);
    for (int epoch = 0; epoch < 2; epoch++) {
        char seen[N_EX] = {0};
        for (int m = 0; m < per_epoch; m++) {
            int rows = loader_next(L);
            int want_rows = m + 1 < per_epoch ? L->B : (int)(L->n_units - (int64_t)m * L->B);
            CHECK(rows == want_rows && L->rows == rows, "%s: epoch %d batch %d has %d rows, expected %d", what, epoch, m,
                  rows, want_rows);
            CHECK(L->epoch_end == (m + 1 == per_epoch), "%s: epoch %d batch %d: epoch_end %d", what, epoch, m,
                  L->epoch_end);
            long n_targets = 0;
            int T = 1;
            for (int b = 0; b < rows; b++) {
                const int64_t *ex;
                int64_t single, n = unit_examples(L, L->units[b], &ex, &single);
                int len = 0;
                for (int64_t k = 0; k < n; k++) {
                    len += ex_len[ex[k]];
                    n_targets += ex_n_targets((int)ex[k]);
                }
                if (len > T) T = len;
                seen[L->units[b]]++;
            }
            CHECK(L->T == T, "%s: batch T %d, expected its longest unit %d", what, L->T, T);
            CHECK(L->n_targets == n_targets, "%s: %ld targets, expected %ld", what, L->n_targets, n_targets);
            for (int b = 0; b < rows && L->T == T; b++) {
                const int64_t *ex;
                int64_t single, n = unit_examples(L, L->units[b], &ex, &single);
                check_row(L, b, ex, n, what);
            }
        }
        int once = 1;
        for (int64_t u = 0; u < L->n_units; u++) once &= seen[u] == 1;
        CHECK(once, "%s: epoch %d does not draw every unit exactly once", what, epoch);
        CHECK(loader_get_state(L).epoch == epoch, "%s: state says epoch %lld after epoch %d", what,
              (long long)loader_get_state(L).epoch, epoch);
    }
}

static void test_batches(void) {
    loader L;
    CHECK(loader_init(&L, &g_d, 2, 0, PAD, 3) == 0, "loader_init: %s", slim_last_error());
    CHECK(L.T_max == 5 && L.n_units == N_EX && loader_batches_per_epoch(&L) == 3, "T_max %d, units %lld", L.T_max,
          (long long)L.n_units);
    check_epochs(&L, "unpacked");
    /* one literal batch: batch 5 holds all examples, the longest (5 tokens) sets T */
    loader one;
    loader_init(&one, &g_d, N_EX, 0, PAD, 3);
    loader_next(&one);
    int e2 = -1;
    for (int b = 0; b < N_EX; b++)
        if (one.units[b] == 2) e2 = b;
    const int32_t want_tok[5] = {1, 30, PAD, PAD, PAD}, want_tgt[5] = {30, -1, -1, -1, -1};
    CHECK(one.T == 5 && e2 >= 0 && memcmp(one.tokens + e2 * 5, want_tok, sizeof want_tok) == 0 &&
              memcmp(one.targets + e2 * 5, want_tgt, sizeof want_tgt) == 0,
          "example 2 in a batch of T 5 must be 1 30 + 3 pads with targets 30 -1 -1 -1 -1");
    loader_free(&one);
    loader_free(&L);
    printf("loader: 5 examples x batch 2: 3 micro-batches an epoch, 2 epochs checked row by row\n");
}

static void test_packed(void) {
    loader L;
    CHECK(loader_init(&L, &g_d, 2, 1, PAD, 3) == 0, "loader_init packed: %s", slim_last_error());
    /* rows of max_seq_len 8, best fit decreasing: {3, 1}, {0, 4}, {2} */
    const int64_t want_start[4] = {0, 2, 4, 5}, want_items[5] = {3, 1, 0, 4, 2};
    CHECK(L.packed && L.T_max == 8 && L.n_units == 3 && memcmp(L.plan.row_start, want_start, sizeof want_start) == 0 &&
              memcmp(L.plan.items, want_items, sizeof want_items) == 0,
          "packed plan: T_max %d, %lld rows", L.T_max, (long long)L.n_units);
    check_epochs(&L, "packed");
    /* row 0 written out: example 3 then example 1, positions restart, segment start 5 */
    loader_reset(&L);
    int found = 0;
    for (int m = 0; m < 2 && !found; m++) {
        loader_next(&L);
        for (int b = 0; b < L.rows; b++) {
            if (L.units[b] != 0) continue;
            const int32_t tok[8] = {1, 40, 41, 42, 43, 1, 20, 21}, tgt[8] = {-1, -1, 42, -1, -1, 20, 21, -1};
            const int32_t pos[8] = {0, 1, 2, 3, 4, 0, 1, 2}, seg[8] = {0, 0, 0, 0, 0, 5, 5, 5};
            size_t at = (size_t)b * L.T;
            found = 1;
            CHECK(L.T == 8 && !memcmp(L.tokens + at, tok, sizeof tok) && !memcmp(L.targets + at, tgt, sizeof tgt) &&
                      !memcmp(L.pos + at, pos, sizeof pos) && !memcmp(L.seg_start + at, seg, sizeof seg),
                  "packed row 0 must be examples 3 and 1 with positions 0..4 0..2 and segment starts 0 and 5");
        }
    }
    CHECK(found, "packed row 0 not drawn in the first epoch");
    loader_free(&L);
    printf("loader: packed into 3 rows of 8, 2 epochs checked row by row\n");
}

/* Copies the current batch of L (rows, T, tokens, targets) into buf; returns the ints written. */
static int snapshot(const loader *L, int32_t *buf) {
    int n = 0;
    buf[n++] = L->rows;
    buf[n++] = L->T;
    buf[n++] = L->epoch_end;
    for (int i = 0; i < L->rows * L->T; i++) buf[n++] = L->tokens[i];
    for (int i = 0; i < L->rows * L->T; i++) buf[n++] = L->targets[i];
    return n;
}

/* Draws n_micro micro-batches into buf; returns the ints written. */
static int draw(loader *L, int n_micro, int32_t *buf) {
    int n = 0;
    for (int m = 0; m < n_micro; m++) {
        loader_next(L);
        n += snapshot(L, buf + n);
    }
    return n;
}

static void test_state(void) {
    static int32_t a[4096], b[4096], c[4096], first[4096];
    loader L, R;
    loader_init(&L, &g_d, 2, 0, PAD, 11);
    loader_init(&R, &g_d, 2, 0, PAD, 11);
    int nf = draw(&L, 4, first); /* past the first epoch's end */
    loader_state st = loader_get_state(&L);
    CHECK(st.epoch == 1 && st.cursor == 2, "after 4 micro-batches of 2 over 5: epoch %lld cursor %lld",
          (long long)st.epoch, (long long)st.cursor);
    int na = draw(&L, 5, a);
    CHECK(loader_set_state(&L, st) == 0, "set a saved state: %s", slim_last_error());
    int nb = draw(&L, 5, b);
    CHECK(na == nb && memcmp(a, b, sizeof(int32_t) * na) == 0, "restoring the state does not replay the batches");
    CHECK(loader_set_state(&R, st) == 0, "set the state on another loader"); /* a resumed run */
    int nc = draw(&R, 5, c);
    CHECK(na == nc && memcmp(a, c, sizeof(int32_t) * na) == 0, "a fresh loader set to the state does not replay");
    /* a state at an epoch's end (cursor = n): the next batch starts the next epoch */
    CHECK(loader_set_state(&R, (loader_state){.epoch = 0, .cursor = N_EX}) == 0, "set an epoch-end state");
    loader_next(&R);
    CHECK(loader_get_state(&R).epoch == 1 && loader_get_state(&R).cursor == 2, "epoch-end state: next is epoch 1");
    /* a state of other data (cursor past this loader's units, a negative epoch) is refused, unchanged */
    CHECK(loader_set_state(&R, (loader_state){.epoch = 0, .cursor = N_EX + 1}) == -1 &&
              strstr(slim_last_error(), "cursor"), "a cursor past the units is accepted");
    CHECK(loader_set_state(&R, (loader_state){.epoch = -1, .cursor = 0}) == -1, "a negative epoch is accepted");
    CHECK(loader_get_state(&R).epoch == 1 && loader_get_state(&R).cursor == 2, "a refused state changed the loader");
    loader_reset(&L);
    nb = draw(&L, 4, b);
    CHECK(nf == nb && memcmp(first, b, sizeof(int32_t) * nf) == 0, "loader_reset does not replay from the start");
    /* another seed gives another order */
    loader S;
    loader_init(&S, &g_d, 2, 0, PAD, 12);
    nb = draw(&S, 4, b);
    CHECK(nf != nb || memcmp(first, b, sizeof(int32_t) * nf) != 0, "seeds 11 and 12 give the same batches");
    loader_free(&L);
    loader_free(&R);
    loader_free(&S);
    printf("loader: a state saved mid-epoch replays the same 5 micro-batches, in the same and in a fresh loader\n");
}

/* loader_skip (a data-parallel rank's share, train.c): two loaders, one filling every micro-batch, one
 * filling every other and skipping the rest, draw the same units and epoch ends, and the batches the
 * second fills equal the first's; a skipped batch counts no targets. */
static void test_skip(void) {
    loader L, R;
    loader_init(&L, &g_d, 2, 0, PAD, 11);
    loader_init(&R, &g_d, 2, 0, PAD, 11);
    int bad = 0, skipped_targets = 0;
    for (int k = 0; k < 9; k++) { /* 3 epochs of 3 micro-batches */
        loader_next(&L);
        if (k % 2) {
            loader_skip(&R);
            skipped_targets += R.n_targets != 0 || R.n_real != 0;
        } else {
            loader_next(&R);
            bad += R.T != L.T || memcmp(R.tokens, L.tokens, sizeof(int32_t) * L.rows * L.T) != 0 ||
                   memcmp(R.targets, L.targets, sizeof(int32_t) * L.rows * L.T) != 0 || R.n_targets != L.n_targets;
        }
        bad += R.rows != L.rows || R.epoch_end != L.epoch_end || memcmp(R.units, L.units, sizeof(int64_t) * L.rows);
    }
    CHECK(bad == 0, "skipping: %d micro-batches differ from the loader that filled every one", bad);
    CHECK(skipped_targets == 0, "a skipped micro-batch counts targets or tokens");
    CHECK(loader_get_state(&R).epoch == loader_get_state(&L).epoch &&
              loader_get_state(&R).cursor == loader_get_state(&L).cursor, "skipping leaves the loader elsewhere");
    loader_free(&L);
    loader_free(&R);
    printf("loader: skipping every other micro-batch keeps the same units, epoch ends and batches\n");
}

static void test_errors(void) {
    loader L;
    slim_dataset empty = {0};
    CHECK(loader_init(&L, &empty, 2, 0, PAD, 1) == -1, "an empty dataset must be refused");
    loader_free(&L);
    CHECK(loader_init(&L, &g_d, 0, 0, PAD, 1) == -1, "batch 0 must be refused");
    loader_free(&L);
    slim_dataset shorter = g_d;
    shorter.max_seq_len = 4; /* rows of 5: example 3 fits, but nothing longer would */
    CHECK(loader_init(&L, &shorter, 2, 1, PAD, 1) == 0 && L.T_max == 5, "packing rows are at least the longest example");
    loader_free(&L);
}

/* Rows equal field by field (the struct has padding). */
static int rows_equal(const evalloader_row *a, const evalloader_row *b, int n) {
    int ok = 1;
    for (int i = 0; i < n; i++)
        ok &= a[i].item == b[i].item && a[i].label == b[i].label && a[i].first == b[i].first && a[i].n == b[i].n;
    return ok;
}

static void test_evalloader(void) {
    const int32_t c0[2] = {7, 2}, c1[3] = {8, 9, 2};
    const int32_t *comp[2] = {c0, c1};
    const int comp_len[2] = {2, 3};
    const int64_t idx[3] = {1, 0, 3}; /* prompts of 1, 2, 3 tokens: item 2 first, then 1, then 0 */
    evalloader L;
    evalloader_init(&L, &g_d, idx, 3, comp, comp_len, 2, 4, PAD);
    CHECK(L.T_max == 5 && L.n_rows == 6, "T_max %d (3 + 3 - 1), rows %lld", L.T_max, (long long)L.n_rows);
    CHECK(evalloader_next(&L) == 4 && L.T == 5, "batch 1: %d rows of %d, expected 4 of 5", L.rows, L.T);
    const int32_t tok1[4][5] = {{1, 40, 41, 7, PAD}, {1, 40, 41, 8, 9}, {1, 10, 7, PAD, PAD}, {1, 10, 8, 9, PAD}};
    const int32_t tgt1[4][5] = {{-1, -1, 7, 2, -1}, {-1, -1, 8, 9, 2}, {-1, 7, 2, -1, -1}, {-1, 8, 9, 2, -1}};
    const evalloader_row row1[4] = {{2, 0, 2, 2}, {2, 1, 2, 3}, {1, 0, 1, 2}, {1, 1, 1, 3}};
    CHECK(!memcmp(L.tokens, tok1, sizeof tok1), "batch 1 tokens: prompt + completion without its last token, padded");
    CHECK(!memcmp(L.targets, tgt1, sizeof tgt1), "batch 1 targets: the completion ids from the prompt's last token");
    CHECK(rows_equal(L.row, row1, 4), "batch 1 rows (item, label, first, n)");
    CHECK(evalloader_next(&L) == 2 && L.T == 3, "batch 2: %d rows of %d, expected 2 of 3", L.rows, L.T);
    const int32_t tok2[2][3] = {{1, 7, PAD}, {1, 8, 9}}, tgt2[2][3] = {{7, 2, -1}, {8, 9, 2}};
    const evalloader_row row2[2] = {{0, 0, 0, 2}, {0, 1, 0, 3}};
    CHECK(!memcmp(L.tokens, tok2, sizeof tok2) && !memcmp(L.targets, tgt2, sizeof tgt2) &&
              rows_equal(L.row, row2, 2),
          "batch 2: example 1 (a one-token prompt) with both labels");
    CHECK(evalloader_next(&L) == 0 && L.cursor == 6, "after every row, evalloader_next must return 0");
    evalloader_free(&L);
    printf("evalloader: 3 examples x 2 labels in batches of 4 and 2, longest prompts first\n");
}

int main(void) {
    build_dataset();
    test_batches();
    test_packed();
    test_state();
    test_skip();
    test_errors();
    test_evalloader();
    return tu_finish("test_loader");
}
