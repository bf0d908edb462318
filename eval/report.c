/* report.c — report.json, report.md and the stdout summary of `slimtune eval`; see report.h. */
#include "report.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"

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

/* A gate: {"threshold", "value", "passed"}; returns it. */
static cJSON *eval_gate_json(cJSON *gates, const char *name, double threshold, double value, int passed) {
    cJSON *g = cJSON_AddObjectToObject(gates, name);
    cJSON_AddNumberToObject(g, "threshold", threshold);
    cJSON_AddNumberToObject(g, "value", value);
    cJSON_AddBoolToObject(g, "passed", passed);
    return g;
}

/* [lo, hi] as a JSON array. */
static cJSON *eval_interval_json(double lo, double hi) {
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, cJSON_CreateNumber(lo));
    cJSON_AddItemToArray(a, cJSON_CreateNumber(hi));
    return a;
}

/* The paired comparison of the fine-tuned model against a system (eval_paired, differences fine-tuned
 * minus the system). */
static cJSON *eval_paired_json(const eval_paired *p) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "accuracy_diff", p->acc_diff);
    cJSON_AddItemToObject(o, "accuracy_diff_ci95", eval_interval_json(p->acc_lo, p->acc_hi));
    cJSON_AddNumberToObject(o, "macro_f1_diff", p->f1_diff);
    cJSON_AddItemToObject(o, "macro_f1_diff_ci95", eval_interval_json(p->f1_lo, p->f1_hi));
    cJSON_AddNumberToObject(o, "only_fine_tuned_right", (double)p->a_only);
    cJSON_AddNumberToObject(o, "only_this_right", (double)p->b_only);
    cJSON_AddNumberToObject(o, "mcnemar_p", p->p_mcnemar);
    cJSON_AddNumberToObject(o, "bootstrap_resamples", p->resamples);
    return o;
}

/* Every scored example: {"index" (in the dataset), "gold", "predicted": {system: label}}, for a later
 * run's paired comparison (--baseline-report). */
static cJSON *eval_examples_json(const eval_result *r) {
    cJSON *a = cJSON_CreateArray();
    for (int64_t i = 0; i < r->n; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "index", (double)r->idx[i]);
        cJSON_AddStringToObject(e, "gold", r->labels[r->truth[i]]);
        cJSON *p = cJSON_AddObjectToObject(e, "predicted");
        for (int s = 0; s < r->n_systems; s++) {
            const int32_t k = r->sys[s].pred[i];
            cJSON_AddItemToObject(p, r->sys[s].name, k >= 0 ? cJSON_CreateString(r->labels[k]) : cJSON_CreateNull());
        }
        cJSON_AddItemToArray(a, e);
    }
    return a;
}

/* x, or null when it is not finite. */
static cJSON *eval_num_or_null(double x) { return isfinite(x) ? cJSON_CreateNumber(x) : cJSON_CreateNull(); }

/* The routing decision: {"threshold" (null: the target is out of reach, escalate everything), "coverage",
 * "accuracy", "temperature", "target_accuracy", "selected_on", "labels"}: routing.json, also in report.json. */
static cJSON *eval_routing_json(const eval_result *r) {
    const eval_calibration *c = &r->cal;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "threshold", eval_num_or_null(c->threshold));
    cJSON_AddNumberToObject(o, "coverage", c->coverage);
    cJSON_AddItemToObject(o, "accuracy", eval_num_or_null(c->accuracy));
    cJSON_AddNumberToObject(o, "temperature", c->temperature);
    cJSON_AddNumberToObject(o, "target_accuracy", c->target);
    cJSON_AddStringToObject(o, "selected_on", c->threshold_on_val ? "validation" : "test");
    cJSON *jl = cJSON_AddArrayToObject(o, "labels");
    for (int k = 0; k < r->n_labels; k++) cJSON_AddItemToArray(jl, cJSON_CreateString(r->labels[k]));
    cJSON_AddStringToObject(o, "model", r->model);
    cJSON_AddStringToObject(o, "adapter", r->adapter);
    return o;
}

/* Calibration of the fine-tuned model: temperature, NLL and ECE before / after, the reliability diagram's
 * bins and the accuracy-coverage curve. */
