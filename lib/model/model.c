/* model.c — llama forward/backward with LoRA; see model.h. */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common.h"
#include "format/model_file.h"
#include "ops.h"

const char *const lora_target_names[LORA_N_TARGETS] = {"q", "k", "v", "o", "gate", "up", "down"};
const char *const lora_target_gguf_names[LORA_N_TARGETS] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                                            "ffn_gate", "ffn_up", "ffn_down"};
const char *const lora_target_peft_names[LORA_N_TARGETS] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};

int lora_target_index(const char *name) {
    for (int t = 0; t < LORA_N_TARGETS; t++)
        if (strcmp(name, lora_target_names[t]) == 0) return t;
    return -1;
}

void model_target_shape(const model_config *c, int target, int *in, int *out) {
    int qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    switch (target) {
    case LORA_Q: *in = c->dim; *out = qd; break;
    case LORA_K: case LORA_V: *in = c->dim; *out = kvd; break;
    case LORA_O: *in = qd; *out = c->dim; break;
    case LORA_GATE: case LORA_UP: *in = c->dim; *out = c->ffn_dim; break;
    default: *in = c->ffn_dim; *out = c->dim; break;
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* loading */

const char *const base_quant_names[QUANT_COUNT] = {"f32", "f16", "bf16", "q8_0", "nf4", "keep"};

int base_quant_index(const char *name) {
    for (int q = 0; q < QUANT_COUNT; q++)
        if (strcmp(name, base_quant_names[q]) == 0) return q;
    return -1;
}

int model_require_tokenizer(const model *m) {
    if (m->has_tokenizer) return 0;
    return slim_set_error("%s: no usable tokenizer: %s", m->gguf.path, m->tokenizer_error);
}

static int model_read_u32(const gguf_file *g, const char *arch, const char *key, int *out, int required, int dflt) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    uint32_t v;
    if (!gguf_find_kv(g, full)) {
        if (required) return slim_set_error("%s: missing metadata key %s", g->path, full);
        *out = dflt;
        return 0;
    }
    if (gguf_get_u32(g, full, &v) != 0) return -1;
    if (v == 0 || v > (1u << 24)) return slim_set_error("%s: %s = %u is out of range", g->path, full, v);
    *out = (int)v;
    return 0;
}

static int model_read_f32(const gguf_file *g, const char *arch, const char *key, float *out) {
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    if (!gguf_find_kv(g, full)) return 0; /* keep the default */
    if (gguf_get_f32(g, full, out) != 0) return -1;
    if (!isfinite(*out) || *out <= 0.0f) return slim_set_error("%s: %s = %g is out of range", g->path, full, *out);
    return 0;
}

/* Finds tensor `name` and checks its shape is [ne0, ne1] (ne1 = 1 for vectors). */
static const gguf_tensor *model_find(const gguf_file *g, const char *name, int64_t ne0, int64_t ne1) {
    const gguf_tensor *t = gguf_find_tensor(g, name);
    if (!t) {
        slim_set_error("%s: missing tensor %s", g->path, name);
        return NULL;
    }
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1) {
        slim_set_error("%s: tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]", g->path, name,
                       (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                       (long long)ne0, (long long)ne1);
        return NULL;
    }
    if (!quant_type_fits(t->type, ne0) || gguf_row_size(t->type, ne0) == 0) {
        slim_set_error("%s: tensor %s has type %s, which slimtune cannot read", g->path, name, gguf_type_name(t->type));
        return NULL;
    }
    return t;
}

/* Dequantizes a whole tensor of rows x cols into dst (F32), checking every value is finite. */
static int model_tensor_to_f32(const gguf_file *g, const gguf_tensor *t, int64_t rows, int64_t cols, float *dst) {
    size_t rb = gguf_row_size(t->type, cols);
    for (int64_t r = 0; r < rows; r++)
        if (quant_dequantize_row(t->type, (const uint8_t *)t->data + (size_t)r * rb, dst + (size_t)r * cols, cols) != 0)
            return slim_set_error("%s: tensor %s: cannot decode type %s", g->path, t->name, gguf_type_name(t->type));
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        if (!isfinite(dst[i]))
            return slim_set_error("%s: tensor %s has a non-finite value at element %zu", g->path, t->name, i);
    return 0;
}

/* The storage type of a weight matrix with rows of `cols` read from type `src` under `quant`. */
static uint32_t model_storage_type(int quant, uint32_t src, int64_t cols) {
    switch (quant) {
    case QUANT_F32: return GGML_TYPE_F32;
    case QUANT_F16: return GGML_TYPE_F16;
    case QUANT_BF16: return GGML_TYPE_BF16;
    case QUANT_Q8_0: return quant_type_fits(GGML_TYPE_Q8_0, cols) ? GGML_TYPE_Q8_0 : GGML_TYPE_F16;
    case QUANT_NF4: return SLIM_TYPE_NF4;
    default: return src;
    }
}

size_t model_matrix_bytes(int quant, uint32_t src, int64_t rows, int64_t cols, int *fallback) {
    uint32_t type = model_storage_type(quant, src, cols);
    *fallback = quant == QUANT_Q8_0 && type != GGML_TYPE_Q8_0;
    if (type == SLIM_TYPE_NF4) {
        size_t n = (size_t)rows * cols, blocks = (n + NF4_BLOCK - 1) / NF4_BLOCK;
        return (n + 1) / 2 + blocks + 4 * ((blocks + NF4_DQ_BLOCK - 1) / NF4_DQ_BLOCK) + 4;
    }
    return gguf_row_size(type, cols) * (size_t)rows;
}

/* Loading state: a bump allocator over the two weight allocations, sized by a first pass. */
typedef struct model_loader {
    model *m;
    int sizing;        /* first pass: only count */
    size_t n_f32, n_qbytes;
    size_t f32_used, q_used;
    float *scratch;    /* F32 copy of the largest matrix (conversions) */
    size_t scratch_cap;
} model_loader;

static float *loader_f32(model_loader *ld, size_t n) {
    if (ld->sizing) { ld->n_f32 += n; return NULL; }
    float *p = ld->m->params + ld->f32_used;
    ld->f32_used += n;
    return p;
}

/* Loads a vector tensor (norm, bias, rope factors) as F32. */
static int loader_vector(model_loader *ld, const char *name, int64_t n, float **dst, int required) {
    const gguf_file *g = &ld->m->gguf;
    *dst = NULL;
    if (!required && !gguf_find_tensor(g, name)) return 0;
    const gguf_tensor *t = model_find(g, name, n, 1);
    if (!t) return -1;
    float *p = loader_f32(ld, (size_t)n);
    ld->m->n_params += ld->sizing ? (size_t)n : 0;
    if (ld->sizing) return 0;
    *dst = p;
    ld->m->weight_bytes += sizeof(float) * (size_t)n;
    return model_tensor_to_f32(g, t, 1, n, p);
}

/* Loads a weight matrix [rows = ne1, cols = ne0] into W in its storage type. */
static int loader_matrix(model_loader *ld, const char *name, int64_t cols, int64_t rows, qmatrix *W) {
    model *m = ld->m;
    const gguf_file *g = &m->gguf;
    const gguf_tensor *t = model_find(g, name, cols, rows);
    if (!t) return -1;
    uint32_t type = model_storage_type(m->quant, t->type, cols);
    size_t n = (size_t)rows * cols;
    if (ld->sizing) {
        m->n_params += n;
        if (type == GGML_TYPE_F32) ld->n_f32 += (m->quant == QUANT_KEEP && t->type == GGML_TYPE_F32) ? 0 : n;
        else if (type != SLIM_TYPE_NF4 && !(m->quant == QUANT_KEEP)) ld->n_qbytes += gguf_row_size(type, cols) * rows;
        if (n > ld->scratch_cap) ld->scratch_cap = n;
        if (m->quant == QUANT_Q8_0 && type != GGML_TYPE_Q8_0) m->n_fallback++;
        return 0;
    }
    W->rows = rows;
    W->cols = cols;
    W->type = type;
    W->nf4 = NULL;
    if (type == SLIM_TYPE_NF4) {
        if (model_tensor_to_f32(g, t, rows, cols, ld->scratch) != 0) return -1;
        W->nf4 = slim_malloc(sizeof(nf4_tensor));
        nf4_quantize(W->nf4, ld->scratch, n);
        W->data = NULL;
        W->row_bytes = 0;
    } else if (m->quant == QUANT_KEEP) {
        /* the file's own bytes, in place (the mapping stays open); decoded once into scratch only to
         * check that every value is finite */
        W->data = t->data;
        W->row_bytes = gguf_row_size(type, cols);
        if (model_tensor_to_f32(g, t, rows, cols, ld->scratch) != 0) return -1;
    } else if (type == GGML_TYPE_F32) {
        float *p = loader_f32(ld, n);
        if (model_tensor_to_f32(g, t, rows, cols, p) != 0) return -1;
        W->data = (const uint8_t *)p;
        W->row_bytes = sizeof(float) * cols;
    } else {
        if (model_tensor_to_f32(g, t, rows, cols, ld->scratch) != 0) return -1;
        W->row_bytes = gguf_row_size(type, cols);
        uint8_t *p = m->qdata + ld->q_used;
        ld->q_used += W->row_bytes * rows;
        for (int64_t r = 0; r < rows; r++)
            quant_quantize_row(type, ld->scratch + (size_t)r * cols, p + (size_t)r * W->row_bytes, cols);
        W->data = p;
    }
    m->weight_bytes += qmatrix_nbytes(W);
    return 0;
}

/* One pass over every tensor of the model (sizing or filling). */
static int model_load_tensors(model_loader *ld) {
    model *m = ld->m;
    const model_config *c = &m->cfg;
    char name[128];
    int has_output = gguf_find_tensor(&m->gguf, "output.weight") != NULL;
    if (loader_matrix(ld, "token_embd.weight", c->dim, c->vocab_size, &m->tok_embd)) return -1;
    if (has_output) {
        if (loader_matrix(ld, "output.weight", c->dim, c->vocab_size, &m->output)) return -1;
    } else if (!ld->sizing) {
        m->output = m->tok_embd; /* tied embeddings */
    }
    if (loader_vector(ld, "output_norm.weight", c->dim, &m->output_norm, 1)) return -1;
    float *freqs = NULL;
    if (loader_vector(ld, "rope_freqs.weight", c->head_dim / 2, &freqs, 0)) return -1;
    if (!ld->sizing) m->cfg.rope_freqs = freqs;
    for (int l = 0; l < c->n_layers; l++) {
        model_layer *L = &m->layers[l];
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        if (loader_vector(ld, name, c->dim, &L->attn_norm, 1)) return -1;
        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", l);
        if (loader_vector(ld, name, c->dim, &L->ffn_norm, 1)) return -1;
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            int in, out;
            model_target_shape(c, t, &in, &out);
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, lora_target_gguf_names[t]);
            if (loader_matrix(ld, name, in, out, &L->w[t])) return -1;
            if (t <= LORA_V) {
                snprintf(name, sizeof name, "blk.%d.%s.bias", l, lora_target_gguf_names[t]);
                if (loader_vector(ld, name, out, &L->bias[t], c->arch == ARCH_QWEN2)) return -1;
            }
        }
    }
    return 0;
}

