/* fuzz_dataset.c — libFuzzer target "dataset"; the entry code is fz_dataset() in harness.h (make fuzz). */
#include "harness.h"

FZ_LIBFUZZER_TARGET("dataset")
