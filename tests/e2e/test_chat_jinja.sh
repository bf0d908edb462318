#!/usr/bin/env bash
# test_chat_jinja.sh — the committed chat-template fixtures are current: re-renders every test
# conversation with the models' real Jinja chat_template strings (@huggingface/jinja, pinned in
# tests/chat/package-lock.json) and re-tokenizes the renderings with llama.cpp (node-llama-cpp of
# tests/llamacpp) and @huggingface/tokenizers, and requires byte-identical tests/chat/fixtures/*.json.
# tests/lib/tokenizer/test_chat.c then compares lib/tokenizer/chat.c against those fixtures without node.
#
#   tests/e2e/test_chat_jinja.sh
#
# Needs node, `npm ci --ignore-scripts --prefix tests/chat` and tests/llamacpp's packages (make deps),
# and ../shared (or $SLIM_SHARED) for the SentencePiece vocabularies. A missing prerequisite is a
# failure, never a skip. Prints "chat_jinja: N passed, N failed".
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
export SLIM_SHARED=${SLIM_SHARED:-../shared}
passed=0
failed=0

die() {
    echo "FAIL: $*" >&2
    failed=$((failed + 1))
    echo "chat_jinja: $passed passed, $failed failed"
    exit 1
}

command -v node >/dev/null || die "node is not installed: run 'make deps'"
[ -d tests/chat/node_modules/@huggingface/jinja ] ||
    die "tests/chat/node_modules is missing: run 'npm ci --ignore-scripts --prefix tests/chat' (make deps)"
[ -d tests/llamacpp/node_modules/node-llama-cpp ] ||
    die "tests/llamacpp/node_modules is missing (node-llama-cpp not installed): run 'make deps'"
[ -f "$SLIM_SHARED/vocab/ggml-vocab-phi-3.gguf" ] || die "$SLIM_SHARED/vocab is missing (set SLIM_SHARED)"

for script in render tokens; do
    if node "tests/chat/$script.mjs" --check; then
        passed=$((passed + 1))
    else
        echo "FAIL: tests/chat/$script.mjs --check: fixtures differ from a fresh rendering" \
             "(regenerate with: node tests/chat/$script.mjs --write, and review the diff)" >&2
        failed=$((failed + 1))
    fi
done
echo "chat_jinja: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
