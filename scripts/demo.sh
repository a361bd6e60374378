#!/usr/bin/env bash
# The main job: install what is missing, build, fetch the default model
# (SmolLM2-135M-Instruct Q4_1) and run it on the best backend available.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
model="${M40LLM_MODEL:-$(./scripts/fetch-model.sh)}"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"
./build/m40-llm show "$model" | sed -n '1,20p'
./build/m40-llm bench "$model" -p 64 -n 16 -r 1
./build/m40-llm perplexity "$model" tests/data/ppl-sample.txt --ctx 128
# greedy, so the answer is the same on every run
./build/m40-llm run "$model" "What is the capital of France?" --temp 0 --verbose
