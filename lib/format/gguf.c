/* gguf.c — GGUF reader (mmap, fully bounds-checked) and writer (v3, atomic). See gguf.h.
 *
 * Facts from ggml/docs/gguf.md and ggml.c (block sizes): every multi-byte value is little-endian
 * (this code assumes a little-endian host, as ggml does); a file whose version reads as a
 * byte-swapped 2 or 3 is a big-endian GGUF and is rejected. */
#define _GNU_SOURCE
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32

/* ---------------------------------------------------------------------------------------------
 * ggml types and fp16 */

/* Block size (elements) and bytes per block of a ggml type; 0 when unsupported (ggml.c type_traits). */
static int gguf_type_block(uint32_t type, int64_t *blck, size_t *bytes) {
    switch (type) {
    case GGML_TYPE_F32:  *blck = 1;   *bytes = 4;   return 1;
    case GGML_TYPE_F16:  *blck = 1;   *bytes = 2;   return 1;
    case GGML_TYPE_BF16: *blck = 1;   *bytes = 2;   return 1;
    case GGML_TYPE_Q4_0: *blck = 32;  *bytes = 18;  return 1; /* f16 d + 16 nibble bytes */
    case GGML_TYPE_Q4_1: *blck = 32;  *bytes = 20;  return 1; /* f16 d, m + 16 */
    case GGML_TYPE_Q5_0: *blck = 32;  *bytes = 22;  return 1; /* f16 d + 4 qh + 16 */
    case GGML_TYPE_Q5_1: *blck = 32;  *bytes = 24;  return 1; /* f16 d, m + 4 qh + 16 */
    case GGML_TYPE_Q8_0: *blck = 32;  *bytes = 34;  return 1; /* f16 d + 32 int8 */
    case GGML_TYPE_Q4_K: *blck = 256; *bytes = 144; return 1; /* d, dmin + 12 scales + 128 */
    case GGML_TYPE_Q5_K: *blck = 256; *bytes = 176; return 1; /* d, dmin + 12 + 32 qh + 128 */
    case GGML_TYPE_Q6_K: *blck = 256; *bytes = 210; return 1; /* 128 ql + 64 qh + 16 sc + d */
    default: return 0;
    }
}

size_t gguf_row_size(uint32_t type, int64_t ne0) {
    int64_t blck;
    size_t bytes;
    if (!gguf_type_block(type, &blck, &bytes) || ne0 < 0 || ne0 % blck) return 0;
    return (size_t)(ne0 / blck) * bytes;
}

const char *gguf_type_name(uint32_t type) {
    switch (type) {
    case GGML_TYPE_F32:  return "F32";
    case GGML_TYPE_F16:  return "F16";
    case GGML_TYPE_BF16: return "BF16";
    case GGML_TYPE_Q4_0: return "Q4_0";
    case GGML_TYPE_Q4_1: return "Q4_1";
    case GGML_TYPE_Q5_0: return "Q5_0";
    case GGML_TYPE_Q5_1: return "Q5_1";
    case GGML_TYPE_Q8_0: return "Q8_0";
    case GGML_TYPE_Q4_K: return "Q4_K";
    case GGML_TYPE_Q5_K: return "Q5_K";
    case GGML_TYPE_Q6_K: return "Q6_K";
    default: return "?";
    }
}

float slim_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24, exact in float */
        float f = (float)mant * (1.0f / 16777216.0f);
        return sign ? -f : f;
    }
    if (exp == 31) bits = sign | 0x7f800000u | (mant << 13); /* inf / NaN (payload kept) */
    else bits = sign | ((exp + 112) << 23) | (mant << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t slim_fp32_to_fp16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return sign | 0x7e00 | ((ax >> 13) & 0x3ff);   /* NaN stays NaN */
    if (ax >= 0x477ff000u) return sign | 0x7c00;                         /* >= 65520 rounds to inf */
    if (ax < 0x38800000u) {                                              /* below 2^-14: subnormal */
        if (ax < 0x33000000u) return sign;                               /* below 2^-25: zero */
        uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; /* value / 2^-24 = m * 2^(e - 126) */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return sign | (uint16_t)q;
    }
    uint32_t r = ax + 0xfffu + ((ax >> 13) & 1); /* round to nearest even on the 13 dropped bits */
    r -= 112u << 23;                            /* rebias exponent 127 -> 15 */
    return sign | (uint16_t)(r >> 13);
}

/* ---------------------------------------------------------------------------------------------
 * key/value helpers shared by reader and writer */

