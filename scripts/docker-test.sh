#!/usr/bin/env bash
# Docker-based end-to-end test of tcpping-diag.
#
# Topology: two user-defined bridge networks joined by a router container:
#
#   client ──(net A)── router ──(net B)── server
#
# The router is a container on both networks with ip_forward=1; client and
# server route the other network via it. Filters are set in the router's
# FORWARD chain, so ICMP errors come from a real hop in the middle, as in the
# field. Cases: healthy, REJECT icmp-host-unreachable (3/1), REJECT
# icmp-admin-prohibited (3/13), plain DROP (timeouts, no invented ICMP),
# the same host-unreachable without CAP_NET_RAW (kernel error queue), and a
# server reached through a published port (`docker run -p`).
#
# Needs root. Installs docker.io, debootstrap, iptables, jq from Debian when
# missing, starts a private dockerd when no engine answers, builds a Debian
# base image with debootstrap (no registry needed) and the image's
# `runtime-prebuilt` target from target/release/tcpping-diag.
#
# Environment:
#   CI=true              fail (exit 1) instead of skipping when it cannot run
#   TCPPING_BIN=PATH     use this binary instead of target/release/tcpping-diag
#   DOCKER_TEST_CACHE    cache dir (default /var/cache/tcpping-diag)
#   DOCKER_TEST_STATE    private engine's data root parent (default /var/lib/tcpping-diag)
#   DOCKER_TEST_MIRROR   Debian mirror for debootstrap (default: the one apt uses)
#   DOCKER_TEST_KEEP_BASE=0  also remove the tcpping-base:bookworm image at the end
#
# Prints one PASS/FAIL line per case and a final "N passed, N failed" line;
# exits non-zero on any failure.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DK_NAME=docker-test
PREFIX="tcppingdt$$"
# log, die, cannot_run, dk_setup (root, lock, tools, private dockerd, base image), dk_cleanup
# shellcheck source=lib/docker.sh
source "$REPO/scripts/lib/docker.sh"
IMAGE="tcpping-diag-test:${PREFIX}"
PORT=12001

