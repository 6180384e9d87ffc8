#!/bin/sh
# util/deps.sh check|install WHAT...: the Debian packages WHAT needs, WHAT
# being a group below (build, test, run, bench) or a package name.
#
#   check    prints the missing packages on one line and exits 1 when there
#            are some, 0 when none; reads dpkg's database only, never runs
#            apt.  Without dpkg-query every package counts as missing.
#   install  installs the missing packages, as root on Debian (make deps);
#            elsewhere it says what to install and exits 1.
set -eu

# compiling nginx + nginx-rtmp-module + icp_gate (util/build.sh, the unit
# tests' cc), and fetching the nginx sources (util/sources.sh)
build="gcc make libc6-dev libpcre2-dev zlib1g-dev libssl-dev
libhiredis-dev libcurl4-openssl-dev libpsl-dev libidn2-dev libjansson-dev
dpkg-dev xz-utils ca-certificates curl"

# the suite (prove -r t/); publicsuffix is the list libpsl reads at run time;
# clang and its sanitizer runtimes build the suite's second nginx (make asan)
test="publicsuffix redis-server redis-tools redis-sentinel python3 perl curl ffmpeg
clang libclang-rt-14-dev"

# make run: the demo, and the curl and ffmpeg commands it prints
run="publicsuffix redis-server redis-tools python3 curl ffmpeg"

# make bench: its own tools, and Debian's nginx with lua-nginx-module as
# the OpenResty-style comparison
bench="publicsuffix redis-server python3 wrk gnuplot-nox valgrind nginx
libnginx-mod-http-lua"

# make deb: dpkg-buildpackage against Debian's nginx-dev, and what t/33
# installs the packages into (Debian's nginx, libnginx-mod-rtmp)
deb="dpkg-dev debhelper fakeroot nginx-dev nginx libnginx-mod-rtmp"

usage() {
    echo "usage: $0 check|install build|test|run|bench|deb|PACKAGE..." >&2
    exit 2
}

[ $# -ge 2 ] || usage
mode=$1
shift
case $mode in check|install) ;; *) usage ;; esac

wanted=
for w in "$@"; do
    case $w in
        build) wanted="$wanted $build" ;;
        test)  wanted="$wanted $test" ;;
        run)   wanted="$wanted $run" ;;
        bench) wanted="$wanted $bench" ;;
        deb)   wanted="$wanted $deb" ;;
        -*)    usage ;;
        *)     wanted="$wanted $w" ;;
    esac
done

packages=
for p in $wanted; do
    case " $packages " in *" $p "*) ;; *) packages="$packages $p" ;; esac
done

missing=
if command -v dpkg-query >/dev/null 2>&1; then
    # one line per known package; an unknown name prints nothing
    installed=" $(dpkg-query -W -f='${db:Status-Status} ${Package}\n' \
                      $packages 2>/dev/null | sed -n 's/^installed //p' \
                  | tr '\n' ' ') "
    for p in $packages; do
        case $installed in *" $p "*) ;; *) missing="$missing $p" ;; esac
    done
else
    echo "icp_gate: no dpkg-query (not Debian): cannot tell what is installed" >&2
    missing=$packages
fi
missing=${missing# }

if [ $mode = check ]; then
    [ -z "$missing" ] && exit 0
    echo "$missing"
    exit 1
fi

if [ -z "$missing" ]; then
    echo "icp_gate: nothing missing for: $*"
    exit 0
fi

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1 \
   || ! command -v dpkg-query >/dev/null 2>&1
then
    echo "icp_gate: missing packages: $missing" >&2
    echo "icp_gate: install them (Debian, as root: apt-get install $missing)" \
         "and retry" >&2
    exit 1
fi

echo "icp_gate: installing $missing"
export DEBIAN_FRONTEND=noninteractive
# installing redis-server or nginx must not start a system service (on port
# 6379 or 80): invoke-rc.d asks policy-rc.d, and 101 means "not allowed"
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "icp_gate: installed $missing"
