#!/usr/bin/env bash
# Issue 21, acceptance 2: code from the M40's own toolchain runs correctly.
# The GPU test binaries and m40-llm, built with CUDA 11.8 for compute_52 PTX
# only (no machine code: the driver of a newer card JIT-compiles the Maxwell
# PTX for itself), carried to a GPU machine and run there.
#
#   bench/cuda118-gpu.sh pack BUILD_DIR TARBALL   (here: after
#       M40LLM_CUDA118_ARCHS=52-virtual M40LLM_CUDA118_BUILD=BUILD_DIR scripts/maxwell-check)
#   bench/cuda118-gpu.sh run TARBALL               (on the GPU machine, from the repo root;
#       paths relative to the repo root; OUT=dir gets each test log)
#
# run: each test binary twice, as built (libcublas.so.11 is not on the GPU
# machine, so prompts go through our own kernels and the cuBLAS checks skip,
# visibly) and with libcublas.so.11 pointed at the machine's own cuBLAS.
# Exit status: 0 when no test failed (skips allowed), 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
case $mode in
pack)
    [ $# -eq 3 ] || { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
    b=$2 tarball=$3
    files=(m40-llm m40-synth)
    for t in "$b"/test_gpu_*; do [ -x "$t" ] && files+=("$(basename "$t")"); done
    cuobj=${M40LLM_CUDA118_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/m40-llm/cuda118}/bin/cuobjdump
    [ -x "$cuobj" ] || { echo "cuda118-gpu: no $cuobj to check the binaries (maxwell-check unpacks it)" >&2; exit 1; }
    for f in "${files[@]}"; do # PTX only: no ELF (machine code) may be embedded
        elf=$("$cuobj" --list-elf "$b/$f" 2>/dev/null | wc -l)
        ptx=$("$cuobj" --list-ptx "$b/$f" 2>/dev/null | grep -c 'sm_52')
        echo "$f: $ptx compute_52 PTX, $elf ELF"
        [ "$elf" -eq 0 ] || { echo "cuda118-gpu: $f holds machine code" >&2; exit 1; }
        [ "$ptx" -gt 0 ] || [ "$f" = m40-synth ] || { echo "cuda118-gpu: $f holds no compute_52 PTX" >&2; exit 1; }
    done
    XZ_OPT=-9 tar -C "$b" -cJf "$tarball" "${files[@]}" || exit 1
    ls -l "$tarball"
    ;;
run)
    [ $# -eq 2 ] || { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
    d=/tmp/c118
    rm -rf "$d" && mkdir -p "$d/bin" "$d/cublas" && tar -C "$d/bin" -xJf "$2" || exit 1
    [ -z "${OUT:-}" ] || mkdir -p "$OUT" || exit 1
    # the driver compiles the PTX once per module; a cache big enough keeps it
    export CUDA_CACHE_MAXSIZE=${CUDA_CACHE_MAXSIZE:-4294967296}
    nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader
    "$d/bin/m40-llm" --version
    "$d/bin/m40-llm" info 2>&1 | head -20
    own=$(ldconfig -p 2>/dev/null | awk '/libcublas\.so\.[0-9]+ /{print $NF; exit}')
    [ -n "$own" ] || own=$(find /usr /opt -xdev -name 'libcublas.so.1[0-9]*' -type f 2>/dev/null | head -1)
    rc=0
    for pass in own-kernels machine-cublas; do
        extra=
        if [ $pass = machine-cublas ]; then
            [ -n "$own" ] || { echo "== $pass: no cuBLAS on this machine, skipped"; continue; }
            ln -sf "$own" "$d/cublas/libcublas.so.11"
            extra=$d/cublas
            echo "== $pass: libcublas.so.11 -> $own"
        else
            echo "== $pass: no libcublas.so.11"
        fi
        pass_n=0 skip_n=0 fail_n=0
        for t in "$d"/bin/test_gpu_*; do
            n=$(basename "$t")
            LD_LIBRARY_PATH=${extra:+$extra:}${LD_LIBRARY_PATH:-} M40LLM_FIXTURES=$PWD/tests/fixtures \
                M40LLM_BIN=$d/bin/m40-llm timeout 240 "$t" >"$d/$pass-$n.log" 2>&1
            r=$?
            case $r in
            0) pass_n=$((pass_n + 1)) s=passed ;;
            77) skip_n=$((skip_n + 1)) s=skipped ;;
            *) fail_n=$((fail_n + 1)) s="FAILED ($r)" rc=1 ;;
            esac
            echo "$pass $n: $s: $(grep -E 'passed, [0-9]+ failed' "$d/$pass-$n.log" | tail -1)" \
                "$(grep -E '^SKIP' "$d/$pass-$n.log" | head -3 | tr '\n' ' ')"
            [ $r -eq 0 ] || [ $r -eq 77 ] || tail -15 "$d/$pass-$n.log"
            [ -z "${OUT:-}" ] || cp "$d/$pass-$n.log" "$OUT/" # (a later timeout keeps these)
        done
        echo "== $pass: $pass_n passed, $skip_n skipped, $fail_n failed"
    done
    exit $rc
    ;;
*)
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
