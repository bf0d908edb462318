/* test_shapes.c — `data prepare` for every row shape and format, end to end with the real stories260K
 * tokenizer: exact tokens and loss masks for prompt_completion, alpaca (with and without input, and
 * truncated), text (short, and split into chunks) in JSONL, text_label in TSV, prompt_completion in CSV;
 * completions that cannot fit; data.invalid_utf8 = replace; the seeded stratified split (counts per
 * label, the same split whatever the row order, duplicates kept together, another seed differs); and the
 * provenance attributes (source SHA-256 checked against sha256sum, shape, templates, config
 * fingerprint, counts). Run from the repository root. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../data/prepare.h"
#include "../../data/reader.h"
#include "../../data/split.h"
#include "tokenizer/chat.h"
#include "cli.h"
#include "common.h"
#include "dataset.h"
#include "format/gguf.h"
#include "testdata.h"
#include "testutil.h"
#include "tokenizer/tokenizer.h"

static tokenizer g_tok;

/* The Alpaca prompt, written out here independently of prepare.h. */
static const char *alpaca_with_input =
    "Below is an instruction that describes a task, paired with an input that provides further context. Write a "
    "response that appropriately completes the request.\n\n### Instruction:\n%s\n\n### Input:\n%s\n\n### Response:\n";

static const char *alpaca_no_input =
    "Below is an instruction that describes a task. Write a response that appropriately completes the "
    "request.\n\n### Instruction:\n%s\n\n### Response:\n";

/* Runs data_prepare_main with the given arguments (NULL-terminated), capturing stdout and stderr into *err. */
/* data prepare as the dispatcher runs it: the exit status, the error printed once (lib/cli.h). */
static int prepare_cli(int argc, char **argv) { return slim_exit_status("data prepare", data_prepare_main(argc, argv)); }

static int run_prepare(char **err, ...) {
    char *args[15];
    int n = 0;
    va_list ap;
    va_start(ap, err);
    for (char *a; n < 14 && (a = va_arg(ap, char *));) args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    return run_capture(prepare_cli, "prepare", "stderr.txt", err, args);
}

/* Prepares one split from a data body; reads <out>/data/<split>.h5 into d. Returns 0 or -1. */
static int prepare_read(const char *name, const char *data_json, const char *split, slim_dataset *d, char **err_out) {
    const char *cfg = write_data_config(name, data_json);
    char *err;
    int rc = run_prepare(&err, "--config", cfg, NULL);
    CHECK(rc == 0, "%s: prepare rc %d: %s", name, rc, err);
    if (err_out) *err_out = err;
    else free(err);
    if (rc) return -1;
    char path[800];
    snprintf(path, sizeof path, "%s/out-%s/data/%s.h5", tmpdir, name, split);
    rc = dataset_read(d, path);
    CHECK(rc == 0, "%s: read %s: %s", name, path, slim_last_error());
    return rc;
}

static int encode(const char *s, int bos, int sp, int32_t *out, int cap) {
    int got = tokenizer_encode(&g_tok, s, strlen(s), bos, sp, out, cap);
    if (got > cap) { fprintf(stderr, "test buffer too small (%d)\n", got); exit(1); }
    return got;
}

/* Example e must be encode(prompt, BOS, space prefix) + encode(completion) + EOS with loss on the latter. */
static void check_prompted(const slim_dataset *d, int64_t e, const char *prompt, const char *completion, int64_t line,
                           const char *what) {
    static int32_t ids[65536];
    int np = encode(prompt, 1, 1, ids, 65536);
    int nc = encode(completion, 0, 0, ids + np, 65536 - np - 1);
    ids[np + nc] = g_tok.eos_id;
    int n = np + nc + 1;
    int64_t a = d->offsets[e], len = d->offsets[e + 1] - a;
    CHECK(len == n && d->prompt_len[e] == np, "%s: length %lld prompt %d, expected %d / %d", what, (long long)len,
          d->prompt_len[e], n, np);
    CHECK(d->source_line[e] == line && d->labels[e] == -1, "%s: line %lld label %d", what, (long long)d->source_line[e],
          d->labels[e]);
    if (len != n) return;
    int same = 1, mask = 1;
    for (int i = 0; i < n; i++) {
        same &= d->tokens[a + i] == ids[i];
        mask &= d->loss_mask[a + i] == (i >= np);
    }
    CHECK(same, "%s: tokens == encode(prompt) + encode(completion) + EOS", what);
    CHECK(mask, "%s: loss mask 0 on the prompt, 1 on completion + EOS", what);
}

