/* test_loop.c — the training loop: the learning-rate schedule against its formula, gradient-norm
 * clipping, the epoch sampler (every example once per epoch, replay from the seed), and the real
 * `slimtune train` (train_main) on the stories260K model: batch 8 and batch 2 x grad_accum 4 give the
 * same update (the loss of a step is the mean over all its target tokens however they are split),
 * and a step ends at the end of an epoch. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dataset.h"
#include "model/model.h"
#include "optim.h"
#include "loader.h"
#include "../train/train.h"
#include "testdata.h"
#include "testutil.h"

static model g_model;

/* ---------------------------------------------------------------- lr_schedule */

static int close_rel(double a, double b, double tol) { return fabs(a - b) <= tol * fmax(fabs(b), 1e-30); }

static void test_lr_schedule(void) {
    const float lr = 1e-3f, floor_ratio = 0.1f;
    const long W = 10, total = 111; /* decay over steps 10..110: progress (s - 10) / 100 */
    /* hand-worked values: warmup is linear from lr/W, cosine 1 at the peak, 0 at mid-decay, -1 at the end */
    struct { long step; double want; } cases[] = {
        {0, 1e-4},              /* lr * 1/10 */
        {4, 5e-4},              /* lr * 5/10 */
        {9, 1e-3},              /* lr * 10/10: warmup ends at the peak */
        {10, 1e-3},             /* first decay step, progress 0 */
        {35, 1e-3 * (0.1 + 0.9 * 0.5 * (1.0 + sqrt(0.5)))}, /* progress 1/4: cos(pi/4) = sqrt(1/2) */
        {60, 1e-3 * (0.1 + 0.9 * 0.5)},                     /* progress 1/2 */
        {110, 1e-4},            /* last step: the floor lr * min_ratio */
        {500, 1e-4},            /* past the end: stays at the floor */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double got = lr_schedule(cases[i].step, total, W, lr, floor_ratio);
        CHECK(close_rel(got, cases[i].want, 1e-6), "lr_schedule(step %ld) = %.9g, expected %.9g", cases[i].step, got,
              cases[i].want);
    }
    /* every step against the formula, written independently: warmup (s+1)/W, then
     * floor + (1 - floor) (1 + cos(pi (s - W) / (total - W - 1))) / 2; never below the floor */
    double worst = 0.0, prev = INFINITY;
    int monotone = 1;
    for (long s = 0; s < total; s++) {
        double want = s < W ? lr * (s + 1.0) / W
                            : lr * (floor_ratio + (1.0 - floor_ratio) * (1.0 + cos(M_PI * (s - W) / (total - W - 1.0))) / 2.0);
        double got = lr_schedule(s, total, W, lr, floor_ratio);
        worst = fmax(worst, fabs(got - want) / want);
        if (s >= W && got > prev) monotone = 0;
        if (s >= W) prev = got;
        CHECK(got >= lr * floor_ratio * (1.0 - 1e-6), "step %ld: lr %.9g below the floor", s, got);
    }
    CHECK(worst <= 1e-6, "lr_schedule differs from the formula by %.3g (relative)", worst);
    CHECK(monotone, "the cosine decay is not non-increasing");
    /* no warmup: the first step is the peak; a single decay step stays at the peak */
    CHECK(close_rel(lr_schedule(0, 50, 0, lr, floor_ratio), lr, 1e-6), "no warmup: step 0 must be the peak lr");
    CHECK(close_rel(lr_schedule(49, 50, 0, lr, floor_ratio), lr * floor_ratio, 1e-6), "no warmup: the last step is the floor");
    CHECK(close_rel(lr_schedule(0, 1, 0, lr, floor_ratio), lr, 1e-6), "one step: the peak lr");
    printf("lr_schedule: %ld steps, worst relative difference from the formula %.2e\n", total, worst);
}

/* ---------------------------------------------------------------- grad_clip_norm */

