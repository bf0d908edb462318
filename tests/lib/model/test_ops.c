/* test_ops.c — gradient checks and reference checks for the kernels of lib/model/ops.h.
 *
 * Every _backward kernel is checked against central finite differences of a naive double-precision
 * reference of its _forward (the same reference the forward itself is checked against, below): for a
 * scalar loss L = sum(out * R) with a fixed random R (crossentropy: its own loss), the numeric
 * gradient dL/dx_i = (L(x_i + h) - L(x_i - h)) / (x_i+h - x_i-h) is taken for EVERY element of every
 * input. Error metric: max_i |analytic_i - numeric_i| / max(1e-2, |numeric_i|).
 *
 * Why the double reference and not the float forward: differences of a float32 loss divide its
 * rounding noise by the step, and that noise depends on the CPU's BLAS kernel (OPENBLAS_CORETYPE),
 * FMA contraction and the thread count, so float-FD tolerances tuned on one machine fail on another
 * (tests/lib/model/test_model.c did on an AVX-512 EPYC). In double the noise is ~1e-16 |L| / h and the
 * truncation error of h = 1e-3 is ~h^2/6 |L'''| ~ 1e-7, so what is measured is the float32 error of
 * the analytic gradient alone (FD_TOL_REF), and one tolerance serves every kernel. The
 * chain is closed by the forward checks: forward == reference (FWD_TOL) and backward == d(reference).
 *
 * Gradient buffers are pre-filled with GRAD_PRE before the backward call and GRAD_PRE is
 * subtracted afterwards, so a kernel that overwrites instead of accumulating (+=) fails.
 * Every gradient check also runs a self-check: the analytic gradient with one element off by 1%
 * (the largest, and one of median magnitude) must FAIL the same tolerance, so the checks are shown to
 * be able to fail; and the gradient must not be trivially small (max |numeric| > 0.05), so a vacuous
 * all-zero case fails.
 *
 * Forwards are checked against naive double-precision loops (matmul, lora, attention with GQA,
 * rope, rmsnorm, swiglu, embedding, residual, crossentropy), and attention is checked to be
 * unaffected by right padding. The tiled attention (FlashAttention-2) is also compared with the [T,T]
 * kernel it replaced (tt_attention_*, kept here as a reference): within TT_TOL, with GQA, packed
 * rows, T = 1 and T not a multiple of ATT_TILE. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "common.h"
#include "model/ops.h"
#include "testutil.h"

#define GRAD_PRE 0.375f /* known nonzero value gradient buffers start from (exact in float) */
#define H_REF 1e-3f     /* finite-difference step on the double reference (see above) */
#define FD_TOL_REF 5e-4 /* analytic vs central differences of the double reference: the float32 error
                         * of the analytic gradient (worst 4.7e-5, rmsnorm dinp, over 60 seeds x 1 and 2
                         * threads); a 1% error on an element |g| >= 1e-2 scores 1e-2, 20x this */
#define FWD_TOL 1e-5    /* forward vs naive reference, relative to the largest reference value */

static slim_rng rng;

/* ---------------------------------------------------------------- helpers */

static float *rand_buf(long n, float mean, float sd) {
    float *p = slim_malloc(sizeof(float) * n);
    for (long i = 0; i < n; i++) p[i] = mean + sd * slim_rng_normal(&rng);
    return p;
}

static float *copy_buf(const float *src, long n) {
    float *p = slim_malloc(sizeof(float) * n);
    memcpy(p, src, sizeof(float) * n);
    return p;
}

static int rand_int(int lo, int hi) { return lo + (int)(slim_rng_u32(&rng) % (uint32_t)(hi - lo + 1)); }

/* Gradient buffer pre-filled with GRAD_PRE (tests the += contract of backward kernels). */
static float *pre_buf(long n) {
    float *p = slim_malloc(sizeof(float) * n);
    for (long i = 0; i < n; i++) p[i] = GRAD_PRE;
    return p;
}

static void unpre(float *p, long n) {
    for (long i = 0; i < n; i++) p[i] -= GRAD_PRE;
}

/* sum(out * R) for a double-precision reference output */
static double dot_loss_ref(const double *out, const float *R, long n) {
    double s = 0.0;
    for (long i = 0; i < n; i++) s += out[i] * R[i];
    return s;
}

typedef double (*loss_fn)(void *ctx);

/* Central differences of f with respect to every element of p[0..n); p is restored. The divisor
 * is the step actually taken in float, not 2h. */
static double *fd_grad(float *p, long n, float h, loss_fn f, void *ctx) {
    double *num = slim_malloc(sizeof(double) * n);
    for (long i = 0; i < n; i++) {
        float save = p[i], xp = save + h, xm = save - h;
        p[i] = xp;
        double lp = f(ctx);
        p[i] = xm;
        double lm = f(ctx);
        p[i] = save;
        num[i] = (lp - lm) / ((double)xp - (double)xm);
    }
    return num;
}

/* max_i |an_i - num_i| / max(1e-2, |num_i|) */
static double grad_err(const float *an, const double *num, long n) {
    double worst = 0.0;
    for (long i = 0; i < n; i++) {
        double e = fabs(an[i] - num[i]) / fmax(1e-2, fabs(num[i]));
        if (e > worst || isnan(e)) worst = isnan(e) ? INFINITY : e;
    }
    return worst;
}

static int cmp_abs_double(const void *a, const void *b) {
    double x = fabs(*(const double *)a), y = fabs(*(const double *)b);
    return (x > y) - (x < y);
}

/* Compares an analytic gradient an [n] with central differences (step H_REF) of the double-precision
 * reference loss f over p [n] (p is restored); passes when grad_err < FD_TOL_REF. Self-checks that a
 * 1% error on the largest element, and on one of median magnitude, would be detected. */
