#!/usr/bin/env bash
# What mlock buys under memory pressure: an HTTP server (Deno.serve /
# Bun.serve) runs in a memory cgroup together with a memory hog that fills the
# cgroup with anonymous memory in bursts, so the kernel must reclaim the
# cgroup's file pages (the runtime's code); a client outside the cgroup
# measures latency. Each runtime runs with and without
# prime().mlock(true).run() at startup (BENCH_MLOCK=main|off).
#
# Root only. See bench/pressure/README.md for the method and caveats.
set -uo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

usage() {
  cat <<'EOF'
Usage: sudo bash bench/pressure/run.sh [options]

  --quick             8 s of load per run, one round (about 1 minute in all)
  --duration S        seconds of load per run (default 20, at most 30)
  --rounds N          rounds over all configurations, order reversed every
                      other round (default 2; --quick: 1)
  --runtimes LIST     deno,bun (default both)
  --mlock LIST        off,main (default); "all" also locks the shared
                      libraries (prime().objects("all").mlock(true))
  --limit-mib N       memory limit of the cgroup (default 256)
  --reserve-mib N     file-page room the hog leaves (default 16)
  --hold-ms N         length of one hog burst (default 2000)
  --pause-ms N        pause between bursts (default 500)
  --concurrency N     client loops (default 2)
  --warmup S          unmeasured load before the hog starts (default 1)
  --drop-caches       also `echo 3 > /proc/sys/vm/drop_caches` before each run
                      (whole machine; by default only the benchmark's private
                      copy of the runtime binary is evicted, see README)
  --out-dir DIR       results directory (default bench/results)
  --keep              keep the work directory (logs, per-run JSON)
  --help              this text

Writes bench/results/pressure-<date>.json and .md.
EOF
}

QUICK=0
DURATION=""
ROUNDS=""
RUNTIMES="deno,bun"
MLOCKS="off,main"
LIMIT_MIB=256
RESERVE_MIB=16
HOLD_MS=2000
PAUSE_MS=500
CONCURRENCY=2
WARMUP=1
DROP=0
OUT_DIR="$ROOT/bench/results"
KEEP=0

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --duration) DURATION="$2"; shift ;;
    --rounds) ROUNDS="$2"; shift ;;
    --runtimes) RUNTIMES="$2"; shift ;;
    --mlock) MLOCKS="$2"; shift ;;
    --limit-mib) LIMIT_MIB="$2"; shift ;;
    --reserve-mib) RESERVE_MIB="$2"; shift ;;
    --hold-ms) HOLD_MS="$2"; shift ;;
    --pause-ms) PAUSE_MS="$2"; shift ;;
    --concurrency) CONCURRENCY="$2"; shift ;;
    --warmup) WARMUP="$2"; shift ;;
    --drop-caches) DROP=1 ;;
    --out-dir) OUT_DIR="$2"; shift ;;
    --keep) KEEP=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$DURATION" ]; then
  if [ $QUICK = 1 ]; then DURATION=8; else DURATION=20; fi
fi
if [ -z "$ROUNDS" ]; then
  if [ $QUICK = 1 ]; then ROUNDS=1; else ROUNDS=2; fi
fi
if [ "${DURATION%.*}" -gt 30 ]; then
  echo "run.sh: --duration is at most 30 s" >&2
  exit 2
fi

if [ "$(id -u)" != 0 ]; then
  echo "run.sh: needs root (creates a memory cgroup, evicts page cache)" >&2
  exit 1
fi

progress() { if [ -t 2 ]; then printf '\r\033[2K%s' "$*" >&2; fi; }
progress_done() { if [ -t 2 ]; then printf '\r\033[2K' >&2; fi; }
die() {
  progress_done
  echo "run.sh: $*" >&2
  exit 1
}

for tool in node python3 dd sync; do
  command -v "$tool" >/dev/null 2>&1 ||
    die "$tool not found (sh bench/setup.sh installs what is missing)"
done
PYTHON="$(python3 -c 'import sys; print(sys.executable)')" ||
  die "python3 does not run"

