#!/bin/sh
# Set-up for the benchmarks under bench/node, bench/pressure and bench/wrk.
# Idempotent: installs only what is missing and says what it did.
#
#   sh bench/setup.sh          # as root: apt-get installs what is missing
#   sh bench/setup.sh --check  # only report, change nothing
#
# Needs: node (drivers), deno + bun (from npm, like scripts/setup.sh), wrk
# (bench/wrk), python3 (the memory hog of bench/pressure), coreutils and
# util-linux.
set -u
cd "$(dirname "$0")/.."

check_only=0
case "${1:-}" in
  --check) check_only=1 ;;
  -h | --help)
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  "") ;;
  *)
    echo "bench/setup.sh: unknown argument $1 (try --help)" >&2
    exit 2
    ;;
esac

say() { echo "bench setup: $*"; }

if ! command -v node >/dev/null 2>&1; then
  say "node is missing: install Node.js >= 18 (apt-get install nodejs) first"
  exit 1
fi
say "node $(node --version) present"

# deno and bun come from the npm registry, pinned in package.json.
if [ -x node_modules/.bin/deno ] && [ -x node_modules/.bin/bun ]; then
  say "deno $(node_modules/.bin/deno --version | head -n 1 | cut -d' ' -f2) and bun $(node_modules/.bin/bun --version) present in node_modules/.bin"
elif [ $check_only = 1 ]; then
  say "deno/bun missing in node_modules/.bin: run npm install"
else
  say "installing deno and bun from npm (npm install)"
  npm install --no-audit --no-fund --loglevel=error || exit 1
fi

# Debian packages: command -> package.
missing=""
need() {
  if command -v "$1" >/dev/null 2>&1; then
    say "$1 present ($(command -v "$1"))"
  else
    missing="$missing $2"
  fi
}
need wrk wrk           # bench/wrk
need python3 python3   # bench/pressure/hog.py
need fincore util-linux  # bench/pressure: page-cache residency (optional)
need dd coreutils      # bench/pressure: page-cache eviction

if [ -z "$missing" ]; then
  say "nothing to install"
  exit 0
fi
if [ $check_only = 1 ]; then
  say "missing Debian packages:$missing"
  exit 1
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  say "not root (or no apt-get): please install these packages:$missing"
  say "  e.g. sudo apt-get update && sudo apt-get install -y$missing"
  exit 1
fi
say "apt-get update"
apt-get update -qq || exit 1
say "apt-get install -y$missing"
# shellcheck disable=SC2086 # word splitting of the package list is wanted
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing || exit 1
say "installed:$missing"
