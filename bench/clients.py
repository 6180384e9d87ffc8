"""The clients a benchmark drives servers with: wrk for throughput, a small
HTTP/1.1 client for one-request latencies, an asyncio storm of concurrent
first requests, and a RESP client for seeding Redis and timing its round
trip.  Latencies are taken with time.perf_counter() around one exchange, so
the client's own overhead is in every figure and cancels in differences
measured with the same client.
"""

import asyncio
import re
import resource
import socket
import subprocess
import sys
import time


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = int(round(p / 100 * len(ordered))) - 1
    rank = max(0, min(len(ordered) - 1, rank))
    return ordered[rank]


def median(values):
    return percentile(values, 50)


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def request_bytes(host, path):
    return ("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: icp-gate-bench\r\n"
            "\r\n" % (path, host)).encode()


class HttpClient:
    """Sequential GETs to 127.0.0.1:port, on one kept-alive connection, or
    on a new connection each when keepalive is False (the connect is then
    part of the time, as it is for nginx's own API requests)."""

    def __init__(self, port, keepalive=True):
        self.port = port
        self.keepalive = keepalive
        self.sock = None

    def _connect(self):
        self.sock = socket.create_connection(("127.0.0.1", self.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def _read_response(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        length = int(headers.get("content-length", "-1"))
        if length < 0:                          # HTTP/1.0: body ends at EOF
            try:
                while True:
                    self._fill()
            except EOFError:
                pass
            length = len(self.buf)
        while len(self.buf) < length:
            self._fill()
        self.buf = self.buf[length:]
        return status, headers.get("connection") == "close"

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed by the server")
        self.buf += data

    def get(self, host, path="/seg.ts"):
        """Returns (status, seconds)."""
        start = time.perf_counter()
        if self.sock is None:
            self._connect()
        self.sock.sendall(request_bytes(host, path))
        status, closed = self._read_response()
        elapsed = time.perf_counter() - start
        if closed or not self.keepalive:
            self.close()
        return status, elapsed

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


async def _storm_client(port, host, path, ready, results):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # every client is connected before any sends, so the requests arrive
    # together rather than as fast as connections are set up
    ready["connected"] += 1
    if ready["connected"] == ready["clients"]:
        ready["go"].set()
    await ready["go"].wait()
    start = time.perf_counter()
    writer.write(request_bytes(host, path))
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split()[1])
    match = re.search(rb"(?i)content-length: *(\d+)", head)
    await reader.readexactly(int(match.group(1)) if match else 0)
    results.append((status, time.perf_counter() - start))
    writer.close()


async def _storm(port, host, path, clients):
    ready = {"connected": 0, "clients": clients, "go": asyncio.Event()}
    results = []
    await asyncio.gather(*(_storm_client(port, host, path, ready, results)
                           for _ in range(clients)))
    return results


def storm(port, host, clients, path="/seg.ts"):
    """clients connections send one GET each at the same moment; returns
    [(status, seconds)], one per client, timed from its own send.  Needs
    raise_fd_limit() for more clients than the default 1024 descriptors."""
    return asyncio.run(_storm(port, host, path, clients))


class Resp:
    """A Redis connection speaking RESP, for what redis-cli would do in a
    loop too slowly: seeding keys and timing round trips."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")

    def command(self, *args):
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            arg = arg if isinstance(arg, bytes) else str(arg).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
        self.sock.sendall(b"".join(parts))
        return self._reply()

    def _reply(self):
        line = self.file.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError("redis: " + rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.file.read(n + 2)[:-2]
            return data.decode()
        if kind == b"*":
            return [self._reply() for _ in range(int(rest))]
        raise RuntimeError("redis: cannot parse %r" % line)

    def round_trip(self, *args):
        start = time.perf_counter()
        self.command(*args)
        return time.perf_counter() - start

    def close(self):
        self.sock.close()


def wrk(port, seconds, connections=32, host=None, script=None,
        script_args=(), path="/seg.ts", threads=1):
    """One wrk run; returns {requests, rps, errors}."""
    cmd = ["wrk", "-t%d" % threads, "-c%d" % connections,
           "-d%ds" % seconds]
    if host:
        cmd += ["-H", "Host: " + host]
    if script:
        cmd += ["-s", script]
    cmd.append("http://127.0.0.1:%d%s" % (port, path))
    if script_args:
        cmd += ["--"] + list(script_args)
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    requests = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not requests or not rps:
        sys.exit("bench: cannot read wrk's output:\n" + out)
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses: (\d+)",
                    r"Socket errors: connect (\d+), read (\d+), "
                    r"write (\d+), timeout (\d+)"):
        match = re.search(pattern, out)
        if match:
            errors += sum(int(g) for g in match.groups())
    return {"requests": int(requests.group(1)), "rps": float(rps.group(1)),
            "errors": errors}
