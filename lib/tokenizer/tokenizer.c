/* tokenizer.c — the SentencePiece-BPE tokenizer (tokenizer.ggml.model = "llama"), special-token
 * splitting and the public entry points; byte-level BPE is in tokenizer_bpe.c. See tokenizer.h.
 *
 * SentencePiece behaviour follows llama.cpp's llm_tokenizer_spm (llama-vocab.cpp), which the test
 * vectors in ../shared were checked against:
 *   1. an optional " " dummy prefix, then every ' ' becomes U+2581 "▁";
 *   2. the text is split into UTF-8 characters (length from the lead byte only, so invalid bytes
 *      become one-byte symbols);
 *   3. every adjacent pair whose concatenation is a vocabulary piece is queued with that piece's
 *      score; the best pair (highest score, then leftmost) is merged, and the new neighbours are
 *      queued; stale queue entries are skipped;
 *   4. each final symbol is emitted as its piece id, or, when it is not a piece, as one <0xXX>
 *      byte token per byte.
 *
 * Special tokens (llama.cpp tokenizer_st_partition, Hugging Face added tokens): before the model
 * runs, the text is cut at every occurrence of a recognized special piece (leftmost, longest first);
 * the pieces between are encoded as text. For SPM the dummy prefix goes on the first text fragment
 * and on every fragment that follows a special token, as llama.cpp does. */
#include "tokenizer.h"

#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "format/model_file.h"
#include "pretok.h"
#include "tokenizer_impl.h"

/* ---------------------------------------------------------------------------------------------
 * piece -> id hash */

static size_t tok_hash(const char *s, size_t n) { return (size_t)slim_fnv1a(SLIM_FNV_INIT, s, n); }

int tokenizer_find_piece(const tokenizer *t, const char *piece, size_t len) {
    if (!t->hash_ids) return -1;
    size_t mask = t->hash_cap - 1, h = tok_hash(piece, len) & mask;
    for (;;) {
        int id = t->hash_ids[h];
        if (id < 0) return -1;
        if ((size_t)t->piece_lens[id] == len && memcmp(t->pieces[id], piece, len) == 0) return id;
        h = (h + 1) & mask;
    }
}

/* Inserts id; a later id with the same text replaces the earlier one (as llama.cpp's token_to_id). */
static void tok_hash_insert(tokenizer *t, int id) {
    size_t mask = t->hash_cap - 1, h = tok_hash(t->pieces[id], (size_t)t->piece_lens[id]) & mask;
    for (;;) {
        int cur = t->hash_ids[h];
        if (cur < 0 || (t->piece_lens[cur] == t->piece_lens[id] &&
                        memcmp(t->pieces[cur], t->pieces[id], (size_t)t->piece_lens[id]) == 0)) {
            t->hash_ids[h] = id;
            return;
        }
        h = (h + 1) & mask;
    }
}

void tok_build_hash(tokenizer *t) {
    t->hash_cap = 16;
    while (t->hash_cap < 2 * (size_t)t->n_vocab) t->hash_cap *= 2;
    t->hash_ids = slim_malloc(t->hash_cap * sizeof(int));
    for (size_t i = 0; i < t->hash_cap; i++) t->hash_ids[i] = -1;
    for (int i = 0; i < t->n_vocab; i++)
        if (t->piece_lens[i] > 0 || t->types[i] != TOK_TYPE_UNUSED) tok_hash_insert(t, i);
}

/* ---------------------------------------------------------------------------------------------
 * special tokens written in text */

struct tok_specials {
    int n;
    int *ids;            /* [n] grouped by first byte, longest first within a group */
    int start[257];      /* ids[start[b] .. start[b+1]) begin with byte b */
    uint8_t *flags;      /* [n_vocab] TOK_ADDED_* or NULL */
};

typedef struct { int first, len, id; } tok_special_key;

