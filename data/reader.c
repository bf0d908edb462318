/* reader.c — CSV (libcsv, strict mode), TSV and JSONL (cJSON) row readers. See reader.h.
 *
 * CSV: the file is fed to libcsv one physical line at a time so that each record gets the line it
 * starts on. A line ends at LF, CRLF or a bare CR (libcsv ends records at CR too, so a file with
 * old-Mac CR line endings is numbered line by line like any other). A quoting error (strict mode: a
 * quote inside an unquoted field, text after a closing quote, or a quoted field still open at the
 * end of the file) makes the record that was in progress one bad row:
 *   - an error detected while feeding line L ends that record at L (the record spans its start line
 *     to L, e.g. a quoted field opened on line 2 and closed on line 4 followed by junk): it is one bad
 *     row at its start line and parsing resumes at L + 1, so no row is made out of the text inside the
 *     broken quoted field;
 *   - a quoted field still open at the end of the file is one bad row at its start line and parsing
 *     restarts on the line after that start line, so an unbalanced quote costs one row rather than
 *     swallowing the rest of the file.
 *
 * TSV: the same line splitting, no quoting; a record is one line, its fields separated by TABs.
 *
 * JSONL: cJSON strings are NUL-terminated, so a \u0000 escape would silently cut a value (or a key)
 * at the NUL; a line with one is a bad row (READ_NUL_BYTE), as a raw NUL byte is. */
#define _GNU_SOURCE
#include "reader.h"

#include <cJSON.h>
#include <csv.h>
#include <nettle/sha2.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <utf8proc.h>

#include "common.h"
#include "config.h"

const char *reader_reason_name(int reason) {
    static const char *names[READ_N_REASONS] = {
        "ok",           "bad quoting",     "wrong field count", "invalid JSON", "wrong JSON type",
        "missing key",  "NUL byte",        "invalid UTF-8",     "empty text",   "empty label",
        "unknown label", "completion too long", "bad chat role", "no assistant turn", "empty chat turn"};
    return reason >= 0 && reason < READ_N_REASONS ? names[reason] : "?";
}

static const char *reader_shape_names[SHAPE_N] = {"auto", "text_label", "prompt_completion", "alpaca", "chat",
                                                  "text"};

const char *example_shape_name(int shape) {
    return shape >= 0 && shape < SHAPE_N ? reader_shape_names[shape] : "?";
}

int example_shape_parse(const char *s) {
    for (int i = 0; s && i < SHAPE_N; i++)
        if (strcmp(s, reader_shape_names[i]) == 0) return i;
    return -1;
}

const char *example_role_name(int role) {
    static const char *names[ROLE_N] = {"system", "user", "assistant"};
    return role >= 0 && role < ROLE_N ? names[role] : "?";
}

const char *reader_column_key(int col) {
    static const char *names[COL_N] = {"text", "label", "prompt", "completion", "instruction", "input", "output",
                                       "messages"};
    return col >= 0 && col < COL_N ? names[col] : "?";
}

/* Length of the valid UTF-8 sequence at s[0..n) (1..4), or 0 when it is invalid. */
static size_t reader_utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
    else return 0;
    if (len > n) return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

int64_t reader_utf8_check(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) { i++; continue; }
        size_t len = reader_utf8_seq(s + i, n - i);
        if (!len) return (int64_t)i;
        i += len;
    }
    return -1;
}

char *reader_utf8_replace(const char *str, size_t n, size_t *out_n) {
    const unsigned char *s = (const unsigned char *)str;
    char *d = slim_malloc(3 * n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t len = reader_utf8_seq(s + i, n - i);
        if (len) { memcpy(d + o, s + i, len); o += len; i += len; }
        else { memcpy(d + o, "\xEF\xBF\xBD", 3); o += 3; i++; }
    }
    d[o] = 0;
    *out_n = o;
    return d;
}

void reader_sha256_hex(const void *data, size_t n, char hex[65]) {
    struct sha256_ctx ctx;
    uint8_t dig[SHA256_DIGEST_SIZE];
    sha256_init(&ctx);
    const uint8_t *p = data;
    /* nettle takes size_t lengths; feed in 1 GiB pieces anyway */
    while (n > 0) {
        size_t k = n > (1u << 30) ? (1u << 30) : n;
        sha256_update(&ctx, k, p);
        p += k;
        n -= k;
    }
    sha256_digest(&ctx, SHA256_DIGEST_SIZE, dig);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) snprintf(hex + 2 * i, 3, "%02x", dig[i]);
    hex[64] = 0;
}

/* ---- normalization (duplicates, split keys) ---- */

static int reader_is_uspace(int32_t cp) {
    return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000;
}

