/* test_gguf.c — GGUF reader and writer: facts of the real stories260K file (shared/README.md),
 * a full write/re-read round trip, every metadata type, alignment, fp16 conversions, row sizes,
 * and crafted bad files (truncations, bad magic, huge lengths, bad dims/types/offsets, duplicates,
 * random byte mutations) that must fail cleanly with an error. Run it under valgrind or
 * -fsanitize=address to check that no bad file causes an out-of-bounds read. */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "format/gguf.h"
#include "testutil.h"

static char tmp_dir[512];

static void tmp_path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/slim_test_gguf_%d_%s", tmp_dir, (int)getpid(), name);
}

static int write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

/* Finds a GGUF string (u64 length + bytes) in buf[0..n); returns the offset of its length field. */
static long find_gguf_str(const uint8_t *buf, size_t n, const char *s) {
    uint64_t len = strlen(s);
    for (size_t i = 0; i + 8 + len <= n; i++)
        if (memcmp(buf + i, &len, 8) == 0 && memcmp(buf + i + 8, s, len) == 0) return (long)i;
    return -1;
}

static void put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* Writes buf as a file and checks that gguf_open refuses it with an error (containing `must` when
 * non-NULL) and leaves the struct freed. */
static void expect_bad(const uint8_t *buf, size_t n, const char *label, const char *must) {
    char path[1024];
    tmp_path(path, sizeof path, "bad.gguf");
    if (write_bytes(path, buf, n) != 0) { CHECK(0, "%s: cannot write %s", label, path); return; }
    gguf_file g;
    slim_set_error("%s", "");
    int rc = gguf_open(&g, path);
    const char *err = slim_last_error();
    CHECK(rc == -1, "%s: bad file was accepted", label);
    CHECK(err[0] != 0, "%s: empty error message", label);
    CHECK(g.map == NULL && g.kv == NULL && g.tensors == NULL, "%s: struct not freed after failure", label);
    if (getenv("SLIM_TEST_VERBOSE")) printf("  %-32s -> %s\n", label, err);
    if (must) CHECK(strstr(err, must) != NULL, "%s: error \"%s\" does not name \"%s\"", label, err, must);
    if (rc == 0) gguf_close(&g);
    unlink(path);
}

/* ---------------------------------------------------------------------------------------------
 * facts of stories260K (shared/README.md) */

static void test_stories_facts(const gguf_file *g) {
    CHECK(g->version == 3, "version %u", g->version);
    CHECK(g->map_size == 1185376, "file size %zu (README: 1,185,376)", g->map_size);
    CHECK(g->alignment == 32, "alignment %llu", (unsigned long long)g->alignment);
    CHECK(g->data_offset % g->alignment == 0, "data offset %llu", (unsigned long long)g->data_offset);
    const char *arch = gguf_get_str(g, "general.architecture");
    CHECK(arch && strcmp(arch, "llama") == 0, "architecture %s", arch ? arch : slim_last_error());
    if (!arch) return;
    char key[256];
    uint32_t dim = 0, n_layer = 0, n_head = 0, n_head_kv = 0, n_ff = 0, n_ctx = 0;
#define ARCH_U32(name, var, want)                                                               \
    do {                                                                                        \
        snprintf(key, sizeof key, "%s.%s", arch, name);                                         \
        CHECK(gguf_get_u32(g, key, &var) == 0 && var == (want), "%s = %u: %s", key, var,        \
              slim_last_error());                                                               \
    } while (0)
    ARCH_U32("embedding_length", dim, 64);
    ARCH_U32("block_count", n_layer, 5);
    ARCH_U32("attention.head_count", n_head, 8);
    ARCH_U32("attention.head_count_kv", n_head_kv, 4);
    ARCH_U32("feed_forward_length", n_ff, 172);
    ARCH_U32("context_length", n_ctx, 2048);
#undef ARCH_U32
    float eps = 0;
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
    CHECK(gguf_get_f32(g, key, &eps) == 0 && fabsf(eps - 1e-5f) < 1e-10f, "rms eps %g", eps);
    int64_t i64 = 0;
    snprintf(key, sizeof key, "%s.block_count", arch);
    CHECK(gguf_get_i64(g, key, &i64) == 0 && i64 == 5, "block_count as i64 %lld", (long long)i64);

    /* getters on the wrong type or a missing key fail naming the key */
    uint32_t u = 0;
    CHECK(gguf_get_u32(g, "general.architecture", &u) == -1 && strstr(slim_last_error(), "general.architecture"),
          "u32 of a string: %s", slim_last_error());
    CHECK(gguf_get_u32(g, "no.such.key", &u) == -1 && strstr(slim_last_error(), "no.such.key"), "missing key");
    CHECK(gguf_get_f32(g, "tokenizer.ggml.bos_token_id", &eps) == -1, "f32 of an integer");
    CHECK(gguf_get_str(g, "tokenizer.ggml.bos_token_id") == NULL && slim_last_error()[0], "str of an integer");
    CHECK(gguf_find_kv(g, "no.such.key") == NULL && gguf_find_tensor(g, "nope") == NULL, "find missing");

    /* tokenizer metadata: arrays of strings, floats and ints */
    const gguf_kv *tok = gguf_find_kv(g, "tokenizer.ggml.tokens");
    CHECK(tok && tok->type == GGUF_TYPE_ARRAY && tok->arr_type == GGUF_TYPE_STRING && tok->n == 512,
          "tokens array");
    if (tok && tok->strs) {
        CHECK(strcmp(tok->strs[1], "<s>") == 0 && tok->str_lens[1] == 3, "token 1 = %s", tok->strs[1]);
        CHECK(strcmp(tok->strs[3], "<0x00>") == 0 && strcmp(tok->strs[258], "<0xFF>") == 0, "byte tokens");
    }
    const gguf_kv *sc = gguf_find_kv(g, "tokenizer.ggml.scores");
    CHECK(sc && sc->arr_type == GGUF_TYPE_FLOAT32 && sc->n == 512 && sc->arr, "scores array");
    const gguf_kv *ty = gguf_find_kv(g, "tokenizer.ggml.token_type");
    CHECK(ty && ty->arr_type == GGUF_TYPE_INT32 && ty->n == 512 && ty->arr, "token_type array");
    if (ty && ty->arr) CHECK(((const int32_t *)ty->arr)[1] == 3 && ((const int32_t *)ty->arr)[3] == 6,
                             "types of <s> and <0x00>");
    CHECK(gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &u) == 0 && u == 1, "bos %u", u);

    /* tensors: shapes derived from the hyperparameters */
    const gguf_tensor *emb = gguf_find_tensor(g, "token_embd.weight");
    CHECK(emb && emb->n_dims == 2 && emb->ne[0] == dim && emb->ne[1] == 512 && emb->ne[2] == 1 &&
              emb->type == GGML_TYPE_F32 && emb->nbytes == (uint64_t)dim * 512 * 4,
          "token_embd.weight");
    CHECK(g->n_tensors == 3 + 9 * (uint64_t)n_layer, "tensor count %llu", (unsigned long long)g->n_tensors);
    CHECK(gguf_find_tensor(g, "output.weight") && gguf_find_tensor(g, "output_norm.weight"), "output tensors");
    int64_t head_dim = n_head ? dim / n_head : 0;
    struct { const char *name; int64_t ne0, ne1; } blk[] = {
        { "attn_norm", dim, 1 }, { "attn_q", dim, dim }, { "attn_k", dim, head_dim * n_head_kv },
        { "attn_v", dim, head_dim * n_head_kv }, { "attn_output", dim, dim }, { "ffn_norm", dim, 1 },
        { "ffn_gate", dim, n_ff }, { "ffn_up", dim, n_ff }, { "ffn_down", n_ff, dim },
    };
    for (uint32_t l = 0; l < n_layer; l++)
        for (size_t k = 0; k < sizeof blk / sizeof blk[0]; k++) {
            char name[128];
            snprintf(name, sizeof name, "blk.%u.%s.weight", l, blk[k].name);
            const gguf_tensor *t = gguf_find_tensor(g, name);
            CHECK(t && t->ne[0] == blk[k].ne0 && t->ne[1] == blk[k].ne1 && t->type == GGML_TYPE_F32, "%s", name);
        }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        const uint8_t *d = t->data;
        CHECK(d >= g->map + g->data_offset && d + t->nbytes <= g->map + g->map_size &&
                  (uint64_t)(d - g->map - g->data_offset) % g->alignment == 0,
              "tensor %s data inside the file and aligned", t->name);
        int finite = 1;
        for (uint64_t j = 0; j < t->nbytes / 4; j++) finite &= isfinite(((const float *)t->data)[j]);
        CHECK(finite, "tensor %s has non-finite values", t->name);
    }
}

