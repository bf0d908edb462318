/* export.c — `slimtune export`: merged GGUF files (base + LoRA delta) in llama.cpp's file types and the
 * adapter alone as a llama.cpp LoRA GGUF; see export.h. Every file is streamed and written atomically
 * by the GGUF writer. */
#include "export.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "config.h"
#include "format/gguf.h"
#include "model/model.h"
#include "model/peft.h"
#include "hf_export.h"
#include "merge.h"
#include "mix.h"
#include "registry.h"

/* Loads the base with its weights stored as `quant` (QUANT_KEEP: the file's own types, in place;
 * every tensor checked as model_load checks it) and the adapter. Returns 0 or -1 (nothing to free). */
static int export_open(model *m, lora_adapter *a, const char *model_path, const char *adapter_path, int quant) {
    if (model_load_quant(m, model_path, quant) != 0) return -1;
    if (lora_load(a, m, adapter_path) != 0) { model_free(m); return -1; }
    return 0;
}

/* Every metadata key of the base, in order, then the merge notes and the file type. */
static void export_merge_kvs(gguf_writer *w, const gguf_file *g, const lora_adapter *a, const file_type *ft) {
    for (uint64_t i = 0; i < g->n_kv; i++) gguf_writer_copy_kv(w, &g->kv[i]);
    const gguf_kv *name_kv = gguf_find_kv(g, "general.name");
    char name[512];
    if (name_kv && name_kv->type == GGUF_TYPE_STRING)
        snprintf(name, sizeof name, "%s (slimtune LoRA merged)", name_kv->str);
    else
        snprintf(name, sizeof name, "slimtune LoRA merged");
    gguf_writer_set_str(w, "general.name", name);
    gguf_writer_set_u32(w, "general.file_type", ft->ftype);
    gguf_writer_set_u32(w, "general.quantization_version", 2); /* GGML_QNT_VERSION */
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

/* One merged file being written: the merged values (merge.h), the file type and its mix, the output
 * types of the base's tensors in order, and the encoding scratch. */
typedef struct merge_job {
    merge_src src;
    const file_type *ft;
    uint32_t *types;   /* [n_tensors] output type of each base tensor */
    uint8_t *qbuf;     /* rows of merge_src.buf in the output type */
    size_t qcap;
} merge_job;

/* Declares every output tensor (every matrix in its mix type, the rest as in the base) and checks that
 * each adapter delta has its projection. Returns 0 or -1. */
static int export_declare(gguf_writer *w, merge_job *j) {
    const gguf_file *g = &j->src.m->gguf;
    const lora_adapter *a = j->src.a;
    int n_merged = 0, n_expected = 0, l, tg;
    tensor_mix mix;
    tensor_mix_init(&mix, j->ft, g);
    for (int t = 0; t < LORA_N_TARGETS; t++) n_expected += a->enabled[t] ? a->n_layers : 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        j->types[i] = tensor_mix_type(&mix, t);
        n_merged += merge_is_adapted(&j->src, t, &l, &tg);
        if (gguf_writer_add_tensor_info(w, t->name, j->types[i], t->n_dims, t->ne) != 0) return -1;
    }
    if (n_merged != n_expected)
        return slim_set_error("%s: merged %d projection tensors but the adapter has %d", g->path, n_merged, n_expected);
    return 0;
}

/* Encodes rows [rows, cols] of the merged values as `type` and writes them. Returns 0 or -1. */
static int export_write_rows(gguf_writer *w, merge_job *j, const gguf_tensor *t, uint32_t type, int64_t rows,
                             int64_t cols) {
    const size_t rb = gguf_row_size(type, cols);
    if (rb * (size_t)rows > j->qcap) { free(j->qbuf); j->qcap = rb * (size_t)rows; j->qbuf = slim_malloc(j->qcap); }
    int bad = 0;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++)
        if (quant_quantize_row(type, j->src.buf + (size_t)r * cols, j->qbuf + (size_t)r * rb, cols) != 0) bad = 1;
    if (bad)
        return slim_set_error("%s: tensor %s: cannot encode as %s", j->src.m->gguf.path, t->name, gguf_type_name(type));
    return gguf_writer_write_data(w, j->qbuf, rb * (size_t)rows);
}

/* Writes matrix t of the merged model encoded as `type`, one block of rows at a time (merge_block_rows).
 * Returns 0 or -1. */
