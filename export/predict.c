/* predict.c — `slimtune predict`: label predictions for new rows; see predict.h. */
#include "predict.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dataset.h"
#include "model/model.h"
#include "../data/prepare.h"
#include "../data/reader.h"
#include "../eval/eval.h"

/* Rows read, rendered, scored and written at a time. */
#define PREDICT_CHUNK 256

static void predict_usage(FILE *f) {
    fprintf(f,
            "usage: slimtune predict --config FILE --input ROWS [--out FILE] [--adapter A | --model M] [--batch N]\n"
            "  Predicts the label of every row of ROWS (CSV, TSV or JSONL with the config's columns; a label\n"
            "  column is optional) as eval scores labels, and writes one JSON object a row (input order) to\n"
            "  FILE (default stdout): {\"line\", \"label\", \"probs\": {label: p}, \"gold\"} or {\"line\", \"error\"}.\n"
            "  Rows of a prompt/completion, alpaca, chat or text config without labels get a greedy completion\n"
            "  of up to predict.max_new_tokens tokens: {\"line\", \"completion\", \"n_tokens\", \"stop\"}.\n"
            "  --adapter A   LoRA adapter over the config's base (default <out_dir>/train/adapter.gguf)\n"
            "  --model M     a merged GGUF (slimtune export) used as stored, without an adapter\n"
            "  --batch N     (row, label) pairs per forward pass (default 32)\n"
            "  --prompt-tokens  add each row's prompt token ids (\"prompt_tokens\"), to feed another runtime\n"
            "  --routing R   eval/routing.json: probabilities at its temperature; each row gets \"confidence\" and\n"
            "                \"route\": \"model\" (confidence >= its threshold) or \"escalate\"\n");
}

int predict_parse_args(predict_opts *o, int argc, char **argv) {
    *o = (predict_opts){.batch = 32};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { predict_usage(stdout); return SLIM_HELP; }
        if (!strcmp(a, "--prompt-tokens")) { o->prompt_tokens = 1; continue; }
        if (i + 1 >= argc) return slim_bad_option("predict", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--config")) o->config = v;
        else if (!strcmp(a, "--input")) o->input = v;
        else if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--adapter")) o->adapter = v;
        else if (!strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "--routing")) o->routing = v;
        else if (!strcmp(a, "--batch")) {
            if (slim_parse_long(a, v, 1, 1 << 16, &o->batch) != 0) return -1;
        } else return slim_bad_option("predict", a);
    }
    if (!o->config || !o->input) return slim_set_error("--config FILE and --input ROWS are required");
    if (o->adapter && o->model) return slim_set_error("--adapter and --model exclude each other");
    return SLIM_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* the run's state */

typedef struct predictor {
    model m;
    int has_model, has_lora, has_renderer, has_reader;
    lora_adapter lora;
    char **names;          /* [n_names] the label set, sorted (strings owned) */
    int n_names;
    prep_renderer r;
    data_reader rd;
    FILE *out;
    char tmp[4200];        /* --out's temporary name */
    int prompt_tokens;     /* --prompt-tokens */
    int generate;          /* the rows' shape has no labels to score: greedy generation */
    int max_new;           /* predict.max_new_tokens */
    acts gen;              /* generation: inference activations of one row of max_seq_len + max_new tokens */
    int32_t *gen_tokens, *gen_targets; /* [max_seq_len + max_new] */
    int32_t eot;           /* chat: the template's end-of-turn token (generation stops there too), else -1 */
    int64_t n_bad, n_gold, n_correct;
    int routing;           /* --routing given */
    double temperature;    /* the probabilities' temperature (1 without --routing) */
    double threshold;      /* --routing's confidence threshold (INFINITY: escalate every row) */
    int64_t n_model, n_model_gold, n_model_correct; /* rows routed to the model; of them with a gold label, right */
    /* one chunk */
    slim_dataset d;        /* its good rows, rendered (tokens, offsets, prompt_len; label names) */
    int64_t row_of[PREDICT_CHUNK];   /* example -> row index in the chunk */
    const char *err[PREDICT_CHUNK];  /* row -> error text (NULL: good) */
    char err_buf[PREDICT_CHUNK][256];
    int gold[PREDICT_CHUNK];         /* row -> gold label index, -1 not in the label set, -2 no label */
    const char *gold_text[PREDICT_CHUNK]; /* row -> its label as read (the reader's), or NULL */
    double *scores;                  /* [PREDICT_CHUNK, n_names] */
} predictor;

