/**
 * Output of the A/B benchmark: the result type, the JSON file (a summary of
 * footprints and ratios per workload first, then everything, raw per-round
 * times included), a Markdown table per runtime and two SVG charts that
 * combine every runtime's `ab-<runtime>.json` in the results directory
 * (file/huge per workload; gain against footprint, from ./gain_chart.ts).
 * Rendering is pure; the file helpers at the end use `node:fs`.
 *
 * Run on its own it rebuilds the Markdown and SVGs from the JSON files:
 *
 *   deno run --allow-read=DIR --allow-write=DIR bench/ab/report.ts [--out DIR] [--date YYYY-MM-DD]
 *   bun bench/ab/report.ts [--out DIR] [--date YYYY-MM-DD]
 *
 * (`--date`: the older files named `<runtime>-<date>.json`.)
 *
 * @module
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import type { ItlbInfo } from "../../src/tools/footprint.ts";
import type { WorkloadFootprint } from "./footprint.ts";
import { renderGainChart } from "./gain_chart.ts";
import type { SplitCheck } from "./split.ts";
import { minPairs, type RatioSummary } from "./stats.ts";

/** Identifies the JSON format. */
export const SCHEMA = "page-primer/bench-ab/1";

/**
 * Where the code runs: 2 MiB anonymous copy, the same copy split in place
 * into 4 KiB entries, a 4 KiB anonymous copy, the file.
 */
export type Mode = "huge" | "split" | "small" | "file";

/** Every mode, in the order of a block's first round. */
export const MODES: readonly Mode[] = ["huge", "split", "small", "file"];

/** The modes compared with `huge`. */
export type OtherMode = Exclude<Mode, "huge">;

/** The key of the comparison of `mode` with huge in a {@linkcode WorkloadResult}. */
export function comparisonKey(
  mode: OtherMode,
): "splitOverHuge" | "smallOverHuge" | "fileOverHuge" {
  return `${mode}OverHuge`;
}

/** The modes of a run (results made before `--modes` existed ran huge, small, file). */
export function modesOf(r: AbResult): Mode[] {
  return r.options.modes ?? ["huge", "small", "file"];
}

/** The machine a result was measured on. */
export interface Machine {
  /** `model name` from /proc/cpuinfo. */
  cpu: string;
  /** Processors in /proc/cpuinfo. */
  cpus: number;
  /** /proc/sys/kernel/osrelease. */
  kernel: string;
  /** The selected value of /sys/kernel/mm/transparent_hugepage/enabled. */
  thpEnabled: string;
  /** The selected value of /sys/kernel/mm/transparent_hugepage/defrag. */
  thpDefrag: string;
  /** MemTotal from /proc/meminfo, KiB. */
  memTotalKiB: number | null;
}

/** One timed batch of ops. */
export interface Measurement {
  /** Block index (a block is two mirrored rounds). */
  block: number;
  /** Round index; a round measures each mode once. */
  round: number;
  /** Position in the block, 0 to 2 × modes - 1. */
  slot: number;
  /** Mode during the batch. */
  mode: Mode;
  /** Ops in the batch. */
  ops: number;
  /** Milliseconds of the batch. */
  ms: number;
  /** Microseconds per op. */
  usPerOp: number;
}

/** A paired comparison `other / huge`. */
export type Comparison = RatioSummary & { ratios: number[] };

/** A median ratio and its interval, as the summary of the results lists it. */
export interface RatioBrief {
  /** Median paired ratio (other / huge). */
  median: number;
  /** Lower bound of the interval. */
  lo: number;
  /** Upper bound of the interval. */
  hi: number;
}

