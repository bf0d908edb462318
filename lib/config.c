/* config.c — the run configuration: JSON (cJSON) <-> slim_config. See config.h.
 *
 * Parsing walks each JSON object against a table of known keys, so that unknown keys, wrong types and
 * out-of-range values are all reported as "<file>: <key.path>: <what is wrong>". */
#define _GNU_SOURCE
#include "config.h"

#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static const char *config_all_targets[] = {"q", "k", "v", "o", "gate", "up", "down"};
#define CONFIG_N_ALL_TARGETS 7

static void config_set_str(char **dst, const char *s) {
    free(*dst);
    *dst = s ? slim_strdup(s) : NULL;
}

void config_defaults(slim_config *c) {
    memset(c, 0, sizeof *c);
    c->out_dir = slim_strdup("work/run");
    c->base_quant = slim_strdup("f32");
    c->format = slim_strdup("auto");
    c->text_column = slim_strdup("text");
    c->label_column = slim_strdup("label");
    c->shape = slim_strdup("auto");
    c->chat_template = slim_strdup("auto");
    c->prompt_column = slim_strdup("prompt");
    c->completion_column = slim_strdup("completion");
    c->instruction_column = slim_strdup("instruction");
    c->input_column = slim_strdup("input");
    c->output_column = slim_strdup("output");
    c->messages_column = slim_strdup("messages");
    c->split_test_fraction = 0.1;
    c->split_seed = 1;
    c->val_max_invalid_rows = 0.01;
    c->val_max_duplicate_rate = 0.01;
    c->val_max_near_duplicate_rate = 0.05;
    c->val_max_leakage = 0.0;
    c->val_max_imbalance = 20.0;
    c->val_min_label_count = 10;
    c->val_near_threshold = 0.8;
    c->val_shingle = slim_strdup("word");
    c->val_shingle_size = 0;
    c->val_minhash_bands = 32;
    c->val_minhash_rows = 4;
    c->val_show_rows = 5;
    c->val_report_rows = 100;
    c->prompt_template = slim_strdup("Text: {text}\nLabel:");
    c->completion_template = slim_strdup(" {label}");
    c->max_seq_len = 256;
    c->max_bad_rows = 0.01;
    c->lora_r = 8;
    c->lora_alpha = 16.0f;
    c->n_targets = CONFIG_N_ALL_TARGETS;
    for (int i = 0; i < CONFIG_N_ALL_TARGETS; i++) c->targets[i] = slim_strdup(config_all_targets[i]);
    c->epochs = 1;
    c->max_steps = 0;
    c->batch_size = 8;
    c->grad_accum = 1;
    c->lr = 1e-3f;
    c->min_lr_ratio = 0.1f;
    c->warmup_steps = 10;
    c->weight_decay = 0.0f;
    c->beta1 = 0.9f;
    c->beta2 = 0.999f;
    c->eps = 1e-8f;
    c->grad_clip = 1.0f;
    c->seed = 1;
    c->log_every = 10;
    c->threads = 0;
    c->min_accuracy = 0.0;
    c->min_gain = -1.0;
    c->eval_max_examples = 0;
}

