#!/usr/bin/env bash
# The README's example pictures: docs/img/ping.svg, long.svg, many.svg and trace.svg, and the
# live views on a terminal, live-trace.svg and live-board.svg.
#
#   sudo scripts/doc-pictures.sh [--live] [OUTDIR]      (default docs/img; --live: only the
#                                                         live views' pictures)
#
# The live views are captured from a pseudo-terminal (script, 100x30; q pressed after 8 s)
# and drawn by scripts/term-svg.py (python3-pyte, installed when missing).
#
# KEEP_NDJSON=DIR keeps the runs' NDJSON there (to redraw them with `tcpping-diag report`).
#
# Real runs in a network-namespace lab of its own (scripts/lab.sh up, and down with its ID at
# the end): the client pings through the router while this script switches faults on and off
# there (REJECT with ICMP admin-prohibited, DROP, REJECT host-unreachable), against a server
# that loses 3 % of pings; then `tcpping-diag report` draws the NDJSON. many.svg is one run of
# the many-targets mode; trace.svg a `tcpping-diag trace --cycles 20` along the trace lab's
# long path (client, r1, r2, r3, server) to a port r2 rejects. Must run as root; traffic
# stays inside the lab's namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "doc-pictures.sh: must run as root (network namespaces, iptables)" >&2; exit 2; }
LIVE_ONLY=
if [ "${1:-}" = --live ]; then LIVE_ONLY=1; shift; fi
OUT=${1:-docs/img}
/usr/bin/python3 -c 'import pyte' 2>/dev/null || {
    . scripts/common.sh
    SCRIPT=doc-pictures.sh apt_install python3-pyte || exit 2
}
mkdir -p "$OUT"
# TCPPING_BIN: a binary already built (else cargo builds one)
[ -n "${TCPPING_BIN:-}" ] || cargo build --release --quiet
BIN=${TCPPING_BIN:-$PWD/target/release/tcpping-diag}
export TCPPING_BIN=$BIN
WORK=$(mktemp -d)
ID=
SRV_PID=
cleanup() {
    [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null && wait "$SRV_PID" 2>/dev/null
    [ -n "$ID" ] && scripts/lab.sh down "$ID" >/dev/null 2>&1
    [ -n "${KEEP_NDJSON:-}" ] && mkdir -p "$KEEP_NDJSON" && cp "$WORK"/*.ndjson "$KEEP_NDJSON"/ 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ID=$(TRACE_LAB=1 scripts/lab.sh up 2>"$WORK/lab.log" | sed -n 's/^lab \(tpd-[0-9a-f]*\) is up.*/\1/p')
[ -n "$ID" ] || { cat "$WORK/lab.log" >&2; echo "doc-pictures.sh: the lab did not come up" >&2; exit 1; }
CLI=$ID-cli RTR=$ID-rtr SRV=$ID-srv
SRV_ADDR=10.77.2.2 PORT=12003
ip netns exec "$SRV" "$BIN" serve --listen "[::]:$PORT" --loss 0.03 --seed 7 -q >"$WORK/server.log" 2>&1 </dev/null &
SRV_PID=$!
sleep 0.5

rule() { # rule -I|-D IPTABLES-TARGET... : a fault on the router for our port
    local op=$1
    shift
    ip netns exec "$RTR" iptables -w "$op" FORWARD -d "$SRV_ADDR" -p tcp --dport "$PORT" "$@"
}
faults() { # faults T1 T2 T3 T4 : admin-prohibited from T1, DROP from T2, host-unreachable from T3, none from T4
    sleep "$1"; rule -I -j REJECT --reject-with icmp-admin-prohibited
    sleep "$2"; rule -D -j REJECT --reject-with icmp-admin-prohibited; rule -I -j DROP
    sleep "$3"; rule -D -j DROP; rule -I -j REJECT --reject-with icmp-host-unreachable
    sleep "$4"; rule -D -j REJECT --reject-with icmp-host-unreachable
}
client() { ip netns exec "$CLI" "$BIN" "$@" --json </dev/null; }

# capture OUT.svg TITLE CMD...: CMD in a 100x30 pseudo-terminal, q pressed after 8 s; the
# last frame drawn, as SVG.
capture() {
    local out=$1 title=$2
    shift 2
    (sleep 8; printf q; sleep 2) | TERM=xterm-256color script -qfec "stty rows 30 cols 100; exec $*" "$WORK/typescript" >/dev/null || true # (its exit status: the run's)
    /usr/bin/python3 scripts/term-svg.py "$WORK/typescript" "$out" --cols 100 --rows 30 --title "$title"
}
live_pictures() {
    echo "live-trace.svg: trace --cycles 0 on a terminal, along the trace lab's long path"
    capture "$OUT/live-trace.svg" "tcpping-diag trace 10.78.4.2:12007 --cycles 0 -i 0.5" \
        ip netns exec "$ID-t-cli" "$BIN" trace 10.78.4.2:12007 --cycles 0 -i 0.5
    echo "live-board.svg: the seven targets of many.svg on a terminal"
    capture "$OUT/live-board.svg" "tcpping-diag 10.77.2.2:12001 10.77.2.2:12003 … -i 0.2 -W 0.3" \
        ip netns exec "$CLI" "$BIN" 10.77.2.2:12001 "$SRV_ADDR:$PORT" 10.77.2.2:12005 10.77.2.2:12007 \
        10.77.2.2:12016 10.77.2.2:12999 10.77.2.11:12001 -i 0.2 -W 0.3
}
if [ -n "$LIVE_ONLY" ]; then
    live_pictures
    exit 0
fi

echo "ping.svg: 300 pings, 50 ms apart, faults switched on the router during the run"
faults 4 3 3 3 &
FAULTS=$!
client "$SRV_ADDR:$PORT" -n 300 -i 0.05 -W 0.5 >"$WORK/ping.ndjson" || true
wait "$FAULTS"
"$BIN" report "$WORK/ping.ndjson" -o "$OUT/ping.svg"

echo "long.svg: 20,000 pings, 2 ms apart, the same faults"
faults 10 4 3 4 &
FAULTS=$!
client "$SRV_ADDR:$PORT" -n 20000 -i 0.002 -W 0.3 >"$WORK/long.ndjson" || true
wait "$FAULTS"
"$BIN" report "$WORK/long.ndjson" -o "$OUT/long.svg"

echo "many.svg: seven targets at once (the many-targets mode), each behind another fault of the lab"
client 10.77.2.2:12001 "$SRV_ADDR:$PORT" 10.77.2.2:12005 10.77.2.2:12007 10.77.2.2:12016 \
    10.77.2.2:12999 10.77.2.11:12001 -n 150 -i 0.05 -W 0.3 >"$WORK/many.ndjson" || true
"$BIN" report "$WORK/many.ndjson" -o "$OUT/many.svg"

echo "trace.svg: 20 cycles along the trace lab's long path to a port r2 rejects"
ip netns exec "$ID-t-cli" "$BIN" trace 10.78.4.2:12007 --cycles 20 -i 0.1 --json </dev/null \
    >"$WORK/trace.ndjson" || true
"$BIN" report "$WORK/trace.ndjson" -o "$OUT/trace.svg"

live_pictures
