#!/usr/bin/env python3
"""make bench: what icp_gate costs, next to what operators deploy instead.

    python3 bench/run.py --nginx build/sbin/nginx [--out bench/results]

Starts, on loopback: our nginx (no gate, icp_gate, auth_request to an auth
service), Debian's nginx with lua-nginx-module (no gate, a lua_shared_dict
check), redis-server, the filing API stand-in of the tests and an auth
service, then measures the hot path, a host mix, a host of 127 labels,
cold misses, the Redis tier, RTMP publishing and the zone's capacity.
Variants alternate within each round and every figure that has a baseline
is a ratio to a baseline measured in the same round, so drift of a noisy
machine cancels.  Writes OUT/latest.md, OUT/latest.json and
OUT/cpu-per-request.png.

BENCH_ROUNDS (9) and BENCH_SECONDS (2) set the rounds and their length.
"""

import argparse
import contextlib
import datetime
import glob
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import clients                                  # noqa: E402
import report                                   # noqa: E402
import rtmp_client                              # noqa: E402
from servers import (TOP, FilingApi, Nginx, Redis,  # noqa: E402
                     wait_for_port)

PORT = {
    "redis": 26379, "api": 28081, "auth": 28090,
    "nginx": 28001, "icp_gate": 28002, "auth_request": 28003,
    "auth_request_keepalive": 28004, "debian": 28005, "lua": 28006,
    "cold": 28010, "capacity": 28011, "rtmp": 28035,
    "callgrind_nginx": 28021, "callgrind_icp_gate": 28022,
    "nginx_2w": 28031, "icp_gate_2w": 28032, "soak": 28040,
    "flood_clean": 28051, "flooded": 28052,
}
HOT_HOST = "live.filed-bench.cn"
HOSTS_LUA = os.path.join(TOP, "bench", "hosts.lua")
MIX_DOMAINS = 1000
MIX_HOSTS = 10000
MIX_SUFFIXES = ("cn", "com.cn", "com")
SEGMENT_BYTES = 1024
COLD_API_DELAY_MS = 20
COLD_DOMAINS = 100
REDIS_DOMAINS = 200
STORM_CLIENTS = 1000
RTMP_PUBLISHERS = 4
CAPACITY_ZONE_MB = 1
CAPACITY_FILL = 12000
CAPACITY_HOT_EVERY = 50
SOAK_DOMAINS = int(os.environ.get("SOAK_DOMAINS", "100000"))
SOAK_CLIENTS = 16
SOAK_SAMPLES = 10
FLOOD_VICTIM = "victim-flood.cn"
FLOOD_COLLIDERS = 6000
FLOOD_ZONE_BYTES = 10 * 1024 * 1024
FLOOD_SENDERS = 8

# what report.py says the figures were measured with
PARAMS = {
    "segment_bytes": SEGMENT_BYTES, "mix_hosts": MIX_HOSTS,
    "mix_domains": MIX_DOMAINS, "api_delay_ms": COLD_API_DELAY_MS,
    "storm_clients": STORM_CLIENTS, "rtmp_publishers": RTMP_PUBLISHERS,
    "zone_mb": CAPACITY_ZONE_MB, "fill": CAPACITY_FILL,
    "hot_every": CAPACITY_HOT_EVERY,
}

# key, label, nginx instance, baseline key
HTTP_VARIANTS = (
    ("nginx", "nginx, no gate", "ours", None),
    ("icp_gate", "icp_gate on", "ours", "nginx"),
    ("auth_request", "auth_request + proxy_pass", "ours", "nginx"),
    ("auth_request_keepalive",
     "auth_request + proxy_pass, upstream keepalive", "ours", "nginx"),
    ("debian", "Debian nginx + lua module, no gate", "debian", None),
    ("lua", "access_by_lua_block + lua_shared_dict", "debian", "debian"),
)
# the hot path again with 2 workers: what the workers share costs
TWO_WORKER_VARIANTS = (
    ("nginx_2w", "nginx, no gate, 2 workers", "two", None),
    ("icp_gate_2w", "icp_gate on, 2 workers", "two", "nginx_2w"),
)
# a hostile host, as many labels as a name holds (127 of one letter, 253
# bytes), next to an ordinary one; both filed and cached, one gated nginx
LABEL_HOSTS = {"ordinary": "www.example.com",
               "many_labels": ".".join(["a"] * 127)}
