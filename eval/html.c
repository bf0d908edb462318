/* html.c — eval/report.html: one self-contained page (inline SVG and CSS, no script, nothing fetched)
 * for people: the systems with their intervals, the confusion matrix as a heatmap, per-class bars, the
 * reliability diagram, the accuracy-coverage curve with the routing threshold, the training and
 * validation loss curves of metrics.jsonl, and the fine-tuned model's most confident errors with their
 * text. See report.h. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "report.h"

#define W 560.0 /* plot width and height (SVG user units), margins */
#define H 300.0
#define ML 50.0
#define MB 36.0

static void h_printf(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void h_printf(FILE *f, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
}

/* s with &, <, >, " escaped. */
static void h_text(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '&') fputs("&amp;", f);
        else if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

/* x of value v in [0, 1] and y of value u in [lo, hi] inside the plot area. */
static double h_x(double v) { return ML + v * (W - ML - 10); }
static double h_y(double u, double lo, double hi) { return H - MB - (u - lo) / (hi - lo) * (H - MB - 10); }

/* An SVG plot's frame: axes, ticks at 0, .25 .. 1 on x (labelled xl; none when xl is NULL) and 5 on y in
 * [lo, hi] (yl). */
static void h_axes(FILE *f, const char *title, const char *xl, const char *yl, double lo, double hi) {
    h_printf(f, "<figure><figcaption>");
    h_text(f, title);
    h_printf(f, "</figcaption><svg viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" height=\"%.0f\">", W, H, W, H);
    h_printf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"ax\"/>", ML, H - MB, W - 10, H - MB);
    h_printf(f, "<line x1=\"%.1f\" y1=\"10\" x2=\"%.1f\" y2=\"%.1f\" class=\"ax\"/>", ML, ML, H - MB);
    for (int i = 0; i <= 4; i++) {
        double v = i / 4.0, u = lo + (hi - lo) * i / 4.0;
        if (xl) h_printf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"tk\" text-anchor=\"middle\">%.2g</text>", h_x(v), H - MB + 14, v);
        h_printf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"tk\" text-anchor=\"end\">%.3g</text>", ML - 4, h_y(u, lo, hi) + 4, u);
    }
    h_printf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"lb\" text-anchor=\"middle\">%s</text>", (ML + W) / 2, H - 4, xl ? xl : "");
    h_printf(f, "<text x=\"12\" y=\"%.1f\" class=\"lb\" transform=\"rotate(-90 12 %.1f)\" text-anchor=\"middle\">%s</text>",
             H / 2, H / 2, yl);
}

static void h_end_plot(FILE *f) { fputs("</svg></figure>\n", f); }

/* The systems table: accuracy, macro-F1, the fine-tuned minus each with its interval, McNemar p. */
static void h_systems(FILE *f, const eval_result *r) {
    fputs("<h2>Systems</h2><table><tr><th>system</th><th>accuracy</th><th>macro-F1</th>"
          "<th>fine-tuned &minus; system (95% CI)</th><th>McNemar p</th></tr>\n", f);
    for (int s = 0; s < r->n_systems; s++) {
        const eval_system *x = &r->sys[s];
        fputs("<tr><td>", f);
        h_text(f, x->name);
        h_printf(f, "</td><td>%.4f</td><td>%.4f</td>", x->m.accuracy, x->m.macro_f1);
        if (s == SYS_FINETUNED) fputs("<td></td><td></td></tr>\n", f);
        else h_printf(f, "<td>%+.4f [%+.4f, %+.4f]</td><td>%.3g</td></tr>\n", x->vs.acc_diff, x->vs.acc_lo, x->vs.acc_hi,
                      x->vs.p_mcnemar);
    }
    h_printf(f, "</table><p>Gates: accuracy %.4f &ge; %.4f: <b>%s</b>; gain %+.4f &ge; %+.4f: <b>%s</b>",
             r->sys[SYS_FINETUNED].m.accuracy, r->min_accuracy, r->acc_ok ? "passed" : "FAILED", r->gain, r->min_gain,
             r->gain_ok ? "passed" : "FAILED");
    if (r->previous >= 0)
        h_printf(f, "; regression against previous (max %.4f, alpha %.3g): <b>%s</b>", r->max_regression, r->alpha,
                 r->regression_ok ? "passed" : "FAILED");
    fputs("</p>\n", f);
}

