# shellcheck shell=bash
# The middlebox lab: middleboxes that rewrite the SYN, for `tcpping-diag trace`'s per-hop
# comparison of the quotes in time exceeded with the SYN as sent (scenarios mbox-*, run by
# `scripts/lab.sh test`). Sourced by scripts/lab.sh after scripts/lab/trace.sh (it uses its
# tcheck and trace_topology_down). Needs from its caller: BIN, LAB_LIB, LAB_ID, LAB_DIR, die,
# log, fail, rc_is, state_add.
#
# Namespaces <lab id>-m{cli,r1,r2,r3,srv}, built on first use (or by `MBOX_LAB=1 scripts/lab.sh
# up`), removed with the lab (mbox_down_loaded, from lab_down_loaded):
#
#   cli a0 --- r1 --- r2 --- r3 --- srv
#   10.80.1.2  .1.1   .2.2   .3.2   10.80.4.2      (fd80:N::2 likewise; link N is
#                                                   10.80.N.0/24 and fd80:N::/64)
#
# icmp_ratemask=0 everywhere (no ICMP rate limit). The server runs `tcpping-diag serve` on
# every port below; each fault has its own port, so scenarios never touch each other:
#   13001  nothing: the untouched path
#   13002  r2: TCPMSS --set-mss 1400 (IPv6: 1380), in mangle FORWARD (both directions)
#   13003  r2: TCPOPTSTRIP of sack-permitted and timestamp
#   13004  r2: ECN --ecn-tcp-remove (IPv4); IPv6, where ip6tables has no ECN target: nftables
#          sets an ECN-setup SYN's flags to SYN alone
#   13005  r2: DSCP --set-dscp 0 (probed with --dscp 46)
#   13006  r1: MASQUERADE (conntrack translates the quotes of later hops back: hidden)
#   13008  r1: a stateless NAT (nftables payload rewriting, no conntrack): the source becomes
#          10.80.9.9 / fd80:9::9 (on r1's lo, routed to r1 by r2; not on l1, where IPv6
#          MASQUERADE would pick it), and what comes back to it is sent on to the client;
#          the quotes of later hops keep the rewritten source: visible
#   13007  r2: seq_rewrite.py adds 1,000,000 to the SYN's sequence number (and takes it off
#          the SYN-ACK's acknowledgment), a firewall's ISN randomisation; r2 drops the
#          packets it rewrites in raw PREROUTING (TTL above 1) and sends them on itself.
#
# A change made by r2 shows in the quote of hop 3 (r3): r2's own time exceeded quotes the
# SYN as it arrived, before its FORWARD rules.

M_OPEN=13001 M_MSS=13002 M_STRIP=13003 M_ECN=13004 M_DSCP=13005 M_NAT=13006 M_SEQ=13007
M_SNAT=13008
M_PORTS="$M_OPEN $M_MSS $M_STRIP $M_ECN $M_DSCP $M_NAT $M_SEQ $M_SNAT"
M_NAT_ADDR=10.80.9.9 M6_NAT_ADDR=fd80:9::9
M_CLI=10.80.1.2 M_R1=10.80.1.1 M_R2=10.80.2.2 M_R3=10.80.3.2 M_SRV=10.80.4.2
M6_CLI=fd80:1::2 M6_R1=fd80:1::1 M6_R2=fd80:2::2 M6_R3=fd80:3::2 M6_SRV=fd80:4::2
M_NODES="cli r1 r2 r3 srv"
MBOX_NS=""

mns() { # mns NODE CMD... : run CMD in the middlebox namespace of NODE
    local n=$1
    shift
    ip netns exec "$M_PREFIX-$n" "$@"
}

# m_link A IFA B IFB N : veth between A (.1) and B (.2) on link N (link 1: r1 .1, cli .2)
m_link() {
    local a=$1 ifa=$2 b=$3 ifb=$4 n=$5
    ip link add "$ifa" netns "$M_PREFIX-$a" type veth peer name "$ifb" netns "$M_PREFIX-$b"
    mns "$a" ip addr add "10.80.$n.1/24" dev "$ifa"
    mns "$a" ip -6 addr add "fd80:$n::1/64" dev "$ifa" nodad
    mns "$b" ip addr add "10.80.$n.2/24" dev "$ifb"
    mns "$b" ip -6 addr add "fd80:$n::2/64" dev "$ifb" nodad
    mns "$a" ip link set "$ifa" up
    mns "$b" ip link set "$ifb" up
}