static void test_grad_clip(void) {
    float g[2] = {3.0f, 4.0f};
    float norm = grad_clip_norm(g, 2, 1.0f);
    CHECK(norm == 5.0f, "norm of (3, 4) = %g, expected 5 (before clipping)", norm);
    CHECK(close_rel(g[0], 0.6, 1e-6) && close_rel(g[1], 0.8, 1e-6), "clipped to (%g, %g), expected (0.6, 0.8)", g[0], g[1]);
    float h[2] = {3.0f, 4.0f};
    norm = grad_clip_norm(h, 2, 10.0f);
    CHECK(norm == 5.0f && h[0] == 3.0f && h[1] == 4.0f, "a norm below the clip must be left alone: (%g, %g)", h[0], h[1]);
    norm = grad_clip_norm(h, 2, 0.0f);
    CHECK(norm == 5.0f && h[0] == 3.0f && h[1] == 4.0f, "clip 0 is off: (%g, %g)", h[0], h[1]);
    /* a long vector (the parallel reduction): norm computed here in double, clipped at half of it */
    const size_t n = 100003;
    float *v = slim_malloc(sizeof(float) * n), *v0 = slim_malloc(sizeof(float) * n);
    slim_rng rng;
    slim_rng_seed(&rng, 3);
    double ss = 0.0;
    for (size_t i = 0; i < n; i++) {
        v[i] = v0[i] = 0.01f * slim_rng_normal(&rng);
        ss += (double)v[i] * v[i];
    }
    double want = sqrt(ss);
    float clip = (float)(want / 2.0);
    norm = grad_clip_norm(v, n, clip);
    double ss2 = 0.0, worst_dir = 0.0;
    for (size_t i = 0; i < n; i++) {
        ss2 += (double)v[i] * v[i];
        worst_dir = fmax(worst_dir, fabs(v[i] - v0[i] * (clip / want)));
    }
    CHECK(close_rel(norm, want, 1e-6), "norm %.9g, expected %.9g", norm, want);
    CHECK(close_rel(sqrt(ss2), clip, 1e-5), "norm after clipping %.9g, expected the clip %.9g", sqrt(ss2), clip);
    CHECK(worst_dir <= 1e-6 * 0.05, "clipping changed the direction (max element error %.3g)", worst_dir);
    memcpy(v, v0, sizeof(float) * n);
    grad_clip_norm(v, n, (float)(want * 1.01));
    CHECK(memcmp(v, v0, sizeof(float) * n) == 0, "a norm 1%% below the clip must be left bit-identical");
    printf("grad_clip_norm: norm %.6g of %zu elements, clipped to %.6g\n", norm, n, sqrt(ss2));
    free(v);
    free(v0);
}

/* ---------------------------------------------------------------- sampler */

/* Draws micro-batches of B from a sampler over n units for `epochs` epochs into seq (the indices in
 * the order drawn, n * epochs of them); checks each epoch is a permutation and epoch_end marks its last
 * micro-batch, which alone may be short. Returns the number of micro-batches. */
static int draw_epochs(sampler *s, int B, int epochs, int64_t *seq) {
    const int64_t n = s->n;
    int64_t *idx = slim_malloc(sizeof(int64_t) * B);
    char *seen = slim_calloc(n, 1);
    int n_micro = 0, ok_perm = 1, ok_end = 1, ok_size = 1;
    int64_t k = 0;
    for (int e = 0; e < epochs; e++) {
        memset(seen, 0, n);
        int64_t in_epoch = 0;
        for (;;) {
            int end;
            int nb = sampler_next(s, idx, B, &end);
            n_micro++;
            for (int b = 0; b < nb; b++) {
                if (idx[b] < 0 || idx[b] >= n || seen[idx[b]]++) ok_perm = 0;
                seq[k++] = idx[b];
            }
            in_epoch += nb;
            if (nb != B && !(end && nb == n % B)) ok_size = 0;
            if (end != (in_epoch == n)) ok_end = 0;
            if (end || in_epoch >= n) break;
        }
        for (int64_t i = 0; i < n; i++) ok_perm &= seen[i] == 1;
        CHECK(s->st.epoch == e, "after epoch %d the sampler says epoch %lld", e, (long long)s->st.epoch);
    }
    CHECK(ok_perm, "n=%lld B=%d: an epoch does not visit every example exactly once", (long long)n, B);
    CHECK(ok_end, "n=%lld B=%d: epoch_end is not set exactly on the epoch's last micro-batch", (long long)n, B);
    CHECK(ok_size, "n=%lld B=%d: a micro-batch other than the epoch's last is short", (long long)n, B);
    free(idx);
    free(seen);
    return n_micro;
}

