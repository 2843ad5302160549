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

A storm of flips from one process (tests/test_udp_quic_storm.c):
  quic_server.py --port P --flip-ms MS --secs S [--plain | --learn L]
                 [--lib PATH] [--hold] [--grace S] [--whole-hello] [--tick-ms MS]
serves generation 1 at once ("ready gen=1"), and every MS ms for S
seconds (from the start, or with --hold from a "go" line on stdin) opens
a new SO_REUSEPORT socket with a server object of its own, registered as
the next generation: the working one from then on. Each object has its own
connection table, as a process of its own would: a datagram delivered to
another object than its connection's is what a misroute between two
processes is. An old object ends (its socket closed) when it has no
connection left and has had no datagram for a while, or --grace seconds
after the flip that superseded it. --learn: how the group that the server
makes learns flows: "receive" (the default: the program learns a flow from
its first datagram), or "claim" (the program learns none; each object
claims a peer's flow with sockmig_udp_flow_claim() the first time it
sends to it, as udpgrm does). --whole-hello: an object sends nothing to
a client before its ClientHello is whole (as a server that needs the
whole ClientHello, its SNI, before it answers), where aioquic would
acknowledge the first datagram of a 2-datagram Initial at once.
--tick-ms: the loop comes to its sockets on MS ms ticks only, as a loop
busy with other work would, so a datagram waits up to MS ms for its
answer. One poll loop serves every socket. At SIGTERM no more flips; each object ends as
above; then one JSON line of totals, among them hello_across_flip: whole
ClientHellos whose datagrams arrived (kernel timestamps) on both sides of
a flip.
"""
import argparse
import bisect
import ctypes
import datetime
import json
import math
import os
import select
import signal
import socket
import struct
import sys
import time

from aioquic.buffer import Buffer
from aioquic import tls
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
SO_TIMESTAMPNS = 35  # and SCM_TIMESTAMPNS (asm-generic; python 3.13 has no name)


class GroupOpts(ctypes.Structure):
    # struct sockmig_udp_group_opts (include/sockmig/udp.h)
    _fields_ = [("sz", ctypes.c_size_t), ("pin_root", ctypes.c_char_p),
                ("mode", ctypes.c_int), ("idle_timeout_ms", ctypes.c_uint32),
                ("flow_max", ctypes.c_uint32), ("quic_cid_len", ctypes.c_uint32),
                ("quic_config_id", ctypes.c_uint32), ("learn", ctypes.c_int)]


# enum sockmig_udp_learn; "receive" as SOCKMIG_UDP_LEARN_DEFAULT (what a
# new group does), which a library without the field takes too
LEARN = {"receive": 0, "claim": 2}


class MemberOpts(ctypes.Structure):
    # struct sockmig_udp_member_opts
    _fields_ = [("sz", ctypes.c_size_t), ("generation", ctypes.c_uint32),
                ("pid", ctypes.c_uint32)]


class CidInfo(ctypes.Structure):
    # struct sockmig_quic_cid_info (include/sockmig/quic.h)
    _fields_ = [("config_id", ctypes.c_uint32), ("slot", ctypes.c_uint32),
                ("generation", ctypes.c_uint32), ("len", ctypes.c_uint32)]


class SockaddrIn(ctypes.Structure):
    _fields_ = [("family", ctypes.c_ushort), ("port", ctypes.c_uint16),
                ("addr", ctypes.c_uint8 * 4), ("zero", ctypes.c_uint8 * 8)]


def fail(msg):
    print("Error: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


class Group:
    """The port's UDP group, through libsockmig (ctypes)."""

    def __init__(self, lib_path, port, learn=0):
        try:
            self.lib = lib = ctypes.CDLL(lib_path, use_errno=True)
        except OSError as e:
            fail("cannot load %s: %s" % (lib_path, e))
        lib.sockmig_udp_group_open.restype = ctypes.c_void_p
        lib.sockmig_udp_group_open.argtypes = [ctypes.c_void_p, ctypes.c_uint32,
                                               ctypes.POINTER(GroupOpts)]
        lib.sockmig_udp_member_add.argtypes = [ctypes.c_void_p, ctypes.c_int,
                                               ctypes.POINTER(MemberOpts)]
        lib.sockmig_last_error.restype = ctypes.c_char_p
        if hasattr(lib, "sockmig_quic_cid_encode"):  # not in a library before quic-lb
            lib.sockmig_quic_cid_encode.argtypes = [ctypes.c_void_p, ctypes.c_int,
                                                    ctypes.c_char_p, ctypes.c_size_t]
            lib.sockmig_quic_cid_decode.argtypes = [ctypes.c_char_p, ctypes.c_size_t,
                                                    ctypes.POINTER(CidInfo)]
        if learn == LEARN["claim"]:
            if not hasattr(lib, "sockmig_udp_flow_claim"):
                fail("%s has no sockmig_udp_flow_claim (--learn claim)" % lib_path)
            lib.sockmig_udp_flow_claim.argtypes = [ctypes.c_void_p, ctypes.c_int,
                                                   ctypes.c_void_p, ctypes.c_uint32]
        sa = SockaddrIn(socket.AF_INET, socket.htons(port), (127, 0, 0, 1))
        go = GroupOpts(ctypes.sizeof(GroupOpts))
        go.learn = learn
        self.g = lib.sockmig_udp_group_open(ctypes.byref(sa), ctypes.sizeof(sa),
                                            ctypes.byref(go))
        if not self.g:
            fail("sockmig_udp_group_open: %s" % lib.sockmig_last_error().decode())

    def add(self, sock, gen):
        """Join as an active member of generation gen."""
        mo = MemberOpts(ctypes.sizeof(MemberOpts), gen, os.getpid())
        if self.lib.sockmig_udp_member_add(self.g, sock.fileno(), ctypes.byref(mo)) != 0:
            fail("sockmig_udp_member_add: %s" % self.lib.sockmig_last_error().decode())

    def mint(self, fd, n):
        """A connection ID of n octets that the group routes to socket fd
        (sockmig_quic_cid_encode(); a group of mode quic-lb)."""
        buf = ctypes.create_string_buffer(n)
        if self.lib.sockmig_quic_cid_encode(self.g, fd, buf, n) != n:
            fail("sockmig_quic_cid_encode: %s" % self.lib.sockmig_last_error().decode())
        return buf.raw

    def decode(self, cid):
        """(slot, generation modulo 4,096) of a CID of the group's layout
        (sockmig_quic_cid_decode()), or None."""
        info = CidInfo()
        if self.lib.sockmig_quic_cid_decode(cid, len(cid), ctypes.byref(info)) != 0:
            return None
        return info.slot, info.generation

    def claim(self, sock, addr):
        """Claim the flow from addr (host, port) to sock: 0 or -errno."""
        host = socket.inet_aton(addr[0])
        sa = SockaddrIn(socket.AF_INET, socket.htons(addr[1]), tuple(host))
        return self.lib.sockmig_udp_flow_claim(self.g, sock.fileno(), ctypes.byref(sa),
                                               ctypes.sizeof(sa))