int model_read_config(const gguf_file *g, model_config *c) {
    const char *arch = gguf_get_str(g, "general.architecture");
    if (!arch) return -1;
    memset(c, 0, sizeof *c);
    if (strcmp(arch, "llama") == 0) c->arch = ARCH_LLAMA;
    else if (strcmp(arch, "qwen2") == 0) c->arch = ARCH_QWEN2;
    else {
        slim_set_error("%s: general.architecture is '%s'; supported: llama, qwen2", g->path, arch);
        return -1;
    }
    c->rope_neox = c->arch == ARCH_QWEN2;
    if (model_read_u32(g, arch, "embedding_length", &c->dim, 1, 0) || model_read_u32(g, arch, "block_count", &c->n_layers, 1, 0) ||
        model_read_u32(g, arch, "attention.head_count", &c->n_heads, 1, 0) ||
        model_read_u32(g, arch, "attention.head_count_kv", &c->n_kv_heads, 0, c->n_heads) ||
        model_read_u32(g, arch, "feed_forward_length", &c->ffn_dim, 1, 0) ||
        model_read_u32(g, arch, "context_length", &c->ctx_len, 0, 2048))
        return -1;
    /* every layer has at least 9 tensors (2 norms, 7 projections): a block count the file cannot hold is
     * refused before anything is sized by it */
    if ((uint64_t)c->n_layers > g->n_tensors / 9)
        return slim_set_error("%s: %s.block_count = %d, but the file holds only %llu tensors (9 or more per layer)",
                              g->path, arch, c->n_layers, (unsigned long long)g->n_tensors);
    c->norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    if (model_read_f32(g, arch, "attention.layer_norm_rms_epsilon", &c->norm_eps) ||
        model_read_f32(g, arch, "rope.freq_base", &c->rope_theta))
        return -1;
    if (c->dim % c->n_heads != 0 || c->n_heads % c->n_kv_heads != 0) {
        slim_set_error("%s: embedding_length %d / head_count %d / head_count_kv %d do not divide", g->path, c->dim,
                       c->n_heads, c->n_kv_heads);
        return -1;
    }
    c->head_dim = c->dim / c->n_heads;
    if (c->head_dim % 2) { slim_set_error("%s: head dimension %d is odd; RoPE needs pairs", g->path, c->head_dim); return -1; }
    int rope_dims;
    if (model_read_u32(g, arch, "rope.dimension_count", &rope_dims, 0, c->head_dim)) return -1;
    if (rope_dims != c->head_dim) {
        slim_set_error("%s: %s.rope.dimension_count %d != head dimension %d (partial RoPE is not supported)", g->path,
                       arch, rope_dims, c->head_dim);
        return -1;
    }
    const gguf_tensor *te = gguf_find_tensor(g, "token_embd.weight");
    if (!te) { slim_set_error("%s: missing tensor token_embd.weight", g->path); return -1; }
    if (te->ne[1] <= 0 || te->ne[1] > (1 << 24)) { slim_set_error("%s: token_embd.weight has a bad vocabulary size", g->path); return -1; }
    c->vocab_size = (int)te->ne[1];
    return 0;
}

