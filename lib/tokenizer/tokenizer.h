/* tokenizer.h — the model's own tokenizer, built from GGUF metadata (tokenizer.ggml.*) or from a
 * Hugging Face tokenizer.json.
 *
 * Two kinds are supported:
 *
 * SentencePiece BPE (TOK_KIND_SPM; GGUF tokenizer.ggml.model = "llama"), as llama.cpp's
 * llm_tokenizer_spm implements it (Llama 2, Mistral, TinyLlama, stories260K): spaces escaped to
 * U+2581 "▁", a "▁" dummy prefix added when tokenizer.ggml.add_space_prefix (default true) asks,
 * greedy merges of the adjacent pair whose merged piece has the highest score (leftmost first on
 * ties), and pieces not in the vocabulary emitted as their <0xXX> byte tokens.
 *
 * Byte-level BPE (TOK_KIND_BPE; GGUF tokenizer.ggml.model = "gpt2", or a tokenizer.json whose model
 * is BPE with a ByteLevel pre-tokenizer): GPT-2, Llama 3, Qwen2/3, SmolLM. The text is optionally
 * NFC-normalized (tokenizer.json normalizer NFC), cut into pre-tokens by the family's split rules
 * (pretok.h; GGUF tokenizer.ggml.pre or the tokenizer.json Split regex selects them), each
 * pre-token's bytes are mapped to GPT-2's printable byte characters, and merges are applied by rank
 * (lowest first, leftmost on ties), as Hugging Face tokenizers and llama.cpp's llm_tokenizer_bpe do.
 * With ignore_merges (Llama 3) a pre-token that is itself a vocabulary entry is emitted whole.
 *
 * Special and added tokens: tokens of type CONTROL (special added tokens, e.g. "<|im_start|>",
 * "<s>") are recognized in the text only with TOK_PARSE_SPECIAL; otherwise text is text. Tokens of
 * type USER_DEFINED (non-special added tokens, e.g. Qwen's "<think>") are always recognized, as
 * llama.cpp and Hugging Face do. Matching is leftmost-longest. */
#ifndef SLIM_TOKENIZER_H
#define SLIM_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "format/gguf.h"

/* Token types (tokenizer.ggml.token_type, llama.cpp numbering). */
enum tok_type { TOK_TYPE_NORMAL = 1, TOK_TYPE_UNKNOWN = 2, TOK_TYPE_CONTROL = 3,
                TOK_TYPE_USER_DEFINED = 4, TOK_TYPE_UNUSED = 5, TOK_TYPE_BYTE = 6 };

enum tok_kind { TOK_KIND_SPM = 1, TOK_KIND_BPE = 2 };

/* flags of tokenizer_encode_ex */
enum {
    TOK_ADD_BOS = 1,       /* prepend BOS (error when the vocabulary has none) */
    TOK_SPACE_PREFIX = 2,  /* SPM only: apply the dummy "▁" prefix rule (add_space_prefix) to the text */
    TOK_PARSE_SPECIAL = 4, /* recognize CONTROL tokens written in the text (llama.cpp parse_special) */
};

struct tok_bpe; /* byte-level BPE state (tokenizer_bpe.c) */
struct tok_specials; /* added/special tokens recognized in text */

typedef struct tokenizer {
    int kind;            /* enum tok_kind */
    int n_vocab;
    char **pieces;       /* [n_vocab] UTF-8 piece text as stored ("▁the", "<0x0A>", "Ġthe", "<s>") */
    int *piece_lens;     /* [n_vocab] */
    float *scores;       /* [n_vocab] SPM merge priority (higher merges first); 0 for BPE */
    int *types;          /* [n_vocab] enum tok_type */
    int bos_id, eos_id, unk_id, pad_id; /* -1 when absent */
    int add_bos;         /* tokenizer.ggml.add_bos_token (default 1 for llama, 1 for the llama3 pre-tokenizer,
                          * else 0); tokenizer.json: post_processor template / tokenizer_config add_bos_token */
    int add_eos;         /* tokenizer.ggml.add_eos_token (default 0) */
    int add_space_prefix;/* tokenizer.ggml.add_space_prefix (default 1; SPM only) */
    int byte_ids[256];   /* id of each byte's token (<0xXX>, or the byte-level character), -1 when absent */
    int pre;             /* BPE: enum pretok_kind (pretok.h) */
    int normalize_nfc;   /* BPE: NFC-normalize text before pre-tokenizing */
    int ignore_merges;   /* BPE: a pre-token found whole in the vocabulary skips the merges */
    int n_merges;        /* BPE: merges in use */
    uint64_t fingerprint;/* FNV-1a over model kind, pieces, scores, types, special ids and encoding rules;
                          * BPE also: merges, pre-tokenizer, normalizer, ignore_merges */
    /* private: open-addressing hash from piece text to id */
    int *hash_ids;
    size_t hash_cap;
    struct tok_bpe *bpe;
    struct tok_specials *specials;
} tokenizer;

