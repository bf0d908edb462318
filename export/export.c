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

int export_merge(const char *model_path, const char *adapter_path, const char *out_path) {
    model m;
    lora_adapter a;
    if (model_load(&m, model_path) != 0) return -1;
    if (lora_load(&a, &m, adapter_path) != 0) { model_free(&m); return -1; }
    const gguf_file *g = &m.gguf;
    gguf_writer *w = gguf_writer_init();
    int rc = -1, n_merged = 0, n_expected = 0;
    float *buf = NULL;
    size_t buf_cap = 0;

    /* metadata: every key of the base, in order, then the merge notes */
    for (uint64_t i = 0; i < g->n_kv; i++) gguf_writer_copy_kv(w, &g->kv[i]);
    const gguf_kv *name_kv = gguf_find_kv(g, "general.name");
    char name[512];
    if (name_kv && name_kv->type == GGUF_TYPE_STRING)
        snprintf(name, sizeof name, "%s (slimtune LoRA merged)", name_kv->str);
    else
        snprintf(name, sizeof name, "slimtune LoRA merged");
    gguf_writer_set_str(w, "general.name", name);
    gguf_writer_set_u32(w, "slimtune.lora.r", (uint32_t)a.r);
    gguf_writer_set_f32(w, "slimtune.lora.alpha", a.alpha);
    char targets[128] = "";
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        if (!a.enabled[t]) continue;
        if (targets[0]) strcat(targets, ",");
        strcat(targets, lora_target_names[t]);
        n_expected += a.n_layers;
    }
    gguf_writer_set_str(w, "slimtune.lora.targets", targets);

    /* tensors, in the base order */
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        int l, tg;
        char part;
        if (lora_parse_tensor_name(t->name, &l, &tg, &part) == 0 && part == 0 && l >= 0 && l < a.n_layers &&
            a.enabled[tg]) {
            int in, out;
            model_target_shape(&m.cfg, tg, &in, &out);
            size_t n = (size_t)in * out;
            if (n > buf_cap) { buf = slim_realloc(buf, n * sizeof(float)); buf_cap = n; }
            memcpy(buf, m.layers[l].w[tg].data, n * sizeof(float)); /* loaded as F32 */
            lora_merge(buf, &a, l, tg, in, out);
            for (size_t j = 0; j < n; j++)
                if (!isfinite(buf[j])) {
                    slim_set_error("%s: merged tensor %s has a non-finite value at element %zu (bad adapter?)",
                                   adapter_path, t->name, j);
                    goto done;
                }
            int64_t ne[2] = {in, out};
            if (gguf_writer_add_tensor(w, t->name, GGML_TYPE_F32, 2, ne, buf) != 0) goto done;
            n_merged++;
        } else {
            if (gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data) != 0) goto done;
        }
    }
    if (n_merged != n_expected) {
        slim_set_error("%s: merged %d projection tensors but the adapter has %d", model_path, n_merged, n_expected);
        goto done;
    }
    rc = gguf_writer_write(w, out_path);
done:
    free(buf);
    gguf_writer_free(w);
    lora_free(&a);
    model_free(&m);
    return rc;
}

int export_adapter(const char *model_path, const char *adapter_path, const char *out_path) {
    model m;
    lora_adapter a;
    if (model_load(&m, model_path) != 0) return -1;
    if (lora_load(&a, &m, adapter_path) != 0) { model_free(&m); return -1; }
    int rc = lora_save(&a, &m, out_path);
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
    if (export_merge(cfg->model, adapter, merged) != 0) return -1;
    if (export_adapter(cfg->model, adapter, lora_out) != 0) return -1;
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