int model_load_quant(model *m, const char *path, int quant) {
    memset(m, 0, sizeof *m);
    if (quant < 0 || quant >= QUANT_COUNT) return slim_set_error("%s: unknown base quantization %d", path, quant);
    m->quant = quant;
    if (slim_model_open(&m->gguf, path) != 0) return -1;
    gguf_file *g = &m->gguf;
    model_config *c = &m->cfg;
    model_loader ld = {.m = m, .sizing = 1};
    if (model_read_config(g, c) != 0) goto fail;
    /* the GGUF's own vocabulary, or for a Hugging Face directory its tokenizer.json */
    if (tokenizer_init_model(&m->tok, g, path) == 0) {
        m->has_tokenizer = 1;
        if (m->tok.n_vocab > c->vocab_size) {
            slim_set_error("%s: tokenizer has %d tokens but token_embd.weight has only %d rows", path, m->tok.n_vocab,
                           c->vocab_size);
            goto fail;
        }
    } else {
        snprintf(m->tokenizer_error, sizeof m->tokenizer_error, "%s", slim_last_error());
    }

    /* pass 1 sizes the two weight allocations, pass 2 fills them */
    m->layers = slim_calloc(c->n_layers, sizeof(model_layer));
    if (model_load_tensors(&ld) != 0) goto fail;
    m->params = slim_malloc(ld.n_f32 * sizeof(float));
    m->qdata = slim_malloc(ld.n_qbytes);
    ld.scratch = slim_malloc(ld.scratch_cap * sizeof(float));
    ld.sizing = 0;
    if (model_load_tensors(&ld) != 0) goto fail;
    free(ld.scratch);
    if (quant != QUANT_KEEP && !slim_model_is_dir(path) && m->gguf.map) {
        /* the weights were converted: the file's pages are no longer needed in memory */
        madvise((void *)m->gguf.map, m->gguf.map_size, MADV_DONTNEED);
    }
    return 0;
fail:
    free(ld.scratch);
    model_free(m);
    return -1;
}

