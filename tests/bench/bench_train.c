/* bench_train.c — training throughput of slimtune on a stories15M-shaped model, against the machine's
 * own sgemm peak measured in the same run. Built and run by scripts/bench (`make bench`).
 *
 * usage: bench_train MODEL.gguf [--json PATH] [--batch B] [--seq T] [--warmup N] [--steps N]
 *                    [--threads N] [--seed S] [--rank R] [--peak-size N] [--peak-reps N] [--no-peak1]
 *                    [--quant f32|f16|bf16|q8_0|nf4|keep] [--checkpointing none|layers]
 *
 * --checkpointing layers: gradient checkpointing (acts.h ACTS_CHECKPOINT); the run also prints its peak
 * RSS (getrusage) beside the memory plan of lib/model/plan.h for the same run.
 * --quant: how the frozen base is stored (config base.quant); the run reports the base's bytes per
 * parameter as stored and the growth of the resident set while loading it.
 * 1. sgemm peak: cblas_sgemm on square F32 matrices (C = A B, n = --peak-size, default 2048), best of
 *    --peak-reps repetitions, with all threads and (unless --no-peak1) with one thread -> GFLOP/s.
 * 2. training: LoRA r=8 alpha=16 (--rank R: alpha 2R) on all seven projections, B=4 x T=256 random (seeded) token ids with a
 *    loss on every token (target = next token; each row is drawn T+1 long so the last position has one
 *    too). One optimizer step is exactly what train/train.c does with grad_accum 1: zero the gradients,
 *    model_forward, model_backward with loss_scale 1/targets, grad_clip_norm, adamw_step (train defaults
 *    from config_defaults). --warmup untimed steps, then --steps timed ones.
 *
 * FLOPs per optimizer step, counted analytically (one multiply-add = 2 FLOPs), with N = B*T rows, M = N
 * rows carrying a target, D = dim, V = vocab, H heads of hd, L layers, r the LoRA rank and, for each of the
 * seven projections p of a layer, (in_p, out_p) its input and output features:
 *   projections (frozen base, no dW):  forward 2*N*in*out + backward dX 2*N*in*out   per layer and p
 *   LoRA:  forward  x A^T 2*N*in*r, u B^T 2*N*r*out;
 *          backward du = dy B 2*N*out*r, dB 2*out*r*N, dA 2*r*in*N, dX += du A 2*N*r*in
 *          -> 6*N*r*(in+out)                                                      per layer and p
 *   attention (as executed by the tiled kernel, ops.h: query tiles of ATT_TILE rows meet only the key
 *          tiles up to the diagonal, so P = sum over query tiles of rows x keys-up-to-the-tile's-end
 *          (query, key) pairs, about T*T/2): forward QK^T and PV 2 * 2*P*hd; backward recomputes QK^T,
 *          then dP = dO V^T, dV = P^T dO, dQ = dS K, dK = dS^T Q: 5 * 2*P*hd; times B*H  per layer
 *   output head: forward 2*M*D*V, backward dX 2*M*D*V (the head is frozen)
 *   element-wise work (norms, RoPE, softmax, SwiGLU, cross-entropy, AdamW) is ignored.
 * Layer 0's projections also compute dX although nothing below needs it; that work is executed, so it
 * is counted. Achieved GFLOP/s = FLOPs per step / median step time; fraction of peak = achieved / the
 * all-thread sgemm peak.
 *
 * Time breakdown: this program defines cblas_sgemm itself, so every call from libslim.a lands here first;
 * it forwards to OpenBLAS's (dlsym RTLD_NEXT) and, while a timed step runs, adds the call's wall time to
 * a bucket chosen by shape: a dimension equal to the vocabulary -> head; a dimension equal to r -> LoRA;
 * otherwise -> projection. Calls made inside an OpenMP parallel region (omp_get_level() > 0) (attention, one call per
 * (sequence, head) per thread) go to the attention bucket as thread-seconds / threads. "other" is the
 * rest of the step (element-wise kernels, softmax in attention, memsets, optimizer).
 *
 * Output: a table on stdout and a JSON file (--json, default $BUILD/bench.json, else build/bench.json),
 * written atomically. Exit status 0, or 1 with a message when the model cannot be loaded or the loss is
 * not finite. */
