#!/usr/bin/env bash
# What scamper (trace, tbit) sees of the middlebox lab's faults, beside tcpping-diag trace:
# the README's peer table. Runs against a middlebox topology that is up
# (`MBOX_LAB=1 scripts/lab.sh up ID`), writes every tool's raw output into OUTDIR.
#
#   scripts/lab/middlebox-peers.sh tpd-ID OUTDIR
#
# scamper trace -P tcp sends SYNs without options (so an MSS clamp or option stripping has
# nothing to act on, except TCPMSS adding an MSS: the quote's IP length grows) and records, per
# hop, the quoted IP TOS (icmp_q_tos, IPv4) and IP length (icmp_q_ipl): raw numbers, no verdict.
# scamper tbit -t ecn needs the firewall to keep our kernel from answering its connection
# (scamper -F: ipfw/pf only), so on Linux it says sys-error.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 LAB_ID OUTDIR" >&2; exit 2; }
ID=$1 OUT=$2
BIN=${TCPPING_BIN:-$(cd "$(dirname "$0")/../.." && pwd)/target/release/tcpping-diag}
NS=$ID-m-cli
mkdir -p "$OUT"
run() { # run NAME CMD... : stdout to OUT/NAME, the command in OUT/commands
    local name=$1
    shift
    echo "$*" >>"$OUT/commands"
    ip netns exec "$NS" timeout 30 "$@" >"$OUT/$name" 2>&1 || true
}
: >"$OUT/commands"
for dst in 10.80.4.2 fd80:4::2; do
    f=${dst//:/_}
    a=$dst
    [ "${dst#*:}" != "$dst" ] && a="[$dst]"
    run "tpd-clean-$f.json" "$BIN" trace "$a:13001" -W 2 --ecn --dscp 46 --json
    run "tpd-mss-$f.json" "$BIN" trace "$a:13002" -W 2 --json
    run "tpd-strip-$f.json" "$BIN" trace "$a:13003" -W 2 --json
    run "tpd-ecn-$f.json" "$BIN" trace "$a:13004" -W 2 --ecn --json
    run "tpd-dscp-$f.json" "$BIN" trace "$a:13005" -W 2 --dscp 46 --json
    run "tpd-nat-$f.json" "$BIN" trace "$a:13006" -W 2 --json
    run "tpd-seq-$f.json" "$BIN" trace "$a:13007" -W 2 --json
    run "tpd-snat-$f.json" "$BIN" trace "$a:13008" -W 2 --json
    for p in 13001 13002 13003 13004 13006 13007 13008; do
        run "scamper-trace-$p-$f.json" scamper -O json -i "$dst" -c "trace -P tcp -q 1 -d $p"
    done
    run "scamper-trace-13005-$f.json" scamper -O json -i "$dst" -c "trace -P tcp -q 1 -d 13005 -t 184"
    run "scamper-tbit-ecn-$f.json" scamper -O json -i "$dst" -c "tbit -t ecn -p http -d 13004 -u http://$a:13004/"
done
# one line per run: what each found
{
    for f in "$OUT"/tpd-*.json; do
        printf '%s\t%s\n' "$(basename "$f")" "$(jq -c -s 'last | [.changes[] | "\(.field) \(.sent)->\(.seen) hop \(.hop)"]' "$f")"
    done
    for f in "$OUT"/scamper-trace-*.json; do
        printf '%s\t%s\n' "$(basename "$f")" "$(jq -c 'select(.type=="trace") | [.hops[] | "\(.probe_ttl) q_tos=\(.icmp_q_tos) q_ipl=\(.icmp_q_ipl)"]' "$f")"
    done
    for f in "$OUT"/scamper-tbit-*.json; do
        printf '%s\t%s\n' "$(basename "$f")" "$(jq -c 'select(.type=="tbit") | .result' "$f")"
    done
} >"$OUT/summary.tsv"
cat "$OUT/summary.tsv"
