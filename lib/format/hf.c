/* hf.c — Hugging Face model directory -> in-memory GGUF (see hf.h).
 *
 * Facts read from llama.cpp's convert_hf_to_gguf.py (LlamaModel, Qwen2Model) and transformers'
 * LlamaConfig / Qwen2Config (defaults: num_key_value_heads = num_attention_heads, rope_theta 10000,
 * tie_word_embeddings false). Nothing is copied from either. */
#define _GNU_SOURCE
#include "hf.h"

#include <cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "safetensors.h"

#define HF_ALIGN 32

typedef struct hf_config {
    const char *arch; /* "llama" | "qwen2" */
    int permute_qk;   /* llama: rotate-half -> adjacent-pair rows */
    int needs_bias;   /* qwen2: q/k/v biases required */
    int64_t hidden, n_layers, n_heads, n_kv_heads, ffn, vocab, ctx, head_dim;
    double eps, theta;
    int tied;
    int llama3;       /* rope_scaling type llama3 */
    double factor, low_freq, high_freq;
    int64_t orig_ctx;
} hf_config;

/* ---------------------------------------------------------------------------------------------
 * config.json */

/* Integer key in [lo, hi]; when absent (or null) uses def, or fails when required. */
static int hf_cfg_int(const char *file, const cJSON *root, const char *key, int required, int64_t def,
                      int64_t lo, int64_t hi, int64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) return slim_set_error("%s: key '%s' is missing", file, key);
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return slim_set_error("%s: key '%s' is %s, expected an integer", file, key, slim_json_type_name(v));
    if (v->valuedouble < (double)lo || v->valuedouble > (double)hi)
        return slim_set_error("%s: key '%s' = %.17g is out of range [%lld, %lld]", file, key, v->valuedouble,
                              (long long)lo, (long long)hi);
    *out = (int64_t)v->valuedouble;
    return 0;
}

/* Positive number key; when absent (or null) uses def, or fails when required. */
static int hf_cfg_num(const char *file, const cJSON *root, const char *key, int required, double def,
                      double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) return slim_set_error("%s: key '%s' is missing", file, key);
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v))
        return slim_set_error("%s: key '%s' is %s, expected a number", file, key, slim_json_type_name(v));
    if (!(v->valuedouble > 0) || !isfinite(v->valuedouble))
        return slim_set_error("%s: key '%s' = %.17g, expected a positive number", file, key, v->valuedouble);
    *out = v->valuedouble;
    return 0;
}

static int hf_cfg_rope_scaling(const char *file, const cJSON *rs, const char *rs_key, hf_config *c) {
    if (!rs || cJSON_IsNull(rs)) return 0;
    if (!cJSON_IsObject(rs))
        return slim_set_error("%s: key '%s' is %s, expected an object", file, rs_key, slim_json_type_name(rs));
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!type) type = cJSON_GetObjectItemCaseSensitive(rs, "type");
    if (!cJSON_IsString(type))
        return slim_set_error("%s: key '%s.rope_type' is %s, expected a string", file, rs_key,
                              type ? slim_json_type_name(type) : "missing");
    if (strcmp(type->valuestring, "default") == 0) return 0;
    if (strcmp(type->valuestring, "llama3") != 0)
        return slim_set_error("%s: %s type '%.40s' is not supported (only 'llama3')", file, rs_key,
                              type->valuestring);
    if (!c->permute_qk)
        return slim_set_error("%s: %s type 'llama3' is only supported for llama models, not %s", file, rs_key,
                              c->arch);
    /* defaults as in the converter's LlamaModel.generate_extra_tensors */
    if (hf_cfg_num(file, rs, "factor", 0, 8.0, &c->factor)) return -1;
    if (hf_cfg_num(file, rs, "low_freq_factor", 0, 1.0, &c->low_freq)) return -1;
    if (hf_cfg_num(file, rs, "high_freq_factor", 0, 4.0, &c->high_freq)) return -1;
    if (hf_cfg_int(file, rs, "original_max_position_embeddings", 0, 8192, 1, INT32_MAX, &c->orig_ctx)) return -1;
    if (c->low_freq == c->high_freq)
        return slim_set_error("%s: %s: low_freq_factor equals high_freq_factor (%g): the smoothing divides by "
                              "their difference", file, rs_key, c->low_freq);
    c->llama3 = 1;
    return 0;
}

