/* dataset.h — the tokenized dataset file (HDF5) written by `data prepare`, read by train and eval.
 *
 * Schema (one file per split, e.g. train.h5 / test.h5; all integers little-endian):
 *   /tokens      int32  [n_tokens]        every example's tokens, concatenated (BOS first per example when
 *                                          the tokenizer has one and adds it)
 *   /loss_mask   uint8  [n_tokens]        1 where the token is a training target, 0 elsewhere. A target at
 *                                          i is predicted from position i-1, so an example's first token is
 *                                          never a target. text_label / prompt_completion / alpaca: the
 *                                          completion and the final EOS; text: every token after the first;
 *                                          chat: the assistant turns (their end-of-turn tokens included).
 *   /offsets     int64  [n_examples + 1]  example e spans tokens[offsets[e] .. offsets[e+1])
 *   /prompt_len  int32  [n_examples]      tokens before the first target of example e
 *   /labels      int32  [n_examples]      index into label_names, -1 when the example has no label
 *                                          (every shape but text_label)
 *   /source_line int64  [n_examples]      1-based line of the example's row in its source file (a long
 *                                          text split into chunks gives several examples of one line)
 *   /label_names string [n_labels]        variable-length UTF-8 strings, sorted (empty unless text_label)
 * Attributes on the root group:
 *   tokenizer_fingerprint (uint64, tokenizer.fingerprint: train and eval refuse a dataset made with
 *     another tokenizer), config_fingerprint (uint64: FNV-1a over every data.* setting that shapes the
 *     tokens, see prepare.h), model (string, base model path), shape (string: text_label,
 *     prompt_completion, alpaca, chat, text), prompt_template, completion_template (strings: the
 *     templates the rows were rendered with, e.g. "Text: {text}\nLabel:" / " {label}", the Alpaca
 *     prompt, or the chat template's name), source_file, source_sha256 (strings: the raw data file and
 *     the hex SHA-256 of its bytes), source_bytes (int64), split (string "train" / "test"), split_rule
 *     (string: "file" when the split is its own file, else "hash: seed=S test_fraction=F stratified=..."),
 *     max_seq_len (int32), n_rows (rows read for this split, good and bad), n_examples, n_tokens,
 *     n_loss_tokens, n_truncated (examples whose prompt was cut), n_chunked (text rows split into
 *     chunks), n_bad_rows (int64).
 * Files written before config_fingerprint .. n_chunked existed read with those as ""/0. */
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
    /* provenance and counts (optional on read: ""/0 when absent) */
    char *shape;
    char *source_sha256;
    int64_t source_bytes;
    uint64_t config_fingerprint;
    char *split;
    char *split_rule;
    int64_t n_rows;
    int64_t n_loss_tokens;
    int64_t n_chunked;
} slim_dataset;

/* Writes the dataset atomically (temporary name, then rename). Returns 0 or -1. */
int dataset_write(const slim_dataset *d, const char *path);
/* Reads and validates a dataset (offsets monotone, token ids >= 0, labels in range). Returns 0 or -1
 * with an error naming the file and the dataset or attribute at fault. */
int dataset_read(slim_dataset *d, const char *path);
/* Frees every array of the dataset; *d is zeroed (safe after a failed dataset_read). */
void dataset_free(slim_dataset *d);
/* Checks that dataset d (read from path) was tokenized by the tokenizer with this fingerprint (the model
 * at model_path). Returns 0, or -1 with an error naming both and saying to prepare the data again. */
int dataset_check_tokenizer(const slim_dataset *d, const char *path, uint64_t fingerprint, const char *model_path);

#endif
