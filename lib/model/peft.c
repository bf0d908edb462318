/* peft.c — LoRA adapters as a PEFT directory; see peft.h. */
#include "peft.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "format/safetensors.h"
#include "model.h"

/* Whether B of target t is stored in permuted row order in GGUF (llama q and k). */
static int peft_permuted(const model *m, int t) { return !m->cfg.rope_neox && (t == LORA_Q || t == LORA_K); }

/* The PEFT name of (layer, target, part 'A' or 'B') into buf. */
static void peft_tensor_name(char *buf, size_t cap, int l, int t, char part) {
    snprintf(buf, cap, "base_model.model.model.layers.%d.%s.lora_%c.weight", l, lora_target_peft_names[t], part);
}

/* The module name of target t as target_modules lists it ("q_proj"). */
static const char *peft_module(int t) { return strchr(lora_target_peft_names[t], '.') + 1; }

/* adapter_config.json of a. */
static char *peft_config_json(const lora_adapter *a, const char *base_model) {
    cJSON *c = cJSON_CreateObject(), *mods = cJSON_CreateArray();
    cJSON_AddStringToObject(c, "peft_type", "LORA");
    cJSON_AddStringToObject(c, "task_type", "CAUSAL_LM");
    cJSON_AddNumberToObject(c, "r", a->r);
    cJSON_AddNumberToObject(c, "lora_alpha", a->alpha);
    for (int t = 0; t < LORA_N_TARGETS; t++)
        if (a->enabled[t]) cJSON_AddItemToArray(mods, cJSON_CreateString(peft_module(t)));
    cJSON_AddItemToObject(c, "target_modules", mods);
    cJSON_AddNumberToObject(c, "lora_dropout", 0.0);
    cJSON_AddStringToObject(c, "bias", "none");
    cJSON_AddBoolToObject(c, "use_rslora", 0);
    cJSON_AddBoolToObject(c, "use_dora", 0);
    cJSON_AddBoolToObject(c, "fan_in_fan_out", 0);
    cJSON_AddBoolToObject(c, "inference_mode", 1);
    cJSON_AddStringToObject(c, "base_model_name_or_path", base_model ? base_model : "");
    cJSON_AddNullToObject(c, "modules_to_save");
    cJSON_AddNullToObject(c, "layers_to_transform");
    char *text = cJSON_Print(c);
    cJSON_Delete(c);
    return text;
}

/* Writes adapter_model.safetensors of a into dir (B of llama q/k un-permuted to HF rows). */
static int peft_write_tensors(const lora_adapter *a, const model *m, const char *dir) {
    int n_on = 0;
    for (int t = 0; t < LORA_N_TARGETS; t++) n_on += a->enabled[t];
    const size_t n = (size_t)2 * n_on * a->n_layers;
    safetensors_out *out = slim_calloc(n, sizeof *out);
    char (*names)[128] = slim_calloc(n, sizeof *names);
    float *hf = slim_malloc(a->n_params * sizeof(float)); /* HF-order copies of the permuted B */
    size_t k = 0, used = 0;
    for (int l = 0; l < a->n_layers; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            if (!a->enabled[t]) continue;
            int in, outf;
            model_target_shape(&m->cfg, t, &in, &outf);
            const float *B = a->B[l * LORA_N_TARGETS + t];
            if (peft_permuted(m, t)) {
                float *dst = hf + used;
                for (int64_t row = 0; row < outf; row++)
                    memcpy(dst + row * a->r, B + model_qk_gguf_row(row, m->cfg.head_dim) * a->r, sizeof(float) * a->r);
                B = dst;
                used += (size_t)outf * a->r;
            }
            peft_tensor_name(names[k], sizeof names[k], l, t, 'A');
            out[k] = (safetensors_out){names[k], GGML_TYPE_F32, 2, {a->r, in}, a->A[l * LORA_N_TARGETS + t]};
            k++;
            peft_tensor_name(names[k], sizeof names[k], l, t, 'B');
            out[k] = (safetensors_out){names[k], GGML_TYPE_F32, 2, {outf, a->r}, B};
            k++;
        }
    char path[4300];
    static const char *const meta[2] = {"format", "pt"};
    int rc = slim_format_path(path, sizeof path, "%s/adapter_model.safetensors", dir);
    if (rc == 0) rc = safetensors_write(path, out, n, meta, 1);
    free(hf);
    free(names);
    free(out);
    return rc;
}

