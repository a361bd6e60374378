#!/usr/bin/env bash
# Builds the model-loading libFuzzer target with clang (ASan + UBSan) and runs
# it for SECONDS seconds (default 20): a mutated GGUF is loaded as a model
# (weight map, tokenizer, chat template, and a CPU forward for tiny models).
#   scripts/fuzz_model.sh [SECONDS] [extra libFuzzer flags...]
# Crashes are written to $M40LLM_FUZZ_DIR (default build-fuzz/) as crash-*.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"
shift || true

out="${M40LLM_FUZZ_DIR:-build-fuzz}"
mkdir -p "$out"
bin="$out/fuzz_model"
. scripts/fuzz_common.sh
# clang 14 workarounds for the CPU backend (the project builds it with gcc):
# no __builtin_cpu_supports("f16c"), so cpu_qdot.c's checks go to a
# cpuid-based stand-in in the target (m40_fuzz_cpu_supports); and its
# target_clones leave the clones unresolved at link time, so cpu_kernels.c's
# are dropped (baseline code, same results)
compat="$out/fuzz_model_compat.h"
# The arithmetic kernels (dequantization, dot products, attention) are left
# out of the coverage feedback, not out of ASan/UBSan: their loop compares
# cost 80% of the time and say nothing about the input's structure.
ignore="$out/fuzz_model_cov_ignore.txt"
write_if_changed() { # keeps the mtime, so fuzz_build does not rebuild for nothing
    printf '%s\n' "${@:2}" >"$1.new"
    if cmp -s "$1.new" "$1"; then rm "$1.new"; else mv "$1.new" "$1"; fi
}
write_if_changed "$compat" 'int m40_fuzz_cpu_supports(const char *feature);'
write_if_changed "$ignore" 'src:*src/quant/quant_*.c' 'src:*src/cpu/cpu_kernels.c' \
    'src:*src/cpu/cpu_qdot*.c' 'src:*src/cpu/cpu_matmul.c' 'src:*src/cpu/cpu_attention.c'
fuzz_build "$bin" "-include $compat -D__builtin_cpu_supports(f)=m40_fuzz_cpu_supports(f) \
    -Dtarget_clones(...)= -fsanitize-coverage-ignorelist=$ignore -lcjson -lpcre2-8 -lm -lpthread" \
    fuzz/fuzz_model.c src/*.c src/gguf/*.c src/quant/*.c src/model/*.c src/text/*.c \
    src/engine/generate.c src/engine/sampler.c src/engine/stop.c src/engine/conversation.c \
    src/cpu/*.c src/nocuda/*.c src/model/arch/*.c -- src/*.h src/gguf/*.h src/quant/*.h src/model/*.h \
    src/text/*.h src/engine/generate.h src/engine/sampler.h src/engine/conversation.h src/cpu/*.h \
    src/model/arch/*.h include/*.h

# seed corpus: tiny synthetic models the target writes itself (several weight
# types, chat templates, a BPE vocabulary) and the smallest reference model;
# new inputs go there too and vanish with it
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
M40LLM_FUZZ_WRITE_SEEDS="$corpus" "$bin" -runs=0 "$corpus" >/dev/null 2>&1 ||
    { echo "fuzz_model.sh: writing the seed corpus failed" >&2; exit 1; }
cp tests/fixtures/reference/synth-q2_k.gguf "$corpus/"

# GGUF key names and template syntax the mutator can splice in
dict="$corpus.dict"
trap 'rm -rf "$corpus" "$dict"' EXIT
cat >"$dict" <<'DICT'
"llama.block_count"
"llama.embedding_length"
"llama.feed_forward_length"
"llama.attention.head_count"
"llama.attention.head_count_kv"
"llama.context_length"
"llama.vocab_size"
"llama.expert_count"
"llama.expert_used_count"
"qwen3moe"
"qwen3moe.expert_count"
"qwen3moe.expert_used_count"
"qwen3moe.expert_feed_forward_length"
"qwen3moe.expert_weights_norm"
"ffn_gate_inp.weight"
"ffn_down_exps.weight"
"llama.rope.scaling.type"
"llama.rope.dimension_count"
"tokenizer.chat_template"
"tokenizer.ggml.model"
"tokenizer.ggml.pre"
"tokenizer.ggml.bos_token_id"
"tokenizer.ggml.eos_token_id"
"general.architecture"
"general.alignment"
"blk."
".weight"
"token_embd.weight"
"output.weight"
"\x00\x00\x00\x01"
"\xff\xff\xff\x7f"
"\x00\x00\x00\x00\x00\x00\x00\x00"
"{{"
"}}"
"{%"
"%}"
"{% for m in messages %}"
"{% endfor %}"
"{% if "
"{% endif %}"
"message['content']"
DICT

"$bin" -max_total_time="$secs" -max_len=1048576 -rss_limit_mb=2048 -malloc_limit_mb=512 \
    -timeout=10 -dict="$dict" -artifact_prefix="$out/" -print_final_stats=1 "$@" "$corpus"
