/* generative.h — `slimtune eval` on prompt/completion, alpaca, chat and plain-text data (generative.c).
 * Internal to eval/.
 *
 * Rows with a completion: the prompt (everything before the example's last run of loss tokens: the
 * completion, or the final assistant turn) is continued greedily (model_generate_greedy) up to
 * eval.max_new_tokens tokens, stopping at EOS or at that run's last token (the chat template's end of
 * turn); the text is scored against the run's text without that token: exact match and token F1 (SQuAD,
 * textmetrics.h), and when every reference is a JSON object the valid-JSON rate and per-field precision,
 * recall and F1. The fine-tuned model is compared with the base on exact match (bootstrap interval,
 * McNemar). Plain text (shape "text"): the mean NLL per target token and its perplexity. The gate:
 * eval.min_accuracy on the fine-tuned exact match (none for perplexity). Writes report.json (every
 * example's reference and outputs) and report.md; prints the table. */
#ifndef SLIM_EVAL_GENERATIVE_H
#define SLIM_EVAL_GENERATIVE_H

#include <stdint.h>

#include "cli.h"
#include "config.h"
#include "dataset.h"
#include "eval.h"
#include "model/model.h"

/* What the report names, and the gate. */
typedef struct gen_report {
    const char *config, *model, *adapter, *dataset;
    double min_accuracy;
    int passed; /* set by eval_generative */
} gen_report;

/* Scores the examples idx [n] of d with the model + lora and the base alone, writes dir/report.json and
 * report.md. Returns SLIM_OK, SLIM_GATE_FAILED, or -1 with an error. */
int eval_generative(const gen_report *r, const model *m, const lora_adapter *lora, const slim_dataset *d,
                    const int64_t *idx, int64_t n, const slim_config *cfg, const char *dir);

#endif