static void check_grad(const char *name, const float *an, float *p, long n, loss_fn f, void *ctx) {
    double *num = fd_grad(p, n, H_REF, f, ctx);
    double err = grad_err(an, num, n);
    long imax = 0;
    for (long i = 1; i < n; i++)
        if (fabs(num[i]) > fabs(num[imax])) imax = i;
    printf("  %-34s n=%-4ld max|g|=%-9.3g err=%.3g\n", name, n, fabs(num[imax]), err);
    CHECK(err < FD_TOL_REF, "%s: gradient error %.3g >= %.3g", name, err, FD_TOL_REF);
    CHECK(fabs(num[imax]) > 0.05, "%s: gradient trivially small (max %.3g), the check is vacuous", name,
          fabs(num[imax]));
    /* self-check: the same comparison must catch a 1% error on one element */
    double *sorted = slim_malloc(sizeof(double) * n);
    memcpy(sorted, num, sizeof(double) * n);
    qsort(sorted, n, sizeof(double), cmp_abs_double);
    long z = 0, imed = 0; /* the median of the nonzero elements (a 1% error on a zero is no error) */
    while (z < n && sorted[z] == 0.0) z++;
    for (long i = 0; i < n; i++)
        if (num[i] == sorted[(z + n) / 2 < n ? (z + n) / 2 : n - 1]) { imed = i; break; }
    const long picks[2] = {imax, imed};
    for (int c = 0; c < 2; c++) {
        float *bad = copy_buf(an, n);
        bad[picks[c]] *= 1.01f;
        double err_bad = grad_err(bad, num, n);
        CHECK(err_bad >= FD_TOL_REF, "%s: 1%% error on element %ld (|numeric| %.3g) not detected (err %.3g)", name,
              picks[c], fabs(num[picks[c]]), err_bad);
        free(bad);
    }
    free(sorted);
    free(num);
}

/* max |a - ref| / max(|ref|_inf, 1e-30); the forward check metric */
static double fwd_err(const float *a, const double *ref, long n) {
    double worst = 0.0, big = 1e-30;
    for (long i = 0; i < n; i++) big = fmax(big, fabs(ref[i]));
    for (long i = 0; i < n; i++) {
        double e = fabs(a[i] - ref[i]);
        if (e > worst || isnan(e)) worst = isnan(e) ? INFINITY : e;
    }
    return worst / big;
}

static void check_fwd(const char *name, const float *a, const double *ref, long n) {
    double err = fwd_err(a, ref, n);
    printf("  %-34s n=%-4ld rel err=%.3g\n", name, n, err);
    CHECK(err < FWD_TOL, "%s: forward error %.3g >= %.3g", name, err, FWD_TOL);
}

/* ---------------------------------------------------------------- embedding */

typedef struct { double *ref; float *wte, *R; const int32_t *tok; int N, C; } emb_ctx;

/* reference: ref [N,C] = rows tok of wte */
static void emb_ref(double *ref, const int32_t *tok, const float *wte, int N, int C) {
    for (int n = 0; n < N; n++)
        for (int i = 0; i < C; i++) ref[n * C + i] = wte[tok[n] * C + i];
}

static double emb_loss(void *p) {
    emb_ctx *c = p;
    emb_ref(c->ref, c->tok, c->wte, c->N, c->C);
    return dot_loss_ref(c->ref, c->R, (long)c->N * c->C);
}

static void test_embedding(void) {
    printf("embedding\n");
    int V = 7, C = 5, N = 9;
    int32_t tok[9] = {3, 1, 3, 6, 0, 3, 1, 5, 2}; /* repeated ids: their rows must add up */
    float *wte = rand_buf((long)V * C, 0, 1), *R = rand_buf((long)N * C, 0, 1);
    float *out = slim_malloc(sizeof(float) * N * C);
    embedding_forward(out, tok, wte, N, C);
    double *ref = slim_malloc(sizeof(double) * N * C);
    emb_ctx c = {ref, wte, R, tok, N, C};
    emb_ref(ref, tok, wte, N, C);
    check_fwd("embedding_forward", out, ref, (long)N * C);
    float *dwte = pre_buf((long)V * C);
    embedding_backward(dwte, R, tok, N, C);
    unpre(dwte, (long)V * C);
    check_grad("embedding dwte", dwte, wte, (long)V * C, emb_loss, &c);
    free(wte); free(R); free(out); free(ref); free(dwte);
}

/* ---------------------------------------------------------------- rmsnorm */

typedef struct { double *ref, *ref_rstd; float *inp, *w, *R; int N, C; float eps; } rms_ctx;

/* reference: ref [N,C] = inp * rstd * w, ref_rstd [N] = 1 / sqrt(mean(inp^2) + eps) */
static void rms_ref(double *ref, double *ref_rstd, const float *inp, const float *w, int N, int C, float eps) {
    for (int n = 0; n < N; n++) {
        double ss = 0.0;
        for (int i = 0; i < C; i++) ss += (double)inp[n * C + i] * inp[n * C + i];
        ref_rstd[n] = 1.0 / sqrt(ss / C + eps);
        for (int i = 0; i < C; i++) ref[n * C + i] = inp[n * C + i] * ref_rstd[n] * w[i];
    }
}

static double rms_loss(void *p) {
    rms_ctx *c = p;
    rms_ref(c->ref, c->ref_rstd, c->inp, c->w, c->N, c->C, c->eps);
    return dot_loss_ref(c->ref, c->R, (long)c->N * c->C);
}

static void test_rmsnorm(void) {
    int N = rand_int(3, 5), C = rand_int(6, 10);
    printf("rmsnorm N=%d C=%d\n", N, C);
    long nc = (long)N * C;
    float eps = 1e-5f;
    float *inp = rand_buf(nc, 0, 1), *w = rand_buf(C, 1, 0.5f), *R = rand_buf(nc, 0, 1);
    float *out = slim_malloc(sizeof(float) * nc), *rstd = slim_malloc(sizeof(float) * N);
    rmsnorm_forward(out, rstd, inp, w, N, C, eps);
    double *ref = slim_malloc(sizeof(double) * nc), *ref_rstd = slim_malloc(sizeof(double) * N);
    rms_ctx c = {ref, ref_rstd, inp, w, R, N, C, eps};
    rms_ref(ref, ref_rstd, inp, w, N, C, eps);
    check_fwd("rmsnorm_forward out", out, ref, nc);
    check_fwd("rmsnorm_forward rstd", rstd, ref_rstd, N);

    float *dinp = pre_buf(nc), *dw = pre_buf(C);
    rmsnorm_backward(dinp, dw, R, inp, w, rstd, N, C);
    unpre(dinp, nc);
    unpre(dw, C);
    check_grad("rmsnorm dinp", dinp, inp, nc, rms_loss, &c);
    check_grad("rmsnorm dw", dw, w, C, rms_loss, &c);
    /* dw == NULL (frozen weight) gives the same dinp */
    float *dinp2 = pre_buf(nc);
    rmsnorm_backward(dinp2, NULL, R, inp, w, rstd, N, C);
    unpre(dinp2, nc);
    CHECK(memcmp(dinp, dinp2, sizeof(float) * nc) == 0, "rmsnorm dinp differs with dw == NULL");
    free(inp); free(w); free(R); free(out); free(rstd); free(ref); free(ref_rstd);
    free(dinp); free(dw); free(dinp2);
}

