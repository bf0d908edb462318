/* gguf.h — reader and writer for GGUF files (versions 2 and 3), the format of llama.cpp / ggml.
 *
 * Spec: ggml/docs/gguf.md. Layout: magic "GGUF", u32 version, u64 n_tensors, u64 n_kv, then n_kv
 * key/value pairs (string key, u32 type, value), then n_tensors tensor infos (string name, u32 n_dims,
 * u64 ne[n_dims], u32 ggml type, u64 offset), then padding to `general.alignment` (default 32), then
 * the tensor data; each tensor's offset is relative to the start of the data section.
 * Strings are u64 length + bytes (no NUL). ne[0] is the fastest-varying dimension (row length).
 *
 * The reader maps the whole file read-only; tensor data pointers point into the mapping.
 * Every count, length, offset and dimension is bounds-checked against the file size. */
#ifndef SLIM_GGUF_H
#define SLIM_GGUF_H

#include <stddef.h>
#include <stdint.h>

/* Metadata value types (gguf.md). */
enum gguf_type {
    GGUF_TYPE_UINT8 = 0, GGUF_TYPE_INT8 = 1, GGUF_TYPE_UINT16 = 2, GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4, GGUF_TYPE_INT32 = 5, GGUF_TYPE_FLOAT32 = 6, GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8, GGUF_TYPE_ARRAY = 9, GGUF_TYPE_UINT64 = 10, GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12, GGUF_TYPE_COUNT = 13
};

/* Tensor element types (ggml.h numbering). gguf_row_size knows every type listed; the model loader converts F32, F16 and BF16. */
enum gguf_tensor_type {
    GGML_TYPE_F32 = 0, GGML_TYPE_F16 = 1, GGML_TYPE_Q4_0 = 2, GGML_TYPE_Q4_1 = 3,
    GGML_TYPE_Q5_0 = 6, GGML_TYPE_Q5_1 = 7, GGML_TYPE_Q8_0 = 8, GGML_TYPE_Q4_K = 12,
    GGML_TYPE_Q5_K = 13, GGML_TYPE_Q6_K = 14, GGML_TYPE_BF16 = 30
};

/* One metadata key/value. Scalars are widened into u64/i64/f64 (bool -> u64 0/1) and the
 * original type is kept in `type`. Strings are NUL-terminated copies (str, str_len bytes; may
 * contain NUL bytes inside). Arrays: arr_type is the element type, n the count; numeric arrays are
 * stored packed in their native little-endian element size at `arr`; string arrays as `strs`
 * (n NUL-terminated copies) with lengths in `str_lens`. Nested arrays are rejected. */
typedef struct gguf_kv {
    char *key;
    uint32_t type;
    uint32_t arr_type;
    uint64_t n;
    uint64_t u64;
    int64_t i64;
    double f64;
    char *str;
    uint64_t str_len;
    void *arr;
    char **strs;
    uint64_t *str_lens;
} gguf_kv;

/* One tensor: shape ne[0..n_dims-1] (ne[0] = row length, unused dims = 1), element type,
 * byte size, and a pointer to its bytes inside the mapped file. */
typedef struct gguf_tensor {
    char *name;
    uint32_t n_dims;
    int64_t ne[4];
    uint32_t type;
    uint64_t offset;
    uint64_t nbytes;
    const void *data;
} gguf_tensor;

typedef struct gguf_file {
    char *path;
    uint32_t version;
    uint64_t n_kv;
    gguf_kv *kv;
    uint64_t n_tensors;
    gguf_tensor *tensors;
    uint64_t alignment;
    uint64_t data_offset; /* file offset of the tensor data section */
    const uint8_t *map;   /* whole file, read-only mapping */
    size_t map_size;
    int map_is_file;      /* 1: map is the file's own pages (gguf_open), 0: memory (hf_open) */
    /* hf_open: tensors outside map point into files mapped by owner, which gguf_close releases with
     * owner_close(owner); NULL for gguf_open */
    void *owner;
    void (*owner_close)(void *owner);
} gguf_file;

/* Opens and validates a GGUF file. Returns 0, or -1 with an error naming the path and the key or
 * tensor at fault (bad magic, unsupported version, truncated header, string longer than the file,
 * more than 4 dims, element-count overflow, unknown type, misaligned or out-of-file tensor data,
 * duplicate names). On failure *g is left freed. */
int gguf_open(gguf_file *g, const char *path);
/* Unmaps the file and frees every key and tensor entry; *g is zeroed (safe on a zeroed g). */
void gguf_close(gguf_file *g);

/* Drops the resident pages of bytes [p, p + n) of a tensor's data (read and no longer needed), so that
 * reading a large file once does not keep it all in the resident set; the pages come back from the
 * file when read again. Only file pages are dropped: inside g->map when map_is_file, and (hf_open)
 * anywhere outside g->map, where tensors point into the owner's file mappings. */
