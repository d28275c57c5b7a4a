#!/usr/bin/env bash
# The Debian package, tested as a user would use it: build the .deb (scripts/build-deb.sh),
# install it with apt-get into a clean Debian bookworm container (the debootstrap base image
# of scripts/lib/docker.sh, plus systemd, man-db, bash-completion, zsh, fish, iptables), and
# check, as a non-root user unless said otherwise:
#
#   - the file capability: getcap shows cap_net_raw=ep; pings to the server time the
#     handshake on the wire (a packet socket: needs CAP_NET_RAW); with an iptables REJECT
#     rule in the container's own network namespace, every ping gets an ICMP verdict with
#     "source":"raw" (raw ICMP capture), from the container's own (non-loopback) address;
#   - --version names the commit the binary was built from;
#   - man pages: man finds and renders tcpping-diag(1) and one page per subcommand, with no
#     groff warnings;
#   - completions: bash completes a flag and a subcommand (the installed script, loaded the way
#     bash-completion loads it), fish too; zsh parses its script;
#   - the units: systemd-analyze verify; the server unit starts under systemd (as a dynamic
#     user, with no capabilities, no_new_privs and a seccomp filter) and answers pings; the
#     monitor template as shipped (-f FILE --metrics): a connect and a --syn instance count
#     ICMP errors from raw capture (CAP_NET_RAW only) in their metrics.
#     Where systemd cannot run in a container, the server unit's ExecStart line (read from the
#     installed unit, flags from the installed serve.conf) runs as an unprivileged user;
#   - removal: apt-get purge stops the services and removes every file: the file listing of
#     the container (types and modes, plus checksums of /etc) is the same as before the
#     install, with the units enabled before the purge;
#   - a second install where setcap fails (a stub setcap that fails as on a file system
#     without extended attributes): the installation says so clearly, succeeds, and the tool
#     works unprivileged (its one-line notice, "source":"recverr" verdicts); purge again.
#
# Needs root (docker). The engine, base image and cleanup are those of scripts/docker-test.sh
# (scripts/lib/docker.sh). Prints one PASS/FAIL line per check and "N passed, N failed".
#
# Environment: as scripts/lib/docker.sh (CI, DOCKER_TEST_*), and
#   PACKAGE_DEB=PATH   test this .deb instead of building one
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DK_NAME=package-test
PREFIX="tcppingpt$$"
# shellcheck source=lib/docker.sh
source "$REPO/scripts/lib/docker.sh"
IMAGE="tcpping-pkgtest:${PREFIX}"
NET="${PREFIX}-net"
C="${PREFIX}-debian"
PORT=12001

