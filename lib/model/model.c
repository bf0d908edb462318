/* model.c — model config and weights: read from GGUF (or Hugging Face) in two passes, freed; see model.h. */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common.h"
#include "format/model_file.h"
#include "ops.h"

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

/* Dequantizes rows [r0, r1) of a tensor with rows of `cols` into dst [(r1 - r0) * cols] (F32), checking
 * every value is finite (errors give the element's index in the whole tensor). */
static int model_tensor_rows_f32(const gguf_file *g, const gguf_tensor *t, int64_t r0, int64_t r1, int64_t cols,
                                 float *dst) {
    size_t rb = gguf_row_size(t->type, cols);
    for (int64_t r = r0; r < r1; r++)
        if (quant_dequantize_row(t->type, (const uint8_t *)t->data + (size_t)r * rb, dst + (size_t)(r - r0) * cols,
                                 cols) != 0)
            return slim_set_error("%s: tensor %s: cannot decode type %s", g->path, t->name, gguf_type_name(t->type));
    for (size_t i = 0; i < (size_t)(r1 - r0) * cols; i++)
        if (!isfinite(dst[i]))
            return slim_set_error("%s: tensor %s has a non-finite value at element %zu", g->path, t->name,
                                  (size_t)r0 * cols + i);
    return 0;
}

/* Rows converted at a time for a matrix of rows x cols: about 2^20 elements, a whole number of NF4
 * blocks (so that NF4 quantizes block by block), at most rows. */