# m_route NODE VIA4 VIA6 : everything in 10.80.0.0/16 and fd80::/16 via these
m_route() {
    mns "$1" ip route add 10.80.0.0/16 via "$2"
    mns "$1" ip -6 route add fd80::/16 via "$3"
}

# both ip4 and ip6 tables: m_ipt NODE ARGS... (IPv6 only where the target exists there)
m_ipt() {
    local n=$1
    shift
    mns "$n" iptables -w "$@"
    mns "$n" ip6tables -w "$@"
}

mbox_topology_up() {
    M_PREFIX=$1
    local record=$2 n
    for n in $M_NODES; do
        "$record" "$M_PREFIX-$n"
        ip netns add "$M_PREFIX-$n"
        mns "$n" ip link set lo up
        mns "$n" sysctl -q -w net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
            net.ipv4.icmp_ratemask=0 net.ipv6.icmp.ratelimit=0 net.ipv4.conf.all.rp_filter=0 \
            net.ipv4.conf.default.rp_filter=0 >/dev/null
        mns "$n" sh -c 'echo "" > /proc/sys/net/ipv6/icmp/ratemask' 2>/dev/null || true
        case $n in cli | srv) ;; *)
            mns "$n" sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 >/dev/null
            ;;
        esac
    done
    m_link r1 l0 cli a0 1
    m_link r1 l1 r2 l0 2
    m_link r2 l1 r3 l0 3
    m_link r3 l1 srv s0 4
    m_route cli "$M_R1" "$M6_R1"
    m_route r1 10.80.2.2 fd80:2::2
    mns r2 ip route add 10.80.1.0/24 via 10.80.2.1
    mns r2 ip -6 route add fd80:1::/64 via fd80:2::1
    m_route r2 10.80.3.2 fd80:3::2
    m_route r3 10.80.3.1 fd80:3::1
    m_route srv 10.80.4.1 fd80:4::1
    # the faults
    mns r2 iptables -w -t mangle -A FORWARD -p tcp --dport "$M_MSS" --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1400
    mns r2 ip6tables -w -t mangle -A FORWARD -p tcp --dport "$M_MSS" --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1380
    m_ipt r2 -t mangle -A FORWARD -p tcp --dport "$M_STRIP" -j TCPOPTSTRIP --strip-options sack-permitted,timestamp
    mns r2 iptables -w -t mangle -A FORWARD -p tcp --dport "$M_ECN" -j ECN --ecn-tcp-remove
    mns r2 nft -f - <<EOF
table ip6 mbox_ecn {
    chain bleach {
        type filter hook forward priority -150;
        tcp dport $M_ECN tcp flags == syn | ecn | cwr tcp flags set syn
    }
}
EOF
    m_ipt r2 -t mangle -A FORWARD -p tcp --dport "$M_DSCP" -j DSCP --set-dscp 0
    mns r1 iptables -w -t nat -A POSTROUTING -o l1 -p tcp --dport "$M_NAT" -j MASQUERADE
    mns r1 ip6tables -w -t nat -A POSTROUTING -o l1 -p tcp --dport "$M_NAT" -j MASQUERADE
    mns r1 ip addr add "$M_NAT_ADDR/32" dev lo
    mns r1 ip -6 addr add "$M6_NAT_ADDR/128" dev lo nodad
    mns r2 ip route add "$M_NAT_ADDR/32" via 10.80.2.1
    mns r2 ip -6 route add "$M6_NAT_ADDR/128" via fd80:2::1
    mns r1 nft -f - <<EOF
table inet mbox_snat {
    chain post {
        type filter hook postrouting priority 100;
        oifname "l1" ip saddr $M_CLI tcp dport $M_SNAT ip saddr set $M_NAT_ADDR
        oifname "l1" ip6 saddr $M6_CLI tcp dport $M_SNAT ip6 saddr set $M6_NAT_ADDR
    }
    chain pre {
        # (not neighbour discovery: the router answers for its own address)
        type filter hook prerouting priority -300;
        iifname "l1" ip daddr $M_NAT_ADDR tcp sport $M_SNAT ip daddr set $M_CLI
        iifname "l1" ip daddr $M_NAT_ADDR icmp type { destination-unreachable, time-exceeded } ip daddr set $M_CLI
        iifname "l1" ip6 daddr $M6_NAT_ADDR tcp sport $M_SNAT ip6 daddr set $M6_CLI
        iifname "l1" ip6 daddr $M6_NAT_ADDR icmpv6 type { destination-unreachable, packet-too-big, time-exceeded } ip6 daddr set $M6_CLI
    }
}
EOF
    # the sequence rewriter takes over what it rewrites (the kernel still answers TTL 1)
    mns r2 iptables -w -t raw -A PREROUTING -i l0 -p tcp --dport "$M_SEQ" -m ttl --ttl-gt 1 -j DROP
    mns r2 ip6tables -w -t raw -A PREROUTING -i l0 -p tcp --dport "$M_SEQ" -m hl --hl-gt 1 -j DROP
    m_ipt r2 -t raw -A PREROUTING -i l1 -p tcp --sport "$M_SEQ" -j DROP
}