/** Everything measured for one workload. */
export interface WorkloadResult {
  /** Name. */
  name: string;
  /**
   * Distinct 4 KiB pages of the executable's text touched by one batch
   * (`footprint.pages`); written by {@linkcode writeReports}, `null` when
   * not measured.
   */
  footprintPages?: number | null;
  /** The comparisons' medians and intervals; written by {@linkcode writeReports}. */
  ratios?: Partial<Record<OtherMode, RatioBrief>>;
  /** The hot-code footprint, measured around batches in the small mode. */
  footprint?: WorkloadFootprint;
  /** What one op does. */
  description: string;
  /** Ops per timed batch, from calibration. */
  opsPerRound: number;
  /** Untimed ops run in the mode just before each timed batch. */
  settleOps: number;
  /** Milliseconds of a batch at calibration. */
  calibratedMs: number;
  /** Seconds this workload took, switches included. */
  seconds: number;
  /** Median µs per op per mode run. */
  medianUsPerOp: Partial<Record<Mode, number>>;
  /** split / huge, paired by round (when split ran). */
  splitOverHuge?: Comparison;
  /** small / huge, paired by round (when small ran). */
  smallOverHuge?: Comparison;
  /** file / huge, paired by round (when file ran). */
  fileOverHuge?: Comparison;
  /** Every timed batch, in run order. */
  measurements: Measurement[];
}

/** Coverage of one remap mode, from its outcome. */
export interface ModeCoverage {
  /** Text bytes of the runtime executable. */
  textBytes: number;
  /** Of those, on 2 MiB pages. */
  textHuge: number;
  /** Read-only data bytes. */
  rodataBytes: number;
  /** Of those, on 2 MiB pages. */
  rodataHuge: number;
}

/** What one switch to `split` did, verified from smaps, pagemap and bytes. */
export type SplitSwitch = SplitCheck;

/** A mode switch, as done and verified. */
export interface ModeSwitch {
  /** From. */
  from: Mode;
  /** To. */
  to: Mode;
  /** Milliseconds (restore + remap). */
  ms: number;
  /** Text on 2 MiB pages afterwards (0 for split, small and file). */
  textHuge: number;
  /** For a switch to split: the verification. */
  split?: SplitSwitch;
  /**
   * For a switch away from split: AnonHugePages of the copy just before
   * leaving (0 unless khugepaged collapsed it back during the batch).
   */
  splitLeftHuge?: number;
}

/** One run of `bench/ab/run.ts`. */
export interface AbResult {
  /** {@linkcode SCHEMA} */
  schema: string;
  /** Runtime. */
  runtime: { name: string; version: string; engine: string };
  /** Machine. */
  machine: Machine;
  /** UTC date the run started, YYYY-MM-DD. */
  date: string;
  /** ISO start time. */
  started: string;
  /** ISO end time. */
  finished: string;
  /** Seconds of the whole run. */
  seconds: number;
  /** Options. */
  options: {
    rounds: number;
    blocks: number;
    quick: boolean;
    targetMs: number;
    seed: number;
    resamples: number;
    confidence: number;
    workloads: string[];
    /** `--modes`; absent in results made before it existed (huge, small, file). */
    modes?: Mode[];
    /** `--backend` of the huge mode; absent in results made before it existed. */
    backend?: string;
    order: string;
  };
  /** The CPU's instruction TLB from CPUID (absent in results made before it was read). */
  itlb?: ItlbInfo | { unknown: string };
  /** Coverage reached by the `huge` and `small` remaps (first switch; small only when it ran). */
  coverage: { huge: ModeCoverage; small?: ModeCoverage };
  /** Every mode switch. */
  switches: ModeSwitch[];
  /** Per workload. */
  workloads: WorkloadResult[];
}

// ------------------------------------------------------------ formatting

/** Microseconds with 4 significant figures or so. */
export function formatUs(us: number): string {
  if (us >= 1000) return us.toFixed(0);
  if (us >= 100) return us.toFixed(1);
  if (us >= 10) return us.toFixed(2);
  return us.toFixed(3);
}

/**
 * A ratio with 3 decimals, or more when 3 would print `1.000` for a value
 * that is not 1 (an interval bound just above or below 1 must not look
 * like it touches 1).
 */
