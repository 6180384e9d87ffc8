"""The processes a benchmark starts: nginx instances, redis-server and the
filing API stand-in, each in its own directory under one work directory.

Worker CPU time is read from /proc/PID/stat (utime + stime of the whole
process), so a figure covers everything a worker did for the requests,
system calls included, and nothing wrk or the peers did.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def wait_for_port(port, what, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("bench: %s never listened on port %d" % (what, port))


def children(pid):
    """Processes whose parent is pid: the workers of an nginx master."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        # the command name may hold spaces; fields resume after its ')'
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])      # utime, stime
    return total / CLK_TCK


class Nginx:
    """One nginx (ours or Debian's) with its own prefix, config and logs."""

    def __init__(self, binary, workdir, name, conf):
        self.binary = binary
        self.name = name
        self.dir = os.path.join(workdir, name)
        os.makedirs(os.path.join(self.dir, "logs"), exist_ok=True)
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.error_log = os.path.join(self.dir, "error.log")
        with open(self.conf, "w") as f:
            f.write(conf.replace("@DIR@", self.dir))
        self.pid = None
        self.workers = []

    def start(self, ports=()):
        cmd = [self.binary, "-e", self.error_log, "-p", self.dir + "/",
               "-c", self.conf]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit("bench: %s did not start:\n%s" % (self.name, run.stderr))
        for port in ports:
            wait_for_port(port, self.name)
        with open(os.path.join(self.dir, "nginx.pid")) as f:
            self.pid = int(f.read())
        self.workers = children(self.pid)
        return self

    def cpu(self):
        return cpu_seconds(self.workers)

    def log_lines(self, levels=("emerg", "alert", "crit", "error")):
        with open(self.error_log, errors="replace") as f:
            return [line.rstrip() for line in f
                    if any("[%s]" % level in line for level in levels)]

    def stop(self):
        if self.pid is None:
            return
        try:
            os.kill(self.pid, signal.SIGQUIT)
        except ProcessLookupError:
            pass
        for _ in range(100):
            if not os.path.exists("/proc/%d" % self.pid):
                break
            time.sleep(0.05)
        self.pid = None


class Redis:
    def __init__(self, workdir, port):
        self.port = port
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no",
             "--logfile", os.path.join(workdir, "redis.log")])
        wait_for_port(port, "redis-server")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class FilingApi:
    """t/filing_api.py, the stand-in the tests use, driven over /_control."""

    def __init__(self, workdir, port):
        self.port = port
        self.log = open(os.path.join(workdir, "api.log"), "w")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(TOP, "t", "filing_api.py"),
             "--port", str(port), "--default", "filed"], stderr=self.log)
        wait_for_port(port, "the filing API stand-in")

    def control(self, action, **params):
        query = "&".join("%s=%s" % kv for kv in params.items())
        url = "http://127.0.0.1:%d/_control/%s?%s" % (self.port, action, query)
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.read().decode()

    def delay(self, ms):
        self.control("default", mode="filed", delay_ms=ms)

    def total(self):
        return int(self.control("total"))

    def count(self, domain):
        return int(self.control("count", domain=domain))

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.log.close()
