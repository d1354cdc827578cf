#!/usr/bin/env bash
# scripts/bench-gorillahub.sh — build and run the gorillahub comparison peer
# (bench/peers/gorillahub: gorilla/websocket, a hub goroutine, a reader and a
# writer goroutine per connection) in the foreground.
#
#   WebSocket  :8090/ws           shardbench -target gorillahub finds it there
#   admin      127.0.0.1:9190     GET /metrics, POST /api/publish
#
# Extra arguments go to gorillahub (e.g. -listen 127.0.0.1:8091 -admin
# 127.0.0.1:9191). Ctrl-C or SIGTERM closes every connection and exits.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="$PATH:/usr/local/go/bin"
fi

mkdir -p bin
echo "==> building bin/gorillahub" >&2
go build -o bin/gorillahub ./bench/peers/gorillahub

# Every connection is a file descriptor: take the whole hard limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec bin/gorillahub "$@"
