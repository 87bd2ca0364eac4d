# The manager image: a static binary, built as `make build` builds it, on
# distroless (no shell, no package manager) as the unprivileged user 65532.
# Build with `make docker-build IMG=...`.

# golang's minor version follows go.mod's go directive (test/deploy checks).
FROM --platform=$BUILDPLATFORM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
WORKDIR /workspace
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
# Same command as `make build`; the target platform comes from buildx.
RUN GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} CGO_ENABLED=0 go build -trimpath -o manager ./cmd

FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/manager /manager
# Numeric, so the kubelet can check runAsNonRoot without reading /etc/passwd.
USER 65532:65532
ENTRYPOINT ["/manager"]
