#!/usr/bin/env bash
# Runs the benchmark suite and summarises it with benchstat (medians and
# 95% confidence intervals over COUNT rounds; each table has one column per
# implementation, the first being the baseline the others are compared to).
# Not run by CI: the full suite takes about 45 minutes and ~2.5 GB of
# temporary disk (the 1,000,000-record replay backlog); the disk-queue
# peers alone (BENCH=Peer) about 3 minutes a round.
#
#   ./run.sh                 full suite, 5 rounds, backlogs up to 1,000,000 records
#   COUNT=6 ./run.sh         6 rounds (benchstat shows 95% intervals from 6)
#   QUICK=1 ./run.sh         everything once (-short), small sizes
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
	rounds=1
	args=(-short -benchtime 100ms)
else
	rounds=${COUNT:-5}
	args=()
fi
benchstat=${BENCHSTAT:-benchstat}

{
	go version
	echo "nproc: $(nproc)"
	grep -m1 '^model name' /proc/cpuinfo || true
} | tee "$out/machine.txt"

# The rounds run one after another, each a whole pass over every
# implementation (-count 1), rather than -count N, which runs each benchmark
# N times back to back: on a shared machine the load changes by the
# minute, and interleaving spreads it over all contenders instead of
# penalising whichever ran during a busy spell. -run '^$': benchmarks only.
# -timeout 0: the million-record replay and republish run for minutes.
go test -c -o "$out/benchmarks.test" .
: >"$out/raw.txt"
for round in $(seq "$rounds"); do
	echo "== round ${round}/${rounds}" >&2
	"$out/benchmarks.test" -test.run '^$' -test.bench "$bench" -test.benchmem -test.timeout 0 \
		-test.count 1 "${args[@]/#-/-test.}" | tee -a "$out/raw.txt"
done

# One benchstat table set per benchmark, so each has its own baseline column.
: >"$out/tables.txt"
: >"$out/ratios.txt"
for name in $(sed -n 's/^Benchmark\([A-Za-z0-9]*\)\/.*/\1/p' "$out/raw.txt" | awk '!seen[$0]++'); do
	{
		echo "== ${name}"
		"$benchstat" -col /impl -filter ".name:${name}" "$out/raw.txt" | sed '1,/^cpu:/d'
	} | tee -a "$out/tables.txt"
	{
		echo "== ${name}: ratios of medians to the first column"
		"$benchstat" -format csv -col /impl -filter ".name:${name}" "$out/raw.txt" 2>/dev/null | awk -f ratios.awk
		echo
	} | tee -a "$out/ratios.txt"
done
