/**
 * In-process A/B benchmark of page-primer's remap: the same workloads timed
 * with the runtime's own code on 2 MiB anonymous pages (`huge`), on a 4 KiB
 * anonymous copy (`small`) and on the original file-backed mapping
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
import { libc } from "../../src/libc.ts";
import {
  type AbResult,
  DEFAULT_OUT,
  type Machine,
  type Measurement,
  type Mode,
  type ModeCoverage,
  type ModeSwitch,
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
import { compare, median } from "./stats.ts";
import { type WorkloadRun, WORKLOADS } from "./workloads.ts";

const HELP = `usage: bench/ab/run.ts [options]

Times each workload with the runtime's code on 2 MiB pages (huge), on a
4 KiB anonymous copy (small) and file-backed (file), interleaved in one
process, and writes <runtime>-<date>.json/.md and ab-<date>.svg.

  --rounds N        rounds per workload, each timing every mode once
                    (default 30, quick 6; rounded up to an even number)
  --workloads a,b   only these (default all: ${
  WORKLOADS.map((w) => w.name).join(",")
})
  --quick           a short pass: 6 rounds, ~25 ms batches, short warm-up
  --backend B       where the huge mode's pages come from: auto (default),
                    thp, hugetlb (size the pool first: see README), memfd,
                    or shared (remap({ share: true })); results of a backend
                    other than auto are written as <runtime>-<date>-<B>.*
  --out DIR         results directory (default bench/results)
  --target-ms MS    time of one timed batch (default 60, quick 25)
  --seed N          bootstrap PRNG seed (default 1)
  --resamples N     bootstrap resamples (default 10000)
  -h, --help        this text

Deno: deno run --allow-ffi --allow-net=127.0.0.1 --allow-read --allow-write=bench/results bench/ab/run.ts
Bun:  bun bench/ab/run.ts
Progress goes to stderr when it is a terminal; the table to stdout.`;

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
  return {
    help: v.help ?? false,
    quick,
    rounds,
    workloads: names,
    backend: backend as Backend,
    out: resolve(v.out ?? DEFAULT_OUT),
    targetMs: positiveInt("target-ms", v["target-ms"], quick ? 25 : 60),
    seed: positiveInt("seed", v.seed, 1),
    resamples: positiveInt("resamples", v.resamples, 10000),
    confidence: 0.95,
  };
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

/** Switches the process between the three modes, verifying each switch. */
class Modes {
  current: Mode = "file";
  constructor(readonly huge: RemapOptions) {}
  readonly switches: ModeSwitch[] = [];
  readonly coverage: Partial<Record<"huge" | "small", ModeCoverage>> = {};

  to(mode: Mode): void {
    if (mode === this.current) return;
    const from = this.current;
    const t0 = performance.now();
    if (from !== "file") {
      const r = restore();
      if (r.failed.length > 0 || r.restored === 0) {
        throw new AbortRun(
          `mode switch ${from} -> ${mode} failed: restore() put back ${r.restored} region(s)${
            r.failed.map((f) => `; ${f.object}: ${f.message}`).join("")
          }`,
        );
      }
      this.current = "file";
    }
    let textHuge = 0;
    if (mode !== "file") {
      const out = prime().remap(
        mode === "huge" ? this.huge : { pageSize: "4k" },
      ).run();
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
        : mode === "huge" && rm.text.huge === 0
        ? "no text on 2 MiB pages"
        : mode === "small" && rm.text.huge > 0
        ? `the 4 KiB copy has ${rm.text.huge} bytes of text on 2 MiB pages`
        : undefined;
      if (why !== undefined) {
        restore();
        throw new AbortRun(`mode switch ${from} -> ${mode} failed: ${why}`);
      }
      textHuge = rm!.text.huge;
      this.coverage[mode] ??= {
        textBytes: rm!.text.bytes,
        textHuge: rm!.text.huge,
        rodataBytes: rm!.rodata.bytes,
        rodataHuge: rm!.rodata.huge,
      };
    }
    this.current = mode;
    this.switches.push({
      from,
      to: mode,
      ms: performance.now() - t0,
      textHuge,
    });
  }
}

/**
 * Mode order of block `b`: a rotation of huge, small, file, then its
 * mirror image, so every mode sits at the same mean position in a block.
 */
export function blockOrder(b: number): Mode[] {
  const base: Mode[] = ["huge", "small", "file"];
  const k = b % 3;
  const first = [...base.slice(k), ...base.slice(0, k)];
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
  progress.show("checking the mode switches…");
  modes.to("huge");
  modes.to("small");
  modes.to("file");

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
          const order = blockOrder(b);
          for (let slot = 0; slot < order.length; slot++) {
            const mode = order[slot];
            progress.show(
              `${name}: block ${b + 1}/${blocks}, ${mode} (${
                slot + 1
              }/6), ${cal.ops} ops per batch`,
            );
            modes.to(mode);
            await timed(run, settleOps);
            const ms = await timed(run, cal.ops);
            measurements.push({
              block: b,
              round: 2 * b + (slot < 3 ? 0 : 1),
              slot,
              mode,
              ops: cal.ops,
              ms,
              usPerOp: ms * 1000 / cal.ops,
            });
          }
        }
        const per = (mode: Mode) =>
          Array.from(
            { length: opt.rounds },
            (_, r) =>
              measurements.find((m) => m.round === r && m.mode === mode)!
                .usPerOp,
          );
        const huge = per("huge");
        const small = per("small");
        const file = per("file");
        const boot = { seed: opt.seed, resamples: opt.resamples };
        const result: WorkloadResult = {
          name,
          description: wl.description,
          opsPerRound: cal.ops,
          settleOps,
          calibratedMs: cal.ms,
          seconds: (performance.now() - w0) / 1000,
          medianUsPerOp: {
            huge: median(huge),
            small: median(small),
            file: median(file),
          },
          smallOverHuge: compare(small, huge, {
            ...boot,
            confidence: opt.confidence,
          }),
          fileOverHuge: compare(file, huge, {
            ...boot,
            confidence: opt.confidence,
          }),
          measurements,
        };
        results.push(result);
        progress.done(
          `${name}: small/huge ${
            result.smallOverHuge.median.toFixed(3)
          }, file/huge ${result.fileOverHuge.median.toFixed(3)} (${
            result.seconds.toFixed(1)
          } s)`,
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
      backend: opt.backend,
      order:
        "mirrored rounds (huge small file | file small huge), rotated by one mode per block",
    },
    coverage: {
      huge: modes.coverage.huge!,
      small: modes.coverage.small!,
    },
    switches: modes.switches,
    workloads: results,
  };
  const paths = writeReports(result, opt.out);
  console.log(renderMarkdown(result));
  console.log(`wrote ${paths.json}\nwrote ${paths.md}\nwrote ${paths.svg}`);
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