static void test_prompt_completion_and_alpaca(void) {
    const char *pc = "{\"prompt\": \"Q: What is 2+2?\\nA:\", \"completion\": \" 4\"}\n"
                     "\n"
                     "{\"prompt\": \"Translate: chat\", \"completion\": \" cat (the animal)\", \"extra\": 1}\n";
    write_bytes(tmp_path("pc.jsonl"), pc, strlen(pc));
    char body[1024];
    snprintf(body, sizeof body, "\"train\": \"%s\"", tmp_path("pc.jsonl"));
    slim_dataset d;
    if (prepare_read("pc.json", body, "train", &d, NULL) == 0) {
        CHECK(d.n_examples == 2 && d.n_labels == 0, "prompt_completion: 2 examples, no labels");
        if (d.n_examples == 2) {
            check_prompted(&d, 0, "Q: What is 2+2?\nA:", " 4", 1, "pc row 1");
            check_prompted(&d, 1, "Translate: chat", " cat (the animal)", 3, "pc row 3");
        }
        CHECK(strcmp(d.shape, "prompt_completion") == 0 && strcmp(d.prompt_template, "{prompt}") == 0 &&
                  strcmp(d.completion_template, "{completion}") == 0,
              "shape and templates: %s %s %s", d.shape, d.prompt_template, d.completion_template);
        dataset_free(&d);
    }
    /* the same in CSV, shape detected from the header */
    const char *pcc = "prompt,completion\n\"Q: What is 2+2?\nA:\",\" 4\"\n";
    write_bytes(tmp_path("pc.csv"), pcc, strlen(pcc));
    snprintf(body, sizeof body, "\"train\": \"%s\"", tmp_path("pc.csv"));
    if (prepare_read("pccsv.json", body, "train", &d, NULL) == 0) {
        CHECK(d.n_examples == 1, "pc csv: 1 example");
        /* (libcsv trims an unquoted field's spaces: the completion's space is quoted) */
        if (d.n_examples == 1) check_prompted(&d, 0, "Q: What is 2+2?\nA:", " 4", 2, "pc csv");
        dataset_free(&d);
    }

    /* alpaca: with an input, without (absent and null), multi-byte text */
    const char *al = "{\"instruction\": \"Add the numbers.\", \"input\": \"2 and 3\", \"output\": \"5\"}\n"
                     "{\"instruction\": \"Name a colour.\", \"output\": \"Blue.\"}\n"
                     "{\"instruction\": \"Say caf\\u00e9.\", \"input\": null, \"output\": \"caf\\u00e9\"}\n"
                     "{\"instruction\": \"Echo.\", \"input\": \"\", \"output\": \"Echo.\"}\n";
    write_bytes(tmp_path("al.jsonl"), al, strlen(al));
    snprintf(body, sizeof body, "\"train\": \"%s\", \"max_seq_len\": 512", tmp_path("al.jsonl"));
    if (prepare_read("al.json", body, "train", &d, NULL) == 0) {
        CHECK(d.n_examples == 4, "alpaca: 4 examples, got %lld", (long long)d.n_examples);
        char p[2048];
        if (d.n_examples == 4) {
            snprintf(p, sizeof p, alpaca_with_input, "Add the numbers.", "2 and 3");
            check_prompted(&d, 0, p, "5", 1, "alpaca with input");
            snprintf(p, sizeof p, alpaca_no_input, "Name a colour.");
            check_prompted(&d, 1, p, "Blue.", 2, "alpaca without input");
            snprintf(p, sizeof p, alpaca_no_input, "Say caf\xc3\xa9.");
            check_prompted(&d, 2, p, "caf\xc3\xa9", 3, "alpaca null input");
            snprintf(p, sizeof p, alpaca_no_input, "Echo.");
            check_prompted(&d, 3, p, "Echo.", 4, "alpaca empty input");
        }
        CHECK(strcmp(d.shape, "alpaca") == 0 && strstr(d.prompt_template, "### Instruction:\n{instruction}") &&
                  strcmp(d.completion_template, "{output}") == 0,
              "alpaca templates recorded");
        dataset_free(&d);
    }

    /* alpaca truncation: the input is cut, the template's suffix and the whole output kept */
    char longin[4096] = "";
    for (int i = 0; i < 40; i++) strcat(longin, "the quick brown fox jumps over the lazy dog ");
    char line[8192];
    int n = snprintf(line, sizeof line,
                     "{\"instruction\": \"Summarize.\", \"input\": \"%s\", \"output\": \"A fox jumps.\"}\n", longin);
    write_bytes(tmp_path("alt.jsonl"), line, (size_t)n);
    const int L = 256; /* the Alpaca header alone is ~130 tokens of this small vocabulary */
    snprintf(body, sizeof body, "\"train\": \"%s\", \"max_seq_len\": %d", tmp_path("alt.jsonl"), L);
    char *err;
    if (prepare_read("alt.json", body, "train", &d, &err) == 0) {
        CHECK(strstr(err, "1 examples, 1 truncated"), "alpaca truncation reported: %s", err);
        int64_t len = d.offsets[1];
        int32_t comp[32];
        int nc = encode("A fox jumps.", 0, 0, comp, 32);
        comp[nc++] = g_tok.eos_id;
        CHECK(len <= L && len - d.prompt_len[0] == nc, "alpaca truncated: %lld tokens, completion %lld", (long long)len,
              (long long)(len - d.prompt_len[0]));
        int ok = 1;
        for (int i = 0; i < nc && len - d.prompt_len[0] == nc; i++) ok &= d.tokens[d.prompt_len[0] + i] == comp[i];
        CHECK(ok, "alpaca truncated: the output kept whole");
        char dec[8192] = "";
        for (int i = 1; i < d.prompt_len[0]; i++) tokenizer_decode_token(&g_tok, d.tokens[i], dec, sizeof dec);
        size_t dl = strlen(dec);
        CHECK(dl > 20 && strcmp(dec + dl - strlen("\n\n### Response:\n"), "\n\n### Response:\n") == 0,
              "alpaca truncated: the response header kept: ...%s", dl > 40 ? dec + dl - 40 : dec);
        CHECK(strstr(dec, "### Input:\nthe quick brown fox") != NULL, "alpaca truncated: a prefix of the input kept");
        dataset_free(&d);
        free(err);
    }

    /* completions that cannot fit are bad rows, counted and named */
    const char *tl = "{\"prompt\": \"hi\", \"completion\": \" ok\"}\n"
                     "{\"prompt\": \"hi\", \"completion\": \" this completion is far too long to fit in sixteen tokens "
                     "at all\"}\n"
                     "{\"prompt\": \"hello\", \"completion\": \" fine\"}\n";
    write_bytes(tmp_path("toolong.jsonl"), tl, strlen(tl));
    snprintf(body, sizeof body, "\"train\": \"%s\", \"max_seq_len\": 16, \"max_bad_rows\": 0.5", tmp_path("toolong.jsonl"));
    if (prepare_read("toolong.json", body, "train", &d, &err) == 0) {
        CHECK(strstr(err, "3 rows read, 1 bad, 2 examples") && strstr(err, "1 bad rows: completion too long") &&
                  strstr(err, "toolong.jsonl:2: the completion needs"),
              "too-long completion: %s", err);
        CHECK(d.n_bad_rows == 1 && d.n_rows == 3, "attributes n_bad_rows 1, n_rows 3");
        dataset_free(&d);
        free(err);
    }
}

