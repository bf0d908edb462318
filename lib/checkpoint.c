/* checkpoint.c — training checkpoints on disk; see checkpoint.h for the layout and the schema.
 *
 * HDF5's own error printing is off (as in dataset.c); every failure is reported through slim_set_error()
 * naming the file and the dataset or attribute at fault. */
#define _GNU_SOURCE
#include "checkpoint.h"

#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <nettle/sha2.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

#define CKPT_CHUNK (1 << 20) /* floats per chunk of /params, /adam_m, /adam_v */

/* The int64 and float64 scalar attributes of state.h5, by their place in ckpt_state. */
typedef struct ckpt_attr {
    const char *name;
    size_t off;
} ckpt_attr;

#define CKPT_AT(f) offsetof(ckpt_state, f)
static const ckpt_attr ckpt_int_attrs[] = {
    {"step", CKPT_AT(step)},
    {"adam_t", CKPT_AT(adam_t)},
    {"loader_epoch", CKPT_AT(loader.epoch)},
    {"loader_cursor", CKPT_AT(loader.cursor)},
    {"threads", CKPT_AT(threads)},
    {"targets_since", CKPT_AT(log.targets_since)},
    {"tokens_since", CKPT_AT(log.tokens_since)},
    {"real_since", CKPT_AT(log.real_since)},
    {"tokens_total", CKPT_AT(log.tokens_total)},
    {"real_total", CKPT_AT(log.real_total)},
    {"targets_total", CKPT_AT(log.targets_total)},
};
static const ckpt_attr ckpt_real_attrs[] = {
    {"loss_since", CKPT_AT(log.loss_since)},
    {"elapsed_s", CKPT_AT(log.elapsed_s)},
};
#define CKPT_N(a) (sizeof a / sizeof a[0])

/* ---------------------------------------------------------------------------------------------- */
/* hashes */

void ckpt_dataset_sha256(const slim_dataset *d, uint8_t out[32]) {
    struct sha256_ctx h;
    sha256_init(&h);
    int32_t msl = d->max_seq_len;
    int64_t n = d->n_examples;
    sha256_update(&h, sizeof msl, (const uint8_t *)&msl);
    sha256_update(&h, sizeof n, (const uint8_t *)&n);
    sha256_update(&h, sizeof(int64_t) * (size_t)(n + 1), (const uint8_t *)d->offsets);
    sha256_update(&h, sizeof(int32_t) * (size_t)d->n_tokens, (const uint8_t *)d->tokens);
    sha256_update(&h, (size_t)d->n_tokens, d->loss_mask);
    sha256_digest(&h, SHA256_DIGEST_SIZE, out);
}

void ckpt_hex(const uint8_t sha[32], char hex[65]) {
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", sha[i]);
}

/* ---------------------------------------------------------------------------------------------- */
/* directories */

/* Steps of a checkpoint directory name "step-<digits>", else -1. */
static int64_t ckpt_step_of(const char *name) {
    if (strncmp(name, "step-", 5) != 0) return -1;
    const char *p = name + 5;
    size_t n = strspn(p, "0123456789");
    if (n == 0 || n > 18 || p[n]) return -1;
    return strtoll(p, NULL, 10);
}

/* The process id in a leftover name ".tmp-step-N.<pid>" / ".old-step-N.<pid>", else 0. */
static pid_t ckpt_leftover_pid(const char *name) {
    if (strncmp(name, ".tmp-step-", 10) != 0 && strncmp(name, ".old-step-", 10) != 0) return 0;
    const char *dot = strrchr(name, '.');
    if (dot == name || !dot[1] || dot[1 + strspn(dot + 1, "0123456789")]) return 0;
    return (pid_t)atol(dot + 1);
}