/* ---------------------------------------------------------------- matmul */

typedef struct { double *ref; float *inp, *W, *R; int N, C, OC; } mm_ctx;

/* reference: ref [N,OC] = inp [N,C] W^T (W [OC,C]) */
static void mm_ref(double *ref, const float *inp, const float *W, int N, int C, int OC) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = 0.0;
            for (int i = 0; i < C; i++) s += (double)inp[n * C + i] * W[o * C + i];
            ref[n * OC + o] = s;
        }
}

static double mm_loss(void *p) {
    mm_ctx *c = p;
    mm_ref(c->ref, c->inp, c->W, c->N, c->C, c->OC);
    return dot_loss_ref(c->ref, c->R, (long)c->N * c->OC);
}

static void test_matmul(void) {
    int N = rand_int(3, 6), C = rand_int(4, 9), OC = rand_int(3, 8);
    printf("matmul N=%d C=%d OC=%d\n", N, C, OC);
    float *inp = rand_buf((long)N * C, 0, 1), *W = rand_buf((long)OC * C, 0, 1);
    float *R = rand_buf((long)N * OC, 0, 1), *out = slim_malloc(sizeof(float) * N * OC);
    double *ref = slim_malloc(sizeof(double) * N * OC);
    mm_ref(ref, inp, W, N, C, OC);
    for (int i = 0; i < N * OC; i++) out[i] = NAN; /* beta = 0 must overwrite, even NaN */
    matmul_forward(out, inp, W, N, C, OC, 0.0f);
    check_fwd("matmul_forward beta=0", out, ref, (long)N * OC);
    /* beta = 1 accumulates onto what is there */
    float *acc = rand_buf((long)N * OC, 0, 1);
    double *ref2 = slim_malloc(sizeof(double) * N * OC);
    for (int i = 0; i < N * OC; i++) ref2[i] = ref[i] + acc[i];
    matmul_forward(acc, inp, W, N, C, OC, 1.0f);
    check_fwd("matmul_forward beta=1", acc, ref2, (long)N * OC);

    double *ref3 = slim_malloc(sizeof(double) * N * OC);
    mm_ctx c = {ref3, inp, W, R, N, C, OC};
    float *dinp = pre_buf((long)N * C), *dW = pre_buf((long)OC * C);
    matmul_backward(dinp, dW, R, inp, W, N, C, OC);
    unpre(dinp, (long)N * C);
    unpre(dW, (long)OC * C);
    check_grad("matmul dinp", dinp, inp, (long)N * C, mm_loss, &c);
    check_grad("matmul dW", dW, W, (long)OC * C, mm_loss, &c);
    /* NULL gradients are skipped and the other one is unchanged */
    float *dW2 = pre_buf((long)OC * C), *dinp2 = pre_buf((long)N * C);
    matmul_backward(NULL, dW2, R, inp, W, N, C, OC);
    matmul_backward(dinp2, NULL, R, inp, W, N, C, OC);
    unpre(dW2, (long)OC * C);
    unpre(dinp2, (long)N * C);
    CHECK(memcmp(dW, dW2, sizeof(float) * OC * C) == 0, "matmul dW differs with dinp == NULL");
    CHECK(memcmp(dinp, dinp2, sizeof(float) * N * C) == 0, "matmul dinp differs with dW == NULL");
    free(inp); free(W); free(R); free(out); free(ref); free(acc); free(ref2); free(ref3);
    free(dinp); free(dW); free(dW2); free(dinp2);
}

/* ---------------------------------------------------------------- lora */

typedef struct { double *ref, *ref_u; float *base, *inp, *A, *B, *R; int N, C, OC, r; float scale; } lora_ctx;

/* reference: ref_u [N,r] = inp A^T, ref [N,OC] = base + scale * ref_u B^T */
static void lora_ref(double *ref, double *ref_u, const float *base, const float *inp, const float *A, const float *B,
                     int N, int C, int OC, int r, float scale) {
    for (int n = 0; n < N; n++) {
        for (int j = 0; j < r; j++) {
            double s = 0.0;
            for (int i = 0; i < C; i++) s += (double)inp[n * C + i] * A[j * C + i];
            ref_u[n * r + j] = s;
        }
        for (int o = 0; o < OC; o++) {
            double s = 0.0;
            for (int j = 0; j < r; j++) s += ref_u[n * r + j] * B[o * r + j];
            ref[n * OC + o] = base[n * OC + o] + scale * s;
        }
    }
}

static double lora_loss(void *p) {
    lora_ctx *c = p;
    lora_ref(c->ref, c->ref_u, c->base, c->inp, c->A, c->B, c->N, c->C, c->OC, c->r, c->scale);
    return dot_loss_ref(c->ref, c->R, (long)c->N * c->OC);
}

