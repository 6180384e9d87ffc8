#!/usr/bin/env python3
"""Minimal RTMP publishing client for benchmarking nginx-rtmp-module.

The benchmark uses it to time how long the server takes to accept a
publish (connect -> createStream -> publish -> onStatus) and how many
publish sessions per second it sustains.  It speaks just enough RTMP for
that: the plain (digest-less) handshake, a chunk stream writer and reader,
AMF0, and the three commands.  No media is ever sent; each session ends
as soon as the publish is accepted or refused.

Library use (bench/ on sys.path):

    import rtmp_client
    r = rtmp_client.publish("127.0.0.1", 1935, "rtmp://host:1935/live",
                            "live", "stream1")
    # {"ok": True, "code": "NetStream.Publish.Start", "description": ...,
    #  "connect_s": ..., "publish_s": ..., "total_s": ...}

Timings: connect_s runs from the TCP connect to connect's _result,
publish_s from sending publish (alone, in one write) to its onStatus, and
total_s from the TCP connect to that onStatus.  A refusal (an error
onStatus or _error, the server closing or resetting the connection, or
the timeout running out) is a result with ok=False, not an exception;
timings of phases never reached are None, and total_s then runs to the
refusal.  Failing to open the TCP connection and protocol violations do
raise.

CLI: rtmp_client.py --port P [--addr A] --tcurl URL --app APP --stream S
     [--count N] [--timeout T] [--no-confirm] [--no-quickack]
prints one JSON line per publish on stdout and a rate summary on stderr.
"{i}" in the stream name is replaced by the publish's index.
"""

import argparse
import json
import os
import socket
import struct
import sys
import time

HANDSHAKE_SIZE = 1536
RTMP_VERSION = 3
DEFAULT_CHUNK_SIZE = 128
COMMAND_CSID = 3            # the chunk stream Flash clients use for commands

MSG_SET_CHUNK_SIZE = 1
MSG_ABORT = 2
MSG_AMF0_COMMAND = 20

PUBLISH_START = "NetStream.Publish.Start"


class RtmpError(Exception):
    """The peer broke the protocol, or sent something we cannot decode."""


class Closed(Exception):
    """The server closed or reset the connection."""


# --------------------------------------------------------------------------
# AMF0

AMF_NUMBER = 0x00
AMF_BOOLEAN = 0x01
AMF_STRING = 0x02
AMF_OBJECT = 0x03
AMF_NULL = 0x05
AMF_UNDEFINED = 0x06
AMF_ECMA_ARRAY = 0x08
AMF_OBJECT_END = 0x09
AMF_LONG_STRING = 0x0C


class _Undefined:
    """AMF0 undefined, kept distinct from null (None)."""

    def __repr__(self):
        return "UNDEFINED"

    def __bool__(self):
        return False


UNDEFINED = _Undefined()


class EcmaArray(dict):
    """A dict that encodes as an AMF0 ECMA array instead of an object."""


def amf_encode(value):
    """Encode one Python value as AMF0."""
    if value is None:
        return bytes([AMF_NULL])
    if value is UNDEFINED:
        return bytes([AMF_UNDEFINED])
    # bool before number: bool is a subclass of int
    if isinstance(value, bool):
        return bytes([AMF_BOOLEAN, int(value)])
    if isinstance(value, (int, float)):
        return struct.pack(">Bd", AMF_NUMBER, value)
    if isinstance(value, str):
        raw = value.encode("utf-8")
        if len(raw) > 0xFFFF:
            return struct.pack(">BI", AMF_LONG_STRING, len(raw)) + raw
        return struct.pack(">BH", AMF_STRING, len(raw)) + raw
    if isinstance(value, EcmaArray):
        return (struct.pack(">BI", AMF_ECMA_ARRAY, len(value))
                + _amf_encode_props(value))
    if isinstance(value, dict):
        return bytes([AMF_OBJECT]) + _amf_encode_props(value)
    raise TypeError(f"cannot encode {type(value).__name__} as AMF0")