export function formatRatioValue(v: number): string {
  for (let d = 3; d < 7; d++) {
    const s = v.toFixed(d);
    if (v === 1 || Number(s) !== 1) return s;
  }
  return v.toFixed(7);
}

/** `1.012 [0.998, 1.030]` */
export function formatRatio(c: RatioSummary): string {
  return `${formatRatioValue(c.median)} [${formatRatioValue(c.lo)}, ${
    formatRatioValue(c.hi)
  }]`;
}

function pct(part: number, whole: number): string {
  return whole > 0 ? `${(100 * part / whole).toFixed(1)}%` : "-";
}

/** The Markdown report of one run. */
export function renderMarkdown(r: AbResult): string {
  const m = r.machine;
  const o = r.options;
  const conf = Math.round(o.confidence * 100);
  const sw = r.switches.map((s) => s.ms).sort((a, b) => a - b);
  const modes = modesOf(r);
  const others = modes.filter((x): x is OtherMode => x !== "huge");
  const splits = r.switches.filter((s) => s.split !== undefined);
  const lines = [
    `# page-primer A/B: ${r.runtime.name} ${r.runtime.version}, ${r.date}${
      o.backend && o.backend !== "auto" ? `, huge = ${o.backend} backend` : ""
    }${o.quick ? " (quick pass)" : ""}`,
    "",
    `- machine: ${m.cpu}, ${m.cpus} CPUs, ${
      m.memTotalKiB === null
        ? "? MiB"
        : `${Math.round(m.memTotalKiB / 1024)} MiB`
    }, Linux ${m.kernel}, THP enabled=${m.thpEnabled} defrag=${m.thpDefrag}`,
    `- runtime: ${r.runtime.name} ${r.runtime.version} (${r.runtime.engine})`,
    `- ${o.rounds} rounds in ${o.blocks} blocks (${o.order}), ~${o.targetMs} ms per timed batch; started ${r.started}, ${
      r.seconds.toFixed(0)
    } s`,
    `- huge: text ${
      pct(r.coverage.huge.textHuge, r.coverage.huge.textBytes)
    }, rodata ${
      pct(r.coverage.huge.rodataHuge, r.coverage.huge.rodataBytes)
    } on 2 MiB pages${
      r.coverage.small
        ? `; small: text ${
          pct(r.coverage.small.textHuge, r.coverage.small.textBytes)
        } on 2 MiB pages`
        : ""
    }; ${sw.length} mode switches, median ${
      (sw[Math.floor(sw.length / 2)] ?? 0).toFixed(0)
    } ms`,
    ...(splits.length > 0 ? [splitLine(splits)] : []),
    ...(r.itlb !== undefined ? [itlbLine(r.itlb)] : []),
    `- ${conf}% percentile-bootstrap interval of the median paired ratio (${o.resamples} resamples, seed ${o.seed})`,
    "",
    `| workload | footprint pages | ${
      modes.map((x) => `${x} µs/op`).join(" | ")
    } | ${others.map((x) => `${x}/huge [${conf}% CI]`).join(" | ")} | ${
      others.map((x) => `huge vs ${x}`).join(" | ")
    } |`,
    `| --- | ---: | ${modes.map(() => "---:").join(" | ")} | ${
      [...others, ...others].map(() => "---").join(" | ")
    } |`,
  ];
  for (const w of r.workloads) {
    const u = w.medianUsPerOp;
    const c = others.map((x) => w[comparisonKey(x)]);
    lines.push(
      `| ${w.name} | ${w.footprint?.pages ?? "-"} | ${
        modes.map((x) => u[x] === undefined ? "-" : formatUs(u[x]!)).join(
          " | ",
        )
      } | ${c.map((x) => x ? formatRatio(x) : "-").join(" | ")} | ${
        c.map((x) => x?.verdict ?? "-").join(" | ")
      } |`,
    );
  }
  lines.push(
    "",
    "Footprint: distinct 4 KiB pages of the runtime executable's text (with V8's builtins mapping) touched by one batch, median of the batches measured on the 4 KiB copy after /proc/self/clear_refs (bench/ab/footprint.ts).",
    "",
    "Ratios are time per op in the other mode over time per op on 2 MiB pages, paired round by round within a block: above 1 means the huge-page text was faster. " +
      `"faster" or "slower" only where the ${conf}% interval excludes 1` +
      (o.rounds < minPairs(o.confidence)
        ? `; with fewer than ${
          minPairs(o.confidence)
        } rounds no verdict is possible at all.`
        : "."),
    "",
    "Workloads:",
    "",
    ...r.workloads.map((w) =>
      `- ${w.name}: ${w.description}; ${w.opsPerRound} ops per batch`
    ),
    "",
  );
  return lines.join("\n");
}

