/* config.h — the run configuration, one JSON file (read with cJSON) shared by every stage.
 *
 * Every key is optional unless marked; unknown keys and wrong types are errors naming the file and
 * the key path (e.g. "configs/x.json: train.lr: expected a number"). Relative paths are taken as
 * written (relative to the working directory, normally the repository root). */
#ifndef SLIM_CONFIG_H
#define SLIM_CONFIG_H

#define SLIM_MAX_TARGETS 8
#define SLIM_MAX_FORMATS 16
#define SLIM_MAX_LABELS 64

typedef struct slim_config {
    char *path;              /* the config file itself */
    char *model;             /* "model": the base model: a GGUF file or a Hugging Face directory (required) */
    char *out_dir;           /* "out_dir": where every stage writes (default "work/run") */
    char *base_quant;        /* base.quant: storage of the frozen base: f32 | f16 | bf16 | q8_0 | nf4 | keep
                                (default f32; see model.h enum base_quant) */

    /* "data": { ... } */
    char *train_file;        /* data.train: CSV or JSONL (required for data prepare) */
    char *test_file;         /* data.test: CSV or JSONL, optional */
    char *val_file;          /* data.val: CSV or JSONL, optional: the validation set of train.eval_every */
    char *format;            /* data.format: "csv" | "tsv" | "jsonl" | "auto" (default auto: by extension, then
                                content; data/reader.h) */
    char *shape;             /* data.shape: "auto" | "text_label" | "prompt_completion" | "alpaca" | "chat" |
                                "text" (default auto: from the header / keys; data/example.h) */
    char *text_column;       /* data.columns.text (default "text") */
    char *label_column;      /* data.columns.label (default "label") */
    char *prompt_column;     /* data.columns.prompt (default "prompt") */
    char *completion_column; /* data.columns.completion (default "completion") */
    char *instruction_column;/* data.columns.instruction (default "instruction") */
    char *input_column;      /* data.columns.input (default "input") */
    char *output_column;     /* data.columns.output (default "output") */
    char *messages_column;   /* data.columns.messages (default "messages") */
    char *chat_template;     /* data.chat_template: "auto" (default: recognized from the model's GGUF
                                tokenizer.chat_template) or a lib/tokenizer/chat.h template name (chatml, llama3, ...) */
    int chat_loss_last;      /* data.chat_loss: "all" (0, default: every assistant turn) | "last" (1) */
    int replace_bad_utf8;    /* data.invalid_utf8: "reject" (0, default: a bad row) | "replace" (1: U+FFFD) */
    int has_split;           /* data.split given: data prepare splits data.train into train and test */
    double split_test_fraction; /* data.split.test_fraction: in (0, 1) (default 0.1) */
    int split_seed;          /* data.split.seed (default 1) */
    double split_val_fraction; /* data.split.val_fraction: in [0, 1) (default 0: none): a validation split of
                                data.train, made like the test split (allowed together with data.test) */
    char *prompt_template;   /* data.template.prompt (default "Text: {text}\nLabel:") */
    char *completion_template; /* data.template.completion (default " {label}"); EOS is appended */
    int max_seq_len;         /* data.max_seq_len: prompt + completion tokens (default 256) */
    double max_bad_rows;     /* data.max_bad_rows: fraction of rows that may be bad before failing (default 0.01) */
    int n_labels;            /* data.labels: declared label set (optional; else collected, sorted) */
    char *labels[SLIM_MAX_LABELS];

    /* "validate": { ... } — `slimtune data validate` (data/validate.h): gates and settings */
    double val_max_invalid_rows;  /* validate.max_invalid_rows: fraction of bad rows per split (default 0.01) */
    double val_max_duplicate_rate;/* validate.max_duplicate_rate: exact duplicates per split (default 0.01) */
    double val_max_near_duplicate_rate; /* validate.max_near_duplicate_rate (default 0.05) */
    double val_max_leakage;       /* validate.max_leakage: eval rows found in train, exact or near (default 0) */
    double val_max_imbalance;     /* validate.max_imbalance: largest / smallest label count, 0 = no gate (default 20) */
    int val_min_label_count;      /* validate.min_label_count: labels rarer than this are reported (default 10) */
    double val_near_threshold;    /* validate.near_duplicate_threshold: Jaccard of shingle sets (default 0.8) */
    char *val_shingle;            /* validate.shingle: "word" | "char" (default word) */
    int val_shingle_size;         /* validate.shingle_size: words or characters per shingle (default 0: 3 words,
                                     5 characters) */
    int val_minhash_bands;        /* validate.minhash_bands: LSH bands (default 32) */
    int val_minhash_rows;         /* validate.minhash_rows: MinHash values per band (default 4) */
    int val_show_rows;            /* validate.show_rows: offending rows printed per check (default 5) */
    int val_report_rows;          /* validate.report_rows: offending rows listed per check in the JSON (default 100) */

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
    int save_every;          /* train.save_every: steps between checkpoints (default 100; 0 = only at the end of
                                each epoch, at the end of the run and on SIGINT/SIGTERM, which always save) */
    int keep_checkpoints;    /* train.keep_checkpoints: newest checkpoints kept (default 3; 0 = all) */
    int eval_every;          /* train.eval_every: steps between validations (val loss, val accuracy) and at
                                the last step; 0 = off; -1 (default) = with a validation set, every
                                train.save_every steps (each epoch's end when that is 0), else off */
    char *es_metric;         /* train.early_stopping.metric: "val_loss" (default) | "val_accuracy" */
    int es_patience;         /* train.early_stopping.patience: validations without improvement before the run
                                stops (default 0 = no early stopping) */
    double es_min_delta;     /* train.early_stopping.min_delta: the least change that counts as improvement
                                (default 0) */
    int packing;             /* train.packing: pack examples into rows of the dataset's max_seq_len
                                (best-fit decreasing; attention never crosses examples; default false) */
    int threads;             /* train.threads: OpenMP threads, 0 = default */
    char *checkpointing;     /* train.checkpointing: "auto" (default: "layers" when the memory plan with "none"
                                exceeds the memory available) | "none" (every layer's activations kept) |
                                "layers" (each layer's input kept, the layer recomputed in the backward;
                                gradients bit-identical) */
    int memory_limit_mib;    /* train.memory_limit_mib: the memory train plans against (default 0: what the
                                machine has available, lib/model/plan.h mem_available) */

    /* "export": { ... } */
    char *export_formats[SLIM_MAX_FORMATS]; /* export.formats: merged file types (f32 f16 bf16 q8_0 q4_0 q4_k_m
                                               q5_k_m q6_k) and "lora" (default f16, q8_0, q4_k_m, lora) */
    int n_export_formats;
    char *registry;          /* export.registry: the versions file (NULL: <out_dir>/../registry.json) */
    int hf_shard_mb;         /* export.hf_shard_mb: largest model-*.safetensors shard of the "hf" format, MB
                                (default 4000; past it the weights are sharded with an index) */
    char *merge_base;        /* export.merge_base: "trained" (default: onto the weights as base.quant stored
                                them for training) | "original" (onto the file's weights) */

    /* "predict": { ... } */
    int max_new_tokens;      /* predict.max_new_tokens: tokens generated at most for a row of a non-label shape
                                (default 64; generation stops earlier at EOS) */

    /* "eval": { ... } */
    double min_accuracy;     /* eval.min_accuracy: fail below this (default 0 = no gate) */
    double min_gain;         /* eval.min_gain: fail when accuracy - best baseline is below (default -1 = no gate) */
    int eval_max_examples;   /* eval.max_examples: score this many test examples, spread evenly (0 = all) */
    double max_regression;   /* eval.max_regression: with a baseline report/adapter, fail when the fine-tuned
                                accuracy is below the baseline's by more than this with McNemar p < eval.alpha
                                (default 0) */
    double alpha;            /* eval.alpha: significance level of that gate (default 0.05) */
    int bootstrap_resamples; /* eval.bootstrap_resamples: resamples of the paired intervals (default 10000) */
    int eval_seed;           /* eval.seed: the bootstrap's RNG seed (default 1) */
    char *baselines;         /* eval.baselines: the current systems' predictions to score beside the model, as
                                the JSON text of [{"name", "file", "key": "text" | "id", "column"}] (NULL: none;
                                eval/baselines.c reads it) */
    double drift_max_token_js;        /* drift.max_token_js: unigram token JS divergence (default 0.1) */
    double drift_max_length_ks;       /* drift.max_length_ks: input length KS D (default 0.2) */
    double drift_max_label_js;        /* drift.max_label_js: label distribution JS divergence (default 0.05) */
    double drift_max_confidence_drop; /* drift.max_confidence_drop: fall of the mean confidence (default 0.05) */
    double drift_max_predicted_js;    /* drift.max_predicted_js: predicted-label JS divergence (default 0.05) */
    int eval_max_new_tokens; /* eval.max_new_tokens: generation cap for prompt/completion, alpaca and chat test
                                rows (default 64) */
    double target_accuracy;  /* eval.target_accuracy: the accuracy the router wants from the small model; eval
                                writes the confidence threshold that reaches it to eval/routing.json (default 0.95) */
} slim_config;

/* Sets every field to its default (strings duplicated, targets = all seven). */
void config_defaults(slim_config *c);
/* Sets the defaults (config_defaults), then reads a JSON config over them. Returns 0, or -1 with an
 * error naming file and key; *c is safe to config_free() either way. */
/* Whether a training run of c validates: a validation set (data.val or data.split.val_fraction) and
 * train.eval_every not 0. */
int config_validates(const slim_config *c);
int config_load(slim_config *c, const char *path);
/* Frees every string and list of the config; *c is zeroed (safe after a failed config_load). */
void config_free(slim_config *c);
/* Copies from src into dst every setting whose key path is `prefix` or lies under it ("validate" copies
 * validate.*; "data.max_seq_len" one setting; "data" or "data.split" also whether a split is set); strings
 * are duplicated, dst's old values freed. */
void config_copy(slim_config *dst, const slim_config *src, const char *prefix);
/* Writes the config as JSON (all keys, resolved defaults) to path, atomically. Returns 0 or -1. */
int config_save(const slim_config *c, const char *path);

#endif
