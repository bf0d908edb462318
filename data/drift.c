/* drift.c — `slimtune data drift`; see drift.h. */
#include "drift.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common.h"
#include "model/model.h"
#include "prepare.h"
#include "reader.h"
#include "../eval/eval.h"

/* ---------------------------------------------------------------------------------------------- */
/* the statistics */

double drift_js(const double *a, const double *b, int64_t n) {
    double sa = 0.0, sb = 0.0, js = 0.0;
    for (int64_t i = 0; i < n; i++) sa += a[i], sb += b[i];
    if (sa <= 0 || sb <= 0) return 0.0;
    for (int64_t i = 0; i < n; i++) {
        double p = a[i] / sa, q = b[i] / sb, m = 0.5 * (p + q);
        if (p > 0) js += 0.5 * p * log2(p / m);
        if (q > 0) js += 0.5 * q * log2(q / m);
    }
    return js < 0 ? 0 : js > 1 ? 1 : js;
}

static int drift_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void drift_ks(double *x, int64_t nx, double *y, int64_t ny, double *D, double *p) {
    qsort(x, (size_t)nx, sizeof(double), drift_cmp);
    qsort(y, (size_t)ny, sizeof(double), drift_cmp);
    double d = 0.0;
    for (int64_t i = 0, j = 0; i < nx || j < ny;) { /* step through the distinct values of both */
        double v = i < nx && (j >= ny || x[i] <= y[j]) ? x[i] : y[j];
        while (i < nx && x[i] == v) i++;
        while (j < ny && y[j] == v) j++;
        double gap = fabs((double)i / (double)nx - (double)j / (double)ny);
        d = gap > d ? gap : d;
    }
    *D = d;
    /* Kolmogorov's limiting distribution: P(K > l) = 2 sum_{k>=1} (-1)^(k-1) exp(-2 k^2 l^2) */
    double l = sqrt((double)nx * (double)ny / (double)(nx + ny)) * d, s = 0.0;
    if (l < 0.2) { *p = 1.0; return; } /* the series converges slowly there; P > 0.99999 */
    for (int k = 1; k <= 100; k++) {
        double t = exp(-2.0 * k * k * l * l);
        s += (k % 2 ? 2.0 : -2.0) * t;
        if (t < 1e-17) break;
    }
    *p = s < 0 ? 0 : s > 1 ? 1 : s;
}

/* ---------------------------------------------------------------------------------------------- */
/* one file */

/* What one file gives. */
typedef struct drift_side {
    const char *path;
    int64_t n_rows, n_bad, n_unknown;  /* rows; bad rows; labels outside the set */
    double *lengths;                   /* [n] input tokens of each good row */
    double *tokens;                    /* [V] unigram counts of the input tokens */
    double *labels;                    /* [K + 1] label counts, the last: outside the set */
    slim_dataset d;                    /* the good rows rendered, for the model (text_label) */
    double confidence;                 /* --adapter: the mean probability of the predicted label */
    double *predicted;                 /* [K] predicted-label counts */
} drift_side;

static void drift_side_free(drift_side *s) {
    free(s->lengths);
    free(s->tokens);
    free(s->labels);
    free(s->predicted);
    free(s->d.tokens);
    free(s->d.offsets);
    free(s->d.prompt_len);
    free(s->d.labels);
    free(s->d.source_line);
}

/* The run's shared parts. */
typedef struct drift_run {
    const slim_config *cfg;
    tokenizer tok;     /* the model's (or m.tok with an adapter) */
    const tokenizer *t;
    model m;
    lora_adapter lora;
    int has_model, has_tok;
    int shape, labelled; /* the config's / files' shape; text_label */
    char **names;
    int K;
    prep_renderer r;
    int has_renderer;
    drift_side side[2];
} drift_run;

/* The label index of name, or -1. */
static int drift_label(const drift_run *g, const char *name) {
    for (int k = 0; k < g->K; k++)
        if (!strcmp(g->names[k], name)) return k;
    return -1;
}

/* Adds one good row to side s: its input tokens in [n] (the whole text, before any template or
 * truncation) to the length and token counts, and its rendering w to the dataset scored. */
static void drift_add(drift_run *g, drift_side *s, const int32_t *in, int n, const prep_rendered *w, int label) {
    const int V = g->t->n_vocab;
    slim_dataset *d = &s->d;
    const int64_t e = d->n_examples++;
    s->lengths[e] = n;
    for (int i = 0; i < n; i++)
        if (in[i] >= 0 && in[i] < V) s->tokens[in[i]]++;
    if (!g->labelled) return;
    d->tokens = slim_realloc(d->tokens, sizeof(int32_t) * (size_t)(d->n_tokens + w->n_tokens));
    memcpy(d->tokens + d->n_tokens, w->tokens, sizeof(int32_t) * (size_t)w->n_tokens);
    d->n_tokens += w->n_tokens;
    d->offsets[e + 1] = d->n_tokens;
    d->prompt_len[e] = w->prompt_len;
    d->labels[e] = label;
    d->source_line[e] = 0;
    if (label >= -1) s->labels[label >= 0 ? label : g->K]++;
}

