#!/usr/bin/env bash
# Runs the README's two newcomer commands as a newcomer would: in a fresh
# clone of the current commit, with empty module and build caches, the
# installed toolchain only and no network but the module proxy.
#
#	bash scripts/fresh-machine.sh
#
# The commands are read from the README (the shell blocks above its first
# "## " heading), so what is run is exactly what is written there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
commit=$(git -C "$root" rev-parse HEAD)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mapfile -t commands < <(awk '
	/^## / { exit }
	/^```sh$/ { inblock = 1; next }
	/^```$/ { inblock = 0; next }
	inblock { sub(/[ \t]+#.*$/, ""); if ($0 != "") print }
' "${root}/README.md")
if [ "${#commands[@]}" -ne 2 ]; then
	echo "FAIL: the README's introduction should hold exactly two commands, found ${#commands[@]}" >&2
	exit 1
fi

git clone --quiet --no-local "$root" "${work}/clone"
git -C "${work}/clone" checkout --quiet --detach "$commit"
mkdir "${work}/modcache" "${work}/buildcache"
export GOMODCACHE="${work}/modcache" GOCACHE="${work}/buildcache" GOTOOLCHAIN=local
# -modcacherw: the module cache is read-only otherwise, and the trap could not
# remove it. Kept beside whatever GOFLAGS the machine sets (go env reads both
# the environment and the go env file).
flags=$(go env GOFLAGS)
export GOFLAGS="-modcacherw${flags:+ ${flags}}"
unset GOWORK GOPRIVATE GONOSUMDB GONOPROXY GIT_CONFIG_COUNT

cd "${work}/clone"
for cmd in "${commands[@]}"; do
	echo "== fresh clone, empty caches: ${cmd}"
	start=$(date +%s)
	bash -c "$cmd"
	echo "== ${cmd}: passed in $(($(date +%s) - start)) s"
done
