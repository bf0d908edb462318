/* ops.c — forward and backward kernels; see ops.h for shapes and conventions. */
#include "ops.h"

#include <cblas.h>
#include <math.h>
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
    lora_project(lora_u, inp, A, N, C, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, r, scale, lora_u, r, B, r, 1.0f, out, OC);
}

void lora_project(float *lora_u, const float *inp, const float *A, int N, int C, int r) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, r, C, 1.0f, inp, C, A, C, 0.0f, lora_u, r);
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

/* ---- attention (FlashAttention-2: Dao 2023, "FlashAttention-2: Faster Attention with Better
 * Parallelism and Work Partitioning", Algorithms 1 and 2), causal, GQA, packed rows */

/* 0 when key tile [j0, j1) is invisible to every query row of [i0, i1): wholly above the causal
 * diagonal, or wholly before every row's example start (seg: the sequence's seg_start, or NULL) and past
 * every row's shared prefix (pre: the sequence's prefix, or NULL). */
static int att_tile_visible(const int32_t *seg, const int32_t *pre, int i0, int i1, int j0, int j1) {
    if (j0 > i1 - 1) return 0;
    if (!seg) return 1;
    int first = seg[i0], last_pre = pre ? pre[i0] : 0;
    for (int i = i0 + 1; i < i1; i++) {
        first = seg[i] < first ? seg[i] : first;
        if (pre) last_pre = pre[i] > last_pre ? pre[i] : last_pre;
    }
    return j1 > first || j0 < last_pre;
}

/* Visible columns of query row i inside key tile [j0, j0 + nj): keys seg[i] .. i (seg: the sequence's
 * seg_start, or NULL for 0) into [*c0, *c1), and the shared prefix 0 .. pre[i]-1 before seg[i] (pre: the
 * sequence's prefix, or NULL for none) into [0, *p1); 0 <= *p1 <= *c0 <= *c1 <= nj. */
static void att_row_range(const int32_t *seg, const int32_t *pre, int i, int j0, int nj, int *p1, int *c0, int *c1) {
    int lo = (seg ? seg[i] : 0) - j0, hi = i - j0 + 1;
    *c1 = hi < 0 ? 0 : hi < nj ? hi : nj;
    *c0 = lo < 0 ? 0 : lo < *c1 ? lo : *c1;
    int pe = (pre ? pre[i] : 0) - j0; /* the prefix ends before the example starts */
    *p1 = pe < 0 ? 0 : pe < *c0 ? pe : *c0;
}

/* Score tile S [ni,nj] = scale * Q[i0..i0+ni) K[j0..j0+nj)^T; Q, K point at the head's row 0. Entries
 * outside each row's att_row_range are masked by the callers. */
static void att_scores(float *S, const float *Q, int ldq, const float *K, int ldk, int i0, int ni, int j0, int nj,
                       int hd, float scale) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ni, nj, hd, scale, Q + (long)i0 * ldq, ldq,
                K + (long)j0 * ldk, ldk, 0.0f, S, nj);
}

/* Online softmax over one score tile of query rows i0.. (Algorithm 1, lines 9-10): S [ni,nj] becomes
 * exp(S - m_new) on each row's visible keys and 0 elsewhere, the running maxima m [ni] and sums l [ni]
 * are updated, and the rows of O [ni,hd] (stride ldo) accumulated so far are rescaled by
 * exp(m_old - m_new). */
