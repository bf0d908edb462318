/* test_hf.c — hf_open(): Hugging Face model directories read as in-memory GGUF files.
 *
 * Each case writes a tiny HF directory here (config.json via cJSON, random weights in safetensors
 * written by a small writer below) and, independently, the GGUF that llama.cpp's converter would
 * make of it (with gguf_writer: renamed tensors, ne = reversed HF shape, q/k rows permuted for
 * llama by an element-wise formula written here), then checks that every key and every tensor
 * of hf_open()'s result equals the written GGUF. Cases: llama (GQA, untied, mixed F32/F16/BF16),
 * qwen2 (biases, tied, no permutation), sharded llama (index + 2 shards), llama3 rope_scaling
 * frequency factors against the formula evaluated in double here, and that the permutation turns
 * HF's rotate-half RoPE into adjacent-pair RoPE; error cases name the file and key or tensor. */
#define _GNU_SOURCE
#include <cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "format/gguf.h"
#include "format/hf.h"
#include "testutil.h"

static char tmp_root[512];

/* ---------------------------------------------------------------------------------------------
 * a tiny model: config and HF tensors */

typedef struct {
    const char *model_type;
    int dim, n_layers, n_heads, n_kv_heads, ffn, vocab, ctx;
    int tied, bias;
} tcfg;

typedef struct {
    char name[128];
    uint32_t type; /* ggml type */
    int rank;
    int64_t shape[2];
    uint8_t *data;
    size_t nbytes;
} ttensor;

typedef struct {
    ttensor t[256];
    int n;
} tmodel;

static size_t type_size(uint32_t type) { return type == GGML_TYPE_F32 ? 4 : 2; }
static const char *type_dtype(uint32_t type) {
    return type == GGML_TYPE_F32 ? "F32" : type == GGML_TYPE_F16 ? "F16" : "BF16";
}

static void add_tensor(tmodel *m, const char *name, uint32_t type, int64_t d0, int64_t d1, slim_rng *rng) {
    ttensor *t = &m->t[m->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->type = type;
    t->rank = d1 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1;
    size_t nel = (size_t)d0 * (size_t)(d1 ? d1 : 1);
    t->nbytes = nel * type_size(type);
    t->data = malloc(t->nbytes + 1);
    for (size_t i = 0; i < nel; i++) {
        float v = slim_rng_normal(rng) * 0.5f;
        if (type == GGML_TYPE_F32) memcpy(t->data + 4 * i, &v, 4);
        else if (type == GGML_TYPE_F16) { uint16_t h = slim_fp32_to_fp16(v); memcpy(t->data + 2 * i, &h, 2); }
        else { uint32_t b; memcpy(&b, &v, 4); uint16_t h = (uint16_t)(b >> 16); memcpy(t->data + 2 * i, &h, 2); }
    }
}

static void model_free_t(tmodel *m) {
    for (int i = 0; i < m->n; i++) free(m->t[i].data);
    m->n = 0;
}

static ttensor *find_t(tmodel *m, const char *name) {
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->t[i].name, name) == 0) return &m->t[i];
    return NULL;
}

static void drop_t(tmodel *m, const char *name) {
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->t[i].name, name) == 0) {
            free(m->t[i].data);
            m->t[i] = m->t[--m->n];
            return;
        }
}

/* The HF tensors of a config: q_proj in F32, k_proj in BF16, other matrices F16, norms F32,
 * biases F32 (when c->bias), lm_head unless tied. */
static void build_model(tmodel *m, const tcfg *c, uint64_t seed) {
    slim_rng rng;
    slim_rng_seed(&rng, seed);
    m->n = 0;
    int hd = c->dim / c->n_heads, q = c->n_heads * hd, kv = c->n_kv_heads * hd;
    add_tensor(m, "model.embed_tokens.weight", GGML_TYPE_F16, c->vocab, c->dim, &rng);
    for (int l = 0; l < c->n_layers; l++) {
        char n[128];
#define L(suffix, type, d0, d1)                                                     \
        snprintf(n, sizeof n, "model.layers.%d.%s", l, suffix);                     \
        add_tensor(m, n, type, d0, d1, &rng)
        L("input_layernorm.weight", GGML_TYPE_F32, c->dim, 0);
        L("self_attn.q_proj.weight", GGML_TYPE_F32, q, c->dim);
        L("self_attn.k_proj.weight", GGML_TYPE_BF16, kv, c->dim);
        L("self_attn.v_proj.weight", GGML_TYPE_F16, kv, c->dim);
        L("self_attn.o_proj.weight", GGML_TYPE_F16, c->dim, q);
        if (c->bias) {
            L("self_attn.q_proj.bias", GGML_TYPE_F32, q, 0);
            L("self_attn.k_proj.bias", GGML_TYPE_F32, kv, 0);
            L("self_attn.v_proj.bias", GGML_TYPE_F32, kv, 0);
        }
        L("post_attention_layernorm.weight", GGML_TYPE_F32, c->dim, 0);
        L("mlp.gate_proj.weight", GGML_TYPE_F16, c->ffn, c->dim);
        L("mlp.up_proj.weight", GGML_TYPE_BF16, c->ffn, c->dim);
        L("mlp.down_proj.weight", GGML_TYPE_F16, c->dim, c->ffn);
#undef L
    }
    add_tensor(m, "model.norm.weight", GGML_TYPE_F32, c->dim, 0, &rng);
    if (!c->tied) add_tensor(m, "lm_head.weight", GGML_TYPE_F16, c->vocab, c->dim, &rng);
}

