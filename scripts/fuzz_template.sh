#!/usr/bin/env bash
# Builds the chat-template libFuzzer target with clang (ASan + UBSan) and runs
# it for SECONDS seconds (default 20), seeded with the fixture templates.
#   scripts/fuzz_template.sh [SECONDS] [extra libFuzzer flags...]
# Crashes are written to $M40LLM_FUZZ_DIR (default build-fuzz/) as crash-*.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"
shift || true

out="${M40LLM_FUZZ_DIR:-build-fuzz}"
mkdir -p "$out"
bin="$out/fuzz_template"
. scripts/fuzz_common.sh
fuzz_build "$bin" "-lcjson -lm" fuzz/fuzz_template.c src/jinja_*.c src/err.c -- \
    src/jinja.h src/jinja_int.h src/jinja_parse.h

# seed corpus: the fixture templates; new inputs go there too and vanish with it
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
cp tests/fixtures/templates/*.jinja "$corpus/"

"$bin" -max_total_time="$secs" -max_len=16384 -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$out/" -print_final_stats=1 "$@" "$corpus"
