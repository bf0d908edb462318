/* mix.c — merged-model file types and llama.cpp's per-tensor type rules; see mix.h. */
#include "mix.h"

#include <string.h>
#include <strings.h>

#include "model/quant.h"

/* LLAMA_FTYPE_*: ALL_F32 0, MOSTLY_F16 1, Q4_0 2, Q8_0 7, Q4_K_M 15, Q5_K_M 17, Q6_K 18, BF16 32. */
static const file_type file_types[] = {
    {"f32", 0, GGML_TYPE_F32, 0},     {"f16", 1, GGML_TYPE_F16, 0},      {"bf16", 32, GGML_TYPE_BF16, 0},
    {"q8_0", 7, GGML_TYPE_Q8_0, 0},   {"q4_0", 2, GGML_TYPE_Q4_0, 0},    {"q4_k_m", 15, GGML_TYPE_Q4_K, 1},
    {"q5_k_m", 17, GGML_TYPE_Q5_K, 1}, {"q6_k", 18, GGML_TYPE_Q6_K, 0},
};
const char file_type_names[] = "f32, f16, bf16, q8_0, q4_0, q4_k_m, q5_k_m, q6_k";

const file_type *file_type_find(const char *name) {
    for (size_t i = 0; i < sizeof file_types / sizeof file_types[0]; i++)
        if (!strcasecmp(name, file_types[i].name)) return &file_types[i];
    return NULL;
}

/* Whether s ends with suffix. */
static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

int tensor_mix_wanted(const gguf_tensor *t) {
    return t->n_dims >= 2 && ends_with(t->name, "weight") && !strstr(t->name, "_norm.weight");
}

void tensor_mix_init(tensor_mix *m, const file_type *ft, const gguf_file *g) {
    memset(m, 0, sizeof *m);
    m->ft = ft;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const char *name = g->tensors[i].name;
        if (strstr(name, "attn_v.weight")) m->n_attn_v++;
        if (strstr(name, "ffn_down")) m->n_ffn_down++;
        if (!strcmp(name, "output.weight")) m->has_output = 1;
    }
}

/* llama.cpp's use_more_bits: layer i of n gets more bits. */
static int use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* Whether a ggml type is one of the block-quantized ones (not F32, F16, BF16). */
static int type_is_quantized(uint32_t type) {
    return type != GGML_TYPE_F32 && type != GGML_TYPE_F16 && type != GGML_TYPE_BF16;
}

uint32_t tensor_mix_type(tensor_mix *m, const gguf_tensor *t) {
    if (!tensor_mix_wanted(t)) return t->type;
    const file_type *ft = m->ft;
    uint32_t type = ft->type;
    if (!type_is_quantized(type)) return type;
    const int64_t cols = t->ne[0];
    if (!strcmp(t->name, "output.weight") || (!m->has_output && !strcmp(t->name, "token_embd.weight"))) {
        if (!quant_type_fits(type, cols)) type = GGML_TYPE_Q8_0;
        else if (type != GGML_TYPE_Q8_0) type = GGML_TYPE_Q6_K;
    } else if (strstr(t->name, "attn_v.weight")) {
        if (ft->k_mix && use_more_bits(m->i_attn_v, m->n_attn_v)) type = GGML_TYPE_Q6_K;
        m->i_attn_v++;
    } else if (strstr(t->name, "ffn_down")) {
        if (ft->k_mix && use_more_bits(m->i_ffn_down, m->n_ffn_down)) type = GGML_TYPE_Q6_K;
        m->i_ffn_down++;
    }
    return quant_fallback_type(type, cols);
}