/* Size in bytes of a scalar metadata type; 0 for STRING/ARRAY/unknown. */
static size_t gguf_type_size(uint32_t t) {
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

static int gguf_type_is_unsigned(uint32_t t) {
    return t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_UINT16 || t == GGUF_TYPE_UINT32 ||
           t == GGUF_TYPE_UINT64 || t == GGUF_TYPE_BOOL;
}

static int gguf_type_is_signed(uint32_t t) {
    return t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 || t == GGUF_TYPE_INT64;
}

/* Fills the widened u64/i64/f64 fields of kv from n raw little-endian bytes of scalar type t. */
static void gguf_kv_set_scalar(gguf_kv *kv, uint32_t t, const uint8_t *p) {
    kv->u64 = 0; kv->i64 = 0; kv->f64 = 0;
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_BOOL: kv->u64 = p[0]; break;
    case GGUF_TYPE_UINT16: { uint16_t v; memcpy(&v, p, 2); kv->u64 = v; break; }
    case GGUF_TYPE_UINT32: { uint32_t v; memcpy(&v, p, 4); kv->u64 = v; break; }
    case GGUF_TYPE_UINT64: memcpy(&kv->u64, p, 8); break;
    case GGUF_TYPE_INT8: kv->i64 = (int8_t)p[0]; break;
    case GGUF_TYPE_INT16: { int16_t v; memcpy(&v, p, 2); kv->i64 = v; break; }
    case GGUF_TYPE_INT32: { int32_t v; memcpy(&v, p, 4); kv->i64 = v; break; }
    case GGUF_TYPE_INT64: memcpy(&kv->i64, p, 8); break;
    case GGUF_TYPE_FLOAT32: { float v; memcpy(&v, p, 4); kv->f64 = v; break; }
    case GGUF_TYPE_FLOAT64: memcpy(&kv->f64, p, 8); break;
    default: break;
    }
    if (gguf_type_is_unsigned(t)) {
        kv->i64 = kv->u64 <= (uint64_t)INT64_MAX ? (int64_t)kv->u64 : 0;
        kv->f64 = (double)kv->u64;
    } else if (gguf_type_is_signed(t)) {
        kv->u64 = kv->i64 >= 0 ? (uint64_t)kv->i64 : 0;
        kv->f64 = (double)kv->i64;
    }
}

/* Writes the scalar of kv back into n raw bytes of its own type (inverse of gguf_kv_set_scalar). */
static void gguf_kv_get_scalar(const gguf_kv *kv, uint8_t *p) {
    switch (kv->type) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_BOOL: p[0] = (uint8_t)kv->u64; break;
    case GGUF_TYPE_UINT16: { uint16_t v = (uint16_t)kv->u64; memcpy(p, &v, 2); break; }
    case GGUF_TYPE_UINT32: { uint32_t v = (uint32_t)kv->u64; memcpy(p, &v, 4); break; }
    case GGUF_TYPE_UINT64: memcpy(p, &kv->u64, 8); break;
    case GGUF_TYPE_INT8: p[0] = (uint8_t)(int8_t)kv->i64; break;
    case GGUF_TYPE_INT16: { int16_t v = (int16_t)kv->i64; memcpy(p, &v, 2); break; }
    case GGUF_TYPE_INT32: { int32_t v = (int32_t)kv->i64; memcpy(p, &v, 4); break; }
    case GGUF_TYPE_INT64: memcpy(p, &kv->i64, 8); break;
    case GGUF_TYPE_FLOAT32: { float v = (float)kv->f64; memcpy(p, &v, 4); break; }
    case GGUF_TYPE_FLOAT64: memcpy(p, &kv->f64, 8); break;
    default: break;
    }
}

static char *gguf_dup_bytes(const char *s, uint64_t n) {
    char *d = slim_malloc((size_t)n + 1);
    if (n) memcpy(d, s, (size_t)n);
    d[n] = 0;
    return d;
}

static void gguf_kv_free(gguf_kv *kv) {
    free(kv->key);
    free(kv->str);
    free(kv->arr);
    if (kv->strs)
        for (uint64_t i = 0; i < kv->n; i++) free(kv->strs[i]);
    free(kv->strs);
    free(kv->str_lens);
    memset(kv, 0, sizeof *kv);
}

/* Deep copy of src into dst (dst's old contents are not freed). */
static void gguf_kv_copy(gguf_kv *dst, const gguf_kv *src) {
    *dst = *src;
    dst->key = slim_strdup(src->key);
    dst->str = src->str ? gguf_dup_bytes(src->str, src->str_len) : NULL;
    dst->arr = NULL;
    dst->strs = NULL;
    dst->str_lens = NULL;
    if (src->type != GGUF_TYPE_ARRAY) return;
    if (src->arr_type == GGUF_TYPE_STRING) {
        dst->strs = slim_malloc(src->n * sizeof(char *));
        dst->str_lens = slim_malloc(src->n * sizeof(uint64_t));
        for (uint64_t i = 0; i < src->n; i++) {
            dst->str_lens[i] = src->str_lens[i];
            dst->strs[i] = gguf_dup_bytes(src->strs[i], src->str_lens[i]);
        }
    } else {
        size_t nb = (size_t)src->n * gguf_type_size(src->arr_type);
        dst->arr = slim_malloc(nb);
        if (nb) memcpy(dst->arr, src->arr, nb);
    }
}

/* Open-addressing set of names used to detect duplicates; returns the index of an earlier equal
 * name, or -1 when all n names are distinct. */
