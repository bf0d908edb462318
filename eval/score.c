/* score.c — label scoring: the summed log-probability of each label's completion; see eval.h. */
#include "eval.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

int32_t *eval_completion_ids(const tokenizer *tok, const char *completion_template, const char *label_name, int *n) {
    if (!completion_template || !*completion_template)
        { slim_set_error("eval: the dataset has no completion_template"); return NULL; }
    if (tok->eos_id < 0) { slim_set_error("eval: the tokenizer has no EOS token"); return NULL; }
    /* template with every {label} replaced */
    size_t tl = strlen(completion_template), ll = strlen(label_name), cap = tl + 1;
    for (const char *p = completion_template; (p = strstr(p, "{label}")); p += 7) cap += ll;
    char *text = slim_malloc(cap);
    size_t len = 0;
    for (const char *p = completion_template; *p;) {
        if (strncmp(p, "{label}", 7) == 0) {
            memcpy(text + len, label_name, ll);
            len += ll;
            p += 7;
        } else {
            text[len++] = *p++;
        }
    }
    text[len] = 0;
    int need = tokenizer_encode(tok, text, len, 0, 0, NULL, 0);
    if (need < 0) { free(text); return NULL; }
    int32_t *ids = slim_malloc(((size_t)need + 1) * sizeof(int32_t));
    if (tokenizer_encode(tok, text, len, 0, 0, ids, need) != need) {
        free(text);
        free(ids);
        slim_set_error("eval: tokenizer gave two different lengths for the completion of label '%s'", label_name);
        return NULL;
    }
    free(text);
    ids[need] = tok->eos_id;
    *n = need + 1;
    return ids;
}
typedef struct { int64_t ex; int32_t len; } eval_order;

/* Longest prompts first, then example order: batches of similar length waste little padding. */
static int eval_order_cmp(const void *a, const void *b) {
    const eval_order *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return (x->ex > y->ex) - (x->ex < y->ex);
}

int eval_score(const model *m, const lora_adapter *lora, const slim_dataset *d, const int64_t *idx,
               int64_t n, int batch_rows, const char *progress, double *scores) {
    const int K = d->n_labels, V = m->cfg.vocab_size;
    if (K < 1) return slim_set_error("eval: the dataset has no label names");
    if (n < 1) return slim_set_error("eval: no examples to score");
    if (batch_rows < 1) return slim_set_error("eval: batch size %d must be at least 1", batch_rows);
    int rc = -1;
    int32_t **comp = slim_calloc(K, sizeof(int32_t *));
    int *comp_len = slim_calloc(K, sizeof(int));
    eval_order *order = slim_malloc((size_t)n * sizeof(eval_order));
    int32_t *tokens = NULL, *targets = NULL;
    float *logprob = NULL;
    acts s = {0};
    int max_comp = 0;
    for (int k = 0; k < K; k++) {
        if (!(comp[k] = eval_completion_ids(&m->tok, d->completion_template, d->label_names[k], &comp_len[k])))
            goto done;
        for (int j = 0; j < comp_len[k]; j++)
            if (comp[k][j] < 0 || comp[k][j] >= V) {
                slim_set_error("eval: completion of label '%s' has token %d outside the vocabulary (%d)",
                               d->label_names[k], comp[k][j], V);
                goto done;
            }
        if (comp_len[k] > max_comp) max_comp = comp_len[k];
    }
    int max_prompt = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t e = idx ? idx[i] : i;
        if (e < 0 || e >= d->n_examples) {
            slim_set_error("eval: example index %lld out of range (%lld examples)", (long long)e,
                           (long long)d->n_examples);
            goto done;
        }
        int32_t pl = d->prompt_len[e];
        if (pl < 1 || d->offsets[e] + pl > d->n_tokens) {
            slim_set_error("eval: example %lld (source line %lld): prompt length %d is out of range", (long long)e,
                           (long long)d->source_line[e], pl);
            goto done;
        }
        for (int32_t t = 0; t < pl; t++)
            if (d->tokens[d->offsets[e] + t] >= V) {
                slim_set_error("eval: example %lld (source line %lld): token %d is outside the vocabulary (%d)",
                               (long long)e, (long long)d->source_line[e], d->tokens[d->offsets[e] + t], V);
                goto done;
            }
        order[i].ex = i;
        order[i].len = pl;
        if (pl > max_prompt) max_prompt = pl;
    }
    qsort(order, (size_t)n, sizeof *order, eval_order_cmp);

    /* A row is prompt + completion without its last token (nothing is predicted from it). */
    const int Tmax = max_prompt + max_comp - 1, Bmax = batch_rows;
    acts_init(&s, &m->cfg, Bmax, Tmax, lora ? lora->r : 0);
    s.inference = 1; /* scoring only: no backward follows */
    tokens = slim_malloc((size_t)Bmax * Tmax * sizeof(int32_t));
    targets = slim_malloc((size_t)Bmax * Tmax * sizeof(int32_t));
    logprob = slim_malloc((size_t)Bmax * Tmax * sizeof(float));
    const int64_t n_rows = n * K;
    const int pad = m->tok.eos_id >= 0 ? m->tok.eos_id : 0;
    double t0 = slim_time_sec(), t_last = t0;
    for (int64_t r0 = 0; r0 < n_rows; r0 += Bmax) {
        int B = (int)(n_rows - r0 < Bmax ? n_rows - r0 : Bmax), T = 1;
        for (int b = 0; b < B; b++) {
            int64_t row = r0 + b;
            int len = order[row / K].len + comp_len[row % K] - 1;
            if (len > T) T = len;
        }
        for (int b = 0; b < B; b++) {
            int64_t row = r0 + b, i = order[row / K].ex, e = idx ? idx[i] : i;
            int k = (int)(row % K), pl = order[row / K].len, cl = comp_len[k];
            int32_t *tk = tokens + (size_t)b * T, *tg = targets + (size_t)b * T;
            memcpy(tk, d->tokens + d->offsets[e], (size_t)pl * sizeof(int32_t));
            memcpy(tk + pl, comp[k], (size_t)(cl - 1) * sizeof(int32_t));
            for (int t = pl + cl - 1; t < T; t++) tk[t] = pad;
            for (int t = 0; t < T; t++) tg[t] = -1;
            for (int j = 0; j < cl; j++) tg[pl - 1 + j] = comp[k][j];
        }
        model_forward(m, lora, &s, tokens, targets, B, T, logprob, NULL);
        for (int b = 0; b < B; b++) {
            int64_t row = r0 + b, i = order[row / K].ex;
            int k = (int)(row % K), pl = order[row / K].len, cl = comp_len[k];
            double sum = 0.0;
            for (int j = 0; j < cl; j++) sum += logprob[(size_t)b * T + pl - 1 + j];
            scores[i * K + k] = sum;
        }
        double now = slim_time_sec();
        if (progress && (now - t_last > 2.0 || r0 + B == n_rows)) {
            double done_ex = (double)(r0 + B) / K;
            fprintf(stderr, "eval %s: %.0f/%lld examples, %.1f examples/s\n", progress, done_ex, (long long)n,
                    done_ex / (now - t0 > 1e-9 ? now - t0 : 1e-9));
            t_last = now;
        }
    }
    rc = 0;
done:
    for (int k = 0; k < K; k++) free(comp[k]);
    free(comp);
    free(comp_len);
    free(order);
    free(tokens);
    free(targets);
    free(logprob);
    if (s.mem) acts_free(&s);
    return rc;
}