static void test_text_and_tsv(void) {
    /* text: loss on every token but the first; a long text split into chunks */
    char longtext[4096] = "";
    for (int i = 0; i < 12; i++) strcat(longtext, "Once upon a time there was a little girl named Lily. ");
    char js[8192];
    int n = snprintf(js, sizeof js, "{\"text\": \"Hello world.\"}\n{\"text\": \"%s\"}\n", longtext);
    write_bytes(tmp_path("text.jsonl"), js, (size_t)n);
    const int L = 32;
    char body[1024];
    snprintf(body, sizeof body, "\"train\": \"%s\", \"max_seq_len\": %d", tmp_path("text.jsonl"), L);
    slim_dataset d;
    char *err;
    if (prepare_read("text.json", body, "train", &d, &err) == 0) {
        static int32_t full[8192];
        int32_t a[64];
        int na = encode("Hello world.", 1, 1, a, 62);
        a[na++] = g_tok.eos_id;
        int nf = encode(longtext, 1, 1, full, 8190);
        full[nf++] = g_tok.eos_id;
        /* chunks: the first L tokens, then BOS + the next L - 1, ... */
        int n_chunks = 1 + (nf - L + (L - 2)) / (L - 1);
        CHECK(nf > 3 * L, "the long text is long (%d tokens)", nf);
        CHECK(d.n_examples == 1 + n_chunks, "text: %lld examples, expected 1 + %d chunks", (long long)d.n_examples,
              n_chunks);
        CHECK(strstr(err, "1 long texts split into chunks"), "chunking reported: %s", err);
        CHECK(d.n_chunked == 1 && strcmp(d.shape, "text") == 0, "n_chunked 1, shape text");
        if (d.n_examples == 1 + n_chunks) {
            int ok = d.offsets[1] == na && d.prompt_len[0] == 1 && d.source_line[0] == 1;
            for (int i = 0; ok && i < na; i++) ok = d.tokens[i] == a[i] && d.loss_mask[i] == (i > 0);
            CHECK(ok, "short text: BOS + encode(text) + EOS, loss on all but the first token");
            int pos = 0, good = 1;
            for (int c = 0; c < n_chunks; c++) {
                int64_t s = d.offsets[1 + c], len = d.offsets[2 + c] - s;
                int bos = c > 0;
                int take = c == 0 ? L : (nf - pos < L - 1 ? nf - pos : L - 1);
                good &= len == take + bos && len <= L && d.source_line[1 + c] == 2 && d.prompt_len[1 + c] == 1;
                if (!good) break;
                if (bos) good &= d.tokens[s] == g_tok.bos_id && d.loss_mask[s] == 0;
                for (int i = 0; i < take && good; i++)
                    good &= d.tokens[s + bos + i] == full[pos + i] && d.loss_mask[s + bos + i] == (bos + i > 0);
                pos += take;
            }
            CHECK(good && pos == nf, "chunks cover the text exactly (%d of %d tokens), BOS-led, loss on all but the first",
                  pos, nf);
        }
        int64_t loss = 0;
        for (int64_t i = 0; i < d.n_tokens; i++) loss += d.loss_mask[i];
        CHECK(d.n_loss_tokens == loss && loss == d.n_tokens - d.n_examples, "n_loss_tokens %lld", (long long)loss);
        dataset_free(&d);
        free(err);
    }

    /* TSV text_label: no quoting (quotes are text), shape from the header, declared labels */
    const char *tsv = "id\ttext\tlabel\n1\tHe said \"hi\" to me\tham\n2\tWin cash, now!\tspam\n\n3\tbad\trow\textra\n";
    write_bytes(tmp_path("d.tsv"), tsv, strlen(tsv));
    snprintf(body, sizeof body, "\"train\": \"%s\", \"labels\": [\"ham\", \"spam\"], \"max_bad_rows\": 0.5",
             tmp_path("d.tsv"));
    if (prepare_read("tsv.json", body, "train", &d, &err) == 0) {
        CHECK(strstr(err, "3 rows read, 1 bad, 2 examples") && strstr(err, "d.tsv:5: expected 3 fields"), "tsv: %s", err);
        const char *texts[2] = {"He said \"hi\" to me", "Win cash, now!"}, *labs[2] = {" ham", " spam"};
        for (int e = 0; e < 2 && d.n_examples == 2; e++) {
            char p[256];
            snprintf(p, sizeof p, "Text: %s\nLabel:", texts[e]);
            int32_t ids[256];
            int np = encode(p, 1, 1, ids, 200);
            int nc = encode(labs[e], 0, 0, ids + np, 50);
            ids[np + nc] = g_tok.eos_id;
            int ok = d.offsets[e + 1] - d.offsets[e] == np + nc + 1 && d.prompt_len[e] == np && d.labels[e] == e;
            for (int i = 0; ok && i < np + nc + 1; i++) ok = d.tokens[d.offsets[e] + i] == ids[i];
            CHECK(ok, "tsv row %d: exact tokens", e);
        }
        CHECK(d.source_line[0] == 2 && d.source_line[1] == 3, "tsv lines");
        dataset_free(&d);
        free(err);
    }

    /* data.invalid_utf8 = replace keeps the row with U+FFFD */
    static const char bad[] = "text,label\nprice \xff\xfe ok,spam\nfine,ham\n";
    write_bytes(tmp_path("rep.csv"), bad, sizeof bad - 1);
    snprintf(body, sizeof body, "\"train\": \"%s\", \"invalid_utf8\": \"replace\"", tmp_path("rep.csv"));
    if (prepare_read("rep.json", body, "train", &d, &err) == 0) {
        CHECK(strstr(err, "2 rows read, 0 bad, 2 examples"), "replace keeps the row: %s", err);
        char dec[512] = "";
        for (int64_t i = 1; i < d.prompt_len[0]; i++) tokenizer_decode_token(&g_tok, d.tokens[i], dec, sizeof dec);
        CHECK(strstr(dec, "price \xef\xbf\xbd\xef\xbf\xbd ok") != NULL, "invalid bytes became U+FFFD: %s", dec);
        dataset_free(&d);
        free(err);
    }
}

