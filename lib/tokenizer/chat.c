/* chat.c — chat templates rendered exactly as the models' Jinja chat_template strings render them
 * (see chat.h for the list and the sources), with the loss spans of the assistant turns. */
#include "chat.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"

/* ---- template table ------------------------------------------------------------------------------ */

typedef struct {
    const char *name;
    const char *eot;  /* end-of-turn text that closes an assistant turn (carries loss) */
    const char *bos;  /* BOS text the template writes itself, NULL when none */
    int alternate;    /* raises unless (optional system) then user/assistant alternate */
    int system;       /* 1: system role accepted (first message only when alternate) */
} chat_tmpl_info;

static const chat_tmpl_info TMPL[CHAT_TMPL_COUNT] = {
    [CHAT_TMPL_CHATML]     = {"chatml", "<|im_end|>", NULL, 0, 1},
    [CHAT_TMPL_QWEN2]      = {"qwen2", "<|im_end|>", NULL, 0, 1},
    [CHAT_TMPL_QWEN25]     = {"qwen2.5", "<|im_end|>", NULL, 0, 1},
    [CHAT_TMPL_QWEN3]      = {"qwen3", "<|im_end|>", NULL, 0, 1},
    [CHAT_TMPL_LLAMA3]     = {"llama3", "<|eot_id|>", "<|begin_of_text|>", 0, 1},
    [CHAT_TMPL_LLAMA31]    = {"llama3.1", "<|eot_id|>", "<|begin_of_text|>", 0, 1},
    [CHAT_TMPL_LLAMA2]     = {"llama2", "</s>", "<s>", 1, 1},
    [CHAT_TMPL_MISTRAL]    = {"mistral", "</s>", "<s>", 1, 0},
    [CHAT_TMPL_MISTRAL_V1] = {"mistral-v1", "</s>", "<s>", 1, 1},
    [CHAT_TMPL_MISTRAL_V3] = {"mistral-v3", "</s>", "<s>", 1, 1},
    [CHAT_TMPL_PHI3]       = {"phi3", "<|end|>", NULL, 0, 1},
    [CHAT_TMPL_GEMMA]      = {"gemma", "<end_of_turn>", "<bos>", 1, 0},
    [CHAT_TMPL_GEMMA3]     = {"gemma3", "<end_of_turn>", "<bos>", 1, 1},
};

static const char *names_list(void) {
    return "chatml, qwen2, qwen2.5, qwen3, llama3, llama3.1, llama2, mistral, mistral-v1, mistral-v3, "
           "phi3, gemma, gemma3";
}

int chat_template_from_name(const char *name) {
    for (int i = 0; name && i < CHAT_TMPL_COUNT; i++)
        if (strcmp(name, TMPL[i].name) == 0) return i;
    return slim_set_error("data.chat_template: unknown template \"%s\" (known: %s)", name ? name : "(null)",
                          names_list());
}

const char *chat_template_name(int tmpl) {
    return tmpl >= 0 && tmpl < CHAT_TMPL_COUNT ? TMPL[tmpl].name : "?";
}

int chat_loss_mode_from_name(const char *name) {
    if (name && strcmp(name, "last") == 0) return CHAT_LOSS_LAST_ASSISTANT;
    if (name && strcmp(name, "all") == 0) return CHAT_LOSS_ALL_ASSISTANT;
    return slim_set_error("chat loss mode \"%s\": expected \"last\" or \"all\"", name ? name : "(null)");
}

/* ---- detection ----------------------------------------------------------------------------------- */

static int has(const char *s, const char *marker) { return strstr(s, marker) != NULL; }

static int detect_refuse(const char *jinja, const char *why) {
    return slim_set_error("chat_template not supported (%s; it starts \"%.48s\"): set data.chat_template to one "
                          "of %s", why, jinja, names_list());
}

