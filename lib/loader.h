/* loader.h — batches of a tokenized dataset (dataset.h): training micro-batches and scoring rows.
 *
 * One rule makes the targets of both (loader_next_token_targets): the target of a position is the
 * next token of its example where the loss mask is set, else -1 (no loss); a target never crosses
 * examples, so an example's last position has none.
 *
 * Training (loader_*, as llm.c's DataLoader): the units of a batch are examples, or packed rows of
 * several examples (pack.h); each epoch walks them in a fresh seeded shuffle (sampler_*), B units a
 * micro-batch (the epoch's last may hold fewer). A micro-batch is laid out as [rows, T] row-major
 * arrays, T its longest unit: examples back to back, then padding with pad_id on the right. Where
 * the loader is in the run is a loader_state (epoch, cursor): setting a saved state replays exactly
 * the micro-batches that followed it (the shuffle of epoch e is a pure function of (seed, e)).
 * Everything is allocated once, by loader_init; loader_next allocates nothing.
 *
 * Scoring (evalloader_*): every (example, label) pair of a list of examples is one row: the prompt,
 * then the label's completion ids without their last token (nothing is predicted from it); the
 * targets are the completion ids, by the same rule. Rows go longest prompts first (then in list
 * order), each example's labels in order, batch_rows rows a batch padded to its longest row. */
#ifndef SLIM_LOADER_H
#define SLIM_LOADER_H

#include <stdint.h>

#include "dataset.h"
#include "pack.h"

/* The target rule: for each position i in [0, n) of a sequence tokens[0..len) with loss mask
 * mask[0..len) (n <= len), targets[i] = tokens[i + 1] when i + 1 < len and mask[i + 1], else -1.
 * Returns the number of targets written (>= 0). */
long loader_next_token_targets(const int32_t *tokens, const uint8_t *mask, int64_t len, int64_t n,
                               int32_t *targets);

/* Where a sampler (and so a loader) stands: save it with loader_get_state, resume with loader_set_state. */
typedef struct loader_state {
    int64_t epoch;  /* current epoch (0-based) */
    int64_t cursor; /* units of the epoch's order drawn so far (n: the epoch is done) */
} loader_state;

/* The epoch sampler: a fresh shuffle of n units each epoch (Fisher-Yates, RNG seeded from seed and
 * the epoch), walked B at a time. */
typedef struct sampler {
    uint64_t seed;
    int64_t n;           /* units */
    loader_state st;     /* next draw */
    int64_t *order;      /* [n] the permutation of epoch order_epoch */
    int64_t order_epoch; /* -1: none computed yet */
} sampler;

/* Starts a sampler over n >= 1 units at epoch 0, cursor 0 (allocates the order). */
void sampler_init(sampler *s, int64_t n, uint64_t seed);
/* Writes the next micro-batch's unit indices (at most B) to idx and returns how many; the epoch's
 * last micro-batch may be short, and sets *epoch_end to 1 (else 0). The draw after it starts the
 * next epoch. */
int sampler_next(sampler *s, int64_t *idx, int B, int *epoch_end);
/* Frees the order and zeroes the sampler. */
void sampler_free(sampler *s);

/* Training micro-batches over a dataset (which must outlive the loader). */
typedef struct loader {
    const slim_dataset *d;
    int B;             /* units per micro-batch */
    int T_max;         /* tokens of the longest possible row: the arrays hold B * T_max */
    int pad_id;        /* token of the padding */
    int packed;        /* 1: a unit is a row of plan, else one example */
    pack_plan plan;    /* packed: the rows (zeroed otherwise) */
    int64_t n_units;   /* examples, or packed rows */
    sampler smp;
    /* the current micro-batch, set by loader_next */
    int rows;          /* rows in it: B, or fewer at the end of an epoch */
    int T;             /* tokens per row: its longest unit's */
    int32_t *tokens;   /* [rows, T] token ids, padded with pad_id */
    int32_t *targets;  /* [rows, T] next-token targets (loader_next_token_targets), -1 none */
    int32_t *pos;      /* [rows, T] position inside the token's example (0 on padding) */
    int32_t *seg_start;/* [rows, T] column where the token's example starts (padding: its own column) */
    long n_targets;    /* targets in it */
    long n_real;       /* tokens of its examples (padding excluded) */
    int epoch_end;     /* 1 when it is the last micro-batch of its epoch */
    int64_t *units;    /* [B] its units */
} loader;