#define _GNU_SOURCE
#include <cblas.h>
#include <dlfcn.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "config.h"
#include "model/model.h"
#include "model/plan.h"
#include "optim.h"

/* ---------------------------------------------------------------------------------------------- */
/* cblas_sgemm interposer: timing by bucket */

enum bench_bucket { BENCH_PROJ, BENCH_LORA, BENCH_HEAD, BENCH_ATTN, BENCH_N_BUCKETS };
static const char *const bench_bucket_names[BENCH_N_BUCKETS] = {"projections", "lora", "head", "attention_sgemm"};

typedef void (*bench_sgemm_fn)(const enum CBLAS_ORDER, const enum CBLAS_TRANSPOSE, const enum CBLAS_TRANSPOSE,
                               const blasint, const blasint, const blasint, const float, const float *,
                               const blasint, const float *, const blasint, const float, float *, const blasint);

static bench_sgemm_fn bench_real_sgemm;
static int bench_recording;        /* 1 while a timed step runs */
static int bench_vocab, bench_rank; /* shape keys of the head and LoRA buckets */
static double bench_bucket_sec[BENCH_N_BUCKETS];   /* wall seconds (serial calls) */
static long bench_bucket_calls[BENCH_N_BUCKETS];
#define BENCH_MAX_THREADS 256
static struct { double sec; long calls; char pad[48]; } bench_thread_attn[BENCH_MAX_THREADS];

/* Resolves OpenBLAS's cblas_sgemm behind this file's definition. Returns 0 or -1. */
static int bench_sgemm_init(void) {
    bench_real_sgemm = (bench_sgemm_fn)dlsym(RTLD_NEXT, "cblas_sgemm");
    if (!bench_real_sgemm) return slim_set_error("dlsym(RTLD_NEXT, cblas_sgemm) failed: %s", dlerror());
    return 0;
}

/* Same contract as OpenBLAS's cblas_sgemm (C = alpha op(A) op(B) + beta C); times the call into a bucket
 * while bench_recording is set. */
void cblas_sgemm(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE ta, const enum CBLAS_TRANSPOSE tb,
                 const blasint M, const blasint N, const blasint K, const float alpha, const float *A,
                 const blasint lda, const float *B, const blasint ldb, const float beta, float *C,
                 const blasint ldc) {
    if (!bench_recording) {
        bench_real_sgemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    double t0 = slim_time_sec();
    bench_real_sgemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    double dt = slim_time_sec() - t0;
    if (omp_get_level() > 0) {
        int tid = omp_get_thread_num();
        if (tid < BENCH_MAX_THREADS) { bench_thread_attn[tid].sec += dt; bench_thread_attn[tid].calls++; }
        return;
    }
    int b = BENCH_PROJ;
    if (M == bench_vocab || N == bench_vocab || K == bench_vocab) b = BENCH_HEAD;
    else if (M == bench_rank || N == bench_rank || K == bench_rank) b = BENCH_LORA;
    bench_bucket_sec[b] += dt;
    bench_bucket_calls[b]++;
}

/* ---------------------------------------------------------------------------------------------- */
/* sgemm peak */

/* Best GFLOP/s of C [n,n] = A [n,n] B [n,n] over reps calls with `threads` OpenMP threads. */
static double bench_sgemm_peak(int n, int reps, int threads) {
    size_t nn = (size_t)n * n;
    float *A = slim_malloc(nn * sizeof(float)), *B = slim_malloc(nn * sizeof(float)), *C = slim_calloc(nn, sizeof(float));
    slim_rng rng;
    slim_rng_seed(&rng, 7);
    for (size_t i = 0; i < nn; i++) { A[i] = slim_rng_uniform(&rng) - 0.5f; B[i] = slim_rng_uniform(&rng) - 0.5f; }
    int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) { /* the first call warms up (thread pool, page faults) */
        double t0 = slim_time_sec();
        bench_real_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
        double dt = slim_time_sec() - t0;
        if (r > 0 && dt < best) best = dt;
    }
    omp_set_num_threads(saved);
    openblas_set_num_threads(saved);
    free(A);
    free(B);
    free(C);
    return 2.0 * n * (double)n * n / best * 1e-9;
}

