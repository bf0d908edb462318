/* ops.c — forward and backward kernels; see ops.h for shapes and conventions. */
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

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

void lora_forward(float *out, float *lora_u, const float *inp, const float *A, const float *B,
                  int N, int C, int OC, int r, float scale) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, r, C, 1.0f, inp, C, A, C, 0.0f, lora_u, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, r, scale, lora_u, r, B, r, 1.0f, out, OC);
}

void lora_backward(float *dinp, float *dA, float *dB, float *dlora_u, const float *dout, const float *inp,
                   const float *lora_u, const float *A, const float *B, int N, int C, int OC, int r,
                   float scale) {
    /* dlora_u [N,r] = dout B (unscaled) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, r, OC, 1.0f, dout, OC, B, r, 0.0f, dlora_u, r);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, r, N, scale, dout, OC, lora_u, r, 1.0f, dB, r);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, C, N, scale, dlora_u, r, inp, C, 1.0f, dA, C);
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, r, scale, dlora_u, r, A, C, 1.0f, dinp, C);
}

void rope_cache_init(rope_cache *rc, int hd, int max_pos, float theta, int neox, const float *freq_factors) {
    rc->hd = hd;
    rc->max_pos = max_pos;
    rc->neox = neox;
    rc->cos = slim_malloc(sizeof(float) * (size_t)max_pos * (hd / 2));
    rc->sin = slim_malloc(sizeof(float) * (size_t)max_pos * (hd / 2));
    for (int i = 0; i < hd / 2; i++) {
        double freq = pow((double)theta, -2.0 * i / hd) / (freq_factors ? freq_factors[i] : 1.0);
        for (int p = 0; p < max_pos; p++) {
            double ang = (double)p * freq;
            rc->cos[(size_t)p * (hd / 2) + i] = (float)cos(ang);
            rc->sin[(size_t)p * (hd / 2) + i] = (float)sin(ang);
        }
    }
}

void rope_cache_free(rope_cache *rc) {
    free(rc->cos);
    free(rc->sin);
    rc->cos = rc->sin = NULL;
}

/* Rotates every pair of every head of row n by sign * its angle at pos[n]. */
static void rope_rotate(float *x, const int32_t *pos, int N, int n_heads, const rope_cache *rc, float sign) {
    const int hd = rc->hd, half = hd / 2;
    /* pair i is (i0, i0 + stride): adjacent in the normal layout, half a head apart in neox */
    const int stride = rc->neox ? half : 1;
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        float *row = x + (long)n * n_heads * hd;
        const float *cs = rc->cos + (size_t)pos[n] * half, *sn = rc->sin + (size_t)pos[n] * half;
        for (int h = 0; h < n_heads; h++) {
            float *head = row + h * hd;
            for (int i = 0; i < half; i++) {
                float *p0 = head + (rc->neox ? i : 2 * i), *p1 = p0 + stride;
                float c = cs[i], s = sign * sn[i], x0 = *p0, x1 = *p1;
                *p0 = x0 * c - x1 * s;
                *p1 = x0 * s + x1 * c;
            }
        }
    }
}

void rope_forward(float *x, const int32_t *pos, int N, int n_heads, const rope_cache *rc) {
    rope_rotate(x, pos, N, n_heads, rc, 1.0f);
}

void rope_backward(float *dx, const int32_t *pos, int N, int n_heads, const rope_cache *rc) {
    /* the rotation is orthogonal: its gradient is the rotation by the opposite angle */
    rope_rotate(dx, pos, N, n_heads, rc, -1.0f);
}

/* Rows of W per dequantized tile: about QMATMUL_TILE floats (1 MiB), at least one row. */
static int64_t qmatmul_tile_rows(const qmatrix *W) {
    int64_t tr = QMATMUL_TILE / W->cols;
    if (tr < 1) tr = 1;
    return tr > W->rows ? W->rows : tr;
}

long ops_qmatmul_scratch_size(const qmatrix *W) {
    return W->type == GGML_TYPE_F32 ? 0 : (long)(qmatmul_tile_rows(W) * W->cols);
}

