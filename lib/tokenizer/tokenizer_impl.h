/* tokenizer_impl.h — private pieces shared by tokenizer.c (SentencePiece, special tokens, dispatch)
 * and tokenizer_bpe.c (byte-level BPE, GGUF "gpt2" and tokenizer.json loading). Not a public API. */
#ifndef SLIM_TOKENIZER_IMPL_H
#define SLIM_TOKENIZER_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

/* Where encoded ids go: the first cap ids (and offsets, when not NULL) are stored, n counts all. */
typedef struct tok_sink {
    int32_t *out, *offsets;
    size_t cap, n;
} tok_sink;

static inline void tok_sink_push(tok_sink *s, int32_t id, size_t off) {
    if (s->n < s->cap) {
        s->out[s->n] = id;
        if (s->offsets) s->offsets[s->n] = (int32_t)off;
    }
    s->n++;
}

/* Per-id flags of added tokens (tokenizer.json lstrip/rstrip). */
/* LSTRIP/RSTRIP: Hugging Face added-token stripping of Unicode White_Space; RSTRIP_ASCII: llama.cpp's
 * token attribute RSTRIP, which strips C isspace() bytes only (Phi-3 special tokens) */
enum { TOK_ADDED_LSTRIP = 1, TOK_ADDED_RSTRIP = 2, TOK_ADDED_RSTRIP_ASCII = 4 };

/* Builds the piece hash (t->pieces must be set). */
void tok_build_hash(tokenizer *t);

/* Builds t->specials from t->types: CONTROL, UNKNOWN and USER_DEFINED pieces that can be written
 * in text. added_flags ([n_vocab] or NULL): TOK_ADDED_* per id. */
void tok_build_specials(tokenizer *t, const uint8_t *added_flags);

/* Reads an optional special id / bool from GGUF metadata (absent -> def; id 0xFFFFFFFF -> -1). */
int tok_gguf_id(const gguf_file *g, const char *key, int n_vocab, int def, int *out);
int tok_gguf_bool(const gguf_file *g, const char *key, int def, int *out);
/* An optional array key: *out = the key or NULL when absent; -1 when present but not an array of n values
 * of arr_type (GGUF_TYPE_FLOAT32 or GGUF_TYPE_INT32). */
int tok_gguf_array(const gguf_file *g, const char *key, uint32_t arr_type, uint64_t n, const gguf_kv **out);

/* Defaults of the special-token keys of a GGUF vocabulary, per tokenizer kind (llama.cpp's). */
typedef struct tok_gguf_defaults {
    int bos, eos, unk;     /* ids when tokenizer.ggml.*_token_id is absent (-1: none) */
    int add_bos;           /* when tokenizer.ggml.add_bos_token is absent */
    int read_space_prefix; /* 1: read tokenizer.ggml.add_space_prefix (default 1); 0: no space prefix */
} tok_gguf_defaults;

/* Reads a GGUF vocabulary into t (kind TOK_KIND_SPM or TOK_KIND_BPE): pieces (tokenizer.ggml.tokens),
 * token types, scores (SentencePiece only), special ids and the add_bos/add_eos/space-prefix flags
 * (absent keys take d's defaults). Returns 0, or -1 naming the key at fault; t then needs
 * tokenizer_free(). */
int tok_gguf_vocab(tokenizer *t, const gguf_file *g, int kind, const tok_gguf_defaults *d);

/* The vocabulary key tokenizer.ggml.tokens: a non-empty array of strings of at most INT_MAX / 4
 * entries. Returns it, or NULL with an error naming the key. */
const gguf_kv *tok_gguf_tokens(const gguf_file *g);

/* Byte-level BPE (tokenizer_bpe.c). */
int tok_bpe_init_gguf(tokenizer *t, const gguf_file *g);
/* Frees the merge tables and the cache of a BPE tokenizer (NULL is fine). */
void tok_bpe_free(struct tok_bpe *b);
/* Per-call scratch space of the BPE encoder. */
typedef struct tok_work tok_work;
/* A fresh scratch space (grown on demand); tok_work_free releases it. */
tok_work *tok_work_new(void);
void tok_work_free(tok_work *w);
/* Encodes one fragment s[0..n) (no special tokens in it) whose first byte is at text offset base. */
int tok_bpe_encode(const tokenizer *t, tok_work *w, const char *s, size_t n, size_t base, tok_sink *sink);
/* Appends the bytes of a byte-level piece to buf (tok_put semantics); returns the byte count. */
int tok_bpe_decode_piece(const tokenizer *t, const char *p, int plen, char *buf, size_t cap, size_t *at);

#endif
