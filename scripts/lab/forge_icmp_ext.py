#!/usr/bin/env python3
"""Answer expiring TCP SYNs with an ICMP time exceeded that carries RFC 4884 extensions.

Used by the trace-mpls scenario of scripts/lab.sh (scripts/lab/trace.sh).  It runs inside a
lab router's namespace, where an iptables rule (raw PREROUTING, --ttl-eq 1) keeps the
kernel from answering those SYNs itself: Linux adds no ICMP extensions, so the MPLS label
stack (RFC 4950) and interface information (RFC 5837) a real MPLS router would send are
forged here, byte for byte per the RFCs.

It reads IPv4 packets arriving on --dev with a packet socket, and for every TCP SYN to
--port whose TTL is 1 sends, from --src to the SYN's source (an address inside the lab), an
ICMP time exceeded quoting the SYN:
  compliant (default): the quote padded to 128 octets, the RFC 4884 length attribute (32
                       words), then the extension structure: MPLS label stack and an
                       incoming-interface object (ifIndex, --src, --ifname, --mtu);
  --legacy:            length attribute 0, the quote padded to 128 octets, the structure
                       with the MPLS label stack only (pre-RFC 4884 MPLS routers).
No scapy: struct and raw sockets.  Stops after --seconds or --max answers.

usage: forge_icmp_ext.py --dev l0 --src 10.78.2.2 --port 12003 \
           --labels 24001:0:0:1,16:5:1:255 [--legacy] [--ifname r2-in --mtu 1500]
"""
import argparse
import select
import socket
import struct
import sys
import time

ETH_P_IP = 0x0800


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def label_entry(label: int, tc: int, s: int, ttl: int) -> bytes:
    return struct.pack("!I", (label & 0xFFFFF) << 12 | (tc & 7) << 9 | (s & 1) << 8 | (ttl & 0xFF))


def ext_object(class_num: int, c_type: int, body: bytes) -> bytes:
    return struct.pack("!HBB", 4 + len(body), class_num, c_type) + body


def interface_object(ifindex: int, addr: str, name: str, mtu: int) -> bytes:
    # RFC 5837: role 0 (incoming IP interface), ifIndex, IPAddr, name and MTU present.
    c_type = 0 << 6 | 0x08 | 0x04 | 0x02 | 0x01
    body = struct.pack("!I", ifindex)
    body += struct.pack("!HH", 1, 0) + socket.inet_aton(addr)
    raw = name.encode()[:63]
    length = (len(raw) + 1 + 3) // 4 * 4
    body += bytes([length]) + raw + b"\0" * (length - 1 - len(raw))
    body += struct.pack("!I", mtu)
    return ext_object(2, c_type, body)


def structure(objects: bytes) -> bytes:
    hdr = bytes([2 << 4, 0, 0, 0])
    s = csum(hdr + objects)
    return hdr[:2] + struct.pack("!H", s) + objects


def time_exceeded(quote: bytes, ext: bytes, legacy: bool) -> bytes:
    quote = quote[:128] + b"\0" * max(0, 128 - len(quote))
    length = 0 if legacy else 128 // 4
    msg = struct.pack("!BBHBBH", 11, 0, 0, 0, length, 0) + quote + ext
    return msg[:2] + struct.pack("!H", csum(msg)) + msg[4:]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dev", required=True)
    ap.add_argument("--src", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--labels", default="24001:0:0:1,16:5:1:255",
                    help="label:tc:s:ttl,... top of stack first")
    ap.add_argument("--legacy", action="store_true")
    ap.add_argument("--ifname", default="")
    ap.add_argument("--mtu", type=int, default=1500)
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--max", type=int, default=10000)
    a = ap.parse_args()

    labels = b"".join(label_entry(*map(int, x.split(":"))) for x in a.labels.split(","))
    objects = ext_object(1, 1, labels)
    if not a.legacy and a.ifname:
        objects += interface_object(socket.if_nametoindex(a.dev), a.src, a.ifname, a.mtu)
    ext = structure(objects)

    rx = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
    rx.bind((a.dev, ETH_P_IP))
    tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    tx.bind((a.src, 0))
    print(f"forging time exceeded with extensions ({'legacy' if a.legacy else 'RFC 4884'}) "
          f"for SYNs to port {a.port} expiring on {a.dev}", flush=True)
    end = time.monotonic() + a.seconds
    sent = 0
    while sent < a.max:
        left = end - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([rx], [], [], left)
        if not r:
            continue
        pkt, (_, _, pkttype, _, _) = rx.recvfrom(2048)
        if pkttype == socket.PACKET_OUTGOING or len(pkt) < 20 or pkt[0] >> 4 != 4:
            continue
        ihl = (pkt[0] & 0xF) * 4
        if pkt[9] != 6 or pkt[8] != 1 or len(pkt) < ihl + 14:
            continue
        dport = struct.unpack("!H", pkt[ihl + 2:ihl + 4])[0]
        flags = pkt[ihl + 13]
        if dport != a.port or flags & 0x12 != 0x02:  # SYN without ACK
            continue
        src = socket.inet_ntoa(pkt[12:16])
        tx.sendto(time_exceeded(pkt, ext, a.legacy), (src, 0))
        sent += 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