cleanup() {
    local rc=$?
    set +e
    trap - EXIT
    trap "" INT TERM
    dk_cleanup   # the container, its network and image, private engine, host firewall
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

dk_setup capsh:libcap2-bin

# ---------------------------------------------------------------------------
# The package.
if [[ -n "${PACKAGE_DEB:-}" ]]; then
    DEB=$(readlink -f "$PACKAGE_DEB")
else
    log "building the package (scripts/build-deb.sh)"
    DEB=$("$REPO/scripts/build-deb.sh" | tail -n 1)
fi
[[ -f "$DEB" ]] || die "no .deb at '$DEB'"
log "package: $DEB ($(du -h "$DEB" | cut -f1))"
WANT_VERSION=$(dpkg-deb -f "$DEB" Version)

# ---------------------------------------------------------------------------
# Test image: the base plus what a user's machine has and the checks use. Everything is
# installed before the baseline listing, so apt-get install of the .deb adds only the package.
mkdir -p "$WORK/image"
cat >"$WORK/image/Dockerfile" <<'EOF'
FROM tcpping-base:bookworm
RUN set -eux; \
    apt-get update -qq; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        systemd libcap2-bin man-db groff-base less bash-completion zsh fish \
        iptables iproute2 procps openssh-server python3 fonts-dejavu-core >/dev/null; \
    apt-get clean; rm -rf /var/lib/apt/lists/*; \
    useradd --create-home --shell /bin/bash tester; \
    systemctl mask getty.target console-getty.service systemd-timesyncd.service \
        systemd-logind.service systemd-udevd.service systemd-udev-trigger.service \
        systemd-firstboot.service systemd-remount-fs.service >/dev/null 2>&1; \
    mandb -q
ENV container=docker
EOF
log "docker build $IMAGE (systemd, man-db, bash-completion, zsh, fish, iptables)"
if ! docker build --network host --force-rm -t "$IMAGE" "$WORK/image" >"$WORK/build.log" 2>&1; then
    tail -n 40 "$WORK/build.log" >&2
    die "docker build of the test image failed"
fi

# An internal network: the container's address is not loopback, and nothing leaves it.
docker network create --internal "$NET" >/dev/null

# systemd as PID 1 when it can run here; else a plain container (ExecStart run by hand).
# Not --privileged: that asks for every capability, and where this host's bounding set lacks
# some (a sandboxed CI VM) the container cannot start. Every capability the host has instead,
# and an empty /sys/fs/cgroup in a private cgroup namespace where systemd mounts its own
# hierarchies.
SYSTEMD=0
drop=()
last=$(cat /proc/sys/kernel/cap_last_cap)
bnd=$((16#$(awk '/^CapBnd:/ {print $2}' /proc/self/status)))
missing=$(( ((1 << (last + 1)) - 1) & ~bnd ))
if ((missing)); then
    for cap in $(capsh --decode="$(printf '0x%x' "$missing")" | sed 's/.*=//; s/,/ /g'); do
        drop+=(--cap-drop "${cap#cap_}")
    done
fi
SYSTEMD_OPTS=(--cap-add ALL "${drop[@]}" --security-opt seccomp=unconfined
    --security-opt apparmor=unconfined --cgroupns=private --tmpfs /sys/fs/cgroup
    --tmpfs /run --tmpfs /run/lock --tmpfs /tmp --stop-signal SIGRTMIN+3)
state=""
if docker run -d --name "$C" --network "$NET" "${SYSTEMD_OPTS[@]}" "$IMAGE" /lib/systemd/systemd \
        >/dev/null 2>"$WORK/run.err"; then
    for _ in $(seq 1 60); do
        # (until its private socket is up, systemctl says "Failed to connect to bus")
        state=$(docker exec "$C" systemctl is-system-running --wait 2>/dev/null || true)
        [[ "$state" == "" || "$state" == offline ]] || break
        sleep 1
    done
else
    log "docker run of a systemd container failed: $(head -n 2 "$WORK/run.err")"
fi
if [[ "$state" == running || "$state" == degraded ]]; then
    SYSTEMD=1
    log "systemd runs in the container (state $state; capabilities dropped: ${drop[*]:-none})"
    [[ "$state" == degraded ]] && docker exec "$C" systemctl --failed --no-legend >&2
else
    log "systemd does not run in a container here (state '${state:-none}')"
    log "falling back: a plain container, the server unit's ExecStart run as an unprivileged user"
    docker rm -f "$C" >/dev/null 2>&1 || true
    docker run -d --name "$C" --network "$NET" --cap-add NET_ADMIN --tmpfs /tmp \
        --entrypoint sleep "$IMAGE" infinity >/dev/null
fi
IP=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" "$C")
log "container $C at $IP (network $NET, internal)"

as_root() { docker exec "$C" "$@"; }
as_user() { docker exec -u tester -e HOME=/home/tester -w /home/tester "$C" "$@"; }

# ---------------------------------------------------------------------------
# Checks.
PASSED=0
FAILED=0
# check NAME: the outcome of the commands just run: WHY empty = pass. OUT is shown on failure.
WHY=""
OUT=""
check() {
    if [[ -z "$WHY" ]]; then
        PASSED=$((PASSED + 1))
        echo "PASS: $1"
    else
        FAILED=$((FAILED + 1))
        echo "FAIL: $1: $WHY"
        [[ -n "$OUT" ]] && printf '%s\n' "----- output -----" "$OUT" "------------------"
    fi
    WHY=""
    OUT=""
}
fail() { WHY="${WHY:+$WHY; }$*"; }

# The listing purge must get back to: every path with its type and mode, and the checksum of
# every file under /etc. Left out, as they change with any apt run or boot: logs, caches that
# apt/man-db/debconf rewrite, dpkg's and apt's own databases (the package's entry in them is
# checked with dpkg-query instead), systemd's runtime state, the man-db index (its contents;
# the file is in the listing), and the test user's own dot files (fish writes its variables).
listing() {
    as_root sh -c '
        find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
            -o -path /var/log -o -path /var/cache/apt -o -path /var/cache/debconf \
            -o -path /var/lib/dpkg -o -path /var/lib/apt -o -path /var/cache/ldconfig \
            -o -path /var/lib/systemd/catalog -o -path /var/lib/systemd/timers \
            -o -path /var/lib/systemd/random-seed -o -path /var/lib/systemd/coredump \
            -o -path /home/tester \) -prune \
            -o -printf "%y %m %p\n" | sort
        find /etc -xdev -type f -exec md5sum {} + | sort -k 2 | sed "s/^/md5 /"'
}

# JSON checks on the NDJSON a client run printed: jq -s over it, "true" or the reason.
jq_check() {  # jq_check <ndjson> <jq program giving a string reason or empty>
    local why
    why=$(jq -rs "$2" <<<"$1" 2>&1) || why="not NDJSON ($(head -c 200 <<<"$1"))"
    [[ -z "$why" ]] || fail "$why"
}
PINGS_ARE='def pings: map(select(.type == "ping"));'

log "baseline file listing"
listing >"$WORK/before.txt"
# (docker cp cannot write into the container's /tmp, a tmpfs)
docker exec -i "$C" sh -c 'mkdir -p /tmp/pkg && cat >/tmp/pkg/tcpping-diag.deb && chmod 644 /tmp/pkg/tcpping-diag.deb' <"$DEB"

# ---------------------------------------------------------------------------
log "apt-get install the package"
if ! OUT=$(as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q /tmp/pkg/tcpping-diag.deb 2>&1); then
    fail "apt-get install failed"
elif grep -q 'tcpping-diag: setcap' <<<"$OUT"; then
    fail "the postinst reported a setcap problem"
fi
[[ "$(as_root dpkg-query -W -f '${Status} ${Version}' tcpping-diag 2>&1)" == "install ok installed $WANT_VERSION" ]] \
    || fail "dpkg-query: $(as_root dpkg-query -W -f '${Status} ${Version}' tcpping-diag 2>&1)"
check "apt-get install of the .deb"
as_root dpkg -L tcpping-diag | sort >"$WORK/files.txt"
log "installed $(as_root dpkg -L tcpping-diag | wc -l) paths; conffiles: $(as_root dpkg-query -W -f '${Conffiles}' tcpping-diag | awk 'NF {printf "%s ", $1}')"

OUT=$(as_user getcap /usr/bin/tcpping-diag 2>&1)
grep -Eq '^/usr/bin/tcpping-diag (cap_net_raw=ep|= cap_net_raw\+ep)$' <<<"$OUT" || fail "getcap: $OUT"
check "postinst gave /usr/bin/tcpping-diag cap_net_raw+ep (file capability kept by the container's storage)"

OUT=$(as_user tcpping-diag --version 2>&1)
if [[ -z "${PACKAGE_DEB:-}" ]]; then
    [[ "$OUT" == "$("$REPO/target/release/tcpping-diag" --version 2>/dev/null)" ]] \
        || fail "--version in the container: '$OUT', the built binary says '$("$REPO/target/release/tcpping-diag" --version 2>&1)'"
fi
grep -Eq '^tcpping-diag [0-9.]+ \(commit ([0-9a-f]{7,}(-dirty)?|unknown)\)$' <<<"$OUT" || fail "format: $OUT"
check "tcpping-diag --version names the commit ($OUT)"

# --- the server unit --------------------------------------------------------
SERVER_DESC=""
if ((SYSTEMD)); then
    OUT=$(as_root systemctl is-enabled tcpping-diag-serve.service 2>&1 || true)
    [[ "$OUT" == disabled ]] || fail "is-enabled: $OUT (shipped disabled)"
    OUT=$(as_root systemctl is-active tcpping-diag-serve.service 2>&1 || true)
    [[ "$OUT" == inactive ]] || fail "is-active: $OUT (not started by the install)"
    check "the units are installed disabled and not started"

    OUT=$(as_root systemctl start tcpping-diag-serve.service 2>&1) || fail "systemctl start failed"
    for _ in $(seq 1 50); do
        as_root sh -c "ss -Hltn 'sport = :$PORT' | grep -q ." && break
        sleep 0.2
    done
    PID=$(as_root systemctl show -p MainPID --value tcpping-diag-serve.service)
    if [[ -z "$PID" || "$PID" == 0 ]]; then
        fail "no MainPID"
        OUT="$OUT$(as_root journalctl -u tcpping-diag-serve --no-pager -n 20 2>&1)"
    else
        st=$(as_root cat "/proc/$PID/status")
        user=$(as_root ps -o user= -p "$PID")
        uid=$(awk '/^Uid:/ {print $2}' <<<"$st")
        [[ "$uid" != 0 ]] || fail "runs as root"
        [[ "$user" == tcpping-diag-serve || "$uid" -ge 61184 ]] || fail "not a dynamic user: $user ($uid)"
        for f in CapEff CapPrm CapBnd CapAmb; do
            [[ "$(awk -v f="$f:" '$1 == f {print $2}' <<<"$st")" =~ ^0+$ ]] || fail "$f not empty"
        done
        [[ "$(awk '/^NoNewPrivs:/ {print $2}' <<<"$st")" == 1 ]] || fail "NoNewPrivs not set"
        [[ "$(awk '/^Seccomp:/ {print $2}' <<<"$st")" == 2 ]] || fail "no seccomp filter"
        as_root sh -c "ss -Hltn 'sport = :$PORT' | grep -q ." || fail "not listening on :$PORT"
        SERVER_DESC="pid $PID, user $user ($uid)"
        OUT=$(as_root journalctl -u tcpping-diag-serve --no-pager -n 5 2>&1)
    fi
    check "tcpping-diag-serve.service starts under systemd: dynamic user, no capabilities, no_new_privs, seccomp ($SERVER_DESC)"

    OUT=$(as_root systemd-analyze security --no-pager tcpping-diag-serve.service 2>&1 | tail -n 1)
    score=$(grep -Eo '[0-9]+\.[0-9]+' <<<"$OUT" | head -n 1)
    # A regression guard on the hardening options (0 = fully locked down, 10 = none).
    awk -v s="${score:-99}" 'BEGIN { exit !(s <= 2.0) }' || fail "exposure ${score:-?} > 2.0"
    check "systemd-analyze security tcpping-diag-serve: $OUT"
else
    # No systemd: the unit's ExecStart, flags from the installed serve.conf, as nobody with no
    # capabilities (what DynamicUser= and CapabilityBoundingSet= give under systemd).
    EXEC=$(as_root sed -n 's/^ExecStart=//p' /usr/lib/systemd/system/tcpping-diag-serve.service)
    [[ "$EXEC" == '/usr/bin/tcpping-diag serve $SERVE_FLAGS' ]] || fail "unexpected ExecStart: $EXEC"
    as_root sh -c "set -a; . /etc/tcpping-diag/serve.conf; set +a
        exec setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all \
            --bounding-set=-all --no-new-privs $EXEC >/tmp/serve.log 2>&1 &" || fail "could not start it"
    for _ in $(seq 1 50); do
        as_root sh -c "ss -Hltn 'sport = :$PORT' | grep -q ." && break
        sleep 0.2
    done
    as_root sh -c "ss -Hltn 'sport = :$PORT' | grep -q ." || fail "not listening on :$PORT"
    OUT=$(as_root cat /tmp/serve.log)
    check "no systemd: the server unit's ExecStart runs as nobody with no capabilities ($EXEC)"
fi

OUT=$(as_root systemd-analyze verify tcpping-diag-serve.service tcpping-diag-monitor@example.service 2>&1) \
    || fail "systemd-analyze verify failed"
check "systemd-analyze verify of both units"

# --- pings as the user, through the file capability -------------------------
OUT=$(as_user tcpping-diag "$IP:$PORT" -n 10 -i 0.05 -W 2 --json 2>"$WORK/err") || true
jq_check "$OUT" "$PINGS_ARE"'
    if (pings | length) != 10 then "\(pings | length) pings, want 10"
    elif any(pings[]; .status != "reply" and .status != "lost") then "a ping neither reply nor lost"
    elif ([pings[] | select(.status == "reply")] | length) == 0 then "no reply"
    elif any(pings[]; .connect_clock != "wire") then "connect_clock not wire (no packet socket: no CAP_NET_RAW?)"
    else empty end'
[[ ! -s "$WORK/err" ]] || fail "stderr: $(cat "$WORK/err")"
check "pings to the installed server: replies and LOST (serve.conf's 20% loss), handshakes timed on the wire"

as_root iptables -I INPUT -p tcp -d "$IP" --dport "$PORT" -j REJECT --reject-with icmp-admin-prohibited
OUT=$(as_user tcpping-diag "$IP:$PORT" -n 3 -i 0.1 -W 2 --json 2>"$WORK/err") || true
jq_check "$OUT" "$PINGS_ARE"'
    if (pings | length) != 3 then "\(pings | length) pings, want 3"
    elif any(pings[]; .status != "icmp") then "a ping without an ICMP verdict"
    elif any(pings[]; .icmp.type != 3 or .icmp.code != 13) then "not ICMP 3/13"
    elif any(pings[]; .icmp.source != "raw") then "icmp.source not raw"
    elif any(pings[]; .icmp.from != "'"$IP"'") then "icmp.from not '"$IP"'"
    else empty end'
[[ ! -s "$WORK/err" ]] || fail "stderr: $(cat "$WORK/err")"
check "as user tester, an iptables REJECT gives ICMP 3/13 verdicts with \"source\":\"raw\" (raw capture from the file capability)"

if ((SYSTEMD)); then
    # The monitor template as shipped (its own ExecStart: -f FILE --metrics ADDR:PORT, in its
    # sandbox with CAP_NET_RAW only), for an instance whose targets file names the REJECTed
    # port: its metrics must count ICMP 3/13 verdicts from the raw capture, and SYN probes
    # (which need the capability for their raw and packet sockets) must work too.
    as_root sh -c 'printf "%s\n" "# the package test" "'"$IP:$PORT"' name=rejected" \
            >/etc/tcpping-diag/pkgtest.targets
        printf "%s\n" "METRICS_LISTEN=127.0.0.1:9775" "MONITOR_FLAGS=\"-i 0.2 -W 2 -q\"" \
            >/etc/tcpping-diag/pkgtest.conf
        printf "%s\n" "METRICS_LISTEN=127.0.0.1:9776" "MONITOR_FLAGS=\"-i 0.2 -W 2 -q --syn\"" \
            >/etc/tcpping-diag/pkgsyn.conf
        cp /etc/tcpping-diag/pkgtest.targets /etc/tcpping-diag/pkgsyn.targets'
    as_root systemctl start tcpping-diag-monitor@pkgtest.service tcpping-diag-monitor@pkgsyn.service ||
        fail "start failed"
    metrics() { # metrics PORT: the /metrics text, through bash's /dev/tcp (no curl here)
        as_root bash -c 'exec 3<>/dev/tcp/127.0.0.1/'"$1"' && printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 && cat <&3' 2>&1
    }
    got=""
    for _ in $(seq 1 50); do
        sleep 0.2
        m1=$(metrics 9775) m2=$(metrics 9776)
        if grep -q 'tcpping_icmp_errors_total{target="'"$IP:$PORT"'",name="rejected",type="3",code="13",router="'"$IP"'"} [1-9]' <<<"$m1" &&
            grep -q 'tcpping_icmp_errors_total{target="'"$IP:$PORT"'",name="rejected",type="3",code="13",router="'"$IP"'"} [1-9]' <<<"$m2"; then
            got=1
            break
        fi
    done
    OUT="$m1"$'\n'"$m2"$'\n'"$(as_root journalctl -u 'tcpping-diag-monitor@pkg*' --no-pager -n 20 2>&1)"
    [[ -n "$got" ]] || fail "no ICMP 3/13 from $IP counted in the monitors' metrics"
    grep -q 'tcpping_probes_total{target="'"$IP:$PORT"'",name="rejected",verdict="icmp"} [1-9]' <<<"$m1" ||
        fail "probes by verdict: no icmp verdict"
    pid=$(as_root systemctl show -p MainPID --value tcpping-diag-monitor@pkgtest.service)
    status=$(as_root cat "/proc/$pid/status")
    grep -q '^CapEff:\s*0000000000000000' <<<"$status" || fail "the monitor kept capabilities: $(grep Cap <<<"$status")"
    as_root systemctl stop tcpping-diag-monitor@pkgtest.service tcpping-diag-monitor@pkgsyn.service
    as_root rm -f /etc/tcpping-diag/pkgtest.targets /etc/tcpping-diag/pkgtest.conf \
        /etc/tcpping-diag/pkgsyn.targets /etc/tcpping-diag/pkgsyn.conf
    check "the monitor template as shipped (-f FILE --metrics, CAP_NET_RAW only): connect and --syn instances count ICMP 3/13 from $IP in their metrics, and run with no capability left"
fi
as_root iptables -D INPUT -p tcp -d "$IP" --dport "$PORT" -j REJECT --reject-with icmp-admin-prohibited

if ((SYSTEMD)); then
    # The monitor as shipped (example.conf's flags) against the services people monitor: a
    # real sshd (it greets with a banner) and a real HTTP server (it answers with a 400 or
    # closes): both are up, every probe a reply, none an error.
    as_root sh -c 'mkdir -p /run/sshd && /usr/sbin/sshd -p 2222 -o ListenAddress=127.0.0.1 &&
        (cd /tmp && nohup python3 -m http.server 8080 --bind 127.0.0.1 >/tmp/http.log 2>&1 &) &&
        sed "s/^METRICS_LISTEN=.*/METRICS_LISTEN=127.0.0.1:9777/" /etc/tcpping-diag/example.conf \
            >/etc/tcpping-diag/pkgup.conf &&
        printf "%s\n" "127.0.0.1:2222 name=ssh" "127.0.0.1:8080 name=http" >/etc/tcpping-diag/pkgup.targets'
    for _ in $(seq 1 50); do
        as_root bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080' 2>/dev/null && break
        sleep 0.1
    done
    as_root systemctl start tcpping-diag-monitor@pkgup.service || fail "start failed"
    got=""
    for _ in $(seq 1 50); do
        sleep 0.2
        m=$(metrics 9777)
        if grep -q 'tcpping_probes_total{target="127.0.0.1:2222",name="ssh",verdict="reply"} [2-9]' <<<"$m" &&
            grep -q 'tcpping_probes_total{target="127.0.0.1:8080",name="http",verdict="reply"} [2-9]' <<<"$m"; then
            got=1
            break
        fi
    done
    OUT="$m"$'\n'"$(as_root journalctl -u tcpping-diag-monitor@pkgup --no-pager -n 20 2>&1)"
    [[ -n "$got" ]] || fail "sshd and the HTTP server not counted as replies"
    if grep -E 'tcpping_probes_total\{target="127.0.0.1:(2222|8080)".*verdict="(error|timeout|refused|lost)"\} [1-9]' <<<"$m"; then
        fail "a probe of a healthy sshd or HTTP server did not count as a reply"
    fi
    as_root systemctl stop tcpping-diag-monitor@pkgup.service
    as_root rm -f /etc/tcpping-diag/pkgup.conf /etc/tcpping-diag/pkgup.targets
    # ([h]: the pattern must not match the command line of the shell that runs pkill)
    as_root sh -c 'pkill -f "[h]ttp.server 8080"; pkill -f "[s]shd -p 2222"' || true
    check "the monitor as shipped (example.conf's flags) counts a real sshd and a real HTTP server as up: every probe a reply"
fi

# --- man pages ----------------------------------------------------------------
pages=$(grep -Eo '/usr/share/man/man1/[^/]+\.1\.gz$' "$WORK/files.txt" | sed 's|.*/||; s|\.1\.gz$||' | sort)
for want in tcpping-diag tcpping-diag-serve; do
    grep -qx "$want" <<<"$pages" || fail "no page $want"
done
for page in $pages; do
    where=$(as_user man -w "$page" 2>&1) || fail "man -w $page: $where"
    text=$(as_user env MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings "$page" 2>"$WORK/err") || fail "man $page failed"
    [[ ! -s "$WORK/err" ]] || fail "man $page warnings: $(head -c 300 "$WORK/err")"
    grep -q '^SYNOPSIS' <<<"$text" || fail "man $page: no SYNOPSIS"
    grep -q '^EXAMPLES' <<<"$text" || fail "man $page: no EXAMPLES"
done
text=$(as_user env MANWIDTH=80 man tcpping-diag 2>/dev/null)
for want in VERDICTS PRIVILEGES 'EXIT STATUS' '--connect-only' 'tcpping-diag-serve(1)'; do
    grep -qF -- "$want" <<<"$text" || fail "man tcpping-diag lacks '$want'"
done
OUT=$(head -n 40 <<<"$text")
check "man renders $(wc -w <<<"$pages") pages ($(echo $pages)) without groff warnings"

# --- completions ----------------------------------------------------------------
# bash: the installed script, loaded on demand by bash-completion as in an interactive shell,
# then its completion function called as readline would.
bash_complete() {  # bash_complete WORD...: the candidates for the last word
    as_user bash -c '
        source /usr/share/bash-completion/bash_completion
        __load_completion tcpping-diag || exit 3
        spec=$(complete -p tcpping-diag) || exit 4
        fn=$(sed -E "s/.* -F ([^ ]+).*/\1/" <<<"$spec")
        COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
        COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
        "$fn" tcpping-diag "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
        printf "%s\n" "${COMPREPLY[@]}"' bash "$@"
}
OUT=$(bash_complete tcpping-diag --conn 2>&1) || fail "bash completion failed ($?)"
[[ "$OUT" == "--connect-only" ]] || fail "'tcpping-diag --conn<TAB>' gave '$OUT'"
got=$(bash_complete tcpping-diag se 2>&1)
[[ "$got" == serve ]] || fail "'tcpping-diag se<TAB>' gave '$got'"
got=$(bash_complete tcpping-diag serve --loss-m 2>&1)
[[ "$got" == --loss-mode ]] || fail "'tcpping-diag serve --loss-m<TAB>' gave '$got'"
check "bash completes --conn -> --connect-only, se -> serve, serve --loss-m -> --loss-mode"

OUT=$(as_user fish -c 'complete -C "tcpping-diag --conn"' 2>&1) || fail "fish failed"
grep -q '^--connect-only' <<<"$OUT" || fail "fish: 'tcpping-diag --conn' gave '$OUT'"
zsh_out=$(as_user zsh -n /usr/share/zsh/vendor-completions/_tcpping-diag 2>&1) || fail "zsh -n: $zsh_out"
check "fish completes --conn -> --connect-only; zsh parses _tcpping-diag"

# --- purge ------------------------------------------------------------------------
purge_and_compare() {  # purge_and_compare LABEL
    local out
    out=$(as_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q tcpping-diag 2>&1) \
        || fail "apt-get purge failed: $(tail -n 5 <<<"$out")"
    as_root dpkg-query -W tcpping-diag >/dev/null 2>&1 && fail "dpkg still knows the package"
    as_root sh -c 'pgrep -a tcpping-diag' >"$WORK/procs" 2>&1 && fail "still running: $(cat "$WORK/procs")"
    listing >"$WORK/after.txt"
    if ! OUT=$(diff "$WORK/before.txt" "$WORK/after.txt"); then
        fail "the file listing differs from the one before the install ($(grep -c '^[<>]' <<<"$OUT") lines)"
    fi
    check "$1"
}
if ((SYSTEMD)); then
    # Enabled and running units must not survive the purge either.
    as_root systemctl enable tcpping-diag-serve.service tcpping-diag-monitor@example.service >/dev/null 2>&1 \
        || fail "systemctl enable failed"
    as_root sh -c 'ls /etc/systemd/system/multi-user.target.wants/ | grep -q tcpping-diag-monitor@example' \
        || fail "enable made no symlink"
    check "systemctl enable tcpping-diag-serve and tcpping-diag-monitor@example (to be undone by the purge)"
fi
purge_and_compare "apt-get purge stops the server and removes every file: the listing equals the one before the install$( ((SYSTEMD)) && echo ', units enabled before')"

# --- file capabilities not supported -------------------------------------------------
# A setcap that fails as it does on a file system without extended attributes.
# (In place of /usr/sbin/setcap, the real one diverted: dpkg runs maintainer scripts with its
# own PATH, so a stub earlier on ours would not be used.)
as_root dpkg-divert --quiet --local --rename --add /usr/sbin/setcap
docker exec -i "$C" sh -c 'cat >/usr/sbin/setcap && chmod 755 /usr/sbin/setcap' <<'EOF'
#!/bin/sh
echo "Failed to set capabilities on file '$2' (Operation not supported)" >&2
exit 1
EOF
if ! OUT=$(as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q /tmp/pkg/tcpping-diag.deb 2>&1); then
    fail "apt-get install failed when setcap fails"
fi
grep -q 'tcpping-diag: setcap cap_net_raw+ep /usr/bin/tcpping-diag failed: file capabilities are not supported' <<<"$OUT" \
    || fail "no clear message from the postinst"
grep -q 'it still works, without raw ICMP capture' <<<"$OUT" || fail "the message does not say it still works"
[[ -z "$(as_user getcap /usr/bin/tcpping-diag)" ]] || fail "a capability is set"
check "setcap failing: the install succeeds and says clearly that it runs without raw capture"

as_root iptables -I INPUT -p tcp -d "$IP" --dport "$PORT" -j REJECT --reject-with icmp-admin-prohibited
OUT=$(as_user tcpping-diag "$IP:$PORT" -n 2 -i 0.1 -W 2 --json 2>"$WORK/err") || true
jq_check "$OUT" "$PINGS_ARE"'
    if (pings | length) != 2 then "\(pings | length) pings, want 2"
    elif any(pings[]; .status != "icmp" or .icmp.source != "recverr" or .icmp.code != 13) then "not ICMP 3/13 verdicts from the error queue"
    else empty end'
grep -q 'ICMP capture off: raw sockets need root or CAP_NET_RAW' "$WORK/err" || fail "no one-line notice on stderr"
[[ $(wc -l <"$WORK/err") == 1 ]] || fail "stderr has $(wc -l <"$WORK/err") lines, want the one notice"
as_root iptables -D INPUT -p tcp -d "$IP" --dport "$PORT" -j REJECT --reject-with icmp-admin-prohibited

check "without the capability the user's ping still works: the notice, ICMP verdicts with \"source\":\"recverr\""

as_root sh -c 'rm -f /usr/sbin/setcap && dpkg-divert --quiet --local --rename --remove /usr/sbin/setcap'
purge_and_compare "apt-get purge after that install: the listing equals the one before the install"

echo "$PASSED passed, $FAILED failed"
log "done in $(($(date +%s) - T0))s (systemd in the container: $( ((SYSTEMD)) && echo yes || echo no))"
((FAILED == 0))
