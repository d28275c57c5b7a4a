#!/usr/bin/env bash
# Benchmark section "mtu": tcpping-diag's MTU findings (--pmtu, trace --size, ping -s) next
# to tracepath, scamper (trace -M) and ping -M do -s, on the MTU lab's path (scripts/lab/mtu.sh:
# cli - r1 = r2 - srv, r1 = r2 MTU 1400), its "packet too big" let through (.3.2) or dropped
# (.3.3, a black hole), IPv4 and IPv6.
#
#   scripts/bench.sh mtu [--smoke]        (or this script directly)
#
# Per case and tool: what its output says (the MTU, the router or hop, a black hole named),
# judged against what the lab does, and its wall time (median of BENCH_REPS runs, default 3,
# interleaved; --smoke: 1). Results: bench/runs/<UTC date and time>-mtu/ (results.json,
# results.md, every tool's raw output), or BENCH_OUT. scamper's tbit pmtud test does not
# apply: it sends the "packet too big" itself, to see whether the target honours it (an
# HTTP or BGP server); it does not look for a smaller link on the path.
#
# Must run as root. Installs iputils-tracepath, scamper, iputils-ping, iproute2, iptables,
# jq, python3 with apt-get when missing. Builds the binary with cargo when TCPPING_BIN is not
# set. Traffic goes only to the namespaces tpb<PID>-u-* this script creates and removes.

set -euo pipefail
SELF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SELF_DIR/../.." && pwd)"
LAB_LIB="$REPO/scripts/lab"
cd "$REPO"

if [ "$(id -u)" -ne 0 ]; then
    echo "bench mtu: must run as root (network namespaces, raw sockets)" >&2
    exit 2
fi

need=()
for pair in ip:iproute2 iptables:iptables python3:python3 jq:jq tracepath:iputils-tracepath \
    scamper:scamper ping:iputils-ping; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    # shellcheck source=scripts/common.sh
    SCRIPT="bench.sh mtu" . "$REPO/scripts/common.sh"
    SCRIPT="bench.sh mtu" apt_install "${need[@]}" || exit 2
fi

if [ -z "${TCPPING_BIN:-}" ]; then
    cargo build --release --quiet --bin tcpping-diag
fi
BIN="${TCPPING_BIN:-$REPO/target/release/tcpping-diag}"
export TCPPING_BIN="$BIN"

# shellcheck source=../lab/trace.sh
. "$LAB_LIB/trace.sh" # trace_topology_down
# shellcheck source=../lab/mtu.sh
. "$LAB_LIB/mtu.sh"
PREFIX="tpb$$-u"
NS_LIST=()
record() { NS_LIST+=("$1"); }
WORK=$(mktemp -d /tmp/tcpping-bench-mtu.XXXXXX)
cleanup() {
    trace_topology_down "${NS_LIST[@]}"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mtu_topology_up "$PREFIX" record
U_PREFIX=$PREFIX
mtu_check_paths
mtu_server "$WORK"

export MTU_NS_PREFIX="$PREFIX"
PY=python3
command -v /usr/bin/python3 >/dev/null 2>&1 && PY=/usr/bin/python3
PYTHONDONTWRITEBYTECODE=1 "$PY" "$SELF_DIR/mtu_peers.py" "$@"
