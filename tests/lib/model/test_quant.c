/* test_quant.c — lib/model/quant.c and `slimtune quantize` (export/quantize.c):
 *  1. hand-built blocks of every ggml type decode to the values the format definition gives
 *     (expected values computed here from the documented layout, with exactly representable scales);
 *  2. quantize -> dequantize round trips: relative RMS error bounds on random rows, and edge rows
 *     (zeros, constants, huge and small magnitudes, values too small for the half scales);
 *  3. F16 / BF16 conversions: round to nearest even, ties, subnormals, overflow, NaN;
 *  4. NF4: code table, bitsandbytes' decision tree, packing order, the dynamic map (against
 *     bitsandbytes' shipped table at a few indices), double quantization, odd sizes, sub-ranges;
 *  5. quantize_main on stories260K for every type: the output re-opens, keys and 1-D tensors are kept,
 *     the 172-wide ffn_down falls back as quant.h says, and every tensor is close to the F32 original.
 *
 * Helper modes for tests/e2e/test_llamacpp_quant.sh (no checks of their own beyond writing files):
 *  SLIM_QUANT_SYNTH=PATH      writes a random llama model with dim 256 / ffn 512 (so that the K-quant
 *                             types really are used) and stories260K's tokenizer, F32, to PATH;
 *  SLIM_QUANT_LOGITS_DIR=DIR  for every DIR/X.gguf (a name with no other dot) writes DIR/X.f32.gguf: the
 *                             same keys and tensors, every tensor dequantized to F32 with
 *                             quant_dequantize_row (general.file_type 0), and DIR/X.embd.gguf: the same
 *                             but token_embd.weight kept in X's type (llama.cpp decodes it exactly, with
 *                             ggml's dequantize_row, in its get_rows). */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "../../../export/quantize.h"
#include "format/gguf.h"
#include "model/quant.h"
#include "testutil.h"

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }

/* relative RMS error of y against x */
static double rel_rms(const float *x, const float *y, size_t n) {
    double e = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        e += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        s += (double)x[i] * x[i];
    }
    return s > 0 ? sqrt(e / s) : sqrt(e);
}

static const uint32_t all_types[] = { GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0,
                                      GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K,
                                      GGML_TYPE_Q6_K };
#define N_TYPES (sizeof all_types / sizeof all_types[0])

/* ------------------------------------------------------------------------------------------ 1 */