int chat_template_detect(const char *jinja) {
    if (!jinja || !*jinja) return slim_set_error("chat_template is empty: set data.chat_template to one of %s",
                                                 names_list());
    if (has(jinja, "<|im_start|>")) {
        if (has(jinja, "</think>") || has(jinja, "reasoning_content")) return CHAT_TMPL_QWEN3;
        if (has(jinja, "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")) return CHAT_TMPL_QWEN25;
        if (has(jinja, "You are a helpful assistant.")) return CHAT_TMPL_QWEN2;
        if (has(jinja, "You are ")) return detect_refuse(jinja, "ChatML with a default system message slimtune does not know");
        return CHAT_TMPL_CHATML;
    }
    if (has(jinja, "<|start_header_id|>")) {
        if (has(jinja, "Cutting Knowledge Date: December 2023")) return CHAT_TMPL_LLAMA31;
        if (has(jinja, "Cutting Knowledge Date")) return detect_refuse(jinja, "Llama 3 with an unknown system preamble");
        return CHAT_TMPL_LLAMA3;
    }
    if (has(jinja, "<start_of_turn>")) {
        if (has(jinja, "System role not supported")) return CHAT_TMPL_GEMMA;
        if (has(jinja, "first_user_prefix") && has(jinja, "messages[0]['content'] + '")) return CHAT_TMPL_GEMMA3;
        return detect_refuse(jinja, "Gemma variant with an unknown system-message rule");
    }
    if (has(jinja, "<|user|>") && has(jinja, "<|assistant|>") && has(jinja, "<|end|>")) {
        if (has(jinja, "<|system|>") && has(jinja, "eos_token")) return CHAT_TMPL_PHI3;
        return detect_refuse(jinja, "Phi-3 variant without a system role or final EOS (e.g. Phi-3 medium)");
    }
    if (has(jinja, "[INST]")) {
        if (has(jinja, "<<SYS>>")) return CHAT_TMPL_LLAMA2;
        if (has(jinja, "[SYSTEM_PROMPT]") || has(jinja, "[AVAILABLE_TOOLS]"))
            return detect_refuse(jinja, "Mistral template with [SYSTEM_PROMPT]/[AVAILABLE_TOOLS]");
        if (has(jinja, "' [INST] '") || has(jinja, "\" [INST] \"")) return CHAT_TMPL_MISTRAL_V1;
        if (has(jinja, "' [/INST]'") || has(jinja, "\" [/INST]\"")) return CHAT_TMPL_MISTRAL;
        if (has(jinja, "'[/INST]'") || has(jinja, "\"[/INST]\"")) return CHAT_TMPL_MISTRAL_V3;
        return detect_refuse(jinja, "[INST] template with unknown spacing");
    }
    return detect_refuse(jinja, "unknown template");
}

/* ---- text helpers -------------------------------------------------------------------------------- */

typedef struct { char *buf; size_t len, cap; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        b->buf = slim_realloc(b->buf, cap);
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = 0;
}
static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* Python str.isspace() for a code point (the set str.strip() removes). */
static int py_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
           c == 0x3000;
}

/* Decodes the UTF-8 character at s[i] (n bytes in all); returns its length (1 for an invalid byte,
 * which then decodes to 0xFFFD and is never whitespace). */
static size_t utf8_at(const unsigned char *s, size_t n, size_t i, uint32_t *cp) {
    unsigned c = s[i];
    size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (k == 0 || i + k > n) { *cp = 0xfffd; return 1; }
    uint32_t v = k == 1 ? c : k == 2 ? (c & 0x1f) : k == 3 ? (c & 0x0f) : (c & 0x07);
    for (size_t j = 1; j < k; j++) {
        if ((s[i + j] & 0xc0) != 0x80) { *cp = 0xfffd; return 1; }
        v = (v << 6) | (s[i + j] & 0x3f);
    }
    *cp = v;
    return k;
}

/* Python-style strip of whitespace: narrows [*b, *e) of s. */
static void strip_ws(const char *s, size_t *b, size_t *e, int left, int right) {
    const unsigned char *u = (const unsigned char *)s;
    uint32_t cp;
    if (left)
        while (*b < *e) {
            size_t k = utf8_at(u, *e, *b, &cp);
            if (!py_space(cp)) break;
            *b += k;
        }
    if (right)
        while (*e > *b) {
            size_t j = *e - 1;
            while (j > *b && (u[j] & 0xc0) == 0x80 && *e - j < 4) j--;
            size_t k = utf8_at(u, *e, j, &cp);
            if (j + k != *e || !py_space(cp)) break;
            *e = j;
        }
}

/* Strip of one byte value c (Python str.strip('\n')). */
static void strip_ch(const char *s, size_t *b, size_t *e, char c, int left, int right) {
    if (left) while (*b < *e && s[*b] == c) (*b)++;
    if (right) while (*e > *b && s[*e - 1] == c) (*e)--;
}