/* ---------------------------------------------------------------------------------------------
 * round trip: copy every kv and tensor, write, re-read, compare */

static int kv_equal(const gguf_kv *a, const gguf_kv *b) {
    if (strcmp(a->key, b->key) != 0 || a->type != b->type) return 0;
    switch (a->type) {
    case GGUF_TYPE_STRING:
        return a->str_len == b->str_len && memcmp(a->str, b->str, a->str_len) == 0;
    case GGUF_TYPE_ARRAY:
        if (a->arr_type != b->arr_type || a->n != b->n) return 0;
        if (a->arr_type == GGUF_TYPE_STRING) {
            for (uint64_t i = 0; i < a->n; i++)
                if (a->str_lens[i] != b->str_lens[i] || memcmp(a->strs[i], b->strs[i], a->str_lens[i]) != 0)
                    return 0;
            return 1;
        } else {
            size_t sz = a->arr_type == GGUF_TYPE_FLOAT64 || a->arr_type == GGUF_TYPE_UINT64 ||
                                a->arr_type == GGUF_TYPE_INT64 ? 8
                        : a->arr_type == GGUF_TYPE_UINT32 || a->arr_type == GGUF_TYPE_INT32 ||
                                a->arr_type == GGUF_TYPE_FLOAT32 ? 4
                        : a->arr_type == GGUF_TYPE_UINT16 || a->arr_type == GGUF_TYPE_INT16 ? 2 : 1;
            return memcmp(a->arr, b->arr, (size_t)a->n * sz) == 0;
        }
    default:
        return a->u64 == b->u64 && a->i64 == b->i64 &&
               (a->f64 == b->f64 || (isnan(a->f64) && isnan(b->f64)));
    }
}

static void compare_files(const gguf_file *a, const gguf_file *b, const char *label) {
    CHECK(a->n_kv == b->n_kv, "%s: n_kv %llu vs %llu", label, (unsigned long long)a->n_kv,
          (unsigned long long)b->n_kv);
    for (uint64_t i = 0; i < a->n_kv && i < b->n_kv; i++)
        CHECK(kv_equal(&a->kv[i], &b->kv[i]), "%s: kv #%llu '%s' differs", label, (unsigned long long)i,
              a->kv[i].key);
    CHECK(a->n_tensors == b->n_tensors, "%s: n_tensors", label);
    for (uint64_t i = 0; i < a->n_tensors && i < b->n_tensors; i++) {
        const gguf_tensor *x = &a->tensors[i], *y = &b->tensors[i];
        int same = strcmp(x->name, y->name) == 0 && x->n_dims == y->n_dims && x->type == y->type &&
                   memcmp(x->ne, y->ne, sizeof x->ne) == 0 && x->nbytes == y->nbytes &&
                   memcmp(x->data, y->data, x->nbytes) == 0;
        CHECK(same, "%s: tensor '%s' differs", label, x->name);
    }
}