/* grouped by first byte, longest first within a group, then the lower id (same text twice) */
static int tok_special_cmp(const void *a, const void *b) {
    const tok_special_key *x = a, *y = b;
    if (x->first != y->first) return x->first < y->first ? -1 : 1;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int tok_is_special_type(int type) {
    return type == TOK_TYPE_CONTROL || type == TOK_TYPE_USER_DEFINED || type == TOK_TYPE_UNKNOWN;
}

void tok_build_specials(tokenizer *t, const uint8_t *added_flags) {
    struct tok_specials *s = slim_calloc(1, sizeof *s);
    for (int i = 0; i < t->n_vocab; i++) s->n += tok_is_special_type(t->types[i]) && t->piece_lens[i] > 0;
    s->ids = slim_malloc((size_t)(s->n ? s->n : 1) * sizeof(int));
    tok_special_key *keys = slim_malloc((size_t)(s->n ? s->n : 1) * sizeof(tok_special_key));
    int k = 0;
    for (int i = 0; i < t->n_vocab; i++)
        if (tok_is_special_type(t->types[i]) && t->piece_lens[i] > 0)
            keys[k++] = (tok_special_key){ (uint8_t)t->pieces[i][0], t->piece_lens[i], i };
    qsort(keys, (size_t)s->n, sizeof *keys, tok_special_cmp);
    for (k = 0; k < s->n; k++) s->ids[k] = keys[k].id;
    free(keys);
    int b = 0;
    for (k = 0; k < s->n; k++) {
        int first = (uint8_t)t->pieces[s->ids[k]][0];
        while (b <= first) s->start[b++] = k;
    }
    while (b <= 256) s->start[b++] = s->n;
    if (added_flags) {
        s->flags = slim_malloc((size_t)t->n_vocab);
        memcpy(s->flags, added_flags, (size_t)t->n_vocab);
    }
    t->specials = s;
}

/* The special token that starts at text[i] (longest), or -1. parse_all: CONTROL/UNKNOWN too. */
static int tok_match_special(const tokenizer *t, const char *text, size_t len, size_t i, int parse_all) {
    const struct tok_specials *s = t->specials;
    uint8_t b = (uint8_t)text[i];
    for (int k = s->start[b]; k < s->start[b + 1]; k++) {
        int id = s->ids[k];
        size_t pl = (size_t)t->piece_lens[id];
        if (pl > len - i || (!parse_all && t->types[id] != TOK_TYPE_USER_DEFINED)) continue;
        if (memcmp(text + i, t->pieces[id], pl) == 0) return id;
    }
    return -1;
}

/* ---------------------------------------------------------------------------------------------
 * init / free */

int tok_gguf_id(const gguf_file *g, const char *key, int n_vocab, int def, int *out) {
    *out = def;
    if (!gguf_find_kv(g, key)) return 0;
    uint32_t v;
    if (gguf_get_u32(g, key, &v)) return -1;
    if (v == UINT32_MAX) { *out = -1; return 0; } /* (uint32)-1: explicitly none */
    if (v >= (uint32_t)n_vocab)
        return slim_set_error("%s: key '%s': token id %u is outside the vocabulary of %d", g->path, key, v,
                              n_vocab);
    *out = (int)v;
    return 0;
}

const gguf_kv *tok_gguf_tokens(const gguf_file *g) {
    const gguf_kv *tok = gguf_find_kv(g, "tokenizer.ggml.tokens");
    if (!tok) {
        slim_set_error("%s: key 'tokenizer.ggml.tokens' is missing", g->path);
        return NULL;
    }
    if (tok->type != GGUF_TYPE_ARRAY || tok->arr_type != GGUF_TYPE_STRING) {
        slim_set_error("%s: key 'tokenizer.ggml.tokens': expected an array of strings", g->path);
        return NULL;
    }
    if (tok->n == 0 || tok->n > INT_MAX / 4) {
        slim_set_error("%s: key 'tokenizer.ggml.tokens': bad vocabulary size %llu", g->path,
                       (unsigned long long)tok->n);
        return NULL;
    }
    return tok;
}

int tok_gguf_array(const gguf_file *g, const char *key, uint32_t arr_type, uint64_t n, const gguf_kv **out) {
    const gguf_kv *kv = gguf_find_kv(g, key);
    *out = kv;
    if (kv && (kv->type != GGUF_TYPE_ARRAY || kv->arr_type != arr_type || kv->n != n))
        return slim_set_error("%s: key '%s': expected %llu %s values", g->path, key, (unsigned long long)n,
                              arr_type == GGUF_TYPE_FLOAT32 ? "float32" : "int32");
    return 0;
}

int tok_gguf_bool(const gguf_file *g, const char *key, int def, int *out) {
    const gguf_kv *kv = gguf_find_kv(g, key);
    *out = def;
    if (!kv) return 0;
    if (kv->type != GGUF_TYPE_BOOL) return slim_set_error("%s: key '%s': type %u, expected bool", g->path, key, kv->type);
    *out = kv->u64 != 0;
    return 0;
}

int tok_gguf_vocab(tokenizer *t, const gguf_file *g, int kind, const tok_gguf_defaults *d) {
    const gguf_kv *tok = tok_gguf_tokens(g), *sc = NULL, *ty;
    if (!tok) return -1;
    int n = (int)tok->n;
    if ((kind == TOK_KIND_SPM && tok_gguf_array(g, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, tok->n, &sc)) ||
        tok_gguf_array(g, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, tok->n, &ty))
        return -1;
    for (int i = 0; i < n; i++)
        if (tok->str_lens[i] > INT_MAX)
            return slim_set_error("%s: key 'tokenizer.ggml.tokens': token %d is too long", g->path, i);
    int bos, eos, unk, pad, add_bos, add_eos, add_sp = 0;
    if (tok_gguf_id(g, "tokenizer.ggml.bos_token_id", n, d->bos, &bos) ||
        tok_gguf_id(g, "tokenizer.ggml.eos_token_id", n, d->eos, &eos) ||
        tok_gguf_id(g, "tokenizer.ggml.unknown_token_id", n, d->unk, &unk) ||
        tok_gguf_id(g, "tokenizer.ggml.padding_token_id", n, -1, &pad) ||
        tok_gguf_bool(g, "tokenizer.ggml.add_bos_token", d->add_bos, &add_bos) ||
        tok_gguf_bool(g, "tokenizer.ggml.add_eos_token", 0, &add_eos) ||
        (d->read_space_prefix && tok_gguf_bool(g, "tokenizer.ggml.add_space_prefix", 1, &add_sp)))
        return -1;

    t->kind = kind;
    t->n_vocab = n;
    t->pieces = slim_malloc((size_t)n * sizeof(char *));
    t->piece_lens = slim_malloc((size_t)n * sizeof(int));
    t->scores = slim_calloc((size_t)n, sizeof(float));
    t->types = slim_malloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) {
        size_t len = (size_t)tok->str_lens[i];
        t->pieces[i] = slim_malloc(len + 1);
        memcpy(t->pieces[i], tok->strs[i], len);
        t->pieces[i][len] = 0;
        t->piece_lens[i] = (int)len;
        if (sc) memcpy(&t->scores[i], (const float *)sc->arr + i, sizeof(float));
        if (ty) { int32_t v; memcpy(&v, (const int32_t *)ty->arr + i, 4); t->types[i] = v; }
        else t->types[i] = TOK_TYPE_NORMAL;
    }
    t->bos_id = bos; t->eos_id = eos; t->unk_id = unk; t->pad_id = pad;
    t->add_bos = add_bos; t->add_eos = add_eos; t->add_space_prefix = add_sp;
    return 0;
}

