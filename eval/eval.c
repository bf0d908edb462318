/* eval.c — `slimtune eval`: label scoring of a held-out split, metrics, baselines, report; see eval.h.
 *
 * Three systems are scored on the same examples: the fine-tuned model (base + adapter), the base model
 * alone, and the majority class of the train split. Reports go to <out_dir>/eval/report.json and
 * report.md (atomically); the exit status is 0 when the quality gates pass, 1 when one fails, 2 on errors. */
#include "eval.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "config.h"

/* ---------------------------------------------------------------------------------------------- */
/* reports */

enum { SYS_FINETUNED, SYS_BASE, SYS_MAJORITY, N_SYSTEMS };
static const char *const eval_system_names[N_SYSTEMS] = {"fine-tuned", "base", "majority"};

static cJSON *eval_metrics_json(const eval_metrics *m, char *const *labels) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "accuracy", m->accuracy);
    cJSON_AddNumberToObject(o, "macro_f1", m->macro_f1);
    cJSON *pc = cJSON_AddObjectToObject(o, "per_class");
    for (int k = 0; k < m->n_labels; k++) {
        cJSON *c = cJSON_AddObjectToObject(pc, labels[k]);
        cJSON_AddNumberToObject(c, "precision", m->precision[k]);
        cJSON_AddNumberToObject(c, "recall", m->recall[k]);
        cJSON_AddNumberToObject(c, "f1", m->f1[k]);
        cJSON_AddNumberToObject(c, "support", (double)m->support[k]);
    }
    cJSON *cm = cJSON_AddArrayToObject(o, "confusion");
    for (int t = 0; t < m->n_labels; t++) {
        cJSON *row = cJSON_CreateArray();
        for (int p = 0; p < m->n_labels; p++)
            cJSON_AddItemToArray(row, cJSON_CreateNumber((double)m->confusion[(size_t)t * m->n_labels + p]));
        cJSON_AddItemToArray(cm, row);
    }
    return o;
}

/* Writes text to path atomically. */
static int eval_write_text(const char *path, const char *text) {
    char tmp[4096];
    FILE *f = slim_atomic_open(path, tmp, sizeof tmp);
    if (!f) return -1;
    if (fputs(text, f) == EOF) {
        slim_atomic_abort(f, tmp);
        return slim_set_error("%s: write failed", path);
    }
    return slim_atomic_commit(f, tmp, path);
}

/* A growing string buffer for report.md. */
typedef struct { char *s; size_t len, cap; } eval_buf;

__attribute__((format(printf, 2, 3))) static void eval_printf(eval_buf *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (k < 0) return;
        if (b->s && b->len + (size_t)k < b->cap) { b->len += (size_t)k; return; }
        b->cap = (b->cap + (size_t)k + 1) * 2;
        b->s = slim_realloc(b->s, b->cap);
    }
}