static void test_roundtrip(const gguf_file *g) {
    gguf_writer *w = gguf_writer_init();
    for (uint64_t i = 0; i < g->n_kv; i++) gguf_writer_copy_kv(w, &g->kv[i]);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        CHECK(gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data) == 0, "add %s: %s",
              t->name, slim_last_error());
    }
    char path[1024];
    tmp_path(path, sizeof path, "copy.gguf");
    CHECK(gguf_writer_write(w, path) == 0, "write %s: %s", path, slim_last_error());
    gguf_writer_free(w);
    gguf_file c;
    int rc = gguf_open(&c, path);
    CHECK(rc == 0, "re-read %s: %s", path, slim_last_error());
    if (rc == 0) {
        CHECK(c.version == 3, "copy version");
        compare_files(g, &c, "round trip");
        /* the original was written by llama.cpp's converter, which lays a file out by the same
         * rules (kv order kept, tensor data aligned and padded): the copy is byte-identical */
        int identical = c.map_size == g->map_size && memcmp(c.map, g->map, g->map_size) == 0;
        CHECK(identical, "copy (%zu bytes) is not byte-identical to the original (%zu bytes)", c.map_size,
              g->map_size);
        printf("round trip: %llu kvs, %llu tensors re-read identically; file %s byte-identical to the original\n",
               (unsigned long long)c.n_kv, (unsigned long long)c.n_tensors, identical ? "is" : "is NOT");
        gguf_close(&c);
    }
    unlink(path);
}

/* The streaming writer: the same bytes as the in-memory writer for any chunking; a stream with too
 * many or too few bytes, or aborted, leaves nothing behind (no file, no temporary). */
static int dir_has_tmp(const char *path) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    return access(tmp, F_OK) == 0;
}

static gguf_writer *stream_writer(const gguf_file *g) {
    gguf_writer *w = gguf_writer_init();
    for (uint64_t i = 0; i < g->n_kv; i++) gguf_writer_copy_kv(w, &g->kv[i]);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        CHECK(gguf_writer_add_tensor_info(w, t->name, t->type, t->n_dims, t->ne) == 0, "declare %s: %s", t->name,
              slim_last_error());
    }
    return w;
}

static void test_stream(const gguf_file *g) {
    char path[1024];
    tmp_path(path, sizeof path, "stream.gguf");
    static const size_t chunks[] = { 1, 7, 4096, (size_t)1 << 30 };
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        gguf_writer *w = stream_writer(g);
        CHECK(gguf_writer_add_tensor(w, "late", GGML_TYPE_F32, 1, (const int64_t[]){ 1 }, "abcd") == 0, "add");
        CHECK(gguf_writer_begin(w, path) == 0, "begin: %s", slim_last_error());
        CHECK(gguf_writer_add_tensor_info(w, "after", GGML_TYPE_F32, 1, (const int64_t[]){ 1 }) != 0,
              "a tensor declared after begin is refused");
        int ok = 1;
        for (uint64_t i = 0; i < g->n_tensors && ok; i++)
            for (uint64_t o = 0; o < g->tensors[i].nbytes && ok; o += chunks[c]) {
                size_t k = g->tensors[i].nbytes - o < chunks[c] ? (size_t)(g->tensors[i].nbytes - o) : chunks[c];
                ok = gguf_writer_write_data(w, (const uint8_t *)g->tensors[i].data + o, k) == 0;
            }
        ok = ok && gguf_writer_write_data(w, "abcd", 4) == 0;
        CHECK(ok && gguf_writer_finish(w) == 0, "stream in chunks of %zu: %s", chunks[c], slim_last_error());
        gguf_writer_free(w);
        gguf_file c2;
        if (gguf_open(&c2, path) != 0) {
            CHECK(0, "re-read stream: %s", slim_last_error());
            continue;
        }
        CHECK(c2.n_tensors == g->n_tensors + 1, "streamed tensor count");
        int same = 1;
        for (uint64_t i = 0; i < g->n_tensors; i++)
            same &= memcmp(c2.tensors[i].data, g->tensors[i].data, g->tensors[i].nbytes) == 0;
        CHECK(same && memcmp(c2.tensors[g->n_tensors].data, "abcd", 4) == 0, "streamed data (chunk %zu)", chunks[c]);
        gguf_close(&c2);
    }
    /* in-memory and streamed files are the same bytes */
    gguf_writer *w = stream_writer(g);
    CHECK(gguf_writer_begin(w, path) == 0, "begin");
    for (uint64_t i = 0; i < g->n_tensors; i++) gguf_writer_write_data(w, g->tensors[i].data, g->tensors[i].nbytes);
    CHECK(gguf_writer_finish(w) == 0, "finish: %s", slim_last_error());
    gguf_writer_free(w);
    gguf_file c3;
    int rc = gguf_open(&c3, path);
    CHECK(rc == 0 && c3.map_size == g->map_size && memcmp(c3.map, g->map, g->map_size) == 0,
          "streamed copy byte-identical");
    if (rc == 0) gguf_close(&c3);
    unlink(path);
    /* too few bytes, too many bytes, abort, free while open: no file, no temporary */
    for (int mode = 0; mode < 4; mode++) {
        w = stream_writer(g);
        CHECK(gguf_writer_begin(w, path) == 0, "begin");
        CHECK(dir_has_tmp(path), "the temporary file exists while streaming");
        const gguf_tensor *t0 = &g->tensors[0];
        if (mode == 0) {
            gguf_writer_write_data(w, t0->data, t0->nbytes);
            CHECK(gguf_writer_finish(w) != 0 && strstr(slim_last_error(), g->tensors[1].name), "missing bytes: %s",
                  slim_last_error());
        } else if (mode == 1) {
            uint8_t *big = calloc(1, g->map_size + 1);
            CHECK(gguf_writer_write_data(w, big, g->map_size + 1) != 0 && strstr(slim_last_error(), t0->name),
                  "too many bytes: %s", slim_last_error());
            free(big);
        } else if (mode == 2) {
            gguf_writer_abort(w);
        }
        gguf_writer_free(w);
        CHECK(access(path, F_OK) != 0 && !dir_has_tmp(path), "mode %d: nothing left behind", mode);
    }
}