static void test_hand_blocks(void) {
    slim_rng r;
    slim_rng_seed(&r, 11);
    uint8_t blk[256];
    float out[256], exp_[256];

    /* Q8_0: f16 d = 0.5 (0x3800), q = -128..127 pattern */
    put16(blk, 0x3800);
    for (int j = 0; j < 32; j++) blk[2 + j] = (uint8_t)(int8_t)(j * 9 - 128);
    CHECK(quant_dequantize_row(GGML_TYPE_Q8_0, blk, out, 32) == 0, "%s", slim_last_error());
    int ok = 1;
    for (int j = 0; j < 32; j++) ok &= out[j] == (float)(int8_t)(j * 9 - 128) * 0.5f;
    CHECK(ok, "Q8_0 hand block");

    /* Q4_0: d = 0.25 (0x3400); low nibbles -> elements 0..15, high -> 16..31, x = d (q - 8) */
    put16(blk, 0x3400);
    for (int j = 0; j < 16; j++) blk[2 + j] = (uint8_t)(j | ((15 - j) << 4));
    quant_dequantize_row(GGML_TYPE_Q4_0, blk, out, 32);
    ok = 1;
    for (int j = 0; j < 16; j++) ok &= out[j] == (j - 8) * 0.25f && out[j + 16] == (15 - j - 8) * 0.25f;
    CHECK(ok, "Q4_0 hand block: out[0] %g out[16] %g", out[0], out[16]);

    /* Q4_1: d = 2 (0x4000), m = -1.5 (0xBE00), x = d q + m */
    put16(blk, 0x4000);
    put16(blk + 2, 0xBE00);
    for (int j = 0; j < 16; j++) blk[4 + j] = (uint8_t)((j * 7 & 15) | ((j * 3 & 15) << 4));
    quant_dequantize_row(GGML_TYPE_Q4_1, blk, out, 32);
    ok = 1;
    for (int j = 0; j < 16; j++) ok &= out[j] == (j * 7 & 15) * 2.0f - 1.5f && out[j + 16] == (j * 3 & 15) * 2.0f - 1.5f;
    CHECK(ok, "Q4_1 hand block");

    /* Q5_0 / Q5_1: qh bit j = 5th bit of element j */
    for (int v = 0; v < 2; v++) {
        uint32_t type = v ? GGML_TYPE_Q5_1 : GGML_TYPE_Q5_0;
        int off = v ? 4 : 2;
        put16(blk, 0x3C00); /* d = 1 */
        if (v) put16(blk + 2, 0x4200); /* m = 3 */
        uint32_t qh = slim_rng_u32(&r);
        memcpy(blk + off, &qh, 4);
        for (int j = 0; j < 16; j++) blk[off + 4 + j] = (uint8_t)slim_rng_u32(&r);
        for (int j = 0; j < 32; j++) {
            int nib = j < 16 ? blk[off + 4 + j] & 15 : blk[off + 4 + j - 16] >> 4;
            int q = nib | (int)((qh >> j) & 1) << 4;
            exp_[j] = v ? q * 1.0f + 3.0f : (float)(q - 16);
        }
        quant_dequantize_row(type, blk, out, 32);
        ok = 1;
        for (int j = 0; j < 32; j++) ok &= out[j] == exp_[j];
        CHECK(ok, "%s hand block", gguf_type_name(type));
    }

    /* Q4_K / Q5_K: 8 sub-blocks of 32 with 6-bit scale sc[j] and min m[j]:
     * bytes 0..3: sc[j] | (sc[j+4] >> 4) << 6; bytes 4..7: m[j] | (m[j+4] >> 4) << 6;
     * bytes 8..11: (sc[j+4] & 15) | (m[j+4] & 15) << 4.  Elements 64p..64p+31 use sub-block 2p and
     * the low nibbles of qs[32p..32p+31], 64p+32.. use 2p+1 and the high nibbles; x = d sc q - dmin m.
     * Q5_K: + 16 when qh[l] has bit 2p (low half) or bit 2p+1 (high half). */
    for (int v = 0; v < 2; v++) {
        uint32_t type = v ? GGML_TYPE_Q5_K : GGML_TYPE_Q4_K;
        int sc[8], mn[8];
        for (int j = 0; j < 8; j++) { sc[j] = (int)(slim_rng_u32(&r) % 64); mn[j] = (int)(slim_rng_u32(&r) % 64); }
        sc[5] = 63; mn[6] = 48; sc[1] = 0;
        memset(blk, 0, sizeof blk);
        put16(blk, 0x3800);     /* d = 0.5 */
        put16(blk + 2, 0x3400); /* dmin = 0.25 */
        uint8_t *s = blk + 4;
        for (int j = 0; j < 4; j++) {
            s[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
            s[j + 4] = (uint8_t)(mn[j] | (mn[j + 4] >> 4) << 6);
            s[j + 8] = (uint8_t)((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
        }
        uint8_t *qh = blk + 16, *qs = blk + 16 + (v ? 32 : 0);
        if (v) for (int l = 0; l < 32; l++) qh[l] = (uint8_t)slim_rng_u32(&r);
        for (int l = 0; l < 128; l++) qs[l] = (uint8_t)slim_rng_u32(&r);
        for (int p = 0; p < 4; p++)
            for (int l = 0; l < 32; l++) {
                int q0 = qs[32 * p + l] & 15, q1 = qs[32 * p + l] >> 4;
                if (v) { q0 += (qh[l] >> (2 * p) & 1) * 16; q1 += (qh[l] >> (2 * p + 1) & 1) * 16; }
                exp_[64 * p + l] = 0.5f * sc[2 * p] * q0 - 0.25f * mn[2 * p];
                exp_[64 * p + 32 + l] = 0.5f * sc[2 * p + 1] * q1 - 0.25f * mn[2 * p + 1];
            }
        quant_dequantize_row(type, blk, out, 256);
        ok = 1;
        int bad = -1;
        for (int j = 0; j < 256; j++) if (out[j] != exp_[j]) { ok = 0; if (bad < 0) bad = j; }
        CHECK(ok, "%s hand block: first mismatch at %d (%g vs %g)", gguf_type_name(type), bad,
              bad >= 0 ? out[bad] : 0, bad >= 0 ? exp_[bad] : 0);
    }

    /* Q6_K: ql[128] qh[64] scales[16] (int8) d. Element 128n + 32k + l (k = 0..3, l < 32):
     * low 4 bits from ql[64n + l + 32 (k & 1)], low nibble for k < 2, high for k >= 2; high 2 bits
     * (qh[32n + l] >> 2k) & 3; x = d * scales[8n + l/16 + 2k] * (q - 32). */
    {
        memset(blk, 0, sizeof blk);
        uint8_t *ql = blk, *qh = blk + 128;
        int8_t *scs = (int8_t *)(blk + 192);
        for (int i = 0; i < 192; i++) blk[i] = (uint8_t)slim_rng_u32(&r);
        for (int i = 0; i < 16; i++) scs[i] = (int8_t)(slim_rng_u32(&r) % 256 - 128);
        put16(blk + 208, 0x3000); /* d = 0.125 */
        for (int e = 0; e < 256; e++) {
            int n = e / 128, k = (e % 128) / 32, l = e % 32;
            int lo = ql[64 * n + l + 32 * (k & 1)];
            lo = k < 2 ? lo & 15 : lo >> 4;
            int hi = (qh[32 * n + l] >> (2 * k)) & 3;
            exp_[e] = 0.125f * scs[8 * n + l / 16 + 2 * k] * ((lo | hi << 4) - 32);
        }
        quant_dequantize_row(GGML_TYPE_Q6_K, blk, out, 256);
        ok = 1;
        for (int j = 0; j < 256; j++) ok &= out[j] == exp_[j];
        CHECK(ok, "Q6_K hand block");
    }

    /* F16 / BF16 bit patterns */
    const uint16_t h[8] = { 0x3C00, 0xC000, 0x0001, 0x7BFF, 0x0400, 0x8000, 0x7C00, 0x03FF };
    const float hv[8] = { 1.0f, -2.0f, 5.9604644775390625e-8f, 65504.0f, 6.103515625e-5f, -0.0f, INFINITY,
                          6.097555160522461e-5f };
    uint16_t hh[9];
    memcpy(hh, h, sizeof h);
    hh[8] = 0x3555; /* tail element after the 8-wide F16C path */
    quant_dequantize_row(GGML_TYPE_F16, hh, out, 9);
    ok = 1;
    for (int i = 0; i < 8; i++) ok &= f2u(out[i]) == f2u(hv[i]);
    CHECK(ok && out[8] == slim_fp16_to_fp32(0x3555), "F16 hand values");
    const uint16_t b[4] = { 0x3F80, 0x4049, 0xC2F7, 0x0001 };
    quant_dequantize_row(GGML_TYPE_BF16, b, out, 4);
    CHECK(out[0] == 1.0f && out[1] == 3.140625f && out[2] == -123.5f && f2u(out[3]) == 0x00010000u, "BF16 hand values");

    /* unsupported type / misfit row length are errors */
    CHECK(quant_dequantize_row(GGML_TYPE_Q4_K, blk, out, 100) == -1, "Q4_K with 100 columns must fail");
    CHECK(quant_dequantize_row(99, blk, out, 32) == -1, "unknown type must fail");
    CHECK(quant_quantize_row(GGML_TYPE_Q8_0, exp_, blk, 33) == -1, "Q8_0 with 33 columns must fail");
    CHECK(strstr(slim_last_error(), "Q8_0") != NULL, "error names the type: %s", slim_last_error());
}

/* ------------------------------------------------------------------------------------------ 2 */

/* Round trip of n values through type; returns relative RMS error (and -1 on a conversion error). */
static double round_trip(uint32_t type, const float *x, float *y, int64_t n) {
    size_t bytes = gguf_row_size(type, n);
    uint8_t *q = slim_malloc(bytes + 1);
    double e = -1;
    if (quant_quantize_row(type, x, q, n) == 0 && quant_dequantize_row(type, q, y, n) == 0) e = rel_rms(x, y, n);
    free(q);
    return e;
}

static void test_round_trips(void) {
    /* relative RMS bounds on N(0,1) data, a little above what each format achieves (measured:
     * F16 2.1e-4, BF16 1.7e-3, Q8_0 5.4e-3, Q6_K 1.8e-2, Q5_K 3.6e-2, Q5_1 3.8e-2, Q5_0 4.3e-2,
     * Q4_K 7.0e-2, Q4_1 8.0e-2, Q4_0 8.8e-2) */
    const double bound[N_TYPES] = { 0, 5e-4, 3.5e-3, 8e-3, 0.11, 0.095, 0.055, 0.048, 0.085, 0.045, 0.022 };
    const int64_t n = 4096;
    float *x = slim_malloc(n * sizeof(float)), *y = slim_malloc(n * sizeof(float));
    slim_rng r;
    slim_rng_seed(&r, 5);
    for (size_t t = 0; t < N_TYPES; t++) {
        const uint32_t ty = all_types[t];
        for (int64_t i = 0; i < n; i++) x[i] = slim_rng_normal(&r);
        double e = round_trip(ty, x, y, n);
        CHECK(e >= 0 && e <= bound[t], "%s random: rel rms %.3g > %.3g", gguf_type_name(ty), e, bound[t]);
        printf("  %-5s random N(0,1): relative RMS error %.3g\n", gguf_type_name(ty), e);
        /* scale invariance over magnitudes the half-precision scales carry well; at 2e-4 the K types'
         * sub-block scales (d * sc, d = max scale / 63 or / 128) fall below the half normal range
         * (6.1e-5) and lose precision (measured Q6_K 5.1e-2, Q5_K 4.1e-2, Q4_K 7.4e-2) */
        const float scales[4] = { 3e3f, 1e-2f, 1e-3f, 2e-4f };
        for (int s = 0; s < 4; s++) {
            float *xs = slim_malloc(n * sizeof(float));
            for (int64_t i = 0; i < n; i++) xs[i] = x[i] * scales[s];
            double es = round_trip(ty, xs, y, n), bs = s < 3 ? bound[t] * 1.3 + 1e-6 : fmax(bound[t] * 1.3, 0.06);
            CHECK(es >= 0 && es <= bs, "%s scaled by %g: rel rms %.3g > %.3g", gguf_type_name(ty), scales[s], es, bs);
            free(xs);
        }
        /* all zeros -> exact zeros */
        for (int64_t i = 0; i < n; i++) x[i] = 0;
        round_trip(ty, x, y, n);
        int ok = 1;
        for (int64_t i = 0; i < n; i++) ok &= y[i] == 0;
        CHECK(ok, "%s zeros", gguf_type_name(ty));
        /* constant rows, positive and negative */
        for (int sgn = -1; sgn <= 1; sgn += 2) {
            for (int64_t i = 0; i < n; i++) x[i] = 0.37f * sgn;
            e = round_trip(ty, x, y, n);
            CHECK(e >= 0 && e <= 1.5e-3 + (ty == GGML_TYPE_BF16 ? 3e-3 : 0), "%s constant %g: rel rms %.3g",
                  gguf_type_name(ty), 0.37 * sgn, e);
        }
        /* one huge outlier per block among small values: bounded by the outlier's block scale */
        for (int64_t i = 0; i < n; i++) x[i] = (i % 37 == 0) ? 3e4f : 0.01f * slim_rng_normal(&r);
        e = round_trip(ty, x, y, n);
        ok = e >= 0;
        for (int64_t i = 0; i < n; i++) ok &= isfinite(y[i]) && fabsf(y[i] - x[i]) <= 3e4f * 0.07f;
        CHECK(ok, "%s outliers: rel rms %.3g", gguf_type_name(ty), e);
        /* values below what half scales can resolve decode to (almost) zero, never garbage */
        for (int64_t i = 0; i < n; i++) x[i] = 1e-9f * slim_rng_normal(&r);
        round_trip(ty, x, y, n);
        ok = 1;
        for (int64_t i = 0; i < n; i++) ok &= isfinite(y[i]) && fabsf(y[i]) <= 1e-8f;
        CHECK(ok, "%s tiny values", gguf_type_name(ty));
        /* determinism */
        for (int64_t i = 0; i < n; i++) x[i] = slim_rng_normal(&r);
        size_t bytes = gguf_row_size(ty, n);
        uint8_t *q1 = slim_malloc(bytes), *q2 = slim_malloc(bytes);
        quant_quantize_row(ty, x, q1, n);
        quant_quantize_row(ty, x, q2, n);
        CHECK(memcmp(q1, q2, bytes) == 0, "%s quantization is deterministic", gguf_type_name(ty));
        /* re-quantizing decoded values reproduces the blocks (formats with a single scale per block) */
        if (ty == GGML_TYPE_F16 || ty == GGML_TYPE_BF16 || ty == GGML_TYPE_Q8_0 || ty == GGML_TYPE_Q4_0 ||
            ty == GGML_TYPE_Q5_0) {
            quant_dequantize_row(ty, q1, y, n);
            quant_quantize_row(ty, y, q2, n);
            CHECK(memcmp(q1, q2, bytes) == 0, "%s requantization is idempotent", gguf_type_name(ty));
        }
        free(q1);
        free(q2);
    }

    /* Q8_0 by hand: block of k/4 -> amax 31/4, d = amax/127, q = round(x / d) */
    for (int j = 0; j < 32; j++) x[j] = (j - 16) / 4.0f + (j == 0 ? -3.75f : 0);
    uint8_t blk[34];
    quant_quantize_row(GGML_TYPE_Q8_0, x, blk, 32);
    uint16_t d16;
    memcpy(&d16, blk, 2);
    CHECK(d16 == slim_fp32_to_fp16(7.75f / 127), "Q8_0 scale %04x", d16);
    CHECK((int8_t)blk[2] == -127 && (int8_t)blk[2 + 16] == 0 && (int8_t)blk[2 + 31] == (int8_t)lroundf(3.75f / (7.75f / 127)),
          "Q8_0 levels %d %d %d", (int8_t)blk[2], (int8_t)blk[18], (int8_t)blk[33]);
    free(x);
    free(y);
}

/* ------------------------------------------------------------------------------------------ 3 */

static void test_half_conversions(void) {
    struct { float f; uint16_t h; } hc[] = {
        { 1.0f, 0x3C00 },
        { u2f(0x3F801000), 0x3C00 },    /* 1 + 2^-11: tie -> even (1.0) */
        { u2f(0x3F803000), 0x3C02 },    /* 1 + 3 * 2^-11: tie -> even (1 + 2^-9) */
        { u2f(0x3F801001), 0x3C01 },    /* just above the tie */
        { 65504.0f, 0x7BFF },
        { 65519.0f, 0x7BFF },
        { 65520.0f, 0x7C00 },           /* rounds to infinity */
        { 0x1p-24f, 0x0001 },           /* smallest subnormal */
        { 0x1p-25f, 0x0000 },           /* tie between 0 and 2^-24 -> 0 (even) */
        { 0x1.8p-24f, 0x0002 },         /* tie between 1 and 2 -> 2 */
        { 0x1p-14f - 0x1p-24f, 0x03FF }, /* largest subnormal */
        { -0x1p-14f, 0x8400 },
        { -0.0f, 0x8000 },
        { -INFINITY, 0xFC00 },
    };
    const int nh = sizeof hc / sizeof hc[0];
    float in[16];
    uint16_t out[16];
    for (int i = 0; i < nh; i++) in[i] = hc[i].f;
    quant_quantize_row(GGML_TYPE_F16, in, out, nh); /* 8-wide F16C part and scalar tail */
    for (int i = 0; i < nh; i++) {
        CHECK(out[i] == hc[i].h, "F16 of %a: %04x, expected %04x", hc[i].f, out[i], hc[i].h);
        CHECK(slim_fp32_to_fp16(hc[i].f) == hc[i].h, "slim_fp32_to_fp16(%a)", hc[i].f);
    }
    /* the vector path agrees with the scalar converter on random bit patterns (NaN excluded) */
    slim_rng r;
    slim_rng_seed(&r, 3);
    int bad = 0;
    for (int it = 0; it < 20000; it++) {
        float v[8];
        uint16_t o[8];
        for (int k = 0; k < 8; k++) {
            uint32_t u = slim_rng_u32(&r);
            if (k & 1) u = (u & 0x80000000u) | (0x33000000u + u % 0x14800000u); /* the half range */
            v[k] = u2f(u);
            if (isnan(v[k])) v[k] = 0;
        }
        quant_quantize_row(GGML_TYPE_F16, v, o, 8);
        for (int k = 0; k < 8; k++) bad += o[k] != slim_fp32_to_fp16(v[k]);
    }
    CHECK(bad == 0, "F16C conversion differs from slim_fp32_to_fp16 in %d cases", bad);

    struct { uint32_t f; uint16_t b; } bc[] = {
        { 0x3F800000, 0x3F80 }, { 0x3F808000, 0x3F80 }, /* tie -> even */
        { 0x3F818000, 0x3F82 }, { 0x3F808001, 0x3F81 },
        { 0x00008000, 0x0000 }, { 0x00018000, 0x0002 }, /* subnormal ties, not flushed */
        { 0x00010000, 0x0001 }, { 0x80000000, 0x8000 },
        { 0x7F7FFFFF, 0x7F80 }, /* largest float rounds to infinity */
        { 0x7F800000, 0x7F80 }, { 0xFF800000, 0xFF80 },
        { 0x7F800001, 0x7FC0 }, /* signalling NaN stays NaN, made quiet */
    };
    const int nb = sizeof bc / sizeof bc[0];
    for (int i = 0; i < nb; i++) in[i] = u2f(bc[i].f);
    quant_quantize_row(GGML_TYPE_BF16, in, out, nb);
    for (int i = 0; i < nb; i++) {
        CHECK(out[i] == bc[i].b, "BF16 of %08x: %04x, expected %04x", bc[i].f, out[i], bc[i].b);
        CHECK(f2u(slim_bf16_to_fp32(bc[i].b)) == (uint32_t)bc[i].b << 16, "bf16 -> fp32 of %04x", bc[i].b);
    }
}

/* ------------------------------------------------------------------------------------------ 4 */

/* bitsandbytes' dQuantizeNF4 thresholds, as written in its kernel (csrc), for an independent check */
static int bnb_tree(float x) {
    if (x > 0.03979014977812767f) {
        if (x > 0.3893125355243683f) {
            if (x > 0.6427869200706482f) return x > 0.8614784181118011f ? 15 : 14;
            return x > 0.5016634166240692f ? 13 : 12;
        }
        if (x > 0.2035212516784668f) return x > 0.2920137718319893f ? 11 : 10;
        return x > 0.1202552504837513f ? 9 : 8;
    }
    if (x > -0.33967943489551544f) {
        if (x > -0.13791173323988914f) return x > -0.045525018125772476f ? 7 : 6;
        return x > -0.23460740596055984f ? 5 : 4;
    }
    if (x > -0.6106329262256622f) return x > -0.4599952697753906f ? 3 : 2;
    return x > -0.8480964004993439f ? 1 : 0;
}

static int nf4_q(const nf4_tensor *t, size_t i) { return (t->qs[i / 2] >> ((i & 1) ? 0 : 4)) & 15; }

/* scalar reference of element i: code[q] * (map[absmax_q] * absmax2 + offset), two roundings */
static float nf4_ref(const nf4_tensor *t, size_t i) {
    const float *map = quant_dynamic_map();
    size_t b = i / NF4_BLOCK;
    volatile float p = map[t->absmax_q[b]] * t->absmax2[b / NF4_DQ_BLOCK];
    volatile float a = p + t->offset;
    return nf4_code[nf4_q(t, i)] * a;
}

/* NF4 in pieces (nf4_begin, nf4_quantize_part over 64-aligned pieces, nf4_end: how the model loader
 * converts a matrix block by block) gives exactly nf4_quantize's tensor, odd tails included. Runs first
 * in main: nf4_begin must initialise the tables itself. */
static void test_nf4_parts(void) {
    static const size_t sizes[] = { 1, 63, 64, 65, 64 * 37 + 13, 64 * 300 };
    static const size_t pieces[] = { 64, 128, 64 * 256 };
    slim_rng r;
    slim_rng_seed(&r, 5);
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        const size_t n = sizes[si];
        float *x = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) x[i] = (float)(slim_rng_u32(&r) % 2001) / 1000.0f - 1.0f;
        for (size_t pi = 0; pi < sizeof pieces / sizeof pieces[0]; pi++) {
            nf4_tensor a, b;
            float *absmax = nf4_begin(&b, n);
            for (size_t s = 0; s < n; s += pieces[pi])
                nf4_quantize_part(&b, absmax, x + s, s, n - s < pieces[pi] ? n - s : pieces[pi]);
            nf4_end(&b, absmax);
            nf4_quantize(&a, x, n);
            size_t n_dq = (a.n_blocks + NF4_DQ_BLOCK - 1) / NF4_DQ_BLOCK;
            CHECK(a.n_blocks == b.n_blocks && a.offset == b.offset && memcmp(a.qs, b.qs, (n + 1) / 2) == 0 &&
                      memcmp(a.absmax_q, b.absmax_q, a.n_blocks) == 0 &&
                      memcmp(a.absmax2, b.absmax2, n_dq * sizeof(float)) == 0,
                  "NF4 of %zu elements in pieces of %zu differs from the whole", n, pieces[pi]);
            nf4_free(&a);
            nf4_free(&b);
        }
        free(x);
    }
}

static void test_nf4(void) {
    /* code table */
    int ok = nf4_code[0] == -1.0f && nf4_code[7] == 0.0f && nf4_code[15] == 1.0f;
    for (int k = 0; k < 15; k++) ok &= nf4_code[k] < nf4_code[k + 1];
    CHECK(ok, "NF4 code table: 16 ascending values, -1, 0 at index 7, 1");

    /* dynamic map */
    const float *map = quant_dynamic_map();
    ok = map[127] == 0.0f && map[255] == 1.0f;
    for (int k = 0; k < 255; k++) ok &= map[k] < map[k + 1];
    for (int k = 0; k < 127; k++) ok &= map[k] == -map[254 - k];
    CHECK(ok, "dynamic map: 256 ascending values, 0 at 127, 1 at 255, negatives mirror positives");
    /* decade structure: 2^i positive values in [0.1, 1) * 10^(i-6) for i = 0..6 */
    ok = 1;
    for (int i = 0, k = 128; i < 7; i++) {
        double lo = 0.1 * pow(10, i - 6), hi = pow(10, i - 6);
        for (int c = 0; c < (1 << i); c++, k++) ok &= map[k] > lo && map[k] < hi;
    }
    CHECK(ok, "dynamic map decades");
    /* values of the map bitsandbytes ships (its csrc code table / create_dynamic_map() output) */
    CHECK(map[0] == -0.992968738079071f && map[1] == -0.9789062738418579f && map[20] == -0.7117187976837158f &&
          map[36] == -0.48671871423721313f && map[64] == -0.09859374910593033f && map[126] == -5.500000384017767e-07f &&
          map[142] == 0.0009437500848434865f && map[219] == 0.500781238079071f,
          "dynamic map values: %.17g %.17g %.17g", map[1], map[20], map[36]);

    /* decision tree = bitsandbytes' thresholds, and nearest code away from the midpoints */
    slim_rng r;
    slim_rng_seed(&r, 17);
    float x[NF4_BLOCK];
    int bad_tree = 0, bad_near = 0;
    for (int it = 0; it < 2000; it++) {
        for (int j = 0; j < NF4_BLOCK; j++) x[j] = 2 * slim_rng_uniform(&r) - 1;
        if (it % 7 == 0) x[3] = 0.03979014977812767f; /* exactly on a threshold: goes down */
        x[4 + it % 60] = 1.0f; /* absmax 1: the tree sees x itself */
        nf4_tensor t;
        nf4_quantize(&t, x, NF4_BLOCK);
        for (int j = 0; j < NF4_BLOCK; j++) {
            int q = nf4_q(&t, j);
            bad_tree += q != bnb_tree(x[j]);
            int best = 0;
            for (int k = 1; k < 16; k++) if (fabs(x[j] - nf4_code[k]) < fabs(x[j] - nf4_code[best])) best = k;
            if (q != best && fabs(fabs(x[j] - nf4_code[q]) - fabs(x[j] - nf4_code[best])) > 1e-7) bad_near++;
        }
        nf4_free(&t);
    }
    CHECK(bad_tree == 0, "NF4 index differs from bitsandbytes' decision tree %d times", bad_tree);
    CHECK(bad_near == 0, "NF4 index is not the nearest code %d times", bad_near);

    /* packing: first element of a pair in the high nibble */
    float p4[4] = { -1.0f, 1.0f, 0.0f, 0.5626170039176941f };
    nf4_tensor t;
    nf4_quantize(&t, p4, 4);
    CHECK(t.qs[0] == 0x0F && t.qs[1] == 0x7D, "NF4 packing: %02x %02x", t.qs[0], t.qs[1]);
    CHECK(nf4_nbytes(&t) == 2 + 1 + 4 + 4, "nf4_nbytes %zu", nf4_nbytes(&t));
    nf4_free(&t);
    /* odd n: the last element in the high nibble of the last byte */
    float p3[3] = { 1.0f, -1.0f, 0.44070982933044434f };
    nf4_quantize(&t, p3, 3);
    CHECK(t.qs[0] == 0xF0 && (t.qs[1] >> 4) == 12, "NF4 odd tail: %02x %02x", t.qs[0], t.qs[1]);
    float o3[3];
    nf4_dequantize(&t, 0, 3, o3);
    CHECK(o3[0] == nf4_ref(&t, 0) && o3[1] == nf4_ref(&t, 1) && o3[2] == nf4_ref(&t, 2), "NF4 odd n values");
    nf4_free(&t);

    /* sizes: odd, not multiples of 64, several double-quant blocks */
    const size_t sizes[] = { 1, 2, 63, 65, 127, 1001, 64 * 300, 64 * 600 + 33 };
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t n = sizes[si];
        float *v = slim_malloc(n * sizeof(float)), *full = slim_malloc(n * sizeof(float)),
              *part = slim_malloc(n * sizeof(float));
        /* block scales that vary (log-normal absmax) so the double quantization has work to do */
        for (size_t i = 0; i < n; i++) {
            if (i % NF4_BLOCK == 0) x[0] = expf(0.5f * slim_rng_normal(&r));
            v[i] = x[0] * slim_rng_normal(&r);
        }
        nf4_quantize(&t, v, n);
        CHECK(t.n == n && t.n_blocks == (n + 63) / 64, "NF4 n %zu blocks %zu", t.n, t.n_blocks);
        nf4_dequantize(&t, 0, n, full);
        int same = 1;
        for (size_t i = 0; i < n; i++) same &= f2u(full[i]) == f2u(nf4_ref(&t, i));
        CHECK(same, "NF4 n=%zu: dequantization equals code[q] * absmax element by element", n);
        /* double quantization: each absmax index is the nearest map value, reconstruction close */
        double sum = 0;
        float *am = slim_malloc(t.n_blocks * sizeof(float));
        for (size_t b = 0; b < t.n_blocks; b++) {
            float a = 0;
            for (size_t i = b * 64; i < n && i < b * 64 + 64; i++) a = fmaxf(a, fabsf(v[i]));
            am[b] = a;
            sum += a;
        }
        CHECK(fabs(t.offset - sum / t.n_blocks) <= 1e-6 * fabs(sum / t.n_blocks) + 1e-30, "NF4 offset = mean absmax");
        int near_bad = 0, rec_bad = 0;
        for (size_t b = 0; b < t.n_blocks; b++) {
            float a2 = t.absmax2[b / NF4_DQ_BLOCK];
            float y = (am[b] - t.offset) * (1.0f / a2);
            int q = t.absmax_q[b], best = 0;
            for (int k = 1; k < 256; k++) if (fabsf(y - map[k]) < fabsf(y - map[best])) best = k;
            if (q != best && fabsf(fabsf(y - map[q]) - fabsf(y - map[best])) > 1e-7f) near_bad++;
            float rec = map[q] * a2 + t.offset;
            if (!(fabsf(rec - am[b]) <= 0.0071f * a2 + 1e-6f * am[b])) rec_bad++;
        }
        CHECK(near_bad == 0, "NF4 n=%zu: %d absmax indices are not the nearest map value", n, near_bad);
        CHECK(rec_bad == 0, "NF4 n=%zu: %d absmax values reconstructed badly", n, rec_bad);
        free(am);
        double e = rel_rms(v, full, n);
        CHECK(n < 64 || e < 0.12, "NF4 n=%zu: relative RMS error %.3g", n, e);
        if (si == 6) printf("  NF4   random: relative RMS error %.3g, %zu bytes for %zu values\n", e, nf4_nbytes(&t), n);
        /* arbitrary sub-ranges equal slices of the full dequantization */
        int sub_bad = 0;
        for (int it = 0; it < 300; it++) {
            size_t s = slim_rng_u32(&r) % n, c = slim_rng_u32(&r) % (n - s + 1);
            if (it % 3 == 0 && c > 40) c = 40;
            if (it == 0) { s = 0; c = n; }
            memset(part, 0xFF, n * sizeof(float));
            nf4_dequantize(&t, s, c, part);
            if (memcmp(part, full + s, c * sizeof(float)) != 0) sub_bad++;
            if (c < n && f2u(part[c]) != 0xFFFFFFFFu) sub_bad++; /* nothing written past count */
        }
        CHECK(sub_bad == 0, "NF4 n=%zu: %d sub-ranges differ from the full dequantization", n, sub_bad);
        nf4_free(&t);
        free(v);
        free(full);
        free(part);
    }

    /* zeros and a constant tensor */
    float z[100] = { 0 }, oz[100];
    nf4_quantize(&t, z, 100);
    nf4_dequantize(&t, 0, 100, oz);
    ok = 1;
    for (int i = 0; i < 100; i++) ok &= oz[i] == 0;
    CHECK(ok, "NF4 zeros");
    nf4_free(&t);
    for (int i = 0; i < 100; i++) z[i] = -2.5f;
    nf4_quantize(&t, z, 100);
    nf4_dequantize(&t, 0, 100, oz);
    ok = 1;
    for (int i = 0; i < 100; i++) ok &= oz[i] == -2.5f;
    CHECK(ok, "NF4 constant: %g", oz[0]);
    nf4_free(&t);
}

