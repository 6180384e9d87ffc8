#!/bin/sh
# util/deb.sh OUTDIR: the Debian packages of icp_gate, built with
# dpkg-buildpackage -b against Debian's nginx-dev from a copy of this tree,
# into OUTDIR: libnginx-mod-icp-gate (the engine and the HTTP gate) and
# libnginx-mod-rtmp-icp-gate (the RTMP gate, for libnginx-mod-rtmp 1.2.2).
# It installs nothing: make deb checks for the packaging tools first.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "$1" && cd "$1" && pwd)
src=${ICP_GATE_SRC:-$top/build/src}

# the nginx-rtmp-module tree Debian's libnginx-mod-rtmp comes from
"$top/util/sources.sh" "$src" rtmp

version=$(dpkg-parsechangelog -l "$top/debian/changelog" -S Version)
work=$out/icp-gate-$version
rm -rf "$work"
mkdir -p "$work"

# the tree as committed or not, without what builds leave
(cd "$top" && tar cf - --exclude=./build\* --exclude=./.git \
    --exclude=./bench/results .) | (cd "$work" && tar xf -)
cp -a "$src/nginx-rtmp-module" "$work/debian/nginx-rtmp-module"

cd "$work"
dpkg-buildpackage -b -us -uc > "$out/build.log" 2>&1 || {
    tail -40 "$out/build.log" >&2
    echo "icp_gate: dpkg-buildpackage failed: $out/build.log" >&2
    exit 1
}

cd "$out"
rm -rf "$work"
ls -1 "$out"/*.deb