/* ---------------------------------------------------------------------------------------------
 * writer features: every metadata type, replacement in place, alignment, quantized shapes */

static void test_writer_types(void) {
    gguf_writer *w = gguf_writer_init();
    gguf_writer_set_u32(w, "t.u32", 7);
    gguf_writer_set_str(w, "t.str", "hello");
    gguf_writer_set_f32(w, "t.f32", 1.5f);
    /* scalars of every other type, through copy_kv */
    struct { uint32_t type; uint64_t u; int64_t i; double f; } sc[] = {
        { GGUF_TYPE_UINT8, 200, 200, 200 },  { GGUF_TYPE_INT8, 0, -100, -100 },
        { GGUF_TYPE_UINT16, 60000, 60000, 60000 }, { GGUF_TYPE_INT16, 0, -30000, -30000 },
        { GGUF_TYPE_INT32, 0, -2000000000, -2000000000 }, { GGUF_TYPE_BOOL, 1, 1, 1 },
        { GGUF_TYPE_UINT64, 18000000000000000000ull, 0, 18000000000000000000.0 },
        { GGUF_TYPE_INT64, 0, -9000000000000000000ll, -9000000000000000000.0 },
        { GGUF_TYPE_FLOAT64, 0, 0, 3.141592653589793 },
    };
    for (size_t i = 0; i < sizeof sc / sizeof sc[0]; i++) {
        char key[32];
        snprintf(key, sizeof key, "s.%zu", i);
        gguf_kv kv = { .key = key, .type = sc[i].type, .u64 = sc[i].u, .i64 = sc[i].i, .f64 = sc[i].f };
        gguf_writer_copy_kv(w, &kv);
    }
    int16_t a16[3] = { -1, 2, -3 };
    double a64[2] = { 0.25, -1e300 };
    uint8_t abool[4] = { 1, 0, 0, 1 };
    char *strs[3] = { "a", "", "b\0c" };
    uint64_t lens[3] = { 1, 0, 3 };
    gguf_kv arr16 = { .key = "a.i16", .type = GGUF_TYPE_ARRAY, .arr_type = GGUF_TYPE_INT16, .n = 3, .arr = a16 };
    gguf_kv arr64 = { .key = "a.f64", .type = GGUF_TYPE_ARRAY, .arr_type = GGUF_TYPE_FLOAT64, .n = 2, .arr = a64 };
    gguf_kv arrb = { .key = "a.bool", .type = GGUF_TYPE_ARRAY, .arr_type = GGUF_TYPE_BOOL, .n = 4, .arr = abool };
    gguf_kv arrs = { .key = "a.str", .type = GGUF_TYPE_ARRAY, .arr_type = GGUF_TYPE_STRING, .n = 3,
                     .strs = strs, .str_lens = lens };
    gguf_kv arr0 = { .key = "a.empty", .type = GGUF_TYPE_ARRAY, .arr_type = GGUF_TYPE_UINT32, .n = 0 };
    gguf_writer_copy_kv(w, &arr16);
    gguf_writer_copy_kv(w, &arr64);
    gguf_writer_copy_kv(w, &arrb);
    gguf_writer_copy_kv(w, &arrs);
    gguf_writer_copy_kv(w, &arr0);
    /* replacement keeps the position */
    gguf_writer_set_u32(w, "t.u32", 9);
    gguf_writer_set_str(w, "t.str", "world");
    gguf_writer_set_u32(w, "general.alignment", 64);

    /* tensors of several types; row sizes from gguf_row_size */
    slim_rng rng;
    slim_rng_seed(&rng, 42);
    struct { const char *name; uint32_t type, n_dims; int64_t ne[4]; } ts[] = {
        { "f32", GGML_TYPE_F32, 2, { 3, 2 } },       { "f16", GGML_TYPE_F16, 1, { 5 } },
        { "q8", GGML_TYPE_Q8_0, 2, { 64, 3 } },      { "q4k", GGML_TYPE_Q4_K, 3, { 256, 1, 2 } },
        { "bf16", GGML_TYPE_BF16, 4, { 2, 2, 2, 2 } }, { "q6k", GGML_TYPE_Q6_K, 1, { 512 } },
    };
    size_t nts = sizeof ts / sizeof ts[0];
    uint8_t *blobs[8];
    size_t sizes[8];
    for (size_t i = 0; i < nts; i++) {
        size_t n = gguf_row_size(ts[i].type, ts[i].ne[0]);
        for (uint32_t d = 1; d < ts[i].n_dims; d++) n *= (size_t)ts[i].ne[d];
        sizes[i] = n;
        blobs[i] = slim_malloc(n);
        for (size_t j = 0; j < n; j++) blobs[i][j] = (uint8_t)slim_rng_u32(&rng);
        CHECK(gguf_writer_add_tensor(w, ts[i].name, ts[i].type, ts[i].n_dims, ts[i].ne, blobs[i]) == 0,
              "add %s: %s", ts[i].name, slim_last_error());
    }
    /* refused tensors */
    int64_t ne172[2] = { 172, 2 }, ne4[1] = { 4 };
    CHECK(gguf_writer_add_tensor(w, "f32", GGML_TYPE_F32, 1, ne4, blobs[0]) == -1 && strstr(slim_last_error(), "f32"),
          "duplicate tensor name accepted");
    CHECK(gguf_writer_add_tensor(w, "bad", 99, 1, ne4, blobs[0]) == -1, "unknown type accepted");
    CHECK(gguf_writer_add_tensor(w, "bad", GGML_TYPE_Q8_0, 2, ne172, blobs[0]) == -1 &&
              strstr(slim_last_error(), "bad"),
          "Q8_0 row of 172 accepted");
    CHECK(gguf_writer_add_tensor(w, "bad", GGML_TYPE_F32, 5, ne172, blobs[0]) == -1, "5 dims accepted");
    CHECK(gguf_writer_add_tensor(w, "bad", GGML_TYPE_F32, 0, ne172, blobs[0]) == -1, "0 dims accepted");

    char path[1024];
    tmp_path(path, sizeof path, "types.gguf");
    CHECK(gguf_writer_write(w, path) == 0, "write: %s", slim_last_error());
    CHECK(gguf_writer_write(w, "/nonexistent-dir/x.gguf") == -1 && slim_last_error()[0], "write to bad dir");
    gguf_writer_free(w);

    gguf_file g;
    int rc = gguf_open(&g, path);
    CHECK(rc == 0, "open %s: %s", path, slim_last_error());
    if (rc) return;
    CHECK(g.n_kv == 3 + sizeof sc / sizeof sc[0] + 5 + 1, "n_kv %llu", (unsigned long long)g.n_kv);
    CHECK(g.n_kv > 2 && strcmp(g.kv[0].key, "t.u32") == 0 && g.kv[0].u64 == 9, "t.u32 replaced in place");
    CHECK(g.n_kv > 2 && strcmp(g.kv[1].key, "t.str") == 0 && strcmp(g.kv[1].str, "world") == 0, "t.str replaced");
    float f = 0;
    CHECK(gguf_get_f32(&g, "t.f32", &f) == 0 && f == 1.5f, "t.f32 %g", f);
    for (size_t i = 0; i < sizeof sc / sizeof sc[0]; i++) {
        char key[32];
        snprintf(key, sizeof key, "s.%zu", i);
        const gguf_kv *kv = gguf_find_kv(&g, key);
        CHECK(kv && kv->type == sc[i].type && kv->u64 == sc[i].u && kv->i64 == sc[i].i && kv->f64 == sc[i].f,
              "scalar %s (type %u)", key, sc[i].type);
    }
    uint32_t u;
    int64_t i64;
    CHECK(gguf_get_u32(&g, "s.0", &u) == 0 && u == 200, "u8 as u32");
    CHECK(gguf_get_u32(&g, "s.1", &u) == -1 && strstr(slim_last_error(), "s.1"), "negative i8 as u32 accepted");
    CHECK(gguf_get_i64(&g, "s.7", &i64) == 0 && i64 == -9000000000000000000ll, "i64");
    CHECK(gguf_get_i64(&g, "s.6", &i64) == -1, "u64 beyond int64 accepted");
    CHECK(gguf_get_u32(&g, "s.6", &u) == -1, "u64 beyond uint32 accepted");
    const gguf_kv *kv = gguf_find_kv(&g, "a.i16");
    CHECK(kv && kv->n == 3 && memcmp(kv->arr, a16, sizeof a16) == 0, "i16 array");
    kv = gguf_find_kv(&g, "a.f64");
    CHECK(kv && kv->n == 2 && memcmp(kv->arr, a64, sizeof a64) == 0, "f64 array");
    kv = gguf_find_kv(&g, "a.bool");
    CHECK(kv && kv->n == 4 && memcmp(kv->arr, abool, sizeof abool) == 0, "bool array");
    kv = gguf_find_kv(&g, "a.str");
    CHECK(kv && kv->n == 3 && kv->str_lens[2] == 3 && memcmp(kv->strs[2], "b\0c", 4) == 0 &&
              kv->strs[1][0] == 0 && strcmp(kv->strs[0], "a") == 0,
          "string array with an empty string and an inner NUL");
    kv = gguf_find_kv(&g, "a.empty");
    CHECK(kv && kv->type == GGUF_TYPE_ARRAY && kv->n == 0, "empty array");
    CHECK(g.alignment == 64 && g.data_offset % 64 == 0, "alignment %llu", (unsigned long long)g.alignment);
    CHECK(g.n_tensors == nts, "n_tensors");
    for (size_t i = 0; i < nts && i < g.n_tensors; i++) {
        const gguf_tensor *t = gguf_find_tensor(&g, ts[i].name);
        CHECK(t && t->type == ts[i].type && t->n_dims == ts[i].n_dims && t->nbytes == sizes[i] &&
                  t->offset % 64 == 0 && memcmp(t->data, blobs[i], sizes[i]) == 0,
              "tensor %s", ts[i].name);
        if (t)
            for (uint32_t d = 0; d < 4; d++)
                CHECK(t->ne[d] == (d < ts[i].n_dims ? ts[i].ne[d] : 1), "%s ne[%u]", ts[i].name, d);
    }
    gguf_close(&g);
    for (size_t i = 0; i < nts; i++) free(blobs[i]);

    /* copy_kv of a file's own kvs into a second writer, then a rewrite gives the same file */
    rc = gguf_open(&g, path);
    if (rc == 0) {
        gguf_writer *w2 = gguf_writer_init();
        for (uint64_t i = 0; i < g.n_kv; i++) gguf_writer_copy_kv(w2, &g.kv[i]);
        for (uint64_t i = 0; i < g.n_tensors; i++)
            gguf_writer_add_tensor(w2, g.tensors[i].name, g.tensors[i].type, g.tensors[i].n_dims, g.tensors[i].ne,
                                   g.tensors[i].data);
        char path2[1024];
        tmp_path(path2, sizeof path2, "types2.gguf");
        CHECK(gguf_writer_write(w2, path2) == 0, "rewrite: %s", slim_last_error());
        gguf_writer_free(w2);
        char *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        CHECK(slim_read_file(path, &a, &na) == 0 && slim_read_file(path2, &b, &nb) == 0 && na == nb &&
                  memcmp(a, b, na) == 0,
              "rewrite is not byte-identical");
        free(a);
        free(b);
        unlink(path2);
        gguf_close(&g);
    }
    unlink(path);
}

