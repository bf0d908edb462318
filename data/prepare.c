/* prepare.c — `slimtune data prepare`: reads the raw rows of each split, renders them by shape,
 * tokenizes with the base model's own tokenizer, and writes the HDF5 datasets described in
 * dataset.h. See prepare.h.
 *
 * Truncation (text_label): the prompt budget is data.max_seq_len minus the LONGEST completion + EOS
 * over the whole label set (declared data.labels, else the labels collected from the train file),
 * never the row's own completion: labels tokenize to different lengths (" ham" 2 tokens, " spam" 3),
 * and a budget that followed the row's label would give the same text a label-dependent prompt, from
 * whose length the model could learn the label. When a prompt exceeds its budget, only the variable
 * text is shortened (at a UTF-8 character boundary): a binary search finds the longest prefix of the
 * text whose re-tokenized prompt still fits, so the template's fixed text (e.g. "\nLabel:") and the
 * whole completion are always kept. If even the text_label prompt without text plus the longest
 * completion cannot fit, prepare fails before tokenizing any row (every row would be too long). Rows
 * are tokenized in parallel (OpenMP); output order is source order. */
#define _GNU_SOURCE
#include "prepare.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tokenizer/chat.h"
#include "common.h"
#include "config.h"
#include "dataset.h"
#include "format/gguf.h"
#include "format/model_file.h"
#include "cli.h"
#include "reader.h"
#include "split.h"
#include "tokenizer/tokenizer.h"

#define PREP_SHOW_LINES 3 /* file:line examples shown per bad-row reason */

/* ---- rendering ---- */

static void prep_reserve(prep_rendered *w, int n) {
    if (n <= w->cap) return;
    w->cap = n + 64;
    w->tokens = slim_realloc(w->tokens, (size_t)w->cap * sizeof(int32_t));
    w->mask = slim_realloc(w->mask, (size_t)w->cap);
}

void prep_rendered_free(prep_rendered *w) {
    free(w->tokens);
    free(w->mask);
    free(w->ids);
    free(w->scratch);
    memset(w, 0, sizeof *w);
}

/* Encodes s into *buf (capacity *cap, grown as needed). Returns the token count or -1. */
static int prep_encode(const tokenizer *t, const char *s, size_t n, int add_bos, int space_prefix, int32_t **buf,
                       int *cap) {
    int got = tokenizer_encode(t, s, n, add_bos, space_prefix, *buf, *cap);
    if (got > *cap) {
        *cap = got + 64;
        *buf = slim_realloc(*buf, (size_t)*cap * sizeof(int32_t));
        got = tokenizer_encode(t, s, n, add_bos, space_prefix, *buf, *cap);
    }
    return got;
}

/* Tokens of pre + var[0..k) + post (BOS when the tokenizer adds one) into w->ids. Returns the count or -1. */
static int prep_prompt_tokens(const prep_renderer *r, const char *pre, size_t pre_len, const char *var, size_t k,
                              const char *post, size_t post_len, prep_rendered *w) {
    size_t n = pre_len + k + post_len;
    if (n + 1 > w->scratch_cap) { w->scratch_cap = n + 1; w->scratch = slim_realloc(w->scratch, w->scratch_cap); }
    memcpy(w->scratch, pre, pre_len);
    memcpy(w->scratch + pre_len, var, k);
    memcpy(w->scratch + pre_len + k, post, post_len);
    w->scratch[n] = 0;
    return prep_encode(r->tok, w->scratch, n, r->add_bos, 1, &w->ids, &w->ids_cap);
}

/* Start of the UTF-8 character holding byte k (k itself when it is a boundary). */
static size_t prep_char_start(const char *s, size_t k) {
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
    return k;
}

/* Fits pre + var + post into budget tokens by keeping the longest prefix of var that fits. On return
 * w->ids holds the prompt tokens. Returns their count, -2 when even an empty var does not fit, -1 on
 * a tokenizer error. *full gets the untruncated count when full != NULL. */
static int prep_fit_prompt(const prep_renderer *r, const char *pre, size_t pre_len, const char *var, size_t var_len,
                           const char *post, size_t post_len, int budget, prep_rendered *w, int *truncated, int *full) {
    size_t k = var_len;
    int cut = 0;
    if (k > r->max_text_bytes) { k = prep_char_start(var, r->max_text_bytes); cut = 1; }
    if (full) {
        int nf = prep_prompt_tokens(r, pre, pre_len, var, var_len, post, post_len, w);
        if (nf < 0) return -1;
        *full = nf;
        if (!cut && nf <= budget) return nf;
    }
    int np = prep_prompt_tokens(r, pre, pre_len, var, k, post, post_len, w);
    if (np < 0) return -1;
    if (cut) *truncated = 1;
    if (np <= budget) return np;
    *truncated = 1;
    /* longest prefix [0, lo) that fits: hi never does */
    size_t lo = 0, hi = k;
    int nb = prep_prompt_tokens(r, pre, pre_len, var, 0, post, post_len, w);
    if (nb < 0) return -1;
    if (nb > budget) return -2;
    for (;;) {
        size_t next = lo + 1;
        while (next < hi && ((unsigned char)var[next] & 0xC0) == 0x80) next++;
        if (next >= hi) break;
        size_t mid = prep_char_start(var, lo + (hi - lo) / 2);
        if (mid <= lo) mid = next;
        int m = prep_prompt_tokens(r, pre, pre_len, var, mid, post, post_len, w);
        if (m < 0) return -1;
        if (m <= budget) lo = mid;
        else hi = mid;
    }
    return prep_prompt_tokens(r, pre, pre_len, var, lo, post, post_len, w);
}

/* out = w->ids[0..np) (prompt, mask 0) + comp[0..nc) (mask 1). */
static void prep_emit(prep_rendered *w, int np, const int32_t *comp, int nc) {
    prep_reserve(w, np + nc);
    memcpy(w->tokens, w->ids, (size_t)np * sizeof(int32_t));
    memcpy(w->tokens + np, comp, (size_t)nc * sizeof(int32_t));
    memset(w->mask, 0, (size_t)np);
    memset(w->mask + np, 1, (size_t)nc);
    w->n_tokens = np + nc;
    w->prompt_len = np;
}

