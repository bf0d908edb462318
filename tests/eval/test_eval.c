/* test_eval.c — eval metrics on hand-built predictions (values computed here independently), label
 * scoring on stories260K against log-probabilities computed directly with model_forward, and the
 * `slimtune eval` command (report.json, gates, exit status) on a tiny prepared dataset. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"
#include "dataset.h"
#include "model/model.h"
#include "testutil.h"
#include "../../eval/eval.h"

#define NEAR(a, b) (fabs((double)(a) - (double)(b)) < 1e-12)

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---------------------------------------------------------------------------------------------- */
/* metrics */

static void test_metrics_hand(void) {
    /* 4 classes; class 3 never occurs and is never predicted */
    const int32_t truth[10] = {0, 0, 0, 0, 1, 1, 1, 2, 2, 2};
    const int32_t pred[10] = {0, 0, 1, 2, 1, 1, 0, 2, 2, 2};
    eval_metrics m;
    CHECK(eval_metrics_compute(&m, truth, pred, 10, 4) == 0, "%s", slim_last_error());
    /* counted by hand: class 0 tp 2 fp 1 fn 2; class 1 tp 2 fp 1 fn 1; class 2 tp 3 fp 1 fn 0 */
    CHECK(NEAR(m.accuracy, 0.7), "accuracy %g", m.accuracy);
    CHECK(NEAR(m.precision[0], 2.0 / 3) && NEAR(m.recall[0], 0.5) && NEAR(m.f1[0], 4.0 / 7), "class 0: %g %g %g",
          m.precision[0], m.recall[0], m.f1[0]);
    CHECK(NEAR(m.precision[1], 2.0 / 3) && NEAR(m.recall[1], 2.0 / 3) && NEAR(m.f1[1], 2.0 / 3), "class 1: %g %g %g",
          m.precision[1], m.recall[1], m.f1[1]);
    CHECK(NEAR(m.precision[2], 0.75) && NEAR(m.recall[2], 1.0) && NEAR(m.f1[2], 6.0 / 7), "class 2: %g %g %g",
          m.precision[2], m.recall[2], m.f1[2]);
    CHECK(m.precision[3] == 0 && m.recall[3] == 0 && m.f1[3] == 0, "class 3 (empty) must score 0");
    CHECK(NEAR(m.macro_f1, (4.0 / 7 + 2.0 / 3 + 6.0 / 7) / 4), "macro-F1 %g", m.macro_f1);
    const int64_t support[4] = {4, 3, 3, 0};
    const int64_t conf[16] = {2, 1, 1, 0, 1, 2, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0};
    for (int k = 0; k < 4; k++) CHECK(m.support[k] == support[k], "support[%d] = %lld", k, (long long)m.support[k]);
    for (int i = 0; i < 16; i++)
        CHECK(m.confusion[i] == conf[i], "confusion[%d][%d] = %lld, want %lld", i / 4, i % 4, (long long)m.confusion[i],
              (long long)conf[i]);
    eval_metrics_free(&m);

    /* errors */
    const int32_t bad[2] = {0, 5};
    CHECK(eval_metrics_compute(&m, truth, bad, 2, 4) == -1 && strstr(slim_last_error(), "example 1"),
          "out-of-range prediction accepted: %s", slim_last_error());
    CHECK(eval_metrics_compute(&m, bad, truth, 2, 4) == -1, "out-of-range truth accepted");
    CHECK(eval_metrics_compute(&m, truth, pred, 0, 4) == -1, "zero examples accepted");
}

