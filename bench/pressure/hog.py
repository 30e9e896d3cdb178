#!/usr/bin/env python3
"""Memory hog for bench/pressure/run.sh: runs inside the benchmark's memory
cgroup and, in bursts, fills it with anonymous memory up to the limit minus a
small reserve, so the kernel must reclaim the cgroup's file pages (the
server's code among them). With no swap, anonymous memory cannot be
reclaimed; the hog keeps adjusting so the cgroup never goes out of memory:

  room = limit - (usage - evictable file pages) - reserve

It grows by --chunk-mib while room >= chunk and shrinks when room < 0, during
each burst of --hold-ms; then frees everything for --pause-ms. It raises its
own oom_score_adj to 1000 so that, if the cgroup does run out of memory, the
kernel kills the hog and not the server. On SIGTERM/SIGINT (or after
--duration seconds) it frees everything and prints one JSON line of
statistics on stdout.

  hog.py --cgroup DIR --version v1|v2 [--reserve-mib 8] [--chunk-mib 4]
         [--hold-ms 2000] [--pause-ms 500] [--duration 0]
"""
import argparse
import json
import mmap
import signal
import sys
import time


def read(path):
    with open(path) as f:
        return f.read()


class Cgroup:
    def __init__(self, path, version):
        self.path = path
        self.v1 = version == "v1"

    def limit(self):
        raw = read(f"{self.path}/{'memory.limit_in_bytes' if self.v1 else 'memory.max'}").strip()
        return None if raw == "max" else int(raw)

    def usage(self):
        return int(read(f"{self.path}/{'memory.usage_in_bytes' if self.v1 else 'memory.current'}"))

    def stat(self):
        out = {}
        for line in read(f"{self.path}/memory.stat").splitlines():
            k, _, v = line.partition(" ")
            if v:
                out[k] = int(v)
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cgroup", required=True)
    ap.add_argument("--version", choices=["v1", "v2"], required=True)
    ap.add_argument("--reserve-mib", type=float, default=8)
    ap.add_argument("--chunk-mib", type=float, default=4)
    ap.add_argument("--hold-ms", type=float, default=2000)
    ap.add_argument("--pause-ms", type=float, default=500)
    ap.add_argument("--duration", type=float, default=0, help="seconds, 0: until SIGTERM")
    a = ap.parse_args()

    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass

    cg = Cgroup(a.cgroup, a.version)
    limit = cg.limit()
    if limit is None:
        print("hog.py: the cgroup has no memory limit", file=sys.stderr)
        return 2
    chunk = int(a.chunk_mib * 2**20) // mmap.PAGESIZE * mmap.PAGESIZE
    reserve = int(a.reserve_mib * 2**20)
    ones = b"\x01" * chunk

    stop = False

    def on_signal(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    chunks = []
    stats = {"bursts": 0, "peakMiB": 0.0, "allocMiB": 0.0, "shrinks": 0,
             "allocFailures": 0, "limitMiB": limit / 2**20,
             "reserveMiB": a.reserve_mib, "holdMs": a.hold_ms,
             "pauseMs": a.pause_ms, "heldMs": 0.0, "minFileMiBWhileHeld": None}

    def room():
        st = cg.stat()
        file_ = st.get("active_file", 0) + st.get("inactive_file", 0)
        return limit - (cg.usage() - file_) - reserve, file_

    def grow():
        m = mmap.mmap(-1, chunk, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        m[:] = ones  # touch every page: charged to the cgroup now
        chunks.append(m)
        stats["allocMiB"] += chunk / 2**20

    def shrink():
        chunks.pop().close()

    t_end = time.monotonic() + a.duration if a.duration > 0 else None
    while not stop and (t_end is None or time.monotonic() < t_end):
        stats["bursts"] += 1
        t_hold = time.monotonic()
        deadline = t_hold + a.hold_ms / 1000
        while not stop and time.monotonic() < deadline:
            r, file_ = room()
            if r >= chunk:
                try:
                    grow()
                except (OSError, MemoryError):
                    stats["allocFailures"] += 1
                    time.sleep(0.02)
                continue  # keep ramping without sleeping
            if r < 0 and chunks:
                shrink()
                stats["shrinks"] += 1
                continue
            held = len(chunks) * chunk / 2**20
            stats["peakMiB"] = max(stats["peakMiB"], held)
            fm = file_ / 2**20
            if stats["minFileMiBWhileHeld"] is None or fm < stats["minFileMiBWhileHeld"]:
                stats["minFileMiBWhileHeld"] = fm
            time.sleep(0.02)
        stats["heldMs"] += (time.monotonic() - t_hold) * 1000
        while chunks:
            shrink()
        t_pause = time.monotonic() + a.pause_ms / 1000
        while not stop and time.monotonic() < t_pause:
            time.sleep(0.02)
    while chunks:
        shrink()
    print(json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
