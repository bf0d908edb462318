/* test_golden.c — the llama and qwen2 models with LoRA, in every base storage type, against golden
 * values from an independent PyTorch implementation (tests/golden/reference.py; README.md there).
 *
 * 1. Regenerates the tiny models: scripts/make-tiny-model $BUILD/golden/models, and the q4_0/q4_k
 *    files with $BUILD/slimtune quantize; every file's sha256 must equal the one recorded in
 *    fixtures/index.json (else the fixtures were made from other weights: loud failure).
 * 2. Per (arch, type) in {llama, qwen2} x {f32, f16, bf16, q8_0, q4_0, q4_k, nf4}: model_load_quant
 *    (f32/f16/bf16/q8_0/nf4 from tiny-<arch>.gguf with that quant; q4_0/q4_k from the quantized GGUF
 *    with "keep"), lora_load of fixtures/adapter-<arch>.gguf, model_forward with all_logits and
 *    model_backward(loss_scale 1). Compared: the summed loss, the logits of 256 fixed vocabulary ids
 *    and the logsumexp at every target position, and the gradient of every LoRA A and B.
 *    Relative error of a tensor = max|ours - ref| / max|ref|; each must be <= GOLDEN_TOL.
 * 3. Per arch, the Hugging Face directory loaded as f32 must give bit-identical logits and loss to
 *    the GGUF (and so passes the same comparison). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "model/model.h"
#include "testutil.h"

#define GOLDEN_TOL 1e-4
#define FIXDIR "tests/golden/fixtures"

static const char *const ARCHS[] = {"llama", "qwen2"};
static const char *const TYPES[] = {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "nf4"};
#define N_ARCHS 2
#define N_TYPES 7

static const char *build_dir;
static char models_dir[512];
static cJSON *index_json;

/* sha256 of a file as 64 hex digits, through coreutils' sha256sum. Returns 0 or -1. */
static int sha256_file(const char *path, char out[65]) {
    char cmd[1200];
    if (slim_format_path(cmd, sizeof cmd, "sha256sum '%s' 2>/dev/null", path)) return -1;
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    int ok = fscanf(p, "%64s", out) == 1;
    int rc = pclose(p);
    return ok && rc == 0 && strlen(out) == 64 ? 0 : -1;
}

/* Checks path's sha256 against the fixture's; returns 1 when they match. */
static int check_sha(const char *path, const char *want, const char *what) {
    char got[65] = "";
    if (sha256_file(path, got) != 0) {
        CHECK(0, "%s: cannot read %s", what, path);
        return 0;
    }
    int ok = want && strcmp(got, want) == 0;
    CHECK(ok, "%s %s: sha256 %s but the fixtures were made from %s — the generator or numpy changed; "
              "regenerate with `make golden` and review the diff",
          what, path, got, want ? want : "(none recorded)");
    return ok;
}

static double max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)x[i]));
    return m;
}

/* max|ours - ref| / max|ref| (max|ours - ref| when ref is all zero). */
static double rel_err(const float *ours, const float *ref, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)ours[i] - (double)ref[i]));
    double s = max_abs(ref, n);
    return s > 0 ? d / s : d;
}

static const cJSON *jget(const cJSON *o, const char *key) { return cJSON_GetObjectItemCaseSensitive(o, key); }
static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *x = jget(o, key);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}
static double jnum(const cJSON *o, const char *key, double dflt) {
    const cJSON *x = jget(o, key);
    return cJSON_IsNumber(x) ? x->valuedouble : dflt;
}

/* Reads a JSON int array of exactly n into out; returns 0 or -1. */
static int jints(const cJSON *arr, int32_t *out, int n) {
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != n) return -1;
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, arr) out[i++] = (int32_t)x->valuedouble;
    return 0;
}

static const cJSON *find_case(const char *arch, const char *type) {
    const cJSON *c;
    cJSON_ArrayForEach(c, jget(index_json, "cases")) {
        const char *a = jstr(c, "arch"), *t = jstr(c, "type");
        if (a && t && strcmp(a, arch) == 0 && strcmp(t, type) == 0) return c;
    }
    return NULL;
}