static void test_metrics_random(void) {
    enum { N = 500, K = 3 };
    int32_t truth[N], pred[N];
    slim_rng rng;
    slim_rng_seed(&rng, 99);
    for (int i = 0; i < N; i++) {
        truth[i] = (int32_t)(slim_rng_u32(&rng) % K);
        pred[i] = slim_rng_uniform(&rng) < 0.6f ? truth[i] : (int32_t)(slim_rng_u32(&rng) % K);
    }
    eval_metrics m;
    CHECK(eval_metrics_compute(&m, truth, pred, N, K) == 0, "%s", slim_last_error());
    /* one-vs-rest counts by scanning the pairs, per class */
    double f1sum = 0;
    int correct = 0;
    for (int i = 0; i < N; i++) correct += truth[i] == pred[i];
    for (int k = 0; k < K; k++) {
        int tp = 0, fp = 0, fn = 0;
        for (int i = 0; i < N; i++) {
            tp += truth[i] == k && pred[i] == k;
            fp += truth[i] != k && pred[i] == k;
            fn += truth[i] == k && pred[i] != k;
        }
        double p = tp + fp ? (double)tp / (tp + fp) : 0, r = tp + fn ? (double)tp / (tp + fn) : 0;
        double f = tp ? 2.0 * tp / (2.0 * tp + fp + fn) : 0; /* the same F1, another formula */
        CHECK(NEAR(m.precision[k], p) && NEAR(m.recall[k], r) && NEAR(m.f1[k], f), "class %d: %g %g %g vs %g %g %g", k,
              m.precision[k], m.recall[k], m.f1[k], p, r, f);
        CHECK(m.support[k] == tp + fn, "support[%d]", k);
        f1sum += f;
        for (int j = 0; j < K; j++) {
            int64_t c = 0;
            for (int i = 0; i < N; i++) c += truth[i] == k && pred[i] == j;
            CHECK(m.confusion[k * K + j] == c, "confusion[%d][%d]", k, j);
        }
    }
    CHECK(NEAR(m.accuracy, (double)correct / N), "accuracy %g", m.accuracy);
    CHECK(NEAR(m.macro_f1, f1sum / K), "macro-F1 %g vs %g", m.macro_f1, f1sum / K);
    eval_metrics_free(&m);

    double scores[6] = {-1.0, -0.5, -3.0, /* argmax 1 */ -2.0, -2.0, -7.0 /* tie: the first */};
    int32_t am[2];
    eval_argmax(scores, 2, 3, am);
    CHECK(am[0] == 1 && am[1] == 0, "argmax %d %d", am[0], am[1]);
}

/* ---------------------------------------------------------------------------------------------- */
/* scoring on stories260K */

static const char *texts[3] = {"Lily saw a big red ball in the park.", "Win a free prize now, click here!!!",
                               "Tom and his dog went to the sea."};
static char *label_names[3] = {"ham", "spam", "unsure"};
static const char *prompt_tpl = "Text: {text}\nLabel:", *completion_tpl = " {label}";

static int32_t *encode(const tokenizer *t, const char *s, int bos, int sp, int *n) {
    int need = tokenizer_encode(t, s, strlen(s), bos, sp, NULL, 0);
    int32_t *ids = slim_malloc(((size_t)need + 1) * sizeof(int32_t));
    tokenizer_encode(t, s, strlen(s), bos, sp, ids, need);
    *n = need;
    return ids;
}

/* Writes a 3-example dataset as `data prepare` would (prompt + completion of the true label + EOS). */
static int write_dataset(const model *m, const int32_t *labels, uint64_t fingerprint, const char *path) {
    slim_dataset d = {0};
    d.n_examples = 3;
    d.offsets = slim_calloc(4, sizeof(int64_t));
    d.prompt_len = slim_calloc(3, sizeof(int32_t));
    d.labels = slim_calloc(3, sizeof(int32_t));
    d.source_line = slim_calloc(3, sizeof(int64_t));
    d.tokens = slim_malloc(1);
    d.loss_mask = slim_malloc(1);
    for (int e = 0; e < 3; e++) {
        char prompt[256], comp[64];
        snprintf(prompt, sizeof prompt, "Text: %s\nLabel:", texts[e]);
        snprintf(comp, sizeof comp, " %s", label_names[labels[e]]);
        int np, nc;
        int32_t *p = encode(&m->tok, prompt, 1, 1, &np), *c = encode(&m->tok, comp, 0, 0, &nc);
        size_t n0 = (size_t)d.n_tokens, n1 = n0 + np + nc + 1;
        d.tokens = slim_realloc(d.tokens, n1 * sizeof(int32_t));
        d.loss_mask = slim_realloc(d.loss_mask, n1);
        memcpy(d.tokens + n0, p, np * sizeof(int32_t));
        memcpy(d.tokens + n0 + np, c, nc * sizeof(int32_t));
        d.tokens[n1 - 1] = m->tok.eos_id;
        for (size_t i = n0; i < n1; i++) d.loss_mask[i] = i >= n0 + np;
        d.n_tokens = (int64_t)n1;
        d.offsets[e + 1] = (int64_t)n1;
        d.prompt_len[e] = np;
        d.labels[e] = labels[e];
        d.source_line[e] = e + 2;
        free(p);
        free(c);
    }
    d.n_labels = 3;
    d.label_names = label_names;
    d.tokenizer_fingerprint = fingerprint;
    d.model = "stories260K.gguf";
    d.prompt_template = (char *)prompt_tpl;
    d.completion_template = (char *)completion_tpl;
    d.source_file = "test.csv";
    d.max_seq_len = 128;
    int rc = dataset_write(&d, path);
    free(d.offsets);
    free(d.prompt_len);
    free(d.labels);
    free(d.source_line);
    free(d.tokens);
    free(d.loss_mask);
    return rc;
}

