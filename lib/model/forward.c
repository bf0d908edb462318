/* forward.c — the model's forward and backward passes over a micro-batch, with LoRA; see model.h.
 *
 * Each stage has a _forward and a _backward side by side, the backward taking its forward's saved
 * activations in the forward's order and accumulating (+=) into the gradients it is given (ops.h):
 * proj (a frozen projection + its LoRA delta), layer (one transformer block), head (output head +
 * cross-entropy). Only the LoRA parameters get gradients; the frozen base gets none. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

/* Views of layer l's saved activations inside s for the shape of the current forward (cur_B x cur_T);
 * shapes as in acts, without the leading [L]. A checkpointed or inference acts (one_layer) gives every
 * layer the same slot; an inference acts also gives xnext == x: the residual stream is updated in
 * place. */
typedef struct acts_layer {
    float *x, *xnext, *xn1, *rstd1, *q, *k, *v, *lse, *atty, *xmid, *xn2, *rstd2, *gate, *up, *h;
    float *lora_u[LORA_N_TARGETS]; /* [N,r] x A^T of each projection */
} acts_layer;

static acts_layer acts_layer_view(const acts *s, const model_config *c, int layer) {
    const size_t l = s->one_layer ? 0 : layer, xl = s->mode == ACTS_INFERENCE ? 0 : layer;
    const size_t xnext = s->mode == ACTS_INFERENCE ? 0 : xl + 1;
    const size_t B = s->cur_B, T = s->cur_T, N = B * T, d = c->dim, f = c->ffn_dim, H = c->n_heads;
    const size_t qd = H * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim, r = s->lora_r > 0 ? s->lora_r : 1;
    acts_layer a = {
        .x = s->x + xl * N * d, .xnext = s->x + xnext * N * d, .xn1 = s->xn1 + l * N * d, .rstd1 = s->rstd1 + l * N,
        .q = s->q + l * N * qd, .k = s->k + l * N * kvd, .v = s->v + l * N * kvd, .lse = s->lse + l * B * H * T,
        .atty = s->atty + l * N * qd, .xmid = s->xmid + l * N * d, .xn2 = s->xn2 + l * N * d,
        .rstd2 = s->rstd2 + l * N, .gate = s->gate + l * N * f, .up = s->up + l * N * f, .h = s->h + l * N * f};
    for (int t = 0; t < LORA_N_TARGETS; t++) a.lora_u[t] = s->lora_u + (l * LORA_N_TARGETS + (size_t)t) * N * r;
    return a;
}

/* The residual stream [N,dim] leaving the last layer (the final norm's input). */
static float *acts_x_last(const acts *s, const model_config *c) {
    return s->x + (s->mode == ACTS_INFERENCE ? 0 : (size_t)c->n_layers * s->cur_B * s->cur_T * c->dim);
}

/* ---------------------------------------------------------------------------------------------- */
/* projections */

/* y [N,out] = x [N,in] W^T (+ bias) (+ LoRA delta, saving its x A^T in lora_u [N,r]) for projection t
 * of layer l. */
static void proj_forward(float *y, float *lora_u, const float *x, const model *m, const lora_adapter *lora,
                         acts *s, int l, int t, int N) {
    int in, out;
    model_target_shape(&m->cfg, t, &in, &out);
    qmatmul_forward(y, x, &m->layers[l].w[t], N, 0.0f, s->qscratch);
    const float *bias = t <= LORA_V ? m->layers[l].bias[t] : NULL;
    if (bias) {
#pragma omp parallel for
        for (int n = 0; n < N; n++)
            for (int o = 0; o < out; o++) y[(size_t)n * out + o] += bias[o];
    }
    if (lora && lora->enabled[t])
        lora_forward(y, lora_u, x, lora->A[l * LORA_N_TARGETS + t], lora->B[l * LORA_N_TARGETS + t], N, in, out,
                     lora->r, lora->scale);
}

