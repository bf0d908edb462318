/* test_config.c — config defaults, loading the shipped config, save/load round trip, and bad configs
 * that must each fail with an error naming the file and the key (or line). */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "config.h"
#include "testutil.h"

static char tmpdir[256];

/* Writes text to <tmpdir>/name and returns the path (static buffer rotation). */
static const char *write_tmp(const char *name, const char *text) {
    static char paths[4][512];
    static int k;
    char *p = paths[k++ % 4];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "wb");
    if (!f) { fprintf(stderr, "cannot write %s\n", p); exit(1); }
    fputs(text, f);
    fclose(f);
    return p;
}

/* Loads a config that must fail; checks that the error mentions every string in want[]. */
static void expect_bad(const char *name, const char *json, const char *want1, const char *want2) {
    const char *path = write_tmp(name, json);
    slim_config c;
    int rc = config_load(&c, path);
    const char *err = slim_last_error();
    CHECK(rc == -1, "%s: expected failure", name);
    CHECK(strstr(err, path) != NULL, "%s: error should name the file: %s", name, err);
    if (want1) CHECK(strstr(err, want1) != NULL, "%s: error should mention '%s': %s", name, want1, err);
    if (want2) CHECK(strstr(err, want2) != NULL, "%s: error should mention '%s': %s", name, want2, err);
    config_free(&c); /* must be safe after a failed load */
}

static void test_defaults(void) {
    slim_config c;
    config_defaults(&c);
    CHECK(c.model == NULL, "model has no default");
    CHECK(strcmp(c.out_dir, "work/run") == 0, "out_dir %s", c.out_dir);
    CHECK(strcmp(c.base_quant, "f32") == 0, "base.quant %s", c.base_quant);
    CHECK(strcmp(c.format, "auto") == 0, "format %s", c.format);
    CHECK(strcmp(c.text_column, "text") == 0 && strcmp(c.label_column, "label") == 0, "columns");
    CHECK(strcmp(c.prompt_template, "Text: {text}\nLabel:") == 0, "prompt template");
    CHECK(strcmp(c.completion_template, " {label}") == 0, "completion template");
    CHECK(c.max_seq_len == 256 && c.max_bad_rows == 0.01, "data limits");
    CHECK(c.n_labels == 0, "no labels by default");
    CHECK(c.lora_r == 8 && c.lora_alpha == 16.0f, "lora r/alpha");
    CHECK(c.n_targets == 7, "all seven targets, got %d", c.n_targets);
    const char *all[] = {"q", "k", "v", "o", "gate", "up", "down"};
    for (int i = 0; i < 7 && i < c.n_targets; i++) CHECK(strcmp(c.targets[i], all[i]) == 0, "target %d", i);
    CHECK(c.epochs == 1 && c.max_steps == 0 && c.batch_size == 8 && c.grad_accum == 1, "train ints");
    CHECK(c.lr == 1e-3f && c.min_lr_ratio == 0.1f && c.warmup_steps == 10 && c.weight_decay == 0.0f, "lr");
    CHECK(c.beta1 == 0.9f && c.beta2 == 0.999f && c.eps == 1e-8f && c.grad_clip == 1.0f, "adam");
    CHECK(c.seed == 1 && c.log_every == 10 && c.threads == 0, "seed/log/threads");
    CHECK(c.min_accuracy == 0.0 && c.min_gain == -1.0 && c.eval_max_examples == 0, "eval");
    config_free(&c);
}

static void test_shipped(void) {
    slim_config c;
    int rc = config_load(&c, "configs/spam-stories260k.json");
    CHECK(rc == 0, "load configs/spam-stories260k.json (run from the repo root): %s", slim_last_error());
    if (rc) return;
    CHECK(strcmp(c.path, "configs/spam-stories260k.json") == 0, "path");
    CHECK(strcmp(c.model, "work/models/stories260K.gguf") == 0, "model %s", c.model);
    CHECK(strcmp(c.out_dir, "work/spam-stories260k") == 0, "out_dir");
    CHECK(strcmp(c.train_file, "work/datasets/spam_assassin/train.csv") == 0, "train");
    CHECK(c.test_file && strcmp(c.test_file, "work/datasets/spam_assassin/test.csv") == 0, "test");
    CHECK(strcmp(c.format, "csv") == 0, "format");
    CHECK(c.n_labels == 2 && strcmp(c.labels[0], "ham") == 0 && strcmp(c.labels[1], "spam") == 0, "labels");
    CHECK(c.max_seq_len == 128 && c.max_bad_rows == 0.01, "limits");
    CHECK(c.lora_r == 8 && c.lora_alpha == 16.0f && c.n_targets == 7, "lora");
    CHECK(c.batch_size == 16 && c.lr == 0.003f && c.warmup_steps == 20, "train");
    CHECK(c.min_accuracy == 0.88 && c.min_gain == 0.15, "eval");
    config_free(&c);
}

