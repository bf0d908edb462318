/* fuzz_gguf.c — libFuzzer target "gguf"; the entry code is fz_gguf() in harness.h (make fuzz). */
#include "harness.h"

FZ_LIBFUZZER_TARGET("gguf")