/* dx [N,in] += dy [N,out] W (+ the LoRA path); dlora (layout of lora->params) += dA, dB of projection t
 * of layer l. s->dlora_u is scratch. */
static void proj_backward(float *dx, float *dlora, const float *dy, const float *x, const float *lora_u,
                          const model *m, const lora_adapter *lora, acts *s, int l, int t, int N) {
    int in, out;
    model_target_shape(&m->cfg, t, &in, &out);
    qmatmul_backward(dx, dy, &m->layers[l].w[t], N, s->qscratch);
    if (lora && lora->enabled[t])
        lora_backward(dx, dlora + lora_offset_A(lora, l, t), dlora + lora_offset_B(lora, l, t), s->dlora_u, dy, x,
                      lora_u, lora->A[l * LORA_N_TARGETS + t], lora->B[l * LORA_N_TARGETS + t], N, in, out, lora->r,
                      lora->scale);
}

/* ---------------------------------------------------------------------------------------------- */
/* transformer block */

/* Layer l: x_{l+1} = xmid + down(swiglu(gate(xn2), up(xn2))), xn2 = rmsnorm(xmid),
 * xmid = x_l + o(attention(rope(q(xn1)), rope(k(xn1)), v(xn1))), xn1 = rmsnorm(x_l); saved in s
 * (x_l is last read by the residual into xmid, so x_{l+1} may overwrite it: ACTS_INFERENCE).
 * recompute (gradient checkpointing, inside the backward): x_{l+1} is already saved, so the down
 * projection is skipped and only its LoRA lora_u is formed; everything else is the same calls on the
 * same inputs, hence bit-identical to the forward's. */
static void layer_forward(const model *m, const lora_adapter *lora, acts *s, int l, int recompute) {
    const model_config *c = &m->cfg;
    const model_layer *L = &m->layers[l];
    const int B = s->cur_B, T = s->cur_T, N = B * T, d = c->dim, f = c->ffn_dim, H = c->n_heads,
              Hkv = c->n_kv_heads, hd = c->head_dim;
    const size_t kvd = (size_t)Hkv * hd;
    acts_layer a = acts_layer_view(s, c, l);
    rmsnorm_forward(a.xn1, a.rstd1, a.x, L->attn_norm, N, d, c->norm_eps);
    proj_forward(a.q, a.lora_u[LORA_Q], a.xn1, m, lora, s, l, LORA_Q, N);
    proj_forward(a.k, a.lora_u[LORA_K], a.xn1, m, lora, s, l, LORA_K, N);
    proj_forward(a.v, a.lora_u[LORA_V], a.xn1, m, lora, s, l, LORA_V, N);
    rope_forward(a.q, s->pos, N, H, &s->rope);
    rope_forward(a.k, s->pos, N, Hkv, &s->rope);
    if (s->kv_f16)
        for (size_t i = 0; i < (size_t)N * kvd; i++) {
            a.k[i] = slim_fp16_to_fp32(slim_fp32_to_fp16(a.k[i]));
            a.v[i] = slim_fp16_to_fp32(slim_fp32_to_fp16(a.v[i]));
        }
    attention_forward(a.atty, a.lse, a.q, a.k, a.v, s->packed ? s->seg_start : NULL, s->has_prefix ? s->prefix : NULL,
                      B, T, H, Hkv, hd);
    proj_forward(a.xmid, a.lora_u[LORA_O], a.atty, m, lora, s, l, LORA_O, N);
    residual_forward(a.xmid, a.xmid, a.x, (long)N * d);
    rmsnorm_forward(a.xn2, a.rstd2, a.xmid, L->ffn_norm, N, d, c->norm_eps);
    proj_forward(a.gate, a.lora_u[LORA_GATE], a.xn2, m, lora, s, l, LORA_GATE, N);
    proj_forward(a.up, a.lora_u[LORA_UP], a.xn2, m, lora, s, l, LORA_UP, N);
    swiglu_forward(a.h, a.gate, a.up, N, f);
    if (recompute) {
        if (lora && lora->enabled[LORA_DOWN])
            lora_project(a.lora_u[LORA_DOWN], a.h, lora->A[l * LORA_N_TARGETS + LORA_DOWN], N, f, lora->r);
        return;
    }
    proj_forward(a.xnext, a.lora_u[LORA_DOWN], a.h, m, lora, s, l, LORA_DOWN, N);
    residual_forward(a.xnext, a.xnext, a.xmid, (long)N * d);
}

