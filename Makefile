# bulkhead's build. A fresh machine needs only Go, gcc and make: everything else is built here.
GO      ?= go
BIN     := $(CURDIR)/bin
LAB_DIR ?= $(CURDIR)/.lab

.PHONY: all build lab image test test-product test-lab test-saturation bench demo lab-up coredns prometheus fuzz vet clean

all: build lab

## build: the product binary, bin/bulkhead, and bin/kubectl-bulkhead for `kubectl bulkhead`
# Stamp what `bulkhead version` reports: the release (a tag, else the commit), the commit, the date.
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT     ?= $(shell git rev-parse HEAD 2>/dev/null)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
CLI        := github.com/bulkhead-dev/bulkhead/internal/cli
BUILD_LDFLAGS := -X $(CLI).release=$(VERSION) -X $(CLI).commit=$(COMMIT) -X $(CLI).buildDate=$(BUILD_DATE)

build:
	$(GO) build -ldflags "$(BUILD_LDFLAGS)" -o $(BIN)/bulkhead ./cmd/bulkhead
	ln -sf bulkhead $(BIN)/kubectl-bulkhead

## image: the controller's container image (deploy/controller/Dockerfile); needs docker or podman
## with a running engine, which nothing else in the build does
IMAGE ?= ghcr.io/bulkhead-dev/bulkhead:dev
image:
	@builder=$$(command -v docker || command -v podman); \
	if [ -z "$$builder" ] || ! $$builder info >/dev/null 2>&1; then \
		echo "make image: no container builder with a running engine here; nothing built" >&2; exit 1; fi; \
	$$builder build -f deploy/controller/Dockerfile -t $(IMAGE) .

## lab: bin/bulkhead-lab (links kube-apiserver; the first build takes about 15 minutes)
# Stamp the Kubernetes version the lab links, so clients see a real v1.37.2 server.
K8S_VERSION := v1.37.2
LAB_LDFLAGS := -X k8s.io/component-base/version.gitVersion=$(K8S_VERSION) \
	-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 \
	-X k8s.io/component-base/version.gitTreeState=clean

lab:
	cd lab && $(GO) build -ldflags "$(LAB_LDFLAGS)" -o $(BIN)/bulkhead-lab ./cmd/bulkhead-lab

vet:
	$(GO) vet ./...
	cd lab && $(GO) vet ./...

## test: every test; packages that need the lab share one lab each, run one package at a time
test: build lab prometheus vet test-lab test-product

# The lab module's own tests start no lab: they run in parallel.
test-lab:
	cd lab && $(GO) test -count=1 ./...

# Packages whose tests start a lab (e2e, bench, and labtest's own) run one at a time: two labs on a
# small box slow each other into timeouts. The rest start none and run in parallel.
LAB_TEST_PKGS  = $(shell $(GO) list ./... | grep -E '/e2e(/|$$)|/bench$$|/internal/labtest$$')
UNIT_TEST_PKGS = $(shell $(GO) list ./... | grep -vE '/e2e(/|$$)|/bench$$|/internal/labtest$$')

test-product:
	$(GO) test -count=1 $(UNIT_TEST_PKGS)
	BULKHEAD_LAB_BIN=$(BIN)/bulkhead-lab BULKHEAD_PROMETHEUS_BIN=$(PROMETHEUS) $(GO) test -count=1 -p 1 -timeout 20m $(LAB_TEST_PKGS)

## test-saturation: acceptance scenarios whose precondition a 2-core box meets only part of the time
test-saturation: build lab
	BULKHEAD_LAB_BIN=$(BIN)/bulkhead-lab $(GO) test -count=1 -tags saturation -run 'TestBreakGlassStaysFast' -v ./breakglass/e2e

## bench: benchmarks and bench scripts; they print tables, they assert nothing
BENCH_PKGS = $(shell grep -rl --include='*_test.go' '^func Benchmark' . | grep -v '^./lab/' | xargs -r -n1 dirname | sort -u)
bench: build lab
	BULKHEAD_LAB_BIN=$(BIN)/bulkhead-lab $(GO) test -run '^$$' -bench . -benchmem $(BENCH_PKGS)
	$(BIN)/bulkhead-lab bench scaling --dir $(LAB_DIR)/bench

## fuzz: every fuzz target for FUZZTIME (not part of make test)
FUZZTIME ?= 60s
fuzz:
	@grep -rl --include='*_test.go' '^func Fuzz' . | grep -v '^./lab/' | while read -r f; do \
		for fn in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$f | cut -d' ' -f2); do \
			echo "fuzz $$fn in $$(dirname $$f) for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) ./$$(dirname $$f) || exit 1; \
		done; \
	done

## coredns: CoreDNS v1.15.0, for the DNS differential tests and the demo (about 5 minutes cold)
COREDNS := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/bulkhead/bin/coredns
coredns: $(COREDNS)
$(COREDNS):
	GOBIN=$(dir $(COREDNS)) $(GO) install github.com/coredns/coredns@v1.15.0

## prometheus: Prometheus 3.16.0 (its Go module's v0.316.0), for labs that run one (bulkhead-lab up
## --prometheus) and the tests that read the apiservers through it; go install leaves out the
## web UI's assets, and only the HTTP API is used (cold: 15 CPU-minutes, 32 minutes on 2 cores
## beside a cold lab build)
PROMETHEUS := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/bulkhead/bin/prometheus
prometheus: $(PROMETHEUS)
$(PROMETHEUS):
	GOBIN=$(dir $(PROMETHEUS)) $(GO) install github.com/prometheus/prometheus/cmd/prometheus@v0.316.0

## demo: replay the December 2024 incident unguarded and guarded; prints a table, writes an HTML report
demo: build lab coredns
	$(GO) build -o $(BIN)/bulkhead-demo ./cmd/bulkhead-demo
	$(BIN)/bulkhead-demo --dir $(LAB_DIR)/demo --bulkhead $(BIN)/bulkhead --coredns $(COREDNS)

## lab-up: start the lab with defaults and print how to reach it
lab-up: lab
	$(BIN)/bulkhead-lab up --dir $(LAB_DIR)

clean:
	rm -rf $(BIN) $(LAB_DIR)
