/* safetensors.c — safetensors reader (mmap, fully bounds-checked). See safetensors.h.
 *
 * Facts from the format description in huggingface/safetensors (README "Format"): the header
 * length is a little-endian u64 (this code assumes a little-endian host, as gguf.c does); the
 * header is a JSON object; offsets are relative to the byte buffer after the header; dtype names
 * "F32", "F16", "BF16" (others exist: F64, I64, I32, I16, I8, U8, BOOL, F8_E4M3, ...). */
#define _GNU_SOURCE
#include "safetensors.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "gguf.h"

size_t safetensors_dtype_size(const char *dtype, uint32_t *tensor_type) {
    uint32_t t;
    size_t sz;
    if (strcmp(dtype, "F32") == 0) { t = GGML_TYPE_F32; sz = 4; }
    else if (strcmp(dtype, "F16") == 0) { t = GGML_TYPE_F16; sz = 2; }
    else if (strcmp(dtype, "BF16") == 0) { t = GGML_TYPE_BF16; sz = 2; }
    else return 0;
    if (tensor_type) *tensor_type = t;
    return sz;
}

/* A JSON number that is a non-negative integer exactly representable in a double (<= 2^53). */
static int st_json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || d != floor(d)) return -1;
    *out = (uint64_t)d;
    return 0;
}