static void test_lora(void) {
    int N = rand_int(3, 5), C = rand_int(5, 8), OC = rand_int(4, 7), r = rand_int(2, 3);
    float scale = 1.5f; /* alpha / r != 1, so a missing or doubled scale is caught */
    printf("lora N=%d C=%d OC=%d r=%d scale=%g\n", N, C, OC, r, scale);
    float *inp = rand_buf((long)N * C, 0, 1), *A = rand_buf((long)r * C, 0, 1), *B = rand_buf((long)OC * r, 0, 1);
    float *R = rand_buf((long)N * OC, 0, 1), *base = rand_buf((long)N * OC, 0, 1);
    float *out = copy_buf(base, (long)N * OC), *u = slim_malloc(sizeof(float) * N * r);
    lora_forward(out, u, inp, A, B, N, C, OC, r, scale);
    double *ref_u = slim_malloc(sizeof(double) * N * r), *ref = slim_malloc(sizeof(double) * N * OC);
    lora_ref(ref, ref_u, base, inp, A, B, N, C, OC, r, scale);
    check_fwd("lora_forward u", u, ref_u, (long)N * r);
    check_fwd("lora_forward out", out, ref, (long)N * OC);

    double *ref_u2 = slim_malloc(sizeof(double) * N * r), *ref2 = slim_malloc(sizeof(double) * N * OC);
    lora_ctx c = {ref2, ref_u2, base, inp, A, B, R, N, C, OC, r, scale};
    float *dinp = pre_buf((long)N * C), *dA = pre_buf((long)r * C), *dB = pre_buf((long)OC * r);
    float *du = slim_malloc(sizeof(float) * N * r);
    lora_backward(dinp, dA, dB, du, R, inp, u, A, B, N, C, OC, r, scale);
    unpre(dinp, (long)N * C);
    unpre(dA, (long)r * C);
    unpre(dB, (long)OC * r);
    check_grad("lora dA", dA, A, (long)r * C, lora_loss, &c);
    check_grad("lora dB", dB, B, (long)OC * r, lora_loss, &c);
    check_grad("lora dinp", dinp, inp, (long)N * C, lora_loss, &c);
    /* dinp == NULL leaves dA, dB the same */
    float *dA2 = pre_buf((long)r * C), *dB2 = pre_buf((long)OC * r);
    lora_backward(NULL, dA2, dB2, du, R, inp, u, A, B, N, C, OC, r, scale);
    unpre(dA2, (long)r * C);
    unpre(dB2, (long)OC * r);
    CHECK(memcmp(dA, dA2, sizeof(float) * r * C) == 0 && memcmp(dB, dB2, sizeof(float) * OC * r) == 0,
          "lora dA/dB differ with dinp == NULL");
    free(inp); free(A); free(B); free(R); free(base); free(out); free(u); free(ref_u); free(ref); free(ref_u2); free(ref2);
    free(dinp); free(dA); free(dB); free(du); free(dA2); free(dB2);
}

/* ---------------------------------------------------------------- rope */

typedef struct { double *ref; float *x, *R; const int32_t *pos; int N, nh, hd, neox; float theta; const float *freq; } rope_ctx;

/* reference: ref [N, nh*hd] = x with every pair of every head rotated by pos[t] * theta^(-2i/hd) / freq[i] */
static void rope_ref(double *ref, const float *x, const int32_t *pos, int N, int nh, int hd, int neox, float theta,
                     const float *freq) {
    for (int t = 0; t < N; t++)
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < hd / 2; i++) {
                double ang = pos[t] * pow(theta, -2.0 * i / hd) / (freq ? freq[i] : 1.0);
                long o0 = (long)t * nh * hd + h * hd + (neox ? i : 2 * i), o1 = o0 + (neox ? hd / 2 : 1);
                ref[o0] = x[o0] * cos(ang) - x[o1] * sin(ang);
                ref[o1] = x[o0] * sin(ang) + x[o1] * cos(ang);
            }
}

static double rope_loss(void *p) {
    rope_ctx *c = p;
    rope_ref(c->ref, c->x, c->pos, c->N, c->nh, c->hd, c->neox, c->theta, c->freq);
    return dot_loss_ref(c->ref, c->R, (long)c->N * c->nh * c->hd);
}

/* neox: pairs (i, i + hd/2) instead of (2i, 2i+1); freq: Llama 3 style per-pair frequency divisors */
static void test_rope_case(int neox, int with_freq) {
    int N = 6, nh = 3, hd = 8;
    float theta = 10000.0f, freq[4] = {1.0f, 1.5f, 4.0f, 8.0f};
    int32_t pos[6] = {0, 1, 2, 7, 33, 250}; /* includes large positions (many turns) */
    long n = (long)N * nh * hd;
    printf("rope N=%d heads=%d hd=%d theta=%g neox=%d freq_factors=%d\n", N, nh, hd, theta, neox, with_freq);
    rope_cache rc;
    rope_cache_init(&rc, hd, 256, theta, neox, with_freq ? freq : NULL);
    float *x = rand_buf(n, 0, 1), *R = rand_buf(n, 0, 1), *y = copy_buf(x, n);
    rope_forward(y, pos, N, nh, &rc);
    double *ref = slim_malloc(sizeof(double) * n);
    rope_ref(ref, x, pos, N, nh, hd, neox, theta, with_freq ? freq : NULL);
    check_fwd("rope_forward", y, ref, n);
    /* rope_backward is in place (dx = rotation^T dout), no accumulation by contract */
    float *dx = copy_buf(R, n);
    rope_backward(dx, pos, N, nh, &rc);
    double *ref2 = slim_malloc(sizeof(double) * n);
    rope_ctx c = {ref2, x, R, pos, N, nh, hd, neox, theta, with_freq ? freq : NULL};
    check_grad("rope dx", dx, x, n, rope_loss, &c);
    /* backward(forward(x)) == x: the rotation is orthogonal */
    float *z = copy_buf(x, n);
    rope_forward(z, pos, N, nh, &rc);
    rope_backward(z, pos, N, nh, &rc);
    double worst = 0.0;
    for (long i = 0; i < n; i++) worst = fmax(worst, fabs(z[i] - x[i]));
    CHECK(worst < 1e-5, "rope backward(forward(x)) != x, max diff %.3g", worst);
    free(x); free(R); free(y); free(ref); free(ref2); free(dx); free(z);
    rope_cache_free(&rc);
}

static void test_rope(void) {
    test_rope_case(0, 0);
    test_rope_case(1, 0);
    test_rope_case(0, 1);
    test_rope_case(1, 1);
}

/* ---------------------------------------------------------------- attention */

#define TT_TOL 1e-5 /* tiled attention vs the [T,T] kernel it replaced: max |diff| / max |reference| */

/* The attention kernel before tiling (stored [B,H,T,T] probabilities), kept as a float reference for
 * the tiled one: out [B,T,H*hd], att [B,H,T,T]. Serial; same sgemm calls and softmax loops. */
