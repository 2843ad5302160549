# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""The client of tests/test_udp_quic_conns.c: many long-lived aioquic
connections to 127.0.0.1:PORT, each its own UDP socket (its own flow),
each sending a PING frame every --interval-ms for the whole run.

  quic_conns_client.py --port P --conns N --ramp-secs R --secs S
                       [--interval-ms MS] [--timeout S] [--rebind-ms MS]

Prints "held", waits for a "go" line on stdin, then opens the N
connections evenly over R seconds (aioquic's QuicConnection, sans I/O, in
one epoll loop with the timers in a heap). Once a connection's handshake
is done it asks "gen?" on one stream (the server answers "gen=G": the
generation that owns it), then sends a PING every MS ms (one ack-eliciting
datagram; the server acknowledges it) until S seconds after "go"; then it
closes every connection and prints one JSON line: connections opened,
established, failed before their handshake, closed early (ended before the
stop: the server's idle timeout when its datagrams went elsewhere), alive at
the stop; datagrams sent and received; PINGs sent and acknowledged; per
owning generation [connections, datagrams sent]; the datagrams a second
of each connection alive at the stop, from its first PING (lowest,
median), the PINGs later than half an interval, the CLOCK_MONOTONIC ms at which every connection was up and
at which the PINGs stopped, its CPU time. A connection has --timeout seconds for its
handshake and its answer.

--rebind-ms: a NAT rebinding every MS ms per established connection (its
first MS ms after its answer): the connection's next datagrams leave from
a new UDP socket (a new source port), the old one closed; its connection
ID stays. Counted as "rebinds".
"""
import argparse
import heapq
import json
import resource
import select
import socket
import ssl
import sys
import time

from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

ALPN = "sockmig-test"


class Conn:
    __slots__ = ("q", "sock", "opened", "up", "gen", "buf", "dead", "timer", "next_ping",
                 "first_ping", "sent0", "pings", "acked", "sent", "recv", "failed", "rebind_at",
                 "rebinds")

    def __init__(self, q, sock, now):
        self.q, self.sock, self.opened = q, sock, now
        self.up, self.gen, self.buf, self.dead, self.timer = None, None, b"", False, None
        self.next_ping = self.first_ping = self.sent0 = None
        self.pings = self.acked = self.sent = self.recv = 0
        self.failed = self.rebind_at = None
        self.rebinds = 0


class Client:
    def __init__(self, a):
        self.a = a
        self.addr = ("127.0.0.1", a.port)
        self.cfg = QuicConfiguration(is_client=True, alpn_protocols=[ALPN],
                                     verify_mode=ssl.CERT_NONE, server_name="localhost",
                                     idle_timeout=10.0)
        self.ep = select.epoll()
        self.by_fd = {}
        self.conns = []
        self.timers, self.pings, self.seq = [], [], 0
        self.ival = a.interval_ms / 1000.0
        self.late = 0
        self.stopping = False

    def arm(self, c):
        t = c.q.get_timer()
        if t is not None and t != c.timer:
            c.timer = t
            self.seq += 1
            heapq.heappush(self.timers, (t, self.seq, c))

    def flush(self, c, now):
        for data, addr in c.q.datagrams_to_send(now=now):
            try:
                c.sock.sendto(data, addr)
                c.sent += 1
            except OSError:
                pass
        self.arm(c)

    @staticmethod
    def socket():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        return sock

    def open(self, now):
        sock = self.socket()
        q = QuicConnection(configuration=self.cfg)
        c = Conn(q, sock, now)
        self.conns.append(c)
        self.by_fd[sock.fileno()] = c
        self.ep.register(sock.fileno(), select.EPOLLIN)
        q.connect(self.addr, now=now)
        self.flush(c, now)

    def events(self, c, now):
        ev = c.q.next_event()
        while ev is not None:
            if isinstance(ev, events.HandshakeCompleted):
                c.up = now
                sid = c.q.get_next_available_stream_id()
                c.q.send_stream_data(sid, b"gen?\n", end_stream=True)
            elif isinstance(ev, events.StreamDataReceived):
                c.buf += ev.data
                if ev.end_stream and c.buf.startswith(b"gen="):
                    c.gen = int(c.buf[4:].strip())
                    c.next_ping = now + self.ival
                    if self.a.rebind_ms:
                        c.rebind_at = now + self.a.rebind_ms / 1000.0
                    self.seq += 1
                    heapq.heappush(self.pings, (c.next_ping, self.seq, c))
            elif isinstance(ev, events.PingAcknowledged):
                c.acked += 1
            elif isinstance(ev, events.ConnectionTerminated):
                self.drop(c, "closed" if c.gen is not None else "handshake")
            ev = c.q.next_event()

    def rebind(self, c):
        """c's datagrams from a new source port from now on."""
        sock = self.socket()
        self.ep.unregister(c.sock.fileno())
        del self.by_fd[c.sock.fileno()]
        c.sock.close()
        c.sock = sock
        self.by_fd[sock.fileno()] = c
        self.ep.register(sock.fileno(), select.EPOLLIN)
        c.rebinds += 1

    def drop(self, c, why):
        if c.dead:
            return
        c.dead = True
        if not self.stopping:
            c.failed = why
        self.ep.unregister(c.sock.fileno())
        del self.by_fd[c.sock.fileno()]
        c.sock.close()

    def ping(self, now):
        h = self.pings
        while h and h[0][0] <= now:
            t, _, c = heapq.heappop(h)
            if c.dead:
                continue
            if now - t > self.ival / 2:
                self.late += 1
            if c.rebind_at is not None and now >= c.rebind_at:
                self.rebind(c)
                c.rebind_at = now + self.a.rebind_ms / 1000.0
            c.q.send_ping(c.pings)
            c.pings += 1
            if c.first_ping is None:
                c.first_ping, c.sent0 = now, c.sent
            self.flush(c, now)
            # the next one on the schedule; a backlog of more than one
            # interval is dropped, not sent in a burst
            c.next_ping = t + self.ival if t + self.ival > now - self.ival else now
            self.seq += 1
            heapq.heappush(h, (c.next_ping, self.seq, c))

    def timer(self, now):
        h = self.timers
        while h and h[0][0] <= now:
            t, _, c = heapq.heappop(h)
            if c.dead or c.timer != t:
                continue
            c.timer = None
            c.q.handle_timer(now=now)
            self.events(c, now)
            if not c.dead:
                self.flush(c, now)

    def expire(self, now):
        """Drop the connections whose handshake or answer is out of time."""
        for c in self.conns:
            if not c.dead and c.gen is None and now >= c.opened + self.a.timeout:
                self.drop(c, "handshake")

    def run(self):
        a = self.a
        start = time.monotonic()
        stop = start + a.secs
        all_up = None
        nxt_check = start
        while True:
            now = time.monotonic()
            if now >= stop:
                break
            while len(self.conns) < a.conns and \
                    now >= start + len(self.conns) * a.ramp_secs / a.conns:
                self.open(now)
            self.ping(now)
            self.timer(now)
            if now >= nxt_check:
                self.expire(now)
                nxt_check = now + 0.1
            if all_up is None and len(self.conns) == a.conns and \
                    all(c.gen is not None or c.dead for c in self.conns):
                all_up = now
            wait = min(0.05, stop - now)
            for h in (self.timers, self.pings):
                if h:
                    wait = min(wait, h[0][0] - now)
            if len(self.conns) < a.conns:
                wait = min(wait, start + len(self.conns) * a.ramp_secs / a.conns - now)
            for fd, _ in self.ep.poll(max(0.0, wait), 256):
                c = self.by_fd.get(fd)
                if c is None:
                    continue
                for _ in range(16):
                    try:
                        data, addr = c.sock.recvfrom(65536)
                    except BlockingIOError:
                        break
                    c.recv += 1
                    c.q.receive_datagram(data, addr, now=time.monotonic())
                self.events(c, time.monotonic())
                if not c.dead:
                    self.flush(c, time.monotonic())
        self.stopping = True
        return self.report(start, stop, all_up)

    def report(self, start, stop, all_up):
        now = time.monotonic()
        res = dict(opened=len(self.conns), established=0, failed_handshake=0, closed_early=0,
                   alive=0, rebinds=0, sent=0, recv=0, pings=0, pings_acked=0, late_pings=self.late,
                   all_up_ms=int(all_up * 1000) if all_up else -1, stop_ms=int(now * 1000))
        gens, rates = {}, []
        for c in self.conns:
            if not c.dead:
                if c.first_ping is not None and now - c.first_ping >= 1.0:
                    # its datagrams from its first PING to the stop, a
                    # second (PINGs wait for the pacer or the congestion
                    # window when acknowledgements are late: then one
                    # datagram carries more than one)
                    rates.append((c.sent - c.sent0) / (now - c.first_ping))
                c.q.close(error_code=0)
                self.flush(c, now)  # its close: counted with what it sent
        for c in self.conns:
            res["established"] += c.up is not None
            res["failed_handshake"] += c.failed == "handshake"
            res["closed_early"] += c.failed == "closed"
            res["sent"] += c.sent
            res["recv"] += c.recv
            res["pings"] += c.pings
            res["pings_acked"] += c.acked
            if c.gen is not None:
                gens.setdefault(c.gen, [0, 0])
                gens[c.gen][0] += 1
                gens[c.gen][1] += c.sent
            res["alive"] += not c.dead
            res["rebinds"] += c.rebinds
        rates.sort()
        res["rate_min"] = round(rates[0], 2) if rates else 0
        res["rate_p50"] = round(rates[len(rates) // 2], 2) if rates else 0
        res["rated"] = len(rates)
        res["gens"] = {str(k): v for k, v in sorted(gens.items())}
        res["secs"] = round(now - start, 2)
        ru = resource.getrusage(resource.RUSAGE_SELF)
        res["cpu_s"] = round(ru.ru_utime + ru.ru_stime, 2)
        return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conns", type=int, required=True)
    ap.add_argument("--ramp-secs", type=float, required=True)
    ap.add_argument("--secs", type=float, required=True)
    ap.add_argument("--interval-ms", type=float, default=100.0)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--rebind-ms", type=float, default=0.0)
    a = ap.parse_args()
    if not 0 < a.port < 65536 or not 1 <= a.conns <= 5000 or not 0 < a.ramp_secs < a.secs or \
            not a.secs <= 3600 or not 1 <= a.interval_ms <= 10000 or not 0 < a.timeout <= 60 or \
            not (a.rebind_ms == 0 or 10 <= a.rebind_ms <= 600000):
        print("Error: bad arguments", file=sys.stderr)
        sys.exit(1)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < a.conns + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, a.conns + 64), hard))
    print("held", flush=True)
    if not sys.stdin.readline():
        print("Error: stdin closed before the go line", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(Client(a).run()), flush=True)


if __name__ == "__main__":
    main()
