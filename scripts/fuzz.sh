#!/usr/bin/env bash
# Builds the GGUF libFuzzer target with clang (ASan + UBSan) and runs it for
# SECONDS seconds (default 20) on a seed corpus made from small fixture files.
#   scripts/fuzz.sh [SECONDS] [extra libFuzzer flags...]
# Crashes are written to $M40LLM_FUZZ_DIR (default build-fuzz/) as crash-*.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"
shift || true

out="${M40LLM_FUZZ_DIR:-build-fuzz}"
mkdir -p "$out"
bin="$out/fuzz_gguf"
. scripts/fuzz_common.sh
fuzz_build "$bin" "" fuzz/fuzz_gguf.c src/gguf/gguf_parse.c src/gguf/gguf_meta.c \
    src/quant/quant_types.c src/err.c src/gguf/fileio.c -- src/gguf/gguf.h src/gguf/gguf_internal.h \
    src/quant/quant.h src/gguf/fileio.h

# seed corpus: the small fixtures and their first kilobytes (headers, metadata)
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
for f in tests/fixtures/reference/synth-q2_k.gguf tests/fixtures/reference/synth-q4_0.gguf \
         tests/fixtures/tokenizer/ggml-vocab-llama-spm.gguf; do
    [ -f "$f" ] || continue
    b=$(basename "$f" .gguf)
    head -c 65536 "$f" >"$corpus/$b.head"
    head -c 4096 "$f" >"$corpus/$b.4k"
done
cp tests/fixtures/reference/synth-q2_k.gguf "$corpus/" 2>/dev/null || true

# the corpus dir holds seeds; new inputs go there too and vanish with it
"$bin" -max_total_time="$secs" -max_len=1048576 -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$out/" -print_final_stats=1 "$@" "$corpus"
