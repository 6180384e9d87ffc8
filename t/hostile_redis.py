#!/usr/bin/env python3
"""A hostile Redis, or Redis Sentinel, for the icp_gate tests.

    python3 t/hostile_redis.py --port N --shape-file FILE --log FILE
        [--role redis|sentinel] [--master-port P]

It answers what a client sets a connection up with as Redis (or Sentinel)
would: PING, AUTH, SELECT, ROLE, CLIENT ID, CLIENT TRACKING, SUBSCRIBE,
SENTINEL get-master-addr-by-name (naming 127.0.0.1:P); HGETALL finds no
hash, EVAL takes the lock, MULTI ... EXEC queues and executes, anything
else is +OK.  Then it sends the malformed reply the shape names: in place
of one answer, after one, or as a pub/sub message once a subscription is
confirmed (see SHAPES).  The shape is read from --shape-file as each
connection opens ("none" when the file is missing or empty), so a test
changes it between runs without restarting this.  Every command received
is appended to --log as a JSON line {"conn": N, "cmd": [...]}.

    python3 t/hostile_redis.py --shapes

lists the shapes.  Python 3 standard library only.
"""

import argparse
import asyncio
import json
import sys


def bulk(text):
    data = text.encode() if isinstance(text, str) else text
    return b"$%d\r\n%s\r\n" % (len(data), data)


def array(*items):
    return b"*%d\r\n" % len(items) + b"".join(items)


def message(channel, payload):
    return array(bulk("message"), bulk(channel), payload)


INVALIDATE = "__redis__:invalidate"
SETUP = (b"PING", b"AUTH", b"SELECT", b"ROLE", b"CLIENT", b"SUBSCRIBE",
         b"SENTINEL")
SWITCH = "+switch-master"

