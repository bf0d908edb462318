/* checkpoint.h — training checkpoints: what a run needs to continue exactly where it stopped.
 *
 * A checkpoint is a directory <parent>/step-NNNNNN (NNNNNN: optimizer steps done, at least 6 digits):
 *   state.h5       HDF5 (schema below): the trainable parameters, the AdamW moments and step count,
 *                  the loader's position, the thread count, the progress counters, the dataset's hash
 *   config.json    the run's resolved config (config_save), compared key by key on resume
 *   metrics.jsonl  the metrics lines written up to this step (the resumed run continues the file)
 *   adapter.gguf   the adapter at this step (model/lora.h lora_save; eval/export can read it)
 * The training run writes the last three into the temporary directory that ckpt_begin makes;
 * ckpt_commit fsyncs every file and the directory, renames it into place and fsyncs the parent, so a
 * step-* directory is always complete. There is no other random state: LoRA's initial values come
 * from train.seed and are overwritten by the saved ones, and the shuffle of epoch e is a pure
 * function of (train.seed, e) (loader.h).
 *
 * state.h5 (HDF5 1.8+ file format, metadata checksummed; datasets chunked with fletcher32 checksums):
 *   /params, /adam_m, /adam_v    float32 [n_params]: LoRA A and B (lora_adapter.params order), moments
 *   /dataset_sha256              uint8 [32]: ckpt_dataset_sha256 of the training data
 *   attributes (int64)           format_version (1), step, adam_t, loader_epoch, loader_cursor, threads, ranks,
 *                                n_params, targets_since, tokens_since, real_since, tokens_total,
 *                                real_total, targets_total
 *   attributes (float64)         loss_since, elapsed_s
 * and, only in a run that tracks the best validation (train.early_stopping; absent otherwise):
 *   /best_params                 float32 [n_params]: the LoRA parameters at best_step
 *   attributes                   best_step, evals_since_best (int64), best_value (float64) */
#ifndef SLIM_CHECKPOINT_H
#define SLIM_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"
#include "loader.h"

#define CKPT_FORMAT_VERSION 1

/* The progress counters of the metrics log, carried over so that a resumed run's next metrics line
 * averages over the same steps as an uninterrupted run's. */
typedef struct ckpt_log {
    double loss_since;      /* summed loss since the last metrics line */
    double elapsed_s;       /* training seconds before this process (earlier runs of the same training) */
    int64_t targets_since, tokens_since, real_since;
    int64_t tokens_total, real_total, targets_total;
} ckpt_log;

/* The state of a run at a step. params/adam_m/adam_v are the caller's arrays of n_params floats:
 * ckpt_write_state reads them, ckpt_read_state fills them. */
typedef struct ckpt_state {
    int64_t step;               /* optimizer steps done */
    int64_t adam_t;             /* AdamW's step count */
    loader_state loader;        /* where the next micro-batch comes from */
    int64_t threads;            /* OpenMP threads of the run, per rank (floating-point sums depend on it) */
    int64_t ranks;              /* MPI ranks of the run (dist.h): the global batch and the sums depend on it
                                   (attribute "ranks", optional: 1 when absent) */
    uint8_t dataset_sha256[32]; /* ckpt_dataset_sha256 of the training data */
    int64_t n_params;
    float *params, *adam_m, *adam_v;
    ckpt_log log;
    /* early stopping (optional in the file): the best validation so far */
    float *best_params;         /* [n_params] the parameters at best_step; NULL: not tracked (nothing written,
                                   nothing read) */
    int64_t best_step;          /* optimizer steps done at the best validation (0: none yet) */
    int64_t evals_since_best;   /* validations since then without improvement */
    double best_value;          /* the metric there */
} ckpt_state;

/* A checkpoint being written: ckpt_begin, files written into tmp, ckpt_commit (or ckpt_abort). */
typedef struct ckpt_writer {
    char parent[4096];
    char tmp[4200];   /* <parent>/.tmp-step-NNNNNN.<pid> */
    char final[4200]; /* <parent>/step-NNNNNN */
} ckpt_writer;

/* sha256 of what training reads from dataset d: its max_seq_len, example offsets, tokens and loss
 * mask (as little-endian int64/int32/uint8 bytes). Re-preparing the same data gives the same hash;
 * the HDF5 file's own bytes do not (object timestamps). */
void ckpt_dataset_sha256(const slim_dataset *d, uint8_t out[32]);
/* Lowercase hex of a sha256 (65 bytes with the NUL). */
void ckpt_hex(const uint8_t sha[32], char hex[65]);

/* Creates <parent> (and its parents) and the empty temporary directory of step `step`. Returns 0 or
 * -1 with an error naming the directory. */
int ckpt_begin(ckpt_writer *w, const char *parent, int64_t step);
/* Writes <w->tmp>/state.h5. Returns 0 or -1 with an error naming the file and the field. */
int ckpt_write_state(const ckpt_writer *w, const ckpt_state *s);
/* Copies the file src to <w->tmp>/name. Returns 0 or -1 with an error naming the file. */
int ckpt_copy_file(const ckpt_writer *w, const char *name, const char *src);
/* Makes the checkpoint durable and visible: fsyncs each file and the temporary directory, renames it
 * to <parent>/step-NNNNNN (replacing an older one of the same step), fsyncs the parent, then keeps
 * the newest `keep` checkpoints (0: all) and removes temporary directories of processes that are
 * gone. Returns 0 or -1 with an error (the temporary directory is removed). */
int ckpt_commit(ckpt_writer *w, int keep);
/* Removes the temporary directory and what is in it. */
void ckpt_abort(ckpt_writer *w);

/* Reads <dir>/state.h5 into *s; s->n_params and the three arrays must be set by the caller (and
 * best_params, to read the early-stopping state: a file without it leaves best_step 0). Returns 0,
 * or -1 with an error naming the file and field: missing, truncated or corrupt (checksums), another
 * format version, or a parameter count other than s->n_params. */
int ckpt_read_state(const char *dir, ckpt_state *s);
/* The newest checkpoint under parent into dir (capacity cap). Returns 1 when there is one, 0 when
 * there is none (or no parent), -1 with an error. */
int ckpt_latest(const char *parent, char *dir, size_t cap);
/* Removes the checkpoints under parent of more than `step` steps (step < 0: all); returns how many,
 * or -1 with an error. */
int ckpt_remove_after(const char *parent, int64_t step);

/* Compares two configs as JSON (the checkpoint's saved one and the run's), skipping the keys that lie
 * under any of the NULL-terminated `skip` key paths ("eval", "train.log_every"). Returns 0 when equal,
 * else -1 with an error naming the first key that differs and both values; `where` names the
 * checkpoint in the message. */
struct cJSON;
int ckpt_compare_config(const struct cJSON *saved, const struct cJSON *now, const char *const *skip,
                        const char *where);

#endif