LABEL_VARIANTS = (
    ("ordinary", "icp_gate on, www.example.com", "ordinary", None),
    ("many_labels", "icp_gate on, a 127-label host", "many_labels",
     "ordinary"),
)
# the victim domain's hot path, its zone bucket flooded or not
FLOOD_VARIANTS = (
    ("flood_clean", "victim domain, no colliders", "flood_clean", None),
    ("flooded", "victim domain, %d domains crafted into its bucket"
     % FLOOD_COLLIDERS, "flooded", "flood_clean"),
)
RTMP_VARIANTS = (
    ("open", "nginx-rtmp, no gate", "open", None),
    ("gated", "icp_gate on", "gated", "open"),
    ("notify", "on_publish notify to an HTTP service", "notify", "open"),
)

ENGINE = """
icp_gate_zone icp_gate:%(zone)s;
%(redis)s
icp_gate_api "http://127.0.0.1:%(api)d/v1/filing/{domain}";
"""

PRELUDE = """
user root;
daemon on;
worker_processes %(workers)d;
worker_rlimit_nofile %(nofile)d;
pid @DIR@/nginx.pid;
events { worker_connections 16384; }
"""

HTTP_COMMON = """
    access_log off;
    default_type application/octet-stream;
    client_body_temp_path @DIR@/body;
    proxy_temp_path @DIR@/proxy;
    fastcgi_temp_path @DIR@/fastcgi;
    uwsgi_temp_path @DIR@/uwsgi;
    scgi_temp_path @DIR@/scgi;
"""

OURS_CONF = """
http {
%(common)s
    upstream auth_service { server 127.0.0.1:%(auth)d; }
    upstream auth_service_keepalive {
        server 127.0.0.1:%(auth)d;
        keepalive 32;
    }

    server { listen 127.0.0.1:%(nginx)d; root %(html)s; }

    server { listen 127.0.0.1:%(icp_gate)d; root %(html)s; icp_gate on; }

%(auth_request_servers)s
}

rtmp {
    server {
        listen 127.0.0.1:%(rtmp)d;
        application open { live on; }
        application gated { live on; icp_gate on; }
        application notify {
            live on;
            on_publish http://127.0.0.1:%(auth)d/on_publish;
        }
    }
}
"""

DEBIAN_CONF = """
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
%(prelude)s
http {
%(common)s
    lua_shared_dict icp_filings 32m;
    init_by_lua_block {
        local filings = ngx.shared.icp_filings
        filings:set("%(hot)s", "filed")
        for host in io.lines("%(hosts)s") do
            filings:set(host, "filed")
        end
    }

    server { listen 127.0.0.1:%(debian)d; root %(html)s; }

    server {
        listen 127.0.0.1:%(lua)d;
        root %(html)s;
        access_by_lua_block {
            if ngx.shared.icp_filings:get(ngx.var.host) ~= "filed" then
                return ngx.exit(ngx.HTTP_FORBIDDEN)
            end
        }
    }
}
"""

AUTH_CONF = """
%(prelude)s
http {
%(common)s
    server {
        listen 127.0.0.1:%(auth)d;
        location / { return 204; }
        location = /on_publish { return 200; }
    }
}
"""

COLD_CONF = """
http {
%(common)s
    log_format bench_pid '$pid $host $status $request_time';
    server {
        listen 127.0.0.1:%(cold)d backlog=4096;
        root %(html)s;
        icp_gate on;
        access_log @DIR@/access.log bench_pid;
    }
}
"""

# auth_request as the nginx documentation has it, without and with
# keepalive connections to the auth service
AUTH_REQUEST_SERVER = """
    server {
        listen 127.0.0.1:%(port)d;
        root %(html)s;
        location / { auth_request /_icp_check; }
        location = /_icp_check {
            internal;
            proxy_pass http://%(upstream)s/check;%(keepalive)s
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-Host $host;
        }
    }
"""
AUTH_REQUEST_KEEPALIVE = """
            proxy_http_version 1.1;
            proxy_set_header Connection "";"""

CALLGRIND_CONF = """
user root;
daemon off;
master_process off;
pid @DIR@/nginx.pid;
events { worker_connections 1024; }
%(engine)s
http {
%(common)s
    server { listen 127.0.0.1:%(callgrind_nginx)d; root %(html)s; }
    server {
        listen 127.0.0.1:%(callgrind_icp_gate)d;
        root %(html)s;
        icp_gate on;
    }
}
"""

# reuseport: the kernel spreads wrk's connections over both workers
TWO_WORKER_CONF = """
http {
%(common)s
    server { listen 127.0.0.1:%(nginx_2w)d reuseport; root %(html)s; }
    server {
        listen 127.0.0.1:%(icp_gate_2w)d reuseport;
        root %(html)s;
        icp_gate on;
    }
}
"""

# the gate's entry points: under --toggle-collect, callgrind counts the
# instructions from their entry to their return, calls included
GATE_ENTRY_POINTS = ("ngx_http_icp_gate_handler", "ngx_http_icp_gate_cleanup")