/* Sets up batches of B >= 1 units of d, shuffled with seed. packing: units are rows of
 * max(longest example, d->max_seq_len) tokens packed best-fit decreasing (pack.h), else single
 * examples. pad_id: the padding token. Returns 0, or -1 with an error (no examples, B < 1, an example
 * that does not fit a row); *L is safe to loader_free either way. */
int loader_init(loader *L, const slim_dataset *d, int B, int packing, int pad_id, uint64_t seed);
/* Tokens per row a loader over d would use (its T_max): the longest example, or with packing
 * max(longest example, d->max_seq_len). */
int loader_row_tokens(const slim_dataset *d, int packing);
/* Fills the next micro-batch (fields rows .. units) and returns its rows (>= 1). */
int loader_next(loader *L);
/* Moves past the next micro-batch without filling it (another rank's share of a step, dist.h): sets
 * rows, units and epoch_end as loader_next would, n_targets and n_real to 0; the arrays keep the last
 * batch loader_next filled. Returns its rows. */
int loader_skip(loader *L);
/* Back to the start of epoch 0. */
void loader_reset(loader *L);
/* The position of the next micro-batch. */
loader_state loader_get_state(const loader *L);
/* Resumes at a position that loader_get_state returned (of a loader over the same units). Returns 0, or
 * -1 with an error when the position is outside this loader's units (a checkpoint of other data). */
int loader_set_state(loader *L, loader_state st);
/* Micro-batches in an epoch: ceil(n_units / B). */
long loader_batches_per_epoch(const loader *L);
/* Frees everything loader_init allocated and zeroes *L. */
void loader_free(loader *L);

/* One scoring row of the current batch. */
typedef struct evalloader_row {
    int64_t item; /* position in the caller's example list (idx[item] is the example) */
    int label;    /* label index */
    int first;    /* column of the first target: prompt length - 1 */
    int n;        /* targets: the completion's length */
} evalloader_row;

/* Scoring rows (example, label) over a list of examples (dataset, list and completions must outlive it). */
typedef struct evalloader {
    const slim_dataset *d;
    const int64_t *idx;      /* [n] examples, NULL: 0..n-1 */
    int64_t n;
    int n_labels;
    const int32_t *const *comp; /* [n_labels] completion ids of each label, ending with EOS */
    const int *comp_len;        /* [n_labels] their lengths (>= 1) */
    int B_max;               /* rows per batch */
    int T_max;               /* tokens of the longest row: the arrays hold B_max * T_max */
    int pad_id;
    int64_t *order;          /* [n] list positions, longest prompts first */
    int64_t n_rows;          /* n * n_labels */
    int64_t cursor;          /* rows handed out so far */
    /* the current batch, set by evalloader_next */
    int rows, T;
    int32_t *tokens;         /* [rows, T] prompt + completion without its last token, padded */
    int32_t *targets;        /* [rows, T] the completion ids at row.first .. row.first + row.n - 1, else -1 */
    evalloader_row *row;     /* [rows] */
    int32_t *seq;            /* [T_max + 1] scratch: one row's whole sequence */
    uint8_t *mask;           /* [T_max + 1] scratch: its loss mask */
} evalloader;

/* Sets up the rows of examples idx[0..n) of d (idx NULL: 0..n-1; the caller has checked that each is
 * in range with a prompt of 1..its length tokens) against n_labels completions, batch_rows >= 1 rows
 * a batch, padded with pad_id. Allocates everything once. */
void evalloader_init(evalloader *L, const slim_dataset *d, const int64_t *idx, int64_t n, const int32_t *const *comp,
                     const int *comp_len, int n_labels, int batch_rows, int pad_id);
/* Fills the next batch (rows, T, tokens, targets, row) and returns its rows; 0 when every row is done. */
int evalloader_next(evalloader *L);
/* Frees everything evalloader_init allocated and zeroes *L. */
void evalloader_free(evalloader *L);

#endif
