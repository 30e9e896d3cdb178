#!/bin/sh
# The main job: prime the runtime the demo runs in, on Deno and on Bun, and
# print what happened. Deno gets --allow-ffi and nothing else.
set -e
cd "$(dirname "$0")/.."
echo "== deno run --allow-ffi examples/demo.ts"
node_modules/.bin/deno run --allow-ffi examples/demo.ts "$@"
echo
echo "== bun examples/demo.ts"
node_modules/.bin/bun examples/demo.ts "$@"
