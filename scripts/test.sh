#!/bin/sh
# Runs every test under tests/ on Deno and on Bun, and on Deno the doc
# examples of every module, then prints one line per runtime
# and a last line "N passed, N failed" summing both.
cd "$(dirname "$0")/.."
out="${TMPDIR:-/tmp}/page-primer-test.$$"
mkdir -p "$out"

echo "== deno test" >&2
node_modules/.bin/deno test -A --junit-path="$out/deno-tests.xml" tests/
deno_rc=$?
# The doc examples (deno test --doc) of every module: with --allow-read
# (the ELF examples read the running executable); an example that needs FFI
# or changes the process is marked `ts ignore` (Deno runs `no-eval` blocks
# too), except in the modules of DOC_FFI_MODULES, whose examples only read
# this process's memory and its VMAs through FFI (or make and unmap a probe
# mapping) and run with --allow-ffi. Counted as Deno tests.
DOC_MODULES="mod.ts auto.ts cli.ts src/auto_config.ts src/mlock.ts
  src/options.ts src/outcome.ts src/populate.ts src/prime.ts
  src/remap/backend.ts src/remap/execute.ts src/remap/perf_map.ts
  src/remap/plan.ts src/remap/record.ts src/remap/report.ts
  src/remap/restore.ts src/remap/share.ts src/remap/trampoline.ts
  src/sys/trampoline_abi.ts src/sys/elf.ts src/sys/format.ts
  src/sys/hugetlb.ts src/sys/libc.ts src/sys/limits.ts src/sys/maps.ts
  src/sys/objects.ts src/sys/segments.ts src/sys/thp.ts
  src/tools/calibrate.ts src/tools/doctor.ts src/tools/footprint.ts
  src/tools/inspect.ts"
DOC_FFI_MODULES="src/sys/ffi.ts src/sys/loader.ts src/sys/pagemap_scan.ts src/sys/proc_ioctl.ts src/sys/procmap.ts
  src/sys/vma_stats.ts"
echo "== deno test --doc" >&2
# shellcheck disable=SC2086 # one word per module
node_modules/.bin/deno test --doc --allow-read --junit-path="$out/deno-doc.xml" $DOC_MODULES
doc_rc=$?
# shellcheck disable=SC2086
node_modules/.bin/deno test --doc --allow-read --allow-ffi --junit-path="$out/deno-doc-ffi.xml" $DOC_FFI_MODULES
[ $? -eq 0 ] || doc_rc=1
# One Deno report for the count; a missing part leaves it missing, which
# junit_count.mjs reports as a run that did not finish.
if [ -f "$out/deno-tests.xml" ] && [ -f "$out/deno-doc.xml" ] &&
  [ -f "$out/deno-doc-ffi.xml" ]; then
  cat "$out/deno-tests.xml" "$out/deno-doc.xml" "$out/deno-doc-ffi.xml" >"$out/deno.xml"
fi
echo "== bun test" >&2
node_modules/.bin/bun test --timeout 900000 --reporter=junit --reporter-outfile="$out/bun.xml" tests/
bun_rc=$?

node scripts/junit_count.mjs "$out/deno.xml" "$out/bun.xml"
count_rc=$?
rm -rf "$out"
[ $deno_rc -eq 0 ] && [ $doc_rc -eq 0 ] && [ $bun_rc -eq 0 ] && [ $count_rc -eq 0 ]