/* Its backward: on entry s->dx [N,dim] holds d x_{l+1}; on return d x_l (not computed for l = 0: the
 * embedding is frozen). dlora += the gradients of layer l's adapters. */
static void layer_backward(const model *m, const lora_adapter *lora, acts *s, float *dlora, int l) {
    const model_config *c = &m->cfg;
    const model_layer *L = &m->layers[l];
    const int B = s->cur_B, T = s->cur_T, N = B * T, d = c->dim, f = c->ffn_dim, H = c->n_heads,
              Hkv = c->n_kv_heads, hd = c->head_dim;
    const size_t qd = (size_t)H * hd, kvd = (size_t)Hkv * hd;
    acts_layer a = acts_layer_view(s, c, l);
    /* x_{l+1} = xmid + down(h): dx holds d x_{l+1} and continues as d xmid through the residual */
    memset(s->dh, 0, sizeof(float) * N * f);
    proj_backward(s->dh, dlora, s->dx, a.h, a.lora_u[LORA_DOWN], m, lora, s, l, LORA_DOWN, N);
    memset(s->dgate, 0, sizeof(float) * N * f);
    memset(s->dup, 0, sizeof(float) * N * f);
    swiglu_backward(s->dgate, s->dup, s->dh, a.gate, a.up, N, f);
    memset(s->dxn, 0, sizeof(float) * N * d);
    proj_backward(s->dxn, dlora, s->dgate, a.xn2, a.lora_u[LORA_GATE], m, lora, s, l, LORA_GATE, N);
    proj_backward(s->dxn, dlora, s->dup, a.xn2, a.lora_u[LORA_UP], m, lora, s, l, LORA_UP, N);
    rmsnorm_backward(s->dx, NULL, s->dxn, a.xmid, L->ffn_norm, a.rstd2, N, d);
    /* xmid = x + o(atty): dx holds d xmid and continues as d x */
    memset(s->datty, 0, sizeof(float) * N * qd);
    proj_backward(s->datty, dlora, s->dx, a.atty, a.lora_u[LORA_O], m, lora, s, l, LORA_O, N);
    memset(s->dq, 0, sizeof(float) * N * qd);
    memset(s->dk, 0, sizeof(float) * N * kvd);
    memset(s->dv, 0, sizeof(float) * N * kvd);
    attention_backward(s->dq, s->dk, s->dv, s->datty, a.q, a.k, a.v, a.atty, a.lse, s->packed ? s->seg_start : NULL,
                       B, T, H, Hkv, hd);
    rope_backward(s->dq, s->pos, N, H, &s->rope);
    rope_backward(s->dk, s->pos, N, Hkv, &s->rope);
    memset(s->dxn, 0, sizeof(float) * N * d);
    proj_backward(s->dxn, dlora, s->dq, a.xn1, a.lora_u[LORA_Q], m, lora, s, l, LORA_Q, N);
    proj_backward(s->dxn, dlora, s->dk, a.xn1, a.lora_u[LORA_K], m, lora, s, l, LORA_K, N);
    proj_backward(s->dxn, dlora, s->dv, a.xn1, a.lora_u[LORA_V], m, lora, s, l, LORA_V, N);
    if (l > 0) /* the embedding is frozen: no gradient is needed below layer 0 */
        rmsnorm_backward(s->dx, NULL, s->dxn, a.x, L->attn_norm, a.rstd1, N, d);
}

/* ---------------------------------------------------------------------------------------------- */
/* output head */

/* Output head + cross-entropy on M selected rows: probs [M,V] = softmax(sel_x [M,dim] W^T) (the logits,
 * overwritten in place), losses [M] = -log p(target); returns their sum. */
