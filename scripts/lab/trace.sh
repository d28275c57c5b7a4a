# shellcheck shell=bash
# The trace lab: topologies and scenarios for `tcpping-diag trace`, sourced by scripts/lab.sh
# (scenarios trace-*, run by `scripts/lab.sh test`) and by scripts/bench/trace.sh (the peers
# table). Needs from its caller: BIN, LAB_LIB; in lab.sh also the lab's state (LAB_ID,
# LAB_DIR, STATE_FILE) and its helpers (die, log, fail, rc_is, state_add).
#
# Namespaces <prefix>-{cli,r1,r2,r3,srv,e1,ea,eb,e2} (prefix: <lab id>-t), built on first
# use (or by `TRACE_LAB=1 scripts/lab.sh up`) and removed with the lab (trace_down_loaded,
# called from lab_down_loaded):
#
#   long path:  cli a0 --- r1 --- r2 --- r3 --- srv
#               10.78.1.2  .1.1   .2.2   .3.2   10.78.4.2    (fd78:N::2 likewise)
#
#   diamond:    cli b0 --- e1 ==< ea (10.78.12.2) >== e2 --- srv
#               10.78.11.2  .11.1 ==< eb (10.78.13.2) >== .15.2|.16.2  10.78.14.2
#
# Each link is 10.78.N.0/24 and fd78:N::/64, .1 on the left, .2 on the right; a hop's router
# answers from its address on the link toward the client (e2 from the link the probe came
# in by: icmp_errors_use_inbound_ifaddr). e1 splits traffic to 10.78.14.0/24 (fd78:14::/64)
# over two equal-cost next hops, hashing on the ports (fib_multipath_hash_policy=1, both
# families); e2 sends everything back through ea.
#
# The server namespace runs `tcpping-diag serve` on 12001, 12003, 12007, 12011 ([::]).
# Faults, on r2 (each on its own port, so scenarios never touch each other's rules):
#   12001   nothing: reached, open          12999   nothing listens: reached, closed
#   12007   FORWARD REJECT icmp-admin-prohibited / icmp6-adm-prohibited: path ends at r2
#   12011   FORWARD DROP: silent after r2
#   12003   r2 and r3 drop TTL-1 SYNs before the kernel sees them (raw PREROUTING), and
#           forge_icmp_ext.py answers with time exceeded carrying MPLS labels (r2: RFC 4884
#           with interface information; r3: the legacy 128-octet layout)
# The rate-limit scenario turns r2's ICMP rate limit on for its duration (the lab turns it
# off everywhere else, as scripts/lab.sh does).
# A routing loop: r2 routes 10.78.99.0/24 (fd78:99::/64) to r3, and r3 routes it back to r2,
# so probes to 10.78.99.5 circle between them (r2 answers from 10.78.2.2, r3 from 10.78.3.2;
# over IPv6 r2 answers from the link the probe came in by: fd78:3::1 once it circles) until
# their TTL runs out.

T_PORT_OPEN=12001 T_PORT_MPLS=12003 T_PORT_REJECT=12007 T_PORT_DROP=12011 T_PORT_CLOSED=12999
T_SERVER_PORTS="$T_PORT_OPEN $T_PORT_MPLS $T_PORT_REJECT $T_PORT_DROP"
T_CLI=10.78.1.2 T_R1=10.78.1.1 T_R2=10.78.2.2 T_R3=10.78.3.2 T_SRV=10.78.4.2
T6_R1=fd78:1::1 T6_R2=fd78:2::2 T6_R3=fd78:3::2 T6_SRV=fd78:4::2
T_LOOP=10.78.99.5 T6_LOOP=fd78:99::5
T_D_CLI=10.78.11.2 T_E1=10.78.11.1 T_EA=10.78.12.2 T_EB=10.78.13.2 T_E2A=10.78.15.2
T_E2B=10.78.16.2 T_D_SRV=10.78.14.2
T_NODES="cli r1 r2 r3 srv e1 ea eb e2"
TRACE_NS=""

tns() { # tns NODE CMD... : run CMD in the trace namespace of NODE
    local n=$1
    shift
    ip netns exec "$T_PREFIX-$n" "$@"
}

# t_link A IFA ADDR_A B IFB ADDR_B N : veth between nodes A and B on link N (10.78.N.0/24,
# fd78:N::/64), A gets .ADDR_A, B .ADDR_B
t_link() {
    local a=$1 ifa=$2 xa=$3 b=$4 ifb=$5 xb=$6 n=$7
    ip link add "$ifa" netns "$T_PREFIX-$a" type veth peer name "$ifb" netns "$T_PREFIX-$b"
    tns "$a" ip addr add "10.78.$n.$xa/24" dev "$ifa"
    tns "$a" ip -6 addr add "fd78:$n::$xa/64" dev "$ifa" nodad
    tns "$b" ip addr add "10.78.$n.$xb/24" dev "$ifb"
    tns "$b" ip -6 addr add "fd78:$n::$xb/64" dev "$ifb" nodad
    tns "$a" ip link set "$ifa" up
    tns "$b" ip link set "$ifb" up
}

