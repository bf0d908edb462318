/* export.c — `slimtune export`: a merged F32 GGUF (base + LoRA delta) and the adapter alone as a
 * llama.cpp LoRA GGUF; see export.h. Both are written atomically by the GGUF writer. */
#include "export.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "config.h"
#include "format/gguf.h"
#include "model/model.h"

/* Loads the base (its own tensor types, in place: nothing converted, every tensor checked as
 * model_load checks it) and the adapter. Returns 0 or -1 (nothing left to free). */
static int export_open(model *m, lora_adapter *a, const char *model_path, const char *adapter_path) {
    if (model_load_quant(m, model_path, QUANT_KEEP) != 0) return -1;
    if (lora_load(a, m, adapter_path) != 0) { model_free(m); return -1; }
    return 0;
}

/* Every metadata key of the base, in order, then the merge notes. */
static void export_merge_kvs(gguf_writer *w, const gguf_file *g, const lora_adapter *a) {
    for (uint64_t i = 0; i < g->n_kv; i++) gguf_writer_copy_kv(w, &g->kv[i]);
    const gguf_kv *name_kv = gguf_find_kv(g, "general.name");
    char name[512];
    if (name_kv && name_kv->type == GGUF_TYPE_STRING)
        snprintf(name, sizeof name, "%s (slimtune LoRA merged)", name_kv->str);
    else
        snprintf(name, sizeof name, "slimtune LoRA merged");
    gguf_writer_set_str(w, "general.name", name);
    gguf_writer_set_u32(w, "slimtune.lora.r", (uint32_t)a->r);
    gguf_writer_set_f32(w, "slimtune.lora.alpha", a->alpha);
    char targets[128] = "";
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        if (!a->enabled[t]) continue;
        if (targets[0]) strcat(targets, ",");
        strcat(targets, lora_target_names[t]);
    }
    gguf_writer_set_str(w, "slimtune.lora.targets", targets);
}

/* Whether base tensor t is an adapted projection; sets its layer and target. */
static int export_is_merged(const gguf_tensor *t, const lora_adapter *a, int *l, int *tg) {
    char part;
    return lora_parse_tensor_name(t->name, l, tg, &part) == 0 && part == 0 && *l >= 0 && *l < a->n_layers &&
           a->enabled[*tg];
}

/* Declares every output tensor (adapted projections as F32 [in, out], the rest as in the base) and
 * checks that each adapter delta has its projection. Returns 0 or -1. */
static int export_declare(gguf_writer *w, const model *m, const lora_adapter *a) {
    const gguf_file *g = &m->gguf;
    int n_merged = 0, n_expected = 0, l, tg;
    for (int t = 0; t < LORA_N_TARGETS; t++) n_expected += a->enabled[t] ? a->n_layers : 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        if (export_is_merged(t, a, &l, &tg)) {
            int in, out;
            model_target_shape(&m->cfg, tg, &in, &out);
            int64_t ne[2] = {in, out};
            if (gguf_writer_add_tensor_info(w, t->name, GGML_TYPE_F32, 2, ne) != 0) return -1;
            n_merged++;
        } else if (gguf_writer_add_tensor_info(w, t->name, t->type, t->n_dims, t->ne) != 0) {
            return -1;
        }
    }
    if (n_merged != n_expected)
        return slim_set_error("%s: merged %d projection tensors but the adapter has %d", g->path, n_merged, n_expected);
    return 0;
}

/* Writes W' = W + (alpha/r) B A of (l, tg): W decoded from the base's own type into buf, merged,
 * checked finite. Returns 0 or -1. */
static int export_write_merged(gguf_writer *w, const model *m, const lora_adapter *a, const gguf_tensor *t, int l,
                               int tg, float *buf, const char *adapter_path) {
    int in, out;
    model_target_shape(&m->cfg, tg, &in, &out);
    size_t rb = gguf_row_size(t->type, in), n = (size_t)in * out;
    for (int r = 0; r < out; r++)
        if (quant_dequantize_row(t->type, (const uint8_t *)t->data + (size_t)r * rb, buf + (size_t)r * in, in) != 0)
            return slim_set_error("%s: tensor %s: cannot decode type %s", m->gguf.path, t->name,
                                  gguf_type_name(t->type));
    gguf_drop_pages(&m->gguf, t->data, (size_t)t->nbytes);
    lora_merge(buf, a, l, tg, in, out);
    for (size_t j = 0; j < n; j++)
        if (!isfinite(buf[j]))
            return slim_set_error("%s: merged tensor %s has a non-finite value at element %zu (bad adapter?)",
                                  adapter_path, t->name, j);
    return gguf_writer_write_data(w, buf, n * sizeof(float));
}

/* Copies base tensor t's bytes as they are, 64 MiB at a time, dropping the file's pages behind. */
static int export_write_copy(gguf_writer *w, const gguf_file *g, const gguf_tensor *t) {
    const size_t chunk = (size_t)64 << 20;
    for (uint64_t o = 0; o < t->nbytes; o += chunk) {
        size_t k = t->nbytes - o < chunk ? (size_t)(t->nbytes - o) : chunk;
        if (gguf_writer_write_data(w, (const uint8_t *)t->data + o, k) != 0) return -1;
        gguf_drop_pages(g, (const uint8_t *)t->data + o, k);
    }
    return 0;
}

