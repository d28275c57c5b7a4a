"""Minimal pcap reader for the fidelity benchmarks: IPv4 TCP and ICMP over Ethernet.

Only what scripts/bench/bench.py needs: per packet the capture time (seconds, float with
nanosecond precision when the file has it), addresses, ports, TCP flags, payload length,
and for ICMP errors the type, code and the quoted TCP ports.
"""
import socket
import struct
from dataclasses import dataclass
from typing import List, Optional

SYN, RST, ACK = 0x02, 0x04, 0x10


@dataclass
class Pkt:
    t: float  # seconds since the first packet's whole second
    src: str
    dst: str
    proto: int
    sport: int = 0
    dport: int = 0
    flags: int = 0
    paylen: int = 0
    icmp_type: Optional[int] = None
    icmp_code: Optional[int] = None
    q_sport: Optional[int] = None
    q_dport: Optional[int] = None
    seq: int = 0
    ack: int = 0


def read(path: str) -> List[Pkt]:
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return []
    magic_le = struct.unpack("<I", data[:4])[0]
    if magic_le in (0xA1B2C3D4, 0xA1B23C4D):
        e = "<"
        magic = magic_le
    else:
        e = ">"
        magic = struct.unpack(">I", data[:4])[0]
    if magic == 0xA1B23C4D:
        scale = 1e-9
    elif magic == 0xA1B2C3D4:
        scale = 1e-6
    else:
        raise ValueError(f"{path}: not a pcap file (pcapng is not supported)")
    linktype = struct.unpack(e + "I", data[20:24])[0]
    off = 24
    out = []
    sec0 = None
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(e + "IIII", data[off:off + 16])
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if sec0 is None:
            sec0 = sec
        t = (sec - sec0) + frac * scale  # relative: keeps nanoseconds in a float
        if linktype == 1:  # Ethernet
            if len(frame) < 14 or frame[12:14] != b"\x08\x00":
                continue
            ip = frame[14:]
        elif linktype == 113:  # Linux cooked
            if len(frame) < 16 or frame[14:16] != b"\x08\x00":
                continue
            ip = frame[16:]
        elif linktype in (101, 12, 228):  # raw IP
            ip = frame
        else:
            continue
        p = parse_ip(t, ip)
        if p is not None:
            out.append(p)
    return out


def parse_ip(t: float, ip: bytes) -> Optional[Pkt]:
    if len(ip) < 20 or ip[0] >> 4 != 4:
        return None
    ihl = (ip[0] & 0x0F) * 4
    total = struct.unpack("!H", ip[2:4])[0]
    proto = ip[9]
    src = socket.inet_ntoa(ip[12:16])
    dst = socket.inet_ntoa(ip[16:20])
    body = ip[ihl:]
    p = Pkt(t, src, dst, proto)
    if proto == 6 and len(body) >= 20:
        p.sport, p.dport, p.seq, p.ack = struct.unpack("!HHII", body[:12])
        doff = (body[12] >> 4) * 4
        p.flags = body[13]
        p.paylen = max(0, total - ihl - doff)
    elif proto == 1 and len(body) >= 8:
        p.icmp_type, p.icmp_code = body[0], body[1]
        q = body[8:]
        if len(q) >= 20 and q[0] >> 4 == 4:
            qihl = (q[0] & 0x0F) * 4
            if q[9] == 6 and len(q) >= qihl + 4:
                p.q_sport, p.q_dport = struct.unpack("!HH", q[qihl:qihl + 4])
    return p
