#!/usr/bin/env bash
# Bundles the Debian development libraries the build needs (cJSON, PCRE2,
# libedit, libmicrohttpd, libcurl, OpenSSL and what they link) into one
# tarball, for a GPU machine that has CUDA and CMake but none of them and
# cannot install packages: unpack it there and point pkg-config, the
# compiler and the loader at it (the printed lines). Uses this machine's
# apt sources (apt-get download); the libraries are Debian 12's, which run on
# any newer glibc.
#   scripts/dev-libs-bundle.sh OUT.tar.xz
set -euo pipefail
out=$(realpath -m "${1:?usage: $0 OUT.tar.xz}")
pkgs=(libcjson1 libcjson-dev libpcre2-8-0 libpcre2-dev libpcre2-16-0 libpcre2-32-0
      libpcre2-posix3 libedit2 libedit-dev libbsd0 libbsd-dev libmd0 libmd-dev libncurses-dev
      libtinfo6 libncurses6 libncursesw6 libmicrohttpd12 libmicrohttpd-dev libgnutls30 libcurl4
      libcurl4-openssl-dev libssl3 libssl-dev libnghttp2-14 libidn2-0 librtmp1 libssh2-1 libpsl5
      libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libkeyutils1 libldap-2.5-0
      libsasl2-2 libbrotli1 libzstd1 zlib1g libunistring2 libp11-kit0 libtasn1-6 libnettle8
      libhogweed6 libgmp10 libffi8 libcom-err2 libsasl2-modules-db libdb5.3)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download "${pkgs[@]}" >/dev/null)
mkdir "$tmp/sys"
for f in "$tmp"/*.deb; do dpkg -x "$f" "$tmp/sys"; done
cd "$tmp/sys"
rm -rf usr/share/doc usr/share/man usr/share/info
# shared links only: static archives would double the bundle, which must fit
# the GPU machine's transfer limit beside the tree
find . -name '*.a' -delete
# one library folder; links made relative (absolute ones point at the host)
if [ -d lib/x86_64-linux-gnu ]; then
    mv lib/x86_64-linux-gnu/* usr/lib/x86_64-linux-gnu/ && rmdir lib/x86_64-linux-gnu
fi
# libmicrohttpd.pc names gnutls (Requires.private) for static links only;
# the shared library finds libgnutls.so.30 in the bundle, so drop the line
sed -i '/^Requires.private/d' usr/lib/x86_64-linux-gnu/pkgconfig/libmicrohttpd.pc
find . -type l -lname '/*' | while read -r l; do ln -sf "$(basename "$(readlink "$l")")" "$l"; done
if [ -n "$(find . -xtype l)" ]; then
    echo "dangling links left:" >&2
    find . -xtype l >&2
    exit 1
fi
tar -C "$tmp" -cf - sys | xz -9 -T0 >"$out"
echo "$out: $(stat -c %s "$out") bytes. On the GPU machine:"
cat <<'USE'
  mkdir -p /tmp/devlibs && tar -C /tmp/devlibs -xJf BUNDLE.tar.xz && S=/tmp/devlibs/sys
  export PKG_CONFIG_SYSROOT_DIR=$S PKG_CONFIG_LIBDIR=$S/usr/lib/x86_64-linux-gnu/pkgconfig:$S/usr/share/pkgconfig
  export PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1
  export CPATH=$S/usr/include LIBRARY_PATH=$S/usr/lib/x86_64-linux-gnu LD_LIBRARY_PATH=$S/usr/lib/x86_64-linux-gnu
USE