static void test_round_trip(void) {
    const char *p = write_tmp("rt.json",
                              "{\"model\": \"m.gguf\", \"out_dir\": \"o\", \"base\": {\"quant\": \"nf4\"},\n"
                              " \"data\": {\"train\": \"a.jsonl\", \"format\": \"jsonl\",\n"
                              "   \"columns\": {\"text\": \"body\", \"label\": \"cls\"},\n"
                              "   \"template\": {\"prompt\": \"Q: {text}\\nA:\", \"completion\": \" {label}!\"},\n"
                              "   \"labels\": [\"x\", \"y\", \"z\"], \"max_seq_len\": 64, \"max_bad_rows\": 0.25},\n"
                              " \"lora\": {\"r\": 4, \"alpha\": 2.5, \"targets\": [\"v\", \"q\"]},\n"
                              " \"train\": {\"epochs\": 3, \"max_steps\": 7, \"batch_size\": 2, \"grad_accum\": 4,\n"
                              "   \"lr\": 0.0003, \"min_lr_ratio\": 0.05, \"warmup_steps\": 0, \"weight_decay\": 0.01,\n"
                              "   \"beta1\": 0.8, \"beta2\": 0.95, \"eps\": 1e-6, \"grad_clip\": 0, \"seed\": 42,\n"
                              "   \"log_every\": 1, \"threads\": 2, \"packing\": true},\n"
                              " \"eval\": {\"min_accuracy\": 0.5, \"min_gain\": 0.1, \"max_examples\": 100}}\n");
    slim_config a, b;
    int rc = config_load(&a, p);
    CHECK(rc == 0, "load: %s", slim_last_error());
    if (rc) return;
    char saved[512];
    snprintf(saved, sizeof saved, "%s/saved.json", tmpdir);
    CHECK(config_save(&a, saved) == 0, "save: %s", slim_last_error());
    rc = config_load(&b, saved);
    CHECK(rc == 0, "reload: %s", slim_last_error());
    if (rc) { config_free(&a); return; }
    CHECK(strcmp(a.model, b.model) == 0 && strcmp(a.out_dir, b.out_dir) == 0, "model/out_dir");
    CHECK(strcmp(b.base_quant, "nf4") == 0, "base.quant %s", b.base_quant);
    CHECK(strcmp(a.train_file, b.train_file) == 0 && b.test_file == NULL, "data files");
    CHECK(strcmp(b.format, "jsonl") == 0 && strcmp(b.text_column, "body") == 0 && strcmp(b.label_column, "cls") == 0,
          "format/columns");
    CHECK(strcmp(b.prompt_template, "Q: {text}\nA:") == 0 && strcmp(b.completion_template, " {label}!") == 0,
          "templates");
    CHECK(b.n_labels == 3 && strcmp(b.labels[2], "z") == 0, "labels");
    CHECK(b.max_seq_len == 64 && b.max_bad_rows == 0.25, "limits");
    CHECK(b.lora_r == 4 && b.lora_alpha == 2.5f && b.n_targets == 2 && strcmp(b.targets[0], "v") == 0 &&
              strcmp(b.targets[1], "q") == 0,
          "lora");
    CHECK(b.epochs == 3 && b.max_steps == 7 && b.batch_size == 2 && b.grad_accum == 4, "train ints");
    CHECK(b.lr == a.lr && b.lr == 0.0003f && b.min_lr_ratio == 0.05f && b.warmup_steps == 0, "lr: %g", b.lr);
    CHECK(b.weight_decay == 0.01f && b.beta1 == 0.8f && b.beta2 == 0.95f && b.eps == 1e-6f && b.grad_clip == 0.0f,
          "adam");
    CHECK(b.seed == 42 && b.log_every == 1 && b.threads == 2, "seed/log/threads");
    CHECK(b.packing == 1, "train.packing");
    CHECK(b.min_accuracy == 0.5 && b.min_gain == 0.1 && b.eval_max_examples == 100, "eval");
    /* saved text is pretty JSON with every key, and floats are written short */
    char *text;
    size_t n;
    if (slim_read_file(saved, &text, &n) == 0) {
        CHECK(strstr(text, "\"lr\":\t0.0003") != NULL, "lr written short: %s", text);
        CHECK(strstr(text, "\"max_examples\"") && strstr(text, "\"threads\"") && strstr(text, "\"test\""),
              "every key written");
        free(text);
    }
    /* defaults also round-trip */
    config_free(&a);
    config_free(&b);
    const char *d = write_tmp("min.json", "{\"model\": \"m.gguf\"}");
    CHECK(config_load(&a, d) == 0, "minimal config: %s", slim_last_error());
    CHECK(config_save(&a, saved) == 0, "save minimal");
    CHECK(config_load(&b, saved) == 0, "reload minimal: %s", slim_last_error());
    CHECK(b.n_targets == 7 && b.n_labels == 0 && b.test_file == NULL && b.lr == 1e-3f && b.eps == 1e-8f,
          "defaults survive");
    config_free(&a);
    config_free(&b);
}

