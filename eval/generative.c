/* generative.c — `slimtune eval` on data without labels: prompt/completion, alpaca and chat rows are
 * answered by greedy generation and scored against their references (textmetrics.h); plain-text rows get
 * perplexity. The fine-tuned model and the base model alone are scored the same way. See eval.h. */
#include "generative.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "loader.h"
#include "textmetrics.h"
#include "../data/reader.h"

enum { GEN_FT, GEN_BASE, GEN_N };
static const char *const gen_names[GEN_N] = {"fine-tuned", "base"};

/* One system's results. */
typedef struct gen_system {
    double exact, f1, valid;   /* means over the examples (valid: JSON references only) */
    double nll, perplexity;    /* plain text: mean NLL per target token, exp of it */
    int64_t n_targets;
    tm_fields fields;          /* JSON references: per field */
    char **out;                /* [n] generated texts */
    int32_t *right;            /* [n] 0 right (exact match), -1 wrong: eval_paired_compare's predictions */
} gen_system;

/* The run. */
typedef struct gen_run {
    const model *m;
    const slim_dataset *d;
    const int64_t *idx;
    int64_t n;
    int max_new, text;         /* plain text: perplexity only */
    int json;                  /* every reference is a JSON object */
    char **ref;                /* [n] reference texts */
    int32_t *zero;             /* [n] zeros: the "true label" of eval_paired_compare */
    gen_system sys[GEN_N];
    eval_paired vs;            /* fine-tuned against base: exact match */
    acts a;
    int32_t *tokens, *targets; /* [T_max + max_new] */
    char *buf;                 /* decoding */
    size_t cap;
} gen_run;

/* The last run of loss positions of example e: [*start, *end) (end 0: none). */
static void gen_last_span(const slim_dataset *d, int64_t e, int *start, int *end) {
    const int64_t o = d->offsets[e], len = d->offsets[e + 1] - o;
    int s = (int)len;
    while (s > 0 && !d->loss_mask[o + s - 1]) s--;
    *end = s;
    while (s > 0 && d->loss_mask[o + s - 1]) s--;
    *start = s;
}

/* The text of tokens [n] (a fresh string; bytes that are not valid UTF-8, as a token cut inside a
 * character leaves, become U+FFFD so that the report is valid JSON). */
static char *gen_decode(gen_run *g, const int32_t *t, int n) {
    g->buf[0] = 0;
    for (int i = 0; i < n; i++) tokenizer_decode_token(&g->m->tok, t[i], g->buf, g->cap);
    size_t len;
    return reader_utf8_replace(g->buf, strlen(g->buf), &len);
}

/* Answers example i with lora (greedy, up to max_new tokens, stopping at EOS or the span's end token) and
 * scores it into s. */
static void gen_answer(gen_run *g, const lora_adapter *lora, gen_system *s, int64_t i) {
    const int64_t e = g->idx[i], o = g->d->offsets[e];
    int start, end, stopped;
    gen_last_span(g->d, e, &start, &end);
    memcpy(g->tokens, g->d->tokens + o, sizeof(int32_t) * (size_t)start);
    int k = model_generate_greedy(g->m, lora, &g->a, g->tokens, g->targets, start, g->max_new,
                                  g->d->tokens[o + end - 1], &stopped);
    s->out[i] = gen_decode(g, g->tokens + start, k);
    double em, f1;
    tm_score_text(s->out[i], g->ref[i], &em, &f1);
    s->exact += em;
    s->f1 += f1;
    s->right[i] = em > 0 ? 0 : -1;
    if (g->json) s->valid += tm_score_json(s->out[i], g->ref[i], &s->fields);
}

/* Plain text: the NLL of example i's targets under lora, added to s. */
static void gen_nll(gen_run *g, const lora_adapter *lora, gen_system *s, int64_t i) {
    const int64_t e = g->idx[i], o = g->d->offsets[e], len = g->d->offsets[e + 1] - o;
    long nt = loader_next_token_targets(g->d->tokens + o, g->d->loss_mask + o, len, len, g->targets);
    if (nt == 0) return;
    s->nll += model_forward(g->m, lora, &g->a, g->d->tokens + o, g->targets, 1, (int)len, NULL, NULL);
    s->n_targets += nt;
}

