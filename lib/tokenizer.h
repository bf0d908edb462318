/* tokenizer.h — the model's own tokenizer, built from GGUF metadata (tokenizer.ggml.*).
 *
 * Supported: tokenizer.ggml.model = "llama": SentencePiece BPE with byte fallback, as llama.cpp's
 * llm_tokenizer_spm implements it (Llama 2, Mistral, TinyLlama, stories260K): spaces escaped to
 * U+2581 "▁", a "▁" dummy prefix added when tokenizer.ggml.add_space_prefix (default true) asks,
 * greedy merges of the adjacent pair whose merged piece has the highest score (leftmost first on
 * ties), and pieces not in the vocabulary emitted as their <0xXX> byte tokens.
 * Control/special tokens written in the text (e.g. "<s>") are NOT parsed as specials: text is text. */
#ifndef SLIM_TOKENIZER_H
#define SLIM_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

/* Token types (tokenizer.ggml.token_type, llama.cpp numbering). */
enum tok_type { TOK_TYPE_NORMAL = 1, TOK_TYPE_UNKNOWN = 2, TOK_TYPE_CONTROL = 3,
                TOK_TYPE_USER_DEFINED = 4, TOK_TYPE_UNUSED = 5, TOK_TYPE_BYTE = 6 };

typedef struct tokenizer {
    int n_vocab;
    char **pieces;       /* [n_vocab] UTF-8 piece text as stored ("▁the", "<0x0A>", "<s>") */
    int *piece_lens;     /* [n_vocab] */
    float *scores;       /* [n_vocab] merge priority (higher merges first) */
    int *types;          /* [n_vocab] enum tok_type */
    int bos_id, eos_id, unk_id, pad_id; /* -1 when absent */
    int add_bos;         /* tokenizer.ggml.add_bos_token (default 1 for llama) */
    int add_eos;         /* tokenizer.ggml.add_eos_token (default 0) */
    int add_space_prefix;/* tokenizer.ggml.add_space_prefix (default 1) */
    int byte_ids[256];   /* id of <0xXX> for each byte, -1 when absent */
    uint64_t fingerprint;/* FNV-1a over model kind, pieces, scores, types and special ids */
    /* private: open-addressing hash from piece text to id */
    int *hash_ids;
    size_t hash_cap;
} tokenizer;

/* Builds the tokenizer from a GGUF file's metadata. Returns 0, or -1 with an error naming the
 * missing or malformed key (e.g. unsupported tokenizer.ggml.model). */
int tokenizer_init_gguf(tokenizer *t, const gguf_file *g);
void tokenizer_free(tokenizer *t);

/* Encodes len bytes of UTF-8 text into ids. add_bos: prepend BOS. space_prefix: apply the dummy "▁"
 * prefix rule (pass 1 for the start of a text, 0 for a continuation such as a completion " spam",
 * which must not gain a second space). Invalid UTF-8 bytes are encoded through byte fallback.
 * Writes at most cap ids to out and returns the total number of ids the text needs (which may
 * exceed cap: call again with a larger buffer), or -1 on error. */
int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int add_bos, int space_prefix,
                     int32_t *out, int cap);

/* Appends the text of one token to buf (capacity cap, NUL-terminated): "▁" -> " ", <0xXX> -> the
 * byte, control tokens -> "" . Returns the number of bytes the piece decodes to. */
int tokenizer_decode_token(const tokenizer *t, int32_t id, char *buf, size_t cap);

/* Looks up a piece's id by exact text; -1 when absent. */
int tokenizer_find_piece(const tokenizer *t, const char *piece, size_t len);

#endif