static int tok_init_spm(tokenizer *t, const gguf_file *g) {
    /* llama.cpp's SentencePiece defaults: <s> 1, </s> 2, <unk> 0, BOS added, space prefix */
    const gguf_kv *tokens = gguf_find_kv(g, "tokenizer.ggml.tokens");
    uint64_t n_tokens = tokens ? tokens->n : 0;
    tok_gguf_defaults d = {.bos = n_tokens > 1 ? 1 : -1, .eos = n_tokens > 2 ? 2 : -1, .unk = 0, .add_bos = 1,
                           .read_space_prefix = 1};
    if (tok_gguf_vocab(t, g, TOK_KIND_SPM, &d)) return -1;
    const int n = t->n_vocab;
    tok_build_hash(t);

    /* byte fallback: "<0xXX>" (upper-case hex), else the raw one-byte piece (llama.cpp byte_to_token) */
    for (int b = 0; b < 256; b++) {
        char buf[8];
        snprintf(buf, sizeof buf, "<0x%02X>", b);
        t->byte_ids[b] = tokenizer_find_piece(t, buf, 6);
        if (t->byte_ids[b] < 0) {
            char c = (char)b;
            t->byte_ids[b] = tokenizer_find_piece(t, &c, 1);
        }
    }
    /* Phi-3: llama.cpp strips the whitespace that follows a special token (attribute RSTRIP) for
     * models whose general.name says phi-3/phi3 — every special token but <unk>, <s> and
     * <|endoftext|> — a rule the GGUF does not carry, keyed on the name as llama.cpp keys it */
    uint8_t *flags = NULL;
    const gguf_kv *name_kv = gguf_find_kv(g, "general.name");
    if (name_kv && name_kv->type == GGUF_TYPE_STRING) {
        char lower[256];
        size_t k = 0;
        for (; name_kv->str[k] && k + 1 < sizeof lower; k++) lower[k] = (char)tolower((unsigned char)name_kv->str[k]);
        lower[k] = 0;
        if (strstr(lower, "phi-3") || strstr(lower, "phi3")) {
            flags = slim_calloc((size_t)n, 1);
            for (int i = 0; i < n; i++) {
                const char *pc = t->pieces[i];
                int special = t->types[i] == TOK_TYPE_CONTROL || t->types[i] == TOK_TYPE_USER_DEFINED ||
                              t->types[i] == TOK_TYPE_UNKNOWN;
                if ((special || !strcmp(pc, "</s>")) && strcmp(pc, "<unk>") && strcmp(pc, "<s>") &&
                    strcmp(pc, "<|endoftext|>"))
                    flags[i] = TOK_ADDED_RSTRIP_ASCII;
            }
        }
    }
    tok_build_specials(t, flags);
    free(flags);

    uint64_t h = slim_fnv1a(SLIM_FNV_INIT, "llama", 5);
    for (int i = 0; i < n; i++) {
        uint32_t len = (uint32_t)t->piece_lens[i];
        int32_t type = t->types[i];
        h = slim_fnv1a(h, &len, 4);
        h = slim_fnv1a(h, t->pieces[i], len);
        h = slim_fnv1a(h, &t->scores[i], 4);
        h = slim_fnv1a(h, &type, 4);
    }
    /* the special ids and the encoding rules: a dataset tokenized with another BOS/EOS/space-prefix rule
     * holds different ids for the same text, so it must not match */
    int32_t ids[7] = {t->bos_id, t->eos_id, t->unk_id, t->pad_id, t->add_bos, t->add_eos, t->add_space_prefix};
    t->fingerprint = slim_fnv1a(h, ids, sizeof ids);
    return 0;
}

