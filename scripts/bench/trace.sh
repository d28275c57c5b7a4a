#!/usr/bin/env bash
# Benchmark section "trace": `tcpping-diag trace` next to traceroute -T, tcptraceroute,
# mtr --tcp, scamper (tcp) and dublin-traceroute, in the trace lab's topologies.
#
#   scripts/bench.sh trace [--smoke]        (or this script directly)
#
# For each topology (long path: port open, refused at hop 2, silent after hop 2, forged MPLS
# labels; ECMP diamond) and each tool: does it name the right hop where the path breaks,
# does it show a false flapping path on the diamond, what extensions it shows, and the wall
# time until its complete answer. Then the load-balanced topologies (3-way split, two
# diamonds, nested split, a branch that drops): routers and links found against the truth,
# false links, probes and time of ours (--flows 16, --multipath), scamper tracelb,
# dublin-traceroute, traceroute -T and mtr --tcp. Every tool probes with a 1 s wait and at most 10 hops;
# runs are interleaved (tool after tool, repeated BENCH_REPS times, default 5; --smoke: 1,
# two topologies, no dublin-traceroute). Results: bench/runs/<UTC date and time>-trace/
# (results.json, results.md, every tool's raw output; --smoke: bench/smoke/trace/), or BENCH_OUT.
#
# Must run as root. Installs traceroute, tcptraceroute, mtr-tiny, scamper, dublin-traceroute,
# iproute2, iptables, tcpdump, python3, jq with apt-get when missing. Builds the binary with
# cargo when TCPPING_BIN is not set. Traffic goes only to the namespaces tpb<PID>-t-* this
# script creates and removes on exit.

set -euo pipefail
SELF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SELF_DIR/../.." && pwd)"
LAB_LIB="$REPO/scripts/lab"
cd "$REPO"

if [ "$(id -u)" -ne 0 ]; then
    echo "bench trace: must run as root (network namespaces, raw sockets)" >&2
    exit 2
fi

need=()
for pair in ip:iproute2 iptables:iptables tcpdump:tcpdump python3:python3 jq:jq \
    traceroute:traceroute tcptraceroute:tcptraceroute mtr:mtr-tiny scamper:scamper \
    dublin-traceroute:dublin-traceroute; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    # shellcheck source=scripts/common.sh
    SCRIPT="bench.sh trace" . "$REPO/scripts/common.sh"
    SCRIPT="bench.sh trace" apt_install "${need[@]}" || exit 2
fi

if [ -z "${TCPPING_BIN:-}" ]; then
    cargo build --release --quiet --bin tcpping-diag
fi
BIN="${TCPPING_BIN:-$REPO/target/release/tcpping-diag}"
export TCPPING_BIN="$BIN"

# shellcheck source=../lab/trace.sh
. "$LAB_LIB/trace.sh"
PREFIX="tpb$$-t"
NS_LIST=()
record() { NS_LIST+=("$1"); }
WORK=$(mktemp -d /tmp/tcpping-bench-trace.XXXXXX)
cleanup() {
    trace_topology_down "${NS_LIST[@]}"
    rm -rf "/etc/netns/$PREFIX-cli"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# No DNS in the client's namespace: a name lookup fails at once (127.0.0.1, nothing listens)
# instead of waiting for the host's resolver it cannot reach (dublin-traceroute looks every
# address up and has no flag against it).
mkdir -p "/etc/netns/$PREFIX-cli"
echo "nameserver 127.0.0.1" >"/etc/netns/$PREFIX-cli/resolv.conf"
trace_topology_up "$PREFIX" record
T_PREFIX=$PREFIX
trace_check_paths
trace_servers "$WORK" >/dev/null

export TRACE_NS_PREFIX="$PREFIX"
PY=python3
command -v /usr/bin/python3 >/dev/null 2>&1 && PY=/usr/bin/python3
PYTHONDONTWRITEBYTECODE=1 "$PY" "$SELF_DIR/trace_peers.py" "$@"
