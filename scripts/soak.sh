#!/usr/bin/env bash
# scripts/soak.sh — proves a build before a rollout: builds bin/shardgate
# and bin/shardbench from this tree, starts a fresh gateway on loopback
# ports the kernel picks, runs `shardbench soak` against it, and writes the
# report, the exact commands and the gateway's exit to
# bench/results/<date>-soak.md (and the JSON report next to it).
#
#   scripts/soak.sh                               15,000 subscribers, 30 minutes, churn 20/s
#   scripts/soak.sh -conns 3000 -duration 2m      any `shardbench soak` flag; later ones win
#
# Exit status: shardbench's (0 PASS, 3 FAIL, 1 the run could not be
# carried out, 2 bad arguments), or 4 when the soak passed but the gateway
# did not shut down cleanly (SIGTERM, exit 0) afterwards.
#
# The open-file limit is raised to its hard limit, no further: on machines
# that cap it (20,000 here) the gateway holds every connection under it
# (-max-conns is set from -conns), and shardbench spreads the clients over
# PROCS worker processes (default 2) and source addresses 127.0.0.2-9.
#
# Environment: SHARDS (gateway -shards, default 2), PROCS, GATEWAY_ARGS
# (more shardgate flags), OUT (results directory, default bench/results).
# `shardbench soak -h` describes the scenario and its verdict.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="$PATH:/usr/local/go/bin"
fi

SHARDS=${SHARDS:-2}
PROCS=${PROCS:-2}
GATEWAY_ARGS=${GATEWAY_ARGS:-}
OUT=${OUT:-bench/results}
defaults=(-conns 15000 -duration 30m -churn 20 -procs "$PROCS" -source-ips 127.0.0.2-127.0.0.9)

