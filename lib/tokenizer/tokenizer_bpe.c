/* tokenizer_bpe.c — byte-level BPE (GPT-2, Llama 3, Qwen2/3, SmolLM): the model, the encoder with
 * its word cache, and loading from GGUF (tokenizer.ggml.model = "gpt2") or a Hugging Face
 * tokenizer.json. See tokenizer.h and pretok.h.
 *
 * Encoding a fragment of text (no special tokens in it):
 *   1. NFC when the tokenizer.json asks for it (pretok_nfc);
 *   2. pre-tokens by the family's split rules (pretok_split);
 *   3. each pre-token ("word"): its bytes become GPT-2's byte characters (bytes_to_unicode of
 *      openai/gpt-2 encoder.py: printable Latin-1 bytes stand for themselves, the other 68 bytes for
 *      U+0100..U+0143 in byte order), one symbol each, whose ids are the single-character pieces;
 *      with ignore_merges a word that is a piece as a whole is that piece; otherwise the adjacent
 *      pair of lowest merge rank is merged (leftmost first among equal ranks, the same pair), the
 *      merged symbol taking the merge's result id, until no pair has a merge. Hugging Face
 *      tokenizers (BPE::merge_word) and llama.cpp (llm_tokenizer_bpe_session) agree on this order.
 *   A small cache maps the bytes of recent words to their ids. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "common.h"
#include "pretok.h"
#include "tokenizer.h"
#include "tokenizer_impl.h"

/* ---------------------------------------------------------------------------------------------
 * state */

#define TOK_CACHE_SLOTS (1u << 15)   /* word cache: slots (power of two) */
#define TOK_CACHE_KEYS (1u << 20)    /* bytes of cached words */
#define TOK_CACHE_IDS (1u << 18)     /* ids of cached words */
#define TOK_CACHE_MAX_WORD 64        /* longer words are not cached */

typedef struct { uint64_t h; uint32_t koff, klen, ioff, nids; } tok_cslot; /* klen 0: empty */

typedef struct tok_cache {
    char lock;                       /* taken by one encode call at a time (try-lock; others go uncached) */
    tok_cslot *slots;
    size_t used;
    char *keys;
    size_t nkeys;
    int32_t *ids;
    size_t nids;
} tok_cache;

struct tok_bpe {
    uint64_t *mkey;                  /* merges: open addressing on (left id << 32 | right id); empty UINT64_MAX */
    int32_t *mrank, *mid;            /* rank and result id of each merge */
    size_t mcap;
    int32_t *mlist;                  /* [2 * n_merges] left, right ids in rank order (fingerprint) */
    char byte_chr[256][2];           /* the byte character of each byte, UTF-8 (1 or 2 bytes) */
    uint8_t byte_chr_len[256];
    int16_t chr_byte[0x144];         /* code point -> byte, -1 where none */
    int32_t *dec_len;                /* [n_vocab] bytes each token decodes to */
    tok_cache cache;
};

/* hash of a short byte string (slim_mix64 per 8-byte word) */
static inline uint64_t tok_word_hash(const uint8_t *s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ n;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, s, 8);
        h = slim_mix64(h ^ v);
        s += 8;
        n -= 8;
    }
    uint64_t v = 0;
    memcpy(&v, s, n);
    return slim_mix64(h ^ v ^ ((uint64_t)n << 56));
}

void tok_bpe_free(struct tok_bpe *b) {
    if (!b) return;
    free(b->mkey);
    free(b->mrank);
    free(b->mid);
    free(b->mlist);
    free(b->dec_len);
    free(b->cache.slots);
    free(b->cache.keys);
    free(b->cache.ids);
    free(b);
}

static inline int tok_merge_find(const struct tok_bpe *b, int32_t l, int32_t r, int32_t *mid) {
    uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
    size_t mask = b->mcap - 1, h = (size_t)slim_mix64(key) & mask;
    for (;;) {
        uint64_t k = b->mkey[h];
        if (k == key) { *mid = b->mid[h]; return b->mrank[h]; }
        if (k == UINT64_MAX) return -1;
        h = (h + 1) & mask;
    }
}

/* ---------------------------------------------------------------------------------------------
 * building the model (shared by GGUF and tokenizer.json) */

/* Allocates t->bpe with room for n_merges merges and the byte character tables. */
static void tok_bpe_alloc(tokenizer *t, size_t n_merges) {
    struct tok_bpe *b = slim_calloc(1, sizeof *b);
    b->mcap = 16;
    while (b->mcap < 2 * n_merges + 16) b->mcap *= 2;
    b->mkey = slim_malloc(b->mcap * sizeof(uint64_t));
    for (size_t i = 0; i < b->mcap; i++) b->mkey[i] = UINT64_MAX;
    b->mrank = slim_malloc(b->mcap * sizeof(int32_t));
    b->mid = slim_malloc(b->mcap * sizeof(int32_t));
    b->mlist = slim_malloc((2 * n_merges + 2) * sizeof(int32_t));
    for (int c = 0; c < 0x144; c++) b->chr_byte[c] = -1;
    int extra = 0;
    for (int byte = 0; byte < 256; byte++) {
        int printable = (byte >= 0x21 && byte <= 0x7E) || (byte >= 0xA1 && byte <= 0xAC) || (byte >= 0xAE);
        int c = printable ? byte : 256 + extra++;
        b->chr_byte[c] = (int16_t)byte;
        if (c < 0x80) { b->byte_chr[byte][0] = (char)c; b->byte_chr_len[byte] = 1; }
        else {
            b->byte_chr[byte][0] = (char)(0xC0 | (c >> 6));
            b->byte_chr[byte][1] = (char)(0x80 | (c & 0x3F));
            b->byte_chr_len[byte] = 2;
        }
    }
    t->bpe = b;
}

