/* fuzz_csv.c — libFuzzer target "csv"; the entry code is fz_csv() in harness.h (make fuzz). */
#include "harness.h"

FZ_LIBFUZZER_TARGET("csv")