# shape: (when, what).  when: "subscribed" (after Redis's confirmation of a
# subscription to __redis__:invalidate), "switch" (of one to
# +switch-master), or a command whose answer it replaces ("client id",
# "role", "get-master", "read": a connection's first command past its
# setup) or follows ("ping+").  what: bytes, or a
# function of the connection giving bytes, or a generator of chunks of
# bytes (sent while the client reads them).
SHAPES = {
    # the invalidation channel: shapes hiredis 0.14 asserts on
    "int-kind": ("subscribed",
                 array(b":1\r\n", bulk(INVALIDATE), bulk("x"))),
    "nil-kind": ("subscribed",
                 array(b"$-1\r\n", bulk(INVALIDATE), bulk("x"))),
    "array-kind": ("subscribed",
                   array(array(bulk("message")), bulk(INVALIDATE),
                         bulk("x"))),
    "status-kind": ("subscribed",
                    array(b"+message\r\n", bulk(INVALIDATE), bulk("x"))),
    "int-channel": ("subscribed", array(bulk("message"), b":7\r\n",
                                        bulk("x"))),
    "message-1": ("subscribed", array(bulk("message"))),
    "message-2": ("subscribed", array(bulk("message"), bulk(INVALIDATE))),
    "message-4": ("subscribed", array(bulk("message"), bulk(INVALIDATE),
                                      bulk("x"), bulk("y"))),
    "empty-push": ("subscribed", b"*0\r\n"),
    "unsubscribe-2": ("subscribed", array(bulk("unsubscribe"),
                                          bulk(INVALIDATE))),
    "unsubscribe-all": ("subscribed", lambda conn: b"".join(
        array(bulk("unsubscribe"), bulk(name), b":0\r\n")
        for name in sorted(conn.channels))
        + message(INVALIDATE, array(bulk("icp:domain:x.cn")))),
    "pmessage": ("subscribed", array(bulk("pmessage"), bulk("*"),
                                     bulk(INVALIDATE), bulk("x"))),
    "int-push": ("subscribed", b":1\r\n"),
    "nil-push": ("subscribed", b"*-1\r\n"),
    "resp3-push": ("subscribed", b">3\r\n" + bulk("message")
                   + bulk(INVALIDATE) + bulk("x")),
    # payloads our channel cannot read
    "int-keys": ("subscribed", message(INVALIDATE, b":5\r\n")),
    "nested-keys": ("subscribed",
                    message(INVALIDATE, array(array(bulk("a")), bulk("b")))),
    "deep-nesting": ("subscribed",
                     message(INVALIDATE, b"*1\r\n" * 8 + b":1\r\n")),
    # sizes: nothing allocated or held past the limits
    "huge-array": ("subscribed", b"*2000000000\r\n" + b":1\r\n" * 4),
    "huge-bulk": ("subscribed", lambda conn: stream(
        b"*3\r\n" + bulk("message") + bulk(INVALIDATE)
        + b"$2000000000\r\n", b"x", 64 << 20)),
    "long-line": ("subscribed", lambda conn: stream(b"+", b"x", 8 << 20)),
    "many-keys": ("subscribed", lambda conn: stream(
        b"*3\r\n" + bulk("message") + bulk(INVALIDATE) + b"*130000\r\n",
        bulk("icp:domain:" + "k" * 240 + ".cn"), 130000)),
    # the channel's setup
    "id-int64-min": ("client id", b":-9223372036854775808\r\n"),
    "id-zero": ("client id", b":0\r\n"),
    "id-negative": ("client id", b":-1\r\n"),
    "id-string": ("client id", bulk("12")),
    "id-nil": ("client id", b"$-1\r\n"),
    "id-error": ("client id", b"-ERR unknown command 'CLIENT'\r\n"),
    "id-huge-array": ("client id", b"*2000000000\r\n"),
    # any connection: a reply to no command, a read answered hugely
    "extra-reply": ("ping+", b":1\r\n"),
    "read-huge": ("read", b"*2000000000\r\n"),
    # ROLE, asked of the master a sentinel named
    "role-empty": ("role", b"*0\r\n"),
    "role-int": ("role", b":1\r\n"),
    "role-nil": ("role", b"*-1\r\n"),
    "role-int-first": ("role", array(b":1\r\n", b":0\r\n", b"*0\r\n")),
    "role-replica": ("role", array(bulk("slave"), bulk("127.0.0.1"),
                                   b":6379\r\n", bulk("connected"),
                                   b":0\r\n")),
    "role-huge": ("role", b"*2000000000\r\n"),
    "role-huge-inside": ("role", array(bulk("master"), b":0\r\n",
                                       b"*2000000000\r\n")),
    # a sentinel's answer to get-master-addr-by-name
    "gm-int": ("get-master", b":1\r\n"),
    "gm-string": ("get-master", bulk("127.0.0.1")),
    "gm-one": ("get-master", array(bulk("127.0.0.1"))),
    "gm-three": ("get-master", array(bulk("127.0.0.1"), bulk("6379"),
                                     bulk("x"))),
    "gm-ints": ("get-master", array(b":1\r\n", b":2\r\n")),
    "gm-nested": ("get-master", array(array(bulk("127.0.0.1")),
                                      bulk("6379"))),
    "gm-bad-port": ("get-master", array(bulk("127.0.0.1"), bulk("99999"))),
    "gm-bad-host": ("get-master", array(bulk("127.0.0.1\n[emerg] forged"),
                                        bulk("6379"))),
    "gm-huge": ("get-master", b"*2000000000\r\n"),
    "gm-huge-bulk": ("get-master", lambda conn: stream(
        b"*2\r\n$2000000000\r\n", b"x", 16 << 20)),
    # a sentinel's +switch-master messages
    "sw-3-words": ("switch", message(SWITCH, bulk("mymaster 127.0.0.1 1"))),
    "sw-6-words": ("switch", message(SWITCH, bulk(
        "mymaster 127.0.0.1 1 127.0.0.1 2 more"))),
    "sw-bad-port": ("switch", message(SWITCH, bulk(
        "mymaster 127.0.0.1 1 127.0.0.1 port"))),
    "sw-int": ("switch", message(SWITCH, b":1\r\n")),
    "sw-int-kind": ("switch", array(b":1\r\n", bulk(SWITCH),
                                    bulk("mymaster"))),
    "sw-message-2": ("switch", array(bulk("message"), bulk(SWITCH))),
    "sw-message-4": ("switch", array(bulk("message"), bulk(SWITCH),
                                     bulk("a"), bulk("b"))),
    "sw-huge": ("switch", b"*2000000000\r\n"),
}