/* Adds merge number rank: pieces a (la bytes) and b (lb bytes). where names the source for errors
 * ("file: key 'tokenizer.ggml.merges'"). Returns 0, or -1 when a piece or the merged piece is not
 * in the vocabulary. */
static int tok_bpe_add_merge(tokenizer *t, const char *a, size_t la, const char *b, size_t lb, int rank,
                             const char *where) {
    struct tok_bpe *bp = t->bpe;
    int l = tokenizer_find_piece(t, a, la), r = tokenizer_find_piece(t, b, lb);
    if (l < 0 || r < 0)
        return slim_set_error("%s: merge %d \"%.*s %.*s\": piece \"%.*s\" is not in the vocabulary", where, rank,
                              (int)la, a, (int)lb, b, l < 0 ? (int)la : (int)lb, l < 0 ? a : b);
    char stack[256];
    char *cat = la + lb <= sizeof stack ? stack : slim_malloc(la + lb);
    memcpy(cat, a, la);
    memcpy(cat + la, b, lb);
    int m = tokenizer_find_piece(t, cat, la + lb);
    if (cat != stack) free(cat);
    if (m < 0)
        return slim_set_error("%s: merge %d \"%.*s %.*s\": the merged piece is not in the vocabulary", where, rank,
                              (int)la, a, (int)lb, b);
    uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
    size_t mask = bp->mcap - 1, h = (size_t)slim_mix64(key) & mask;
    while (bp->mkey[h] != UINT64_MAX && bp->mkey[h] != key) h = (h + 1) & mask;
    if (bp->mkey[h] == key) return 0; /* a repeated pair keeps its first (lowest) rank */
    bp->mkey[h] = key;
    bp->mrank[h] = rank;
    bp->mid[h] = m;
    bp->mlist[2 * t->n_merges] = l;
    bp->mlist[2 * t->n_merges + 1] = r;
    t->n_merges++;
    return 0;
}

/* Decodes a byte-level piece: each byte character gives its byte; any other character is copied. */
int tok_bpe_decode_piece(const tokenizer *t, const char *p, int plen, char *buf, size_t cap, size_t *at) {
    const struct tok_bpe *b = t->bpe;
    int n = 0;
    for (int i = 0; i < plen;) {
        uint8_t c = (uint8_t)p[i];
        int byte = -1, len = 1;
        if (c < 0x80) byte = b->chr_byte[c];
        else if ((c & 0xE0) == 0xC0 && i + 1 < plen) {
            uint32_t cp = ((uint32_t)(c & 0x1F) << 6) | ((uint8_t)p[i + 1] & 0x3F);
            len = 2;
            if (cp < 0x144) byte = b->chr_byte[cp];
        }
        if (byte >= 0) {
            if (buf && *at + 1 < cap) buf[(*at)++] = (char)byte;
            n++;
        } else {
            for (int k = 0; k < len; k++, n++)
                if (buf && *at + 1 < cap) buf[(*at)++] = p[i + k];
        }
        i += len;
    }
    return n;
}

/* Finishes a BPE tokenizer once pieces, types, merges and the rules are set: byte ids, decoded
 * lengths, special-token table, cache and fingerprint. */
