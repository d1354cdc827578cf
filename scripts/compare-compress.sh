#!/usr/bin/env bash
# scripts/compare-compress.sh — permessage-deflate (RFC 7692, issue #11)
# measured in one run on this machine (timings are noisy across runs, not
# within one): shardgate with -compression on, shardgate with -compression
# off, and Centrifugo v6 with websocket compression on.
#
#   fanout   15,000 subscribers of one channel over PROCS client processes
#            and the loopback source addresses SOURCE_IPS; 1 KiB JSON
#            messages (shardbench -payload json: an order book update that
#            deflates about 3.4× on its own at level 1) at 10/s for 30 s;
#            every client offers permessage-deflate (shardbench -compress)
#            as a browser does. Per system: server CPU per delivery (the
#            server's process_cpu_seconds_total over the measured phase),
#            bytes read from the sockets per delivery (frames, headers
#            included), delivered/expected, latency percentiles.
#   idle     15,000 idle connections held 5 s to a fresh shardgate with
#            -compression on, offering the extension (negotiated) or not
#            (plain), and to Centrifugo with compression (negotiated):
#            server RSS per idle connection.
#
# A fresh server process for every run. Rounds alternate the order of the
# systems (each round starts with the next one), and every ratio is taken
# within a round, so ratios come from runs minutes apart on the same
# machine; the report gives each round's ratios and their median. The
# issue's acceptance: shardgate's CPU per delivery with compression at most
# 1.2 × its own without, and its bytes on the wire per delivery at most half.
#
# Until bin/shardgate has -compression (shardgate -h says), the script runs
# what it can, shardgate as it is (no compression) and Centrifugo, and the
# report says it is partial.
#
# Output: OUT.md (tables, ratios, acceptance) and OUT.json (the same figures
# plus every shardbench report), with the exact command and the machine at
# the top; OUT defaults to bench/results/<date>-compress-compare. Raw
# reports and server logs stay in a temporary directory (printed).
#
# Knobs (environment):
#   ROUNDS=3                 rounds; each runs every system once per scenario
#   PROCS=2                  shardbench worker processes
#   SOURCE_IPS=127.0.0.2-127.0.0.9   client source addresses (shardbench -source-ips)
#   CONNS=15000 RATE=10 SIZE=1024 DURATION=30s HOLD=5s   sizes
#   SYSTEMS="shardgate-on shardgate-off centrifugo"
#   IDLE=1                   0 skips the idle-connection runs
#   QUICK=1                  1,000 connections, 10 s, one round: a smoke test in
#                            about two minutes; results in
#                            ${TMPDIR:-/tmp}/shardgate-compress-compare-quick.{md,json}
#   OUT=path/prefix          where OUT.md and OUT.json go
#   QUIET_MAX=15 QUIET_WAIT=600   before each run, wait up to QUIET_WAIT s for the
#                            machine to be at most QUIET_MAX % busy (2 s samples of
#                            /proc/stat: other work on a shared machine would skew
#                            the figures); the report gives each run's figure
#   REV=commit               build shardgate and shardbench from that commit
#                            (git archive into the raw directory) instead of
#                            from this checkout's files, which others may be
#                            editing; the report names the commit
#   SHARDGATE_BIN, SHARDBENCH_BIN   use these binaries instead of building
#                            (a build of another tree; the report names them)
#
# OUT=path/prefix scripts/compare-compress.sh --report RAWDIR writes the
# report again from a kept raw directory (scripts/lib/compress_report.py).
#
# Ports (must be free): shardgate 127.0.0.1:8080, admin 127.0.0.1:9090;
# Centrifugo 127.0.0.1:8000, API and metrics 127.0.0.1:9000. Every server
# the script starts is stopped when it exits.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="$PATH:/usr/local/go/bin"
fi

if [ "${1:-}" = --report ]; then
	[ -d "${2:-}" ] || { echo "usage: scripts/compare-compress.sh --report RAWDIR (OUT=path/prefix)" >&2; exit 2; }
	: "${OUT:?set OUT=path/prefix for the report}"
	python3 scripts/lib/compress_report.py "$2" "$OUT"
	echo "==> report in $OUT.md and $OUT.json"
	exit 0
fi