/* ---------------------------------------------------------------------------------------------- */
/* FLOP count (see the formula at the top of this file) */

typedef struct bench_flops {
    double proj, lora, attn, head, recompute, total;
} bench_flops;

/* ckpt: gradient checkpointing (ACTS_CHECKPOINT) reruns the forward of layers 0 .. L-2 without the down
 * projection (its LoRA x A^T only) inside the backward: counted in recompute. */
static bench_flops bench_count_flops(const model_config *c, const lora_adapter *lora, int B, int T, int M, int ckpt) {
    bench_flops f = {0};
    double N = (double)B * T;
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        int in, out;
        model_target_shape(c, t, &in, &out);
        f.proj += 4.0 * N * in * out;
        if (lora->enabled[t]) f.lora += 6.0 * N * lora->r * (in + out);
        if (t != LORA_DOWN) f.recompute += 2.0 * N * in * out;
        if (lora->enabled[t]) f.recompute += 2.0 * N * lora->r * (t == LORA_DOWN ? in : in + out);
    }
    f.proj *= c->n_layers;
    f.lora *= c->n_layers;
    double pairs = 0.0; /* (query, key) pairs the tiled kernel computes per sequence and head */
    for (int i0 = 0; i0 < T; i0 += ATT_TILE) {
        int ni = T - i0 < ATT_TILE ? T - i0 : ATT_TILE;
        pairs += (double)ni * (i0 + ni);
    }
    f.attn = 14.0 * B * c->n_heads * pairs * c->head_dim * c->n_layers;
    f.recompute = ckpt ? (f.recompute + 4.0 * B * c->n_heads * pairs * c->head_dim) * (c->n_layers - 1) : 0.0;
    f.head = 4.0 * M * (double)c->dim * c->vocab_size;
    f.total = f.proj + f.lora + f.attn + f.head + f.recompute;
    return f;
}

static int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* CPU model name from /proc/cpuinfo into buf ("unknown" when absent); quotes and backslashes dropped. */
static void bench_cpu_name(char *buf, size_t cap) {
    snprintf(buf, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        char *p = strchr(line, ':');
        if (!p) break;
        p++;
        while (*p == ' ' || *p == '\t') p++;
        size_t j = 0;
        for (; *p && *p != '\n' && j + 1 < cap; p++)
            if (*p != '"' && *p != '\\') buf[j++] = *p;
        buf[j] = 0;
        break;
    }
    fclose(f);
}

/* Writes s as a JSON string literal (quotes, backslashes and control bytes escaped). */
static void bench_json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

/* 1-minute load average from /proc/loadavg (-1 when unreadable): other processes on the machine
 * compete with the benchmark's threads and make its figures unreliable. */
static double bench_loadavg(void) {
    double la = -1.0;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &la) != 1) la = -1.0;
        fclose(f);
    }
    return la;
}

static void bench_usage(FILE *f) {
    fprintf(f, "usage: bench_train MODEL.gguf [--json PATH] [--batch B] [--seq T] [--warmup N] [--steps N]\n"
               "                   [--threads N] [--seed S] [--rank R] [--peak-size N] [--peak-reps N] [--no-peak1]\n"
               "                   [--quant f32|f16|bf16|q8_0|nf4|keep] [--checkpointing none|layers]\n");
}

/* Parses a positive int option value; exits with a message when it is not one. */
static int bench_parse_int(const char *opt, const char *s, int min) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end != 0 || v < min || v > 1000000) {
        fprintf(stderr, "bench_train: %s needs an integer >= %d, got '%s'\n", opt, min, s);
        exit(2);
    }
    return (int)v;
}

