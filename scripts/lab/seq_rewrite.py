#!/usr/bin/env python3
"""Rewrite TCP sequence numbers as a firewall that randomises ISNs does (Cisco ASA, pf's
"modulate state"): a lab router's forwarding for one port, by hand.

Used by the mbox-seq-rewrite scenario of scripts/lab.sh (scripts/lab/middlebox.sh). It runs in
a router's namespace, where iptables rules (raw PREROUTING) drop what it takes over before the
kernel forwards it: segments to --port arriving on --in with a TTL / hop limit above 1 (the
kernel still answers TTL 1 with its own time exceeded, quoting the SYN unchanged), and
segments from --port arriving on --out. It reads them with a packet socket (which sees them
before netfilter), and sends them on with a raw socket, TTL / hop limit less one:
  toward the server: sequence number + --delta;
  back to the client: acknowledgment number - --delta.
Checksums are recomputed. IPv4 and IPv6 (no extension headers). No scapy: struct and raw
sockets. Stops after --seconds.

usage: seq_rewrite.py --in l0 --out l1 --port 13007 --delta 1000000
"""
import argparse
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def tcp_checksum(pseudo: bytes, tcp: bytearray) -> None:
    tcp[16:18] = b"\0\0"
    tcp[16:18] = struct.pack("!H", csum(pseudo + bytes(tcp)))


def rewrite(ip: bytes, port: int, delta: int, toward_server: bool):
    """The packet to send on (TTL less one, the number rewritten), or None."""
    if not ip:
        return None
    v = ip[0] >> 4
    if v == 4:
        ihl = (ip[0] & 0x0F) * 4
        if len(ip) < ihl + 20 or ip[9] != 6 or ip[8] <= 1:
            return None
        total = struct.unpack("!H", ip[2:4])[0]
        pkt = bytearray(ip[:total])
        tcp_at = ihl
        pkt[8] -= 1
        pkt[10:12] = b"\0\0"
        pkt[10:12] = struct.pack("!H", csum(bytes(pkt[:ihl])))
        src, dst = bytes(pkt[12:16]), bytes(pkt[16:20])
        pseudo = lambda n: src + dst + struct.pack("!BBH", 0, 6, n)
        family, addr = socket.AF_INET, socket.inet_ntop(socket.AF_INET, dst)
    elif v == 6:
        if len(ip) < 60 or ip[6] != 6 or ip[7] <= 1:
            return None
        plen = struct.unpack("!H", ip[4:6])[0]
        pkt = bytearray(ip[: 40 + plen])
        tcp_at = 40
        pkt[7] -= 1
        src, dst = bytes(pkt[8:24]), bytes(pkt[24:40])
        pseudo = lambda n: src + dst + struct.pack("!I3xB", n, 6)
        family, addr = socket.AF_INET6, socket.inet_ntop(socket.AF_INET6, dst)
    else:
        return None
    tcp = bytearray(pkt[tcp_at:])
    sport, dport = struct.unpack("!HH", tcp[:4])
    if toward_server and dport == port:
        seq = struct.unpack("!I", tcp[4:8])[0]
        tcp[4:8] = struct.pack("!I", (seq + delta) % 2**32)
    elif not toward_server and sport == port:
        ack = struct.unpack("!I", tcp[8:12])[0]
        tcp[8:12] = struct.pack("!I", (ack - delta) % 2**32)
    else:
        return None
    tcp_checksum(pseudo(len(tcp)), tcp)
    pkt[tcp_at:] = tcp
    return family, addr, bytes(pkt)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--in", dest="dev_in", required=True)
    ap.add_argument("--out", dest="dev_out", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--delta", type=int, default=1000000)
    ap.add_argument("--seconds", type=float, default=3600)
    a = ap.parse_args()
    socks = {}
    for dev, toward in ((a.dev_in, True), (a.dev_out, False)):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        s.bind((dev, 0))
        socks[s] = toward
    out4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    out6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
    print(f"rewriting port {a.port}: seq + {a.delta} from {a.dev_in}, ack - {a.delta} from {a.dev_out}", flush=True)
    end = time.time() + a.seconds
    n = 0
    while time.time() < end:
        ready, _, _ = select.select(list(socks), [], [], 1.0)
        for s in ready:
            data, info = s.recvfrom(65535)
            if info[2] == PACKET_OUTGOING:
                continue
            got = rewrite(data, a.port, a.delta, socks[s])
            if got is None:
                continue
            family, addr, pkt = got
            try:
                (out4 if family == socket.AF_INET else out6).sendto(pkt, (addr, 0))
                n += 1
            except OSError as e:
                print(f"send to {addr}: {e}", file=sys.stderr, flush=True)
    print(f"rewrote {n} segments", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