static void test_sampler(void) {
    const int64_t n = 10;
    const int B = 3, E = 3;
    int64_t a[30], b[30], c[30];
    sampler s1, s2, s3;
    sampler_init(&s1, n, 7);
    sampler_init(&s2, n, 7);
    sampler_init(&s3, n, 8);
    int micro = draw_epochs(&s1, B, E, a);
    CHECK(micro == E * 4, "%d micro-batches for %d epochs of 10 by 3, expected %d", micro, E, E * 4);
    draw_epochs(&s2, B, E, b);
    CHECK(memcmp(a, b, sizeof a) == 0, "the same seed does not replay the same order");
    draw_epochs(&s3, B, E, c);
    CHECK(memcmp(a, c, sizeof a) != 0, "another seed gives the same order");
    int shuffled = 0, epochs_differ = 0;
    for (int i = 0; i < n; i++) shuffled |= a[i] != i;
    for (int i = 0; i < n; i++) epochs_differ |= a[i] != a[n + i];
    CHECK(shuffled && epochs_differ, "the order is not shuffled (%d) or not reshuffled per epoch (%d)", shuffled,
          epochs_differ);
    /* a state saved mid-epoch, set on another sampler of the same seed, replays the same micro-batches
     * (what the two-pass step loop relies on) */
    sampler s4, copy;
    sampler_init(&s4, n, 7);
    sampler_init(&copy, n, 7);
    int64_t idx[3], idx2[3];
    int end, end2, same = 1;
    sampler_next(&s4, idx, B, &end);
    copy.st = s4.st;
    for (int m = 0; m < 6; m++) {
        int nb = sampler_next(&s4, idx, B, &end);
        int nb2 = sampler_next(&copy, idx2, B, &end2);
        same &= nb == nb2 && end == end2 && memcmp(idx, idx2, sizeof(int64_t) * nb) == 0;
    }
    CHECK(same, "a copy of the sampler does not replay the same micro-batches");
    /* fewer examples than a batch: one short micro-batch per epoch */
    int64_t d[2];
    sampler s5;
    sampler_init(&s5, 1, 1);
    CHECK(draw_epochs(&s5, 8, 2, d) == 2, "one example, batch 8: one micro-batch per epoch");
    sampler *all[] = {&s1, &s2, &s3, &s4, &copy, &s5};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sampler_free(all[i]);
    printf("sampler: 10 examples x batch 3 x %d epochs: %d micro-batches, each epoch a permutation\n", E, micro);
}

/* ---------------------------------------------------------------- the real training loop */

/* Writes tmpdir/out-<name>/data/train.h5: n examples of stories260K token ids, example e with len[e]
 * tokens (BOS first) and its last n_tgt[e] tokens as targets. */
