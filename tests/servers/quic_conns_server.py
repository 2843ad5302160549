# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""The server of tests/test_udp_quic_conns.c: many long-lived aioquic
connections across generation flips, in one process.

  quic_conns_server.py --port P --flip-ms MS --flips N [--plain | --mint]
                       [--cid-len L] [--lib PATH] [--grace S] [--max-secs S]
                       [--procs K --index I]

Binds generation 1 (an SO_REUSEPORT socket of 127.0.0.1:P with a server
object of its own, registered in the port's UDP group through libsockmig,
learn on receive, unless --plain), prints "ready gen=1", then waits for a
"go" line on stdin. From "go", every MS ms, N times, it binds the next
generation the same way: the working one from then on; new connections
go to it. Every object is kept (its socket open) until SIGTERM, so an old
generation's connections live on for the whole run. Each object has its
own connection table, as a process of its own would: a datagram that
reaches an object which does not know its destination connection ID is a
stray; a misroute when another object knows it (a datagram delivered to a
non-owning generation). Prints "flips done" after the N-th flip. At
SIGTERM no more flips; each object ends when its connections have (the
clients close them), or --grace seconds after SIGTERM; then one JSON line:
totals, the flips' times (CLOCK_MONOTONIC, ms) and per generation
[connections, datagrams received, strays, misroutes, requests]; its CPU
time.

One epoll loop serves every socket; the connections' timers are in a heap,
so a datagram costs its own connection's work only (1,000 connections).
--mint: the port's group is of mode quic-lb (the test makes it, of CID
length --cid-len, neither 8 nor 16 with --mint): every connection ID an
object gives its clients is minted for its socket by libsockmig
(sockmig_quic_cid_encode()), so that the group routes a datagram by its
CID, whatever its addresses. aioquic has no hook for it: it draws a
server's CIDs with os.urandom(connection_id_length) in
aioquic/quic/connection.py (its first CID and a placeholder for the
client's when a connection is made, the next ones when the handshake is
done and when a client retires one, all while a datagram is handled), so
the module's os is replaced by one whose urandom() of that length mints
for the object whose datagram is being handled ("minted" counts them all,
the placeholder too). It draws 8 octets for a PATH_CHALLENGE and 16 for a
stateless reset token: hence not those lengths. Every CID an object gives
out is decoded again (sockmig_quic_cid_decode()): "cids_checked", and
"cids_wrong" for those whose slot is not the object's first CID's or whose
generation is not the object's.

--procs K --index I: the generations are shared out between K server
processes (one python process serves about 9,000 datagrams/s here):
this one makes generation G when (G - 1) modulo K is I, at the same time
as a single process would (generation 1 at the start, so only index 0
prints "ready gen=1"; the others print "ready gen=0" and bind their first
at its flip). Each makes its group and its flips the same way; its JSON
line counts its own objects, with zeros in "gens" for the others'
generations, and its misroutes are those to its own other objects (a
stray whose CID another process knows is counted as a stray only).

