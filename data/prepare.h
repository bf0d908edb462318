/* prepare.h — `slimtune data prepare`: raw CSV/TSV/JSONL rows -> tokenized HDF5 datasets (dataset.h).
 *
 *   slimtune data prepare --config FILE [--split train|test|val|all] [--out DIR]
 *
 * Each row (example.h) is rendered by its shape into tokens and a loss mask (1 = training target):
 *
 *   text_label         prompt = data.template.prompt with {text} substituted, completion =
 *                      data.template.completion with {label} substituted; tokens = encode(prompt, BOS,
 *                      space prefix) + encode(completion, no BOS, no space prefix) + EOS; loss on the
 *                      completion and EOS. Every prompt gets at most data.max_seq_len - (longest
 *                      completion + EOS over the label set) tokens, the same budget whatever the row's
 *                      label (so a prompt's length never reveals its label).
 *   prompt_completion  prompt = the prompt field as is, completion = the completion field as is (write
 *                      its leading space yourself when the model needs one); loss on completion + EOS.
 *   alpaca             the Stanford Alpaca prompt (PREP_ALPACA_* below: "Below is an instruction ...
 *                      ### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n", the
 *                      shorter no-input form when the input is empty); completion = the output; loss on
 *                      output + EOS.
 *   text               BOS + text + EOS (continued pretraining), loss on every token but the first. A
 *                      text longer than data.max_seq_len is split into chunks of data.max_seq_len tokens
 *                      (each later chunk starts with BOS), all from the same source line; nothing is lost.
 *   chat               the messages rendered by the model's chat template (lib/tokenizer/chat.h: data.chat_template,
 *                      "auto" = recognized from the GGUF's tokenizer.chat_template) and tokenized with its
 *                      special tokens parsed; loss on the assistant turns (data.chat_loss: all, or only
 *                      the last), each with its end-of-turn token. A conversation longer than
 *                      data.max_seq_len keeps its first data.max_seq_len tokens (truncated) as long as
 *                      some assistant token remains, else it is a bad row ("completion too long"); a
 *                      conversation the template refuses (role order, a system turn it rejects) is a
 *                      bad row ("bad chat role").
 *
 * Truncation (text_label, prompt_completion, alpaca): the completion is never cut. When prompt +
 * completion exceed data.max_seq_len, the variable part of the prompt ({text}, the prompt field, the
 * Alpaca input — then the instruction, with the input dropped, if that is not enough) is shortened at
 * a UTF-8 character boundary to the longest prefix whose re-tokenized prompt fits; the template's fixed
 * text is always kept. A row whose completion cannot fit even with an empty prompt is a bad row
 * ("completion too long"). BOS is added when the tokenizer has one and asks for it (add_bos).
 *
 * Splits: with data.test, <out>/data/test.h5 comes from that file; without it but with data.split,
 * both splits come from data.train by the seeded, stratified hash split of split.h (bad rows are
 * counted with train). A validation split, <out>/data/val.h5, comes from data.val, or from data.train
 * by data.split.val_fraction (split_assign3: the same test rows, val from the hashes after them; allowed
 * together with data.test). Writes <out>/data/train.h5, test.h5 and val.h5 (out defaults to the config's out_dir),
 * with provenance attributes (dataset.h): the sources' SHA-256, the shape, the templates and the
 * config fingerprint (prep_config_fingerprint). Either every requested split is written or none is. */
#ifndef SLIM_PREPARE_H
#define SLIM_PREPARE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "example.h"
#include "reader.h"
#include "tokenizer/tokenizer.h"

/* The Alpaca templates (Taori et al. 2023, the Stanford Alpaca repository's PROMPT_DICT). */
#define PREP_ALPACA_HEAD_INPUT                                                                                     \
    "Below is an instruction that describes a task, paired with an input that provides further context. Write a " \
    "response that appropriately completes the request.\n\n### Instruction:\n"
#define PREP_ALPACA_HEAD                                                                                          \
    "Below is an instruction that describes a task. Write a response that appropriately completes the "           \
    "request.\n\n### Instruction:\n"
#define PREP_ALPACA_INPUT "\n\n### Input:\n"
#define PREP_ALPACA_RESPONSE "\n\n### Response:\n"

/* Everything needed to render rows of one shape; shared read-only by worker threads. */
typedef struct prep_renderer {
    const tokenizer *tok;
    int shape;                 /* enum example_shape */
    int max_seq_len;
    int add_bos;               /* tokenizer has a BOS and adds it */
    /* text_label */
    const char *pre, *post;    /* prompt template around {text} */
    size_t pre_len, post_len;
    int n_labels;
    char **label_names;        /* [n_labels] sorted, borrowed */
    int32_t **comp_ids;        /* [n_labels] completion ids + EOS */
    int *comp_len;             /* [n_labels] */
    int max_comp_len;          /* max of comp_len: the completion space reserved in every row */
    const char *max_comp_name; /* a label with that length */
    int base_len;              /* tokens of pre + post with BOS (the prompt with an empty text) */
    int prompt_budget;         /* max_seq_len - max_comp_len: the most prompt tokens any row gets */
    size_t max_text_bytes;     /* a prompt text longer than this can never fit: cut before the search */
    const char *completion_template;
    /* chat */
    int chat_tmpl;             /* enum chat_tmpl */
    int chat_loss;             /* enum chat_loss */
} prep_renderer;