# The memory controller: cgroup v1 if mounted, else v2. The benchmark's
# cgroups are made inside the memory cgroup this script runs in (so whatever
# accounts for this shell still accounts for them); v2 needs the controller
# enabled for children, so there they go under the root when the current
# cgroup cannot delegate it.
if [ -f /sys/fs/cgroup/memory/cgroup.procs ]; then
  CGV=v1
  rel="$(awk -F: '$2 ~ /(^|,)memory(,|$)/ { print $3; exit }' /proc/self/cgroup)"
  CG_PARENT="/sys/fs/cgroup/memory${rel%/}"
  [ -d "$CG_PARENT" ] || CG_PARENT=/sys/fs/cgroup/memory
elif grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
  CGV=v2
  rel="$(awk -F: '$1 == "0" { print $3; exit }' /proc/self/cgroup)"
  CG_PARENT="/sys/fs/cgroup${rel%/}"
  if ! grep -qw memory "$CG_PARENT/cgroup.subtree_control" 2>/dev/null; then
    CG_PARENT=/sys/fs/cgroup
    grep -qw memory "$CG_PARENT/cgroup.subtree_control" ||
      echo +memory >"$CG_PARENT/cgroup.subtree_control" ||
      die "cannot enable the v2 memory controller in $CG_PARENT"
  fi
else
  die "no memory cgroup controller found (neither /sys/fs/cgroup/memory nor cgroup v2 with memory)"
fi

WORK="$(mktemp -d "${TMPDIR:-/var/tmp}/page-primer-pressure.XXXXXX")" ||
  die "mktemp failed"
CG=""
SERVER_PID=""
HOG_PID=""

kill_wait() { # pid: TERM, then KILL after 3 s; only our own children
  local pid="$1" i
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 30); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}

remove_cgroup() {
  local i pid
  [ -n "$CG" ] && [ -d "$CG" ] || return 0
  # Only processes this script put there can be in it; none may outlive it.
  for pid in $(cat "$CG/cgroup.procs" 2>/dev/null); do
    kill -KILL "$pid" 2>/dev/null
  done
  for i in $(seq 50); do
    rmdir "$CG" 2>/dev/null && break
    sleep 0.1
  done
  [ -d "$CG" ] && echo "run.sh: could not remove $CG" >&2
  CG=""
}

cleanup() {
  local rc=$?
  progress_done
  kill_wait "$HOG_PID"
  kill_wait "$SERVER_PID"
  remove_cgroup
  if [ $KEEP = 1 ]; then
    echo "run.sh: work directory kept: $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Private copies of the runtimes: their page cache belongs to this benchmark
# alone (another process mapping node_modules/.bin/deno would keep those
# pages resident and charged to its own cgroup), and it can be evicted
# without touching the rest of the machine.
mkdir -p "$WORK/bin"
IFS=, read -r -a RT_LIST <<<"$RUNTIMES"
IFS=, read -r -a ML_LIST <<<"$MLOCKS"
for rt in "${RT_LIST[@]}"; do
  case "$rt" in
    deno) src="${DENO:-$ROOT/node_modules/.bin/deno}" ;;
    bun) src="${BUN:-$ROOT/node_modules/.bin/bun}" ;;
    *) die "unknown runtime $rt (deno, bun)" ;;
  esac
  [ -x "$src" ] || die "$rt not found at $src (npm install, or sh bench/setup.sh)"
  cp "$(readlink -f "$src")" "$WORK/bin/$rt" || die "cannot copy $src"
done
for ml in "${ML_LIST[@]}"; do
  case "$ml" in off | main | all) ;; *) die "unknown --mlock mode $ml" ;; esac
done
sync "$WORK/bin/"* 2>/dev/null || sync
if [ -x "$WORK/bin/deno" ]; then
  "$WORK/bin/deno" cache --quiet "$HERE/server.ts" >/dev/null 2>&1
fi

