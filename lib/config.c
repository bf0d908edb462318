/* config.c — the run configuration: JSON (cJSON) <-> slim_config. See config.h.
 *
 * One table (config_fields) lists every setting with its key path, type, range and default; defaults,
 * parsing, saving, copying and freeing all walk it, so that unknown keys, wrong types and out-of-range
 * values are all reported as "<file>: <key.path>: <what is wrong>". */
#define _GNU_SOURCE
#include "config.h"

#include <cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static void config_set_str(char **dst, const char *s) {
    free(*dst);
    *dst = s ? slim_strdup(s) : NULL;
}

/* ---- the settings: one table drives defaults, parsing, saving, copying and freeing ---- */

/* Kinds of settings. */
enum config_kind {
    CK_STR,    /* non-empty string */
    CK_STR0,   /* non-empty string or null */
    CK_CHOICE, /* one of `choices` (stored as the string) */
    CK_FLAG,   /* one of two `choices` (stored as int: 0 the first, 1 the second) */
    CK_INT,    /* integer in [lo, hi] */
    CK_REAL,   /* double in lo..hi (lo_open/hi_open exclude the ends) */
    CK_REALF,  /* the same, stored as float */
    CK_BOOL,   /* true / false (stored as int) */
    CK_LIST,   /* array of distinct non-empty strings (n_off: its count; choices: allowed values) */
    CK_OBJLIST,/* array of objects of string members, kept as its JSON text (sdflt: the required members,
                  choices: the optional ones; cap in hi) */
};

typedef struct config_field {
    const char *key;     /* full key path, e.g. "train.lr" */
    int kind;            /* enum config_kind */
    size_t off;          /* offsetof(slim_config, field) */
    double lo, hi;       /* numeric range */
    int lo_open, hi_open;
    double dflt;         /* numeric default */
    const char *sdflt;   /* string default (NULL: none) */
    const char *choices; /* CK_CHOICE / CK_FLAG / CK_LIST: allowed values, ", "-separated (NULL: any) */
    size_t n_off;        /* CK_LIST: offsetof the count; cap in hi */
} config_field;

#define OFF(f) offsetof(slim_config, f)
#define STR(k, f, d) {k, CK_STR, OFF(f), 0, 0, 0, 0, 0, d, NULL, 0}
#define STR0(k, f) {k, CK_STR0, OFF(f), 0, 0, 0, 0, 0, NULL, NULL, 0}
#define CHOICE(k, f, d, ch) {k, CK_CHOICE, OFF(f), 0, 0, 0, 0, 0, d, ch, 0}
#define FLAG(k, f, ch) {k, CK_FLAG, OFF(f), 0, 0, 0, 0, 0, NULL, ch, 0}
#define INT(k, f, lo, hi, d) {k, CK_INT, OFF(f), lo, hi, 0, 0, d, NULL, NULL, 0}
#define REAL(k, f, lo, lo_open, hi, hi_open, d) {k, CK_REAL, OFF(f), lo, hi, lo_open, hi_open, d, NULL, NULL, 0}
#define REALF(k, f, lo, lo_open, hi, hi_open, d) {k, CK_REALF, OFF(f), lo, hi, lo_open, hi_open, d, NULL, NULL, 0}
#define BOOL(k, f) {k, CK_BOOL, OFF(f), 0, 0, 0, 0, 0, NULL, NULL, 0}
#define LIST(k, f, n, cap, ch) {k, CK_LIST, OFF(f), 0, cap, 0, 0, 0, NULL, ch, OFF(n)}
#define OBJLIST(k, f, cap, required, optional) {k, CK_OBJLIST, OFF(f), 0, cap, 0, 0, 0, required, optional, 0}
/* A list whose default (", "-separated) is not all of its choices. */
#define LISTD(k, f, n, cap, ch, d) {k, CK_LIST, OFF(f), 0, cap, 0, 0, 0, d, ch, OFF(n)}
#define BIG 2147483647.0

/* Every setting, in the order config_save writes them. data.split.* live in an object that may be null
 * (has_split); every other object is always written. */
