# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""The HTTP/3 side of tests/test_udp_h3.c (aioquic's HTTP/3 API).

  h3_load.py --setup DIR
      writes what the server instances share into DIR: a self-signed
      certificate for localhost (cert.pem, key.pem), the stateless reset
      key (host.key: every instance mints the same reset tokens, as a
      fleet behind one address does) and the file to GET (html/f.txt).

  h3_load.py --port P --file PATH [--conns N] [--gap S] [--timeout S]
             [--secs S] [--max-requests N] [--per-conn N] [--inst-path P]
      the load: N long-lived connections to 127.0.0.1:P, each issuing
      GET /f.txt one after the other, --gap seconds apart, and checking
      every answer (status 200, the body equal to PATH's bytes). With
      --per-conn N a connection is a client's visit instead: after N
      requests, or at its first failed one, the client closes it and
      opens a new one. A
      connection the server closes gracefully (HTTP/3 GOAWAY, then
      CONNECTION_CLOSE) is replaced by a new one; a request the GOAWAY
      says the server did not process is sent again on it (counted as
      retried, not failed, as HTTP/3 allows). Every other end of a request
      is a failure, counted by cause: timeout (no answer within
      --timeout), handshake (a new connection that does not come up),
      stream_reset, stateless_reset (a datagram ending in one of the
      connection's reset tokens), closed (the connection ended under the
      request), status, body. Prints "load" once every connection is up.
      Commands on stdin, one a line:
        probe N   new connections (at most 40, one at a time, 0.5 s each) until one
                  is answered by instance N (its x-inst header, or with
                  --inst-path the body of that path, "N"); prints
                  "answered N TRIES" or "unanswered N TRIES"
        settle    waits until every load connection open (or in its
                  handshake) at the command has closed (--per-conn: each
                  ends by itself), at most (--per-conn + 2) times
                  (--timeout + --gap) seconds; prints "settled K" or
                  "unsettled K" (K: the connections waited for)
        stop      no new request; the connections close; one JSON line
      Bounded: no request starts after --secs or past --max-requests.
      The defaults (8 connections, 0.05 s, 2 s, 90 s, 20,000) are the test's.
"""
import argparse
import asyncio
import contextlib
import datetime
import json
import os
import ssl
import sys
import time

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.buffer import Buffer
from aioquic.h3.connection import H3_ALPN, FrameType, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, StreamDataReceived, StreamReset

PATH = b"/f.txt"
PROBE_TRIES = 40
PROBE_TIMEOUT = 0.5


def setup(d):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .sign(key, hashes.SHA256()))
    with open(os.path.join(d, "key.pem"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(os.path.join(d, "cert.pem"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(os.path.join(d, "host.key"), "wb") as f:
        f.write(os.urandom(32))
    os.makedirs(os.path.join(d, "html"), exist_ok=True)
    # 6,000 bytes: several datagrams each way, every byte checked
    with open(os.path.join(d, "html", "f.txt"), "wb") as f:
        f.write(bytes((i * 7 + i // 251) % 256 for i in range(6000)))


class Failed(Exception):
    def __init__(self, cause):
        super().__init__(cause)
        self.cause = cause


class Rejected(Exception):
    """The server's GOAWAY says it did not process the request."""


class H3(H3Connection):
    """H3Connection that keeps the id of the peer's GOAWAY (aioquic drops it)."""

    goaway = None

    def _handle_control_frame(self, frame_type, frame_data):
        if frame_type == FrameType.GOAWAY:
            self.goaway = Buffer(data=frame_data).pull_uint_var()
        super()._handle_control_frame(frame_type, frame_data)


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.h3 = H3(self._quic)
        self.pending = {}  # stream id -> [future, headers, body chunks]
        self.ended = None  # why requests can no longer be made here
        self.stateless_resets = 0

    def usable(self):
        return self.ended is None and self.h3.goaway is None

    def _tokens(self):
        q = self._quic
        return {c.stateless_reset_token for c in [q._peer_cid] + list(q._peer_cid_available)
                if c.stateless_reset_token}

    def _end(self, cause):
        if self.ended is None:
            self.ended = cause
        for sid, p in list(self.pending.items()):
            if not p[0].done():
                g = self.h3.goaway
                p[0].set_exception(Rejected() if g is not None and sid >= g
                                   else Failed(cause))
        self.pending.clear()

    def datagram_received(self, data, addr):
        # a stateless reset: a short header datagram ending in a token the
        # server gave for this connection (aioquic does not look)
        if len(data) >= 21 and not data[0] & 0x80 and data[-16:] in self._tokens():
            self.stateless_resets += 1
            self._end("stateless_reset")
        super().datagram_received(data, addr)

    def quic_event_received(self, event):
        if isinstance(event, ConnectionTerminated):
            self._end("closed")
            super().quic_event_received(event)
            return
        if isinstance(event, StreamReset) and event.stream_id in self.pending:
            p = self.pending.pop(event.stream_id)
            if not p[0].done():
                g = self.h3.goaway
                p[0].set_exception(Rejected() if g is not None and event.stream_id >= g
                                   else Failed("stream_reset"))
        for ev in self.h3.handle_event(event):
            p = self.pending.get(ev.stream_id)
            if p is None:
                continue
            if isinstance(ev, HeadersReceived):
                p[1] = dict(ev.headers)
            elif isinstance(ev, DataReceived):
                p[2].append(ev.data)
            if ev.stream_ended:
                del self.pending[ev.stream_id]
                if not p[0].done():
                    p[0].set_result((p[1], b"".join(p[2])))
        # the base class would give every stream an asyncio stream pair
        if not isinstance(event, (StreamDataReceived, StreamReset)):
            super().quic_event_received(event)

    async def get(self, timeout, path=PATH):
        sid = self._quic.get_next_available_stream_id()
        fut = asyncio.get_running_loop().create_future()
        self.pending[sid] = [fut, {}, []]
        self.h3.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"https"),
                                   (b":authority", b"localhost"), (b":path", path)],
                             end_stream=True)
        self.transmit()
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            self.pending.pop(sid, None)
            raise Failed("timeout") from None