/* Reads, renders and counts the file of side s. Returns 0 or -1. */
static int drift_read(drift_run *g, drift_side *s) {
    data_reader rd;
    reader_opts ro;
    prep_reader_opts(&ro, g->cfg, g->shape, NULL, 0);
    ro.target_optional = 1;
    if (reader_open_ex(&rd, s->path, &ro) != 0) return -1;
    s->n_rows = rd.n_rows;
    s->lengths = slim_calloc((size_t)rd.n_rows + 1, sizeof(double));
    s->tokens = slim_calloc((size_t)g->t->n_vocab, sizeof(double));
    s->labels = slim_calloc((size_t)g->K + 1, sizeof(double));
    s->d.offsets = slim_calloc((size_t)rd.n_rows + 2, sizeof(int64_t));
    s->d.prompt_len = slim_calloc((size_t)rd.n_rows + 1, sizeof(int32_t));
    s->d.labels = slim_calloc((size_t)rd.n_rows + 1, sizeof(int32_t));
    s->d.source_line = slim_calloc((size_t)rd.n_rows + 1, sizeof(int64_t));
    prep_rendered w = {0};
    int rc = 0, cap = 0;
    int32_t *in = NULL;
    const reader_row *row;
    while (rc == 0 && reader_next(&rd, &row)) {
        if (row->reason != READ_OK) { s->n_bad++; continue; }
        int label = g->labelled && row->label ? drift_label(g, row->label) : -2; /* -2: no label */
        s->n_unknown += label == -1;
        data_example x = *row; /* the prompt does not depend on the label: any label of the set renders it */
        if (g->labelled) { x.label = g->names[label >= 0 ? label : 0]; x.label_len = strlen(x.label); }
        if ((rc = prep_render(&g->r, &x, 0, &w)) != 0) break;
        if (w.bad) { s->n_bad++; continue; }
        int n = tokenizer_encode(g->t, row->text, row->text_len, 0, 1, NULL, 0); /* the input itself */
        if (n < 0 || (n > cap && !(in = slim_realloc(in, sizeof(int32_t) * (size_t)(cap = n))))) { rc = -1; break; }
        if (tokenizer_encode(g->t, row->text, row->text_len, 0, 1, in, n) != n) {
            rc = slim_set_error("%s: line %lld: the tokenizer gave two lengths", s->path, (long long)row->line);
            break;
        }
        drift_add(g, s, in, n, &w, label);
    }
    free(in);
    prep_rendered_free(&w);
    reader_free(&rd);
    if (rc == 0 && s->d.n_examples == 0) rc = slim_set_error("%s: no good rows to compare", s->path);
    return rc;
}

/* --adapter: the mean confidence and predicted-label counts of side s. Returns 0 or -1. */
static int drift_score(drift_run *g, drift_side *s) {
    const int64_t n = s->d.n_examples;
    s->d.n_labels = g->K;
    s->d.label_names = g->names;
    s->d.completion_template = (char *)prep_completion_template(g->cfg, SHAPE_TEXT_LABEL);
    double *scores = slim_malloc(sizeof(double) * (size_t)n * g->K), *probs = slim_malloc(sizeof(double) * (size_t)n * g->K);
    int rc = eval_score(&g->m, &g->lora, &s->d, NULL, n, 32, s->path, scores);
    s->predicted = slim_calloc((size_t)g->K, sizeof(double));
    if (rc == 0) {
        eval_softmax(scores, n, g->K, 1.0, probs);
        for (int64_t i = 0; i < n; i++) {
            int best = 0;
            for (int k = 1; k < g->K; k++) best = probs[i * g->K + k] > probs[i * g->K + best] ? k : best;
            s->confidence += probs[i * g->K + best] / (double)n;
            s->predicted[best]++;
        }
    }
    free(scores);
    free(probs);
    return rc;
}

/* ---------------------------------------------------------------------------------------------- */
/* the run */

/* The tokenizer (or, with --adapter, the model at base.quant and the adapter), the shape and label set
 * (data.labels, else the reference file's labels), the renderer. Returns 0 or -1. */
