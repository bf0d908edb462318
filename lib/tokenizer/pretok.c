/* pretok.c — hand-written pre-tokenizer splits and Unicode classes. See pretok.h. */
#include "pretok.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "common.h"

const char *pretok_name(int kind) {
    switch (kind) {
    case PRETOK_GPT2: return "gpt2";
    case PRETOK_LLAMA3: return "llama3";
    case PRETOK_QWEN2: return "qwen2";
    case PRETOK_SMOLLM: return "smollm";
    default: return "?";
    }
}

/* Unicode White_Space (PropList.txt): the \s of Oniguruma, Rust regex and llama.cpp */
static int pretok_is_space(uint32_t c) {
    if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D);
    if (c < 0x85) return 0;
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

int pretok_class(uint32_t c) {
    if (c > 0x10FFFF) return 0;
    int cls = 0;
    if (pretok_is_space(c)) cls |= PRETOK_S;
    if (c == '\r' || c == '\n') cls |= PRETOK_NL;
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
        cls |= PRETOK_L;
        break;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        cls |= PRETOK_N;
        break;
    default:
        break;
    }
    return cls;
}

/* classes of the ASCII characters, filled on first use */
static uint8_t pretok_ascii_cls[128];
static int pretok_ascii_ready;

static void pretok_init_ascii(void) {
    for (uint32_t c = 0; c < 128; c++) pretok_ascii_cls[c] = (uint8_t)pretok_class(c);
    __atomic_store_n(&pretok_ascii_ready, 1, __ATOMIC_RELEASE);
}

int pretok_decode(const char *s, size_t n, uint32_t *cp, uint8_t *cls, uint32_t *off) {
    if (!__atomic_load_n(&pretok_ascii_ready, __ATOMIC_ACQUIRE)) pretok_init_ascii();
    const uint8_t *u = (const uint8_t *)s;
    int k = 0;
    size_t i = 0;
    while (i < n) {
        uint8_t b = u[i];
        off[k] = (uint32_t)i;
        if (b < 0x80) {
            cp[k] = b;
            cls[k] = pretok_ascii_cls[b];
            k++;
            i++;
            continue;
        }
        /* strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing above U+10FFFF */
        uint32_t c = 0;
        int len = 0;
        if (b >= 0xC2 && b <= 0xDF) { len = 2; c = b & 0x1F; }
        else if (b >= 0xE0 && b <= 0xEF) { len = 3; c = b & 0x0F; }
        else if (b >= 0xF0 && b <= 0xF4) { len = 4; c = b & 0x07; }
        int ok = len > 0 && i + (size_t)len <= n;
        for (int j = 1; ok && j < len; j++) {
            if ((u[i + j] & 0xC0) != 0x80) ok = 0;
            else c = (c << 6) | (u[i + j] & 0x3F);
        }
        if (ok && ((len == 3 && (c < 0x800 || (c >= 0xD800 && c <= 0xDFFF))) || (len == 4 && (c < 0x10000 || c > 0x10FFFF))))
            ok = 0;
        if (!ok) {
            cp[k] = 0x80000000u | b;
            cls[k] = 0;
            k++;
            i++;
            continue;
        }
        cp[k] = c;
        cls[k] = (uint8_t)pretok_class(c);
        k++;
        i += (size_t)len;
    }
    off[k] = (uint32_t)n;
    return k;
}

static inline int pretok_lower(uint32_t c) { return (c >= 'A' && c <= 'Z') ? (int)(c + 32) : (int)c; }

/* The contractions 's 't 're 've 'm 'll 'd at i (fold: ASCII case-insensitive); returns the end or -1. */
static inline int pretok_contraction(const uint32_t *cp, int n, int i, int fold) {
    if (cp[i] != '\'' || i + 1 >= n) return -1;
    int d = fold ? pretok_lower(cp[i + 1]) : (int)cp[i + 1];
    if (d == 's' || d == 't' || d == 'm' || d == 'd') return i + 2;
    if (i + 2 >= n) return -1;
    int e = fold ? pretok_lower(cp[i + 2]) : (int)cp[i + 2];
    if ((d == 'r' && e == 'e') || (d == 'v' && e == 'e') || (d == 'l' && e == 'l')) return i + 3;
    return -1;
}

#define PRETOK_LNS (PRETOK_L | PRETOK_N | PRETOK_S)

/* End of the GPT-2 pre-token that starts at i (i < n). */
static int pretok_gpt2_at(const uint32_t *cp, const uint8_t *cls, int n, int i) {
    int e = pretok_contraction(cp, n, i, 0);
    if (e >= 0) return e;
    int j = cp[i] == ' ' ? i + 1 : i; /* " ?" */
    if (j < n && (cls[j] & PRETOK_L)) {
        while (++j < n && (cls[j] & PRETOK_L)) {}
        return j;
    }
    if (j < n && (cls[j] & PRETOK_N)) {
        while (++j < n && (cls[j] & PRETOK_N)) {}
        return j;
    }
    if (j < n && !(cls[j] & PRETOK_LNS)) {
        while (++j < n && !(cls[j] & PRETOK_LNS)) {}
        return j;
    }
    /* cp[i] is white space: \s+(?!\S) leaves the last space of a run before a non-space, else \s+ */
    int k = i;
    while (k < n && (cls[k] & PRETOK_S)) k++;
    if (k == n) return n;
    return k - i >= 2 ? k - 1 : i + 1;
}

