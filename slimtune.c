/* slimtune.c — the command-line entry point: dispatches to the stages.
 *
 *   slimtune data prepare   CSV/TSV/JSONL -> tokenized HDF5 dataset   (data/prepare.c)
 *   slimtune data validate  a dataset report for curators, exit code  (data/validate.c)
 *   slimtune train          LoRA fine-tuning                          (train/train.c)
 *   slimtune eval           label scoring against baselines           (eval/eval.c)
 *   slimtune export         merged GGUF for llama.cpp + LoRA GGUF     (export/export.c)
 *   slimtune info MODEL     what a GGUF model holds                   (below)
 *   slimtune quantize       GGUF weights to F16/Q8_0/Q4_K/...         (export/quantize.c)
 *   slimtune tokenize       a text's tokens, as llama-tokenize prints  (data/tokenize.c) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "../data/prepare.h"
#include "../data/tokenize.h"
#include "../data/validate.h"
#include "../eval/eval.h"
#include "../export/export.h"
#include "../export/quantize.h"
#include "../train/train.h"
#include "format/gguf.h"
#include "format/hf.h"
#include "model/model.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: slimtune <command> [options]   (each command takes --help)\n"
            "  data prepare --config FILE   tokenize a CSV/TSV/JSONL dataset into HDF5 (<out_dir>/data/*.h5)\n"
            "  data validate --config FILE  check a dataset: duplicates, leakage, labels, lengths (report + exit code)\n"
            "  train --config FILE          train LoRA adapters (<out_dir>/train/adapter.gguf)\n"
            "  eval --config FILE           score the test split against baselines (<out_dir>/eval/report.*)\n"
            "  export --config FILE         merge the adapter and write GGUF (<out_dir>/export/)\n"
            "  info MODEL                   architecture, tensors, tokenizer and training memory of a model\n"
            "  quantize IN.gguf OUT.gguf --type T   write a GGUF with its weights in F16/Q8_0/Q4_0/Q4_K/...\n"
            "  tokenize MODEL [--text S | --file F] [--ids-only] [--no-bos] [--parse-special]   tokens of a text\n");
}

/* `slimtune info MODEL [--batch B] [--seq T] [--rank R]`: hyper-parameters, tensor types and bytes,
 * tokenizer, and the memory a training run would take at each base.quant. Reads metadata only. */