static int drift_setup(drift_run *g, const drift_opts *o) {
    const slim_config *c = g->cfg;
    if (o->adapter) {
        if (model_load_quant(&g->m, c->model, base_quant_index(c->base_quant)) != 0) return -1;
        g->has_model = 1;
        if (model_require_tokenizer(&g->m) != 0 || lora_load(&g->lora, &g->m, o->adapter) != 0) return -1;
        g->t = &g->m.tok;
    } else {
        if (tokenizer_init_path(&g->tok, c->model) != 0) return -1;
        g->has_tok = 1;
        g->t = &g->tok;
    }
    data_reader rd;
    reader_opts ro;
    prep_reader_opts(&ro, c, example_shape_parse(c->shape), NULL, 0);
    ro.target_optional = 1;
    if (reader_open_ex(&rd, o->reference, &ro) != 0) return -1;
    g->shape = rd.shape;
    g->labelled = rd.shape == SHAPE_TEXT_LABEL;
    if (g->labelled) {
        char **declared = prep_declared_labels(c, &g->K);
        g->names = declared ? declared : prep_train_labels(&rd, &g->K);
        for (int k = 0; k < g->K; k++) g->names[k] = slim_strdup(g->names[k]); /* the config's or the reader's */
    }
    reader_free(&rd);
    if (o->adapter && !g->labelled)
        return slim_set_error("--adapter: %s is not text/label data; the model's confidence needs labels", o->reference);
    if (prep_renderer_init(&g->r, g->t, c, g->shape, g->names, g->K, NULL) != 0) return -1;
    g->has_renderer = 1;
    return 0;
}

static void drift_free(drift_run *g) {
    for (int i = 0; i < 2; i++) drift_side_free(&g->side[i]);
    if (g->has_renderer) prep_renderer_free(&g->r);
    for (int k = 0; k < g->K; k++) free(g->names[k]);
    free(g->names);
    if (g->has_model) {
        if (g->lora.params) lora_free(&g->lora);
        model_free(&g->m);
    }
    if (g->has_tok) tokenizer_free(&g->tok);
}

/* One figure against its gate. */
typedef struct drift_check {
    const char *name;   /* report key, e.g. "token_js" */
    const char *gate;   /* config key */
    double value, limit;
    int on;             /* computed (labels present, adapter given) */
} drift_check;

/* Computes the figures of g into checks [5] and report fields. */
static void drift_figures(drift_run *g, drift_check *ch, double *ks_p) {
    drift_side *a = &g->side[0], *b = &g->side[1];
    const slim_config *c = g->cfg;
    double D;
    drift_ks(a->lengths, a->d.n_examples, b->lengths, b->d.n_examples, &D, ks_p);
    ch[0] = (drift_check){"token_js", "drift.max_token_js", drift_js(a->tokens, b->tokens, g->t->n_vocab), c->drift_max_token_js, 1};
    ch[1] = (drift_check){"length_ks", "drift.max_length_ks", D, c->drift_max_length_ks, 1};
    double la = 0, lb = 0;
    for (int k = 0; k <= g->K && g->labelled; k++) la += a->labels[k], lb += b->labels[k];
    ch[2] = (drift_check){"label_js", "drift.max_label_js", g->labelled ? drift_js(a->labels, b->labels, g->K + 1) : 0,
                          c->drift_max_label_js, g->labelled && la > 0 && lb > 0};
    const int m = a->predicted != NULL;
    ch[3] = (drift_check){"confidence_drop", "drift.max_confidence_drop", m ? a->confidence - b->confidence : 0,
                          c->drift_max_confidence_drop, m};
    ch[4] = (drift_check){"predicted_js", "drift.max_predicted_js", m ? drift_js(a->predicted, b->predicted, g->K) : 0,
                          c->drift_max_predicted_js, m};
}

/* report.json: each side's counts, each figure with its gate, and whether it passed. */
static int drift_report(const drift_run *g, const drift_check *ch, double ks_p, const char *path) {
    cJSON *root = cJSON_CreateObject();
    const char *names[2] = {"reference", "current"};
    for (int i = 0; i < 2; i++) {
        const drift_side *s = &g->side[i];
        cJSON *o = cJSON_AddObjectToObject(root, names[i]);
        cJSON_AddStringToObject(o, "file", s->path);
        cJSON_AddNumberToObject(o, "rows", (double)s->n_rows);
        cJSON_AddNumberToObject(o, "bad_rows", (double)s->n_bad);
        double mean = 0;
        for (int64_t e = 0; e < s->d.n_examples; e++) mean += s->lengths[e] / (double)s->d.n_examples;
        cJSON_AddNumberToObject(o, "mean_input_tokens", mean);
        if (g->labelled) {
            cJSON *l = cJSON_AddObjectToObject(o, "labels");
            for (int k = 0; k < g->K; k++) cJSON_AddNumberToObject(l, g->names[k], s->labels[k]);
            cJSON_AddNumberToObject(o, "labels_outside_the_set", (double)s->n_unknown);
        }
        if (s->predicted) cJSON_AddNumberToObject(o, "mean_confidence", s->confidence);
    }
    cJSON *fig = cJSON_AddObjectToObject(root, "figures");
    int passed = 1;
    for (int i = 0; i < 5; i++) {
        if (!ch[i].on) continue;
        cJSON *f = cJSON_AddObjectToObject(fig, ch[i].name);
        cJSON_AddNumberToObject(f, "value", ch[i].value);
        cJSON_AddNumberToObject(f, "limit", ch[i].limit);
        cJSON_AddStringToObject(f, "gate", ch[i].gate);
        cJSON_AddBoolToObject(f, "passed", ch[i].value <= ch[i].limit);
        if (i == 1) cJSON_AddNumberToObject(f, "p_value", ks_p);
        passed &= ch[i].value <= ch[i].limit;
    }
    cJSON_AddBoolToObject(root, "passed", passed);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    int rc = slim_write_text_line(path, text);
    cJSON_free(text);
    return rc;
}

