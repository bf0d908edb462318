/* test_model.c — the llama forward pass against llama.cpp's own figures on stories260K, padding
 * invariance, and the whole model's LoRA gradients against central finite differences. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "model.h"
#include "testutil.h"

static llama_model model;

/* Forward of one sequence with every position's logits; kv_f16 emulates llama.cpp's F16 KV cache. */
static void logits_of(const int32_t *tokens, int T, const lora_adapter *lora, float *logits, int kv_f16) {
    llama_acts s;
    acts_init(&s, &model.cfg, 1, T, lora ? lora->r : 0);
    s.kv_f16 = kv_f16;
    model_forward(&model, lora, &s, tokens, NULL, 1, T, NULL, logits);
    acts_free(&s);
}

static void test_llamacpp_reference(void) {
    /* ../shared/README.md: llama.cpp on "Once upon a time" (BOS added) */
    int32_t ids[16];
    const char *text = "Once upon a time";
    int n = tokenizer_encode(&model.tok, text, strlen(text), 1, 1, ids, 16);
    int32_t want[5] = {1, 403, 407, 261, 378};
    CHECK(n == 5 && memcmp(ids, want, sizeof want) == 0, "tokens of '%s' differ from llama.cpp's", text);
    int V = model.cfg.vocab_size;
    float *logits = slim_malloc(sizeof(float) * 5 * V);
    /* the README's figures were taken with llama.cpp's defaults, whose KV cache is F16: emulate it.
     * (The pure F32 path is compared with llama.cpp run with an F32 cache in tests/e2e.) */
    logits_of(want, 5, NULL, logits, 0);
    float f32_432 = logits[4 * V + 432];
    logits_of(want, 5, NULL, logits, 1);
    const float *last = logits + 4 * V;
    CHECK(fabsf(f32_432 - last[432]) < 3e-3f && f32_432 != last[432], "F16 KV emulation changed logit 432 by %g",
          f32_432 - last[432]);
    CHECK(fabsf(last[432] - 17.7979f) < 1e-3f, "logit of ',' (432) = %.5f, llama.cpp 17.7979", last[432]);
    CHECK(fabsf(last[383] - 14.2824f) < 1e-3f, "logit of 'there' (383) = %.5f, llama.cpp 14.2824", last[383]);
    double mx = last[0], sum = 0.0;
    for (int j = 1; j < V; j++) mx = last[j] > mx ? last[j] : mx;
    for (int j = 0; j < V; j++) sum += exp(last[j] - mx);
    struct { int id; double p; } probs[] = {{432, 0.968719}, {383, 0.028802}, {322, 0.000298}, {353, 0.000263}, {323, 0.000168}};
    for (int i = 0; i < 5; i++) {
        double p = exp(last[probs[i].id] - mx) / sum;
        CHECK(fabs(p - probs[i].p) < 1e-5 + 1e-3 * probs[i].p, "p(%d) = %.6f, llama.cpp %.6f", probs[i].id, p, probs[i].p);
    }
    int argmax = 0;
    for (int j = 1; j < V; j++) argmax = last[j] > last[argmax] ? j : argmax;
    CHECK(argmax == 432, "greedy next token %d, llama.cpp 432", argmax);
    free(logits);
}

