#!/usr/bin/env bash
# One call on a lent GPU machine that has CUDA and CMake but not the Debian
# dev libraries: unpack the bundle of scripts/dev-libs-bundle.sh, then run
# gpu-suite.sh's stages (default: build test). Logs go to /tmp/logs, the
# stage JSON to bench/results/; with OUT set, both are copied there at the
# end (a tarball of the logs and each new JSON), as the device tool fetches.
#   DEVLIBS=.devdeps/devlibs.tar.xz OUT=$OUT bench/device-run.sh build test bench7b ...
# M40LLM_CUDA_ARCHS unset builds for 90; set and empty, the project's default
# in a new build-gpu (CMake keeps a cached value: remove the folder first).
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -n "${DEVLIBS:-}" ]; then
    mkdir -p /tmp/devlibs && tar -C /tmp/devlibs -xJf "$DEVLIBS" || exit 1
    S=/tmp/devlibs/sys
    export PKG_CONFIG_SYSROOT_DIR=$S PKG_CONFIG_LIBDIR=$S/usr/lib/x86_64-linux-gnu/pkgconfig:$S/usr/share/pkgconfig
    export PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1
    export CPATH=$S/usr/include LIBRARY_PATH=$S/usr/lib/x86_64-linux-gnu
    export LD_LIBRARY_PATH=$S/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
mkdir -p /tmp/logs
touch /tmp/logs/.start
t0=$(date +%s)
rc=0
for s in ${*:-build test}; do
    OUT=/tmp/logs M40LLM_CUDA_ARCHS=${M40LLM_CUDA_ARCHS-90} bench/gpu-suite.sh "$s" || rc=1
    echo "== $s done at $(($(date +%s) - t0)) s"
    [ $rc = 0 ] || [ "$s" != build ] || break
done
if [ -n "${OUT:-}" ]; then
    find bench/results -newer /tmp/logs/.start -name '*.json' -exec cp {} "$OUT"/ \;
    tar -czf "$OUT/logs.tgz" -C /tmp logs
fi
exit $rc
