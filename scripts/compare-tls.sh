#!/usr/bin/env bash
# scripts/compare-tls.sh — shardgate and Centrifugo v6, both serving wss://,
# side by side in one run on this machine (timings are noisy across runs,
# not within one):
#
#   connect   19,000 idle TLS connections held 5 s: server RSS per idle TLS
#             connection, TLS upgrades per second (TCP connect, full TLS
#             handshake, WebSocket upgrade), server CPU per upgrade
#   fanout    15,000 TLS subscribers of one channel, 256-byte messages at
#             10/s for 30 s: server CPU per TLS delivery
#
# A fresh server process for every run; the systems alternate (shardgate
# first in odd rounds, Centrifugo first in even ones) and the medians of
# the rounds are compared as ratios shardgate ÷ Centrifugo. Both servers
# get the same throwaway CA-signed ECDSA P-256 certificate (made with
# openssl, scripts/lib/certs.sh) and serve TLS through Go's crypto/tls with
# its defaults; shardbench verifies the certificate against the CA (-ca)
# and runs a full handshake per connection (no resumption), offering what
# Go's client offers by default.
#
# Output: OUT.md (tables, ratios, the 6 KiB target) and OUT.json (the same
# figures plus every shardbench report), with the exact command and the
# machine at the top; OUT defaults to bench/results/<date>-tls-compare.
# Raw reports, tables and server logs stay in a temporary directory (printed).
#
# Knobs (environment):
#   ROUNDS=1                 rounds of (shardgate, centrifugo); 3 for medians
#   PROCS=2                  shardbench worker processes
#   INFLIGHT=200             connections in setup at once, per worker: one
#                            TLS handshake each, at most PROCS × INFLIGHT at
#                            once (shardgate holds a second fd per handshake
#                            in progress: keep 19,000 + that under its fd limit)
#   CONNECT_CONNS=19000 HOLD=5s FANOUT_CONNS=15000 FANOUT_DURATION=30s   sizes
#   SYSTEMS="shardgate centrifugo"
#   QUICK=1                  500 connections, 10 s of fan-out: a smoke test in
#                            about two minutes; results in
#                            ${TMPDIR:-/tmp}/shardgate-tls-compare-quick.{md,json}
#   OUT=path/prefix          where OUT.md and OUT.json go
#
# OUT=path/prefix scripts/compare-tls.sh --report RAWDIR writes the report
# again from a kept raw directory (scripts/lib/tls_report.py).
#
# Ports (must be free): shardgate wss 127.0.0.1:8080, admin 127.0.0.1:9090;
# Centrifugo wss 127.0.0.1:8000, API and metrics 127.0.0.1:9000 (plain HTTP
# on both admin ports). Every server the script starts is stopped when it exits.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="$PATH:/usr/local/go/bin"
fi

# --report RAW: write OUT.md and OUT.json again from a kept run directory.
if [ "${1:-}" = --report ]; then
	[ -d "${2:-}" ] || { echo "usage: scripts/compare-tls.sh --report RAWDIR (OUT=path/prefix)" >&2; exit 2; }
	: "${OUT:?set OUT=path/prefix for the report}"
	python3 scripts/lib/tls_report.py "$2" "$OUT"
	echo "==> report in $OUT.md and $OUT.json"
	exit 0
fi

QUICK=${QUICK:-}
ROUNDS=${ROUNDS:-1}
PROCS=${PROCS:-2}
INFLIGHT=${INFLIGHT:-200}
SYSTEMS=${SYSTEMS:-shardgate centrifugo}
if [ -n "$QUICK" ]; then
	CONNECT_CONNS=${CONNECT_CONNS:-500} HOLD=${HOLD:-2s}
	FANOUT_CONNS=${FANOUT_CONNS:-500} FANOUT_DURATION=${FANOUT_DURATION:-10s}
	OUT=${OUT:-${TMPDIR:-/tmp}/shardgate-tls-compare-quick}
else
	CONNECT_CONNS=${CONNECT_CONNS:-19000} HOLD=${HOLD:-5s}
	FANOUT_CONNS=${FANOUT_CONNS:-15000} FANOUT_DURATION=${FANOUT_DURATION:-30s}
	OUT=${OUT:-bench/results/$(date -u +%F)-tls-compare}
