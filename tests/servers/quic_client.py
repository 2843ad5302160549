# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""The QUIC load of tests/test_udp_quic_real.c (aioquic's asyncio client):
up to --conns connections to 127.0.0.1:PORT, --parallel at a time, each
its own UDP socket (its own flow): a handshake whose ClientHello carries a
large transport parameter (aioquic's quantum-readiness test parameter,
1,200 bytes), so that its Initial takes 2 datagrams; then --requests
requests, one stream each, --gap seconds apart, each answered "gen=G".
Bounded: no connection starts after --secs, and each has --timeout
seconds. Prints "load" when it starts, then one JSON line: ok and failed connections, how they
failed, and which generations answered. The defaults are the test's.

  quic_client.py --port P [--conns N] [--parallel K] [--requests R]
                 [--gap S] [--secs S] [--timeout S] [--initial-gap-ms MS]

--initial-gap-ms: the first flight's datagrams after the first (the rest of
the Initial) leave that long after it, as from a client that paces its
sends or over a path that spreads them; 0 (the default) sends them back to
back (tests/test_udp_quic_storm.c).
"""
import argparse
import asyncio
import json
import ssl
import sys
import time

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.configuration import QuicConfiguration

ALPN = "sockmig-test"


def paced(gap):
    """A protocol whose first flight's second and later datagrams leave
    @gap seconds after its first (later flights as aioquic sends them)."""

    class Paced(QuicConnectionProtocol):
        first = True

        def transmit(self):
            if not self.first:
                return super().transmit()
            self._transmit_task = None
            out = self._quic.datagrams_to_send(now=self._loop.time())
            if not out:
                return super().transmit()
            self.first = False
            self._transport.sendto(*out[0])
            if len(out) > 1:
                self._loop.call_later(gap, self._rest, out[1:])
            super().transmit()  # the timer (nothing more is due yet)

        def _rest(self, rest):
            if not self._transport.is_closing():
                for data, addr in rest:
                    self._transport.sendto(data, addr)

    return Paced


async def one(a, res, stage):
    cfg = QuicConfiguration(is_client=True, alpn_protocols=[ALPN], verify_mode=ssl.CERT_NONE,
                            server_name="localhost", idle_timeout=a.timeout,
                            quantum_readiness_test=True)
    stage[0] = "handshake"
    try:
        proto_cls = paced(a.initial_gap_ms / 1000.0) if a.initial_gap_ms else \
            QuicConnectionProtocol
        async with connect("127.0.0.1", a.port, configuration=cfg, create_protocol=proto_cls,
                           wait_connected=True) as proto:
            stage[0] = "request"
            for i in range(a.requests):
                if i:
                    await asyncio.sleep(a.gap)
                reader, writer = await proto.create_stream()
                writer.write(b"gen?\n")
                writer.write_eof()
                ans = await reader.read()
                if not ans.startswith(b"gen="):
                    raise ValueError("bad answer %r" % ans)
                g = ans[4:].strip().decode()
                res["gens"][g] = res["gens"].get(g, 0) + 1
            stage[0] = "close"
        res["ok"] += 1
    except Exception as e:  # every failure is counted, by stage
        res["failed"] += 1
        res["failed_" + stage[0]] += 1
        k = type(e).__name__
        res["errors"][k] = res["errors"].get(k, 0) + 1


async def run(a):
    res = dict(ok=0, failed=0, failed_handshake=0, failed_request=0, failed_close=0,
               gens={}, errors={})
    print("load", flush=True)
    end = time.monotonic() + a.secs
    sem = asyncio.Semaphore(a.parallel)
    tasks = []

    async def guarded():
        stage = ["handshake"]
        try:
            await asyncio.wait_for(one(a, res, stage), a.timeout)
        except asyncio.TimeoutError:
            # out of time: failed at the stage it was in
            res["failed"] += 1
            res["failed_" + stage[0]] += 1
            res["errors"]["timeout"] = res["errors"].get("timeout", 0) + 1
        finally:
            sem.release()

    for _ in range(a.conns):
        await sem.acquire()
        if time.monotonic() >= end:
            sem.release()
            break
        tasks.append(asyncio.ensure_future(guarded()))
    if tasks:
        await asyncio.gather(*tasks)
    res["started"] = len(tasks)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conns", type=int, default=600)
    ap.add_argument("--parallel", type=int, default=16)
    ap.add_argument("--requests", type=int, default=4)
    ap.add_argument("--gap", type=float, default=0.05)
    ap.add_argument("--secs", type=float, default=3.0)
    ap.add_argument("--timeout", type=float, default=3.0)
    ap.add_argument("--initial-gap-ms", type=float, default=0.0)
    a = ap.parse_args()
    if not 0 < a.port < 65536 or a.conns < 1 or a.parallel < 1 or a.requests < 1 or \
            a.secs <= 0 or a.timeout <= 0 or a.conns > 100000 or \
            not 0 <= a.initial_gap_ms <= 1000:
        print("Error: bad arguments", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(asyncio.run(run(a))), flush=True)


if __name__ == "__main__":
    main()