/* The label set: data.labels (sorted), else the label names of <out_dir>/data/train.h5. Returns 0 or -1. */
static int predict_labels(predictor *p, const slim_config *cfg) {
    int n;
    char **declared = prep_declared_labels(cfg, &n);
    if (declared) {
        p->names = slim_malloc((size_t)n * sizeof(char *));
        for (int i = 0; i < n; i++) p->names[i] = slim_strdup(declared[i]);
        p->n_names = n;
        free(declared);
        return 0;
    }
    char path[4096];
    slim_dataset d;
    if (slim_format_path(path, sizeof path, "%s/data/train.h5", cfg->out_dir) != 0) return -1;
    if (dataset_read(&d, path) != 0)
        return slim_set_error("%s: no data.labels in the config and no prepared train split to take the labels "
                              "from (%s)", cfg->path, slim_last_error());
    p->names = slim_malloc((size_t)(d.n_labels > 0 ? d.n_labels : 1) * sizeof(char *));
    for (int i = 0; i < d.n_labels; i++) p->names[i] = slim_strdup(d.label_names[i]);
    p->n_names = d.n_labels;
    dataset_free(&d);
    return p->n_names > 0 ? 0 : slim_set_error("%s has no labels: predict needs text_label data", path);
}

/* Reads --routing's file (eval/routing.json): its temperature, threshold (null: escalate every row) and
 * labels, which must be the label set's. Returns 0 or -1 with an error naming the file and the field. */
static int predict_read_routing(predictor *p, const char *path) {
    cJSON *root = slim_read_json(path);
    if (!root) return -1;
    const cJSON *T = cJSON_GetObjectItemCaseSensitive(root, "temperature");
    const cJSON *th = cJSON_GetObjectItemCaseSensitive(root, "threshold");
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(root, "labels");
    int rc = 0;
    if (!cJSON_IsNumber(T) || !(T->valuedouble > 0))
        rc = slim_set_error("%s: temperature: expected a positive number", path);
    else if (!cJSON_IsNumber(th) && !cJSON_IsNull(th))
        rc = slim_set_error("%s: threshold: expected a number or null", path);
    else if (!cJSON_IsArray(labels) || cJSON_GetArraySize(labels) != p->n_names)
        rc = slim_set_error("%s: labels: expected the %d labels of the config", path, p->n_names);
    for (int k = 0; rc == 0 && k < p->n_names; k++) {
        const cJSON *l = cJSON_GetArrayItem(labels, k);
        int found = 0;
        for (int j = 0; j < p->n_names && cJSON_IsString(l); j++) found |= !strcmp(l->valuestring, p->names[j]);
        if (!found) rc = slim_set_error("%s: labels[%d] is not one of the config's labels", path, k);
    }
    if (rc == 0) {
        p->routing = 1;
        p->temperature = T->valuedouble;
        p->threshold = cJSON_IsNumber(th) ? th->valuedouble : INFINITY;
    }
    cJSON_Delete(root);
    return rc;
}

/* Loads the model: --model as stored and no adapter, else the config's base at base.quant and the adapter. */
static int predict_load(predictor *p, const slim_config *cfg, const predict_opts *o) {
    if (model_load_quant(&p->m, o->model ? o->model : cfg->model,
                         o->model ? QUANT_KEEP : base_quant_index(cfg->base_quant)) != 0)
        return -1;
    p->has_model = 1;
    if (model_require_tokenizer(&p->m) != 0) return -1;
    if (o->model) return 0;
    char adapter[4096];
    if (o->adapter) snprintf(adapter, sizeof adapter, "%s", o->adapter);
    else if (slim_format_path(adapter, sizeof adapter, "%s/train/adapter.gguf", cfg->out_dir) != 0) return -1;
    if (lora_load(&p->lora, &p->m, adapter) != 0) return -1;
    p->has_lora = 1;
    return 0;
}

