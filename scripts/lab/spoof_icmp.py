#!/usr/bin/env python3
"""Inject forged ICMPv4 errors that quote a TCP segment of NO ping.

Used by scenario 17 of scripts/lab.sh.  It runs inside a lab namespace (the
router) and sends, through a raw socket, ICMP errors to the client whose
quoted IPv4+TCP header names the right addresses but a source/destination
port that no ping of the client uses.  tcpping-diag must count these in
summary.unmatched_icmp and never attribute them to a ping.

Only ever sends to the --to address given (an address inside the lab).

usage: spoof_icmp.py --to 10.77.1.2 --quote-src 10.77.1.2 --quote-dst 10.77.2.2 \
           --sport 1 --dport 12001 [--type 3 --code 1] [--count 3] [--interval 0.2]
"""
import argparse
import socket
import struct
import sys
import time


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def quoted_segment(src: str, dst: str, sport: int, dport: int, seq: int) -> bytes:
    # IPv4 header of the "offending" packet (as the client would have sent it)
    total_len = 20 + 40  # header + a SYN with options, as a real SYN would be
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total_len, 0x1234, 0x4000, 63, 6, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    # the first 8 bytes of the TCP header: ports and sequence number
    tcp8 = struct.pack("!HHI", sport, dport, seq)
    return ip + tcp8


def icmp_error(icmp_type: int, code: int, quoted: bytes) -> bytes:
    hdr = struct.pack("!BBHI", icmp_type, code, 0, 0)
    pkt = hdr + quoted
    return pkt[:2] + struct.pack("!H", csum(pkt)) + pkt[4:]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--to", required=True)
    ap.add_argument("--quote-src", required=True)
    ap.add_argument("--quote-dst", required=True)
    ap.add_argument("--sport", type=int, required=True)
    ap.add_argument("--dport", type=int, required=True)
    ap.add_argument("--seq", type=lambda s: int(s, 0), default=0x11223344)
    ap.add_argument("--type", type=int, default=3)
    ap.add_argument("--code", type=int, default=1)
    ap.add_argument("--count", type=int, default=3)
    ap.add_argument("--interval", type=float, default=0.2)
    a = ap.parse_args()
    if a.count > 100:
        print("refusing to send more than 100 packets", file=sys.stderr)
        return 2
    pkt = icmp_error(a.type, a.code,
                     quoted_segment(a.quote_src, a.quote_dst, a.sport, a.dport, a.seq))
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    for i in range(a.count):
        s.sendto(pkt, (a.to, 0))
        if i + 1 < a.count:
            time.sleep(a.interval)
    print(f"sent {a.count} forged ICMP {a.type}/{a.code} to {a.to} quoting "
          f"{a.quote_src}:{a.sport} -> {a.quote_dst}:{a.dport}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
