#!/usr/bin/env bash
# Builds the tokenizer libFuzzer target with clang (ASan + UBSan) and runs it
# for SECONDS seconds (default 20) on every vocab fixture, with a dictionary of
# special-token texts and UTF-8 edge cases and seeds made from chat prompts and
# the fixture vectors.
#   scripts/fuzz_tokenizer.sh [SECONDS] [extra libFuzzer flags...]
# Crashes are written to $M40LLM_FUZZ_DIR (default build-fuzz/) as crash-*;
# replay one with build-fuzz/fuzz_tokenizer build-fuzz/crash-<sha1>.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"
shift || true

out="${M40LLM_FUZZ_DIR:-build-fuzz}"
mkdir -p "$out"
bin="$out/fuzz_tokenizer"
. scripts/fuzz_common.sh
# The tokenizer's helpers (hash map, buffers, merge heap, byte alphabet) are
# left out of the coverage feedback, not out of ASan/UBSan: their compares
# took half the time and say nothing about the input's structure.
ignore="$out/fuzz_tokenizer_cov_ignore.txt"
printf 'fun:%s\n' tok_hash tok_strmap_get tok_buf_put tok_buf_resize tok_ids_push tok_heap_push \
    tok_heap_pop tok_bigram_before tok_frags_push tok_utf8_put tok_utf8_len tok_byte_to_cp \
    tok_cp_to_byte >"$ignore.new"
# keeps the mtime when unchanged, so that fuzz_build does not rebuild for nothing
if cmp -s "$ignore.new" "$ignore"; then rm "$ignore.new"; else mv "$ignore.new" "$ignore"; fi
fuzz_build "$bin" "-fsanitize-coverage-ignorelist=$ignore -lpcre2-8 -lm" fuzz/fuzz_tokenizer.c \
    src/text/tokenizer*.c src/gguf/gguf_parse.c src/gguf/gguf_meta.c src/quant/quant_types.c \
    src/gguf/fileio.c src/err.c src/model/arch/*.c -- "$ignore" src/text/tokenizer.h \
    src/text/tokenizer_int.h src/gguf/gguf.h src/gguf/gguf_internal.h src/gguf/fileio.h src/err.h \
    src/model/arch/*.h

# seeds: [vocab][flags][decode flags] + text. Chat prompts whose user part
# (between \x02 toggles) carries special text, for each vocab and mask layout,
# and the fixture vectors; new inputs go to the corpus and vanish with it.
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
for v in 0 1 2 3 4 5 6 7 8; do
    for f in 06 0a 0e 03; do
        printf "\\x0$v\\x$f\\x01\\x01\\x00user\\x0a\\x02hi\\x01\\x01\\x0a\\x01\\x00system\\x0a\\x03\\x02\\x05\\x02\\x04\\x02\\x05\\x02\\x01\\x01\\x0a" \
            >"$corpus/chat-$v-$f"
    done
done
i=0 # the target numbers the vocabs in file-name order
for f in tests/fixtures/tokenizer/*.gguf; do
    [ -f "$f.inp" ] && printf "\\x0$i\\x00\\x00" | cat - "$f.inp" | head -c 1024 >"$corpus/vec-$i"
    i=$((i + 1))
done

export M40LLM_FIXTURES="${M40LLM_FIXTURES:-$PWD/tests/fixtures}"
"$bin" -max_total_time="$secs" -max_len=1024 -rss_limit_mb=2048 -malloc_limit_mb=512 \
    -timeout=10 -dict=fuzz/tokenizer.dict -artifact_prefix="$out/" -print_final_stats=1 \
    "$@" "$corpus"
