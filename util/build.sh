#!/bin/sh
# util/build.sh PREFIX [plain|asan] [rtmp|flv]: nginx 1.22.1 with an rtmp
# host module (nginx-rtmp-module, or its fork nginx-http-flv-module) and
# both gates compiled in statically, installed under PREFIX
# (PREFIX/sbin/nginx).  It installs no package: make checks for them first
# (util/deps.sh), and ./configure names any library still missing.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
prefix=$1
variant=${2:-plain}
host=${3:-rtmp}
src=${ICP_GATE_SRC:-$top/build/src}      # where the source trees are unpacked

"$top/util/sources.sh" "$src" "$host"

case $host in
    rtmp) host_dir=$src/nginx-rtmp-module ;;
    flv)  host_dir=$src/nginx-http-flv-module ;;
    *)    echo "util/build.sh: unknown rtmp host module $host" >&2; exit 1 ;;
esac

origins="nginx from $(cat "$src/nginx.origin"),"
origins="$origins $(basename "$host_dir") from $(cat "$host_dir.origin")"

work=$prefix/nginx
cc=cc
cc_opt="-O2 -g"
ld_opt=""
debug=""

if [ "$variant" = asan ]; then
    # clang: its UBSan checks what gcc's does not, pointer-overflow among
    # them (NULL + 0 and the like); the product build stays with gcc
    # NGX_DEBUG_PALLOC: one malloc an allocation, so ASan sees pool overruns
    # alignment: nginx and nginx-rtmp load unaligned words on purpose (x86)
    cc=clang
    cc_opt="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined"
    cc_opt="$cc_opt -fno-sanitize=alignment"
    cc_opt="$cc_opt -DNGX_DEBUG_PALLOC=1"
    ld_opt="-fsanitize=address,undefined"
    debug="--with-debug"
fi

# auth_request: make bench compares the gate with it
modules="--with-http_auth_request_module"

stamp="$cc|$cc_opt|$ld_opt|$modules|$prefix|$(cksum < "$top/config")|$(ls "$top"/*.c | tr "\n" " ")|$origins"

if [ ! -f "$work/objs/Makefile" ] || [ "$(cat "$work/.icp_gate_stamp" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$work"
    mkdir -p "$prefix"
    cp -a "$src/nginx" "$work"
    cd "$work"
    ./configure --prefix="$prefix" --with-cc="$cc" \
        --with-cc-opt="$cc_opt" --with-ld-opt="$ld_opt" $debug $modules \
        --add-module="$host_dir" \
        --add-module="$top" > "$prefix/configure.log" 2>&1 || {
            tail -30 "$prefix/configure.log" >&2; exit 1; }
    echo "$stamp" > .icp_gate_stamp
fi

cd "$work"
make -j"$(nproc)" > "$prefix/make.log" 2>&1 || {
    grep -E 'error|warning' "$prefix/make.log" | head -40 >&2
    tail -20 "$prefix/make.log" >&2
    exit 1
}
make install > /dev/null 2>&1

# icp-gate-import reduces hosts with the gate's own code: it is linked with
# the objects just built, nginx.o's main() renamed; t/12 links its unit
# tests the same way, with these two files: the compiler with its flags and
# include dirs (absolute), then the libraries
objcopy --redefine-sym main=ngx_nginx_main objs/src/core/nginx.o \
    "$work/nginx-nomain.o"
perl -e '
    local $/; my $mk = <STDIN>;
    my ($cc) = $mk =~ /^CC =\s*(\S+)/m;
    my ($cflags) = $mk =~ /^CFLAGS =\s*(.*)$/m;
    my ($incs) = $mk =~ /^ALL_INCS = (.*?)\n\n/ms;
    my ($link) = $mk =~ /\$\(LINK\) -o objs\/nginx \\\n(.*?)\n\n/s;
    my @incs = map { m{^/} ? $_ : "$ARGV[0]/$_" }
               grep { length && $_ ne "-I" } split /[\s\\]+/, $incs;
    print join(" ", $cc, $cflags, map({ "-I$_" } @incs)), "\n";
    print join(" ", grep { /^-[lW]/ } split /[\s\\]+/, $link), "\n";
' "$(pwd)" < objs/Makefile > "$work/import.flags"
{ read -r import_cc; read -r import_libs; } < "$work/import.flags"
# shellcheck disable=SC2086 # flags are words
$import_cc -o "$prefix/sbin/icp-gate-import" "$top/util/icp_gate_import.c" \
    "$work/nginx-nomain.o" $(find objs -name '*.o' ! -name nginx.o) \
    $import_libs \
    > "$prefix/import.log" 2>&1 || { cat "$prefix/import.log" >&2; exit 1; }

echo "icp_gate: built $prefix/sbin/nginx and icp-gate-import: $origins"
