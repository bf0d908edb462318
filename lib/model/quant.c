/* quant.c — ggml block formats, IEEE half / bfloat16 rows, and bitsandbytes NF4 with double
 * quantization. See quant.h for the formats.
 *
 * Facts followed (read, not copied):
 *  - ggml-quants.c: dequantize_row_* and quantize_row_*_ref (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K,
 *    Q5_K, Q6_K), nearest_int, make_qkx2_quants, make_qx_quants, get_scale_min_k4, GROUP_MAX_EPS;
 *    ggml-common.h block layouts; ggml-impl.h fp32 <-> bf16 (round to nearest even, NaN quieted).
 *  - bitsandbytes csrc kernels (kQuantizeBlockwise, dQuantize, dQuantizeNF4, kDequantizeBlockwise)
 *    and functional.py (create_dynamic_map, quantize_4bit with compress_statistics).
 *
 * Floating-point contraction is switched off for this file: ggml's reference expressions such as
 * `d1 * q - m1` are defined with two roundings, and GCC would otherwise fuse them into one FMA under
 * -march=x86-64-v3, changing the low bits. fmaf() is used explicitly where a fused operation is
 * the reference (the dynamic map construction). */
#pragma GCC optimize("fp-contract=off")

#include "quant.h"

#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "common.h"

/* ---------------------------------------------------------------------------------------------
 * block layouts (ggml-common.h) */

#define QK4_0 32
#define QK8_0 32
#define QK_K 256

typedef struct { uint16_t d; int8_t qs[QK8_0]; } block_q8_0;
typedef struct { uint16_t d; uint8_t qs[QK4_0 / 2]; } block_q4_0;
typedef struct { uint16_t d, m; uint8_t qs[QK4_0 / 2]; } block_q4_1;
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[QK4_0 / 2]; } block_q5_0;
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[QK4_0 / 2]; } block_q5_1;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[QK_K / 2]; } block_q4_K;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; } block_q5_K;
typedef struct { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; uint16_t d; } block_q6_K;

_Static_assert(sizeof(block_q8_0) == 34, "block_q8_0 size");
_Static_assert(sizeof(block_q4_0) == 18, "block_q4_0 size");
_Static_assert(sizeof(block_q4_1) == 20, "block_q4_1 size");
_Static_assert(sizeof(block_q5_0) == 22, "block_q5_0 size");
_Static_assert(sizeof(block_q5_1) == 24, "block_q5_1 size");
_Static_assert(sizeof(block_q4_K) == 144, "block_q4_K size");
_Static_assert(sizeof(block_q5_K) == 176, "block_q5_K size");
_Static_assert(sizeof(block_q6_K) == 210, "block_q6_K size");

#define GROUP_MAX_EPS 1e-15f
#define QMIN(a, b) ((a) < (b) ? (a) : (b))
#define QMAX(a, b) ((a) > (b) ? (a) : (b))

/* half -> float through F16C (exact, same as slim_fp16_to_fp32 for every non-NaN half). */
static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }
/* float -> half, round to nearest even (ggml's GGML_FP32_TO_FP16). */
static inline uint16_t f2h(float f) { return slim_fp32_to_fp16(f); }

float slim_bf16_to_fp32(uint16_t h) {
    union { uint32_t u; float f; } v = {.u = (uint32_t)h << 16}; /* the high half of a float */
    return v.f;
}

uint16_t slim_fp32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64); /* NaN: keep it, make it quiet */
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1))) >> 16);           /* round to nearest even */
}

/* 1/d for a block scale d, or 0 when d is 0 or so small (below ~2.9e-39) that 1/d is not finite: such a
 * block stores scale 0 in half precision anyway, and x * inf would make the integer casts below
 * undefined (a finite but tiny weight in a model file reached this). */
static inline float quant_inv_scale(float d) {
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    return isfinite(id) ? id : 0.0f;
}

/* ggml's nearest_int: round to nearest, ties to even, valid for |f| <= 4194303. */
static inline int nearest_int(float f) {
    float v = f + 12582912.f;
    int i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* ---------------------------------------------------------------------------------------------
 * dequantization (hot path: plain loops the compiler vectorises) */

static void dequant_f16(const uint16_t *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    for (; i < n; i++) y[i] = h2f(x[i]);
}

static void dequant_bf16(const uint16_t *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(x + i)));
        _mm256_storeu_ps(y + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
    }
    for (; i < n; i++) y[i] = slim_bf16_to_fp32(x[i]);
}

