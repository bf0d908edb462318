/* test_model.c — the llama forward pass against llama.cpp's own figures on stories260K, padding
 * invariance, and the whole model's LoRA gradients (F32, Q8_0 and NF4 bases) against central finite
 * differences of an independent float64 reference forward (ref_loss; why: see ref_model). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "model/model.h"
#include "testutil.h"

static model g_model;

/* Forward of one sequence with every position's logits; kv_f16 emulates llama.cpp's F16 KV cache. */
static void logits_of(const int32_t *tokens, int T, const lora_adapter *lora, float *logits, int kv_f16) {
    acts s;
    acts_init(&s, &g_model.cfg, 1, T, lora ? lora->r : 0);
    s.kv_f16 = kv_f16;
    model_forward(&g_model, lora, &s, tokens, NULL, 1, T, NULL, logits);
    acts_free(&s);
}

static void test_llamacpp_reference(void) {
    /* ../shared/README.md: llama.cpp on "Once upon a time" (BOS added) */
    int32_t ids[16];
    const char *text = "Once upon a time";
    int n = tokenizer_encode(&g_model.tok, text, strlen(text), 1, 1, ids, 16);
    int32_t want[5] = {1, 403, 407, 261, 378};
    CHECK(n == 5 && memcmp(ids, want, sizeof want) == 0, "tokens of '%s' differ from llama.cpp's", text);
    int V = g_model.cfg.vocab_size;
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
    int V = g_model.cfg.vocab_size, T = 7;
    int32_t a[7] = {1, 403, 407, 261, 378, 432, 383}, b[4] = {1, 300, 301, 302};
    int32_t batch[14];
    memcpy(batch, a, sizeof a);
    memcpy(batch + 7, b, sizeof b);
    batch[11] = batch[12] = batch[13] = 2;
    float *la = slim_malloc(sizeof(float) * T * V), *lb = slim_malloc(sizeof(float) * 4 * V),
          *lab = slim_malloc(sizeof(float) * 2 * T * V);
    logits_of(a, 7, NULL, la, 0);
    logits_of(b, 4, NULL, lb, 0);
    acts s;
    acts_init(&s, &g_model.cfg, 2, T, 0);
    model_forward(&g_model, NULL, &s, batch, NULL, 2, T, NULL, lab);
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
    int V = g_model.cfg.vocab_size, T = 12;
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
    acts s;
    acts_init(&s, &g_model.cfg, 1, T, 0);
    model_forward_packed(&g_model, NULL, &s, row, NULL, pos, seg, 1, T, NULL, lp);
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

/* A rank-4 adapter on every projection of g_model (initialised with seed init_seed) whose zero
 * parameters (B) are drawn from N(0, 0.02^2) with rng seeded by seed, so that it changes the outputs;
 * rng is left for the caller's further draws. */
static void random_lora(lora_adapter *lora, slim_rng *rng, uint64_t init_seed, uint64_t seed) {
    int targets_on[LORA_N_TARGETS] = {1, 1, 1, 1, 1, 1, 1};
    lora_init(lora, &g_model.cfg, 4, 8.0f, targets_on, init_seed);
    slim_rng_seed(rng, seed);
    for (size_t i = 0; i < lora->n_params; i++)
        if (lora->params[i] == 0.0f) lora->params[i] = 0.02f * slim_rng_normal(rng);
}

/* More target rows than HEAD_CHUNK: the chunked head must give the gradient of the whole batch, equal
 * to the sum of the gradients of its rows taken one at a time (each within one chunk). */
static void test_head_chunks(void) {
    const int B = 2, T = 200; /* 2 x 199 targets > HEAD_CHUNK */
    lora_adapter lora;
    slim_rng rng;
    random_lora(&lora, &rng, 5, 9);
    int32_t *tok = slim_malloc(sizeof(int32_t) * B * T), *tgt = slim_malloc(sizeof(int32_t) * B * T);
    for (int i = 0; i < B * T; i++) tok[i] = 3 + (int32_t)(slim_rng_u32(&rng) % 500);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) tgt[b * T + t] = t + 1 < T ? tok[b * T + t + 1] : -1;
    float *g_all = slim_calloc(lora.n_params, sizeof(float)), *g_rows = slim_calloc(lora.n_params, sizeof(float));
    acts s;
    acts_init(&s, &g_model.cfg, B, T, lora.r);
    double l_all = model_forward(&g_model, &lora, &s, tok, tgt, B, T, NULL, NULL);
    CHECK(s.n_sel > HEAD_CHUNK, "the batch must span several head chunks (%d targets)", s.n_sel);
    model_backward(&g_model, &lora, &s, g_all, 1.0f);
    double l_rows = 0.0;
    for (int b = 0; b < B; b++) {
        l_rows += model_forward(&g_model, &lora, &s, tok + b * T, tgt + b * T, 1, T, NULL, NULL);
        model_backward(&g_model, &lora, &s, g_rows, 1.0f);
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

/* Gradient checkpointing: forward + backward with an ACTS_CHECKPOINT acts gives the ACTS_TRAIN loss
 * and LoRA gradients bit for bit (every projection adapted, plain and packed rows, two attention
 * tiles), twice in a row on the same acts (the slot is reused); its activations do not grow by a
 * layer's slot per layer; for the 1B shape at 4 x 512 the figures are printed. */
static void test_checkpointed_acts(void) {
    const int B = 2, T = 90, N = B * T;
    lora_adapter lora;
    slim_rng rng;
    random_lora(&lora, &rng, 8, 23);
    int32_t *tok = slim_malloc(sizeof(int32_t) * N * 4), *tgt = tok + N, *pos = tok + 2 * N, *seg = tok + 3 * N;
    for (int i = 0; i < N; i++) tok[i] = 3 + (int32_t)(slim_rng_u32(&rng) % 500);
    for (int n = 0; n < N; n++) {
        int t = n % T, start = t < 41 ? 0 : 41;
        tgt[n] = t + 1 < T && t + 1 != 41 && t > 10 ? tok[n + 1] : -1;
        pos[n] = t - start;
        seg[n] = start;
    }
    float *g_full = slim_calloc(lora.n_params * 2, sizeof(float)), *g_ckpt = g_full + lora.n_params;
    for (int packed = 0; packed < 2; packed++) {
        acts s, sc;
        acts_init(&s, &g_model.cfg, B, T, lora.r);
        acts_init_mode(&sc, &g_model.cfg, B, T, lora.r, ACTS_CHECKPOINT);
        memset(g_full, 0, sizeof(float) * lora.n_params * 2);
        double l1 = 0, l2 = 0;
        for (int rep = 0; rep < 2; rep++) {
            l1 = model_forward_packed(&g_model, &lora, &s, tok, tgt, packed ? pos : NULL, packed ? seg : NULL, B, T,
                                      NULL, NULL);
            model_backward(&g_model, &lora, &s, g_full, 0.37f);
            l2 = model_forward_packed(&g_model, &lora, &sc, tok, tgt, packed ? pos : NULL, packed ? seg : NULL, B, T,
                                      NULL, NULL);
            model_backward(&g_model, &lora, &sc, g_ckpt, 0.37f);
        }
        int same = l1 == l2 && memcmp(g_full, g_ckpt, sizeof(float) * lora.n_params) == 0;
        double gn = 0;
        for (size_t i = 0; i < lora.n_params; i++) gn += (double)g_full[i] * g_full[i];
        printf("checkpointed acts%s: loss %.6f vs %.6f, |grad| %.6g, gradients %s\n", packed ? " (packed)" : "", l2,
               l1, sqrt(gn), same ? "bit-identical" : "DIFFERENT");
        CHECK(same && gn > 0, "checkpointed gradients differ from the stored activations'%s",
              packed ? " (packed rows)" : "");
        acts_free(&s);
        acts_free(&sc);
    }
    model_config one = g_model.cfg, many = g_model.cfg;
    one.n_layers = 1;
    many.n_layers = 41;
    size_t x_bytes = (size_t)40 * B * T * g_model.cfg.dim * sizeof(float);
    CHECK(acts_mode_bytes(&many, B, T, 4, ACTS_CHECKPOINT) - acts_mode_bytes(&one, B, T, 4, ACTS_CHECKPOINT) == x_bytes,
          "checkpointed acts grow by more than the residual stream per layer");
    model_config c = {.dim = 2048, .n_layers = 16, .n_heads = 32, .n_kv_heads = 8, .head_dim = 64, .ffn_dim = 8192,
                      .vocab_size = 128256};
    size_t full = acts_bytes(&c, 4, 512, 8), ck = acts_mode_bytes(&c, 4, 512, 8, ACTS_CHECKPOINT);
    printf("1B shape, 4 x 512, r=8: training activations %.1f MiB, checkpointed %.1f MiB\n", full / 1048576.0,
           ck / 1048576.0);
    CHECK(ck * 3 < full, "checkpointed acts %zu bytes, not under a third of %zu", ck, full);
    free(tok);
    free(g_full);
    lora_free(&lora);
}

/* Scoring with an inference acts (one layer's activations, no backward buffers) gives the training
 * acts' log-probabilities and logits bit for bit, plain and packed, with an adapter; the inference
 * acts' size does not grow with the layer count; and for a Llama-3.2-1B shape (dim 2048, 16 layers,
 * 32/8 heads, FFN 8192, vocab 128256) at 8 x 256 the figures are printed and inference needs less
 * than a tenth of training. */
static void test_inference_acts(void) {
    const int B = 3, T = 90, N = B * T, V = g_model.cfg.vocab_size; /* T > ATT_TILE: two attention tiles */
    lora_adapter lora;
    slim_rng rng;
    random_lora(&lora, &rng, 7, 11);
    int32_t *tok = slim_malloc(sizeof(int32_t) * N * 4), *tgt = tok + N, *pos = tok + 2 * N, *seg = tok + 3 * N;
    for (int i = 0; i < N; i++) tok[i] = 3 + (int32_t)(slim_rng_u32(&rng) % 500);
    for (int n = 0; n < N; n++) {
        int t = n % T, start = t < 37 ? 0 : 37; /* two examples a row */
        tgt[n] = t + 1 < T && t + 1 != 37 && t > 20 ? tok[n + 1] : -1;
        pos[n] = t - start;
        seg[n] = start;
    }
    float *lp_train = slim_malloc(sizeof(float) * N * 2), *lp_inf = lp_train + N;
    float *lg_train = slim_malloc(sizeof(float) * (size_t)N * V * 2), *lg_inf = lg_train + (size_t)N * V;
    for (int packed = 0; packed < 2; packed++) {
        acts s, si;
        acts_init(&s, &g_model.cfg, B, T, lora.r);
        s.inference = 1;
        acts_init_inference(&si, &g_model.cfg, B, T, lora.r);
        CHECK(si.inference && si.one_layer && !si.dx && !si.dq && !si.dlogits && !si.dlora_u,
              "acts_init_inference allocated backward buffers");
        double l1 = model_forward_packed(&g_model, &lora, &s, tok, tgt, packed ? pos : NULL, packed ? seg : NULL, B, T,
                                         lp_train, lg_train);
        double l2 = model_forward_packed(&g_model, &lora, &si, tok, tgt, packed ? pos : NULL, packed ? seg : NULL, B,
                                         T, lp_inf, lg_inf);
        int same = l1 == l2 && memcmp(lp_train, lp_inf, sizeof(float) * N) == 0 &&
                   memcmp(lg_train, lg_inf, sizeof(float) * (size_t)N * V) == 0;
        printf("inference acts%s: loss %.6f vs %.6f (training acts), %s\n", packed ? " (packed)" : "", l2, l1,
               same ? "bit-identical" : "DIFFERENT");
        CHECK(same, "inference acts scores differ from the training acts'%s", packed ? " (packed rows)" : "");
        acts_free(&s);
        acts_free(&si);
    }
    model_config one = g_model.cfg, many = g_model.cfg;
    one.n_layers = 1;
    many.n_layers = 40;
    CHECK(acts_inference_bytes(&one, B, T, 4) == acts_inference_bytes(&many, B, T, 4),
          "inference acts grow with the layer count");
    model_config c = {.dim = 2048, .n_layers = 16, .n_heads = 32, .n_kv_heads = 8, .head_dim = 64, .ffn_dim = 8192,
                      .vocab_size = 128256};
    size_t tr = acts_bytes(&c, 8, 256, 8), inf = acts_inference_bytes(&c, 8, 256, 8);
    printf("1B shape, 8 x 256, r=8: training activations %.1f MiB, inference %.1f MiB\n", tr / 1048576.0,
           inf / 1048576.0);
    CHECK(inf * 10 < tr, "inference acts %zu bytes, not under a tenth of training's %zu", inf, tr);
    free(tok);
    free(lp_train);
    free(lg_train);
    lora_free(&lora);
}

/* Summed loss of the adapted model on a fixed batch. */
static double loss_of(const lora_adapter *lora, acts *s, const int32_t *tokens, const int32_t *targets, int B, int T) {
    return model_forward(&g_model, lora, s, tokens, targets, B, T, NULL, NULL);
}

/* A copy of m whose every weight matrix is F32 = the dequantized storage of m: the on-the-fly
 * dequantizing products must give the same results as plain sgemm on these. */
static void model_dequantized_copy(const model *m, model *f, float **bufs, int *n_bufs) {
    *f = *m;
    f->layers = slim_malloc(sizeof(model_layer) * m->cfg.n_layers);
    memcpy(f->layers, m->layers, sizeof(model_layer) * m->cfg.n_layers);
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
    int V = g_model.cfg.vocab_size;
    float *ref = slim_malloc(sizeof(float) * 5 * V), *got = slim_malloc(sizeof(float) * 5 * V),
          *deq = slim_malloc(sizeof(float) * 5 * V);
    logits_of(ids, 5, NULL, ref, 0);
    /* sanity bounds on max |logit - F32 logit| per storage type (stories260K's logits reach ~20; its
     * dim-64 rows make block quantization relatively coarse): measured f16 0.011, bf16 0.067, q8_0 0.21,
     * nf4 4.3. The exact check is the next one: on-the-fly dequantization == a dequantized copy. */
    struct { int quant; float tol; int same_top; } cases[] = {
        {QUANT_F16, 0.05f, 1}, {QUANT_BF16, 0.25f, 1}, {QUANT_Q8_0, 0.5f, 1}, {QUANT_NF4, 8.0f, 0}, {QUANT_KEEP, 0.0f, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        model q, f;
        if (model_load_quant(&q, path, cases[c].quant) != 0) {
            CHECK(0, "model_load_quant %s: %s", base_quant_names[cases[c].quant], slim_last_error());
            continue;
        }
        acts s;
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

/* ---------------------------------------------------------------- float64 reference forward
 *
 * The LoRA gradient check takes its finite differences from this independent forward in double
 * precision, not from the float32 model_forward: differences of a float32 loss divide its rounding
 * noise (which depends on the CPU's BLAS kernel and the thread count) by the step, and on some
 * AVX-512 CPUs that noise alone pushed a correct gradient past the tolerance. In double the noise is
 * ~1e-16 |loss| / h ~ 1e-12 and Richardson-extrapolated central differences at h = 1e-3, 5e-4 leave a
 * truncation error ~h^4 ~ 1e-12, so what remains is the float32 error of the analytic gradient
 * itself (measured ~1e-6 relative). The reference reads the same weights (dequantized from whatever
 * base.quant stores: the on-the-fly dequantizing products equal a dequantized copy exactly, see
 * test_quantized_bases) and the LoRA parameters in double, so a step is taken exactly. */
typedef struct ref_model {
    const model_config *c;
    double *embd, *out, *out_norm;      /* [vocab,dim], [vocab,dim], [dim] */
    double **w;                         /* [n_layers * LORA_N_TARGETS] weight matrices [out,in] */
    double **bias;                      /* [n_layers * 3] q/k/v biases [out] or NULL */
    double **norm1, **norm2;            /* [n_layers] attention / FFN RMSNorm weights [dim] */
} ref_model;

static double *ref_of_floats(const float *p, long n) {
    double *d = slim_malloc(sizeof(double) * n);
    for (long i = 0; i < n; i++) d[i] = p[i];
    return d;
}

static double *ref_of_matrix(const qmatrix *W) {
    float *buf = slim_malloc(sizeof(float) * W->rows * W->cols);
    qmatrix_dequantize_rows(W, 0, W->rows, buf);
    double *d = ref_of_floats(buf, (long)(W->rows * W->cols));
    free(buf);
    return d;
}

/* Copies m's weights (dequantized) into rm in double. */
static void ref_model_init(ref_model *rm, const model *m) {
    const model_config *c = &m->cfg;
    int L = c->n_layers;
    rm->c = c;
    rm->embd = ref_of_matrix(&m->tok_embd);
    rm->out = ref_of_matrix(&m->output);
    rm->out_norm = ref_of_floats(m->output_norm, c->dim);
    rm->w = slim_calloc((size_t)L * LORA_N_TARGETS, sizeof(double *));
    rm->bias = slim_calloc((size_t)L * 3, sizeof(double *));
    rm->norm1 = slim_calloc(L, sizeof(double *));
    rm->norm2 = slim_calloc(L, sizeof(double *));
    for (int l = 0; l < L; l++) {
        for (int t = 0; t < LORA_N_TARGETS; t++) rm->w[l * LORA_N_TARGETS + t] = ref_of_matrix(&m->layers[l].w[t]);
        for (int t = 0; t < 3; t++) {
            int in, out;
            model_target_shape(c, t, &in, &out);
            if (m->layers[l].bias[t]) rm->bias[l * 3 + t] = ref_of_floats(m->layers[l].bias[t], out);
        }
        rm->norm1[l] = ref_of_floats(m->layers[l].attn_norm, c->dim);
        rm->norm2[l] = ref_of_floats(m->layers[l].ffn_norm, c->dim);
    }
}

static void ref_model_free(ref_model *rm) {
    int L = rm->c->n_layers;
    for (int i = 0; i < L * LORA_N_TARGETS; i++) free(rm->w[i]);
    for (int i = 0; i < L * 3; i++) free(rm->bias[i]);
    for (int l = 0; l < L; l++) {
        free(rm->norm1[l]);
        free(rm->norm2[l]);
    }
    free(rm->w); free(rm->bias); free(rm->norm1); free(rm->norm2);
    free(rm->embd); free(rm->out); free(rm->out_norm);
}

/* y [T,d] = x [T,d] * rstd(x) * w, in place allowed */
static void ref_rmsnorm(double *y, const double *x, const double *w, int T, int d, double eps) {
    for (int t = 0; t < T; t++) {
        double ss = 0.0;
        for (int i = 0; i < d; i++) ss += x[t * d + i] * x[t * d + i];
        double rs = 1.0 / sqrt(ss / d + eps);
        for (int i = 0; i < d; i++) y[t * d + i] = x[t * d + i] * rs * w[i];
    }
}

/* y [T,out] = x W^T + bias + scale * (x A^T) B^T for projection t of layer l; lp: the LoRA parameters
 * in double, laid out as lora->params. */
static void ref_proj(double *y, const double *x, const ref_model *rm, const lora_adapter *lora, const double *lp, int l,
                     int t, int T) {
    int in, out, r = lora->r;
    model_target_shape(rm->c, t, &in, &out);
    const double *W = rm->w[l * LORA_N_TARGETS + t], *bias = t < 3 ? rm->bias[l * 3 + t] : NULL;
    const double *A = lp + lora_offset_A(lora, l, t), *Bm = lp + lora_offset_B(lora, l, t);
    double u[64];
    for (int n = 0; n < T; n++) {
        const double *xr = x + (long)n * in;
        for (int o = 0; o < out; o++) {
            double s = bias ? bias[o] : 0.0;
            for (int i = 0; i < in; i++) s += W[(long)o * in + i] * xr[i];
            y[(long)n * out + o] = s;
        }
        if (!lora->enabled[t]) continue;
        for (int j = 0; j < r && j < 64; j++) {
            double s = 0.0;
            for (int i = 0; i < in; i++) s += A[(long)j * in + i] * xr[i];
            u[j] = s;
        }
        for (int o = 0; o < out; o++) {
            double s = 0.0;
            for (int j = 0; j < r; j++) s += Bm[(long)o * r + j] * u[j];
            y[(long)n * out + o] += (double)lora->scale * s;
        }
    }
}

/* RoPE of x [T, nh*hd] at positions 0..T-1 (llama.cpp's normal adjacent pairs, or NEOX halves) */
static void ref_rope(double *x, int T, int nh, const model_config *c) {
    int hd = c->head_dim;
    for (int t = 0; t < T; t++)
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < hd / 2; i++) {
                double ang = t * pow((double)c->rope_theta, -2.0 * i / hd) / (c->rope_freqs ? c->rope_freqs[i] : 1.0);
                long o0 = (long)t * nh * hd + h * hd + (c->rope_neox ? i : 2 * i), o1 = o0 + (c->rope_neox ? hd / 2 : 1);
                double a = x[o0], b = x[o1];
                x[o0] = a * cos(ang) - b * sin(ang);
                x[o1] = a * sin(ang) + b * cos(ang);
            }
}

/* Summed cross-entropy over the targets of tokens [B,T] (rows right-padded, positions 0..T-1), as
 * model_forward computes it, in double; lp: the LoRA parameters (layout of lora->params). */
static double ref_loss(const ref_model *rm, const lora_adapter *lora, const double *lp, const int32_t *tokens,
                       const int32_t *targets, int B, int T) {
    const model_config *c = rm->c;
    const int d = c->dim, f = c->ffn_dim, H = c->n_heads, Hkv = c->n_kv_heads, hd = c->head_dim, V = c->vocab_size;
    const int qd = H * hd, kvd = Hkv * hd, group = H / Hkv;
    double *x = slim_malloc(sizeof(double) * T * d), *xn = slim_malloc(sizeof(double) * T * d),
           *y = slim_malloc(sizeof(double) * T * (d > f ? d : f)), *q = slim_malloc(sizeof(double) * T * qd),
           *k = slim_malloc(sizeof(double) * T * kvd), *v = slim_malloc(sizeof(double) * T * kvd),
           *ay = slim_malloc(sizeof(double) * T * qd), *g = slim_malloc(sizeof(double) * T * f),
           *u = slim_malloc(sizeof(double) * T * f), *p = slim_malloc(sizeof(double) * T),
           *lg = slim_malloc(sizeof(double) * V);
    double loss = 0.0;
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) memcpy(x + (long)t * d, rm->embd + (long)tokens[b * T + t] * d, sizeof(double) * d);
        for (int l = 0; l < c->n_layers; l++) {
            ref_rmsnorm(xn, x, rm->norm1[l], T, d, c->norm_eps);
            ref_proj(q, xn, rm, lora, lp, l, LORA_Q, T);
            ref_proj(k, xn, rm, lora, lp, l, LORA_K, T);
            ref_proj(v, xn, rm, lora, lp, l, LORA_V, T);
            ref_rope(q, T, H, c);
            ref_rope(k, T, Hkv, c);
            for (int h = 0; h < H; h++)
                for (int i = 0; i < T; i++) {
                    const double *qi = q + (long)i * qd + h * hd;
                    double mx = -INFINITY, sum = 0.0;
                    for (int j = 0; j <= i; j++) {
                        double s = 0.0;
                        for (int e = 0; e < hd; e++) s += qi[e] * k[(long)j * kvd + (h / group) * hd + e];
                        p[j] = s / sqrt((double)hd);
                        mx = fmax(mx, p[j]);
                    }
                    for (int j = 0; j <= i; j++) sum += p[j] = exp(p[j] - mx);
                    for (int e = 0; e < hd; e++) {
                        double o = 0.0;
                        for (int j = 0; j <= i; j++) o += p[j] / sum * v[(long)j * kvd + (h / group) * hd + e];
                        ay[(long)i * qd + h * hd + e] = o;
                    }
                }
            ref_proj(y, ay, rm, lora, lp, l, LORA_O, T);
            for (long i = 0; i < (long)T * d; i++) x[i] += y[i];
            ref_rmsnorm(xn, x, rm->norm2[l], T, d, c->norm_eps);
            ref_proj(g, xn, rm, lora, lp, l, LORA_GATE, T);
            ref_proj(u, xn, rm, lora, lp, l, LORA_UP, T);
            for (long i = 0; i < (long)T * f; i++) g[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
            ref_proj(y, g, rm, lora, lp, l, LORA_DOWN, T);
            for (long i = 0; i < (long)T * d; i++) x[i] += y[i];
        }
        ref_rmsnorm(xn, x, rm->out_norm, T, d, c->norm_eps);
        for (int t = 0; t < T; t++) {
            int tgt = targets[b * T + t];
            if (tgt < 0) continue;
            double mx = -INFINITY, sum = 0.0;
            for (int j = 0; j < V; j++) {
                double s = 0.0;
                for (int i = 0; i < d; i++) s += rm->out[(long)j * d + i] * xn[(long)t * d + i];
                lg[j] = s;
                mx = fmax(mx, s);
            }
            for (int j = 0; j < V; j++) sum += exp(lg[j] - mx);
            loss += mx + log(sum) - lg[tgt];
        }
    }
    free(x); free(xn); free(y); free(q); free(k); free(v); free(ay); free(g); free(u); free(p); free(lg);
    return loss;
}

/* Tolerance of the LoRA gradient check: |analytic_i - numeric_i| <= GC_ATOL * max_j |numeric_j| +
 * GC_RTOL * |numeric_i|, with numeric from the double reference, so only the float32 error of the
 * analytic gradient counts: worst ratio 0.033 over OPENBLAS_CORETYPE unset / Cooperlake / SkylakeX /
 * Haswell / Zen / Sandybridge / Prescott x OMP_NUM_THREADS 1 and 2 on an AVX-512 EPYC (30x margin).
 * A 1% error on the largest element scores ~10, on the median one ~5 (both checked below). */
#define GC_ATOL 2e-5
#define GC_RTOL 1e-3

/* The gradient check: compares the analytic gradient an[idx[k]] with numeric num[k] for k < n.
 * Returns 1 when every element is within the tolerance above, else 0; *worst receives the largest
 * |error| / allowance (<= 1 passes) and *kworst its k. */
static int grad_check(const float *an, const size_t *idx, const double *num, int n, double *worst, int *kworst) {
    double big = 0.0;
    for (int k = 0; k < n; k++) big = fmax(big, fabs(num[k]));
    *worst = 0.0;
    *kworst = 0;
    for (int k = 0; k < n; k++) {
        double e = fabs(an[idx[k]] - num[k]) / (GC_ATOL * big + GC_RTOL * fabs(num[k]));
        if (!(e <= *worst)) { *worst = isnan(e) ? INFINITY : e; *kworst = k; }
    }
    return *worst <= 1.0;
}

static void test_lora_gradients(const char *path, int quant) {
    model qm, *saved = NULL;
    if (quant != QUANT_F32) {
        /* the same check on a quantized base: the backward dequantizes on the fly too */
        if (model_load_quant(&qm, path, quant) != 0) { CHECK(0, "load %s: %s", base_quant_names[quant], slim_last_error()); return; }
        saved = slim_malloc(sizeof g_model);
        *saved = g_model;
        g_model = qm;
    }
    printf("LoRA gradients on a %s base\n", base_quant_names[quant]);
    int targets_on[LORA_N_TARGETS] = {1, 1, 1, 1, 1, 1, 1};
    lora_adapter lora;
    lora_init(&lora, &g_model.cfg, 4, 8.0f, targets_on, 42);
    slim_rng rng;
    slim_rng_seed(&rng, 7);
    /* B starts at zero (then dA = 0): give it values so every path is exercised */
    for (int l = 0; l < lora.n_layers; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            int in, out;
            model_target_shape(&g_model.cfg, t, &in, &out);
            float *Bm = lora.B[l * LORA_N_TARGETS + t];
            for (int i = 0; i < out * lora.r; i++) Bm[i] = 0.05f * slim_rng_normal(&rng);
        }
    const int B = 2, T = 6;
    int32_t tokens[12] = {1, 403, 407, 261, 378, 432, 1, 300, 301, 302, 2, 2};
    /* loss on the last three real positions of row 0, two of row 1, none on padding */
    int32_t targets[12] = {-1, -1, -1, 378, 432, 383, -1, 301, 302, 2, -1, -1};
    acts s;
    acts_init(&s, &g_model.cfg, B, T, lora.r);
    float *grad = slim_calloc(lora.n_params, sizeof(float));
    loss_of(&lora, &s, tokens, targets, B, T);
    CHECK(s.n_sel == 6, "selected %d target rows, expected 6", s.n_sel);
    model_backward(&g_model, &lora, &s, grad, 1.0f);
    /* finite differences of the double reference (see ref_model) on a sample of parameters from every
     * A and B of every layer */
    ref_model rm;
    ref_model_init(&rm, &g_model);
    double *lp = ref_of_floats(lora.params, (long)lora.n_params);
    double l_float = loss_of(&lora, &s, tokens, targets, B, T), l_ref = ref_loss(&rm, &lora, lp, tokens, targets, B, T);
    printf("loss: float32 forward %.9g, double reference %.9g (relative difference %.1e)\n", l_float, l_ref,
           fabs(l_float - l_ref) / fabs(l_ref));
    CHECK(fabs(l_float - l_ref) <= 1e-5 * fabs(l_ref), "float forward loss %.9g != double reference %.9g: the "
          "reference is not the same model, its finite differences prove nothing", l_float, l_ref);
    enum { N_FD = LORA_N_TARGETS * 2 * 3 * 64 };
    size_t idx[N_FD] = {0};
    double num[N_FD] = {0};
    int n_checked = 0;
    const double h = 1e-3;
    for (int l = 0; l < lora.n_layers; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++)
            for (int ab = 0; ab < 2; ab++) {
                int in, out;
                model_target_shape(&g_model.cfg, t, &in, &out);
                size_t off = ab ? lora_offset_B(&lora, l, t) : lora_offset_A(&lora, l, t);
                size_t n = (size_t)lora.r * (ab ? out : in);
                for (int k = 0; k < 3 && n_checked < N_FD; k++) {
                    size_t i = off + slim_rng_u32(&rng) % n;
                    /* Richardson extrapolation of central differences at h and h/2 (error ~h^4) */
                    double keep = lp[i], d[2];
                    for (int j = 0; j < 2; j++) {
                        double hj = j ? h / 2 : h;
                        lp[i] = keep + hj;
                        double lpl = ref_loss(&rm, &lora, lp, tokens, targets, B, T);
                        lp[i] = keep - hj;
                        double lmi = ref_loss(&rm, &lora, lp, tokens, targets, B, T);
                        d[j] = (lpl - lmi) / (2.0 * hj);
                    }
                    lp[i] = keep;
                    idx[n_checked] = i;
                    num[n_checked] = (4.0 * d[1] - d[0]) / 3.0;
                    if (getenv("SLIM_VERBOSE"))
                        printf("  layer %d %s %c [%zu]: analytic %.6e numeric %.6e\n", l, lora_target_names[t],
                               ab ? 'B' : 'A', i - off, grad[i], num[n_checked]);
                    n_checked++;
                }
            }
    double worst, num2 = 0.0, err2 = 0.0;
    int kw;
    int ok = grad_check(grad, idx, num, n_checked, &worst, &kw);
    for (int k = 0; k < n_checked; k++) {
        num2 += num[k] * num[k];
        err2 += (num[k] - grad[idx[k]]) * (num[k] - grad[idx[k]]);
    }
    double rel = sqrt(err2 / (num2 + 1e-30));
    printf("lora gradients: %d parameters checked against the double reference, worst |error| / (%.0e max|numeric| + "
           "%.0e |numeric|) = %.3f (parameter %zu: analytic %.6e, numeric %.6e), relative L2 error %.2e\n",
           n_checked, GC_ATOL, GC_RTOL, worst, idx[kw], grad[idx[kw]], num[kw], rel);
    CHECK(ok, "a LoRA gradient misses the tolerance by a factor %.2f at parameter %zu (analytic %.6e, numeric %.6e)",
          worst, idx[kw], grad[idx[kw]], num[kw]);
    CHECK(rel < 1e-4, "LoRA gradient relative L2 error %.3e", rel);
    CHECK(num2 > 1e-8, "finite-difference gradients are all ~zero: the check is vacuous");
    /* self-test: the same check must reject one element off by 1%: the largest (where the tolerance
     * is loosest against the gradient's scale) and one of median magnitude */
    int *order = slim_malloc(sizeof(int) * n_checked);
    for (int k = 0; k < n_checked; k++) order[k] = k;
    for (int a = 1; a < n_checked; a++) /* insertion sort by |numeric| */
        for (int b = a; b > 0 && fabs(num[order[b - 1]]) > fabs(num[order[b]]); b--) {
            int tmp = order[b];
            order[b] = order[b - 1];
            order[b - 1] = tmp;
        }
    float *bad = slim_malloc(sizeof(float) * lora.n_params);
    const int picks[2] = {order[n_checked - 1], order[n_checked / 2]};
    for (int c = 0; c < 2; c++) {
        int kb = picks[c];
        memcpy(bad, grad, sizeof(float) * lora.n_params);
        bad[idx[kb]] *= 1.01f;
        double worst_bad;
        int kw_bad;
        CHECK(!grad_check(bad, idx, num, n_checked, &worst_bad, &kw_bad) && kw_bad == kb,
              "self-test: a 1%% error on parameter %zu (|numeric| %.3g) was not detected (ratio %.3g)", idx[kb],
              fabs(num[kb]), worst_bad);
        printf("self-test: a 1%% error on the %s element (parameter %zu, |numeric| %.3g) is rejected (ratio %.2f)\n",
               c ? "median" : "largest", idx[kb], fabs(num[kb]), worst_bad);
    }
    free(order);
    free(bad);
    free(lp);
    ref_model_free(&rm);
    acts_free(&s);
    free(grad);
    lora_free(&lora);
    if (saved) {
        model_free(&g_model);
        g_model = *saved;
        free(saved);
    }
}

int main(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K.gguf", slim_shared_dir());
    if (model_load(&g_model, path) != 0) {
        fprintf(stderr, "FAIL: cannot load the shared fixture (set SLIM_SHARED): %s\n", slim_last_error());
        return 1;
    }
    test_llamacpp_reference();
    test_padding_and_batching();
    test_packed_rows();
    test_head_chunks();
    test_inference_acts();
    test_checkpointed_acts();
    test_lora_gradients(path, QUANT_F32);
    test_lora_gradients(path, QUANT_Q8_0);
    test_lora_gradients(path, QUANT_NF4);
    test_quantized_bases(path);
    model_free(&g_model);
    return tu_finish("test_model");
}