fi
for system in $SYSTEMS; do
	case $system in
	shardgate | centrifugo) ;;
	*)
		echo "compare-tls.sh: unknown system $system in SYSTEMS (shardgate, centrifugo)" >&2
		exit 2
		;;
	esac
done
for tool in openssl curl python3; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "compare-tls.sh: $tool is needed" >&2
		exit 1
	fi
done

# The invocation, with the knobs that differ from their defaults.
invocation="scripts/compare-tls.sh"
for knob in QUICK ROUNDS PROCS INFLIGHT SYSTEMS CONNECT_CONNS HOLD FANOUT_CONNS FANOUT_DURATION; do
	if [ -n "${!knob+set}" ] && printenv "$knob" >/dev/null; then
		invocation="$knob=\"${!knob}\" $invocation"
	fi
done
invocation=$(sed -E 's/="([^" ]*)"/=\1/g' <<<"$invocation")

busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in 8080 9090 8000 9000; do
	if busy "$port"; then
		echo "compare-tls.sh: port $port is already in use; stop whatever holds it first" >&2
		exit 1
	fi
done

RAW=$(mktemp -d "${TMPDIR:-/tmp}/shardgate-tls-compare.XXXXXX")
CERTS="$RAW/certs"
load_before=$(uptime)
started=$(date -u '+%F %H:%M UTC')
head_rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || head_rev="$head_rev (with uncommitted changes)"
echo "==> compare-tls.sh: $SYSTEMS, $ROUNDS round(s); report in $OUT.md; raw in $RAW"
echo "==> load before: $load_before"

echo "==> building bin/shardgate bin/shardbench ($head_rev)"
mkdir -p bin "$(dirname "$OUT")"
go build -o bin/shardgate ./cmd/shardgate
go build -o bin/shardbench ./cmd/shardbench

# shellcheck source=scripts/lib/certs.sh
source scripts/lib/certs.sh
make_test_certs "$CERTS"

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# server_pid, stop_server and the exit traps.
# shellcheck source=scripts/lib/server.sh
source scripts/lib/server.sh

metrics_of() {
	case $1 in
	shardgate) echo http://127.0.0.1:9090/metrics ;;
	centrifugo) echo http://127.0.0.1:9000/metrics ;;
	esac
}
# The server commands, as recorded in the report.
shardgate_cmd=(bin/shardgate -listen 127.0.0.1:8080 -admin 127.0.0.1:9090 -max-conns 20000 -log-level warn
	-tls-cert "$CERTS/cert.pem" -tls-key "$CERTS/key.pem")
centrifugo_cmd=(env TLS_CERT="$CERTS/cert.pem" TLS_KEY="$CERTS/key.pem" scripts/bench-centrifugo.sh)

# start SYSTEM LOG TIMEOUT: a fresh server, in the background, serving
# metrics within TIMEOUT seconds.
start() {
	local system=$1 log=$2 timeout=$3
	for port in 8080 9090 8000 9000; do
		for _ in $(seq 100); do busy "$port" || break; sleep 0.1; done
	done
	case $system in
	shardgate) "${shardgate_cmd[@]}" >"$log" 2>&1 & ;;
	centrifugo) "${centrifugo_cmd[@]}" >"$log" 2>&1 & ;;
	esac
	server_pid=$!
	local deadline=$((SECONDS + timeout))
	while [ "$SECONDS" -lt "$deadline" ]; do
		curl -sf -o /dev/null "$(metrics_of "$system")" && return 0
		if ! kill -0 "$server_pid" 2>/dev/null; then
			server_pid=
			echo "    $system exited at start: $(tail -n 1 "$log")" >&2
			return 1
		fi
		sleep 0.1
	done
	stop_server
	echo "    $system did not serve metrics within $timeout s" >&2
	return 1
}

if [[ " $SYSTEMS " == *" centrifugo "* ]]; then
	echo "==> Centrifugo: build if needed (the first build takes a few minutes) and a trial start with TLS"
	start centrifugo "$RAW/centrifugo-build.log" 900 || {
		cat "$RAW/centrifugo-build.log" >&2
		exit 1
	}
	stop_server
fi

