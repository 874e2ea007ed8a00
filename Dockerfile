# kube-token-refresher: the `deno compile` binary on a distroless base, run as non-root.
#
# The release workflow builds it for linux/amd64 and linux/arm64 with BuildKit:
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=<deno.json version> --build-arg SOURCE=<repository URL> .
#
# The build stage runs on the build machine's own platform and cross-compiles for the target
# platform (`deno compile --target`), so the arm64 image needs no emulation.

# The real-pod test (tests/node_test.ts) cannot build this file (no registry, and `deno compile`
# downloads its runtime): tests/node/image.sh assembles a close copy instead, which differs only in
# running the Deno binary of .deno-version on the sources (`deno run --cached-only --frozen
# --permission-set=incluster`, with a pre-filled DENO_DIR) instead of the compiled binary, on the
# same kind of root filesystem (Debian 12's libc, libgcc, CA bundle and tzdata; uid 65532; no shell).

# The same Deno as everywhere else: keep equal to .deno-version (tests/release_test.ts checks).
ARG DENO_VERSION=2.9.6

FROM --platform=$BUILDPLATFORM denoland/deno:debian-${DENO_VERSION} AS build
ARG TARGETARCH
WORKDIR /src
# Dependencies first, from the lock file only, so this layer survives code changes.
COPY deno.json deno.lock ./
RUN deno install --frozen
COPY main.ts ./
COPY src/ ./src/
# The permissions come from deno.json's least-privilege "incluster" set, the same as
# `deno task compile:incluster` (the release binaries are the "kubeconfig" build instead).
RUN case "$TARGETARCH" in \
      amd64) target=x86_64-unknown-linux-gnu ;; \
      arm64) target=aarch64-unknown-linux-gnu ;; \
      *) echo "unsupported TARGETARCH: '$TARGETARCH' (build with BuildKit for amd64 or arm64)" >&2; exit 1 ;; \
    esac \
 && deno compile --permission-set=incluster --exclude-unused-npm --no-code-cache --v8-flags=--lite-mode,--expose-gc --target "$target" --output /out/kube-token-refresher main.ts

# glibc and libgcc for the Deno runtime, CA certificates, no shell, no package manager.
# Pinned by exact tag; its digest is not pinned here because it could not be verified when this
# was written: let a dependency updater (Renovate, Dependabot) add and refresh `@sha256:...`.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION
ARG SOURCE
LABEL org.opencontainers.image.title="kube-token-refresher" \
      org.opencontainers.image.description="Keeps an OAuth 2.0 client-credentials access token fresh in a Kubernetes Secret" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/kube-token-refresher /kube-token-refresher
# Numeric, so the kubelet can verify `runAsNonRoot: true` (65532 is distroless's nonroot user).
USER 65532:65532
ENTRYPOINT ["/kube-token-refresher"]
