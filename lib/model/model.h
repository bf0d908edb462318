/* model.h — a llama-architecture transformer (token embedding, RMSNorm, RoPE, causal grouped-query
 * attention, SwiGLU, output head) with LoRA adapters: loading from GGUF, forward, backward.
 *
 * Follow a token: embedding row -> per layer [RMSNorm -> q,k,v (+LoRA) -> RoPE -> causal GQA
 * attention -> o (+LoRA) -> residual -> RMSNorm -> gate,up (+LoRA) -> SwiGLU -> down (+LoRA) ->
 * residual] -> final RMSNorm -> output head -> logits. Tensor names follow llama.cpp's GGUF
 * convention (token_embd, blk.N.attn_q, ..., output_norm, output). */
#ifndef SLIM_MODEL_H
#define SLIM_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "format/gguf.h"
#include "ops.h"
#include "quant.h"
#include "tokenizer/tokenizer.h"

/* Architectures (general.architecture). qwen2 = llama + biases on q/k/v + NEOX RoPE. */
enum model_arch { ARCH_LLAMA, ARCH_QWEN2 };

typedef struct model_config {
    int arch;         /* enum model_arch */
    int dim;          /* <arch>.embedding_length (keys below are <arch>.*, shown for llama) */
    int n_layers;     /* llama.block_count */
    int n_heads;      /* llama.attention.head_count */
    int n_kv_heads;   /* llama.attention.head_count_kv (GQA) */
    int head_dim;     /* dim / n_heads */
    int ffn_dim;      /* llama.feed_forward_length */
    int vocab_size;   /* rows of token_embd */
    int ctx_len;      /* llama.context_length */
    float norm_eps;   /* llama.attention.layer_norm_rms_epsilon */
    float rope_theta; /* llama.rope.freq_base (default 10000) */
    int rope_neox;    /* 1: NEOX pairs (qwen2); 0: llama.cpp's normal adjacent pairs (llama) */
    const float *rope_freqs; /* [head_dim/2] Llama 3 rope scaling divisors (rope_freqs.weight), or NULL */
} model_config;

/* The seven projections LoRA can adapt, in PEFT's names: q_proj k_proj v_proj o_proj gate_proj
 * up_proj down_proj; GGUF names attn_q attn_k attn_v attn_output ffn_gate ffn_up ffn_down. */
enum lora_target { LORA_Q, LORA_K, LORA_V, LORA_O, LORA_GATE, LORA_UP, LORA_DOWN, LORA_N_TARGETS };
extern const char *const lora_target_names[LORA_N_TARGETS];      /* "q", "k", ... "down" */
extern const char *const lora_target_gguf_names[LORA_N_TARGETS]; /* "attn_q", ... "ffn_down" */
extern const char *const lora_target_peft_names[LORA_N_TARGETS]; /* "self_attn.q_proj", ... "mlp.down_proj" */
/* Index of a target by short name ("q".."down"), or -1. */
int lora_target_index(const char *name);

typedef struct model_layer {
    float *attn_norm; /* [dim] */
    qmatrix w[LORA_N_TARGETS]; /* q [H*hd,dim], k,v [Hkv*hd,dim], o [dim,H*hd], gate,up [ffn,dim], down [dim,ffn] */
    float *bias[3];   /* q, k, v biases [out] (qwen2), NULL when absent */
    float *ffn_norm;  /* [dim] */
} model_layer;

/* Storage of the frozen base (config base.quant): f32, f16, bf16, q8_0 and nf4 convert the file's
 * weight matrices at load time (q8_0 falls back to f16 for rows not a multiple of 32, as llama.cpp's
 * quantizer does); keep uses the file's own tensor types. Norms and biases are always F32. The
 * forward and backward passes dequantize on the fly (ops.h qmatmul). */
enum base_quant { QUANT_F32, QUANT_F16, QUANT_BF16, QUANT_Q8_0, QUANT_NF4, QUANT_KEEP, QUANT_COUNT };
extern const char *const base_quant_names[QUANT_COUNT]; /* "f32", "f16", "bf16", "q8_0", "nf4", "keep" */
/* Index of a base.quant name, or -1. */
int base_quant_index(const char *name);