static cJSON *eval_calibration_json(const eval_result *r) {
    const eval_calibration *c = &r->cal;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "temperature", c->temperature);
    cJSON_AddNumberToObject(o, "fitted_on_validation_examples", (double)c->n_val);
    cJSON_AddNumberToObject(o, "nll", c->nll_raw);
    cJSON_AddNumberToObject(o, "nll_scaled", c->nll);
    cJSON_AddNumberToObject(o, "ece", c->ece_raw);
    cJSON_AddNumberToObject(o, "ece_scaled", c->ece);
    cJSON *bins = cJSON_AddArrayToObject(o, "reliability");
    for (int b = 0; b < EVAL_ECE_BINS; b++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "lo", (double)b / EVAL_ECE_BINS);
        cJSON_AddNumberToObject(e, "hi", (double)(b + 1) / EVAL_ECE_BINS);
        cJSON_AddNumberToObject(e, "n", (double)c->bin_n[b]);
        cJSON_AddItemToObject(e, "confidence", c->bin_n[b] ? cJSON_CreateNumber(c->bin_conf[b]) : cJSON_CreateNull());
        cJSON_AddItemToObject(e, "accuracy", c->bin_n[b] ? cJSON_CreateNumber(c->bin_acc[b]) : cJSON_CreateNull());
        cJSON_AddItemToArray(bins, e);
    }
    cJSON *curve = cJSON_AddArrayToObject(o, "coverage_curve");
    for (int p = 0; p < EVAL_CURVE_POINTS; p++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "coverage", c->curve_coverage[p]);
        cJSON_AddNumberToObject(e, "accuracy", c->curve_accuracy[p]);
        cJSON_AddNumberToObject(e, "threshold", c->curve_threshold[p]);
        cJSON_AddItemToArray(curve, e);
    }
    return o;
}

/* The gates of report.json. */
static void eval_gates_json(cJSON *root, const eval_result *r) {
    cJSON *gates = cJSON_AddObjectToObject(root, "gates");
    eval_gate_json(gates, "min_accuracy", r->min_accuracy, r->sys[SYS_FINETUNED].m.accuracy, r->acc_ok);
    eval_gate_json(gates, "min_gain", r->min_gain, r->gain, r->gain_ok);
    if (r->previous >= 0) {
        const eval_paired *p = &r->sys[r->previous].vs;
        cJSON *g = eval_gate_json(gates, "max_regression", r->max_regression, -p->acc_diff, r->regression_ok);
        cJSON_AddStringToObject(g, "against", r->sys[r->previous].name);
        cJSON_AddNumberToObject(g, "mcnemar_p", p->p_mcnemar);
        cJSON_AddNumberToObject(g, "alpha", r->alpha);
    }
    cJSON_AddBoolToObject(root, "passed", r->acc_ok && r->gain_ok && r->regression_ok);
}

/* The text of report.json (free with cJSON_free), or NULL. */
static char *eval_report_json(const eval_result *r) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "config", r->config);
    cJSON_AddStringToObject(root, "model", r->model);
    cJSON_AddStringToObject(root, "adapter", r->adapter);
    cJSON_AddStringToObject(root, "dataset", r->dataset);
    cJSON_AddStringToObject(root, "split", r->split);
    cJSON_AddNumberToObject(root, "n_examples", (double)r->n);
    cJSON_AddNumberToObject(root, "n_unlabeled_skipped", (double)r->n_unlabeled);
    cJSON_AddStringToObject(root, "fingerprint", r->fingerprint);
    cJSON *jl = cJSON_AddArrayToObject(root, "labels");
    for (int k = 0; k < r->n_labels; k++) cJSON_AddItemToArray(jl, cJSON_CreateString(r->labels[k]));
    cJSON_AddStringToObject(root, "majority_label", r->labels[r->majority]);
    cJSON *sys = cJSON_AddObjectToObject(root, "systems");
    for (int s = 0; s < r->n_systems; s++) {
        cJSON *m = eval_metrics_json(&r->sys[s].m, r->labels);
        if (s != SYS_FINETUNED) cJSON_AddItemToObject(m, "fine_tuned_vs_this", eval_paired_json(&r->sys[s].vs));
        if (r->sys[s].external) {
            cJSON_AddNumberToObject(m, "missing", (double)r->sys[s].n_missing);
            cJSON_AddNumberToObject(m, "outside_labels", (double)r->sys[s].n_invalid);
            cJSON_AddNumberToObject(m, "file_bad_rows", (double)r->sys[s].n_bad_rows);
        }
        cJSON_AddItemToObject(sys, r->sys[s].name, m);
    }
    cJSON_AddNumberToObject(root, "best_baseline_accuracy", r->best_baseline);
    cJSON_AddNumberToObject(root, "gain", r->gain);
    eval_gates_json(root, r);
    cJSON *tm = cJSON_AddObjectToObject(root, "time_s");
    cJSON_AddNumberToObject(tm, "fine_tuned", r->t_finetuned);
    cJSON_AddNumberToObject(tm, "base", r->t_base);
    cJSON_AddNumberToObject(tm, "wall", r->wall);
    double t_score = r->t_finetuned + r->t_base;
    cJSON_AddNumberToObject(root, "examples_per_s", (double)r->n * 2 / (t_score > 1e-9 ? t_score : 1e-9));
    cJSON_AddItemToObject(root, "calibration", eval_calibration_json(r));
    cJSON_AddItemToObject(root, "routing", eval_routing_json(r));
    cJSON_AddItemToObject(root, "examples", eval_examples_json(r));
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
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