/* log p(completion of label k | prompt of example e), directly: one sequence, one forward. */
static double direct_score(const model *m, const lora_adapter *lora, const slim_dataset *d, int e, int k) {
    char comp[64];
    snprintf(comp, sizeof comp, " %s", d->label_names[k]);
    int nc, np = d->prompt_len[e];
    int32_t *c = encode(&m->tok, comp, 0, 0, &nc);
    int T = np + nc + 1;
    int32_t *tok = slim_malloc(T * sizeof(int32_t)), *tgt = slim_malloc(T * sizeof(int32_t));
    float *lp = slim_malloc(T * sizeof(float));
    memcpy(tok, d->tokens + d->offsets[e], np * sizeof(int32_t));
    memcpy(tok + np, c, nc * sizeof(int32_t));
    tok[T - 1] = m->tok.eos_id;
    for (int t = 0; t < T; t++) tgt[t] = t + 1 < T && t + 1 >= np ? tok[t + 1] : -1;
    acts s;
    acts_init(&s, &m->cfg, 1, T, lora ? lora->r : 0);
    model_forward(m, lora, &s, tok, tgt, 1, T, lp, NULL);
    double sum = 0;
    for (int t = 0; t < T; t++) sum += lp[t];
    acts_free(&s);
    free(c);
    free(tok);
    free(tgt);
    free(lp);
    return sum;
}