cleanup() {
    local rc=$?
    set +e
    trap - EXIT
    trap "" INT TERM   # let the cleanup finish
    dk_cleanup         # containers, networks, the test image, private engine, firewall
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

dk_setup

# ---------------------------------------------------------------------------
# Binary.
if [[ -n "${TCPPING_BIN:-}" ]]; then
    BIN=$TCPPING_BIN
else
    BIN="$REPO/target/release/tcpping-diag"
    if [[ ! -x "$BIN" ]]; then
        command -v cargo >/dev/null || die "$BIN is missing and cargo is not on PATH"
        log "building tcpping-diag (cargo build --release)"
        (cd "$REPO" && cargo build --release) || die "cargo build --release failed"
    fi
fi
[[ -x "$BIN" ]] || die "no tcpping-diag binary at $BIN"
BIN=$(readlink -f "$BIN")
for f in "$REPO"/Cargo.toml "$REPO"/Cargo.lock $(find "$REPO/src" -type f 2>/dev/null); do
    if [[ "$f" -nt "$BIN" ]]; then
        log "WARNING: $f is newer than $BIN: testing a possibly stale binary (run cargo build --release)"
        break
    fi
done

# ---------------------------------------------------------------------------
# Test image from the host binary: the repo's Dockerfile and .dockerignore.
if [[ "$BIN" == "$(readlink -f "$REPO/target/release/tcpping-diag" 2>/dev/null)" ]]; then
    CONTEXT=$REPO
else
    # TCPPING_BIN elsewhere: a minimal context laid out like the repo.
    CONTEXT="$WORK/context"
    mkdir -p "$CONTEXT/target/release"
    cp "$REPO/Dockerfile" "$REPO/.dockerignore" "$CONTEXT/"
    cp "$BIN" "$CONTEXT/target/release/tcpping-diag"
fi
log "docker build --target runtime-prebuilt -t $IMAGE"
if ! docker build --network host --force-rm --target runtime-prebuilt \
        --build-arg BASE_IMAGE="$BASE_TAG" -t "$IMAGE" "$CONTEXT" >"$WORK/build.log" 2>&1; then
    tail -n 40 "$WORK/build.log" >&2
    die "docker build failed"
fi

# ---------------------------------------------------------------------------
# Topology.
NET_A="${PREFIX}-clientnet"
NET_B="${PREFIX}-servernet"
# No masquerading: with br_netfilter the host's NAT rules also see bridged
# frames, and docker's "-s SUBNET_A ! -o br-A -j MASQUERADE" would rewrite the
# client's address when the router forwards it onto network B.
NOMASQ=(-o com.docker.network.bridge.enable_ip_masquerade=false)
docker network create "${NOMASQ[@]}" "$NET_A" >/dev/null
docker network create "${NOMASQ[@]}" "$NET_B" >/dev/null
SUBNET_A=$(docker network inspect -f '{{(index .IPAM.Config 0).Subnet}}' "$NET_A")
SUBNET_B=$(docker network inspect -f '{{(index .IPAM.Config 0).Subnet}}' "$NET_B")

ip_on() { docker inspect -f "{{(index .NetworkSettings.Networks \"$2\").IPAddress}}" "$1"; }

ROUTER="${PREFIX}-router"
docker run -d --name "$ROUTER" --network "$NET_A" --cap-add NET_ADMIN \
    --sysctl net.ipv4.ip_forward=1 --sysctl net.ipv4.icmp_ratemask=0 \
    --entrypoint sleep "$IMAGE" infinity >/dev/null
docker network connect "$NET_B" "$ROUTER"
ROUTER_A=$(ip_on "$ROUTER" "$NET_A")
ROUTER_B=$(ip_on "$ROUTER" "$NET_B")

# Network namespaces for server and client: small NET_ADMIN holders set the
# routes, the tcpping-diag containers join them with only the documented caps.
SRVNS="${PREFIX}-serverns"
docker run -d --name "$SRVNS" --network "$NET_B" --cap-add NET_ADMIN \
    --entrypoint sleep "$IMAGE" infinity >/dev/null
docker exec "$SRVNS" ip route add "$SUBNET_A" via "$ROUTER_B"
SERVER_IP=$(ip_on "$SRVNS" "$NET_B")

CLINS="${PREFIX}-clientns"
docker run -d --name "$CLINS" --network "$NET_A" --cap-add NET_ADMIN \
    --entrypoint sleep "$IMAGE" infinity >/dev/null
docker exec "$CLINS" ip route add "$SUBNET_B" via "$ROUTER_A"

SERVER="${PREFIX}-server"
docker run -d --name "$SERVER" --network "container:$SRVNS" "$IMAGE" \
    serve --listen "0.0.0.0:$PORT" --loss 0 -q >/dev/null
for i in $(seq 1 50); do
    docker exec "$SRVNS" ss -Hltn "sport = :$PORT" 2>/dev/null | grep -q . && break
    if [[ "$(docker inspect -f '{{.State.Running}}' "$SERVER")" != "true" ]]; then
        docker logs "$SERVER" >&2 || true
        die "server container exited"
    fi
    sleep 0.2
done
docker exec "$SRVNS" ss -Hltn "sport = :$PORT" | grep -q . || die "server not listening on :$PORT after 10s"
log "topology: client $SUBNET_A -- router $ROUTER_A / $ROUTER_B -- server $SERVER_IP:$PORT ($SUBNET_B)"

# ---------------------------------------------------------------------------
# Cases.
PASSED=0
FAILED=0
CASE_OUT=""; CASE_ERR=""; CASE_RC=0; CASE_SECS=0; EXTRA_WHY=""

router_rule() {  # router_rule <iptables target args...>  (replaces all FORWARD rules)
    docker exec "$ROUTER" iptables -F FORWARD
    if (($#)); then
        docker exec "$ROUTER" iptables -A FORWARD -p tcp -d "$SERVER_IP" --dport "$PORT" "$@"
    fi
}

run_client() {  # run_client <name> <docker run args...> -- <tcpping-diag args...>
    local name=$1; shift
    local dargs=()
    while (($#)) && [[ $1 != -- ]]; do dargs+=("$1"); shift; done
    shift
    CASE_OUT="$WORK/$name.json"; CASE_ERR="$WORK/$name.err"
    local t1 t2
    t1=$(date +%s.%N)
    set +e
    docker run --rm --name "${PREFIX}-client-$name" --network "container:$CLINS" \
        "${dargs[@]}" "$IMAGE" "$@" >"$CASE_OUT" 2>"$CASE_ERR"
    CASE_RC=$?
    set -e
    t2=$(date +%s.%N)
    CASE_SECS=$(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.1f", b - a }')
}

# check <name> <expected exit code> <jq assertions>
# The assertions are comma-separated `ck("what"; condition)` over the slurped
# NDJSON array; the failed ones are printed by name.
JQ_DEFS='def ck(what; cond): if (try cond catch false) then empty else what end;
def pings: map(select(.type == "ping"));
def summary: map(select(.type == "summary")) | last;'
check() {
    local name=$1 want_rc=$2 prog=$3 why=$EXTRA_WHY failed
    EXTRA_WHY=""
    if ! failed=$(jq -r -s "$JQ_DEFS [ $prog ] | join(\"; \")" "$CASE_OUT" 2>&1); then
        failed="stdout is not NDJSON / jq error: $(head -c 300 <<<"$failed")"
    fi
    [[ -n "$failed" ]] && why="${why:+$why; }$failed"
    if [[ "$CASE_RC" != "$want_rc" ]]; then
        why="${why:+$why; }exit code $CASE_RC, want $want_rc"
    fi
    if [[ -z "$why" ]]; then
        PASSED=$((PASSED + 1))
        echo "PASS: $name (${CASE_SECS}s)"
    else
        FAILED=$((FAILED + 1))
        echo "FAIL: $name (${CASE_SECS}s): $why"
        echo "----- $name stdout -----"; cat "$CASE_OUT"
        echo "----- $name stderr -----"; cat "$CASE_ERR"
        echo "------------------------"
    fi
}

N=3
CLIENT_ARGS=("$SERVER_IP:$PORT" -n "$N" -i 0.2 -W 2 --json)

# One start line, N ping lines (seq 1..N), then one summary line, nothing else.
SHAPE_BASE='ck("a start line, '"$N"' ping lines with seq 1..'"$N"', then one summary line";
      length == '"$((N + 2))"' and .[0].type == "start"
      and (.[1:-1] | map(.type) | unique) == ["ping"]
      and .[-1].type == "summary" and (pings | map(.seq)) == [range(1; '"$((N + 1))"')]),
   ck("summary.sent == '"$N"'"; summary.sent == '"$N"')'
# In the client's own network namespace no foreign ICMP error can show up.
SHAPE="$SHAPE_BASE"',
   ck("summary.unmatched_icmp == 0"; summary.unmatched_icmp == 0)'

# ICMP case: every ping status icmp with this type/code from the router,
# decided well before the 2 s timeout (< 1 s), counted in the summary.
icmp_prog() {  # icmp_prog <type> <code> <source>
    local type=$1 code=$2 src=$3
    cat <<EOF
$SHAPE,
ck("every ping: status icmp"; all(pings[]; .status == "icmp")),
ck("every ping: icmp.type $type, icmp.code $code"; all(pings[]; .icmp.type == $type and .icmp.code == $code)),
ck("every ping: icmp.from == router $ROUTER_A"; all(pings[]; .icmp.from == "$ROUTER_A")),
ck("every ping: icmp.source == \"$src\""; all(pings[]; .icmp.source == "$src")),
ck("every ping: icmp.phase == \"connect\""; all(pings[]; .icmp.phase == "connect")),
ck("every ping: icmp.reason is a string"; all(pings[]; (.icmp.reason | type) == "string")),
ck("every ping: icmp.after_ms < 1000 (timeout is 2000)"; all(pings[]; (.icmp.after_ms | type) == "number" and .icmp.after_ms < 1000)),
ck("summary: received 0, icmp $N, timeout 0, loss_pct 100"; summary | .received == 0 and .icmp == $N and .timeout == 0 and .loss_pct == 100),
ck("summary.icmp_errors == one entry {$type, $code, $ROUTER_A, count $N}";
   [summary.icmp_errors[] | {type, code, from, count}] == [{type: $type, code: $code, from: "$ROUTER_A", count: $N}])
EOF
}

# 1. healthy
router_rule
run_client healthy --cap-add NET_RAW -- "${CLIENT_ARGS[@]}"
check healthy 0 "$SHAPE"',
ck("every ping: status reply, icmp null, error null"; all(pings[]; .status == "reply" and .icmp == null and .error == null)),
ck("every ping: rtt_ms and connect_ms numbers"; all(pings[]; (.rtt_ms | type) == "number" and (.connect_ms | type) == "number")),
ck("summary: received '"$N"', loss_pct 0, icmp 0, timeout 0"; summary | .received == '"$N"' and .loss_pct == 0 and .icmp == 0 and .timeout == 0),
ck("summary.icmp_errors empty"; (summary.icmp_errors // []) == []),
ck("summary.target == '"$SERVER_IP:$PORT"'"; summary.target == "'"$SERVER_IP:$PORT"'")'

# 2. REJECT icmp-host-unreachable at the router -> 3/1 from the router
router_rule -j REJECT --reject-with icmp-host-unreachable
run_client host-unreachable --cap-add NET_RAW -- "${CLIENT_ARGS[@]}"
check host-unreachable 1 "$(icmp_prog 3 1 raw)"

# 3. REJECT icmp-admin-prohibited -> 3/13
router_rule -j REJECT --reject-with icmp-admin-prohibited
run_client admin-prohibited --cap-add NET_RAW -- "${CLIENT_ARGS[@]}"
check admin-prohibited 1 "$(icmp_prog 3 13 raw)"

# 4. plain DROP: timeouts only, no invented ICMP
router_rule -j DROP
run_client drop --cap-add NET_RAW -- "${CLIENT_ARGS[@]}"
check drop 1 "$SHAPE"',
ck("every ping: status timeout, icmp null, rtt_ms null"; all(pings[]; .status == "timeout" and .icmp == null and .rtt_ms == null)),
ck("summary: received 0, timeout '"$N"', icmp 0"; summary | .received == 0 and .timeout == '"$N"' and .icmp == 0),
ck("summary.icmp_errors empty"; (summary.icmp_errors // []) == [])'

# 5. no CAP_NET_RAW: one stderr line naming CAP_NET_RAW, and the ICMP error
#    still reported, from the kernel error queue (source "recverr").
router_rule -j REJECT --reject-with icmp-host-unreachable
run_client no-net-raw --cap-drop NET_RAW -- "${CLIENT_ARGS[@]}"
if [[ $(grep -c CAP_NET_RAW "$CASE_ERR" || true) != 1 ]]; then
    EXTRA_WHY="stderr has $(grep -c CAP_NET_RAW "$CASE_ERR" || true) lines naming CAP_NET_RAW, want 1"
fi
check no-net-raw 1 "$(icmp_prog 3 1 recverr)"
router_rule

# 6. server published on the host (`docker run -p`, no extra caps), host client.
PUB="${PREFIX}-published"
docker run -d --name "$PUB" --network "$NET_B" -p "127.0.0.1::$PORT" "$IMAGE" \
    serve --loss 0 -q >/dev/null
HOST_PORT=""
for _ in $(seq 1 50); do
    HOST_PORT=$(docker port "$PUB" "$PORT/tcp" 2>/dev/null | head -n1 | sed 's/.*://')
    [[ -n "$HOST_PORT" ]] && docker exec "$PUB" ss -Hltn "sport = :$PORT" 2>/dev/null | grep -q . && break
    sleep 0.2
done
t1=$(date +%s.%N)
set +e
"$BIN" "127.0.0.1:${HOST_PORT:-0}" -n "$N" -i 0.2 -W 2 --json >"$WORK/published.json" 2>"$WORK/published.err"
CASE_RC=$?
set -e
CASE_SECS=$(awk -v a="$t1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
CASE_OUT="$WORK/published.json"; CASE_ERR="$WORK/published.err"
# (host namespace: other programs' ICMP errors may count as unmatched_icmp)
check published-port 0 "$SHAPE_BASE"',
ck("every ping: status reply"; all(pings[]; .status == "reply")),
ck("summary.received == '"$N"'"; summary.received == '"$N"')'

echo "$PASSED passed, $FAILED failed"
log "done in $(($(date +%s) - T0))s"
((FAILED == 0))