def _amf_encode_props(props):
    out = bytearray()
    for key, val in props.items():
        raw = str(key).encode("utf-8")
        out += struct.pack(">H", len(raw)) + raw + amf_encode(val)
    return bytes(out) + b"\x00\x00" + bytes([AMF_OBJECT_END])


def amf_encode_all(values):
    return b"".join(amf_encode(v) for v in values)


class _AmfReader:
    """Cursor over an AMF0 payload; raises RtmpError on truncation."""

    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise RtmpError(f"AMF0 data truncated at offset {self.pos}")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def utf8(self, length):
        return self.take(length).decode("utf-8", errors="replace")

    def value(self):
        marker = self.unpack(">B")
        decoder = _AMF_DECODERS.get(marker)
        if decoder is None:
            raise RtmpError(f"unsupported AMF0 type marker 0x{marker:02x} "
                            f"at offset {self.pos - 1}")
        return decoder(self)

    def props(self, into):
        while True:
            key = self.utf8(self.unpack(">H"))
            # an empty key followed by the end marker closes the object
            if key == "" and self.data[self.pos:self.pos + 1] == b"\x09":
                self.pos += 1
                return into
            into[key] = self.value()


def _amf_object_end(reader):
    raise RtmpError(f"stray AMF0 object end at offset {reader.pos - 1}")


def _amf_ecma_array(reader):
    reader.unpack(">I")       # the count is only a hint; the end marker rules
    return reader.props(EcmaArray())


_AMF_DECODERS = {
    AMF_NUMBER: lambda r: r.unpack(">d"),
    AMF_BOOLEAN: lambda r: r.unpack(">B") != 0,
    AMF_STRING: lambda r: r.utf8(r.unpack(">H")),
    AMF_LONG_STRING: lambda r: r.utf8(r.unpack(">I")),
    AMF_OBJECT: lambda r: r.props({}),
    AMF_NULL: lambda r: None,
    AMF_UNDEFINED: lambda r: UNDEFINED,
    AMF_ECMA_ARRAY: _amf_ecma_array,
    AMF_OBJECT_END: _amf_object_end,
}


def amf_decode_all(data):
    """Decode every AMF0 value in a payload into a list."""
    reader = _AmfReader(data)
    values = []
    while reader.pos < len(data):
        values.append(reader.value())
    return values


# --------------------------------------------------------------------------
# Chunk stream writer

def _basic_header(fmt, csid):
    if 2 <= csid <= 63:
        return bytes([fmt << 6 | csid])
    if 64 <= csid <= 319:
        return bytes([fmt << 6, csid - 64])
    if 320 <= csid <= 65599:
        return bytes([fmt << 6 | 1]) + struct.pack("<H", csid - 64)
    raise ValueError(f"chunk stream id {csid} out of range")


def encode_message(csid, msg_type, msid, payload, chunk_size, timestamp=0):
    """Split one message into chunks: a fmt 0 header, then fmt 3 ones."""
    ext = timestamp >= 0xFFFFFF
    ts_field = 0xFFFFFF if ext else timestamp
    ext_bytes = struct.pack(">I", timestamp) if ext else b""
    out = bytearray(_basic_header(0, csid))
    out += ts_field.to_bytes(3, "big") + len(payload).to_bytes(3, "big")
    out += bytes([msg_type]) + struct.pack("<I", msid) + ext_bytes
    out += payload[:chunk_size]
    for pos in range(chunk_size, len(payload), chunk_size):
        # continuations repeat the extended timestamp, as nginx-rtmp expects
        out += _basic_header(3, csid) + ext_bytes
        out += payload[pos:pos + chunk_size]
    return bytes(out)


# --------------------------------------------------------------------------
# Chunk stream reader

class _ChunkStream:
    """What the last header on one chunk stream id left behind."""

    __slots__ = ("timestamp", "delta", "length", "msg_type", "msid",
                 "ext", "buf")

    def __init__(self):
        self.timestamp = self.delta = self.length = 0
        self.msg_type = self.msid = 0
        self.ext = False
        self.buf = bytearray()


