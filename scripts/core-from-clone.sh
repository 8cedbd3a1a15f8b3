#!/usr/bin/env bash
# Runs a command, a go command, with the library module
# (github.com/syncbreaker/syncbreaker) fetched from this clone instead of
# the module proxy:
#
#	bash scripts/core-from-clone.sh go build ./...
#
# The otel module requires the library at a pseudo-version, a commit of
# this repository's main branch, as its users will fetch it; in development a
# replace builds it against this tree instead. scripts/pinned-build.sh drops
# that replace and builds what users get, so the go command must fetch that
# version, and the proxy may not have it (a commit not yet public, or no
# network but the proxy). Here the go
# command clones it from this repository instead: the module is private
# (GOPRIVATE: no proxy, no checksum database) and git rewrites its GitHub
# address to this directory. go.sum then gets the same hash the proxy
# would give, since both hash the commit's files, and a version that is
# not in this clone's history fails, as it would for a user.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export GOPRIVATE="github.com/syncbreaker/syncbreaker${GOPRIVATE:+,${GOPRIVATE}}"
# Added to the user's git configuration, not written anywhere.
n=${GIT_CONFIG_COUNT:-0}
export "GIT_CONFIG_KEY_${n}=url.file://${root}.insteadOf"
export "GIT_CONFIG_VALUE_${n}=https://github.com/syncbreaker/syncbreaker"
export GIT_CONFIG_COUNT=$((n + 1))
exec "$@"
