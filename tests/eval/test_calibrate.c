/* test_calibrate.c — eval/calibrate.c: temperature scaling recovers the temperature that generated the
 * labels (scores drawn at random, labels sampled from softmax(scores / T0)); the NLL there is the minimum
 * of a scan; ECE and the reliability bins on hand-counted examples; the routing threshold and coverage on
 * a hand-built ranking (ties kept together, an unreachable target); softmax sums to 1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "testutil.h"
#include "../../eval/eval.h"

static void test_temperature(void) {
    enum { N = 20000, K = 5 };
    static double scores[N * K], probs[N * K];
    static int32_t truth[N];
    const double T0[3] = {0.5, 1.0, 2.5};
    slim_rng rng;
    slim_rng_seed(&rng, 3);
    for (int t = 0; t < 3; t++) {
        for (int i = 0; i < N * K; i++) scores[i] = 2.0 * slim_rng_normal(&rng);
        eval_softmax(scores, N, K, T0[t], probs);
        for (int i = 0; i < N; i++) { /* sample the label from probs */
            double u = slim_rng_uniform(&rng), c = 0.0;
            truth[i] = K - 1;
            for (int k = 0; k < K; k++)
                if (u < (c += probs[i * K + k])) { truth[i] = k; break; }
        }
        double nll, T = eval_fit_temperature(scores, truth, N, K, &nll);
        CHECK(fabs(T / T0[t] - 1) < 0.08, "labels drawn at T0 = %g: fitted T = %g", T0[t], T);
        int below = 0;
        for (double x = 0.06; x < 20; x *= 1.05) below += eval_mean_nll(scores, truth, N, K, x) < nll - 1e-9;
        CHECK(below == 0, "T0 %g: %d temperatures of a scan have a lower NLL than the fitted %g", T0[t], below, T);
        printf("calibrate: labels drawn at temperature %.2f, fitted %.4f (NLL %.4f)\n", T0[t], T, nll);
    }
    double sum = 0.0;
    for (int k = 0; k < K; k++) sum += probs[k];
    CHECK(fabs(sum - 1) < 1e-12, "softmax sums to %.15g", sum);
}

static void test_ece(void) {
    /* 6 examples: confidences in bins of width 0.1 (10 bins): 0.95, 0.95, 0.95, 0.95 (3 right); 0.55, 0.55 (1 right) */
    const double conf[6] = {0.95, 0.95, 0.95, 0.95, 0.55, 0.55};
    const uint8_t right[6] = {1, 1, 1, 0, 1, 0};
    double bc[10], ba[10];
    int64_t bn[10];
    double ece = eval_ece(conf, right, 6, 10, bc, ba, bn);
    double want = 4.0 / 6 * fabs(0.75 - 0.95) + 2.0 / 6 * fabs(0.5 - 0.55);
    CHECK(fabs(ece - want) < 1e-12, "ECE %.15g, counted by hand %.15g", ece, want);
    CHECK(bn[9] == 4 && bn[5] == 2 && fabs(ba[9] - 0.75) < 1e-12 && fabs(bc[5] - 0.55) < 1e-12,
          "bins: n %lld / %lld, accuracy %g, confidence %g", (long long)bn[9], (long long)bn[5], ba[9], bc[5]);
    const double edge[2] = {0.5, 1.0}; /* bins are (b/10, (b+1)/10]: 0.5 goes to bin 4, 1.0 to bin 9 */
    const uint8_t r2[2] = {1, 1};
    eval_ece(edge, r2, 2, 10, bc, ba, bn);
    CHECK(bn[4] == 1 && bn[9] == 1, "bin edges: 0.5 in bin %s, 1.0 in bin %s", bn[4] ? "4" : "?", bn[9] ? "9" : "?");
}

static void test_route(void) {
    /* by confidence: 0.9 R, 0.8 R, 0.8 W, 0.7 R, 0.6 W, 0.5 W */
    const double conf[6] = {0.5, 0.8, 0.9, 0.7, 0.8, 0.6};
    const uint8_t right[6] = {0, 1, 1, 1, 0, 1 - 1};
    double cov, acc;
    /* prefixes (tied 0.8s together): 1/1, 3/3 -> 2/3... : {0.9}: 1.0, {0.9, 0.8, 0.8}: 0.667, + 0.7: 0.75 */
    double t = eval_route_threshold(conf, right, 6, 0.75);
    CHECK(t == 0.7, "target 0.75: threshold %g, want 0.7 (4 kept, 3 right)", t);
    eval_at_threshold(conf, right, 6, t, &cov, &acc);
    CHECK(fabs(cov - 4.0 / 6) < 1e-12 && fabs(acc - 0.75) < 1e-12, "at 0.7: coverage %g accuracy %g", cov, acc);
    t = eval_route_threshold(conf, right, 6, 0.9);
    CHECK(t == 0.9, "target 0.9: threshold %g, want 0.9 (the tie at 0.8 is kept whole)", t);
    const uint8_t wrong[6] = {0};
    t = eval_route_threshold(conf, wrong, 6, 0.5);
    eval_at_threshold(conf, wrong, 6, t, &cov, &acc);
    CHECK(isinf(t) && cov == 0 && isnan(acc), "an unreachable target: threshold %g coverage %g", t, cov);
}

int main(void) {
    test_temperature();
    test_ece();
    test_route();
    return tu_finish("calibrate");
}