/* Appends content stripped of whitespace (Jinja "| trim" / str.strip()). */
static void sb_put_trim(sbuf *b, const char *s) {
    size_t lo = 0, hi = strlen(s);
    strip_ws(s, &lo, &hi, 1, 1);
    sb_put(b, s + lo, hi - lo);
}

/* First / last occurrence of needle in s[0, n); -1 when absent. */
static long find_first(const char *s, size_t n, const char *needle) {
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(s + i, needle, m) == 0) return (long)i;
    return -1;
}
static long find_last(const char *s, size_t n, const char *needle) {
    size_t m = strlen(needle);
    for (size_t i = n + 1; i-- > 0;)
        if (i + m <= n && memcmp(s + i, needle, m) == 0) return (long)i;
    return -1;
}

static int starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }
static int ends_with(const char *s, const char *p) {
    size_t n = strlen(s), m = strlen(p);
    return n >= m && memcmp(s + n - m, p, m) == 0;
}

/* ---- validation ---------------------------------------------------------------------------------- */

enum { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT };

static int role_of(const char *r) {
    if (!r) return -1;
    if (strcmp(r, "system") == 0) return ROLE_SYSTEM;
    if (strcmp(r, "user") == 0) return ROLE_USER;
    if (strcmp(r, "assistant") == 0) return ROLE_ASSISTANT;
    return -1;
}

/* Checks roles, contents and the order the template requires; fills roles[n]. */
static int chat_validate(int tmpl, const chat_message *msgs, int n, int *roles) {
    const chat_tmpl_info *ti = &TMPL[tmpl];
    int n_assistant = 0;
    for (int i = 0; i < n; i++) {
        roles[i] = role_of(msgs[i].role);
        if (roles[i] < 0)
            return slim_set_error("chat message %d: unknown role \"%s\" (expected system, user or assistant)",
                                  i + 1, msgs[i].role ? msgs[i].role : "(null)");
        if (!msgs[i].content)
            return slim_set_error("chat message %d (role \"%s\"): content missing", i + 1, msgs[i].role);
        size_t b = 0, e = strlen(msgs[i].content);
        strip_ws(msgs[i].content, &b, &e, 1, 1);
        if (b == e)
            return slim_set_error("chat message %d (role \"%s\"): empty turn (content is empty or whitespace)",
                                  i + 1, msgs[i].role);
        n_assistant += roles[i] == ROLE_ASSISTANT;
    }
    if (n_assistant == 0)
        return slim_set_error("chat conversation of %d messages has no assistant turn (nothing to train on)", n);
    if (!ti->alternate) return 0;
    int start = 0;
    if (roles[0] == ROLE_SYSTEM) {
        if (!ti->system)
            return slim_set_error("chat message 1 (role \"system\"): template %s has no system role (the model's "
                                  "template raises: %s)", ti->name,
                                  tmpl == CHAT_TMPL_GEMMA ? "System role not supported"
                                                          : "Only user and assistant roles are supported!");
        start = 1;
    }
    for (int i = start; i < n; i++) {
        if (roles[i] == ROLE_SYSTEM)
            return slim_set_error("chat message %d (role \"system\"): template %s accepts a system message only "
                                  "as the first message", i + 1, ti->name);
        int want = (i - start) % 2 == 0 ? ROLE_USER : ROLE_ASSISTANT;
        if (roles[i] != want)
            return slim_set_error("chat message %d (role \"%s\"): template %s requires roles to alternate "
                                  "user/assistant/user/assistant/... after the optional system message "
                                  "(expected \"%s\")", i + 1, msgs[i].role, ti->name,
                                  want == ROLE_USER ? "user" : "assistant");
    }
    return 0;
}

/* ---- rendering ----------------------------------------------------------------------------------- */

typedef struct {
    sbuf sb;
    chat_span *spans; /* [n] per message; begin == end == 0 for non-assistant */
} render_state;

static void span_begin(render_state *r, int i) { r->spans[i].begin = r->sb.len; }
static void span_end(render_state *r, int i) { r->spans[i].end = r->sb.len; }

/* The body of message i: its content (stripped of surrounding whitespace when trim) and the end-of-turn
 * marker; for an assistant message both are its loss span. */
