/* train.c — `slimtune train`: LoRA fine-tuning of a frozen base (llama, qwen2) on a prepared dataset.
 *
 * Reads <out_dir>/data/train.h5 (see lib/dataset.h), attaches LoRA adapters (config "lora"), and
 * runs AdamW with warmup + cosine decay over shuffled micro-batches (lib/loader.h), accumulating
 * gradients over train.grad_accum micro-batches per optimizer step. The loss is the mean cross-entropy
 * over every target token of the optimizer step (prompt and padding positions carry no loss). Writes
 * <out_dir>/train/adapter.gguf (llama.cpp LoRA GGUF), config.json (the resolved config) and
 * metrics.jsonl (one JSON object per logged step); a progress line goes to stderr.
 *
 * Checkpoints (lib/checkpoint.h) go to <out_dir>/train/checkpoints/step-NNNNNN every train.save_every
 * steps, at the end of each epoch and of the run, and when SIGINT or SIGTERM arrives (the step in
 * progress is finished first; the run then ends with SLIM_STOPPED + signal: exit 130 / 143). --resume
 * continues from one exactly: the same adapter bytes as a run never stopped, given the same threads.
 *
 * Validation (a validation set: data.val or data.split.val_fraction, prepared as
 * <out_dir>/data/val.h5): every train.eval_every steps and at the last step, the mean loss per target
 * token of the validation set (forward only, in the training activations with their inference flag
 * set, through a loader of its own: the training loader, the adapter and the optimizer are untouched,
 * so the adapter is the same as without validation) and, for text_label data, label accuracy
 * (eval_score: every label scored, the best-scoring predicted). Early stopping
 * (train.early_stopping.patience > 0) keeps a copy of the parameters at the best validation and ends
 * the run after `patience` validations without an improvement of min_delta; train/adapter.gguf is
 * then the best adapter and train/adapter-last.gguf the last.
 *
 * Data parallel (dist.h): under `mpirun -np N` each optimizer step takes train.grad_accum micro-batches
 * a rank (global batch: batch_size x grad_accum x N units). Every rank walks the same seeded loader and
 * fills only its micro-batches of the step (k-th micro-batch: rank k mod N); the step's target count,
 * loss, token counts and the LoRA gradients are summed over the ranks before clipping, so every rank
 * makes the same AdamW update and the run equals a single process with grad_accum x N (up to the
 * order of the float sums). Validation splits its batches and examples the same way. Rank 0 alone
 * prints, writes metrics, checkpoints and the adapter; checkpoints record the rank count, and a run is
 * resumed at the same count. */
#include "train.h"

#include <cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "cli.h"
#include "common.h"
#include "config.h"
#include "dataset.h"
#include "dist.h"
#include "loader.h"
#include "model/model.h"
#include "format/model_file.h"
#include "model/plan.h"
#include "optim.h"
#include "../eval/eval.h"

static void train_usage(FILE *f) {
    fprintf(f,
            "usage: slimtune train --config FILE [--out-dir DIR] [--max-steps N] [--threads N] [--resume [DIR]]\n"
            "                      [--init-adapter A]\n"
            "  Trains LoRA adapters on <out_dir>/data/train.h5 (made by `slimtune data prepare`).\n"
            "  Writes <out_dir>/train/adapter.gguf, config.json and metrics.jsonl, and checkpoints to\n"
            "  <out_dir>/train/checkpoints/step-NNNNNN every train.save_every steps, at each epoch's end and\n"
            "  on SIGINT/SIGTERM (exit 130/143 after saving). A run without --resume removes old checkpoints.\n"
            "  --out-dir DIR    override the config's out_dir\n"
            "  --max-steps N    stop after N optimizer steps (overrides train.max_steps)\n"
            "  --threads N      OpenMP threads (overrides train.threads)\n"
            "  --init-adapter A start from adapter A (llama.cpp LoRA GGUF or PEFT directory) of the config's\n"
            "                   lora.r, lora.alpha and lora.targets instead of a fresh initialisation\n"
            "  --resume [DIR]   continue exactly from checkpoint DIR (default: the newest under\n"
            "                   <out_dir>/train/checkpoints); refused when the data, the thread count or a\n"
            "                   config key other than train.log_every/save_every/keep_checkpoints, eval.*,\n"
            "                   validate.*, data.* (the data is checked by its hash) or out_dir differs\n");
}

