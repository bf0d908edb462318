/* hf_export.c — the merged model as a Hugging Face directory; see hf_export.h. */
#include "hf_export.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "format/hf.h"
#include "format/model_file.h"
#include "format/safetensors.h"

/* The transformers name of GGUF tensor `name` into buf; 0, 1 when it has none to write (rope_freqs),
 * or -1 with an error. *qk: 1 for a q or k weight/bias (rows permuted in llama GGUF). */
static int hf_name(const char *name, char *buf, size_t cap, int *qk) {
    static const char *const top[][2] = {{"token_embd.weight", "model.embed_tokens.weight"},
                                         {"output_norm.weight", "model.norm.weight"},
                                         {"output.weight", "lm_head.weight"}};
    *qk = 0;
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        if (!strcmp(name, top[i][0])) return snprintf(buf, cap, "%s", top[i][1]) < (int)cap ? 0 : -1;
    if (!strcmp(name, "rope_freqs.weight")) return 1;
    int l, n = 0;
    const char *hf = sscanf(name, "blk.%d.%n", &l, &n) == 1 && n > 0 ? hf_layer_name(name + n) : NULL;
    if (hf) {
        *qk = !strncmp(name + n, "attn_q.", 7) || !strncmp(name + n, "attn_k.", 7);
        return snprintf(buf, cap, "model.layers.%d.%s", l, hf) < (int)cap ? 0 : -1;
    }
    return slim_set_error("hf export: tensor %s has no transformers name", name);
}

/* One output tensor: its base tensor, name and safetensors description, and its shard. */
typedef struct hf_tensor {
    const gguf_tensor *t;
    char name[128];
    int qk;            /* rows permuted in llama GGUF: restore the Hugging Face order */
    safetensors_out out;
    int shard;
} hf_tensor;

/* The output tensors of src's base in file order, shards of at most shard_bytes; *n_shards. */
static hf_tensor *hf_plan(const merge_src *src, uint64_t shard_bytes, size_t *n, int *n_shards) {
    const gguf_file *g = &src->m->gguf;
    hf_tensor *ts = slim_calloc(g->n_tensors + 1, sizeof *ts);
    uint64_t in_shard = 0;
    *n = 0;
    *n_shards = 1;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        hf_tensor *h = &ts[*n];
        int rc = hf_name(g->tensors[i].name, h->name, sizeof h->name, &h->qk);
        if (rc < 0) { free(ts); return NULL; }
        if (rc == 1) continue;
        const gguf_tensor *t = &g->tensors[i];
        h->t = t;
        h->qk = h->qk && !src->m->cfg.rope_neox;
        h->out = (safetensors_out){h->name, t->n_dims >= 2 ? GGML_TYPE_BF16 : GGML_TYPE_F32, t->n_dims >= 2 ? 2 : 1,
                                   {t->n_dims >= 2 ? t->ne[1] : t->ne[0], t->ne[0]}, NULL};
        const uint64_t bytes = safetensors_out_bytes(&h->out);
        if (in_shard > 0 && in_shard + bytes > shard_bytes) { (*n_shards)++; in_shard = 0; }
        in_shard += bytes;
        h->shard = *n_shards - 1;
        (*n)++;
    }
    return ts;
}

/* Reorders the rows [nrow, width] of v from llama's GGUF q/k order to Hugging Face order. */
static void hf_unpermute(float *v, int64_t nrow, int64_t width, int hd) {
    float *gguf = slim_malloc(sizeof(float) * (size_t)(nrow * width));
    memcpy(gguf, v, sizeof(float) * (size_t)(nrow * width));
    for (int64_t k = 0; k < nrow; k++)
        memcpy(v + k * width, gguf + model_qk_gguf_row(k, hd) * width, sizeof(float) * (size_t)width);
    free(gguf);
}

/* Writes vector h (a norm or a bias) as F32. */
static int hf_write_vector(safetensors_writer *w, const merge_src *src, const hf_tensor *h) {
    const int64_t n = h->t->ne[0];
    float *v = slim_malloc(sizeof(float) * (size_t)n);
    const float *loaded = merge_vector(src->m, h->t); /* the base's bytes may be released (an HF view) */
    int rc = 0;
    if (loaded) memcpy(v, loaded, sizeof(float) * (size_t)n);
    else if (!h->t->data || quant_dequantize_row(h->t->type, h->t->data, v, n) != 0)
        rc = slim_set_error("%s: tensor %s: cannot decode", src->m->gguf.path, h->t->name);
    if (rc == 0 && h->qk) hf_unpermute(v, n, 1, src->m->cfg.head_dim);
    if (rc == 0) rc = safetensors_writer_data(w, v, sizeof(float) * (size_t)n);
    free(v);
    return rc;
}