# t_route NODE DEST VIA : the same route for IPv4 (10.78.DEST) and IPv6 (fd78:DEST)
t_route() {
    local node=$1 v4=$2 v6=$3 via4=$4 via6=$5
    tns "$node" ip route add "$v4" via "$via4"
    tns "$node" ip -6 route add "$v6" via "$via6"
}

# trace_topology_up PREFIX RECORD : build both topologies; RECORD NAME is called for every
# namespace before it is created (so that a failure half way can still be cleaned up)
trace_topology_up() {
    T_PREFIX=$1
    local record=$2 n
    for n in $T_NODES; do
        "$record" "$T_PREFIX-$n"
        ip netns add "$T_PREFIX-$n"
        tns "$n" ip link set lo up
        tns "$n" sysctl -q -w net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
            net.ipv4.icmp_ratemask=0 net.ipv6.icmp.ratelimit=0 net.ipv4.conf.all.rp_filter=0 \
            net.ipv4.conf.default.rp_filter=0 >/dev/null
        tns "$n" sh -c 'echo "" > /proc/sys/net/ipv6/icmp/ratemask' 2>/dev/null || true
        case $n in cli | srv) ;; *)
            tns "$n" sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 >/dev/null
            ;;
        esac
    done
    # long path
    t_link cli a0 2 r1 l0 1 1
    t_link r1 l1 1 r2 l0 2 2
    t_link r2 l1 1 r3 l0 2 3
    t_link r3 l1 1 srv s0 2 4
    # diamond
    t_link cli b0 2 e1 d0 1 11
    t_link e1 da 1 ea d0 2 12
    t_link e1 db 1 eb d0 2 13
    t_link ea d1 1 e2 da 2 15
    t_link eb d1 1 e2 db 2 16
    t_link e2 d1 1 srv s1 2 14
    # routes: long path
    t_route cli 10.78.0.0/16 fd78::/16 10.78.1.1 fd78:1::1
    t_route cli 10.78.14.0/24 fd78:14::/64 10.78.11.1 fd78:11::1
    t_route r1 10.78.0.0/16 fd78::/16 10.78.2.2 fd78:2::2
    t_route r2 10.78.1.0/24 fd78:1::/64 10.78.2.1 fd78:2::1
    t_route r2 10.78.0.0/16 fd78::/16 10.78.3.2 fd78:3::2
    t_route r3 10.78.0.0/16 fd78::/16 10.78.3.1 fd78:3::1
    t_route srv 10.78.0.0/16 fd78::/16 10.78.4.1 fd78:4::1
    t_route srv 10.78.11.0/24 fd78:11::/64 10.78.14.1 fd78:14::1
    # the routing loop: r2 and r3 send 10.78.99.0/24 to each other
    t_route r2 10.78.99.0/24 fd78:99::/64 10.78.3.2 fd78:3::2
    t_route r3 10.78.99.0/24 fd78:99::/64 10.78.3.1 fd78:3::1
    # diamond: e1 balances over ea and eb by a hash of addresses and ports
    tns e1 sysctl -q -w net.ipv4.fib_multipath_hash_policy=1 net.ipv6.fib_multipath_hash_policy=1 >/dev/null
    tns e1 ip route add 10.78.14.0/24 nexthop via 10.78.12.2 weight 1 nexthop via 10.78.13.2 weight 1
    tns e1 ip -6 route add fd78:14::/64 nexthop via fd78:12::2 weight 1 nexthop via fd78:13::2 weight 1
    t_route ea 10.78.14.0/24 fd78:14::/64 10.78.15.2 fd78:15::2
    t_route ea 10.78.11.0/24 fd78:11::/64 10.78.12.1 fd78:12::1
    t_route eb 10.78.14.0/24 fd78:14::/64 10.78.16.2 fd78:16::2
    t_route eb 10.78.11.0/24 fd78:11::/64 10.78.13.1 fd78:13::1
    t_route e2 10.78.11.0/24 fd78:11::/64 10.78.15.1 fd78:15::1
    tns e2 sysctl -q -w net.ipv4.icmp_errors_use_inbound_ifaddr=1 >/dev/null
    # faults on r2
    tns r2 iptables -w -A FORWARD -p tcp --dport "$T_PORT_REJECT" -j REJECT --reject-with icmp-admin-prohibited
    tns r2 ip6tables -w -A FORWARD -p tcp --dport "$T_PORT_REJECT" -j REJECT --reject-with icmp6-adm-prohibited
    tns r2 iptables -w -A FORWARD -p tcp --dport "$T_PORT_DROP" -j DROP
    tns r2 ip6tables -w -A FORWARD -p tcp --dport "$T_PORT_DROP" -j DROP
    for n in r2 r3; do
        tns "$n" iptables -w -t raw -A PREROUTING -p tcp --dport "$T_PORT_MPLS" -m ttl --ttl-eq 1 -j DROP
    done
}

# trace_start_bg NODE LOG CMD... : a background process in a trace namespace; prints its PID
trace_start_bg() {
    local node=$1 logf=$2
    shift 2
    ip netns exec "$T_PREFIX-$node" "$@" >"$logf" 2>&1 </dev/null &
    echo $!
}

