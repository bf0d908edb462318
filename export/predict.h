/* predict.h — `slimtune predict`: run a model on new rows.
 *
 * text_label configs: every row of --input (CSV, TSV or JSONL, the config's data.format and columns; a
 * label column is optional) is rendered with the config's prompt template exactly as `data prepare`
 * renders it (the same truncation), every label is scored as `eval` scores it (the summed
 * log-probability of its completion + EOS, eval.h), and the row gets the best label and the probability
 * of each label (softmax over the labels' completion log-likelihoods). Rows are read, scored and written
 * in chunks, in input order; a bad row (as `data prepare` defines it) gets a line with its error. When
 * rows carry a label, the accuracy over those in the label set is printed.
 *
 * The model: the config's base with an adapter (default <out_dir>/train/adapter.gguf; --adapter A), its
 * weights stored as base.quant as in training, or --model M (a merged GGUF such as export writes), used
 * as its file stores it and without an adapter: the file a team deploys.
 *
 * Output (--out FILE, written through a temporary file and renamed; else stdout), one JSON object a row:
 *   {"line": 12, "label": "spam", "probs": {"ham": 0.0123, "spam": 0.9877}, "gold": "spam"}
 *   {"line": 13, "error": "empty text"}
 * ("gold" only when the row has a label). With --routing R (the eval/routing.json that `slimtune eval`
 * writes: a temperature and a confidence threshold), the probabilities are taken at R's temperature and
 * each row also gets "confidence" (its label's probability) and "route": "model" when the confidence
 * reaches R's threshold, else "escalate" (the router sends it to the large model); the share of each is
 * printed.
 *
 * Other shapes (prompt_completion, alpaca, and text rows when the config has no labels): the prompt,
 * rendered as `data prepare` renders it without the completion, is continued greedily up to
 * predict.max_new_tokens tokens or EOS (no KV cache: each token a forward over the whole sequence, the
 * head on the last row only):
 *   {"line": 3, "completion": " there was a girl", "n_tokens": 16, "stop": "eos" | "max_new_tokens",
 *    "reference": the row's completion when it has one}
 * The completion column may be absent or empty. Chat rows (data.chat_template, or the model's own): the
 * conversation (a final assistant turn left out) rendered with a placeholder answer as data prepare
 * renders it; the prompt is everything before the answer's loss span (the template's generation prompt,
 * e.g. "<|im_start|>assistant\n"), and generation also stops at the template's end-of-turn token (the
 * span's last token). */
#ifndef SLIM_PREDICT_H
#define SLIM_PREDICT_H

#include "cli.h"
#include "config.h"

/* Options of `slimtune predict --config C --input F [--out F] [--adapter A | --model M] [--batch N]
 * [--prompt-tokens] [--routing R]`. */
typedef struct predict_opts {
    const char *config, *input, *out, *adapter, *model;
    const char *routing; /* eval/routing.json: probabilities at its temperature, "route" by its threshold */
    long batch;        /* (row, label) pairs per forward pass (default 32) */
    int prompt_tokens; /* add each row's prompt token ids ("prompt_tokens"), to run it elsewhere */
} predict_opts;

/* Parses argv (argv[0] = "predict") into *o: SLIM_OK, SLIM_HELP (usage printed) or -1 (lib/cli.h). */
int predict_parse_args(predict_opts *o, int argc, char **argv);

/* Predicts every row of o->input (see above). Returns SLIM_OK or -1 with an error. */
int predict_run(const slim_config *cfg, const predict_opts *o);

/* Entry point: parse, load the config, run; argv[0] = "predict". Returns SLIM_OK or -1. */
int predict_main(int argc, char **argv);

#endif
