/* reader.c — CSV (libcsv, strict mode) and JSONL (cJSON) row readers. See reader.h.
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
 * JSONL: cJSON strings are NUL-terminated, so a \u0000 escape would silently cut a value (or a key)
 * at the NUL; a line with one is a bad row (READ_NUL_BYTE), as a raw NUL byte is. */
#define _GNU_SOURCE
#include "reader.h"

#include <cJSON.h>
#include <csv.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "config.h"

const char *reader_reason_name(int reason) {
    static const char *names[READ_N_REASONS] = {
        "ok",           "bad quoting",     "wrong field count", "invalid JSON", "wrong JSON type",
        "missing key",  "NUL byte",        "invalid UTF-8",     "empty text",   "empty label",
        "unknown label", "completion too long"};
    return reason >= 0 && reason < READ_N_REASONS ? names[reason] : "?";
}

int64_t reader_utf8_check(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t len;
        unsigned cp;
        if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
        else return (int64_t)i;
        if (i + len > n) return (int64_t)i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return (int64_t)i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return (int64_t)i;
        i += len;
    }
    return -1;
}

/* ---- shared row building ---- */

typedef struct reader_ctx {
    data_reader *r;
    const char *text_column, *label_column;
    const char *const *labels;
    int n_labels;
    int64_t cap_rows;
} reader_ctx;

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