/** The header line of the CPU's instruction TLB. */
function itlbLine(t: ItlbInfo | { unknown: string }): string {
  if ("unknown" in t) return `- instruction TLB: unknown (${t.unknown})`;
  return `- instruction TLB (CPUID, ${t.vendor}): ${
    t.levels.map((l) =>
      `L${l.level} ${
        l.unified ? "unified" : "instruction"
      } ${l.entries4k} entries for 4 KiB pages (${
        l.entries4k * 4
      } KiB), ${l.entries2m} for 2 MiB`
    ).join("; ")
  }`;
}

/** The header line that sums up the verified splits of a run. */
function splitLine(splits: readonly ModeSwitch[]): string {
  const s = splits.map((x) => x.split!);
  const frames = s.reduce((a, x) => a + x.framesChecked, 0);
  const pages = s.reduce((a, x) => a + x.pages, 0);
  const mib = (b: number) => (b / 1048576).toFixed(0);
  return `- split: ${splits.length} splits of the huge copy in place (MADV_COLD on ${
    s[0].pages
  } pages, one per 2 MiB): AnonHugePages ${mib(s[0].anonHugeBefore)} -> ${
    mib(Math.max(...s.map((x) => x.anonHugeAfter)))
  } MiB, Rss ${mib(s[0].rssBefore)} -> ${mib(s[0].rssAfter)} MiB (${
    mib(s[0].zeroBytes)
  } MiB of zero-filled pages may go to the shared zero page), bytes unchanged, ${
    frames === 0
      ? "frames not readable (pagemap needs root)"
      : `same frames (${frames} of ${pages} pages checked)`
  }`;
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

const COLOURS: Record<string, string> = { deno: "#1f6fb4", bun: "#d2591e" };
const SPARE = ["#2c9f2c", "#9467bd", "#8c564b", "#e377c2"];

function colourOf(name: string, i: number): string {
  return COLOURS[name] ?? SPARE[i % SPARE.length];
}

/** A tick step giving 4 to 10 ticks over `span`. */
export function tickStep(span: number): number {
  const raw = span / 6;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

/**
 * The SVG chart of a date: one row per workload, per runtime the median
 * file/huge ratio as a dot and its interval as a bar, a vertical line at 1.
 */
export function renderSvg(results: readonly AbResult[]): string {
  const names: string[] = [];
  for (const r of results) {
    for (const w of r.workloads) {
      if (!names.includes(w.name)) names.push(w.name);
    }
  }
  let lo = 1, hi = 1;
  for (const r of results) {
    for (const w of r.workloads) {
      if (!w.fileOverHuge) continue;
      lo = Math.min(lo, w.fileOverHuge.lo);
      hi = Math.max(hi, w.fileOverHuge.hi);
    }
  }
  const span0 = Math.max(hi - lo, 0.04);
  lo -= span0 * 0.08;
  hi += span0 * 0.08;
  const step = tickStep(hi - lo);
  lo = Math.floor(lo / step) * step;
  hi = Math.ceil(hi / step) * step;

  const width = 760;
  const left = 120, right = 24;
  const perRuntime = 14;
  const rowH = Math.max(1, results.length) * perRuntime + 14;
  const top = 84;
  const plotH = names.length * rowH;
  const height = top + plotH + 58;
  const x = (v: number) => left + (v - lo) / (hi - lo) * (width - left - right);
  const f = (v: number) => v.toFixed(1);
  const dates = [...new Set(results.map((r) => r.date))].join(", ");
  const conf = results.length
    ? Math.round(results[0].options.confidence * 100)
    : 95;

  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${left}" y="22" font-size="15" font-weight="600">page-primer A/B, ${
      esc(dates)
    }: file-backed text / 2 MiB huge-page text</text>`,
    `<text x="${left}" y="40" fill="#555">dot: median paired ratio of time per op (hollow: no difference detected); bar: ${conf}% bootstrap interval</text>`,
  ];
  // Legend.
  let lx = left;
  results.forEach((r, i) => {
    const c = colourOf(r.runtime.name, i);
    const label =
      `${r.runtime.name} ${r.runtime.version} (${r.options.rounds} rounds${
        r.options.quick ? ", quick" : ""
      })`;
    out.push(
      `<circle cx="${lx + 5}" cy="60" r="4.5" fill="${c}"/>`,
      `<text x="${lx + 14}" y="64">${esc(label)}</text>`,
    );
    lx += 24 + label.length * 6.6;
  });
  // Row bands and labels.
  names.forEach((n, i) => {
    const y = top + i * rowH;
    if (i % 2 === 0) {
      out.push(
        `<rect x="0" y="${y}" width="${width}" height="${rowH}" fill="#f4f5f7"/>`,
      );
    }
    out.push(
      `<text x="${left - 10}" y="${f(y + rowH / 2 + 4)}" text-anchor="end">${
        esc(n)
      }</text>`,
    );
  });
  // Grid and axis.
  const axisY = top + plotH;
  for (let v = lo, k = 0; v <= hi + step / 2 && k < 50; v += step, k++) {
    const vv = Math.round(v / step) * step;
    out.push(
      `<line x1="${f(x(vv))}" y1="${top}" x2="${
        f(x(vv))
      }" y2="${axisY}" stroke="#dde0e4"/>`,
      `<text x="${f(x(vv))}" y="${
        axisY + 16
      }" text-anchor="middle" fill="#333">${
        vv.toFixed(step < 0.01 ? 3 : 2)
      }</text>`,
    );
  }
  out.push(
    `<line x1="${left}" y1="${axisY}" x2="${
      width - right
    }" y2="${axisY}" stroke="#888"/>`,
    `<line x1="${f(x(1))}" y1="${top - 6}" x2="${
      f(x(1))
    }" y2="${axisY}" stroke="#222" stroke-width="1.5"/>`,
    `<text x="${f((left + width - right) / 2)}" y="${
      axisY + 38
    }" text-anchor="middle" fill="#333">file / huge (time per op): &gt; 1 means 2 MiB pages were faster</text>`,
  );
  // Dots and intervals.
  results.forEach((r, j) => {
    const c = colourOf(r.runtime.name, j);
    for (const w of r.workloads) {
      const i = names.indexOf(w.name);
      const y = top + i * rowH + 7 + perRuntime / 2 + j * perRuntime;
      const s = w.fileOverHuge;
      if (!s) continue;
      const tip = `${r.runtime.name} ${w.name}: file/huge ${
        formatRatio(s)
      }, ${s.verdict}`;
      out.push(
        `<g><title>${esc(tip)}</title>`,
        `<line x1="${f(x(s.lo))}" y1="${f(y)}" x2="${f(x(s.hi))}" y2="${
          f(y)
        }" stroke="${c}" stroke-width="3" stroke-linecap="round" opacity="0.55"/>`,
        `<circle cx="${f(x(s.median))}" cy="${f(y)}" r="4.5" fill="${c}"${
          s.verdict === "no difference detected"
            ? ` fill-opacity="0.35" stroke="${c}" stroke-width="1.5"`
            : ""
        }/>`,
        `</g>`,
      );
    }
  });
  out.push("</svg>", "");
  return out.join("\n");
}

