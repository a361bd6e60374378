#!/usr/bin/env bash
# The main job: install what is missing, build, fetch the default model
# (SmolLM2-135M-Instruct Q4_1) and run it on the best backend available;
# then serve it on loopback, ask one chat completion with curl, stop.
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

# the server: start it on a free loopback port, wait for /health, one chat
# completion with curl (the OpenAI API), print the answer, stop it (SIGTERM)
log=$(mktemp)
./build/m40-llm serve --model "$model" --addr 127.0.0.1:0 2>"$log" &
srv=$!
trap 'kill "$srv" 2>/dev/null || true; rm -f "$log"' EXIT
addr=""
for _ in $(seq 1200); do
    addr=$(sed -n 's|.*listening on http://\([^;]*\);.*|\1|p' "$log")
    [ -n "$addr" ] && curl -sf "http://$addr/health" >/dev/null && break
    kill -0 "$srv" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.1
done
echo "m40-llm serve at http://$addr: POST /v1/chat/completions" >&2
curl -sS "http://$addr/v1/chat/completions" -H 'Content-Type: application/json' \
    -d '{"messages": [{"role": "user", "content": "What is the capital of France?"}],
         "temperature": 0, "max_tokens": 64}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["choices"][0]["message"]["content"])'
kill -TERM "$srv"
wait "$srv"
