# FunMagic container image: funmagic-server (API, worker, migrate), the funmagic CLI and the
# funmagic-admin console, on Debian bookworm-slim.
#
#   docker build -t ghcr.io/funmagic/funmagic:0.1.0 \
#     --build-arg VERSION=0.1.0 \
#     --build-arg SOURCE=https://github.com/funmagic/funmagic .
#
# One image, three roles (the entrypoint is funmagic-server):
#   docker run … ghcr.io/funmagic/funmagic                  # serve (the default CMD)
#   docker run … ghcr.io/funmagic/funmagic migrate          # apply migrations and exit
#   docker run … ghcr.io/funmagic/funmagic worker --concurrency 8
#   docker run -it --entrypoint funmagic-admin ghcr.io/funmagic/funmagic --api-url …
#
# Configuration is by environment variables only (README "Configuration"); nothing is baked
# in but the listen address, the data directory and JSON logs. With no DATABASE_URL the
# server runs the embedded default (SQLite and files in /var/lib/funmagic): mount a volume
# there (-v funmagic-data:/var/lib/funmagic) or the data goes with the container.
#
# Dependencies are compiled in their own layer with cargo-chef: the layer is rebuilt only when
# Cargo.toml/Cargo.lock change, not on every source change.

# ---------------------------------------------------------------------------------------------
# chef: the Rust toolchain pinned by rust-toolchain.toml, plus cargo-chef.
# ---------------------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS chef
RUN cargo install cargo-chef --locked
WORKDIR /app
# Install the exact toolchain (and components) rust-toolchain.toml names once, here, so the
# planner and builder stages don't each download it on their first cargo call.
COPY rust-toolchain.toml ./
RUN rustup toolchain install && rustc --version && cargo --version

# ---------------------------------------------------------------------------------------------
# planner: reduce the workspace to a recipe (manifests, lock file, target layout).
# ---------------------------------------------------------------------------------------------
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# ---------------------------------------------------------------------------------------------
# builder: dependencies from the recipe (cached layer), then the workspace's binaries.
# ---------------------------------------------------------------------------------------------
FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
# Builds every dependency of the workspace's default members in release mode. Same package
# selection as the `cargo build` below, so feature resolution matches and nothing is rebuilt.
RUN cargo chef cook --release --recipe-path recipe.json
COPY . .
# TLS is rustls everywhere (aws-lc-rs, compiled with the image's C toolchain) and SQLite is
# bundled: the binaries need nothing at run time but glibc and the CA certificates.
RUN cargo build --release --locked --bins \
 && install -d /out \
 && install -m 0755 \
      target/release/funmagic-server \
      target/release/funmagic \
      target/release/funmagic-admin \
      /out/

# ---------------------------------------------------------------------------------------------
# runtime
# ---------------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# ca-certificates: rustls verifies S3, providers, OAuth, SMTP and webhook targets against the
# system roots where a client uses them. curl: the HEALTHCHECK below. Nothing else.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

# A fixed, non-root uid/gid (10001) so Kubernetes' runAsUser and volume ownership can name it.
# Its home is the data directory (the CLI keeps its profile under $HOME/.config).
RUN groupadd --system --gid 10001 funmagic \
 && useradd --system --uid 10001 --gid funmagic \
      --home-dir /var/lib/funmagic --no-create-home --shell /usr/sbin/nologin funmagic \
 && install -d -o funmagic -g funmagic -m 0700 /var/lib/funmagic

COPY --from=builder /out/ /usr/local/bin/

WORKDIR /var/lib/funmagic

# Listen on all interfaces inside the container (the default, 127.0.0.1, is unreachable
# from outside it); keep SQLite, files and generated keys in the data directory; log JSON.
ENV FUNMAGIC_LISTEN=0.0.0.0:8000 \
    FUNMAGIC_DATA_DIR=/var/lib/funmagic \
    FUNMAGIC_LOG_FORMAT=json

USER 10001:10001

# 8000: the API and web UI. 9100: the optional Prometheus listener, served only when
# FUNMAGIC_METRICS_LISTEN is set (e.g. 0.0.0.0:9100); never publish it to the internet.
EXPOSE 8000 9100

# Liveness of `serve`. /health answers as soon as the process serves HTTP; /health/all also
# checks the database, Redis and storage (use it for readiness, not for restarts).
# `worker` and `migrate` serve no HTTP: run them with --no-healthcheck (docker run) or
# `healthcheck: {disable: true}` (compose). Kubernetes ignores HEALTHCHECK (see deploy/k8s).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8000/health || exit 1

# Last, so a new VERSION only changes the final metadata layer.
ARG VERSION=dev
ARG SOURCE=https://github.com/funmagic/funmagic
LABEL org.opencontainers.image.title="FunMagic" \
      org.opencontainers.image.description="FunMagic multi-tenant AI-tools platform: API server, task worker, CLI and admin console" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.url="${SOURCE}" \
      org.opencontainers.image.documentation="${SOURCE}#readme" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"

# funmagic-server handles SIGTERM itself (10 s drain) and spawns no child processes, so it
# runs as PID 1 without an init.
ENTRYPOINT ["funmagic-server"]
CMD ["serve"]
