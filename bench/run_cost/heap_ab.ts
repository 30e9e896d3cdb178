/**
 * The 4 GiB-heap acceptance check of issue 14 in one process: the
 * steady-state medians of `prime().run()` and `prime().remap(true).run()`
 * with no heap, then with 4 GiB touched in 4 KiB pages (`MADV_NOHUGEPAGE`),
 * then with no heap again (the heap unmapped), so a drift of the machine's
 * load shows as a difference between the two no-heap figures. Prints one
 * JSON line; `ratio` is the heap median over the mean of the no-heap ones.
 *
 *   deno run --allow-ffi bench/run_cost/heap_ab.ts [rounds] [GiB]
 *   bun bench/run_cost/heap_ab.ts [rounds] [GiB]
 *
 * @module
 */
import process from "node:process";
import { prime } from "../../mod.ts";
import { openLibrary } from "../../src/sys/ffi.ts";
import { LIBC_NAMES } from "../../src/sys/libc.ts";

const GiB = 1024 ** 3;
const MADV_NOHUGEPAGE = 15;
const PROT_RW = 3;
const MAP_PRIVATE_ANON = 0x22;

const args = process.argv.filter((a) => /^\d+$/.test(a)).map(Number);
const rounds = args[0] ?? 15;
const heap = (args[1] ?? 4) * GiB;

const s = openLibrary(
  LIBC_NAMES,
  {
    mmap: { args: ["u64", "u64", "i32", "i32", "i32", "i64"], returns: "i64" },
    munmap: { args: ["u64", "u64"], returns: "i32" },
    madvise: { args: ["u64", "u64", "i32"], returns: "i32" },
    memset: { args: ["u64", "i32", "u64"], returns: "u64" },
  } as const,
).symbols;

const median = (a: number[]) =>
  [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

/** Medians of `n` rounds of run() and remap(true).run() (restored after). */
function measure(n: number): { runMs: number; remapRunMs: number } {
  const run: number[] = [];
  const remap: number[] = [];
  for (let i = 0; i < n; i++) {
    let t = performance.now();
    prime().run();
    run.push(performance.now() - t);
    t = performance.now();
    const out = prime().remap(true).run();
    remap.push(performance.now() - t);
    if (!out.ok) throw new Error(out.reason ?? "remap failed");
    out.restore();
  }
  return { runMs: median(run), remapRunMs: median(remap) };
}

measure(2); // warm-up
const noHeap = measure(rounds);
const p = s.mmap!(0, heap, PROT_RW, MAP_PRIVATE_ANON, -1, 0);
if (p < 0) throw new Error(`cannot map a ${heap}-byte heap`);
s.madvise!(p, heap, MADV_NOHUGEPAGE);
s.memset!(p, 0x5a, heap);
const withHeap = measure(rounds);
s.munmap!(p, heap);
const noHeapAgain = measure(rounds);
console.log(JSON.stringify({
  runtime: prime().run().runtime,
  rounds,
  heapBytes: heap,
  noHeap,
  withHeap,
  noHeapAgain,
  ratio: withHeap.remapRunMs /
    ((noHeap.remapRunMs + noHeapAgain.remapRunMs) / 2),
}));
