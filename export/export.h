/* export.h — `slimtune export`: merge a LoRA adapter into its base and write GGUF for llama.cpp. */
#ifndef SLIM_EXPORT_H
#define SLIM_EXPORT_H
/* Entry point of `slimtune export --config FILE [...]`; argv[0] = "export". Returns the exit status
 * (0 success, 2 error). */
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
