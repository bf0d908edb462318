/* mix.h — the file types of a merged model as llama.cpp names them (f32, f16, bf16, q8_0, q4_0, q4_k_m,
 * q5_k_m, q6_k) and the ggml type each tensor gets in one. The rules are llama.cpp's llama-quantize
 * without --pure (src/llama-quant.cpp, llama_tensor_get_type), for the llama and qwen2 tensors slimtune
 * writes:
 *   - only matrices whose name ends in "weight" and holds no "_norm" are converted (norms, biases and
 *     rope_freqs keep their type);
 *   - quantized types: the output matrix (output.weight, or token_embd.weight when the embeddings are
 *     tied) becomes Q6_K, or Q8_0 when its rows do not fit the default type's blocks, and stays Q8_0 in
 *     q8_0 files;
 *   - q4_k_m and q5_k_m: attn_v.weight and ffn_down.weight of the layers use_more_bits picks (the first
 *     and last eighth of the layers and every third in between) become Q6_K;
 *   - a row length a type's blocks do not divide falls back (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0,
 *     then F16; where llama.cpp gives up — Q8_0 or Q4_0 rows that do not fit — F16). */
#ifndef SLIM_MIX_H
#define SLIM_MIX_H

#include <stdint.h>

#include "format/gguf.h"

/* A merged-model file type: its name, llama.cpp's LLAMA_FTYPE_* number (general.file_type) and the
 * default ggml type of its matrices. */
typedef struct file_type {
    const char *name;
    uint32_t ftype;
    uint32_t type;
    int k_mix; /* q4_k_m / q5_k_m: attn_v and ffn_down get more bits in some layers */
} file_type;

/* The file type named `name` ("q4_k_m", case-insensitive), or NULL. */
const file_type *file_type_find(const char *name);
/* The names file_type_find knows, ", "-separated (for error messages). */
extern const char file_type_names[];

/* Whether llama-quantize converts tensor t: a matrix (2-D or more) whose name ends in "weight" and does
 * not contain "_norm". */
int tensor_mix_wanted(const gguf_tensor *t);

/* The per-file state llama_tensor_get_type keeps: whether the model has an output matrix of its own,
 * and the attn_v / ffn_down matrices counted so far. */
typedef struct tensor_mix {
    const file_type *ft;
    int has_output;
    int n_attn_v, i_attn_v;
    int n_ffn_down, i_ffn_down;
} tensor_mix;

/* Starts the mix of file type ft over the tensors of g. */
void tensor_mix_init(tensor_mix *m, const file_type *ft, const gguf_file *g);
/* The type tensor t gets (its own when it is not converted). Call once per tensor, in file order:
 * the layer rules count attn_v and ffn_down matrices as they pass. */
uint32_t tensor_mix_type(tensor_mix *m, const gguf_tensor *t);

#endif
