/* example.h — one raw training example as the readers give it (reader.h), before rendering.
 *
 * Every input row becomes a data_example, whatever the file format (CSV, TSV, JSONL) and whatever its
 * shape (what the fields mean):
 *
 *   shape              fields (config data.columns names)         rendered as (prepare.h)
 *   text_label         text, label                                 template prompt + " {label}" + EOS
 *   prompt_completion  prompt, completion                          prompt + completion + EOS
 *   alpaca             instruction, input (optional), output       Alpaca prompt + output + EOS
 *   chat               messages: [{role, content}, ...]            the model's chat template (lib/tokenizer/chat.h)
 *   text               text                                        BOS + text + EOS, loss on every token
 *
 * To keep one code path, the fields go into generic slots: `text` is the main input (text, prompt or
 * instruction), `label` the target (label, completion or output; NULL for text and chat), `input` the
 * Alpaca input ("" when absent), `turns` the chat messages.
 *
 * Bad rows are kept too, with reason != READ_OK and a message, so that callers can count them by
 * reason and report file:line. */
#ifndef SLIM_EXAMPLE_H
#define SLIM_EXAMPLE_H

#include <stddef.h>
#include <stdint.h>

/* What the fields of a row mean (data.shape). */
enum example_shape {
    SHAPE_AUTO = 0,          /* not decided yet: the reader detects it from the header / keys */
    SHAPE_TEXT_LABEL,
    SHAPE_PROMPT_COMPLETION,
    SHAPE_ALPACA,
    SHAPE_CHAT,
    SHAPE_TEXT,
    SHAPE_N
};

/* Why a row is bad (READ_OK for a good row). */
enum reader_reason {
    READ_OK = 0,
    READ_BAD_QUOTE,     /* CSV: stray or unbalanced quote */
    READ_FIELD_COUNT,   /* CSV/TSV: field count differs from the header */
    READ_BAD_JSON,      /* JSONL: not valid JSON (truncated line, trailing text, ...); chat: messages not JSON */
    READ_JSON_TYPE,     /* JSONL: not an object, or a field is not a string (messages: not an array of objects) */
    READ_MISSING_KEY,   /* JSONL: a required key is absent */
    READ_NUL_BYTE,      /* a NUL byte in a field; JSONL: also a \u0000 escape anywhere in the line */
    READ_BAD_UTF8,      /* invalid UTF-8 in a field (data.invalid_utf8 = reject) */
    READ_EMPTY_TEXT,    /* the text / prompt / instruction is empty or only whitespace */
    READ_EMPTY_LABEL,   /* the label / completion / output is empty or only whitespace */
    READ_UNKNOWN_LABEL, /* the label is not in the allowed label set */
    READ_TOO_LONG,      /* the completion cannot fit max_seq_len (set by rendering, not the reader) */
    READ_BAD_ROLE,      /* chat: a role other than system/user/assistant, or a system turn after the first */
    READ_NO_ASSISTANT,  /* chat: no assistant turn (nothing to learn) */
    READ_EMPTY_TURN,    /* chat: a turn whose content is empty or only whitespace */
    READ_N_REASONS
};

/* Chat roles. */
enum example_role { ROLE_SYSTEM = 0, ROLE_USER, ROLE_ASSISTANT, ROLE_N };

typedef struct example_turn {
    int role;              /* enum example_role */
    char *content;         /* NUL-terminated copy, content_len bytes */
    size_t content_len;
} example_turn;

typedef struct data_example {
    int64_t line;          /* 1-based line where the record starts */
    char *text;            /* main input (see above); NUL-terminated copy of text_len bytes; NULL for bad rows */
    size_t text_len;
    char *label;           /* target; for text_label trimmed of surrounding ASCII whitespace; NULL when none */
    size_t label_len;
    char *input;           /* alpaca input ("" when absent); NULL for other shapes */
    size_t input_len;
    example_turn *turns;   /* chat: n_turns messages; NULL otherwise */
    int n_turns;
    int reason;            /* enum reader_reason */
    int utf8_replaced;     /* data.invalid_utf8 = replace: invalid bytes were replaced by U+FFFD (message says where) */
    char message[200];     /* bad rows: what is wrong, e.g. "expected 2 fields (as the header), got 3";
                              good rows with utf8_replaced: where the first invalid byte was */
} data_example;

/* "text_label", "prompt_completion", ... ("auto" for SHAPE_AUTO). */
const char *example_shape_name(int shape);
/* The shape named s, or -1 when s is not a shape name ("auto" gives SHAPE_AUTO). */
int example_shape_parse(const char *s);
/* "system", "user", "assistant". */
const char *example_role_name(int role);

#endif
