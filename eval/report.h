/* report.h — `slimtune eval`'s reports: <out_dir>/eval/report.json and report.md, and the summary on
 * stdout. Internal to eval/. */
#ifndef SLIM_EVAL_REPORT_H
#define SLIM_EVAL_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "eval.h"

/* The three systems scored on the same examples. */
enum { SYS_FINETUNED, SYS_BASE, SYS_MAJORITY, N_SYSTEMS };

/* Everything a report says about one eval run. */
typedef struct eval_result {
    const char *config, *model, *adapter, *dataset, *split; /* paths and names, as given */
    int64_t n, n_unlabeled;    /* examples scored; unlabeled examples skipped */
    int n_labels;
    char *const *labels;       /* [n_labels] */
    int majority;              /* the majority label of the train split */
    eval_metrics ms[N_SYSTEMS];
    double best_baseline, gain;
    double min_accuracy, min_gain;
    int acc_ok, gain_ok;       /* the gates */
    double t_finetuned, t_base, wall; /* seconds */
} eval_result;

/* Writes dir/report.json and dir/report.md (dir made when missing; each file atomically), then prints
 * the summary table and the gain on stdout. Returns 0, or -1 with an error. */
int eval_write_reports(const eval_result *r, const char *dir);

#endif