static const config_field config_fields[] = {
    STR("model", model, NULL),
    STR("out_dir", out_dir, "work/run"),
    CHOICE("base.quant", base_quant, "f32", "f32, f16, bf16, q8_0, nf4, keep"), /* model.h enum base_quant */
    STR0("data.train", train_file),
    STR0("data.test", test_file),
    STR0("data.val", val_file),
    CHOICE("data.format", format, "auto", "csv, tsv, jsonl, auto"),
    CHOICE("data.shape", shape, "auto", "auto, text_label, prompt_completion, alpaca, chat, text"),
    STR("data.columns.text", text_column, "text"),
    STR("data.columns.label", label_column, "label"),
    STR("data.columns.prompt", prompt_column, "prompt"),
    STR("data.columns.completion", completion_column, "completion"),
    STR("data.columns.instruction", instruction_column, "instruction"),
    STR("data.columns.input", input_column, "input"),
    STR("data.columns.output", output_column, "output"),
    STR("data.columns.messages", messages_column, "messages"),
    FLAG("data.invalid_utf8", replace_bad_utf8, "reject, replace"),
    STR("data.chat_template", chat_template, "auto"),
    FLAG("data.chat_loss", chat_loss_last, "all, last"),
    REAL("data.split.test_fraction", split_test_fraction, 0, 1, 1, 1, 0.1),
    INT("data.split.seed", split_seed, 0, BIG, 1),
    REAL("data.split.val_fraction", split_val_fraction, 0, 0, 1, 1, 0),
    STR("data.template.prompt", prompt_template, "Text: {text}\nLabel:"),
    STR("data.template.completion", completion_template, " {label}"),
    LIST("data.labels", labels, n_labels, SLIM_MAX_LABELS, NULL),
    INT("data.max_seq_len", max_seq_len, 4, 1 << 20, 256),
    REAL("data.max_bad_rows", max_bad_rows, 0, 0, 1, 0, 0.01),
    INT("lora.r", lora_r, 1, 4096, 8),
    REALF("lora.alpha", lora_alpha, 0, 1, 1e6, 0, 16),
    LIST("lora.targets", targets, n_targets, SLIM_MAX_TARGETS, "q, k, v, o, gate, up, down"),
    INT("train.epochs", epochs, 1, 1e6, 1),
    INT("train.max_steps", max_steps, 0, BIG, 0),
    INT("train.batch_size", batch_size, 1, 1 << 20, 8),
    INT("train.grad_accum", grad_accum, 1, 1 << 20, 1),
    REALF("train.lr", lr, 0, 1, 10, 0, 1e-3),
    REALF("train.min_lr_ratio", min_lr_ratio, 0, 0, 1, 0, 0.1),
    INT("train.warmup_steps", warmup_steps, 0, BIG, 10),
    REALF("train.weight_decay", weight_decay, 0, 0, 1e3, 0, 0),
    REALF("train.beta1", beta1, 0, 0, 1, 1, 0.9),
    REALF("train.beta2", beta2, 0, 0, 1, 1, 0.999),
    REALF("train.eps", eps, 0, 1, 1, 0, 1e-8),
    REALF("train.grad_clip", grad_clip, 0, 0, 1e9, 0, 1),
    INT("train.seed", seed, 0, BIG, 1),
    INT("train.log_every", log_every, 1, BIG, 10),
    INT("train.save_every", save_every, 0, BIG, 100),
    INT("train.keep_checkpoints", keep_checkpoints, 0, BIG, 3),
    INT("train.eval_every", eval_every, -1, BIG, -1),
    CHOICE("train.early_stopping.metric", es_metric, "val_loss", "val_loss, val_accuracy"),
    INT("train.early_stopping.patience", es_patience, 0, BIG, 0),
    REAL("train.early_stopping.min_delta", es_min_delta, 0, 0, 1e9, 0, 0),
    BOOL("train.packing", packing),
    CHOICE("train.checkpointing", checkpointing, "auto", "auto, none, layers"),
    INT("train.memory_limit_mib", memory_limit_mib, 0, BIG, 0),
    INT("train.threads", threads, 0, 4096, 0),
    LISTD("export.formats", export_formats, n_export_formats, SLIM_MAX_FORMATS,
          "f32, f16, bf16, q8_0, q4_0, q4_k_m, q5_k_m, q6_k, lora, peft, hf", "f16, q8_0, q4_k_m, lora"),
    INT("export.hf_shard_mb", hf_shard_mb, 1, BIG, 4000),
    STR0("export.registry", registry),
    INT("predict.max_new_tokens", max_new_tokens, 1, 1 << 16, 64),
    CHOICE("export.merge_base", merge_base, "trained", "trained, original"),
    REAL("eval.min_accuracy", min_accuracy, 0, 0, 1, 0, 0),
    REAL("eval.min_gain", min_gain, -1, 0, 1, 0, -1),
    INT("eval.max_examples", eval_max_examples, 0, BIG, 0),
    REAL("eval.max_regression", max_regression, 0, 0, 1, 0, 0),
    REAL("eval.alpha", alpha, 0, 1, 1, 1, 0.05),
    INT("eval.bootstrap_resamples", bootstrap_resamples, 100, 1e8, 10000),
    INT("eval.seed", eval_seed, 0, BIG, 1),
    OBJLIST("eval.baselines", baselines, 12, "name, file", "key, column"),
    INT("eval.max_new_tokens", eval_max_new_tokens, 1, 1 << 16, 64),
    REAL("eval.target_accuracy", target_accuracy, 0, 1, 1, 0, 0.95),
    REAL("drift.max_token_js", drift_max_token_js, 0, 0, 1, 0, 0.1),
    REAL("drift.max_length_ks", drift_max_length_ks, 0, 0, 1, 0, 0.2),
    REAL("drift.max_label_js", drift_max_label_js, 0, 0, 1, 0, 0.05),
    REAL("drift.max_confidence_drop", drift_max_confidence_drop, -1, 0, 1, 0, 0.05),
    REAL("drift.max_predicted_js", drift_max_predicted_js, 0, 0, 1, 0, 0.05),
    REAL("validate.max_invalid_rows", val_max_invalid_rows, 0, 0, 1, 0, 0.01),
    REAL("validate.max_duplicate_rate", val_max_duplicate_rate, 0, 0, 1, 0, 0.01),
    REAL("validate.max_near_duplicate_rate", val_max_near_duplicate_rate, 0, 0, 1, 0, 0.05),
    REAL("validate.max_leakage", val_max_leakage, 0, 0, 1, 0, 0),
    REAL("validate.max_imbalance", val_max_imbalance, 0, 0, 1e12, 0, 20),
    INT("validate.min_label_count", val_min_label_count, 0, BIG, 10),
    REAL("validate.near_duplicate_threshold", val_near_threshold, 0, 1, 1, 0, 0.8),
    CHOICE("validate.shingle", val_shingle, "word", "word, char"),
    INT("validate.shingle_size", val_shingle_size, 0, 64, 0),
    INT("validate.minhash_bands", val_minhash_bands, 1, 256, 32),
    INT("validate.minhash_rows", val_minhash_rows, 1, 64, 4),
    INT("validate.show_rows", val_show_rows, 0, 1e6, 5),
    INT("validate.report_rows", val_report_rows, 0, BIG, 100),
};
#define CONFIG_N_FIELDS (sizeof config_fields / sizeof config_fields[0])