static int64_t gguf_find_duplicate(char *const *names, size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    int64_t *slot = slim_malloc(cap * sizeof(int64_t));
    for (size_t i = 0; i < cap; i++) slot[i] = -1;
    int64_t dup = -1;
    for (size_t i = 0; i < n && dup < 0; i++) {
        size_t h = (size_t)slim_fnv1a(SLIM_FNV_INIT, names[i], strlen(names[i])) & (cap - 1);
        while (slot[h] >= 0) {
            if (strcmp(names[slot[h]], names[i]) == 0) { dup = slot[h]; break; }
            h = (h + 1) & (cap - 1);
        }
        if (dup < 0) slot[h] = (int64_t)i;
    }
    free(slot);
    return dup;
}

/* ---------------------------------------------------------------------------------------------
 * reader */

typedef struct {
    const uint8_t *p;
    size_t size, pos;
    const char *path;
    char what[160]; /* the item being read, for error messages ("key 'x'", "tensor 'y'") */
} gguf_rd;

static int rd_take(gguf_rd *r, void *out, size_t n, const char *field) {
    if (n > r->size - r->pos)
        return slim_set_error("%s: %s: %s truncated at offset %zu (needs %zu bytes, file has %zu)",
                              r->path, r->what, field, r->pos, n, r->size);
    memcpy(out, r->p + r->pos, n);
    r->pos += n;
    return 0;
}

static int rd_u32(gguf_rd *r, uint32_t *v, const char *field) { return rd_take(r, v, 4, field); }
static int rd_u64(gguf_rd *r, uint64_t *v, const char *field) { return rd_take(r, v, 8, field); }

/* Reads a GGUF string (u64 length + bytes) into a fresh NUL-terminated copy. */
static int rd_str(gguf_rd *r, char **s, uint64_t *len, const char *field) {
    uint64_t n;
    if (rd_u64(r, &n, field)) return -1;
    if (n > r->size - r->pos)
        return slim_set_error("%s: %s: %s length %llu at offset %zu runs past end of file (%zu bytes)",
                              r->path, r->what, field, (unsigned long long)n, r->pos - 8, r->size);
    *s = gguf_dup_bytes((const char *)r->p + r->pos, n);
    if (len) *len = n;
    r->pos += (size_t)n;
    return 0;
}

/* Reads the value of kv (type already set) from the stream. */
static int rd_value(gguf_rd *r, gguf_kv *kv) {
    if (kv->type == GGUF_TYPE_STRING) return rd_str(r, &kv->str, &kv->str_len, "string value");
    if (kv->type != GGUF_TYPE_ARRAY) {
        size_t sz = gguf_type_size(kv->type);
        if (!sz)
            return slim_set_error("%s: %s: unknown value type %u", r->path, r->what, kv->type);
        uint8_t buf[8];
        if (rd_take(r, buf, sz, "value")) return -1;
        gguf_kv_set_scalar(kv, kv->type, buf);
        return 0;
    }
    if (rd_u32(r, &kv->arr_type, "array element type") || rd_u64(r, &kv->n, "array length")) return -1;
    if (kv->arr_type == GGUF_TYPE_ARRAY)
        return slim_set_error("%s: %s: nested arrays are not supported", r->path, r->what);
    size_t left = r->size - r->pos;
    if (kv->arr_type == GGUF_TYPE_STRING) {
        if (kv->n > left / 8)
            return slim_set_error("%s: %s: array of %llu strings runs past end of file", r->path,
                                  r->what, (unsigned long long)kv->n);
        kv->strs = slim_calloc((size_t)kv->n, sizeof(char *));
        kv->str_lens = slim_calloc((size_t)kv->n, sizeof(uint64_t));
        for (uint64_t i = 0; i < kv->n; i++) {
            char field[64];
            snprintf(field, sizeof field, "array element %llu", (unsigned long long)i);
            if (rd_str(r, &kv->strs[i], &kv->str_lens[i], field)) return -1;
        }
        return 0;
    }
    size_t sz = gguf_type_size(kv->arr_type);
    if (!sz)
        return slim_set_error("%s: %s: unknown array element type %u", r->path, r->what, kv->arr_type);
    if (kv->n > left / sz)
        return slim_set_error("%s: %s: array of %llu elements of %zu bytes runs past end of file",
                              r->path, r->what, (unsigned long long)kv->n, sz);
    kv->arr = slim_malloc((size_t)kv->n * sz);
    return rd_take(r, kv->arr, (size_t)kv->n * sz, "array data");
}

