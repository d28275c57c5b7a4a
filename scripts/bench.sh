#!/usr/bin/env bash
# tcpping-diag benchmarks.
#
#   scripts/bench.sh [--smoke] [all|perf|fidelity|throughput|scale|client|fidelity-tail|syn]...
#   scripts/bench.sh [--smoke] trace | multi | mtu   (sections of their own: run them alone)
#
#   (no argument) / all  every section: 3 server throughput, 4 scale (10,000 idle clients),
#                        5 client cost (+ ICMP error flood), 1 timing fidelity vs the wire,
#                        2 ICMP verdict latency, fidelity-tail, 6 SYN probes
#   perf                 sections 3, 4, 5 (loopback, plus two namespaces for the flood)
#   fidelity             sections 1 and 2 (namespaces, tcpdump), and fidelity-tail
#   fidelity-tail        every ping a fresh process (-n 1), compared with tcpdump ping by ping
#                        (by source port): median, p99, max error; writes its own folder,
#                        bench/runs/<UTC date>T<time>-fidelity-tail/ (scripts/bench/fidelity_tail.py)
#   syn                  section 6: --syn timing fidelity across a router next to hping3 -S and
#                        nping --tcp, and the probe rate next to hping3 and connect pings
#   trace                `tcpping-diag trace` next to traceroute -T, tcptraceroute, mtr, scamper
#                        and dublin-traceroute in the trace lab: scripts/bench/trace.sh, results
#                        in bench/runs/<date>-trace/ (a section of its own: run it alone)
#   mtu                  --pmtu, trace --size and ping -s next to tracepath, scamper trace -M
#                        and ping -M do -s on a path with a 1400-byte link, its "packet too
#                        big" let through or dropped: scripts/bench/mtu.sh, results in
#                        bench/runs/<date>-mtu/ (a section of its own)
#   multi                many targets: 10,000 loopback targets with --syn next to fping (lag,
#                        CPU, RSS, scrape time), connect target counts: scripts/bench/multi.py,
#                        results in bench/runs/<date>-multi/ (a section of its own)
#   live                 the CPU the live views add: a 30-hop trace, boards of 1,000 and
#                        10,000 targets, each with the view and with --no-tui in turns
#                        (scripts/bench/live.sh; results in bench/runs/<date>-live/)
#   before-after BIN     the build BIN (an earlier commit's binary) and this tree's build in
#                        turns, one run: connect, persistent, --syn rate and fidelity, many
#                        targets, trace (scripts/bench/before_after.py; [--rounds N]); results
#                        in bench/runs/<date>-before-after/ (a section of its own)
#   syn-rate             --syn -i 0 -n 200000 -q next to hping3 -S --flood (send-only) and
#                        hping3 -S -i u1 (counting) in rounds, with the SYNs reaching the
#                        server, CPU per core, RSS and the load average: scripts/bench/syn_rate.py
#                        ([--rounds N] [--n N] [--before BIN]), namespaces tpd-bsyn-*,
#                        10.82.0.0/16; results in bench/runs/<date>-syn-rate/ (its own section)
#   --smoke              tiny durations and counts, one repetition (< 60 s; for CI): the same
#                        code paths, figures are not measurements (the trace section's smoke
#                        run too, into bench/smoke/trace/)
#
# Each run writes its own folder, bench/runs/<UTC start>[-<sections>]/results.{json,md},
# and rewrites the index bench/README.md; --smoke writes bench/smoke/results.{json,md}
# (git-ignored), checks only that the code paths run, and judges no goal (BENCH_OUT=DIR
# overrides the folder). Every figure is a median over 5 runs (BENCH_REPS) with min-max;
# peers (the original Python server and client, hping3, nping) are measured in the same run.
#
# Needs root (namespaces, raw sockets, tcpdump): run by a user, it builds as that user, then
# runs itself again as root with sudo (and hands the results back to that user). Installs
# hping3, nmap (nping), tcpdump, iproute2, iptables, python3, linux-perf (for `perf bench
# sched pipe`: the cost of a wake-up on one CPU and across CPUs) with apt-get when missing.
# Binaries: ${TCPPING_BIN:-target/release/tcpping-diag} and ${LOADGEN_BIN:-target/release/loadgen}
# (the load generator is the workspace member bench/loadgen), built with
# `cargo build --release --workspace` when TCPPING_BIN is not set.
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
SCRIPT=bench.sh
SELF="$SELF_DIR/$(basename "${BASH_SOURCE[0]}")"
cd "$REPO"
# shellcheck source=scripts/common.sh
. "$SELF_DIR/common.sh"