// ------------------------------------------------------------------ files

/** The repository's bench/results directory. */
export const DEFAULT_OUT: string = fileURLToPath(
  new URL("../results", import.meta.url),
);

/** The chart of file/huge per workload, every runtime of a directory. */
export const RATIOS_SVG = "ab-ratios.svg";

/** The chart of gain against footprint, every runtime of a directory. */
export const GAIN_SVG = "ab-gain-vs-footprint.svg";

/**
 * The base name of a run's files: `ab-<runtime>`, with `-<backend>` for a
 * `--backend` other than `auto` and `thp` (what `auto` picks when no
 * hugetlb pool is reserved; `--backend thp` pins it, which the split mode
 * needs).
 *
 * @example
 * ```ts ignore
 * import { resultBase } from "./report.ts";
 * console.log(resultBase(result)); // "ab-deno"
 * ```
 */
export function resultBase(r: AbResult): string {
  const backend = r.options.backend ?? "auto";
  return `ab-${r.runtime.name}${
    backend === "auto" || backend === "thp" ? "" : `-${backend}`
  }`;
}

/**
 * The A/B results in `dir`: `ab-<runtime>.json` (huge on the default
 * backend), or with `date` the older files named `<runtime>-<date>.json`.
 * Deno first, then Bun.
 */