int tokenizer_init_gguf(tokenizer *t, const gguf_file *g) {
    memset(t, 0, sizeof *t);
    const char *model = gguf_get_str(g, "tokenizer.ggml.model");
    if (!model) return -1;
    int rc;
    if (strcmp(model, "llama") == 0) rc = tok_init_spm(t, g);
    else if (strcmp(model, "gpt2") == 0) rc = tok_bpe_init_gguf(t, g);
    else
        return slim_set_error("%s: key 'tokenizer.ggml.model': unsupported tokenizer \"%s\" (supported: llama, gpt2)",
                              g->path, model);
    if (rc) tokenizer_free(t);
    return rc;
}

int tokenizer_init_model(tokenizer *t, const gguf_file *g, const char *path) {
    if (tokenizer_init_gguf(t, g) == 0) return 0;
    if (!slim_model_is_dir(path)) return -1;
    return tokenizer_init_hf(t, path);
}

int tokenizer_init_path(tokenizer *t, const char *model) {
    size_t n = strlen(model);
    if (slim_model_is_dir(model) || (n > 5 && !strcmp(model + n - 5, ".json"))) return tokenizer_init_hf(t, model);
    gguf_file g;
    if (slim_model_open(&g, model)) return -1;
    int rc = tokenizer_init_model(t, &g, model);
    gguf_close(&g);
    return rc;
}

