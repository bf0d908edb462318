/* split.h — deterministic, seeded, stratified, hash-based train/test splits (config data.split).
 *
 * Each good row gets the key h = splitmix64(FNV-1a(seed, normalized input key)) where the input key is
 * reader_example_key() (NFC, case-folded, whitespace-collapsed: what the model reads). Within each
 * stratum (the label for text_label, one stratum for the other shapes) rows are ordered by h, and
 * whole groups of equal h (rows with the same input key) go to test, smallest h first, until the
 * stratum has round(test_fraction * n) test rows (a last group may overshoot by its size - 1).
 * Consequences: the split depends only on the multiset of rows, not on their order or line numbers
 * (reordering a file gives the same split); the same input never lands on both sides; each label keeps
 * its share in both splits; another seed gives another split. Bad rows are not assigned (-1). */
#ifndef SLIM_SPLIT_H
#define SLIM_SPLIT_H

#include <stdint.h>

#include "example.h"

/* Assigns rows[0..n) (good rows only: reason == READ_OK) of the given shape: out[i] = 0 (train),
 * 1 (test) or -1 (bad row). Returns the number of test rows. */
int64_t split_assign(const data_example *rows, int64_t n, int shape, double test_fraction, uint64_t seed,
                     int8_t *out);

/* As split_assign, with a validation split too: within each stratum the smallest hashes go to test as
 * above, the groups after them to val (out[i] = 2) until the stratum has round(val_fraction * n) val
 * rows, so the test rows are those of split_assign and the three splits never share an input. n_val
 * (may be NULL) gets the val rows. Returns the number of test rows. */
int64_t split_assign3(const data_example *rows, int64_t n, int shape, double test_fraction, double val_fraction,
                      uint64_t seed, int8_t *out, int64_t *n_val);

/* The split hash of one good row (see above). */
uint64_t split_row_hash(const data_example *row, int shape, uint64_t seed);

#endif
