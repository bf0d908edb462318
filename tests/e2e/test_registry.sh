#!/usr/bin/env bash
# Export versions and rollback (export/registry.h), on stories260K with two different adapters: each export
# registers a version (name <run>-vN, provenance hashes, eval figures, every file with its size and SHA-256)
# and snapshots its files into versions/<name>/, so that a later export does not change an earlier version;
# promote points current at a version, rollback at the one promoted before; bad requests exit 2.
set -uo pipefail
. "$(dirname "$0")/../testlib.sh" test_registry

tmp=$(mktemp -d); trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT; [ -n "${KEEP:-}" ] && echo "$tmp"
tool="$BUILD/tests/export/test_export"
model="$SHARED/models/stories260K.gguf"
"$tool" adapter "$model" "$tmp/a1.gguf" && "$tool" adapter "$model" "$tmp/a2.gguf" all
check "two adapters" $?
jq -n --arg m "$model" --arg o "$tmp/reg/run" '{model: $m, out_dir: $o, export: {formats: ["q8_0", "lora", "peft"]}}' \
    >"$tmp/config.json"
"$bin" export --config "$tmp/config.json" --adapter "$tmp/a1.gguf" >"$tmp/e1.log" 2>&1 &&
    "$bin" export --config "$tmp/config.json" --adapter "$tmp/a2.gguf" >"$tmp/e2.log" 2>&1
check "two exports" $? "$(tail -2 "$tmp/e2.log")"
reg="$tmp/reg/registry.json"
jq -e '[.versions[].name] == ["run-v1", "run-v2"] and (.versions | all(.config_sha256 == null or (.config_sha256 | length) == 64))' \
    "$reg" >/dev/null && grep -q 'registered run-v2' "$tmp/e2.log"
check "two versions, run-v1 and run-v2" $? "$(jq -c '[.versions[].name]' "$reg")"
ok=0
for v in run-v1 run-v2; do
    while read -r name sha; do
        [ "$(sha256sum "$tmp/reg/versions/$v/$name" | cut -d' ' -f1)" = "$sha" ] || ok=1
    done < <(jq -r --arg v "$v" '.versions[] | select(.name == $v) | .files[] | "\(.name) \(.sha256)"' "$reg")
done
[ "$(jq '[.versions[].files | length] | add' "$reg")" -eq 8 ]
check "every snapshot file matches its recorded SHA-256 (8 files)" $(( ok || $? ))
cmp -s "$tmp/reg/versions/run-v2/adapter-lora.gguf" "$tmp/reg/run/export/adapter-lora.gguf" &&
    ! cmp -s "$tmp/reg/versions/run-v1/adapter-lora.gguf" "$tmp/reg/run/export/adapter-lora.gguf"
check "the second export left the first version's files as they were" $?

"$bin" models promote run-v1 --config "$tmp/config.json" >/dev/null && [ "$(readlink "$tmp/reg/current")" = versions/run-v1 ]
check "promote run-v1" $?
"$bin" models promote run-v2 --config "$tmp/config.json" >/dev/null && [ "$(readlink "$tmp/reg/current")" = versions/run-v2 ]
check "promote run-v2" $?
"$bin" models rollback --config "$tmp/config.json" >/dev/null && [ "$(readlink "$tmp/reg/current")" = versions/run-v1 ] &&
    jq -e '.current == "run-v1" and .history == ["run-v1"]' "$reg" >/dev/null
check "rollback: current back at run-v1" $? "$(jq -c '{current, history}' "$reg")"
"$bin" models list --registry "$reg" | grep -q '^run-v1 .*<- current'
check "list marks the current version" $?
"$bin" models show run-v2 --config "$tmp/config.json" | jq -e '.name == "run-v2" and (.files | length) == 4' >/dev/null
check "show prints a version as JSON" $?
"$bin" models promote run-v9 --config "$tmp/config.json" 2>"$tmp/bad.log"
[ $? -eq 2 ] && grep -q 'no version called run-v9' "$tmp/bad.log"
check "promote of an unknown version exits 2, naming it" $? "$(cat "$tmp/bad.log")"
"$bin" models rollback --config "$tmp/config.json" 2>"$tmp/bad2.log"
[ $? -eq 2 ] && grep -q 'nothing to roll back to' "$tmp/bad2.log"
check "rollback past the first promotion exits 2" $? "$(cat "$tmp/bad2.log")"
finish