static void *config_at(const slim_config *c, size_t off) { return (char *)c + off; }

/* Copies the next of the ", "-separated values at *p into buf and moves *p past it; 0 at the end. */
static int config_next_choice(const char **p, char *buf, size_t cap) {
    if (!*p || !**p) return 0;
    size_t len = strcspn(*p, ",");
    snprintf(buf, cap, "%.*s", (int)len, *p);
    *p += len;
    *p += strspn(*p, ", ");
    return 1;
}

/* Index of s among the ", "-separated choices, or -1. */
static int config_choice_index(const char *choices, const char *s) {
    char buf[64];
    const char *p = choices;
    for (int i = 0; config_next_choice(&p, buf, sizeof buf); i++)
        if (strcmp(buf, s) == 0) return i;
    return -1;
}

/* Frees the value of field f in c (strings and lists). */
static void config_field_free(slim_config *c, const config_field *f) {
    if (f->kind == CK_LIST) {
        char **list = config_at(c, f->off);
        int *n = config_at(c, f->n_off);
        for (int i = 0; i < *n && i < (int)f->hi; i++) free(list[i]);
        *n = 0;
    } else if (f->kind == CK_STR || f->kind == CK_STR0 || f->kind == CK_CHOICE || f->kind == CK_OBJLIST) {
        char **s = config_at(c, f->off);
        free(*s);
        *s = NULL;
    }
}

/* Sets field f of dst to its value in src (strings duplicated). */
static void config_field_copy(slim_config *dst, const slim_config *src, const config_field *f) {
    config_field_free(dst, f);
    switch (f->kind) {
    case CK_STR: case CK_STR0: case CK_CHOICE: case CK_OBJLIST: {
        const char *s = *(char *const *)config_at(src, f->off);
        *(char **)config_at(dst, f->off) = s ? slim_strdup(s) : NULL;
        break;
    }
    case CK_LIST: {
        char *const *from = config_at(src, f->off);
        char **to = config_at(dst, f->off);
        int n = *(const int *)config_at(src, f->n_off);
        for (int i = 0; i < n; i++) to[i] = slim_strdup(from[i]);
        *(int *)config_at(dst, f->n_off) = n;
        break;
    }
    case CK_REAL: *(double *)config_at(dst, f->off) = *(const double *)config_at(src, f->off); break;
    case CK_REALF: *(float *)config_at(dst, f->off) = *(const float *)config_at(src, f->off); break;
    default: *(int *)config_at(dst, f->off) = *(const int *)config_at(src, f->off); break;
    }
}

