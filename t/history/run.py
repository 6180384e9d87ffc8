"""One history: the cluster started, the schedule carried out over it while
every node serves traffic on every domain, and everything recorded with
its times: each request and its answer, each operation (operator writes
with the Redis time they took effect), each console view of a node's zone,
Redis's commands (MONITOR), snapshots of the verdicts, what the filing API
was asked and answered, the faults, the nodes' error logs."""

import os
import random
import signal
import subprocess
import threading
import time

from cluster import Cluster, Redis, RedisError, redis_time
from schedule import hosts_of

# the nodes' settings: short, so that the bound the checker holds them to
# is short (see check.py for the bound, derived from them)
SETTINGS = dict(redis_timeout_ms=300, api_timeout_ms=2000, ttl=30,
                negative_ttl=20, error_ttl=2, local_ttl=3, swr=1, wait=3)

REQUEST_GAP = (0.12, 0.36)      # s between two requests of a (node, domain)
CONSOLE_GAP = 0.25              # s between two console views of a node
SNAPSHOT_GAP = 2.0              # s between two snapshots of Redis


class History:
    """everything recorded: plain lists of dicts, times in Unix seconds"""

    def __init__(self, schedule, settings):
        self.schedule = schedule
        self.settings = settings
        self.t0 = None
        self.end = None
        self.requests = []
        self.ops = []
        self.consoles = []
        self.snapshots = []
        self.monitor = []
        self.answers = []
        self.faults = []
        self.logs = {}
        self.crashes = {}
        self.final = {}
        self.own_ops = set()        # "127.0.0.1:PORT" of operator writes
        self.own_admin = set()
        self.notes = []

    def note(self, text):
        self.notes.append((time.time(), text))


