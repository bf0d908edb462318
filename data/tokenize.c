/* tokenize.c — `slimtune tokenize`: the tokens of a text with a model's own tokenizer. See tokenize.h.
 *
 * Output, as llama.cpp's llama-tokenize prints it: one line per token, "%6d -> '%s'" with the token's
 * text (control tokens as their text, byte-level pieces as their bytes; a token holding part of a
 * UTF-8 character prints those bytes as they are); with --ids-only a single line "[id, id, ...]". */
#include "tokenize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common.h"
#include "tokenizer/tokenizer.h"

static void tokenize_usage(FILE *f) {
    fprintf(f,
            "usage: slimtune tokenize MODEL [--text S | --file F] [--ids-only] [--no-bos] [--parse-special]\n"
            "\n"
            "Prints the tokens of a text with the model's tokenizer, one a line: \"id -> 'piece'\".\n"
            "  MODEL            a GGUF file, a tokenizer.json, or a directory holding tokenizer.json\n"
            "  --text S         the text\n"
            "  --file F         read the text from file F ('-': standard input)\n"
            "  --ids-only       print only the ids, as [id, id, ...]\n"
            "  --no-bos         do not add BOS (added by default when the tokenizer asks for it)\n"
            "  --parse-special  recognize control tokens written in the text (e.g. <|im_start|>)\n"
            "  --help           this text\n");
}

/* Reads all of standard input into a fresh buffer. */
static int tokenize_read_stdin(char **data, size_t *size) {
    size_t cap = 1 << 16, n = 0;
    char *buf = slim_malloc(cap);
    for (;;) {
        if (n + 4096 > cap) { cap *= 2; buf = slim_realloc(buf, cap); }
        size_t got = fread(buf + n, 1, cap - n - 1, stdin);
        n += got;
        if (got == 0) break;
    }
    if (ferror(stdin)) { free(buf); return slim_set_error("standard input: read error"); }
    buf[n] = 0;
    *data = buf;
    *size = n;
    return 0;
}

int tokenize_parse_args(tokenize_opts *o, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { tokenize_usage(stdout); return SLIM_HELP; }
        else if (!strcmp(argv[i], "--text") && i + 1 < argc) o->text = argv[++i];
        else if (!strcmp(argv[i], "--file") && i + 1 < argc) o->file = argv[++i];
        else if (!strcmp(argv[i], "--ids-only")) o->ids_only = 1;
        else if (!strcmp(argv[i], "--no-bos")) o->no_bos = 1;
        else if (!strcmp(argv[i], "--parse-special")) o->parse_special = 1;
        else if (!o->model && argv[i][0] != '-') o->model = argv[i];
        else return slim_bad_option("tokenize", argv[i]);
    }
    if (!o->model || (!o->text) == (!o->file)) return slim_set_error("give MODEL and exactly one of --text or --file");
    return SLIM_OK;
}

/* Prints ids[0..n) as llama-tokenize does: "[id, id, ...]" with ids_only, else "id -> 'piece'" lines. */
static void tokenize_print(const tokenizer *t, const int32_t *ids, int n, int ids_only) {
    if (ids_only) {
        putchar('[');
        for (int i = 0; i < n; i++) printf(i ? ", %d" : "%d", (int)ids[i]);
        printf("]\n");
        return;
    }
    size_t cap = 256;
    char *piece = slim_malloc(cap);
    for (int i = 0; i < n; i++) {
        piece[0] = 0;
        int k = tokenizer_decode_token_ex(t, ids[i], 1, piece, cap);
        if (k >= 0 && (size_t)k + 1 > cap) {
            cap = (size_t)k + 1;
            piece = slim_realloc(piece, cap);
            piece[0] = 0;
            k = tokenizer_decode_token_ex(t, ids[i], 1, piece, cap);
        }
        printf("%6d -> '", (int)ids[i]);
        fwrite(piece, 1, k > 0 ? (size_t)k : 0, stdout);
        printf("'\n");
    }
    free(piece);
}

int tokenize_run(const tokenize_opts *o) {
    char *data = NULL;
    const char *text = o->text;
    size_t len;
    if (o->file) {
        if (!strcmp(o->file, "-") ? tokenize_read_stdin(&data, &len) : slim_read_file(o->file, &data, &len)) return -1;
        text = data;
    } else {
        len = strlen(text);
    }
    tokenizer t;
    if (tokenizer_init_path(&t, o->model)) { free(data); return -1; }
    int flags = TOK_SPACE_PREFIX | (t.add_bos && !o->no_bos ? TOK_ADD_BOS : 0) | (o->parse_special ? TOK_PARSE_SPECIAL : 0);
    int n = tokenizer_encode_ex(&t, text, len, flags, NULL, 0, NULL);
    int32_t *ids = n > 0 ? slim_malloc((size_t)n * sizeof(int32_t)) : NULL;
    if (n > 0 && tokenizer_encode_ex(&t, text, len, flags, ids, n, NULL) != n) n = -1;
    int rc = n < 0 ? -1 : SLIM_OK;
    if (n >= 0) {
        tokenize_print(&t, ids, n, o->ids_only);
        if (fflush(stdout) != 0 || ferror(stdout)) rc = slim_set_error("cannot write the output");
    }
    free(ids);
    free(data);
    tokenizer_free(&t);
    return rc;
}

int tokenize_main(int argc, char **argv) {
    tokenize_opts o;
    int r = tokenize_parse_args(&o, argc, argv);
    return r == SLIM_OK ? tokenize_run(&o) : r == SLIM_HELP ? SLIM_OK : (tokenize_usage(stderr), -1);
}
