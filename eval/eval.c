/* eval.c — `slimtune eval`: label scoring of a held-out split, metrics, baselines; see eval.h.
 *
 * Three systems are scored on the same examples: the fine-tuned model (base + adapter), the base model
 * alone, and the majority class of the train split; with --baseline-report or --baseline-adapter a fourth,
 * "previous" (a report.json's fine-tuned predictions on the same examples, or another adapter scored
 * here). The fine-tuned model is compared with each on the same examples (paired.c: bootstrap intervals,
 * McNemar's exact test). Reports go to <out_dir>/eval/report.json and report.md (atomically,
 * report.c); the result is SLIM_OK when the quality gates pass, SLIM_GATE_FAILED when one fails, -1 on
 * errors (exit status 0, 1, 2). */
#include "eval.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <nettle/sha2.h>

#include "baselines.h"
#include "checkpoint.h"
#include "cli.h"
#include "generative.h"
#include "common.h"
#include "report.h"
#include "../data/reader.h"

static void eval_usage(FILE *f) {
    fprintf(f,
            "usage: slimtune eval --config FILE [--adapter PATH] [--split NAME] [--min-accuracy X]\n"
            "                     [--min-gain X] [--max-examples N] [--batch N]\n"
            "                     [--baseline-report R | --baseline-adapter A] [--max-regression X] [--alpha P]\n"
            "                     [--no-prompt-cache]\n"
            "  Scores every label of each example of <out_dir>/data/<split>.h5 by the log-probability of its\n"
            "  completion given the prompt, for the fine-tuned model, the base model and the majority class of\n"
            "  the train split. Writes <out_dir>/eval/report.json and report.md.\n"
            "  --adapter PATH      LoRA adapter (default <out_dir>/train/adapter.gguf)\n"
            "  --split NAME        dataset split to score (default test)\n"
            "  --min-accuracy X    fail (exit 1) when fine-tuned accuracy < X (default eval.min_accuracy)\n"
            "  --min-gain X        fail (exit 1) when accuracy - best baseline accuracy < X (default eval.min_gain)\n"
            "  --max-examples N    score N examples spread evenly over the split (default eval.max_examples; 0 = all)\n"
            "  --batch N           (example, label) rows per forward pass (default 32)\n"
            "  --baseline-report R a previous report.json on the same examples (its fingerprint must match): its\n"
            "                      fine-tuned predictions become the system \"previous\"\n"
            "  --baseline-adapter A another adapter, scored here as the system \"previous\"\n"
            "  --max-regression X  fail (exit 1) when the accuracy is below previous's by more than X with\n"
            "                      McNemar p < alpha (default eval.max_regression, 0)\n"
            "  --alpha P           significance level of that gate (default eval.alpha, 0.05)\n"
            "  --no-prompt-cache   score one row per (example, label), the prompt repeated, instead of the prompt\n"
            "                      once with every label's completion after it (same scores; for comparison)\n"
            "  Every baseline is compared with the fine-tuned model on the same examples: accuracy and macro-F1\n"
            "  differences with 95%% bootstrap intervals (eval.bootstrap_resamples), McNemar's exact test.\n"
            "  Exit status: 0 gates pass, 1 a gate failed, 2 error.\n");
}

