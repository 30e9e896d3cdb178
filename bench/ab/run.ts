/**
 * In-process A/B benchmark of page-primer's remap: the same workloads timed
 * with the runtime's own code on 2 MiB anonymous pages (`huge`), on that
 * same copy split in place into 4 KiB page-table entries (`split`), on a
 * 4 KiB anonymous copy (`small`) and on the original file-backed mapping
 * (`file`), interleaved in balanced blocks within one process. See
 * bench/ab/README.md for the method.
 *
 *   deno run --allow-ffi --allow-net=127.0.0.1 --allow-read --allow-write=bench/results bench/ab/run.ts [options]
 *   bun bench/ab/run.ts [options]
 *
 * @module
 */
import { resolve } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { prime, type RemapOptions, restore } from "../../mod.ts";
import { libc } from "../../src/sys/libc.ts";
import {
  type AbResult,
  comparisonKey,
  DEFAULT_OUT,
  type Machine,
  type Measurement,
  type Mode,
  type ModeCoverage,
  MODES,
  type ModeSwitch,
  type OtherMode,
  renderMarkdown,
  SCHEMA,
  type WorkloadResult,
  writeReports,
} from "./report.ts";
import {
  engine,
  runtimeName,
  runtimeVersion,
  stderrIsTerminal,
} from "./runtime.ts";
import {
  footprintPages,
  FootprintProbe,
  type FootprintSample,
  type WorkloadFootprint,
} from "./footprint.ts";
import { copyUsage, type Range, splitInPlace } from "./split.ts";
import { compare, median } from "./stats.ts";
import { type WorkloadRun, WORKLOADS } from "./workloads.ts";

const HELP = `usage: bench/ab/run.ts [options]

Times each workload with the runtime's code on 2 MiB pages (huge), on the
same copy split in place into 4 KiB entries (split), on a 4 KiB anonymous
copy (small) and file-backed (file), interleaved in one process; measures
each workload's hot-code footprint (4 KiB pages of the executable's text
one batch touches, on the 4 KiB copy, from clear_refs and smaps); writes
ab-<runtime>.json/.md, ab-ratios.svg and ab-gain-vs-footprint.svg.

  --rounds N        rounds per workload, each timing every mode once
                    (default 30, quick 6; rounded up to an even number)
  --workloads a,b   only these (default all: ${
  WORKLOADS.map((w) => w.name).join(",")
})
  --modes a,b       the modes to compare (default all: ${MODES.join(",")});
                    huge is always run, as the reference of every ratio
  --quick           a short pass: 6 rounds, ~25 ms batches, short warm-up
  --backend B       where the huge mode's pages come from: auto (default),
                    thp, hugetlb (size the pool first: see README), memfd,
                    or shared (remap({ share: true })); results of a backend
                    other than auto and thp are written as ab-<runtime>-<B>.*;
                    the split mode needs thp pages: give --backend thp when a
                    hugetlb pool may be reserved (auto would take it)
  --out DIR         results directory (default bench/results)
  --target-ms MS    time of one timed batch (default 60, quick 25)
  --seed N          bootstrap PRNG seed (default 1)
  --resamples N     bootstrap resamples (default 10000)
  -h, --help        this text

Deno: deno run --allow-ffi --allow-net=127.0.0.1 --allow-read --allow-write=bench/results bench/ab/run.ts
Bun:  bun bench/ab/run.ts
Progress goes to stderr when it is a terminal; the table to stdout.`;

/** Batches measured for a workload's footprint (quick: 1). */
const FOOTPRINT_SAMPLES = 3;

const BACKENDS = ["auto", "thp", "hugetlb", "memfd", "shared"] as const;
type Backend = typeof BACKENDS[number];

/** The remap options of the huge mode for a `--backend`. */
function hugeOptions(b: Backend): RemapOptions {
  return b === "shared" ? { share: true } : { backend: b };
}

/** Stops the run with a message, no stack. */
class AbortRun extends Error {}

function positiveInt(name: string, v: string | undefined, dflt: number) {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    throw new AbortRun(`--${name} must be a positive integer; got ${v}`);
  }
  return n;
}