QUICK=${QUICK:-}
PROCS=${PROCS:-2}
SOURCE_IPS=${SOURCE_IPS:-127.0.0.2-127.0.0.9}
RATE=${RATE:-10}
SIZE=${SIZE:-1024}
IDLE=${IDLE:-1}
SYSTEMS=${SYSTEMS:-shardgate-on shardgate-off centrifugo}
if [ -n "$QUICK" ]; then
	ROUNDS=${ROUNDS:-1} CONNS=${CONNS:-1000} DURATION=${DURATION:-10s} HOLD=${HOLD:-2s}
	OUT=${OUT:-${TMPDIR:-/tmp}/shardgate-compress-compare-quick}
else
	ROUNDS=${ROUNDS:-3} CONNS=${CONNS:-15000} DURATION=${DURATION:-30s} HOLD=${HOLD:-5s}
	OUT=${OUT:-bench/results/$(date -u +%F)-compress-compare}
fi
for system in $SYSTEMS; do
	case $system in
	shardgate-on | shardgate-off | centrifugo) ;;
	*)
		echo "compare-compress.sh: unknown system $system in SYSTEMS (shardgate-on, shardgate-off, centrifugo)" >&2
		exit 2
		;;
	esac
done
for tool in curl python3; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "compare-compress.sh: $tool is needed" >&2
		exit 1
	fi
done

# The invocation, with the knobs that differ from their defaults.
invocation="scripts/compare-compress.sh"
QUIET_MAX=${QUIET_MAX:-15}
QUIET_WAIT=${QUIET_WAIT:-600}
for knob in QUICK ROUNDS PROCS SOURCE_IPS CONNS RATE SIZE DURATION HOLD IDLE SYSTEMS QUIET_MAX QUIET_WAIT REV SHARDGATE_BIN SHARDBENCH_BIN; do
	if printenv "$knob" >/dev/null; then
		invocation="$knob=\"${!knob}\" $invocation"
	fi
done
invocation=$(sed -E 's/="([^" ]*)"/=\1/g' <<<"$invocation")

busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in 8080 9090 8000 9000; do
	if busy "$port"; then
		echo "compare-compress.sh: port $port is already in use; stop whatever holds it first" >&2
		exit 1
	fi
done

RAW=$(mktemp -d "${TMPDIR:-/tmp}/shardgate-compress-compare.XXXXXX")
load_before=$(uptime)
started=$(date -u '+%F %H:%M UTC')
head_rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain --untracked-files=no -- cmd gateway shard bufpool poller bench go.mod 2>/dev/null)" ] ||
	head_rev="$head_rev (with uncommitted changes)"

mkdir -p bin "$(dirname "$OUT")"
src=. bindir=bin
if [ -n "${REV:-}" ]; then
	head_rev=$(git rev-parse --short "$REV^{commit}")
	src="$RAW/src" bindir="$RAW/bin"
	mkdir -p "$src" "$bindir"
	git archive "$REV" | tar -x -C "$src"
fi
SHARDGATE=${SHARDGATE_BIN:-$bindir/shardgate}
SHARDBENCH=${SHARDBENCH_BIN:-$bindir/shardbench}
if [ -z "${SHARDGATE_BIN:-}" ]; then
	echo "==> building $SHARDGATE ($head_rev)"
	(cd "$src" && go build -o "$SHARDGATE" ./cmd/shardgate) # $src is . or $RAW/src, $SHARDGATE relative to . or absolute
else
	head_rev="$SHARDGATE_BIN (given)"
fi
if [ -z "${SHARDBENCH_BIN:-}" ]; then
	echo "==> building $SHARDBENCH"
	(cd "$src" && go build -o "$SHARDBENCH" ./cmd/shardbench)
fi

# Without -compression in this build, measure what can be measured.
notes=()
if ! "$SHARDGATE" -h 2>&1 | grep -q -- '-compression'; then
	echo "==> bin/shardgate has no -compression flag yet: shardgate runs without compression (partial report)"
	notes+=("PARTIAL: this build of shardgate has no -compression flag (permessage-deflate not implemented yet): shardgate-off is shardgate as built, declining every offer; shardgate-on could not run.")
	SYSTEMS=$(tr ' ' '\n' <<<"$SYSTEMS" | grep -v '^shardgate-on$' | tr '\n' ' ')
	shardgate_flags=()
	off_flags=()
else
	shardgate_flags=(-compression on)
	off_flags=(-compression off)
fi
SYSTEMS=$(echo $SYSTEMS)
echo "==> compare-compress.sh: $SYSTEMS, $ROUNDS round(s); report in $OUT.md; raw in $RAW"
echo "==> load before: $load_before"

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# server_pid, stop_server and the exit traps.
# shellcheck source=scripts/lib/server.sh
source scripts/lib/server.sh

