# Gatehouse as a container: a static binary (no cgo) on an empty base image, running as
# a non-root user. With PostgreSQL it writes nothing to disk, so the root filesystem can
# be read-only; with the embedded SQLite default, mount a writable volume at /data.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd ./cmd
COPY internal ./internal
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/gatehouse ./cmd/gatehouse
# The data folder, owned by the user Gatehouse runs as: a named volume mounted there
# (compose.yaml's) starts as a copy of it, and so is writable.
RUN mkdir -p /out/data

FROM scratch
COPY --from=build /out/gatehouse /gatehouse
COPY --from=build --chown=65532:65532 /out/data /data
WORKDIR /data
USER 65532:65532
# Metrics on their own port, reachable from other containers (Prometheus) but not
# through the proxy that publishes port 9000.
ENV GATEHOUSE_SERVER_METRICS_ADDRESS=:9001
EXPOSE 9000 9001
HEALTHCHECK --interval=10s --timeout=3s CMD ["/gatehouse", "healthcheck"]
ENTRYPOINT ["/gatehouse"]
CMD ["serve"]
