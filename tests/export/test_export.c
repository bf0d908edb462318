/* test_export.c — the merged GGUF of `slimtune export` on stories260K with a random adapter:
 * logits of the merged model (no adapter) equal base + adapter, merged weights equal W + scale B A
 * computed here, every other tensor and every metadata key is byte-identical to the base, and
 * `slimtune export` (export_main) writes both files.
 *
 * When SLIM_EXPORT_CHECK_DIR is set, also leaves there, for tests/e2e/test_llamacpp_export.sh:
 * adapter.gguf, merged-f32.gguf and ours.json ({"tokens": [...], "logits": [...]}: our base + adapter
 * next-token logits after the last of the tokens). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "../../export/export.h"
#include "format/gguf.h"
#include "model/model.h"
#include "testutil.h"

static const int32_t prompt[] = {1, 403, 407, 261, 378}; /* "Once upon a time" with BOS */
#define T_PROMPT 5

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Whole-value equality of two metadata entries (key, type, value bytes). */
static int kv_equal(const gguf_kv *a, const gguf_kv *b) {
    if (strcmp(a->key, b->key) || a->type != b->type) return 0;
    if (a->type == GGUF_TYPE_STRING) return a->str_len == b->str_len && !memcmp(a->str, b->str, a->str_len);
    if (a->type != GGUF_TYPE_ARRAY) return a->u64 == b->u64 && a->i64 == b->i64 && memcmp(&a->f64, &b->f64, 8) == 0;
    if (a->arr_type != b->arr_type || a->n != b->n) return 0;
    if (a->arr_type == GGUF_TYPE_STRING) {
        for (uint64_t i = 0; i < a->n; i++)
            if (a->str_lens[i] != b->str_lens[i] || memcmp(a->strs[i], b->strs[i], a->str_lens[i])) return 0;
        return 1;
    }
    static const size_t sz[GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return a->arr_type < GGUF_TYPE_COUNT && memcmp(a->arr, b->arr, sz[a->arr_type] * a->n) == 0;
}

/* Logits of every prompt position, [T_PROMPT, vocab]. */
static float *logits_of(const model *m, const lora_adapter *lora) {
    acts s;
    acts_init(&s, &m->cfg, 1, T_PROMPT, lora ? lora->r : 0);
    float *lg = slim_malloc((size_t)T_PROMPT * m->cfg.vocab_size * sizeof(float));
    model_forward(m, lora, &s, prompt, NULL, 1, T_PROMPT, NULL, lg);
    acts_free(&s);
    return lg;
}

/* A delta that overflows in the last layer: the merge fails while streaming, after earlier tensors were
 * written, naming the tensor; neither the file nor its temporary is left. */
static void test_overflow(const model *base, const int *targets, const char *model_path, const char *dir) {
    lora_adapter huge;
    lora_init(&huge, &base->cfg, 4, 8.0f, targets, 1);
    int last = base->cfg.n_layers - 1, in, out;
    model_target_shape(&base->cfg, LORA_DOWN, &in, &out);
    for (int i = 0; i < in * 4; i++) huge.A[last * LORA_N_TARGETS + LORA_DOWN][i] = 1e30f;
    for (int i = 0; i < out * 4; i++) huge.B[last * LORA_N_TARGETS + LORA_DOWN][i] = 1e30f;
    char huge_path[4300], out_huge[4300], tmp[4400], want[64];
    snprintf(huge_path, sizeof huge_path, "%s/huge-adapter.gguf", dir);
    snprintf(out_huge, sizeof out_huge, "%s/never2.gguf", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", out_huge, (int)getpid());
    snprintf(want, sizeof want, "blk.%d.ffn_down.weight has a non-finite value", last);
    CHECK(lora_save(&huge, base, huge_path) == 0, "%s", slim_last_error());
    CHECK(export_merge(model_path, huge_path, out_huge, "f32", QUANT_KEEP) == -1 && strstr(slim_last_error(), want) &&
              !file_exists(out_huge) && !file_exists(tmp),
          "overflowing delta: %s", slim_last_error());
    lora_free(&huge);
    unlink(huge_path);
}

/* Max |a - b| over n floats. */
static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* export.merge_base: over a base that training stored as nf4 or q8_0, the "trained" f32 merge gives the
 * logits of that base + the adapter (what eval measured) up to float rounding; the "original" merge
 * (onto the file's own F32 weights) differs by the quantization error. */
static void test_merge_base(const char *model_path, const lora_adapter *lora, const char *adapter, const char *dir) {
    const int quants[2] = {QUANT_NF4, QUANT_Q8_0};
    char out[4300];
    snprintf(out, sizeof out, "%s/merged-base.gguf", dir);
    for (int i = 0; i < 2; i++) {
        model tb;
        if (model_load_quant(&tb, model_path, quants[i]) != 0) { CHECK(0, "%s", slim_last_error()); return; }
        const size_t n = (size_t)T_PROMPT * tb.cfg.vocab_size;
        float *want = logits_of(&tb, lora);
        double d[2] = {-1, -1}; /* trained, original */
        for (int original = 0; original < 2; original++) {
            model mm;
            if (export_merge(model_path, adapter, out, "f32", original ? QUANT_KEEP : quants[i]) != 0 ||
                model_load(&mm, out) != 0) {
                CHECK(0, "merge onto the %s weights: %s", original ? "original" : "trained", slim_last_error());
                continue;
            }
            float *got = logits_of(&mm, NULL);
            d[original] = max_abs_diff(got, want, n);
            free(got);
            model_free(&mm);
        }
        printf("merge_base over a %s training base: max |merged - (trained base + adapter)| = %.3g trained, %.3g "
               "original\n", base_quant_names[quants[i]], d[0], d[1]);
        CHECK(d[0] >= 0 && d[0] < 1e-4 && d[1] > 100 * d[0] && d[1] > 1e-3,
              "%s: trained merge off by %g, original by %g", base_quant_names[quants[i]], d[0], d[1]);
        free(want);
        model_free(&tb);
    }
    unlink(out);
}

/* An adapter on all targets but k (to check untouched projections too; with all_targets on k as well),
 * r 4, alpha 8, B random nonzero. */
static void random_adapter(lora_adapter *lora, const model *base, int all_targets) {
    int targets[LORA_N_TARGETS] = {1, all_targets, 1, 1, 1, 1, 1};
    lora_init(lora, &base->cfg, 4, 8.0f, targets, 7);
    slim_rng rng;
    slim_rng_seed(&rng, 1234);
    for (int l = 0; l < lora->n_layers; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            if (!lora->enabled[t]) continue;
            int in, out;
            model_target_shape(&base->cfg, t, &in, &out);
            float *B = lora->B[l * LORA_N_TARGETS + t];
            for (int i = 0; i < out * lora->r; i++) B[i] = 0.05f * slim_rng_normal(&rng);
        }
}

/* Tool modes for tests/e2e/test_llamacpp_export.sh (any model):
 *   test_export adapter MODEL OUT.gguf [all]   writes random_adapter for MODEL (all: k adapted too);
 *   test_export logits MODEL OUT.json    writes {"tokens": [...], "logits": [...]}: the next-token logits
 *                                        after the prompt of MODEL loaded in its own tensor types.
 * Returns the exit status. */
static int tool_main(int argc, char **argv) {
    model m;
    int logits = !strcmp(argv[1], "logits");
    if (model_load_quant(&m, argv[2], logits ? QUANT_KEEP : QUANT_F32) != 0) {
        fprintf(stderr, "test_export %s: %s\n", argv[1], slim_last_error());
        return 1;
    }
    int rc = 0;
    if (logits) {
        float *lg = logits_of(&m, NULL);
        FILE *f = fopen(argv[3], "w");
        rc = !f;
        if (f) {
            fprintf(f, "{\"tokens\": [1, 403, 407, 261, 378], \"logits\": [");
            for (int i = 0; i < m.cfg.vocab_size; i++)
                fprintf(f, "%s%.9g", i ? ", " : "", lg[(size_t)(T_PROMPT - 1) * m.cfg.vocab_size + i]);
            fprintf(f, "]}\n");
            rc = fclose(f) != 0;
        }
        free(lg);
    } else {
        lora_adapter a;
        random_adapter(&a, &m, argc == 5 && !strcmp(argv[4], "all"));
        rc = lora_save(&a, &m, argv[3]) != 0;
        lora_free(&a);
    }
    if (rc) fprintf(stderr, "test_export %s: cannot write %s: %s\n", argv[1], argv[3], slim_last_error());
    model_free(&m);
    return rc;
}

int main(int argc, char **argv) {
    if ((argc == 4 || argc == 5) && (!strcmp(argv[1], "adapter") || !strcmp(argv[1], "logits")))
        return tool_main(argc, argv);
    char model_path[4096], dir[4096] = "/tmp/slim-test-export-XXXXXX", adapter[4200], merged[4200];
    snprintf(model_path, sizeof model_path, "%s/models/stories260K.gguf", slim_shared_dir());
    if (!file_exists(model_path)) {
        fprintf(stderr, "FAIL: fixture %s is missing (set SLIM_SHARED to the shared/ directory)\n", model_path);
        return 1;
    }
    const char *check_dir = getenv("SLIM_EXPORT_CHECK_DIR");
    if (check_dir && *check_dir) {
        CHECK(slim_mkdir_p(check_dir) == 0, "%s", slim_last_error());
        snprintf(dir, sizeof dir, "%s", check_dir);
    } else if (!mkdtemp(dir)) {
        fprintf(stderr, "FAIL: mkdtemp\n");
        return 1;
    }
    snprintf(adapter, sizeof adapter, "%s/adapter.gguf", dir);
    snprintf(merged, sizeof merged, "%s/merged-f32.gguf", dir);

    model base;
    if (model_load(&base, model_path) != 0) {
        fprintf(stderr, "FAIL: model_load: %s\n", slim_last_error());
        return 1;
    }
    const int V = base.cfg.vocab_size;

    lora_adapter lora;
    random_adapter(&lora, &base, 0);
    const int *targets = lora.enabled;
    CHECK(lora_save(&lora, &base, adapter) == 0, "lora_save: %s", slim_last_error());
    CHECK(export_merge(model_path, adapter, merged, "f32", QUANT_KEEP) == 0, "export_merge: %s", slim_last_error());

    /* logits: merged (no adapter) == base + adapter, and != base alone */
    model mm;
    int merged_ok = model_load(&mm, merged) == 0;
    CHECK(merged_ok, "model_load(merged): %s", slim_last_error());
    float *lg_base = logits_of(&base, NULL), *lg_lora = logits_of(&base, &lora);
    if (merged_ok) {
        float *lg_merged = logits_of(&mm, NULL);
        double max_diff = 0.0, max_delta = 0.0;
        for (size_t i = 0; i < (size_t)T_PROMPT * V; i++) {
            double dd = fabs((double)lg_merged[i] - lg_lora[i]), de = fabs((double)lg_lora[i] - lg_base[i]);
            if (dd > max_diff) max_diff = dd;
            if (de > max_delta) max_delta = de;
        }
        CHECK(max_diff < 1e-4, "merged logits differ from base + adapter by %g", max_diff);
        CHECK(max_delta > 1e-2, "the adapter barely changes the logits (%g): the test would prove nothing", max_delta);
        printf("export: max |merged - (base+adapter)| = %.3g, max |adapter effect| = %.3g\n", max_diff, max_delta);
        free(lg_merged);
        model_free(&mm);
    }

    /* tensors and metadata, file against file */
    gguf_file gb, gm;
    int open_b = gguf_open(&gb, model_path) == 0, open_m = open_b && gguf_open(&gm, merged) == 0;
    CHECK(open_b && open_m, "gguf_open: %s", slim_last_error());
    if (open_b && open_m) {
        CHECK(gm.n_tensors == gb.n_tensors, "tensor count %llu vs %llu", (unsigned long long)gm.n_tensors,
              (unsigned long long)gb.n_tensors);
        int n_adapted = 0, n_same = 0, bad_same = 0;
        for (uint64_t i = 0; i < gb.n_tensors && i < gm.n_tensors; i++) {
            const gguf_tensor *tb = &gb.tensors[i], *tm = &gm.tensors[i];
            CHECK(strcmp(tb->name, tm->name) == 0, "tensor %llu: %s vs %s (order)", (unsigned long long)i, tb->name,
                  tm->name);
            int l = -1, tg = -1;
            for (int ll = 0; ll < base.cfg.n_layers && tg < 0; ll++)
                for (int t = 0; t < LORA_N_TARGETS; t++) {
                    char nm[128];
                    snprintf(nm, sizeof nm, "blk.%d.%s.weight", ll, lora_target_gguf_names[t]);
                    if (!strcmp(nm, tb->name)) { l = ll; tg = t; break; }
                }
            if (tg >= 0 && targets[tg]) {
                /* W' = W + scale * B A, in double here */
                int in, out;
                model_target_shape(&base.cfg, tg, &in, &out);
                CHECK(tm->type == GGML_TYPE_F32 && tm->ne[0] == in && tm->ne[1] == out, "%s: type %u shape %lld x %lld",
                      tm->name, tm->type, (long long)tm->ne[0], (long long)tm->ne[1]);
                if (tm->type != GGML_TYPE_F32 || tm->ne[0] != in || tm->ne[1] != out || tb->type != GGML_TYPE_F32) continue;
                const float *W = tb->data, *Wm = tm->data, *A = lora.A[l * LORA_N_TARGETS + tg],
                            *B = lora.B[l * LORA_N_TARGETS + tg];
                double worst = 0.0, delta = 0.0;
                for (int o = 0; o < out; o++)
                    for (int c = 0; c < in; c++) {
                        double acc = 0.0;
                        for (int k = 0; k < lora.r; k++) acc += (double)B[o * lora.r + k] * A[k * in + c];
                        double want = W[(size_t)o * in + c] + (double)lora.scale * acc;
                        double e = fabs(want - Wm[(size_t)o * in + c]);
                        if (e > worst) worst = e;
                        delta += fabs(acc);
                    }
                CHECK(worst < 1e-6, "%s: merged weight off by %g", tm->name, worst);
                CHECK(delta > 0.0, "%s: zero delta", tm->name);
                n_adapted++;
            } else {
                int same = tb->type == tm->type && tb->n_dims == tm->n_dims && tb->nbytes == tm->nbytes &&
                           !memcmp(tb->ne, tm->ne, sizeof tb->ne) && !memcmp(tb->data, tm->data, tb->nbytes);
                if (!same) { bad_same++; fprintf(stderr, "FAIL: %s differs from the base\n", tb->name); }
                n_same++;
            }
        }
        int n_targets_on = 0;
        for (int t = 0; t < LORA_N_TARGETS; t++) n_targets_on += targets[t];
        CHECK(n_adapted == base.cfg.n_layers * n_targets_on, "%d adapted tensors, expected %d", n_adapted,
              base.cfg.n_layers * n_targets_on);
        CHECK(bad_same == 0 && n_same > 0, "%d of %d non-adapted tensors differ from the base", bad_same, n_same);

        /* metadata: every base key, same order and bytes, except general.name (suffixed) */
        CHECK(gm.n_kv >= gb.n_kv + 3, "merged has %llu keys, base %llu", (unsigned long long)gm.n_kv,
              (unsigned long long)gb.n_kv);
        int bad_kv = 0;
        for (uint64_t i = 0; i < gb.n_kv && i < gm.n_kv; i++) {
            const gguf_kv *kb = &gb.kv[i], *km = &gm.kv[i];
            if (!strcmp(kb->key, "general.name")) {
                CHECK(!strcmp(km->key, "general.name") && km->type == GGUF_TYPE_STRING &&
                          strncmp(km->str, kb->str, kb->str_len) == 0 && km->str_len > kb->str_len,
                      "general.name '%s' is not the base name '%s' with a suffix", km->str, kb->str);
            } else if (!kv_equal(kb, km)) {
                bad_kv++;
                fprintf(stderr, "FAIL: key %llu (%s) differs from the base's (%s)\n", (unsigned long long)i, km->key,
                        kb->key);
            }
        }
        CHECK(bad_kv == 0, "%d metadata entries differ from the base", bad_kv);
        uint32_t r = 0;
        float alpha = 0;
        CHECK(gguf_get_u32(&gm, "slimtune.lora.r", &r) == 0 && r == (uint32_t)lora.r, "slimtune.lora.r = %u", r);
        CHECK(gguf_get_f32(&gm, "slimtune.lora.alpha", &alpha) == 0 && alpha == lora.alpha, "slimtune.lora.alpha = %g",
              alpha);
        const char *tg = gguf_get_str(&gm, "slimtune.lora.targets");
        CHECK(tg && !strcmp(tg, "q,v,o,gate,up,down"), "slimtune.lora.targets = %s", tg ? tg : "(none)");
        gguf_close(&gm);
    }
    if (open_b) gguf_close(&gb);

    /* errors: a missing adapter, an adapter for another shape */
    CHECK(export_merge(model_path, "/nonexistent/adapter.gguf", merged, "f32", QUANT_KEEP) == -1 &&
              strstr(slim_last_error(), "/nonexistent/adapter.gguf"),
          "missing adapter: %s", slim_last_error());
    {
        model_config other = base.cfg;
        other.dim = 32; /* q/k/v/gate/up A are [r, 32]: does not fit the model */
        lora_adapter bad;
        lora_init(&bad, &other, 4, 8.0f, targets, 1);
        char bad_path[4300];
        snprintf(bad_path, sizeof bad_path, "%s/bad-adapter.gguf", dir);
        model fake = base;
        fake.cfg = other;
        CHECK(lora_save(&bad, &fake, bad_path) == 0, "%s", slim_last_error());
        char out_bad[4300];
        snprintf(out_bad, sizeof out_bad, "%s/never.gguf", dir);
        CHECK(export_merge(model_path, bad_path, out_bad, "f32", QUANT_KEEP) == -1 && !file_exists(out_bad),
              "mis-shaped adapter accepted (%s)", slim_last_error());
        lora_free(&bad);
        unlink(bad_path);
    }
    test_overflow(&base, targets, model_path, dir);
    test_merge_base(model_path, &lora, adapter, dir);

    /* the command: export_main with a config (export.formats f32 and lora) writes both files */
    {
        char cfg_path[4300], out_dir[4300], merged2[4400], lora2[4400];
        snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
        snprintf(out_dir, sizeof out_dir, "%s/cli", dir);
        snprintf(merged2, sizeof merged2, "%s/export/merged-f32.gguf", out_dir);
        snprintf(lora2, sizeof lora2, "%s/export/adapter-lora.gguf", out_dir);
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "model", model_path);
        cJSON_AddStringToObject(c, "out_dir", out_dir);
        const char *formats[] = {"f32", "lora"};
        cJSON *ex = cJSON_AddObjectToObject(c, "export");
        cJSON_AddItemToObject(ex, "formats", cJSON_CreateStringArray(formats, 2));
        char *text = cJSON_Print(c);
        FILE *f = fopen(cfg_path, "w");
        CHECK(f != NULL, "cannot write %s", cfg_path);
        if (f) { fputs(text, f); fclose(f); }
        free(text);
        cJSON_Delete(c);
        char *argv[] = {"export", "--config", cfg_path, "--adapter", adapter, NULL};
        CHECK(export_main(5, argv) == 0, "export_main: %s", slim_last_error());
        CHECK(file_exists(merged2) && file_exists(lora2), "export_main did not write %s and %s", merged2, lora2);
        char *data1, *data2;
        size_t n1, n2;
        if (slim_read_file(merged, &data1, &n1) == 0) {
            if (slim_read_file(merged2, &data2, &n2) == 0) {
                CHECK(n1 == n2 && !memcmp(data1, data2, n1), "export_main's merged file differs from export_merge's");
                free(data2);
            } else CHECK(0, "%s", slim_last_error());
            free(data1);
        } else CHECK(0, "%s", slim_last_error());
        lora_adapter back;
        if (lora_load(&back, &base, lora2) == 0) {
            CHECK(back.r == lora.r && back.alpha == lora.alpha && back.n_params == lora.n_params &&
                      !memcmp(back.params, lora.params, lora.n_params * sizeof(float)),
                  "adapter-lora.gguf differs from the adapter");
            for (int t = 0; t < LORA_N_TARGETS; t++) CHECK(back.enabled[t] == lora.enabled[t], "target %d", t);
            lora_free(&back);
        } else CHECK(0, "lora_load(adapter-lora.gguf): %s", slim_last_error());
        char *argv2[] = {"export", "--config", cfg_path, "--adapter", "/nonexistent.gguf", NULL};
        CHECK(export_main(5, argv2) == -1, "export_main with a missing adapter must fail");
        char *argv3[] = {"export", "--bogus", NULL};
        CHECK(export_main(2, argv3) == -1, "export_main with a bad option must fail");
        unlink(merged2);
        unlink(lora2);
        char sub[4400];
        snprintf(sub, sizeof sub, "%s/export", out_dir);
        rmdir(sub);
        rmdir(out_dir);
        unlink(cfg_path);
    }

    /* for the llama.cpp check: our next-token logits after the last prompt token (base + adapter) */
    if (check_dir && *check_dir) {
        cJSON *o = cJSON_CreateObject();
        cJSON *tk = cJSON_AddArrayToObject(o, "tokens");
        for (int i = 0; i < T_PROMPT; i++) cJSON_AddItemToArray(tk, cJSON_CreateNumber(prompt[i]));
        cJSON_AddNumberToObject(o, "n_vocab", V);
        cJSON *lg = cJSON_AddArrayToObject(o, "logits");
        for (int v = 0; v < V; v++)
            cJSON_AddItemToArray(lg, cJSON_CreateNumber(lg_lora[(size_t)(T_PROMPT - 1) * V + v]));
        char *text = cJSON_PrintUnformatted(o);
        char path[4300];
        snprintf(path, sizeof path, "%s/ours.json", dir);
        FILE *f = fopen(path, "w");
        CHECK(f && fputs(text, f) >= 0, "cannot write %s", path);
        if (f) fclose(f);
        free(text);
        cJSON_Delete(o);
    } else {
        unlink(adapter);
        unlink(merged);
        rmdir(dir);
    }
    free(lg_base);
    free(lg_lora);
    lora_free(&lora);
    model_free(&base);
    return tu_finish("export");
}
