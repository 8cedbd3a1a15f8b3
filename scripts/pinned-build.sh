#!/usr/bin/env bash
# Builds and vets a module of this repository as its users get it: against
# the library version its go.mod requires, not the library in this commit.
#
#	bash scripts/pinned-build.sh otel
#
# In development the otel module replaces the library with ../ (as the
# examples module does, and as go.opentelemetry.io/otel's submodules do), so
# it builds against the tree it sits in; its users ignore that replace and
# get the pseudo-version it requires. Here a copy of the module drops the
# replace, tidies (so go.sum gets the hash its users will get) and builds.
# The library is fetched from this clone (scripts/core-from-clone.sh), so a
# version that is not a commit of this repository fails, as it would for a
# user, and a commit not yet on the proxy still works.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mod=${1:?usage: pinned-build.sh MODULE_DIR}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -R "${root}/${mod}/." "$work"
cd "$work"
export GOWORK=off
go mod edit -dropreplace=github.com/syncbreaker/syncbreaker
version=$(awk '$1 == "github.com/syncbreaker/syncbreaker" { print $2 }' go.mod)
echo "${mod}: building against github.com/syncbreaker/syncbreaker@${version}"
cp go.mod go.mod.dev
bash "${root}/scripts/core-from-clone.sh" go mod tidy
# Tidy may add the library's go.sum lines, nothing else: a requirement that
# moved means the pinned version needs something the development build does
# not, and users would get a different graph.
if ! diff -u go.mod.dev go.mod; then
	echo "FAIL: ${mod}/go.mod is not tidy against the pinned library" >&2
	exit 1
fi
bash "${root}/scripts/core-from-clone.sh" go build -o /dev/null ./...
bash "${root}/scripts/core-from-clone.sh" go vet ./...