static void dequant_q8_0(const block_q8_0 *restrict x, float *restrict y, int64_t n) {
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const float d = h2f(x[i].d);
        float *restrict yb = y + i * QK8_0;
        for (int j = 0; j < QK8_0; j++) yb[j] = x[i].qs[j] * d;
    }
}

static void dequant_q4_0(const block_q4_0 *restrict x, float *restrict y, int64_t n) {
    for (int64_t i = 0; i < n / QK4_0; i++) {
        const float d = h2f(x[i].d);
        float *restrict yb = y + i * QK4_0;
        for (int j = 0; j < QK4_0 / 2; j++) {
            yb[j] = ((x[i].qs[j] & 0x0F) - 8) * d;
            yb[j + QK4_0 / 2] = ((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

static void dequant_q4_1(const block_q4_1 *restrict x, float *restrict y, int64_t n) {
    for (int64_t i = 0; i < n / QK4_0; i++) {
        const float d = h2f(x[i].d), m = h2f(x[i].m);
        float *restrict yb = y + i * QK4_0;
        for (int j = 0; j < QK4_0 / 2; j++) {
            yb[j] = (x[i].qs[j] & 0x0F) * d + m;
            yb[j + QK4_0 / 2] = (x[i].qs[j] >> 4) * d + m;
        }
    }
}

/* Q5_0 / Q5_1: bit j of qh is the 5th bit of element j (j < 16 low nibbles, j >= 16 high nibbles). */
static void dequant_q5_0(const block_q5_0 *restrict x, float *restrict y, int64_t n) {
    for (int64_t i = 0; i < n / QK4_0; i++) {
        const float d = h2f(x[i].d);
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        float *restrict yb = y + i * QK4_0;
        for (int j = 0; j < QK4_0 / 2; j++) {
            const int h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
            yb[j] = (((x[i].qs[j] & 0x0F) | h0) - 16) * d;
            yb[j + QK4_0 / 2] = (((x[i].qs[j] >> 4) | h1) - 16) * d;
        }
    }
}

static void dequant_q5_1(const block_q5_1 *restrict x, float *restrict y, int64_t n) {
    for (int64_t i = 0; i < n / QK4_0; i++) {
        const float d = h2f(x[i].d), m = h2f(x[i].m);
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        float *restrict yb = y + i * QK4_0;
        for (int j = 0; j < QK4_0 / 2; j++) {
            const int h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
            yb[j] = ((x[i].qs[j] & 0x0F) | h0) * d + m;
            yb[j + QK4_0 / 2] = ((x[i].qs[j] >> 4) | h1) * d + m;
        }
    }
}

/* 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes (ggml get_scale_min_k4):
 * j < 4: low 6 bits of q[j] (scale) and q[j+4] (min); j >= 4: low/high nibble of q[j+4] plus the
 * top 2 bits of q[j-4] (scale) and q[j] (min). */
static inline void scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Scale and min of sub-blocks is and is + 1 of a Q4_K/Q5_K super-block whose scales are d and min. */
static inline void scale_min_k4_pair(int is, const uint8_t *scales, float d, float min, float *d1, float *m1,
                                     float *d2, float *m2) {
    uint8_t sc, m;
    scale_min_k4(is, scales, &sc, &m);
    *d1 = d * sc;
    *m1 = min * m;
    scale_min_k4(is + 1, scales, &sc, &m);
    *d2 = d * sc;
    *m2 = min * m;
}

static void dequant_q4_K(const block_q4_K *restrict x, float *restrict y, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *q = x[i].qs;
        const float d = h2f(x[i].d), min = h2f(x[i].dmin);
        for (int j = 0, is = 0; j < QK_K; j += 64, is += 2, q += 32) {
            float d1, m1, d2, m2;
            scale_min_k4_pair(is, x[i].scales, d, min, &d1, &m1, &d2, &m2);
            for (int l = 0; l < 32; l++) y[l] = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++) y[l + 32] = d2 * (q[l] >> 4) - m2;
            y += 64;
        }
    }
}

static void dequant_q5_K(const block_q5_K *restrict x, float *restrict y, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *ql = x[i].qs, *qh = x[i].qh;
        const float d = h2f(x[i].d), min = h2f(x[i].dmin);
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0, is = 0; j < QK_K; j += 64, is += 2, ql += 32) {
            float d1, m1, d2, m2;
            scale_min_k4_pair(is, x[i].scales, d, min, &d1, &m1, &d2, &m2);
            for (int l = 0; l < 32; l++) y[l] = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++) y[l + 32] = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            y += 64;
            u1 <<= 2;
            u2 <<= 2;
        }
    }
}