mbox_start_bg() { # mbox_start_bg NODE LOG CMD... : prints its PID
    local node=$1 logf=$2
    shift 2
    ip netns exec "$M_PREFIX-$node" "$@" >"$logf" 2>&1 </dev/null &
    echo $!
}

mbox_servers() { # mbox_servers DIR : the servers and the rewriter; waits until they are ready
    local dir=$1 p i ok
    for p in $M_PORTS; do
        mbox_start_bg srv "$dir/mserve-$p.log" "$BIN" serve --listen "[::]:$p" --loss 0 -q >/dev/null
    done
    mbox_start_bg r2 "$dir/seq-rewrite.log" python3 "$LAB_LIB/seq_rewrite.py" --in l0 --out l1 \
        --port "$M_SEQ" --delta 1000000 --seconds 3600 >/dev/null
    for ((i = 0; i < 100; i++)); do
        ok=1
        for p in $M_PORTS; do
            [ -n "$(mns srv ss -Hltn "sport = :$p" 2>/dev/null)" ] || ok=0
        done
        grep -q rewriting "$dir/seq-rewrite.log" 2>/dev/null || ok=0
        [ "$ok" -eq 1 ] && return 0
        sleep 0.05
    done
    cat "$dir"/mserve-*.log "$dir/seq-rewrite.log" >&2
    return 1
}

# ---------------------------------------------------------------- lab.sh integration

SCENARIOS+=(mbox-clean mbox-mss-clamp mbox-option-strip mbox-ecn-bleach mbox-dscp-remark
    mbox-nat mbox-seq-rewrite)

mbox_down_loaded() {
    # shellcheck disable=SC2086
    [ -n "${MBOX_NS:-}" ] && trace_topology_down $MBOX_NS
    MBOX_NS=""
}

mbox_record_ns() { state_add "MBOX_NS+=\" $1\""; }

mbox_ensure_up() {
    M_PREFIX=$LAB_ID-m
    [ -e "$LAB_DIR/mbox.up" ] && return 0
    if ! command -v nft >/dev/null 2>&1; then
        log "lab.sh: installing nftables"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nftables </dev/null >&2 ||
            die "apt-get install nftables failed"
    fi
    log "lab.sh: building the middlebox topology (namespaces $M_PREFIX-*)"
    mbox_topology_up "$M_PREFIX" mbox_record_ns || die "middlebox topology setup failed"
    local a
    for a in $M_SRV $M6_SRV; do
        mns cli ping -q -c 1 -W 2 "$a" >/dev/null 2>&1 || die "middlebox topology: the client cannot ping $a"
    done
    mbox_servers "$LAB_DIR" || die "middlebox topology: servers did not start"
    touch "$LAB_DIR/mbox.up"
    log "lab.sh: middlebox topology up; try: ip netns exec $M_PREFIX-cli $BIN trace $M_SRV:$M_MSS"
}

# mclient OUT ARGS... : `tcpping-diag trace ARGS --json` in the client namespace, and the same
# without --json (OUT.txt, for the eye); sets CLIENT_RC
mclient() {
    local out=$1
    shift
    echo "  \$ tcpping-diag trace $* -m 6 --json" >&2
    set +e
    mns cli timeout --foreground 60 "$BIN" trace "$@" -m 6 --json >"$out.json" 2>"$out.err" </dev/null
    CLIENT_RC=$?
    mns cli timeout --foreground 60 "$BIN" trace "$@" -m 6 >"$out.txt" 2>&1 </dev/null
    set -e
    echo "    exit $CLIENT_RC: $(jq -r 'select(.type=="trace") | .text' "$out.json" 2>/dev/null)" >&2
    grep -E '^(hop |target|middleboxes)' "$out.txt" | sed 's/^/    | /' >&2 || true
    case "$CLIENT_RC" in 130 | 143) exit "$CLIENT_RC" ;; esac
}

