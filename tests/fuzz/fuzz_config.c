/* fuzz_config.c — libFuzzer target "config"; the entry code is fz_config() in harness.h (make fuzz). */
#include "harness.h"

FZ_LIBFUZZER_TARGET("config")
