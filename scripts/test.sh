#!/usr/bin/env bash
# Every test of tcpping-diag, as CI runs it: formatting, lints, unit and integration tests
# (root-only ones included when run as root), the network-namespace lab scenarios, the
# docker-based test, and a smoke run of the benchmarks. Installs what it needs on a fresh
# Debian machine (as root). Under CI=true nothing that cannot run is skipped: it fails.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n=== %s\n' "$*"; }

need_pkgs=()
for pair in ip:iproute2 iptables:iptables jq:jq python3:python3 setpriv:util-linux tcpdump:tcpdump ps:procps; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need_pkgs+=("${pair#*:}")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    log "installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  else
    echo "missing ${need_pkgs[*]} (run as root to install them)"
  fi
fi

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
log "cargo build --release"
cargo build --release --quiet
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

run_root_part "lab scenarios (network namespaces)" scripts/lab.sh test
run_root_part "many targets scraped by Prometheus (scripts/metrics-test.sh)" scripts/metrics-test.sh
run_root_part "docker test (iptables rules between containers)" scripts/docker-test.sh
run_root_part "benchmark smoke run (tiny counts; the full run is by hand: scripts/bench.sh)" scripts/bench.sh --smoke