# trace_servers DIR : tcpping-diag serve on the server ports, and the forgers; waits until
# they listen. Prints the PIDs.
trace_servers() {
    local dir=$1 p i pids=""
    for p in $T_SERVER_PORTS; do
        pids+=" $(trace_start_bg srv "$dir/tserve-$p.log" "$BIN" serve --listen "[::]:$p" --loss 0 -q)"
    done
    pids+=" $(trace_start_bg r2 "$dir/forge-r2.log" python3 "$LAB_LIB/forge_icmp_ext.py" --dev l0 \
        --src "$T_R2" --port "$T_PORT_MPLS" --labels 24001:0:0:1,16:5:1:255 --ifname r2-in --seconds 3600)"
    pids+=" $(trace_start_bg r3 "$dir/forge-r3.log" python3 "$LAB_LIB/forge_icmp_ext.py" --dev l0 \
        --src "$T_R3" --port "$T_PORT_MPLS" --labels 24002:0:1:1 --legacy --seconds 3600)"
    for ((i = 0; i < 100; i++)); do
        local ok=1
        for p in $T_SERVER_PORTS; do
            [ -n "$(tns srv ss -Hltn "sport = :$p" 2>/dev/null)" ] || ok=0
        done
        grep -q forging "$dir/forge-r2.log" 2>/dev/null || ok=0
        grep -q forging "$dir/forge-r3.log" 2>/dev/null || ok=0
        [ "$ok" -eq 1 ] && break
        sleep 0.05
    done
    [ "$ok" -eq 1 ] || {
        cat "$dir"/tserve-*.log "$dir"/forge-*.log >&2
        return 1
    }
    echo "$pids"
}

# trace_check_paths : every hop of both topologies answers ping (routing is right)
trace_check_paths() {
    local a
    for a in $T_R1 $T_R2 $T_R3 $T_SRV $T6_SRV $T_E1 $T_D_SRV fd78:14::2; do
        tns cli ping -q -c 1 -W 2 "$a" >/dev/null 2>&1 || {
            echo "trace lab: the client cannot ping $a" >&2
            return 1
        }
    done
}

# trace_topology_down NS... : stop every process in the namespaces, delete them
trace_topology_down() {
    local n pid
    for n in "$@"; do
        [ -e "/run/netns/$n" ] || continue
        for pid in $(ip netns pids "$n" 2>/dev/null); do
            kill -TERM "$pid" 2>/dev/null || true
        done
    done
    sleep 0.1
    for n in "$@"; do
        [ -e "/run/netns/$n" ] || continue
        for pid in $(ip netns pids "$n" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        ip netns del "$n" 2>/dev/null || echo "trace lab: could not delete namespace $n" >&2
    done
}

# ---------------------------------------------------------------- lab.sh integration

SCENARIOS+=(trace-reached trace-reject-at-hop-2 trace-silent-drop trace-ipv6 trace-unprivileged
    trace-ecmp-paris trace-ecmp-flows trace-mpls trace-ratelimit trace-loop)

# called from lab_down_loaded: the trace namespaces recorded in the lab's state
trace_down_loaded() {
    # shellcheck disable=SC2086
    [ -n "${TRACE_NS:-}" ] && trace_topology_down $TRACE_NS
    TRACE_NS=""
}

trace_record_ns() { state_add "TRACE_NS+=\" $1\""; }

# the trace topology of this lab, built on first use
trace_ensure_up() {
    T_PREFIX=$LAB_ID-t
    [ -e "$LAB_DIR/trace.up" ] && return 0
    if ! command -v tcpdump >/dev/null 2>&1; then
        log "lab.sh: installing tcpdump"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends tcpdump </dev/null >&2 ||
            die "apt-get install tcpdump failed"
    fi
    log "lab.sh: building the trace topology (namespaces $T_PREFIX-*)"
    trace_topology_up "$T_PREFIX" trace_record_ns || die "trace topology setup failed"
    trace_check_paths || die "trace topology: routing broken"
    # (the servers and forgers are stopped with the namespaces: trace_topology_down)
    trace_servers "$LAB_DIR" >/dev/null || die "trace topology: servers did not start"
    touch "$LAB_DIR/trace.up"
    log "lab.sh: trace topology up; try: ip netns exec $T_PREFIX-cli $BIN trace $T_SRV:$T_PORT_REJECT"
}

# tclient OUT ARGS... : `tcpping-diag trace ARGS --json` in the trace client namespace;
# stdout OUT.json, stderr OUT.err; sets CLIENT_RC and CLIENT_WALL_MS
tclient() {
    local out=$1 t0 t1
    shift
    echo "  \$ tcpping-diag trace $* --json" >&2
    t0=$(date +%s%N)
    set +e
    tns cli timeout --foreground 120 "$BIN" trace "$@" --json >"$out.json" 2>"$out.err" </dev/null
    CLIENT_RC=$?
    set -e
    t1=$(date +%s%N)
    CLIENT_WALL_MS=$(((t1 - t0) / 1000000))
    echo "    exit $CLIENT_RC, ${CLIENT_WALL_MS} ms: $(jq -r 'select(.type=="trace") | .text' "$out.json" 2>/dev/null)" >&2
    case "$CLIENT_RC" in 130 | 143) exit "$CLIENT_RC" ;; esac
}

