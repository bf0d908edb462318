/* testtok.h — helpers shared by the tokenizer tests (tests/lib/tokenizer/test_tokenizer*.c): mismatch reports and
 * llama.cpp's test-vector .out lines. */
#ifndef SLIM_TESTTOK_H
#define SLIM_TESTTOK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prints a string with control bytes escaped (at most limit bytes of it), for mismatch reports. */
static inline void tt_print_escaped(const char *s, size_t n, size_t limit) {
    for (size_t i = 0; i < n; i++) {
        if (i == limit) { fprintf(stderr, "...(%zu bytes)", n); break; }
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') fputs("\\n", stderr);
        else if (c == '\t') fputs("\\t", stderr);
        else if (c < 0x20) fprintf(stderr, "\\x%02x", c);
        else fputc(c, stderr);
    }
}

/* Parses the whitespace-separated ids of line[0..eol) into expect (at most cap kept); returns the count. */
static inline int tt_parse_ids(const char *line, const char *eol, int32_t *expect, int cap) {
    int n_expect = 0;
    for (const char *q = line; q < eol;) {
        char *after;
        long v = strtol(q, &after, 10);
        if (after == q) break;
        if (n_expect < cap) expect[n_expect++] = (int32_t)v;
        q = after;
    }
    return n_expect;
}

#endif