/* Q6_K: per 128 elements, ql[0..63] and qh[0..31]; element l + 32k (k = 0..3) takes its low 4 bits
 * from ql[l] (k=0: low nibble, k=2: high) or ql[l+32] (k=1: low, k=3: high) and its high 2 bits from
 * qh[l] bits 2k..2k+1; q - 32 is scaled by d * scales[l/16 + 2k] (16 sub-blocks of 16). */
static void dequant_q6_K(const block_q6_K *restrict x, float *restrict y, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = h2f(x[i].d);
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        for (int k = 0; k < QK_K; k += 128, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int half = 0; half < 2; half++) {
                const float s0 = d * sc[half + 0], s1 = d * sc[half + 2];
                const float s2 = d * sc[half + 4], s3 = d * sc[half + 6];
                for (int l = 16 * half; l < 16 * half + 16; l++) {
                    const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                    const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    y[l + 0] = s0 * q1;
                    y[l + 32] = s1 * q2;
                    y[l + 64] = s2 * q3;
                    y[l + 96] = s3 * q4;
                }
            }
        }
    }
}

int quant_type_fits(uint32_t type, int64_t cols) {
    if (cols < 0) return 0;
    if (type == SLIM_TYPE_NF4) return 1;
    if (cols == 0) return gguf_type_name(type)[0] != '?';
    return gguf_row_size(type, cols) != 0;
}

static int quant_known(uint32_t type) {
    switch (type) {
    case GGML_TYPE_F32: case GGML_TYPE_F16: case GGML_TYPE_BF16: case GGML_TYPE_Q8_0:
    case GGML_TYPE_Q4_0: case GGML_TYPE_Q4_1: case GGML_TYPE_Q5_0: case GGML_TYPE_Q5_1:
    case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K: case GGML_TYPE_Q6_K:
        return 1;
    default:
        return 0;
    }
}

/* ---------------------------------------------------------------------------------------------
 * reference quantizers (ggml quantize_row_*_ref) */

static void quant_f16(const float *x, uint16_t *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = f2h(x[i]);
}

static void quant_bf16(const float *x, uint16_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = slim_fp32_to_bf16(x[i]);
}

static void quant_q8_0(const float *x, block_q8_0 *y, int64_t n) {
    for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) amax = QMAX(amax, fabsf(x[j]));
        const float d = amax / ((1 << 7) - 1);
        const float id = quant_inv_scale(d);
        y[i].d = f2h(d);
        for (int j = 0; j < QK8_0; j++) y[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

/* largest-magnitude value of a block, keeping its sign (first one on ties) */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++)
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    return max;
}

static void quant_q4_0(const float *x, block_q4_0 *y, int64_t n) {
    for (int64_t i = 0; i < n / QK4_0; i++, x += QK4_0) {
        const float d = signed_absmax(x, QK4_0) / -8;
        const float id = quant_inv_scale(d);
        y[i].d = f2h(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            const uint8_t q0 = QMIN(15, (int8_t)(x[j] * id + 8.5f));
            const uint8_t q1 = QMIN(15, (int8_t)(x[j + QK4_0 / 2] * id + 8.5f));
            y[i].qs[j] = q0 | (uint8_t)(q1 << 4);
        }
    }
}

static void block_minmax(const float *x, int n, float *mn, float *mx) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
    *mn = min;
    *mx = max;
}

/* The offset and scale of a block of QK4_0 values quantized to `bits` bits above its minimum (q4_1,
 * q5_1): *min, d = (max - min) / (2^bits - 1), stored as halves in *d16 and *m16; returns 1/d. */
