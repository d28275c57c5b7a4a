# Shared by the docker-based tests (scripts/docker-test.sh, scripts/package-test.sh); sourced,
# not run. Needs no image registry:
#
#   - installs docker.io, debootstrap, iptables, nftables, jq when missing;
#   - when no Docker engine answers, starts a private dockerd (data root
#     $STATE_DIR/docker, socket /run/tcpping-dt.sock) and stops it at the end, restoring the
#     host firewall as it was before (dockerd leaves nat tables behind, which put conntrack on
#     every loopback packet of later benchmarks);
#   - builds a Debian base image (tcpping-base:bookworm) with debootstrap from the mirror apt
#     uses, and caches its root fs tarball in $CACHE_DIR.
#
# Usage, in a script with `set -euo pipefail`:
#
#   DK_NAME=my-test                  # log prefix, names the test in SKIP/FAIL lines
#   source "$REPO/scripts/lib/docker.sh"
#   dk_setup                         # root check, lock, tools, engine, base image
#   trap my_cleanup EXIT             # my_cleanup calls dk_cleanup last
#
# Everything a script creates must be named "$PREFIX-..." (containers, networks) or be an
# image built after dk_setup: dk_cleanup removes those.
#
# Environment:
#   CI=true              fail (exit 1) instead of skipping when it cannot run
#   DOCKER_TEST_CACHE    cache dir (default /var/cache/tcpping-diag)
#   DOCKER_TEST_STATE    private engine's data root parent (default /var/lib/tcpping-diag)
#   DOCKER_TEST_MIRROR   Debian mirror for debootstrap (default: the one apt uses)
#   DOCKER_TEST_KEEP_BASE=0  also remove the tcpping-base:bookworm image at the end

CACHE_DIR=${DOCKER_TEST_CACHE:-/var/cache/tcpping-diag}
STATE_DIR=${DOCKER_TEST_STATE:-/var/lib/tcpping-diag}
BASE_TAG=tcpping-base:bookworm
PREFIX=${PREFIX:-"tcpping${DK_NAME//[^a-z]/}$$"}
T0=$(date +%s)
DOCKERD_PID=""
DEBOOTSTRAP_DIR=""
DOCKER_OK=""
FIREWALL_SAVED=""
WORK=$(mktemp -d "/tmp/tcpping-${DK_NAME}.XXXXXX")

