# shellcheck shell=bash
# The MTU lab: a path with a small link, its "packet too big" let through or dropped, for
# ping -s / -M and trace --size. Sourced by scripts/lab.sh (scenarios mtu-*, run by
# `scripts/lab.sh test`) and by scripts/bench/mtu.sh (the peers table). Needs from its
# caller: BIN; in lab.sh also the lab's state (LAB_ID, LAB_DIR, STATE_FILE) and its helpers
# (die, log, fail, rc_is, state_add, trace_topology_down, tclient's CLIENT_RC).
#
# Namespaces <prefix>-{cli,r1,r2,srv} (prefix: <lab id>-u), built on first use (or by
# `MTU_LAB=1 scripts/lab.sh up`) and removed with the lab (mtu_down_loaded):
#
#   cli u0 ----- r1 ===== r2 ----- srv
#   10.81.1.2  .1.1  .2.1   .2.2  .3.1   10.81.3.2 (PTB let through) and 10.81.3.3 (black hole)
#   fd81:1::2  fd81:1::1 ...                fd81:3::2 and fd81:3::3
#
#   r1 ===== r2 is MTU 1400 (both ends); every other link 1500.
#
# Segments to .3.2 / ::2 that do not fit get r1's ICMP "fragmentation needed" / ICMPv6
# "packet too big" (MTU 1400, from r1's address toward the client: 10.81.1.1, fd81:1::1).
# r1 drops those that quote a packet to .3.3 / ::3 (iptables OUTPUT, a string match on the
# quoted destination address), and r2 those quoting a packet from .3.3 / ::3 (the echo's
# way back): to .3.3 the small link is a path MTU black hole. The server runs
# `tcpping-diag serve` on [::]:12001 (both addresses). ICMP rate limits are off.

U_PORT=12001
U_CLI=10.81.1.2 U_R1=10.81.1.1 U_R2=10.81.2.2 U_PTB=10.81.3.2 U_HOLE=10.81.3.3
U6_CLI=fd81:1::2 U6_R1=fd81:1::1 U6_R2=fd81:2::2 U6_PTB=fd81:3::2 U6_HOLE=fd81:3::3
U_MTU=1400
U_NODES="cli r1 r2 srv"
MTU_NS=""

uns() { # uns NODE CMD... : run CMD in the MTU namespace of NODE
    local n=$1
    shift
    ip netns exec "$U_PREFIX-$n" "$@"
}

# u_link A IFA ADDR_A B IFB ADDR_B N MTU : veth between A and B on link N (10.81.N.0/24,
# fd81:N::/64)
u_link() {
    local a=$1 ifa=$2 xa=$3 b=$4 ifb=$5 xb=$6 n=$7 mtu=$8
    ip link add "$ifa" netns "$U_PREFIX-$a" mtu "$mtu" type veth peer name "$ifb" netns "$U_PREFIX-$b" mtu "$mtu"
    uns "$a" ip addr add "10.81.$n.$xa/24" dev "$ifa"
    uns "$a" ip -6 addr add "fd81:$n::$xa/64" dev "$ifa" nodad
    uns "$b" ip addr add "10.81.$n.$xb/24" dev "$ifb"
    uns "$b" ip -6 addr add "fd81:$n::$xb/64" dev "$ifb" nodad
    uns "$a" ip link set "$ifa" up
    uns "$b" ip link set "$ifb" up
}

u_route() { # u_route NODE VIA4 VIA6 : everything in 10.81/16, fd81::/16 via
    uns "$1" ip route add 10.81.0.0/16 via "$2"
    uns "$1" ip -6 route add fd81::/16 via "$3"
}

