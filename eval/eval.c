/* eval.c — `slimtune eval`: label scoring of a held-out split, metrics, baselines; see eval.h.
 *
 * Three systems are scored on the same examples: the fine-tuned model (base + adapter), the base model
 * alone, and the majority class of the train split. Reports go to <out_dir>/eval/report.json and
 * report.md (atomically, report.c); the result is SLIM_OK when the quality gates pass, SLIM_GATE_FAILED
 * when one fails, -1 on errors (exit status 0, 1, 2). */
#include "eval.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"
#include "report.h"

static void eval_usage(FILE *f) {
    fprintf(f,
            "usage: slimtune eval --config FILE [--adapter PATH] [--split NAME] [--min-accuracy X]\n"
            "                     [--min-gain X] [--max-examples N] [--batch N]\n"
            "  Scores every label of each example of <out_dir>/data/<split>.h5 by the log-probability of its\n"
            "  completion given the prompt, for the fine-tuned model, the base model and the majority class of\n"
            "  the train split. Writes <out_dir>/eval/report.json and report.md.\n"
            "  --adapter PATH      LoRA adapter (default <out_dir>/train/adapter.gguf)\n"
            "  --split NAME        dataset split to score (default test)\n"
            "  --min-accuracy X    fail (exit 1) when fine-tuned accuracy < X (default eval.min_accuracy)\n"
            "  --min-gain X        fail (exit 1) when accuracy - best baseline accuracy < X (default eval.min_gain)\n"
            "  --max-examples N    score N examples spread evenly over the split (default eval.max_examples; 0 = all)\n"
            "  --batch N           (example, label) rows per forward pass (default 32)\n"
            "  Exit status: 0 gates pass, 1 a gate failed, 2 error.\n");
}

int eval_parse_args(eval_opts *o, int argc, char **argv) {
    *o = (eval_opts){.split = "test", .min_accuracy = NAN, .min_gain = NAN, .max_examples = -1, .batch = 32};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { eval_usage(stdout); return SLIM_HELP; }
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
        else return slim_bad_option("eval", a);
        if (bad) return -1;
    }
    if (!o->config) return slim_set_error("--config FILE is required");
    if (!*o->split || strchr(o->split, '/'))
        return slim_set_error("--split '%s' must be a plain name such as test", o->split);
    return SLIM_OK;
}

/* What eval_run loads and computes (freed by eval_state_free). */
typedef struct eval_state {
    char test_path[4096], train_path[4096], adapter_path[4096], eval_dir[4096];
    model model;
    lora_adapter lora;
    slim_dataset test, train;
    int64_t *idx;              /* [n] the examples of test scored */
    int32_t *truth, *preds[N_SYSTEMS];
    double *scores;            /* [n * n_labels] */
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
        slim_format_path(st->eval_dir, sizeof st->eval_dir, "%s/eval", cfg->out_dir))
        return -1;
    if (model_load_quant(&st->model, cfg->model, base_quant_index(cfg->base_quant)) != 0) return -1;
    if (model_require_tokenizer(&st->model) != 0) return -1;
    if (dataset_read(&st->test, st->test_path) != 0 || dataset_read(&st->train, st->train_path) != 0) return -1;
    if (eval_check_datasets(st, cfg->model)) return -1;
    if (access(st->adapter_path, R_OK) != 0)
        return slim_set_error("%s: adapter not found (run `slimtune train` first, or pass --adapter PATH)",
                              st->adapter_path);
    return lora_load(&st->lora, &st->model, st->adapter_path);
}

/* The labeled examples of the test split into st->idx; with max_examples, that many spread evenly over
 * the split (files are often sorted, e.g. by label or hash, so the first N would not be a fair sample). */