static int prep_find_label(char **names, int n, const char *label) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, cmp = strcmp(names[mid], label);
        if (cmp == 0) return mid;
        if (cmp < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

static int prep_render_text_label(const prep_renderer *r, const data_example *e, int want_full, prep_rendered *w) {
    int label = prep_find_label(r->label_names, r->n_labels, e->label);
    if (label < 0) { /* the reader checks the label set; kept so a row can never index out of range */
        w->bad = READ_UNKNOWN_LABEL;
        snprintf(w->message, sizeof w->message, "label \"%.60s\" is not in the label set", e->label);
        return 0;
    }
    w->label = label;
    int full = 0;
    int np = prep_fit_prompt(r, r->pre, r->pre_len, e->text, e->text_len, r->post, r->post_len, r->prompt_budget, w,
                             &w->truncated, want_full ? &full : NULL);
    if (np == -1) return -1;
    if (np == -2) { /* prep_renderer_init refuses this; kept so a row can never overflow */
        w->bad = READ_TOO_LONG;
        snprintf(w->message, sizeof w->message,
                 "the longest completion (label \"%.40s\") needs %d tokens and the prompt without text %d: more "
                 "than data.max_seq_len = %d",
                 r->max_comp_name, r->max_comp_len, r->base_len, r->max_seq_len);
        return 0;
    }
    prep_emit(w, np, r->comp_ids[label], r->comp_len[label]);
    w->full_len = want_full ? full + r->comp_len[label] : w->n_tokens;
    return 0;
}

/* prompt_completion and alpaca: the completion is the label slot + EOS, encoded without BOS or space prefix. */
static int prep_render_prompted(const prep_renderer *r, const data_example *e, int want_full, prep_rendered *w) {
    const tokenizer *t = r->tok;
    /* the completion first (into w->tokens as a scratch, moved after the prompt below) */
    int32_t *comp = NULL;
    int ccap = 0;
    int nc = prep_encode(t, e->label, e->label_len, 0, 0, &comp, &ccap);
    if (nc < 0) { free(comp); return -1; }
    comp = slim_realloc(comp, (size_t)(nc + 1) * sizeof(int32_t));
    comp[nc++] = t->eos_id;
    int budget = r->max_seq_len - nc, full = 0, np;
    if (r->shape == SHAPE_PROMPT_COMPLETION) {
        np = prep_fit_prompt(r, "", 0, e->text, e->text_len, "", 0, budget, w, &w->truncated, want_full ? &full : NULL);
    } else if (e->input_len == 0) {
        np = prep_fit_prompt(r, PREP_ALPACA_HEAD, strlen(PREP_ALPACA_HEAD), e->text, e->text_len, PREP_ALPACA_RESPONSE,
                             strlen(PREP_ALPACA_RESPONSE), budget, w, &w->truncated, want_full ? &full : NULL);
    } else {
        /* cut the input first; if even no input is too long, cut the instruction and drop the input */
        size_t hl = strlen(PREP_ALPACA_HEAD_INPUT), il = strlen(PREP_ALPACA_INPUT);
        char *pre = slim_malloc(hl + e->text_len + il + 1);
        memcpy(pre, PREP_ALPACA_HEAD_INPUT, hl);
        memcpy(pre + hl, e->text, e->text_len);
        memcpy(pre + hl + e->text_len, PREP_ALPACA_INPUT, il);
        np = prep_fit_prompt(r, pre, hl + e->text_len + il, e->input, e->input_len, PREP_ALPACA_RESPONSE,
                             strlen(PREP_ALPACA_RESPONSE), budget, w, &w->truncated, want_full ? &full : NULL);
        free(pre);
        if (np == -2) {
            static const char post[] = PREP_ALPACA_INPUT PREP_ALPACA_RESPONSE;
            np = prep_fit_prompt(r, PREP_ALPACA_HEAD_INPUT, hl, e->text, e->text_len, post, sizeof post - 1, budget, w,
                                 &w->truncated, NULL);
            w->truncated = 1;
        }
    }
    if (np == -1) { free(comp); return -1; }
    if (np == -2) {
        w->bad = READ_TOO_LONG;
        snprintf(w->message, sizeof w->message,
                 "the %s needs %d tokens with EOS, and with the prompt's fixed text (even with its variable text "
                 "cut to nothing) it cannot fit data.max_seq_len = %d",
                 r->shape == SHAPE_ALPACA ? "output" : "completion", nc, r->max_seq_len);
        w->full_len = want_full ? full + nc : nc;
        free(comp);
        return 0;
    }
    prep_emit(w, np, comp, nc);
    w->full_len = want_full ? full + nc : w->n_tokens;
    free(comp);
    return 0;
}

static int prep_render_text(const prep_renderer *r, const data_example *e, prep_rendered *w) {
    int n = prep_encode(r->tok, e->text, e->text_len, r->add_bos, 1, &w->ids, &w->ids_cap);
    if (n < 0) return -1;
    w->ids = slim_realloc(w->ids, (size_t)(n + 1) * sizeof(int32_t));
    w->ids_cap = n + 1;
    w->ids[n++] = r->tok->eos_id;
    prep_reserve(w, n);
    memcpy(w->tokens, w->ids, (size_t)n * sizeof(int32_t));
    memset(w->mask, 1, (size_t)n);
    w->mask[0] = 0; /* the first token has no position to be predicted from */
    w->n_tokens = n;
    w->prompt_len = 1;
    w->full_len = n;
    w->truncated = 0;
    return 0;
}

/* chat: chat_encode, then the first max_seq_len tokens when it is longer. */
static int prep_render_chat(const prep_renderer *r, const data_example *e, prep_rendered *w) {
    chat_message *m = slim_malloc((size_t)(e->n_turns ? e->n_turns : 1) * sizeof(chat_message));
    for (int i = 0; i < e->n_turns; i++) {
        m[i].role = example_role_name(e->turns[i].role);
        m[i].content = e->turns[i].content;
    }
    int32_t *ids = NULL;
    uint8_t *mask = NULL;
    int n = 0;
    int rc = chat_encode(r->tok, r->chat_tmpl, m, e->n_turns, r->chat_loss, &ids, &mask, &n);
    free(m);
    if (rc) { /* the template refuses this conversation (the tokens were checked at init) */
        w->bad = READ_BAD_ROLE;
        snprintf(w->message, sizeof w->message, "chat template %s: %s", chat_template_name(r->chat_tmpl),
                 slim_last_error());
        return 0;
    }
    w->full_len = n;
    int keep = n;
    if (keep > r->max_seq_len) { keep = r->max_seq_len; w->truncated = 1; }
    int first = 0;
    while (first < keep && !mask[first]) first++;
    if (first == keep) {
        w->bad = READ_TOO_LONG;
        snprintf(w->message, sizeof w->message,
                 "the first assistant token is at position %d of %d: nothing to learn within data.max_seq_len = %d",
                 first, n, r->max_seq_len);
        free(ids);
        free(mask);
        return 0;
    }
    prep_reserve(w, keep);
    memcpy(w->tokens, ids, (size_t)keep * sizeof(int32_t));
    memcpy(w->mask, mask, (size_t)keep);
    w->mask[0] = 0;
    w->n_tokens = keep;
    w->prompt_len = first;
    free(ids);
    free(mask);
    return 0;
}

int prep_render(const prep_renderer *r, const data_example *e, int want_full_len, prep_rendered *w) {
    w->n_tokens = w->prompt_len = w->full_len = w->truncated = w->bad = 0;
    w->label = -1;
    w->message[0] = 0;
    switch (r->shape) {
    case SHAPE_TEXT_LABEL: return prep_render_text_label(r, e, want_full_len, w);
    case SHAPE_PROMPT_COMPLETION:
    case SHAPE_ALPACA: return prep_render_prompted(r, e, want_full_len, w);
    case SHAPE_TEXT: return prep_render_text(r, e, w);
    case SHAPE_CHAT: return prep_render_chat(r, e, w);
    default: return slim_set_error("prep_render: shape %s cannot be rendered", example_shape_name(r->shape));
    }
}

int64_t prep_text_chunks(int64_t n, int max_seq_len, int add_bos) {
    if (n <= max_seq_len) return 1;
    int64_t step = max_seq_len - (add_bos ? 1 : 0);
    return 1 + (n - max_seq_len + step - 1) / step;
}

const char *prep_prompt_template(const slim_config *cfg, int shape) {
    switch (shape) {
    case SHAPE_PROMPT_COMPLETION: return "{prompt}";
    case SHAPE_ALPACA: return PREP_ALPACA_HEAD_INPUT "{instruction}" PREP_ALPACA_INPUT "{input}" PREP_ALPACA_RESPONSE;
    case SHAPE_TEXT: return "{text}";
    case SHAPE_CHAT: return cfg->chat_template;
    default: return cfg->prompt_template;
    }
}

const char *prep_completion_template(const slim_config *cfg, int shape) {
    switch (shape) {
    case SHAPE_PROMPT_COMPLETION: return "{completion}";
    case SHAPE_ALPACA: return "{output}";
    case SHAPE_TEXT: return "";
    case SHAPE_CHAT: return cfg->chat_loss_last ? "chat_loss: last" : "chat_loss: all";
    default: return cfg->completion_template;
    }
}

static uint64_t prep_fp_str(uint64_t h, const char *s) {
    h = slim_fnv1a(h, s ? s : "", s ? strlen(s) + 1 : 1);
    return h;
}

uint64_t prep_config_fingerprint(const slim_config *cfg, int shape, char **names, int n_names) {
    uint64_t h = SLIM_FNV_INIT;
    h = prep_fp_str(h, "slimtune-data-1");
    h = prep_fp_str(h, example_shape_name(shape));
    h = prep_fp_str(h, cfg->format);
    const char *cols[] = {cfg->text_column,  cfg->label_column, cfg->prompt_column, cfg->completion_column,
                          cfg->instruction_column, cfg->input_column, cfg->output_column, cfg->messages_column};
    for (int i = 0; i < 8; i++) h = prep_fp_str(h, cols[i]);
    h = prep_fp_str(h, prep_prompt_template(cfg, shape));
    h = prep_fp_str(h, prep_completion_template(cfg, shape));
    for (int i = 0; i < n_names; i++) h = prep_fp_str(h, names[i]);
    int32_t v[4] = {cfg->max_seq_len, cfg->replace_bad_utf8, cfg->has_split, cfg->split_seed};
    h = slim_fnv1a(h, v, sizeof v);
    double f = cfg->has_split ? cfg->split_test_fraction : 0.0;
    h = slim_fnv1a(h, &f, sizeof f);
    if (cfg->has_split && cfg->split_val_fraction > 0) /* only then: older fingerprints stay as they were */
        h = slim_fnv1a(h, &cfg->split_val_fraction, sizeof cfg->split_val_fraction);
    return h;
}

int prep_renderer_init(prep_renderer *r, const tokenizer *t, const slim_config *cfg, int shape, char **names,
                       int n_names, const char *chat_jinja) {
    memset(r, 0, sizeof *r);
    r->tok = t;
    r->shape = shape;
    r->max_seq_len = cfg->max_seq_len;
    r->add_bos = t->add_bos && t->bos_id >= 0;
    const char *cfg_path = cfg->path ? cfg->path : "config";
    char why[512];
    if (shape == SHAPE_CHAT) {
        if (strcmp(cfg->chat_template, "auto") == 0) {
            if (!chat_jinja || !*chat_jinja)
                return slim_set_error("%s: data.chat_template is auto, but the model %s has no tokenizer.chat_template: "
                                      "the chat format needs a chat template; set data.chat_template (chatml, llama3, "
                                      "llama2, ...)",
                                      cfg_path, cfg->model ? cfg->model : "(none)");
            r->chat_tmpl = chat_template_detect(chat_jinja);
            if (r->chat_tmpl < 0) {
                snprintf(why, sizeof why, "%s", slim_last_error());
                return slim_set_error("%s: data.chat_template auto: %s", cfg_path, why);
            }
        } else {
            r->chat_tmpl = chat_template_from_name(cfg->chat_template);
            if (r->chat_tmpl < 0) {
                snprintf(why, sizeof why, "%s", slim_last_error());
                return slim_set_error("%s: data.chat_template: %s", cfg_path, why);
            }
        }
        r->chat_loss = cfg->chat_loss_last ? CHAT_LOSS_LAST_ASSISTANT : CHAT_LOSS_ALL_ASSISTANT;
        /* a probe conversation: the template's markers must be tokens of this tokenizer */
        chat_message probe[2] = {{"user", "Hi"}, {"assistant", "Hello"}};
        int32_t *ids = NULL;
        uint8_t *mask = NULL;
        int n = 0;
        int rc = chat_encode(t, r->chat_tmpl, probe, 2, r->chat_loss, &ids, &mask, &n);
        free(ids);
        free(mask);
        if (rc) {
            snprintf(why, sizeof why, "%s", slim_last_error());
            return slim_set_error("%s: data.chat_template %s: %s", cfg_path, chat_template_name(r->chat_tmpl), why);
        }
        return 0;
    }
    if (shape < SHAPE_TEXT_LABEL || shape >= SHAPE_N) return slim_set_error("unknown data shape %d", shape);
    if (t->eos_id < 0) return slim_set_error("%s: the tokenizer has no EOS token", cfg->model);
    /* every token decodes to at most max_piece bytes, so a text of (max_seq_len + 1) * max_piece bytes
     * already needs more than max_seq_len tokens: longer texts are cut there before the search */
    size_t max_piece = 1;
    for (int i = 0; i < t->n_vocab; i++)
        if ((size_t)t->piece_lens[i] > max_piece) max_piece = (size_t)t->piece_lens[i];
    r->max_text_bytes = ((size_t)r->max_seq_len + 1) * max_piece;
    if (shape != SHAPE_TEXT_LABEL) return 0;

    const char *p = strstr(cfg->prompt_template, "{text}");
    if (!p) return slim_set_error("%s: data.template.prompt: no {text}", cfg->path);
    r->pre = cfg->prompt_template;
    r->pre_len = (size_t)(p - cfg->prompt_template);
    r->post = p + 6;
    r->post_len = strlen(r->post);
    r->completion_template = cfg->completion_template;
    if (n_names < 1) return slim_set_error("%s: the label set is empty", cfg->path);
    r->n_labels = n_names;
    r->label_names = names;
    r->comp_ids = slim_calloc((size_t)n_names, sizeof(int32_t *));
    r->comp_len = slim_calloc((size_t)n_names, sizeof(int));
    const char *ct = cfg->completion_template, *lp = strstr(ct, "{label}");
    if (!lp) return slim_set_error("%s: data.template.completion: no {label}", cfg->path);
    for (int i = 0; i < n_names; i++) {
        size_t a = (size_t)(lp - ct), l = strlen(names[i]), b = strlen(lp + 7);
        char *s = slim_malloc(a + l + b + 1);
        memcpy(s, ct, a);
        memcpy(s + a, names[i], l);
        memcpy(s + a + l, lp + 7, b + 1);
        int32_t *ids = NULL;
        int cap = 0;
        int n = prep_encode(t, s, a + l + b, 0, 0, &ids, &cap);
        free(s);
        if (n < 0) { free(ids); return -1; }
        ids = slim_realloc(ids, (size_t)(n + 1) * sizeof(int32_t));
        ids[n] = t->eos_id;
        r->comp_ids[i] = ids;
        r->comp_len[i] = n + 1;
    }
    int max_label = 0;
    for (int i = 0; i < n_names; i++)
        if (r->comp_len[i] > r->comp_len[max_label]) max_label = i;
    r->max_comp_len = r->comp_len[max_label];
    r->max_comp_name = names[max_label];
    prep_rendered w;
    memset(&w, 0, sizeof w);
    r->base_len = prep_prompt_tokens(r, r->pre, r->pre_len, "", 0, r->post, r->post_len, &w);
    prep_rendered_free(&w);
    if (r->base_len < 0) return -1;
    r->prompt_budget = r->max_seq_len - r->max_comp_len;
    if (r->base_len > r->prompt_budget)
        return slim_set_error("%s: data.max_seq_len = %d cannot hold the prompt without text (%d tokens) plus the "
                              "longest completion, for label \"%.60s\" (%d tokens with EOS): every row's prompt is cut "
                              "to leave room for the longest completion, so no row would fit; raise data.max_seq_len "
                              "or shorten the labels/templates",
                              cfg->path, r->max_seq_len, r->base_len, r->max_comp_name, r->max_comp_len);
    return 0;
}

void prep_renderer_free(prep_renderer *r) {
    for (int i = 0; i < r->n_labels && r->comp_ids; i++) free(r->comp_ids[i]);
    free(r->comp_ids);
    free(r->comp_len);
    memset(r, 0, sizeof *r);
}

/* ---- the command ---- */

/* One rendered row kept for assembly (tokens copied out of the thread's buffers). */
typedef struct prep_example {
    int32_t *tokens;
    uint8_t *mask;
    int n_tokens, prompt_len, label, truncated;
    int bad;                   /* READ_TOO_LONG when the completion cannot fit */
    int fatal;                 /* tokenizer error */
    char message[200];
} prep_example;

/* Per-split state and statistics. */
typedef struct prep_split {
    const char *name;          /* "train" / "test" / "val" */
    const char *source;        /* data file */
    data_reader *rd;           /* rows (shared by both splits when splitting data.train) */
    const int8_t *assign;      /* NULL, or per row: 0 train, 1 test, 2 val, -1 bad */
    int8_t want;               /* the assign value of this split */
    int64_t n_read, n_bad, n_truncated, n_chunked;
    int64_t bad_by_reason[READ_N_REASONS];
    int64_t shown_line[READ_N_REASONS][PREP_SHOW_LINES];
    char shown_msg[READ_N_REASONS][PREP_SHOW_LINES][200];
    slim_dataset ds;
    int max_len;
} prep_split;

static void prep_usage(FILE *f) {
    fprintf(f,
            "usage: slimtune data prepare --config FILE [--split train|test|val|all] [--out DIR]\n"
            "\n"
            "Renders the config's data.train / data.test / data.val files (CSV, TSV or JSONL; shapes text_label,\n"
            "prompt_completion, alpaca, chat, text) with the base model's tokenizer and writes\n"
            "<out>/data/train.h5, test.h5 (with data.split and no data.test, both from data.train) and val.h5\n"
            "(data.val, or data.split.val_fraction of data.train).\n"
            "  --config FILE   run configuration (JSON), required\n"
            "  --split S       train, test, val or all (default all: every split the config names)\n"
            "  --out DIR       output directory (default: the config's out_dir)\n"
            "  --help          this text\n");
}

static void prep_note_bad(prep_split *s, int reason, int64_t line, const char *msg) {
    int64_t k = s->bad_by_reason[reason]++;
    s->n_bad++;
    if (k < PREP_SHOW_LINES) {
        s->shown_line[reason][k] = line;
        snprintf(s->shown_msg[reason][k], sizeof s->shown_msg[reason][k], "%s", msg);
    }
}

static int prep_cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Whether row i belongs to split s (bad rows belong to train when splitting). */
static int prep_in_split(const prep_split *s, int64_t i) {
    if (!s->assign) return 1;
    int8_t a = s->assign[i];
    return a == s->want || (a < 0 && s->want == 0);
}

/* Renders the rows of split s in parallel into ex[] (tokens copied out of the thread's buffers). */
static void prep_render_rows(const prep_split *s, const prep_renderer *rr, int n_threads, prep_example *ex) {
    const data_reader *rd = s->rd;
    int64_t n = rd->n_rows;
#pragma omp parallel num_threads(n_threads)
    {
        prep_rendered w;
        memset(&w, 0, sizeof w);
#pragma omp for schedule(dynamic, 8)
        for (int64_t i = 0; i < n; i++) {
            const reader_row *row = &rd->rows[i];
            if (row->reason != READ_OK || !prep_in_split(s, i)) continue;
            prep_example *e = &ex[i];
            if (prep_render(rr, row, 0, &w)) {
                e->fatal = 1;
                snprintf(e->message, sizeof e->message, "%s", slim_last_error());
                continue;
            }
            e->bad = w.bad;
            if (w.bad) { snprintf(e->message, sizeof e->message, "%s", w.message); continue; }
            e->n_tokens = w.n_tokens;
            e->prompt_len = w.prompt_len;
            e->label = w.label;
            e->truncated = w.truncated;
            e->tokens = slim_malloc((size_t)w.n_tokens * sizeof(int32_t));
            e->mask = slim_malloc((size_t)w.n_tokens);
            memcpy(e->tokens, w.tokens, (size_t)w.n_tokens * sizeof(int32_t));
            memcpy(e->mask, w.mask, (size_t)w.n_tokens);
        }
        prep_rendered_free(&w);
    }
}

/* Counts the split's rows (read, bad by reason, truncated, chunked) and sizes its dataset: examples in
 * *n_ex and tokens in *n_tok. Returns 0, or -1 naming the first row the tokenizer failed on. */
static int prep_tally(prep_split *s, const prep_renderer *rr, const prep_example *ex, int L, int64_t *n_ex,
                      int64_t *n_tok) {
    const data_reader *rd = s->rd;
    int text = rr->shape == SHAPE_TEXT, fatal = 0;
    *n_ex = *n_tok = 0;
    for (int64_t i = 0; i < rd->n_rows; i++) {
        if (!prep_in_split(s, i)) continue;
        const reader_row *row = &rd->rows[i];
        s->n_read++;
        if (ex[i].fatal && !fatal) {
            fatal = slim_set_error("%s:%lld: tokenizer failed: %s", s->source, (long long)row->line, ex[i].message);
        } else if (row->reason != READ_OK) {
            prep_note_bad(s, row->reason, row->line, row->message);
        } else if (ex[i].bad) {
            prep_note_bad(s, ex[i].bad, row->line, ex[i].message);
        } else {
            int64_t nc = text ? prep_text_chunks(ex[i].n_tokens, L, rr->add_bos) : 1;
            *n_ex += nc;
            *n_tok += ex[i].n_tokens + (nc - 1) * (rr->add_bos ? 1 : 0);
            s->n_chunked += nc > 1;
            s->n_truncated += ex[i].truncated;
        }
    }
    return fatal;
}

/* Copies the good examples of split s into s->ds (allocated for n_ex examples and n_tok tokens); text:
 * chunks of at most L tokens, each later chunk opening with BOS; other shapes: one example a row. */
static void prep_fill_examples(prep_split *s, const prep_renderer *rr, const prep_example *ex, int L, int64_t n_ex,
                               int64_t n_tok) {
    slim_dataset *d = &s->ds;
    const data_reader *rd = s->rd;
    int text = rr->shape == SHAPE_TEXT;
    d->n_examples = n_ex;
    d->n_tokens = n_tok;
    d->tokens = slim_malloc((size_t)(n_tok ? n_tok : 1) * sizeof(int32_t));
    d->loss_mask = slim_malloc((size_t)(n_tok ? n_tok : 1));
    d->offsets = slim_malloc((size_t)(n_ex + 1) * sizeof(int64_t));
    d->prompt_len = slim_malloc((size_t)(n_ex ? n_ex : 1) * sizeof(int32_t));
    d->labels = slim_malloc((size_t)(n_ex ? n_ex : 1) * sizeof(int32_t));
    d->source_line = slim_malloc((size_t)(n_ex ? n_ex : 1) * sizeof(int64_t));
    int64_t e = 0, at = 0;
    d->offsets[0] = 0;
    for (int64_t i = 0; i < rd->n_rows; i++) {
        if (!prep_in_split(s, i) || rd->rows[i].reason != READ_OK || ex[i].bad) continue;
        const prep_example *x = &ex[i];
        int64_t pos = 0;
        while (pos < x->n_tokens) {
            int bos = pos > 0 && rr->add_bos;
            int64_t take = (text ? L - bos : x->n_tokens);
            if (take > x->n_tokens - pos) take = x->n_tokens - pos;
            int64_t start = at;
            if (bos) { d->tokens[at] = rr->tok->bos_id; d->loss_mask[at] = 0; at++; }
            memcpy(d->tokens + at, x->tokens + pos, (size_t)take * sizeof(int32_t));
            memcpy(d->loss_mask + at, x->mask + pos, (size_t)take);
            d->loss_mask[start] = 0; /* never a target: nothing precedes it */
            at += take;
            pos += take;
            d->offsets[e + 1] = at;
            d->prompt_len[e] = text ? 1 : x->prompt_len;
            d->labels[e] = x->label;
            d->source_line[e] = rd->rows[i].line;
            if (at - start > s->max_len) s->max_len = (int)(at - start);
            e++;
        }
    }
    for (int64_t i = 0; i < at; i++) d->n_loss_tokens += d->loss_mask[i];
}

/* Sets the provenance attributes of s->ds (dataset.h): labels, fingerprints, templates, source, split rule. */
static void prep_fill_provenance(prep_split *s, const prep_renderer *rr, const slim_config *cfg, char **names,
                                 int n_names, uint64_t cfg_fp) {
    slim_dataset *d = &s->ds;
    d->n_labels = n_names;
    d->label_names = slim_malloc((size_t)(n_names ? n_names : 1) * sizeof(char *));
    for (int i = 0; i < n_names; i++) d->label_names[i] = slim_strdup(names[i]);
    d->tokenizer_fingerprint = rr->tok->fingerprint;
    d->config_fingerprint = cfg_fp;
    d->model = slim_strdup(cfg->model);
    d->shape = slim_strdup(example_shape_name(rr->shape));
    d->prompt_template = slim_strdup(rr->shape == SHAPE_CHAT ? chat_template_name(rr->chat_tmpl)
                                                             : prep_prompt_template(cfg, rr->shape));
    d->completion_template = slim_strdup(prep_completion_template(cfg, rr->shape));
    d->source_file = slim_strdup(s->source);
    d->source_sha256 = slim_strdup(s->rd->sha256);
    d->source_bytes = (int64_t)s->rd->size;
    d->split = slim_strdup(s->name);
    char rule[200];
    const char *strat = rr->shape == SHAPE_TEXT_LABEL ? "label" : "none";
    if (s->assign && cfg->split_val_fraction > 0)
        snprintf(rule, sizeof rule, "hash: seed=%d test_fraction=%g val_fraction=%g stratified=%s", cfg->split_seed,
                 cfg->test_file ? 0.0 : cfg->split_test_fraction, cfg->split_val_fraction, strat);
    else if (s->assign)
        snprintf(rule, sizeof rule, "hash: seed=%d test_fraction=%g stratified=%s", cfg->split_seed,
                 cfg->split_test_fraction, strat);
    else
        snprintf(rule, sizeof rule, "file");
    d->split_rule = slim_strdup(rule);
    d->max_seq_len = cfg->max_seq_len;
    d->n_truncated = s->n_truncated;
    d->n_chunked = s->n_chunked;
    d->n_bad_rows = s->n_bad;
    d->n_rows = s->n_read;
}

/* Tokenizes the rows of split s and fills s->ds (label_names are copied from names). */
static int prep_build_split(prep_split *s, const prep_renderer *rr, const slim_config *cfg, char **names, int n_names,
                            uint64_t cfg_fp, int n_threads) {
    int64_t n = s->rd->n_rows, n_ex, n_tok;
    prep_example *ex = slim_calloc((size_t)(n ? n : 1), sizeof(prep_example));
    prep_render_rows(s, rr, n_threads, ex);
    int fatal = prep_tally(s, rr, ex, cfg->max_seq_len, &n_ex, &n_tok);
    if (!fatal) {
        prep_fill_examples(s, rr, ex, cfg->max_seq_len, n_ex, n_tok);
        prep_fill_provenance(s, rr, cfg, names, n_names, cfg_fp);
    }
    for (int64_t i = 0; i < n; i++) { free(ex[i].tokens); free(ex[i].mask); }
    free(ex);
    return fatal;
}

/* Prints the split's summary on stderr. */
static void prep_print_summary(const prep_split *s) {
    const slim_dataset *d = &s->ds;
    double mean = d->n_examples ? (double)d->n_tokens / (double)d->n_examples : 0.0;
    fprintf(stderr,
            "data prepare: %s: %s: %lld rows read, %lld bad, %lld examples, %lld truncated, %lld tokens, "
            "length mean %.1f max %d\n",
            s->name, s->source, (long long)s->n_read, (long long)s->n_bad, (long long)d->n_examples,
            (long long)s->n_truncated, (long long)d->n_tokens, mean, s->max_len);
    if (s->n_chunked)
        fprintf(stderr, "  %lld long texts split into chunks of at most data.max_seq_len = %d tokens\n",
                (long long)s->n_chunked, d->max_seq_len);
    for (int r = 1; r < READ_N_REASONS; r++) {
        if (!s->bad_by_reason[r]) continue;
        fprintf(stderr, "  %lld bad rows: %s\n", (long long)s->bad_by_reason[r], reader_reason_name(r));
        for (int k = 0; k < PREP_SHOW_LINES && k < s->bad_by_reason[r]; k++)
            fprintf(stderr, "    %s:%lld: %s\n", s->source, (long long)s->shown_line[r][k], s->shown_msg[r][k]);
        if (s->bad_by_reason[r] > PREP_SHOW_LINES)
            fprintf(stderr, "    ... and %lld more\n", (long long)(s->bad_by_reason[r] - PREP_SHOW_LINES));
    }
}

/* Checks the split against data.max_bad_rows and requires at least one example. */
static int prep_check_split(const prep_split *s, const slim_config *cfg) {
    if (s->n_read == 0) return slim_set_error("%s: %s split: no data rows", s->source, s->name);
    double frac = (double)s->n_bad / (double)s->n_read;
    if (frac > cfg->max_bad_rows)
        return slim_set_error("%s: %s split: %lld of %lld rows are bad (%.2f%%), more than data.max_bad_rows = "
                              "%.2f%%; nothing written",
                              s->source, s->name, (long long)s->n_bad, (long long)s->n_read, 100.0 * frac,
                              100.0 * cfg->max_bad_rows);
    if (s->ds.n_examples == 0) return slim_set_error("%s: %s split: no usable rows", s->source, s->name);
    return 0;
}

int prep_option(const char *cmd, int argc, char **argv, int *i, const char *const *names, int n_names,
                const char **value) {
    const char *a = argv[*i];
    for (int k = 0; k < n_names; k++) {
        size_t n = strlen(names[k]);
        if (strcmp(a, names[k]) == 0) {
            if (*i + 1 >= argc) return slim_bad_option(cmd, a);
            *value = argv[++*i];
            return k;
        }
        if (strncmp(a, names[k], n) == 0 && a[n] == '=') {
            *value = a + n + 1;
            return k;
        }
    }
    return slim_bad_option(cmd, a);
}

int data_prepare_parse_args(data_prepare_opts *o, int argc, char **argv) {
    static const char *const names[] = {"--config", "--split", "--out"};
    *o = (data_prepare_opts){.config = NULL, .split = "all", .out = NULL};
    const char **dst[] = {&o->config, &o->split, &o->out};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) { prep_usage(stdout); return SLIM_HELP; }
        const char *v;
        int k = prep_option("data prepare", argc, argv, &i, names, 3, &v);
        if (k < 0) return -1;
        *dst[k] = v;
    }
    if (!o->config) return slim_set_error("--config FILE is required");
    if (strcmp(o->split, "train") && strcmp(o->split, "test") && strcmp(o->split, "val") && strcmp(o->split, "all"))
        return slim_set_error("--split must be train, test, val or all, not \"%s\"", o->split);
    return SLIM_OK;
}

