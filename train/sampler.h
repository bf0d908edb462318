/* sampler.h — the epoch sampler of `slimtune train`: a fresh seeded shuffle of the training units
 * (examples, or packed rows) each epoch, walked in micro-batches. Exposed for tests/train/test_loop.c. */
#ifndef SLIM_SAMPLER_H
#define SLIM_SAMPLER_H

#include <stdint.h>

/* Walks the examples in a fresh shuffle each epoch; the permutation of epoch e is a pure function of
 * (seed, e), so a copy of the struct replays exactly the same micro-batches. */
typedef struct train_sampler {
    uint64_t seed;
    int64_t epoch;  /* current epoch (0-based) */
    int64_t cursor; /* position in the current epoch's order */
} train_sampler;

/* Makes order [n] (n units) the permutation of s->epoch (Fisher-Yates with an RNG seeded from seed and
 * epoch) unless *order_epoch says it already is. */
void train_sampler_order(const train_sampler *s, int64_t n, int64_t *order, int64_t *order_epoch);

/* Writes up to B example indices of the next micro-batch to idx and returns how many (the last
 * micro-batch of an epoch may be smaller). Returns 1 in *epoch_end when the micro-batch ends the epoch.
 * order [n] and *order_epoch (start at -1) are the caller's cache of the current epoch's permutation. */
int train_sampler_next(train_sampler *s, int64_t n, int64_t *order, int64_t *order_epoch, int64_t *idx, int B,
                       int *epoch_end);

#endif
