/* plan.c — the memory plan of a training run; see plan.h. */
#include "plan.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "acts.h"
#include "common.h"
#include "config.h"

/* The process floor measured here (scripts/bench-scale prints planned beside measured): about 30 MiB of
 * code, libraries and the C runtime, and per thread the BLAS packing buffers and stack, which the large
 * products fill. */
#define PLAN_RUNTIME_BASE ((size_t)14 << 20)
#define PLAN_RUNTIME_THREAD ((size_t)2 << 20)

/* Bytes of the frozen weights as model_load_quant holds them: each matrix in its storage type (the
 * embedding once when the output is tied), vectors as F32; QUANT_KEEP reads the file in place, so its
 * pages count whole. */
static size_t plan_base_bytes(const gguf_file *g, int quant) {
    size_t bytes = 0;
    int fallback;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        const size_t n = (size_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
        if (t->n_dims != 2) bytes += n * sizeof(float);
        else if (quant == QUANT_KEEP) bytes += t->nbytes;
        else bytes += model_matrix_bytes(quant, t->type, t->ne[1], t->ne[0], &fallback);
    }
    return bytes;
}

void mem_plan_make(mem_plan *p, const gguf_file *g, const model_config *c, const plan_run *r) {
    memset(p, 0, sizeof *p);
    p->base = plan_base_bytes(g, r->quant);
    size_t n_lora = 0;
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        int in, out;
        model_target_shape(c, t, &in, &out);
        if (r->targets_on[t]) n_lora += (size_t)r->lora_r * (in + out) * c->n_layers;
    }
    p->lora = n_lora * sizeof(float) * (4 + (r->keep_best ? 1 : 0));
    for (int m = 0; m < 2; m++) {
        const acts_mode mode = m ? ACTS_CHECKPOINT : ACTS_TRAIN;
        p->acts[m] = acts_mode_bytes(c, r->B, r->T, r->lora_r, mode);
        p->attention[m] = acts_buffer_bytes(c, r->B, r->T, r->lora_r, mode, "lse");
    }
    p->head = acts_buffer_bytes(c, r->B, r->T, r->lora_r, ACTS_TRAIN, "logits") +
              acts_buffer_bytes(c, r->B, r->T, r->lora_r, ACTS_TRAIN, "dlogits");
    p->eval = r->val_B > 0 ? acts_inference_bytes(c, r->val_B, r->val_T, r->lora_r) : 0;
    p->data = r->data_bytes;
    p->runtime = PLAN_RUNTIME_BASE + PLAN_RUNTIME_THREAD * (size_t)(r->threads > 0 ? r->threads : 1);
    for (int m = 0; m < 2; m++) p->total[m] = p->base + p->lora + p->acts[m] + p->eval + p->data + p->runtime;
}

void plan_run_from_config(plan_run *r, const slim_config *c, int has_val) {
    r->quant = base_quant_index(c->base_quant);
    r->B = c->batch_size;
    r->lora_r = c->lora_r;
    for (int i = 0; i < c->n_targets; i++) r->targets_on[lora_target_index(c->targets[i])] = 1;
    r->keep_best = has_val && c->es_patience > 0;
    r->val_B = has_val ? c->batch_size : 0;
}

size_t plan_memory_limit(const slim_config *c) {
    return c->memory_limit_mib > 0 ? (size_t)c->memory_limit_mib << 20 : mem_available();
}

int plan_layers(const slim_config *c, const mem_plan *p, size_t avail) {
    return !strcmp(c->checkpointing, "layers") ||
           (!strcmp(c->checkpointing, "auto") && avail > 0 && p->total[0] > avail);
}

static double plan_mib(size_t b) { return b / 1048576.0; }

void mem_plan_print(FILE *f, const mem_plan *p, const char *prefix, int chosen) {
    fprintf(f, "%sbase weights         %9.1f MiB\n", prefix, plan_mib(p->base));
    fprintf(f, "%sLoRA + grad + AdamW  %9.1f MiB\n", prefix, plan_mib(p->lora));
    fprintf(f, "%sactivations          %9.1f MiB checkpointing none, %.1f MiB layers (attention statistics %.1f / "
               "%.1f MiB, head chunk %.1f MiB)\n", prefix, plan_mib(p->acts[0]), plan_mib(p->acts[1]),
            plan_mib(p->attention[0]), plan_mib(p->attention[1]), plan_mib(p->head));
    fprintf(f, "%svalidation scoring   %9.1f MiB\n", prefix, plan_mib(p->eval));
    fprintf(f, "%sdatasets             %9.1f MiB\n", prefix, plan_mib(p->data));
    fprintf(f, "%sruntime              %9.1f MiB\n", prefix, plan_mib(p->runtime));
    for (int m = 0; m < 2; m++)
        fprintf(f, "%speak, %-6s         %9.1f MiB%s\n", prefix, m ? "layers" : "none", plan_mib(p->total[m]),
                chosen == m ? "   <- this run" : "");
}

/* The value of key (e.g. "MemAvailable:") in /proc/meminfo, in bytes; 0 when absent. */
static size_t plan_meminfo(const char *key) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    size_t v = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, strlen(key))) {
            v = (size_t)strtoull(line + strlen(key), NULL, 10) * 1024;
            break;
        }
    fclose(f);
    return v;
}

/* The first number in file path (cgroup files, /proc/self/statm); 0 when unreadable or "max". */
static size_t plan_read_number(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    unsigned long long v = 0;
    if (fscanf(f, "%llu", &v) != 1) v = 0;
    fclose(f);
    return (size_t)v;
}

size_t mem_available(void) {
    size_t avail = plan_meminfo("MemAvailable:");
    size_t limit = plan_read_number("/sys/fs/cgroup/memory.max");
    size_t used = plan_read_number("/sys/fs/cgroup/memory.current");
    if (limit > 0 && limit > used && (avail == 0 || limit - used < avail)) avail = limit - used;
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long pages_total = 0, pages_rss = 0;
    if (f) {
        if (fscanf(f, "%llu %llu", &pages_total, &pages_rss) != 2) pages_rss = 0;
        fclose(f);
    }
    return avail ? avail + (size_t)pages_rss * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

size_t mem_peak_rss(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (size_t)ru.ru_maxrss * 1024;
}