# mtu_topology_up PREFIX RECORD : build the path; RECORD NAME is called for every namespace
# before it is created
mtu_topology_up() {
    U_PREFIX=$1
    local record=$2 n hole4 hole6
    for n in $U_NODES; do
        "$record" "$U_PREFIX-$n"
        ip netns add "$U_PREFIX-$n"
        uns "$n" ip link set lo up
        uns "$n" sysctl -q -w net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
            net.ipv4.icmp_ratemask=0 net.ipv6.icmp.ratelimit=0 net.ipv4.tcp_mtu_probing=0 >/dev/null
        uns "$n" sh -c 'echo "" > /proc/sys/net/ipv6/icmp/ratemask' 2>/dev/null || true
        case $n in r1 | r2)
            uns "$n" sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 >/dev/null
            ;;
        esac
    done
    u_link cli u0 2 r1 l0 1 1 1500
    u_link r1 l1 1 r2 l0 2 2 "$U_MTU"
    u_link r2 l1 1 srv s0 2 3 1500
    uns srv ip addr add "$U_HOLE/24" dev s0
    uns srv ip -6 addr add "$U6_HOLE/64" dev s0 nodad
    u_route cli 10.81.1.1 fd81:1::1
    u_route r1 10.81.2.2 fd81:2::2
    uns r2 ip route add 10.81.1.0/24 via 10.81.2.1
    uns r2 ip -6 route add fd81:1::/64 via fd81:2::1
    u_route srv 10.81.3.1 fd81:3::1
    # The black hole: r1's errors quoting a packet to .3.3 (IPv4: outer header 20, ICMP 8,
    # quoted destination at 16: bytes 44-47; IPv6: 40 + 8 + 24: bytes 72-87), and r2's
    # quoting a packet from it (quoted source: 40-43; IPv6 56-71).
    hole4="|0a510303|"
    hole6="|fd810003000000000000000000000003|"
    uns r1 iptables -w -A OUTPUT -p icmp --icmp-type fragmentation-needed \
        -m string --algo bm --from 44 --to 48 --hex-string "$hole4" -j DROP
    uns r1 ip6tables -w -A OUTPUT -p icmpv6 --icmpv6-type packet-too-big \
        -m string --algo bm --from 72 --to 88 --hex-string "$hole6" -j DROP
    uns r2 iptables -w -A OUTPUT -p icmp --icmp-type fragmentation-needed \
        -m string --algo bm --from 40 --to 44 --hex-string "$hole4" -j DROP
    uns r2 ip6tables -w -A OUTPUT -p icmpv6 --icmpv6-type packet-too-big \
        -m string --algo bm --from 56 --to 72 --hex-string "$hole6" -j DROP
}

# mtu_server DIR : tcpping-diag serve on the server port; waits until it listens
mtu_server() {
    local i
    uns srv "$BIN" serve --listen "[::]:$U_PORT" --loss 0 -q >"$1/userve.log" 2>&1 </dev/null &
    for ((i = 0; i < 100; i++)); do
        [ -n "$(uns srv ss -Hltn "sport = :$U_PORT" 2>/dev/null)" ] && return 0
        sleep 0.05
    done
    cat "$1/userve.log" >&2
    return 1
}

# mtu_check_paths : every address answers a small ping; a large one with DF meets the link
mtu_check_paths() {
    local a
    for a in $U_R1 $U_R2 $U_PTB $U_HOLE $U6_R2 $U6_PTB $U6_HOLE; do
        uns cli ping -q -c 1 -W 2 -s 56 "$a" >/dev/null 2>&1 || {
            echo "mtu lab: the client cannot ping $a" >&2
            return 1
        }
    done
}

# mtu_forget : the client and the server forget the path MTUs they learnt (route
# exceptions), so that each case starts as new hosts would: a server that learnt MTU 1400
# toward the client (from r2's "packet too big" about an earlier echo) advertises MSS 1360
# in its SYN-ACK, and the client's requests then fit the small link.
mtu_forget() {
    local n
    for n in cli srv; do
        uns "$n" ip -4 route flush cache 2>/dev/null || true
        uns "$n" ip -6 route flush cache 2>/dev/null || true
    done
}

# ---------------------------------------------------------------- lab.sh integration

SCENARIOS+=(mtu-clean mtu-ping-ptb mtu-ping-black-hole mtu-pmtu mtu-trace-size)

mtu_down_loaded() {
    # shellcheck disable=SC2086
    [ -n "${MTU_NS:-}" ] && trace_topology_down $MTU_NS
    MTU_NS=""
}

mtu_record_ns() { state_add "MTU_NS+=\" $1\""; }

# the MTU path of this lab, built on first use
mtu_ensure_up() {
    U_PREFIX=$LAB_ID-u
    if [ ! -e "$LAB_DIR/mtu.up" ]; then
        log "lab.sh: building the MTU path (namespaces $U_PREFIX-*)"
        mtu_topology_up "$U_PREFIX" mtu_record_ns || die "MTU path setup failed"
        mtu_check_paths || die "MTU path: routing broken"
        mtu_server "$LAB_DIR" || die "MTU path: the server did not start"
        touch "$LAB_DIR/mtu.up"
        log "lab.sh: MTU path up; try: ip netns exec $U_PREFIX-cli $BIN $U_HOLE:$U_PORT -s 1400"
    fi
    mtu_forget
}