int eval_parse_args(eval_opts *o, int argc, char **argv) {
    *o = (eval_opts){.split = "test", .min_accuracy = NAN, .min_gain = NAN, .max_examples = -1, .batch = 32,
                     .max_regression = NAN, .alpha = NAN};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { eval_usage(stdout); return SLIM_HELP; }
        if (!strcmp(a, "--no-prompt-cache")) { o->no_prompt_cache = 1; continue; }
        if (i + 1 >= argc) return slim_bad_option("eval", a);
        const char *v = argv[++i];
        int bad = 0;
        if (!strcmp(a, "--config")) o->config = v;
        else if (!strcmp(a, "--adapter")) o->adapter = v;
        else if (!strcmp(a, "--split")) o->split = v;
        else if (!strcmp(a, "--min-accuracy")) bad = slim_parse_double(a, v, 0.0, 1.0, &o->min_accuracy);
        else if (!strcmp(a, "--min-gain")) bad = slim_parse_double(a, v, -1.0, 1.0, &o->min_gain);
        else if (!strcmp(a, "--max-examples")) bad = slim_parse_long(a, v, 0, 1L << 40, &o->max_examples);
        else if (!strcmp(a, "--batch")) bad = slim_parse_long(a, v, 1, 4096, &o->batch);
        else if (!strcmp(a, "--baseline-report")) o->baseline_report = v;
        else if (!strcmp(a, "--baseline-adapter")) o->baseline_adapter = v;
        else if (!strcmp(a, "--max-regression")) bad = slim_parse_double(a, v, 0.0, 1.0, &o->max_regression);
        else if (!strcmp(a, "--alpha")) bad = slim_parse_double(a, v, 1e-12, 0.999999, &o->alpha);
        else return slim_bad_option("eval", a);
        if (bad) return -1;
    }
    if (!o->config) return slim_set_error("--config FILE is required");
    if (o->baseline_report && o->baseline_adapter)
        return slim_set_error("--baseline-report and --baseline-adapter both name the previous system: give one");
    if (!*o->split || strchr(o->split, '/'))
        return slim_set_error("--split '%s' must be a plain name such as test", o->split);
    return SLIM_OK;
}

/* What eval_run loads and computes (freed by eval_state_free). */
typedef struct eval_state {
    char test_path[4096], train_path[4096], adapter_path[4096], eval_dir[4096], metrics_path[4096];
    model model;
    lora_adapter lora, previous; /* the adapter; --baseline-adapter's */
    slim_dataset test, train;
    int64_t *idx;              /* [n] the examples of test scored */
    int32_t *truth;            /* [n] their labels */
    double *scores;            /* [n * n_labels] a baseline's scores */
    double *ft_scores;         /* [n * n_labels] the fine-tuned model's */
    slim_dataset val;          /* <out_dir>/data/val.h5, when there is one (has_val) */
    int has_val;
    double *val_scores;        /* [val.n_examples * n_labels] the fine-tuned model's on it */
    int32_t *val_truth;        /* [val.n_examples] */
    int no_cache;              /* --no-prompt-cache */
    eval_result r;
} eval_state;

/* Checks that both splits were prepared for the model with the same label names. */
static int eval_check_datasets(const eval_state *st, const char *model_path) {
    const slim_dataset *test = &st->test, *train = &st->train;
    if (dataset_check_tokenizer(test, st->test_path, st->model.tok.fingerprint, model_path) ||
        dataset_check_tokenizer(train, st->train_path, st->model.tok.fingerprint, model_path))
        return -1;
    if (test->n_labels < 1) return slim_set_error("%s: no label_names", st->test_path);
    if (train->n_labels != test->n_labels)
        return slim_set_error("%s has %d label names but %s has %d: prepare both splits with the same labels",
                              st->test_path, test->n_labels, st->train_path, train->n_labels);
    for (int k = 0; k < test->n_labels; k++)
        if (strcmp(test->label_names[k], train->label_names[k]) != 0)
            return slim_set_error("label_names[%d] is '%s' in %s but '%s' in %s", k, test->label_names[k],
                                  st->test_path, train->label_names[k], st->train_path);
    return 0;
}

/* Loads the base (stored as it was for training, base.quant, so both systems see the same weights), both
 * splits and the adapter. Returns 0 or -1. */