static int gguf_parse(gguf_file *g, gguf_rd *r) {
    snprintf(r->what, sizeof r->what, "header");
    char magic[4];
    if (rd_take(r, magic, 4, "magic")) return -1;
    if (memcmp(magic, "GGUF", 4) != 0)
        return slim_set_error("%s: not a GGUF file (magic %02x %02x %02x %02x, expected \"GGUF\")", r->path,
                              (uint8_t)magic[0], (uint8_t)magic[1], (uint8_t)magic[2], (uint8_t)magic[3]);
    if (rd_u32(r, &g->version, "version")) return -1;
    if (g->version == 0x02000000u || g->version == 0x03000000u)
        return slim_set_error("%s: big-endian GGUF files are not supported", r->path);
    if (g->version != 2 && g->version != 3)
        return slim_set_error("%s: unsupported GGUF version %u (supported: 2, 3)", r->path, g->version);
    uint64_t n_tensors, n_kv;
    if (rd_u64(r, &n_tensors, "tensor count") || rd_u64(r, &n_kv, "key/value count")) return -1;
    /* each kv needs >= 8 (key length) + 4 (type) + 1 bytes; each tensor info >= 8 + 4 + 4 + 8 */
    size_t left = r->size - r->pos;
    if (n_kv > left / 13)
        return slim_set_error("%s: header: key/value count %llu is impossible for a file of %zu bytes",
                              r->path, (unsigned long long)n_kv, r->size);
    if (n_tensors > left / 24)
        return slim_set_error("%s: header: tensor count %llu is impossible for a file of %zu bytes",
                              r->path, (unsigned long long)n_tensors, r->size);

    g->kv = slim_calloc((size_t)n_kv, sizeof(gguf_kv));
    for (uint64_t i = 0; i < n_kv; i++) {
        gguf_kv *kv = &g->kv[i];
        g->n_kv = i + 1; /* so that gguf_close frees what was read so far */
        snprintf(r->what, sizeof r->what, "key/value #%llu", (unsigned long long)i);
        if (rd_str(r, &kv->key, NULL, "key")) return -1;
        snprintf(r->what, sizeof r->what, "key '%.120s'", kv->key);
        if (rd_u32(r, &kv->type, "type")) return -1;
        if (kv->type >= GGUF_TYPE_COUNT)
            return slim_set_error("%s: %s: unknown value type %u", r->path, r->what, kv->type);
        if (rd_value(r, kv)) return -1;
    }
    char **names = slim_malloc((size_t)n_kv * sizeof(char *) + 1);
    for (uint64_t i = 0; i < n_kv; i++) names[i] = g->kv[i].key;
    int64_t dup = gguf_find_duplicate(names, (size_t)n_kv);
    free(names);
    if (dup >= 0) return slim_set_error("%s: key '%s' appears twice", r->path, g->kv[dup].key);

    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *al = gguf_find_kv(g, "general.alignment");
    if (al) {
        if (al->type != GGUF_TYPE_UINT32)
            return slim_set_error("%s: key 'general.alignment': type %u, expected uint32", r->path, al->type);
        if (al->u64 == 0 || (al->u64 & (al->u64 - 1)))
            return slim_set_error("%s: key 'general.alignment': %llu is not a power of two", r->path,
                                  (unsigned long long)al->u64);
        g->alignment = al->u64;
    }

    g->tensors = slim_calloc((size_t)n_tensors, sizeof(gguf_tensor));
    for (uint64_t i = 0; i < n_tensors; i++) {
        gguf_tensor *t = &g->tensors[i];
        g->n_tensors = i + 1;
        snprintf(r->what, sizeof r->what, "tensor #%llu", (unsigned long long)i);
        if (rd_str(r, &t->name, NULL, "name")) return -1;
        snprintf(r->what, sizeof r->what, "tensor '%.120s'", t->name);
        if (rd_u32(r, &t->n_dims, "n_dims")) return -1;
        if (t->n_dims > GGUF_MAX_DIMS)
            return slim_set_error("%s: %s: n_dims %u exceeds the maximum of %d", r->path, r->what,
                                  t->n_dims, GGUF_MAX_DIMS);
        for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            uint64_t ne;
            if (rd_u64(r, &ne, "dimension")) return -1;
            if (ne > (uint64_t)INT64_MAX)
                return slim_set_error("%s: %s: dimension %u is %llu (too large)", r->path, r->what, d,
                                      (unsigned long long)ne);
            t->ne[d] = (int64_t)ne;
        }
        if (rd_u32(r, &t->type, "type") || rd_u64(r, &t->offset, "offset")) return -1;
        int64_t nel = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++)
            if (__builtin_mul_overflow(nel, t->ne[d], &nel))
                return slim_set_error("%s: %s: element count overflows (shape %lld x %lld x %lld x %lld)",
                                      r->path, r->what, (long long)t->ne[0], (long long)t->ne[1],
                                      (long long)t->ne[2], (long long)t->ne[3]);
        int64_t blck;
        size_t bytes;
        if (!gguf_type_block(t->type, &blck, &bytes))
            return slim_set_error("%s: %s: unknown or unsupported ggml type %u", r->path, r->what, t->type);
        if (t->ne[0] % blck)
            return slim_set_error("%s: %s: row length %lld is not a multiple of the %s block size %lld",
                                  r->path, r->what, (long long)t->ne[0], gguf_type_name(t->type),
                                  (long long)blck);
        uint64_t nb = (uint64_t)(t->ne[0] / blck) * bytes;
        for (int d = 1; d < GGUF_MAX_DIMS; d++)
            if (__builtin_mul_overflow(nb, (uint64_t)t->ne[d], &nb))
                return slim_set_error("%s: %s: byte size overflows", r->path, r->what);
        t->nbytes = nb;
        if (t->offset % g->alignment)
            return slim_set_error("%s: %s: data offset %llu is not a multiple of the alignment %llu",
                                  r->path, r->what, (unsigned long long)t->offset,
                                  (unsigned long long)g->alignment);
    }
    names = slim_malloc((size_t)n_tensors * sizeof(char *) + 1);
    for (uint64_t i = 0; i < n_tensors; i++) names[i] = g->tensors[i].name;
    dup = gguf_find_duplicate(names, (size_t)n_tensors);
    free(names);
    if (dup >= 0) return slim_set_error("%s: tensor '%s' appears twice", r->path, g->tensors[dup].name);

    uint64_t pad = (g->alignment - r->pos % g->alignment) % g->alignment;
    g->data_offset = r->pos + pad;
    if (n_tensors && g->data_offset > r->size)
        return slim_set_error("%s: header: tensor data section (offset %llu) starts past end of file (%zu bytes)",
                              r->path, (unsigned long long)g->data_offset, r->size);
    for (uint64_t i = 0; i < n_tensors; i++) {
        gguf_tensor *t = &g->tensors[i];
        uint64_t room = r->size - g->data_offset;
        if (t->offset > room || t->nbytes > room - t->offset)
            return slim_set_error("%s: tensor '%s': data [%llu, +%llu) runs past end of file (%llu data bytes)",
                                  r->path, t->name, (unsigned long long)t->offset,
                                  (unsigned long long)t->nbytes, (unsigned long long)room);
        t->data = r->p + g->data_offset + t->offset;
    }
    return 0;
}