static void tt_attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                                 const int32_t *seg_start, int B, int T, int H, int Hkv, int hd) {
    const int ldq = H * hd, ldk = Hkv * hd, group = H / Hkv;
    const float scale = 1.0f / sqrtf((float)hd);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const float *Q = q + (long)b * T * ldq + h * hd, *K = k + (long)b * T * ldk + (h / group) * hd;
            const float *V = v + (long)b * T * ldk + (h / group) * hd;
            float *S = att + ((long)b * H + h) * T * T, *O = out + (long)b * T * ldq + h * hd;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, scale, Q, ldq, K, ldk, 0.0f, S, T);
            for (int i = 0; i < T; i++) {
                float *row = S + (long)i * T;
                int j0 = seg_start ? seg_start[b * T + i] : 0;
                float mx = row[j0];
                for (int j = j0 + 1; j <= i; j++) mx = row[j] > mx ? row[j] : mx;
                double sum = 0.0;
                for (int j = j0; j <= i; j++) { row[j] = expf(row[j] - mx); sum += row[j]; }
                float inv = (float)(1.0 / sum);
                for (int j = 0; j < T; j++) row[j] = j < j0 || j > i ? 0.0f : row[j] * inv;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, S, T, V, ldk, 0.0f, O, ldq);
        }
}

/* Its backward: dq, dk, dv += ... from att (one [T,T] scratch). */
static void tt_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                                  const float *v, const float *att, const int32_t *seg_start, int B, int T, int H,
                                  int Hkv, int hd) {
    const int ldq = H * hd, ldk = Hkv * hd, group = H / Hkv;
    const float scale = 1.0f / sqrtf((float)hd);
    float *dS = slim_malloc(sizeof(float) * T * T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const int g = h / group;
            const float *K = k + (long)b * T * ldk + g * hd, *V = v + (long)b * T * ldk + g * hd;
            const float *Q = q + (long)b * T * ldq + h * hd, *dO = dout + (long)b * T * ldq + h * hd;
            const float *P = att + ((long)b * H + h) * T * T;
            float *dK = dk + (long)b * T * ldk + g * hd, *dV = dv + (long)b * T * ldk + g * hd;
            float *dQ = dq + (long)b * T * ldq + h * hd;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, 1.0f, dO, ldq, V, ldk, 0.0f, dS, T);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f, P, T, dO, ldq, 1.0f, dV, ldk);
            for (int i = 0; i < T; i++) {
                const float *p = P + (long)i * T;
                float *d = dS + (long)i * T;
                int j0 = seg_start ? seg_start[b * T + i] : 0;
                double dot = 0.0;
                for (int j = j0; j <= i; j++) dot += (double)p[j] * d[j];
                for (int j = 0; j < T; j++) d[j] = j < j0 || j > i ? 0.0f : p[j] * (d[j] - (float)dot) * scale;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, dS, T, K, ldk, 1.0f, dQ, ldq);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f, dS, T, Q, ldq, 1.0f, dK, ldk);
        }
    free(dS);
}

/* max |a - ref| / max |ref| over n floats (the comparison with the [T,T] kernel) */
static double rel_diff(const float *a, const float *ref, long n) {
    double worst = 0.0, big = 1e-30;
    for (long i = 0; i < n; i++) {
        big = fmax(big, fabs(ref[i]));
        double e = fabs((double)a[i] - ref[i]);
        worst = isnan(e) ? INFINITY : fmax(worst, e);
    }
    return worst / big;
}

static void check_tt(const char *what, const float *a, const float *ref, long n) {
    double e = rel_diff(a, ref, n);
    printf("  %-34s n=%-5ld rel diff=%.3g\n", what, n, e);
    CHECK(e < TT_TOL, "%s: tiled attention differs from the [T,T] kernel by %.3g", what, e);
}

typedef struct { float *q, *k, *v, *R; const int32_t *seg; int B, T, H, Hkv, hd; } att_ctx;

/* Naive causal softmax attention with GQA in double: out [B,T,H*hd], att [B,H,T,T], lse [B,H,T] (may
 * be NULL: log-sum-exp of each row's scaled scores); with seg (packed rows) position i sees only keys
 * seg[b*T+i] .. i. */
static void att_ref(double *out, double *att, double *lse, const float *q, const float *k, const float *v,
                    const int32_t *seg, const int32_t *pre, int B, int T, int H, int Hkv, int hd) {
    int group = H / Hkv;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            int g = h / group;
            for (int i = 0; i < T; i++) {
                double *P = att + (((long)b * H + h) * T + i) * T;
                double mx = -INFINITY, sum = 0.0;
                int j0 = seg ? seg[b * T + i] : 0, p1 = pre ? pre[b * T + i] : 0; /* keys j < p1 or j0 <= j <= i */
                for (int j = 0; j < T; j++) {
                    if (j > i || (j < j0 && j >= p1)) { P[j] = NAN; continue; }
                    double s = 0.0;
                    for (int d = 0; d < hd; d++)
                        s += (double)q[((long)b * T + i) * H * hd + h * hd + d] *
                             k[((long)b * T + j) * Hkv * hd + g * hd + d];
                    P[j] = s / sqrt((double)hd);
                    mx = fmax(mx, P[j]);
                }
                for (int j = 0; j < T; j++) { P[j] = isnan(P[j]) ? 0.0 : exp(P[j] - mx); sum += P[j]; }
                for (int j = 0; j < T; j++) P[j] /= sum;
                if (lse) lse[((long)b * H + h) * T + i] = mx + log(sum);
                for (int d = 0; d < hd; d++) {
                    double o = 0.0;
                    for (int j = 0; j < T; j++) o += P[j] * v[((long)b * T + j) * Hkv * hd + g * hd + d];
                    out[((long)b * T + i) * H * hd + h * hd + d] = o;
                }
            }
        }
}

/* sum(out * R) through the double-precision reference (the finite differences' loss). */
typedef struct { att_ctx *c; double *out, *att; } attref_ctx;

static double attref_loss(void *p) {
    attref_ctx *r = p;
    att_ctx *c = r->c;
    att_ref(r->out, r->att, NULL, c->q, c->k, c->v, c->seg, NULL, c->B, c->T, c->H, c->Hkv, c->hd);
    double s = 0.0;
    for (long i = 0; i < (long)c->B * c->T * c->H * c->hd; i++) s += r->out[i] * c->R[i];
    return s;
}

/* Packed rows: row b holds examples of lengths 2, b + 1, then 40 + 13 b each (crossing tile
 * boundaries when T > ATT_TILE, so that whole key tiles fall before a row's example), the last cut by T. */
