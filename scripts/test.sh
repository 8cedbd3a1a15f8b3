#!/usr/bin/env bash
# Runs every test of every Go module in this repository with the race detector:
# the library with pendingctl, the OpenTelemetry metrics (otel/), the example
# daemon (examples/), the end-to-end tests on a real NATS JetStream server
# (started in-process on loopback by the tests) and the benchmarks' harness.
#
# A module with a go.work of its own (otel/) is tested in that workspace, so
# against the library in the same commit; the others replace the library with
# ../ in their go.mod, or are the library. Needs no network but the module
# proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
for mod in $(git ls-files '*go.mod' | xargs -n1 dirname | sort); do
	echo "== go test -race ./... in module ${mod}"
	work=off
	if [ -f "${mod}/go.work" ]; then
		work="$(pwd)/${mod}/go.work"
	fi
	(cd "$mod" && GOWORK="$work" go test -race -count=1 "$@" ./...)
done