static void att_online_softmax(float *S, float *m, float *l, float *O, int ldo, const int32_t *seg,
                               const int32_t *pre, int i0, int ni, int j0, int nj, int hd) {
    for (int r = 0; r < ni; r++) {
        float *row = S + (long)r * nj;
        int p1, c0, c1;
        att_row_range(seg, pre, i0 + r, j0, nj, &p1, &c0, &c1);
        float mx = m[r];
        for (int c = 0; c < p1; c++) mx = row[c] > mx ? row[c] : mx;
        for (int c = c0; c < c1; c++) mx = row[c] > mx ? row[c] : mx;
        float alpha = p1 > 0 || c0 < c1 ? expf(m[r] - mx) : 1.0f, sum = 0.0f; /* exp(-inf) = 0 on a row's first keys */
        for (int c = 0; c < p1; c++) {
            row[c] = expf(row[c] - mx);
            sum += row[c];
        }
        for (int c = p1; c < c0; c++) row[c] = 0.0f;
        for (int c = c0; c < c1; c++) {
            row[c] = expf(row[c] - mx);
            sum += row[c];
        }
        for (int c = c1; c < nj; c++) row[c] = 0.0f;
        l[r] = alpha * l[r] + sum;
        m[r] = mx;
        if (alpha != 1.0f)
            for (int e = 0; e < hd; e++) O[(long)r * ldo + e] *= alpha;
    }
}

void attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                       const int32_t *seg_start, const int32_t *prefix, int B, int T, int H, int Hkv, int hd) {
    const int ldq = H * hd, ldk = Hkv * hd, group = H / Hkv, n_tiles = (T + ATT_TILE - 1) / ATT_TILE;
    const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel
    {
        float *S = slim_malloc(sizeof(float) * ATT_TILE * (ATT_TILE + 2)); /* [Br,Bc] scores, then m, l [Br] */
        float *m = S + ATT_TILE * ATT_TILE, *l = m + ATT_TILE;
        /* one task per query tile Q_i of one head: O_i, lse_i (Algorithm 1, outer loop) */
#pragma omp for collapse(3) schedule(dynamic)
        for (int b = 0; b < B; b++) {
            for (int h = 0; h < H; h++) {
                for (int it = 0; it < n_tiles; it++) {
                    const int i0 = it * ATT_TILE, ni = T - i0 < ATT_TILE ? T - i0 : ATT_TILE;
                    const int32_t *seg = seg_start ? seg_start + (long)b * T : NULL;
                    const int32_t *pre = seg && prefix ? prefix + (long)b * T : NULL;
                    const float *Q = q + (long)b * T * ldq + h * hd;
                    const float *K = k + (long)b * T * ldk + (h / group) * hd;
                    const float *V = v + (long)b * T * ldk + (h / group) * hd;
                    float *O = out + ((long)b * T + i0) * ldq + h * hd; /* [ni,hd], stride ldq */
                    for (int r = 0; r < ni; r++) {
                        m[r] = -INFINITY;
                        l[r] = 0.0f;
                        memset(O + (long)r * ldq, 0, sizeof(float) * hd);
                    }
                    /* key tiles K_j, V_j up to the diagonal (causal blocks skipped) */
                    for (int j0 = 0; j0 < i0 + ni; j0 += ATT_TILE) {
                        const int nj = T - j0 < ATT_TILE ? T - j0 : ATT_TILE;
                        if (!att_tile_visible(seg, pre, i0, i0 + ni, j0, j0 + nj)) continue;
                        att_scores(S, Q, ldq, K, ldk, i0, ni, j0, nj, hd, scale);
                        att_online_softmax(S, m, l, O, ldq, seg, pre, i0, ni, j0, nj, hd);
                        /* O_i += P~ V_j */
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ni, hd, nj, 1.0f, S, nj,
                                    V + (long)j0 * ldk, ldk, 1.0f, O, ldq);
                    }
                    /* O_i = diag(l)^-1 O_i, L_i = m_i + log(l_i) (lines 12-13); every row sees its own key */
                    float *L = lse + ((long)b * H + h) * T + i0;
                    for (int r = 0; r < ni; r++) {
                        float inv = 1.0f / l[r];
                        for (int e = 0; e < hd; e++) O[(long)r * ldq + e] *= inv;
                        L[r] = m[r] + logf(l[r]);
                    }
                }
            }
        }
        free(S);
    }
}

