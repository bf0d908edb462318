/* score.c — label scoring: the summed log-probability of each label's completion; see eval.h. */
#include "eval.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "loader.h"

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

/* The completion ids of every label of d into comp/comp_len [n_labels], each checked against the
 * vocabulary (V ids). Returns 0, or -1 with an error (the caller frees what was built). */
static int eval_label_completions(const model *m, const slim_dataset *d, int32_t **comp, int *comp_len) {
    const int V = m->cfg.vocab_size;
    for (int k = 0; k < d->n_labels; k++) {
        if (!(comp[k] = eval_completion_ids(&m->tok, d->completion_template, d->label_names[k], &comp_len[k])))
            return -1;
        for (int j = 0; j < comp_len[k]; j++)
            if (comp[k][j] < 0 || comp[k][j] >= V)
                return slim_set_error("eval: completion of label '%s' has token %d outside the vocabulary (%d)",
                                      d->label_names[k], comp[k][j], V);
    }
    return 0;
}

/* Checks the examples idx[0..n) of d (idx NULL: 0..n-1): in range, a prompt of 1..(tokens left) tokens,
 * every prompt token inside the vocabulary (V ids). Returns 0, or -1 with an error naming the example. */
static int eval_check_examples(const slim_dataset *d, const int64_t *idx, int64_t n, int V) {
    for (int64_t i = 0; i < n; i++) {
        int64_t e = idx ? idx[i] : i;
        if (e < 0 || e >= d->n_examples)
            return slim_set_error("eval: example index %lld out of range (%lld examples)", (long long)e,
                                  (long long)d->n_examples);
        int32_t pl = d->prompt_len[e];
        if (pl < 1 || d->offsets[e] + pl > d->n_tokens)
            return slim_set_error("eval: example %lld (source line %lld): prompt length %d is out of range",
                                  (long long)e, (long long)d->source_line[e], pl);
        for (int32_t t = 0; t < pl; t++)
            if (d->tokens[d->offsets[e] + t] >= V)
                return slim_set_error("eval: example %lld (source line %lld): token %d is outside the vocabulary (%d)",
                                      (long long)e, (long long)d->source_line[e], d->tokens[d->offsets[e] + t], V);
    }
    return 0;
}

/* Runs every batch of L through the model into scores [n, n_labels]: the sum of each row's target
 * log-probabilities; progress lines (every 2 s and at the end) when progress is not NULL. */
static void eval_score_rows(const model *m, const lora_adapter *lora, evalloader *L, const char *progress,
                            double *scores) {
    acts s = {0};
    /* scoring only: one layer's activations, no backward buffers */
    acts_init_inference(&s, &m->cfg, L->B_max, L->T_max, lora ? lora->r : 0);
    float *logprob = slim_malloc((size_t)L->B_max * L->T_max * sizeof(float));
    double t0 = slim_time_sec(), t_last = t0;
    while (evalloader_next(L) > 0) {
        model_forward(m, lora, &s, L->tokens, L->targets, L->rows, L->T, logprob, NULL);
        for (int b = 0; b < L->rows; b++) {
            const evalloader_row *r = &L->row[b];
            double sum = 0.0;
            for (int j = 0; j < r->n; j++) sum += logprob[(size_t)b * L->T + r->first + j];
            scores[r->item * L->n_labels + r->label] = sum;
        }
        double now = slim_time_sec();
        if (progress && (now - t_last > 2.0 || L->cursor == L->n_rows)) {
            double done_ex = (double)L->cursor / L->n_labels;
            fprintf(stderr, "eval %s: %.0f/%lld examples, %.1f examples/s\n", progress, done_ex, (long long)L->n,
                    done_ex / (now - t0 > 1e-9 ? now - t0 : 1e-9));
            t_last = now;
        }
    }
    free(logprob);
    acts_free(&s);
}

/* The labels' completions of one scoring run (comp [K] ids ending with EOS, comp_len [K]) and their sum. */
typedef struct eval_labels {
    int32_t **comp;
    int *comp_len;
    int K, total;
} eval_labels;

/* Example e's row of the cached-prompt layout at tokens, targets, pos, seg, pre [T] (the row's arrays):
 * its prompt but the last token, then per label k a segment [last prompt token, completion k but its last
 * token] at positions P-1.., seeing the prompt (prefix P-1) and itself; each segment's targets are label k's
 * completion. The rest of the row up to T is padding. Returns the row's length. */
static int eval_cached_row(const slim_dataset *d, int64_t e, const eval_labels *lb, int T, int pad, int32_t *tokens,
                           int32_t *targets, int32_t *pos, int32_t *seg, int32_t *pre) {
    const int P = d->prompt_len[e];
    const int32_t *prompt = d->tokens + d->offsets[e];
    int t = 0;
    for (; t < P - 1; t++) {
        tokens[t] = prompt[t];
        targets[t] = -1;
        pos[t] = t;
        seg[t] = pre[t] = 0;
    }
    for (int k = 0; k < lb->K; k++) {
        const int start = t;
        for (int j = 0; j < lb->comp_len[k]; j++, t++) {
            tokens[t] = j == 0 ? prompt[P - 1] : lb->comp[k][j - 1];
            targets[t] = lb->comp[k][j];
            pos[t] = P - 1 + j;
            seg[t] = start;
            pre[t] = P - 1;
        }
    }
    const int len = t;
    for (; t < T; t++) { /* padding: a segment of its own, no target */
        tokens[t] = pad;
        targets[t] = -1;
        pos[t] = 0;
        seg[t] = t;
        pre[t] = 0;
    }
    return len;
}

