#!/usr/bin/env bash
# Runs every test of every Go module in this repository with the race detector:
# the library, its example daemon, pendingctl, and the end-to-end tests on a
# real NATS JetStream server (started in-process on loopback by the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
for mod in $(git ls-files '*go.mod' | xargs -n1 dirname | sort); do
	echo "== go test -race ./... in module ${mod}"
	(cd "$mod" && go test -race -count=1 "$@" ./...)
done
