/* reader.h — row readers for the raw training data: CSV (libcsv, strict RFC 4180 quoting) and JSONL
 * (cJSON, one object per line). Each row gives its 1-based source line (the line where the record
 * starts; CSV lines end at LF, CRLF or a bare CR, JSONL lines at LF), its text field and its label
 * field, chosen by column name (config data.columns).
 *
 * Bad rows are not dropped silently: they are returned too, with reason != READ_OK and a message,
 * so the caller can count them by reason and report file:line. The whole file is parsed at open. */
#ifndef SLIM_READER_H
#define SLIM_READER_H

#include <stddef.h>
#include <stdint.h>

/* Why a row is bad (READ_OK for a good row). */
enum reader_reason {
    READ_OK = 0,
    READ_BAD_QUOTE,     /* CSV: stray or unbalanced quote */
    READ_FIELD_COUNT,   /* CSV: field count differs from the header */
    READ_BAD_JSON,      /* JSONL: not valid JSON (truncated line, trailing text, ...) */
    READ_JSON_TYPE,     /* JSONL: not an object, or a field is not a string */
    READ_MISSING_KEY,   /* JSONL: the text or label key is absent */
    READ_NUL_BYTE,      /* a NUL byte in the text or label; JSONL: also a \u0000 escape anywhere in the line */
    READ_BAD_UTF8,      /* invalid UTF-8 in the text or label */
    READ_EMPTY_TEXT,    /* the text is empty or only whitespace */
    READ_EMPTY_LABEL,   /* the label is empty or only whitespace */
    READ_UNKNOWN_LABEL, /* the label is not in the allowed label set */
    READ_TOO_LONG,      /* the completion cannot fit max_seq_len (set by data prepare, not the reader) */
    READ_N_REASONS
};

/* Short text for a reason ("wrong field count", ...). */
const char *reader_reason_name(int reason);

typedef struct reader_row {
    int64_t line;      /* 1-based line where the record starts */
    char *text;        /* NUL-terminated field copy (NULL for some bad rows); text_len bytes */
    size_t text_len;
    char *label;       /* label with surrounding ASCII whitespace trimmed (NULL for some bad rows) */
    size_t label_len;
    int reason;        /* enum reader_reason */
    char message[200]; /* for bad rows: what is wrong, e.g. "expected 2 fields (as the header), got 3" */
} reader_row;

typedef struct data_reader {
    char *path;
    int is_jsonl;
    int64_t n_rows;    /* rows returned by reader_next in all (good + bad; blank lines and the CSV header excluded) */
    int64_t n_bad;     /* rows with reason != READ_OK */
    reader_row *rows;
    int64_t pos;       /* next row to return */
} data_reader;

/* Opens and parses a data file. format: "csv", "jsonl" or "auto" (by extension: .csv, .jsonl/.ndjson/.json).
 * text_column/label_column name the fields (CSV header names or JSON keys). labels (n_labels, may be
 * NULL/0 = any label) is the allowed label set; other labels give READ_UNKNOWN_LABEL rows.
 * Returns 0, or -1 with an error naming the file for problems with the file as a whole (cannot open,
 * unknown format, empty, no header, header lacks a column). */
int reader_open(data_reader *r, const char *path, const char *format, const char *text_column,
                const char *label_column, const char *const *labels, int n_labels);

/* Points *row at the next row (good or bad; owned by the reader). Returns 1, or 0 at the end. */
int reader_next(data_reader *r, const reader_row **row);

void reader_free(data_reader *r);

/* Returns -1 when s[0..n) is valid UTF-8 (no overlongs, surrogates or code points above U+10FFFF),
 * else the byte offset of the first invalid sequence. */
int64_t reader_utf8_check(const char *s, size_t n);

#endif