int model_load(model *m, const char *path) { return model_load_quant(m, path, QUANT_F32); }

void model_free(model *m) {
    if (m->layers) {
        for (int l = 0; l < m->cfg.n_layers; l++)
            for (int t = 0; t < LORA_N_TARGETS; t++)
                if (m->layers[l].w[t].nf4) { nf4_free(m->layers[l].w[t].nf4); free(m->layers[l].w[t].nf4); }
    }
    if (m->tok_embd.nf4) { nf4_free(m->tok_embd.nf4); free(m->tok_embd.nf4); }
    if (m->output.nf4 && m->output.nf4 != m->tok_embd.nf4) { nf4_free(m->output.nf4); free(m->output.nf4); }
    free(m->params);
    free(m->qdata);
    free(m->layers);
    if (m->has_tokenizer) tokenizer_free(&m->tok);
    if (m->gguf.path || m->gguf.map) gguf_close(&m->gguf);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------------------------------------- */
/* LoRA adapters */

void lora_init(lora_adapter *a, const model_config *c, int r, float alpha, const int *targets, uint64_t seed) {
    memset(a, 0, sizeof *a);
    a->r = r;
    a->alpha = alpha;
    a->scale = alpha / (float)r;
    a->n_layers = c->n_layers;
    size_t n = 0;
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        a->enabled[t] = targets[t] != 0;
        if (!a->enabled[t]) continue;
        int in, out;
        model_target_shape(c, t, &in, &out);
        n += (size_t)r * (in + out) * c->n_layers;
    }
    a->n_params = n;
    a->params = slim_calloc(n, sizeof(float));
    a->A = slim_calloc((size_t)c->n_layers * LORA_N_TARGETS, sizeof(float *));
    a->B = slim_calloc((size_t)c->n_layers * LORA_N_TARGETS, sizeof(float *));
    slim_rng rng;
    slim_rng_seed(&rng, seed);
    float *p = a->params;
    for (int l = 0; l < c->n_layers; l++) {
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            if (!a->enabled[t]) continue;
            int in, out;
            model_target_shape(c, t, &in, &out);
            float *A = a->A[l * LORA_N_TARGETS + t] = p;
            p += (size_t)r * in;
            a->B[l * LORA_N_TARGETS + t] = p; /* zero: the adapted model starts equal to the base */
            p += (size_t)out * r;
            /* Kaiming-uniform with a = sqrt(5) as PEFT/torch.nn.Linear: bound = 1/sqrt(fan_in) */
            float bound = 1.0f / sqrtf((float)in);
            for (size_t i = 0; i < (size_t)r * in; i++) A[i] = (2.0f * slim_rng_uniform(&rng) - 1.0f) * bound;
        }
    }
}

void lora_free(lora_adapter *a) {
    free(a->params);
    free(a->A);
    free(a->B);
    memset(a, 0, sizeof *a);
}

size_t lora_offset_A(const lora_adapter *a, int layer, int target) {
    return (size_t)(a->A[layer * LORA_N_TARGETS + target] - a->params);
}

size_t lora_offset_B(const lora_adapter *a, int layer, int target) {
    return (size_t)(a->B[layer * LORA_N_TARGETS + target] - a->params);
}

int lora_save(const lora_adapter *a, const model *m, const char *path) {
    gguf_writer *w = gguf_writer_init();
    const char *arch = gguf_find_kv(&m->gguf, "general.architecture") ? gguf_get_str(&m->gguf, "general.architecture") : NULL;
    gguf_writer_set_str(w, "general.architecture", arch ? arch : "llama");
    gguf_writer_set_str(w, "general.type", "adapter");
    gguf_writer_set_str(w, "general.name", "slimtune LoRA adapter");
    gguf_writer_set_str(w, "adapter.type", "lora");
    gguf_writer_set_f32(w, "adapter.lora.alpha", a->alpha);
    char name[128];
    int rc = 0;
    for (int l = 0; l < a->n_layers && rc == 0; l++) {
        for (int t = 0; t < LORA_N_TARGETS && rc == 0; t++) {
            if (!a->enabled[t]) continue;
            int in, out;
            model_target_shape(&m->cfg, t, &in, &out);
            int64_t neA[2] = {in, a->r}, neB[2] = {a->r, out};
            snprintf(name, sizeof name, "blk.%d.%s.weight.lora_a", l, lora_target_gguf_names[t]);
            rc = gguf_writer_add_tensor(w, name, GGML_TYPE_F32, 2, neA, a->A[l * LORA_N_TARGETS + t]);
            snprintf(name, sizeof name, "blk.%d.%s.weight.lora_b", l, lora_target_gguf_names[t]);
            if (rc == 0) rc = gguf_writer_add_tensor(w, name, GGML_TYPE_F32, 2, neB, a->B[l * LORA_N_TARGETS + t]);
        }
    }
    if (rc == 0) rc = gguf_writer_write(w, path);
    gguf_writer_free(w);
    return rc;
}

