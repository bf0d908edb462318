/* harness.h — the per-target entry code of the libFuzzer targets (tests/fuzz/fuzz_*.c) and of their
 * regression test (tests/fuzz/test_fuzz_regress.c), so that a saved crashing input replays through
 * exactly the code the fuzzer ran.
 *
 * Each fz_<target>(data, n) writes the input where the parser expects a user's file (a file in a
 * private temporary directory: the parsers take paths, and some look at the name or the directory),
 * runs the real open path, frees everything on success and on error, and returns 0 (parsed) or -1
 * (rejected with an error message). Anything else — a crash, a sanitizer report, a leak, an
 * allocation far beyond the input's size, a hang — is a defect.
 *
 * Inputs that hold several files (fz_hf) or choose a mode (fz_csv, fz_jsonl) are laid out as
 * described at each function. Targets: gguf, lora, safetensors, hf, tokenizer, config, csv, jsonl,
 * dataset. */
#ifndef SLIM_FUZZ_HARNESS_H
#define SLIM_FUZZ_HARNESS_H

#define _GNU_SOURCE
#include <dirent.h>
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "config.h"
#include "dataset.h"
#include "format/gguf.h"
#include "format/hf.h"
#include "model/model.h"
#include "format/safetensors.h"
#include "tokenizer/tokenizer.h"
#include "../../data/example.h"
#include "../../data/reader.h"

/* Separator between config.json and model.safetensors in an fz_hf input. */
#define FZ_HF_SEP "\n--SAFETENSORS--\n"

static char fz_dir_buf[64];

static void fz_cleanup(void) {
    if (!fz_dir_buf[0]) return;
    DIR *d = opendir(fz_dir_buf);
    if (d) {
        struct dirent *e;
        char p[384];
        while ((e = readdir(d)))
            if (e->d_name[0] != '.') {
                snprintf(p, sizeof p, "%s/%s", fz_dir_buf, e->d_name);
                unlink(p);
            }
        closedir(d);
    }
    rmdir(fz_dir_buf);
}

/* The private temporary directory of this process (created on first use, removed at exit). */
static const char *fz_dir(void) {
    if (!fz_dir_buf[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(fz_dir_buf, sizeof fz_dir_buf, "%.40s/slimfuzz.XXXXXX", base && base[0] ? base : "/tmp");
        if (!mkdtemp(fz_dir_buf)) { perror("fuzz harness: mkdtemp"); abort(); }
        atexit(fz_cleanup);
    }
    return fz_dir_buf;
}

/* Writes n bytes to <fz_dir>/name and returns that path (a static buffer per call site is not
 * needed: the caller passes out, of capacity 256). */
static const char *fz_put(const char *name, const uint8_t *data, size_t n, char out[256]) {
    snprintf(out, 256, "%s/%s", fz_dir(), name);
    FILE *f = fopen(out, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) { perror(out); abort(); }
    return out;
}

static void fz_remove(const char *name) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", fz_dir(), name);
    unlink(p);
}

/* On a successful tokenizer build, encode (and decode) a slice of the input: exercises the tables the
 * loader built from hostile data. */
static void fz_exercise_tokenizer(const tokenizer *t, const uint8_t *data, size_t n) {
    size_t len = n < 256 ? n : 256;
    int32_t ids[1024];
    int flags = (int)(n & 7);
    if (flags & TOK_ADD_BOS && t->bos_id < 0) flags &= ~TOK_ADD_BOS;
    int k = tokenizer_encode_ex(t, (const char *)data + (n - len), len, flags, ids, 1024, NULL);
    char buf[64];
    for (int i = 0; i < k && i < 1024; i++) tokenizer_decode_token_ex(t, ids[i], 1, buf, sizeof buf);
}

/* GGUF base model: the real open path model_load_quant() (gguf_open, config, tokenizer, weights), and
 * the vocabulary alone through gguf_open + tokenizer_init_gguf (a vocabulary GGUF has no weights). */
static int fz_gguf(const uint8_t *data, size_t n) {
    char p[256];
    fz_put("model.gguf", data, n, p);
    gguf_file g;
    int rc = gguf_open(&g, p);
    if (rc == 0) {
        tokenizer t;
        if (tokenizer_init_gguf(&t, &g) == 0) {
            fz_exercise_tokenizer(&t, data, n);
            tokenizer_free(&t);
        }
        gguf_close(&g);
    }
    model m;
    rc = model_load_quant(&m, p, (int)(n % QUANT_COUNT));
    if (rc == 0) model_free(&m);
    return rc;
}

/* The base model the LoRA target loads adapters against: $SLIM_SHARED/models/stories260K.gguf,
 * loaded once per process (never freed: it lives as long as the fuzzer). */
static model *fz_lora_base(void) {
    static model m;
    static int loaded;
    if (!loaded) {
        char p[4096];
        snprintf(p, sizeof p, "%s/models/stories260K.gguf", slim_shared_dir());
        if (model_load(&m, p) != 0) {
            fprintf(stderr, "fuzz harness: cannot load the LoRA base model: %s\n", slim_last_error());
            abort();
        }
        loaded = 1;
    }
    return &m;
}

