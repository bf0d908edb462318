/* fuzz_lora.c — libFuzzer target "lora"; the entry code is fz_lora() in harness.h (make fuzz). */
#include "harness.h"

FZ_LIBFUZZER_TARGET("lora")