static cJSON *make_config(const tcfg *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model_type", c->model_type);
    cJSON *arch = cJSON_AddArrayToObject(o, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("LlamaForCausalLM"));
    cJSON_AddNumberToObject(o, "hidden_size", c->dim);
    cJSON_AddNumberToObject(o, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(o, "num_attention_heads", c->n_heads);
    cJSON_AddNumberToObject(o, "num_key_value_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(o, "intermediate_size", c->ffn);
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab);
    cJSON_AddNumberToObject(o, "max_position_embeddings", c->ctx);
    cJSON_AddNumberToObject(o, "rms_norm_eps", 1e-5);
    cJSON_AddNumberToObject(o, "rope_theta", 10000.0);
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tied);
    cJSON_AddStringToObject(o, "torch_dtype", "float16");
    cJSON_AddNullToObject(o, "rope_scaling");
    return o;
}

/* ---------------------------------------------------------------------------------------------
 * writing a directory */

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

/* Writes the tensors m->t[i] with which[i] == want (or all when which is NULL) as one safetensors
 * file, in header order, back to back. */
static int write_safetensors(const char *path, const tmodel *m, const int *which, int want) {
    size_t cap = 1 << 16, len = 0, off = 0;
    char *json = malloc(cap);
    len += (size_t)snprintf(json + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < m->n; i++) {
        if (which && which[i] != want) continue;
        const ttensor *t = &m->t[i];
        if (t->rank == 2)
            len += (size_t)snprintf(json + len, cap - len, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld,%lld],"
                                    "\"data_offsets\":[%zu,%zu]}", t->name, type_dtype(t->type),
                                    (long long)t->shape[0], (long long)t->shape[1], off, off + t->nbytes);
        else
            len += (size_t)snprintf(json + len, cap - len, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld],"
                                    "\"data_offsets\":[%zu,%zu]}", t->name, type_dtype(t->type),
                                    (long long)t->shape[0], off, off + t->nbytes);
        off += t->nbytes;
    }
    len += (size_t)snprintf(json + len, cap - len, "}");
    if (len >= cap - 1) { free(json); return -1; }
    while (len % 8) json[len++] = ' ';
    FILE *f = fopen(path, "wb");
    if (!f) { free(json); return -1; }
    uint64_t hl = len;
    fwrite(&hl, 8, 1, f);
    fwrite(json, 1, len, f);
    for (int i = 0; i < m->n; i++)
        if (!which || which[i] == want) fwrite(m->t[i].data, 1, m->t[i].nbytes, f);
    free(json);
    return fclose(f);
}

