/* tokenize.h — `slimtune tokenize`: print the tokens of a text, one a line, as llama.cpp's
 * llama-tokenize does ("   id -> 'piece'"), with the tokenizer of a GGUF model or a Hugging Face
 * tokenizer.json.
 *
 *   slimtune tokenize MODEL [--text S | --file F] [--ids-only] [--no-bos] [--parse-special]
 *
 * MODEL is a GGUF file, a tokenizer.json, or a directory holding tokenizer.json. */
#ifndef SLIM_TOKENIZE_H
#define SLIM_TOKENIZE_H

/* Entry point: argv[0] is the command name ("tokenize"). Returns the process exit status: 0 on
 * success, 1 on failure (message on stderr), 2 on bad usage. */
int tokenize_main(int argc, char **argv);

#endif
