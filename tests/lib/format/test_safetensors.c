/* test_safetensors.c — the safetensors reader: files written here (a small writer below) read back
 * exactly (types, shapes, offsets, bytes, metadata); crafted hostile files (header length past the
 * end, bad JSON, offsets past the end, wrong byte counts, overflowing shapes, duplicates, unknown
 * dtypes, rank 5, overlaps, ...) each fail with an error naming the file and the tensor; random
 * header mutations never crash. Run it under valgrind to check for out-of-bounds reads. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "format/gguf.h"
#include "format/safetensors.h"
#include "testutil.h"

static char tmp_dir[512];

static void tmp_path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/slim_test_st_%d_%s", tmp_dir, (int)getpid(), name);
}

/* Writes a safetensors file: u64 header length (len_override when non-zero, else the padded JSON
 * length), the JSON padded with spaces to a multiple of 8, then data. */
static int write_st(const char *path, const char *json, const void *data, size_t n, uint64_t len_override) {
    size_t jl = strlen(json), padded = (jl + 7) / 8 * 8;
    uint64_t hl = len_override ? len_override : padded;
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fwrite(&hl, 8, 1, f);
    fwrite(json, 1, jl, f);
    for (size_t i = jl; i < padded; i++) fputc(' ', f);
    if (n) fwrite(data, 1, n, f);
    return fclose(f);
}

/* A described tensor for the writer: offsets are assigned in order. */
typedef struct { const char *name, *dtype; int rank; int64_t shape[5]; } st_desc;

/* Builds the JSON header of tensors laid out back to back; returns the data size. */
static size_t st_json(char *buf, size_t cap, const st_desc *d, int n, const char *meta) {
    size_t len = 0, off = 0;
    len += (size_t)snprintf(buf + len, cap - len, "{");
    if (meta) len += (size_t)snprintf(buf + len, cap - len, "\"__metadata__\":%s,", meta);
    for (int i = 0; i < n; i++) {
        size_t esz = safetensors_dtype_size(d[i].dtype, NULL);
        size_t nel = 1;
        len += (size_t)snprintf(buf + len, cap - len, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", i ? "," : "",
                                d[i].name, d[i].dtype);
        for (int k = 0; k < d[i].rank; k++) {
            len += (size_t)snprintf(buf + len, cap - len, "%s%lld", k ? "," : "", (long long)d[i].shape[k]);
            nel *= (size_t)d[i].shape[k];
        }
        len += (size_t)snprintf(buf + len, cap - len, "],\"data_offsets\":[%zu,%zu]}", off, off + nel * esz);
        off += nel * esz;
    }
    snprintf(buf + len, cap - len, "}");
    return off;
}

static void test_roundtrip(void) {
    const st_desc d[] = {
        { "model.w", "F32", 2, { 2, 3 } },
        { "h", "F16", 1, { 4 } },
        { "b", "BF16", 4, { 2, 2, 1, 1 } },
        { "scalar", "F32", 0, { 0 } },
        { "empty", "F32", 2, { 0, 5 } },
    };
    char json[2048];
    size_t n = st_json(json, sizeof json, d, 5, "{\"format\":\"pt\",\"note\":\"hi\"}");
    CHECK(n == 24 + 8 + 8 + 4, "data size %zu", n);
    uint8_t data[64];
    for (size_t i = 0; i < n; i++) data[i] = (uint8_t)(i * 7 + 3);
    char path[1024];
    tmp_path(path, sizeof path, "ok.safetensors");
    CHECK(write_st(path, json, data, n, 0) == 0, "write %s", path);
    safetensors_file f;
    int rc = safetensors_open(&f, path);
    CHECK(rc == 0, "open: %s", slim_last_error());
    if (rc) return;
    CHECK(f.n_tensors == 5, "n_tensors %llu", (unsigned long long)f.n_tensors);
    CHECK(f.header_len == (strlen(json) + 7) / 8 * 8, "header_len %llu", (unsigned long long)f.header_len);
    const uint8_t *base = f.map + 8 + f.header_len;
    const uint32_t types[] = { GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_F32, GGML_TYPE_F32 };
    const uint64_t sizes[] = { 24, 8, 8, 4, 0 };
    uint64_t off = 0;
    for (int i = 0; i < 5; i++) {
        const safetensors_tensor *t = safetensors_find_tensor(&f, d[i].name);
        CHECK(t != NULL, "tensor %s missing", d[i].name);
        if (!t) continue;
        CHECK(t == &f.tensors[i], "%s: header order not kept", d[i].name);
        CHECK(t->type == types[i], "%s: type %u", d[i].name, t->type);
        CHECK(t->n_dims == (uint32_t)d[i].rank, "%s: rank %u", d[i].name, t->n_dims);
        for (int k = 0; k < 4; k++) {
            int64_t want = k < d[i].rank ? d[i].shape[k] : 1;
            CHECK(t->shape[k] == want, "%s: shape[%d] %lld want %lld", d[i].name, k, (long long)t->shape[k],
                  (long long)want);
        }
        CHECK(t->nbytes == sizes[i] && t->offset == off, "%s: nbytes %llu offset %llu", d[i].name,
              (unsigned long long)t->nbytes, (unsigned long long)t->offset);
        CHECK((const uint8_t *)t->data == base + off, "%s: data pointer", d[i].name);
        CHECK(memcmp(t->data, data + off, (size_t)sizes[i]) == 0, "%s: bytes differ", d[i].name);
        off += sizes[i];
    }
    CHECK(safetensors_find_tensor(&f, "nope") == NULL, "found a missing tensor");
    const char *fmt = safetensors_find_meta(&f, "format"), *note = safetensors_find_meta(&f, "note");
    CHECK(f.n_meta == 2 && fmt && strcmp(fmt, "pt") == 0 && note && strcmp(note, "hi") == 0, "metadata");
    CHECK(safetensors_find_meta(&f, "x") == NULL, "found missing metadata");
    safetensors_close(&f);
    CHECK(f.map == NULL && f.tensors == NULL && f.path == NULL, "close did not clear");

    /* no tensors at all, no metadata: valid */
    CHECK(write_st(path, "{}", NULL, 0, 0) == 0, "write");
    rc = safetensors_open(&f, path);
    CHECK(rc == 0 && f.n_tensors == 0, "empty header: %s", slim_last_error());
    if (rc == 0) safetensors_close(&f);
    unlink(path);
}