function parseOptions() {
  let parsed;
  try {
    parsed = parseArgs({
      args: process.argv.slice(2),
      options: {
        rounds: { type: "string" },
        workloads: { type: "string" },
        modes: { type: "string" },
        quick: { type: "boolean", default: false },
        out: { type: "string" },
        backend: { type: "string" },
        "target-ms": { type: "string" },
        seed: { type: "string" },
        resamples: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (e) {
    throw new AbortRun(`${(e as Error).message}\n\n${HELP}`);
  }
  const v = parsed.values;
  const quick = v.quick ?? false;
  let rounds = positiveInt("rounds", v.rounds, quick ? 6 : 30);
  if (rounds < 2) rounds = 2;
  if (rounds % 2 === 1) rounds++;
  const all = WORKLOADS.map((w) => w.name);
  const names = v.workloads === undefined
    ? all
    : v.workloads.split(",").map((s) => s.trim()).filter((s) => s !== "");
  for (const n of names) {
    if (!all.includes(n)) {
      throw new AbortRun(
        `unknown workload ${JSON.stringify(n)}; known: ${all.join(", ")}`,
      );
    }
  }
  if (names.length === 0) throw new AbortRun("--workloads: none given");
  const backend = v.backend ?? "auto";
  if (!BACKENDS.includes(backend as Backend)) {
    throw new AbortRun(
      `--backend must be one of ${BACKENDS.join(", ")}; got ${backend}`,
    );
  }
  const modes = parseModes(v.modes);
  if (modes.includes("split") && !["auto", "thp"].includes(backend)) {
    throw new AbortRun(
      `--modes split needs transparent huge pages (--backend auto or thp); ${backend} pages cannot be split in place`,
    );
  }
  return {
    help: v.help ?? false,
    quick,
    rounds,
    workloads: names,
    modes,
    backend: backend as Backend,
    out: resolve(v.out ?? DEFAULT_OUT),
    targetMs: positiveInt("target-ms", v["target-ms"], quick ? 25 : 60),
    seed: positiveInt("seed", v.seed, 1),
    resamples: positiveInt("resamples", v.resamples, 10000),
    confidence: 0.95,
  };
}

/** `--modes`: known, no duplicates, huge added, in the order of {@linkcode MODES}. */
function parseModes(v: string | undefined): Mode[] {
  if (v === undefined) return [...MODES];
  const asked = v.split(",").map((s) => s.trim()).filter((s) => s !== "");
  for (const m of asked) {
    if (!MODES.includes(m as Mode)) {
      throw new AbortRun(
        `unknown mode ${JSON.stringify(m)}; known: ${MODES.join(", ")}`,
      );
    }
  }
  const modes = MODES.filter((m) => m === "huge" || asked.includes(m));
  if (modes.length < 2) {
    throw new AbortRun(
      "--modes: name at least one mode to compare with huge",
    );
  }
  return modes;
}

// ---------------------------------------------------------------- machine

/**
 * Reads a /proc or /sys file through libc, as page-primer does: Deno's own
 * file APIs demand --allow-all for /proc and /sys.
 */
function readText(path: string): string | undefined {
  try {
    return libc().readText(path);
  } catch {
    return undefined;
  }
}

/** The bracketed choice of a sysfs THP file, e.g. `madvise`. */
function selected(text: string | undefined): string {
  if (text === undefined) return "unknown";
  return /\[([^\]]+)\]/.exec(text)?.[1] ?? text.trim();
}

function machineInfo(): Machine {
  const cpuinfo = readText("/proc/cpuinfo") ?? "";
  const mem = /^MemTotal:\s+(\d+) kB/m.exec(readText("/proc/meminfo") ?? "");
  return {
    cpu: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1].trim() ?? "unknown",
    cpus: (cpuinfo.match(/^processor\s*:/gm) ?? []).length,
    kernel: readText("/proc/sys/kernel/osrelease")?.trim() ?? "unknown",
    thpEnabled: selected(
      readText("/sys/kernel/mm/transparent_hugepage/enabled"),
    ),
    thpDefrag: selected(readText("/sys/kernel/mm/transparent_hugepage/defrag")),
    memTotalKiB: mem ? Number(mem[1]) : null,
  };
}

// ------------------------------------------------------------------ modes

/**
 * Switches the process between the modes, verifying each switch: huge,
 * small and file from the remap's or restore's outcome (whose coverage is
 * read from smaps), split from smaps, pagemap and the bytes (see split.ts).
 * Split is reached from a fresh huge copy; leaving it restores that copy.
 */
class Modes {
  current: Mode = "file";
  constructor(readonly huge: RemapOptions) {}
  readonly switches: ModeSwitch[] = [];
  readonly coverage: Partial<Record<"huge" | "small", ModeCoverage>> = {};
  /** The remapped ranges of the current huge copy. */
  #ranges: Range[] = [];
  /** Where the current copy's pages came from (`thp`, `small`, ...). */
  #backend = "";

  to(mode: Mode): void {
    if (mode === this.current) return;
    const from = this.current;
    const t0 = performance.now();
    const rec: ModeSwitch = { from, to: mode, ms: 0, textHuge: 0 };
    if (from === "split") {
      // khugepaged may have collapsed the split copy back meanwhile.
      rec.splitLeftHuge = this.#leftHuge();
    }
    if (from === "huge" && mode === "split") {
      rec.split = this.#split(from);
    } else {
      if (from !== "file") this.#restore(from, mode);
      if (mode !== "file") {
        rec.textHuge = this.#remap(mode === "small" ? "small" : "huge", from);
      }
      if (mode === "split") rec.split = this.#split(from);
    }
    this.current = mode;
    rec.ms = performance.now() - t0;
    this.switches.push(rec);
  }

  #restore(from: Mode, mode: Mode): void {
    const r = restore();
    this.#ranges = [];
    if (r.failed.length > 0 || r.restored === 0) {
      throw new AbortRun(
        `mode switch ${from} -> ${mode} failed: restore() put back ${r.restored} region(s)${
          r.failed.map((f) => `; ${f.object}: ${f.message}`).join("")
        }`,
      );
    }
    this.current = "file";
  }

  /** Remaps on 2 MiB (`huge`) or 4 KiB pages; returns text bytes on 2 MiB pages. */
  #remap(kind: "huge" | "small", from: Mode): number {
    const out = prime().remap(kind === "huge" ? this.huge : { pageSize: "4k" })
      .run();
    const rm = out.remap;
    const bad = rm?.regions.filter((g) => g.status !== "remapped") ?? [];
    const why = out.disabled
      ? "page-primer is disabled (PAGE_PRIMER=off in the environment)"
      : !out.ok
      ? out.reason ?? "outcome not ok"
      : rm === undefined || rm.regions.length === 0
      ? `nothing was remapped${
        rm?.warnings.length ? ": " + rm.warnings.join("; ") : ""
      }`
      : bad.length > 0
      ? `${bad.length} region(s) failed: ${
        bad.map((g) => g.error?.message ?? g.status).join("; ")
      }`
      : kind === "huge" && rm.text.huge === 0
      ? "no text on 2 MiB pages"
      : kind === "small" && rm.text.huge > 0
      ? `the 4 KiB copy has ${rm.text.huge} bytes of text on 2 MiB pages`
      : undefined;
    if (why !== undefined) {
      restore();
      throw new AbortRun(`mode switch ${from} -> ${kind} failed: ${why}`);
    }
    this.current = kind;
    this.#ranges = rm!.regions.map((g) => ({ start: g.start, end: g.end }));
    this.#backend = rm!.backend;
    this.coverage[kind] ??= {
      textBytes: rm!.text.bytes,
      textHuge: rm!.text.huge,
      rodataBytes: rm!.rodata.bytes,
      rodataHuge: rm!.rodata.huge,
    };
    return rm!.text.huge;
  }

  /** Splits the current huge copy in place and verifies it. */
  #split(from: Mode) {
    const fail = (why: string): never => {
      restore();
      this.current = "file";
      throw new AbortRun(`mode switch ${from} -> split failed: ${why}`);
    };
    if (this.#backend !== "thp") {
      fail(
        `the huge copy is on ${this.#backend} pages; only transparent huge pages split in place`,
      );
    }
    try {
      return splitInPlace(this.#ranges);
    } catch (e) {
      return fail((e as Error).message);
    }
  }

  #leftHuge(): number {
    const left = copyUsage(this.#ranges).anonHuge;
    if (left > 0) {
      throw new AbortRun(
        `split mode did not hold: ${left} bytes of the copy were back on 2 MiB pages when leaving it (khugepaged collapsed them during the batch); rerun, or stop khugepaged's scanning`,
      );
    }
    return left;
  }
}