/* Generation set-up: the renderer of the rows' shape, activations and token buffers of one row. */
static int predict_setup_generate(predictor *p, const slim_config *cfg) {
    const char *jinja = gguf_find_kv(&p->m.gguf, "tokenizer.chat_template") ? gguf_get_str(&p->m.gguf,
                                                                                             "tokenizer.chat_template")
                                                                            : NULL;
    if (prep_renderer_init(&p->r, &p->m.tok, cfg, p->rd.shape, NULL, 0, jinja) != 0) return -1;
    p->has_renderer = 1;
    p->generate = 1;
    p->eot = -1;
    p->max_new = cfg->max_new_tokens;
    const int T = cfg->max_seq_len + p->max_new;
    acts_init_inference(&p->gen, &p->m.cfg, 1, T, p->has_lora ? p->lora.r : 0);
    p->gen_tokens = slim_malloc(sizeof(int32_t) * 2 * (size_t)T);
    p->gen_targets = p->gen_tokens + T;
    return 0;
}

/* Sets everything up: model, reader, then labels and their renderer (text_label and text rows when the
 * config has labels) or generation, output. Returns 0 or -1. */
static int predict_setup(predictor *p, const slim_config *cfg, const predict_opts *o) {
    if (predict_load(p, cfg, o) != 0) return -1;
    reader_opts ro;
    prep_reader_opts(&ro, cfg, example_shape_parse(cfg->shape), NULL, 0);
    ro.target_optional = 1;
    if (reader_open_ex(&p->rd, o->input, &ro) != 0) return -1;
    p->has_reader = 1;
    const int labelled = p->rd.shape == SHAPE_TEXT_LABEL || (p->rd.shape == SHAPE_TEXT && predict_labels(p, cfg) == 0);
    if (p->rd.shape == SHAPE_TEXT_LABEL && predict_labels(p, cfg) != 0) return -1;
    if (labelled) {
        if (prep_renderer_init(&p->r, &p->m.tok, cfg, SHAPE_TEXT_LABEL, p->names, p->n_names, NULL) != 0) return -1;
        p->has_renderer = 1;
        p->scores = slim_malloc(sizeof(double) * PREDICT_CHUNK * (size_t)p->n_names);
        p->temperature = 1.0;
        if (o->routing && predict_read_routing(p, o->routing) != 0) return -1;
    } else if (o->routing) {
        return slim_set_error("--routing %s: routing applies to label predictions; %s's rows are generated", o->routing,
                              o->input);
    } else if (predict_setup_generate(p, cfg) != 0) {
        return -1;
    }
    p->prompt_tokens = o->prompt_tokens;
    p->out = o->out ? slim_atomic_open(o->out, p->tmp, sizeof p->tmp) : stdout;
    return p->out ? 0 : -1;
}

static void predict_free(predictor *p) {
    if (p->out && p->out != stdout) slim_atomic_abort(p->out, p->tmp); /* only after a failure */
    if (p->generate) acts_free(&p->gen);
    free(p->gen_tokens);
    free(p->scores);
    free(p->d.tokens);
    free(p->d.offsets);
    free(p->d.prompt_len);
    free(p->d.labels);
    free(p->d.source_line);
    if (p->has_reader) reader_free(&p->rd);
    if (p->has_renderer) prep_renderer_free(&p->r);
    if (p->has_lora) lora_free(&p->lora);
    if (p->has_model) model_free(&p->m);
    for (int i = 0; i < p->n_names; i++) free(p->names[i]);
    free(p->names);
}

/* ---------------------------------------------------------------------------------------------- */
/* one chunk */

/* The index of label s in the label set, or -1. */
static int predict_label_index(const predictor *p, const char *s) {
    for (int k = 0; k < p->n_names; k++)
        if (!strcmp(p->names[k], s)) return k;
    return -1;
}