# tcheck FILE JQ-BOOL DESC : the NDJSON (slurped: `.` is the array of events) satisfies it
tcheck() {
    local f=$1 expr=$2 desc=$3
    jq -e -s "$expr" "$f" >/dev/null 2>&1 || fail "$desc"
}

# the hop events' routers as "hop:addr,addr" lines, for messages
thops() { jq -r 'select(.type=="hop") | "\(.hop):\(.routers | join(","))"' "$1" | tr '\n' ' '; }

# the trace summary has this verdict, text substring
tverdict() { # tverdict FILE VERDICT TEXT-substring
    tcheck "$1" "(map(select(.type==\"trace\")) | length == 1) and (last.type == \"trace\") and (last.verdict == \"$2\") and (last.text | contains(\"$3\"))" \
        "verdict $2 with text containing '$3'; got: $(jq -c -s 'last | {verdict, text}' "$1" 2>/dev/null)"
}

# thop_routers FILE HOP ADDR... : hop HOP was answered by exactly these addresses
thop_routers() {
    local f=$1 hop=$2
    shift 2
    local want
    want=$(printf '%s\n' "$@" | jq -R . | jq -sc 'sort')
    tcheck "$f" "[.[] | select(.type==\"hop\" and .hop==$hop) | .routers[]] | sort == $want" \
        "hop $hop: routers $want expected; hops: $(thops "$f")"
}

scen_trace-reached() {
    trace_ensure_up
    # -W 3: an answer that waited for a timeout would show in the wall time
    tclient "$W/treached" "$T_SRV:$T_PORT_OPEN" -W 3
    rc_is 0 "reached"
    tverdict "$W/treached.json" reached "reached $T_SRV:$T_PORT_OPEN (open) in 4 hops"
    thop_routers "$W/treached.json" 1 "$T_R1"
    thop_routers "$W/treached.json" 2 "$T_R2"
    thop_routers "$W/treached.json" 3 "$T_R3"
    thop_routers "$W/treached.json" 4 "$T_SRV"
    tcheck "$W/treached.json" '[.[] | select(.type=="hop")] | length == 4' "exactly 4 hop events (none beyond the destination)"
    tcheck "$W/treached.json" '[.[] | select(.type=="hop")] | all(.sent == 3 and .received == 3)' \
        "every hop: 3 of 3 answered (hop 4 too: the constant flow's collisions re-probed)"
    tcheck "$W/treached.json" '[.[] | select(.type=="probe" and .hop==4)] | length == 3 and all(.status=="reached" and .port=="open")' \
        "hop 4: 3 probes reached, open"
    tcheck "$W/treached.json" '[.[] | select(.type=="probe" and .hop<4)] | all(.status=="time_exceeded" and .icmp.type==11)' \
        "hops 1-3: time exceeded"
    [ "$CLIENT_WALL_MS" -lt 2000 ] || fail "took ${CLIENT_WALL_MS} ms with -W 3: something waited for a timeout"
    # A slow last link (tbf, 1 Mbit/s, a burst of one SYN): the burst's SYNs reach the
    # server one by one, 0.6 ms apart, and our kernel's RST to its SYN-ACK waits behind them:
    # the constant flow's SYNs collide there, and the re-probes must still give every query
    # its answer, without waiting for a timeout.
    tns r3 tc qdisc add dev l1 root tbf rate 1mbit burst 100 latency 200ms
    tclient "$W/tslow" "$T_SRV:$T_PORT_OPEN" -W 3
    tns r3 tc qdisc del dev l1 root
    rc_is 0 "reached (slow link)"
    tverdict "$W/tslow.json" reached "reached $T_SRV:$T_PORT_OPEN (open) in 4 hops"
    tcheck "$W/tslow.json" '[.[] | select(.type=="hop" and .hop==4)][0] | .sent == 3 and .received == 3' \
        "slow link: hop 4 answered 3 of 3; got $(jq -c 'select(.type=="probe" and .hop==4) | [.query, .status, .rtt_ms, .reprobe]' "$W/tslow.json" | tr '\n' ' ')"
    tcheck "$W/tslow.json" 'last.reprobes >= 1' "slow link: the collisions were re-probed"
    [ "$CLIENT_WALL_MS" -lt 1500 ] || fail "slow link: took ${CLIENT_WALL_MS} ms with -W 3: a re-probe waited for a timeout"
    tclient "$W/tclosed" "$T_SRV:$T_PORT_CLOSED" -W 3
    rc_is 0 "reached (closed)"
    tverdict "$W/tclosed.json" reached "reached $T_SRV:$T_PORT_CLOSED (closed) in 4 hops"
    thop_routers "$W/tclosed.json" 4 "$T_SRV"
    tcheck "$W/tclosed.json" '[.[] | select(.type=="probe" and .hop==4)] | length == 3 and all(.port=="closed")' "hop 4: closed"
    tcheck "$W/tclosed.json" 'last.reprobes == 0' "a closed port needs no re-probe"
}

