/* dataset.h — the tokenized dataset file (HDF5) written by `data prepare`, read by train and eval.
 *
 * Schema (one file per split, e.g. train.h5 / test.h5):
 *   /tokens      int32  [n_tokens]        every example's tokens, concatenated (BOS first per example)
 *   /loss_mask   uint8  [n_tokens]        1 where the token is a training target (completion tokens
 *                                          and the final EOS); 0 for prompt tokens. A target at i is
 *                                          predicted from position i-1.
 *   /offsets     int64  [n_examples + 1]  example e spans tokens[offsets[e] .. offsets[e+1])
 *   /prompt_len  int32  [n_examples]      prompt tokens of example e (its completion starts there)
 *   /labels      int32  [n_examples]      index into label_names, -1 when the example has no label
 *   /source_line int64  [n_examples]      1-based line of the example in its source file
 *   /label_names string [n_labels]        variable-length UTF-8 strings, sorted
 * Attributes on the root group:
 *   tokenizer_fingerprint (uint64, tokenizer.fingerprint), model (string, base model path),
 *   prompt_template, completion_template, source_file (strings), max_seq_len (int32),
 *   n_examples, n_tokens, n_truncated, n_bad_rows (int64). */
#ifndef SLIM_DATASET_H
#define SLIM_DATASET_H

#include <stdint.h>

typedef struct slim_dataset {
    int64_t n_examples;
    int64_t n_tokens;
    int32_t *tokens;       /* [n_tokens] */
    uint8_t *loss_mask;    /* [n_tokens] */
    int64_t *offsets;      /* [n_examples + 1] */
    int32_t *prompt_len;   /* [n_examples] */
    int32_t *labels;       /* [n_examples] */
    int64_t *source_line;  /* [n_examples] */
    int n_labels;
    char **label_names;    /* [n_labels] */
    uint64_t tokenizer_fingerprint;
    char *model;
    char *prompt_template;
    char *completion_template;
    char *source_file;
    int32_t max_seq_len;
    int64_t n_truncated;
    int64_t n_bad_rows;
} slim_dataset;

/* Writes the dataset atomically (temporary name, then rename). Returns 0 or -1. */
int dataset_write(const slim_dataset *d, const char *path);
/* Reads and validates a dataset (offsets monotone, token ids >= 0, labels in range). Returns 0 or -1
 * with an error naming the file and the dataset or attribute at fault. */
int dataset_read(slim_dataset *d, const char *path);
void dataset_free(slim_dataset *d);

#endif