/* LoRA adapter GGUF: lora_load() against stories260K. */
static int fz_lora(const uint8_t *data, size_t n) {
    const model *m = fz_lora_base();
    char p[256];
    fz_put("adapter.gguf", data, n, p);
    lora_adapter a;
    int rc = lora_load(&a, m, p);
    if (rc == 0) lora_free(&a);
    return rc;
}

/* Writes a seed adapter of stories260K (rank 2, every target) to path. */
static int fz_lora_seed(const char *path) {
    const model *m = fz_lora_base();
    int targets[LORA_N_TARGETS];
    for (int t = 0; t < LORA_N_TARGETS; t++) targets[t] = t % 2 == 0;
    lora_adapter a;
    lora_init(&a, &m->cfg, 2, 4.0f, targets, 7);
    int rc = lora_save(&a, m, path);
    lora_free(&a);
    return rc;
}

/* A safetensors file alone: safetensors_open(). */
static int fz_safetensors(const uint8_t *data, size_t n) {
    char p[256];
    fz_put("model.safetensors", data, n, p);
    safetensors_file f;
    int rc = safetensors_open(&f, p);
    if (rc == 0) {
        safetensors_find_tensor(&f, "model.embed_tokens.weight");
        safetensors_find_meta(&f, "format");
        safetensors_close(&f);
    }
    return rc;
}

/* A Hugging Face model directory: the input is config.json, FZ_HF_SEP, then model.safetensors (no
 * separator: config.json only, and no weights file). Runs model_load_quant() on the directory, which
 * goes through hf_open() (and tokenizer_init_hf(), absent here). */
static int fz_hf(const uint8_t *data, size_t n) {
    char p[256];
    const uint8_t *sep = memmem(data, n, FZ_HF_SEP, strlen(FZ_HF_SEP));
    size_t cfg_n = sep ? (size_t)(sep - data) : n;
    fz_put("config.json", data, cfg_n, p);
    if (sep) {
        size_t off = cfg_n + strlen(FZ_HF_SEP);
        fz_put("model.safetensors", data + off, n - off, p);
    } else {
        fz_remove("model.safetensors");
    }
    model m;
    int rc = model_load_quant(&m, fz_dir(), (int)(n % QUANT_COUNT));
    if (rc == 0) model_free(&m);
    fz_remove("config.json");
    fz_remove("model.safetensors");
    return rc;
}

/* A Hugging Face tokenizer.json: tokenizer_init_hf() on the file, then an encode of part of the input. */
static int fz_tokenizer(const uint8_t *data, size_t n) {
    char p[256];
    fz_put("tokenizer.json", data, n, p);
    tokenizer t;
    int rc = tokenizer_init_hf(&t, p);
    if (rc == 0) {
        fz_exercise_tokenizer(&t, data, n);
        tokenizer_free(&t);
    }
    return rc;
}

/* The JSON run configuration: config_load() (and config_save() of what it accepted). */
static int fz_config(const uint8_t *data, size_t n) {
    char p[256], q[300];
    fz_put("run.json", data, n, p);
    slim_config c;
    int rc = config_load(&c, p);
    if (rc == 0) {
        snprintf(q, sizeof q, "%s/saved.json", fz_dir());
        config_save(&c, q);
        unlink(q);
    }
    config_free(&c);
    return rc;
}

/* Reads every row of a data file with the given options, as data prepare / validate do. */
static int fz_read_rows(const char *path, const reader_opts *o) {
    data_reader r;
    int rc = reader_open_ex(&r, path, o);
    if (rc != 0) return rc;
    const reader_row *row;
    while (reader_next(&r, &row)) {
        if (row->reason != READ_OK) continue;
        size_t kn;
        free(reader_example_key(row, r.shape, &kn));
        free(reader_example_target(row, r.shape));
    }
    reader_free(&r);
    return 0;
}

/* Mode byte of fz_csv / fz_jsonl: shape = b % 6 (0 auto, then text_label, prompt_completion, alpaca,
 * chat, text), (b / 6) % 2 replace invalid UTF-8, (b / 12) % 2 a declared label set {ham, spam},
 * (b / 24) % 3 the format for fz_csv (csv, tsv, auto by content). */
static void fz_opts(uint8_t b, reader_opts *o, const char *format) {
    static const char *const labels[2] = { "ham", "spam" };
    memset(o, 0, sizeof *o);
    o->format = format;
    o->shape = b % 6;
    o->replace_bad_utf8 = (b / 6) % 2;
    if ((b / 12) % 2) { o->labels = labels; o->n_labels = 2; }
}