int peft_save(const lora_adapter *a, const model *m, const char *dir, const char *base_model) {
    char tmp[4200], path[4300];
    if (slim_dir_begin(dir, tmp, sizeof tmp) != 0) return -1;
    char *json = peft_config_json(a, base_model);
    int rc = slim_format_path(path, sizeof path, "%s/adapter_config.json", tmp);
    if (rc == 0) rc = slim_write_text_line(path, json);
    free(json);
    if (rc == 0) rc = peft_write_tensors(a, m, tmp);
    if (rc != 0) {
        slim_dir_abort(tmp);
        return -1;
    }
    return slim_dir_commit(tmp, dir);
}

/* ---------------------------------------------------------------------------------------------- */
/* loading */

/* The settings of adapter_config.json at path: r, the alpha that gives its scale as alpha / r, the
 * targets; the options slimtune cannot represent refused by name. Returns 0 or -1. */
static int peft_read_config(const char *path, int *r, float *alpha, int *targets) {
    cJSON *c = slim_read_json(path);
    if (!c) return -1;
    int rc = -1;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(c, "peft_type"),
                *jr = cJSON_GetObjectItemCaseSensitive(c, "r"),
                *ja = cJSON_GetObjectItemCaseSensitive(c, "lora_alpha"),
                *mods = cJSON_GetObjectItemCaseSensitive(c, "target_modules"),
                *bias = cJSON_GetObjectItemCaseSensitive(c, "bias");
    static const char *const refused[] = {"use_dora", "fan_in_fan_out", "layers_to_transform", "modules_to_save"};
    if (type && (!cJSON_IsString(type) || strcmp(type->valuestring, "LORA"))) {
        slim_set_error("%s: peft_type: only LORA adapters are supported", path);
        goto done;
    }
    if (!cJSON_IsNumber(jr) || jr->valuedouble < 1 || jr->valuedouble > 4096 || jr->valuedouble != (int)jr->valuedouble ||
        !cJSON_IsNumber(ja) || !(ja->valuedouble > 0)) {
        slim_set_error("%s: r must be an integer in 1..4096 and lora_alpha a positive number", path);
        goto done;
    }
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, refused[i]);
        if (v && !cJSON_IsNull(v) && !cJSON_IsFalse(v) && !(cJSON_IsArray(v) && cJSON_GetArraySize(v) == 0)) {
            slim_set_error("%s: %s is set: slimtune adapters cannot represent it", path, refused[i]);
            goto done;
        }
    }
    if (bias && (!cJSON_IsString(bias) || strcmp(bias->valuestring, "none"))) {
        slim_set_error("%s: bias: only \"none\" is supported", path);
        goto done;
    }
    if (!cJSON_IsArray(mods)) {
        slim_set_error("%s: target_modules must be a list of module names (q_proj, ...)", path);
        goto done;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, mods) {
        int t = -1;
        for (int k = 0; k < LORA_N_TARGETS && cJSON_IsString(e); k++)
            if (!strcmp(e->valuestring, peft_module(k)) || !strcmp(e->valuestring, lora_target_peft_names[k])) t = k;
        if (t < 0) {
            slim_set_error("%s: target_modules: unknown module %s (q_proj k_proj v_proj o_proj gate_proj up_proj "
                           "down_proj)", path, cJSON_IsString(e) ? e->valuestring : "(not a string)");
            goto done;
        }
        targets[t] = 1;
    }
    *r = (int)jr->valuedouble;
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(c, "use_rslora");
    *alpha = (float)(cJSON_IsTrue(rs) ? ja->valuedouble * sqrt((double)*r) : ja->valuedouble); /* rsLoRA: alpha/sqrt(r) */
    rc = 0;
