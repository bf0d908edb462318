/* test_tokenizer.c — the SentencePiece-BPE tokenizer against llama.cpp's test vectors.
 *
 * Fixtures (../shared or $SLIM_SHARED): for each X.gguf, X.gguf.inp holds test strings, each one
 * followed by the line "__ggml_vocab_test__" — i.e. the file is split on "\n__ggml_vocab_test__\n"
 * as llama.cpp's tests/test-tokenizer-0 does, so a case's text has no final newline of its own
 * unless it had an empty line before the separator. X.gguf.out holds one line of ids per case,
 * made with no BOS/EOS added. Every case must match exactly, and decoding must give the text back. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "format/gguf.h"
#include "testtok.h"
#include "testutil.h"
#include "tokenizer/tokenizer.h"

#define SEP "\n__ggml_vocab_test__\n"

static void print_ids(const char *label, const int32_t *ids, int n) {
    fprintf(stderr, "    %s (%d):", label, n);
    for (int i = 0; i < n; i++) fprintf(stderr, " %d", (int)ids[i]);
    fputc('\n', stderr);
}

/* Encodes text, growing the buffer as tokenizer_encode asks. Returns the count (ids in *out). */
static int encode_all(const tokenizer *t, const char *text, size_t len, int add_bos, int32_t **out) {
    int cap = 4;
    *out = slim_malloc((size_t)cap * sizeof(int32_t));
    int n = tokenizer_encode(t, text, len, add_bos, 1, *out, cap);
    if (n > cap) {
        cap = n;
        *out = slim_realloc(*out, (size_t)cap * sizeof(int32_t));
        n = tokenizer_encode(t, text, len, add_bos, 1, *out, cap);
    }
    return n;
}

static int n_cases_total, n_match_total, n_roundtrip_total;

/* Runs every case of one vocabulary's .inp/.out pair. */
static void run_vocab(const char *rel) {
    char path[1024], inp_path[1100], out_path[1100];
    snprintf(path, sizeof path, "%s/%s", slim_shared_dir(), rel);
    snprintf(inp_path, sizeof inp_path, "%s.inp", path);
    snprintf(out_path, sizeof out_path, "%s.out", path);

    tokenizer t;
    int rc = tokenizer_init_path(&t, path);
    CHECK(rc == 0, "fixture tokenizer %s: %s", path, slim_last_error());
    if (rc) return;

    char *inp = NULL, *outs = NULL;
    size_t inp_n = 0, out_n = 0;
    rc = slim_read_file(inp_path, &inp, &inp_n);
    CHECK(rc == 0, "fixture %s: %s", inp_path, slim_last_error());
    int rc2 = slim_read_file(out_path, &outs, &out_n);
    CHECK(rc2 == 0, "fixture %s: %s", out_path, slim_last_error());
    if (rc || rc2) { free(inp); free(outs); tokenizer_free(&t); return; }

    int n_cases = 0, n_match = 0, n_rt = 0, n_lossy = 0;
    const char *p = inp, *end = inp + inp_n;
    const char *line = outs, *out_end = outs + out_n;
    for (;;) {
        const char *sep = memmem(p, (size_t)(end - p), SEP, strlen(SEP));
        if (!sep) break;
        size_t len = (size_t)(sep - p);
        n_cases++;

        /* expected ids: the next line of the .out file */
        int32_t expect[4096];
        int n_expect = 0;
        CHECK(line < out_end, "%s: case %d has no line in %s", rel, n_cases, out_path);
        if (line >= out_end) break;
        const char *eol = memchr(line, '\n', (size_t)(out_end - line));
        if (!eol) eol = out_end;
        n_expect = tt_parse_ids(line, eol, expect, 4096);
        line = eol + 1;

        int32_t *got = NULL;
        int n_got = encode_all(&t, p, len, 0, &got);
        int same = n_got == n_expect && memcmp(got, expect, (size_t)n_got * sizeof(int32_t)) == 0;
        CHECK(same, "%s case %d mismatch", rel, n_cases);
        if (same) n_match++;
        else {
            fprintf(stderr, "    text: \"");
            tt_print_escaped(p, len, 600);
            fprintf(stderr, "\"\n");
            print_ids("expected", expect, n_expect);
            print_ids("got", got, n_got);
        }

        /* decode: concatenated pieces, minus the dummy-prefix space, give the text back unless an
         * unknown token had to stand in for something */
        int lossy = 0;
        for (int i = 0; i < n_got; i++) lossy |= got[i] == t.unk_id;
        if (lossy) n_lossy++;
        else {
            size_t cap = 8 * len + 64;
            char *dec = slim_malloc(cap);
            dec[0] = 0;
            size_t total = 0;
            for (int i = 0; i < n_got; i++) {
                int k = tokenizer_decode_token(&t, got[i], dec, cap);
                CHECK(k >= 0, "decode id %d: %s", (int)got[i], slim_last_error());
                total += (size_t)(k > 0 ? k : 0);
            }
            CHECK(total == strlen(dec), "%s case %d: decode byte counts %zu vs %zu", rel, n_cases, total,
                  strlen(dec));
            const char *d = dec;
            if (t.add_space_prefix && len > 0 && d[0] == ' ') d++;
            int ok = strlen(d) == len && memcmp(d, p, len) == 0;
            CHECK(ok, "%s case %d: decode does not reproduce the text", rel, n_cases);
            if (ok) n_rt++;
            else {
                fprintf(stderr, "    text: \"");
                tt_print_escaped(p, len, 600);
                fprintf(stderr, "\"\n    decoded: \"");
                tt_print_escaped(d, strlen(d), 600);
                fprintf(stderr, "\"\n");
            }
            free(dec);
        }
        free(got);
        p = sep + strlen(SEP);
    }
    CHECK(p == end, "%s: %zu bytes after the last separator", inp_path, (size_t)(end - p));
    /* every .out line must have been used */
    int extra = 0;
    for (const char *q = line; q < out_end; q++) extra += *q == '\n';
    CHECK(extra == 0, "%s: %d more lines of ids than cases", out_path, extra);
    CHECK(n_cases > 0, "%s: no test cases", inp_path);
    printf("%s: %d cases, %d exact matches, %d decoded losslessly, %d lossy (unknown token)\n", rel, n_cases,
           n_match, n_rt, n_lossy);
    n_cases_total += n_cases;
    n_match_total += n_match;
    n_roundtrip_total += n_rt;
    free(inp);
    free(outs);
    tokenizer_free(&t);
}

