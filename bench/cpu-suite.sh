#!/usr/bin/env bash
# CPU figures of issue 2: SmolLM2-135M-Instruct Q4_1, pp512 / tg128, 3
# repetitions, 2 threads (override with THREADS). JSON into bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
model="${M40LLM_MODEL:-$(./scripts/fetch-model.sh)}"
threads=${THREADS:-2}
bin=${M40LLM_BIN:-build/m40-llm}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //; s/[^A-Za-z0-9]\+/_/g')
out="bench/results/$stamp-cpu-$cpu-t$threads-smollm2-q4_1.json"
"$bin" bench "$model" -p 512 -n 128 -r 3 --threads "$threads" --device cpu --json >"$out"
"$bin" bench "$model" -p 512 -n 128 -r 3 --threads "$threads" --device cpu
echo "saved $out"
