#!/usr/bin/env python3
"""What icp_gate_file costs: run by hand, not by make bench.

    python3 bench/file_tier.py [--nginx build/sbin/nginx] [--lines 100000,1000000]

For each size it writes a CSV file as the README's importer figures do
(80 % subdomains, eight tenths filed with a number), then measures, with a
file-only configuration (no Redis, no filing API) and 2 workers:

  - nginx -t: its wall time, with and without the file;
  - the master's load at start (the launcher parses the configuration
    before it daemonizes: its wall time, with and without the file);
  - the reload: from "nginx -s reload" to the new workers, for the same
    file and for one whose filed lines all have another number (then
    worker 0 drops 80 % of the lines' copies from the zone, a thousand a
    millisecond);
  - a worker's memory: Rss and Pss of /proc/PID/smaps_rollup, with and
    without the file, per line;
  - the longest a worker kept a client waiting during those reloads: a
    client sends requests back to back (a new connection each, as the old
    workers close theirs) and the longest answer is printed, next to the
    longest of as many seconds without a reload.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "t", "history"))
from cluster import NGINX_HEAD                                  # noqa: E402

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def write_csv(path, lines, tag=""):
    with open(path, "w", encoding="utf-8") as f:
        for i in range(1, lines + 1):
            host = ("live%d." % i if i % 5 else "") + "domain%d.com.cn" % i
            if i % 10 < 8:
                f.write("%s,filed,京ICP备%08d号-1%s\n" % (host, i, tag))
            else:
                status = ("unfiled", "pending", "revoked")[i % 3]
                f.write("%s,%s\n" % (host, status))


CONF = NGINX_HEAD + """
{file}
http {{
    access_log off;
    icp_gate on;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 204; }}
    }}
}}
"""


class Nginx:
    def __init__(self, binary, dir, port, file):
        self.binary, self.dir, self.port = binary, dir, port
        with open(os.path.join(dir, "nginx.conf"), "w") as f:
            f.write(CONF.format(dir=dir, port=port, workers=2, connections=1024,
                                file="icp_gate_file %s;" % file if file else ""))

    def run(self, *args):
        start = time.monotonic()
        subprocess.run([self.binary, "-p", self.dir + "/", "-c",
                        os.path.join(self.dir, "nginx.conf")] + list(args),
                       check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        return time.monotonic() - start

    def master(self):
        while True:
            try:
                with open(os.path.join(self.dir, "nginx.pid")) as f:
                    return int(f.read())
            except (OSError, ValueError):
                time.sleep(0.01)    # not written yet

    def workers(self):
        master = self.master()
        with open("/proc/%d/task/%d/children" % (master, master)) as f:
            children = f.read().split()
        pids = []
        for pid in children:
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    if b"worker process" in f.read():
                        pids.append(int(pid))
            except OSError:
                continue    # gone meanwhile
        return sorted(pids)

    def start(self):
        took = self.run()
        deadline = time.monotonic() + 60
        while len(self.workers()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        return took

    def reload(self):
        """Seconds to the new workers, and the master's CPU seconds"""
        old = set(self.workers())
        cpu = cpu_seconds(self.master())
        start = time.monotonic()
        self.run("-s", "reload")
        while True:
            now = self.workers()
            if len(now) >= 2 and not set(now) <= old:
                return (time.monotonic() - start,
                        cpu_seconds(self.master()) - cpu)
            time.sleep(0.005)

    def stop(self):
        master = self.master()
        self.run("-s", "quit")
        while os.path.exists("/proc/%d" % master):
            time.sleep(0.05)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory(pid):
    out = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss"):
                out[key] = int(rest.split()[0]) * 1024
    return out


class Client(threading.Thread):
    """Requests back to back, a connection each: the longest answer."""

    def __init__(self, port, host):
        super().__init__(daemon=True)
        self.port, self.host = port, host
        self.stop = False
        self.longest = 0.0
        self.count = 0

    def run(self):
        req = ("GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
               % self.host).encode()
        while not self.stop:
            start = time.monotonic()
            try:
                s = socket.create_connection(("127.0.0.1", self.port), 5)
                s.sendall(req)
                while s.recv(4096):
                    pass
                s.close()
            except OSError:
                continue
            self.longest = max(self.longest, time.monotonic() - start)
            self.count += 1


def longest_wait(port, seconds, action=None):
    c = Client(port, "live1.domain1.com.cn")
    c.start()
    time.sleep(0.5)
    if action:
        action()
    time.sleep(seconds)
    c.stop = True
    c.join()
    return c.longest, c.count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nginx", default=os.path.join(TOP, "build/sbin/nginx"))
    ap.add_argument("--lines", default="100000,1000000")
    a = ap.parse_args()

    work = tempfile.mkdtemp(prefix="icp-gate-file-bench-")
    try:
        port = free_port()
        base = Nginx(a.nginx, work, port, None)
        t_base = min(base.run("-t") for _ in range(3))
        s_base = base.start()
        time.sleep(1)
        m_base = memory(base.workers()[0])
        base.stop()
        print("without a file: nginx -t %.3f s, start %.3f s, worker Rss %d kB"
              " Pss %d kB" % (t_base, s_base, m_base["Rss"] // 1024,
                              m_base["Pss"] // 1024))

        for lines in [int(n) for n in a.lines.split(",")]:
            csv = os.path.join(work, "filed.csv")
            write_csv(csv, lines)
            size = os.path.getsize(csv)
            n = Nginx(a.nginx, work, port, csv)
            t_test = min(n.run("-t") for _ in range(3))
            t_start = n.start()
            time.sleep(1)
            master_mem = memory(n.master())
            mem = memory(n.workers()[0])

            same = n.reload()
            time.sleep(1)
            quiet, _ = longest_wait(port, 3)
            same_wait, _ = longest_wait(port, 3, n.reload)
            write_csv(csv, lines, tag="x")
            changed_wait, reqs = longest_wait(port, 5, n.reload)
            write_csv(csv, lines)
            time.sleep(1)
            changed = n.reload()
            n.stop()
            with open(os.path.join(work, "error.log")) as f:
                told = [l for l in f if "domains changed since" in l]
            os.unlink(os.path.join(work, "error.log"))

            print()
            print("%d lines (%.1f MB):" % (lines, size / 1e6))
            print("  nginx -t: %.2f s (%.2f s over none)"
                  % (t_test, t_test - t_base))
            print("  start, the launcher's configuration: %.2f s (%.2f s over"
                  " none)" % (t_start, t_start - s_base))
            print("  reload to the new workers, same file: %.2f s (the"
                  " master's CPU %.2f s); changed: %.2f s (%.2f s; %s)"
                  % (same[0], same[1], changed[0], changed[1],
                     told[-1].split(": ", 2)[-1].strip()
                     if told else "no change logged"))
            print("  a worker: Rss %+.1f MB (%.1f B a line), Pss %+.1f MB"
                  " (%.1f B a line); the master: Rss %.1f MB"
                  % ((mem["Rss"] - m_base["Rss"]) / 1e6,
                     (mem["Rss"] - m_base["Rss"]) / lines,
                     (mem["Pss"] - m_base["Pss"]) / 1e6,
                     (mem["Pss"] - m_base["Pss"]) / lines,
                     master_mem["Rss"] / 1e6))
            print("  longest answer: %.1f ms without a reload, %.1f ms across"
                  " a reload of the same file, %.1f ms across a reload of a"
                  " changed one (%d requests)"
                  % (quiet * 1e3, same_wait * 1e3, changed_wait * 1e3, reqs))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