static void test_padding_and_batching(void) {
    /* two sequences in one right-padded batch give the same logits as each alone */
    int V = model.cfg.vocab_size, T = 7;
    int32_t a[7] = {1, 403, 407, 261, 378, 432, 383}, b[4] = {1, 300, 301, 302};
    int32_t batch[14];
    memcpy(batch, a, sizeof a);
    memcpy(batch + 7, b, sizeof b);
    batch[11] = batch[12] = batch[13] = 2;
    float *la = slim_malloc(sizeof(float) * T * V), *lb = slim_malloc(sizeof(float) * 4 * V),
          *lab = slim_malloc(sizeof(float) * 2 * T * V);
    logits_of(a, 7, NULL, la, 0);
    logits_of(b, 4, NULL, lb, 0);
    llama_acts s;
    acts_init(&s, &model.cfg, 2, T, 0);
    model_forward(&model, NULL, &s, batch, NULL, 2, T, NULL, lab);
    acts_free(&s);
    float da = 0, db = 0;
    for (int i = 0; i < T * V; i++) da = fmaxf(da, fabsf(la[i] - lab[i]));
    for (int i = 0; i < 4 * V; i++) db = fmaxf(db, fabsf(lb[i] - lab[T * V + i]));
    CHECK(da < 1e-4f, "batched row 0 differs by %g", da);
    CHECK(db < 1e-4f, "padded row 1 differs by %g", db);
    free(la);
    free(lb);
    free(lab);
}

static void test_packed_rows(void) {
    /* one packed row [a | b | pad] gives, at every real position, the logits of a and b run alone */
    int V = model.cfg.vocab_size, T = 12;
    int32_t a[5] = {1, 403, 407, 261, 378}, b[4] = {1, 300, 301, 302};
    int32_t row[12], pos[12], seg[12];
    for (int t = 0; t < 12; t++) {
        row[t] = t < 5 ? a[t] : t < 9 ? b[t - 5] : 2;
        pos[t] = t < 5 ? t : t < 9 ? t - 5 : 0;
        seg[t] = t < 5 ? 0 : t < 9 ? 5 : t; /* padding: each token its own example */
    }
    float *la = slim_malloc(sizeof(float) * 5 * V), *lb = slim_malloc(sizeof(float) * 4 * V),
          *lp = slim_malloc(sizeof(float) * T * V);
    logits_of(a, 5, NULL, la, 0);
    logits_of(b, 4, NULL, lb, 0);
    llama_acts s;
    acts_init(&s, &model.cfg, 1, T, 0);
    model_forward_packed(&model, NULL, &s, row, NULL, pos, seg, 1, T, NULL, lp);
    acts_free(&s);
    float da = 0, db = 0;
    for (int i = 0; i < 5 * V; i++) da = fmaxf(da, fabsf(la[i] - lp[i]));
    for (int i = 0; i < 4 * V; i++) db = fmaxf(db, fabsf(lb[i] - lp[5 * V + i]));
    printf("packed row: max |logit difference| %.2e (first example), %.2e (second)\n", da, db);
    CHECK(da < 1e-4f && db < 1e-4f, "packed examples differ from separate runs by %g / %g", da, db);
    free(la);
    free(lb);
    free(lp);
}

/* More target rows than HEAD_CHUNK: the chunked head must give the gradient of the whole batch, equal
 * to the sum of the gradients of its rows taken one at a time (each within one chunk). */