static int32_t *att_segments(int B, int T) {
    int32_t *seg = slim_malloc(sizeof(int32_t) * B * T);
    for (int b = 0; b < B; b++) {
        int start = 0, len = 2;
        for (int t = 0; t < T; t++) {
            if (t - start == len) {
                start = t;
                len = start == 2 ? b + 1 : 40 + 13 * b;
            }
            seg[b * T + t] = start;
        }
    }
    return seg;
}

/* Right padding: sequence b has real length L = T/2 + 1; q, k, v at positions >= L are replaced by
 * large random values. out and lse at positions < L must stay bit-identical, and a loss on positions
 * < L only must give exactly zero gradient at positions >= L. */
static void test_attention_padding(const float *q, const float *k, const float *v, const float *R, int B, int T,
                                   int H, int Hkv, int hd) {
    long nq = (long)B * T * H * hd, nk = (long)B * T * Hkv * hd, nl = (long)B * H * T;
    int L = T / 2 + 1;
    float *out = slim_malloc(sizeof(float) * nq), *lse = slim_malloc(sizeof(float) * nl);
    attention_forward(out, lse, q, k, v, NULL, NULL, B, T, H, Hkv, hd);
    float *out0 = copy_buf(out, nq), *lse0 = copy_buf(lse, nl);
    float *q2 = copy_buf(q, nq), *k2 = copy_buf(k, nk), *v2 = copy_buf(v, nk);
    for (int b = 0; b < B; b++)
        for (int t = L; t < T; t++) {
            for (int i = 0; i < H * hd; i++) q2[((long)b * T + t) * H * hd + i] = 50.0f * slim_rng_normal(&rng);
            for (int i = 0; i < Hkv * hd; i++) {
                k2[((long)b * T + t) * Hkv * hd + i] = 50.0f * slim_rng_normal(&rng);
                v2[((long)b * T + t) * Hkv * hd + i] = 50.0f * slim_rng_normal(&rng);
            }
        }
    attention_forward(out, lse, q2, k2, v2, NULL, NULL, B, T, H, Hkv, hd);
    int same = 1, changed = T == 1; /* T = 1 has no padding position */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            for (int i = 0; i < H * hd; i++) {
                long o = ((long)b * T + t) * H * hd + i;
                if (t < L && out[o] != out0[o]) same = 0;
                if (t >= L && out[o] != out0[o]) changed = 1;
            }
            for (int h = 0; h < H; h++)
                if (t < L && lse[((long)b * H + h) * T + t] != lse0[((long)b * H + h) * T + t]) same = 0;
        }
    CHECK(same, "attention: outputs at positions < %d changed when padding tokens changed", L);
    CHECK(changed, "attention: padding positions did not change at all (the padding test is vacuous)");
    float *Rm = copy_buf(R, nq), *dq = slim_calloc(nq, sizeof(float)), *dk = slim_calloc(nk, sizeof(float)),
          *dv = slim_calloc(nk, sizeof(float));
    for (int b = 0; b < B; b++)
        for (int t = L; t < T; t++)
            for (int i = 0; i < H * hd; i++) Rm[((long)b * T + t) * H * hd + i] = 0.0f;
    attention_backward(dq, dk, dv, Rm, q2, k2, v2, out, lse, NULL, B, T, H, Hkv, hd);
    int zero = 1;
    for (int b = 0; b < B; b++)
        for (int t = L; t < T; t++) {
            for (int i = 0; i < H * hd; i++) zero &= dq[((long)b * T + t) * H * hd + i] == 0.0f;
            for (int i = 0; i < Hkv * hd; i++)
                zero &= dk[((long)b * T + t) * Hkv * hd + i] == 0.0f && dv[((long)b * T + t) * Hkv * hd + i] == 0.0f;
        }
    CHECK(zero, "attention: gradient reaches padding positions >= %d from a loss on positions < %d", L, L);
    free(out); free(lse); free(out0); free(lse0); free(q2); free(k2); free(v2); free(Rm);
    free(dq); free(dk); free(dv);
}

/* The tiled attention with a shared prefix (eval's cached prompt): each row a prompt of P tokens, then
 * segments that see the prompt and themselves only, against the double reference with that mask; the
 * prompt's own rows are causal as usual. Segments and prompt cross tile boundaries. */
static void test_attention_prefix(int B, int T, int P, int H, int Hkv, int hd) {
    printf("attention with a shared prefix B=%d T=%d prompt %d H=%d Hkv=%d hd=%d\n", B, T, P, H, Hkv, hd);
    int32_t *seg = slim_malloc(sizeof(int32_t) * 2 * (size_t)B * T), *pre = seg + (long)B * T;
    for (int b = 0; b < B; b++) {
        int start = 0;
        for (int t = 0; t < T; t++) {
            if (t == P || (t > P && (t - P) % (5 + b) == 0)) start = t; /* segments of 5 (row 0), 6 (row 1) */
            seg[b * T + t] = t < P ? 0 : start;
            pre[b * T + t] = t < P ? 0 : P;
        }
    }
    long nq = (long)B * T * H * hd, nk = (long)B * T * Hkv * hd, na = (long)B * H * T * T, nl = (long)B * H * T;
    float *q = rand_buf(nq, 0, 1), *k = rand_buf(nk, 0, 1), *v = rand_buf(nk, 0, 1);
    float *out = slim_malloc(sizeof(float) * nq), *lse = slim_malloc(sizeof(float) * nl);
    double *ref = slim_malloc(sizeof(double) * nq), *ref_att = slim_malloc(sizeof(double) * na);
    double *ref_lse = slim_malloc(sizeof(double) * nl);
    attention_forward(out, lse, q, k, v, seg, pre, B, T, H, Hkv, hd);
    att_ref(ref, ref_att, ref_lse, q, k, v, seg, pre, B, T, H, Hkv, hd);
    check_fwd("attention_forward out, prefix", out, ref, nq);
    check_fwd("attention_forward lse, prefix", lse, ref_lse, nl);
    att_ref(ref, ref_att, ref_lse, q, k, v, seg, NULL, B, T, H, Hkv, hd); /* without the prompt: must differ */
    double differ = 0.0;
    for (long i = (long)P * H * hd; i < (long)T * H * hd; i++) differ = fmax(differ, fabs(out[i] - ref[i]));
    CHECK(differ > 1e-3, "the prefix changes nothing (%.3g): the mask is not applied", differ);
    free(seg); free(q); free(k); free(v); free(out); free(lse); free(ref); free(ref_att); free(ref_lse);
}