server_cmd() { # runtime -> command line
  case "$1" in
    deno) echo "$WORK/bin/deno run --allow-ffi --allow-net --allow-env=BENCH_MLOCK $HERE/server.ts --port 0" ;;
    bun) echo "$WORK/bin/bun $HERE/server.ts --port 0" ;;
  esac
}

# Runs "$@" inside the cgroup $CG: joins it, then execs, so that the pid of
# a background `in_cgroup ... &` ($!) is the pid of the command itself.
in_cgroup() {
  exec sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG" "$@"
}

majflt() { # pid -> major faults (field 12 of /proc/pid/stat)
  sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $10 }'
}
status_kb() { # pid key -> value in kB from /proc/pid/status
  awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null
}
cg_stat() { # key -> value from the cgroup's memory.stat
  awk -v k="$1" '$1 == k { print $2 }' "$CG/memory.stat" 2>/dev/null
}
resident_kb() { # file -> resident page cache in kB (fincore), or -1
  if command -v fincore >/dev/null 2>&1; then
    local b
    b="$(fincore --bytes --noheadings --output RES "$1" 2>/dev/null | tr -d ' ')"
    [ -n "$b" ] && echo $((b / 1024)) && return
  fi
  echo -1
}

LIMIT_BYTES=$((LIMIT_MIB * 1024 * 1024))

