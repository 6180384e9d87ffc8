#!/usr/bin/env python3
"""A Redis whose replies come late, on demand: a proxy in front of a real one.

    python3 t/history/redis_proxy.py --port N --upstream PORT

Each client connection gets its own connection to the Redis on 127.0.0.1:
PORT, and the bytes go both ways unchanged.  Redis's replies reach the
client at once, or late while a line "late MIN_MS MAX_MS" read on stdin
says so: each chunk is held a random time in that range, never overtaking
the chunk before it on its connection ("late 0 0" ends it).  Commands are
never held, so Redis carries them out when they are sent and the client
hears of it late; the pushes of a connection that subscribed (the
invalidation channel) are never held either, so that a node hears of a
second change while its read of the first is still on its way.  A client
whose Redis cannot be reached, or goes away (a restart, CLIENT KILL), is
closed, as Redis would close it.  Python 3 standard library only.
"""

import argparse
import asyncio
import random
import sys
import threading

# (min, max) seconds a chunk from Redis is held; replaced whole by stdin
lateness = (0.0, 0.0)


def read_orders():
    """stdin -> lateness, in a thread of its own: asyncio has no portable
    reader for a pipe"""
    global lateness
    for line in sys.stdin:
        words = line.split()
        if len(words) == 3 and words[0] == "late":
            low, high = float(words[1]) / 1000, float(words[2]) / 1000
            lateness = (low, max(low, high))


async def relay(reader, writer, delay_of):
    """reader -> writer, each chunk delay_of(chunk) s after it came, never
    overtaking the chunk before it"""
    loop = asyncio.get_running_loop()
    held = asyncio.Queue()

    async def deliver():
        try:
            while True:
                due, data = await held.get()
                if data is None:
                    break
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    delivering = asyncio.ensure_future(deliver())
    last_due = 0.0
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            last_due = max(last_due, loop.time() + delay_of(data))
            held.put_nowait((last_due, data))
    except (ConnectionError, OSError):
        pass
    held.put_nowait((0, None))
    await delivering


async def serve_client(client_reader, client_writer, upstream):
    try:
        redis_reader, redis_writer = await asyncio.open_connection(
            "127.0.0.1", upstream)
    except OSError:
        client_writer.close()
        return
    subscribed = []

    def command(data):
        if b"SUBSCRIBE" in data.upper():
            subscribed.append(True)
        return 0

    def reply(data):
        low, high = (0, 0) if subscribed else lateness
        return random.uniform(low, high) if high else 0

    up = asyncio.ensure_future(relay(client_reader, redis_writer, command))
    down = asyncio.ensure_future(relay(redis_reader, client_writer, reply))
    await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
    # either side gone: the other goes too
    redis_writer.close()
    client_writer.close()
    await asyncio.gather(up, down, return_exceptions=True)


async def main_async(args):
    server = await asyncio.start_server(
        lambda r, w: serve_client(r, w, args.upstream), "127.0.0.1", args.port)
    async with server:
        await server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description="a Redis that answers late")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", type=int, required=True)
    args = parser.parse_args()
    threading.Thread(target=read_orders, daemon=True).start()
    try:
        asyncio.run(main_async(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