static void write_train_data(const char *name, int n, const int *len, const int *n_tgt) {
    slim_dataset d = {0};
    int64_t total = 0;
    for (int e = 0; e < n; e++) total += len[e];
    d.n_examples = n;
    d.n_tokens = total;
    d.tokens = slim_malloc(sizeof(int32_t) * total);
    d.loss_mask = slim_calloc(total, 1);
    d.offsets = slim_calloc(n + 1, sizeof(int64_t));
    d.prompt_len = slim_calloc(n, sizeof(int32_t));
    d.labels = slim_calloc(n, sizeof(int32_t));
    d.source_line = slim_calloc(n, sizeof(int64_t));
    slim_rng rng;
    slim_rng_seed(&rng, 17);
    int64_t k = 0;
    for (int e = 0; e < n; e++) {
        for (int i = 0; i < len[e]; i++, k++) {
            d.tokens[k] = i == 0 ? g_model.tok.bos_id : 3 + (int32_t)(slim_rng_u32(&rng) % 400);
            d.loss_mask[k] = i >= len[e] - n_tgt[e];
        }
        d.offsets[e + 1] = k;
        d.prompt_len[e] = len[e] - n_tgt[e];
        d.labels[e] = -1;
        d.source_line[e] = e + 2;
    }
    d.tokenizer_fingerprint = g_model.tok.fingerprint;
    d.model = model_path;
    d.prompt_template = d.completion_template = "";
    d.source_file = "generated";
    d.shape = "prompt_completion";
    d.max_seq_len = 64;
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/out-%s/data", tmpdir, name);
    snprintf(path, sizeof path, "%s/train.h5", dir);
    CHECK(slim_mkdir_p(dir) == 0 && dataset_write(&d, path) == 0, "writing %s: %s", path, slim_last_error());
    free(d.tokens); free(d.loss_mask); free(d.offsets); free(d.prompt_len); free(d.labels); free(d.source_line);
}

/* Runs train_main on a config tmpdir/<name> (out_dir tmpdir/out-<name>) whose "train" object body is
 * train_json; returns its exit status (its output goes to tmpdir/<name>.log). */
static int run_train(const char *name, const char *train_json) {
    char text[2048];
    snprintf(text, sizeof text,
             "{\"model\": \"%s\", \"out_dir\": \"%s/out-%s\", \"lora\": {\"r\": 4, \"alpha\": 8}, \"train\": {%s}}\n",
             model_path, tmpdir, name, train_json);
    const char *cfg = tmp_path(name);
    write_bytes(cfg, text, strlen(text));
    char log[300], *out = NULL;
    snprintf(log, sizeof log, "%s.log", name);
    char *args[] = {"--config", (char *)cfg, NULL};
    int rc = run_capture(train_main, "train", log, &out, args);
    if (rc != 0) fprintf(stderr, "train %s failed (%d): %s\n%s\n", name, rc, slim_last_error(), out);
    free(out);
    return rc;
}

/* Reads field `key` of every line of tmpdir/out-<name>/train/metrics.jsonl into vals (at most max);
 * returns the number of lines. */
static int read_metric(const char *name, const char *key, double *vals, int max) {
    char path[700], pat[64], *text = NULL;
    size_t len;
    snprintf(path, sizeof path, "%s/out-%s/train/metrics.jsonl", tmpdir, name);
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    if (slim_read_file(path, &text, &len) != 0) return 0;
    int n = 0;
    for (char *line = text; line && *line && n < max; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        char *p = strstr(line, pat);
        char *eol = strchr(line, '\n');
        if (p && (!eol || p < eol)) vals[n++] = strtod(p + strlen(pat), NULL);
    }
    free(text);
    return n;
}

/* Loads tmpdir/out-<name>/train/adapter.gguf. */
static int load_adapter(const char *name, lora_adapter *a) {
    char path[700];
    snprintf(path, sizeof path, "%s/out-%s/train/adapter.gguf", tmpdir, name);
    int rc = lora_load(a, &g_model, path);
    CHECK(rc == 0, "lora_load %s: %s", path, slim_last_error());
    return rc;
}

/* Mean cross-entropy of the base model (what a fresh adapter computes: B = 0) over every target of
 * the first n_first examples of epoch 0 (sampler seed `seed`) of tmpdir/out-<name>/data/train.h5, one
 * example at a time: the loss a first step over those examples must log. */
