#!/usr/bin/env bash
# Installs what the build and the tests need on a fresh Debian machine
# (idempotent: does nothing that is already there).
set -euo pipefail
APT_PKGS=(build-essential cmake pkg-config python3 python3-pip clang libclang-rt-14-dev
          libcjson-dev libpcre2-dev libedit-dev libcurl4-openssl-dev libssl-dev
          libmicrohttpd-dev tmux
          libjs-marked libjs-highlight.js   # compiled into serve's web page (cmake/webui.cmake)
          chromium  # tests/py/test_webui.py drives the page in headless chromium
          nginx)   # nginx: tests/py/test_deploy.py runs deploy/nginx/ in front of two replicas
missing=()
for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    echo "installing: ${missing[*]}" >&2
    $SUDO apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}" >&2
fi
if [ "${1:-}" = "--test" ]; then
    # playwright drives Debian's chromium (no browser download: test_webui.py
    # passes the system binary)
    python3 -c 'import gguf, numpy, pytest, openai, ollama, playwright, jsonschema' 2>/dev/null ||
        python3 -m pip install -q gguf numpy pytest openai ollama playwright jsonschema >&2
fi