static int eval_load(eval_state *st, const slim_config *cfg, const eval_opts *o) {
    if (slim_format_path(st->test_path, sizeof st->test_path, "%s/data/%s.h5", cfg->out_dir, o->split) ||
        slim_format_path(st->train_path, sizeof st->train_path, "%s/data/train.h5", cfg->out_dir) ||
        slim_format_path(st->adapter_path, sizeof st->adapter_path, o->adapter ? "%s" : "%s/train/adapter.gguf",
                         o->adapter ? o->adapter : cfg->out_dir) ||
        slim_format_path(st->eval_dir, sizeof st->eval_dir, "%s/eval", cfg->out_dir) ||
        slim_format_path(st->metrics_path, sizeof st->metrics_path, "%s/train/metrics.jsonl", cfg->out_dir))
        return -1;
    if (model_load_quant(&st->model, cfg->model, base_quant_index(cfg->base_quant)) != 0) return -1;
    if (model_require_tokenizer(&st->model) != 0) return -1;
    if (dataset_read(&st->test, st->test_path) != 0) return -1;
    if (st->test.n_labels == 0) { /* generative data: no train split, no labels */
        if (dataset_check_tokenizer(&st->test, st->test_path, st->model.tok.fingerprint, cfg->model)) return -1;
        if (o->baseline_report || o->baseline_adapter || cfg->baselines)
            return slim_set_error("%s has no labels: --baseline-report, --baseline-adapter and eval.baselines compare "
                                  "label predictions", st->test_path);
    } else if (dataset_read(&st->train, st->train_path) != 0 || eval_check_datasets(st, cfg->model)) {
        return -1;
    }
    if (access(st->adapter_path, R_OK) != 0)
        return slim_set_error("%s: adapter not found (run `slimtune train` first, or pass --adapter PATH)",
                              st->adapter_path);
    if (lora_load(&st->lora, &st->model, st->adapter_path) != 0) return -1;
    return o->baseline_adapter ? lora_load(&st->previous, &st->model, o->baseline_adapter) : 0;
}

/* The labeled examples of the test split into st->idx; with max_examples, that many spread evenly over
 * the split (files are often sorted, e.g. by label or hash, so the first N would not be a fair sample). */
static int eval_select(eval_state *st, long max_examples) {
    const slim_dataset *test = &st->test;
    int64_t n = 0;
    st->idx = slim_malloc((size_t)(test->n_examples > 0 ? test->n_examples : 1) * sizeof(int64_t));
    for (int64_t e = 0; e < test->n_examples; e++) {
        if (test->n_labels > 0 && test->labels[e] < 0) { st->r.n_unlabeled++; continue; }
        st->idx[n++] = e;
    }
    if (max_examples > 0 && n > max_examples) {
        for (int64_t i = 0; i < max_examples; i++) st->idx[i] = st->idx[(int64_t)((double)i * n / max_examples)];
        n = max_examples;
    }
    if (n == 0) return slim_set_error("%s: no labeled examples to evaluate", st->test_path);
    if (st->r.n_unlabeled)
        fprintf(stderr, "eval: skipping %lld examples without a label\n", (long long)st->r.n_unlabeled);
    st->r.n = n;
    return 0;
}

/* The majority class of the train split (lowest index on ties) into st->r.majority. Returns 0 or -1. */
static int eval_majority(eval_state *st) {
    const int K = st->test.n_labels;
    int64_t *counts = slim_calloc(K, sizeof(int64_t));
    int64_t n_train_labeled = 0;
    for (int64_t e = 0; e < st->train.n_examples; e++)
        if (st->train.labels[e] >= 0) { counts[st->train.labels[e]]++; n_train_labeled++; }
    int majority = 0;
    for (int k = 1; k < K; k++)
        if (counts[k] > counts[majority]) majority = k;
    free(counts);
    st->r.majority = majority;
    if (n_train_labeled == 0)
        return slim_set_error("%s: no labeled examples for the majority baseline", st->train_path);
    return 0;
}

/* Adds a system named name to r; its predictions are allocated for r->n examples. */
static eval_system *eval_add_system(eval_result *r, const char *name) {
    eval_system *sys = &r->sys[r->n_systems++];
    snprintf(sys->name, sizeof sys->name, "%s", name);
    sys->pred = slim_malloc((size_t)r->n * sizeof(int32_t));
    return sys;
}

/* Scores the selected examples with lora (NULL: the base) into scores [n * n_labels] and sys->pred; *t:
 * the seconds it took. */
