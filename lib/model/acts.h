/* acts.h — the activations a forward pass saves for its backward, and the backward's scratch: one
 * allocation per micro-batch shape, laid out by ACTS_BUFFERS (acts.c). Three modes (acts_mode): every
 * layer's activations (ACTS_TRAIN); gradient checkpointing (ACTS_CHECKPOINT: each layer's input kept,
 * one layer's activations recomputed inside the backward); scoring (ACTS_INFERENCE: one layer's
 * activations, no backward buffers). */
#ifndef SLIM_ACTS_H
#define SLIM_ACTS_H

#include <stddef.h>
#include <stdint.h>

#include "ops.h"

struct model_config;

/* What an acts keeps (Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost", for
 * ACTS_CHECKPOINT with one checkpoint per layer). */
typedef enum acts_mode {
    ACTS_TRAIN,      /* every layer's activations: the backward reads them */
    ACTS_CHECKPOINT, /* the residual stream entering each layer [L+1] and one layer's slot: the backward
                        reruns each layer's forward (but its output projection) into the slot before
                        its backward; gradients bit-identical to ACTS_TRAIN (same kernels, same order) */
    ACTS_INFERENCE   /* one layer's slot, residual stream in place, no backward buffers */
} acts_mode;

/* Rows of the output head computed at a time (bounds the logits buffer to HEAD_CHUNK x vocab). */
#define HEAD_CHUNK 256

/* Activations and scratch for micro-batches of up to B sequences of up to T tokens; allocated once.
 * Shapes: N = B*T rows, L layers, H*hd query features, Hkv*hd key/value features, r LoRA rank (1 when
 * there is no adapter), 7 = LORA_N_TARGETS. In a checkpointed or inference acts (one_layer) every [L]
 * below is [1] (each layer reuses the slot); in an inference acts x is also [1] (the residual stream
 * is updated in place) and the backward scratch is NULL. */
typedef struct acts {
    int B, T;            /* capacity */
    int cur_B, cur_T;    /* shape of the last forward */
    int n_sel;           /* rows with a target in the last forward */
    float *mem;          /* one allocation for every float buffer below */
    int32_t *pos;        /* [B*T] position of each token inside its example */
    int32_t *seg_start;  /* [B*T] row position where each token's example starts (packed rows) */
    int32_t *sel_row;    /* [N] row of each selected target */
    int32_t *sel_tgt;    /* [N] target id of each selected row */
    int32_t *prefix;     /* [B*T] keys 0 .. prefix-1 of its row a token also sees (model_forward_prefix); these
                            five share one allocation (pos) */
    int packed;          /* the last forward had packed rows (seg_start in use) */
    int has_prefix;      /* the last forward had prefix (model_forward_prefix) */
    float *x;            /* [L+1][N,dim] residual stream entering each layer; x[L] leaves the last */
    float *xn1, *rstd1;  /* [L][N,dim], [L][N] */
    float *q, *k, *v;    /* [L][N,H*hd], [L][N,Hkv*hd] x2 (after RoPE for q,k) */
    float *lse;          /* [L][B,H,T] attention softmax log-sum-exp per query row (ops.h) */
    float *atty;         /* [L][N,H*hd] attention output before o */
    float *xmid;         /* [L][N,dim] */
    float *xn2, *rstd2;  /* [L][N,dim], [L][N] */
    float *gate, *up, *h;/* [L][N,ffn] gate, up, silu(gate)*up */
    float *lora_u;       /* [L][7][N,r] LoRA inner activations x A^T */
    float *xf, *rstdf;   /* [N,dim], [N] final norm */
    float *sel_x;        /* [N,dim] final-norm rows that carry a target */
    float *logits;       /* [min(N, HEAD_CHUNK), vocab] one chunk of the selected rows' logits (then probs) */
    float *losses;       /* [N] */
    /* backward scratch */
    float *dx, *dxn, *dsel, *dxf;    /* [N,dim], [N,dim], [N,dim], [N,dim] */
    float *dq, *dk, *dv, *datty;     /* [N,H*hd], [N,Hkv*hd] x2, [N,H*hd] */
    float *dgate, *dup, *dh;         /* [N,ffn] */
    float *dlora_u;                  /* [N,r] */
    float *qscratch;                 /* QMATMUL_TILE + max feature size: dequantized weight tiles */
    float *dlogits;                  /* [min(N, HEAD_CHUNK), vocab] one chunk's d(loss)/d(logits) */
    rope_cache rope;                 /* cos/sin for positions 0..T-1 */
    int lora_r;
    int inference;       /* no gradient: set to 1 when no backward will follow; the forward then skips
                            the head's backward (training leaves it 0; acts_init_inference sets it) */
    acts_mode mode;
    int one_layer;       /* ACTS_CHECKPOINT or ACTS_INFERENCE: one slot of per-layer activations */
    int kv_f16;          /* inference only: round K and V to IEEE half before attention, as llama.cpp's
                            default F16 KV cache does (to compare with figures taken with it) */
} acts;

/* Allocates s for up to B x T tokens of a model of config c with LoRA rank lora_r (0: no adapter),
 * zeroed, with its RoPE table. Aborts when out of memory (slim_calloc). */
void acts_init(acts *s, const struct model_config *c, int B, int T, int lora_r);
/* As acts_init, for scoring only (eval): ACTS_INFERENCE, one layer's activations, reused by every
 * layer, no backward scratch, no dlogits; inference and one_layer are set. Same results as acts_init +
 * inference = 1. */
void acts_init_inference(acts *s, const struct model_config *c, int B, int T, int lora_r);
/* As acts_init, in the given mode (acts_init is ACTS_TRAIN, acts_init_inference ACTS_INFERENCE). */
void acts_init_mode(acts *s, const struct model_config *c, int B, int T, int lora_r, acts_mode mode);
/* Frees what an acts_init* allocated; *s is zeroed. */
void acts_free(acts *s);
/* Bytes acts_init_mode allocates for B x T tokens at LoRA rank r in the given mode (RoPE table aside). */
size_t acts_mode_bytes(const struct model_config *c, int B, int T, int lora_r, acts_mode mode);
/* acts_mode_bytes for ACTS_TRAIN and for ACTS_INFERENCE. */
size_t acts_bytes(const struct model_config *c, int B, int T, int lora_r);
size_t acts_inference_bytes(const struct model_config *c, int B, int T, int lora_r);
/* Bytes of one buffer of acts named as its field ("lse", "logits", ...) in that layout, 0 for a name
 * that is not a buffer: the parts of a memory plan. */
size_t acts_buffer_bytes(const struct model_config *c, int B, int T, int lora_r, acts_mode mode, const char *name);

#endif