/* Resident set size of this process in bytes (VmRSS of /proc/self/status), or -1. */
static long bench_rss_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) break;
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *json_path = NULL, *quant_name = "f32";
    int B = 4, T = 256, warmup = 2, steps = 8, threads = 0, seed = 1, rank = 8, peak_n = 2048, peak_reps = 3,
        peak1 = 1, ckpt = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { bench_usage(stdout); return 0; }
        else if (!strcmp(a, "--json") && has) json_path = argv[++i];
        else if (!strcmp(a, "--batch") && has) B = bench_parse_int(a, argv[++i], 1);
        else if (!strcmp(a, "--seq") && has) T = bench_parse_int(a, argv[++i], 2);
        else if (!strcmp(a, "--warmup") && has) warmup = bench_parse_int(a, argv[++i], 0);
        else if (!strcmp(a, "--steps") && has) steps = bench_parse_int(a, argv[++i], 1);
        else if (!strcmp(a, "--threads") && has) threads = bench_parse_int(a, argv[++i], 1);
        else if (!strcmp(a, "--seed") && has) seed = bench_parse_int(a, argv[++i], 0);
        else if (!strcmp(a, "--rank") && has) rank = bench_parse_int(a, argv[++i], 1);
        else if (!strcmp(a, "--peak-size") && has) peak_n = bench_parse_int(a, argv[++i], 64);
        else if (!strcmp(a, "--peak-reps") && has) peak_reps = bench_parse_int(a, argv[++i], 1);
        else if (!strcmp(a, "--no-peak1")) peak1 = 0;
        else if (!strcmp(a, "--checkpointing") && has) ckpt = !strcmp(argv[++i], "layers");
        else if (!strcmp(a, "--quant") && has) quant_name = argv[++i];
        else if (a[0] != '-' && !model_path) model_path = a;
        else { fprintf(stderr, "bench_train: unknown or incomplete argument '%s'\n", a); bench_usage(stderr); return 2; }
    }
    if (!model_path) { bench_usage(stderr); return 2; }
    char json_default[4096];
    if (!json_path) {
        const char *build = getenv("BUILD");
        snprintf(json_default, sizeof json_default, "%s/bench.json", build && *build ? build : "build");
        json_path = json_default;
    }
    if (bench_sgemm_init() != 0) { fprintf(stderr, "bench_train: %s\n", slim_last_error()); return 1; }
    if (threads > 0) { omp_set_num_threads(threads); openblas_set_num_threads(threads); }
    const int n_threads = omp_get_max_threads();
    char cpu[256];
    bench_cpu_name(cpu, sizeof cpu);
    const char *wait_policy = getenv("OMP_WAIT_POLICY");
    if (!wait_policy) wait_policy = "";
    double load_before = bench_loadavg();

    int quant = base_quant_index(quant_name);
    if (quant < 0) { fprintf(stderr, "bench_train: --quant: unknown base.quant '%s'\n", quant_name); return 2; }
    model model;
    long rss_before = bench_rss_bytes();
    if (model_load_quant(&model, model_path, quant) != 0) { fprintf(stderr, "bench_train: %s\n", slim_last_error()); return 1; }
    long rss_model = bench_rss_bytes() - rss_before;

    /* 1. sgemm peak (after loading, so that a bad model fails fast) */
    fprintf(stderr, "bench_train: sgemm peak, %d^3 F32, best of %d ...\n", peak_n, peak_reps);
    double peak_all = bench_sgemm_peak(peak_n, peak_reps, n_threads);
    double peak_one = peak1 ? (n_threads == 1 ? peak_all : bench_sgemm_peak(peak_n, peak_reps, 1)) : 0.0;

    /* 2. training steps */
    const model_config *c = &model.cfg;
    slim_config cfg;
    config_defaults(&cfg);
    int targets_on[LORA_N_TARGETS];
    for (int t = 0; t < LORA_N_TARGETS; t++) targets_on[t] = 1;
    lora_adapter lora;
    lora_init(&lora, c, rank, 2.0f * rank, targets_on, (uint64_t)seed);
    float *grads = slim_calloc(lora.n_params, sizeof(float));
    adamw opt;
    adamw_init(&opt, lora.n_params, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay);
    acts acts;
    acts_init_mode(&acts, c, B, T, lora.r, ckpt ? ACTS_CHECKPOINT : ACTS_TRAIN);
    const int N = B * T;
    int32_t *tokens = slim_malloc(sizeof(int32_t) * N), *targets = slim_malloc(sizeof(int32_t) * N);
    slim_rng rng;
    slim_rng_seed(&rng, (uint64_t)seed * 7919u + 17u);
    for (int b = 0; b < B; b++) {
        int32_t prev = (int32_t)(slim_rng_u32(&rng) % (uint32_t)c->vocab_size);
        for (int t = 0; t < T; t++) {
            int32_t next = (int32_t)(slim_rng_u32(&rng) % (uint32_t)c->vocab_size);
            tokens[b * T + t] = prev;
            targets[b * T + t] = next;
            prev = next;
        }
    }
    bench_vocab = c->vocab_size;
    bench_rank = rank;
    fprintf(stderr, "bench_train: %s | LoRA r=%d alpha=%g on 7 projections: %zu trainable parameters | batch %d x %d, "
                    "%d threads | %d warmup + %d timed steps\n",
            model_path, lora.r, lora.alpha, lora.n_params, B, T, n_threads, warmup, steps);

    const long total_steps = warmup + steps;
    double *step_sec = slim_malloc(sizeof(double) * steps);
    double fwd_sec = 0, bwd_sec = 0, opt_sec = 0, first_loss = 0, last_loss = 0;
    for (long step = 0; step < total_steps; step++) {
        int timed = step >= warmup;
        bench_recording = timed;
        double t0 = slim_time_sec();
        /* one optimizer step exactly as train/train.c (grad_accum 1) */
        memset(grads, 0, sizeof(float) * lora.n_params);
        long step_targets = N;
        double loss = model_forward(&model, &lora, &acts, tokens, targets, B, T, NULL, NULL);
        double t1 = slim_time_sec();
        model_backward(&model, &lora, &acts, grads, 1.0f / (float)step_targets);
        double t2 = slim_time_sec();
        grad_clip_norm(grads, lora.n_params, cfg.grad_clip);
        float lr = lr_schedule(step, total_steps, cfg.warmup_steps, cfg.lr, cfg.min_lr_ratio);
        adamw_step(&opt, lora.params, grads, lr);
        double t3 = slim_time_sec();
        bench_recording = 0;
        loss /= (double)step_targets;
        if (!isfinite(loss)) { fprintf(stderr, "bench_train: step %ld: loss is %g\n", step, loss); return 1; }
        if (step == 0) first_loss = loss;
        last_loss = loss;
        fprintf(stderr, "  step %2ld%s loss %.4f  %.3f s (forward %.3f, backward %.3f, optimizer %.4f)\n", step + 1,
                timed ? "  " : " w", loss, t3 - t0, t1 - t0, t2 - t1, t3 - t2);
        if (timed) {
            step_sec[step - warmup] = t3 - t0;
            fwd_sec += t1 - t0;
            bwd_sec += t2 - t1;
            opt_sec += t3 - t2;
        }
    }

    double load_after = bench_loadavg();
    const size_t peak_rss = mem_peak_rss();
    mem_plan plan;
    plan_run pr = {.quant = quant, .B = B, .T = T, .lora_r = rank, .threads = n_threads};
    for (int t = 0; t < LORA_N_TARGETS; t++) pr.targets_on[t] = 1;
    pr.data_bytes = sizeof(int32_t) * 2 * (size_t)N;
    mem_plan_make(&plan, &model.gguf, c, &pr);
    double sum = 0;
    for (int i = 0; i < steps; i++) sum += step_sec[i];
    qsort(step_sec, steps, sizeof(double), bench_cmp_double);
    double median = steps % 2 ? step_sec[steps / 2] : 0.5 * (step_sec[steps / 2 - 1] + step_sec[steps / 2]);
    double mean = sum / steps, best = step_sec[0];
    bench_flops fl = bench_count_flops(c, &lora, B, T, N, ckpt);
    double tok_s = N / median, gflops = fl.total / median * 1e-9, frac = gflops / peak_all;
    double attn_thread_sec = 0;
    long attn_calls = 0;
    for (int i = 0; i < BENCH_MAX_THREADS; i++) { attn_thread_sec += bench_thread_attn[i].sec; attn_calls += bench_thread_attn[i].calls; }
    bench_bucket_sec[BENCH_ATTN] = attn_thread_sec / n_threads;
    bench_bucket_calls[BENCH_ATTN] = attn_calls;
    double share[BENCH_N_BUCKETS], other = 1.0;
    for (int b = 0; b < BENCH_N_BUCKETS; b++) { share[b] = bench_bucket_sec[b] / sum; other -= share[b]; }
    double bucket_flops[BENCH_N_BUCKETS] = {fl.proj, fl.lora, fl.head, fl.attn};

    /* table */
    printf("\nslimtune training benchmark (%s, %d threads, %s)\n", cpu, n_threads, model_path);
    printf("  model            dim %d, %d layers, %d heads (%d kv), ffn %d, vocab %d\n", c->dim, c->n_layers,
           c->n_heads, c->n_kv_heads, c->ffn_dim, c->vocab_size);
    printf("  base             base.quant %s: %.3f bytes/parameter stored (%zu parameters), resident growth at load %.3f bytes/parameter\n",
           quant_name, (double)model.weight_bytes / model.n_params, model.n_params, (double)rss_model / model.n_params);
    printf("  run              LoRA r=%d alpha=%g x 7 projections, batch %d x seq %d = %d tokens/step, loss on every token\n",
           lora.r, lora.alpha, B, T, N);
    printf("  sgemm peak       %8.1f GFLOP/s (%d threads, %d^3)\n", peak_all, n_threads, peak_n);
    if (peak1 && n_threads > 1) printf("  sgemm peak       %8.1f GFLOP/s (1 thread)  -> scaling x%.2f\n", peak_one, peak_all / peak_one);
    printf("  step time        %8.3f s median, %.3f mean, %.3f best (%d steps; forward %.0f%%, backward %.0f%%, optimizer %.1f%%)\n",
           median, mean, best, steps, 100 * fwd_sec / sum, 100 * bwd_sec / sum, 100 * opt_sec / sum);
    printf("  throughput       %8.0f tokens/s\n", tok_s);
    printf("  FLOPs per step   %8.2f GFLOP (projections %.2f, LoRA %.2f, attention %.2f, head %.2f, checkpointing "
           "recompute %.2f)\n", fl.total * 1e-9, fl.proj * 1e-9, fl.lora * 1e-9, fl.attn * 1e-9, fl.head * 1e-9,
           fl.recompute * 1e-9);
    printf("  achieved         %8.1f GFLOP/s = %.1f%% of the sgemm peak\n", gflops, 100 * frac);
    printf("  memory           peak RSS %.1f MiB measured (getrusage), %.1f MiB planned (checkpointing %s; "
           "planned/measured %.3f)\n", peak_rss / 1048576.0, plan.total[ckpt] / 1048576.0, ckpt ? "layers" : "none",
           (double)plan.total[ckpt] / (double)peak_rss);
    printf("  loss             %.4f (first step) -> %.4f (last; ln V = %.4f)\n", first_loss, last_loss, log((double)c->vocab_size));
    printf("\n  %-16s %8s %8s %10s %10s %8s\n", "time share", "share", "s/step", "GFLOP", "GFLOP/s", "calls");
    for (int b = 0; b < BENCH_N_BUCKETS; b++) {
        double s = bench_bucket_sec[b] / steps;
        printf("  %-16s %7.1f%% %8.3f %10.2f %10.1f %8ld\n", bench_bucket_names[b], 100 * share[b], s,
               bucket_flops[b] * 1e-9, s > 0 ? bucket_flops[b] / s * 1e-9 : 0.0, bench_bucket_calls[b] / steps);
    }
    printf("  %-16s %7.1f%% %8.3f\n", "other", 100 * other, other * sum / steps);
    printf("  (attention_sgemm: thread-seconds / threads; other: element-wise kernels, softmax, memsets, optimizer)\n");
    printf("\n  load average %.2f before, %.2f after (%d threads; OMP_WAIT_POLICY=%s)\n", load_before, load_after,
           n_threads, *wait_policy ? wait_policy : "unset");
    if (load_before > 0.5 || load_after > n_threads + 0.5)
        printf("  WARNING: other processes were running: the figures above are not those of an idle machine\n");
    printf("\n");

    /* JSON */
    char tmp[4200];
    FILE *f = slim_atomic_open(json_path, tmp, sizeof tmp);
    if (!f) { fprintf(stderr, "bench_train: %s\n", slim_last_error()); return 1; }
    fprintf(f, "{\n  \"cpu\": ");
    bench_json_str(f, cpu);
    fprintf(f, ",\n  \"threads\": %d,\n  \"model\": ", n_threads);
    bench_json_str(f, model_path);
    fprintf(f, ",\n  \"omp_wait_policy\": ");
    bench_json_str(f, wait_policy);
    fprintf(f, ",\n  \"base_quant\": ");
    bench_json_str(f, quant_name);
    fprintf(f, ",\n  \"base_bytes_per_param\": %.4f,\n  \"base_rss_bytes_per_param\": %.4f", (double)model.weight_bytes / model.n_params,
            (double)rss_model / model.n_params);
    fprintf(f, ",\n  \"loadavg_before\": %.2f,\n  \"loadavg_after\": %.2f,\n", load_before, load_after);
    fprintf(f, "  \"config\": {\"dim\": %d, \"n_layers\": %d, \"n_heads\": %d, \"n_kv_heads\": %d, \"ffn_dim\": %d, "
               "\"vocab\": %d, \"lora_r\": %d, \"lora_alpha\": %g, \"batch\": %d, \"seq\": %d, \"warmup_steps\": %d, "
               "\"steps\": %d},\n",
            c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->ffn_dim, c->vocab_size, lora.r, lora.alpha, B, T,
            warmup, steps);
    fprintf(f, "  \"sgemm_peak_size\": %d,\n  \"sgemm_peak_gflops\": %.2f,\n", peak_n, peak_all);
    if (peak1) fprintf(f, "  \"sgemm_peak_gflops_1thread\": %.2f,\n", peak_one);
    fprintf(f, "  \"tokens_per_step\": %d,\n  \"step_time_median_s\": %.6f,\n  \"step_time_mean_s\": %.6f,\n"
               "  \"step_time_best_s\": %.6f,\n  \"tokens_per_s\": %.1f,\n",
            N, median, mean, best, tok_s);
    fprintf(f, "  \"gflop_per_step\": {\"total\": %.4f, \"projections\": %.4f, \"lora\": %.4f, \"attention\": %.4f, "
               "\"head\": %.4f},\n",
            fl.total * 1e-9, fl.proj * 1e-9, fl.lora * 1e-9, fl.attn * 1e-9, fl.head * 1e-9);
    fprintf(f, "  \"achieved_gflops\": %.2f,\n  \"fraction_of_peak\": %.4f,\n", gflops, frac);
    fprintf(f, "  \"time_share\": {\"forward\": %.4f, \"backward\": %.4f, \"optimizer\": %.4f", fwd_sec / sum,
            bwd_sec / sum, opt_sec / sum);
    for (int b = 0; b < BENCH_N_BUCKETS; b++) fprintf(f, ", \"%s\": %.4f", bench_bucket_names[b], share[b]);
    fprintf(f, ", \"other\": %.4f},\n", other);
    fprintf(f, "  \"checkpointing\": \"%s\",\n  \"peak_rss_bytes\": %zu,\n  \"planned_peak_bytes\": %zu,\n",
            ckpt ? "layers" : "none", peak_rss, plan.total[ckpt]);
    fprintf(f, "  \"loss_first\": %.6f,\n  \"loss_last\": %.6f\n}\n", first_loss, last_loss);
    if (slim_atomic_commit(f, tmp, json_path) != 0) { fprintf(stderr, "bench_train: %s\n", slim_last_error()); return 1; }
    printf("wrote %s\n", json_path);

    free(step_sec);
    free(tokens);
    free(targets);
    acts_free(&acts);
    adamw_free(&opt);
    free(grads);
    lora_free(&lora);
    config_free(&cfg);
    model_free(&model);
    return 0;
}