static int eval_score_system(eval_state *st, const lora_adapter *lora, eval_system *sys, int batch, double *scores,
                             double *t) {
    double t0 = slim_time_sec();
    if (eval_score_mode(&st->model, lora, &st->test, st->idx, st->r.n, batch, sys->name, scores, !st->no_cache) != 0)
        return -1;
    eval_argmax(scores, st->r.n, st->test.n_labels, sys->pred);
    *t = slim_time_sec() - t0;
    return 0;
}

/* Scores the selected examples with the fine-tuned and the base model (and --baseline-adapter's),
 * predicts the majority class. Returns 0 or -1. */
static int eval_score_systems(eval_state *st, int batch) {
    eval_result *r = &st->r;
    const int K = st->test.n_labels;
    const int64_t n = r->n;
    st->scores = slim_malloc((size_t)n * K * sizeof(double));
    st->ft_scores = slim_malloc((size_t)n * K * sizeof(double));
    fprintf(stderr, "eval: %lld examples of %s, %d labels, batch %d rows, %d threads\n", (long long)n, st->test_path,
            K, batch, omp_get_max_threads());
    if (eval_score_system(st, &st->lora, eval_add_system(r, "fine-tuned"), batch, st->ft_scores, &r->t_finetuned) ||
        eval_score_system(st, NULL, eval_add_system(r, "base"), batch, st->scores, &r->t_base) != 0)
        return -1;
    eval_system *maj = eval_add_system(r, "majority");
    for (int64_t i = 0; i < n; i++) maj->pred[i] = r->majority;
    double t;
    if (st->previous.params) {
        r->previous = r->n_systems;
        if (eval_score_system(st, &st->previous, eval_add_system(r, "previous"), batch, st->scores, &t) != 0) return -1;
    }
    return 0;
}

/* sha256 (hex) of what is scored: the test split's token arrays (ckpt_dataset_sha256), its label names,
 * and the indices and labels of the examples selected. Two runs compare pairwise only when equal. */
static void eval_fingerprint(const eval_state *st, char hex[65]) {
    uint8_t data[32], out[32];
    ckpt_dataset_sha256(&st->test, data);
    struct sha256_ctx h;
    sha256_init(&h);
    sha256_update(&h, sizeof data, data);
    for (int k = 0; k < st->test.n_labels; k++)
        sha256_update(&h, strlen(st->test.label_names[k]) + 1, (const uint8_t *)st->test.label_names[k]);
    sha256_update(&h, sizeof(int64_t) * (size_t)st->r.n, (const uint8_t *)st->idx);
    sha256_update(&h, sizeof(int32_t) * (size_t)st->r.n, (const uint8_t *)st->truth);
    sha256_digest(&h, sizeof out, out);
    ckpt_hex(out, hex);
}

/* The label index of name among the test split's labels, or -1. */
static int eval_label_index(const slim_dataset *d, const char *name) {
    for (int k = 0; k < d->n_labels; k++)
        if (!strcmp(d->label_names[k], name)) return k;
    return -1;
}

/* The fine-tuned predictions of a previous report.json (path) on the same examples, as the system
 * "previous": refused when its fingerprint differs (other examples, labels or data). Returns 0 or -1. */