Runs with the python3 and aioquic of scripts/quic-root's tree; shares the
certificate and the group's ctypes with quic_server.py.
"""
import argparse
import heapq
import json
import os
import resource
import select
import signal
import socket
import sys
import time

import aioquic.quic.connection as aioquic_connection
from aioquic.buffer import Buffer
from aioquic.quic import events
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import QuicPacketType, pull_quic_header

from quic_server import CID_LEN, LEARN, Group, bind, fail, make_config

RCVBUF = 4 << 20


class Minter:
    """What aioquic/quic/connection.py sees as os: urandom() of the CID
    length mints a CID for socket fd (set before each datagram is handled)."""

    def __init__(self, grp, cid_len):
        self.grp, self.cid_len, self.fd, self.minted = grp, cid_len, None, 0

    def urandom(self, n):
        if n != self.cid_len or self.fd is None:
            return os.urandom(n)
        self.minted += 1
        return self.grp.mint(self.fd, n)

    def __getattr__(self, name):
        return getattr(os, name)


class Conn:
    """One connection of an object, with its place in the timer heap."""
    __slots__ = ("q", "g", "cids", "timer", "dead", "answered")

    def __init__(self, q, g, cids):
        self.q, self.g, self.cids, self.timer, self.dead = q, g, cids, None, False
        self.answered = set()  # the streams answered


class Gen:
    """One generation: its socket and its own connection table."""

    def __init__(self, sock, gen, cfg):
        self.sock, self.gen, self.cfg = sock, gen, cfg
        self.by_cid = {}
        self.conns = set()
        self.slot = None  # with --mint: its socket's slot, from its first CID
        self.n = [0, 0, 0, 0, 0]  # connections, datagrams, strays, misroutes, requests


class Loop:
    def __init__(self, a, cfg):
        self.a, self.cfg = a, cfg
        self.grp = None if a.plain else Group(a.lib, a.port, LEARN["receive"])
        self.minter = None
        if a.mint:
            self.minter = Minter(self.grp, a.cid_len)
            aioquic_connection.os = self.minter
        self.gens = []
        self.by_fd = {}
        self.ep = select.epoll()
        self.heap, self.seq = [], 0
        self.flip_at = []  # every flip's due time passed, made here or not
        self.made = []  # the times of this process's flips
        self.start = None
        # each generation's g.n, at its end; zeros for other processes'
        self.by_gen = [None if self.mine(i + 1) else [0] * 5 for i in range(a.flips + 1)]
        self.tot = dict(handshakes=0, terminated=0, live_at_exit=0, flip_late_ms_max=0,
                        flip_cost_ms_max=0, cids_checked=0, cids_wrong=0)

    def mine(self, gen):
        """Is generation gen made by this process (--procs, --index)?"""
        return (gen - 1) % self.a.procs == self.a.index

    def open(self, gen):
        sock = bind(self.a.port)
        # room for a busy loop's pause (the kernel caps it at rmem_max)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        if self.grp:
            self.grp.add(sock, gen)
        g = Gen(sock, gen, self.cfg)
        self.gens.append(g)
        self.by_fd[sock.fileno()] = g
        self.ep.register(sock.fileno(), select.EPOLLIN)

    def arm(self, c, now):
        """Put c's next timer in the heap (an older entry is then stale).
        One already due waits a millisecond: aioquic keeps an ACK's timer
        due while a new path's anti-amplification limit holds the ACK back
        (a rebound client) until that path's next datagram lifts the limit.
        Popping the due timers before any runs ends the livelock; the 1 ms
        keeps such a timer from spinning the loop (a wakeup a millisecond
        until the client's next datagram)."""
        t = c.q.get_timer()
        if t is not None and t <= now:
            t = now + 0.001
        if t is not None and t != c.timer:
            c.timer = t
            self.seq += 1
            heapq.heappush(self.heap, (t, self.seq, c))

    def flush(self, g, c, now):
        for data, addr in c.q.datagrams_to_send(now=now):
            try:
                g.sock.sendto(data, addr)
            except OSError:
                pass
        self.arm(c, now)

    def events(self, g, c):
        q = c.q
        ev = q.next_event()
        while ev is not None:
            if isinstance(ev, events.HandshakeCompleted):
                self.tot["handshakes"] += 1
            elif isinstance(ev, events.StreamDataReceived) and ev.end_stream and \
                    ev.stream_id not in c.answered:
                # once: a busy loop's late ACK brings the request's FIN
                # again, and aioquic reports the stream's end again
                c.answered.add(ev.stream_id)
                g.n[4] += 1
                q.send_stream_data(ev.stream_id, b"gen=%d\n" % g.gen, end_stream=True)
            elif isinstance(ev, events.ConnectionIdIssued):
                self.check(g, ev.connection_id)
                c.cids.add(ev.connection_id)
                g.by_cid[ev.connection_id] = c
            elif isinstance(ev, events.ConnectionIdRetired):
                c.cids.discard(ev.connection_id)
                g.by_cid.pop(ev.connection_id, None)
            elif isinstance(ev, events.ConnectionTerminated):
                self.forget(g, c)
            ev = q.next_event()

    def check(self, g, cid):
        """With --mint: is cid one of g's socket (its slot, its generation)?"""
        if not self.minter:
            return
        self.tot["cids_checked"] += 1
        got = self.grp.decode(cid)
        if g.slot is None and got is not None:
            g.slot = got[0]
        if got is None or got != (g.slot, g.gen % 4096):
            self.tot["cids_wrong"] += 1

    def forget(self, g, c):
        if c.dead:
            return
        c.dead = True
        self.tot["terminated"] += 1
        for cid in c.cids:
            if g.by_cid.get(cid) is c:
                del g.by_cid[cid]
        g.conns.discard(c)

    def stray(self, g, cid):
        g.n[2] += 1
        if any(o is not g and cid in o.by_cid for o in self.gens):
            g.n[3] += 1

    def receive(self, g, data, addr, now):
        """One datagram at g: its connection (to flush), or None."""
        g.n[1] += 1
        if self.minter:
            self.minter.fd = g.sock.fileno()
        try:
            hdr = pull_quic_header(Buffer(data=data), host_cid_length=self.a.cid_len)
        except ValueError:
            g.n[2] += 1
            return None
        c = g.by_cid.get(hdr.destination_cid)
        if c is None:
            if hdr.packet_type != QuicPacketType.INITIAL or len(data) < 1200:
                self.stray(g, hdr.destination_cid)
                return None
            q = QuicConnection(configuration=self.cfg,
                               original_destination_connection_id=hdr.destination_cid)
            c = Conn(q, g, {hdr.destination_cid, q.host_cid})
            self.check(g, q.host_cid)
            g.n[0] += 1
            g.conns.add(c)
            g.by_cid[hdr.destination_cid] = c
            g.by_cid[q.host_cid] = c
        try:
            c.q.receive_datagram(data, addr, now=now)
        except AssertionError:
            self.stray(g, hdr.destination_cid)  # not an Initial, first
            return None
        self.events(g, c)
        return c

    def flip(self, term):
        """The next generation, when its flip is due (made here when it is
        this process's)."""
        if self.start is None or term or len(self.flip_at) >= self.a.flips:
            return
        now = time.monotonic()
        due = self.start + (len(self.flip_at) + 1) * self.a.flip_ms / 1000.0
        if now < due:
            return
        gen = len(self.flip_at) + 2
        self.flip_at.append(int(now * 1000))
        if self.mine(gen):
            self.open(gen)
            self.made.append(int(now * 1000))
            self.tot["flip_late_ms_max"] = max(self.tot["flip_late_ms_max"],
                                               int((now - due) * 1000))
            self.tot["flip_cost_ms_max"] = max(self.tot["flip_cost_ms_max"],
                                               int((time.monotonic() - now) * 1000))
        if len(self.flip_at) == self.a.flips:
            print("flips done", flush=True)

    def timers(self, now):
        h = self.heap
        due = []
        while h and h[0][0] <= now:
            t, _, c = heapq.heappop(h)
            if not c.dead and c.timer == t:
                c.timer = None
                due.append(c)
        for c in due:
            if c.dead:
                continue
            g = c.g
            if self.minter:
                self.minter.fd = g.sock.fileno()
            c.q.handle_timer(now=now)
            self.events(g, c)
            if not c.dead:
                self.flush(g, c, now)

    def run(self, term):
        a = self.a
        if self.mine(1):
            self.open(1)
        self.ep.register(sys.stdin.fileno(), select.EPOLLIN)
        print("ready gen=%d" % (1 if self.mine(1) else 0), flush=True)
        end = time.monotonic() + a.max_secs
        while True:
            now = time.monotonic()
            self.flip(term)
            if term:
                for g in [g for g in self.gens if not g.conns or now >= term[0] + a.grace]:
                    self.end(g)
                if not self.gens:
                    break
            if now >= end:
                fail("no SIGTERM within --max-secs")
            self.timers(now)
            wait = 0.05
            if self.heap:
                wait = min(wait, self.heap[0][0] - now)
            if self.start is not None and not term and len(self.flip_at) < a.flips:
                wait = min(wait, self.start + (len(self.flip_at) + 1) * a.flip_ms / 1000.0 - now)
            try:
                ready = self.ep.poll(max(0.0, wait), 256)
            except InterruptedError:
                continue
            for fd, _ in ready:
                g = self.by_fd.get(fd)
                if g is None:
                    self.ep.unregister(fd)
                    sys.stdin.readline()
                    self.start = time.monotonic()
                    continue
                touched = {}
                for _ in range(64):
                    try:
                        data, addr = g.sock.recvfrom(65536)
                    except BlockingIOError:
                        break
                    c = self.receive(g, data, addr, time.monotonic())
                    if c is not None and not c.dead:
                        touched[id(c)] = c
                now = time.monotonic()
                for c in touched.values():
                    if not c.dead:
                        self.flush(g, c, now)
                self.flip(term)
        self.tot["flips"] = len(self.made)
        self.tot["objects"] = sum(self.mine(i + 1) and n is not None
                                  for i, n in enumerate(self.by_gen))
        self.by_gen = [n for n in self.by_gen if n is not None]
        for k, i in (("connections", 0), ("datagrams", 1), ("strays", 2), ("misroutes", 3),
                     ("requests", 4)):
            self.tot[k] = sum(n[i] for n in self.by_gen)
        self.tot["flip_at_ms"] = self.made
        self.tot["gens"] = self.by_gen
        ru = resource.getrusage(resource.RUSAGE_SELF)
        self.tot["cpu_s"] = round(ru.ru_utime + ru.ru_stime, 2)
        self.tot["minted"] = self.minter.minted if self.minter else 0
        print(json.dumps(self.tot), flush=True)

    def end(self, g):
        # what its socket still holds first (plain SO_REUSEPORT sends the
        # clients' last datagrams to objects without connections too)
        while True:
            try:
                data, addr = g.sock.recvfrom(65536)
            except BlockingIOError:
                break
            self.receive(g, data, addr, time.monotonic())
        self.tot["live_at_exit"] += len(g.conns)
        for c in g.conns:
            c.dead = True  # their timers with it: its socket is closed
        self.ep.unregister(g.sock.fileno())
        del self.by_fd[g.sock.fileno()]
        g.sock.close()
        self.gens.remove(g)
        self.by_gen[g.gen - 1] = g.n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--flip-ms", type=int, required=True)
    ap.add_argument("--flips", type=int, required=True)
    ap.add_argument("--plain", action="store_true", help="no UDP group: plain SO_REUSEPORT")
    ap.add_argument("--mint", action="store_true", help="CIDs minted by libsockmig (quic-lb)")
    ap.add_argument("--cid-len", type=int, default=CID_LEN)
    ap.add_argument("--lib", default="/opt/sockmig/libsockmig.so.0")
    ap.add_argument("--grace", type=float, default=5.0)
    ap.add_argument("--max-secs", type=float, default=300.0)
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--index", type=int, default=0)
    a = ap.parse_args()
    if not 0 < a.port < 65536 or not 10 <= a.flip_ms <= 60000 or not 0 <= a.flips <= 1000 or \
            not 0 < a.grace <= 60 or not 0 < a.max_secs <= 3600 or \
            not 8 <= a.cid_len <= 20 or (a.plain and a.mint) or \
            (a.mint and a.cid_len in (8, 16)) or not 1 <= a.procs <= 8 or \
            not 0 <= a.index < a.procs:
        fail("bad --port, --flip-ms (10-60000), --flips (0-1000), --grace, --max-secs, "
             "--cid-len (8-20; not 8 or 16 with --mint), --procs (1-8) or --index (0 to "
             "procs - 1), or --plain with --mint")
    cfg = make_config()
    cfg.connection_id_length = a.cid_len
    term = []
    signal.signal(signal.SIGTERM, lambda *_: term.append(time.monotonic()))
    Loop(a, cfg).run(term)


if __name__ == "__main__":
    main()