static void render_body(render_state *r, const int *roles, int i, const char *content, int trim, const char *end) {
    if (roles[i] == ROLE_ASSISTANT) span_begin(r, i);
    if (trim) sb_put_trim(&r->sb, content);
    else sb_puts(&r->sb, content);
    sb_puts(&r->sb, end);
    if (roles[i] == ROLE_ASSISTANT) span_end(r, i);
}

static void render_chatml(int tmpl, const chat_message *m, const int *roles, int n, render_state *r) {
    sbuf *b = &r->sb;
    if (roles[0] != ROLE_SYSTEM && tmpl == CHAT_TMPL_QWEN2)
        sb_puts(b, "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n");
    if (roles[0] != ROLE_SYSTEM && tmpl == CHAT_TMPL_QWEN25)
        sb_puts(b, "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
                   "<|im_end|>\n");
    /* Qwen3: index of the last user message that is not a bare <tool_response> (else n - 1) */
    int last_query = n - 1;
    for (int i = n - 1; i >= 0; i--)
        if (roles[i] == ROLE_USER && !(starts_with(m[i].content, "<tool_response>") &&
                                       ends_with(m[i].content, "</tool_response>"))) {
            last_query = i;
            break;
        }
    for (int i = 0; i < n; i++) {
        sb_puts(b, "<|im_start|>");
        sb_puts(b, m[i].role);
        sb_puts(b, "\n");
        if (roles[i] != ROLE_ASSISTANT) {
            sb_puts(b, m[i].content);
            sb_puts(b, "<|im_end|>\n");
            continue;
        }
        span_begin(r, i);
        if (tmpl != CHAT_TMPL_QWEN3) {
            sb_puts(b, m[i].content);
        } else {
            /* content.split('</think>'): answer after the last one, reasoning before the first one
             * (after its last '<think>'), as the Qwen3 template does */
            const char *c = m[i].content;
            size_t n_c = strlen(c), a0 = 0, a1 = n_c, r0 = 0, r1 = 0;
            long first = find_first(c, n_c, "</think>");
            if (first >= 0) {
                a0 = (size_t)find_last(c, n_c, "</think>") + strlen("</think>");
                strip_ch(c, &a0, &a1, '\n', 1, 0);
                r1 = (size_t)first;
                strip_ch(c, &r0, &r1, '\n', 0, 1);
                long open = find_last(c + r0, r1 - r0, "<think>");
                if (open >= 0) r0 += (size_t)open + strlen("<think>");
                strip_ch(c, &r0, &r1, '\n', 1, 0);
            }
            if (i > last_query && (i == n - 1 || r1 > r0)) {
                strip_ch(c, &r0, &r1, '\n', 1, 1);
                strip_ch(c, &a0, &a1, '\n', 1, 0);
                sb_puts(b, "<think>\n");
                sb_put(b, c + r0, r1 - r0);
                sb_puts(b, "\n</think>\n\n");
            }
            sb_put(b, c + a0, a1 - a0);
        }
        sb_puts(b, "<|im_end|>");
        span_end(r, i);
        sb_puts(b, "\n");
    }
}

static void render_llama3(int tmpl, const chat_message *m, const int *roles, int n, render_state *r) {
    sbuf *b = &r->sb;
    int start = 0;
    sb_puts(b, "<|begin_of_text|>");
    if (tmpl == CHAT_TMPL_LLAMA31) {
        sb_puts(b, "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
                   "Today Date: 26 Jul 2024\n\n");
        if (roles[0] == ROLE_SYSTEM) { sb_put_trim(b, m[0].content); start = 1; }
        sb_puts(b, "<|eot_id|>");
    }
    for (int i = start; i < n; i++) {
        sb_puts(b, "<|start_header_id|>");
        sb_puts(b, m[i].role);
        sb_puts(b, "<|end_header_id|>\n\n");
        render_body(r, roles, i, m[i].content, 1, "<|eot_id|>");
    }
}