/* Writes matrix h as BF16 rows of the merged values, a block at a time (a q/k matrix whole, to reorder it). */
static int hf_write_matrix(safetensors_writer *w, merge_src *src, const hf_tensor *h) {
    const int64_t cols = h->out.shape[1], rows = h->out.shape[0];
    const int64_t block = h->qk ? rows : merge_block_rows(src, h->t);
    uint16_t *enc = slim_malloc(sizeof(uint16_t) * (size_t)(block * cols));
    int rc = 0;
    for (int64_t r0 = 0; r0 < rows && rc == 0; r0 += block) {
        const int64_t r1 = r0 + block < rows ? r0 + block : rows;
        if (merge_rows(src, h->t, r0, r1) != 0) { rc = -1; break; }
        if (h->qk) hf_unpermute(src->buf, rows, cols, src->m->cfg.head_dim);
        for (int64_t r = 0; r < r1 - r0 && rc == 0; r++)
            rc = quant_quantize_row(GGML_TYPE_BF16, src->buf + r * cols, enc + r * cols, cols);
        if (rc == 0) rc = safetensors_writer_data(w, enc, sizeof(uint16_t) * (size_t)((r1 - r0) * cols));
    }
    free(enc);
    return rc;
}

/* Writes the shards (and the index when there are several) into tmp. */
static int hf_write_weights(merge_src *src, const char *tmp, long shard_mb) {
    size_t n;
    int n_shards;
    hf_tensor *ts = hf_plan(src, (uint64_t)shard_mb * 1000000, &n, &n_shards);
    if (!ts) return -1;
    static const char *const meta[2] = {"format", "pt"};
    cJSON *index = cJSON_CreateObject(), *map = cJSON_CreateObject();
    uint64_t total = 0;
    int rc = 0;
    size_t first = 0;
    for (int s = 0; s < n_shards && rc == 0; s++) {
        size_t end = first;
        while (end < n && ts[end].shard == s) end++;
        char file[64], path[4400];
        if (n_shards == 1) snprintf(file, sizeof file, "model.safetensors");
        else snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
        safetensors_out *outs = slim_calloc(end - first + 1, sizeof *outs);
        for (size_t i = first; i < end; i++) {
            outs[i - first] = ts[i].out;
            total += safetensors_out_bytes(&ts[i].out);
            cJSON_AddStringToObject(map, ts[i].name, file);
        }
        safetensors_writer *w = NULL;
        rc = slim_format_path(path, sizeof path, "%s/%s", tmp, file);
        if (rc == 0 && !(w = safetensors_writer_begin(path, outs, end - first, meta, 1))) rc = -1;
        for (size_t i = first; i < end && rc == 0; i++)
            rc = ts[i].out.n_dims == 2 ? hf_write_matrix(w, src, &ts[i]) : hf_write_vector(w, src, &ts[i]);
        if (w) rc = rc == 0 ? safetensors_writer_finish(w) : (safetensors_writer_abort(w), -1);
        free(outs);
        first = end;
    }
    if (rc == 0 && n_shards > 1) {
        cJSON *md = cJSON_AddObjectToObject(index, "metadata");
        cJSON_AddNumberToObject(md, "total_size", (double)total);
        cJSON_AddItemToObject(index, "weight_map", map);
        map = NULL;
        char path[4400], *text = cJSON_Print(index);
        rc = slim_format_path(path, sizeof path, "%s/model.safetensors.index.json", tmp);
        if (rc == 0) rc = slim_write_text_line(path, text);
        free(text);
    }
    cJSON_Delete(map);
    cJSON_Delete(index);
    free(ts);
    return rc;
}

/* config.json: the base directory's own (torch_dtype set), or written from a GGUF base's hyper-parameters.
 * Returns the document, or NULL with an error. */
