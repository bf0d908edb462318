/* pretok.h — pre-tokenizers of byte-level BPE tokenizers: the regex splits of each model family,
 * written out by hand (no regex engine), and the Unicode classes they need (from libutf8proc).
 *
 * A text is first decoded into code points with a class byte each (pretok_decode); a splitter then
 * cuts the code points into pre-tokens, which the BPE model encodes one by one. The splits follow
 * the regular expressions of the tokenizer.json files / llama.cpp (llama-vocab.cpp, unicode.cpp),
 * with Oniguruma semantics as Hugging Face tokenizers applies them: \s is Unicode White_Space,
 * \p{L} the letter categories (Lu Ll Lt Lm Lo), \p{N} the number categories (Nd Nl No), and the
 * (?i:...) of the contractions folds ASCII case only. Alternatives are tried in order, the first
 * that matches wins (leftmost-first, backtracking semantics):
 *
 *   PRETOK_GPT2   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *   PRETOK_LLAMA3 (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *                  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *   PRETOK_QWEN2  as PRETOK_LLAMA3 with \p{N} (one digit a pre-token) instead of \p{N}{1,3}
 *   PRETOK_SMOLLM every \p{N} character alone (Digits, individual_digits), then PRETOK_GPT2 on the
 *                 text between them (llama.cpp "smollm", SmolLM's Sequence[Digits, ByteLevel])
 *
 * Invalid UTF-8 bytes are decoded as one-byte characters of no class (punctuation-like), so every
 * byte of the text lands in exactly one pre-token. */
#ifndef SLIM_PRETOK_H
#define SLIM_PRETOK_H

#include <stddef.h>
#include <stdint.h>

enum pretok_kind { PRETOK_GPT2 = 1, PRETOK_LLAMA3 = 2, PRETOK_QWEN2 = 3, PRETOK_SMOLLM = 4 };

/* class bits of a code point */
enum { PRETOK_L = 1, PRETOK_N = 2, PRETOK_S = 4 /* White_Space */, PRETOK_NL = 8 /* \r or \n */ };

/* The name of a kind ("gpt2", "llama3", "qwen2", "smollm"), or "?" */
const char *pretok_name(int kind);

/* Class bits (PRETOK_L | ...) of code point c (Unicode version of libutf8proc). */
int pretok_class(uint32_t c);

/* Decodes s[0..n) into code points: cp[k], cls[k] (class bits) and off[k] (byte offset of the
 * character in s); off[count] = n. The arrays must hold n + 1 entries. Invalid or truncated UTF-8
 * sequences give one-byte characters (cp = the byte | 0x80000000, no class). Returns the count. */
int pretok_decode(const char *s, size_t n, uint32_t *cp, uint8_t *cls, uint32_t *off);

/* Splits n decoded characters into pre-tokens: writes the start index of each pre-token to starts
 * (room for n entries) and returns their count; the last one ends at n. */
int pretok_split(int kind, const uint32_t *cp, const uint8_t *cls, int n, int32_t *starts);

/* NFC (canonical composition, Unicode Standard Annex #15) of s[0..n), through libutf8proc. Writes
 * a fresh buffer to *out (*out_n bytes, NUL-terminated) and, when map is not NULL, a fresh array
 * *map of *out_n + 1 entries giving for each output byte the offset in s of the text it came from
 * (exact outside the runs that normalization changed; a changed run maps to its start).
 * Returns 1 when the text changed, 0 when it was already NFC (*out = NULL then, nothing allocated),
 * -1 on failure. Invalid UTF-8 is left as it is. */
int pretok_nfc(const char *s, size_t n, char **out, size_t *out_n, uint32_t **map);

#endif
