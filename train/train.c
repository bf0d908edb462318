/* train.c — `slimtune train`: LoRA fine-tuning of a frozen llama base on a prepared dataset.
 *
 * Reads <out_dir>/data/train.h5 (see lib/dataset.h), attaches LoRA adapters (config "lora"), and
 * runs AdamW with warmup + cosine decay over shuffled micro-batches, accumulating gradients over
 * train.grad_accum micro-batches per optimizer step. The loss is the mean cross-entropy over every
 * target token of the optimizer step (prompt and padding positions carry no loss). Writes
 * <out_dir>/train/adapter.gguf (llama.cpp LoRA GGUF), config.json (the resolved config) and
 * metrics.jsonl (one JSON object per logged step); a progress line goes to stderr. */
#include "train.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "config.h"
#include "dataset.h"
#include "model/model.h"
#include "optim.h"
#include "pack.h"
#include "sampler.h"

static void train_usage(FILE *f) {
    fprintf(f,
            "usage: slimtune train --config FILE [--out-dir DIR] [--max-steps N] [--threads N]\n"
            "  Trains LoRA adapters on <out_dir>/data/train.h5 (made by `slimtune data prepare`).\n"
            "  Writes <out_dir>/train/adapter.gguf, config.json and metrics.jsonl.\n"
            "  --out-dir DIR    override the config's out_dir\n"
            "  --max-steps N    stop after N optimizer steps (overrides train.max_steps)\n"
            "  --threads N      OpenMP threads (overrides train.threads)\n");
}

/* The units a micro-batch is made of: single examples, or packed rows of several (train.packing). */
typedef struct train_units {
    const slim_dataset *d;
    const pack_plan *plan; /* NULL: unit u is example u */
    int64_t n;
} train_units;

/* Examples of unit u: points *list at their indices and returns how many (with a plan, a slice of
 * plan->items; else the single example u, stored in *single). */
static int64_t train_unit_examples(const train_units *U, int64_t u, const int64_t **list, int64_t *single) {
    if (!U->plan) {
        *single = u;
        *list = single;
        return 1;
    }
    *list = U->plan->items + U->plan->row_start[u];
    return U->plan->row_start[u + 1] - U->plan->row_start[u];
}

/* Tokens of the longest unit among idx[0..B). */
static int train_batch_len(const train_units *U, const int64_t *idx, int B) {
    int64_t mx = 1;
    for (int b = 0; b < B; b++) {
        const int64_t *ex;
        int64_t single, len = 0;
        int64_t n = train_unit_examples(U, idx[b], &ex, &single);
        for (int64_t k = 0; k < n; k++) len += U->d->offsets[ex[k] + 1] - U->d->offsets[ex[k]];
        if (len > mx) mx = len;
    }
    return (int)mx;
}

/* Fills tokens, targets, pos and seg_start [B,T] for units idx[0..B), examples back to back in each
 * row, padded on the right (padding tokens are their own one-token examples, with no target). A target
 * never crosses examples. Returns the number of target tokens. */
static long train_fill_batch(const train_units *U, const int64_t *idx, int B, int T, int pad_id, int32_t *tokens,
                             int32_t *targets, int32_t *pos, int32_t *seg) {
    const slim_dataset *d = U->d;
    long n_targets = 0;
    for (int b = 0; b < B; b++) {
        const int64_t *ex;
        int64_t single;
        int64_t n = train_unit_examples(U, idx[b], &ex, &single);
        int t = 0;
        for (int64_t k = 0; k < n; k++) {
            int64_t off = d->offsets[ex[k]], len = d->offsets[ex[k] + 1] - off;
            int start = t;
            for (int64_t i = 0; i < len; i++, t++) {
                tokens[b * T + t] = d->tokens[off + i];
                int tgt = (i + 1 < len && d->loss_mask[off + i + 1]) ? d->tokens[off + i + 1] : -1;
                targets[b * T + t] = tgt;
                n_targets += tgt >= 0;
                pos[b * T + t] = (int32_t)i;
                seg[b * T + t] = start;
            }
        }
        for (; t < T; t++) {
            tokens[b * T + t] = pad_id;
            targets[b * T + t] = -1;
            pos[b * T + t] = 0;
            seg[b * T + t] = t;
        }
    }
    return n_targets;
}

/* Parses a non-negative decimal count; 0 or -1. */
static int train_parse_count(const char *s, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0) return -1;
    *out = v;
    return 0;
}