/* Decodes tokens [a, b) of d into buf. */
static void decode_range(const slim_dataset *d, int64_t a, int64_t b, int loss_only, char *buf, size_t cap) {
    buf[0] = 0;
    for (int64_t i = a; i < b; i++)
        if (!loss_only || d->loss_mask[i]) tokenizer_decode_token_ex(&g_tok, d->tokens[i], 1, buf, cap);
}

static void test_chat(void) {
    /* llama2's markers <s> and </s> are stories260K's BOS and EOS, so its template fits this tokenizer */
    const char *js =
        "{\"messages\": [{\"role\": \"user\", \"content\": \"What is 2+2?\"}, {\"role\": \"assistant\", \"content\": \"4\"}]}\n"
        "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Hi\"}, "
        "{\"role\": \"assistant\", \"content\": \"Hello!\"}, {\"role\": \"user\", \"content\": \"Bye\"}, "
        "{\"role\": \"assistant\", \"content\": \"Bye now.\"}]}\n";
    write_bytes(tmp_path("chat.jsonl"), js, strlen(js));
    const char *loss_names[2] = {"all", "last"};
    for (int mode = 0; mode < 2; mode++) {
        char body[1024], name[64];
        snprintf(body, sizeof body, "\"train\": \"%s\", \"chat_template\": \"llama2\", \"chat_loss\": \"%s\"",
                 tmp_path("chat.jsonl"), loss_names[mode]);
        snprintf(name, sizeof name, "chat_%s.json", loss_names[mode]);
        slim_dataset d;
        if (prepare_read(name, body, "train", &d, NULL) != 0) continue;
        CHECK(d.n_examples == 2 && strcmp(d.shape, "chat") == 0 && strcmp(d.prompt_template, "llama2") == 0,
              "chat: 2 examples, shape chat, template llama2 (%s)", d.prompt_template);
        /* the oracle: chat_encode of the same messages (lib/tokenizer/chat.c, tested against Jinja renderings) */
        chat_message m1[2] = {{"user", "What is 2+2?"}, {"assistant", "4"}};
        chat_message m2[5] = {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Bye"},
                              {"assistant", "Bye now."}};
        const chat_message *ms[2] = {m1, m2};
        int nm[2] = {2, 5};
        for (int e = 0; e < 2 && d.n_examples == 2; e++) {
            int32_t *ids;
            uint8_t *mask;
            int n;
            int rc = chat_encode(&g_tok, CHAT_TMPL_LLAMA2, ms[e], nm[e], mode ? CHAT_LOSS_LAST_ASSISTANT
                                                                                : CHAT_LOSS_ALL_ASSISTANT,
                                 &ids, &mask, &n);
            CHECK(rc == 0, "chat_encode: %s", slim_last_error());
            if (rc) continue;
            int64_t a = d.offsets[e];
            int ok = d.offsets[e + 1] - a == n && d.source_line[e] == e + 1 && d.labels[e] == -1;
            for (int i = 0; ok && i < n; i++) ok = d.tokens[a + i] == ids[i] && d.loss_mask[a + i] == mask[i];
            CHECK(ok, "chat example %d (%s): tokens and mask == chat_encode", e, loss_names[mode]);
            int first = 0;
            while (first < n && !mask[first]) first++;
            CHECK(d.prompt_len[e] == first, "chat example %d: prompt_len = first loss token", e);
            free(ids);
            free(mask);
        }
        /* independent facts: BOS first; the loss tokens decode to the assistant answers and their </s> */
        char dec[1024];
        if (d.n_examples == 2) {
            CHECK(d.tokens[0] == g_tok.bos_id && d.loss_mask[0] == 0, "chat: BOS first, no loss on it");
            decode_range(&d, d.offsets[1], d.offsets[2], 1, dec, sizeof dec);
            const char *want = mode ? " Bye now. </s>" : " Hello! </s> Bye now. </s>";
            CHECK(strcmp(dec, want) == 0, "chat_loss %s: the loss tokens decode to '%s', got '%s'", loss_names[mode], want,
                  dec);
            decode_range(&d, d.offsets[1], d.offsets[2], 0, dec, sizeof dec);
            CHECK(strstr(dec, "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]") != NULL, "llama2 rendering: %s", dec);
        }
        dataset_free(&d);
    }
    /* a conversation longer than max_seq_len keeps its head while some assistant token remains:
     * L = 2 tokens past the second conversation's first loss token (and enough for the first one) */
    chat_message m2[5] = {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Bye"},
                          {"assistant", "Bye now."}};
    int32_t *ids = NULL;
    uint8_t *mask = NULL;
    int n2 = 0, f2 = 0;
    CHECK(chat_encode(&g_tok, CHAT_TMPL_LLAMA2, m2, 5, CHAT_LOSS_ALL_ASSISTANT, &ids, &mask, &n2) == 0, "chat_encode");
    while (f2 < n2 && !mask[f2]) f2++;
    free(ids);
    free(mask);
    int L = f2 + 2 < 40 ? 40 : f2 + 2;
    CHECK(L < n2, "the test needs a conversation longer than %d tokens (%d)", L, n2);
    char body[1024];
    snprintf(body, sizeof body, "\"train\": \"%s\", \"chat_template\": \"llama2\", \"max_seq_len\": %d, "
                                "\"max_bad_rows\": 0.5",
             tmp_path("chat.jsonl"), L);
    slim_dataset d;
    char *err;
    if (prepare_read("chat_short.json", body, "train", &d, &err) == 0) {
        CHECK(strstr(err, "2 rows read, 0 bad, 2 examples, 1 truncated"), "chat truncation: %s", err);
        CHECK(d.n_examples == 2 && d.offsets[2] - d.offsets[1] == L, "the long conversation is cut to %d tokens", L);
        CHECK(d.n_examples == 2 && d.prompt_len[1] == f2, "its prompt_len is the first loss token");
        dataset_free(&d);
        free(err);
    }
    snprintf(body, sizeof body, "\"train\": \"%s\", \"chat_template\": \"llama2\", \"max_seq_len\": 12, "
                                "\"max_bad_rows\": 1",
             tmp_path("chat.jsonl"));
    const char *cfg = write_data_config("chat_tiny.json", body);
    int rc = run_prepare(&err, "--config", cfg, NULL);
    CHECK(rc == 2 && strstr(err, "chat.jsonl:1: the first assistant token is at position"),
          "no assistant token within max_seq_len: a bad row named: %s", err);
    free(err);
    /* a template whose markers this tokenizer lacks is refused up front */
    snprintf(body, sizeof body, "\"train\": \"%s\", \"chat_template\": \"chatml\"", tmp_path("chat.jsonl"));
    rc = run_prepare(&err, "--config", write_data_config("chat_chatml.json", body), NULL);
    CHECK(rc == 2 && strstr(err, "data.chat_template chatml") && strstr(err, "<|im_end|>"), "chatml refused: %s", err);
    free(err);
}

