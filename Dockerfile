# syntax=docker/dockerfile:1

# identityd container image.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t identityd .
#   docker run --rm -p 127.0.0.1:4455:4455 -e ADMIN_API_KEYS=change-me \
#     -e SECRETS_DEFAULT=$(openssl rand -hex 32) -v identityd-data:/data identityd
#
# Both are required: the server listens on 0.0.0.0 in the container, and
# there it refuses to start without its admin keys and the secret that keys
# one-time codes (secrets.default).
# Without DSN the service uses SQLite in the /data volume; set DSN to a
# postgres:// URL for PostgreSQL (see docker-compose.yml).

ARG GO_VERSION=1.26

# ---------------------------------------------------------------------------
# Build stage: a static, CGO-free binary. It runs on the build host's platform
# and cross-compiles for the target one, so multi-arch builds need no emulation.
# ---------------------------------------------------------------------------
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build

WORKDIR /src

ENV CGO_ENABLED=0

# Module download is its own layer: it is only redone when go.mod/go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .

ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/identityd . \
 && mkdir -p /out/data

# ---------------------------------------------------------------------------
# Final stage: distroless, no shell, no package manager, runs as nonroot (65532).
# ---------------------------------------------------------------------------
FROM gcr.io/distroless/static-debian12:nonroot

ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="identityd" \
      org.opencontainers.image.description="Identity service with a GraphQL API" \
      org.opencontainers.image.source="https://github.com/identityd/identityd" \
      org.opencontainers.image.url="https://github.com/identityd/identityd" \
      org.opencontainers.image.vendor="identityd" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"

COPY --from=build /out/identityd /identityd
# Writable home for the default SQLite database, owned by the nonroot user so a
# fresh named volume mounted here inherits that ownership.
COPY --from=build --chown=65532:65532 /out/data /data

ENV SERVE_ADDRESS=0.0.0.0:4455 \
    DSN=sqlite:///data/identity.db

VOLUME ["/data"]
WORKDIR /data
USER 65532:65532
EXPOSE 4455

HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/identityd", "healthcheck"]

ENTRYPOINT ["/identityd"]
CMD ["serve"]
