/* loader.c — training micro-batches and scoring rows of a tokenized dataset; see loader.h. */
#include "loader.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"

long loader_next_token_targets(const int32_t *tokens, const uint8_t *mask, int64_t len, int64_t n,
                               int32_t *targets) {
    long n_targets = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t tgt = (i + 1 < len && mask[i + 1]) ? tokens[i + 1] : -1;
        targets[i] = tgt;
        n_targets += tgt >= 0;
    }
    return n_targets;
}

/* Pads columns [from, T) of a row: pad_id tokens without targets. */
static void loader_pad_row(int32_t *tokens, int32_t *targets, int from, int T, int pad_id) {
    for (int t = from; t < T; t++) {
        tokens[t] = pad_id;
        targets[t] = -1;
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* the epoch sampler */

void sampler_init(sampler *s, int64_t n, uint64_t seed) {
    memset(s, 0, sizeof *s);
    s->seed = seed;
    s->n = n;
    s->order = slim_malloc(sizeof(int64_t) * (n > 0 ? n : 1));
    s->order_epoch = -1;
}

/* Makes s->order the permutation of epoch s->st.epoch unless it already is. */
static void sampler_order(sampler *s) {
    if (s->order_epoch == s->st.epoch) return;
    slim_rng rng;
    slim_rng_seed(&rng, s->seed * 1000003u + (uint64_t)s->st.epoch);
    for (int64_t i = 0; i < s->n; i++) s->order[i] = i;
    for (int64_t i = s->n - 1; i > 0; i--) {
        int64_t j = (int64_t)(slim_rng_u32(&rng) % (uint32_t)(i + 1));
        int64_t tmp = s->order[i];
        s->order[i] = s->order[j];
        s->order[j] = tmp;
    }
    s->order_epoch = s->st.epoch;
}

int sampler_next(sampler *s, int64_t *idx, int B, int *epoch_end) {
    if (s->st.cursor >= s->n) {
        s->st.epoch++;
        s->st.cursor = 0;
    }
    sampler_order(s);
    int64_t left = s->n - s->st.cursor;
    int nb = (int)(left < B ? left : B);
    for (int b = 0; b < nb; b++) idx[b] = s->order[s->st.cursor + b];
    s->st.cursor += nb;
    *epoch_end = s->st.cursor >= s->n;
    return nb;
}

void sampler_free(sampler *s) {
    free(s->order);
    memset(s, 0, sizeof *s);
}

/* ---------------------------------------------------------------------------------------------- */
/* training micro-batches */

/* Examples of unit u: points *list at their indices and returns how many (packed: a slice of the
 * plan's items; else the single example u, stored in *single). */
static int64_t loader_unit_examples(const loader *L, int64_t u, const int64_t **list, int64_t *single) {
    if (!L->packed) {
        *single = u;
        *list = single;
        return 1;
    }
    *list = L->plan.items + L->plan.row_start[u];
    return L->plan.row_start[u + 1] - L->plan.row_start[u];
}

/* Tokens of unit u. */
static int64_t loader_unit_len(const loader *L, int64_t u) {
    const int64_t *ex;
    int64_t single, len = 0;
    int64_t n = loader_unit_examples(L, u, &ex, &single);
    for (int64_t k = 0; k < n; k++) len += L->d->offsets[ex[k] + 1] - L->d->offsets[ex[k]];
    return len;
}

/* Lays unit u out as row b of the current batch (row length L->T): its examples back to back, then
 * padding (each padding token its own one-token example). Returns the row's targets. */
static long loader_fill_row(loader *L, int b, int64_t u) {
    const slim_dataset *d = L->d;
    const size_t at = (size_t)b * L->T;
    int32_t *tk = L->tokens + at, *tg = L->targets + at, *pos = L->pos + at, *seg = L->seg_start + at;
    const int64_t *ex;
    int64_t single;
    int64_t n = loader_unit_examples(L, u, &ex, &single);
    long n_targets = 0;
    int t = 0;
    for (int64_t k = 0; k < n; k++) {
        int64_t off = d->offsets[ex[k]], len = d->offsets[ex[k] + 1] - off;
        memcpy(tk + t, d->tokens + off, sizeof(int32_t) * (size_t)len);
        n_targets += loader_next_token_targets(d->tokens + off, d->loss_mask + off, len, len, tg + t);
        for (int64_t i = 0; i < len; i++) {
            pos[t + i] = (int32_t)i;
            seg[t + i] = t;
        }
        t += (int)len;
    }
    loader_pad_row(tk, tg, t, L->T, L->pad_id);
    for (; t < L->T; t++) {
        pos[t] = 0;
        seg[t] = t;
    }
    return n_targets;
}

int loader_row_tokens(const slim_dataset *d, int packing) {
    int T = 1;
    for (int64_t e = 0; e < d->n_examples; e++)
        if (d->offsets[e + 1] - d->offsets[e] > T) T = (int)(d->offsets[e + 1] - d->offsets[e]);
    return packing && d->max_seq_len > T ? d->max_seq_len : T;
}

int loader_init(loader *L, const slim_dataset *d, int B, int packing, int pad_id, uint64_t seed) {
    memset(L, 0, sizeof *L);
    if (d->n_examples < 1) return slim_set_error("loader: the dataset has no examples");
    if (B < 1) return slim_set_error("loader: batch size %d must be at least 1", B);
    L->d = d;
    L->B = B;
    L->pad_id = pad_id;
    L->T_max = 1;
    int64_t *lengths = slim_malloc(sizeof(int64_t) * d->n_examples);
    for (int64_t e = 0; e < d->n_examples; e++) {
        lengths[e] = d->offsets[e + 1] - d->offsets[e];
        if (lengths[e] > L->T_max) L->T_max = (int)lengths[e];
    }
    L->n_units = d->n_examples;
    if (packing) {
        /* rows as long as the dataset's longest allowed example */
        if (d->max_seq_len > L->T_max) L->T_max = d->max_seq_len;
        int rc = pack_plan_build(&L->plan, lengths, d->n_examples, L->T_max);
        if (rc != 0) {
            free(lengths);
            return -1;
        }
        L->packed = 1;
        L->n_units = L->plan.n_rows;
    }
    free(lengths);
    sampler_init(&L->smp, L->n_units, seed);
    /* one block: tokens, targets, pos, seg_start */
    const size_t cells = (size_t)B * L->T_max;
    L->tokens = slim_malloc(sizeof(int32_t) * cells * 4);
    L->targets = L->tokens + cells;
    L->pos = L->targets + cells;
    L->seg_start = L->pos + cells;
    L->units = slim_malloc(sizeof(int64_t) * B);
    return 0;
}

int loader_next(loader *L) {
    L->rows = sampler_next(&L->smp, L->units, L->B, &L->epoch_end);
    int64_t T = 1;
    L->n_real = 0;
    for (int b = 0; b < L->rows; b++) {
        int64_t len = loader_unit_len(L, L->units[b]);
        L->n_real += (long)len;
        if (len > T) T = len;
    }
    L->T = (int)T;
    L->n_targets = 0;
    for (int b = 0; b < L->rows; b++) L->n_targets += loader_fill_row(L, b, L->units[b]);
    return L->rows;
}

int loader_skip(loader *L) {
    L->rows = sampler_next(&L->smp, L->units, L->B, &L->epoch_end);
    L->n_targets = L->n_real = 0;
    return L->rows;
}

void loader_reset(loader *L) {
    L->smp.st = (loader_state){.epoch = 0, .cursor = 0};
}

loader_state loader_get_state(const loader *L) {
    return L->smp.st;
}

int loader_set_state(loader *L, loader_state st) {
    if (st.epoch < 0 || st.cursor < 0 || st.cursor > L->n_units)
        return slim_set_error("loader state: epoch %lld, cursor %lld is outside 0.. epochs, 0..%lld units",
                              (long long)st.epoch, (long long)st.cursor, (long long)L->n_units);
    L->smp.st = st;
    return 0;
}

long loader_batches_per_epoch(const loader *L) {
    return (long)((L->n_units + L->B - 1) / L->B);
}

void loader_free(loader *L) {
    pack_plan_free(&L->plan);
    sampler_free(&L->smp);
    free(L->tokens); /* the block of targets, pos and seg_start too */
    free(L->units);
    memset(L, 0, sizeof *L);
}

/* ---------------------------------------------------------------------------------------------- */
/* scoring rows */

typedef struct { int64_t item; int32_t len; } evalloader_key;

/* Longest prompts first, then list order: batches of similar length waste little padding. */
static int evalloader_cmp(const void *a, const void *b) {
    const evalloader_key *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return (x->item > y->item) - (x->item < y->item);
}

/* Prompt length of list item i. */
static int evalloader_prompt_len(const evalloader *L, int64_t i) {
    return L->d->prompt_len[L->idx ? L->idx[i] : i];
}

void evalloader_init(evalloader *L, const slim_dataset *d, const int64_t *idx, int64_t n, const int32_t *const *comp,
                     const int *comp_len, int n_labels, int batch_rows, int pad_id) {
    *L = (evalloader){.d = d, .idx = idx, .n = n, .n_labels = n_labels, .comp = comp, .comp_len = comp_len,
                      .B_max = batch_rows, .pad_id = pad_id, .n_rows = n * n_labels};
    evalloader_key *keys = slim_malloc(sizeof *keys * (size_t)(n > 0 ? n : 1));
    int max_prompt = 0, max_comp = 0;
    for (int64_t i = 0; i < n; i++) {
        keys[i] = (evalloader_key){.item = i, .len = evalloader_prompt_len(L, i)};
        if (keys[i].len > max_prompt) max_prompt = keys[i].len;
    }
    qsort(keys, (size_t)n, sizeof *keys, evalloader_cmp);
    L->order = slim_malloc(sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) L->order[i] = keys[i].item;
    free(keys);
    for (int k = 0; k < n_labels; k++)
        if (comp_len[k] > max_comp) max_comp = comp_len[k];
    /* a row is prompt + completion without its last token */
    L->T_max = max_prompt + max_comp - 1 > 1 ? max_prompt + max_comp - 1 : 1;
    /* one block: tokens, targets, seq */
    const size_t cells = (size_t)L->B_max * L->T_max;
    L->tokens = slim_malloc(sizeof(int32_t) * (cells * 2 + (size_t)L->T_max + 1));
    L->targets = L->tokens + cells;
    L->seq = L->targets + cells;
    L->row = slim_malloc(sizeof(evalloader_row) * (size_t)L->B_max);
    L->mask = slim_malloc((size_t)L->T_max + 1);
}

/* Lays row r (list item order[r / n_labels], label r % n_labels) out as row b of the current batch:
 * the whole sequence prompt + completion and its mask (completion only) go through the target rule,
 * and the row keeps all but the last token. */
static void evalloader_fill_row(evalloader *L, int b, int64_t r) {
    const int64_t item = L->order[r / L->n_labels], e = L->idx ? L->idx[item] : item;
    const int k = (int)(r % L->n_labels), pl = L->d->prompt_len[e], cl = L->comp_len[k], len = pl + cl;
    memcpy(L->seq, L->d->tokens + L->d->offsets[e], sizeof(int32_t) * (size_t)pl);
    memcpy(L->seq + pl, L->comp[k], sizeof(int32_t) * (size_t)cl);
    memset(L->mask, 0, (size_t)pl);
    memset(L->mask + pl, 1, (size_t)cl);
    int32_t *tk = L->tokens + (size_t)b * L->T, *tg = L->targets + (size_t)b * L->T;
    memcpy(tk, L->seq, sizeof(int32_t) * (size_t)(len - 1));
    loader_next_token_targets(L->seq, L->mask, len, len - 1, tg);
    loader_pad_row(tk, tg, len - 1, L->T, L->pad_id);
    L->row[b] = (evalloader_row){.item = item, .label = k, .first = pl - 1, .n = cl};
}

int evalloader_next(evalloader *L) {
    int64_t left = L->n_rows - L->cursor;
    L->rows = (int)(left < L->B_max ? left : L->B_max);
    L->T = 1;
    for (int b = 0; b < L->rows; b++) {
        int64_t r = L->cursor + b;
        int len = evalloader_prompt_len(L, L->order[r / L->n_labels]) + L->comp_len[r % L->n_labels] - 1;
        if (len > L->T) L->T = len;
    }
    for (int b = 0; b < L->rows; b++) evalloader_fill_row(L, b, L->cursor + b);
    L->cursor += L->rows;
    return L->rows;
}

void evalloader_free(evalloader *L) {
    free(L->order);
    free(L->tokens); /* the block of targets and seq too */
    free(L->row);
    free(L->mask);
    memset(L, 0, sizeof *L);
}
