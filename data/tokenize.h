/* tokenize.h — `slimtune tokenize`: print the tokens of a text, one a line, as llama.cpp's
 * llama-tokenize does ("   id -> 'piece'"), with the tokenizer of a GGUF model or a Hugging Face
 * tokenizer.json.
 *
 *   slimtune tokenize MODEL [--text S | --file F] [--ids-only] [--no-bos] [--parse-special]
 *
 * MODEL is a GGUF file, a tokenizer.json, or a directory holding tokenizer.json. */
#ifndef SLIM_TOKENIZE_H
#define SLIM_TOKENIZE_H

/* Options of `slimtune tokenize`. */
typedef struct tokenize_opts {
    const char *model;          /* GGUF file, tokenizer.json, or a directory holding tokenizer.json */
    const char *text, *file;    /* exactly one: the text, or a file to read it from ("-": standard input) */
    int ids_only, no_bos, parse_special;
} tokenize_opts;

/* Parses argv (argv[0] = "tokenize") into *o: SLIM_OK, SLIM_HELP (usage printed) or -1 (lib/cli.h). */
int tokenize_parse_args(tokenize_opts *o, int argc, char **argv);

/* Prints the tokens of o's text on stdout. Returns SLIM_OK, or -1 with an error (unreadable text or
 * model, tokenizer failure, failed write). */
int tokenize_run(const tokenize_opts *o);

/* Entry point: parse, run; argv[0] is the command name ("tokenize"). Returns SLIM_OK or -1 (the
 * dispatcher turns it into the exit status: 0, or 2 with the error). */
int tokenize_main(int argc, char **argv);

#endif