static cJSON *hf_config_json(const merge_src *src, const char *base_path) {
    const model_config *c = &src->m->cfg;
    const gguf_file *g = &src->m->gguf;
    cJSON *j;
    if (slim_model_is_dir(base_path)) {
        char path[4200];
        if (slim_format_path(path, sizeof path, "%s/config.json", base_path) != 0 || !(j = slim_read_json(path)))
            return NULL;
        cJSON_DeleteItemFromObjectCaseSensitive(j, "torch_dtype");
        cJSON_AddStringToObject(j, "torch_dtype", "bfloat16");
        return j;
    }
    if (gguf_find_tensor(g, "rope_freqs.weight")) {
        slim_set_error("%s: the base has RoPE frequency factors (Llama 3 rope scaling), which config.json's "
                       "rope_scaling cannot be recovered from: export \"hf\" from the base's Hugging Face directory",
                       g->path);
        return NULL;
    }
    const int qwen = c->arch == ARCH_QWEN2;
    j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "architectures", cJSON_CreateStringArray((const char *[]){qwen ? "Qwen2ForCausalLM"
                                                                                             : "LlamaForCausalLM"}, 1));
    cJSON_AddStringToObject(j, "model_type", qwen ? "qwen2" : "llama");
    cJSON_AddNumberToObject(j, "hidden_size", c->dim);
    cJSON_AddNumberToObject(j, "intermediate_size", c->ffn_dim);
    cJSON_AddNumberToObject(j, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(j, "num_attention_heads", c->n_heads);
    cJSON_AddNumberToObject(j, "num_key_value_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(j, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(j, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(j, "max_position_embeddings", c->ctx_len);
    char num[32]; /* float hyper-parameters at float precision (1e-05, not 9.99999974737875e-06) */
    snprintf(num, sizeof num, "%.7g", c->norm_eps);
    cJSON_AddNumberToObject(j, "rms_norm_eps", strtod(num, NULL));
    snprintf(num, sizeof num, "%.7g", c->rope_theta);
    cJSON_AddNumberToObject(j, "rope_theta", strtod(num, NULL));
    cJSON_AddStringToObject(j, "hidden_act", "silu");
    cJSON_AddBoolToObject(j, "tie_word_embeddings", !gguf_find_tensor(g, "output.weight"));
    if (!qwen) cJSON_AddBoolToObject(j, "attention_bias", src->m->layers[0].bias[0] != NULL);
    if (src->m->has_tokenizer) {
        if (src->m->tok.bos_id >= 0) cJSON_AddNumberToObject(j, "bos_token_id", src->m->tok.bos_id);
        if (src->m->tok.eos_id >= 0) cJSON_AddNumberToObject(j, "eos_token_id", src->m->tok.eos_id);
    }
    cJSON_AddStringToObject(j, "torch_dtype", "bfloat16");
    return j;
}

/* Writes the JSON document j to dir/name. */
static int hf_write_json(const char *dir, const char *name, cJSON *j) {
    char path[4400], *text = cJSON_Print(j);
    int rc = slim_format_path(path, sizeof path, "%s/%s", dir, name);
    if (rc == 0) rc = slim_write_text_line(path, text);
    free(text);
    return rc;
}

/* Copies the tokenizer files a Hugging Face base directory has into dir; returns how many or -1. */
static int hf_copy_tokenizer(const char *base_dir, const char *dir) {
    static const char *const files[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                        "tokenizer.model"};
    int n = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char from[4400], to[4400];
        if (slim_format_path(from, sizeof from, "%s/%s", base_dir, files[i]) || access(from, R_OK) != 0) continue;
        if (slim_format_path(to, sizeof to, "%s/%s", dir, files[i]) || slim_copy_file(from, to) != 0) return -1;
        n++;
    }
    return n;
}

int hf_export(merge_src *src, const char *base_path, const char *dir, long shard_mb) {
    char tmp[4200];
    cJSON *config = hf_config_json(src, base_path), *gen = NULL;
    if (!config || slim_dir_begin(dir, tmp, sizeof tmp) != 0) { cJSON_Delete(config); return -1; }
    int rc = hf_write_json(tmp, "config.json", config);
    if (rc == 0) {
        gen = cJSON_CreateObject();
        const cJSON *bos = cJSON_GetObjectItemCaseSensitive(config, "bos_token_id"),
                    *eos = cJSON_GetObjectItemCaseSensitive(config, "eos_token_id");
        if (bos) cJSON_AddItemToObject(gen, "bos_token_id", cJSON_Duplicate(bos, 1));
        if (eos) cJSON_AddItemToObject(gen, "eos_token_id", cJSON_Duplicate(eos, 1));
        rc = hf_write_json(tmp, "generation_config.json", gen);
    }
    if (rc == 0) rc = hf_write_weights(src, tmp, shard_mb);
    int n_tok = rc == 0 && slim_model_is_dir(base_path) ? hf_copy_tokenizer(base_path, tmp) : 0;
    if (n_tok < 0) rc = -1;
    cJSON_Delete(config);
    cJSON_Delete(gen);
    if (rc != 0) {
        slim_dir_abort(tmp);
        return -1;
    }
    if (n_tok == 0)
        fprintf(stderr, "export: %s has no tokenizer files (the base %s has none to copy)\n", dir, base_path);
    return slim_dir_commit(tmp, dir);
}