/* The tiled attention (forward: out and lse; backward: dq, dk, dv) against the double reference, the
 * [T,T] kernel it replaced (TT_TOL) and, when fd, central differences of the double reference. */
static void test_attention(int B, int T, int H, int Hkv, int hd, int packed, int fd) {
    char name[64];
    printf("attention B=%d T=%d H=%d Hkv=%d hd=%d%s%s\n", B, T, H, Hkv, hd, packed ? " packed" : "",
           T % ATT_TILE && T > ATT_TILE ? " (T not a multiple of the tile)" : "");
    int32_t *seg = packed ? att_segments(B, T) : NULL;
    long nq = (long)B * T * H * hd, nk = (long)B * T * Hkv * hd, na = (long)B * H * T * T, nl = (long)B * H * T;
    float *q = rand_buf(nq, 0, 1), *k = rand_buf(nk, 0, 1), *v = rand_buf(nk, 0, 1), *R = rand_buf(nq, 0, 1);
    float *out = slim_malloc(sizeof(float) * nq), *lse = slim_malloc(sizeof(float) * nl);
    attention_forward(out, lse, q, k, v, seg, NULL, B, T, H, Hkv, hd);
    double *ref = slim_malloc(sizeof(double) * nq), *ref_att = slim_malloc(sizeof(double) * na);
    double *ref_lse = slim_malloc(sizeof(double) * nl);
    att_ref(ref, ref_att, ref_lse, q, k, v, seg, NULL, B, T, H, Hkv, hd);
    snprintf(name, sizeof name, "attention_forward out hd=%d H=%d/%d", hd, H, Hkv);
    check_fwd(name, out, ref, nq);
    snprintf(name, sizeof name, "attention_forward lse hd=%d H=%d/%d", hd, H, Hkv);
    check_fwd(name, lse, ref_lse, nl);

    float *dq = pre_buf(nq), *dk = pre_buf(nk), *dv = pre_buf(nk);
    attention_backward(dq, dk, dv, R, q, k, v, out, lse, seg, B, T, H, Hkv, hd);
    unpre(dq, nq);
    unpre(dk, nk);
    unpre(dv, nk);

    /* against the [T,T] kernel */
    float *tt_out = slim_malloc(sizeof(float) * nq), *tt_att = slim_malloc(sizeof(float) * na);
    float *tt_dq = slim_calloc(nq, sizeof(float)), *tt_dk = slim_calloc(nk, sizeof(float)),
          *tt_dv = slim_calloc(nk, sizeof(float));
    tt_attention_forward(tt_out, tt_att, q, k, v, seg, B, T, H, Hkv, hd);
    tt_attention_backward(tt_dq, tt_dk, tt_dv, R, q, k, v, tt_att, seg, B, T, H, Hkv, hd);
    check_tt("vs [T,T] kernel: out", out, tt_out, nq);
    check_tt("vs [T,T] kernel: dv", dv, tt_dv, nk);
    if (T == 1) { /* a softmax over one key is constant: dq and dk vanish (up to rounding) */
        double worst = 0.0;
        for (long i = 0; i < nq; i++) worst = fmax(worst, fabs(dq[i]));
        for (long i = 0; i < nk; i++) worst = fmax(worst, fabs(dk[i]));
        printf("  T = 1: max |dq|, |dk| = %.3g\n", worst);
        CHECK(worst < 1e-6, "attention T = 1: dq, dk should vanish, max %.3g", worst);
    } else {
        check_tt("vs [T,T] kernel: dq", dq, tt_dq, nq);
        check_tt("vs [T,T] kernel: dk", dk, tt_dk, nk);
    }
    if (fd && T > 1) {
        att_ctx c = {q, k, v, R, seg, B, T, H, Hkv, hd};
        attref_ctx rc = {&c, ref, ref_att}; /* reuses ref, ref_att: the forward checks are done */
        snprintf(name, sizeof name, "attention dq hd=%d H=%d/%d", hd, H, Hkv);
        check_grad(name, dq, q, nq, attref_loss, &rc);
        snprintf(name, sizeof name, "attention dk hd=%d H=%d/%d", hd, H, Hkv);
        check_grad(name, dk, k, nk, attref_loss, &rc);
    }
    if (fd) {
        att_ctx c = {q, k, v, R, seg, B, T, H, Hkv, hd};
        attref_ctx rc = {&c, ref, ref_att};
        snprintf(name, sizeof name, "attention dv hd=%d H=%d/%d", hd, H, Hkv);
        check_grad(name, dv, v, nk, attref_loss, &rc);
    }
    if (!packed) test_attention_padding(q, k, v, R, B, T, H, Hkv, hd);

    free(q); free(k); free(v); free(R); free(out); free(lse); free(ref); free(ref_att); free(ref_lse); free(seg);
    free(dq); free(dk); free(dv); free(tt_out); free(tt_att); free(tt_dq); free(tt_dk); free(tt_dv);
}

/* ---------------------------------------------------------------- swiglu */

typedef struct { double *ref; float *gate, *up, *R; long n; } swi_ctx;

/* reference: ref [n] = silu(gate) * up */
static void swi_ref(double *ref, const float *gate, const float *up, long n) {
    for (long i = 0; i < n; i++) ref[i] = gate[i] / (1.0 + exp(-(double)gate[i])) * up[i];
}

static double swi_loss(void *p) {
    swi_ctx *c = p;
    swi_ref(c->ref, c->gate, c->up, c->n);
    return dot_loss_ref(c->ref, c->R, c->n);
}

static void test_swiglu(void) {
    int N = rand_int(3, 5), F = rand_int(5, 9);
    long n = (long)N * F;
    printf("swiglu N=%d F=%d\n", N, F);
    float *gate = rand_buf(n, 0, 2), *up = rand_buf(n, 0, 1), *R = rand_buf(n, 0, 1);
    float *out = slim_malloc(sizeof(float) * n);
    swiglu_forward(out, gate, up, N, F);
    double *ref = slim_malloc(sizeof(double) * n);
    swi_ref(ref, gate, up, n);
    check_fwd("swiglu_forward", out, ref, n);
    swi_ctx c = {ref, gate, up, R, n}; /* reuses ref: the forward check is done */
    float *dgate = pre_buf(n), *dup = pre_buf(n);
    swiglu_backward(dgate, dup, R, gate, up, N, F);
    unpre(dgate, n);
    unpre(dup, n);
    check_grad("swiglu dgate", dgate, gate, n, swi_loss, &c);
    check_grad("swiglu dup", dup, up, n, swi_loss, &c);
    free(gate); free(up); free(R); free(out); free(ref); free(dgate); free(dup);
}

