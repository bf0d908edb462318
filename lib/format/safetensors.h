/* safetensors.h — reader for Hugging Face safetensors files (F32, F16 and BF16 tensors).
 *
 * Format (huggingface/safetensors, README "Format"): u64 little-endian N, then N bytes of UTF-8
 * JSON, then the byte buffer. The JSON is an object
 *   { "<name>": { "dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end] }, ...,
 *     "__metadata__": { "<key>": "<string value>", ... } }   (metadata optional)
 * where begin/end are byte offsets relative to the start of the byte buffer (8 + N) and shape is
 * row-major, d0 slowest (a PyTorch [out, in] weight is shape [out, in]). Tensors must not overlap.
 *
 * The reader maps the file read-only; tensor data pointers point into the mapping and are NOT
 * necessarily aligned (the spec does not require it): copy with memcpy. Every length, offset,
 * shape and byte count is checked against the file; each failure names the file and the tensor. */
#ifndef SLIM_SAFETENSORS_H
#define SLIM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define SAFETENSORS_MAX_DIMS 4
/* Largest JSON header accepted (the reference implementation's limit is 100 MB). */
#define SAFETENSORS_MAX_HEADER (100u * 1000u * 1000u)

/* One tensor: shape[0..n_dims-1] as in the file (shape[0] slowest; rank 0 = a scalar), tensor type
 * GGML_TYPE_F32/F16/BF16 (gguf.h numbering), nbytes = product(shape) * element size, data inside the
 * mapping. */
typedef struct safetensors_tensor {
    char *name;
    uint32_t type;
    uint32_t n_dims;
    int64_t shape[SAFETENSORS_MAX_DIMS];
    uint64_t offset; /* begin, relative to the byte buffer */
    uint64_t nbytes;
    const void *data;
} safetensors_tensor;

typedef struct safetensors_file {
    char *path;
    uint64_t n_tensors;
    safetensors_tensor *tensors; /* in header order */
    uint64_t n_meta;             /* "__metadata__" string pairs */
    char **meta_keys;
    char **meta_values;
    uint64_t header_len;         /* N */
    const uint8_t *map;          /* whole file, read-only mapping */
    size_t map_size;
} safetensors_file;

/* Opens and validates a safetensors file. Returns 0, or -1 with an error naming the path and the
 * tensor/field at fault: header length past the end of the file or above SAFETENSORS_MAX_HEADER,
 * JSON that does not parse or is not an object, missing/ill-typed dtype/shape/data_offsets,
 * unsupported dtype (only F32, F16, BF16), rank above 4, negative or non-integer numbers, element
 * count or byte size overflow, end - begin != product(shape) * element size, data past the end of
 * the file, overlapping data, duplicate names, non-string metadata. On failure *f is left freed. */
int safetensors_open(safetensors_file *f, const char *path);
/* Unmaps the file and frees the tensor and metadata tables; *f is zeroed. */
void safetensors_close(safetensors_file *f);

/* The tensor called name, or NULL. */
const safetensors_tensor *safetensors_find_tensor(const safetensors_file *f, const char *name);
/* The "__metadata__" value of key, or NULL. */
const char *safetensors_find_meta(const safetensors_file *f, const char *key);

/* Bytes per element of a safetensors dtype string ("F32" 4, "F16"/"BF16" 2) and its ggml type;
 * returns 0 for dtypes this reader does not support. */
size_t safetensors_dtype_size(const char *dtype, uint32_t *tensor_type);

/* One tensor to write: type GGML_TYPE_F32, F16 or BF16, shape as in the file (shape[0] slowest). */
typedef struct safetensors_out {
    const char *name; /* printable ASCII without '"' or '\\' */
    uint32_t type;
    uint32_t n_dims;
    int64_t shape[SAFETENSORS_MAX_DIMS];
    const void *data;
} safetensors_out;

/* Writes a safetensors file (atomically: temporary name, fsync, rename): the header lists the tensors
 * in the given order with their data packed in that order, "__metadata__" holds the n_meta key/value
 * string pairs meta[2i], meta[2i+1] (printable ASCII), and the header is padded with spaces to a
 * multiple of 8 bytes. Returns 0, or -1 with an error naming the path or tensor. */
int safetensors_write(const char *path, const safetensors_out *t, size_t n, const char *const *meta, size_t n_meta);

/* The same, streamed (files larger than memory): safetensors_writer_begin writes the header of the n
 * tensors (their data pointers unused) to a temporary file; safetensors_writer_data appends tensor bytes
 * in header order, in any chunks; safetensors_writer_finish checks that every byte came, fsyncs and
 * renames; safetensors_writer_abort removes the temporary file (also after a failed data/finish). begin
 * returns NULL with an error; the others 0 or -1. */
typedef struct safetensors_writer safetensors_writer;
safetensors_writer *safetensors_writer_begin(const char *path, const safetensors_out *t, size_t n,
                                             const char *const *meta, size_t n_meta);
int safetensors_writer_data(safetensors_writer *w, const void *data, size_t n);
int safetensors_writer_finish(safetensors_writer *w);
void safetensors_writer_abort(safetensors_writer *w);
/* Bytes of a tensor's data in the file (0 for a type it cannot write). */
uint64_t safetensors_out_bytes(const safetensors_out *t);

#endif