static int tok_bpe_finish(tokenizer *t, const uint8_t *added_flags, const char *where) {
    struct tok_bpe *b = t->bpe;
    for (int byte = 0; byte < 256; byte++) {
        t->byte_ids[byte] = tokenizer_find_piece(t, b->byte_chr[byte], b->byte_chr_len[byte]);
        if (t->byte_ids[byte] < 0)
            return slim_set_error("%s: the vocabulary has no token for byte 0x%02X (\"%.*s\"): not a byte-level BPE "
                                  "vocabulary", where, byte, (int)b->byte_chr_len[byte], b->byte_chr[byte]);
    }
    b->dec_len = slim_malloc((size_t)t->n_vocab * sizeof(int32_t));
    for (int i = 0; i < t->n_vocab; i++) {
        char none = 0;
        b->dec_len[i] = tokenizer_decode_token_ex(t, i, 1, &none, 0);
    }
    tok_build_specials(t, added_flags);
    b->cache.slots = slim_calloc(TOK_CACHE_SLOTS, sizeof(tok_cslot));
    b->cache.keys = slim_malloc(TOK_CACHE_KEYS);
    b->cache.ids = slim_malloc(TOK_CACHE_IDS * sizeof(int32_t));

    uint64_t h = slim_fnv1a(SLIM_FNV_INIT, "byte-level-bpe", 14);
    for (int i = 0; i < t->n_vocab; i++) {
        uint32_t len = (uint32_t)t->piece_lens[i];
        int32_t type = t->types[i];
        h = slim_fnv1a(h, &len, 4);
        h = slim_fnv1a(h, t->pieces[i], len);
        h = slim_fnv1a(h, &type, 4);
    }
    h = slim_fnv1a(h, b->mlist, (size_t)t->n_merges * 2 * sizeof(int32_t));
    if (added_flags) h = slim_fnv1a(h, added_flags, (size_t)t->n_vocab);
    int32_t rules[10] = { t->bos_id, t->eos_id, t->unk_id, t->pad_id, t->add_bos, t->add_eos, t->pre,
                          t->normalize_nfc, t->ignore_merges, t->n_merges };
    t->fingerprint = slim_fnv1a(h, rules, sizeof rules);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * GGUF */

/* tokenizer.ggml.pre names (llama.cpp llama-vocab.cpp) -> pre-tokenizer */
static int tok_pre_from_name(const char *s) {
    static const struct { const char *name; int kind; } names[] = {
        { "gpt-2", PRETOK_GPT2 }, { "gpt2", PRETOK_GPT2 }, { "phi-2", PRETOK_GPT2 },
        { "llama-bpe", PRETOK_LLAMA3 }, { "llama3", PRETOK_LLAMA3 }, { "llama-v3", PRETOK_LLAMA3 },
        { "falcon3", PRETOK_LLAMA3 },
        { "qwen2", PRETOK_QWEN2 }, { "deepseek-r1-qwen", PRETOK_QWEN2 },
        { "smollm", PRETOK_SMOLLM },
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0) return names[i].kind;
    return 0;
}

int tok_bpe_init_gguf(tokenizer *t, const gguf_file *g) {
    const gguf_kv *mg = gguf_find_kv(g, "tokenizer.ggml.merges");
    if (!mg) return slim_set_error("%s: key 'tokenizer.ggml.merges' is missing (needed by a gpt2 tokenizer)", g->path);
    if (mg->type != GGUF_TYPE_ARRAY || mg->arr_type != GGUF_TYPE_STRING || mg->n > INT_MAX / 4)
        return slim_set_error("%s: key 'tokenizer.ggml.merges': expected an array of strings", g->path);
    const gguf_kv *pk = gguf_find_kv(g, "tokenizer.ggml.pre");
    if (!pk) return slim_set_error("%s: key 'tokenizer.ggml.pre' is missing: the pre-tokenizer of a gpt2 tokenizer "
                                   "must be named", g->path);
    const char *pre_name = gguf_get_str(g, "tokenizer.ggml.pre");
    if (!pre_name) return -1;
    int pre = tok_pre_from_name(pre_name);
    if (!pre)
        return slim_set_error("%s: key 'tokenizer.ggml.pre': unsupported pre-tokenizer \"%s\" (supported: gpt-2, "
                              "phi-2, llama-bpe, llama3, llama-v3, falcon3, qwen2, deepseek-r1-qwen, smollm)",
                              g->path, pre_name);
    tok_gguf_defaults d = {.bos = -1, .eos = -1, .unk = -1, .add_bos = pre == PRETOK_LLAMA3, .read_space_prefix = 0};
    if (tok_gguf_vocab(t, g, TOK_KIND_BPE, &d)) return -1;
    t->pre = pre;
    t->normalize_nfc = 0;                  /* llama.cpp applies no normalizer to BPE vocabularies */
    t->ignore_merges = pre == PRETOK_LLAMA3; /* llama.cpp: LLAMA_VOCAB_PRE_TYPE_LLAMA3 */
    tok_build_hash(t);

    char where[1200];
    snprintf(where, sizeof where, "%s: key 'tokenizer.ggml.merges'", g->path);
    tok_bpe_alloc(t, (size_t)mg->n);
    for (uint64_t i = 0; i < mg->n; i++) {
        const char *m = mg->strs[i];
        size_t ml = (size_t)mg->str_lens[i];
        const char *sp = ml > 1 ? memchr(m + 1, ' ', ml - 1) : NULL; /* the first space after the first byte */
        if (!sp) return slim_set_error("%s: merge %llu \"%.*s\" is not two pieces separated by a space", where,
                                       (unsigned long long)i, (int)(ml < 200 ? ml : 200), m);
        if (tok_bpe_add_merge(t, m, (size_t)(sp - m), sp + 1, ml - (size_t)(sp - m) - 1, (int)i, where)) return -1;
    }
    return tok_bpe_finish(t, NULL, g->path);
}

/* ---------------------------------------------------------------------------------------------
 * Hugging Face tokenizer.json */

#define TOK_RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define TOK_RE_LLAMA3_TAIL "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define TOK_RE_QWEN2_TAIL "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define TOK_RE_CONTR_I "(?i:'s|'t|'re|'ve|'m|'ll|'d)"
#define TOK_RE_CONTR_CLS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"

static int tok_json_bool(const cJSON *o, const char *key, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return def;
}

static const char *tok_json_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A ByteLevel pre-tokenizer object: 0 when usable (sets *use_regex), else -1 with an error. */
static int tok_hf_bytelevel(const cJSON *p, const char *path, int *use_regex) {
    if (tok_json_bool(p, "add_prefix_space", 0))
        return slim_set_error("%s: pre_tokenizer ByteLevel: add_prefix_space true is not supported", path);
    *use_regex = tok_json_bool(p, "use_regex", 1);
    return 0;
}

/* The pre-tokenizer of a tokenizer.json: its pretok kind, or -1 with an error. */
static int tok_hf_pre(const cJSON *pre, const char *path) {
    const char *type = tok_json_str(pre, "type");
    if (!type) return slim_set_error("%s: field 'pre_tokenizer': missing or without a type (byte-level BPE needs one)",
                                     path);
    int use_regex = 1;
    if (!strcmp(type, "ByteLevel")) {
        if (tok_hf_bytelevel(pre, path, &use_regex)) return -1;
        if (!use_regex) return slim_set_error("%s: pre_tokenizer ByteLevel with use_regex false alone is not supported", path);
        return PRETOK_GPT2;
    }
    if (strcmp(type, "Sequence") != 0)
        return slim_set_error("%s: field 'pre_tokenizer': type \"%s\" is not supported (ByteLevel or Sequence)", path, type);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers");
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) != 2)
        return slim_set_error("%s: field 'pre_tokenizer.pretokenizers': expected two entries (Split or Digits, then "
                              "ByteLevel)", path);
    const cJSON *a = cJSON_GetArrayItem(list, 0), *b = cJSON_GetArrayItem(list, 1);
    const char *ta = tok_json_str(a, "type"), *tb = tok_json_str(b, "type");
    if (!tb || strcmp(tb, "ByteLevel") != 0)
        return slim_set_error("%s: field 'pre_tokenizer.pretokenizers[1]': expected ByteLevel, got %s", path, tb ? tb : "none");
    if (tok_hf_bytelevel(b, path, &use_regex)) return -1;
    if (ta && !strcmp(ta, "Digits")) {
        if (!tok_json_bool(a, "individual_digits", 0) || !use_regex)
            return slim_set_error("%s: pre_tokenizer Sequence[Digits, ByteLevel]: only individual_digits true with the "
                                  "ByteLevel regex (SmolLM) is supported", path);
        return PRETOK_SMOLLM;
    }
    if (!ta || strcmp(ta, "Split") != 0)
        return slim_set_error("%s: field 'pre_tokenizer.pretokenizers[0]': expected Split or Digits, got %s", path,
                              ta ? ta : "none");
    if (use_regex) return slim_set_error("%s: pre_tokenizer: Split followed by ByteLevel with use_regex true is not supported", path);
    const char *beh = tok_json_str(a, "behavior");
    if (!beh || strcmp(beh, "Isolated") != 0 || tok_json_bool(a, "invert", 0))
        return slim_set_error("%s: pre_tokenizer Split: only behavior Isolated without invert is supported", path);
    const char *re = tok_json_str(cJSON_GetObjectItemCaseSensitive(a, "pattern"), "Regex");
    if (!re) return slim_set_error("%s: pre_tokenizer Split: field 'pattern.Regex' is missing", path);
    size_t lc = 0;
    if (!strncmp(re, TOK_RE_CONTR_I, strlen(TOK_RE_CONTR_I))) lc = strlen(TOK_RE_CONTR_I);
    else if (!strncmp(re, TOK_RE_CONTR_CLS, strlen(TOK_RE_CONTR_CLS))) lc = strlen(TOK_RE_CONTR_CLS);
    if (lc && !strcmp(re + lc, TOK_RE_LLAMA3_TAIL)) return PRETOK_LLAMA3;
    if (lc && !strcmp(re + lc, TOK_RE_QWEN2_TAIL)) return PRETOK_QWEN2;
    if (!strcmp(re, TOK_RE_GPT2)) return PRETOK_GPT2;
    return slim_set_error("%s: pre_tokenizer Split: regex \"%.300s\" is not one of the known families (GPT-2, Llama 3, "
                          "Qwen2)", path, re);
}

