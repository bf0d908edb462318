/* slimtune.c — the command-line entry point: dispatches to the stages.
 *
 *   slimtune data prepare   CSV/TSV/JSONL -> tokenized HDF5 dataset   (data/prepare.c)
 *   slimtune data validate  a dataset report for curators, exit code  (data/validate.c)
 *   slimtune data drift     production rows against the training data, exit code  (data/drift.c)
 *   slimtune train          LoRA fine-tuning                          (train/train.c)
 *   slimtune eval           label scoring against baselines           (eval/eval.c)
 *   slimtune export         merged GGUF for llama.cpp + LoRA GGUF     (export/export.c)
 *   slimtune info MODEL     what a GGUF model or HF directory holds   (below)
 *   slimtune quantize       GGUF weights to F16/Q8_0/Q4_K/...         (export/quantize.c)
 *   slimtune tokenize       a text's tokens, as llama-tokenize prints  (data/tokenize.c)
 *
 * Every subcommand's X_main returns SLIM_OK, SLIM_GATE_FAILED or -1 (lib/cli.h); the exit status is
 * slim_exit_status()'s: 0 ok, 1 a gate failed (data validate, eval), 2 an error, printed here once. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "dist.h"
#include "common.h"
#include "config.h"
#include "../data/drift.h"
#include "../data/prepare.h"
#include "../data/tokenize.h"
#include "../data/validate.h"
#include "../eval/eval.h"
#include "../export/export.h"
#include "../export/predict.h"
#include "../export/quantize.h"
#include "../export/registry.h"
#include "../train/train.h"
#include "format/gguf.h"
#include "format/model_file.h"
#include "model/model.h"
#include "model/plan.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: slimtune <command> [options]   (each command takes --help)\n"
            "  data prepare --config FILE   tokenize a CSV/TSV/JSONL dataset into HDF5 (<out_dir>/data/*.h5)\n"
            "  data validate --config FILE  check a dataset: duplicates, leakage, labels, lengths (report + exit code)\n"
            "  data drift --config FILE --reference F --current F [--adapter A]  has new data drifted (exit 1)?\n"
            "  train --config FILE          train LoRA adapters (<out_dir>/train/adapter.gguf)\n"
            "  eval --config FILE           score the test split against baselines (<out_dir>/eval/report.*)\n"
            "  export --config FILE         merge the adapter and write GGUF (<out_dir>/export/)\n"
            "  predict --config FILE --input ROWS [--model M]   label predictions for new rows (JSONL)\n"
            "  models list|show N|promote N|rollback --config FILE   exported versions and the deployed one\n"
            "  info MODEL                   architecture, tensors, tokenizer and training memory of a model\n"
            "  quantize IN.gguf OUT.gguf --type T   write a GGUF with its weights in F16/Q8_0/Q4_0/Q4_K/...\n"
            "  tokenize MODEL [--text S | --file F] [--ids-only] [--no-bos] [--parse-special]   tokens of a text\n");
}

/* Options of `slimtune info`. */
typedef struct info_opts {
    const char *path;   /* MODEL: a GGUF file or a Hugging Face directory */
    const char *config; /* --config: plan this run's memory */
    long batch, seq, rank;
} info_opts;

#define INFO_USAGE "usage: slimtune info MODEL [--config FILE | --batch B --seq T --rank R]"

/* Parses `info MODEL [--config FILE] [--batch B] [--seq T] [--rank R]`: SLIM_OK, SLIM_HELP (usage
 * printed) or -1. */
static int info_parse_args(info_opts *o, int argc, char **argv) {
    *o = (info_opts){.path = NULL, .batch = 8, .seq = 256, .rank = 8};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long *num = !strcmp(a, "--batch") ? &o->batch : !strcmp(a, "--seq") ? &o->seq : !strcmp(a, "--rank") ? &o->rank : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf(INFO_USAGE "\n"
                   "  MODEL is a GGUF file or a Hugging Face directory. Prints architecture, parameter count,\n"
                   "  tensor types and bytes, tokenizer, and the memory of a LoRA training run (rank R on all seven\n"
                   "  projections, micro-batches of B x T tokens; default 8 x 256, r 8) at each base.quant.\n"
                   "  --config FILE: instead, the memory plan of that config's training run (train.batch_size x\n"
                   "  data.max_seq_len tokens, base.quant, lora.*, validation, train.checkpointing), as train\n"
                   "  prints it before it starts, and whether it fits the memory available.\n");
            return SLIM_HELP;
        } else if (!strcmp(a, "--config") && i + 1 < argc) {
            o->config = argv[++i];
        } else if (num && i + 1 < argc) {
            if (slim_parse_long(a, argv[++i], 1, 1L << 20, num)) return -1;
        } else if (!o->path && a[0] != '-') {
            o->path = a;
        } else {
            return slim_bad_option("info", a);
        }
    }
    if (!o->path) return slim_set_error("MODEL is required (" INFO_USAGE ")");
    return SLIM_OK;
}

