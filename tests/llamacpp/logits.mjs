#!/usr/bin/env node
// logits.mjs — test oracle: next-token logits from real llama.cpp (node-llama-cpp 3.22.1, prebuilt CPU binary).
//
// usage:
//   node tests/llamacpp/logits.mjs --model PATH --tokens 1,403,407,261,378 [--all]
//   node tests/llamacpp/logits.mjs --model PATH --text "Once upon a time" [--all]
//   options: --flash-attn auto|on|off (default auto, as llama.cpp's tools: on the CPU it resolves to on)
//            --kv-type f16|f32 (KV cache type, default f16 as llama.cpp), --threads N (default 2), --verbose
//
// Prints one JSON object on stdout:
//   {"n_vocab": V, "n_tokens": T, "tokens": [...], "flash_attn": "enabled"|"disabled", "kv_type": "f16"|"f32",
//    "eval_ms": ms, "logits": [V floats]}
// "logits" are the raw float32 logits (full vocabulary, indexed by token id) llama.cpp computes for the
// position after the LAST token. With --all, "logits" is an array of T such rows, one per input position
// (row i = distribution of the token following tokens[0..i]).
// --tokens: the ids are evaluated exactly as given (no BOS added, no tokenization).
// --text:   tokenized by llama.cpp's own tokenizer; BOS is prepended when the model says so
//           (tokenizer.ggml.add_bos_token / vocabulary default), exactly as llama.cpp's tools do.
//
// How the raw logits are obtained: LlamaContextSequence.controlledEvaluate() with
// generateNext: {logits: true} per position. The addon copies llama_get_logits_ith() into the candidate
// array and then runs the sampler chain; with temperature 0 (the default) the chain is only the greedy
// sampler, which selects the argmax but does not modify any logit. No tokenBias / repeat penalty / grammar
// is set, so the values returned are llama.cpp's raw logits (float32 values, carried exactly as JS doubles).
//
// Never downloads or builds anything: getLlama({build: "never", usePrebuiltBinaries: true, skipDownload: true}),
// CPU only (gpu: false); llama.cpp errors go to stderr (all of its log with --verbose).
//
// Numerics: llama.cpp's defaults (flash attention auto -> on, F16 KV cache) reproduce the reference figures in
// shared/README.md exactly (stories260K: logit(432) = 17.79794). "--flash-attn off --kv-type f32" is the most
// float32-like path (17.79940 there); the gap (~1e-3 in logits) is F16 rounding inside attention, so compare
// an F32 implementation against llama.cpp with tolerances of that order, or use the F32 settings.
// Exit status: 0 on success, 1 with a message on stderr on any error.

import {getLlama, LlamaLogLevel} from "node-llama-cpp";

function usage(msg) {
    if (msg)
        process.stderr.write(`logits.mjs: ${msg}\n`);
    process.stderr.write("usage: node logits.mjs --model PATH (--tokens ID,ID,... | --text STRING) [--all]\n" +
        "       [--flash-attn auto|on|off] [--kv-type f16|f32] [--threads N] [--verbose]\n");
    process.exit(1);
}

function parseArgs(argv) {
    const args = {model: null, tokens: null, text: null, all: false, threads: 2, verbose: false,
        flashAttn: "auto", kvType: "f16"};
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const value = () => {
            if (i + 1 >= argv.length)
                usage(`option ${a} needs a value`);
            return argv[++i];
        };
        if (a === "--model") args.model = value();
        else if (a === "--tokens") args.tokens = value();
        else if (a === "--text") args.text = value();
        else if (a === "--all") args.all = true;
        else if (a === "--threads") args.threads = Number(value());
        else if (a === "--flash-attn") args.flashAttn = value();
        else if (a === "--kv-type") args.kvType = value();
        else if (a === "--verbose") args.verbose = true;
        else if (a === "--help" || a === "-h") usage(null);
        else usage(`unknown argument '${a}'`);
    }
    if (args.model == null)
        usage("--model is required");
    if ((args.tokens == null) === (args.text == null))
        usage("give exactly one of --tokens and --text");
    if (!["auto", "on", "off"].includes(args.flashAttn))
        usage(`--flash-attn must be auto, on or off, not '${args.flashAttn}'`);
    if (!["f16", "f32"].includes(args.kvType))
        usage(`--kv-type must be f16 or f32, not '${args.kvType}'`);
    if (!Number.isInteger(args.threads) || args.threads < 1)
        usage("--threads must be a positive integer");
    return args;
}

function parseTokenList(s) {
    const parts = s.split(",").map((p) => p.trim()).filter((p) => p.length > 0);
    if (parts.length === 0)
        usage("--tokens: empty token list");
    return parts.map((p) => {
        if (!/^[0-9]+$/.test(p))
            usage(`--tokens: '${p}' is not a non-negative integer token id`);
        return Number(p);
    });
}

