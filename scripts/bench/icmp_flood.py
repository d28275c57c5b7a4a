#!/usr/bin/env python3
"""Flood one address with ICMP errors that quote TCP segments of no ping (benchmark 5).

Runs inside the benchmark's flooder namespace and only ever sends to --to (an address in
the client namespace the benchmark created). Every packet is an ICMP type/code error
quoting an IPv4+TCP header whose source port lies in --port-range, a range no ping uses
(pings use the ephemeral range), so the client must count them as unmatched and change no
verdict. Paced in small batches to --rate packets/s for --seconds (or until SIGTERM);
prints one JSON line with what was actually sent.
"""
import argparse
import json
import os
import signal
import socket
import sys
import time


# The forged packets are built as the lab's spoofing scenario builds them.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lab"))
from spoof_icmp import icmp_error, quoted_segment  # noqa: E402


def packet(icmp_type, code, qsrc, qdst, sport, dport):
    return icmp_error(icmp_type, code, quoted_segment(qsrc, qdst, sport, dport, 0x01020304))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--to", required=True)
    ap.add_argument("--quote-src", required=True)
    ap.add_argument("--quote-dst", required=True)
    ap.add_argument("--dport", type=int, default=12001)
    ap.add_argument("--port-range", default="1024-9999")
    ap.add_argument("--type", type=int, default=3)
    ap.add_argument("--code", type=int, default=1)
    ap.add_argument("--rate", type=float, default=50000)
    ap.add_argument("--seconds", type=float, default=10)
    a = ap.parse_args()
    lo, hi = (int(x) for x in a.port_range.split("-"))
    pkts = [packet(a.type, a.code, a.quote_src, a.quote_dst, p, a.dport)
            for p in range(lo, min(hi, lo + 2000) + 1)]
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    dest = (a.to, 0)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    batch = 250
    sent = errors = 0
    t0 = time.monotonic()
    end = t0 + a.seconds
    i = 0
    n = len(pkts)
    send = s.sendto
    while not stop:
        now = time.monotonic()
        if now >= end:
            break
        due = int((now - t0) * a.rate)
        if sent >= due:
            time.sleep(min(batch / a.rate, end - now) / 2)
            continue
        for _ in range(min(batch, due - sent)):
            try:
                send(pkts[i], dest)
                sent += 1
            except OSError:  # ENOBUFS under pressure: count and keep pacing
                errors += 1
                sent += 1
            i += 1
            if i == n:
                i = 0
    took = time.monotonic() - t0
    print(json.dumps({"sent": sent - errors, "send_errors": errors, "seconds": round(took, 3),
                      "rate": round((sent - errors) / took, 1) if took > 0 else 0}), flush=True)


if __name__ == "__main__":
    main()
