/* validate.h — `slimtune data validate`: checks a raw dataset before it is prepared and trained on.
 *
 *   slimtune data validate [--config FILE | --model-config FILE] [--train FILE] [--eval FILE]
 *                          [--model MODEL] [--format F] [--shape S] [--report PATH] [--show N]
 *
 * Labels (text_label): a config's data.labels, when declared, is the label set; otherwise the set is the
 * train file's labels and eval rows with a label train lacks are reported ("labels unseen in train").
 * --model-config FILE takes only FILE's model, data.max_seq_len and validate.* settings, every other
 * data.* setting keeping its default (so the labels are the train file's); a missing model file then
 * skips the token checks with the reason. `make validate DATA=...` without CONFIG uses it.
 *
 * Files: --train (default data.train) and --eval (default data.test, but only when --train is not
 * given); with data.split and no eval file, eval is the test part of data.train's split (split.h).
 * The tokenizer is the config's model (or --model): a GGUF file or a Hugging Face directory (its
 * tokenizer.json); without one the token checks are skipped.
 *
 * Checks, per split, each with a count and the first offending rows (file:line):
 *   - bad rows by reason (reader.h): parse errors (quoting, field count, JSON syntax and types, missing
 *     keys, NUL bytes), invalid UTF-8 (with the byte offset; under data.invalid_utf8 = replace the rows
 *     are kept and reported as replaced), empty or whitespace-only fields, labels outside the label set
 *     (declared, or the train file's), chat structure (unknown role, system turn not first, empty turn, no assistant turn);
 *   - labels (text_label): counts, labels with fewer than validate.min_label_count rows, and the class
 *     imbalance ratio (largest / smallest count; a declared label without rows makes it infinite);
 *   - exact duplicates: rows whose normalized input (reader_example_key: NFC, case-folded, whitespace
 *     collapsed) equals an earlier row's; among them, conflicting ones whose target differs;
 *   - near duplicates: rows, not exact duplicates, whose shingle set (validate.shingle: word n-grams or
 *     character n-grams of the normalized input, validate.shingle_size) has Jaccard similarity >=
 *     validate.near_duplicate_threshold with an earlier row's. Candidates come from MinHash signatures
 *     (minhash_bands x minhash_rows values) and LSH banding (rows sharing all values of a band); every
 *     candidate is then verified with the exact Jaccard of the two shingle sets, so a reported pair is
 *     always at or above the threshold (a pair at the threshold is found with probability
 *     1 - (1 - J^rows)^bands, e.g. 0.99999995 at J = 0.8 with 32 x 4);
 *   - leakage: eval rows whose normalized input equals a train row's (exact) or is a near duplicate of
 *     one (near);
 *   - tokens (under the model's tokenizer, rendered as data prepare renders them): length percentiles
 *     p50/p90/p99/max before truncation, prompts that would be truncated, texts split into chunks, and
 *     completions that cannot fit data.max_seq_len at all (errors).
 *
 * Output: a summary table and the first validate.show_rows offending rows per check on stdout, and a
 * JSON report (--report PATH, default <out_dir>/validate/report.json) holding every count and the
 * first validate.report_rows offending rows per check. --show N prints the first N train examples as
 * rendered: the text, then every token (id, piece) with a mark on those that carry loss.
 *
 * Exit status: 0 when every gate passes; 1 when a gate fails: bad rows above validate.max_invalid_rows,
 * exact or near duplicates above validate.max_duplicate_rate / max_near_duplicate_rate, leaked eval
 * rows above validate.max_leakage, imbalance above validate.max_imbalance, or any completion that
 * cannot fit; 2 on errors (bad usage, unreadable file or config, unknown model). */
#ifndef SLIM_VALIDATE_H
#define SLIM_VALIDATE_H

#include "config.h"

/* Options of `slimtune data validate` (NULL / 0: not given). */
typedef struct data_validate_opts {
    const char *config, *model_config, *train, *eval, *model, *format, *shape, *report;
    long show;                 /* --show N */
} data_validate_opts;

/* Parses argv (argv[0] = "validate") into *o: SLIM_OK, SLIM_HELP (usage printed) or -1 (lib/cli.h). */
int data_validate_parse_args(data_validate_opts *o, int argc, char **argv);

/* The configuration validate runs with: --config FILE, or the defaults with --model-config FILE's model,
 * data.max_seq_len and validate.*, or the defaults alone; then --train/--eval/--model/--format/--shape
 * over it. Returns 0 (free *cfg with config_free) or -1 with an error (nothing to free). */
int data_validate_config(slim_config *cfg, const data_validate_opts *o);

/* Runs the checks, prints the summary and writes the report. Returns SLIM_OK when every gate passes,
 * SLIM_GATE_FAILED when one fails (report written), -1 with an error. */
int data_validate_run(const slim_config *cfg, const data_validate_opts *o);

/* Entry point: parse, build the config, run; argv[0] is the command name ("validate"). Returns SLIM_OK,
 * SLIM_GATE_FAILED or -1 (exit status 0, 1 or 2, see above). */
int data_validate_main(int argc, char **argv);

#endif
