# shellcheck shell=bash
# Sourced by scripts/lab.sh, scripts/test.sh and scripts/bench.sh: root through sudo, cargo
# on PATH, quiet apt-get installs, and files made as root handed back to the sudo user.
# The sourcing script sets SCRIPT (its name, for messages) and SELF (its absolute path).

# Root's tools (iptables, sysctl, ip) live in the sbin directories, which a user's PATH,
# kept through sudo so that cargo is found, does not have: add those missing.
if [ "$(id -u)" -eq 0 ]; then
    for _d in /usr/local/sbin /usr/sbin /sbin; do
        case ":$PATH:" in *":$_d:"*) ;; *) PATH="$PATH:$_d" ;; esac
    done
    export PATH
    unset _d
fi

# find_cargo: make sure `cargo` is on PATH. Looks at PATH, then $CARGO_HOME/bin,
# ~/.cargo/bin and /usr/local/cargo/bin, then (under sudo, whose secure_path drops the
# user's PATH) the invoking user's ~/.cargo/bin with that user's rustup home.
# Returns 1 when there is no cargo.
find_cargo() {
    command -v cargo >/dev/null 2>&1 && return 0
    local d home
    for d in "${CARGO_HOME:-$HOME/.cargo}/bin" "$HOME/.cargo/bin" /usr/local/cargo/bin; do
        if [ -x "$d/cargo" ]; then
            export PATH="$d:$PATH"
            return 0
        fi
    done
    if [ -n "${SUDO_USER:-}" ] && home=$(getent passwd "$SUDO_USER" | cut -d: -f6) &&
        [ -n "$home" ] && [ -x "$home/.cargo/bin/cargo" ]; then
        export PATH="$home/.cargo/bin:$PATH" CARGO_HOME="${CARGO_HOME:-$home/.cargo}"
        if [ -z "${RUSTUP_HOME:-}" ] && [ -d "$home/.rustup" ]; then export RUSTUP_HOME="$home/.rustup"; fi
        return 0
    fi
    return 1
}

NO_CARGO_HINT="cargo not found: install a Rust toolchain (https://rustup.rs: curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh), then run this again"

# as_root ARGS...: when not root, run this script ($SELF) again as root with sudo and the
# same arguments: PATH (where cargo is), the Rust toolchain's homes, and the variables the
# scripts read (CI, TCPPING_*, LOADGEN_*, BENCH_*, DOCKER_TEST_*, CARGO_*, RUSTUP_*) go
# along; sudo's own policy resets the rest. Returns at once when already root; returns 1
# when not root and sudo is not installed. Never returns after running sudo.
as_root() {
    [ "$(id -u)" -eq 0 ] && return 0
    command -v sudo >/dev/null 2>&1 || return 1
    local v keep=("PATH=$PATH")
    for v in $(compgen -e); do
        case $v in
        CI | TCPPING_* | LOADGEN_* | BENCH_* | DOCKER_TEST_* | CARGO_* | RUSTUP_* | RUSTFLAGS | NO_COLOR)
            keep+=("$v=${!v}")
            ;;
        esac
    done
    if [ -z "${RUSTUP_HOME:-}" ] && [ -d "$HOME/.rustup" ]; then keep+=("RUSTUP_HOME=$HOME/.rustup"); fi
    if [ -z "${CARGO_HOME:-}" ] && [ -d "$HOME/.cargo" ]; then keep+=("CARGO_HOME=$HOME/.cargo"); fi
    printf '%s: needs root (network namespaces, iptables, raw sockets, apt-get): running it again with sudo\n' \
        "$SCRIPT" >&2
    exec sudo -- env "${keep[@]}" "$SELF" "$@"
}

# give_back PATH...: after a run through sudo, what this run created as root under each
# PATH (build outputs, benchmark results) goes back to the user who ran sudo, so that their
# next cargo build or git checkout can write it. Only when the repository is that user's.
give_back() {
    [ "$(id -u)" -eq 0 ] || return 0
    [ -n "${SUDO_UID:-}" ] && [ "$SUDO_UID" != 0 ] || return 0
    [ "$(stat -c %u "$REPO")" = "$SUDO_UID" ] || return 0
    local p
    for p in "$@"; do
        [ -e "$p" ] || continue
        find "$p" -xdev -user 0 -exec chown -h "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" {} + 2>/dev/null || true
    done
}

# apt_install PKG...: install packages with apt-get (as root), saying so in one line; apt's
# own output goes to a log that is printed only if it fails. Returns apt-get's failure.
apt_install() {
    local logf rc=0
    command -v apt-get >/dev/null 2>&1 || {
        printf '%s: missing %s, and there is no apt-get to install them\n' "$SCRIPT" "$*" >&2
        return 1
    }
    printf '%s: installing %s (apt-get)\n' "$SCRIPT" "$*" >&2
    logf=$(mktemp /tmp/tcpping-apt.XXXXXX)
    export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a NEEDRESTART_SUSPEND=1
    {
        apt-get -o DPkg::Lock::Timeout=300 update &&
            apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "$@"
    } </dev/null >"$logf" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        printf '%s: apt-get failed (exit %s); its last lines:\n' "$SCRIPT" "$rc" >&2
        tail -n 25 "$logf" >&2
    fi
    rm -f "$logf"
    return "$rc"
}

# missing_pkgs CMD:PKG...: print the packages (deduplicated) whose command is neither on
# PATH nor in an sbin directory (a user's PATH has none)
missing_pkgs() {
    local pair c
    for pair in "$@"; do
        c=${pair%%:*}
        command -v "$c" >/dev/null 2>&1 || [ -x "/usr/sbin/$c" ] || [ -x "/sbin/$c" ] ||
            printf '%s\n' "${pair#*:}"
    done | sort -u
}

# with_lab NAME: a lab of its own (scripts/lab.sh up) for a script that runs things in it,
# removed at exit with everything the script started: sets WORK (a scratch folder under
# /tmp, removed too), LAB_ID, and PIDS (add the PIDs of background processes to stop).
# Needs BIN (the binary) and `die`.
with_lab() {
    WORK=$(mktemp -d "/tmp/tpd-$1-XXXXXX")
    LAB_ID="" PIDS=()
    trap _lab_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    TCPPING_BIN="$BIN" "$REPO/scripts/lab.sh" up >"$WORK/lab.txt" 2>&1 ||
        { cat "$WORK/lab.txt" >&2; die "lab up failed"; }
    LAB_ID=$(sed -n 's/^lab \(tpd-[a-z0-9]*\) is up.*/\1/p' "$WORK/lab.txt")
    [ -n "$LAB_ID" ] || { cat "$WORK/lab.txt" >&2; die "no lab id in the output of lab.sh up"; }
}

_lab_cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    [ -z "$LAB_ID" ] || TCPPING_BIN="$BIN" "$REPO/scripts/lab.sh" down "$LAB_ID" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
