#!/usr/bin/env bash
# Decode-only comparison on a GPU machine (after `bench/gpu-suite.sh build`):
# tg128 of each synthetic model with the single-vector GEMV kernels
# (M40LLM_GEMV=warp, the default, or staged), then per-kernel times and DRAM
# bytes of one decode step's GEMV and attention launches under ncu.
#   TYPES="q4_0 q8_0 ..." (default q4_0); OUT=dir for logs; NCU=0 skips ncu
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-build-gpu/logs}
models=${MODELS:-/tmp/m40-models}
bin=build-gpu/m40-llm
mkdir -p "$out" "$models"
for t in ${TYPES:-q4_0}; do
    f=$models/mistral-7b-$t.gguf
    [ -f "$f" ] || build-gpu/m40-synth --preset mistral-7b --type "$t" -q -o "$f"
    for k in ${KERNELS:-warp staged}; do
        echo "== mistral-7b $t gemv=$k"
        M40LLM_GEMV=$k "$bin" bench "$f" -p 0 -n 128 -r 2 --device cuda --kv f16 --ctx 640 2>&1 |
            grep -E 'tg128'
    done
    if [ "${NCU:-1}" = 1 ] && command -v ncu >/dev/null; then
        # each step launches 32 layers x (4 GEMVs + 2 attention) + the head;
        # warm-up and the timed run begin with an 8-token prompt: skip
        # 4 such launch groups to land in the timed single-token steps
        for k in ${KERNELS:-warp staged}; do
            echo "== ncu $t gemv=$k"
            M40LLM_GEMV=$k M40LLM_CUDA_GRAPHS=0 timeout 200 ncu --clock-control none \
                -k 'regex:gemv|att' --launch-skip 800 --launch-count 7 \
                --metrics gpu__time_duration.sum,dram__bytes_read.sum \
                "$bin" bench "$f" -p 0 -n 4 -r 1 --device cuda --kv f16 --ctx 640 >"$out/ncu.log" 2>&1
            grep -E '^  [a-zA-Z_ ]+[<(]|gpu__time|dram__bytes' "$out/ncu.log" | sed -E 's/\(gpu_matrix.*\) \(/ (/; s/, Context.*//' | head -30
        done
    fi
    rm -f "$f"
done