int lora_load(lora_adapter *a, const model *m, const char *path) {
    gguf_file g;
    memset(a, 0, sizeof *a);
    if (gguf_open(&g, path) != 0) return -1;
    const char *type = gguf_get_str(&g, "adapter.type");
    const char *arch = gguf_get_str(&g, "general.architecture");
    const char *model_arch = gguf_get_str(&m->gguf, "general.architecture");
    float alpha;
    if (!type || strcmp(type, "lora") != 0) {
        slim_set_error("%s: adapter.type is not 'lora'", path);
        goto fail;
    }
    if (!arch || !model_arch || strcmp(arch, model_arch) != 0) {
        slim_set_error("%s: general.architecture '%s' does not match the base model's '%s'", path, arch ? arch : "?",
                       model_arch ? model_arch : "?");
        goto fail;
    }
    if (gguf_get_f32(&g, "adapter.lora.alpha", &alpha) != 0) goto fail;
    if (!isfinite(alpha) || alpha <= 0.0f) {
        slim_set_error("%s: adapter.lora.alpha = %g must be finite and positive", path, alpha);
        goto fail;
    }
    /* the targets and the rank come from layer 0; every other layer must then have exactly the same,
     * and the file must hold nothing else */
    int targets[LORA_N_TARGETS] = {0}, r = -1;
    char name[128];
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        snprintf(name, sizeof name, "blk.0.%s.weight.lora_a", lora_target_gguf_names[t]);
        const gguf_tensor *ta = gguf_find_tensor(&g, name);
        if (!ta) continue;
        targets[t] = 1;
        if (r < 0) r = (int)(ta->ne[1] < 1 || ta->ne[1] > 4096 ? 0 : ta->ne[1]);
    }
    if (r <= 0) { slim_set_error("%s: no LoRA tensors for layer 0, or a rank outside 1..4096", path); goto fail; }
    lora_init(a, &m->cfg, r, alpha, targets, 1);
    uint64_t used = 0;
    for (int l = 0; l < a->n_layers; l++) {
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            if (!targets[t]) continue;
            int in, out;
            model_target_shape(&m->cfg, t, &in, &out);
            for (int ab = 0; ab < 2; ab++) {
                snprintf(name, sizeof name, "blk.%d.%s.weight.lora_%c", l, lora_target_gguf_names[t], ab ? 'b' : 'a');
                const gguf_tensor *x = gguf_find_tensor(&g, name);
                int64_t ne0 = ab ? r : in, ne1 = ab ? out : r;
                if (!x || x->type != GGML_TYPE_F32 || x->ne[0] != ne0 || x->ne[1] != ne1 || x->ne[2] != 1 || x->ne[3] != 1) {
                    slim_set_error("%s: tensor %s missing, not F32, or not of shape [%lld, %lld]", path, name,
                                   (long long)ne0, (long long)ne1);
                    goto fail_free;
                }
                float *dst = ab ? a->B[l * LORA_N_TARGETS + t] : a->A[l * LORA_N_TARGETS + t];
                memcpy(dst, x->data, (size_t)ne0 * ne1 * sizeof(float));
                for (int64_t i = 0; i < ne0 * ne1; i++)
                    if (!isfinite(dst[i])) {
                        slim_set_error("%s: tensor %s has a non-finite value at element %lld", path, name, (long long)i);
                        goto fail_free;
                    }
                used++;
            }
        }
    }
    if (used != g.n_tensors) {
        for (uint64_t i = 0; i < g.n_tensors; i++) {
            const char *tn = g.tensors[i].name;
            int l = -1, known = 0;
            char tname[64], ab = 0;
            if (sscanf(tn, "blk.%d.%63[a-z_].weight.lora_%c", &l, tname, &ab) == 3 && l >= 0 && l < a->n_layers) {
                int t;
                for (t = 0; t < LORA_N_TARGETS; t++)
                    if (!strcmp(tname, lora_target_gguf_names[t])) break;
                known = t < LORA_N_TARGETS && targets[t] && (ab == 'a' || ab == 'b');
            }
            if (!known) {
                slim_set_error("%s: tensor %s is not a LoRA tensor of this model (layers 0..%d, targets of layer 0)",
                               path, tn, a->n_layers - 1);
                goto fail_free;
            }
        }
        slim_set_error("%s: holds %llu tensors, %llu of them used", path, (unsigned long long)g.n_tensors,
                       (unsigned long long)used);
        goto fail_free;
    }
    gguf_close(&g);
    return 0;
fail_free:
    lora_free(a);
fail:
    gguf_close(&g);
    return -1;
}

/* ---------------------------------------------------------------------------------------------- */
/* activations */

