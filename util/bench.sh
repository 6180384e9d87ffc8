#!/bin/sh
# make bench: worker CPU per request with the gate on a cached domain,
# against the same server with the gate off, measured in the same run.
# Prints ratios; absolute figures vary with the machine and are for reading.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
nginx=$1
dir=$(mktemp -d /tmp/icp-gate-bench-XXXXXX)
rounds=${BENCH_ROUNDS:-5}
seconds=${BENCH_SECONDS:-4}
redis_port=26379
api_port=28081
port_off=28000
port_on=28001

"$top/util/deps.sh" wrk

cleanup() {
    [ -f "$dir/nginx.pid" ] && kill -QUIT "$(cat "$dir/nginx.pid")" 2>/dev/null || true
    [ -n "${redis_pid:-}" ] && kill "$redis_pid" 2>/dev/null || true
    [ -n "${api_pid:-}" ] && kill "$api_pid" 2>/dev/null || true
    sleep 0.3
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

mkdir -p "$dir/html" "$dir/logs"
chmod 755 "$dir" "$dir/html"
echo ok > "$dir/html/index.html"

redis-server --port $redis_port --bind 127.0.0.1 --save '' --appendonly no \
    --logfile "$dir/redis.log" &
redis_pid=$!
python3 "$top/t/filing_api.py" --port $api_port --default filed 2>"$dir/api.log" &
api_pid=$!
sleep 0.5

cat > "$dir/nginx.conf" <<CONF
daemon on;
worker_processes 1;
error_log $dir/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 1024; }
icp_gate_redis 127.0.0.1:$redis_port;
icp_gate_api "http://127.0.0.1:$api_port/v1/filing/{domain}";
http {
    access_log off;
    server { listen 127.0.0.1:$port_off; root $dir/html; }
    server { listen 127.0.0.1:$port_on; root $dir/html; icp_gate on; }
}
CONF

env -u NGINX "$nginx" -p "$dir" -c "$dir/nginx.conf"
sleep 0.5
worker=$(pgrep -P "$(cat "$dir/nginx.pid")" | head -1)

i=0
until curl -fs -o /dev/null -H "Host: live.filed-bench.cn" "http://127.0.0.1:$port_on/"; do
    i=$((i + 1))
    [ $i -gt 50 ] && { echo "the gated server never answered 200" >&2; cat "$dir/error.log" >&2; exit 1; }
    sleep 0.1
done

cpu_ticks() {   # utime + stime of the worker, in clock ticks
    awk '{ print $14 + $15 }' "/proc/$worker/stat"
}

# prints "CPU-microseconds-per-request requests-per-second"
measure() {
    before=$(cpu_ticks)
    out=$(wrk -t1 -c32 -d"${seconds}s" -H 'Host: live.filed-bench.cn' \
              "http://127.0.0.1:$1/index.html")
    after=$(cpu_ticks)
    requests=$(echo "$out" | awk '/requests in/ { print $1 }')
    rps=$(echo "$out" | awk '/Requests\/sec/ { print $2 }')
    hz=$(getconf CLK_TCK)
    echo "$before $after $requests $hz $rps" |
        awk '{ printf "%.3f %.0f\n", ($2 - $1) * 1e6 / $4 / $3, $5 }'
}

echo "icp_gate bench: $rounds rounds of ${seconds}s, gate off and on interleaved"
echo "round  off_us/req  on_us/req  ratio   off_req/s  on_req/s"
i=1
results=
while [ $i -le "$rounds" ]; do
    set -- $(measure $port_off); off=$1; off_rps=$2
    set -- $(measure $port_on); on=$1; on_rps=$2
    ratio=$(echo "$on $off" | awk '{ printf "%.3f", $1 / $2 }')
    printf "%5d  %10s  %9s  %5s  %10s  %8s\n" $i "$off" "$on" "$ratio" "$off_rps" "$on_rps"
    results="$results $ratio"
    i=$((i + 1))
done

median=$(echo $results | tr ' ' '\n' | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
echo "median worker CPU per request, gate on (cached filed domain) / gate off: $median"