/* sha256sum's answer for a file (the oracle for source_sha256). */
static void sha256sum(const char *path, char out[65]) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
    out[0] = 0;
    FILE *p = popen(cmd, "r");
    if (!p) return;
    if (fscanf(p, "%64s", out) != 1) out[0] = 0;
    pclose(p);
}

/* The multiset of examples of a dataset as sorted token-sequence hashes. */
static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}
static uint64_t *example_hashes(const slim_dataset *d) {
    uint64_t *h = slim_malloc((size_t)(d->n_examples ? d->n_examples : 1) * sizeof(uint64_t));
    for (int64_t e = 0; e < d->n_examples; e++)
        h[e] = slim_fnv1a(SLIM_FNV_INIT, d->tokens + d->offsets[e], (size_t)(d->offsets[e + 1] - d->offsets[e]) * 4);
    qsort(h, (size_t)d->n_examples, sizeof(uint64_t), cmp_u64);
    return h;
}

static void test_split(void) {
    /* 150 ham + 50 spam rows, one text present three times */
    const int n = 200;
    char **rows = slim_malloc((size_t)n * sizeof(char *));
    for (int i = 0; i < n; i++) {
        char r[160];
        int dup = i == 10 || i == 40 || i == 70; /* ham rows with i % 3 == 1: the same text three times */
        snprintf(r, sizeof r, "%s number %d about %s,%s\n", dup ? "the repeated message" : "message", dup ? 0 : i,
                 i % 3 ? "the park" : "a ball", i < 150 ? "ham" : "spam");
        rows[i] = slim_strdup(r);
    }
    /* file a in order, file b in a scrambled order */
    size_t cap = (size_t)n * 160 + 64, na = 0, nb = 0;
    char *a = slim_malloc(cap), *b = slim_malloc(cap);
    na += (size_t)snprintf(a, cap, "text,label\n");
    nb += (size_t)snprintf(b, cap, "text,label\n");
    for (int i = 0; i < n; i++) na += (size_t)snprintf(a + na, cap - na, "%s", rows[i]);
    for (int i = 0; i < n; i++) nb += (size_t)snprintf(b + nb, cap - nb, "%s", rows[(i * 37 + 11) % n]);
    write_bytes(tmp_path("split_a.csv"), a, na);
    write_bytes(tmp_path("split_b.csv"), b, nb);
    free(a);
    free(b);

    /* split_assign directly: the same texts go to test in both orders */
    data_reader ra, rb;
    int rc = reader_open(&ra, tmp_path("split_a.csv"), "auto", "text", "label", NULL, 0);
    int rc2 = reader_open(&rb, tmp_path("split_b.csv"), "auto", "text", "label", NULL, 0);
    CHECK(rc == 0 && rc2 == 0, "read split files: %s", slim_last_error());
    if (rc || rc2) return;
    int8_t *sa = slim_malloc((size_t)n), *sb = slim_malloc((size_t)n), *sc = slim_malloc((size_t)n);
    int64_t ta = split_assign(ra.rows, ra.n_rows, SHAPE_TEXT_LABEL, 0.25, 7, sa);
    int64_t tb = split_assign(rb.rows, rb.n_rows, SHAPE_TEXT_LABEL, 0.25, 7, sb);
    int64_t tc = split_assign(ra.rows, ra.n_rows, SHAPE_TEXT_LABEL, 0.25, 8, sc);
    CHECK(ta == tb, "same number of test rows in both orders (%lld, %lld)", (long long)ta, (long long)tb);
    int same = 1, ham_t = 0, spam_t = 0, diff_seed = 0, dup_side = -1, dup_ok = 1;
    for (int64_t i = 0; i < ra.n_rows; i++) {
        /* find the row with the same text and label in b (duplicates share a side, so any copy will do) */
        int64_t j = -1;
        for (int64_t k = 0; k < rb.n_rows && j < 0; k++)
            if (!strcmp(ra.rows[i].text, rb.rows[k].text) && !strcmp(ra.rows[i].label, rb.rows[k].label)) j = k;
        same &= j >= 0 && sa[i] == sb[j];
        if (sa[i] == 1) { ham_t += !strcmp(ra.rows[i].label, "ham"); spam_t += !strcmp(ra.rows[i].label, "spam"); }
        diff_seed += sa[i] != sc[i];
        if (strstr(ra.rows[i].text, "repeated") && !strcmp(ra.rows[i].label, "ham")) {
            if (dup_side < 0) dup_side = sa[i];
            dup_ok &= sa[i] == dup_side;
        }
    }
    CHECK(same, "reordering the rows gives the identical split");
    /* stratified: round(0.25 * 150) = 38 ham (a duplicate group may overshoot by one), round(0.25 * 50) = 13 spam */
    CHECK((ham_t == 38 || ham_t == 39) && spam_t == 13, "stratified counts: %d ham, %d spam in test", ham_t, spam_t);
    CHECK(dup_ok, "identical inputs land on the same side");
    CHECK(diff_seed > 0 && tc > 0, "another seed gives another split (%d rows moved)", diff_seed);
    reader_free(&ra);
    reader_free(&rb);
    free(sa);
    free(sb);
    free(sc);

    /* prepare with data.split: both files from data.train; the same examples whatever the order */
    char body[1024];
    slim_dataset d[2][2];
    const char *files[2] = {"split_a.csv", "split_b.csv"};
    int ok[2][2] = {{0, 0}, {0, 0}};
    for (int f = 0; f < 2; f++) {
        char name[64];
        snprintf(name, sizeof name, "split%d.json", f);
        snprintf(body, sizeof body, "\"train\": \"%s\", \"labels\": [\"ham\", \"spam\"], \"split\": {\"test_fraction\": "
                                    "0.25, \"seed\": 7}",
                 tmp_path(files[f]));
        ok[f][0] = prepare_read(name, body, "train", &d[f][0], NULL) == 0;
        char path[800];
        snprintf(path, sizeof path, "%s/out-%s/data/test.h5", tmpdir, name);
        ok[f][1] = dataset_read(&d[f][1], path) == 0;
        CHECK(ok[f][1], "split: test.h5 written from data.train: %s", slim_last_error());
    }
    if (ok[0][0] && ok[0][1] && ok[1][0] && ok[1][1]) {
        CHECK(d[0][0].n_examples + d[0][1].n_examples == n, "train + test = %d rows", n);
        CHECK(d[0][1].n_examples == ham_t + spam_t, "prepare's test split is split_assign's (%lld)",
              (long long)d[0][1].n_examples);
        for (int s = 0; s < 2; s++) {
            CHECK(d[0][s].n_examples == d[1][s].n_examples, "split %d: same size in both orders", s);
            if (d[0][s].n_examples != d[1][s].n_examples) continue;
            uint64_t *h0 = example_hashes(&d[0][s]), *h1 = example_hashes(&d[1][s]);
            CHECK(memcmp(h0, h1, (size_t)d[0][s].n_examples * 8) == 0, "split %d: the same examples in both orders", s);
            free(h0);
            free(h1);
        }
        const slim_dataset *t = &d[0][1], *r = &d[0][0];
        CHECK(strcmp(t->split, "test") == 0 && strcmp(r->split, "train") == 0, "split attributes");
        CHECK(strstr(t->split_rule, "seed=7") && strstr(t->split_rule, "test_fraction=0.25") &&
                  strstr(t->split_rule, "stratified=label"),
              "split_rule: %s", t->split_rule);
        CHECK(strcmp(t->source_file, tmp_path("split_a.csv")) == 0, "test source is data.train");
        char want[65];
        sha256sum(tmp_path("split_a.csv"), want);
        CHECK(strlen(want) == 64 && strcmp(r->source_sha256, want) == 0 && strcmp(t->source_sha256, want) == 0,
              "source_sha256 %s == sha256sum %s", r->source_sha256, want);
        CHECK(r->source_bytes == (int64_t)na, "source_bytes %lld", (long long)r->source_bytes);
        CHECK(r->config_fingerprint != 0 && r->config_fingerprint == t->config_fingerprint,
              "config fingerprint shared by both splits");
        CHECK(r->n_rows + t->n_rows == n && r->tokenizer_fingerprint == g_tok.fingerprint, "n_rows and tokenizer");
        CHECK(d[1][0].config_fingerprint == r->config_fingerprint, "the fingerprint does not depend on the data");
    }
    for (int f = 0; f < 2; f++)
        for (int s = 0; s < 2; s++)
            if (ok[f][s]) dataset_free(&d[f][s]);
    /* another max_seq_len: another config fingerprint */
    slim_dataset e;
    snprintf(body, sizeof body, "\"train\": \"%s\", \"labels\": [\"ham\", \"spam\"], \"max_seq_len\": 200, "
                                "\"split\": {\"test_fraction\": 0.25, \"seed\": 7}",
             tmp_path("split_a.csv"));
    slim_dataset f0;
    snprintf(body + strlen(body), sizeof body - strlen(body), "%s", "");
    if (prepare_read("split_len.json", body, "train", &e, NULL) == 0) {
        snprintf(body, sizeof body, "\"train\": \"%s\", \"labels\": [\"ham\", \"spam\"], \"split\": {\"test_fraction\": "
                                    "0.25, \"seed\": 7}",
                 tmp_path("split_a.csv"));
        if (prepare_read("split_again.json", body, "train", &f0, NULL) == 0) {
            CHECK(e.config_fingerprint != f0.config_fingerprint, "max_seq_len changes the config fingerprint");
            dataset_free(&f0);
        }
        dataset_free(&e);
    }
    /* data.split with --split test writes only test.h5 */
    char *err;
    rc = run_prepare(&err, "--config", tmp_path("split0.json"), "--split", "test", "--out", tmp_path("only-test"), NULL);
    CHECK(rc == 0, "--split test with data.split: %s", err);
    free(err);
    char p[800];
    snprintf(p, sizeof p, "%s/data/test.h5", tmp_path("only-test"));
    CHECK(access(p, F_OK) == 0, "test.h5 written");
    snprintf(p, sizeof p, "%s/data/train.h5", tmp_path("only-test"));
    CHECK(access(p, F_OK) != 0, "train.h5 not written");
    for (int i = 0; i < n; i++) free(rows[i]);
    free(rows);
}