/* A token given in tokenizer_config.json: a string, or an object with "content"; NULL when absent. */
static const char *tok_cfg_token(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) return tok_json_str(v, "content");
    return NULL;
}

/* 1 when v is a finite integer in [0, n) (a JSON number used as a token id or a count), else 0. */
static int tok_json_id_ok(double v, double n) { return v >= 0 && v < n && v == floor(v); }

/* The id of a special-token name of a post-processor template: its "ids" entry (which must be an
 * integer below n_vocab: -2 with *bad set otherwise), else the piece of that name (-1 when absent). */
static int tok_hf_template_id(const tokenizer *t, const cJSON *specials, const char *name, double *bad) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(specials, name);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(e, "ids");
    if (cJSON_IsArray(ids) && cJSON_GetArraySize(ids) == 1 && cJSON_IsNumber(cJSON_GetArrayItem(ids, 0))) {
        double v = cJSON_GetArrayItem(ids, 0)->valuedouble;
        if (!tok_json_id_ok(v, t->n_vocab)) { *bad = v; return -2; }
        return (int)v;
    }
    return tokenizer_find_piece(t, name, strlen(name));
}

/* Reads BOS/EOS from a TemplateProcessing (or a Sequence holding one). */
static int tok_hf_post(tokenizer *t, const cJSON *pp, const char *path, int *bos, int *eos) {
    const char *type = tok_json_str(pp, "type");
    if (!type) return 0;
    if (!strcmp(type, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(pp, "processors"))
            if (tok_hf_post(t, e, path, bos, eos)) return -1;
        return 0;
    }
    if (strcmp(type, "TemplateProcessing") != 0) return 0; /* ByteLevel (offsets only), ... */
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(pp, "special_tokens");
    int seen_seq = 0, n_before = 0, n_after = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, single) {
        if (cJSON_GetObjectItemCaseSensitive(e, "Sequence")) { seen_seq = 1; continue; }
        const char *id = tok_json_str(cJSON_GetObjectItemCaseSensitive(e, "SpecialToken"), "id");
        if (!id) return slim_set_error("%s: post_processor.single: an entry is neither Sequence nor SpecialToken", path);
        double bad = 0;
        int tid = tok_hf_template_id(t, specials, id, &bad);
        if (tid == -2)
            return slim_set_error("%s: post_processor.special_tokens[\"%.100s\"].ids: %g is not a token id (an integer "
                                  "in 0..%d)", path, id, bad, t->n_vocab - 1);
        if (tid < 0 || tid >= t->n_vocab)
            return slim_set_error("%s: post_processor: special token \"%s\" is not in the vocabulary", path, id);
        if (!seen_seq) { *bos = tid; n_before++; }
        else { *eos = tid; n_after++; }
    }
    if (n_before > 1 || n_after > 1)
        return slim_set_error("%s: post_processor.single: more than one special token on a side is not supported", path);
    return 0;
}

