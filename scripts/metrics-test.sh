#!/usr/bin/env bash
# Many targets + Prometheus, end to end with real components: Debian's prometheus scrapes
# tcpping-diag's /metrics while it pings the lab's fault zoo (healthy, REJECT host-unreach,
# REJECT admin-prohibited, DROP, closed port), twice at once: connect probes and --syn
# probes. Then the counts Prometheus stored (read back through its HTTP query API) must
# equal the NDJSON summaries of the same runs: probes by verdict, ICMP errors by type,
# code and router, RTT sample counts, last-probe success. The connect run has per-target
# histograms (--metrics-histograms per-target), the --syn run the default lean set (one
# RTT histogram shared by its targets: its count is the sum of their replies). Ends with a
# smoke run of `scripts/bench.sh multi`.
#
#   scripts/metrics-test.sh            (as root)
#
# Root only (namespaces, raw sockets). Installs prometheus, curl, jq and the lab's tools
# with apt-get when missing. Builds target/release/tcpping-diag when missing (or uses
# $TCPPING_BIN). Everything runs inside the lab's client namespace (Prometheus scrapes
# 127.0.0.1 there); the lab, Prometheus and the clients are removed at exit, pass or fail.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
SCRIPT=metrics-test.sh
# shellcheck source=scripts/common.sh
. scripts/common.sh
BIN="${TCPPING_BIN:-$REPO/target/release/tcpping-diag}"

