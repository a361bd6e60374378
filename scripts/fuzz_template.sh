#!/usr/bin/env bash
# Builds the chat-template libFuzzer target with clang (ASan + UBSan) and runs
# it for SECONDS seconds (default 20), seeded with the fixture templates.
#   scripts/fuzz_template.sh [SECONDS] [extra libFuzzer flags...]
# Crashes are written to $M40LLM_FUZZ_DIR (default build-fuzz/) as crash-*.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"
shift || true

cc=""
for c in "${CLANG:-}" clang clang-14 clang-15 clang-16 clang-17 clang-18; do
    if [ -n "$c" ] && command -v "$c" >/dev/null 2>&1; then cc="$c"; break; fi
done
if [ -z "$cc" ]; then echo "fuzz_template.sh: clang not found" >&2; exit 77; fi

out="${M40LLM_FUZZ_DIR:-build-fuzz}"
mkdir -p "$out"
bin="$out/fuzz_template"
src=(fuzz/fuzz_template.c src/jinja_*.c src/err.c)
stale=0
[ -x "$bin" ] || stale=1
for f in "${src[@]}" src/jinja.h src/jinja_int.h src/jinja_parse.h; do
    if [ "$f" -nt "$bin" ]; then stale=1; fi
done
if [ "$stale" = 1 ]; then
    "$cc" -std=c17 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -Iinclude -Isrc "${src[@]}" -lcjson -lm -o "$bin"
fi

# seed corpus: the fixture templates; new inputs go there too and vanish with it
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
cp tests/fixtures/templates/*.jinja "$corpus/"

"$bin" -max_total_time="$secs" -max_len=16384 -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$out/" -print_final_stats=1 "$@" "$corpus"
