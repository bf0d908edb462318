/* report.c — report.json, report.md and the stdout summary of `slimtune eval`; see report.h. */
#include "report.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"

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

/* A gate: {"threshold", "value", "passed"}. */
static void eval_gate_json(cJSON *gates, const char *name, double threshold, double value, int passed) {
    cJSON *g = cJSON_AddObjectToObject(gates, name);
    cJSON_AddNumberToObject(g, "threshold", threshold);
    cJSON_AddNumberToObject(g, "value", value);
    cJSON_AddBoolToObject(g, "passed", passed);
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
    cJSON *jl = cJSON_AddArrayToObject(root, "labels");
    for (int k = 0; k < r->n_labels; k++) cJSON_AddItemToArray(jl, cJSON_CreateString(r->labels[k]));
    cJSON_AddStringToObject(root, "majority_label", r->labels[r->majority]);
    cJSON *sys = cJSON_AddObjectToObject(root, "systems");
    for (int s = 0; s < N_SYSTEMS; s++) cJSON_AddItemToObject(sys, eval_system_names[s], eval_metrics_json(&r->ms[s], r->labels));
    cJSON_AddNumberToObject(root, "best_baseline_accuracy", r->best_baseline);
    cJSON_AddNumberToObject(root, "gain", r->gain);
    cJSON *gates = cJSON_AddObjectToObject(root, "gates");
    eval_gate_json(gates, "min_accuracy", r->min_accuracy, r->ms[SYS_FINETUNED].accuracy, r->acc_ok);
    eval_gate_json(gates, "min_gain", r->min_gain, r->gain, r->gain_ok);
    cJSON_AddBoolToObject(root, "passed", r->acc_ok && r->gain_ok);
    cJSON *tm = cJSON_AddObjectToObject(root, "time_s");
    cJSON_AddNumberToObject(tm, "fine_tuned", r->t_finetuned);
    cJSON_AddNumberToObject(tm, "base", r->t_base);
    cJSON_AddNumberToObject(tm, "wall", r->wall);
    double t_score = r->t_finetuned + r->t_base;
    cJSON_AddNumberToObject(root, "examples_per_s", (double)r->n * 2 / (t_score > 1e-9 ? t_score : 1e-9));
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

/* The summary table: system | accuracy | macro-F1 | per-class P/R. */
static void eval_md_table(eval_buf *b, const eval_result *r) {
    eval_md_head(b, "| system | accuracy | macro-F1 |", "\n|---|---:|---:|", " %s P/R |", r->labels, r->n_labels);
    for (int s = 0; s < N_SYSTEMS; s++) {
        const eval_metrics *m = &r->ms[s];
        eval_printf(b, "| %s | %.4f | %.4f |", eval_system_names[s], m->accuracy, m->macro_f1);
        for (int k = 0; k < r->n_labels; k++) eval_printf(b, " %.3f / %.3f |", m->precision[k], m->recall[k]);
        eval_printf(b, "\n");
    }
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
    eval_printf(md, "Gates: accuracy %.4f >= %.4f: %s; gain %+.4f >= %+.4f: %s\n", r->ms[SYS_FINETUNED].accuracy,
                r->min_accuracy, r->acc_ok ? "passed" : "FAILED", r->gain, r->min_gain, r->gain_ok ? "passed" : "FAILED");
    for (int s = 0; s < N_SYSTEMS; s++) {
        eval_printf(md, "\n## Confusion matrix: %s (rows: true, columns: predicted)\n\n", eval_system_names[s]);
        eval_md_head(md, "| true \\ predicted |", "\n|---|", " %s |", r->labels, K);
        for (int t = 0; t < K; t++) {
            eval_printf(md, "| %s |", r->labels[t]);
            for (int p = 0; p < K; p++) eval_printf(md, " %lld |", (long long)r->ms[s].confusion[(size_t)t * K + p]);
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
    char json_path[4096], md_path[4096];
    if (slim_format_path(json_path, sizeof json_path, "%s/report.json", dir) ||
        slim_format_path(md_path, sizeof md_path, "%s/report.md", dir))
        return -1;
    char *json = eval_report_json(r);
    eval_buf md = {0};
    size_t table_start, table_end;
    eval_report_md(&md, r, &table_start, &table_end);
    int rc = -1;
    if (!json) slim_set_error("%s: cannot format the report", json_path);
    else if (slim_mkdir_p(dir) == 0 && eval_write_text(json_path, json) == 0 && eval_write_text(md_path, md.s) == 0)
        rc = 0;
    if (rc == 0) {
        fwrite(md.s + table_start, 1, table_end - table_start, stdout);
        printf("gain over the best baseline: %+.4f\n", r->gain);
        fflush(stdout);
        fprintf(stderr, "eval: wrote %s and %s (%.1f s)\n", json_path, md_path, r->wall);
    }
    cJSON_free(json);
    free(md.s);
    return rc;
}
