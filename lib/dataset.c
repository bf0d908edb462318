/* dataset.c — the tokenized dataset file in HDF5 (schema in dataset.h), through the HDF5 C API.
 *
 * HDF5's own error stack printing is switched off; every failure is reported through slim_set_error()
 * naming the file and the dataset or attribute at fault. Integer datasets of more than a few thousand
 * elements are stored chunked with deflate (level 4); small ones contiguous. */
#define _GNU_SOURCE
#include "dataset.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

#define DATASET_CHUNK 65536
/* Longest fixed-length string attribute or label name read (slimtune writes variable-length ones). */
#define DATASET_MAX_FIXED_STR (16u << 20)
#define DATASET_COMPRESS_MIN 4096
/* deflate expands at most ~1032:1, so n stored elements take at least n / 1032 bytes of the file: a
 * dimension past that is hostile and must not size an allocation */
#define DATASET_MAX_DEFLATE_RATIO 1032

static void dataset_quiet_hdf5(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

void dataset_free(slim_dataset *d) {
    free(d->tokens);
    free(d->loss_mask);
    free(d->offsets);
    free(d->prompt_len);
    free(d->labels);
    free(d->source_line);
    for (int i = 0; i < d->n_labels && d->label_names; i++) free(d->label_names[i]);
    free(d->label_names);
    free(d->model);
    free(d->prompt_template);
    free(d->completion_template);
    free(d->source_file);
    free(d->shape);
    free(d->source_sha256);
    free(d->split);
    free(d->split_rule);
    memset(d, 0, sizeof *d);
}

/* ---- writing ---- */

/* A variable-length UTF-8 string type (caller closes). */
static hid_t dataset_vlen_str_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

/* Writes a 1-D dataset of n elements: file type ftype, memory type mtype. */
static int dataset_write_array(hid_t file, const char *path, const char *name, hid_t ftype, hid_t mtype,
                               int64_t n, const void *data) {
    hsize_t dims[1] = {(hsize_t)n};
    hid_t space = H5Screate_simple(1, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (n >= DATASET_COMPRESS_MIN) {
        hsize_t chunk[1] = {(hsize_t)(n < DATASET_CHUNK ? n : DATASET_CHUNK)};
        H5Pset_chunk(dcpl, 1, chunk);
        H5Pset_shuffle(dcpl);
        H5Pset_deflate(dcpl, 4);
    }
    hid_t ds = H5Dcreate2(file, name, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    int rc = 0;
    if (ds < 0) rc = slim_set_error("%s: cannot create dataset /%s", path, name);
    else if (n > 0 && H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        rc = slim_set_error("%s: cannot write dataset /%s", path, name);
    if (ds >= 0) H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(space);
    return rc;
}

static int dataset_write_attr(hid_t file, const char *path, const char *name, hid_t ftype, hid_t mtype,
                              const void *value) {
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(file, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    int rc = 0;
    if (a < 0 || H5Awrite(a, mtype, value) < 0) rc = slim_set_error("%s: cannot write attribute %s", path, name);
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    return rc;
}

static int dataset_write_str_attr(hid_t file, const char *path, const char *name, const char *value) {
    hid_t t = dataset_vlen_str_type();
    const char *v = value ? value : "";
    int rc = dataset_write_attr(file, path, name, t, t, &v);
    H5Tclose(t);
    return rc;
}

/* Checks the in-memory dataset before writing, so that a file we write always reads back. */
static int dataset_check(const slim_dataset *d, const char *path) {
    if (d->n_examples < 0 || d->n_tokens < 0) return slim_set_error("%s: negative example or token count", path);
    if (d->n_labels < 0) return slim_set_error("%s: negative label count", path);
    if (d->n_examples > 0 && (!d->offsets || !d->prompt_len || !d->labels || !d->source_line))
        return slim_set_error("%s: per-example arrays missing", path);
    if (d->n_tokens > 0 && (!d->tokens || !d->loss_mask)) return slim_set_error("%s: token arrays missing", path);
    if (d->offsets && (d->offsets[0] != 0 || d->offsets[d->n_examples] != d->n_tokens))
        return slim_set_error("%s: offsets do not span the %lld tokens", path, (long long)d->n_tokens);
    for (int i = 0; i < d->n_labels; i++)
        if (!d->label_names || !d->label_names[i]) return slim_set_error("%s: label name %d missing", path, i);
    return 0;
}

int dataset_write(const slim_dataset *d, const char *path) {
    dataset_quiet_hdf5();
    if (dataset_check(d, path)) return -1;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) return slim_set_error("%s: cannot create HDF5 file %s", path, tmp);
    int64_t zero_off = 0;
    const int64_t *offsets = d->offsets ? d->offsets : &zero_off;
    int rc = 0;
    rc = rc ? rc : dataset_write_array(file, path, "tokens", H5T_STD_I32LE, H5T_NATIVE_INT32, d->n_tokens, d->tokens);
    rc = rc ? rc
            : dataset_write_array(file, path, "loss_mask", H5T_STD_U8LE, H5T_NATIVE_UINT8, d->n_tokens, d->loss_mask);
    rc = rc ? rc
            : dataset_write_array(file, path, "offsets", H5T_STD_I64LE, H5T_NATIVE_INT64, d->n_examples + 1, offsets);
    rc = rc ? rc
            : dataset_write_array(file, path, "prompt_len", H5T_STD_I32LE, H5T_NATIVE_INT32, d->n_examples,
                                  d->prompt_len);
    rc = rc ? rc
            : dataset_write_array(file, path, "labels", H5T_STD_I32LE, H5T_NATIVE_INT32, d->n_examples, d->labels);
    rc = rc ? rc
            : dataset_write_array(file, path, "source_line", H5T_STD_I64LE, H5T_NATIVE_INT64, d->n_examples,
                                  d->source_line);
    if (!rc) {
        hid_t st = dataset_vlen_str_type();
        rc = dataset_write_array(file, path, "label_names", st, st, d->n_labels, d->label_names);
        H5Tclose(st);
    }
    int64_t n_ex = d->n_examples, n_tok = d->n_tokens, n_tr = d->n_truncated, n_bad = d->n_bad_rows;
    int32_t msl = d->max_seq_len;
    uint64_t fp = d->tokenizer_fingerprint;
    rc = rc ? rc : dataset_write_attr(file, path, "tokenizer_fingerprint", H5T_STD_U64LE, H5T_NATIVE_UINT64, &fp);
    rc = rc ? rc : dataset_write_str_attr(file, path, "model", d->model);
    rc = rc ? rc : dataset_write_str_attr(file, path, "prompt_template", d->prompt_template);
    rc = rc ? rc : dataset_write_str_attr(file, path, "completion_template", d->completion_template);
    rc = rc ? rc : dataset_write_str_attr(file, path, "source_file", d->source_file);
    rc = rc ? rc : dataset_write_attr(file, path, "max_seq_len", H5T_STD_I32LE, H5T_NATIVE_INT32, &msl);
    rc = rc ? rc : dataset_write_attr(file, path, "n_examples", H5T_STD_I64LE, H5T_NATIVE_INT64, &n_ex);
    rc = rc ? rc : dataset_write_attr(file, path, "n_tokens", H5T_STD_I64LE, H5T_NATIVE_INT64, &n_tok);
    rc = rc ? rc : dataset_write_attr(file, path, "n_truncated", H5T_STD_I64LE, H5T_NATIVE_INT64, &n_tr);
    rc = rc ? rc : dataset_write_attr(file, path, "n_bad_rows", H5T_STD_I64LE, H5T_NATIVE_INT64, &n_bad);
    uint64_t cfp = d->config_fingerprint;
    int64_t sb = d->source_bytes, nr = d->n_rows, nl = d->n_loss_tokens, nch = d->n_chunked;
    rc = rc ? rc : dataset_write_attr(file, path, "config_fingerprint", H5T_STD_U64LE, H5T_NATIVE_UINT64, &cfp);
    rc = rc ? rc : dataset_write_str_attr(file, path, "shape", d->shape);
    rc = rc ? rc : dataset_write_str_attr(file, path, "source_sha256", d->source_sha256);
    rc = rc ? rc : dataset_write_attr(file, path, "source_bytes", H5T_STD_I64LE, H5T_NATIVE_INT64, &sb);
    rc = rc ? rc : dataset_write_str_attr(file, path, "split", d->split);
    rc = rc ? rc : dataset_write_str_attr(file, path, "split_rule", d->split_rule);
    rc = rc ? rc : dataset_write_attr(file, path, "n_rows", H5T_STD_I64LE, H5T_NATIVE_INT64, &nr);
    rc = rc ? rc : dataset_write_attr(file, path, "n_loss_tokens", H5T_STD_I64LE, H5T_NATIVE_INT64, &nl);
    rc = rc ? rc : dataset_write_attr(file, path, "n_chunked", H5T_STD_I64LE, H5T_NATIVE_INT64, &nch);
    if (H5Fclose(file) < 0 && !rc) rc = slim_set_error("%s: cannot close HDF5 file %s", path, tmp);
    if (rc) { unlink(tmp); return -1; }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return slim_set_error("%s: cannot rename from %s: %s", path, tmp, strerror(e));
    }
    return 0;
}

/* ---- reading ---- */

/* Opens /name, checks it is 1-D integer (or string when want_str) of n elements (n < 0: any, stored in *n_out). */
static hid_t dataset_open_1d(hid_t file, const char *path, const char *name, int want_str, int64_t n,
                             int64_t *n_out) {
    if (H5Lexists(file, name, H5P_DEFAULT) <= 0) {
        slim_set_error("%s: dataset /%s is missing (not a slimtune dataset?)", path, name);
        return -1;
    }
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    if (ds < 0) { slim_set_error("%s: cannot open dataset /%s", path, name); return -1; }
    hid_t space = H5Dget_space(ds), type = H5Dget_type(ds);
    int rank = H5Sget_simple_extent_ndims(space);
    hsize_t dims[1] = {0};
    H5T_class_t cls = H5Tget_class(type);
    int ok = 1;
    if (rank != 1) {
        slim_set_error("%s: dataset /%s: expected 1 dimension, found %d", path, name, rank);
        ok = 0;
    } else {
        H5Sget_simple_extent_dims(space, dims, NULL);
        if (want_str && cls != H5T_STRING) {
            slim_set_error("%s: dataset /%s: expected strings", path, name);
            ok = 0;
        } else if (!want_str && cls != H5T_INTEGER) {
            slim_set_error("%s: dataset /%s: expected integers", path, name);
            ok = 0;
        } else if (n >= 0 && (int64_t)dims[0] != n) {
            slim_set_error("%s: dataset /%s: expected %lld elements, found %llu", path, name, (long long)n,
                           (unsigned long long)dims[0]);
            ok = 0;
        }
    }
    H5Tclose(type);
    H5Sclose(space);
    if (!ok) { H5Dclose(ds); return -1; }
    if (n_out) *n_out = (int64_t)dims[0];
    return ds;
}

/* Reads a 1-D integer dataset into a fresh buffer (converted to mtype, esize bytes per element). */
static int dataset_read_ints(hid_t file, const char *path, const char *name, hid_t mtype, size_t esize, int64_t n,
                             int64_t *n_out, void **out) {
    int64_t got = 0;
    hid_t ds = dataset_open_1d(file, path, name, 0, n, &got);
    if (ds < 0) return -1;
    /* a hostile dimension must not size an allocation: the elements must be stored in the file */
    uint64_t stored = H5Dget_storage_size(ds);
    if (got > 0 && (uint64_t)got / DATASET_MAX_DEFLATE_RATIO > stored) {
        H5Dclose(ds);
        return slim_set_error("%s: dataset /%s: %lld elements but only %llu bytes stored (corrupt or truncated file)",
                              path, name, (long long)got, (unsigned long long)stored);
    }
    void *buf = slim_malloc((size_t)got * esize);
    if (got > 0 && H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        free(buf);
        H5Dclose(ds);
        return slim_set_error("%s: dataset /%s: read failed (corrupt file or values out of range)", path, name);
    }
    H5Dclose(ds);
    *out = buf;
    if (n_out) *n_out = got;
    return 0;
}

/* Reads a scalar string attribute stored either as a variable-length or a fixed-length string. */
static char *dataset_read_attr_str(hid_t a, hid_t stored) {
    char *res = NULL;
    if (H5Tis_variable_str(stored) > 0) {
        hid_t mt = dataset_vlen_str_type();
        char *v = NULL;
        if (H5Aread(a, mt, &v) >= 0) {
            res = slim_strdup(v ? v : "");
            H5free_memory(v);
        }
        H5Tclose(mt);
    } else {
        size_t sz = H5Tget_size(stored);
        if (sz == 0 || sz > DATASET_MAX_FIXED_STR) return NULL; /* the caller names the attribute */
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, sz + 1);
        char *v = slim_calloc(sz + 2, 1);
        if (H5Aread(a, mt, v) >= 0) res = v;
        else free(v);
        H5Tclose(mt);
    }
    return res;
}

static int dataset_open_attr(hid_t file, const char *path, const char *name, H5T_class_t cls, hid_t *a_out) {
    if (H5Aexists(file, name) <= 0) return slim_set_error("%s: attribute %s is missing", path, name);
    hid_t a = H5Aopen(file, name, H5P_DEFAULT);
    if (a < 0) return slim_set_error("%s: cannot open attribute %s", path, name);
    hid_t space = H5Aget_space(a), type = H5Aget_type(a);
    int ok = H5Sget_simple_extent_npoints(space) == 1 && H5Tget_class(type) == cls;
    H5Sclose(space);
    H5Tclose(type);
    if (!ok) {
        H5Aclose(a);
        return slim_set_error("%s: attribute %s: expected a single %s", path, name,
                              cls == H5T_STRING ? "string" : "integer");
    }
    *a_out = a;
    return 0;
}

static int dataset_read_int_attr(hid_t file, const char *path, const char *name, hid_t mtype, void *out) {
    hid_t a;
    if (dataset_open_attr(file, path, name, H5T_INTEGER, &a)) return -1;
    int rc = H5Aread(a, mtype, out) < 0 ? slim_set_error("%s: attribute %s: read failed", path, name) : 0;
    H5Aclose(a);
    return rc;
}

static int dataset_read_str_attr(hid_t file, const char *path, const char *name, char **out) {
    hid_t a;
    if (dataset_open_attr(file, path, name, H5T_STRING, &a)) return -1;
    hid_t type = H5Aget_type(a);
    *out = dataset_read_attr_str(a, type);
    H5Tclose(type);
    H5Aclose(a);
    return *out ? 0 : slim_set_error("%s: attribute %s: read failed", path, name);
}

/* Optional attributes: absent -> 0 / "", present but malformed -> an error. */
static int dataset_read_opt_int_attr(hid_t file, const char *path, const char *name, hid_t mtype, void *out) {
    if (H5Aexists(file, name) <= 0) return 0;
    return dataset_read_int_attr(file, path, name, mtype, out);
}

static int dataset_read_opt_str_attr(hid_t file, const char *path, const char *name, char **out) {
    if (H5Aexists(file, name) <= 0) { *out = slim_strdup(""); return 0; }
    return dataset_read_str_attr(file, path, name, out);
}

static int dataset_read_label_names(hid_t file, const char *path, slim_dataset *d) {
    int64_t n = 0;
    hid_t ds = dataset_open_1d(file, path, "label_names", 1, -1, &n);
    if (ds < 0) return -1;
    if (n > 1000000) { H5Dclose(ds); return slim_set_error("%s: dataset /label_names: too many labels", path); }
    hid_t stored = H5Dget_type(ds);
    int rc = 0;
    d->label_names = slim_calloc((size_t)(n ? n : 1), sizeof(char *));
    d->n_labels = (int)n;
    if (n > 0) {
        if (H5Tis_variable_str(stored) > 0) {
            hid_t mt = dataset_vlen_str_type();
            char **v = slim_calloc((size_t)n, sizeof(char *));
            if (H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0) {
                rc = slim_set_error("%s: dataset /label_names: read failed", path);
            } else {
                for (int64_t i = 0; i < n; i++) {
                    d->label_names[i] = slim_strdup(v[i] ? v[i] : "");
                    H5free_memory(v[i]);
                }
            }
            free(v);
            H5Tclose(mt);
        } else {
            size_t sz = H5Tget_size(stored);
            if (sz == 0 || sz > DATASET_MAX_FIXED_STR || (uint64_t)n * (sz + 1) / DATASET_MAX_DEFLATE_RATIO > H5Dget_storage_size(ds)) {
                H5Tclose(stored);
                H5Dclose(ds);
                return slim_set_error("%s: dataset /label_names: %lld fixed strings of %zu bytes do not fit the stored "
                                      "data (corrupt file)", path, (long long)n, sz);
            }
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, sz + 1);
            char *v = slim_calloc((size_t)n, sz + 1);
            if (H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0)
                rc = slim_set_error("%s: dataset /label_names: read failed", path);
            else
                for (int64_t i = 0; i < n; i++) d->label_names[i] = slim_strdup(v + i * (sz + 1));
            free(v);
            H5Tclose(mt);
        }
    }
    H5Tclose(stored);
    H5Dclose(ds);
    return rc;
}

/* Checks the invariants listed in dataset.h. */
static int dataset_validate(const slim_dataset *d, const char *path) {
    if (d->offsets[0] != 0) return slim_set_error("%s: dataset /offsets: offsets[0] is %lld, expected 0", path,
                                                  (long long)d->offsets[0]);
    for (int64_t e = 0; e < d->n_examples; e++) {
        int64_t a = d->offsets[e], b = d->offsets[e + 1];
        if (b <= a)
            return slim_set_error("%s: dataset /offsets: example %lld is empty or offsets decrease (%lld -> %lld)",
                                  path, (long long)e, (long long)a, (long long)b);
        if (d->prompt_len[e] < 0 || d->prompt_len[e] > b - a)
            return slim_set_error("%s: dataset /prompt_len: example %lld: %d outside [0, %lld]", path, (long long)e,
                                  d->prompt_len[e], (long long)(b - a));
        if (d->labels[e] < -1 || d->labels[e] >= d->n_labels)
            return slim_set_error("%s: dataset /labels: example %lld: label %d outside [-1, %d)", path,
                                  (long long)e, d->labels[e], d->n_labels);
    }
    if (d->offsets[d->n_examples] != d->n_tokens)
        return slim_set_error("%s: dataset /offsets: last offset %lld != %lld tokens", path,
                              (long long)d->offsets[d->n_examples], (long long)d->n_tokens);
    for (int64_t i = 0; i < d->n_tokens; i++) {
        if (d->tokens[i] < 0)
            return slim_set_error("%s: dataset /tokens: token %lld is negative (%d)", path, (long long)i,
                                  d->tokens[i]);
        if (d->loss_mask[i] > 1)
            return slim_set_error("%s: dataset /loss_mask: element %lld is %d, expected 0 or 1", path, (long long)i,
                                  d->loss_mask[i]);
    }
    if (d->max_seq_len < 1) return slim_set_error("%s: attribute max_seq_len: %d < 1", path, d->max_seq_len);
    return 0;
}

/* Refuses a file holding a global heap collection (where HDF5 keeps variable-length strings: the label
 * names and string attributes) whose object list does not advance: HDF5 1.10's collection parser
 * (H5HG__cache_heap_deserialize) loops forever on a free-space object of size 0, so such a file must
 * never reach H5Fopen; nor one whose object runs past the collection, which H5HG_read copies out of
 * bounds. Layout (HDF5 file format spec, "Global Heap"): "GCOL", version 1, 3 reserved
 * bytes, u64 collection size, then objects: u16 index, u16 references, 4 reserved, u64 size, data padded
 * to 8 bytes; index 0 is the free space, whose size covers the rest of the collection. Every "GCOL"
 * candidate is walked as HDF5 would walk it (8-byte lengths, the only size slimtune writes). */
static int dataset_check_global_heaps(const char *path, int fd, size_t size) {
    if (size < 16) return 0;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) return slim_set_error("%s: cannot map: %s", path, strerror(errno));
    const uint8_t *b = map, *at = b;
    int rc = 0;
    while (!rc && (at = memmem(at, size - (size_t)(at - b), "GCOL", 4)) != NULL) {
        size_t off = (size_t)(at - b);
        uint64_t csize = 0;
        if (off + 16 <= size && at[4] == 1) {
            memcpy(&csize, at + 8, 8);
            uint64_t end = csize < size - off ? off + csize : size, p = off + 16;
            while (p + 16 <= end) {
                uint16_t idx;
                uint64_t osize, need;
                memcpy(&idx, b + p, 2);
                memcpy(&osize, b + p + 8, 8);
                need = idx > 0 ? (osize > UINT64_MAX - 23 ? UINT64_MAX : 16 + ((osize + 7) & ~(uint64_t)7)) : osize;
                if (need == 0) {
                    rc = slim_set_error("%s: HDF5 global heap collection at offset %zu: object at offset %llu has size 0 "
                                        "(corrupt file: the variable-length strings cannot be read)", path, off,
                                        (unsigned long long)p);
                    break;
                }
                if (need > end - p) {
                    /* HDF5 1.10 copies such an object from past the collection (H5HG_read) */
                    rc = slim_set_error("%s: HDF5 global heap collection at offset %zu: object at offset %llu of %llu "
                                        "bytes runs past the collection's end (corrupt file)", path, off,
                                        (unsigned long long)p, (unsigned long long)osize);
                    break;
                }
                p += need;
            }
        }
        at += 4;
        if ((size_t)(at - b) >= size) break;
    }
    munmap(map, size);
    return rc;
}