/* Facts about stories260K from shared/README.md and the tokenizer API itself. */
static void test_stories(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K.gguf", slim_shared_dir());
    gguf_file g;
    int rc = gguf_open(&g, path);
    CHECK(rc == 0, "fixture %s: %s", path, slim_last_error());
    if (rc) return;
    tokenizer t;
    rc = tokenizer_init_gguf(&t, &g);
    CHECK(rc == 0, "tokenizer: %s", slim_last_error());
    if (rc) { gguf_close(&g); return; }
    CHECK(t.n_vocab == 512, "n_vocab %d", t.n_vocab);
    CHECK(t.bos_id == 1 && t.eos_id == 2 && t.unk_id == 0, "specials %d %d %d", t.bos_id, t.eos_id, t.unk_id);
    CHECK(t.pad_id == -1, "pad %d (file stores 0xFFFFFFFF)", t.pad_id);
    for (int b = 0; b < 256; b++) CHECK(t.byte_ids[b] == 3 + b, "byte %d -> id %d", b, t.byte_ids[b]);

    const char *text = "Once upon a time";
    int32_t ids[16];
    int n = tokenizer_encode(&t, text, strlen(text), 1, 1, ids, 16);
    int32_t want[] = { 1, 403, 407, 261, 378 };
    CHECK(n == 5 && memcmp(ids, want, sizeof want) == 0, "\"Once upon a time\" -> %d ids", n);
    if (n != 5) print_ids("got", ids, n < 16 ? n : 16);

    /* a small buffer reports the needed count and writes only what fits */
    int32_t small[2] = { -7, -7 };
    n = tokenizer_encode(&t, text, strlen(text), 1, 1, small, 2);
    CHECK(n == 5 && small[0] == 1 && small[1] == 403, "cap 2: n %d", n);
    CHECK(tokenizer_encode(&t, text, strlen(text), 1, 1, NULL, 0) == 5, "cap 0 count");
    /* empty text: BOS only, no dummy prefix */
    CHECK(tokenizer_encode(&t, "", 0, 1, 1, ids, 16) == 1 && ids[0] == 1, "empty text");
    /* continuation: no dummy prefix, so " a" equals the tail of "Once upon a time" tokenization */
    n = tokenizer_encode(&t, " a", 2, 0, 0, ids, 16);
    int32_t with_prefix[16];
    int n2 = tokenizer_encode(&t, "a", 1, 0, 1, with_prefix, 16);
    CHECK(n == n2 && n > 0 && memcmp(ids, with_prefix, (size_t)n * 4) == 0, "continuation ' a' vs 'a'");
    /* invalid UTF-8 goes through byte fallback */
    n = tokenizer_encode(&t, "\xff", 1, 0, 0, ids, 16);
    CHECK(n == 1 && ids[0] == 3 + 0xff, "byte fallback of 0xFF: n %d id %d", n, (int)ids[0]);

    /* offsets: the dummy prefix and each "▁" start where their space (or the text) starts */
    int32_t offs[16];
    n = tokenizer_encode_ex(&t, text, strlen(text), TOK_ADD_BOS | TOK_SPACE_PREFIX, ids, 16, offs);
    CHECK(n == 5 && offs[0] == 0 && offs[1] == 0 && offs[2] == 4 && offs[3] == 9 && offs[4] == 11,
          "offsets %d %d %d %d %d", offs[0], offs[1], offs[2], offs[3], offs[4]);
    /* control tokens: text unless TOK_PARSE_SPECIAL; after one, the next text gets the dummy prefix (llama.cpp) */
    const char *sp = "<s>Once upon a time";
    n = tokenizer_encode_ex(&t, sp, strlen(sp), TOK_SPACE_PREFIX | TOK_PARSE_SPECIAL, ids, 16, offs);
    CHECK(n == 5 && memcmp(ids, want, sizeof want) == 0 && offs[0] == 0 && offs[1] == 3, "parse special <s>: n %d", n);
    n = tokenizer_encode_ex(&t, sp, strlen(sp), TOK_SPACE_PREFIX, ids, 16, NULL);
    CHECK(n > 5 && ids[0] != 1, "<s> is text without TOK_PARSE_SPECIAL: n %d", n);

    /* decode_token */
    char buf[64] = "";
    CHECK(tokenizer_decode_token(&t, 1, buf, sizeof buf) == 0 && buf[0] == 0, "<s> decodes to nothing");
    CHECK(tokenizer_decode_token(&t, 3 + '\n', buf, sizeof buf) == 1 && strcmp(buf, "\n") == 0, "<0x0A>");
    buf[0] = 0;
    int k = tokenizer_decode_token(&t, 403, buf, sizeof buf);
    CHECK(k == (int)strlen(buf) && buf[0] == ' ', "id 403 decodes to \"%s\" (%d)", buf, k);
    char tiny[3] = "";
    k = tokenizer_decode_token(&t, 403, tiny, sizeof tiny);
    CHECK(k > 2 && strlen(tiny) == 2, "truncated decode: %d \"%s\"", k, tiny);
    CHECK(tokenizer_decode_token(&t, 512, buf, sizeof buf) == -1 && slim_last_error()[0], "id out of range");
    CHECK(tokenizer_find_piece(&t, "<0x41>", 6) == 3 + 0x41, "find <0x41>");
    CHECK(tokenizer_find_piece(&t, "no such piece", 13) == -1, "find missing");

    /* fingerprint: deterministic, and sensitive to a score */
    tokenizer t2;
    CHECK(tokenizer_init_gguf(&t2, &g) == 0, "second init");
    CHECK(t2.fingerprint == t.fingerprint, "fingerprint not deterministic");
    tokenizer_free(&t2);

    /* fingerprint: sensitive to each encoding rule. The same vocabulary with one bool key flipped
     * (the key replaced in a copy of the key list, or appended when the file lacks it) must differ,
     * and restoring the original value must give the original fingerprint back. */
    const char *rules[3] = { "tokenizer.ggml.add_space_prefix", "tokenizer.ggml.add_bos_token",
                             "tokenizer.ggml.add_eos_token" };
    const int flipped[3] = { !t.add_space_prefix, !t.add_bos, !t.add_eos };
    for (int r = 0; r < 3; r++) {
        gguf_file g2 = g;
        g2.kv = slim_malloc((size_t)(g.n_kv + 1) * sizeof(gguf_kv));
        memcpy(g2.kv, g.kv, (size_t)g.n_kv * sizeof(gguf_kv));
        gguf_kv *kv = (gguf_kv *)gguf_find_kv(&g2, rules[r]);
        if (!kv) {
            kv = &g2.kv[g2.n_kv++];
            memset(kv, 0, sizeof *kv);
            kv->key = (char *)rules[r];
        }
        kv->type = GGUF_TYPE_BOOL;
        for (int v = 0; v < 2; v++) {
            kv->u64 = (uint64_t)(v == 0 ? flipped[r] : !flipped[r]);
            tokenizer t3;
            rc = tokenizer_init_gguf(&t3, &g2);
            CHECK(rc == 0, "%s = %d: %s", rules[r], (int)kv->u64, slim_last_error());
            if (rc) continue;
            if (v == 0) CHECK(t3.fingerprint != t.fingerprint, "fingerprint ignores %s", rules[r]);
            else CHECK(t3.fingerprint == t.fingerprint, "fingerprint with %s restored", rules[r]);
            tokenizer_free(&t3);
        }
        free(g2.kv);
    }
    gguf_close(&g);
    tokenizer_free(&t);
}

