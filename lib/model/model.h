/* model.h — a llama-architecture transformer (token embedding, RMSNorm, RoPE, causal grouped-query
 * attention, SwiGLU, output head) with LoRA adapters: loading from GGUF (model.c), forward and
 * backward (forward.c). The adapters are in lora.h, the saved activations in acts.h.
 *
 * Follow a token: embedding row -> per layer [RMSNorm -> q,k,v (+LoRA) -> RoPE -> causal GQA
 * attention -> o (+LoRA) -> residual -> RMSNorm -> gate,up (+LoRA) -> SwiGLU -> down (+LoRA) ->
 * residual] -> final RMSNorm -> output head -> logits. Tensor names follow llama.cpp's GGUF
 * convention (token_embd, blk.N.attn_q, ..., output_norm, output). */
#ifndef SLIM_MODEL_H
#define SLIM_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "acts.h"
#include "format/gguf.h"
#include "lora.h"
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
/* model_load_quant(m, path, QUANT_F32). */
int model_load(model *m, const char *path);
/* Fails (-1, naming the model) when the model has no usable tokenizer. */
int model_require_tokenizer(const model *m);
/* Frees the weights, the tokenizer and the open file; *m is zeroed (safe after a failed load). */
void model_free(model *m);
/* Input and output features of a projection (e.g. q: in dim, out n_heads*head_dim). */
void model_target_shape(const model_config *c, int target, int *in, int *out);
/* llama's q/k projections in GGUF hold the Hugging Face rows permuted for adjacent-pair RoPE (llama.cpp's
 * converter, LlamaModel.permute): within each head of hd rows, Hugging Face row j * hd/2 + i is GGUF row
 * 2i + j. Returns the GGUF row of Hugging Face row `row`. Models with neox RoPE (qwen2) are not permuted. */
int64_t model_qk_gguf_row(int64_t row, int hd);

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

/* Greedy decoding: continues tokens [n_prompt] with the argmax token of each step, up to max_new tokens
 * (appended to tokens, which holds n_prompt + max_new), stopping before EOS or before `stop` (another
 * end token, e.g. a chat template's end of turn; -1: none). Each step is a forward over the whole
 * sequence (no KV cache) with the head on its last position only; a: inference activations of one row of
 * at least n_prompt + max_new - 1 tokens; targets: scratch of as many. Returns the tokens generated, *stopped
 * 1 when an end token came. */
int model_generate_greedy(const model *m, const lora_adapter *lora, acts *a, int32_t *tokens, int32_t *targets,
                          int n_prompt, int max_new, int32_t stop, int *stopped);

/* model_forward_packed where a token may also see a shared prefix of its row: prefix [B,T] (NULL: none)
 * gives, per token, the row positions 0 .. prefix-1 it attends to besides its own segment seg_start ..
 * itself (prefix <= seg_start). Scoring many completions after one prompt puts the prompt once at the
 * row's start and each completion in a segment of its own with prefix = the prompt's length (forward
 * only: a backward of it aborts). */
double model_forward_prefix(const model *m, const lora_adapter *lora, acts *s, const int32_t *tokens,
                            const int32_t *targets, const int32_t *pos, const int32_t *seg_start, const int32_t *prefix,
                            int B, int T, float *target_logprob, float *all_logits);

/* Backward pass of the last forward (which must not have had s->inference set, as acts_init_inference
 * does: aborts with a message): dlora (same layout as lora->params) += d(loss_scale * summed
 * loss)/d(lora params). Frozen weights get no gradient. With an ACTS_CHECKPOINT acts it reruns each
 * layer's forward (all but the last, whose activations the slot still holds) before that layer's
 * backward: the same gradients, bit for bit, for about a third more arithmetic. */
void model_backward(const model *m, const lora_adapter *lora, acts *s, float *dlora,
                    float loss_scale);

#endif
