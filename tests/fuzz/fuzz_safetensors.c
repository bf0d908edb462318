/* fuzz_safetensors.c — libFuzzer target "safetensors"; the entry code is fz_safetensors() in harness.h (make fuzz). */
#include "harness.h"

FZ_LIBFUZZER_TARGET("safetensors")