void tokenizer_free(tokenizer *t) {
    if (!t) return;
    if (t->pieces)
        for (int i = 0; i < t->n_vocab; i++) free(t->pieces[i]);
    free(t->pieces);
    free(t->piece_lens);
    free(t->scores);
    free(t->types);
    free(t->hash_ids);
    tok_bpe_free(t->bpe);
    if (t->specials) {
        free(t->specials->ids);
        free(t->specials->flags);
        free(t->specials);
    }
    memset(t, 0, sizeof *t);
}

/* ---------------------------------------------------------------------------------------------
 * SentencePiece encoding */

typedef struct { int prev, next, off, n; } tok_sym; /* n = 0: merged away */
typedef struct { int left, right, size; float score; } tok_bigram;

/* a before b in the queue: higher score first, then the leftmost pair */
static int tok_bigram_before(const tok_bigram *a, const tok_bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

typedef struct { tok_bigram *v; int n, cap; } tok_heap;

static void tok_heap_push(tok_heap *q, tok_bigram b) {
    if (q->n == q->cap) {
        q->cap = q->cap ? 2 * q->cap : 64;
        q->v = slim_realloc(q->v, (size_t)q->cap * sizeof(tok_bigram));
    }
    int i = q->n++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!tok_bigram_before(&b, &q->v[p])) break;
        q->v[i] = q->v[p];
        i = p;
    }
    q->v[i] = b;
}

static tok_bigram tok_heap_pop(tok_heap *q) {
    tok_bigram top = q->v[0], last = q->v[--q->n];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= q->n) break;
        if (c + 1 < q->n && tok_bigram_before(&q->v[c + 1], &q->v[c])) c++;
        if (!tok_bigram_before(&q->v[c], &last)) break;
        q->v[i] = q->v[c];
        i = c;
    }
    if (q->n) q->v[i] = last;
    return top;
}

static void tok_try_bigram(const tokenizer *t, const char *s, const tok_sym *sym, int left, int right,
                           tok_heap *q) {
    if (left < 0 || right < 0) return;
    int size = sym[left].n + sym[right].n;
    int id = tokenizer_find_piece(t, s + sym[left].off, (size_t)size);
    if (id < 0) return;
    tok_bigram b = { left, right, size, t->scores[id] };
    tok_heap_push(q, b);
}

/* length of the UTF-8 sequence announced by a lead byte (continuation/invalid bytes count as 1) */
static int tok_utf8_len(uint8_t c) {
    static const int lookup[16] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4 };
    return lookup[c >> 4];
}

