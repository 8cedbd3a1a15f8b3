#!/usr/bin/env bash
# Runs the benchmark suite and summarises it with benchstat (medians and
# 95% confidence intervals over -count runs; each table has one column per
# implementation, the first being the baseline the others are compared to).
# Not run by CI: the full suite takes about half an hour and ~2.5 GB of
# temporary disk (the 1,000,000-record replay backlog).
#
#   ./run.sh                 full suite, -count 5, replay up to 1,000,000 records
#   QUICK=1 ./run.sh         everything once (-count 1 -short), small sizes
#   BENCH='HotPath' ./run.sh only the benchmarks matching a regexp
#
# Raw output and tables go to $OUT (default ./results). benchstat:
#   go install golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
set -euo pipefail
cd "$(dirname "$0")"

out=${OUT:-results}
bench=${BENCH:-.}
mkdir -p "$out"

if [ -n "${QUICK:-}" ]; then
	args=(-count 1 -short -benchtime 100ms)
else
	args=(-count "${COUNT:-5}")
fi
benchstat=${BENCHSTAT:-benchstat}

{
	go version
	echo "nproc: $(nproc)"
	grep -m1 '^model name' /proc/cpuinfo || true
} | tee "$out/machine.txt"

# -run '^$': benchmarks only. -timeout 0: the million-record replay runs for
# minutes.
go test -run '^$' -bench "$bench" -benchmem -timeout 0 "${args[@]}" . | tee "$out/raw.txt"

"$benchstat" -col /impl "$out/raw.txt" | tee "$out/tables.txt"

echo
echo "== ratios to the first column (medians)"
"$benchstat" -format csv -col /impl "$out/raw.txt" 2>/dev/null | awk -f ratios.awk | tee "$out/ratios.txt"