int train_parse_args(train_opts *o, int argc, char **argv) {
    *o = (train_opts){.max_steps = -1, .threads = -1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            train_usage(stdout);
            return SLIM_HELP;
        }
        if (!strcmp(a, "--resume")) { /* its DIR is optional */
            o->resume = 1;
            if (i + 1 < argc && argv[i + 1][0] != '-') o->resume_dir = argv[++i];
            continue;
        }
        if (i + 1 >= argc) return slim_bad_option("train", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--config")) o->config_path = v;
        else if (!strcmp(a, "--out-dir")) o->out_dir = v;
        else if (!strcmp(a, "--init-adapter")) o->init_adapter = v;
        else if (!strcmp(a, "--max-steps")) {
            if (slim_parse_long(a, v, 0, INT_MAX, &o->max_steps) != 0) return -1;
        } else if (!strcmp(a, "--threads")) {
            if (slim_parse_long(a, v, 0, 4096, &o->threads) != 0) return -1;
        } else return slim_bad_option("train", a);
    }
    if (!o->config_path) return slim_set_error("--config FILE is required (see slimtune train --help)");
    if (o->resume && o->init_adapter)
        return slim_set_error("--init-adapter starts a run, --resume continues one: give one of them");
    return SLIM_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* the run's state: model, data, adapter, optimizer, loader, activations */

typedef struct trainer {
    model model;
    int has_model, has_data; /* what train_free must free */
    slim_dataset data;
    uint8_t data_sha256[32]; /* ckpt_dataset_sha256 of data */
    lora_adapter lora;
    mem_plan plan;           /* the memory plan (train_plan) */
    acts_mode acts_mode;     /* train.checkpointing resolved: ACTS_TRAIN (none) or ACTS_CHECKPOINT (layers) */
    float *grads;            /* [lora.n_params] */
    adamw opt;
    loader loader;
    acts acts;
    long steps_per_epoch;
    long total_steps;
    long step0;              /* the first step this process runs (a resumed run's checkpoint step) */
    int threads;             /* OpenMP threads of the run, per rank */
    int rank, ranks;         /* this process's rank of the data-parallel job, and their number (dist.h) */
    char dir[4096];          /* <out_dir>/train */
    char ckpt_dir[4200];     /* <out_dir>/train/checkpoints */
    /* validation (train.eval_every) and early stopping */
    int has_val;             /* val was read: must be freed */
    slim_dataset val;        /* <out_dir>/data/val.h5 */
    loader val_loader;       /* its batches: one pass from the start of epoch 0 per validation */
    int eval_every;          /* steps between validations (0: none) */
    int val_labels;          /* 1: text_label data, label accuracy is measured */
    int es_on, es_acc;       /* early stopping; its metric is val_accuracy (higher is better) */
    float *best;             /* [lora.n_params] the parameters at best_step (es_on) */
    long best_step;          /* steps done at the best validation, 0: none yet */
    long evals_since_best;   /* validations since then without improvement */
    double best_value;       /* the metric there */
} trainer;

/* Checks the dataset at path against model m (loaded from model_path): same tokenizer, at least one
 * example, every token inside the vocabulary. Returns 0 or -1 with an error. */
static int train_check_data(const slim_dataset *d, const char *path, const model *m, const char *model_path) {
    if (dataset_check_tokenizer(d, path, m->tok.fingerprint, model_path)) return -1;
    if (d->n_examples < 1) return slim_set_error("%s has no examples", path);
    for (int64_t i = 0; i < d->n_tokens; i++)
        if (d->tokens[i] >= m->cfg.vocab_size)
            return slim_set_error("%s: token id %d at position %lld is outside the model's vocabulary (%d)", path,
                                  d->tokens[i], (long long)i, m->cfg.vocab_size);
    return 0;
}

/* Reads <out_dir>/data/train.h5 and hashes it; with a validation set in the config (data.val or
 * data.split.val_fraction) and train.eval_every not 0, also reads <out_dir>/data/val.h5. Returns 0 or -1
 * with an error. */
static int train_read_data(trainer *t, const slim_config *c) {
    char path[4096];
    if (slim_format_path(path, sizeof path, "%s/data/train.h5", c->out_dir) != 0) return -1;
    if (dataset_read(&t->data, path) != 0) return -1;
    t->has_data = 1;
    ckpt_dataset_sha256(&t->data, t->data_sha256);
    if (!config_validates(c)) return 0;
    if (slim_format_path(path, sizeof path, "%s/data/val.h5", c->out_dir) != 0) return -1;
    if (access(path, F_OK) != 0)
        return slim_set_error("%s: no validation set: the config names one (%s), make it with slimtune data prepare "
                              "--config %s", path, c->val_file ? "data.val" : "data.split.val_fraction", c->path);
    if (dataset_read(&t->val, path) != 0) return -1;
    t->has_val = 1;
    return 0;
}

/* Bytes a dataset's arrays take in memory. */
static size_t train_data_bytes(const slim_dataset *d) {
    return (size_t)d->n_tokens * (sizeof(int32_t) + 1) + (size_t)d->n_examples * 32;
}

/* Appends to buf [cap] "; " + the formatted text. */
static void train_append(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void train_append(char *buf, size_t cap, const char *fmt, ...) {
    size_t n = strlen(buf);
    if (n > 0 && n + 2 < cap) { strcpy(buf + n, "; "); n += 2; }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, cap - n, fmt, ap);
    va_end(ap);
}

/* Progress text on stderr, from rank 0 alone (the other ranks of a data-parallel job are silent). */
static void train_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void train_say(const char *fmt, ...) {
    if (dist_rank() != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

/* The error of a run r whose plan (need bytes, with checkpointing `layers`) exceeds avail: names the
 * settings that would fit, each planned again: checkpointing layers, the largest smaller batch with
 * grad_accum raised to keep the effective batch, a smaller base.quant. Returns -1. */
static int train_plan_refuse(const gguf_file *g, const model_config *mc, const plan_run *r0, const slim_config *c,
                             size_t need, size_t avail, int layers) {
    char fits[1024] = "";
    mem_plan p;
    mem_plan_make(&p, g, mc, r0);
    if (!layers && p.total[1] <= avail)
        train_append(fits, sizeof fits, "train.checkpointing \"layers\" (%.0f MiB)", p.total[1] / 1048576.0);
    for (int b = r0->B / 2; b >= 1; b /= 2) {
        plan_run r = *r0;
        r.B = b;
        r.val_B = r0->val_B ? b : 0;
        mem_plan_make(&p, g, mc, &r);
        if (p.total[1] > avail) continue;
        train_append(fits, sizeof fits, "train.batch_size %d with train.grad_accum %d and checkpointing layers "
                     "(%.0f MiB)", b, c->grad_accum * ((r0->B + b - 1) / b), p.total[1] / 1048576.0);
        break;
    }
    const int cheaper[2] = {QUANT_Q8_0, QUANT_NF4};
    for (int i = 0; i < 2; i++) {
        plan_run r = *r0;
        r.quant = cheaper[i];
        mem_plan_make(&p, g, mc, &r);
        size_t now = layers ? need : p.total[1];
        if (r.quant != r0->quant && p.total[1] <= avail && p.total[1] < now)
            train_append(fits, sizeof fits, "base.quant \"%s\" with checkpointing layers (%.0f MiB)",
                         base_quant_names[r.quant], p.total[1] / 1048576.0);
    }
    return slim_set_error("%s: the run needs %.0f MiB (the plan above) but %.0f MiB is available%s; settings that "
                          "fit: %s", c->path, need / 1048576.0, avail / 1048576.0,
                          c->memory_limit_mib > 0 ? " (train.memory_limit_mib)" : "",
                          fits[0] ? fits : "none found (a smaller model or more memory)");
}

/* The memory plan of the run (lib/model/plan.h) from the base's header and the data read: prints it,
 * resolves train.checkpointing (auto: none when that fits the memory available, else layers) into
 * t->acts_mode, and refuses a run whose plan exceeds the memory available (train.memory_limit_mib,
 * else mem_available, shared by the ranks on this host) with the figures and settings that would fit.
 * Returns 0 or -1 with an error. */
static int train_plan(trainer *t, const slim_config *c) {
    gguf_file g;
    model_config mc;
    if (slim_model_open(&g, c->model) != 0) return -1;
    if (model_read_config(&g, &mc) != 0) { gguf_close(&g); return -1; }
    plan_run r = {.threads = omp_get_max_threads()};
    plan_run_from_config(&r, c, t->has_val);
    r.T = loader_row_tokens(&t->data, c->packing);
    r.data_bytes = train_data_bytes(&t->data);
    if (t->has_val) {
        r.val_T = loader_row_tokens(&t->val, 0);
        if (r.val_T > r.T) r.T = r.val_T;
        r.data_bytes += train_data_bytes(&t->val);
    }
    mem_plan_make(&t->plan, &g, &mc, &r);
    const int local = c->memory_limit_mib > 0 ? 1 : dist_local_size(); /* ranks sharing MemAvailable */
    const size_t avail = plan_memory_limit(c) / (size_t)local;
    const int layers = plan_layers(c, &t->plan, avail);
    t->acts_mode = layers ? ACTS_CHECKPOINT : ACTS_TRAIN;
    train_say("slimtune train: memory plan for %d x %d tokens a micro-batch, base.quant %s, checkpointing %s%s "
              "(%.1f MiB available%s):\n", r.B, r.T, c->base_quant, layers ? "layers" : "none",
              !strcmp(c->checkpointing, "auto") ? " (auto)" : "", avail / 1048576.0,
              c->memory_limit_mib > 0 ? ", train.memory_limit_mib" : local > 1 ? " to each rank of this host" : "");
    if (dist_rank() == 0) mem_plan_print(stderr, &t->plan, "  ", layers);
    int rc = 0;
    if (avail > 0 && t->plan.total[layers] > avail)
        rc = train_plan_refuse(&g, &mc, &r, c, t->plan.total[layers], avail, layers);
    gguf_close(&g);
    return rc;
}

/* Loads the base model (config "model", "base.quant") and checks the data read against it. Returns 0
 * or -1 with an error. */
static int train_load(trainer *t, const slim_config *c) {
    if (model_load_quant(&t->model, c->model, base_quant_index(c->base_quant)) != 0) return -1;
    t->has_model = 1;
    if (model_require_tokenizer(&t->model) != 0) return -1;
    char path[4096];
    if (slim_format_path(path, sizeof path, "%s/data/train.h5", c->out_dir) != 0) return -1;
    if (train_check_data(&t->data, path, &t->model, c->model) != 0) return -1;
    if (!t->has_val) return 0;
    if (slim_format_path(path, sizeof path, "%s/data/val.h5", c->out_dir) != 0) return -1;
    return train_check_data(&t->val, path, &t->model, c->model);
}

/* With the validation set read (train_read_data): sets up its loader (batch_size examples, no packing,
 * padded with pad_id), resolves train.eval_every (-1: every save_every steps, else once an epoch) and
 * early stopping. Needs t->steps_per_epoch. Returns 0 or -1 with an error. */
static int train_setup_val(trainer *t, const slim_config *c, int pad_id) {
    if (!t->has_val) return 0;
    char path[4096];
    if (slim_format_path(path, sizeof path, "%s/data/val.h5", c->out_dir) != 0) return -1;
    if (loader_init(&t->val_loader, &t->val, c->batch_size, 0, pad_id, (uint64_t)c->seed) != 0) return -1;
    t->eval_every = c->eval_every > 0 ? c->eval_every : c->save_every > 0 ? c->save_every : (int)t->steps_per_epoch;
    t->val_labels = t->val.n_labels > 0;
    for (int64_t i = 0; i < t->val.n_examples && t->val_labels; i++) t->val_labels = t->val.labels[i] >= 0;
    t->es_on = c->es_patience > 0;
    t->es_acc = strcmp(c->es_metric, "val_accuracy") == 0;
    if (t->es_on && t->es_acc && !t->val_labels)
        return slim_set_error("%s: train.early_stopping.metric: val_accuracy needs labelled (text_label) data; %s has "
                              "none (use val_loss)", c->path, path);
    if (t->es_on) t->best = slim_malloc(t->lora.n_params * sizeof(float));
    return 0;
}

/* Sets up a run: model and data (train_load), a fresh adapter (lora.*, seeded), its gradient and
 * AdamW state, the loader (batch_size units, packing, shuffled with train.seed), activations for its
 * largest micro-batch, the step counts and the output directories. Returns 0 or -1 with an error; *t
 * is freeable either way. */
static int train_setup(trainer *t, const slim_config *c) {
    if (train_read_data(t, c) != 0 || train_plan(t, c) != 0 || train_load(t, c) != 0) return -1;
    int targets_on[LORA_N_TARGETS] = {0};
    for (int i = 0; i < c->n_targets; i++) targets_on[lora_target_index(c->targets[i])] = 1;
    lora_init(&t->lora, &t->model.cfg, c->lora_r, c->lora_alpha, targets_on, (uint64_t)c->seed);
    t->grads = slim_calloc(t->lora.n_params, sizeof(float));
    adamw_init(&t->opt, t->lora.n_params, c->beta1, c->beta2, c->eps, c->weight_decay);
    const int pad_id = t->model.tok.eos_id >= 0 ? t->model.tok.eos_id : 0;
    loader *L = &t->loader;
    if (loader_init(L, &t->data, c->batch_size, c->packing, pad_id, (uint64_t)c->seed) != 0) return -1;
    if (L->packed)
        train_say("slimtune train: packing %lld examples into %lld rows of %d tokens: %.1f%% of the tokens are "
                  "real (%.1f%% without packing)\n", (long long)t->data.n_examples, (long long)L->plan.n_rows, L->T_max,
                  100.0 * pack_plan_efficiency(&L->plan),
                  100.0 * t->data.n_tokens / ((double)t->data.n_examples * L->T_max));
    const long n_micro = (long)c->grad_accum * t->ranks; /* micro-batches a step, all ranks */
    t->steps_per_epoch = (loader_batches_per_epoch(L) + n_micro - 1) / n_micro;
    t->total_steps = t->steps_per_epoch * c->epochs;
    if (c->max_steps > 0 && c->max_steps < t->total_steps) t->total_steps = c->max_steps;
    if (train_setup_val(t, c, pad_id) != 0) return -1;
    int T = t->has_val && t->val_loader.T_max > L->T_max ? t->val_loader.T_max : L->T_max;
    acts_init_mode(&t->acts, &t->model.cfg, c->batch_size, T, t->lora.r, t->acts_mode);
    t->threads = omp_get_max_threads();
    if (slim_format_path(t->dir, sizeof t->dir, "%s/train", c->out_dir) != 0) return -1;
    if (slim_format_path(t->ckpt_dir, sizeof t->ckpt_dir, "%s/checkpoints", t->dir) != 0) return -1;
    return slim_mkdir_p(t->dir);
}

/* Frees what train_setup set up. */
static void train_free(trainer *t) {
    free(t->best);
    loader_free(&t->val_loader);
    if (t->has_val) dataset_free(&t->val);
    acts_free(&t->acts);
    loader_free(&t->loader);
    adamw_free(&t->opt);
    free(t->grads);
    lora_free(&t->lora);
    if (t->has_data) dataset_free(&t->data);
    if (t->has_model) model_free(&t->model);
}

/* ---------------------------------------------------------------------------------------------- */
/* one optimizer step */

/* What a step did, for the log. */
typedef struct train_stats {
    double loss;     /* summed cross-entropy over its targets (nats) */
    long n_targets;  /* its target tokens */
    long tokens;     /* tokens (padding included) of its micro-batches that had targets */
    long real;       /* the same without padding */
    float grad_norm; /* gradient norm before clipping */
    float lr;        /* learning rate of its update */
    int epoch_end;   /* 1: it ended an epoch */
} train_stats;

/* Fills the next micro-batch when it is this rank's (the k-th of a step or pass is rank k mod ranks'),
 * else moves past it. Returns 1 when it was filled. */
static int train_next_batch(loader *L, int k, int rank, int ranks) {
    if (k % ranks != rank) {
        loader_skip(L);
        return 0;
    }
    loader_next(L);
    return 1;
}

/* Targets of this rank's share of the next n_micro micro-batches (fewer when an epoch ends first),
 * summed over the ranks, leaving the loader where it was: a step's loss is the mean over all of them,
 * so its scale is known before its first backward. Returns the count, or -1 with an error. */
static long train_count_targets(loader *L, int n_micro, int rank, int ranks) {
    const loader_state start = loader_get_state(L);
    int64_t n = 0;
    for (int micro = 0; micro < n_micro; micro++) {
        train_next_batch(L, micro, rank, ranks);
        n += L->n_targets;
        if (L->epoch_end) break;
    }
    (void)loader_set_state(L, start); /* its own saved state: always in range */
    return dist_sum_i64(&n, 1) != 0 ? -1 : (long)n;
}

/* Sums a step's gradient and its loss and token counts over the ranks (dist.h). Returns 0 or -1. */
static int train_reduce(trainer *t, train_stats *st) {
    double s[3] = {st->loss, (double)st->tokens, (double)st->real};
    if (dist_sum_f32(t->grads, t->lora.n_params) != 0 || dist_sum_f64(s, 3) != 0) return -1;
    st->loss = s[0];
    st->tokens = (long)s[1];
    st->real = (long)s[2];
    return 0;
}

/* Optimizer step `step` (0-based): up to train.grad_accum micro-batches a rank (a step ends with its
 * epoch), the gradient of their mean target loss summed over the ranks and clipped to train.grad_clip,
 * one AdamW update. Returns 0, or -1 with an error when the loss or the gradient norm is not finite (the
 * update is not made) or a sum over the ranks failed. */
static int train_step(trainer *t, const slim_config *c, long step, train_stats *st) {
    loader *L = &t->loader;
    const int n_micro = c->grad_accum * t->ranks;
    *st = (train_stats){.n_targets = train_count_targets(L, n_micro, t->rank, t->ranks)};
    if (st->n_targets < 0) return -1;
    memset(t->grads, 0, sizeof(float) * t->lora.n_params);
    for (int micro = 0; micro < n_micro; micro++) {
        if (train_next_batch(L, micro, t->rank, t->ranks) && L->n_targets > 0) {
            st->loss += model_forward_packed(&t->model, &t->lora, &t->acts, L->tokens, L->targets, L->pos,
                                             L->packed ? L->seg_start : NULL, L->rows, L->T, NULL, NULL);
            model_backward(&t->model, &t->lora, &t->acts, t->grads, 1.0f / (float)st->n_targets);
            st->tokens += (long)L->rows * L->T;
            st->real += L->n_real;
        }
        if (L->epoch_end) break;
    }
    st->epoch_end = L->epoch_end;
    if (train_reduce(t, st) != 0) return -1;
    st->grad_norm = grad_clip_norm(t->grads, t->lora.n_params, c->grad_clip);
    if (!isfinite(st->loss) || !isfinite(st->grad_norm))
        return slim_set_error("training diverged at step %ld (loss %g, gradient norm %g); no adapter written: lower "
                              "train.lr or check the data", step + 1, st->loss, st->grad_norm);
    st->lr = lr_schedule(step, t->total_steps, c->warmup_steps, c->lr, c->min_lr_ratio);
    adamw_step(&t->opt, t->lora.params, t->grads, st->lr);
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* progress lines and metrics.jsonl */

typedef struct train_log {
    FILE *metrics;                 /* <dir>/metrics.jsonl, written atomically; NULL on ranks other than 0 */
    char path[4096], tmp[4200];
    double t_start, t_last;        /* start of this process's steps, time of the last line */
    ckpt_log c;                    /* the counters, carried in checkpoints */
} train_log;

static void train_format_eta(char *buf, size_t cap, double s) {
    if (s < 0 || !isfinite(s)) s = 0;
    int h = (int)(s / 3600), m = (int)(s / 60) % 60, sec = (int)s % 60;
    snprintf(buf, cap, "%d:%02d:%02d", h, m, sec);
}

/* Opens <dir>/metrics.jsonl for writing (atomically), starting with the lines of the file `from`
 * (a checkpoint's metrics.jsonl) when it is not NULL. Returns 0 or -1 with an error. */
static int train_log_open(train_log *g, const char *dir, const char *from) {
    memset(g, 0, sizeof *g);
    if (slim_format_path(g->path, sizeof g->path, "%s/metrics.jsonl", dir) != 0) return -1;
    g->metrics = slim_atomic_open(g->path, g->tmp, sizeof g->tmp);
    if (!g->metrics) return -1;
    char *text = NULL;
    size_t n = 0;
    if (from && slim_read_file(from, &text, &n) != 0) {
        slim_atomic_abort(g->metrics, g->tmp);
        return -1;
    }
    if (n) fwrite(text, 1, n, g->metrics);
    free(text);
    return 0;
}

/* Counts step `step` (0-based) of total; every log_every steps and at the last, prints the progress line
 * and appends a metrics line (mean loss per target since the last line, tokens/s with and without
 * padding and of targets, ETA). first: the first step of this process. Nothing without a metrics file
 * (ranks other than 0). */
static void train_log_step(train_log *g, const train_stats *st, long step, long first, long total, int log_every) {
    if (!g->metrics) return;
    ckpt_log *k = &g->c;
    k->loss_since += st->loss;
    k->targets_since += st->n_targets;
    k->tokens_since += st->tokens;
    k->real_since += st->real;
    k->tokens_total += st->tokens;
    k->real_total += st->real;
    k->targets_total += st->n_targets;
    if ((step + 1) % log_every != 0 && step + 1 != total) return;
    double now = slim_time_sec(), dt = now - g->t_last + 1e-9;
    double tps = k->tokens_since / dt, real_tps = k->real_since / dt, target_tps = k->targets_since / dt;
    double mean_loss = k->targets_since ? k->loss_since / k->targets_since : 0.0;
    double eta = (now - g->t_start) / (step + 1 - first) * (total - step - 1);
    char eta_s[32];
    train_format_eta(eta_s, sizeof eta_s, eta);
    fprintf(stderr, "step %5ld/%ld | loss %.4f | lr %.2e | grad norm %.3f | %.0f tok/s (%.0f real, %.0f target) | ETA %s\n",
            step + 1, total, mean_loss, st->lr, st->grad_norm, tps, real_tps, target_tps, eta_s);
    fprintf(g->metrics,
            "{\"step\": %ld, \"total_steps\": %ld, \"loss\": %.6f, \"lr\": %.6e, \"grad_norm\": %.6f, "
            "\"tokens_per_s\": %.1f, \"tokens\": %lld, \"real_tokens_per_s\": %.1f, \"real_tokens\": %lld, "
            "\"target_tokens_per_s\": %.1f, \"target_tokens\": %lld, \"elapsed_s\": %.3f, \"eta_s\": %.1f}\n",
            step + 1, total, mean_loss, st->lr, st->grad_norm, tps, (long long)k->tokens_total, real_tps,
            (long long)k->real_total, target_tps, (long long)k->targets_total, k->elapsed_s + now - g->t_start, eta);
    fflush(g->metrics);
    g->t_last = now;
    k->tokens_since = k->real_since = k->targets_since = 0;
    k->loss_since = 0.0;
}

/* ---------------------------------------------------------------------------------------------- */
/* validation and early stopping */

/* Label accuracy of the adapter on the validation set: every label of every example scored by
 * eval_score (forward only, activations of its own), the best-scoring one predicted. Returns 0 with
 * *acc set, or -1 with an error. */
static int train_val_accuracy(const trainer *t, int batch, double *acc) {
    const slim_dataset *v = &t->val;
    int64_t n = 0, right = 0; /* this rank's examples: i = rank, rank + ranks, ... */
    int64_t *idx = slim_malloc((size_t)v->n_examples * sizeof(int64_t));
    for (int64_t i = t->rank; i < v->n_examples; i += t->ranks) idx[n++] = i;
    double *scores = slim_malloc(((size_t)n + 1) * (size_t)v->n_labels * sizeof(double));
    int32_t *pred = slim_malloc(((size_t)n + 1) * sizeof(int32_t));
    int rc = n > 0 ? eval_score(&t->model, &t->lora, v, idx, n, batch, NULL, scores) : 0;
    if (rc == 0) {
        eval_argmax(scores, n, v->n_labels, pred);
        for (int64_t i = 0; i < n; i++) right += pred[i] == v->labels[idx[i]];
        rc = dist_sum_i64(&right, 1);
        *acc = (double)right / (double)v->n_examples;
    }
    free(idx);
    free(scores);
    free(pred);
    return rc;
}

/* The mean cross-entropy per target token over the whole validation set (one pass of its loader from
 * the start; the training activations run forward only, their inference flag set; each rank its share
 * of the batches, summed) into *loss, and the label accuracy into *acc (NAN without labels). Returns 0
 * or -1 with an error. */
static int train_validate(trainer *t, const slim_config *c, double *loss, double *acc) {
    loader *V = &t->val_loader;
    double sum[2] = {0.0, 0.0}; /* loss, targets */
    loader_reset(V);
    t->acts.inference = 1;
    for (int k = 0; k == 0 || !V->epoch_end; k++) {
        if (train_next_batch(V, k, t->rank, t->ranks) && V->n_targets > 0)
            sum[0] += model_forward_packed(&t->model, &t->lora, &t->acts, V->tokens, V->targets, V->pos, NULL,
                                           V->rows, V->T, NULL, NULL);
        sum[1] += (double)V->n_targets;
    }
    t->acts.inference = 0;
    if (dist_sum_f64(sum, 2) != 0) return -1;
    const long n = (long)sum[1];
    *loss = n > 0 ? sum[0] / (double)n : NAN;
    *acc = NAN;
    if (!isfinite(*loss)) return slim_set_error("validation loss is %g after %ld targets", *loss, n);
    return t->val_labels ? train_val_accuracy(t, c->batch_size, acc) : 0;
}

/* Counts a validation of metric value v at `done` steps for early stopping: an improvement of more
 * than min_delta over the best (or the first validation) copies the parameters to t->best. Returns 1
 * when patience has run out (the run stops), else 0. */
static int train_early_stop(trainer *t, const slim_config *c, long done, double v) {
    int better = t->best_step == 0 || (t->es_acc ? v > t->best_value + c->es_min_delta
                                                 : v < t->best_value - c->es_min_delta);
    if (better) {
        memcpy(t->best, t->lora.params, t->lora.n_params * sizeof(float));
        t->best_step = done;
        t->best_value = v;
        t->evals_since_best = 0;
        return 0;
    }
    return ++t->evals_since_best >= c->es_patience;
}

/* A JSON number, or null when x is not finite, into buf. */
static const char *train_json_num(char *buf, size_t cap, double x) {
    if (isfinite(x)) snprintf(buf, cap, "%.6f", x);
    else snprintf(buf, cap, "null");
    return buf;
}

/* Validates at `done` steps (of total): the progress line, a metrics line ({"step", "val_loss",
 * "val_accuracy", and with early stopping "best_step", "best_<metric>"}), the early-stopping count.
 * Returns 1 when early stopping ends the run, 0 to go on, -1 with an error. */
static int train_eval(trainer *t, const slim_config *c, train_log *g, long done, long total) {
    double loss, acc, t0 = slim_time_sec();
    if (train_validate(t, c, &loss, &acc) != 0) return -1;
    g->t_last += slim_time_sec() - t0; /* the next progress line's tokens/s counts training only */
    int stop = t->es_on ? train_early_stop(t, c, done, t->es_acc ? acc : loss) : 0;
    char a[32], b[32], best[160] = "", best_json[160] = "";
    if (t->es_on) {
        snprintf(best, sizeof best, " | best step %ld (%s %.4f)%s", t->best_step, c->es_metric, t->best_value,
                 stop ? ": stopping" : "");
        snprintf(best_json, sizeof best_json, ", \"best_step\": %ld, \"best_%s\": %s", t->best_step, c->es_metric,
                 train_json_num(b, sizeof b, t->best_value));
    }
    char acc_s[40] = "";
    if (isfinite(acc)) snprintf(acc_s, sizeof acc_s, " | val accuracy %.4f", acc);
    train_say("val  %5ld/%ld | val loss %.4f%s | %lld examples%s\n", done, total, loss, acc_s,
              (long long)t->val.n_examples, best);
    if (!g->metrics) return stop;
    fprintf(g->metrics, "{\"step\": %ld, \"val_loss\": %.6f, \"val_accuracy\": %s, \"val_examples\": %lld%s}\n", done,
            loss, train_json_num(a, sizeof a, acc), (long long)t->val.n_examples, best_json);
    fflush(g->metrics);
    return stop;
}

/* The two lines on the base model and the run that precede the steps. */
static void train_banner(const trainer *t, const slim_config *c) {
    const model *m = &t->model;
    char ranks[64] = "";
    if (t->ranks > 1) snprintf(ranks, sizeof ranks, " x %d ranks", t->ranks);
    train_say("slimtune train: base %s: %zu parameters stored as %s in %.1f MiB (%.3f bytes/parameter)%s\n",
              c->model, m->n_params, c->base_quant, m->weight_bytes / 1048576.0,
              (double)m->weight_bytes / (double)m->n_params,
              m->n_fallback ? " (some rows fell back to f16: see slimtune info)" : "");
    train_say(
            "slimtune train: %s | %lld examples, %lld tokens | LoRA r=%d alpha=%g on %d projections x %d layers: "
            "%zu trainable parameters | %ld steps (%d epochs x %ld), batch %d x accum %d%s, %d threads%s\n",
            c->model, (long long)t->data.n_examples, (long long)t->data.n_tokens, t->lora.r, t->lora.alpha,
            c->n_targets, m->cfg.n_layers, t->lora.n_params, t->total_steps, c->epochs, t->steps_per_epoch,
            c->batch_size, c->grad_accum, ranks, t->threads, t->ranks > 1 ? " a rank" : "");
    if (t->eval_every > 0)
        train_say("slimtune train: validation on %lld examples every %d steps%s", (long long)t->val.n_examples,
                  t->eval_every, t->es_on ? "" : "\n");
    if (t->es_on)
        train_say("; early stopping on %s: patience %d validations, min_delta %g\n", c->es_metric,
                  c->es_patience, c->es_min_delta);
}

/* ---------------------------------------------------------------------------------------------- */
/* checkpoints, signals and resuming */

/* Keys that may differ between a checkpoint's config and the resumed run's: they do not change what
 * is computed (data.* is checked through the data's hash, train.threads through the thread count;
 * checkpointing gives the same gradients bit for bit). */
static const char *const train_resume_free_keys[] = {"out_dir",          "data",          "eval",          "export",
                                                     "validate",         "train.log_every", "train.save_every",
                                                     "train.keep_checkpoints", "train.threads",
                                                     "train.checkpointing",    "train.memory_limit_mib", NULL};

static volatile sig_atomic_t train_stop_signal; /* SIGINT / SIGTERM received: stop after the step */

static void train_on_signal(int sig) { train_stop_signal = sig; }

/* Installs (on = 1) or removes (on = 0) the SIGINT/SIGTERM handlers of the step loop; a second signal
 * of the same kind takes its default action (SA_RESETHAND). */
static void train_signals(int on, struct sigaction old[2]) {
    static const int sigs[2] = {SIGINT, SIGTERM};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = train_on_signal;
    sa.sa_flags = SA_RESETHAND | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 2; i++) sigaction(sigs[i], on ? &sa : &old[i], on ? &old[i] : NULL);
    if (on) train_stop_signal = 0;
}

/* Checks that every rank holds the same LoRA parameters (they make the same updates from the same
 * summed gradients; a difference means a broken job). Returns 0 or -1 with an error. */
static int train_check_ranks(const trainer *t, long step) {
    int same = dist_same(t->lora.params, t->lora.n_params * sizeof(float));
    if (same < 0) return -1;
    return same ? 0 : slim_set_error("after step %ld the ranks hold different LoRA parameters: the data-parallel job "
                                     "is inconsistent (different binaries or data on its hosts?)", step);
}

/* Writes checkpoint <ckpt_dir>/step-<step> (step: optimizer steps done): the state, the metrics so
 * far, the config and the adapter; rank 0 writes, after every rank has checked that the parameters
 * agree. Returns 0 or -1 with an error. */
static int train_checkpoint(const trainer *t, const slim_config *c, train_log *g, long step) {
    if (train_check_ranks(t, step) != 0) return -1;
    if (t->rank != 0) return 0;
    ckpt_state s = {.step = step, .adam_t = t->opt.t, .loader = loader_get_state(&t->loader), .threads = t->threads,
                    .ranks = t->ranks,
                    .n_params = (int64_t)t->lora.n_params, .params = t->lora.params, .adam_m = t->opt.m,
                    .adam_v = t->opt.v, .log = g->c, .best_params = t->best, .best_step = t->best_step,
                    .evals_since_best = t->evals_since_best, .best_value = t->best_value};
    s.log.elapsed_s += slim_time_sec() - g->t_start;
    memcpy(s.dataset_sha256, t->data_sha256, sizeof s.dataset_sha256);
    ckpt_writer w;
    char path[4400];
    if (ckpt_begin(&w, t->ckpt_dir, step) != 0) return -1;
    int rc = fflush(g->metrics) != 0 ? slim_set_error("%s: write failed", g->tmp) : 0;
    if (rc == 0) rc = ckpt_write_state(&w, &s);
    if (rc == 0) rc = ckpt_copy_file(&w, "metrics.jsonl", g->tmp);
    if (rc == 0) rc = slim_format_path(path, sizeof path, "%s/config.json", w.tmp);
    if (rc == 0) rc = config_save(c, path);
    if (rc == 0) rc = slim_format_path(path, sizeof path, "%s/adapter.gguf", w.tmp);
    if (rc == 0) rc = lora_save(&t->lora, &t->model, path);
    if (rc != 0) {
        ckpt_abort(&w);
        return -1;
    }
    return ckpt_commit(&w, c->keep_checkpoints);
}

/* Refuses a checkpoint (directory from) whose config.json differs from config c in a key outside
 * train_resume_free_keys. Returns 0 or -1 with an error naming the key. */
static int train_check_config(const trainer *t, const slim_config *c, const char *from) {
    char saved_path[4400], now_path[4400];
    if (slim_format_path(saved_path, sizeof saved_path, "%s/config.json", from) != 0) return -1;
    if (slim_format_path(now_path, sizeof now_path, "%s/.resume-config.%d.json", t->dir, (int)getpid()) != 0)
        return -1;
    cJSON *saved = slim_read_json(saved_path), *now = NULL;
    if (saved && config_save(c, now_path) == 0) now = slim_read_json(now_path);
    unlink(now_path);
    int rc = saved && now ? ckpt_compare_config(saved, now, train_resume_free_keys, from) : -1;
    cJSON_Delete(saved);
    cJSON_Delete(now);
    return rc;
}

/* Restores the run from checkpoint `from` (found by the caller): refuses another config (a key that
 * changes the result), other data (its hash), another rank or thread count; then loads the adapter, the
 * AdamW state, the loader's position and the log's counters. Returns 0 or -1 with an error. */
static int train_restore(trainer *t, const slim_config *c, const char *from, train_log *g) {
    if (train_check_config(t, c, from) != 0) return -1;
    ckpt_state s = {.n_params = (int64_t)t->lora.n_params, .params = t->lora.params, .adam_m = t->opt.m,
                    .adam_v = t->opt.v, .best_params = t->best};
    if (ckpt_read_state(from, &s) != 0) return -1;
    if (memcmp(s.dataset_sha256, t->data_sha256, sizeof s.dataset_sha256) != 0) {
        char was[65], now[65];
        ckpt_hex(s.dataset_sha256, was);
        ckpt_hex(t->data_sha256, now);
        return slim_set_error("%s/data/train.h5: the training data (prepared from %s, sha256 %.16s...) is not the data "
                              "of the checkpoint %s (sha256 %.16s...): resume with the data it was trained on, or "
                              "train afresh without --resume", c->out_dir, t->data.source_file, now, from, was);
    }
    if (s.ranks != t->ranks)
        return slim_set_error("%s ran as %lld ranks, this run has %d: a step's global batch (train.batch_size x "
                              "train.grad_accum x ranks) and its sums depend on the rank count, so it would not "
                              "continue the same run (launch it with mpirun -np %lld%s)", from, (long long)s.ranks,
                              t->ranks, (long long)s.ranks, s.ranks == 1 ? ", or without mpirun" : "");
    if (s.threads != t->threads)
        return slim_set_error("train.threads: this run has %d threads a rank, the checkpoint %s ran with %lld: floating-point "
                              "sums depend on the thread count, so it would not continue exactly (pass --threads %lld)",
                              t->threads, from, (long long)s.threads, (long long)s.threads);
    if (s.step > t->total_steps)
        return slim_set_error("%s: step %lld is past the run's %ld steps", from, (long long)s.step, t->total_steps);
    if (loader_set_state(&t->loader, s.loader) != 0) return -1;
    t->opt.t = (long)s.adam_t;
    t->step0 = (long)s.step;
    g->c = s.log;
    t->best_step = (long)s.best_step;
    t->evals_since_best = (long)s.evals_since_best;
    t->best_value = s.best_value;
    train_say("slimtune train: resuming from %s at step %ld of %ld\n", from, t->step0, t->total_steps);
    return 0;
}

/* --init-adapter: the adapter at path (llama.cpp LoRA GGUF or PEFT directory) replaces the seeded
 * initialisation; its rank, alpha and targets must be the config's. Returns 0 or -1 with an error. */
static int train_init_adapter(trainer *t, const slim_config *c, const char *path) {
    lora_adapter a;
    if (lora_load(&a, &t->model, path) != 0) return -1;
    int rc = 0;
    if (a.r != t->lora.r || fabsf(a.alpha - t->lora.alpha) > 1e-6f * t->lora.alpha ||
        memcmp(a.enabled, t->lora.enabled, sizeof a.enabled) != 0)
        rc = slim_set_error("--init-adapter %s: rank %d, alpha %g or its targets differ from %s's lora.r %d, "
                            "lora.alpha %g, lora.targets", path, a.r, a.alpha, c->path, t->lora.r, t->lora.alpha);
    else
        memcpy(t->lora.params, a.params, a.n_params * sizeof(float));
    lora_free(&a);
    if (rc == 0) train_say("slimtune train: starting from the adapter %s\n", path);
    return rc;
}

/* Opens the log and, with --resume, restores the run from its checkpoint (o->resume_dir, else the
 * newest under <out_dir>/train/checkpoints); removes the checkpoints that the run will write anew
 * (all of them for a fresh run). Returns 0 or -1 with an error (the log is then closed). */
static int train_begin(trainer *t, const slim_config *c, const train_opts *o, train_log *g) {
    char from[4400] = "", metrics[4500];
    if (o->resume && o->resume_dir && slim_format_path(from, sizeof from, "%s", o->resume_dir) != 0) return -1;
    if (o->resume && !o->resume_dir) {
        int found = ckpt_latest(t->ckpt_dir, from, sizeof from);
        if (found < 0) return -1;
        if (!found) return slim_set_error("--resume: no checkpoint under %s (train without --resume to start)",
                                          t->ckpt_dir);
    }
    if (!from[0] && o->init_adapter && train_init_adapter(t, c, o->init_adapter) != 0) return -1;
    if (from[0] && slim_format_path(metrics, sizeof metrics, "%s/metrics.jsonl", from) != 0) return -1;
    memset(g, 0, sizeof *g); /* ranks other than 0 write no log */
    if (t->rank == 0 && train_log_open(g, t->dir, from[0] ? metrics : NULL) != 0) return -1;
    /* checkpoints past the start would be written anew (or belong to another run) */
    if ((from[0] && train_restore(t, c, from, g) != 0) ||
        (t->rank == 0 && ckpt_remove_after(t->ckpt_dir, from[0] ? t->step0 : -1) < 0)) {
        if (g->metrics) slim_atomic_abort(g->metrics, g->tmp);
        return -1;
    }
    return 0;
}

/* The signal (SIGINT / SIGTERM) that any rank has received, 0: none, -1 with an error: every rank
 * stops after the same step. */
static int train_agree_stop(void) {
    int64_t sig = train_stop_signal;
    return dist_max_i64(&sig, 1) != 0 ? -1 : (int)sig;
}

/* The run's closing lines (rank 0): steps, time, tokens/s, the time the ranks spent summing, and why
 * it stopped early. */
static void train_summary(const trainer *t, const slim_config *c, const train_log *g, long step, int es, int stop) {
    double elapsed = slim_time_sec() - g->t_start + 1e-9;
    train_say("slimtune train: %ld steps in %.1f s, %.0f tokens/s\n", step - t->step0, elapsed,
              g->c.tokens_total / (g->c.elapsed_s + elapsed));
    if (t->ranks > 1 && step > t->step0)
        train_say("slimtune train: %d ranks: rank 0 spent %.1f ms a step (%.1f%%) in the sums over the ranks "
                  "(%zu LoRA gradients, %.2f MB a step)\n", t->ranks, 1e3 * dist_comm_seconds() / (step - t->step0),
                  100.0 * dist_comm_seconds() / elapsed, t->lora.n_params, t->lora.n_params * 4e-6);
    if (es)
        train_say("slimtune train: early stopping after step %ld: %s has not improved by more than %g for %d "
                  "validations; the best was at step %ld (%s %.4f)\n", step, c->es_metric, c->es_min_delta,
                  c->es_patience, t->best_step, c->es_metric, t->best_value);
    if (stop)
        train_say("slimtune train: stopped by %s after step %ld: saved %s/step-%06ld; continue with --resume\n",
                  stop == SIGINT ? "SIGINT" : "SIGTERM", step, t->ckpt_dir, step);
}

/* Runs the steps from t->step0, logging to <dir>/metrics.jsonl (committed when every step is done or
 * a signal stopped the run, removed on an error) and saving checkpoints. Returns SLIM_OK,
 * SLIM_STOPPED + signal, or -1 with an error. */
static int train_loop(trainer *t, const slim_config *c, train_log *g) {
    train_banner(t, c);
    struct sigaction old[2];
    train_signals(1, old);
    g->t_start = g->t_last = slim_time_sec();
    int rc = 0, stop = 0, es = t->es_on && t->evals_since_best >= c->es_patience; /* resumed after stopping */
    long step = t->step0;
    for (; step < t->total_steps && rc == 0 && !stop && !es; step++) {
        train_stats st;
        rc = train_step(t, c, step, &st);
        if (rc != 0) break;
        train_log_step(g, &st, step, t->step0, t->total_steps, c->log_every);
        if (t->eval_every > 0 && ((step + 1) % t->eval_every == 0 || step + 1 == t->total_steps)) {
            es = train_eval(t, c, g, step + 1, t->total_steps);
            if (es < 0) { rc = -1; break; }
        }
        stop = train_agree_stop();
        if (stop < 0) { rc = -1; break; }
        if (stop || es || st.epoch_end || step + 1 == t->total_steps ||
            (c->save_every > 0 && (step + 1) % c->save_every == 0))
            rc = train_checkpoint(t, c, g, step + 1);
    }
    train_signals(0, old);
    if (step == t->total_steps) stop = 0; /* a signal during the last step: the run is done anyway */
    if (rc != 0) {
        if (g->metrics) slim_atomic_abort(g->metrics, g->tmp);
        return -1;
    }
    if (g->metrics && slim_atomic_commit(g->metrics, g->tmp, g->path) != 0) return -1;
    train_summary(t, c, g, step, es, stop);
    return stop ? SLIM_STOPPED + stop : SLIM_OK;
}

/* Writes <dir>/adapter.gguf and <dir>/config.json (the resolved config). With early stopping the last
 * adapter goes to <dir>/adapter-last.gguf and adapter.gguf is the best one (t->lora then holds it);
 * without, a stale adapter-last.gguf of an earlier run is removed. Rank 0 writes, after every rank has
 * checked that the parameters agree. Returns 0 or -1 with an error. */
static int train_save(trainer *t, const slim_config *c, const char *dir) {
    if (train_check_ranks(t, t->total_steps) != 0) return -1;
    if (t->rank != 0) return 0;
    char path[4096];
    if (slim_format_path(path, sizeof path, "%s/adapter-last.gguf", dir) != 0) return -1;
    if (t->es_on && t->best_step > 0) {
        if (lora_save(&t->lora, &t->model, path) != 0) return -1;
        train_say("slimtune train: wrote %s (the last adapter)\n", path);
        memcpy(t->lora.params, t->best, t->lora.n_params * sizeof(float));
    } else if (unlink(path) != 0 && errno != ENOENT) {
        return slim_set_error("%s: cannot remove: %s", path, strerror(errno));
    }
    if (slim_format_path(path, sizeof path, "%s/adapter.gguf", dir) != 0) return -1;
    if (lora_save(&t->lora, &t->model, path) != 0) return -1;
    if (t->es_on && t->best_step > 0)
        train_say("slimtune train: wrote %s (the best adapter: step %ld, %s %.4f)\n", path, t->best_step,
                  c->es_metric, t->best_value);
    else
        train_say("slimtune train: wrote %s\n", path);
    if (slim_format_path(path, sizeof path, "%s/config.json", dir) != 0) return -1;
    return config_save(c, path);
}

/* ---------------------------------------------------------------------------------------------- */
/* the subcommand */

/* cfg with the overrides of o: a shallow copy whose strings belong to cfg and o. */
static slim_config train_resolve_config(const slim_config *cfg, const train_opts *o) {
    slim_config c = *cfg;
    if (o->out_dir) c.out_dir = (char *)o->out_dir;
    if (o->max_steps >= 0) c.max_steps = (int)o->max_steps;
    if (o->threads >= 0) c.threads = (int)o->threads;
    return c;
}

int train_run(const slim_config *cfg, const train_opts *o) {
    const slim_config c = train_resolve_config(cfg, o);
    if (c.threads > 0) omp_set_num_threads(c.threads);
    if (dist_init() != 0) return -1;
    trainer t;
    memset(&t, 0, sizeof t);
    t.rank = dist_rank();
    t.ranks = dist_size();
    train_log g;
    int rc = train_setup(&t, &c);
    if (rc == 0) rc = train_begin(&t, &c, o, &g);
    if (rc == 0) rc = train_loop(&t, &c, &g);
    if (rc == SLIM_OK) rc = train_save(&t, &c, t.dir);
    train_free(&t);
    return rc == 0 ? SLIM_OK : rc > 0 ? rc : -1;
}

/* X_run through slim_config_main. */
static int train_run_opts(const slim_config *cfg, const void *o) { return train_run(cfg, o); }

int train_main(int argc, char **argv) {
    train_opts o;
    int r = train_parse_args(&o, argc, argv);
    return slim_config_main(r, train_usage, o.config_path, train_run_opts, &o);
}
