/* peft.h — LoRA adapters as a Hugging Face PEFT directory (what transformers, PEFT and vLLM load):
 * adapter_config.json and adapter_model.safetensors.
 *
 * adapter_config.json: peft_type "LORA", task_type "CAUSAL_LM", r, lora_alpha, target_modules (q_proj
 * k_proj v_proj o_proj gate_proj up_proj down_proj), lora_dropout 0, bias "none", use_rslora false,
 * use_dora false, fan_in_fan_out false, base_model_name_or_path, inference_mode true.
 * adapter_model.safetensors: base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight [r, in] and
 * .lora_B.weight [out, r] (mlp.gate_proj ... for the MLP), F32, in Hugging Face row order: llama's
 * GGUF q/k rows are the Hugging Face rows permuted for adjacent-pair RoPE (llama.cpp's converter,
 * LlamaModel.permute: rows of each head viewed as [2, hd/2] are transposed to [hd/2, 2]), so B of q
 * and k is un-permuted on save and permuted on load; A is not touched (the permutation acts on the
 * output rows). Models with neox RoPE (qwen2) are not permuted. The scale is alpha / r in both. */
#ifndef SLIM_PEFT_H
#define SLIM_PEFT_H

#include "lora.h"

struct model;

/* Writes adapter a of model m as a PEFT directory at dir (atomically: a temporary directory renamed;
 * an existing dir is replaced); base_model names the base in adapter_config.json. Returns 0 or -1. */
int peft_save(const lora_adapter *a, const struct model *m, const char *dir, const char *base_model);

/* Loads a PEFT LoRA directory for model m: every target module on every layer, F32 / F16 / BF16
 * tensors of the model's shapes, nothing else. use_rslora (scale alpha / sqrt(r)) is carried as the
 * alpha that gives the same scale; DoRA, fan_in_fan_out, biases, layers_to_transform and
 * modules_to_save are refused by name. Returns 0, or -1 with an error naming the file and key or
 * tensor. */
int peft_load(lora_adapter *a, const struct model *m, const char *dir);

#endif