/* The data-stage keys: shapes, columns, invalid_utf8, split, and the validate gates. */
static void test_data_keys(void) {
    slim_config c;
    config_defaults(&c);
    CHECK(strcmp(c.shape, "auto") == 0 && c.replace_bad_utf8 == 0 && c.has_split == 0 &&
              c.split_test_fraction == 0.1 && c.split_seed == 1,
          "data defaults");
    CHECK(strcmp(c.prompt_column, "prompt") == 0 && strcmp(c.completion_column, "completion") == 0 &&
              strcmp(c.instruction_column, "instruction") == 0 && strcmp(c.input_column, "input") == 0 &&
              strcmp(c.output_column, "output") == 0 && strcmp(c.messages_column, "messages") == 0,
          "column defaults");
    CHECK(c.val_max_invalid_rows == 0.01 && c.val_max_duplicate_rate == 0.01 && c.val_max_near_duplicate_rate == 0.05 &&
              c.val_max_leakage == 0.0 && c.val_max_imbalance == 20.0 && c.val_min_label_count == 10 &&
              c.val_near_threshold == 0.8 && strcmp(c.val_shingle, "word") == 0 && c.val_shingle_size == 0 &&
              c.val_minhash_bands == 32 && c.val_minhash_rows == 4 && c.val_show_rows == 5 && c.val_report_rows == 100,
          "validate defaults");
    config_free(&c);
    const char *p = write_tmp("data_keys.json",
                              "{\"model\": \"m\", \"data\": {\"train\": \"a.tsv\", \"format\": \"tsv\", \"shape\": \"alpaca\",\n"
                              "  \"columns\": {\"instruction\": \"q\", \"input\": \"ctx\", \"output\": \"a\", \"prompt\": \"p\",\n"
                              "               \"completion\": \"c\", \"messages\": \"conv\"},\n"
                              "  \"invalid_utf8\": \"replace\", \"split\": {\"test_fraction\": 0.2, \"seed\": 9}},\n"
                              " \"validate\": {\"max_invalid_rows\": 0.2, \"max_duplicate_rate\": 0.3, \"max_near_duplicate_rate\": 0.4,\n"
                              "  \"max_leakage\": 0.05, \"max_imbalance\": 0, \"min_label_count\": 3, \"near_duplicate_threshold\": 0.7,\n"
                              "  \"shingle\": \"char\", \"shingle_size\": 4, \"minhash_bands\": 16, \"minhash_rows\": 8,\n"
                              "  \"show_rows\": 2, \"report_rows\": 7}}\n");
    slim_config a, b;
    int rc = config_load(&a, p);
    CHECK(rc == 0, "data keys: %s", slim_last_error());
    if (rc) return;
    char saved[512];
    snprintf(saved, sizeof saved, "%s/saved_data.json", tmpdir);
    CHECK(config_save(&a, saved) == 0, "save: %s", slim_last_error());
    rc = config_load(&b, saved);
    CHECK(rc == 0, "reload: %s", slim_last_error());
    if (rc) { config_free(&a); return; }
    for (int k = 0; k < 2; k++) {
        const slim_config *x = k ? &b : &a;
        CHECK(strcmp(x->format, "tsv") == 0 && strcmp(x->shape, "alpaca") == 0 && x->replace_bad_utf8 == 1, "data %d", k);
        CHECK(strcmp(x->instruction_column, "q") == 0 && strcmp(x->input_column, "ctx") == 0 &&
                  strcmp(x->output_column, "a") == 0 && strcmp(x->prompt_column, "p") == 0 &&
                  strcmp(x->completion_column, "c") == 0 && strcmp(x->messages_column, "conv") == 0,
              "columns %d", k);
        CHECK(x->has_split && x->split_test_fraction == 0.2 && x->split_seed == 9, "split %d", k);
        CHECK(x->val_max_invalid_rows == 0.2 && x->val_max_duplicate_rate == 0.3 && x->val_max_near_duplicate_rate == 0.4 &&
                  x->val_max_leakage == 0.05 && x->val_max_imbalance == 0 && x->val_min_label_count == 3 &&
                  x->val_near_threshold == 0.7 && strcmp(x->val_shingle, "char") == 0 && x->val_shingle_size == 4 &&
                  x->val_minhash_bands == 16 && x->val_minhash_rows == 8 && x->val_show_rows == 2 &&
                  x->val_report_rows == 7,
              "validate %d", k);
    }
    config_free(&a);
    config_free(&b);
    expect_bad("shape.json", "{\"model\": \"m\", \"data\": {\"shape\": \"dialogue\"}}", "data.shape", "dialogue");
    expect_bad("utf8.json", "{\"model\": \"m\", \"data\": {\"invalid_utf8\": \"drop\"}}", "data.invalid_utf8", "drop");
    expect_bad("split_test.json", "{\"model\": \"m\", \"data\": {\"test\": \"t.csv\", \"split\": {\"seed\": 1}}}",
               "data.split", "data.test");
    expect_bad("split_frac.json", "{\"model\": \"m\", \"data\": {\"split\": {\"test_fraction\": 1}}}",
               "data.split.test_fraction", "range");
    expect_bad("split_key.json", "{\"model\": \"m\", \"data\": {\"split\": {\"fraction\": 0.1}}}",
               "data.split.fraction", "unknown key");
    expect_bad("col_key.json", "{\"model\": \"m\", \"data\": {\"columns\": {\"output\": 3}}}", "data.columns.output",
               "expected a string");
    expect_bad("val_key.json", "{\"model\": \"m\", \"validate\": {\"max_dupes\": 0.1}}", "validate.max_dupes",
               "unknown key");
    expect_bad("val_rate.json", "{\"model\": \"m\", \"validate\": {\"max_leakage\": 2}}", "validate.max_leakage",
               "range");
    expect_bad("val_shingle.json", "{\"model\": \"m\", \"validate\": {\"shingle\": \"line\"}}", "validate.shingle",
               "line");
    expect_bad("val_imb.json", "{\"model\": \"m\", \"validate\": {\"max_imbalance\": 0.5}}", "validate.max_imbalance",
               "below 1");
    expect_bad("val_thr.json", "{\"model\": \"m\", \"validate\": {\"near_duplicate_threshold\": 0}}",
               "validate.near_duplicate_threshold", "range");
    expect_bad("val_mh.json", "{\"model\": \"m\", \"validate\": {\"minhash_bands\": 256, \"minhash_rows\": 64}}",
               "minhash", "1024");
}