static double base_mean_loss(const char *name, uint64_t seed, int n_first) {
    char path[700];
    snprintf(path, sizeof path, "%s/out-%s/data/train.h5", tmpdir, name);
    slim_dataset d;
    if (dataset_read(&d, path) != 0) { CHECK(0, "dataset_read %s: %s", path, slim_last_error()); return NAN; }
    double sum = 0.0;
    long n_targets = 0;
    sampler smp;
    sampler_init(&smp, d.n_examples, seed);
    int64_t *first = slim_malloc(sizeof(int64_t) * n_first);
    int end;
    int nb = sampler_next(&smp, first, n_first, &end);
    for (int k = 0; k < nb; k++) {
        int64_t e = first[k];
        int T = (int)(d.offsets[e + 1] - d.offsets[e]);
        const int32_t *tok = d.tokens + d.offsets[e];
        int32_t *tgt = slim_malloc(sizeof(int32_t) * T);
        for (int t = 0; t < T; t++) tgt[t] = t + 1 < T && d.loss_mask[d.offsets[e] + t + 1] ? tok[t + 1] : -1;
        acts s;
        acts_init(&s, &g_model.cfg, 1, T, 0);
        s.inference = 1;
        sum += model_forward(&g_model, NULL, &s, tok, tgt, 1, T, NULL, NULL);
        n_targets += s.n_sel;
        acts_free(&s);
        free(tgt);
    }
    dataset_free(&d);
    sampler_free(&smp);
    free(first);
    return sum / n_targets;
}

/* batch 8 x accum 1 and batch 2 x accum 4 over the same 16 examples (target counts 1..4, so a mean of
 * per-micro-batch means would weight them differently) give the same two AdamW steps. */
static void test_grad_accum(void) {
    int len[16], tgt[16];
    for (int e = 0; e < 16; e++) {
        len[e] = 6 + (e * 7) % 16;
        tgt[e] = 1 + (e * 5) % 4;
    }
    /* eps = 1 keeps AdamW's update m/(sqrt(v) + eps) a smooth function of the gradient: with the default
     * 1e-8 the first update is lr * g/|g| (blind to the gradient's scale) and where a later m nearly
     * cancels, float rounding of g is amplified without bound (measured: 6.8e-6 at lr 1e-2, 6.8e-7 at
     * 1e-3, from two elements whose second-step gradient nearly cancels the first). With eps = 1 a
     * rounding error dg moves a parameter by at most ~lr dg while a gradient that is wrong by a
     * fraction f moves it by ~lr f |g|. No clipping, so the update is the raw mean gradient's. */
    const char *common_json = "\"epochs\": 1, \"lr\": 0.1, \"eps\": 1, \"warmup_steps\": 0, \"grad_clip\": 0, "
                              "\"seed\": 5, \"log_every\": 1";
    char j8[512], j2[512];
    snprintf(j8, sizeof j8, "%s, \"batch_size\": 8, \"grad_accum\": 1", common_json);
    snprintf(j2, sizeof j2, "%s, \"batch_size\": 2, \"grad_accum\": 4", common_json);
    write_train_data("accum-8x1", 16, len, tgt);
    write_train_data("accum-2x4", 16, len, tgt);
    if (run_train("accum-8x1", j8) != 0 || run_train("accum-2x4", j2) != 0) {
        CHECK(0, "slimtune train failed");
        return;
    }
    double loss8[4], loss2[4], gn8[4], gn2[4];
    int n8 = read_metric("accum-8x1", "loss", loss8, 4), n2 = read_metric("accum-2x4", "loss", loss2, 4);
    read_metric("accum-8x1", "grad_norm", gn8, 4);
    read_metric("accum-2x4", "grad_norm", gn2, 4);
    CHECK(n8 == 2 && n2 == 2, "expected 2 logged steps each, got %d and %d", n8, n2);
    /* the loss of step 1 is the mean over every target of its 8 examples (the sampler's first 8),
     * computed here one example at a time */
    double want = base_mean_loss("accum-8x1", 5, 8);
    CHECK(n8 > 0 && close_rel(loss8[0], want, 1e-5), "step 1 loss %.6f, expected the mean over its targets %.6f",
          n8 > 0 ? loss8[0] : NAN, want);
    for (int s = 0; s < n8 && s < n2; s++) {
        if (s == 0) printf("accumulation: step 1's mean target loss by the base model, one example at a time: %.6f\n", want);
        printf("accumulation step %d: loss %.6f / %.6f, grad norm %.6f / %.6f (batch 8 / 2 x 4)\n", s + 1, loss8[s],
               loss2[s], gn8[s], gn2[s]);
        CHECK(close_rel(loss2[s], loss8[s], 1e-5), "step %d: loss %.6f with 2 x 4, %.6f with 8", s + 1, loss2[s], loss8[s]);
        CHECK(close_rel(gn2[s], gn8[s], 1e-5), "step %d: gradient norm %.6f with 2 x 4, %.6f with 8", s + 1, gn2[s],
              gn8[s]);
    }
    lora_adapter a, b;
    if (load_adapter("accum-8x1", &a) != 0) return;
    if (load_adapter("accum-2x4", &b) != 0) { lora_free(&a); return; }
    double diff = 0.0, moved = 0.0;
    for (size_t i = 0; i < a.n_params && a.n_params == b.n_params; i++) {
        diff = fmax(diff, fabs((double)a.params[i] - b.params[i]));
        moved = fmax(moved, fabs(a.params[i]));
    }
    /* B starts at zero: it must have moved well past the tolerance */
    double moved_B = 0.0;
    for (int l = 0; l < a.n_layers; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++)
            if (a.B[l * LORA_N_TARGETS + t]) {
                int in, out;
                model_target_shape(&g_model.cfg, t, &in, &out);
                for (int i = 0; i < out * a.r; i++) moved_B = fmax(moved_B, fabs(a.B[l * LORA_N_TARGETS + t][i]));
            }
    printf("accumulation: adapters differ by at most %.2e (max |B| after two steps %.3g)\n", diff, moved_B);
    CHECK(a.n_params == b.n_params, "adapter sizes differ");
    CHECK(diff <= 1e-6, "batch 8 and batch 2 x grad_accum 4 give adapters that differ by %.3g > 1e-6", diff);
    CHECK(moved_B > 1e-3, "the adapter did not move (max |B| %.3g): the comparison is vacuous", moved_B);
    lora_free(&a);
    lora_free(&b);
}

