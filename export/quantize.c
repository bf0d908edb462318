/* quantize.c — `slimtune quantize`: see quantize.h. Tensor selection and fallbacks follow
 * llama.cpp's llama-quantize (src/llama-quant.cpp) in --pure mode: only matrices named "*weight"
 * are quantized, norms stay as they are, and a row length that the chosen block size does not divide
 * falls back (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, else / then F16). */
#include "quantize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "common.h"
#include "format/gguf.h"
#include "model/quant.h"
#include "mix.h"

static const struct { const char *name; uint32_t type; uint32_t ftype; } quantize_types[] = {
    { "f16", GGML_TYPE_F16, 1 },   { "bf16", GGML_TYPE_BF16, 32 }, { "q8_0", GGML_TYPE_Q8_0, 7 },
    { "q4_0", GGML_TYPE_Q4_0, 2 }, { "q4_1", GGML_TYPE_Q4_1, 3 },  { "q5_0", GGML_TYPE_Q5_0, 8 },
    { "q5_1", GGML_TYPE_Q5_1, 9 }, { "q4_k", GGML_TYPE_Q4_K, 14 }, { "q5_k", GGML_TYPE_Q5_K, 16 },
    { "q6_k", GGML_TYPE_Q6_K, 18 },
};
#define N_QUANTIZE_TYPES (sizeof quantize_types / sizeof quantize_types[0])

int quantize_parse_type(const char *name) {
    for (size_t i = 0; i < N_QUANTIZE_TYPES; i++)
        if (!strcasecmp(name, quantize_types[i].name)) return (int)quantize_types[i].type;
    return -1;
}

uint32_t quantize_file_type(uint32_t type) {
    for (size_t i = 0; i < N_QUANTIZE_TYPES; i++)
        if (quantize_types[i].type == type) return quantize_types[i].ftype;
    return 0; /* LLAMA_FTYPE_ALL_F32 */
}

/* Whether llama-quantize would quantize this tensor: a matrix whose name ends in "weight", not a norm. */
static int quantize_wanted(const gguf_tensor *t) {
    size_t len = strlen(t->name);
    if (t->n_dims < 2) return 0;
    if (len < 6 || strcmp(t->name + len - 6, "weight") != 0) return 0;
    return strstr(t->name, "norm") == NULL;
}

/* quantize_model and quantize_model_mix: type (pure), or the mix of ft. */
static int quantize_file(const char *in_path, const char *out_path, uint32_t type, const file_type *ft) {
    if (!ft && quantize_file_type(type) == 0)
        return slim_set_error("quantize: unsupported target type %s", gguf_type_name(type));
    gguf_file g;
    if (gguf_open(&g, in_path) != 0) return -1;
    gguf_writer *w = gguf_writer_init();
    int rc = -1;
    uint8_t *dst = NULL;
    uint64_t bytes_in = 0, bytes_out = 0;

    for (uint64_t i = 0; i < g.n_kv; i++) gguf_writer_copy_kv(w, &g.kv[i]);
    gguf_writer_set_u32(w, "general.file_type", ft ? ft->ftype : quantize_file_type(type));
    tensor_mix mix;
    if (ft) tensor_mix_init(&mix, ft, &g);

    for (uint64_t ti = 0; ti < g.n_tensors; ti++) {
        const gguf_tensor *t = &g.tensors[ti];
        bytes_in += t->nbytes;
        if (ft ? !tensor_mix_wanted(t) : !quantize_wanted(t)) {
            if (gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data) != 0) goto done;
            bytes_out += t->nbytes;
            continue;
        }
        const int64_t cols = t->ne[0], rows = t->ne[1] * t->ne[2] * t->ne[3];
        const uint32_t ty = ft ? tensor_mix_type(&mix, t) : quant_fallback_type(type, cols);
        if (!ft && ty != type)
            fprintf(stderr, "quantize: %s: rows of %lld do not fit %s blocks, stored as %s\n", t->name,
                    (long long)cols, gguf_type_name(type), gguf_type_name(ty));
        const size_t in_row = gguf_row_size(t->type, cols), out_row = gguf_row_size(ty, cols);
        if (in_row == 0 || out_row == 0) {
            slim_set_error("%s: tensor '%s': cannot convert %s rows of %lld to %s", in_path, t->name,
                           gguf_type_name(t->type), (long long)cols, gguf_type_name(ty));
            goto done;
        }
        dst = slim_realloc(dst, out_row * (size_t)rows);
        int bad = 0;
        #pragma omp parallel
        {
            float *row = slim_malloc((size_t)cols * sizeof(float));
            #pragma omp for schedule(static)
            for (int64_t r = 0; r < rows; r++) {
                const uint8_t *src = (const uint8_t *)t->data + (size_t)r * in_row;
                if (quant_dequantize_row(t->type, src, row, cols) != 0 ||
                    quant_quantize_row(ty, row, dst + (size_t)r * out_row, cols) != 0) {
                    #pragma omp atomic write
                    bad = 1;
                }
            }
            free(row);
        }
        if (bad) {
            slim_set_error("%s: tensor '%s': cannot convert %s to %s", in_path, t->name, gguf_type_name(t->type),
                           gguf_type_name(ty));
            goto done;
        }
        if (gguf_writer_add_tensor(w, t->name, ty, t->n_dims, t->ne, dst) != 0) goto done;
        bytes_out += out_row * (size_t)rows;
    }
    if (gguf_writer_write(w, out_path) != 0) goto done;
    fprintf(stderr, "quantize: %s -> %s (%s): tensor data %.2f MB -> %.2f MB\n", in_path, out_path,
            ft ? ft->name : gguf_type_name(type), bytes_in / 1e6, bytes_out / 1e6);
    rc = 0;