typedef struct model {
    model_config cfg;
    gguf_file gguf;     /* the base file (or Hugging Face directory), kept open for its metadata */
    tokenizer tok;
    int has_tokenizer;  /* 0 when the file's tokenizer kind is not supported (the model still runs) */
    char tokenizer_error[256];
    int quant;          /* enum base_quant it was loaded with */
    float *params;      /* norms, biases, rope factors and F32 weights: one allocation */
    uint8_t *qdata;     /* 16-bit and block-quantized weights: one allocation */
    size_t n_params;    /* elements of every weight matrix, norm and bias */
    size_t weight_bytes;/* bytes the base occupies in memory */
    int n_fallback;     /* matrices stored in a wider type than asked (row length) */
    qmatrix tok_embd;   /* [vocab, dim] */
    float *output_norm; /* [dim] */
    qmatrix output;     /* [vocab, dim] (token_embd when the file has no output.weight: tied) */
    model_layer *layers;/* [n_layers] */
} model;

/* Loads a llama or qwen2 model from a GGUF file (F32/F16/BF16 and ggml block types) or a Hugging
 * Face directory (config.json + safetensors), storing the weights as `quant` says, and its tokenizer
 * when supported. Returns 0, or -1 naming the file and the missing/mis-shaped tensor or key. */
int model_load_quant(model *m, const char *path, int quant);
/* Reads the hyper-parameters of a llama/qwen2 GGUF (or hf_open'ed directory) without loading weights
 * (rope_freqs stays NULL). Returns 0 or -1 naming the key. */
int model_read_config(const gguf_file *g, model_config *c);
/* Bytes a weight matrix of rows x cols stored in ggml type `src` occupies under base.quant `quant`;
 * *fallback is set when q8_0 falls back to f16. */
size_t model_matrix_bytes(int quant, uint32_t src, int64_t rows, int64_t cols, int *fallback);
/* Bytes of the activations and scratch acts_init allocates for B x T tokens at LoRA rank r. */
size_t acts_bytes(const model_config *c, int B, int T, int lora_r);
/* model_load_quant(m, path, QUANT_F32). */
int model_load(model *m, const char *path);
/* Fails (-1, naming the model) when the model has no usable tokenizer. */
int model_require_tokenizer(const model *m);
void model_free(model *m);
/* Input and output features of a projection (e.g. q: in dim, out n_heads*head_dim). */
void model_target_shape(const model_config *c, int target, int *in, int *out);

/* LoRA adapters (Hu et al. 2021): W' = W + (alpha / r) B A per adapted projection, A [r,in],
 * B [out,r]; A Kaiming-uniform (PEFT: bound 1/sqrt(in)), B zero. All A and B in one allocation. */
typedef struct lora_adapter {
    int r;
    float alpha;
    float scale;                 /* alpha / r */
    int enabled[LORA_N_TARGETS];
    int n_layers;
    float *params;               /* every A and B */
    size_t n_params;
    float **A;                   /* [n_layers * LORA_N_TARGETS], NULL where not enabled */
    float **B;
} lora_adapter;

/* Allocates adapters on the enabled targets (targets[t] != 0) and initialises them from seed. */
void lora_init(lora_adapter *a, const model_config *c, int r, float alpha, const int *targets, uint64_t seed);
void lora_free(lora_adapter *a);
/* Offsets of A/B of (layer, target) inside params, for views over a gradient buffer of the same layout. */
size_t lora_offset_A(const lora_adapter *a, int layer, int target);
size_t lora_offset_B(const lora_adapter *a, int layer, int target);
/* Saves the adapter as a llama.cpp LoRA GGUF (general.type=adapter, adapter.type=lora,
 * adapter.lora.alpha; tensors blk.N.<gguf name>.weight.lora_a [ne: in, r] and .lora_b [ne: r, out]). */
int lora_save(const lora_adapter *a, const model *m, const char *path);
/* Loads an adapter saved by lora_save (checks the shapes against the model). */
int lora_load(lora_adapter *a, const model *m, const char *path);

/* Rows of the output head computed at a time (bounds the logits buffer to HEAD_CHUNK x vocab). */
#define HEAD_CHUNK 256