static int st_cmp_name(const void *a, const void *b) {
    const safetensors_tensor *x = *(const safetensors_tensor *const *)a;
    const safetensors_tensor *y = *(const safetensors_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static int st_cmp_offset(const void *a, const void *b) {
    const safetensors_tensor *x = *(const safetensors_tensor *const *)a;
    const safetensors_tensor *y = *(const safetensors_tensor *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

/* Fills t from its JSON entry e; data_size is the size of the byte buffer. */
static int st_parse_tensor(const safetensors_file *f, safetensors_tensor *t, const cJSON *e,
                           const uint8_t *data, uint64_t data_size) {
    const char *path = f->path, *name = t->name;
    if (!cJSON_IsObject(e))
        return slim_set_error("%s: tensor '%s': entry is %s, expected an object", path, name,
                              slim_json_type_name(e));
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt))
        return slim_set_error("%s: tensor '%s': 'dtype' is %s, expected a string", path, name,
                              dt ? slim_json_type_name(dt) : "missing");
    size_t esz = safetensors_dtype_size(dt->valuestring, &t->type);
    if (!esz)
        return slim_set_error("%s: tensor '%s': dtype '%.32s' is not supported (F32, F16, BF16 only)", path,
                              name, dt->valuestring);
    if (!cJSON_IsArray(sh))
        return slim_set_error("%s: tensor '%s': 'shape' is %s, expected an array", path, name,
                              sh ? slim_json_type_name(sh) : "missing");
    int rank = cJSON_GetArraySize(sh);
    if (rank > SAFETENSORS_MAX_DIMS)
        return slim_set_error("%s: tensor '%s': rank %d is above the supported %d", path, name, rank,
                              SAFETENSORS_MAX_DIMS);
    t->n_dims = (uint32_t)rank;
    uint64_t nel = 1;
    int d = 0;
    for (const cJSON *v = sh->child; v; v = v->next, d++) {
        uint64_t n;
        if (st_json_uint(v, &n) != 0)
            return slim_set_error("%s: tensor '%s': shape[%d] is not a non-negative integer below 2^53", path,
                                  name, d);
        t->shape[d] = (int64_t)n;
        if (__builtin_mul_overflow(nel, n, &nel))
            return slim_set_error("%s: tensor '%s': element count overflows at shape[%d]", path, name, d);
    }
    for (; d < SAFETENSORS_MAX_DIMS; d++) t->shape[d] = 1;
    uint64_t want;
    if (__builtin_mul_overflow(nel, (uint64_t)esz, &want))
        return slim_set_error("%s: tensor '%s': byte size overflows (%llu elements of %zu bytes)", path, name,
                              (unsigned long long)nel, esz);
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return slim_set_error("%s: tensor '%s': 'data_offsets' must be an array [begin, end]", path, name);
    uint64_t begin, end;
    if (st_json_uint(off->child, &begin) != 0 || st_json_uint(off->child->next, &end) != 0)
        return slim_set_error("%s: tensor '%s': data_offsets are not non-negative integers below 2^53", path,
                              name);
    if (end < begin)
        return slim_set_error("%s: tensor '%s': data_offsets [%llu, %llu) end before they begin", path, name,
                              (unsigned long long)begin, (unsigned long long)end);
    if (end - begin != want)
        return slim_set_error("%s: tensor '%s': data_offsets [%llu, %llu) hold %llu bytes, shape and dtype %s "
                              "need %llu", path, name, (unsigned long long)begin, (unsigned long long)end,
                              (unsigned long long)(end - begin), dt->valuestring, (unsigned long long)want);
    if (end > data_size)
        return slim_set_error("%s: tensor '%s': data_offsets [%llu, %llu) run past the end of the data "
                              "(%llu bytes)", path, name, (unsigned long long)begin, (unsigned long long)end,
                              (unsigned long long)data_size);
    t->offset = begin;
    t->nbytes = want;
    t->data = data + begin;
    return 0;
}

static int st_parse_meta(safetensors_file *f, const cJSON *m) {
    if (!cJSON_IsObject(m))
        return slim_set_error("%s: '__metadata__' is %s, expected an object", f->path, slim_json_type_name(m));
    uint64_t n = (uint64_t)cJSON_GetArraySize(m);
    f->meta_keys = slim_calloc(n + 1, sizeof(char *));
    f->meta_values = slim_calloc(n + 1, sizeof(char *));
    for (const cJSON *v = m->child; v; v = v->next) {
        if (!cJSON_IsString(v))
            return slim_set_error("%s: '__metadata__' key '%.120s' is %s, expected a string", f->path,
                                  v->string, slim_json_type_name(v));
        f->meta_keys[f->n_meta] = slim_strdup(v->string);
        f->meta_values[f->n_meta] = slim_strdup(v->valuestring);
        f->n_meta++;
    }
    return 0;
}

static int st_parse(safetensors_file *f) {
    const char *path = f->path;
    if (f->map_size < 8)
        return slim_set_error("%s: not a safetensors file (only %zu bytes, the header length needs 8)", path,
                              f->map_size);
    uint64_t n;
    memcpy(&n, f->map, 8);
    if (n > f->map_size - 8)
        return slim_set_error("%s: header length %llu runs past the end of the file (%zu bytes)", path,
                              (unsigned long long)n, f->map_size);
    if (n > SAFETENSORS_MAX_HEADER)
        return slim_set_error("%s: header length %llu is above the limit of %u bytes", path,
                              (unsigned long long)n, SAFETENSORS_MAX_HEADER);
    if (n < 2 || f->map[8] != '{')
        return slim_set_error("%s: header does not start with a JSON object '{'", path);
    f->header_len = n;
    const uint8_t *data = f->map + 8 + n;
    uint64_t data_size = f->map_size - 8 - n;

    const char *json_end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)f->map + 8, (size_t)n, &json_end, 0);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long pos = at ? (long)(at - (const char *)f->map - 8) : -1;
        return slim_set_error("%s: header JSON does not parse (near byte %ld of %llu)", path, pos,
                              (unsigned long long)n);
    }
    int rc = -1;
    if (!cJSON_IsObject(root)) {
        slim_set_error("%s: header JSON is %s, expected an object", path, slim_json_type_name(root));
        goto done;
    }
    /* only whitespace (the writers pad with spaces) may follow the object */
    for (const char *p = json_end; p < (const char *)data; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != 0) {
            slim_set_error("%s: header JSON: unexpected bytes after the object at byte %ld", path,
                           (long)(p - (const char *)f->map - 8));
            goto done;
        }
    uint64_t count = 0;
    for (const cJSON *e = root->child; e; e = e->next)
        if (strcmp(e->string, "__metadata__") != 0) count++;
    f->tensors = slim_calloc(count + 1, sizeof(safetensors_tensor));
    int seen_meta = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            if (seen_meta++) {
                slim_set_error("%s: '__metadata__' appears twice", path);
                goto done;
            }
            if (st_parse_meta(f, e) != 0) goto done;
            continue;
        }
        safetensors_tensor *t = &f->tensors[f->n_tensors++];
        t->name = slim_strdup(e->string);
        if (!t->name[0]) {
            slim_set_error("%s: a tensor has an empty name", path);
            goto done;
        }
        if (st_parse_tensor(f, t, e, data, data_size) != 0) goto done;
    }

    safetensors_tensor **order = slim_malloc((size_t)(count + 1) * sizeof *order);
    for (uint64_t i = 0; i < count; i++) order[i] = &f->tensors[i];
    qsort(order, (size_t)count, sizeof *order, st_cmp_name);
    for (uint64_t i = 1; i < count; i++)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0) {
            slim_set_error("%s: tensor '%s' appears twice in the header", path, order[i]->name);
            free(order);
            goto done;
        }
    qsort(order, (size_t)count, sizeof *order, st_cmp_offset);
    for (uint64_t i = 1; i < count; i++) {
        const safetensors_tensor *a = order[i - 1], *b = order[i];
        if (a->nbytes && b->nbytes && a->offset + a->nbytes > b->offset) {
            slim_set_error("%s: tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) overlap", path, a->name,
                           (unsigned long long)a->offset, (unsigned long long)(a->offset + a->nbytes), b->name,
                           (unsigned long long)b->offset, (unsigned long long)(b->offset + b->nbytes));
            free(order);
            goto done;
        }
    }
    free(order);
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