/* Sets field f of c to its default. */
static void config_field_default(slim_config *c, const config_field *f) {
    switch (f->kind) {
    case CK_STR: case CK_CHOICE: *(char **)config_at(c, f->off) = f->sdflt ? slim_strdup(f->sdflt) : NULL; break;
    case CK_LIST: { /* its default (LISTD), else all the allowed values (lora.targets), or none */
        char buf[64], **list = config_at(c, f->off);
        int *n = config_at(c, f->n_off);
        for (const char *p = f->sdflt ? f->sdflt : f->choices; *n < (int)f->hi && config_next_choice(&p, buf, sizeof buf);) list[(*n)++] = slim_strdup(buf);
        break;
    }
    case CK_REAL: *(double *)config_at(c, f->off) = f->dflt; break;
    case CK_REALF: *(float *)config_at(c, f->off) = (float)f->dflt; break;
    case CK_INT: *(int *)config_at(c, f->off) = (int)f->dflt; break;
    default: break; /* CK_STR0 NULL, CK_FLAG and CK_BOOL 0 */
    }
}

void config_defaults(slim_config *c) {
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < CONFIG_N_FIELDS; i++) config_field_default(c, &config_fields[i]);
}

void config_free(slim_config *c) {
    for (size_t i = 0; i < CONFIG_N_FIELDS; i++) config_field_free(c, &config_fields[i]);
    free(c->path);
    memset(c, 0, sizeof *c);
}

/* 1 when key is prefix or lies under it ("data.split.seed" is under "data" and "data.split"). */
static int config_key_under(const char *key, const char *prefix) {
    size_t n = strlen(prefix);
    return strncmp(key, prefix, n) == 0 && (key[n] == 0 || key[n] == '.');
}

void config_copy(slim_config *dst, const slim_config *src, const char *prefix) {
    for (size_t i = 0; i < CONFIG_N_FIELDS; i++)
        if (config_key_under(config_fields[i].key, prefix)) config_field_copy(dst, src, &config_fields[i]);
    if (config_key_under("data.split", prefix)) dst->has_split = src->has_split; /* the object itself */
}

/* ---- typed readers: each names file and key path on error ---- */

static int config_get_str(const char *file, const char *key, const cJSON *v, char **dst, int allow_null) {
    if (allow_null && cJSON_IsNull(v)) { config_set_str(dst, NULL); return 0; }
    if (!cJSON_IsString(v))
        return slim_set_error("%s: %s: expected a string, got %s", file, key, slim_json_type_name(v));
    if (v->valuestring[0] == 0) return slim_set_error("%s: %s: must not be empty", file, key);
    config_set_str(dst, v->valuestring);
    return 0;
}

static int config_get_num(const char *file, const char *key, const cJSON *v, double *out) {
    if (!cJSON_IsNumber(v))
        return slim_set_error("%s: %s: expected a number, got %s", file, key, slim_json_type_name(v));
    if (!isfinite(v->valuedouble)) return slim_set_error("%s: %s: must be finite", file, key);
    *out = v->valuedouble;
    return 0;
}

/* Integer in [lo, hi]. */
static int config_get_int(const char *file, const char *key, const cJSON *v, int *out, double lo, double hi) {
    double d;
    if (config_get_num(file, key, v, &d)) return -1;
    if (d != floor(d)) return slim_set_error("%s: %s: expected an integer, got %g", file, key, d);
    if (d < lo || d > hi) return slim_set_error("%s: %s: %g is out of range [%.0f, %.0f]", file, key, d, lo, hi);
    *out = (int)d;
    return 0;
}

/* Real number in the range lo..hi; lo_open/hi_open exclude the end points. */
static int config_get_real(const char *file, const char *key, const cJSON *v, double *out, double lo, int lo_open,
                           double hi, int hi_open) {
    double d;
    if (config_get_num(file, key, v, &d)) return -1;
    if ((lo_open ? d <= lo : d < lo) || (hi_open ? d >= hi : d > hi))
        return slim_set_error("%s: %s: %g is out of range %s%g, %g%s", file, key, d, lo_open ? "(" : "[", lo, hi,
                              hi_open ? ")" : "]");
    *out = d;
    return 0;
}

