#!/usr/bin/env node
// greedy_labels.mjs — test oracle: the label real llama.cpp (node-llama-cpp's prebuilt CPU binary) generates
// for each row, as a deployment would ask it: greedy next tokens after the row's prompt, up to --max-new
// tokens or EOS, detokenized; the label is the longest of --labels that the text (leading blanks removed)
// starts with, else null (a tuned model often runs on past its label instead of ending at EOS).
//
// usage: node tests/llamacpp/greedy_labels.mjs --model PATH --rows PREDICTIONS.jsonl --labels a,b,...
//        [--max-new N (default 8)] [--threads N (default 2)]
// PREDICTIONS.jsonl: `slimtune predict --prompt-tokens` output; rows with "prompt_tokens" are generated
// from exactly those ids (no tokenization here, so both sides see the same prompt), others skipped.
// Prints one JSON object a row on stdout: {"line": L, "label": "spam" | null, "text": generated text}.
// Exit status 0, or 1 with a message on stderr.

import fs from "node:fs";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

function usage(msg) {
    process.stderr.write(`greedy_labels.mjs: ${msg}\nusage: node greedy_labels.mjs --model PATH --rows FILE ` +
        "--labels a,b,... [--max-new N] [--threads N]\n");
    process.exit(1);
}

function parseArgs(argv) {
    const args = {model: null, rows: null, labels: null, maxNew: 8, threads: 2};
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i], v = () => (i + 1 < argv.length ? argv[++i] : usage(`option ${a} needs a value`));
        if (a === "--model") args.model = v();
        else if (a === "--rows") args.rows = v();
        else if (a === "--labels") args.labels = v().split(",");
        else if (a === "--max-new") args.maxNew = Number(v());
        else if (a === "--threads") args.threads = Number(v());
        else usage(`unknown argument '${a}'`);
    }
    if (!args.model || !args.rows || !args.labels) usage("--model, --rows and --labels are required");
    if (!(Number.isInteger(args.maxNew) && args.maxNew > 0)) usage("--max-new must be a positive integer");
    return args;
}

// The argmax token of a Map<token, logit>.
function argmax(map) {
    let best = -1, bestLogit = -Infinity;
    for (const [tok, logit] of map) if (logit > bestLogit) { best = tok; bestLogit = logit; }
    return best;
}

async function main() {
    const args = parseArgs(process.argv.slice(2));
    const rows = fs.readFileSync(args.rows, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l))
        .filter((r) => Array.isArray(r.prompt_tokens));
    if (rows.length === 0) usage(`${args.rows}: no rows with prompt_tokens (run slimtune predict --prompt-tokens)`);
    const llama = await getLlama({build: "never", usePrebuiltBinaries: true, skipDownload: true, gpu: false,
        progressLogs: false, logLevel: LlamaLogLevel.error, maxThreads: args.threads});
    const model = await llama.loadModel({modelPath: args.model, gpuLayers: 0, useMmap: false});
    const longest = Math.max(...rows.map((r) => r.prompt_tokens.length)) + args.maxNew;
    const contextSize = Math.max(256, Math.ceil(longest / 256) * 256);
    const context = await model.createContext({contextSize, batchSize: contextSize, sequences: 1,
        threads: args.threads, flashAttention: false, experimentalKvCacheKeyType: "F32",
        experimentalKvCacheValueType: "F32"});
    const sequence = context.getSequence();
    const eos = model.tokens.eos;
    for (const row of rows) {
        await sequence.clearHistory();
        const input = row.prompt_tokens.map((t, i) => (i === row.prompt_tokens.length - 1 ? [t, {generateNext: {logits: true}}] : t));
        let res = await sequence.controlledEvaluate(input);
        let next = argmax(res[res.length - 1].next.logits);
        const generated = [];
        while (next !== eos && generated.length < args.maxNew) {
            generated.push(next);
            res = await sequence.controlledEvaluate([[next, {generateNext: {logits: true}}]]);
            next = argmax(res[0].next.logits);
        }
        const text = model.detokenize(generated);
        const head = text.trimStart();
        let label = null;
        for (const l of args.labels) if (head.startsWith(l) && (label === null || l.length > label.length)) label = l;
        process.stdout.write(JSON.stringify({line: row.line, label, text}) + "\n");
    }
    await context.dispose();
    await model.dispose();
    await llama.dispose();
}

main().catch((err) => {
    process.stderr.write(`greedy_labels.mjs: ${err?.message ?? err}\n`);
    process.exit(1);
});