static int info_main(int argc, char **argv) {
    const char *path = NULL;
    int B = 8, T = 256, r = 8;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: slimtune info MODEL [--batch B] [--seq T] [--rank R]\n"
                   "  MODEL is a GGUF file or a Hugging Face directory. Prints architecture, parameter count,\n"
                   "  tensor types and bytes, tokenizer, and the memory of a LoRA training run (rank R on all seven\n"
                   "  projections, micro-batches of B x T tokens; default 8 x 256, r 8) at each base.quant.\n");
            return 0;
        } else if (!strcmp(argv[i], "--batch") && i + 1 < argc) B = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seq") && i + 1 < argc) T = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rank") && i + 1 < argc) r = atoi(argv[++i]);
        else if (!path && argv[i][0] != '-') path = argv[i];
        else { fprintf(stderr, "slimtune info: unknown argument '%s'\n", argv[i]); return 2; }
    }
    if (!path || B < 1 || T < 1 || r < 1) { fprintf(stderr, "usage: slimtune info MODEL [--batch B] [--seq T] [--rank R]\n"); return 2; }
    struct stat st;
    gguf_file g;
    int is_dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    if ((is_dir ? hf_open(&g, path) : gguf_open(&g, path)) != 0) { fprintf(stderr, "slimtune info: %s\n", slim_last_error()); return 2; }
    model_config c;
    if (model_read_config(&g, &c) != 0) { fprintf(stderr, "slimtune info: %s\n", slim_last_error()); gguf_close(&g); return 2; }
    printf("model         %s\n", path);
    printf("architecture  %s: dim %d, %d layers, %d heads (%d kv heads, head dim %d), ffn %d, vocab %d, context %d\n",
           c.arch == ARCH_QWEN2 ? "qwen2" : "llama", c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn_dim,
           c.vocab_size, c.ctx_len);
    printf("              rms eps %g, rope theta %g, %s RoPE%s, %s embeddings\n", c.norm_eps, c.rope_theta,
           c.rope_neox ? "neox" : "normal (adjacent pairs)", gguf_find_tensor(&g, "rope_freqs.weight") ? " with frequency factors" : "",
           gguf_find_tensor(&g, "output.weight") ? "untied" : "tied");
    uint64_t n_elem = 0, bytes[64] = {0}, count[64] = {0};
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        const gguf_tensor *t = &g.tensors[i];
        n_elem += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
        if (t->type < 64) { bytes[t->type] += t->nbytes; count[t->type]++; }
    }
    printf("parameters    %llu in %llu tensors\n", (unsigned long long)n_elem, (unsigned long long)g.n_tensors);
    for (int ty = 0; ty < 64; ty++)
        if (count[ty]) printf("  %-6s      %llu tensors, %.2f MiB\n", gguf_type_name(ty), (unsigned long long)count[ty], bytes[ty] / 1048576.0);
    const char *tk = gguf_find_kv(&g, "tokenizer.ggml.model") ? gguf_get_str(&g, "tokenizer.ggml.model") : NULL;
    if (is_dir && tk && !strcmp(tk, "none")) tk = "tokenizer.json";
    tokenizer tok;
    if (tokenizer_init_gguf(&tok, &g) == 0 || (is_dir && tokenizer_init_hf(&tok, path) == 0)) {
        printf("tokenizer     %s, %d tokens, BOS %d, EOS %d, fingerprint %016llx\n", tk ? tk : "?", tok.n_vocab, tok.bos_id,
               tok.eos_id, (unsigned long long)tok.fingerprint);
        tokenizer_free(&tok);
    } else {
        printf("tokenizer     %s: not usable by slimtune yet (%s)\n", tk ? tk : "none", slim_last_error());
    }
    printf("chat template %s\n", gguf_find_kv(&g, "tokenizer.chat_template") ? "present" : "absent");

    /* memory of a training run at each base.quant: frozen weights + LoRA (weights, gradients, AdamW
     * moments: 4 floats a parameter) + activations of one micro-batch */
    size_t lora_params = 0;
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        int in, out;
        model_target_shape(&c, t, &in, &out);
        lora_params += (size_t)r * (in + out) * c.n_layers;
    }
    size_t act = acts_bytes(&c, B, T, r);
    printf("training memory (LoRA r=%d on all 7 projections: %zu parameters; micro-batch %d x %d tokens):\n", r, lora_params, B, T);
    printf("  base.quant   weights MiB   bytes/param   LoRA+AdamW MiB   activations MiB   total MiB\n");
    for (int q = 0; q < QUANT_COUNT; q++) {
        size_t wb = 0, nparam = 0;
        int n_fallback = 0;
        for (uint64_t i = 0; i < g.n_tensors; i++) {
            const gguf_tensor *t = &g.tensors[i];
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
    gguf_close(&g);
    return 0;
}

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
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) { usage(argc < 2 ? stderr : stdout); return argc < 2 ? 2 : 0; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "data")) {
        if (argc >= 3 && !strcmp(argv[2], "prepare")) return data_prepare_main(argc - 2, argv + 2);
        if (argc >= 3 && !strcmp(argv[2], "validate")) return data_validate_main(argc - 2, argv + 2);
        fprintf(stderr, "usage: slimtune data prepare|validate --config FILE (see --help)\n");
        return 2;
    }
    if (!strcmp(cmd, "train")) return train_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval")) return eval_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "export")) return export_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "info")) return info_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "quantize")) return quantize_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenize")) return tokenize_main(argc - 1, argv + 1);
    fprintf(stderr, "slimtune: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
