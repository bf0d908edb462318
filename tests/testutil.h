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

/* Wall-time bounds in tests guard against blow-ups (a quadratic pass), not speed (make bench measures
 * that): they scale by this factor in a sanitizer build (make test SANITIZE=1), which runs 3-10x slower. */
#if defined(__SANITIZE_ADDRESS__)
#define TU_TIME_SCALE 10.0
#else
#define TU_TIME_SCALE 1.0
#endif

/* Ends the test binary: prints "<name>: N passed, N failed" and returns the exit status. */
static inline int tu_finish(const char *name) {
    printf("%s: %d passed, %d failed\n", name, tu_passed, tu_failed);
    return tu_failed ? 1 : 0;
}

#endif