char *reader_normalize(const char *s, size_t n, size_t *out_n) {
    int ascii = 1;
    for (size_t i = 0; i < n && ascii; i++) ascii = (unsigned char)s[i] < 0x80;
    const unsigned char *src = (const unsigned char *)s;
    size_t len = n;
    utf8proc_uint8_t *mapped = NULL;
    if (!ascii) {
        utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &mapped,
                                          UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD);
        if (m >= 0) { src = mapped; len = (size_t)m; }
        else { mapped = NULL; ascii = 1; } /* invalid UTF-8: fold ASCII only */
    }
    char *out = slim_malloc(len + 1);
    size_t o = 0;
    int pending = 0;
    for (size_t i = 0; i < len;) {
        int32_t cp;
        size_t k = 1;
        if (ascii || src[i] < 0x80) {
            cp = src[i];
        } else {
            utf8proc_ssize_t got = utf8proc_iterate(src + i, (utf8proc_ssize_t)(len - i), &cp);
            if (got <= 0) { cp = src[i]; got = 1; }
            k = (size_t)got;
        }
        if (reader_is_uspace(cp)) {
            pending = 1;
        } else {
            if (pending && o > 0) out[o++] = ' ';
            pending = 0;
            if (k == 1) out[o++] = (char)(src[i] >= 'A' && src[i] <= 'Z' ? src[i] + 32 : src[i]);
            else { memcpy(out + o, src + i, k); o += k; }
        }
        i += k;
    }
    out[o] = 0;
    free(mapped);
    *out_n = o;
    return out;
}

/* Appends s[0..n) to the growing buffer *b (length *bn, capacity *bc). */
static void reader_append(char **b, size_t *bn, size_t *bc, const char *s, size_t n) {
    if (*bn + n + 1 > *bc) {
        *bc = 2 * (*bn + n + 1);
        *b = slim_realloc(*b, *bc);
    }
    memcpy(*b + *bn, s, n);
    *bn += n;
    (*b)[*bn] = 0;
}

char *reader_example_key(const data_example *e, int shape, size_t *out_n) {
    char *b = NULL;
    size_t bn = 0, bc = 0;
    reader_append(&b, &bn, &bc, "", 0);
    if (shape == SHAPE_CHAT) {
        for (int i = 0; i < e->n_turns; i++) {
            const char *r = example_role_name(e->turns[i].role);
            if (i) reader_append(&b, &bn, &bc, "\n", 1);
            reader_append(&b, &bn, &bc, r, strlen(r));
            reader_append(&b, &bn, &bc, ": ", 2);
            reader_append(&b, &bn, &bc, e->turns[i].content, e->turns[i].content_len);
        }
    } else {
        if (e->text) reader_append(&b, &bn, &bc, e->text, e->text_len);
        if (shape == SHAPE_ALPACA && e->input && e->input_len) {
            reader_append(&b, &bn, &bc, "\n", 1);
            reader_append(&b, &bn, &bc, e->input, e->input_len);
        }
    }
    char *k = reader_normalize(b, bn, out_n);
    free(b);
    return k;
}

char *reader_example_target(const data_example *e, int shape) {
    if (shape == SHAPE_CHAT) {
        char *b = NULL;
        size_t bn = 0, bc = 0;
        reader_append(&b, &bn, &bc, "", 0);
        int first = 1;
        for (int i = 0; i < e->n_turns; i++) {
            if (e->turns[i].role != ROLE_ASSISTANT) continue;
            if (!first) reader_append(&b, &bn, &bc, "\n", 1);
            reader_append(&b, &bn, &bc, e->turns[i].content, e->turns[i].content_len);
            first = 0;
        }
        return b;
    }
    return slim_strdup(e->label ? e->label : "");
}

/* ---- shared row building ---- */

typedef struct reader_ctx {
    data_reader *r;
    const reader_opts *o;
    const char *col[COL_N];  /* resolved column names */
    int shape;               /* decided shape (SHAPE_AUTO until the header / first object decides) */
    int64_t cap_rows;
    struct reader_detect *detect; /* JSONL shape detection state */
} reader_ctx;

/* The columns a shape needs (terminated by -1) and may use. */
static const int *reader_required(int shape) {
    static const int tl[] = {COL_TEXT, COL_LABEL, -1}, pc[] = {COL_PROMPT, COL_COMPLETION, -1},
                     al[] = {COL_INSTRUCTION, COL_OUTPUT, -1}, ch[] = {COL_MESSAGES, -1}, tx[] = {COL_TEXT, -1};
    switch (shape) {
    case SHAPE_PROMPT_COMPLETION: return pc;
    case SHAPE_ALPACA: return al;
    case SHAPE_CHAT: return ch;
    case SHAPE_TEXT: return tx;
    default: return tl;
    }
}

/* Whether col is the target of shape (label, completion, output). */
static int reader_is_target(int shape, int col) {
    return (shape == SHAPE_TEXT_LABEL && col == COL_LABEL) ||
           (shape == SHAPE_PROMPT_COMPLETION && col == COL_COMPLETION) || (shape == SHAPE_ALPACA && col == COL_OUTPUT);
}

static int reader_uses(int shape, int col) {
    if (shape == SHAPE_ALPACA && col == COL_INPUT) return 1;
    for (const int *c = reader_required(shape); *c >= 0; c++)
        if (*c == col) return 1;
    return 0;
}

/* The shape that the available columns suggest (have[col] != 0); text_label when nothing fits, so
 * that the missing-column error names the text and label columns. */
static int reader_shape_from(const int have[COL_N], int labels_declared, int target_optional) {
    if (have[COL_MESSAGES]) return SHAPE_CHAT;
    if (have[COL_INSTRUCTION] && (have[COL_OUTPUT] || target_optional)) return SHAPE_ALPACA;
    if (have[COL_PROMPT] && (have[COL_COMPLETION] || target_optional)) return SHAPE_PROMPT_COMPLETION;
    if (have[COL_TEXT] && (have[COL_LABEL] || labels_declared)) return SHAPE_TEXT_LABEL;
    if (have[COL_TEXT]) return SHAPE_TEXT;
    return SHAPE_TEXT_LABEL;
}

