/* test_paired.c — eval/paired.c against references written elsewhere: McNemar's exact p-values equal
 * R's binom.test (Rscript, installed by make deps) on a grid of discordant counts; the bootstrap
 * interval of a paired accuracy difference agrees with the Wald interval of the paired difference of
 * proportions (width within 10% at n = 4000), holds the point estimate, is the same for the same
 * seed; identical systems give 0, [0, 0] and p = 1; the macro-F1 difference equals the difference of
 * eval_metrics_compute's. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "testutil.h"
#include "../../eval/eval.h"

/* McNemar's p for each (b, c) of the grid against R's two-sided exact binomial test, binom.test(b, b + c). */
static void test_mcnemar_r(void) {
    static const int grid[][2] = {{0, 0}, {1, 0}, {4, 60}, {10, 2}, {3, 4}, {7, 7}, {0, 25}, {120, 95}, {31, 58},
                                  {500, 560}, {2, 40}};
    const int n = (int)(sizeof grid / sizeof grid[0]);
    char cmd[2048] = "Rscript -e 'b <- c(";
    for (int i = 0; i < n; i++) snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), "%s%d", i ? "," : "", grid[i][0]);
    strcat(cmd, "); c <- c(");
    for (int i = 0; i < n; i++) snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), "%s%d", i ? "," : "", grid[i][1]);
    strcat(cmd, "); for (i in seq_along(b)) cat(sprintf(\"%.15g\\n\", if (b[i] + c[i] == 0) 1 else "
                "binom.test(b[i], b[i] + c[i])$p.value))' 2>&1");
    FILE *f = popen(cmd, "r");
    CHECK(f != NULL, "popen Rscript");
    if (!f) return;
    int got = 0, bad = 0;
    double want;
    while (got < n && fscanf(f, "%lf", &want) == 1) {
        double p = eval_mcnemar_exact(grid[got][0], grid[got][1]);
        if (!(fabs(p - want) <= 1e-9 * want + 1e-300)) {
            fprintf(stderr, "  b %d c %d: %.12g, R %.12g\n", grid[got][0], grid[got][1], p, want);
            bad++;
        }
        got++;
    }
    int rc = pclose(f);
    CHECK(rc == 0 && got == n, "Rscript (r-base-core, make deps) printed %d of %d p-values (exit %d)", got, n, rc);
    CHECK(bad == 0, "%d McNemar p-values differ from R's binom.test", bad);
    printf("paired: McNemar exact p equals R's binom.test on %d (b, c) pairs\n", got);
}

/* n examples, K labels: truth and two systems right with probabilities 0.80 and 0.75 (independently). */
static void make_preds(int64_t n, int K, int32_t *truth, int32_t *pa, int32_t *pb, uint64_t seed) {
    slim_rng rng;
    slim_rng_seed(&rng, seed);
    for (int64_t i = 0; i < n; i++) {
        truth[i] = (int32_t)(slim_rng_u32(&rng) % (uint32_t)K);
        pa[i] = slim_rng_uniform(&rng) < 0.80f ? truth[i] : (truth[i] + 1) % K;
        pb[i] = slim_rng_uniform(&rng) < 0.75f ? truth[i] : (truth[i] + 1 + (int32_t)(slim_rng_u32(&rng) % 2)) % K;
    }
}

static void test_bootstrap(void) {
    enum { N = 4000, K = 4 };
    static int32_t truth[N], pa[N], pb[N];
    make_preds(N, K, truth, pa, pb, 11);
    eval_paired p, q;
    CHECK(eval_paired_compare(&p, truth, pa, pb, N, K, 10000, 7) == 0, "compare: %s", slim_last_error());
    /* the Wald interval of a paired difference of proportions: d +- 1.96 sqrt(b + c - n d^2) / n */
    double d = (double)(p.a_only - p.b_only) / N;
    double se = sqrt((double)(p.a_only + p.b_only) - N * d * d) / N;
    double wald = 2 * 1.96 * se, width = p.acc_hi - p.acc_lo;
    CHECK(fabs(p.acc_diff - d) < 1e-12, "accuracy difference %g, counted %g", p.acc_diff, d);
    CHECK(fabs(width / wald - 1) < 0.10, "bootstrap interval width %g vs Wald %g", width, wald);
    CHECK(p.acc_lo <= p.acc_diff && p.acc_diff <= p.acc_hi && p.f1_lo <= p.f1_diff && p.f1_diff <= p.f1_hi,
          "intervals [%g, %g] / [%g, %g] miss the estimates %g / %g", p.acc_lo, p.acc_hi, p.f1_lo, p.f1_hi, p.acc_diff,
          p.f1_diff);
    eval_metrics ma, mb;
    CHECK(eval_metrics_compute(&ma, truth, pa, N, K) == 0 && eval_metrics_compute(&mb, truth, pb, N, K) == 0, "metrics");
    CHECK(fabs(p.f1_diff - (ma.macro_f1 - mb.macro_f1)) < 1e-12, "macro-F1 difference %.15g vs metrics' %.15g",
          p.f1_diff, ma.macro_f1 - mb.macro_f1);
    eval_metrics_free(&ma);
    eval_metrics_free(&mb);
    CHECK(eval_paired_compare(&q, truth, pa, pb, N, K, 10000, 7) == 0 && !memcmp(&p, &q, sizeof p),
          "the same seed gives another result");
    CHECK(eval_paired_compare(&q, truth, pa, pa, N, K, 2000, 7) == 0 && q.acc_diff == 0 && q.acc_lo == 0 &&
              q.acc_hi == 0 && q.f1_diff == 0 && q.p_mcnemar == 1 && q.a_only == 0,
          "a system against itself: %g [%g, %g], p %g", q.acc_diff, q.acc_lo, q.acc_hi, q.p_mcnemar);
    CHECK(eval_paired_compare(&q, truth, pa, pb, 0, K, 100, 1) == -1, "no examples accepted");
    printf("paired: n %d: accuracy %+.4f [%+.4f, %+.4f] (Wald width %.4f), macro-F1 %+.4f [%+.4f, %+.4f], p %.3g\n", N,
           p.acc_diff, p.acc_lo, p.acc_hi, wald, p.f1_diff, p.f1_lo, p.f1_hi, p.p_mcnemar);
}

int main(void) {
    test_mcnemar_r();
    test_bootstrap();
    return tu_finish("paired");
}
