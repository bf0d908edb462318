/* prepare.h — `slimtune data prepare`: raw CSV/JSONL rows -> tokenized HDF5 datasets (dataset.h).
 *
 *   slimtune data prepare --config FILE [--split train|test|all] [--out DIR]
 *
 * For each row: prompt = data.template.prompt with {text} substituted, completion =
 * data.template.completion with {label} substituted; tokens = encode(prompt, BOS, space prefix) +
 * encode(completion, no BOS, no space prefix) + EOS; loss mask 1 on the completion and EOS. Every
 * prompt gets at most data.max_seq_len - (longest completion + EOS over the label set) tokens, the
 * same budget whatever the row's label (so a prompt's length never reveals its label); longer prompts
 * have their {text} shortened (never the completion). Writes <out>/data/train.h5 and
 * <out>/data/test.h5 (out defaults to the config's out_dir). */
#ifndef SLIM_PREPARE_H
#define SLIM_PREPARE_H

/* Entry point: argv[0] is the command name ("prepare"). Returns the process exit status: 0 on success,
 * 1 on failure (message on stderr, no file written), 2 on bad usage. */
int data_prepare_main(int argc, char **argv);

#endif