# uclient OUT [trace] ARGS... : tcpping-diag ARGS --json in the MTU client namespace;
# stdout OUT.json, stderr OUT.err; sets CLIENT_RC and CLIENT_WALL_MS
uclient() {
    local out=$1 t0 t1
    shift
    echo "  \$ tcpping-diag $* --json" >&2
    t0=$(date +%s%N)
    set +e
    uns cli timeout --foreground 120 "$BIN" "$@" --json >"$out.json" 2>"$out.err" </dev/null
    CLIENT_RC=$?
    set -e
    t1=$(date +%s%N)
    CLIENT_WALL_MS=$(((t1 - t0) / 1000000))
    echo "    exit $CLIENT_RC, ${CLIENT_WALL_MS} ms" >&2
    case "$CLIENT_RC" in 130 | 143) exit "$CLIENT_RC" ;; esac
}

# ucheck FILE JQ-BOOL DESC : the NDJSON (slurped) satisfies JQ-BOOL
ucheck() {
    jq -e -s "$2" "$1" >/dev/null 2>&1 || fail "$3; got: $(jq -c -s '[.[] | select(.type!="start" and .type!="trace_start")]' "$1" 2>/dev/null | head -c 1500)"
}

# A path that fits says nothing false: -s 1300 passes both ways, no notice, no ICMP;
# trace --size 1400 reaches the target with no MTU finding.
scen_mtu-clean() {
    mtu_ensure_up
    local a
    for a in "$U_HOLE" "[$U6_HOLE]" "$U_PTB"; do
        uclient "$W/uclean" "$a:$U_PORT" -n 3 -i 0.1 -s 1300
        rc_is 0 "replies ($a, -s 1300)"
        ucheck "$W/uclean.json" '[.[] | select(.type=="ping")] | length == 3 and all(.status=="reply" and .icmp==null)' "$a -s 1300: 3 replies"
        ucheck "$W/uclean.json" '[.[] | select(.type=="notice")] | length == 0' "$a -s 1300: no notice"
    done
}

# The small link's "packet too big" reaches us: the first large ping is ended by it, named
# with r1 and MTU 1400 (the kernel resends the request smaller at once, so the echo may come
# first: the ping then waits a moment for the raw copy of the error, as the kernel's path
# MTU for its connection says one came); the next pings pass.
scen_mtu-ping-ptb() {
    mtu_ensure_up
    local a r t c
    for a in "$U_PTB" "[$U6_PTB]"; do
        if [ "$a" = "$U_PTB" ]; then r=$U_R1 t=3 c=4; else r=$U6_R1 t=2 c=0; fi
        mtu_forget
        uclient "$W/uptb" "$a:$U_PORT" -n 3 -i 0.3 -s 1400
        rc_is 0 "later pings pass ($a)"
        ucheck "$W/uptb.json" "[.[] | select(.type==\"ping\")][0] | .status==\"icmp\" and .icmp.type==$t and .icmp.code==$c and .icmp.mtu==$U_MTU and .icmp.from==\"$r\" and .icmp.phase==\"echo\"" \
            "$a ping 1: packet too big, MTU $U_MTU, from $r, in the echo phase"
        ucheck "$W/uptb.json" '[.[] | select(.type=="ping")][1:] | all(.status=="reply")' "$a pings 2-3: replies"
        ucheck "$W/uptb.json" '[.[] | select(.type=="notice")] | length == 0' "$a: no black hole said"
    done
}

# No "packet too big" comes back: large pings stall in the echo phase while a 64-byte
# control ping passes: the black hole notice, once; the same on a persistent connection
# (the control on a connection of its own: the stalled one holds every later request).
scen_mtu-ping-black-hole() {
    mtu_ensure_up
    local a p
    for a in "$U_HOLE" "[$U6_HOLE]"; do
        for p in "" --persistent; do
            mtu_forget
            uclient "$W/uhole" "$a:$U_PORT" -n 2 -i 0.1 -W 1 -s 1400 $p
            rc_is 1 "no reply ($a $p)"
            ucheck "$W/uhole.json" '[.[] | select(.type=="ping")] | length == 2 and all(.status=="timeout" and .phase=="echo" and .icmp==null)' \
                "$a $p: both pings time out waiting for the echo"
            ucheck "$W/uhole.json" '[.[] | select(.type=="notice")] | length == 1 and (.[0].kind=="mtu_black_hole") and (.[0].message | contains("large segments (1400 bytes) time out while 64-byte pings pass: a path MTU black hole; no ICMP '"'"'packet too big'"'"' came back"))' \
                "$a $p: one black hole notice"
        done
    done
}

