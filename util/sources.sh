#!/bin/sh
# util/sources.sh DIR [rtmp|flv]: puts the nginx 1.22.1 tree into DIR/nginx
# and the rtmp host module's into DIR/nginx-rtmp-module (rtmp, the default:
# nginx-rtmp-module 1.2.2) or DIR/nginx-http-flv-module (flv: its fork
# nginx-http-flv-module 1.2.13).
#
# A tree comes from NGINX_SRC / RTMP_SRC / FLV_SRC (a tree or a tarball)
# when set; else nginx and nginx-rtmp-module from the Debian source
# packages, then the upstream tarballs, and the fork from vendor/; every
# tarball of ours is checked against its SHA-256.  DIR/NAME.origin says
# where a tree came from (for a tree, with a checksum of its files' names,
# sizes and times): a tree whose source changed is unpacked again, and the
# build, which keeps the origins in its stamp, configures again.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
dir=$1
host=${2:-rtmp}
mkdir -p "$dir"
cd "$dir"

nginx_tar=nginx_1.22.1.orig.tar.gz
nginx_sha=9ebb333a9e82b952acd3e2b4aeb1d4ff6406f72491bab6cd9fe69f0dea737f31
nginx_url=https://nginx.org/download/nginx-1.22.1.tar.gz
rtmp_tar=libnginx-mod-rtmp_1.2.2+dfsg.orig.tar.xz
rtmp_sha=6531e5ed75b01dfe786e08e0eb8ffd664b6f271f3e57223fe59dba965fcefd84
rtmp_url=https://github.com/arut/nginx-rtmp-module/archive/v1.2.2.tar.gz
flv_tar=$top/vendor/nginx-http-flv-module-1.2.13.tar.gz
flv_sha=$(sed -n 's/  nginx-http-flv-module-1.2.13.tar.gz$//p' \
          "$top/vendor/SHA256SUMS")

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

origin_of() {   # origin_of SOURCE: what NAME.origin records for it
    src=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
    if [ -d "$1" ]; then
        echo "$src (tree $(cd "$1" && find . -type f -printf '%P %s %T@\n' \
                           | LC_ALL=C sort | cksum | cut -d' ' -f1))"
    else
        echo "$src (sha256 $(sha256sum < "$1" | cut -d' ' -f1))"
    fi
}

current() {     # current NAME SOURCE: the tree is there, from SOURCE
    [ -d "$1" ] && [ "$(cat "$1.origin" 2>/dev/null)" = "$(origin_of "$2")" ]
}

tree() {        # tree NAME SOURCE
    current "$1" "$2" && return 0
    rm -rf "$1" "$1.origin"
    if [ -d "$2" ]; then
        cp -a "$2" "$1"
    else
        mkdir "$1"
        tar -xf "$2" -C "$1" --strip-components=1
    fi
    origin_of "$2" > "$1.origin"
}

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

[ -f nginx/auto/configure ] || [ -f nginx/configure ] || {
    echo "icp_gate: $dir/nginx is not an nginx source tree" >&2; exit 1; }

if [ "$host" = flv ]; then
    if [ -n "${FLV_SRC:-}" ]; then
        tree nginx-http-flv-module "$FLV_SRC"
    elif checked "$flv_tar" "$flv_sha"; then
        tree nginx-http-flv-module "$flv_tar"
    else
        echo "icp_gate: $flv_tar is missing or does not match" \
             "vendor/SHA256SUMS; set FLV_SRC" >&2
        exit 1
    fi

    [ -f nginx-http-flv-module/ngx_http_flv_live_module.c ] || {
        echo "icp_gate: $dir/nginx-http-flv-module is not" \
             "nginx-http-flv-module" >&2; exit 1; }
    exit 0
fi

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

[ -f nginx-rtmp-module/config ] || {
    echo "icp_gate: $dir/nginx-rtmp-module is not nginx-rtmp-module" >&2; exit 1; }
