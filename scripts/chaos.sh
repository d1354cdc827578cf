#!/usr/bin/env bash
# scripts/chaos.sh — proves that clients lose nothing when a cluster node
# dies: builds bin/shardgate, bin/shardbench and bin/nats-server (the
# version go.mod pins, from the module cache or proxy), starts NATS with
# JetStream (its store in a temporary directory) and three gateway nodes
# with -broker and -history-size, runs `shardbench chaos` over the three
# nodes, SIGKILLs one node mid-flood, and writes the exact commands, the
# machine and the verdict to bench/results/<date>-chaos.md (and the JSON
# report next to it).
#
#   scripts/chaos.sh                              3,000 clients, 100 msgs/s for 60 s, node 1 killed at 20 s
#   scripts/chaos.sh -conns 1000 -duration 30s    any `shardbench chaos` flag; later ones win
#
# Clients are spread over the three nodes; the stream is published through
# the admin API of the node that is killed first (KILL_NODE) and fails
# over to the next one, so the publisher also loses its node. History is
# sized to cover the outage (HISTORY_SIZE messages per channel, RECOVER_MAX
# per replay), so the run asks for zero recovered:false
# (-require-recovered); pass -require-recovered=false to only count them.
#
# Exit status: shardbench's (0 PASS, 3 FAIL, 1 the run could not be
# carried out, 2 bad arguments), or 4 when the run passed but a surviving
# node did not shut down cleanly (SIGTERM, exit 0) afterwards.
#
# Environment: KILL_NODE (1..3, default 1), KILL_AFTER (default 20s),
# HISTORY_SIZE (default 20000), RECOVER_MAX (default 5000), SHARDS
# (gateway -shards, default 1: three nodes share this machine), PROCS
# (shardbench workers, default 1), NODE_ARGS (more shardgate flags),
# NATS_PORT (default 14222), WS_BASE (default 18080: nodes on +1..+3),
# ADMIN_BASE (default 19090), OUT (results directory, default
# bench/results), BUILD_COMMIT (what the report names as the build, for a
# tree that is not a git checkout, such as a `git archive` export;
# default: git's HEAD, marked when the tree has uncommitted changes).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="$PATH:/usr/local/go/bin"
fi

KILL_NODE=${KILL_NODE:-1}
KILL_AFTER=${KILL_AFTER:-20s}
HISTORY_SIZE=${HISTORY_SIZE:-20000}
RECOVER_MAX=${RECOVER_MAX:-5000}
SHARDS=${SHARDS:-1}
PROCS=${PROCS:-1}
NODE_ARGS=${NODE_ARGS:-}
NATS_PORT=${NATS_PORT:-14222}
WS_BASE=${WS_BASE:-18080}
ADMIN_BASE=${ADMIN_BASE:-19090}
OUT=${OUT:-bench/results}
NODES=3

if ! [[ $KILL_NODE =~ ^[1-3]$ ]]; then
	echo "chaos.sh: KILL_NODE must be 1, 2 or 3" >&2
	exit 2
fi