/* Builds the tokenizer from a GGUF file's metadata (tokenizer.ggml.model "llama" or "gpt2"; for
 * "gpt2", tokenizer.ggml.merges and tokenizer.ggml.pre: gpt-2/gpt2/phi-2, llama-bpe/llama3/llama-v3/
 * falcon3, qwen2/deepseek-r1-qwen, smollm). Returns 0, or -1 with an error naming the missing or
 * malformed key (e.g. unsupported tokenizer.ggml.model or tokenizer.ggml.pre). */
int tokenizer_init_gguf(tokenizer *t, const gguf_file *g);

/* Builds a byte-level BPE tokenizer from a Hugging Face tokenizer.json: dir_or_json is the file, or
 * a directory holding tokenizer.json. tokenizer_config.json next to it (optional) gives add_bos_token,
 * add_eos_token, bos_token and eos_token; without it the post_processor template decides BOS.
 * Understood: model BPE (vocab, merges as "a b" strings or ["a","b"] pairs, ignore_merges, unk_token),
 * normalizer null or NFC, pre_tokenizer ByteLevel (GPT-2 regex) or Sequence[Split(Llama 3 or Qwen2
 * regex), ByteLevel] or Sequence[Digits(individual), ByteLevel] (SmolLM), added_tokens (special ones
 * become CONTROL, the others USER_DEFINED; lstrip/rstrip honoured). Anything else is refused with an
 * error naming the file and the JSON field. Returns 0 or -1. */
int tokenizer_init_hf(tokenizer *t, const char *dir_or_json);

/* Builds the tokenizer of a model opened with slim_model_open (format/model_file.h) from path: the
 * GGUF's own vocabulary, or for a Hugging Face directory its tokenizer.json. Returns 0 or -1. */
int tokenizer_init_model(tokenizer *t, const gguf_file *g, const char *path);

/* Builds the tokenizer of a model path: a directory (its tokenizer.json) or a file ending in ".json" goes
 * to tokenizer_init_hf(), anything else is opened as GGUF and read by tokenizer_init_gguf(). Returns 0, or -1 with an
 * error naming the path (missing) or the file and key at fault. */
int tokenizer_init_path(tokenizer *t, const char *model);

/* Frees every table of the tokenizer (safe on a zeroed or failed one). */
void tokenizer_free(tokenizer *t);

/* Encodes len bytes of UTF-8 text into ids. flags: TOK_ADD_BOS | TOK_SPACE_PREFIX | TOK_PARSE_SPECIAL.
 * Writes at most cap ids to out (and, when offsets is not NULL, at most cap entries to offsets: the
 * byte offset in text where each token's text starts; BOS gets 0; a token inside a stretch that NFC
 * normalization changed gets the start of that stretch). Invalid UTF-8 bytes are encoded through byte
 * fallback (SPM) or as their byte tokens (BPE). Returns the total number of ids the text needs (which
 * may exceed cap: call again with a larger buffer), or -1 on error. Safe to call from several threads
 * on one tokenizer. */
int tokenizer_encode_ex(const tokenizer *t, const char *text, size_t len, int flags, int32_t *out, int cap,
                        int32_t *offsets);

/* tokenizer_encode_ex with flags (add_bos ? TOK_ADD_BOS : 0) | (space_prefix ? TOK_SPACE_PREFIX : 0):
 * space_prefix is 1 for the start of a text, 0 for a continuation such as a completion " spam",
 * which must not gain a second space (SPM; byte-level BPE never adds one). */
int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int add_bos, int space_prefix,
                     int32_t *out, int cap);

/* Appends the text of one token to buf (capacity cap, NUL-terminated): SPM "▁" -> " ", <0xXX> -> the
 * byte, byte-level characters -> their bytes (a token may hold part of a UTF-8 character), control
 * tokens -> "" . Returns the number of bytes the piece decodes to, or -1 for an id out of range. */
int tokenizer_decode_token(const tokenizer *t, int32_t id, char *buf, size_t cap);

/* As tokenizer_decode_token, but with special != 0 control tokens give their text ("<|im_start|>"),
 * as llama.cpp's token_to_piece(special = true) prints them. */
int tokenizer_decode_token_ex(const tokenizer *t, int32_t id, int special, char *buf, size_t cap);

/* Looks up a piece's id by exact text (as stored: "Ġthe" for byte-level BPE); -1 when absent. */
int tokenizer_find_piece(const tokenizer *t, const char *piece, size_t len);

#endif