void prep_reader_opts(reader_opts *o, const slim_config *cfg, int shape, char **names, int n_names) {
    memset(o, 0, sizeof *o);
    o->format = cfg->format;
    o->shape = shape;
    const char *cols[COL_N] = {cfg->text_column,         cfg->label_column, cfg->prompt_column,
                               cfg->completion_column,   cfg->instruction_column, cfg->input_column,
                               cfg->output_column,       cfg->messages_column};
    for (int k = 0; k < COL_N; k++) o->columns[k] = cols[k];
    o->labels = (const char *const *)names;
    o->n_labels = n_names;
    o->replace_bad_utf8 = cfg->replace_bad_utf8;
}

char **prep_declared_labels(const slim_config *cfg, int *n) {
    *n = cfg->n_labels;
    if (cfg->n_labels <= 0) { *n = 0; return NULL; }
    char **names = slim_malloc((size_t)*n * sizeof(char *));
    for (int i = 0; i < *n; i++) names[i] = cfg->labels[i];
    qsort(names, (size_t)*n, sizeof(char *), prep_cmp_str);
    return names;
}

char **prep_train_labels(const data_reader *rd, int *n) {
    char **names = slim_malloc(sizeof(char *) * (size_t)(rd->n_rows + 1));
    int m = 0;
    for (int64_t i = 0; i < rd->n_rows; i++)
        if (rd->rows[i].reason == READ_OK) names[m++] = rd->rows[i].label;
    qsort(names, (size_t)m, sizeof(char *), prep_cmp_str);
    int u = 0;
    for (int i = 0; i < m; i++)
        if (u == 0 || strcmp(names[u - 1], names[i]) != 0) names[u++] = names[i];
    *n = u;
    return names;
}