def register(lib_path, sock, port, gen):
    """Join the port's UDP group as an active member of generation gen."""
    grp = Group(lib_path, port)
    grp.add(sock, gen)
    return grp  # kept for the process's life


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


def hello_state(conn):
    """What of the client's Initial CRYPTO data (its ClientHello) conn has
    received: a datagram that changes it carried new ClientHello bytes (a
    retransmission does not). aioquic 1.2's private state."""
    cs = conn._crypto_streams.get(tls.Epoch.INITIAL) if conn._crypto_streams else None
    if cs is None:
        return None
    r = cs.receiver
    return (r.starting_offset(), len(r._buffer), tuple(r._ranges))


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
    def __init__(self, sock, cfg, gen, claim=None):
        self.sock, self.cfg, self.gen = sock, cfg, gen
        # claim(sock, addr) before the first datagram to each peer, or None
        self.claim, self.claimed = claim, set()
        self.by_cid = {}  # connection ID -> QuicConnection
        # id(conn) -> [conn, datagrams that carried its ClientHello, the
        # ClientHello whole (answered), handshake done, cids]
        self.conns = {}
        self.n = dict(connections=0, handshakes=0, requests=0, datagrams=0,
                      strays=0, hello_dgrams_min=0, hello_dgrams_max=0,
                      hello_incomplete=0, claims=0, claim_errors=0)
        # --whole-hello: nothing sent to a client before its ClientHello is
        # whole (aioquic would acknowledge its first datagram at once)
        self.whole_hello = False
        # (first, last) kernel arrival time of each whole ClientHello's
        # datagrams, when the caller gives them
        self.spans = []

    def receive(self, data, addr, now, kt=None):
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
            st = [conn, 0, False, False, {hdr.destination_cid, conn.host_cid}, [None, None]]
            self.conns[id(conn)] = st
            self.by_cid[hdr.destination_cid] = conn
            self.by_cid[conn.host_cid] = conn
        st = self.conns[id(conn)]
        before = None if st[2] else hello_state(conn)
        try:
            conn.receive_datagram(data, addr, now=now)
        except AssertionError:
            # aioquic refuses a first datagram that is not an Initial: a
            # piece of another server's connection
            self.n["strays"] += 1
            return
        if not st[2] and hello_state(conn) != before:
            st[1] += 1  # a datagram of the ClientHello
            st[5] = [st[5][0] if st[5][0] is not None else kt, kt]
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
        if not st[2]:
            # its ClientHello never came whole: the rest of the client's
            # Initial went to another object (or this one got only the rest)
            self.n["hello_incomplete"] += 1
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
                if st[5][0] is not None:
                    self.spans.append(tuple(st[5]))
            if not st[2] and self.whole_hello:
                continue  # an acknowledgement of part of the ClientHello
            for data, addr in out:
                if self.claim and addr not in self.claimed:
                    self.claimed.add(addr)
                    if self.claim(self.sock, addr) == 0:
                        self.n["claims"] += 1
                    else:
                        self.n["claim_errors"] += 1
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