static void reader_bad(reader_ctx *x, reader_row *row, int reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void reader_bad(reader_ctx *x, reader_row *row, int reason, const char *fmt, ...) {
    row->reason = reason;
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

/* Checks one field's bytes; returns 0 or sets the row bad. */
static int reader_check_field(reader_ctx *x, reader_row *row, const char *what, const char *s, size_t n) {
    const char *nul = memchr(s, 0, n);
    if (nul) {
        reader_bad(x, row, READ_NUL_BYTE, "NUL byte in the %s at byte %zu", what, (size_t)(nul - s));
        return -1;
    }
    int64_t bad = reader_utf8_check(s, n);
    if (bad >= 0) {
        reader_bad(x, row, READ_BAD_UTF8, "invalid UTF-8 in the %s at byte %lld (0x%02x)", what, (long long)bad,
                   (unsigned char)s[bad]);
        return -1;
    }
    return 0;
}

/* Fills a row from its text and label bytes and runs the checks common to every format. */
static void reader_fill_row(reader_ctx *x, reader_row *row, const char *text, size_t tn, const char *label,
                            size_t ln) {
    if (reader_check_field(x, row, "text", text, tn) || reader_check_field(x, row, "label", label, ln)) return;
    while (ln > 0 && reader_is_space((unsigned char)label[0])) { label++; ln--; }
    while (ln > 0 && reader_is_space((unsigned char)label[ln - 1])) ln--;
    size_t k = 0;
    while (k < tn && reader_is_space((unsigned char)text[k])) k++;
    if (k == tn) { reader_bad(x, row, READ_EMPTY_TEXT, "the text field \"%s\" is empty", x->text_column); return; }
    if (ln == 0) { reader_bad(x, row, READ_EMPTY_LABEL, "the label field \"%s\" is empty", x->label_column); return; }
    if (x->labels) {
        int found = 0;
        for (int i = 0; i < x->n_labels && !found; i++)
            found = strlen(x->labels[i]) == ln && memcmp(x->labels[i], label, ln) == 0;
        if (!found) {
            reader_bad(x, row, READ_UNKNOWN_LABEL, "label \"%.*s\" is not in the label set", (int)(ln > 60 ? 60 : ln),
                       label);
            return;
        }
    }
    row->text = reader_copy(text, tn);
    row->text_len = tn;
    row->label = reader_copy(label, ln);
    row->label_len = ln;
}

/* ---- CSV ---- */

typedef struct csv_field { char *s; size_t n; } csv_field;

typedef struct csv_ctx {
    reader_ctx *x;
    csv_field *fields;
    int n_fields, cap_fields;
    int64_t rec_line;  /* line where the record in progress started, -1 when none */
    int64_t cur_line;  /* line being fed */
    int have_header, n_cols, text_idx, label_idx;
    char **header;
    int fatal;
} csv_ctx;

static void csv_clear_fields(csv_ctx *c) {
    for (int i = 0; i < c->n_fields; i++) free(c->fields[i].s);
    c->n_fields = 0;
}

static void csv_on_field(void *s, size_t n, void *data) {
    csv_ctx *c = data;
    if (c->rec_line < 0) c->rec_line = c->cur_line;
    if (c->n_fields == c->cap_fields) {
        c->cap_fields = c->cap_fields ? 2 * c->cap_fields : 8;
        c->fields = slim_realloc(c->fields, (size_t)c->cap_fields * sizeof(csv_field));
    }
    c->fields[c->n_fields].s = reader_copy(s ? s : "", s ? n : 0);
    c->fields[c->n_fields].n = s ? n : 0;
    c->n_fields++;
}

static void csv_on_record(int term, void *data) {
    (void)term;
    csv_ctx *c = data;
    reader_ctx *x = c->x;
    int64_t line = c->rec_line >= 0 ? c->rec_line : c->cur_line;
    c->rec_line = -1;
    /* a whitespace-only line is a blank line, not a record */
    if (c->n_fields == 1) {
        size_t k = 0;
        while (k < c->fields[0].n && reader_is_space((unsigned char)c->fields[0].s[k])) k++;
        if (k == c->fields[0].n) { csv_clear_fields(c); return; }
    }
    if (c->fatal) { csv_clear_fields(c); return; }
    if (!c->have_header) {
        c->have_header = 1;
        c->n_cols = c->n_fields;
        c->text_idx = c->label_idx = -1;
        c->header = slim_calloc((size_t)c->n_fields, sizeof(char *));
        for (int i = 0; i < c->n_fields; i++) {
            c->header[i] = slim_strdup(c->fields[i].s);
            for (int j = 0; j < i; j++)
                if (strcmp(c->header[j], c->header[i]) == 0 &&
                    (strcmp(c->header[i], x->text_column) == 0 || strcmp(c->header[i], x->label_column) == 0)) {
                    slim_set_error("%s:%lld: header names column \"%s\" twice", x->r->path, (long long)line,
                                   c->header[i]);
                    c->fatal = 1;
                }
            if (strcmp(c->header[i], x->text_column) == 0 && c->text_idx < 0) c->text_idx = i;
            if (strcmp(c->header[i], x->label_column) == 0 && c->label_idx < 0) c->label_idx = i;
        }
        if (!c->fatal && (c->text_idx < 0 || c->label_idx < 0)) {
            char cols[400] = "";
            size_t used = 0;
            for (int i = 0; i < c->n_fields && used + 4 < sizeof cols; i++)
                used += (size_t)snprintf(cols + used, sizeof cols - used, "%s\"%.40s\"", i ? ", " : "",
                                         c->header[i]);
            slim_set_error("%s:%lld: the header has no column \"%s\" (data.columns.%s); its columns are %s",
                           x->r->path, (long long)line, c->text_idx < 0 ? x->text_column : x->label_column,
                           c->text_idx < 0 ? "text" : "label", cols);
            c->fatal = 1;
        }
        csv_clear_fields(c);
        return;
    }
    reader_row *row = reader_add_row(x, line);
    if (c->n_fields != c->n_cols) {
        reader_bad(x, row, READ_FIELD_COUNT, "expected %d fields (as the header), got %d", c->n_cols, c->n_fields);
    } else {
        csv_field *t = &c->fields[c->text_idx], *l = &c->fields[c->label_idx];
        reader_fill_row(x, row, t->s, t->n, l->s, l->n);
    }
    csv_clear_fields(c);
}

static int reader_parse_csv(reader_ctx *x, const char *buf, size_t size) {
    data_reader *r = x->r;
    csv_ctx c = {.x = x, .rec_line = -1};
    /* start offset of every line, so parsing can restart after a quoting error */
    int64_t n_lines = 0, cap_lines = 1024;
    size_t *line_off = slim_malloc((size_t)cap_lines * sizeof(size_t));
    for (size_t i = 0; i < size;) {
        if (n_lines == cap_lines) { cap_lines *= 2; line_off = slim_realloc(line_off, (size_t)cap_lines * sizeof(size_t)); }
        line_off[n_lines++] = i;
        /* the line ends after "\n", "\r\n" or a bare "\r" */
        while (i < size && buf[i] != '\n' && buf[i] != '\r') i++;
        if (i < size && buf[i] == '\r' && i + 1 < size && buf[i + 1] == '\n') i++;
        if (i < size) i++;
    }
    struct csv_parser p;
    int64_t line = 1; /* 1-based index of the next line to feed */
    while (!c.fatal) {
        if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
            free(line_off);
            return slim_set_error("%s: cannot initialize the CSV parser", r->path);
        }
        int64_t restart = 0;
        for (; line <= n_lines && !c.fatal; line++) {
            size_t a = line_off[line - 1], b = line < n_lines ? line_off[line] : size;
            c.cur_line = line;
            if (c.rec_line < 0) {
                for (size_t k = a; k < b; k++)
                    if (buf[k] != '\r' && buf[k] != '\n') { c.rec_line = line; break; }
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
    free(line_off);
    free(c.fields);
    if (c.header) for (int i = 0; i < c.n_cols; i++) free(c.header[i]);
    free(c.header);
    if (c.fatal) return -1;
    if (!c.have_header) return slim_set_error("%s: empty file: no header row", r->path);
    return 0;
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
        reader_bad(x, row, READ_JSON_TYPE, "expected a JSON object, got %s", config_json_type_name(v));
    } else if ((nul_at = reader_json_nul_escape(s, n)) >= 0) {
        /* cJSON would decode it to a NUL that ends the C string: the value would be silently cut */
        reader_bad(x, row, READ_NUL_BYTE, "NUL byte (a \\u0000 escape) at column %lld", (long long)nul_at + 1);
    } else {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(v, x->text_column);
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(v, x->label_column);
        if (!t) reader_bad(x, row, READ_MISSING_KEY, "no key \"%s\" (data.columns.text)", x->text_column);
        else if (!l) reader_bad(x, row, READ_MISSING_KEY, "no key \"%s\" (data.columns.label)", x->label_column);
        else if (!cJSON_IsString(t))
            reader_bad(x, row, READ_JSON_TYPE, "\"%s\" is %s, expected a string", x->text_column, config_json_type_name(t));
        else if (!cJSON_IsString(l))
            reader_bad(x, row, READ_JSON_TYPE, "\"%s\" is %s, expected a string", x->label_column,
                       config_json_type_name(l));
        else
            reader_fill_row(x, row, t->valuestring, strlen(t->valuestring), l->valuestring, strlen(l->valuestring));
    }
    cJSON_Delete(v);
}

static int reader_parse_jsonl(reader_ctx *x, const char *buf, size_t size) {
    int64_t line = 1;
    for (size_t i = 0; i < size; line++) {
        const char *nl = memchr(buf + i, '\n', size - i);
        size_t end = nl ? (size_t)(nl - buf) : size;
        size_t n = end - i;
        if (n > 0 && buf[i + n - 1] == '\r') n--;
        size_t k = 0;
        while (k < n && (buf[i + k] == ' ' || buf[i + k] == '\t')) k++;
        if (k < n) reader_parse_json_line(x, line, buf + i, n);
        i = nl ? end + 1 : size;
    }
    return 0;
}

/* ---- public ---- */

static int reader_has_ext(const char *path, const char *ext) {
    size_t n = strlen(path), k = strlen(ext);
    return n > k && strcasecmp(path + n - k, ext) == 0;
}

int reader_open(data_reader *r, const char *path, const char *format, const char *text_column,
                const char *label_column, const char *const *labels, int n_labels) {
    memset(r, 0, sizeof *r);
    if (!format || strcmp(format, "auto") == 0) {
        if (reader_has_ext(path, ".csv")) r->is_jsonl = 0;
        else if (reader_has_ext(path, ".jsonl") || reader_has_ext(path, ".ndjson") || reader_has_ext(path, ".json"))
            r->is_jsonl = 1;
        else
            return slim_set_error("%s: cannot tell the format from the file name (expected .csv or .jsonl); "
                                  "set data.format", path);
    } else if (strcmp(format, "csv") == 0) {
        r->is_jsonl = 0;
    } else if (strcmp(format, "jsonl") == 0) {
        r->is_jsonl = 1;
    } else {
        return slim_set_error("%s: unknown data format \"%s\" (expected csv, jsonl or auto)", path, format);
    }
    char *buf;
    size_t size;
    if (slim_read_file(path, &buf, &size)) return -1;
    r->path = slim_strdup(path);
    reader_ctx x = {.r = r, .text_column = text_column, .label_column = label_column, .labels = labels,
                    .n_labels = n_labels};
    size_t skip = size >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    int rc = r->is_jsonl ? reader_parse_jsonl(&x, buf + skip, size - skip) : reader_parse_csv(&x, buf + skip, size - skip);
    free(buf);
    if (rc) { reader_free(r); return -1; }
    return 0;
}

int reader_next(data_reader *r, const reader_row **row) {
    if (r->pos >= r->n_rows) return 0;
    *row = &r->rows[r->pos++];
    return 1;
}

void reader_free(data_reader *r) {
    for (int64_t i = 0; i < r->n_rows; i++) {
        free(r->rows[i].text);
        free(r->rows[i].label);
    }
    free(r->rows);
    free(r->path);
    memset(r, 0, sizeof *r);
}