static int config_get_realf(const char *file, const char *key, const cJSON *v, float *out, double lo, int lo_open,
                            double hi, int hi_open) {
    double d;
    if (config_get_real(file, key, v, &d, lo, lo_open, hi, hi_open)) return -1;
    *out = (float)d;
    return 0;
}

/* Array of distinct non-empty strings into dst[0..*n), at most cap. allowed (n_allowed) restricts values. */
static int config_get_str_list(const char *file, const char *key, const cJSON *v, char **dst, int *n, int cap,
                               const char *allowed) {
    if (!cJSON_IsArray(v))
        return slim_set_error("%s: %s: expected an array of strings, got %s", file, key, slim_json_type_name(v));
    int count = cJSON_GetArraySize(v);
    if (count < 1) return slim_set_error("%s: %s: must not be empty", file, key);
    if (count > cap) return slim_set_error("%s: %s: %d entries, at most %d allowed", file, key, count, cap);
    char *tmp[SLIM_MAX_LABELS > SLIM_MAX_TARGETS ? SLIM_MAX_LABELS : SLIM_MAX_TARGETS];
    int k = 0, bad = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (!cJSON_IsString(e)) {
            bad = slim_set_error("%s: %s[%d]: expected a string, got %s", file, key, k, slim_json_type_name(e));
            break;
        }
        if (e->valuestring[0] == 0) { bad = slim_set_error("%s: %s[%d]: must not be empty", file, key, k); break; }
        if (allowed && config_choice_index(allowed, e->valuestring) < 0) {
            bad = slim_set_error("%s: %s[%d]: unknown value \"%s\" (expected one of %s)", file, key, k,
                                 e->valuestring, allowed);
            break;
        }
        for (int j = 0; j < k; j++)
            if (strcmp(tmp[j], e->valuestring) == 0) {
                bad = slim_set_error("%s: %s[%d]: duplicate value \"%s\"", file, key, k, e->valuestring);
                break;
            }
        if (bad) break;
        tmp[k++] = slim_strdup(e->valuestring);
    }
    if (bad) {
        for (int j = 0; j < k; j++) free(tmp[j]);
        return -1;
    }
    for (int j = 0; j < *n; j++) free(dst[j]);
    for (int j = 0; j < k; j++) dst[j] = tmp[j];
    *n = k;
    return 0;
}

/* obj must be a JSON object without duplicate keys; path names it ("" for the top level). */
static int config_check_object(const char *file, const char *path, const cJSON *obj) {
    if (!cJSON_IsObject(obj))
        return slim_set_error("%s: %s: expected an object, got %s", file, path[0] ? path : "(top level)",
                              slim_json_type_name(obj));
    const cJSON *m;
    cJSON_ArrayForEach(m, obj) {
        for (const cJSON *p = obj->child; p != m; p = p->next)
            if (strcmp(p->string, m->string) == 0)
                return slim_set_error("%s: %s%s%s: duplicate key", file, path, path[0] ? "." : "", m->string);
    }
    return 0;
}

static const cJSON *config_member(const cJSON *obj, const char *name) {
    return cJSON_GetObjectItemCaseSensitive(obj, name);
}

/* Counts non-overlapping occurrences of needle in s. */
static int config_count(const char *s, const char *needle) {
    int n = 0;
    size_t k = strlen(needle);
    for (const char *p = strstr(s, needle); p; p = strstr(p + k, needle)) n++;
    return n;
}

/* Checks the templates: the prompt holds {text} exactly once and no {label}; the completion holds
 * {label} exactly once and no {text}. */
static int config_check_templates(const slim_config *c, const char *file) {
    int pt = config_count(c->prompt_template, "{text}"), pl = config_count(c->prompt_template, "{label}");
    int ct = config_count(c->completion_template, "{text}"), cl = config_count(c->completion_template, "{label}");
    if (pt != 1)
        return slim_set_error("%s: data.template.prompt: must contain {text} exactly once (found %d)", file, pt);
    if (pl)
        return slim_set_error("%s: data.template.prompt: must not contain {label} (the label is the completion)",
                              file);
    if (cl != 1)
        return slim_set_error("%s: data.template.completion: must contain {label} exactly once (found %d)", file,
                              cl);
    if (ct) return slim_set_error("%s: data.template.completion: must not contain {text}", file);
    return 0;
}