static reader_row *reader_add_row(reader_ctx *x, int64_t line) {
    data_reader *r = x->r;
    if (r->n_rows == x->cap_rows) {
        x->cap_rows = x->cap_rows ? 2 * x->cap_rows : 256;
        r->rows = slim_realloc(r->rows, (size_t)x->cap_rows * sizeof(reader_row));
    }
    reader_row *row = &r->rows[r->n_rows++];
    memset(row, 0, sizeof *row);
    row->line = line;
    return row;
}

static void reader_free_row(reader_row *row) {
    free(row->text);
    free(row->label);
    free(row->input);
    for (int i = 0; i < row->n_turns; i++) free(row->turns[i].content);
    free(row->turns);
    row->text = row->label = row->input = NULL;
    row->turns = NULL;
    row->n_turns = 0;
}

static void reader_bad(reader_ctx *x, reader_row *row, int reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void reader_bad(reader_ctx *x, reader_row *row, int reason, const char *fmt, ...) {
    reader_free_row(row);
    row->reason = reason;
    row->utf8_replaced = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(row->message, sizeof row->message, fmt, ap);
    va_end(ap);
    x->r->n_bad++;
}

static char *reader_copy(const char *s, size_t n) {
    char *d = slim_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static int reader_is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

static int reader_blank(const char *s, size_t n) {
    size_t k = 0;
    while (k < n && reader_is_space((unsigned char)s[k])) k++;
    return k == n;
}

/* Checks a field's bytes and returns a fresh copy (invalid UTF-8 replaced under the replace policy),
 * or NULL after marking the row bad. */
static char *reader_take_field(reader_ctx *x, reader_row *row, const char *what, const char *s, size_t *n) {
    const char *nul = memchr(s, 0, *n);
    if (nul) {
        reader_bad(x, row, READ_NUL_BYTE, "NUL byte in the %s at byte %zu", what, (size_t)(nul - s));
        return NULL;
    }
    int64_t bad = reader_utf8_check(s, *n);
    if (bad < 0) return reader_copy(s, *n);
    if (!x->o->replace_bad_utf8) {
        reader_bad(x, row, READ_BAD_UTF8, "invalid UTF-8 in the %s at byte %lld (0x%02x)", what, (long long)bad,
                   (unsigned char)s[bad]);
        return NULL;
    }
    if (!row->utf8_replaced)
        snprintf(row->message, sizeof row->message, "invalid UTF-8 in the %s at byte %lld (0x%02x), replaced by U+FFFD",
                 what, (long long)bad, (unsigned char)s[bad]);
    row->utf8_replaced = 1;
    return reader_utf8_replace(s, *n, n);
}

/* The field values of one flat record (CSV/TSV columns or JSON strings). */
typedef struct reader_fields {
    const char *s[COL_N];
    size_t n[COL_N];
    int present[COL_N];
} reader_fields;

static void reader_fill_chat(reader_ctx *x, reader_row *row, const cJSON *msgs);

/* Fills a row of a flat shape from its fields and runs the checks common to every format. */
static void reader_fill_row(reader_ctx *x, reader_row *row, const reader_fields *f) {
    int shape = x->shape;
    int main_col = shape == SHAPE_PROMPT_COMPLETION ? COL_PROMPT : shape == SHAPE_ALPACA ? COL_INSTRUCTION : COL_TEXT;
    int tgt_col = shape == SHAPE_PROMPT_COMPLETION ? COL_COMPLETION : shape == SHAPE_ALPACA ? COL_OUTPUT
                  : shape == SHAPE_TEXT_LABEL      ? COL_LABEL
                                                   : -1;
    size_t tn = f->n[main_col];
    char *text = reader_take_field(x, row, reader_column_key(main_col), f->s[main_col], &tn);
    if (!text) return;
    row->text = text;
    row->text_len = tn;
    if (tgt_col >= 0 && x->o->target_optional && (!f->present[tgt_col] || reader_blank(f->s[tgt_col], f->n[tgt_col])))
        tgt_col = -1; /* a row to predict: no target, or an empty one */
    if (tgt_col >= 0) {
        size_t ln = f->n[tgt_col];
        char *label = reader_take_field(x, row, reader_column_key(tgt_col), f->s[tgt_col], &ln);
        if (!label) return;
        if (shape == SHAPE_TEXT_LABEL) { /* labels are trimmed */
            size_t a = 0;
            while (a < ln && reader_is_space((unsigned char)label[a])) a++;
            while (ln > a && reader_is_space((unsigned char)label[ln - 1])) ln--;
            memmove(label, label + a, ln - a);
            ln -= a;
            label[ln] = 0;
        }
        row->label = label;
        row->label_len = ln;
    }
    if (shape == SHAPE_ALPACA) {
        size_t in = f->present[COL_INPUT] ? f->n[COL_INPUT] : 0;
        char *input = reader_take_field(x, row, "input", f->present[COL_INPUT] ? f->s[COL_INPUT] : "", &in);
        if (!input) return;
        row->input = input;
        row->input_len = in;
    }
    if (reader_blank(row->text, row->text_len)) {
        reader_bad(x, row, READ_EMPTY_TEXT, "the %s field \"%s\" is empty", reader_column_key(main_col),
                   x->col[main_col]);
        return;
    }
    if (tgt_col >= 0 && reader_blank(row->label, row->label_len)) {
        reader_bad(x, row, READ_EMPTY_LABEL, "the %s field \"%s\" is empty", reader_column_key(tgt_col),
                   x->col[tgt_col]);
        return;
    }
    if (shape == SHAPE_TEXT_LABEL && x->o->labels) {
        int found = 0;
        for (int i = 0; i < x->o->n_labels && !found; i++)
            found = strlen(x->o->labels[i]) == row->label_len && memcmp(x->o->labels[i], row->label, row->label_len) == 0;
        if (!found) {
            size_t ln = row->label_len;
            char shown[64];
            snprintf(shown, sizeof shown, "%.*s", (int)(ln > 60 ? 60 : ln), row->label);
            reader_bad(x, row, READ_UNKNOWN_LABEL, "label \"%s\" is not in the label set", shown);
            return;
        }
    }
}

/* Fills a chat row from its messages array: [{"role": ..., "content": ...}, ...]. */
static void reader_fill_chat(reader_ctx *x, reader_row *row, const cJSON *msgs) {
    const char *mc = x->col[COL_MESSAGES];
    if (!cJSON_IsArray(msgs)) {
        reader_bad(x, row, READ_JSON_TYPE, "\"%s\" is %s, expected an array of {role, content} objects", mc,
                   slim_json_type_name(msgs));
        return;
    }
    int n = cJSON_GetArraySize(msgs);
    row->turns = slim_calloc((size_t)(n ? n : 1), sizeof(example_turn));
    int k = 0, n_assistant = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        if (!cJSON_IsObject(m)) {
            reader_bad(x, row, READ_JSON_TYPE, "%s[%d] is %s, expected an object", mc, k, slim_json_type_name(m));
            return;
        }
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!role || !content) {
            reader_bad(x, row, READ_MISSING_KEY, "%s[%d] has no \"%s\"", mc, k, role ? "content" : "role");
            return;
        }
        if (!cJSON_IsString(role) || !cJSON_IsString(content)) {
            const cJSON *w = cJSON_IsString(role) ? content : role;
            reader_bad(x, row, READ_JSON_TYPE, "%s[%d].%s is %s, expected a string", mc, k,
                       w == role ? "role" : "content", slim_json_type_name(w));
            return;
        }
        int r = -1;
        for (int i = 0; i < ROLE_N; i++)
            if (strcmp(role->valuestring, example_role_name(i)) == 0) r = i;
        if (r < 0) {
            reader_bad(x, row, READ_BAD_ROLE, "%s[%d]: unknown role \"%.40s\" (expected system, user or assistant)",
                       mc, k, role->valuestring);
            return;
        }
        if (r == ROLE_SYSTEM && k > 0) {
            reader_bad(x, row, READ_BAD_ROLE, "%s[%d]: a system turn after the first turn", mc, k);
            return;
        }
        char what[48];
        snprintf(what, sizeof what, "%s[%d] content", mc, k);
        size_t cn = strlen(content->valuestring);
        char *c = reader_take_field(x, row, what, content->valuestring, &cn);
        if (!c) return;
        row->turns[k].role = r;
        row->turns[k].content = c;
        row->turns[k].content_len = cn;
        row->n_turns = ++k;
        if (reader_blank(c, cn)) {
            reader_bad(x, row, READ_EMPTY_TURN, "%s[%d] (%s): the content is empty", mc, k - 1, example_role_name(r));
            return;
        }
        n_assistant += r == ROLE_ASSISTANT;
    }
    if (n_assistant == 0 && (k == 0 || !x->o->target_optional)) { /* a row to predict needs no answer */
        if (k == 0) reader_bad(x, row, READ_NO_ASSISTANT, "\"%s\" is empty: no assistant turn", mc);
        else reader_bad(x, row, READ_NO_ASSISTANT, "no assistant turn among the %d messages", k);
    }
}