static int hf_cfg_parse(const char *file, const cJSON *root, hf_config *c) {
    memset(c, 0, sizeof *c);
    if (!cJSON_IsObject(root))
        return slim_set_error("%s: expected a JSON object, found %s", file, slim_json_type_name(root));
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (!mt) return slim_set_error("%s: key 'model_type' is missing", file);
    if (!cJSON_IsString(mt))
        return slim_set_error("%s: key 'model_type' is %s, expected a string", file, slim_json_type_name(mt));
    if (strcmp(mt->valuestring, "llama") == 0 || strcmp(mt->valuestring, "mistral") == 0) {
        c->arch = "llama";
        c->permute_qk = 1;
    } else if (strcmp(mt->valuestring, "qwen2") == 0) {
        c->arch = "qwen2";
        c->needs_bias = 1;
    } else {
        return slim_set_error("%s: model_type '%.60s' is not supported (llama, mistral, qwen2)", file,
                              mt->valuestring);
    }
    const int64_t big = INT32_MAX;
    if (hf_cfg_int(file, root, "hidden_size", 1, 0, 1, big, &c->hidden) ||
        hf_cfg_int(file, root, "num_hidden_layers", 1, 0, 1, 100000, &c->n_layers) ||
        hf_cfg_int(file, root, "num_attention_heads", 1, 0, 1, big, &c->n_heads) ||
        hf_cfg_int(file, root, "num_key_value_heads", 0, c->n_heads, 1, big, &c->n_kv_heads) ||
        hf_cfg_int(file, root, "intermediate_size", 1, 0, 1, big, &c->ffn) ||
        hf_cfg_int(file, root, "vocab_size", 1, 0, 1, big, &c->vocab) ||
        hf_cfg_int(file, root, "max_position_embeddings", 1, 0, 1, big, &c->ctx) ||
        hf_cfg_num(file, root, "rms_norm_eps", 1, 0, &c->eps))
        return -1;
    /* transformers >= 5 moves rope_theta and the scaling into "rope_parameters" */
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    if (rp && !cJSON_IsObject(rp) && !cJSON_IsNull(rp))
        return slim_set_error("%s: key 'rope_parameters' is %s, expected an object", file,
                              slim_json_type_name(rp));
    if (cJSON_GetObjectItemCaseSensitive(root, "rope_theta") || !cJSON_IsObject(rp)) {
        if (hf_cfg_num(file, root, "rope_theta", 0, 10000.0, &c->theta)) return -1;
    } else if (hf_cfg_num(file, rp, "rope_theta", 0, 10000.0, &c->theta)) {
        return -1;
    }
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
    if (tie && !cJSON_IsNull(tie) && !cJSON_IsBool(tie))
        return slim_set_error("%s: key 'tie_word_embeddings' is %s, expected a boolean", file,
                              slim_json_type_name(tie));
    c->tied = cJSON_IsTrue(tie);
    if (c->hidden % c->n_heads)
        return slim_set_error("%s: hidden_size %lld is not a multiple of num_attention_heads %lld", file,
                              (long long)c->hidden, (long long)c->n_heads);
    if (c->n_heads % c->n_kv_heads)
        return slim_set_error("%s: num_attention_heads %lld is not a multiple of num_key_value_heads %lld", file,
                              (long long)c->n_heads, (long long)c->n_kv_heads);
    c->head_dim = c->hidden / c->n_heads;
    int64_t hd;
    if (hf_cfg_int(file, root, "head_dim", 0, c->head_dim, 1, big, &hd)) return -1;
    if (hd != c->head_dim)
        return slim_set_error("%s: head_dim %lld differs from hidden_size / num_attention_heads = %lld (not "
                              "supported)", file, (long long)hd, (long long)c->head_dim);
    if (c->head_dim % 2)
        return slim_set_error("%s: head dimension %lld is odd: RoPE rotates pairs", file, (long long)c->head_dim);
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (rs && !cJSON_IsNull(rs)) return hf_cfg_rope_scaling(file, rs, "rope_scaling", c);
    if (cJSON_IsObject(rp)) return hf_cfg_rope_scaling(file, rp, "rope_parameters", c);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * GGUF key/values, filled as gguf_open() fills them */

typedef struct {
    gguf_kv *kv;
    uint64_t n, cap;
} hf_kvs;

static gguf_kv *hf_kv_add(hf_kvs *k, const char *arch, const char *key) {
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 32;
        k->kv = slim_realloc(k->kv, k->cap * sizeof(gguf_kv));
    }
    gguf_kv *kv = &k->kv[k->n++];
    memset(kv, 0, sizeof *kv);
    char buf[160];
    if (arch) snprintf(buf, sizeof buf, "%s.%s", arch, key);
    kv->key = slim_strdup(arch ? buf : key);
    return kv;
}