done:
    cJSON_Delete(c);
    return rc;
}

/* Reads tensor `name` of f, [rows, cols] of F32/F16/BF16, into dst (F32); with hd_perm (a head size) its
 * Hugging Face rows go to their GGUF rows (peft_gguf_row), else row i to row i. Returns 0, or -1 naming
 * the file and tensor. */
static int peft_read_tensor(const safetensors_file *f, const char *name, int64_t rows, int64_t cols, float *dst,
                            int hd_perm) {
    const safetensors_tensor *t = safetensors_find_tensor(f, name);
    if (!t) return slim_set_error("%s: tensor %s is missing", f->path, name);
    if (t->n_dims != 2 || t->shape[0] != rows || t->shape[1] != cols)
        return slim_set_error("%s: tensor %s has shape [%lld, %lld], expected [%lld, %lld]", f->path, name,
                              (long long)t->shape[0], (long long)(t->n_dims > 1 ? t->shape[1] : 0), (long long)rows,
                              (long long)cols);
    const size_t es = t->type == GGML_TYPE_F32 ? 4 : 2, rb = es * (size_t)cols;
    uint8_t *row = slim_malloc(rb);
    int rc = 0;
    for (int64_t i = 0; i < rows && rc == 0; i++) {
        float *out = dst + (hd_perm ? model_qk_gguf_row(i, hd_perm) : i) * cols;
        memcpy(row, (const uint8_t *)t->data + (size_t)i * rb, rb); /* the mapping need not be aligned */
        rc = quant_dequantize_row(t->type, row, out, cols);
        for (int64_t j = 0; j < cols && rc == 0; j++)
            if (!isfinite(out[j])) rc = slim_set_error("%s: tensor %s has a non-finite value", f->path, name);
    }
    free(row);
    return rc;
}

int peft_load(lora_adapter *a, const model *m, const char *dir) {
    char path[4300], name[160];
    int r = 0, targets[LORA_N_TARGETS] = {0};
    float alpha = 0;
    memset(a, 0, sizeof *a);
    if (slim_format_path(path, sizeof path, "%s/adapter_config.json", dir) != 0 ||
        peft_read_config(path, &r, &alpha, targets) != 0)
        return -1;
    safetensors_file f;
    if (slim_format_path(path, sizeof path, "%s/adapter_model.safetensors", dir) != 0 || safetensors_open(&f, path) != 0)
        return -1;
    lora_init(a, &m->cfg, r, alpha, targets, 1);
    int rc = 0;
    uint64_t used = 0;
    for (int l = 0; l < a->n_layers && rc == 0; l++)
        for (int t = 0; t < LORA_N_TARGETS && rc == 0; t++) {
            if (!targets[t]) continue;
            int in, out;
            model_target_shape(&m->cfg, t, &in, &out);
            peft_tensor_name(name, sizeof name, l, t, 'A');
            rc = peft_read_tensor(&f, name, r, in, a->A[l * LORA_N_TARGETS + t], 0);
            peft_tensor_name(name, sizeof name, l, t, 'B');
            if (rc == 0)
                rc = peft_read_tensor(&f, name, out, r, a->B[l * LORA_N_TARGETS + t],
                                      peft_permuted(m, t) ? m->cfg.head_dim : 0);
            used += 2;
        }
    for (uint64_t i = 0; i < f.n_tensors && rc == 0 && used != f.n_tensors; i++) {
        int known = 0;
        for (int l = 0; l < a->n_layers && !known; l++)
            for (int t = 0; t < LORA_N_TARGETS && !known; t++)
                for (int p = 0; p < 2 && !known && targets[t]; p++) {
                    peft_tensor_name(name, sizeof name, l, t, p ? 'B' : 'A');
                    known = !strcmp(name, f.tensors[i].name);
                }
        if (!known)
            rc = slim_set_error("%s: tensor %s is not a LoRA A/B of the listed target_modules on this model's layers",
                                path, f.tensors[i].name);
    }
    safetensors_close(&f);
    if (rc != 0) lora_free(a);
    return rc;
}