/* References, buffers and activations. Returns 0 or -1. */
static int gen_setup(gen_run *g, int lora_r) {
    int T = 1;
    g->json = !g->text;
    g->ref = slim_calloc((size_t)g->n, sizeof(char *));
    g->zero = slim_calloc((size_t)g->n, sizeof(int32_t));
    g->cap = (size_t)(g->max_new + 4096) * 64;
    g->buf = slim_malloc(g->cap);
    for (int64_t i = 0; i < g->n; i++) {
        const int64_t e = g->idx[i], len = g->d->offsets[e + 1] - g->d->offsets[e];
        int start, end;
        gen_last_span(g->d, e, &start, &end);
        if (!g->text && (end < 1 || start < 1))
            return slim_set_error("example %lld of the test split has no completion to answer", (long long)e);
        if (len > T) T = (int)len;
        if (g->text) continue;
        g->ref[i] = gen_decode(g, g->d->tokens + g->d->offsets[e] + start, end - 1 - start); /* without the end token */
        g->json = g->json && tm_is_json_object(g->ref[i]);
    }
    T += g->max_new;
    acts_init_inference(&g->a, &g->m->cfg, 1, T, lora_r);
    g->tokens = slim_malloc(sizeof(int32_t) * 2 * (size_t)T);
    g->targets = g->tokens + T;
    for (int s = 0; s < GEN_N; s++) {
        g->sys[s].out = slim_calloc((size_t)g->n, sizeof(char *));
        g->sys[s].right = slim_calloc((size_t)g->n, sizeof(int32_t));
    }
    return 0;
}

static void gen_free(gen_run *g) {
    for (int s = 0; s < GEN_N; s++) {
        for (int64_t i = 0; i < g->n && g->sys[s].out; i++) free(g->sys[s].out[i]);
        free(g->sys[s].out);
        free(g->sys[s].right);
        tm_fields_free(&g->sys[s].fields);
    }
    for (int64_t i = 0; i < g->n && g->ref; i++) free(g->ref[i]);
    free(g->ref);
    free(g->zero);
    free(g->buf);
    free(g->tokens);
    acts_free(&g->a);
}

/* Scores every example with both systems, printing progress. */
static void gen_score(gen_run *g, const lora_adapter *lora) {
    const lora_adapter *ad[GEN_N] = {lora, NULL};
    for (int s = 0; s < GEN_N; s++) {
        double t0 = slim_time_sec(), t_last = t0;
        gen_system *x = &g->sys[s];
        for (int64_t i = 0; i < g->n; i++) {
            if (g->text) gen_nll(g, ad[s], x, i);
            else gen_answer(g, ad[s], x, i);
            double now = slim_time_sec();
            if (now - t_last > 2.0 || i + 1 == g->n) {
                fprintf(stderr, "eval %s: %lld/%lld examples, %.1f examples/s\n", gen_names[s], (long long)(i + 1),
                        (long long)g->n, (double)(i + 1) / (now - t0 + 1e-9));
                t_last = now;
            }
        }
        x->exact /= (double)g->n;
        x->f1 /= (double)g->n;
        x->valid /= (double)g->n;
        x->nll = x->n_targets ? x->nll / (double)x->n_targets : NAN;
        x->perplexity = exp(x->nll);
    }
}

/* {"precision", "recall", "f1", "support"} of counts. */
static cJSON *gen_prf_json(int64_t tp, int64_t fp, int64_t fn, int64_t support) {
    cJSON *o = cJSON_CreateObject();
    double p = tp + fp ? (double)tp / (double)(tp + fp) : 0.0, r = tp + fn ? (double)tp / (double)(tp + fn) : 0.0;
    cJSON_AddNumberToObject(o, "precision", p);
    cJSON_AddNumberToObject(o, "recall", r);
    cJSON_AddNumberToObject(o, "f1", p + r > 0 ? 2 * p * r / (p + r) : 0.0);
    cJSON_AddNumberToObject(o, "support", (double)support);
    return o;
}

