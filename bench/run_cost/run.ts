/**
 * Steady-state cost of `prime().run()` (inspect only) and
 * `prime().remap(true).run()` against the rest of the process: heap size
 * (none, 1 GiB, 4 GiB touched in 4 KiB pages) and VMA count (the runtime's
 * own ~100, or ~20,000 more small mappings), on the per-range path and on
 * the smaps path (`PAGE_PRIMER_SMAPS=1`), against the floor (a 2 MiB-aligned
 * THP allocation plus memcpy of the same bytes) in the same process.
 *
 *   deno run -A bench/run_cost/run.ts [--rounds N] [--cases a,b] [--runtimes deno,bun] [--tag name]
 *   bun bench/run_cost/run.ts ...
 *
 * Each case runs in a fresh child of each runtime. In it, after one warm-up
 * of each, rounds alternate the two paths in pairs (fast then smaps, then
 * smaps then fast), each pair timing run(), remap(true).run() (its copies
 * restored after, untimed) and the floor; the figures are medians over the
 * rounds. Writes bench/results/latest/run_cost-<tag>.{json,md}.
 *
 * @module
 */
import process from "node:process";
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { prime } from "../../mod.ts";
import { openLibrary } from "../../src/sys/ffi.ts";
import { libc, LIBC_NAMES } from "../../src/sys/libc.ts";
import { parseMaps } from "../../src/sys/maps.ts";
import { readVmaStats } from "../../src/sys/vma_stats.ts";

const HUGE = 2 * 1024 * 1024;
const GiB = 1024 ** 3;
const PAGE = 4096;
const MADV_HUGEPAGE = 14;
const MADV_NOHUGEPAGE = 15;
const PROT_RW = 3;
const PROT_R = 1;
const MAP_PRIVATE_ANON = 0x22;

/** A case: heap bytes touched and extra VMAs made before measuring. */
interface Case {
  name: string;
  heap: number;
  vmas: number;
}
const CASES: Case[] = [
  { name: "base", heap: 0, vmas: 0 },
  { name: "heap-1g", heap: 1 * GiB, vmas: 0 },
  { name: "heap-4g", heap: 4 * GiB, vmas: 0 },
  { name: "vmas-20k", heap: 0, vmas: 20_000 },
];

/** Medians of one path in one child, ms. */
interface PathResult {
  runMs: number;
  remapRunMs: number;
  remapStepMs: number;
  /**
   * remap(true).run() minus its trampoline calls (the regions' `ms`): what
   * the run costs besides the copies and swaps, ms.
   */
  outsideMs: number;
  /** The per-range statistics of the executable alone, ms. */
  statsMs: number;
}

/** What a child prints. */
interface ChildResult {
  runtime: string;
  case: string;
  rounds: number;
  vmaCount: number;
  bytes: number;
  fast: PathResult;
  smaps: PathResult;
  fastSource: string;
  floorMs: number;
  /** Median of the per-pair ratios remap(true).run() / floor, fast path. */
  fastPairedRatio: number;
}