int safetensors_open(safetensors_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    struct stat st;
    int fd = slim_open_stat(path, &st);
    if (fd < 0) return -1;
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return slim_set_error("%s: not a regular file", path);
    }
    f->path = slim_strdup(path);
    f->map_size = (size_t)st.st_size;
    if (f->map_size >= 8) {
        void *m = mmap(NULL, f->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
        int e = errno;
        if (m == MAP_FAILED) {
            close(fd);
            safetensors_close(f);
            return slim_set_error("%s: cannot map: %s", path, strerror(e));
        }
        f->map = m;
    }
    close(fd);
    if (st_parse(f) != 0) {
        safetensors_close(f);
        return -1;
    }
    return 0;
}

void safetensors_close(safetensors_file *f) {
    if (!f) return;
    for (uint64_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    for (uint64_t i = 0; i < f->n_meta; i++) { free(f->meta_keys[i]); free(f->meta_values[i]); }
    free(f->meta_keys);
    free(f->meta_values);
    if (f->map) munmap((void *)f->map, f->map_size);
    free(f->path);
    memset(f, 0, sizeof *f);
}

const safetensors_tensor *safetensors_find_tensor(const safetensors_file *f, const char *name) {
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *safetensors_find_meta(const safetensors_file *f, const char *key) {
    for (uint64_t i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}

/* The dtype string and element size of a ggml type safetensors_write accepts, or NULL. */
static const char *safetensors_dtype_of(uint32_t type, size_t *size) {
    *size = type == GGML_TYPE_F32 ? 4 : 2;
    return type == GGML_TYPE_F32 ? "F32" : type == GGML_TYPE_F16 ? "F16" : type == GGML_TYPE_BF16 ? "BF16" : NULL;
}

/* Whether s can go into the JSON header unescaped. */
static int safetensors_plain(const char *s) {
    for (; *s; s++)
        if (*s < 0x20 || *s > 0x7e || *s == '"' || *s == '\\') return 0;
    return 1;
}

/* Appends printf-formatted text to the growing string *buf (length *len, capacity *cap). */
static void safetensors_append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void safetensors_append(char **buf, size_t *len, size_t *cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (*len + (size_t)n + 1 > *cap) {
        *cap = (*len + (size_t)n + 1) * 2;
        *buf = slim_realloc(*buf, *cap);
    }
    va_start(ap, fmt);
    vsnprintf(*buf + *len, *cap - *len, fmt, ap);
    va_end(ap);
    *len += (size_t)n;
}

/* The JSON header of safetensors_write, padded with spaces to a multiple of 8; NULL with an error. */
static char *safetensors_header(const char *path, const safetensors_out *t, size_t n, const char *const *meta,
                                size_t n_meta, size_t *out_len) {
    char *h = NULL;
    size_t len = 0, cap = 0;
    uint64_t off = 0;
    safetensors_append(&h, &len, &cap, "{\"__metadata__\":{");
    for (size_t i = 0; i < n_meta; i++) {
        if (!safetensors_plain(meta[2 * i]) || !safetensors_plain(meta[2 * i + 1])) {
            free(h);
            slim_set_error("%s: metadata '%s' is not printable ASCII", path, meta[2 * i]);
            return NULL;
        }
        safetensors_append(&h, &len, &cap, "%s\"%s\":\"%s\"", i ? "," : "", meta[2 * i], meta[2 * i + 1]);
    }
    safetensors_append(&h, &len, &cap, "}");
    for (size_t i = 0; i < n; i++) {
        size_t es;
        const char *dtype = safetensors_dtype_of(t[i].type, &es);
        if (!dtype || !safetensors_plain(t[i].name) || t[i].n_dims > SAFETENSORS_MAX_DIMS) {
            free(h);
            slim_set_error("%s: tensor '%s': cannot write type %u, rank %u or that name", path, t[i].name, t[i].type,
                           t[i].n_dims);
            return NULL;
        }
        uint64_t elems = 1;
        safetensors_append(&h, &len, &cap, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t[i].name, dtype);
        for (uint32_t d = 0; d < t[i].n_dims; d++) {
            safetensors_append(&h, &len, &cap, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
            elems *= (uint64_t)t[i].shape[d];
        }
        safetensors_append(&h, &len, &cap, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                           (unsigned long long)(off + elems * es));
        off += elems * es;
    }
    safetensors_append(&h, &len, &cap, "}");
    while (len % 8) safetensors_append(&h, &len, &cap, " ");
    *out_len = len;
    return h;
}

struct safetensors_writer {
    FILE *f;
    char tmp[4200], path[4096];
    uint64_t want, got; /* data bytes the header promises, and written so far */
};

uint64_t safetensors_out_bytes(const safetensors_out *t) {
    size_t es;
    if (!safetensors_dtype_of(t->type, &es)) return 0;
    uint64_t n = es;
    for (uint32_t d = 0; d < t->n_dims; d++) n *= (uint64_t)t->shape[d];
    return n;
}

safetensors_writer *safetensors_writer_begin(const char *path, const safetensors_out *t, size_t n,
                                             const char *const *meta, size_t n_meta) {
    size_t hlen;
    char *h = safetensors_header(path, t, n, meta, n_meta, &hlen);
    if (!h) return NULL;
    safetensors_writer *w = slim_calloc(1, sizeof *w);
    snprintf(w->path, sizeof w->path, "%s", path);
    for (size_t i = 0; i < n; i++) w->want += safetensors_out_bytes(&t[i]);
    w->f = slim_atomic_open(path, w->tmp, sizeof w->tmp);
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    int ok = w->f && fwrite(len8, 1, 8, w->f) == 8 && fwrite(h, 1, hlen, w->f) == hlen;
    free(h);
    if (!ok) {
        if (w->f) slim_set_error("%s: write failed: %s", w->tmp, strerror(errno));
        safetensors_writer_abort(w);
        return NULL;
    }
    return w;
}

int safetensors_writer_data(safetensors_writer *w, const void *data, size_t n) {
    if (w->got + n > w->want) return slim_set_error("%s: more tensor data than the header declares", w->path);
    if (fwrite(data, 1, n, w->f) != n) return slim_set_error("%s: write failed: %s", w->tmp, strerror(errno));
    w->got += n;
    return 0;
}

int safetensors_writer_finish(safetensors_writer *w) {
    int rc;
    if (w->got != w->want) {
        rc = slim_set_error("%s: %llu of %llu tensor data bytes written", w->path, (unsigned long long)w->got,
                            (unsigned long long)w->want);
        slim_atomic_abort(w->f, w->tmp);
    } else {
        rc = slim_atomic_commit(w->f, w->tmp, w->path);
    }
    free(w);
    return rc;
}

void safetensors_writer_abort(safetensors_writer *w) {
    if (!w) return;
    if (w->f) slim_atomic_abort(w->f, w->tmp);
    free(w);
}

int safetensors_write(const char *path, const safetensors_out *t, size_t n, const char *const *meta, size_t n_meta) {
    safetensors_writer *w = safetensors_writer_begin(path, t, n, meta, n_meta);
    if (!w) return -1;
    for (size_t i = 0; i < n; i++)
        if (safetensors_writer_data(w, t[i].data, (size_t)safetensors_out_bytes(&t[i])) != 0) {
            safetensors_writer_abort(w);
            return -1;
        }
    return safetensors_writer_finish(w);
}
