/* ops.c — forward and backward kernels; see ops.h for shapes and conventions. */
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

void embedding_forward(float *out, const int32_t *tokens, const float *wte, int N, int C) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) memcpy(out + (long)n * C, wte + (long)tokens[n] * C, sizeof(float) * C);
}

void embedding_backward(float *dwte, const float *dout, const int32_t *tokens, int N, int C) {
    /* rows sharing a token id add into the same row of dwte: parallel over channels, not rows */
#pragma omp parallel for
    for (int c = 0; c < C; c++)
        for (int n = 0; n < N; n++) dwte[(long)tokens[n] * C + c] += dout[(long)n * C + c];
}

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C, float eps) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *x = inp + (long)n * C;
        float *o = out + (long)n * C;
        double ss = 0.0;
        for (int i = 0; i < C; i++) ss += (double)x[i] * x[i];
        float s = (float)(1.0 / sqrt(ss / C + eps));
        for (int i = 0; i < C; i++) o[i] = x[i] * s * w[i];
        rstd[n] = s;
    }
}

void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                      const float *rstd, int N, int C) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *x = inp + (long)n * C, *d = dout + (long)n * C;
        float *dx = dinp + (long)n * C;
        float s = rstd[n];
        double dot = 0.0; /* sum_j w_j dout_j x_j */
        for (int i = 0; i < C; i++) dot += (double)w[i] * d[i] * x[i];
        float k = (float)(dot * s * s * s / C);
        for (int i = 0; i < C; i++) dx[i] += s * w[i] * d[i] - k * x[i];
    }
    if (dw) {
#pragma omp parallel for
        for (int i = 0; i < C; i++) {
            double acc = 0.0;
            for (int n = 0; n < N; n++) acc += (double)dout[(long)n * C + i] * inp[(long)n * C + i] * rstd[n];
            dw[i] += (float)acc;
        }
    }
}

void matmul_forward(float *out, const float *inp, const float *W, int N, int C, int OC, float beta) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, W, C, beta, out, OC);
}

void matmul_backward(float *dinp, float *dW, const float *dout, const float *inp, const float *W,
                     int N, int C, int OC) {
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, W, C, 1.0f, dinp, C);
    if (dW)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dW, C);
}

void lora_forward(float *out, float *u, const float *inp, const float *A, const float *B,
                  int N, int C, int OC, int r, float scale) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, r, C, 1.0f, inp, C, A, C, 0.0f, u, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, r, scale, u, r, B, r, 1.0f, out, OC);
}

void lora_backward(float *dinp, float *dA, float *dB, float *du, const float *dout, const float *inp,
                   const float *u, const float *A, const float *B, int N, int C, int OC, int r,
                   float scale) {
    /* du [N,r] = dout B (unscaled) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, r, OC, 1.0f, dout, OC, B, r, 0.0f, du, r);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, r, N, scale, dout, OC, u, r, 1.0f, dB, r);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, C, N, scale, du, r, inp, C, 1.0f, dA, C);
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, r, scale, du, r, A, C, 1.0f, dinp, C);
}

/* Rotates each (2i, 2i+1) pair of every head of row n by sign * pos[n] * theta^(-2i/hd). */
static void rope_rotate(float *x, const int32_t *pos, int N, int n_heads, int hd, float theta, float sign) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        float *row = x + (long)n * n_heads * hd;
        for (int i = 0; i < hd / 2; i++) {
            double freq = pow((double)theta, -2.0 * i / hd);
            double ang = (double)pos[n] * freq;
            float c = (float)cos(ang), s = sign * (float)sin(ang);
            for (int h = 0; h < n_heads; h++) {
                float *p = row + h * hd + 2 * i;
                float x0 = p[0], x1 = p[1];
                p[0] = x0 * c - x1 * s;
                p[1] = x0 * s + x1 * c;
            }
        }
    }
}

void rope_forward(float *x, const int32_t *pos, int N, int n_heads, int hd, float theta) {
    rope_rotate(x, pos, N, n_heads, hd, theta, 1.0f);
}

void rope_backward(float *dx, const int32_t *pos, int N, int n_heads, int hd, float theta) {
    /* the rotation is orthogonal: its gradient is the rotation by the opposite angle */
    rope_rotate(dx, pos, N, n_heads, hd, theta, -1.0f);
}

void attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                       int B, int T, int H, int Hkv, int hd) {
    const int ldq = H * hd, ldk = Hkv * hd, group = H / Hkv;
    const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            const float *Q = q + (long)b * T * ldq + h * hd;
            const float *K = k + (long)b * T * ldk + (h / group) * hd;
            const float *V = v + (long)b * T * ldk + (h / group) * hd;
            float *S = att + ((long)b * H + h) * T * T;
            float *O = out + (long)b * T * ldq + h * hd;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, scale, Q, ldq, K, ldk, 0.0f, S, T);
            for (int i = 0; i < T; i++) {
                float *row = S + (long)i * T;
                float mx = row[0];
                for (int j = 1; j <= i; j++) mx = row[j] > mx ? row[j] : mx;
                double sum = 0.0;
                for (int j = 0; j <= i; j++) { row[j] = expf(row[j] - mx); sum += row[j]; }
                float inv = (float)(1.0 / sum);
                for (int j = 0; j <= i; j++) row[j] *= inv;
                for (int j = i + 1; j < T; j++) row[j] = 0.0f;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, S, T, V, ldk, 0.0f, O, ldq);
        }
    }
}

long ops_attention_scratch_size(int T) { return (long)omp_get_max_threads() * T * T; }

void attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                        const float *q, const float *k, const float *v, const float *att,
                        int B, int T, int H, int Hkv, int hd) {
    const int ldq = H * hd, ldk = Hkv * hd, group = H / Hkv;
    const float scale = 1.0f / sqrtf((float)hd);
    /* one task per (sequence, kv head): the query heads of a group add into the same dk/dv columns */
#pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int g = 0; g < Hkv; g++) {
            float *dS = scratch + (long)omp_get_thread_num() * T * T; /* [T,T] */
            const float *K = k + (long)b * T * ldk + g * hd;
            const float *V = v + (long)b * T * ldk + g * hd;
            float *dK = dk + (long)b * T * ldk + g * hd;
            float *dV = dv + (long)b * T * ldk + g * hd;
            for (int h = g * group; h < (g + 1) * group; h++) {
                const float *Q = q + (long)b * T * ldq + h * hd;
                const float *dO = dout + (long)b * T * ldq + h * hd;
                const float *P = att + ((long)b * H + h) * T * T;
                float *dQ = dq + (long)b * T * ldq + h * hd;
                /* dP = dO V^T; dV += P^T dO */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, 1.0f, dO, ldq, V, ldk, 0.0f, dS, T);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f, P, T, dO, ldq, 1.0f, dV, ldk);
                /* softmax backward: dS = P * (dP - rowsum(P * dP)) * scale */
                for (int i = 0; i < T; i++) {
                    const float *p = P + (long)i * T;
                    float *d = dS + (long)i * T;
                    double dot = 0.0;
                    for (int j = 0; j <= i; j++) dot += (double)p[j] * d[j];
                    for (int j = 0; j <= i; j++) d[j] = p[j] * (d[j] - (float)dot) * scale;
                    for (int j = i + 1; j < T; j++) d[j] = 0.0f;
                }
                /* dQ += dS K; dK += dS^T Q */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, dS, T, K, ldk, 1.0f, dQ, ldq);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f, dS, T, Q, ldq, 1.0f, dK, ldk);
            }
        }
    }
}

void swiglu_forward(float *out, const float *gate, const float *up, int N, int F) {
    long n = (long)N * F;
#pragma omp parallel for
    for (long i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                     int N, int F) {
    long n = (long)N * F;
#pragma omp parallel for
    for (long i = 0; i < n; i++) {
        float g = gate[i], sg = 1.0f / (1.0f + expf(-g));
        dgate[i] += dout[i] * up[i] * sg * (1.0f + g * (1.0f - sg));
        dup[i] += dout[i] * g * sg;
    }
}

void residual_forward(float *out, const float *a, const float *b, long n) {
#pragma omp parallel for
    for (long i = 0; i < n; i++) out[i] = a[i] + b[i];
}

double crossentropy_forward(float *logits, float *losses, const int32_t *targets, int M, int V) {
    double total = 0.0;
#pragma omp parallel for reduction(+ : total)
    for (int m = 0; m < M; m++) {
        float *row = logits + (long)m * V;
        float mx = row[0];
        for (int j = 1; j < V; j++) mx = row[j] > mx ? row[j] : mx;
        double sum = 0.0;
        float zt = row[targets[m]];
        for (int j = 0; j < V; j++) { row[j] = expf(row[j] - mx); sum += row[j]; }
        float inv = (float)(1.0 / sum);
        for (int j = 0; j < V; j++) row[j] *= inv;
        double loss = log(sum) - ((double)zt - mx); /* logsumexp - z_target */
        losses[m] = (float)loss;
        total += loss;
    }
    return total;
}

void crossentropy_backward(float *probs, const int32_t *targets, int M, int V, float scale) {
#pragma omp parallel for
    for (int m = 0; m < M; m++) {
        float *row = probs + (long)m * V;
        row[targets[m]] -= 1.0f;
        for (int j = 0; j < V; j++) row[j] *= scale;
    }
}
