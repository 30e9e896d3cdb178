#!/bin/sh
# One-time set-up, run by `npm run demo` and `npm test`: installs Deno, Bun
# and bun-types from the npm registry, and the Debian tools the tests use.
set -e
cd "$(dirname "$0")/.."

# With a lock, `npm ci`: it installs exactly what package-lock.json names
# and never rewrites it (npm install may, depending on npm's version and
# config, and a fresh clone's tree would be dirty after `npm test`); it also
# fails when package.json and the lock disagree instead of changing the lock.
# After editing package.json's dependencies, run `npm install` once and
# commit package-lock.json.
#
# npm ci starts by deleting node_modules, so it runs only when something
# changed: the runtimes are missing, the lock is newer than the last install,
# or package.json asks for other packages than the lock has (then npm ci
# fails and says so). An edit to package.json's scripts reinstalls nothing.
deps_differ_from_lock() {
  node -e '
    const fs = require("fs");
    const pkg = JSON.parse(fs.readFileSync("package.json", "utf8"));
    const root = JSON.parse(fs.readFileSync("package-lock.json", "utf8"))
      .packages[""];
    const kinds = ["dependencies", "devDependencies", "optionalDependencies"];
    const same = (a = {}, b = {}) =>
      JSON.stringify(Object.entries(a).sort()) ===
        JSON.stringify(Object.entries(b).sort());
    process.exit(kinds.every((k) => same(pkg[k], root[k])) ? 1 : 0);
  '
}
if [ ! -x node_modules/.bin/deno ] || [ ! -x node_modules/.bin/bun ]; then
  install=yes
elif [ -f package-lock.json ]; then
  if [ package-lock.json -nt node_modules/.package-lock.json ] ||
    deps_differ_from_lock; then
    install=yes
  fi
elif [ package.json -nt node_modules/.package-lock.json ]; then
  install=yes
fi
if [ -n "${install:-}" ]; then
  echo "page-primer setup: installing deno, bun and bun-types from npm" >&2
  if [ -f package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error >&2 || {
      echo "page-primer setup: npm ci failed; if package.json changed, run \`npm install\` and commit package-lock.json" >&2
      exit 1
    }
  else
    npm install --no-audit --no-fund --loglevel=error >&2
  fi
fi

# Debian packages the test suite calls: readelf/nm (binutils) to check the
# ELF parser, setpriv and setarch (util-linux) to drop CAP_IPC_LOCK and ASLR
# in a child, strace for the W^X and no-clobber audit, wrk for the load test,
# perf to check that perf names remapped functions, gcc to build the test
# libraries (RELRO fixture, seccomp sandbox), the kernel's errno headers
# (linux-libc-dev) to check errno names against, gdb to run a primed
# program under a debugger, the aarch64 cross compiler and its static libc
# (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross) and qemu-user-static to
# build the aarch64 trampoline and run its tests under emulation.
missing=""
command -v readelf >/dev/null 2>&1 || missing="$missing binutils"
command -v setpriv >/dev/null 2>&1 || missing="$missing util-linux"
command -v strace >/dev/null 2>&1 || missing="$missing strace"
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
command -v perf >/dev/null 2>&1 || missing="$missing linux-perf"
command -v gcc >/dev/null 2>&1 || missing="$missing gcc"
[ -f /usr/include/asm-generic/errno.h ] || missing="$missing linux-libc-dev"
command -v gdb >/dev/null 2>&1 || missing="$missing gdb"
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 ||
  missing="$missing gcc-aarch64-linux-gnu"
[ -f /usr/aarch64-linux-gnu/lib/libc.a ] ||
  missing="$missing libc6-dev-arm64-cross"
command -v qemu-aarch64-static >/dev/null 2>&1 ||
  missing="$missing qemu-user-static"
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "page-primer setup: apt-get install$missing" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >&2
  else
    echo "page-primer setup: please install:$missing (tests that need them will fail)" >&2
  fi
fi

# The arm64 builds of the same Deno and Bun versions, for the tests that run
# them under qemu-user (tests/aarch64/runtimes_aarch64_test.ts): fetched from
# the npm registry with `npm pack` into node_modules/.cache/page-primer-arm64/
# (so `npm ci` starts them over too). Without the registry the tests say why
# they skip.
arm64=node_modules/.cache/page-primer-arm64
fetch_arm64() { # package version dir
  [ -e "$arm64/$3/.done" ] && return 0
  rm -rf "${arm64:?}/$3" && mkdir -p "$arm64/$3" &&
    (cd "$arm64/$3" && npm pack --silent "$1@$2" >/dev/null 2>&1 &&
      tar xzf ./*.tgz && rm -f ./*.tgz && touch .done) ||
    echo "page-primer setup: could not fetch $1@$2 (arm64 tests will skip)" >&2
}
deno_version=$(node -p 'require("./node_modules/deno/package.json").version' 2>/dev/null || true)
bun_version=$(node -p 'require("./node_modules/bun/package.json").version' 2>/dev/null || true)
if [ -n "$deno_version" ] && [ -n "$bun_version" ]; then
  fetch_arm64 @deno/linux-arm64-glibc "$deno_version" deno
  fetch_arm64 @oven/bun-linux-aarch64 "$bun_version" bun
fi
