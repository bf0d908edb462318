/* metrics.c — accuracy, per-class precision/recall/F1, macro-F1, confusion; see eval.h. */
#include "eval.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"

int eval_metrics_compute(eval_metrics *m, const int32_t *truth, const int32_t *pred, int64_t n, int n_labels) {
    memset(m, 0, sizeof *m);
    if (n < 1) return slim_set_error("eval metrics: no examples to score");
    if (n_labels < 1) return slim_set_error("eval metrics: no labels");
    for (int64_t i = 0; i < n; i++) {
        if (truth[i] < 0 || truth[i] >= n_labels)
            return slim_set_error("eval metrics: example %lld: true label %d not in 0..%d", (long long)i, truth[i],
                                  n_labels - 1);
        if (pred[i] < -1 || pred[i] >= n_labels) /* -1: no answer (an external system's missing row) */
            return slim_set_error("eval metrics: example %lld: predicted label %d not in 0..%d", (long long)i,
                                  pred[i], n_labels - 1);
    }
    int K = n_labels;
    m->n_labels = K;
    m->n = n;
    m->precision = slim_calloc(K, sizeof(double));
    m->recall = slim_calloc(K, sizeof(double));
    m->f1 = slim_calloc(K, sizeof(double));
    m->support = slim_calloc(K, sizeof(int64_t));
    m->confusion = slim_calloc((size_t)K * K, sizeof(int64_t));
    int64_t correct = 0;
    for (int64_t i = 0; i < n; i++) {
        if (pred[i] >= 0) m->confusion[(size_t)truth[i] * K + pred[i]]++;
        else m->no_answer++;
        m->support[truth[i]]++;
        correct += truth[i] == pred[i];
    }
    m->accuracy = (double)correct / (double)n;
    double sum_f1 = 0.0;
    for (int k = 0; k < K; k++) {
        int64_t tp = m->confusion[(size_t)k * K + k], predicted = 0;
        for (int j = 0; j < K; j++) predicted += m->confusion[(size_t)j * K + k];
        m->precision[k] = predicted ? (double)tp / (double)predicted : 0.0;
        m->recall[k] = m->support[k] ? (double)tp / (double)m->support[k] : 0.0;
        double pr = m->precision[k] + m->recall[k];
        m->f1[k] = pr > 0.0 ? 2.0 * m->precision[k] * m->recall[k] / pr : 0.0;
        sum_f1 += m->f1[k];
    }
    m->macro_f1 = sum_f1 / K;
    return 0;
}

void eval_metrics_free(eval_metrics *m) {
    free(m->precision);
    free(m->recall);
    free(m->f1);
    free(m->support);
    free(m->confusion);
    memset(m, 0, sizeof *m);
}

void eval_argmax(const double *scores, int64_t n, int n_labels, int32_t *pred) {
    for (int64_t i = 0; i < n; i++) {
        int best = 0;
        for (int k = 1; k < n_labels; k++)
            if (scores[i * n_labels + k] > scores[i * n_labels + best]) best = k;
        pred[i] = best;
    }
}
