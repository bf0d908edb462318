/* model_file.h — one rule for opening a model path, used by every stage: a directory is a Hugging Face
 * checkpoint (config.json + safetensors, read by hf_open as an in-memory GGUF), anything else a GGUF
 * file (gguf_open). */
#ifndef SLIM_MODEL_FILE_H
#define SLIM_MODEL_FILE_H

#include "gguf.h"

/* Opens the model at path into *g (GGUF keys and tensors either way). Returns 0, or -1 with an error
 * naming the path (missing) or the file and key/tensor at fault. Close with gguf_close(). */
int slim_model_open(gguf_file *g, const char *path);

/* 1 when path is a directory (opened as a Hugging Face checkpoint), else 0. */
int slim_model_is_dir(const char *path);

#endif