static int eval_select(eval_state *st, long max_examples) {
    const slim_dataset *test = &st->test;
    int64_t n = 0;
    st->idx = slim_malloc((size_t)(test->n_examples > 0 ? test->n_examples : 1) * sizeof(int64_t));
    for (int64_t e = 0; e < test->n_examples; e++) {
        if (test->labels[e] < 0) { st->r.n_unlabeled++; continue; }
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

/* Scores the selected examples with the fine-tuned and the base model, predicts the majority class,
 * and computes the metrics of each system. Returns 0 or -1. */
static int eval_score_systems(eval_state *st, int batch) {
    const int K = st->test.n_labels;
    const int64_t n = st->r.n;
    st->truth = slim_malloc((size_t)n * sizeof(int32_t));
    for (int64_t i = 0; i < n; i++) st->truth[i] = st->test.labels[st->idx[i]];
    st->scores = slim_malloc((size_t)n * K * sizeof(double));
    for (int s = 0; s < N_SYSTEMS; s++) st->preds[s] = slim_malloc((size_t)n * sizeof(int32_t));
    fprintf(stderr, "eval: %lld examples of %s, %d labels, batch %d rows, %d threads\n", (long long)n, st->test_path,
            K, batch, omp_get_max_threads());
    const lora_adapter *adapters[2] = {&st->lora, NULL};
    const char *names[2] = {"fine-tuned", "base"};
    double *times[2] = {&st->r.t_finetuned, &st->r.t_base};
    for (int s = SYS_FINETUNED; s <= SYS_BASE; s++) {
        double t0 = slim_time_sec();
        if (eval_score(&st->model, adapters[s], &st->test, st->idx, n, batch, names[s], st->scores) != 0) return -1;
        eval_argmax(st->scores, n, K, st->preds[s]);
        *times[s] = slim_time_sec() - t0;
    }
    for (int64_t i = 0; i < n; i++) st->preds[SYS_MAJORITY][i] = st->r.majority;
    for (int s = 0; s < N_SYSTEMS; s++)
        if (eval_metrics_compute(&st->r.ms[s], st->truth, st->preds[s], n, K) != 0) return -1;
    return 0;
}

/* The gates on the metrics: fine-tuned accuracy >= min_accuracy, gain over the best baseline >= min_gain. */
static void eval_gates(eval_result *r) {
    const eval_metrics *ms = r->ms;
    r->best_baseline = ms[SYS_BASE].accuracy > ms[SYS_MAJORITY].accuracy ? ms[SYS_BASE].accuracy
                                                                         : ms[SYS_MAJORITY].accuracy;
    r->gain = ms[SYS_FINETUNED].accuracy - r->best_baseline;
    r->acc_ok = ms[SYS_FINETUNED].accuracy >= r->min_accuracy;
    r->gain_ok = r->gain >= r->min_gain;
}

/* Frees everything st holds (and st). */
static void eval_state_free(eval_state *st) {
    for (int s = 0; s < N_SYSTEMS; s++) { eval_metrics_free(&st->r.ms[s]); free(st->preds[s]); }
    free(st->scores);
    free(st->truth);
    free(st->idx);
    if (st->lora.params) lora_free(&st->lora);
    if (st->model.params) model_free(&st->model);
    dataset_free(&st->test);
    dataset_free(&st->train);
    free(st);
}

int eval_run(const slim_config *cfg, const eval_opts *o) {
    double t_start = slim_time_sec();
    eval_state *st = slim_calloc(1, sizeof *st);
    eval_result *r = &st->r;
    r->min_accuracy = isnan(o->min_accuracy) ? cfg->min_accuracy : o->min_accuracy;
    r->min_gain = isnan(o->min_gain) ? cfg->min_gain : o->min_gain;
    if (cfg->threads > 0) omp_set_num_threads(cfg->threads);
    int rc = -1;
    if (eval_load(st, cfg, o) == 0 && eval_select(st, o->max_examples < 0 ? cfg->eval_max_examples : o->max_examples) == 0 &&
        eval_majority(st) == 0 && eval_score_systems(st, (int)o->batch) == 0) {
        eval_gates(r);
        r->wall = slim_time_sec() - t_start;
        r->config = o->config ? o->config : cfg->path;
        r->model = cfg->model;
        r->adapter = st->adapter_path;
        r->dataset = st->test_path;
        r->split = o->split;
        r->n_labels = st->test.n_labels;
        r->labels = st->test.label_names;
        rc = eval_write_reports(r, st->eval_dir);
    }
    if (rc == 0 && !r->acc_ok)
        fprintf(stderr, "eval: gate failed: fine-tuned accuracy %.4f < min_accuracy %.4f\n",
                r->ms[SYS_FINETUNED].accuracy, r->min_accuracy);
    if (rc == 0 && !r->gain_ok)
        fprintf(stderr, "eval: gate failed: gain %+.4f (accuracy %.4f - best baseline %.4f) < min_gain %+.4f\n",
                r->gain, r->ms[SYS_FINETUNED].accuracy, r->best_baseline, r->min_gain);
    if (rc == 0 && (!r->acc_ok || !r->gain_ok)) rc = SLIM_GATE_FAILED;
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
