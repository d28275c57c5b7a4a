#!/usr/bin/env bash
# Reproduces the ICMP fixtures used by the tests in src/icmp/parse.rs.
#
# Builds three network namespaces  client --- router --- server  joined by veth
# pairs, provokes ICMP / ICMPv6 errors with real TCP (and one UDP) packets sent
# from the client, captures them with tcpdump on the client's interface and
# prints every fixture as   NAME FROM HEX   (v4: HEX starts at the outer IPv4
# header; v6: HEX starts at the ICMPv6 header, FROM is the outer IPv6 source).
#
# Needs root, iproute2, iptables/ip6tables (nft or legacy), tcpdump, python3.
# All traffic stays inside the namespaces created here; they are removed on exit.
#
# Usage: sudo ./capture-fixtures.sh [OUT_FILE]   (default: tests/fixtures/icmp-captured.txt)
set -euo pipefail

OUT=${1:-tests/fixtures/icmp-captured.txt}
P="icmpfx-$$-"
C="${P}client" R="${P}router" S="${P}server"
WORK=$(mktemp -d)
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for ns in "$C" "$R" "$S"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

c() { ip netns exec "$C" "$@"; }
r() { ip netns exec "$R" "$@"; }
s() { ip netns exec "$S" "$@"; }

for ns in "$C" "$R" "$S"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
# veth names are per-namespace, so short fixed names are fine once moved.
ip link add "fxc$$" type veth peer name "fxr1$$"
ip link add "fxs$$" type veth peer name "fxr2$$"
ip link set "fxc$$" netns "$C" name c0
ip link set "fxr1$$" netns "$R" name r1
ip link set "fxr2$$" netns "$R" name r2
ip link set "fxs$$" netns "$S" name s0

ip -n "$C" addr add 10.201.1.2/24 dev c0
ip -n "$C" addr add fd01:1::2/64 dev c0 nodad
ip -n "$R" addr add 10.201.1.1/24 dev r1
ip -n "$R" addr add fd01:1::1/64 dev r1 nodad
ip -n "$R" addr add 10.201.2.1/24 dev r2
ip -n "$R" addr add fd01:2::1/64 dev r2 nodad
ip -n "$S" addr add 10.201.2.2/24 dev s0
ip -n "$S" addr add fd01:2::2/64 dev s0 nodad
ip -n "$C" link set c0 up
ip -n "$R" link set r1 up
ip -n "$R" link set r2 up
ip -n "$S" link set s0 up
ip -n "$C" route add default via 10.201.1.1
ip -n "$C" -6 route add default via fd01:1::1
ip -n "$S" route add default via 10.201.2.1
ip -n "$S" -6 route add default via fd01:2::1

r sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
r sysctl -qw net.ipv4.icmp_ratemask=0 net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0
s sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0

# --- the error sources -------------------------------------------------------
# router: REJECT rules keyed by destination port
r iptables  -I FORWARD -p tcp --dport 81 -j REJECT --reject-with icmp-host-unreachable
r iptables  -I FORWARD -p tcp --dport 83 -j REJECT --reject-with icmp-admin-prohibited
r ip6tables -I FORWARD -p tcp --dport 83 -j REJECT --reject-with icmp6-adm-prohibited
# server: port unreachable instead of RST
s iptables  -I INPUT -p tcp --dport 84 -j REJECT --reject-with icmp-port-unreachable
s ip6tables -I INPUT -p tcp --dport 84 -j REJECT --reject-with icmp6-port-unreachable
# router: no route at all to 10.201.9.0/24 (kernel sends net unreachable);
# an explicit "unreachable" route for fd01:9::/64 (kernel sends ICMPv6 no route)
r ip -6 route add unreachable fd01:9::/64
# router: small MTU towards the server (v4: link MTU 1400; v6: interface IPv6 MTU 1280) (the server keeps 1500, so it advertises
# MSS 1460 and the client sends segments that do not fit): frag needed / packet too big
r ip link set r2 mtu 1400
r sysctl -qw net.ipv6.conf.r2.mtu=1280   # IPv6 forwarding uses the interface's IPv6 MTU