def bind(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as e:
        fail("cannot bind 127.0.0.1:%d: %s" % (port, e))
    sock.setblocking(False)
    return sock


class Storm:
    """Every generation's server object in one process (--flip-ms)."""

    QUIET = 0.05  # an old object with no connection ends after this long without a datagram

    def __init__(self, a, cfg):
        self.a, self.cfg = a, cfg
        self.grp = None if a.plain else Group(a.lib, a.port, LEARN[a.learn])
        self.claim = self.grp.claim if a.learn == "claim" else None
        self.objs = []  # live objects, the newest (working) last
        self.by_fd = {}
        self.poll = select.poll()
        self.tot = dict(flips=0, objects=0, live_at_exit=0, flip_late_ms_max=0,
                        hello_across_flip=0)
        self.gen = 0
        self.start = None  # of the flips
        # each flip's (start, end), CLOCK_REALTIME as the kernel's
        # timestamps: the new member is in force from some time between
        self.windows = []

    def open(self, now):
        """A new socket and object as the next generation (a flip after the first)."""
        self.gen += 1
        t0 = time.time()
        sock = bind(self.a.port)  # plain SO_REUSEPORT: a member from here
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        if self.grp:
            self.grp.add(sock, self.gen)
        if self.gen > 1:
            self.windows.append((t0, time.time()))
        o = Server(sock, self.cfg, self.gen, self.claim)
        o.whole_hello = self.a.whole_hello
        o.superseded = o.last_rx = None
        if self.objs:
            self.objs[-1].superseded = now
        self.objs.append(o)
        self.by_fd[sock.fileno()] = o
        self.poll.register(sock.fileno(), select.POLLIN)
        self.tot["objects"] += 1

    def end(self, o):
        """Close o's socket; add its counts to the totals."""
        starts = [w[0] for w in self.windows]
        for first, last in o.spans:
            # a flip wholly between its first and last datagram's arrival
            i = bisect.bisect_right(starts, first)
            if i < len(self.windows) and self.windows[i][1] < last:
                self.tot["hello_across_flip"] += 1
        for st in list(o.conns.values()):
            if not st[2]:
                o.n["hello_incomplete"] += 1
        self.tot["live_at_exit"] += len(o.conns)
        for st in o.conns.values():
            print("gen %d ends with a connection: hello %s, handshake %s, state %s, %.3f s "
                  "after its flip" % (o.gen, st[2], st[3], st[0]._state,
                                      time.monotonic() - (o.superseded or 0)),
                  file=sys.stderr, flush=True)
        self.poll.unregister(o.sock.fileno())
        del self.by_fd[o.sock.fileno()]
        o.sock.close()
        self.objs.remove(o)
        for k, v in o.n.items():
            if k == "hello_dgrams_min":
                if v and (not self.tot.get(k) or v < self.tot[k]):
                    self.tot[k] = v
                self.tot.setdefault(k, 0)
            elif k == "hello_dgrams_max":
                self.tot[k] = max(self.tot.get(k, 0), v)
            else:
                self.tot[k] = self.tot.get(k, 0) + v

    def done(self, o, now, term):
        """Whether o may end: an old one (or every one after SIGTERM) with no
        connection and quiet since, or past its grace."""
        since = o.superseded if o.superseded is not None else (term[0] if term else None)
        if since is None:
            return False
        if now >= since + self.a.grace:
            return True
        return not o.conns and now >= since + self.QUIET and \
            (o.last_rx is None or now >= o.last_rx + self.QUIET)

    def flip(self, term):
        """Open the next generation when its flip is due (one at a time)."""
        if self.start is None or term or self.tot["flips"] >= self.nflips:
            return
        now = time.monotonic()
        due = self.start + (self.tot["flips"] + 1) * self.flip_s
        if now < due:
            return
        self.open(now)
        self.tot["flips"] += 1
        if self.tot["flips"] == self.nflips:
            # the test stops the server only after this line: a client
            # that ends early cannot cut the last flip
            print("flips done", flush=True)
        late, cost = int((now - due) * 1000), int((time.monotonic() - now) * 1000)
        self.tot["flip_late_ms_max"] = max(self.tot["flip_late_ms_max"], late)
        self.tot["flip_cost_ms_max"] = max(self.tot["flip_cost_ms_max"], cost)

    def run(self, term):
        a = self.a
        self.flip_s, self.nflips = a.flip_ms / 1000.0, int(round(a.secs * 1000 / a.flip_ms))
        self.tot["flip_cost_ms_max"] = 0
        self.open(time.monotonic())
        print("ready gen=1", flush=True)
        self.start = None if a.hold else time.monotonic()
        if a.hold:
            self.poll.register(sys.stdin.fileno(), select.POLLIN)
        while True:
            self.flip(term)
            now = time.monotonic()
            for o in list(self.objs):
                if (o is not self.objs[-1] or term) and self.done(o, now, term):
                    self.end(o)
            if not self.objs:
                break
            nxt = None
            for o in self.objs:
                t = o.timers(now)
                o.flush(now)
                if t is not None and (nxt is None or t < nxt):
                    nxt = t
            wait = 0.02 if nxt is None else min(0.02, nxt - now)
            if self.start is not None and not term and self.tot["flips"] < self.nflips:
                wait = min(wait, self.start + (self.tot["flips"] + 1) * self.flip_s - now)
            try:
                ready = self.poll.poll(max(0, math.ceil(wait * 1000)))
            except InterruptedError:
                continue
            if ready and a.tick_ms:
                tick = a.tick_ms / 1000.0
                time.sleep(tick - time.monotonic() % tick)
                self.flip(term)
            for fd, _ in ready:
                o = self.by_fd.get(fd)
                if o is None:
                    # the go line (or stdin's end) starts the flips
                    self.poll.unregister(fd)
                    sys.stdin.readline()
                    self.start = time.monotonic()
                    continue
                for _ in range(32):
                    try:
                        data, anc, _, addr = o.sock.recvmsg(65536, socket.CMSG_SPACE(16))
                    except BlockingIOError:
                        break
                    kt = None
                    for level, kind, cdata in anc:
                        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                            sec, nsec = struct.unpack("qq", cdata[:16])
                            kt = sec + nsec / 1e9
                    o.last_rx = time.monotonic()
                    o.receive(data, addr, o.last_rx, kt)
                    o.flush(time.monotonic())
                    # a flip comes on time, between any two datagrams
                    self.flip(term)
        self.tot["flips_asked"] = self.nflips
        print(json.dumps(self.tot), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--gen", type=int)
    ap.add_argument("--plain", action="store_true", help="no UDP group: plain SO_REUSEPORT")
    ap.add_argument("--learn", choices=sorted(LEARN), default=None)
    ap.add_argument("--lib", default="/opt/sockmig/libsockmig.so.0")
    ap.add_argument("--hold", action="store_true")
    ap.add_argument("--grace", type=float, default=2.0)
    ap.add_argument("--max-secs", type=float, default=60.0)
    ap.add_argument("--flip-ms", type=int)
    ap.add_argument("--secs", type=float)
    ap.add_argument("--whole-hello", action="store_true")
    ap.add_argument("--tick-ms", type=float, default=0.0)
    a = ap.parse_args()
    if not 0 < a.port < 65536 or not 0 < a.grace <= 60:
        fail("bad --port or --grace")
    if a.plain and a.learn:
        fail("--learn needs a group: not with --plain")
    if a.flip_ms is not None or a.secs is not None:
        if a.gen is not None or a.flip_ms is None or a.secs is None or \
                not 10 <= a.flip_ms <= 60000 or not 0 < a.secs <= 3600 or \
                not 0 <= a.tick_ms <= 1000:
            fail("a storm takes --flip-ms (10-60000) and --secs (0-3600), no --gen; "
                 "--tick-ms 0-1000")
        a.learn = a.learn or "receive"
        cfg = make_config()
        term = []
        signal.signal(signal.SIGTERM, lambda *_: term.append(time.monotonic()))
        Storm(a, cfg).run(term)
        return
    if a.gen is None or not 0 <= a.gen < 2**32 - 1 or a.learn:
        fail("bad --gen (or --learn without --flip-ms)")
    cfg = make_config()
    term = []
    signal.signal(signal.SIGTERM, lambda *_: term.append(time.monotonic()))
    if a.hold:
        print("held gen=%d" % a.gen, flush=True)
    if a.hold and not sys.stdin.readline():
        fail("stdin closed before the go line")

    sock = bind(a.port)
    if not a.plain:
        keep = register(a.lib, sock, a.port, a.gen)  # noqa: F841
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