static int export_write_matrix(gguf_writer *w, merge_job *j, const gguf_tensor *t, uint32_t type) {
    const int64_t cols = t->ne[0], rows = t->ne[1] * t->ne[2] * t->ne[3], block = merge_block_rows(&j->src, t);
    for (int64_t r0 = 0; r0 < rows; r0 += block) {
        const int64_t r1 = r0 + block < rows ? r0 + block : rows;
        if (merge_rows(&j->src, t, r0, r1) != 0 || export_write_rows(w, j, t, type, r1 - r0, cols) != 0) return -1;
    }
    return 0;
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

/* Writes base tensor i of j in its output type: copied (same type, not adapted, and the loaded weights
 * are the file's own bytes) or converted from the merged values. Returns 0 or -1. */
static int export_write_tensor(gguf_writer *w, merge_job *j, uint64_t i) {
    const gguf_file *g = &j->src.m->gguf;
    const gguf_tensor *t = &g->tensors[i];
    const uint32_t type = j->types[i];
    int l, tg;
    const qmatrix *W = merge_weights(j->src.m, t);
    if (!merge_is_adapted(&j->src, t, &l, &tg) && type == t->type && t->data && (!W || W->type == t->type))
        return export_write_copy(w, g, t);
    if (!t->data && !W) { /* a vector whose file bytes were released: the loaded F32 copy */
        const float *v = merge_vector(j->src.m, t);
        if (!v || type != GGML_TYPE_F32)
            return slim_set_error("%s: tensor %s: its data are no longer in memory", g->path, t->name);
        return gguf_writer_write_data(w, v, sizeof(float) * (size_t)t->ne[0]);
    }
    return export_write_matrix(w, j, t, type);
}

/* Streams the merged model of file type ft to out_path, one tensor at a time. Returns 0 or -1. */
static int export_merge_loaded(const model *m, const lora_adapter *a, const char *adapter_path, const file_type *ft,
                               const char *out_path) {
    merge_job j = {.src = {.m = m, .a = a, .adapter_path = adapter_path}, .ft = ft};
    j.types = slim_calloc(m->gguf.n_tensors + 1, sizeof(uint32_t));
    gguf_writer *w = gguf_writer_init();
    int rc = -1;
    export_merge_kvs(w, &m->gguf, a, ft);
    if (export_declare(w, &j) != 0 || gguf_writer_begin(w, out_path) != 0) goto done;
    for (uint64_t i = 0; i < m->gguf.n_tensors; i++)
        if (export_write_tensor(w, &j, i) != 0) goto done;
    rc = gguf_writer_finish(w);
done:
    free(j.types);
    merge_src_free(&j.src);
    free(j.qbuf);
    gguf_writer_free(w); /* removes the temporary file after a failure */
    return rc;
}

int export_merge(const char *model_path, const char *adapter_path, const char *out_path, const char *format,
                 int base_quant) {
    const file_type *ft = file_type_find(format);
    if (!ft) return slim_set_error("export: unknown format '%s' (%s)", format, file_type_names);
    model m;
    lora_adapter a;
    if (export_open(&m, &a, model_path, adapter_path, base_quant) != 0) return -1;
    int rc = export_merge_loaded(&m, &a, adapter_path, ft, out_path);
    lora_free(&a);
    model_free(&m);
    return rc;
}

int export_adapter(const char *model_path, const char *adapter_path, const char *out_path) {
    model m;
    lora_adapter a;
    if (export_open(&m, &a, model_path, adapter_path, QUANT_KEEP) != 0) return -1;
    int rc = lora_save(&a, &m, out_path);
    lora_free(&a);
    model_free(&m);
    return rc;
}

/* The file (or directory) format f of export.formats writes into the export directory. */
static const char *export_output_name(const char *f) {
    static char merged[64];
    if (!strcmp(f, "lora")) return "adapter-lora.gguf";
    if (!strcmp(f, "peft")) return "adapter-peft";
    if (!strcmp(f, "hf")) return "merged-hf";
    snprintf(merged, sizeof merged, "merged-%s.gguf", f);
    return merged;
}

/* MB (10^6 bytes) of a file, or of the files of a directory. */
static double export_size_mb(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return 0.0;
    if (!S_ISDIR(st.st_mode)) return st.st_size / 1e6;
    DIR *d = opendir(path);
    double mb = 0.0;
    struct dirent *e;
    char p[4500];
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.' && snprintf(p, sizeof p, "%s/%s", path, e->d_name) < (int)sizeof p && stat(p, &st) == 0)
            mb += st.st_size / 1e6;
    if (d) closedir(d);
    return mb;
}

/* Writes each of cfg's export.formats into dir — merged-<format>.gguf (export_merge_loaded), for "lora"
 * adapter-lora.gguf (lora_save), for "peft" adapter-peft/ (peft_save), for "hf" merged-hf/ (hf_export) — from one load of the base, its weights as training stored them
 * (export.merge_base trained: base.quant) or as the file has them (original), and of the adapter;
 * prints a line per file. Returns 0 or -1. */
static int export_formats(const slim_config *cfg, const char *adapter, const char *dir) {
    for (int i = 0; i < cfg->n_export_formats; i++)
        if (strcmp(cfg->export_formats[i], "lora") && strcmp(cfg->export_formats[i], "peft") &&
            strcmp(cfg->export_formats[i], "hf") && !file_type_find(cfg->export_formats[i]))
            return slim_set_error("%s: export.formats: unknown format '%s' (lora, peft, hf, %s)", cfg->path,
                                  cfg->export_formats[i], file_type_names);
    const int trained = strcmp(cfg->merge_base, "original") != 0;
    model m;
    lora_adapter a;
    if (export_open(&m, &a, cfg->model, adapter, trained ? base_quant_index(cfg->base_quant) : QUANT_KEEP) != 0)
        return -1;
    int rc = 0;
    for (int i = 0; i < cfg->n_export_formats && rc == 0; i++) {
        const char *f = cfg->export_formats[i];
        char path[4200];
        int lora = !strcmp(f, "lora"), peft = !strcmp(f, "peft"), hf = !strcmp(f, "hf");
        snprintf(path, sizeof path, "%s/%s", dir, export_output_name(f));
        double t0 = slim_time_sec();
        merge_src src = {.m = &m, .a = &a, .adapter_path = adapter};
        rc = lora   ? lora_save(&a, &m, path)
             : peft ? peft_save(&a, &m, path, cfg->model)
             : hf   ? hf_export(&src, cfg->model, path, cfg->hf_shard_mb)
                    : export_merge_loaded(&m, &a, adapter, file_type_find(f), path);
        merge_src_free(&src);
        if (rc == 0) printf("%-8s %s%s  %.2f MB  (%.1f s)\n", f, path, peft || hf ? "/" : "", export_size_mb(path),
                            slim_time_sec() - t0);
    }
    lora_free(&a);
    model_free(&m);
    return rc;
}

/* ---------------------------------------------------------------------------------------------- */
/* command line */

static void export_usage(FILE *f) {
    fprintf(f,
            "usage: slimtune export --config FILE [--adapter PATH] [--out DIR]\n"
            "  Writes each of export.formats (default f16, q8_0, q4_k_m, lora) to DIR: merged-<format>.gguf, the\n"
            "  base with the LoRA delta merged into every adapted projection, in llama.cpp's file type <format>\n"
            "  (f32 f16 bf16 q8_0 q4_0 q4_k_m q5_k_m q6_k, llama-quantize's per-tensor mix), merged onto the\n"
            "  weights as training stored them (export.merge_base trained, default) or as the file has them\n"
            "  (original); and for \"lora\" adapter-lora.gguf (llama.cpp LoRA GGUF, for --lora over the base).\n"
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
    char adapter[4096], dir[4096];
    if (slim_format_path(adapter, sizeof adapter, "%s", o->adapter ? o->adapter : "") ||
        (!o->adapter && slim_format_path(adapter, sizeof adapter, "%s/train/adapter.gguf", cfg->out_dir)) ||
        slim_format_path(dir, sizeof dir, "%s", o->out ? o->out : "") ||
        (!o->out && slim_format_path(dir, sizeof dir, "%s/export", cfg->out_dir)))
        return -1;
    if (access(adapter, R_OK) != 0)
        return slim_set_error("%s: adapter not found (run `slimtune train` first, or pass --adapter PATH)", adapter);
    if (slim_mkdir_p(dir) != 0) return -1;
    if (export_formats(cfg, adapter, dir) != 0) return -1;
    char *names[SLIM_MAX_FORMATS];
    for (int i = 0; i < cfg->n_export_formats; i++) names[i] = slim_strdup(export_output_name(cfg->export_formats[i]));
    int rc = registry_add(cfg, dir, names, cfg->n_export_formats);
    for (int i = 0; i < cfg->n_export_formats; i++) free(names[i]);
    if (rc != 0) return -1;
    printf("run it:  llama-cli -m %s/merged-<format>.gguf\n   or:   llama-cli -m %s --lora %s/adapter-lora.gguf\n",
           dir, cfg->model, dir);
    fprintf(stderr, "export: done in %.2f s (merged onto the %s weights)\n", slim_time_sec() - t0,
            strcmp(cfg->merge_base, "original") ? "trained" : "original");
    return SLIM_OK;
}

/* X_run through slim_config_main. */
static int export_run_opts(const slim_config *cfg, const void *o) { return export_run(cfg, o); }

int export_main(int argc, char **argv) {
    export_opts o;
    int r = export_parse_args(&o, argc, argv);
    return slim_config_main(r, export_usage, o.config, export_run_opts, &o);
}