static int eval_read_previous(eval_state *st, const char *path) {
    cJSON *root = slim_read_json(path);
    if (!root) return -1;
    eval_result *r = &st->r;
    const cJSON *fp = cJSON_GetObjectItemCaseSensitive(root, "fingerprint");
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(root, "examples");
    int rc = 0;
    if (!cJSON_IsString(fp) || !cJSON_IsArray(ex))
        rc = slim_set_error("%s: no fingerprint or examples (a report.json of an older slimtune eval?): re-run that "
                            "eval, or use --baseline-adapter", path);
    else if (strcmp(fp->valuestring, r->fingerprint) != 0)
        rc = slim_set_error("%s: fingerprint %.16s... differs from this run's %.16s... (%s, %lld examples): the two "
                            "evals scored different examples, labels or data, so they cannot be compared pairwise",
                            path, fp->valuestring, r->fingerprint, st->test_path, (long long)r->n);
    else if (cJSON_GetArraySize(ex) != r->n)
        rc = slim_set_error("%s: examples: %d entries, the fingerprint says %lld", path, cJSON_GetArraySize(ex),
                            (long long)r->n);
    eval_system *sys = rc == 0 ? eval_add_system(r, "previous") : NULL;
    for (int64_t i = 0; rc == 0 && i < r->n; i++) {
        const cJSON *e = cJSON_GetArrayItem(ex, (int)i);
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(e, "predicted"), "fine-tuned");
        int k = cJSON_IsString(pr) ? eval_label_index(&st->test, pr->valuestring) : -1;
        if (k < 0) rc = slim_set_error("%s: examples[%lld].predicted.fine-tuned: missing or not one of the labels", path,
                                       (long long)i);
        else sys->pred[i] = k;
    }
    if (rc == 0) r->previous = r->n_systems - 1;
    cJSON_Delete(root);
    return rc;
}

/* The external systems of eval.baselines, as systems after the scored ones. Returns 0 or -1. */
static int eval_add_external(eval_state *st, const slim_config *cfg) {
    eval_result *r = &st->r;
    eval_baseline ext[EVAL_MAX_SYSTEMS];
    int n = eval_read_baselines(ext, EVAL_MAX_SYSTEMS - r->n_systems, cfg, &st->test, st->idx, r->n);
    for (int i = 0; i < n; i++) {
        int taken = 0;
        for (int s = 0; s < r->n_systems; s++) taken |= !strcmp(r->sys[s].name, ext[i].name);
        if (taken || !strcmp(ext[i].name, "previous")) {
            for (int j = i; j < n; j++) free(ext[j].pred);
            return slim_set_error("%s: eval.baselines[%d].name: \"%s\" is taken (fine-tuned, base, majority, previous "
                                  "and the other baselines' names are)", cfg->path, i, ext[i].name);
        }
        eval_system *sys = &r->sys[r->n_systems++];
        _Static_assert(sizeof sys->name == sizeof ext[i].name, "system and baseline names have one size");
        memcpy(sys->name, ext[i].name, sizeof sys->name);
        sys->pred = ext[i].pred;
        sys->external = 1;
        sys->n_missing = ext[i].n_missing;
        sys->n_invalid = ext[i].n_invalid;
        sys->n_bad_rows = ext[i].n_bad_rows;
    }
    return n < 0 ? -1 : 0;
}

/* Metrics of every system, and the fine-tuned model compared with each other system on the same
 * examples. Returns 0 or -1. */
static int eval_compare(eval_state *st, const slim_config *cfg) {
    eval_result *r = &st->r;
    const int K = st->test.n_labels;
    for (int s = 0; s < r->n_systems; s++) {
        if (eval_metrics_compute(&r->sys[s].m, st->truth, r->sys[s].pred, r->n, K) != 0) return -1;
        if (s != SYS_FINETUNED &&
            eval_paired_compare(&r->sys[s].vs, st->truth, r->sys[SYS_FINETUNED].pred, r->sys[s].pred, r->n, K,
                                cfg->bootstrap_resamples, (uint64_t)cfg->eval_seed + 1) != 0)
            return -1;
    }
    return 0;
}

/* The gates on the metrics: fine-tuned accuracy >= min_accuracy, gain over the best baseline (base,
 * majority) >= min_gain, and with a previous system: not worse by more than max_regression with McNemar
 * p < alpha. */
static void eval_gates(eval_result *r) {
    const double base = r->sys[SYS_BASE].m.accuracy, maj = r->sys[SYS_MAJORITY].m.accuracy;
    r->best_baseline = base > maj ? base : maj;
    r->gain = r->sys[SYS_FINETUNED].m.accuracy - r->best_baseline;
    r->acc_ok = r->sys[SYS_FINETUNED].m.accuracy >= r->min_accuracy;
    r->gain_ok = r->gain >= r->min_gain;
    r->regression_ok = 1;
    if (r->previous >= 0) {
        const eval_paired *p = &r->sys[r->previous].vs;
        r->regression_ok = !(-p->acc_diff > r->max_regression && p->p_mcnemar < r->alpha);
    }
}

