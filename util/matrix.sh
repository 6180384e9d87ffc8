#!/bin/sh
# util/matrix.sh [VERSION...]: make matrix.  The gate built statically with
# nginx-rtmp-module 1.2.2 into each nginx this repository carries (1.22.1,
# Debian bookworm's, from build/src; the others from vendor/, checked
# against vendor/SHA256SUMS), each under build-matrix/VERSION, and smoke-
# tested there: HTTP let in and refused, an ffmpeg publish refused with its
# onStatus, a reload, the metrics and the console.  Prints a table and
# writes it into README.md between its "matrix" markers.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

versions=${*:-1.22.1 $(ls vendor/nginx-[0-9]*.tar.gz | sed 's|vendor/nginx-||; s|\.tar\.gz$||' | sort -V)}
rtmp=$top/build/src/libnginx-mod-rtmp_1.2.2+dfsg.orig.tar.xz
smoke="t/01-http-verdicts.t t/10-rtmp.t t/08-reload-reopen.t t/30-metrics.t t/31-console.t"

# the product build brings nginx-rtmp-module's tarball (and 1.22.1's)
[ -f "$rtmp" ] || make -s all

rows=
failed=0

for v in $versions; do
    if [ "$v" = 1.22.1 ]; then
        tarball=$top/build/src/nginx_1.22.1.orig.tar.gz
    else
        tarball=$top/vendor/nginx-$v.tar.gz
        (cd vendor && grep " nginx-$v.tar.gz\$" SHA256SUMS | sha256sum -c --quiet) || {
            echo "matrix: vendor/nginx-$v.tar.gz is missing or does not match vendor/SHA256SUMS" >&2
            exit 1
        }
    fi

    prefix=$top/build-matrix/$v
    mkdir -p "$prefix"
    echo "== nginx $v: building" >&2

    if ICP_GATE_SRC=$prefix/src NGINX_SRC=$tarball RTMP_SRC=$rtmp \
       util/build.sh "$prefix" plain rtmp > "$prefix/build.log" 2>&1
    then
        build=ok
        echo "== nginx $v: smoke tests" >&2
        if ICP_GATE_NGINX=$prefix/sbin/nginx prove $smoke > "$prefix/smoke.log" 2>&1; then
            result="pass ($(sed -n 's/^Files=[0-9]*, Tests=\([0-9]*\),.*/\1/p' "$prefix/smoke.log") checks)"
        else
            result="FAIL (build-matrix/$v/smoke.log)"
            failed=1
        fi
    else
        build=FAIL
        result="not run (build-matrix/$v/build.log)"
        failed=1
    fi

    rows="$rows| $v | static, \`--with-http_auth_request_module\` | nginx-rtmp-module 1.2.2 | $build | $result |
"
done

table="| nginx | build | RTMP host | builds | smoke: \`$smoke\` |
| --- | --- | --- | --- | --- |
$rows"

printf '%s' "$table"

# README.md between <!-- matrix --> and <!-- /matrix -->
awk -v table="$table" '
    /<!-- \/matrix -->/ { print table; skip = 0 }
    !skip { print }
    /<!-- matrix -->/ { skip = 1 }
' README.md > README.md.matrix && mv README.md.matrix README.md

exit $failed