/* The fine-tuned confusion matrix as a heatmap (each row's share, the counts written in). */
static void h_confusion(FILE *f, const eval_result *r) {
    const int K = r->n_labels;
    const eval_metrics *m = &r->sys[SYS_FINETUNED].m;
    const double cell = K <= 8 ? 48 : 360.0 / K, x0 = 120, y0 = 40;
    h_printf(f, "<figure><figcaption>Confusion matrix, fine-tuned (rows: true, columns: predicted)</figcaption>"
             "<svg viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" height=\"%.0f\">", x0 + cell * K + 10, y0 + cell * K + 10,
             x0 + cell * K + 10, y0 + cell * K + 10);
    for (int t = 0; t < K; t++) {
        int64_t row = m->support[t] > 0 ? m->support[t] : 1;
        h_printf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"tk\" text-anchor=\"end\">", x0 - 4, y0 + cell * (t + 0.6));
        h_text(f, r->labels[t]);
        h_printf(f, "</text><text x=\"%.1f\" y=\"%.1f\" class=\"tk\" text-anchor=\"middle\">", x0 + cell * (t + 0.5), y0 - 6);
        h_text(f, r->labels[t]);
        fputs("</text>", f);
        for (int p = 0; p < K; p++) {
            int64_t c = m->confusion[(size_t)t * K + p];
            double share = (double)c / (double)row;
            h_printf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"rgb(%d,%d,255)\"/>",
                     x0 + cell * p, y0 + cell * t, cell - 1, cell - 1, (int)(255 * (1 - share)), (int)(255 * (1 - share)));
            if (cell >= 20)
                h_printf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"tk\" text-anchor=\"middle\" fill=\"%s\">%lld</text>",
                         x0 + cell * (p + 0.5), y0 + cell * (t + 0.6), share > 0.5 ? "#fff" : "#000", (long long)c);
        }
    }
    h_end_plot(f);
}

/* Per-class precision, recall and F1 of the fine-tuned model as grouped bars. */
static void h_per_class(FILE *f, const eval_result *r) {
    const int K = r->n_labels;
    const eval_metrics *m = &r->sys[SYS_FINETUNED].m;
    const char *colors[3] = {"#4c72b0", "#dd8452", "#55a868"};
    h_axes(f, "Per class, fine-tuned: precision (blue), recall (orange), F1 (green)", NULL, "value", 0, 1);
    const double gw = (W - ML - 20) / K, bw = gw / 4;
    for (int k = 0; k < K; k++) {
        const double v[3] = {m->precision[k], m->recall[k], m->f1[k]};
        for (int j = 0; j < 3; j++)
            h_printf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>",
                     ML + 4 + gw * k + bw * j, h_y(v[j], 0, 1), bw - 1, H - MB - h_y(v[j], 0, 1), colors[j]);
        if (K <= 16) {
            h_printf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"tk\" text-anchor=\"middle\">", ML + 4 + gw * k + 1.5 * bw,
                     H - MB + 14);
            h_text(f, r->labels[k]);
            fputs("</text>", f);
        }
    }
    h_end_plot(f);
}

