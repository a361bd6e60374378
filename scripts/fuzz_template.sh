#!/usr/bin/env bash
# Builds the chat-template libFuzzer target with clang (ASan + UBSan) and runs
# it for SECONDS seconds (default 20), with a dictionary of Jinja syntax and
# edge numbers (fuzz/template.dict), seeded with the template bombs in
# fuzz/corpus/template/ and the fixture templates, under a memory limit.
#   scripts/fuzz_template.sh [SECONDS] [extra libFuzzer flags...]
# Crashes, leaks and timeouts are written to $M40LLM_FUZZ_DIR (default
# build-fuzz/) as crash-*, leak-*, timeout-*, oom-*.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"
shift || true

out="${M40LLM_FUZZ_DIR:-build-fuzz}"
mkdir -p "$out"
bin="$out/fuzz_template"
. scripts/fuzz_common.sh
fuzz_build "$bin" "-lcjson -lm" fuzz/fuzz_template.c src/text/jinja_*.c src/err.c -- \
    src/text/jinja.h src/text/jinja_int.h src/text/jinja_parse.h

# seed corpus: the bombs and the fixture templates; new inputs go there too
# and vanish with it
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
cp fuzz/corpus/template/* tests/fixtures/templates/*.jinja "$corpus/"

# Every render ends within its budgets (the target sets 2 MiB and 200k steps),
# so a template taking 2 s, one allocation over 64 MiB or 1 GiB of RSS is a
# finding. One worker: libFuzzer's default, and a shared machine's share.
"$bin" -max_total_time="$secs" -max_len=16384 -dict=fuzz/template.dict \
    -rss_limit_mb=1024 -malloc_limit_mb=64 -timeout=2 \
    -artifact_prefix="$out/" -print_final_stats=1 "$@" "$corpus"