/* Prints the hyper-parameters, tensor types and bytes, tokenizer and chat template of the open model g. */
static void info_print_model(const gguf_file *g, const model_config *c, const char *path) {
    printf("model         %s\n", path);
    printf("architecture  %s: dim %d, %d layers, %d heads (%d kv heads, head dim %d), ffn %d, vocab %d, context %d\n",
           c->arch == ARCH_QWEN2 ? "qwen2" : "llama", c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim,
           c->ffn_dim, c->vocab_size, c->ctx_len);
    printf("              rms eps %g, rope theta %g, %s RoPE%s, %s embeddings\n", c->norm_eps, c->rope_theta,
           c->rope_neox ? "neox" : "normal (adjacent pairs)", gguf_find_tensor(g, "rope_freqs.weight") ? " with frequency factors" : "",
           gguf_find_tensor(g, "output.weight") ? "untied" : "tied");
    uint64_t n_elem = 0, bytes[64] = {0}, count[64] = {0};
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        n_elem += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
        if (t->type < 64) { bytes[t->type] += t->nbytes; count[t->type]++; }
    }
    printf("parameters    %llu in %llu tensors\n", (unsigned long long)n_elem, (unsigned long long)g->n_tensors);
    for (int ty = 0; ty < 64; ty++)
        if (count[ty]) printf("  %-6s      %llu tensors, %.2f MiB\n", gguf_type_name(ty), (unsigned long long)count[ty], bytes[ty] / 1048576.0);
    const char *tk = gguf_find_kv(g, "tokenizer.ggml.model") ? gguf_get_str(g, "tokenizer.ggml.model") : NULL;
    if (slim_model_is_dir(path) && tk && !strcmp(tk, "none")) tk = "tokenizer.json";
    tokenizer tok;
    if (tokenizer_init_model(&tok, g, path) == 0) {
        printf("tokenizer     %s, %d tokens, BOS %d, EOS %d, fingerprint %016llx\n", tk ? tk : "?", tok.n_vocab, tok.bos_id,
               tok.eos_id, (unsigned long long)tok.fingerprint);
        tokenizer_free(&tok);
    } else {
        printf("tokenizer     %s: not usable by slimtune yet (%s)\n", tk ? tk : "none", slim_last_error());
    }
    printf("chat template %s\n", gguf_find_kv(g, "tokenizer.chat_template") ? "present" : "absent");
}

/* Prints the memory of a training run at each base.quant: frozen weights + LoRA (weights, gradients,
 * AdamW moments: 4 floats a parameter) + activations of one micro-batch of o->batch x o->seq tokens. */
static void info_print_memory(const gguf_file *g, const model_config *c, const info_opts *o) {
    int B = (int)o->batch, T = (int)o->seq, r = (int)o->rank;
    size_t lora_params = 0;
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        int in, out;
        model_target_shape(c, t, &in, &out);
        lora_params += (size_t)r * (in + out) * c->n_layers;
    }
    size_t act = acts_bytes(c, B, T, r);
    printf("training memory (LoRA r=%d on all 7 projections: %zu parameters; micro-batch %d x %d tokens):\n", r, lora_params, B, T);
    printf("  base.quant   weights MiB   bytes/param   LoRA+AdamW MiB   activations MiB   total MiB\n");
    for (int q = 0; q < QUANT_COUNT; q++) {
        size_t wb = 0, nparam = 0;
        int n_fallback = 0;
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            const gguf_tensor *t = &g->tensors[i];
            size_t n = (size_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
            nparam += n;
            if (t->n_dims == 2) {
                int fb;
                wb += model_matrix_bytes(q, t->type, t->ne[1], t->ne[0], &fb);
                n_fallback += fb;
            } else {
                wb += n * sizeof(float);
            }
        }
        size_t lb = lora_params * 4 * sizeof(float);
        printf("  %-10s   %11.2f   %11.3f   %14.2f   %15.2f   %9.2f", base_quant_names[q], wb / 1048576.0,
               (double)wb / (double)nparam, lb / 1048576.0, act / 1048576.0, (wb + lb + act) / 1048576.0);
        if (n_fallback) printf("   (%d matrices fall back to f16: rows not a multiple of 32)", n_fallback);
        printf("\n");
    }
}

