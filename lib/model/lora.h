/* lora.h — LoRA adapters (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"):
 * W' = W + (alpha / r) B A on each adapted projection, A [r,in], B [out,r]; their llama.cpp LoRA GGUF
 * file (save, load), their tensor names, and the merge of one delta into a weight.
 *
 * Tensor names follow llama.cpp: blk.N.<gguf target name>.weight is the base projection,
 * blk.N.<gguf target name>.weight.lora_a [ne: in, r] and .lora_b [ne: r, out] its adapter. */
#ifndef SLIM_LORA_H
#define SLIM_LORA_H

#include <stddef.h>
#include <stdint.h>

struct model;
struct model_config;

/* The seven projections LoRA can adapt, in PEFT's names: q_proj k_proj v_proj o_proj gate_proj
 * up_proj down_proj; GGUF names attn_q attn_k attn_v attn_output ffn_gate ffn_up ffn_down. */
enum lora_target { LORA_Q, LORA_K, LORA_V, LORA_O, LORA_GATE, LORA_UP, LORA_DOWN, LORA_N_TARGETS };
extern const char *const lora_target_names[LORA_N_TARGETS];      /* "q", "k", ... "down" */
extern const char *const lora_target_gguf_names[LORA_N_TARGETS]; /* "attn_q", ... "ffn_down" */
extern const char *const lora_target_peft_names[LORA_N_TARGETS]; /* "self_attn.q_proj", ... "mlp.down_proj" */
/* Index of a target by short name ("q".."down"), or -1. */
int lora_target_index(const char *name);

/* Parses a projection tensor name "blk.N.<gguf target name>.weight", optionally followed by ".lora_a"
 * or ".lora_b" and nothing else. Sets *layer = N (not range-checked), *target, and *part = 0 (the base
 * weight), 'a' or 'b'. Returns 0, or -1 when name is not of that form. */
int lora_parse_tensor_name(const char *name, int *layer, int *target, char *part);

/* LoRA adapters on the enabled targets of every layer; A Kaiming-uniform (PEFT: bound 1/sqrt(in)),
 * B zero. All A and B in one allocation. */
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
void lora_init(lora_adapter *a, const struct model_config *c, int r, float alpha, const int *targets, uint64_t seed);
/* Frees the adapter's parameters and views; *a is zeroed. */
void lora_free(lora_adapter *a);
/* Offsets of A/B of (layer, target) inside params, for views over a gradient buffer of the same layout. */
size_t lora_offset_A(const lora_adapter *a, int layer, int target);
size_t lora_offset_B(const lora_adapter *a, int layer, int target);
/* Merges the delta of (layer, target) into its base weight: W [out,in] (row-major F32) +=
 * (alpha / r) B A. The target must be enabled; in, out as model_target_shape gives them. */
void lora_merge(float *W, const lora_adapter *a, int layer, int target, int in, int out);
/* Saves the adapter as a llama.cpp LoRA GGUF (general.type=adapter, adapter.type=lora,
 * adapter.lora.alpha; tensors blk.N.<gguf name>.weight.lora_a [ne: in, r] and .lora_b [ne: r, out]).
 * Returns 0, or -1 with the writer's error. */
int lora_save(const lora_adapter *a, const struct model *m, const char *path);
/* Loads an adapter saved by lora_save: the targets and rank of layer 0, the same on every layer,
 * F32, finite, of the model's shapes, and no other tensor; or, when path is a directory, a PEFT
 * adapter directory (peft_load, peft.h). Returns 0, or -1 naming what is wrong. */
int lora_load(lora_adapter *a, const struct model *m, const char *path);

#endif