/* ------------------------------------------------------------------------------------------ 5 */

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* dequantizes a whole tensor to F32 (allocates) */
static float *tensor_f32(const gguf_tensor *t) {
    int64_t cols = t->ne[0], rows = t->ne[1] * t->ne[2] * t->ne[3];
    float *o = slim_malloc((size_t)(cols * rows) * sizeof(float) + 1);
    size_t rb = gguf_row_size(t->type, cols);
    for (int64_t r = 0; r < rows; r++)
        if (quant_dequantize_row(t->type, (const uint8_t *)t->data + r * rb, o + r * cols, cols) != 0) {
            free(o);
            return NULL;
        }
    return o;
}

static void test_quantize_main(const char *model, const char *dir) {
    static const char *names[] = { "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q5_k", "q6_k" };
    static const uint32_t ftype[] = { 1, 32, 7, 2, 3, 8, 9, 14, 16, 18 };
    /* relative RMS bound per tensor; rows of 64 of the K types fall back to Q5_0 / Q5_1 / Q8_0 */
    static const double bound[] = { 1e-3, 6e-3, 1.2e-2, 0.12, 0.09, 0.06, 0.05, 0.06, 0.05, 1.2e-2 };
    gguf_file src;
    if (gguf_open(&src, model) != 0) { CHECK(0, "%s", slim_last_error()); return; }
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        char out[4200];
        snprintf(out, sizeof out, "%s/stories260K-%s.gguf", dir, names[k]);
        char *argv[] = { "quantize", (char *)model, out, "--type", (char *)names[k], NULL };
        CHECK(quantize_main(5, argv) == 0, "quantize_main %s: %s", names[k], slim_last_error());
        gguf_file q;
        if (gguf_open(&q, out) != 0) { CHECK(0, "re-open %s: %s", out, slim_last_error()); continue; }
        uint32_t ft = 0;
        CHECK(gguf_get_u32(&q, "general.file_type", &ft) == 0 && ft == ftype[k], "%s: general.file_type %u", names[k], ft);
        int kv_ok = 1;
        for (uint64_t i = 0; i < src.n_kv; i++) kv_ok &= gguf_find_kv(&q, src.kv[i].key) != NULL;
        CHECK(kv_ok && q.n_tensors == src.n_tensors, "%s: keys and tensor count kept", names[k]);
        const uint32_t want = (uint32_t)quantize_parse_type(names[k]);
        const uint32_t want64 = quant_fallback_type(want, 64);
        double worst = 0;
        for (uint64_t i = 0; i < src.n_tensors && i < q.n_tensors; i++) {
            const gguf_tensor *a = &src.tensors[i], *b = &q.tensors[i];
            int same_shape = !strcmp(a->name, b->name) && a->n_dims == b->n_dims && !memcmp(a->ne, b->ne, sizeof a->ne);
            CHECK(same_shape, "%s: tensor %llu %s keeps name and shape", names[k], (unsigned long long)i, a->name);
            if (a->n_dims == 1) {
                CHECK(b->type == GGML_TYPE_F32 && a->nbytes == b->nbytes && !memcmp(a->data, b->data, a->nbytes),
                      "%s: 1-D %s copied", names[k], a->name);
                continue;
            }
            uint32_t expect = strstr(a->name, "ffn_down") ? quant_fallback_type(want, 172) : want64;
            if (strstr(a->name, "ffn_down"))
                CHECK(expect == (want == GGML_TYPE_BF16 ? GGML_TYPE_BF16 : GGML_TYPE_F16), "172 falls back to F16");
            CHECK(b->type == expect, "%s: %s stored as %s, expected %s", names[k], a->name, gguf_type_name(b->type),
                  gguf_type_name(expect));
            float *fa = tensor_f32(a), *fb = tensor_f32(b);
            CHECK(fa && fb, "%s: %s dequantizes", names[k], a->name);
            if (fa && fb) {
                double e = rel_rms(fa, fb, (size_t)(a->ne[0] * a->ne[1]));
                if (e > worst) worst = e;
                CHECK(e <= bound[k], "%s: %s relative RMS error %.3g > %.3g", names[k], a->name, e, bound[k]);
            }
            free(fa);
            free(fb);
        }
        printf("  quantize %-4s: general.file_type %u, worst tensor relative RMS error %.3g\n", names[k], ft, worst);
        gguf_close(&q);
    }
    gguf_close(&src);

    /* bad input is an error, not a crash */
    char out[4200], missing[4200];
    snprintf(out, sizeof out, "%s/never.gguf", dir);
    snprintf(missing, sizeof missing, "%s/missing.gguf", dir);
    char *a1[] = { "quantize", missing, out, "--type", "q8_0", NULL };
    CHECK(quantize_main(5, a1) == -1 && !file_exists(out), "missing input fails");
    char *a2[] = { "quantize", (char *)model, out, "--type", "q3_k", NULL };
    CHECK(quantize_main(5, a2) == -1 && !file_exists(out), "unknown type fails");
    char *a3[] = { "quantize", (char *)model, NULL };
    CHECK(quantize_main(2, a3) == -1, "missing arguments fail");
}