/* ---------------------------------------------------------------------------------------------
 * fp16 and row sizes */

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static void test_fp16(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = slim_fp16_to_fp32((uint16_t)h);
        int is_nan = ((h >> 10) & 0x1f) == 31 && (h & 0x3ff);
        if (is_nan) bad += !isnan(f) || !isnan(slim_fp16_to_fp32(slim_fp32_to_fp16(f)));
        else bad += slim_fp32_to_fp16(f) != h;
    }
    CHECK(bad == 0, "%d half values do not survive half -> float -> half", bad);
    CHECK(slim_fp16_to_fp32(0x3c00) == 1.0f && slim_fp16_to_fp32(0xc000) == -2.0f, "1 and -2");
    CHECK(slim_fp16_to_fp32(0x7bff) == 65504.0f && slim_fp16_to_fp32(0x0001) == ldexpf(1, -24), "max, min sub");
    CHECK(slim_fp32_to_fp16(65519.0f) == 0x7bff && slim_fp32_to_fp16(65520.0f) == 0x7c00, "overflow edge");
    CHECK(slim_fp32_to_fp16(1e10f) == 0x7c00 && slim_fp32_to_fp16(-INFINITY) == 0xfc00, "inf");
    CHECK(slim_fp32_to_fp16(-0.0f) == 0x8000, "-0");
    CHECK(slim_fp32_to_fp16(ldexpf(1, -25)) == 0 && slim_fp32_to_fp16(ldexpf(3, -26)) == 1, "sub rounding");
    CHECK(slim_fp32_to_fp16(ldexpf(3, -25)) == 2, "subnormal tie 1.5 -> 2 (even)");
    CHECK(slim_fp32_to_fp16(1.0f + ldexpf(1, -11)) == 0x3c00, "tie to even down");
    CHECK(slim_fp32_to_fp16(1.0f + ldexpf(3, -11)) == 0x3c02, "tie to even up");
    CHECK(slim_fp32_to_fp16(u2f(f2u(1.0f + ldexpf(1, -11)) + 1)) == 0x3c01, "above tie rounds up");
    CHECK(slim_fp32_to_fp16(ldexpf(1, -14) * (1 - ldexpf(1, -12))) == 0x0400, "rounds up into normal");
    CHECK(isnan(slim_fp16_to_fp32(slim_fp32_to_fp16(NAN))), "NaN");
    /* round to nearest: every float in a sweep converts to the nearest half */
    slim_rng r;
    slim_rng_seed(&r, 7);
    int far = 0;
    for (int i = 0; i < 100000; i++) {
        float x = (slim_rng_uniform(&r) * 2 - 1) * ldexpf(1, (int)(slim_rng_u32(&r) % 40) - 24);
        uint16_t h = slim_fp32_to_fp16(x);
        float y = slim_fp16_to_fp32(h), d = fabsf(y - x);
        float lo = slim_fp16_to_fp32((uint16_t)(h - 1)), hi = slim_fp16_to_fp32((uint16_t)(h + 1));
        if ((h & 0x7fff) != 0 && (h & 0x7fff) < 0x7bff && (fabsf(lo - x) < d || fabsf(hi - x) < d)) far++;
    }
    CHECK(far == 0, "%d conversions not to the nearest half", far);
}