/* Prints the memory plan (lib/model/plan.h) of config path's training run on the model g: rows of
 * data.max_seq_len tokens (the prepared data's longest example, which train plans with, is at most
 * that), the datasets left out (unknown before data prepare). Returns 0 or -1 with an error. */
static int info_print_plan(const gguf_file *g, const model_config *c, const char *path) {
    slim_config cfg;
    if (config_load(&cfg, path) != 0) { config_free(&cfg); return -1; }
    plan_run r = {.T = cfg.max_seq_len, .val_T = cfg.max_seq_len,
                  .threads = cfg.threads > 0 ? cfg.threads : omp_get_max_threads()};
    plan_run_from_config(&r, &cfg, config_validates(&cfg));
    mem_plan p;
    mem_plan_make(&p, g, c, &r);
    const size_t avail = plan_memory_limit(&cfg);
    const int layers = plan_layers(&cfg, &p, avail);
    printf("memory plan   %s: micro-batch %d x %d tokens, base.quant %s, LoRA r=%d on %d projections, %d threads; "
           "train.checkpointing %s -> %s\n", path, r.B, r.T, cfg.base_quant, r.lora_r, cfg.n_targets, r.threads,
           cfg.checkpointing, layers ? "layers" : "none");
    mem_plan_print(stdout, &p, "  ", layers);
    printf("  available            %9.1f MiB (%s): %s\n", avail / 1048576.0,
           cfg.memory_limit_mib > 0 ? "train.memory_limit_mib" : "MemAvailable",
           !avail || p.total[layers] <= avail ? "fits" : "does not fit: train would refuse it");
    config_free(&cfg);
    return 0;
}

/* `slimtune info MODEL`: what the model holds and the memory a training run would take at each
 * base.quant, or with --config that run's memory plan. Reads metadata only. Returns SLIM_OK or -1. */
static int info_run(const info_opts *o) {
    gguf_file g;
    model_config c;
    if (slim_model_open(&g, o->path) != 0) return -1;
    if (model_read_config(&g, &c) != 0) { gguf_close(&g); return -1; }
    info_print_model(&g, &c, o->path);
    int rc = 0;
    if (o->config) rc = info_print_plan(&g, &c, o->config);
    else info_print_memory(&g, &c, o);
    gguf_close(&g);
    return rc ? -1 : SLIM_OK;
}

/* Entry point of `slimtune info`; argv[0] = "info". Returns SLIM_OK or -1. */
static int info_main(int argc, char **argv) {
    info_opts o;
    int r = info_parse_args(&o, argc, argv);
    return r == SLIM_OK ? info_run(&o) : r == SLIM_HELP ? SLIM_OK : -1;
}

/* Dispatches argv[1] (and for `data`, argv[2]) to its stage; every result goes through slim_exit_status(). */
int main(int argc, char **argv) {
    /* OpenMP threads that spin while waiting steal the core the working thread needs whenever the
     * machine has any other load (measured here: 2-7x slower training and eval). libgomp reads
     * OMP_WAIT_POLICY only at start-up, so when the user has not chosen one, choose "passive" and
     * restart this program once with it. */
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        execv("/proc/self/exe", argv);
        /* if the restart fails, carry on with the default policy */
    }
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) { usage(argc < 2 ? stderr : stdout); return argc < 2 ? SLIM_EXIT_ERROR : SLIM_EXIT_OK; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "data")) {
        if (argc >= 3 && !strcmp(argv[2], "prepare")) return slim_exit_status("data prepare", data_prepare_main(argc - 2, argv + 2));
        if (argc >= 3 && !strcmp(argv[2], "validate")) return slim_exit_status("data validate", data_validate_main(argc - 2, argv + 2));
        if (argc >= 3 && !strcmp(argv[2], "drift")) return slim_exit_status("data drift", data_drift_main(argc - 2, argv + 2));
        slim_set_error("expected prepare, validate or drift: slimtune data prepare|validate|drift --config FILE (see "
                       "slimtune --help)");
        return slim_exit_status("data", -1);
    }
    static const struct { const char *name; int (*main)(int, char **); } commands[] = {
        {"train", train_main},       {"eval", eval_main},         {"export", export_main},
        {"info", info_main},         {"quantize", quantize_main}, {"tokenize", tokenize_main},
        {"predict", predict_main},   {"models", models_main},
    };
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(cmd, commands[i].name)) /* dist_finish: MPI ranks (train) end together, or abort on an error */
            return dist_finish(slim_exit_status(cmd, commands[i].main(argc - 1, argv + 1)));
    usage(stderr);
    slim_set_error("unknown command (see slimtune --help)");
    return slim_exit_status(cmd, -1);
}