# server: TCP listener on port 80 (v4 + v6) that reads and discards
s python3 - <<'PY' &
import socket, threading
srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
srv.bind(("::", 80)); srv.listen(16); srv.settimeout(60)
def drain(conn):
    conn.settimeout(10)
    try:
        while conn.recv(65536):
            pass
    except OSError:
        pass
    conn.close()
while True:
    try:
        conn, _ = srv.accept()
    except OSError:
        break
    threading.Thread(target=drain, args=(conn,), daemon=True).start()
PY
PIDS+=($!)

c tcpdump -i c0 -U -s 0 -w "$WORK/cap.pcap" 'icmp or (icmp6 and ip6[40] != 133 and ip6[40] != 134 and ip6[40] != 135 and ip6[40] != 136)' 2>"$WORK/tcpdump.log" &
PIDS+=($!)
sleep 2

# --- the client: each probe uses its own source port so the extractor can name it
c python3 - <<'PY'
import socket, time

def tcp(fam, dst, port, sport, ttl=None, ipopts=None, dstopts=None, data=None, timeout=2.0):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET:
        s.bind(("10.201.1.2", sport))
        if ttl is not None:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        if ipopts is not None:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, ipopts)
    else:
        s.bind(("fd01:1::2", sport))
        if ttl is not None:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
        if dstopts is not None:
            s.setsockopt(socket.IPPROTO_IPV6, 59, dstopts)  # IPV6_DSTOPTS
    s.settimeout(timeout)
    try:
        s.connect((dst, port))
        if data:
            s.sendall(data)
            time.sleep(1.0)
    except OSError as e:
        print(f"  probe {sport}: {e}")
    s.close()

V4, V6 = socket.AF_INET, socket.AF_INET6
tcp(V4, "10.201.2.2", 81, 41001)                      # host unreachable (router REJECT)
tcp(V4, "10.201.9.9", 80, 41002)                      # net unreachable (router: no route)
tcp(V4, "10.201.2.2", 83, 41003)                      # communication admin prohibited
tcp(V4, "10.201.2.2", 84, 41004)                      # port unreachable (server REJECT)
tcp(V4, "10.201.2.2", 80, 41005, ttl=1)               # time exceeded in transit
tcp(V4, "10.201.2.2", 80, 41006, data=b"x" * 3000)    # frag needed (router MTU 1400)
# record-route option (type 7, len 7, ptr 4, one slot) + EOL -> IHL 7, with TTL 1
tcp(V4, "10.201.2.2", 80, 41007, ttl=1, ipopts=bytes([7, 7, 4, 0, 0, 0, 0, 0]))
u = socket.socket(V4, socket.SOCK_DGRAM)               # UDP to a closed port: port unreachable
u.bind(("10.201.1.2", 41008)); u.sendto(b"probe", ("10.201.2.2", 9)); time.sleep(0.5); u.close()