static void test_scoring(const model *m, const lora_adapter *lora, const char *dir) {
    char path[4300];
    snprintf(path, sizeof path, "%s/score.h5", dir);
    const int32_t labels[3] = {0, 1, 0};
    CHECK(write_dataset(m, labels, m->tok.fingerprint, path) == 0, "dataset_write: %s", slim_last_error());
    slim_dataset d;
    if (dataset_read(&d, path) != 0) {
        CHECK(0, "dataset_read: %s", slim_last_error());
        return;
    }
    /* the completion ids are what data prepare appends */
    int n;
    int32_t *ids = eval_completion_ids(&m->tok, d.completion_template, "spam", &n);
    int nd;
    int32_t *want = encode(&m->tok, " spam", 0, 0, &nd);
    CHECK(ids && n == nd + 1 && !memcmp(ids, want, nd * sizeof(int32_t)) && ids[nd] == m->tok.eos_id,
          "completion ids of spam");
    free(ids);
    free(want);
    ids = eval_completion_ids(&m->tok, "{label}:{label}", "ab", &n);
    want = encode(&m->tok, "ab:ab", 0, 0, &nd);
    CHECK(ids && n == nd + 1 && !memcmp(ids, want, nd * sizeof(int32_t)), "every {label} is replaced");
    free(ids);
    free(want);

    for (int sys = 0; sys < 2; sys++) {
        const lora_adapter *lo = sys == 0 ? lora : NULL;
        for (int batch = 1; batch <= 4; batch += 3) { /* 1 row per forward, and padded mixed batches */
            double scores[9];
            int32_t pred[3];
            CHECK(eval_score(m, lo, &d, NULL, 3, batch, NULL, scores) == 0, "eval_score: %s", slim_last_error());
            eval_argmax(scores, 3, 3, pred);
            for (int e = 0; e < 3; e++) {
                double direct[3];
                int best = 0;
                for (int k = 0; k < 3; k++) {
                    direct[k] = direct_score(m, lo, &d, e, k);
                    if (direct[k] > direct[best]) best = k;
                    CHECK(fabs(scores[e * 3 + k] - direct[k]) < 1e-3 * (1 + fabs(direct[k])),
                          "%s batch %d example %d label %d: score %g, direct %g", lo ? "lora" : "base", batch, e, k,
                          scores[e * 3 + k], direct[k]);
                    CHECK(direct[k] < 0 && isfinite(direct[k]), "log-prob %g", direct[k]);
                }
                CHECK(pred[e] == best, "%s example %d: predicted %d, direct argmax %d", lo ? "lora" : "base", e, pred[e],
                      best);
            }
        }
    }
    /* the cached prompt (eval_score) against one row per (example, label): 1 and 3 examples a pass, padded */
    for (int sys = 0; sys < 2; sys++)
        for (int batch = 3; batch <= 9; batch += 6) {
            double cached[9], rows[9], worst = 0.0;
            CHECK(eval_score_mode(m, sys ? NULL : lora, &d, NULL, 3, batch, NULL, cached, 1) == 0 &&
                      eval_score_mode(m, sys ? NULL : lora, &d, NULL, 3, batch, NULL, rows, 0) == 0,
                  "eval_score_mode: %s", slim_last_error());
            double noise = 0.0, mag = 0.0; /* the rows path against single forwards: float rounding's size */
            for (int i = 0; i < 9; i++) {
                worst = fmax(worst, fabs(cached[i] - rows[i]) / (1 + fabs(rows[i])));
                noise = fmax(noise, fabs(rows[i] - direct_score(m, sys ? NULL : lora, &d, i / 3, i % 3)));
                mag = fmax(mag, fabs(rows[i]));
            }
            CHECK(worst < 1e-5, "%s batch %d: cached prompt and per-label rows differ by %.3g (relative)",
                  sys ? "base" : "lora", batch, worst);
            printf("scoring: cached prompt vs a row per label, %s, batch %d: largest relative difference %.3g "
                   "(scores up to %.1f nats; rows vs single forwards differ by up to %.3g nats)\n",
                   sys ? "base" : "lora", batch, worst, mag, noise);
        }
    /* a subset through idx */
    int64_t idx[1] = {2};
    double sc[3];
    CHECK(eval_score(m, NULL, &d, idx, 1, 8, NULL, sc) == 0 && fabs(sc[1] - direct_score(m, NULL, &d, 2, 1)) < 1e-3,
          "eval_score on an index subset");
    idx[0] = 3;
    CHECK(eval_score(m, NULL, &d, idx, 1, 8, NULL, sc) == -1, "out-of-range index accepted");
    dataset_free(&d);
    unlink(path);
}

/* ---------------------------------------------------------------------------------------------- */
/* the command */

static cJSON *read_json(const char *path) {
    char *text;
    size_t n;
    if (slim_read_file(path, &text, &n) != 0) return NULL;
    cJSON *j = cJSON_Parse(text);
    free(text);
    return j;
}

static double jnum(const cJSON *root, const char *a, const char *b, const char *c) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(root, a);
    if (b) x = cJSON_GetObjectItemCaseSensitive(x, b);
    if (c) x = cJSON_GetObjectItemCaseSensitive(x, c);
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

/* eval as the dispatcher runs it: the exit status, the error printed once (lib/cli.h). */
static int eval_cli(int argc, char **argv) { return slim_exit_status("eval", eval_main(argc, argv)); }

