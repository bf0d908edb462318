/* baselines.c — eval.baselines: the answers of the systems a team runs now (a frontier LLM's, a rules
 * engine's), one file each, joined to the scored test examples by a key and scored like the model.
 *
 * Each entry {"name", "file", "key": "text" (default) | "id", "column": "prediction" (default)}: file is
 * CSV, TSV or JSONL (data.format) holding, per row, the key under the same column name as in the test
 * file (key "text": data.columns.text; key "id": a column "id" in both) and the system's answer in
 * `column`. The test file (the test split's source, dataset.h source_file) is read again to find each
 * scored example's key by its source line. An example whose key has no row, or a row without an answer,
 * is missing; an answer outside the label set is invalid; both count as wrong, and are reported. Two rows
 * with the same key and different answers are an error naming both lines. */
#include "baselines.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "../data/prepare.h"
#include "../data/reader.h"

/* A (key, value) pair of a file: the key string, its answer (NULL: none), its line. */
typedef struct bl_pair {
    const char *key, *value;
    int64_t line;
} bl_pair;

static int bl_cmp_key(const void *a, const void *b) {
    return strcmp(((const bl_pair *)a)->key, ((const bl_pair *)b)->key);
}

/* Opens path with the config's format, the key in the text column slot and `value_column` in the label
 * slot (optional), any label accepted. */
static int bl_open(data_reader *rd, const char *path, const slim_config *cfg, const char *key_column,
                   const char *value_column) {
    reader_opts ro;
    prep_reader_opts(&ro, cfg, SHAPE_TEXT_LABEL, NULL, 0);
    ro.columns[COL_TEXT] = key_column;
    ro.columns[COL_LABEL] = value_column;
    ro.target_optional = 1;
    return reader_open_ex(rd, path, &ro);
}

/* The good rows of rd as pairs sorted by key; *n their count, *n_bad the bad rows. Two rows of one key with
 * different answers are an error (path, both lines). Returns the pairs (free()) or NULL with an error. */
static bl_pair *bl_pairs(const data_reader *rd, const char *path, int64_t *n, int64_t *n_bad) {
    bl_pair *p = slim_malloc((size_t)(rd->n_rows + 1) * sizeof(bl_pair));
    *n = *n_bad = 0;
    for (int64_t i = 0; i < rd->n_rows; i++) {
        const reader_row *r = &rd->rows[i];
        if (r->reason != 0 || !r->text) { (*n_bad)++; continue; }
        p[(*n)++] = (bl_pair){r->text, r->label, r->line};
    }
    qsort(p, (size_t)*n, sizeof *p, bl_cmp_key);
    for (int64_t i = 1; i < *n; i++) {
        const bl_pair *a = &p[i - 1], *b = &p[i];
        if (strcmp(a->key, b->key) || (a->value && b->value && !strcmp(a->value, b->value))) continue;
        slim_set_error("%s: lines %lld and %lld have the same key and different answers", path, (long long)a->line,
                       (long long)b->line);
        free(p);
        return NULL;
    }
    return p;
}

/* The label index of name in d's label names, or -1. */
static int bl_label(const slim_dataset *d, const char *name) {
    for (int k = 0; k < d->n_labels; k++)
        if (!strcmp(d->label_names[k], name)) return k;
    return -1;
}

/* The key of each scored example (idx [n] into test) from the test file's rows read with key_column, by
 * source line, into keys [n] (pointers into rd). Returns 0 or -1 naming the example. */
static int bl_test_keys(const data_reader *rd, const slim_dataset *test, const int64_t *idx, int64_t n,
                        const char **keys) {
    int64_t j = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t line = test->source_line[idx[i]];
        if (j >= rd->n_rows || rd->rows[j].line > line) j = 0; /* idx is not always in line order */
        while (j < rd->n_rows && rd->rows[j].line < line) j++;
        if (j >= rd->n_rows || rd->rows[j].line != line || !rd->rows[j].text)
            return slim_set_error("%s: no readable row at line %lld (example %lld of the test split): was the file "
                                  "changed after data prepare?", rd->path, (long long)line, (long long)idx[i]);
        keys[i] = rd->rows[j].text;
    }
    return 0;
}