static void test_row_size(void) {
    struct { uint32_t type; int64_t ne0; size_t bytes; const char *name; } rs[] = {
        { GGML_TYPE_F32, 64, 256, "F32" },   { GGML_TYPE_F16, 64, 128, "F16" },   { GGML_TYPE_BF16, 64, 128, "BF16" },
        { GGML_TYPE_Q8_0, 64, 68, "Q8_0" },  { GGML_TYPE_Q4_0, 64, 36, "Q4_0" },  { GGML_TYPE_Q4_1, 64, 40, "Q4_1" },
        { GGML_TYPE_Q5_0, 64, 44, "Q5_0" },  { GGML_TYPE_Q5_1, 64, 48, "Q5_1" },  { GGML_TYPE_Q4_K, 256, 144, "Q4_K" },
        { GGML_TYPE_Q5_K, 512, 352, "Q5_K" }, { GGML_TYPE_Q6_K, 256, 210, "Q6_K" }, { GGML_TYPE_F32, 172, 688, "F32" },
    };
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++) {
        CHECK(gguf_row_size(rs[i].type, rs[i].ne0) == rs[i].bytes, "row size %s x %lld = %zu", rs[i].name,
              (long long)rs[i].ne0, gguf_row_size(rs[i].type, rs[i].ne0));
        CHECK(strcmp(gguf_type_name(rs[i].type), rs[i].name) == 0, "name of %u", rs[i].type);
    }
    CHECK(gguf_row_size(GGML_TYPE_Q8_0, 172) == 0 && gguf_row_size(GGML_TYPE_Q4_K, 64) == 0, "partial blocks");
    CHECK(gguf_row_size(99, 64) == 0 && strcmp(gguf_type_name(99), "?") == 0, "unknown type");
}

/* ---------------------------------------------------------------------------------------------
 * bad files */