/* export_merge on a loaded base and adapter: streams the output one tensor at a time (only the
 * largest adapted projection is ever held as F32). */
static int export_merge_loaded(const model *m, const lora_adapter *a, const char *adapter_path, const char *out_path) {
    const gguf_file *g = &m->gguf;
    gguf_writer *w = gguf_writer_init();
    float *buf = NULL;
    size_t cap = 0;
    int rc = -1, l, tg;
    export_merge_kvs(w, g, a);
    if (export_declare(w, m, a) != 0 || gguf_writer_begin(w, out_path) != 0) goto done;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        if (export_is_merged(t, a, &l, &tg)) {
            int in, out;
            model_target_shape(&m->cfg, tg, &in, &out);
            if ((size_t)in * out > cap) { cap = (size_t)in * out; free(buf); buf = slim_malloc(cap * sizeof(float)); }
            if (export_write_merged(w, m, a, t, l, tg, buf, adapter_path) != 0) goto done;
        } else if (export_write_copy(w, g, t) != 0) {
            goto done;
        }
    }
    rc = gguf_writer_finish(w);
done:
    free(buf);
    gguf_writer_free(w); /* removes the temporary file after a failure */
    return rc;
}

int export_merge(const char *model_path, const char *adapter_path, const char *out_path) {
    model m;
    lora_adapter a;
    if (export_open(&m, &a, model_path, adapter_path) != 0) return -1;
    int rc = export_merge_loaded(&m, &a, adapter_path, out_path);
    lora_free(&a);
    model_free(&m);
    return rc;
}

int export_adapter(const char *model_path, const char *adapter_path, const char *out_path) {
    model m;
    lora_adapter a;
    if (export_open(&m, &a, model_path, adapter_path) != 0) return -1;
    int rc = lora_save(&a, &m, out_path);
    lora_free(&a);
    model_free(&m);
    return rc;
}

/* Both outputs of export_run from one load of the base and the adapter. */
static int export_both(const char *model_path, const char *adapter_path, const char *merged, const char *lora_out) {
    model m;
    lora_adapter a;
    if (export_open(&m, &a, model_path, adapter_path) != 0) return -1;
    int rc = export_merge_loaded(&m, &a, adapter_path, merged);
    if (rc == 0) rc = lora_save(&a, &m, lora_out);
    lora_free(&a);
    model_free(&m);
    return rc;
}

/* ---------------------------------------------------------------------------------------------- */
/* command line */

static void export_usage(FILE *f) {
    fprintf(f,
            "usage: slimtune export --config FILE [--adapter PATH] [--out DIR]\n"
            "  Writes DIR/merged-f32.gguf (the base with the LoRA delta merged into every adapted projection,\n"
            "  F32; runs in llama.cpp as a plain model) and DIR/adapter-lora.gguf (the adapter alone, llama.cpp\n"
            "  LoRA GGUF, for llama.cpp --lora over the base).\n"
            "  --adapter PATH   LoRA adapter (default <out_dir>/train/adapter.gguf)\n"
            "  --out DIR        output directory (default <out_dir>/export)\n");
}

int export_parse_args(export_opts *o, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { export_usage(stdout); return SLIM_HELP; }
        const char **dst = !strcmp(a, "--config") ? &o->config : !strcmp(a, "--adapter") ? &o->adapter
                         : !strcmp(a, "--out")    ? &o->out    : NULL;
        if (!dst || i + 1 >= argc) return slim_bad_option("export", a);
        *dst = argv[++i];
    }
    if (!o->config) return slim_set_error("--config FILE is required");
    return SLIM_OK;
}

int export_run(const slim_config *cfg, const export_opts *o) {
    double t0 = slim_time_sec();
    char adapter[4096], dir[4096], merged[4096], lora_out[4096];
    if (slim_format_path(adapter, sizeof adapter, "%s", o->adapter ? o->adapter : "") ||
        (!o->adapter && slim_format_path(adapter, sizeof adapter, "%s/train/adapter.gguf", cfg->out_dir)) ||
        slim_format_path(dir, sizeof dir, "%s", o->out ? o->out : "") ||
        (!o->out && slim_format_path(dir, sizeof dir, "%s/export", cfg->out_dir)) ||
        slim_format_path(merged, sizeof merged, "%s/merged-f32.gguf", dir) ||
        slim_format_path(lora_out, sizeof lora_out, "%s/adapter-lora.gguf", dir))
        return -1;
    if (access(adapter, R_OK) != 0)
        return slim_set_error("%s: adapter not found (run `slimtune train` first, or pass --adapter PATH)", adapter);
    if (slim_mkdir_p(dir) != 0) return -1;
    if (export_both(cfg->model, adapter, merged, lora_out) != 0) return -1;
    printf("merged model:   %s\nLoRA adapter:   %s\n", merged, lora_out);
    printf("run it:  llama-cli -m %s\n   or:   llama-cli -m %s --lora %s\n", merged, cfg->model, lora_out);
    fprintf(stderr, "export: done in %.2f s\n", slim_time_sec() - t0);
    return SLIM_OK;
}

/* X_run through slim_config_main. */
static int export_run_opts(const slim_config *cfg, const void *o) { return export_run(cfg, o); }

int export_main(int argc, char **argv) {
    export_opts o;
    int r = export_parse_args(&o, argc, argv);
    return slim_config_main(r, export_usage, o.config, export_run_opts, &o);
}
