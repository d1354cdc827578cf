#!/usr/bin/env bash
# scripts/compare.sh — the full comparison of issue 3: builds shardgate,
# shardbench, the gorillahub and Centrifugo peers and bench/floor, then runs
# the same scenarios against each system in turn on this machine, a fresh
# server process for every run, and writes
#
#   bench/results/<date>-<host>.md     tables, ratios shardgate ÷ peer, the
#                                      figures read against the floor, pass or
#                                      miss against issue 3's targets
#   bench/results/<date>-<host>/*.svg  charts (linked from the .md)
#   bench/results/<date>-<host>/raw/   every shardbench JSON report and table,
#                                      server logs, the floor results
#
# The runs, per system (shardgate, gorillahub, centrifugo):
#   connect   19,000 idle connections held 5 s (RSS per connection, goroutines, upgrades/s)
#   fanout    15,000 subscribers of one channel, 256-byte messages at 10/s for 30 s
#   echo      1,000 connections for 10 s (shardgate with -client-rate 0: no per-client limit)
#   sweep     subscribers 1,000 2,000 3,000 5,000 10,000 19,000 × rate 1 10 20 50 100 /s, 8 s each; at a
#             subscriber count the rate stops rising once a point is not sustained
#             (100 % delivered and p99 < 100 ms; the rule is `bin/compare check`)
# then shardgate's -shards sweep (1 2 4 8 16) on the fanout and connect runs, and
# bench/floor at the start and at the end. A run that fails (a server that does not
# start, a shardbench error or time-out) is recorded as failed and the
# comparison goes on. Full run: 11 minutes on the 2-core machine of
# bench/results/2026-11-25-vm.md. An estimate is printed first; where the
# systems sustain more sweep points the sweep takes longer (at most 16 points
# per system, each stopped at SWEEP_LIMIT, 59 s).
#
# Knobs (environment):
#   QUICK=1         tiny sizes, a smoke test of the whole pipeline in ~2 minutes; its
#                   results go to RESULTS (default ${TMPDIR:-/tmp}/shardgate-compare-quick)
#   SYSTEMS="shardgate gorillahub centrifugo"   the systems to run, in this order
#   SKIP_SWEEP=1    no saturation sweep        SKIP_SHARDS=1   no -shards sweep
#   SHARDS="1 2 4 8 16"   the -shards values of the -shards sweep (on a bigger host: "4 8 16 32")
#   PROCS=2         shardbench worker processes (each under the open-file limit)
#   RESULTS=dir     where the results go (default bench/results)
#
# The servers use their default ports, which must be free: shardgate :8080 and
# 127.0.0.1:9090, gorillahub :8090 and 127.0.0.1:9190, Centrifugo 127.0.0.1:8000
# and 127.0.0.1:9000. Every server this script starts is stopped when it exits.
# Regenerate a results file from a kept run directory (after adding notes.md):
#   bin/compare report -dir bench/results/<date>-<host>
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="$PATH:/usr/local/go/bin"
fi

started=$SECONDS
QUICK=${QUICK:-}
SYSTEMS=${SYSTEMS:-shardgate gorillahub centrifugo}
SKIP_SWEEP=${SKIP_SWEEP:-}
SKIP_SHARDS=${SKIP_SHARDS:-}
PROCS=${PROCS:-2}

if [ -n "$QUICK" ]; then
	RESULTS=${RESULTS:-${TMPDIR:-/tmp}/shardgate-compare-quick}
	CONNECT_CONNS=300 CONNECT_HOLD=1
	FANOUT_CONNS=300 FANOUT_RATE=10 FANOUT_DURATION=2 FANOUT_WAIT=5
	ECHO_CONNS=50 ECHO_DURATION=2
	SWEEP_SUBS="100 300" SWEEP_RATES="1 10 50" SWEEP_DURATION=2 SWEEP_WAIT=3
	SHARDS_LIST=${SHARDS:-1 2 4}
	FLOOR_ARGS=(-conns 100 -duration 1s)
else
	RESULTS=${RESULTS:-bench/results}
	CONNECT_CONNS=19000 CONNECT_HOLD=5
	FANOUT_CONNS=15000 FANOUT_RATE=10 FANOUT_DURATION=30 FANOUT_WAIT=10
	ECHO_CONNS=1000 ECHO_DURATION=10
	SWEEP_SUBS="1000 2000 3000 5000 10000 19000" SWEEP_RATES="1 10 20 50 100" SWEEP_DURATION=8 SWEEP_WAIT=5
	SHARDS_LIST=${SHARDS:-1 2 4 8 16}
	FLOOR_ARGS=()
fi
SIZE=256

for system in $SYSTEMS; do
	case $system in
	shardgate | gorillahub | centrifugo) ;;
	*)
		echo "compare.sh: unknown system $system in SYSTEMS (shardgate, gorillahub, centrifugo)" >&2
		exit 2
		;;
	esac