#define PREP_N_SPLITS 3

/* Everything data_prepare_run opens and builds (freed by prep_state_free). */
typedef struct prep_state {
    gguf_file g;
    tokenizer tok;
    prep_renderer rr;
    data_reader rds[PREP_N_SPLITS];    /* the files data.train, data.test, data.val */
    prep_split sp[PREP_N_SPLITS];      /* train, test, val */
    int opened[PREP_N_SPLITS], have_gguf, have_tok, have_rr;
    int want[PREP_N_SPLITS];           /* the splits to write */
    int from_train[PREP_N_SPLITS];     /* test / val carved out of data.train by data.split */
    int splitting;                     /* some split is carved out of data.train */
    int shape;
    int8_t *assign;
    char **names;              /* the label set (strings of cfg or of the train reader) */
    int n_names;
    char paths[PREP_N_SPLITS][4200];
    int written[PREP_N_SPLITS];
} prep_state;

static const char *const prep_split_names[PREP_N_SPLITS] = {"train", "test", "val"};

/* The label set of text_label rows when data.labels is not declared: the train file's good rows'. */
static int prep_collect_labels(prep_state *st, const char *train_file) {
    free(st->names);
    st->names = prep_train_labels(&st->rds[0], &st->n_names);
    if (st->n_names == 0) {
        const reader_row *bad = NULL;
        for (int64_t i = 0; i < st->rds[0].n_rows && !bad; i++)
            if (st->rds[0].rows[i].reason != READ_OK) bad = &st->rds[0].rows[i];
        if (bad)
            return slim_set_error("%s: no good rows to take the label set from: all %lld rows are bad, the first "
                                  "%s:%lld: %s",
                                  train_file, (long long)st->rds[0].n_rows, train_file, (long long)bad->line,
                                  bad->message);
        return slim_set_error("%s: no labelled rows to take the label set from", train_file);
    }
    if (st->n_names > SLIM_MAX_LABELS)
        return slim_set_error("%s: %d distinct labels (more than %d): is data.columns.label right? Declare "
                              "data.labels to use a fixed set",
                              train_file, st->n_names, SLIM_MAX_LABELS);
    return 0;
}