/* ---- CSV and TSV ---- */

typedef struct csv_field { char *s; size_t n; } csv_field;

typedef struct csv_ctx {
    reader_ctx *x;
    csv_field *fields;
    int n_fields, cap_fields;
    int64_t rec_line;  /* line where the record in progress started, -1 when none */
    int64_t cur_line;  /* line being fed */
    int have_header, n_cols;
    int idx[COL_N];    /* header index of each column, -1 when absent */
    char **header;
    int fatal;
} csv_ctx;

static void csv_clear_fields(csv_ctx *c) {
    for (int i = 0; i < c->n_fields; i++) free(c->fields[i].s);
    c->n_fields = 0;
}

static void csv_push_field(csv_ctx *c, const char *s, size_t n) {
    if (c->n_fields == c->cap_fields) {
        c->cap_fields = c->cap_fields ? 2 * c->cap_fields : 8;
        c->fields = slim_realloc(c->fields, (size_t)c->cap_fields * sizeof(csv_field));
    }
    c->fields[c->n_fields].s = reader_copy(s ? s : "", s ? n : 0);
    c->fields[c->n_fields].n = s ? n : 0;
    c->n_fields++;
}

static void csv_on_field(void *s, size_t n, void *data) {
    csv_ctx *c = data;
    if (c->rec_line < 0) c->rec_line = c->cur_line;
    csv_push_field(c, s, n);
}