/* Fingerprints of different vocabularies differ; an unsupported tokenizer model is refused with its key. */
static void test_other_vocabs(void) {
    const char *rel[] = { "vocab/ggml-vocab-llama-spm.gguf", "vocab/ggml-vocab-phi-3.gguf" };
    uint64_t fp[2] = { 0, 0 };
    for (int i = 0; i < 2; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", slim_shared_dir(), rel[i]);
        gguf_file g;
        tokenizer t;
        CHECK(gguf_open(&g, path) == 0, "%s: %s", path, slim_last_error());
        CHECK(tokenizer_init_gguf(&t, &g) == 0, "%s: %s", path, slim_last_error());
        fp[i] = t.fingerprint;
        tokenizer_free(&t);
        gguf_close(&g);
    }
    CHECK(fp[0] != fp[1] && fp[0] && fp[1], "llama-spm and phi-3 fingerprints");

    /* an unsupported tokenizer.ggml.model is refused naming the key (the key's value replaced in a copy) */
    char path[1024];
    snprintf(path, sizeof path, "%s/vocab/ggml-vocab-llama-spm.gguf", slim_shared_dir());
    gguf_file g;
    tokenizer t;
    CHECK(gguf_open(&g, path) == 0, "%s: %s", path, slim_last_error());
    gguf_file g2 = g;
    g2.kv = slim_malloc((size_t)g.n_kv * sizeof(gguf_kv));
    memcpy(g2.kv, g.kv, (size_t)g.n_kv * sizeof(gguf_kv));
    gguf_kv *kv = (gguf_kv *)gguf_find_kv(&g2, "tokenizer.ggml.model");
    CHECK(kv != NULL, "tokenizer.ggml.model present");
    if (kv) {
        kv->str = "bert";
        kv->str_len = 4;
        CHECK(tokenizer_init_gguf(&t, &g2) == -1 && strstr(slim_last_error(), "tokenizer.ggml.model") &&
                  strstr(slim_last_error(), "bert"),
              "an unsupported model must be refused naming the key: \"%s\"", slim_last_error());
    }
    free(g2.kv);
    gguf_close(&g);
}

int main(void) {
    test_stories();
    test_other_vocabs();
    run_vocab("models/stories260K.gguf");
    run_vocab("vocab/ggml-vocab-llama-spm.gguf");
    run_vocab("vocab/ggml-vocab-phi-3.gguf");
    printf("tokenizer vectors: %d cases, %d exact, %d decoded losslessly\n", n_cases_total, n_match_total,
           n_roundtrip_total);
    return tu_finish("test_tokenizer");
}
