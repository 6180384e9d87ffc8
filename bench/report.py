"""Turns a benchmark's results into OUT/latest.md (tables, targets met or
missed), OUT/latest.json (every figure) and OUT/cpu-per-request.png (gnuplot,
bench/chart.gp)."""

import json
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))

# the gate's instructions per request before issue P4, at 327b5ac: inside
# the gate, counted as below on that commit's binary, and the difference
# with no gate that its own report gave
BEFORE_P4 = {"commit": "327b5ac", "hot": 884, "mix": 1036,
             "hot_difference": 654, "mix_difference": 812}

# what issue P4 asks of the instructions inside the gate
INSIDE_TARGET = {"hot": 400, "mix": 550}


def fmt(value, digits=2):
    return "%.*f" % (digits, value)


def count(n):
    return format(n, ",").replace(",", " ")


def verdict(ok):
    return "met" if ok else "**missed**"


def targets(r):
    p = r["params"]
    hot = {row["key"]: row for row in r["hot"]}
    hot_2w = {row["key"]: row for row in r["hot_2w"]}
    mix = {row["key"]: row for row in r["mix"]}
    labels = {row["key"]: row for row in r["labels"]}
    ins = r["instructions"]
    cold, redis, cap = r["cold"], r["redis"], r["capacity"]
    storm_api = max(s["api_requests"] for s in r["storm"])
    storm_p99 = max(s["server_p99_ms"] for s in r["storm"])
    full_ok = (cap["not_200"] == 0 and not cap["log_errors"]
               and cap["hot_api_requests"] == 1)
    return [
        ("HTTP hot path: icp_gate CPU/request vs no gate", "≤ 1.05×",
         fmt(hot["icp_gate"]["ratio"], 3) + "×",
         hot["icp_gate"]["ratio"] <= 1.05),
        ("HTTP hot path, 2 workers: icp_gate CPU/request vs no gate",
         "≤ 1.05×", fmt(hot_2w["icp_gate_2w"]["ratio"], 3) + "×",
         hot_2w["icp_gate_2w"]["ratio"] <= 1.05),
        ("Instructions inside the gate per request, one cached host",
         "≤ %d" % INSIDE_TARGET["hot"], "%d" % ins["inside_hot"],
         ins["inside_hot"] <= INSIDE_TARGET["hot"]),
        ("Instructions inside the gate per request, %s-host mix"
         % count(p["mix_hosts"]), "≤ %d" % INSIDE_TARGET["mix"],
         "%d" % ins["inside_mix"], ins["inside_mix"] <= INSIDE_TARGET["mix"]),
        ("Host mix (%s hosts, %s domains): icp_gate vs no gate"
         % (count(p["mix_hosts"]), count(p["mix_domains"])),
         "≤ 1.10×", fmt(mix["icp_gate"]["ratio"], 3) + "×",
         mix["icp_gate"]["ratio"] <= 1.10),
        ("Hostile host, 127 labels: CPU/request vs www.example.com",
         "≤ 2×", fmt(labels["many_labels"]["ratio"], 3) + "×",
         labels["many_labels"]["ratio"] <= 2.0),
        ("Cold miss: added latency over the API's own, p50", "≤ 1 ms",
         fmt(cold["added_p50_ms"], 3) + " ms", cold["added_p50_ms"] <= 1.0),
        ("Storm of %d clients on one cold domain: filing API requests"
         % r["storm"][0]["clients"], "1",
         "%d (p99 %s ms in nginx)" % (storm_api, fmt(storm_p99, 0)),
         storm_api == 1),
        ("Redis tier: added latency p50 vs one Redis round trip + 0.2 ms",
         "≤ %s ms" % fmt(redis["rtt_p50_ms"] + 0.2, 3),
         fmt(redis["added_p50_ms"], 3) + " ms",
         redis["added_p50_ms"] <= redis["rtt_p50_ms"] + 0.2),
        ("Capacity: domains held per MB of icp_gate_zone", "≥ 5 000",
         "%d" % cap["per_mb"], cap["per_mb"] >= 5000),
        ("Full zone: evicts least recently used, no errors",
         "no errors", "%d non-200, %d log errors, hot domain fetched %d×"
         % (cap["not_200"], len(cap["log_errors"]), cap["hot_api_requests"]),
         full_ok),
    ]


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |",
             "| --- |" + " ---: |" * (len(header) - 1)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in rows]


def http_table(rows):
    return table(("variant", "worker CPU µs/request", "requests/s",
                  "CPU ratio to its baseline", "ratio range over rounds",
                  "errors"),
                 [(row["label"], fmt(row["cpu_us"]), "%d" % row["rate"],
                   ratio(row), ratio_range(row), "%d" % row["errors"])
                  for row in rows])


def rtmp_table(rows):
    return table(("variant", "worker CPU µs/publish", "publishes/s",
                  "CPU ratio", "publish accepted p50", "p99"),
                 [(row["label"], fmt(row["cpu_us"], 1), "%d" % row["rate"],
                   ratio(row), fmt(row["publish_p50_ms"], 3) + " ms",
                   fmt(row["publish_p99_ms"], 3) + " ms")
                  for row in rows])