static int64_t model_block_rows(int64_t rows, int64_t cols) {
    int64_t a = cols, b = NF4_BLOCK;
    while (b) { int64_t r = a % b; a = b; b = r; }
    const int64_t step = NF4_BLOCK / a;
    int64_t rb = ((1 << 20) / cols + step - 1) / step * step;
    if (rb < step) rb = step;
    return rb < rows ? rb : rows;
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

/* The weight loader's state for one of its two passes over the tensors: the first (sizing) counts the
 * two weight allocations, the second fills them as a bump allocator. */
typedef struct weights_pass {
    model *m;
    int sizing;        /* first pass: only count */
    size_t n_f32, n_qbytes;
    size_t f32_used, q_used;
    float *scratch;    /* F32 rows of one conversion block (model_block_rows) */
    size_t scratch_cap;
} weights_pass;

static float *weights_f32(weights_pass *wp, size_t n) {
    if (wp->sizing) { wp->n_f32 += n; return NULL; }
    float *p = wp->m->params + wp->f32_used;
    wp->f32_used += n;
    return p;
}

/* Loads a vector tensor (norm, bias, rope factors) as F32. */
static int weights_vector(weights_pass *wp, const char *name, int64_t n, float **dst, int required) {
    const gguf_file *g = &wp->m->gguf;
    *dst = NULL;
    if (!required && !gguf_find_tensor(g, name)) return 0;
    const gguf_tensor *t = model_find(g, name, n, 1);
    if (!t) return -1;
    float *p = weights_f32(wp, (size_t)n);
    wp->m->n_params += wp->sizing ? (size_t)n : 0;
    if (wp->sizing) return 0;
    *dst = p;
    wp->m->weight_bytes += sizeof(float) * (size_t)n;
    return model_tensor_rows_f32(g, t, 0, 1, n, p);
}

/* Converts the file's rows of t into W's storage (type set, NF4 begun) one block of rows at a time:
 * NF4 quantized piece by piece, ggml types row by row, F32 decoded in place, keep only checked. */
static int weights_convert(weights_pass *wp, const gguf_tensor *t, qmatrix *W, float *f32) {
    const gguf_file *g = &wp->m->gguf;
    const int64_t rows = W->rows, cols = W->cols, rb = model_block_rows(rows, cols);
    float *absmax = W->type == SLIM_TYPE_NF4 ? nf4_begin(W->nf4, (size_t)rows * cols) : NULL;
    for (int64_t r0 = 0; r0 < rows; r0 += rb) {
        const int64_t r1 = r0 + rb < rows ? r0 + rb : rows;
        float *dst = f32 ? f32 + (size_t)r0 * cols : wp->scratch;
        if (model_tensor_rows_f32(g, t, r0, r1, cols, dst) != 0) { free(absmax); return -1; }
        if (absmax) nf4_quantize_part(W->nf4, absmax, dst, (size_t)r0 * cols, (size_t)(r1 - r0) * cols);
        else if (!f32 && wp->m->quant != QUANT_KEEP)
            for (int64_t r = r0; r < r1; r++)
                quant_quantize_row(W->type, dst + (size_t)(r - r0) * cols, (uint8_t *)W->data + (size_t)r * W->row_bytes,
                                   cols);
    }
    if (absmax) nf4_end(W->nf4, absmax);
    gguf_drop_pages(g, t->data, (size_t)t->nbytes); /* the file's pages are no longer needed in memory */
    return 0;
}

/* Loads a weight matrix [rows = ne1, cols = ne0] into W in its storage type. */
static int weights_matrix(weights_pass *wp, const char *name, int64_t cols, int64_t rows, qmatrix *W) {
    model *m = wp->m;
    const gguf_file *g = &m->gguf;
    const gguf_tensor *t = model_find(g, name, cols, rows);
    if (!t) return -1;
    uint32_t type = model_storage_type(m->quant, t->type, cols);
    size_t n = (size_t)rows * cols;
    if (wp->sizing) {
        m->n_params += n;
        if (type == GGML_TYPE_F32) wp->n_f32 += (m->quant == QUANT_KEEP && t->type == GGML_TYPE_F32) ? 0 : n;
        else if (type != SLIM_TYPE_NF4 && !(m->quant == QUANT_KEEP)) wp->n_qbytes += gguf_row_size(type, cols) * rows;
        size_t block = (size_t)model_block_rows(rows, cols) * cols;
        if (block > wp->scratch_cap) wp->scratch_cap = block;
        if (m->quant == QUANT_Q8_0 && type != GGML_TYPE_Q8_0) m->n_fallback++;
        return 0;
    }
    W->rows = rows;
    W->cols = cols;
    W->type = type;
    W->nf4 = NULL;
    W->data = NULL;
    W->row_bytes = 0;
    float *f32 = NULL;
    if (type == SLIM_TYPE_NF4) {
        W->nf4 = slim_calloc(1, sizeof(nf4_tensor));
    } else if (m->quant == QUANT_KEEP) {
        /* the file's own bytes, in place (the mapping stays open); decoded block by block only to check
         * that every value is finite */
        W->data = t->data;
        W->row_bytes = gguf_row_size(type, cols);
    } else if (type == GGML_TYPE_F32) {
        f32 = weights_f32(wp, n);
        W->data = (const uint8_t *)f32;
        W->row_bytes = sizeof(float) * cols;
    } else {
        W->row_bytes = gguf_row_size(type, cols);
        W->data = m->qdata + wp->q_used;
        wp->q_used += W->row_bytes * rows;
    }
    if (weights_convert(wp, t, W, f32) != 0) return -1;
    m->weight_bytes += qmatrix_nbytes(W);
    return 0;
}

/* One pass over every tensor of the model (sizing or filling). */
static int weights_load_all(weights_pass *wp) {
    model *m = wp->m;
    const model_config *c = &m->cfg;
    char name[128];
    int has_output = gguf_find_tensor(&m->gguf, "output.weight") != NULL;
    if (weights_matrix(wp, "token_embd.weight", c->dim, c->vocab_size, &m->tok_embd)) return -1;
    if (has_output) {
        if (weights_matrix(wp, "output.weight", c->dim, c->vocab_size, &m->output)) return -1;
    } else if (!wp->sizing) {
        m->output = m->tok_embd; /* tied embeddings */
    }
    if (weights_vector(wp, "output_norm.weight", c->dim, &m->output_norm, 1)) return -1;
    float *freqs = NULL;
    if (weights_vector(wp, "rope_freqs.weight", c->head_dim / 2, &freqs, 0)) return -1;
    if (!wp->sizing) m->cfg.rope_freqs = freqs;
    for (int l = 0; l < c->n_layers; l++) {
        model_layer *L = &m->layers[l];
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        if (weights_vector(wp, name, c->dim, &L->attn_norm, 1)) return -1;
        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", l);
        if (weights_vector(wp, name, c->dim, &L->ffn_norm, 1)) return -1;
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            int in, out;
            model_target_shape(c, t, &in, &out);
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, lora_target_gguf_names[t]);
            if (weights_matrix(wp, name, in, out, &L->w[t])) return -1;
            if (t <= LORA_V) {
                snprintf(name, sizeof name, "blk.%d.%s.bias", l, lora_target_gguf_names[t]);
                if (weights_vector(wp, name, out, &L->bias[t], c->arch == ARCH_QWEN2)) return -1;
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
    weights_pass wp = {.m = m, .sizing = 1};
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
    if (weights_load_all(&wp) != 0) goto fail;
    m->params = slim_malloc(wp.n_f32 * sizeof(float));
    m->qdata = slim_malloc(wp.n_qbytes);
    wp.scratch = slim_malloc(wp.scratch_cap * sizeof(float));
    wp.sizing = 0;
    if (weights_load_all(&wp) != 0) goto fail;
    free(wp.scratch);
    if (quant != QUANT_KEEP && m->gguf.map) {
        /* the weights were converted: the file's pages are no longer needed in memory, nor a Hugging
         * Face view's permuted copies */
        if (m->gguf.map_is_file) madvise((void *)m->gguf.map, m->gguf.map_size, MADV_DONTNEED);
        else gguf_release_memory(&m->gguf);
    }
    return 0;
fail:
    free(wp.scratch);
    model_free(m);
    return -1;
}

int model_load(model *m, const char *path) { return model_load_quant(m, path, QUANT_F32); }

/* Frees W's NF4 storage, if any (the other storage types live in the model's two allocations). */
static void weights_free_nf4(qmatrix *W) {
    if (!W->nf4) return;
    nf4_free(W->nf4);
    free(W->nf4);
    W->nf4 = NULL;
}

void model_free(model *m) {
    if (m->layers)
        for (int l = 0; l < m->cfg.n_layers; l++)
            for (int t = 0; t < LORA_N_TARGETS; t++) weights_free_nf4(&m->layers[l].w[t]);
    if (m->output.nf4 == m->tok_embd.nf4) m->output.nf4 = NULL; /* tied: freed once */
    weights_free_nf4(&m->tok_embd);
    weights_free_nf4(&m->output);
    free(m->params);
    free(m->qdata);
    free(m->layers);
    if (m->has_tokenizer) tokenizer_free(&m->tok);
    if (m->gguf.path || m->gguf.map) gguf_close(&m->gguf);
    memset(m, 0, sizeof *m);
}

int64_t model_qk_gguf_row(int64_t row, int hd) {
    const int64_t h = row / hd, k = row % hd, half = hd / 2;
    return h * hd + 2 * (k % half) + k / half;
}
