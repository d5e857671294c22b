# syntax=docker/dockerfile:1
# labgate container image: the production build (no `labgate dev`, no GitLab stand-in) on a
# distroless base: no shell, no package manager, numeric non-root user 65532:65532.
# docs/container.md describes building, running and the Kubernetes manifests.
#   docker build -t registry.example.com/labgate:0.2.0 \
#     --build-arg LABGATE_BUILD_COMMIT="$(git rev-parse HEAD)" .
#   docker run --read-only -p 4180:4180 \
#     -v "$PWD/labgate.toml:/etc/labgate/labgate.toml:ro" registry.example.com/labgate:0.2.0

FROM rust:1.95-bookworm AS build
WORKDIR /src
# The commit labgate_build_info reports (build.rs; the context has no .git).
ARG LABGATE_BUILD_COMMIT=unknown
# The manifest and build script, then what the binary is built from. The binary embeds
# files of config/, deploy/, docs/ and README.md (include_str!: the demo config and the
# published example secrets it refuses, src/config/published.rs).
COPY Cargo.toml Cargo.lock build.rs ./
COPY src src
COPY config config
COPY deploy deploy
COPY docs docs
COPY README.md README.md
# The registry and the target directory are BuildKit caches, so a rebuild after a source
# change recompiles labgate alone; the binary is copied out of the cache mount.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --no-default-features --bin labgate \
    && cp target/release/labgate /usr/local/bin/labgate

# glibc and libgcc only (what a Rust binary links); ships no shell.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/labgate /usr/local/bin/labgate
COPY config/labgate.example.toml /etc/labgate/labgate.example.toml
# Every setting can also come from LABGATE__SECTION__KEY environment variables.
ENV LABGATE_CONFIG=/etc/labgate/labgate.toml
# Numeric, so that runAsNonRoot can be verified by the kubelet (a name cannot).
USER 65532:65532
EXPOSE 4180
# Liveness (/ping) without curl; `labgate healthcheck --ready` asks /ready instead.
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/labgate", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/labgate"]
CMD ["run"]
