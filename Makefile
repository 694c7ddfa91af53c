# finvirt — build, test and demo. Everything runs as root on Debian 12 (loop devices,
# network namespaces, nftables); scripts/setup.sh installs what is missing.
export PATH := /usr/local/go/bin:$(PATH)
GO      ?= go
BIN     := bin
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# Static binaries: they run on any host and inside microVM appliances (no libc there).
STATIC  := CGO_ENABLED=0
CMDS    := $(notdir $(wildcard cmd/*))

.PHONY: all build setup test test-short bench fuzz soak demo vet fmt clean

all: build

setup:
	./scripts/setup.sh

build:
	@mkdir -p $(BIN)
	$(STATIC) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

# The default test run: installs what is missing, then every package's tests (real QEMU,
# btrfs, netlink, nftables; no mocks of our own components). Under ~25 minutes.
test: setup
	$(MAKE) vet
	$(GO) test -count=1 -timeout 30m ./...

test-short:
	$(GO) test -count=1 -short ./...

# Benchmarks behind their own target; figures go to docs/PERFORMANCE.md.
bench: setup
	$(GO) test -run '^$$' -bench . -benchtime 2s ./internal/... ./workloads/...

# Short fuzzing of every fuzz target (seeds live in testdata/fuzz).
fuzz:
	./scripts/fuzz.sh 20s

# Long soak tests (many VMs, long load runs).
soak: setup
	FINVIRT_SOAK=1 $(GO) test -count=1 -timeout 90m ./...

demo: setup build
	./scripts/demo.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN)
