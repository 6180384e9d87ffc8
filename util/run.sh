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

rm -rf "$dir"
mkdir -p "$dir/logs"

sed -e "s|@DIR@|$dir|g" -e "s|@HTML@|$top/conf/html|g" \
    -e "s|@HTTP_PORT@|$http_port|g" -e "s|@OVERSEAS_PORT@|$overseas_port|g" \
    -e "s|@REDIS_PORT@|$redis_port|g" -e "s|@API_PORT@|$api_port|g" \
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

cat <<MSG

icp_gate demo: nginx on 127.0.0.1:$http_port (mainland) and :$overseas_port
(overseas-only), Redis on :$redis_port, demo filing API on :$api_port.
Try, in another terminal:

  # filed domain: 200
  curl -i -H 'Host: play.example.com' http://127.0.0.1:$http_port/
  # unfiled domain: 403 (and a line in $dir/icp_gate.log)
  curl -i -H 'Host: play.unfiled-demo.cn' http://127.0.0.1:$http_port/
  # pending filing: 403, reason pending
  curl -i -H 'Host: live.pending-demo.cn' http://127.0.0.1:$http_port/
  # a domain whose filing record says overseas: exempt, 200
  curl -i -H 'Host: live.overseas-demo.com' http://127.0.0.1:$http_port/
  # any domain on the overseas-only server: exempt, 200
  curl -i -H 'Host: play.unfiled-demo.cn' http://127.0.0.1:$overseas_port/
  # what the gate wrote to Redis
  redis-cli -p $redis_port hgetall icp:domain:example.com
  # an operator's override, obeyed within icp_gate_local_ttl (10s)
  redis-cli -p $redis_port hset icp:domain:unfiled-demo.cn status filed source manual

Rejection log: $dir/icp_gate.log    Ctrl-C stops the demo.

MSG

"$nginx" -p "$dir" -c "$dir/nginx.conf" &
pids="$pids $!"
wait
