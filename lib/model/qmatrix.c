/* qmatrix.c — row access to frozen weight matrices of any storage type (see quant.h). */
#include <string.h>

#include "quant.h"

void qmatrix_dequantize_rows(const qmatrix *W, int64_t r0, int64_t r1, float *out) {
    if (W->type == SLIM_TYPE_NF4) {
        nf4_dequantize(W->nf4, (size_t)r0 * W->cols, (size_t)(r1 - r0) * W->cols, out);
        return;
    }
    if (W->type == GGML_TYPE_F32) {
        memcpy(out, W->data + (size_t)r0 * W->row_bytes, sizeof(float) * (size_t)(r1 - r0) * W->cols);
        return;
    }
    for (int64_t r = r0; r < r1; r++)
        quant_dequantize_row(W->type, W->data + (size_t)r * W->row_bytes, out + (size_t)(r - r0) * W->cols, W->cols);
}

size_t qmatrix_nbytes(const qmatrix *W) {
    if (W->type == SLIM_TYPE_NF4) return nf4_nbytes(W->nf4);
    return (size_t)W->rows * W->row_bytes;
}

const char *qmatrix_type_name(uint32_t type) { return type == SLIM_TYPE_NF4 ? "NF4" : gguf_type_name(type); }