if [ "$(id -u)" -ne 0 ]; then
  if [ -z "${TCPPING_BIN:-}" ] && find_cargo; then # build as the user, not as root
    cargo build --release --quiet --workspace --bins
    export TCPPING_BIN="$REPO/target/release/tcpping-diag" LOADGEN_BIN="${LOADGEN_BIN:-$REPO/target/release/loadgen}"
  fi
  as_root "$@" || {
    echo "bench.sh: must run as root (network namespaces, raw sockets, tcpdump), and sudo is not installed: run it as root" >&2
    exit 2
  }
fi

# The trace section is self-contained (its own lab and peers): scripts/bench/trace.sh.
if [ "${1:-}" = trace ]; then
  shift
  exec "$SELF_DIR/bench/trace.sh" "$@"
fi
# So is the MTU section's (its own path and peers): scripts/bench/mtu.sh.
if [ "${1:-}" = mtu ]; then
  shift
  exec "$SELF_DIR/bench/mtu.sh" "$@"
fi
# So is the live views' (a pseudo-terminal per run): scripts/bench/live.sh.
if [ "${1:-}" = live ]; then
  shift
  exec "$SELF_DIR/bench/live.sh" "$@"
fi

mapfile -t need < <(missing_pkgs ip:iproute2 iptables:iptables tcpdump:tcpdump hping3:hping3 \
  nping:nmap python3:python3 taskset:util-linux /usr/bin/time:time perf:linux-perf)
if [ ${#need[@]} -gt 0 ]; then
  apt_install "${need[@]}" || exit 2
fi

if [ -z "${TCPPING_BIN:-}" ]; then
  find_cargo || { echo "bench.sh: $NO_CARGO_HINT" >&2; exit 2; }
  cargo build --release --quiet --workspace --bins
fi
export TCPPING_BIN="${TCPPING_BIN:-$REPO/target/release/tcpping-diag}"
export LOADGEN_BIN="${LOADGEN_BIN:-$REPO/target/release/loadgen}"
if [ ! -x "$LOADGEN_BIN" ]; then
  find_cargo || { echo "bench.sh: $NO_CARGO_HINT" >&2; exit 2; }
  cargo build --release --quiet -p loadgen
fi

# 10,000 idle clients: one descriptor per connection in the server and in the load generator.
hard=$(ulimit -Hn)
want=20000
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then want=$hard; fi
ulimit -n "$want"

if [ "${1:-}" = syn-rate ]; then # its own lab (tpd-bsyn-*) and folder
  shift
  PY=python3
  command -v /usr/bin/python3 >/dev/null 2>&1 && PY=/usr/bin/python3
  BENCH_NS_PREFIX=tpd-bsyn- PYTHONDONTWRITEBYTECODE=1 exec "$PY" "$SELF_DIR/bench/syn_rate.py" "$@"
fi

export BENCH_NS_PREFIX="tpb$$"
cleanup() {
  local ns pid
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${BENCH_NS_PREFIX}" || true); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  give_back "$REPO/bench" "$REPO/target"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

export PYTHONDONTWRITEBYTECODE=1
PY=python3
command -v /usr/bin/python3 >/dev/null 2>&1 && PY=/usr/bin/python3
case " $* " in *" multi "*) exec "$PY" "$SELF_DIR/bench/multi.py" "$@" ;; esac # its own section and folder
if [ "${1:-}" = before-after ]; then # two builds in turns: its own folder
  shift
  exec "$PY" "$SELF_DIR/bench/before_after.py" "$@"
fi
"$PY" "$SELF_DIR/bench/bench.py" "$@"
case " $* " in *" --smoke "*) "$SELF_DIR/bench/trace.sh" --smoke && "$SELF_DIR/bench/live.sh" --smoke ;; esac