/* Floats of each buffer of acts, in the order acts_init lays them out. */
#define ACTS_N_BUFFERS 34
static void acts_sizes(const model_config *c, int B, int T, int lora_r, size_t sizes[ACTS_N_BUFFERS]) {
    size_t N = (size_t)B * T, L = c->n_layers, d = c->dim, f = c->ffn_dim, V = c->vocab_size;
    size_t qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    size_t r = lora_r > 0 ? lora_r : 1;
    size_t all[ACTS_N_BUFFERS] = {
        (L + 1) * N * d, L * N * d, L * N, L * N * qd, L * N * kvd, L * N * kvd, L * B * c->n_heads * T * T,
        L * N * qd, L * N * d, L * N * d, L * N, L * N * f, L * N * f, L * N * f, L * LORA_N_TARGETS * N * r,
        N * d, N, N * d, (N < HEAD_CHUNK ? N : HEAD_CHUNK) * V, N,
        N * d, N * d, N * d, N * d, N * qd, N * kvd, N * kvd, N * qd, N * f, N * f, N * f, N * r,
        (size_t)ops_attention_scratch_size(T), (size_t)QMATMUL_TILE + (d > f ? (d > qd ? d : qd) : (f > qd ? f : qd))};
    memcpy(sizes, all, sizeof all);
}

size_t acts_bytes(const model_config *c, int B, int T, int lora_r) {
    size_t sizes[ACTS_N_BUFFERS], total = 0;
    acts_sizes(c, B, T, lora_r, sizes);
    for (int i = 0; i < ACTS_N_BUFFERS; i++) total += sizes[i];
    return total * sizeof(float) + 4 * sizeof(int32_t) * (size_t)B * T;
}

void acts_init(acts *s, const model_config *c, int B, int T, int lora_r) {
    memset(s, 0, sizeof *s);
    s->B = B;
    s->T = T;
    s->lora_r = lora_r;
    size_t N = (size_t)B * T;
    size_t sizes[ACTS_N_BUFFERS];
    acts_sizes(c, B, T, lora_r, sizes);
    float **ptrs[] = {&s->x, &s->xn1, &s->rstd1, &s->q, &s->k, &s->v, &s->att, &s->atty, &s->xmid, &s->xn2,
                      &s->rstd2, &s->g, &s->u, &s->h, &s->lu, &s->xf, &s->rstdf, &s->sel_x, &s->logits, &s->losses,
                      &s->dx, &s->dxn, &s->dsel, &s->dxf, &s->dq, &s->dk, &s->dv, &s->datty, &s->dg, &s->du, &s->dh,
                      &s->dlu, &s->att_scratch, &s->qscratch};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) total += sizes[i];
    s->mem = slim_calloc(total, sizeof(float));
    float *p = s->mem;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) { *ptrs[i] = p; p += sizes[i]; }
    s->pos = slim_malloc(N * sizeof(int32_t));
    s->seg_start = slim_malloc(N * sizeof(int32_t));
    s->sel_row = slim_malloc(N * sizeof(int32_t));
    s->sel_tgt = slim_malloc(N * sizeof(int32_t));
    rope_cache_init(&s->rope, c->head_dim, T, c->rope_theta, c->rope_neox, c->rope_freqs);
}

void acts_free(acts *s) {
    free(s->mem);
    free(s->pos);
    free(s->seg_start);
    free(s->sel_row);
    free(s->sel_tgt);
    rope_cache_free(&s->rope);
    memset(s, 0, sizeof *s);
}

/* ---------------------------------------------------------------------------------------------- */
/* forward and backward */

/* Views of layer l's saved activations inside s for the shape of the current forward (cur_B x cur_T);
 * shapes as in acts. */
typedef struct acts_layer {
    float *x, *xnext, *xn1, *rstd1, *q, *k, *v, *att, *atty, *xmid, *xn2, *rstd2, *g, *u, *h, *lu;
} acts_layer;

static acts_layer acts_layer_view(const acts *s, const model_config *c, int l) {
    const size_t B = s->cur_B, T = s->cur_T, N = B * T, d = c->dim, f = c->ffn_dim, H = c->n_heads;
    const size_t qd = H * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim, r = s->lora_r > 0 ? s->lora_r : 1;
    acts_layer a = {
        .x = s->x + l * N * d, .xnext = s->x + (l + 1) * N * d, .xn1 = s->xn1 + l * N * d, .rstd1 = s->rstd1 + l * N,
        .q = s->q + l * N * qd, .k = s->k + l * N * kvd, .v = s->v + l * N * kvd, .att = s->att + l * B * H * T * T,
        .atty = s->atty + l * N * qd, .xmid = s->xmid + l * N * d, .xn2 = s->xn2 + l * N * d,
        .rstd2 = s->rstd2 + l * N, .g = s->g + l * N * f, .u = s->u + l * N * f, .h = s->h + l * N * f,
        .lu = s->lu + l * LORA_N_TARGETS * N * r};
    return a;
}

/* y [N,out] = x W^T (+ LoRA delta, saving its inner activation in lu) for projection t of layer l. */
static void model_proj_forward(float *y, float *lu, const float *x, const model *m, const lora_adapter *lora,
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
        lora_forward(y, lu, x, lora->A[l * LORA_N_TARGETS + t], lora->B[l * LORA_N_TARGETS + t], N, in, out, lora->r,
                     lora->scale);
}

