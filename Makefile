# shardgate — build, run and test.
#
#   make build     bin/shardgate and bin/shardbench
#   make run       build, then start one gateway with the in-memory broker:
#                  WebSocket on :8080/ws, admin on 127.0.0.1:9090 (ARGS=... adds flags)
#   make test      every test: Go with the race detector, then clients/js's node:test
#                  suite against bin/shardgate (what .ci/run calls); installs the npm
#                  packages of test/node and clients/js first if they are missing
#   make js        build clients/js (TypeScript → ESM in clients/js/dist) and check its size budget
#   make autobahn  the Autobahn TestSuite (kosoku, installed into a venv) against the shard in echo
#                  mode; summary in bench/results/ (ARGS="1 2 9" for some groups)
#   make fuzz      each Fuzz target for FUZZTIME (default 30s)
#   make bench     short shardbench run (connect, fanout, echo; ~30 s) vs shardgate and gorillahub
#   make bench-go  every Go benchmark, with allocations
#   make compare   full comparison vs gorillahub and Centrifugo (~11 min), results in bench/results/
#   make compare-compress  shardgate with and without permessage-deflate vs Centrifugo with it, 15,000
#                  subscribers of 1 KiB JSON (scripts/compare-compress.sh, ~30 min), results in bench/results/
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
JS_DIR   := clients/js
# npm writes node_modules/.package-lock.json on every install: its age
# tells whether node_modules is older than package-lock.json.
NODE_DIRS := test/node $(JS_DIR)

.PHONY: build run test js nats-server node-deps py-deps autobahn compare-compress fuzz bench bench-go compare compare-tls vet clean cluster soak chaos

build:
	@mkdir -p bin
	$(GO) build -o bin/shardgate ./cmd/shardgate
	$(GO) build -o bin/shardbench ./cmd/shardbench

run: build
	./bin/shardgate $(ARGS)

test: build nats-server node-deps py-deps js
	$(GO) test -race -count=1 -timeout 20m ./...
	cd $(JS_DIR) && SHARDGATE_BIN=$(CURDIR)/bin/shardgate SHARDGATE_NATS_BIN=$(CURDIR)/bin/nats-server $(NPM) test

# Python packages of the cross-language tests (websockets), pinned with
# hashes in test/python/requirements.txt, into bin/python-venv; redone when
# the requirements change. Without a Python that can make a venv the step
# only warns (the tests that need it skip, or fail under CI).
PY_VENV := bin/python-venv
py-deps:
	@if [ -x $(PY_VENV)/bin/python ] && cmp -s test/python/requirements.txt $(PY_VENV)/requirements.txt; then \
		exit 0; \
	elif ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then \
		echo "warning: python3 with venv not found: $(PY_VENV) not made" >&2; \
	else \
		echo "python3 -m venv $(PY_VENV) && pip install -r test/python/requirements.txt"; \
		python3 -m venv $(PY_VENV) && \
		$(PY_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes -r test/python/requirements.txt && \
		cp test/python/requirements.txt $(PY_VENV)/requirements.txt; \
	fi

# The NATS server go.mod requires (the Go tests run the same one
# in-process); clients/js's cluster test runs it as a process.
nats-server:
	@mkdir -p bin
	$(GO) build -o bin/nats-server github.com/nats-io/nats-server/v2

# clients/js: compile the TypeScript library to ESM in clients/js/dist and
# check its size budget (the build fails past 5 KB minified and gzipped).
js: node-deps
	cd $(JS_DIR) && $(NPM) run build

# npm packages: ws for the Node.js client test (test/node), and
# TypeScript, esbuild and ws for clients/js. Each directory is installed
# from its lockfile when node_modules is missing or older than it. Without
# npm the step only warns (the Go tests that need Node.js then skip, or
# fail under CI), but `make js` and so `make test` need npm.
node-deps:
	@for dir in $(NODE_DIRS); do \
		stamp=$$dir/node_modules/.package-lock.json; \
		if [ -f $$stamp ] && [ ! $$dir/package-lock.json -nt $$stamp ]; then \
			continue; \
		elif ! command -v $(NPM) >/dev/null 2>&1; then \
			echo "warning: npm not found: $$dir dependencies not installed" >&2; \
		else \
			echo "cd $$dir && $(NPM) ci --no-audit --no-fund"; \
			(cd $$dir && $(NPM) ci --no-audit --no-fund); \
		fi; \
	done

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

# The Autobahn TestSuite (kosoku in bin/autobahn-venv) against the shard's
# WebSocket layer in echo mode; summary in bench/results/ (ARGS=groups).
autobahn:
	scripts/autobahn.sh $(ARGS)

bench:
	scripts/bench-short.sh

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./...

compare:
	scripts/compare.sh

compare-tls:
	scripts/compare-tls.sh

compare-compress:
	scripts/compare-compress.sh

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