static void render_inst(int tmpl, const chat_message *m, const int *roles, int n, render_state *r) {
    sbuf *b = &r->sb;
    int start = roles[0] == ROLE_SYSTEM ? 1 : 0;
    const char *sys = start ? m[0].content : NULL;
    if (tmpl != CHAT_TMPL_LLAMA2) sb_puts(b, "<s>");
    for (int i = start; i < n; i++) {
        const char *c = m[i].content;
        if (roles[i] == ROLE_USER) {
            switch (tmpl) {
            case CHAT_TMPL_LLAMA2: {
                /* (i first and system ? "<<SYS>>\n" + S + "\n<</SYS>>\n\n" + U : U).strip() */
                sbuf u = {0};
                if (i == start && sys) {
                    sb_puts(&u, "<<SYS>>\n");
                    sb_puts(&u, sys);
                    sb_puts(&u, "\n<</SYS>>\n\n");
                }
                sb_puts(&u, c);
                sb_puts(b, "<s>[INST] ");
                sb_put_trim(b, u.buf);
                sb_puts(b, " [/INST]");
                free(u.buf);
                break;
            }
            case CHAT_TMPL_MISTRAL:
                sb_puts(b, "[INST] ");
                sb_puts(b, c);
                sb_puts(b, " [/INST]");
                break;
            case CHAT_TMPL_MISTRAL_V1:
                sb_puts(b, " [INST] ");
                if (i == start && sys) { sb_puts(b, sys); sb_puts(b, "\n\n"); }
                sb_puts(b, c);
                sb_puts(b, " [/INST]");
                break;
            default: /* CHAT_TMPL_MISTRAL_V3: the system message goes before the last message only */
                sb_puts(b, "[INST] ");
                if (i == n - 1 && sys) { sb_puts(b, sys); sb_puts(b, "\n\n"); }
                sb_puts(b, c);
                sb_puts(b, "[/INST]");
                break;
            }
        } else { /* assistant */
            span_begin(r, i);
            if (tmpl == CHAT_TMPL_LLAMA2) {
                sb_puts(b, " ");
                sb_put_trim(b, c);
                sb_puts(b, " </s>");
            } else {
                if (tmpl != CHAT_TMPL_MISTRAL) sb_puts(b, " ");
                sb_puts(b, c);
                sb_puts(b, "</s>");
            }
            span_end(r, i);
            if (tmpl == CHAT_TMPL_MISTRAL) sb_puts(b, " ");
        }
    }
}

static void render_phi3(const chat_message *m, const int *roles, int n, render_state *r) {
    sbuf *b = &r->sb;
    for (int i = 0; i < n; i++) {
        sb_puts(b, "<|");
        sb_puts(b, m[i].role);
        sb_puts(b, "|>\n");
        render_body(r, roles, i, m[i].content, 0, "<|end|>");
        sb_puts(b, "\n");
    }
    sb_puts(b, "<|endoftext|>");
}

static void render_gemma(const chat_message *m, const int *roles, int n, render_state *r) {
    sbuf *b = &r->sb;
    int start = roles[0] == ROLE_SYSTEM ? 1 : 0; /* gemma3 only: validation rejects it for gemma */
    sb_puts(b, "<bos>");
    for (int i = start; i < n; i++) {
        sb_puts(b, roles[i] == ROLE_ASSISTANT ? "<start_of_turn>model\n" : "<start_of_turn>user\n");
        if (i == start && start) { sb_puts(b, m[0].content); sb_puts(b, "\n\n"); }
        render_body(r, roles, i, m[i].content, 1, "<end_of_turn>");
        sb_puts(b, "\n");
    }
}

void chat_render_out_free(chat_render_out *out) {
    if (!out) return;
    free(out->text);
    free(out->spans);
    memset(out, 0, sizeof(*out));
}