int dataset_read(slim_dataset *d, const char *path) {
    memset(d, 0, sizeof *d);
    dataset_quiet_hdf5();
    struct stat st;
    if (stat(path, &st) != 0) return slim_set_error("%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return slim_set_error("%s: not a regular file", path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return slim_set_error("%s: cannot open: %s", path, strerror(errno));
    int heap_rc = dataset_check_global_heaps(path, fd, (size_t)st.st_size);
    close(fd);
    if (heap_rc) return -1;
    if (H5Fis_hdf5(path) <= 0) return slim_set_error("%s: not an HDF5 file", path);
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) return slim_set_error("%s: cannot open HDF5 file (corrupt or truncated?)", path);
    int rc = 0;
    int64_t n_tok = 0, n_off = 0, n_ex_attr = 0, n_tok_attr = 0;
    void *p;
    if (!rc) { rc = dataset_read_ints(file, path, "tokens", H5T_NATIVE_INT32, 4, -1, &n_tok, &p); if (!rc) d->tokens = p; }
    d->n_tokens = n_tok;
    if (!rc) { rc = dataset_read_ints(file, path, "loss_mask", H5T_NATIVE_UINT8, 1, n_tok, NULL, &p); if (!rc) d->loss_mask = p; }
    if (!rc) { rc = dataset_read_ints(file, path, "offsets", H5T_NATIVE_INT64, 8, -1, &n_off, &p); if (!rc) d->offsets = p; }
    if (!rc && n_off < 1) rc = slim_set_error("%s: dataset /offsets: empty, expected n_examples + 1 elements", path);
    d->n_examples = n_off > 0 ? n_off - 1 : 0;
    int64_t n_ex = d->n_examples;
    if (!rc) { rc = dataset_read_ints(file, path, "prompt_len", H5T_NATIVE_INT32, 4, n_ex, NULL, &p); if (!rc) d->prompt_len = p; }
    if (!rc) { rc = dataset_read_ints(file, path, "labels", H5T_NATIVE_INT32, 4, n_ex, NULL, &p); if (!rc) d->labels = p; }
    if (!rc) { rc = dataset_read_ints(file, path, "source_line", H5T_NATIVE_INT64, 8, n_ex, NULL, &p); if (!rc) d->source_line = p; }
    if (!rc) rc = dataset_read_label_names(file, path, d);
    if (!rc) rc = dataset_read_int_attr(file, path, "tokenizer_fingerprint", H5T_NATIVE_UINT64, &d->tokenizer_fingerprint);
    if (!rc) rc = dataset_read_str_attr(file, path, "model", &d->model);
    if (!rc) rc = dataset_read_str_attr(file, path, "prompt_template", &d->prompt_template);
    if (!rc) rc = dataset_read_str_attr(file, path, "completion_template", &d->completion_template);
    if (!rc) rc = dataset_read_str_attr(file, path, "source_file", &d->source_file);
    if (!rc) rc = dataset_read_int_attr(file, path, "max_seq_len", H5T_NATIVE_INT32, &d->max_seq_len);
    if (!rc) rc = dataset_read_int_attr(file, path, "n_examples", H5T_NATIVE_INT64, &n_ex_attr);
    if (!rc) rc = dataset_read_int_attr(file, path, "n_tokens", H5T_NATIVE_INT64, &n_tok_attr);
    if (!rc) rc = dataset_read_int_attr(file, path, "n_truncated", H5T_NATIVE_INT64, &d->n_truncated);
    if (!rc) rc = dataset_read_int_attr(file, path, "n_bad_rows", H5T_NATIVE_INT64, &d->n_bad_rows);
    /* provenance attributes: optional (older files lack them) */
    if (!rc) rc = dataset_read_opt_int_attr(file, path, "config_fingerprint", H5T_NATIVE_UINT64, &d->config_fingerprint);
    if (!rc) rc = dataset_read_opt_str_attr(file, path, "shape", &d->shape);
    if (!rc) rc = dataset_read_opt_str_attr(file, path, "source_sha256", &d->source_sha256);
    if (!rc) rc = dataset_read_opt_int_attr(file, path, "source_bytes", H5T_NATIVE_INT64, &d->source_bytes);
    if (!rc) rc = dataset_read_opt_str_attr(file, path, "split", &d->split);
    if (!rc) rc = dataset_read_opt_str_attr(file, path, "split_rule", &d->split_rule);
    if (!rc) rc = dataset_read_opt_int_attr(file, path, "n_rows", H5T_NATIVE_INT64, &d->n_rows);
    if (!rc) rc = dataset_read_opt_int_attr(file, path, "n_loss_tokens", H5T_NATIVE_INT64, &d->n_loss_tokens);
    if (!rc) rc = dataset_read_opt_int_attr(file, path, "n_chunked", H5T_NATIVE_INT64, &d->n_chunked);
    if (!rc && n_ex_attr != d->n_examples)
        rc = slim_set_error("%s: attribute n_examples: %lld but /offsets holds %lld examples", path,
                            (long long)n_ex_attr, (long long)d->n_examples);
    if (!rc && n_tok_attr != d->n_tokens)
        rc = slim_set_error("%s: attribute n_tokens: %lld but /tokens holds %lld", path, (long long)n_tok_attr,
                            (long long)d->n_tokens);
    if (!rc) rc = dataset_validate(d, path);
    H5Fclose(file);
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", slim_last_error());
        dataset_free(d);
        slim_set_error("%s", msg);
        return -1;
    }
    return 0;
}

int dataset_check_tokenizer(const slim_dataset *d, const char *path, uint64_t fingerprint, const char *model_path) {
    if (d->tokenizer_fingerprint == fingerprint) return 0;
    return slim_set_error("%s: tokenizer_fingerprint %016llx does not match the tokenizer of %s (%016llx): the "
                          "dataset was prepared for another model; run `slimtune data prepare` again",
                          path, (unsigned long long)d->tokenizer_fingerprint, model_path,
                          (unsigned long long)fingerprint);
}
