/* train.h — `slimtune train`: LoRA fine-tuning of a frozen base on a prepared dataset (see cli.h for
 * the parse_args / run / main contract of every subcommand). */
#ifndef SLIM_TRAIN_H
#define SLIM_TRAIN_H

#include "config.h"

/* Options of `slimtune train`: the config file and what overrides it. */
typedef struct train_opts {
    const char *config_path; /* --config FILE (required) */
    const char *out_dir;     /* --out-dir DIR, NULL: the config's out_dir */
    long max_steps;          /* --max-steps N, -1: the config's train.max_steps */
    long threads;            /* --threads N, -1: the config's train.threads */
    int resume;              /* --resume [DIR]: continue from a checkpoint */
    const char *resume_dir;  /* its DIR, NULL: the newest under <out_dir>/train/checkpoints */
    const char *init_adapter;/* --init-adapter A: start from adapter A (llama.cpp LoRA GGUF or PEFT directory) */
} train_opts;

/* Parses argv[1..argc) (argv[0] = "train") into *o. Returns SLIM_OK, SLIM_HELP (usage printed to
 * stdout), or -1 with an error (unknown option, bad value, no --config). */
int train_parse_args(train_opts *o, int argc, char **argv);

/* Trains LoRA adapters on <out_dir>/data/train.h5 with config cfg overridden by o; writes
 * <out_dir>/train/adapter.gguf, config.json (the resolved config) and metrics.jsonl, progress on
 * stderr, and checkpoints under <out_dir>/train/checkpoints (see train.c); with o->resume, continues
 * from one. With a validation set (<out_dir>/data/val.h5) it validates every train.eval_every steps
 * (val_loss, val_accuracy in metrics.jsonl); with train.early_stopping it may stop early, and then
 * adapter.gguf is the best adapter and adapter-last.gguf the last. Returns SLIM_OK; SLIM_STOPPED + signal when SIGINT/SIGTERM stopped it after saving a
 * checkpoint (no adapter written); or -1 with an error (unreadable model or data, another tokenizer, a
 * token outside the vocabulary, a checkpoint of another config, data or thread count, divergence, a
 * failed write): then no adapter is written. */
int train_run(const slim_config *cfg, const train_opts *o);

/* `slimtune train --config FILE [...]` (argv[0] = "train"): train_parse_args, config_load, train_run.
 * Returns SLIM_OK (also after --help) or -1 with an error; nothing is printed about the error. */
int train_main(int argc, char **argv);

#endif