def ratio(row):
    return fmt(row["ratio"], 3) + "×" if row["baseline"] else "baseline"


def ratio_range(row):
    if not row["baseline"]:
        return ""
    return "%s – %s" % (fmt(row["ratio_min"], 3), fmt(row["ratio_max"], 3))


def markdown(r):
    p = r["params"]
    m = r["machine"]
    commit = m["commit"].split()[0] if m["commit"] else "uncommitted"
    cold, redis, cap = r["cold"], r["redis"], r["capacity"]
    out = [
        "# icp_gate benchmark",
        "",
        "%s · %s · %d cores · Linux %s · commit %s · %d rounds of %d s; "
        "in each round every variant runs next to its baseline, in an order "
        "that changes from round to round" % (m["date"], m["cpu"], m["cores"],
                                  m["kernel"], commit, r["rounds"],
                                  r["seconds"]),
        "",
        "A ratio is the median over rounds of a variant's nginx worker CPU "
        "time per request (utime + stime of the worker processes, from "
        "/proc) divided by that of its baseline in the run next to it. "
        "Reproduce with `make bench`.",
        "",
        "## Targets",
        "",
        "| figure | target | measured | |",
        "| --- | --- | --- | --- |",
    ]
    for name, target, measured, ok in targets(r):
        out.append("| %s | %s | %s | %s |" % (name, target, measured,
                                              verdict(ok)))
    out += ["", "## HTTP hot path",
            "",
            "One cached, filed host; a %d-byte static segment; wrk, 1 "
            "thread, 32 kept-alive connections; one nginx worker. The auth "
            "service "
            "behind `auth_request` is another nginx answering 204, whose CPU "
            "is not counted. The Lua check runs on Debian's nginx 1.22.1 "
            "with libnginx-mod-http-lua and is compared with that binary "
            "without the check." % p["segment_bytes"],
            ""]
    out += http_table(r["hot"])
    out += ["", "## HTTP hot path, 2 workers", "",
            "The same host and segment; two workers sharing the zone, wrk "
            "with 2 threads and 32 connections spread over the workers by "
            "`reuseport`. A hit reads the zone without its lock and writes "
            "nothing shared, so the workers do not wait on each other.", ""]
    out += http_table(r["hot_2w"])
    out += ["", "## Host mix", "",
            "%s distinct filed hosts over %s registrable domains "
            "(`.cn`, `.com.cn`, `.com`), a different Host header on every "
            "request. The Lua variant looks the host up as is (no public "
            "suffix reduction); icp_gate reduces each host to its "
            "registrable domain. Warm-up made %d filing API requests."
            % (count(p["mix_hosts"]), count(p["mix_domains"]),
               r["mix_api_requests"]), ""]
    out += http_table(r["mix"])
    out += ["", "## Hostile host", "",
            "A host of 127 one-letter labels (253 bytes, the most a name "
            "holds), too long for the per-worker memo of reduced hosts, so "
            "every request reduces it again, next to `www.example.com`, "
            "which the memo answers; both filed and cached, on the gated "
            "nginx of the hot path. The public suffix walk looks only at "
            "the labels the list's deepest rule can match.", ""]
    out += http_table(r["labels"])
    ins = r["instructions"]
    if ins:
        out += ["", "## Instructions per request", "",
                "CPU time on a shared 2-core machine moves by ±10 %% from "
                "round to round; instruction counts do not. One nginx "
                "process under `valgrind --tool=callgrind`, wrk with 4 "
                "connections, user-space instructions per request "
                "(the kernel's share of a request is not counted, so these "
                "ratios are larger than the CPU-time ones). \"Difference\" "
                "is icp_gate on minus no gate; it moves by a few hundred "
                "with the paths glibc's malloc takes for the pool's "
                "blocks, which depend on the heap's history. \"Inside the "
                "gate\" counts only what runs between the entry and the "
                "return of the gate's handler and cleanup (a second "
                "process, `--toggle-collect`), less the request pool's "
                "second block, which the request allocates anyway (%d and "
                "%d instructions a request here). \"Before P4\" is inside "
                "the gate at %s, counted the same way (its report gave "
                "differences of %d and %d)."
                % (ins["pool_block_hot"], ins["pool_block_mix"],
                   BEFORE_P4["commit"], BEFORE_P4["hot_difference"],
                   BEFORE_P4["mix_difference"]), "",
                "| load | no gate | icp_gate on | ratio | difference "
                "| inside the gate | before P4 |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for load, name in (("hot", "one cached host"),
                           ("mix", count(p["mix_hosts"]) + " hosts")):
            base, gate = ins["nginx_" + load], ins["icp_gate_" + load]
            out.append("| %s | %d | %d | %s× | %d | %d | %d |" % (
                name, base, gate, fmt(gate / base, 3), gate - base,
                ins["inside_" + load], BEFORE_P4[load]))
    out += ["", "## Misses", "",
            "| figure | value |", "| --- | ---: |",
            "| filing API stand-in's own latency, p50 (%d ms configured) "
            "| %s ms |" % (p["api_delay_ms"], fmt(cold["api_p50_ms"], 3)),
            "| first request for a new domain through nginx, p50 | %s ms |"
            % fmt(cold["first_p50_ms"], 3),
            "| … p99 | %s ms |" % fmt(cold["first_p99_ms"], 3),
            "| added by nginx + icp_gate + Redis miss, p50 | %s ms |"
            % fmt(cold["added_p50_ms"], 3),
            "| Redis round trip (HGETALL), p50 | %s ms |"
            % fmt(redis["rtt_p50_ms"], 3),
            "| first request for a domain only in Redis, p50 | %s ms |"
            % fmt(redis["first_p50_ms"], 3),
            "| same request once cached, p50 | %s ms |"
            % fmt(redis["cached_p50_ms"], 3),
            "| added by the Redis tier, p50 / p90 | %s / %s ms |"
            % (fmt(redis["added_p50_ms"], 3), fmt(redis["added_p90_ms"], 3)),
            "| filing API requests for the Redis-tier domains | %d |"
            % redis["api_requests"],
            "", "Storms: %d clients connected first, then one request each "
            "at the same moment, for one cold domain, on 2 workers, the API "
            "answering in %d ms. \"In nginx\" is `$request_time` from the "
            "access log (millisecond resolution); \"at the client\" "
            "includes the Python client's own time for %d answers, shown "
            "by the last row: the same storm on a domain already cached."
            % (p["storm_clients"], p["api_delay_ms"], p["storm_clients"]),
            "",
            "| storm | filing API requests | workers that answered | non-200 "
            "| in nginx p50 / p99 | at the client p50 / p99 |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for i, s in enumerate(r["storm"] + [r["storm_cached"]], 1):
        name = str(i) if i <= len(r["storm"]) else "cached domain"
        out.append("| %s | %d | %d | %d | %s / %s ms | %s / %s ms |" % (
            name, s["api_requests"], s["workers"], s["not_200"],
            fmt(s["server_p50_ms"], 0), fmt(s["server_p99_ms"], 0),
            fmt(s["p50_ms"], 1), fmt(s["p99_ms"], 1)))
    out += ["", "## RTMP publish", "",
            "%d publishers in a loop, each: TCP connect, handshake, connect, "
            "createStream, publish, wait for `NetStream.Publish.Start`, "
            "close (bench/rtmp_client.py). \"Publish accepted\" is from "
            "sending `publish` to its onStatus. The notify service is an "
            "nginx answering 200." % p["rtmp_publishers"], ""]
    out += rtmp_table(r["rtmp"])
    out += ["", "## Capacity", "",
            "A %d MB zone, no Redis, %d domains requested once each "
            "(one kept hot by a request every %d), then newest first until "
            "the first one the zone had evicted: %d held, %d per MB. "
            "%d answers were not 200; error log lines at error or worse: %d."
            % (cap["zone_mb"], cap["filled"], p["hot_every"], cap["held"],
               cap["per_mb"], cap["not_200"], len(cap["log_errors"])), ""]
    errors = [line for lines in r["log_errors"].values() for line in lines]
    if errors:
        out += ["Error log lines during the run:", "", "```"] + errors[:20] + \
            ["```", ""]
    out += ["![worker CPU per request](cpu-per-request.png)", ""]
    return "\n".join(out)


# the chart's axis has room for short names only
SHORT = {
    "nginx": "no gate", "icp_gate": "icp_gate",
    "auth_request": "auth_request", "auth_request_keepalive":
    "auth_request\\nkeepalive", "debian": "Debian nginx\\nno gate",
    "lua": "Lua\\nshared dict", "open": "no gate", "gated": "icp_gate",
    "notify": "on_publish\\nnotify",
}


def chart(r, out):
    http = os.path.join(out, "http.dat")
    with open(http, "w") as f:
        for hot, mix in zip(r["hot"], r["mix"]):
            f.write('"%s" %f %f\n' % (SHORT[hot["key"]], hot["cpu_us"],
                                      mix["cpu_us"]))
    rtmp = os.path.join(out, "rtmp.dat")
    with open(rtmp, "w") as f:
        for row in r["rtmp"]:
            f.write('"%s" %f\n' % (SHORT[row["key"]], row["cpu_us"]))
    png = os.path.join(out, "cpu-per-request.png")
    subprocess.run(["gnuplot", "-e", "http='%s'; rtmp='%s'; png='%s'"
                    % (http, rtmp, png), os.path.join(HERE, "chart.gp")],
                   check=True)
    os.unlink(http)
    os.unlink(rtmp)


def write(results, out):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "latest.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    text = markdown(results)
    with open(os.path.join(out, "latest.md"), "w") as f:
        f.write(text)
    chart(results, out)
    print()
    print(text)
    print("written: %s/latest.md, latest.json, cpu-per-request.png" % out)
