/* hf.h — a Hugging Face model directory (config.json + safetensors weights) seen as an in-memory GGUF.
 *
 * hf_open() does in C what llama.cpp's convert_hf_to_gguf.py does for LlamaForCausalLM (model_type
 * "llama", "mistral"; TinyLlama and SmolLM are "llama") and Qwen2ForCausalLM ("qwen2"), without
 * changing any tensor type (F32/F16/BF16 are kept):
 *   - config.json -> GGUF keys general.architecture ("llama" | "qwen2"), general.name (the directory's
 *     name), and <arch>.embedding_length, .block_count, .attention.head_count, .attention.head_count_kv,
 *     .feed_forward_length, .context_length, .vocab_size, .attention.layer_norm_rms_epsilon,
 *     .rope.freq_base, .rope.dimension_count, tokenizer.ggml.model = "none" (no vocabulary carried);
 *     rope_scaling {rope_type "llama3"} -> <arch>.rope.scaling.type = "llama3", .rope.scaling.factor,
 *     .rope.scaling.low_freq_factor, .rope.scaling.high_freq_factor,
 *     .rope.scaling.original_context_length and the F32 tensor rope_freqs.weight [head_dim/2] of
 *     per-frequency divisors (1 for high frequencies, factor for low ones, smoothed between), as the
 *     converter's LlamaModel.generate_extra_tensors computes them;
 *   - tensors renamed (model.embed_tokens.weight -> token_embd.weight, model.layers.N.self_attn.q_proj
 *     -> blk.N.attn_q, ..., lm_head.weight -> output.weight, absent when tie_word_embeddings);
 *     HF shape [out, in] is GGUF ne [in, out] with the same bytes;
 *   - llama only: q_proj/k_proj rows (and biases) permuted from HF's rotate-half order to GGUF's
 *     adjacent-pair RoPE order (LlamaModel.permute: reshape(n_head, 2, hd/2, in).swapaxes(1, 2));
 *     qwen2 keeps HF order (llama.cpp runs qwen2 with NEOX-style RoPE) and needs q/k/v biases.
 * Weights: model.safetensors, else model.safetensors.index.json ("weight_map": name -> shard file in
 * the same directory). Every tensor must be present with the shape the config implies; unknown
 * tensors are errors (except *.rotary_emb.inv_freq, which is skipped as llama.cpp does). */
#ifndef SLIM_HF_H
#define SLIM_HF_H

#include "gguf.h"

/* Loads the HF model directory dir into *g as if it were a GGUF file read by gguf_open(): kvs and
 * tensors as above. Tensors that need no row permutation (and are aligned to their element size) point
 * into the safetensors files' read-only mappings, which g->owner keeps open (gguf_close() closes them);
 * the others (permuted Q/K, rope_freqs) are copied into one read-only anonymous mapping held in g->map
 * (32-aligned; gguf_close() releases it with munmap). g->path is dir, g->version 3, g->alignment 32,
 * g->data_offset 0, g->map_is_file 0. Returns 0, or -1 with an error naming the file and the key or
 * tensor at fault (missing or ill-typed config key, unsupported model_type or rope_scaling, head_dim
 * != hidden_size / num_attention_heads, missing/unknown/mis-shaped tensor, bad safetensors file).
 * On failure *g is left freed. */
int hf_open(gguf_file *g, const char *dir);

/* 1 when path is a directory holding a config.json (an HF model directory), else 0. */
int hf_is_model_dir(const char *path);

/* transformers' name of a llama / qwen2 layer tensor from llama.cpp's ("attn_q.weight" ->
 * "self_attn.q_proj.weight", "ffn_norm.weight" -> "post_attention_layernorm.weight"), or NULL. */
const char *hf_layer_name(const char *gguf_suffix);

#endif