class Connection:
    """A socket with a deadline, a read buffer and a chunk stream reader."""

    def __init__(self, sock, deadline, quickack=True):
        self.sock = sock
        self.deadline = deadline
        self.quickack = quickack
        self.rbuf = bytearray()
        self.in_chunk_size = DEFAULT_CHUNK_SIZE
        self.streams = {}

    def _arm_timeout(self):
        remaining = self.deadline - time.perf_counter()
        if remaining <= 0:
            raise TimeoutError("deadline passed")
        self.sock.settimeout(remaining)

    def send(self, data):
        self._arm_timeout()
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise Closed("connection reset by server") from exc

    def read(self, n):
        while len(self.rbuf) < n:
            self._arm_timeout()
            if self.quickack:
                # Linux clears this after each ACK, so it is set per recv
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK,
                                     1)
            try:
                got = self.sock.recv(65536)
            except ConnectionResetError as exc:
                raise Closed("connection reset by server") from exc
            if not got:
                raise Closed("connection closed by server")
            self.rbuf += got
        data = bytes(self.rbuf[:n])
        del self.rbuf[:n]
        return data

    def _read_uint(self, n, order="big"):
        return int.from_bytes(self.read(n), order)

    def _read_basic_header(self):
        first = self._read_uint(1)
        fmt, csid = first >> 6, first & 0x3F
        if csid == 0:
            csid = 64 + self._read_uint(1)
        elif csid == 1:
            csid = 64 + self._read_uint(2, "little")
        return fmt, csid

    def _stream_for(self, fmt, csid):
        st = self.streams.get(csid)
        if st is None:
            if fmt != 0:
                raise RtmpError(f"chunk stream {csid} opened with fmt {fmt}")
            st = self.streams[csid] = _ChunkStream()
        if fmt != 3 and st.buf:
            raise RtmpError(f"new header fmt {fmt} on chunk stream {csid} "
                            f"with a message half read")
        return st

    def _read_message_header(self, fmt, st):
        ts_field = None
        if fmt <= 2:
            ts_field = self._read_uint(3)
        if fmt <= 1:
            st.length = self._read_uint(3)
            st.msg_type = self._read_uint(1)
        if fmt == 0:
            st.msid = self._read_uint(4, "little")
        # fmt 3 chunks inherit whether an extended timestamp follows
        if ts_field is not None:
            st.ext = ts_field == 0xFFFFFF
        if st.ext:
            ts_field = self._read_uint(4)
        self._apply_timestamp(fmt, st, ts_field)

    @staticmethod
    def _apply_timestamp(fmt, st, ts_field):
        if fmt == 0:
            # a fmt 3 message after fmt 0 reuses its timestamp as the delta
            st.timestamp = st.delta = ts_field
        elif fmt in (1, 2):
            st.delta = ts_field
            st.timestamp = (st.timestamp + st.delta) & 0xFFFFFFFF
        elif not st.buf:
            st.timestamp = (st.timestamp + st.delta) & 0xFFFFFFFF

    def _read_chunk(self):
        """Read one chunk; return (msg_type, msid, payload) once complete."""
        fmt, csid = self._read_basic_header()
        st = self._stream_for(fmt, csid)
        self._read_message_header(fmt, st)
        want = min(self.in_chunk_size, st.length - len(st.buf))
        st.buf += self.read(want)
        if len(st.buf) < st.length:
            return None
        payload, st.buf = bytes(st.buf), bytearray()
        return st.msg_type, st.msid, payload

    def _control(self, msg_type, payload):
        """Apply chunk-level control messages; True if consumed."""
        if msg_type == MSG_SET_CHUNK_SIZE:
            size = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
            if size < 1:
                raise RtmpError("server set a chunk size of 0")
            self.in_chunk_size = size
            return True
        if msg_type == MSG_ABORT:
            csid = struct.unpack(">I", payload[:4])[0]
            if csid in self.streams:
                self.streams[csid].buf = bytearray()
            return True
        return False

    def read_message(self):
        """Return the next whole message as (msg_type, msid, payload)."""
        while True:
            msg = self._read_chunk()
            if msg is not None and not self._control(msg[0], msg[2]):
                return msg