/**
 * Mode order of block `b`: a rotation of `modes` by `b` places, then its
 * mirror image, so every mode sits at the same mean position in a block
 * and, over `modes.length` blocks, is equally often first and last.
 *
 * @example
 * ```ts
 * import { blockOrder } from "./run.ts";
 * console.log(blockOrder(1, ["huge", "small", "file"]));
 * // ["small", "file", "huge", "huge", "file", "small"]
 * ```
 */
export function blockOrder(b: number, modes: readonly Mode[]): Mode[] {
  const k = b % modes.length;
  const first = [...modes.slice(k), ...modes.slice(0, k)];
  return [...first, ...[...first].reverse()];
}

// ---------------------------------------------------------------- timing

async function timed(w: WorkloadRun, ops: number): Promise<number> {
  const t0 = performance.now();
  const r = w.run(ops);
  if (r !== undefined) await r;
  return performance.now() - t0;
}

/** Warm-up for `ms`, then the ops per batch that take about `targetMs`. */
async function calibrate(
  w: WorkloadRun,
  targetMs: number,
  warmMs: number,
): Promise<{ ops: number; ms: number }> {
  const end = performance.now() + warmMs;
  let n = 1;
  while (performance.now() < end) {
    const t = await timed(w, n);
    if (t < 5) n *= 2;
  }
  n = 1;
  let t = await timed(w, n);
  while (t < targetMs / 4) {
    n = Math.min(n * 16, Math.ceil(n * (targetMs / 4) / Math.max(t, 0.01)));
    t = await timed(w, n);
  }
  let ops = Math.max(1, Math.round(n * targetMs / t));
  const ts: number[] = [];
  for (let i = 0; i < 3; i++) ts.push(await timed(w, ops));
  ops = Math.max(1, Math.round(ops * targetMs / median(ts)));
  const check: number[] = [];
  for (let i = 0; i < 3; i++) check.push(await timed(w, ops));
  return { ops, ms: median(check) };
}