/* The header row: column indices, the shape when auto, required columns present. */
static void table_header(csv_ctx *c, int64_t line) {
    reader_ctx *x = c->x;
    c->have_header = 1;
    c->n_cols = c->n_fields;
    c->header = slim_calloc((size_t)c->n_fields, sizeof(char *));
    int have[COL_N];
    for (int k = 0; k < COL_N; k++) { c->idx[k] = -1; have[k] = 0; }
    for (int i = 0; i < c->n_fields; i++) c->header[i] = slim_strdup(c->fields[i].s);
    for (int k = 0; k < COL_N; k++)
        for (int i = 0; i < c->n_fields && c->idx[k] < 0; i++)
            if (strcmp(c->header[i], x->col[k]) == 0) { c->idx[k] = i; have[k] = 1; }
    if (x->shape == SHAPE_AUTO) x->shape = reader_shape_from(have, x->o->labels != NULL, x->o->target_optional);
    for (int k = 0; k < COL_N && !c->fatal; k++) {
        if (!reader_uses(x->shape, k) || c->idx[k] < 0) continue;
        for (int i = c->idx[k] + 1; i < c->n_fields; i++)
            if (strcmp(c->header[i], x->col[k]) == 0) {
                slim_set_error("%s:%lld: header names column \"%s\" twice", x->r->path, (long long)line, x->col[k]);
                c->fatal = 1;
                break;
            }
    }
    for (const int *k = reader_required(x->shape); *k >= 0 && !c->fatal; k++) {
        if (c->idx[*k] >= 0 || (x->o->target_optional && reader_is_target(x->shape, *k))) continue;
        char cols[400] = "";
        size_t used = 0;
        for (int i = 0; i < c->n_fields && used + 4 < sizeof cols; i++)
            used += (size_t)snprintf(cols + used, sizeof cols - used, "%s\"%.40s\"", i ? ", " : "", c->header[i]);
        slim_set_error("%s:%lld: the header has no column \"%s\" (data.columns.%s, needed by the %s shape); its "
                       "columns are %s",
                       x->r->path, (long long)line, x->col[*k], reader_column_key(*k), example_shape_name(x->shape),
                       cols);
        c->fatal = 1;
    }
}

/* One data record of c->fields. */
static void table_record(csv_ctx *c, int64_t line) {
    reader_ctx *x = c->x;
    reader_row *row = reader_add_row(x, line);
    if (c->n_fields != c->n_cols) {
        reader_bad(x, row, READ_FIELD_COUNT, "expected %d fields (as the header), got %d", c->n_cols, c->n_fields);
        return;
    }
    if (x->shape == SHAPE_CHAT) {
        csv_field *m = &c->fields[c->idx[COL_MESSAGES]];
        if (memchr(m->s, 0, m->n)) {
            reader_bad(x, row, READ_NUL_BYTE, "NUL byte in the messages at byte %zu",
                       (size_t)((const char *)memchr(m->s, 0, m->n) - m->s));
            return;
        }
        cJSON *v = cJSON_ParseWithLength(m->s, m->n);
        if (!v) {
            reader_bad(x, row, READ_BAD_JSON, "the \"%s\" column is not a JSON array of messages", x->col[COL_MESSAGES]);
            return;
        }
        reader_fill_chat(x, row, v);
        cJSON_Delete(v);
        return;
    }
    reader_fields f;
    memset(&f, 0, sizeof f);
    for (int k = 0; k < COL_N; k++)
        if (c->idx[k] >= 0 && reader_uses(x->shape, k)) {
            f.s[k] = c->fields[c->idx[k]].s;
            f.n[k] = c->fields[c->idx[k]].n;
            f.present[k] = 1;
        }
    reader_fill_row(x, row, &f);
}

static void csv_on_record(int term, void *data) {
    (void)term;
    csv_ctx *c = data;
    int64_t line = c->rec_line >= 0 ? c->rec_line : c->cur_line;
    c->rec_line = -1;
    /* a whitespace-only line is a blank line, not a record */
    if (c->n_fields == 1 && reader_blank(c->fields[0].s, c->fields[0].n)) { csv_clear_fields(c); return; }
    if (c->fatal) { csv_clear_fields(c); return; }
    if (!c->have_header) table_header(c, line);
    else table_record(c, line);
    csv_clear_fields(c);
}

/* Start offset of every line (a line ends after "\n", "\r\n" or a bare "\r"); returns the count. */
static int64_t reader_split_lines(const char *buf, size_t size, size_t **out) {
    int64_t n_lines = 0, cap_lines = 1024;
    size_t *line_off = slim_malloc((size_t)cap_lines * sizeof(size_t));
    for (size_t i = 0; i < size;) {
        if (n_lines == cap_lines) { cap_lines *= 2; line_off = slim_realloc(line_off, (size_t)cap_lines * sizeof(size_t)); }
        line_off[n_lines++] = i;
        while (i < size && buf[i] != '\n' && buf[i] != '\r') i++;
        if (i < size && buf[i] == '\r' && i + 1 < size && buf[i + 1] == '\n') i++;
        if (i < size) i++;
    }
    *out = line_off;
    return n_lines;
}