/* CSV / TSV rows: the first input byte is the mode (fz_opts), the rest the file. */
static int fz_csv(const uint8_t *data, size_t n) {
    if (n < 1) return -1;
    static const char *const formats[3] = { "csv", "tsv", "auto" };
    reader_opts o;
    fz_opts(data[0], &o, formats[(data[0] / 24) % 3]);
    char p[256];
    fz_put("rows.dat", data + 1, n - 1, p);
    return fz_read_rows(p, &o);
}

/* JSONL rows: the first input byte is the mode (fz_opts), the rest the file. */
static int fz_jsonl(const uint8_t *data, size_t n) {
    if (n < 1) return -1;
    reader_opts o;
    fz_opts(data[0], &o, "jsonl");
    char p[256];
    fz_put("rows.jsonl", data + 1, n - 1, p);
    return fz_read_rows(p, &o);
}

/* The HDF5 dataset reader: dataset_read(). */
static int fz_dataset(const uint8_t *data, size_t n) {
    char p[256];
    fz_put("data.h5", data, n, p);
    slim_dataset d;
    int rc = dataset_read(&d, p);
    if (rc == 0) dataset_free(&d);
    H5garbage_collect(); /* HDF5's free lists would otherwise look like growth to the leak check */
    return rc;
}

/* Writes a small seed dataset (3 examples, 2 labels) to path. */
static int fz_dataset_seed(const char *path) {
    static int32_t tokens[] = { 1, 5, 6, 7, 9, 1, 8, 9, 1, 4, 4, 4, 10 };
    static uint8_t mask[] = { 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 1 };
    static int64_t offsets[] = { 0, 5, 8, 13 };
    static int32_t prompt_len[] = { 4, 2, 4 };
    static int32_t labels[] = { 0, 1, 0 };
    static int64_t lines[] = { 2, 3, 5 };
    static char l0[] = "ham", l1[] = "spam";
    char *names[2] = { l0, l1 };
    char model[] = "m.gguf", pt[] = "Text: {text}\nLabel:", ct[] = " {label}", src[] = "train.csv",
         shape[] = "text_label", sha[] = "00", split[] = "train", rule[] = "file";
    slim_dataset d = {
        .n_examples = 3, .n_tokens = 13, .tokens = tokens, .loss_mask = mask, .offsets = offsets,
        .prompt_len = prompt_len, .labels = labels, .source_line = lines, .n_labels = 2, .label_names = names,
        .tokenizer_fingerprint = 42, .model = model, .prompt_template = pt, .completion_template = ct,
        .source_file = src, .max_seq_len = 16, .shape = shape, .source_sha256 = sha, .source_bytes = 99,
        .config_fingerprint = 7, .split = split, .split_rule = rule, .n_rows = 4, .n_loss_tokens = 3,
    };
    return dataset_write(&d, path);
}

/* One target of the table below. */
typedef struct fz_target {
    const char *name;
    int (*run)(const uint8_t *data, size_t n);
    int (*seed)(const char *path); /* writes a generated seed file, or NULL */
} fz_target;

static const fz_target fz_targets[] = {
    { "gguf", fz_gguf, NULL },
    { "lora", fz_lora, fz_lora_seed },
    { "safetensors", fz_safetensors, NULL },
    { "hf", fz_hf, NULL },
    { "tokenizer", fz_tokenizer, NULL },
    { "config", fz_config, NULL },
    { "csv", fz_csv, NULL },
    { "jsonl", fz_jsonl, NULL },
    { "dataset", fz_dataset, fz_dataset_seed },
};
#define FZ_N_TARGETS (sizeof fz_targets / sizeof fz_targets[0])

/* The target called name, or NULL. */
static inline const fz_target *fz_find_target(const char *name) {
    for (size_t i = 0; i < FZ_N_TARGETS; i++)
        if (!strcmp(fz_targets[i].name, name)) return &fz_targets[i];
    return NULL;
}

/* Defines the libFuzzer entry points of the target called name. With SLIM_FUZZ_SEED=path in the
 * environment, the binary only writes the target's generated seed to path and exits (scripts/run-fuzz
 * builds seed corpora that way). */
#define FZ_LIBFUZZER_TARGET(name)                                                                  \
    int LLVMFuzzerInitialize(int *argc, char ***argv);                                             \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n);                                     \
    int LLVMFuzzerInitialize(int *argc, char ***argv) {                                            \
        (void)argc; (void)argv;                                                                    \
        const fz_target *t = fz_find_target(name);                                                 \
        const char *seed = getenv("SLIM_FUZZ_SEED");                                               \
        if (!t) abort();                                                                           \
        if (seed && seed[0]) {                                                                     \
            int rc = t->seed ? t->seed(seed) : 0;                                                  \
            if (rc) fprintf(stderr, "%s: seed: %s\n", name, slim_last_error());                    \
            exit(rc ? 1 : 0);                                                                      \
        }                                                                                          \
        return 0;                                                                                  \
    }                                                                                              \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {                                    \
        static const fz_target *t;                                                                 \
        if (!t) t = fz_find_target(name);                                                          \
        t->run(data, n);                                                                           \
        return 0;                                                                                  \
    }

#endif