static double head_forward(float *probs, float *losses, const float *sel_x, const int32_t *targets,
                           const qmatrix *W, int M, int V, float *scratch) {
    qmatmul_forward(probs, sel_x, W, M, 0.0f, scratch);
    return crossentropy_forward(probs, losses, targets, M, V);
}

/* Its backward for d(summed loss): dsel [M,dim] += dlogits W, dlogits [M,V] = probs - onehot(targets)
 * (scratch, overwritten). */
static void head_backward(float *dsel, float *dlogits, const float *probs, const int32_t *targets,
                          const qmatrix *W, int M, int V, float *scratch) {
    memset(dlogits, 0, sizeof(float) * M * V);
    crossentropy_backward(dlogits, probs, targets, M, V, 1.0f);
    qmatmul_backward(dsel, dlogits, W, M, scratch);
}

/* The head on the s->n_sel selected rows (s->sel_x, s->sel_tgt) in chunks of HEAD_CHUNK rows, so that
 * logits never take more than HEAD_CHUNK x vocab floats. A chunk's backward needs its probabilities,
 * which the next chunk overwrites: unless s->inference, it runs right after the chunk's forward and
 * leaves d(summed loss)/d(sel_x) in s->dsel [n_sel,dim] (model_backward scales it by loss_scale).
 * Returns the summed loss; s->losses [n_sel] gets each row's. */
static double head_chunked(const model *m, acts *s) {
    const int M = s->n_sel, d = m->cfg.dim, V = m->cfg.vocab_size;
    double loss = 0.0;
    for (int c0 = 0; c0 < M; c0 += HEAD_CHUNK) {
        int mc = M - c0 < HEAD_CHUNK ? M - c0 : HEAD_CHUNK;
        loss += head_forward(s->logits, s->losses + c0, s->sel_x + (size_t)c0 * d, s->sel_tgt + c0, &m->output, mc,
                             V, s->qscratch);
        if (!s->inference) {
            memset(s->dsel + (size_t)c0 * d, 0, sizeof(float) * mc * d);
            head_backward(s->dsel + (size_t)c0 * d, s->dlogits, s->logits, s->sel_tgt + c0, &m->output, mc, V,
                          s->qscratch);
        }
    }
    return loss;
}

/* ---------------------------------------------------------------------------------------------- */
/* the model */

/* Checks the batch fits s and its positions and segments are in range (else a caller bug: aborts
 * with a message), and stores its shape, positions and segments in s. */
static void forward_begin(acts *s, const int32_t *pos, const int32_t *seg_start, const int32_t *prefix, int B, int T) {
    const int N = B * T;
    /* a batch larger than acts_init allocated, or positions outside the RoPE table, would write or
     * read out of bounds */
    int bad = B < 1 || T < 1 || B > s->B || T > s->T;
    for (int n = 0; n < N && !bad && (pos || seg_start); n++)
        bad = (pos && (pos[n] < 0 || pos[n] >= s->T)) || (seg_start && (seg_start[n] < 0 || seg_start[n] > n % T)) ||
              (prefix && (!seg_start || prefix[n] < 0 || prefix[n] > seg_start[n]));
    if (bad) {
        fprintf(stderr, "slimtune: model_forward: batch %d x %d (capacity %d x %d) or its positions/segments are "
                        "out of range\n", B, T, s->B, s->T);
        abort();
    }
    s->cur_B = B;
    s->cur_T = T;
    if (pos) memcpy(s->pos, pos, sizeof(int32_t) * N);
    else
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) s->pos[b * T + t] = t;
    s->packed = seg_start != NULL;
    if (seg_start) memcpy(s->seg_start, seg_start, sizeof(int32_t) * N);
    s->has_prefix = prefix != NULL;
    if (prefix) memcpy(s->prefix, prefix, sizeof(int32_t) * N);
}