/* Prints the failed gates on stderr. */
static void eval_print_gates(const eval_result *r) {
    const double acc = r->sys[SYS_FINETUNED].m.accuracy;
    if (!r->acc_ok) fprintf(stderr, "eval: gate failed: fine-tuned accuracy %.4f < min_accuracy %.4f\n", acc, r->min_accuracy);
    if (!r->gain_ok)
        fprintf(stderr, "eval: gate failed: gain %+.4f (accuracy %.4f - best baseline %.4f) < min_gain %+.4f\n",
                r->gain, acc, r->best_baseline, r->min_gain);
    if (r->previous < 0) return;
    const eval_system *p = &r->sys[r->previous];
    fprintf(stderr, "eval: %s regression gate: accuracy %.4f vs previous %.4f: %+.4f, 95%% bootstrap interval "
            "[%+.4f, %+.4f] (%d resamples); McNemar exact p = %.4g (%lld only fine-tuned right, %lld only previous "
            "right); max_regression %.4f, alpha %.3g\n", r->regression_ok ? "passed" : "FAILED:", acc, p->m.accuracy,
            p->vs.acc_diff, p->vs.acc_lo, p->vs.acc_hi, p->vs.resamples, p->vs.p_mcnemar, (long long)p->vs.a_only,
            (long long)p->vs.b_only, r->max_regression, r->alpha);
}

/* The fine-tuned model's scores on the validation split <out_dir>/data/val.h5 (data.val or
 * data.split.val_fraction), which fit the temperature and choose the routing threshold; nothing when there
 * is none. Returns 0 or -1. */
static int eval_score_val(eval_state *st, const slim_config *cfg, int batch) {
    char path[4096];
    if (slim_format_path(path, sizeof path, "%s/data/val.h5", cfg->out_dir) != 0) return -1;
    if (access(path, F_OK) != 0) return 0;
    if (dataset_read(&st->val, path) != 0) return -1;
    st->has_val = 1;
    const slim_dataset *v = &st->val;
    if (dataset_check_tokenizer(v, path, st->model.tok.fingerprint, cfg->model)) return -1;
    if (v->n_labels != st->test.n_labels)
        return slim_set_error("%s: %d labels, the test split has %d", path, v->n_labels, st->test.n_labels);
    for (int64_t i = 0; i < v->n_examples; i++)
        if (v->labels[i] < 0) return slim_set_error("%s: example %lld has no label", path, (long long)i);
    st->val_scores = slim_malloc((size_t)v->n_examples * v->n_labels * sizeof(double));
    st->val_truth = slim_malloc((size_t)v->n_examples * sizeof(int32_t));
    memcpy(st->val_truth, v->labels, (size_t)v->n_examples * sizeof(int32_t));
    return eval_score(&st->model, &st->lora, v, NULL, v->n_examples, batch, "validation", st->val_scores);
}

/* Confidences and correctness of scores [n * K] at temperature T into conf, correct [n]. */
static void eval_conf_at(const double *scores, const int32_t *truth, int64_t n, int K, double T, double *conf,
                         uint8_t *correct) {
    double *probs = slim_malloc((size_t)n * K * sizeof(double));
    eval_softmax(scores, n, K, T, probs);
    eval_confidence(probs, truth, n, K, conf, correct);
    free(probs);
}

/* The fine-tuned model's calibration on the test examples (ECE before and after temperature scaling fitted
 * on the validation split), its accuracy-coverage curve, and the routing threshold of eval.target_accuracy
 * (chosen on the validation split when there is one). */