static void hf_kv_u32(hf_kvs *k, const char *arch, const char *key, uint32_t v) {
    gguf_kv *kv = hf_kv_add(k, arch, key);
    kv->type = GGUF_TYPE_UINT32;
    kv->u64 = v; kv->i64 = v; kv->f64 = v;
}

static void hf_kv_f32(hf_kvs *k, const char *arch, const char *key, double v) {
    gguf_kv *kv = hf_kv_add(k, arch, key);
    kv->type = GGUF_TYPE_FLOAT32;
    kv->f64 = (float)v;
}

static void hf_kv_str(hf_kvs *k, const char *arch, const char *key, const char *v) {
    gguf_kv *kv = hf_kv_add(k, arch, key);
    kv->type = GGUF_TYPE_STRING;
    kv->str = slim_strdup(v);
    kv->str_len = strlen(v);
}

static void hf_kvs_free(hf_kvs *k) {
    for (uint64_t i = 0; i < k->n; i++) { free(k->kv[i].key); free(k->kv[i].str); }
    free(k->kv);
    memset(k, 0, sizeof *k);
}

/* The directory's own name (trailing slashes ignored, "." resolved), for general.name. */
static char *hf_dir_name(const char *dir) {
    char *real = realpath(dir, NULL);
    const char *s = real ? real : dir;
    size_t n = strlen(s);
    while (n > 1 && s[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && s[b - 1] != '/') b--;
    char *name = slim_malloc(n - b + 1);
    memcpy(name, s + b, n - b);
    name[n - b] = 0;
    free(real);
    return name;
}

static void hf_make_kvs(hf_kvs *k, const hf_config *c, const char *dir) {
    const char *a = c->arch;
    hf_kv_str(k, NULL, "general.architecture", a);
    char *name = hf_dir_name(dir);
    hf_kv_str(k, NULL, "general.name", name);
    free(name);
    hf_kv_u32(k, a, "context_length", (uint32_t)c->ctx);
    hf_kv_u32(k, a, "embedding_length", (uint32_t)c->hidden);
    hf_kv_u32(k, a, "block_count", (uint32_t)c->n_layers);
    hf_kv_u32(k, a, "feed_forward_length", (uint32_t)c->ffn);
    hf_kv_u32(k, a, "attention.head_count", (uint32_t)c->n_heads);
    hf_kv_u32(k, a, "attention.head_count_kv", (uint32_t)c->n_kv_heads);
    hf_kv_f32(k, a, "attention.layer_norm_rms_epsilon", c->eps);
    hf_kv_f32(k, a, "rope.freq_base", c->theta);
    hf_kv_u32(k, a, "rope.dimension_count", (uint32_t)c->head_dim);
    hf_kv_u32(k, a, "vocab_size", (uint32_t)c->vocab);
    if (c->llama3) {
        hf_kv_str(k, a, "rope.scaling.type", "llama3");
        hf_kv_f32(k, a, "rope.scaling.factor", c->factor);
        hf_kv_f32(k, a, "rope.scaling.low_freq_factor", c->low_freq);
        hf_kv_f32(k, a, "rope.scaling.high_freq_factor", c->high_freq);
        hf_kv_u32(k, a, "rope.scaling.original_context_length", (uint32_t)c->orig_ctx);
    }
    hf_kv_str(k, NULL, "tokenizer.ggml.model", "none");
}

/* ---------------------------------------------------------------------------------------------
 * weights */

typedef struct {
    const safetensors_tensor *t;
    const char *file; /* the safetensors path holding it */
    int used;
} hf_src;

typedef struct {
    safetensors_file *files;
    int n_files;
    hf_src *src;
    uint64_t n_src;
    char where[64]; /* "model.safetensors" or "the shards of model.safetensors.index.json" */
} hf_weights;

static void hf_weights_free(hf_weights *w) {
    for (int i = 0; i < w->n_files; i++) safetensors_close(&w->files[i]);
    free(w->files);
    free(w->src);
    memset(w, 0, sizeof *w);
}

static const hf_src *hf_find_src(const hf_weights *w, const char *name) {
    for (uint64_t i = 0; i < w->n_src; i++)
        if (strcmp(w->src[i].t->name, name) == 0) return &w->src[i];
    return NULL;
}

/* Opens the files in names[0..n) (relative to dir) and lists their tensors; a tensor in two files
 * is an error. */
static int hf_weights_open(hf_weights *w, const char *dir, char *const *names, int n) {
    w->files = slim_calloc((size_t)n, sizeof(safetensors_file));
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        if (slim_format_path(path, sizeof path, "%s/%s", dir, names[i])) return -1;
        if (safetensors_open(&w->files[i], path)) return -1;
        w->n_files = i + 1;
        total += w->files[i].n_tensors;
    }
    w->src = slim_calloc((size_t)total + 1, sizeof(hf_src));
    for (int i = 0; i < n; i++)
        for (uint64_t j = 0; j < w->files[i].n_tensors; j++) {
            const safetensors_tensor *t = &w->files[i].tensors[j];
            const hf_src *prev = hf_find_src(w, t->name);
            if (prev)
                return slim_set_error("%s: tensor '%s' is also in %s", w->files[i].path, t->name, prev->file);
            w->src[w->n_src++] = (hf_src){ .t = t, .file = w->files[i].path };
        }
    return 0;
}

