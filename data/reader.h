/* reader.h — row readers for the raw training data: CSV (libcsv, strict RFC 4180 quoting), TSV and
 * JSONL (cJSON, one object per line), each row turned into a data_example (example.h).
 *
 * Formats (data.format, or --format):
 *   csv    header row; fields separated by commas; RFC 4180 quoting (a quoted field may hold commas,
 *          doubled quotes and line breaks); a UTF-8 BOM is skipped; lines end at LF, CRLF or a bare CR.
 *   tsv    header row; fields separated by TABs, no quoting (quotes are ordinary characters), one record
 *          per line (IANA text/tab-separated-values: a field cannot hold a TAB or a line break).
 *   jsonl  one JSON object per line (blank lines skipped); a \u0000 escape is a bad row, because cJSON
 *          would silently cut the string at it.
 *   auto   by extension (.csv, .tsv/.tab, .jsonl/.ndjson/.json); otherwise by content: a first
 *          non-blank byte "{" is JSONL, a first line with a TAB is TSV, one with a comma is CSV.
 *
 * Shapes (data.shape; example.h): auto picks, from the CSV/TSV header or the keys of the first JSONL
 * line that is an object: chat when it has the messages column, alpaca when instruction and output,
 * prompt_completion when prompt and completion, text_label when text and label, text when only text.
 * Column names come from data.columns. In CSV/TSV a chat row's messages column holds the JSON array.
 *
 * Each row gives its 1-based source line (where the record starts). Bad rows are returned too, with
 * reason != READ_OK and a message. Checks, in order: NUL bytes, invalid UTF-8 (rejected, or replaced
 * by U+FFFD with data.invalid_utf8 = replace), empty or whitespace-only text/label (an Alpaca input may
 * be empty), labels outside the declared set (text_label), chat structure (roles, empty turns, an
 * assistant turn). The whole file is parsed at open; the file's SHA-256 is computed as it is read. */
#ifndef SLIM_READER_H
#define SLIM_READER_H

#include <stddef.h>
#include <stdint.h>

#include "example.h"

/* Short text for a reason ("wrong field count", ...). */
const char *reader_reason_name(int reason);

/* The old name of a row; the same struct. */
typedef data_example reader_row;

enum reader_format { FORMAT_CSV = 1, FORMAT_TSV, FORMAT_JSONL };

/* Column (CSV/TSV header) or key (JSONL) names, data.columns. */
enum reader_column { COL_TEXT = 0, COL_LABEL, COL_PROMPT, COL_COMPLETION, COL_INSTRUCTION, COL_INPUT,
                     COL_OUTPUT, COL_MESSAGES, COL_N };

/* "text", "label", ... : the config key of each column (data.columns.<name>) and its default name. */
const char *reader_column_key(int col);

typedef struct reader_opts {
    const char *format;              /* "auto" | "csv" | "tsv" | "jsonl" (NULL = auto) */
    int shape;                       /* enum example_shape; SHAPE_AUTO detects */
    const char *columns[COL_N];      /* names; NULL = the default (reader_column_key) */
    const char *const *labels;       /* allowed label set (text_label), NULL = any */
    int n_labels;
    int replace_bad_utf8;            /* 1: replace invalid UTF-8 by U+FFFD and keep the row; 0: bad row */
    int target_optional;             /* 1: the target column (label, completion, output) may be absent (new
                                        rows to predict); a row without it has label NULL; a chat row needs
                                        no assistant turn */
} reader_opts;

typedef struct data_reader {
    char *path;
    int format;        /* enum reader_format */
    int shape;         /* enum example_shape, as detected (never SHAPE_AUTO after a successful open) */
    int is_jsonl;
    int64_t n_rows;    /* rows returned by reader_next in all (good + bad; blank lines and the header excluded) */
    int64_t n_bad;     /* rows with reason != READ_OK */
    int64_t n_replaced;/* good rows whose invalid UTF-8 was replaced */
    reader_row *rows;
    int64_t pos;       /* next row to return */
    uint64_t size;     /* bytes in the file */
    char sha256[65];   /* hex SHA-256 of the file's bytes */
} data_reader;

/* Opens and parses a data file (see above). Returns 0, or -1 with an error naming the file for
 * problems with the file as a whole (cannot open, unknown format or shape, empty, no header, header
 * lacks a column, chat in a shape that cannot hold it). */
int reader_open_ex(data_reader *r, const char *path, const reader_opts *o);

/* reader_open_ex for the text_label shape with the given text and label column names (compatibility
 * with the first reader). format: "csv", "tsv", "jsonl" or "auto". labels may be NULL/0 (any label). */
int reader_open(data_reader *r, const char *path, const char *format, const char *text_column,
                const char *label_column, const char *const *labels, int n_labels);

/* Points *row at the next row (good or bad; owned by the reader). Returns 1, or 0 at the end. */
int reader_next(data_reader *r, const reader_row **row);

/* Closes the file and frees the reader. */
void reader_free(data_reader *r);

/* Returns -1 when s[0..n) is valid UTF-8 (no overlongs, surrogates or code points above U+10FFFF),
 * else the byte offset of the first invalid sequence. */
int64_t reader_utf8_check(const char *s, size_t n);

/* A copy of s[0..n) with every byte that does not start a valid UTF-8 sequence replaced by U+FFFD; its
 * length in *out_n. */
char *reader_utf8_replace(const char *s, size_t n, size_t *out_n);

/* Normalized text for duplicate detection and split keys: Unicode NFC, full case folding (utf8proc),
 * every run of whitespace (ASCII whitespace, U+00A0 and the other Unicode space separators) collapsed
 * to one ASCII space, leading and trailing whitespace removed. s must be valid UTF-8 (readers
 * guarantee it for good rows); invalid input is folded ASCII-only. Returns a fresh string, length in *out_n. */
char *reader_normalize(const char *s, size_t n, size_t *out_n);

/* The normalized input key of a good example: what the model reads, the same for two rows that differ
 * only in case, Unicode composition or spacing. text_label / text: the text; prompt_completion: the
 * prompt; alpaca: instruction + "\n" + input; chat: every turn as "role: content", joined by "\n".
 * Returns a fresh string (length in *out_n). */
char *reader_example_key(const data_example *e, int shape, size_t *out_n);

/* The target of a good example as one string (label, completion, output; chat: the assistant turns
 * joined by "\n"; text: ""), not normalized. Returns a fresh string. */
char *reader_example_target(const data_example *e, int shape);

/* Hex SHA-256 (64 digits + NUL into hex) of n bytes (nettle). */
void reader_sha256_hex(const void *data, size_t n, char hex[65]);

#endif
