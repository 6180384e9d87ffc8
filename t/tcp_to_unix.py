#!/usr/bin/env python3
"""A TCP listener in front of a unix socket, for clients (ffmpeg's rtmp)
that cannot connect to one: what stunnel or haproxy do in front of an
nginx "listen unix:".

    python3 t/tcp_to_unix.py --port N --path /path/to.sock

Python 3 standard library only; prints nothing to stdout.
"""

import argparse
import asyncio

from slow_redis import pump_replies


async def pipe(reader, writer):
    """one way, as it comes; a side that goes ends it"""
    try:
        await pump_replies(reader, writer)
    except (ConnectionError, OSError):
        pass


async def serve(port, path):
    async def client(c_reader, c_writer):
        try:
            u_reader, u_writer = await asyncio.open_unix_connection(path)
        except OSError:
            c_writer.close()
            return
        await asyncio.gather(pipe(c_reader, u_writer), pipe(u_reader, c_writer))

    server = await asyncio.start_server(client, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.path))


if __name__ == "__main__":
    main()
