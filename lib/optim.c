/* optim.c — see optim.h. */
#include "optim.h"

#include <math.h>
#include <stdlib.h>

#include "common.h"

void adamw_init(adamw *o, size_t n, float beta1, float beta2, float eps, float weight_decay) {
    o->n = n;
    o->m = slim_calloc(n, sizeof(float));
    o->v = slim_calloc(n, sizeof(float));
    o->t = 0;
    o->beta1 = beta1;
    o->beta2 = beta2;
    o->eps = eps;
    o->weight_decay = weight_decay;
}

void adamw_free(adamw *o) {
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
}

void adamw_step(adamw *o, float *params, const float *grads, float lr) {
    o->t++;
    const float b1 = o->beta1, b2 = o->beta2;
    const float c1 = 1.0f - powf(b1, (float)o->t), c2 = 1.0f - powf(b2, (float)o->t);
    const long n = (long)o->n;
#pragma omp parallel for
    for (long i = 0; i < n; i++) {
        float g = grads[i];
        float m = o->m[i] = b1 * o->m[i] + (1.0f - b1) * g;
        float v = o->v[i] = b2 * o->v[i] + (1.0f - b2) * g * g;
        float mhat = m / c1, vhat = v / c2;
        params[i] -= lr * (mhat / (sqrtf(vhat) + o->eps) + o->weight_decay * params[i]);
    }
}

float lr_schedule(long step, long total, long warmup, float lr, float min_ratio) {
    if (warmup > 0 && step < warmup) return lr * (float)(step + 1) / (float)warmup;
    long decay = total - warmup;
    if (decay <= 1) return lr;
    double progress = (double)(step - warmup) / (double)(decay - 1);
    if (progress > 1.0) progress = 1.0;
    double cosine = 0.5 * (1.0 + cos(3.14159265358979323846 * progress));
    return (float)(lr * (min_ratio + (1.0 - min_ratio) * cosine));
}

float grad_clip_norm(float *g, size_t n, float clip) {
    double ss = 0.0;
#pragma omp parallel for reduction(+ : ss)
    for (long i = 0; i < (long)n; i++) ss += (double)g[i] * g[i];
    float norm = (float)sqrt(ss);
    if (clip > 0.0f && norm > clip) {
        float k = clip / norm;
        for (size_t i = 0; i < n; i++) g[i] *= k;
    }
    return norm;
}