/* One system's figures. */
static cJSON *gen_system_json(const gen_run *g, const gen_system *x) {
    cJSON *o = cJSON_CreateObject();
    if (g->text) {
        cJSON_AddNumberToObject(o, "nll", x->nll);
        cJSON_AddNumberToObject(o, "perplexity", x->perplexity);
        cJSON_AddNumberToObject(o, "target_tokens", (double)x->n_targets);
        return o;
    }
    cJSON_AddNumberToObject(o, "exact_match", x->exact);
    cJSON_AddNumberToObject(o, "token_f1", x->f1);
    if (!g->json) return o;
    cJSON_AddNumberToObject(o, "valid_json", x->valid);
    cJSON *fields = cJSON_AddObjectToObject(o, "fields");
    int64_t tp = 0, fp = 0, fn = 0, sup = 0;
    for (int i = 0; i < x->fields.n; i++) {
        const tm_field *f = &x->fields.f[i];
        cJSON_AddItemToObject(fields, f->name, gen_prf_json(f->tp, f->fp, f->fn, f->support));
        tp += f->tp, fp += f->fp, fn += f->fn, sup += f->support;
    }
    cJSON_AddItemToObject(o, "fields_micro", gen_prf_json(tp, fp, fn, sup));
    return o;
}

/* report.json's text. */
static char *gen_report_json(const gen_run *g, const gen_report *r) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "task", g->text ? "perplexity" : g->json ? "extraction" : "generation");
    cJSON_AddStringToObject(root, "config", r->config);
    cJSON_AddStringToObject(root, "model", r->model);
    cJSON_AddStringToObject(root, "adapter", r->adapter);
    cJSON_AddStringToObject(root, "dataset", r->dataset);
    cJSON_AddStringToObject(root, "shape", g->d->shape ? g->d->shape : "");
    cJSON_AddNumberToObject(root, "n_examples", (double)g->n);
    cJSON_AddNumberToObject(root, "max_new_tokens", g->max_new);
    cJSON *sys = cJSON_AddObjectToObject(root, "systems");
    for (int s = 0; s < GEN_N; s++) cJSON_AddItemToObject(sys, gen_names[s], gen_system_json(g, &g->sys[s]));
    if (!g->text) {
        cJSON *c = cJSON_AddObjectToObject(root, "fine_tuned_vs_base");
        cJSON_AddNumberToObject(c, "exact_match_diff", g->vs.acc_diff);
        cJSON *ci = cJSON_AddArrayToObject(c, "exact_match_diff_ci95");
        cJSON_AddItemToArray(ci, cJSON_CreateNumber(g->vs.acc_lo));
        cJSON_AddItemToArray(ci, cJSON_CreateNumber(g->vs.acc_hi));
        cJSON_AddNumberToObject(c, "mcnemar_p", g->vs.p_mcnemar);
        cJSON *ex = cJSON_AddArrayToObject(root, "examples");
        for (int64_t i = 0; i < g->n; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "index", (double)g->idx[i]);
            cJSON_AddStringToObject(e, "reference", g->ref[i]);
            cJSON *out = cJSON_AddObjectToObject(e, "outputs");
            for (int s = 0; s < GEN_N; s++) cJSON_AddStringToObject(out, gen_names[s], g->sys[s].out[i]);
            cJSON_AddItemToArray(ex, e);
        }
    }
    cJSON_AddBoolToObject(root, "passed", r->passed);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}

