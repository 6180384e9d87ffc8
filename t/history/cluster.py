"""The real parts of a history: redis-server, a proxy that can make its
replies late, the filing API stand-in and nginx nodes, each with its own
zone, all on the one Redis; a Redis client of our own, MONITOR included,
and an HTTP client.  Everything started here is stopped by its pid."""

import ctypes
import http.client
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

T_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(T_DIR)

# error.log lines that mean a crash or a sanitizer report (IcpGate::Test's
# $CRASH_RE): a worker's normal exit is "exited with code 0"
CRASH_RE = re.compile(r"exited on signal|worker process \d+ exited with "
                      r"(?:fatal )?code [1-9]|AddressSanitizer|runtime error:"
                      r"|LeakSanitizer")

PR_SET_PDEATHSIG = 1


def die_with_parent():
    """preexec_fn: a child of ours goes when we go, killed or not"""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG,
                                                 signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def free_port(taken):
    for _ in range(100):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in taken:
            taken.add(port)
            return port
    raise RuntimeError("no free port")


def wait_for(probe, timeout, step=0.05):
    deadline = time.time() + timeout
    while True:
        value = probe()
        if value or time.time() >= deadline:
            return value
        time.sleep(step)


# ---------------------------------------------------------------- Redis

class RedisError(Exception):
    pass


