#!/usr/bin/env bash
# Builds the JSON-mode libFuzzer target (fuzz/fuzz_json_schema.c: a schema,
# NUL, an answer) with clang (ASan + UBSan) and runs it for SECONDS seconds
# (default 20), seeded with fuzz/corpus/json_schema/, under a memory limit.
#   scripts/fuzz_json.sh [SECONDS] [extra libFuzzer flags...]
# Findings are written to $M40LLM_FUZZ_DIR (default build-fuzz/).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"
shift || true

out="${M40LLM_FUZZ_DIR:-build-fuzz}"
mkdir -p "$out"
bin="$out/fuzz_json_schema"
. scripts/fuzz_common.sh
fuzz_build "$bin" "-lcjson -lm" fuzz/fuzz_json_schema.c src/engine/json_schema.c src/engine/json_sa.c \
    src/engine/json_pda.c src/err.c -- src/engine/json_schema.h src/engine/json_schema_int.h \
    src/engine/json_sa.h src/engine/json_pda.h

corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
cp fuzz/corpus/json_schema/* "$corpus/"

# a schema compiles in well under a second, and the answer is bounded by
# max_len: 2 s is a finding
"$bin" -max_total_time="$secs" -max_len=8192 -rss_limit_mb=1024 -malloc_limit_mb=64 \
    -timeout=2 -artifact_prefix="$out/" -print_final_stats=1 "$@" "$corpus"