class Runner:
    def __init__(self, nginx, schedule, keep=False):
        self.schedule = schedule
        self.h = History(schedule, SETTINGS)
        self.cluster = Cluster(nginx, schedule.nodes, SETTINGS, keep=keep)
        self.stop = threading.Event()
        self.admin_lock = threading.Lock()
        self.redis_lock = threading.RLock()     # held across a restart
        self.op_seq = 0
        self.seq_lock = threading.Lock()
        self.threads = []

    # ------------------------------------------------------------ recording

    def record_op(self, kind, domain=None, node=None, **fields):
        op = dict(kind=kind, domain=domain, node=node, start=time.time(),
                  end=None, ok=True)
        op.update(fields)
        self.h.ops.append(op)
        return op

    def next_tag(self, prefix):
        with self.seq_lock:
            self.op_seq += 1
            return "%s-%d" % (prefix, self.op_seq)

    def node(self, name):
        return next(n for n in self.cluster.nodes if n.name == name)

    # ------------------------------------------------------------ operations

    def op_conn(self):
        """a connection of its own for each operator write, so that writes
        from several scenarios never share one; its address is ours"""
        with self.redis_lock:
            c = Redis(self.cluster.redis_port)
        self.h.own_ops.add("127.0.0.1:%d" % c.local_port)
        return c

    def op_write(self, domain, status, source="manual", persist=False,
                 conn=None):
        tag = self.next_tag("op" if source != "import" else "imp")
        op = self.record_op("write", domain, status=status, source=source,
                            persist=persist, tag=tag)
        try:
            c = conn or self.op_conn()
            reply = c.call("EVALSHA", self.cluster.operator_sha, 1,
                           "icp:domain:" + domain,
                           "persist" if persist else "set", status, source,
                           tag, int(time.time()))
            op["redis_time"] = redis_time(reply)
            if conn is None:
                c.close()
        except (OSError, RedisError, ValueError) as e:
            op.update(ok=False, error=str(e))
        op["end"] = time.time()
        return op

    def op_del(self, domain):
        op = self.record_op("del", domain)
        try:
            c = self.op_conn()
            reply = c.call("EVALSHA", self.cluster.operator_sha, 1,
                           "icp:domain:" + domain, "del")
            op["redis_time"] = redis_time(reply)
            c.close()
        except (OSError, RedisError, ValueError) as e:
            op.update(ok=False, error=str(e))
        op["end"] = time.time()
        return op

    def op_import(self, domain, status, ttl=None):
        """icp-gate-import with one line, a subdomain of the domain"""
        if not self.cluster.importer:
            return self.op_write(domain, status, source="import")
        tag = self.next_tag("imp")
        host = random.choice(hosts_of(domain))
        op = self.record_op("import", domain, status=status, tag=tag,
                            host=host, ttl=ttl)
        path = os.path.join(self.cluster.dir, "import-%s.csv" % tag)
        with open(path, "w") as f:
            f.write("%s,%s,%s\n" % (host, status, tag))
        cmd = [self.cluster.importer, "--redis",
               "127.0.0.1:%d" % self.cluster.redis_port, "--prefix", "icp:"]
        if ttl:
            cmd += ["--ttl", str(ttl)]
        try:
            r = subprocess.run(cmd + [path], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=20)
            op.update(ok=r.returncode == 0, exit=r.returncode,
                      output=r.stdout.decode(errors="replace").strip())
        except subprocess.TimeoutExpired:
            op.update(ok=False, error="timed out")
        op["end"] = time.time()
        return op

    def purge(self, node, host, redis):
        domain = self.host_domain(host)
        op = self.record_op("purge", domain, node=node, host=host, redis=redis)
        status, doc = self.node(node).console(
            host, "POST", "&action=purge" + ("&redis=1" if redis else ""))
        op.update(status=status, answer=doc, end=time.time())
        op["ok"] = (status == 200 and isinstance(doc, dict)
                    and doc.get("zone") in ("purged", "absent")
                    and (not redis or doc.get("redis") in ("deleted",
                                                           "absent")))
        return op

    def host_domain(self, host):
        return next(d for d in self.schedule.domains
                    if host == d or host.endswith("." + d))

    def api_set(self, domain, mode, delay_ms=0, jitter_ms=0):
        op = self.record_op("api", domain, mode=mode, delay_ms=delay_ms,
                            jitter_ms=jitter_ms)
        status, _ = self.cluster.api("set", domain=domain, mode=mode,
                                     delay_ms=delay_ms, jitter_ms=jitter_ms)
        op.update(ok=status == 200, end=time.time())
        return op

    def api_next(self, domain, delay_ms, mode=None):
        op = self.record_op("api_next", domain, delay_ms=delay_ms, mode=mode)
        params = dict(domain=domain, delay_ms=delay_ms)
        if mode:
            params["mode"] = mode
        status, _ = self.cluster.api("next", **params)
        op.update(ok=status == 200, end=time.time())
        return op

    def api_seq(self):
        status, body = self.cluster.api("total")
        return int(body) if status == 200 else 0

    def wait_arrival(self, domain, since, timeout, slow_ms=0):
        """the first filing request for domain after since that sleeps at
        least slow_ms (None after timeout)"""
        deadline = time.time() + timeout
        while time.time() < deadline and not self.stop.is_set():
            for a in self.cluster.api_answers(since, domain):
                if a["delay_ms"] >= slow_ms:
                    return a
            time.sleep(0.02)
        return None

    def kick(self, node, domain):
        """a request of its own, so that a lookup starts now"""
        t = threading.Thread(target=self.request,
                             args=(self.node(node), domain,
                                   random.choice(hosts_of(domain))),
                             daemon=True)
        t.start()
        self.threads.append(t)

    def admin(self, *args):
        with self.admin_lock:
            try:
                return self.cluster.admin.call(*args)
            except (OSError, ConnectionError):
                with self.redis_lock:
                    self.cluster.admin = Redis(self.cluster.redis_port)
                self.h.own_admin.add("127.0.0.1:%d"
                                     % self.cluster.admin.local_port)
                return self.cluster.admin.call(*args)

    def fault(self, kind, start, end, node=None, **fields):
        f = dict(kind=kind, start=start, end=end, node=node)
        f.update(fields)
        self.h.faults.append(f)
        return f

    def pause(self, how, seconds):
        start = time.time()
        if how == "client":
            try:
                self.admin("CLIENT", "PAUSE", int(seconds * 1000), "ALL")
            except (OSError, RedisError):
                return
            time.sleep(seconds)
        else:
            pid = self.cluster.redis_pid()
            os.kill(pid, signal.SIGSTOP)
            time.sleep(seconds)
            os.kill(pid, signal.SIGCONT)
        self.fault("redis", start, time.time(), how="pause " + how)

    def restart(self, gap):
        with self.redis_lock:
            start = time.time()
            self.cluster.kill_redis()
            self.h.ops.append(dict(kind="restart", domain=None, node=None,
                                   start=start, end=start, ok=True))
            time.sleep(gap)
            self.cluster.start_redis()
            self.note_own_clients()
            self.fault("redis", start, time.time(), how="restart")
        self.snapshot()

    def channel_kill(self):
        t = time.time()
        try:
            killed = self.admin("CLIENT", "KILL", "TYPE", "pubsub")
        except (OSError, RedisError) as e:
            killed = str(e)
        self.fault("channel", t, time.time(), how="CLIENT KILL TYPE pubsub",
                   killed=killed)

    def reload(self, name):
        start = time.time()
        ok = self.node(name).reload()
        self.fault("channel", start, time.time(), node=name, how="reload",
                   ok=ok)

    def late(self, low, high):
        self.cluster.late(low, high)

    def note_own_clients(self):
        self.h.own_admin.add("127.0.0.1:%d" % self.cluster.admin.local_port)

    # ------------------------------------------------------------ observers

    def request(self, node, domain, host):
        start = time.time()
        status, headers, _ = node.get(host)
        self.h.requests.append(dict(
            node=node.name, domain=domain, host=host, start=start,
            end=time.time(), status=status,
            reason=headers.get("x-reason", ""),
            result=headers.get("x-result", ""),
            tag=headers.get("x-icp") or None))

    def traffic(self, node, domain):
        rng = random.Random()
        hosts = hosts_of(domain)
        while not self.stop.is_set():
            self.request(node, domain, rng.choice(hosts))
            self.stop.wait(rng.uniform(*REQUEST_GAP))

    def consoles(self, node):
        rng = random.Random()
        while not self.stop.is_set():
            domain = rng.choice(self.schedule.domains)
            start = time.time()
            status, doc = node.console(rng.choice(hosts_of(domain)))
            if status == 200 and isinstance(doc, dict):
                self.h.consoles.append(dict(
                    node=node.name, domain=domain, start=start,
                    end=time.time(), zone=doc.get("zone"),
                    redis=doc.get("redis")))
            self.stop.wait(CONSOLE_GAP)

    def snapshot(self):
        try:
            reply = self.admin("EVALSHA", self.cluster.snapshot_sha, 0,
                               "icp:domain:*")
        except (OSError, RedisError, ConnectionError):
            return
        keys = {}
        for key, flat, pttl in reply[1:]:
            keys[key] = (dict(zip(flat[0::2], flat[1::2])), pttl)
        self.h.snapshots.append(dict(ts=redis_time(reply[0]), keys=keys))

    def snapshots(self):
        while not self.stop.wait(SNAPSHOT_GAP):
            if self.redis_lock.acquire(timeout=0.1):
                self.redis_lock.release()
                self.snapshot()

    def spawn(self, target, *args):
        t = threading.Thread(target=target, args=args, daemon=True)
        t.start()
        self.threads.append(t)
        return t

    # ------------------------------------------------------------ the run

    def set_up(self):
        """what each domain holds and what the API says, before traffic"""
        for d in self.schedule.domains:
            i = self.schedule.initial[d]
            self.api_set(d, i["api"], jitter_ms=i["jitter_ms"])
            if i["holds"] == "operator":
                self.op_write(d, i["status"], persist=True)
            elif i["holds"] == "import":
                self.op_import(d, i["status"])

    def run(self):
        from scenarios import SCENARIOS
        h = self.h
        c = self.cluster
        try:
            c.start()
            self.note_own_clients()
            h.t0 = time.time()
            self.set_up()
            self.snapshot()
            for node in c.nodes:
                for d in self.schedule.domains:
                    self.spawn(self.traffic, node, d)
                self.spawn(self.consoles, node)
            self.spawn(self.snapshots)
            workers = []
            for s in self.schedule.scenarios:
                workers.append(self.spawn(self.scenario, SCENARIOS[s.kind], s))
            end = h.t0 + self.schedule.duration
            while time.time() < end:
                time.sleep(0.1)
            for t in workers:
                t.join(30)
            self.stop.set()
            for t in self.threads:
                t.join(15)
            self.snapshot()
            h.end = time.time()
            self.finish()
        finally:
            self.stop.set()
            try:
                h.answers = c.api_answers()
            except Exception:
                pass
            h.monitor = list(c.monitor_lines)
            for node in c.nodes:
                h.logs[node.name] = node.error_log()
            c.stop()
        return h

    def scenario(self, fn, s):
        delay = self.h.t0 + s.at - time.time()
        if delay > 0 and self.stop.wait(delay):
            return
        try:
            fn(self, s)
        except Exception as e:      # a scenario's trouble is no finding
            self.h.note("scenario %s at %.2fs failed: %r" % (s.kind, s.at, e))

    def finish(self):
        """every node still answers; then each stops, so that a crash on
        the way out is seen too"""
        h = self.h
        d = self.schedule.domains[0]
        for node in self.cluster.nodes:
            status, _, _ = node.get("www." + d)
            console, _ = node.console(d)
            h.final[node.name] = (status, console)
        for node in self.cluster.nodes:
            node.stop()
            h.crashes[node.name] = node.crashes()
