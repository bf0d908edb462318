/* baselines.h — eval.baselines: external systems' answers joined to the test examples (baselines.c).
 * Internal to eval/. */
#ifndef SLIM_EVAL_BASELINES_H
#define SLIM_EVAL_BASELINES_H

#include <stdint.h>

#include "config.h"
#include "dataset.h"

/* One external system's answers on the scored examples. */
typedef struct eval_baseline {
    char name[128];
    int32_t *pred;       /* [n] label index, -1: missing or outside the label set (counted wrong) */
    int64_t n_missing;   /* examples whose key has no row, or whose row has no answer */
    int64_t n_invalid;   /* examples answered with a label outside the set */
    int64_t n_bad_rows;  /* rows of the file the reader rejected (an empty key, bad UTF-8, ...) */
} eval_baseline;

/* Reads every entry of cfg->baselines (see baselines.c) for the scored examples idx [n] of test into
 * out [cap], printing a line each. Returns how many (0 without eval.baselines), or -1 with an error
 * naming the file, line or config entry (out freed). */
int eval_read_baselines(eval_baseline *out, int cap, const slim_config *cfg, const slim_dataset *test,
                        const int64_t *idx, int64_t n);

#endif