# --------------------------------------------------------------------------
# Session

def _handshake(conn):
    # zero version bytes in C1 select nginx-rtmp's old, digest-less handshake
    c1 = (struct.pack(">I", int(time.monotonic() * 1000) & 0xFFFFFFFF)
          + bytes(4) + os.urandom(HANDSHAKE_SIZE - 8))
    conn.send(bytes([RTMP_VERSION]) + c1)
    s0 = conn.read(1)[0]
    if s0 != RTMP_VERSION:
        raise RtmpError(f"server speaks RTMP version {s0}")
    s1 = conn.read(HANDSHAKE_SIZE)
    conn.read(HANDSHAKE_SIZE)           # S2 echoes C1; nothing to check
    conn.send(s1)                       # C2


def _command(name, txn, *args, msid=0):
    payload = amf_encode_all((name, float(txn)) + args)
    return encode_message(COMMAND_CSID, MSG_AMF0_COMMAND, msid, payload,
                          DEFAULT_CHUNK_SIZE)


def _next_command(conn):
    """Skip non-command messages; return a command's decoded values."""
    while True:
        msg_type, _msid, payload = conn.read_message()
        if msg_type != MSG_AMF0_COMMAND:
            continue        # window ack size, peer bandwidth, user control...
        values = amf_decode_all(payload)
        if len(values) >= 2 and isinstance(values[0], str):
            return values


def _await_reply(conn, txn):
    """Wait for the _result or _error of one transaction."""
    while True:
        values = _next_command(conn)
        if values[0] in ("_result", "_error") and values[1] == txn:
            return values


def _await_status(conn):
    """Wait for the onStatus (or _error) that answers a publish."""
    while True:
        values = _next_command(conn)
        if values[0] in ("onStatus", "_error"):
            return values


def _info(values):
    """The info object of a reply: the first object after the name/txn."""
    for value in values[2:]:
        if isinstance(value, dict):
            return value
    return {}


def _refuse(result, values):
    info = _info(values)
    result["code"] = str(info.get("code", values[0]))
    result["description"] = str(info.get("description", ""))


def _connect(conn, tcurl, app, result, t0):
    conn.send(_command("connect", 1, {
        "app": app,
        "flashVer": "FMLE/3.0",
        "tcUrl": tcurl,
        "type": "nonprivate",
    }))
    reply = _await_reply(conn, 1)
    if reply[0] != "_result":
        _refuse(result, reply)
        return False
    result["connect_s"] = time.perf_counter() - t0
    return True


def _create_stream(conn, result):
    conn.send(_command("createStream", 2, None))
    reply = _await_reply(conn, 2)
    if reply[0] != "_result":
        _refuse(result, reply)
        return None
    ids = [v for v in reply[2:] if isinstance(v, float)]
    if not ids:
        raise RtmpError(f"createStream _result without a stream id: {reply}")
    return int(ids[0])


def _publish(conn, msid, stream, result, t0):
    packet = _command("publish", 0, None, stream, "live", msid=msid)
    t_sent = time.perf_counter()
    conn.send(packet)
    reply = _await_status(conn)
    t_status = time.perf_counter()
    result["publish_s"] = t_status - t_sent
    result["total_s"] = t_status - t0
    _refuse(result, reply)
    result["ok"] = reply[0] == "onStatus" and result["code"] == PUBLISH_START


def _confirm(conn, result):
    """Make sure the server did not drop us right after accepting.

    nginx-rtmp runs live's publish handler before the access module's, so
    "deny publish" sends NetStream.Publish.Start and then closes.  The close
    happens in the same event loop pass, before nginx reads anything else,
    so any command it answers tells the two apart; createStream is the
    cheapest one it always answers.
    """
    try:
        conn.send(_command("createStream", 3, None))
        _await_reply(conn, 3)
    except Closed as exc:
        result["ok"], result["code"] = False, "closed"
        result["description"] = f"{exc} after {PUBLISH_START}"