/* Dequantizes rows [r0, r1) of W into tile [(r1-r0), cols], rows split across threads. */
static void qmatmul_dequantize_tile(const qmatrix *W, int64_t r0, int64_t r1, float *tile) {
    /* NF4 blocks run over the flattened tensor: split at multiples of its block so that no two
     * threads decode the same block */
    int64_t chunk = W->type == SLIM_TYPE_NF4 ? 64 : 8;
    int64_t n_chunks = (r1 - r0 + chunk - 1) / chunk;
#pragma omp parallel for
    for (int64_t c = 0; c < n_chunks; c++) {
        int64_t a = r0 + c * chunk, b = a + chunk < r1 ? a + chunk : r1;
        qmatrix_dequantize_rows(W, a, b, tile + (size_t)(a - r0) * W->cols);
    }
}

void qmatmul_forward(float *out, const float *inp, const qmatrix *W, int N, float beta, float *scratch) {
    const int C = (int)W->cols, OC = (int)W->rows;
    if (W->type == GGML_TYPE_F32) {
        matmul_forward(out, inp, (const float *)W->data, N, C, OC, beta);
        return;
    }
    int64_t tr = qmatmul_tile_rows(W);
    for (int64_t r0 = 0; r0 < OC; r0 += tr) {
        int64_t r1 = r0 + tr < OC ? r0 + tr : OC;
        qmatmul_dequantize_tile(W, r0, r1, scratch);
        /* out[:, r0:r1] = inp scratch^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, (int)(r1 - r0), C, 1.0f, inp, C, scratch, C, beta,
                    out + r0, OC);
    }
}

void qmatmul_backward(float *dinp, const float *dout, const qmatrix *W, int N, float *scratch) {
    const int C = (int)W->cols, OC = (int)W->rows;
    if (W->type == GGML_TYPE_F32) {
        matmul_backward(dinp, NULL, dout, NULL, (const float *)W->data, N, C, OC);
        return;
    }
    int64_t tr = qmatmul_tile_rows(W);
    for (int64_t r0 = 0; r0 < OC; r0 += tr) {
        int64_t r1 = r0 + tr < OC ? r0 + tr : OC;
        qmatmul_dequantize_tile(W, r0, r1, scratch);
        /* dinp += dout[:, r0:r1] scratch */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, (int)(r1 - r0), 1.0f, dout + r0, OC, scratch, C,
                    1.0f, dinp, C);
    }
}

void attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                       const int32_t *seg_start, int B, int T, int H, int Hkv, int hd) {
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
                int j0 = seg_start ? seg_start[b * T + i] : 0; /* keys j0..i are visible */
                float mx = row[j0];
                for (int j = j0 + 1; j <= i; j++) mx = row[j] > mx ? row[j] : mx;
                double sum = 0.0;
                for (int j = j0; j <= i; j++) { row[j] = expf(row[j] - mx); sum += row[j]; }
                float inv = (float)(1.0 / sum);
                for (int j = 0; j < j0; j++) row[j] = 0.0f;
                for (int j = j0; j <= i; j++) row[j] *= inv;
                for (int j = i + 1; j < T; j++) row[j] = 0.0f;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, S, T, V, ldk, 0.0f, O, ldq);
        }
    }
}

long ops_attention_scratch_size(int T) { return (long)omp_get_max_threads() * T * T; }

void attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                        const float *q, const float *k, const float *v, const float *att,
                        const int32_t *seg_start, int B, int T, int H, int Hkv, int hd) {
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
                    int j0 = seg_start ? seg_start[b * T + i] : 0;
                    double dot = 0.0;
                    for (int j = j0; j <= i; j++) dot += (double)p[j] * d[j];
                    for (int j = 0; j < j0; j++) d[j] = 0.0f;
                    for (int j = j0; j <= i; j++) d[j] = p[j] * (d[j] - (float)dot) * scale;
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

void crossentropy_backward(float *dlogits, const float *probs, const int32_t *targets, int M, int V, float scale) {
#pragma omp parallel for
    for (int m = 0; m < M; m++) {
        const float *p = probs + (long)m * V;
        float *d = dlogits + (long)m * V;
        for (int j = 0; j < V; j++) {
            float indicator = j == targets[m] ? 1.0f : 0.0f;
            d[j] += (p[j] - indicator) * scale;
        }
    }
}