say() { printf '%s\n' "$*"; }
die() { say "metrics-test: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, raw sockets)"

need=()
for pair in prometheus:prometheus curl:curl jq:jq ip:iproute2 iptables:iptables; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    apt_install "${need[@]}" || die "could not install ${need[*]}"
fi
if [ ! -x "$BIN" ]; then
    [ -z "${TCPPING_BIN:-}" ] || die "TCPPING_BIN=$TCPPING_BIN is not executable"
    cargo build --release --quiet
fi

with_lab metrics
NS=$LAB_ID-cli
in_cli() { ip netns exec "$NS" "$@"; }

cat >"$WORK/targets.txt" <<'EOF'
# the lab's fault zoo (scripts/lab.sh)
10.77.2.2:12001 fault=healthy
10.77.2.2:12005 fault=reject_host    # REJECT icmp-host-unreachable -> 3/1 from 10.77.1.1
10.77.2.2:12007 fault=reject_admin   # REJECT icmp-admin-prohibited -> 3/13
10.77.2.2:12011 fault=drop           # DROP: timeouts
10.77.2.2:12999 fault=closed         # nothing listens: RST
EOF
N=40
PORT_CONNECT=19101 PORT_SYN=19102 PROM=127.0.0.1:19090
cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: connect
    static_configs: [{targets: ['127.0.0.1:$PORT_CONNECT']}]
  - job_name: syn
    static_configs: [{targets: ['127.0.0.1:$PORT_SYN']}]
EOF
in_cli prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/data" \
    --web.listen-address="$PROM" --log.level=warn >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
# Prometheus ready before the clients start, so that it scrapes them from their first
# second. Its HTTP query API, from inside the namespace: the result vector as JSON.
deadline=$((SECONDS + 60))
until in_cli curl -sf "http://$PROM/-/ready" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { cat "$WORK/prometheus.log"; die "Prometheus not ready within 60 s"; }
    sleep 0.2
done
# ... and scraping (its discovery hands targets over after up to 5 s): both jobs have an
# `up` sample (0, as nothing listens yet).
query() { in_cli curl -sf --get "http://$PROM/api/v1/query" --data-urlencode "query=$1" | jq -c '.data.result'; }
until [ "$(query 'count(up)' | jq -r '.[0].value[1] // 0')" = 2 ]; do
    [ $SECONDS -lt $deadline ] || die "Prometheus did not scrape within 60 s"
    sleep 0.2
done
for job in connect syn; do
    port=PORT_${job^^}
    extra=()
    [ "$job" = syn ] && extra=(--syn)
    [ "$job" = connect ] && extra=(--metrics-histograms per-target)
    in_cli "$BIN" -f "$WORK/targets.txt" -n "$N" -i 0.2 -W 0.15 --json -q "${extra[@]}" \
        --metrics "127.0.0.1:${!port}" >"$WORK/$job.json" 2>"$WORK/$job.err" &
    PIDS+=($!)
done


# Wait until both runs printed their 5 summaries (probing done; the endpoints still
# serve), then until Prometheus holds every probe of both runs.
for job in connect syn; do
    until [ "$(grep -c '"type":"summary"' "$WORK/$job.json" 2>/dev/null || true)" -eq 5 ]; do
        [ $SECONDS -lt $deadline ] || { cat "$WORK/$job.err"; die "$job: no 5 summaries within 60 s"; }
        sleep 0.5
    done
done
want_total=$((2 * 5 * N))
until [ "$(query 'sum(tcpping_probes_total)' | jq -r '.[0].value[1] // 0')" = "$want_total" ]; do
    [ $SECONDS -lt $deadline ] || die "Prometheus never held all $want_total probes: $(query 'sum by (job) (tcpping_probes_total)')"
    sleep 0.5
done

fails=0
check() { # check WHAT GOT WANT
    if [ "$2" = "$3" ]; then
        say "PASS $1: $2"
    else
        say "FAIL $1: Prometheus $2, NDJSON $3"
        fails=$((fails + 1))
    fi
}

for job in connect syn; do
    check "$job: scrape target up" "$(query "up{job=\"$job\"}" | jq -r '.[0].value[1]')" 1
    while read -r sum; do
        target=$(jq -r .target <<<"$sum")
        fault=$(jq -r .labels.fault <<<"$sum")
        sel="job=\"$job\",target=\"$target\",fault=\"$fault\""
        got=$(query "tcpping_probes_total{$sel}" |
            jq -c 'map({(.metric.verdict): (.value[1] | tonumber)}) | add')
        want=$(jq -c '{reply: .received, lost, timeout, refused, icmp, error}' <<<"$sum")
        check "$job $fault: probes by verdict" "$(jq -cS . <<<"$got")" "$(jq -cS . <<<"$want")"
        got=$(query "tcpping_icmp_errors_total{$sel}" |
            jq -c 'map([(.metric.type|tonumber), (.metric.code|tonumber), .metric.router, (.value[1]|tonumber)]) | sort')
        want=$(jq -c '.icmp_errors | map([.type, .code, .from, .count]) | sort' <<<"$sum")
        check "$job $fault: ICMP errors by type, code, router" "$got" "$want"
        if [ "$job" = connect ]; then
            got=$(query "tcpping_rtt_seconds_count{$sel}" | jq -r '.[0].value[1] // "0"')
            check "$job $fault: RTT samples" "$got" "$(jq -r .received <<<"$sum")"
        elif [ "$fault" = healthy ]; then
            got=$(query "tcpping_last_rtt_seconds{$sel} > 0" | jq -r 'length')
            check "$job $fault: last RTT" "$got" 1
        fi
        got=$(query "tcpping_last_success{$sel}" | jq -r '.[0].value[1]')
        last=$(jq -r --arg t "$target" 'select(.type=="ping" and .target==$t) | .status' "$WORK/$job.json" | tail -1)
        # -q prints no ping events: the last verdict is the summary's only verdict here.
        [ -n "$last" ] || last=$(jq -r 'if .received > 0 then "reply" else "other" end' <<<"$sum")
        check "$job $fault: last probe succeeded" "$got" "$([ "$last" = reply ] && echo 1 || echo 0)"
    done < <(jq -c 'select(.type=="summary")' "$WORK/$job.json")
done

# The lean set (--syn run): one RTT histogram for every target, none per target.
got=$(query 'tcpping_rtt_seconds_count{job="syn"}' | jq -r 'map(.value[1]) | join(",")')
check "syn: shared RTT samples" "$got" "$(jq -s 'map(select(.type=="summary") | .received) | add' "$WORK/syn.json")"
check "syn: no per-target histogram" "$(query 'count(tcpping_rtt_seconds_bucket{job="syn",target!=""})' | jq -r 'length')" 0

# The faults are what the lab says they are (so the comparison above compared something).
for job in connect syn; do
    s() { jq -r --arg f "$1" "select(.type==\"summary\" and .labels.fault==\$f) | $2" "$WORK/$job.json"; }
    check "$job healthy: all replies" "$(s healthy .received)" "$N"
    check "$job reject_host: ICMP 3/1 from the router" "$(s reject_host '.icmp_errors[0] | "\(.type)/\(.code) \(.from) \(.count)"')" "3/1 10.77.1.1 $N"
    check "$job reject_admin: ICMP 3/13 from the router" "$(s reject_admin '.icmp_errors[0] | "\(.type)/\(.code) \(.from) \(.count)"')" "3/13 10.77.1.1 $N"
    check "$job drop: timeouts" "$(s drop .timeout)" "$N"
    check "$job closed: refused" "$(s closed .refused)" "$N"
done
# An alert rule of the README, evaluated by Prometheus on the stored series.
got=$(query 'increase(tcpping_icmp_errors_total{type="3",code="13"}[1m]) > 0' |
    jq -r 'map("\(.metric.job) \(.metric.target) \(.metric.router)") | sort | join(", ")')
check "alert expression: admin-prohibited per target and router" "$got" \
    "connect 10.77.2.2:12007 10.77.1.1, syn 10.77.2.2:12007 10.77.1.1"

# The many-targets benchmark's smoke run (tiny counts; the same code paths), so it cannot rot.
TCPPING_BIN="$BIN" scripts/bench.sh --smoke multi >"$WORK/bench-smoke.txt" 2>&1 ||
    { tail -20 "$WORK/bench-smoke.txt"; say "FAIL scripts/bench.sh --smoke multi"; fails=$((fails + 1)); }

if [ "$fails" -gt 0 ]; then
    say "metrics-test: $fails checks failed (logs in $WORK are removed; rerun by hand to inspect)"
    exit 1
fi
say "metrics-test: all checks passed"