async function main() {
    const args = parseArgs(process.argv.slice(2));
    let flashAttnResolved = null;

    const llama = await getLlama({
        build: "never",            // never compile llama.cpp
        usePrebuiltBinaries: true, // use @node-llama-cpp/linux-x64
        skipDownload: true,        // never fetch llama.cpp sources / binaries
        gpu: false,                // CPU backend only
        progressLogs: false,
        // info level so that the resolved flash-attention setting can be read from llama.cpp's context log
        logLevel: args.verbose ? LlamaLogLevel.debug : LlamaLogLevel.info,
        logger: (level, message) => {
            // "llama_context: flash_attn = enabled" or, for auto, "resolve_fused_ops: Flash Attention enabled"
            const m = /flash[ _]att\w*\W.*?\b(enabled|disabled)\b/i.exec(message);
            if (m != null)
                flashAttnResolved = m[1];
            if (args.verbose || level === LlamaLogLevel.error || level === LlamaLogLevel.fatal)
                process.stderr.write(`llama.cpp[${level}]: ${message.endsWith("\n") ? message : message + "\n"}`);
        },
        maxThreads: args.threads
    });

    const model = await llama.loadModel({
        modelPath: args.model,
        gpuLayers: 0,
        useMmap: false,
        checkTensors: true
    });

    let tokens;
    if (args.text != null) {
        tokens = model.tokenize(args.text, false);
        const bos = model.tokens.bos;
        if (model.tokens.shouldPrependBosToken && bos != null)
            tokens = [bos, ...tokens];
        if (tokens.length === 0)
            usage("--text gave no tokens");
    } else {
        tokens = parseTokenList(args.tokens);
    }

    const nVocabFile = model.fileInfo?.metadata?.tokenizer?.ggml?.tokens?.length;
    for (const t of tokens) {
        if (nVocabFile != null && t >= nVocabFile)
            throw new Error(`token id ${t} is out of range (model vocabulary has ${nVocabFile} tokens)`);
    }

    // Context: just big enough (llama.cpp rounds the size up to its own padding), one batch for all tokens.
    const contextSize = Math.max(256, Math.ceil(tokens.length / 256) * 256);
    const context = await model.createContext({
        contextSize,
        batchSize: contextSize,
        sequences: 1,
        threads: args.threads,
        flashAttention: args.flashAttn === "auto" ? "auto" : args.flashAttn === "on",
        experimentalKvCacheKeyType: args.kvType.toUpperCase(),
        experimentalKvCacheValueType: args.kvType.toUpperCase()
    });
    const sequence = context.getSequence();

    const t0 = performance.now();
    const input = tokens.map((t, i) => (args.all || i === tokens.length - 1)
        ? [t, {generateNext: {logits: true}}]
        : t);
    const res = await sequence.controlledEvaluate(input);
    const evalMs = performance.now() - t0;

    // Map<token, logit> (sorted by logit) -> dense row indexed by token id.
    const toRow = (map, pos) => {
        if (map == null)
            throw new Error(`no logits returned for position ${pos}`);
        const row = new Array(map.size);
        for (const [tok, logit] of map)
            row[tok] = logit;
        for (let i = 0; i < row.length; i++)
            if (typeof row[i] !== "number")
                throw new Error(`logits row of position ${pos} is missing token id ${i}`);
        return row;
    };

    let logits;
    let nVocab;
    if (args.all) {
        logits = res.map((r, i) => toRow(r?.next?.logits, i));
        nVocab = logits[0].length;
    } else {
        const last = tokens.length - 1;
        logits = toRow(res[last]?.next?.logits, last);
        nVocab = logits.length;
    }
    if (nVocabFile != null && nVocabFile !== nVocab)
        throw new Error(`llama.cpp returned ${nVocab} logits but the GGUF vocabulary has ${nVocabFile} tokens`);

    process.stdout.write(JSON.stringify({
        n_vocab: nVocab,
        n_tokens: tokens.length,
        tokens,
        flash_attn: flashAttnResolved ?? `unknown (${args.flashAttn})`,
        kv_type: args.kvType,
        eval_ms: Math.round(evalMs * 1000) / 1000,
        logits
    }) + "\n");

    await context.dispose();
    await model.dispose();
    await llama.dispose();
}

main().catch((err) => {
    const verbose = process.argv.includes("--verbose");
    process.stderr.write(`logits.mjs: ${verbose ? (err?.stack ?? err) : (err?.message ?? err)}\n`);
    process.exit(1);
});