static int ckpt_cmp_step(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The steps of the checkpoints under parent, sorted, into a fresh *steps; returns how many (0 when
 * parent does not exist), or -1 with an error. Leftover temporary directories of processes that are
 * gone are removed on the way. */
static int ckpt_list(const char *parent, int64_t **steps) {
    *steps = NULL;
    DIR *d = opendir(parent);
    if (!d) return errno == ENOENT ? 0 : slim_set_error("%s: cannot open: %s", parent, strerror(errno));
    int n = 0, cap = 0;
    struct dirent *e;
    char p[4500];
    while ((e = readdir(d))) {
        int64_t s = ckpt_step_of(e->d_name);
        pid_t pid = ckpt_leftover_pid(e->d_name);
        if (pid > 0 && kill(pid, 0) != 0 && errno == ESRCH &&
            snprintf(p, sizeof p, "%s/%s", parent, e->d_name) < (int)sizeof p)
            (void)slim_remove_dir(p);
        if (s < 0) continue;
        if (n == cap) *steps = slim_realloc(*steps, sizeof(int64_t) * (size_t)(cap = cap ? 2 * cap : 16));
        (*steps)[n++] = s;
    }
    closedir(d);
    if (n) qsort(*steps, (size_t)n, sizeof(int64_t), ckpt_cmp_step);
    return n;
}

/* Removes checkpoint `step` under parent. */
static int ckpt_remove(const char *parent, int64_t step) {
    char p[4200];
    if (slim_format_path(p, sizeof p, "%s/step-%06lld", parent, (long long)step) != 0) return -1;
    return slim_remove_dir(p);
}

int ckpt_latest(const char *parent, char *dir, size_t cap) {
    int64_t *steps;
    int n = ckpt_list(parent, &steps);
    if (n > 0 && slim_format_path(dir, cap, "%s/step-%06lld", parent, (long long)steps[n - 1]) != 0) n = -1;
    free(steps);
    return n < 0 ? -1 : n > 0;
}

int ckpt_remove_after(const char *parent, int64_t step) {
    int64_t *steps;
    int n = ckpt_list(parent, &steps), removed = 0;
    for (int i = 0; i < n; i++)
        if (steps[i] > step) {
            if (ckpt_remove(parent, steps[i]) != 0) { removed = -1; break; }
            removed++;
        }
    free(steps);
    return n < 0 ? -1 : removed;
}

/* Keeps the newest `keep` checkpoints under parent (0: all). */
static int ckpt_prune(const char *parent, int keep) {
    int64_t *steps;
    int n = ckpt_list(parent, &steps), rc = n < 0 ? -1 : 0;
    for (int i = 0; keep > 0 && i < n - keep && rc == 0; i++) rc = ckpt_remove(parent, steps[i]);
    free(steps);
    return rc;
}

int ckpt_begin(ckpt_writer *w, const char *parent, int64_t step) {
    memset(w, 0, sizeof *w);
    if (slim_format_path(w->parent, sizeof w->parent, "%s", parent) != 0) return -1;
    if (slim_format_path(w->tmp, sizeof w->tmp, "%s/.tmp-step-%06lld.%d", parent, (long long)step, (int)getpid()))
        return -1;
    if (slim_format_path(w->final, sizeof w->final, "%s/step-%06lld", parent, (long long)step) != 0) return -1;
    if (slim_mkdir_p(parent) != 0) return slim_set_error("%s: cannot create the directory: %s", parent, strerror(errno));
    (void)slim_remove_dir(w->tmp);
    if (mkdir(w->tmp, 0755) != 0) return slim_set_error("%s: cannot create: %s", w->tmp, strerror(errno));
    return 0;
}

void ckpt_abort(ckpt_writer *w) {
    if (w->tmp[0]) (void)slim_remove_dir(w->tmp);
    w->tmp[0] = 0;
}

int ckpt_commit(ckpt_writer *w, int keep) {
    int rc = slim_dir_commit(w->tmp, w->final); /* a resumed run's same step: the old one is replaced */
    w->tmp[0] = 0;
    return rc != 0 ? -1 : ckpt_prune(w->parent, keep);
}

int ckpt_copy_file(const ckpt_writer *w, const char *name, const char *src) {
    char dst[4500], buf[65536];
    if (slim_format_path(dst, sizeof dst, "%s/%s", w->tmp, name) != 0) return -1;
    FILE *in = fopen(src, "rb");
    if (!in) return slim_set_error("%s: cannot open: %s", src, strerror(errno));
    FILE *out = fopen(dst, "wb");
    if (!out) {
        fclose(in);
        return slim_set_error("%s: cannot create: %s", dst, strerror(errno));
    }
    size_t n;
    int bad = 0;
    while (!bad && (n = fread(buf, 1, sizeof buf, in)) > 0) bad = fwrite(buf, 1, n, out) != n;
    bad |= ferror(in);
    bad |= fclose(out) != 0;
    fclose(in);
    return bad ? slim_set_error("%s: copying %s failed", dst, src) : 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* state.h5 */

/* Writes a 1-D dataset of n >= 1 elements, chunked with fletcher32 checksums. */
static int ckpt_write_array(hid_t f, const char *path, const char *name, hid_t ftype, hid_t mtype, int64_t n,
                            const void *data) {
    hsize_t dims[1] = {(hsize_t)n}, chunk[1] = {(hsize_t)(n < CKPT_CHUNK ? n : CKPT_CHUNK)};
    hid_t space = H5Screate_simple(1, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, chunk);
    H5Pset_fletcher32(dcpl);
    hid_t ds = H5Dcreate2(f, name, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    int rc = ds < 0 || H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0
                 ? slim_set_error("%s: cannot write dataset /%s", path, name)
                 : 0;
    if (ds >= 0) H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(space);
    return rc;
}

/* Writes a scalar attribute. */
static int ckpt_write_attr(hid_t f, const char *path, const char *name, hid_t ftype, hid_t mtype, const void *v) {
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    int rc = a < 0 || H5Awrite(a, mtype, v) < 0 ? slim_set_error("%s: cannot write attribute %s", path, name) : 0;
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    return rc;
}

/* Writes the early-stopping state of s (when s->best_params is set) into f. */
static int ckpt_write_best(hid_t f, const char *path, const ckpt_state *s) {
    if (!s->best_params) return 0;
    int rc = ckpt_write_array(f, path, "best_params", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, s->n_params, s->best_params);
    if (rc == 0) rc = ckpt_write_attr(f, path, "best_step", H5T_STD_I64LE, H5T_NATIVE_INT64, &s->best_step);
    if (rc == 0)
        rc = ckpt_write_attr(f, path, "evals_since_best", H5T_STD_I64LE, H5T_NATIVE_INT64, &s->evals_since_best);
    if (rc == 0) rc = ckpt_write_attr(f, path, "best_value", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &s->best_value);
    return rc;
}

/* The file and the three arrays of a state, with the stored and memory type of each. */
#define CKPT_ARRAYS(s) {{"params", (s)->params}, {"adam_m", (s)->adam_m}, {"adam_v", (s)->adam_v}}

int ckpt_write_state(const ckpt_writer *w, const ckpt_state *s) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    char path[4300];
    if (slim_format_path(path, sizeof path, "%s/state.h5", w->tmp) != 0) return -1;
    if (s->n_params < 1) return slim_set_error("%s: no parameters to save", path);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST); /* checksummed metadata */
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f < 0) return slim_set_error("%s: cannot create HDF5 file", path);
    const struct { const char *name; const float *v; } arrays[] = CKPT_ARRAYS(s);
    int rc = 0;
    for (size_t i = 0; i < 3 && rc == 0; i++)
        rc = ckpt_write_array(f, path, arrays[i].name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, s->n_params, arrays[i].v);
    if (rc == 0)
        rc = ckpt_write_array(f, path, "dataset_sha256", H5T_STD_U8LE, H5T_NATIVE_UINT8, 32, s->dataset_sha256);
    if (rc == 0) rc = ckpt_write_best(f, path, s);
    const int64_t version = CKPT_FORMAT_VERSION;
    if (rc == 0) rc = ckpt_write_attr(f, path, "format_version", H5T_STD_I64LE, H5T_NATIVE_INT64, &version);
    if (rc == 0) rc = ckpt_write_attr(f, path, "n_params", H5T_STD_I64LE, H5T_NATIVE_INT64, &s->n_params);
    const int64_t ranks = s->ranks > 0 ? s->ranks : 1;
    if (rc == 0) rc = ckpt_write_attr(f, path, "ranks", H5T_STD_I64LE, H5T_NATIVE_INT64, &ranks);
    for (size_t i = 0; i < CKPT_N(ckpt_int_attrs) && rc == 0; i++)
        rc = ckpt_write_attr(f, path, ckpt_int_attrs[i].name, H5T_STD_I64LE, H5T_NATIVE_INT64,
                             (const char *)s + ckpt_int_attrs[i].off);
    for (size_t i = 0; i < CKPT_N(ckpt_real_attrs) && rc == 0; i++)
        rc = ckpt_write_attr(f, path, ckpt_real_attrs[i].name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                             (const char *)s + ckpt_real_attrs[i].off);
    if (H5Fclose(f) < 0 && rc == 0) rc = slim_set_error("%s: cannot close HDF5 file", path);
    return rc;
}