/* Encodes one SPM text fragment text[0..len) (len > 0) whose first byte is at offset base. */
static int tok_spm_encode(const tokenizer *t, const char *text, size_t len, size_t base, int prefix, tok_sink *sink) {
    /* escaped text: optional dummy prefix, ' ' -> U+2581 (3 bytes); src[k] = text offset of byte k */
    size_t n_sp = 0;
    for (size_t i = 0; i < len; i++) n_sp += text[i] == ' ';
    size_t n = len + 2 * n_sp + (prefix ? 3 : 0);
    char *s = slim_malloc(n + 1);
    uint32_t *src = slim_malloc((n + 1) * sizeof(uint32_t));
    size_t k = 0;
    if (prefix) { memcpy(s, "\xe2\x96\x81", 3); src[0] = src[1] = src[2] = 0; k = 3; }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(s + k, "\xe2\x96\x81", 3);
            src[k] = src[k + 1] = src[k + 2] = (uint32_t)i;
            k += 3;
        } else {
            src[k] = (uint32_t)i;
            s[k++] = text[i];
        }
    }
    s[k] = 0;

    tok_sym *sym = slim_malloc(n * sizeof(tok_sym));
    int n_sym = 0;
    for (size_t off = 0; off < n;) {
        int l = tok_utf8_len((uint8_t)s[off]);
        if ((size_t)l > n - off) l = (int)(n - off);
        sym[n_sym].off = (int)off;
        sym[n_sym].n = l;
        sym[n_sym].prev = n_sym - 1;
        off += (size_t)l;
        sym[n_sym].next = off == n ? -1 : n_sym + 1;
        n_sym++;
    }

    tok_heap q = { 0 };
    for (int i = 1; i < n_sym; i++) tok_try_bigram(t, s, sym, i - 1, i, &q);
    while (q.n) {
        tok_bigram b = tok_heap_pop(&q);
        tok_sym *l = &sym[b.left], *r = &sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = b.left;
        tok_try_bigram(t, s, sym, l->prev, b.left, &q);
        tok_try_bigram(t, s, sym, b.left, l->next, &q);
    }
    free(q.v);

    int err = 0;
    for (int i = 0; i != -1 && n_sym > 0; i = sym[i].next) {
        size_t at = base + src[sym[i].off];
        int id = tokenizer_find_piece(t, s + sym[i].off, (size_t)sym[i].n);
        if (id >= 0) { tok_sink_push(sink, id, at); continue; }
        for (int j = 0; j < sym[i].n; j++) {
            int bid = t->byte_ids[(uint8_t)s[sym[i].off + j]];
            if (bid < 0) bid = t->unk_id;
            if (bid < 0) {
                err = slim_set_error("tokenizer: byte 0x%02X has no token and there is no unknown token",
                                     (uint8_t)s[sym[i].off + j]);
                break;
            }
            tok_sink_push(sink, bid, base + src[sym[i].off + j]);
        }
        if (err) break;
    }
    free(sym);
    free(src);
    free(s);
    return err ? -1 : 0;
}

/* ---------------------------------------------------------------------------------------------
 * the public encoder */

/* Encodes a text fragment with the tokenizer's model. */
static int tok_encode_fragment(const tokenizer *t, tok_work **w, const char *s, size_t n, size_t base, int prefix,
                               tok_sink *sink) {
    if (n == 0) return 0;
    if (t->kind == TOK_KIND_SPM) return tok_spm_encode(t, s, n, base, prefix, sink);
    if (!*w) *w = tok_work_new();
    return tok_bpe_encode(t, *w, s, n, base, sink);
}

/* Length of the White_Space run at the end (dir < 0) or start (dir > 0) of s[0..n) (HF lstrip/rstrip). */
static size_t tok_space_run(const char *s, size_t n, int dir) {
    if (n == 0) return 0;
    uint32_t *cp = slim_malloc((n + 1) * sizeof(uint32_t)), *off = slim_malloc((n + 1) * sizeof(uint32_t));
    uint8_t *cls = slim_malloc(n + 1);
    int k = pretok_decode(s, n, cp, cls, off), j;
    size_t run;
    if (dir > 0) {
        for (j = 0; j < k && (cls[j] & PRETOK_S); j++) {}
        run = off[j];
    } else {
        for (j = k; j > 0 && (cls[j - 1] & PRETOK_S); j--) {}
        run = n - off[j];
    }
    free(cp);
    free(off);
    free(cls);
    return run;
}

