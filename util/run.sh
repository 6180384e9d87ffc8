#!/bin/sh
# make run: nginx with conf/demo.conf.in, a redis-server and the demo filing
# API, in the foreground; Ctrl-C stops all of it.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
nginx=$1
dir=$top/build/demo
http_port=${HTTP_PORT:-8080}
overseas_port=${OVERSEAS_PORT:-8081}
redis_port=${REDIS_PORT:-16379}
api_port=${API_PORT:-18081}
rtmp_port=${RTMP_PORT:-1935}

rm -rf "$dir"
mkdir -p "$dir/logs" "$dir/hls"

sed -e "s|@DIR@|$dir|g" -e "s|@HTML@|$top/conf/html|g" -e "s|@CONF@|$top/conf|g" \
    -e "s|@HTTP_PORT@|$http_port|g" -e "s|@OVERSEAS_PORT@|$overseas_port|g" \
    -e "s|@REDIS_PORT@|$redis_port|g" -e "s|@API_PORT@|$api_port|g" \
    -e "s|@RTMP_PORT@|$rtmp_port|g" \
    "$top/conf/demo.conf.in" > "$dir/nginx.conf"

# as root, workers run as "nobody", who may not enter a checkout under /root
if [ "$(id -u)" = 0 ]; then
    sed -i '1i user root;' "$dir/nginx.conf"
fi

pids=
stop() {
    trap - INT TERM EXIT
    [ -f "$dir/nginx.pid" ] && kill -QUIT "$(cat "$dir/nginx.pid")" 2>/dev/null
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo; echo "demo stopped"
}
trap stop INT TERM EXIT

redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --logfile "$dir/redis.log" &
pids="$pids $!"
python3 "$top/t/filing_api.py" --port "$api_port" \
    --preset "$top/conf/demo-filings.json" --default 404 2>"$dir/api.log" &
pids="$pids $!"

i=0
until redis-cli -p "$redis_port" ping >/dev/null 2>&1 \
      && curl -fs "http://127.0.0.1:$api_port/_control/total" >/dev/null; do
    i=$((i + 1))
    [ $i -gt 50 ] && { echo "redis or the demo filing API did not start" >&2; exit 1; }
    sleep 0.1
done

"$nginx" -p "$dir" -c "$dir/nginx.conf" -t -q

enc="-re -f lavfi -i testsrc=size=320x240:rate=25 -c:v libx264 -preset ultrafast -g 50 -f flv"

cat <<MSG

icp_gate demo: nginx with HTTP on 127.0.0.1:$http_port (mainland) and
:$overseas_port (overseas-only), RTMP on :$rtmp_port, Redis on :$redis_port,
the demo filing API on :$api_port. Try, in another terminal:

  # HTTP, filed domain: 200
  curl -i -H 'Host: play.example.com' http://127.0.0.1:$http_port/
  # HTTP, unfiled domain: 403 (and a line in $dir/icp_gate.log)
  curl -i -H 'Host: play.unfiled-demo.cn' http://127.0.0.1:$http_port/
  # HTTP, pending filing: 403, reason pending
  curl -i -H 'Host: live.pending-demo.cn' http://127.0.0.1:$http_port/
  # HTTP, a domain whose filing record says overseas: exempt, 200
  curl -i -H 'Host: live.overseas-demo.com' http://127.0.0.1:$http_port/
  # HTTP, a domain only conf/demo-filed.csv (icp_gate_file) files: 200,
  # and the filing API is never asked about it
  curl -i -H 'Host: play.file-demo.cn' http://127.0.0.1:$http_port/
  # HTTP, any domain on the overseas-only server: exempt, 200
  curl -i -H 'Host: play.unfiled-demo.cn' http://127.0.0.1:$overseas_port/

  # RTMP, push on a filed domain: streams until Ctrl-C
  ffmpeg $enc -rtmp_tcurl rtmp://push.example.com:$rtmp_port/live rtmp://127.0.0.1:$rtmp_port/live/room1
  # RTMP, play it (while the push runs), and its HLS over the HTTP gate
  ffmpeg -rtmp_tcurl rtmp://play.example.com:$rtmp_port/live -i rtmp://127.0.0.1:$rtmp_port/live/room1 -frames:v 50 -f null -
  curl -H 'Host: play.example.com' http://127.0.0.1:$http_port/hls/room1.m3u8
  # RTMP, push on an unfiled domain: "Server error: icp_gate: publish refused for unfiled-demo.cn: unfiled"
  ffmpeg $enc -rtmp_tcurl rtmp://push.unfiled-demo.cn:$rtmp_port/live rtmp://127.0.0.1:$rtmp_port/live/room2
  # RTMP, the overseas-only application takes any domain
  ffmpeg $enc -rtmp_tcurl rtmp://push.unfiled-demo.cn:$rtmp_port/intl rtmp://127.0.0.1:$rtmp_port/intl/room3

  # the node's metrics (Prometheus; ?format=json for JSON), and the console
  curl -s http://127.0.0.1:$overseas_port/metrics
  curl -s 'http://127.0.0.1:$overseas_port/icp_gate/admin?domain=play.unfiled-demo.cn&probe=api'
  curl -s -X POST -H 'X-ICP-Gate: purge' 'http://127.0.0.1:$overseas_port/icp_gate/admin?domain=unfiled-demo.cn&action=purge&redis=1'

  # what the gate wrote to Redis
  redis-cli -p $redis_port hgetall icp:domain:example.com
  # an operator's revocation: live sessions of example.com end within ~20s
  redis-cli -p $redis_port hset icp:domain:example.com status revoked source manual

Rejection log: $dir/icp_gate.log    Ctrl-C stops the demo.

MSG

"$nginx" -p "$dir" -c "$dir/nginx.conf" &
pids="$pids $!"
wait