/* tokenizer.json and tokenizer_config.json paths of dir_or_json (a directory, or the tokenizer.json). */
static int tok_hf_paths(const char *dir_or_json, char *path, char *cfg_path, size_t cap) {
    struct stat st;
    if (stat(dir_or_json, &st) != 0) return slim_set_error("%s: no such file or directory", dir_or_json);
    if (S_ISDIR(st.st_mode))
        return slim_format_path(path, cap, "%s/tokenizer.json", dir_or_json) ||
                       slim_format_path(cfg_path, cap, "%s/tokenizer_config.json", dir_or_json)
                   ? -1 : 0;
    if (slim_format_path(path, cap, "%s", dir_or_json)) return -1;
    const char *slash = strrchr(dir_or_json, '/');
    int dl = slash ? (int)(slash - dir_or_json) : 1;
    return slim_format_path(cfg_path, cap, "%.*s/tokenizer_config.json", dl, slash ? dir_or_json : ".");
}

/* Refuses what the BPE model object of tokenizer.json asks for that slimtune does not do; reads the
 * normalizer (null or NFC) into t. */
static int tok_hf_check_model(tokenizer *t, const cJSON *root, const char *path) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const char *mtype = tok_json_str(model, "type");
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (!cJSON_IsObject(model)) return slim_set_error("%s: field 'model' is missing", path);
    if (mtype && strcmp(mtype, "BPE") != 0)
        return slim_set_error("%s: field 'model.type': \"%s\" is not supported (BPE)", path, mtype);
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(model, "vocab")) ||
        !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(model, "merges")))
        return slim_set_error("%s: field 'model.vocab' (object) or 'model.merges' (array) is missing", path);
    if (tok_json_bool(model, "byte_fallback", 0))
        return slim_set_error("%s: field 'model.byte_fallback': true is not supported (byte-level BPE only)", path);
    const char *cont = tok_json_str(model, "continuing_subword_prefix"), *eow = tok_json_str(model, "end_of_word_suffix");
    if ((cont && cont[0]) || (eow && eow[0]))
        return slim_set_error("%s: field 'model.continuing_subword_prefix'/'end_of_word_suffix' is not supported", path);
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble != 0.0)
        return slim_set_error("%s: field 'model.dropout': BPE dropout is not supported", path);
    if (norm && !cJSON_IsNull(norm)) {
        const char *nt = tok_json_str(norm, "type");
        if (!nt || strcmp(nt, "NFC") != 0)
            return slim_set_error("%s: field 'normalizer': type \"%s\" is not supported (null or NFC)", path,
                                  nt ? nt : "?");
        t->normalize_nfc = 1;
    }
    return 0;
}

/* The vocabulary size: the largest id of the model vocabulary and the added tokens, plus one. Ids must be
 * integers, and dense: the largest is below the number of entries the file holds (added tokens may repeat
 * vocabulary entries), checked before anything is allocated by it; a gap is refused by tok_hf_fill. */
static int tok_hf_vocab_size(const cJSON *vocab, const cJSON *added, const char *path) {
    long max_id = -1;
    double n_entries = (double)cJSON_GetArraySize(vocab) + (double)cJSON_GetArraySize(added);
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        if (!cJSON_IsNumber(e) || !tok_json_id_ok(e->valuedouble, INT_MAX / 4))
            return slim_set_error("%s: field 'model.vocab': entry \"%.100s\" has no valid id (a non-negative integer)",
                                  path, e->string);
        if (e->valuedouble >= n_entries)
            return slim_set_error("%s: field 'model.vocab': entry \"%.100s\" has id %.0f, but the file holds only "
                                  "%.0f vocabulary and added entries (ids must be dense from 0)", path, e->string,
                                  e->valuedouble, n_entries);
        if ((long)e->valuedouble > max_id) max_id = (long)e->valuedouble;
    }
    cJSON_ArrayForEach(e, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (!cJSON_IsNumber(id) || !tok_json_id_ok(id->valuedouble, INT_MAX / 4) || !tok_json_str(e, "content"))
            return slim_set_error("%s: field 'added_tokens': an entry lacks a valid id (a non-negative integer) or "
                                  "content", path);
        if (id->valuedouble >= n_entries)
            return slim_set_error("%s: field 'added_tokens': \"%.100s\" has id %.0f, but the file holds only %.0f "
                                  "vocabulary and added entries (ids must be dense from 0)", path,
                                  tok_json_str(e, "content"), id->valuedouble, n_entries);
        if ((long)id->valuedouble > max_id) max_id = (long)id->valuedouble;
    }
    if (max_id < 0) return slim_set_error("%s: field 'model.vocab' is empty", path);
    return (int)max_id + 1;
}