static void csv_ctx_free(csv_ctx *c) {
    csv_clear_fields(c);
    free(c->fields);
    if (c->header) for (int i = 0; i < c->n_cols; i++) free(c->header[i]);
    free(c->header);
}

/* Ends a CSV or TSV parse: frees the line offsets and the context. Returns 0, or -1 when a fatal
 * error was already recorded or the file held no header row (error naming path). */
static int table_finish(csv_ctx *c, size_t *line_off, const char *path) {
    free(line_off);
    int fatal = c->fatal, have_header = c->have_header;
    csv_ctx_free(c);
    if (fatal) return -1;
    if (!have_header) return slim_set_error("%s: empty file: no header row", path);
    return 0;
}

static int reader_parse_csv(reader_ctx *x, const char *buf, size_t size) {
    data_reader *r = x->r;
    csv_ctx c = {.x = x, .rec_line = -1};
    /* start offset of every line, so parsing can restart after a quoting error */
    size_t *line_off;
    int64_t n_lines = reader_split_lines(buf, size, &line_off);
    struct csv_parser p;
    int64_t line = 1; /* 1-based index of the next line to feed */
    while (!c.fatal) {
        if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
            free(line_off);
            csv_ctx_free(&c);
            return slim_set_error("%s: cannot initialize the CSV parser", r->path);
        }
        int64_t restart = 0;
        for (; line <= n_lines && !c.fatal; line++) {
            size_t a = line_off[line - 1], b = line < n_lines ? line_off[line] : size;
            c.cur_line = line;
            if (c.rec_line < 0) { /* libcsv skips a line of only blanks (space, tab) without a record */
                for (size_t k = a; k < b; k++)
                    if (buf[k] != '\r' && buf[k] != '\n' && buf[k] != ' ' && buf[k] != '\t') { c.rec_line = line; break; }
            }
            if (csv_parse(&p, buf + a, b - a, csv_on_field, csv_on_record, &c) != b - a) {
                int64_t start = c.rec_line >= 0 ? c.rec_line : line;
                if (!c.have_header) {
                    slim_set_error("%s:%lld: bad quoting in the header row", r->path, (long long)start);
                    c.fatal = 1;
                    break;
                }
                reader_row *row = reader_add_row(x, start);
                if (start == line)
                    reader_bad(x, row, READ_BAD_QUOTE, "bad quoting (a stray quote, or text after a closing quote)");
                else
                    reader_bad(x, row, READ_BAD_QUOTE,
                               "bad quoting: the record starting here has a quoted field running to line %lld, "
                               "where the quoting breaks (text after a closing quote, or a stray quote); lines "
                               "%lld-%lld are one bad row",
                               (long long)line, (long long)start, (long long)line);
                /* the record start..line is consumed as one bad row: restarting inside it (at start + 1)
                 * would parse the text of the broken quoted field as rows of its own */
                restart = line + 1;
                break;
            }
        }
        if (!restart && !c.fatal && csv_fini(&p, csv_on_field, csv_on_record, &c) != 0) {
            int64_t start = c.rec_line >= 0 ? c.rec_line : n_lines;
            if (!c.have_header) {
                slim_set_error("%s:%lld: unterminated quoted field in the header row", r->path, (long long)start);
                c.fatal = 1;
            } else {
                reader_row *row = reader_add_row(x, start);
                reader_bad(x, row, READ_BAD_QUOTE,
                           "unbalanced quote: the quoted field opened here is never closed");
                restart = start + 1;
            }
        }
        csv_free(&p);
        csv_clear_fields(&c);
        c.rec_line = -1;
        if (!restart || restart > n_lines) break;
        line = restart;
    }
    return table_finish(&c, line_off, r->path);
}

static int reader_parse_tsv(reader_ctx *x, const char *buf, size_t size) {
    data_reader *r = x->r;
    csv_ctx c = {.x = x, .rec_line = -1};
    size_t *line_off;
    int64_t n_lines = reader_split_lines(buf, size, &line_off);
    for (int64_t line = 1; line <= n_lines && !c.fatal; line++) {
        size_t a = line_off[line - 1], b = line < n_lines ? line_off[line] : size;
        while (b > a && (buf[b - 1] == '\n' || buf[b - 1] == '\r')) b--;
        if (reader_blank(buf + a, b - a)) continue;
        for (size_t s = a;;) {
            const char *tab = memchr(buf + s, '\t', b - s);
            size_t e = tab ? (size_t)(tab - buf) : b;
            csv_push_field(&c, buf + s, e - s);
            if (!tab) break;
            s = e + 1;
        }
        if (!c.have_header) table_header(&c, line);
        else table_record(&c, line);
        csv_clear_fields(&c);
    }
    return table_finish(&c, line_off, r->path);
}

/* ---- JSONL ---- */

/* Byte offset of the first \u0000 escape inside a JSON string of s[0..n), or -1. Escaped backslashes
 * ("\\u0000" is a backslash and "u0000") are skipped as pairs. */
