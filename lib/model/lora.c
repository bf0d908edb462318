/* lora.c — LoRA adapters: initialisation, llama.cpp LoRA GGUF save and load, merge; see lora.h. */
#include "lora.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "format/model_file.h"
#include "model.h"
#include "peft.h"

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

int lora_parse_tensor_name(const char *name, int *layer, int *target, char *part) {
    /* "blk." then 1..6 decimal digits (no sign, no space), then ".<gguf name>.weight" */
    if (strncmp(name, "blk.", 4) != 0) return -1;
    const char *p = name + 4;
    int l = 0, digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 6; p++, digits++) l = l * 10 + (*p - '0');
    int end = -1;
    char gname[64];
    if (digits == 0 || *p != '.' || sscanf(p, ".%63[a-z_].weight%n", gname, &end) != 1 || end < 0) return -1;
    const char *rest = p + end;
    if (*rest == 0) *part = 0;
    else if (strcmp(rest, ".lora_a") == 0 || strcmp(rest, ".lora_b") == 0) *part = rest[6];
    else return -1;
    for (int t = 0; t < LORA_N_TARGETS; t++)
        if (strcmp(gname, lora_target_gguf_names[t]) == 0) { *layer = l; *target = t; return 0; }
    return -1;
}

/* name = "blk.<layer>.<gguf target name>.weight.lora_<part>" (part 'a' or 'b'). */
static void lora_tensor_name(char *name, size_t size, int layer, int target, char part) {
    snprintf(name, size, "blk.%d.%s.weight.lora_%c", layer, lora_target_gguf_names[target], part);
}

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

void lora_merge(float *W, const lora_adapter *a, int layer, int target, int in, int out) {
    /* W [out,in] += scale * B [out,r] A [r,in] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, out, in, a->r, a->scale, a->B[layer * LORA_N_TARGETS + target],
                a->r, a->A[layer * LORA_N_TARGETS + target], in, 1.0f, W, in);
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
            lora_tensor_name(name, sizeof name, l, t, 'a');
            rc = gguf_writer_add_tensor(w, name, GGML_TYPE_F32, 2, neA, a->A[l * LORA_N_TARGETS + t]);
            lora_tensor_name(name, sizeof name, l, t, 'b');
            if (rc == 0) rc = gguf_writer_add_tensor(w, name, GGML_TYPE_F32, 2, neB, a->B[l * LORA_N_TARGETS + t]);
        }
    }
    if (rc == 0) rc = gguf_writer_write(w, path);
    gguf_writer_free(w);
    return rc;
}

/* The adapter file's header: adapter.type lora, the base model's architecture, a finite positive
 * alpha (stored in *alpha). Returns 0 or -1 naming the key. */
static int lora_read_header(const gguf_file *g, const model *m, const char *path, float *alpha) {
    const char *type = gguf_get_str(g, "adapter.type");
    const char *arch = gguf_get_str(g, "general.architecture");
    const char *model_arch = gguf_get_str(&m->gguf, "general.architecture");
    if (!type || strcmp(type, "lora") != 0) return slim_set_error("%s: adapter.type is not 'lora'", path);
    if (!arch || !model_arch || strcmp(arch, model_arch) != 0)
        return slim_set_error("%s: general.architecture '%s' does not match the base model's '%s'", path,
                              arch ? arch : "?", model_arch ? model_arch : "?");
    if (gguf_get_f32(g, "adapter.lora.alpha", alpha) != 0) return -1;
    if (!isfinite(*alpha) || *alpha <= 0.0f)
        return slim_set_error("%s: adapter.lora.alpha = %g must be finite and positive", path, *alpha);
    return 0;
}

/* Copies tensor `name` of g into dst after checking it is F32 of shape [ne0, ne1] with finite values. */
static int lora_read_tensor(const gguf_file *g, const char *path, const char *name, int64_t ne0, int64_t ne1,
                            float *dst) {
    const gguf_tensor *x = gguf_find_tensor(g, name);
    if (!x || x->type != GGML_TYPE_F32 || x->ne[0] != ne0 || x->ne[1] != ne1 || x->ne[2] != 1 || x->ne[3] != 1)
        return slim_set_error("%s: tensor %s missing, not F32, or not of shape [%lld, %lld]", path, name,
                              (long long)ne0, (long long)ne1);
    memcpy(dst, x->data, (size_t)ne0 * ne1 * sizeof(float));
    for (int64_t i = 0; i < ne0 * ne1; i++)
        if (!isfinite(dst[i]))
            return slim_set_error("%s: tensor %s has a non-finite value at element %lld", path, name, (long long)i);
    return 0;
}

/* Called when g holds tensors lora_load did not use: names the first that is not a LoRA tensor of a
 * (layers 0..n_layers-1, targets enabled on layer 0), else reports the count. Always returns -1. */
static int lora_unused_tensor_error(const gguf_file *g, const lora_adapter *a, const char *path, uint64_t used) {
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const char *tn = g->tensors[i].name;
        int l, t;
        char part;
        int known = lora_parse_tensor_name(tn, &l, &t, &part) == 0 && part != 0 && l >= 0 && l < a->n_layers &&
                    a->enabled[t];
        if (!known)
            return slim_set_error("%s: tensor %s is not a LoRA tensor of this model (layers 0..%d, targets of layer 0)",
                                  path, tn, a->n_layers - 1);
    }
    return slim_set_error("%s: holds %llu tensors, %llu of them used", path, (unsigned long long)g->n_tensors,
                          (unsigned long long)used);
}

int lora_load(lora_adapter *a, const model *m, const char *path) {
    if (slim_model_is_dir(path)) return peft_load(a, m, path); /* a PEFT directory */
    gguf_file g;
    memset(a, 0, sizeof *a);
    if (gguf_open(&g, path) != 0) return -1;
    float alpha;
    if (lora_read_header(&g, m, path, &alpha) != 0) goto fail;
    /* the targets and the rank come from layer 0; every other layer must then have exactly the same,
     * and the file must hold nothing else */
    int targets[LORA_N_TARGETS] = {0}, r = -1;
    char name[128];
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        lora_tensor_name(name, sizeof name, 0, t, 'a');
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
            lora_tensor_name(name, sizeof name, l, t, 'a');
            if (lora_read_tensor(&g, path, name, in, r, a->A[l * LORA_N_TARGETS + t]) != 0) goto fail_free;
            lora_tensor_name(name, sizeof name, l, t, 'b');
            if (lora_read_tensor(&g, path, name, r, out, a->B[l * LORA_N_TARGETS + t]) != 0) goto fail_free;
            used += 2;
        }
    }
    if (used != g.n_tensors) {
        lora_unused_tensor_error(&g, a, path, used);
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
