/* testutil.h — a minimal test harness: CHECK macros that count, and a summary line
 * "N passed, N failed" that scripts/run-tests adds up. A test binary exits non-zero on any failure. */
#ifndef SLIM_TESTUTIL_H
#define SLIM_TESTUTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int tu_passed, tu_failed;

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (cond) tu_passed++;                                                    \
        else {                                                                    \
            tu_failed++;                                                          \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);       \
            fprintf(stderr, __VA_ARGS__);                                         \
            fprintf(stderr, "\n");                                                \
        }                                                                         \
    } while (0)

/* Ends the test binary: prints "<name>: N passed, N failed" and returns the exit status. */
static inline int tu_finish(const char *name) {
    printf("%s: %d passed, %d failed\n", name, tu_passed, tu_failed);
    return tu_failed ? 1 : 0;
}

#endif
