# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""A QUIC server of the tests (tests/test_udp_quic_real.c): aioquic's
sans-I/O QuicConnection over our own UDP socket, bound with SO_REUSEPORT
to 127.0.0.1:PORT and registered in the port's UDP group through
libsockmig (ctypes) with the generation given, unless --plain.

Each stream gets "gen=G\\n" back when its request ends. It prints
"ready gen=G" when its socket takes datagrams and, at exit, one JSON line
of counts. SIGTERM: it keeps serving the connections it has, for at most
--grace seconds, then closes its socket and exits 0.

Runs with the python3 and aioquic of scripts/quic-root's tree:
  quic_server.py --port P --gen G [--plain] [--lib PATH] [--hold]
                 [--grace S] [--max-secs S]
--hold: prepare (imports, certificate), print "held gen=G", then wait for
a line on stdin before binding, so that a flip does not wait for python
to start.
"""
import argparse
import ctypes
import datetime
import json
import os
import select
import signal
import socket
import sys
import time

from aioquic.buffer import Buffer
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import QuicPacketType, pull_quic_header
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ALPN = "sockmig-test"
CID_LEN = 8


class GroupOpts(ctypes.Structure):
    # struct sockmig_udp_group_opts (include/sockmig/udp.h)
    _fields_ = [("sz", ctypes.c_size_t), ("pin_root", ctypes.c_char_p),
                ("mode", ctypes.c_int), ("idle_timeout_ms", ctypes.c_uint32),
                ("flow_max", ctypes.c_uint32)]


class MemberOpts(ctypes.Structure):
    # struct sockmig_udp_member_opts
    _fields_ = [("sz", ctypes.c_size_t), ("generation", ctypes.c_uint32),
                ("pid", ctypes.c_uint32)]


class SockaddrIn(ctypes.Structure):
    _fields_ = [("family", ctypes.c_ushort), ("port", ctypes.c_uint16),
                ("addr", ctypes.c_uint8 * 4), ("zero", ctypes.c_uint8 * 8)]


def fail(msg):
    print("Error: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


def register(lib_path, sock, port, gen):
    """Join the port's UDP group as an active member of generation gen."""
    try:
        lib = ctypes.CDLL(lib_path, use_errno=True)
    except OSError as e:
        fail("cannot load %s: %s" % (lib_path, e))
    lib.sockmig_udp_group_open.restype = ctypes.c_void_p
    lib.sockmig_udp_group_open.argtypes = [ctypes.c_void_p, ctypes.c_uint32,
                                           ctypes.POINTER(GroupOpts)]
    lib.sockmig_udp_member_add.argtypes = [ctypes.c_void_p, ctypes.c_int,
                                           ctypes.POINTER(MemberOpts)]
    lib.sockmig_last_error.restype = ctypes.c_char_p
    sa = SockaddrIn(socket.AF_INET, socket.htons(port), (127, 0, 0, 1))
    go = GroupOpts(ctypes.sizeof(GroupOpts))
    g = lib.sockmig_udp_group_open(ctypes.byref(sa), ctypes.sizeof(sa), ctypes.byref(go))
    if not g:
        fail("sockmig_udp_group_open: %s" % lib.sockmig_last_error().decode())
    mo = MemberOpts(ctypes.sizeof(MemberOpts), gen, os.getpid())
    rc = lib.sockmig_udp_member_add(g, sock.fileno(), ctypes.byref(mo))
    if rc != 0:
        fail("sockmig_udp_member_add: %s" % lib.sockmig_last_error().decode())
    return lib, g  # kept for the process's life


