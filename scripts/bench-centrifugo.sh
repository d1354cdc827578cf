#!/usr/bin/env bash
# scripts/bench-centrifugo.sh — build (once) and run the Centrifugo comparison
# peer in the foreground, with bench/peers/centrifugo/config.json:
#
#   WebSocket  127.0.0.1:8000/connection/websocket   JSON client protocol, HS256 JWT
#   internal   127.0.0.1:9000                        POST /api/publish (X-API-Key), GET /metrics
#
# shardbench -target centrifugo finds it there with no further flags: the
# adapter (bench/target/centrifugo.go) signs its connection JWT with the
# config's HMAC secret and publishes with its API key.
#
# Centrifugo is built from the Go module proxy with go install into bin/,
# only when bin/centrifugo is missing or was built from another version
# (CENTRIFUGO_VERSION, default below; the first build takes a few minutes).
# Extra arguments go to centrifugo (e.g. --http_server.port 8001). The exec
# leaves centrifugo as this process, so a caller that backgrounds the script
# can stop it with a signal to $!.
#
# TLS: with TLS_CERT=FILE and TLS_KEY=FILE (PEM) the WebSocket port speaks
# TLS only (wss://127.0.0.1:8000/connection/websocket; shardbench -ca or
# -insecure), set through Centrifugo v6's environment variables for
# http_server.tls.{enabled,cert_pem,key_pem}; http_server.tls_external keeps
# the internal port (API, metrics) on plain HTTP, as shardgate's admin port
# stays plain with -tls-cert.
#
# Compression: with COMPRESSION=1 the WebSocket endpoint accepts
# permessage-deflate offers (v6's websocket.compression, set through
# CENTRIFUGO_WEBSOCKET_COMPRESSION), compressing messages of at least
# COMPRESSION_MIN_SIZE bytes (default 256, shardgate's
# -compression-min-bytes) at COMPRESSION_LEVEL (default 1, v6's own).
# Centrifugo answers server_no_context_takeover and
# client_no_context_takeover, and compresses each message per connection.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="$PATH:/usr/local/go/bin"
fi

module=github.com/centrifugal/centrifugo/v6
version="${CENTRIFUGO_VERSION:-v6.9.1}"
config=bench/peers/centrifugo/config.json

# The module version go install recorded in the binary ("mod <path> <version>").
built=""
if [ -x bin/centrifugo ]; then
	built="$(go version -m bin/centrifugo 2>/dev/null | awk -v m="$module" '$1 == "mod" && $2 == m { print $3 }')"
fi
if [ "$built" != "$version" ]; then
	echo "==> building bin/centrifugo $version (go install from the module proxy)" >&2
	mkdir -p bin
	start=$SECONDS
	# -X sets the version a release build reports (otherwise 0.0.0 and a
	# "development build" warning at every start).
	GOBIN="$PWD/bin" go install \
		-ldflags "-X $module/internal/build.Version=${version#v}" \
		"$module@$version"
	echo "==> built bin/centrifugo $version in $((SECONDS - start))s" >&2
fi

scheme=ws
if [ -n "${TLS_CERT:-}${TLS_KEY:-}" ]; then
	if [ ! -r "${TLS_CERT:-}" ] || [ ! -r "${TLS_KEY:-}" ]; then
		echo "bench-centrifugo.sh: TLS_CERT and TLS_KEY must both name readable PEM files" >&2
		exit 2
	fi
	export CENTRIFUGO_HTTP_SERVER_TLS_ENABLED=true
	export CENTRIFUGO_HTTP_SERVER_TLS_CERT_PEM="$TLS_CERT"
	export CENTRIFUGO_HTTP_SERVER_TLS_KEY_PEM="$TLS_KEY"
	export CENTRIFUGO_HTTP_SERVER_TLS_EXTERNAL=true
	scheme=wss
fi

if [ -n "${COMPRESSION:-}" ] && [ "${COMPRESSION}" != 0 ]; then
	export CENTRIFUGO_WEBSOCKET_COMPRESSION=true
	export CENTRIFUGO_WEBSOCKET_COMPRESSION_MIN_SIZE="${COMPRESSION_MIN_SIZE:-256}"
	export CENTRIFUGO_WEBSOCKET_COMPRESSION_LEVEL="${COMPRESSION_LEVEL:-1}"
	echo "==> permessage-deflate on: messages of ${CENTRIFUGO_WEBSOCKET_COMPRESSION_MIN_SIZE} bytes and more, level ${CENTRIFUGO_WEBSOCKET_COMPRESSION_LEVEL}" >&2
fi

# Every connection is a file descriptor: take the whole hard limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "==> centrifugo $version: $scheme://127.0.0.1:8000/connection/websocket, api and metrics on http://127.0.0.1:9000" >&2
exec bin/centrifugo --config "$config" "$@"