double model_forward(const model *m, const lora_adapter *lora, acts *s,
                     const int32_t *tokens, const int32_t *targets, int B, int T,
                     float *target_logprob, float *all_logits) {
    return model_forward_packed(m, lora, s, tokens, targets, NULL, NULL, B, T, target_logprob, all_logits);
}

double model_forward_packed(const model *m, const lora_adapter *lora, acts *s,
                            const int32_t *tokens, const int32_t *targets, const int32_t *pos,
                            const int32_t *seg_start, int B, int T, float *target_logprob, float *all_logits) {
    return model_forward_prefix(m, lora, s, tokens, targets, pos, seg_start, NULL, B, T, target_logprob, all_logits);
}

double model_forward_prefix(const model *m, const lora_adapter *lora, acts *s, const int32_t *tokens,
                            const int32_t *targets, const int32_t *pos, const int32_t *seg_start, const int32_t *prefix,
                            int B, int T, float *target_logprob, float *all_logits) {
    const model_config *c = &m->cfg;
    const int N = B * T, d = c->dim;
    forward_begin(s, pos, seg_start, prefix, B, T);
    if (m->tok_embd.type == GGML_TYPE_F32) embedding_forward(s->x, tokens, (const float *)m->tok_embd.data, N, d);
    else {
#pragma omp parallel for
        for (int n = 0; n < N; n++) qmatrix_dequantize_rows(&m->tok_embd, tokens[n], tokens[n] + 1, s->x + (size_t)n * d);
    }
    for (int l = 0; l < c->n_layers; l++) layer_forward(m, lora, s, l, 0);
    rmsnorm_forward(s->xf, s->rstdf, acts_x_last(s, c), m->output_norm, N, d, c->norm_eps);
    if (all_logits) qmatmul_forward(all_logits, s->xf, &m->output, N, 0.0f, s->qscratch);

    /* the output head runs only on rows that carry a target */
    int M = 0;
    if (targets) {
        for (int n = 0; n < N; n++) {
            if (targets[n] < 0) continue;
            s->sel_row[M] = n;
            s->sel_tgt[M] = targets[n];
            memcpy(s->sel_x + (size_t)M * d, s->xf + (size_t)n * d, sizeof(float) * d);
            M++;
        }
    }
    s->n_sel = M;
    double loss = head_chunked(m, s);
    if (target_logprob) {
        memset(target_logprob, 0, sizeof(float) * N);
        for (int i = 0; i < M; i++) target_logprob[s->sel_row[i]] = -s->losses[i];
    }
    return loss;
}

void model_backward(const model *m, const lora_adapter *lora, acts *s, float *dlora, float loss_scale) {
    const model_config *c = &m->cfg;
    const int N = s->cur_B * s->cur_T, d = c->dim, M = s->n_sel;
    if (s->inference || s->has_prefix) { /* a caller bug: no backward state, or a mask the backward lacks */
        fprintf(stderr, "slimtune: model_backward: the forward ran with an inference acts or a shared prefix\n");
        abort();
    }
    /* head: dsel [M,d] (from the forward) * loss_scale, scattered into dxf [N,d] -> final RMSNorm -> dx */
    memset(s->dxf, 0, sizeof(float) * N * d);
    memset(s->dx, 0, sizeof(float) * N * d);
    for (int i = 0; i < M; i++) {
        const float *src = s->dsel + (size_t)i * d;
        float *dst = s->dxf + (size_t)s->sel_row[i] * d;
        for (int j = 0; j < d; j++) dst[j] = loss_scale * src[j];
    }
    rmsnorm_backward(s->dx, NULL, s->dxf, acts_x_last(s, c), m->output_norm, s->rstdf, N, d);
    for (int l = c->n_layers - 1; l >= 0; l--) {
        /* checkpointed: the slot holds the last layer's activations from the forward; rerun the others */
        if (s->mode == ACTS_CHECKPOINT && l < c->n_layers - 1) layer_forward(m, lora, s, l, 1);
        layer_backward(m, lora, s, dlora, l);
    }
}