/* A Markdown table head: "| first |" + " label |" per label, then the rule with right-aligned numbers. */
static void eval_md_head(eval_buf *b, const char *first, const char *rule, const char *label_fmt,
                         char *const *labels, int K) {
    eval_printf(b, "%s", first);
    for (int k = 0; k < K; k++) eval_printf(b, label_fmt, labels[k]);
    eval_printf(b, "%s", rule);
    for (int k = 0; k < K; k++) eval_printf(b, "---:|");
    eval_printf(b, "\n");
}

/* The summary table: system | accuracy | macro-F1 | the fine-tuned model's accuracy minus the system's
 * with its 95% bootstrap interval | McNemar p | per-class P/R. */
static void eval_md_table(eval_buf *b, const eval_result *r) {
    eval_md_head(b, "| system | accuracy | macro-F1 | fine-tuned - system (95% CI) | McNemar p |",
                 "\n|---|---:|---:|---:|---:|", " %s P/R |", r->labels, r->n_labels);
    for (int s = 0; s < r->n_systems; s++) {
        const eval_metrics *m = &r->sys[s].m;
        const eval_paired *p = &r->sys[s].vs;
        eval_printf(b, "| %s", r->sys[s].name);
        if (r->sys[s].external && (r->sys[s].n_missing || r->sys[s].n_invalid))
            eval_printf(b, " (%lld missing, %lld outside the labels: counted wrong)", (long long)r->sys[s].n_missing,
                        (long long)r->sys[s].n_invalid);
        eval_printf(b, " | %.4f | %.4f |", m->accuracy, m->macro_f1);
        if (s == SYS_FINETUNED) eval_printf(b, " | |");
        else eval_printf(b, " %+.4f [%+.4f, %+.4f] | %.3g |", p->acc_diff, p->acc_lo, p->acc_hi, p->p_mcnemar);
        for (int k = 0; k < r->n_labels; k++) eval_printf(b, " %.3f / %.3f |", m->precision[k], m->recall[k]);
        eval_printf(b, "\n");
    }
}

/* The routing line: where the small model answers and what it keeps. */
static void eval_routing_line(eval_buf *b, const eval_result *r) {
    const eval_calibration *c = &r->cal;
    if (!isfinite(c->threshold))
        eval_printf(b, "routing: no confidence threshold reaches accuracy %.3f on the %s split: escalate every request\n",
                    c->target, c->threshold_on_val ? "validation" : "test");
    else
        eval_printf(b, "routing: answer when p >= %.4f (temperature %.3f, chosen on the %s split for accuracy %.3f): "
                    "%.1f%% of the test traffic at accuracy %.4f; escalate the rest\n", c->threshold, c->temperature,
                    c->threshold_on_val ? "validation" : "test", c->target, 100.0 * c->coverage, c->accuracy);
}

/* The calibration and routing section of report.md. */
static void eval_md_routing(eval_buf *md, const eval_result *r) {
    const eval_calibration *c = &r->cal;
    eval_printf(md, "\n## Confidence and routing\n\n");
    eval_printf(md, "Calibration of the fine-tuned model (probability = softmax over the labels' completion "
                "log-likelihoods): ECE (%d bins) %.4f, NLL %.4f at temperature 1; %.4f and %.4f at temperature "
                "%.3f (%s).\n\n", EVAL_ECE_BINS, c->ece_raw, c->nll_raw, c->ece, c->nll, c->temperature,
                c->n_val ? "fitted on the validation split" : "no validation split: not fitted");
    eval_routing_line(md, r);
    eval_printf(md, "\n| coverage | accuracy | threshold |\n|---:|---:|---:|\n");
    for (int p = 0; p < EVAL_CURVE_POINTS; p++)
        eval_printf(md, "| %.2f | %.4f | %.4f |\n", c->curve_coverage[p], c->curve_accuracy[p], c->curve_threshold[p]);
}