static void train_format_eta(char *buf, size_t cap, double s) {
    if (s < 0 || !isfinite(s)) s = 0;
    int h = (int)(s / 3600), m = (int)(s / 60) % 60, sec = (int)s % 60;
    snprintf(buf, cap, "%d:%02d:%02d", h, m, sec);
}

int train_main(int argc, char **argv) {
    const char *config_path = NULL, *out_override = NULL;
    long max_steps_override = -1;
    int threads_override = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { train_usage(stdout); return 0; }
        else if (!strcmp(argv[i], "--config") && i + 1 < argc) config_path = argv[++i];
        else if (!strcmp(argv[i], "--out-dir") && i + 1 < argc) out_override = argv[++i];
        else if (!strcmp(argv[i], "--max-steps") && i + 1 < argc) {
            if (train_parse_count(argv[++i], &max_steps_override) != 0) { fprintf(stderr, "slimtune train: --max-steps: '%s' is not a count\n", argv[i]); return 2; }
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            long t;
            if (train_parse_count(argv[++i], &t) != 0 || t > 4096) { fprintf(stderr, "slimtune train: --threads: '%s' is not a thread count\n", argv[i]); return 2; }
            threads_override = (int)t;
        }
        else { fprintf(stderr, "slimtune train: unknown or incomplete argument '%s'\n", argv[i]); train_usage(stderr); return 2; }
    }
    if (!config_path) { fprintf(stderr, "slimtune train: --config is required\n"); train_usage(stderr); return 2; }

    slim_config cfg;
    if (config_load(&cfg, config_path) != 0) { fprintf(stderr, "slimtune train: %s\n", slim_last_error()); return 2; }
    if (out_override) { free(cfg.out_dir); cfg.out_dir = slim_strdup(out_override); }
    if (max_steps_override >= 0) cfg.max_steps = (int)max_steps_override;
    if (threads_override >= 0) cfg.threads = threads_override;
    if (cfg.threads > 0) omp_set_num_threads(cfg.threads);

    int rc = 2;
    model model;
    slim_dataset data;
    memset(&data, 0, sizeof data);
    char path[4096], dir[2048];
    if (model_load_quant(&model, cfg.model, base_quant_index(cfg.base_quant)) != 0 ||
        model_require_tokenizer(&model) != 0) {
        fprintf(stderr, "slimtune train: %s\n", slim_last_error());
        config_free(&cfg);
        return 2;
    }
    snprintf(path, sizeof path, "%s/data/train.h5", cfg.out_dir);
    if (dataset_read(&data, path) != 0) { fprintf(stderr, "slimtune train: %s\n", slim_last_error()); goto out_model; }
    if (data.tokenizer_fingerprint != model.tok.fingerprint) {
        fprintf(stderr,
                "slimtune train: %s was tokenized with a different tokenizer (fingerprint %016llx) than the model %s "
                "(%016llx): run `slimtune data prepare` again with this model\n",
                path, (unsigned long long)data.tokenizer_fingerprint, cfg.model, (unsigned long long)model.tok.fingerprint);
        goto out_data;
    }
    if (data.n_examples < 1) { fprintf(stderr, "slimtune train: %s has no examples\n", path); goto out_data; }
    for (int64_t i = 0; i < data.n_tokens; i++)
        if (data.tokens[i] >= model.cfg.vocab_size) {
            fprintf(stderr, "slimtune train: %s: token id %d at position %lld is outside the model's vocabulary (%d)\n",
                    path, data.tokens[i], (long long)i, model.cfg.vocab_size);
            goto out_data;
        }

    int targets_on[LORA_N_TARGETS] = {0};
    for (int i = 0; i < cfg.n_targets; i++) targets_on[lora_target_index(cfg.targets[i])] = 1;
    lora_adapter lora;
    lora_init(&lora, &model.cfg, cfg.lora_r, cfg.lora_alpha, targets_on, (uint64_t)cfg.seed);
    float *grads = slim_calloc(lora.n_params, sizeof(float));
    adamw opt;
    adamw_init(&opt, lora.n_params, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay);

    int T_max = 1;
    int64_t *lengths = slim_malloc(sizeof(int64_t) * data.n_examples);
    for (int64_t e = 0; e < data.n_examples; e++) {
        lengths[e] = data.offsets[e + 1] - data.offsets[e];
        if (lengths[e] > T_max) T_max = (int)lengths[e];
    }
    pack_plan plan = {0};
    train_units units = {.d = &data, .plan = NULL, .n = data.n_examples};
    if (cfg.packing) {
        /* rows as long as the dataset's longest allowed example */
        if (data.max_seq_len > T_max) T_max = data.max_seq_len;
        if (pack_plan_build(&plan, lengths, data.n_examples, T_max) != 0) {
            fprintf(stderr, "slimtune train: %s\n", slim_last_error());
            free(lengths);
            goto out_lora;
        }
        units.plan = &plan;
        units.n = plan.n_rows;
        fprintf(stderr, "slimtune train: packing %lld examples into %lld rows of %d tokens: %.1f%% of the tokens are "
                "real (%.1f%% without packing)\n", (long long)data.n_examples, (long long)plan.n_rows, T_max,
                100.0 * pack_plan_efficiency(&plan), 100.0 * data.n_tokens / ((double)data.n_examples * T_max));
    }
    free(lengths);
    const int B = cfg.batch_size;
    acts acts;
    acts_init(&acts, &model.cfg, B, T_max, lora.r);
    int32_t *tokens = slim_malloc(sizeof(int32_t) * B * T_max), *targets = slim_malloc(sizeof(int32_t) * B * T_max);
    int32_t *pos = slim_malloc(sizeof(int32_t) * B * T_max), *seg = slim_malloc(sizeof(int32_t) * B * T_max);
    int64_t *order = slim_malloc(sizeof(int64_t) * units.n);
    int64_t *batch_idx = slim_malloc(sizeof(int64_t) * B);
    const int pad_id = model.tok.eos_id >= 0 ? model.tok.eos_id : 0;

    long micro_per_epoch = (long)((units.n + B - 1) / B);
    long steps_per_epoch = (micro_per_epoch + cfg.grad_accum - 1) / cfg.grad_accum;
    long total_steps = steps_per_epoch * cfg.epochs;
    if (cfg.max_steps > 0 && cfg.max_steps < total_steps) total_steps = cfg.max_steps;

    snprintf(dir, sizeof dir, "%s/train", cfg.out_dir);
    if (slim_mkdir_p(dir) != 0) { fprintf(stderr, "slimtune train: %s\n", slim_last_error()); goto out_all; }
    char metrics_path[4096], metrics_tmp[4200];
    snprintf(metrics_path, sizeof metrics_path, "%s/metrics.jsonl", dir);
    FILE *metrics = slim_atomic_open(metrics_path, metrics_tmp, sizeof metrics_tmp);
    if (!metrics) { fprintf(stderr, "slimtune train: %s\n", slim_last_error()); goto out_all; }

    size_t n_lora_params = lora.n_params;
    fprintf(stderr, "slimtune train: base %s: %zu parameters stored as %s in %.1f MiB (%.3f bytes/parameter)%s\n",
            cfg.model, model.n_params, cfg.base_quant, model.weight_bytes / 1048576.0,
            (double)model.weight_bytes / (double)model.n_params,
            model.n_fallback ? " (some rows fell back to f16: see slimtune info)" : "");
    fprintf(stderr,
            "slimtune train: %s | %lld examples, %lld tokens | LoRA r=%d alpha=%g on %d projections x %d layers: "
            "%zu trainable parameters | %ld steps (%d epochs x %ld), batch %d x accum %d, %d threads\n",
            cfg.model, (long long)data.n_examples, (long long)data.n_tokens, lora.r, lora.alpha, cfg.n_targets,
            model.cfg.n_layers, n_lora_params, total_steps, cfg.epochs, steps_per_epoch, B, cfg.grad_accum,
            omp_get_max_threads());

    train_sampler sampler = {.seed = (uint64_t)cfg.seed, .epoch = 0, .cursor = 0};
    int64_t order_epoch = -1;
    double t_start = slim_time_sec(), t_log = t_start;
    long tokens_since_log = 0, tokens_total = 0;
    double loss_since_log = 0.0;
    long targets_since_log = 0;
    for (long step = 0; step < total_steps; step++) {
        /* two passes over the same micro-batches: the first counts their targets (the loss is the mean
         * over every target of the step), the second runs forward and backward. A step ends at the end
         * of an epoch, so the last step of an epoch may have fewer micro-batches. */
        memset(grads, 0, sizeof(float) * lora.n_params);
        train_sampler start = sampler;
        long step_targets = 0;
        double step_loss = 0.0;
        for (int pass = 0; pass < 2; pass++) {
            sampler = start;
            for (int micro = 0; micro < cfg.grad_accum; micro++) {
                int epoch_end;
                int nb = train_sampler_next(&sampler, units.n, order, &order_epoch, batch_idx, B, &epoch_end);
                int T = train_batch_len(&units, batch_idx, nb);
                long nt = train_fill_batch(&units, batch_idx, nb, T, pad_id, tokens, targets, pos, seg);
                if (pass == 0) step_targets += nt;
                else if (nt > 0) {
                    step_loss += model_forward_packed(&model, &lora, &acts, tokens, targets, pos,
                                                      units.plan ? seg : NULL, nb, T, NULL, NULL);
                    model_backward(&model, &lora, &acts, grads, 1.0f / (float)step_targets);
                    tokens_since_log += (long)nb * T;
                    tokens_total += (long)nb * T;
                }
                if (epoch_end) break;
            }
        }
        loss_since_log += step_loss;
        targets_since_log += step_targets;
        float gnorm = grad_clip_norm(grads, lora.n_params, cfg.grad_clip);
        if (!isfinite(step_loss) || !isfinite(gnorm)) {
            fprintf(stderr, "slimtune train: training diverged at step %ld (loss %g, gradient norm %g); no adapter "
                    "written: lower train.lr or check the data\n", step + 1, step_loss, gnorm);
            slim_atomic_abort(metrics, metrics_tmp);
            goto out_all;
        }
        float lr = lr_schedule(step, total_steps, cfg.warmup_steps, cfg.lr, cfg.min_lr_ratio);
        adamw_step(&opt, lora.params, grads, lr);

        if ((step + 1) % cfg.log_every == 0 || step + 1 == total_steps) {
            double now = slim_time_sec();
            double tps = tokens_since_log / (now - t_log + 1e-9);
            double mean_loss = targets_since_log ? loss_since_log / targets_since_log : 0.0;
            double eta = (now - t_start) / (step + 1) * (total_steps - step - 1);
            char eta_s[32];
            train_format_eta(eta_s, sizeof eta_s, eta);
            fprintf(stderr, "step %5ld/%ld | loss %.4f | lr %.2e | grad norm %.3f | %.0f tok/s | ETA %s\n", step + 1,
                    total_steps, mean_loss, lr, gnorm, tps, eta_s);
            fprintf(metrics,
                    "{\"step\": %ld, \"total_steps\": %ld, \"loss\": %.6f, \"lr\": %.6e, \"grad_norm\": %.6f, "
                    "\"tokens_per_s\": %.1f, \"tokens\": %ld, \"elapsed_s\": %.3f, \"eta_s\": %.1f}\n",
                    step + 1, total_steps, mean_loss, lr, gnorm, tps, tokens_total, now - t_start, eta);
            fflush(metrics);
            t_log = now;
            tokens_since_log = 0;
            loss_since_log = 0.0;
            targets_since_log = 0;
        }
    }
    if (slim_atomic_commit(metrics, metrics_tmp, metrics_path) != 0) {
        fprintf(stderr, "slimtune train: %s\n", slim_last_error());
        goto out_all;
    }
    double elapsed = slim_time_sec() - t_start;
    fprintf(stderr, "slimtune train: %ld steps in %.1f s, %.0f tokens/s\n", total_steps, elapsed,
            tokens_total / (elapsed + 1e-9));

    snprintf(path, sizeof path, "%s/adapter.gguf", dir);
    if (lora_save(&lora, &model, path) != 0) { fprintf(stderr, "slimtune train: %s\n", slim_last_error()); goto out_all; }
    fprintf(stderr, "slimtune train: wrote %s\n", path);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (config_save(&cfg, path) != 0) { fprintf(stderr, "slimtune train: %s\n", slim_last_error()); goto out_all; }
    rc = 0;

out_all:
    free(tokens);
    free(targets);
    free(pos);
    free(seg);
    pack_plan_free(&plan);
    free(order);
    free(batch_idx);
    acts_free(&acts);
out_lora:
    adamw_free(&opt);
    free(grads);
    lora_free(&lora);
out_data:
    dataset_free(&data);
out_model:
    model_free(&model);
    config_free(&cfg);
    return rc;
}
