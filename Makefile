# Kailash Gateway — every developer task is a target here.
# `make run` and `make test` work on a fresh machine: they install what is missing.

SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
export PATH := $(BIN):$(PATH)

BUF_VERSION := v1.75.0
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
GRPCURL_VERSION := v1.9.4
STATICCHECK_VERSION := v0.8.2
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Every Go module in the repository: the server, the generated code, the Go
# client and the load generator (docs/clients.md explains the split). lint and
# test-go run in each.
GO_MODULES := . gen/go clients/go tools/loadgen

.PHONY: run build generate check-generate lint test test-go test-python test-ts release-check bench bench-deps bench-external bench-cluster tools deps cc clean

## cc: a C compiler for cgo (the SQLite store is C), installed with apt when missing
cc:
	@command -v gcc >/dev/null || command -v cc >/dev/null || { echo "installing gcc (the SQLite store is C, built with cgo)"; \
		if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q gcc libc6-dev; \
		else sudo apt-get update -q && sudo apt-get install -y -q gcc libc6-dev; fi; }

## run: start the gateway on its embedded default (SQLite + key file in ./kgw-data, gRPC on 127.0.0.1:50051);
##      ARGS="…" passes flags to kgw serve, e.g. make run ARGS="--grpc-addr 127.0.0.1:50052 --log-level debug"
run: build
	$(BIN)/kgw serve $(ARGS)

## build: compile bin/kgw (version from git describe; override with VERSION=…)
build: cc
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN)/kgw ./cmd/kgw

$(BIN)/buf:
	GOBIN=$(BIN) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(BIN)/protoc-gen-go:
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(BIN)/protoc-gen-go-grpc:
	GOBIN=$(BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
$(BIN)/grpcurl:
	GOBIN=$(BIN) $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)
$(BIN)/staticcheck:
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# The tools by their relative names too (make bin/grpcurl).
TOOLS := buf protoc-gen-go protoc-gen-go-grpc grpcurl staticcheck
$(addprefix bin/,$(TOOLS)): bin/%: $(BIN)/%

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.codegen: tools/requirements.txt | $(PY)
	$(PY) -m pip install -q -r tools/requirements.txt
	touch $@

tools/node_modules/.bin/protoc-gen-es: tools/package.json tools/package-lock.json
	cd tools && npm ci --no-audit --no-fund
	touch $@

## tools: install the pinned code generators and test tools into bin/, .venv and tools/node_modules
tools: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc $(BIN)/grpcurl $(VENV)/.codegen tools/node_modules/.bin/protoc-gen-es

## generate: regenerate gen/ from proto/ (stale files removed first; gen/go/go.mod and go.sum are kept:
##      gen/go is its own Go module, see docs/clients.md)
generate: tools
	rm -rf gen/go/kgw gen/python gen/ts
	$(BIN)/buf generate

## check-generate: fail if gen/ is not what `make generate` produces
check-generate: generate
	@git add -N gen >/dev/null 2>&1; \
	if ! git diff --quiet --exit-code -- gen; then \
		git --no-pager diff --stat -- gen; echo "gen/ is stale: run make generate and commit"; exit 1; fi

## lint: buf lint, buf breaking (FILE rules, against main), go vet and staticcheck in every Go module, the import layering of DESIGN §2, function length (docs/development.md), gofmt
lint: $(BIN)/buf $(BIN)/staticcheck
	$(BIN)/buf lint
	$(BIN)/buf breaking --against '.git#branch=main' 
	set -e; for m in $(GO_MODULES); do echo "go vet, staticcheck: $$m"; \
		(cd $$m && $(GO) vet ./... && $(BIN)/staticcheck ./...); done
	$(GO) test -count=1 ./internal/layering/ ./internal/funclen/
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## deps: install the services the tests run for real (redis-server; PostgreSQL binaries must be present)
deps: cc
	@command -v redis-server >/dev/null || { echo "installing redis-server"; \
		if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q redis-server; \
		else sudo apt-get update -q && sudo apt-get install -y -q redis-server; fi; }
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		{ echo "PostgreSQL server binaries (initdb, postgres) are missing: apt-get install postgresql"; exit 1; }

PYCLIENT := $(CURDIR)/clients/python
PYCLIENT_VENV := $(PYCLIENT)/.venv

## test: install what is missing, then run every test (Go incl. examples, Python client, TypeScript client)
test: deps tools build test-go test-python test-ts

## test-go: Go unit and integration tests, the store conformance suites and the examples, with -race, in every Go module
test-go:
	set -e; for m in $(GO_MODULES); do (cd $$m && $(GO) test -race -count=1 -timeout 30m ./...); done

$(PYCLIENT_VENV)/.installed: clients/python/pyproject.toml
	python3 -m venv $(PYCLIENT_VENV)
	$(PYCLIENT_VENV)/bin/pip install -q --upgrade pip
	$(PYCLIENT_VENV)/bin/pip install -q '$(PYCLIENT)[dev]'
	touch $@

