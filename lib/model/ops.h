/* ops.h — the forward and backward kernels of a llama-architecture transformer with LoRA, on CPU.
 *
 * Each op has a _forward and a _backward with the same argument order (llm.c style). Backward
 * functions ACCUMULATE (+=) into every gradient buffer they are given (names start with d), so the
 * caller zeroes them once per step; a NULL gradient pointer means "not needed" (frozen weights).
 * Two exceptions, said at each: rope_backward rotates dx in place (RoPE is a rotation, its own inverse
 * pass), and lora_backward's dlora_u [N,r] is scratch it overwrites.
 * Shapes are row-major; N = B*T rows (tokens). Matrix products go through OpenBLAS cblas_sgemm;
 * element-wise loops use OpenMP.
 * Weight convention (GGUF/ggml): a linear layer's weight W has ne = [in, out], i.e. it is a
 * row-major [out, in] matrix and y = x W^T. */
#ifndef SLIM_OPS_H
#define SLIM_OPS_H

#include <stdint.h>

#include "quant.h"

/* Token embedding lookup. out [N,C] = wte[tokens[n]], wte [V,C]. */
void embedding_forward(float *out, const int32_t *tokens, const float *wte, int N, int C);
/* dwte [V,C] += dout rows scattered by token id. */
void embedding_backward(float *dwte, const float *dout, const int32_t *tokens, int N, int C);

/* RMSNorm (Zhang & Sennrich 2019): out = x / sqrt(mean(x^2) + eps) * w.
 * out, inp [N,C]; w [C]; rstd [N] saved for backward (1/sqrt(mean(x^2)+eps)). */
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C, float eps);
/* dinp [N,C] += ..., dw [C] += ... (may be NULL); dout [N,C]. */
void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                      const float *rstd, int N, int C);

/* Linear layer without bias: out [N,OC] = inp [N,C] W^T, W [OC,C]. beta = 0 overwrites out,
 * beta = 1 accumulates. */
void matmul_forward(float *out, const float *inp, const float *W, int N, int C, int OC, float beta);
/* dinp [N,C] += dout W (may be NULL); dW [OC,C] += dout^T inp (may be NULL). */
void matmul_backward(float *dinp, float *dW, const float *dout, const float *inp, const float *W,
                     int N, int C, int OC);

/* LoRA (Hu et al. 2021) delta on a linear layer: out [N,OC] += scale * (inp A^T) B^T, where
 * A [r,C], B [OC,r]; lora_u [N,r] = inp A^T is saved for backward. */
void lora_forward(float *out, float *lora_u, const float *inp, const float *A, const float *B,
                  int N, int C, int OC, int r, float scale);
/* lora_forward's first half alone: lora_u [N,r] = inp [N,C] A^T (the same product, bit for bit; used
 * to recompute lora_u where the layer's output is already known). */
void lora_project(float *lora_u, const float *inp, const float *A, int N, int C, int r);
/* dA [r,C] += scale * (dout B)^T inp; dB [OC,r] += scale * dout^T lora_u; dinp [N,C] += scale * (dout B) A
 * (may be NULL). dlora_u [N,r] is scratch (overwritten with dout B). */
void lora_backward(float *dinp, float *dA, float *dB, float *dlora_u, const float *dout, const float *inp,
                   const float *lora_u, const float *A, const float *B, int N, int C, int OC, int r,
                   float scale);

/* Rotary position embedding (Su et al. 2021). Within each head of size hd, pair i (i < hd/2) is
 * rotated by angle pos * theta^(-2i/hd) / freq_factor[i] (freq factors: Llama 3 rope scaling,
 * 1 when absent). Layouts: llama.cpp's "normal" (llama GGUF) pairs elements (2i, 2i+1); "neox"
 * (qwen2, Hugging Face rotate_half) pairs (i, i + hd/2). cos/sin tables for positions 0..max_pos-1 are
 * computed once by rope_cache_init. */
typedef struct rope_cache {
    int hd, max_pos, neox;
    float *cos, *sin; /* [max_pos, hd/2] */
} rope_cache;

