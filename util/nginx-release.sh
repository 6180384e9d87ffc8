#!/bin/sh
# util/nginx-release.sh REPO TAG OUT.tar.gz: an nginx release tarball from a
# git checkout of github.com/nginx/nginx, laid out as nginx's own
# misc/GNUmakefile "release" lays it out (configure, html and man at the
# top; no docs, no misc), without the CHANGES it generates from XML.  How
# vendor/nginx-*.tar.gz were made (vendor/README.md).
set -eu

repo=$1
tag=$2
out=$(cd "$(dirname "$3")" && pwd)/$(basename "$3")
ver=${tag#release-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

git -C "$repo" archive --prefix="nginx-$ver/" "$tag" | tar -x -C "$tmp" --exclude '.git*'
cd "$tmp/nginx-$ver"
mv auto/configure .
mv docs/html .
mv docs/man .
rm -r docs misc
cd "$tmp"
# reproducible: the tag's date on every file, names sorted, no gzip stamp
date=$(git -C "$repo" log -1 --format=%cI "$tag")
tar --sort=name --mtime="$date" --owner=0 --group=0 --numeric-owner \
    -c "nginx-$ver" | gzip -9n > "$out"
