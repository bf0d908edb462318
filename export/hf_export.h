/* hf_export.h — the merged model as a Hugging Face directory (export.formats "hf"), for transformers,
 * vLLM and TGI: config.json, model.safetensors (or model-0000k-of-0000N.safetensors shards past
 * export.hf_shard_mb with model.safetensors.index.json), generation_config.json, and the tokenizer files
 * when the base is a Hugging Face directory that has them.
 *
 * Tensors take transformers' llama / qwen2 names (model.embed_tokens.weight, model.layers.N.self_attn.
 * q_proj.weight, ..., lm_head.weight unless the embeddings are tied), matrices in BF16 (torch_dtype
 * bfloat16; the same rounding as the merged bf16 GGUF), vectors (norms, biases) in F32, llama's q/k rows
 * (and biases) back in Hugging Face order (model_qk_gguf_row). config.json is the base directory's own
 * with torch_dtype set, or, for a GGUF base, written from its hyper-parameters; a GGUF base with Llama 3
 * RoPE frequency factors is refused (config.json's rope_scaling cannot be recovered from them). */
#ifndef SLIM_HF_EXPORT_H
#define SLIM_HF_EXPORT_H

#include "merge.h"

/* Writes the directory dir (atomically: a temporary directory renamed; an existing dir replaced) from the
 * merged values of src; base_path is the base model (a GGUF file or a Hugging Face directory), shard_mb
 * the largest shard in MB (10^6 bytes). Returns 0 or -1 with an error. */
int hf_export(merge_src *src, const char *base_path, const char *dir, long shard_mb);

#endif
