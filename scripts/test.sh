#!/bin/sh
# Runs every test under tests/ on Deno and on Bun, then prints one line per
# runtime and a last line "N passed, N failed" summing both.
cd "$(dirname "$0")/.."
out="${TMPDIR:-/tmp}/page-primer-test.$$"
mkdir -p "$out"

echo "== deno test" >&2
node_modules/.bin/deno test -A --junit-path="$out/deno.xml" tests/
deno_rc=$?
echo "== bun test" >&2
node_modules/.bin/bun test --timeout 900000 --reporter=junit --reporter-outfile="$out/bun.xml" tests/
bun_rc=$?

node scripts/junit_count.mjs "$out/deno.xml" "$out/bun.xml"
count_rc=$?
rm -rf "$out"
[ $deno_rc -eq 0 ] && [ $bun_rc -eq 0 ] && [ $count_rc -eq 0 ]