static float quant_affine_block(const float *x, int bits, float *min, uint16_t *d16, uint16_t *m16) {
    float max;
    block_minmax(x, QK4_0, min, &max);
    const float d = (max - *min) / ((1 << bits) - 1);
    *d16 = f2h(d);
    *m16 = f2h(*min);
    return quant_inv_scale(d);
}

static void quant_q4_1(const float *x, block_q4_1 *y, int64_t n) {
    for (int64_t i = 0; i < n / QK4_0; i++, x += QK4_0) {
        float min;
        const float id = quant_affine_block(x, 4, &min, &y[i].d, &y[i].m);
        for (int j = 0; j < QK4_0 / 2; j++) {
            const uint8_t q0 = QMIN(15, (int8_t)((x[j] - min) * id + 0.5f));
            const uint8_t q1 = QMIN(15, (int8_t)((x[j + QK4_0 / 2] - min) * id + 0.5f));
            y[i].qs[j] = q0 | (uint8_t)(q1 << 4);
        }
    }
}

static void quant_q5_0(const float *x, block_q5_0 *y, int64_t n) {
    for (int64_t i = 0; i < n / QK4_0; i++, x += QK4_0) {
        const float d = signed_absmax(x, QK4_0) / -16;
        const float id = quant_inv_scale(d);
        y[i].d = f2h(d);
        uint32_t qh = 0;
        for (int j = 0; j < QK4_0 / 2; j++) {
            const uint8_t q0 = QMIN(31, (int8_t)(x[j] * id + 16.5f));
            const uint8_t q1 = QMIN(31, (int8_t)(x[j + QK4_0 / 2] * id + 16.5f));
            y[i].qs[j] = (q0 & 0x0F) | (uint8_t)((q1 & 0x0F) << 4);
            qh |= ((q0 & 0x10u) >> 4) << j;
            qh |= ((q1 & 0x10u) >> 4) << (j + QK4_0 / 2);
        }
        memcpy(y[i].qh, &qh, 4);
    }
}

static void quant_q5_1(const float *x, block_q5_1 *y, int64_t n) {
    for (int64_t i = 0; i < n / QK4_0; i++, x += QK4_0) {
        float min;
        const float id = quant_affine_block(x, 5, &min, &y[i].d, &y[i].m);
        uint32_t qh = 0;
        for (int j = 0; j < QK4_0 / 2; j++) {
            const uint8_t q0 = (uint8_t)((x[j] - min) * id + 0.5f);
            const uint8_t q1 = (uint8_t)((x[j + QK4_0 / 2] - min) * id + 0.5f);
            y[i].qs[j] = (q0 & 0x0F) | (uint8_t)((q1 & 0x0F) << 4);
            qh |= ((q0 & 0x10u) >> 4) << j;
            qh |= ((q1 & 0x10u) >> 4) << (j + QK4_0 / 2);
        }
        memcpy(y[i].qh, &qh, 4);
    }
}