/* Fills t's n pieces from the vocabulary and the added tokens (special ones CONTROL, the others
 * USER_DEFINED; their lstrip/rstrip into added_flags [n]); returns 0, 1 when some token has a strip flag,
 * or -1 (an id given twice, single_word, or a gap). */
static int tok_hf_fill(tokenizer *t, int n, const cJSON *vocab, const cJSON *added, uint8_t *added_flags,
                       const char *path) {
    int has_flags = 0;
    t->kind = TOK_KIND_BPE;
    t->n_vocab = n;
    t->pieces = slim_calloc((size_t)n, sizeof(char *));
    t->piece_lens = slim_calloc((size_t)n, sizeof(int));
    t->scores = slim_calloc((size_t)n, sizeof(float));
    t->types = slim_malloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) t->types[i] = TOK_TYPE_UNUSED;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        int id = (int)e->valuedouble;
        if (t->pieces[id])
            return slim_set_error("%s: field 'model.vocab': id %d is given to \"%.100s\" and \"%.100s\"", path, id,
                                  t->pieces[id], e->string);
        t->pieces[id] = slim_strdup(e->string);
        t->piece_lens[id] = (int)strlen(e->string);
        t->types[id] = TOK_TYPE_NORMAL;
    }
    cJSON_ArrayForEach(e, added) {
        int id = (int)cJSON_GetObjectItemCaseSensitive(e, "id")->valuedouble;
        const char *content = tok_json_str(e, "content");
        if (t->pieces[id] && strcmp(t->pieces[id], content) != 0)
            return slim_set_error("%s: field 'added_tokens': id %d is \"%.100s\" there but \"%.100s\" in model.vocab",
                                  path, id, content, t->pieces[id]);
        if (!t->pieces[id]) {
            t->pieces[id] = slim_strdup(content);
            t->piece_lens[id] = (int)strlen(content);
        }
        t->types[id] = tok_json_bool(e, "special", 0) ? TOK_TYPE_CONTROL : TOK_TYPE_USER_DEFINED;
        if (tok_json_bool(e, "single_word", 0))
            return slim_set_error("%s: field 'added_tokens': \"%.100s\" has single_word true, which is not supported",
                                  path, content);
        added_flags[id] = (uint8_t)((tok_json_bool(e, "lstrip", 0) ? TOK_ADDED_LSTRIP : 0) |
                                    (tok_json_bool(e, "rstrip", 0) ? TOK_ADDED_RSTRIP : 0));
        has_flags |= added_flags[id];
    }
    for (int i = 0; i < n; i++)
        if (!t->pieces[i])
            return slim_set_error("%s: field 'model.vocab': no entry has id %d (ids must be dense: 0..%d all used)",
                                  path, i, n - 1);
    return has_flags != 0;
}

/* Special ids and BOS/EOS rules: unk_token, the post_processor template, then tokenizer_config.json (cfg,
 * may be NULL: bos_token/eos_token/pad_token, add_bos_token/add_eos_token). */
static int tok_hf_specials(tokenizer *t, const cJSON *root, const cJSON *cfg, const char *path, const char *cfg_path) {
    const char *unk = tok_json_str(cJSON_GetObjectItemCaseSensitive(root, "model"), "unk_token");
    t->unk_id = unk ? tokenizer_find_piece(t, unk, strlen(unk)) : -1;
    t->bos_id = t->eos_id = t->pad_id = -1;
    int tmpl_bos = -1, tmpl_eos = -1;
    if (tok_hf_post(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), path, &tmpl_bos, &tmpl_eos)) return -1;
    t->add_bos = tmpl_bos >= 0;
    t->add_eos = tmpl_eos >= 0;
    t->bos_id = tmpl_bos;
    t->eos_id = tmpl_eos;
    if (!cfg) return 0;
    static const char *keys[3] = {"bos_token", "eos_token", "pad_token"};
    int *dst[3] = {&t->bos_id, &t->eos_id, &t->pad_id};
    for (int k = 0; k < 3; k++) {
        const char *s = tok_cfg_token(cfg, keys[k]);
        if (!s) continue;
        int id = tokenizer_find_piece(t, s, strlen(s));
        if (id < 0)
            return slim_set_error("%s: field '%s': \"%s\" is not in the vocabulary of %s", cfg_path, keys[k], s, path);
        if (*dst[k] < 0) *dst[k] = id;
    }
    t->add_bos = tok_json_bool(cfg, "add_bos_token", t->add_bos);
    t->add_eos = tok_json_bool(cfg, "add_eos_token", t->add_eos);
    return 0;
}

/* The merges, in rank order: "a b" strings (Hugging Face keeps the first two parts of "a b c") or
 * ["a", "b"] pairs. */
static int tok_hf_merges(tokenizer *t, const cJSON *merges, const char *path) {
    char where[4200];
    snprintf(where, sizeof where, "%s: field 'model.merges'", path);
    tok_bpe_alloc(t, (size_t)cJSON_GetArraySize(merges));
    int rank = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, merges) {
        if (cJSON_IsString(e)) {
            const char *m = e->valuestring, *sp = m[0] ? strchr(m + 1, ' ') : NULL;
            if (!sp) return slim_set_error("%s: merge %d \"%.200s\" is not two pieces separated by a space", where, rank, m);
            const char *r = sp + 1, *sp2 = strchr(r, ' ');
            if (tok_bpe_add_merge(t, m, (size_t)(sp - m), r, sp2 ? (size_t)(sp2 - r) : strlen(r), rank, where)) return -1;
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            const char *a = cJSON_GetArrayItem(e, 0)->valuestring, *b = cJSON_GetArrayItem(e, 1)->valuestring;
            if (tok_bpe_add_merge(t, a, strlen(a), b, strlen(b), rank, where)) return -1;
        } else {
            return slim_set_error("%s: merge %d is neither \"a b\" nor [\"a\", \"b\"]", where, rank);
        }
        rank++;
    }
    return 0;
}

