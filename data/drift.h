/* drift.h — `slimtune data drift`: has production data moved away from what the model was trained on?
 *
 * Reads a reference file (the training data) and a current one (recent production rows), both rendered
 * with the config's template and tokenized with the model's tokenizer as `data prepare` does, and
 * compares: the label distribution (when both are labelled), the distribution of input lengths in tokens
 * (two-sample Kolmogorov-Smirnov), the unigram token distribution (Jensen-Shannon divergence), and with
 * --adapter the model's mean confidence (the predicted label's probability, eval's label scoring) and its
 * predicted-label distribution. Each figure has a gate in the config (drift.*); crossing one makes the
 * exit status 1, so a scheduled CI job can start retraining. Writes <out_dir>/drift/report.json and
 * prints a table. */
#ifndef SLIM_DRIFT_H
#define SLIM_DRIFT_H

#include <stdint.h>

#include "config.h"

/* Options of `slimtune data drift --config C --reference F --current F [--adapter A]`. */
typedef struct drift_opts {
    const char *config, *reference, *current, *adapter;
} drift_opts;

/* Parses argv (argv[0] = "drift"): SLIM_OK, SLIM_HELP or -1. */
int data_drift_parse_args(drift_opts *o, int argc, char **argv);
/* Runs the comparison. Returns SLIM_OK, SLIM_GATE_FAILED (a drift.* gate crossed) or -1 with an error. */
int data_drift_run(const slim_config *cfg, const drift_opts *o);
/* Entry point: argv[0] = "drift". */
int data_drift_main(int argc, char **argv);

/* Jensen-Shannon divergence (base 2, in [0, 1]; Lin 1991) of two count vectors a, b [n] (each normalised
 * to a distribution; 0 when either is all zero). */
double drift_js(const double *a, const double *b, int64_t n);
/* Two-sample Kolmogorov-Smirnov test of samples x [nx] and y [ny] (sorted in place): the statistic D (the
 * largest distance between the two empirical distribution functions, over the distinct values) and its
 * asymptotic p-value, the Kolmogorov distribution at sqrt(nx ny / (nx + ny)) D (as R's ks.test with
 * exact = FALSE). */
void drift_ks(double *x, int64_t nx, double *y, int64_t ny, double *D, double *p);

#endif
