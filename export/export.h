/* export.h — `slimtune export`: merge a LoRA adapter into its base and write GGUF for llama.cpp, in
 * llama.cpp's file types (f32 ... q4_k_m, export/mix.h), and the adapter alone. */
#ifndef SLIM_EXPORT_H
#define SLIM_EXPORT_H
#include "cli.h"
#include "config.h"

/* Options of `slimtune export --config FILE [--adapter PATH] [--out DIR]` (NULL: not given). */
typedef struct export_opts {
    const char *config, *adapter, *out;
} export_opts;

/* Parses argv (argv[0] = "export") into *o: SLIM_OK, SLIM_HELP (usage printed) or -1 (lib/cli.h). */
int export_parse_args(export_opts *o, int argc, char **argv);

/* Writes each of export.formats to <out>: merged-<format>.gguf (as export_merge, onto the weights of
 * export.merge_base) or, for "lora", adapter-lora.gguf (as export_adapter), for the adapter (default
 * <out_dir>/train/adapter.gguf; out default <out_dir>/export); a line per file on stdout. Returns
 * SLIM_OK or -1. */
int export_run(const slim_config *cfg, const export_opts *o);

/* Entry point of `slimtune export`: parse, load the config, run; argv[0] = "export". Returns SLIM_OK or
 * -1 (exit status 0 or 2). */
int export_main(int argc, char **argv);

/* Merges the LoRA adapter at adapter_path into the base at model_path and writes out_path (atomically,
 * one tensor at a time) in file type `format` (mix.h: f32 f16 bf16 q8_0 q4_0 q4_k_m q5_k_m q6_k): every
 * adapted projection becomes W' = W + (alpha/r) B A (B [out,r], A [r,in], W row-major [out,in] = GGUF ne
 * [in,out]) with W the base's weights as stored at base_quant (QUANT_KEEP: the file's own values, the
 * "original" merge; the training's base.quant: the "trained" merge, the values training computed with);
 * every matrix then takes its type in the format's mix (rows converted from those same weights, or
 * copied when neither type changes); other tensors are copied as they are (name, type, shape, order);
 * every metadata key/value of the base is carried over in order, general.name gets a " (slimtune LoRA
 * merged)" suffix, general.file_type the format's LLAMA_FTYPE, general.quantization_version 2, and
 * slimtune.lora.r / slimtune.lora.alpha / slimtune.lora.targets are added. Returns 0, or -1 with an error
 * naming the file and tensor at fault. */
int export_merge(const char *model_path, const char *adapter_path, const char *out_path, const char *format,
                 int base_quant);

/* Re-saves the adapter at adapter_path (checked against the base at model_path) as a llama.cpp LoRA
 * GGUF at out_path (lora_save). Returns 0 or -1. */
int export_adapter(const char *model_path, const char *adapter_path, const char *out_path);
#endif
