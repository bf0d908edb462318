/* acts.c — layout, allocation and release of the activations; see acts.h. */
#include "acts.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "model.h"

/* Every float buffer of acts, in its order inside acts.mem: X(field, floats). The sizes use the
 * locals of acts_layout (N = B*T, L layers, d dim, f ffn, V vocab, qd = H*hd, kvd = Hkv*hd, r rank,
 * chunk = min(N, HEAD_CHUNK), qs = the largest feature size). One list serves both the size
 * (acts_bytes) and the pointers (acts_init), so they cannot disagree. */
#define ACTS_BUFFERS(X)                                                   \
    X(x, (L + 1) * N * d)                                                 \
    X(xn1, L * N * d) X(rstd1, L * N)                                     \
    X(q, L * N * qd) X(k, L * N * kvd) X(v, L * N * kvd)                  \
    X(att, L * B * H * T * T)                                             \
    X(atty, L * N * qd)                                                   \
    X(xmid, L * N * d)                                                    \
    X(xn2, L * N * d) X(rstd2, L * N)                                     \
    X(gate, L * N * f) X(up, L * N * f) X(h, L * N * f)                   \
    X(lora_u, L * LORA_N_TARGETS * N * r)                                 \
    X(xf, N * d) X(rstdf, N)                                              \
    X(sel_x, N * d) X(logits, chunk * V) X(losses, N)                     \
    X(dx, N * d) X(dxn, N * d) X(dsel, N * d) X(dxf, N * d)               \
    X(dq, N * qd) X(dk, N * kvd) X(dv, N * kvd) X(datty, N * qd)          \
    X(dgate, N * f) X(dup, N * f) X(dh, N * f)                            \
    X(dlora_u, N * r)                                                     \
    X(att_scratch, (size_t)ops_attention_scratch_size(T))                 \
    X(qscratch, (size_t)QMATMUL_TILE + qs)                                \
    X(dlogits, chunk * V)

/* Floats of every buffer of ACTS_BUFFERS for B x T tokens at rank lora_r; when s is not NULL, also
 * points each of s's buffers at its place in s->mem. */
static size_t acts_layout(acts *s, const model_config *c, int B_, int T_, int lora_r) {
    const size_t B = B_, T = T_, N = B * T, L = c->n_layers, d = c->dim, f = c->ffn_dim, V = c->vocab_size;
    const size_t H = c->n_heads, qd = H * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    const size_t r = lora_r > 0 ? lora_r : 1, chunk = N < HEAD_CHUNK ? N : HEAD_CHUNK;
    const size_t qs = d > f ? (d > qd ? d : qd) : (f > qd ? f : qd);
    size_t total = 0;
#define ACTS_PLACE(field, floats)                 \
    if (s) s->field = s->mem + total;             \
    total += (floats);
    ACTS_BUFFERS(ACTS_PLACE)
#undef ACTS_PLACE
    return total;
}

size_t acts_bytes(const model_config *c, int B, int T, int lora_r) {
    return acts_layout(NULL, c, B, T, lora_r) * sizeof(float) + 4 * sizeof(int32_t) * (size_t)B * T;
}

void acts_init(acts *s, const model_config *c, int B, int T, int lora_r) {
    memset(s, 0, sizeof *s);
    s->B = B;
    s->T = T;
    s->lora_r = lora_r;
    size_t N = (size_t)B * T;
    s->mem = slim_calloc(acts_layout(NULL, c, B, T, lora_r), sizeof(float));
    acts_layout(s, c, B, T, lora_r);
    s->pos = slim_malloc(4 * N * sizeof(int32_t));
    s->seg_start = s->pos + N;
    s->sel_row = s->pos + 2 * N;
    s->sel_tgt = s->pos + 3 * N;
    rope_cache_init(&s->rope, c->head_dim, T, c->rope_theta, c->rope_neox, c->rope_freqs);
}

void acts_free(acts *s) {
    free(s->mem);
    free(s->pos);
    rope_cache_free(&s->rope);
    memset(s, 0, sizeof *s);
}
