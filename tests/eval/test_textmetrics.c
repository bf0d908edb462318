/* test_textmetrics.c — eval/textmetrics.c on hand-worked cases: the SQuAD normalisation (case,
 * punctuation, articles, whitespace), exact match and token F1 (overlap counted as a multiset, empty
 * answers), and JSON extraction: valid objects, trailing text refused, per-field true positives, false
 * positives and false negatives (missing, wrong and extra fields, strings compared normalised). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "../../eval/textmetrics.h"

static void test_normalize(void) {
    static const char *const cases[][2] = {
        {"The Cat sat.", "cat sat"},
        {"  an   apple, a pear;the end ", "apple pearthe end"}, /* punctuation goes first, as in SQuAD */
        {"theory of A-B", "theory of ab"},
        {"", ""},
        {"The", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *n = tm_normalize(cases[i][0]);
        CHECK(!strcmp(n, cases[i][1]), "normalize(\"%s\") = \"%s\", want \"%s\"", cases[i][0], n, cases[i][1]);
        free(n);
    }
}

static void test_text(void) {
    double em, f1;
    tm_score_text("The cat", "cat.", &em, &f1);
    CHECK(em == 1 && f1 == 1, "\"The cat\" vs \"cat.\": em %g f1 %g", em, f1);
    tm_score_text("big red dog", "red dog", &em, &f1); /* overlap 2: P 2/3, R 1 -> F1 0.8 */
    CHECK(em == 0 && fabs(f1 - 0.8) < 1e-12, "f1 %g, want 0.8", f1);
    tm_score_text("dog dog cat", "dog cat cat", &em, &f1); /* multiset overlap 2 of 3 and 3 -> 2/3 */
    CHECK(fabs(f1 - 2.0 / 3) < 1e-12, "multiset f1 %g, want 2/3", f1);
    tm_score_text("", "", &em, &f1);
    CHECK(em == 1 && f1 == 1, "both empty: em %g f1 %g", em, f1);
    tm_score_text("a", "dog", &em, &f1); /* "a" normalises to nothing */
    CHECK(em == 0 && f1 == 0, "one empty: em %g f1 %g", em, f1);
}

static void test_json(void) {
    tm_fields f = {0};
    const char *ref = "{\"name\": \"Mia\", \"age\": 30, \"city\": \"Paris\"}";
    int v1 = tm_score_json(" {\"name\": \"mia.\", \"age\": 30, \"city\": \"Rome\", \"pet\": \"cat\"} ", ref, &f);
    int v2 = tm_score_json("{\"name\": \"Mia\", \"age\": 31}", ref, &f);
    int v3 = tm_score_json("{\"name\": \"Mia\"}x", ref, &f);  /* trailing text: invalid */
    int v4 = tm_score_json("[\"Mia\"]", ref, &f);            /* not an object */
    CHECK(v1 == 1 && v2 == 1 && v3 == 0 && v4 == 0, "validity %d %d %d %d, want 1 1 0 0", v1, v2, v3, v4);
    CHECK(tm_is_json_object(ref) && !tm_is_json_object("{\"a\": 1} 2") && !tm_is_json_object("\"x\""),
          "tm_is_json_object");
    /* name: tp 2 (normalised "mia." = "Mia"), fn 2 (the invalid ones); age: tp 1, fn 3, fp 1 (31);
     * city: tp 0, fn 4, fp 1 (Rome); pet: fp 1 (extra) */
    static const struct { const char *name; int64_t tp, fp, fn, support; } want[] = {
        {"name", 2, 0, 2, 4}, {"age", 1, 1, 3, 4}, {"city", 0, 1, 4, 4}, {"pet", 0, 1, 0, 0}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const tm_field *x = NULL;
        for (int j = 0; j < f.n; j++)
            if (!strcmp(f.f[j].name, want[i].name)) x = &f.f[j];
        CHECK(x && x->tp == want[i].tp && x->fp == want[i].fp && x->fn == want[i].fn && x->support == want[i].support,
              "field %s: tp %lld fp %lld fn %lld support %lld", want[i].name, x ? (long long)x->tp : -1LL,
              x ? (long long)x->fp : -1LL, x ? (long long)x->fn : -1LL, x ? (long long)x->support : -1LL);
    }
    CHECK(f.n == 4, "%d fields counted, want 4", f.n);
    tm_fields_free(&f);
}

int main(void) {
    test_normalize();
    test_text();
    test_json();
    return tu_finish("textmetrics");
}