/* Reads scalar attribute `name` (8 bytes of class cls) into v (memory type mtype). */
static int ckpt_read_attr(hid_t f, const char *path, const char *name, H5T_class_t cls, hid_t mtype, void *v) {
    hid_t a = H5Aexists(f, name) > 0 ? H5Aopen(f, name, H5P_DEFAULT) : -1;
    if (a < 0) return slim_set_error("%s: attribute %s is missing or unreadable", path, name);
    hid_t type = H5Aget_type(a);
    int rc = H5Tget_class(type) != cls || H5Aget_storage_size(a) != 8
                 ? slim_set_error("%s: attribute %s: expected one 64-bit %s", path, name, cls == H5T_FLOAT ? "number" : "integer")
             : H5Aread(a, mtype, v) < 0 ? slim_set_error("%s: attribute %s: read failed (corrupt file?)", path, name)
                                        : 0;
    H5Tclose(type);
    H5Aclose(a);
    return rc;
}

/* Reads 1-D dataset `name` of exactly n elements into out (memory type mtype). */
static int ckpt_read_array(hid_t f, const char *path, const char *name, hid_t mtype, int64_t n, void *out) {
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0) return slim_set_error("%s: dataset /%s is missing", path, name);
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (ds < 0) return slim_set_error("%s: dataset /%s: cannot open (corrupt file?)", path, name);
    hid_t space = H5Dget_space(ds);
    hsize_t dims[1] = {0};
    int rank = H5Sget_simple_extent_ndims(space);
    if (rank == 1) H5Sget_simple_extent_dims(space, dims, NULL);
    H5Sclose(space);
    int rc = rank != 1 || (int64_t)dims[0] != n
                 ? slim_set_error("%s: dataset /%s: expected %lld values, found %lld", path, name, (long long)n,
                                  rank == 1 ? (long long)dims[0] : -1LL)
             : H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0
                 ? slim_set_error("%s: dataset /%s: read failed (checksum mismatch: corrupt or truncated file)", path, name)
                 : 0;
    H5Dclose(ds);
    return rc;
}