/* ggml make_qkx2_quants: weighted least-squares fit of x ~ scale * L + min (L in 0..nmax, min <= 0)
 * over a grid of nstep+1 trial inverse scales; returns scale and stores -min in *the_min. */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
                              uint8_t *Laux, float rmin, float rdelta, int nstep) {
    float min = x[0], max = x[0];
    float sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; i++) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)QMAX(0, QMIN(nmax, l));
        float diff = scale * L[i] + min - x[i];
        best_error += w[i] * (diff * diff);
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = nearest_int(iscale * (x[i] - min));
            l = QMAX(0, QMIN(nmax, l));
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                cur_error += w[i] * (diff * diff);
            }
            if (cur_error < best_error) {
                for (int i = 0; i < n; i++) L[i] = Laux[i];
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* ggml make_qx_quants with rmse_type 1 and no importance weights: symmetric levels -nmax..nmax-1
 * (stored + nmax in L), weights x^2, 18 trial scales around nmax/max. */
static float make_qx_quants_rmse1(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * x[i]);
        l = QMAX(-nmax, QMIN(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = nearest_int(iscale * x[i]);
            l = QMAX(-nmax, QMIN(nmax - 1, l));
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                int l = nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + QMAX(-nmax, QMIN(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Packs the 8 six-bit scales and mins of a Q4_K / Q5_K block (inverse of scale_min_k4). */
static void pack_scales_k4(uint8_t *s, const float *scales, const float *mins, float inv_scale, float inv_min) {
    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
        ls = QMIN(63, ls);
        lm = QMIN(63, lm);
        if (j < 4) {
            s[j] = ls;
            s[j + 4] = lm;
        } else {
            s[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            s[j - 4] |= (uint8_t)((ls >> 4) << 6);
            s[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
}

/* Shared part of quantize_row_q4_K_ref / q5_K_ref: levels L[256] in 0..nmax, scales and d/dmin. */
static void quant_k_levels(const float *x, uint8_t *L, uint8_t *scales12, uint16_t *d16, uint16_t *dmin16,
                           int nmax, float rmin, int nstep) {
    uint8_t Laux[32];
    float weights[32], mins[QK_K / 32], scales[QK_K / 32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < QK_K / 32; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    memset(scales12, 0, 12);
    pack_scales_k4(scales12, scales, mins, inv_scale, inv_min);
    *d16 = f2h(max_scale / 63.f);
    *dmin16 = f2h(max_min / 63.f);
    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t sc, m;
        scale_min_k4(j, scales12, &sc, &m);
        const float d = h2f(*d16) * sc;
        if (!d) continue;
        const float dm = h2f(*dmin16) * m;
        for (int ii = 0; ii < 32; ii++) {
            int l = nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)QMAX(0, QMIN(nmax, l));
        }
    }
}

static void quant_q4_K(const float *x, block_q4_K *y, int64_t n) {
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        quant_k_levels(x, L, y[i].scales, &y[i].d, &y[i].dmin, 15, -1.f, 20);
        uint8_t *q = y[i].qs;
        for (int j = 0; j < QK_K; j += 64, q += 32)
            for (int l = 0; l < 32; l++) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
    }
}

static void quant_q5_K(const float *x, block_q5_K *y, int64_t n) {
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        quant_k_levels(x, L, y[i].scales, &y[i].d, &y[i].dmin, 31, -0.5f, 15);
        uint8_t *qh = y[i].qh, *ql = y[i].qs;
        memset(qh, 0, QK_K / 8);
        uint8_t m1 = 1, m2 = 2;
        for (int k = 0; k < QK_K; k += 64, ql += 32) {
            for (int j = 0; j < 32; j++) {
                int l1 = L[k + j], l2 = L[k + j + 32];
                if (l1 > 15) { l1 -= 16; qh[j] |= m1; }
                if (l2 > 15) { l2 -= 16; qh[j] |= m2; }
                ql[j] = (uint8_t)(l1 | (l2 << 4));
            }
            m1 <<= 2;
            m2 <<= 2;
        }
    }
}

static void quant_q6_K(const float *x, block_q6_K *y, int64_t n) {
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < QK_K / 16; ib++) {
            const float scale = make_qx_quants_rmse1(16, 32, x + 16 * ib, L + 16 * ib);
            scales[ib] = scale;
            if (fabsf(scale) > max_abs_scale) {
                max_abs_scale = fabsf(scale);
                max_scale = scale;
            }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(&y[i], 0, sizeof(block_q6_K));
            y[i].d = f2h(0.f);
            continue;
        }
        float iscale = -128.f / max_scale;
        y[i].d = f2h(1 / iscale);
        for (int ib = 0; ib < QK_K / 16; ib++) y[i].scales[ib] = (int8_t)QMIN(127, nearest_int(iscale * scales[ib]));
        for (int j = 0; j < QK_K / 16; j++) {
            float d = h2f(y[i].d) * y[i].scales[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ii++) {
                int l = nearest_int(x[16 * j + ii] / d);
                L[16 * j + ii] = (int8_t)(QMAX(-32, QMIN(31, l)) + 32);
            }
        }
        uint8_t *ql = y[i].ql, *qh = y[i].qh;
        for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; l++) {
                const uint8_t q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF;
                const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                ql[l] = (uint8_t)(q1 | (q3 << 4));
                ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
                qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                                  ((L[j + l + 96] >> 4) << 6));
            }
        }
    }
}

/* One row of cols values between F32 and ggml type `type`: to_f32 ? dequantize src (type) into dst
 * (F32) : quantize src (F32) into dst (type). Returns 0, or -1 for an unknown type or a row that is
 * not a whole number of blocks. */