scen_trace-reject-at-hop-2() {
    trace_ensure_up
    tclient "$W/treject" "$T_SRV:$T_PORT_REJECT" -W 3
    rc_is 1 "not reached"
    tverdict "$W/treject.json" path_ends "path ends at hop 2: $T_R2 says communication administratively prohibited"
    tcheck "$W/treject.json" "last.break_hop == 2 and last.break_router == \"$T_R2\" and last.icmp.type == 3 and last.icmp.code == 13" \
        "trace: break_hop 2, break_router $T_R2, icmp 3/13"
    thop_routers "$W/treject.json" 2 "$T_R2"
    tcheck "$W/treject.json" "[.[] | select(.type==\"probe\" and .hop==3)] | length == 3 and all(.status==\"unreachable\" and .from==\"$T_R2\" and .icmp.code==13)" \
        "hop 3's probes: 3/13 from $T_R2"
    tcheck "$W/treject.json" '[.[] | select(.type=="hop")] | length == 3' "no hop beyond the one refused"
    [ "$CLIENT_WALL_MS" -lt 2000 ] || fail "took ${CLIENT_WALL_MS} ms with -W 3"
}

scen_trace-silent-drop() {
    trace_ensure_up
    tclient "$W/tsilent" "$T_SRV:$T_PORT_DROP" -m 8 -W 0.5
    rc_is 1 "not reached"
    tverdict "$W/tsilent.json" silent_after "silent after hop 2 ($T_R2): nothing answers beyond it; something between hop 2 and hop 3 drops TCP to port $T_PORT_DROP"
    tcheck "$W/tsilent.json" "last.break_hop == 2 and last.break_router == \"$T_R2\"" "break_hop 2, break_router $T_R2"
    tcheck "$W/tsilent.json" '[.[] | select(.type=="hop" and .hop > 2)] | length == 6 and all(.received == 0)' "hops 3-8: nothing"
    # everything in flight at once: one timeout, not one per hop
    [ "$CLIENT_WALL_MS" -lt 1500 ] || fail "8 hops at -W 0.5 took ${CLIENT_WALL_MS} ms: hops probed one after the other?"
}

scen_trace-ipv6() {
    trace_ensure_up
    tclient "$W/tipv6" "[$T6_SRV]:$T_PORT_OPEN" -W 3
    rc_is 0 "reached"
    tverdict "$W/tipv6.json" reached "reached [$T6_SRV]:$T_PORT_OPEN (open) in 4 hops"
    thop_routers "$W/tipv6.json" 1 "$T6_R1"
    thop_routers "$W/tipv6.json" 2 "$T6_R2"
    thop_routers "$W/tipv6.json" 3 "$T6_R3"
    thop_routers "$W/tipv6.json" 4 "$T6_SRV"
    tcheck "$W/tipv6.json" '[.[] | select(.type=="probe" and .hop<4)] | all(.icmp.type==3 and .icmp.code==0)' "ICMPv6 time exceeded (3/0)"
    tcheck "$W/tipv6.json" '[.[] | select(.type=="hop")] | all(.received == 3)' "every query answered"
    tclient "$W/tipv6-reject" "[$T6_SRV]:$T_PORT_REJECT" -W 3
    rc_is 1 "not reached (IPv6 reject)"
    tverdict "$W/tipv6-reject.json" path_ends "path ends at hop 2: $T6_R2 says "
    tcheck "$W/tipv6-reject.json" "last.break_hop == 2 and last.break_router == \"$T6_R2\" and last.icmp.type == 1 and last.icmp.code == 1" \
        "trace: break_hop 2, break_router $T6_R2, ICMPv6 1/1"
}