static void dir_path(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", tmp_root, name); }

static void rm_dir(const char *dir) {
    static const char *files[] = { "config.json", "model.safetensors", "model.safetensors.index.json",
                                   "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors" };
    char p[2048];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* A fresh directory tmp_root/name with config.json (cfg) and model.safetensors (m), or with
 * 2 shards + index when sharded (tensor i goes to shard i % 2 + 1). */
static int write_dir(const char *name, const cJSON *cfg, const tmodel *m, int sharded) {
    char dir[1024], p[2048];
    dir_path(dir, sizeof dir, name);
    rm_dir(dir);
    if (mkdir(dir, 0755) != 0) return -1;
    char *text = cJSON_Print(cfg);
    snprintf(p, sizeof p, "%s/config.json", dir);
    int rc = write_text(p, text);
    free(text);
    if (rc) return -1;
    if (!sharded) {
        snprintf(p, sizeof p, "%s/model.safetensors", dir);
        return write_safetensors(p, m, NULL, 0);
    }
    int which[256];
    cJSON *idx = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(idx, "metadata");
    cJSON_AddNumberToObject(meta, "total_size", 0);
    cJSON *wm = cJSON_AddObjectToObject(idx, "weight_map");
    for (int i = 0; i < m->n; i++) {
        which[i] = i % 2 + 1;
        char shard[64];
        snprintf(shard, sizeof shard, "model-%05d-of-00002.safetensors", which[i]);
        cJSON_AddStringToObject(wm, m->t[i].name, shard);
    }
    text = cJSON_Print(idx);
    cJSON_Delete(idx);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    rc = write_text(p, text);
    free(text);
    for (int s = 1; s <= 2 && rc == 0; s++) {
        snprintf(p, sizeof p, "%s/model-%05d-of-00002.safetensors", dir, s);
        rc = write_safetensors(p, m, which, s);
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * the expected GGUF, written independently */

/* GGUF name of an HF tensor name (the converter's table), or NULL. */
static const char *gguf_name_of(const char *hf, char *buf, size_t cap) {
    static const char *const pairs[][2] = {
        { "input_layernorm.weight", "attn_norm.weight" }, { "self_attn.q_proj.weight", "attn_q.weight" },
        { "self_attn.k_proj.weight", "attn_k.weight" }, { "self_attn.v_proj.weight", "attn_v.weight" },
        { "self_attn.o_proj.weight", "attn_output.weight" }, { "self_attn.q_proj.bias", "attn_q.bias" },
        { "self_attn.k_proj.bias", "attn_k.bias" }, { "self_attn.v_proj.bias", "attn_v.bias" },
        { "post_attention_layernorm.weight", "ffn_norm.weight" }, { "mlp.gate_proj.weight", "ffn_gate.weight" },
        { "mlp.up_proj.weight", "ffn_up.weight" }, { "mlp.down_proj.weight", "ffn_down.weight" },
    };
    if (strcmp(hf, "model.embed_tokens.weight") == 0) return "token_embd.weight";
    if (strcmp(hf, "model.norm.weight") == 0) return "output_norm.weight";
    if (strcmp(hf, "lm_head.weight") == 0) return "output.weight";
    int layer, used = 0;
    if (sscanf(hf, "model.layers.%d.%n", &layer, &used) != 1 || used == 0) return NULL;
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        if (strcmp(hf + used, pairs[i][0]) == 0) {
            snprintf(buf, cap, "blk.%d.%s", layer, pairs[i][1]);
            return buf;
        }
    return NULL;
}

/* Row permutation written element-wise: GGUF row o of head h = o / hd, position r = o % hd takes
 * HF row h*hd + (r odd ? hd/2 : 0) + r/2 (pairs (i, i + hd/2) become (2i, 2i+1)). */
static void permute_rows_ref(uint8_t *dst, const uint8_t *src, int64_t rows, size_t row_bytes, int n_head) {
    int64_t hd = rows / n_head;
    for (int64_t o = 0; o < rows; o++) {
        int64_t h = o / hd, r = o % hd;
        int64_t from = h * hd + (r % 2) * (hd / 2) + r / 2;
        memcpy(dst + o * row_bytes, src + from * row_bytes, row_bytes);
    }
}

static int write_expected(const char *path, const tcfg *c, const tmodel *m, const char *name, int permute,
                          const char *arch) {
    gguf_writer *w = gguf_writer_init();
    char key[128];
    int hd = c->dim / c->n_heads;
    gguf_writer_set_str(w, "general.architecture", arch);
    gguf_writer_set_str(w, "general.name", name);
#define K_U32(k, v) snprintf(key, sizeof key, "%s." k, arch), gguf_writer_set_u32(w, key, (uint32_t)(v))
#define K_F32(k, v) snprintf(key, sizeof key, "%s." k, arch), gguf_writer_set_f32(w, key, (float)(v))
    K_U32("embedding_length", c->dim);
    K_U32("block_count", c->n_layers);
    K_U32("attention.head_count", c->n_heads);
    K_U32("attention.head_count_kv", c->n_kv_heads);
    K_U32("feed_forward_length", c->ffn);
    K_U32("context_length", c->ctx);
    K_U32("vocab_size", c->vocab);
    K_U32("rope.dimension_count", hd);
    K_F32("attention.layer_norm_rms_epsilon", 1e-5);
    K_F32("rope.freq_base", 10000.0);
    gguf_writer_set_str(w, "tokenizer.ggml.model", "none");
    int rc = 0;
    for (int i = 0; i < m->n && rc == 0; i++) {
        const ttensor *t = &m->t[i];
        char buf[128];
        const char *gn = gguf_name_of(t->name, buf, sizeof buf);
        if (!gn) { rc = -1; break; }
        const uint8_t *data = t->data;
        uint8_t *tmp = NULL;
        int is_q = strstr(t->name, "q_proj") != NULL, is_k = strstr(t->name, "k_proj") != NULL;
        if (permute && (is_q || is_k)) {
            tmp = malloc(t->nbytes);
            size_t row_bytes = t->rank == 2 ? (size_t)t->shape[1] * type_size(t->type) : type_size(t->type);
            permute_rows_ref(tmp, t->data, t->shape[0], row_bytes, is_q ? c->n_heads : c->n_kv_heads);
            data = tmp;
        }
        int64_t ne[2] = { t->rank == 2 ? t->shape[1] : t->shape[0], t->shape[0] };
        rc = gguf_writer_add_tensor(w, gn, t->type, (uint32_t)t->rank, ne, data);
        free(tmp);
    }
    if (rc == 0) rc = gguf_writer_write(w, path);
    gguf_writer_free(w);
    return rc;
}

/* Every key and tensor of want equals one of got, and got has nothing more (rope_freqs.weight
 * excepted when skip_freqs). */
static void compare_gguf(const char *label, const gguf_file *want, const gguf_file *got, int skip_freqs) {
    CHECK(got->n_kv == want->n_kv, "%s: %llu keys, want %llu", label, (unsigned long long)got->n_kv,
          (unsigned long long)want->n_kv);
    for (uint64_t i = 0; i < want->n_kv; i++) {
        const gguf_kv *a = &want->kv[i], *b = gguf_find_kv(got, a->key);
        CHECK(b != NULL, "%s: key %s missing", label, a->key);
        if (!b) continue;
        CHECK(a->type == b->type, "%s: key %s type %u want %u", label, a->key, b->type, a->type);
        if (a->type == GGUF_TYPE_STRING)
            CHECK(b->str && strcmp(a->str, b->str) == 0 && a->str_len == b->str_len, "%s: key %s = '%s' want '%s'",
                  label, a->key, b->str ? b->str : "(null)", a->str);
        else
            CHECK(a->u64 == b->u64 && a->i64 == b->i64 && a->f64 == b->f64, "%s: key %s = %g want %g", label,
                  a->key, b->f64, a->f64);
    }
    CHECK(got->n_tensors == want->n_tensors + (skip_freqs ? 1 : 0), "%s: %llu tensors, want %llu", label,
          (unsigned long long)got->n_tensors, (unsigned long long)want->n_tensors);
    int bad = 0;
    for (uint64_t i = 0; i < want->n_tensors; i++) {
        const gguf_tensor *a = &want->tensors[i], *b = gguf_find_tensor(got, a->name);
        CHECK(b != NULL, "%s: tensor %s missing", label, a->name);
        if (!b) continue;
        int same = a->n_dims == b->n_dims && a->type == b->type && a->nbytes == b->nbytes &&
                   memcmp(a->ne, b->ne, sizeof a->ne) == 0 && memcmp(a->data, b->data, a->nbytes) == 0;
        if (!same) bad++;
        CHECK(same, "%s: tensor %s differs (dims %u/%u type %s/%s ne %lldx%lld / %lldx%lld)", label, a->name,
              b->n_dims, a->n_dims, gguf_type_name(b->type), gguf_type_name(a->type), (long long)b->ne[0],
              (long long)b->ne[1], (long long)a->ne[0], (long long)a->ne[1]);
        /* in place in the safetensors mapping (aligned to the element size), or copied into hf_open's own
         * memory (32-aligned) */
        int inside = (const uint8_t *)b->data >= got->map && (const uint8_t *)b->data + b->nbytes <= got->map + got->map_size;
        uintptr_t esz = b->type == GGML_TYPE_F32 ? 4 : 2;
        CHECK(((uintptr_t)b->data) % (inside ? 32 : esz) == 0 && (inside || got->owner != NULL),
              "%s: tensor %s data not aligned inside a mapping", label, a->name);
    }
    CHECK(bad == 0, "%s: %d tensors differ", label, bad);
}

/* gguf_release_memory on an hf_open view: the tensors copied into the view's own memory (permuted Q/K,
 * present when permute) lose their data, the ones used in place in the safetensors mapping keep it. */
static void check_release(const char *label, gguf_file *g, int permute) {
    const uint8_t *lo = g->map, *hi = lo + g->map_size;
    int *own = calloc(g->n_tensors, sizeof(int)), n_own = 0, ok = 1;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const uint8_t *d = g->tensors[i].data;
        own[i] = d >= lo && d < hi;
        n_own += own[i];
    }
    gguf_release_memory(g);
    for (uint64_t i = 0; i < g->n_tensors; i++) ok &= own[i] ? g->tensors[i].data == NULL : g->tensors[i].data != NULL;
    CHECK(ok && g->map == NULL && (!permute || n_own > 0), "%s: gguf_release_memory (%d own tensors)", label, n_own);
    free(own);
}

/* Opens tmp_root/name with hf_open and compares it with the expected GGUF built from m. */
static void check_equivalent(const char *label, const char *name, const tcfg *c, const tmodel *m, int permute,
                             const char *arch) {
    char dir[1024], gpath[1100];
    dir_path(dir, sizeof dir, name);
    snprintf(gpath, sizeof gpath, "%s/expected-%s.gguf", tmp_root, name);
    CHECK(write_expected(gpath, c, m, name, permute, arch) == 0, "%s: expected gguf: %s", label, slim_last_error());
    gguf_file want, got;
    int rw = gguf_open(&want, gpath), rg = hf_open(&got, dir);
    CHECK(rw == 0, "%s: open expected: %s", label, slim_last_error());
    CHECK(rg == 0, "%s: hf_open: %s", label, slim_last_error());
    if (rw == 0 && rg == 0) {
        compare_gguf(label, &want, &got, 0);
        CHECK(strcmp(got.path, dir) == 0 && got.version == 3 && got.alignment == 32, "%s: path/version", label);
        uint32_t v = 0;
        char key[96];
        snprintf(key, sizeof key, "%s.attention.head_count_kv", arch);
        CHECK(gguf_get_u32(&got, key, &v) == 0 && v == (uint32_t)c->n_kv_heads, "%s: getter on hf gguf", label);
        CHECK((gguf_find_tensor(&got, "output.weight") != NULL) == !c->tied, "%s: output.weight presence", label);
        check_release(label, &got, permute);
    }
    if (rw == 0) gguf_close(&want);
    if (rg == 0) gguf_close(&got);
    unlink(gpath);
}

/* ---------------------------------------------------------------------------------------------
 * RoPE: the permuted rows under adjacent-pair RoPE give the HF rows under rotate-half RoPE */

static void test_rope_equivalence(const char *dir, const tcfg *c, const tmodel *m) {
    gguf_file g;
    if (hf_open(&g, dir) != 0) { CHECK(0, "hf_open: %s", slim_last_error()); return; }
    const ttensor *hq = find_t((tmodel *)m, "model.layers.1.self_attn.q_proj.weight");
    const gguf_tensor *gq = gguf_find_tensor(&g, "blk.1.attn_q.weight");
    CHECK(hq && gq && hq->type == GGML_TYPE_F32 && gq->type == GGML_TYPE_F32, "q tensors");
    if (!hq || !gq) { gguf_close(&g); return; }
    int D = c->dim, H = c->n_heads, hd = D / H, rows = H * hd;
    float *x = malloc(sizeof(float) * D), *qh = malloc(sizeof(float) * rows), *qg = malloc(sizeof(float) * rows);
    slim_rng rng;
    slim_rng_seed(&rng, 99);
    for (int i = 0; i < D; i++) x[i] = slim_rng_normal(&rng);
    double max_err = 0;
    for (int pos = 0; pos < 40; pos += 13) {
        for (int r = 0; r < rows; r++) {
            float a = 0, b = 0, wa, wb;
            for (int i = 0; i < D; i++) {
                memcpy(&wa, hq->data + 4 * ((size_t)r * D + i), 4);
                memcpy(&wb, (const uint8_t *)gq->data + 4 * ((size_t)r * D + i), 4);
                a += wa * x[i];
                b += wb * x[i];
            }
            qh[r] = a;
            qg[r] = b;
        }
        for (int h = 0; h < H; h++)
            for (int i = 0; i < hd / 2; i++) {
                double th = pos * pow(10000.0, -2.0 * i / hd), cs = cos(th), sn = sin(th);
                float *ph = qh + h * hd, *pg = qg + h * hd;
                double h0 = ph[i], h1 = ph[i + hd / 2]; /* rotate_half pairs (i, i + hd/2) */
                double hr0 = h0 * cs - h1 * sn, hr1 = h1 * cs + h0 * sn;
                double g0 = pg[2 * i], g1 = pg[2 * i + 1]; /* adjacent pairs (2i, 2i+1) */
                double gr0 = g0 * cs - g1 * sn, gr1 = g0 * sn + g1 * cs;
                max_err = fmax(max_err, fmax(fabs(hr0 - gr0), fabs(hr1 - gr1)));
            }
    }
    CHECK(max_err < 1e-4, "rotate-half RoPE of HF q != adjacent RoPE of permuted q: max err %g", max_err);
    free(x); free(qh); free(qg);
    gguf_close(&g);
}

/* ---------------------------------------------------------------------------------------------
 * llama3 rope scaling */

static void test_llama3(const tcfg *c, const tmodel *m) {
    cJSON *cfg = make_config(c);
    cJSON_DeleteItemFromObject(cfg, "rope_scaling");
    cJSON_ReplaceItemInObject(cfg, "rope_theta", cJSON_CreateNumber(500000.0));
    cJSON *rs = cJSON_AddObjectToObject(cfg, "rope_scaling");
    const double factor = 8, low = 1, high = 4, orig = 8192, theta = 500000;
    cJSON_AddNumberToObject(rs, "factor", factor);
    cJSON_AddNumberToObject(rs, "low_freq_factor", low);
    cJSON_AddNumberToObject(rs, "high_freq_factor", high);
    cJSON_AddNumberToObject(rs, "original_max_position_embeddings", orig);
    cJSON_AddStringToObject(rs, "rope_type", "llama3");
    CHECK(write_dir("llama3", cfg, m, 0) == 0, "write llama3 dir");
    cJSON_Delete(cfg);
    char dir[1024];
    dir_path(dir, sizeof dir, "llama3");
    gguf_file g;
    int rc = hf_open(&g, dir);
    CHECK(rc == 0, "llama3: hf_open: %s", slim_last_error());
    if (rc) { rm_dir(dir); return; }
    const char *type = gguf_get_str(&g, "llama.rope.scaling.type");
    CHECK(type && strcmp(type, "llama3") == 0, "rope.scaling.type %s", type ? type : slim_last_error());
    float f = 0, lo = 0, hi = 0, base = 0;
    uint32_t oc = 0;
    CHECK(gguf_get_f32(&g, "llama.rope.scaling.factor", &f) == 0 && f == 8.0f, "factor %g", f);
    CHECK(gguf_get_f32(&g, "llama.rope.scaling.low_freq_factor", &lo) == 0 && lo == 1.0f, "low %g", lo);
    CHECK(gguf_get_f32(&g, "llama.rope.scaling.high_freq_factor", &hi) == 0 && hi == 4.0f, "high %g", hi);
    CHECK(gguf_get_u32(&g, "llama.rope.scaling.original_context_length", &oc) == 0 && oc == 8192, "orig %u", oc);
    CHECK(gguf_get_f32(&g, "llama.rope.freq_base", &base) == 0 && base == 500000.0f, "freq_base %g", base);
    const gguf_tensor *t = gguf_find_tensor(&g, "rope_freqs.weight");
    int hd = c->dim / c->n_heads;
    CHECK(t && t->type == GGML_TYPE_F32 && t->n_dims == 1 && t->ne[0] == hd / 2 && t->nbytes == 4u * (hd / 2),
          "rope_freqs.weight shape");
    CHECK(g.n_tensors == (uint64_t)m->n + 1, "llama3: %llu tensors", (unsigned long long)g.n_tensors);
    if (t) {
        /* the formula in double: wavelength 2 pi theta^(2i/hd) against orig/high and orig/low */
        int n_one = 0, n_factor = 0, n_mid = 0;
        for (int i = 0; i < hd / 2; i++) {
            double wl = 2 * M_PI * pow(theta, 2.0 * i / hd), want;
            if (wl < orig / high) { want = 1; n_one++; }
            else if (wl > orig / low) { want = factor; n_factor++; }
            else {
                double s = (orig / wl - low) / (high - low);
                want = 1 / ((1 - s) / factor + s);
                n_mid++;
            }
            float got;
            memcpy(&got, (const uint8_t *)t->data + 4 * i, 4);
            CHECK(fabs(got - want) <= 1e-5 * want, "rope_freqs[%d] = %.9g want %.9g", i, got, want);
        }
        CHECK(n_one > 0 && n_factor > 0 && n_mid > 0, "test does not cover all three branches (%d %d %d)", n_one,
              n_mid, n_factor);
    }
    gguf_close(&g);
    rm_dir(dir);
}

/* ---------------------------------------------------------------------------------------------
 * errors */

static void expect_fail(const char *label, const char *name, const char *must1, const char *must2) {
    char dir[1024];
    dir_path(dir, sizeof dir, name);
    gguf_file g;
    slim_set_error("%s", "");
    int rc = hf_open(&g, dir);
    const char *err = slim_last_error();
    CHECK(rc == -1, "%s: accepted", label);
    CHECK(g.map == NULL && g.kv == NULL && g.tensors == NULL && g.path == NULL, "%s: struct not freed", label);
    if (must1) CHECK(strstr(err, must1) != NULL, "%s: error \"%s\" lacks \"%s\"", label, err, must1);
    if (must2) CHECK(strstr(err, must2) != NULL, "%s: error \"%s\" lacks \"%s\"", label, err, must2);
    if (getenv("SLIM_TEST_VERBOSE")) printf("  %-26s -> %s\n", label, err);
    if (rc == 0) gguf_close(&g);
}

/* Writes a broken variant of the llama model (config edited by edit_cfg, tensors by edit_model). */
static void fail_case(const char *label, const tcfg *c, void (*edit_cfg)(cJSON *), void (*edit_model)(tmodel *),
                      int sharded, const char *must1, const char *must2) {
    tmodel m;
    build_model(&m, c, 5);
    cJSON *cfg = make_config(c);
    if (edit_cfg) edit_cfg(cfg);
    if (edit_model) edit_model(&m);
    CHECK(write_dir("bad", cfg, &m, sharded) == 0, "%s: write", label);
    cJSON_Delete(cfg);
    model_free_t(&m);
    expect_fail(label, "bad", must1, must2);
    char dir[1024];
    dir_path(dir, sizeof dir, "bad");
    rm_dir(dir);
}

static void cfg_no_hidden(cJSON *o) { cJSON_DeleteItemFromObject(o, "hidden_size"); }
static void cfg_no_eps(cJSON *o) { cJSON_DeleteItemFromObject(o, "rms_norm_eps"); }
static void cfg_no_type(cJSON *o) { cJSON_DeleteItemFromObject(o, "model_type"); }
static void cfg_gpt2(cJSON *o) { cJSON_ReplaceItemInObject(o, "model_type", cJSON_CreateString("gpt2")); }
static void cfg_heads_str(cJSON *o) { cJSON_ReplaceItemInObject(o, "num_attention_heads", cJSON_CreateString("4")); }
static void cfg_heads_frac(cJSON *o) { cJSON_ReplaceItemInObject(o, "num_attention_heads", cJSON_CreateNumber(4.5)); }
static void cfg_kv3(cJSON *o) { cJSON_ReplaceItemInObject(o, "num_key_value_heads", cJSON_CreateNumber(3)); }
static void cfg_head_dim(cJSON *o) { cJSON_AddNumberToObject(o, "head_dim", 32); }
static void cfg_yarn(cJSON *o) {
    cJSON_DeleteItemFromObject(o, "rope_scaling");
    cJSON *rs = cJSON_AddObjectToObject(o, "rope_scaling");
    cJSON_AddStringToObject(rs, "type", "yarn");
    cJSON_AddNumberToObject(rs, "factor", 4);
}
static void cfg_neg_eps(cJSON *o) { cJSON_ReplaceItemInObject(o, "rms_norm_eps", cJSON_CreateNumber(-1)); }
static void cfg_tie_str(cJSON *o) { cJSON_ReplaceItemInObject(o, "tie_word_embeddings", cJSON_CreateString("no")); }
static void m_drop_up(tmodel *m) { drop_t(m, "model.layers.1.mlp.up_proj.weight"); }
static void m_drop_head(tmodel *m) { drop_t(m, "lm_head.weight"); }
static void m_k_shape(tmodel *m) {
    ttensor *t = find_t(m, "model.layers.0.self_attn.k_proj.weight");
    t->shape[0] = 16; /* 16 x 64 BF16: fewer bytes, consistent file, wrong for the config */
    t->nbytes = 16 * 64 * 2;
}
static void m_norm_rank2(tmodel *m) {
    ttensor *t = find_t(m, "model.norm.weight");
    t->rank = 2; t->shape[0] = 1; t->shape[1] = 64;
}
static void m_extra(tmodel *m) {
    slim_rng r;
    slim_rng_seed(&r, 3);
    add_tensor(m, "model.layers.2.mlp.up_proj.weight", GGML_TYPE_F32, 4, 4, &r);
}
static void m_inv_freq(tmodel *m) {
    slim_rng r;
    slim_rng_seed(&r, 3);
    add_tensor(m, "model.layers.0.self_attn.rotary_emb.inv_freq", GGML_TYPE_F32, 8, 0, &r);
}

static void test_errors(const tcfg *llama, const tcfg *qwen) {
    fail_case("missing hidden_size", llama, cfg_no_hidden, NULL, 0, "config.json", "'hidden_size' is missing");
    fail_case("missing rms_norm_eps", llama, cfg_no_eps, NULL, 0, "config.json", "'rms_norm_eps'");
    fail_case("missing model_type", llama, cfg_no_type, NULL, 0, "config.json", "'model_type' is missing");
    fail_case("unknown model_type", llama, cfg_gpt2, NULL, 0, "config.json", "'gpt2'");
    fail_case("heads a string", llama, cfg_heads_str, NULL, 0, "num_attention_heads", "a string");
    fail_case("heads fractional", llama, cfg_heads_frac, NULL, 0, "num_attention_heads", "integer");
    fail_case("kv heads not divisor", llama, cfg_kv3, NULL, 0, "num_key_value_heads", "multiple");
    fail_case("head_dim mismatch", llama, cfg_head_dim, NULL, 0, "config.json", "head_dim 32");
    fail_case("rope_scaling yarn", llama, cfg_yarn, NULL, 0, "config.json", "'yarn'");
    fail_case("negative eps", llama, cfg_neg_eps, NULL, 0, "rms_norm_eps", "positive");
    fail_case("tie not bool", llama, cfg_tie_str, NULL, 0, "tie_word_embeddings", "boolean");
    fail_case("missing tensor", llama, NULL, m_drop_up, 0, "'model.layers.1.mlp.up_proj.weight' is missing", NULL);
    fail_case("missing tensor sharded", llama, NULL, m_drop_up, 1, "model.layers.1.mlp.up_proj.weight", "shards");
    fail_case("missing lm_head", llama, NULL, m_drop_head, 0, "'lm_head.weight' is missing", NULL);
    fail_case("shape mismatch", llama, NULL, m_k_shape, 0, "model.layers.0.self_attn.k_proj.weight",
              "has shape [16, 64], expected [32, 64]");
    fail_case("norm rank 2", llama, NULL, m_norm_rank2, 0, "'model.norm.weight' has shape [1, 64], expected [64]",
              "model.safetensors");
    fail_case("unexpected tensor", llama, NULL, m_extra, 0, "'model.layers.2.mlp.up_proj.weight'", "unexpected");

    /* qwen2 without biases */
    tcfg nb = *qwen;
    nb.bias = 0;
    tmodel m;
    build_model(&m, &nb, 5);
    cJSON *cfg = make_config(qwen);
    CHECK(write_dir("bad", cfg, &m, 0) == 0, "write");
    expect_fail("qwen2 missing bias", "bad", "'model.layers.0.self_attn.q_proj.bias' is missing", NULL);
    cJSON_Delete(cfg);
    model_free_t(&m);

    /* inv_freq buffers of old checkpoints are skipped, as llama.cpp does */
    build_model(&m, llama, 5);
    m_inv_freq(&m);
    cfg = make_config(llama);
    CHECK(write_dir("invfreq", cfg, &m, 0) == 0, "write");
    cJSON_Delete(cfg);
    char dir[1024], p[2048];
    dir_path(dir, sizeof dir, "invfreq");
    gguf_file g;
    int rc = hf_open(&g, dir);
    CHECK(rc == 0 && g.n_tensors == (uint64_t)m.n - 1, "inv_freq not skipped: %s", slim_last_error());
    if (rc == 0) gguf_close(&g);
    rm_dir(dir);

    /* directory-level failures, on a good sharded model broken afterwards */
    cfg = make_config(llama);
    CHECK(write_dir("bad", cfg, &m, 1) == 0, "write");
    dir_path(dir, sizeof dir, "bad");
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    unlink(p);
    expect_fail("missing shard", "bad", "model-00002-of-00002.safetensors", "cannot open");
    CHECK(write_text(p, "garbage") == 0, "write");
    expect_fail("corrupt shard", "bad", "model-00002-of-00002.safetensors", "header length");
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    CHECK(write_text(p, "{\"weight_map\": {\"model.norm.weight\": \"../model.safetensors\"}}") == 0, "write");
    expect_fail("index path traversal", "bad", "../model.safetensors", "not a file name");
    CHECK(write_text(p, "{\"weight_map\": [1]}") == 0, "write");
    expect_fail("index weight_map array", "bad", "model.safetensors.index.json", "weight_map");
    CHECK(write_text(p, "{\"weight_map\": {") == 0, "write");
    expect_fail("index bad JSON", "bad", "model.safetensors.index.json", "does not parse");
    rm_dir(dir);

    /* a tensor listed in the wrong shard, and a tensor in both shards */
    CHECK(write_dir("bad", cfg, &m, 1) == 0, "write");
    {
        cJSON *idx = cJSON_CreateObject();
        cJSON *wm = cJSON_AddObjectToObject(idx, "weight_map");
        for (int i = 0; i < m.n; i++)
            cJSON_AddStringToObject(wm, m.t[i].name, i == 0 ? "model-00002-of-00002.safetensors"
                                                            : i % 2 ? "model-00002-of-00002.safetensors"
                                                                    : "model-00001-of-00002.safetensors");
        char *text = cJSON_Print(idx);
        snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
        CHECK(write_text(p, text) == 0, "write");
        free(text);
        cJSON_Delete(idx);
        expect_fail("tensor in the wrong shard", "bad", m.t[0].name, "is not there");
    }
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    CHECK(write_safetensors(p, &m, NULL, 0) == 0, "write"); /* shard 2 now holds every tensor */
    expect_fail("tensor in two shards", "bad", "is also in", NULL);
    rm_dir(dir);

    /* no weights at all; no config; not a directory */
    CHECK(write_dir("bad", cfg, &m, 0) == 0, "write");
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    unlink(p);
    expect_fail("no weights", "bad", "model.safetensors.index.json", "neither");
    CHECK(hf_is_model_dir(dir) == 1, "hf_is_model_dir on a model dir");
    snprintf(p, sizeof p, "%s/config.json", dir);
    unlink(p);
    expect_fail("no config", "bad", "config.json", "cannot open");
    CHECK(hf_is_model_dir(dir) == 0, "hf_is_model_dir without config.json");
    CHECK(write_text(p, "{\"model_type\": ") == 0, "write");
    expect_fail("config bad JSON", "bad", "config.json", "does not parse");
    CHECK(write_text(p, "[]") == 0, "write");
    expect_fail("config not object", "bad", "config.json", "object");
    rm_dir(dir);
    expect_fail("missing dir", "does-not-exist", "config.json", "cannot open");
    cJSON_Delete(cfg);
    model_free_t(&m);
}

int main(void) {
    const char *td = getenv("TMPDIR");
    snprintf(tmp_root, sizeof tmp_root, "%s/slim_test_hf_%d", td && *td ? td : "/tmp", (int)getpid());
    CHECK(mkdir(tmp_root, 0755) == 0, "mkdir %s", tmp_root);

    const tcfg llama = { "llama", 64, 2, 4, 2, 128, 512, 256, 0, 0 };
    const tcfg qwen = { "qwen2", 64, 2, 4, 2, 128, 512, 256, 1, 1 };
    char dir[1024];

    tmodel m;
    build_model(&m, &llama, 1);
    cJSON *cfg = make_config(&llama);
    CHECK(write_dir("tiny-llama", cfg, &m, 0) == 0, "write tiny-llama");
    check_equivalent("llama", "tiny-llama", &llama, &m, 1, "llama");
    dir_path(dir, sizeof dir, "tiny-llama");
    test_rope_equivalence(dir, &llama, &m);
    /* trailing slash in the path: same name */
    {
        char slash[1100];
        snprintf(slash, sizeof slash, "%s/", dir);
        gguf_file g;
        int rc = hf_open(&g, slash);
        const char *nm = rc == 0 ? gguf_get_str(&g, "general.name") : NULL;
        CHECK(nm && strcmp(nm, "tiny-llama") == 0, "general.name with trailing slash: %s", nm ? nm : slim_last_error());
        if (rc == 0) gguf_close(&g);
    }
    rm_dir(dir);

    CHECK(write_dir("tiny-llama-sharded", cfg, &m, 1) == 0, "write sharded");
    check_equivalent("llama sharded", "tiny-llama-sharded", &llama, &m, 1, "llama");
    dir_path(dir, sizeof dir, "tiny-llama-sharded");
    rm_dir(dir);

    /* "mistral" is a llama */
    cJSON_ReplaceItemInObject(cfg, "model_type", cJSON_CreateString("mistral"));
    CHECK(write_dir("tiny-mistral", cfg, &m, 0) == 0, "write mistral");
    check_equivalent("mistral", "tiny-mistral", &llama, &m, 1, "llama");
    dir_path(dir, sizeof dir, "tiny-mistral");
    rm_dir(dir);
    cJSON_Delete(cfg);

    test_llama3(&llama, &m);
    model_free_t(&m);

    build_model(&m, &qwen, 2);
    cfg = make_config(&qwen);
    CHECK(write_dir("tiny-qwen2", cfg, &m, 0) == 0, "write qwen2");
    check_equivalent("qwen2", "tiny-qwen2", &qwen, &m, 0, "qwen2");
    dir_path(dir, sizeof dir, "tiny-qwen2");
    rm_dir(dir);
    cJSON_Delete(cfg);
    model_free_t(&m);

    test_errors(&llama, &qwen);
    rmdir(tmp_root);
    return tu_finish("test_hf");
}
