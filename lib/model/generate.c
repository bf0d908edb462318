/* generate.c — greedy decoding with the model's forward pass; see model.h. */
#include "model.h"

int model_generate_greedy(const model *m, const lora_adapter *lora, acts *a, int32_t *tokens, int32_t *targets,
                          int n_prompt, int max_new, int32_t stop, int *stopped) {
    const int V = m->cfg.vocab_size;
    int k = 0;
    *stopped = 0;
    for (; k < max_new; k++) {
        const int T = n_prompt + k;
        for (int t = 0; t < T; t++) targets[t] = t == T - 1 ? 0 : -1; /* only the last row's head */
        model_forward(m, lora, a, tokens, targets, 1, T, NULL, NULL);
        int best = 0;
        for (int v = 1; v < V; v++)
            if (a->logits[v] > a->logits[best]) best = v; /* logits order as probabilities do */
        if (best == m->tok.eos_id || (stop >= 0 && best == stop)) {
            *stopped = 1;
            break;
        }
        tokens[T] = best;
    }
    return k;
}