/* data.val, data.split.val_fraction, train.eval_every and train.early_stopping: parsed, saved, refused. */
static void test_val_keys(void) {
    const char *path = write_tmp("val_ok.json", "{\"model\": \"m\", \"data\": {\"test\": \"t.csv\", \"split\": "
                                 "{\"val_fraction\": 0.2, \"seed\": 4}}, \"train\": {\"eval_every\": 7, "
                                 "\"early_stopping\": {\"metric\": \"val_accuracy\", \"patience\": 3, \"min_delta\": 0.01}}}");
    slim_config c;
    int rc = config_load(&c, path);
    CHECK(rc == 0, "val keys: %s", slim_last_error());
    if (rc == 0) {
        CHECK(c.has_split && c.split_val_fraction == 0.2 && c.eval_every == 7 && !strcmp(c.es_metric, "val_accuracy") &&
                  c.es_patience == 3 && c.es_min_delta == 0.01,
              "val keys read");
        const char *saved = write_tmp("val_saved.json", "");
        slim_config d;
        CHECK(config_save(&c, saved) == 0 && config_load(&d, saved) == 0, "val keys saved: %s", slim_last_error());
        CHECK(d.split_val_fraction == 0.2 && d.eval_every == 7 && d.es_patience == 3 && d.es_min_delta == 0.01 &&
                  !strcmp(d.es_metric, "val_accuracy"),
              "val keys round trip");
        config_free(&d);
        config_free(&c);
    }
    rc = config_load(&c, write_tmp("val_def.json", "{\"model\": \"m\", \"data\": {\"val\": \"v.csv\"}}"));
    CHECK(rc == 0 && !strcmp(c.val_file, "v.csv") && c.eval_every == -1 && c.es_patience == 0 &&
              !strcmp(c.es_metric, "val_loss") && c.split_val_fraction == 0,
          "val defaults: %s", slim_last_error());
    config_free(&c);
    expect_bad("val_both.json", "{\"model\": \"m\", \"data\": {\"val\": \"v.csv\", \"split\": {\"val_fraction\": 0.1}}}",
               "data.val", "val_fraction");
    expect_bad("val_frac.json", "{\"model\": \"m\", \"data\": {\"split\": {\"val_fraction\": 1}}}",
               "data.split.val_fraction", "range");
    expect_bad("val_sum.json", "{\"model\": \"m\", \"data\": {\"split\": {\"test_fraction\": 0.5, \"val_fraction\": 0.5}}}",
               "data.split", "no training rows");
    expect_bad("val_every.json", "{\"model\": \"m\", \"train\": {\"eval_every\": 5}}", "train.eval_every",
               "validation set");
    expect_bad("val_every_neg.json", "{\"model\": \"m\", \"train\": {\"eval_every\": -2}}", "train.eval_every", "range");
    expect_bad("es_noval.json", "{\"model\": \"m\", \"train\": {\"early_stopping\": {\"patience\": 2}}}",
               "train.early_stopping", "validation");
    expect_bad("es_off.json", "{\"model\": \"m\", \"data\": {\"val\": \"v.csv\"}, \"train\": {\"eval_every\": 0, "
               "\"early_stopping\": {\"patience\": 2}}}", "train.early_stopping", "eval_every");
    expect_bad("es_metric.json", "{\"model\": \"m\", \"train\": {\"early_stopping\": {\"metric\": \"loss\"}}}",
               "train.early_stopping.metric", "not one of");
    expect_bad("es_key.json", "{\"model\": \"m\", \"train\": {\"early_stopping\": {\"patients\": 2}}}",
               "train.early_stopping.patients", "unknown key");
    expect_bad("es_delta.json", "{\"model\": \"m\", \"train\": {\"early_stopping\": {\"min_delta\": -1}}}",
               "train.early_stopping.min_delta", "range");
}