class Redis:
    """One connection speaking RESP2; call() returns str, int, list, None,
    or raises RedisError for an error reply, OSError when the connection
    fails."""

    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.local_port = self.sock.getsockname()[1]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    @staticmethod
    def encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if not isinstance(a, bytes):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def call(self, *args):
        self.sock.sendall(self.encode(args))
        return self.reply()

    def line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("redis closed the connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n):
        while len(self.buf) < n + 2:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("redis closed the connection")
            self.buf += data
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode("utf-8", "replace")
        if kind == b"-":
            raise RedisError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.exact(n).decode("utf-8", "replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise RedisError("not RESP: %r" % line[:40])


# operator writes: one script that writes and says when (Redis TIME), so
# that the history knows the write's Redis time exactly
OPERATOR_SCRIPT = """
if ARGV[1] == 'del' then
    redis.call('DEL', KEYS[1])
else
    redis.call('HSET', KEYS[1], 'status', ARGV[2], 'source', ARGV[3],
               'icp', ARGV[4], 'checked_at', ARGV[5])
    if ARGV[1] == 'persist' then redis.call('PERSIST', KEYS[1]) end
end
return redis.call('TIME')
"""

# the whole of what Redis holds of the verdicts, and when
SNAPSHOT_SCRIPT = """
local out = {redis.call('TIME')}
for _, key in ipairs(redis.call('KEYS', ARGV[1])) do
    out[#out + 1] = {key, redis.call('HGETALL', key), redis.call('PTTL', key)}
end
return out
"""


def redis_time(reply):
    return int(reply[0]) + int(reply[1]) / 1e6


MONITOR_LINE = re.compile(r"^(\d+\.\d+) \[(\d+) ([^\]]*)\] (.*)$")
MONITOR_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')
MONITOR_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|.)")
ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b"}


def parse_monitor(line):
    """'1700000000.123456 [0 127.0.0.1:5000] "HSET" "k" ...' ->
    (time, client, [args]); None for anything else"""
    m = MONITOR_LINE.match(line)
    if not m:
        return None

    def unescape(s):
        def one(e):
            c = e.group(1)
            if c[0] == "x" and len(c) == 3:
                return chr(int(c[1:], 16))
            return ESCAPES.get(c, c)
        return MONITOR_ESCAPE.sub(one, s)

    args = [unescape(a) for a in MONITOR_ARG.findall(m.group(4))]
    return float(m.group(1)), m.group(3), args


class Monitor(threading.Thread):
    """A MONITOR connection: every command Redis carries out, in its
    order, with Redis's time, into lines (shared, append-only).  It ends
    when Redis goes; a restart starts another."""

    def __init__(self, port, lines):
        super().__init__(daemon=True)
        self.conn = Redis(port)
        self.conn.call("MONITOR")
        self.lines = lines
        self.connected_at = time.time()

    def run(self):
        try:
            self.conn.sock.settimeout(None)
            while True:
                line = self.conn.line().decode("utf-8", "replace")
                if line.startswith("+"):
                    parsed = parse_monitor(line[1:])
                    if parsed:
                        self.lines.append(parsed)
        except (OSError, ConnectionError, ValueError):
            pass

    def stop(self):
        self.conn.close()


# ---------------------------------------------------------------- HTTP

def http_request(port, host, path="/index.html", method="GET", headers=None,
                 timeout=10.0):
    """(status, {lower-case header: value}, body); status 0 when nothing
    came"""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    head = {"Host": host, "Connection": "close"}
    head.update(headers or {})
    try:
        conn.request(method, path, body=b"" if method == "POST" else None,
                     headers=head)
        r = conn.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    except (OSError, http.client.HTTPException):
        return 0, {}, b""
    finally:
        conn.close()


# ---------------------------------------------------------------- nginx

# the head of every nginx.conf these drivers write (bench/ too)
NGINX_HEAD = """\
daemon on;
master_process on;
worker_processes {workers};
error_log {dir}/error.log notice;
pid {dir}/nginx.pid;
events {{ worker_connections {connections}; }}
"""

NODE_CONF = NGINX_HEAD + """\

icp_gate_zone icp_gate:4m;
icp_gate_redis 127.0.0.1:{redis_port} timeout={redis_timeout_ms}ms;
icp_gate_api "http://127.0.0.1:{api_port}/v1/filing/{{domain}}";
icp_gate_api_header X-Node {name};
icp_gate_api_timeout {api_timeout_ms}ms;
icp_gate_ttl {ttl}s;
icp_gate_negative_ttl {negative_ttl}s;
icp_gate_error_ttl {error_ttl}s;
icp_gate_local_ttl {local_ttl}s;
icp_gate_stale_while_revalidate {swr}s;

http {{
    access_log off;
    icp_gate on;
    icp_gate_wait {wait}s;

    server {{
        listen 127.0.0.1:{http_port};
        root {dir}/html;
        add_header X-Result "$icp_gate_result" always;
        add_header X-Reason "$icp_gate_reason" always;
        add_header X-Icp "$icp_gate_icp" always;
        location / {{ }}
    }}

    server {{
        listen 127.0.0.1:{ops_port};
        icp_gate off;
        location = /icp_gate/admin {{ icp_gate_admin; }}
    }}
}}
"""


class Node:
    """One nginx of the fleet: its own prefix, zone, ports and logs."""

    worker_processes = 2        # into NODE_CONF; start() waits for them

    def __init__(self, cluster, name):
        self.cluster = cluster
        self.name = name
        self.dir = os.path.join(cluster.dir, name)
        os.makedirs(os.path.join(self.dir, "html"))
        os.makedirs(os.path.join(self.dir, "logs"))
        os.chmod(self.dir, 0o777)
        with open(os.path.join(self.dir, "html", "index.html"), "w") as f:
            f.write("hello\n")
        os.chmod(os.path.join(self.dir, "html"), 0o755)
        self.http_port = free_port(cluster.taken)
        self.ops_port = free_port(cluster.taken)
        self.master = None

    def write_conf(self, settings):
        with open(os.path.join(self.dir, "nginx.conf"), "w") as f:
            f.write(NODE_CONF.format(dir=self.dir, name=self.name,
                                     workers=self.worker_processes,
                                     connections=1024,
                                     redis_port=self.cluster.proxy_port,
                                     api_port=self.cluster.api_port,
                                     http_port=self.http_port,
                                     ops_port=self.ops_port, **settings))

    def env(self):
        env = dict(os.environ)
        env.pop("NGINX", None)
        env["ASAN_OPTIONS"] = ("log_path=%s/asan:detect_leaks=0:"
                               "abort_on_error=0" % self.dir)
        env["UBSAN_OPTIONS"] = ("log_path=%s/ubsan:print_stacktrace=1:"
                                "halt_on_error=0:suppressions=%s"
                                % (self.dir, os.path.join(T_DIR, "ubsan.supp")))
        return env

    def nginx(self, *args):
        """the binary with these arguments: (exit status, its output); the
        output goes through a file, as a daemon keeps what it inherits"""
        cmd = [self.cluster.nginx, "-p", self.dir + "/", "-c",
               os.path.join(self.dir, "nginx.conf")] + list(args)
        path = os.path.join(self.dir, "nginx.out")
        with open(path, "wb") as out:
            code = subprocess.run(cmd, env=self.env(), stdout=out,
                                  stderr=subprocess.STDOUT,
                                  timeout=60).returncode
        with open(path, "rb") as f:
            return code, f.read().decode("utf-8", "replace")

    def read_pid(self):
        try:
            with open(os.path.join(self.dir, "nginx.pid")) as f:
                return int(f.read().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def start(self):
        code, out = self.nginx()
        if code != 0:
            raise RuntimeError("nginx %s did not start: %s\n%s" % (
                self.name, out, self.error_log()[-3000:]))
        self.master = wait_for(self.read_pid, 10)
        if not self.master:
            raise RuntimeError("nginx %s wrote no pid file" % self.name)
        if not wait_for(lambda: len(self.workers()) >= self.worker_processes
                        and self.answers(), 10):
            raise RuntimeError("nginx %s does not answer" % self.name)

    def answers(self):
        return http_request(self.ops_port, "ops",
                            "/icp_gate/admin?domain=probe.cn",
                            timeout=3)[0] == 200

    def workers(self):
        if not self.master:
            return []
        found = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % pid) as f:
                    stat = f.read()
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            if ppid == self.master and b"worker process" in cmdline:
                found.append(int(pid))
        return sorted(found)

    def reload(self):
        """nginx -s reload, then until every old worker is gone (10 s)"""
        old = set(self.workers())
        if self.nginx("-s", "reload")[0] != 0:
            return False
        return bool(wait_for(lambda: (lambda now: now and not old & set(now))(
            self.workers()), 10))

    def stop(self):
        # one that did not come up in time may still have written its pid
        self.master = self.master or self.read_pid()
        if not self.master:
            return
        self.nginx("-s", "quit")
        if not wait_for(lambda: not alive(self.master), 10):
            for pid in [self.master] + self.workers():
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            wait_for(lambda: not alive(self.master), 2)
        self.master = None

    def error_log(self):
        try:
            with open(os.path.join(self.dir, "error.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def crashes(self):
        found = [l for l in self.error_log().splitlines() if CRASH_RE.search(l)]
        for name in sorted(os.listdir(self.dir)):
            if re.match(r"^(asan|ubsan)\.", name):
                with open(os.path.join(self.dir, name), "rb") as f:
                    text = f.read().decode("utf-8", "replace")
                if text.strip():
                    found.append("%s:\n%s" % (name, text))
        return found

    def get(self, host):
        return http_request(self.http_port, host)

    def console(self, host, method="GET", query=""):
        q = "domain=" + urllib.parse.quote(host) + query
        status, _, body = http_request(
            self.ops_port, "ops", "/icp_gate/admin?" + q, method=method,
            headers={"X-ICP-Gate": "purge"} if method == "POST" else None)
        try:
            doc = json.loads(body.decode("utf-8", "replace")) if body else None
        except ValueError:
            doc = None
        return status, doc


def alive(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


# ---------------------------------------------------------------- the whole

class Cluster:
    """redis-server (no persistence: a restart empties it), the proxy the
    nodes reach it through, the filing API stand-in, and the nodes."""

    def __init__(self, nginx, nodes, settings, keep=False):
        self.nginx = nginx
        self.importer = os.path.join(os.path.dirname(nginx), "icp-gate-import")
        if not os.access(self.importer, os.X_OK):
            self.importer = None
        self.keep = keep
        self.dir = os.path.realpath(
            tempfile.mkdtemp(prefix="icp-gate-history-"))
        os.chmod(self.dir, 0o777)
        self.taken = set()
        self.redis_port = free_port(self.taken)
        self.proxy_port = free_port(self.taken)
        self.api_port = free_port(self.taken)
        self.settings = settings
        self.children = {}
        self.nodes = [Node(self, "n%d" % (i + 1)) for i in range(nodes)]
        self.monitor_lines = []
        self.monitors = []
        self.spawning = None

    # -- processes of our own

    def spawner(self):
        """Children are started by this thread alone: the kernel's
        parent-death signal follows the thread that forked, and a
        scenario's thread (a Redis restart) ends long before the run."""
        while True:
            job = self.jobs.get()
            if job is None:
                return
            cmd, stdin, log, done = job
            env = dict(os.environ)
            env.pop("NGINX", None)
            try:
                done.append(subprocess.Popen(cmd, stdin=stdin, stdout=log,
                                             stderr=log, env=env,
                                             preexec_fn=die_with_parent))
            except OSError as e:
                done.append(e)

    def spawn(self, name, cmd, stdin=None):
        if self.spawning is None:
            self.jobs = queue.Queue()
            self.spawning = threading.Thread(target=self.spawner, daemon=True)
            self.spawning.start()
        done = []
        with open(os.path.join(self.dir, name + ".log"), "ab") as log:
            self.jobs.put((cmd, stdin, log, done))
            wait_for(lambda: done, 30, step=0.005)
        if not done or isinstance(done[0], OSError):
            raise RuntimeError("cannot start %s: %s" % (name, done))
        self.children[name] = done[0]
        return done[0]

    def reap(self, name):
        proc = self.children.pop(name, None)
        if proc and proc.poll() is None:
            proc.kill()
        if proc:
            proc.wait()

    def start_redis(self):
        self.spawn("redis", ["redis-server", "--port", str(self.redis_port),
                             "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--daemonize", "no",
                             "--dir", self.dir])

        def up():
            try:
                c = Redis(self.redis_port, 1)
                ok = c.call("PING") == "PONG"
                c.close()
                return ok
            except (OSError, RedisError):
                return False

        if not wait_for(up, 10):
            raise RuntimeError("redis-server did not start")
        monitor = Monitor(self.redis_port, self.monitor_lines)
        monitor.start()
        self.monitors.append(monitor)
        self.admin = Redis(self.redis_port)        # snapshots, faults
        self.operator_sha = self.admin.call("SCRIPT", "LOAD", OPERATOR_SCRIPT)
        self.snapshot_sha = self.admin.call("SCRIPT", "LOAD", SNAPSHOT_SCRIPT)

    def redis_pid(self):
        proc = self.children.get("redis")
        return proc.pid if proc else None

    def kill_redis(self):
        self.admin.close()
        for m in self.monitors:
            m.stop()
        self.reap("redis")

    def start_proxy(self):
        proc = self.spawn("proxy", [sys.executable,
                                    os.path.join(T_DIR, "history",
                                                 "redis_proxy.py"),
                                    "--port", str(self.proxy_port),
                                    "--upstream", str(self.redis_port)],
                          stdin=subprocess.PIPE)
        self.proxy_in = proc.stdin

        def up():
            try:
                socket.create_connection(("127.0.0.1", self.proxy_port),
                                         1).close()
                return True
            except OSError:
                return False

        if not wait_for(up, 10):
            raise RuntimeError("the redis proxy did not start")

    def late(self, low_ms, high_ms):
        self.proxy_in.write(b"late %d %d\n" % (low_ms, high_ms))
        self.proxy_in.flush()

    def start_api(self):
        self.spawn("api", [sys.executable, os.path.join(T_DIR, "filing_api.py"),
                           "--port", str(self.api_port), "--default", "unfiled",
                           "--tag-icp", "--log-answers"])
        if not wait_for(lambda: self.api("total")[0] == 200, 15):
            raise RuntimeError("the filing API stand-in did not start")

    def api(self, action, **params):
        q = urllib.parse.urlencode(params)
        status, _, body = http_request(
            self.api_port, "127.0.0.1", "/_control/%s%s" % (
                action, "?" + q if q else ""), timeout=10)
        return status, body.decode("utf-8", "replace")

    def api_answers(self, since=0, domain=None):
        params = {"since": since}
        if domain:
            params["domain"] = domain
        status, body = self.api("answers", **params)
        return json.loads(body) if status == 200 else []

    def start(self):
        self.start_redis()
        self.start_proxy()
        self.start_api()
        for node in self.nodes:
            node.write_conf(self.settings)
        for node in self.nodes:
            node.start()

    def stop(self):
        for node in self.nodes:
            try:
                node.stop()
            except Exception:
                pass
        for m in self.monitors:
            m.stop()
        for name in list(self.children):
            self.reap(name)
        if self.spawning:
            self.jobs.put(None)
            self.spawning.join()
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