static int quant_convert_row(uint32_t type, int to_f32, const void *src, void *dst, int64_t cols) {
    if (!quant_known(type))
        return slim_set_error("quant: cannot %s ggml type %u (%s)", to_f32 ? "dequantize" : "quantize to", type,
                              gguf_type_name(type));
    if (!quant_type_fits(type, cols))
        return slim_set_error("quant: row of %lld elements is not a whole number of %s blocks", (long long)cols,
                              gguf_type_name(type));
#define QUANT_CONVERT(ggml_type, name)                          \
    case ggml_type:                                            \
        if (to_f32) dequant_##name(src, dst, cols);            \
        else quant_##name(src, dst, cols);                     \
        break;
    switch (type) {
    case GGML_TYPE_F32: memcpy(dst, src, (size_t)cols * sizeof(float)); break;
    QUANT_CONVERT(GGML_TYPE_F16, f16)
    QUANT_CONVERT(GGML_TYPE_BF16, bf16)
    QUANT_CONVERT(GGML_TYPE_Q8_0, q8_0)
    QUANT_CONVERT(GGML_TYPE_Q4_0, q4_0)
    QUANT_CONVERT(GGML_TYPE_Q4_1, q4_1)
    QUANT_CONVERT(GGML_TYPE_Q5_0, q5_0)
    QUANT_CONVERT(GGML_TYPE_Q5_1, q5_1)
    QUANT_CONVERT(GGML_TYPE_Q4_K, q4_K)
    QUANT_CONVERT(GGML_TYPE_Q5_K, q5_K)
    QUANT_CONVERT(GGML_TYPE_Q6_K, q6_K)
    }
#undef QUANT_CONVERT
    return 0;
}

int quant_dequantize_row(uint32_t type, const void *src, float *out, int64_t cols) {
    return quant_convert_row(type, 1, src, out, cols);
}

int quant_quantize_row(uint32_t type, const float *x, void *dst, int64_t cols) {
    return quant_convert_row(type, 0, x, dst, cols);
}

uint32_t quant_fallback_type(uint32_t type, int64_t cols) {
    if (quant_type_fits(type, cols)) return type;
    uint32_t t;
    switch (type) {
    case GGML_TYPE_Q4_K: t = GGML_TYPE_Q5_0; break;
    case GGML_TYPE_Q5_K: t = GGML_TYPE_Q5_1; break;
    case GGML_TYPE_Q6_K: t = GGML_TYPE_Q8_0; break;
    default: t = GGML_TYPE_F16; break;
    }
    return quant_type_fits(t, cols) ? t : GGML_TYPE_F16;
}

/* ---------------------------------------------------------------------------------------------
 * NF4 (bitsandbytes) */

const float nf4_code[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
};

/* bitsandbytes' dQuantizeNF4 is a binary decision tree whose 15 thresholds are the midpoints of
 * adjacent code values (as float constants), "x > t" at every node. It returns the number of
 * thresholds strictly below x, which is how it is computed here (NaN -> 0, as in the tree). */
static float nf4_mid[15];

static float dyn_map[256];
static pthread_once_t quant_once = PTHREAD_ONCE_INIT;

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8), bitsandbytes functional.py:
 * for i = 0..6: b = torch.linspace(0.1, 1, 2^i + 1) (float32), means = (b[:-1] + b[1:]) / 2,
 * values +-(10^(i-6) * means) (the scale rounded to float32 first, float32 product); then 0 and 1.0;
 * sorted. 127 negative values, 0 at index 127, 127 positive values, 1.0 at index 255.
 * torch's linspace computes element k as start + step * k for k < steps / 2 and as
 * end - step * (steps - 1 - k) otherwise, step = (end - start) / (steps - 1) in float32; evaluated
 * with fused multiply-adds this reproduces, bit for bit, the map bitsandbytes ships (its
 * csrc code table, e.g. map[1] = -0.9789062738418579, map[20] = -0.7117187976837158), whereas
 * separate roundings differ from it in the last bit of ~40 entries. */