/* ------------------------------------------------------------------------------------------ e2e helpers */

/* A random llama model with dim 256 (rows fit the 256-blocks of the K types), 4 heads of 64,
 * 2 KV heads, ffn 512, 2 layers, stories260K's vocabulary and tokenizer. */
static int write_synth(const char *model, const char *path) {
    gguf_file g;
    if (gguf_open(&g, model) != 0) return -1;
    gguf_writer *w = gguf_writer_init();
    for (uint64_t i = 0; i < g.n_kv; i++) gguf_writer_copy_kv(w, &g.kv[i]);
    const int D = 256, F = 512, L = 2, H = 4, KV = 2, V = 512, HD = D / H;
    gguf_writer_set_str(w, "general.name", "slimtune synthetic dim 256");
    gguf_writer_set_u32(w, "llama.embedding_length", D);
    gguf_writer_set_u32(w, "llama.feed_forward_length", F);
    gguf_writer_set_u32(w, "llama.attention.head_count", H);
    gguf_writer_set_u32(w, "llama.attention.head_count_kv", KV);
    gguf_writer_set_u32(w, "llama.block_count", L);
    gguf_writer_set_u32(w, "llama.rope.dimension_count", HD);
    slim_rng r;
    slim_rng_seed(&r, 256);
    float *buf = slim_malloc((size_t)F * V * sizeof(float));
    int rc = 0;
#define ADD(name, in, out, stdev, mean)                                                           \
    do {                                                                                          \
        int64_t ne[2] = { (in), (out) };                                                          \
        for (int64_t i = 0; i < ne[0] * ne[1]; i++) buf[i] = (mean) + (stdev) * slim_rng_normal(&r); \
        rc |= gguf_writer_add_tensor(w, name, GGML_TYPE_F32, (out) > 1 ? 2 : 1, ne, buf);         \
    } while (0)
    ADD("token_embd.weight", D, V, 1.0f, 0.0f);
    ADD("output_norm.weight", D, 1, 0.1f, 1.0f);
    ADD("output.weight", D, V, 2.0f / sqrtf(D), 0.0f);
    for (int l = 0; l < L; l++) {
        char n[64];
#define LADD(part, in, out, stdev, mean) \
        snprintf(n, sizeof n, "blk.%d.%s.weight", l, part); ADD(n, in, out, stdev, mean)
        LADD("attn_norm", D, 1, 0.1f, 1.0f);
        LADD("attn_q", D, D, 1.0f / sqrtf(D), 0.0f);
        LADD("attn_k", D, KV * HD, 1.0f / sqrtf(D), 0.0f);
        LADD("attn_v", D, KV * HD, 1.0f / sqrtf(D), 0.0f);
        LADD("attn_output", D, D, 1.0f / sqrtf(D), 0.0f);
        LADD("ffn_norm", D, 1, 0.1f, 1.0f);
        LADD("ffn_gate", D, F, 1.0f / sqrtf(D), 0.0f);
        LADD("ffn_up", D, F, 1.0f / sqrtf(D), 0.0f);
        LADD("ffn_down", F, D, 1.0f / sqrtf(F), 0.0f);
#undef LADD
    }
#undef ADD
    free(buf);
    if (rc == 0) rc = gguf_writer_write(w, path);
    gguf_writer_free(w);
    gguf_close(&g);
    return rc;
}

