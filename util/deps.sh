#!/bin/sh
# Installs what building and testing need, on Debian, as root, when missing.
# Elsewhere it only says what is missing.
set -eu

packages="gcc make libc6-dev libpcre2-dev zlib1g-dev libssl-dev
libhiredis-dev libcurl4-openssl-dev libpsl-dev libidn2-dev libjansson-dev
publicsuffix redis-server redis-tools curl python3 perl xz-utils dpkg-dev
ca-certificates ffmpeg $*"

missing=
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
        || missing="$missing $p"
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "icp_gate: missing packages:$missing" >&2
    echo "icp_gate: install them (apt-get install$missing) and retry" >&2
    exit 1
fi

echo "icp_gate: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# a redis-server package must not start a system server on port 6379
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