void config_free(slim_config *c) {
    free(c->path);
    free(c->model);
    free(c->out_dir);
    free(c->base_quant);
    free(c->train_file);
    free(c->test_file);
    free(c->format);
    free(c->text_column);
    free(c->label_column);
    free(c->shape);
    free(c->chat_template);
    free(c->prompt_column);
    free(c->completion_column);
    free(c->instruction_column);
    free(c->input_column);
    free(c->output_column);
    free(c->messages_column);
    free(c->val_shingle);
    free(c->prompt_template);
    free(c->completion_template);
    for (int i = 0; i < c->n_labels && i < SLIM_MAX_LABELS; i++) free(c->labels[i]);
    for (int i = 0; i < c->n_targets && i < SLIM_MAX_TARGETS; i++) free(c->targets[i]);
    memset(c, 0, sizeof *c);
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
                               const char **allowed, int n_allowed) {
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
        if (allowed) {
            int ok = 0;
            for (int j = 0; j < n_allowed; j++) ok |= strcmp(allowed[j], e->valuestring) == 0;
            if (!ok) {
                bad = slim_set_error("%s: %s[%d]: unknown value \"%s\" (expected one of q k v o gate up down)", file,
                                     key, k, e->valuestring);
                break;
            }
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

/* Every object member must be one of the names in keys[]; otherwise "unknown key". Checks duplicates too. */
static int config_check_keys(const char *file, const char *prefix, const cJSON *obj, const char **keys, int n_keys) {
    if (!cJSON_IsObject(obj))
        return slim_set_error("%s: %s: expected an object, got %s", file, prefix[0] ? prefix : "(top level)",
                              slim_json_type_name(obj));
    const cJSON *m;
    cJSON_ArrayForEach(m, obj) {
        int ok = 0;
        for (int i = 0; i < n_keys; i++) ok |= strcmp(keys[i], m->string) == 0;
        if (!ok) return slim_set_error("%s: %s%s%s: unknown key", file, prefix, prefix[0] ? "." : "", m->string);
        for (const cJSON *p = obj->child; p != m; p = p->next)
            if (strcmp(p->string, m->string) == 0)
                return slim_set_error("%s: %s%s%s: duplicate key", file, prefix, prefix[0] ? "." : "", m->string);
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

static int config_parse_data(slim_config *c, const char *file, const cJSON *d) {
    static const char *keys[] = {"train", "test", "format", "columns", "template", "labels", "max_seq_len",
                                 "max_bad_rows", "shape", "invalid_utf8", "split", "chat_template", "chat_loss"};
    if (config_check_keys(file, "data", d, keys, 13)) return -1;
    const cJSON *v;
    if ((v = config_member(d, "train")) && config_get_str(file, "data.train", v, &c->train_file, 1)) return -1;
    if ((v = config_member(d, "test")) && config_get_str(file, "data.test", v, &c->test_file, 1)) return -1;
    if ((v = config_member(d, "format"))) {
        if (config_get_str(file, "data.format", v, &c->format, 0)) return -1;
        if (strcmp(c->format, "csv") && strcmp(c->format, "tsv") && strcmp(c->format, "jsonl") &&
            strcmp(c->format, "auto"))
            return slim_set_error("%s: data.format: \"%s\" is not one of csv, tsv, jsonl, auto", file, c->format);
    }
    if ((v = config_member(d, "shape"))) {
        static const char *shapes[] = {"auto", "text_label", "prompt_completion", "alpaca", "chat", "text"};
        if (config_get_str(file, "data.shape", v, &c->shape, 0)) return -1;
        int ok = 0;
        for (int i = 0; i < 6; i++) ok |= strcmp(c->shape, shapes[i]) == 0;
        if (!ok)
            return slim_set_error("%s: data.shape: \"%s\" is not one of auto, text_label, prompt_completion, alpaca, "
                                  "chat, text",
                                  file, c->shape);
    }
    if ((v = config_member(d, "chat_template")) && config_get_str(file, "data.chat_template", v, &c->chat_template, 0))
        return -1;
    if ((v = config_member(d, "chat_loss"))) {
        char *m = NULL;
        if (config_get_str(file, "data.chat_loss", v, &m, 0)) return -1;
        int ok = strcmp(m, "all") == 0 || strcmp(m, "last") == 0;
        c->chat_loss_last = strcmp(m, "last") == 0;
        if (!ok) slim_set_error("%s: data.chat_loss: \"%s\" is not one of all, last", file, m);
        free(m);
        if (!ok) return -1;
    }
    if ((v = config_member(d, "invalid_utf8"))) {
        char *pol = NULL;
        if (config_get_str(file, "data.invalid_utf8", v, &pol, 0)) return -1;
        int ok = strcmp(pol, "reject") == 0 || strcmp(pol, "replace") == 0;
        c->replace_bad_utf8 = strcmp(pol, "replace") == 0;
        if (!ok) slim_set_error("%s: data.invalid_utf8: \"%s\" is not one of reject, replace", file, pol);
        free(pol);
        if (!ok) return -1;
    }
    if ((v = config_member(d, "split"))) {
        if (cJSON_IsNull(v)) {
            c->has_split = 0;
        } else {
            static const char *sk[] = {"test_fraction", "seed"};
            if (config_check_keys(file, "data.split", v, sk, 2)) return -1;
            const cJSON *w;
            if ((w = config_member(v, "test_fraction")) &&
                config_get_real(file, "data.split.test_fraction", w, &c->split_test_fraction, 0, 1, 1, 1))
                return -1;
            if ((w = config_member(v, "seed")) &&
                config_get_int(file, "data.split.seed", w, &c->split_seed, 0, 2147483647.0))
                return -1;
            c->has_split = 1;
        }
    }
    if (c->has_split && c->test_file)
        return slim_set_error("%s: data.split: given together with data.test; split data.train or name a test file, "
                              "not both",
                              file);
    if ((v = config_member(d, "columns"))) {
        static const char *ck[] = {"text", "label", "prompt", "completion", "instruction", "input", "output",
                                   "messages"};
        char **dst[] = {&c->text_column,        &c->label_column,       &c->prompt_column, &c->completion_column,
                        &c->instruction_column, &c->input_column,       &c->output_column, &c->messages_column};
        if (config_check_keys(file, "data.columns", v, ck, 8)) return -1;
        for (int i = 0; i < 8; i++) {
            const cJSON *w = config_member(v, ck[i]);
            char key[64];
            snprintf(key, sizeof key, "data.columns.%s", ck[i]);
            if (w && config_get_str(file, key, w, dst[i], 0)) return -1;
        }
        if (strcmp(c->text_column, c->label_column) == 0)
            return slim_set_error("%s: data.columns: text and label name the same column \"%s\"", file,
                                  c->text_column);
    }
    if ((v = config_member(d, "template"))) {
        static const char *tk[] = {"prompt", "completion"};
        if (config_check_keys(file, "data.template", v, tk, 2)) return -1;
        const cJSON *w;
        if ((w = config_member(v, "prompt")) &&
            config_get_str(file, "data.template.prompt", w, &c->prompt_template, 0))
            return -1;
        if ((w = config_member(v, "completion")) &&
            config_get_str(file, "data.template.completion", w, &c->completion_template, 0))
            return -1;
    }
    if ((v = config_member(d, "labels"))) {
        if (cJSON_IsNull(v)) {
            for (int i = 0; i < c->n_labels; i++) free(c->labels[i]);
            c->n_labels = 0;
        } else if (config_get_str_list(file, "data.labels", v, c->labels, &c->n_labels, SLIM_MAX_LABELS, NULL, 0)) {
            return -1;
        }
    }
    if ((v = config_member(d, "max_seq_len")) &&
        config_get_int(file, "data.max_seq_len", v, &c->max_seq_len, 4, 1 << 20))
        return -1;
    if ((v = config_member(d, "max_bad_rows")) &&
        config_get_real(file, "data.max_bad_rows", v, &c->max_bad_rows, 0, 0, 1, 0))
        return -1;
    return 0;
}

static int config_parse_validate(slim_config *c, const char *file, const cJSON *e) {
    static const char *keys[] = {"max_invalid_rows", "max_duplicate_rate", "max_near_duplicate_rate", "max_leakage",
                                 "max_imbalance",    "min_label_count",    "near_duplicate_threshold", "shingle",
                                 "shingle_size",     "minhash_bands",      "minhash_rows",  "show_rows",
                                 "report_rows"};
    if (config_check_keys(file, "validate", e, keys, 13)) return -1;
    const cJSON *v;
    double *fr[] = {&c->val_max_invalid_rows, &c->val_max_duplicate_rate, &c->val_max_near_duplicate_rate,
                    &c->val_max_leakage};
    for (int i = 0; i < 4; i++) {
        char key[64];
        snprintf(key, sizeof key, "validate.%s", keys[i]);
        if ((v = config_member(e, keys[i])) && config_get_real(file, key, v, fr[i], 0, 0, 1, 0)) return -1;
    }
    if ((v = config_member(e, "max_imbalance")) &&
        config_get_real(file, "validate.max_imbalance", v, &c->val_max_imbalance, 0, 0, 1e12, 0))
        return -1;
    if (c->val_max_imbalance > 0 && c->val_max_imbalance < 1)
        return slim_set_error("%s: validate.max_imbalance: %g is below 1 (a ratio largest / smallest; 0 = no gate)",
                              file, c->val_max_imbalance);
    if ((v = config_member(e, "min_label_count")) &&
        config_get_int(file, "validate.min_label_count", v, &c->val_min_label_count, 0, 2147483647.0))
        return -1;
    if ((v = config_member(e, "near_duplicate_threshold")) &&
        config_get_real(file, "validate.near_duplicate_threshold", v, &c->val_near_threshold, 0, 1, 1, 0))
        return -1;
    if ((v = config_member(e, "shingle"))) {
        if (config_get_str(file, "validate.shingle", v, &c->val_shingle, 0)) return -1;
        if (strcmp(c->val_shingle, "word") && strcmp(c->val_shingle, "char"))
            return slim_set_error("%s: validate.shingle: \"%s\" is not one of word, char", file, c->val_shingle);
    }
    if ((v = config_member(e, "shingle_size")) &&
        config_get_int(file, "validate.shingle_size", v, &c->val_shingle_size, 0, 64))
        return -1;
    if ((v = config_member(e, "minhash_bands")) &&
        config_get_int(file, "validate.minhash_bands", v, &c->val_minhash_bands, 1, 256))
        return -1;
    if ((v = config_member(e, "minhash_rows")) &&
        config_get_int(file, "validate.minhash_rows", v, &c->val_minhash_rows, 1, 64))
        return -1;
    if (c->val_minhash_bands * c->val_minhash_rows > 1024)
        return slim_set_error("%s: validate.minhash_bands * minhash_rows = %d: at most 1024 MinHash values", file,
                              c->val_minhash_bands * c->val_minhash_rows);
    if ((v = config_member(e, "show_rows")) &&
        config_get_int(file, "validate.show_rows", v, &c->val_show_rows, 0, 1e6))
        return -1;
    if ((v = config_member(e, "report_rows")) &&
        config_get_int(file, "validate.report_rows", v, &c->val_report_rows, 0, 2147483647.0))
        return -1;
    return 0;
}

static int config_parse_lora(slim_config *c, const char *file, const cJSON *l) {
    static const char *keys[] = {"r", "alpha", "targets"};
    if (config_check_keys(file, "lora", l, keys, 3)) return -1;
    const cJSON *v;
    if ((v = config_member(l, "r")) && config_get_int(file, "lora.r", v, &c->lora_r, 1, 4096)) return -1;
    if ((v = config_member(l, "alpha")) && config_get_realf(file, "lora.alpha", v, &c->lora_alpha, 0, 1, 1e6, 0))
        return -1;
    if ((v = config_member(l, "targets")) &&
        config_get_str_list(file, "lora.targets", v, c->targets, &c->n_targets, SLIM_MAX_TARGETS,
                            config_all_targets, CONFIG_N_ALL_TARGETS))
        return -1;
    return 0;
}

static int config_parse_train(slim_config *c, const char *file, const cJSON *t) {
    static const char *keys[] = {"epochs",       "max_steps", "batch_size", "grad_accum", "lr",
                                 "min_lr_ratio", "warmup_steps", "weight_decay", "beta1", "beta2",
                                 "eps",          "grad_clip", "seed",       "log_every",  "threads",
                                 "packing"};
    if (config_check_keys(file, "train", t, keys, 16)) return -1;
    const cJSON *v;
    const double big = 2147483647.0;
    if ((v = config_member(t, "epochs")) && config_get_int(file, "train.epochs", v, &c->epochs, 1, 1e6)) return -1;
    if ((v = config_member(t, "max_steps")) && config_get_int(file, "train.max_steps", v, &c->max_steps, 0, big))
        return -1;
    if ((v = config_member(t, "batch_size")) &&
        config_get_int(file, "train.batch_size", v, &c->batch_size, 1, 1 << 20))
        return -1;
    if ((v = config_member(t, "grad_accum")) &&
        config_get_int(file, "train.grad_accum", v, &c->grad_accum, 1, 1 << 20))
        return -1;
    if ((v = config_member(t, "lr")) && config_get_realf(file, "train.lr", v, &c->lr, 0, 1, 10, 0)) return -1;
    if ((v = config_member(t, "min_lr_ratio")) &&
        config_get_realf(file, "train.min_lr_ratio", v, &c->min_lr_ratio, 0, 0, 1, 0))
        return -1;
    if ((v = config_member(t, "warmup_steps")) &&
        config_get_int(file, "train.warmup_steps", v, &c->warmup_steps, 0, big))
        return -1;
    if ((v = config_member(t, "weight_decay")) &&
        config_get_realf(file, "train.weight_decay", v, &c->weight_decay, 0, 0, 1e3, 0))
        return -1;
    if ((v = config_member(t, "beta1")) && config_get_realf(file, "train.beta1", v, &c->beta1, 0, 0, 1, 1))
        return -1;
    if ((v = config_member(t, "beta2")) && config_get_realf(file, "train.beta2", v, &c->beta2, 0, 0, 1, 1))
        return -1;
    if ((v = config_member(t, "eps")) && config_get_realf(file, "train.eps", v, &c->eps, 0, 1, 1, 0)) return -1;
    if ((v = config_member(t, "grad_clip")) &&
        config_get_realf(file, "train.grad_clip", v, &c->grad_clip, 0, 0, 1e9, 0))
        return -1;
    if ((v = config_member(t, "seed")) && config_get_int(file, "train.seed", v, &c->seed, 0, big)) return -1;
    if ((v = config_member(t, "log_every")) && config_get_int(file, "train.log_every", v, &c->log_every, 1, big))
        return -1;
    if ((v = config_member(t, "threads")) && config_get_int(file, "train.threads", v, &c->threads, 0, 4096))
        return -1;
    if ((v = config_member(t, "packing"))) {
        if (!cJSON_IsBool(v))
            return slim_set_error("%s: train.packing: expected true or false, got %s", file, slim_json_type_name(v));
        c->packing = cJSON_IsTrue(v);
    }
    return 0;
}

static int config_parse_eval(slim_config *c, const char *file, const cJSON *e) {
    static const char *keys[] = {"min_accuracy", "min_gain", "max_examples"};
    if (config_check_keys(file, "eval", e, keys, 3)) return -1;
    const cJSON *v;
    if ((v = config_member(e, "min_accuracy")) &&
        config_get_real(file, "eval.min_accuracy", v, &c->min_accuracy, 0, 0, 1, 0))
        return -1;
    if ((v = config_member(e, "min_gain")) && config_get_real(file, "eval.min_gain", v, &c->min_gain, -1, 0, 1, 0))
        return -1;
    if ((v = config_member(e, "max_examples")) &&
        config_get_int(file, "eval.max_examples", v, &c->eval_max_examples, 0, 2147483647.0))
        return -1;
    return 0;
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

static int config_parse_base(slim_config *c, const char *file, const cJSON *b) {
    static const char *keys[] = {"quant"};
    /* the storage types of model.h's enum base_quant */
    static const char *quants[] = {"f32", "f16", "bf16", "q8_0", "nf4", "keep"};
    if (config_check_keys(file, "base", b, keys, 1)) return -1;
    const cJSON *v;
    if ((v = config_member(b, "quant"))) {
        if (config_get_str(file, "base.quant", v, &c->base_quant, 0)) return -1;
        for (size_t i = 0; i < sizeof quants / sizeof quants[0]; i++)
            if (!strcmp(c->base_quant, quants[i])) return 0;
        return slim_set_error("%s: base.quant: '%s' is not one of f32, f16, bf16, q8_0, nf4, keep", file, c->base_quant);
    }
    return 0;
}

static int config_parse(slim_config *c, const char *file, const cJSON *root) {
    static const char *keys[] = {"model", "out_dir", "base", "data", "lora", "train", "eval", "validate"};
    if (config_check_keys(file, "", root, keys, 8)) return -1;
    const cJSON *v;
    if (!(v = config_member(root, "model"))) return slim_set_error("%s: model: required key is missing", file);
    if (config_get_str(file, "model", v, &c->model, 0)) return -1;
    if ((v = config_member(root, "out_dir")) && config_get_str(file, "out_dir", v, &c->out_dir, 0)) return -1;
    if ((v = config_member(root, "base")) && config_parse_base(c, file, v)) return -1;
    if ((v = config_member(root, "data")) && config_parse_data(c, file, v)) return -1;
    if ((v = config_member(root, "lora")) && config_parse_lora(c, file, v)) return -1;
    if ((v = config_member(root, "train")) && config_parse_train(c, file, v)) return -1;
    if ((v = config_member(root, "eval")) && config_parse_eval(c, file, v)) return -1;
    if ((v = config_member(root, "validate")) && config_parse_validate(c, file, v)) return -1;
    return config_check_templates(c, file);
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

static void config_add_str(cJSON *o, const char *k, const char *v) {
    if (v) cJSON_AddStringToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

int config_save(const slim_config *c, const char *path) {
    cJSON *root = cJSON_CreateObject();
    config_add_str(root, "model", c->model);
    config_add_str(root, "out_dir", c->out_dir);
    cJSON *base = cJSON_AddObjectToObject(root, "base");
    config_add_str(base, "quant", c->base_quant);

    cJSON *d = cJSON_AddObjectToObject(root, "data");
    config_add_str(d, "train", c->train_file);
    config_add_str(d, "test", c->test_file);
    config_add_str(d, "format", c->format);
    config_add_str(d, "shape", c->shape);
    cJSON *cols = cJSON_AddObjectToObject(d, "columns");
    config_add_str(cols, "text", c->text_column);
    config_add_str(cols, "label", c->label_column);
    config_add_str(cols, "prompt", c->prompt_column);
    config_add_str(cols, "completion", c->completion_column);
    config_add_str(cols, "instruction", c->instruction_column);
    config_add_str(cols, "input", c->input_column);
    config_add_str(cols, "output", c->output_column);
    config_add_str(cols, "messages", c->messages_column);
    config_add_str(d, "invalid_utf8", c->replace_bad_utf8 ? "replace" : "reject");
    config_add_str(d, "chat_template", c->chat_template);
    config_add_str(d, "chat_loss", c->chat_loss_last ? "last" : "all");
    if (c->has_split) {
        cJSON *sp = cJSON_AddObjectToObject(d, "split");
        cJSON_AddNumberToObject(sp, "test_fraction", c->split_test_fraction);
        cJSON_AddNumberToObject(sp, "seed", c->split_seed);
    } else {
        cJSON_AddNullToObject(d, "split");
    }
    cJSON *tmpl = cJSON_AddObjectToObject(d, "template");
    config_add_str(tmpl, "prompt", c->prompt_template);
    config_add_str(tmpl, "completion", c->completion_template);
    if (c->n_labels > 0)
        cJSON_AddItemToObject(d, "labels", cJSON_CreateStringArray((const char *const *)c->labels, c->n_labels));
    else
        cJSON_AddNullToObject(d, "labels");
    cJSON_AddNumberToObject(d, "max_seq_len", c->max_seq_len);
    cJSON_AddNumberToObject(d, "max_bad_rows", c->max_bad_rows);

    cJSON *l = cJSON_AddObjectToObject(root, "lora");
    cJSON_AddNumberToObject(l, "r", c->lora_r);
    cJSON_AddNumberToObject(l, "alpha", config_float_json(c->lora_alpha));
    cJSON_AddItemToObject(l, "targets", cJSON_CreateStringArray((const char *const *)c->targets, c->n_targets));

    cJSON *t = cJSON_AddObjectToObject(root, "train");
    cJSON_AddNumberToObject(t, "epochs", c->epochs);
    cJSON_AddNumberToObject(t, "max_steps", c->max_steps);
    cJSON_AddNumberToObject(t, "batch_size", c->batch_size);
    cJSON_AddNumberToObject(t, "grad_accum", c->grad_accum);
    cJSON_AddNumberToObject(t, "lr", config_float_json(c->lr));
    cJSON_AddNumberToObject(t, "min_lr_ratio", config_float_json(c->min_lr_ratio));
    cJSON_AddNumberToObject(t, "warmup_steps", c->warmup_steps);
    cJSON_AddNumberToObject(t, "weight_decay", config_float_json(c->weight_decay));
    cJSON_AddNumberToObject(t, "beta1", config_float_json(c->beta1));
    cJSON_AddNumberToObject(t, "beta2", config_float_json(c->beta2));
    cJSON_AddNumberToObject(t, "eps", config_float_json(c->eps));
    cJSON_AddNumberToObject(t, "grad_clip", config_float_json(c->grad_clip));
    cJSON_AddNumberToObject(t, "seed", c->seed);
    cJSON_AddNumberToObject(t, "log_every", c->log_every);
    cJSON_AddBoolToObject(t, "packing", c->packing);
    cJSON_AddNumberToObject(t, "threads", c->threads);

    cJSON *e = cJSON_AddObjectToObject(root, "eval");
    cJSON_AddNumberToObject(e, "min_accuracy", c->min_accuracy);
    cJSON_AddNumberToObject(e, "min_gain", c->min_gain);
    cJSON_AddNumberToObject(e, "max_examples", c->eval_max_examples);

    cJSON *va = cJSON_AddObjectToObject(root, "validate");
    cJSON_AddNumberToObject(va, "max_invalid_rows", c->val_max_invalid_rows);
    cJSON_AddNumberToObject(va, "max_duplicate_rate", c->val_max_duplicate_rate);
    cJSON_AddNumberToObject(va, "max_near_duplicate_rate", c->val_max_near_duplicate_rate);
    cJSON_AddNumberToObject(va, "max_leakage", c->val_max_leakage);
    cJSON_AddNumberToObject(va, "max_imbalance", c->val_max_imbalance);
    cJSON_AddNumberToObject(va, "min_label_count", c->val_min_label_count);
    cJSON_AddNumberToObject(va, "near_duplicate_threshold", c->val_near_threshold);
    config_add_str(va, "shingle", c->val_shingle);
    cJSON_AddNumberToObject(va, "shingle_size", c->val_shingle_size);
    cJSON_AddNumberToObject(va, "minhash_bands", c->val_minhash_bands);
    cJSON_AddNumberToObject(va, "minhash_rows", c->val_minhash_rows);
    cJSON_AddNumberToObject(va, "show_rows", c->val_show_rows);
    cJSON_AddNumberToObject(va, "report_rows", c->val_report_rows);

    char *json = cJSON_Print(root);
    cJSON_Delete(root);
    if (!json) return slim_set_error("%s: cannot format the config as JSON", path);
    int rc = slim_write_text_line(path, json);
    cJSON_free(json);
    return rc;
}
