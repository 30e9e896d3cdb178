/**
 * Cost of `prime().remap(true).run()` against the floor: allocating the
 * same number of bytes of 2 MiB-aligned THP and memcpy-ing into it from
 * resident memory, measured alternately in the same process.
 *
 *   deno run --allow-ffi bench/remap_floor.ts [rounds]
 *   bun bench/remap_floor.ts [rounds]
 *
 * Prints medians and the ratio remap/floor; `--json` for a machine line.
 *
 * @module
 */
import process from "node:process";
import { prime } from "../mod.ts";
import { openLibrary } from "../src/sys/ffi.ts";

const rounds = Number(process.argv.find((a) => /^\d+$/.test(a)) ?? 15);
const json = process.argv.includes("--json");
const HUGE = 2 * 1024 * 1024;

const lib = openLibrary(["libc.so.6"], {
  mmap: { args: ["u64", "u64", "i32", "i32", "i32", "i64"], returns: "i64" },
  munmap: { args: ["u64", "u64"], returns: "i32" },
  madvise: { args: ["u64", "u64", "i32"], returns: "i32" },
  memcpy: { args: ["u64", "u64", "u64"], returns: "u64" },
  memset: { args: ["u64", "i32", "u64"], returns: "u64" },
});
const s = lib.symbols;

function mapAligned(len: number): number {
  const p = s.mmap!(0, len + HUGE, 3, 0x22, -1, 0);
  if (p < 0) throw new Error("mmap failed");
  const a = Math.ceil(p / HUGE) * HUGE;
  if (a > p) s.munmap!(p, a - p);
  if (p + len + HUGE > a + len) s.munmap!(a + len, p + len + HUGE - (a + len));
  return a;
}

// The floor: THP allocation + memcpy of `bytes` from a resident source.
function floor(src: number, bytes: number): number {
  const t0 = performance.now();
  const dst = mapAligned(bytes);
  s.madvise!(dst, bytes, 14); // MADV_HUGEPAGE
  s.memcpy!(dst, src, bytes);
  const ms = performance.now() - t0;
  s.munmap!(dst, bytes);
  return ms;
}

const probe = prime().remap(true).run();
if (!probe.ok || !probe.remap) {
  console.error(probe.format());
  process.exit(1);
}
const bytes = probe.remap.regions.reduce((n, r) => n + (r.end - r.start), 0);
probe.restore();
const src = mapAligned(bytes);
s.memset!(src, 0x5a, bytes); // resident source

const remapMs: number[] = [];
const stepMs: number[] = [];
const trampolineMs: number[] = [];
const floorMs: number[] = [];
for (let i = 0; i < rounds; i++) {
  const t0 = performance.now();
  const out = prime().remap(true).run();
  remapMs.push(performance.now() - t0);
  if (!out.ok) throw new Error(out.reason);
  stepMs.push(out.remap!.ms);
  trampolineMs.push(out.remap!.regions.reduce((n, r) => n + r.ms, 0));
  out.restore();
  floorMs.push(floor(src, bytes));
}
const median = (a: number[]) =>
  [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const result = {
  runtime: probe.runtime,
  bytes,
  rounds,
  remapMedianMs: median(remapMs),
  floorMedianMs: median(floorMs),
  remapStepMedianMs: median(stepMs),
  trampolineMedianMs: median(trampolineMs),
  ratio: median(remapMs) / median(floorMs),
  pairedRatios: remapMs.map((r, i) => r / floorMs[i]).sort((a, b) => a - b),
};
if (json) console.log(JSON.stringify(result));
else {
  console.log(
    `${result.runtime}: remap of ${(bytes / 2 ** 20).toFixed(0)} MiB: median ${
      result.remapMedianMs.toFixed(1)
    } ms; floor (THP alloc + memcpy): ${
      result.floorMedianMs.toFixed(1)
    } ms; ratio ${result.ratio.toFixed(2)} (paired median ${
      median(result.pairedRatios).toFixed(2)
    }) over ${rounds} rounds; within the run: remap step ${
      result.remapStepMedianMs.toFixed(1)
    } ms, of which trampoline calls ${result.trampolineMedianMs.toFixed(1)} ms`,
  );
}