/* The reliability diagram: each bin's accuracy against its mean confidence, and the diagonal. */
static void h_reliability(FILE *f, const eval_result *r) {
    const eval_calibration *c = &r->cal;
    char title[200];
    snprintf(title, sizeof title, "Reliability (temperature %.3f): ECE %.4f (%.4f at temperature 1)", c->temperature, c->ece,
             c->ece_raw);
    h_axes(f, title, "confidence", "accuracy", 0, 1);
    h_printf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"ref\"/>", h_x(0), h_y(0, 0, 1), h_x(1),
             h_y(1, 0, 1));
    for (int b = 0; b < EVAL_ECE_BINS; b++) {
        if (!c->bin_n[b]) continue;
        double lo = (double)b / EVAL_ECE_BINS, hi = (double)(b + 1) / EVAL_ECE_BINS;
        h_printf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#4c72b0\" opacity=\"0.8\"/>",
                 h_x(lo) + 1, h_y(c->bin_acc[b], 0, 1), h_x(hi) - h_x(lo) - 2, H - MB - h_y(c->bin_acc[b], 0, 1));
        h_printf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#c44e52\"/>", h_x(c->bin_conf[b]),
                 h_y(c->bin_conf[b], 0, 1));
    }
    h_end_plot(f);
}

/* Accuracy against coverage, the target accuracy and the routing point. */
static void h_coverage(FILE *f, const eval_result *r) {
    const eval_calibration *c = &r->cal;
    double lo = 1.0;
    for (int p = 0; p < EVAL_CURVE_POINTS; p++) lo = c->curve_accuracy[p] < lo ? c->curve_accuracy[p] : lo;
    lo = floor(lo * 10) / 10 > 0.9 ? 0.9 : floor(lo * 10) / 10;
    h_axes(f, "Accuracy of the answered requests against the share answered (most confident first)", "coverage",
           "accuracy", lo, 1);
    fputs("<polyline fill=\"none\" stroke=\"#4c72b0\" stroke-width=\"2\" points=\"", f);
    for (int p = 0; p < EVAL_CURVE_POINTS; p++)
        h_printf(f, "%.1f,%.1f ", h_x(c->curve_coverage[p]), h_y(c->curve_accuracy[p], lo, 1));
    fputs("\"/>", f);
    if (c->target >= lo)
        h_printf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"ref\"/>", h_x(0), h_y(c->target, lo, 1),
                 h_x(1), h_y(c->target, lo, 1));
    if (isfinite(c->threshold) && isfinite(c->accuracy) && c->accuracy >= lo)
        h_printf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"#c44e52\"><title>threshold %.4f</title></circle>",
                 h_x(c->coverage), h_y(c->accuracy, lo, 1), c->threshold);
    h_end_plot(f);
}

/* The training loss (per logged step) and validation loss of metrics.jsonl, when the file is there. */
static void h_losses(FILE *f, const char *path) {
    char *text = NULL;
    size_t len = 0;
    if (!path || slim_read_file(path, &text, &len) != 0) {
        fputs("<p>(no training metrics found)</p>\n", f);
        return;
    }
    double *x = slim_malloc(sizeof(double) * 4 * (len / 8 + 2)), hi = 0, max_step = 1;
    double *y = x + len / 8 + 2, *vx = y + len / 8 + 2, *vy = vx + len / 8 + 2;
    int n = 0, nv = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "step"), *l = cJSON_GetObjectItemCaseSensitive(o, "loss"),
                    *v = cJSON_GetObjectItemCaseSensitive(o, "val_loss");
        if (cJSON_IsNumber(st) && cJSON_IsNumber(l)) { x[n] = st->valuedouble; y[n++] = l->valuedouble; }
        if (cJSON_IsNumber(st) && cJSON_IsNumber(v)) { vx[nv] = st->valuedouble; vy[nv++] = v->valuedouble; }
        if (cJSON_IsNumber(st) && st->valuedouble > max_step) max_step = st->valuedouble;
        cJSON_Delete(o);
    }
    for (int i = 0; i < n; i++) hi = y[i] > hi ? y[i] : hi;
    for (int i = 0; i < nv; i++) hi = vy[i] > hi ? vy[i] : hi;
    h_axes(f, "Loss per target token: training (blue) and validation (red), by step / last step", "step / last step",
           "loss", 0, hi > 0 ? hi : 1);
    const double *px[2] = {x, vx}, *py[2] = {y, vy};
    const int pn[2] = {n, nv};
    const char *col[2] = {"#4c72b0", "#c44e52"};
    for (int c = 0; c < 2; c++) {
        h_printf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col[c]);
        for (int i = 0; i < pn[c]; i++) h_printf(f, "%.1f,%.1f ", h_x(px[c][i] / max_step), h_y(py[c][i], 0, hi > 0 ? hi : 1));
        fputs("\"/>", f);
    }
    h_end_plot(f);
    free(x);
    free(text);
}