class Load:
    def __init__(self, a):
        self.a = a
        with open(a.file, "rb") as f:
            self.body = f.read()
        self.cfg = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN,
                                     verify_mode=ssl.CERT_NONE, server_name="localhost",
                                     idle_timeout=30.0)
        self.stop = False
        self.live = set()  # a token per load connection open or opening
        self.end = time.monotonic() + a.secs
        self.r = dict(requests=0, ok=0, failed=0, retried=0, connections=0, goaways=0,
                      stateless_resets=0, failed_by={}, insts={})

    def fail(self, cause):
        self.r["failed"] += 1
        self.r["failed_by"][cause] = self.r["failed_by"].get(cause, 0) + 1

    async def open(self, stack, timeout=None):
        async def up():
            return await stack.enter_async_context(
                connect("127.0.0.1", self.a.port, configuration=self.cfg,
                        create_protocol=Client, wait_connected=True))
        try:
            c = await asyncio.wait_for(up(), timeout or self.a.timeout)
        except Exception:  # any way a handshake does not complete
            return None
        self.r["connections"] += 1
        return c

    async def close(self, c, stack):
        self.r["stateless_resets"] += c.stateless_resets
        if c.h3.goaway is not None:
            self.r["goaways"] += 1
        with contextlib.suppress(Exception):
            await asyncio.wait_for(stack.aclose(), 1.0)

    def check(self, headers, body):
        if headers.get(b":status") != b"200":
            return "status"
        if body != self.body:
            return "body"
        i = headers.get(b"x-inst", b"?").decode()
        self.r["insts"][i] = self.r["insts"].get(i, 0) + 1
        return None

    def more(self):
        return not self.stop and time.monotonic() < self.end and \
            self.r["requests"] < self.a.max_requests

    async def visit(self, stack):
        """A load connection, and its token in self.live from before its
        handshake (which may reach an instance that settle waits for) until
        it is closed; (None, None) when it does not come up."""
        tok = object()
        self.live.add(tok)
        c = await self.open(stack)
        if c is None:
            self.live.discard(tok)
            return None, None
        return c, tok

    async def conn_loop(self, up):
        c, tok, stack, first, n = None, None, None, True, 0
        while self.more():
            if c is None or not c.usable():
                if c is not None:
                    await self.close(c, stack)
                    self.live.discard(tok)
                stack = contextlib.AsyncExitStack()
                c, tok = await self.visit(stack)
                n = 0
                if first:
                    up.release()
                    first = False
                if c is None:
                    self.r["requests"] += 1
                    self.fail("handshake")
                    await asyncio.sleep(self.a.gap)
                    continue
            self.r["requests"] += 1
            for _ in range(3):  # the first try, then at most two retries
                try:
                    cause = self.check(*await c.get(self.a.timeout))
                except Rejected:
                    self.r["retried"] += 1
                    await self.close(c, stack)
                    self.live.discard(tok)
                    stack = contextlib.AsyncExitStack()
                    c, tok = await self.visit(stack)
                    n = 0
                    if c is None:
                        cause = "handshake"
                        break
                    continue
                except Failed as e:
                    cause = e.cause
                break
            else:
                cause = "rejected"
            if cause:
                self.fail(cause)
            else:
                self.r["ok"] += 1
            n += 1
            if self.a.per_conn and c is not None and c.ended is None and \
                    (cause or n >= self.a.per_conn):
                c.ended = "visit"  # the client's own close, at the next turn
            await asyncio.sleep(self.a.gap)
        if c is not None:
            await self.close(c, stack)
            self.live.discard(tok)

    async def probe(self, inst):
        for tries in range(1, PROBE_TRIES + 1):
            stack = contextlib.AsyncExitStack()
            # a handshake that does not come up (without sockmig, one that
            # met another instance): the next try sooner than the load's
            c = await self.open(stack, PROBE_TIMEOUT)
            if c is None:
                print("probe %s: no handshake" % inst, file=sys.stderr)
                continue
            try:
                if self.a.inst_path:
                    h, b = await c.get(PROBE_TIMEOUT, self.a.inst_path.encode())
                    ok = h.get(b":status") == b"200" and b.strip() == inst.encode()
                else:
                    h, b = await c.get(PROBE_TIMEOUT)
                    ok = h.get(b"x-inst") == inst.encode() and b == self.body
            except (Failed, Rejected) as e:
                print("probe %s: %r" % (inst, e), file=sys.stderr)
                ok = False
            self.r["connections"] -= 1  # a probe's is not the load's
            await self.close(c, stack)
            if ok:
                return "answered %s %d" % (inst, tries)
        return "unanswered %s %d" % (inst, PROBE_TRIES)

    async def settle(self):
        old = set(self.live)
        # a visit's longest: its handshake, then requests until the first failure
        end = time.monotonic() + ((self.a.per_conn or 1) + 2) * (self.a.timeout + self.a.gap)
        while old & self.live and time.monotonic() < end:
            await asyncio.sleep(0.01)
        return "%s %d" % ("unsettled" if old & self.live else "settled", len(old))

    async def commands(self):
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            w = line.split()
            if not w or w[0] == "stop":
                self.stop = True
                return
            if w[0] == "probe" and len(w) == 2:
                print(await self.probe(w[1]), flush=True)
            elif w[0] == "settle" and len(w) == 1:
                print(await self.settle(), flush=True)
            else:
                print("Error: unknown command %r" % line.strip(), flush=True)

    async def run(self):
        up = asyncio.Semaphore(0)
        tasks = [asyncio.ensure_future(self.conn_loop(up)) for _ in range(self.a.conns)]
        for _ in range(self.a.conns):
            await up.acquire()
        print("load", flush=True)
        cmd = asyncio.ensure_future(self.commands())
        await asyncio.gather(*tasks)
        self.stop = True
        if not cmd.done():
            cmd.cancel()
        return self.r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--setup")
    ap.add_argument("--port", type=int)
    ap.add_argument("--file")
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--gap", type=float, default=0.05)
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--secs", type=float, default=90.0)
    ap.add_argument("--max-requests", type=int, default=20000)
    ap.add_argument("--per-conn", type=int, default=0)
    ap.add_argument("--inst-path")
    a = ap.parse_args()
    if a.setup:
        setup(a.setup)
        return
    if a.port is None or not 0 < a.port < 65536 or not a.file or not 0 < a.conns <= 256 or \
            a.gap < 0 or a.timeout <= 0 or not 0 < a.secs <= 600 or \
            not 0 < a.max_requests <= 1000000 or not 0 <= a.per_conn <= 1000000 or \
            (a.inst_path is not None and not a.inst_path.startswith("/")):
        print("Error: bad arguments (--port P --file PATH, see the top of h3_load.py)",
              file=sys.stderr)
        sys.exit(1)
    r = asyncio.run(Load(a).run())
    print(json.dumps(r), flush=True)
    # the stdin reader thread may still wait for a line
    os._exit(0)


if __name__ == "__main__":
    main()
