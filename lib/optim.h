/* optim.h — AdamW (Loshchilov & Hutter 2019, decoupled weight decay) and the learning-rate schedule
 * (linear warmup, then cosine decay to a floor). */
#ifndef SLIM_OPTIM_H
#define SLIM_OPTIM_H

#include <stddef.h>

typedef struct adamw {
    size_t n;
    float *m, *v;   /* [n] first and second moments */
    long t;         /* steps taken */
    float beta1, beta2, eps, weight_decay;
} adamw;

/* Zeroed first and second moments for n parameters, with the AdamW hyper-parameters. */
void adamw_init(adamw *o, size_t n, float beta1, float beta2, float eps, float weight_decay);
/* Frees the moments; *o is zeroed. */
void adamw_free(adamw *o);
/* One update of params [n] with gradients grads [n] at learning rate lr (bias-corrected moments). */
void adamw_step(adamw *o, float *params, const float *grads, float lr);

/* Learning rate at optimizer step `step` (0-based) of `total`: linear warmup from lr/warmup to lr over
 * `warmup` steps, then cosine decay from lr to lr*min_ratio at the last step. */
float lr_schedule(long step, long total, long warmup, float lr, float min_ratio);

/* Global L2 norm of g [n]; when clip > 0 and the norm exceeds it, g is scaled down to norm clip.
 * Returns the norm before clipping. */
float grad_clip_norm(float *g, size_t n, float clip);

#endif
