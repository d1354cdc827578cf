# scripts/lib/server.sh — sourced by the benchmark scripts (compare.sh,
# regression.sh): one way to stop the server a script started.
#
# server_pid holds the pid of the server the script started, or is empty.
server_pid=

# stop_server stops the server this script started, if any: SIGTERM, then
# SIGKILL if it has not exited after 20 s (shardgate drains its clients
# first, but shardbench has closed them by then; an overloaded peer can
# take longer to wind down its queues).
stop_server() {
	[ -n "$server_pid" ] || return 0
	kill -TERM "$server_pid" 2>/dev/null || true
	for _ in $(seq 200); do
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$server_pid" 2>/dev/null || true
	wait "$server_pid" 2>/dev/null || true
	server_pid=
}
trap stop_server EXIT
trap 'exit 130' INT TERM