int tokenizer_encode_ex(const tokenizer *t, const char *text, size_t len, int flags, int32_t *out, int cap,
                        int32_t *offsets) {
    tok_sink sink = { out, offsets, cap > 0 && out ? (size_t)cap : 0, 0 };
    if (flags & TOK_ADD_BOS) {
        if (t->bos_id < 0) return slim_set_error("tokenizer: BOS requested but the vocabulary has none");
        tok_sink_push(&sink, t->bos_id, 0);
    }
    if (len == 0) return (int)sink.n; /* empty text: no dummy prefix either (llama.cpp) */
    if (len > (size_t)INT_MAX / 4) return slim_set_error("tokenizer: text of %zu bytes is too long", len);
    if (!text) return slim_set_error("tokenizer: NULL text of %zu bytes", len);

    int parse_all = (flags & TOK_PARSE_SPECIAL) != 0;
    /* SPM: every text fragment is either the first or follows a special token, and both get the
     * dummy prefix (llama.cpp is_prev_special) */
    int prefix = t->add_space_prefix && (flags & TOK_SPACE_PREFIX);
    const struct tok_specials *sp = t->specials;
    tok_work *w = NULL;
    int rc = 0;
    size_t frag = 0; /* start of the text fragment not yet encoded */
    for (size_t i = 0; i < len && rc == 0;) {
        int id = -1;
        if (sp && sp->start[(uint8_t)text[i]] != sp->start[(uint8_t)text[i] + 1])
            id = tok_match_special(t, text, len, i, parse_all);
        if (id < 0) { i++; continue; }
        uint8_t fl = sp->flags ? sp->flags[id] : 0;
        size_t end = i;
        if (fl & TOK_ADDED_LSTRIP) end -= tok_space_run(text + frag, i - frag, -1);
        if (end > frag) rc = tok_encode_fragment(t, &w, text + frag, end - frag, frag, prefix, &sink);
        tok_sink_push(&sink, id, i);
        i += (size_t)t->piece_lens[id];
        if (fl & TOK_ADDED_RSTRIP) i += tok_space_run(text + i, len - i, 1);
        if (fl & TOK_ADDED_RSTRIP_ASCII)
            while (i < len && isspace((unsigned char)text[i])) i++;
        frag = i;
    }
    if (rc == 0 && frag < len) rc = tok_encode_fragment(t, &w, text + frag, len - frag, frag, prefix, &sink);
    if (w) tok_work_free(w);
    if (rc) return -1;
    if (sink.n > INT_MAX) return slim_set_error("tokenizer: too many tokens");
    return (int)sink.n;
}

int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int add_bos, int space_prefix,
                     int32_t *out, int cap) {
    return tokenizer_encode_ex(t, text, len, (add_bos ? TOK_ADD_BOS : 0) | (space_prefix ? TOK_SPACE_PREFIX : 0), out,
                               cap, NULL);
}

/* ---------------------------------------------------------------------------------------------
 * decoding */

static int tok_hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Appends byte c to buf (capacity cap) at *at when it fits, keeping room for the NUL. */
static void tok_put(char *buf, size_t cap, size_t *at, char c) {
    if (*at + 1 < cap) buf[(*at)++] = c;
}

int tokenizer_decode_token_ex(const tokenizer *t, int32_t id, int special, char *buf, size_t cap) {
    if (id < 0 || id >= t->n_vocab)
        return slim_set_error("tokenizer: token id %d is outside the vocabulary of %d", (int)id, t->n_vocab);
    const char *p = t->pieces[id];
    int plen = t->piece_lens[id], type = t->types[id], n = 0;
    size_t at = (buf && cap) ? strnlen(buf, cap - 1) : 0;
    if (!buf) cap = 0;
    if ((type == TOK_TYPE_CONTROL || type == TOK_TYPE_UNUSED) && !special) {
        /* decodes to nothing */
    } else if (type == TOK_TYPE_BYTE && plen == 6 && memcmp(p, "<0x", 3) == 0 && p[5] == '>' &&
               tok_hex(p[3]) >= 0 && tok_hex(p[4]) >= 0) {
        tok_put(buf, cap, &at, (char)(tok_hex(p[3]) * 16 + tok_hex(p[4])));
        n = 1;
    } else if (type == TOK_TYPE_NORMAL && t->kind == TOK_KIND_BPE) {
        n = tok_bpe_decode_piece(t, p, plen, buf, cap, &at);
    } else if (type == TOK_TYPE_NORMAL) {
        for (int i = 0; i < plen; i++, n++) {
            if (i + 2 < plen && memcmp(p + i, "\xe2\x96\x81", 3) == 0) { tok_put(buf, cap, &at, ' '); i += 2; }
            else tok_put(buf, cap, &at, p[i]);
        }
    } else {
        /* unknown, user-defined and any other type: the text as stored (llama.cpp) */
        for (int i = 0; i < plen; i++, n++) tok_put(buf, cap, &at, p[i]);
    }
    if (cap) buf[at] = 0;
    return n;
}

int tokenizer_decode_token(const tokenizer *t, int32_t id, char *buf, size_t cap) {
    return tokenizer_decode_token_ex(t, id, 0, buf, cap);
}