int tokenizer_init_hf(tokenizer *t, const char *dir_or_json) {
    memset(t, 0, sizeof *t);
    char path[4096], cfg_path[4096];
    struct stat st;
    if (tok_hf_paths(dir_or_json, path, cfg_path, sizeof path)) return -1;
    cJSON *root = slim_read_json(path), *cfg = NULL;
    if (!root) return -1;
    if (stat(cfg_path, &st) == 0 && !(cfg = slim_read_json(cfg_path))) {
        cJSON_Delete(root);
        return -1;
    }
    uint8_t *added_flags = NULL;
    int rc = -1, pre, n, has_flags;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (tok_hf_check_model(t, root, path) ||
        (pre = tok_hf_pre(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), path)) < 0 ||
        (n = tok_hf_vocab_size(vocab, added, path)) < 0)
        goto done;
    added_flags = slim_calloc((size_t)n, 1);
    if ((has_flags = tok_hf_fill(t, n, vocab, added, added_flags, path)) < 0) goto done;
    t->pre = pre;
    t->ignore_merges = tok_json_bool(model, "ignore_merges", 0);
    t->add_space_prefix = 0;
    tok_build_hash(t);
    if (tok_hf_specials(t, root, cfg, path, cfg_path) ||
        tok_hf_merges(t, cJSON_GetObjectItemCaseSensitive(model, "merges"), path))
        goto done;
    rc = tok_bpe_finish(t, has_flags ? added_flags : NULL, path);
done:
    free(added_flags);
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    if (rc) tokenizer_free(t);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * encoding */

typedef struct { int32_t id, prev, next; } tok_wsym;
typedef struct { int32_t rank, left, lid, rid, mid; } tok_wpair;

struct tok_work {
    uint32_t *cp, *off;
    uint8_t *cls;
    int32_t *starts;
    size_t cap;              /* characters the four arrays above hold */
    tok_wsym *sym;
    tok_wpair *heap;
    char *mapped;
    int32_t *ids;
    size_t wcap;             /* bytes of a word the four arrays above hold */
    int cache_locked;        /* this call holds the tokenizer's word cache */
    tok_cache *cache;
};

tok_work *tok_work_new(void) { return slim_calloc(1, sizeof(tok_work)); }

void tok_work_free(tok_work *w) {
    if (!w) return;
    if (w->cache_locked) __atomic_clear(&w->cache->lock, __ATOMIC_RELEASE);
    free(w->cp);
    free(w->off);
    free(w->cls);
    free(w->starts);
    free(w->sym);
    free(w->heap);
    free(w->mapped);
    free(w->ids);
    free(w);
}

static void tok_work_reserve(tok_work *w, size_t n) {
    if (n + 1 <= w->cap) return;
    w->cap = n + 1 + n / 2;
    w->cp = slim_realloc(w->cp, w->cap * sizeof(uint32_t));
    w->off = slim_realloc(w->off, w->cap * sizeof(uint32_t));
    w->cls = slim_realloc(w->cls, w->cap);
    w->starts = slim_realloc(w->starts, w->cap * sizeof(int32_t));
}

static void tok_word_reserve(tok_work *w, size_t n) {
    if (n + 1 <= w->wcap) return;
    w->wcap = n + 1 + n / 2 + 32;
    w->sym = slim_realloc(w->sym, w->wcap * sizeof(tok_wsym));
    w->heap = slim_realloc(w->heap, 2 * w->wcap * sizeof(tok_wpair));
    w->mapped = slim_realloc(w->mapped, 2 * w->wcap);
    w->ids = slim_realloc(w->ids, w->wcap * sizeof(int32_t));
}

