# sendworker image: the daemon (entrypoint), the sendctl CLI and the wasim simulator.
#
#   docker build -t sendworker:local .
#
# The final image is distroless: no shell, no package manager, so there is no
# HEALTHCHECK here. Health is probed by the orchestrator over HTTP on the admin
# port: GET /healthz (liveness) and GET /readyz (readiness); see deploy/README.md.
# go test ./deploy/ runs this file's build step on the host and checks that the
# binaries are static.

FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first, so source edits do not invalidate the module download layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/ ./cmd/sendworker ./cmd/sendctl ./cmd/wasim

# distroless/static ships CA certificates (TLS to the provider, rediss://) and
# the IANA time zone database (sendworker also embeds time/tzdata, so a
# scratch image would work too). It runs as "nonroot" (65532:65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sendworker /out/sendctl /out/wasim /usr/local/bin/
USER 65532:65532
# Admin API, /healthz, /readyz and /metrics (SENDWORKER_ADMIN_ADDR, default :8080).
EXPOSE 8080
# With no SENDWORKER_* variable at all, sendworker starts its in-memory dev
# demo. A container must never do that by accident: this makes a container
# without configuration fail at start, naming every missing setting.
ENV SENDWORKER_SEND_MODE=live
ENTRYPOINT ["/usr/local/bin/sendworker"]
