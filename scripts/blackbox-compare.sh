#!/usr/bin/env bash
# What Prometheus's blackbox exporter (tcp_connect module) and tcpping-diag each report for
# the same network faults, side by side: prints a Markdown table (the one in README.md,
# "Next to the blackbox exporter").
#
#   sudo scripts/blackbox-compare.sh
#
# Root only. Brings up a lab (scripts/lab.sh up) and runs, inside its client namespace,
# Debian's prometheus-blackbox-exporter (one /probe per fault, its metrics and its debug
# log's error) and one many-targets tcpping-diag run over the same targets (--json).
# Installs prometheus-blackbox-exporter, curl and jq with apt-get when missing. Removes the
# lab and both processes at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
BIN="${TCPPING_BIN:-$REPO/target/release/tcpping-diag}"
SCRIPT=blackbox-compare.sh
# shellcheck source=scripts/common.sh
. "$REPO/scripts/common.sh"
die() { printf 'blackbox-compare: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
need=()
for pair in prometheus-blackbox-exporter:prometheus-blackbox-exporter curl:curl jq:jq; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    apt_install "${need[@]}" || exit 2
fi
[ -x "$BIN" ] || cargo build --release --quiet

with_lab bbx
in_cli() { ip netns exec "$LAB_ID-cli" "$@"; }

# fault | target (the lab's fault zoo, scripts/lab.sh)
FAULTS=(
    "healthy|10.77.2.2:12001"
    "REJECT icmp-host-unreachable|10.77.2.2:12005"
    "REJECT icmp-admin-prohibited|10.77.2.2:12007"
    "REJECT icmp-port-unreachable|10.77.2.2:12008"
    "DROP|10.77.2.2:12011"
    "nothing listens|10.77.2.2:12999"
    "route unreachable|10.77.2.9:12001"
    "route prohibit|10.77.2.10:12001"
)
cat >"$WORK/blackbox.yml" <<'EOF'
modules:
  tcp_connect:
    prober: tcp
    timeout: 2s
EOF
BBX=127.0.0.1:19115
in_cli prometheus-blackbox-exporter --config.file="$WORK/blackbox.yml" \
    --web.listen-address="$BBX" --log.level=warn >"$WORK/bbx.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do in_cli curl -sf "http://$BBX/metrics" >/dev/null 2>&1 && break; sleep 0.1; done

: >"$WORK/targets.txt"
for f in "${FAULTS[@]}"; do echo "${f#*|}" >>"$WORK/targets.txt"; done
echo "| fault (scripts/lab.sh) | target | blackbox: probe_success | blackbox: probe_duration_seconds | blackbox: debug log | tcpping-diag: verdict (3 probes) | tcpping-diag: reason, router | tcpping-diag: time |"
echo "|---|---|---|---|---|---|---|---|"
rows=()
for f in "${FAULTS[@]}"; do
    name=${f%%|*} target=${f#*|}
    m=$(in_cli curl -s "http://$BBX/probe?module=tcp_connect&target=$target")
    ok=$(awk '$1=="probe_success"{print $2}' <<<"$m")
    dur=$(awk '$1=="probe_duration_seconds"{printf "%.4f", $2}' <<<"$m")
    err=$(in_cli curl -s "http://$BBX/probe?module=tcp_connect&target=$target&debug=true" |
        { grep -o 'err="[^"]*"' || true; } | head -1 | sed 's/^err="//; s/"$//; s/dial tcp[46]* [^ ]*: //')
    rows+=("$name|$target|$ok|$dur|${err:--}")
    sleep 1.1 # the host-wide limit of route errors again
done
# tcpping-diag after it (route errors are rate-limited host-wide, scripts/lab.sh): every
# target at once, 3 probes each, 1.1 s apart.
in_cli "$BIN" -f "$WORK/targets.txt" -n 3 -i 1.1 -W 2 --json >"$WORK/tpd.json" 2>"$WORK/tpd.err" || true
for r in "${rows[@]}"; do
    IFS='|' read -r name target ok dur err <<<"$r"
    s=$(jq -c --arg t "$target" 'select(.type=="summary" and .target==$t)' "$WORK/tpd.json")
    verdicts=$(jq -r '[("reply", .received), ("timeout", .timeout), ("refused", .refused), ("icmp", .icmp), ("error", .error)]
        | [range(0; length; 2) as $i | select(.[$i+1] > 0) | "\(.[$i+1]) \(.[$i])"] | join(", ")' <<<"$s")
    reason=$(jq -r '[.icmp_errors[] | "\(.reason) (\(.type)/\(.code)) from \(.from)"] | join("; ") | if . == "" then "-" else . end' <<<"$s")
    time=$(jq -r 'if .received > 0 then "rtt \(.rtt_avg_ms) ms" elif .timeout > 0 then "waited the timeout (2 s)" else "-" end' <<<"$s")
    if [ "$(jq -r .icmp <<<"$s")" -gt 0 ]; then
        time=$(jq -r --arg t "$target" 'select(.type=="ping" and .target==$t) | .icmp.after_ms' "$WORK/tpd.json" | head -1)
        time=${time:+"error after $time ms"}
        [ -n "$time" ] || time="at the error"
    fi
    echo "| $name | \`$target\` | $ok | $dur | $err | $verdicts | $reason | $time |"
done
