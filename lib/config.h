/* config.h — the run configuration, one JSON file (read with cJSON) shared by every stage.
 *
 * Every key is optional unless marked; unknown keys and wrong types are errors naming the file and
 * the key path (e.g. "configs/x.json: train.lr: expected a number"). Relative paths are taken as
 * written (relative to the working directory, normally the repository root). */
#ifndef SLIM_CONFIG_H
#define SLIM_CONFIG_H

#define SLIM_MAX_TARGETS 8
#define SLIM_MAX_LABELS 64

typedef struct slim_config {
    char *path;              /* the config file itself */
    char *model;             /* "model": base model GGUF path (required) */
    char *out_dir;           /* "out_dir": where every stage writes (default "work/run") */
    char *base_quant;        /* base.quant: storage of the frozen base: f32 | f16 | bf16 | q8_0 | nf4 | keep
                                (default f32; see model.h enum base_quant) */

    /* "data": { ... } */
    char *train_file;        /* data.train: CSV or JSONL (required for data prepare) */
    char *test_file;         /* data.test: CSV or JSONL, optional */
    char *format;            /* data.format: "csv" | "jsonl" | "auto" (default auto: by extension) */
    char *text_column;       /* data.columns.text (default "text") */
    char *label_column;      /* data.columns.label (default "label") */
    char *prompt_template;   /* data.template.prompt (default "Text: {text}\nLabel:") */
    char *completion_template; /* data.template.completion (default " {label}"); EOS is appended */
    int max_seq_len;         /* data.max_seq_len: prompt + completion tokens (default 256) */
    double max_bad_rows;     /* data.max_bad_rows: fraction of rows that may be bad before failing (default 0.01) */
    int n_labels;            /* data.labels: declared label set (optional; else collected, sorted) */
    char *labels[SLIM_MAX_LABELS];

    /* "lora": { ... } */
    int lora_r;              /* lora.r (default 8) */
    float lora_alpha;        /* lora.alpha (default 16); scale = alpha / r */
    int n_targets;           /* lora.targets: subset of q k v o gate up down (default all seven) */
    char *targets[SLIM_MAX_TARGETS];

    /* "train": { ... } */
    int epochs;              /* train.epochs (default 1) */
    int max_steps;           /* train.max_steps: stop after this many optimizer steps (0 = no cap) */
    int batch_size;          /* train.batch_size: examples per micro-batch (default 8) */
    int grad_accum;          /* train.grad_accum: micro-batches per optimizer step (default 1) */
    float lr;                /* train.lr: peak learning rate (default 1e-3) */
    float min_lr_ratio;      /* train.min_lr_ratio: cosine floor as a fraction of lr (default 0.1) */
    int warmup_steps;        /* train.warmup_steps (default 10) */
    float weight_decay;      /* train.weight_decay (default 0.0) */
    float beta1, beta2, eps; /* train.beta1/beta2/eps (default 0.9, 0.999, 1e-8) */
    float grad_clip;         /* train.grad_clip: global L2 norm clip, 0 = off (default 1.0) */
    int seed;                /* train.seed (default 1): LoRA init and shuffling */
    int log_every;           /* train.log_every: steps between progress lines (default 10) */
    int threads;             /* train.threads: OpenMP threads, 0 = default */

    /* "eval": { ... } */
    double min_accuracy;     /* eval.min_accuracy: fail below this (default 0 = no gate) */
    double min_gain;         /* eval.min_gain: fail when accuracy - best baseline is below (default -1 = no gate) */
    int eval_max_examples;   /* eval.max_examples: score at most this many test examples (0 = all) */
} slim_config;

/* "a string", "a number", ... for a cJSON value (const cJSON *), for error messages. */
const char *config_json_type_name(const void *cjson_value);

/* Sets every field to its default (strings duplicated, targets = all seven). */
void config_defaults(slim_config *c);
/* Sets the defaults (config_defaults), then reads a JSON config over them. Returns 0, or -1 with an
 * error naming file and key; *c is safe to config_free() either way. */
int config_load(slim_config *c, const char *path);
void config_free(slim_config *c);
/* Writes the config as JSON (all keys, resolved defaults) to path, atomically. Returns 0 or -1. */
int config_save(const slim_config *c, const char *path);

#endif