## test-python: the Python client (mypy --strict, unit tests, end to end against bin/kgw)
test-python: build $(PYCLIENT_VENV)/.installed
	$(PYCLIENT_VENV)/bin/pip install -q --no-deps --force-reinstall '$(PYCLIENT)'
	cd $(PYCLIENT) && .venv/bin/mypy
	cd $(PYCLIENT) && KGW_BINARY=$(BIN)/kgw .venv/bin/python -m pytest -q

clients/ts/node_modules/.installed: clients/ts/package.json clients/ts/package-lock.json
	cd clients/ts && npm ci --no-audit --no-fund
	touch $@

## test-ts: the TypeScript client (tsc, unit tests, end to end against bin/kgw)
test-ts: build clients/ts/node_modules/.installed
	cd clients/ts && npm test
	cd clients/ts && KGW_BINARY=$(BIN)/kgw npm run test:e2e

## release-check: build the Python wheel and sdist, the npm tarball and the Go module; install each in a
##      fresh place and run its README quick start twice against a real gateway and PostgreSQL
release-check: build $(PYCLIENT_VENV)/.installed
	KGW_TEST_KGW_BINARY=$(BIN)/kgw $(GO) test -tags releasecheck -count=1 -v -timeout 30m ./internal/releasecheck/

## bench: run the benchmarks (in process, then external), then print each scenario next to its baseline from the same run, as a ratio
# About 7 minutes on a shared 2-core machine: the in-process benchmarks, then the
# external benchmark (tools/loadgen, about 2½ minutes; see docs/performance.md).
# BenchmarkFetchval runs on its own, six times, so that its two sides take
# turns (-count would repeat each side in place); the report gives the
# median of the paired ratios (see internal/benchreport).
bench: deps bench-deps
	set -o pipefail; { $(GO) test -run '^$$' -bench . -skip Fetchval -benchtime 2s -timeout 30m ./... && \
	  for i in 1 2 3 4 5 6; do $(GO) test -run '^$$' -bench Fetchval -benchtime 2s ./server/ || exit 1; done && \
	  $(LOADGEN); } | \
	  $(GO) run ./internal/benchreport
	$(MAKE) --no-print-directory bench-cluster

# The external benchmark measures kgw built here into .bench/ (not bin/,
# which may be shared), the Python client installed into its venv and the
# TypeScript client built. BENCH_BEFORE=<git revision> also builds that
# revision's kgw and measures it in turns with this one (the report prints
# before → after). LOADGEN_FLAGS adds loadgen flags (e.g. -window 10s,
# -cpuprofile /tmp/kgw.pprof; see `cd tools/loadgen && go run . -h`).
BENCH_DIR := $(CURDIR)/.bench
BENCH_BEFORE ?=
LOADGEN_FLAGS ?=
LOADGEN = cd tools/loadgen && $(GO) run . -kgw $(BENCH_DIR)/kgw \
	-python $(PYCLIENT_VENV)/bin/python -node node -ts-client $(CURDIR)/clients/ts \
	$(if $(BENCH_BEFORE),-kgw-before $(BENCH_DIR)/kgw-before) $(LOADGEN_FLAGS)

bench-deps: cc $(PYCLIENT_VENV)/.installed clients/ts/node_modules/.installed
	$(GO) build -o $(BENCH_DIR)/kgw ./cmd/kgw
	@if [ -n "$(BENCH_BEFORE)" ]; then rm -rf $(BENCH_DIR)/before-src && mkdir -p $(BENCH_DIR)/before-src && \
	  git archive $(BENCH_BEFORE) | tar -x -C $(BENCH_DIR)/before-src && \
	  (cd $(BENCH_DIR)/before-src && $(GO) build -o $(BENCH_DIR)/kgw-before ./cmd/kgw); fi
	$(PYCLIENT_VENV)/bin/pip install -q --no-deps --force-reinstall '$(PYCLIENT)'
	cd clients/ts && npm run build >/dev/null

## bench-cluster: only the cluster benchmark (about 1 minute) and its report: two `kgw serve` replicas on one
##      PostgreSQL, durable no-op throughput with 1 and 2 replicas, cross-replica watch latency (docs/cluster.md);
##      CLUSTER_FLAGS adds loadgen flags (e.g. -cluster-window 5s; see `cd tools/loadgen && go run . -h`)
CLUSTER_FLAGS ?=
bench-cluster: deps
	$(GO) build -o $(BENCH_DIR)/kgw ./cmd/kgw
	set -o pipefail; { cd tools/loadgen && $(GO) run . -cluster -kgw $(BENCH_DIR)/kgw $(CLUSTER_FLAGS); } | \
	  $(GO) run ./internal/benchreport -cluster

## bench-external: only the external benchmark (about 2 minutes) and its report
bench-external: deps bench-deps
	set -o pipefail; { $(LOADGEN); } | $(GO) run ./internal/benchreport -external

clean:
	rm -rf $(BIN) $(BENCH_DIR) $(VENV) tools/node_modules $(PYCLIENT_VENV) clients/ts/node_modules clients/ts/dist clients/ts/gen