log() { printf '[%s +%ss] %s\n' "$DK_NAME" "$(($(date +%s) - T0))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
# Cannot run here (environment, not the code under test).
cannot_run() {
    if [[ "${CI:-}" == "true" ]]; then
        log "FAIL: cannot run the $DK_NAME: $*"
        exit 1
    fi
    log "SKIP: cannot run the $DK_NAME: $*"
    exit 0
}

# apt-get quietly: its output goes to a log, shown only when every try failed
apt_get() {
    local i rc=0 aptlog="$WORK/apt.log"
    for i in 1 2 3 4 5 6 7 8 9 10; do
        if DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 "$@" </dev/null \
            >"$aptlog" 2>&1; then
            return 0
        else
            rc=$?
        fi
        log "apt-get $* failed (exit $rc, try $i; lock held by another apt?), retrying in 10s"
        sleep 10
    done
    tail -n 25 "$aptlog" >&2
    return 1
}

# dk_install_tools [command:package ...]: the engine's tools plus the caller's.
dk_install_tools() {
    local missing=() pair
    for pair in dockerd:docker.io docker:docker.io nft:nftables debootstrap:debootstrap \
        iptables:iptables jq:jq flock:util-linux "$@"; do
        command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
    done
    if ((${#missing[@]})); then
        mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
        log "installing ${missing[*]} from Debian"
        apt_get -qq update || cannot_run "apt-get update failed"
        apt_get install -y -qq --no-install-recommends "${missing[@]}" ca-certificates \
            || cannot_run "apt-get install ${missing[*]} failed"
    fi
}

# A running engine, or a private dockerd started (and later stopped) by us.
dk_engine() {
    if docker info >/dev/null 2>&1; then
        log "using the running docker engine (${DOCKER_HOST:-default socket}); it is left running"
    else
        local engine_root="$STATE_DIR/docker"   # persistent: keeps the base image between runs
        local exec_root=/run/tcpping-dt          # short: containerd socket paths live under it
        local sock=/run/tcpping-dt.sock
        local pidfile=/run/tcpping-dt.pid
        local dlog="$STATE_DIR/dockerd.log"
        export DOCKER_HOST="unix://$sock"
        if docker info >/dev/null 2>&1; then
            # Left over by an earlier run that was killed hard: adopt it.
            DOCKERD_PID=$(cat "$pidfile" 2>/dev/null || true)
            log "adopting a private dockerd left by an earlier run (pid ${DOCKERD_PID:-?})"
        else
            command -v dockerd >/dev/null || cannot_run "dockerd not installed"
            if [[ -f "$pidfile" ]] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
                rm -f "$pidfile"
            fi
            mkdir -p "$engine_root" "$exec_root"
            # dockerd adds its own tables and chains (nat, FORWARD policy DROP) and does not
            # remove them when it stops: keep the host's firewall as we found it.
            nft list tables >"$WORK/nft.before" 2>/dev/null || true
            iptables-save >"$WORK/v4.before" 2>/dev/null || true
            ip6tables-save >"$WORK/v6.before" 2>/dev/null || true
            FIREWALL_SAVED=1
            log "starting private dockerd (data root $engine_root, socket $sock, log $dlog)"
            # --bridge none: no docker0, so no clash with another engine's default
            # bridge; builds use --network host, tests use their own networks.
            dockerd --data-root "$engine_root" --exec-root "$exec_root" \
                --pidfile "$pidfile" -H "unix://$sock" --bridge none \
                --default-address-pool base=10.213.0.0/16,size=24 \
                >"$dlog" 2>&1 </dev/null 9>&- &
            DOCKERD_PID=$!
            local i
            for i in $(seq 1 120); do
                if docker info >/dev/null 2>&1; then break; fi
                if ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
                    DOCKERD_PID=""
                    tail -n 30 "$dlog" >&2
                    cannot_run "dockerd exited during startup (log above, full log $dlog)"
                fi
                sleep 0.5
            done
            if ! docker info >/dev/null 2>&1; then
                tail -n 30 "$dlog" >&2
                cannot_run "dockerd did not answer within 60s (log above, full log $dlog)"
            fi
        fi
    fi
    DOCKER_OK=1
    log "engine: $(docker version --format 'server {{.Server.Version}}, client {{.Client.Version}}' 2>/dev/null)"
    export DOCKER_BUILDKIT=0   # the legacy builder works on every engine without buildx
}

debian_mirror() {
    if [[ -n "${DOCKER_TEST_MIRROR:-}" ]]; then echo "$DOCKER_TEST_MIRROR"; return; fi
    local f uri
    # deb822 *.sources: first URIs whose Suites has a plain release (no -security).
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] || continue
        uri=$(awk '
            /^[[:space:]]*$/ { if (u != "" && ok) { print u; exit } u=""; ok=0; next }
            /^URIs:/   { u=$2 }
            /^Suites:/ { for (i=2;i<=NF;i++) if ($i !~ /-security$/ && $i !~ /^(stable|bookworm)?-?updates$/) ok=1 }
            END { if (u != "" && ok) print u }' "$f" | head -n1)
        if [[ -n "$uri" && "$uri" == *debian* && "$uri" != *security* ]]; then echo "$uri"; return; fi
    done
    # one-line format
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$f" ]] || continue
        uri=$(awk '$1=="deb" { for (i=2;i<=NF;i++) if ($i !~ /^\[/ && $i !~ /\]$/ && $i ~ /:\/\//) { print $i; exit } }' "$f" \
              | grep -v security | grep debian | head -n1 || true)
        if [[ -n "$uri" ]]; then echo "$uri"; return; fi
    done
    echo "http://deb.debian.org/debian"
}

# The base image: debootstrap minbase, no registry; the root fs tarball is cached.
dk_base_image() {
    local arch base_tar mirror
    arch=$(dpkg --print-architecture)
    base_tar="$CACHE_DIR/debootstrap-bookworm-minbase-$arch.tar"
    if docker image inspect "$BASE_TAG" >/dev/null 2>&1; then
        log "base image $BASE_TAG already in the engine"
    else
        if [[ ! -s "$base_tar" ]]; then
            mirror=$(debian_mirror)
            DEBOOTSTRAP_DIR=$(mktemp -d /var/tmp/tcpping-debootstrap.XXXXXX)
            log "debootstrap --variant=minbase bookworm from $mirror (cold cache, a few minutes)"
            if ! debootstrap --variant=minbase bookworm "$DEBOOTSTRAP_DIR/root" "$mirror" \
                    >"$WORK/debootstrap.log" 2>&1; then
                tail -n 30 "$WORK/debootstrap.log" >&2
                tail -n 30 "$DEBOOTSTRAP_DIR/root/debootstrap/debootstrap.log" >&2 2>/dev/null || true
                cannot_run "debootstrap failed (mirror $mirror)"
            fi
            rm -rf "$DEBOOTSTRAP_DIR"/root/var/cache/apt/archives/*.deb \
                   "$DEBOOTSTRAP_DIR"/root/var/lib/apt/lists/*
            tar --numeric-owner -C "$DEBOOTSTRAP_DIR/root" -cf "$base_tar.partial" .
            mv "$base_tar.partial" "$base_tar"
            rm -rf --one-file-system "$DEBOOTSTRAP_DIR"
            DEBOOTSTRAP_DIR=""
            log "cached the base root fs in $base_tar ($(du -h "$base_tar" | cut -f1))"
        fi
        log "docker import $base_tar -> $BASE_TAG"
        docker import - "$BASE_TAG" <"$base_tar" >/dev/null
    fi
    # Images that appear from here on are ours: dk_cleanup removes them.
    docker images -aq --no-trunc | sort -u >"$WORK/images.before"
}

# dk_setup [command:package ...]: everything up to a usable engine with the base image.
dk_setup() {
    if [[ $(id -u) -ne 0 ]]; then
        cannot_run "must run as root (it installs packages, starts dockerd, runs debootstrap)"
    fi
    # One docker-based test at a time on a host: the private engine, its data root and the
    # cache are shared between runs and between the tests.
    mkdir -p "$CACHE_DIR" "$STATE_DIR"
    exec 9>"$STATE_DIR/docker-test.lock"
    if ! flock -w 900 9; then
        die "another docker-based test holds $STATE_DIR/docker-test.lock for more than 15 minutes"
    fi
    dk_install_tools "$@"
    dk_engine
    dk_base_image
}

# Remove our containers, networks and images, stop a private engine, restore the firewall.
# Safe to call at any point (from an EXIT trap); call it last in the script's cleanup.
dk_cleanup() {
    set +e
    if [[ -n "$DOCKER_OK" ]]; then
        docker ps -aq --filter "name=^${PREFIX}-" 2>/dev/null | xargs -r docker rm -f >/dev/null 2>&1
        docker network ls -q --filter "name=^${PREFIX}-" 2>/dev/null | xargs -r docker network rm >/dev/null 2>&1
        # Images built since dk_base_image, tagged or not (layers of a failed legacy build
        # stay behind untagged; children first, so a few passes).
        if [[ -f "$WORK/images.before" ]]; then
            local _
            for _ in 1 2 3 4 5 6 7 8 9 10; do
                docker images -aq --no-trunc 2>/dev/null | sort -u \
                    | comm -13 "$WORK/images.before" - >"$WORK/images.new"
                [[ -s "$WORK/images.new" ]] || break
                xargs -r docker image rm -f <"$WORK/images.new" >/dev/null 2>&1
            done
        fi
        if [[ "${DOCKER_TEST_KEEP_BASE:-1}" == "0" ]]; then
            docker image rm -f "$BASE_TAG" >/dev/null 2>&1
        fi
    fi
    if [[ -n "$DOCKERD_PID" ]]; then
        log "stopping private dockerd (pid $DOCKERD_PID)"
        kill -TERM "$DOCKERD_PID" 2>/dev/null
        local _
        for _ in $(seq 1 30); do
            kill -0 "$DOCKERD_PID" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$DOCKERD_PID" 2>/dev/null; then
            log "dockerd did not stop in 15s, killing it"
            kill -KILL "$DOCKERD_PID" 2>/dev/null
        fi
    fi
    if [[ -n "$FIREWALL_SAVED" ]]; then
        log "restoring the host firewall as it was before dockerd"
        nft list tables 2>/dev/null | grep -vxF -f "$WORK/nft.before" | while read -r _ fam name; do
            nft delete table "$fam" "$name" 2>/dev/null
        done
        [[ -s "$WORK/v4.before" ]] && iptables-restore <"$WORK/v4.before" 2>/dev/null
        [[ -s "$WORK/v6.before" ]] && ip6tables-restore <"$WORK/v6.before" 2>/dev/null
    fi
    if [[ -n "$DEBOOTSTRAP_DIR" && -d "$DEBOOTSTRAP_DIR" ]]; then
        local m
        for m in proc sys dev/pts dev; do
            umount -l "$DEBOOTSTRAP_DIR/root/$m" 2>/dev/null
        done
        rm -rf --one-file-system "$DEBOOTSTRAP_DIR"
    fi
    rm -rf "$WORK"
}