done

name="$(date -u +%F)-$(hostname -s)"
OUT="$RESULTS/$name"
RAW="$OUT/raw"
MANIFEST="$OUT/manifest.tsv"
# A rerun on the same day replaces the run's outputs; a hand-written
# notes.md stays.
rm -rf "$RAW" "$MANIFEST" "$OUT"/*.svg
mkdir -p "$RAW" bin

# --- the plan and its time estimate -------------------------------------

# Time limits of one shardbench run, in seconds. A server that cannot keep
# up makes the publisher fall behind (the peers answer a publish only once
# it is fanned out), which stretches a run: the main fan-out gets room for
# that, a sweep point that overruns its limit is not sustained anyway.
CONNECT_LIMIT=$((CONNECT_HOLD + 120))
FANOUT_LIMIT=$((4 * FANOUT_DURATION + FANOUT_WAIT + 60))
ECHO_LIMIT=$((ECHO_DURATION + 120))
SWEEP_LIMIT=$((30 + 3 * SWEEP_DURATION + SWEEP_WAIT))

# est CONNS SECONDS: a run's usual wall time: server start and stop,
# connecting (about 5,000 upgrades/s here) and the measured phase.
est() { echo $((3 + $1 / 5000 + $2)); }
nsys=0
for _ in $SYSTEMS; do nsys=$((nsys + 1)); done
# The peers' fan-out runs take about twice their duration (publishes late).
estimate=$((30 + nsys * ($(est "$CONNECT_CONNS" "$CONNECT_HOLD") + $(est "$FANOUT_CONNS" "$((2 * FANOUT_DURATION))") + $(est "$ECHO_CONNS" "$ECHO_DURATION"))))
if [ -z "$SKIP_SWEEP" ]; then
	# On 2 cores fewer than half of the points run: each system
	# saturates early at the larger subscriber counts. A point that
	# overruns stops at SWEEP_LIMIT.
	point_time=0
	for subs in $SWEEP_SUBS; do
		for _ in $SWEEP_RATES; do
			point_time=$((point_time + $(est "$subs" "$((SWEEP_DURATION + SWEEP_WAIT))")))
		done
	done
	estimate=$((estimate + nsys * point_time * 2 / 5))
fi
if [ -z "$SKIP_SHARDS" ] && [[ " $SYSTEMS " == *" shardgate "* ]]; then
	for _ in $SHARDS_LIST; do
		estimate=$((estimate + $(est "$FANOUT_CONNS" "$((FANOUT_DURATION + 2))") + $(est "$CONNECT_CONNS" "$CONNECT_HOLD")))
	done
fi
echo "==> compare.sh: systems: $SYSTEMS; results in $RESULTS/$name.md"
echo "==> estimated wall time: about $((estimate / 60)) min (Centrifugo's first build adds a few minutes)"

# --- build ----------------------------------------------------------------

echo "==> building bin/shardgate bin/shardbench bin/gorillahub bin/floor bin/compare"
go build -o bin/shardgate ./cmd/shardgate
go build -o bin/shardbench ./cmd/shardbench
go build -o bin/gorillahub ./bench/peers/gorillahub
go build -o bin/floor ./bench/floor
go build -o bin/compare ./bench/compare

# --- servers ----------------------------------------------------------------

ports_of() {
	case $1 in
	shardgate) echo 8080 9090 ;;
	gorillahub) echo 8090 9190 ;;
	centrifugo) echo 8000 9000 ;;
	esac
}
metrics_of() {
	case $1 in
	shardgate) echo http://127.0.0.1:9090/metrics ;;
	gorillahub) echo http://127.0.0.1:9190/metrics ;;
	centrifugo) echo http://127.0.0.1:9000/metrics ;;
	esac
}
# server_cmd SYSTEM: the command that starts SYSTEM in the foreground.
server_cmd() {
	case $1 in
	shardgate) echo bin/shardgate ;;
	gorillahub) echo bin/gorillahub ;;
	centrifugo) echo scripts/bench-centrifugo.sh ;;
	esac
}

busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for system in $SYSTEMS; do
	for port in $(ports_of "$system"); do
		if busy "$port"; then
			echo "compare.sh: port $port ($system) is already in use; stop whatever holds it first" >&2
			exit 1
		fi
	done
done

# Every connection is a file descriptor: take the whole hard limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# server_pid, stop_server and the exit traps.
# shellcheck source=scripts/lib/server.sh
source scripts/lib/server.sh
start_error=

# start_server SYSTEM LOG TIMEOUT COMMAND... starts a server in the
# background, its output in LOG, and waits up to TIMEOUT seconds until it
# serves metrics. On failure it stops what it started, sets start_error and
# returns 1.
start_server() {
	local system=$1 log=$2 timeout=$3 metrics
	shift 3
	metrics=$(metrics_of "$system")
	for port in $(ports_of "$system"); do
		for _ in $(seq 100); do busy "$port" || break; sleep 0.1; done
	done
	"$@" >"$log" 2>&1 &
	server_pid=$!
	local deadline=$((SECONDS + timeout))
	while [ "$SECONDS" -lt "$deadline" ]; do
		if curl -sf -o /dev/null "$metrics"; then
			return 0
		fi
		if ! kill -0 "$server_pid" 2>/dev/null; then
			wait "$server_pid" 2>/dev/null || true
			server_pid=
			start_error="$system exited at start: $(tail -n 1 "$log" | tr '\t' ' ')"
			return 1
		fi
		sleep 0.1
	done
	stop_server
	start_error="$system did not serve $metrics within $timeout s"
	return 1
}

# Systems that cannot run at all (Centrifugo not buildable), with why.
declare -A unavailable=()

if [[ " $SYSTEMS " == *" centrifugo "* ]]; then
	echo "==> building and trying Centrifugo (scripts/bench-centrifugo.sh; the first build takes a few minutes)"
	if start_server centrifugo "$RAW/centrifugo-build.log" 900 scripts/bench-centrifugo.sh; then
		stop_server
	else
		unavailable[centrifugo]="not available: $start_error"
		echo "compare.sh: Centrifugo is not available, its runs are recorded as failed: $start_error" >&2
	fi
fi

# --- the manifest -------------------------------------------------------------

# The invocation, with the knobs that differ from their defaults.
invocation="scripts/compare.sh"
[ -z "$SKIP_SHARDS" ] || invocation="SKIP_SHARDS=1 $invocation"
[ -z "$SKIP_SWEEP" ] || invocation="SKIP_SWEEP=1 $invocation"
[ "$PROCS" = 2 ] || invocation="PROCS=$PROCS $invocation"
[ -z "${SHARDS:-}" ] || invocation="SHARDS=\"$SHARDS\" $invocation"
[ "$SYSTEMS" = "shardgate gorillahub centrifugo" ] || invocation="SYSTEMS=\"$SYSTEMS\" $invocation"
[ -z "$QUICK" ] || invocation="QUICK=1 $invocation"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain 2>/dev/null)" ]; then
	commit="$commit with uncommitted changes"
fi
centrifugo_version=
if [[ " $SYSTEMS " == *" centrifugo "* ]] && [ -x bin/centrifugo ]; then
	centrifugo_version="$(go version -m bin/centrifugo 2>/dev/null | awk '$1 == "mod" { print $3; exit }')"
fi
{
	echo "# date: $(date -u +%F)"
	echo "# started: $(date -u '+%F %T UTC')"
	echo "# invocation: $invocation"
	echo "# shardgate commit: $commit"
	[ -z "$centrifugo_version" ] || echo "# Centrifugo: $centrifugo_version (in-memory engine, bench/peers/centrifugo/config.json)"
	echo "# load generator: shardbench, -procs $PROCS worker processes (1 for echo), source addresses 127.0.0.2-127.0.0.9, on the same cores as the server"
	echo "# floor command: bin/floor ${FLOOR_ARGS[*]} -json $RAW/floor-{start,end}.json"
	printf 'group\tsystem\tscenario\tshards\tconns\trate\tstatus\treport\tserver_command\tbench_command\n'
} >"$MANIFEST"

last_status=
runs_done=0
# run_bench GROUP SYSTEM SCENARIO SHARDS CONNS RATE NAME LIMIT SERVER_ARGS SHARDBENCH_ARGS...
# starts a fresh SYSTEM server (with SERVER_ARGS), runs shardbench SCENARIO
# against it for at most LIMIT seconds, stops the server and adds a
# manifest line. It never fails the script: a failure is recorded in the
# manifest and in last_status.
run_bench() {
	local group=$1 system=$2 scenario=$3 shards=$4 conns=$5 rate=$6 name=$7 limit=$8 server_args=$9
	shift 9
	local json="raw/$name.json" status=ok rc
	local server
	server="$(server_cmd "$system")${server_args:+ $server_args}"
	local bench="bin/shardbench $scenario -target $system $* -json $OUT/$json"
	runs_done=$((runs_done + 1))
	echo
	echo "==> [$runs_done, $(((SECONDS - started) / 60)) min] $system $scenario: $name"
	rm -f "$OUT/$json"
	# $server and $bench are split into words on purpose: they are the
	# commands as recorded in the manifest, and hold no quoted arguments.
	# shellcheck disable=SC2086
	if [ -n "${unavailable[$system]:-}" ]; then
		status="failed: ${unavailable[$system]}"
	elif ! start_server "$system" "$RAW/$name.server.log" 60 $server; then
		status="failed: $start_error"
	else
		set +e
		timeout --kill-after=10 "$limit" $bench 2>&1 | tee "$RAW/$name.txt"
		rc=${PIPESTATUS[0]}
		set -e
		if [ "$rc" -ne 0 ]; then
			local why
			why="$(grep -m1 '^shardbench: ' "$RAW/$name.txt" | tr '\t' ' ' || true)"
			[ "$rc" -ne 124 ] || why="timed out after $limit s"
			status="failed: shardbench exit $rc${why:+: $why}"
		elif ! kill -0 "$server_pid" 2>/dev/null; then
			status="failed: the server exited during the run (see raw/$name.server.log)"
		fi
	fi
	stop_server
	[ -f "$OUT/$json" ] || json=
	[ "$status" = ok ] || echo "==> $status"
	last_status=$status
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$group" "$system" "$scenario" "${shards:--}" "$conns" "${rate:--}" \
		"$status" "$json" "$server" "$bench" >>"$MANIFEST"
}

# --- the runs -----------------------------------------------------------------

echo
echo "==> floor (start)"
bin/floor "${FLOOR_ARGS[@]}" -json "$RAW/floor-start.json" || echo "compare.sh: the floor run failed" >&2

for system in $SYSTEMS; do
	# shardgate's echo runs without its per-connection request limit
	# (-client-rate 0), so it measures the gateway, not the limiter.
	echo_args=
	[ "$system" != shardgate ] || echo_args="-client-rate 0"

	run_bench main "$system" connect "" "$CONNECT_CONNS" "" "$system-connect" "$CONNECT_LIMIT" "" \
		-conns "$CONNECT_CONNS" -hold "${CONNECT_HOLD}s" -procs "$PROCS"
	run_bench main "$system" fanout "" "$FANOUT_CONNS" "$FANOUT_RATE" "$system-fanout" "$FANOUT_LIMIT" "" \
		-conns "$FANOUT_CONNS" -channels 1 -rate "$FANOUT_RATE" -size "$SIZE" -duration "${FANOUT_DURATION}s" -wait "${FANOUT_WAIT}s" -procs "$PROCS"
	run_bench main "$system" echo "" "$ECHO_CONNS" "" "$system-echo" "$ECHO_LIMIT" "$echo_args" \
		-conns "$ECHO_CONNS" -duration "${ECHO_DURATION}s" -procs 1

	[ -z "$SKIP_SWEEP" ] || continue
	for subs in $SWEEP_SUBS; do
		for rate in $SWEEP_RATES; do
			point="$system-sweep-$subs-$rate"
			run_bench sweep "$system" fanout "" "$subs" "$rate" "$point" "$SWEEP_LIMIT" "" \
				-conns "$subs" -channels 1 -rate "$rate" -size "$SIZE" -duration "${SWEEP_DURATION}s" -wait "${SWEEP_WAIT}s" -procs "$PROCS"
			[ "$last_status" = ok ] || break
			if ! verdict="$(bin/compare check "$RAW/$point.json")"; then
				echo "==> $verdict: no higher rate at $subs subscribers"
				break
			fi
			echo "==> $verdict"
		done
	done
done

if [ -z "$SKIP_SHARDS" ] && [[ " $SYSTEMS " == *" shardgate "* ]]; then
	for shards in $SHARDS_LIST; do
		run_bench shards shardgate fanout "$shards" "$FANOUT_CONNS" "$FANOUT_RATE" "shardgate-shards-$shards-fanout" \
			"$FANOUT_LIMIT" "-shards $shards" \
			-conns "$FANOUT_CONNS" -channels 1 -rate "$FANOUT_RATE" -size "$SIZE" -duration "${FANOUT_DURATION}s" -wait "${FANOUT_WAIT}s" -procs "$PROCS"
		run_bench shards shardgate connect "$shards" "$CONNECT_CONNS" "" "shardgate-shards-$shards-connect" \
			"$CONNECT_LIMIT" "-shards $shards" \
			-conns "$CONNECT_CONNS" -hold "${CONNECT_HOLD}s" -procs "$PROCS"
	done
fi

echo
echo "==> floor (end)"
bin/floor "${FLOOR_ARGS[@]}" -json "$RAW/floor-end.json" || echo "compare.sh: the floor run failed" >&2

wall=$((SECONDS - started))
echo "# wall time: $((wall / 60)) min $((wall % 60)) s ($runs_done runs)" >>"$MANIFEST"
bin/compare machine "$OUT/machine.json"
bin/compare report -dir "$OUT" -md "$RESULTS/$name.md"
echo "==> done in $((wall / 60)) min $((wall % 60)) s: $RESULTS/$name.md, charts and raw reports in $OUT/"