/* Examples idx [n] scored over a cached prompt: B examples a forward pass, each one row of
 * eval_cached_row, into scores [n, K]. */
static void eval_score_cached(const model *m, const lora_adapter *lora, const slim_dataset *d, const int64_t *idx,
                              int64_t n, int B, const eval_labels *lb, const char *progress, double *scores) {
    int T = 1;
    for (int64_t i = 0; i < n; i++) {
        int r = d->prompt_len[idx ? idx[i] : i] - 1 + lb->total;
        T = r > T ? r : T;
    }
    acts s = {0};
    acts_init_inference(&s, &m->cfg, B, T, lora ? lora->r : 0);
    int32_t *buf = slim_malloc(sizeof(int32_t) * 5 * (size_t)B * T);
    int32_t *tok = buf, *tgt = tok + (size_t)B * T, *pos = tgt + (size_t)B * T, *seg = pos + (size_t)B * T,
            *pre = seg + (size_t)B * T;
    float *logprob = slim_malloc(sizeof(float) * (size_t)B * T);
    double t0 = slim_time_sec(), t_last = t0;
    for (int64_t i0 = 0; i0 < n; i0 += B) {
        const int rows = n - i0 < B ? (int)(n - i0) : B;
        int Tb = 1;
        for (int b = 0; b < rows; b++) {
            int r = d->prompt_len[idx ? idx[i0 + b] : i0 + b] - 1 + lb->total;
            Tb = r > Tb ? r : Tb;
        }
        for (int b = 0; b < rows; b++)
            eval_cached_row(d, idx ? idx[i0 + b] : i0 + b, lb, Tb, m->tok.eos_id >= 0 ? m->tok.eos_id : 0,
                            tok + (size_t)b * Tb, tgt + (size_t)b * Tb, pos + (size_t)b * Tb, seg + (size_t)b * Tb,
                            pre + (size_t)b * Tb);
        model_forward_prefix(m, lora, &s, tok, tgt, pos, seg, pre, rows, Tb, logprob, NULL);
        for (int b = 0; b < rows; b++) {
            const int P = d->prompt_len[idx ? idx[i0 + b] : i0 + b];
            int t = (int)((size_t)b * Tb) + P - 1;
            for (int k = 0; k < lb->K; k++) {
                double sum = 0.0;
                for (int j = 0; j < lb->comp_len[k]; j++) sum += logprob[t++];
                scores[(i0 + b) * lb->K + k] = sum;
            }
        }
        double now = slim_time_sec();
        if (progress && (now - t_last > 2.0 || i0 + rows == n)) {
            fprintf(stderr, "eval %s: %lld/%lld examples, %.1f examples/s\n", progress, (long long)(i0 + rows),
                    (long long)n, (double)(i0 + rows) / (now - t0 > 1e-9 ? now - t0 : 1e-9));
            t_last = now;
        }
    }
    free(logprob);
    free(buf);
    acts_free(&s);
}

int eval_score(const model *m, const lora_adapter *lora, const slim_dataset *d, const int64_t *idx,
               int64_t n, int batch_rows, const char *progress, double *scores) {
    return eval_score_mode(m, lora, d, idx, n, batch_rows, progress, scores, 1);
}

int eval_score_mode(const model *m, const lora_adapter *lora, const slim_dataset *d, const int64_t *idx,
                    int64_t n, int batch_rows, const char *progress, double *scores, int cached) {
    const int K = d->n_labels;
    if (K < 1) return slim_set_error("eval: the dataset has no label names");
    if (n < 1) return slim_set_error("eval: no examples to score");
    if (batch_rows < 1) return slim_set_error("eval: batch size %d must be at least 1", batch_rows);
    int32_t **comp = slim_calloc(K, sizeof(int32_t *));
    int *comp_len = slim_calloc(K, sizeof(int));
    int rc = eval_label_completions(m, d, comp, comp_len);
    if (rc == 0) rc = eval_check_examples(d, idx, n, m->cfg.vocab_size);
    if (rc == 0 && cached) {
        eval_labels lb = {.comp = comp, .comp_len = comp_len, .K = K};
        for (int k = 0; k < K; k++) lb.total += comp_len[k];
        eval_score_cached(m, lora, d, idx, n, batch_rows / K > 1 ? batch_rows / K : 1, &lb, progress, scores);
    } else if (rc == 0) {
        evalloader L;
        evalloader_init(&L, d, idx, n, (const int32_t *const *)comp, comp_len, K, batch_rows,
                        m->tok.eos_id >= 0 ? m->tok.eos_id : 0);
        eval_score_rows(m, lora, &L, progress, scores);
        evalloader_free(&L);
    }
    for (int k = 0; k < K; k++) free(comp[k]);
    free(comp);
    free(comp_len);
    return rc;
}