/* dx [N,in] += dy W (+ LoRA path); dlora gets dA, dB of projection t of layer l. */
static void model_proj_backward(float *dx, float *dlora, const float *dy, const float *x, const float *lu,
                                const model *m, const lora_adapter *lora, acts *s, int l, int t, int N) {
    int in, out;
    model_target_shape(&m->cfg, t, &in, &out);
    qmatmul_backward(dx, dy, &m->layers[l].w[t], N, s->qscratch);
    if (lora && lora->enabled[t])
        lora_backward(dx, dlora + lora_offset_A(lora, l, t), dlora + lora_offset_B(lora, l, t), s->dlu, dy, x, lu,
                      lora->A[l * LORA_N_TARGETS + t], lora->B[l * LORA_N_TARGETS + t], N, in, out, lora->r,
                      lora->scale);
}

double model_forward(const model *m, const lora_adapter *lora, acts *s,
                     const int32_t *tokens, const int32_t *targets, int B, int T,
                     float *target_logprob, float *all_logits) {
    return model_forward_packed(m, lora, s, tokens, targets, NULL, NULL, B, T, target_logprob, all_logits);
}

double model_forward_packed(const model *m, const lora_adapter *lora, acts *s,
                            const int32_t *tokens, const int32_t *targets, const int32_t *pos,
                            const int32_t *seg_start, int B, int T, float *target_logprob, float *all_logits) {
    const model_config *c = &m->cfg;
    const int N = B * T, d = c->dim, f = c->ffn_dim, H = c->n_heads, Hkv = c->n_kv_heads, hd = c->head_dim;
    const size_t kvd = (size_t)Hkv * hd, r = s->lora_r > 0 ? s->lora_r : 1;
    /* a batch larger than acts_init allocated, or positions outside the RoPE table, would write or
     * read out of bounds: these are caller bugs, stopped here with a message */
    int bad = B < 1 || T < 1 || B > s->B || T > s->T;
    for (int n = 0; n < N && !bad && (pos || seg_start); n++)
        bad = (pos && (pos[n] < 0 || pos[n] >= s->T)) || (seg_start && (seg_start[n] < 0 || seg_start[n] > n % T));
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

    if (m->tok_embd.type == GGML_TYPE_F32) embedding_forward(s->x, tokens, (const float *)m->tok_embd.data, N, d);
    else {
#pragma omp parallel for
        for (int n = 0; n < N; n++) qmatrix_dequantize_rows(&m->tok_embd, tokens[n], tokens[n] + 1, s->x + (size_t)n * d);
    }
    for (int l = 0; l < c->n_layers; l++) {
        const model_layer *L = &m->layers[l];
        acts_layer a = acts_layer_view(s, c, l);
        float *x = a.x, *xnext = a.xnext, *xn1 = a.xn1, *rstd1 = a.rstd1, *q = a.q, *k = a.k, *v = a.v, *att = a.att,
              *atty = a.atty, *xmid = a.xmid, *xn2 = a.xn2, *rstd2 = a.rstd2, *g = a.g, *u = a.u, *h = a.h;
#define LU(t) (a.lu + (size_t)(t) * N * r)
        rmsnorm_forward(xn1, rstd1, x, L->attn_norm, N, d, c->norm_eps);
        model_proj_forward(q, LU(LORA_Q), xn1, m, lora, s, l, LORA_Q, N);
        model_proj_forward(k, LU(LORA_K), xn1, m, lora, s, l, LORA_K, N);
        model_proj_forward(v, LU(LORA_V), xn1, m, lora, s, l, LORA_V, N);
        rope_forward(q, s->pos, N, H, &s->rope);
        rope_forward(k, s->pos, N, Hkv, &s->rope);
        if (s->kv_f16)
            for (size_t i = 0; i < (size_t)N * kvd; i++) {
                k[i] = slim_fp16_to_fp32(slim_fp32_to_fp16(k[i]));
                v[i] = slim_fp16_to_fp32(slim_fp32_to_fp16(v[i]));
            }
        attention_forward(atty, att, q, k, v, s->packed ? s->seg_start : NULL, B, T, H, Hkv, hd);
        model_proj_forward(xmid, LU(LORA_O), atty, m, lora, s, l, LORA_O, N);
        residual_forward(xmid, xmid, x, (long)N * d);
        rmsnorm_forward(xn2, rstd2, xmid, L->ffn_norm, N, d, c->norm_eps);
        model_proj_forward(g, LU(LORA_GATE), xn2, m, lora, s, l, LORA_GATE, N);
        model_proj_forward(u, LU(LORA_UP), xn2, m, lora, s, l, LORA_UP, N);
        swiglu_forward(h, g, u, N, f);
        model_proj_forward(xnext, LU(LORA_DOWN), h, m, lora, s, l, LORA_DOWN, N);
        residual_forward(xnext, xnext, xmid, (long)N * d);
#undef LU
    }
    rmsnorm_forward(s->xf, s->rstdf, s->x + (size_t)c->n_layers * N * d, m->output_norm, N, d, c->norm_eps);
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
    double loss = 0.0;
    /* the head in chunks of HEAD_CHUNK rows, so that logits never take more than HEAD_CHUNK x vocab
     * floats; unless inference-only, each chunk's gradient d(summed loss)/d(sel_x) is computed at once
     * into dsel (model_backward scales it by loss_scale) */
    for (int c0 = 0; c0 < M; c0 += HEAD_CHUNK) {
        int mc = M - c0 < HEAD_CHUNK ? M - c0 : HEAD_CHUNK;
        qmatmul_forward(s->logits, s->sel_x + (size_t)c0 * d, &m->output, mc, 0.0f, s->qscratch);
        loss += crossentropy_forward(s->logits, s->losses + c0, s->sel_tgt + c0, mc, c->vocab_size);
        if (!s->inference) {
            crossentropy_backward(s->logits, s->sel_tgt + c0, mc, c->vocab_size, 1.0f);
            memset(s->dsel + (size_t)c0 * d, 0, sizeof(float) * mc * d);
            qmatmul_backward(s->dsel + (size_t)c0 * d, s->logits, &m->output, mc, s->qscratch);
        }
    }
    if (target_logprob) {
        memset(target_logprob, 0, sizeof(float) * N);
        for (int i = 0; i < M; i++) target_logprob[s->sel_row[i]] = -s->losses[i];
    }
    return loss;
}

