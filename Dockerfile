# syntax=docker/dockerfile:1
# The operator image: `redblack controller`, as charts/redblack runs it.
#
#   docker build -t redblack:dev .
#
# Not built by this repository's CI (its machines have no container engine);
# tests/image.rs checks that this file and the chart agree (user, entrypoint,
# the verb and its flags). docs/operations.md, "The operator image".

# --- build: the operator alone (no sandbox or demo verbs) -----------------
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# Caches for the registry and the target directory; the binary is copied out
# of the cached target in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --no-default-features --bin redblack \
 && install -D -m 0755 target/release/redblack /out/redblack

# --- run: glibc + CA certificates, no shell, no package manager -----------
# distroless' `nonroot` user is 65532, the chart's runAsUser/runAsGroup.
# Nothing is written at run time (logs go to stdout), so the chart's
# readOnlyRootFilesystem holds.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/redblack /usr/local/bin/redblack
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/redblack"]
CMD ["controller"]