int data_drift_run(const slim_config *cfg, const drift_opts *o) {
    drift_run *g = slim_calloc(1, sizeof *g);
    g->cfg = cfg;
    g->side[0].path = o->reference;
    g->side[1].path = o->current;
    int rc = drift_setup(g, o);
    for (int i = 0; i < 2 && rc == 0; i++) rc = drift_read(g, &g->side[i]);
    for (int i = 0; i < 2 && rc == 0 && o->adapter; i++) rc = drift_score(g, &g->side[i]);
    drift_check ch[5];
    double ks_p = 1;
    char dir[4096], path[4200];
    if (rc == 0) {
        drift_figures(g, ch, &ks_p);
        rc = slim_format_path(dir, sizeof dir, "%s/drift", cfg->out_dir);
    }
    if (rc == 0) rc = slim_mkdir_p(dir);
    if (rc == 0) rc = slim_format_path(path, sizeof path, "%s/report.json", dir);
    if (rc == 0) rc = drift_report(g, ch, ks_p, path);
    int crossed = 0;
    if (rc == 0) {
        printf("| figure | value | limit (config key) | |\n|---|---:|---:|---|\n");
        for (int i = 0; i < 5; i++) {
            if (!ch[i].on) continue;
            crossed += ch[i].value > ch[i].limit;
            printf("| %s | %.4f | %.4f (%s) | %s |\n", ch[i].name, ch[i].value, ch[i].limit, ch[i].gate,
                   ch[i].value > ch[i].limit ? "DRIFT" : "ok");
        }
        printf("length KS p-value %.3g; %lld and %lld rows compared\n", ks_p, (long long)g->side[0].d.n_examples,
               (long long)g->side[1].d.n_examples);
        fprintf(stderr, "data drift: wrote %s%s\n", path, crossed ? "; a drift.* gate is crossed: exit 1" : "");
    }
    drift_free(g);
    free(g);
    return rc != 0 ? -1 : crossed ? SLIM_GATE_FAILED : SLIM_OK;
}

static void drift_usage(FILE *f) {
    fprintf(f, "usage: slimtune data drift --config FILE --reference F --current F [--adapter A]\n"
               "  Compares current rows (recent production data) with reference rows (the training data), both\n"
               "  rendered and tokenized as data prepare does: unigram token Jensen-Shannon divergence, input\n"
               "  length Kolmogorov-Smirnov D, label distribution JS divergence (labelled data), and with\n"
               "  --adapter the model's mean confidence drop and predicted-label JS divergence. Gates: drift.*.\n"
               "  Writes <out_dir>/drift/report.json. Exit status: 0 no drift, 1 a gate crossed, 2 error.\n");
}

int data_drift_parse_args(drift_opts *o, int argc, char **argv) {
    *o = (drift_opts){0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { drift_usage(stdout); return SLIM_HELP; }
        if (i + 1 >= argc) return slim_bad_option("data drift", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--config")) o->config = v;
        else if (!strcmp(a, "--reference")) o->reference = v;
        else if (!strcmp(a, "--current")) o->current = v;
        else if (!strcmp(a, "--adapter")) o->adapter = v;
        else return slim_bad_option("data drift", a);
    }
    if (!o->config || !o->reference || !o->current)
        return slim_set_error("--config, --reference and --current are required (see slimtune data drift --help)");
    return SLIM_OK;
}

static int drift_run_opts(const slim_config *cfg, const void *o) { return data_drift_run(cfg, o); }

int data_drift_main(int argc, char **argv) {
    drift_opts o;
    int r = data_drift_parse_args(&o, argc, argv);
    return slim_config_main(r, drift_usage, o.config, drift_run_opts, &o);
}
