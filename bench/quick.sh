#!/bin/sh
# The quick benchmark pass (about 15 s per runtime): the in-process A/B of
# 2 MiB / 4 KiB / file-backed code on Deno and Bun, written to
# bench/results/quick/ (the committed full results stay untouched).
# Full runs and the other benchmarks: see README "Results" and bench/*/README.md.
set -e
cd "$(dirname "$0")/.."
out=bench/results/quick
mkdir -p "$out"
node_modules/.bin/deno run --allow-ffi --allow-net=127.0.0.1 \
  --allow-read="$out" --allow-write="$out" bench/ab/run.ts --quick --out "$out" "$@"
node_modules/.bin/bun bench/ab/run.ts --quick --out "$out" "$@"
echo "quick pass written to $out/" >&2
ls "$out" >&2
