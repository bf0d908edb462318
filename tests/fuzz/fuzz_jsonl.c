/* fuzz_jsonl.c — libFuzzer target "jsonl"; the entry code is fz_jsonl() in harness.h (make fuzz). */
#include "harness.h"

FZ_LIBFUZZER_TARGET("jsonl")