int gguf_open(gguf_file *g, const char *path) {
    memset(g, 0, sizeof *g);
    struct stat st;
    int fd = slim_open_stat(path, &st);
    if (fd < 0) return -1;
    if (st.st_size < 4) {
        close(fd);
        return slim_set_error("%s: not a GGUF file (only %lld bytes)", path, (long long)st.st_size);
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (m == MAP_FAILED) return slim_set_error("%s: cannot map: %s", path, strerror(e));
    g->path = slim_strdup(path);
    g->map = m;
    g->map_size = (size_t)st.st_size;
    g->map_is_file = 1;
    gguf_rd r = { .p = g->map, .size = g->map_size, .pos = 0, .path = path };
    if (gguf_parse(g, &r) != 0) {
        gguf_close(g);
        return -1;
    }
    return 0;
}

void gguf_close(gguf_file *g) {
    if (!g) return;
    for (uint64_t i = 0; i < g->n_kv; i++) gguf_kv_free(&g->kv[i]);
    free(g->kv);
    for (uint64_t i = 0; i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->tensors);
    if (g->map) munmap((void *)g->map, g->map_size);
    if (g->owner_close) g->owner_close(g->owner);
    free(g->path);
    memset(g, 0, sizeof *g);
}

const gguf_kv *gguf_find_kv(const gguf_file *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key && strcmp(g->kv[i].key, key) == 0) return &g->kv[i];
    return NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].name && strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
    return NULL;
}

static const gguf_kv *gguf_need_kv(const gguf_file *g, const char *key) {
    const gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv) slim_set_error("%s: key '%s' is missing", g->path ? g->path : "gguf", key);
    return kv;
}

int gguf_get_u32(const gguf_file *g, const char *key, uint32_t *out) {
    const gguf_kv *kv = gguf_need_kv(g, key);
    if (!kv) return -1;
    if (gguf_type_is_unsigned(kv->type)) {
        if (kv->u64 > UINT32_MAX)
            return slim_set_error("%s: key '%s': value %llu does not fit in uint32", g->path, key,
                                  (unsigned long long)kv->u64);
        *out = (uint32_t)kv->u64;
        return 0;
    }
    if (gguf_type_is_signed(kv->type)) {
        if (kv->i64 < 0 || kv->i64 > (int64_t)UINT32_MAX)
            return slim_set_error("%s: key '%s': value %lld does not fit in uint32", g->path, key,
                                  (long long)kv->i64);
        *out = (uint32_t)kv->i64;
        return 0;
    }
    return slim_set_error("%s: key '%s': type %u is not an integer", g->path, key, kv->type);
}

int gguf_get_i64(const gguf_file *g, const char *key, int64_t *out) {
    const gguf_kv *kv = gguf_need_kv(g, key);
    if (!kv) return -1;
    if (gguf_type_is_unsigned(kv->type)) {
        if (kv->u64 > (uint64_t)INT64_MAX)
            return slim_set_error("%s: key '%s': value %llu does not fit in int64", g->path, key,
                                  (unsigned long long)kv->u64);
        *out = (int64_t)kv->u64;
        return 0;
    }
    if (gguf_type_is_signed(kv->type)) { *out = kv->i64; return 0; }
    return slim_set_error("%s: key '%s': type %u is not an integer", g->path, key, kv->type);
}