void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                        const float *v, const float *out, const float *lse, const int32_t *seg_start, int B, int T,
                        int H, int Hkv, int hd) {
    const int ldq = H * hd, ldk = Hkv * hd, group = H / Hkv;
    const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel
    {
        /* P [Br,Bc], dS [Br,Bc], D [T] */
        float *P = slim_malloc(sizeof(float) * (2 * ATT_TILE * ATT_TILE + (size_t)T));
        float *dS = P + ATT_TILE * ATT_TILE, *D = dS + ATT_TILE * ATT_TILE;
        /* one task per (sequence, kv head): the query heads of a group add into the same dk/dv rows, and
         * each head's dq is written by this task alone, so no two threads touch the same gradient */
#pragma omp for collapse(2) schedule(dynamic)
        for (int b = 0; b < B; b++) {
            for (int g = 0; g < Hkv; g++) {
                const int32_t *seg = seg_start ? seg_start + (long)b * T : NULL;
                const float *K = k + (long)b * T * ldk + g * hd, *V = v + (long)b * T * ldk + g * hd;
                float *dK = dk + (long)b * T * ldk + g * hd, *dV = dv + (long)b * T * ldk + g * hd;
                for (int h = g * group; h < (g + 1) * group; h++) {
                    const float *Q = q + (long)b * T * ldq + h * hd, *dO = dout + (long)b * T * ldq + h * hd;
                    const float *O = out + (long)b * T * ldq + h * hd, *L = lse + ((long)b * H + h) * T;
                    float *dQ = dq + (long)b * T * ldq + h * hd;
                    /* D_i = rowsum(dO_i * O_i) (Algorithm 2, line 4) */
                    for (int i = 0; i < T; i++) {
                        double acc = 0.0;
                        for (int e = 0; e < hd; e++) acc += (double)dO[(long)i * ldq + e] * O[(long)i * ldq + e];
                        D[i] = (float)acc;
                    }
                    /* outer loop over key tiles K_j, V_j; inner over the query tiles at or below them */
                    for (int j0 = 0; j0 < T; j0 += ATT_TILE) {
                        const int nj = T - j0 < ATT_TILE ? T - j0 : ATT_TILE;
                        for (int i0 = j0; i0 < T; i0 += ATT_TILE) {
                            const int ni = T - i0 < ATT_TILE ? T - i0 : ATT_TILE;
                            if (!att_tile_visible(seg, NULL, i0, i0 + ni, j0, j0 + nj)) continue;
                            /* P_ij = exp(S_ij - L_i) on the visible keys, 0 elsewhere */
                            att_scores(P, Q, ldq, K, ldk, i0, ni, j0, nj, hd, scale);
                            for (int r = 0; r < ni; r++) {
                                float *p = P + (long)r * nj;
                                int p1, c0, c1; /* the backward has no prefix: p1 = 0 */
                                att_row_range(seg, NULL, i0 + r, j0, nj, &p1, &c0, &c1);
                                for (int c = 0; c < nj; c++) p[c] = c >= c0 && c < c1 ? expf(p[c] - L[i0 + r]) : 0.0f;
                            }
                            /* dV_j += P_ij^T dO_i; dP_ij = dO_i V_j^T */
                            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nj, hd, ni, 1.0f, P, nj,
                                        dO + (long)i0 * ldq, ldq, 1.0f, dV + (long)j0 * ldk, ldk);
                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ni, nj, hd, 1.0f, dO + (long)i0 * ldq,
                                        ldq, V + (long)j0 * ldk, ldk, 0.0f, dS, nj);
                            /* dS_ij = P_ij * (dP_ij - D_i), times the score scale (0 where P is) */
                            for (int r = 0; r < ni; r++)
                                for (int c = 0; c < nj; c++)
                                    dS[r * nj + c] = P[r * nj + c] * (dS[r * nj + c] - D[i0 + r]) * scale;
                            /* dQ_i += dS_ij K_j; dK_j += dS_ij^T Q_i */
                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ni, hd, nj, 1.0f, dS, nj,
                                        K + (long)j0 * ldk, ldk, 1.0f, dQ + (long)i0 * ldq, ldq);
                            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nj, hd, ni, 1.0f, dS, nj,
                                        Q + (long)i0 * ldq, ldq, 1.0f, dK + (long)j0 * ldk, ldk);
                        }
                    }
                }
            }
        }
        free(P);
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