static void test_command(const model *m, const lora_adapter *lora, const char *model_path, const char *dir) {
    char data_dir[4300], train_dir[4300], cfg_path[4300], test_h5[4400], train_h5[4400], adapter[4400], report[4400],
        report_md[4400];
    snprintf(data_dir, sizeof data_dir, "%s/run/data", dir);
    snprintf(train_dir, sizeof train_dir, "%s/run/train", dir);
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    snprintf(test_h5, sizeof test_h5, "%s/test.h5", data_dir);
    snprintf(train_h5, sizeof train_h5, "%s/train.h5", data_dir);
    snprintf(adapter, sizeof adapter, "%s/adapter.gguf", train_dir);
    snprintf(report, sizeof report, "%s/run/eval/report.json", dir);
    snprintf(report_md, sizeof report_md, "%s/run/eval/report.md", dir);
    CHECK(slim_mkdir_p(data_dir) == 0 && slim_mkdir_p(train_dir) == 0, "%s", slim_last_error());
    const int32_t test_labels[3] = {1, 1, 0}, train_labels[3] = {1, 0, 1}; /* majority: spam (1) */
    CHECK(write_dataset(m, test_labels, m->tok.fingerprint, test_h5) == 0, "%s", slim_last_error());
    CHECK(write_dataset(m, train_labels, m->tok.fingerprint, train_h5) == 0, "%s", slim_last_error());
    CHECK(lora_save(lora, m, adapter) == 0, "%s", slim_last_error());
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "model", model_path);
    char out_dir[4300];
    snprintf(out_dir, sizeof out_dir, "%s/run", dir);
    cJSON_AddStringToObject(c, "out_dir", out_dir);
    cJSON *ev = cJSON_AddObjectToObject(c, "eval");
    cJSON_AddNumberToObject(ev, "min_accuracy", 0.0);
    cJSON_AddNumberToObject(ev, "min_gain", -1.0);
    char *text = cJSON_Print(c);
    FILE *f = fopen(cfg_path, "w");
    if (f) { fputs(text, f); fclose(f); }
    free(text);
    cJSON_Delete(c);

    /* expected: predictions from direct scores */
    slim_dataset d;
    if (dataset_read(&d, test_h5) != 0) { CHECK(0, "%s", slim_last_error()); return; }
    int correct[2] = {0, 0};
    for (int sys = 0; sys < 2; sys++)
        for (int e = 0; e < 3; e++) {
            int best = 0;
            double bs = -INFINITY;
            for (int k = 0; k < 3; k++) {
                double s = direct_score(m, sys == 0 ? lora : NULL, &d, e, k);
                if (s > bs) { bs = s; best = k; }
            }
            correct[sys] += best == test_labels[e];
        }
    dataset_free(&d);
    double acc_ft = correct[0] / 3.0, acc_base = correct[1] / 3.0, acc_maj = 2.0 / 3.0;
    double gain = acc_ft - (acc_base > acc_maj ? acc_base : acc_maj);

    char *argv1[] = {"eval", "--config", cfg_path, "--batch", "5", NULL};
    CHECK(eval_cli(5, argv1) == 0, "eval with no gates must pass: %s", slim_last_error());
    CHECK(file_exists(report_md), "no %s", report_md);
    cJSON *r = read_json(report);
    CHECK(r != NULL, "cannot read %s", report);
    if (r) {
        CHECK(jnum(r, "n_examples", NULL, NULL) == 3, "n_examples");
        CHECK(NEAR(jnum(r, "systems", "fine-tuned", "accuracy"), acc_ft), "fine-tuned accuracy %g, want %g",
              jnum(r, "systems", "fine-tuned", "accuracy"), acc_ft);
        CHECK(NEAR(jnum(r, "systems", "base", "accuracy"), acc_base), "base accuracy %g, want %g",
              jnum(r, "systems", "base", "accuracy"), acc_base);
        CHECK(NEAR(jnum(r, "systems", "majority", "accuracy"), acc_maj), "majority accuracy %g",
              jnum(r, "systems", "majority", "accuracy"));
        CHECK(NEAR(jnum(r, "gain", NULL, NULL), gain), "gain %g, want %g", jnum(r, "gain", NULL, NULL), gain);
        const cJSON *maj = cJSON_GetObjectItemCaseSensitive(r, "majority_label");
        CHECK(cJSON_IsString(maj) && !strcmp(maj->valuestring, "spam"), "majority label");
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
                                                 cJSON_GetObjectItemCaseSensitive(r, "systems"), "majority"),
                                             "per_class"),
            "spam");
        CHECK(sp && NEAR(jnum(sp, "recall", NULL, NULL), 1.0) && NEAR(jnum(sp, "precision", NULL, NULL), 2.0 / 3),
              "majority per-class spam");
        const cJSON *passed = cJSON_GetObjectItemCaseSensitive(r, "passed");
        CHECK(cJSON_IsTrue(passed), "report says the gates failed");
        cJSON_Delete(r);
    }

    /* gates: gain can never reach 1 here (the majority baseline is right on 2 of 3) */
    char *argv2[] = {"eval", "--config", cfg_path, "--min-gain", "1", NULL};
    CHECK(eval_cli(5, argv2) == 1, "an unreachable gain gate must exit 1");
    r = read_json(report);
    if (r) {
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "gates"), "min_gain");
        CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(g, "passed")), "min_gain gate must be reported failed");
        cJSON_Delete(r);
    }
    char *argv3[] = {"eval", "--config", cfg_path, "--min-accuracy", "1", NULL};
    CHECK(eval_cli(5, argv3) == (acc_ft < 1.0 ? 1 : 0), "accuracy gate");
    char *argv4[] = {"eval", "--config", cfg_path, "--max-examples", "1", NULL};
    CHECK(eval_cli(5, argv4) == 0, "--max-examples 1");
    r = read_json(report);
    if (r) { CHECK(jnum(r, "n_examples", NULL, NULL) == 1, "--max-examples 1 scored %g", jnum(r, "n_examples", NULL, NULL)); cJSON_Delete(r); }

    /* errors: exit 2 */
    char *argv5[] = {"eval", "--config", cfg_path, "--adapter", "/nonexistent.gguf", NULL};
    CHECK(eval_cli(5, argv5) == 2, "missing adapter must exit 2");
    char *argv6[] = {"eval", "--config", cfg_path, "--min-accuracy", "x", NULL};
    CHECK(eval_cli(5, argv6) == 2, "bad number must exit 2");
    char *argv7[] = {"eval", "--bogus", "1", NULL};
    CHECK(eval_cli(3, argv7) == 2, "bad option must exit 2");
    CHECK(write_dataset(m, test_labels, m->tok.fingerprint ^ 1, test_h5) == 0, "%s", slim_last_error());
    CHECK(eval_cli(3, argv1) == 2 && strstr(slim_last_error(), "tokenizer_fingerprint"),
          "a dataset of another tokenizer must exit 2 naming the fingerprint: %s", slim_last_error());

    unlink(test_h5);
    unlink(train_h5);
    unlink(adapter);
    unlink(report);
    unlink(report_md);
    unlink(cfg_path);
    char p[4400];
    snprintf(p, sizeof p, "%s/run/eval", dir);
    rmdir(p);
    rmdir(data_dir);
    rmdir(train_dir);
    rmdir(out_dir);
}