/* Fills cos/sin for positions 0..max_pos-1 of head size hd (theta, neox layout, freq_factors [hd/2] or NULL). */
void rope_cache_init(rope_cache *rc, int hd, int max_pos, float theta, int neox, const float *freq_factors);
/* Frees the tables of rope_cache_init. */
void rope_cache_free(rope_cache *rc);
/* In place on x [N, n_heads*hd]; pos [N] is each row's position (0 <= pos < max_pos). */
void rope_forward(float *x, const int32_t *pos, int N, int n_heads, const rope_cache *rc);
/* The inverse rotation applied to the gradient, in place on dx [N, n_heads*hd]. */
void rope_backward(float *dx, const int32_t *pos, int N, int n_heads, const rope_cache *rc);

/* Floats in one dequantized tile of a q-matmul (a tile holds at least one row, so scratch needs
 * max(QMATMUL_TILE, cols) floats). */
#define QMATMUL_TILE (1 << 18)

/* Linear layer over a frozen weight of any storage type (quant.h): out [N,OC] = inp [N,C] W^T
 * (beta = 0 overwrites, 1 accumulates). F32 weights go straight to sgemm; other types are
 * dequantized on the fly, a tile of rows at a time, into scratch (ops_qmatmul_scratch_size floats). */
void qmatmul_forward(float *out, const float *inp, const qmatrix *W, int N, float beta, float *scratch);
/* dinp [N,C] += dout [N,OC] W, dequantizing W on the fly likewise (a frozen base needs no dW). */
void qmatmul_backward(float *dinp, const float *dout, const qmatrix *W, int N, float *scratch);
/* Floats of scratch the q-matmuls need for W (0 for F32). */
long ops_qmatmul_scratch_size(const qmatrix *W);

/* Query rows and key rows per tile of the tiled attention (B_r = B_c in FlashAttention-2's notation). */
#define ATT_TILE 64

/* Causal grouped-query attention for B sequences of T tokens, tiled with an online softmax
 * (FlashAttention-2: Dao 2023, Algorithm 1), so that no [T,T] matrix is ever stored.
 * q [B,T,H*hd], k and v [B,T,Hkv*hd] (query head h reads kv head h / (H/Hkv)), out [B,T,H*hd];
 * lse [B,H,T] saves each query row's log-sum-exp of its scaled scores, all the backward needs to
 * recompute the softmax. Scores are scaled by 1/sqrt(hd). Key tiles wholly above the diagonal, or
 * wholly before every row's example, are skipped. Positions beyond a sequence's real length (right
 * padding) only attend to earlier positions, so they never affect real positions.
 * seg_start [B*T] (may be NULL): packed rows hold several examples; the token at row position i
 * attends only to positions seg_start[i] .. i (the start of its own example), so attention never
 * crosses examples. NULL means every row is one sequence (seg_start = 0).
 * prefix [B*T] (may be NULL; used only with seg_start): the token at i also attends to positions
 * 0 .. prefix[i]-1 (a prompt shared by the segments after it; prefix[i] <= seg_start[i]), as scoring
 * every label's completion over one prompt does (eval's cached prompt). The backward takes no prefix.
 * Scratch: each thread allocates ATT_TILE x (ATT_TILE + 2) floats for the call. */
void attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                       const int32_t *seg_start, const int32_t *prefix, int B, int T, int H, int Hkv, int hd);
/* dq [B,T,H*hd], dk and dv [B,T,Hkv*hd] += ...; dout [B,T,H*hd]; out and lse as the forward left them.
 * Recomputes the probabilities tile by tile from lse (Dao 2023, Algorithm 2). Scratch: each thread
 * allocates 2 x ATT_TILE^2 + T floats for the call. */
void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                        const float *v, const float *out, const float *lse, const int32_t *seg_start, int B, int T,
                        int H, int Hkv, int hd);

/* SwiGLU (Shazeer 2020): out = silu(gate) * up, all [N,F]. */
void swiglu_forward(float *out, const float *gate, const float *up, int N, int F);
/* dgate, dup [N,F] += ...; dout [N,F]. */
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                     int N, int F);

/* Residual add: out [n] = a + b. */
void residual_forward(float *out, const float *a, const float *b, long n);

/* Softmax cross-entropy over M selected rows. logits [M,V] are overwritten by their softmax
 * probabilities; losses [M] = -log p[target]; returns the sum of losses. */
double crossentropy_forward(float *logits, float *losses, const int32_t *targets, int M, int V);
/* dlogits [M,V] += (probs - onehot(target)) * scale: the gradient of scale * (sum of losses) with
 * respect to the logits; probs [M,V] as crossentropy_forward left them. */
void crossentropy_backward(float *dlogits, const float *probs, const int32_t *targets, int M, int V, float scale);

#endif