static void test_bad(void) {
    expect_bad("unknown_top.json", "{\"model\": \"m\", \"modle\": 1}", "modle", "unknown key");
    expect_bad("type_packing.json", "{\"model\": \"m\", \"train\": {\"packing\": 1}}", "train.packing", "true or false");
    expect_bad("bad_quant.json", "{\"model\": \"m\", \"base\": {\"quant\": \"q3\"}}", "base.quant", "not one of");
    expect_bad("type_quant.json", "{\"model\": \"m\", \"base\": {\"quant\": 4}}", "base.quant", "expected a string");
    expect_bad("unknown_base.json", "{\"model\": \"m\", \"base\": {\"qaunt\": \"nf4\"}}", "base.qaunt", "unknown key");
    expect_bad("unknown_nested.json", "{\"model\": \"m\", \"train\": {\"learning_rate\": 0.1}}",
               "train.learning_rate", "unknown key");
    expect_bad("unknown_deep.json", "{\"model\": \"m\", \"data\": {\"columns\": {\"txt\": \"a\"}}}",
               "data.columns.txt", "unknown key");
    expect_bad("type_lr.json", "{\"model\": \"m\", \"train\": {\"lr\": \"fast\"}}", "train.lr", "expected a number");
    expect_bad("type_r.json", "{\"model\": \"m\", \"lora\": {\"r\": 2.5}}", "lora.r", "integer");
    expect_bad("type_data.json", "{\"model\": \"m\", \"data\": []}", "data", "expected an object");
    expect_bad("type_model.json", "{\"model\": 3}", "model", "expected a string");
    expect_bad("no_model.json", "{\"out_dir\": \"x\"}", "model", "missing");
    expect_bad("bad_target.json", "{\"model\": \"m\", \"lora\": {\"targets\": [\"q\", \"wq\"]}}", "lora.targets[1]",
               "wq");
    expect_bad("dup_target.json", "{\"model\": \"m\", \"lora\": {\"targets\": [\"q\", \"q\"]}}", "lora.targets[1]",
               "duplicate");
    expect_bad("empty_targets.json", "{\"model\": \"m\", \"lora\": {\"targets\": []}}", "lora.targets", "empty");
    expect_bad("r0.json", "{\"model\": \"m\", \"lora\": {\"r\": 0}}", "lora.r", "range");
    expect_bad("lr0.json", "{\"model\": \"m\", \"train\": {\"lr\": 0}}", "train.lr", "range");
    expect_bad("bs0.json", "{\"model\": \"m\", \"train\": {\"batch_size\": 0}}", "train.batch_size", "range");
    expect_bad("beta.json", "{\"model\": \"m\", \"train\": {\"beta2\": 1.0}}", "train.beta2", "range");
    expect_bad("badrows.json", "{\"model\": \"m\", \"data\": {\"max_bad_rows\": 1.5}}", "data.max_bad_rows", "range");
    expect_bad("format.json", "{\"model\": \"m\", \"data\": {\"format\": \"xml\"}}", "data.format", "xml");
    expect_bad("dup_label.json", "{\"model\": \"m\", \"data\": {\"labels\": [\"a\", \"b\", \"a\"]}}",
               "data.labels[2]", "duplicate");
    expect_bad("label_type.json", "{\"model\": \"m\", \"data\": {\"labels\": [\"a\", 1]}}", "data.labels[1]",
               "expected a string");
    expect_bad("tmpl_label.json", "{\"model\": \"m\", \"data\": {\"template\": {\"prompt\": \"{text} {label}\"}}}",
               "data.template.prompt", "{label}");
    expect_bad("tmpl_notext.json", "{\"model\": \"m\", \"data\": {\"template\": {\"prompt\": \"hello\"}}}",
               "data.template.prompt", "{text}");
    expect_bad("tmpl_comp.json", "{\"model\": \"m\", \"data\": {\"template\": {\"completion\": \" x\"}}}",
               "data.template.completion", "{label}");
    expect_bad("dup_key.json", "{\"model\": \"m\", \"model\": \"n\"}", "model", "duplicate");
    expect_bad("malformed.json", "{\n  \"model\": \"m\",\n  \"train\": {\"lr\": 0.1,}\n}", ":3:", "malformed JSON");
    expect_bad("trailing.json", "{\"model\": \"m\"} x", ":1:", "malformed JSON");
    expect_bad("empty.json", "", NULL, "malformed JSON");
    expect_bad("top_array.json", "[1, 2]", NULL, "expected an object");

    slim_config c;
    CHECK(config_load(&c, "/nonexistent/dir/none.json") == -1, "missing file fails");
    CHECK(strstr(slim_last_error(), "/nonexistent/dir/none.json") != NULL, "names the missing file: %s",
          slim_last_error());
    config_free(&c);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/slimtune-test-config-XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    test_defaults();
    test_shipped();
    test_round_trip();
    test_data_keys();
    test_bad();
    test_val_keys();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmpdir);
    return tu_finish("test_config");
}
