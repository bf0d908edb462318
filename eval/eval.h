/* eval.h — `slimtune eval`: label scoring of a held-out split against baselines.
 *
 * Label scoring: the score of label k for an example is the summed log-probability (nats) of the
 * completion tokens of k (completion template with {label} substituted, encoded without BOS and
 * without the space prefix, then EOS — exactly as `data prepare` builds them) given the example's
 * prompt; the prediction is the label with the highest score (the first on ties). */
#ifndef SLIM_EVAL_H
#define SLIM_EVAL_H

#include <stdint.h>

#include "config.h"
#include "dataset.h"
#include "model/model.h"

/* Options of `slimtune eval --config FILE [...]`: NAN / -1 take the config's eval.* value. */
typedef struct eval_opts {
    const char *config;
    const char *adapter;       /* NULL: <out_dir>/train/adapter.gguf */
    const char *split;         /* dataset split scored: <out_dir>/data/<split>.h5 (default "test") */
    double min_accuracy, min_gain;
    long max_examples;         /* 0 = all */
    long batch;                /* (example, label) rows per forward pass (default 32) */
    const char *baseline_report;  /* a previous report.json: its fine-tuned predictions are "previous" */
    const char *baseline_adapter; /* another adapter, scored as "previous" */
    double max_regression, alpha; /* the regression gate (NAN: eval.max_regression, eval.alpha) */
    int no_prompt_cache;       /* --no-prompt-cache: one row per (example, label) (eval_score_mode cached 0) */
} eval_opts;

/* Parses argv (argv[0] = "eval") into *o: SLIM_OK, SLIM_HELP (usage printed) or -1 (lib/cli.h). */
int eval_parse_args(eval_opts *o, int argc, char **argv);

/* Scores the split with the fine-tuned model, the base and the majority class, writes
 * <out_dir>/eval/report.json and report.md and prints the summary. Returns SLIM_OK when the gates
 * pass, SLIM_GATE_FAILED when one fails (reports written), -1 with an error. */
int eval_run(const slim_config *cfg, const eval_opts *o);

/* Entry point: parse, load the config, run; argv[0] = "eval". Returns SLIM_OK, SLIM_GATE_FAILED or -1
 * (exit status 0, 1 or 2). */
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
    int64_t no_answer;  /* predictions -1 (no answer): wrong, in no column of the confusion matrix */
} eval_metrics;

/* Computes the metrics of pred against truth ([n] label indices in 0..n_labels-1; a prediction may be -1,
 * no answer, which is wrong for its true class and counts against no other). Returns 0, or -1 when n < 1,
 * n_labels < 1 or an index is out of range (naming the example). */
int eval_metrics_compute(eval_metrics *m, const int32_t *truth, const int32_t *pred, int64_t n, int n_labels);
/* Frees the per-class arrays of eval_metrics_compute; *m is zeroed. */
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

/* A paired comparison of system A against system B on the same n examples (eval_paired_compare). */
typedef struct eval_paired {
    int64_t n;
    double acc_diff, acc_lo, acc_hi; /* accuracy A - B and its 95% bootstrap percentile interval */
    double f1_diff, f1_lo, f1_hi;    /* macro-F1 A - B and its interval */
    int64_t a_only, b_only;          /* examples only A got right, only B got right (McNemar's b and c) */
    double p_mcnemar;                /* McNemar's exact two-sided p-value (eval_mcnemar_exact) */
    int resamples;                   /* bootstrap resamples */
} eval_paired;

/* Compares predictions pa (A) and pb (B) of the same n examples against truth ([n] label indices in
 * 0..K-1, checked by the caller; predictions may be -1, no answer): the differences A - B of accuracy and
 * macro-F1 with 95% percentile intervals from `resamples` bootstrap resamples of the examples (Efron & Tibshirani 1993, ch. 13; the
 * same resampled examples for both systems, the RNG seeded with seed), and McNemar's exact test on the
 * examples where exactly one system is right. Returns 0, or -1 with an error (n, K or resamples < 1). */
int eval_paired_compare(eval_paired *p, const int32_t *truth, const int32_t *pa, const int32_t *pb, int64_t n, int K,
                        int resamples, uint64_t seed);
/* McNemar's exact test (McNemar 1947; the exact binomial form): with b and c the discordant pairs, the
 * two-sided p-value min(1, 2 P(X <= min(b, c))), X ~ Binomial(b + c, 1/2); 1 when b + c = 0. */
double eval_mcnemar_exact(int64_t b, int64_t c);

/* Calibration and routing (calibrate.c). probs[i * K + k] = softmax_k(scores[i * K + .] / T): each
 * prediction's probability over the labels' completion log-likelihoods at temperature T > 0. */
void eval_softmax(const double *scores, int64_t n, int K, double T, double *probs);
/* The mean negative log-likelihood (nats) of the labels truth [n] under softmax(scores / T). */
double eval_mean_nll(const double *scores, const int32_t *truth, int64_t n, int K, double T);
/* Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks"): the T in [0.05, 20]
 * minimizing the mean negative log-likelihood of truth under softmax(scores / T) (golden-section search on
 * log T); *nll (when not NULL): that minimum. */
double eval_fit_temperature(const double *scores, const int32_t *truth, int64_t n, int K, double *nll);
/* conf[i] = the largest probability of example i, correct[i] = 1 when its label is truth[i]. */
void eval_confidence(const double *probs, const int32_t *truth, int64_t n, int K, double *conf, uint8_t *correct);
/* Expected calibration error (Naeini et al. 2015; Guo et al. 2017): examples binned by confidence into `bins`
 * equal-width bins (b/bins, (b+1)/bins], sum over bins of |accuracy - mean confidence| x the bin's share;
 * each bin's mean confidence, accuracy and count into bin_conf, bin_acc, bin_n [bins]. */
double eval_ece(const double *conf, const uint8_t *correct, int64_t n, int bins, double *bin_conf, double *bin_acc,
                int64_t *bin_n);
/* The example indices [n] by confidence, highest first (ties by index); free() it. */
int64_t *eval_order_by_confidence(const double *conf, int64_t n);
/* The routing threshold of a target accuracy: the lowest confidence t such that the examples with
 * confidence >= t are right at least `target` of the time (the most traffic the small model can keep at
 * that accuracy); INFINITY when no such set exists. */
double eval_route_threshold(const double *conf, const uint8_t *correct, int64_t n, double target);
/* The share of examples with confidence >= threshold (*coverage) and their accuracy (*accuracy, NAN when
 * none). */
void eval_at_threshold(const double *conf, const uint8_t *correct, int64_t n, double threshold, double *coverage,
                       double *accuracy);

/* eval_score with the choice of layout: cached 1 (eval_score's): each example is one row holding its
 * prompt once and every label's completion in a segment that sees the prompt and itself
 * (model_forward_prefix), batch_rows / n_labels examples (at least 1) a forward pass; cached 0: one row per
 * (example, label), prompt repeated, batch_rows rows a pass (evalloader). Both give the same
 * log-probabilities up to float rounding. */
int eval_score_mode(const model *m, const lora_adapter *lora, const slim_dataset *d, const int64_t *idx,
                    int64_t n, int batch_rows, const char *progress, double *scores, int cached);

/* Predictions from scores [n, n_labels]: pred[i] = argmax_k (the first maximum). */
void eval_argmax(const double *scores, int64_t n, int n_labels, int32_t *pred);

#endif