/* Scores one baseline spec (its JSON object e, entry i of eval.baselines) into b. */
static int bl_one(eval_baseline *b, const cJSON *e, int i, const slim_config *cfg, const slim_dataset *test,
                  const int64_t *idx, int64_t n) {
    const char *name = cJSON_GetObjectItemCaseSensitive(e, "name")->valuestring;
    const char *file = cJSON_GetObjectItemCaseSensitive(e, "file")->valuestring;
    const cJSON *jk = cJSON_GetObjectItemCaseSensitive(e, "key"), *jc = cJSON_GetObjectItemCaseSensitive(e, "column");
    const char *key = jk ? jk->valuestring : "text", *column = jc ? jc->valuestring : "prediction";
    if (strcmp(key, "text") && strcmp(key, "id"))
        return slim_set_error("%s: eval.baselines[%d].key: \"%s\" is not text or id", cfg->path, i, key);
    snprintf(b->name, sizeof b->name, "%s", name);
    const char *key_column = !strcmp(key, "id") ? "id" : cfg->text_column;
    data_reader tr, br;
    memset(&tr, 0, sizeof tr);
    memset(&br, 0, sizeof br);
    const char **keys = slim_malloc((size_t)(n + 1) * sizeof(char *));
    bl_pair *pairs = NULL;
    int64_t n_pairs = 0;
    int rc = bl_open(&tr, test->source_file, cfg, key_column, cfg->label_column);
    if (rc == 0) rc = bl_test_keys(&tr, test, idx, n, keys);
    if (rc == 0) rc = bl_open(&br, file, cfg, key_column, column);
    if (rc == 0 && !(pairs = bl_pairs(&br, file, &n_pairs, &b->n_bad_rows))) rc = -1;
    b->pred = slim_malloc((size_t)(n + 1) * sizeof(int32_t));
    for (int64_t j = 0; rc == 0 && j < n; j++) {
        bl_pair want = {.key = keys[j]};
        const bl_pair *hit = bsearch(&want, pairs, (size_t)n_pairs, sizeof want, bl_cmp_key);
        b->pred[j] = hit && hit->value ? bl_label(test, hit->value) : -1;
        b->n_missing += !hit || !hit->value;
        b->n_invalid += hit && hit->value && b->pred[j] < 0;
    }
    free(pairs);
    free(keys);
    reader_free(&tr);
    reader_free(&br);
    return rc;
}

int eval_read_baselines(eval_baseline *out, int cap, const slim_config *cfg, const slim_dataset *test,
                        const int64_t *idx, int64_t n) {
    if (!cfg->baselines) return 0;
    cJSON *list = cJSON_Parse(cfg->baselines); /* validated by the config's reader */
    int count = 0, rc = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, list) {
        if (count >= cap) { rc = slim_set_error("%s: eval.baselines: more than %d", cfg->path, cap); break; }
        memset(&out[count], 0, sizeof out[count]);
        rc = bl_one(&out[count], e, count, cfg, test, idx, n);
        count++;
        if (rc != 0) break;
        fprintf(stderr, "eval: baseline %s (%s): %lld of %lld examples answered, %lld missing, %lld outside the labels, "
                "%lld bad rows in the file\n", out[count - 1].name, cJSON_GetObjectItemCaseSensitive(e, "file")->valuestring,
                (long long)(n - out[count - 1].n_missing - out[count - 1].n_invalid), (long long)n,
                (long long)out[count - 1].n_missing, (long long)out[count - 1].n_invalid,
                (long long)out[count - 1].n_bad_rows);
    }
    cJSON_Delete(list);
    if (rc != 0) {
        for (int i = 0; i < count; i++) free(out[i].pred);
        return -1;
    }
    return count;
}