# given NAME: whether the arguments set flag -NAME.
given() {
	local a
	for a in "${@:2}"; do
		case $a in -"$1" | --"$1" | -"$1"=* | --"$1"=*) return 0 ;; esac
	done
	return 1
}
# The defaults the arguments do not set, then the arguments.
args=()
for ((i = 0; i < ${#defaults[@]}; i += 2)); do
	given "${defaults[i]#-}" "$@" || args+=("${defaults[i]}" "${defaults[i + 1]}")
done
args+=("$@")

# The connections asked for (the last -conns wins, as in shardbench) size
# the gateway's -max-conns: the steady ones, plus room for the churn.
conns=15000
for ((i = 0; i < ${#args[@]}; i++)); do
	case ${args[i]} in
	-conns | --conns) conns=${args[i + 1]:-$conns} ;;
	-conns=* | --conns=*) conns=${args[i]#*=} ;;
	esac
done
if ! [[ $conns =~ ^[0-9]+$ ]]; then
	echo "soak.sh: -conns $conns is not a number" >&2
	exit 2
fi

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nofile=$(ulimit -n)
max_conns=$((conns + 2000))
if [ "$nofile" != unlimited ] && [ "$max_conns" -gt $((nofile - 200)) ]; then
	max_conns=$((nofile - 200))
fi
if [ "$conns" -gt "$max_conns" ]; then
	echo "soak.sh: $conns connections do not fit under the gateway's open-file limit of $nofile" >&2
	exit 2
fi

echo "==> building bin/shardgate bin/shardbench"
mkdir -p bin "$OUT"
go build -o bin/shardgate ./cmd/shardgate
go build -o bin/shardbench ./cmd/shardbench

work=$(mktemp -d "${TMPDIR:-/tmp}/soak.XXXXXX")
gw_pid=
mon_pid=
stop_all() {
	if [ -n "$mon_pid" ]; then
		kill "$mon_pid" 2>/dev/null || true
		wait "$mon_pid" 2>/dev/null || true
		mon_pid=
	fi
	if [ -n "$gw_pid" ]; then
		kill -TERM "$gw_pid" 2>/dev/null || true
		wait "$gw_pid" 2>/dev/null || true
		gw_pid=
	fi
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# The kernel picks both ports; the gateway logs the addresses it got.
# shellcheck disable=SC2206 # GATEWAY_ARGS is a list of flags
gw_cmd=(bin/shardgate -listen 127.0.0.1:0 -admin 127.0.0.1:0 -shards "$SHARDS" -max-conns "$max_conns"
	-log-format text $GATEWAY_ARGS)
"${gw_cmd[@]}" >"$work/shardgate.log" 2>&1 &
gw_pid=$!
ws= admin=
for _ in $(seq 100); do
	line=$(grep -m1 'msg="shardgate listening"' "$work/shardgate.log" || true)
	if [ -n "$line" ]; then
		ws=$(sed -n 's/.* ws=\([^ ]*\).*/\1/p' <<<"$line")
		admin=$(sed -n 's/.* admin=\([^ ]*\).*/\1/p' <<<"$line")
		break
	fi
	if ! kill -0 "$gw_pid" 2>/dev/null; then
		echo "soak.sh: shardgate exited at start; its log:" >&2
		cat "$work/shardgate.log" >&2
		exit 1
	fi
	sleep 0.1
done
if [ -z "$ws" ] || [ -z "$admin" ] || ! curl -fs -o /dev/null "http://$admin/readyz"; then
	echo "soak.sh: shardgate did not come up within 10 s; its log:" >&2
	cat "$work/shardgate.log" >&2
	exit 1
fi
echo "==> shardgate pid $gw_pid: ws://$ws, admin http://$admin, -shards $SHARDS, -max-conns $max_conns"

# A line a minute on stderr, so that a long run shows it is alive (the
# report, on a pipe here, has no progress line).
monitor() {
	local t0=$SECONDS
	trap 'kill $! 2>/dev/null; exit 0' TERM
	while :; do
		sleep 60 &
		wait $!
		curl -fs "http://$admin/metrics" 2>/dev/null | awk -v m=$(((SECONDS - t0) / 60)) '
			/^shardgate_connections\{/ { c += $2 }
			/^process_open_fds / { f = $2 }
			/^go_goroutines / { g = $2 }
			/^process_resident_memory_bytes / { r = $2 }
			END { printf "[%3d min] gateway: %d connections, %d fds, %d goroutines, RSS %.1f MiB\n", m, c, f, g, r / 1048576 }' >&2 || true
	done
}
monitor &
mon_pid=$!

date=$(date -u +%Y-%m-%d)
base="$OUT/$date-soak"
[ -e "$base.md" ] && base="$OUT/$date-$(date -u +%H%M%S)-soak"
bench_cmd=(bin/shardbench soak -url "ws://$ws" -admin-url "http://$admin" "${args[@]}" -json "$base.json")
echo "==> ${bench_cmd[*]}"
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
status=0
"${bench_cmd[@]}" 2>&1 | tee "$work/report.txt" || status=${PIPESTATUS[0]}
kill "$mon_pid" 2>/dev/null || true
wait "$mon_pid" 2>/dev/null || true
mon_pid=

# The gateway must still be up, and must shut down cleanly.
gw_status="not running at the end of the soak"
if kill -0 "$gw_pid" 2>/dev/null; then
	kill -TERM "$gw_pid"
	gw_exit=0
	wait "$gw_pid" || gw_exit=$?
	gw_status="exit status $gw_exit after SIGTERM"
	[ "$gw_exit" -ne 0 ] && [ "$status" -eq 0 ] && status=4
else
	wait "$gw_pid" 2>/dev/null || true
	[ "$status" -eq 0 ] && status=4
fi
gw_pid=

case $status in
0) verdict="PASS" ;;
3) verdict="FAIL (the soak's verdict)" ;;
4) verdict="FAIL (shardgate: $gw_status)" ;;
*) verdict="ERROR: shardbench exited with status $status" ;;
esac

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	commit="$commit (with uncommitted changes)"
fi
{
	echo "# Soak $started: $verdict"
	echo
	echo "Build: commit $commit, $(go version | awk '{print $3}'), $(uname -sr), $(nproc) CPUs, open-file limit $nofile."
	echo
	echo "Gateway: $gw_status."
	echo
	echo '```'
	echo "${gw_cmd[*]}"
	echo "${bench_cmd[*]}"
	echo '```'
	echo
	echo "Report (JSON: $(basename "$base.json")):"
	echo
	echo '```'
	cat "$work/report.txt"
	echo '```'
	if grep -qE 'level=(WARN|ERROR)' "$work/shardgate.log"; then
		echo
		echo "Gateway warnings and errors (last 20):"
		echo
		echo '```'
		grep -E 'level=(WARN|ERROR)' "$work/shardgate.log" | tail -n 20
		echo '```'
	fi
} >"$base.md"
rm -rf "$work"

echo "==> $verdict; results in $base.md"
exit "$status"
