#!/usr/bin/env bash
# Every test of tcpping-diag, as CI runs it: formatting, lints, unit and integration tests
# (root-only ones included), the network-namespace lab scenarios, the docker-based test, the
# Debian package test, and a smoke run of the benchmarks. Installs what it needs on a fresh Debian machine with
# apt-get. Under CI=true nothing that cannot run is skipped: it fails.
#
# Run it as root, or as a user with sudo rights: it then builds everything as that user
# first and runs itself again as root through sudo (files it makes as root in target/ and
# bench/ are handed back to that user at the end). Without root and without a working sudo,
# only the unprivileged parts run and the root-only ones say SKIPPED (CI unset) or fail (CI set).
set -euo pipefail
SCRIPT=test.sh
SELF="$(readlink -f "${BASH_SOURCE[0]}")"
REPO="$(cd "$(dirname "$SELF")/.." && pwd)"
cd "$REPO"
# shellcheck source=scripts/common.sh
. scripts/common.sh

log() { printf '\n=== %s\n' "$*"; }
die() {
  printf 'test.sh: %s\n' "$*" >&2
  exit 2
}

if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
  # the password now, not after minutes of compiling
  if sudo -v; then
    find_cargo || die "$NO_CARGO_HINT"
    log "building as $(id -un) before going root (cargo build --release; cargo test --no-run)"
    cargo build --release --quiet --bins
    cargo test --no-run --quiet
    as_root "$@"
  fi
  echo "test.sh: sudo did not give root: running only what works without it"
fi

if [ "$(id -u)" -eq 0 ]; then
  trap 'give_back "$REPO/target" "$REPO/bench"' EXIT
fi

mapfile -t need_pkgs < <(missing_pkgs ip:iproute2 iptables:iptables jq:jq python3:python3 \
  setpriv:util-linux tcpdump:tcpdump ps:procps rsvg-convert:librsvg2-bin)
# (rsvg-convert: tests/report.rs renders its SVGs)
# (DejaVu Sans: the text of PNG pictures, which tests/report.rs checks is drawn)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_pkgs+=(fonts-dejavu-core)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt_install "${need_pkgs[@]}" || die "could not install ${need_pkgs[*]}"
  else
    echo "test.sh: missing ${need_pkgs[*]} (run as root to install them)"
  fi
fi
find_cargo || die "$NO_CARGO_HINT"

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
log "cargo build --release"
cargo build --release --quiet
if [ -d .git ] || [ -f .git ]; then
  log "a git status does not rebuild the crate (build.rs watches the commit, not the index)"
  touch "$(git rev-parse --git-path index)"
  fresh=$(cargo build --release --message-format=json 2>/dev/null |
    jq -r 'select(.reason=="compiler-artifact" and .target.name=="tcpping_diag") | .fresh')
  [ "$fresh" = true ] || die "touching .git/index rebuilt the crate (fresh=$fresh)"
fi
log "cargo test (unit, integration; root-only tests run as root)"
cargo test --quiet 2>&1

run_root_part() { # run_root_part NAME CMD...: root-only; skips only when not root and CI unset
  local name=$1; shift
  if [ "$(id -u)" -ne 0 ]; then
    if [ -n "${CI:-}" ]; then echo "$name needs root and CI is set: failing"; exit 1; fi
    echo "SKIPPED $name: needs root (CI unset, so skipping is allowed)"
    return 0
  fi
  log "$name"
  "$@"
}

lab_by_hand() { # lab.sh up ID, list, down ID: what a user does to try the tool by hand
  local id out
  id=ci$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
  TRACE_LAB=1 scripts/lab.sh up "$id" >"$REPO/target/lab-up.txt" 2>&1 ||
    { cat "$REPO/target/lab-up.txt"; die "lab.sh up $id failed"; }
  grep -q "^lab tpd-$id is up" "$REPO/target/lab-up.txt" || die "lab.sh up $id: no 'lab tpd-$id is up' line"
  if scripts/lab.sh up "$id" >/dev/null 2>&1; then die "lab.sh up $id twice was accepted"; fi
  out=$(scripts/lab.sh list)
  for ns in "tpd-$id-cli" "tpd-$id-rtr" "tpd-$id-srv" "tpd-$id-t-cli" "tpd-$id-t-srv"; do
    grep -q "netns $ns  *present" <<<"$out" || { echo "$out"; die "lab.sh list does not show $ns"; }
  done
  grep -q "pid .*tcpping-diag serve" <<<"$out" || { echo "$out"; die "lab.sh list shows no server process"; }
  scripts/lab.sh down "$id"
  if scripts/lab.sh list | grep -q "tpd-$id"; then die "lab tpd-$id still listed after down"; fi
  if ip netns list | grep -q "tpd-$id"; then die "namespaces of tpd-$id left after down"; fi
  echo "lab.sh up $id / list / down: ok"
}
run_root_part "lab by hand (up ID, list, down)" lab_by_hand
run_root_part "lab scenarios (network namespaces)" scripts/lab.sh test
run_root_part "many targets scraped by Prometheus (scripts/metrics-test.sh)" scripts/metrics-test.sh
run_root_part "docker test (iptables rules between containers)" scripts/docker-test.sh
run_root_part "package test (the .deb in a Debian container: capability, man, completions, units, purge)" scripts/package-test.sh
run_root_part "benchmark smoke run (tiny counts; the full run is by hand: scripts/bench.sh)" scripts/bench.sh --smoke
