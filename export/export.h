/* export.h — `slimtune export`: merge a LoRA adapter into its base and write GGUF for llama.cpp. */
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

/* Writes <out>/merged-f32.gguf (export_merge) and <out>/adapter-lora.gguf (export_adapter) for the
 * adapter (default <out_dir>/train/adapter.gguf; out default <out_dir>/export). Returns SLIM_OK or -1. */
int export_run(const slim_config *cfg, const export_opts *o);

/* Entry point of `slimtune export`: parse, load the config, run; argv[0] = "export". Returns SLIM_OK or
 * -1 (exit status 0 or 2). */
int export_main(int argc, char **argv);

/* Merges the LoRA adapter at adapter_path into the base GGUF at model_path and writes out_path
 * (atomically): every adapted projection becomes F32 W' = W + (alpha/r) B A (B [out,r], A [r,in],
 * W row-major [out,in] = GGUF ne [in,out]); every other tensor is copied as it is (name, type, shape,
 * bytes, order); every metadata key/value of the base is carried over in order, general.name gets a
 * " (slimtune LoRA merged)" suffix, and slimtune.lora.r / slimtune.lora.alpha / slimtune.lora.targets
 * are added. Returns 0, or -1 with an error naming the file and tensor at fault. */
int export_merge(const char *model_path, const char *adapter_path, const char *out_path);

/* Re-saves the adapter at adapter_path (checked against the base at model_path) as a llama.cpp LoRA
 * GGUF at out_path (lora_save). Returns 0 or -1. */
int export_adapter(const char *model_path, const char *adapter_path, const char *out_path);
#endif