void model_backward(const model *m, const lora_adapter *lora, acts *s, float *dlora, float loss_scale) {
    const model_config *c = &m->cfg;
    const int B = s->cur_B, T = s->cur_T, N = B * T, d = c->dim, f = c->ffn_dim, H = c->n_heads,
              Hkv = c->n_kv_heads, hd = c->head_dim, M = s->n_sel;
    const size_t qd = (size_t)H * hd, kvd = (size_t)Hkv * hd, r = s->lora_r > 0 ? s->lora_r : 1;

    /* head: dsel [M,d] (from the forward) * loss_scale, scattered into dxf [N,d] -> final RMSNorm -> dx */
    memset(s->dxf, 0, sizeof(float) * N * d);
    memset(s->dx, 0, sizeof(float) * N * d);
    for (int i = 0; i < M; i++) {
        const float *src = s->dsel + (size_t)i * d;
        float *dst = s->dxf + (size_t)s->sel_row[i] * d;
        for (int j = 0; j < d; j++) dst[j] = loss_scale * src[j];
    }
    rmsnorm_backward(s->dx, NULL, s->dxf, s->x + (size_t)c->n_layers * N * d, m->output_norm, s->rstdf, N, d);

    for (int l = c->n_layers - 1; l >= 0; l--) {
        const model_layer *L = &m->layers[l];
        acts_layer a = acts_layer_view(s, c, l);
        const float *x = a.x, *xn1 = a.xn1, *rstd1 = a.rstd1, *q = a.q, *k = a.k, *v = a.v, *att = a.att,
                    *atty = a.atty, *xmid = a.xmid, *xn2 = a.xn2, *rstd2 = a.rstd2, *g = a.g, *u = a.u, *h = a.h;
#define LU(t) (a.lu + (size_t)(t) * N * r)
        /* x_{l+1} = xmid + down(h): dx holds d x_{l+1} and continues as d xmid through the residual */
        memset(s->dh, 0, sizeof(float) * N * f);
        model_proj_backward(s->dh, dlora, s->dx, h, LU(LORA_DOWN), m, lora, s, l, LORA_DOWN, N);
        memset(s->dg, 0, sizeof(float) * N * f);
        memset(s->du, 0, sizeof(float) * N * f);
        swiglu_backward(s->dg, s->du, s->dh, g, u, N, f);
        memset(s->dxn, 0, sizeof(float) * N * d);
        model_proj_backward(s->dxn, dlora, s->dg, xn2, LU(LORA_GATE), m, lora, s, l, LORA_GATE, N);
        model_proj_backward(s->dxn, dlora, s->du, xn2, LU(LORA_UP), m, lora, s, l, LORA_UP, N);
        rmsnorm_backward(s->dx, NULL, s->dxn, xmid, L->ffn_norm, rstd2, N, d);
        /* xmid = x + o(atty): dx holds d xmid and continues as d x */
        memset(s->datty, 0, sizeof(float) * N * qd);
        model_proj_backward(s->datty, dlora, s->dx, atty, LU(LORA_O), m, lora, s, l, LORA_O, N);
        memset(s->dq, 0, sizeof(float) * N * qd);
        memset(s->dk, 0, sizeof(float) * N * kvd);
        memset(s->dv, 0, sizeof(float) * N * kvd);
        attention_backward(s->dq, s->dk, s->dv, s->att_scratch, s->datty, q, k, v, att,
                           s->packed ? s->seg_start : NULL, B, T, H, Hkv, hd);
        rope_backward(s->dq, s->pos, N, H, &s->rope);
        rope_backward(s->dk, s->pos, N, Hkv, &s->rope);
        memset(s->dxn, 0, sizeof(float) * N * d);
        model_proj_backward(s->dxn, dlora, s->dq, xn1, LU(LORA_Q), m, lora, s, l, LORA_Q, N);
        model_proj_backward(s->dxn, dlora, s->dk, xn1, LU(LORA_K), m, lora, s, l, LORA_K, N);
        model_proj_backward(s->dxn, dlora, s->dv, xn1, LU(LORA_V), m, lora, s, l, LORA_V, N);
        if (l > 0) /* the embedding is frozen: no gradient is needed below layer 0 */
            rmsnorm_backward(s->dx, NULL, s->dxn, x, L->attn_norm, rstd1, N, d);
#undef LU
    }
}