static void test_head_chunks(void) {
    const int B = 2, T = 200; /* 2 x 199 targets > HEAD_CHUNK */
    int targets_on[LORA_N_TARGETS] = {1, 1, 1, 1, 1, 1, 1};
    lora_adapter lora;
    lora_init(&lora, &model.cfg, 4, 8.0f, targets_on, 5);
    slim_rng rng;
    slim_rng_seed(&rng, 9);
    for (size_t i = 0; i < lora.n_params; i++)
        if (lora.params[i] == 0.0f) lora.params[i] = 0.02f * slim_rng_normal(&rng);
    int32_t *tok = slim_malloc(sizeof(int32_t) * B * T), *tgt = slim_malloc(sizeof(int32_t) * B * T);
    for (int i = 0; i < B * T; i++) tok[i] = 3 + (int32_t)(slim_rng_u32(&rng) % 500);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) tgt[b * T + t] = t + 1 < T ? tok[b * T + t + 1] : -1;
    float *g_all = slim_calloc(lora.n_params, sizeof(float)), *g_rows = slim_calloc(lora.n_params, sizeof(float));
    llama_acts s;
    acts_init(&s, &model.cfg, B, T, lora.r);
    double l_all = model_forward(&model, &lora, &s, tok, tgt, B, T, NULL, NULL);
    CHECK(s.n_sel > HEAD_CHUNK, "the batch must span several head chunks (%d targets)", s.n_sel);
    model_backward(&model, &lora, &s, g_all, 1.0f);
    double l_rows = 0.0;
    for (int b = 0; b < B; b++) {
        l_rows += model_forward(&model, &lora, &s, tok + b * T, tgt + b * T, 1, T, NULL, NULL);
        model_backward(&model, &lora, &s, g_rows, 1.0f);
    }
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < lora.n_params; i++) {
        num += (double)(g_all[i] - g_rows[i]) * (g_all[i] - g_rows[i]);
        den += (double)g_rows[i] * g_rows[i];
    }
    double rel = sqrt(num / (den + 1e-30));
    printf("head chunks: %d targets, loss %.4f vs %.4f by rows, gradient relative difference %.2e\n", 2 * (T - 1), l_all,
           l_rows, rel);
    CHECK(fabs(l_all - l_rows) < 1e-3 * fabs(l_rows), "chunked loss %g != %g", l_all, l_rows);
    CHECK(rel < 1e-5, "chunked head gradient differs from per-row gradients by %.3g", rel);
    acts_free(&s);
    free(tok);
    free(tgt);
    free(g_all);
    free(g_rows);
    lora_free(&lora);
}

/* Summed loss of the adapted model on a fixed batch. */
static double loss_of(const lora_adapter *lora, llama_acts *s, const int32_t *tokens, const int32_t *targets, int B, int T) {
    return model_forward(&model, lora, s, tokens, targets, B, T, NULL, NULL);
}

/* A copy of m whose every weight matrix is F32 = the dequantized storage of m: the on-the-fly
 * dequantizing products must give the same results as plain sgemm on these. */
static void model_dequantized_copy(const llama_model *m, llama_model *f, float **bufs, int *n_bufs) {
    *f = *m;
    f->layers = slim_malloc(sizeof(llama_layer) * m->cfg.n_layers);
    memcpy(f->layers, m->layers, sizeof(llama_layer) * m->cfg.n_layers);
    *n_bufs = 0;
    qmatrix *mats[2 + 7 * 64];
    int n = 0;
    mats[n++] = &f->tok_embd;
    mats[n++] = &f->output;
    for (int l = 0; l < m->cfg.n_layers && l < 64; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) mats[n++] = &f->layers[l].w[t];
    for (int i = 0; i < n; i++) {
        qmatrix *W = mats[i];
        float *buf = slim_malloc(sizeof(float) * W->rows * W->cols);
        qmatrix_dequantize_rows(W, 0, W->rows, buf);
        W->type = GGML_TYPE_F32;
        W->data = (const uint8_t *)buf;
        W->row_bytes = sizeof(float) * W->cols;
        W->nf4 = NULL;
        bufs[(*n_bufs)++] = buf;
    }
}

