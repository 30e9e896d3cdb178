/**
 * Cost of `prime().remap(true).run()` against two floors, measured in turn
 * in the same process, the order rotating from round to round:
 *
 * - **floor**: a 2 MiB-aligned `MADV_HUGEPAGE` allocation of as many bytes
 *   as the remap copies, and glibc's `memcpy` into it from resident
 *   anonymous memory on 2 MiB pages (issue 14's floor);
 * - **file floor**: the same allocation and `memcpy`, from a fresh private
 *   mapping of the executable file populated with `MADV_POPULATE_READ`
 *   first: the cheapest way this bench knows to put the file's bytes (4 KiB
 *   page-cache pages) on 2 MiB pages, which is what a remap has to do.
 *
 * Each round's ratios are paired; printed are the medians with a 95%
 * bootstrap interval of the median paired ratio, and the parts of the
 * remap the outcome reports (the remap step, the trampoline's calls).
 *
 *   deno run --allow-ffi --allow-read bench/remap_floor.ts [rounds] [--json]
 *   bun bench/remap_floor.ts [rounds] [--json]
 *
 * @module
 */
import { statSync } from "node:fs";
import process from "node:process";
import { prime } from "../mod.ts";
import { addressOf, openLibrary } from "../src/sys/ffi.ts";
import { bootstrapMedianCI, median } from "./ab/stats.ts";

const HUGE = 2 * 1024 * 1024;
const MADV_HUGEPAGE = 14;
const MADV_POPULATE_READ = 22;
const PROT_READ = 1;
const PROT_RW = 3;
const MAP_PRIVATE = 2;
const MAP_PRIVATE_ANON = 0x22;

const lib = openLibrary(["libc.so.6"], {
  mmap: { args: ["u64", "u64", "i32", "i32", "i32", "i64"], returns: "i64" },
  munmap: { args: ["u64", "u64"], returns: "i32" },
  madvise: { args: ["u64", "u64", "i32"], returns: "i32" },
  memcpy: { args: ["u64", "u64", "u64"], returns: "u64" },
  memset: { args: ["u64", "i32", "u64"], returns: "u64" },
  open: { args: ["u64", "i32"], returns: "i32" },
  close: { args: ["i32"], returns: "i32" },
});
const s = lib.symbols;

function mmapOrThrow(len: number, prot: number, flags: number, fd = -1) {
  const p = Number(s.mmap!(0, len, prot, flags, fd, 0));
  if (p < 0) throw new Error(`mmap of ${len} bytes failed: ${p}`);
  return p;
}

/** `len` bytes of anonymous memory at a 2 MiB boundary, `MADV_HUGEPAGE`. */
function mapAligned(len: number): number {
  const p = mmapOrThrow(len + HUGE, PROT_RW, MAP_PRIVATE_ANON);
  const a = Math.ceil(p / HUGE) * HUGE;
  if (a > p) s.munmap!(p, a - p);
  if (p + HUGE > a) s.munmap!(a + len, p + HUGE - a);
  s.madvise!(a, len, MADV_HUGEPAGE);
  return a;
}

/** The floor: THP allocation + memcpy of `bytes` from a resident source. */
function floor(src: number, bytes: number): number {
  const t0 = performance.now();
  const dst = mapAligned(bytes);
  s.memcpy!(dst, src, bytes);
  const ms = performance.now() - t0;
  s.munmap!(dst, bytes);
  return ms;
}

/**
 * The file floor: `bytes` of the executable's page cache, mapped from its
 * start (again from the start where `bytes` passes its end) and populated,
 * copied.
 */
function fileFloor(
  { fd, size }: { fd: number; size: number },
  bytes: number,
): number {
  const t0 = performance.now();
  const dst = mapAligned(bytes);
  const sources: [number, number][] = [];
  for (let done = 0; done < bytes;) {
    const len = Math.min(bytes - done, size);
    const src = mmapOrThrow(len, PROT_READ, MAP_PRIVATE, fd);
    s.madvise!(src, len, MADV_POPULATE_READ);
    s.memcpy!(dst + done, src, len);
    sources.push([src, len]);
    done += len;
  }
  const ms = performance.now() - t0;
  s.munmap!(dst, bytes);
  for (const [src, len] of sources) s.munmap!(src, len);
  return ms;
}