base_cmd=("$SHARDGATE" -listen 127.0.0.1:8080 -admin 127.0.0.1:9090 -max-conns 20000 -log-level warn)
on_cmd=("${base_cmd[@]}" "${shardgate_flags[@]}")
off_cmd=("${base_cmd[@]}" "${off_flags[@]}")
centrifugo_cmd=(env COMPRESSION=1 scripts/bench-centrifugo.sh)

metrics_of() {
	case $1 in
	shardgate*) echo http://127.0.0.1:9090/metrics ;;
	centrifugo) echo http://127.0.0.1:9000/metrics ;;
	esac
}
target_of() {
	case $1 in
	shardgate*) echo shardgate ;;
	centrifugo) echo centrifugo ;;
	esac
}
server_cmd_of() {
	case $1 in
	shardgate-on) echo "${on_cmd[*]}" ;;
	shardgate-off) echo "${off_cmd[*]}" ;;
	centrifugo) echo "${centrifugo_cmd[*]}" ;;
	esac
}

# start SYSTEM LOG TIMEOUT: a fresh server, in the background, serving
# metrics within TIMEOUT seconds.
start() {
	local system=$1 log=$2 timeout=$3
	for port in 8080 9090 8000 9000; do
		for _ in $(seq 100); do busy "$port" || break; sleep 0.1; done
	done
	case $system in
	shardgate-on) "${on_cmd[@]}" >"$log" 2>&1 & ;;
	shardgate-off) "${off_cmd[@]}" >"$log" 2>&1 & ;;
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
	echo "==> Centrifugo: build if needed (the first build takes a few minutes) and a trial start with compression"
	start centrifugo "$RAW/centrifugo-build.log" 900 || {
		cat "$RAW/centrifugo-build.log" >&2
		exit 1
	}
	stop_server
fi

# busy_pct: how busy the machine's CPUs were over the next 2 s, in percent.
busy_pct() {
	local a b
	a=$(awk '/^cpu / {print $2+$3+$4+$6+$7+$8+$9, $5}' /proc/stat)
	sleep 2
	b=$(awk '/^cpu / {print $2+$3+$4+$6+$7+$8+$9, $5}' /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ");
		busy = y[1] - x[1]; idle = y[2] - x[2]; printf "%.0f", (busy + idle > 0) ? 100 * busy / (busy + idle) : 0 }'
}

# wait_quiet: wait until the machine is at most QUIET_MAX % busy (at most
# QUIET_WAIT s); sets quiet to the last sample.
wait_quiet() {
	local deadline=$((SECONDS + QUIET_WAIT)) said=
	while :; do
		quiet=$(busy_pct)
		[ "$quiet" -gt "$QUIET_MAX" ] || return 0
		if [ "$SECONDS" -ge "$deadline" ]; then
			echo "    machine still $quiet % busy after ${QUIET_WAIT}s: running anyway" >&2
			return 0
		fi
		[ -n "$said" ] || echo "    machine $quiet % busy (other work): waiting for at most $QUIET_MAX %" >&2
		said=1
	done
}

# secs 30s → 30
secs() { local d=${1%s}; echo "${d%.*}"; }
common=(-procs "$PROCS" -source-ips "$SOURCE_IPS")
fanout_args=(-conns "$CONNS" -channels 1 -rate "$RATE" -size "$SIZE" -payload json -duration "$DURATION" -wait 10s -compress)
idle_args=(-conns "$CONNS" -hold "$HOLD")
fanout_limit=$((120 + CONNS / 50 + 3 * $(secs "$DURATION")))
idle_limit=$((120 + CONNS / 50 + $(secs "$HOLD")))

manifest="$RAW/manifest.tsv"
printf 'system\tscenario\tround\tstatus\treport\tserver_command\tbench_command\tbusy_before_pct\n' >"$manifest"