static void quant_init_tables(void) {
    for (int k = 0; k < 15; k++) nf4_mid[k] = (nf4_code[k] + nf4_code[k + 1]) * 0.5f;
    int n = 0;
    for (int i = 0; i < 7; i++) {
        const int steps = (1 << i) + 1;
        const float start = 0.1f, end = 1.0f, step = (end - start) / (float)(steps - 1);
        float b[65];
        for (int k = 0; k < steps; k++)
            b[k] = k < steps / 2 ? fmaf(step, (float)k, start) : fmaf(-step, (float)(steps - 1 - k), end);
        const float scale = (float)pow(10.0, i - 6);
        for (int k = 0; k + 1 < steps; k++) {
            const float mean = (b[k] + b[k + 1]) / 2.0f;
            dyn_map[n++] = scale * mean;
            dyn_map[n++] = -(scale * mean);
        }
    }
    dyn_map[n++] = 0.0f;
    dyn_map[n++] = 1.0f;
    qsort(dyn_map, 256, sizeof(float), cmp_float);
}

const float *quant_dynamic_map(void) {
    pthread_once(&quant_once, quant_init_tables);
    return dyn_map;
}

static inline uint8_t nf4_index(float x) {
    int q = 0;
    for (int k = 0; k < 15; k++) q += x > nf4_mid[k];
    return (uint8_t)q;
}

/* bitsandbytes dQuantize<0> (non-stochastic): binary search over the 256-entry code for the value
 * nearest to x, then a midpoint test against the neighbours the search passed. */
static uint8_t dyn_quantize(const float *code, float x) {
    int pivot = 127, upper_pivot = 255, lower_pivot = 0;
    float lower = -1.0f, upper = 1.0f, val = code[pivot];
    for (int i = 64; i > 0; i >>= 1) {
        if (x > val) {
            lower_pivot = pivot;
            lower = val;
            pivot += i;
        } else {
            upper_pivot = pivot;
            upper = val;
            pivot -= i;
        }
        val = code[pivot];
    }
    if (upper_pivot == 255) upper = code[upper_pivot];
    if (lower_pivot == 0) lower = code[lower_pivot];
    if (x > val) {
        float midpoint = (upper + val) * 0.5f;
        return (uint8_t)(x > midpoint ? upper_pivot : pivot);
    }
    float midpoint = (lower + val) * 0.5f;
    return (uint8_t)(x < midpoint ? lower_pivot : pivot);
}

float *nf4_begin(nf4_tensor *t, size_t n) {
    (void)quant_dynamic_map(); /* initialises the tables, nf4_mid included */
    memset(t, 0, sizeof *t);
    t->n = n;
    t->n_blocks = (n + NF4_BLOCK - 1) / NF4_BLOCK;
    const size_t n_dq = (t->n_blocks + NF4_DQ_BLOCK - 1) / NF4_DQ_BLOCK;
    t->qs = slim_calloc((n + 1) / 2 + 1, 1);
    t->absmax_q = slim_malloc(t->n_blocks + 1);
    t->absmax2 = slim_malloc((n_dq + 1) * sizeof(float));
    return slim_malloc((t->n_blocks + 1) * sizeof(float));
}

void nf4_quantize_part(nf4_tensor *t, float *absmax, const float *x, size_t start, size_t count) {
    const size_t n = t->n, end = start + count;
    /* first level: kQuantizeBlockwise<NF4>: absmax per 64, q = tree(x * (1 / absmax)) */
    for (size_t b = start / NF4_BLOCK; b * NF4_BLOCK < end; b++) {
        const size_t s = b * NF4_BLOCK, e = QMIN(n, s + NF4_BLOCK);
        float amax = -FLT_MAX;
        for (size_t i = s; i < e; i++) amax = fmaxf(amax, fabsf(x[i - start]));
        absmax[b] = amax;
        const float inv = 1.0f / amax;
        for (size_t i = s; i < e; i++) {
            const uint8_t q = nf4_index(x[i - start] * inv);
            t->qs[i / 2] |= (i & 1) ? q : (uint8_t)(q << 4);
        }
        /* an odd tail is padded with 0.0 by the kernel's load, quantized like any value */
        if ((e & 1) && e == n) t->qs[e / 2] |= nf4_index(0.0f * inv);
    }
}