def stream(head, unit, count):
    """head, then unit count times, in chunks of about 64K"""
    yield head
    per = max(1, 65536 // len(unit))
    while count > 0:
        n = min(per, count)
        yield unit * n
        count -= n


class Conn:
    number = 0

    def __init__(self, shape):
        Conn.number += 1
        self.id = Conn.number
        self.shape = shape
        self.channels = set()
        self.queued = None      # commands after MULTI, or None
        self.read = False       # a command past the setup came


def read_shape(path):
    try:
        with open(path) as f:
            return f.read().strip() or "none"
    except OSError:
        return "none"


def parse_command(buf):
    """(argv, rest) for the first RESP array in buf, or (None, buf)"""
    if not buf:
        return None, buf
    if not buf.startswith(b"*"):
        raise ValueError("not a RESP array: %r" % buf[:20])
    eol = buf.find(b"\r\n")
    if eol < 0:
        return None, buf
    count, pos, argv = int(buf[1:eol]), eol + 2, []
    for _ in range(count):
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None, buf
        size = int(buf[pos + 1:eol])
        if len(buf) < eol + 2 + size + 2:
            return None, buf
        argv.append(buf[eol + 2:eol + 2 + size])
        pos = eol + 2 + size + 2
    return argv, buf[pos:]


class Server:
    def __init__(self, args):
        self.args = args
        self.log = open(args.log, "a", buffering=1) if args.log else None

    def record(self, conn, argv):
        if self.log:
            self.log.write(json.dumps({"conn": conn.id, "role": self.args.role,
                                       "shape": conn.shape,
                                       "cmd": [a.decode("latin-1")
                                               for a in argv]}) + "\n")

    def hostile(self, conn, when):
        """the shape's bytes if it acts at this point, else None"""
        shape = SHAPES.get(conn.shape)
        if shape is None or shape[0] != when:
            return None
        what = shape[1]
        return what(conn) if callable(what) else what

    def answer(self, conn, argv):
        """(the answer, what follows it) as Redis or Sentinel would"""
        name = argv[0].upper()
        sub = argv[1].upper() if len(argv) > 1 else b""

        if conn.queued is not None and name not in (b"EXEC", b"DISCARD"):
            conn.queued.append(argv)
            return b"+QUEUED\r\n", None
        if name not in SETUP and not conn.read:
            conn.read = True
            hostile = self.hostile(conn, "read")
            if hostile:
                return hostile, None
        if name == b"PING":
            return b"+PONG\r\n", self.hostile(conn, "ping+")
        if name in (b"AUTH", b"SELECT"):
            return b"+OK\r\n", None
        if name == b"ROLE":
            return (self.hostile(conn, "role")
                    or array(bulk("master"), b":0\r\n", b"*0\r\n")), None
        if name == b"CLIENT" and sub == b"ID":
            return (self.hostile(conn, "client id")
                    or b":%d\r\n" % (100 + conn.id)), None
        if name == b"SUBSCRIBE":
            out, after = b"", None
            for channel in argv[1:]:
                conn.channels.add(channel.decode("latin-1"))
                out += array(bulk("subscribe"), bulk(channel),
                             b":%d\r\n" % len(conn.channels))
                if channel.decode("latin-1") == INVALIDATE:
                    after = self.hostile(conn, "subscribed")
                if channel.decode("latin-1") == SWITCH:
                    after = self.hostile(conn, "switch")
            return out, after
        if name == b"SENTINEL" and sub == b"GET-MASTER-ADDR-BY-NAME":
            return (self.hostile(conn, "get-master")
                    or array(bulk("127.0.0.1"),
                             bulk(str(self.args.master_port)))), None
        if name == b"HGETALL":
            return b"*0\r\n", None
        if name in (b"EVAL", b"EVALSHA", b"DEL", b"HSET", b"EXPIRE"):
            return b":1\r\n", None
        if name == b"MULTI":
            conn.queued = []
            return b"+OK\r\n", None
        if name == b"EXEC":
            n, conn.queued = len(conn.queued or []), None
            return b"*%d\r\n" % n + b":1\r\n" * n, None
        return b"+OK\r\n", None

    async def send(self, writer, data):
        if data is None:
            return
        chunks = [data] if isinstance(data, bytes) else data
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()

    async def serve(self, reader, writer):
        conn = Conn(read_shape(self.args.shape_file))
        try:
            async for argv in commands(reader):
                self.record(conn, argv)
                reply, after = self.answer(conn, argv)
                await self.send(writer, reply)
                await self.send(writer, after)
        except (ConnectionError, ValueError):
            pass
        finally:
            writer.close()


async def commands(reader):
    """the client's commands, each an argv, until it closes"""
    buf = b""
    while True:
        argv, buf = parse_command(buf)
        if argv is not None:
            yield argv
            continue
        data = await reader.read(65536)
        if not data:
            return
        buf += data


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--role", choices=("redis", "sentinel"),
                        default="redis")
    parser.add_argument("--shape-file", required=True)
    parser.add_argument("--log")
    parser.add_argument("--master-port", type=int, default=6379)
    args = parser.parse_args()

    server = Server(args)
    listener = await asyncio.start_server(server.serve, "127.0.0.1",
                                          args.port)
    async with listener:
        await listener.serve_forever()


if __name__ == "__main__":
    if sys.argv[1:] == ["--shapes"]:
        print("\n".join(sorted(SHAPES)))
        sys.exit(0)
    asyncio.run(main())
