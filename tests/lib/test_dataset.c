/* test_dataset.c — HDF5 dataset round trip (small and compressed sizes), and clear errors for a missing
 * file, a non-HDF5 file, an HDF5 file lacking a dataset, and a file whose offsets are corrupt. */
#define _GNU_SOURCE
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "dataset.h"
#include "testutil.h"

static char tmpdir[256];

/* A dataset of n_ex examples with lengths 3 + e % 5; token values depend on position. */
static void make_dataset(slim_dataset *d, int64_t n_ex) {
    memset(d, 0, sizeof *d);
    d->n_examples = n_ex;
    d->offsets = slim_malloc((size_t)(n_ex + 1) * sizeof(int64_t));
    d->prompt_len = slim_malloc((size_t)n_ex * sizeof(int32_t));
    d->labels = slim_malloc((size_t)n_ex * sizeof(int32_t));
    d->source_line = slim_malloc((size_t)n_ex * sizeof(int64_t));
    d->offsets[0] = 0;
    for (int64_t e = 0; e < n_ex; e++) {
        int64_t len = 3 + e % 5;
        d->offsets[e + 1] = d->offsets[e] + len;
        d->prompt_len[e] = (int32_t)(len - 2);
        d->labels[e] = (int32_t)(e % 3) - 1; /* -1, 0, 1 */
        d->source_line[e] = 2 + 3 * e;
    }
    d->n_tokens = d->offsets[n_ex];
    d->tokens = slim_malloc((size_t)d->n_tokens * sizeof(int32_t));
    d->loss_mask = slim_malloc((size_t)d->n_tokens);
    for (int64_t e = 0; e < n_ex; e++)
        for (int64_t i = d->offsets[e]; i < d->offsets[e + 1]; i++) {
            d->tokens[i] = (int32_t)((i * 7919) % 32000);
            d->loss_mask[i] = i - d->offsets[e] >= d->prompt_len[e];
        }
    d->n_labels = 2;
    d->label_names = slim_malloc(2 * sizeof(char *));
    d->label_names[0] = slim_strdup("ham");
    d->label_names[1] = slim_strdup("sp\xc3\xa4m"); /* UTF-8 */
    d->tokenizer_fingerprint = 0xfedcba9876543210ULL;
    d->model = slim_strdup("models/x.gguf");
    d->prompt_template = slim_strdup("Text: {text}\nLabel:");
    d->completion_template = slim_strdup(" {label}");
    d->source_file = slim_strdup("data/tr\xc3\xa4in.csv");
    d->max_seq_len = 128;
    d->n_truncated = 5;
    d->n_bad_rows = 2;
    d->shape = slim_strdup("text_label");
    d->source_sha256 = slim_strdup("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    d->source_bytes = 123456789012LL;
    d->config_fingerprint = 0x0123456789abcdefULL;
    d->split = slim_strdup("test");
    d->split_rule = slim_strdup("hash: seed=7 test_fraction=0.25 stratified=label");
    d->n_rows = n_ex + 2;
    d->n_loss_tokens = 2 * n_ex;
    d->n_chunked = 3;
}

static void test_round_trip(int64_t n_ex) {
    slim_dataset a, b;
    make_dataset(&a, n_ex);
    char path[512];
    snprintf(path, sizeof path, "%s/rt%lld.h5", tmpdir, (long long)n_ex);
    int rc = dataset_write(&a, path);
    CHECK(rc == 0, "write %s: %s", path, slim_last_error());
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    CHECK(access(tmp, F_OK) != 0, "temporary file %s removed", tmp);
    rc = dataset_read(&b, path);
    CHECK(rc == 0, "read %s: %s", path, slim_last_error());
    if (rc) { dataset_free(&a); return; }
    CHECK(b.n_examples == a.n_examples && b.n_tokens == a.n_tokens, "counts %lld %lld", (long long)b.n_examples,
          (long long)b.n_tokens);
    CHECK(memcmp(a.tokens, b.tokens, (size_t)a.n_tokens * 4) == 0, "tokens");
    CHECK(memcmp(a.loss_mask, b.loss_mask, (size_t)a.n_tokens) == 0, "loss_mask");
    CHECK(memcmp(a.offsets, b.offsets, (size_t)(a.n_examples + 1) * 8) == 0, "offsets");
    CHECK(memcmp(a.prompt_len, b.prompt_len, (size_t)a.n_examples * 4) == 0, "prompt_len");
    CHECK(memcmp(a.labels, b.labels, (size_t)a.n_examples * 4) == 0, "labels");
    CHECK(memcmp(a.source_line, b.source_line, (size_t)a.n_examples * 8) == 0, "source_line");
    CHECK(b.n_labels == 2 && strcmp(b.label_names[0], "ham") == 0 && strcmp(b.label_names[1], "sp\xc3\xa4m") == 0,
          "label_names");
    CHECK(b.tokenizer_fingerprint == a.tokenizer_fingerprint, "fingerprint %llx",
          (unsigned long long)b.tokenizer_fingerprint);
    CHECK(strcmp(b.model, a.model) == 0 && strcmp(b.prompt_template, a.prompt_template) == 0 &&
              strcmp(b.completion_template, a.completion_template) == 0 && strcmp(b.source_file, a.source_file) == 0,
          "string attributes");
    CHECK(b.max_seq_len == 128 && b.n_truncated == 5 && b.n_bad_rows == 2, "int attributes");
    CHECK(strcmp(b.shape, a.shape) == 0 && strcmp(b.source_sha256, a.source_sha256) == 0 &&
              strcmp(b.split, a.split) == 0 && strcmp(b.split_rule, a.split_rule) == 0,
          "provenance strings");
    CHECK(b.source_bytes == a.source_bytes && b.config_fingerprint == a.config_fingerprint && b.n_rows == a.n_rows &&
              b.n_loss_tokens == a.n_loss_tokens && b.n_chunked == a.n_chunked,
          "provenance numbers");
    dataset_free(&a);
    dataset_free(&b);
    CHECK(b.tokens == NULL && b.n_examples == 0, "dataset_free clears");
}

/* Writes a file with h5 C API lacking some datasets, or with a bad value; checks the error. */
static void test_bad_files(void) {
    slim_dataset d;
    char path[512];

    snprintf(path, sizeof path, "%s/none.h5", tmpdir);
    CHECK(dataset_read(&d, path) == -1, "missing file fails");
    CHECK(strstr(slim_last_error(), path) && strstr(slim_last_error(), "cannot open"), "missing: %s",
          slim_last_error());

    snprintf(path, sizeof path, "%s/text.h5", tmpdir);
    FILE *f = fopen(path, "wb");
    fputs("this is not HDF5 at all\n", f);
    fclose(f);
    CHECK(dataset_read(&d, path) == -1, "text file fails");
    CHECK(strstr(slim_last_error(), path) && strstr(slim_last_error(), "not an HDF5 file"), "not hdf5: %s",
          slim_last_error());

    snprintf(path, sizeof path, "%s/empty.h5", tmpdir);
    f = fopen(path, "wb");
    fclose(f);
    CHECK(dataset_read(&d, path) == -1, "empty file fails");
    CHECK(strstr(slim_last_error(), "not an HDF5 file") != NULL, "empty: %s", slim_last_error());

    /* a valid file, then remove /labels with the HDF5 API */
    slim_dataset a;
    make_dataset(&a, 10);
    snprintf(path, sizeof path, "%s/nolabels.h5", tmpdir);
    CHECK(dataset_write(&a, path) == 0, "write: %s", slim_last_error());
    hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    CHECK(file >= 0 && H5Ldelete(file, "labels", H5P_DEFAULT) >= 0, "delete /labels");
    H5Fclose(file);
    CHECK(dataset_read(&d, path) == -1, "missing dataset fails");
    CHECK(strstr(slim_last_error(), path) && strstr(slim_last_error(), "/labels") &&
              strstr(slim_last_error(), "missing"),
          "missing dataset: %s", slim_last_error());

    /* corrupt offsets: not monotone */
    a.offsets[3] = a.offsets[5];
    snprintf(path, sizeof path, "%s/badoff.h5", tmpdir);
    CHECK(dataset_write(&a, path) == 0, "write: %s", slim_last_error());
    CHECK(dataset_read(&d, path) == -1, "bad offsets fail");
    CHECK(strstr(slim_last_error(), "/offsets") != NULL, "bad offsets: %s", slim_last_error());
    dataset_free(&a);

    /* label out of range, and a missing attribute */
    make_dataset(&a, 4);
    a.labels[1] = 2;
    snprintf(path, sizeof path, "%s/badlabel.h5", tmpdir);
    CHECK(dataset_write(&a, path) == 0, "write: %s", slim_last_error());
    CHECK(dataset_read(&d, path) == -1, "bad label fails");
    CHECK(strstr(slim_last_error(), "/labels") && strstr(slim_last_error(), "example 1"), "bad label: %s",
          slim_last_error());
    a.labels[1] = 0;
    CHECK(dataset_write(&a, path) == 0, "write: %s", slim_last_error());
    file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    CHECK(file >= 0 && H5Adelete(file, "tokenizer_fingerprint") >= 0, "delete attribute");
    H5Fclose(file);
    CHECK(dataset_read(&d, path) == -1, "missing attribute fails");
    CHECK(strstr(slim_last_error(), "tokenizer_fingerprint") != NULL, "missing attr: %s", slim_last_error());

    /* the provenance attributes are optional: a file without them (written before they existed) reads
     * with ""/0, and one with a malformed one fails naming it */
    CHECK(dataset_write(&a, path) == 0, "write: %s", slim_last_error());
    file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    const char *opt[] = {"config_fingerprint", "shape", "source_sha256", "source_bytes", "split", "split_rule",
                         "n_rows", "n_loss_tokens", "n_chunked"};
    int del = file >= 0;
    for (int i = 0; i < 9 && del; i++) del = H5Adelete(file, opt[i]) >= 0;
    CHECK(del, "delete the provenance attributes");
    H5Fclose(file);
    CHECK(dataset_read(&d, path) == 0, "a file without provenance attributes reads: %s", slim_last_error());
    if (d.tokens) {
        CHECK(strcmp(d.shape, "") == 0 && strcmp(d.source_sha256, "") == 0 && d.config_fingerprint == 0 &&
                  d.n_rows == 0 && d.n_chunked == 0,
              "absent provenance reads as \"\"/0");
        dataset_free(&d);
    }
    file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t at = H5Acreate2(file, "n_rows", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    double bogus = 1.5;
    CHECK(at >= 0 && H5Awrite(at, H5T_NATIVE_DOUBLE, &bogus) >= 0, "write a float n_rows");
    H5Aclose(at);
    H5Sclose(sp);
    H5Fclose(file);
    CHECK(dataset_read(&d, path) == -1 && strstr(slim_last_error(), "n_rows"), "malformed n_rows: %s", slim_last_error());

    /* a truncated file */
    CHECK(dataset_write(&a, path) == 0, "write: %s", slim_last_error());
    struct stat st;
    stat(path, &st);
    CHECK(truncate(path, st.st_size / 2) == 0, "truncate");
    CHECK(dataset_read(&d, path) == -1, "truncated file fails: %s", path);
    CHECK(strstr(slim_last_error(), path) != NULL, "truncated: %s", slim_last_error());
    dataset_free(&a);

    /* writing into a missing directory fails cleanly */
    make_dataset(&a, 2);
    snprintf(path, sizeof path, "%s/no/such/dir/x.h5", tmpdir);
    CHECK(dataset_write(&a, path) == -1, "write into a missing directory fails");
    CHECK(strstr(slim_last_error(), path) != NULL, "names the path: %s", slim_last_error());
    dataset_free(&a);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/slimtune-test-dataset-XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    test_round_trip(1);
    test_round_trip(7);
    test_round_trip(20000); /* > DATASET_COMPRESS_MIN tokens: chunked + deflate */
    test_bad_files();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmpdir);
    return tu_finish("test_dataset");
}