/* Renders row i of the chunk (e) into p->d, or records why it is bad. Returns 0 or -1 (tokenizer). */
static int predict_render_row(predictor *p, int i, const data_example *e, prep_rendered *w) {
    p->err[i] = NULL;
    p->gold[i] = e->label ? predict_label_index(p, e->label) : -2;
    p->gold_text[i] = e->label;
    if (e->reason != READ_OK) {
        snprintf(p->err_buf[i], sizeof p->err_buf[i], "%s: %s", reader_reason_name(e->reason), e->message);
        p->err[i] = p->err_buf[i];
        return 0;
    }
    data_example x = *e; /* the prompt does not depend on the label: any label of the set renders it */
    x.label = p->names[p->gold[i] >= 0 ? p->gold[i] : 0];
    x.label_len = strlen(x.label);
    if (prep_render(&p->r, &x, 0, w) != 0) return -1;
    if (w->bad) {
        snprintf(p->err_buf[i], sizeof p->err_buf[i], "%.190s", w->message);
        p->err[i] = p->err_buf[i];
        return 0;
    }
    slim_dataset *d = &p->d;
    const int64_t e_idx = d->n_examples++;
    d->tokens = slim_realloc(d->tokens, sizeof(int32_t) * (size_t)(d->n_tokens + w->n_tokens));
    memcpy(d->tokens + d->n_tokens, w->tokens, sizeof(int32_t) * (size_t)w->n_tokens);
    d->n_tokens += w->n_tokens;
    d->offsets[e_idx + 1] = d->n_tokens;
    d->prompt_len[e_idx] = w->prompt_len;
    d->labels[e_idx] = -1;
    d->source_line[e_idx] = e->line;
    p->row_of[e_idx] = i;
    return 0;
}

/* Writes the line of chunk row i (its example e_idx when good) to p->out. Returns 0 or -1. */
static int predict_write_row(predictor *p, int i, int64_t line, int64_t e_idx) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "line", (double)line);
    if (p->err[i]) {
        cJSON_AddStringToObject(o, "error", p->err[i]);
        p->n_bad++;
    } else {
        const double *s = p->scores + (size_t)e_idx * p->n_names, T = p->temperature;
        int best = 0;
        double mx = s[0], z = 0.0;
        for (int k = 1; k < p->n_names; k++) if (s[k] > mx) { mx = s[k]; best = k; }
        for (int k = 0; k < p->n_names; k++) z += exp((s[k] - mx) / T);
        cJSON_AddStringToObject(o, "label", p->names[best]);
        cJSON *probs = cJSON_AddObjectToObject(o, "probs");
        for (int k = 0; k < p->n_names; k++) cJSON_AddNumberToObject(probs, p->names[k], exp((s[k] - mx) / T) / z);
        if (p->gold[i] >= 0) { p->n_gold++; p->n_correct += p->gold[i] == best; }
        if (p->routing) {
            const int model = 1.0 / z >= p->threshold; /* the best label's probability is exp(0) / z */
            cJSON_AddNumberToObject(o, "confidence", 1.0 / z);
            cJSON_AddStringToObject(o, "route", model ? "model" : "escalate");
            p->n_model += model;
            if (model && p->gold[i] >= 0) { p->n_model_gold++; p->n_model_correct += p->gold[i] == best; }
        }
        if (p->prompt_tokens) {
            cJSON *ids = cJSON_AddArrayToObject(o, "prompt_tokens");
            for (int32_t t = 0; t < p->d.prompt_len[e_idx]; t++)
                cJSON_AddItemToArray(ids, cJSON_CreateNumber(p->d.tokens[p->d.offsets[e_idx] + t]));
        }
    }
    if (p->gold_text[i]) cJSON_AddStringToObject(o, "gold", p->gold_text[i]);
    char *text = cJSON_PrintUnformatted(o);
    int rc = fprintf(p->out, "%s\n", text) < 0 ? slim_set_error("cannot write the predictions") : 0;
    free(text);
    cJSON_Delete(o);
    return rc;
}

/* Chat: the conversation of e (a final assistant turn dropped) with a placeholder assistant turn, rendered
 * as data prepare renders it; the prompt is everything before that turn's first loss token (the
 * template's generation prompt), the end-of-turn token its last loss token. Returns the prompt length, 0
 * for a bad row (*why), -1 on a tokenizer failure. */