int gguf_get_f32(const gguf_file *g, const char *key, float *out) {
    const gguf_kv *kv = gguf_need_kv(g, key);
    if (!kv) return -1;
    if (kv->type != GGUF_TYPE_FLOAT32 && kv->type != GGUF_TYPE_FLOAT64)
        return slim_set_error("%s: key '%s': type %u is not a float", g->path, key, kv->type);
    *out = (float)kv->f64;
    return 0;
}

const char *gguf_get_str(const gguf_file *g, const char *key) {
    const gguf_kv *kv = gguf_need_kv(g, key);
    if (!kv) return NULL;
    if (kv->type != GGUF_TYPE_STRING) {
        slim_set_error("%s: key '%s': type %u is not a string", g->path, key, kv->type);
        return NULL;
    }
    return kv->str;
}

void gguf_drop_pages(const gguf_file *g, const void *p, size_t n) {
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), lo = (uintptr_t)g->map, hi = lo + g->map_size;
    uintptr_t s = (uintptr_t)p / page * page, e = ((uintptr_t)p + n + page - 1) / page * page;
    const int inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
    if (!n || !g->map || inside != g->map_is_file) return; /* memory, not a file's pages */
    if (inside) {
        if (s < lo) s = lo;
        if (e > hi) e = hi;
    }
    if (s < e) madvise((void *)s, e - s, MADV_DONTNEED);
}

void gguf_release_memory(gguf_file *g) {
    if (!g->map || g->map_is_file) return;
    const uint8_t *lo = g->map, *hi = lo + g->map_size;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if ((const uint8_t *)g->tensors[i].data >= lo && (const uint8_t *)g->tensors[i].data < hi)
            g->tensors[i].data = NULL;
    munmap((void *)g->map, g->map_size);
    g->map = NULL;
    g->map_size = 0;
}

/* ---------------------------------------------------------------------------------------------
 * writer */

typedef struct {
    char *name;
    uint32_t type, n_dims;
    int64_t ne[4];
    uint64_t nbytes;
    void *data; /* owned copy (gguf_writer_add_tensor), or NULL (declared only, data streamed) */
} gguf_wtensor;

struct gguf_writer {
    gguf_kv *kv;
    size_t n_kv, cap_kv;
    gguf_wtensor *t;
    size_t n_t, cap_t;
    /* streaming state, between gguf_writer_begin and gguf_writer_finish / gguf_writer_abort */
    FILE *f;
    char *path;
    char tmp[4096];
    uint64_t align;
    size_t cur;        /* the tensor whose data comes next */
    uint64_t cur_done; /* bytes of it written so far */
};

gguf_writer *gguf_writer_init(void) { return slim_calloc(1, sizeof(gguf_writer)); }

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    gguf_writer_abort(w);
    for (size_t i = 0; i < w->n_kv; i++) gguf_kv_free(&w->kv[i]);
    free(w->kv);
    for (size_t i = 0; i < w->n_t; i++) { free(w->t[i].name); free(w->t[i].data); }
    free(w->t);
    free(w);
}

/* Slot for key: the existing one (contents freed, position kept) or a new one at the end. */
static gguf_kv *gguf_writer_slot(gguf_writer *w, const char *key) {
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0) { gguf_kv_free(&w->kv[i]); return &w->kv[i]; }
    if (w->n_kv == w->cap_kv) {
        w->cap_kv = w->cap_kv ? 2 * w->cap_kv : 16;
        w->kv = slim_realloc(w->kv, w->cap_kv * sizeof(gguf_kv));
    }
    gguf_kv *kv = &w->kv[w->n_kv++];
    memset(kv, 0, sizeof *kv);
    return kv;
}

void gguf_writer_copy_kv(gguf_writer *w, const gguf_kv *kv) {
    gguf_kv tmp;
    gguf_kv_copy(&tmp, kv); /* copy first: kv may point into w itself */
    *gguf_writer_slot(w, kv->key) = tmp;
}

void gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v) {
    gguf_kv *kv = gguf_writer_slot(w, key);
    kv->key = slim_strdup(key);
    kv->type = GGUF_TYPE_UINT32;
    kv->u64 = v; kv->i64 = v; kv->f64 = v;
}

void gguf_writer_set_f32(gguf_writer *w, const char *key, float v) {
    gguf_kv *kv = gguf_writer_slot(w, key);
    kv->key = slim_strdup(key);
    kv->type = GGUF_TYPE_FLOAT32;
    kv->f64 = v;
}

void gguf_writer_set_str(gguf_writer *w, const char *key, const char *v) {
    char *copy = slim_strdup(v); /* before the slot is freed: v may be the old value */
    gguf_kv *kv = gguf_writer_slot(w, key);
    kv->key = slim_strdup(key);
    kv->type = GGUF_TYPE_STRING;
    kv->str = copy;
    kv->str_len = strlen(copy);
}