static void test_quantized_bases(const char *path) {
    int32_t ids[5] = {1, 403, 407, 261, 378};
    int V = model.cfg.vocab_size;
    float *ref = slim_malloc(sizeof(float) * 5 * V), *got = slim_malloc(sizeof(float) * 5 * V),
          *deq = slim_malloc(sizeof(float) * 5 * V);
    logits_of(ids, 5, NULL, ref, 0);
    /* sanity bounds on max |logit - F32 logit| per storage type (stories260K's logits reach ~20; its
     * dim-64 rows make block quantization relatively coarse): measured f16 0.011, bf16 0.067, q8_0 0.21,
     * nf4 4.3. The exact check is the next one: on-the-fly dequantization == a dequantized copy. */
    struct { int quant; float tol; int same_top; } cases[] = {
        {QUANT_F16, 0.05f, 1}, {QUANT_BF16, 0.25f, 1}, {QUANT_Q8_0, 0.5f, 1}, {QUANT_NF4, 8.0f, 0}, {QUANT_KEEP, 0.0f, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        llama_model q, f;
        if (model_load_quant(&q, path, cases[c].quant) != 0) {
            CHECK(0, "model_load_quant %s: %s", base_quant_names[cases[c].quant], slim_last_error());
            continue;
        }
        llama_acts s;
        acts_init(&s, &q.cfg, 1, 5, 0);
        model_forward(&q, NULL, &s, ids, NULL, 1, 5, NULL, got);
        float *bufs[2 + 7 * 64];
        int n_bufs;
        model_dequantized_copy(&q, &f, bufs, &n_bufs);
        model_forward(&f, NULL, &s, ids, NULL, 1, 5, NULL, deq);
        float d_ref = 0, d_deq = 0;
        for (int i = 0; i < 5 * V; i++) {
            d_ref = fmaxf(d_ref, fabsf(got[i] - ref[i]));
            d_deq = fmaxf(d_deq, fabsf(got[i] - deq[i]));
        }
        printf("base.quant %-4s: %.3f bytes/parameter, max |logit - f32| %.4f, on-the-fly vs dequantized copy %.2e\n",
               base_quant_names[cases[c].quant], (double)q.weight_bytes / q.n_params, d_ref, d_deq);
        CHECK(d_ref <= cases[c].tol, "%s logits differ from f32 by %g > %g", base_quant_names[cases[c].quant], d_ref,
              cases[c].tol);
        CHECK(d_deq <= 1e-4f, "%s: on-the-fly dequantization differs from a dequantized copy by %g",
              base_quant_names[cases[c].quant], d_deq);
        int top = 0;
        for (int j = 1; j < V; j++) top = got[4 * V + j] > got[4 * V + top] ? j : top;
        if (cases[c].same_top) CHECK(top == 432, "%s: next token after 'Once upon a time' is %d, not 432", base_quant_names[cases[c].quant], top);
        if (cases[c].quant != QUANT_KEEP) CHECK(d_ref > 0, "%s logits equal f32 exactly: nothing was quantized", base_quant_names[cases[c].quant]);
        for (int i = 0; i < n_bufs; i++) free(bufs[i]);
        free(f.layers);
        acts_free(&s);
        model_free(&q);
    }
    free(ref);
    free(got);
    free(deq);
}

static void test_lora_gradients(const char *path, int quant) {
    llama_model qm, *saved = NULL;
    if (quant != QUANT_F32) {
        /* the same check on a quantized base: the backward dequantizes on the fly too */
        if (model_load_quant(&qm, path, quant) != 0) { CHECK(0, "load %s: %s", base_quant_names[quant], slim_last_error()); return; }
        saved = slim_malloc(sizeof model);
        *saved = model;
        model = qm;
    }
    printf("LoRA gradients on a %s base\n", base_quant_names[quant]);
    int targets_on[LORA_N_TARGETS] = {1, 1, 1, 1, 1, 1, 1};
    lora_adapter lora;
    lora_init(&lora, &model.cfg, 4, 8.0f, targets_on, 42);
    slim_rng rng;
    slim_rng_seed(&rng, 7);
    /* B starts at zero (then dA = 0): give it values so every path is exercised */
    for (int l = 0; l < lora.n_layers; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            int in, out;
            model_target_shape(&model.cfg, t, &in, &out);
            float *Bm = lora.B[l * LORA_N_TARGETS + t];
            for (int i = 0; i < out * lora.r; i++) Bm[i] = 0.05f * slim_rng_normal(&rng);
        }
    const int B = 2, T = 6;
    int32_t tokens[12] = {1, 403, 407, 261, 378, 432, 1, 300, 301, 302, 2, 2};
    /* loss on the last three real positions of row 0, two of row 1, none on padding */
    int32_t targets[12] = {-1, -1, -1, 378, 432, 383, -1, 301, 302, 2, -1, -1};
    llama_acts s;
    acts_init(&s, &model.cfg, B, T, lora.r);
    float *grad = slim_calloc(lora.n_params, sizeof(float));
    loss_of(&lora, &s, tokens, targets, B, T);
    CHECK(s.n_sel == 6, "selected %d target rows, expected 6", s.n_sel);
    model_backward(&model, &lora, &s, grad, 1.0f);
    /* finite differences on a sample of parameters from every A and B of every layer */
    double max_err = 0.0, num2 = 0.0, err2 = 0.0;
    int n_checked = 0;
    const float h = 4e-2f;
    for (int l = 0; l < lora.n_layers; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++)
            for (int ab = 0; ab < 2; ab++) {
                int in, out;
                model_target_shape(&model.cfg, t, &in, &out);
                size_t off = ab ? lora_offset_B(&lora, l, t) : lora_offset_A(&lora, l, t);
                size_t n = (size_t)lora.r * (ab ? out : in);
                for (int k = 0; k < 3; k++) {
                    size_t i = off + slim_rng_u32(&rng) % n;
                    /* Richardson extrapolation of central differences at h and h/2 cancels the
                     * O(h^2) term, so h can stay large enough to keep float rounding noise small */
                    float keep = lora.params[i];
                    double d[2];
                    for (int j = 0; j < 2; j++) {
                        float hj = j ? h / 2 : h;
                        lora.params[i] = keep + hj;
                        double lp = loss_of(&lora, &s, tokens, targets, B, T);
                        lora.params[i] = keep - hj;
                        double lm = loss_of(&lora, &s, tokens, targets, B, T);
                        d[j] = (lp - lm) / (2.0 * hj);
                    }
                    lora.params[i] = keep;
                    double num = (4.0 * d[1] - d[0]) / 3.0;
                    /* tolerance: float forward noise (absolute) plus a relative part */
                    double err = fabs(num - grad[i]) / (5e-4 + 1e-2 * fabs(num));
                    if (err > max_err) max_err = err;
                    if (getenv("SLIM_VERBOSE") && err > 1.0)
                        printf("  layer %d %s %c [%zu]: analytic %.6e numeric %.6e\n", l, lora_target_names[t], ab ? 'B' : 'A', i - off, grad[i], num);
                    num2 += num * num;
                    err2 += (num - grad[i]) * (num - grad[i]);
                    n_checked++;
                }
            }
    double rel = sqrt(err2 / (num2 + 1e-30));
    printf("lora gradients: %d parameters checked, worst |error| / (5e-4 + 1e-2 |numeric|) = %.2f, relative L2 error %.2e\n",
           n_checked, max_err, rel);
    CHECK(max_err <= 1.0, "a LoRA gradient misses |error| <= 5e-4 + 1e-2 |numeric| by a factor %.2f", max_err);
    CHECK(rel < 1e-3, "LoRA gradient relative L2 error %.3e", rel);
    CHECK(num2 > 1e-8, "finite-difference gradients are all ~zero: the check is vacuous");
    acts_free(&s);
    free(grad);
    lora_free(&lora);
    if (saved) {
        model_free(&model);
        model = *saved;
        free(saved);
    }
}

int main(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K.gguf", slim_shared_dir());
    if (model_load(&model, path) != 0) {
        fprintf(stderr, "FAIL: cannot load the shared fixture (set SLIM_SHARED): %s\n", slim_last_error());
        return 1;
    }
    test_llamacpp_reference();
    test_padding_and_batching();
    test_packed_rows();
    test_head_chunks();
    test_lora_gradients(path, QUANT_F32);
    test_lora_gradients(path, QUANT_Q8_0);
    test_lora_gradients(path, QUANT_NF4);
    test_quantized_bases(path);
    model_free(&model);
    return tu_finish("test_model");
}