static int64_t reader_json_nul_escape(const char *s, size_t n) {
    int in_string = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"') {
            in_string = !in_string;
        } else if (in_string && s[i] == '\\' && i + 1 < n) {
            if (s[i + 1] == 'u' && i + 5 < n && memcmp(s + i + 2, "0000", 4) == 0) return (int64_t)i;
            i++; /* skip the escaped character */
        }
    }
    return -1;
}

/* The fields of a flat JSON object; returns 0, or -1 after marking the row bad. */
static int reader_json_fields(reader_ctx *x, reader_row *row, const cJSON *v, reader_fields *f) {
    memset(f, 0, sizeof *f);
    const int *req = reader_required(x->shape);
    for (const int *k = req; *k >= 0; k++)
        if (!cJSON_GetObjectItemCaseSensitive(v, x->col[*k]) &&
            !(x->o->target_optional && reader_is_target(x->shape, *k))) {
            reader_bad(x, row, READ_MISSING_KEY, "no key \"%s\" (data.columns.%s)", x->col[*k], reader_column_key(*k));
            return -1;
        }
    for (int k = 0; k < COL_N; k++) {
        if (!reader_uses(x->shape, k)) continue;
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(v, x->col[k]);
        if (!w || (k == COL_INPUT && cJSON_IsNull(w))) continue; /* an absent or null Alpaca input is "" */
        if (!cJSON_IsString(w)) {
            reader_bad(x, row, READ_JSON_TYPE, "\"%s\" is %s, expected a string", x->col[k], slim_json_type_name(w));
            return -1;
        }
        f->s[k] = w->valuestring;
        f->n[k] = strlen(w->valuestring);
        f->present[k] = 1;
    }
    return 0;
}

static void reader_parse_json_line(reader_ctx *x, int64_t line, const char *s, size_t n) {
    reader_row *row = reader_add_row(x, line);
    const char *nul = memchr(s, 0, n);
    if (nul) { reader_bad(x, row, READ_NUL_BYTE, "NUL byte at column %zu", (size_t)(nul - s) + 1); return; }
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    if (!v) {
        size_t col = end && end >= s && end <= s + n ? (size_t)(end - s) + 1 : 0;
        if (col > n) reader_bad(x, row, READ_BAD_JSON, "invalid JSON: the line ends early (truncated?)");
        else reader_bad(x, row, READ_BAD_JSON, "invalid JSON at column %zu", col);
        return;
    }
    size_t used = (size_t)(end - s);
    int64_t nul_at;
    while (used < n && reader_is_space((unsigned char)s[used])) used++;
    if (used < n) {
        reader_bad(x, row, READ_BAD_JSON, "invalid JSON: text after the object at column %zu", used + 1);
    } else if (!cJSON_IsObject(v)) {
        reader_bad(x, row, READ_JSON_TYPE, "expected a JSON object, got %s", slim_json_type_name(v));
    } else if ((nul_at = reader_json_nul_escape(s, n)) >= 0) {
        /* cJSON would decode it to a NUL that ends the C string: the value would be silently cut */
        reader_bad(x, row, READ_NUL_BYTE, "NUL byte (a \\u0000 escape) at column %lld", (long long)nul_at + 1);
    } else if (x->shape == SHAPE_CHAT) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(v, x->col[COL_MESSAGES]);
        if (!m) reader_bad(x, row, READ_MISSING_KEY, "no key \"%s\" (data.columns.messages)", x->col[COL_MESSAGES]);
        else reader_fill_chat(x, row, m);
    } else {
        reader_fields f;
        if (reader_json_fields(x, row, v, &f) == 0) reader_fill_row(x, row, &f);
    }
    cJSON_Delete(v);
}

/* Calls fn on every non-blank line (without its LF / CRLF); stops when fn returns non-zero. */
static void reader_jsonl_lines(const char *buf, size_t size, int (*fn)(reader_ctx *, int64_t, const char *, size_t),
                               reader_ctx *x) {
    int64_t line = 1;
    for (size_t i = 0; i < size; line++) {
        const char *nl = memchr(buf + i, '\n', size - i);
        size_t end = nl ? (size_t)(nl - buf) : size;
        size_t n = end - i;
        if (n > 0 && buf[i + n - 1] == '\r') n--;
        size_t k = 0;
        while (k < n && (buf[i + k] == ' ' || buf[i + k] == '\t')) k++;
        if (k < n && fn(x, line, buf + i, n)) return;
        i = nl ? end + 1 : size;
    }
}

static int reader_json_line_cb(reader_ctx *x, int64_t line, const char *s, size_t n) {
    reader_parse_json_line(x, line, s, n);
    return 0;
}

/* Shape detection: the keys present in the first READER_DETECT_LINES lines that are JSON objects
 * (their union, so one row lacking a key does not change the shape of the file) decide. */
#define READER_DETECT_LINES 100
typedef struct reader_detect { int have[COL_N]; int n_objects; } reader_detect;

static int reader_json_detect_cb(reader_ctx *x, int64_t line, const char *s, size_t n) {
    (void)line;
    reader_detect *d = x->detect;
    if (memchr(s, 0, n)) return 0;
    cJSON *v = cJSON_ParseWithLength(s, n);
    if (!v) return 0;
    if (cJSON_IsObject(v)) {
        for (int k = 0; k < COL_N; k++) d->have[k] |= cJSON_GetObjectItemCaseSensitive(v, x->col[k]) != NULL;
        d->n_objects++;
    }
    cJSON_Delete(v);
    return d->n_objects >= READER_DETECT_LINES;
}

