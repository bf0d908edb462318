/* fuzz_tokenizer.c — libFuzzer target "tokenizer"; the entry code is fz_tokenizer() in harness.h (make fuzz). */
#include "harness.h"

FZ_LIBFUZZER_TARGET("tokenizer")
