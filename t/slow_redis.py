#!/usr/bin/env python3
"""A slow Redis for the icp_gate tests: a proxy in front of a real one.

    python3 t/slow_redis.py --port N --upstream PORT [--delay-ms 500]
                            [--reply-delay-ms 0]

Each client connection gets its own connection to the Redis on 127.0.0.1:
PORT.  The commands go on to Redis one at a time, each --delay-ms after the
one before it on the same connection, or after it came when the connection
was idle; the replies come back at once: a Redis that takes the delay to
carry out each command (a write lands only then), whose queue grows while
the client keeps sending.  With --reply-delay-ms, Redis carries the
commands out at once and each reply comes back that much later instead (a
slow network back, or a client slow to read): what a reply says is older
than its arrival.  A connection that has subscribed gets its messages at
once either way.  Python 3 standard library only; prints nothing to
stdout, errors go to stderr.  Commands must be RESP arrays, as hiredis
sends them.
"""

import argparse
import asyncio
import socket
import sys


def resp_end(buf, pos=0):
    """The end of the RESP value at buf[pos:], or None while incomplete."""
    eol = buf.find(b"\r\n", pos)
    if eol < 0:
        return None
    kind, head = buf[pos:pos + 1], buf[pos + 1:eol]
    end = eol + 2
    if kind in (b"+", b"-", b":"):
        return end
    if kind == b"$":
        size = int(head)
        if size < 0:
            return end
        return end + size + 2 if len(buf) >= end + size + 2 else None
    if kind == b"*":
        count = int(head)
        for _ in range(max(count, 0)):
            end = resp_end(buf, end)
            if end is None:
                return None
        return end
    raise ValueError("not RESP: %r" % buf[pos:pos + 20])


async def pump_commands(reader, queue, delay, gone, subscribed):
    """client -> the queue, each command stamped with its time to go"""
    loop = asyncio.get_running_loop()
    buf = b""
    last = loop.time()
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            buf += data
            while True:
                end = resp_end(buf)
                if end is None:
                    break
                command, buf = buf[:end], buf[end:]
                if b"SUBSCRIBE" in command.upper():
                    subscribed.set()
                last = max(last, loop.time()) + delay
                await queue.put((last, command))
    finally:
        gone.set()
        await queue.put((None, None))


async def release_commands(queue, writer, gone):
    """the queue -> Redis, each command at its time, while the client is
    there: Redis drops what a client that left did not have carried out"""
    loop = asyncio.get_running_loop()
    try:
        while True:
            at, command = await queue.get()
            if command is None:
                break
            await asyncio.sleep(max(at - loop.time(), 0))
            if gone.is_set():
                break
            writer.write(command)
            await writer.drain()
    finally:
        writer.close()


async def pump_replies(reader, writer, reply_delay=0, subscribed=None):
    """Redis -> client, as it comes, or each reply reply_delay late (t/
    tcp_to_unix.py pipes a socket's bytes through it, as they come)"""
    loop = asyncio.get_running_loop()
    late = asyncio.Queue()

    async def deliver():
        while True:
            at, data = await late.get()
            if data is None:
                break
            await asyncio.sleep(max(at - loop.time(), 0))
            writer.write(data)
            await writer.drain()

    sender = asyncio.ensure_future(deliver())
    buf = b""
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if not reply_delay or subscribed is None or subscribed.is_set():
                await late.put((0, buf + data))
                buf = b""
                continue
            buf += data
            while True:
                end = resp_end(buf)
                if end is None:
                    break
                reply, buf = buf[:end], buf[end:]
                await late.put((loop.time() + reply_delay, reply))
    finally:
        await late.put((None, None))
        await sender
        writer.close()


async def serve(upstream, delay, reply_delay):
    async def client(c_reader, c_writer):
        c_writer.get_extra_info("socket").setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            r_reader, r_writer = await asyncio.open_connection("127.0.0.1",
                                                               upstream)
        except OSError:
            c_writer.close()
            return
        queue = asyncio.Queue()
        gone = asyncio.Event()
        subscribed = asyncio.Event()
        await asyncio.gather(pump_commands(c_reader, queue, delay, gone,
                                           subscribed),
                             release_commands(queue, r_writer, gone),
                             pump_replies(r_reader, c_writer, reply_delay,
                                          subscribed),
                             return_exceptions=True)

    return client


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", type=int, required=True)
    parser.add_argument("--delay-ms", type=int, default=500)
    parser.add_argument("--reply-delay-ms", type=int, default=0)
    args = parser.parse_args()

    async def run():
        handler = await serve(args.upstream, args.delay_ms / 1000.0,
                              args.reply_delay_ms / 1000.0)
        server = await asyncio.start_server(handler, "127.0.0.1", args.port)
        async with server:
            await server.serve_forever()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