/* Opens the model's tokenizer and the data files, settles the shape and the label set, and prepares
 * the renderer. Returns 0 or -1. */
static int prep_open_inputs(prep_state *st, const slim_config *cfg, const char *split) {
    const char *files[PREP_N_SPLITS] = {cfg->train_file, cfg->test_file, cfg->val_file};
    st->from_train[1] = cfg->has_split && !cfg->test_file;
    st->from_train[2] = cfg->has_split && cfg->split_val_fraction > 0;
    st->splitting = st->from_train[1] || st->from_train[2];
    if (!cfg->train_file) return slim_set_error("%s: data.train: required by data prepare", cfg->path);
    for (int s = 0; s < PREP_N_SPLITS; s++) {
        const char *name = prep_split_names[s];
        st->want[s] = strcmp(split, "all") == 0 || strcmp(split, name) == 0;
        if (s == 0 || files[s] || st->from_train[s]) continue;
        if (strcmp(split, name) == 0)
            return slim_set_error("%s: data.%s: --split %s asks for it but the config names no %s file (nor "
                                  "data.split%s)",
                                  cfg->path, name, name, name, s == 2 ? ".val_fraction" : "");
        st->want[s] = 0;
    }
    if (slim_model_open(&st->g, cfg->model)) return -1;
    st->have_gguf = 1;
    if (tokenizer_init_model(&st->tok, &st->g, cfg->model)) return -1;
    st->have_tok = 1;
    /* the label set (text_label): declared (sorted), else the sorted labels of the train file's good rows */
    st->names = prep_declared_labels(cfg, &st->n_names);
    reader_opts ro;
    int cfg_shape = example_shape_parse(cfg->shape);
    prep_reader_opts(&ro, cfg, cfg_shape, st->names, st->n_names);
    st->shape = cfg_shape;
    if (st->want[0] || st->splitting || st->n_names == 0 || st->shape == SHAPE_AUTO) {
        if (reader_open_ex(&st->rds[0], cfg->train_file, &ro)) return -1;
        st->opened[0] = 1;
        st->shape = st->rds[0].shape;
    }
    if (st->shape != SHAPE_TEXT_LABEL) st->n_names = 0; /* labels only exist in text_label rows */
    else if (st->n_names == 0 && prep_collect_labels(st, cfg->train_file)) return -1;
    for (int s = 1; s < PREP_N_SPLITS; s++) {
        if (!st->want[s] || st->from_train[s]) continue;
        prep_reader_opts(&ro, cfg, st->shape, st->names, st->n_names);
        if (reader_open_ex(&st->rds[s], files[s], &ro)) return -1;
        st->opened[s] = 1;
    }
    st->have_rr = 1;
    return prep_renderer_init(&st->rr, &st->tok, cfg, st->shape, st->names, st->n_names,
                              gguf_get_str(&st->g, "tokenizer.chat_template"));
}