static int reader_parse_jsonl(reader_ctx *x, const char *buf, size_t size) {
    if (x->shape == SHAPE_AUTO) {
        reader_detect d;
        memset(&d, 0, sizeof d);
        x->detect = &d;
        reader_jsonl_lines(buf, size, reader_json_detect_cb, x);
        x->detect = NULL;
        /* no object anywhere: every row is bad anyway; text_label names the usual keys */
        x->shape = d.n_objects ? reader_shape_from(d.have, x->o->labels != NULL, x->o->target_optional)
                               : SHAPE_TEXT_LABEL;
    }
    reader_jsonl_lines(buf, size, reader_json_line_cb, x);
    return 0;
}

/* ---- public ---- */

static int reader_has_ext(const char *path, const char *ext) {
    size_t n = strlen(path), k = strlen(ext);
    return n > k && strcasecmp(path + n - k, ext) == 0;
}

/* The format from the extension, else from the content; 0 when neither tells. */
static int reader_sniff_format(const char *path, const char *buf, size_t size) {
    if (reader_has_ext(path, ".csv")) return FORMAT_CSV;
    if (reader_has_ext(path, ".tsv") || reader_has_ext(path, ".tab")) return FORMAT_TSV;
    if (reader_has_ext(path, ".jsonl") || reader_has_ext(path, ".ndjson") || reader_has_ext(path, ".json"))
        return FORMAT_JSONL;
    size_t i = 0;
    if (size >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) i = 3;
    while (i < size && reader_is_space((unsigned char)buf[i])) i++;
    if (i < size && buf[i] == '{') return FORMAT_JSONL;
    int tab = 0, comma = 0;
    for (; i < size && buf[i] != '\n' && buf[i] != '\r'; i++) {
        if (buf[i] == 0) return 0;
        tab |= buf[i] == '\t';
        comma |= buf[i] == ',';
    }
    return tab ? FORMAT_TSV : comma ? FORMAT_CSV : 0;
}

int reader_open_ex(data_reader *r, const char *path, const reader_opts *o) {
    memset(r, 0, sizeof *r);
    const char *format = o->format ? o->format : "auto";
    int fmt = 0;
    if (strcmp(format, "csv") == 0) fmt = FORMAT_CSV;
    else if (strcmp(format, "tsv") == 0) fmt = FORMAT_TSV;
    else if (strcmp(format, "jsonl") == 0) fmt = FORMAT_JSONL;
    else if (strcmp(format, "auto") != 0)
        return slim_set_error("%s: unknown data format \"%s\" (expected csv, tsv, jsonl or auto)", path, format);
    if (o->shape < 0 || o->shape >= SHAPE_N) return slim_set_error("%s: unknown data shape %d", path, o->shape);
    char *buf;
    size_t size;
    if (slim_read_file(path, &buf, &size)) return -1;
    if (!fmt) fmt = reader_sniff_format(path, buf, size);
    if (!fmt) {
        free(buf);
        return slim_set_error("%s: cannot tell the format from the file name (expected .csv, .tsv or .jsonl) or "
                              "the content; set data.format",
                              path);
    }
    r->path = slim_strdup(path);
    r->format = fmt;
    r->is_jsonl = fmt == FORMAT_JSONL;
    r->size = size;
    reader_sha256_hex(buf, size, r->sha256);
    reader_ctx x = {.r = r, .o = o, .shape = o->shape};
    for (int k = 0; k < COL_N; k++) x.col[k] = o->columns[k] ? o->columns[k] : reader_column_key(k);
    size_t skip = size >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    int rc = fmt == FORMAT_JSONL ? reader_parse_jsonl(&x, buf + skip, size - skip)
             : fmt == FORMAT_TSV ? reader_parse_tsv(&x, buf + skip, size - skip)
                                 : reader_parse_csv(&x, buf + skip, size - skip);
    free(buf);
    if (rc) { reader_free(r); return -1; }
    r->shape = x.shape;
    for (int64_t i = 0; i < r->n_rows; i++) r->n_replaced += r->rows[i].reason == READ_OK && r->rows[i].utf8_replaced;
    return 0;
}

int reader_open(data_reader *r, const char *path, const char *format, const char *text_column,
                const char *label_column, const char *const *labels, int n_labels) {
    reader_opts o;
    memset(&o, 0, sizeof o);
    o.format = format;
    o.shape = SHAPE_TEXT_LABEL;
    o.columns[COL_TEXT] = text_column;
    o.columns[COL_LABEL] = label_column;
    o.labels = labels;
    o.n_labels = n_labels;
    return reader_open_ex(r, path, &o);
}

int reader_next(data_reader *r, const reader_row **row) {
    if (r->pos >= r->n_rows) return 0;
    *row = &r->rows[r->pos++];
    return 1;
}

void reader_free(data_reader *r) {
    for (int64_t i = 0; i < r->n_rows; i++) reader_free_row(&r->rows[i]);
    free(r->rows);
    free(r->path);
    memset(r, 0, sizeof *r);
}