/* Reads the attributes of state.h5 (open as f) into *s, checking the format version and n_params. */
static int ckpt_read_attrs(hid_t f, const char *path, ckpt_state *s) {
    int64_t version = 0, n = 0;
    if (ckpt_read_attr(f, path, "format_version", H5T_INTEGER, H5T_NATIVE_INT64, &version)) return -1;
    if (version != CKPT_FORMAT_VERSION)
        return slim_set_error("%s: format_version %lld, this slimtune reads version %d", path, (long long)version,
                              CKPT_FORMAT_VERSION);
    if (ckpt_read_attr(f, path, "n_params", H5T_INTEGER, H5T_NATIVE_INT64, &n)) return -1;
    if (n != s->n_params)
        return slim_set_error("%s: n_params: the checkpoint holds %lld trainable parameters, this run's adapter has "
                              "%lld (lora.r or lora.targets or the model differ)", path, (long long)n,
                              (long long)s->n_params);
    for (size_t i = 0; i < CKPT_N(ckpt_int_attrs); i++)
        if (ckpt_read_attr(f, path, ckpt_int_attrs[i].name, H5T_INTEGER, H5T_NATIVE_INT64,
                           (char *)s + ckpt_int_attrs[i].off))
            return -1;
    for (size_t i = 0; i < CKPT_N(ckpt_real_attrs); i++)
        if (ckpt_read_attr(f, path, ckpt_real_attrs[i].name, H5T_FLOAT, H5T_NATIVE_DOUBLE,
                           (char *)s + ckpt_real_attrs[i].off))
            return -1;
    s->ranks = 1; /* checkpoints written before data-parallel runs have no "ranks" */
    if (H5Aexists(f, "ranks") > 0 && ckpt_read_attr(f, path, "ranks", H5T_INTEGER, H5T_NATIVE_INT64, &s->ranks))
        return -1;
    if (s->step < 0 || s->adam_t < 0 || s->loader.epoch < 0 || s->loader.cursor < 0 || s->threads < 1 || s->ranks < 1)
        return slim_set_error("%s: step %lld, adam_t %lld, loader %lld/%lld, threads %lld, ranks %lld: out of range",
                              path, (long long)s->step, (long long)s->adam_t, (long long)s->loader.epoch,
                              (long long)s->loader.cursor, (long long)s->threads, (long long)s->ranks);
    return 0;
}