const median = (a: number[]) =>
  [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

// --- child -------------------------------------------------------------------

const lib = () =>
  openLibrary(
    LIBC_NAMES,
    {
      mmap: {
        args: ["u64", "u64", "i32", "i32", "i32", "i64"],
        returns: "i64",
      },
      munmap: { args: ["u64", "u64"], returns: "i32" },
      madvise: { args: ["u64", "u64", "i32"], returns: "i32" },
      mprotect: { args: ["u64", "u64", "i32"], returns: "i32" },
      memcpy: { args: ["u64", "u64", "u64"], returns: "u64" },
      memset: { args: ["u64", "i32", "u64"], returns: "u64" },
      setenv: { args: ["u64", "u64", "i32"], returns: "i32" },
      unsetenv: { args: ["u64"], returns: "i32" },
    } as const,
  ).symbols;

type Syms = ReturnType<typeof lib>;

function cstr(s: string): Uint8Array {
  return new TextEncoder().encode(s + "\0");
}

function mapAligned(s: Syms, len: number): number {
  const p = s.mmap!(0, len + HUGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0);
  if (p < 0) throw new Error("mmap failed");
  const a = Math.ceil(p / HUGE) * HUGE;
  if (a > p) s.munmap!(p, a - p);
  s.munmap!(a + len, p + HUGE - a);
  return a;
}

/** Touches `bytes` of anonymous memory in 4 KiB pages. */
function makeHeap(s: Syms, bytes: number): void {
  if (bytes === 0) return;
  const p = s.mmap!(0, bytes, PROT_RW, MAP_PRIVATE_ANON, -1, 0);
  if (p < 0) throw new Error(`cannot map a ${bytes}-byte heap`);
  s.madvise!(p, bytes, MADV_NOHUGEPAGE);
  s.memset!(p, 0x5a, bytes);
}

/** `count` one-page VMAs that do not merge: alternate protections. */
function makeVmas(s: Syms, count: number): void {
  if (count === 0) return;
  const bytes = count * PAGE;
  const p = s.mmap!(0, bytes, PROT_RW, MAP_PRIVATE_ANON, -1, 0);
  if (p < 0) throw new Error("cannot map the small mappings");
  s.madvise!(p, bytes, MADV_NOHUGEPAGE);
  s.memset!(p, 1, bytes);
  for (let i = 1; i < count; i += 2) {
    if (s.mprotect!(p + i * PAGE, PAGE, PROT_R) !== 0) {
      throw new Error("mprotect failed");
    }
  }
}

/** The floor: THP allocation + memcpy of `bytes` from a resident source. */
function floor(s: Syms, src: number, bytes: number): number {
  const t0 = performance.now();
  const dst = mapAligned(s, bytes);
  s.madvise!(dst, bytes, MADV_HUGEPAGE);
  s.memcpy!(dst, src, bytes);
  const ms = performance.now() - t0;
  s.munmap!(dst, bytes);
  return ms;
}

function child(c: Case, rounds: number): ChildResult {
  const s = lib();
  const cc = libc();
  const name = cstr("PAGE_PRIMER_SMAPS");
  const one = cstr("1");
  const { addressOf } = ffiAddress;
  const setPath = (smaps: boolean) =>
    smaps
      ? s.setenv!(addressOf(name), addressOf(one), 1)
      : s.unsetenv!(addressOf(name));
  makeHeap(s, c.heap);
  makeVmas(s, c.vmas);
  const exe = cc.readlink("/proc/self/exe");
  const ranges = parseMaps(cc.readText("/proc/self/maps"))
    .filter((v) => v.path === exe);
  const vmaCount = parseMaps(cc.readText("/proc/self/maps")).length;
  // Warm-up: one of each on each path, and the copy size.
  let bytes = 0;
  for (const smaps of [false, true]) {
    setPath(smaps);
    prime().run();
    const out = prime().remap(true).run();
    if (!out.ok || !out.remap) throw new Error(out.reason ?? "remap failed");
    bytes = out.remap.regions.reduce((n, r) => n + (r.end - r.start), 0);
    out.restore();
  }
  const src = mapAligned(s, bytes);
  s.memset!(src, 0x5a, bytes);
  floor(s, src, bytes);
  const samples = {
    false: {
      run: [] as number[],
      remap: [] as number[],
      step: [] as number[],
      outside: [] as number[],
      stats: [] as number[],
    },
    true: {
      run: [] as number[],
      remap: [] as number[],
      step: [] as number[],
      outside: [] as number[],
      stats: [] as number[],
    },
  };
  const floors: number[] = [];
  const paired: number[] = [];
  let fastSource = "";
  for (let i = 0; i < rounds; i++) {
    const order = i % 2 === 0 ? [false, true] : [true, false];
    for (const smaps of order) {
      setPath(smaps);
      const k = smaps ? samples.true : samples.false;
      let t = performance.now();
      const st = readVmaStats(cc, ranges);
      k.stats.push(performance.now() - t);
      if (!smaps) fastSource = st.source;
      t = performance.now();
      prime().run();
      k.run.push(performance.now() - t);
      t = performance.now();
      const out = prime().remap(true).run();
      const ms = performance.now() - t;
      k.remap.push(ms);
      k.step.push(out.remap?.ms ?? NaN);
      k.outside.push(
        ms - (out.remap?.regions.reduce((n, r) => n + r.ms, 0) ?? NaN),
      );
      out.restore();
      const f = floor(s, src, bytes);
      floors.push(f);
      if (!smaps) paired.push(ms / f);
    }
  }
  setPath(false);
  const result = (k: typeof samples.false): PathResult => ({
    runMs: median(k.run),
    remapRunMs: median(k.remap),
    remapStepMs: median(k.step),
    outsideMs: median(k.outside),
    statsMs: median(k.stats),
  });
  return {
    runtime: prime().run().runtime,
    case: c.name,
    rounds,
    vmaCount,
    bytes,
    fast: result(samples.false),
    smaps: result(samples.true),
    fastSource,
    floorMs: median(floors),
    fastPairedRatio: median(paired),
  };
}

// addressOf is imported lazily so the driver needs no FFI.
const ffiAddress = await import("../../src/sys/ffi.ts");

// --- driver ------------------------------------------------------------------

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

function runChild(rt: string, c: Case, rounds: number): ChildResult {
  const argv = rt === "deno"
    ? [`${ROOT}node_modules/.bin/deno`, "run", "--allow-ffi"]
    : [`${ROOT}node_modules/.bin/bun`];
  const r = spawnSync(argv[0], [
    ...argv.slice(1),
    fileURLToPath(import.meta.url),
    "--child",
    c.name,
    "--rounds",
    String(rounds),
  ], { encoding: "utf8", maxBuffer: 1 << 24, env: { ...process.env } });
  const line = /^RUN_COST (.*)$/m.exec(r.stdout ?? "");
  if (!line) {
    throw new Error(
      `${rt} ${c.name}: no result: ${(r.stderr ?? "").slice(-2000)}`,
    );
  }
  return JSON.parse(line[1]);
}

const f1 = (n: number) => n.toFixed(1);
const f2 = (n: number) => n.toFixed(2);

/** remap(true).run() over the base case's, or a dash without it. */
function ratioToBase(r: ChildResult, base: ChildResult | undefined): string {
  return base ? f2(r.fast.remapRunMs / base.fast.remapRunMs) : "–";
}

function table(results: ChildResult[]): string {
  const base = (r: ChildResult) =>
    results.find((x) => x.runtime === r.runtime && x.case === "base");
  const lines = [
    "| runtime | case | VMAs | run() fast / smaps ms | remap(true).run() fast / smaps ms | remap step fast / smaps ms | remap outside trampoline fast / smaps ms | per-range stats / smaps read ms | floor ms | remap fast ÷ floor (paired) | remap fast ÷ base |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const r of results) {
    lines.push(
      `| ${r.runtime} | ${r.case} | ${r.vmaCount} | ${f2(r.fast.runMs)} / ${
        f2(r.smaps.runMs)
      } | ${f1(r.fast.remapRunMs)} / ${f1(r.smaps.remapRunMs)} | ${
        f1(r.fast.remapStepMs)
      } / ${f1(r.smaps.remapStepMs)} | ${f2(r.fast.outsideMs)} / ${
        f2(r.smaps.outsideMs)
      } | ${f2(r.fast.statsMs)} / ${f2(r.smaps.statsMs)} | ${f1(r.floorMs)} | ${
        f2(r.fastPairedRatio)
      } | ${ratioToBase(r, base(r))} |`,
    );
  }
  return lines.join("\n");
}

if (process.argv.includes("--child")) {
  const c = CASES.find((x) => x.name === argValue("--child"));
  if (!c) throw new RangeError(`unknown case ${argValue("--child")}`);
  const rounds = Number(argValue("--rounds") ?? 15);
  console.log("RUN_COST " + JSON.stringify(child(c, rounds)));
  process.exit(0);
} else {
  const rounds = Number(argValue("--rounds") ?? 15);
  const names = argValue("--cases")?.split(",") ?? CASES.map((c) => c.name);
  const runtimes = argValue("--runtimes")?.split(",") ?? ["deno", "bun"];
  const tag = argValue("--tag") ?? "latest";
  const results: ChildResult[] = [];
  for (const rt of runtimes) {
    for (const n of names) {
      const c = CASES.find((x) => x.name === n);
      if (!c) {
        throw new RangeError(
          `unknown case ${n}; cases: ${CASES.map((x) => x.name)}`,
        );
      }
      const r = runChild(rt, c, rounds);
      console.error(`${rt} ${n}: ${JSON.stringify(r)}`);
      results.push(r);
    }
  }
  const md = table(results);
  console.log(md);
  const dir = `${ROOT}bench/results/latest`;
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    `${dir}/run_cost-${tag}.json`,
    JSON.stringify(
      { date: new Date().toISOString(), rounds, results },
      null,
      2,
    ) + "\n",
  );
  writeFileSync(
    `${dir}/run_cost-${tag}.md`,
    `# run_cost (${tag})\n\n${
      new Date().toISOString()
    }, ${rounds} rounds per path; medians, ms. \`node_modules/.bin/deno run -A bench/run_cost/run.ts --tag ${tag}\`\n\n${md}\n`,
  );
}