SOAK_CONF = """
http {
%(common)s
    server {
        listen 127.0.0.1:%(soak)d reuseport backlog=4096;
        root %(html)s;
        icp_gate on;
    }
}
"""

# one worker, the default zone's size, no Redis: the filing API stand-in
# answers every domain filed
FLOOD_CONF = """
http {
%(common)s
    server {
        listen 127.0.0.1:%(port)d backlog=4096;
        root %(html)s;
        icp_gate on;
    }
}
"""

CAPACITY_CONF = """
http {
%(common)s
    server { listen 127.0.0.1:%(capacity)d; root %(html)s; icp_gate on; }
}
"""


def say(text):
    print(text, flush=True)


def mix_host(k):
    j = k % MIX_DOMAINS
    return "live%d.d%d-mix.%s" % (k // MIX_DOMAINS, j,
                                  MIX_SUFFIXES[j % len(MIX_SUFFIXES)])


class Bench:
    def __init__(self, args):
        self.args = args
        self.rounds = int(os.environ.get("BENCH_ROUNDS", "9"))
        self.seconds = int(os.environ.get("BENCH_SECONDS", "2"))
        self.run_id = str(int(time.time()))
        self.work = tempfile.mkdtemp(prefix="icp-gate-bench-")
        os.chmod(self.work, 0o755)
        self.started = []
        self.results = {"rounds": self.rounds, "seconds": self.seconds,
                         "params": PARAMS}

    # -- setup ------------------------------------------------------------

    def files(self):
        self.html = os.path.join(self.work, "html")
        os.makedirs(self.html)
        with open(os.path.join(self.html, "seg.ts"), "wb") as f:
            f.write(b"\x47" * SEGMENT_BYTES)
        self.hosts = os.path.join(self.work, "hosts.txt")
        with open(self.hosts, "w") as f:
            f.writelines(mix_host(k) + "\n" for k in range(MIX_HOSTS))

    def values(self, **extra):
        v = dict(PORT)
        v.update(html=self.html, hosts=self.hosts, hot=HOT_HOST,
                 common=HTTP_COMMON)
        v["auth_request_servers"] = "".join(
            AUTH_REQUEST_SERVER % dict(v, port=PORT[key], upstream=upstream,
                                       keepalive=keepalive)
            for key, upstream, keepalive in (
                ("auth_request", "auth_service", ""),
                ("auth_request_keepalive", "auth_service_keepalive",
                 AUTH_REQUEST_KEEPALIVE)))
        v.update(extra)
        v["prelude"] = PRELUDE % {
            "workers": v.get("workers", 1),
            "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[1]}
        return v

    def engine(self, zone="64m", redis=True):
        line = "icp_gate_redis 127.0.0.1:%d;" % PORT["redis"] if redis else ""
        return ENGINE % {"zone": zone, "redis": line, "api": PORT["api"]}

    def gated_nginx(self, name, conf, ports, zone="64m", redis=True,
                    **values):
        """Our nginx with the engine's directives before conf."""
        v = self.values(**values)
        return self.nginx(name, self.args.nginx,
                          v["prelude"] + self.engine(zone, redis) + conf % v,
                          ports)

    def nginx(self, name, binary, conf, ports):
        instance = Nginx(binary, self.work, name, conf)
        self.started.append(instance)
        return instance.start(ports)

    def start(self):
        self.files()
        self.redis = Redis(self.work, PORT["redis"])
        self.started.append(self.redis)
        self.api = FilingApi(self.work, PORT["api"])
        self.started.append(self.api)
        v = self.values()
        self.auth = self.nginx("auth", self.args.nginx, AUTH_CONF % v,
                               [PORT["auth"]])
        self.ours = self.gated_nginx(
            "ours", OURS_CONF,
            [PORT[k] for k in ("nginx", "icp_gate", "auth_request", "rtmp")])
        self.debian = self.nginx("debian", self.args.debian_nginx,
                                 DEBIAN_CONF % v, [PORT["debian"]])
        self.instances = {"ours": self.ours, "debian": self.debian}

    def stop(self):
        for thing in reversed(self.started):
            thing.stop()

    # -- HTTP throughput --------------------------------------------------

    def expect_200(self, port, host):
        status, _ = clients.HttpClient(port).get(host)
        if status != 200:
            sys.exit("bench: port %d answered %d for %s"
                     % (port, status, host))

    def http_rounds(self, name, host=None, script_args=(),
                    variants=HTTP_VARIANTS, threads=1):
        """Rounds of wrk over every HTTP variant, each run next to a run of
        its baseline, the pair's order and the variants' order changing
        from round to round."""
        script = HOSTS_LUA if script_args else None

        def measure(key, instance):
            nginx = self.instances[instance]
            before = nginx.cpu()
            run = clients.wrk(PORT[key], self.seconds, host=host,
                              script=script, script_args=script_args,
                              threads=threads)
            run["cpu_us"] = (nginx.cpu() - before) * 1e6 / run["requests"]
            run["rate"] = run["rps"]
            return run

        return self.paired_rounds(name, variants, measure)

    def paired_rounds(self, name, variants, measure):
        samples = {key: [] for key, *_ in variants}
        ratios = {key: [] for key, *_ in variants}
        compared = [v for v in variants if v[3]]
        for r in range(self.rounds):
            shift = r % len(compared)
            for key, _, where, base in compared[shift:] + compared[:shift]:
                base_where = next(v[2] for v in variants if v[0] == base)
                pair = [(base, base_where), (key, where)]
                runs = {k: measure(k, w)
                        for k, w in (pair if r % 2 == 0 else pair[::-1])}
                samples[key].append(runs[key])
                samples[base].append(runs[base])
                ratios[key].append(runs[key]["cpu_us"] / runs[base]["cpu_us"])
            say("  %s round %d/%d: %s" % (name, r + 1, self.rounds, "  ".join(
                "%s %.3f" % (k, ratios[k][-1]) for k, *_ in compared)))
        return self.summarise(samples, ratios, variants)

    def summarise(self, samples, ratios, variants):
        rows = []
        for key, label, _, base in variants:
            runs = samples[key]
            row = {"key": key, "label": label, "baseline": base,
                   "cpu_us": clients.median([s["cpu_us"] for s in runs]),
                   "rate": clients.median([s["rate"] for s in runs]),
                   "errors": sum(s.get("errors", 0) for s in runs),
                   "runs": len(runs)}
            if base:
                row["ratio"] = clients.median(ratios[key])
                row["ratio_min"] = min(ratios[key])
                row["ratio_max"] = max(ratios[key])
            rows.append(row)
        return rows

    def hot_path(self):
        say("HTTP hot path: one cached filed host, %d B file" % SEGMENT_BYTES)
        for key, *_ in HTTP_VARIANTS:
            self.expect_200(PORT[key], HOT_HOST)
            clients.wrk(PORT[key], 1, host=HOT_HOST)
        self.results["hot"] = self.http_rounds("hot", host=HOT_HOST)

    def two_workers(self):
        say("HTTP hot path, 2 workers: one cached filed host")
        two = self.gated_nginx("two", TWO_WORKER_CONF,
                               [PORT["nginx_2w"], PORT["icp_gate_2w"]],
                               workers=2)
        self.instances["two"] = two
        for key, *_ in TWO_WORKER_VARIANTS:
            self.expect_200(PORT[key], HOT_HOST)
            clients.wrk(PORT[key], 1, host=HOT_HOST, threads=2)
        self.results["hot_2w"] = self.http_rounds(
            "hot, 2 workers", host=HOT_HOST, variants=TWO_WORKER_VARIANTS,
            threads=2)
        two.stop()

    def host_mix(self):
        say("HTTP host mix: %d hosts over %d registrable domains"
            % (MIX_HOSTS, MIX_DOMAINS))
        before = self.api.total()
        for key, *_ in HTTP_VARIANTS:
            clients.wrk(PORT[key], 2, script=HOSTS_LUA,
                        script_args=[self.hosts])
        asked = self.api.total() - before
        say("  warm-up: %d filing API requests for %d domains"
            % (asked, MIX_DOMAINS))
        self.results["mix_api_requests"] = asked
        self.results["mix"] = self.http_rounds("mix", script_args=[self.hosts])

    def many_labels(self):
        """A host too long for the per-worker memo, so every request
        reduces it again: 127 labels against www.example.com."""
        say("HTTP hostile host: 127 labels vs www.example.com, both cached")
        for host in LABEL_HOSTS.values():
            self.expect_200(PORT["icp_gate"], host)
            clients.wrk(PORT["icp_gate"], 1, host=host)

        def measure(key, host_key):
            before = self.ours.cpu()
            run = clients.wrk(PORT["icp_gate"], self.seconds,
                              host=LABEL_HOSTS[host_key])
            run["cpu_us"] = (self.ours.cpu() - before) * 1e6 / run["requests"]
            run["rate"] = run["rps"]
            return run

        self.results["labels"] = self.paired_rounds("labels", LABEL_VARIANTS,
                                                    measure)

    # -- latency of misses ------------------------------------------------

    def redis_tier(self, count=REDIS_DOMAINS):
        say("Redis tier: %d domains in Redis, not in shared memory" % count)
        resp = clients.Resp(PORT["redis"])
        rtt = [resp.round_trip("HGETALL", "icp:domain:absent.cn")
               for _ in range(count)]
        domains = ["redis%d-%s.cn" % (i, self.run_id) for i in range(count)]
        for d in domains:
            resp.command("HSET", "icp:domain:" + d, "status", "filed",
                         "source", "manual", "checked_at", int(time.time()))
        resp.close()
        before = self.api.total()
        client = clients.HttpClient(PORT["icp_gate"])
        first, cached = [], []
        for d in domains:
            status, t1 = client.get("www." + d)
            status2, t2 = client.get("www." + d)
            if status != 200 or status2 != 200:
                sys.exit("bench: %s answered %d, %d" % (d, status, status2))
            first.append(t1)
            cached.append(t2)
        client.close()
        added = [a - b for a, b in zip(first, cached)]
        self.results["redis"] = {
            "rtt_p50_ms": clients.median(rtt) * 1e3,
            "first_p50_ms": clients.median(first) * 1e3,
            "cached_p50_ms": clients.median(cached) * 1e3,
            "added_p50_ms": clients.median(added) * 1e3,
            "added_p90_ms": clients.percentile(added, 90) * 1e3,
            "api_requests": self.api.total() - before,
        }
        say("  %s" % self.results["redis"])

    def cold(self, count=COLD_DOMAINS):
        say("Cold misses: filing API answering in %d ms" % COLD_API_DELAY_MS)
        cold = self.gated_nginx("cold", COLD_CONF, [PORT["cold"]], workers=2)
        self.api.delay(COLD_API_DELAY_MS)
        nginx = clients.HttpClient(PORT["cold"])
        direct = clients.HttpClient(PORT["api"], keepalive=False)
        first, api = [], []
        for i in range(count):
            _, t = direct.get("bench", "/v1/filing/direct%d-%s.cn"
                              % (i, self.run_id))
            api.append(t)
            status, t = nginx.get("www.cold%d-%s.cn" % (i, self.run_id))
            if status != 200:
                sys.exit("bench: a cold filed domain answered %d" % status)
            first.append(t)
        nginx.close()
        self.results["cold"] = {
            "api_p50_ms": clients.median(api) * 1e3,
            "first_p50_ms": clients.median(first) * 1e3,
            "first_p99_ms": clients.percentile(first, 99) * 1e3,
            "added_p50_ms":
                (clients.median(first) - clients.median(api)) * 1e3,
        }
        say("  %s" % self.results["cold"])
        storms = [self.storm(cold, "storm%d-%s.cn" % (s, self.run_id))
                  for s in range(3)]
        # the same storm on a domain every worker has cached: what the
        # client and 1000 connections cost without any lookup
        storms.append(self.storm(cold, "storm0-%s.cn" % self.run_id))
        self.results["storm"], self.results["storm_cached"] = \
            storms[:3], storms[3]
        self.api.delay(0)
        cold.stop()

    def storm(self, cold, domain):
        before = self.api.count(domain)
        answers = clients.storm(PORT["cold"], "live." + domain, STORM_CLIENTS)
        times = [t for _, t in answers]
        refused = sum(1 for status, _ in answers if status != 200)
        time.sleep(0.2)             # access log lines of the last answers
        with open(os.path.join(cold.dir, "access.log")) as f:
            lines = [line.split() for line in f if domain in line]
        os.truncate(os.path.join(cold.dir, "access.log"), 0)
        server = [float(fields[3]) * 1e3 for fields in lines]
        result = {"clients": len(answers), "not_200": refused,
                  "api_requests": self.api.count(domain) - before,
                  "workers": len({fields[0] for fields in lines}),
                  "p50_ms": clients.median(times) * 1e3,
                  "p99_ms": clients.percentile(times, 99) * 1e3,
                  "max_ms": max(times) * 1e3,
                  "server_p50_ms": clients.median(server),
                  "server_p99_ms": clients.percentile(server, 99)}
        say("  storm %s: %s" % (domain, result))
        return result

    # -- instructions ----------------------------------------------------

    def instructions(self):
        """User-space instructions per request under callgrind: the same
        for the same binary and requests however busy the machine is.
        Twice: the whole request with and without the gate, in one
        process; then only what runs inside the gate's entry points, which
        glibc's malloc, taking other paths as the heap's history differs,
        cannot blur."""
        say("Instructions per request: one nginx process under callgrind")
        counted = {}
        with self.callgrind("callgrind", []) as out:
            for key in ("nginx", "icp_gate"):
                for load in ("hot", "mix"):
                    total, requests, _ = self.count_instructions(
                        PORT["callgrind_" + key], load, out)
                    counted[key + "_" + load] = total / requests
        toggles = ["--toggle-collect=" + f for f in GATE_ENTRY_POINTS]
        with self.callgrind("callgrind-gate", toggles) as out:
            for load in ("hot", "mix"):
                total, requests, dump = self.count_instructions(
                    PORT["callgrind_icp_gate"], load, out)
                block = self.inclusive(dump, "ngx_palloc_block")
                counted["inside_" + load] = (total - block) / requests
                counted["pool_block_" + load] = block / requests
        result = dict(counted)
        for load in ("hot", "mix"):
            result["ratio_" + load] = (counted["icp_gate_" + load]
                                       / counted["nginx_" + load])
        self.results["instructions"] = result
        say("  %s" % result)

    @contextlib.contextmanager
    def callgrind(self, name, options):
        """Our nginx, one process, under callgrind; yields the path its
        dumps start with."""
        d = os.path.join(self.work, name)
        os.makedirs(os.path.join(d, "logs"))
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write((CALLGRIND_CONF % self.values(engine=self.engine()))
                    .replace("@DIR@", d))
        out = os.path.join(d, "callgrind.out")
        with open(os.path.join(d, "valgrind.log"), "w") as log:
            proc = subprocess.Popen(
                ["valgrind", "--tool=callgrind",
                 "--callgrind-out-file=" + out] + options
                + [self.args.nginx, "-e", os.path.join(d, "error.log"),
                   "-p", d + "/", "-c", os.path.join(d, "nginx.conf")],
                stdout=log, stderr=log)
        try:
            wait_for_port(PORT["callgrind_icp_gate"], "nginx under callgrind",
                          60)
            yield out
        finally:
            proc.send_signal(signal.SIGQUIT)
            proc.wait()

    def count_instructions(self, port, load, out):
        """(instructions counted, requests, dump) of a 3 s run of wrk."""
        host = HOT_HOST if load == "hot" else None
        script_args = [self.hosts] if load == "mix" else ()
        script = HOSTS_LUA if script_args else None
        client = clients.HttpClient(port)
        with open(self.hosts) as f:
            for name in ([host] if host else f.read().split()):
                client.get(name)            # every verdict in the zone
        client.close()
        clients.wrk(port, 2, connections=4, host=host, script=script,
                    script_args=script_args)
        subprocess.run(["callgrind_control", "--zero"], capture_output=True)
        run = clients.wrk(port, 3, connections=4, host=host, script=script,
                          script_args=script_args)
        before = set(glob.glob(out + ".*"))
        subprocess.run(["callgrind_control", "--dump"], capture_output=True)
        for _ in range(100):
            dumps = set(glob.glob(out + ".*")) - before
            if dumps:
                break
            time.sleep(0.1)
        time.sleep(0.5)
        dump = dumps.pop()
        with open(dump) as f:
            total = next(int(line.split()[1]) for line in f
                         if line.startswith(("summary:", "totals:")))
        return total, run["requests"], dump

    @staticmethod
    def inclusive(dump, function):
        """Instructions counted in function and what it called.  Inside
        the gate, ngx_palloc_block() is the second block of the request's
        pool, which the request allocates anyway, gate or not, just
        later."""
        text = subprocess.run(["callgrind_annotate", "--inclusive=yes",
                               "--threshold=100", dump],
                              capture_output=True, text=True).stdout
        for line in text.splitlines():
            if (":" + function + " ") in line:
                return int(line.split()[0].replace(",", ""))
        return 0

    # -- RTMP -------------------------------------------------------------

    def rtmp_round(self, app, seconds, threads=RTMP_PUBLISHERS):
        tcurl = "rtmp://%s:%d/%s" % (HOT_HOST, PORT["rtmp"], app)
        deadline = time.monotonic() + seconds
        results = []

        def publisher(n):
            i = 0
            while time.monotonic() < deadline:
                results.append(rtmp_client.publish(
                    "127.0.0.1", PORT["rtmp"], tcurl, app,
                    "s%d-%d" % (n, i)))
                i += 1

        before = self.ours.cpu()
        start = time.monotonic()
        pool = [threading.Thread(target=publisher, args=(n,))
                for n in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        elapsed = time.monotonic() - start
        cpu = self.ours.cpu() - before
        refused = [r for r in results if not r["ok"]]
        if refused:
            sys.exit("bench: %s refused a publish: %s" % (app, refused[0]))
        return {"cpu_us": cpu * 1e6 / len(results),
                "rate": len(results) / elapsed,
                "publish_ms": [r["publish_s"] * 1e3 for r in results]}

    def rtmp(self):
        say("RTMP publish: %s, 4 publishers in a loop" % HOT_HOST)
        for _, _, app, _ in RTMP_VARIANTS:
            self.rtmp_round(app, 1)
        publish_ms = {key: [] for key, *_ in RTMP_VARIANTS}

        def measure(key, app):
            run = self.rtmp_round(app, self.seconds)
            publish_ms[key] += run["publish_ms"]
            return run

        rows = self.paired_rounds("rtmp", RTMP_VARIANTS, measure)
        for row in rows:
            publish = publish_ms[row["key"]]
            row["publish_p50_ms"] = clients.median(publish)
            row["publish_p99_ms"] = clients.percentile(publish, 99)
        self.results["rtmp"] = rows

    # -- capacity ---------------------------------------------------------

    def capacity(self, fill=CAPACITY_FILL, hot_every=CAPACITY_HOT_EVERY):
        say("Capacity: icp_gate_zone of %d MB, %d domains through it"
            % (CAPACITY_ZONE_MB, fill))
        cap = self.gated_nginx("capacity", CAPACITY_CONF, [PORT["capacity"]],
                               zone="%dm" % CAPACITY_ZONE_MB, redis=False)
        client = clients.HttpClient(PORT["capacity"])
        domains = ["cap%d.com.cn" % i for i in range(fill)]
        hot = "lru-hot.com.cn"
        not_200 = 0
        for i, d in enumerate(domains):
            if i % hot_every == 0:
                client.get("www." + hot)
            status, _ = client.get("www." + d)
            not_200 += status != 200
        # newest first: every hit before the first miss was held; the first
        # miss is what the zone had evicted, oldest first
        total = self.api.total()
        for i, d in enumerate(reversed(domains)):
            client.get("www." + d)
            if i % 100 == 99 and self.api.total() != total:
                break
        counts = json.loads(self.api.control("counts"))
        held = 0
        for d in reversed(domains):
            if counts.get(d) != 1:
                break
            held += 1
        client.close()
        self.results["capacity"] = {
            "zone_mb": CAPACITY_ZONE_MB, "filled": fill, "held": held,
            "per_mb": held / CAPACITY_ZONE_MB, "not_200": not_200,
            "hot_api_requests": counts.get(hot, 0),
            "log_errors": cap.log_lines(),
        }
        say("  %s" % self.results["capacity"])
        cap.stop()

    def soak(self, count=SOAK_DOMAINS):
        """make soak: cold domains by the hundred thousand through a small
        zone, Redis and the API; the workers' memory and descriptors must
        stay flat"""
        say("Soak: %d cold domains, %d clients, 2 workers, a 1 MB zone"
            % (count, SOAK_CLIENTS))
        soak = self.gated_nginx("soak", SOAK_CONF, [PORT["soak"]], zone="1m",
                                workers=2)
        statuses, samples, lock = {}, [], threading.Lock()
        done = [0]

        def sample():
            rss = fds = 0
            for pid in soak.workers:
                with open("/proc/%d/status" % pid) as f:
                    rss += next(int(line.split()[1]) for line in f
                                if line.startswith("VmRSS:"))
                fds += len(os.listdir("/proc/%d/fd" % pid))
            samples.append({"domains": done[0], "rss_kb": rss, "fds": fds})
            say("  %s" % samples[-1])

        def client(k):
            http = clients.HttpClient(PORT["soak"])
            for i in range(k, count, SOAK_CLIENTS):
                status, _ = http.get("www.soak%d-%s.cn" % (i, self.run_id))
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1
                    done[0] += 1
            http.close()

        started = time.monotonic()
        threads = [threading.Thread(target=client, args=(k,))
                   for k in range(SOAK_CLIENTS)]
        sample()
        for t in threads:
            t.start()
        step = count // SOAK_SAMPLES
        while any(t.is_alive() for t in threads):
            time.sleep(0.2)
            if done[0] >= len(samples) * step:
                sample()
        for t in threads:
            t.join()
        sample()
        # growth after the warm-up: the zone full, every pool at its size
        warm = samples[min(2, len(samples) - 1)]
        self.results["soak"] = {
            "domains": count, "seconds": time.monotonic() - started,
            "statuses": statuses, "api_requests": self.api.total(),
            "samples": samples,
            "rss_growth_kb": samples[-1]["rss_kb"] - warm["rss_kb"],
            "fd_growth": samples[-1]["fds"] - warm["fds"],
            "log_errors": soak.log_lines()[:20],
        }
        say("  statuses %s in %.0f s; after the warm-up: RSS %+d kB, "
            "descriptors %+d" % (statuses, self.results["soak"]["seconds"],
                                  self.results["soak"]["rss_growth_kb"],
                                  self.results["soak"]["fd_growth"]))
        soak.stop()

    # -- hash flooding ----------------------------------------------------

    def flood(self, count=FLOOD_COLLIDERS):
        """A victim domain's CPU per request, with and without domains
        crafted to share its zone bucket under the unkeyed hash icp_gate
        had up to d0f259a (bench/colliders.c finds them offline, as an
        attacker would); each collider is one filing API request.  Two
        gated nginx, one flooded, one not, measured in paired rounds."""
        say("Hash flooding: %d domains crafted into the zone bucket of %s"
            % (count, FLOOD_VICTIM))
        colliders = self.colliders(count)
        victim = "www." + FLOOD_VICTIM
        zone = "%dk" % (FLOOD_ZONE_BYTES // 1024)
        for key, *_ in FLOOD_VARIANTS:
            self.instances[key] = self.gated_nginx(
                key, FLOOD_CONF, [PORT[key]], zone=zone, redis=False,
                port=PORT[key])
            self.expect_200(PORT[key], victim)
        before = self.api.total()
        started = time.monotonic()
        statuses = self.send_each(PORT["flooded"], colliders)
        sent = time.monotonic() - started
        asked = self.api.total() - before
        say("  %d colliders sent in %.1f s: %s, %d filing API requests"
            % (count, sent, statuses, asked))
        for key, *_ in FLOOD_VARIANTS:
            clients.wrk(PORT[key], 1, host=victim)
        rows = self.http_rounds("flood", host=victim, variants=FLOOD_VARIANTS)
        self.results["flood"] = {
            "colliders": count, "statuses": statuses, "api_requests": asked,
            "send_seconds": sent, "rows": rows,
            "log_errors": self.instances["flooded"].log_lines()[:20],
        }
        say("  victim CPU/request flooded vs clean: %.3fx (%.2f vs %.2f us)"
            % (rows[1]["ratio"], rows[1]["cpu_us"], rows[0]["cpu_us"]))
        for key, *_ in FLOOD_VARIANTS:
            self.instances.pop(key).stop()

    def colliders(self, count):
        binary = os.path.join(self.work, "colliders")
        subprocess.run(["cc", "-O2", "-o", binary,
                        os.path.join(TOP, "bench", "colliders.c")],
                       check=True)
        found = subprocess.run(
            [binary, str(FLOOD_ZONE_BYTES), str(count), FLOOD_VICTIM],
            check=True, capture_output=True, text=True)
        say("  " + found.stderr.strip())
        return found.stdout.split()

    @staticmethod
    def send_each(port, hosts):
        """One request for each host, from a few clients at once; returns
        {status: count}."""
        statuses, lock = {}, threading.Lock()

        def sender(k):
            http = clients.HttpClient(port)
            for host in hosts[k::FLOOD_SENDERS]:
                status, _ = http.get(host)
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1
            http.close()

        threads = [threading.Thread(target=sender, args=(k,))
                   for k in range(FLOOD_SENDERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return statuses

    # -- the whole run ----------------------------------------------------

    def machine(self):
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), "unknown")
        commit = subprocess.run(["git", "-C", TOP, "log", "-1",
                                 "--format=%h %s"], capture_output=True,
                                text=True).stdout.strip()
        self.results["machine"] = {
            "cpu": model, "cores": os.cpu_count(),
            "kernel": platform.release(), "commit": commit,
            "date": datetime.datetime.now(datetime.timezone.utc)
            .strftime("%Y-%m-%d %H:%M UTC"),
        }

    def run(self):
        clients.raise_fd_limit()
        self.machine()
        only = self.args.only.split(",") if self.args.only else SCENARIOS
        try:
            self.start()
            for scenario in only:
                getattr(self, scenario)()
            self.results["log_errors"] = {
                i.name: i.log_lines() for i in (self.ours, self.debian)}
        finally:
            self.stop()
            shutil.rmtree(self.work, ignore_errors=True)
        if self.args.only:
            print(json.dumps(self.results, indent=1))
        else:
            report.write(self.results, self.args.out)


SCENARIOS = ("hot_path", "two_workers", "host_mix", "many_labels",
             "instructions", "redis_tier", "cold", "rtmp", "capacity")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nginx", required=True)
    parser.add_argument("--debian-nginx", default="/usr/sbin/nginx")
    parser.add_argument("--out", default=os.path.join(TOP, "bench", "results"))
    parser.add_argument("--only", help="comma-separated scenarios of %s "
                        "(and soak, which make bench leaves out: make soak; "
                        "and flood, the victim of 6 000 domains crafted "
                        "into its zone bucket); prints JSON, writes no "
                        "report" % ",".join(SCENARIOS))
    args = parser.parse_args()
    args.nginx = os.path.abspath(args.nginx)
    Bench(args).run()


if __name__ == "__main__":
    main()