int main(void) {
    test_metrics_hand();
    test_metrics_random();

    char model_path[4096], dir[] = "/tmp/slim-test-eval-XXXXXX";
    snprintf(model_path, sizeof model_path, "%s/models/stories260K.gguf", slim_shared_dir());
    if (!file_exists(model_path)) {
        fprintf(stderr, "FAIL: fixture %s is missing (set SLIM_SHARED to the shared/ directory)\n", model_path);
        return 1;
    }
    if (!mkdtemp(dir)) { fprintf(stderr, "FAIL: mkdtemp\n"); return 1; }
    model m;
    if (model_load(&m, model_path) != 0) {
        fprintf(stderr, "FAIL: model_load: %s\n", slim_last_error());
        return 1;
    }
    int targets[LORA_N_TARGETS] = {1, 1, 1, 1, 1, 1, 1};
    lora_adapter lora;
    lora_init(&lora, &m.cfg, 4, 8.0f, targets, 3);
    slim_rng rng;
    slim_rng_seed(&rng, 5);
    for (int l = 0; l < lora.n_layers; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            int in, out;
            model_target_shape(&m.cfg, t, &in, &out);
            for (int i = 0; i < out * lora.r; i++) lora.B[l * LORA_N_TARGETS + t][i] = 0.05f * slim_rng_normal(&rng);
        }
    test_scoring(&m, &lora, dir);
    test_command(&m, &lora, model_path, dir);
    rmdir(dir);
    lora_free(&lora);
    model_free(&m);
    return tu_finish("eval");
}
