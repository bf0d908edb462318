/* merge.c — the merged model's weights, tensor by tensor; see merge.h. */
#include "merge.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

int merge_is_adapted(const merge_src *s, const gguf_tensor *t, int *layer, int *target) {
    char part;
    return lora_parse_tensor_name(t->name, layer, target, &part) == 0 && part == 0 && *layer >= 0 &&
           *layer < s->a->n_layers && s->a->enabled[*target];
}

const qmatrix *merge_weights(const model *m, const gguf_tensor *t) {
    int l, tg;
    char part;
    if (!strcmp(t->name, "token_embd.weight")) return &m->tok_embd;
    if (!strcmp(t->name, "output.weight")) return &m->output;
    if (lora_parse_tensor_name(t->name, &l, &tg, &part) == 0 && part == 0 && l >= 0 && l < m->cfg.n_layers)
        return &m->layers[l].w[tg];
    return NULL;
}

int64_t merge_block_rows(const merge_src *s, const gguf_tensor *t) {
    const int64_t cols = t->ne[0], rows = t->ne[1] * t->ne[2] * t->ne[3];
    int l, tg;
    if (merge_is_adapted(s, t, &l, &tg)) return rows;
    const int64_t block = cols >= (1 << 20) ? 1 : (1 << 20) / cols;
    return block < rows ? block : rows;
}

/* The adapted projection (l, tg), whole: W from the loaded weights + the delta, checked finite. */
static int merge_adapted(merge_src *s, const gguf_tensor *t, int l, int tg) {
    int in, out;
    model_target_shape(&s->m->cfg, tg, &in, &out);
    const size_t n = (size_t)in * out;
    qmatrix_dequantize_rows(&s->m->layers[l].w[tg], 0, out, s->buf);
    lora_merge(s->buf, s->a, l, tg, in, out);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(s->buf[i]))
            return slim_set_error("%s: merged tensor %s has a non-finite value at element %zu (bad adapter?)",
                                  s->adapter_path, t->name, i);
    return 0;
}

int merge_rows(merge_src *s, const gguf_tensor *t, int64_t r0, int64_t r1) {
    const int64_t cols = t->ne[0], rows = t->ne[1] * t->ne[2] * t->ne[3];
    const size_t n = (size_t)(r1 - r0) * cols, in_rb = gguf_row_size(t->type, cols);
    if (n > s->cap) { free(s->buf); s->cap = n; s->buf = slim_malloc(n * sizeof(float)); }
    int l, tg, rc = 0;
    if (merge_is_adapted(s, t, &l, &tg)) {
        if (r0 != 0 || r1 != rows) return slim_set_error("merge: %s is merged whole, not in row blocks", t->name);
        rc = merge_adapted(s, t, l, tg);
    } else if (merge_weights(s->m, t)) {
        qmatrix_dequantize_rows(merge_weights(s->m, t), r0, r1, s->buf);
    } else {
        for (int64_t r = r0; r < r1 && rc == 0; r++)
            if (quant_dequantize_row(t->type, (const uint8_t *)t->data + (size_t)r * in_rb, s->buf + (size_t)(r - r0) * cols,
                                     cols) != 0)
                rc = slim_set_error("%s: tensor %s: cannot decode type %s", s->m->gguf.path, t->name,
                                    gguf_type_name(t->type));
    }
    if (t->data) /* the file's pages behind, when read in place */
        gguf_drop_pages(&s->m->gguf, (const uint8_t *)t->data + (size_t)r0 * in_rb, (size_t)(r1 - r0) * in_rb);
    return rc;
}

const float *merge_vector(const model *m, const gguf_tensor *t) {
    int l, n = 0;
    if (!strcmp(t->name, "rope_freqs.weight")) return m->cfg.rope_freqs;
    if (!strcmp(t->name, "output_norm.weight")) return m->output_norm;
    if (sscanf(t->name, "blk.%d.%n", &l, &n) != 1 || n == 0 || l < 0 || l >= m->cfg.n_layers) return NULL;
    const model_layer *L = &m->layers[l];
    const char *rest = t->name + n;
    return !strcmp(rest, "attn_norm.weight") ? L->attn_norm
         : !strcmp(rest, "ffn_norm.weight")  ? L->ffn_norm
         : !strcmp(rest, "attn_q.bias")      ? L->bias[0]
         : !strcmp(rest, "attn_k.bias")      ? L->bias[1]
         : !strcmp(rest, "attn_v.bias")      ? L->bias[2]
                                             : NULL;
}

void merge_src_free(merge_src *s) {
    free(s->buf);
    s->buf = NULL;
    s->cap = 0;
}
