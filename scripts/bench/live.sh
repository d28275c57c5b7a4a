#!/usr/bin/env bash
# Benchmark section "live": the CPU the live views add (issue 21).
#
#   scripts/bench/live.sh [--smoke] [--seconds S] [--targets "1000 10000"] [--reps N]
#   scripts/bench.sh live [...]              (the same, as a section of bench.sh)
#
# Each case runs N times (default 3) with the live view and N times with --no-tui (its lines
# to the same terminal), in turns, the order alternating, each in a pseudo-terminal (script,
# 160x50); the table gives the median and the min-max of each. The CPU of the tcpping-diag process
# (user+system, /proc/PID/stat) is read over S seconds (default 60) after a 5 s warm-up, in
# % of one core.
#   - trace: 30 hops, one cycle a second (-i 1 -W 0.5 -q 1), to an address a namespace
#     routes to a second one that does not forward (every hop silent: 30 rows, each
#     redrawn every cycle);
#     goal: the view adds at most 2 % of a core.
#   - board: N loopback targets (127.1.x.y:12001, one `tcpping-diag serve` on 0.0.0.0), one
#     SYN probe a second each; goal: the board at most 10 % over --no-tui.
# --smoke: 5 s, 200 targets (the code paths, not measurements).
#
# Must run as root (a namespace, SYN probes). Builds the binary with cargo when TCPPING_BIN
# is not set. Traffic goes to loopback and to the namespaces tpb<PID>-live(-drop) it creates
# and removes on exit. Prints a Markdown table, kept in bench/runs/<UTC start>-live/results.md
# (BENCH_OUT=FILE instead; --smoke keeps nothing).

set -euo pipefail
SELF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SELF_DIR/../.." && pwd)"
cd "$REPO"

SECONDS_RUN=60
TARGETS="1000 10000"
WARM=5
REPS=3
SMOKE=
while [ $# -gt 0 ]; do
    case "$1" in
    --smoke) SECONDS_RUN=5 TARGETS=200 WARM=1 REPS=1 SMOKE=1 ;;
    --reps) REPS=$2; shift ;;
    --seconds) SECONDS_RUN=$2; shift ;;
    --targets) TARGETS=$2; shift ;;
    live) ;;
    *) echo "bench live: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
if [ "$(id -u)" -ne 0 ]; then
    echo "bench live: must run as root (a namespace, SYN probes)" >&2
    exit 2
fi
command -v script >/dev/null || { echo "bench live: needs script (util-linux)" >&2; exit 2; }
if [ -z "${TCPPING_BIN:-}" ]; then
    cargo build --release --quiet --bin tcpping-diag
fi
BIN="${TCPPING_BIN:-$REPO/target/release/tcpping-diag}"

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
NS="tpb$$-live"
WORK=$(mktemp -d /tmp/tcpping-bench-live.XXXXXX)
SERVER=""
cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    ip netns del "$NS-drop" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT

# cpu_of PID: user+system clock ticks so far.
cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# rss_of PID: resident memory in kB.
rss_of() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# measure CMD...: run CMD in a 160x50 pseudo-terminal; print its CPU in % of a core over
# SECONDS_RUN after WARM seconds, and its growth in resident memory over that time (kB,
# VmRSS at the end minus after the warm-up: flat memory is about 0). The memory of the last
# run is left in $WORK/rss.
measure() {
    local fifo="$WORK/in.$RANDOM" spid pid t0 t1 c0 c1 r0 r1
    mkfifo "$fifo"
    exec 3<>"$fifo" # held open: the terminal's input never ends
    script -qfec "stty rows 50 cols 160; exec $*" /dev/null <"$fifo" >/dev/null 2>&1 &
    spid=$!
    sleep "$WARM"
    pid=$(pgrep -P "$spid" | head -n 1)
    [ -n "$pid" ] || { echo "bench live: the run did not start: $*" >&2; exit 1; }
    c0=$(cpu_of "$pid"); t0=$(date +%s.%N); r0=$(rss_of "$pid")
    sleep "$SECONDS_RUN"
    c1=$(cpu_of "$pid"); t1=$(date +%s.%N); r1=$(rss_of "$pid")
    echo "$r0 $r1" >"$WORK/rss"
    kill -TERM "$pid"
    wait "$spid" || true
    exec 3>&-
    rm -f "$fifo"
    awk -v c="$((c1 - c0))" -v hz="$(getconf CLK_TCK)" -v t0="$t0" -v t1="$t1" \
        'BEGIN { printf "%.2f", 100 * c / hz / (t1 - t0) }'
}

