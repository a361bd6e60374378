# Sourced by scripts/fuzz.sh and scripts/fuzz_template.sh.
#   fuzz_build BIN "LIBS" SOURCE... -- HEADER...
# Finds clang ($CLANG first; exits 77, "skipped", when there is none) and
# builds the libFuzzer target BIN (ASan + UBSan) from the sources when it is
# missing or older than any source or header.
fuzz_build() {
    local bin="$1" libs="$2"
    shift 2
    local srcs=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
        srcs+=("$1")
        shift
    done
    [ $# -gt 0 ] && shift
    local cc="" c f stale=0 probe
    # a clang whose libFuzzer and sanitizer runtimes are installed (some
    # images ship clang without them: Debian's libclang-rt-N-dev has them)
    probe=$(mktemp -d)
    printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
        'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
        >"$probe/p.c"
    for c in "${CLANG:-}" clang clang-14 clang-15 clang-16 clang-17 clang-18; do
        if [ -n "$c" ] && command -v "$c" >/dev/null 2>&1 &&
            "$c" -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" >/dev/null 2>&1; then
            cc="$c"
            break
        fi
    done
    rm -rf "$probe"
    if [ -z "$cc" ]; then
        echo "$(basename "$0"): no clang with the libFuzzer runtime (install libclang-rt-14-dev)" >&2
        exit 77
    fi
    [ -x "$bin" ] || stale=1
    for f in "${srcs[@]}" "$@"; do
        if [ "$f" -nt "$bin" ]; then stale=1; fi
    done
    if [ "$stale" = 1 ]; then
        # shellcheck disable=SC2086  # LIBS is a list of flags
        "$cc" -std=c17 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
            -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
            -Iinclude -Isrc -Isrc/gguf -Isrc/quant -Isrc/model -Isrc/text -Isrc/engine \
            "${srcs[@]}" $libs -o "$bin"
    fi
}
