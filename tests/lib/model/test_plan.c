/* test_plan.c — the memory plan (lib/model/plan.h) against what the code allocates: the planned base
 * equals the bytes model_load_quant holds at every base.quant (stories260K), the LoRA part equals the
 * adapter's parameters x (weights, gradient, AdamW m and v, best copy), the activation parts equal
 * acts_mode_bytes of both modes, and mem_available / mem_peak_rss read sensible figures. */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "model/acts.h"
#include "model/model.h"
#include "model/plan.h"
#include "testutil.h"

static void test_base_bytes(const char *path) {
    for (int q = 0; q < QUANT_COUNT; q++) {
        model m;
        CHECK(model_load_quant(&m, path, q) == 0, "load at %s: %s", base_quant_names[q], slim_last_error());
        plan_run r = {.quant = q, .B = 2, .T = 16, .lora_r = 4, .threads = 1};
        mem_plan p;
        mem_plan_make(&p, &m.gguf, &m.cfg, &r);
        printf("base.quant %-4s: planned %zu bytes, loaded %zu\n", base_quant_names[q], p.base, m.weight_bytes);
        CHECK(p.base == m.weight_bytes, "base.quant %s: planned %zu bytes, the loader holds %zu", base_quant_names[q],
              p.base, m.weight_bytes);
        model_free(&m);
    }
}

static void test_parts(const char *path) {
    model m;
    CHECK(model_load(&m, path) == 0, "load: %s", slim_last_error());
    int on[LORA_N_TARGETS] = {1, 0, 1, 0, 1, 1, 0};
    lora_adapter lora;
    lora_init(&lora, &m.cfg, 6, 12.0f, on, 1);
    plan_run r = {.quant = QUANT_F32, .B = 3, .T = 40, .lora_r = 6, .keep_best = 1, .val_B = 2, .val_T = 50,
                  .data_bytes = 12345, .threads = 2};
    memcpy(r.targets_on, on, sizeof on);
    mem_plan p;
    mem_plan_make(&p, &m.gguf, &m.cfg, &r);
    CHECK(p.lora == lora.n_params * sizeof(float) * 5, "LoRA part %zu bytes, expected 5 x %zu floats", p.lora,
          lora.n_params);
    CHECK(p.acts[0] == acts_mode_bytes(&m.cfg, 3, 40, 6, ACTS_TRAIN) &&
              p.acts[1] == acts_mode_bytes(&m.cfg, 3, 40, 6, ACTS_CHECKPOINT) && p.acts[1] < p.acts[0],
          "activation parts differ from acts_mode_bytes");
    CHECK(p.eval == acts_inference_bytes(&m.cfg, 2, 50, 6), "validation part differs from acts_inference_bytes");
    CHECK(p.attention[0] == sizeof(float) * m.cfg.n_layers * 3 * m.cfg.n_heads * 40 &&
              p.attention[1] == sizeof(float) * 3 * m.cfg.n_heads * 40,
          "attention statistics %zu / %zu bytes, expected B x H x T floats a kept layer", p.attention[0],
          p.attention[1]);
    for (int k = 0; k < 2; k++)
        CHECK(p.total[k] == p.base + p.lora + p.acts[k] + p.eval + p.data + p.runtime && p.data == 12345,
              "total[%d] is not the sum of its parts", k);
    lora_free(&lora);
    model_free(&m);
}

static void test_machine(void) {
    size_t avail = mem_available(), rss = mem_peak_rss();
    printf("available %.1f MiB, peak RSS so far %.1f MiB\n", avail / 1048576.0, rss / 1048576.0);
    CHECK(avail > ((size_t)64 << 20), "mem_available %zu bytes", avail);
    char *block = slim_malloc((size_t)64 << 20);
    memset(block, 1, (size_t)64 << 20);
    size_t after = mem_peak_rss();
    free(block);
    CHECK(after >= rss + ((size_t)60 << 20), "peak RSS grew by %zu bytes after touching 64 MiB", after - rss);
}

int main(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K.gguf", slim_shared_dir());
    test_base_bytes(path);
    test_parts(path);
    test_machine();
    return tu_finish("test_plan");
}