def make_config():
    """A self-signed P-256 certificate made now (nothing on disk)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    cfg = QuicConfiguration(is_client=False, alpn_protocols=[ALPN],
                            connection_id_length=CID_LEN, idle_timeout=10.0)
    cfg.certificate = cert
    cfg.private_key = key
    return cfg


def has_handshake(data):
    """Whether a datagram holds a Handshake packet (coalesced or not)."""
    buf = Buffer(data=data)
    while not buf.eof():
        start = buf.tell()
        try:
            hdr = pull_quic_header(buf, host_cid_length=CID_LEN)
        except ValueError:
            return False
        if hdr.packet_type == QuicPacketType.HANDSHAKE:
            return True
        if hdr.packet_type == QuicPacketType.ONE_RTT:
            return False
        buf.seek(start + hdr.packet_length)
    return False


class Server:
    def __init__(self, sock, cfg, gen):
        self.sock, self.cfg, self.gen = sock, cfg, gen
        self.by_cid = {}  # connection ID -> QuicConnection
        # id(conn) -> [conn, datagrams before its first answer, answered,
        # handshake done, cids]
        self.conns = {}
        self.n = dict(connections=0, handshakes=0, requests=0, datagrams=0,
                      strays=0, hello_dgrams_min=0, hello_dgrams_max=0)

    def receive(self, data, addr, now):
        self.n["datagrams"] += 1
        try:
            hdr = pull_quic_header(Buffer(data=data), host_cid_length=CID_LEN)
        except ValueError:
            self.n["strays"] += 1
            return
        conn = self.by_cid.get(hdr.destination_cid)
        if conn is None:
            if hdr.packet_type != QuicPacketType.INITIAL or len(data) < 1200:
                # a datagram of a connection this process does not know
                self.n["strays"] += 1
                return
            conn = QuicConnection(configuration=self.cfg,
                                  original_destination_connection_id=hdr.destination_cid)
            self.n["connections"] += 1
            st = [conn, 0, False, False, {hdr.destination_cid, conn.host_cid}]
            self.conns[id(conn)] = st
            self.by_cid[hdr.destination_cid] = conn
            self.by_cid[conn.host_cid] = conn
        st = self.conns[id(conn)]
        if not st[2]:
            st[1] += 1
        try:
            conn.receive_datagram(data, addr, now=now)
        except AssertionError:
            # aioquic refuses a first datagram that is not an Initial: a
            # piece of another server's connection
            self.n["strays"] += 1
            return
        self.events(st)

    def events(self, st):
        conn = st[0]
        ev = conn.next_event()
        while ev is not None:
            if isinstance(ev, events.HandshakeCompleted):
                st[3] = True
                self.n["handshakes"] += 1
            elif isinstance(ev, events.StreamDataReceived) and ev.end_stream:
                self.n["requests"] += 1
                conn.send_stream_data(ev.stream_id, b"gen=%d\n" % self.gen, end_stream=True)
            elif isinstance(ev, events.ConnectionIdIssued):
                st[4].add(ev.connection_id)
                self.by_cid[ev.connection_id] = conn
            elif isinstance(ev, events.ConnectionIdRetired):
                st[4].discard(ev.connection_id)
                self.by_cid.pop(ev.connection_id, None)
            elif isinstance(ev, events.ConnectionTerminated):
                self.forget(st)
            ev = conn.next_event()

    def forget(self, st):
        for cid in st[4]:
            if self.by_cid.get(cid) is st[0]:
                del self.by_cid[cid]
        self.conns.pop(id(st[0]), None)

    def flush(self, now):
        for st in list(self.conns.values()):
            out = st[0].datagrams_to_send(now=now)
            if not st[2] and any(has_handshake(d) for d, _ in out):
                # the ClientHello was whole (the server's Handshake packets
                # follow it): how many datagrams it took
                st[2] = True
                lo, hi = self.n["hello_dgrams_min"], self.n["hello_dgrams_max"]
                self.n["hello_dgrams_min"] = st[1] if lo == 0 else min(lo, st[1])
                self.n["hello_dgrams_max"] = max(hi, st[1])
            for data, addr in out:
                try:
                    self.sock.sendto(data, addr)
                except OSError:
                    pass

    def timers(self, now):
        """Run due timers; the next deadline or None."""
        nxt = None
        for st in list(self.conns.values()):
            t = st[0].get_timer()
            if t is not None and t <= now:
                st[0].handle_timer(now)
                self.events(st)
                t = st[0].get_timer()
            if t is not None and (nxt is None or t < nxt):
                nxt = t
        return nxt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--gen", type=int, required=True)
    ap.add_argument("--plain", action="store_true", help="no UDP group: plain SO_REUSEPORT")
    ap.add_argument("--lib", default="/opt/sockmig/libsockmig.so.0")
    ap.add_argument("--hold", action="store_true")
    ap.add_argument("--grace", type=float, default=2.0)
    ap.add_argument("--max-secs", type=float, default=60.0)
    a = ap.parse_args()
    if not 0 < a.port < 65536 or not 0 <= a.gen < 2**32 - 1:
        fail("bad --port or --gen")
    cfg = make_config()
    term = []
    signal.signal(signal.SIGTERM, lambda *_: term.append(time.monotonic()))
    if a.hold:
        print("held gen=%d" % a.gen, flush=True)
    if a.hold and not sys.stdin.readline():
        fail("stdin closed before the go line")

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(("127.0.0.1", a.port))
    except OSError as e:
        fail("cannot bind 127.0.0.1:%d: %s" % (a.port, e))
    if not a.plain:
        keep = register(a.lib, sock, a.port, a.gen)  # noqa: F841
    sock.setblocking(False)
    srv = Server(sock, cfg, a.gen)
    print("ready gen=%d" % a.gen, flush=True)

    end = time.monotonic() + a.max_secs
    while True:
        now = time.monotonic()
        # after SIGTERM: serve the connections in hand, within the grace
        if term and (not srv.conns or now >= term[0] + a.grace):
            break
        if now >= end:
            break
        nxt = srv.timers(now)
        srv.flush(now)
        wait = 0.05 if nxt is None else max(0.0, min(0.05, nxt - now))
        try:
            r, _, _ = select.select([sock], [], [], wait)
        except InterruptedError:
            continue
        if r:
            for _ in range(256):
                try:
                    data, addr = sock.recvfrom(65536)
                except BlockingIOError:
                    break
                srv.receive(data, addr, time.monotonic())
            srv.flush(time.monotonic())
    sock.close()
    out = dict(gen=a.gen, live_at_exit=len(srv.conns), **srv.n)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