/* report.md into md; the summary table is md->s[*table_start, *table_end). */
static void eval_report_md(eval_buf *md, const eval_result *r, size_t *table_start, size_t *table_end) {
    const int K = r->n_labels;
    eval_printf(md, "# slimtune eval report\n\n");
    eval_printf(md, "- config: `%s`\n- model: `%s`\n- adapter: `%s`\n- dataset: `%s` (%lld examples)\n\n", r->config,
                r->model, r->adapter, r->dataset, (long long)r->n);
    *table_start = md->len;
    eval_md_table(md, r);
    *table_end = md->len;
    eval_printf(md, "\nGain over the best baseline: %+.4f (majority label: %s)\n\n", r->gain, r->labels[r->majority]);
    eval_printf(md, "Gates: accuracy %.4f >= %.4f: %s; gain %+.4f >= %+.4f: %s\n", r->sys[SYS_FINETUNED].m.accuracy,
                r->min_accuracy, r->acc_ok ? "passed" : "FAILED", r->gain, r->min_gain, r->gain_ok ? "passed" : "FAILED");
    if (r->previous >= 0)
        eval_printf(md, "\nRegression against %s: accuracy %+.4f (95%% CI [%+.4f, %+.4f]), McNemar p = %.3g: %s "
                    "(fails when worse by more than %.4f with p < %.3g)\n", r->sys[r->previous].name,
                    r->sys[r->previous].vs.acc_diff, r->sys[r->previous].vs.acc_lo, r->sys[r->previous].vs.acc_hi,
                    r->sys[r->previous].vs.p_mcnemar, r->regression_ok ? "passed" : "FAILED", r->max_regression,
                    r->alpha);
    eval_md_routing(md, r);
    for (int s = 0; s < r->n_systems; s++) {
        eval_printf(md, "\n## Confusion matrix: %s (rows: true, columns: predicted)\n\n", r->sys[s].name);
        eval_md_head(md, "| true \\ predicted |", "\n|---|", " %s |", r->labels, K);
        for (int t = 0; t < K; t++) {
            eval_printf(md, "| %s |", r->labels[t]);
            for (int p = 0; p < K; p++) eval_printf(md, " %lld |", (long long)r->sys[s].m.confusion[(size_t)t * K + p]);
            eval_printf(md, "\n");
        }
    }
    eval_printf(md, "\nEval wall time: %.2f s\n", r->wall);
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

int eval_write_reports(const eval_result *r, const char *dir) {
    char json_path[4096], md_path[4096], routing_path[4096], html_path[4096];
    if (slim_format_path(json_path, sizeof json_path, "%s/report.json", dir) ||
        slim_format_path(md_path, sizeof md_path, "%s/report.md", dir) ||
        slim_format_path(routing_path, sizeof routing_path, "%s/routing.json", dir) ||
        slim_format_path(html_path, sizeof html_path, "%s/report.html", dir))
        return -1;
    cJSON *routing = eval_routing_json(r);
    char *routing_text = cJSON_Print(routing);
    cJSON_Delete(routing);
    char *json = eval_report_json(r);
    eval_buf md = {0};
    size_t table_start, table_end;
    eval_report_md(&md, r, &table_start, &table_end);
    int rc = -1;
    if (!json) slim_set_error("%s: cannot format the report", json_path);
    else if (slim_mkdir_p(dir) == 0 && eval_write_text(json_path, json) == 0 && eval_write_text(md_path, md.s) == 0 &&
             eval_write_text(routing_path, routing_text) == 0 && eval_write_html(r, html_path) == 0)
        rc = 0;
    if (rc == 0) {
        fwrite(md.s + table_start, 1, table_end - table_start, stdout);
        printf("gain over the best baseline: %+.4f\n", r->gain);
        const double T = r->cal.temperature;
        printf("calibration: ECE %.4f -> %.4f at temperature %.3f%s%s\n", r->cal.ece_raw, r->cal.ece, T,
               r->cal.n_val ? " (fitted on the validation split)" : " (no validation split: data.val or "
               "data.split.val_fraction fits one)", T < 0.0501 || T > 19.99 ? "; at the bound of [0.05, 20]: the "
               "validation split is separated too easily or too small to fit it well" : "");
        eval_buf line = {0};
        eval_routing_line(&line, r);
        fputs(line.s, stdout);
        free(line.s);
        fflush(stdout);
        fprintf(stderr, "eval: wrote %s, %s, %s and %s (%.1f s)\n", json_path, md_path, html_path, routing_path, r->wall);
    }
    cJSON_free(json);
    cJSON_free(routing_text);
    free(md.s);
    return rc;
}