/* Reads the early-stopping state into s when s->best_params is set and f holds one (else best_step 0). */
static int ckpt_read_best(hid_t f, const char *path, ckpt_state *s) {
    s->best_step = s->evals_since_best = 0;
    if (!s->best_params || H5Lexists(f, "best_params", H5P_DEFAULT) <= 0) return 0;
    int rc = ckpt_read_array(f, path, "best_params", H5T_NATIVE_FLOAT, s->n_params, s->best_params);
    if (rc == 0) rc = ckpt_read_attr(f, path, "best_step", H5T_INTEGER, H5T_NATIVE_INT64, &s->best_step);
    if (rc == 0)
        rc = ckpt_read_attr(f, path, "evals_since_best", H5T_INTEGER, H5T_NATIVE_INT64, &s->evals_since_best);
    if (rc == 0) rc = ckpt_read_attr(f, path, "best_value", H5T_FLOAT, H5T_NATIVE_DOUBLE, &s->best_value);
    if (rc == 0 && (s->best_step < 0 || s->best_step > s->step || s->evals_since_best < 0))
        rc = slim_set_error("%s: best_step %lld / evals_since_best %lld: out of range", path, (long long)s->best_step,
                            (long long)s->evals_since_best);
    return rc;
}

int ckpt_read_state(const char *dir, ckpt_state *s) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    char path[4300];
    struct stat st;
    if (slim_format_path(path, sizeof path, "%s/state.h5", dir) != 0) return -1;
    if (stat(path, &st) != 0) return slim_set_error("%s: cannot read the checkpoint: %s", path, strerror(errno));
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return slim_set_error("%s: not a readable HDF5 file (truncated or corrupt checkpoint)", path);
    int rc = ckpt_read_attrs(f, path, s);
    const struct { const char *name; float *v; } arrays[] = CKPT_ARRAYS(s);
    for (size_t i = 0; i < 3 && rc == 0; i++)
        rc = ckpt_read_array(f, path, arrays[i].name, H5T_NATIVE_FLOAT, s->n_params, arrays[i].v);
    if (rc == 0) rc = ckpt_read_array(f, path, "dataset_sha256", H5T_NATIVE_UINT8, 32, s->dataset_sha256);
    if (rc == 0) rc = ckpt_read_best(f, path, s);
    H5Fclose(f);
    return rc;
}

/* ---------------------------------------------------------------------------------------------- */
/* configs */

/* 1 when key lies under one of the skip key paths. */
static int ckpt_skipped(const char *key, const char *const *skip) {
    for (; *skip; skip++) {
        size_t n = strlen(*skip);
        if (strncmp(key, *skip, n) == 0 && (key[n] == 0 || key[n] == '.')) return 1;
    }
    return 0;
}

/* The error for key: saved value a, current value b (either may be NULL: absent). */
static int ckpt_config_differs(const char *key, const cJSON *a, const cJSON *b, const char *where) {
    char *sa = a ? cJSON_PrintUnformatted(a) : NULL, *sb = b ? cJSON_PrintUnformatted(b) : NULL;
    slim_set_error("%s: this run has %s, the checkpoint %s was made with %s: resuming would not continue the same "
                   "training (set the key back, or train afresh without --resume)",
                   key, sb ? sb : "(absent)", where, sa ? sa : "(absent)");
    cJSON_free(sa);
    cJSON_free(sb);
    return -1;
}

/* Compares a and b (values of key, either may be NULL), recursing into objects. */
static int ckpt_json_diff(const cJSON *a, const cJSON *b, const char *key, const char *const *skip,
                          const char *where) {
    if (key[0] && ckpt_skipped(key, skip)) return 0;
    if (!(a && b && cJSON_IsObject(a) && cJSON_IsObject(b)))
        return a && b && cJSON_Compare(a, b, 1) ? 0 : ckpt_config_differs(key[0] ? key : "(top level)", a, b, where);
    for (int pass = 0; pass < 2; pass++) { /* members of a (against b's), then members only b has */
        const cJSON *m, *obj = pass == 0 ? a : b;
        cJSON_ArrayForEach(m, obj) {
            const cJSON *other = cJSON_GetObjectItemCaseSensitive(pass == 0 ? b : a, m->string);
            if (pass == 1 && other) continue;
            char sub[512];
            snprintf(sub, sizeof sub, "%s%s%s", key, key[0] ? "." : "", m->string);
            if (ckpt_json_diff(pass == 0 ? m : other, pass == 0 ? other : m, sub, skip, where)) return -1;
        }
    }
    return 0;
}

int ckpt_compare_config(const cJSON *saved, const cJSON *now, const char *const *skip, const char *where) {
    return ckpt_json_diff(saved, now, "", skip, where);
}
