#!/usr/bin/env bash
# scripts/cluster-bench.sh — a multi-process cluster load run on one
# machine: a NATS server, NODES gateway nodes (each a process under the
# open-file limit), and shardbench holding CONNS connections spread over
# all nodes (PROCS client processes over 127.0.0.2-127.0.0.9). Every
# connection subscribes to one channel; messages are published through
# node 1's admin API only, so every delivery on nodes 2..N crossed NATS.
#
#   CONNS=70000 NODES=4 PROCS=8 RATE=1 DURATION=20s scripts/cluster-bench.sh
#
# Writes bench/results/<date>-<host>-cluster.{json,txt} (shardbench's
# report: delivered vs expected, latency percentiles) plus each node's
# connection count. Ports: NATS 127.0.0.1:4322, nodes :818N / 127.0.0.1:919N.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="$PATH:/usr/local/go/bin"
fi

CONNS=${CONNS:-70000}
NODES=${NODES:-4}
PROCS=${PROCS:-8}
RATE=${RATE:-1}
SIZE=${SIZE:-256}
DURATION=${DURATION:-20s}
NATS_VERSION=v2.15.2
NATS_PORT=4322
OUT=bench/results
stamp="$(date -u +%Y-%m-%d)-$(hostname -s)-cluster"
mkdir -p bin "$OUT"

if [ ! -x bin/nats-server ] || ! bin/nats-server --version 2>/dev/null | grep -q "${NATS_VERSION#v}"; then
	echo "==> building nats-server $NATS_VERSION into bin/"
	GOBIN="$PWD/bin" go install "github.com/nats-io/nats-server/v2@$NATS_VERSION"
fi
go build -o bin/shardgate ./cmd/shardgate
go build -o bin/shardbench ./cmd/shardbench

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

logdir=$(mktemp -d "${TMPDIR:-/tmp}/cluster-bench.XXXXXX")
bin/nats-server -a 127.0.0.1 -p "$NATS_PORT" >"$logdir/nats.log" 2>&1 &
pids+=($!)

urls=()
for i in $(seq 1 "$NODES"); do
	bin/shardgate -listen "127.0.0.1:818$i" -admin "127.0.0.1:919$i" -broker "nats://127.0.0.1:$NATS_PORT" \
		-shards 2 -log-level warn -drain-timeout 5s >"$logdir/node$i.log" 2>&1 &
	pids+=($!)
	urls+=("ws://127.0.0.1:818$i/ws")
done
for i in $(seq 1 "$NODES"); do
	for _ in $(seq 1 100); do
		curl -fs "http://127.0.0.1:919$i/readyz" >/dev/null 2>&1 && break
		sleep 0.1
	done
	curl -fs "http://127.0.0.1:919$i/readyz" >/dev/null || { echo "node $i not ready; log:"; cat "$logdir/node$i.log"; exit 1; }
done

# Sample every node's connection count once a second; keep the peak.
sample() {
	while :; do
		for i in $(seq 1 "$NODES"); do
			n=$(curl -fs "http://127.0.0.1:919$i/metrics" 2>/dev/null | awk '/^shardgate_connections\{/ {s += $2} END {print s + 0}')
			p=$(cat "$logdir/peak$i" 2>/dev/null || echo 0)
			[ "${n:-0}" -gt "$p" ] && echo "$n" >"$logdir/peak$i"
		done
		sleep 1
	done
}
sample &
pids+=($!)

url_list=$(IFS=,; echo "${urls[*]}")
cmd=(bin/shardbench fanout -url "$url_list" -admin-url http://127.0.0.1:9191
	-conns "$CONNS" -procs "$PROCS" -channels 1 -rate "$RATE" -size "$SIZE" -duration "$DURATION"
	-source-ips 127.0.0.2-127.0.0.9 -timeout 60s -wait 30s -json "$OUT/$stamp.json")
echo "==> ${cmd[*]}"
{
	echo "# cluster run $(date -u +%FT%TZ) on $(hostname -s): $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(go version | cut -d' ' -f3)"
	echo "# nats-server $NATS_VERSION on 127.0.0.1:$NATS_PORT; $NODES shardgate nodes (-shards 2) on 127.0.0.1:8181..818$NODES"
	echo "# command: ${cmd[*]}"
	"${cmd[@]}" 2>&1
	echo
	echo "# per node: peak shardgate_connections (sampled each second) and messages taken from NATS"
	total=0
	for i in $(seq 1 "$NODES"); do
		n=$(cat "$logdir/peak$i" 2>/dev/null || echo 0)
		b=$(curl -fs "http://127.0.0.1:919$i/metrics" | awk '/^shardgate_publishes_total\{source="broker"\}/ {print $2}')
		echo "node $i: peak connections $n, messages from NATS $b"
		total=$((total + n))
	done
	echo "all nodes: peak connections $total"
} | tee "$OUT/$stamp.txt"