int gguf_writer_add_tensor_info(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                const int64_t *ne) {
    if (w->f) return slim_set_error("gguf writer: tensor '%s' declared after the header was written", name ? name : "");
    if (!name || !*name) return slim_set_error("gguf writer: tensor with an empty name");
    for (size_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return slim_set_error("gguf writer: tensor '%s' added twice", name);
    int64_t blck;
    size_t bytes;
    if (!gguf_type_block(type, &blck, &bytes))
        return slim_set_error("gguf writer: tensor '%s': unsupported ggml type %u", name, type);
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return slim_set_error("gguf writer: tensor '%s': n_dims %u not in 1..%d", name, n_dims, GGUF_MAX_DIMS);
    gguf_wtensor t = { .type = type, .n_dims = n_dims, .ne = { 1, 1, 1, 1 } };
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] < 0)
            return slim_set_error("gguf writer: tensor '%s': dimension %u is negative", name, d);
        t.ne[d] = ne[d];
    }
    if (t.ne[0] % blck)
        return slim_set_error("gguf writer: tensor '%s': row length %lld is not a multiple of the %s block %lld",
                              name, (long long)t.ne[0], gguf_type_name(type), (long long)blck);
    uint64_t nb = (uint64_t)(t.ne[0] / blck) * bytes;
    for (int d = 1; d < GGUF_MAX_DIMS; d++)
        if (__builtin_mul_overflow(nb, (uint64_t)t.ne[d], &nb))
            return slim_set_error("gguf writer: tensor '%s': byte size overflows", name);
    if (nb > (uint64_t)SIZE_MAX) return slim_set_error("gguf writer: tensor '%s': byte size overflows", name);
    t.nbytes = nb;
    t.name = slim_strdup(name);
    if (w->n_t == w->cap_t) {
        w->cap_t = w->cap_t ? 2 * w->cap_t : 16;
        w->t = slim_realloc(w->t, w->cap_t * sizeof(gguf_wtensor));
    }
    w->t[w->n_t++] = t;
    return 0;
}

int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                           const int64_t *ne, const void *data) {
    if (gguf_writer_add_tensor_info(w, name, type, n_dims, ne) != 0) return -1;
    gguf_wtensor *t = &w->t[w->n_t - 1];
    if (t->nbytes && !data) {
        free(t->name);
        w->n_t--;
        return slim_set_error("gguf writer: tensor '%s': no data", name);
    }
    t->data = slim_malloc((size_t)t->nbytes);
    if (t->nbytes) memcpy(t->data, data, (size_t)t->nbytes);
    return 0;
}

static void w_u32(FILE *f, uint32_t v) { fwrite(&v, 4, 1, f); }
static void w_u64(FILE *f, uint64_t v) { fwrite(&v, 8, 1, f); }
static void w_str(FILE *f, const char *s, uint64_t n) {
    w_u64(f, n);
    if (n) fwrite(s, 1, (size_t)n, f);
}
static void w_pad(FILE *f, uint64_t pos, uint64_t align) {
    static const uint8_t zeros[256];
    uint64_t pad = (align - pos % align) % align;
    while (pad) {
        size_t k = pad < sizeof zeros ? (size_t)pad : sizeof zeros;
        fwrite(zeros, 1, k, f);
        pad -= k;
    }
}

/* Writes one key/value (key, type, value). Returns 0, or -1 for a bad value type. */
static int gguf_writer_put_kv(FILE *f, const gguf_kv *kv, const char *path) {
    w_str(f, kv->key, strlen(kv->key));
    w_u32(f, kv->type);
    if (kv->type == GGUF_TYPE_STRING) {
        w_str(f, kv->str, kv->str_len);
    } else if (kv->type == GGUF_TYPE_ARRAY) {
        w_u32(f, kv->arr_type);
        w_u64(f, kv->n);
        if (kv->arr_type == GGUF_TYPE_STRING) {
            for (uint64_t j = 0; j < kv->n; j++) w_str(f, kv->strs[j], kv->str_lens[j]);
        } else {
            size_t sz = gguf_type_size(kv->arr_type);
            if (!sz) return slim_set_error("%s: key '%s': bad array element type %u", path, kv->key, kv->arr_type);
            if (kv->n) fwrite(kv->arr, sz, (size_t)kv->n, f);
        }
    } else {
        size_t sz = gguf_type_size(kv->type);
        if (!sz) return slim_set_error("%s: key '%s': bad value type %u", path, kv->key, kv->type);
        uint8_t buf[8];
        gguf_kv_get_scalar(kv, buf);
        fwrite(buf, 1, sz, f);
    }
    return 0;
}

/* The file's alignment: general.alignment when set (a uint32 power of two), else 32. Returns 0 or -1. */
static int gguf_writer_alignment(const gguf_writer *w, const char *path, uint64_t *align) {
    *align = GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++) {
        const gguf_kv *kv = &w->kv[i];
        if (strcmp(kv->key, "general.alignment") != 0) continue;
        if (kv->type != GGUF_TYPE_UINT32 || kv->u64 == 0 || (kv->u64 & (kv->u64 - 1)))
            return slim_set_error("%s: key 'general.alignment' must be a uint32 power of two", path);
        *align = kv->u64;
    }
    return 0;
}

