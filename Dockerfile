# verity's container image. Build from the repository root:
#   docker build -t registry.example.com/verity/verity:0.1.0 .
# (or `podman build`/`buildah bud`; no Docker engine runs on the development machines.)

# Build stage: the Rust toolchain image, pinned at or above the crate's rust-version (1.89).
# Bookworm, so the binary's glibc matches the distroless runtime below (Debian 12).
ARG RUST_VERSION=1.95
FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# Dependencies first, so source-only changes reuse the cached dependency layer.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src
COPY src ./src
# Touch the sources so cargo rebuilds verity itself rather than the stub.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked \
 && cp target/release/verity /verity

# Runtime: distroless "cc" has exactly what the binary links (glibc, libgcc_s, libm) plus the
# CA bundle (/etc/ssl/certs) for registries, Rekor and TUF; no shell, no package manager.
# The :nonroot tag runs as uid/gid 65532, matching the chart's securityContext.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /verity /usr/local/bin/verity
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["/usr/local/bin/verity"]
CMD ["serve"]
