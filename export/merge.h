/* merge.h — the merged model's weights, tensor by tensor: the base as loaded (its weights as training
 * stored them, or the file's own) with the LoRA delta W' = W + (alpha/r) B A added to every adapted
 * projection. Shared by the merged GGUF (export.c) and the merged Hugging Face directory (hf_export.c). */
#ifndef SLIM_MERGE_H
#define SLIM_MERGE_H

#include <stdint.h>

#include "model/model.h"

/* The source of merged values and its F32 scratch. */
typedef struct merge_src {
    const model *m;
    const lora_adapter *a;
    const char *adapter_path; /* for errors */
    float *buf;               /* rows of the last merge_rows */
    size_t cap;               /* floats */
} merge_src;

/* Whether base tensor t is an adapted projection; sets its layer and target. */
int merge_is_adapted(const merge_src *s, const gguf_tensor *t, int *layer, int *target);
/* The loaded weight matrix of base tensor t (embedding, output, a layer's projection), or NULL. */
const qmatrix *merge_weights(const model *m, const gguf_tensor *t);
/* Rows handed out at a time for matrix t (rows = ne1*ne2*ne3, cols = ne0): all of them for an adapted
 * projection (its delta is merged whole), else about 2^20 values. */
int64_t merge_block_rows(const merge_src *s, const gguf_tensor *t);
/* F32 values [r1 - r0, cols] of rows [r0, r1) of matrix t into s->buf: adapted projections merged (then
 * only r0 = 0, r1 = rows) and checked finite; other matrices from the loaded weights, or the file's own
 * rows when none were loaded; the file's pages read in place are dropped behind. Returns 0 or -1 with an
 * error naming the tensor. */
int merge_rows(merge_src *s, const gguf_tensor *t, int64_t r0, int64_t r1);
/* The loaded F32 copy of vector tensor t (a norm, a q/k/v bias, rope_freqs; in GGUF order), or NULL:
 * what to write when the base's own bytes are gone (a Hugging Face view's memory, released after the
 * load, holds rope_freqs and llama's permuted q/k). */
const float *merge_vector(const model *m, const gguf_tensor *t);
/* Frees the scratch. */
void merge_src_free(merge_src *s);

#endif