/**
 * The workload's footprint: in the small mode, after a settle batch,
 * `samples` batches of `ops`, each between clear_refs and a smaps reading.
 * Run after the timed blocks, so it is neither timed nor followed by a
 * timed batch without a settle step.
 */
async function measureFootprint(
  probe: FootprintProbe,
  modes: Modes,
  w: WorkloadRun,
  ops: number,
  samples: number,
): Promise<WorkloadFootprint> {
  modes.to("small");
  await timed(w, Math.max(1, Math.round(ops / 4)));
  const out: FootprintSample[] = [];
  for (let i = 0; i < samples; i++) {
    out.push(await probe.around(() => timed(w, ops)));
  }
  return { mode: "small", ops, samples: out, pages: footprintPages(out) };
}

class Progress {
  readonly on = stderrIsTerminal();
  show(s: string): void {
    if (this.on) process.stderr.write(`\x1b[2K\r${s}`);
  }
  done(s: string): void {
    if (this.on) process.stderr.write(`\x1b[2K\r${s}\n`);
  }
}

// ------------------------------------------------------------------- main

async function main(): Promise<void> {
  const opt = parseOptions();
  if (opt.help) {
    console.log(HELP);
    return;
  }
  const started = new Date();
  const progress = new Progress();
  const machine = machineInfo();
  const modes = new Modes(hugeOptions(opt.backend));
  const blocks = opt.rounds / 2;

  // A fresh process runs file-backed; put it back there if something else
  // in it remapped, then check that both remaps work before measuring.
  restore();
  const probe = new FootprintProbe();
  const itlb = probe.itlb();
  progress.show("checking the mode switches…");
  for (const m of opt.modes) modes.to(m);
  modes.to("file");
  const per = opt.modes.length;

  const results: WorkloadResult[] = [];
  try {
    for (const name of opt.workloads) {
      const wl = WORKLOADS.find((w) => w.name === name)!;
      const w0 = performance.now();
      modes.to("file");
      progress.show(`${name}: setting up`);
      const run = await wl.setup();
      try {
        progress.show(`${name}: warming up and calibrating`);
        const cal = await calibrate(run, opt.targetMs, opt.quick ? 150 : 500);
        const settleOps = Math.max(1, Math.round(cal.ops / 4));
        const measurements: Measurement[] = [];
        for (let b = 0; b < blocks; b++) {
          const order = blockOrder(b, opt.modes);
          for (let slot = 0; slot < order.length; slot++) {
            const mode = order[slot];
            progress.show(
              `${name}: block ${b + 1}/${blocks}, ${mode} (${
                slot + 1
              }/${order.length}), ${cal.ops} ops per batch`,
            );
            modes.to(mode);
            await timed(run, settleOps);
            const ms = await timed(run, cal.ops);
            measurements.push({
              block: b,
              round: 2 * b + (slot < per ? 0 : 1),
              slot,
              mode,
              ops: cal.ops,
              ms,
              usPerOp: ms * 1000 / cal.ops,
            });
          }
        }
        // After the timed blocks: the steady state, and (with the default
        // modes and block count) already in the small mode, no switch.
        progress.show(`${name}: measuring the footprint`);
        const fp = await measureFootprint(
          probe,
          modes,
          run,
          cal.ops,
          opt.quick ? 1 : FOOTPRINT_SAMPLES,
        );
        const times = (mode: Mode) =>
          Array.from(
            { length: opt.rounds },
            (_, r) =>
              measurements.find((m) => m.round === r && m.mode === mode)!
                .usPerOp,
          );
        const huge = times("huge");
        const boot = {
          seed: opt.seed,
          resamples: opt.resamples,
          confidence: opt.confidence,
        };
        const result: WorkloadResult = {
          name,
          description: wl.description,
          opsPerRound: cal.ops,
          settleOps,
          calibratedMs: cal.ms,
          footprint: fp,
          seconds: 0,
          medianUsPerOp: Object.fromEntries(
            opt.modes.map((m) => [m, median(times(m))]),
          ),
          measurements,
        };
        for (const m of opt.modes) {
          if (m === "huge") continue;
          result[comparisonKey(m)] = compare(times(m), huge, boot);
        }
        result.seconds = (performance.now() - w0) / 1000;
        results.push(result);
        progress.done(
          `${name}: ${fp.pages} pages, ${
            opt.modes.filter((m): m is OtherMode => m !== "huge").map((m) =>
              `${m}/huge ${result[comparisonKey(m)]!.median.toFixed(3)}`
            ).join(", ")
          } (${result.seconds.toFixed(1)} s)`,
        );
      } finally {
        await run.close();
      }
    }
  } finally {
    modes.to("file");
  }

  const finished = new Date();
  const result: AbResult = {
    schema: SCHEMA,
    runtime: { name: runtimeName, version: runtimeVersion, engine },
    machine,
    itlb,
    date: started.toISOString().slice(0, 10),
    started: started.toISOString(),
    finished: finished.toISOString(),
    seconds: (finished.getTime() - started.getTime()) / 1000,
    options: {
      rounds: opt.rounds,
      blocks,
      quick: opt.quick,
      targetMs: opt.targetMs,
      seed: opt.seed,
      resamples: opt.resamples,
      confidence: opt.confidence,
      workloads: opt.workloads,
      modes: opt.modes,
      backend: opt.backend,
      order: `mirrored rounds (${opt.modes.join(" ")} | ${
        [...opt.modes].reverse().join(" ")
      }), rotated by one mode per block`,
    },
    coverage: {
      huge: modes.coverage.huge!,
      small: modes.coverage.small,
    },
    switches: modes.switches,
    workloads: results,
  };
  const paths = writeReports(result, opt.out);
  console.log(renderMarkdown(result));
  console.log(
    [paths.json, paths.md, paths.svg, paths.gain].map((p) => `wrote ${p}`)
      .join("\n"),
  );
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    if (e instanceof AbortRun) {
      console.error(`bench/ab: ${e.message}`);
    } else {
      console.error("bench/ab: aborted:", e);
    }
    try {
      restore();
    } catch {
      // already reported
    }
    process.exit(1);
  }
}
