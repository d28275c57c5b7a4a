#!/usr/bin/env bash
# tcpping-diag benchmarks.
#
#   scripts/bench.sh [--smoke] [all|perf|fidelity|throughput|scale|client|fidelity-tail]...
#
#   (no argument) / all  every section: 3 server throughput, 4 scale (10,000 idle clients),
#                        5 client cost (+ ICMP error flood), 1 timing fidelity vs the wire,
#                        2 ICMP verdict latency, fidelity-tail
#   perf                 sections 3, 4, 5 (loopback, plus two namespaces for the flood)
#   fidelity             sections 1 and 2 (namespaces, tcpdump), and fidelity-tail
#   fidelity-tail        every ping a fresh process (-n 1), compared with tcpdump ping by ping
#                        (by source port): median, p99, max error; writes its own folder,
#                        bench/runs/<UTC date>T<time>-fidelity-tail/ (scripts/bench/fidelity_tail.py)
#   --smoke              tiny durations and counts, one repetition (< 60 s; for CI): the same
#                        code paths, figures are not measurements
#
# Writes bench/results.json and bench/results.md (sections not run keep their previous
# figures); --smoke writes bench/smoke/results.{json,md} so CI never overwrites the measured
# results (BENCH_OUT=DIR overrides). Every figure is a median over 5 runs (BENCH_REPS) with
# min-max; peers (the original Python server and client, hping3, nping) are measured in the
# same run.
#
# Must run as root (namespaces, raw sockets, tcpdump). Installs hping3, nmap (nping),
# tcpdump, iproute2, iptables, python3, linux-perf (for `perf bench sched pipe`: the cost of
# a wake-up on one CPU and across CPUs) with apt-get when missing.
# Binaries: ${TCPPING_BIN:-target/release/tcpping-diag} and ${LOADGEN_BIN:-target/release/loadgen},
# built with `cargo build --release` when TCPPING_BIN is not set.
#
# Descriptor limit: section 4 holds 10,000 connections in the server and 10,000 in the load
# generator, so the soft limit is raised here with `ulimit -n` (to 20000, or the hard limit
# if lower). A user running the server for that many clients must do the same.
#
# Network traffic goes only to loopback and to namespaces named tpb<PID>* that this script
# creates and removes on exit (trap below).

set -euo pipefail
SELF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SELF_DIR/.." && pwd)"
cd "$REPO"

if [ "$(id -u)" -ne 0 ]; then
  echo "bench.sh: must run as root (network namespaces, raw sockets, tcpdump)" >&2
  exit 2
fi

need=()
for pair in ip:iproute2 iptables:iptables tcpdump:tcpdump hping3:hping3 nping:nmap \
            python3:python3 taskset:util-linux /usr/bin/time:time perf:linux-perf; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "bench.sh: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ -z "${TCPPING_BIN:-}" ]; then
  cargo build --release --quiet --bins
fi
export TCPPING_BIN="${TCPPING_BIN:-$REPO/target/release/tcpping-diag}"
export LOADGEN_BIN="${LOADGEN_BIN:-$REPO/target/release/loadgen}"
if [ ! -x "$LOADGEN_BIN" ]; then
  cargo build --release --quiet --bin loadgen
fi

# 10,000 idle clients: one descriptor per connection in the server and in the load generator.
hard=$(ulimit -Hn)
want=20000
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then want=$hard; fi
ulimit -n "$want"

export BENCH_NS_PREFIX="tpb$$"
cleanup() {
  local ns pid
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${BENCH_NS_PREFIX}" || true); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

export PYTHONDONTWRITEBYTECODE=1
PY=python3
command -v /usr/bin/python3 >/dev/null 2>&1 && PY=/usr/bin/python3
"$PY" "$SELF_DIR/bench/bench.py" "$@"