void gguf_drop_pages(const gguf_file *g, const void *p, size_t n);
/* Frees the memory a view holds of its own (map_is_file 0: a Hugging Face directory's permuted Q/K
 * copies, hf_open) once nothing will read its tensors again (their weights converted): the data of
 * the tensors that lived there becomes NULL. A file's mapping (map_is_file 1) is left as it is. */
void gguf_release_memory(gguf_file *g);

/* Lookups: NULL when absent. */
const gguf_kv *gguf_find_kv(const gguf_file *g, const char *key);
const gguf_tensor *gguf_find_tensor(const gguf_file *g, const char *name);

/* Typed getters. Integer getters accept any integer (or bool) type and range-check it; the float
 * getter accepts float32/float64. Return 0, or -1 with an error naming the key when the key is
 * missing or of the wrong type. */
int gguf_get_u32(const gguf_file *g, const char *key, uint32_t *out);
int gguf_get_i64(const gguf_file *g, const char *key, int64_t *out);
int gguf_get_f32(const gguf_file *g, const char *key, float *out);
/* String value of a STRING key, or NULL (and an error) when missing or not a string. */
const char *gguf_get_str(const gguf_file *g, const char *key);

/* Bytes per row of ne0 elements of a ggml type; 0 for unsupported types or ne0 not a multiple of
 * the type's block size. */
size_t gguf_row_size(uint32_t type, int64_t ne0);
/* Human-readable type name ("F32", "F16", "Q8_0", ...); "?" for unknown. */
const char *gguf_type_name(uint32_t type);

/* IEEE half <-> float conversions (round to nearest even). */
float slim_fp16_to_fp32(uint16_t h);
uint16_t slim_fp32_to_fp16(float f);

/* Writer: a GGUF v3 file (kvs, then tensor infos, then aligned data), written atomically (temporary
 * name, fsync, rename; a failure or gguf_writer_abort removes the temporary file). Two ways to use it:
 *  - in memory: gguf_writer_add_tensor copies each tensor's data, gguf_writer_write writes it all;
 *  - streaming (files larger than memory): declare every tensor with gguf_writer_add_tensor_info, then
 *    gguf_writer_begin (writes the header), gguf_writer_write_data for the tensors' bytes in declaration
 *    order (any chunking), then gguf_writer_finish. Both give the same bytes. */
typedef struct gguf_writer gguf_writer;

/* A new, empty writer (general.alignment 32); gguf_writer_free releases it (aborting an open stream). */
gguf_writer *gguf_writer_init(void);
void gguf_writer_free(gguf_writer *w);
/* Copies one key/value (any type, arrays included) as read from another file. Replaces an
 * existing key of the same name. */
void gguf_writer_copy_kv(gguf_writer *w, const gguf_kv *kv);
/* Sets a scalar or string key (replacing one of the same name). */
void gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v);
void gguf_writer_set_f32(gguf_writer *w, const char *key, float v);
void gguf_writer_set_str(gguf_writer *w, const char *key, const char *v);
/* Adds a tensor of the given ggml type and shape (ne[0] fastest); data holds
 * gguf_row_size(type, ne[0]) * ne[1] * ne[2] * ne[3] bytes. Returns 0 or -1 (bad shape/type, duplicate). */
int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                           const int64_t *ne, const void *data);
/* Declares a tensor whose data will be streamed (gguf_writer_write_data) after gguf_writer_begin; the
 * checks of gguf_writer_add_tensor. Returns 0 or -1 (also when the header is already written). */
int gguf_writer_add_tensor_info(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                const int64_t *ne);
/* Writes the whole file of in-memory tensors (alignment 32 unless general.alignment was set). Returns 0 or -1. */
int gguf_writer_write(gguf_writer *w, const char *path);
/* Streaming: opens the temporary file for path and writes the header, the kvs and every declared tensor
 * info. Returns 0 or -1. */
int gguf_writer_begin(gguf_writer *w, const char *path);
/* Streaming: appends n bytes of tensor data (the declared tensors' bytes in order; padding is added
 * when a tensor is complete). More bytes than declared is an error. Returns 0, or -1 (stream aborted). */
int gguf_writer_write_data(gguf_writer *w, const void *data, size_t n);
/* Streaming: checks every declared byte was written, fsyncs and renames the file into place. Returns 0,
 * or -1 (stream aborted, nothing left under path). */
int gguf_writer_finish(gguf_writer *w);
/* Streaming: closes and removes the temporary file (no-op when no stream is open). */
void gguf_writer_abort(gguf_writer *w);

#endif