/* One rendered example, and the per-thread work buffers reused from one call to the next
 * (zero-initialize, free with prep_rendered_free). */
typedef struct prep_rendered {
    int32_t *tokens;           /* [n_tokens] */
    uint8_t *mask;             /* [n_tokens] 1 = target */
    int n_tokens;
    int prompt_len;            /* tokens before the first target */
    int full_len;              /* tokens the example would have untruncated and unsplit (want_full_len) */
    int label;                 /* text_label: index into label_names; else -1 */
    int truncated;             /* the prompt was cut */
    int bad;                   /* READ_TOO_LONG (or READ_UNKNOWN_LABEL) when the row cannot be rendered */
    char message[200];         /* why it is bad */
    /* private work buffers */
    int cap;
    int32_t *ids;
    int ids_cap;
    char *scratch;
    size_t scratch_cap;
} prep_rendered;

/* Prepares rendering for a shape: text_label needs the sorted label set (names, borrowed) and checks
 * that the prompt without text plus the longest completion fits data.max_seq_len; chat needs the
 * template: data.chat_template, or with "auto" the model's Jinja chat_template (chat_jinja, the GGUF's
 * tokenizer.chat_template, may be NULL), and checks that the template's tokens exist in this
 * tokenizer. Returns 0, or -1 with an error naming the config and the key. */
int prep_renderer_init(prep_renderer *r, const tokenizer *t, const slim_config *cfg, int shape, char **names,
                       int n_names, const char *chat_jinja);
/* Frees what prep_renderer_init allocated (safe after it failed). */
void prep_renderer_free(prep_renderer *r);

/* Renders one good example into out (tokens, mask, prompt_len, label, truncated; full_len as well when
 * want_full_len, which costs a second encoding of long texts). The text shape returns the whole
 * unsplit sequence (prep_text_chunks splits it). A row that cannot fit gets out->bad and a message.
 * Returns 0, or -1 on a tokenizer failure (slim_last_error). Thread-safe for distinct out. */
int prep_render(const prep_renderer *r, const data_example *e, int want_full_len, prep_rendered *out);
/* Frees the token arrays of one prep_render result. */
void prep_rendered_free(prep_rendered *out);

/* Number of examples a text-shape sequence of n tokens becomes with chunks of at most max_seq_len
 * tokens (each chunk after the first starts with BOS when add_bos). */
int64_t prep_text_chunks(int64_t n, int max_seq_len, int add_bos);

/* The templates a shape is rendered with, as stored in the dataset attributes. */
const char *prep_prompt_template(const slim_config *cfg, int shape);
const char *prep_completion_template(const slim_config *cfg, int shape);

/* FNV-1a over every setting that shapes the tokens: shape, format, the used columns, the templates,
 * the sorted label set, max_seq_len, data.invalid_utf8 and data.split. */
uint64_t prep_config_fingerprint(const slim_config *cfg, int shape, char **names, int n_names);

/* Options of `slimtune data prepare --config FILE [--split train|test|val|all] [--out DIR]`. */
typedef struct data_prepare_opts {
    const char *config;
    const char *split;         /* "train", "test", "val" or "all" */
    const char *out;           /* NULL: the config's out_dir */
} data_prepare_opts;

/* Parses argv (argv[0] = "prepare") into *o: SLIM_OK, SLIM_HELP (usage printed) or -1 (lib/cli.h). */
int data_prepare_parse_args(data_prepare_opts *o, int argc, char **argv);

/* Renders and writes the splits o asks for under cfg (the model is a GGUF file or a Hugging Face
 * directory). Returns SLIM_OK, or -1 with an error (bad config or input, failed write; no file written). */
int data_prepare_run(const slim_config *cfg, const data_prepare_opts *o);

/* Entry point: parse, load the config, run; argv[0] is the command name ("prepare"). Returns SLIM_OK or
 * -1 (the dispatcher turns it into the exit status: 0, or 2 with the error). */
int data_prepare_main(int argc, char **argv);

/* Matches argv[*i] against the option names ("--config" takes "--config V" or "--config=V"): returns the
 * index of the name and sets *value (advancing *i past a separate value), or -1 with slim_bad_option(cmd). */
int prep_option(const char *cmd, int argc, char **argv, int *i, const char *const *names, int n_names,
                const char **value);

/* Reader options from the config: its format, columns, data.invalid_utf8, the given shape and label set. */
void prep_reader_opts(reader_opts *o, const slim_config *cfg, int shape, char **names, int n_names);

/* The declared label set data.labels, sorted: a fresh array of the config's strings and its size in *n
 * (NULL and 0 when none is declared). */
char **prep_declared_labels(const slim_config *cfg, int *n);

/* The sorted distinct labels of rd's good rows: a fresh array of rd's strings and its size in *n. */
char **prep_train_labels(const data_reader *rd, int *n);

#endif