static int predict_chat_prompt(predictor *p, const data_example *e, prep_rendered *w, const char **why) {
    int n_turns = e->n_turns;
    if (n_turns > 0 && e->turns[n_turns - 1].role == ROLE_ASSISTANT) n_turns--;
    example_turn *turns = slim_malloc(sizeof(example_turn) * (size_t)(n_turns + 1));
    memcpy(turns, e->turns, sizeof(example_turn) * (size_t)n_turns);
    turns[n_turns] = (example_turn){.role = ROLE_ASSISTANT, .content = "x", .content_len = 1};
    data_example x = *e;
    x.turns = turns;
    x.n_turns = n_turns + 1;
    int rc = prep_render(&p->r, &x, 0, w);
    free(turns);
    if (rc != 0) return -1;
    int end = w->n_tokens, start;
    while (end > 0 && !w->mask[end - 1]) end--;
    for (start = end; start > 0 && w->mask[start - 1]; start--) {}
    if (w->bad || w->truncated || end == 0 || start < 1 || start > p->gen.T - p->max_new) {
        *why = w->bad ? w->message : "the conversation is longer than data.max_seq_len";
        return 0;
    }
    p->eot = w->tokens[end - 1];
    memcpy(p->gen_tokens, w->tokens, sizeof(int32_t) * (size_t)start);
    return start;
}

/* The prompt of row e into p->gen_tokens: the rows' shape rendered as data prepare renders it, without
 * the completion (prompt_completion, alpaca), the final EOS (text) or the answer (chat). Returns its
 * length, 0 for a bad row (*why set), -1 on a tokenizer failure. */
static int predict_prompt(predictor *p, const data_example *e, prep_rendered *w, const char **why) {
    if (p->rd.shape == SHAPE_CHAT) return predict_chat_prompt(p, e, w, why);
    data_example x = *e;
    x.label = "";
    x.label_len = 0;
    if (prep_render(&p->r, &x, 0, w) != 0) return -1;
    const int n = p->rd.shape == SHAPE_TEXT ? w->n_tokens - 1 : w->prompt_len;
    if (w->bad || n < 1 || n > p->gen.T - p->max_new) {
        *why = w->bad ? w->message : "the prompt is empty or longer than data.max_seq_len";
        return 0;
    }
    memcpy(p->gen_tokens, w->tokens, sizeof(int32_t) * (size_t)n);
    return n;
}

/* Generates for row e and writes its line: {"line", "completion", "n_tokens", "stop", "reference"}. */
static int predict_generate_row(predictor *p, const data_example *e, prep_rendered *w) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "line", (double)e->line);
    const char *why = e->reason != READ_OK ? e->message : NULL;
    int n = why ? 0 : predict_prompt(p, e, w, &why), rc = n < 0 ? -1 : 0;
    if (rc == 0 && n == 0) {
        cJSON_AddStringToObject(o, "error", why);
        p->n_bad++;
    } else if (rc == 0) {
        int eos, k = model_generate_greedy(&p->m, p->has_lora ? &p->lora : NULL, &p->gen, p->gen_tokens, p->gen_targets,
                                           n, p->max_new, p->eot, &eos);
        const size_t cap = (size_t)k * 256 + 1;
        char *text = slim_malloc(cap);
        text[0] = 0;
        for (int i = 0; i < k; i++) tokenizer_decode_token(&p->m.tok, p->gen_tokens[n + i], text, cap); /* appends */
        cJSON_AddStringToObject(o, "completion", text);
        cJSON_AddNumberToObject(o, "n_tokens", k);
        cJSON_AddStringToObject(o, "stop", eos ? "eos" : "max_new_tokens");
        if (e->label) cJSON_AddStringToObject(o, "reference", e->label);
        if (p->prompt_tokens) {
            cJSON *ids = cJSON_AddArrayToObject(o, "prompt_tokens");
            for (int i = 0; i < n; i++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(p->gen_tokens[i]));
        }
        free(text);
    }
    char *line = cJSON_PrintUnformatted(o);
    if (rc == 0 && fprintf(p->out, "%s\n", line) < 0) rc = slim_set_error("cannot write the predictions");
    free(line);
    cJSON_Delete(o);
    return rc;
}

/* Reads up to PREDICT_CHUNK rows, renders the good ones, scores every label of them and writes a line
 * per row. Returns the rows done (0 at the end of the input) or -1 with an error. */
