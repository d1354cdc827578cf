#!/usr/bin/env bash
# scripts/bench-short.sh — the short benchmark behind `make bench`: builds
# shardgate, gorillahub and shardbench, then runs the same three small
# scenarios against shardgate and against gorillahub on this machine and
# prints shardbench's reports. Under a minute; scripts/compare.sh is the
# full comparison.
#
#   connect  CONNS connections (default 2000), held 2 s
#   fanout   CONNS subscribers of one channel, 256-byte messages at 10/s for 5 s
#   echo     100 connections, round trips for 5 s
#
# Each scenario gets a fresh server, so its memory figures start from an
# idle process. JSON reports and server logs go to OUT (default a new
# temporary directory, printed at the end). The servers use their default
# ports (shardgate :8080 and 127.0.0.1:9090, gorillahub :8090 and
# 127.0.0.1:9190), which must be free. PROCS sets shardbench's -procs
# (default 2). Timings are noisy: compare figures from one run only.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="$PATH:/usr/local/go/bin"
fi

CONNS=${CONNS:-2000}
PROCS=${PROCS:-2}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/shardbench.XXXXXX")}
mkdir -p bin "$OUT"

echo "==> building bin/shardgate bin/gorillahub bin/shardbench"
go build -o bin/shardgate ./cmd/shardgate
go build -o bin/gorillahub ./bench/peers/gorillahub
go build -o bin/shardbench ./cmd/shardbench

busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in 8080 9090 8090 9190; do
	if busy "$port"; then
		echo "bench-short.sh: port $port is already in use; stop whatever holds it first" >&2
		exit 1
	fi
done

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

server_pid=
stop_server() {
	if [ -n "$server_pid" ]; then
		kill -TERM "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
		server_pid=
	fi
}
trap stop_server EXIT
trap 'exit 130' INT TERM

# start_server NAME METRICS_URL COMMAND... starts a server in the
# background, its log in $OUT/NAME.log, and waits until it serves metrics.
start_server() {
	local name=$1 metrics=$2
	shift 2
	"$@" >"$OUT/$name.log" 2>&1 &
	server_pid=$!
	for _ in $(seq 100); do
		if curl -sf -o /dev/null "$metrics"; then
			return 0
		fi
		if ! kill -0 "$server_pid" 2>/dev/null; then
			echo "bench-short.sh: $name exited; its log:" >&2
			cat "$OUT/$name.log" >&2
			exit 1
		fi
		sleep 0.1
	done
	echo "bench-short.sh: $name did not serve $metrics within 10 s" >&2
	exit 1
}

# bench TARGET SCENARIO ARGS... runs one scenario against a fresh server,
# so that each report's memory figures start from an idle process.
bench() {
	local target=$1 scenario=$2
	shift 2
	case $target in
	shardgate)
		# -client-rate 0: echo measures the gateway, not its per-client limit.
		start_server shardgate http://127.0.0.1:9090/metrics bin/shardgate -client-rate 0
		;;
	gorillahub)
		start_server gorillahub http://127.0.0.1:9190/metrics bin/gorillahub
		;;
	esac
	echo
	echo "==> $target: $scenario"
	bin/shardbench "$scenario" -target "$target" "$@" -json "$OUT/$target-$scenario.json"
	stop_server
}

for target in shardgate gorillahub; do
	bench "$target" connect -conns "$CONNS" -hold 2s -procs "$PROCS"
	bench "$target" fanout -conns "$CONNS" -channels 1 -rate 10 -size 256 -duration 5s -procs "$PROCS"
	bench "$target" echo -conns 100 -duration 5s -procs 1
done

echo
echo "==> reports (JSON) and server logs in $OUT"