void nf4_end(nf4_tensor *t, float *absmax) {
    const float *code = quant_dynamic_map();
    const size_t n_dq = (t->n_blocks + NF4_DQ_BLOCK - 1) / NF4_DQ_BLOCK;
    /* second level: offset = mean(absmax); quantize_blockwise(absmax - offset, blocksize 256) */
    double sum = 0;
    for (size_t b = 0; b < t->n_blocks; b++) sum += absmax[b];
    t->offset = t->n_blocks ? (float)(sum / (double)t->n_blocks) : 0.0f;
    for (size_t b = 0; b < t->n_blocks; b++) absmax[b] = absmax[b] - t->offset;
    for (size_t g = 0; g < n_dq; g++) {
        const size_t s = g * NF4_DQ_BLOCK, e = QMIN(t->n_blocks, s + NF4_DQ_BLOCK);
        float amax = -FLT_MAX;
        for (size_t b = s; b < e; b++) amax = fmaxf(amax, fabsf(absmax[b]));
        t->absmax2[g] = amax;
        const float inv = 1.0f / amax;
        for (size_t b = s; b < e; b++) t->absmax_q[b] = dyn_quantize(code, absmax[b] * inv);
    }
    free(absmax);
}

void nf4_quantize(nf4_tensor *t, const float *x, size_t n) {
    float *absmax = nf4_begin(t, n);
    nf4_quantize_part(t, absmax, x, 0, n);
    nf4_end(t, absmax);
}

void nf4_free(nf4_tensor *t) {
    if (!t) return;
    free(t->qs);
    free(t->absmax_q);
    free(t->absmax2);
    memset(t, 0, sizeof *t);
}

size_t nf4_nbytes(const nf4_tensor *t) {
    const size_t n_dq = (t->n_blocks + NF4_DQ_BLOCK - 1) / NF4_DQ_BLOCK;
    return (t->n + 1) / 2 + t->n_blocks + n_dq * sizeof(float) + sizeof(float);
}

/* absmax of block b: dynamic-map value * absmax2 + offset (two float roundings, as bitsandbytes'
 * dequantize_blockwise followed by `absmax += offset`) */
static inline float nf4_block_absmax(const nf4_tensor *t, const float *code, size_t b) {
    const float a = code[t->absmax_q[b]] * t->absmax2[b / NF4_DQ_BLOCK];
    return a + t->offset;
}

/* 8 packed bytes (16 elements, first of each pair in the high nibble) -> 16 floats tab[q] */
static inline void nf4_dequant16(const uint8_t *q, __m256 t_lo, __m256 t_hi, float *out) {
    const __m128i v = _mm_loadl_epi64((const __m128i *)q);
    const __m128i mask = _mm_set1_epi8(0x0F);
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), mask), lo = _mm_and_si128(v, mask);
    const __m128i il = _mm_unpacklo_epi8(hi, lo); /* h0 l0 h1 l1 ... h7 l7 */
    for (int k = 0; k < 2; k++) {
        const __m256i idx = _mm256_cvtepu8_epi32(k ? _mm_srli_si128(il, 8) : il);
        const __m256 a = _mm256_permutevar8x32_ps(t_lo, idx), b = _mm256_permutevar8x32_ps(t_hi, idx);
        const __m256 sel = _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)); /* sign bit = index bit 3 */
        _mm256_storeu_ps(out + 8 * k, _mm256_blendv_ps(a, b, sel));
    }
}

void nf4_dequantize(const nf4_tensor *t, size_t start, size_t count, float *out) {
    if (start >= t->n) return;
    if (count > t->n - start) count = t->n - start; /* never read past the tensor */
    const float *code = quant_dynamic_map();
    const size_t end = start + count;
    size_t i = start;
    while (i < end) {
        const size_t b = i / NF4_BLOCK, be = QMIN(end, (b + 1) * NF4_BLOCK);
        const float a = nf4_block_absmax(t, code, b);
        float tab[16];
        for (int k = 0; k < 16; k++) tab[k] = nf4_code[k] * a;
        for (; i < be && (i & 15); i++) out[i - start] = tab[(t->qs[i / 2] >> ((i & 1) ? 0 : 4)) & 15];
        if (i + 16 <= be) {
            const __m256 t_lo = _mm256_loadu_ps(tab), t_hi = _mm256_loadu_ps(tab + 8);
            for (; i + 16 <= be; i += 16) nf4_dequant16(t->qs + i / 2, t_lo, t_hi, out + (i - start));
        }
        for (; i < be; i++) out[i - start] = tab[(t->qs[i / 2] >> ((i & 1) ? 0 : 4)) & 15];
    }
}