static void test_bad_files(const gguf_file *g) {
    size_t n = g->map_size;
    uint8_t *buf = slim_malloc(n);
#define RESET() memcpy(buf, g->map, n)

    /* truncation at every byte of the header and at steps through the data: all must fail */
    uint64_t data_end = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].offset + g->tensors[i].nbytes > data_end) data_end = g->tensors[i].offset + g->tensors[i].nbytes;
    data_end += g->data_offset;
    char path[1024];
    tmp_path(path, sizeof path, "trunc.gguf");
    CHECK(write_bytes(path, g->map, n) == 0, "write %s", path);
    int n_trunc = 0, trunc_bad = 0;
    for (uint64_t len = data_end; len-- > 0;) {
        if (len > g->data_offset + 256 && len % 4093 != 0 && len != data_end - 1) continue;
        if (truncate(path, (off_t)len) != 0) { CHECK(0, "truncate %s", path); break; }
        gguf_file t;
        slim_set_error("%s", "");
        int rc = gguf_open(&t, path);
        n_trunc++;
        if (rc != -1 || !slim_last_error()[0]) {
            trunc_bad++;
            if (trunc_bad < 5) CHECK(0, "truncated to %llu bytes: rc %d error \"%s\"", (unsigned long long)len, rc,
                                     slim_last_error());
            if (rc == 0) gguf_close(&t);
        }
    }
    CHECK(trunc_bad == 0, "%d of %d truncations not refused", trunc_bad, n_trunc);
    printf("truncations: %d files, all refused: %s\n", n_trunc, trunc_bad ? "no" : "yes");
    unlink(path);

    RESET(); buf[0] = 'X';
    expect_bad(buf, n, "bad magic", "magic");
    RESET(); put_u32(buf + 4, 1);
    expect_bad(buf, n, "version 1", "version");
    RESET(); put_u32(buf + 4, 4);
    expect_bad(buf, n, "version 4", "version");
    RESET(); put_u32(buf + 4, 0x03000000u);
    expect_bad(buf, n, "big-endian", "big-endian");
    RESET(); put_u64(buf + 8, 1ull << 62);
    expect_bad(buf, n, "huge tensor count", "tensor count");
    RESET(); put_u64(buf + 16, 1ull << 62);
    expect_bad(buf, n, "huge kv count", "count");
    RESET(); put_u64(buf + 24, UINT64_MAX);
    expect_bad(buf, n, "first key length 2^64-1", "length");
    RESET(); put_u64(buf + 24, n);
    expect_bad(buf, n, "first key length = file size", "length");

    /* version 2 has the same layout: accepted */
    RESET(); put_u32(buf + 4, 2);
    {
        char p2[1024];
        tmp_path(p2, sizeof p2, "v2.gguf");
        write_bytes(p2, buf, n);
        gguf_file t;
        int rc = gguf_open(&t, p2);
        CHECK(rc == 0 && t.version == 2 && t.n_tensors == g->n_tensors, "version 2: %s", slim_last_error());
        if (rc == 0) gguf_close(&t);
        unlink(p2);
    }

    /* key/value fields */
    long ktok = find_gguf_str(g->map, g->data_offset, "tokenizer.ggml.tokens");
    long kscore = find_gguf_str(g->map, g->data_offset, "tokenizer.ggml.scores");
    long kbos = find_gguf_str(g->map, g->data_offset, "tokenizer.ggml.bos_token_id");
    long keos = find_gguf_str(g->map, g->data_offset, "tokenizer.ggml.eos_token_id");
    CHECK(ktok >= 0 && kscore >= 0 && kbos >= 0 && keos >= 0, "keys not found in the header");
    if (ktok >= 0 && kscore >= 0 && kbos >= 0 && keos >= 0) {
        size_t tok_type = (size_t)ktok + 8 + 21; /* type, arr_type, n, first string length */
        RESET(); put_u32(buf + tok_type, 13);
        expect_bad(buf, n, "kv type 13", "tokenizer.ggml.tokens");
        RESET(); put_u32(buf + tok_type + 4, 9);
        expect_bad(buf, n, "nested array", "tokenizer.ggml.tokens");
        RESET(); put_u32(buf + tok_type + 4, 42);
        expect_bad(buf, n, "array element type 42", "tokenizer.ggml.tokens");
        RESET(); put_u64(buf + tok_type + 8, 1ull << 60);
        expect_bad(buf, n, "string array count 2^60", "tokenizer.ggml.tokens");
        RESET(); put_u64(buf + tok_type + 16, UINT64_MAX - 3);
        expect_bad(buf, n, "huge string in array", "tokenizer.ggml.tokens");
        RESET(); put_u64(buf + tok_type + 16, n - tok_type - 24 + 1);
        expect_bad(buf, n, "string one byte past the end", "tokenizer.ggml.tokens");
        size_t sc_n = (size_t)kscore + 8 + 21 + 8;
        RESET(); put_u64(buf + sc_n, 1ull << 61);
        expect_bad(buf, n, "float array count 2^61", "tokenizer.ggml.scores");
        RESET(); memcpy(buf + keos + 8, "tokenizer.ggml.bos_token_id", 27);
        expect_bad(buf, n, "duplicate key", "tokenizer.ggml.bos_token_id");
    }

    /* tensor infos */
    long te = find_gguf_str(g->map, g->data_offset, "token_embd.weight");
    long tq = find_gguf_str(g->map, g->data_offset, "blk.0.attn_q.weight");
    long tk = find_gguf_str(g->map, g->data_offset, "blk.0.attn_k.weight");
    CHECK(te >= 0 && tq >= 0 && tk >= 0, "tensor infos not found");
    if (te >= 0 && tq >= 0 && tk >= 0) {
        size_t nd = (size_t)te + 8 + 17, ne0 = nd + 4, ne1 = nd + 12, ty = nd + 20, off = nd + 24;
        RESET(); put_u32(buf + nd, 5);
        expect_bad(buf, n, "n_dims 5", "token_embd.weight");
        RESET(); put_u32(buf + ty, 99);
        expect_bad(buf, n, "tensor type 99", "token_embd.weight");
        RESET(); put_u32(buf + ty, 4); /* Q4_2: removed from ggml */
        expect_bad(buf, n, "tensor type 4", "token_embd.weight");
        RESET(); put_u32(buf + ty, GGML_TYPE_Q4_K);
        expect_bad(buf, n, "row of 64 in Q4_K", "token_embd.weight");
        RESET(); put_u64(buf + off, 1ull << 40);
        expect_bad(buf, n, "offset past EOF", "token_embd.weight");
        RESET(); put_u64(buf + off, n - g->data_offset - 32);
        expect_bad(buf, n, "data running past EOF", "token_embd.weight");
        RESET(); put_u64(buf + off, 4);
        expect_bad(buf, n, "misaligned offset", "token_embd.weight");
        RESET(); put_u64(buf + ne1, 1ull << 62);
        expect_bad(buf, n, "element count overflow", "token_embd.weight");
        RESET(); put_u64(buf + ne0, 1ull << 40); put_u64(buf + ne1, 1ull << 40);
        expect_bad(buf, n, "element count overflow 2", "token_embd.weight");
        RESET(); put_u64(buf + ne0, UINT64_MAX);
        expect_bad(buf, n, "dimension 2^64-1", "token_embd.weight");
        RESET(); put_u64(buf + ne1, 1ull << 20);
        expect_bad(buf, n, "huge but representable tensor", "token_embd.weight");
        RESET(); memcpy(buf + tk + 8, "blk.0.attn_q.weight", 19);
        expect_bad(buf, n, "duplicate tensor name", "blk.0.attn_q.weight");
        RESET(); put_u64(buf + (size_t)tq + 8 + 19 + 4 + 16 + 4, UINT64_MAX - 31);
        expect_bad(buf, n, "offset near 2^64", "blk.0.attn_q.weight");
    }
    free(buf);
