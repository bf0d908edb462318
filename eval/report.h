/* report.h — `slimtune eval`'s reports: <out_dir>/eval/report.json and report.md, and the summary on
 * stdout. Internal to eval/. */
#ifndef SLIM_EVAL_REPORT_H
#define SLIM_EVAL_REPORT_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "eval.h"

/* The systems scored on the same examples: the fine-tuned model, the base, the train split's majority
 * class, then the optional ones (a previous report's or another adapter's predictions). */
enum { SYS_FINETUNED, SYS_BASE, SYS_MAJORITY, N_FIXED_SYSTEMS };
#define EVAL_MAX_SYSTEMS 16

typedef struct eval_system {
    char name[128];        /* "fine-tuned", "base", "majority", "previous", ... */
    int32_t *pred;         /* [n] predicted label indices */
    eval_metrics m;
    eval_paired vs;        /* the fine-tuned model against this system (not for SYS_FINETUNED) */
    int external;          /* 1: answers read from an eval.baselines file; then: */
    int64_t n_missing, n_invalid, n_bad_rows; /* eval_baseline's counts */
} eval_system;

#define EVAL_ECE_BINS 15
#define EVAL_CURVE_POINTS 20

/* The fine-tuned model's confidence on the test examples: calibration and the routing threshold. */
typedef struct eval_calibration {
    double temperature;        /* fitted on the validation split (1 without one) */
    int64_t n_val;             /* validation examples it was fitted on (0: none) */
    double nll_raw, nll;       /* test mean NLL at T = 1 and at the temperature */
    double ece_raw, ece;       /* test ECE at T = 1 and at the temperature */
    double bin_conf[EVAL_ECE_BINS], bin_acc[EVAL_ECE_BINS]; /* the reliability diagram at the temperature */
    int64_t bin_n[EVAL_ECE_BINS];
    double *conf;              /* [n] test confidence (the predicted label's probability) at the temperature */
    uint8_t *correct;          /* [n] the prediction was right */
    double curve_coverage[EVAL_CURVE_POINTS], curve_accuracy[EVAL_CURVE_POINTS], curve_threshold[EVAL_CURVE_POINTS];
    double target;             /* eval.target_accuracy */
    double threshold;          /* answer when confidence >= threshold (INFINITY: the target is out of reach) */
    int threshold_on_val;      /* 1: chosen on the validation split, 0: on the test split */
    double coverage, accuracy; /* on the test split at the threshold */
} eval_calibration;

/* One of the fine-tuned model's confident errors, for report.html. */
typedef struct eval_error {
    int64_t index;     /* the example in the dataset */
    int gold, pred;
    double confidence; /* the predicted label's probability at the temperature */
    char *text;        /* the example's prompt, decoded */
} eval_error;
#define EVAL_MAX_ERRORS 10

/* Everything a report says about one eval run. */
typedef struct eval_result {
    const char *config, *model, *adapter, *dataset, *split; /* paths and names, as given */
    int64_t n, n_unlabeled;    /* examples scored; unlabeled examples skipped */
    const int64_t *idx;        /* [n] their indices in the dataset */
    const int32_t *truth;      /* [n] their labels */
    char fingerprint[65];      /* sha256 of the examples scored (eval_fingerprint): a paired comparison needs equal ones */
    int n_labels;
    char *const *labels;       /* [n_labels] */
    int majority;              /* the majority label of the train split */
    int n_systems;
    eval_system sys[EVAL_MAX_SYSTEMS];
    int previous;              /* index of the system the regression gate compares with, or -1 */
    double best_baseline, gain;
    double min_accuracy, min_gain, max_regression, alpha;
    int acc_ok, gain_ok, regression_ok; /* the gates */
    eval_calibration cal;
    const char *metrics_path;  /* <out_dir>/train/metrics.jsonl (report.html's loss curves) */
    int n_worst;
    eval_error worst[EVAL_MAX_ERRORS]; /* the most confident errors, highest first */
    double t_finetuned, t_base, wall; /* seconds */
} eval_result;

/* Writes dir/report.json and dir/report.md (dir made when missing; each file atomically), then prints
 * the summary table and the gain on stdout. Returns 0, or -1 with an error. */
int eval_write_reports(const eval_result *r, const char *dir);

/* Writes report.html at path (atomically): a self-contained page (html.c). Returns 0 or -1. */
int eval_write_html(const eval_result *r, const char *path);

#endif
