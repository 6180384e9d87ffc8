#!/bin/sh
# Puts the nginx 1.22.1 and nginx-rtmp-module 1.2.2 trees into DIR:
# from NGINX_SRC / RTMP_SRC (a tree or a tarball) when set, else from the
# Debian source packages, else from the upstream tarballs.
set -eu

dir=$1
mkdir -p "$dir"
cd "$dir"

nginx_tar=nginx_1.22.1.orig.tar.gz
nginx_sha=9ebb333a9e82b952acd3e2b4aeb1d4ff6406f72491bab6cd9fe69f0dea737f31
nginx_url=https://nginx.org/download/nginx-1.22.1.tar.gz
rtmp_tar=libnginx-mod-rtmp_1.2.2+dfsg.orig.tar.xz
rtmp_sha=6531e5ed75b01dfe786e08e0eb8ffd664b6f271f3e57223fe59dba965fcefd84
rtmp_url=https://github.com/arut/nginx-rtmp-module/archive/v1.2.2.tar.gz

checked() {
    [ -f "$1" ] && echo "$2  $1" | sha256sum -c --status
}

enable_deb_src() {
    grep -rqs '^Types:.*deb-src\|^deb-src ' /etc/apt/sources.list \
        /etc/apt/sources.list.d/ && return 0
    [ "$(id -u)" = 0 ] || return 1
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        sed 's/^Types: deb$/Types: deb-src/' \
            /etc/apt/sources.list.d/debian.sources \
            > /etc/apt/sources.list.d/icp-gate-src.sources
    elif [ -f /etc/apt/sources.list ]; then
        sed -n 's/^deb /deb-src /p' /etc/apt/sources.list \
            > /etc/apt/sources.list.d/icp-gate-src.list
    fi
    apt-get update -qq >/dev/null 2>&1 || true
}

from_debian() {
    command -v apt-get >/dev/null 2>&1 || return 0
    enable_deb_src || return 0
    # exits 100 on these mirrors (no Debian patch tarballs): the upstream
    # tarballs still arrive, and the checksums below decide
    apt-get source --download-only nginx libnginx-mod-rtmp \
        >apt-source.log 2>&1 || true
}

from_upstream() {
    checked "$nginx_tar" "$nginx_sha" || curl -fsSL -o "$nginx_tar" "$nginx_url" || true
    checked "$rtmp_tar" "$rtmp_sha" || curl -fsSL -o rtmp-upstream.tar.gz "$rtmp_url" || true
}

tree() {   # tree NAME SOURCE
    rm -rf "$1"
    if [ -d "$2" ]; then
        cp -a "$2" "$1"
    else
        mkdir "$1"
        tar -xf "$2" -C "$1" --strip-components=1
    fi
}

if [ ! -d nginx ]; then
    if [ -n "${NGINX_SRC:-}" ]; then
        tree nginx "$NGINX_SRC"
    else
        checked "$nginx_tar" "$nginx_sha" || from_debian
        checked "$nginx_tar" "$nginx_sha" || from_upstream
        checked "$nginx_tar" "$nginx_sha" || {
            echo "icp_gate: cannot get nginx 1.22.1 sources; set NGINX_SRC" >&2
            exit 1
        }
        tree nginx "$nginx_tar"
    fi
fi

if [ ! -d nginx-rtmp-module ]; then
    if [ -n "${RTMP_SRC:-}" ]; then
        tree nginx-rtmp-module "$RTMP_SRC"
    elif checked "$rtmp_tar" "$rtmp_sha" || { from_debian; checked "$rtmp_tar" "$rtmp_sha"; }; then
        tree nginx-rtmp-module "$rtmp_tar"
    else
        from_upstream
        if checked "$rtmp_tar" "$rtmp_sha"; then
            tree nginx-rtmp-module "$rtmp_tar"
        elif [ -s rtmp-upstream.tar.gz ]; then
            tree nginx-rtmp-module rtmp-upstream.tar.gz
        else
            echo "icp_gate: cannot get nginx-rtmp-module 1.2.2; set RTMP_SRC" >&2
            exit 1
        fi
    fi
fi

[ -f nginx/auto/configure ] || [ -f nginx/configure ] || {
    echo "icp_gate: $dir/nginx is not an nginx source tree" >&2; exit 1; }
[ -f nginx-rtmp-module/config ] || {
    echo "icp_gate: $dir/nginx-rtmp-module is not nginx-rtmp-module" >&2; exit 1; }