ROWS=()
row() { ROWS+=("| $1 | $2 | $3 | $4 | $(rss_cell) |"); }
# rss_growth: the last run's VmRSS after the warm-up and its growth to the end, "START +GROWTH".
rss_growth() { awk '{printf "%d %+d", $1, $2 - $1}' "$WORK/rss"; }
# rss_cell: the runs with the view: VmRSS after the warm-up, MB, and the largest growth, kB.
rss_cell() { printf '%s\n' "${GROWTH[@]}" | awk '{ if (NR == 1 || $1 > s) s = $1; if (NR == 1 || $2 > g) g = $2 } END { printf "%.1f MB, then %+d kB at most", s / 1024, g }'; }

# median_of X...: the median; spread_of X...: "median (min-max)".
median_of() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
spread_of() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2; printf "%.2f (%.2f-%.2f)", m, v[1], v[NR]}'; }

# pair CMD: REPS runs of CMD with the view and REPS with --no-tui, in turns, the order
# alternating; sets LIVE and PLAIN (arrays of % of a core).
pair() {
    local r
    LIVE=() PLAIN=() GROWTH=()
    for ((r = 0; r < REPS; r++)); do
        if ((r % 2 == 0)); then
            LIVE+=("$(measure "$1")"); GROWTH+=("$(rss_growth)"); PLAIN+=("$(measure "$1 --no-tui")")
        else
            PLAIN+=("$(measure "$1 --no-tui")"); LIVE+=("$(measure "$1")"); GROWTH+=("$(rss_growth)")
        fi
    done
}

# trace: 30 silent hops in a namespace.
ip netns add "$NS"
ip netns add "$NS-drop"
ip -n "$NS" link set lo up
ip link add c0 netns "$NS" type veth peer name d0 netns "$NS-drop"
ip -n "$NS" addr add 192.0.2.1/24 dev c0
ip -n "$NS-drop" addr add 192.0.2.2/24 dev d0
ip -n "$NS" link set c0 up
ip -n "$NS-drop" link set d0 up
ip -n "$NS" route add 198.51.100.0/24 via 192.0.2.2
TRACE="ip netns exec $NS $BIN trace 198.51.100.7:443 -m 30 -q 1 -i 1 -W 0.5 --cycles 0"
pair "$TRACE"
live=$(median_of "${LIVE[@]}") plain=$(median_of "${PLAIN[@]}")
row "trace, 30 hops, 1 cycle/s" "$(spread_of "${LIVE[@]}")" "$(spread_of "${PLAIN[@]}")" "view adds $(awk -v a="$live" -v b="$plain" 'BEGIN{printf "%.2f", a - b}') % of a core (medians; goal <= 2)"

# boards of N loopback targets.
"$BIN" serve --listen 0.0.0.0:12001 --loss 0 -q >/dev/null 2>&1 &
SERVER=$!
sleep 0.5
ulimit -n 65536 2>/dev/null || true
for n in $TARGETS; do
    python3 -c "
n = $n
for i in range(n):
    print(f'127.1.{i // 250}.{i % 250 + 1}:12001')" >"$WORK/targets.$n"
    BOARD="$BIN -f $WORK/targets.$n -i 1 --syn"
    pair "$BOARD"
    live=$(median_of "${LIVE[@]}") plain=$(median_of "${PLAIN[@]}")
    row "board, $n targets, 1 probe/s each" "$(spread_of "${LIVE[@]}")" "$(spread_of "${PLAIN[@]}")" "$(awk -v a="$live" -v b="$plain" 'BEGIN{ if (b > 0) printf "%+.1f %% over --no-tui (medians; goal <= 10)", 100 * (a - b) / b; else print "-" }')"
done

OUT=${BENCH_OUT:-}
if [ -z "$OUT" ] && [ -z "$SMOKE" ]; then
    OUT="$REPO/bench/runs/$(date -u +%Y-%m-%dT%H%MZ)-live/results.md"
fi
[ -n "$OUT" ] && mkdir -p "$(dirname "$OUT")"
{
    echo "# Live views: the CPU they add ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    echo
    echo "$("$BIN" --version); $(nproc) CPUs; load at start ${LOAD0}; $REPS runs of ${SECONDS_RUN} s per case and mode, in turns."
    echo "Median (min-max) of the tcpping-diag process's CPU, in % of one core."
    [ -n "$SMOKE" ] && echo && echo "Smoke run: the code paths, not measurements."
    echo
    echo "| case | CPU with the view (% core) | CPU with --no-tui (% core) | | RSS with the view: after the warm-up, then its growth over the run |"
    echo "|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
} | tee "${OUT:-/dev/null}"