done:
    free(dst);
    gguf_writer_free(w);
    gguf_close(&g);
    return rc;
}

int quantize_model(const char *in_path, const char *out_path, uint32_t type) {
    return quantize_file(in_path, out_path, type, NULL);
}

int quantize_model_mix(const char *in_path, const char *out_path, const file_type *ft) {
    return quantize_file(in_path, out_path, ft->type, ft);
}

static void quantize_usage(FILE *f) {
    fprintf(f, "usage: slimtune quantize IN.gguf OUT.gguf --type TYPE\n"
               "  TYPE: f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_k q5_k q6_k, or q4_k_m q5_k_m (llama-quantize's mix:\n"
               "  the output matrix and some layers' attn_v / ffn_down in Q6_K)\n"
               "  Re-encodes every weight matrix (norms and other 1-D tensors are kept) as TYPE, like\n"
               "  llama-quantize --pure; matrices whose rows TYPE's blocks do not divide fall back\n"
               "  (q4_k -> q5_0, q5_k -> q5_1, q6_k -> q8_0, else f16).\n");
}

int quantize_parse_args(quantize_opts *o, int argc, char **argv) {
    const char *pos[2] = { NULL, NULL }, *type_arg = NULL;
    int n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { quantize_usage(stdout); return SLIM_HELP; }
        if (!strcmp(a, "--type") && i + 1 < argc) type_arg = argv[++i];
        else if ((a[0] == '-' && a[1]) || n_pos == 2) return slim_bad_option("quantize", a);
        else pos[n_pos++] = a;
    }
    if (n_pos != 2 || !type_arg) return slim_set_error("IN.gguf, OUT.gguf and --type are required");
    int type = quantize_parse_type(type_arg);
    const file_type *ft = file_type_find(type_arg);
    o->mix = type < 0 && ft && ft->k_mix ? ft : NULL;
    if (type < 0 && !o->mix) return slim_set_error("unknown --type '%s'", type_arg);
    o->in_path = pos[0];
    o->out_path = pos[1];
    o->type = o->mix ? o->mix->type : (uint32_t)type;
    return SLIM_OK;
}

int quantize_run(const quantize_opts *o) {
    double t0 = slim_time_sec();
    int rc = o->mix ? quantize_model_mix(o->in_path, o->out_path, o->mix)
                    : quantize_model(o->in_path, o->out_path, o->type);
    if (rc != 0) return -1;
    fprintf(stderr, "quantize: done in %.2f s\n", slim_time_sec() - t0);
    return SLIM_OK;
}

int quantize_main(int argc, char **argv) {
    quantize_opts o;
    int r = quantize_parse_args(&o, argc, argv);
    return r == SLIM_OK ? quantize_run(&o) : r == SLIM_HELP ? SLIM_OK : (quantize_usage(stderr), -1);
}