#undef RESET
}

/* A small file with every kind of field, mutated at random: nothing may crash or read out of
 * bounds (tensor bytes of accepted files are all read); refusals must carry an error. */
static void test_fuzz(void) {
    gguf_writer *w = gguf_writer_init();
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_u32(w, "llama.block_count", 1);
    gguf_writer_set_f32(w, "llama.eps", 1e-5f);
    char *strs[2] = { "<s>", "abc" };
    uint64_t lens[2] = { 3, 3 };
    float scores[2] = { 0, -1 };
    gguf_kv a = { .key = "t.tokens", .type = GGUF_TYPE_ARRAY, .arr_type = GGUF_TYPE_STRING, .n = 2, .strs = strs,
                  .str_lens = lens };
    gguf_kv b = { .key = "t.scores", .type = GGUF_TYPE_ARRAY, .arr_type = GGUF_TYPE_FLOAT32, .n = 2, .arr = scores };
    gguf_writer_copy_kv(w, &a);
    gguf_writer_copy_kv(w, &b);
    float data[64 * 2];
    for (int i = 0; i < 128; i++) data[i] = (float)i;
    int64_t ne[2] = { 64, 2 }, ne1[1] = { 8 };
    gguf_writer_add_tensor(w, "w", GGML_TYPE_F32, 2, ne, data);
    gguf_writer_add_tensor(w, "v", GGML_TYPE_F32, 1, ne1, data);
    char path[1024];
    tmp_path(path, sizeof path, "fuzz.gguf");
    CHECK(gguf_writer_write(w, path) == 0, "fuzz base: %s", slim_last_error());
    gguf_writer_free(w);
    char *base = NULL;
    size_t n = 0;
    CHECK(slim_read_file(path, &base, &n) == 0, "read fuzz base");
    if (!base) return;
    uint8_t *buf = slim_malloc(n);
    slim_rng r;
    slim_rng_seed(&r, 1234);
    int ok = 0, refused = 0, silent = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(buf, base, n);
        int nm = 1 + (int)(slim_rng_u32(&r) % 4);
        size_t hdr = n < 400 ? n : 400; /* mutate the header mostly */
        for (int m = 0; m < nm; m++) {
            size_t pos = slim_rng_u32(&r) % hdr;
            uint32_t kind = slim_rng_u32(&r) % 3;
            if (kind == 0) buf[pos] = (uint8_t)slim_rng_u32(&r);
            else if (kind == 1) buf[pos] ^= (uint8_t)(1u << (slim_rng_u32(&r) % 8));
            else buf[pos] = 0xff;
        }
        size_t len = (slim_rng_u32(&r) % 4 == 0) ? slim_rng_u32(&r) % (n + 1) : n;
        write_bytes(path, buf, len);
        gguf_file g;
        slim_set_error("%s", "");
        if (gguf_open(&g, path) == 0) {
            ok++;
            unsigned sum = 0;
            for (uint64_t i = 0; i < g.n_tensors; i++)
                for (uint64_t j = 0; j < g.tensors[i].nbytes; j++) sum += ((const uint8_t *)g.tensors[i].data)[j];
            for (uint64_t i = 0; i < g.n_kv; i++) sum += (unsigned)strlen(g.kv[i].key);
            (void)sum;
            gguf_close(&g);
        } else {
            refused++;
            silent += slim_last_error()[0] == 0;
        }
    }
    CHECK(silent == 0, "%d refusals without an error message", silent);
    CHECK(refused > 0 && ok > 0, "fuzz: %d accepted, %d refused", ok, refused);
    printf("fuzz: 3000 mutated files, %d accepted, %d refused\n", ok, refused);
    free(buf);
    free(base);
    unlink(path);
}

int main(void) {
    const char *td = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof tmp_dir, "%s", td && *td ? td : "/tmp");

    test_fp16();
    test_row_size();
    test_writer_types();
    test_fuzz();

    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K.gguf", slim_shared_dir());
    gguf_file g;
    int rc = gguf_open(&g, path);
    CHECK(rc == 0, "fixture %s: %s", path, slim_last_error());
    if (rc == 0) {
        test_stories_facts(&g);
        test_roundtrip(&g);
        test_stream(&g);
        test_bad_files(&g);
        gguf_close(&g);
    }
    return tu_finish("test_gguf");
}
