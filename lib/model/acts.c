/* acts.c — layout, allocation and release of the activations; see acts.h. */
#include "acts.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "model.h"

/* Every float buffer of acts, in its order inside acts.mem: X(field, floats). The sizes use the
 * locals of acts_layout (N = B*T, Ls layers whose activations are kept: L, or 1 when checkpointed or
 * for inference, Lx residual-stream slots: L + 1, or 1 for inference; g = 1 when the backward buffers
 * exist, else 0; d dim, f ffn,
 * V vocab, qd = H*hd, kvd = Hkv*hd, r rank, chunk = min(N, HEAD_CHUNK), qs = the largest feature
 * size). One list serves both the size (acts_bytes) and the pointers (acts_init), so they cannot
 * disagree. Attention keeps only its softmax statistics (lse, O(B*H*T)), never a [T,T] matrix. */
#define ACTS_BUFFERS(X)                                                   \
    X(x, Lx * N * d)                                                      \
    X(xn1, Ls * N * d) X(rstd1, Ls * N)                                   \
    X(q, Ls * N * qd) X(k, Ls * N * kvd) X(v, Ls * N * kvd)               \
    X(lse, Ls * B * H * T)                                                \
    X(atty, Ls * N * qd)                                                  \
    X(xmid, Ls * N * d)                                                   \
    X(xn2, Ls * N * d) X(rstd2, Ls * N)                                   \
    X(gate, Ls * N * f) X(up, Ls * N * f) X(h, Ls * N * f)                \
    X(lora_u, Ls * LORA_N_TARGETS * N * r)                                \
    X(xf, N * d) X(rstdf, N)                                              \
    X(sel_x, N * d) X(logits, chunk * V) X(losses, N)                     \
    X(dx, g * N * d) X(dxn, g * N * d) X(dsel, g * N * d)                 \
    X(dxf, g * N * d)                                                     \
    X(dq, g * N * qd) X(dk, g * N * kvd) X(dv, g * N * kvd)               \
    X(datty, g * N * qd)                                                  \
    X(dgate, g * N * f) X(dup, g * N * f) X(dh, g * N * f)                \
    X(dlora_u, g * N * r)                                                 \
    X(qscratch, (size_t)QMATMUL_TILE + qs)                                \
    X(dlogits, g * chunk * V)

/* Floats of every buffer of ACTS_BUFFERS for B x T tokens at rank lora_r in the given mode; when s is
 * not NULL, also points each of s's buffers at its place in s->mem (NULL for a buffer of no floats);
 * when name is not NULL, returns the floats of that buffer alone (0 when none has that name). */
static size_t acts_layout(acts *s, const model_config *c, int B_, int T_, int lora_r, acts_mode mode,
                          const char *name) {
    const size_t B = B_, T = T_, N = B * T, L = c->n_layers, d = c->dim, f = c->ffn_dim, V = c->vocab_size;
    const size_t H = c->n_heads, qd = H * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    const size_t r = lora_r > 0 ? lora_r : 1, chunk = N < HEAD_CHUNK ? N : HEAD_CHUNK;
    const size_t qs = d > f ? (d > qd ? d : qd) : (f > qd ? f : qd);
    const int inference = mode == ACTS_INFERENCE;
    const size_t Ls = mode == ACTS_TRAIN ? L : 1, Lx = inference ? 1 : L + 1, g = inference ? 0 : 1;
    size_t total = 0;
#define ACTS_PLACE(field, floats)                                \
    if (s) s->field = (floats) > 0 ? s->mem + total : NULL;      \
    if (name && !strcmp(name, #field)) return (floats);          \
    total += (floats);
    ACTS_BUFFERS(ACTS_PLACE)
#undef ACTS_PLACE
    return name ? 0 : total;
}

/* Bytes of acts_layout's floats plus the five int32 [B*T] index arrays. */
size_t acts_mode_bytes(const model_config *c, int B, int T, int lora_r, acts_mode mode) {
    return acts_layout(NULL, c, B, T, lora_r, mode, NULL) * sizeof(float) + 5 * sizeof(int32_t) * (size_t)B * T;
}

size_t acts_bytes(const model_config *c, int B, int T, int lora_r) {
    return acts_mode_bytes(c, B, T, lora_r, ACTS_TRAIN);
}

size_t acts_inference_bytes(const model_config *c, int B, int T, int lora_r) {
    return acts_mode_bytes(c, B, T, lora_r, ACTS_INFERENCE);
}

size_t acts_buffer_bytes(const model_config *c, int B, int T, int lora_r, acts_mode mode, const char *name) {
    return acts_layout(NULL, c, B, T, lora_r, mode, name) * sizeof(float);
}

void acts_init_mode(acts *s, const model_config *c, int B, int T, int lora_r, acts_mode mode) {
    memset(s, 0, sizeof *s);
    s->B = B;
    s->T = T;
    s->lora_r = lora_r;
    s->mode = mode;
    s->inference = mode == ACTS_INFERENCE;
    s->one_layer = mode != ACTS_TRAIN;
    size_t N = (size_t)B * T;
    s->mem = slim_calloc(acts_layout(NULL, c, B, T, lora_r, mode, NULL), sizeof(float));
    acts_layout(s, c, B, T, lora_r, mode, NULL);
    s->pos = slim_malloc(5 * N * sizeof(int32_t));
    s->seg_start = s->pos + N;
    s->sel_row = s->pos + 2 * N;
    s->sel_tgt = s->pos + 3 * N;
    s->prefix = s->pos + 4 * N;
    rope_cache_init(&s->rope, c->head_dim, T, c->rope_theta, c->rope_neox, c->rope_freqs);
}

void acts_init(acts *s, const model_config *c, int B, int T, int lora_r) {
    acts_init_mode(s, c, B, T, lora_r, ACTS_TRAIN);
}

void acts_init_inference(acts *s, const model_config *c, int B, int T, int lora_r) {
    acts_init_mode(s, c, B, T, lora_r, ACTS_INFERENCE);
}

void acts_free(acts *s) {
    free(s->mem);
    free(s->pos);
    rope_cache_free(&s->rope);
    memset(s, 0, sizeof *s);
}