run_one() { # idx runtime mlock
  local idx="$1" rt="$2" ml="$3" port="" i
  local p="$WORK/run-$idx"
  CG="$CG_PARENT/page-primer-pressure-$$-$idx"
  mkdir "$CG" || die "cannot create cgroup $CG"
  if [ $CGV = v1 ]; then
    echo "$LIMIT_BYTES" >"$CG/memory.limit_in_bytes" || die "cannot set memory.limit_in_bytes"
    echo 0 >"$CG/memory.swappiness" 2>/dev/null
  else
    echo "$LIMIT_BYTES" >"$CG/memory.max" || die "cannot set memory.max"
    echo 0 >"$CG/memory.swap.max" 2>/dev/null
  fi

  # Evict the runtime binary's page cache so the server faults it in from
  # disk and its pages are charged to this cgroup.
  dd if="$WORK/bin/$rt" iflag=nocache count=0 status=none 2>/dev/null
  if [ $DROP = 1 ]; then
    sync
    echo 3 >/proc/sys/vm/drop_caches
  fi
  local cached_before
  cached_before="$(resident_kb "$WORK/bin/$rt")"

  # shellcheck disable=SC2046 # the command line is split on purpose
  BENCH_MLOCK="$ml" in_cgroup $(server_cmd "$rt") >"$p.server" 2>"$p.server.err" &
  SERVER_PID=$!
  for i in $(seq 300); do
    port="$(sed -n '1s/.*"listening":\([0-9]*\).*/\1/p' "$p.server" 2>/dev/null)"
    [ -n "$port" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null ||
      die "$rt server exited: $(head -c 2000 "$p.server.err")"
    sleep 0.1
  done
  [ -n "$port" ] || die "$rt server did not start in 30 s"
  echo -1000 >"/proc/$SERVER_PID/oom_score_adj" 2>/dev/null

  node "$HERE/client.mjs" --port "$port" --duration "$WARMUP" \
    --concurrency "$CONCURRENCY" >/dev/null || die "warm-up client failed"

  local maj0 rssfile0 cgmaj0 maj1 rssfile1 cgmaj1 vmlck failcnt oomkill
  maj0="$(majflt "$SERVER_PID")"
  rssfile0="$(status_kb "$SERVER_PID" RssFile)"
  cgmaj0="$(cg_stat pgmajfault)"

  in_cgroup "$PYTHON" "$HERE/hog.py" --cgroup "$CG" --version "$CGV" \
    --reserve-mib "$RESERVE_MIB" --hold-ms "$HOLD_MS" --pause-ms "$PAUSE_MS" \
    >"$p.hog" 2>"$p.hog.err" &
  HOG_PID=$!

  node "$HERE/client.mjs" --port "$port" --duration "$DURATION" \
    --concurrency "$CONCURRENCY" >"$p.client" || die "client failed"

  maj1="$(majflt "$SERVER_PID")"
  rssfile1="$(status_kb "$SERVER_PID" RssFile)"
  vmlck="$(status_kb "$SERVER_PID" VmLck)"
  cgmaj1="$(cg_stat pgmajfault)"
  if [ $CGV = v1 ]; then
    failcnt="$(cat "$CG/memory.failcnt")"
    oomkill="$(awk '$1 == "oom_kill" { print $2 }' "$CG/memory.oom_control")"
  else
    failcnt="$(awk '$1 == "max" { print $2 }' "$CG/memory.events")"
    oomkill="$(awk '$1 == "oom_kill" { print $2 }' "$CG/memory.events")"
  fi
  local hog_alive=1
  kill -0 "$HOG_PID" 2>/dev/null || hog_alive=0
  kill -TERM "$HOG_PID" 2>/dev/null
  wait "$HOG_PID" 2>/dev/null
  local hog_rc=$?
  HOG_PID=""
  local server_alive=1
  kill -0 "$SERVER_PID" 2>/dev/null || server_alive=0
  kill_wait "$SERVER_PID"
  SERVER_PID=""
  remove_cgroup

  printf '{"idx":%s,"runtime":"%s","mlock":"%s","port":%s,"majfltBefore":%s,"majfltAfter":%s,"rssFileKbBefore":%s,"rssFileKbAfter":%s,"vmLckKb":%s,"cgroupPgmajfaultBefore":%s,"cgroupPgmajfaultAfter":%s,"failcnt":%s,"oomKill":%s,"hogAliveAtEnd":%s,"hogExit":%s,"serverAliveAtEnd":%s,"binaryCachedKbAtStart":%s}\n' \
    "$idx" "$rt" "$ml" "$port" "${maj0:-null}" "${maj1:-null}" \
    "${rssfile0:-null}" "${rssfile1:-null}" "${vmlck:-null}" \
    "${cgmaj0:-null}" "${cgmaj1:-null}" "${failcnt:-null}" "${oomkill:-null}" \
    "$hog_alive" "$hog_rc" "$server_alive" "${cached_before:--1}" >"$p.meta"
}

# Configurations, in order; every other round reversed.
CONFIGS=()
for rt in "${RT_LIST[@]}"; do
  for ml in "${ML_LIST[@]}"; do CONFIGS+=("$rt $ml"); done
done
TOTAL=$((ROUNDS * ${#CONFIGS[@]}))
idx=0
START=$(date +%s)
for ((r = 0; r < ROUNDS; r++)); do
  order=("${CONFIGS[@]}")
  if ((r % 2 == 1)); then
    order=()
    for ((k = ${#CONFIGS[@]} - 1; k >= 0; k--)); do order+=("${CONFIGS[k]}"); done
  fi
  for cfg in "${order[@]}"; do
    read -r rt ml <<<"$cfg"
    idx=$((idx + 1))
    progress "run $idx/$TOTAL: $rt mlock=$ml (${DURATION} s of load)  elapsed $(($(date +%s) - START)) s"
    run_one "$idx" "$rt" "$ml"
  done
done
progress_done

node "$HERE/report.mjs" --work "$WORK" --out-dir "$OUT_DIR" \
  --settings "$(printf '{"quick":%s,"durationS":%s,"rounds":%s,"limitMiB":%s,"reserveMiB":%s,"holdMs":%s,"pauseMs":%s,"concurrency":%s,"warmupS":%s,"dropCaches":%s,"cgroup":"%s","cgroupParent":"%s"}' \
    "$([ $QUICK = 1 ] && echo true || echo false)" "$DURATION" "$ROUNDS" \
    "$LIMIT_MIB" "$RESERVE_MIB" "$HOLD_MS" "$PAUSE_MS" "$CONCURRENCY" \
    "$WARMUP" "$([ $DROP = 1 ] && echo true || echo false)" "$CGV" "$CG_PARENT")"
