/* textmetrics.h — a generated text scored against its reference (textmetrics.c). Internal to eval/.
 *
 * Exact match and token F1 follow the SQuAD evaluation (Rajpurkar et al. 2016, the official v1.1 script;
 * empty answers as in v2.0): both texts normalised (lower case, ASCII punctuation removed, the articles
 * a/an/the removed, whitespace collapsed), exact match when equal, F1 over the multiset of their words.
 * Extraction (references that are JSON objects): the prediction is valid when it parses as a JSON object;
 * per field, a reference field whose value the prediction has (strings compared normalised, other values
 * as JSON) is a true positive, else a false negative; a predicted field the reference lacks or gets
 * wrong is a false positive. */
#ifndef SLIM_EVAL_TEXTMETRICS_H
#define SLIM_EVAL_TEXTMETRICS_H

#include <stdint.h>

/* One JSON field's counts over the examples. */
typedef struct tm_field {
    char name[128];
    int64_t tp, fp, fn, support; /* support: examples whose reference has the field */
} tm_field;

typedef struct tm_fields {
    tm_field *f;
    int n, cap;
} tm_fields;

/* The SQuAD normalisation of s (a fresh string: free()). */
char *tm_normalize(const char *s);
/* Exact match (0/1) and token F1 of pred against ref. */
void tm_score_text(const char *pred, const char *ref, double *exact, double *f1);
/* 1 when s parses as a JSON object. */
int tm_is_json_object(const char *s);
/* Adds the field counts of pred against the JSON object ref to f; returns 1 when pred is a valid JSON
 * object, else 0 (every reference field a false negative). */
int tm_score_json(const char *pred, const char *ref, tm_fields *f);
/* Frees f's fields. */
void tm_fields_free(tm_fields *f);

#endif