/* Reads model.safetensors.index.json: opens every shard named in its weight_map and checks that
 * each listed tensor is in the shard the index names. */
static int hf_weights_open_index(hf_weights *w, const char *dir, const char *index_path) {
    cJSON *root = slim_read_json(index_path);
    if (!root) return -1;
    int rc = -1, n = 0;
    char **names = NULL;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        slim_set_error("%s: key 'weight_map' is %s, expected an object", index_path,
                       wm ? slim_json_type_name(wm) : "missing");
        goto done;
    }
    int cap = cJSON_GetArraySize(wm);
    names = slim_calloc((size_t)cap + 1, sizeof(char *));
    for (const cJSON *e = wm->child; e; e = e->next) {
        if (!cJSON_IsString(e)) {
            slim_set_error("%s: weight_map['%.120s'] is %s, expected a file name", index_path, e->string,
                           slim_json_type_name(e));
            goto done;
        }
        const char *s = e->valuestring;
        if (!s[0] || strchr(s, '/') || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) {
            slim_set_error("%s: weight_map['%.120s'] = '%.120s' is not a file name in the model directory",
                           index_path, e->string, s);
            goto done;
        }
        int k = 0;
        while (k < n && strcmp(names[k], s) != 0) k++;
        if (k == n) names[n++] = slim_strdup(s);
    }
    if (n == 0) {
        slim_set_error("%s: weight_map is empty", index_path);
        goto done;
    }
    if (hf_weights_open(w, dir, names, n)) goto done;
    for (const cJSON *e = wm->child; e; e = e->next) {
        const hf_src *s = hf_find_src(w, e->string);
        size_t fl = strlen(e->valuestring), pl = s ? strlen(s->file) : 0;
        if (!s || pl < fl + 1 || strcmp(s->file + pl - fl, e->valuestring) != 0 || s->file[pl - fl - 1] != '/') {
            slim_set_error("%s: tensor '%.120s' is listed in shard '%.120s' but is not there", index_path,
                           e->string, e->valuestring);
            goto done;
        }
    }
    rc = 0;
done:
    for (int k = 0; k < n; k++) free(names[k]);
    free(names);
    cJSON_Delete(root);
    return rc;
}