/* The summary table: system | accuracy | macro-F1 | per-class P/R. */
static void eval_md_table(eval_buf *b, const eval_metrics *ms, char *const *labels) {
    int K = ms[0].n_labels;
    eval_printf(b, "| system | accuracy | macro-F1 |");
    for (int k = 0; k < K; k++) eval_printf(b, " %s P/R |", labels[k]);
    eval_printf(b, "\n|---|---:|---:|");
    for (int k = 0; k < K; k++) eval_printf(b, "---:|");
    eval_printf(b, "\n");
    for (int s = 0; s < N_SYSTEMS; s++) {
        eval_printf(b, "| %s | %.4f | %.4f |", eval_system_names[s], ms[s].accuracy, ms[s].macro_f1);
        for (int k = 0; k < K; k++) eval_printf(b, " %.3f / %.3f |", ms[s].precision[k], ms[s].recall[k]);
        eval_printf(b, "\n");
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* command line */

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

static int eval_parse_double(const char *opt, const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return slim_set_error("eval: %s '%s': expected a number in [%g, %g]", opt, s, lo, hi);
    *out = v;
    return 0;
}

static int eval_parse_int(const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return slim_set_error("eval: %s '%s': expected an integer in [%ld, %ld]", opt, s, lo, hi);
    *out = v;
    return 0;
}

/* Checks that a dataset was tokenized by this model's tokenizer. */
static int eval_check_fingerprint(const slim_dataset *d, const char *path, const model *m, const char *model_path) {
    if (d->tokenizer_fingerprint != m->tok.fingerprint)
        return slim_set_error("%s: tokenizer_fingerprint %016llx does not match the tokenizer of %s (%016llx): the "
                              "dataset was prepared for another model; run `slimtune data prepare` again",
                              path, (unsigned long long)d->tokenizer_fingerprint, model_path,
                              (unsigned long long)m->tok.fingerprint);
    return 0;
}

int eval_main(int argc, char **argv) {
    const char *config_path = NULL, *adapter_arg = NULL, *split = "test";
    double min_acc = NAN, min_gain = NAN;
    long max_examples = -1, batch = 32;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { eval_usage(stdout); return 0; }
        if (i + 1 >= argc) {
            fprintf(stderr, "slimtune eval: unknown option or missing value: %s\n", a);
            eval_usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        int bad = 0;
        if (!strcmp(a, "--config")) config_path = v;
        else if (!strcmp(a, "--adapter")) adapter_arg = v;
        else if (!strcmp(a, "--split")) split = v;
        else if (!strcmp(a, "--min-accuracy")) bad = eval_parse_double(a, v, 0.0, 1.0, &min_acc);
        else if (!strcmp(a, "--min-gain")) bad = eval_parse_double(a, v, -1.0, 1.0, &min_gain);
        else if (!strcmp(a, "--max-examples")) bad = eval_parse_int(a, v, 0, 1L << 40, &max_examples);
        else if (!strcmp(a, "--batch")) bad = eval_parse_int(a, v, 1, 4096, &batch);
        else {
            fprintf(stderr, "slimtune eval: unknown option %s\n", a);
            eval_usage(stderr);
            return 2;
        }
        if (bad) { fprintf(stderr, "slimtune %s\n", slim_last_error()); return 2; }
    }
    if (!config_path) {
        fprintf(stderr, "slimtune eval: --config FILE is required\n");
        eval_usage(stderr);
        return 2;
    }
    if (!*split || strchr(split, '/')) {
        fprintf(stderr, "slimtune eval: --split '%s' must be a plain name such as test\n", split);
        return 2;
    }

    double t_start = slim_time_sec();
    int status = 2;
    slim_config cfg;
    model model = {0};
    lora_adapter lora = {0};
    slim_dataset test = {0}, train = {0};
    eval_metrics ms[N_SYSTEMS] = {{0}};
    int64_t *idx = NULL;
    int32_t *truth = NULL, *preds[N_SYSTEMS] = {NULL};
    double *scores = NULL;
    char *json_text = NULL;
    cJSON *root = NULL;
    eval_buf md = {0};
    char test_path[4096], train_path[4096], adapter_path[4096], eval_dir[4096], json_path[4096], md_path[4096];
    if (config_load(&cfg, config_path) != 0) {
        fprintf(stderr, "slimtune eval: %s\n", slim_last_error());
        return 2;
    }
    if (cfg.threads > 0) omp_set_num_threads(cfg.threads);
    if (isnan(min_acc)) min_acc = cfg.min_accuracy;
    if (isnan(min_gain)) min_gain = cfg.min_gain;
    if (max_examples < 0) max_examples = cfg.eval_max_examples;
    if (slim_format_path(test_path, sizeof test_path, "%s/data/%s.h5", cfg.out_dir, split) ||
        slim_format_path(train_path, sizeof train_path, "%s/data/train.h5", cfg.out_dir) ||
        slim_format_path(adapter_path, sizeof adapter_path, adapter_arg ? "%s" : "%s/train/adapter.gguf",
                  adapter_arg ? adapter_arg : cfg.out_dir) ||
        slim_format_path(eval_dir, sizeof eval_dir, "%s/eval", cfg.out_dir) ||
        slim_format_path(json_path, sizeof json_path, "%s/eval/report.json", cfg.out_dir) ||
        slim_format_path(md_path, sizeof md_path, "%s/eval/report.md", cfg.out_dir))
        goto fail;

    /* the base is stored as it was for training (base.quant), so both systems see the same weights */
    if (model_load_quant(&model, cfg.model, base_quant_index(cfg.base_quant)) != 0) goto fail;
    if (model_require_tokenizer(&model) != 0) goto fail;
    if (dataset_read(&test, test_path) != 0) goto fail;
    if (dataset_read(&train, train_path) != 0) goto fail;
    if (eval_check_fingerprint(&test, test_path, &model, cfg.model) ||
        eval_check_fingerprint(&train, train_path, &model, cfg.model))
        goto fail;
    if (test.n_labels < 1) { slim_set_error("%s: no label_names", test_path); goto fail; }
    if (train.n_labels != test.n_labels) {
        slim_set_error("%s has %d label names but %s has %d: prepare both splits with the same labels", test_path,
                       test.n_labels, train_path, train.n_labels);
        goto fail;
    }
    for (int k = 0; k < test.n_labels; k++)
        if (strcmp(test.label_names[k], train.label_names[k]) != 0) {
            slim_set_error("label_names[%d] is '%s' in %s but '%s' in %s", k, test.label_names[k], test_path,
                           train.label_names[k], train_path);
            goto fail;
        }
    if (access(adapter_path, R_OK) != 0) {
        slim_set_error("%s: adapter not found (run `slimtune train` first, or pass --adapter PATH)", adapter_path);
        goto fail;
    }
    if (lora_load(&lora, &model, adapter_path) != 0) goto fail;

    /* the labeled examples; with max_examples, that many spread evenly over the split (files are often
     * sorted, e.g. by label or hash, so the first N would not be a fair sample) */
    const int K = test.n_labels;
    int64_t n = 0, n_unlabeled = 0;
    idx = slim_malloc((size_t)(test.n_examples > 0 ? test.n_examples : 1) * sizeof(int64_t));
    for (int64_t e = 0; e < test.n_examples; e++) {
        if (test.labels[e] < 0) { n_unlabeled++; continue; }
        idx[n++] = e;
    }
    if (max_examples > 0 && n > max_examples) {
        for (int64_t i = 0; i < max_examples; i++) idx[i] = idx[(int64_t)((double)i * n / max_examples)];
        n = max_examples;
    }
    if (n == 0) { slim_set_error("%s: no labeled examples to evaluate", test_path); goto fail; }
    if (n_unlabeled) fprintf(stderr, "eval: skipping %lld examples without a label\n", (long long)n_unlabeled);

    /* majority class of the train split (lowest index on ties) */
    int64_t *counts = slim_calloc(K, sizeof(int64_t));
    int64_t n_train_labeled = 0;
    for (int64_t e = 0; e < train.n_examples; e++)
        if (train.labels[e] >= 0) { counts[train.labels[e]]++; n_train_labeled++; }
    int majority = 0;
    for (int k = 1; k < K; k++)
        if (counts[k] > counts[majority]) majority = k;
    free(counts);
    if (n_train_labeled == 0) { slim_set_error("%s: no labeled examples for the majority baseline", train_path); goto fail; }

    truth = slim_malloc((size_t)n * sizeof(int32_t));
    for (int64_t i = 0; i < n; i++) truth[i] = test.labels[idx[i]];
    scores = slim_malloc((size_t)n * K * sizeof(double));
    for (int s = 0; s < N_SYSTEMS; s++) preds[s] = slim_malloc((size_t)n * sizeof(int32_t));
    fprintf(stderr, "eval: %lld examples of %s, %d labels, batch %ld rows, %d threads\n", (long long)n, test_path, K,
            batch, omp_get_max_threads());
    double t_ft = slim_time_sec();
    if (eval_score(&model, &lora, &test, idx, n, (int)batch, "fine-tuned", scores) != 0) goto fail;
    eval_argmax(scores, n, K, preds[SYS_FINETUNED]);
    double t_base = slim_time_sec();
    if (eval_score(&model, NULL, &test, idx, n, (int)batch, "base", scores) != 0) goto fail;
    eval_argmax(scores, n, K, preds[SYS_BASE]);
    double t_end_score = slim_time_sec();
    for (int64_t i = 0; i < n; i++) preds[SYS_MAJORITY][i] = majority;
    for (int s = 0; s < N_SYSTEMS; s++)
        if (eval_metrics_compute(&ms[s], truth, preds[s], n, K) != 0) goto fail;

    double best_baseline = ms[SYS_BASE].accuracy > ms[SYS_MAJORITY].accuracy ? ms[SYS_BASE].accuracy
                                                                              : ms[SYS_MAJORITY].accuracy;
    double gain = ms[SYS_FINETUNED].accuracy - best_baseline;
    int acc_ok = ms[SYS_FINETUNED].accuracy >= min_acc, gain_ok = gain >= min_gain;
    double wall = slim_time_sec() - t_start;

    /* report.json */
    root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "config", config_path);
    cJSON_AddStringToObject(root, "model", cfg.model);
    cJSON_AddStringToObject(root, "adapter", adapter_path);
    cJSON_AddStringToObject(root, "dataset", test_path);
    cJSON_AddStringToObject(root, "split", split);
    cJSON_AddNumberToObject(root, "n_examples", (double)n);
    cJSON_AddNumberToObject(root, "n_unlabeled_skipped", (double)n_unlabeled);
    cJSON *jl = cJSON_AddArrayToObject(root, "labels");
    for (int k = 0; k < K; k++) cJSON_AddItemToArray(jl, cJSON_CreateString(test.label_names[k]));
    cJSON_AddStringToObject(root, "majority_label", test.label_names[majority]);
    cJSON *sys = cJSON_AddObjectToObject(root, "systems");
    for (int s = 0; s < N_SYSTEMS; s++) cJSON_AddItemToObject(sys, eval_system_names[s], eval_metrics_json(&ms[s], test.label_names));
    cJSON_AddNumberToObject(root, "best_baseline_accuracy", best_baseline);
    cJSON_AddNumberToObject(root, "gain", gain);
    cJSON *gates = cJSON_AddObjectToObject(root, "gates");
    cJSON *g1 = cJSON_AddObjectToObject(gates, "min_accuracy");
    cJSON_AddNumberToObject(g1, "threshold", min_acc);
    cJSON_AddNumberToObject(g1, "value", ms[SYS_FINETUNED].accuracy);
    cJSON_AddBoolToObject(g1, "passed", acc_ok);
    cJSON *g2 = cJSON_AddObjectToObject(gates, "min_gain");
    cJSON_AddNumberToObject(g2, "threshold", min_gain);
    cJSON_AddNumberToObject(g2, "value", gain);
    cJSON_AddBoolToObject(g2, "passed", gain_ok);
    cJSON_AddBoolToObject(root, "passed", acc_ok && gain_ok);
    cJSON *tm = cJSON_AddObjectToObject(root, "time_s");
    cJSON_AddNumberToObject(tm, "fine_tuned", t_base - t_ft);
    cJSON_AddNumberToObject(tm, "base", t_end_score - t_base);
    cJSON_AddNumberToObject(tm, "wall", wall);
    cJSON_AddNumberToObject(root, "examples_per_s", (double)n * 2 / (t_end_score - t_ft > 1e-9 ? t_end_score - t_ft : 1e-9));
    json_text = cJSON_Print(root);

    /* report.md */
    eval_printf(&md, "# slimtune eval report\n\n");
    eval_printf(&md, "- config: `%s`\n- model: `%s`\n- adapter: `%s`\n- dataset: `%s` (%lld examples)\n\n", config_path,
                cfg.model, adapter_path, test_path, (long long)n);
    size_t table_start = md.len;
    eval_md_table(&md, ms, test.label_names);
    size_t table_end = md.len;
    eval_printf(&md, "\nGain over the best baseline: %+.4f (majority label: %s)\n\n", gain, test.label_names[majority]);
    eval_printf(&md, "Gates: accuracy %.4f >= %.4f: %s; gain %+.4f >= %+.4f: %s\n", ms[SYS_FINETUNED].accuracy, min_acc,
                acc_ok ? "passed" : "FAILED", gain, min_gain, gain_ok ? "passed" : "FAILED");
    for (int s = 0; s < N_SYSTEMS; s++) {
        eval_printf(&md, "\n## Confusion matrix: %s (rows: true, columns: predicted)\n\n| true \\ predicted |",
                    eval_system_names[s]);
        for (int k = 0; k < K; k++) eval_printf(&md, " %s |", test.label_names[k]);
        eval_printf(&md, "\n|---|");
        for (int k = 0; k < K; k++) eval_printf(&md, "---:|");
        eval_printf(&md, "\n");
        for (int t = 0; t < K; t++) {
            eval_printf(&md, "| %s |", test.label_names[t]);
            for (int p = 0; p < K; p++) eval_printf(&md, " %lld |", (long long)ms[s].confusion[(size_t)t * K + p]);
            eval_printf(&md, "\n");
        }
    }
    eval_printf(&md, "\nEval wall time: %.2f s\n", wall);

    if (slim_mkdir_p(eval_dir) != 0) goto fail;
    if (eval_write_text(json_path, json_text) != 0) goto fail;
    if (eval_write_text(md_path, md.s) != 0) goto fail;

    fwrite(md.s + table_start, 1, table_end - table_start, stdout);
    printf("gain over the best baseline: %+.4f\n", gain);
    fflush(stdout);
    fprintf(stderr, "eval: wrote %s and %s (%.1f s)\n", json_path, md_path, wall);
    status = 0;
    if (!acc_ok)
        fprintf(stderr, "slimtune eval: gate failed: fine-tuned accuracy %.4f < min_accuracy %.4f\n",
                ms[SYS_FINETUNED].accuracy, min_acc);
    if (!gain_ok)
        fprintf(stderr, "slimtune eval: gate failed: gain %+.4f (accuracy %.4f - best baseline %.4f) < min_gain %+.4f\n",
                gain, ms[SYS_FINETUNED].accuracy, best_baseline, min_gain);
    if (!acc_ok || !gain_ok) status = 1;
    goto done;
fail:
    fprintf(stderr, "slimtune eval: %s\n", slim_last_error());
    status = 2;
done:
    free(md.s);
    free(json_text);
    cJSON_Delete(root);
    for (int s = 0; s < N_SYSTEMS; s++) { eval_metrics_free(&ms[s]); free(preds[s]); }
    free(scores);
    free(truth);
    free(idx);
    if (lora.params) lora_free(&lora);
    if (model.params) model_free(&model);
    dataset_free(&test);
    dataset_free(&train);
    config_free(&cfg);
    return status;
}