# What is built is what the report names: the commit now, not at the end.
commit=${BUILD_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
if [ -z "${BUILD_COMMIT:-}" ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	commit="$commit (with uncommitted changes)"
fi

echo "==> building bin/shardgate bin/shardbench bin/nats-server"
mkdir -p bin "$OUT"
go build -o bin/shardgate ./cmd/shardgate
go build -o bin/shardbench ./cmd/shardbench
# The nats-server go.mod requires (the one the tests run in-process).
go build -o bin/nats-server github.com/nats-io/nats-server/v2

busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "$NATS_PORT" $(seq $((WS_BASE + 1)) $((WS_BASE + NODES))) $(seq $((ADMIN_BASE + 1)) $((ADMIN_BASE + NODES))); do
	if busy "$port"; then
		echo "chaos.sh: port $port is already in use; stop whatever holds it, or set NATS_PORT, WS_BASE, ADMIN_BASE" >&2
		exit 1
	fi
done

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nofile=$(ulimit -n)

work=$(mktemp -d "${TMPDIR:-/tmp}/chaos.XXXXXX")
nats_pid=
node_pids=()
stop_all() {
	local p
	for p in "${node_pids[@]}"; do
		[ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${node_pids[@]}"; do
		[ -n "$p" ] && wait "$p" 2>/dev/null || true
	done
	node_pids=()
	if [ -n "$nats_pid" ]; then
		kill -TERM "$nats_pid" 2>/dev/null || true
		wait "$nats_pid" 2>/dev/null || true
		nats_pid=
	fi
}
trap 'stop_all; [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

nats_cmd=(bin/nats-server -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$work/jetstream")
"${nats_cmd[@]}" >"$work/nats.log" 2>&1 &
nats_pid=$!
for _ in $(seq 100); do
	busy "$NATS_PORT" && break
	if ! kill -0 "$nats_pid" 2>/dev/null; then
		echo "chaos.sh: nats-server exited at start; its log:" >&2
		cat "$work/nats.log" >&2
		exit 1
	fi
	sleep 0.1
done
echo "==> nats-server pid $nats_pid on 127.0.0.1:$NATS_PORT, JetStream store $work/jetstream"

node_cmds=()
urls=()
admins=()
for i in $(seq 1 "$NODES"); do
	ws="127.0.0.1:$((WS_BASE + i))"
	admin="127.0.0.1:$((ADMIN_BASE + i))"
	# shellcheck disable=SC2206 # NODE_ARGS is a list of flags
	cmd=(bin/shardgate -listen "$ws" -admin "$admin" -broker "nats://127.0.0.1:$NATS_PORT"
		-history-size "$HISTORY_SIZE" -recover-max "$RECOVER_MAX" -shards "$SHARDS"
		-drain-timeout 5s -log-format text $NODE_ARGS)
	"${cmd[@]}" >"$work/node$i.log" 2>&1 &
	node_pids+=($!)
	node_cmds+=("${cmd[*]}")
	urls+=("ws://$ws/ws")
	admins+=("http://$admin")
done

deadline=$((SECONDS + 20))
for i in $(seq 1 "$NODES"); do
	until curl -fs -o /dev/null "http://127.0.0.1:$((ADMIN_BASE + i))/readyz"; do
		if ! kill -0 "${node_pids[i - 1]}" 2>/dev/null || ((SECONDS > deadline)); then
			echo "chaos.sh: node $i is not ready (exited, or not ready after 20 s); its log:" >&2
			tail -n 30 "$work/node$i.log" >&2
			exit 1
		fi
		sleep 0.1
	done
done
echo "==> nodes up: pids ${node_pids[*]} (ws ${urls[*]})"

kill_pid=${node_pids[KILL_NODE - 1]}
next=$((KILL_NODE % NODES + 1))
url_list=$(IFS=,; echo "${urls[*]}")
admin_list="${admins[KILL_NODE - 1]},${admins[next - 1]}"

date=$(date -u +%Y-%m-%d)
base="$OUT/$date-chaos"
[ -e "$base.md" ] && base="$OUT/$date-$(date -u +%H%M%S)-chaos"
bench_cmd=(bin/shardbench chaos -url "$url_list" -admin-url "$admin_list" -conns 3000 -rate 100 -duration 60s
	-procs "$PROCS" -kill-pid "$kill_pid" -kill-after "$KILL_AFTER" -require-recovered "$@" -json "$base.json")
load_before=$(uptime)
echo "==> $load_before"
echo "==> ${bench_cmd[*]}"
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
status=0
"${bench_cmd[@]}" 2>&1 | tee "$work/report.txt" || status=${PIPESTATUS[0]}
load_after=$(uptime)

# The killed node must be gone; the others must still be up and shut
# down cleanly.
nodes_status=()
for i in $(seq 1 "$NODES"); do
	p=${node_pids[i - 1]}
	if kill -0 "$p" 2>/dev/null; then
		kill -TERM "$p"
		code=0
		wait "$p" || code=$?
		nodes_status+=("node $i (pid $p): exit status $code after SIGTERM")
		if [ "$i" != "$KILL_NODE" ] && [ "$code" -ne 0 ] && [ "$status" -eq 0 ]; then status=4; fi
	else
		code=0
		wait "$p" 2>/dev/null || code=$?
		nodes_status+=("node $i (pid $p): not running at the end (exit status $code$([ "$code" = 137 ] && echo ", SIGKILL"))")
		if [ "$i" != "$KILL_NODE" ] && [ "$status" -eq 0 ]; then status=4; fi
	fi
	node_pids[i - 1]=
done

case $status in
0) verdict="PASS" ;;
3) verdict="FAIL (the chaos run's verdict)" ;;
4) verdict="FAIL (a surviving node did not shut down cleanly)" ;;
*) verdict="ERROR: shardbench exited with status $status" ;;
esac

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown)
{
	echo "# Chaos run $started: $verdict"
	echo
	echo "Three gateway nodes and one NATS server with JetStream on one machine;"
	echo "node $KILL_NODE (pid $kill_pid) gets SIGKILL $KILL_AFTER into the stream,"
	echo "which is published through node $KILL_NODE's admin API and fails over to node $next's."
	echo
	echo "Build: commit $commit, $(go version | awk '{print $3}'), $(uname -sr)."
	echo "Machine: $(nproc) × $cpu, open-file limit $nofile; generator, nodes and NATS share it."
	echo
	echo "Load: before \`$load_before\`; after \`$load_after\`."
	echo
	echo '```'
	echo "${nats_cmd[*]}" | sed "s|$work|\$TMP|g"
	printf '%s\n' "${node_cmds[@]}"
	echo "${bench_cmd[*]}"
	echo '```'
	echo
	printf -- '- %s\n' "${nodes_status[@]}"
	echo
	echo "Report (JSON: $(basename "$base.json")):"
	echo
	echo '```'
	cat "$work/report.txt"
	echo '```'
	for i in $(seq 1 "$NODES"); do
		if grep -qE 'level=(WARN|ERROR)' "$work/node$i.log"; then
			echo
			echo "Node $i warnings and errors (last 15):"
			echo
			echo '```'
			grep -E 'level=(WARN|ERROR)' "$work/node$i.log" | tail -n 15
			echo '```'
		fi
	done
} >"$base.md"

echo "==> $verdict; results in $base.md"
exit "$status"
