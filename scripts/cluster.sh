#!/usr/bin/env bash
# scripts/cluster.sh — a local shardgate cluster to try by hand: one NATS
# server and three gateway nodes on this machine. Ctrl-C stops everything.
#
#   NATS          127.0.0.1:4222   (monitoring http://127.0.0.1:8222)
#   node 1..3     WebSocket :8081/ws :8082/ws :8083/ws
#                 admin     127.0.0.1:9091 127.0.0.1:9092 127.0.0.1:9093
#
# nats-server is built from the Go module proxy into bin/ (once); the
# gateway is built from this tree. Extra arguments are passed to every
# node, e.g. scripts/cluster.sh -log-level debug, or
# scripts/cluster.sh -history-size 100 for history and recovery across
# nodes. NATS runs with JetStream on, storing in $JS_DIR, so history
# survives a restart of NATS (and of this script).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

NATS_VERSION=v2.15.2
NATS_PORT=4222
NATS_MONITOR=8222
NODES=3
BROKER="nats://127.0.0.1:$NATS_PORT"
JS_DIR="${JS_DIR:-${TMPDIR:-/tmp}/shardgate-cluster-jetstream}"

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="$PATH:/usr/local/go/bin"
fi

mkdir -p bin
if [ ! -x bin/nats-server ] || ! bin/nats-server --version 2>/dev/null | grep -q "${NATS_VERSION#v}"; then
	echo "==> building nats-server $NATS_VERSION into bin/"
	GOBIN="$PWD/bin" go install "github.com/nats-io/nats-server/v2@$NATS_VERSION"
fi
echo "==> building bin/shardgate"
go build -o bin/shardgate ./cmd/shardgate

# Refuse to start over something already listening: the nodes would join
# someone else's NATS, or fail one by one.
busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "$NATS_PORT" "$NATS_MONITOR" $(seq 8081 $((8080 + NODES))) $(seq 9091 $((9090 + NODES))); do
	if busy "$port"; then
		echo "cluster.sh: port $port is already in use; stop whatever holds it first" >&2
		exit 1
	fi
done

pids=()
stop_all() {
	trap - INT TERM EXIT
	echo
	echo "==> stopping"
	# Gateways first (they drain: close 1001 to every client), then NATS.
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill -TERM "${pids[i]}" 2>/dev/null || true
	done
	wait 2>/dev/null || true
}
trap stop_all INT TERM EXIT

# Every line of a process's output, prefixed with its name. The prefixer
# ignores Ctrl-C so that it outlives the process it reads: a gateway
# logging its drain into a closed pipe would die of SIGPIPE.
prefix() {
	trap '' INT TERM
	exec sed -u "s/^/[$1] /"
}

mkdir -p "$JS_DIR"
bin/nats-server -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_MONITOR" -js -sd "$JS_DIR" > >(prefix nats) 2>&1 &
pids+=($!)
nats_pid=$!

# A node with -history-size needs NATS at start (it checks the history
# stream before listening); one without would wait for it anyway.
deadline=$((SECONDS + 10))
until busy "$NATS_PORT"; do
	if ((SECONDS > deadline)); then
		echo "cluster.sh: NATS not listening after 10s (see its log above)" >&2
		exit 1
	fi
	sleep 0.1
done

for i in $(seq 1 "$NODES"); do
	bin/shardgate -listen ":808$i" -admin "127.0.0.1:909$i" -broker "$BROKER" \
		-drain-timeout 5s "$@" > >(prefix "node$i") 2>&1 &
	pids+=($!)
done

# Wait (up to 15 s) until every node reports ready, i.e. has NATS.
deadline=$((SECONDS + 15))
for i in $(seq 1 "$NODES"); do
	until curl -fs "http://127.0.0.1:909$i/readyz" >/dev/null 2>&1; do
		if ((SECONDS > deadline)); then
			echo "cluster.sh: node $i not ready after 15s (see its log above)" >&2
			exit 1
		fi
		sleep 0.1
	done
done

cat <<EOF

==> cluster up: NATS (pid $nats_pid) and $NODES gateway nodes. Try:

  # a subscriber on node 1 (websocat, or any WebSocket client):
  websocat ws://127.0.0.1:8081/ws
  {"type":"subscribe","channel":"news"}

  # publish through node 3's admin API; node 1's subscriber receives it:
  curl -s -X POST 127.0.0.1:9093/api/publish -H 'Content-Type: application/json' -d '{"channel":"news","data":{"hello":"cluster"}}'

  # a client on node 2 can publish too:
  websocat ws://127.0.0.1:8082/ws
  {"type":"publish","channel":"news","data":"from node 2","id":1}

  # which node subscribes to what, as NATS sees it (shardgate.ch.<channel>,
  # '.' in a channel name written '~'; shardgate.all is "everyone"):
  curl -s '127.0.0.1:$NATS_MONITOR/subsz?subs=1'

  # metrics and readiness of a node:
  curl -s 127.0.0.1:9091/metrics | grep -E 'broker_connected|publishes_total'
  curl -s -o /dev/null -w '%{http_code}\\n' 127.0.0.1:9091/readyz

  # an outage: stop NATS and watch /readyz turn 503 and publishes fail
  # while WebSocket clients stay connected ...
  kill $nats_pid
  # ... then start it again (another terminal): readiness returns and the
  # same connections receive again, with no client reconnecting.
  bin/nats-server -a 127.0.0.1 -p $NATS_PORT -m $NATS_MONITOR -js -sd $JS_DIR

  # with -history-size: publish receipts carry offsets, and a client
  # recovers on any node what it missed (its last epoch and offset):
  {"type":"subscribe","channel":"news","recover":{"epoch":"...","offset":N}}
  curl -s '127.0.0.1:9092/api/history?channel=news&limit=10'

Ctrl-C stops everything.
EOF

wait