/* ---- parsing: the JSON objects are walked against config_fields ---- */

static const config_field *config_find(const char *key) {
    for (size_t i = 0; i < CONFIG_N_FIELDS; i++)
        if (strcmp(config_fields[i].key, key) == 0) return &config_fields[i];
    return NULL;
}

/* 1 when key is an object holding settings ("data", "data.columns", ...). */
static int config_is_object(const char *key) {
    size_t n = strlen(key);
    for (size_t i = 0; i < CONFIG_N_FIELDS; i++)
        if (strncmp(config_fields[i].key, key, n) == 0 && config_fields[i].key[n] == '.') return 1;
    return 0;
}

/* CK_OBJLIST: v is null (no list) or an array of at most cap objects whose members are non-empty strings,
 * each named in f->sdflt (required) or f->choices (optional); kept as v's JSON text in *dst. */
static int config_get_obj_list(const char *file, const config_field *f, const cJSON *v, char **dst) {
    if (cJSON_IsNull(v)) { config_set_str(dst, NULL); return 0; }
    if (!cJSON_IsArray(v))
        return slim_set_error("%s: %s: expected an array of objects, got %s", file, f->key, slim_json_type_name(v));
    if (cJSON_GetArraySize(v) > (int)f->hi)
        return slim_set_error("%s: %s: %d entries, at most %.0f allowed", file, f->key, cJSON_GetArraySize(v), f->hi);
    int i = 0;
    const cJSON *e, *m;
    cJSON_ArrayForEach(e, v) {
        if (!cJSON_IsObject(e))
            return slim_set_error("%s: %s[%d]: expected an object, got %s", file, f->key, i, slim_json_type_name(e));
        cJSON_ArrayForEach(m, e) {
            if (config_choice_index(f->sdflt, m->string) < 0 && config_choice_index(f->choices, m->string) < 0)
                return slim_set_error("%s: %s[%d].%s: unknown key (expected %s, %s)", file, f->key, i, m->string,
                                      f->sdflt, f->choices);
            if (!cJSON_IsString(m) || !m->valuestring[0])
                return slim_set_error("%s: %s[%d].%s: expected a non-empty string", file, f->key, i, m->string);
        }
        char buf[64];
        for (const char *p = f->sdflt; config_next_choice(&p, buf, sizeof buf);)
            if (!cJSON_GetObjectItemCaseSensitive(e, buf))
                return slim_set_error("%s: %s[%d]: %s is required", file, f->key, i, buf);
        i++;
    }
    char *text = cJSON_PrintUnformatted(v);
    config_set_str(dst, text);
    cJSON_free(text);
    return 0;
}

/* Reads the value v of setting f into c. */
static int config_field_parse(slim_config *c, const char *file, const config_field *f, const cJSON *v) {
    void *dst = config_at(c, f->off);
    switch (f->kind) {
    case CK_STR: case CK_STR0: return config_get_str(file, f->key, v, dst, f->kind == CK_STR0);
    case CK_CHOICE: case CK_FLAG: {
        char *s = NULL;
        if (config_get_str(file, f->key, v, &s, 0)) return -1;
        int i = config_choice_index(f->choices, s);
        if (i < 0) slim_set_error("%s: %s: \"%s\" is not one of %s", file, f->key, s, f->choices);
        if (i >= 0 && f->kind == CK_CHOICE) config_set_str(dst, s);
        if (i >= 0 && f->kind == CK_FLAG) *(int *)dst = i;
        free(s);
        return i < 0 ? -1 : 0;
    }
    case CK_INT: return config_get_int(file, f->key, v, dst, f->lo, f->hi);
    case CK_REAL: return config_get_real(file, f->key, v, dst, f->lo, f->lo_open, f->hi, f->hi_open);
    case CK_REALF: return config_get_realf(file, f->key, v, dst, f->lo, f->lo_open, f->hi, f->hi_open);
    case CK_BOOL:
        if (!cJSON_IsBool(v))
            return slim_set_error("%s: %s: expected true or false, got %s", file, f->key, slim_json_type_name(v));
        *(int *)dst = cJSON_IsTrue(v);
        return 0;
    case CK_OBJLIST: return config_get_obj_list(file, f, v, dst);
    default: /* CK_LIST: null clears a list without fixed choices (data.labels) */
        if (cJSON_IsNull(v) && !f->choices) { config_field_free(c, f); return 0; }
        return config_get_str_list(file, f->key, v, dst, config_at(c, f->n_off), (int)f->hi, f->choices);
    }
}

