/* plan.h — the memory of a LoRA training run, planned before anything large is allocated: the frozen
 * base at its base.quant, the adapter with its gradient and AdamW moments, the activations with and
 * without gradient checkpointing (acts_mode_bytes), the validation scorer, the datasets and the
 * process's own floor. `slimtune info MODEL --config C` prints it; `train` prints it, picks
 * train.checkpointing "auto", and refuses a run that does not fit. */
#ifndef SLIM_PLAN_H
#define SLIM_PLAN_H

#include <stddef.h>
#include <stdio.h>

#include "format/gguf.h"
#include "model.h"

/* What a run is: the settings that decide its memory. */
typedef struct plan_run {
    int quant;                  /* base.quant (QUANT_*) */
    int B, T;                   /* training micro-batch: sequences x tokens per row */
    int lora_r;                 /* LoRA rank */
    int targets_on[LORA_N_TARGETS]; /* adapted projections */
    int keep_best;              /* early stopping keeps a copy of the best parameters */
    int val_B, val_T;           /* validation micro-batch (0: no validation during training) */
    size_t data_bytes;          /* the datasets held in memory (slim_dataset arrays) */
    int threads;                /* OpenMP / BLAS threads */
} plan_run;

/* The plan, in bytes. Index [m] of a pair: 0 checkpointing none (ACTS_TRAIN), 1 layers (ACTS_CHECKPOINT). */
typedef struct mem_plan {
    size_t base;         /* frozen weights as train holds them (model_matrix_bytes; vectors F32; keep: the file) */
    size_t lora;         /* A and B, their gradient, AdamW m and v (+ the best copy) */
    size_t acts[2];      /* activations and backward scratch of one micro-batch */
    size_t attention[2]; /* of acts: attention softmax statistics (B x H x T a layer; no T x T buffer) */
    size_t head;         /* of acts: one HEAD_CHUNK of logits and their gradient */
    size_t eval;         /* the validation scorer's inference activations (ACTS_INFERENCE) */
    size_t data;         /* datasets */
    size_t runtime;      /* the process floor: code, libraries, BLAS and OpenMP thread buffers */
    size_t total[2];     /* the planned peak: the sum of the above */
} mem_plan;

struct slim_config;

/* The settings of config c that decide a run's memory, into r: base.quant, batch_size (also of the
 * validation batches when has_val), lora.r and lora.targets, keep_best (early stopping with a validation
 * set). T, val_T, data_bytes and threads are left to the caller. */
void plan_run_from_config(plan_run *r, const struct slim_config *c, int has_val);
/* The memory a run of config c may use: train.memory_limit_mib, else mem_available() (0: unknown). */
size_t plan_memory_limit(const struct slim_config *c);
/* train.checkpointing resolved for plan p under avail bytes: 1 layers, 0 none ("auto": layers when the
 * plan without checkpointing exceeds a known avail). */
int plan_layers(const struct slim_config *c, const mem_plan *p, size_t avail);

/* Plans run r for the model whose header is g (config c). Reads tensor infos only. */
void mem_plan_make(mem_plan *p, const gguf_file *g, const model_config *c, const plan_run *r);
/* Prints p as lines that start with prefix: the parts and both totals; `chosen` (0 none, 1 layers, -1
 * neither) marks the one a run would use. */
void mem_plan_print(FILE *f, const mem_plan *p, const char *prefix, int chosen);

/* Bytes this process may still use: MemAvailable (/proc/meminfo), lowered by a cgroup v2 memory.max,
 * plus what the process holds now (its RSS). 0 when neither can be read. */
size_t mem_available(void);
/* Peak resident set size of this process so far (getrusage ru_maxrss), in bytes. */
size_t mem_peak_rss(void);

#endif