static inline int tok_pair_before(const tok_wpair *a, const tok_wpair *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static inline void tok_wheap_push(tok_wpair *h, int *n, tok_wpair p) {
    int i = (*n)++;
    while (i > 0) {
        int up = (i - 1) / 2;
        if (!tok_pair_before(&p, &h[up])) break;
        h[i] = h[up];
        i = up;
    }
    h[i] = p;
}

static inline tok_wpair tok_wheap_pop(tok_wpair *h, int *n) {
    tok_wpair top = h[0], last = h[--(*n)];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && tok_pair_before(&h[c + 1], &h[c])) c++;
        if (!tok_pair_before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

static inline void tok_try_pair(const struct tok_bpe *b, const tok_wsym *sym, int left, tok_wpair *heap, int *nh) {
    if (left < 0) return;
    int right = sym[left].next;
    if (right < 0) return;
    int32_t mid;
    int rank = tok_merge_find(b, sym[left].id, sym[right].id, &mid);
    if (rank < 0) return;
    tok_wpair p = { rank, left, sym[left].id, sym[right].id, mid };
    tok_wheap_push(heap, nh, p);
}

/* BPE of one word s[0..n): ids to w->ids; returns the count. */
static int tok_bpe_merge_word(const tokenizer *t, tok_work *w, const uint8_t *s, int n) {
    const struct tok_bpe *b = t->bpe;
    tok_word_reserve(w, (size_t)n);
    if (n == 1) { w->ids[0] = t->byte_ids[s[0]]; return 1; }
    if (t->ignore_merges) {
        size_t k = 0;
        for (int i = 0; i < n; i++) {
            memcpy(w->mapped + k, b->byte_chr[s[i]], 2);
            k += b->byte_chr_len[s[i]];
        }
        int id = tokenizer_find_piece(t, w->mapped, k);
        if (id >= 0) { w->ids[0] = id; return 1; }
    }
    tok_wsym *sym = w->sym;
    for (int i = 0; i < n; i++) {
        sym[i].id = t->byte_ids[s[i]];
        sym[i].prev = i - 1;
        sym[i].next = i + 1 < n ? i + 1 : -1;
    }
    int nh = 0;
    for (int i = 0; i + 1 < n; i++) tok_try_pair(b, sym, i, w->heap, &nh);
    while (nh > 0) {
        tok_wpair p = tok_wheap_pop(w->heap, &nh);
        int l = p.left, r = sym[l].next;
        if (sym[l].id != p.lid || r < 0 || sym[r].id != p.rid) continue; /* stale */
        sym[l].id = p.mid;
        sym[l].next = sym[r].next;
        if (sym[r].next >= 0) sym[sym[r].next].prev = l;
        sym[r].id = -1;
        tok_try_pair(b, sym, sym[l].prev, w->heap, &nh);
        tok_try_pair(b, sym, l, w->heap, &nh);
    }
    int k = 0;
    for (int i = 0; i >= 0; i = sym[i].next) w->ids[k++] = sym[i].id;
    return k;
}

/* The ids of one word, through the cache. *ids points into the cache or w->ids. */
static int tok_bpe_word(const tokenizer *t, tok_work *w, const uint8_t *s, int n, const int32_t **ids) {
    tok_cache *c = &t->bpe->cache;
    uint64_t h = 0;
    size_t slot = 0;
    int use_cache = w->cache_locked && n <= TOK_CACHE_MAX_WORD && n > 1;
    if (use_cache) {
        h = tok_word_hash(s, (size_t)n);
        slot = (size_t)h & (TOK_CACHE_SLOTS - 1);
        for (;;) {
            tok_cslot *e = &c->slots[slot];
            if (e->klen == 0) break;
            if (e->h == h && e->klen == (uint32_t)n && memcmp(c->keys + e->koff, s, (size_t)n) == 0) {
                *ids = c->ids + e->ioff;
                return (int)e->nids;
            }
            slot = (slot + 1) & (TOK_CACHE_SLOTS - 1);
        }
    }
    int k = tok_bpe_merge_word(t, w, s, n);
    *ids = w->ids;
    if (use_cache) {
        if (c->used >= TOK_CACHE_SLOTS / 2 || c->nkeys + (size_t)n > TOK_CACHE_KEYS || c->nids + (size_t)k > TOK_CACHE_IDS) {
            memset(c->slots, 0, TOK_CACHE_SLOTS * sizeof(tok_cslot)); /* full: start over */
            c->used = c->nkeys = c->nids = 0;
            slot = (size_t)h & (TOK_CACHE_SLOTS - 1);
        }
        tok_cslot *e = &c->slots[slot];
        e->h = h;
        e->koff = (uint32_t)c->nkeys;
        e->klen = (uint32_t)n;
        e->ioff = (uint32_t)c->nids;
        e->nids = (uint32_t)k;
        memcpy(c->keys + c->nkeys, s, (size_t)n);
        memcpy(c->ids + c->nids, w->ids, (size_t)k * sizeof(int32_t));
        c->nkeys += (size_t)n;
        c->nids += (size_t)k;
        c->used++;
    }
    return k;
}

int tok_bpe_encode(const tokenizer *t, tok_work *w, const char *s, size_t n, size_t base, tok_sink *sink) {
    if (!w->cache && t->bpe) {
        w->cache = &t->bpe->cache;
        w->cache_locked = !__atomic_test_and_set(&w->cache->lock, __ATOMIC_ACQUIRE);
    }
    char *norm = NULL;
    uint32_t *map = NULL;
    const char *txt = s;
    size_t tn = n;
    if (t->normalize_nfc) {
        int r = pretok_nfc(s, n, &norm, &tn, sink->offsets ? &map : NULL);
        if (r < 0) return -1;
        if (r == 1) txt = norm;
        else tn = n;
    }
    tok_work_reserve(w, tn);
    int nc = pretok_decode(txt, tn, w->cp, w->cls, w->off);
    int np = pretok_split(t->pre, w->cp, w->cls, nc, w->starts);
    for (int p = 0; p < np; p++) {
        size_t wb = w->off[w->starts[p]], we = p + 1 < np ? w->off[w->starts[p + 1]] : tn;
        if (we - wb > (size_t)INT_MAX / 4) { free(norm); free(map); return slim_set_error("tokenizer: pre-token too long"); }
        const int32_t *ids;
        int k = tok_bpe_word(t, w, (const uint8_t *)txt + wb, (int)(we - wb), &ids);
        size_t pos = wb;
        for (int i = 0; i < k; i++) {
            tok_sink_push(sink, ids[i], base + (map ? map[pos] : pos));
            pos += (size_t)t->bpe->dec_len[ids[i]];
        }
    }
    free(norm);
    free(map);
    return 0;
}