/* report.md's text and the summary printed (a fresh string). */
static char *gen_report_md(const gen_run *g, const gen_report *r) {
    size_t cap = 16384, len = 0;
    char *md = slim_malloc(cap);
#define GEN_MD(...) len += (size_t)snprintf(md + len, len < cap ? cap - len : 0, __VA_ARGS__)
    GEN_MD("# slimtune eval report (%s)\n\n- model: `%s`\n- adapter: `%s`\n- dataset: `%s` (%lld examples)\n\n",
           g->text ? "perplexity" : g->json ? "extraction" : "generation", r->model, r->adapter, r->dataset,
           (long long)g->n);
    if (g->text) {
        GEN_MD("| system | perplexity | NLL / token |\n|---|---:|---:|\n");
        for (int s = 0; s < GEN_N; s++)
            GEN_MD("| %s | %.4f | %.4f |\n", gen_names[s], g->sys[s].perplexity, g->sys[s].nll);
    } else {
        GEN_MD("| system | exact match | token F1 |%s\n|---|---:|---:|%s\n", g->json ? " valid JSON | field F1 (micro) |" : "",
               g->json ? "---:|---:|" : "");
        for (int s = 0; s < GEN_N; s++) {
            GEN_MD("| %s | %.4f | %.4f |", gen_names[s], g->sys[s].exact, g->sys[s].f1);
            if (g->json) {
                cJSON *j = gen_system_json(g, &g->sys[s]);
                const cJSON *mf = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "fields_micro"), "f1");
                GEN_MD(" %.4f | %.4f |", g->sys[s].valid, mf ? mf->valuedouble : 0.0);
                cJSON_Delete(j);
            }
            GEN_MD("\n");
        }
        GEN_MD("\nfine-tuned - base exact match: %+.4f (95%% CI [%+.4f, %+.4f]), McNemar p = %.3g\n", g->vs.acc_diff,
               g->vs.acc_lo, g->vs.acc_hi, g->vs.p_mcnemar);
    }
#undef GEN_MD
    if (len >= cap) md[cap - 1] = 0;
    return md;
}

int eval_generative(const gen_report *r, const model *m, const lora_adapter *lora, const slim_dataset *d,
                    const int64_t *idx, int64_t n, const slim_config *cfg, const char *dir) {
    gen_run g = {.m = m, .d = d, .idx = idx, .n = n, .max_new = cfg->eval_max_new_tokens,
                 .text = d->shape && !strcmp(d->shape, "text")};
    fprintf(stderr, "eval: %lld examples of %s (%s): %s\n", (long long)n, r->dataset, d->shape ? d->shape : "?",
            g.text ? "perplexity" : "greedy generation against the references");
    int rc = gen_setup(&g, lora->r);
    if (rc == 0) {
        gen_score(&g, lora);
        if (!g.text)
            rc = eval_paired_compare(&g.vs, g.zero, g.sys[GEN_FT].right, g.sys[GEN_BASE].right, n, 1,
                                     cfg->bootstrap_resamples, (uint64_t)cfg->eval_seed + 1);
    }
    gen_report out = *r;
    if (rc == 0) {
        const double v = g.text ? -g.sys[GEN_FT].perplexity : g.sys[GEN_FT].exact;
        out.passed = g.text || v >= r->min_accuracy;
    }
    char *json = rc == 0 ? gen_report_json(&g, &out) : NULL, *md = rc == 0 ? gen_report_md(&g, &out) : NULL;
    char path[4096];
    if (rc == 0) rc = slim_mkdir_p(dir);
    if (rc == 0) rc = slim_format_path(path, sizeof path, "%s/report.json", dir);
    if (rc == 0) rc = slim_write_text_line(path, json);
    if (rc == 0) rc = slim_format_path(path, sizeof path, "%s/report.md", dir);
    if (rc == 0) rc = slim_write_text_line(path, md);
    if (rc == 0) {
        fputs(strstr(md, "| system"), stdout);
        fprintf(stderr, "eval: wrote %s/report.json and report.md\n", dir);
        if (!out.passed)
            fprintf(stderr, "eval: gate failed: fine-tuned exact match %.4f < min_accuracy %.4f\n",
                    g.sys[GEN_FT].exact, r->min_accuracy);
    }
    cJSON_free(json);
    free(md);
    gen_free(&g);
    return rc != 0 ? -1 : out.passed ? SLIM_OK : SLIM_GATE_FAILED;
}