static int predict_chunk(predictor *p, int batch) {
    slim_dataset *d = &p->d;
    d->n_examples = d->n_tokens = 0;
    d->offsets[0] = 0;
    prep_rendered w = {0};
    int64_t lines[PREDICT_CHUNK];
    int n = 0, rc = 0;
    const reader_row *row;
    while (n < PREDICT_CHUNK && rc == 0 && reader_next(&p->rd, &row)) {
        lines[n] = row->line;
        rc = p->generate ? predict_generate_row(p, row, &w) : predict_render_row(p, n, row, &w);
        n++;
    }
    prep_rendered_free(&w);
    if (rc != 0) return -1;
    if (p->generate) return n;
    if (d->n_examples > 0 && eval_score(&p->m, p->has_lora ? &p->lora : NULL, d, NULL, d->n_examples, batch, NULL,
                                        p->scores) != 0)
        return -1;
    int64_t e = 0;
    for (int i = 0; i < n; i++) {
        int64_t e_idx = p->err[i] ? -1 : e++;
        if (predict_write_row(p, i, lines[i], e_idx) != 0) return -1;
    }
    return n;
}

/* The routing line: rows answered by the model and escalated, and the answered rows' accuracy. */
static void predict_routing_summary(const predictor *p, const char *path) {
    const int64_t good = p->rd.n_rows - p->n_bad;
    fprintf(stderr, "predict: routing (%s: threshold %.4f, temperature %.3f): %lld rows to the model (%.1f%%), %lld "
            "escalated", path, p->threshold, p->temperature, (long long)p->n_model,
            good > 0 ? 100.0 * (double)p->n_model / (double)good : 0.0, (long long)(good - p->n_model));
    if (p->n_model_gold > 0)
        fprintf(stderr, "; accuracy %.4f on the %lld of them with a label", (double)p->n_model_correct /
                (double)p->n_model_gold, (long long)p->n_model_gold);
    fprintf(stderr, "\n");
}

int predict_run(const slim_config *cfg, const predict_opts *o) {
    predictor *p = slim_calloc(1, sizeof *p);
    double t0 = slim_time_sec(), t_last = t0;
    int rc = predict_setup(p, cfg, o);
    if (rc == 0) {
        slim_dataset *d = &p->d;
        d->offsets = slim_malloc(sizeof(int64_t) * (PREDICT_CHUNK + 1));
        d->prompt_len = slim_malloc(sizeof(int32_t) * PREDICT_CHUNK);
        d->labels = slim_malloc(sizeof(int32_t) * PREDICT_CHUNK);
        d->source_line = slim_malloc(sizeof(int64_t) * PREDICT_CHUNK);
        d->n_labels = p->n_names; /* label scoring only */
        d->label_names = p->names;
        d->completion_template = (char *)prep_completion_template(cfg, SHAPE_TEXT_LABEL);
        int64_t done = 0;
        int k;
        while ((k = predict_chunk(p, (int)o->batch)) > 0) {
            done += k;
            double now = slim_time_sec();
            if (now - t_last > 2.0 || done == p->rd.n_rows) {
                fprintf(stderr, "predict: %lld/%lld rows, %.1f rows/s\n", (long long)done, (long long)p->rd.n_rows,
                        done / (now - t0 > 1e-9 ? now - t0 : 1e-9));
                t_last = now;
            }
        }
        rc = k < 0 ? -1 : 0;
    }
    if (rc == 0 && p->out != stdout) {
        FILE *f = p->out;
        p->out = NULL;
        rc = slim_atomic_commit(f, p->tmp, o->out);
    }
    if (rc == 0) {
        fprintf(stderr, "predict: %s: %lld rows, %lld bad, %s%s\n", o->input, (long long)p->rd.n_rows,
                (long long)p->n_bad, o->model ? o->model : "base + adapter", o->out ? "" : " (to stdout)");
        if (p->n_gold > 0)
            fprintf(stderr, "predict: accuracy %.4f on %lld rows with a label of the set\n",
                    (double)p->n_correct / (double)p->n_gold, (long long)p->n_gold);
        if (p->routing) predict_routing_summary(p, o->routing);
    }
    predict_free(p);
    free(p);
    return rc == 0 ? SLIM_OK : -1;
}

/* X_run through slim_config_main. */
static int predict_run_opts(const slim_config *cfg, const void *o) { return predict_run(cfg, o); }

int predict_main(int argc, char **argv) {
    predict_opts o;
    int r = predict_parse_args(&o, argc, argv);
    return slim_config_main(r, predict_usage, o.config, predict_run_opts, &o);
}
