#!/usr/bin/env bash
# Runs every test of every Go module in this repository with the race detector:
# the library with pendingctl, the OpenTelemetry metrics (otel/), the example
# daemon (examples/), the end-to-end tests on a real NATS JetStream server
# (started in-process on loopback by the tests) and the benchmarks' harness.
#
# Every module other than the library replaces it with ../ in its go.mod, so
# each is tested against the library in the same commit. Needs no network but
# the module proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
for mod in $(git ls-files '*go.mod' | xargs -n1 dirname | sort); do
	echo "== go test -race ./... in module ${mod}"
	(cd "$mod" && GOWORK=off go test -race -count=1 "$@" ./...)
done