static void test_key_normalization(void) {
    size_t n;
    char *k = reader_normalize("  Caf\xc3\xa9 \t\n  AU\xe2\x80\x83LAIT  ", strlen("  Caf\xc3\xa9 \t\n  AU\xe2\x80\x83LAIT  "), &n);
    CHECK(strcmp(k, "caf\xc3\xa9 au lait") == 0 && n == strlen(k), "normalize: case, spaces (EM SPACE too), trim: '%s'", k);
    free(k);
    /* NFC: e + combining acute == precomposed e-acute; full case folding: STRASSE ~ straße */
    char *a = reader_normalize("cafe\xcc\x81", 6, &n), *b = reader_normalize("CAF\xc3\x89", 5, &n);
    CHECK(strcmp(a, b) == 0, "NFC + case fold: '%s' vs '%s'", a, b);
    free(a);
    free(b);
    a = reader_normalize("STRASSE", 7, &n);
    b = reader_normalize("stra\xc3\x9f" "e", 7, &n);
    CHECK(strcmp(a, b) == 0, "full case folding: '%s' vs '%s'", a, b);
    free(a);
    free(b);
    char hex[65];
    reader_sha256_hex("abc", 3, hex);
    CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0, "sha256(abc) %s", hex);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/slimtune-test-shapes-XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    snprintf(model_path, sizeof model_path, "%s/models/stories260K.gguf", slim_shared_dir());
    int rc = tokenizer_init_path(&g_tok, model_path);
    CHECK(rc == 0, "the shared model %s is required (set SLIM_SHARED): %s", model_path, slim_last_error());
    if (rc) return tu_finish("test_shapes");

    test_key_normalization();
    test_prompt_completion_and_alpaca();
    test_text_and_tsv();
    test_chat();
    test_split();

    tokenizer_free(&g_tok);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmpdir);
    return tu_finish("test_shapes");
}