def _session(conn, tcurl, app, stream, result, t0, confirm):
    _handshake(conn)
    if not _connect(conn, tcurl, app, result, t0):
        return
    msid = _create_stream(conn, result)
    if msid is None:
        return
    _publish(conn, msid, stream, result, t0)
    if result["ok"] and confirm:
        _confirm(conn, result)


def publish(addr, port, tcurl, app, stream, timeout=5.0, *,
            confirm=True, quickack=True):
    """Run one connect/createStream/publish session; see the module doc.

    confirm: after NetStream.Publish.Start, check with one more round trip
    that the server kept the connection (see _confirm); not timed.
    quickack: ACK every server segment at once.  nginx-rtmp writes each
    reply message separately without TCP_NODELAY, so with delayed ACKs
    every connect stalls ~40 ms on Nagle; off measures what a plain client
    sees, on measures the server.
    """
    result, session = publish_held(addr, port, tcurl, app, stream, timeout,
                                   confirm=confirm, quickack=quickack)
    session.close()
    return result


def publish_held(addr, port, tcurl, app, stream, timeout=5.0, *,
                 confirm=True, quickack=True):
    """publish(), the session kept open: (result, Held).  Held.dropped()
    waits for the server to end an accepted publish; close() it in any
    case."""
    result = {"ok": False, "code": "", "description": "",
              "connect_s": None, "publish_s": None, "total_s": None}
    t0 = time.perf_counter()
    sock = socket.create_connection((addr, port), timeout=timeout)
    # small command writes must not wait on Nagle for the previous ACK
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = Connection(sock, t0 + timeout, quickack)
    try:
        _session(conn, tcurl, app, stream, result, t0, confirm)
    except Closed as exc:
        result["ok"], result["code"], result["description"] = (
            False, "closed", str(exc))
    except TimeoutError:
        result["ok"], result["code"] = False, "timeout"
        result["description"] = f"no answer within {timeout}s"
    except BaseException:
        sock.close()
        raise
    if result["total_s"] is None:
        result["total_s"] = time.perf_counter() - t0
    return result, Held(conn)


class Held:
    """A publish session left open, sending nothing."""

    def __init__(self, conn):
        self.conn = conn

    def dropped(self, timeout):
        """Wait up to timeout s for the server to end the session: the
        time.perf_counter() of its first onStatus or _error, or of the
        close, and what it said ("closed" for a close); (None, "timeout")
        when it kept the session."""
        self.conn.deadline = time.perf_counter() + timeout
        try:
            values = _await_status(self.conn)
            at = time.perf_counter()
            info = _info(values)
            return at, "%s %s" % (info.get("code", values[0]),
                                  info.get("description", ""))
        except Closed:
            return time.perf_counter(), "closed"
        except TimeoutError:
            return None, "timeout"

    def close(self):
        self.conn.sock.close()


# --------------------------------------------------------------------------
# CLI

def _parse_args(argv):
    p = argparse.ArgumentParser(description="Publish to an RTMP server "
                                "and time it; one JSON line per publish.")
    p.add_argument("--addr", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tcurl", required=True)
    p.add_argument("--app", required=True)
    p.add_argument("--stream", required=True,
                   help='stream name; "{i}" becomes the publish index')
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--no-confirm", dest="confirm", action="store_false",
                   help="trust NetStream.Publish.Start without a check")
    p.add_argument("--no-quickack", dest="quickack", action="store_false",
                   help="leave delayed ACKs on, like ordinary clients")
    return p.parse_args(argv)


def main(argv=None):
    args = _parse_args(argv)
    ok = 0
    start = time.perf_counter()
    for i in range(args.count):
        name = args.stream.replace("{i}", str(i))
        r = publish(args.addr, args.port, args.tcurl, args.app, name,
                    args.timeout, confirm=args.confirm,
                    quickack=args.quickack)
        ok += r["ok"]
        print(json.dumps(r), flush=True)
    elapsed = time.perf_counter() - start
    print(f"{args.count} publishes ({ok} ok) in {elapsed:.3f}s: "
          f"{args.count / elapsed:.1f}/s", file=sys.stderr)
    return 0 if ok == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