# mchanges FILE : the summary's changes, compact, for messages
mchanges() { jq -c -s 'last | {changes, syn_ack}' "$1" 2>/dev/null; }

# mchange FILE FIELD SENT SEEN HOP TO_TARGET : the summary has exactly this change
mchange() {
    local f=$1 field=$2 sent=$3 seen=$4 hop=$5 to=$6
    tcheck "$f" "last.changes | map(select(.field==\"$field\")) | length == 1 and .[0].sent == $sent and .[0].seen == $seen and .[0].hop == $hop and .[0].to_target == $to" \
        "change $field $sent -> $seen at hop $hop (to_target $to); got $(mchanges "$f")"
}

# monly FILE FIELD... : the summary's changes are exactly these fields
monly() {
    local f=$1
    shift
    local want
    want=$(printf '%s\n' "$@" | jq -R . | jq -sc 'map(select(. != "")) | sort')
    tcheck "$f" "last.changes | map(.field) | sort == $want" "changes exactly $want; got $(mchanges "$f")"
}

# mreached FILE : reached in 4 hops, every hop before the target with a full quote, and no
# probe beyond those trace sends anyway (mclient's -m 6: probes_sent = 6 hops x 3 queries +
# re-probes: the comparison costs none)
mreached() {
    tcheck "$1" 'last.verdict == "reached" and last.hops == 4' "reached in 4 hops; got $(jq -c -s 'last | {verdict, text}' "$1")"
    tcheck "$1" '[.[] | select(.type=="hop" and .hop < 4)] | length == 3 and all(.quote == "full")' \
        "hops 1-3: full quotes; got $(jq -c -s '[.[] | select(.type=="hop") | {hop, quote}]' "$1")"
    tcheck "$1" 'last.probes_sent == 18 + last.reprobes' "no extra probe: probes_sent = 18 + re-probes; got $(jq -c -s 'last | {probes_sent, reprobes}' "$1")"
}

scen_mbox-clean() {
    mbox_ensure_up
    local dst
    for dst in "$M_SRV" "[$M6_SRV]"; do
        mclient "$W/mclean" "$dst:$M_OPEN" -W 2 --ecn --dscp 46
        rc_is 0 "reached ($dst)"
        mreached "$W/mclean.json"
        monly "$W/mclean.json" ""
        tcheck "$W/mclean.json" 'last.syn_ack.mss != null and last.syn_ack.sack_perm and last.syn_ack.timestamps and last.syn_ack.wscale != null and last.syn_ack.ecn == true' \
            "the SYN-ACK offers MSS, SACK, timestamps, window scale, ECN agreed; got $(mchanges "$W/mclean.json")"
        grep -q '^middleboxes: none seen' "$W/mclean.txt" || fail "text: 'middleboxes: none seen' expected"
    done
}

scen_mbox-mss-clamp() {
    mbox_ensure_up
    mclient "$W/mmss" "$M_SRV:$M_MSS" -W 2
    rc_is 0 "reached"
    mreached "$W/mmss.json"
    monly "$W/mmss.json" mss
    mchange "$W/mmss.json" mss '"1460"' '"1400"' 3 true
    tcheck "$W/mmss.json" '[.[] | select(.type=="hop" and .hop==3)][0].changes | length == 1 and .[0].field == "mss" and .[0].hop == 3' "hop 3's event lists the clamp"
    # the rule clamps SYNs to the port only: the target offers its own MSS
    tcheck "$W/mmss.json" 'last.syn_ack.mss == 1460' "the SYN-ACK offers the target's own MSS 1460"
    grep -q "^hop 3 ($M_R3): MSS 1460 → 1400 (clamped)" "$W/mmss.txt" || fail "text: 'hop 3 ($M_R3): MSS 1460 → 1400 (clamped)' expected"
    mclient "$W/mmss6" "[$M6_SRV]:$M_MSS" -W 2
    rc_is 0 "reached (IPv6)"
    mreached "$W/mmss6.json"
    monly "$W/mmss6.json" mss
    mchange "$W/mmss6.json" mss '"1440"' '"1380"' 3 true
}

scen_mbox-option-strip() {
    mbox_ensure_up
    local dst f
    for dst in "$M_SRV" "[$M6_SRV]"; do
        f=$W/mstrip
        mclient "$f" "$dst:$M_STRIP" -W 2
        rc_is 0 "reached ($dst)"
        mreached "$f.json"
        monly "$f.json" sack_perm timestamps
        tcheck "$f.json" 'last.changes | all(.hop == 3 and .seen == null and .to_target)' "SACK and timestamps removed from hop 3 on; got $(mchanges "$f.json")"
        tcheck "$f.json" 'last.syn_ack.sack_perm == false and last.syn_ack.timestamps == false' "the target offers neither"
    done
}

