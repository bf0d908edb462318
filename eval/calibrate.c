/* calibrate.c — probabilities from label scores, their calibration (ECE, temperature scaling) and the
 * routing threshold of a target accuracy; see eval.h. */
#include "eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

void eval_softmax(const double *scores, int64_t n, int K, double T, double *probs) {
    for (int64_t i = 0; i < n; i++) {
        const double *s = scores + i * K;
        double *p = probs + i * K, mx = s[0], z = 0.0;
        for (int k = 1; k < K; k++) mx = s[k] > mx ? s[k] : mx;
        for (int k = 0; k < K; k++) z += p[k] = exp((s[k] - mx) / T);
        for (int k = 0; k < K; k++) p[k] /= z;
    }
}

double eval_mean_nll(const double *scores, const int32_t *truth, int64_t n, int K, double T) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double *s = scores + i * K;
        double mx = s[0], z = 0.0;
        for (int k = 1; k < K; k++) mx = s[k] > mx ? s[k] : mx;
        for (int k = 0; k < K; k++) z += exp((s[k] - mx) / T);
        sum += log(z) - (s[truth[i]] - mx) / T;
    }
    return sum / (double)n;
}

double eval_fit_temperature(const double *scores, const int32_t *truth, int64_t n, int K, double *nll) {
    /* golden-section search of log T in [log 0.05, log 20]: the NLL is convex in 1/T (Guo et al. 2017) */
    const double g = (sqrt(5.0) - 1.0) / 2.0;
    double a = log(0.05), b = log(20.0);
    double x1 = b - g * (b - a), x2 = a + g * (b - a);
    double f1 = eval_mean_nll(scores, truth, n, K, exp(x1)), f2 = eval_mean_nll(scores, truth, n, K, exp(x2));
    for (int it = 0; it < 100 && b - a > 1e-7; it++) {
        if (f1 <= f2) {
            b = x2; x2 = x1; f2 = f1;
            x1 = b - g * (b - a);
            f1 = eval_mean_nll(scores, truth, n, K, exp(x1));
        } else {
            a = x1; x1 = x2; f1 = f2;
            x2 = a + g * (b - a);
            f2 = eval_mean_nll(scores, truth, n, K, exp(x2));
        }
    }
    double T = exp((a + b) / 2);
    if (nll) *nll = eval_mean_nll(scores, truth, n, K, T);
    return T;
}

void eval_confidence(const double *probs, const int32_t *truth, int64_t n, int K, double *conf, uint8_t *correct) {
    for (int64_t i = 0; i < n; i++) {
        const double *p = probs + i * K;
        int best = 0;
        for (int k = 1; k < K; k++)
            if (p[k] > p[best]) best = k;
        conf[i] = p[best];
        correct[i] = best == truth[i];
    }
}

double eval_ece(const double *conf, const uint8_t *correct, int64_t n, int bins, double *bin_conf, double *bin_acc,
                int64_t *bin_n) {
    for (int b = 0; b < bins; b++) bin_conf[b] = bin_acc[b] = 0.0, bin_n[b] = 0;
    for (int64_t i = 0; i < n; i++) {
        int b = (int)(conf[i] * bins); /* (b/bins, (b+1)/bins], the top bin closed */
        if (b >= bins) b = bins - 1;
        if (b > 0 && conf[i] <= (double)b / bins) b--;
        bin_conf[b] += conf[i];
        bin_acc[b] += correct[i];
        bin_n[b]++;
    }
    double ece = 0.0;
    for (int b = 0; b < bins; b++) {
        if (!bin_n[b]) continue;
        bin_conf[b] /= (double)bin_n[b];
        bin_acc[b] /= (double)bin_n[b];
        ece += fabs(bin_acc[b] - bin_conf[b]) * (double)bin_n[b] / (double)n;
    }
    return ece;
}

/* Sorts the example indices by confidence, highest first (ties by index). */
static const double *eval_sort_conf;
static int eval_cmp_conf(const void *a, const void *b) {
    int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    double x = eval_sort_conf[i], y = eval_sort_conf[j];
    return x > y ? -1 : x < y ? 1 : (i > j) - (i < j);
}

int64_t *eval_order_by_confidence(const double *conf, int64_t n) {
    int64_t *order = slim_malloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t));
    for (int64_t i = 0; i < n; i++) order[i] = i;
    eval_sort_conf = conf;
    qsort(order, (size_t)n, sizeof(int64_t), eval_cmp_conf);
    eval_sort_conf = NULL;
    return order;
}

double eval_route_threshold(const double *conf, const uint8_t *correct, int64_t n, double target) {
    int64_t *order = eval_order_by_confidence(conf, n);
    double threshold = INFINITY; /* nothing kept unless some prefix reaches the target */
    int64_t right = 0;
    for (int64_t k = 0; k < n; k++) {
        right += correct[order[k]];
        /* a threshold can only cut between distinct confidences: keep the whole group of equal ones */
        if (k + 1 < n && conf[order[k + 1]] == conf[order[k]]) continue;
        if ((double)right >= target * (double)(k + 1)) threshold = conf[order[k]];
    }
    free(order);
    return threshold;
}

void eval_at_threshold(const double *conf, const uint8_t *correct, int64_t n, double threshold, double *coverage,
                       double *accuracy) {
    int64_t kept = 0, right = 0;
    for (int64_t i = 0; i < n; i++)
        if (conf[i] >= threshold) {
            kept++;
            right += correct[i];
        }
    *coverage = n > 0 ? (double)kept / (double)n : 0.0;
    *accuracy = kept > 0 ? (double)right / (double)kept : NAN;
}