/* Writes json (+ n data bytes, header length len_override when non-zero) and checks the reader
 * refuses it with an error naming the file and containing `must`. */
static void expect_bad(const char *label, const char *json, size_t n, uint64_t len_override, const char *must) {
    char path[1024];
    tmp_path(path, sizeof path, "bad.safetensors");
    uint8_t *data = calloc(n + 1, 1);
    CHECK(write_st(path, json, data, n, len_override) == 0, "%s: write", label);
    free(data);
    safetensors_file f;
    slim_set_error("%s", "");
    int rc = safetensors_open(&f, path);
    const char *err = slim_last_error();
    CHECK(rc == -1, "%s: bad file was accepted", label);
    CHECK(strstr(err, path) != NULL, "%s: error \"%s\" does not name the file", label, err);
    if (must) CHECK(strstr(err, must) != NULL, "%s: error \"%s\" does not contain \"%s\"", label, err, must);
    CHECK(f.map == NULL && f.tensors == NULL && f.path == NULL, "%s: struct not freed", label);
    if (getenv("SLIM_TEST_VERBOSE")) printf("  %-28s -> %s\n", label, err);
    if (rc == 0) safetensors_close(&f);
    unlink(path);
}

#define T(name, dtype, shape, b, e) "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

static void test_hostile(void) {
    const char *ok = "{" T("w", "F32", "[2,2]", 0, 16) "}";
    expect_bad("header length past end", ok, 16, 1ull << 40, "header length");
    expect_bad("header length off by one", ok, 0, ((strlen(ok) + 7) / 8 * 8) + 1, "header length");
    expect_bad("header length max", ok, 16, UINT64_MAX, "header length");
    {   /* a file shorter than the length field */
        char path[1024];
        tmp_path(path, sizeof path, "short.safetensors");
        FILE *fp = fopen(path, "wb");
        fwrite("abc", 1, 3, fp);
        fclose(fp);
        safetensors_file f;
        CHECK(safetensors_open(&f, path) == -1 && strstr(slim_last_error(), "only 3 bytes"), "short file: %s",
              slim_last_error());
        unlink(path);
        CHECK(safetensors_open(&f, path) == -1 && strstr(slim_last_error(), "cannot open"), "missing file: %s",
              slim_last_error());
    }
    expect_bad("bad JSON", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],", 16, 0, "does not parse");
    expect_bad("JSON not an object", "[1,2,3]", 0, 0, "JSON object");
    expect_bad("trailing bytes", "{} xx", 0, 0, "after the object");
    expect_bad("entry not an object", "{\"w\":3}", 0, 0, "'w'");
    expect_bad("missing dtype", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 0, "'dtype'");
    expect_bad("shape not an array", "{\"w\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,16]}}", 16, 0,
               "'shape'");
    expect_bad("missing offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, 0, "data_offsets");
    expect_bad("offsets arity", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, 0,
               "data_offsets");
    expect_bad("offsets past end", "{" T("w", "F32", "[2,2]", 0, 16) "}", 12, 0, "past the end");
    expect_bad("offsets far past end", "{" T("w", "F32", "[1]", 1000000, 1000004) "}", 16, 0, "past the end");
    expect_bad("wrong byte count", "{" T("w", "F32", "[2,3]", 0, 20) "}", 24, 0, "need 24");
    expect_bad("end before begin", "{" T("w", "F32", "[1]", 8, 4) "}", 16, 0, "end before");
    expect_bad("negative offset", "{" T("w", "F32", "[1]", -4, 0) "}", 16, 0, "'w'");
    expect_bad("fractional offset", "{" T("w", "F32", "[1]", 0.5, 4.5) "}", 16, 0, "'w'");
    expect_bad("overflowing shape", "{" T("w", "F32", "[4294967296,4294967296,16]", 0, 16) "}", 16, 0,
               "overflows");
    expect_bad("overflowing bytes", "{" T("w", "F32", "[4294967296,1073741824]", 0, 16) "}", 16, 0,
               "byte size overflows");
    expect_bad("huge dim", "{" T("w", "F32", "[1e300]", 0, 16) "}", 16, 0, "shape[0]");
    expect_bad("negative dim", "{" T("w", "F32", "[-1,4]", 0, 16) "}", 16, 0, "shape[0]");
    expect_bad("string dim", "{" T("w", "F32", "[\"4\"]", 0, 16) "}", 16, 0, "shape[0]");
    expect_bad("duplicate names", "{" T("w", "F32", "[1]", 0, 4) "," T("w", "F32", "[1]", 4, 8) "}", 8, 0,
               "appears twice");
    expect_bad("overlap", "{" T("a", "F32", "[4]", 0, 16) "," T("b", "F32", "[4]", 8, 24) "}", 24, 0, "overlap");
    expect_bad("unknown dtype", "{" T("w", "Q4", "[4]", 0, 16) "}", 16, 0, "'Q4'");
    expect_bad("unsupported dtype", "{" T("w", "I64", "[2]", 0, 16) "}", 16, 0, "'I64'");
    expect_bad("rank 5", "{" T("w", "F32", "[1,1,1,1,1]", 0, 4) "}", 4, 0, "rank 5");
    expect_bad("empty name", "{" T("", "F32", "[1]", 0, 4) "}", 4, 0, "empty name");
    expect_bad("metadata not strings", "{\"__metadata__\":{\"a\":1}," T("w", "F32", "[1]", 0, 4) "}", 4, 0,
               "'a'");
    expect_bad("metadata twice", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, 0, "twice");
    /* the named tensor is the one at fault, not a neighbour */
    expect_bad("second tensor bad", "{" T("good", "F32", "[1]", 0, 4) "," T("bad.one", "F32", "[2]", 4, 4) "}",
               8, 0, "'bad.one'");
}

/* Random byte mutations of a valid file's header and length field must never crash. */
static void test_fuzz(void) {
    const st_desc d[] = { { "a.weight", "F32", 2, { 3, 4 } }, { "b", "BF16", 1, { 6 } }, { "c", "F16", 3, { 1, 2, 2 } } };
    char json[1024];
    size_t n = st_json(json, sizeof json, d, 3, "{\"k\":\"v\"}");
    uint8_t data[128] = { 0 };
    char path[1024];
    tmp_path(path, sizeof path, "fuzz.safetensors");
    CHECK(write_st(path, json, data, n, 0) == 0, "write");
    char *orig;
    size_t size;
    if (slim_read_file(path, &orig, &size)) { CHECK(0, "read %s", slim_last_error()); return; }
    uint8_t *buf = malloc(size);
    slim_rng rng;
    slim_rng_seed(&rng, 12345);
    int accepted = 0, refused = 0, refused_silent = 0;
    const char alphabet[] = "{}[],:\"0123456789-e. FBI";
    for (int it = 0; it < 1500; it++) {
        memcpy(buf, orig, size);
        int k = 1 + (int)(slim_rng_u32(&rng) % 3);
        for (int j = 0; j < k; j++) {
            size_t pos = slim_rng_u32(&rng) % (8 + strlen(json));
            buf[pos] = pos < 8 ? (uint8_t)slim_rng_u32(&rng)
                               : (uint8_t)alphabet[slim_rng_u32(&rng) % (sizeof alphabet - 1)];
        }
        size_t len = (it % 7 == 0) ? slim_rng_u32(&rng) % size : size; /* sometimes truncated too */
        FILE *fp = fopen(path, "wb");
        fwrite(buf, 1, len, fp);
        fclose(fp);
        safetensors_file f;
        slim_set_error("%s", "");
        if (safetensors_open(&f, path) == 0) {
            accepted++;
            /* whatever was accepted must lie inside the file */
            for (uint64_t i = 0; i < f.n_tensors; i++) {
                const safetensors_tensor *t = &f.tensors[i];
                const uint8_t *p = t->data;
                CHECK(p >= f.map + 8 + f.header_len && p + t->nbytes <= f.map + f.map_size,
                      "accepted tensor %s outside the file", t->name);
            }
            safetensors_close(&f);
        } else {
            refused++;
            if (!slim_last_error()[0]) refused_silent++;
        }
    }
    CHECK(refused > 100 && accepted > 10, "fuzz: %d accepted, %d refused (mutations not exercised)", accepted,
          refused);
    CHECK(refused_silent == 0, "fuzz: %d refusals without a message", refused_silent);
    free(buf);
    free(orig);
    unlink(path);
}

int main(void) {
    const char *td = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof tmp_dir, "%s", td && *td ? td : "/tmp");
    test_roundtrip();
    test_hostile();
    test_fuzz();
    return tu_finish("test_safetensors");
}
