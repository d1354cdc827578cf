#!/usr/bin/env bash
# scripts/autobahn.sh — the Autobahn TestSuite against shardgate's own
# WebSocket layer: test/autobahn/echoserver, the shard (event loop, frame
# decoder, limits, close handshake, outbound queue) with echo in place of
# the JSON protocol. Installs the fuzzing client, kosoku (PyPI, pinned with
# hashes in test/autobahn/requirements.txt), into a virtual environment,
# runs it group by group against the echo server on a free loopback port,
# prints a summary (cases per verdict per group, and each group's time)
# and writes it to bench/results/<date>-autobahn.md with this command.
#
#   scripts/autobahn.sh            every group: 1-7, 9 and 10, all of RFC 6455
#                                  (~20 s), and 12 and 13, permessage-deflate
#                                  (RFC 7692, ~6 min; make test leaves out
#                                  their messages over 16 KiB)
#   scripts/autobahn.sh 5 6 9      those groups only
#   scripts/autobahn.sh install    only install kosoku (CI, before make test)
#
# Knobs (environment):
#   AUTOBAHN_GROUPS="1 2 3"  groups to run when no argument is given
#   OUT=file                 the report (default bench/results/<date>-autobahn.md; OUT= for none)
#   PYTHON=python3           the Python (3.10 or later, with venv) that makes the environment
#   VENV=bin/autobahn-venv   the virtual environment (bin/ is not tracked)
#
# Exits non-zero when a case is FAILED or UNIMPLEMENTED, closes badly, or
# did not run. kosoku's own reports: bin/autobahn-reports/<group>/index.html.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="$PATH:/usr/local/go/bin"
fi

PYTHON=${PYTHON:-python3}
VENV=${VENV:-bin/autobahn-venv}
REQUIREMENTS=test/autobahn/requirements.txt
OUT=${OUT-bench/results/$(date -u +%F)-autobahn.md}

# install creates the environment if needed and installs kosoku when the
# pinned requirements differ from what the environment was made with.
install() {
	local stamp=$VENV/shardgate-requirements.txt
	if [ -x "$VENV/bin/kosoku" ] && cmp -s "$REQUIREMENTS" "$stamp"; then
		return
	fi
	if [ ! -x "$VENV/bin/python" ]; then
		echo "==> $PYTHON -m venv $VENV"
		if ! "$PYTHON" -m venv "$VENV"; then
			echo "autobahn.sh: cannot create a virtual environment with $PYTHON (on Debian: apt-get install python3-venv)" >&2
			exit 2
		fi
	fi
	echo "==> pip install -r $REQUIREMENTS (into $VENV)"
	"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r "$REQUIREMENTS"
	cp "$REQUIREMENTS" "$stamp"
}

install
if [ "${1:-}" = install ]; then
	"$VENV/bin/python" -I -c 'import importlib.metadata as m; print("kosoku", m.version("kosoku"), "in '"$VENV"'")'
	exit 0
fi

groups=("$@")
if [ ${#groups[@]} -eq 0 ] && [ -n "${AUTOBAHN_GROUPS:-}" ]; then
	read -r -a groups <<<"$AUTOBAHN_GROUPS"
fi
args=(-kosoku "$VENV/bin/kosoku" -reports bin/autobahn-reports -command "scripts/autobahn.sh${*:+ $*}")
if [ ${#groups[@]} -gt 0 ]; then
	args+=(-groups "$(IFS=,; echo "${groups[*]}")")
fi
if [ -n "$OUT" ]; then
	args+=(-out "$OUT")
fi
exec go run ./test/autobahn/runsuite "${args[@]}"
