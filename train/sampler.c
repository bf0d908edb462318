/* sampler.c — see sampler.h (moved unchanged from train.c). */
#include "sampler.h"

#include "common.h"

void train_sampler_order(const train_sampler *s, int64_t n, int64_t *order, int64_t *order_epoch) {
    if (*order_epoch == s->epoch) return;
    slim_rng rng;
    slim_rng_seed(&rng, s->seed * 1000003u + (uint64_t)s->epoch);
    for (int64_t i = 0; i < n; i++) order[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(slim_rng_u32(&rng) % (uint32_t)(i + 1));
        int64_t tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
    *order_epoch = s->epoch;
}

int train_sampler_next(train_sampler *s, int64_t n, int64_t *order, int64_t *order_epoch,
                       int64_t *idx, int B, int *epoch_end) {
    if (s->cursor >= n) {
        s->epoch++;
        s->cursor = 0;
    }
    train_sampler_order(s, n, order, order_epoch);
    int64_t left = n - s->cursor;
    int nb = (int)(left < B ? left : B);
    for (int b = 0; b < nb; b++) idx[b] = order[s->cursor + b];
    s->cursor += nb;
    *epoch_end = s->cursor >= n;
    return nb;
}