/* Fails the stream: removes the temporary file, keeps the error set by the caller. Returns -1. */
static int gguf_writer_fail(gguf_writer *w) {
    gguf_writer_abort(w);
    return -1;
}

int gguf_writer_begin(gguf_writer *w, const char *path) {
    if (w->f) return slim_set_error("%s: gguf writer: already writing %s", path, w->path);
    uint64_t align;
    if (gguf_writer_alignment(w, path, &align) != 0) return -1;
    FILE *f = slim_atomic_open(path, w->tmp, sizeof w->tmp);
    if (!f) return -1;
    w->f = f;
    w->path = slim_strdup(path);
    w->align = align;
    w->cur = 0;
    w->cur_done = 0;
    fwrite("GGUF", 1, 4, f);
    w_u32(f, 3);
    w_u64(f, w->n_t);
    w_u64(f, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++)
        if (gguf_writer_put_kv(f, &w->kv[i], path) != 0) return gguf_writer_fail(w);
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const gguf_wtensor *t = &w->t[i];
        w_str(f, t->name, strlen(t->name));
        w_u32(f, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) w_u64(f, (uint64_t)t->ne[d]);
        w_u32(f, t->type);
        w_u64(f, off);
        off += t->nbytes + (align - t->nbytes % align) % align;
    }
    long pos = ftell(f);
    if (pos < 0) {
        slim_set_error("%s: cannot tell write position", path);
        return gguf_writer_fail(w);
    }
    if (w->n_t) w_pad(f, (uint64_t)pos, align);
    return 0;
}

/* Skips past declared tensors of 0 bytes (nothing to write but their padding, which is none). */
static void gguf_writer_skip_empty(gguf_writer *w) {
    while (w->cur < w->n_t && w->t[w->cur].nbytes == 0) w->cur++;
}

int gguf_writer_write_data(gguf_writer *w, const void *data, size_t n) {
    if (!w->f) return slim_set_error("gguf writer: tensor data written before gguf_writer_begin");
    gguf_writer_skip_empty(w);
    if (n == 0) return 0;
    if (w->cur >= w->n_t) {
        slim_set_error("%s: gguf writer: %zu bytes of data past the last tensor", w->path, n);
        return gguf_writer_fail(w);
    }
    const gguf_wtensor *t = &w->t[w->cur];
    if (n > t->nbytes - w->cur_done) {
        slim_set_error("%s: gguf writer: tensor '%s' is %llu bytes; %llu more written", w->path, t->name,
                       (unsigned long long)t->nbytes, (unsigned long long)(w->cur_done + n));
        return gguf_writer_fail(w);
    }
    fwrite(data, 1, n, w->f);
    w->cur_done += n;
    if (w->cur_done == t->nbytes) {
        w_pad(w->f, t->nbytes, w->align);
        w->cur++;
        w->cur_done = 0;
    }
    if (ferror(w->f)) {
        slim_set_error("%s: write failed: %s", w->path, strerror(errno));
        return gguf_writer_fail(w);
    }
    return 0;
}

int gguf_writer_finish(gguf_writer *w) {
    if (!w->f) return slim_set_error("gguf writer: finish without gguf_writer_begin");
    gguf_writer_skip_empty(w);
    if (w->cur < w->n_t) {
        slim_set_error("%s: gguf writer: tensor '%s' has %llu of its %llu bytes written", w->path,
                       w->t[w->cur].name, (unsigned long long)w->cur_done, (unsigned long long)w->t[w->cur].nbytes);
        return gguf_writer_fail(w);
    }
    if (fflush(w->f) != 0 || ferror(w->f) || fsync(fileno(w->f)) != 0) {
        slim_set_error("%s: write failed: %s", w->path, strerror(errno));
        return gguf_writer_fail(w);
    }
    int rc = slim_atomic_commit(w->f, w->tmp, w->path);
    w->f = NULL;
    free(w->path);
    w->path = NULL;
    return rc;
}

void gguf_writer_abort(gguf_writer *w) {
    if (!w || !w->f) return;
    slim_atomic_abort(w->f, w->tmp);
    w->f = NULL;
    free(w->path);
    w->path = NULL;
}

int gguf_writer_write(gguf_writer *w, const char *path) {
    if (gguf_writer_begin(w, path) != 0) return -1;
    for (size_t i = 0; i < w->n_t; i++) {
        const gguf_wtensor *t = &w->t[i];
        if (t->nbytes && !t->data) {
            slim_set_error("%s: gguf writer: tensor '%s' was declared without data", path, t->name);
            return gguf_writer_fail(w);
        }
        if (gguf_writer_write_data(w, t->data, (size_t)t->nbytes) != 0) return -1;
    }
    return gguf_writer_finish(w);
}