/** One remap, timed, its parts from the outcome; restored untimed. */
function remap(): { ms: number; step: number; trampoline: number } {
  const t0 = performance.now();
  const out = prime().remap(true).run();
  const ms = performance.now() - t0;
  if (!out.ok || !out.remap) throw new Error(out.reason);
  const r = out.remap;
  const parts = {
    ms,
    step: r.ms,
    trampoline: r.regions.reduce((n, g) => n + g.ms, 0),
  };
  out.restore();
  return parts;
}

/** The executable, open, and its size in whole pages. */
function openExecutable(): { fd: number; size: number } {
  const path = new TextEncoder().encode(process.execPath + "\0");
  const fd = s.open!(addressOf(path), 0);
  if (fd < 0) throw new Error(`cannot open ${process.execPath}`);
  const size = Math.floor(statSync(process.execPath).size / 4096) * 4096;
  return { fd, size };
}

function main(): void {
  const rounds = Number(process.argv.find((a) => /^\d+$/.test(a)) ?? 21);
  const probe = prime().remap(true).run();
  if (!probe.ok || !probe.remap) {
    console.error(probe.format());
    process.exit(1);
  }
  const bytes = probe.remap.regions.reduce((n, r) => n + (r.end - r.start), 0);
  probe.restore();
  const src = mapAligned(bytes);
  s.memset!(src, 0x5a, bytes); // resident, on 2 MiB pages
  const exe = openExecutable();
  const steps = [
    () => remaps.push(remap()),
    () => floors.push(floor(src, bytes)),
    () => fileFloors.push(fileFloor(exe, bytes)),
  ];
  const remaps: ReturnType<typeof remap>[] = [];
  const floors: number[] = [];
  const fileFloors: number[] = [];
  for (let i = 0; i < rounds; i++) {
    for (let k = 0; k < steps.length; k++) steps[(i + k) % steps.length]();
  }
  s.close!(exe.fd);
  report({ runtime: probe.runtime, bytes, remaps, floors, fileFloors });
}

function report({ runtime, bytes, remaps, floors, fileFloors }: {
  runtime: string;
  bytes: number;
  remaps: { ms: number; step: number; trampoline: number }[];
  floors: number[];
  fileFloors: number[];
}): void {
  const ms = remaps.map((r) => r.ms);
  const ci = (xs: number[]) => bootstrapMedianCI(xs, { seed: 1 });
  const vsFloor = ci(ms.map((m, i) => m / floors[i]));
  const vsFile = ci(ms.map((m, i) => m / fileFloors[i]));
  const result = {
    runtime,
    bytes,
    rounds: ms.length,
    remapMedianMs: median(ms),
    remapStepMedianMs: median(remaps.map((r) => r.step)),
    trampolineMedianMs: median(remaps.map((r) => r.trampoline)),
    floorMedianMs: median(floors),
    fileFloorMedianMs: median(fileFloors),
    ratio: { median: vsFloor.median, lo: vsFloor.lo, hi: vsFloor.hi },
    fileRatio: { median: vsFile.median, lo: vsFile.lo, hi: vsFile.hi },
  };
  if (process.argv.includes("--json")) {
    console.log(JSON.stringify(result));
    return;
  }
  const f = (x: number) => x.toFixed(1);
  const r = (c: { median: number; lo: number; hi: number }) =>
    `${c.median.toFixed(2)} [${c.lo.toFixed(2)}, ${c.hi.toFixed(2)}]`;
  console.log(
    `${runtime}: remap of ${
      (bytes / 2 ** 20).toFixed(0)
    } MiB, ${ms.length} rounds, medians: remap(true).run() ${
      f(result.remapMedianMs)
    } ms (remap step ${f(result.remapStepMedianMs)}, trampoline ${
      f(result.trampolineMedianMs)
    }); floor ${f(result.floorMedianMs)} ms; file floor ${
      f(result.fileFloorMedianMs)
    } ms\n  remap ÷ floor ${r(result.ratio)}; remap ÷ file floor ${
      r(result.fileRatio)
    } (paired, 95% interval)`,
  );
}

main();
