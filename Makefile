# shardgate — build, run and test.
#
#   make build     bin/shardgate and bin/shardbench
#   make run       build, then start one gateway with the in-memory broker:
#                  WebSocket on :8080/ws, admin on 127.0.0.1:9090 (ARGS=... adds flags)
#   make test      every test, with the race detector (what .ci/run calls);
#                  installs test/node's npm packages first if they are missing
#   make fuzz      each Fuzz target for FUZZTIME (default 30s)
#   make bench     short shardbench run (connect, fanout, echo; ~30 s) vs shardgate and gorillahub
#   make bench-go  every Go benchmark, with allocations
#   make compare   full comparison vs gorillahub and Centrifugo (~11 min), results in bench/results/
#   make compare-tls  shardgate vs Centrifugo, both over wss:// (scripts/compare-tls.sh), results in bench/results/
#   make vet       go vet
#   make soak      scripts/soak.sh: 15,000 subscribers for 30 min with churn; PASS/FAIL, report in bench/results/ (ARGS=... adds shardbench soak flags)
#   make chaos     scripts/chaos.sh: NATS with JetStream + three nodes with history, 3,000 clients, one node
#                  SIGKILLed mid-flood; exactly once per client or FAIL; report in bench/results/ (ARGS=... adds shardbench chaos flags)
#   make cluster   NATS + three gateway nodes to try a cluster by hand (scripts/cluster.sh; ARGS=... adds node flags)
#   make clean     remove build outputs

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

GO       ?= go
NPM      ?= npm
FUZZTIME ?= 30s
ARGS     ?=
NODE_DIR := test/node
# npm writes this hidden lockfile on every install: its age tells whether
# node_modules is older than package-lock.json.
NODE_STAMP := $(NODE_DIR)/node_modules/.package-lock.json

.PHONY: build run test node-deps fuzz bench bench-go compare compare-tls vet clean cluster soak chaos

build:
	@mkdir -p bin
	$(GO) build -o bin/shardgate ./cmd/shardgate
	$(GO) build -o bin/shardbench ./cmd/shardbench

run: build
	./bin/shardgate $(ARGS)

test: node-deps
	$(GO) test -race -count=1 -timeout 20m ./...

# The Node.js client test needs the ws package. Without npm the step is
# skipped, and test/clients then skips (or, under CI, fails) with the reason.
node-deps:
	@if [ -f $(NODE_STAMP) ] && [ ! $(NODE_DIR)/package-lock.json -nt $(NODE_STAMP) ]; then \
		exit 0; \
	elif ! command -v $(NPM) >/dev/null 2>&1; then \
		echo "warning: npm not found: $(NODE_DIR) dependencies not installed" >&2; \
	elif [ -f $(NODE_DIR)/package-lock.json ]; then \
		echo "cd $(NODE_DIR) && $(NPM) ci --no-audit --no-fund"; \
		cd $(NODE_DIR) && $(NPM) ci --no-audit --no-fund; \
	else \
		echo "cd $(NODE_DIR) && $(NPM) install --no-audit --no-fund"; \
		cd $(NODE_DIR) && $(NPM) install --no-audit --no-fund; \
	fi

# `go test -list` prints a package's matching tests, then its "ok <pkg>"
# line; -fuzz takes one package and one target at a time. A package that
# does not build fails the run, after the others have been fuzzed.
fuzz:
	@status=0; \
	list="$$($(GO) test -list '^Fuzz' ./... 2>&1)" || status=$$?; \
	targets="$$(awk '/^Fuzz/ { names[n++] = $$1; next } /^ok/ { for (i = 0; i < n; i++) print $$2 " " names[i] } { n = 0 }' <<< "$$list")"; \
	if [ $$status -ne 0 ]; then echo "$$list" | grep -v '^Fuzz' >&2; echo "fuzz: some packages do not build (above)" >&2; fi; \
	while read -r pkg target; do \
		[ -n "$$pkg" ] || continue; \
		echo "== $$pkg $$target ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) "$$pkg" </dev/null || status=1; \
	done <<< "$$targets"; \
	exit $$status

bench:
	scripts/bench-short.sh

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./...

compare:
	scripts/compare.sh

compare-tls:
	scripts/compare-tls.sh

soak:
	scripts/soak.sh $(ARGS)

chaos:
	scripts/chaos.sh $(ARGS)

vet:
	$(GO) vet ./...

# A local cluster: NATS on 127.0.0.1:4222 (built from the module proxy into
# bin/), nodes on ws :8081-8083 and admin 127.0.0.1:9091-9093. Ctrl-C stops all.
cluster:
	scripts/cluster.sh $(ARGS)

clean:
	rm -rf bin