/* Activations and scratch for micro-batches of up to B sequences of up to T tokens; allocated once. */
typedef struct acts {
    int B, T;            /* capacity */
    int cur_B, cur_T;    /* shape of the last forward */
    int n_sel;           /* rows with a target in the last forward */
    float *mem;          /* one allocation for every buffer below */
    int32_t *pos;        /* [B*T] position of each token inside its example */
    int32_t *seg_start;  /* [B*T] row position where each token's example starts (packed rows) */
    int packed;          /* the last forward had packed rows (seg_start in use) */
    float *x;            /* [L+1][N,dim] residual stream entering each layer; x[L] leaves the last */
    float *xn1, *rstd1;  /* [L][N,dim], [L][N] */
    float *q, *k, *v;    /* [L][N,H*hd], [L][N,Hkv*hd] x2 (after RoPE for q,k) */
    float *att;          /* [L][B,H,T,T] */
    float *atty;         /* [L][N,H*hd] attention output before o */
    float *xmid;         /* [L][N,dim] */
    float *xn2, *rstd2;  /* [L][N,dim], [L][N] */
    float *g, *u, *h;    /* [L][N,ffn] gate, up, silu(gate)*up */
    float *lu;           /* [L][7][N,r] LoRA inner activations x A^T */
    float *xf, *rstdf;   /* [N,dim], [N] final norm */
    int32_t *sel_row;    /* [N] row of each selected target */
    int32_t *sel_tgt;    /* [N] target id of each selected row */
    float *sel_x;        /* [N,dim] */
    float *logits;       /* [min(N, HEAD_CHUNK), vocab] one chunk of the selected rows' logits */
    float *losses;       /* [N] */
    /* backward scratch */
    float *dx, *dxn, *dsel, *dxf;    /* [N,dim], [N,dim], [N,dim], [N,dim] */
    float *dq, *dk, *dv, *datty;     /* [N,H*hd], [N,Hkv*hd] x2, [N,H*hd] */
    float *dg, *du, *dh;             /* [N,ffn] */
    float *dlu;                      /* [N,r] */
    float *att_scratch;              /* ops_attention_scratch_size(T) */
    float *qscratch;                 /* QMATMUL_TILE + max feature size: dequantized weight tiles */
    rope_cache rope;                 /* cos/sin for positions 0..T-1 */
    int lora_r;
    int inference;       /* set to 1 when no backward will follow: the forward then skips the head's
                            gradient (training leaves it 0) */
    int kv_f16;          /* inference only: round K and V to IEEE half before attention, as llama.cpp's
                            default F16 KV cache does (to compare with figures taken with it) */
} acts;

void acts_init(acts *s, const model_config *c, int B, int T, int lora_r);
void acts_free(acts *s);

/* Forward pass over tokens [B,T] (row b's positions are 0..T-1). targets [B,T]: the id each
 * position must predict, -1 for none (prompt, padding); the head runs only on rows with a target.
 * Returns the summed cross-entropy over targets (nats) and stores their count in s->n_sel.
 * target_logprob [B,T], when not NULL, receives log p(target) per position (0 where none).
 * lora may be NULL (base model). all_logits [B*T, vocab], when not NULL, receives the logits of
 * every position (for checks against llama.cpp; costs a full head). */
double model_forward(const model *m, const lora_adapter *lora, acts *s,
                     const int32_t *tokens, const int32_t *targets, int B, int T,
                     float *target_logprob, float *all_logits);

/* Forward pass over packed rows: each row of tokens [B,T] holds several examples back to back.
 * pos [B,T] gives each token's position inside its own example (RoPE restarts per example) and
 * seg_start [B,T] the row position where its example starts (attention never crosses examples).
 * Targets must not cross examples either (the caller sets -1 on each example's last token).
 * Otherwise as model_forward, which is this with pos = t and one example per row. */
double model_forward_packed(const model *m, const lora_adapter *lora, acts *s,
                            const int32_t *tokens, const int32_t *targets, const int32_t *pos,
                            const int32_t *seg_start, int B, int T, float *target_logprob, float *all_logits);

/* Backward pass of the last forward (which must not have had s->inference set): dlora (same layout
 * as lora->params) += d(loss_scale * summed loss)/d(lora params). Frozen weights get no gradient. */
void model_backward(const model *m, const lora_adapter *lora, acts *s, float *dlora,
                    float loss_scale);

#endif
