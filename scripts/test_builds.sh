#!/bin/sh
# The build matrix (`npm run test:builds`): older Deno 2.x and Bun 1.x builds
# from the npm registry (cached in ~/.cache/page-primer-builds),
# each running remap/restore, shared mode and mlock in child processes that
# this script checks from outside. Prints a markdown table; exits non-zero on
# any crash or mismatch. Options go to tests/builds/matrix.ts, e.g.
# `npm run test:builds -- --rev HEAD --runs 20`; see tests/builds/README.md.
set -e
cd "$(dirname "$0")/.."
sh scripts/setup.sh
exec node_modules/.bin/deno run --allow-all tests/builds/matrix.ts "$@"