tcp(V6, "fd01:2::2", 83, 42001)                        # ICMPv6 administratively prohibited
tcp(V6, "fd01:9::9", 80, 42002)                        # ICMPv6 no route (unreachable route)
tcp(V6, "fd01:2::2", 80, 42003, data=b"y" * 3000)      # ICMPv6 packet too big (route MTU 1280)
tcp(V6, "fd01:2::2", 80, 42004, ttl=1)                 # ICMPv6 hop limit exceeded
# destination options header (PadN, 8 bytes) in front of TCP, hop limit 1
tcp(V6, "fd01:2::2", 80, 42005, ttl=1, dstopts=bytes([0, 0, 1, 4, 0, 0, 0, 0]))
tcp(V6, "fd01:2::2", 84, 42006)                        # ICMPv6 port unreachable (server REJECT)
PY
# echo request -> echo reply, v4 and v6 (python raw sockets: no ping binary needed)
c python3 - <<'PY'
import socket, time
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(int.from_bytes(b[i:i + 2], "big") for i in range(0, len(b), 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF
req = bytearray(b"\x08\x00\x00\x00\x12\x34\x00\x01" + b"tcpping-diag")
req[2:4] = csum(bytes(req)).to_bytes(2, "big")
s4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s4.sendto(bytes(req), ("10.201.1.1", 0))
s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)  # kernel fills the checksum
s6.sendto(b"\x80\x00\x00\x00\x12\x34\x00\x01" + b"tcpping-diag", ("fd01:1::1", 0))
time.sleep(0.5)
PY
sleep 1
kill "${PIDS[1]}"; wait "${PIDS[1]}" 2>/dev/null || true

mkdir -p "$(dirname "$OUT")"
python3 - "$WORK/cap.pcap" > "$OUT" <<'PY'
import struct, sys, ipaddress
NAMES = {
    41001: "v4_host_unreach", 41002: "v4_net_unreach", 41003: "v4_admin_prohib",
    41004: "v4_port_unreach", 41005: "v4_ttl_exceeded", 41006: "v4_frag_needed",
    41007: "v4_ttl_exceeded_ip_options", 41008: "v4_udp_port_unreach",
    42001: "v6_admin_prohib", 42002: "v6_no_route", 42003: "v6_packet_too_big",
    42004: "v6_hop_limit", 42005: "v6_hop_limit_dstopts", 42006: "v6_port_unreach",
}
data = open(sys.argv[1], "rb").read()
magic = struct.unpack("<I", data[:4])[0]
assert magic == 0xA1B2C3D4, hex(magic)
linktype = struct.unpack("<I", data[20:24])[0]
assert linktype == 1, linktype  # Ethernet
off, seen = 24, {}
while off + 16 <= len(data):
    _, _, incl, _ = struct.unpack("<IIII", data[off:off + 16])
    frame = data[off + 16: off + 16 + incl]
    off += 16 + incl
    ethertype = struct.unpack("!H", frame[12:14])[0]
    pkt = frame[14:]
    if ethertype == 0x0800 and pkt[9] == 1:
        ihl = (pkt[0] & 15) * 4
        tlen = struct.unpack("!H", pkt[2:4])[0]
        pkt = pkt[:tlen]
        icmp = pkt[ihl:]
        frm = str(ipaddress.IPv4Address(pkt[12:16]))
        if icmp[0] == 0:
            name = "v4_echo_reply"
        elif icmp[0] not in (3, 4, 11, 12):
            continue  # our own echo request, etc.
        else:
            q = icmp[8:]
            qihl = (q[0] & 15) * 4
            name = NAMES.get(struct.unpack("!H", q[qihl:qihl + 2])[0])
        hexed = pkt.hex()
    elif ethertype == 0x86DD and pkt[6] == 58:
        plen = struct.unpack("!H", pkt[4:6])[0]
        icmp = pkt[40:40 + plen]
        frm = str(ipaddress.IPv6Address(pkt[8:24]))
        if icmp[0] == 129:
            name = "v6_echo_reply"
        elif icmp[0] < 128:
            q = icmp[8:]
            nh, p = q[6], 40
            while nh in (0, 43, 60):  # hop-by-hop, routing, destination options
                nh, p = q[p], p + (q[p + 1] + 1) * 8
            name = NAMES.get(struct.unpack("!H", q[p:p + 2])[0])
        else:
            continue
        hexed = icmp.hex()
    else:
        continue
    if name and name not in seen:
        seen[name] = True
        print(name, frm, hexed)
missing = set(NAMES.values()) | {"v4_echo_reply", "v6_echo_reply"}
missing -= set(seen)
if missing:
    print("missing:", sorted(missing), file=sys.stderr)
    sys.exit(1)
PY
echo "wrote $(wc -l < "$OUT") fixtures to $OUT" >&2
