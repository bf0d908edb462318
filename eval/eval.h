/* eval.h — `slimtune eval`: label scoring of a held-out split against baselines.
 *
 * Label scoring: the score of label k for an example is the summed log-probability (nats) of the
 * completion tokens of k (completion template with {label} substituted, encoded without BOS and
 * without the space prefix, then EOS — exactly as `data prepare` builds them) given the example's
 * prompt; the prediction is the label with the highest score (the first on ties). */
#ifndef SLIM_EVAL_H
#define SLIM_EVAL_H

#include <stdint.h>

#include "dataset.h"
#include "model/model.h"

/* Entry point of `slimtune eval --config FILE [...]`; argv[0] = "eval". Returns the exit status
 * (0 pass, 1 a quality gate failed, 2 an error). */
int eval_main(int argc, char **argv);

/* Classification metrics of n predictions over n_labels classes. */
typedef struct eval_metrics {
    int n_labels;
    int64_t n;          /* examples counted */
    double accuracy;    /* correct / n */
    double macro_f1;    /* unweighted mean of f1 over all n_labels classes */
    double *precision;  /* [n_labels] tp / (tp + fp), 0 when the class is never predicted */
    double *recall;     /* [n_labels] tp / (tp + fn), 0 when the class has no support */
    double *f1;         /* [n_labels] 2PR / (P + R), 0 when P + R = 0 */
    int64_t *support;   /* [n_labels] examples whose true label is the class */
    int64_t *confusion; /* [n_labels * n_labels] row = true label, column = predicted label */
} eval_metrics;

/* Computes the metrics of pred against truth ([n] label indices in 0..n_labels-1). Returns 0, or -1
 * when n < 1, n_labels < 1 or an index is out of range (naming the example). */
int eval_metrics_compute(eval_metrics *m, const int32_t *truth, const int32_t *pred, int64_t n, int n_labels);
void eval_metrics_free(eval_metrics *m);

/* The completion ids of label_name: template with every {label} replaced, tokenizer_encode(add_bos 0,
 * space_prefix 0), then EOS. Returns a fresh array and its length in *n, or NULL with an error. */
int32_t *eval_completion_ids(const tokenizer *tok, const char *completion_template, const char *label_name, int *n);

/* Scores every label of the examples idx[0..n) of d (idx NULL: examples 0..n-1) with the model
 * (lora NULL: base alone): scores[i * d->n_labels + k] = summed log p(completion of label k | prompt
 * of example idx[i]). Rows (example, label) go through micro-batches of batch_rows rows padded to
 * the longest row; activations are allocated once. progress: a name for the examples/s lines on
 * stderr, or NULL for silence. Returns 0, or -1 with an error (bad template, token out of vocabulary). */
int eval_score(const model *m, const lora_adapter *lora, const slim_dataset *d, const int64_t *idx,
               int64_t n, int batch_rows, const char *progress, double *scores);

/* Predictions from scores [n, n_labels]: pred[i] = argmax_k (the first maximum). */
void eval_argmax(const double *scores, int64_t n, int n_labels, int32_t *pred);

#endif