# run SYSTEM SCENARIO NAME ROUND LIMIT ARGS...: a fresh server, one
# shardbench run (SCENARIO is shardbench's; NAME is the report's).
run() {
	local system=$1 scenario=$2 name=$3 round=$4 limit=$5
	shift 5
	local id="$system-$name-$round" status=ok rc quiet
	local bench=("$SHARDBENCH" "$scenario" -target "$(target_of "$system")" "${common[@]}" "$@" -json "$RAW/$id.json")
	wait_quiet
	echo "==> [$(date -u +%T)] $id (machine $quiet % busy before)"
	if ! start "$system" "$RAW/$id.server.log" 60; then
		status="failed: the server did not start"
	else
		set +e
		timeout --kill-after=10 "$limit" "${bench[@]}" >"$RAW/$id.txt" 2>&1
		rc=$?
		set -e
		if [ "$rc" -ne 0 ]; then
			status="failed: shardbench exit $rc: $(tail -n 1 "$RAW/$id.txt")"
			[ "$rc" -ne 124 ] || status="failed: timed out after $limit s"
		elif ! kill -0 "$server_pid" 2>/dev/null; then
			status="failed: the server exited during the run"
		fi
	fi
	stop_server
	[ "$status" = ok ] || echo "    $status"
	grep -E '^(compression|connections|delivered|latency|wire|server|server CPU) ' "$RAW/$id.txt" 2>/dev/null | sed 's/^/    /' || true
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$system" "$name" "$round" "$status" "$RAW/$id.json" \
		"$(server_cmd_of "$system")" "${bench[*]//$RAW/\$RAW}" "$quiet" >>"$manifest"
}

# idle runs: (system, name, extra shardbench flags)
idle_runs=()
if [ "$IDLE" != 0 ]; then
	if [[ " $SYSTEMS " == *" shardgate-on "* ]]; then
		idle_runs+=("shardgate-on idle-negotiated -compress" "shardgate-on idle-plain")
	elif [[ " $SYSTEMS " == *" shardgate-off "* ]]; then
		idle_runs+=("shardgate-off idle-plain")
	fi
	if [[ " $SYSTEMS " == *" centrifugo "* ]]; then
		idle_runs+=("centrifugo idle-negotiated -compress")
	fi
fi

read -r -a systems <<<"$SYSTEMS"
for round in $(seq "$ROUNDS"); do
	# Round r starts with system r-1 (mod the count): each system leads once.
	n=${#systems[@]}
	for i in $(seq 0 $((n - 1))); do
		system=${systems[$(((i + round - 1) % n))]}
		run "$system" fanout fanout "$round" "$fanout_limit" "${fanout_args[@]}"
	done
	m=${#idle_runs[@]}
	for i in $(seq 0 $((m - 1))); do
		[ "$m" -gt 0 ] || break
		read -r system name extra <<<"${idle_runs[$(((i + round - 1) % m))]}"
		# shellcheck disable=SC2086 # extra is one flag or none
		run "$system" connect "$name" "$round" "$idle_limit" "${idle_args[@]}" $extra
	done
done

load_after=$(uptime)
machine="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(go version | cut -d' ' -f3)"
centrifugo_version=
if [ -x bin/centrifugo ]; then
	centrifugo_version=$(go version -m bin/centrifugo 2>/dev/null | awk '$1 == "mod" { print $3; exit }')
fi

# The run's facts, for the report (and for --report on a kept directory).
NOTES=$(printf '%s\n' "${notes[@]+"${notes[@]}"}") python3 - "$RAW/meta.json" <<PY
import json, os, sys
json.dump({
    "command": """$invocation""",
    "started": "$started",
    "shardgate_commit": "$head_rev",
    "centrifugo": "$centrifugo_version",
    "machine": """$machine""",
    "load_before": """$load_before""".strip(),
    "load_after": """$load_after""".strip(),
    "rounds": $ROUNDS, "procs": $PROCS, "source_ips": "$SOURCE_IPS",
    "conns": $CONNS, "rate": $RATE, "size": $SIZE, "duration": "$DURATION", "hold": "$HOLD",
    "systems": "$SYSTEMS".split(),
    "shardgate_on": "${on_cmd[*]}", "shardgate_off": "${off_cmd[*]}",
    "centrifugo_command": "${centrifugo_cmd[*]}",
    "fanout": "shardbench fanout ${fanout_args[*]} ${common[*]}",
    "idle": "shardbench connect ${idle_args[*]} ${common[*]} [-compress]",
    "notes": [n for n in os.environ.get("NOTES", "").split("\n") if n],
}, open(sys.argv[1], "w"), indent=2)
PY
python3 scripts/lib/compress_report.py "$RAW" "$OUT"
cat "$OUT.md"
echo "==> report in $OUT.md and $OUT.json; raw reports and server logs in $RAW"
