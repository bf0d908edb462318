/* slimtune.c — the command-line entry point: dispatches to the stages.
 *
 *   slimtune data prepare   CSV/JSONL -> tokenized HDF5 dataset       (data/prepare.c)
 *   slimtune train          LoRA fine-tuning                          (train/train.c)
 *   slimtune eval           label scoring against baselines           (eval/eval.c)
 *   slimtune export         merged GGUF for llama.cpp + LoRA GGUF     (export/export.c)
 *   slimtune info MODEL     what a GGUF model holds                   (below) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "../data/prepare.h"
#include "../eval/eval.h"
#include "../export/export.h"
#include "../train/train.h"
#include "gguf.h"
#include "model.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: slimtune <command> [options]   (each command takes --help)\n"
            "  data prepare --config FILE   tokenize a CSV/JSONL dataset into HDF5 (<out_dir>/data/*.h5)\n"
            "  train --config FILE          train LoRA adapters (<out_dir>/train/adapter.gguf)\n"
            "  eval --config FILE           score the test split against baselines (<out_dir>/eval/report.*)\n"
            "  export --config FILE         merge the adapter and write GGUF (<out_dir>/export/)\n"
            "  info MODEL.gguf              architecture, tensors and tokenizer of a model\n");
}

/* `slimtune info MODEL`: prints the model's hyper-parameters, tensor types and tokenizer. */
static int info_main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        printf("usage: slimtune info MODEL.gguf\n  Prints architecture, parameter count, tensor types and tokenizer.\n");
        return argc < 2 ? 2 : 0;
    }
    llama_model m;
    if (model_load(&m, argv[1]) != 0) { fprintf(stderr, "slimtune info: %s\n", slim_last_error()); return 2; }
    const llama_config *c = &m.cfg;
    printf("model        %s\n", argv[1]);
    printf("architecture llama: dim %d, %d layers, %d heads (%d kv heads, head dim %d), ffn %d, vocab %d, context %d\n",
           c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->ffn_dim, c->vocab_size, c->ctx_len);
    printf("norm eps     %g, rope theta %g\n", c->norm_eps, c->rope_theta);
    uint64_t n_elem = 0, bytes[64] = {0}, count[64] = {0};
    for (uint64_t i = 0; i < m.gguf.n_tensors; i++) {
        const gguf_tensor *t = &m.gguf.tensors[i];
        n_elem += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
        if (t->type < 64) { bytes[t->type] += t->nbytes; count[t->type]++; }
    }
    printf("parameters   %llu in %llu tensors\n", (unsigned long long)n_elem, (unsigned long long)m.gguf.n_tensors);
    for (int ty = 0; ty < 64; ty++)
        if (count[ty]) printf("  %-5s      %llu tensors, %llu bytes\n", ggml_type_name(ty), (unsigned long long)count[ty], (unsigned long long)bytes[ty]);
    printf("tokenizer    llama (SentencePiece BPE, byte fallback), %d tokens, BOS %d, EOS %d, fingerprint %016llx\n",
           m.tok.n_vocab, m.tok.bos_id, m.tok.eos_id, (unsigned long long)m.tok.fingerprint);
    printf("chat template %s\n", gguf_find_kv(&m.gguf, "tokenizer.chat_template") ? "present" : "absent");
    model_free(&m);
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
        if (argc < 3 || strcmp(argv[2], "prepare") != 0) {
            fprintf(stderr, "usage: slimtune data prepare --config FILE (see --help)\n");
            return 2;
        }
        return data_prepare_main(argc - 2, argv + 2);
    }
    if (!strcmp(cmd, "train")) return train_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval")) return eval_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "export")) return export_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "info")) return info_main(argc - 1, argv + 1);
    fprintf(stderr, "slimtune: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
