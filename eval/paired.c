/* paired.c — paired comparison of two systems on the same examples: bootstrap intervals of the
 * accuracy and macro-F1 differences, McNemar's exact test; see eval.h. */
#include "eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

double eval_mcnemar_exact(int64_t b, int64_t c) {
    const int64_t n = b + c, k = b < c ? b : c;
    if (n == 0) return 1.0;
    /* P(X <= k), X ~ Binomial(n, 1/2), summed in log space from the largest term down */
    const double log_half_n = (double)n * log(0.5), lg_n1 = lgamma((double)n + 1.0);
    double sum = 0.0;
    for (int64_t i = 0; i <= k; i++)
        sum += exp(lg_n1 - lgamma((double)i + 1.0) - lgamma((double)(n - i) + 1.0) + log_half_n);
    double p = 2.0 * sum;
    return p < 1.0 ? p : 1.0;
}

/* Macro-F1 from per-class counts tp, fp, fn [K]: the mean over all K classes of 2tp / (2tp + fp + fn)
 * (0 where the class is neither predicted nor present), as eval_metrics_compute defines F1. */
static double eval_macro_f1_counts(const int64_t *tp, const int64_t *fp, const int64_t *fn, int K) {
    double sum = 0.0;
    for (int k = 0; k < K; k++) {
        int64_t d = 2 * tp[k] + fp[k] + fn[k];
        sum += d > 0 ? 2.0 * (double)tp[k] / (double)d : 0.0;
    }
    return sum / K;
}

/* Adds example (truth t, prediction p) to the counts [K] with weight w. */
static void eval_count(int64_t *tp, int64_t *fp, int64_t *fn, int32_t t, int32_t p, int64_t w) {
    if (t == p) {
        tp[t] += w;
    } else {
        if (p >= 0) fp[p] += w; /* -1: no answer */
        fn[t] += w;
    }
}

static int eval_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The 2.5% and 97.5% percentiles of v [R] (sorted in place) into *lo, *hi. */
static void eval_percentiles(double *v, int R, double *lo, double *hi) {
    qsort(v, (size_t)R, sizeof(double), eval_cmp_double);
    int i_lo = (int)floor(0.025 * R), i_hi = (int)ceil(0.975 * R) - 1;
    *lo = v[i_lo < 0 ? 0 : i_lo];
    *hi = v[i_hi >= R ? R - 1 : i_hi];
}

int eval_paired_compare(eval_paired *p, const int32_t *truth, const int32_t *pa, const int32_t *pb, int64_t n, int K,
                        int resamples, uint64_t seed) {
    memset(p, 0, sizeof *p);
    if (n < 1 || K < 1 || resamples < 1) return slim_set_error("paired comparison: no examples, labels or resamples");
    int64_t *cnt = slim_calloc((size_t)6 * K, sizeof(int64_t)); /* tp, fp, fn of A, then of B */
    int64_t right_a = 0, right_b = 0;
    for (int64_t i = 0; i < n; i++) {
        int ra = pa[i] == truth[i], rb = pb[i] == truth[i];
        right_a += ra;
        right_b += rb;
        p->a_only += ra && !rb;
        p->b_only += rb && !ra;
        eval_count(cnt, cnt + K, cnt + 2 * K, truth[i], pa[i], 1);
        eval_count(cnt + 3 * K, cnt + 4 * K, cnt + 5 * K, truth[i], pb[i], 1);
    }
    p->n = n;
    p->acc_diff = (double)(right_a - right_b) / (double)n;
    p->f1_diff = eval_macro_f1_counts(cnt, cnt + K, cnt + 2 * K, K) - eval_macro_f1_counts(cnt + 3 * K, cnt + 4 * K, cnt + 5 * K, K);
    p->p_mcnemar = eval_mcnemar_exact(p->a_only, p->b_only);
    p->resamples = resamples;
    double *acc = slim_malloc((size_t)resamples * sizeof(double)), *f1 = slim_malloc((size_t)resamples * sizeof(double));
    slim_rng rng;
    slim_rng_seed(&rng, seed);
    for (int r = 0; r < resamples; r++) {
        memset(cnt, 0, (size_t)6 * K * sizeof(int64_t));
        int64_t d = 0;
        for (int64_t j = 0; j < n; j++) {
            int64_t i = (int64_t)(((uint64_t)slim_rng_u32(&rng) * (uint64_t)n) >> 32); /* uniform in [0, n) */
            d += (pa[i] == truth[i]) - (pb[i] == truth[i]);
            eval_count(cnt, cnt + K, cnt + 2 * K, truth[i], pa[i], 1);
            eval_count(cnt + 3 * K, cnt + 4 * K, cnt + 5 * K, truth[i], pb[i], 1);
        }
        acc[r] = (double)d / (double)n;
        f1[r] = eval_macro_f1_counts(cnt, cnt + K, cnt + 2 * K, K) - eval_macro_f1_counts(cnt + 3 * K, cnt + 4 * K, cnt + 5 * K, K);
    }
    eval_percentiles(acc, resamples, &p->acc_lo, &p->acc_hi);
    eval_percentiles(f1, resamples, &p->f1_lo, &p->f1_hi);
    free(acc);
    free(f1);
    free(cnt);
    return 0;
}
