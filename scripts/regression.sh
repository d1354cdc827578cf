#!/usr/bin/env bash
# scripts/regression.sh — this build of shardgate against an earlier one, in
# one run on one machine, so that the two can be compared (timings are
# noisy across runs, not within one):
#
#   connect   19,000 idle connections held 5 s: RSS per connection
#   fanout    15,000 subscribers of one channel, 256-byte messages at 10/s
#             for 30 s: server CPU per delivery
#
# The builds alternate (base, head, base, head, ...) for ROUNDS rounds, a
# fresh server process for every run, and the medians are compared. The
# report, with the commands, goes to bench/results/<date>-regression.md.
#
# Knobs (environment):
#   BASE=a811ab9   the earlier build (any git revision)
#   ROUNDS=3       rounds of (base, head)
#   PROCS=2        shardbench worker processes
#   OUT=file       the report (default bench/results/<date>-regression.md)
#   CONNECT_CONNS=19000 FANOUT_CONNS=15000 FANOUT_DURATION=30s   sizes (smaller for a smoke test)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="$PATH:/usr/local/go/bin"
fi

BASE=${BASE:-a811ab9}
ROUNDS=${ROUNDS:-3}
PROCS=${PROCS:-2}
OUT=${OUT:-bench/results/$(date -u +%F)-regression.md}
RAW=$(mktemp -d "${TMPDIR:-/tmp}/shardgate-regression.XXXXXX")
head_rev=$(git rev-parse --short HEAD)
base_rev=$(git rev-parse --short "$BASE")
dirty=
[ -z "$(git status --porcelain --untracked-files=no)" ] || dirty=" (with uncommitted changes)"

echo "==> building bin/shardgate ($head_rev$dirty), bin/shardgate-base ($base_rev), bin/shardbench"
mkdir -p bin
go build -o bin/shardgate ./cmd/shardgate
go build -o bin/shardbench ./cmd/shardbench
worktree="$RAW/base-src"
git worktree add --detach -q "$worktree" "$BASE"
(cd "$worktree" && go build -o "$OLDPWD/bin/shardgate-base" ./cmd/shardgate)
git worktree remove --force "$worktree"

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# server_pid, stop_server and the exit traps.
# shellcheck source=scripts/lib/server.sh
source scripts/lib/server.sh

# run BUILD SCENARIO NAME ARGS...: a fresh server of BUILD, one shardbench run.
run() {
	local build=$1 scenario=$2 name=$3
	shift 3
	local bin=bin/shardgate
	[ "$build" = head ] || bin=bin/shardgate-base
	"$bin" -listen 127.0.0.1:8080 -admin 127.0.0.1:9090 -max-conns 20000 -log-level warn >"$RAW/$name.server.log" 2>&1 &
	server_pid=$!
	for _ in $(seq 100); do
		curl -sf http://127.0.0.1:9090/readyz >/dev/null 2>&1 && break
		sleep 0.1
	done
	echo "==> $name"
	bin/shardbench "$scenario" -target shardgate -procs "$PROCS" "$@" -json "$RAW/$name.json" >"$RAW/$name.txt" 2>&1 ||
		echo "    shardbench failed: $(tail -n 1 "$RAW/$name.txt")"
	stop_server
}

connect_args=(-conns "${CONNECT_CONNS:-19000}" -hold 5s)
fanout_args=(-conns "${FANOUT_CONNS:-15000}" -channels 1 -rate 10 -size 256 -duration "${FANOUT_DURATION:-30s}" -wait 10s)
for round in $(seq "$ROUNDS"); do
	for build in base head; do
		run "$build" connect "$build-connect-$round" "${connect_args[@]}"
		run "$build" fanout "$build-fanout-$round" "${fanout_args[@]}"
	done
done

python3 - "$RAW" "$ROUNDS" "${CONNECT_CONNS:-19000}" "${FANOUT_CONNS:-15000}" >"$RAW/table.md" <<'PY'
import json, statistics, sys
raw, rounds, cconns, fconns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def load(name):
    try:
        with open(f"{raw}/{name}.json") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
def rss_per_conn(r):
    return r["server"]["rss_per_conn_bytes"] if r and r.get("server") else None
def cpu_per_delivery(r):
    return r["fanout"]["server_cpu_per_delivery_us"] if r and r.get("fanout") else None
def delivered(r):
    return r["fanout"]["delivered_pct"] if r and r.get("fanout") else None
rows = {b: {"rss": [], "cpu": [], "pct": []} for b in ("base", "head")}
print(f"| round | build | RSS per idle connection ({cconns:,}) | server CPU per delivery ({fconns:,} subs) | delivered |")
print("|---:|---|---:|---:|---:|")
for i in range(1, rounds + 1):
    for b in ("base", "head"):
        rss, cpu = rss_per_conn(load(f"{b}-connect-{i}")), cpu_per_delivery(load(f"{b}-fanout-{i}"))
        pct = delivered(load(f"{b}-fanout-{i}"))
        if rss is not None: rows[b]["rss"].append(rss)
        if cpu is not None: rows[b]["cpu"].append(cpu)
        print(f"| {i} | {b} | {rss if rss is not None else 'failed'} B | {cpu if cpu is not None else 'failed'} µs | {pct if pct is not None else '-'} % |")
print()
med = {b: {k: (statistics.median(v) if v else None) for k, v in rows[b].items() if k != "pct"} for b in rows}
print("| median | base | head | head ÷ base |")
print("|---|---:|---:|---:|")
for k, label, unit in (("rss", "RSS per idle connection", "B"), ("cpu", "server CPU per delivery", "µs")):
    b, h = med["base"][k], med["head"][k]
    ratio = f"{h / b:.3f}" if b and h else "-"
    print(f"| {label} | {b} {unit} | {h} {unit} | {ratio} |")
h_rss, b_cpu, h_cpu = med["head"]["rss"], med["base"]["cpu"], med["head"]["cpu"]
print()
if h_rss is not None:
    print(f"- RSS per idle connection at {cconns:,}: {h_rss / 1024:.3f} KiB (target: at most 0.6 KiB): {'met' if h_rss <= 0.6 * 1024 else 'MISSED'}")
if b_cpu and h_cpu:
    print(f"- CPU per delivery, head ÷ base: {h_cpu / b_cpu:.3f} (target: within 10 %): {'met' if h_cpu <= 1.1 * b_cpu else 'MISSED'}")
PY

{
	echo "# Regression check: $head_rev$dirty against $base_rev"
	echo
	echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(go version | cut -d' ' -f3); load generator on the same cores."
	echo
	echo "Command: \`BASE=$BASE ROUNDS=$ROUNDS PROCS=$PROCS scripts/regression.sh\` ($(date -u '+%F %H:%M UTC'))."
	echo "Each run: a fresh \`shardgate -max-conns 20000\` of one build, then"
	echo "\`shardbench connect -procs $PROCS ${connect_args[*]}\` or"
	echo "\`shardbench fanout -procs $PROCS ${fanout_args[*]}\`; builds alternate."
	echo
	cat "$RAW/table.md"
} >"$OUT"
cat "$OUT"
echo "==> report in $OUT; raw reports in $RAW"
