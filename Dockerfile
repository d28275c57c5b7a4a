# tcpping-diag container image.
#
# Two ways to get the runtime image (both give the same layout: the binary at
# /usr/local/bin/tcpping-diag as ENTRYPOINT, iproute2 + iptables for network
# experiments, default command `serve`):
#
#   1. From source (default, last stage `runtime`):
#        docker build -t tcpping-diag .
#      Needs a Rust toolchain image (RUST_IMAGE) and a Debian image (BASE_IMAGE)
#      from a registry; both are build args so mirrors/pinned digests can be used.
#
#   2. From a binary already built on the host (target `runtime-prebuilt`), for
#      hosts without access to a Rust image:
#        cargo build --release --locked
#        docker build --target runtime-prebuilt -t tcpping-diag .
#      The binary is dynamically linked against glibc: build it on a system
#      whose glibc is not newer than BASE_IMAGE's (Debian 12 / bookworm: 2.36).
#
# Stage order matters: `runtime-prebuilt` comes BEFORE the `build` stage so
# that the legacy (non-BuildKit) builder, which runs every stage up to the
# target, never needs the Rust image for `--target runtime-prebuilt`.
# No `# syntax=` line on purpose: BuildKit would pull the frontend image.

ARG RUST_IMAGE=rust:1-bookworm
ARG BASE_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------
# Common runtime layer: Debian + the tools the docker test (and users) need
# to play with routes and filters inside the container.
FROM ${BASE_IMAGE} AS runtime-base
RUN set -eux; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        iproute2 iptables; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/*
# Port of `tcpping-diag serve` (default --listen 0.0.0.0:12001).
EXPOSE 12001/tcp
ENTRYPOINT ["/usr/local/bin/tcpping-diag"]
CMD ["serve"]

# ---------------------------------------------------------------------------
# Runtime image from a binary built on the host (target/release/tcpping-diag;
# .dockerignore keeps exactly that file of target/ in the build context).
FROM runtime-base AS runtime-prebuilt
COPY target/release/tcpping-diag /usr/local/bin/tcpping-diag
RUN ["/usr/local/bin/tcpping-diag", "--help"]

# ---------------------------------------------------------------------------
# Build from source.
FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
# A host-built binary may be in the context (see .dockerignore): never use it.
RUN rm -rf target && cargo build --release --locked \
    && install -D -m 0755 target/release/tcpping-diag /out/tcpping-diag

# ---------------------------------------------------------------------------
# Default: runtime image built from source (keep this stage last).
FROM runtime-base AS runtime
COPY --from=build /out/tcpping-diag /usr/local/bin/tcpping-diag
RUN ["/usr/local/bin/tcpping-diag", "--help"]