/* One GGUF tensor to build: its source, its expected HF shape, and the head count of the Q/K row
 * permutation (0 for none). */
typedef struct {
    char name[96];
    const hf_src *src;
    int64_t shape[2];
    int n_dims;
    int64_t perm_heads;
    const char *why; /* how the expected shape follows from the config */
} hf_plan;

typedef struct {
    hf_plan *p;
    int n, cap;
} hf_plans;

/* Adds hf_name -> gguf_name with the expected shape [d0] or [d0, d1] (d1 = 0 for rank 1); a missing
 * tensor fails unless optional. */
static int hf_plan_add(hf_plans *ps, hf_weights *w, const char *dir, const char *hf_name, const char *gguf_name,
                       int64_t d0, int64_t d1, int64_t perm_heads, const char *why, int optional) {
    const hf_src *s = hf_find_src(w, hf_name);
    if (!s) {
        if (optional) return 0;
        return slim_set_error("%s: tensor '%s' is missing from %s", dir, hf_name, w->where);
    }
    const safetensors_tensor *t = s->t;
    int want_dims = d1 ? 2 : 1;
    if ((int)t->n_dims != want_dims || t->shape[0] != d0 || (d1 && t->shape[1] != d1)) {
        char got[96];
        int len = snprintf(got, sizeof got, "[");
        for (uint32_t d = 0; d < t->n_dims && len < 80; d++)
            len += snprintf(got + len, sizeof got - (size_t)len, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
        snprintf(got + len, sizeof got - (size_t)len, "]");
        if (d1)
            return slim_set_error("%s: tensor '%s' has shape %s, expected [%lld, %lld] (%s)", s->file, hf_name, got,
                                  (long long)d0, (long long)d1, why);
        return slim_set_error("%s: tensor '%s' has shape %s, expected [%lld] (%s)", s->file, hf_name, got,
                              (long long)d0, why);
    }
    if (ps->n == ps->cap) {
        ps->cap = ps->cap ? 2 * ps->cap : 64;
        ps->p = slim_realloc(ps->p, (size_t)ps->cap * sizeof(hf_plan));
    }
    hf_plan *p = &ps->p[ps->n++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", gguf_name);
    p->src = s;
    p->shape[0] = d0;
    p->shape[1] = d1;
    p->n_dims = want_dims;
    p->perm_heads = perm_heads;
    p->why = why;
    ((hf_src *)s)->used = 1;
    return 0;
}

/* A tensor of a llama / qwen2 layer: transformers' name, llama.cpp's, and how to check and place it. */
typedef struct hf_layer_tensor {
    const char *hf, *gguf;
    int rows, cols; /* 0 hidden, 1 q_out, 2 kv_out, 3 ffn; cols -1: rank 1 */
    int perm;       /* 1 q heads, 2 kv heads */
    int bias;       /* 1: bias (required by qwen2, optional for llama) */
    const char *why;
} hf_layer_tensor;
static const hf_layer_tensor hf_layer_tensors[] = {
    { "input_layernorm.weight", "attn_norm.weight", 0, -1, 0, 0, "hidden_size" },
    { "self_attn.q_proj.weight", "attn_q.weight", 1, 0, 1, 0, "num_attention_heads * head_dim, hidden_size" },
    { "self_attn.k_proj.weight", "attn_k.weight", 2, 0, 2, 0, "num_key_value_heads * head_dim, hidden_size" },
    { "self_attn.v_proj.weight", "attn_v.weight", 2, 0, 0, 0, "num_key_value_heads * head_dim, hidden_size" },
    { "self_attn.o_proj.weight", "attn_output.weight", 0, 1, 0, 0, "hidden_size, num_attention_heads * head_dim" },
    { "self_attn.q_proj.bias", "attn_q.bias", 1, -1, 1, 1, "num_attention_heads * head_dim" },
    { "self_attn.k_proj.bias", "attn_k.bias", 2, -1, 2, 1, "num_key_value_heads * head_dim" },
    { "self_attn.v_proj.bias", "attn_v.bias", 2, -1, 0, 1, "num_key_value_heads * head_dim" },
    { "post_attention_layernorm.weight", "ffn_norm.weight", 0, -1, 0, 0, "hidden_size" },
    { "mlp.gate_proj.weight", "ffn_gate.weight", 3, 0, 0, 0, "intermediate_size, hidden_size" },
    { "mlp.up_proj.weight", "ffn_up.weight", 3, 0, 0, 0, "intermediate_size, hidden_size" },
    { "mlp.down_proj.weight", "ffn_down.weight", 0, 3, 0, 0, "hidden_size, intermediate_size" },
};

const char *hf_layer_name(const char *gguf_suffix) {
    for (size_t i = 0; i < sizeof hf_layer_tensors / sizeof hf_layer_tensors[0]; i++)
        if (!strcmp(gguf_suffix, hf_layer_tensors[i].gguf)) return hf_layer_tensors[i].hf;
    return NULL;
}

static int hf_plan_all(hf_plans *ps, hf_weights *w, const hf_config *c, const char *dir) {
    const int64_t H = c->hidden, q_out = c->n_heads * c->head_dim, kv_out = c->n_kv_heads * c->head_dim;
    const int64_t ph_q = c->permute_qk ? c->n_heads : 0, ph_k = c->permute_qk ? c->n_kv_heads : 0;
    if (hf_plan_add(ps, w, dir, "model.embed_tokens.weight", "token_embd.weight", c->vocab, H, 0,
                    "vocab_size, hidden_size", 0))
        return -1;
    for (int64_t l = 0; l < c->n_layers; l++) {
        const int64_t dims[4] = { H, q_out, kv_out, c->ffn };
        const size_t n_m = sizeof hf_layer_tensors / sizeof hf_layer_tensors[0];
        for (size_t i = 0; i < n_m; i++) {
            const hf_layer_tensor *e = &hf_layer_tensors[i];
            char hf_name[160], gguf_name[96];
            snprintf(hf_name, sizeof hf_name, "model.layers.%lld.%s", (long long)l, e->hf);
            snprintf(gguf_name, sizeof gguf_name, "blk.%lld.%s", (long long)l, e->gguf);
            int64_t perm = e->perm == 1 ? ph_q : e->perm == 2 ? ph_k : 0;
            int64_t d1 = e->cols < 0 ? 0 : dims[e->cols];
            if (hf_plan_add(ps, w, dir, hf_name, gguf_name, dims[e->rows], d1, perm, e->why, e->bias && !c->needs_bias))
                return -1;
        }
    }
    if (hf_plan_add(ps, w, dir, "model.norm.weight", "output_norm.weight", H, 0, 0, "hidden_size", 0) ||
        hf_plan_add(ps, w, dir, "lm_head.weight", "output.weight", c->vocab, H, 0, "vocab_size, hidden_size",
                    c->tied))
        return -1;
    for (uint64_t i = 0; i < w->n_src; i++) {
        const hf_src *s = &w->src[i];
        size_t nl = strlen(s->t->name), sl = strlen(".rotary_emb.inv_freq");
        if (s->used || (nl >= sl && strcmp(s->t->name + nl - sl, ".rotary_emb.inv_freq") == 0)) continue;
        return slim_set_error("%s: tensor '%s' is not part of a %s model with %lld layers (unexpected)", s->file,
                              s->t->name, c->arch, (long long)c->n_layers);
    }
    return 0;
}

/* Per-frequency RoPE divisors of llama3 scaling, in float32 and in the order of operations of
 * convert_hf_to_gguf.py (LlamaModel.generate_extra_tensors): freq_i = 1 / theta^(2i/hd),
 * wavelen = 2 pi / freq; factor 1 when wavelen < orig/high, `factor` when wavelen > orig/low, else
 * 1 / ((1 - s) / factor + s) with s = (orig / wavelen - low) / (high - low). out: [hd/2]. */
static void hf_llama3_factors(const hf_config *c, float *out) {
    /* computed in double and rounded once: float32 powf differs from the converter's torch pow by an
     * ulp for some frequencies, while double agrees with it (and with tests/golden) to within 2 ulp */
    const int64_t dim = c->head_dim;
    const double factor = c->factor, low = c->low_freq, orig = c->orig_ctx;
    const double low_wavelen = orig / c->low_freq, high_wavelen = orig / c->high_freq;
    const double span = c->high_freq - c->low_freq;
    for (int64_t i = 0; i < dim / 2; i++) {
        double freq = 1.0 / pow(c->theta, (double)(2 * i) / (double)dim);
        double wavelen = 2.0 * M_PI / freq;
        double f;
        if (wavelen < high_wavelen) f = 1.0;
        else if (wavelen > low_wavelen) f = factor;
        else {
            double sm = (orig / wavelen - low) / span;
            f = 1.0 / ((1.0 - sm) / factor + sm);
        }
        out[i] = (float)f;
    }
}

/* Copies a [rows, cols] row-major tensor of esz-byte elements, permuting rows from HF's rotate-half
 * order to GGUF's adjacent-pair order when n_head > 0: with hd = rows / n_head, output row
 * h*hd + 2j + s comes from input row h*hd + s*hd/2 + j (j < hd/2, s in {0, 1}); this is
 * reshape(n_head, 2, hd/2, cols).swapaxes(1, 2).reshape(rows, cols). */
static void hf_copy_rows(uint8_t *dst, const uint8_t *src, int64_t rows, size_t row_bytes, int64_t n_head) {
    if (!n_head) {
        memcpy(dst, src, (size_t)rows * row_bytes);
        return;
    }
    const int64_t hd = rows / n_head, half = hd / 2;
    for (int64_t h = 0; h < n_head; h++)
        for (int64_t j = 0; j < half; j++)
            for (int64_t s = 0; s < 2; s++)
                memcpy(dst + (size_t)(h * hd + 2 * j + s) * row_bytes,
                       src + (size_t)(h * hd + s * half + j) * row_bytes, row_bytes);
}

static uint64_t hf_align(uint64_t n) { return (n + HF_ALIGN - 1) / HF_ALIGN * HF_ALIGN; }

/* Whether plan p's tensor is used in place, in the safetensors file's mapping: no row permutation and
 * data aligned to its element size. Otherwise it is copied (permuted) into hf_open's own memory. */
static int hf_in_place(const hf_plan *p) {
    const safetensors_tensor *t = p->src->t;
    const uintptr_t esz = t->type == GGML_TYPE_F32 ? 4 : 2;
    return p->perm_heads == 0 && (uintptr_t)t->data % esz == 0;
}

/* owner_close of an hf_open'ed gguf_file: closes the safetensors files its tensors point into. */
static void hf_weights_release(void *owner) {
    hf_weights_free(owner);
    free(owner);
}

/* Fills g->tensors from the plans: tensors used in place point into the safetensors mappings, the
 * others are copied (Q/K rows permuted) into map at their 32-aligned offsets. */
static void hf_fill_tensors(gguf_file *g, const hf_plans *ps, uint8_t *map) {
    uint64_t off = 0, copy_off = 0;
    for (int i = 0; i < ps->n; i++) {
        const hf_plan *p = &ps->p[i];
        const safetensors_tensor *t = p->src->t;
        gguf_tensor *gt = &g->tensors[g->n_tensors++];
        gt->name = slim_strdup(p->name);
        gt->n_dims = (uint32_t)p->n_dims;
        gt->ne[0] = p->n_dims == 2 ? p->shape[1] : p->shape[0];
        gt->ne[1] = p->n_dims == 2 ? p->shape[0] : 1;
        gt->ne[2] = gt->ne[3] = 1;
        gt->type = t->type;
        gt->offset = off; /* as if every tensor were laid out in one buffer (informational) */
        gt->nbytes = t->nbytes;
        off += hf_align(t->nbytes);
        if (hf_in_place(p)) {
            gt->data = t->data;
            continue;
        }
        gt->data = map + copy_off;
        size_t row_bytes = (size_t)(t->nbytes / (uint64_t)p->shape[0]);
        if (p->shape[0]) hf_copy_rows(map + copy_off, t->data, p->shape[0], row_bytes, p->perm_heads);
        copy_off += hf_align(t->nbytes);
    }
}

int hf_is_model_dir(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return 0;
    char cfg[4096];
    if (snprintf(cfg, sizeof cfg, "%s/config.json", path) >= (int)sizeof cfg) return 0;
    return access(cfg, R_OK) == 0;
}

int hf_open(gguf_file *g, const char *dir) {
    memset(g, 0, sizeof *g);
    char cfg_path[4096], st_path[4096], idx_path[4096];
    if (slim_format_path(cfg_path, sizeof cfg_path, "%s/config.json", dir) ||
        slim_format_path(st_path, sizeof st_path, "%s/model.safetensors", dir) ||
        slim_format_path(idx_path, sizeof idx_path, "%s/model.safetensors.index.json", dir))
        return -1;
    cJSON *root = slim_read_json(cfg_path);
    if (!root) return -1;
    hf_config c;
    int rc = hf_cfg_parse(cfg_path, root, &c);
    cJSON_Delete(root);
    if (rc) return -1;

    hf_weights *w = slim_calloc(1, sizeof *w);
    hf_plans ps = { 0 };
    hf_kvs kvs = { 0 };
    uint8_t *map = NULL;
    size_t map_size = 0;
    rc = -1;
    if (access(st_path, F_OK) == 0) {
        char one[] = "model.safetensors";
        char *names[1] = { one };
        snprintf(w->where, sizeof w->where, "model.safetensors");
        if (hf_weights_open(w, dir, names, 1)) goto fail;
    } else if (access(idx_path, F_OK) == 0) {
        snprintf(w->where, sizeof w->where, "the shards of model.safetensors.index.json");
        if (hf_weights_open_index(w, dir, idx_path)) goto fail;
    } else {
        slim_set_error("%s: neither model.safetensors nor model.safetensors.index.json is there", dir);
        goto fail;
    }
    if (hf_plan_all(&ps, w, &c, dir)) goto fail;

    /* own memory only for the tensors that cannot be used in place, and rope_freqs */
    uint64_t total = 0;
    for (int i = 0; i < ps.n; i++) total += hf_in_place(&ps.p[i]) ? 0 : hf_align(ps.p[i].src->t->nbytes);
    uint64_t freqs_off = total;
    if (c.llama3) total += hf_align((uint64_t)(c.head_dim / 2) * sizeof(float));
    map_size = (size_t)(total ? total : 1);
    void *m = mmap(NULL, map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        slim_set_error("%s: cannot allocate %zu bytes for the weights: %s", dir, map_size, strerror(errno));
        goto fail;
    }
    map = m;

    int n_t = ps.n + (c.llama3 ? 1 : 0);
    g->tensors = slim_calloc((size_t)n_t, sizeof(gguf_tensor));
    hf_fill_tensors(g, &ps, map);
    if (c.llama3) {
        gguf_tensor *gt = &g->tensors[g->n_tensors++];
        gt->name = slim_strdup("rope_freqs.weight");
        gt->n_dims = 1;
        gt->ne[0] = c.head_dim / 2;
        gt->ne[1] = gt->ne[2] = gt->ne[3] = 1;
        gt->type = GGML_TYPE_F32;
        gt->offset = freqs_off;
        gt->nbytes = (uint64_t)(c.head_dim / 2) * sizeof(float);
        gt->data = map + freqs_off;
        hf_llama3_factors(&c, (float *)(map + freqs_off));
    }
    if (mprotect(map, map_size, PROT_READ) != 0) {
        slim_set_error("%s: mprotect: %s", dir, strerror(errno));
        goto fail;
    }
    hf_make_kvs(&kvs, &c, dir);
    g->path = slim_strdup(dir);
    g->version = 3;
    g->n_kv = kvs.n;
    g->kv = kvs.kv;
    g->alignment = HF_ALIGN;
    g->data_offset = 0;
    g->map = map;
    g->map_size = map_size;
    g->owner = w;
    g->owner_close = hf_weights_release;
    rc = 0;
fail:
    free(ps.p);
    if (rc) {
        hf_weights_release(w);
        hf_kvs_free(&kvs);
        for (uint64_t i = 0; i < g->n_tensors; i++) free(g->tensors[i].name);
        free(g->tensors);
        if (map) munmap(map, map_size);
        memset(g, 0, sizeof *g);
    }
    return rc;
}
