/* quant.h — weight storage types for frozen bases: ggml's block formats (bit-exact with ggml's
 * reference definitions in ggml-quants.c), IEEE half and bfloat16, and bitsandbytes' NF4 with double
 * quantization (Dettmers et al. 2023, QLoRA).
 *
 * ggml block formats (QK = elements per block; all little-endian):
 *   Q8_0  32: f16 d; int8 qs[32]                         x = d * q
 *   Q4_0  32: f16 d; u8 qs[16] (low nibbles = elements 0..15, high = 16..31)   x = d * (q - 8)
 *   Q4_1  32: f16 d, m; u8 qs[16]                         x = d * q + m
 *   Q5_0  32: f16 d; u8 qh[4]; u8 qs[16]                  x = d * (q - 16), q 5-bit
 *   Q5_1  32: f16 d, m; u8 qh[4]; u8 qs[16]               x = d * q + m
 *   Q4_K 256: f16 d, dmin; u8 scales[12] (6-bit scales/mins of 8 sub-blocks); u8 qs[128]
 *   Q5_K 256: f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]
 *   Q6_K 256: u8 ql[128]; u8 qh[64]; int8 scales[16]; f16 d
 * A row of a ggml-typed matrix is gguf_row_size(type, cols) bytes; cols must be a multiple of QK.
 *
 * NF4 (bitsandbytes): the tensor is flattened (row-major) and cut into blocks of 64 elements (the last
 * may be short); each block stores absmax = max|x| and 4-bit indices into the 16 NF4 code values
 * (quantiles of N(0,1) scaled to [-1, 1]), x = code[q] * absmax. Two indices per byte, the FIRST
 * element of each pair in the HIGH nibble (bitsandbytes' packing). Double quantization: the absmax
 * values (float32) have their mean subtracted (offset) and are quantized blockwise, 256 per block,
 * with bitsandbytes' signed 8-bit dynamic map (create_dynamic_map(signed=True)): per block absmax2 =
 * max|a - offset| and a byte index into the map, a = map[i] * absmax2 + offset. */
#ifndef SLIM_QUANT_H
#define SLIM_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "format/gguf.h"

/* Our own type id for NF4 (not a ggml type; never written to GGUF). */
#define SLIM_TYPE_NF4 1000

#define NF4_BLOCK 64
#define NF4_DQ_BLOCK 256

/* The 16 NF4 code values, ascending (bitsandbytes). */
extern const float nf4_code[16];
/* bitsandbytes' signed 8-bit dynamic quantization map, 256 values ascending. */
extern const float *quant_dynamic_map(void);

/* An NF4 tensor of n elements (flattened). */
typedef struct nf4_tensor {
    size_t n;            /* elements */
    uint8_t *qs;         /* [(n + 1) / 2] packed 4-bit indices */
    uint8_t *absmax_q;   /* [n_blocks] 8-bit dynamic-map indices of (absmax - offset) / absmax2 */
    float *absmax2;      /* [ceil(n_blocks / 256)] second-level scales */
    float offset;        /* mean of the first-level absmax values */
    size_t n_blocks;     /* ceil(n / 64) */
} nf4_tensor;

/* Quantizes x [n] to NF4 with double quantization (allocates): nf4_begin + one nf4_quantize_part + nf4_end. */
void nf4_quantize(nf4_tensor *t, const float *x, size_t n);
/* NF4 in pieces, with the same result as nf4_quantize: nf4_begin allocates t for n elements and returns
 * the first-level absmax scratch [n_blocks]; nf4_quantize_part quantizes x [count] as elements
 * [start, start + count) (start a multiple of NF4_BLOCK; count too unless the piece ends the tensor);
 * nf4_end applies the double quantization once every piece is in, and frees absmax. */
float *nf4_begin(nf4_tensor *t, size_t n);
void nf4_quantize_part(nf4_tensor *t, float *absmax, const float *x, size_t start, size_t count);
void nf4_end(nf4_tensor *t, float *absmax);
/* Frees the blocks of an nf4_tensor (not the struct itself). */
void nf4_free(nf4_tensor *t);
/* Dequantizes elements [start, start + count) of the flattened tensor into out [count]. */
void nf4_dequantize(const nf4_tensor *t, size_t start, size_t count, float *out);
/* Bytes the NF4 tensor occupies. */
size_t nf4_nbytes(const nf4_tensor *t);

/* Dequantizes one row of `cols` elements stored in ggml type `type` (F32, F16, BF16, Q8_0, Q4_0,
 * Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K) from src into out [cols]. Returns 0, or -1 for an
 * unsupported type or a cols that is not a multiple of the block size. */
int quant_dequantize_row(uint32_t type, const void *src, float *out, int64_t cols);

/* Quantizes one row x [cols] into dst (gguf_row_size(type, cols) bytes) with ggml's reference
 * quantizer for type (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K). Returns 0 or -1. */
int quant_quantize_row(uint32_t type, const float *x, void *dst, int64_t cols);

/* Whether rows of `cols` elements can be stored as `type` (block size divides cols). */
int quant_type_fits(uint32_t type, int64_t cols);
/* The type llama.cpp's quantizer falls back to when `type` does not fit rows of `cols`
 * (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, then F16 if that does not fit either). */
uint32_t quant_fallback_type(uint32_t type, int64_t cols);

/* A frozen weight matrix [rows = out features, cols = in features] in any storage type. For ggml
 * types (F32, F16, BF16, Q8_0, ...) row r is row_bytes bytes at data + r * row_bytes; for NF4 the
 * flattened tensor lives in *nf4. Implemented in qmatrix.c. */
typedef struct qmatrix {
    int64_t rows, cols;
    uint32_t type;          /* GGML_TYPE_* or SLIM_TYPE_NF4 */
    const uint8_t *data;    /* ggml types: rows * row_bytes bytes (owned elsewhere) */
    size_t row_bytes;
    nf4_tensor *nf4;        /* SLIM_TYPE_NF4 only */
} qmatrix;

/* Dequantizes rows [r0, r1) of W into out [(r1 - r0), cols] (F32). */
void qmatrix_dequantize_rows(const qmatrix *W, int64_t r0, int64_t r1, float *out);
/* Bytes W's storage occupies. */
size_t qmatrix_nbytes(const qmatrix *W);
/* Storage type name: "F32", "Q8_0", "NF4", ... */
const char *qmatrix_type_name(uint32_t type);

/* bfloat16 <-> float (the high half of an IEEE float). */
float slim_bf16_to_fp32(uint16_t h);
uint16_t slim_fp32_to_bf16(float f); /* round to nearest even, as ggml */

#endif