/* Runs one case: the model at path loaded with quant, compared with the fixture case c. When
 * logits_out is not NULL it receives a fresh copy of all logits [B*T, vocab] and *loss_out the loss. */
static void run_case(const char *label, const char *arch, const cJSON *c, const char *path, const char *quant,
                     float **logits_out, double *loss_out) {
    const cJSON *batch = jget(jget(index_json, "batch"), arch);
    const cJSON *minfo = jget(jget(index_json, "models"), arch);
    const cJSON *lcfg = jget(index_json, "lora");
    int B = (int)jnum(index_json, "B", 0), T = (int)jnum(index_json, "T", 0);
    if (!batch || !minfo || !lcfg || B <= 0 || T <= 0) {
        CHECK(0, "%s: index.json lacks batch/models/lora/B/T for %s", label, arch);
        return;
    }
    int qi = base_quant_index(quant);
    CHECK(qi >= 0, "%s: unknown quant '%s'", label, quant);
    if (qi < 0) return;
    model m;
    if (model_load_quant(&m, path, qi) != 0) {
        CHECK(0, "%s: model_load_quant(%s, %s): %s", label, path, quant, slim_last_error());
        return;
    }
    int V = m.cfg.vocab_size;
    CHECK(V == (int)jnum(minfo, "vocab", -1), "%s: vocab %d, fixture %g", label, V, jnum(minfo, "vocab", -1));

    char apath[512];
    lora_adapter lora;
    memset(&lora, 0, sizeof lora);
    const char *aname = jstr(batch, "adapter");
    if (!aname || slim_format_path(apath, sizeof apath, "%s/%s", FIXDIR, aname) || lora_load(&lora, &m, apath) != 0) {
        CHECK(0, "%s: lora_load(%s): %s", label, aname ? apath : "(no adapter in index.json)", slim_last_error());
        model_free(&m);
        return;
    }
    CHECK(lora.r == (int)jnum(lcfg, "r", -1) && lora.alpha == (float)jnum(lcfg, "alpha", -1),
          "%s: adapter r %d alpha %g, fixture r %g alpha %g", label, lora.r, lora.alpha, jnum(lcfg, "r", -1),
          jnum(lcfg, "alpha", -1));
    {
        /* lora_save writes what lora_load reads back, for this architecture too */
        char spath[600], name[128];
        lora_adapter back;
        snprintf(name, sizeof name, "%s", label);
        for (char *c = name; *c; c++)
            if (*c == '/' || *c == ' ' || *c == '(' || *c == ')') *c = '-';
        int ok = slim_format_path(spath, sizeof spath, "%s/golden/resaved-%s.gguf",
                                  getenv("BUILD") ? getenv("BUILD") : "build", name) == 0;
        ok = ok && lora_save(&lora, &m, spath) == 0 && lora_load(&back, &m, spath) == 0;
        CHECK(ok, "%s: lora_save + lora_load round trip: %s", label, slim_last_error());
        if (ok) {
            CHECK(back.n_params == lora.n_params && memcmp(back.params, lora.params, sizeof(float) * lora.n_params) == 0,
                  "%s: adapter differs after lora_save + lora_load", label);
            lora_free(&back);
        }
        unlink(spath);
    }

    int32_t *tokens = slim_malloc(sizeof(int32_t) * B * T), *targets = slim_malloc(sizeof(int32_t) * B * T);
    int32_t subset[256];
    int n_sub = cJSON_GetArraySize(jget(batch, "vocab_subset"));
    int bad = jints(jget(batch, "tokens"), tokens, B * T) || jints(jget(batch, "targets"), targets, B * T) ||
              n_sub != 256 || jints(jget(batch, "vocab_subset"), subset, 256);
    CHECK(!bad, "%s: index.json batch for %s is malformed", label, arch);

    char bpath[512];
    char *bin = NULL;
    size_t bin_size = 0;
    const char *bname = jstr(c, "bin");
    size_t n_floats = (size_t)jnum(c, "n_floats", 0);
    if (!bad && (!bname || slim_format_path(bpath, sizeof bpath, "%s/%s", FIXDIR, bname) ||
                 slim_read_file(bpath, &bin, &bin_size) != 0)) {
        CHECK(0, "%s: fixture data %s: %s", label, bname ? bpath : "(no bin in index.json)", slim_last_error());
        bad = 1;
    }
    if (!bad && bin_size != n_floats * sizeof(float)) {
        CHECK(0, "%s: %s has %zu bytes, index.json says %zu floats", label, bpath, bin_size, n_floats);
        bad = 1;
    }
    if (bad) {
        free(bin);
        free(tokens);
        free(targets);
        lora_free(&lora);
        model_free(&m);
        return;
    }
    const float *ref = (const float *)bin;

    acts s;
    acts_init(&s, &m.cfg, B, T, lora.r);
    float *logits = slim_malloc(sizeof(float) * (size_t)B * T * V);
    double loss = model_forward(&m, &lora, &s, tokens, targets, B, T, NULL, logits);
    float *dlora = slim_calloc(lora.n_params, sizeof(float));
    model_backward(&m, &lora, &s, dlora, 1.0f);

    int n_sel = 0;
    int32_t *sel = slim_malloc(sizeof(int32_t) * B * T);
    for (int i = 0; i < B * T; i++)
        if (targets[i] >= 0) sel[n_sel++] = i;
    CHECK(n_sel == (int)jnum(c, "n_targets", -1) && s.n_sel == n_sel, "%s: %d targets (forward %d), fixture %g",
          label, n_sel, s.n_sel, jnum(c, "n_targets", -1));

    double ref_loss = jnum(c, "loss", NAN);
    double e_loss = fabs(loss - ref_loss) / fabs(ref_loss);
    CHECK(e_loss <= GOLDEN_TOL, "%s: loss %.9g, reference %.9g (rel %.3g)", label, loss, ref_loss, e_loss);

    double e_logits = 0, e_lse = 0, e_grad = 0;
    char worst[96] = "-";
    int n_grad = 0;
    float *tmp = slim_malloc(sizeof(float) * (size_t)n_sel * 256 + sizeof(float) * lora.n_params);
    const cJSON *t;
    cJSON_ArrayForEach(t, jget(c, "tensors")) {
        const char *name = jstr(t, "name");
        size_t off = (size_t)jnum(t, "offset", -1), count = 1;
        const cJSON *d;
        cJSON_ArrayForEach(d, jget(t, "shape")) count *= (size_t)d->valuedouble;
        if (!name || off + count > n_floats) {
            CHECK(0, "%s: index.json tensor entry %s out of range", label, name ? name : "?");
            continue;
        }
        if (strcmp(name, "logits_subset") == 0) {
            CHECK(count == (size_t)n_sel * 256, "%s: logits_subset has %zu values", label, count);
            if (count != (size_t)n_sel * 256) continue;
            for (int k = 0; k < n_sel; k++)
                for (int j = 0; j < 256; j++) tmp[k * 256 + j] = logits[(size_t)sel[k] * V + subset[j]];
            e_logits = rel_err(tmp, ref + off, count);
            CHECK(e_logits <= GOLDEN_TOL, "%s: logits of the vocabulary subset: rel %.3g", label, e_logits);
        } else if (strcmp(name, "logsumexp") == 0) {
            CHECK(count == (size_t)n_sel, "%s: logsumexp has %zu values", label, count);
            if (count != (size_t)n_sel) continue;
            for (int k = 0; k < n_sel; k++) {
                const float *row = logits + (size_t)sel[k] * V;
                double mx = row[0], sum = 0;
                for (int v = 1; v < V; v++) mx = fmax(mx, row[v]);
                for (int v = 0; v < V; v++) sum += exp((double)row[v] - mx);
                tmp[k] = (float)(mx + log(sum));
            }
            e_lse = rel_err(tmp, ref + off, count);
            CHECK(e_lse <= GOLDEN_TOL, "%s: logsumexp: rel %.3g", label, e_lse);
        } else {
            int layer = -1;
            char tname[32], ab = 0;
            int tgt = -1;
            if (sscanf(name, "blk.%d.%31[a-z_].weight.lora_%c", &layer, tname, &ab) == 3)
                for (int k = 0; k < LORA_N_TARGETS; k++)
                    if (strcmp(tname, lora_target_gguf_names[k]) == 0) tgt = k;
            if (tgt < 0 || layer < 0 || layer >= m.cfg.n_layers || (ab != 'a' && ab != 'b') || !lora.enabled[tgt]) {
                CHECK(0, "%s: fixture tensor %s names no enabled LoRA matrix", label, name);
                continue;
            }
            int in, out;
            model_target_shape(&m.cfg, tgt, &in, &out);
            size_t want = (size_t)lora.r * (ab == 'a' ? in : out);
            CHECK(count == want, "%s: %s has %zu values, the adapter %zu", label, name, count, want);
            if (count != want) continue;
            const float *g = dlora + (ab == 'a' ? lora_offset_A(&lora, layer, tgt) : lora_offset_B(&lora, layer, tgt));
            double e = rel_err(g, ref + off, count);
            CHECK(e <= GOLDEN_TOL, "%s: gradient of %s: rel %.3g (max|ref| %.3g)", label, name, e,
                  max_abs(ref + off, count));
            n_grad++;
            if (e >= e_grad) {
                e_grad = e;
                snprintf(worst, sizeof worst, "%s", name);
            }
        }
    }
    CHECK(n_grad == 2 * LORA_N_TARGETS * m.cfg.n_layers, "%s: fixture has %d gradient tensors, expected %d", label,
          n_grad, 2 * LORA_N_TARGETS * m.cfg.n_layers);
    printf("golden %-26s loss %.6f (ref %.6f) rel: loss %.1e logits %.1e lse %.1e grads %.1e (%s) %s\n", label, loss,
           ref_loss, e_loss, e_logits, e_lse, e_grad, worst,
           e_loss <= GOLDEN_TOL && e_logits <= GOLDEN_TOL && e_lse <= GOLDEN_TOL && e_grad <= GOLDEN_TOL ? "ok" : "FAIL");
    fflush(stdout);

    if (logits_out) {
        *logits_out = logits;
        logits = NULL;
    }
    if (loss_out) *loss_out = loss;
    free(tmp);
    free(sel);
    free(dlora);
    free(logits);
    acts_free(&s);
    free(bin);
    free(tokens);
    free(targets);
    lora_free(&lora);
    model_free(&m);
}