/* Reads the JSON object obj at key path `path` ("" for the top level): each member is a setting or an
 * object of settings; anything else is an unknown key. data.split may be null (no split). */
static int config_parse_object(slim_config *c, const char *file, const char *path, const cJSON *obj) {
    if (config_check_object(file, path, obj)) return -1;
    const cJSON *m;
    cJSON_ArrayForEach(m, obj) {
        char key[256];
        snprintf(key, sizeof key, "%s%s%s", path, path[0] ? "." : "", m->string);
        const config_field *f = config_find(key);
        if (f) {
            if (config_field_parse(c, file, f, m)) return -1;
            continue;
        }
        if (!config_is_object(key)) return slim_set_error("%s: %s: unknown key", file, key);
        if (strcmp(key, "data.split") == 0) {
            c->has_split = !cJSON_IsNull(m);
            if (!c->has_split) continue;
        }
        if (config_parse_object(c, file, key, m)) return -1;
    }
    return 0;
}

/* The rules of the validation set (data.val, data.split.val_fraction) and of train.eval_every /
 * train.early_stopping, which need one. */
static int config_check_val(const slim_config *c, const char *file) {
    int has_val = c->val_file || (c->has_split && c->split_val_fraction > 0);
    if (c->val_file && c->has_split && c->split_val_fraction > 0)
        return slim_set_error("%s: data.val: given together with data.split.val_fraction; name a file or split "
                              "data.train, not both", file);
    if (c->has_split && !c->test_file && c->split_test_fraction + c->split_val_fraction >= 1)
        return slim_set_error("%s: data.split: test_fraction %g + val_fraction %g leave no training rows", file,
                              c->split_test_fraction, c->split_val_fraction);
    if (c->eval_every > 0 && !has_val)
        return slim_set_error("%s: train.eval_every: needs a validation set (data.val or data.split.val_fraction)",
                              file);
    if (c->es_patience > 0 && (!has_val || c->eval_every == 0))
        return slim_set_error("%s: train.early_stopping: needs validation during training (data.val or "
                              "data.split.val_fraction, and train.eval_every not 0)", file);
    return 0;
}

/* The rules that join several settings. */
static int config_check(const slim_config *c, const char *file) {
    if (c->has_split && c->test_file && c->split_val_fraction == 0)
        return slim_set_error("%s: data.split: given together with data.test; split data.train or name a test file, "
                              "not both (with data.test, data.split may only carve out val_fraction)",
                              file);
    if (config_check_val(c, file)) return -1;
    if (strcmp(c->text_column, c->label_column) == 0)
        return slim_set_error("%s: data.columns: text and label name the same column \"%s\"", file, c->text_column);
    if (c->val_max_imbalance > 0 && c->val_max_imbalance < 1)
        return slim_set_error("%s: validate.max_imbalance: %g is below 1 (a ratio largest / smallest; 0 = no gate)",
                              file, c->val_max_imbalance);
    if (c->val_minhash_bands * c->val_minhash_rows > 1024)
        return slim_set_error("%s: validate.minhash_bands * minhash_rows = %d: at most 1024 MinHash values", file,
                              c->val_minhash_bands * c->val_minhash_rows);
    return config_check_templates(c, file);
}

static int config_parse(slim_config *c, const char *file, const cJSON *root) {
    const cJSON *m;
    if (config_check_object(file, "", root)) return -1;
    cJSON_ArrayForEach(m, root) /* unknown top-level keys before the missing model */
        if (!config_find(m->string) && !config_is_object(m->string))
            return slim_set_error("%s: %s: unknown key", file, m->string);
    if (!config_member(root, "model")) return slim_set_error("%s: model: required key is missing", file);
    if (config_parse_object(c, file, "", root)) return -1;
    return config_check(c, file);
}