/* Q.gguf -> out with every tensor dequantized to F32, except `keep` (NULL: none), copied as it is */
static int write_f32_copy(const char *in, const char *out, const char *keep) {
    gguf_file g;
    if (gguf_open(&g, in) != 0) return -1;
    gguf_writer *w = gguf_writer_init();
    int rc = 0;
    for (uint64_t i = 0; i < g.n_kv; i++) gguf_writer_copy_kv(w, &g.kv[i]);
    gguf_writer_set_u32(w, "general.file_type", 0); /* LLAMA_FTYPE_ALL_F32 */
    for (uint64_t i = 0; i < g.n_tensors && rc == 0; i++) {
        const gguf_tensor *t = &g.tensors[i];
        if (keep && !strcmp(t->name, keep)) {
            rc = gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data);
            continue;
        }
        float *f = tensor_f32(t);
        if (!f) { rc = -1; break; }
        rc = gguf_writer_add_tensor(w, t->name, GGML_TYPE_F32, t->n_dims, t->ne, f);
        free(f);
    }
    if (rc == 0) rc = gguf_writer_write(w, out);
    gguf_writer_free(w);
    gguf_close(&g);
    return rc;
}

static int logits_dir_mode(const char *dir) {
    DIR *d = opendir(dir);
    CHECK(d != NULL, "cannot open SLIM_QUANT_LOGITS_DIR %s", dir);
    if (!d) return tu_finish("quant");
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".gguf") || strchr(e->d_name, '.') != e->d_name + len - 5)
            continue; /* X.gguf only, not the X.f32.gguf / X.embd.gguf written here */
        char in[4200], out[4200];
        snprintf(in, sizeof in, "%s/%s", dir, e->d_name);
        snprintf(out, sizeof out, "%s/%.*s.f32.gguf", dir, (int)(len - 5), e->d_name);
        CHECK(write_f32_copy(in, out, NULL) == 0, "%s: %s", in, slim_last_error());
        snprintf(out, sizeof out, "%s/%.*s.embd.gguf", dir, (int)(len - 5), e->d_name);
        CHECK(write_f32_copy(in, out, "token_embd.weight") == 0, "%s: %s", in, slim_last_error());
        n++;
    }
    closedir(d);
    CHECK(n > 0, "no .gguf files in %s", dir);
    printf("quant: wrote %d pairs of dequantized copies in %s\n", n, dir);
    return tu_finish("quant");
}

int main(void) {
    char model[4096];
    snprintf(model, sizeof model, "%s/models/stories260K.gguf", slim_shared_dir());
    const char *synth = getenv("SLIM_QUANT_SYNTH");
    if (synth && *synth) {
        CHECK(file_exists(model), "fixture %s is missing", model);
        CHECK(write_synth(model, synth) == 0, "%s", slim_last_error());
        return tu_finish("quant");
    }
    const char *ldir = getenv("SLIM_QUANT_LOGITS_DIR");
    if (ldir && *ldir) return logits_dir_mode(ldir);

    test_nf4_parts();
    test_hand_blocks();
    test_round_trips();
    test_half_conversions();
    test_nf4();
    if (!file_exists(model)) {
        fprintf(stderr, "FAIL: fixture %s is missing (set SLIM_SHARED to the shared/ directory)\n", model);
        tu_failed++;
        return tu_finish("quant");
    }
    char dir[] = "/tmp/slim-test-quant-XXXXXX";
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return tu_finish("quant"); }
    test_quantize_main(model, dir);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
    return tu_finish("quant");
}