export function readResults(dir: string, date?: string): AbResult[] {
  const re = date === undefined
    ? /^ab-[a-z0-9]+\.json$/
    : new RegExp(`^[a-z0-9]+-${date.replace(/-/g, "\\-")}\\.json$`);
  const files = readdirSync(dir).filter((n) => re.test(n)).sort();
  const out: AbResult[] = [];
  for (const name of files) {
    try {
      const r = JSON.parse(readFileSync(join(dir, name), "utf8")) as AbResult;
      if (r.schema === SCHEMA) out.push(r);
    } catch {
      // not an A/B result
    }
  }
  // Deno first, then Bun, then anything else: stable colours and order.
  const rank = (n: string) => (n === "deno" ? 0 : n === "bun" ? 1 : 2);
  return out.sort((a, b) =>
    rank(a.runtime.name) - rank(b.runtime.name) ||
    a.runtime.name.localeCompare(b.runtime.name)
  );
}

/**
 * `r` with, first in each workload, its footprint (`footprintPages`) and
 * the comparisons' medians and intervals (`ratios.small`, `.file`,
 * `.split`): the summary a reader looks for in the JSON. Pure.
 *
 * @example
 * ```ts ignore
 * import { withSummary } from "./report.ts";
 * console.log(withSummary(result).workloads[0].ratios);
 * ```
 */
export function withSummary(r: AbResult): AbResult {
  const others = modesOf(r).filter((m): m is OtherMode => m !== "huge");
  return {
    ...r,
    workloads: r.workloads.map((w) => {
      const ratios: Partial<Record<OtherMode, RatioBrief>> = {};
      for (const m of others) {
        const c = w[comparisonKey(m)];
        if (c) ratios[m] = { median: c.median, lo: c.lo, hi: c.hi };
      }
      const { name, ...rest } = w;
      return {
        name,
        footprintPages: w.footprint?.pages ?? null,
        ratios,
        ...rest,
      };
    }),
  };
}

/**
 * The JSON file's layout: below depth 2 everything is indented; from there
 * a value whose JSON fits in {@linkcode JSON_LINE} characters takes one
 * line, as does everything from {@linkcode JSON_INDENT_DEPTH} down.
 */
const JSON_INDENT_DEPTH = 4;

/** The longest value written on one line above {@linkcode JSON_INDENT_DEPTH}. */
const JSON_LINE = 240;

/** Milliseconds and µs per op are stored to 0.1 ns: far below the noise. */
function roundTimes(key: string, value: unknown): unknown {
  return (key === "ms" || key === "usPerOp") && typeof value === "number"
    ? Math.round(value * 1e4) / 1e4
    : value;
}