int config_load(slim_config *c, const char *path) {
    config_defaults(c);
    char *text;
    size_t size;
    if (slim_read_file(path, &text, &size)) { config_free(c); return -1; }
    if (strlen(text) != size) {
        size_t off = strlen(text);
        int line = 1;
        for (size_t i = 0; i < off; i++) line += text[i] == '\n';
        free(text);
        config_free(c);
        return slim_set_error("%s:%d: NUL byte in JSON text", path, line);
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    if (!root) {
        int line = 1, col = 1;
        const char *at = end ? end : cJSON_GetErrorPtr();
        if (at && at >= text && at <= text + size) {
            for (const char *p = text; p < at; p++) {
                if (*p == '\n') { line++; col = 1; } else col++;
            }
            char near[24];
            size_t k = 0;
            for (; k < 20 && at[k] && at[k] != '\n' && at[k] != '\r'; k++) near[k] = at[k];
            near[k] = 0;
            if (k) slim_set_error("%s:%d:%d: malformed JSON near \"%s\"", path, line, col, near);
            else slim_set_error("%s:%d:%d: malformed JSON (at the end of %s)", path, line, col,
                                at[0] ? "the line" : "the file");
        } else {
            slim_set_error("%s: malformed JSON", path);
        }
        free(text);
        config_free(c);
        return -1;
    }
    free(text);
    int rc = config_parse(c, path, root);
    cJSON_Delete(root);
    if (rc) { config_free(c); return -1; }
    c->path = slim_strdup(path);
    return 0;
}

/* A float as the shortest decimal that reads back to the same float, so 0.003f saves as 0.003. */
static double config_float_json(float f) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.9g", (double)f);
    for (int prec = 6; prec < 9; prec++) {
        char b2[64];
        snprintf(b2, sizeof b2, "%.*g", prec, (double)f);
        if ((float)strtod(b2, NULL) == f) return strtod(b2, NULL);
    }
    return strtod(buf, NULL);
}

/* ---- saving ---- */

/* The object that holds key (creating "data", "data.columns", ... in root as needed); *name is set to
 * the key's last part. */
static cJSON *config_parent(cJSON *root, const char *key, const char **name) {
    cJSON *o = root;
    const char *p = key, *dot;
    while ((dot = strchr(p, '.'))) {
        char part[64];
        snprintf(part, sizeof part, "%.*s", (int)(dot - p), p);
        cJSON *next = cJSON_GetObjectItemCaseSensitive(o, part);
        o = next ? next : cJSON_AddObjectToObject(o, part);
        p = dot + 1;
    }
    *name = p;
    return o;
}

static void config_field_save(cJSON *o, const char *name, const slim_config *c, const config_field *f) {
    const void *v = config_at(c, f->off);
    char buf[64];
    const char *p = f->choices;
    switch (f->kind) {
    case CK_STR: case CK_STR0: case CK_CHOICE:
        if (*(char *const *)v) cJSON_AddStringToObject(o, name, *(char *const *)v);
        else cJSON_AddNullToObject(o, name);
        break;
    case CK_FLAG:
        for (int i = 0; i <= *(const int *)v; i++) config_next_choice(&p, buf, sizeof buf);
        cJSON_AddStringToObject(o, name, buf);
        break;
    case CK_INT: cJSON_AddNumberToObject(o, name, *(const int *)v); break;
    case CK_REAL: cJSON_AddNumberToObject(o, name, *(const double *)v); break;
    case CK_REALF: cJSON_AddNumberToObject(o, name, config_float_json(*(const float *)v)); break;
    case CK_BOOL: cJSON_AddBoolToObject(o, name, *(const int *)v); break;
    case CK_OBJLIST: {
        const char *text = *(char *const *)v;
        cJSON *list = text ? cJSON_Parse(text) : NULL;
        if (list) cJSON_AddItemToObject(o, name, list);
        else cJSON_AddNullToObject(o, name);
        break;
    }
    default: {
        int n = *(const int *)config_at(c, f->n_off);
        if (n > 0) cJSON_AddItemToObject(o, name, cJSON_CreateStringArray((const char *const *)v, n));
        else cJSON_AddNullToObject(o, name);
    }
    }
}

int config_save(const slim_config *c, const char *path) {
    cJSON *root = cJSON_CreateObject();
    for (size_t i = 0; i < CONFIG_N_FIELDS; i++) {
        const config_field *f = &config_fields[i];
        const char *name;
        if (!c->has_split && strncmp(f->key, "data.split.", 11) == 0) { /* no split: "split": null */
            cJSON *d = config_parent(root, "data.split", &name);
            if (!cJSON_GetObjectItemCaseSensitive(d, name)) cJSON_AddNullToObject(d, name);
            continue;
        }
        cJSON *parent = config_parent(root, f->key, &name);
        config_field_save(parent, name, c, f);
    }
    char *json = cJSON_Print(root);
    cJSON_Delete(root);
    if (!json) return slim_set_error("%s: cannot format the config as JSON", path);
    int rc = slim_write_text_line(path, json);
    cJSON_free(json);
    return rc;
}

int config_validates(const slim_config *c) {
    return (c->val_file || (c->has_split && c->split_val_fraction > 0)) && c->eval_every != 0;
}