scen_mbox-ecn-bleach() {
    mbox_ensure_up
    mclient "$W/mecn" "$M_SRV:$M_ECN" -W 2 --ecn
    rc_is 0 "reached"
    mreached "$W/mecn.json"
    monly "$W/mecn.json" ecn
    mchange "$W/mecn.json" ecn '"ECE+CWR"' '"none"' 3 true
    tcheck "$W/mecn.json" 'last.syn_ack.ecn == false' "the target does not agree to ECN (it never saw the request)"
    grep -q "^hop 3 ($M_R3): ECN bits cleared" "$W/mecn.txt" || fail "text: 'hop 3 ($M_R3): ECN bits cleared' expected"
    # without --ecn there is nothing to bleach
    mclient "$W/mecn-off" "$M_SRV:$M_ECN" -W 2
    monly "$W/mecn-off.json" ""
    tcheck "$W/mecn-off.json" 'last.syn_ack.ecn == null' "no ECN asked: syn_ack.ecn null"
    mclient "$W/mecn6" "[$M6_SRV]:$M_ECN" -W 2 --ecn
    rc_is 0 "reached (IPv6)"
    mreached "$W/mecn6.json"
    monly "$W/mecn6.json" ecn
    mchange "$W/mecn6.json" ecn '"ECE+CWR"' '"none"' 3 true
    tcheck "$W/mecn6.json" 'last.syn_ack.ecn == false' "IPv6: the target does not agree to ECN"
}

scen_mbox-dscp-remark() {
    mbox_ensure_up
    local dst
    for dst in "$M_SRV" "[$M6_SRV]"; do
        mclient "$W/mdscp" "$dst:$M_DSCP" -W 2 --dscp 46
        rc_is 0 "reached ($dst)"
        mreached "$W/mdscp.json"
        monly "$W/mdscp.json" dscp
        mchange "$W/mdscp.json" dscp '"46"' '"0"' 3 true
    done
}

scen_mbox-nat() {
    mbox_ensure_up
    local dst
    # r1 masquerades: r2 and r3 see r1's address, but their time exceeded passes back through
    # r1, whose conntrack translates the quote back: the NAT hides itself, nothing is guessed.
    for dst in "$M_SRV" "[$M6_SRV]"; do
        mclient "$W/mnat" "$dst:$M_NAT" -W 2
        rc_is 0 "reached ($dst)"
        mreached "$W/mnat.json"
        monly "$W/mnat.json" ""
    done
    # a stateless NAT on r1 leaves the quotes alone: hop 2 shows the new source, to the target
    mclient "$W/msnat" "$M_SRV:$M_SNAT" -W 2
    rc_is 0 "reached (stateless NAT)"
    mreached "$W/msnat.json"
    monly "$W/msnat.json" src
    mchange "$W/msnat.json" src "\"$M_CLI\"" "\"$M_NAT_ADDR\"" 2 true
    grep -q "^hop 2 ($M_R2): source $M_CLI → $M_NAT_ADDR (NAT)" "$W/msnat.txt" ||
        fail "text: 'hop 2 ($M_R2): source $M_CLI → $M_NAT_ADDR (NAT)' expected"
    mclient "$W/msnat6" "[$M6_SRV]:$M_SNAT" -W 2
    rc_is 0 "reached (stateless NAT, IPv6)"
    monly "$W/msnat6.json" src
    mchange "$W/msnat6.json" src "\"$M6_CLI\"" "\"$M6_NAT_ADDR\"" 2 true
}

scen_mbox-seq-rewrite() {
    mbox_ensure_up
    mclient "$W/mseq" "$M_SRV:$M_SEQ" -W 2
    rc_is 0 "reached"
    mreached "$W/mseq.json"
    monly "$W/mseq.json" seq
    tcheck "$W/mseq.json" 'last.changes[0] | .hop == 3 and .to_target and ((.seen | tonumber) - (.sent | tonumber) + 4294967296) % 4294967296 == 1000000' \
        "seq + 1,000,000 from hop 3 on; got $(mchanges "$W/mseq.json")"
    mclient "$W/mseq6" "[$M6_SRV]:$M_SEQ" -W 2
    rc_is 0 "reached (IPv6)"
    monly "$W/mseq6.json" seq
}