# --pmtu: the router that reports is named with its MTU; the black hole is bisected to the
# byte (1348-byte requests pass: 1400 on the wire) and said to be one; IPv4 and IPv6.
scen_mtu-pmtu() {
    mtu_ensure_up
    local a r
    for a in "$U_PTB" "[$U6_PTB]"; do
        if [ "$a" = "$U_PTB" ]; then r=$U_R1; else r=$U6_R1; fi
        mtu_forget
        uclient "$W/upmtu" "$a:$U_PORT" --pmtu
        rc_is 0 "path MTU found ($a)"
        ucheck "$W/upmtu.json" "last.type==\"pmtu\" and last.path_mtu==$U_MTU and last.router==\"$r\" and last.black_hole==false and last.probes==3" \
            "$a --pmtu: MTU $U_MTU reported by $r, in 3 requests"
    done
    for a in "$U_HOLE" "[$U6_HOLE]"; do
        mtu_forget
        uclient "$W/upmtu" "$a:$U_PORT" --pmtu -W 0.5
        rc_is 0 "path MTU found ($a)"
        ucheck "$W/upmtu.json" "last.type==\"pmtu\" and last.path_mtu==$U_MTU and last.router==null and last.black_hole==true and (last.text | contains(\"black hole\"))" \
            "$a --pmtu: MTU $U_MTU by bisection, no router reports it: a black hole"
        ucheck "$W/upmtu.json" '[.[] | select(.type=="pmtu_probe" and .status=="passed")] | max_by(.size) | .wire == '"$U_MTU" \
            "$a --pmtu: the largest request that passed is $U_MTU bytes on the wire"
    done
}

# trace --size: 1400-byte SYNs fit (to the server and to a closed port, whose reset acknowledges
# the payload too); 1500 bytes meet the small link: its router names the MTU, or a black hole.
scen_mtu-trace-size() {
    mtu_ensure_up
    local a r
    uclient "$W/utrace-ok" trace "$U_PTB:$U_PORT" --size 1400 -W 1
    rc_is 0 "1400-byte SYNs fit"
    ucheck "$W/utrace-ok.json" 'last.type=="trace" and last.verdict=="reached" and last.mtu==null' "--size 1400: reached, no MTU finding"
    # A closed port's reset acknowledges the sized SYN's payload too: still its answer.
    for a in "$U_PTB" "[$U6_PTB]"; do
        uclient "$W/utrace-closed" trace "$a:12999" --size 1400 -W 1
        rc_is 0 "1400-byte SYNs to a closed port: answered ($a)"
        ucheck "$W/utrace-closed.json" '(last.type=="trace" and last.verdict=="reached" and last.mtu==null) and ([.[] | select(.type=="probe" and .port=="closed")] | length >= 3)' \
            "$a:12999 --size 1400: reached, the resets matched"
    done
    for a in "$U_PTB" "[$U6_PTB]"; do
        r=$U_R1
        [ "$a" = "$U_PTB" ] || r=$U6_R1
        uclient "$W/utrace-ptb" trace "$a:$U_PORT" --size 1500 -W 1
        rc_is 1 "not reached ($a)"
        ucheck "$W/utrace-ptb.json" "last.mtu.hop==1 and last.mtu.router==\"$r\" and last.mtu.mtu==$U_MTU and last.mtu.black_hole==false" \
            "$a: hop 1 ($r) is before the small link, says MTU $U_MTU"
    done
    for a in "$U_HOLE" "[$U6_HOLE]"; do
        r=$U_R1
        [ "$a" = "$U_HOLE" ] || r=$U6_R1
        uclient "$W/utrace-hole" trace "$a:$U_PORT" --size 1500 -W 0.5 -m 5
        rc_is 1 "not reached ($a)"
        ucheck "$W/utrace-hole.json" "last.mtu.hop==1 and last.mtu.router==\"$r\" and last.mtu.mtu==null and last.mtu.black_hole==true and (last.text | contains(\"black hole\"))" \
            "$a: a black hole after hop 1 ($r)"
        [ "$CLIENT_WALL_MS" -lt 2500 ] || fail "$a: took ${CLIENT_WALL_MS} ms at -W 0.5: more than one timeout"
    done
}
