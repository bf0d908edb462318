/* chat.h — chat templates: a conversation (system/user/assistant messages) rendered into the exact
 * training text that the model's own Jinja chat_template produces with add_generation_prompt=false,
 * plus the byte spans that carry loss (the trained assistant turns, each with its end-of-turn token).
 *
 * Each template is reproduced from the real chat_template string of the models named below; the
 * fixtures in tests/chat/fixtures were rendered from those strings by @huggingface/jinja (see
 * tests/chat/render.mjs) and tests/lib/tokenizer/test_chat.c compares byte for byte.
 *
 *   name        models (source of the Jinja template)          rendering of one exchange
 *   chatml      plain ChatML (dolphin-mixtral, OpenHermes)      <|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n
 *   qwen2       Qwen1.5 / Qwen2: ChatML, default system         "You are a helpful assistant." when the first message is not a system one
 *   qwen2.5     Qwen2.5 / Qwen2.5-Coder: ChatML, default system "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
 *   qwen3       Qwen3: ChatML; assistant turns after the last user query get "<think>\nR\n</think>\n\n" (the
 *               last one always, R = "" when the content has no </think>); earlier turns lose their
 *               <think> part, as the template's content.split('</think>') does
 *   llama3      Llama 3 Instruct: <|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nU<|eot_id|>... (content
 *               trimmed). The first Meta-Llama-3-8B-Instruct template appended the assistant header even
 *               with add_generation_prompt false; that header is not rendered here (as in the fixed one)
 *   llama3.1    Llama 3.1 / 3.2 Instruct: always a system header with "Cutting Knowledge Date: December 2023\n
 *               Today Date: 26 Jul 2024\n\n" + the system message (the template's fallback date)
 *   llama2      Llama 2 chat: <s>[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST] A </s><s>[INST] ... (stripped)
 *   mistral     Mistral 7B Instruct v0.1 (original): <s>[INST] U [/INST]A</s> [INST] ... no system role
 *   mistral-v1  Mistral v0.1/v0.2 and Mixtral 8x7B (updated): <s> [INST] S\n\nU [/INST] A</s> [INST] ...
 *   mistral-v3  Mixtral 8x22B (v3 tokenizer): <s>[INST] U[/INST] A</s>[INST] ... the system message is
 *               put in front of the LAST message only when that is a user message: in a training
 *               conversation ending with an assistant turn the real template drops it, and so do we
 *   phi3        Phi-3 / Phi-3.5 mini: <|system|>\nS<|end|>\n<|user|>\nU<|end|>\n<|assistant|>\nA<|end|>\n<|endoftext|>
 *   gemma       Gemma 1/2: <bos><start_of_turn>user\nU<end_of_turn>\n<start_of_turn>model\nA<end_of_turn>\n;
 *               a system message is an error ("System role not supported"), as the template raises
 *   gemma3      Gemma 3: as gemma, the system message (untrimmed) + "\n\n" put before the first user turn
 *
 * Strictness: roles are "system", "user", "assistant"; content must not be empty or all whitespace;
 * at least one assistant turn. Templates that raise on role order (llama2, mistral*, gemma*) give the
 * same error here; a system message anywhere but first is an error for them too (some real templates
 * would silently drop or mis-render it). "trim"/"strip" use Python's str.strip whitespace set (the
 * Jinja of transformers and llama.cpp's minja). */
#ifndef SLIM_CHAT_H
#define SLIM_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

enum chat_tmpl {
    CHAT_TMPL_CHATML = 0, CHAT_TMPL_QWEN2, CHAT_TMPL_QWEN25, CHAT_TMPL_QWEN3,
    CHAT_TMPL_LLAMA3, CHAT_TMPL_LLAMA31, CHAT_TMPL_LLAMA2,
    CHAT_TMPL_MISTRAL, CHAT_TMPL_MISTRAL_V1, CHAT_TMPL_MISTRAL_V3,
    CHAT_TMPL_PHI3, CHAT_TMPL_GEMMA, CHAT_TMPL_GEMMA3,
    CHAT_TMPL_COUNT
};

/* Which assistant turns carry loss. */
enum chat_loss { CHAT_LOSS_LAST_ASSISTANT = 0, CHAT_LOSS_ALL_ASSISTANT = 1 };

typedef struct chat_message {
    const char *role;    /* "system", "user" or "assistant" */
    const char *content; /* UTF-8, NUL-terminated */
} chat_message;

typedef struct chat_span { size_t begin, end; } chat_span; /* [begin, end) byte offsets into text */

typedef struct chat_render_out {
    char *text;       /* rendered text, NUL-terminated (slim_malloc'd) */
    size_t len;       /* bytes, without the NUL */
    chat_span *spans; /* [n_spans] loss spans in increasing order: each trained assistant turn from
                       * the start of what the model generates (including a leading separator space
                       * that SentencePiece attaches to the first word, and Qwen3's think block) to
                       * the end of its end-of-turn token text (<|im_end|>, <|eot_id|>, </s>, <|end|>,
                       * <end_of_turn>) */
    int n_spans;
} chat_render_out;

/* Template id of a data.chat_template name (table above; case-sensitive). Returns the id, or -1
 * with an error listing the known names. */
int chat_template_from_name(const char *name);

/* Name of a template id ("?" when out of range). */
const char *chat_template_name(int tmpl);

/* Recognizes a Jinja chat_template string (GGUF tokenizer.chat_template, tokenizer_config.json
 * chat_template) by the markers of the templates above. Returns the id, or -1 with an error asking to
 * set data.chat_template (unknown template, or a known family in a variant slimtune does not
 * reproduce, e.g. Phi-3 medium, SmolLM2's default system message, Mistral's [SYSTEM_PROMPT]). */
int chat_template_detect(const char *jinja);

/* Loss mode of a name: "last" (CHAT_LOSS_LAST_ASSISTANT) or "all" (CHAT_LOSS_ALL_ASSISTANT); -1 and
 * an error otherwise. */
int chat_loss_mode_from_name(const char *name);

/* Renders n messages with template tmpl (add_generation_prompt false) into out (free it with
 * chat_render_out_free; on failure out is left empty). loss_mode: enum chat_loss. Returns 0, or -1
 * with an error naming the message ("message 3 (role \"user\"): ...") for an unknown role, empty
 * content, roles out of the order the template requires, a system message the template rejects, or
 * no assistant turn. */
int chat_render(int tmpl, const chat_message *msgs, int n, int loss_mode, chat_render_out *out);
/* Frees the text and spans of chat_render; *out is zeroed. */
void chat_render_out_free(chat_render_out *out);

/* Renders and tokenizes a conversation: the text is encoded with special-token parsing (the template's
 * markers become their control tokens), BOS is prepended when the tokenizer asks for it (add_bos) and
 * the text does not already start with the BOS token's text, and a token carries loss when the byte
 * where its text starts lies in a loss span. *ids and *loss_mask ([*n_tokens], slim_malloc'd; mask
 * 1 = loss) are owned by the caller. Returns 0, or -1 with an error: chat_render's, a tokenizer error,
 * or the template's end-of-turn text not being a single token of this tokenizer (wrong
 * data.chat_template for the model). */
int chat_encode(const tokenizer *t, int tmpl, const chat_message *msgs, int n, int loss_mode,
                int32_t **ids, uint8_t **loss_mask, int *n_tokens);

#endif