/* The fine-tuned model's most confident errors, with their text. */
static void h_errors(FILE *f, const eval_result *r) {
    fputs("<h2>Most confident errors of the fine-tuned model</h2>\n", f);
    if (r->n_worst == 0) {
        fputs("<p>None: every example is right.</p>\n", f);
        return;
    }
    fputs("<table><tr><th>example</th><th>true</th><th>predicted</th><th>confidence</th><th>text</th></tr>\n", f);
    for (int i = 0; i < r->n_worst; i++) {
        const eval_error *e = &r->worst[i];
        h_printf(f, "<tr><td>%lld</td><td>", (long long)e->index);
        h_text(f, r->labels[e->gold]);
        fputs("</td><td>", f);
        h_text(f, r->labels[e->pred]);
        h_printf(f, "</td><td>%.4f</td><td class=\"tx\">", e->confidence);
        h_text(f, e->text);
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n", f);
}

static const char *const h_style =
    "body{font-family:sans-serif;margin:24px;color:#222;max-width:1200px}table{border-collapse:collapse;margin:8px 0}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
    "td.tx{text-align:left;font-family:monospace;white-space:pre-wrap;max-width:640px}figure{display:inline-block;"
    "margin:8px 16px 8px 0;vertical-align:top}figcaption{font-size:13px;margin-bottom:4px}.ax{stroke:#444}"
    ".ref{stroke:#999;stroke-dasharray:4 3}.tk{font-size:10px}.lb{font-size:12px}svg{background:#fafafa}";

int eval_write_html(const eval_result *r, const char *path) {
    char tmp[4200];
    FILE *f = slim_atomic_open(path, tmp, sizeof tmp);
    if (!f) return -1;
    h_printf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>slimtune eval</title>"
             "<style>%s</style></head><body>\n<h1>slimtune eval report</h1><p>model <code>", h_style);
    h_text(f, r->model);
    fputs("</code>, adapter <code>", f);
    h_text(f, r->adapter);
    fputs("</code>, dataset <code>", f);
    h_text(f, r->dataset);
    h_printf(f, "</code>: %lld examples, %d labels</p>\n", (long long)r->n, r->n_labels);
    h_systems(f, r);
    fputs("<h2>Fine-tuned model</h2>\n", f);
    h_confusion(f, r);
    h_per_class(f, r);
    fputs("<h2>Confidence and routing</h2>\n", f);
    h_reliability(f, r);
    h_coverage(f, r);
    if (isfinite(r->cal.threshold))
        h_printf(f, "<p>Router: answer when p &ge; %.4f (temperature %.3f): %.1f%% of the test traffic at accuracy %.4f "
                 "(target %.3f); escalate the rest.</p>\n", r->cal.threshold, r->cal.temperature, 100 * r->cal.coverage,
                 r->cal.accuracy, r->cal.target);
    else
        h_printf(f, "<p>Router: no threshold reaches accuracy %.3f: escalate every request.</p>\n", r->cal.target);
    fputs("<h2>Training</h2>\n", f);
    h_losses(f, r->metrics_path);
    h_errors(f, r);
    fputs("</body></html>\n", f);
    return slim_atomic_commit(f, tmp, path);
}