# secs 30s → 30
secs() { local d=${1%s}; echo "${d%.*}"; }
connect_args=(-conns "$CONNECT_CONNS" -hold "$HOLD")
fanout_args=(-conns "$FANOUT_CONNS" -channels 1 -rate 10 -size 256 -duration "$FANOUT_DURATION" -wait 10s)
# Time limits: connecting at 50 upgrades/s at worst, then the measured phase.
connect_limit=$((120 + CONNECT_CONNS / 50 + $(secs "$HOLD")))
fanout_limit=$((120 + FANOUT_CONNS / 50 + 3 * $(secs "$FANOUT_DURATION")))

manifest="$RAW/manifest.tsv"
printf 'system\tscenario\tround\tstatus\treport\tserver_command\tbench_command\n' >"$manifest"

# run SYSTEM SCENARIO ROUND LIMIT ARGS...: a fresh server, one shardbench run.
run() {
	local system=$1 scenario=$2 round=$3 limit=$4
	shift 4
	local name="$system-$scenario-$round" status=ok rc server
	local bench=(bin/shardbench "$scenario" -target "$system" -ca "$CERTS/ca.pem" -procs "$PROCS" -inflight "$INFLIGHT" "$@" -json "$RAW/$name.json")
	case $system in
	shardgate) server="${shardgate_cmd[*]}" ;;
	centrifugo) server="${centrifugo_cmd[*]}" ;;
	esac
	echo "==> [$(date -u +%T)] $name"
	if ! start "$system" "$RAW/$name.server.log" 60; then
		status="failed: the server did not start"
	else
		set +e
		timeout --kill-after=10 "$limit" "${bench[@]}" >"$RAW/$name.txt" 2>&1
		rc=$?
		set -e
		if [ "$rc" -ne 0 ]; then
			status="failed: shardbench exit $rc: $(tail -n 1 "$RAW/$name.txt")"
			[ "$rc" -ne 124 ] || status="failed: timed out after $limit s"
		elif ! kill -0 "$server_pid" 2>/dev/null; then
			status="failed: the server exited during the run"
		fi
	fi
	stop_server
	[ "$status" = ok ] || echo "    $status"
	grep -E '^(tls|connections|delivered|server|server CPU|generator) ' "$RAW/$name.txt" 2>/dev/null | sed 's/^/    /' || true
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$system" "$scenario" "$round" "$status" "$RAW/$name.json" \
		"${server//$RAW/\$RAW}" "${bench[*]//$RAW/\$RAW}" >>"$manifest"
}

for round in $(seq "$ROUNDS"); do
	order=$SYSTEMS
	if [ $((round % 2)) -eq 0 ]; then
		order=$(tr ' ' '\n' <<<"$SYSTEMS" | tac | tr '\n' ' ')
	fi
	for system in $order; do
		run "$system" connect "$round" "$connect_limit" "${connect_args[@]}"
		run "$system" fanout "$round" "$fanout_limit" "${fanout_args[@]}"
	done
done

load_after=$(uptime)
machine="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(go version | cut -d' ' -f3)"
centrifugo_version=
if [ -x bin/centrifugo ]; then
	centrifugo_version=$(go version -m bin/centrifugo 2>/dev/null | awk '$1 == "mod" { print $3; exit }')
fi

# The run's facts, for the report (and for --report on a kept directory).
python3 - "$RAW/meta.json" <<PY
import json, sys
json.dump({
    "command": """$invocation""",
    "started": "$started",
    "shardgate_commit": "$head_rev",
    "centrifugo": "$centrifugo_version",
    "machine": """$machine""",
    "load_before": """$load_before""".strip(),
    "load_after": """$load_after""".strip(),
    "rounds": $ROUNDS, "procs": $PROCS, "inflight": $INFLIGHT,
    "connect": "shardbench connect ${connect_args[*]}",
    "fanout": "shardbench fanout ${fanout_args[*]}",
    "connect_conns": $CONNECT_CONNS, "fanout_conns": $FANOUT_CONNS,
}, open(sys.argv[1], "w"), indent=2)
PY
python3 scripts/lib/tls_report.py "$RAW" "$OUT"
cat "$OUT.md"
echo "==> report in $OUT.md and $OUT.json; raw reports and server logs in $RAW"