static void eval_calibrate(eval_state *st, const slim_config *cfg) {
    eval_calibration *c = &st->r.cal;
    const int K = st->test.n_labels;
    const int64_t n = st->r.n, nv = st->has_val ? st->val.n_examples : 0;
    double bc[EVAL_ECE_BINS], ba[EVAL_ECE_BINS];
    int64_t bn[EVAL_ECE_BINS];
    c->conf = slim_malloc((size_t)n * sizeof(double));
    c->correct = slim_malloc((size_t)n);
    c->n_val = nv;
    c->temperature = nv > 0 ? eval_fit_temperature(st->val_scores, st->val_truth, nv, K, NULL) : 1.0;
    c->nll_raw = eval_mean_nll(st->ft_scores, st->truth, n, K, 1.0);
    c->nll = eval_mean_nll(st->ft_scores, st->truth, n, K, c->temperature);
    eval_conf_at(st->ft_scores, st->truth, n, K, 1.0, c->conf, c->correct);
    c->ece_raw = eval_ece(c->conf, c->correct, n, EVAL_ECE_BINS, bc, ba, bn);
    eval_conf_at(st->ft_scores, st->truth, n, K, c->temperature, c->conf, c->correct);
    c->ece = eval_ece(c->conf, c->correct, n, EVAL_ECE_BINS, c->bin_conf, c->bin_acc, c->bin_n);
    int64_t *order = eval_order_by_confidence(c->conf, n), right = 0, k = 0;
    for (int p = 0; p < EVAL_CURVE_POINTS; p++) {
        int64_t keep = (int64_t)ceil((double)(p + 1) / EVAL_CURVE_POINTS * (double)n);
        for (; k < keep; k++) right += c->correct[order[k]];
        c->curve_coverage[p] = (double)keep / (double)n;
        c->curve_accuracy[p] = (double)right / (double)keep;
        c->curve_threshold[p] = c->conf[order[keep - 1]];
    }
    free(order);
    c->target = cfg->target_accuracy;
    c->threshold_on_val = nv > 0;
    if (nv > 0) {
        double *vc = slim_malloc((size_t)nv * sizeof(double));
        uint8_t *vr = slim_malloc((size_t)nv);
        eval_conf_at(st->val_scores, st->val_truth, nv, K, c->temperature, vc, vr);
        c->threshold = eval_route_threshold(vc, vr, nv, c->target);
        free(vc);
        free(vr);
    } else {
        c->threshold = eval_route_threshold(c->conf, c->correct, n, c->target);
    }
    eval_at_threshold(c->conf, c->correct, n, c->threshold, &c->coverage, &c->accuracy);
}

/* The fine-tuned model's most confident errors (report.html), their prompts decoded. */
static void eval_worst_errors(eval_state *st) {
    eval_result *r = &st->r;
    int64_t *order = eval_order_by_confidence(r->cal.conf, r->n);
    char *buf = slim_malloc(1 << 16);
    for (int64_t k = 0; k < r->n && r->n_worst < EVAL_MAX_ERRORS; k++) {
        const int64_t i = order[k], e = st->idx[i];
        if (r->cal.correct[i]) continue;
        buf[0] = 0;
        const int64_t o = st->test.offsets[e];
        for (int32_t t = 0; t < st->test.prompt_len[e] && strlen(buf) < 2000; t++)
            tokenizer_decode_token(&st->model.tok, st->test.tokens[o + t], buf, 1 << 16);
        size_t len;
        r->worst[r->n_worst++] = (eval_error){.index = e, .gold = st->truth[i], .pred = r->sys[SYS_FINETUNED].pred[i],
                                              .confidence = r->cal.conf[i],
                                              .text = reader_utf8_replace(buf, strlen(buf), &len)};
    }
    free(buf);
    free(order);
}

/* Frees everything st holds (and st). */
static void eval_state_free(eval_state *st) {
    for (int s = 0; s < st->r.n_systems; s++) { eval_metrics_free(&st->r.sys[s].m); free(st->r.sys[s].pred); }
    free(st->scores);
    free(st->ft_scores);
    free(st->val_scores);
    free(st->val_truth);
    for (int i = 0; i < st->r.n_worst; i++) free(st->r.worst[i].text);
    free(st->r.cal.conf);
    free(st->r.cal.correct);
    if (st->has_val) dataset_free(&st->val);
    free(st->truth);
    free(st->idx);
    if (st->previous.params) lora_free(&st->previous);
    if (st->lora.params) lora_free(&st->lora);
    if (st->model.params) model_free(&st->model);
    dataset_free(&st->test);
    dataset_free(&st->train);
    free(st);
}