/* ---------------------------------------------------------------- crossentropy */

typedef struct { float *logits; double *ref_loss, *ref_p; const int32_t *tgt; int M, V; float scale; } ce_ctx;

/* reference: ref_loss [M] = logsumexp(logits row) - logit of the target, ref_p [M,V] = softmax;
 * returns the summed loss */
static double ce_ref(double *ref_loss, double *ref_p, const float *logits, const int32_t *tgt, int M, int V) {
    double total = 0.0;
    for (int m = 0; m < M; m++) {
        double mx = -INFINITY, s = 0.0;
        for (int j = 0; j < V; j++) mx = fmax(mx, logits[m * V + j]);
        for (int j = 0; j < V; j++) s += exp(logits[m * V + j] - mx);
        for (int j = 0; j < V; j++) ref_p[m * V + j] = exp(logits[m * V + j] - mx) / s;
        ref_loss[m] = mx + log(s) - logits[m * V + tgt[m]];
        total += ref_loss[m];
    }
    return total;
}

static double ce_loss(void *p) {
    ce_ctx *c = p;
    return c->scale * ce_ref(c->ref_loss, c->ref_p, c->logits, c->tgt, c->M, c->V);
}

static void test_crossentropy(void) {
    int M = 4, V = 9;
    int32_t tgt[4] = {0, 8, 3, 3};
    float scale = 1.0f / 3.0f; /* not 1 and not 1/M, so the scale must really be applied */
    printf("crossentropy M=%d V=%d scale=%g\n", M, V, scale);
    long n = (long)M * V;
    float *logits = rand_buf(n, 0, 2), *work = slim_malloc(sizeof(float) * n), *losses = slim_malloc(sizeof(float) * M);
    logits[5] += 40.0f; /* a large logit: the max-subtraction must keep it finite */
    memcpy(work, logits, sizeof(float) * n);
    double total = crossentropy_forward(work, losses, tgt, M, V);
    double *ref_loss = slim_malloc(sizeof(double) * M), *ref_p = slim_malloc(sizeof(double) * n);
    double ref_total = ce_ref(ref_loss, ref_p, logits, tgt, M, V);
    printf("  crossentropy total %.9g ref %.9g\n", total, ref_total);
    CHECK(fabs(total - ref_total) <= 1e-5 * fabs(ref_total), "crossentropy total %.9g != ref %.9g", total, ref_total);
    check_fwd("crossentropy_forward losses", losses, ref_loss, M);
    check_fwd("crossentropy_forward probs", work, ref_p, n);
    /* backward accumulates (+=) dlogits from the probabilities: into zeros here */
    float *dlogits = slim_calloc(n, sizeof(float));
    crossentropy_backward(dlogits, work, tgt, M, V, scale);
    ce_ctx c = {logits, ref_loss, ref_p, tgt, M, V, scale}; /* reuses ref_loss, ref_p: checked above */
    check_grad("crossentropy dlogits", dlogits, logits, n, ce_loss, &c);
    /* a second call adds the same gradient again: x + x = 2x exactly */
    float *once = slim_malloc(sizeof(float) * n);
    memcpy(once, dlogits, sizeof(float) * n);
    crossentropy_backward(dlogits, work, tgt, M, V, scale);
    int acc = 1;
    for (long i = 0; i < n; i++) acc &= dlogits[i] == 2.0f * once[i];
    CHECK(acc, "crossentropy_backward does not accumulate (+=) into dlogits");
    free(once);
    free(logits); free(work); free(dlogits); free(losses); free(ref_loss); free(ref_p);
}

/* ---------------------------------------------------------------- residual */

static void test_residual(void) {
    long n = 37;
    printf("residual n=%ld\n", n);
    float *a = rand_buf(n, 0, 1), *b = rand_buf(n, 0, 1), *out = slim_malloc(sizeof(float) * n);
    residual_forward(out, a, b, n);
    int ok = 1;
    for (long i = 0; i < n; i++) ok &= out[i] == a[i] + b[i];
    CHECK(ok, "residual_forward != a + b");
    residual_forward(a, a, b, n); /* in place (out == a) as the model uses it */
    ok = 1;
    for (long i = 0; i < n; i++) ok &= a[i] == out[i];
    CHECK(ok, "residual_forward in place differs");
    free(a); free(b); free(out);
}

int main(void) {
    slim_rng_seed(&rng, 1234);
    test_embedding();
    test_rmsnorm();
    test_matmul();
    test_lora();
    test_rope();
    test_attention(2, 5, 4, 2, 4, 0, 1); /* GQA */
    test_attention(2, 5, 4, 4, 4, 0, 1); /* H == Hkv */
    test_attention(2, 5, 4, 2, 8, 0, 1); /* hd = 8 */
    test_attention(1, 7, 4, 1, 8, 0, 1); /* one kv head for all */
    test_attention(2, 7, 4, 2, 4, 1, 1); /* packed rows: three examples a row */
    test_attention(2, 1, 4, 2, 4, 0, 1); /* T = 1 */
    test_attention(2, 1, 4, 2, 4, 1, 1); /* T = 1, packed */
    test_attention(1, 70, 2, 1, 4, 0, 1); /* two tiles, the second partial */
    test_attention(2, 70, 4, 2, 4, 1, 1); /* packed across a tile boundary, GQA */
    test_attention(2, 150, 4, 2, 8, 1, 0); /* three tiles; whole key tiles before an example skipped */
    test_attention(2, 200, 4, 1, 16, 0, 0); /* four tiles, one kv head */
    test_attention(1, 2 * ATT_TILE, 2, 2, 8, 0, 0); /* T a multiple of the tile */
    test_attention_prefix(2, 150, 70, 4, 2, 8); /* prompt past one tile, segments across the next */
    test_attention_prefix(1, 40, 12, 2, 1, 4);
    test_swiglu();
    test_crossentropy();
    test_residual();
    return tu_finish("test_ops");
}