function jsonAt(v: unknown, depth: number): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v);
  const line = JSON.stringify(v, roundTimes);
  if (
    depth >= JSON_INDENT_DEPTH || (depth >= 2 && line.length <= JSON_LINE)
  ) return line;
  const pad = " ".repeat(depth + 1);
  const end = " ".repeat(depth);
  if (Array.isArray(v)) {
    if (v.length === 0) return "[]";
    return `[\n${
      v.map((x) => pad + jsonAt(x, depth + 1)).join(",\n")
    }\n${end}]`;
  }
  const entries = Object.entries(v).filter(([, x]) => x !== undefined);
  if (entries.length === 0) return "{}";
  return `{\n${
    entries.map(([k, x]) =>
      `${pad}${JSON.stringify(k)}: ${jsonAt(roundTimes(k, x), depth + 1)}`
    ).join(",\n")
  }\n${end}}`;
}

/**
 * The JSON text of a result: the top levels indented (the summary reads as
 * a list), each small or deep value (a timed batch, a mode switch, a
 * comparison's interval, a list of ratios) on one line; batch and switch
 * times rounded to 0.1 ns. Pure.
 *
 * @example
 * ```ts
 * import { resultJson } from "./report.ts";
 * console.log(resultJson({ a: { b: [{ ms: 1.234567891, x: [1, 2] }] } }));
 * // {
 * //  "a": {
 * //   "b": [{"ms":1.2346,"x":[1,2]}]
 * //  }
 * // }
 * ```
 */
export function resultJson(v: unknown): string {
  return jsonAt(v, 0) + "\n";
}

/** Writes the charts of every result in `dir`; returns their paths. */
export function writeCharts(dir: string): { ratios: string; gain: string } {
  const all = readResults(dir);
  const ratios = join(dir, RATIOS_SVG);
  const gain = join(dir, GAIN_SVG);
  writeFileSync(ratios, renderSvg(all));
  writeFileSync(gain, renderGainChart(all));
  return { ratios, gain };
}

/**
 * Writes the JSON and Markdown of `r` (`ab-<runtime>.json`, `.md`) and
 * the charts of every runtime's result in `dir`.
 */
export function writeReports(
  r: AbResult,
  dir: string,
): { json: string; md: string; svg: string; gain: string } {
  mkdirSync(dir, { recursive: true });
  const base = join(dir, resultBase(r));
  const json = `${base}.json`;
  const md = `${base}.md`;
  writeFileSync(json, resultJson(withSummary(r)));
  writeFileSync(md, renderMarkdown(r));
  const charts = writeCharts(dir);
  return { json, md, svg: charts.ratios, gain: charts.gain };
}

if (import.meta.main) {
  const { parseArgs } = await import("node:util");
  const { values } = parseArgs({
    options: {
      out: { type: "string", default: DEFAULT_OUT },
      date: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(
      "usage: report.ts [--out DIR] [--date YYYY-MM-DD]\nRebuilds ab-<runtime>.md, " +
        `${RATIOS_SVG} and ${GAIN_SVG} from the ab-<runtime>.json results in DIR;\n` +
        "with --date, <runtime>-<date>.md and ab-<date>.svg from the older <runtime>-<date>.json.",
    );
  } else {
    const date = values.date;
    const results = readResults(values.out, date);
    if (results.length === 0) {
      console.error(
        `no A/B results${date ? ` for ${date}` : ""} in ${values.out}`,
      );
      process.exitCode = 1;
    } else {
      for (const r of results) {
        const md = join(
          values.out,
          date ? `${r.runtime.name}-${r.date}.md` : `${resultBase(r)}.md`,
        );
        writeFileSync(md, renderMarkdown(r));
        console.log(md);
      }
      if (date) {
        const svg = join(values.out, `ab-${date}.svg`);
        writeFileSync(svg, renderSvg(results));
        console.log(svg);
      } else {
        const c = writeCharts(values.out);
        console.log(`${c.ratios}\n${c.gain}`);
      }
    }
  }
}