/* Loads, selects, scores and compares every system, then sets the gates and the report's fields. Returns
 * 0 or -1. */
static int eval_systems(eval_state *st, const slim_config *cfg, const eval_opts *o) {
    eval_result *r = &st->r;
    if (eval_majority(st) != 0) return -1;
    st->truth = slim_malloc((size_t)r->n * sizeof(int32_t));
    for (int64_t i = 0; i < r->n; i++) st->truth[i] = st->test.labels[st->idx[i]];
    eval_fingerprint(st, r->fingerprint);
    if (eval_score_systems(st, (int)o->batch) != 0) return -1;
    if (o->baseline_report && eval_read_previous(st, o->baseline_report) != 0) return -1;
    if (eval_add_external(st, cfg) != 0) return -1;
    if (eval_compare(st, cfg) != 0) return -1;
    if (eval_score_val(st, cfg, (int)o->batch) != 0) return -1;
    eval_calibrate(st, cfg);
    eval_worst_errors(st);
    eval_gates(r);
    r->metrics_path = st->metrics_path;
    r->idx = st->idx;
    r->truth = st->truth;
    r->model = cfg->model;
    r->adapter = st->adapter_path;
    r->dataset = st->test_path;
    r->split = o->split;
    r->n_labels = st->test.n_labels;
    r->labels = st->test.label_names;
    return 0;
}

int eval_run(const slim_config *cfg, const eval_opts *o) {
    double t_start = slim_time_sec();
    eval_state *st = slim_calloc(1, sizeof *st);
    eval_result *r = &st->r;
    r->previous = -1;
    st->no_cache = o->no_prompt_cache;
    r->min_accuracy = isnan(o->min_accuracy) ? cfg->min_accuracy : o->min_accuracy;
    r->min_gain = isnan(o->min_gain) ? cfg->min_gain : o->min_gain;
    r->max_regression = isnan(o->max_regression) ? cfg->max_regression : o->max_regression;
    r->alpha = isnan(o->alpha) ? cfg->alpha : o->alpha;
    r->config = o->config ? o->config : cfg->path;
    if (cfg->threads > 0) omp_set_num_threads(cfg->threads);
    int rc = eval_load(st, cfg, o) != 0 || eval_select(st, o->max_examples < 0 ? cfg->eval_max_examples : o->max_examples)
                 ? -1 : 0;
    if (rc == 0 && st->test.n_labels == 0) { /* generative.h */
        gen_report gr = {.config = r->config, .model = cfg->model, .adapter = st->adapter_path,
                         .dataset = st->test_path, .min_accuracy = r->min_accuracy};
        rc = eval_generative(&gr, &st->model, &st->lora, &st->test, st->idx, r->n, cfg, st->eval_dir);
        eval_state_free(st);
        return rc;
    }
    if (rc == 0) rc = eval_systems(st, cfg, o);
    if (rc == 0) {
        r->wall = slim_time_sec() - t_start;
        rc = eval_write_reports(r, st->eval_dir);
    }
    if (rc == 0) eval_print_gates(r);
    if (rc == 0 && (!r->acc_ok || !r->gain_ok || !r->regression_ok)) rc = SLIM_GATE_FAILED;
    eval_state_free(st);
    return rc;
}

/* X_run through slim_config_main. */
static int eval_run_opts(const slim_config *cfg, const void *o) { return eval_run(cfg, o); }

int eval_main(int argc, char **argv) {
    eval_opts o;
    int r = eval_parse_args(&o, argc, argv);
    return slim_config_main(r, eval_usage, o.config, eval_run_opts, &o);
}