scen_trace-unprivileged() {
    trace_ensure_up
    local d=$LAB_DIR/bin n
    install -d -m 755 "$d"
    install -m 755 "$BIN" "$d/tcpping-diag"
    echo "  \$ setpriv --reuid=nobody ... tcpping-diag trace $T_SRV:$T_PORT_OPEN -W 3 --json" >&2
    set +e
    tns cli timeout --foreground 60 setpriv --reuid=nobody --regid=nogroup --clear-groups \
        --inh-caps=-all --bounding-set=-all "$d/tcpping-diag" trace "$T_SRV:$T_PORT_OPEN" -W 3 --json \
        >"$W/tunpriv.json" 2>"$W/tunpriv.err" </dev/null
    CLIENT_RC=$?
    set -e
    echo "    exit $CLIENT_RC; stderr: $(head -c 300 "$W/tunpriv.err")" >&2
    rc_is 0 "reached"
    n=$(grep -c CAP_NET_RAW "$W/tunpriv.err" || true)
    [ "$n" -eq 1 ] && [ "$(wc -l <"$W/tunpriv.err")" -eq 1 ] ||
        fail "stderr should be exactly one line naming CAP_NET_RAW: $(head -c 600 "$W/tunpriv.err")"
    tcheck "$W/tunpriv.json" '.[0].probe == "connect"' "trace_start.probe == connect"
    tverdict "$W/tunpriv.json" reached "reached $T_SRV:$T_PORT_OPEN (open) in 4 hops"
    thop_routers "$W/tunpriv.json" 1 "$T_R1"
    thop_routers "$W/tunpriv.json" 2 "$T_R2"
    thop_routers "$W/tunpriv.json" 3 "$T_R3"
    tcheck "$W/tunpriv.json" '[.[] | select(.type=="hop")] | all(.received == 3)' "every query answered"
    set +e
    tns cli timeout --foreground 60 setpriv --reuid=nobody --regid=nogroup --clear-groups \
        --inh-caps=-all --bounding-set=-all "$d/tcpping-diag" trace "$T_SRV:$T_PORT_REJECT" -W 3 --json \
        >"$W/tunpriv-reject.json" 2>"$W/tunpriv-reject.err" </dev/null
    CLIENT_RC=$?
    set -e
    rc_is 1 "not reached (unprivileged reject)"
    tverdict "$W/tunpriv-reject.json" path_ends "path ends at hop 2: $T_R2 says communication administratively prohibited"
    # Times: unprivileged, from the clock read before connect() to the ICMP's kernel receive
    # stamp (the target: TCP_INFO's SYN to SYN-ACK), against the SYN probes' wire times: the
    # same within 20 µs at every hop, IPv4 and IPv6. Three rounds of 10 cycles of each kind,
    # taking turns; compared by the fastest time per hop (delays on a busy machine only add
    # to a time, so the minimum shows the clocks' agreement; the medians are printed too).
    local cmp dst f round
    for dst in "$T_SRV" "[$T6_SRV]"; do
        f=$W/ttimes-$(tr -dc '0-9a-f' <<<"$dst")
        : >"$f-connect.json"
        : >"$f-syn.json"
        for round in 1 2 3; do
            echo "  \$ setpriv --reuid=nobody ... tcpping-diag trace $dst:$T_PORT_OPEN --cycles 10 -i 0.05 -W 3 --json   # round $round" >&2
            set +e
            tns cli timeout --foreground 60 setpriv --reuid=nobody --regid=nogroup --clear-groups \
                --inh-caps=-all --bounding-set=-all "$d/tcpping-diag" trace "$dst:$T_PORT_OPEN" --cycles 10 -i 0.05 -W 3 --json \
                >>"$f-connect.json" 2>"$f-connect.err" </dev/null
            CLIENT_RC=$?
            set -e
            rc_is 0 "reached (unprivileged, 10 cycles, $dst)"
            tclient "$f-syn-$round" "$dst:$T_PORT_OPEN" --probe syn --cycles 10 -i 0.05 -W 3
            rc_is 0 "reached (SYN probes, 10 cycles, $dst)"
            cat "$f-syn-$round.json" >>"$f-syn.json"
        done
        cmp=$(jq -n -c --slurpfile u "$f-connect.json" --slurpfile s "$f-syn.json" '
            def med: sort | .[(length / 2 | floor)];
            def per_hop($ev; f): [$ev[] | select(.type == "probe" and .rtt_ms != null)]
                | group_by(.hop) | map({key: (.[0].hop | tostring), value: (map(.rtt_ms) | f)}) | from_entries;
            per_hop($u; min) as $a | per_hop($s; min) as $b
            | per_hop($u; med) as $am | per_hop($s; med) as $bm
            | [range(1; 5) | tostring | {hop: ., connect_min: $a[.], syn_min: $b[.],
                connect_median: $am[.], syn_median: $bm[.],
                ok: ($a[.] != null and $b[.] != null and ((($a[.] - $b[.]) | fabs) <= 0.020))}]')
        echo "    $dst: rtt_ms per hop (fastest and median of 30 cycles), connect() vs SYN: $cmp" >&2
        jq -e 'length == 4 and all(.ok)' <<<"$cmp" >/dev/null ||
            fail "$dst: unprivileged times differ from the SYN probes' by more than 20 µs at some hop: $cmp"
    done
}

scen_trace-ecmp-paris() {
    trace_ensure_up
    tclient "$W/tparis" "$T_D_SRV:$T_PORT_OPEN" --cycles 10 -i 0.05 -W 3
    rc_is 0 "reached"
    tverdict "$W/tparis.json" reached "reached $T_D_SRV:$T_PORT_OPEN (open) in 4 hops"
    tcheck "$W/tparis.json" 'last.cycles == 10' "10 cycles"
    tcheck "$W/tparis.json" '[.[] | select(.type=="hop")] | all((.routers | length) == 1 and .sent == 30 and .received == 30)' \
        "one router per hop over 10 cycles, every query answered; hops: $(thops "$W/tparis.json")"
    # and the path is one branch: ea then e2's address on ea's link, or eb then eb's
    tcheck "$W/tparis.json" "[.[] | select(.type==\"hop\" and (.hop==2 or .hop==3)) | .routers[0]] as \$p | \$p == [\"$T_EA\",\"$T_E2A\"] or \$p == [\"$T_EB\",\"$T_E2B\"]" \
        "hops 2 and 3 on one branch; hops: $(thops "$W/tparis.json")"
}

scen_trace-ecmp-flows() {
    trace_ensure_up
    # 16 flows: both branches are found unless all 16 hash to one (2 in 2^16)
    tclient "$W/tflows" "$T_D_SRV:$T_PORT_OPEN" --flows 16 -q 1 -W 3
    rc_is 0 "reached"
    tverdict "$W/tflows.json" reached "reached $T_D_SRV:$T_PORT_OPEN (open) in 4 hops"
    thop_routers "$W/tflows.json" 2 "$T_EA" "$T_EB"
    thop_routers "$W/tflows.json" 3 "$T_E2A" "$T_E2B"
    # a flow that took ea at hop 2 reaches e2 over ea's link at hop 3
    tcheck "$W/tflows.json" "([.[] | select(.type==\"hop\" and .hop==2) | .router_details[] | select(.address==\"$T_EA\") | .flows] == [.[] | select(.type==\"hop\" and .hop==3) | .router_details[] | select(.address==\"$T_E2A\") | .flows])" \
        "the flows of $T_EA at hop 2 are those of $T_E2A at hop 3"
    tcheck "$W/tflows.json" '[.[] | select(.type=="hop" and .hop==2)][0] | .flows_answered == 16 and .next_hops == 2 and .flows_needed == 12 and .enough_flows' \
        "hop 2: 16 flows answered, 2 next hops, 12 needed (per router, one branching): enough"
    tcheck "$W/tflows.json" '[.[] | select(.type=="probe" and .hop==4)] | length == 16 and all(.port=="open")' "16 flows reached, open"
}

scen_trace-mpls() {
    trace_ensure_up
    local cap=$LAB_DIR/tmpls.pcap tpid i
    # capture what the client receives, for the fixtures (TRACE_FIXTURES=FILE keeps them)
    tns cli tcpdump -Z root --immediate-mode -i a0 -U -n -w "$cap" icmp >/dev/null 2>"$LAB_DIR/tcpdump.err" </dev/null &
    tpid=$!
    for ((i = 0; i < 100; i++)); do
        grep -q "listening on" "$LAB_DIR/tcpdump.err" 2>/dev/null && break
        sleep 0.05
    done
    tclient "$W/tmpls" "$T_SRV:$T_PORT_MPLS" -W 3
    sleep 0.2
    kill "$tpid" 2>/dev/null || true
    wait "$tpid" 2>/dev/null || true
    rc_is 0 "reached"
    tverdict "$W/tmpls.json" reached "reached $T_SRV:$T_PORT_MPLS (open) in 4 hops"
    tcheck "$W/tmpls.json" '[.[] | select(.type=="probe" and .hop==2)] | length == 3 and all(.mpls == [{"label":24001,"tc":0,"s":false,"ttl":1},{"label":16,"tc":5,"s":true,"ttl":255}])' \
        "hop 2: MPLS 24001 / 16 in every probe"
    tcheck "$W/tmpls.json" "[.[] | select(.type==\"probe\" and .hop==2)][0].interfaces == [{\"role\":\"incoming\",\"ifindex\":$(tns r2 cat /sys/class/net/l0/ifindex),\"address\":\"$T_R2\",\"name\":\"r2-in\",\"mtu\":1500}]" \
        "hop 2: interface information (incoming, r2's l0, r2-in, 1500)"
    tcheck "$W/tmpls.json" '[.[] | select(.type=="probe" and .hop==3)] | all(.mpls == [{"label":24002,"tc":0,"s":true,"ttl":1}] and .interfaces == [])' \
        "hop 3 (legacy layout): MPLS 24002"
    tcheck "$W/tmpls.json" '[.[] | select(.type=="hop" and .hop==2)][0].router_details[0].mpls == [[{"label":24001,"tc":0,"s":false,"ttl":1},{"label":16,"tc":5,"s":true,"ttl":255}]]' \
        "hop event 2 carries the label stack"
    tcheck "$W/tmpls.json" '[.[] | select(.type=="probe" and (.hop==1 or .hop==4))] | all(.mpls == [])' "no labels at hops 1 and 4"
    if [ -n "${TRACE_FIXTURES:-}" ]; then
        # the first time exceeded from each of r1, r2, r3, from its IPv4 header on
        python3 - "$cap" "$TRACE_FIXTURES" "$T_R1" "$T_R2" "$T_R3" <<'PY'
import socket, struct, sys
cap, out, r1, r2, r3 = sys.argv[1:]
names = {r1: "v4_te_plain", r2: "v4_te_mpls_rfc4884", r3: "v4_te_mpls_legacy"}
data = open(cap, "rb").read()
e = "<" if struct.unpack("<I", data[:4])[0] in (0xA1B2C3D4, 0xA1B23C4D) else ">"
off, seen = 24, {}
while off + 16 <= len(data):
    incl = struct.unpack(e + "I", data[off + 8:off + 12])[0]
    pkt = data[off + 16:off + 16 + incl][14:]  # Ethernet header off
    off += 16 + incl
    if len(pkt) > 20 and pkt[9] == 1 and pkt[20] == 11:
        src = socket.inet_ntoa(pkt[12:16])
        if src in names and src not in seen:
            seen[src] = pkt.hex()
with open(out, "w") as f:
    f.write("# ICMP time exceeded as the trace lab's client received them (tcpdump on its veth,\n"
            "# Ethernet header removed): from r1 (Linux, no extension), r2 (forge_icmp_ext.py:\n"
            "# RFC 4884 length attribute, MPLS 24001/16, interface information) and r3 (the\n"
            "# legacy 128-octet layout, MPLS 24002), each quoting a trace SYN to 10.78.4.2:12003.\n"
            "# Made by: TRACE_FIXTURES=FILE scripts/lab.sh run trace-mpls\n"
            "# name hex\n")
    for src, name in names.items():
        if src in seen:
            f.write(f"{name} {seen[src]}\n")
PY
        echo "    fixtures: $TRACE_FIXTURES" >&2
    fi
}

scen_trace-ratelimit() {
    trace_ensure_up
    # r2 rate-limits its ICMP as Linux does by default (a token bucket per destination,
    # burst 6, then one per second), for this scenario only
    tns r2 sysctl -q -w net.ipv4.icmp_ratemask=6168 net.ipv4.icmp_ratelimit=1000 >/dev/null
    tclient "$W/trate" "$T_SRV:$T_PORT_OPEN" --cycles 5 -i 0.1 -W 1
    tns r2 sysctl -q -w net.ipv4.icmp_ratemask=0 >/dev/null
    rc_is 0 "reached"
    tverdict "$W/trate.json" reached "reached $T_SRV:$T_PORT_OPEN (open) in 4 hops"
    tcheck "$W/trate.json" '[.[] | select(.type=="hop" and .hop==2)][0] | .sent == 15 and .received > 0 and .received < 15 and .rate_limited' \
        "hop 2: some of 15 answered, flagged rate-limited; got $(jq -c 'select(.type=="hop" and .hop==2) | {sent,received,rate_limited}' "$W/trate.json")"
    tcheck "$W/trate.json" '[.[] | select(.type=="hop" and .hop!=2)] | all(.received == .sent and (.rate_limited | not))' \
        "hops 1, 3, 4: every probe answered"
}

scen_trace-loop() {
    trace_ensure_up
    # -W 3: the loop is named as soon as it repeats; waiting for the hops above it (or their
    # timeouts) would show in the wall time
    tclient "$W/tloop" "$T_LOOP:$T_PORT_OPEN" -W 3
    rc_is 1 "not reached: a loop"
    tverdict "$W/tloop.json" loop "routing loop between $T_R2 and $T_R3 from hop 2: packets to $T_LOOP:$T_PORT_OPEN circle until their TTL runs out"
    tcheck "$W/tloop.json" "last.break_hop == 2 and last.break_router == \"$T_R2\" and last.loop_routers == [\"$T_R2\",\"$T_R3\"]" \
        "break_hop 2, break_router $T_R2, loop_routers [$T_R2, $T_R3]"
    thop_routers "$W/tloop.json" 1 "$T_R1"
    thop_routers "$W/tloop.json" 4 "$T_R2"
    thop_routers "$W/tloop.json" 5 "$T_R3"
    tcheck "$W/tloop.json" '[.[] | select(.type=="hop")] | length == 5' \
        "hop events 1 to 5 (two full periods), none above; hops: $(thops "$W/tloop.json")"
    [ "$CLIENT_WALL_MS" -lt 2000 ] || fail "took ${CLIENT_WALL_MS} ms with -W 3: something waited for a timeout"
    tclient "$W/tloop6" "[$T6_LOOP]:$T_PORT_OPEN" -W 3
    rc_is 1 "not reached: a loop (IPv6)"
    # (r2's ICMPv6 errors come from the address of the link the probe came in by: fd78:2::2
    # at hop 2, fd78:3::1 when it comes back from r3; so by address the loop is fd78:3::2
    # and fd78:3::1, from hop 3)
    tverdict "$W/tloop6.json" loop "routing loop between $T6_R3 and fd78:3::1 from hop 3: packets to [$T6_LOOP]:$T_PORT_OPEN circle"
    tcheck "$W/tloop6.json" '[.[] | select(.type=="hop")] | length == 6' "IPv6: hop events 1 to 6; hops: $(thops "$W/tloop6.json")"
    # the human lines end with the verdict
    echo "  \$ tcpping-diag trace $T_LOOP:$T_PORT_OPEN -q 1" >&2
    set +e
    tns cli timeout --foreground 60 "$BIN" trace "$T_LOOP:$T_PORT_OPEN" -q 1 -W 3 >"$W/tloop.txt" 2>&1 </dev/null
    CLIENT_RC=$?
    set -e
    rc_is 1 "not reached: a loop (human)"
    [ "$(tail -n 1 "$W/tloop.txt")" = "routing loop between $T_R2 and $T_R3 from hop 2: packets to $T_LOOP:$T_PORT_OPEN circle until their TTL runs out" ] ||
        fail "human output's last line: $(tail -n 3 "$W/tloop.txt")"
}