/* Tokenizes the wanted splits, checks them, and writes <out>/data/<split>.h5 for each. Returns 0 or -1
 * (the files already written are listed in st->written). */
static int prep_build_and_write(prep_state *st, const slim_config *cfg, const char *out_dir) {
    uint64_t cfg_fp = prep_config_fingerprint(cfg, st->shape, st->names, st->n_names);
    prep_split *sp = st->sp;
    const char *files[PREP_N_SPLITS] = {cfg->train_file, cfg->test_file, cfg->val_file};
    for (int s = 0; s < PREP_N_SPLITS; s++) {
        sp[s].name = prep_split_names[s];
        sp[s].source = st->from_train[s] ? cfg->train_file : files[s];
        sp[s].rd = st->from_train[s] ? &st->rds[0] : &st->rds[s];
    }
    if (st->splitting) { /* train keeps what no other split takes (bad rows included, for the report) */
        st->assign = slim_malloc((size_t)(st->rds[0].n_rows ? st->rds[0].n_rows : 1));
        split_assign3(st->rds[0].rows, st->rds[0].n_rows, st->shape, st->from_train[1] ? cfg->split_test_fraction : 0,
                      st->from_train[2] ? cfg->split_val_fraction : 0, (uint64_t)cfg->split_seed, st->assign, NULL);
        for (int s = 0; s < PREP_N_SPLITS; s++)
            if (s == 0 || st->from_train[s]) { sp[s].assign = st->assign; sp[s].want = (int8_t)s; }
    }
    int n_threads = cfg->threads > 0 ? cfg->threads : omp_get_max_threads();
    int failed = 0;
    for (int s = 0; s < PREP_N_SPLITS; s++) {
        if (!st->want[s]) continue;
        if (prep_build_split(&sp[s], &st->rr, cfg, st->names, st->n_names, cfg_fp, n_threads)) return -1;
        prep_print_summary(&sp[s]);
        if (!failed && prep_check_split(&sp[s], cfg)) failed = 1;
    }
    if (failed) return -1;
    char dir[4096];
    if (slim_format_path(dir, sizeof dir, "%s/data", out_dir) || slim_mkdir_p(dir)) return -1;
    for (int s = 0; s < PREP_N_SPLITS; s++) {
        if (!st->want[s]) continue;
        if (slim_format_path(st->paths[s], sizeof st->paths[s], "%s/%s.h5", dir, sp[s].name)) return -1;
        if (dataset_write(&sp[s].ds, st->paths[s])) return -1;
        st->written[s] = 1;
    }
    for (int s = 0; s < PREP_N_SPLITS; s++)
        if (st->want[s]) fprintf(stderr, "data prepare: wrote %s\n", st->paths[s]);
    return 0;
}

