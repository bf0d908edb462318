/* fuzz_hf.c — libFuzzer target "hf"; the entry code is fz_hf() in harness.h (make fuzz). */
#include "harness.h"

FZ_LIBFUZZER_TARGET("hf")