int chat_render(int tmpl, const chat_message *msgs, int n, int loss_mode, chat_render_out *out) {
    if (!out) return slim_set_error("chat_render: out is NULL");
    memset(out, 0, sizeof(*out));
    if (tmpl < 0 || tmpl >= CHAT_TMPL_COUNT) return slim_set_error("chat_render: template id %d out of range", tmpl);
    if (loss_mode != CHAT_LOSS_LAST_ASSISTANT && loss_mode != CHAT_LOSS_ALL_ASSISTANT)
        return slim_set_error("chat_render: loss mode %d is neither last (0) nor all (1)", loss_mode);
    if (n <= 0 || !msgs) return slim_set_error("chat conversation is empty (no messages)");
    int *roles = slim_malloc(sizeof(int) * (size_t)n);
    if (chat_validate(tmpl, msgs, n, roles) != 0) { free(roles); return -1; }
    render_state r = {{0}, slim_calloc((size_t)n, sizeof(chat_span))};
    switch (tmpl) {
    case CHAT_TMPL_CHATML: case CHAT_TMPL_QWEN2: case CHAT_TMPL_QWEN25: case CHAT_TMPL_QWEN3:
        render_chatml(tmpl, msgs, roles, n, &r);
        break;
    case CHAT_TMPL_LLAMA3: case CHAT_TMPL_LLAMA31:
        render_llama3(tmpl, msgs, roles, n, &r);
        break;
    case CHAT_TMPL_PHI3:
        render_phi3(msgs, roles, n, &r);
        break;
    case CHAT_TMPL_GEMMA: case CHAT_TMPL_GEMMA3:
        render_gemma(msgs, roles, n, &r);
        break;
    default:
        render_inst(tmpl, msgs, roles, n, &r);
        break;
    }
    int last = -1, n_spans = 0;
    for (int i = 0; i < n; i++)
        if (roles[i] == ROLE_ASSISTANT) { last = i; n_spans++; }
    out->spans = slim_malloc(sizeof(chat_span) * (size_t)n_spans);
    for (int i = 0; i < n; i++)
        if (roles[i] == ROLE_ASSISTANT && (loss_mode == CHAT_LOSS_ALL_ASSISTANT || i == last))
            out->spans[out->n_spans++] = r.spans[i];
    out->text = r.sb.buf;
    out->len = r.sb.len;
    free(r.spans);
    free(roles);
    return 0;
}

/* ---- tokenization -------------------------------------------------------------------------------- */

int chat_encode(const tokenizer *t, int tmpl, const chat_message *msgs, int n, int loss_mode,
                int32_t **ids, uint8_t **loss_mask, int *n_tokens) {
    if (!t || !ids || !loss_mask || !n_tokens) return slim_set_error("chat_encode: NULL argument");
    *ids = NULL;
    *loss_mask = NULL;
    *n_tokens = 0;
    if (tmpl < 0 || tmpl >= CHAT_TMPL_COUNT) return slim_set_error("chat_encode: template id %d out of range", tmpl);
    const chat_tmpl_info *ti = &TMPL[tmpl];
    const char *need[2] = {ti->eot, ti->bos};
    for (int k = 0; k < 2; k++)
        if (need[k] && tokenizer_find_piece(t, need[k], strlen(need[k])) < 0)
            return slim_set_error("chat template %s writes \"%s\", which is not a token of this model's tokenizer: "
                                  "set data.chat_template to the model's own template", ti->name, need[k]);
    chat_render_out r;
    if (chat_render(tmpl, msgs, n, loss_mode, &r) != 0) return -1;
    int flags = TOK_PARSE_SPECIAL | TOK_SPACE_PREFIX;
    if (t->add_bos && t->bos_id >= 0) {
        const char *bos = t->pieces[t->bos_id];
        size_t bl = (size_t)t->piece_lens[t->bos_id];
        if (!(bl > 0 && r.len >= bl && memcmp(r.text, bos, bl) == 0)) flags |= TOK_ADD_BOS;
    }
    int cap = (int)r.len + 16;
    int32_t *out = NULL, *offs = NULL;
    int cnt;
    for (;;) {
        out = slim_realloc(out, sizeof(int32_t) * (size_t)cap);
        offs = slim_realloc(offs, sizeof(int32_t) * (size_t)cap);
        cnt = tokenizer_encode_ex(t, r.text, r.len, flags, out, cap, offs);
        if (cnt < 0 || cnt <= cap) break;
        cap = cnt;
    }
    if (cnt < 0) {
        free(out); free(offs); chat_render_out_free(&r);
        return -1;
    }
    uint8_t *mask = slim_malloc((size_t)cnt + 1);
    int s = 0;
    for (int k = 0; k < cnt; k++) {
        size_t o = (size_t)offs[k];
        while (s < r.n_spans && r.spans[s].end <= o) s++;
        mask[k] = s < r.n_spans && o >= r.spans[s].begin && o < r.spans[s].end;
    }
    /* offsets are non-decreasing: the two-pointer walk above relies on it */
    for (int k = 1; k < cnt; k++)
        if (offs[k] < offs[k - 1]) {
            free(out); free(offs); free(mask); chat_render_out_free(&r);
            return slim_set_error("chat_encode: tokenizer offsets not increasing at token %d", k);
        }
    free(offs);
    chat_render_out_free(&r);
    *ids = out;
    *loss_mask = mask;
    *n_tokens = cnt;
    return 0;
}