/* Frees st and everything it holds. */
static void prep_state_free(prep_state *st) {
    for (int s = 0; s < PREP_N_SPLITS; s++) {
        if (st->opened[s]) reader_free(&st->rds[s]);
        dataset_free(&st->sp[s].ds);
    }
    free(st->assign);
    if (st->have_rr) prep_renderer_free(&st->rr);
    free(st->names); /* the strings belong to cfg or to the train reader */
    if (st->have_tok) tokenizer_free(&st->tok);
    if (st->have_gguf) gguf_close(&st->g);
    free(st);
}

int data_prepare_run(const slim_config *cfg, const data_prepare_opts *o) {
    prep_state *st = slim_calloc(1, sizeof *st);
    int rc = prep_open_inputs(st, cfg, o->split);
    if (rc == 0) rc = prep_build_and_write(st, cfg, o->out ? o->out : cfg->out_dir);
    if (rc) /* all or nothing: remove a split already written in this run */
        for (int s = 0; s < PREP_N_SPLITS; s++)
            if (st->written[s]) unlink(st->paths[s]);
    prep_state_free(st);
    return rc ? -1 : SLIM_OK;
}

/* X_run through slim_config_main. */
static int data_prepare_run_opts(const slim_config *cfg, const void *o) { return data_prepare_run(cfg, o); }

int data_prepare_main(int argc, char **argv) {
    data_prepare_opts o;
    int r = data_prepare_parse_args(&o, argc, argv);
    return slim_config_main(r, prep_usage, o.config, data_prepare_run_opts, &o);
}
