#!/bin/sh
# The quick benchmark pass (under a minute per runtime): the in-process A/B
# of 2 MiB / split / 4 KiB / file-backed code on Deno and Bun, every
# workload with its hot-code footprint, written to bench/results/quick/
# (ab-<runtime>.json/.md and the charts; the committed full results in
# bench/results/latest/ stay untouched).
# Full runs and the other benchmarks: see README "Results" and bench/*/README.md.
set -e
cd "$(dirname "$0")/.."
out=bench/results/quick
mkdir -p "$out"
# --backend thp: the split mode splits transparent huge pages; with a hugetlb
# pool reserved, auto would take that instead.
node_modules/.bin/deno run --allow-ffi --allow-net=127.0.0.1 \
  --allow-read="$out" --allow-write="$out" bench/ab/run.ts --quick \
  --backend thp --out "$out" "$@"
node_modules/.bin/bun bench/ab/run.ts --quick --backend thp --out "$out" "$@"
echo "quick pass written to $out/" >&2
ls "$out" >&2