/* 10 equal examples, batch 2 x accum 4, 2 epochs: each epoch is 5 micro-batches = a step of 4 and a
 * step of 1 (the step ends with the epoch), so 4 steps whose cumulative padded tokens are 64, 80, 144,
 * 160 (8 tokens a row, 2 rows a micro-batch). */
static void test_epoch_boundaries(void) {
    int len[10], tgt[10];
    for (int e = 0; e < 10; e++) {
        len[e] = 8;
        tgt[e] = 2;
    }
    write_train_data("epochs", 10, len, tgt);
    if (run_train("epochs", "\"epochs\": 2, \"batch_size\": 2, \"grad_accum\": 4, \"log_every\": 1, \"seed\": 2") != 0) {
        CHECK(0, "slimtune train failed");
        return;
    }
    double tokens[8], total[8];
    int n = read_metric("epochs", "tokens", tokens, 8);
    read_metric("epochs", "total_steps", total, 8);
    const double want[4] = {64, 80, 144, 160};
    CHECK(n == 4 && total[0] == 4, "%d steps logged (total_steps %g), expected 4", n, n ? total[0] : -1.0);
    for (int s = 0; s < n && s < 4; s++)
        CHECK(tokens[s] == want[s], "after step %d: %g tokens, expected %g (a step must end at the epoch's end)", s + 1,
              tokens[s], want[s]);
    printf("epoch boundaries: %d steps, cumulative tokens %g %g %g %g\n", n, tokens[0], n > 1 ? tokens[1] : 0,
           n > 2 ? tokens[2] : 0, n > 3 ? tokens[3] : 0);
}

int main(void) {
    test_lr_schedule();
    test_grad_clip();
    test_sampler();

    snprintf(tmpdir, sizeof tmpdir, "/tmp/slimtune-test-loop-XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    snprintf(model_path, sizeof model_path, "%s/models/stories260K.gguf", slim_shared_dir());
    if (model_load(&g_model, model_path) != 0) {
        CHECK(0, "the shared model %s is required (set SLIM_SHARED): %s", model_path, slim_last_error());
        return tu_finish("test_loop");
    }
    test_grad_accum();
    test_epoch_boundaries();
    model_free(&g_model);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmpdir);
    return tu_finish("test_loop");
}