/* End of the Llama 3 (max_digits 3) or Qwen2 (max_digits 1) pre-token that starts at i (i < n). */
static int pretok_llama3_at(const uint32_t *cp, const uint8_t *cls, int n, int i, int max_digits) {
    int e = pretok_contraction(cp, n, i, 1);
    if (e >= 0) return e;
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    int j = i;
    if (!(cls[i] & (PRETOK_NL | PRETOK_L | PRETOK_N)) && i + 1 < n && (cls[i + 1] & PRETOK_L)) j = i + 1;
    if (cls[j] & PRETOK_L) {
        while (++j < n && (cls[j] & PRETOK_L)) {}
        return j;
    }
    /* \p{N}{1,max} */
    if (cls[i] & PRETOK_N) {
        j = i + 1;
        while (j < n && j - i < max_digits && (cls[j] & PRETOK_N)) j++;
        return j;
    }
    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    j = cp[i] == ' ' ? i + 1 : i;
    if (j < n && !(cls[j] & PRETOK_LNS)) {
        while (++j < n && !(cls[j] & PRETOK_LNS)) {}
        while (j < n && (cls[j] & PRETOK_NL)) j++;
        return j;
    }
    /* cp[i] is white space. \s*[\r\n]+ : up to the last line break of the run */
    int k = i, last_nl = -1;
    while (k < n && (cls[k] & PRETOK_S)) {
        if (cls[k] & PRETOK_NL) last_nl = k;
        k++;
    }
    if (last_nl >= 0) return last_nl + 1;
    /* \s+(?!\S) | \s+ */
    if (k == n) return n;
    return k - i >= 2 ? k - 1 : i + 1;
}

int pretok_split(int kind, const uint32_t *cp, const uint8_t *cls, int n, int32_t *starts) {
    int count = 0, i = 0;
    while (i < n) {
        int end;
        switch (kind) {
        case PRETOK_LLAMA3: end = pretok_llama3_at(cp, cls, n, i, 3); break;
        case PRETOK_QWEN2: end = pretok_llama3_at(cp, cls, n, i, 1); break;
        case PRETOK_SMOLLM: {
            if (cls[i] & PRETOK_N) { end = i + 1; break; }
            int lim = i + 1; /* the GPT-2 split sees only the text up to the next digit */
            while (lim < n && !(cls[lim] & PRETOK_N)) lim++;
            end = pretok_gpt2_at(cp, cls, lim, i);
            break;
        }
        default: end = pretok_gpt2_at(cp, cls, n, i); break;
        }
        starts[count++] = i;
        i = end;
    }
    return count;
}

/* ---------------------------------------------------------------------------------------------
 * NFC. Composition never reaches across an ASCII character (ASCII characters are starters and are
 * never the second part of a canonical composition), so the text is normalized in chunks: an ASCII
 * character (if any) followed by a run of non-ASCII characters. A chunk whose code points are all
 * below U+0300 is already NFC (no character there has NFC_Quick_Check No or Maybe). */

int pretok_nfc(const char *s, size_t n, char **out, size_t *out_n, uint32_t **map) {
    *out = NULL;
    *out_n = 0;
    if (map) *map = NULL;
    const uint8_t *u = (const uint8_t *)s;
    char *buf = NULL;
    uint32_t *m = NULL;
    size_t bn = 0, bcap = 0, copied = 0; /* s[0..copied) is in buf already */
    size_t i = 0;
    while (i < n) {
        if (u[i] < 0x80) { i++; continue; }
        size_t cs = (i > 0 && u[i - 1] < 0x80) ? i - 1 : i, ce = i;
        int maybe = 0;
        while (ce < n && u[ce] >= 0x80) {
            /* lead bytes of code points >= U+0300: 0xCC.. (2-byte) or any 3/4-byte lead */
            if (u[ce] >= 0xCC && (u[ce] & 0xC0) == 0xC0) maybe = 1;
            ce++;
        }
        i = ce;
        if (!maybe || cs < copied) continue;
        utf8proc_uint8_t *dst = NULL;
        utf8proc_ssize_t dn = utf8proc_map(u + cs, (utf8proc_ssize_t)(ce - cs), &dst, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (dn < 0) continue; /* invalid UTF-8: left as it is */
        if ((size_t)dn == ce - cs && memcmp(dst, u + cs, ce - cs) == 0) { free(dst); continue; }
        /* changed: copy the text before the chunk, then the normalized chunk */
        size_t need = bn + (cs - copied) + (size_t)dn + (n - ce) + 1;
        if (need > bcap) {
            bcap = need + need / 2 + 64;
            buf = slim_realloc(buf, bcap);
            if (map) m = slim_realloc(m, bcap * sizeof(uint32_t));
        }
        memcpy(buf + bn, s + copied, cs - copied);
        if (map) for (size_t k = 0; k < cs - copied; k++) m[bn + k] = (uint32_t)(copied + k);
        bn += cs - copied;
        memcpy(buf + bn, dst, (size_t)dn);
        if (map) for (size_t k = 0; k < (size_t)dn; k++) m[bn + k] = (uint32_t)cs;
        bn += (size_t)dn;
        copied = ce;
        free(dst);
    }
    if (!buf) return 0;
    size_t need = bn + (n - copied) + 1;
    if (need > bcap) {
        buf = slim_realloc(buf, need);
        if (map) m = slim_realloc(m, need * sizeof(uint32_t));
    }
    memcpy(buf + bn, s + copied, n - copied);
    if (map) for (size_t k = 0; k < n - copied; k++) m[bn + k] = (uint32_t)(copied + k);
    bn += n - copied;
    buf[bn] = 0;
    if (map) m[bn] = (uint32_t)n;
    *out = buf;
    *out_n = bn;
    if (map) *map = m;
    return 1;
}