int main(void) {
    build_dir = getenv("BUILD") && *getenv("BUILD") ? getenv("BUILD") : "build";
    char *text = NULL;
    size_t size;
    if (slim_read_file(FIXDIR "/index.json", &text, &size) != 0 || !(index_json = cJSON_Parse(text))) {
        CHECK(0, "cannot read " FIXDIR "/index.json (%s): the golden fixtures are missing; run `make golden`",
              slim_last_error());
        free(text);
        return tu_finish("golden");
    }
    free(text);

    /* 1. regenerate the models and check they are the ones the fixtures were made from */
    char cmd[1600];
    CHECK(slim_format_path(models_dir, sizeof models_dir, "%s/golden/models", build_dir) == 0, "BUILD too long");
    CHECK(slim_mkdir_p(models_dir) == 0, "mkdir %s: %s", models_dir, slim_last_error());
    CHECK(slim_format_path(cmd, sizeof cmd, "scripts/make-tiny-model '%s'", models_dir) == 0, "path too long");
    int rc = system(cmd);
    CHECK(rc == 0, "`%s` failed (exit %d): needs /usr/bin/python3 with numpy (make deps)", cmd, rc);

    int arch_ok[N_ARCHS];
    for (int a = 0; a < N_ARCHS; a++) {
        const cJSON *mi = jget(jget(index_json, "models"), ARCHS[a]);
        char p[600];
        snprintf(p, sizeof p, "%s/tiny-%s.gguf", models_dir, ARCHS[a]);
        arch_ok[a] = check_sha(p, jstr(mi, "gguf_sha256"), "model");
        snprintf(p, sizeof p, "%s/tiny-%s-hf/model.safetensors", models_dir, ARCHS[a]);
        arch_ok[a] &= check_sha(p, jstr(mi, "safetensors_sha256"), "model");
    }

    /* 2. every (arch, type) */
    for (int a = 0; a < N_ARCHS; a++) {
        float *gguf_logits = NULL, *hf_logits = NULL;
        double gguf_loss = 0, hf_loss = 0;
        for (int ti = 0; ti < N_TYPES; ti++) {
            char label[64];
            snprintf(label, sizeof label, "%s/%s", ARCHS[a], TYPES[ti]);
            const cJSON *c = find_case(ARCHS[a], TYPES[ti]);
            if (!c) {
                CHECK(0, "%s: no fixture case in index.json; run `make golden`", label);
                continue;
            }
            if (!arch_ok[a]) {
                CHECK(0, "%s: not run, the regenerated model differs from the fixtures' (see above)", label);
                continue;
            }
            const cJSON *load = jget(c, "load");
            const char *model = jstr(load, "model"), *quant = jstr(load, "quant");
            if (!model || !quant) {
                CHECK(0, "%s: index.json case lacks load.model / load.quant", label);
                continue;
            }
            char path[900];
            snprintf(path, sizeof path, "%s/%s", models_dir, model);
            if (strcmp(quant, "keep") == 0) { /* a file made by `slimtune quantize` */
                char key[64], src[700];
                snprintf(key, sizeof key, "%s-%s", ARCHS[a], TYPES[ti]);
                const cJSON *qi = jget(jget(index_json, "quantized"), key);
                snprintf(src, sizeof src, "%s/tiny-%s.gguf", models_dir, ARCHS[a]);
                rc = slim_format_path(cmd, sizeof cmd, "'%s/slimtune' quantize '%s' '%s' --type %s", build_dir, src, path,
                                      TYPES[ti]);
                if (rc == 0) rc = system(cmd);
                CHECK(rc == 0, "%s: `%s` failed (exit %d)", label, cmd, rc);
                if (rc != 0 || !check_sha(path, jstr(qi, "sha256"), "quantized model")) continue;
            }
            int want_logits = strcmp(TYPES[ti], "f32") == 0;
            run_case(label, ARCHS[a], c, path, quant, want_logits ? &gguf_logits : NULL, want_logits ? &gguf_loss : NULL);
            if (want_logits) { /* 3. the Hugging Face directory, as f32 */
                char hlabel[64];
                snprintf(hlabel, sizeof hlabel, "%s/f32 (HF dir)", ARCHS[a]);
                snprintf(path, sizeof path, "%s/tiny-%s-hf", models_dir, ARCHS[a]);
                run_case(hlabel, ARCHS[a], c, path, "f32", &hf_logits, &hf_loss);
            }
        }
        if (gguf_logits && hf_logits) {
            const cJSON *mi = jget(jget(index_json, "models"), ARCHS[a]);
            size_t n = (size_t)jnum(index_json, "B", 0) * (size_t)jnum(index_json, "T", 0) * (size_t)jnum(mi, "vocab", 0);
            size_t diff = 0;
            for (size_t i = 0; i < n; i++) diff += gguf_logits[i] != hf_logits[i];
            CHECK(diff == 0 && gguf_loss == hf_loss, "%s: HF directory and GGUF differ: %zu of %zu logits, loss %.9g vs %.9g",
                  ARCHS[a], diff, n, hf_loss, gguf_loss);
            printf("golden %-26s HF directory and GGUF logits identical: %s\n", ARCHS[a], diff == 0 ? "yes" : "NO");
        } else {
            CHECK(0, "%s: the f32 GGUF / HF directory comparison did not run", ARCHS[a]);
        }
        free(gguf_logits);
        free(hf_logits);
    }
    cJSON_Delete(index_json);
    return tu_finish("golden");
}
