#!/usr/bin/env bash
# Build the Debian package: target/debian/tcpping-diag_VERSION-1_ARCH.deb
#
#   1. cargo build --release
#   2. the built binary writes its man pages and shell completions (generated from its own
#      command-line definitions) into target/assets/
#   3. cargo deb --no-build packages them with the binary, the README, the systemd units and
#      the configuration files (Cargo.toml [package.metadata.deb], debian/)
#
# Installs cargo-deb from crates.io (cargo install cargo-deb --locked) when it is missing.
# Prints the path of the .deb on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[build-deb] %s\n' "$*" >&2; }

if ! cargo deb --version >/dev/null 2>&1; then
    log "installing cargo-deb (cargo install cargo-deb --locked)"
    cargo install cargo-deb --locked --quiet
fi

log "cargo build --release"
cargo build --release --quiet
BIN=target/release/tcpping-diag
rm -rf target/assets
"$BIN" generate man target/assets/man >/dev/null
"$BIN" generate completions target/assets/completions >/dev/null
log "$("$BIN" --version): $(ls target/assets/man | tr '\n' ' ')"

log "cargo deb --no-build"
# --strip: the release profile keeps debug info for profiling (bench), the package does not.
deb=$(cargo deb --no-build --strip | tail -n 1)
[[ -f "$deb" ]] || { log "cargo deb did not report a .deb (got: $deb)"; exit 1; }
echo "$deb"
