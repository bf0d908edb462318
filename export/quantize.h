/* quantize.h — `slimtune quantize`: rewrite a GGUF model with its weight matrices in a ggml
 * quantized (or half-precision) type, as llama.cpp's llama-quantize does with --pure. */
#ifndef SLIM_QUANTIZE_H
#define SLIM_QUANTIZE_H

#include <stdint.h>

/* Options of `slimtune quantize IN.gguf OUT.gguf --type T`. */
typedef struct quantize_opts {
    const char *in_path, *out_path;
    uint32_t type;           /* the ggml type of --type */
    const struct file_type *mix; /* --type q4_k_m / q5_k_m: llama-quantize's per-tensor mix (mix.h), else NULL */
} quantize_opts;

/* Parses argv (argv[0] = "quantize") into *o: SLIM_OK, SLIM_HELP (usage printed) or -1 (lib/cli.h).
 * T is one of f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k (every matrix that type, as
 * llama-quantize --pure) or q4_k_m, q5_k_m (llama-quantize's per-tensor mix). */
int quantize_parse_args(quantize_opts *o, int argc, char **argv);

/* Writes o->out_path with quantize_model(). Returns SLIM_OK or -1. */
int quantize_run(const quantize_opts *o);

/* Entry point: parse, run; argv[0] = "quantize". Returns SLIM_OK or -1 (exit status 0 or 2). */
int quantize_main(int argc, char **argv);

/* Writes out_path (atomically): every key/value of in_path in order, general.file_type set to the
 * llama.cpp LLAMA_FTYPE of `type`, and every tensor in order — 2-D (or higher) tensors whose name
 * ends in "weight" and does not contain "norm" are re-encoded as `type`, or as
 * quant_fallback_type(type, ne0) when their rows do not fit its blocks (reported on stderr); all other
 * tensors are copied unchanged. Source tensors may be of any type quant_dequantize_row reads.
 * Returns 0, or -1 with an error naming the file and tensor at fault. */
int quantize_model(const char *in_path, const char *out_path, uint32_t type);
/* As quantize_model, each matrix typed by the mix of file type ft (mix.h: q4_k_m, q5_k_m, ...; llama-quantize
 * without --pure), general.file_type ft's. */
int quantize_model_mix(const char *in_path, const char *out_path, const struct file_type *ft);

/* The ggml type named by a --type argument ("q4_k", "Q4_K", "f16", ...); -1 when unknown. */
int quantize_parse_type(const char *name);

/* llama.cpp's LLAMA_FTYPE_* number for a file whose weights are `type` (F16 1, Q4_0 2, Q4_1 3,
 * Q8_0 7, Q5_0 8, Q5_1 9, Q4_K 14 (Q4_K_S), Q5_K 16 (Q5_K_S), Q6_K 18, BF16 32, F32 0). */
uint32_t quantize_file_type(uint32_t type);

#endif
